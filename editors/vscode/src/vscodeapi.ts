/**
 * The one module that touches the `vscode` API at run time.
 *
 * Everything else imports these wrappers (and `import type` from "vscode"), so
 * unit tests replace this module with `vi.mock("./vscodeapi")` and run in plain
 * Node, as vscode-python-tools-extension-template does.  ESLint enforces it.
 */

import * as vscode from "vscode";

export type Disposable = vscode.Disposable;

export function createOutputChannel(name: string): vscode.LogOutputChannel {
  return vscode.window.createOutputChannel(name, { log: true });
}

export function createStatusBarItem(id: string, priority: number): vscode.StatusBarItem {
  return vscode.window.createStatusBarItem(id, vscode.StatusBarAlignment.Right, priority);
}

export function themeColor(id: string): vscode.ThemeColor {
  return new vscode.ThemeColor(id);
}

export function markdownString(value: string, supportThemeIcons = true): vscode.MarkdownString {
  return new vscode.MarkdownString(value, supportThemeIcons);
}

export function registerCommand(command: string, callback: (...args: never[]) => unknown): vscode.Disposable {
  return vscode.commands.registerCommand(command, callback as (...args: unknown[]) => unknown);
}

export function executeCommand<T = unknown>(command: string, ...rest: unknown[]): Thenable<T> {
  return vscode.commands.executeCommand<T>(command, ...rest);
}

export function getConfiguration(section: string, scope?: vscode.ConfigurationScope): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(section, scope);
}

export function onDidChangeConfiguration(
  listener: (e: vscode.ConfigurationChangeEvent) => unknown,
): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration(listener);
}

export function onDidGrantWorkspaceTrust(listener: () => unknown): vscode.Disposable {
  return vscode.workspace.onDidGrantWorkspaceTrust(listener);
}

export function isWorkspaceTrusted(): boolean {
  return vscode.workspace.isTrusted;
}

/** File-system paths of the workspace folders that live on disk. */
export function workspaceFolderPaths(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath);
}

export function activeTextEditor(): vscode.TextEditor | undefined {
  return vscode.window.activeTextEditor;
}

export function onDidChangeActiveTextEditor(listener: (editor: vscode.TextEditor | undefined) => unknown): vscode.Disposable {
  return vscode.window.onDidChangeActiveTextEditor(listener);
}

export function onDidChangeTextEditorSelection(
  listener: (e: vscode.TextEditorSelectionChangeEvent) => unknown,
): vscode.Disposable {
  return vscode.window.onDidChangeTextEditorSelection(listener);
}

export function showInformationMessage(message: string, ...items: string[]): Thenable<string | undefined> {
  return vscode.window.showInformationMessage(message, ...items);
}

export function showWarningMessage(message: string, ...items: string[]): Thenable<string | undefined> {
  return vscode.window.showWarningMessage(message, ...items);
}

export function showErrorMessage(message: string, ...items: string[]): Thenable<string | undefined> {
  return vscode.window.showErrorMessage(message, ...items);
}

export function showInputBox(options: vscode.InputBoxOptions): Thenable<string | undefined> {
  return vscode.window.showInputBox(options);
}

export function showQuickPick<T extends vscode.QuickPickItem>(
  items: readonly T[],
  options: vscode.QuickPickOptions,
): Thenable<T | undefined> {
  return vscode.window.showQuickPick(items, options);
}

/** A cancellable notification progress; `task` gets a reporter and a cancellation token. */
export function withNotificationProgress<R>(
  title: string,
  task: (
    progress: vscode.Progress<{ message?: string; increment?: number }>,
    token: vscode.CancellationToken,
  ) => Thenable<R>,
): Thenable<R> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, task);
}

/** A non-cancellable progress notification, for server work started outside our commands (code actions). */
export function withWindowProgress<R>(title: string, task: () => Thenable<R>): Thenable<R> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: false }, task);
}

export function registerTextDocumentContentProvider(
  scheme: string,
  provide: (uri: vscode.Uri) => string | undefined,
): vscode.Disposable {
  return vscode.workspace.registerTextDocumentContentProvider(scheme, {
    provideTextDocumentContent: (uri) => provide(uri),
  });
}

/** An empty range at `position`: an insertion point. */
export function emptyRange(position: vscode.Position): vscode.Range {
  return new vscode.Range(position, position);
}

export function uriFrom(scheme: string, path: string): vscode.Uri {
  return vscode.Uri.from({ scheme, path });
}

export async function showDocumentBeside(uri: vscode.Uri, language?: string): Promise<void> {
  let doc = await vscode.workspace.openTextDocument(uri);
  if (language && doc.languageId !== language) {
    doc = await vscode.languages.setTextDocumentLanguage(doc, language);
  }
  await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
}
