/**
 * The extension's wiring with vscode-languageclient replaced by a recorder:
 * what it starts, what it sends at initialize and on a settings change, and
 * how server notifications and command results reach the user.
 */

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { pipeServerStderr } from "../../src/serverLog";
import * as api from "../../src/vscodeapi";
import * as fake from "./fakeVscodeApi";

vi.mock("../../src/vscodeapi", () => import("./fakeVscodeApi"));

const lc = vi.hoisted(() => {
  class FakeLanguageClient {
    static instances: FakeLanguageClient[] = [];
    state = 1; // Stopped
    notifications = new Map<string, (params: unknown) => void>();
    stateListeners: ((e: { newState: number }) => void)[] = [];
    sent: { method: unknown; params: unknown }[] = [];
    requests: { type: unknown; params: unknown; token: unknown }[] = [];
    initializeResult: unknown = { capabilities: { executeCommandProvider: { commands: ["gearshift.explain", "gearshift.escalate"] } } };
    startError: Error | undefined;
    response: unknown = undefined;
    constructor(
      public id: string,
      public name: string,
      public serverOptions: { command: string; args: string[]; options: { cwd?: string } },
      public clientOptions: {
        documentSelector: unknown;
        initializationOptions: unknown;
        stdioOptions?: { stdout: unknown; stderr: unknown };
        middleware: { executeCommand: (c: string, a: unknown[], next: (c: string, a: unknown[]) => Promise<unknown>) => Promise<unknown> };
      },
    ) {
      FakeLanguageClient.instances.push(this);
    }
    onNotification(method: string, handler: (params: unknown) => void) {
      this.notifications.set(method, handler);
      return { dispose: () => undefined };
    }
    onDidChangeState(listener: (e: { newState: number }) => void) {
      this.stateListeners.push(listener);
      return { dispose: () => undefined };
    }
    onProgress(_type: unknown, _token: unknown, _handler: unknown) {
      return { dispose: () => undefined };
    }
    start() {
      if (this.startError) {
        return Promise.reject(this.startError);
      }
      this.state = 2; // Running
      return Promise.resolve();
    }
    stop() {
      this.state = 1;
      this.stateListeners.forEach((l) => l({ newState: 1 }));
      return Promise.resolve();
    }
    dispose() {
      return Promise.resolve();
    }
    sendNotification(method: unknown, params: unknown) {
      this.sent.push({ method, params });
      return Promise.resolve();
    }
    sendRequest(type: unknown, params: unknown, token: unknown) {
      this.requests.push({ type, params, token });
      return Promise.resolve(this.response);
    }
  }
  return { FakeLanguageClient };
});

vi.mock("vscode-languageclient/node", () => ({
  LanguageClient: lc.FakeLanguageClient,
  State: { Stopped: 1, Running: 2, Starting: 3 },
  TransportKind: { stdio: 0 },
  RevealOutputChannelOn: { Debug: 0, Info: 1, Warn: 2, Error: 3, Never: 4 },
  ExecuteCommandRequest: { type: { method: "workspace/executeCommand" } },
  WorkDoneProgress: { type: {} },
  WorkDoneProgressCancelNotification: { type: { method: "window/workDoneProgress/cancel" } },
}));

const { activate, deactivate } = await import("../../src/extension");

const packageJSON = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as {
  contributes: { commands: { command: string }[]; configuration: { properties: Record<string, { default: unknown }> } };
};

let settings: Record<string, unknown>;
let configListener: ((e: { affectsConfiguration(key: string): boolean }) => unknown) | undefined;

function useSettings(overrides: Record<string, unknown>) {
  settings = {};
  for (const [key, prop] of Object.entries(packageJSON.contributes.configuration.properties)) {
    settings[key.slice("gearshift.".length)] = prop.default;
  }
  Object.assign(settings, overrides);
}

