import { describe, expect, it } from "vitest";
import {
  answerDocumentName,
  escapeMarkdown,
  failedStatusBar,
  formatStatusBar,
  renderAnswer,
  selectionRange,
  statusReportItems,
  tierLabel,
} from "../../src/format";

describe("tierLabel", () => {
  it.each([
    ["qwen2.5-coder-0.5b", "0.5B"],
    ["qwen2.5-coder-1.5b", "1.5B"],
    ["smollm2-135m", "135M"],
    ["qwen2.5-coder-0.5b-q8", "0.5B"],
    ["my-custom-model", "my-custom-model"],
    [undefined, "Gearshift"],
    ["a-very-long-model-name-without-a-size", "a-very-long-model-name-…"],
  ])("%s → %s", (tier, expected) => {
    expect(tierLabel(tier)).toBe(expected);
  });
});

describe("formatStatusBar", () => {
  it("shows tier and rounded tok/s when ready", () => {
    const view = formatStatusBar({ state: "ready", tier: "qwen2.5-coder-0.5b", tokensPerSecond: 41.6 });
    expect(view.text).toBe("$(zap) 0.5B · 42 tok/s");
    expect(view.warning).toBe(false);
  });

  it("says cached instead of a meaningless speed on a cache hit", () => {
    const view = formatStatusBar({ state: "ready", tier: "smollm2-135m", tokensPerSecond: 9000, cacheHit: true });
    expect(view.text).toBe("$(zap) 135M · cached");
    expect(view.tooltip).toContain("cache hit");
  });

  it("spins while loading", () => {
    expect(formatStatusBar({ state: "loading", tier: "qwen2.5-coder-0.5b" }).text).toBe("$(sync~spin) 0.5B");
  });

  it("warns on error and explains why in the tooltip", () => {
    const view = formatStatusBar({ state: "error", tier: "qwen2.5-coder-0.5b", message: "model file missing" });
    expect(view.warning).toBe(true);
    expect(view.text).toBe("$(warning) 0.5B");
    expect(view.tooltip).toContain("model file missing");
  });

  it("puts reason, first-token time, cache and confidence in the tooltip", () => {
    const view = formatStatusBar({
      state: "ready",
      tier: "smollm2-135m",
      tokensPerSecond: 55.25,
      timeToFirstTokenMs: 84.6,
      cacheHit: false,
      confidence: 0.714,
      reason: "downshift: 3 requests under 40 tok/s",
    });
    expect(view.tooltip).toContain("55.3 tok/s · first token 85 ms · cache miss · confidence 71%");
    expect(view.tooltip).toContain("Reason: downshift: 3 requests under 40 tok/s");
    expect(view.ariaLabel).toBe(
      "Gearshift smollm2-135m ready, 55.3 tok/s, first token 85 ms, cache miss, confidence 71%, downshift: 3 requests under 40 tok/s",
    );
  });

  it("keeps the last measured speed when a request generated nothing", () => {
    expect(formatStatusBar({ state: "ready", tier: "smollm2-135m", tokensPerSecond: 0 }, 39.7).text).toBe(
      "$(zap) 135M · 40 tok/s",
    );
    expect(formatStatusBar({ state: "ready", tier: "smollm2-135m", tokensPerSecond: 0 }).text).toBe("$(zap) 135M");
  });

  it("tolerates nulls for missing figures", () => {
    const view = formatStatusBar({ state: "ready", tier: "smollm2-135m", tokensPerSecond: null, confidence: null });
    expect(view.text).toBe("$(zap) 135M");
  });

  it("escapes markdown in server text", () => {
    expect(escapeMarkdown("a*b_[c]")).toBe("a\\*b\\_\\[c\\]");
    expect(failedStatusBar("spawn gearshift ENOENT").tooltip).toContain("spawn gearshift ENOENT");
  });
});

