// Logging: levels error, warn, info, debug. Text on stderr by default; with --log FILE the
// entries go to that file, and with --log-format json each is one JSON object per line with
// level, msg and time, as runc and crun write them (clients show the last "msg" to users).

import { appendFileSync, openSync, writeSync } from "node:fs";

export type Level = "error" | "warn" | "info" | "debug";
const rank: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

interface LogConfig {
  level: Level;
  format: "text" | "json";
  file?: string;
  fd: number;
}

const config: LogConfig = { level: "warn", format: "text", fd: 2 };

export function configureLog(opts: { level?: Level; format?: string; file?: string }): void {
  if (opts.level) config.level = opts.level;
  if (opts.format === "json" || opts.format === "text") config.format = opts.format;
  if (opts.file) {
    config.file = opts.file;
    config.fd = openSync(opts.file, "a", 0o644);
  }
}

export function logEnabled(level: Level): boolean {
  return rank[level] <= rank[config.level];
}

export function log(level: Level, msg: string): void {
  if (!logEnabled(level)) return;
  write(level, msg);
}

/** Errors always reach the log, whatever the level. */
export function logError(msg: string): void {
  write("error", msg);
}

/** True when errors go somewhere other than stderr, so the caller should print them too. */
export function logsToFile(): boolean {
  return config.file !== undefined;
}

function write(level: Level, msg: string): void {
  const time = new Date().toISOString();
  const line =
    config.format === "json"
      ? JSON.stringify({ level, msg, time }) + "\n"
      : config.file
        ? `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`
        : `tinyc: ${level === "error" ? "" : level + ": "}${msg}\n`;
  try {
    if (config.file) appendFileSync(config.fd, line);
    else writeSync(2, line);
  } catch {
    // A log that cannot be written must not turn into a second failure.
  }
}
