// The image verbs from outside: pull from Debian's docker-registry started on 127.0.0.1 (one
// open, one behind htpasswd basic auth), images pushed there with skopeo from OCI layouts this
// file builds; load of skopeo's docker-archive and oci-archive; save, import, rmi, tag, login.
// Bad input (truncated layer, wrong digest, ../ entry, unknown media type, another platform,
// a registry that never answers) must fail with one line and leave the store as it was.
// Nothing here reaches past the loopback address.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import type { Subprocess } from "bun";
import {
  FIXTURES,
  IS_ROOT,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootless,
  rootlessSkipReason,
  runCommand,
  scratchDir,
  tinycSkipReason,
  type As,
  type RunResult,
} from "./harness";

// TINYC_IMAGES_BIN runs these tests against another build of tinyc.
const BIN = process.env.TINYC_IMAGES_BIN ?? TINYC;

function skipReason(): string | null {
  if (!process.env.TINYC_IMAGES_BIN) {
    const r = tinycSkipReason();
    if (r) return r;
  }
  if (!IS_ROOT) return "needs root (the test images have files of other owners)";
  for (const tool of ["docker-registry", "skopeo", "htpasswd", "getfattr"]) {
    if (!Bun.which(tool)) return `no ${tool}: run scripts/setup.sh`;
  }
  const f = fixtureSkipReason("busybox");
  if (f) return f;
  const help = Bun.spawnSync([BIN, "images", "--help"], { stdout: "ignore", stderr: "ignore" });
  if (help.exitCode !== 0) return "this tinyc has no image commands";
  return null;
}

const skip = skipReason();
if (skip) console.warn(`skipping image tests: ${skip}`);

let work = "";
const started: Subprocess[] = [];

afterAll(() => {
  for (const p of started) p.kill("SIGKILL");
  cleanup();
}, 60_000);

