// The command that starts a shim: the embedded executable, by the path of the memfd this
// process holds (no tinyc start-up in between).

import { shimPath } from "../../ffi/shim";

export function shimCommand(): string[] {
  return [shimPath()];
}
