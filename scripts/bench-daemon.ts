// `tinyc daemon` against dockerd, both driven by the same docker CLI: the time of
// `docker run --rm busybox:local true` and the memory each engine holds, at rest and with 50
// running containers.
//
// usage: bun scripts/bench-daemon.ts [--runs N] [--warmup N] [--count N] [--no-root]
//                                    [--storage-driver vfs|overlay2]
//
// Runs as root. Everything lives in one temporary folder, removed at exit:
// - tinyc daemon as the user tinyc-test (rootless) and, unless --no-root, as root, each with its
//   own TINYC_DATA, XDG_RUNTIME_DIR, HOME and socket; busybox:local comes from `tinyc import`
//   of the busybox fixture;
// - dockerd (Debian's docker.io) as root with a containerd of its own: its own sockets, root,
//   state, data root and exec root, no bridge and no iptables; busybox:local comes from
//   `docker import` of the same tar. Its storage driver is vfs by default: with overlay2 on this
//   kernel, dockerd 20.10's runs start failing after a few with runc's "executable file not
//   found in $PATH" (not looked into further); vfs copies the 2.7 MB busybox tree for each
//   container.
// Every run says --pull=never and --network none (dockerd has no bridge; tinyc's default
// network would add slirp4netns to each run). The runs are interleaved: one of each engine in
// turn, so that the machine's load falls on all of them alike.
//
// Memory is the proportional set size (PSS) and RSS from /proc/PID/smaps_rollup:
// - tinyc: the daemon, and the shims named by TINYC_DATA/containers/*/shim.pid;
// - docker: dockerd and containerd (by the pids this script started) and the
//   containerd-shim-runc-v2 processes named by containerd's state/.../moby/*/shim.pid.
// The containers' own processes (`sleep`) are counted on neither side.

import { spawnSync } from "node:child_process";
import {
  chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync,
  rmSync, rmdirSync, writeFileSync,
} from "node:fs";
import { join } from "node:path";
import minimist from "minimist";

const REPO = join(import.meta.dir, "..");
const TINYC_BUILT = join(REPO, "dist/tinyc");
const FIXTURE = join(REPO, ".cache/fixtures/busybox");
const IMAGE = "busybox:local";
const USER = { name: "tinyc-test", uid: 1001, gid: 1001 };
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const args = minimist(process.argv.slice(2), {
  boolean: ["root", "help"],
  string: ["runs", "warmup", "count", "storage-driver"],
  default: { root: true },
});
if (args.help) {
  console.log("usage: bun scripts/bench-daemon.ts [--runs N] [--warmup N] [--count N] [--no-root] [--storage-driver D]");
  process.exit(0);
}
function positive(name: string, dflt: number): number {
  const v = args[name] === undefined ? dflt : Number(args[name]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`bench-daemon: --${name} ${JSON.stringify(args[name])}: not a number`);
    process.exit(2);
  }
  return v;
}
const RUNS = Math.max(1, positive("runs", 20));
const WARMUP = positive("warmup", 3);
const COUNT = Math.max(1, positive("count", 50));
const DRIVER = String(args["storage-driver"] ?? "vfs");

function which(cmd: string): string | null {
  return Bun.which(cmd, { PATH });
}
if (process.getuid!() !== 0) fail("run as root (dockerd runs as root; the rootless daemon runs as tinyc-test)");
for (const need of [TINYC_BUILT, FIXTURE]) {
  if (!existsSync(need)) fail(`${need} is missing: run npm run build and bash scripts/fixtures.sh`);
}
const DOCKER = which("docker");
for (const cmd of ["docker", "dockerd", "containerd", "containerd-shim-runc-v2", "runc", "setpriv", "tar"]) {
  if (!which(cmd)) fail(`${cmd} is not installed`);
}

