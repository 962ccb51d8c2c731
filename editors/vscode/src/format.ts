/**
 * Text shown to the user: the status bar item, the status report, answer
 * documents and selection ranges.  Pure functions over the wire types.
 */

import type { AnswerResult, StatusParams, StatusReport, WirePosition, WireRange } from "./protocol";

/** A short label for a model tier: "qwen2.5-coder-0.5b" → "0.5B", "smollm2-135m" → "135M". */
export function tierLabel(tier: string | undefined | null): string {
  if (!tier) {
    return "Gearshift";
  }
  const sizes = [...tier.matchAll(/(\d+(?:\.\d+)?)([bm])(?![a-z0-9])/gi)];
  const last = sizes.at(-1);
  if (last?.[1] !== undefined && last[2] !== undefined) {
    return `${last[1]}${last[2].toUpperCase()}`;
  }
  return tier.length > 24 ? `${tier.slice(0, 23)}…` : tier;
}

export interface StatusBarView {
  text: string;
  /** Markdown for the tooltip. */
  tooltip: string;
  /** Whether the item should carry the warning background. */
  warning: boolean;
  /** Plain text for screen readers (the tooltip is markdown). */
  ariaLabel: string;
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Escape text for a markdown tooltip so model names and reasons never become markup. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, "\\$&");
}

/**
 * `lastSpeed` is the last positive tok/s measured on this tier: a request that generated
 * nothing (cancelled, hidden) reports 0 tok/s, which says nothing about the model's speed.
 */
export function formatStatusBar(status: StatusParams, lastSpeed?: number): StatusBarView {
  const label = tierLabel(status.tier);
  const lines: string[] = [];
  const tierName = status.tier ? escapeMarkdown(status.tier) : "no model";
  lines.push(`**Gearshift** · ${tierName} · ${status.state}`);
  const facts: string[] = [];
  if (isNumber(status.tokensPerSecond)) {
    facts.push(`${status.tokensPerSecond.toFixed(1)} tok/s`);
  }
  if (isNumber(status.timeToFirstTokenMs)) {
    facts.push(`first token ${Math.round(status.timeToFirstTokenMs)} ms`);
  }
  if (typeof status.cacheHit === "boolean") {
    facts.push(status.cacheHit ? "cache hit" : "cache miss");
  }
  if (isNumber(status.confidence)) {
    facts.push(`confidence ${Math.round(status.confidence * 100)}%`);
  }
  if (facts.length > 0) {
    lines.push(facts.join(" · "));
  }
  if (status.reason) {
    lines.push(`Reason: ${escapeMarkdown(status.reason)}`);
  }
  if (status.message) {
    lines.push(escapeMarkdown(status.message));
  }
  lines.push("Click for details.");
  const tooltip = lines.join("\n\n");
  const spoken = [`Gearshift ${status.tier ?? ""} ${status.state}`.replace(/\s+/g, " "), ...facts];
  if (status.reason) {
    spoken.push(status.reason);
  }
  if (status.message) {
    spoken.push(status.message);
  }
  const ariaLabel = spoken.join(", ");

  switch (status.state) {
    case "loading":
      return { text: `$(sync~spin) ${label}`, tooltip, warning: false, ariaLabel };
    case "error":
      return { text: `$(warning) ${label}`, tooltip, warning: true, ariaLabel };
    default: {
      let text = `$(zap) ${label}`;
      const speed = isNumber(status.tokensPerSecond) && status.tokensPerSecond > 0 ? status.tokensPerSecond : lastSpeed;
      if (status.cacheHit === true) {
        text += " · cached";
      } else if (isNumber(speed) && speed > 0) {
        text += ` · ${Math.round(speed)} tok/s`;
      }
      return { text, tooltip, warning: false, ariaLabel };
    }
  }
}

/** Shown before the server has said anything, and when it could not be started. */
export function startingStatusBar(): StatusBarView {
  return {
    text: "$(sync~spin) Gearshift",
    tooltip: "**Gearshift** · starting the server…",
    warning: false,
    ariaLabel: "Gearshift starting the server",
  };
}
export function failedStatusBar(error: string): StatusBarView {
  return {
    text: "$(warning) Gearshift",
    tooltip: `**Gearshift** · the server is not running\n\n${escapeMarkdown(error)}\n\nClick for details.`,
    warning: true,
    ariaLabel: `Gearshift server not running, ${error}`,
  };
}

