// The image endpoints of `tinyc daemon`, driven by the real docker CLI, rootless: pull from
// Debian's docker-registry on 127.0.0.1 (images made here and pushed with skopeo), images,
// inspect, tag, rmi, save, load (its own archives and skopeo's), import, and what goes wrong.
// Every reference names the loopback registry or an image of the daemon's store: no public
// registry is ever asked.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import type { Subprocess } from "bun";
import {
  type As,
  FIXTURES,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  runCommand,
  scratchDir,
  spawnAs,
  tinycSkipReason,
  type RunResult,
} from "./harness";
import { waitUntil } from "./runkit";

const DOCKER = Bun.which("docker", { PATH: "/usr/local/bin:/usr/bin:/bin" });
const noTools = ["docker-registry", "skopeo", "curl"].map((t) => (Bun.which(t) ? null : `no ${t}`)).find((r) => r) ?? null;
const noDaemon =
  tinycSkipReason() ??
  fixtureSkipReason("busybox") ??
  requireUserns() ??
  (DOCKER ? null : "no docker CLI (Debian's docker.io)") ??
  noTools;
if (noDaemon) console.warn(`skipping daemon image tests: ${noDaemon}`);

const AS: As = "rootless";

function sha(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function sh(cmd: string[], env: Record<string, string> = {}): Buffer {
  const r = Bun.spawnSync(cmd, { env: { ...process.env, ...env }, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString()}`);
  return Buffer.from(r.stdout);
}

/** A tar of one folder's content, owned by root whoever runs the test. */
function tarDir(dir: string): Buffer {
  return sh(["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", dir, "-cf", "-", "."]);
}

/** A one-file layer: /version holding TEXT. */
function versionLayer(text: string): Buffer {
  const dir = path.join(work, `layer-${text}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "version"), `${text}\n`);
  return tarDir(dir);
}

