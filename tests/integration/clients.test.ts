// tinyc as the OCI runtime of real clients installed from Debian: rootless podman, containerd
// (driven with ctr) and dockerd. Each client gets its own folders, sockets and storage, and every
// daemon started here is ended by its pid. The scenarios give the client a plain copy of tinyc;
// the record tests put a logging wrapper of the same basename in front of it, because podman
// chooses its flags from the runtime's basename.
//
// A client that cannot start here is skipped with the reason; nothing reaches a registry: images
// are imported from the busybox fixture, and containerd runs a root filesystem folder directly.
import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Subprocess } from "bun";
import {
  FIXTURES,
  IS_ROOT,
  TINYC_DIST,
  type As,
  type RunResult,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  rootless,
  runCommand,
  scratchDir,
  tinycSkipReason,
} from "./harness";

const TIMEOUT = 30_000;
const PATH_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
// sh as pid 1 ignores the signals it has no handler for; the traps make them visible.
const TRAPS =
  "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; " +
  "while :; do sleep 0.1; done";

function which(name: string): string | null {
  for (const dir of PATH_DIRS) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // Not in this folder.
    }
  }
  return null;
}

function missing(...names: string[]): string | null {
  const absent = names.filter((n) => !which(n));
  return absent.length ? `not installed: ${absent.join(", ")} (run scripts/setup.sh)` : null;
}

const shq = (args: string[]) => args.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const matching = (re: string) => expect.stringMatching(new RegExp(`^${re}$`));

/** The command run under script(1), which gives it a terminal: `-t` clients insist on one. */
function inTerminal(cmd: string[]): string[] {
  return ["script", "-qec", shq(cmd), "/dev/null"];
}

/**
 * Text a terminal gave back, without its carriage returns, and without the "^@" that ctr's
 * console handling makes the terminal echo before the output (with runc as well).
 */
const plain = (s: string) => s.replace(/\r|\^@/g, "");

function ownedBy(file: string, as: As): void {
  if (!IS_ROOT || as === "root") return;
  const user = rootless()!;
  fs.chownSync(file, user.uid, user.gid);
}

function makeDir(dir: string, as: As, mode = 0o755): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, mode);
  ownedBy(dir, as);
  return dir;
}

/** A copy of dist/tinyc named `tinyc` in a folder of its own, which the user of `as` can run. */
function installTinyc(dir: string, as: As): string {
  const bin = makeDir(path.join(dir, "bin"), as);
  const file = path.join(bin, "tinyc");
  fs.copyFileSync(TINYC_DIST, file);
  fs.chmodSync(file, 0o755);
  return file;
}

interface Call {
  caller: string;
  args: string[];
}

interface Recorder {
  /** The wrapper: pass it to the client as its runtime. */
  runtime: string;
  calls: () => Call[];
  reset: () => void;
}

/**
 * A wrapper named `name` that appends the caller's command name and its argv to a log, then
 * execs tinyc with the same argv, environment and file descriptors.
 */
function recorder(dir: string, name: string, real: string, as: As): Recorder {
  const bin = makeDir(path.join(dir, `wrap-${name}`), as);
  const log = path.join(dir, `argv-${name}.log`);
  const runtime = path.join(bin, name);
  // One printf per call: each line reaches the log in a single write, whoever calls at once.
  const script = [
    "#!/bin/sh",
    'line="$(cat /proc/$PPID/comm 2>/dev/null)"',
    'for a in "$@"; do line="$line\t$a"; done',
    `printf '%s\\n' "$line" >>${shq([log])}`,
    `exec ${shq([real])} "$@"`,
    "",
  ].join("\n");
  fs.writeFileSync(runtime, script);
  fs.chmodSync(runtime, 0o755);
  const reset = () => {
    fs.writeFileSync(log, "");
    fs.chmodSync(log, 0o644);
    ownedBy(log, as);
  };
  reset();
  const calls = () =>
    fs
      .readFileSync(log, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [caller, ...args] = l.split("\t");
        return { caller, args };
      });
  return { runtime, calls, reset };
}

