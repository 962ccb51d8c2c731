import { describe, expect, it } from "vitest";
import { CursorHints, type HintTimer } from "../../src/cursorHints";
import type { CursorParams } from "../../src/protocol";

class ManualTimer implements HintTimer {
  callbacks = new Map<number, () => void>();
  next = 0;
  set(callback: () => void): unknown {
    this.next += 1;
    this.callbacks.set(this.next, callback);
    return this.next;
  }
  clear(handle: unknown): void {
    this.callbacks.delete(handle as number);
  }
  fire(): void {
    const pending = [...this.callbacks.values()];
    this.callbacks.clear();
    pending.forEach((callback) => callback());
  }
}

describe("cursor hints", () => {
  it("sends only where the cursor comes to rest", () => {
    const sent: CursorParams[] = [];
    const timer = new ManualTimer();
    const hints = new CursorHints((p) => sent.push(p), 300, timer);
    hints.moved("file:///a.py", 1, 1);
    hints.moved("file:///a.py", 1, 2);
    hints.moved("file:///a.py", 9, 4);
    timer.fire();
    expect(sent).toEqual([{ textDocument: { uri: "file:///a.py" }, position: { line: 9, character: 4 } }]);
  });

  it("does not repeat a position until the document changes", () => {
    const sent: CursorParams[] = [];
    const timer = new ManualTimer();
    const hints = new CursorHints((p) => sent.push(p), 300, timer);
    hints.moved("file:///a.py", 3, 0);
    timer.fire();
    hints.moved("file:///a.py", 3, 0);
    timer.fire();
    expect(sent).toHaveLength(1);
    hints.forget();
    hints.moved("file:///a.py", 3, 0);
    timer.fire();
    expect(sent).toHaveLength(2);
  });

  it("sends nothing after dispose", () => {
    const sent: CursorParams[] = [];
    const timer = new ManualTimer();
    const hints = new CursorHints((p) => sent.push(p), 300, timer);
    hints.moved("file:///a.py", 3, 0);
    hints.dispose();
    timer.fire();
    expect(sent).toEqual([]);
  });
});
