/**
 * Which command starts the Gearshift server.  Pure: the file system and the
 * environment are passed in, so every rule is unit-tested without VS Code.
 *
 * Order: `gearshift.serverPath`, `gearshift.pythonPath`, the first workspace
 * folder with a `.venv` holding `gearshift` (then its `python`), and last
 * `gearshift` on PATH.
 */

import * as path from "node:path";

export interface ServerCommandSettings {
  /** `gearshift.serverPath`: the `gearshift` executable. */
  serverPath?: string | null;
  /** `gearshift.pythonPath`: an interpreter with `lsp_server` importable. */
  pythonPath?: string | null;
  /** `gearshift.serverArgs`: appended after `serve`. */
  serverArgs?: readonly string[] | null;
}

export interface ResolveEnvironment {
  /** Workspace folder paths, first one first. */
  workspaceFolders: readonly string[];
  /** The user's home directory, for `~` expansion. */
  homeDir: string;
  /** `process.platform`. */
  platform: NodeJS.Platform;
  /** The PATH environment variable. */
  pathEnv?: string;
  /** Whether a regular, executable file exists at this path. */
  isExecutable: (file: string) => boolean;
}

export interface ServerCommand {
  command: string;
  args: string[];
  /** Working directory for the server: the workspace folder the command was found in, or the first one. */
  cwd?: string;
  /** Human-readable origin, for the log ("setting gearshift.serverPath", ...). */
  source: string;
}

/** Expand `~`, `${workspaceFolder}` and `${userHome}` as VS Code users expect in path settings. */
export function expandPath(value: string, env: Pick<ResolveEnvironment, "homeDir" | "workspaceFolders">): string {
  let out = value.trim();
  const folder = env.workspaceFolders[0];
  if (folder !== undefined) {
    out = out.replace(/\$\{workspaceFolder\}/g, folder);
  }
  out = out.replace(/\$\{userHome\}/g, env.homeDir);
  if (out === "~" || out.startsWith("~/") || out.startsWith("~\\")) {
    out = env.homeDir + out.slice(1);
  }
  return out;
}

function venvBin(platform: NodeJS.Platform, folder: string, name: string): string {
  const p = platform === "win32" ? path.win32 : path.posix;
  return platform === "win32" ? p.join(folder, ".venv", "Scripts", `${name}.exe`) : p.join(folder, ".venv", "bin", name);
}

/** Find `name` in PATH; undefined when absent. */
export function whichSync(name: string, env: Pick<ResolveEnvironment, "pathEnv" | "platform" | "isExecutable">): string | undefined {
  const p = env.platform === "win32" ? path.win32 : path.posix;
  const separator = env.platform === "win32" ? ";" : ":";
  const suffixes = env.platform === "win32" ? [".exe", ".cmd", ".bat", ""] : [""];
  for (const dir of (env.pathEnv ?? "").split(separator)) {
    if (dir === "") {
      continue;
    }
    for (const suffix of suffixes) {
      const candidate = p.join(dir, name + suffix);
      if (env.isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

export function resolveServerCommand(settings: ServerCommandSettings, env: ResolveEnvironment): ServerCommand {
  const extra = [...(settings.serverArgs ?? [])];
  const cwd = env.workspaceFolders[0];
  const serverPath = settings.serverPath?.trim();
  if (serverPath) {
    return { command: expandPath(serverPath, env), args: ["serve", ...extra], cwd, source: "setting gearshift.serverPath" };
  }
  const pythonPath = settings.pythonPath?.trim();
  if (pythonPath) {
    return {
      command: expandPath(pythonPath, env),
      args: ["-m", "lsp_server", "serve", ...extra],
      cwd,
      source: "setting gearshift.pythonPath",
    };
  }
  for (const folder of env.workspaceFolders) {
    const gearshift = venvBin(env.platform, folder, "gearshift");
    if (env.isExecutable(gearshift)) {
      return { command: gearshift, args: ["serve", ...extra], cwd: folder, source: `workspace virtual environment (${folder})` };
    }
  }
  for (const folder of env.workspaceFolders) {
    const python = venvBin(env.platform, folder, "python");
    if (env.isExecutable(python)) {
      return {
        command: python,
        args: ["-m", "lsp_server", "serve", ...extra],
        cwd: folder,
        source: `workspace virtual environment (${folder})`,
      };
    }
  }
  const onPath = whichSync("gearshift", env);
  return {
    command: onPath ?? "gearshift",
    args: ["serve", ...extra],
    cwd,
    source: onPath ? "gearshift on PATH" : "gearshift on PATH (not found: set gearshift.serverPath or gearshift.pythonPath)",
  };
}

/** The command line as one shell-like string, for logs and error messages. */
export function describeCommand(cmd: Pick<ServerCommand, "command" | "args">): string {
  const quote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  return [cmd.command, ...cmd.args].map(quote).join(" ");
}