async function waitUntil(what: string, check: () => Promise<boolean> | boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits for a process this file started to end; SIGKILL after `ms`. */
async function endProcess(proc: Subprocess<any, any, any>, ms = 15_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const ended = await Promise.race([proc.exited.then(() => true), Bun.sleep(ms).then(() => false)]);
  if (!ended) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/** Kills a pid read from a file our daemon wrote, if it still runs the program we expect. */
function killRecorded(pid: number, marker: string): void {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (cmdline.includes(marker)) process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Whether a pid runs; a zombie does not (this machine's pid 1 may be slow to reap). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function readPid(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

// Host folders that the daemons make at fixed places whatever their flags say (dockerd's plugin
// folder and trust key, the runc shim's socket folder). The ones absent before are removed again
// once they are empty, or, for the key, once our dockerd is gone.
const HOST_LEFTOVERS = [
  "/run/containerd/s",
  "/run/containerd",
  "/run/docker/plugins",
  "/run/docker",
];
const KEY_JSON = "/etc/docker/key.json";
const absentBefore = new Set([...HOST_LEFTOVERS, KEY_JSON].filter((p) => !fs.existsSync(p)));

function removeHostLeftovers(): void {
  if (!IS_ROOT) return;
  if (absentBefore.has(KEY_JSON)) fs.rmSync(KEY_JSON, { force: true });
  for (const dir of HOST_LEFTOVERS) {
    if (!absentBefore.has(dir)) continue;
    try {
      fs.rmdirSync(dir);
    } catch {
      // Not empty or not there: then it is not ours to remove.
    }
  }
}

/** The cgroup folders named `name` in every hierarchy, for the parents our daemons ask for. */
function cgroupDirs(name: string): string[] {
  const base = "/sys/fs/cgroup";
  const roots = [base, ...fs.readdirSync(base).map((d) => path.join(base, d))];
  return roots.map((r) => path.join(r, name)).filter((d) => fs.existsSync(d));
}

function removeCgroupParent(name: string): void {
  for (const dir of cgroupDirs(name)) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // A child is left: the test that checks for leftovers reports it.
    }
  }
}

const endings: (() => Promise<void> | void)[] = [];
const lastResorts: (() => void)[] = [];

afterAll(async () => {
  for (const end of endings.reverse()) {
    try {
      await end();
    } catch (e) {
      console.warn(`clients: cleanup step failed: ${e}`);
    }
  }
  removeHostLeftovers();
  cleanup();
});
// If the run is cut short, daemons must not outlive it; kill() is all exit handlers can do.
process.on("exit", () => {
  for (const kill of lastResorts) kill();
});

function warnSkip(what: string, reason: string | null): void {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

// ---------------------------------------------------------------------------------------------
// podman, rootless
// ---------------------------------------------------------------------------------------------

const IMAGE = "localhost/tinyc-busybox:latest";

interface Podman {
  dir: string;
  storage: string;
  runroot: string;
  xdg: string;
  tinyc: string;
  env: Record<string, string>;
}

function podmanGlobal(pm: Podman, runtime: string): string[] {
  // vfs: neither fuse nor kernel overlay; cgroupfs and file events: no systemd user manager.
  return [
    ...["--root", pm.storage, "--runroot", pm.runroot, "--storage-driver", "vfs"],
    ...["--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtime],
  ];
}

async function startPodman(): Promise<Podman | string> {
  const dir = scratchDir("rootless", "podman");
  const home = makeDir(path.join(dir, "home"), "rootless");
  const pm: Podman = {
    dir,
    storage: makeDir(path.join(dir, "storage"), "rootless"),
    // podman refuses a runroot path longer than 50 characters: a short folder of its own.
    runroot: makeDir(fs.mkdtempSync("/tmp/tcpr-"), "rootless"),
    // Its own XDG_RUNTIME_DIR, so that what tinyc leaves in it is this file's alone.
    xdg: makeDir(path.join(dir, "xdg"), "rootless", 0o700),
    tinyc: installTinyc(dir, "rootless"),
    env: {},
  };
  const conf = path.join(dir, "containers.conf");
  fs.writeFileSync(conf, '[containers]\nlog_driver = "k8s-file"\n');
  // No search registries: a short name can never turn into a pull.
  const registries = path.join(dir, "registries.conf");
  fs.writeFileSync(registries, "unqualified-search-registries = []\n");
  pm.env = {
    HOME: home,
    XDG_RUNTIME_DIR: pm.xdg,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local/share"),
    CONTAINERS_CONF: conf,
    CONTAINERS_REGISTRIES_CONF: registries,
  };
  endings.push(() => stopPodman(pm));
  lastResorts.push(() => {
    const pid = readPid(path.join(pm.xdg, "libpod/tmp/pause.pid"));
    if (pid) killRecorded(pid, "podman");
  });

  const tar = path.join(dir, "busybox.tar");
  const made = await runCommand(["tar", "-C", path.join(FIXTURES, "busybox"), "-cf", tar, "."], {
    as: IS_ROOT ? "root" : "rootless",
  });
  if (made.code !== 0) return `tar of the busybox fixture failed: ${made.stderr.trim()}`;
  fs.chmodSync(tar, 0o644);
  const imported = await podmanAs(pm, pm.tinyc, ["import", "--quiet", tar, IMAGE]);
  if (imported.code !== 0) return `podman import fails here: ${imported.stderr.trim()}`;
  return pm;
}

function podmanAs(pm: Podman, runtime: string, args: string[], input?: string) {
  const cmd = [which("podman")!, ...podmanGlobal(pm, runtime), ...args];
  return runCommand(cmd, { as: "rootless", env: pm.env, input, timeoutMs: TIMEOUT });
}

async function stopPodman(pm: Podman): Promise<void> {
  await podmanAs(pm, pm.tinyc, ["rm", "--all", "--force", "--time", "0"]);
  // The pause process holds podman's user namespace between commands; it is ours to end.
  const pid = readPid(path.join(pm.xdg, "libpod/tmp/pause.pid"));
  if (pid) {
    killRecorded(pid, "podman");
    await waitUntil("podman's pause process to end", () => !running(pid), 5000);
  }
  // Files of the user's subordinate ids may be in it: removed as root, or in a user namespace.
  Bun.spawnSync(
    IS_ROOT
      ? ["rm", "-rf", "--one-file-system", pm.runroot]
      : ["unshare", "--map-root-user", "--map-auto", "rm", "-rf", "--one-file-system", pm.runroot],
    { stderr: "pipe" },
  );
}

const podmanReason =
  tinycSkipReason() ??
  fixtureSkipReason("busybox") ??
  missing("podman", "conmon", "newuidmap", "newgidmap", "script") ??
  requireUserns();
const pm: Podman | null = podmanReason
  ? null
  : await startPodman().then((r) => {
      if (typeof r === "string") {
        warnSkip("podman tests", r);
        return null;
      }
      return r;
    });
warnSkip("podman tests", podmanReason);
const noPodman = !pm;

describe.skipIf(noPodman)("podman (rootless) with tinyc as its runtime", () => {
  const podman = (args: string[], input?: string) => podmanAs(pm!, pm!.tinyc, args, input);
  // slirp4netns, podman's rootless default, needs /dev/net/tun; no test needs a network.
  const RUN = ["run", "--pull=never", "--network", "none"];
  let names = 0;
  const name = () => `tinyc-it-${++names}`;

  /** A detached container running TRAPS, once it has said it is ready. */
  async function trapping(): Promise<string> {
    const n = name();
    const r = await podman([...RUN, "-d", "--name", n, IMAGE, "sh", "-c", TRAPS]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    await waitUntil(`${n} to be ready`, async () =>
      (await podman(["logs", n])).stdout.includes("ready"),
    );
    return n;
  }

  test(
    "run --rm prints what the container prints and removes it",
    async () => {
      const n = name();
      const r = await podman([...RUN, "--rm", "--name", n, IMAGE, "echo", "hi"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("hi\n");
      expect(r.code).toBe(0);
      expect((await podman(["container", "exists", n])).code).toBe(1);
    },
    TIMEOUT,
  );

  test(
    "the container's exit code is podman's",
    async () => {
      const r = await podman([...RUN, "--rm", IMAGE, "sh", "-c", "exit 42"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(42);
    },
    TIMEOUT,
  );

  test(
    "a command that is not in the image exits 127, and the message names it",
    async () => {
      const r = await podman([...RUN, "--rm", IMAGE, "no-such-command"]);
      expect(r.code).toBe(127);
      expect(r.stderr).toContain("no-such-command");
    },
    TIMEOUT,
  );

  test(
    "-i passes stdin through to the container",
    async () => {
      const input = "first line\nsecond line\n";
      const r = await podman([...RUN, "--rm", "-i", IMAGE, "cat"], input);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe(input);
      expect(r.code).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "-e sets environment variables",
    async () => {
      const env = ["-e", "FOO=bar", "-e", "SPACED=a b  c"];
      const r = await podman([...RUN, "--rm", ...env, IMAGE, "sh", "-c", 'echo "$FOO|$SPACED"']);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("bar|a b  c\n");
    },
    TIMEOUT,
  );

  test(
    "-w sets the working directory",
    async () => {
      const r = await podman([...RUN, "--rm", "-w", "/etc", IMAGE, "/bin/report", "cwd"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("/etc\n");
    },
    TIMEOUT,
  );

  test(
    "-v binds a host folder that the container can read and write",
    async () => {
      const host = makeDir(path.join(pm!.dir, "bind-rw"), "rootless");
      fs.writeFileSync(path.join(host, "from-host"), "host data\n");
      ownedBy(path.join(host, "from-host"), "rootless");
      const script = "cat /mnt/from-host && echo container data > /mnt/from-container";
      const r = await podman([...RUN, "--rm", "-v", `${host}:/mnt`, IMAGE, "sh", "-c", script]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("host data\n");
      expect(r.code).toBe(0);
      const written = path.join(host, "from-container");
      expect(fs.readFileSync(written, "utf8")).toBe("container data\n");
      // Container root is the user outside: what it writes is the user's.
      expect(fs.statSync(written).uid).toBe(rootless()!.uid);
    },
    TIMEOUT,
  );

  test(
    "-v with :ro binds it read-only",
    async () => {
      const host = makeDir(path.join(pm!.dir, "bind-ro"), "rootless");
      fs.writeFileSync(path.join(host, "from-host"), "host data\n");
      const script = "cat /mnt/from-host; echo x > /mnt/from-container";
      const r = await podman([...RUN, "--rm", "-v", `${host}:/mnt:ro`, IMAGE, "sh", "-c", script]);
      expect(r.stdout).toBe("host data\n");
      expect(r.stderr).toContain("Read-only file system");
      expect(r.code).toBe(1);
      expect(fs.existsSync(path.join(host, "from-container"))).toBe(false);
    },
    TIMEOUT,
  );

  test(
    "--read-only makes the root read-only and leaves /tmp and /run writable",
    async () => {
      const script =
        "echo x > /written 2>/dev/null && echo root-written; " +
        "echo x > /tmp/f && echo x > /run/f && echo x > /var/tmp/f && echo tmpfs-written";
      const r = await podman([...RUN, "--rm", "--read-only", IMAGE, "sh", "-c", script]);
      expect(r.stderr).toContain("Read-only file system");
      expect(r.stdout).toBe("tmpfs-written\n");
    },
    TIMEOUT,
  );

  test(
    "-u 1000 runs the process as uid 1000 with the image's group for it",
    async () => {
      const r = await podman([...RUN, "--rm", "-u", "1000", IMAGE, "/bin/report", "ids"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toStartWith("uid=1000 euid=1000 gid=1000 egid=1000 groups=");
      // /etc/group lists user 1000 in wheel (10); podman passes that as an additional gid.
      expect(r.stdout.trim().split("groups=")[1].split(",").sort()).toEqual(["10", "1000"]);
    },
    TIMEOUT,
  );

  test(
    "-d runs in the background; logs shows its output; stop ends it with SIGTERM; rm removes it",
    async () => {
      const n = await trapping();
      const format = ["--format", "{{.Names}} {{.Status}}"];
      const ps = await podman(["ps", ...format, "--filter", `name=${n}`]);
      expect(ps.stdout).toStartWith(`${n} Up`);
      const stop = await podman(["stop", "--time", "10", n]);
      expect(stop.stderr).toBe("");
      expect(stop.code).toBe(0);
      expect((await podman(["logs", n])).stdout).toBe("ready\ngot TERM\n");
      const code = await podman(["inspect", "--format", "{{.State.ExitCode}}", n]);
      expect(code.stdout.trim()).toBe("3");
      expect((await podman(["rm", n])).code).toBe(0);
      expect((await podman(["container", "exists", n])).code).toBe(1);
    },
    TIMEOUT,
  );

  test(
    "exec runs a process in the running container and returns its exit code",
    async () => {
      const n = name();
      expect((await podman([...RUN, "-d", "--name", n, IMAGE, "sleep", "100"])).code).toBe(0);
      try {
        const script = "echo in-exec; cat /proc/1/cmdline; exit 5";
        const r = await podman(["exec", n, "sh", "-c", script]);
        expect(r.stderr).toBe("");
        // pid 1 is the container's sleep: the exec joined its pid namespace.
        expect(r.stdout).toBe("in-exec\nsleep\x00100\x00");
        expect(r.code).toBe(5);
        const piped = await podman(["exec", "-i", n, "cat"], "to exec\n");
        expect(piped.stdout).toBe("to exec\n");
        expect(piped.code).toBe(0);
      } finally {
        await podman(["rm", "--force", "--time", "0", n]);
      }
    },
    TIMEOUT,
  );

  test(
    "kill delivers the signal asked for, and SIGKILL by default",
    async () => {
      const n = await trapping();
      try {
        expect((await podman(["kill", "--signal", "USR1", n])).code).toBe(0);
        await waitUntil("the USR1 trap", async () =>
          (await podman(["logs", n])).stdout.includes("got USR1"),
        );
        expect((await podman(["kill", n])).code).toBe(0);
        const wait = await podman(["wait", n]);
        expect(wait.stdout.trim()).toBe("137");
      } finally {
        await podman(["rm", "--force", "--time", "0", n]);
      }
    },
    TIMEOUT,
  );

  test(
    "-t gives the container a terminal on stdin and stdout",
    async () => {
      const script = "[ -t 0 ] && [ -t 1 ] && echo both-terminals";
      const cmd = [which("podman")!, ...podmanGlobal(pm!, pm!.tinyc), ...RUN, "--rm", "-t"];
      const r = await runCommand(inTerminal([...cmd, IMAGE, "sh", "-c", script]), {
        as: "rootless",
        env: pm!.env,
        timeoutMs: TIMEOUT,
      });
      expect(plain(r.stdout)).toBe("both-terminals\n");
      expect(r.code).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "-t: tty(1) names the terminal under the container's /dev/pts, as with runc",
    async () => {
      const cmd = [which("podman")!, ...podmanGlobal(pm!, pm!.tinyc), ...RUN, "--rm", "-t"];
      const r = await runCommand(inTerminal([...cmd, IMAGE, "tty"]), {
        as: "rootless",
        env: pm!.env,
        timeoutMs: TIMEOUT,
      });
      expect(plain(r.stdout)).toMatch(/^\/dev\/pts\/\d+\n$/);
      expect(r.code).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "exec -t: tty(1) names the exec's terminal under the container's /dev/pts",
    async () => {
      const n = name();
      expect((await podman([...RUN, "-d", "--name", n, IMAGE, "sleep", "100"])).code).toBe(0);
      try {
        const cmd = [which("podman")!, ...podmanGlobal(pm!, pm!.tinyc), "exec", "-t", n, "tty"];
        const r = await runCommand(inTerminal(cmd), {
          as: "rootless",
          env: pm!.env,
          timeoutMs: TIMEOUT,
        });
        expect(plain(r.stdout)).toMatch(/^\/dev\/pts\/\d+\n$/);
        expect(r.code).toBe(0);
      } finally {
        await podman(["rm", "--force", "--time", "0", n]);
      }
    },
    TIMEOUT,
  );

  test(
    "afterwards: no container, and no tinyc state in XDG_RUNTIME_DIR/tinyc",
    async () => {
      const ps = await podman(["ps", "--all", "--quiet"]);
      expect(ps.stdout).toBe("");
      // Rootless podman passes no --root: tinyc's state is $XDG_RUNTIME_DIR/tinyc.
      const state = path.join(pm!.xdg, "tinyc");
      const left = fs.existsSync(state) ? fs.readdirSync(state) : [];
      expect(left).toEqual([]);
    },
    TIMEOUT,
  );
});

describe.skipIf(noPodman)("podman: the command lines it sends to the runtime", () => {
  const RUN = ["run", "--pull=never", "--network", "none"];

  /**
   * One of each: run --rm; -d with exec, exec -t, kill, stop and rm; run --rm -t. Returns the
   * ids of the three containers, in that order, from the create calls that the wrapper saw.
   */
  async function everyday(rec: Recorder, prefix: string): Promise<Record<string, string>> {
    const podman = (args: string[]) => podmanAs(pm!, rec.runtime, args);
    const opts = { as: "rootless" as const, env: pm!.env, timeoutMs: TIMEOUT };
    const global = [which("podman")!, ...podmanGlobal(pm!, rec.runtime)];

    expect((await podman([...RUN, "--rm", IMAGE, "true"])).code).toBe(0);

    const d = `${prefix}-d`;
    expect((await podman([...RUN, "-d", "--name", d, IMAGE, "sh", "-c", TRAPS])).code).toBe(0);
    await waitUntil(`${d} to be ready`, async () =>
      (await podman(["logs", d])).stdout.includes("ready"),
    );
    expect((await podman(["exec", d, "true"])).code).toBe(0);
    expect((await runCommand(inTerminal([...global, "exec", "-t", d, "true"]), opts)).code).toBe(0);
    expect((await podman(["kill", "--signal", "USR1", d])).code).toBe(0);
    await waitUntil("the USR1 trap", async () =>
      (await podman(["logs", d])).stdout.includes("got USR1"),
    );
    expect((await podman(["stop", "--time", "10", d])).code).toBe(0);
    expect((await podman(["rm", d])).code).toBe(0);

    const tty = [...global, ...RUN, "--rm", "-t", IMAGE, "true"];
    expect((await runCommand(inTerminal(tty), opts)).code).toBe(0);

    const created = rec.calls().filter((c) => c.args.includes("create"));
    const [rm, dd, t] = created.map((c) => c.args.at(-1)!);
    for (const id of [rm, dd, t]) expect(id).toMatch(/^[0-9a-f]{64}$/);
    return { rm, d: dd, t };
  }

  function expected(ids: Record<string, string>, logs: boolean): Call[] {
    const userdata = (id: string) => `${pm!.storage}/vfs-containers/${id}/userdata`;
    const rundata = (id: string) => `${pm!.runroot}/vfs-containers/${id}/userdata`;
    const execDir = (id: string) => `${esc(userdata(id))}/[0-9a-f]{64}`;
    // Only a runtime podman knows to write JSON errors gets --log (conmon reads it back).
    const createLog = (id: string) =>
      logs ? ["--log-format=json", "--log", `${rundata(id)}/oci-log`] : [];
    const execLog = (id: string) =>
      logs ? ["--log-format=json", "--log", matching(`${execDir(id)}/oci-log`)] : [];
    const create = (id: string, ...extra: any[]): Call => ({
      caller: "conmon",
      args: [
        ...createLog(id),
        ...["create", "--bundle", userdata(id), "--pid-file", `${rundata(id)}/pidfile`],
        ...extra,
        id,
      ],
    });
    const exec = (id: string, ...extra: any[]): Call => ({
      caller: "conmon",
      args: [
        ...execLog(id),
        ...["exec", "--pid-file", matching(`${execDir(id)}/exec_pid`)],
        ...["--process", matching(`${execDir(id)}/exec-process-\\d+`), "--detach"],
        ...extra,
        id,
      ],
    });
    const byPodman = (...args: string[]): Call => ({ caller: "podman", args });
    const consoleSocket = ["--console-socket", matching("/tmp/conmon-term\\.\\w+")];
    return [
      create(ids.rm),
      byPodman("start", ids.rm),
      byPodman("delete", "--force", ids.rm),
      create(ids.d),
      byPodman("start", ids.d),
      exec(ids.d),
      exec(ids.d, "--tty", ...consoleSocket),
      byPodman("kill", ids.d, "10"),
      byPodman("kill", ids.d, "15"),
      byPodman("delete", "--force", ids.d),
      create(ids.t, ...consoleSocket),
      byPodman("start", ids.t),
      byPodman("delete", "--force", ids.t),
    ];
  }

  test(
    "named tinyc: no global flags; create and exec from conmon, the rest from podman",
    async () => {
      const rec = recorder(pm!.dir, "tinyc", pm!.tinyc, "rootless");
      const ids = await everyday(rec, "rec-tinyc");
      expect(rec.calls()).toEqual(expected(ids, false));
    },
    TIMEOUT * 2,
  );

  test(
    "named crun: --log-format=json --log FILE before create and exec, and nowhere else",
    async () => {
      const rec = recorder(pm!.dir, "crun", pm!.tinyc, "rootless");
      const ids = await everyday(rec, "rec-crun");
      expect(rec.calls()).toEqual(expected(ids, true));
    },
    TIMEOUT * 2,
  );

  test(
    "named crun: a command that is not found is read back from tinyc's JSON log as 127",
    async () => {
      const rec = recorder(pm!.dir, "crun", pm!.tinyc, "rootless");
      const r = await podmanAs(pm!, rec.runtime, [...RUN, "--rm", IMAGE, "no-such-command"]);
      expect(r.code).toBe(127);
      expect(r.stderr).toContain("no-such-command");
      const create = rec.calls()[0].args;
      expect(create.slice(0, 2)).toEqual(["--log-format=json", "--log"]);
    },
    TIMEOUT,
  );
});

// ---------------------------------------------------------------------------------------------
// containerd, as root, driven with ctr
// ---------------------------------------------------------------------------------------------

interface Containerd {
  dir: string;
  sock: string;
  state: string;
  proc: Subprocess<any, any, any>;
}

/** A containerd with everything under `dir`: root, state, sockets, opt; no CRI plugin. */
async function startContainerd(dir: string): Promise<Containerd | string> {
  const sock = path.join(dir, "containerd.sock");
  const state = path.join(dir, "state");
  const config = path.join(dir, "containerd.toml");
  fs.writeFileSync(
    config,
    [
      "version = 2",
      `root = ${JSON.stringify(path.join(dir, "root"))}`,
      `state = ${JSON.stringify(state)}`,
      // CRI would start a streaming server and look for CNI; nothing here needs it.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = ${JSON.stringify(sock)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(sock + ".ttrpc")}`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(path.join(dir, "opt"))}`,
      "",
    ].join("\n"),
  );
  const log = path.join(dir, "containerd.log");
  const proc = Bun.spawn([which("containerd")!, "--config", config], {
    cwd: dir,
    stdin: "ignore",
    stdout: Bun.file(log),
    stderr: Bun.file(log),
  });
  lastResorts.push(() => proc.kill("SIGKILL"));
  const cd: Containerd = { dir, sock, state, proc };
  endings.push(() => stopContainerd(cd));
  try {
    await waitUntil("containerd to serve", async () => {
      if (proc.exitCode !== null) throw new Error("containerd exited");
      const r = await runCommand([which("ctr")!, "--address", sock, "version"], { as: "root" });
      return r.code === 0;
    });
  } catch (e) {
    const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-600) : "";
    return `containerd does not start here (${e}): ${tail}`;
  }
  return cd;
}

async function stopContainerd(cd: Containerd): Promise<void> {
  await endProcess(cd.proc);
  // Shims outlive containerd on purpose; any left (a test that failed midway) are ended by the
  // pid each one wrote into its bundle.
  const tasks = path.join(cd.state, "io.containerd.runtime.v2.task");
  if (!fs.existsSync(tasks)) return;
  for (const ns of fs.readdirSync(tasks)) {
    for (const id of fs.readdirSync(path.join(tasks, ns))) {
      const pid = readPid(path.join(tasks, ns, id, "shim.pid"));
      if (pid) killRecorded(pid, cd.sock);
    }
  }
}

const CTR_NS = `tinyc-it-${process.pid}`;

interface Ctr {
  cd: Containerd;
  tinyc: string;
  rootfs: string;
  runcRoot: string;
  fifos: string;
}

const ctrReason =
  tinycSkipReason() ??
  fixtureSkipReason("busybox") ??
  rootSkipReason() ??
  missing("containerd", "ctr", "containerd-shim-runc-v2", "script");
warnSkip("containerd tests", ctrReason);

async function setUpCtr(): Promise<Ctr | null> {
  const dir = scratchDir("root", "containerd");
  const cd = await startContainerd(dir);
  if (typeof cd === "string") {
    warnSkip("containerd tests", cd);
    return null;
  }
  const rootfs = path.join(dir, "rootfs");
  const copied = await runCommand(["cp", "-a", path.join(FIXTURES, "busybox"), rootfs], {
    as: "root",
  });
  if (copied.code !== 0) throw new Error(`copying the busybox fixture: ${copied.stderr}`);
  // ctr would put the runtime's state in /run/containerd/runc and its fifos in
  // /run/containerd/fifo; both flags keep them in this run's folder.
  const env: Ctr = {
    cd,
    tinyc: installTinyc(dir, "root"),
    rootfs,
    runcRoot: makeDir(path.join(dir, "runc-root"), "root"),
    fifos: makeDir(path.join(dir, "fifo"), "root"),
  };
  endings.push(async () => {
    await ctrRemoveAll(env);
    removeCgroupParent(CTR_NS);
  });
  return env;
}

const ctrEnv: Ctr | null = ctrReason ? null : await setUpCtr();
const noCtr = !ctrEnv;

function ctr(args: string[], opts: { terminal?: boolean } = {}): Promise<RunResult> {
  const cmd = [which("ctr")!, "--address", ctrEnv!.cd.sock, "--namespace", CTR_NS, ...args];
  return runCommand(opts.terminal ? inTerminal(cmd) : cmd, { as: "root", timeoutMs: TIMEOUT });
}

/**
 * `ctr run` of the busybox folder with tinyc (or `runtime`) as the runc binary. ctr puts
 * cpu.shares=1024 into every spec unless told 0; tinyc has its own test for that, so that the
 * other scenarios show what they test whatever the state of its cgroup support.
 */
function ctrRunArgs(id: string, flags: string[], cmd: string[], runtime?: string): string[] {
  return [
    "run",
    ...["--runc-binary", runtime ?? ctrEnv!.tinyc, "--runc-root", ctrEnv!.runcRoot],
    ...["--fifo-dir", ctrEnv!.fifos, "--cpu-shares", "0"],
    ...flags,
    ...["--rootfs", ctrEnv!.rootfs, id],
    ...cmd,
  ];
}

async function taskStatus(id: string): Promise<string | null> {
  const r = await ctr(["task", "ls"]);
  const line = r.stdout.split("\n").find((l) => l.split(/\s+/)[0] === id);
  return line ? line.split(/\s+/)[2] : null;
}

async function ctrRemove(id: string): Promise<void> {
  await ctr(["task", "kill", "--signal", "SIGKILL", id]);
  await waitUntil(`task ${id} to stop`, async () => (await taskStatus(id)) !== "RUNNING", 5000)
    .catch(() => {});
  await ctr(["task", "delete", id]);
  await ctr(["container", "delete", id]);
}

async function ctrRemoveAll(c: Ctr): Promise<void> {
  if (c.cd.proc.exitCode !== null) return;
  const ids = (await ctr(["container", "list", "--quiet"])).stdout.split("\n").filter(Boolean);
  for (const id of ids) await ctrRemove(id);
}

describe.skipIf(noCtr)("containerd (ctr) with tinyc as its runc binary", () => {
  let n = 0;
  const id = () => `c${++n}`;

  test(
    "run --rm: the container's output and exit code",
    async () => {
      const r = await ctr(ctrRunArgs(id(), ["--rm"], ["/bin/sh", "-c", "echo hi; exit 42"]));
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("hi\n");
      expect(r.code).toBe(42);
    },
    TIMEOUT,
  );

  test(
    "run with ctr's default resources (cpu.shares 1024, a device allow-list) runs",
    async () => {
      const c = id();
      const args = ctrRunArgs(c, ["--rm"], ["/bin/echo", "hi"]);
      // Without --cpu-shares 0: what every plain `ctr run` sends.
      args.splice(args.indexOf("--cpu-shares"), 2);
      const r = await ctr(args);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("hi\n");
      expect(r.code).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "--env sets environment variables",
    async () => {
      const env = ["--env", "FOO=bar", "--env", "SPACED=a b"];
      const cmd = ["/bin/sh", "-c", 'echo "$FOO|$SPACED"'];
      const r = await ctr(ctrRunArgs(id(), ["--rm", ...env], cmd));
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("bar|a b\n");
    },
    TIMEOUT,
  );

  test(
    "detach, task kill (SIGTERM), task delete and container delete",
    async () => {
      const c = id();
      const out = path.join(ctrEnv!.cd.dir, `${c}.out`);
      // The shim writes the output to a file: a detached ctr leaves nobody on the fifos.
      const flags = ["--detach", "--log-uri", `file://${out}`];
      const run = await ctr(ctrRunArgs(c, flags, ["/bin/sh", "-c", TRAPS]));
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      try {
        await waitUntil("the container to be ready", () =>
          fs.existsSync(out) ? fs.readFileSync(out, "utf8").includes("ready") : false,
        );
        expect(await taskStatus(c)).toBe("RUNNING");
        expect((await ctr(["task", "kill", c])).code).toBe(0);
        await waitUntil("the task to stop", async () => (await taskStatus(c)) === "STOPPED");
        expect(fs.readFileSync(out, "utf8")).toBe("ready\ngot TERM\n");
        const del = await ctr(["task", "delete", c]);
        expect(del.code).toBe(0);
        expect(del.stderr).toContain("exit code 3");
        expect((await ctr(["container", "delete", c])).code).toBe(0);
        expect((await ctr(["container", "list", "--quiet"])).stdout).not.toContain(c);
      } finally {
        await ctrRemove(c);
      }
    },
    TIMEOUT,
  );

  test(
    "task exec runs in the container and returns its exit code; task ps lists both",
    async () => {
      const c = id();
      const run = await ctr(ctrRunArgs(c, ["--detach"], ["/bin/sleep", "100"]));
      expect(run.code).toBe(0);
      try {
        const script = "echo in-exec; cat /proc/1/cmdline; exit 3";
        const exec = ["task", "exec", "--exec-id", "e1", "--fifo-dir", ctrEnv!.fifos];
        const r = await ctr([...exec, c, "/bin/sh", "-c", script]);
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe("in-exec\n/bin/sleep\x00100\x00");
        expect(r.code).toBe(3);
        const ps = await ctr(["task", "ps", c]);
        expect(ps.code).toBe(0);
        // A header, then the init's pid.
        const lines = ps.stdout.trim().split("\n");
        expect(lines[0]).toMatch(/^PID\s+INFO$/);
        expect(lines.length).toBe(2);
      } finally {
        await ctrRemove(c);
      }
    },
    TIMEOUT,
  );

  test(
    "nothing containerd's shim holds open (its ttrpc socket is fd 3) reaches the container",
    async () => {
      const r = await ctr(ctrRunArgs(id(), ["--rm"], ["/bin/report", "fds"]));
      expect(r.stderr).toBe("");
      const fds = r.stdout.trim().split("\n").map((l) => Number(l.split(" ")[0]));
      expect(fds).toEqual([0, 1, 2]);
    },
    TIMEOUT,
  );

  test(
    "-t gives the container a terminal on stdin and stdout",
    async () => {
      const script = "[ -t 0 ] && [ -t 1 ] && echo both-terminals";
      const r = await ctr(ctrRunArgs(id(), ["--rm", "-t"], ["/bin/sh", "-c", script]), {
        terminal: true,
      });
      expect(plain(r.stdout)).toBe("both-terminals\n");
      expect(r.code).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "-t: tty(1) names the terminal under the container's /dev/pts, as with runc",
    async () => {
      const r = await ctr(ctrRunArgs(id(), ["--rm", "-t"], ["/bin/tty"]), { terminal: true });
      // Only the first line: ctr may add a complaint about resizing a process that has ended.
      expect(plain(r.stdout).split("\n")[0]).toMatch(/^\/dev\/pts\/\d+$/);
      expect(r.code).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "task exec -t: tty(1) names the exec's terminal under the container's /dev/pts",
    async () => {
      const c = id();
      expect((await ctr(ctrRunArgs(c, ["--detach"], ["/bin/sleep", "100"]))).code).toBe(0);
      try {
        const exec = ["task", "exec", "-t", "--exec-id", "t1", "--fifo-dir", ctrEnv!.fifos];
        const r = await ctr([...exec, c, "/bin/tty"], { terminal: true });
        // Only the first line: ctr may add a complaint about resizing a process that has ended.
        expect(plain(r.stdout).split("\n")[0]).toMatch(/^\/dev\/pts\/\d+$/);
        expect(r.code).toBe(0);
      } finally {
        await ctrRemove(c);
      }
    },
    TIMEOUT,
  );

  test(
    "afterwards: no container, no runtime state and no container cgroup left",
    async () => {
      expect((await ctr(["container", "list", "--quiet"])).stdout).toBe("");
      const state = path.join(ctrEnv!.runcRoot, CTR_NS);
      expect(fs.existsSync(state) ? fs.readdirSync(state) : []).toEqual([]);
      // containerd asks for cgroup /<namespace>/<id>; delete must remove each <id>.
      const children = cgroupDirs(CTR_NS).flatMap((d) =>
        fs
          .readdirSync(d, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => path.join(d, e.name)),
      );
      expect(children).toEqual([]);
    },
    TIMEOUT,
  );
});

describe.skipIf(noCtr)("containerd: the command lines its shim sends to the runtime", () => {
  test(
    "--root, --log and --log-format json on every call; delete, then delete --force",
    async () => {
      const rec = recorder(ctrEnv!.cd.dir, "tinyc", ctrEnv!.tinyc, "root");
      const run = (id: string, flags: string[], cmd: string[], terminal = false) =>
        ctr(ctrRunArgs(id, flags, cmd, rec.runtime), { terminal });

      expect((await run("rec-rm", ["--rm"], ["/bin/true"])).code).toBe(0);

      const out = path.join(ctrEnv!.cd.dir, "rec-d.out");
      const detach = ["--detach", "--log-uri", `file://${out}`];
      expect((await run("rec-d", detach, ["/bin/sh", "-c", TRAPS])).code).toBe(0);
      // SIGTERM must find the trap in place, or pid 1 ignores it.
      await waitUntil("rec-d to be ready", () =>
        fs.existsSync(out) ? fs.readFileSync(out, "utf8").includes("ready") : false,
      );
      const exec = ["task", "exec", "--fifo-dir", ctrEnv!.fifos];
      expect((await ctr([...exec, "--exec-id", "e1", "rec-d", "/bin/true"])).code).toBe(0);
      const execTty = [...exec, "-t", "--exec-id", "e2", "rec-d", "/bin/true"];
      expect((await ctr(execTty, { terminal: true })).code).toBe(0);
      expect((await ctr(["task", "ps", "rec-d"])).code).toBe(0);
      expect((await ctr(["task", "kill", "rec-d"])).code).toBe(0);
      await waitUntil("rec-d to stop", async () => (await taskStatus("rec-d")) === "STOPPED");
      expect((await ctr(["task", "delete", "rec-d"])).code).toBe(0);
      expect((await ctr(["container", "delete", "rec-d"])).code).toBe(0);

      expect((await run("rec-t", ["--rm", "-t"], ["/bin/true"], true)).code).toBe(0);

      const T = `${ctrEnv!.cd.state}/io.containerd.runtime.v2.task/${CTR_NS}`;
      const global = (id: string) => [
        ...["--root", `${ctrEnv!.runcRoot}/${CTR_NS}`, "--log", `${T}/${id}/log.json`],
        ...["--log-format", "json"],
      ];
      const shim = (id: string, ...args: any[]): Call => ({
        caller: "containerd-shim",
        args: [...global(id), ...args],
      });
      const create = (id: string, ...extra: any[]) =>
        shim(
          id,
          ...["create", "--bundle", `${T}/${id}`, "--pid-file", `${T}/${id}/init.pid`],
          ...extra,
          id,
        );
      const processFile = matching("/tmp/runc-process\\d+");
      const consoleSocket = ["--console-socket", matching("/tmp/pty\\d+/pty\\.sock")];
      const pidFile = (id: string, exec: string) => ["--pid-file", `${T}/${id}/${exec}.pid`];
      // The last delete --force comes from `containerd-shim-runc-v2 delete`, a second shim
      // process that cleans up after the container is already gone; it must succeed too.
      const deletes = (id: string) => [shim(id, "delete", id), shim(id, "delete", "--force", id)];
      const want: Call[] = [
        create("rec-rm"),
        shim("rec-rm", "start", "rec-rm"),
        ...deletes("rec-rm"),
        create("rec-d"),
        shim("rec-d", "start", "rec-d"),
        shim(
          "rec-d",
          ...["exec", "--process", processFile, "--detach"],
          ...pidFile("rec-d", "e1"),
          "rec-d",
        ),
        shim(
          "rec-d",
          ...["exec", "--process", processFile, ...consoleSocket, "--detach"],
          ...pidFile("rec-d", "e2"),
          "rec-d",
        ),
        shim("rec-d", "ps", "--format", "json", "rec-d"),
        shim("rec-d", "kill", "rec-d", "15"),
        ...deletes("rec-d"),
        create("rec-t", ...consoleSocket),
        shim("rec-t", "start", "rec-t"),
        ...deletes("rec-t"),
      ];
      // The cleanup shim may log its call just after ctr returns.
      await waitUntil("the last call", () => rec.calls().length >= want.length, 5000).catch(
        () => {},
      );
      expect(rec.calls()).toEqual(want);
    },
    TIMEOUT * 2,
  );
});

// ---------------------------------------------------------------------------------------------
// dockerd, as root, with tinyc added as a runtime
// ---------------------------------------------------------------------------------------------

interface Docker {
  dir: string;
  cd: Containerd;
  sock: string;
  exec: string;
  tinyc: string;
  rec: Recorder;
  env: Record<string, string>;
}

const DOCKER_CGROUP = `tinyc-it-docker-${process.pid}`;

const dockerReason =
  tinycSkipReason() ??
  fixtureSkipReason("busybox") ??
  rootSkipReason() ??
  missing("dockerd", "docker", "containerd", "containerd-shim-runc-v2", "runc");
warnSkip("dockerd tests", dockerReason);

async function startDockerd(): Promise<Docker | string> {
  const dir = scratchDir("root", "dockerd");
  // Its own containerd: the one dockerd would start puts its opt folder in /opt/containerd.
  const cd = await startContainerd(makeDir(path.join(dir, "containerd"), "root"));
  if (typeof cd === "string") return cd;
  const tinyc = installTinyc(dir, "root");
  const rec = recorder(dir, "tinyc", tinyc, "root");
  const sock = path.join(dir, "docker.sock");
  const exec = makeDir(path.join(dir, "exec"), "root");
  const config = path.join(dir, "daemon.json");
  fs.writeFileSync(config, "{}\n");
  const log = path.join(dir, "dockerd.log");
  const proc = Bun.spawn(
    [
      which("dockerd")!,
      ...["--config-file", config, "--containerd", cd.sock, "--pidfile", path.join(dir, "pid")],
      ...["--data-root", path.join(dir, "data"), "--exec-root", exec, "-H", `unix://${sock}`],
      // No bridge and no iptables: the containers use --network none.
      ...["--bridge=none", "--iptables=false", "--ip-masq=false", "--storage-driver", "vfs"],
      ...["--cgroup-parent", `/${DOCKER_CGROUP}`],
      // Two names for one binary: the wrapper records the command lines, the copy runs the rest.
      ...["--add-runtime", `tinyc=${tinyc}`, "--add-runtime", `tinyc-rec=${rec.runtime}`],
    ],
    { cwd: dir, stdin: "ignore", stdout: Bun.file(log), stderr: Bun.file(log) },
  );
  lastResorts.push(() => proc.kill("SIGKILL"));
  const dk: Docker = {
    dir,
    cd,
    sock,
    exec,
    tinyc,
    rec,
    env: { DOCKER_CONFIG: makeDir(path.join(dir, "cli"), "root") },
  };
  endings.push(async () => {
    const ids = (await docker(dk, ["ps", "--all", "--quiet"])).stdout.split("\n").filter(Boolean);
    if (ids.length) await docker(dk, ["rm", "--force", ...ids]);
    await endProcess(proc);
    removeCgroupParent(DOCKER_CGROUP);
  });
  const failed = (what: string) => {
    const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-800) : "";
    return `${what}: ${tail}`;
  };
  try {
    await waitUntil("dockerd to serve", async () => {
      if (proc.exitCode !== null) throw new Error(`dockerd exited with ${proc.exitCode}`);
      return (await docker(dk, ["version"])).code === 0;
    }, 20_000);
  } catch (e) {
    return failed(`dockerd does not start here (${e})`);
  }
  const tar = path.join(dir, "busybox.tar");
  const made = await runCommand(["tar", "-C", path.join(FIXTURES, "busybox"), "-cf", tar, "."], {
    as: "root",
  });
  if (made.code !== 0) return `tar of the busybox fixture failed: ${made.stderr.trim()}`;
  const imported = await docker(dk, ["import", tar, IMAGE]);
  if (imported.code !== 0) return failed(`docker import fails: ${imported.stderr.trim()}`);
  // With runc, so that a failure below is tinyc's and not this machine's.
  const control = await docker(dk, ["run", "--rm", "--network", "none", IMAGE, "true"]);
  if (control.code !== 0) return `dockerd cannot run a container even with runc: ${control.stderr}`;
  return dk;
}

function docker(dk: Docker, args: string[]): Promise<RunResult> {
  // Always our own socket, never the default one.
  const cmd = [which("docker")!, "-H", `unix://${dk.sock}`, ...args];
  return runCommand(cmd, { as: "root", env: dk.env, timeoutMs: TIMEOUT });
}

const dk: Docker | null = dockerReason
  ? null
  : await startDockerd().then((r) => {
      if (typeof r === "string") {
        warnSkip("dockerd tests", r);
        return null;
      }
      return r;
    });
const noDocker = !dk;

describe.skipIf(noDocker)("dockerd with tinyc added as a runtime", () => {
  const RUN = ["run", "--rm", "--runtime", "tinyc", "--network", "none", "--pull", "never"];

  test(
    "docker run --rm --runtime tinyc prints what the container prints",
    async () => {
      const r = await docker(dk!, [...RUN, IMAGE, "echo", "hi"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("hi\n");
      expect(r.code).toBe(0);
    },
    TIMEOUT,
  );

  test(
    "the container's exit code is docker's",
    async () => {
      const r = await docker(dk!, [...RUN, IMAGE, "sh", "-c", "exit 42"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(42);
    },
    TIMEOUT,
  );

  test(
    "the command lines: the shim's, with the runtime root under the exec root",
    async () => {
      dk!.rec.reset();
      const run = ["run", "--runtime", "tinyc-rec", "--network", "none", "--pull", "never"];
      const r = await docker(dk!, [...run, "--name", "rec-docker", IMAGE, "true"]);
      const inspect = await docker(dk!, ["inspect", "--format", "{{.Id}}", "rec-docker"]);
      const id = inspect.stdout.trim();
      await docker(dk!, ["rm", "--force", "rec-docker"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      // dockerd names the root after runc whatever the runtime is called.
      // The bundle is in our containerd's state; dockerd's containerd namespace is "moby".
      const B = `${dk!.cd.state}/io.containerd.runtime.v2.task/moby/${id}`;
      const global = ["--root", `${dk!.exec}/runtime-runc/moby`, "--log", `${B}/log.json`];
      const shim = (...args: string[]): Call => ({
        caller: "containerd-shim",
        args: [...global, "--log-format", "json", ...args],
      });
      const want = [
        shim("create", "--bundle", B, "--pid-file", `${B}/init.pid`, id),
        shim("start", id),
        shim("delete", id),
        shim("delete", "--force", id),
      ];
      await waitUntil("the last call", () => dk!.rec.calls().length >= want.length, 5000).catch(
        () => {},
      );
      expect(dk!.rec.calls()).toEqual(want);
    },
    TIMEOUT,
  );
});
