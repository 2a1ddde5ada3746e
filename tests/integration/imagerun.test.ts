// `tinyc run IMAGE`: a container made from an image of the store, as docker's run makes one,
// with no daemon. The images are made here byte by byte (an import of the busybox fixture, an
// OCI archive of several layers for `load`, and images pushed with skopeo to Debian's
// docker-registry on 127.0.0.1), so every file and owner the container sees is known.
//
// Each test gets its own data root (TINYC_DATA) and runtime state folder (XDG_RUNTIME_DIR), so
// `ps -a` lists only what the test made and nothing reaches a real user's store. Every image
// reference names the loopback registry or is run with --pull=never: no public registry is
// ever asked.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import type { Subprocess } from "bun";
import {
  type As,
  FIXTURES,
  IS_ROOT,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  rootless,
  runCommand,
  scratchDir,
  spawnAs,
  tinycSkipReason,
  type RunResult,
} from "./harness";
import {
  OutputReader,
  hostMounts,
  isRunning,
  killIfAlive,
  pidsWithArg,
  subuidRange,
  waitUntil,
} from "./runkit";

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
const noRegistry =
  ["docker-registry", "skopeo"].map((t) => (Bun.which(t) ? null : `no ${t}`)).find((r) => r) ??
  null;
const noPty = Bun.which("script") ? null : "no script (util-linux)";
for (const [what, reason] of [
  ["rootless image run tests", noRootless],
  ["root image run tests", noRoot],
  ["image run tests that pull", noRegistry],
  ["image run tests under a pty", noPty],
] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

// The test process's own files (images, archives, the registry) belong to whoever runs it; the
// test user only reads them.
const ME: As = IS_ROOT ? "root" : "rootless";
const CFG = "cfg:1";
const LAYERED = "layered:test";

function sh(cmd: string[], env: Record<string, string> = {}): Buffer {
  const r = Bun.spawnSync(cmd, { env: { ...process.env, ...env }, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString()}`);
  return Buffer.from(r.stdout);
}

function sha(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

// Layers are written entry by entry, so that owners (uid 1000), hard links and whiteouts are
// exactly what the test says, whoever runs it: tar could only copy what a user may create.

interface Entry {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink";
  data?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  link?: string;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function tarOf(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? "file";
    const data = Buffer.from(type === "file" ? (e.data ?? "") : "");
    const h = Buffer.alloc(512);
    h.write(type === "dir" ? `${e.name}/` : e.name, 0, 100);
    h.write(octal(e.mode ?? (type === "dir" ? 0o755 : 0o644), 8), 100);
    h.write(octal(e.uid ?? 0, 8), 108);
    h.write(octal(e.gid ?? 0, 8), 116);
    h.write(octal(data.length, 12), 124);
    h.write(octal(1714521600, 12), 136);
    h.write({ file: "0", hardlink: "1", symlink: "2", dir: "5" }[type], 156);
    if (e.link) h.write(e.link, 157, 100);
    h.write("ustar\x0000", 257);
    h.fill(32, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** An OCI image layout in `dir` whose index names the image `ref`. */
function ociLayout(dir: string, ref: string, layers: Buffer[], config: object): void {
  const blobs = path.join(dir, "blobs/sha256");
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer, mediaType: string) => {
    fs.writeFileSync(path.join(blobs, sha(data).slice(7)), data);
    return { mediaType, digest: sha(data), size: data.length };
  };
  const arch = process.arch === "arm64" ? "arm64" : "amd64";
  const configBlob = Buffer.from(
    JSON.stringify({
      created: "2024-05-01T00:00:00Z",
      architecture: arch,
      os: "linux",
      config,
      rootfs: { type: "layers", diff_ids: layers.map(sha) },
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: put(configBlob, "application/vnd.oci.image.config.v1+json"),
    layers: layers.map((l) =>
      put(zlib.gzipSync(l, { level: 1 }), "application/vnd.oci.image.layer.v1.tar+gzip"),
    ),
  };
  const top = put(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  const entry = { ...top, annotations: { "org.opencontainers.image.ref.name": ref } };
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [entry],
  };
  fs.writeFileSync(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify(index));
}

// The layers of layered:test over the busybox fixture. The second one hides a file of the
// first (whiteout), hides a folder's lower content (opaque) while adding its own file there,
// and brings a hard link, two symlinks and files of uid 1000.
const LAYER1: Entry[] = [
  { name: "a", type: "dir" },
  { name: "a/keep", data: "keep\n" },
  { name: "a/gone", data: "gone\n" },
  { name: "d", type: "dir" },
  { name: "d/old1", data: "old\n" },
  { name: "run", type: "dir" },
  { name: "run/marker", data: "in-image\n" },
  { name: "tmp", type: "dir", mode: 0o1777 },
  { name: "tmp/tmark", data: "tmark\n" },
];
const LAYER2: Entry[] = [
  { name: "a", type: "dir" },
  { name: "a/.wh.gone" },
  { name: "d", type: "dir" },
  { name: "d/new1", data: "new\n" },
  // The opaque marker comes after the new file of its folder, as some tools write it.
  { name: "d/.wh..wh..opq" },
  { name: "hl", type: "dir" },
  { name: "hl/one", data: "linked\n" },
  { name: "hl/two", type: "hardlink", link: "hl/one" },
  { name: "sym", type: "symlink", link: "a/keep" },
  { name: "abs", type: "symlink", link: "/a/keep" },
  { name: "owned", type: "dir", uid: 1000, gid: 1000 },
  { name: "owned/file", data: "mine\n", mode: 0o640, uid: 1000, gid: 1000 },
];

let work = "";
let busyboxTar: Buffer;
let busyboxFile = "";
let layeredArchive = "";
let layer2Id = "";
let layer1Id = "";
let busyboxId = "";
// overlayfs takes userxattr (and so works in a user namespace) from Linux 5.11.
const [KMAJOR, KMINOR] = fs
  .readFileSync("/proc/sys/kernel/osrelease", "utf8")
  .split(".")
  .map(Number);
const OVERLAY_KERNEL = KMAJOR > 5 || (KMAJOR === 5 && KMINOR >= 11);
let registry: { host: string; proc: Subprocess } | undefined;
let registryPort = 0;

function buildImages(): void {
  work = scratchDir(ME, "imagerun-images");
  // Root of the fixture owns everything in the image, whoever made the fixture.
  busyboxTar = sh([
    "tar",
    "--numeric-owner",
    "--owner=0",
    "--group=0",
    "-C",
    path.join(FIXTURES, "busybox"),
    "-cf",
    "-",
    ".",
  ]);
  busyboxFile = path.join(work, "busybox.tar");
  fs.writeFileSync(busyboxFile, busyboxTar);
  fs.chmodSync(busyboxFile, 0o644);
  const [layer1, layer2] = [tarOf(LAYER1), tarOf(LAYER2)];
  [busyboxId, layer1Id, layer2Id] = [busyboxTar, layer1, layer2].map((l) => sha(l).slice(7));
  const layout = path.join(work, "layered");
  ociLayout(layout, LAYERED, [busyboxTar, layer1, layer2], {
    Cmd: ["sh"],
    Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    WorkingDir: "/",
  });
  layeredArchive = path.join(work, "layered.oci.tar");
  sh(["tar", "-C", layout, "-cf", layeredArchive, "."]);
  fs.chmodSync(layeredArchive, 0o644);
}

/** An image of busybox and one file, /version, that its Cmd prints: for the pull tests. */
function versionLayout(version: string): string {
  const dir = path.join(work, `version-${version}`);
  if (!fs.existsSync(dir)) {
    const layer = tarOf([{ name: "version", data: `${version}\n` }]);
    ociLayout(dir, "v", [busyboxTar, layer], { Cmd: ["cat", "/version"], Env: ["PATH=/bin"] });
  }
  return dir;
}

/** The loopback registry, started (again, on the same port and storage) when it is not running:
 * bun test ends the processes a test that times out leaves, and this one outlives every test. */
async function startRegistry(): Promise<{ host: string; proc: Subprocess }> {
  if (registry && registry.proc.exitCode === null && !registry.proc.killed) return registry;
  const dir = path.join(work, "registry");
  fs.mkdirSync(dir, { recursive: true });
  if (!registryPort) {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    registryPort = l.port;
    l.stop(true);
  }
  const port = registryPort;
  const config = path.join(dir, "config.yml");
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n` +
      `    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  // Its log goes nowhere: a pipe nobody reads could fill and stop it.
  const proc = Bun.spawn(["docker-registry", "serve", config], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://${host}/v2/`)).status === 200) return (registry = { host, proc });
    } catch {
      // Not listening yet.
    }
    await Bun.sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error(`docker-registry on ${host} did not start`);
}

