/**
 * The server's stderr in the output channel at the level it was logged at.
 *
 * The server logs `2026-12-02 14:26:54,241 INFO lsp_server.x: message` (cli/serve.py); the
 * language client would write every stderr line with `error`, so the channel showed each INFO
 * line as `[error]`.  Lines without that prefix (a traceback, a message's further lines) keep the
 * level of the line before them; before any, they are errors (a crash before logging started).
 */

import * as readline from "node:readline";
import type { Readable } from "node:stream";
import type { LogOutputChannel } from "vscode";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

export interface ServerLogLine {
  level: LogLevel;
  /** The line without the server's timestamp and level (the channel adds its own). */
  message: string;
}

const LEVELS: Record<string, LogLevel> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  ERROR: "error",
  CRITICAL: "error",
};

const HEADER = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)? (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;

/** The level and text of one stderr line; `previous` is the level of the line before it. */
export function parseServerLogLine(line: string, previous: LogLevel = "error"): ServerLogLine {
  const match = HEADER.exec(line);
  const level = match?.[1];
  if (match && level !== undefined) {
    return { level: LEVELS[level] ?? "error", message: match[2] ?? "" };
  }
  return { level: previous, message: line };
}

/** `stdioOptions.stderr` for the language client: each line at its own level. */
export function pipeServerStderr(input: Readable, channel: LogOutputChannel): void {
  let previous: LogLevel = "error";
  readline
    .createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 })
    .on("line", (line: string) => {
      const { level, message } = parseServerLogLine(line, previous);
      previous = level;
      channel[level](message);
    });
}

/** `stdioOptions.stdout`: only used when the protocol does not run over stdout. */
export function pipeServerStdout(input: Readable, channel: LogOutputChannel): void {
  readline
    .createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 })
    .on("line", (line: string) => channel.info(line));
}
