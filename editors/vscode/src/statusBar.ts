/** The status-bar item: model tier and delivered tok/s from `gearshift/status`. */

import type { StatusBarItem } from "vscode";
import type { StatusParams } from "./protocol";
import { type StatusBarView, failedStatusBar, formatStatusBar, startingStatusBar } from "./format";
import * as api from "./vscodeapi";

export const SHOW_STATUS_COMMAND = "gearshift.showStatus";

export class StatusBar {
  private readonly item: StatusBarItem;
  private last: StatusParams | undefined;
  /** Last positive tok/s per tier. */
  private readonly speeds = new Map<string, number>();

  constructor() {
    this.item = api.createStatusBarItem("gearshift.status", 100);
    this.item.name = "Gearshift";
    this.item.command = SHOW_STATUS_COMMAND;
    this.render(startingStatusBar());
    this.item.show();
  }

  /** The last status the server sent, if any. */
  get lastStatus(): StatusParams | undefined {
    return this.last;
  }

  /** The last positive tok/s measured on the current tier, if any. */
  lastSpeed(): number | undefined {
    return this.speeds.get(this.last?.tier ?? "");
  }

  update(status: StatusParams): void {
    this.last = status;
    const tier = status.tier ?? "";
    if (typeof status.tokensPerSecond === "number" && status.tokensPerSecond > 0 && !status.cacheHit) {
      this.speeds.set(tier, status.tokensPerSecond);
    }
    this.render(formatStatusBar(status, this.speeds.get(tier)));
  }

  starting(): void {
    this.render(startingStatusBar());
  }

  failed(error: string): void {
    this.render(failedStatusBar(error));
  }

  private render(view: StatusBarView): void {
    this.item.text = view.text;
    this.item.tooltip = api.markdownString(view.tooltip);
    this.item.accessibilityInformation = { label: view.ariaLabel };
    this.item.backgroundColor = view.warning ? api.themeColor("statusBarItem.warningBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
