// The image half of the Engine API: list, inspect, history, tag, remove, pull (with docker's
// JSON progress lines), import, load and save, all on the image store. Request bodies (image
// tarballs) are read as they arrive and never held whole in memory; a save is written to a
// temporary file of the store first, then sent.

import * as fs from "node:fs";
import * as path from "node:path";
import { TinycError } from "../errors";
import type { Credentials } from "../image/auth";
import { fileStream } from "../image/bytes";
import { allMetas } from "../image/containers";
import type { Progress } from "../image/pull";
import {
  familiarReference,
  formatReference,
  normalizeRegistry,
  parseReference,
  type Reference,
} from "../image/reference";
import { shortName, type Image } from "../image/store";
import { hostPlatform, parsePlatform, platformMatches, type History, type Platform } from "../image/types";
import type { Context, Route } from "./api";
import { labelsMatch, parseFilters } from "./events";
import { HttpError, type Request, type Response } from "./http";

const ZERO_TIME = "0001-01-01T00:00:00Z";

function param(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    throw new HttpError(400, "malformed percent-encoding in the path");
  }
}

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v !== null && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

/**
 * An error of the store as an HTTP error: STATUS for what the request got wrong, 500 for what a
 * system call refused (disk full, permissions). Anything else is a bug and goes up as it is.
 */
function httpError(e: unknown, status: number): unknown {
  if (e instanceof HttpError) return e;
  if (e instanceof TinycError) return new HttpError(e.code ? 500 : status, e.text());
  return e;
}

/** The status a failed pull answers with, from what the registry said. */
function pullStatus(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (!(e instanceof TinycError)) return 500;
  const m = e.message;
  if (/\binvalid reference\b/.test(m)) return 400;
  if (/: not found\b/.test(m)) return 404;
  // Not 401: on that the docker CLI asks for credentials on its standard input.
  if (/: (unauthorized|authentication required|access denied)\b/.test(m)) return 403;
  return 500;
}

function parseRef(text: string): Reference {
  try {
    return parseReference(text);
  } catch (e) {
    throw httpError(e, 400);
  }
}

function unix(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

function repoTags(img: Image): string[] {
  return img.names.map(shortName);
}

function repoDigests(img: Image): string[] {
  return img.digests.map(shortName);
}

/** Go's path.Match, which docker's reference filter uses: * and ? stop at a slash. */
function globRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) throw new HttpError(400, `invalid reference filter ${JSON.stringify(pattern)}: unclosed [`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("^") || cls.startsWith("!")) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/[\]\\]/g, "\\$&")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** docker's FamiliarMatch: the pattern against "name:tag" or against "name" alone. */
function referenceMatches(patterns: RegExp[], full: string): boolean {
  const ref = parseReference(full);
  const familiar = familiarReference(ref);
  const name = familiarReference({ registry: ref.registry, repository: ref.repository });
  return patterns.some((p) => p.test(familiar) || p.test(name));
}

const LIST_FILTERS = ["reference", "dangling", "label", "before", "since"];

