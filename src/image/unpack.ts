// Unpacks one layer into an empty folder, in the form overlay lower dirs take:
//
// - a whiteout `.wh.NAME` becomes a character device 0:0 at NAME, which kernel overlayfs and
//   fuse-overlayfs both read as "deleted"; any user may create one since Linux 5.8. Where mknod
//   refuses, the `.wh.NAME` file is kept instead (fuse-overlayfs reads that form too);
// - an opaque marker `.wh..wh..opq` becomes the xattr user.overlay.opaque=y on its folder: the
//   name kernel overlay uses when mounted with `userxattr` (as it is in a user namespace) and
//   fuse-overlayfs reads too. Where xattrs cannot be set, the marker file is kept. The marker
//   hides only lower layers, so its place in the tar (before or after this layer's own files
//   of that folder) does not matter;
// - both are also listed in the returned notes, so a plain copy can apply them by deleting.
//
// No entry may write outside DEST: `..` components are refused, a leading `/` is dropped (as
// docker does), and every parent of an entry is checked with lstat and must be a real folder,
// never a symlink. Extended attributes that overlay or fuse-overlayfs would interpret
// (*.overlay.*, user.fuseoverlayfs.*, user.containers.override_*) are dropped from the tar.
//
// Owners are set with lchown; that works as root or inside a user namespace that maps them
// (the caller runs `tinyc _unpack` there). Elsewhere the first refusal stops further tries and
// is noted, and the files stay the caller's.

import * as fs from "node:fs";
import * as path from "node:path";
import { TinycError, fromSystem } from "../errors";
import { decompress, tap, type ByteStream, type Compression } from "./bytes";
import { readTar, type TarEntry } from "./tar";
import { imageSys, type ImageSys } from "./sys";

export interface UnpackNotes {
  /** sha256 of the uncompressed tar: the layer's diff id. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
  compression: Compression;
  /** Paths (relative, no leading slash) this layer deletes from lower layers. */
  whiteouts: string[];
  /** Folders whose lower content this layer hides. */
  opaque: string[];
  /** "device": 0:0 character devices; "file": `.wh.NAME` files were kept. */
  whiteoutForm: "device" | "file";
  /** "xattr": user.overlay.opaque=y; "marker": `.wh..wh..opq` files were kept. */
  opaqueForm: "xattr" | "marker";
  /** False when lchown was refused: files belong to whoever unpacked them. */
  ownersKept: boolean;
  /** What could not be reproduced (device nodes, xattrs), one line each. */
  skipped: string[];
}

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** xattrs a layer may not bring: overlay and fuse-overlayfs would act on them. */
export function isForbiddenXattr(name: string): boolean {
  return (
    /(^|\.)overlay\./.test(name) ||
    name.startsWith("user.fuseoverlayfs.") ||
    name.startsWith("user.containers.override_")
  );
}

/** The entry's path as components, or an error when it would leave the layer. */
export function entryParts(name: string, where = "layer"): string[] {
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new TinycError(`${where} entry ${JSON.stringify(name)} points outside the ${where}`);
  }
  return parts;
}

interface DirFix {
  path: string;
  mode: number;
  mtime: number;
}

class Unpacker {
  private known = new Set<string>();
  private dirs = new Map<string, DirFix>();
  private chownWorks: boolean;
  private notes: Omit<UnpackNotes, "diffId" | "size" | "compression"> = {
    whiteouts: [],
    opaque: [],
    whiteoutForm: "device",
    opaqueForm: "xattr",
    ownersKept: true,
    skipped: [],
  };
  private skipCounts = new Map<string, number>();

  constructor(
    private root: string,
    private sys: ImageSys,
    keepOwners: boolean,
  ) {
    this.chownWorks = keepOwners;
    if (!keepOwners) this.notes.ownersKept = false;
  }

  async entry(e: TarEntry): Promise<void> {
    const parts = entryParts(e.name);
    if (parts.length === 0) return;
    const base = parts[parts.length - 1];
    const parent = this.ensureParents(parts.slice(0, -1), e.name);
    if (base === OPAQUE) return this.markOpaque(parent, parts.slice(0, -1).join("/"));
    if (base.startsWith(WH + WH)) return; // aufs bookkeeping (.wh..wh.plnk and such)
    if (base.startsWith(WH)) return this.whiteout(parent, parts, base.slice(WH.length));
    await this.create(e, path.join(parent, base), parts.join("/"));
  }

