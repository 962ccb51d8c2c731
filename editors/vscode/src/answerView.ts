/**
 * Shows explain/review/escalate answers as read-only markdown documents beside
 * the editor (rendered by VS Code's markdown preview), labelled local or cloud.
 */

import type { Uri } from "vscode";
import type { AnswerResult } from "./protocol";
import { answerDocumentName, renderAnswer } from "./format";
import * as api from "./vscodeapi";

export const ANSWER_SCHEME = "gearshift-answer";
/** Answers kept for re-opening a tab; older ones are dropped. */
const KEEP = 20;

export class AnswerView {
  private readonly documents = new Map<string, string>();
  private counter = 0;
  private readonly registration: api.Disposable;

  constructor(private readonly log: (message: string) => void) {
    this.registration = api.registerTextDocumentContentProvider(ANSWER_SCHEME, (uri) => this.documents.get(uri.path));
  }

  /** Render the answer, open it beside the editor and return its URI. */
  async show(answer: AnswerResult): Promise<Uri> {
    this.counter += 1;
    const path = `/${answerDocumentName(answer, this.counter)}`;
    this.documents.set(path, renderAnswer(answer));
    while (this.documents.size > KEEP) {
      const oldest = this.documents.keys().next().value;
      if (oldest === undefined) {
        break;
      }
      this.documents.delete(oldest);
    }
    const uri = api.uriFrom(ANSWER_SCHEME, path);
    try {
      await api.executeCommand("markdown.showPreviewToSide", uri);
    } catch (error) {
      // The built-in markdown extension can be disabled: show the source instead.
      this.log(`Markdown preview unavailable (${String(error)}); opening the answer as text`);
      await api.showDocumentBeside(uri, "markdown");
    }
    return uri;
  }

  dispose(): void {
    this.registration.dispose();
    this.documents.clear();
  }
}
