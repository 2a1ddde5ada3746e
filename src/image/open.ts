// The image store as the commands open it: without root, layers unpack and are removed inside a
// user namespace that maps the subordinate ids.

import { ImageStore } from "./store";
import type { UnpackNotes } from "./unpack";

export function openStore(): ImageStore {
  if (process.getuid!() === 0) return new ImageStore();
  return new ImageStore(undefined, {
    // The user namespace code is loaded when a layer comes or goes, not with the store.
    unpacker: async (src, dest) => (await import("../runtime/userns")).unpackInUserns(src, dest) as Promise<UnpackNotes>,
    remover: (p) => (require("../runtime/userns") as typeof import("../runtime/userns")).removeInUserns(p),
  });
}
