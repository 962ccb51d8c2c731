#!/usr/bin/env node
// End-to-end: the packaged extension in a real VS Code (code-server), driven by Chromium through
// playwright-core, talking to the real Gearshift server.  Opens a Python file, types, and waits for
// ghost text (VS Code's inline suggestion), then accepts it with Tab and checks the editor text.
//
//   node test/e2e/run.mjs [--vsix gearshift.vsix] [--artifacts DIR] [--keep] [--no-explain]
//
// Then it selects the function, opens the code-action menu (Ctrl+.), picks "Gearshift: Explain
// selection" and waits for the answer's markdown preview (--no-explain skips this).
// The workspace folder's path has a space and a non-ASCII character ("gear shift é/proj"), so every
// request carries a percent-encoded file URI, as VS Code sends it on Windows for every file.
//
// Environment: CODE_SERVER (the code-server executable), CHROMIUM (default /usr/bin/chromium),
// GEARSHIFT_PYTHON (default <repo>/.venv/bin/python), GEARSHIFT_E2E_MODEL (default qwen2.5-coder-0.5b),
// GEARSHIFT_E2E_TIMEOUT_S (default 240), GEARSHIFT_SERVER_PATH (a `gearshift` executable to start
// instead of `GEARSHIFT_PYTHON -m lsp_server serve`), GEARSHIFT_SERVER_ROOT (the directory holding the
// lsp_server package to run, default this repository), GEARSHIFT_E2E_LOG_LEVEL (server log level, INFO).
// Prints one JSON line with the result; exit status 0 when ghost text appeared and was accepted
// (and the explanation was shown),
// 1 when it did not, 2 when the set-up is missing (the pytest wrapper skips on 2).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const extensionRoot = resolve(here, "..", "..");
const repoRoot = resolve(extensionRoot, "..", "..");

const { values: opts } = parseArgs({
  options: {
    vsix: { type: "string", default: join(extensionRoot, "gearshift.vsix") },
    artifacts: { type: "string", default: join(here, "artifacts") },
    keep: { type: "boolean", default: false },
    "no-explain": { type: "boolean", default: false },
  },
});

const MODEL = process.env.GEARSHIFT_E2E_MODEL ?? "qwen2.5-coder-0.5b";
const TIMEOUT_MS = Number(process.env.GEARSHIFT_E2E_TIMEOUT_S ?? 240) * 1000;
const started = Date.now();
const timings = {};
const log = (message) => process.stderr.write(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
const mark = (name) => {
  timings[name] = Number(((Date.now() - started) / 1000).toFixed(1));
};

function setupMissing(reason) {
  process.stdout.write(`${JSON.stringify({ ok: false, skipped: true, reason })}\n`);
  process.exit(2);
}

export function findCodeServer() {
  const candidates = [
    process.env.CODE_SERVER,
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "gearshift", "e2e", "node_modules", ".bin", "code-server"),
  ];
  for (const c of candidates) {
    if (c && existsSync(c)) {
      return c;
    }
  }
  const which = spawnSync("sh", ["-c", "command -v code-server"], { encoding: "utf8" });
  return which.status === 0 ? which.stdout.trim() : undefined;
}

