/**
 * What the commands need from a running language client, as an interface, so
 * they can be tested with a fake and without vscode-languageclient.
 */

import type { CancellationToken } from "vscode";

export interface GearshiftConnection {
  /**
   * Run a server command through `workspace/executeCommand`.  `onProgress`
   * receives the server's `$/progress` messages for this request; cancelling
   * `token` cancels the request and the server's work-done progress.
   */
  executeCommand(
    command: string,
    args: unknown[],
    token?: CancellationToken,
    onProgress?: (message: string) => void,
  ): Promise<unknown>;
}
