import { describe, expect, it } from "vitest";
import {
  type ResolveEnvironment,
  describeCommand,
  expandPath,
  resolveServerCommand,
  whichSync,
} from "../../src/serverCommand";

function env(executables: string[], overrides: Partial<ResolveEnvironment> = {}): ResolveEnvironment {
  const present = new Set(executables);
  return {
    workspaceFolders: ["/ws"],
    homeDir: "/home/me",
    platform: "linux",
    pathEnv: "/usr/local/bin:/usr/bin",
    isExecutable: (file) => present.has(file),
    ...overrides,
  };
}

describe("resolveServerCommand", () => {
  it.each([
    {
      name: "serverPath wins over everything",
      settings: { serverPath: "/opt/gs/bin/gearshift", pythonPath: "/usr/bin/python3" },
      executables: ["/ws/.venv/bin/gearshift"],
      expected: { command: "/opt/gs/bin/gearshift", args: ["serve"], source: "setting gearshift.serverPath" },
    },
    {
      name: "pythonPath runs the module",
      settings: { pythonPath: "/usr/bin/python3" },
      executables: ["/ws/.venv/bin/gearshift"],
      expected: { command: "/usr/bin/python3", args: ["-m", "lsp_server", "serve"], source: "setting gearshift.pythonPath" },
    },
    {
      name: "workspace .venv gearshift",
      settings: {},
      executables: ["/ws/.venv/bin/gearshift", "/ws/.venv/bin/python", "/usr/bin/gearshift"],
      expected: { command: "/ws/.venv/bin/gearshift", args: ["serve"], cwd: "/ws" },
    },
    {
      name: "workspace .venv python when the script is missing",
      settings: {},
      executables: ["/ws/.venv/bin/python", "/usr/bin/gearshift"],
      expected: { command: "/ws/.venv/bin/python", args: ["-m", "lsp_server", "serve"], cwd: "/ws" },
    },
    {
      name: "gearshift on PATH",
      settings: {},
      executables: ["/usr/bin/gearshift"],
      expected: { command: "/usr/bin/gearshift", args: ["serve"], source: "gearshift on PATH" },
    },
    {
      name: "bare gearshift when nothing is found",
      settings: {},
      executables: [],
      expected: { command: "gearshift", args: ["serve"] },
    },
    {
      name: "blank settings are ignored",
      settings: { serverPath: "  ", pythonPath: "" },
      executables: ["/usr/bin/gearshift"],
      expected: { command: "/usr/bin/gearshift" },
    },
    {
      name: "extra arguments follow serve",
      settings: { serverPath: "gearshift", serverArgs: ["--log-level", "DEBUG"] },
      executables: [],
      expected: { args: ["serve", "--log-level", "DEBUG"] },
    },
  ])("$name", ({ settings, executables, expected }) => {
    expect(resolveServerCommand(settings, env(executables))).toMatchObject(expected);
  });

  it("uses the second workspace folder's venv when the first has none", () => {
    const result = resolveServerCommand({}, env(["/b/.venv/bin/gearshift"], { workspaceFolders: ["/a", "/b"] }));
    expect(result).toMatchObject({ command: "/b/.venv/bin/gearshift", cwd: "/b" });
  });

  it("says how to fix a missing server", () => {
    expect(resolveServerCommand({}, env([])).source).toMatch(/gearshift\.serverPath/);
  });

  it("finds Windows virtual environments", () => {
    const result = resolveServerCommand(
      {},
      env(["C:\\ws\\.venv\\Scripts\\python.exe"], { platform: "win32", workspaceFolders: ["C:\\ws"], pathEnv: "" }),
    );
    expect(result).toMatchObject({ command: "C:\\ws\\.venv\\Scripts\\python.exe", args: ["-m", "lsp_server", "serve"] });
  });

  it("expands ~ and ${workspaceFolder} in path settings", () => {
    expect(resolveServerCommand({ pythonPath: "${workspaceFolder}/.venv/bin/python" }, env([])).command).toBe(
      "/ws/.venv/bin/python",
    );
    expect(resolveServerCommand({ serverPath: "~/bin/gearshift" }, env([])).command).toBe("/home/me/bin/gearshift");
  });

  it("runs without a workspace folder", () => {
    const result = resolveServerCommand({}, env(["/usr/bin/gearshift"], { workspaceFolders: [] }));
    expect(result.cwd).toBeUndefined();
    expect(result.command).toBe("/usr/bin/gearshift");
  });
});

describe("expandPath", () => {
  it.each([
    ["~", "/home/me"],
    ["~/x", "/home/me/x"],
    ["${userHome}/x", "/home/me/x"],
    ["a~b", "a~b"],
    [" /trimmed ", "/trimmed"],
  ])("%s → %s", (input, expected) => {
    expect(expandPath(input, { homeDir: "/home/me", workspaceFolders: [] })).toBe(expected);
  });
});

describe("whichSync", () => {
  it("skips empty PATH entries and finds the first match", () => {
    const found = whichSync("gearshift", {
      pathEnv: "::/a:/b",
      platform: "linux",
      isExecutable: (f) => f === "/b/gearshift",
    });
    expect(found).toBe("/b/gearshift");
  });
});

describe("describeCommand", () => {
  it("quotes only what needs quoting", () => {
    expect(describeCommand({ command: "/my dir/python", args: ["-m", "lsp_server", "serve"] })).toBe(
      "'/my dir/python' -m lsp_server serve",
    );
  });
});