const codeServer = findCodeServer();
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const python = process.env.GEARSHIFT_PYTHON ?? join(repoRoot, ".venv", "bin", "python");
if (!codeServer) {
  setupMissing("code-server not found (set CODE_SERVER or run editors/vscode/test/e2e/setup.sh)");
}
if (!existsSync(chromium)) {
  setupMissing(`Chromium not found at ${chromium} (apt-get install -y chromium, or set CHROMIUM)`);
}
if (!existsSync(python)) {
  setupMissing(`no Python for the server at ${python} (run make install, or set GEARSHIFT_PYTHON)`);
}
if (!existsSync(opts.vsix)) {
  setupMissing(`no ${opts.vsix} (run npm run package in editors/vscode)`);
}
let chromiumApi;
try {
  ({ chromium: chromiumApi } = await import("playwright-core"));
} catch {
  setupMissing("playwright-core is not installed (npm ci in editors/vscode)");
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const work = mkdtempSync(join(tmpdir(), "gearshift-vscode-e2e-"));
const userData = join(work, "user-data");
const extensionsDir = join(work, "extensions");
// A space and a non-ASCII character: VS Code sends file:///…/gear%20shift%20%C3%A9/proj/inventory.py.
const workspace = join(work, "gear shift é", "proj");
mkdirSync(join(userData, "User"), { recursive: true });
mkdirSync(join(workspace, ".vscode"), { recursive: true });
mkdirSync(opts.artifacts, { recursive: true });

// User settings: no welcome page, no trust prompt, no suggest widget on top of the ghost text.
writeFileSync(
  join(userData, "User", "settings.json"),
  JSON.stringify(
    {
      "workbench.startupEditor": "none",
      "workbench.tips.enabled": false,
      "workbench.enableExperiments": false,
      "security.workspace.trust.enabled": false,
      "telemetry.telemetryLevel": "off",
      "update.mode": "none",
      "extensions.autoUpdate": false,
      "extensions.autoCheckUpdates": false,
      "editor.inlineSuggest.enabled": true,
      "editor.quickSuggestions": { other: false, comments: false, strings: false },
      "editor.suggestOnTriggerCharacters": false,
      "editor.minimap.enabled": false,
      "window.commandCenter": false,
    },
    null,
    2,
  ),
);
// Workspace settings: the real server from this repository, on the small fast model.
writeFileSync(
  join(workspace, ".vscode", "settings.json"),
  JSON.stringify(
    {
      ...(process.env.GEARSHIFT_SERVER_PATH
        ? { "gearshift.serverPath": process.env.GEARSHIFT_SERVER_PATH }
        : { "gearshift.pythonPath": python }),
      "gearshift.models.defaultModel": MODEL,
      "gearshift.models.ladder": [MODEL],
      "gearshift.completion.minConfidence": 0,
      "gearshift.completion.maxTokens": 32,
      // A shared 2-core CI machine can take seconds for the first prompt: don't let the budget cut it to nothing.
      "gearshift.completion.timeBudgetMs": 15000,
      "gearshift.completion.firstAnswerMs": 15000,
      "gearshift.cloud.localOnly": true,
      "gearshift.serverArgs": ["--log-level", process.env.GEARSHIFT_E2E_LOG_LEVEL ?? "INFO"],
    },
    null,
    2,
  ),
);
const SOURCE = [
  "from dataclasses import dataclass",
  "",
  "",
  "@dataclass",
  "class Item:",
  "    name: str",
  "    price: float",
  "    quantity: int",
  "",
  "",
  "def total_value(items: list[Item]) -> float:",
  '    """Sum of price times quantity over all items."""',
  "",
].join("\n");
writeFileSync(join(workspace, "inventory.py"), SOURCE);

/** The last lines of the extension's output channel (the server's stderr lands there too). */
function extensionLogTail(lines = 80) {
  const find = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = find(path);
        if (found) {
          return found;
        }
      } else if (entry.name === "Gearshift.log") {
        return path;
      }
    }
    return undefined;
  };
  try {
    const file = find(join(userData, "logs"));
    return file ? readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines) : [];
  } catch {
    return [];
  }
}

const children = [];
async function cleanup() {
  for (const child of children) {
    if (child.exitCode === null) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
  }
  if (!opts.keep) {
    rmSync(work, { recursive: true, force: true });
  }
}

function run(cmd, args, env) {
  const result = spawnSync(cmd, args, { encoding: "utf8", env, timeout: 120_000 });
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${result.status}): ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

const env = {
  ...process.env,
  // The server runs with the workspace as its working directory: make the repo importable either way.
  // GEARSHIFT_SERVER_ROOT runs another checkout of the server (e.g. a known-good commit) with the same venv.
  PYTHONPATH: [process.env.GEARSHIFT_SERVER_ROOT ?? repoRoot, process.env.PYTHONPATH].filter(Boolean).join(":"),
  // code-server must not reach out for anything.
  CS_DISABLE_GETTING_STARTED_OVERRIDE: "1",
};

