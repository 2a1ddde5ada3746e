import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseFlags } from "./args";
import { TinycError } from "../errors";
import { defaultSpec, stringifySpec } from "../oci/spec";
import { defaultSeccompProfile } from "../seccomp/default";
import type { Command } from "./index";

export const specCommand: Command = {
  help: `usage: tinyc spec [--rootless] [--bundle DIR]

Writes DIR/config.json (default: the current folder): runc's template, with a seccomp profile
like Docker's default.

flags:
  --rootless       map container root to the caller's uid and gid, drop what needs root
  --bundle, -b DIR the bundle folder to write config.json into
`,
  run(args) {
    const a = parseFlags("spec", args, {
      boolean: ["rootless", "help"],
      string: ["bundle"],
      alias: { b: "bundle", h: "help" },
    });
    if (a.help) {
      process.stdout.write(this.help);
      return 0;
    }
    const dir = a.bundle || ".";
    const file = join(dir, "config.json");
    if (existsSync(file)) {
      throw new TinycError(`${JSON.stringify(file)} exists: remove it first`);
    }
    const spec = defaultSpec({
      rootless: !!a.rootless,
      uid: process.getuid!(),
      gid: process.getgid!(),
      seccomp: defaultSeccompProfile(process.arch),
    });
    try {
      writeFileSync(file, stringifySpec(spec), { mode: 0o666, flag: "wx" });
    } catch (e) {
      throw new TinycError(`write ${JSON.stringify(file)}: ${(e as NodeJS.ErrnoException).code}`);
    }
    return 0;
  },
};
