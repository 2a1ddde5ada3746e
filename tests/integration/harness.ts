// Helpers for the integration tests, which run the built executable (dist/tinyc) as root and as
// an unprivileged user. Nothing here imports the project's sources: the tests see tinyc only
// from outside, as its users do.
//
// Run as root, "rootless" means the tinyc-test user that scripts/setup.sh creates; run as a
// user, it means that user, and tests "as root" cannot run.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Subprocess } from "bun";

export const REPO = path.resolve(import.meta.dir, "../..");
export const FIXTURES = process.env.TINYC_FIXTURES ?? path.join(REPO, ".cache/fixtures");
export const TINYC_DIST = path.join(REPO, "dist/tinyc");
export const TEST_USER = "tinyc-test";
export const IS_ROOT = process.getuid!() === 0;
const TMP_BASE = process.env.TINYC_TEST_TMP ?? "/tmp";
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export type As = "rootless" | "root";
export interface TestUser {
  user: string;
  uid: number;
  gid: number;
  home: string;
}

// Everything a test process makes lives in one folder that every user can traverse (0755).
// cleanup() may remove it between test files; each helper makes again what it needs.
/**
 * bun test runs no exit handlers, so a test process cannot remove its own folder at the end:
 * each folder carries its process's pid, and folders of processes that are gone are removed
 * by the next test process of the same user.
 */
function sweepStale(): void {
  for (const name of fs.readdirSync(TMP_BASE)) {
    const m = /^tinyc-it-(\d+)-/.exec(name);
    if (!m) continue;
    const dir = path.join(TMP_BASE, name);
    try {
      if (fs.lstatSync(dir).uid !== process.getuid!()) continue;
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") {
        Bun.spawnSync(["rm", "-rf", "--one-file-system", dir], { stderr: "pipe" });
      }
    }
  }
}
sweepStale();

export const RUN_DIR = fs.mkdtempSync(path.join(TMP_BASE, `tinyc-it-${process.pid}-`));
fs.chmodSync(RUN_DIR, 0o755);

function ensureDir(dir: string, mode = 0o755, owner?: { uid: number; gid: number }): string {
  // Parents made here are 0755 too, whatever the umask: the test user must traverse them.
  const parent = path.dirname(dir);
  if (dir !== RUN_DIR && !fs.existsSync(parent)) ensureDir(parent);
  try {
    fs.mkdirSync(dir);
  } catch (e: any) {
    if (e?.code !== "EEXIST") throw e;
  }
  // Under the shared /tmp a path made again after cleanup() must not be someone else's.
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || (st.uid !== process.getuid!() && st.uid !== owner?.uid))
    throw new Error(`${dir} is not a folder of this test run`);
  fs.chmodSync(dir, mode);
  if (owner && IS_ROOT) fs.chownSync(dir, owner.uid, owner.gid);
  return dir;
}

function removeTree(dir: string): void {
  // --one-file-system: a mount left behind in a bundle is never followed into.
  const rm = ["rm", "-rf", "--one-file-system", dir];
  if (Bun.spawnSync(rm, { stderr: "pipe" }).exitCode === 0 || IS_ROOT) return;
  // A user cannot remove what a container wrote as one of its subordinate ids; inside a user
  // namespace that maps them, it can.
  Bun.spawnSync(["unshare", "--map-root-user", "--map-auto", ...rm], { stderr: "pipe" });
}

// The executable, copied where the test user can reach it: CI clones under /root (0700).
export const TINYC = path.join(RUN_DIR, "bin", "tinyc");

/** Makes the copy of dist/tinyc again if a cleanup() removed it; tests that run it directly call it. */
export function ensureTinyc(): void {
  if (fs.existsSync(TINYC) || !fs.existsSync(TINYC_DIST)) return;
  ensureDir(path.dirname(TINYC));
  fs.copyFileSync(TINYC_DIST, TINYC + ".tmp");
  fs.chmodSync(TINYC + ".tmp", 0o755);
  fs.renameSync(TINYC + ".tmp", TINYC);
}
ensureTinyc();

