// Helpers shared by the integration tests: `tinyc run` of bundles (run, errors and hostile
// bundles) and the runc verbs driven one command at a time (lifecycle, hooks, seccomp,
// cgroups). They build on harness.ts and, like it, see tinyc only from outside.
import { expect } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  type Bundle,
  type RunOptions,
  type RunResult,
  type Spec,
  IS_ROOT,
  TINYC,
  makeBundle,
  rootless,
  run,
  runCommand,
  scratchDir,
} from "./harness";

/** The uid and gid that own what a test makes for a container run as `as`. */
export function ownerIds(as: As): { uid: number; gid: number } {
  if (as === "root") return { uid: 0, gid: 0 };
  const user = rootless()!;
  return { uid: user.uid, gid: user.gid };
}

function chownTo(file: string, as: As): void {
  if (!IS_ROOT) return;
  const { uid, gid } = ownerIds(as);
  fs.lchownSync(file, uid, gid);
}

/** Rewrites a bundle's config.json through `change`. */
export function editConfig(bundle: Bundle, change: (spec: Spec) => void): void {
  const file = path.join(bundle.dir, "config.json");
  const spec = JSON.parse(fs.readFileSync(file, "utf8")) as Spec;
  change(spec);
  fs.writeFileSync(file, JSON.stringify(spec, null, 2) + "\n");
}

/** Makes a folder (and its missing parents) under `base`, owned by the user of `as`. */
export function makeDirs(base: string, rel: string, as: As): string {
  let dir = base;
  for (const part of rel.split("/").filter(Boolean)) {
    dir = path.join(dir, part);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      fs.chmodSync(dir, 0o755);
      chownTo(dir, as);
    }
  }
  return dir;
}

/**
 * Writes a file into a bundle's rootfs (rel is its path inside the container), owned by the
 * user of `as`: for a rootless container that is its root, as for the rest of the rootfs.
 */
export function putFile(bundle: Bundle, as: As, rel: string, content: string, mode = 0o644) {
  const file = path.join(bundle.rootfs, rel);
  makeDirs(bundle.rootfs, path.dirname(rel), as);
  fs.writeFileSync(file, content);
  fs.chmodSync(file, mode);
  chownTo(file, as);
  return file;
}

/** Writes a host file (outside any bundle) that the user of `as` owns. */
export function hostFile(dir: string, name: string, as: As, content: string, mode = 0o644) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  fs.chmodSync(file, mode);
  chownTo(file, as);
  return file;
}

/**
 * Root runs containers without a user namespace unless a test asks for one: the base config's
 * user namespace has no mappings, and as root those must be given.
 */
export function withoutNamespace(spec: Spec, type: string): void {
  spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== type);
}

export interface BusyboxOptions {
  config?: (spec: Spec) => void;
}

/** A busybox bundle that runs `args` as `as`, made for one test. */
export async function busybox(as: As, args: string[], opts: BusyboxOptions = {}) {
  return makeBundle({
    rootfs: "busybox",
    owner: as,
    args,
    config: (spec) => {
      if (as === "root") withoutNamespace(spec, "user");
      opts.config?.(spec);
    },
  });
}

export interface RunBundleOptions extends Partial<RunOptions> {
  /** Flags put between "run" and the bundle path. */
  flags?: string[];
  /** Global flags put before "run". */
  globals?: string[];
}

/** `tinyc run` of a bundle as `as`. */
export function runBundle(as: As, bundle: Bundle, opts: RunBundleOptions = {}) {
  const args = [...(opts.globals ?? []), "run", ...(opts.flags ?? []), bundle.dir];
  return run(args, { timeoutMs: 20_000, ...opts, as });
}

/** Makes a busybox bundle, runs it once and removes it. */
export async function runOnce(
  as: As,
  args: string[],
  opts: BusyboxOptions & RunBundleOptions = {},
): Promise<RunResult> {
  const bundle = await busybox(as, args, opts);
  try {
    return await runBundle(as, bundle, opts);
  } finally {
    bundle.cleanup();
  }
}

/** Runs tinyc through sh, which sets its umask first: the caller's umask is then `mask`. */
export function runWithUmask(
  as: As,
  mask: string,
  tinycArgs: string[],
  opts: Partial<RunOptions> = {},
) {
  const cmd = ["sh", "-c", `umask ${mask} && exec "$@"`, "sh", TINYC, ...tinycArgs];
  return runCommand(cmd, { timeoutMs: 20_000, ...opts, as });
}

/** The lines of stderr, without the empty one after the last newline. */
export function stderrLines(r: RunResult): string[] {
  return r.stderr.split("\n").filter((l, i, all) => l !== "" || i < all.length - 1);
}

/**
 * The shape of every failure of tinyc itself: a non-zero status, and one line on stderr that
 * starts with "tinyc: " and carries each of `parts` (no stack trace, no second line). A bundle
 * or a setting that is wrong is the user's to fix, never an "internal error".
 */
