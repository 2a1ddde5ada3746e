// tinyc's command line. Programs call it with runc's verbs and flags; the global flags come
// before the verb. A single catch prints "tinyc: message" as one line and exits with a code.

import minimist from "minimist";
import { EXIT, TinycError } from "./errors";
import { configureLog, logError, logsToFile, type Level } from "./log";
import { commands, GLOBAL_FLAGS, usage } from "./commands";
import { version } from "./version";

export interface Globals {
  root?: string;
  debug: boolean;
  systemdCgroup: boolean;
  /** crun's --cgroup-manager disabled: never make a cgroup (limits then fail). */
  noCgroups: boolean;
}

/** Global flags that take a value, so the verb can be found after them. */
const VALUE_FLAGS = GLOBAL_FLAGS.value;
const BOOLEAN_FLAGS = GLOBAL_FLAGS.boolean;
const globalValueFlags = new Set(VALUE_FLAGS.map((f) => `--${f}`));

function splitGlobals(argv: string[]): { globals: string[]; verb?: string; rest: string[] } {
  let i = 0;
  while (i < argv.length && argv[i].startsWith("-")) {
    const a = argv[i];
    i += globalValueFlags.has(a) ? 2 : 1;
  }
  return { globals: argv.slice(0, i), verb: argv[i], rest: argv.slice(i + 1) };
}

async function main(argv: string[]): Promise<number> {
  const { globals, verb, rest } = splitGlobals(argv);
  const g = minimist(globals, {
    string: VALUE_FLAGS,
    boolean: BOOLEAN_FLAGS,
    unknown: (flag) => {
      throw new TinycError(`unknown global flag ${JSON.stringify(flag)}`, {
        exitCode: EXIT.usage,
        hint: "see tinyc --help",
      });
    },
  });
  const manager = g["cgroup-manager"];
  if (manager !== undefined && !["cgroupfs", "systemd", "disabled"].includes(manager)) {
    throw new TinycError(`--cgroup-manager ${JSON.stringify(manager)}: expected cgroupfs, systemd or disabled`, {
      exitCode: EXIT.usage,
    });
  }
  configureLog({
    level: (g.debug ? "debug" : "warn") as Level,
    format: g["log-format"],
    file: g.log || undefined,
  });
  if (g.version || g.v) {
    process.stdout.write(version());
    return 0;
  }
  if (!verb || g.help || g.h || verb === "help") {
    process.stdout.write(usage());
    return verb || g.help || g.h ? 0 : EXIT.usage;
  }
  const command = commands[verb];
  if (!command) throw new TinycError(`unknown command ${JSON.stringify(verb)}`, { exitCode: EXIT.usage, hint: "see tinyc --help" });
  const globalsOut: Globals = {
    root: g.root || undefined,
    debug: !!g.debug,
    systemdCgroup: !!g["systemd-cgroup"] || manager === "systemd",
    noCgroups: manager === "disabled",
  };
  return await (await command.load()).run(rest, globalsOut);
}

function reportAndExit(e: unknown): never {
  if (e instanceof TinycError) {
    logError(e.text());
    if (logsToFile()) process.stderr.write(`tinyc: ${e.text()}\n`);
    process.exit(e.exitCode);
  }
  const err = e as Error;
  const text = `internal error: ${err?.message ?? String(e)}`;
  logError(text);
  if (logsToFile()) process.stderr.write(`tinyc: ${text}\n`);
  if (process.env.TINYC_TRACE) process.stderr.write(`${err?.stack ?? ""}\n`);
  process.exit(EXIT.engine);
}

main(process.argv.slice(2)).then((code) => process.exit(code), reportAndExit);
