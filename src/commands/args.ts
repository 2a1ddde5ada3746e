// Flag parsing for the verbs: minimist, with a flag it does not know refused, as runc and
// docker refuse one, instead of taken as a boolean that swallows the next argument.

import minimist from "minimist";
import { EXIT, TinycError } from "../errors";

/**
 * Set by the test that checks every flag a command takes is in its help: each parse hands its
 * options here first (and the test's function throws, so nothing runs).
 */
export const flagProbe: { see?: (verb: string, opts: minimist.Opts) => void } = {};

export function parseFlags(verb: string, args: string[], opts: minimist.Opts): minimist.ParsedArgs {
  flagProbe.see?.(verb, opts);
  // minimist reads "--no-pivot" as pivot=false; flags whose own name starts with "no-"
  // (--no-pivot, --no-new-keyring, --no-trunc) are given as "--no-pivot=true" instead.
  const bools = new Set([opts.boolean ?? []].flat().map(String));
  args = args.map((x) => (x.startsWith("--no-") && bools.has(x.slice(2)) ? `${x}=true` : x));
  return minimist(args, {
    ...opts,
    // Positionals stay text: an id prefix such as "5597883847e3" is not a number.
    string: [...[opts.string ?? []].flat(), "_"],
    unknown: (arg) => {
      if (arg.startsWith("-") && arg !== "-" && arg !== "--") {
        throw new TinycError(`${verb}: unknown flag ${JSON.stringify(arg.split("=")[0])}`, {
          exitCode: EXIT.usage,
          hint: `see tinyc ${verb} --help`,
        });
      }
      return true;
    },
  });
}

/**
 * The runtime id a verb names: the id itself, or the name (or a unique id prefix) of a
 * container made from an image, as people type them (`tinyc exec web sh`).
 */
export function containerId(text: string, exists: (id: string) => boolean): string {
  if (/^[A-Za-z0-9_+\-.]+$/.test(text) && exists(text)) return text;
  const { findContainer } = require("../image/containers") as typeof import("../image/containers");
  return findContainer(text)?.id ?? text;
}