/** skopeo copies an OCI layout to the loopback registry as REPO:v. */
async function push(layout: string, repo: string): Promise<string> {
  await startRegistry();
  const policy = path.join(work, "policy.json");
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const ref = `${registry!.host}/${repo}:v`;
  const copy = ["skopeo", "--policy", policy, "copy", "--quiet", "--dest-tls-verify=false"];
  sh([...copy, `oci:${layout}:v`, `docker://${ref}`], { HOME: work });
  return ref;
}

beforeAll(async () => {
  if (noRootless && noRoot) return;
  buildImages();
  if (!noRegistry) await startRegistry();
}, 60_000);

afterAll(() => {
  registry?.proc.kill("SIGKILL");
  cleanup();
}, 60_000);

// One test's tinyc: its own data root, runtime state folder, home and config.

interface Ctx {
  as: As;
  data: string;
  state: string;
  home: string;
}

const made: Ctx[] = [];

function newCtx(as: As): Ctx {
  const home = scratchDir(as, "imagerun");
  const xdg = scratchDir(as, "imagerun-xdg");
  // tinyc refuses a runtime folder that others may enter, as XDG_RUNTIME_DIR never is.
  fs.chmodSync(xdg, 0o700);
  const ctx = { as, data: path.join(home, "data"), state: path.join(xdg, "tinyc"), home };
  made.push(ctx);
  return ctx;
}

function envOf(ctx: Ctx, extra: Record<string, string> = {}): Record<string, string> {
  return {
    TINYC_DATA: ctx.data,
    XDG_RUNTIME_DIR: path.dirname(ctx.state),
    HOME: ctx.home,
    XDG_CONFIG_HOME: path.join(ctx.home, ".config"),
    XDG_DATA_HOME: path.join(ctx.home, ".local/share"),
    ...extra,
  };
}

function tinyc(
  ctx: Ctx,
  args: string[],
  opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  return runCommand([TINYC, ...args], {
    as: ctx.as,
    input: opts.input,
    env: envOf(ctx, opts.env),
    timeoutMs: opts.timeoutMs ?? 20_000,
  });
}

