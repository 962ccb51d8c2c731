import { beforeEach, describe, expect, it, vi } from "vitest";
import { AnswerView } from "../../src/answerView";
import {
  type CommandContext,
  explainSelection,
  presentResult,
  refactorSelection,
  runServerCommand,
  showStatus,
} from "../../src/commands";
import type { GearshiftConnection } from "../../src/connection";
import * as api from "../../src/vscodeapi";
import * as fake from "./fakeVscodeApi";

vi.mock("../../src/vscodeapi", () => import("./fakeVscodeApi"));

const ANSWER = { title: "Explain", markdown: "Adds two numbers.", source: "local", model: "qwen2.5-coder-0.5b" };

function context(execute: GearshiftConnection["executeCommand"] | undefined) {
  const log = { info: vi.fn(), error: vi.fn(), show: vi.fn() };
  const answers = { show: vi.fn(() => Promise.resolve()) };
  const connection = execute ? { executeCommand: vi.fn(execute) } : undefined;
  const ctx: CommandContext = { connection: () => connection, answers, log };
  return { ctx, log, answers, connection };
}

beforeEach(() => {
  fake.resetFake();
  vi.mocked(api.activeTextEditor).mockReturnValue(
    fake.fakeEditor("file:///ws/a.py", ["def add(a, b):", "    return a + b"], [0, 0], [1, 16]) as never,
  );
});

describe("explainSelection", () => {
  it("sends the selection to gearshift.explain and shows the answer", async () => {
    const { ctx, answers, connection } = context(() => Promise.resolve(ANSWER));
    await explainSelection(ctx);
    expect(connection!.executeCommand).toHaveBeenCalledWith(
      "gearshift.explain",
      [{ uri: "file:///ws/a.py", range: { start: { line: 0, character: 0 }, end: { line: 1, character: 16 } } }],
      expect.anything(),
      expect.any(Function),
    );
    expect(answers.show).toHaveBeenCalledWith(ANSWER);
    expect(api.showInformationMessage).toHaveBeenCalledWith(
      "Answered locally by qwen2.5-coder-0.5b.",
      "Ask the Cloud Model",
    );
  });

  it("offers escalation that runs gearshift.escalate", async () => {
    vi.mocked(api.showInformationMessage).mockResolvedValue("Ask the Cloud Model");
    const { ctx } = context(() => Promise.resolve(ANSWER));
    await explainSelection(ctx);
    await vi.waitFor(() => {
      expect(api.executeCommand).toHaveBeenCalledWith("gearshift.escalate");
    });
  });

  it("does not offer escalation when the cloud is off or has no API key", async () => {
    const status = { state: "ready", tier: "qwen2.5-coder-0.5b", cloud: { requests: 0, available: false } };
    const { ctx } = context((command) => Promise.resolve(command === "gearshift.status" ? status : ANSWER));
    await explainSelection(ctx);
    expect(api.showInformationMessage).toHaveBeenLastCalledWith(
      "Answered locally by qwen2.5-coder-0.5b; no cloud API key (gearshift.cloud.apiKey or ANTHROPIC_API_KEY).",
    );

    vi.mocked(api.showInformationMessage).mockClear();
    vi.mocked(api.getConfiguration).mockReturnValue({ get: (key: string) => key === "cloud.localOnly" } as never);
    const local = context(() => Promise.resolve(ANSWER));
    await explainSelection(local.ctx);
    expect(api.showInformationMessage).toHaveBeenCalledWith(
      "Answered locally by qwen2.5-coder-0.5b; the cloud is off (gearshift.cloud.localOnly).",
    );
    expect(local.connection!.executeCommand).not.toHaveBeenCalledWith("gearshift.status", []);
  });

  it("does not offer escalation for a cloud answer", async () => {
    const { ctx, answers } = context(() => Promise.resolve({ ...ANSWER, source: "cloud", model: "claude" }));
    await explainSelection(ctx);
    expect(answers.show).toHaveBeenCalled();
    expect(api.showInformationMessage).not.toHaveBeenCalled();
  });

  it("explains the current line when nothing is selected", async () => {
    vi.mocked(api.activeTextEditor).mockReturnValue(
      fake.fakeEditor("file:///ws/a.py", ["x = 1", "y = 22"], [1, 2]) as never,
    );
    const { ctx, connection } = context(() => Promise.resolve(ANSWER));
    await explainSelection(ctx);
    const args = vi.mocked(connection!.executeCommand).mock.calls[0]![1];
    expect(args).toEqual([{ uri: "file:///ws/a.py", range: { start: { line: 1, character: 0 }, end: { line: 1, character: 6 } } }]);
  });

  it("warns without an editor", async () => {
    vi.mocked(api.activeTextEditor).mockReturnValue(undefined);
    const { ctx, connection } = context(() => Promise.resolve(ANSWER));
    await explainSelection(ctx);
    expect(connection!.executeCommand).not.toHaveBeenCalled();
    expect(api.showWarningMessage).toHaveBeenCalled();
  });

  it("reports the server's $/progress messages", async () => {
    const { ctx } = context((_c, _a, _t, onProgress) => {
      onProgress?.("reading 40 lines");
      return Promise.resolve(ANSWER);
    });
    await explainSelection(ctx);
    expect(fake.progressReports).toEqual([{ title: "Gearshift: explaining…", message: "reading 40 lines" }]);
  });
});