let browser;
const result = { ok: false, codeServer, chromium, model: MODEL, workspace, timings };
try {
  log(`installing ${opts.vsix} into code-server (${codeServer})`);
  run(codeServer, ["--extensions-dir", extensionsDir, "--user-data-dir", userData, "--install-extension", opts.vsix], env);
  mark("installed");

  const port = await freePort();
  const server = spawn(
    codeServer,
    [
      "--auth", "none",
      "--bind-addr", `127.0.0.1:${port}`,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
      "--extensions-dir", extensionsDir,
      "--user-data-dir", userData,
      workspace,
    ],
    { env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(server);
  let serverLog = "";
  server.stdout.on("data", (d) => (serverLog += d));
  server.stderr.on("data", (d) => (serverLog += d));
  await new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`code-server did not start:\n${serverLog}`)), 60_000);
    const check = () => {
      if (/HTTP server listening/.test(serverLog)) {
        clearTimeout(timer);
        resolveReady();
      }
    };
    server.stdout.on("data", check);
    server.stderr.on("data", check);
    server.on("exit", (code) => reject(new Error(`code-server exited with ${code}:\n${serverLog}`)));
  });
  mark("codeServerListening");
  log(`code-server listening on ${port}`);

  browser = await chromiumApi.launch({
    executablePath: chromium,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") {
      consoleErrors.push(m.text());
    }
  });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator(".monaco-workbench").waitFor({ timeout: 90_000 });
  mark("workbench");
  log("workbench loaded");

  // Open the file through Quick Open, as a person would.
  await page.locator(".monaco-workbench").click({ position: { x: 700, y: 400 } }).catch(() => undefined);
  await page.keyboard.press("Control+P");
  await page.locator(".quick-input-widget input").waitFor({ timeout: 30_000 });
  await page.keyboard.type("inventory.py");
  await page.locator(".quick-input-list .monaco-list-row").first().waitFor({ timeout: 30_000 });
  await page.keyboard.press("Enter");
  const editor = page.locator(".editor-instance .monaco-editor").first();
  await editor.waitFor({ timeout: 30_000 });
  mark("fileOpen");
  log("inventory.py open");

  // The status bar item appears when the extension activates; wait for the model to be ready.
  const statusItem = page.locator(".statusbar-item", { hasText: /Gearshift|\d+(\.\d+)?[BM]\b/ }).last();
  await statusItem.waitFor({ timeout: 60_000 });
  const readyDeadline = Date.now() + TIMEOUT_MS;
  let statusText = "";
  while (Date.now() < readyDeadline) {
    statusText = (await statusItem.innerText()).trim();
    const spinning = await statusItem.locator(".codicon-sync, .codicon-loading").count();
    const warning = await statusItem.locator(".codicon-warning").count();
    if (warning > 0) {
      throw new Error(`the status bar shows an error: ${statusText}: ${await statusItem.getAttribute("aria-label")}`);
    }
    if (spinning === 0 && /[BM]\b/.test(statusText)) {
      break;
    }
    await page.waitForTimeout(500);
  }
  mark("modelReady");
  log(`status bar: ${statusText}`);
  result.statusBarBefore = statusText;

  // Go to the end of the file (an empty line inside the function) and type the start of the body.
  await editor.click({ position: { x: 300, y: 100 } });
  await page.keyboard.press("Control+End");
  await page.keyboard.type("    return sum(", { delay: 60 });
  mark("typed");

  const ghost = page.locator(".ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text");
  let trigger = "typing";
  try {
    await ghost.first().waitFor({ state: "attached", timeout: 30_000 });
  } catch {
    // Typing did not bring one up in time (the first requests were slow and superseded by later
    // keystrokes): ask explicitly, as a person would with Alt+\, through the command palette.
    trigger = "Trigger Inline Suggestion";
    const deadline = Date.now() + TIMEOUT_MS;
    for (let attempt = 1; ; attempt++) {
      log(`no ghost text yet; Trigger Inline Suggestion (attempt ${attempt})`);
      await page.keyboard.press("F1");
      await page.locator(".quick-input-widget input").waitFor({ timeout: 30_000 });
      await page.keyboard.type("Trigger Inline Suggestion");
      await page.locator(".quick-input-list .monaco-list-row", { hasText: "Trigger Inline Suggestion" }).first().waitFor({ timeout: 30_000 });
      await page.keyboard.press("Enter");
      try {
        await ghost.first().waitFor({ state: "attached", timeout: Math.min(30_000, Math.max(1000, deadline - Date.now())) });
        break;
      } catch (error) {
        if (Date.now() >= deadline) {
          throw error;
        }
      }
    }
  }
  mark("ghostText");
  const ghostText = (await ghost.allInnerTexts()).join("").replace(/\u00a0/g, " ");
  result.ghostText = ghostText;
  result.trigger = trigger;
  log(`ghost text (${trigger}): ${JSON.stringify(ghostText)}`);
  await page.waitForTimeout(300);
  result.screenshot = join(opts.artifacts, "ghost-text.png");
  await page.screenshot({ path: result.screenshot });
  result.statusBarAfter = (await statusItem.innerText()).trim();
  result.statusTooltip = await statusItem.getAttribute("aria-label");

  // A person types on through the ghost text (its first two characters, 120 ms apart), sees it
  // narrow, and presses Tab at once: the line must hold what was typed plus exactly the ghost text
  // shown at that moment (no doubled characters, no suggestion computed for an earlier position).
  const readGhost = async () => (await ghost.allInnerTexts()).join("").replace(/\u00a0/g, " ");
  result.typedThrough = ghostText.trim().length > 4 ? ghostText.slice(0, 2) : "";
  await page.keyboard.type(result.typedThrough, { delay: 120 });
  await page.waitForTimeout(120);
  result.ghostBeforeTab = await readGhost();
  await page.keyboard.press("Tab");
  await page.waitForTimeout(300);
  // Escape hides the next suggestion, so the line read back is the document's text, not ghost text.
  await page.keyboard.press("Escape");
  await page.waitForTimeout(300);
  const lines = (await page.locator(".editor-instance .view-lines").first().innerText()).replace(/\u00a0/g, " ");
  result.acceptedLine = lines.split("\n").find((l) => l.includes("return sum(")) ?? "";
  const expected = `    return sum(${result.typedThrough}${result.ghostBeforeTab.split("\n")[0]}`;
  result.accepted = result.ghostBeforeTab.trim().length > 0 && result.acceptedLine.startsWith(expected);
  result.screenshotAccepted = join(opts.artifacts, "accepted.png");
  await page.screenshot({ path: result.screenshotAccepted });
  mark("accepted");

  // "Gearshift: Show Status" from the command palette lists the server's gearshift.status report.
  await page.keyboard.press("F1");
  await page.locator(".quick-input-widget input").waitFor({ timeout: 30_000 });
  await page.keyboard.type("Gearshift: Show Status");
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "Show Status" }).first().waitFor({ timeout: 30_000 });
  await page.keyboard.press("Enter");
  const tierRow = page.locator(".quick-input-list .monaco-list-row", { hasText: "Tier" }).first();
  try {
    await tierRow.waitFor({ timeout: 30_000 });
    result.statusQuickPick = (await page.locator(".quick-input-list .monaco-list-row").allInnerTexts()).map((t) =>
      t.replace(/\s+/g, " ").trim(),
    );
    result.screenshotStatus = join(opts.artifacts, "status.png");
    await page.screenshot({ path: result.screenshotStatus });
  } catch {
    result.statusQuickPick = [];
  }
  await page.keyboard.press("Escape");
  mark("status");

  if (!opts["no-explain"]) {
    // Select the whole function (line 11 to the end) and ask for an explanation through the
    // code-action menu (Ctrl+.), where the server offers "Gearshift: Explain selection".
    await editor.click({ position: { x: 300, y: 100 } });
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+G");
    await page.locator(".quick-input-widget input").waitFor({ timeout: 30_000 });
    await page.keyboard.type("11");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Home");
    await page.keyboard.press("Control+Shift+End");
    await page.waitForTimeout(300);
    await page.keyboard.press("Control+.");
    const explainRow = page.locator(".action-widget .monaco-list-row", { hasText: "Explain selection" }).first();
    await explainRow.waitFor({ timeout: 30_000 });
    result.codeActions = (await page.locator(".action-widget .monaco-list-row").allInnerTexts()).map((t) =>
      t.replace(/\s+/g, " ").trim(),
    );
    result.screenshotCodeActions = join(opts.artifacts, "code-actions.png");
    await page.screenshot({ path: result.screenshotCodeActions });
    log(`code actions: ${JSON.stringify(result.codeActions)}`);
    // Move the menu's focus to the action with the keyboard (a click lands on the menu's pointer
    // block), then Enter applies it.
    const focused = page.locator(".action-widget .monaco-list-row.focused");
    for (let i = 0; i < result.codeActions.length; i++) {
      if (((await focused.getAttribute("aria-label").catch(() => "")) ?? "").includes("Explain selection")) {
        break;
      }
      await page.keyboard.press("ArrowDown");
      await page.waitForTimeout(100);
    }
    await page.keyboard.press("Enter");
    mark("explainRequested");
    // The answer opens as a markdown preview tab beside the editor, named "<title> (local|cloud) N.md".
    const answerTab = page.locator(".tab", { hasText: /\((local|cloud)\)/ }).first();
    await answerTab.waitFor({ timeout: TIMEOUT_MS });
    result.explainTab = (await answerTab.innerText()).trim();
    await page.waitForTimeout(1500);
    const preview = page.frameLocator("iframe.webview.ready").frameLocator("iframe#active-frame");
    result.explainText = (await preview.locator("body").innerText({ timeout: 30_000 }).catch(() => "")).slice(0, 2000);
    // The toast that says where the answer came from (cloud.localOnly is set: no "Ask the Cloud Model").
    const toast = page.locator(".notifications-toasts .notification-list-item").first();
    await toast.waitFor({ timeout: 30_000 }).catch(() => undefined);
    result.notifications = (await page.locator(".notifications-toasts .notification-list-item").allInnerTexts()).map(
      (t) => t.replace(/\s+/g, " ").trim(),
    );
    result.screenshotExplain = join(opts.artifacts, "explain.png");
    await page.screenshot({ path: result.screenshotExplain });
    mark("explain");
  }

  // The output channel (Gearshift: Show Output) shows the server's log lines at their own level.
  const channel = extensionLogTail(2000);
  result.logLevels = {};
  for (const line of channel) {
    const level = /^\S+ \S+ \[(\w+)\]/.exec(line)?.[1];
    if (level) {
      result.logLevels[level] = (result.logLevels[level] ?? 0) + 1;
    }
  }
  result.infoLoggedAsError = channel.filter((l) => /\[error\]/.test(l) && / INFO /.test(l)).slice(0, 5);
  result.consoleErrors = consoleErrors.filter((e) => /gearshift/i.test(e)).slice(0, 10);
  result.explained = opts["no-explain"] ? null : /\S/.test(result.explainText ?? "");
  result.ok = ghostText.trim().length > 0 && result.accepted && result.explained !== false;
} catch (error) {
  result.error = error instanceof Error ? error.message : String(error);
  log(`FAILED: ${result.error}`);
  try {
    const pages = browser?.contexts().flatMap((c) => c.pages()) ?? [];
    if (pages[0]) {
      result.screenshot = join(opts.artifacts, "failure.png");
      await pages[0].screenshot({ path: result.screenshot });
    }
  } catch {
    /* best effort */
  }
} finally {
  if (!result.ok) {
    result.extensionLog = extensionLogTail();
  }
  await browser?.close().catch(() => undefined);
  await cleanup();
}
result.seconds = Number(((Date.now() - started) / 1000).toFixed(1));
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
