// A client of the OCI distribution API: manifests and blobs by GET, with anonymous, bearer
// token and basic authentication, and redirects followed (the Authorization header is not
// sent on to another host). http is used for loopback registries and those named in
// $TINYC_INSECURE_REGISTRIES (host:port,...); https for all others. Every request has a time
// limit for its answer, and every body one for the gap between two chunks
// ($TINYC_REGISTRY_TIMEOUT seconds, default 30), so a registry that hangs fails the pull.

import { TinycError } from "../errors";
import { credentialsFor, type Credentials } from "./auth";
import { type ByteStream } from "./bytes";
import { apiHost } from "./reference";
import { INDEX_TYPES, MANIFEST_TYPES, documentType } from "./types";

const MANIFEST_MAX = 4 << 20;
const MAX_REDIRECTS = 10;

export function registryTimeoutMs(): number {
  const s = Number(process.env.TINYC_REGISTRY_TIMEOUT);
  return s > 0 ? s * 1000 : 30_000;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:[0-9]+$/, "").replace(/^\[|\]$/g, "");
  return name === "localhost" || name === "::1" || /^127\.[0-9.]+$/.test(name);
}

function insecure(registry: string): boolean {
  const list = (process.env.TINYC_INSECURE_REGISTRIES ?? "").split(",").map((s) => s.trim());
  return isLoopback(registry) || list.includes(registry);
}

export function registryBase(registry: string): string {
  const host = apiHost(registry);
  return `${insecure(registry) ? "http" : "https"}://${host}`;
}

export interface Fetched {
  res: Response;
  /** Aborts the request and its body. */
  abort: () => void;
}

/** One line of text from an error body: the registry's own message when it sent one. */
async function errorDetail(res: Response): Promise<string> {
  let text = "";
  try {
    text = (await res.text()).slice(0, 4096);
    const j = JSON.parse(text);
    const e = j?.errors?.[0];
    if (e?.message)
      text = e.detail && typeof e.detail === "string" ? `${e.message}: ${e.detail}` : e.message;
  } catch {
    // not JSON: the text as it is
  }
  return text.replace(/\s+/g, " ").trim().slice(0, 200);
}

function statusError(res: Response, what: string, detail: string, hadCreds: boolean): TinycError {
  const extra = detail ? `: ${detail}` : "";
  switch (res.status) {
    case 401:
      return new TinycError(
        hadCreds ? `${what}: unauthorized${extra}` : `${what}: authentication required${extra}`,
        { hint: hadCreds ? undefined : "see tinyc login" },
      );
    case 403:
      return new TinycError(`${what}: access denied${extra}`);
    case 404:
      return new TinycError(`${what}: not found${extra}`);
    case 429: {
      const after = res.headers.get("retry-after");
      return new TinycError(`${what}: too many requests${after ? `, retry after ${after}s` : ""}`);
    }
    default:
      return new TinycError(`${what}: registry answered ${res.status} ${res.statusText}${extra}`);
  }
}

/** A fetch with a time limit for the answer, following redirects by hand. */
async function send(url: string, headers: Record<string, string>, what: string): Promise<Fetched> {
  const ms = registryTimeoutMs();
  let current = new URL(url);
  const originHost = current.host;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), ms);
    let res: Response;
    try {
      res = await fetch(current, { headers, redirect: "manual", signal: ctrl.signal });
    } catch (e) {
      if (ctrl.signal.aborted) {
        throw new TinycError(
          `${what}: ${JSON.stringify(current.host)} did not answer within ${ms / 1000}s`,
        );
      }
      throw new TinycError(
        `${what}: cannot reach ${JSON.stringify(current.host)}: ${describeFetchError(e)}`,
      );
    } finally {
      clearTimeout(timer);
    }
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !location) {
      return { res, abort: () => ctrl.abort() };
    }
    await res.body?.cancel();
    current = new URL(location, current);
    // Blob storage elsewhere must not see the registry's credentials.
    if (current.host !== originHost) {
      const { authorization, Authorization, ...rest } = headers;
      headers = rest;
    }
  }
  throw new TinycError(`${what}: too many redirects`);
}

function describeFetchError(e: unknown): string {
  const err = e as { code?: string; message?: string };
  if (err?.code === "ConnectionRefused") return "connection refused";
  return String(err?.message ?? e)
    .toLowerCase()
    .replace(/\.$/, "");
}

/** The body as a stream whose every chunk must come within the time limit. */
export async function* bodyStream(f: Fetched, what: string): ByteStream {
  const ms = registryTimeoutMs();
  if (!f.res.body) return;
  const reader = f.res.body.getReader();
  try {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TinycError(`${what}: no data for ${ms / 1000}s`)), ms);
      });
      let r: { done: boolean; value?: Uint8Array };
      try {
        r = await Promise.race([reader.read(), late]);
      } catch (e) {
        f.abort();
        if (e instanceof TinycError) throw e;
        throw new TinycError(`${what}: ${describeFetchError(e)}`);
      } finally {
        clearTimeout(timer);
      }
      if (r.done || !r.value) return;
      yield r.value;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