export function expectTinycError(r: RunResult, status: number | "non-zero", ...parts: string[]) {
  const lines = stderrLines(r);
  const got = {
    status: status === "non-zero" ? r.code !== 0 && r.code !== null : r.code,
    lines: lines.length,
    prefix: lines[0]?.startsWith("tinyc: ") ?? false,
    internal: lines[0]?.startsWith("tinyc: internal error") ?? false,
    parts: parts.filter((p) => lines[0]?.includes(p)),
  };
  const want = {
    status: status === "non-zero" ? true : status,
    lines: 1,
    prefix: true,
    internal: false,
    parts,
  };
  expect(got, `stderr was ${JSON.stringify(r.stderr)}`).toEqual(want);
}

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export function sha256File(file: string): string {
  return sha256(fs.readFileSync(file));
}

/** Collects a stream as it comes, so a test can wait for a line before acting. */
export class OutputReader {
  text = "";
  private closed = false;
  private waiters: (() => void)[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          this.text += decoder.decode(value, { stream: true });
          this.wake();
        }
      } catch {
        // The process went away; what came before stays in text.
      }
      this.closed = true;
      this.wake();
    })();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** True once `want` has been seen; false when the stream ends or `ms` pass first. */
  async until(want: string, ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.text.includes(want)) {
      const left = deadline - Date.now();
      if (this.closed || left <= 0) return false;
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), Bun.sleep(left)]);
    }
    return true;
  }
}

/** The pid a --pid-file holds, once tinyc has written it; undefined after `ms`. */
export async function waitForPid(file: string, ms = 5000): Promise<number | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const pid = Number(fs.readFileSync(file, "utf8").trim());
      if (pid > 0) return pid;
    } catch {
      // Not written yet.
    }
    await Bun.sleep(20);
  }
  return undefined;
}

/** Sends a signal to a process this test started, if it still runs. */
export function killIfAlive(pid: number | undefined, signal: NodeJS.Signals = "SIGKILL"): void {
  if (!pid) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Ends what is left of a container a test started: the process of --pid-file if tinyc wrote
 * it, and any process that runs `args` in a pid namespace other than the test's. A tinyc that
 * dies early (of a signal it did not expect) leaves its container running without a parent.
 */
export async function endContainer(pidFile: string | undefined, args: string[]): Promise<void> {
  const want = args.join("\0") + "\0";
  const ourNs = fs.readlinkSync("/proc/self/ns/pid");
  const pids = new Set<number>();
  const fromFile = pidFile ? await waitForPid(pidFile, 300) : undefined;
  if (fromFile) pids.add(fromFile);
  for (const name of fs.readdirSync("/proc")) {
    if (/^\d+$/.test(name)) pids.add(Number(name));
  }
  for (const pid of pids) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") !== want) continue;
      if (fs.readlinkSync(`/proc/${pid}/ns/pid`) === ourNs) continue;
    } catch {
      continue;
    }
    killIfAlive(pid);
  }
}