async function activated() {
  const context = { subscriptions: [] as { dispose(): unknown }[], extension: { packageJSON } };
  activate(context as never);
  await vi.waitFor(() => {
    expect(lc.FakeLanguageClient.instances.at(-1)?.state).toBe(2);
  });
  return { context, client: lc.FakeLanguageClient.instances.at(-1)! };
}

beforeEach(async () => {
  await deactivate();
  fake.resetFake();
  lc.FakeLanguageClient.instances.length = 0;
  useSettings({ pythonPath: "/work/main/.venv/bin/python" });
  vi.mocked(api.getConfiguration).mockImplementation(() => ({ get: (key: string) => settings[key] }) as never);
  vi.mocked(api.onDidChangeConfiguration).mockImplementation((listener) => {
    configListener = listener;
    return { dispose: vi.fn() };
  });
  vi.mocked(api.workspaceFolderPaths).mockReturnValue(["/ws"]);
});

describe("activate", () => {
  it("starts the configured server on every file with the server's settings", async () => {
    const { client } = await activated();
    expect(client.id).toBe("gearshift");
    expect(client.serverOptions).toMatchObject({
      command: "/work/main/.venv/bin/python",
      args: ["-m", "lsp_server", "serve"],
      options: { cwd: "/ws" },
    });
    expect(client.clientOptions.documentSelector).toEqual([{ scheme: "file" }]);
    // The server's INFO lines are not shown as errors: its stderr goes through our level parser.
    expect(client.clientOptions.stdioOptions?.stderr).toBe(pipeServerStderr);
    const init = client.clientOptions.initializationOptions as Record<string, Record<string, unknown>>;
    expect(init.models).toMatchObject({ defaultModel: "qwen2.5-coder-0.5b" });
    expect(init.completion).toMatchObject({ minConfidence: 0.25, maxTokens: 64 });
    expect(init).not.toHaveProperty("serverPath");
    expect(init).not.toHaveProperty("pythonPath");
  });

  it("registers every contributed command (escalate through the client)", async () => {
    await activated();
    const ours = [...fake.registeredCommands.keys()];
    for (const { command } of packageJSON.contributes.commands) {
      if (command === "gearshift.escalate") {
        continue; // the language client registers the server's own commands
      }
      expect(ours).toContain(command);
    }
  });

  it("shows gearshift/status in the status bar", async () => {
    const { client } = await activated();
    client.notifications.get("gearshift/status")!({ state: "ready", tier: "qwen2.5-coder-0.5b", tokensPerSecond: 42 });
    expect(fake.statusBarItems[0]!.text).toBe("$(zap) 0.5B · 42 tok/s");
    client.notifications.get("gearshift/status")!({ state: "ready", tier: "qwen2.5-coder-0.5b", tokensPerSecond: 0 });
    expect(fake.statusBarItems[0]!.text).toBe("$(zap) 0.5B · 42 tok/s");
    client.notifications.get("gearshift/status")!({ state: "error", tier: "qwen2.5-coder-0.5b", message: "no model" });
    expect(fake.statusBarItems[0]!.backgroundColor).toEqual({ id: "statusBarItem.warningBackground" });
  });

  it("sends changed settings wrapped in the gearshift section", async () => {
    const { client } = await activated();
    settings["cloud.localOnly"] = true;
    configListener!({ affectsConfiguration: (key) => key === "gearshift" || key === "gearshift.cloud.localOnly" });
    await vi.waitFor(() => {
      expect(client.sent).toHaveLength(1);
    });
    const { method, params } = client.sent[0]!;
    expect(method).toBe("workspace/didChangeConfiguration");
    expect((params as { settings: { gearshift: { cloud: { localOnly: boolean } } } }).settings.gearshift.cloud.localOnly).toBe(true);
  });

  it("restarts through gearshift.restartServer with one server at a time", async () => {
    const { client } = await activated();
    await fake.registeredCommands.get("gearshift.restartServer")!();
    expect(client.state).toBe(1);
    expect(lc.FakeLanguageClient.instances).toHaveLength(2);
    expect(lc.FakeLanguageClient.instances[1]!.state).toBe(2);
  });

  it("restarts the server when its command changes", async () => {
    await activated();
    settings.pythonPath = null;
    settings.serverPath = "/opt/gearshift";
    configListener!({ affectsConfiguration: (key) => key === "gearshift" || key === "gearshift.serverPath" });
    await vi.waitFor(() => {
      expect(lc.FakeLanguageClient.instances).toHaveLength(2);
    });
    expect(lc.FakeLanguageClient.instances[1]!.serverOptions.command).toBe("/opt/gearshift");
  });

  it.each([
    [true, true],
    [false, false],
  ])("uses the workspace .venv only in a trusted workspace (trusted=%s)", async (trusted, usesVenv) => {
    const ws = mkdtempSync(join(tmpdir(), "gearshift-ws-"));
    try {
      mkdirSync(join(ws, ".venv", "bin"), { recursive: true });
      writeFileSync(join(ws, ".venv", "bin", "gearshift"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
      useSettings({});
      vi.mocked(api.isWorkspaceTrusted).mockReturnValue(trusted);
      vi.mocked(api.workspaceFolderPaths).mockReturnValue([ws]);
      const { client } = await activated();
      expect(client.serverOptions.command === join(ws, ".venv", "bin", "gearshift")).toBe(usesVenv);
    } finally {
      rmSync(ws, { recursive: true, force: true });
    }
  });

  it("shows answers of server commands run from code actions", async () => {
    const { client } = await activated();
    const answer = { title: "Explain", markdown: "It adds.", source: "cloud", model: "claude" };
    const result = await client.clientOptions.middleware.executeCommand("gearshift.escalate", [], () => Promise.resolve(answer));
    expect(result).toBe(answer);
    expect(api.executeCommand).toHaveBeenCalledWith("markdown.showPreviewToSide", expect.objectContaining({ scheme: "gearshift-answer" }));
  });

  it("runs commands as workspace/executeCommand with a work-done token", async () => {
    const { client } = await activated();
    client.response = { state: "ready", tier: "smollm2-135m" };
    await fake.registeredCommands.get("gearshift.showStatus")!();
    expect(client.requests[0]!.params).toMatchObject({ command: "gearshift.status", arguments: [] });
    expect((client.requests[0]!.params as { workDoneToken: string }).workDoneToken).toMatch(/^gearshift-/);
  });

  it("reports a server that cannot start and offers the settings", async () => {
    const failing = lc.FakeLanguageClient.prototype.start;
    lc.FakeLanguageClient.prototype.start = () => Promise.reject(new Error("spawn /nope ENOENT"));
    try {
      const context = { subscriptions: [], extension: { packageJSON } };
      activate(context as never);
      await vi.waitFor(() => {
        expect(api.showErrorMessage).toHaveBeenCalled();
      });
      expect(vi.mocked(api.showErrorMessage).mock.calls[0]).toEqual([
        expect.stringContaining("spawn /nope ENOENT"),
        "Open Settings",
        "Show Output",
      ]);
      expect(fake.statusBarItems[0]!.text).toBe("$(warning) Gearshift");
    } finally {
      lc.FakeLanguageClient.prototype.start = failing;
    }
  });

  it("answers gearshift.escalate itself when the server does not offer it", async () => {
    const original = lc.FakeLanguageClient.prototype.start;
    lc.FakeLanguageClient.prototype.start = function (this: InstanceType<typeof lc.FakeLanguageClient>) {
      this.initializeResult = { capabilities: {} };
      return original.call(this);
    };
    try {
      await activated();
      fake.registeredCommands.get("gearshift.escalate")!();
      expect(api.showWarningMessage).toHaveBeenCalledWith("Gearshift: this server does not offer escalation to the cloud.");
    } finally {
      lc.FakeLanguageClient.prototype.start = original;
    }
  });
});