async function ok(ctx: Ctx, args: string[]): Promise<RunResult> {
  const r = await tinyc(ctx, args);
  if (r.code !== 0) throw new Error(`tinyc ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** A fresh context with cfg:1, whose config sets every field the process takes from. */
async function withCfg(as: As): Promise<Ctx> {
  const ctx = newCtx(as);
  await ok(ctx, [
    "import",
    "-c",
    'ENTRYPOINT ["/bin/sh","-c"]',
    "-c",
    'CMD ["echo default"]',
    "-c",
    "ENV A=b",
    "-c",
    "WORKDIR /work",
    "-c",
    "USER 1000",
    busyboxFile,
    CFG,
  ]);
  return ctx;
}

/** A fresh context with layered:test, loaded from the OCI archive. */
async function withLayered(as: As): Promise<Ctx> {
  const ctx = newCtx(as);
  const r = await ok(ctx, ["load", "-i", layeredArchive]);
  expect(r.stdout).toBe(`Loaded image: ${LAYERED}\n`);
  return ctx;
}

/** `tinyc run --pull=never ...`: the store is all these tests use unless they say otherwise. */
function runImage(ctx: Ctx, args: string[], opts: Parameters<typeof tinyc>[2] = {}) {
  return tinyc(ctx, ["run", "--pull=never", ...args], opts);
}

interface Row {
  id: string;
  name: string;
  status: string;
}

/** `ps --format json` as rows, whether it prints one array or one object a line. */
async function psRows(ctx: Ctx, all = true): Promise<Row[]> {
  const r = await ok(ctx, ["ps", ...(all ? ["-a"] : []), "--format", "json"]);
  const text = r.stdout.trim();
  if (!text) return [];
  const raw: any[] = text.startsWith("[") ? JSON.parse(text) : text.split("\n").map(JSON.parse);
  return raw.map((o) => ({
    id: String(o.id ?? o.ID),
    name: String(o.name ?? o.Names),
    status: String(o.status ?? o.State),
  }));
}

/** The containers' folders under the data root. */
function containerDirs(ctx: Ctx): string[] {
  const dir = path.join(ctx.data, "containers");
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/** What the runtime keeps of running or kept containers. */
function stateEntries(ctx: Ctx): string[] {
  return fs.existsSync(ctx.state) ? fs.readdirSync(ctx.state) : [];
}

interface ListEntry {
  id: string;
  pid: number;
  status: string;
  annotations?: Record<string, string>;
}

async function listed(ctx: Ctx): Promise<ListEntry[]> {
  return JSON.parse((await ok(ctx, ["list", "--format", "json"])).stdout);
}

// Whatever a test left running ends here, passed or failed: by `rm -f`, then by the pid the
// runtime recorded.
afterEach(async () => {
  for (const ctx of made.splice(0)) {
    const q = await tinyc(ctx, ["ps", "-a", "-q"]);
    for (const id of q.stdout.split("\n").filter(Boolean)) await tinyc(ctx, ["rm", "-f", id]);
    const left = await tinyc(ctx, ["list", "--format", "json"]);
    for (const c of left.code === 0 ? (JSON.parse(left.stdout) as ListEntry[]) : []) {
      killIfAlive(c.pid);
      await tinyc(ctx, ["delete", "--force", c.id]);
    }
  }
});

/** The tests that hold as root and rootless alike. */
function commonTests(as: As) {
  test("run IMAGE does run the image's Entrypoint, Cmd, Env, WorkingDir and User", async () => {
    const ctx = await withCfg(as);
    const plain = await runImage(ctx, ["--rm", CFG]);
    const probe = 'echo "A=$A"; pwd; id -u; id -g; echo "$PATH"';
    const r = await runImage(ctx, ["--rm", CFG, probe]);
    expect({ code: plain.code, out: plain.stdout, err: plain.stderr }).toEqual({
      code: 0,
      out: "default\n",
      err: "",
    });
    // USER 1000 takes its group from the image's /etc/passwd; PATH is docker's default.
    expect({ code: r.code, out: r.stdout }).toEqual({
      code: 0,
      out: "A=b\n/work\n1000\n1000\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    });
  });

  test("run IMAGE does leave nothing behind with --rm", async () => {
    const ctx = await withLayered(as);
    const mounts = hostMounts();
    const r = await runImage(ctx, ["--rm", LAYERED, "sh", "-c", "echo x > /new; echo ran"]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "ran\n" });
    // The overlay lived in the container's mount namespace only.
    expect({
      dirs: containerDirs(ctx),
      state: stateEntries(ctx),
      ps: await psRows(ctx),
      mounts: hostMounts(),
    }).toEqual({ dirs: [], state: [], ps: [], mounts });
  });

  test("run IMAGE does keep a stopped container without --rm until rm removes it", async () => {
    const ctx = await withLayered(as);
    const r = await runImage(ctx, ["--name", "keeper", LAYERED, "sh", "-c", "echo hi; exit 3"]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 3, out: "hi\n" });
    const rows = await psRows(ctx);
    expect(rows.map((c) => [c.name, c.status])).toEqual([["keeper", "stopped"]]);
    const id = rows[0].id;
    expect(containerDirs(ctx)).toEqual([id]);
    // Without -a, ps lists running containers only.
    expect((await ok(ctx, ["ps", "-q"])).stdout).toBe("");
    expect((await ok(ctx, ["ps", "-a", "-q"])).stdout).toBe(`${id.slice(0, 12)}\n`);
    const table = (await ok(ctx, ["ps", "-a"])).stdout.split("\n");
    expect(table[0]).toMatch(/^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +NAMES$/);
    expect(table[1]).toMatch(new RegExp(`^${id.slice(0, 12)} +${LAYERED} .* stopped +keeper$`));

    const rm = await tinyc(ctx, ["rm", "keeper"]);
    expect({ code: rm.code, out: rm.stdout, err: rm.stderr }).toEqual({
      code: 0,
      out: "keeper\n",
      err: "",
    });
    expect({ dirs: containerDirs(ctx), state: stateEntries(ctx), ps: await psRows(ctx) }).toEqual(
      { dirs: [], state: [], ps: [] },
    );
    const again = await tinyc(ctx, ["rm", "keeper"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/^tinyc: .*no such container.*keeper/);
  });

  test("run IMAGE does start with -d a container ps shows running and rm -f ends", async () => {
    const ctx = await withLayered(as);
    const script = "echo started; exec sleep 100";
    const args = ["-d", "--name", "bg", "-l", "team=blue", LAYERED, "sh", "-c", script];
    const d = await runImage(ctx, args);
    expect({ code: d.code, err: d.stderr }).toEqual({ code: 0, err: "" });
    const id = d.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    // No daemon holds the output: it lands in a log file in the container's folder.
    const log = path.join(ctx.data, "containers", id, "container.log");
    const logged = await waitUntil(
      () => fs.existsSync(log) && fs.readFileSync(log, "utf8") === "started\n",
    );
    expect(logged).toBe(true);
    expect((await psRows(ctx, false)).map((c) => [c.id, c.name, c.status])).toEqual([
      [id, "bg", "running"],
    ]);
    const entry = (await listed(ctx)).find((c) => c.id === id);
    expect(entry?.status).toBe("running");
    expect(entry?.annotations?.team).toBe("blue");
    const pid = entry!.pid;

    const refused = await tinyc(ctx, ["rm", "bg"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("running");
    expect(isRunning(pid)).toBe(true);

    const rm = await tinyc(ctx, ["rm", "-f", "bg"]);
    expect({ code: rm.code, out: rm.stdout }).toEqual({ code: 0, out: "bg\n" });
    expect(await waitUntil(() => !isRunning(pid))).toBe(true);
    expect({ dirs: containerDirs(ctx), state: stateEntries(ctx), ps: await psRows(ctx) }).toEqual(
      { dirs: [], state: [], ps: [] },
    );
  });

  test("run IMAGE does exit with its program's status, 127 or 126 when it cannot run", async () => {
    const ctx = await withLayered(as);
    const exit42 = await runImage(ctx, ["--rm", LAYERED, "sh", "-c", "exit 42"]);
    const missing = await runImage(ctx, ["--rm", LAYERED, "no-such-program"]);
    // /a/keep is a file of mode 0644: there, but not executable.
    const notExec = await runImage(ctx, ["--rm", LAYERED, "/a/keep"]);
    expect([exit42.code, missing.code, notExec.code]).toEqual([42, 127, 126]);
    expect(missing.stderr).toContain("no-such-program");
    expect(notExec.stderr).toContain("/a/keep");
    expect(containerDirs(ctx)).toEqual([]);
  });

  test("run IMAGE does fail with 125 and say so when --pull=never finds no image", async () => {
    const ctx = await withLayered(as);
    const r = await tinyc(ctx, ["run", "--rm", "--pull=never", "absent:1"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tinyc: .*"absent:1".*not in the store/);
    expect(containerDirs(ctx)).toEqual([]);
  });

  test("run IMAGE does merge the layers: whiteouts, opaque folders, links, owners", async () => {
    const ctx = await withLayered(as);
    const probe = [
      "cat /a/keep",
      "[ -e /a/gone ] && echo gone-visible || echo gone-hidden",
      "ls /d",
      "stat -c '%i %h' /hl/one /hl/two",
      "readlink /sym; cat /sym; cat /abs",
      "stat -c '%u:%g %a' /owned /owned/file; cat /owned/file",
      "grep ' / ' /proc/mounts >&2",
    ].join("; ");
    const r = await runImage(ctx, ["--rm", LAYERED, "sh", "-c", probe]);
    const lines = r.stdout.split("\n");
    const [ino1, ino2] = [lines[3], lines[4]];
    expect({
      keep: lines[0],
      gone: lines[1],
      d: lines[2],
      linked: ino1 === ino2 && ino1.endsWith(" 2"),
      rest: lines.slice(5),
    }).toEqual({
      keep: "keep",
      gone: "gone-hidden",
      d: "new1",
      linked: true,
      rest: ["a/keep", "keep", "keep", "1000:1000 755", "1000:1000 640", "mine", ""],
    });
    // The root is the kernel's overlayfs of the three layers, top first, with the attributes
    // of a user namespace (older kernels get a copy of the image instead).
    if (OVERLAY_KERNEL) {
      const [type, opts] = [r.stderr.split(" ")[2], r.stderr.split(" ")[3] ?? ""];
      const lower = /lowerdir=([^,]*)/.exec(opts)?.[1].split(":") ?? [];
      expect({
        type,
        userxattr: opts.split(",").includes("userxattr"),
        lower: lower.map((l) => path.relative(ctx.data, l).split("/")[1]),
      }).toEqual({ type: "overlay", userxattr: true, lower: [layer2Id, layer1Id, busyboxId] });
    }
  });

  test("run IMAGE does copy up a hard-linked file it writes, the layer unchanged", async () => {
    const ctx = await withLayered(as);
    const script = "echo changed > /hl/one; cat /hl/one";
    const r = await runImage(ctx, ["--rm", LAYERED, "sh", "-c", script]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "changed\n" });
    const lower = path.join(ctx.data, "layers", layer2Id, "diff", "hl");
    const layer = ["one", "two"].map((f) => fs.readFileSync(path.join(lower, f), "utf8"));
    expect(layer).toEqual(["linked\n", "linked\n"]);
  });

  test("run IMAGE does write to its own layer, which another container does not see", async () => {
    const ctx = await withLayered(as);
    const write = "echo first > /new; echo changed > /a/keep; rm /d/new1";
    const first = await runImage(ctx, ["--name", "first", LAYERED, "sh", "-c", write]);
    expect({ code: first.code, err: first.stderr }).toEqual({ code: 0, err: "" });
    const [id] = containerDirs(ctx);
    const upper = path.join(ctx.data, "containers", id, "upper");
    expect(fs.readFileSync(path.join(upper, "new"), "utf8")).toBe("first\n");

    const look = "[ -e /new ] && echo new-seen; cat /a/keep; ls /d";
    const second = await runImage(ctx, ["--rm", LAYERED, "sh", "-c", look]);
    expect({ code: second.code, out: second.stdout }).toEqual({ code: 0, out: "keep\nnew1\n" });
    // Nor did the layers change: the one copy of a/keep in the store is the image's.
    const layers = path.join(ctx.data, "layers");
    const keep = fs
      .readdirSync(layers)
      .map((l) => path.join(layers, l, "diff/a/keep"))
      .filter((f) => fs.existsSync(f));
    expect(keep.map((f) => fs.readFileSync(f, "utf8"))).toEqual(["keep\n"]);
  });

  test.skipIf(!!noRegistry)(
    "run IMAGE does pull from a loopback registry: --pull=missing once, --pull=always anew",
    async () => {
      const ctx = newCtx(as);
      const ref = await push(versionLayout("one"), `pull-${as}`);
      // The reference has a "/", as every one naming a registry does: it is still an image.
      const missing = await tinyc(ctx, ["run", "--rm", ref]);
      expect({ code: missing.code, out: missing.stdout, err: missing.stderr }).toMatchObject({
        code: 0,
        out: "one\n",
      });
      // The tag now names another image; only --pull=always asks the registry again.
      await push(versionLayout("two"), `pull-${as}`);
      const stale = await tinyc(ctx, ["run", "--rm", "--pull=missing", ref]);
      const never = await tinyc(ctx, ["run", "--rm", "--pull=never", ref]);
      const always = await tinyc(ctx, ["run", "--rm", "--pull=always", ref]);
      const after = await tinyc(ctx, ["run", "--rm", "--pull=never", ref]);
      expect([stale, never, always, after].map((r) => [r.code, r.stdout])).toEqual([
        [0, "one\n"],
        [0, "one\n"],
        [0, "two\n"],
        [0, "two\n"],
      ]);
      expect(containerDirs(ctx)).toEqual([]);
    },
  );
}

/** The docker flags, each one's effect seen from inside the container. Values that are paths
 * are spelled --flag=VALUE so that each flag's test stands on its own; one test checks docker's
 * usual "-w /tmp" spelling. */
function flagTests(as: As) {
  test("run IMAGE does replace Cmd with the arguments and keep the Entrypoint", async () => {
    const ctx = await withCfg(as);
    const r = await runImage(ctx, ["--rm", CFG, "echo replaced $A"]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "replaced b\n" });
  });

  test("run IMAGE does take a flag's value with a / as the value, not as a bundle", async () => {
    // Docker's usual spelling: "-w /tmp", not "--workdir=/tmp". A value with a "/" is still
    // the flag's; only the first argument that no flag takes is the image.
    const ctx = await withCfg(as);
    const vol = scratchDir(as, "volume");
    const file = path.join(ctx.home, "path-flags.env");
    fs.writeFileSync(file, "F=1\n");
    const flags = ["-w", "/tmp", "-v", `${vol}:/vol`, "--env-file", file, "--tmpfs", "/scratch"];
    const probe = "pwd; echo $F; cut -d' ' -f2 /proc/mounts | grep -xE '/(vol|scratch)' | sort";
    const r = await runImage(ctx, ["--rm", ...flags, "--entrypoint", "/bin/sh", CFG, "-c", probe]);
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({
      code: 0,
      out: "/tmp\n1\n/scratch\n/vol\n",
      err: "",
    });
  });

  test("run IMAGE does replace the Entrypoint with --entrypoint and drop the Cmd", async () => {
    const ctx = await withCfg(as);
    const withArgs = await runImage(ctx, ["--rm", "--entrypoint=/bin/echo", CFG, "hi", "there"]);
    const alone = await runImage(ctx, ["--rm", "--entrypoint=/bin/echo", CFG]);
    expect([withArgs.stdout, alone.stdout]).toEqual(["hi there\n", "\n"]);
  });

  test("run IMAGE does set the environment with -e and --env-file, -e last", async () => {
    const ctx = await withCfg(as);
    const file = path.join(ctx.home, "env.list");
    fs.writeFileSync(file, "# a comment\nA=fromfile\nF=1\nG=two words\nFROMCALLER\n");
    const probe = 'echo "$A|$F|$G|$X|$FROMCALLER|$ALSO|${UNSET-unset}"';
    const flags = [`--env-file=${file}`, "-e", "A=flag", "-e", "X=y", "-e", "ALSO", "-e", "UNSET"];
    const r = await runImage(ctx, ["--rm", ...flags, CFG, probe], {
      env: { FROMCALLER: "caller", ALSO: "also" },
    });
    // A bare NAME takes the caller's value, in a file and after -e alike, as docker does; one
    // the caller has not set is left out.
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({
      code: 0,
      out: "flag|1|two words|y|caller|also|unset\n",
      err: "",
    });
  });

  test("run IMAGE does start in the folder -w names, made when the image lacks it", async () => {
    const ctx = await withCfg(as);
    const r = await runImage(ctx, ["--rm", "--workdir=/made/here", CFG, "pwd"]);
    const rel = await runImage(ctx, ["--rm", "-w", "relative", CFG, "pwd"]);
    expect([r.code, r.stdout, rel.code]).toEqual([0, "/made/here\n", 125]);
  });

  test("run IMAGE does run as -u name:group, found in the image's passwd and group", async () => {
    const ctx = await withCfg(as);
    const ids = async (user: string) => {
      const r = await runImage(ctx, ["--rm", "-u", user, CFG, 'echo "$(id -u) $(id -g)"']);
      return r.code === 0 ? r.stdout.trim() : `exit ${r.code}`;
    };
    expect({
      named: await ids("user:wheel"),
      name: await ids("user"),
      numeric: await ids("0:10"),
      root: await ids("root"),
    }).toEqual({ named: "1000 10", name: "1000 1000", numeric: "0 10", root: "0 0" });
    const bad = await runImage(ctx, ["--rm", "-u", "nobody-here", CFG]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toMatch(/^tinyc: .*"nobody-here"/);
  });

  test("run IMAGE does take its hostname from -h, else from its id", async () => {
    const ctx = await withCfg(as);
    const named = await runImage(ctx, ["--rm", "-h", "box.example", CFG, "hostname"]);
    const plain = await runImage(ctx, ["--rm", CFG, "hostname"]);
    expect(named.stdout).toBe("box.example\n");
    expect(plain.stdout).toMatch(/^[0-9a-f]{12}\n$/);
  });

  test("run IMAGE does mount -v folders read-write, and read-only with :ro", async () => {
    const ctx = await withLayered(as);
    const vol = scratchDir(as, "volume");
    fs.writeFileSync(path.join(vol, "in"), "from host\n");
    fs.chmodSync(path.join(vol, "in"), 0o644);
    const script =
      "cat /rw/in; echo out > /rw/out && echo rw-ok; " +
      "cat /ro/in; echo x > /ro/x 2>/dev/null && echo ro-written || echo ro-refused";
    const volumes = [`--volume=${vol}:/rw`, `--volume=${vol}:/ro:ro`];
    const r = await runImage(ctx, ["--rm", ...volumes, LAYERED, "sh", "-c", script]);
    expect({ code: r.code, out: r.stdout }).toEqual({
      code: 0,
      out: "from host\nrw-ok\nfrom host\nro-refused\n",
    });
    expect(fs.readFileSync(path.join(vol, "out"), "utf8")).toBe("out\n");
    expect(fs.existsSync(path.join(vol, "x"))).toBe(false);
    const missing = await runImage(ctx, ["--rm", `--volume=${vol}/none:/x`, LAYERED, "true"]);
    expect(missing.code).toBe(125);
  });

  test("run IMAGE does refuse writes to / with --read-only, but not to /tmp or /run", async () => {
    const ctx = await withLayered(as);
    const script = [
      "touch /rootfile 2>/dev/null && echo root-written || echo root-refused",
      "touch /tmp/t /var/tmp/v /run/r && echo tmp-ok",
      // tmpfs over /run and /tmp starts with what the image has there.
      "cat /run/marker /tmp/tmark",
    ].join("; ");
    const r = await runImage(ctx, ["--read-only", "--name", "ro", LAYERED, "sh", "-c", script]);
    expect({ code: r.code, out: r.stdout }).toEqual({
      code: 0,
      out: "root-refused\ntmp-ok\nin-image\ntmark\n",
    });
    // What went to the tmpfs folders never reached the writable layer.
    const [id] = containerDirs(ctx);
    const upper = path.join(ctx.data, "containers", id, "upper");
    for (const f of ["rootfile", "tmp/t", "var/tmp/v", "run/r"]) {
      expect(fs.existsSync(path.join(upper, f))).toBe(false);
    }
  });

  test("run IMAGE does mount --tmpfs folders with the options given", async () => {
    const ctx = await withLayered(as);
    const script =
      "touch /scratch/a /sized/b && echo written; " +
      "grep -E ' /(scratch|sized) ' /proc/mounts | cut -d' ' -f1-3; stat -c %a /sized";
    const tmpfs = ["--tmpfs=/scratch", "--tmpfs=/sized:size=1m,mode=700"];
    const r = await runImage(ctx, ["--rm", ...tmpfs, LAYERED, "sh", "-c", script]);
    expect({ code: r.code, out: r.stdout }).toEqual({
      code: 0,
      out: "written\ntmpfs /scratch tmpfs\ntmpfs /sized tmpfs\n700\n",
    });
  });

  test("run IMAGE does remove a -d --rm container once its program ends", async () => {
    // Without a daemon nothing watches it: the next ps (or run, or rm) removes it once ended.
    const ctx = await withLayered(as);
    const d = await runImage(ctx, ["-d", "--rm", LAYERED, "sh", "-c", "sleep 0.2"]);
    expect(d.code).toBe(0);
    let rows = await psRows(ctx);
    for (let i = 0; i < 60 && rows.length > 0; i++) {
      await Bun.sleep(50);
      rows = await psRows(ctx);
    }
    expect({ ps: rows, dirs: containerDirs(ctx).length }).toEqual({ ps: [], dirs: 0 });
  }, 15_000);

  test("rmi refuses an image a container uses; -f only takes its names, and the container runs on", async () => {
    const ctx = await withLayered(as);
    await ok(ctx, ["run", "--pull=never", "-d", "--name", "user", LAYERED, "sleep", "60"]);
    const refused = await tinyc(ctx, ["rmi", LAYERED]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("in use");
    const forced = await ok(ctx, ["rmi", "-f", LAYERED]);
    expect(forced.stdout).toContain("Untagged:");
    expect(forced.stdout).not.toContain("Deleted:");
    expect((await ok(ctx, ["exec", "user", "ls", "/bin/sh"])).stdout).toBe("/bin/sh\n");
    await ok(ctx, ["rm", "-f", "user"]);
  });

  test("run IMAGE does refuse a --name in use with 125, and free it after rm", async () => {
    const ctx = await withLayered(as);
    const first = await runImage(ctx, ["--name", "x", LAYERED, "true"]);
    const second = await runImage(ctx, ["--name", "x", LAYERED, "sh", "-c", "echo ran"]);
    expect([first.code, second.code, second.stdout]).toEqual([0, 125, ""]);
    expect(second.stderr).toMatch(/^tinyc: .*"x".*in use/);
    expect(containerDirs(ctx).length).toBe(1);
    await ok(ctx, ["rm", "x"]);
    const third = await runImage(ctx, ["--rm", "--name", "x", LAYERED, "true"]);
    expect(third.code).toBe(0);
  });

  test("run IMAGE does attach standard input only with -i", async () => {
    const ctx = await withLayered(as);
    const withI = await runImage(ctx, ["--rm", "-i", LAYERED, "cat"], { input: "typed\n" });
    const without = await runImage(ctx, ["--rm", LAYERED, "cat"], { input: "typed\n" });
    expect([withI.stdout, without.stdout]).toEqual(["typed\n", ""]);
  });

  test("run IMAGE does give --network none only lo, and --network host the host's", async () => {
    const ctx = await withLayered(as);
    const names = "sed 1,2d /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort";
    const none = await runImage(ctx, ["--rm", "--network", "none", LAYERED, "sh", "-c", names]);
    const host = await runImage(ctx, ["--rm", "--network", "host", LAYERED, "sh", "-c", names]);
    const ours = fs
      .readFileSync("/proc/net/dev", "utf8")
      .split("\n")
      .slice(2)
      .filter(Boolean)
      .map((l) => l.split(":")[0].trim())
      .sort();
    expect([none.stdout, host.stdout]).toEqual(["lo\n", ours.join("\n") + "\n"]);
    const bad = await runImage(ctx, ["--rm", "--network", "mynet", LAYERED, "true"]);
    expect(bad.code).toBe(125);
  });

  test.skipIf(!!noPty)("run IMAGE does get /dev/pts/0 and a prompt with -it in a pty", async () => {
    const ctx = await withLayered(as);
    const cmd = `exec ${TINYC} run -it --rm --pull=never ${LAYERED} sh`;
    const proc = spawnAs(["script", "-qec", cmd, "/dev/null"], {
      as,
      stdin: "pipe",
      env: envOf(ctx, { SHELL: "/bin/sh", TERM: "xterm" }),
    });
    const out = new OutputReader(proc.stdout);
    try {
      const prompt = await out.until("/ # ");
      proc.stdin.write("tty; echo $TERM\n");
      proc.stdin.flush();
      const tty = await out.until("/dev/pts/0\r\nxterm\r\n");
      proc.stdin.write("exit 7\n");
      proc.stdin.flush();
      const code = await Promise.race([proc.exited, Bun.sleep(5000).then(() => "hung")]);
      expect({ prompt, tty, code }).toEqual({ prompt: true, tty: true, code: 7 });
    } finally {
      proc.kill("SIGKILL");
    }
  });

  test("run IMAGE does run a -d container that exec joins by the id tinyc list shows", async () => {
    const ctx = await withLayered(as);
    const d = await runImage(ctx, ["-d", LAYERED, "sleep", "100"]);
    const id = d.stdout.trim();
    const entry = (await listed(ctx)).find((c) => c.id === id);
    expect(entry?.status).toBe("running");
    const e = await tinyc(ctx, ["exec", id, "sh", "-c", "cat /a/keep; ps -o comm | sed 1d"]);
    expect({ code: e.code, out: e.stdout.split("\n").slice(0, 2) }).toEqual({
      code: 0,
      out: ["keep", "sleep"],
    });
  });
}

const noFuse =
  !Bun.which("fuse-overlayfs")
    ? "no fuse-overlayfs"
    : (() => {
        try {
          fs.closeSync(fs.openSync("/dev/fuse", "r+"));
          return null;
        } catch {
          return "/dev/fuse cannot be opened";
        }
      })();
if (noFuse) console.warn(`skipping the fuse-overlayfs storage driver tests: ${noFuse}`);

/** fuse-overlayfs processes serving a folder of this context's store, or of the folder given
 * (zombies do not count). */
function fuseDaemons(ctx: Ctx, under = ctx.data): number[] {
  return pidsWithArg(under).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "fuse-overlayfs";
    } catch {
      return false;
    }
  });
}

/** Each storage driver, forced: the same image seen and written the same way. */
function driverTests(as: As) {
  const DRIVERS = [
    // The kernel's overlayfs mounts in a user namespace from Linux 5.11; as root, always.
    ["overlay", as === "root" || OVERLAY_KERNEL ? null : "the kernel's overlayfs needs root here"],
    ["fuse-overlayfs", noFuse],
    ["copy", null],
  ] as const;
  for (const [driver, skip] of DRIVERS) {
    test.skipIf(!!skip)(
      `run IMAGE --storage-driver ${driver} does merge the layers with their owners and write to the container's own files`,
      async () => {
        const ctx = await withLayered(as);
        const probe = [
          "cat /a/keep",
          "[ -e /a/gone ] && echo gone-visible || echo gone-hidden",
          "ls /d",
          "stat -c '%u:%g %a' /owned/file /bin/busybox",
          "echo new > /new; echo changed > /a/keep; cat /a/keep",
          "grep ' / ' /proc/mounts | cut -d' ' -f3",
        ].join("; ");
        const args = ["--debug", "run", "--pull=never", "--name", "w", "--storage-driver", driver];
        const r = await tinyc(ctx, [...args, LAYERED, "sh", "-c", probe]);
        const fsType = { overlay: "overlay", "fuse-overlayfs": "fuse.fuse-overlayfs", copy: "" }[driver];
        const lines = r.stdout.split("\n");
        expect({ code: r.code, out: lines.slice(0, -2), err: r.stderr.split("\n")[0] }).toEqual({
          code: 0,
          out: ["keep", "gone-hidden", "new1", "1000:1000 640", "0:0 755", "changed"],
          err: `tinyc: info: storage driver ${driver}: the root file system is ${
            { overlay: "the kernel's overlayfs", "fuse-overlayfs": "fuse-overlayfs", copy: "a copy of the image" }[driver]
          } (asked for by --storage-driver)`,
        });
        if (fsType) expect(lines[lines.length - 2]).toBe(fsType);
        else expect(lines[lines.length - 2]).not.toMatch(/overlay/);
        // The writes went to the container's folder, the layers are as they were.
        const [id] = containerDirs(ctx);
        const own = path.join(ctx.data, "containers", id, driver === "copy" ? "rootfs" : "upper");
        const keep = path.join(ctx.data, "layers", layer1Id, "diff/a/keep");
        expect([own, own, keep].map((f, i) => fs.readFileSync(path.join(f, ["new", "a/keep", ""][i]), "utf8")))
          .toEqual(["new\n", "changed\n", "keep\n"]);
        expect(await waitUntil(() => fuseDaemons(ctx).length === 0)).toBe(true);
        await ok(ctx, ["rm", "w"]);
        expect(containerDirs(ctx)).toEqual([]);
      },
    );
  }

  test("run IMAGE does refuse an unknown --storage-driver with 125", async () => {
    const ctx = await withLayered(as);
    const r = await runImage(ctx, ["--rm", "--storage-driver", "zfs", LAYERED, "true"]);
    expect({ code: r.code, err: r.stderr }).toEqual({
      code: 125,
      err: 'tinyc: --storage-driver "zfs": expected overlay, fuse-overlayfs or copy\n',
    });
    const env = await tinyc(ctx, ["--debug", "run", "--rm", "--pull=never", LAYERED, "true"], {
      env: { TINYC_STORAGE_DRIVER: "copy" },
    });
    expect({ code: env.code, err: env.stderr.split("\n")[0] }).toEqual({
      code: 0,
      err: "tinyc: info: storage driver copy: the root file system is a copy of the image (asked for by TINYC_STORAGE_DRIVER)",
    });
    // info tells which driver a run picks by itself.
    const info = JSON.parse((await ok(ctx, ["info", "--format", "json"])).stdout);
    const auto = as === "root" || OVERLAY_KERNEL ? "overlay" : noFuse ? "copy" : "fuse-overlayfs";
    expect(String(info["storage driver"]).split(" ")[0]).toBe(auto);
  });

  test.skipIf(!!noFuse)("run IMAGE --storage-driver fuse-overlayfs does leave nothing behind with --rm", async () => {
    const ctx = await withLayered(as);
    const mounts = hostMounts();
    const r = await runImage(ctx, ["--rm", "--storage-driver", "fuse-overlayfs", LAYERED, "sh", "-c", "echo x > /new; echo ran"]);
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "ran\n", err: "" });
    // fuse-overlayfs ends when the container's mount namespace, which held its only mount, goes.
    expect(await waitUntil(() => fuseDaemons(ctx).length === 0)).toBe(true);
    expect({ dirs: containerDirs(ctx), state: stateEntries(ctx), mounts: hostMounts() }).toEqual({
      dirs: [],
      state: [],
      mounts,
    });
  });

  test.skipIf(!!noFuse)(
    "run IMAGE --storage-driver fuse-overlayfs does keep fuse-overlayfs for a -d container until rm -f",
    async () => {
      const ctx = await withLayered(as);
      const d = await runImage(ctx, ["-d", "--name", "fz", "--storage-driver", "fuse-overlayfs", LAYERED, "sleep", "100"]);
      expect({ code: d.code, err: d.stderr }).toEqual({ code: 0, err: "" });
      const id = d.stdout.trim();
      const daemons = fuseDaemons(ctx);
      expect(daemons.length).toBe(1);
      expect(fs.readFileSync(`/proc/${daemons[0]}/cmdline`, "utf8")).toContain(id);
      // It is outside the container's pid namespace: the container sees only its own processes.
      const e = await tinyc(ctx, ["exec", "fz", "sh", "-c", "ps -o comm | sed 1d; echo more > /more"]);
      expect({ code: e.code, first: e.stdout.split("\n")[0], fuse: e.stdout.includes("fuse") })
        .toEqual({ code: 0, first: "sleep", fuse: false });
      const upper = path.join(ctx.data, "containers", id, "upper");
      expect(fs.readFileSync(path.join(upper, "more"), "utf8")).toBe("more\n");
      await ok(ctx, ["rm", "-f", "fz"]);
      expect(await waitUntil(() => !isRunning(daemons[0]))).toBe(true);
      expect(containerDirs(ctx)).toEqual([]);
    },
  );

  test.skipIf(!!noFuse)("run does say why fuse-overlayfs failed, in one line", async () => {
    const ctx = newCtx(as);
    const bundle = scratchDir(as, "fuse-bundle");
    for (const d of ["rootfs", "upper", "work"]) fs.mkdirSync(path.join(bundle, d));
    sh(["chown", "-R", `${fs.statSync(bundle).uid}:${fs.statSync(bundle).gid}`, bundle]);
    await ok(ctx, ["spec", ...(as === "rootless" ? ["--rootless"] : []), "--bundle", bundle]);
    const file = path.join(bundle, "config.json");
    const spec = JSON.parse(fs.readFileSync(file, "utf8"));
    const layers = { lower: ["/nonexistent/a", "/nonexistent/b"], upper: path.join(bundle, "upper"),
      work: path.join(bundle, "work"), driver: "fuse-overlayfs" };
    spec.annotations = { "run.tinyc.overlay": JSON.stringify(layers) };
    spec.process.terminal = false;
    fs.writeFileSync(file, JSON.stringify(spec));
    const r = await tinyc(ctx, ["run", bundle]);
    expect({ code: r.code, lines: r.stderr.trim().split("\n").length }).toEqual({ code: 125, lines: 1 });
    expect(r.stderr).toMatch(/^tinyc: fuse-overlayfs failed \(exit status \d+\): .*lower/);
    expect(fuseDaemons(ctx, bundle)).toEqual([]);
  });

  test.skipIf(!!noFuse)(
    "run IMAGE --storage-driver fuse-overlayfs does end fuse-overlayfs when tinyc is killed",
    async () => {
      const ctx = await withLayered(as);
      const args = ["run", "--rm", "--pull=never", "--storage-driver", "fuse-overlayfs", LAYERED, "sleep", "100"];
      const proc = spawnAs([TINYC, ...args], { as: ctx.as, env: envOf(ctx), stdout: "ignore", stderr: "ignore" });
      try {
        // Running once its state is written.
        const running = () =>
          stateEntries(ctx).some((id) => fs.existsSync(path.join(ctx.state, id, "state.json")));
        expect(await waitUntil(() => fuseDaemons(ctx).length === 1 && running())).toBe(true);
        const daemon = fuseDaemons(ctx)[0];
        proc.kill("SIGKILL");
        await proc.exited;
        // The container gets SIGKILL when tinyc dies; its mount namespace goes, and the mount.
        expect(await waitUntil(() => !isRunning(daemon))).toBe(true);
      } finally {
        killIfAlive(proc.pid);
      }
    },
  );
}

