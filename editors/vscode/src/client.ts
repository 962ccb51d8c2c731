/**
 * Starts, restarts and stops the Gearshift language server through
 * vscode-languageclient, and adapts the client to GearshiftConnection.
 *
 * vscode-languageclient 10 registers inline completion (ghost text) by
 * default; the middleware anchors items without a range at the cursor.  It also registers every server command (gearshift.explain,
 * gearshift.escalate, ...) as a VS Code command; its middleware shows their
 * results, so an answer from a code action opens like one from our commands.
 */

import * as fs from "node:fs";
import * as os from "node:os";
import type { CancellationToken, LogOutputChannel, TextEditor } from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
  State,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
} from "vscode-languageclient/node";
import type { GearshiftConnection } from "./connection";
import { CursorHints } from "./cursorHints";
import { anchorAtCursor, askAgainWhenFinished } from "./inlineCompletion";
import type { StatusParams } from "./protocol";
import { CURSOR_NOTIFICATION, STATUS_NOTIFICATION, ServerCommand, progressTitle } from "./protocol";
import { describeCommand, resolveServerCommand, type ServerCommand as ResolvedCommand } from "./serverCommand";
import { pipeServerStderr, pipeServerStdout } from "./serverLog";
import { CONFIG_SECTION, buildServerSettings, didChangeConfigurationPayload, serverSettingKeys } from "./settings";
import type { StatusBar } from "./statusBar";
import * as api from "./vscodeapi";

export const CLIENT_ID = "gearshift";

export interface ClientHooks {
  output: LogOutputChannel;
  statusBar: StatusBar;
  /** Contributed configuration keys (`gearshift.*`) from package.json. */
  contributedSettings: string[];
  /** Show a server command's result when it ran from a code action or the palette. */
  presentResult(command: string, result: unknown): Promise<void>;
}

function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === "win32") {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolve the server command from the current settings and workspace. */
export function currentServerCommand(): ResolvedCommand {
  const config = api.getConfiguration(CONFIG_SECTION);
  const trusted = api.isWorkspaceTrusted();
  return resolveServerCommand(
    {
      serverPath: config.get<string | null>("serverPath"),
      pythonPath: config.get<string | null>("pythonPath"),
      serverArgs: config.get<string[]>("serverArgs"),
    },
    {
      // In Restricted Mode never run an executable the workspace brings (.venv): only PATH.
      workspaceFolders: trusted ? api.workspaceFolderPaths() : [],
      homeDir: os.homedir(),
      platform: process.platform,
      pathEnv: process.env.PATH,
      isExecutable,
    },
  );
}

export function currentServerSettings(contributed: string[]): ReturnType<typeof buildServerSettings> {
  const config = api.getConfiguration(CONFIG_SECTION);
  return buildServerSettings(serverSettingKeys(contributed), (key) => config.get(key));
}

class ClientConnection implements GearshiftConnection {
  private progressCounter = 0;

  constructor(private readonly client: LanguageClient) {}

  async executeCommand(
    command: string,
    args: unknown[],
    token?: CancellationToken,
    onProgress?: (message: string) => void,
  ): Promise<unknown> {
    this.progressCounter += 1;
    const workDoneToken = `gearshift-${Date.now()}-${this.progressCounter}`;
    const disposables: { dispose(): unknown }[] = [];
    if (onProgress) {
      disposables.push(
        this.client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
          if (value.kind !== "end" && value.message) {
            onProgress(value.message);
          }
        }),
      );
    }
    if (token) {
      disposables.push(
        token.onCancellationRequested(() => {
          void this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token: workDoneToken });
        }),
      );
    }
    try {
      return await this.client.sendRequest(
        ExecuteCommandRequest.type,
        { command, arguments: args, workDoneToken },
        token,
      );
    } finally {
      disposables.forEach((d) => d.dispose());
    }
  }
}

export class ServerManager {
  private client: LanguageClient | undefined;
  private connection_: GearshiftConnection | undefined;
  private escalateFallback: api.Disposable | undefined;
  private cursorHints: { dispose(): unknown }[] = [];
  private starting: Promise<void> | undefined;

  constructor(private readonly hooks: ClientHooks) {}

  connection(): GearshiftConnection | undefined {
    return this.client?.state === State.Running ? this.connection_ : undefined;
  }

