/**
 * A stand-in for src/vscodeapi.ts: every wrapper is a vi.fn() with a harmless
 * default, and the status-bar item and editor are plain objects the tests read.
 * Use with `vi.mock("../../src/vscodeapi", () => import("./fakeVscodeApi"))`.
 */

import { vi } from "vitest";

export interface FakeStatusBarItem {
  name?: string;
  text: string;
  tooltip?: { value: string };
  command?: string;
  backgroundColor?: { id: string } | undefined;
  visible: boolean;
  show(): void;
  dispose(): void;
}

export const statusBarItems: FakeStatusBarItem[] = [];
export const contentProviders = new Map<string, (uri: { path: string }) => string | undefined>();
export const registeredCommands = new Map<string, (...args: unknown[]) => unknown>();

export interface FakeEditor {
  document: { uri: { toString(): string }; version?: number; lineAt(line: number): { text: string } };
  selection: { start: { line: number; character: number }; end: { line: number; character: number } };
}

/** Build an editor over `lines` with a selection. */
export function fakeEditor(
  uri: string,
  lines: string[],
  start: [number, number],
  end: [number, number] = start,
): FakeEditor {
  return {
    document: {
      uri: { toString: () => uri },
      lineAt: (line: number) => ({ text: lines[line] ?? "" }),
    },
    selection: { start: { line: start[0], character: start[1] }, end: { line: end[0], character: end[1] } },
  };
}

export const createOutputChannel = vi.fn((name: string) => ({
  name,
  info: vi.fn(),
  warn: vi.fn(),
  error: vi.fn(),
  show: vi.fn(),
  dispose: vi.fn(),
}));

export const createStatusBarItem = vi.fn((): FakeStatusBarItem => {
  const item: FakeStatusBarItem = {
    text: "",
    visible: false,
    show() {
      item.visible = true;
    },
    dispose() {
      item.visible = false;
    },
  };
  statusBarItems.push(item);
  return item;
});

export const themeColor = vi.fn((id: string) => ({ id }));
export const markdownString = vi.fn((value: string) => ({ value }));
export const registerCommand = vi.fn((command: string, callback: (...args: unknown[]) => unknown) => {
  registeredCommands.set(command, callback);
  return { dispose: () => registeredCommands.delete(command) };
});
export const executeCommand = vi.fn((..._args: unknown[]) => Promise.resolve(undefined));
export const getConfiguration = vi.fn(() => ({ get: (_key: string): unknown => undefined }));
export const onDidChangeConfiguration = vi.fn(() => ({ dispose: vi.fn() }));
export const onDidGrantWorkspaceTrust = vi.fn(() => ({ dispose: vi.fn() }));
export const isWorkspaceTrusted = vi.fn(() => true);
export const workspaceFolderPaths = vi.fn((): string[] => []);
export const activeTextEditor = vi.fn((): FakeEditor | undefined => undefined);
export const onDidChangeActiveTextEditor = vi.fn((_listener: unknown) => ({ dispose: vi.fn() }));
export const onDidChangeTextEditorSelection = vi.fn((_listener: unknown) => ({ dispose: vi.fn() }));
export const showInformationMessage = vi.fn((..._args: unknown[]) => Promise.resolve<string | undefined>(undefined));
export const showWarningMessage = vi.fn((..._args: unknown[]) => Promise.resolve<string | undefined>(undefined));
export const showErrorMessage = vi.fn((..._args: unknown[]) => Promise.resolve<string | undefined>(undefined));
export const showInputBox = vi.fn((..._args: unknown[]) => Promise.resolve<string | undefined>(undefined));
export const showQuickPick = vi.fn((..._args: unknown[]) => Promise.resolve<unknown>(undefined));

/** A cancellation token the test can trigger. */
export function fakeToken(): {
  isCancellationRequested: boolean;
  onCancellationRequested: (listener: () => unknown) => { dispose(): void };
  cancel(): void;
} {
  const listeners: (() => unknown)[] = [];
  const token = {
    isCancellationRequested: false,
    onCancellationRequested: (listener: () => unknown) => {
      listeners.push(listener);
      return { dispose: () => undefined };
    },
    cancel: () => {
      token.isCancellationRequested = true;
      listeners.forEach((l) => l());
    },
  };
  return token;
}

export const progressReports: { title: string; message?: string }[] = [];
export const withNotificationProgress = vi.fn(
  (title: string, task: (progress: { report: (v: { message?: string }) => void }, token: unknown) => Promise<unknown>) =>
    task({ report: (v) => progressReports.push({ title, ...v }) }, fakeToken()),
);
export const withWindowProgress = vi.fn((_title: string, task: () => Promise<unknown>) => task());
export const registerTextDocumentContentProvider = vi.fn(
  (scheme: string, provide: (uri: { path: string }) => string | undefined) => {
    contentProviders.set(scheme, provide);
    return { dispose: () => contentProviders.delete(scheme) };
  },
);
export const emptyRange = vi.fn((position: { line: number; character: number }) => ({ start: position, end: position }));
export const uriFrom = vi.fn((scheme: string, path: string) => ({ scheme, path, toString: () => `${scheme}:${path}` }));
export const showDocumentBeside = vi.fn((..._args: unknown[]) => Promise.resolve());

/** Forget everything recorded, between tests. */
export function resetFake(): void {
  statusBarItems.length = 0;
  progressReports.length = 0;
  contentProviders.clear();
  registeredCommands.clear();
}