describe("statusReportItems", () => {
  it("says a request that generated nothing generated nothing, and gives the last real speed", () => {
    const report = { state: "ready" as const, tier: "qwen2.5-coder-0.5b", tokensPerSecond: 0, hidden: "removed by bracket_scope" };
    const text = statusReportItems(report, 35.3)
      .map((i) => `${i.label}: ${i.description}`)
      .join("\n");
    expect(text).not.toContain("0.0 tok/s");
    expect(text).toContain("Last completion: nothing generated (removed by bracket_scope)");
    expect(text).toContain("Last generated suggestion: 35.3 tok/s");
    const cached = statusReportItems({ ...report, hidden: undefined, cacheHit: true }).map((i) => i.description);
    expect(cached).toContain("nothing generated (from the cache)");
  });

  it("summarises tier, speed, guard and the cloud meter", () => {
    const items = statusReportItems({
      state: "ready",
      tier: "qwen2.5-coder-0.5b",
      tokensPerSecond: 44.4,
      loadedModels: ["qwen2.5-coder-0.5b", "smollm2-135m"],
      guard: { rung: 1, probing: false, rungs: [{ name: "smollm2-135m", medianTokS: 38 }] },
      cloud: { requests: 2, inputTokens: 1200, outputTokens: 300, costUsd: 0.0081 },
    });
    const text = items.map((i) => `${i.label}: ${i.description}`).join("\n");
    expect(text).toContain("Tier: qwen2.5-coder-0.5b (ready)");
    expect(text).toContain("44.4 tok/s");
    expect(text).toContain("qwen2.5-coder-0.5b, smollm2-135m");
    expect(text).toContain("Guard rung: 1");
    expect(text).toContain("Guard rungs: name smollm2-135m, medianTokS 38");
    expect(text).toContain("2 requests · 1200 in / 300 out tokens · $0.0081");
  });

  it("shows a model error first after the tier", () => {
    const items = statusReportItems({ tier: "x", state: "error", modelError: "no such model" });
    expect(items[1]).toEqual({ label: "$(error) Model error", description: "no such model" });
  });
});

describe("renderAnswer", () => {
  it("labels a local answer", () => {
    const md = renderAnswer({ title: "Explain", markdown: "It adds.", source: "local", model: "qwen2.5-coder-0.5b" });
    expect(md).toBe("# Explain\n\n> **Local** answer from `qwen2.5-coder-0.5b`: nothing left this machine.\n\nIt adds.\n");
  });

  it("labels a cloud answer", () => {
    const md = renderAnswer({ title: "Review", markdown: "Race.", source: "cloud", model: "claude-sonnet-4-5" });
    expect(md).toContain("**Cloud** answer from `claude-sonnet-4-5`");
  });

  it("shows the title once: the server's own title line is dropped, its reason kept", () => {
    const local = renderAnswer({
      title: "Explanation",
      markdown: "**Explanation** · local (qwen2.5-coder-0.5b)\n\nIt sums the items.",
      source: "local",
      model: "qwen2.5-coder-0.5b",
    });
    expect(local).toBe(
      "# Explanation\n\n> **Local** answer from `qwen2.5-coder-0.5b`: nothing left this machine.\n\nIt sums the items.\n",
    );
    const cloud = renderAnswer({
      title: "Data race review",
      markdown: "**Data race review** · ☁ cloud (claude-sonnet-4-6): critical data-race review\n\nNo race.\n\n> note",
      source: "cloud",
      model: "claude-sonnet-4-6",
    });
    expect(cloud.match(/Data race review/g)).toHaveLength(1);
    expect(cloud).toContain("sent to the cloud model (critical data-race review).");
    expect(cloud).toContain("No race.\n\n> note\n");
  });

  it("keeps a first bold line that is not the title", () => {
    const md = renderAnswer({ title: "Explain", markdown: "**Note** · x\n\nBody.", source: "local", model: "m" });
    expect(md).toContain("**Note** · x");
  });

  it("names the document safely", () => {
    expect(answerDocumentName({ title: "Explain: a/b?", markdown: "", source: "cloud", model: "m" }, 3)).toBe(
      "Explain a b (cloud) 3.md",
    );
  });
});

describe("selectionRange", () => {
  it("sends the selection as it is", () => {
    const range = selectionRange({ start: { line: 1, character: 2 }, end: { line: 3, character: 4 } }, () => 99);
    expect(range).toEqual({ start: { line: 1, character: 2 }, end: { line: 3, character: 4 } });
  });

  it("sends the whole line for an empty selection", () => {
    const range = selectionRange({ start: { line: 5, character: 3 }, end: { line: 5, character: 3 } }, (l) => l * 10);
    expect(range).toEqual({ start: { line: 5, character: 0 }, end: { line: 5, character: 50 } });
  });
});