async function readLimited(f: Fetched, max: number, what: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of bodyStream(f, what)) {
    n += c.length;
    if (n > max) {
      f.abort();
      throw new TinycError(`${what}: larger than ${max} bytes`);
    }
    parts.push(c);
  }
  return Buffer.concat(parts);
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** WWW-Authenticate: Bearer realm="...",service="...",scope="..." */
export function parseChallenge(header: string | null): Challenge | null {
  if (!header) return null;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2]); p; p = re.exec(m[2])) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  }
  return { scheme: m[1].toLowerCase(), params };
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

export interface ManifestResult {
  bytes: Uint8Array;
  digest: string;
  mediaType: string;
}

export class RegistryClient {
  readonly registry: string;
  private base: string;
  private creds: Credentials | null;
  /** Authorization header per scope, once a challenge was answered. */
  private auth = new Map<string, string>();

  constructor(registry: string, creds?: Credentials | null) {
    this.registry = registry;
    this.base = registryBase(registry);
    this.creds = creds === undefined ? credentialsFor(registry) : creds;
  }

  /** GET of a registry path; answers a 401 challenge once, then maps failures to errors. */
  async get(p: string, scope: string, what: string, accept?: string): Promise<Fetched> {
    const headers: Record<string, string> = { "user-agent": "tinyc" };
    if (accept) headers.accept = accept;
    const known = this.auth.get(scope);
    if (known) headers.authorization = known;
    let f = await send(this.base + p, headers, what);
    if (f.res.status === 401 && !known) {
      const header = await this.answer(f.res, scope, what);
      if (header) {
        await f.res.body?.cancel();
        headers.authorization = header;
        f = await send(this.base + p, headers, what);
      }
    }
    if (!f.res.ok) {
      throw statusError(f.res, what, await errorDetail(f.res), !!this.creds);
    }
    return f;
  }

  /** The Authorization header a challenge asks for, or null when none can be given. */
  private async answer(res: Response, scope: string, what: string): Promise<string | null> {
    const ch = parseChallenge(res.headers.get("www-authenticate"));
    if (!ch) return null;
    let header: string | null = null;
    if (ch.scheme === "basic") header = this.creds ? basic(this.creds) : null;
    else if (ch.scheme === "bearer") header = `Bearer ${await this.token(ch, scope, what)}`;
    if (header) this.auth.set(scope, header);
    return header;
  }

  private async token(ch: Challenge, scope: string, what: string): Promise<string> {
    const realm = ch.params.realm;
    if (!realm || !/^https?:\/\//.test(realm)) {
      throw new TinycError(`${what}: bad token realm ${JSON.stringify(realm ?? "")}`);
    }
    const url = new URL(realm);
    if (ch.params.service) url.searchParams.set("service", ch.params.service);
    if (scope) url.searchParams.set("scope", scope);
    const headers: Record<string, string> = { "user-agent": "tinyc" };
    if (this.creds) headers.authorization = basic(this.creds);
    const f = await send(url.toString(), headers, `${what}: token`);
    if (!f.res.ok) {
      throw statusError(f.res, `${what}: token`, await errorDetail(f.res), !!this.creds);
    }
    const body = JSON.parse(Buffer.from(await readLimited(f, 1 << 20, what)).toString() || "{}");
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || !token) throw new TinycError(`${what}: no token in answer`);
    return token;
  }

  /** Checks that the credentials work (docker login does the same request). */
  async ping(): Promise<void> {
    await this.get("/v2/", "", `login to ${JSON.stringify(this.registry)}`);
  }

  async manifest(repository: string, reference: string): Promise<ManifestResult> {
    const what = `manifest ${JSON.stringify(`${repository}:${reference}`)}`;
    const accept = [...MANIFEST_TYPES, ...INDEX_TYPES].join(", ");
    const f = await this.get(
      `/v2/${repository}/manifests/${reference}`,
      `repository:${repository}:pull`,
      what,
      accept,
    );
    const bytes = await readLimited(f, MANIFEST_MAX, what);
    const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
    const expect = reference.startsWith("sha256:")
      ? reference
      : f.res.headers.get("docker-content-digest");
    if (expect && expect.startsWith("sha256:") && expect !== digest) {
      throw new TinycError(
        `digest mismatch for manifest ${JSON.stringify(expect)}: got ${JSON.stringify(digest)}`,
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(Buffer.from(bytes).toString());
    } catch {
      throw new TinycError(`${what}: not JSON`);
    }
    const header = f.res.headers.get("content-type")?.split(";")[0].trim();
    return { bytes, digest, mediaType: documentType(doc, header) };
  }

  async blob(repository: string, digest: string): Promise<ByteStream> {
    const what = `blob ${JSON.stringify(digest)}`;
    const f = await this.get(
      `/v2/${repository}/blobs/${digest}`,
      `repository:${repository}:pull`,
      what,
    );
    return bodyStream(f, what);
  }
}
