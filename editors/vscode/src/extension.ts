/** Gearshift for VS Code: entry point, wiring the server, status bar, commands and settings together. */

import type { ExtensionContext } from "vscode";
import { AnswerView } from "./answerView";
import { ServerManager } from "./client";
import {
  type CommandContext,
  ExtensionCommand,
  explainSelection,
  presentResult,
  refactorSelection,
  showStatus,
} from "./commands";
import { CONFIG_SECTION, changeNeedsRestart } from "./settings";
import { StatusBar } from "./statusBar";
import * as api from "./vscodeapi";

let manager: ServerManager | undefined;

function contributedSettings(context: ExtensionContext): string[] {
  const pkg = context.extension.packageJSON as {
    contributes?: { configuration?: { properties?: Record<string, unknown> } };
  };
  return Object.keys(pkg.contributes?.configuration?.properties ?? {});
}

export function activate(context: ExtensionContext): void {
  const output = api.createOutputChannel("Gearshift");
  const statusBar = new StatusBar();
  const answers = new AnswerView((message) => output.info(message));
  context.subscriptions.push(output, statusBar, answers);

  const ctx: CommandContext = {
    connection: () => manager?.connection(),
    answers,
    log: output,
    lastSpeed: () => statusBar.lastSpeed(),
  };
  const server = new ServerManager({
    output,
    statusBar,
    contributedSettings: contributedSettings(context),
    presentResult: (command, result) => presentResult(ctx, command, result),
  });
  manager = server;

  context.subscriptions.push(
    api.registerCommand(ExtensionCommand.explainSelection, () => explainSelection(ctx)),
    api.registerCommand(ExtensionCommand.refactorSelection, () => refactorSelection(ctx)),
    api.registerCommand(ExtensionCommand.showStatus, () => showStatus(ctx)),
    api.registerCommand(ExtensionCommand.restartServer, () => server.restart()),
    api.registerCommand(ExtensionCommand.showOutput, () => output.show()),
    // gearshift.escalate is registered by the language client itself (the server offers it as a command);
    // its result is shown by the client middleware through presentResult.
    api.onDidChangeConfiguration((e) => {
      if (changeNeedsRestart((key) => e.affectsConfiguration(key))) {
        void server.restart();
      } else if (e.affectsConfiguration(CONFIG_SECTION)) {
        void server.sendSettings();
      }
    }),
    api.onDidGrantWorkspaceTrust(() => void server.restart()),
    { dispose: () => void server.stop() },
  );
  // Not awaited: activation finishes while the model loads; the status bar shows progress.
  void server.start();
}

export async function deactivate(): Promise<void> {
  await manager?.stop();
  manager = undefined;
}
