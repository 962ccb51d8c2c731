/**
 * Cursor hints (`gearshift/cursor`, docs/protocol.md): where the cursor rests in the active editor.
 *
 * LSP never tells a server where the cursor is until the first request, so the first keystroke in a file paid
 * for evaluating its whole prompt window.  With a hint the server evaluates it while the user reads.  Sent on
 * focus change and cursor moves, debounced (a moving cursor sends nothing until it rests), once per position.
 */

import type { CursorParams } from "./protocol";

export interface HintTimer {
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimer: HintTimer = {
  set: (callback, ms) => setTimeout(callback, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export const CURSOR_HINT_DEBOUNCE_MS = 300;

export class CursorHints {
  private pending: unknown;
  private lastSent = "";

  constructor(
    private readonly send: (params: CursorParams) => void,
    private readonly debounceMs = CURSOR_HINT_DEBOUNCE_MS,
    private readonly timer: HintTimer = realTimer,
  ) {}

  /** The cursor is at `line`/`character` (UTF-16, as LSP) in `uri`; sent once it rests there. */
  moved(uri: string, line: number, character: number): void {
    if (this.pending !== undefined) {
      this.timer.clear(this.pending);
    }
    this.pending = this.timer.set(() => {
      this.pending = undefined;
      const key = `${uri}\u0000${line}\u0000${character}`;
      if (key === this.lastSent) {
        return;
      }
      this.lastSent = key;
      this.send({ textDocument: { uri }, position: { line, character } });
    }, this.debounceMs);
  }

  /** A document changed or closed: the next rest in it is news even at the same position. */
  forget(): void {
    this.lastSent = "";
  }

  dispose(): void {
    if (this.pending !== undefined) {
      this.timer.clear(this.pending);
      this.pending = undefined;
    }
  }
}
