// The verbs of the command line, and the overview `tinyc --help` prints.

import type { Globals } from "../cli";
import { specCommand } from "./spec";
import { runCommand } from "./run";
import { createCommand } from "./create";
import { startCommand } from "./start";
import { execCommand } from "./exec";
import { featuresCommand } from "./features";
import { infoCommand } from "./info";
import { imageCommands } from "./images";
import { bundleCommand, exportCommand, rmCommand } from "./container";
import {
  deleteCommand,
  killCommand,
  listCommand,
  pauseCommand,
  psCommand,
  resumeCommand,
  stateCommand,
} from "./lifecycle";

export interface Command {
  summary: string;
  help: string;
  run(args: string[], globals: Globals): Promise<number> | number;
}

export const commands: Record<string, Command> = {
  spec: specCommand,
  run: runCommand,
  create: createCommand,
  start: startCommand,
  state: stateCommand,
  kill: killCommand,
  delete: deleteCommand,
  list: listCommand,
  ps: psCommand,
  exec: execCommand,
  pause: pauseCommand,
  resume: resumeCommand,
  features: featuresCommand,
  info: infoCommand,
  ...imageCommands,
  rm: rmCommand,
  export: exportCommand,
  bundle: bundleCommand,
};

export function usage(): string {
  // Verbs starting with "_" are tinyc's own helpers, not for people.
  const shown = Object.entries(commands).filter(([k]) => !k.startsWith("_"));
  const width = Math.max(...shown.map(([k]) => k.length));
  const lines = shown.map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`);
  return `tinyc: a rootless container engine in one executable

usage: tinyc [global flags] COMMAND [flags] [arguments]

commands:
${lines.join("\n")}

global flags:
  --root DIR          runtime state (default $XDG_RUNTIME_DIR/tinyc, or /run/tinyc as root)
  --log FILE          write log entries to FILE instead of stderr
  --log-format FMT    text (default) or json: one object per line with level, msg, time
  --debug             log debug entries
  --systemd-cgroup    accepted for runc compatibility (a systemd cgroupsPath is refused)
  --cgroup-manager M  cgroupfs (default), systemd (as --systemd-cgroup) or disabled (no cgroup)
  --version, -v       print the version and the commit it was built from
  --help, -h          print this help; "tinyc COMMAND --help" for a command's flags
`;
}
