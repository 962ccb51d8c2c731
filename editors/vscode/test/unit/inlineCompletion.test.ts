import { describe, expect, it, vi } from "vitest";
import { anchorAtCursor } from "../../src/inlineCompletion";

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