function listImages(x: Context, req: Request) {
  let f: Map<string, string[]>;
  try {
    f = parseFilters(req.query.get("filters"));
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
  for (const k of f.keys()) if (!LIST_FILTERS.includes(k)) throw new HttpError(400, `invalid filter '${k}'`);
  const dangling = f.get("dangling")?.map((v) => v.toLowerCase());
  if (dangling?.some((v) => !["true", "false", "1", "0"].includes(v))) {
    throw new HttpError(400, `invalid filter 'dangling=${dangling.join(",")}'`);
  }
  const danglingOnly = dangling ? dangling.includes("true") || dangling.includes("1") : undefined;
  const patterns = f.get("reference")?.map(globRegExp);
  const images = x.store.listImages();
  const createdOf = (texts: string[] | undefined) =>
    texts?.map((t) => {
      const img = x.store.findImage(t);
      if (!img) throw new HttpError(404, `No such image: ${t}`);
      return unix(img.config.created);
    });
  const before = createdOf(f.get("before"));
  const since = createdOf(f.get("since"));
  const out = [];
  for (const img of images) {
    const created = unix(img.config.created);
    if (before && !before.every((t) => created < t)) continue;
    if (since && !since.every((t) => created > t)) continue;
    if (!labelsMatch(img.config.config?.Labels, f.get("label"))) continue;
    let tags = img.names;
    let digests = img.digests;
    if (patterns) {
      tags = tags.filter((n) => referenceMatches(patterns, n));
      digests = digests.filter((n) => referenceMatches(patterns, n));
      if (!tags.length && !digests.length) continue;
    }
    const isDangling = img.names.length === 0;
    if (danglingOnly !== undefined && danglingOnly !== isDangling) continue;
    const none = !tags.length && !digests.length;
    out.push({
      Id: img.id,
      ParentId: "",
      RepoTags: none ? ["<none>:<none>"] : tags.map(shortName),
      RepoDigests: none ? ["<none>@<none>"] : digests.map(shortName),
      Created: created,
      Size: img.size,
      VirtualSize: img.size,
      SharedSize: -1,
      Labels: img.config.config?.Labels ?? {},
      Containers: -1,
    });
  }
  out.sort((a, b) => b.Created - a.Created);
  return out;
}

/** The container config docker's inspect shows: every field, the image's values over them. */
function fullConfig(c: object | undefined) {
  return {
    Hostname: "",
    Domainname: "",
    User: "",
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: null,
    Cmd: null,
    Image: "",
    Volumes: null,
    WorkingDir: "",
    Entrypoint: null,
    OnBuild: null,
    Labels: null,
    ...(c ?? {}),
  };
}

function inspectImage(x: Context, img: Image) {
  const cfg = img.config as Image["config"] & { comment?: string; author?: string; docker_version?: string };
  const layers = x.store.layerDirs(img);
  return {
    Id: img.id,
    RepoTags: repoTags(img),
    RepoDigests: repoDigests(img),
    Parent: "",
    Comment: cfg.comment ?? cfg.history?.at(-1)?.comment ?? "",
    Created: cfg.created ?? ZERO_TIME,
    Container: "",
    ContainerConfig: fullConfig(undefined),
    DockerVersion: cfg.docker_version ?? "",
    Author: cfg.author ?? "",
    Config: fullConfig(cfg.config),
    Architecture: cfg.architecture,
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Os: cfg.os,
    Size: img.size,
    VirtualSize: img.size,
    GraphDriver: {
      Name: "overlay",
      Data: layers.length ? { LowerDir: [...layers].reverse().join(":") } : null,
    },
    RootFS: { Type: "layers", Layers: img.config.rootfs.diff_ids },
    Metadata: { LastTagTime: ZERO_TIME },
  };
}

/** docker history: the config's history, newest first, each layer with its size. */
function history(x: Context, img: Image) {
  const diffIds = img.config.rootfs.diff_ids;
  const entries =
    img.config.history && img.config.history.length
      ? img.config.history
      : diffIds.map((): History => ({ created: img.config.created }));
  let layer = 0;
  const rows = entries.map((h) => {
    let size = 0;
    if (!h.empty_layer && layer < diffIds.length) {
      try {
        size = x.store.layerNotes(diffIds[layer]).size;
      } catch {
        size = 0;
      }
      layer++;
    }
    return {
      Id: "<missing>",
      Created: unix(h.created),
      CreatedBy: h.created_by ?? "",
      Tags: null as string[] | null,
      Size: size,
      Comment: h.comment ?? "",
    };
  });
  rows.reverse();
  if (rows.length) {
    rows[0].Id = img.id;
    rows[0].Tags = repoTags(img);
  }
  return rows;
}

function lookup(x: Context, name: string): Image {
  let img: Image | undefined;
  try {
    img = x.store.findImage(name);
  } catch (e) {
    throw httpError(e, 400);
  }
  if (!img) throw new HttpError(404, `No such image: ${name}`);
  return img;
}

/** The containers (the daemon's and tinyc's own) made from the image: their names. */
function usersOf(x: Context, img: Image): string[] {
  const names = new Set<string>();
  for (const c of x.engine.containers.values()) if (c.rec.Image === img.id) names.add(c.rec.Name.replace(/^\//, ""));
  for (const m of allMetas()) if (m.imageId === img.id) names.add(m.name);
  return [...names];
}

/** The name among the image's names and digests that TEXT spells, when it is not an id. */
function spelledName(img: Image, text: string): string | undefined {
  let full: string;
  try {
    full = formatReference(parseReference(text));
  } catch {
    return undefined;
  }
  return [...img.names, ...img.digests].find((n) => n === full);
}

async function removeImage(x: Context, req: Request, name: string) {
  const force = flag(req.query, "force");
  const img = lookup(x, name);
  const byName = spelledName(img, name);
  const untagOnly = byName !== undefined && img.names.some((n) => n !== byName);
  if (!untagOnly) {
    if (!byName && img.names.length > 1 && !force) {
      throw new HttpError(
        409,
        `conflict: unable to delete ${img.id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`,
      );
    }
    const users = usersOf(x, img);
    if (users.length) {
      if (!force) {
        throw new HttpError(
          409,
          `conflict: unable to remove image ${name} (must force) - container ${users[0]} is using it`,
        );
      }
      // Forced: the names go, and the image stays for the containers that run from its layers.
      const untagged = await x.store.untagAll(img.manifest);
      for (const u of untagged) x.events.emit("image", "untag", img.id, { name: u });
      return untagged.map((u) => ({ Untagged: u }));
    }
  }
  let r: { untagged: string[]; deleted: string[] };
  try {
    r = await x.store.removeImage(name, force, (rec) => {
      const users = usersOf(x, img);
      return rec.id === img.id && users.length ? `container ${JSON.stringify(users[0])}` : undefined;
    });
  } catch (e) {
    if (e instanceof TinycError && /^unable to /.test(e.message)) throw new HttpError(409, `conflict: ${e.message}`);
    if (e instanceof TinycError && /^no such image/.test(e.message)) throw new HttpError(404, `No such image: ${name}`);
    throw httpError(e, 400);
  }
  const out: object[] = r.untagged.map((u) => ({ Untagged: u }));
  for (const u of r.untagged) x.events.emit("image", "untag", img.id, { name: u });
  // The config goes with the last image that names it: only then is the image id gone.
  if (r.deleted.includes(img.id)) {
    out.push({ Deleted: img.id });
    x.events.emit("image", "delete", img.id, { name });
  }
  const layers = new Set(img.manifestDoc.layers.map((l) => l.digest));
  for (const d of r.deleted) if (layers.has(d)) out.push({ Deleted: d });
  return out;
}

async function tagImage(x: Context, req: Request, res: Response, name: string) {
  const repo = req.query.get("repo");
  const tag = req.query.get("tag");
  if (!repo) throw new HttpError(400, "repo is required");
  if (tag && !/^[\w][\w.-]{0,127}$/.test(tag)) throw new HttpError(400, `invalid tag ${JSON.stringify(tag)}`);
  const target = tag ? `${repo}:${tag}` : repo;
  const ref = parseRef(target);
  if (ref.digest) throw new HttpError(400, `refusing to create a tag with a digest reference: ${target}`);
  const img = lookup(x, name);
  try {
    await x.store.addImage(img.manifest, [formatReference(ref)]);
  } catch (e) {
    throw httpError(e, 400);
  }
  x.events.emit("image", "tag", img.id, { name: familiarReference(ref) });
  await res.send(201);
}

/** X-Registry-Auth: base64 (URL-safe or not) of {"username","password","serveraddress"}. */
function registryAuth(header: string | undefined): Credentials | undefined {
  if (!header) return undefined;
  let v: any;
  try {
    v = JSON.parse(Buffer.from(header, "base64").toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid X-Registry-Auth header: not base64 of a JSON object");
  }
  if (!v || typeof v !== "object") throw new HttpError(400, "invalid X-Registry-Auth header: not a JSON object");
  if (typeof v.username === "string" && v.username && typeof v.password === "string" && v.password) {
    return { username: v.username, password: v.password };
  }
  if (typeof v.auth === "string" && v.auth) {
    const text = Buffer.from(v.auth, "base64").toString("utf8");
    const colon = text.indexOf(":");
    if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  if (typeof v.identitytoken === "string" && v.identitytoken) {
    throw new HttpError(400, "identity tokens in X-Registry-Auth are not supported: log in with a password");
  }
  return undefined;
}

function capitalized(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A throttle for Downloading lines: one per layer every so often, and the last. */
const PROGRESS_EVERY_MS = 250;

/**
 * Pull progress as docker's JSON lines. The response starts with the first layer event (the
 * manifest and config are in hand by then), so a missing tag or repository is still a plain 404.
 */
class PullStream implements Progress {
  began = false;
  private queue: Promise<void> = Promise.resolve();
  private layers = new Map<string, { total: number; got: number; last: number }>();

  constructor(
    private res: Response,
    private head: object,
  ) {}

  send(o: object): void {
    if (!this.began) {
      this.began = true;
      this.queue = this.queue.then(async () => {
        await this.res.begin(200, { "Content-Type": "application/json" });
        await this.res.write(JSON.stringify(this.head) + "\r\n");
      });
    }
    const line = JSON.stringify(o) + "\r\n";
    this.queue = this.queue.then(() => this.res.write(line));
  }

  flush(): Promise<void> {
    return this.queue;
  }

  start(id: string, total: number): void {
    this.layers.set(id, { total, got: 0, last: Date.now() });
    this.send({ status: "Pulling fs layer", progressDetail: {}, id });
    this.send({ status: "Downloading", progressDetail: { current: 0, total }, id });
  }

  advance(id: string, bytes: number): void {
    const l = this.layers.get(id);
    if (!l) return;
    l.got += bytes;
    const now = Date.now();
    if (l.got >= l.total) {
      this.send({ status: "Downloading", progressDetail: { current: l.got, total: l.total }, id });
      this.send({ status: "Verifying Checksum", progressDetail: {}, id });
    } else if (now - l.last >= PROGRESS_EVERY_MS) {
      l.last = now;
      this.send({ status: "Downloading", progressDetail: { current: l.got, total: l.total }, id });
    }
  }

  step(id: string, status: string): void {
    // The first step comes once the download is checked.
    if (this.layers.has(id)) this.send({ status: "Download complete", progressDetail: {}, id });
    this.send({ status: capitalized(status), progressDetail: {}, id });
  }

  end(id: string, status: string): void {
    this.send({ status: capitalized(status), progressDetail: {}, id });
  }

  note(text: string): void {
    this.send({ status: capitalized(text) });
  }
}

function pullPlatform(q: URLSearchParams): Platform | undefined {
  const p = q.get("platform");
  if (!p) return undefined;
  try {
    return parsePlatform(p);
  } catch (e) {
    throw httpError(e, 400);
  }
}

async function pullImage(x: Context, req: Request, res: Response, from: string) {
  const tag = req.query.get("tag") ?? "";
  const namePart = from.split("@")[0];
  const colon = namePart.lastIndexOf(":");
  const hasOwnTag = from.includes("@") || colon > namePart.lastIndexOf("/");
  if (!tag && !hasOwnTag) throw new HttpError(400, "pulling every tag of a repository is not supported: name a tag");
  // A tag parameter replaces what fromImage named, as dockerd does.
  const repo = colon > namePart.lastIndexOf("/") ? namePart.slice(0, colon) : namePart;
  const text = !tag ? from : tag.startsWith("sha256:") ? `${repo}@${tag}` : `${repo}:${tag}`;
  const ref = parseRef(text);
  const platform = pullPlatform(req.query);
  const creds = registryAuth(req.headers.get("x-registry-auth"));
  const shown = familiarReference(ref);
  const before = x.store.findImage(formatReference(ref))?.manifest;
  const stream = new PullStream(res, { status: `Pulling from ${ref.repository}`, id: ref.digest ?? ref.tag });
  let img: Image;
  try {
    // Registry and archive code loads with the first request that needs it.
    const { RegistryClient } = await import("../image/registry");
    const { pull } = await import("../image/pull");
    const client = new RegistryClient(ref.registry, creds);
    img = await pull(x.store, text, { platform, progress: stream, client });
  } catch (e) {
    if (!(e instanceof TinycError) && !(e instanceof HttpError)) throw e;
    const message = e instanceof TinycError ? e.text() : e.message;
    if (!stream.began) throw new HttpError(pullStatus(e), message);
    stream.send({ errorDetail: { message }, error: message });
    await stream.flush();
    return;
  }
  const fresh = img.manifest !== before;
  stream.send({ status: fresh ? `Status: Downloaded newer image for ${shown}` : `Status: Image is up to date for ${shown}` });
  await stream.flush();
  x.events.emit("image", "pull", shown, { name: shown });
}

/** The body, which fails at its end when nothing came (the client sent no file). */
async function* nonEmpty(body: AsyncIterable<Buffer>, what: string): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const c of body) {
    n += c.length;
    yield c;
  }
  if (n === 0) throw new TinycError(`${what} is empty`);
}

async function importImage(x: Context, req: Request, res: Response, src: string) {
  if (src !== "-") throw new HttpError(501, "import from a URL is not supported: send the tarball as the body");
  const platform = pullPlatform(req.query);
  if (platform && !platformMatches(platform, hostPlatform())) {
    throw new HttpError(400, `import for platform ${req.query.get("platform")} is not supported: only the host's`);
  }
  const repo = req.query.get("repo") ?? "";
  const tag = req.query.get("tag") ?? "";
  const name = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
  if (name) {
    const ref = parseRef(name);
    if (ref.digest) throw new HttpError(400, `cannot import as a digest reference: ${name}`);
  }
  let img: Image;
  try {
    const { importRootfs } = await import("../image/archive");
    img = await importRootfs(x.store, nonEmpty(req.body, "the tarball"), name, {
      changes: req.query.getAll("changes"),
      message: req.query.get("message") ?? undefined,
      source: "-",
    });
  } catch (e) {
    throw httpError(e, 400);
  }
  x.events.emit("image", "import", img.id, name ? { name: familiarReference(parseReference(name)) } : {});
  await res.begin(200, { "Content-Type": "application/json" });
  await res.write(JSON.stringify({ status: img.id }) + "\r\n");
}

async function loadImages(x: Context, req: Request, res: Response) {
  let images: Image[];
  try {
    const { loadArchive } = await import("../image/archive");
    images = await loadArchive(x.store, nonEmpty(req.body, "the archive"));
  } catch (e) {
    throw httpError(e, 400);
  }
  await res.begin(200, { "Content-Type": "application/json" });
  for (const img of images) {
    x.events.emit("image", "load", img.id, {});
    const lines = img.names.length ? img.names.map((n) => `Loaded image: ${shortName(n)}\n`) : [`Loaded image ID: ${img.id}\n`];
    for (const l of lines) await res.write(JSON.stringify({ stream: l }) + "\r\n");
  }
}

/** docker save: the archive goes to a file of the store's own, then out as a tar stream. */
async function saveImages(x: Context, res: Response, names: string[]) {
  if (!names.length) throw new HttpError(400, "no image named: give names=IMAGE");
  for (const n of names) lookup(x, n);
  const dir = x.store.tempDir();
  try {
    const file = path.join(dir, "save.tar");
    const fd = fs.openSync(file, "wx", 0o600);
    try {
      const { saveArchive } = await import("../image/archive");
      await saveArchive(x.store, names, fd);
    } catch (e) {
      throw httpError(e, 500);
    } finally {
      fs.closeSync(fd);
    }
    await res.begin(200, { "Content-Type": "application/x-tar" });
    for await (const c of fileStream(file)) {
      if (res.closed) break;
      await res.write(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
    for (const n of names) x.events.emit("image", "save", lookup(x, n).id, { name: n });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** docker login: the daemon checks the credentials against the registry; the CLI keeps them. */
async function login(req: Request, res: Response) {
  const body = await req.json();
  if (!body || typeof body !== "object") throw new HttpError(400, "a JSON body with username and password is required");
  const { username, password, serveraddress } = body as Record<string, unknown>;
  if (typeof body.identitytoken === "string" && body.identitytoken) {
    throw new HttpError(400, "login with an identity token is not supported");
  }
  if (typeof username !== "string" || !username || typeof password !== "string" || !password) {
    throw new HttpError(400, "username and password are required");
  }
  let registry: string;
  try {
    registry = normalizeRegistry(typeof serveraddress === "string" && serveraddress ? serveraddress : "docker.io");
  } catch (e) {
    throw httpError(e, 400);
  }
  try {
    const { RegistryClient } = await import("../image/registry");
    await new RegistryClient(registry, { username, password }).ping();
  } catch (e) {
    throw httpError(e, /: (unauthorized|authentication required|access denied)\b/.test((e as Error).message) ? 401 : 500);
  }
  await res.json(200, { Status: "Login Succeeded", IdentityToken: "" });
}

export function unsupported(method: string, re: RegExp, what: string): Route {
  return {
    method,
    path: re,
    handle: async () => {
      throw new HttpError(501, `${what} is not supported by tinyc daemon`);
    },
  };
}

export function imageRoutes(x: Context): Route[] {
  return [
    {
      method: "GET",
      path: /^\/images\/json$/,
      handle: async (req, res) => {
        await res.json(200, listImages(x, req));
      },
    },
    {
      method: "POST",
      path: /^\/images\/create$/,
      handle: async (req, res) => {
        const from = req.query.get("fromImage");
        const src = req.query.get("fromSrc");
        if (from && src) throw new HttpError(400, "fromImage and fromSrc exclude each other");
        if (from) await pullImage(x, req, res, from);
        else if (src) await importImage(x, req, res, src);
        else throw new HttpError(400, "fromImage or fromSrc is required");
      },
    },
    {
      method: "POST",
      path: /^\/images\/load$/,
      handle: async (req, res) => loadImages(x, req, res),
    },
    {
      method: "GET",
      path: /^\/images\/get$/,
      handle: async (req, res) => saveImages(x, res, req.query.getAll("names").filter(Boolean)),
    },
    {
      method: "POST",
      path: /^\/auth$/,
      handle: async (req, res) => login(req, res),
    },
    unsupported("POST", /^\/images\/prune$/, "image prune"),
    unsupported("GET", /^\/images\/search$/, "registry search"),
    unsupported("POST", /^\/build$/, "build"),
    unsupported("POST", /^\/build\/prune$/, "build cache prune"),
    unsupported("GET", /^\/build\/prune$/, "build cache prune"),
    unsupported("POST", /^\/session$/, "build session"),
    unsupported("POST", /^\/commit$/, "commit"),
    unsupported("GET", /^\/distribution\/.+\/json$/, "distribution inspect"),
    unsupported("POST", /^\/images\/.+\/push$/, "push"),
    {
      method: "GET",
      path: /^\/images\/(.+)\/json$/,
      handle: async (_req, res, m) => {
        await res.json(200, inspectImage(x, lookup(x, param(m[1]))));
      },
    },
    {
      method: "GET",
      path: /^\/images\/(.+)\/history$/,
      handle: async (_req, res, m) => {
        await res.json(200, history(x, lookup(x, param(m[1]))));
      },
    },
    {
      method: "GET",
      path: /^\/images\/(.+)\/get$/,
      handle: async (_req, res, m) => saveImages(x, res, [param(m[1])]),
    },
    {
      method: "POST",
      path: /^\/images\/(.+)\/tag$/,
      handle: async (req, res, m) => tagImage(x, req, res, param(m[1])),
    },
    {
      method: "DELETE",
      path: /^\/images\/(.+)$/,
      handle: async (req, res, m) => {
        await res.json(200, await removeImage(x, req, param(m[1])));
      },
    },
  ];
}
