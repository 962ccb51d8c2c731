/**
 * Normalises the server's inline completion items for VS Code.
 *
 * An LSP InlineCompletionItem may leave out `range`; VS Code then replaces from
 * the cursor to the END OF THE LINE.  Gearshift's suggestions are insertions at
 * the cursor, so with text after the cursor (an auto-closed `)`, say) VS Code
 * would treat the suggestion as deleting that text and show no ghost text.  An
 * item without a range is therefore anchored at the cursor as an insertion.
 */

import type { InlineCompletionItem, InlineCompletionList, Position } from "vscode";
import * as api from "./vscodeapi";

type Result = InlineCompletionItem[] | InlineCompletionList | null | undefined;

export function anchorAtCursor<R extends Result>(result: R, position: Position): R {
  if (!result) {
    return result;
  }
  const items: InlineCompletionItem[] = Array.isArray(result) ? result : result.items;
  for (const item of items) {
    item.range ??= api.emptyRange(position);
  }
  return result;
}