describe("runServerCommand", () => {
  it("says the server is not running instead of failing", async () => {
    const { ctx } = context(undefined);
    expect(await runServerCommand(ctx, "gearshift.explain", [])).toBeUndefined();
    expect(api.showErrorMessage).toHaveBeenCalledWith("Gearshift: the server is not running.", "Show Output");
  });

  it("shows the server's error message", async () => {
    const { ctx, log } = context(() => Promise.reject(new Error("Selection too long (3000 tokens, limit 2048)")));
    expect(await runServerCommand(ctx, "gearshift.explain", [])).toBeUndefined();
    expect(api.showErrorMessage).toHaveBeenCalledWith("Gearshift: Selection too long (3000 tokens, limit 2048)");
    expect(log.error).toHaveBeenCalled();
  });

  it("stays quiet when the user cancelled", async () => {
    const cancelled = Object.assign(new Error("Request cancelled"), { code: -32800, name: "ResponseError" });
    const { ctx } = context(() => Promise.reject(cancelled));
    expect(await runServerCommand(ctx, "gearshift.explain", [])).toBeUndefined();
    expect(api.showErrorMessage).not.toHaveBeenCalled();
  });
});

describe("refactorSelection", () => {
  it("passes the instruction and reports the applied edit", async () => {
    vi.mocked(api.showInputBox).mockResolvedValue("  add type hints ");
    const { ctx, connection } = context(() => Promise.resolve({ applied: true, message: "Refactored 2 lines" }));
    await refactorSelection(ctx);
    expect(vi.mocked(connection!.executeCommand).mock.calls[0]!.slice(0, 2)).toEqual([
      "gearshift.refactor",
      [
        {
          uri: "file:///ws/a.py",
          range: { start: { line: 0, character: 0 }, end: { line: 1, character: 16 } },
          instruction: "add type hints",
        },
      ],
    ]);
    expect(api.showInformationMessage).toHaveBeenCalledWith("Refactored 2 lines");
  });

  it("leaves the instruction out when empty", async () => {
    vi.mocked(api.showInputBox).mockResolvedValue("");
    const { ctx, connection } = context(() => Promise.resolve({ applied: false, message: "Nothing to change" }));
    await refactorSelection(ctx);
    const [arg] = vi.mocked(connection!.executeCommand).mock.calls[0]![1] as object[];
    expect(arg).not.toHaveProperty("instruction");
    expect(api.showWarningMessage).toHaveBeenCalledWith("Nothing to change");
  });

  it("does nothing when the input box is dismissed", async () => {
    vi.mocked(api.showInputBox).mockResolvedValue(undefined);
    const { ctx, connection } = context(() => Promise.resolve({ applied: true, message: "" }));
    await refactorSelection(ctx);
    expect(connection!.executeCommand).not.toHaveBeenCalled();
  });
});

describe("presentResult", () => {
  it("shows an escalated answer without offering escalation again", async () => {
    const { ctx, answers } = context(() => Promise.resolve(undefined));
    await presentResult(ctx, "gearshift.escalate", { ...ANSWER, source: "cloud" });
    expect(answers.show).toHaveBeenCalled();
    expect(api.showInformationMessage).not.toHaveBeenCalled();
  });

  it("ignores results it does not know", async () => {
    const { ctx, answers } = context(() => Promise.resolve(undefined));
    await presentResult(ctx, "gearshift.somethingElse", { ok: true });
    expect(answers.show).not.toHaveBeenCalled();
  });
});

describe("showStatus", () => {
  it("lists the report in a quick pick and can open the full report", async () => {
    vi.mocked(api.showQuickPick).mockImplementation((items) => Promise.resolve((items as unknown[]).at(-1)) as never);
    const { ctx, log } = context(() =>
      Promise.resolve({ state: "ready", tier: "smollm2-135m", cloud: { requests: 0, costUsd: 0 } }),
    );
    await showStatus(ctx);
    const items = vi.mocked(api.showQuickPick).mock.calls[0]![0] as { label: string; description: string }[];
    expect(items[0]).toEqual({ label: "$(zap) Tier", description: "smollm2-135m (ready)" });
    expect(log.info).toHaveBeenCalledWith(expect.stringContaining('"tier": "smollm2-135m"'));
    expect(log.show).toHaveBeenCalled();
  });
});

describe("AnswerView", () => {
  it("serves the rendered answer under its own scheme and previews it beside the editor", async () => {
    const view = new AnswerView(vi.fn());
    const uri = (await view.show(ANSWER as never)) as unknown as { scheme: string; path: string };
    expect(uri.scheme).toBe("gearshift-answer");
    expect(fake.contentProviders.get("gearshift-answer")!(uri)).toContain("**Local** answer");
    expect(api.executeCommand).toHaveBeenCalledWith("markdown.showPreviewToSide", uri);
  });

  it("falls back to the markdown source when the preview is unavailable", async () => {
    vi.mocked(api.executeCommand).mockRejectedValue(new Error("command 'markdown.showPreviewToSide' not found"));
    const log = vi.fn();
    const view = new AnswerView(log);
    const uri = await view.show(ANSWER as never);
    expect(api.showDocumentBeside).toHaveBeenCalledWith(uri, "markdown");
    expect(log).toHaveBeenCalled();
  });

  it("keeps only the most recent answers", async () => {
    const view = new AnswerView(vi.fn());
    const first = (await view.show(ANSWER as never)) as unknown as { path: string };
    for (let i = 0; i < 25; i++) {
      await view.show(ANSWER as never);
    }
    expect(fake.contentProviders.get("gearshift-answer")!(first)).toBeUndefined();
  });
});