export interface ReportItem {
  label: string;
  description: string;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) {
    return "—";
  }
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }
  if (typeof value === "string" || typeof value === "boolean") {
    return String(value);
  }
  if (Array.isArray(value)) {
    const nested = value.some((v) => typeof v === "object" && v !== null);
    return value.map(describeValue).join(nested ? "; " : ", ") || "none";
  }
  if (typeof value === "object") {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k} ${describeValue(v)}`)
      .join(", ");
  }
  return JSON.stringify(value);
}

/**
 * Lines of the `gearshift.status` report for a quick pick, most useful first.  `lastSpeed` is the
 * last positive tok/s on this tier (the status bar's): a request that generated nothing (an accept,
 * a cache hit, a suggestion the filters removed) reports 0 tok/s, which is not the model's speed.
 */
export function statusReportItems(report: StatusReport, lastSpeed?: number): ReportItem[] {
  const items: ReportItem[] = [];
  items.push({ label: "$(zap) Tier", description: `${report.tier ?? "—"} (${report.state ?? "unknown"})` });
  if (report.modelError) {
    items.push({ label: "$(error) Model error", description: report.modelError });
  }
  if (isNumber(report.tokensPerSecond) && report.tokensPerSecond > 0) {
    items.push({ label: "$(dashboard) Last completion", description: `${report.tokensPerSecond.toFixed(1)} tok/s` });
  } else if (isNumber(report.tokensPerSecond)) {
    const why = report.cacheHit === true ? "from the cache" : typeof report.hidden === "string" ? report.hidden : "";
    items.push({ label: "$(dashboard) Last completion", description: `nothing generated${why ? ` (${why})` : ""}` });
    if (isNumber(lastSpeed) && lastSpeed > 0) {
      items.push({ label: "$(dashboard) Last generated suggestion", description: `${lastSpeed.toFixed(1)} tok/s` });
    }
  }
  if (isNumber(report.timeToFirstTokenMs)) {
    items.push({ label: "$(watch) Time to first token", description: `${Math.round(report.timeToFirstTokenMs)} ms` });
  }
  if (typeof report.cacheHit === "boolean") {
    items.push({ label: "$(database) Cache", description: report.cacheHit ? "hit" : "miss" });
  }
  if (isNumber(report.confidence)) {
    items.push({ label: "$(pulse) Confidence", description: `${Math.round(report.confidence * 100)}%` });
  }
  if (report.reason) {
    items.push({ label: "$(arrow-swap) Last shift", description: report.reason });
  }
  if (Array.isArray(report.loadedModels)) {
    items.push({ label: "$(layers) Loaded models", description: describeValue(report.loadedModels) });
  }
  if (report.guard && typeof report.guard === "object") {
    for (const [key, value] of Object.entries(report.guard)) {
      items.push({ label: `$(shield) Guard ${key}`, description: describeValue(value) });
    }
  }
  if (report.cloud) {
    const c = report.cloud;
    const cost = isNumber(c.costUsd) ? `$${c.costUsd.toFixed(4)}` : "—";
    items.push({
      label: "$(cloud) Cloud",
      description: `${c.requests ?? 0} requests · ${c.inputTokens ?? 0} in / ${c.outputTokens ?? 0} out tokens · ${cost}`,
    });
  }
  return items;
}

/**
 * The markdown document shown for an explain/review/escalate answer, labelled local or cloud.
 * The server's markdown starts with its own `**title** · label` line (for editors that show it as
 * it is); here the heading and the banner say that, so the line is dropped and only the route's
 * reason, when it gives one, moves into the banner.
 */
export function renderAnswer(answer: AnswerResult): string {
  const title = answer.title.trim() || "Gearshift";
  const model = answer.model ? ` \`${answer.model.replace(/`/g, "")}\`` : "";
  let body = answer.markdown.trim();
  let reason = "";
  const header = /^\*\*(.*?)\*\* · (.*)(?:\n|$)/.exec(body);
  if (header && header[1]?.trim() === title) {
    body = body.slice(header[0].length).trim();
    reason = /\): (.+)$/.exec(header[2] ?? "")?.[1]?.trim() ?? "";
  }
  const why = reason ? ` (${reason})` : "";
  const label =
    answer.source === "cloud"
      ? `> **Cloud** answer from${model}: the selection was sent to the cloud model${why}.`
      : `> **Local** answer from${model}: nothing left this machine${why}.`;
  return `# ${title}\n\n${label}\n\n${body}\n`;
}

/** A file-name-safe title for the answer document's tab. */
export function answerDocumentName(answer: AnswerResult, counter: number): string {
  const base = (answer.title.trim() || "Answer").replace(/[^\w .,()-]+/g, " ").replace(/\s+/g, " ").trim().slice(0, 60);
  return `${base} (${answer.source}) ${counter}.md`;
}

export interface SelectionLike {
  start: WirePosition;
  end: WirePosition;
}

/**
 * The range to send for a selection: the selection itself, or the whole current
 * line when nothing is selected (explaining "this line" is what a person means).
 */
export function selectionRange(selection: SelectionLike, lineLength: (line: number) => number): WireRange {
  const { start, end } = selection;
  if (start.line === end.line && start.character === end.character) {
    return { start: { line: start.line, character: 0 }, end: { line: start.line, character: lineLength(start.line) } };
  }
  return { start: { line: start.line, character: start.character }, end: { line: end.line, character: end.character } };
}
