import { execShim } from "../../ffi/shim";
import { TinycError } from "../errors";
import type { Command } from "./index";

// The shim is started by the daemon, not by people; `tinyc-shim --help` (through this verb)
// prints its own usage.
const help = `usage: tinyc shim [--tty] [--stdin] [--stdin-once] [--log NAME] [--log-max-size BYTES]
                  [--log-max-files N] DIR -- RUNTIME_ARGV...

Runs the per-container shim in place of tinyc (the daemon starts one for each container).
`;

export const shimCommand: Command = {
  help,
  run(args: string[]) {
    throw new TinycError(`run the shim: ${execShim(args)}`);
  },
};
