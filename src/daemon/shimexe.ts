// The command that starts a shim: tinyc's own hidden `shim` verb.

import { selfArgv } from "../runtime/userns";

export function shimCommand(): string[] {
  return selfArgv("shim");
}
