// The containers made from images: their metadata beside their writable layers, under the
// data root. The image store asks it which images are in use.
//
// Many tinyc processes may make containers at once, so nothing here reads a list and then
// writes on what it read: a name is claimed with a symlink (names/NAME -> ID), which only one
// process can create, and a container folder names the tinyc that makes it (a "creator"
// file) until it is complete, so that one left by a killed tinyc is known and swept.

import {
  closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync,
  unlinkSync, writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { TinycError } from "../errors";
import { processStart } from "../runtime/state";
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
  /** The command split as the image and the flags gave it. */
  entrypoint?: string[];
  cmd?: string[];
  labels?: Record<string, string>;
  /** -u, or the image's User, as given. */
  user?: string;
}

export function containersDir(): string {
  return join(defaultDataRoot(), "containers");
}

function namesDir(): string {
  return join(defaultDataRoot(), "names");
}

export function readMeta(id: string): ContainerMeta | undefined {
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

/** The id a name is claimed for, if any. */
function nameOwner(name: string): string | undefined {
  try {
    return readlinkSync(join(namesDir(), name)).split("/").pop();
  } catch {
    return undefined;
  }
}

/** A container by full id, unique id prefix or name. */
export function findContainer(text: string): ContainerMeta | undefined {
  if (/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(text)) {
    const owner = nameOwner(text);
    const byName = owner && readMeta(owner);
    if (byName && byName.name === text) return byName;
    const byId = readMeta(text);
    if (byId) return byId;
  }
  const metas = allMetas();
  const exact = metas.find((m) => m.id === text || m.name === text);
  if (exact) return exact;
  const byPrefix = metas.filter((m) => m.id.startsWith(text));
  if (byPrefix.length > 1) throw new TinycError(`${JSON.stringify(text)} names more than one container`);
  return byPrefix[0];
}

/**
 * Claims NAME for the container ID, whose folder must exist already: false when another
 * container has it. A claim whose container folder is gone (its tinyc was killed between the
 * two) is taken over, under a lock, so that two processes never both take one over.
 */
export function claimName(name: string, id: string): boolean {
  mkdirSync(namesDir(), { recursive: true, mode: 0o700 });
  const link = join(namesDir(), name);
  const target = `../containers/${id}`;
  try {
    symlinkSync(target, link);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  const { flock, LOCK } = require("../../ffi/spawn") as typeof import("../../ffi/spawn");
  const fd = openSync(join(namesDir(), ".lock"), "a", 0o600);
  try {
    flock(fd, LOCK.EX);
    const owner = nameOwner(name);
    if (owner !== undefined && existsDir(join(containersDir(), owner))) return false;
    // Containers give their name up before their folder goes, so this one is stale.
    if (owner !== undefined) unlinkSync(link);
    symlinkSync(target, link);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    closeSync(fd);
  }
}

function existsDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Gives NAME up, if ID holds it. */
export function releaseName(name: string, id: string): void {
  if (nameOwner(name) !== id) return;
  try {
    unlinkSync(join(namesDir(), name));
  } catch {
    // Already gone.
  }
}

/** Marks DIR as being made by this process, until unmarkCreator(). */
export function markCreator(dir: string): void {
  writeFileSync(join(dir, "creator"), `${process.pid} ${processStart(process.pid)}`);
}

export function unmarkCreator(dir: string): void {
  rmSync(join(dir, "creator"), { force: true });
}

/**
 * Whether the container folder ID was left by a tinyc that died while it was responsible for
 * it: its creator is gone, or it has neither a creator nor its metadata and is not brand new.
 */
export function leftBehind(id: string): boolean {
  const dir = join(containersDir(), id);
  let creator: string | undefined;
  try {
    creator = readFileSync(join(dir, "creator"), "utf8");
  } catch {
    // Complete, or being made this very moment.
  }
  if (creator !== undefined) {
    const [pid, start] = creator.split(" ").map(Number);
    return processStart(pid) !== start;
  }
  if (readMeta(id) !== undefined) return false;
  try {
    return Date.now() - statSync(dir).mtimeMs > 10_000;
  } catch {
    return false;
  }
}