function fail(msg: string): never {
  console.error(`bench-daemon: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Folders and cleanup
// ---------------------------------------------------------------------------------------------

const base = mkdtempSync("/tmp/tinyc-bench-daemon-");
chmodSync(base, 0o755);

function dir(p: string, owner: "root" | "user" = "root", mode = 0o755): string {
  mkdirSync(p, { recursive: true, mode });
  chmodSync(p, mode);
  if (owner === "user") chownSync(p, USER.uid, USER.gid);
  return p;
}

// dockerd makes these whatever its flags say; the ones absent before are removed again.
const HOST_LEFTOVERS = ["/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker"];
const KEY_JSON = "/etc/docker/key.json";
const absentBefore = new Set([...HOST_LEFTOVERS, KEY_JSON].filter((p) => !existsSync(p)));

const endings: (() => Promise<void> | void)[] = [];
/** The daemons' logs, shown when the benchmark fails. */
const logs: string[] = [];
let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const end of endings.reverse()) {
    try {
      await end();
    } catch (e) {
      console.error(`bench-daemon: cleanup step failed: ${e}`);
    }
  }
  if (absentBefore.has(KEY_JSON)) rmSync(KEY_JSON, { force: true });
  for (const d of HOST_LEFTOVERS) {
    if (!absentBefore.has(d)) continue;
    try {
      rmdirSync(d);
    } catch {
      // Not empty, or not there.
    }
  }
  rmSync(base, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    void cleanup().then(() => process.exit(130));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, up to 10 s, then SIGKILL: for a pid this script started or read from its own files. */
async function endPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 200 && alive(pid); i++) await Bun.sleep(50);
  if (alive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}

function readPid(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function parentOf(pid: number): number | null {
  try {
    const m = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** One command, as root or as the test user (setpriv execs it: one process more, no shell). */
async function run(cmd: string[], as: "root" | "user", env: Record<string, string>, input?: string): Promise<Result> {
  const argv = as === "user"
    ? ["setpriv", `--reuid=${USER.uid}`, `--regid=${USER.gid}`, "--clear-groups", "--", ...cmd]
    : cmd;
  const t0 = performance.now();
  const p = Bun.spawn(argv, {
    env: { PATH, ...env },
    cwd: base,
    stdin: input === undefined ? "ignore" : Buffer.from(input),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  return { code: p.exitCode, stdout, stderr, ms: performance.now() - t0 };
}

interface Engine {
  name: string;
  as: "root" | "user";
  sock: string;
  env: Record<string, string>;
  /** The processes that make up the engine at rest. */
  pids: () => { name: string; pid: number }[];
  /** The per-container processes the engine keeps (shims), the containers' own excluded. */
  shims: () => number[];
}

function docker(e: Engine, argv: string[]): Promise<Result> {
  return run([DOCKER!, "-H", `unix://${e.sock}`, ...argv], e.as, e.env);
}

async function ok(e: Engine, argv: string[]): Promise<string> {
  const r = await docker(e, argv);
  if (r.code !== 0) throw new Error(`${e.name}: docker ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// The engines
// ---------------------------------------------------------------------------------------------

const TAR = join(base, "busybox.tar");
if (spawnSync("tar", ["-C", FIXTURE, "-cf", TAR, "."]).status !== 0) fail("tar of the busybox fixture failed");
chmodSync(TAR, 0o644);

async function startTinyc(as: "root" | "user"): Promise<Engine> {
  const owner = as === "user" ? "user" : "root";
  const top = dir(join(base, `tinyc-${as}`), owner);
  const home = dir(join(top, "home"), owner);
  const xdg = dir(join(top, "xdg"), owner, 0o700);
  const data = join(home, "data");
  const sock = join(xdg, "tinyc", "docker.sock");
  const env = {
    TINYC_DATA: data,
    XDG_RUNTIME_DIR: xdg,
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    DOCKER_CONFIG: join(home, ".docker"),
  };
  // A copy of the executable each: two daemons running one file would share its pages, and
  // each one's PSS would count half of them.
  const TINYC = join(top, "tinyc");
  copyFileSync(TINYC_BUILT, TINYC);
  chmodSync(TINYC, 0o755);
  const imp = await run([TINYC, "import", TAR, IMAGE], as, env);
  if (imp.code !== 0) throw new Error(`tinyc import: ${imp.stderr.trim()}`);
  const log = join(top, "daemon.log");
  logs.push(log);
  const argv = [TINYC, "daemon", "--host", `unix://${sock}`];
  const full = as === "user"
    ? ["setpriv", `--reuid=${USER.uid}`, `--regid=${USER.gid}`, "--clear-groups", "--", ...argv]
    : argv;
  const logFd = Bun.file(log);
  const proc = Bun.spawn(full, { env: { PATH, ...env }, cwd: top, stdin: "ignore", stdout: logFd, stderr: logFd });
  const shims = () => {
    const cdir = join(data, "containers");
    if (!existsSync(cdir)) return [];
    return readdirSync(cdir)
      .map((id) => readPid(join(cdir, id, "shim.pid")))
      .filter((p): p is number => p !== null && alive(p));
  };
  const e: Engine = {
    name: as === "user" ? "tinyc rootless" : "tinyc root",
    as,
    sock,
    env,
    pids: () => [{ name: "tinyc daemon", pid: proc.pid }],
    shims,
  };
  endings.push(async () => {
    if (proc.exitCode === null) {
      const ids = (await docker(e, ["ps", "-aq"])).stdout.split("\n").filter(Boolean);
      if (ids.length) await docker(e, ["rm", "-f", ...ids]);
    }
    await endPid(proc.pid);
    // Shims outlive the daemon by design: any left are ended by the pid each one wrote.
    for (const pid of shims()) await endPid(pid);
  });
  await waitUntil(`${e.name} to serve`, async () => {
    if (proc.exitCode !== null) throw new Error(`${e.name} exited: ${readFileSync(log, "utf8").slice(-600)}`);
    return existsSync(sock) && (await docker(e, ["version"])).code === 0;
  });
  return e;
}

async function startDockerd(): Promise<Engine> {
  const top = dir(join(base, "docker"));
  // Its own containerd, with everything under one folder.
  const cdDir = dir(join(top, "containerd"));
  const cdSock = join(cdDir, "containerd.sock");
  const cdState = join(cdDir, "state");
  const cdConfig = join(cdDir, "containerd.toml");
  writeFileSync(
    cdConfig,
    [
      "version = 2",
      `root = ${JSON.stringify(join(cdDir, "root"))}`,
      `state = ${JSON.stringify(cdState)}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = ${JSON.stringify(cdSock)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(cdSock + ".ttrpc")}`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(join(cdDir, "opt"))}`,
      "",
    ].join("\n"),
  );
  const cdLog = Bun.file(join(cdDir, "containerd.log"));
  const cd = Bun.spawn([which("containerd")!, "--config", cdConfig], {
    cwd: cdDir, stdin: "ignore", stdout: cdLog, stderr: cdLog, env: { PATH },
  });
  const tasks = join(cdState, "io.containerd.runtime.v2.task", "moby");
  // containerd 1.6 writes no shim.pid: each bundle's init.pid names the container's first
  // process, whose parent is the shim holding it.
  const shims = () => {
    if (!existsSync(tasks)) return [];
    const pids: number[] = [];
    for (const id of readdirSync(tasks)) {
      const init = readPid(join(tasks, id, "init.pid"));
      const shim = init === null ? null : parentOf(init);
      if (shim !== null && comm(shim).startsWith("containerd-shim")) pids.push(shim);
    }
    return [...new Set(pids)];
  };
  endings.push(async () => {
    await endPid(cd.pid);
    for (const pid of shims()) await endPid(pid);
  });
  await waitUntil("containerd to serve", () => {
    if (cd.exitCode !== null) throw new Error("containerd exited");
    return existsSync(cdSock);
  });

  const sock = join(top, "docker.sock");
  const config = join(top, "daemon.json");
  writeFileSync(config, "{}\n");
  const log = join(top, "dockerd.log");
  logs.push(log);
  const logFd = Bun.file(log);
  const proc = Bun.spawn(
    [
      which("dockerd")!,
      ...["--config-file", config, "--containerd", cdSock, "--pidfile", join(top, "pid")],
      ...["--data-root", join(top, "data"), "--exec-root", dir(join(top, "exec")), "-H", `unix://${sock}`],
      ...["--bridge=none", "--iptables=false", "--ip-masq=false", "--storage-driver", DRIVER],
      ...["--cgroup-parent", `/tinyc-bench-docker-${process.pid}`],
    ],
    { cwd: top, stdin: "ignore", stdout: logFd, stderr: logFd, env: { PATH } },
  );
  const e: Engine = {
    name: "dockerd",
    as: "root",
    sock,
    env: { DOCKER_CONFIG: dir(join(top, "cli")) },
    pids: () => [{ name: "dockerd", pid: proc.pid }, { name: "containerd", pid: cd.pid }],
    shims,
  };
  endings.push(async () => {
    if (proc.exitCode === null) {
      const ids = (await docker(e, ["ps", "-aq"])).stdout.split("\n").filter(Boolean);
      if (ids.length) await docker(e, ["rm", "-f", ...ids]);
    }
    await endPid(proc.pid);
    for (const root of ["/sys/fs/cgroup", ...readdirSync("/sys/fs/cgroup").map((d) => join("/sys/fs/cgroup", d))]) {
      try {
        rmdirSync(join(root, `tinyc-bench-docker-${process.pid}`));
      } catch {}
    }
  });
  await waitUntil("dockerd to serve", async () => {
    if (proc.exitCode !== null) throw new Error(`dockerd exited: ${readFileSync(log, "utf8").slice(-800)}`);
    return (await docker(e, ["version"])).code === 0;
  }, 30_000);
  await ok(e, ["import", "--change", `ENV PATH=${PATH}`, TAR, IMAGE]);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Measures
// ---------------------------------------------------------------------------------------------

interface Mem {
  rss: number;
  pss: number;
}

/** RSS and PSS in KiB from smaps_rollup; zero for a process that is gone. */
function mem(pid: number): Mem {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
    return { rss: field("Rss"), pss: field("Pss") };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

function sum(ms: Mem[]): Mem {
  return ms.reduce((a, b) => ({ rss: a.rss + b.rss, pss: a.pss + b.pss }), { rss: 0, pss: 0 });
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.ceil(i)] - s[lo]) * (i - lo);
}

const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
const ms = (x: number) => `${x.toFixed(1)} ms`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

function table(head: string[], rows: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

const RUN_ARGS = ["run", "--rm", "--pull=never", "--network", "none", IMAGE, "true"];

async function main(): Promise<void> {
  const load0 = readFileSync("/proc/loadavg", "utf8").trim();
  console.log(`load at start: ${load0}; ${RUNS} runs after ${WARMUP} warm-up, ${COUNT} containers`);
  const engines: Engine[] = [];
  engines.push(await startTinyc("user"));
  if (args.root) engines.push(await startTinyc("root"));
  engines.push(await startDockerd());
  const dockerd = engines[engines.length - 1];

  // Memory at rest: after the start and one `docker version`.
  const rest = new Map<Engine, { parts: { name: string; m: Mem }[]; total: Mem }>();
  for (const e of engines) {
    await ok(e, ["version"]);
    await Bun.sleep(200);
    const parts = e.pids().map(({ name, pid }) => ({ name, m: mem(pid) }));
    rest.set(e, { parts, total: sum(parts.map((p) => p.m)) });
  }

  // Each run checks its result: a failed run is no measure.
  for (const e of engines) {
    const r = await docker(e, RUN_ARGS);
    if (r.code !== 0) throw new Error(`${e.name}: docker ${RUN_ARGS.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  }
  const times = new Map<Engine, number[]>(engines.map((e) => [e, []]));
  const failures = new Map<Engine, number>();
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const e of engines) {
      const r = await docker(e, RUN_ARGS);
      if (r.code !== 0) {
        // A failed run is no measure: it is counted, shown, and left out.
        const n = (failures.get(e) ?? 0) + 1;
        failures.set(e, n);
        console.error(`${e.name}: run ${i} exited ${r.code}: ${r.stderr.trim().split("\n")[0]}`);
        if (n > Math.max(2, RUNS / 10)) throw new Error(`${e.name}: ${n} runs failed`);
        continue;
      }
      if (i >= WARMUP) times.get(e)!.push(r.ms);
    }
  }
  const load1 = readFileSync("/proc/loadavg", "utf8").trim();

  // COUNT running containers each, started in turn.
  const busy = new Map<Engine, { parts: { name: string; m: Mem }[]; shims: Mem; nShims: number; total: Mem }>();
  for (let i = 0; i < COUNT; i++) {
    for (const e of engines) await ok(e, ["run", "-d", "--pull=never", "--network", "none", IMAGE, "sleep", "1000"]);
  }
  await Bun.sleep(500);
  for (const e of engines) {
    const parts = e.pids().map(({ name, pid }) => ({ name, m: mem(pid) }));
    const shimPids = e.shims();
    const shims = sum(shimPids.map(mem));
    busy.set(e, { parts, shims, nShims: shimPids.length, total: sum([...parts.map((p) => p.m), shims]) });
  }
  const load2 = readFileSync("/proc/loadavg", "utf8").trim();
  for (const e of engines) {
    const ids = (await ok(e, ["ps", "-aq"])).split("\n").filter(Boolean);
    if (ids.length) await ok(e, ["rm", "-f", ...ids]);
  }

  console.log(`\ndocker run --rm --pull=never --network none ${IMAGE} true (load after: ${load1})\n`);
  const d = times.get(dockerd)!;
  table(
    ["engine", "median", "p90", "min", "failed", "median/dockerd", "p90/dockerd"],
    engines.map((e) => {
      const t = times.get(e)!;
      return [e.name, ms(quantile(t, 0.5)), ms(quantile(t, 0.9)), ms(Math.min(...t)), String(failures.get(e) ?? 0),
        ratio(quantile(t, 0.5), quantile(d, 0.5)), ratio(quantile(t, 0.9), quantile(d, 0.9))];
    }),
  );

  console.log(`\nmemory (PSS, RSS in parentheses; load with ${COUNT} running: ${load2})\n`);
  const dr = rest.get(dockerd)!.total.pss;
  const db = busy.get(dockerd)!;
  const dGrowth = (db.total.pss - dr) / COUNT;
  table(
    ["engine", "at rest", `with ${COUNT}`, "shims", "per container", "rest/dockerd", "per ctr/dockerd"],
    engines.map((e) => {
      const r = rest.get(e)!;
      const b = busy.get(e)!;
      const growth = (b.total.pss - r.total.pss) / COUNT;
      return [
        e.name,
        `${mib(r.total.pss)} (${mib(r.total.rss)})`,
        `${mib(b.total.pss)} (${mib(b.total.rss)})`,
        `${b.nShims}: ${mib(b.shims.pss)}`,
        `${(growth / 1024).toFixed(2)} MiB`,
        ratio(r.total.pss, dr),
        ratio(growth, dGrowth),
      ];
    }),
  );
  console.log("\nparts:");
  for (const e of engines) {
    const r = rest.get(e)!;
    const b = busy.get(e)!;
    for (const p of r.parts) {
      const pb = b.parts.find((x) => x.name === p.name)!;
      console.log(`  ${e.name}: ${p.name} at rest PSS ${mib(p.m.pss)} RSS ${mib(p.m.rss)}; with ${COUNT} PSS ${mib(pb.m.pss)} RSS ${mib(pb.m.rss)}`);
    }
    console.log(`  ${e.name}: ${b.nShims} shims PSS ${mib(b.shims.pss)} (${(b.shims.pss / Math.max(1, b.nShims)).toFixed(0)} KiB each) RSS ${mib(b.shims.rss)}`);
  }
}

try {
  await main();
} catch (e) {
  console.error(`bench-daemon: ${(e as Error).message}`);
  for (const log of logs) {
    const text = existsSync(log) ? readFileSync(log, "utf8").trim() : "";
    if (text) console.error(`--- the end of ${log}:\n${text.split("\n").slice(-15).join("\n")}`);
  }
  process.exitCode = 1;
} finally {
  await cleanup();
}
