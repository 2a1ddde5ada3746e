// Images in files: `load` reads a `docker save` tarball (manifest.json, as docker writes it
// before and since version 25) or an OCI image layout archive (oci-layout, index.json), plain
// or compressed; `save` writes one tarball that is both (docker 25's form: an OCI layout with
// manifest.json and repositories beside it); `import` makes a one-layer image from a root
// filesystem tarball, as `docker import` does.

import * as fs from "node:fs";
import * as path from "node:path";
import { TinycError, fromSystem } from "../errors";
import { decompress, detectCompression, fileStream, type ByteStream } from "./bytes";
import { formatReference, parseReference, familiarReference } from "./reference";
import { blobDiffId, newChanges, type Changes, type Image, type ImageStore } from "./store";
import { readTar, tarEnd, tarFile, tarHeader, tarPadding } from "./tar";
import { entryParts } from "./unpack";
import {
  INDEX_TYPES,
  MEDIA,
  MANIFEST_TYPES,
  hostPlatform,
  parseConfig,
  parseIndex,
  parseManifest,
  platformMatches,
  type ContainerConfig,
  type Descriptor,
  type ImageConfigFile,
  type Manifest,
} from "./types";

interface Member {
  file: string;
  digest: string;
  size: number;
}

/** The archive's files, each written to a temporary file with its digest taken on the way. */
class Unpacked {
  files = new Map<string, Member>();
  links = new Map<string, string>();
  constructor(readonly dir: string) {}

  get(name: string, seen = 0): Member | undefined {
    const key = entryParts(name, "archive").join("/");
    const m = this.files.get(key);
    if (m || seen > 16) return m;
    const link = this.links.get(key);
    return link !== undefined ? this.get(link, seen + 1) : undefined;
  }

  need(name: string): Member {
    const m = this.get(name);
    if (!m) throw new TinycError(`archive has no ${JSON.stringify(name)}`);
    return m;
  }

  json(name: string): any {
    const m = this.need(name);
    if (m.size > 16 << 20)
      throw new TinycError(`${JSON.stringify(name)} in the archive is too large`);
    try {
      return JSON.parse(fs.readFileSync(m.file, "utf8"));
    } catch {
      throw new TinycError(`${JSON.stringify(name)} in the archive is not valid JSON`);
    }
  }
}

async function spool(source: ByteStream, dir: string): Promise<Unpacked> {
  const out = new Unpacked(dir);
  let n = 0;
  for await (const e of readTar(await decompress(source))) {
    const key = entryParts(e.name, "archive").join("/");
    if (e.type === "symlink" || e.type === "hardlink") {
      // docker save (before 25) links a layer that two images share; targets are relative.
      const target =
        e.type === "symlink" ? path.posix.join(path.posix.dirname(key), e.linkname) : e.linkname;
      out.links.set(key, target);
      continue;
    }
    if (e.type !== "file") continue;
    const file = path.join(dir, String(n++));
    const hasher = new Bun.CryptoHasher("sha256");
    let size = 0;
    const fd = fs.openSync(file, "wx", 0o600);
    try {
      for await (const c of e.body()) {
        hasher.update(c);
        size += c.length;
        let off = 0;
        while (off < c.length) off += fs.writeSync(fd, c, off);
      }
    } finally {
      fs.closeSync(fd);
    }
    out.files.set(key, { file, digest: `sha256:${hasher.digest("hex")}`, size });
  }
  return out;
}

/** Moves a spooled file into the blobs (or drops it when the store has it already). */
function adopt(store: ImageStore, m: Member, changes: Changes): void {
  store.adoptFile(m.file, m.digest, changes);
}

function layerMediaType(file: string): string {
  const fd = fs.openSync(file, "r");
  const head = new Uint8Array(4);
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  const kind = detectCompression(head);
  return kind === "gzip"
    ? MEDIA.ociLayerGzip
    : kind === "zstd"
      ? MEDIA.ociLayerZstd
      : MEDIA.ociLayer;
}