function sha(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function sh(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Buffer {
  const r = Bun.spawnSync(cmd, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString()}`);
  return Buffer.from(r.stdout);
}

// OCI layouts, written by hand so that every byte of the test images is known.

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
  annotations?: Record<string, string>;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
const HOST_ARCH = process.arch === "arm64" ? "arm64" : "amd64";

function putBlob(layout: string, data: Uint8Array, mediaType: string): Desc {
  const digest = sha(data);
  fs.mkdirSync(path.join(layout, "blobs/sha256"), { recursive: true });
  fs.writeFileSync(path.join(layout, "blobs/sha256", digest.slice(7)), data);
  return { mediaType, digest, size: data.length };
}

interface LayerSpec {
  /** The layer as stored (compressed or not). */
  blob: Buffer;
  /** The uncompressed tar, whose digest is the diff id. */
  tar: Buffer;
  mediaType?: string;
}

function gzLayer(tar: Buffer): LayerSpec {
  return { blob: zlib.gzipSync(tar, { level: 1 }), tar };
}

function imageManifest(layout: string, layers: LayerSpec[], arch = HOST_ARCH, cmd = ["sh"]): Desc {
  const config = Buffer.from(
    JSON.stringify({
      created: "2024-05-01T00:00:00Z",
      architecture: arch,
      os: "linux",
      config: { Cmd: cmd, Env: ["PATH=/bin:/usr/bin"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: layers.map((l) => sha(l.tar)) },
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: putBlob(layout, config, "application/vnd.oci.image.config.v1+json"),
    layers: layers.map((l) => putBlob(layout, l.blob, l.mediaType ?? GZIP_LAYER)),
  };
  const d = putBlob(layout, Buffer.from(JSON.stringify(manifest)), OCI_MANIFEST);
  return { ...d, platform: { os: "linux", architecture: arch } };
}

function writeIndex(layout: string, tag: string, top: Desc): void {
  fs.writeFileSync(path.join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const entry = { ...top, annotations: { "org.opencontainers.image.ref.name": tag } };
  const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [entry] };
  fs.writeFileSync(path.join(layout, "index.json"), JSON.stringify(index));
}

function layoutWith(name: string, layers: LayerSpec[], arch = HOST_ARCH): string {
  const layout = path.join(work, "oci", name);
  writeIndex(layout, "test", imageManifest(layout, layers, arch));
  return layout;
}

/** A multi-platform image whose index names only ARCH. */
function indexLayout(name: string, layers: LayerSpec[], arch: string): string {
  const layout = path.join(work, "oci", name);
  const m = imageManifest(layout, layers, arch);
  const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [m] };
  const top = putBlob(layout, Buffer.from(JSON.stringify(index)), OCI_INDEX);
  writeIndex(layout, "test", top);
  return layout;
}

/** A tar of the staged folder's entries in exactly the order given. */
function tarOf(dir: string, entries: string[]): Buffer {
  const list = path.join(work, `list-${path.basename(dir)}`);
  fs.writeFileSync(list, entries.join("\n") + "\n");
  return sh([
    "tar",
    "--numeric-owner",
    "--format=pax",
    "--no-recursion",
    "-C",
    dir,
    "-cf",
    "-",
    "-T",
    list,
  ]);
}

function stage(
  name: string,
  files: Record<string, string | { link: string } | { hard: string } | null>,
) {
  const dir = path.join(work, "stage", name);
  for (const [p, v] of Object.entries(files)) {
    const full = path.join(dir, p);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    if (v === null) fs.mkdirSync(full, { recursive: true });
    else if (typeof v === "string") fs.writeFileSync(full, v);
    else if ("link" in v) fs.symlinkSync(v.link, full);
    else fs.linkSync(path.join(dir, v.hard), full);
  }
  return dir;
}

/** One raw ustar entry, for names no tool writes (a ../ entry). */
function rawEntry(name: string, data: string): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0);
  b.write("0000644\0", 100);
  b.write("0000000\0", 108);
  b.write("0000000\0", 116);
  b.write(data.length.toString(8).padStart(11, "0") + "\0", 124);
  b.write("00000000000\0", 136);
  b.write("0", 156);
  b.write("ustar\x0000", 257);
  b.fill(32, 148, 156);
  let sum = 0;
  for (const v of b) sum += v;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  const body = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  body.write(data);
  return Buffer.concat([b, body]);
}

// The two layers of the "layered" image.
let layer1: LayerSpec;
let layer2: LayerSpec;

function buildLayered(): string {
  const s1 = stage("l1", {
    "a/keep": "keep",
    "a/gone": "gone",
    "d/old1": "old",
    "etc/base": "base",
  });
  layer1 = gzLayer(tarOf(s1, ["a", "a/keep", "a/gone", "d", "d/old1", "etc", "etc/base"]));
  const s2 = stage("l2", {
    "a/.wh.gone": "",
    "d/new1": "new",
    "d/.wh..wh..opq": "",
    "hl/one": "linked",
    "hl/two": { hard: "hl/one" },
    sym: { link: "a/keep" },
    "owned/file": "mine",
    suid: "#!/bin/sh\n",
  });
  fs.chownSync(path.join(s2, "owned"), 1000, 1000);
  fs.chownSync(path.join(s2, "owned/file"), 1000, 1000);
  fs.chmodSync(path.join(s2, "owned/file"), 0o640);
  fs.chmodSync(path.join(s2, "suid"), 0o4755);
  // The opaque marker comes after the new file of its folder.
  const order = ["a", "a/.wh.gone", "d", "d/new1", "d/.wh..wh..opq", "hl", "hl/one", "hl/two"];
  layer2 = gzLayer(tarOf(s2, [...order, "sym", "owned", "owned/file", "suid"]));
  return layoutWith("layered", [layer1, layer2]);
}

let busyboxLayer: LayerSpec;

function buildImages() {
  busyboxLayer = gzLayer(
    sh(["tar", "--numeric-owner", "-C", path.join(FIXTURES, "busybox"), "-cf", "-", "."]),
  );
  const layouts = {
    busybox: layoutWith("busybox", [busyboxLayer]),
    layered: buildLayered(),
    other: indexLayout("other", [busyboxLayer], "s390x"),
    truncated: layoutWith("truncated", [
      { blob: busyboxLayer.blob.subarray(0, busyboxLayer.blob.length >> 1), tar: busyboxLayer.tar },
    ]),
    dotdot: layoutWith("dotdot", [
      gzLayer(
        Buffer.concat([rawEntry("ok", "fine"), rawEntry("../evil", "x"), Buffer.alloc(1024)]),
      ),
    ]),
    badtype: layoutWith("badtype", [
      { ...gzLayer(layer1.tar), mediaType: "application/vnd.example.unknown" },
    ]),
    wrongdigest: layoutWith("wrongdigest", [gzLayer(tarOf(stage("wd", { f: "data" }), ["f"]))]),
  };
  return layouts;
}

// Registries: Debian's docker-registry on 127.0.0.1, a random port, storage in the work folder.

interface Registry {
  host: string;
  root: string;
  proc: Subprocess;
}

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function startRegistry(name: string, htpasswd?: string): Promise<Registry> {
  const dir = path.join(work, "registry", name);
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const auth = htpasswd ? `auth:\n  htpasswd:\n    realm: tinyc-test\n    path: ${htpasswd}\n` : "";
  const config = path.join(dir, "config.yml");
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n` +
      `storage:\n  filesystem:\n    rootdirectory: ${dir}/data\n` +
      `  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  const proc = Bun.spawn(["docker-registry", "serve", config], {
    stdout: "ignore",
    stderr: "pipe",
  });
  started.push(proc);
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200 || res.status === 401) return { host, root: `${dir}/data`, proc };
    } catch {
      // not listening yet
    }
    await Bun.sleep(50);
  }
  throw new Error(`docker-registry on ${host} did not start`);
}

function push(layout: string, reg: Registry, name: string, extra: string[] = []): void {
  const policy = path.join(work, "policy.json");
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  sh(
    [
      "skopeo",
      "--policy",
      policy,
      "copy",
      "--quiet",
      "--all",
      "--dest-tls-verify=false",
      ...extra,
      `oci:${layout}:test`,
      `docker://${reg.host}/${name}:test`,
    ],
    { env: { HOME: work } },
  );
}