  /** Checks (or makes) each parent folder without following symlinks. */
  private ensureParents(parts: string[], name: string): string {
    let dir = this.root;
    for (const p of parts) {
      dir = path.join(dir, p);
      if (this.known.has(dir)) continue;
      const st = lstatOrNull(dir);
      if (!st) fs.mkdirSync(dir, 0o755);
      else if (st.isSymbolicLink()) {
        const rel = path.relative(this.root, dir);
        throw new TinycError(
          `layer entry ${JSON.stringify(name)} goes through the symbolic link ` +
            JSON.stringify(rel),
        );
      } else if (isWhiteoutDevice(st)) this.replaceWhiteoutWithDir(dir);
      else if (!st.isDirectory()) {
        throw new TinycError(`layer entry ${JSON.stringify(name)}: a parent is not a folder`);
      }
      this.known.add(dir);
    }
    return dir;
  }

  /** A folder made where this layer deleted one: it hides what lower layers had there. */
  private replaceWhiteoutWithDir(dir: string): void {
    fs.unlinkSync(dir);
    fs.mkdirSync(dir, 0o755);
    this.markOpaque(dir, path.relative(this.root, dir));
  }

  private markOpaque(dir: string, rel: string): void {
    if (this.notes.opaque.includes(rel)) return;
    this.notes.opaque.push(rel);
    try {
      this.sys.setXattr(dir, "user.overlay.opaque", Buffer.from("y"));
    } catch {
      this.notes.opaqueForm = "marker";
      fs.writeFileSync(path.join(dir, OPAQUE), "", { flag: "w", mode: 0o600 });
    }
  }

  private whiteout(parent: string, parts: string[], name: string): void {
    if (!name || name === "." || name === "..") return;
    const rel = [...parts.slice(0, -1), name].join("/");
    this.notes.whiteouts.push(rel);
    const target = path.join(parent, name);
    // This layer's own entry of that name stays: overlay can show only one of the two.
    if (lstatOrNull(target)) return;
    try {
      this.sys.mknod(target, "char", 0, 0, 0);
    } catch {
      this.notes.whiteoutForm = "file";
      fs.writeFileSync(path.join(parent, WH + name), "", { flag: "w", mode: 0o600 });
    }
  }

  /** Clears what sits at TARGET unless it is a folder that a folder entry keeps. */
  private clear(target: string, keepDir: boolean): { wasWhiteout: boolean; isDir: boolean } {
    const st = lstatOrNull(target);
    if (!st) return { wasWhiteout: false, isDir: false };
    if (st.isDirectory()) {
      if (keepDir) return { wasWhiteout: false, isDir: true };
      fs.rmSync(target, { recursive: true, force: true });
      this.known.clear();
      this.dirs.forEach((_, k) => k.startsWith(target + "/") && this.dirs.delete(k));
      this.dirs.delete(target);
      return { wasWhiteout: false, isDir: false };
    }
    fs.unlinkSync(target);
    return { wasWhiteout: isWhiteoutDevice(st), isDir: false };
  }

  private async create(e: TarEntry, target: string, rel: string): Promise<void> {
    const { wasWhiteout, isDir } = this.clear(target, e.type === "dir");
    switch (e.type) {
      case "dir":
        if (!isDir) fs.mkdirSync(target, 0o700);
        if (wasWhiteout) this.markOpaque(target, rel);
        this.known.add(target);
        this.dirs.set(target, { path: target, mode: e.mode, mtime: e.mtime });
        break;
      case "file":
        await this.writeFile(e, target);
        break;
      case "symlink":
        fs.symlinkSync(e.linkname, target);
        break;
      case "hardlink":
        // The link's own header then sets the shared file's owner and mode, as docker's and
        // podman's unpackers do.
        this.hardlink(e, target);
        break;
      case "fifo":
        this.sys.mkfifo(target, 0o600);
        break;
      case "char":
      case "block":
        if (!this.device(e, target)) return;
        break;
    }
    this.finish(e, target);
  }