async function finishImage(
  store: ImageStore,
  manifest: Manifest,
  manifestBytes: Uint8Array,
  names: string[],
  changes: Changes,
): Promise<Image> {
  const config = parseConfig(store.readBlob(manifest.config.digest));
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new TinycError("image config and manifest disagree on the number of layers");
  }
  for (let i = 0; i < manifest.layers.length; i++) {
    await store.ensureLayer(config.rootfs.diff_ids[i], manifest.layers[i].digest, changes);
  }
  const digest = await store.putBlobBytes(manifestBytes, undefined, changes);
  return store.addImage(digest, names, []);
}

function normalizeNames(tags: unknown): string[] {
  if (!Array.isArray(tags)) return [];
  return tags.filter((t) => typeof t === "string").map((t) => formatReference(parseReference(t)));
}

async function loadDockerSave(store: ImageStore, a: Unpacked, changes: Changes): Promise<Image[]> {
  const entries = a.json("manifest.json");
  if (!Array.isArray(entries)) throw new TinycError("manifest.json in the archive is not a list");
  const images: Image[] = [];
  for (const e of entries) {
    if (typeof e?.Config !== "string" || !Array.isArray(e.Layers)) {
      throw new TinycError("manifest.json in the archive has an entry without Config or Layers");
    }
    const cfg = a.need(e.Config);
    parseConfig(fs.readFileSync(cfg.file));
    adopt(store, cfg, changes);
    const layers: Descriptor[] = [];
    for (const l of e.Layers) {
      const m = a.need(String(l));
      adopt(store, m, changes);
      layers.push({
        mediaType: layerMediaType(store.blobPath(m.digest)),
        digest: m.digest,
        size: m.size,
      });
    }
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: cfg.digest, size: cfg.size },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    images.push(await finishImage(store, manifest, bytes, normalizeNames(e.RepoTags), changes));
  }
  return images;
}

function blobOf(a: Unpacked, digest: string): Member {
  const m = a.need(`blobs/sha256/${digest.slice(7)}`);
  if (m.digest !== digest)
    throw new TinycError(
      `digest mismatch for ${JSON.stringify(digest)}: got ${JSON.stringify(m.digest)}`,
    );
  return m;
}

/** The image's name from an OCI index entry: containerd's full name, or a ref.name that is one. */
function ociName(d: Descriptor): string[] {
  const full = d.annotations?.["io.containerd.image.name"];
  const ref = d.annotations?.["org.opencontainers.image.ref.name"];
  const name = full ?? (ref && /[/:]/.test(ref) ? ref : undefined);
  return name ? normalizeNames([name]) : [];
}

/** The manifests an index entry stands for: itself, or the host's one of a nested index. */
function platformManifest(a: Unpacked, d: Descriptor): Descriptor {
  if (MANIFEST_TYPES.includes(d.mediaType as any)) return d;
  if (!INDEX_TYPES.includes(d.mediaType as any)) {
    throw new TinycError(`unsupported manifest media type ${JSON.stringify(d.mediaType)}`);
  }
  const inner = parseIndex(fs.readFileSync(blobOf(a, d.digest).file));
  const want = hostPlatform();
  const found = inner.manifests.find((m) => platformMatches(m.platform, want));
  if (!found) throw new TinycError("archive has no manifest for the host's platform");
  return found;
}

async function loadOciLayout(store: ImageStore, a: Unpacked, changes: Changes): Promise<Image[]> {
  const index = parseIndex(Buffer.from(JSON.stringify(a.json("index.json"))));
  const images: Image[] = [];
  for (const top of index.manifests) {
    const d = platformManifest(a, top);
    const mm = blobOf(a, d.digest);
    const bytes = fs.readFileSync(mm.file);
    const manifest = parseManifest(bytes);
    adopt(store, blobOf(a, manifest.config.digest), changes);
    for (const l of manifest.layers) adopt(store, blobOf(a, l.digest), changes);
    images.push(await finishImage(store, manifest, bytes, ociName(top), changes));
  }
  return images;
}