/** An OCI image layout whose index names the image "v"; returns the gzipped layers' digests. */
function ociLayout(dir: string, layers: Buffer[], config: object): string[] {
  const blobs = path.join(dir, "blobs/sha256");
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer, mediaType: string) => {
    fs.writeFileSync(path.join(blobs, sha(data).slice(7)), data);
    return { mediaType, digest: sha(data), size: data.length };
  };
  const cfg = Buffer.from(
    JSON.stringify({
      created: "2024-05-01T00:00:00Z",
      architecture: process.arch === "arm64" ? "arm64" : "amd64",
      os: "linux",
      config,
      rootfs: { type: "layers", diff_ids: layers.map(sha) },
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: put(cfg, "application/vnd.oci.image.config.v1+json"),
    layers: layers.map((l) => put(zlib.gzipSync(l, { level: 1 }), "application/vnd.oci.image.layer.v1.tar+gzip")),
  };
  const top = put(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": "v" } }],
  };
  fs.writeFileSync(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify(index));
  return manifest.layers.map((l) => l.digest);
}

let work = "";
let registry: Subprocess | undefined;
let locked: Subprocess | undefined;
let lockedHost = "";
let registryDir = "";
let host = "";
let daemon: Subprocess<"ignore", "pipe", "pipe"> | undefined;
let home = "";
let xdg = "";
let sock = "";
let out = "";
let busyboxTar = "";
let layouts: Record<string, { dir: string; layers: string[] }> = {};

function skopeo(args: string[]): void {
  const policy = path.join(work, "policy.json");
  sh(["skopeo", "--policy", policy, ...args], { HOME: work });
}

/** Pushes the layout NAME to the loopback registry as HOST/NAME:v. */
function push(name: string): string {
  skopeo(["copy", "--quiet", "--dest-tls-verify=false", `oci:${layouts[name].dir}:v`, `docker://${host}/${name}:v`]);
  return `${host}/${name}:v`;
}

function env(): Record<string, string> {
  return {
    TINYC_DATA: path.join(home, "data"),
    XDG_RUNTIME_DIR: xdg,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    DOCKER_HOST: `unix://${sock}`,
    DOCKER_CONFIG: path.join(home, ".docker"),
  };
}

function docker(args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return runCommand([DOCKER!, ...args], { as: AS, env: env(), timeoutMs });
}

async function ok(args: string[]): Promise<string> {
  const r = await docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A raw API call through curl: the status and the body. */
async function api(method: string, url: string, headers: string[] = []): Promise<{ status: number; body: string }> {
  const args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", sock, "-X", method];
  for (const h of headers) args.push("-H", h);
  const r = await runCommand([...args, `http://d/v1.41${url}`], { as: AS, timeoutMs: 30_000 });
  const nl = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
}

/** What the store holds: every blob, layer and the image list, to see that a failure left it. */
function storeState(): string {
  const data = path.join(home, "data");
  const list = (d: string) => (fs.existsSync(path.join(data, d)) ? fs.readdirSync(path.join(data, d)).sort() : []);
  const images = fs.existsSync(path.join(data, "images.json")) ? fs.readFileSync(path.join(data, "images.json"), "utf8") : "";
  return JSON.stringify({ blobs: list("blobs/sha256"), layers: list("layers"), tmp: list("tmp"), images });
}

/** A docker-registry on 127.0.0.1 storing in DIR; with HTPASSWD, it asks for basic auth. */
async function startRegistry(dir: string, htpasswd?: string): Promise<{ proc: Subprocess; host: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  const config = path.join(dir, "config.yml");
  const auth = htpasswd ? `auth:\n  htpasswd:\n    realm: test\n    path: ${htpasswd}\n` : "";
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n` +
      `    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  const proc = Bun.spawn(["docker-registry", "serve", config], { stdout: "ignore", stderr: "ignore" });
  const where = `127.0.0.1:${port}`;
  const up = await waitUntil(() => {
    const r = Bun.spawnSync(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `http://${where}/v2/`]);
    return ["200", "401"].includes(r.stdout.toString());
  }, 10_000);
  if (!up) {
    proc.kill("SIGKILL");
    throw new Error(`docker-registry on ${where} did not start`);
  }
  return { proc, host: where };
}

beforeAll(async () => {
  if (noDaemon) return;
  work = scratchDir("rootless", "dimg-work");
  fs.writeFileSync(path.join(work, "policy.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const base = tarDir(path.join(FIXTURES, "busybox"));
  busyboxTar = path.join(work, "busybox.tar");
  fs.writeFileSync(busyboxTar, base);
  fs.chmodSync(busyboxTar, 0o644);
  const make = (name: string, version: string, labels: Record<string, string>) => {
    const dir = path.join(work, `layout-${name}`);
    const layers = ociLayout(dir, [base, versionLayer(version)], { Cmd: ["cat", "/version"], Env: ["PATH=/bin"], Labels: labels });
    layouts[name] = { dir, layers };
  };
  make("bb", "1", { "org.test.kind": "base" });
  make("bb2", "2", { "org.test.kind": "second" });
  make("broken", "broken", {});
  make("archived", "archived", { "org.test.kind": "archived" });
  registryDir = path.join(work, "registry");
  ({ proc: registry, host } = await startRegistry(registryDir));
  for (const name of ["bb", "bb2", "broken"]) push(name);
  // alice:s3cret, bcrypt as docker-registry wants it.
  const htpasswd = path.join(work, "htpasswd");
  fs.writeFileSync(htpasswd, `alice:${await Bun.password.hash("s3cret", { algorithm: "bcrypt", cost: 4 })}\n`);
  ({ proc: locked, host: lockedHost } = await startRegistry(path.join(work, "locked"), htpasswd));
  skopeo(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", `oci:${layouts.bb.dir}:v`, `docker://${lockedHost}/private:v`]);

  home = scratchDir(AS, "dimg-home");
  xdg = scratchDir(AS, "dimg-xdg");
  fs.chmodSync(xdg, 0o700);
  out = scratchDir(AS, "dimg-out");
  sock = path.join(xdg, "tinyc", "docker.sock");
  // The daemon reads no credentials of the CLI's: what it gets comes in X-Registry-Auth.
  const daemonEnv = { ...env(), DOCKER_CONFIG: path.join(home, "daemon-docker") };
  daemon = spawnAs([TINYC, "daemon", "--host", `unix://${sock}`], { as: AS, env: daemonEnv });
  const up = await waitUntil(() => {
    const r = Bun.spawnSync(["curl", "-s", "--unix-socket", sock, "http://d/_ping"]);
    return r.exitCode === 0 && r.stdout.toString() === "OK";
  }, 10_000);
  if (!up) throw new Error(`the daemon did not answer on ${sock}`);
}, 60_000);

afterAll(async () => {
  if (daemon && daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    await daemon.exited;
  }
  for (const r of [registry, locked]) {
    if (r && r.exitCode === null) {
      r.kill("SIGKILL");
      await r.exited;
    }
  }
  cleanup();
}, 30_000);

describe.skipIf(!!noDaemon)("the docker CLI's image commands against tinyc daemon, rootless", () => {
  test("docker pull from the loopback registry: progress, digest, status; again: up to date", async () => {
    const ref = `${host}/bb:v`;
    const r = await docker(["pull", ref]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("v: Pulling from bb");
    for (const l of layouts.bb.layers) expect(lines).toContain(`${l.slice(7, 19)}: Pull complete`);
    expect(r.stdout).toMatch(/^Digest: sha256:[0-9a-f]{64}$/m);
    expect(lines).toContain(`Status: Downloaded newer image for ${ref}`);
    expect(lines.at(-2)).toBe(ref);

    const again = await ok(["pull", ref]);
    expect(again).toContain(`${layouts.bb.layers[1].slice(7, 19)}: Already exists`);
    expect(again).toContain(`Status: Image is up to date for ${ref}`);
    const digest = (await ok(["image", "inspect", "-f", "{{index .RepoDigests 0}}", ref])).trim();
    expect(digest).toMatch(/@sha256:[0-9a-f]{64}$/);
    expect(await ok(["pull", digest])).toContain(`Status: Image is up to date for ${digest}`);
  }, 30_000);

  test("the raw pull stream: per-layer Downloading lines with their byte counts", async () => {
    const r = await api("POST", `/images/create?fromImage=${encodeURIComponent(`${host}/bb2`)}&tag=v`, ["X-Registry-Auth: e30="]);
    expect(r.status).toBe(200);
    const msgs = r.body.trim().split(/\r?\n/).map((l) => JSON.parse(l));
    expect(msgs[0]).toEqual({ status: "Pulling from bb2", id: "v" });
    // The busybox layer came with bb; the version layer is new.
    const [shared, fresh] = layouts.bb2.layers.map((d) => d.slice(7, 19));
    expect(msgs).toContainEqual({ status: "Already exists", progressDetail: {}, id: shared });
    const downloads = msgs.filter((m) => m.status === "Downloading" && m.id === fresh);
    expect(downloads.length).toBeGreaterThan(0);
    const last = downloads.at(-1).progressDetail;
    expect(last.current).toBe(last.total);
    expect(last.total).toBeGreaterThan(0);
    expect(msgs).toContainEqual({ status: "Pull complete", progressDetail: {}, id: fresh });
    expect(msgs.at(-1)).toEqual({ status: `Status: Downloaded newer image for ${host}/bb2:v` });
  }, 30_000);

  test("docker images and image inspect: names, digests, labels, filters", async () => {
    const rows = await ok(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}"]);
    const bbId = (await ok(["image", "inspect", "-f", "{{.Id}}", `${host}/bb:v`])).trim();
    expect(bbId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(rows).toContain(`${host}/bb:v ${bbId.slice(7, 19)} sha256:`);
    const f = "{{.Os}} {{.Architecture}} {{index .Config.Labels \"org.test.kind\"}} {{len .RootFS.Layers}} {{.Config.Cmd}} {{index .RepoDigests 0}}";
    const shown = await ok(["image", "inspect", "-f", f, `${host}/bb:v`]);
    expect(shown).toMatch(new RegExp(`^linux (amd64|arm64) base 2 \\[cat /version\\] ${host.replace(/\./g, "\\.")}/bb@sha256:[0-9a-f]{64}\\n$`));
    expect(await ok(["images", "-q", "--filter", "label=org.test.kind=second"])).toMatch(/^[0-9a-f]{12}\n$/);
    expect(await ok(["images", "--format", "{{.Repository}}", `${host}/bb`])).toBe(`${host}/bb\n`);
    const globbed = await ok(["images", "--format", "{{.Repository}}", "--filter", `reference=${host}/bb*`]);
    expect(globbed.trim().split("\n").sort()).toEqual([`${host}/bb`, `${host}/bb2`]);
    expect(await ok(["images", "-q", "--filter", "dangling=true"])).toBe("");
    const hist = await ok(["history", "--format", "{{.CreatedBy}}|{{.Size}}", `${host}/bb:v`]);
    expect(hist.trim().split("\n").length).toBe(2);
  }, 30_000);

  test("tag and rmi: an extra name goes alone; the last one takes the image; misses are 404", async () => {
    const src = `${host}/bb2:v`;
    const id = (await ok(["image", "inspect", "-f", "{{.Id}}", src])).trim();
    expect((await docker(["tag", src, "demo/copy:1"])).code).toBe(0);
    expect((await ok(["image", "inspect", "-f", "{{.Id}} {{.RepoTags}}", "demo/copy:1"])).trim()).toBe(`${id} [${src} demo/copy:1]`);
    expect(await ok(["rmi", "demo/copy:1"])).toBe("Untagged: demo/copy:1\n");
    const gone = await ok(["rmi", src]);
    expect(gone).toContain(`Untagged: ${src}\n`);
    expect(gone).toContain(`Deleted: ${id}\n`);
    const missing = await docker(["rmi", src]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`No such image: ${src}`);
    const inspect = await docker(["image", "inspect", "demo/none:1"]);
    expect(inspect.code).toBe(1);
    expect(inspect.stderr).toContain("No such image: demo/none:1");
    const bad = await docker(["tag", `${host}/bb:v`, "demo/UPPER:1"]);
    expect(bad.code).not.toBe(0);
  }, 30_000);

  test("save, rmi, load: the same image comes back under its names", async () => {
    const ref = `${host}/bb:v`;
    await ok(["tag", ref, "demo/saved:1"]);
    const id = (await ok(["image", "inspect", "-f", "{{.Id}}", ref])).trim();
    const file = path.join(out, "saved.tar");
    expect((await docker(["save", "-o", file, ref, "demo/saved:1"])).code).toBe(0);
    const names = sh(["tar", "-tf", file]).toString().split("\n");
    expect(names).toContain("manifest.json");
    expect(names).toContain(`blobs/sha256/${id.slice(7)}`);
    await ok(["rmi", ref, "demo/saved:1"]);
    expect((await docker(["image", "inspect", ref])).code).toBe(1);
    const loaded = await ok(["load", "-i", file]);
    expect(loaded.split("\n").sort()).toEqual(["", "Loaded image: demo/saved:1", `Loaded image: ${ref}`].sort());
    expect((await ok(["image", "inspect", "-f", "{{.Id}}", "demo/saved:1"])).trim()).toBe(id);
  }, 30_000);

  test("load of a docker-archive that skopeo wrote", async () => {
    const file = path.join(work, "archived.tar");
    skopeo(["copy", "--quiet", `oci:${layouts.archived.dir}:v`, `docker-archive:${file}:demo/archived:1`]);
    fs.chmodSync(file, 0o644);
    expect(await ok(["load", "-i", file])).toBe("Loaded image: demo/archived:1\n");
    expect(await ok(["image", "inspect", "-f", "{{index .Config.Labels \"org.test.kind\"}}", "demo/archived:1"])).toBe("archived\n");
  }, 30_000);

  test("docker import of a root filesystem tarball, with a change and a message", async () => {
    const r = await docker(["import", "-c", 'CMD ["sh"]', "-m", "from the fixture", busyboxTar, "demo/imported:1"]);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const f = "{{.Id}} {{.Config.Cmd}} {{.Comment}} {{len .RootFS.Layers}}";
    expect(await ok(["image", "inspect", "-f", f, "demo/imported:1"])).toBe(`${id} [sh] from the fixture 1\n`);
  }, 30_000);

  test("docker login checks the credentials; the pull then sends them in X-Registry-Auth", async () => {
    const ref = `${lockedHost}/private:v`;
    const anonymous = await docker(["pull", ref]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain("authentication required");
    const wrong = await runCommand([DOCKER!, "login", "-u", "alice", "--password-stdin", lockedHost], {
      as: AS, env: env(), input: "wrong\n", timeoutMs: 30_000,
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("unauthorized");
    const login = await runCommand([DOCKER!, "login", "-u", "alice", "--password-stdin", lockedHost], {
      as: AS, env: env(), input: "s3cret\n", timeoutMs: 30_000,
    });
    expect(login.stdout).toContain("Login Succeeded");
    expect(login.code).toBe(0);
    const pulled = await docker(["pull", ref]);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toContain(`Status: Downloaded newer image for ${ref}`);
  }, 30_000);

  test("rmi of an image a container uses: refused (409), and with -f only its names go", async () => {
    await ok(["tag", "demo/imported:1", "demo/used:1"]);
    const id = (await ok(["image", "inspect", "-f", "{{.Id}}", "demo/used:1"])).trim();
    await ok(["rmi", "demo/imported:1"]);
    const c = (await ok(["create", "--pull=never", "--name", "user-of-image", "demo/used:1", "true"])).trim();
    expect(c).toMatch(/^[0-9a-f]{64}$/);
    const refused = await docker(["rmi", "demo/used:1"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("container user-of-image is using it");
    expect(await ok(["rmi", "-f", "demo/used:1"])).toBe("Untagged: demo/used:1\n");
    // The image stays, nameless, for the container.
    expect(await ok(["images", "-q", "--no-trunc", "--filter", "dangling=true"])).toBe(`${id}\n`);
    await ok(["rm", "user-of-image"]);
    const gone = await ok(["rmi", id.slice(7, 19)]);
    expect(gone).toContain(`Deleted: ${id}`);
  }, 30_000);

  test("pull errors: a missing tag or repository, a wrong platform, a layer that is not what its digest says", async () => {
    const before = storeState();
    const tag = await docker(["pull", `${host}/bb:nope`]);
    expect(tag.code).toBe(1);
    expect(tag.stderr).toMatch(/^Error response from daemon: .*not found/);
    const repo = await docker(["pull", `${host}/nothere:v`]);
    expect(repo.code).toBe(1);
    expect(repo.stderr).toContain("not found");
    const other = process.arch === "arm64" ? "linux/amd64" : "linux/arm64";
    const plat = await docker(["pull", "--platform", other, `${host}/broken:v`]);
    expect(plat.code).toBe(1);
    expect(plat.stderr).toContain(`not "${other}"`);
    // The registry's copy of the new layer gets other bytes of the same length.
    const hex = layouts.broken.layers[1].slice(7);
    const blob = path.join(registryDir, "data/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    const bytes = fs.readFileSync(blob);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(blob, bytes);
    const corrupt = await docker(["pull", `${host}/broken:v`]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stdout).toContain("v: Pulling from broken");
    expect(corrupt.stderr).toContain(`digest mismatch for "${layouts.broken.layers[1]}"`);
    expect(storeState()).toBe(before);
  }, 30_000);

  test("bad uploads: a truncated archive or tarball, a malformed name; the store stays as it was", async () => {
    const before = storeState();
    const cut = path.join(work, "cut.tar");
    fs.writeFileSync(cut, fs.readFileSync(busyboxTar).subarray(0, 300_000));
    fs.chmodSync(cut, 0o644);
    const load = await docker(["load", "-i", cut]);
    expect(load.code).toBe(1);
    expect(load.stderr).toContain("load: invalid tar archive");
    const imp = await docker(["import", cut, "demo/cut:1"]);
    expect(imp.code).toBe(1);
    expect(imp.stderr).toContain("import: invalid tar archive");
    const name = await api("POST", "/images/create?fromSrc=-&repo=Bad%21Name");
    expect(name.status).toBe(400);
    expect(JSON.parse(name.body).message).toContain("invalid reference");
    for (const url of ["/images/create?fromSrc=-&repo=demo/empty:1", "/images/load"]) {
      const empty = await api("POST", url);
      expect(empty.status).toBe(400);
      expect(JSON.parse(empty.body).message).toMatch(/: the (tarball|archive) is empty$/);
    }
    const auth = await api("POST", `/images/create?fromImage=${host}/bb&tag=v`, ["X-Registry-Auth: !!!"]);
    expect(auth.status).toBe(400);
    expect(storeState()).toBe(before);
  }, 30_000);

  test("what is not supported says so", async () => {
    const prune = await docker(["image", "prune", "-f"]);
    expect(prune.code).not.toBe(0);
    expect(prune.stderr).toContain("not supported");
    for (const [method, url] of [
      ["GET", "/images/search?term=x"],
      ["POST", "/build"],
      ["POST", `/images/${host}/bb:v/push`],
      ["POST", "/images/create?fromSrc=http%3A%2F%2F127.0.0.1%3A1%2Fx.tar"],
    ]) {
      const r = await api(method, url);
      expect(r.status).toBe(501);
      expect(JSON.parse(r.body).message).toContain("not supported");
    }
  }, 30_000);
});
