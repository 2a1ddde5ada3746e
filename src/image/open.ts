// The image store as the commands open it: without root, layers unpack and are removed inside a
// user namespace that maps the subordinate ids.

import { removeInUserns, unpackInUserns } from "../runtime/userns";
import { ImageStore } from "./store";
import type { UnpackNotes } from "./unpack";

export function openStore(): ImageStore {
  if (process.getuid!() === 0) return new ImageStore();
  return new ImageStore(undefined, {
    unpacker: (src, dest) => unpackInUserns(src, dest) as Promise<UnpackNotes>,
    remover: removeInUserns,
  });
}