/** Loads every image of a docker-save or OCI archive (plain, gzip or zstd). */
export async function loadArchive(store: ImageStore, source: ByteStream): Promise<Image[]> {
  const changes = newChanges();
  const dir = store.tempDir();
  try {
    const a = await spool(source, dir);
    if (a.get("manifest.json")) return await loadDockerSave(store, a, changes);
    if (a.get("index.json")) return await loadOciLayout(store, a, changes);
    throw new TinycError("not an image archive: no manifest.json or index.json");
  } catch (e) {
    await store.rollback(changes);
    throw e instanceof TinycError ? e.wrap("load") : fromSystem(e, "load");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Where `save` writes: a file descriptor, written in full. */
class Sink {
  constructor(private fd: number) {}

  write(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      try {
        off += fs.writeSync(this.fd, data, off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
        Bun.sleepSync(5);
      }
    }
  }

  async file(name: string, src: string, size: number): Promise<void> {
    this.write(tarHeader({ name, type: "file", size, mode: 0o644 }));
    let n = 0;
    for await (const c of fileStream(src)) {
      n += c.length;
      this.write(c);
    }
    if (n !== size) throw new TinycError(`${JSON.stringify(src)} changed while it was saved`);
    this.write(tarPadding(size));
  }
}

function saveIndexes(store: ImageStore, images: { img: Image; names: string[] }[]) {
  const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] as Descriptor[] };
  const manifestJson: object[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const { img, names } of images) {
    const size = fs.statSync(store.blobPath(img.manifest)).size;
    const mediaType = img.manifestDoc.mediaType ?? MEDIA.ociManifest;
    for (const n of names.length ? names : [undefined]) {
      const annotations: Record<string, string> = {};
      if (n) {
        annotations["io.containerd.image.name"] = n;
        annotations["org.opencontainers.image.ref.name"] = parseReference(n).tag ?? "latest";
      }
      index.manifests.push({ mediaType, digest: img.manifest, size, annotations });
    }
    const short = names.map((n) => familiarReference(parseReference(n)));
    const layers = img.manifestDoc.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`);
    manifestJson.push({
      Config: `blobs/sha256/${img.id.slice(7)}`,
      RepoTags: short,
      Layers: layers,
    });
    const top = img.manifestDoc.layers.at(-1)?.digest.slice(7) ?? "";
    for (const s of short) {
      const ref = parseReference(s);
      const repo = s.slice(0, s.length - (ref.tag!.length + 1));
      (repositories[repo] ??= {})[ref.tag!] = top;
    }
  }
  return { index, manifestJson, repositories };
}

/** Writes the images (each with the names it was asked by, or all its names for an id). */
export async function saveArchive(store: ImageStore, texts: string[], fd: number): Promise<void> {
  const chosen = new Map<string, { img: Image; names: string[] }>();
  for (const t of texts) {
    const img = store.resolveImage(t);
    const entry = chosen.get(img.manifest) ?? { img, names: [] };
    const ref = tryReference(t);
    const asked = ref && img.names.includes(ref) ? [ref] : img.names;
    entry.names = [...new Set([...entry.names, ...asked])];
    chosen.set(img.manifest, entry);
  }
  const sink = new Sink(fd);
  const written = new Set<string>();
  for (const { img } of chosen.values()) {
    const blobs = [img.id, ...img.manifestDoc.layers.map((l) => l.digest), img.manifest];
    for (const b of blobs) {
      if (written.has(b)) continue;
      written.add(b);
      const file = store.blobPath(b);
      await sink.file(`blobs/sha256/${b.slice(7)}`, file, fs.statSync(file).size);
    }
  }
  const { index, manifestJson, repositories } = saveIndexes(store, [...chosen.values()]);
  const json = (v: unknown) => Buffer.from(JSON.stringify(v) + "\n");
  sink.write(tarFile("oci-layout", json({ imageLayoutVersion: "1.0.0" })));
  sink.write(tarFile("index.json", json(index)));
  sink.write(tarFile("manifest.json", json(manifestJson)));
  sink.write(tarFile("repositories", json(repositories)));
  sink.write(tarEnd());
}

function tryReference(text: string): string | undefined {
  try {
    return formatReference(parseReference(text));
  } catch {
    return undefined;
  }
}

export interface ImportOptions {
  /** Dockerfile-style changes: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME... */
  changes?: string[];
  message?: string;
  /** What the history says the layer came from ("-" for stdin). */
  source?: string;
}

/** A Dockerfile instruction's argument list: JSON form, or the shell form run by /bin/sh -c. */
function execForm(arg: string): string[] {
  if (arg.trimStart().startsWith("[")) {
    try {
      const v = JSON.parse(arg);
      if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v;
    } catch {
      // not JSON: the shell form
    }
  }
  return ["/bin/sh", "-c", arg];
}

/** KEY=VALUE pairs (quotes allowed) or the old "KEY VALUE" form. */
function pairs(arg: string): [string, string][] {
  const words: string[] = arg.match(/(?:[^\s"']+|"(?:[^"\\]|\\.)*"|'[^']*')+/g) ?? [];
  const first = words[0];
  if (first !== undefined && !first.includes("=")) {
    return [[first, arg.slice(arg.indexOf(first) + first.length).trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf("=");
    const v = w
      .slice(eq + 1)
      .replace(/^"(.*)"$/s, "$1")
      .replace(/^'(.*)'$/s, "$1");
    return [w.slice(0, eq), v.replace(/\\(.)/g, "$1")];
  });
}

export function applyChange(c: ContainerConfig, change: string): void {
  const m = /^\s*(\w+)\s+(.*)$/s.exec(change);
  if (!m) throw new TinycError(`invalid change ${JSON.stringify(change)}`);
  const [, word, arg] = m;
  switch (word.toUpperCase()) {
    case "CMD":
      c.Cmd = execForm(arg);
      return;
    case "ENTRYPOINT":
      c.Entrypoint = execForm(arg);
      return;
    case "ENV":
      for (const [k, v] of pairs(arg))
        c.Env = [...(c.Env ?? []).filter((e) => !e.startsWith(`${k}=`)), `${k}=${v}`];
      return;
    case "LABEL":
      for (const [k, v] of pairs(arg)) c.Labels = { ...c.Labels, [k]: v };
      return;
    case "EXPOSE":
      for (const p of arg.trim().split(/\s+/))
        c.ExposedPorts = { ...c.ExposedPorts, [p.includes("/") ? p : `${p}/tcp`]: {} };
      return;
    case "VOLUME":
      for (const v of arg.trim().startsWith("[") ? execForm(arg) : arg.trim().split(/\s+/))
        c.Volumes = { ...c.Volumes, [v]: {} };
      return;
    case "USER":
      c.User = arg.trim();
      return;
    case "WORKDIR":
      c.WorkingDir = arg.trim();
      return;
    case "STOPSIGNAL":
      c.StopSignal = arg.trim();
      return;
  }
  throw new TinycError(`change ${JSON.stringify(word)} is not supported by import`);
}

/** docker import: SOURCE (a root filesystem tarball) as the one layer of a new image. */
export async function importRootfs(
  store: ImageStore,
  source: ByteStream,
  name: string | undefined,
  opts: ImportOptions = {},
): Promise<Image> {
  const changes = newChanges();
  const container: ContainerConfig = {};
  for (const c of opts.changes ?? []) applyChange(container, c);
  const names = name ? [formatReference(parseReference(name))] : [];
  try {
    const layer = await store.putBlob(source, {}, changes);
    const file = store.blobPath(layer.digest);
    const diffId = await blobDiffId(file);
    await store.ensureLayer(diffId, layer.digest, changes);
    const now = new Date().toISOString();
    const p = hostPlatform();
    const config: ImageConfigFile = {
      created: now,
      architecture: p.architecture,
      os: p.os,
      ...(p.variant ? { variant: p.variant } : {}),
      config: container,
      rootfs: { type: "layers", diff_ids: [diffId] },
      history: [
        {
          created: now,
          created_by: `tinyc import ${opts.source ?? "-"}`,
          comment: opts.message ?? "",
        },
      ],
    };
    const cfgBytes = Buffer.from(JSON.stringify(config));
    const cfgDigest = await store.putBlobBytes(cfgBytes, undefined, changes);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: cfgDigest, size: cfgBytes.length },
      layers: [{ mediaType: layerMediaType(file), digest: layer.digest, size: layer.size }],
    };
    return await finishImage(
      store,
      manifest,
      Buffer.from(JSON.stringify(manifest)),
      names,
      changes,
    );
  } catch (e) {
    await store.rollback(changes);
    throw e instanceof TinycError ? e.wrap("import") : fromSystem(e, "import");
  }
}
