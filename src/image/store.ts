// The content-addressed image store:
//
//   ROOT/blobs/sha256/HEX      manifests, configs, indexes and layers as they came, named by
//                              digest; written to a temporary file in the same folder, checked
//                              while written, then renamed (two writers of one blob are fine)
//   ROOT/layers/HEX/diff/      a layer unpacked once (HEX: its diff id), shared by all images;
//   ROOT/layers/HEX/layer.json what unpacking noted (whiteouts, opaque folders, owners kept)
//                              both made in a temporary folder and renamed together
//   ROOT/images.json           names and digests of each image, keyed by manifest digest,
//                              replaced by rename under an flock on ROOT/images.lock
//
// ROOT is $TINYC_DATA, else /var/lib/tinyc as root, else $XDG_DATA_HOME/tinyc.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { flock, LOCK, NativeError } from "../../ffi/spawn";
import { TinycError, fromSystem } from "../errors";
import { log } from "../log";
import { decompress, fileStream, type ByteStream } from "./bytes";
import {
  familiarReference,
  formatReference,
  parseReference,
  repositoryName,
  type Reference,
} from "./reference";
import {
  parseConfig,
  parseManifest,
  type ContainerConfig,
  type ImageConfigFile,
  type Manifest,
} from "./types";
import { unpackLayer, type UnpackNotes } from "./unpack";

export function defaultDataRoot(): string {
  if (process.env.TINYC_DATA) return process.env.TINYC_DATA;
  if (process.getuid!() === 0) return "/var/lib/tinyc";
  const base = process.env.XDG_DATA_HOME || path.join(os.homedir(), ".local/share");
  return path.join(base, "tinyc");
}

/** What images.json keeps of one image. */
export interface ImageRecord {
  /** Digest of the platform manifest: the key. */
  manifest: string;
  /** Digest of the config: docker's image id. */
  id: string;
  /** Normalized references with a tag ("docker.io/library/debian:bookworm"). */
  names: string[];
  /** "registry/repository@sha256:..." as pulled: docker's RepoDigests. */
  digests: string[];
  /** When it entered this store. */
  added: string;
  /** Bytes of its layers, uncompressed. */
  size: number;
}

export interface Image extends ImageRecord {
  manifestDoc: Manifest;
  config: ImageConfigFile;
}

/** What unpacking noted, and the blobs known to yield this layer. */
export interface LayerNotes extends UnpackNotes {
  blobs: string[];
}

/** The diff id of a layer blob: the digest of its content, decompressed. */
export async function blobDiffId(file: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const c of await decompress(fileStream(file))) hasher.update(c);
  return `sha256:${hasher.digest("hex")}`;
}

/** Unpacks the blob at SRC into the empty folder DEST (in this process or another one). */
export type LayerUnpacker = (src: string, dest: string) => Promise<UnpackNotes>;

export const unpackInProcess: LayerUnpacker = (src, dest) => unpackLayer(fileStream(src), dest);

export interface StoreOptions {
  /** How layers are unpacked (default: in this process). */
  unpacker?: LayerUnpacker;
  /** How a tree is removed (default: in this process, which cannot remove other owners' files). */
  remover?: (dir: string) => void;
}

interface ImagesFile {
  version: 1;
  images: Record<string, Omit<ImageRecord, "manifest">>;
}

/** What one operation added, so a failure can take it away again. */
export interface Changes {
  blobs: Set<string>;
  layers: Set<string>;
}

export function newChanges(): Changes {
  return { blobs: new Set(), layers: new Set() };
}

const HEX = /^[a-f0-9]{64}$/;

function hexOf(digest: string): string {
  const hex = digest.startsWith("sha256:") ? digest.slice(7) : "";
  if (!HEX.test(hex)) throw new TinycError(`unsupported digest ${JSON.stringify(digest)}`);
  return hex;
}

