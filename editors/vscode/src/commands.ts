/**
 * The extension's commands: explain and refactor the selection, escalate to the
 * cloud, show the server's status.  They talk to the server through a
 * GearshiftConnection and to VS Code through ./vscodeapi only.
 */

import type { AnswerResult, RefactorArgs, SelectionArgs, StatusReport } from "./protocol";
import { ServerCommand, isAnswerResult, isRefactorResult, progressTitle } from "./protocol";
import type { GearshiftConnection } from "./connection";
import { selectionRange, statusReportItems } from "./format";
import { CONFIG_SECTION } from "./settings";
import * as api from "./vscodeapi";

export const ExtensionCommand = {
  explainSelection: "gearshift.explainSelection",
  refactorSelection: "gearshift.refactorSelection",
  /** Registered by the language client from the server's command list; see client.ts. */
  escalate: "gearshift.escalate",
  showStatus: "gearshift.showStatus",
  restartServer: "gearshift.restartServer",
  showOutput: "gearshift.showOutput",
} as const;

export interface AnswerPresenter {
  show(answer: AnswerResult): Promise<unknown>;
}

export interface Logger {
  info(message: string): void;
  error(message: string): void;
  show(preserveFocus?: boolean): void;
}

export interface CommandContext {
  /** The running connection, or undefined while the server is not running. */
  connection(): GearshiftConnection | undefined;
  answers: AnswerPresenter;
  log: Logger;
  /** The last positive tok/s on the current tier (the status bar's), for the status report. */
  lastSpeed?: () => number | undefined;
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

function isCancellation(error: unknown): boolean {
  // vscode-jsonrpc's ResponseError for RequestCancelled (-32800) and its local "Canceled" error.
  const code = (error as { code?: unknown } | null)?.code;
  return code === -32800 || (error instanceof Error && /cancel/i.test(error.message) && error.name !== "ResponseError");
}

/** The `{uri, range}` of the active editor's selection (the current line when empty). */
export function currentSelectionArgs(): SelectionArgs | undefined {
  const editor = api.activeTextEditor();
  if (!editor) {
    return undefined;
  }
  const doc = editor.document;
  const range = selectionRange(editor.selection, (line) => doc.lineAt(line).text.length);
  return { uri: doc.uri.toString(), range };
}

/**
 * Show what a server command returned: answers open beside the editor,
 * refactor results become a message.  Used for our own commands and for the
 * server's commands run by code actions (through the client's middleware).
 */
/**
 * Why the cloud model cannot answer (the user's localOnly setting, no API key on the server), or
 * undefined when it can or the server does not say.  Escalating then would only run the local
 * model again for the answer the user already has.
 */
async function cloudUnavailable(ctx: CommandContext): Promise<string | undefined> {
  if (api.getConfiguration(CONFIG_SECTION).get<boolean>("cloud.localOnly") === true) {
    return "the cloud is off (gearshift.cloud.localOnly)";
  }
  try {
    const report = (await ctx.connection()?.executeCommand(ServerCommand.status, [])) as StatusReport | undefined;
    if (report?.cloud?.available === false) {
      return "no cloud API key (gearshift.cloud.apiKey or ANTHROPIC_API_KEY)";
    }
  } catch {
    /* the server does not say: offer it */
  }
  return undefined;
}

export async function presentResult(ctx: CommandContext, command: string, result: unknown): Promise<void> {
  if (isAnswerResult(result)) {
    ctx.log.info(`${command}: ${result.source} answer from ${result.model}`);
    await ctx.answers.show(result);
    if (result.source === "local" && command !== ServerCommand.escalate) {
      const noCloud = await cloudUnavailable(ctx);
      if (noCloud) {
        void api.showInformationMessage(`Answered locally by ${result.model}; ${noCloud}.`);
        return;
      }
      void api.showInformationMessage(`Answered locally by ${result.model}.`, "Ask the Cloud Model").then((choice) => {
        if (choice) {
          void api.executeCommand(ExtensionCommand.escalate);
        }
      });
    }
    return;
  }
  if (isRefactorResult(result)) {
    ctx.log.info(`${command}: applied=${String(result.applied)} ${result.message}`);
    if (result.applied) {
      void api.showInformationMessage(result.message || "Gearshift: refactoring applied.");
    } else {
      void api.showWarningMessage(result.message || "Gearshift: nothing was changed.");
    }
  }
}

/**
 * Run a server command, under a cancellable progress notification unless `quick`;
 * undefined when cancelled or failed.
 */
export async function runServerCommand(
  ctx: CommandContext,
  command: string,
  args: unknown[],
  quick = false,
): Promise<unknown> {
  const connection = ctx.connection();
  if (!connection) {
    void api.showErrorMessage("Gearshift: the server is not running.", "Show Output").then((choice) => {
      if (choice) {
        ctx.log.show();
      }
    });
    return undefined;
  }
  try {
    if (quick) {
      return await connection.executeCommand(command, args);
    }
    return await api.withNotificationProgress(progressTitle(command), (progress, token) =>
      connection.executeCommand(command, args, token, (message) => progress.report({ message })),
    );
  } catch (error) {
    if (isCancellation(error)) {
      ctx.log.info(`${command}: cancelled`);
      return undefined;
    }
    ctx.log.error(`${command} failed: ${errorText(error)}`);
    void api.showErrorMessage(`Gearshift: ${errorText(error)}`);
    return undefined;
  }
}

export async function explainSelection(ctx: CommandContext): Promise<void> {
  const args = currentSelectionArgs();
  if (!args) {
    void api.showWarningMessage("Gearshift: open a file and select the code to explain.");
    return;
  }
  const result = await runServerCommand(ctx, ServerCommand.explain, [args]);
  if (result !== undefined) {
    await presentResult(ctx, ServerCommand.explain, result);
  }
}

export async function refactorSelection(ctx: CommandContext): Promise<void> {
  const selection = currentSelectionArgs();
  if (!selection) {
    void api.showWarningMessage("Gearshift: open a file and select the code to refactor.");
    return;
  }
  const instruction = await api.showInputBox({
    title: "Gearshift: Refactor Selection",
    prompt: "How should the selection change? Leave empty for a general clean-up.",
    placeHolder: "e.g. use a dataclass, add type hints, extract a function",
    ignoreFocusOut: true,
  });
  if (instruction === undefined) {
    return; // Escape: the user changed their mind
  }
  const args: RefactorArgs = { ...selection };
  if (instruction.trim()) {
    args.instruction = instruction.trim();
  }
  // The server applies the edit itself through workspace/applyEdit.
  const result = await runServerCommand(ctx, ServerCommand.refactor, [args]);
  if (result !== undefined) {
    await presentResult(ctx, ServerCommand.refactor, result);
  }
}

export async function showStatus(ctx: CommandContext): Promise<void> {
  const report = (await runServerCommand(ctx, ServerCommand.status, [], true)) as StatusReport | undefined;
  if (report === undefined) {
    return;
  }
  ctx.log.info(`gearshift.status: ${JSON.stringify(report, null, 2)}`);
  const items = [
    ...statusReportItems(report, ctx.lastSpeed?.()),
    { label: "$(output) Show full report in the output", description: "", full: true },
  ];
  const picked = await api.showQuickPick(items, { title: "Gearshift status", placeHolder: "Tier, speed, guard and cloud meter" });
  if (picked && "full" in picked) {
    ctx.log.show();
  }
}
