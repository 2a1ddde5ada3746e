// Every flag a command accepts is named in its --help (and so completed by `tinyc completion`):
// each command is run with its options handed to a probe that stops it before anything runs.

import { expect, test } from "bun:test";
import type minimist from "minimist";
import { commands, GLOBAL_FLAGS, usage } from "../../src/commands";
import { flagProbe } from "../../src/commands/args";

class Probe extends Error {
  constructor(public opts: minimist.Opts) {
    super("probe");
  }
}

const globals = { debug: false, systemdCgroup: false, noCgroups: false };

/** The flag names (long and short) that a minimist option set accepts. */
function accepted(opts: minimist.Opts): Set<string> {
  const names = new Set<string>();
  for (const n of [opts.boolean ?? [], opts.string ?? []].flat()) names.add(String(n));
  for (const [k, v] of Object.entries(opts.alias ?? {})) {
    names.add(k);
    for (const x of [v].flat()) names.add(String(x));
  }
  return names;
}

/** Whether HELP names the flag: "--name" or "-n", or "--no-name" for a negated boolean. */
function mentions(help: string, name: string): boolean {
  const flag = name.length === 1 ? `-${name}` : `--${name}`;
  const re = (f: string) => new RegExp(`(^|[^\\w-])${f.replace(/[.+]/g, "\\$&")}(?![\\w-])`, "m");
  return re(flag).test(help) || re(`--no-${name}`).test(help);
}

async function probe(run: () => unknown): Promise<minimist.Opts[]> {
  const seen: minimist.Opts[] = [];
  flagProbe.see = (_verb, opts) => {
    seen.push(opts);
    throw new Probe(opts);
  };
  try {
    await run();
  } catch (e) {
    if (!(e instanceof Probe)) throw e;
  } finally {
    flagProbe.see = undefined;
  }
  return seen;
}

// Each verb is parsed as it is called with a flag only, and (for run and bundle, whose docker
// flags are parsed once an image is named) with an image too.
const shapes: string[][] = [["--help"], ["an-image"]];

// Hidden verbs (the shim, which replaces the process) are not for people and have no help to check.
for (const verb of Object.keys(commands).filter((v) => !v.startsWith("_") && !commands[v].hidden)) {
  test(`${verb} --help names every flag ${verb} accepts`, async () => {
    const cmd = await commands[verb].load();
    const names = new Set<string>();
    let parses = 0;
    for (const args of shapes) {
      for (const opts of await probe(() => cmd.run(args, globals))) {
        parses++;
        for (const n of accepted(opts)) names.add(n);
      }
    }
    // Every command parses its flags (and so refuses one it does not know).
    expect(parses).toBeGreaterThan(0);
    // --help and -h are named once, in `tinyc --help`, for every command.
    const missing = [...names].filter((n) => n !== "help" && n !== "h" && !mentions(cmd.help, n));
    expect({ verb, missing }).toEqual({ verb, missing: [] });
  });
}

test("tinyc --help names every global flag", () => {
  const missing = [...GLOBAL_FLAGS.value, ...GLOBAL_FLAGS.boolean].filter((n) => !mentions(usage(), n));
  expect(missing).toEqual([]);
});