function tmpName(): string {
  // Web crypto: node:crypto takes milliseconds to load, and every image run opens the store.
  return `.tmp-${process.pid}-${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Removes a tree even where folders of it are read-only (a layer may have 0555 folders). */
export function removeTree(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EACCES") throw e;
    makeWritable(p);
    fs.rmSync(p, { recursive: true, force: true });
  }
}

function makeWritable(p: string): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st?.isDirectory()) return;
  if (st.uid === process.getuid!()) fs.chmodSync(p, (st.mode & 0o7777) | 0o700);
  for (const name of fs.readdirSync(p)) makeWritable(path.join(p, name));
}

export class ImageStore {
  readonly root: string;
  private unpacker: LayerUnpacker;
  private remover: (dir: string) => void;

  constructor(root = defaultDataRoot(), opts: StoreOptions = {}) {
    this.root = root;
    this.unpacker = opts.unpacker ?? unpackInProcess;
    this.remover = opts.remover ?? removeTree;
    for (const dir of ["blobs/sha256", "layers", "tmp", "trash"]) {
      try {
        fs.mkdirSync(path.join(root, dir), { recursive: true, mode: 0o700 });
      } catch (e) {
        throw fromSystem(e, "create image store", path.join(root, dir));
      }
    }
  }

  blobPath(digest: string): string {
    return path.join(this.root, "blobs/sha256", hexOf(digest));
  }

  hasBlob(digest: string): boolean {
    return fs.existsSync(this.blobPath(digest));
  }

  readBlob(digest: string): Buffer {
    try {
      return fs.readFileSync(this.blobPath(digest));
    } catch (e) {
      throw fromSystem(e, `read blob ${JSON.stringify(digest)}`);
    }
  }

  /** A folder for temporary work on the store's file system (renames out of it are atomic). */
  tempDir(): string {
    const dir = path.join(this.root, "tmp", tmpName());
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /**
   * Writes a blob from SOURCE, checking its digest (and size) while writing; nothing is visible
   * under blobs/ until it is complete and right. A source larger than the expected size is cut
   * off at once, so a registry cannot fill the disk.
   */
  async putBlob(
    source: ByteStream,
    expect: { digest?: string; size?: number } = {},
    changes?: Changes,
    onBytes?: (n: number) => void,
  ): Promise<{ digest: string; size: number }> {
    if (expect.digest) hexOf(expect.digest);
    const tmp = path.join(this.root, "blobs/sha256", tmpName());
    const fd = fs.openSync(tmp, "wx", 0o644);
    const hasher = new Bun.CryptoHasher("sha256");
    let size = 0;
    try {
      for await (const c of source) {
        size += c.length;
        if (expect.size !== undefined && size > expect.size) {
          throw new TinycError(
            `blob ${JSON.stringify(expect.digest ?? "")} is larger than its ${expect.size} bytes`,
          );
        }
        hasher.update(c);
        let off = 0;
        while (off < c.length) off += fs.writeSync(fd, c, off);
        onBytes?.(c.length);
      }
      const digest = `sha256:${hasher.digest("hex")}`;
      checkBlob(digest, size, expect);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      const existed = this.hasBlob(digest);
      fs.renameSync(tmp, this.blobPath(digest));
      if (!existed) changes?.blobs.add(digest);
      return { digest, size };
    } catch (e) {
      try {
        fs.closeSync(fd);
      } catch {
        // closed already
      }
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }

  async putBlobBytes(data: Uint8Array, expectDigest?: string, changes?: Changes): Promise<string> {
    const stream = (async function* () {
      yield data;
    })();
    return (await this.putBlob(stream, { digest: expectDigest }, changes)).digest;
  }

  /**
   * Moves FILE, a temporary file of this store whose digest was taken while it was written,
   * into the blobs; dropped when the blob is there already.
   */
  adoptFile(file: string, digest: string, changes?: Changes): void {
    const final = this.blobPath(digest);
    if (fs.existsSync(final)) return;
    try {
      fs.chmodSync(file, 0o644);
      fs.renameSync(file, final);
    } catch (e) {
      throw fromSystem(e, "add blob", final);
    }
    changes?.blobs.add(digest);
  }

  layerDir(diffId: string): string {
    return path.join(this.root, "layers", hexOf(diffId));
  }

  hasLayer(diffId: string): boolean {
    return fs.existsSync(path.join(this.layerDir(diffId), "layer.json"));
  }

  layerNotes(diffId: string): LayerNotes {
    const file = path.join(this.layerDir(diffId), "layer.json");
    try {
      return JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
      throw fromSystem(e, "read layer notes", file);
    }
  }

  /**
   * Unpacks the layer blob once; the diff id it yields must be DIFFID. When the layer is there
   * already, a blob not seen with it before is still checked to yield that diff id, so that no
   * manifest can name a blob the layer did not come from.
   */
  async ensureLayer(diffId: string, blob: string, changes?: Changes): Promise<string> {
    const final = this.layerDir(diffId);
    if (this.hasLayer(diffId)) {
      await this.checkLayerBlob(diffId, blob);
      return path.join(final, "diff");
    }
    const tmp = path.join(this.root, "layers", tmpName());
    fs.mkdirSync(path.join(tmp, "diff"), { recursive: true, mode: 0o700 });
    fs.chmodSync(path.join(tmp, "diff"), 0o755);
    try {
      const notes = await this.unpacker(this.blobPath(blob), path.join(tmp, "diff"));
      if (notes.diffId !== diffId) {
        throw new TinycError(
          `layer ${JSON.stringify(blob)} does not match its diff id: ` +
            `got ${JSON.stringify(notes.diffId)}`,
        );
      }
      const info: LayerNotes = { ...notes, blobs: [blob] };
      fs.writeFileSync(path.join(tmp, "layer.json"), JSON.stringify(info) + "\n");
      this.commitLayer(tmp, final);
    } catch (e) {
      this.discard(tmp);
      throw e;
    }
    changes?.layers.add(diffId);
    return path.join(final, "diff");
  }

  private async checkLayerBlob(diffId: string, blob: string): Promise<void> {
    const notes = this.layerNotes(diffId);
    if (notes.blobs?.includes(blob)) return;
    const got = await blobDiffId(this.blobPath(blob));
    if (got !== diffId)
      throw new TinycError(
        `layer ${JSON.stringify(blob)} does not match its diff id: got ${JSON.stringify(got)}`,
      );
    notes.blobs = [...(notes.blobs ?? []), blob];
    const file = path.join(this.layerDir(diffId), "layer.json");
    const tmp = path.join(this.layerDir(diffId), tmpName());
    fs.writeFileSync(tmp, JSON.stringify(notes) + "\n");
    fs.renameSync(tmp, file);
  }

  private commitLayer(tmp: string, final: string): void {
    try {
      fs.renameSync(tmp, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another tinyc unpacked the same layer first: its copy is as good as this one.
      if (code !== "EEXIST" && code !== "ENOTEMPTY") throw fromSystem(e, "rename layer", final);
      this.discard(tmp);
    }
  }

  /** Moves a tree out of sight at once, then removes it; what cannot be removed stays in trash/. */
  discard(p: string): void {
    const to = path.join(this.root, "trash", tmpName());
    try {
      fs.renameSync(p, to);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      log("debug", `could not remove ${JSON.stringify(p)}: ${(e as Error).message}`);
      return;
    }
    this.tryRemove(to);
  }

  private tryRemove(p: string): boolean {
    try {
      this.remover(p);
      return true;
    } catch (e) {
      log("debug", `could not remove ${JSON.stringify(p)}: ${(e as Error).message}`);
      return false;
    }
  }

  /**
   * Removes what is left in trash/ (trees a user could not remove: files of other owners from
   * a layer unpacked in a user namespace) and the temporary files of tinyc processes that are
   * gone. Returns how many entries stay.
   */
  cleanUp(): number {
    let left = 0;
    for (const name of fs.readdirSync(path.join(this.root, "trash"))) {
      if (!this.tryRemove(path.join(this.root, "trash", name))) left++;
    }
    for (const dir of ["tmp", "layers", "blobs/sha256", "."]) {
      for (const name of fs.readdirSync(path.join(this.root, dir))) {
        const pid = /^\.tmp-([0-9]+)-/.exec(name)?.[1];
        if (pid && !processAlive(Number(pid))) this.discard(path.join(this.root, dir, name));
      }
    }
    return left;
  }

  /** Runs FN holding the store's lock (an flock: it goes away with a process that dies). */
  async withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    const file = path.join(this.root, "images.lock");
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      await this.lockFd(fd, file);
      return await fn();
    } finally {
      fs.closeSync(fd);
    }
  }

  private async lockFd(fd: number, file: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        flock(fd, LOCK.EX | LOCK.NB);
        return;
      } catch (e) {
        const busy = e instanceof NativeError && e.errno === 11;
        if (!busy) throw new TinycError(`lock ${JSON.stringify(file)}: ${(e as Error).message}`);
        if (Date.now() > deadline) throw new TinycError(`lock ${JSON.stringify(file)}: timed out`);
        await sleep(25);
      }
    }
  }

  private readImages(): ImagesFile {
    const file = path.join(this.root, "images.json");
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, images: {} };
      throw fromSystem(e, "read", file);
    }
    try {
      const data = JSON.parse(text);
      if (data?.version !== 1 || typeof data.images !== "object") throw new Error("bad form");
      return data;
    } catch {
      throw new TinycError(`${JSON.stringify(file)} is damaged: not an image list`);
    }
  }

  /** Replaces images.json by rename; call it holding the lock. */
  private writeImages(data: ImagesFile): void {
    const file = path.join(this.root, "images.json");
    const tmp = path.join(this.root, tmpName());
    try {
      const fd = fs.openSync(tmp, "wx", 0o644);
      fs.writeSync(fd, JSON.stringify(data, null, 1) + "\n");
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw fromSystem(e, "write", file);
    }
  }

  private records(data = this.readImages()): ImageRecord[] {
    return Object.entries(data.images).map(([manifest, r]) => ({ manifest, ...r }));
  }

  private load(r: ImageRecord): Image {
    const manifestDoc = parseManifest(this.readBlob(r.manifest));
    const config = parseConfig(this.readBlob(manifestDoc.config.digest));
    return { ...r, manifestDoc, config };
  }

  listImages(): Image[] {
    return this.records().map((r) => this.load(r));
  }

  private findRecord(text: string, records = this.records()): ImageRecord | undefined {
    const hex = /^(sha256:)?([a-f0-9]{3,64})$/.exec(text);
    if (hex && hex[2].length === 64) {
      const d = `sha256:${hex[2]}`;
      return records.find((r) => r.id === d || r.manifest === d);
    }
    let ref: Reference | undefined;
    try {
      ref = parseReference(text);
    } catch (e) {
      if (!hex) throw e;
    }
    const byName = ref && findByReference(records, ref);
    if (byName || !hex) return byName;
    const matches = records.filter((r) => r.id.slice(7).startsWith(hex[2]));
    const ids = new Set(matches.map((r) => r.id));
    if (ids.size > 1) throw new TinycError(`image id ${JSON.stringify(text)} is ambiguous`);
    return matches[0];
  }

  findImage(text: string): Image | undefined {
    const r = this.findRecord(text);
    return r && this.load(r);
  }

  resolveImage(text: string): Image {
    const img = this.findImage(text);
    if (!img) throw new TinycError(`no such image: ${JSON.stringify(text)}`);
    return img;
  }

  /**
   * Records the image whose manifest (and everything it names) is in the store, under NAMES
   * (normalized references) and DIGESTS (repo@digest). A name that another image had moves
   * here; that image stays, untagged, as docker keeps it.
   */
  async addImage(manifest: string, names: string[], digests: string[] = []): Promise<Image> {
    return this.withLock(() => {
      const data = this.readImages();
      const doc = parseManifest(this.readBlob(manifest));
      const config = parseConfig(this.readBlob(doc.config.digest));
      const size = this.checkComplete(doc, config);
      for (const [key, r] of Object.entries(data.images)) {
        if (key === manifest) continue;
        r.names = r.names.filter((n) => !names.includes(n));
      }
      const old = data.images[manifest];
      data.images[manifest] = {
        id: doc.config.digest,
        names: [...new Set([...(old?.names ?? []), ...names])],
        digests: [...new Set([...(old?.digests ?? []), ...digests])],
        added: old?.added ?? new Date().toISOString(),
        size,
      };
      this.writeImages(data);
      return { manifest, ...data.images[manifest], manifestDoc: doc, config };
    });
  }

  /** Every blob and layer of the image must be there; returns the layers' uncompressed size. */
  private checkComplete(doc: Manifest, config: ImageConfigFile): number {
    if (config.rootfs.diff_ids.length !== doc.layers.length) {
      throw new TinycError("image config and manifest disagree on the number of layers");
    }
    let size = 0;
    doc.layers.forEach((l, i) => {
      const diffId = config.rootfs.diff_ids[i];
      if (!this.hasBlob(l.digest) || !this.hasLayer(diffId)) {
        throw new TinycError(
          `layer ${JSON.stringify(l.digest)} went missing from the store: try again`,
        );
      }
      size += this.layerNotes(diffId).size;
    });
    return size;
  }

  async tag(source: string, target: string): Promise<void> {
    const img = this.resolveImage(source);
    const name = formatReference(parseReference(target));
    if (parseReference(target).digest) {
      throw new TinycError(`cannot tag with a digest: ${JSON.stringify(target)}`);
    }
    await this.addImage(img.manifest, [name]);
  }

  /**
   * docker rmi: a name is untagged, and the image deleted once no name is left; an id deletes
   * the image, which needs FORCE when it still has more than one name. Blobs and layers no
   * other image uses go with it. INUSE names a container using the image, which refuses it.
   */
  async removeImage(
    text: string,
    force = false,
    inUse?: (img: ImageRecord) => string | undefined,
  ): Promise<{ untagged: string[]; deleted: string[] }> {
    return this.withLock(() => {
      const data = this.readImages();
      const records = this.records(data);
      const r = this.findRecord(text, records);
      if (!r) throw new TinycError(`no such image: ${JSON.stringify(text)}`);
      const byName = this.namedBy(r, text);
      const entry = data.images[r.manifest];
      // Untagging leaves the image while another tag names it; the last tag takes it along.
      if (byName && r.names.some((n) => n !== byName)) {
        entry.names = entry.names.filter((n) => n !== byName);
        entry.digests = entry.digests.filter((n) => n !== byName);
        this.writeImages(data);
        return { untagged: [shortName(byName)], deleted: [] };
      }
      const untagged = [...r.names, ...r.digests];
      if (!byName && r.names.length > 1 && !force) {
        throw new TinycError(
          `unable to delete ${r.id.slice(7, 19)} (must be forced): ` +
            "image is referenced in multiple repositories",
        );
      }
      const user = inUse?.(r);
      if (user && !force) {
        throw new TinycError(`unable to remove image ${JSON.stringify(text)}: in use by ${user}`);
      }
      delete data.images[r.manifest];
      this.writeImages(data);
      const deleted = this.collect(r, this.records(data));
      this.cleanUp();
      return { untagged: untagged.map(shortName), deleted };
    });
  }

  /**
   * Takes every name and digest reference off the image TEXT names; the image itself stays,
   * nameless, for the containers made from it. Returns the names as docker prints them.
   */
  async untagAll(text: string): Promise<string[]> {
    return this.withLock(() => {
      const data = this.readImages();
      const r = this.findRecord(text, this.records(data));
      if (!r) throw new TinycError(`no such image: ${JSON.stringify(text)}`);
      const entry = data.images[r.manifest];
      const gone = [...entry.names, ...entry.digests];
      entry.names = [];
      entry.digests = [];
      this.writeImages(data);
      return gone.map(shortName);
    });
  }

  /** The name of R that TEXT spelled, when TEXT is a name and not an id. */
  private namedBy(r: ImageRecord, text: string): string | undefined {
    let ref: Reference;
    try {
      ref = parseReference(text);
    } catch {
      return undefined;
    }
    const full = formatReference(ref);
    return [...r.names, ...r.digests].find((n) => n === full);
  }

  /** Removes the blobs and layers of R that no image in OTHERS uses; returns their digests. */
  private collect(r: ImageRecord, others: ImageRecord[]): string[] {
    const keepBlobs = new Set<string>();
    const keepLayers = new Set<string>();
    for (const o of others) {
      for (const b of this.blobsOf(o)) keepBlobs.add(b);
      for (const l of this.diffIdsOf(o)) keepLayers.add(l);
    }
    // The layers are named by the config, so they are looked up before any blob goes.
    const layers = this.diffIdsOf(r);
    const deleted: string[] = [];
    for (const b of this.blobsOf(r)) {
      if (keepBlobs.has(b)) continue;
      fs.rmSync(this.blobPath(b), { force: true });
      deleted.push(b);
    }
    for (const l of layers) {
      if (!keepLayers.has(l)) this.discard(this.layerDir(l));
    }
    return deleted;
  }

  private blobsOf(r: ImageRecord): string[] {
    try {
      const doc = parseManifest(this.readBlob(r.manifest));
      return [r.manifest, doc.config.digest, ...doc.layers.map((l) => l.digest)];
    } catch {
      return [r.manifest];
    }
  }

  private diffIdsOf(r: ImageRecord): string[] {
    try {
      const doc = parseManifest(this.readBlob(r.manifest));
      return parseConfig(this.readBlob(doc.config.digest)).rootfs.diff_ids;
    } catch {
      return [];
    }
  }

  /** Takes back what a failed operation added, unless an image uses it by now. */
  async rollback(changes: Changes): Promise<void> {
    if (changes.blobs.size === 0 && changes.layers.size === 0) return;
    await this.withLock(() => {
      const records = this.records();
      const usedBlobs = new Set(records.flatMap((r) => this.blobsOf(r)));
      const usedLayers = new Set(records.flatMap((r) => this.diffIdsOf(r)));
      for (const b of changes.blobs) {
        if (!usedBlobs.has(b)) fs.rmSync(this.blobPath(b), { force: true });
      }
      for (const l of changes.layers) {
        if (!usedLayers.has(l)) this.discard(this.layerDir(l));
      }
    });
  }

  imageConfig(img: Image): ContainerConfig {
    return img.config.config ?? {};
  }

  /** The image's unpacked layers, base layer first (overlay's lowerdir lists them reversed). */
  layerDirs(img: Image): string[] {
    return img.config.rootfs.diff_ids.map((d) => path.join(this.layerDir(d), "diff"));
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function checkBlob(digest: string, size: number, expect: { digest?: string; size?: number }) {
  if (expect.digest && digest !== expect.digest) {
    throw new TinycError(
      `digest mismatch for ${JSON.stringify(expect.digest)}: got ${JSON.stringify(digest)}`,
    );
  }
  if (expect.size !== undefined && size !== expect.size) {
    throw new TinycError(
      `size mismatch for ${JSON.stringify(expect.digest ?? digest)}: got ${size} bytes, ` +
        `want ${expect.size}`,
    );
  }
}

function findByReference(records: ImageRecord[], ref: Reference): ImageRecord | undefined {
  if (ref.digest) {
    const want = `${repositoryName(ref)}@${ref.digest}`;
    return records.find((r) => r.digests.includes(want));
  }
  const full = formatReference(ref);
  return records.find((r) => r.names.includes(full));
}

/** A stored name as docker prints it ("debian:bookworm"). */
export function shortName(name: string): string {
  return familiarReference(parseReference(name));
}
