// `pull`: a reference's manifest (through an index when the registry has one per platform),
// its config and its layers into the store, each checked against its digest, the layers
// unpacked, and the name recorded last. A pull that fails takes back what it added.

import { TinycError } from "../errors";
import { log } from "../log";
import { formatReference, parseReference, repositoryName, type Reference } from "./reference";
import { RegistryClient } from "./registry";
import { newChanges, type Changes, type Image, type ImageStore } from "./store";
import {
  INDEX_TYPES,
  MANIFEST_TYPES,
  hostPlatform,
  parseConfig,
  parseIndex,
  parseManifest,
  platformMatches,
  platformString,
  type Descriptor,
  type Manifest,
  type Platform,
} from "./types";

export interface Progress {
  /** A layer's download begins; TOTAL bytes are expected. */
  start(id: string, total: number): void;
  advance(id: string, bytes: number): void;
  /** What is happening to a layer now ("extracting"). */
  step(id: string, status: string): void;
  /** A layer is done: "already exists", "pull complete"... */
  end(id: string, status: string): void;
  note(text: string): void;
}

export const silentProgress: Progress = {
  start() {},
  advance() {},
  step() {},
  end() {},
  note() {},
};

export interface PullOptions {
  /** The platform to choose from an index; the host's when left out. */
  platform?: Platform;
  progress?: Progress;
  client?: RegistryClient;
}

/** Layers downloaded at the same time. */
const PARALLEL = 3;

interface Resolved {
  manifest: Manifest;
  bytes: Uint8Array;
  digest: string;
  /** The digest the reference pointed at: the index's when there was one. */
  top: string;
}

async function resolveManifest(
  client: RegistryClient,
  ref: Reference,
  want: Platform,
  explicit: boolean,
): Promise<Resolved> {
  const top = await client.manifest(ref.repository, ref.digest ?? ref.tag!);
  if (MANIFEST_TYPES.includes(top.mediaType as any)) {
    const manifest = parseManifest(top.bytes);
    return { manifest, bytes: top.bytes, digest: top.digest, top: top.digest };
  }
  if (!INDEX_TYPES.includes(top.mediaType as any)) {
    throw new TinycError(`unsupported manifest media type ${JSON.stringify(top.mediaType)}`);
  }
  const entry = choosePlatform(parseIndex(top.bytes).manifests, want, explicit);
  const m = await client.manifest(ref.repository, entry.digest);
  if (!MANIFEST_TYPES.includes(m.mediaType as any)) {
    throw new TinycError(`unsupported manifest media type ${JSON.stringify(m.mediaType)}`);
  }
  return { manifest: parseManifest(m.bytes), bytes: m.bytes, digest: m.digest, top: top.digest };
}

function choosePlatform(entries: Descriptor[], want: Platform, explicit: boolean): Descriptor {
  const runnable = entries.filter((d) => MANIFEST_TYPES.includes(d.mediaType as any));
  const found =
    runnable.find((d) => platformMatches(d.platform, want)) ??
    // Without a variant asked for, any variant of the architecture will do.
    (explicit
      ? undefined
      : runnable.find((d) => platformMatches(d.platform, { ...want, variant: undefined })));
  if (found) return found;
  const have = runnable
    .filter((d) => d.platform && d.platform.os !== "unknown")
    .map((d) => platformString(d.platform!));
  throw new TinycError(
    `no manifest for platform ${JSON.stringify(platformString(want))}` +
      (have.length ? `: the image has ${have.map((h) => JSON.stringify(h)).join(", ")}` : ""),
  );
}

async function fetchBlob(
  store: ImageStore,
  client: RegistryClient,
  repo: string,
  d: Descriptor,
  changes: Changes,
  progress?: Progress,
): Promise<void> {
  if (store.hasBlob(d.digest)) return;
  const id = d.digest.slice(7, 19);
  progress?.start(id, d.size);
  const stream = await client.blob(repo, d.digest);
  await store.putBlob(stream, { digest: d.digest, size: d.size }, changes, (n) =>
    progress?.advance(id, n),
  );
}

/** Wraps tasks so that at most N run at once, started in the order they were asked for. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

async function fetchLayers(
  store: ImageStore,
  client: RegistryClient,
  repo: string,
  r: Resolved,
  diffIds: string[],
  changes: Changes,
  progress: Progress,
): Promise<void> {
  const layers = r.manifest.layers;
  const had = layers.map((l, i) => store.hasBlob(l.digest) && store.hasLayer(diffIds[i]));
  const limit = limiter(PARALLEL);
  const downloads = layers.map((l) =>
    limit(() => fetchBlob(store, client, repo, l, changes, progress)),
  );
  // Failures are taken up in order below; until then they must not count as unhandled.
  for (const d of downloads) d.catch(() => {});
  let failure: unknown;
  for (let i = 0; i < layers.length; i++) {
    const id = layers[i].digest.slice(7, 19);
    try {
      if (failure) continue;
      await downloads[i];
      if (!had[i]) progress.step(id, "extracting");
      await store.ensureLayer(diffIds[i], layers[i].digest, changes);
      progress.end(id, had[i] ? "already exists" : "pull complete");
    } catch (e) {
      failure ??= e;
    }
  }
  await Promise.allSettled(downloads);
  if (failure) throw failure;
}

export async function pull(
  store: ImageStore,
  text: string,
  opts: PullOptions = {},
): Promise<Image> {
  const ref = parseReference(text);
  const changes = newChanges();
  try {
    return await pullInto(store, ref, opts, changes);
  } catch (e) {
    await store.rollback(changes);
    const err = e instanceof TinycError ? e : new TinycError(String((e as Error)?.message ?? e));
    throw err.wrap(`pull ${JSON.stringify(text)}`);
  }
}

async function pullInto(
  store: ImageStore,
  ref: Reference,
  opts: PullOptions,
  changes: Changes,
): Promise<Image> {
  const progress = opts.progress ?? silentProgress;
  const client = opts.client ?? new RegistryClient(ref.registry);
  const want = opts.platform ?? hostPlatform();
  const r = await resolveManifest(client, ref, want, !!opts.platform);
  const cfgDesc = r.manifest.config;
  await fetchBlob(store, client, ref.repository, cfgDesc, changes);
  const config = parseConfig(store.readBlob(cfgDesc.digest));
  checkConfigPlatform(config, want, !!opts.platform);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== r.manifest.layers.length) {
    throw new TinycError("image config and manifest disagree on the number of layers");
  }
  await fetchLayers(store, client, ref.repository, r, diffIds, changes, progress);
  await store.putBlobBytes(r.bytes, r.digest, changes);
  progress.note(`digest: ${r.top}`);
  const names = ref.digest ? [] : [formatReference(ref)];
  return store.addImage(r.digest, names, [`${repositoryName(ref)}@${r.top}`]);
}

function checkConfigPlatform(
  config: { os: string; architecture: string; variant?: string },
  want: Platform,
  explicit: boolean,
): void {
  if (platformMatches(config, { ...want, variant: explicit ? want.variant : undefined })) return;
  const have = platformString(config);
  if (explicit) {
    throw new TinycError(
      `image is for platform ${JSON.stringify(have)}, not ${JSON.stringify(platformString(want))}`,
    );
  }
  log("warn", `image is for platform ${JSON.stringify(have)}, not the host's`);
}