describe.skipIf(!!noRootless)("rootless", () => {
  commonTests("rootless");
  flagTests("rootless");
  driverTests("rootless");

  test("run IMAGE does keep its files the user's, uid 1000's on a subordinate id", async () => {
    const user = rootless()!;
    const ctx = await withLayered("rootless");
    const script = "echo made > /tmp/by1000; id -u";
    const r = await runImage(ctx, ["-u", "1000:1000", LAYERED, "sh", "-c", script]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "1000\n" });
    const [id] = containerDirs(ctx);
    const dir = path.join(ctx.data, "containers", id);
    const owner = (p: string) => {
      const st = fs.statSync(p);
      return `${st.uid}:${st.gid}`;
    };
    const mine = `${user.uid}:${user.gid}`;
    const uids = subuidRange(user.user, user.uid);
    const gidStart = Number(
      fs.readFileSync("/etc/subgid", "utf8").split("\n")
        .find((l) => [user.user, String(user.uid)].includes(l.split(":")[0]))!.split(":")[1],
    );
    expect({
      store: owner(ctx.data),
      layer: owner(path.join(ctx.data, "layers", layer2Id, "diff")),
      container: owner(dir),
      upper: owner(path.join(dir, "upper")),
      byRoot: owner(path.join(dir, "upper/tmp")),
      by1000: owner(path.join(dir, "upper/tmp/by1000")),
      // The layer's own files of uid 1000 were unpacked onto the same subordinate id.
      layerFile: owner(path.join(ctx.data, "layers", layer2Id, "diff/owned/file")),
    }).toEqual({
      store: mine,
      layer: mine,
      container: mine,
      upper: mine,
      byRoot: mine,
      by1000: `${uids.start + 999}:${gidStart + 999}`,
      layerFile: `${uids.start + 999}:${gidStart + 999}`,
    });
    // rm can remove what a subordinate id owns: it does so in a user namespace.
    await ok(ctx, ["rm", id]);
    expect(containerDirs(ctx)).toEqual([]);
  });
});

describe.skipIf(!!noRoot)("as root", () => {
  commonTests("root");
  driverTests("root");
});