export function tinycSkipReason(): string | null {
  return fs.existsSync(TINYC_DIST) ? null : "no dist/tinyc: run npm run build";
}

function readLines(file: string): string[] {
  try {
    return fs.readFileSync(file, "utf8").split("\n");
  } catch {
    return [];
  }
}

let rootlessCache: { user: TestUser | null; reason: string | null } | undefined;

function findRootless(): { user: TestUser | null; reason: string | null } {
  if (!IS_ROOT) {
    const uid = process.getuid!();
    const gid = process.getgid!();
    let user = String(uid);
    let home = process.env.HOME ?? "/";
    try {
      const info = os.userInfo();
      user = info.username;
      home = info.homedir;
    } catch {
      // A uid without a passwd entry still runs rootless.
    }
    return { user: { user, uid, gid, home }, reason: null };
  }
  const entry = readLines("/etc/passwd")
    .map((l) => l.split(":"))
    .find((f) => f[0] === TEST_USER);
  if (!entry) return { user: null, reason: `no ${TEST_USER} user: run scripts/setup.sh` };
  const user = { user: TEST_USER, uid: Number(entry[2]), gid: Number(entry[3]), home: entry[5] };
  for (const file of ["/etc/subuid", "/etc/subgid"]) {
    const has = readLines(file).some((l) => {
      const owner = l.split(":")[0];
      return owner === user.user || owner === String(user.uid);
    });
    const reason = `${TEST_USER} has no range in ${file}: run scripts/setup.sh`;
    if (!has) return { user: null, reason };
  }
  return { user, reason: null };
}

/** The unprivileged user that rootless tests run as, or null (see rootlessSkipReason). */
export function rootless(): TestUser | null {
  rootlessCache ??= findRootless();
  return rootlessCache.user;
}

export function rootlessSkipReason(): string | null {
  rootlessCache ??= findRootless();
  return rootlessCache.reason;
}

export function rootSkipReason(): string | null {
  return IS_ROOT ? null : "needs root";
}

function userFor(as: As): TestUser {
  if (as === "root") {
    if (!IS_ROOT) throw new Error("running as root needs a test process run by root");
    return { user: "root", uid: 0, gid: 0, home: process.env.HOME ?? "/root" };
  }
  const user = rootless();
  if (!user) throw new Error(rootlessSkipReason()!);
  return user;
}

/** XDG_RUNTIME_DIR for that user in this test process: mode 0700, owned by the user. */
export function runtimeDir(as: As): string {
  const user = userFor(as);
  return ensureDir(path.join(RUN_DIR, `xdg-${user.uid}`), 0o700, user);
}

let scratchCount = 0;

/** A fresh empty folder owned by that user (mode 0755), for state roots, pid files and such. */
export function scratchDir(as: As, name = "scratch"): string {
  const user = userFor(as);
  return ensureDir(path.join(RUN_DIR, "scratch", `${name}-${++scratchCount}`), 0o755, user);
}

type Stdio = "pipe" | "ignore" | "inherit";

export interface SpawnOptions<
  In extends Stdio = Stdio,
  Out extends Stdio = Stdio,
  Err extends Stdio = Stdio,
> {
  as: As;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: In;
  stdout?: Out;
  stderr?: Err;
}

function environment(as: As, user: TestUser, extra?: Record<string, string>) {
  const env: Record<string, string> = {};
  // TINYC_* settings (log levels and the like) reach the runtime from the test's caller.
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("TINYC_") && v !== undefined) env[k] = v;
  }
  Object.assign(env, { HOME: user.home, PATH, XDG_RUNTIME_DIR: runtimeDir(as) }, extra);
  return env;
}

// Root becomes the test user for one command; setpriv execs it, so its pid is the command's.
function becomePrefix(as: As): string[] {
  if (as !== "rootless" || !IS_ROOT) return [];
  const user = userFor(as);
  return ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--"];
}

/** Starts any command as that user, with the harness's environment. stdin defaults to
 * /dev/null, stdout and stderr to pipes. */
export function spawnAs<
  In extends Stdio = "ignore",
  Out extends Stdio = "pipe",
  Err extends Stdio = "pipe",
