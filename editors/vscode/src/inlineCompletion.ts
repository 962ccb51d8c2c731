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
import type { StatusParams } from "./protocol";
import * as api from "./vscodeapi";

export const TRIGGER_INLINE_SUGGEST = "editor.action.inlineSuggest.trigger";

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

/**
 * A suggestion the server showed early (`completion.firstAnswerMs`) stays as it was until VS Code asks again.
 * When the server says the rest is ready for the document and version in the active editor, ask again: the
 * answer comes from the server's typed-ahead cache.
 */
export function askAgainWhenFinished(status: StatusParams): void {
  if (!status.background || !status.uri) {
    return;
  }
  const document = api.activeTextEditor()?.document;
  if (document?.uri.toString() !== status.uri || document.version !== status.version) {
    return;
  }
  void api.executeCommand(TRIGGER_INLINE_SUGGEST);
}