// tinyc, with a store and a config folder of the test's own.

interface Ctx {
  as: As;
  data: string;
  config: string;
}

function newCtx(as: As = "root"): Ctx {
  const data = path.join(scratchDir(as, "store"), "data");
  const config = scratchDir(as, "config");
  return { as, data, config };
}

/** A context whose store exists (empty), for tests that compare it before and after. */
async function emptyStore(): Promise<Ctx> {
  const ctx = newCtx();
  await ok(ctx, ["images"]);
  return ctx;
}

async function tinyc(
  ctx: Ctx,
  args: string[],
  opts: { input?: Uint8Array; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  return runCommand([BIN, ...args], {
    as: ctx.as,
    input: opts.input,
    timeoutMs: opts.timeoutMs ?? 60_000,
    env: { TINYC_DATA: ctx.data, XDG_CONFIG_HOME: ctx.config, HOME: ctx.config, ...opts.env },
  });
}

async function ok(
  ctx: Ctx,
  args: string[],
  opts?: Parameters<typeof tinyc>[2],
): Promise<RunResult> {
  const r = await tinyc(ctx, args, opts);
  if (r.code !== 0) throw new Error(`tinyc ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** The failure's message: exit 1, and the last line of stderr is tinyc's one error line. */
function failure(r: RunResult): string {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split("\n");
  const last = lines[lines.length - 1];
  expect(last).toStartWith("tinyc: ");
  return last;
}

/** Every file of the store with its size (the lock file aside). */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p);
      if (name === "images.lock") continue;
      out.push(`${path.relative(root, p)} ${st.isDirectory() ? "dir" : st.size}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

function layerDir(ctx: Ctx, l: LayerSpec): string {
  return path.join(ctx.data, "layers", sha(l.tar).slice(7), "diff");
}

function layerNotes(ctx: Ctx, l: LayerSpec): any {
  return JSON.parse(fs.readFileSync(path.join(layerDir(ctx, l), "../layer.json"), "utf8"));
}

let reg: Registry;
let authReg: Registry;
let layouts: ReturnType<typeof buildImages>;

describe.skipIf(!!skip)("images", () => {
  beforeAll(async () => {
    work = scratchDir("root", "images");
    layouts = buildImages();
    reg = await startRegistry("open");
    for (const name of [
      "busybox",
      "layered",
      "other",
      "truncated",
      "dotdot",
      "badtype",
      "wrongdigest",
    ]) {
      push((layouts as Record<string, string>)[name], reg, name);
    }
    // The registry serves what its storage holds: other bytes under the layer's digest.
    const wdLayer = JSON.parse(
      fs.readFileSync(
        path.join(layouts.wrongdigest, "blobs/sha256", manifestOf(layouts.wrongdigest)),
        "utf8",
      ),
    ).layers[0].digest.slice(7);
    const data = path.join(
      reg.root,
      "docker/registry/v2/blobs/sha256",
      wdLayer.slice(0, 2),
      wdLayer,
      "data",
    );
    const bytes = fs.readFileSync(data);
    bytes[bytes.length - 10] ^= 0xff;
    fs.writeFileSync(data, bytes);
    const htpasswd = path.join(work, "htpasswd");
    fs.writeFileSync(htpasswd, sh(["htpasswd", "-Bbn", "alice", "s3cret"]));
    authReg = await startRegistry("auth", htpasswd);
    push(layouts.busybox, authReg, "private/busybox", ["--dest-creds", "alice:s3cret"]);
  }, 120_000);

  function manifestOf(layout: string): string {
    const index = JSON.parse(fs.readFileSync(path.join(layout, "index.json"), "utf8"));
    return index.manifests[0].digest.slice(7);
  }

  test("pull fetches an image from a registry and images lists it", async () => {
    const ctx = newCtx();
    const t0 = performance.now();
    const r = await ok(ctx, ["pull", `${reg.host}/busybox:test`]);
    console.log(
      `pull of busybox (${busyboxLayer.blob.length} bytes): ` +
        `${Math.round(performance.now() - t0)} ms`,
    );
    expect(r.stdout).toBe(`${reg.host}/busybox:test\n`);
    expect(r.stderr).toContain("pull complete");
    expect(fs.existsSync(path.join(layerDir(ctx, busyboxLayer), "bin/busybox"))).toBe(true);
    const table = (await ok(ctx, ["images"])).stdout.split("\n");
    expect(table[0]).toMatch(/^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$/);
    expect(table[1]).toMatch(new RegExp(`^${reg.host}/busybox +test +[0-9a-f]{12} `));
    const json = JSON.parse((await ok(ctx, ["images", "--format", "json"])).stdout);
    expect(json.Repository).toBe(`${reg.host}/busybox`);
    expect(json.Digest).toMatch(/^sha256:/);
    const q = (await ok(ctx, ["images", "-q"])).stdout.trim();
    expect(json.ID).toBe(q);
  });

  test("pull again finds the layers there and keeps one copy", async () => {
    const ctx = newCtx();
    await ok(ctx, ["pull", `${reg.host}/busybox:test`]);
    const before = snapshot(ctx.data);
    const r = await ok(ctx, ["pull", `${reg.host}/busybox:test`]);
    expect(r.stderr).toContain("already exists");
    expect(snapshot(ctx.data).filter((l) => !l.startsWith("images.json"))).toEqual(
      before.filter((l) => !l.startsWith("images.json")),
    );
  });

  test("pull unpacks whiteouts, opaque folders, hard links, symlinks and owners", async () => {
    const ctx = newCtx();
    await ok(ctx, ["pull", `${reg.host}/layered:test`]);
    const top = layerDir(ctx, layer2);
    const gone = fs.lstatSync(path.join(top, "a/gone"));
    expect(gone.isCharacterDevice() && gone.rdev === 0).toBe(true);
    const opaque = sh([
      "getfattr",
      "--only-values",
      "-n",
      "user.overlay.opaque",
      path.join(top, "d"),
    ]);
    expect(opaque.toString()).toBe("y");
    expect(fs.readFileSync(path.join(top, "d/new1"), "utf8")).toBe("new");
    expect(fs.existsSync(path.join(top, "d/.wh..wh..opq"))).toBe(false);
    expect(fs.statSync(path.join(top, "hl/one")).ino).toBe(
      fs.statSync(path.join(top, "hl/two")).ino,
    );
    expect(fs.readlinkSync(path.join(top, "sym"))).toBe("a/keep");
    const owned = fs.statSync(path.join(top, "owned/file"));
    expect([owned.uid, owned.gid, owned.mode & 0o7777]).toEqual([1000, 1000, 0o640]);
    expect(fs.statSync(path.join(top, "suid")).mode & 0o7777).toBe(0o4755);
    const notes = layerNotes(ctx, layer2);
    expect(notes).toMatchObject({ whiteouts: ["a/gone"], opaque: ["d"], ownersKept: true });
    expect(fs.readFileSync(path.join(layerDir(ctx, layer1), "d/old1"), "utf8")).toBe("old");
  });

  test("pull chooses the platform from an index and refuses one the image lacks", async () => {
    const ctx = await emptyStore();
    const before = snapshot(ctx.data);
    const r = await tinyc(ctx, ["pull", `${reg.host}/other:test`]);
    expect(failure(r)).toContain(
      `no manifest for platform "linux/${HOST_ARCH}": the image has "linux/s390x"`,
    );
    expect(snapshot(ctx.data)).toEqual(before);
    await ok(ctx, ["pull", "--platform", "linux/s390x", `${reg.host}/other:test`]);
  });

  const bad: [string, RegExp][] = [
    ["truncated", /pull ".*truncated:test": .*(gzip data|unexpected end)/],
    ["wrongdigest", /digest mismatch for "sha256:[0-9a-f]{64}": got "sha256:/],
    ["dotdot", /layer entry "\.\.\/evil" points outside the layer/],
    ["badtype", /unsupported layer media type "application\/vnd\.example\.unknown"/],
    ["missing", /manifest "missing:test": not found/],
  ];
  for (const [name, message] of bad) {
    test(`pull of ${name} fails with one line and leaves the store as it was`, async () => {
      const ctx = newCtx();
      await ok(ctx, ["pull", `${reg.host}/busybox:test`]);
      const before = snapshot(ctx.data);
      const r = await tinyc(ctx, ["pull", `${reg.host}/${name}:test`]);
      expect(failure(r)).toMatch(message);
      expect(snapshot(ctx.data)).toEqual(before);
    });
  }

  test("pull from a registry that never answers fails within the time limit", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, open() {} } });
    try {
      const ctx = await emptyStore();
      const before = snapshot(ctx.data);
      const t0 = Date.now();
      const r = await tinyc(ctx, ["pull", `127.0.0.1:${silent.port}/x:1`], {
        env: { TINYC_REGISTRY_TIMEOUT: "2" },
      });
      expect(failure(r)).toContain(`"127.0.0.1:${silent.port}" did not answer within 2s`);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(snapshot(ctx.data)).toEqual(before);
    } finally {
      silent.stop(true);
    }
  });

  test("pull from a registry with basic auth needs a login", async () => {
    const ctx = newCtx();
    const r = await tinyc(ctx, ["pull", `${authReg.host}/private/busybox:test`]);
    expect(failure(r)).toMatch(/authentication required.*tinyc login/);
  });

  test("login refuses a wrong password and stores nothing", async () => {
    const ctx = newCtx();
    const r = await tinyc(ctx, ["login", "-u", "alice", "--password-stdin", authReg.host], {
      input: Buffer.from("wrong\n"),
    });
    expect(failure(r)).toMatch(/unauthorized/);
    expect(fs.existsSync(path.join(ctx.config, "tinyc/auth.json"))).toBe(false);
  });

  test("login stores credentials (mode 0600) that pull uses, and logout forgets them", async () => {
    const ctx = newCtx();
    const r = await ok(ctx, ["login", "-u", "alice", "--password-stdin", authReg.host], {
      input: Buffer.from("s3cret\n"),
    });
    expect(r.stdout).toBe("Login Succeeded\n");
    const file = path.join(ctx.config, "tinyc/auth.json");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    await ok(ctx, ["pull", `${authReg.host}/private/busybox:test`]);
    await ok(ctx, ["logout", authReg.host]);
    const again = await tinyc(ctx, ["pull", `${authReg.host}/private/busybox:test`]);
    // The image is there already, but the manifest still needs the registry.
    expect(failure(again)).toMatch(/authentication required/);
  });

  test("pull reads credentials from docker's config.json", async () => {
    const ctx = newCtx();
    const auth = Buffer.from("alice:s3cret").toString("base64");
    fs.mkdirSync(path.join(ctx.config, ".docker"));
    fs.writeFileSync(
      path.join(ctx.config, ".docker/config.json"),
      JSON.stringify({ auths: { [`http://${authReg.host}`]: { auth } } }),
    );
    await ok(ctx, ["pull", `${authReg.host}/private/busybox:test`]);
  });

  function archive(kind: "docker-archive" | "oci-archive", name: string): string {
    const file = path.join(work, `${name}.${kind}.tar`);
    fs.rmSync(file, { force: true });
    const policy = path.join(work, "policy.json");
    const dest =
      kind === "docker-archive" ? `${kind}:${file}:${name}:saved` : `${kind}:${file}:${name}:saved`;
    sh(["skopeo", "--policy", policy, "copy", "--quiet", `oci:${layouts.busybox}:test`, dest], {
      env: { HOME: work },
    });
    return file;
  }

  test("load reads a docker-archive written by skopeo", async () => {
    const ctx = newCtx();
    const file = archive("docker-archive", "fromdocker");
    const r = await ok(ctx, ["load", "-i", file]);
    expect(r.stdout).toBe("Loaded image: fromdocker:saved\n");
    const dir = path.join(ctx.data, "layers", sha(busyboxLayer.tar).slice(7), "diff");
    expect(fs.existsSync(path.join(dir, "bin/busybox"))).toBe(true);
  });

  test("load reads an oci-archive from standard input", async () => {
    const ctx = newCtx();
    const file = archive("oci-archive", "fromoci");
    const r = await ok(ctx, ["load"], { input: fs.readFileSync(file) });
    expect(r.stdout).toBe("Loaded image: fromoci:saved\n");
  });

  test("load refuses an archive with a ../ entry and leaves the store as it was", async () => {
    const ctx = await emptyStore();
    const before = snapshot(ctx.data);
    const bad = Buffer.concat([rawEntry("../manifest.json", "[]"), Buffer.alloc(1024)]);
    const r = await tinyc(ctx, ["load"], { input: bad });
    expect(failure(r)).toMatch(/archive entry "\.\.\/manifest\.json" points outside the archive/);
    expect(snapshot(ctx.data)).toEqual(before);
  });

  test("save writes an archive that skopeo reads and load brings back", async () => {
    const ctx = newCtx();
    await ok(ctx, ["pull", `${reg.host}/layered:test`]);
    const id = (await ok(ctx, ["images", "-q", "--no-trunc"])).stdout.trim();
    const file = path.join(work, "saved.tar");
    await ok(ctx, ["save", "-o", file, `${reg.host}/layered:test`]);
    const policy = path.join(work, "policy.json");
    const out = path.join(work, "from-save");
    fs.rmSync(out, { recursive: true, force: true });
    sh(
      ["skopeo", "--policy", policy, "copy", "--quiet", `docker-archive:${file}`, `oci:${out}:x`],
      {
        env: { HOME: work },
      },
    );
    const fresh = newCtx();
    const r = await ok(fresh, ["load", "-i", file]);
    expect(r.stdout).toBe(`Loaded image: ${reg.host}/layered:test\n`);
    expect((await ok(fresh, ["images", "-q", "--no-trunc"])).stdout.trim()).toBe(id);
  });

  test("import makes a one-layer image from a file and from standard input", async () => {
    const ctx = newCtx();
    const file = path.join(work, "rootfs.tar");
    fs.writeFileSync(file, busyboxLayer.tar);
    const r = await ok(ctx, [
      "import",
      "-c",
      'CMD ["/bin/sh"]',
      "-c",
      "ENV A=1 B=2",
      file,
      "mine:1",
    ]);
    const id = r.stdout.trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const config = JSON.parse(
      fs.readFileSync(path.join(ctx.data, "blobs/sha256", id.slice(7)), "utf8"),
    );
    expect(config.config).toEqual({ Cmd: ["/bin/sh"], Env: ["A=1", "B=2"] });
    expect(config.rootfs.diff_ids).toEqual([sha(busyboxLayer.tar)]);
    const r2 = await ok(ctx, ["import", "-", "mine:2"], { input: busyboxLayer.blob });
    expect(r2.stdout).toMatch(/^sha256:/);
    const names = (await ok(ctx, ["images"])).stdout;
    expect(names).toMatch(/^mine +1 /m);
    expect(names).toMatch(/^mine +2 /m);
  });

  test("import refuses a file that is not a tarball and leaves the store as it was", async () => {
    const ctx = await emptyStore();
    const before = snapshot(ctx.data);
    const r = await tinyc(ctx, ["import", "-", "junk"], { input: Buffer.alloc(2048, 0x41) });
    expect(failure(r)).toMatch(/import: invalid tar archive/);
    expect(snapshot(ctx.data)).toEqual(before);
  });

  test("tag and rmi: names come and go, the last one takes blobs and layers along", async () => {
    const ctx = newCtx();
    await ok(ctx, ["pull", `${reg.host}/busybox:test`]);
    await ok(ctx, ["tag", `${reg.host}/busybox:test`, "short:1"]);
    const r1 = await ok(ctx, ["rmi", "short:1"]);
    expect(r1.stdout).toBe("Untagged: short:1\n");
    const r2 = await ok(ctx, ["rmi", `${reg.host}/busybox:test`]);
    expect(r2.stdout).toContain(`Untagged: ${reg.host}/busybox:test`);
    expect(r2.stdout).toMatch(/Deleted: sha256:/);
    expect(fs.readdirSync(path.join(ctx.data, "blobs/sha256"))).toEqual([]);
    expect(fs.readdirSync(path.join(ctx.data, "layers"))).toEqual([]);
    expect((await ok(ctx, ["images", "-q"])).stdout).toBe("");
    expect(failure(await tinyc(ctx, ["rmi", "nothing"]))).toBe('tinyc: no such image: "nothing"');
  });

  test.skipIf(!!rootlessSkipReason())(
    "pull as a user unpacks in a user namespace: owners land in the subordinate range",
    async () => {
      const ctx = newCtx("rootless");
      await ok(ctx, ["pull", `${reg.host}/layered:test`]);
      const file = path.join(layerDir(ctx, layer2), "owned/file");
      // Container uid 1000 is the 1000th id of the user's range (container 1 is its first).
      const start = Number(
        fs.readFileSync("/etc/subuid", "utf8").split("\n")
          .find((l) => l.startsWith(`${rootless()!.user}:`))!.split(":")[1],
      );
      expect(fs.statSync(file).uid).toBe(start + 999);
      expect(layerNotes(ctx, layer2).ownersKept).toBe(true);
      const gone = fs.lstatSync(path.join(layerDir(ctx, layer2), "a/gone"));
      expect(gone.isCharacterDevice() && gone.rdev === 0).toBe(true);
      await ok(ctx, ["rmi", `${reg.host}/layered:test`]);
      expect(fs.readdirSync(path.join(ctx.data, "layers"))).toEqual([]);
    },
  );

  test("_unpack unpacks one layer blob into an empty folder and prints its notes", async () => {
    const ctx = newCtx();
    const src = path.join(work, "layer2.tar.gz");
    fs.writeFileSync(src, layer2.blob);
    const dest = scratchDir("root", "unpack");
    const notes = JSON.parse((await ok(ctx, ["_unpack", src, dest])).stdout);
    expect(notes).toMatchObject({ diffId: sha(layer2.tar), whiteouts: ["a/gone"], opaque: ["d"] });
    expect(fs.statSync(path.join(dest, "owned/file")).uid).toBe(1000);
    expect(failure(await tinyc(ctx, ["_unpack", src, dest]))).toMatch(/is not empty/);
  });

  test.skipIf(!!requireUserns())(
    "_unpack in a user namespace that maps the layer's owners keeps them",
    async () => {
      const user = rootless()!;
      const ctx = newCtx("rootless");
      const src = path.join(work, "layer2-userns.tar.gz");
      fs.writeFileSync(src, layer2.blob);
      fs.chmodSync(src, 0o644);
      const dest = scratchDir("rootless", "unpack");
      const unshare = ["unshare", "--map-root-user", "--map-auto", BIN, "_unpack", src, dest];
      const r = await runCommand(unshare, { as: "rootless", env: { TINYC_DATA: ctx.data } });
      expect(r.stderr).toBe("");
      expect(JSON.parse(r.stdout).ownersKept).toBe(true);
      // Container uid 1000 is the 1000th id of the user's subordinate range.
      const start = Number(
        fs
          .readFileSync("/etc/subuid", "utf8")
          .split("\n")
          .find((l) => l.startsWith(`${user.user}:`))!
          .split(":")[1],
      );
      expect(fs.statSync(path.join(dest, "owned/file")).uid).toBe(start + 999);
      expect(fs.statSync(path.join(dest, "suid")).uid).toBe(user.uid);
      expect(fs.statSync(path.join(dest, "suid")).mode & 0o7777).toBe(0o4755);
    },
  );

  test.skipIf(!!fixtureSkipReason("debian"))(
    "pull of a debian image (zstd layer)",
    async () => {
      const tar = fs.readFileSync(path.join(FIXTURES, "debian.tar"));
      const blob = sh(["zstd", "-3", "-T0", "-q", "-c", path.join(FIXTURES, "debian.tar")]);
      const layout = layoutWith("debian", [
        { blob, tar, mediaType: "application/vnd.oci.image.layer.v1.tar+zstd" },
      ]);
      push(layout, reg, "debian");
      const ctx = newCtx();
      const t0 = performance.now();
      await ok(ctx, ["pull", `${reg.host}/debian:test`], { timeoutMs: 300_000 });
      const ms = Math.round(performance.now() - t0);
      console.log(`pull of debian (${blob.length} bytes zstd, ${tar.length} bytes tar): ${ms} ms`);
      const dir = path.join(ctx.data, "layers", sha(tar).slice(7), "diff");
      expect(fs.existsSync(path.join(dir, "usr/bin/apt-get"))).toBe(true);
    },
    300_000,
  );
});