>(
  cmd: string[],
  opts: SpawnOptions<In, Out, Err>,
): Subprocess<In, Out, Err> {
  const user = userFor(opts.as);
  return Bun.spawn([...becomePrefix(opts.as), ...cmd], {
    cwd: opts.cwd ?? ensureDir(RUN_DIR),
    env: environment(opts.as, user, opts.env),
    stdin: opts.stdin ?? "ignore",
    stdout: opts.stdout ?? "pipe",
    stderr: opts.stderr ?? "pipe",
  }) as unknown as Subprocess<In, Out, Err>;
}

function checkTinyc(): void {
  const reason = tinycSkipReason();
  if (reason) throw new Error(reason);
  ensureTinyc();
}

/** Starts tinyc, for tests that signal it or talk to it while it runs. */
export function spawnTinyc<
  In extends Stdio = "ignore",
  Out extends Stdio = "pipe",
  Err extends Stdio = "pipe",
>(
  args: string[],
  opts: SpawnOptions<In, Out, Err>,
): Subprocess<In, Out, Err> {
  checkTinyc();
  return spawnAs([TINYC, ...args], opts);
}

export interface RunOptions {
  as: As;
  input?: string | Uint8Array;
  env?: Record<string, string>;
  cwd?: string;
  /** Then the process is killed (SIGKILL) and timedOut is set. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  timedOut: boolean;
}

// Reads a stream to its end, or until stop() once the process is gone: a container that
// tinyc left running (create, run -d) keeps the pipe open long after tinyc exits.
function drain(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
      }
    } catch {
      // Cancelled by stop().
    }
  })();
  return {
    done,
    stop: () => reader.cancel().catch(() => {}),
    bytes: () => Buffer.concat(chunks),
  };
}

const GRACE_MS = 300;

/** Runs a command as that user to its end and collects its output. */
export async function runCommand(cmd: string[], opts: RunOptions): Promise<RunResult> {
  const user = userFor(opts.as);
  const proc = Bun.spawn([...becomePrefix(opts.as), ...cmd], {
    cwd: opts.cwd ?? ensureDir(RUN_DIR),
    env: environment(opts.as, user, opts.env),
    // Bun feeds the input while the output is read, so neither side can block the other.
    stdin: opts.input === undefined ? "ignore" : Buffer.from(opts.input),
    stdout: "pipe",
    stderr: "pipe",
  });
  const out = drain(proc.stdout);
  const err = drain(proc.stderr);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.timeoutMs ?? 30_000);
  await proc.exited;
  clearTimeout(timer);
  await Promise.race([Promise.all([out.done, err.done]), Bun.sleep(GRACE_MS)]);
  await Promise.all([out.stop(), err.stop()]);
  await Promise.all([out.done, err.done]);
  const stdoutBytes = new Uint8Array(out.bytes());
  return {
    code: proc.exitCode,
    signal: proc.signalCode === null ? null : String(proc.signalCode),
    stdout: new TextDecoder().decode(stdoutBytes),
    stderr: err.bytes().toString("utf8"),
    stdoutBytes,
    timedOut,
  };
}

/** Runs tinyc with these arguments as that user. */
export async function run(args: string[], opts: RunOptions): Promise<RunResult> {
  checkTinyc();
  return runCommand([TINYC, ...args], opts);
}

// A loose view of config.json: tests reach into any part of it.
export interface Spec {
  ociVersion: string;
  process: { terminal: boolean; args: string[]; env: string[]; cwd: string; [k: string]: any };
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: { destination: string; type?: string; source?: string; options?: string[] }[];
  linux: { namespaces: { type: string; path?: string }[]; [k: string]: any };
  [k: string]: any;
}