  async start(): Promise<void> {
    if (this.starting) {
      return this.starting;
    }
    this.starting = this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    if (this.client) {
      return; // already running (or failed and waiting for a restart)
    }
    const { output, statusBar } = this.hooks;
    const resolved = currentServerCommand();
    output.info(`Starting the Gearshift server (${resolved.source}): ${describeCommand(resolved)}`);
    statusBar.starting();

    const serverOptions: ServerOptions = {
      command: resolved.command,
      args: resolved.args,
      transport: TransportKind.stdio,
      options: { cwd: resolved.cwd, env: { ...process.env } },
    };
    const clientOptions: LanguageClientOptions = {
      // Every document on disk: the server picks its language from the file.
      documentSelector: [{ scheme: "file" }],
      outputChannel: output,
      // The server's log lines at their own level (the client's default logs all of stderr as errors).
      stdioOptions: { stdout: pipeServerStdout, stderr: pipeServerStderr },
      // Start-up failures get one message of ours (with "Open Settings"), not a pile of the client's.
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationFailedHandler: (error) => {
        output.error(`Initialization failed: ${error instanceof Error ? error.message : String(error)}`);
        return false;
      },
      initializationOptions: currentServerSettings(this.hooks.contributedSettings),
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) =>
          anchorAtCursor(await next(document, position, context, token), position),
        executeCommand: async (command, args, next) => {
          // Server commands run from code actions or the palette (gearshift.escalate): show progress and the result.
          const result: unknown = await api.withWindowProgress(progressTitle(command), () =>
            Promise.resolve(next(command, args)),
          );
          if (command !== ServerCommand.status) {
            await this.hooks.presentResult(command, result);
          }
          return result;
        },
      },
    };
    const client = new LanguageClient(CLIENT_ID, "Gearshift", serverOptions, clientOptions);
    client.onNotification(STATUS_NOTIFICATION, (params: StatusParams) => {
      statusBar.update(params);
      askAgainWhenFinished(params);
    });
    client.onDidChangeState((e) => {
      if (e.newState === State.Stopped && this.client === client) {
        statusBar.failed("The server stopped. Run “Gearshift: Restart Server”, or see the Gearshift output.");
      }
    });
    this.client = client;
    this.connection_ = new ClientConnection(client);
    try {
      await client.start();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      output.error(`Could not start ${describeCommand(resolved)}: ${message}`);
      statusBar.failed(`Could not start \`${describeCommand(resolved)}\`: ${message}`);
      void api
        .showErrorMessage(
          `Gearshift: could not start the server (${message}). Set gearshift.serverPath or gearshift.pythonPath.`,
          "Open Settings",
          "Show Output",
        )
        .then((choice) => {
          if (choice === "Open Settings") {
            void api.executeCommand("workbench.action.openSettings", "gearshift.");
          } else if (choice === "Show Output") {
            output.show();
          }
        });
      return;
    }
    this.startCursorHints(client);
    const commands = client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
    output.info(`Gearshift server running; commands: ${commands.join(", ") || "none"}`);
    if (!commands.includes(ServerCommand.escalate)) {
      // The client registers gearshift.escalate only when the server offers it; say so instead of "command not found".
      this.escalateFallback = api.registerCommand(ServerCommand.escalate, () => {
        void api.showWarningMessage("Gearshift: this server does not offer escalation to the cloud.");
      });
    }
  }

  /** Tell the server where the cursor rests, so it evaluates that prompt before the first keystroke. */
  private startCursorHints(client: LanguageClient): void {
    const hints = new CursorHints((params) => void client.sendNotification(CURSOR_NOTIFICATION, params));
    const hintAt = (editor: TextEditor | undefined): void => {
      if (editor?.document.uri.scheme !== "file" || client.state !== State.Running) {
        return; // only documents the client syncs (documentSelector: file)
      }
      const { line, character } = editor.selection.active;
      hints.moved(client.code2ProtocolConverter.asUri(editor.document.uri), line, character);
    };
    this.cursorHints = [
      hints,
      api.onDidChangeActiveTextEditor((editor) => {
        hints.forget(); // back in a file: its prompt may have left the server's cache meanwhile
        hintAt(editor);
      }),
      api.onDidChangeTextEditorSelection((e) => hintAt(e.textEditor)),
    ];
    hintAt(api.activeTextEditor());
  }

  /** Tell the running server about changed settings. */
  async sendSettings(): Promise<void> {
    const client = this.client;
    if (client?.state !== State.Running) {
      return;
    }
    const settings = currentServerSettings(this.hooks.contributedSettings);
    this.hooks.output.info("Sending changed settings to the server");
    await client.sendNotification("workspace/didChangeConfiguration", didChangeConfigurationPayload(settings));
  }

  async stop(): Promise<void> {
    this.cursorHints.forEach((d) => d.dispose());
    this.cursorHints = [];
    this.escalateFallback?.dispose();
    this.escalateFallback = undefined;
    const client = this.client;
    this.client = undefined;
    this.connection_ = undefined;
    if (client && client.state !== State.Stopped) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.hooks.output.warn(`Stopping the server: ${String(error)}`);
      }
    }
    await client?.dispose();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}
