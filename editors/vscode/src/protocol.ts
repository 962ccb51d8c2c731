/**
 * Gearshift's own protocol surface (docs/protocol.md): command names, their
 * arguments and results, and the `gearshift/status` notification.  Types only,
 * so every module can share them without pulling in VS Code.
 */

export const STATUS_NOTIFICATION = "gearshift/status";

/** Client → server: where the cursor rests in the active document. */
export const CURSOR_NOTIFICATION = "gearshift/cursor";

export interface CursorParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}

/** Commands the server runs through `workspace/executeCommand`. */
export const ServerCommand = {
  explain: "gearshift.explain",
  refactor: "gearshift.refactor",
  review: "gearshift.review",
  escalate: "gearshift.escalate",
  status: "gearshift.status",
} as const;
const PROGRESS_TITLES: Record<string, string> = {
  [ServerCommand.explain]: "Gearshift: explaining…",
  [ServerCommand.review]: "Gearshift: reviewing…",
  [ServerCommand.refactor]: "Gearshift: refactoring…",
  [ServerCommand.escalate]: "Gearshift: asking the cloud model…",
  [ServerCommand.status]: "Gearshift: reading status…",
};

/** The progress notification title while a server command runs. */
export function progressTitle(command: string): string {
  return PROGRESS_TITLES[command] ?? `Gearshift: ${command}…`;
}

export type ServerCommandName = (typeof ServerCommand)[keyof typeof ServerCommand];

/** An LSP position/range as it goes over the wire (zero-based, UTF-16 columns). */
export interface WirePosition {
  line: number;
  character: number;
}
export interface WireRange {
  start: WirePosition;
  end: WirePosition;
}

export interface SelectionArgs {
  uri: string;
  range: WireRange;
}
export interface RefactorArgs extends SelectionArgs {
  instruction?: string;
}
export interface EscalateArgs extends SelectionArgs {
  task?: "explain" | "refactor" | "review";
}

/** Result of `gearshift.explain`, `gearshift.review` and `gearshift.escalate`. */
export interface AnswerResult {
  title: string;
  markdown: string;
  source: "local" | "cloud";
  model: string;
}

/** Result of `gearshift.refactor`; the edit itself arrives as `workspace/applyEdit`. */
export interface RefactorResult {
  applied: boolean;
  message: string;
}

export type ModelState = "loading" | "ready" | "error";

/** Params of the `gearshift/status` notification; every field but `state` may be missing. */
export interface StatusParams {
  state: ModelState;
  tier?: string;
  tokensPerSecond?: number | null;
  timeToFirstTokenMs?: number | null;
  cacheHit?: boolean | null;
  confidence?: number | null;
  reason?: string | null;
  message?: string | null;
  /** "first_answer": the suggestion was shown early and its generation goes on. */
  stopReason?: string | null;
  /** The rest of a suggestion shown early is now in the server's typed-ahead cache (for `uri` at `version`). */
  background?: boolean;
  uri?: string;
  version?: number | null;
  /** The pipeline's own facts (`PipelineFacts` in lsp_server/wire.py), each sent only when it applies. */
  promptTokens?: number;
  reusedTokens?: number;
  contextChunks?: number;
  remoteError?: string;
  remoteFailover?: string;
  /** For debugging: the stop rule that ended the generation, and the post-processing rules that changed it. */
  stoppedBy?: string;
  rules?: string[];
}

/** Result of `gearshift.status`: the last status plus guard, loaded models and cloud meter. */
export interface StatusReport extends Partial<StatusParams> {
  tier?: string;
  loadedModels?: string[];
  guard?: Record<string, unknown> | null;
  modelError?: string | null;
  cloud?: {
    requests?: number;
    inputTokens?: number;
    outputTokens?: number;
    costUsd?: number;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export function isAnswerResult(value: unknown): value is AnswerResult {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const v = value as Record<string, unknown>;
  return typeof v.markdown === "string" && (v.source === "local" || v.source === "cloud");
}

export function isRefactorResult(value: unknown): value is RefactorResult {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const v = value as Record<string, unknown>;
  return typeof v.applied === "boolean" && typeof v.message === "string";
}
