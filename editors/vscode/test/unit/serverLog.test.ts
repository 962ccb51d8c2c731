import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { type LogLevel, parseServerLogLine, pipeServerStderr } from "../../src/serverLog";

describe("parseServerLogLine", () => {
  it("reads the level the server logged at and drops its timestamp", () => {
    expect(
      parseServerLogLine("2026-12-02 14:26:54,241 INFO lsp_server.inference.tiers: loading model qwen2.5-coder-0.5b"),
    ).toEqual({ level: "info", message: "lsp_server.inference.tiers: loading model qwen2.5-coder-0.5b" });
    expect(parseServerLogLine("2026-12-02 14:26:54,241 WARNING pygls.protocol.json_rpc: Ignoring").level).toBe("warn");
    expect(parseServerLogLine("2026-12-02 14:26:54,241 DEBUG x: y").level).toBe("debug");
    expect(parseServerLogLine("2026-12-02 14:26:54,241 ERROR x: y").level).toBe("error");
    expect(parseServerLogLine("2026-12-02 14:26:54,241 CRITICAL x: y").level).toBe("error");
  });

  it("gives a line without a prefix the level of the line before it, or error before any", () => {
    expect(parseServerLogLine('  File "x.py", line 1', "error")).toEqual({ level: "error", message: '  File "x.py", line 1' });
    expect(parseServerLogLine("second line of an info message", "info").level).toBe("info");
    expect(parseServerLogLine("Traceback (most recent call last):").level).toBe("error");
  });
});

describe("pipeServerStderr", () => {
  it("writes each stderr line to the channel at its level", async () => {
    const written: [LogLevel, string][] = [];
    const channel = Object.fromEntries(
      (["trace", "debug", "info", "warn", "error"] as const).map((level) => [
        level,
        (message: string) => written.push([level, message]),
      ]),
    );
    const input = new PassThrough();
    pipeServerStderr(input, channel as never);
    input.end(
      [
        "2026-12-02 14:26:54,241 INFO lsp_server.inference.engine: loaded qwen2.5-coder-0.5b",
        "2026-12-02 14:26:55,000 ERROR pygls.protocol.json_rpc: Exception occurred",
        "Traceback (most recent call last):",
        "2026-12-02 14:26:56,000 INFO lsp_server.server: ready",
        "",
      ].join("\n"),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(written).toEqual([
      ["info", "lsp_server.inference.engine: loaded qwen2.5-coder-0.5b"],
      ["error", "pygls.protocol.json_rpc: Exception occurred"],
      ["error", "Traceback (most recent call last):"],
      ["info", "lsp_server.server: ready"],
    ]);
  });
});