  private async writeFile(e: TarEntry, target: string): Promise<void> {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
    const fd = fs.openSync(target, flags | fs.constants.O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of e.body()) {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A hard link to an entry this layer made before; never to anything outside it. */
  private hardlink(e: TarEntry, target: string): void {
    const parts = entryParts(e.linkname);
    const what = `hard link ${JSON.stringify(e.name)} to ${JSON.stringify(e.linkname)}`;
    if (parts.length === 0) throw new TinycError(`${what}: not a file`);
    const from = path.join(this.ensureParents(parts.slice(0, -1), e.linkname), parts.at(-1)!);
    const st = lstatOrNull(from);
    if (!st || isWhiteoutDevice(st)) throw new TinycError(`${what}: no such entry in the layer`);
    if (st.isDirectory()) throw new TinycError(`${what}: a folder`);
    fs.linkSync(from, target);
  }

  private device(e: TarEntry, target: string): boolean {
    try {
      this.sys.mknod(target, e.type as "char" | "block", e.devmajor, e.devminor, 0o600);
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== "EPERM" && code !== "EACCES") throw fromSystem(err, "mknod", e.name);
      this.skip("device nodes not created (mknod not permitted)");
      return false;
    }
  }

  /** Owner, extended attributes, mode and mtime: in that order, since chown clears setuid. */
  private finish(e: TarEntry, target: string): void {
    this.chown(target, e.uid, e.gid);
    this.xattrs(e, target);
    if (e.type === "symlink") {
      fs.lutimesSync(target, e.mtime, e.mtime);
      return;
    }
    if (e.type === "dir") return; // mode and mtime once its content is written
    fs.chmodSync(target, e.mode);
    fs.utimesSync(target, e.mtime, e.mtime);
  }

  private chown(target: string, uid: number, gid: number): void {
    if (!this.chownWorks) return;
    try {
      fs.lchownSync(target, uid, gid);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EPERM" && code !== "EINVAL") throw fromSystem(err, "lchown", target);
      this.chownWorks = false;
      this.notes.ownersKept = false;
    }
  }

  private xattrs(e: TarEntry, target: string): void {
    for (const [name, value] of Object.entries(e.xattrs)) {
      if (isForbiddenXattr(name)) {
        this.skip("overlay xattrs in the layer dropped");
        continue;
      }
      try {
        this.sys.setXattr(target, name, value);
      } catch {
        this.skip(`xattr ${JSON.stringify(name)} not set`);
      }
    }
  }

  private skip(what: string): void {
    this.skipCounts.set(what, (this.skipCounts.get(what) ?? 0) + 1);
  }

  /** Folder modes and times, deepest first, now that nothing more is written into them. */
  done(): Omit<UnpackNotes, "diffId" | "size" | "compression"> {
    const order = [...this.dirs.values()].sort((a, b) => b.path.length - a.path.length);
    for (const d of order) {
      fs.chmodSync(d.path, d.mode);
      fs.utimesSync(d.path, d.mtime, d.mtime);
    }
    for (const [what, n] of this.skipCounts) this.notes.skipped.push(`${what}: ${n}`);
    return this.notes;
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

function isWhiteoutDevice(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

export interface UnpackOptions {
  sys?: ImageSys;
  /** Try lchown (default: true as root, else tried once and noted when refused). */
  keepOwners?: boolean;
}

/**
 * Unpacks a layer (gzip, zstd or plain tar) into DEST, an empty folder. On failure DEST is left
 * as it is: the caller unpacks into a temporary folder and removes it.
 */
export async function unpackLayer(
  source: ByteStream,
  dest: string,
  opts: UnpackOptions = {},
): Promise<UnpackNotes> {
  const hasher = new Bun.CryptoHasher("sha256");
  let size = 0;
  let compression: Compression = "none";
  const plain = await decompress(source, (c) => (compression = c));
  const counted = tap(plain, (c) => {
    hasher.update(c);
    size += c.length;
  });
  const u = new Unpacker(dest, opts.sys ?? imageSys(), opts.keepOwners ?? true);
  try {
    for await (const e of readTar(counted)) await u.entry(e);
  } catch (e) {
    if (e instanceof TinycError) throw e;
    throw fromSystem(e, "unpack layer");
  }
  const notes = u.done();
  return { diffId: `sha256:${hasher.digest("hex")}`, size, compression, ...notes };
}
