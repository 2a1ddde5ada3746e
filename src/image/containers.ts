// The containers made from images: their metadata beside their writable layers, under the
// data root. The image store asks it which images are in use.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TinycError } from "../errors";
import { defaultDataRoot } from "./store";

export interface ContainerMeta {
  id: string;
  name: string;
  image: string;
  imageId: string;
  command: string[];
  created: string;
  /** -d --rm: removed by the next tinyc command that looks, once it has ended. */
  autoRemove?: boolean;
}

export function containersDir(): string {
  return join(defaultDataRoot(), "containers");
}

function readMeta(id: string): ContainerMeta | undefined {
  try {
    return JSON.parse(readFileSync(join(containersDir(), id, "meta.json"), "utf8"));
  } catch {
    return undefined;
  }
}

export function allMetas(): ContainerMeta[] {
  let ids: string[] = [];
  try {
    ids = readdirSync(containersDir());
  } catch {
    return [];
  }
  return ids.map(readMeta).filter((m): m is ContainerMeta => m !== undefined);
}

/** A container by full id, unique id prefix or name. */
export function findContainer(text: string): ContainerMeta | undefined {
  const metas = allMetas();
  const exact = metas.find((m) => m.id === text || m.name === text);
  if (exact) return exact;
  const byPrefix = metas.filter((m) => m.id.startsWith(text));
  if (byPrefix.length > 1) throw new TinycError(`${JSON.stringify(text)} names more than one container`);
  return byPrefix[0];
}