/** The base config of test bundles: examples/hello/config.json with the given args. */
export function baseConfig(args: string[] = ["sh"]): Spec {
  const caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
  const noexec = ["nosuid", "noexec", "nodev"];
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: [`PATH=${PATH}`],
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "tinyc",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: [...noexec, "mode=1777", "size=65536k"],
      },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: noexec },
      { destination: "/sys", type: "none", source: "/sys", options: ["rbind", ...noexec, "ro"] },
    ],
    linux: {
      namespaces: ["pid", "ipc", "uts", "mount", "network", "user"].map((type) => ({ type })),
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

export type Rootfs = "busybox" | "debian";

export function fixtureSkipReason(rootfs: Rootfs): string | null {
  const file = path.join(FIXTURES, rootfs === "debian" ? "debian.tar" : "busybox/bin/report");
  return fs.existsSync(file) ? null : `no ${rootfs} fixture: run scripts/fixtures.sh`;
}

export interface BundleOptions {
  rootfs: Rootfs;
  owner: As;
  /** Changes the base config before it is written. */
  config?: (spec: Spec) => void;
  args?: string[];
}

export interface Bundle {
  dir: string;
  rootfs: string;
  cleanup: () => void;
}

function sh(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString().trim()}`);
}

/** A bundle folder with a copy of a fixture rootfs and a config.json, owned by `owner`. */
export async function makeBundle(opts: BundleOptions): Promise<Bundle> {
  const owner = userFor(opts.owner);
  const reason = fixtureSkipReason(opts.rootfs);
  if (reason) throw new Error(reason);
  const parent = ensureDir(path.join(RUN_DIR, "bundles"));
  const dir = fs.mkdtempSync(path.join(parent, `${opts.rootfs}-`));
  fs.chmodSync(dir, 0o755);
  const rootfs = path.join(dir, "rootfs");
  if (opts.rootfs === "busybox") {
    sh(["cp", "-a", path.join(FIXTURES, "busybox"), rootfs]);
  } else {
    ensureDir(rootfs);
    sh(["tar", "-C", rootfs, "--numeric-owner", "-xpf", path.join(FIXTURES, "debian.tar")]);
  }
  const spec = baseConfig(opts.args);
  opts.config?.(spec);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(spec, null, 2) + "\n");
  // Only root can give files away; a user's copies are already theirs.
  if (IS_ROOT && owner.uid !== 0) sh(["chown", "-hR", `${owner.uid}:${owner.gid}`, dir]);
  return { dir, rootfs, cleanup: () => removeTree(dir) };
}

/** Removes what this test process made: bundles, scratch and runtime folders, the copy of
 * tinyc. Fit for afterAll; the helpers make again whatever a later test file needs. */
/**
 * Removes what the tests of one file made. The copy of tinyc stays for the files that follow in
 * the same process (some run it directly); the whole folder goes when the process exits.
 */
export function cleanup(): void {
  if (!fs.existsSync(RUN_DIR)) return;
  for (const name of fs.readdirSync(RUN_DIR)) {
    if (name !== "bin") removeTree(path.join(RUN_DIR, name));
  }
}
process.on("exit", () => removeTree(RUN_DIR));

let usernsCache: string | null | undefined;

/** Why user namespaces cannot be made by the rootless user here, or null when they can. */
export function requireUserns(): string | null {
  if (usernsCache !== undefined) return usernsCache;
  const sysctl = (name: string) => {
    try {
      return fs.readFileSync(`/proc/sys/${name}`, "utf8").trim();
    } catch {
      return undefined;
    }
  };
  const check = (): string | null => {
    if (sysctl("user/max_user_namespaces") === "0") return "user.max_user_namespaces is 0";
    if (sysctl("kernel/unprivileged_userns_clone") === "0")
      return "kernel.unprivileged_userns_clone is 0";
    if (sysctl("kernel/apparmor_restrict_unprivileged_userns") === "1")
      return "kernel.apparmor_restrict_unprivileged_userns is 1";
    const reason = rootlessSkipReason();
    if (reason) return reason;
    const r = Bun.spawnSync([...becomePrefix("rootless"), "unshare", "-U", "true"], {
      cwd: "/",
      stdout: "pipe",
      stderr: "pipe",
    });
    if (r.exitCode === 0) return null;
    return `unshare -U fails as ${rootless()!.user}: ${r.stderr.toString().trim()}`;
  };
  usernsCache = check();
  return usernsCache;
}
