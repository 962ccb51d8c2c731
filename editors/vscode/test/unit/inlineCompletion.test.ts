import { beforeEach, describe, expect, it, vi } from "vitest";
import { TRIGGER_INLINE_SUGGEST, anchorAtCursor, askAgainWhenFinished } from "../../src/inlineCompletion";
import * as api from "./fakeVscodeApi";

vi.mock("../../src/vscodeapi", () => import("./fakeVscodeApi"));

const position = { line: 12, character: 15 } as never;

describe("anchorAtCursor", () => {
  it("turns an item without a range into an insertion at the cursor", () => {
    const items = [{ insertText: "item.price * item.quantity for item in items" }];
    const result = anchorAtCursor(items as never, position) as unknown as { range: unknown }[];
    expect(result[0]!.range).toEqual({ start: position, end: position });
  });

  it("keeps a range the server chose", () => {
    const range = { start: { line: 12, character: 4 }, end: { line: 12, character: 15 } };
    const list = { items: [{ insertText: "return 1", range }] };
    const result = anchorAtCursor(list as never, position) as unknown as { items: { range: unknown }[] };
    expect(result.items[0]!.range).toBe(range);
  });

  it("passes empty results through", () => {
    expect(anchorAtCursor(null, position)).toBeNull();
  });
});

describe("askAgainWhenFinished", () => {
  const uri = "file:///work/inventory.py";
  beforeEach(() => {
    api.executeCommand.mockClear();
    const editor = api.fakeEditor(uri, ["def f():", "    return "], [1, 11]);
    editor.document.version = 7;
    api.activeTextEditor.mockReturnValue(editor);
  });

  it("asks VS Code again when the rest of an early suggestion is ready for this document and version", () => {
    askAgainWhenFinished({ state: "ready", background: true, uri, version: 7 });
    expect(api.executeCommand).toHaveBeenCalledWith(TRIGGER_INLINE_SUGGEST);
  });

  it.each([
    ["the document moved on", { background: true, uri, version: 8 }],
    ["another document", { background: true, uri: "file:///work/other.py", version: 7 }],
    ["an ordinary status", { uri, version: 7 }],
  ])("leaves it alone for %s", (_why, status) => {
    askAgainWhenFinished({ state: "ready", ...status });
    expect(api.executeCommand).not.toHaveBeenCalled();
  });
});