/** Pids of processes whose real uid is the user's or one of its subordinate ids. */
export function processesOf(uid: number, subStart: number, subCount: number): Set<number> {
  const pids = new Set<number>();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${name}/status`, "utf8");
    } catch {
      continue;
    }
    const real = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    if (real === uid || (real >= subStart && real < subStart + subCount)) pids.add(Number(name));
  }
  return pids;
}

/** The mounts of the test process's own mount namespace, one line each. */
export function hostMounts(): string[] {
  return fs.readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n");
}

/** The first subordinate uid range of a user, from /etc/subuid. */
export function subuidRange(user: string, uid: number): { start: number; count: number } {
  for (const line of fs.readFileSync("/etc/subuid", "utf8").split("\n")) {
    const [who, start, count] = line.split(":");
    if (who === user || who === String(uid)) return { start: Number(start), count: Number(count) };
  }
  return { start: -1, count: 0 };
}

// Helpers for the runc verbs (create, start, state, kill, delete, exec, ...), which leave
// containers behind between commands: each test gets its own state folder (--root) and hands
// what it made to a Tidy, which removes it after the test whether it passed or not.

/** The OCI state as `tinyc state` prints it. */
export interface OciState {
  ociVersion: string;
  id: string;
  pid: number;
  status: string;
  bundle: string;
  [k: string]: unknown;
}

let idCount = 0;

/** One test's runtime state folder and the containers made in it. */
export class StateRoot {
  /** A folder of the user's for files the test hands to tinyc (pid files, logs, sockets). */
  readonly scratch: string;
  /** The --root folder; tinyc makes it on first use. */
  readonly dir: string;
  private readonly ids = new Set<string>();
  private outputs = 0;

  constructor(readonly as: As) {
    this.scratch = scratchDir(as, "state");
    this.dir = path.join(this.scratch, "root");
  }

  /** A container id that no other test, nor another run of this one, uses. */
  id(name = "c"): string {
    const id = `${name}-${process.pid}-${++idCount}-${randomBytes(3).toString("hex")}`;
    this.ids.add(id);
    return id;
  }

  /** tinyc with this --root, as the user of the root, run to its end. */
  tinyc(args: string[], opts: Partial<RunOptions> = {}): Promise<RunResult> {
    return run(["--root", this.dir, ...args], { timeoutMs: 20_000, ...opts, as: this.as });
  }

  /**
   * tinyc with its stdout and stderr in files rather than pipes. A container that create or
   * run --detach leaves behind inherits them, and would hold a pipe open past tinyc's exit;
   * `output` is the file where the container's stdout (and tinyc's) keeps arriving.
   */
  async detached(args: string[], globals: string[] = []): Promise<RunResult & { output: string }> {
    // run() copies the executable back in place when cleanup() of an earlier file took it.
    if (!fs.existsSync(TINYC)) await run(["--version"], { as: this.as });
    const base = path.join(this.scratch, `out-${++this.outputs}`);
    const cmd = ["sh", "-c", 'exec "$@" >"$0.out" 2>"$0.err"', base, TINYC];
    const r = await runCommand([...cmd, ...globals, "--root", this.dir, ...args], {
      timeoutMs: 20_000,
      as: this.as,
    });
    const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "");
    const output = `${base}.out`;
    return { ...r, stdout: read(output), stderr: read(`${base}.err`), output };
  }

  /** `create --bundle DIR ID`, with more flags before the id. */
  create(id: string, bundle: Bundle, flags: string[] = []) {
    return this.detached(["create", "--bundle", bundle.dir, ...flags, id]);
  }

  /** create then start; throws when either fails, since the test is about what follows. */
  async started(id: string, bundle: Bundle, flags: string[] = []) {
    const c = await this.create(id, bundle, flags);
    if (c.code !== 0) throw new Error(`create ${id}: ${c.stderr.trim()}`);
    const s = await this.tinyc(["start", id]);
    if (s.code !== 0) throw new Error(`start ${id}: ${s.stderr.trim()}`);
    return c;
  }

  /** The state of a container, or undefined when tinyc knows no such id. */
  async state(id: string): Promise<OciState | undefined> {
    const r = await this.tinyc(["state", id]);
    return r.code === 0 ? (JSON.parse(r.stdout) as OciState) : undefined;
  }

  /** Polls the state until its status is `status`; the last state seen, whatever it was. */
  async waitStatus(id: string, status: string, ms = 5000): Promise<OciState | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const st = await this.state(id);
      if (st?.status === status || Date.now() > deadline) return st;
      await Bun.sleep(50);
    }
  }

  /** What is in the state folder: one entry per container tinyc still keeps. */
  entries(): string[] {
    try {
      return fs.readdirSync(this.dir);
    } catch {
      return [];
    }
  }

  /** Deletes (with --force) every id this root handed out. */
  async cleanup(): Promise<void> {
    // A frozen process takes its SIGKILL only once thawed: resume first, whatever delete does.
    const end = async (id: string) => {
      await this.tinyc(["resume", id], { timeoutMs: 5000 });
      await this.tinyc(["delete", "--force", id], { timeoutMs: 15_000 });
    };
    await Promise.all([...this.ids].map(end));
  }
}

/** What a test made, removed after it by afterEach(() => tidy.run()), passed or failed. */
export class Tidy {
  private undo: (() => unknown)[] = [];

  /** A fresh state root for this test. */
  root(as: As): StateRoot {
    const r = new StateRoot(as);
    this.undo.push(() => r.cleanup());
    return r;
  }

  /** A bundle to remove once the test's containers are gone: hand it over before the root
   * whose containers use it, since undoing goes in reverse. */
  bundle<B extends Bundle>(b: B): B {
    this.undo.push(() => b.cleanup());
    return b;
  }

  /** Any other step: processes to end, folders to remove. */
  add(fn: () => unknown): void {
    this.undo.push(fn);
  }

  /** Undoes in reverse order: containers before the bundles they use. */
  async run(): Promise<void> {
    const undo = this.undo.reverse();
    this.undo = [];
    for (const fn of undo) {
      try {
        await fn();
      } catch (e) {
        console.warn(`cleanup: ${(e as Error).message}`);
      }
    }
  }
}

/** True while PID exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The one-letter state of PID from /proc/PID/stat (R, S, T, Z, ...), or undefined. */
export function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  } catch {
    return undefined;
  }
}

/** Polls `check` until it holds or `ms` pass; whether it held. */
export async function waitUntil(check: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > deadline) return false;
    await Bun.sleep(25);
  }
}

/** Pids whose command line contains `text`: what is left of a container or a hook. */
export function pidsWithArg(text: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, "utf8").includes(text)) pids.push(Number(name));
    } catch {
      // Gone while we looked.
    }
  }
  return pids.filter(isRunning);
}

/** A tmpfs at /tmp, for containers on the read-only base rootfs that need to write. */
export function withTmp(spec: Spec): void {
  spec.mounts.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["mode=1777"] });
}
