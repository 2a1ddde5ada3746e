// Benchmarks tinyc against runc and crun on the same bundles, as root and rootless, and as the
// runtime of rootless podman; and tinyc's image commands against rootless podman's own.
//
// usage: bun scripts/bench.ts [--runs N] [--warmup N] [--only TEXT] [--json]
//
// Each workload is timed N times per runtime (a slow one may cap N). The runtimes take turns
// within every iteration (and the first one rotates), so that noise on the machine falls on all
// of them alike. Every command goes through scripts/bench/measure.c, which reports the wall time
// from fork to reap, and the CPU time and peak RSS that wait4 gives for the runtime's process
// tree (for podman, podman's). Everything made lives in one temporary folder, removed at exit,
// also after Ctrl-C; container ids are unique per run. The image workloads pull from a
// docker-registry this script starts on 127.0.0.1 and ends at exit; nothing reaches further.

import { spawnSync } from "node:child_process";
import {
  chmodSync, chownSync, closeSync, copyFileSync, existsSync, fstatSync, mkdirSync, mkdtempSync,
  openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import minimist from "minimist";
import { pushImage, type Registry, rootfsTar, startRegistry, stopRegistry } from "./bench/images";

const REPO = join(import.meta.dir, "..");
const FIXTURE = join(REPO, ".cache/fixtures/busybox");
const TEST_USER = "tinyc-test";
const NS_MARK = "TINYC_BENCH_CGROUP_NS";
const TIMEOUT_S = 30;
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * What a row times: a runtime, or for the image workloads podman as a whole engine, which they
 * compare with tinyc's own image commands.
 */
type RuntimeName = "tinyc" | "runc" | "crun" | "podman" | "bwrap";
type ModeName = "root" | "rootless";

interface Options { runs: number; warmup: number; json: boolean; only?: string }
interface User { uid: number; gid: number }
interface Mode { name: ModeName; user?: User }

interface Runtime {
  name: RuntimeName;
  bin: string;
  /** Where bin came from, for the report. */
  from: string;
  version: string;
  /**
   * Global flags: state goes to the run's temporary folder, never to /run; dir is the
   * scenario's folder, where podman keeps its stores.
   */
  flags(state: string, dir: string): string[];
}

/** What a workload's commands get for one iteration. */
interface Ctx { id: string; dir: string; bundle: string }

/**
 * One thing to time, for the runtimes it has commands for. setup builds what the commands need
 * inside dir (handed to the mode's user afterwards) and returns the bundle, if the commands use
 * one; the commands of a runtime (argv after its global flags, or the engine's arguments) run in
 * order, must each exit 0, and make one sample together.
 *
 * start runs once the scenario's folder belongs to the mode's user; a Failure it throws skips
 * the scenario for every runtime. stop runs after start, also after a failure or Ctrl-C, and
 * must not throw.
 */
interface Workload {
  name: string;
  modes: ModeName[];
  setup(dir: string, mode: Mode): string;
  commands: Partial<Record<RuntimeName, (c: Ctx) => string[][]>>;
  /**
   * Present when a container engine drives the runtime, which it is handed by path: the whole
   * command for one of the workload's argv, with rt as the runtime. The engine's command is
   * then what is timed.
   */
  engine?(s: Scenario, rt: Runtime, args: string[]): string[];
  /** Added to the mode's environment. */
  env?(dir: string): Record<string, string>;
  start?(s: Scenario, runtimes: Runtime[]): Promise<void>;
  stop?(s: Scenario, runtimes: Runtime[]): Promise<void>;
  /**
   * Folders that are made empty (and the mode's user's) before each sample and removed after
   * it, untimed: the stores of a workload whose every sample must start from nothing.
   */
  fresh?(dir: string): string[];
  /**
   * Time to a shell's prompt instead of to the command's end: the command runs under a
   * pseudo-terminal (util-linux script) and the sample ends when its output matches this; then
   * "exit" is typed and the rest is waited for, untimed. No cpu or RSS is taken.
   */
  prompt?: RegExp;
  /** Caps on --runs and --warmup, for a workload slow enough to make the whole run long. */
  maxRuns?: number;
  maxWarmup?: number;
  /** Run only when --only names it. */
  optional?: boolean;
  /** The time limit of one command, when 30 s is not enough (a loop of many runs). */
  timeoutS?: number;
}

interface Sample { ns: number; cpuNs: number; kib: number }

interface Row {
  workload: string;
  mode: ModeName;
  runtime: RuntimeName;
  skipped?: string;
  samples: Sample[];
}

class Failure extends Error {}
class Interrupted extends Error {}

// ---- workloads --------------------------------------------------------------------------------

const runBundle = (c: Ctx) => [["run", "--bundle", c.bundle, c.id]];
const lifecycle = (c: Ctx) => [
  ["create", "--bundle", c.bundle, c.id],
  ["start", c.id],
  ["delete", "--force", c.id],
];

/** Containers in a row in one sample of the loop workload. */
const LOOP = 100;

const WORKLOADS: Workload[] = [
  {
    name: "run true",
    modes: ["root", "rootless"],
    setup: (dir, mode) => makeBundle(join(dir, "bundle"), mode, ["true"]),
    commands: {
      tinyc: (c) => [["run", c.bundle, c.id]],
      runc: runBundle,
      crun: runBundle,
    },
  },
  {
    // The three calls a client such as containerd or podman makes for one container.
    name: "create+start+delete true",
    modes: ["root", "rootless"],
    setup: (dir, mode) => makeBundle(join(dir, "bundle"), mode, ["true"]),
    commands: {
      tinyc: lifecycle,
      runc: lifecycle,
      crun: lifecycle,
    },
  },
  {
    // A whole container through rootless podman, which calls the runtime three times (create
    // from conmon, start, delete) among much work of its own.
    name: "podman run --rm true",
    modes: ["rootless"],
    setup: podmanSetup,
    commands: { tinyc: podmanRun, runc: podmanRun, crun: podmanRun },
    engine: (s, rt, args) => [which("podman")!, ...podmanGlobal(s.dir, rt.bin), ...args],
    env: podmanEnv,
    start: podmanStart,
    stop: podmanStop,
    // podman takes 200-300 ms a run: 20 runs of three runtimes already take a quarter minute.
    maxRuns: 20,
    maxWarmup: 2,
  },
  // tinyc's image commands against rootless podman's, each pulling from the loopback registry.
  {
    name: "pull busybox",
    ...pullWorkload("busybox"),
    // A pull of 1.4 MB takes 100-200 ms, and each sample also makes and removes two stores.
    maxRuns: 20,
    maxWarmup: 2,
  },
  {
    name: "pull debian",
    ...pullWorkload("debian"),
    // Each pull of 49 MB that unpack to 120 MB takes seconds; 9 runs keep the median steady.
    maxRuns: 9,
    maxWarmup: 1,
  },
  {
    // The image in each store already: what is left is making and ending the container.
    name: "run --rm IMAGE true (warm store)",
    modes: ["rootless"],
    setup: imageSetup,
    commands: { tinyc: warmRun, podman: warmRun },
    env: imageEnv,
    start: (s, runtimes) => imageStart(s, runtimes, "busybox", true),
    stop: imageStop,
    maxRuns: 30,
    maxWarmup: 3,
  },
  {
    // The same with each engine's default network: a private network namespace with outbound
    // access through slirp4netns, which both start and end with every container (--only network).
    name: "run --rm IMAGE true (warm store, default network)",
    modes: ["rootless"],
    setup: imageSetup,
    commands: { tinyc: networkRun, podman: networkRun },
    env: imageEnv,
    start: (s, runtimes) => imageStart(s, runtimes, "busybox", true),
    stop: imageStop,
    maxRuns: 30,
    maxWarmup: 3,
    optional: true,
  },
  {
    // From typing the command to the shell's prompt, in a folder bound at its own path with
    // the caller's ids: `tinyc dev` (which makes its container, then joins it with exec)
    // against podman run -it with keep-id. Both leave no container behind after "exit".
    name: "dev shell prompt (pty)",
    modes: ["rootless"],
    setup: imageSetup,
    commands: {
      tinyc: () => [["dev", "--pull", "never", imageRef("busybox"), "sh"]],
      podman: (c) => [["run", "--rm", "-it", "--pull=never", "--userns=keep-id", "--network", "host",
        "-v", `${c.dir}:${c.dir}`, "-w", c.dir, imageRef("busybox"), "sh"]],
    },
    env: imageEnv,
    start: (s, runtimes) => imageStart(s, runtimes, "busybox", true),
    stop: imageStop,
    // busybox's sh asks the terminal where the cursor is (ESC [6n) after its prompt.
    prompt: /\$ (?:\x1b\[6n|$)/,
    maxRuns: 20,
    maxWarmup: 2,
  },
  {
    // Another shell in a dev container that runs already: `tinyc dev` again in the same
    // folder, against `podman exec -it` into a keep-id container started the same way.
    name: "dev second shell prompt (pty)",
    modes: ["rootless"],
    setup: imageSetup,
    commands: {
      tinyc: () => [["dev", "--pull", "never", imageRef("busybox"), "sh"]],
      podman: () => [["exec", "-it", "tinyc-bench-dev", "sh"]],
    },
    env: imageEnv,
    start: devStart,
    stop: async (s, runtimes) => {
      const tinyc = runtimes.find((rt) => rt.name === "tinyc");
      if (tinyc) runAs(s, [tinyc.bin, ...tinyc.flags(state(s, tinyc), s.dir), "dev", "--stop"]);
      await imageStop(s, runtimes);
    },
    prompt: /\$ (?:\x1b\[6n|$)/,
    maxRuns: 20,
    maxWarmup: 2,
  },
  {
    // What a script pays: a shell loop of 100 containers, one command each, against podman
    // and against bwrap, which makes namespaces over the same files but no container.
    name: `loop of ${LOOP} run --rm IMAGE true`,
    modes: ["rootless"],
    setup: loopSetup,
    commands: { tinyc: () => [["loop"]], podman: () => [["loop"]], bwrap: () => [["loop"]] },
    engine: loopCommand,
    env: imageEnv,
    start: (s, runtimes) => imageStart(s, runtimes.filter((rt) => rt.name !== "bwrap"), "busybox", true),
    stop: imageStop,
    // A sample of podman's is 100 runs of 100 ms or more.
    maxRuns: 5,
    maxWarmup: 1,
    timeoutS: 300,
  },
];

/** The image in each store, and a dev container of each, kept running for the timed shells. */
async function devStart(s: Scenario, runtimes: Runtime[]): Promise<void> {
  await imageStart(s, runtimes, "busybox", true);
  for (const rt of runtimes) {
    const args = rt.name === "tinyc"
      ? ["dev", "--keep", "--pull", "never", imageRef("busybox"), "true"]
      : ["run", "-d", "--name", "tinyc-bench-dev", "--pull=never", "--userns=keep-id", "--network",
        "host", "-v", `${s.dir}:${s.dir}`, "-w", s.dir, imageRef("busybox"), "sleep", "100000"];
    const why = runAs(s, [rt.bin, ...rt.flags(state(s, rt), s.dir), ...args]);
    if (why) throw new Failure(`${rt.name}: starting the dev container failed: ${why}`);
  }
}

// ---- loops ------------------------------------------------------------------------------------

/** podman's configuration as for the image workloads, and a copy of the busybox files for bwrap. */
function loopSetup(dir: string, mode: Mode): string {
  imageSetup(dir, mode);
  sh(["cp", "-a", FIXTURE, join(dir, "bwrap-rootfs")]);
  return "";
}

/**
 * The timed command: sh running one container LOOP times, stopping at the first failure. tinyc
 * and podman run the image of their own stores; bwrap runs `true` over the same busybox files,
 * in new namespaces of every kind (user, mount, pid, net, ipc, uts, cgroup), with /proc and a
 * /dev of its own, which is the least a container is.
 */
function loopCommand(s: Scenario, rt: Runtime, _args: string[]): string[] {
  const one = rt.name === "bwrap"
    ? [rt.bin, "--unshare-all", "--ro-bind", join(s.dir, "bwrap-rootfs"), "/", "--proc", "/proc",
      "--dev", "/dev", "true"]
    : [rt.bin, ...rt.flags(state(s, rt), s.dir), ...warmRun()[0]];
  const script = 'n=$1; shift; i=0; while [ $i -lt $n ]; do "$@" || exit 1; i=$((i+1)); done';
  return ["/bin/sh", "-c", script, "sh", String(LOOP), ...one];
}

// ---- bundles ----------------------------------------------------------------------------------

/** Copies the busybox fixture into dir/rootfs and writes a config.json that runs args. */
function makeBundle(dir: string, mode: Mode, args: string[]): string {
  mkdirSync(dir, { recursive: true });
  sh(["cp", "-a", FIXTURE, join(dir, "rootfs")]);
  writeFileSync(join(dir, "config.json"), JSON.stringify(ociConfig(mode, args), null, 2));
  return dir;
}

/**
 * runc 1.1's `runc spec` template (with --rootless for the rootless mode) built directly, so the
 * bundle does not depend on any runtime under test. ociVersion is 1.1.0 because crun 1.8 refuses
 * 1.2.0. Ambient capabilities are left out: without inheritable ones they cannot be raised, runc
 * silently goes on and tinyc refuses, so keeping them would not time the same work.
 */
function ociConfig(mode: Mode, args: string[]): object {
  const rootless = mode.user !== undefined;
  const caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
  const map = (id: number) => [{ containerID: 0, hostID: id, size: 1 }];
  const nosuid = ["nosuid", "noexec", "nodev"];
  const devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"];
  const sys = rootless
    ? { destination: "/sys", type: "none", source: "/sys", options: ["rbind", ...nosuid, "ro"] }
    : { destination: "/sys", type: "sysfs", source: "sysfs", options: [...nosuid, "ro"] };
  const namespaces = rootless
    ? ["pid", "ipc", "uts", "mount", "user"]
    : ["pid", "network", "ipc", "uts", "mount"];
  return {
    ociVersion: "1.1.0",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: [`PATH=${PATH}`, "TERM=xterm"],
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "bench",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      {
        destination: "/dev", type: "tmpfs", source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts", type: "devpts", source: "devpts",
        options: rootless ? devpts : [...devpts, "gid=5"],
      },
      {
        destination: "/dev/shm", type: "tmpfs", source: "shm",
        options: [...nosuid, "mode=1777", "size=65536k"],
      },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: nosuid },
      sys,
      {
        destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
        options: [...nosuid, "relatime", "ro"],
      },
    ],
    linux: {
      ...(rootless
        ? { uidMappings: map(mode.user!.uid), gidMappings: map(mode.user!.gid) }
        : { resources: { devices: [{ allow: false, access: "rwm" }] } }),
      namespaces: namespaces.map((type) => ({ type })),
      maskedPaths: [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

// ---- podman -----------------------------------------------------------------------------------

const PODMAN_IMAGE = "localhost/tinyc-bench-busybox:latest";

function podmanRun(): string[][] {
  return [["run", "--rm", "--pull=never", "--network", "none", PODMAN_IMAGE, "true"]];
}

/**
 * podman's files, apart from anything of the user's: in the scenario's folder, but for the
 * runroot. podman refuses a runroot longer than 50 characters (conmon's sockets live in it),
 * so that one gets a short name next to the folder, in the run's temporary folder.
 */
const podmanDirs = (dir: string) => {
  const base = join(dir, "podman");
  return {
    base,
    storage: join(base, "storage"),
    runroot: join(dirname(dir), "podman-run"),
    tar: join(base, "busybox.tar"),
    conf: join(base, "containers.conf"),
    registries: join(base, "registries.conf"),
  };
};

/**
 * As the client tests run it: vfs needs neither fuse nor kernel overlay, and cgroupfs and file
 * events need no systemd user manager. The runtime is given by path; podman derives its name,
 * and with it the flags it passes, from the basename.
 */
function podmanGlobal(dir: string, runtime: string): string[] {
  const p = podmanDirs(dir);
  return [
    ...["--root", p.storage, "--runroot", p.runroot, "--storage-driver", "vfs"],
    ...["--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtime],
  ];
}

function podmanEnv(dir: string): Record<string, string> {
  const p = podmanDirs(dir);
  const home = join(dir, "home");
  return {
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local/share"),
    CONTAINERS_CONF: p.conf,
    CONTAINERS_REGISTRIES_CONF: p.registries,
  };
}

/**
 * Writes podman's configuration and the image tar, as root; prepare hands the scenario's folder
 * to the user, and the runroot, outside it, is handed over here.
 */
function podmanSetup(dir: string, mode: Mode): string {
  const p = podmanDirs(dir);
  for (const d of [p.storage, p.runroot]) mkdirSync(d, { recursive: true, mode: 0o700 });
  if (mode.user) chownSync(p.runroot, mode.user.uid, mode.user.gid);
  // journald, podman's default log driver, needs a journal this machine may not have.
  writeFileSync(p.conf, '[containers]\nlog_driver = "k8s-file"\n');
  // No search registries: a short name can never turn into a pull (every run says --pull=never).
  writeFileSync(p.registries, "unqualified-search-registries = []\n");
  sh(["tar", "-C", FIXTURE, "-cf", p.tar, "."]);
  return "";
}

/** Runs a set-up command as the scenario's user; the reason when it fails. */
function runAs(s: Scenario, argv: string[]): string | undefined {
  const cmd = [...asUser(s.mode), ...argv];
  const r = spawnSync(cmd[0], cmd.slice(1), {
    env: s.env, cwd: s.dir, encoding: "utf8", timeout: TIMEOUT_S * 1000,
  });
  if (r.status === 0) return undefined;
  return r.error?.message ?? (r.stderr.trim().split("\n").pop() || `exit ${r.status ?? r.signal}`);
}

/**
 * Imports the image once. This first podman command also makes podman's user namespace, held
 * by its pause process, which every timed run then joins: the runs all do the same work.
 */
async function podmanStart(s: Scenario, runtimes: Runtime[]): Promise<void> {
  const absent = ["podman", "conmon", "newuidmap", "newgidmap"].filter((n) => !which(n));
  if (absent.length) throw new Failure(`not installed: ${absent.join(", ")}`);
  if (!runtimes.length) throw new Failure("no runtime to hand podman");
  const p = podmanDirs(s.dir);
  const podman = [which("podman")!, ...podmanGlobal(s.dir, runtimes[0].bin)];
  const why = runAs(s, [...podman, "import", "--quiet", p.tar, PODMAN_IMAGE]);
  if (why) throw new Failure(`podman import fails here: ${why}`);
}

/**
 * Removes what podman made: containers a failed or interrupted run left, the image, the pause
 * process (by the pid it recorded), and the storage, as root because vfs layers may hold files
 * of the user's subordinate ids.
 */
async function podmanStop(s: Scenario, runtimes: Runtime[]): Promise<void> {
  const p = podmanDirs(s.dir);
  const podman = which("podman");
  if (podman && runtimes.length) {
    const global = [podman, ...podmanGlobal(s.dir, runtimes[0].bin)];
    for (const args of [["rm", "--all", "--force", "--time", "0"], ["rmi", "--all", "--force"]]) {
      const why = runAs(s, [...global, ...args]);
      if (why) progress(`  podman ${args[0]} -af failed: ${why}`);
    }
  }
  await endPause(s);
  for (const d of [p.base, p.runroot]) rmSync(d, { recursive: true, force: true });
}

/** Ends podman's pause process, if the recorded pid is still the user's pause process. */
async function endPause(s: Scenario): Promise<void> {
  const file = join(s.env.XDG_RUNTIME_DIR ?? join(s.dir, "xdg"), "libpod/tmp/pause.pid");
  const pid = existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : NaN;
  if (!Number.isInteger(pid) || pid <= 0) return;
  // The file outlives the process and pids are reused: check what the pid runs now, and whose.
  const status = procStatus(pid);
  if (status?.comm !== "podman pause" || status.uid !== s.mode.user?.uid) return;
  process.kill(pid, "SIGKILL");
  for (let t = 0; t < 50 && procStatus(pid)?.running; t++) await Bun.sleep(100);
  if (procStatus(pid)?.running) progress(`  podman's pause process ${pid} did not end`);
}

/** What /proc says of a pid; a zombie does not run (pid 1 here may be slow to reap). */
function procStatus(pid: number): { comm: string; uid: number; running: boolean } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (k: string) => status.match(new RegExp(`^${k}:\\s*(\\S+)`, "m"))?.[1] ?? "";
    const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    return { comm, uid: Number(field("Uid")), running: field("State") !== "Z" };
  } catch {
    return undefined;
  }
}

// ---- images -----------------------------------------------------------------------------------

type ImageName = "busybox" | "debian";

/** Each image's one layer: the busybox fixture folder, or the debian fixture's tar as it is. */
const IMAGE_SOURCES: Record<ImageName, { path: string; isDir: boolean }> = {
  busybox: { path: FIXTURE, isDir: true },
  debian: { path: join(REPO, ".cache/fixtures/debian.tar"), isDir: false },
};

/** The loopback registry, started by the first image workload and ended at exit. */
let registry: Registry | undefined;
/** The references of the images pushed to it so far. */
const pushed = new Map<ImageName, string>();

const imageRef = (image: ImageName) => pushed.get(image)!;

/**
 * A registries.conf with no search registries, so that no short name can become a pull, and
 * the loopback registry as an insecure (http) one.
 */
const registriesConf = (host: string) =>
  `unqualified-search-registries = []\n\n[[registry]]\nlocation = "${host}"\ninsecure = true\n`;

/** Starts the registry if need be and pushes image to it, once for the whole run. */
async function pushOnce(tmp: string, image: ImageName): Promise<string> {
  const known = pushed.get(image);
  if (known) return known;
  const conf = join(tmp, "registries.conf");
  if (!registry) {
    progress("  starting docker-registry on 127.0.0.1");
    registry = await startRegistry(tmp);
    writeFileSync(conf, registriesConf(registry.host));
  }
  const source = IMAGE_SOURCES[image];
  if (!existsSync(source.path)) {
    throw new Failure(`${source.path} is missing: run bash scripts/fixtures.sh`);
  }
  progress(`  pushing ${image} to ${registry.host}`);
  const ref = pushImage(registry, tmp, image, rootfsTar(source.path, source.isDir), conf);
  pushed.set(image, ref);
  return ref;
}

/** Ends the registry, if one was started. */
async function endRegistry(): Promise<void> {
  if (registry) await stopRegistry(registry);
}

/** tinyc's image store in a scenario (TINYC_DATA); podman's is podmanDirs(dir).storage. */
const tinycStore = (dir: string) => join(dir, "tinyc-store");

/**
 * podman's global flags in the image workloads: its stores in the scenario's folder, the
 * kernel's overlayfs (native in the user namespace since Linux 5.13, no fuse-overlayfs), and
 * as in the podman workload above cgroupfs and file events. Its runtime is crun, its default,
 * named in containers.conf.
 */
function imagePodmanGlobal(dir: string): string[] {
  const p = podmanDirs(dir);
  return [
    ...["--root", p.storage, "--runroot", p.runroot, "--storage-driver", "overlay"],
    ...["--cgroup-manager", "cgroupfs", "--events-backend", "file"],
  ];
}

function imageEnv(dir: string): Record<string, string> {
  return { ...podmanEnv(dir), TINYC_DATA: tinycStore(dir) };
}

/** Both pull from the loopback registry by its explicit address, over http. */
function pullArgs(rt: RuntimeName, image: ImageName): string[] {
  const tls = rt === "podman" ? ["--tls-verify=false"] : [];
  return ["pull", "--quiet", ...tls, imageRef(image)];
}

function warmRun(): string[][] {
  return [["run", "--rm", "--pull=never", "--network", "none", imageRef("busybox"), "true"]];
}

function networkRun(): string[][] {
  return [["run", "--rm", "--pull=never", imageRef("busybox"), "true"]];
}

/** Every sample pulls into empty stores: tinyc's, podman's storage and podman's runroot. */
function pullWorkload(image: ImageName): Omit<Workload, "name"> {
  return {
    modes: ["rootless"],
    setup: imageSetup,
    commands: {
      tinyc: () => [pullArgs("tinyc", image)],
      podman: () => [pullArgs("podman", image)],
    },
    env: imageEnv,
    start: (s, runtimes) => imageStart(s, runtimes, image),
    stop: imageStop,
    fresh: (dir) => [tinycStore(dir), podmanDirs(dir).storage, podmanDirs(dir).runroot],
  };
}

/** podman's configuration, as root; registries.conf waits for the registry's port. */
function imageSetup(dir: string, mode: Mode): string {
  const p = podmanDirs(dir);
  for (const d of [p.storage, p.runroot]) mkdirSync(d, { recursive: true, mode: 0o700 });
  if (mode.user) chownSync(p.runroot, mode.user.uid, mode.user.gid);
  // journald, podman's default log driver, needs a journal this machine may not have.
  writeFileSync(p.conf, '[containers]\nlog_driver = "k8s-file"\n\n[engine]\nruntime = "crun"\n');
  return "";
}

/**
 * Pushes the image the workload needs and writes podman's registries.conf. With warm, the
 * image is also pulled into each store, untimed; that first podman command also makes the
 * user namespace podman's pause process then keeps for every timed run.
 */
async function imageStart(s: Scenario, runtimes: Runtime[], image: ImageName,
  warm = false): Promise<void> {
  const absent = ["docker-registry", "skopeo"].filter((n) => !which(n));
  if (runtimes.some((rt) => rt.name === "podman")) {
    absent.push(...["conmon", "newuidmap", "newgidmap"].filter((n) => !which(n)));
  }
  if (absent.length) throw new Failure(`not installed: ${absent.join(", ")}`);
  try {
    await pushOnce(dirname(s.dir), image);
  } catch (e) {
    throw e instanceof Failure ? e : new Failure((e as Error).message);
  }
  writeFileSync(podmanDirs(s.dir).registries, registriesConf(registry!.host));
  if (!warm) return;
  for (const rt of runtimes) {
    const why = runAs(s, [rt.bin, ...rt.flags(state(s, rt), s.dir), ...pullArgs(rt.name, image)]);
    if (why) throw new Failure(`${rt.name} pull fails here: ${why}`);
  }
}

/**
 * Removes what the workload made: containers a failed or interrupted run left in podman's
 * store (a pull workload's store is gone already), podman's pause process, and both stores,
 * as root because their layers hold files of the user's subordinate ids.
 */
async function imageStop(s: Scenario, runtimes: Runtime[]): Promise<void> {
  const p = podmanDirs(s.dir);
  const podman = runtimes.find((rt) => rt.name === "podman");
  if (podman && existsSync(join(p.storage, "libpod"))) {
    const why = runAs(s, [podman.bin, ...podman.flags(state(s, podman), s.dir),
      "rm", "--all", "--force", "--time", "0"]);
    if (why) progress(`  podman rm -af failed: ${why}`);
  }
  await endPause(s);
  for (const d of [p.base, p.runroot, tinycStore(s.dir)]) {
    rmSync(d, { recursive: true, force: true });
  }
}

// ---- processes --------------------------------------------------------------------------------

/** Runs a set-up command, failing the benchmark if it fails. */
function sh(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) {
    const why = r.error?.message ?? (r.stderr.trim() || `exit ${r.status ?? r.signal}`);
    throw new Error(`${argv.join(" ")}: ${why}`);
  }
  return r.stdout;
}

/** setpriv in front of a command that must run as the rootless user; nothing as root. */
function asUser(mode: Mode): string[] {
  const u = mode.user;
  return u ? ["setpriv", `--reuid=${u.uid}`, `--regid=${u.gid}`, "--clear-groups"] : [];
}

/** A clean environment, the same for every runtime, with the rootless user's own runtime dir. */
function envFor(mode: Mode, dir: string): Record<string, string> {
  const env: Record<string, string> = { PATH, HOME: join(dir, "home"), LANG: "C" };
  if (mode.user) env.XDG_RUNTIME_DIR = join(dir, "xdg");
  return env;
}

let stopping = false;

/** The first Ctrl-C ends the run after the current command; the helper makes it return. */
function trapSignals(): void {
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      if (!stopping) console.error(`bench: ${sig}, stopping after the current command`);
      stopping = true;
    });
  }
}

interface Scenario {
  workload: Workload;
  mode: Mode;
  dir: string;
  bundle: string;
  env: Record<string, string>;
  logs: Map<RuntimeName, number>;
}

const state = (s: Scenario, rt: Runtime) => join(s.dir, "state", rt.name);

/** Runs one command through the helper; throws Failure with the runtime's own words. */
async function measure(s: Scenario, rt: Runtime, argv: string[], helper: string): Promise<Sample> {
  const log = s.logs.get(rt.name)!;
  const from = fstatSync(log).size;
  const engine = s.workload.engine;
  const runtime = engine ? engine(s, rt, argv)
    : [rt.bin, ...rt.flags(state(s, rt), s.dir), ...argv];
  if (s.workload.prompt) return timeToPrompt(s, runtime, s.workload.prompt, log);
  const timeout = s.workload.timeoutS ?? TIMEOUT_S;
  const cmd = [...asUser(s.mode), helper, `${timeout}`, ...runtime];
  // cwd: a folder the mode's user may enter, whoever started the benchmark from where.
  const proc = Bun.spawn(cmd, {
    env: s.env, cwd: s.dir, stdin: "ignore", stdout: "pipe", stderr: log,
  });
  const out = (await new Response(proc.stdout).text()).trim();
  const exit = await proc.exited;
  // A command cut short by Ctrl-C is no failure of the runtime.
  if (stopping) throw new Interrupted();
  const [ns, cpuNs, kib, status] = out.split(" ").map(Number);
  if (exit !== 0 || status === undefined) throw new Failure(`measure failed (exit ${exit})`);
  if (status !== 0) {
    const said = lastLine(log, from);
    const how = status === 137 ? `killed after ${timeout} s` : `exit ${status}`;
    throw new Failure(`${argv[0]}: ${how}${said ? `: ${said}` : ""}`);
  }
  return { ns, cpuNs, kib };
}

const shellQuote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);

/**
 * Runs argv under a pseudo-terminal (util-linux script) and times it until its output matches
 * prompt; then types "exit" and waits for the end, untimed.
 */
async function timeToPrompt(s: Scenario, argv: string[], prompt: RegExp, log: number): Promise<Sample> {
  if (!which("script")) throw new Failure("not installed: script (util-linux)");
  const cmd = [...asUser(s.mode), "script", "-qfec", argv.map(shellQuote).join(" "), "/dev/null"];
  const start = Bun.nanoseconds();
  const proc = Bun.spawn(cmd, { env: { ...s.env, TERM: "xterm" }, cwd: s.dir, stdin: "pipe",
    stdout: "pipe", stderr: log });
  const timer = setTimeout(() => proc.kill("SIGKILL"), TIMEOUT_S * 1000);
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let ns = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (prompt.test(text)) {
      ns = Bun.nanoseconds() - start;
      break;
    }
  }
  try {
    proc.stdin.write("exit\n");
    proc.stdin.flush();
  } catch {
    // It ended already: its status and output say why.
  }
  const rest = (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // The process is gone.
    }
  })();
  const exit = await proc.exited;
  clearTimeout(timer);
  await rest;
  if (stopping) throw new Interrupted();
  if (!ns) throw new Failure(`no prompt (exit ${exit}): ${JSON.stringify(text.slice(-200))}`);
  if (exit !== 0) throw new Failure(`exit ${exit} after the prompt`);
  return { ns, cpuNs: 0, kib: 0 };
}

/** The last line a runtime wrote to its log since offset. */
function lastLine(fd: number, offset: number): string {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(Math.min(size - offset, 4096));
  readSync(fd, buf, 0, buf.length, size - buf.length);
  return buf.toString("utf8").trim().split("\n").pop() ?? "";
}

/** One sample: the workload's commands in order, times added up, the largest peak RSS kept. */
async function iteration(s: Scenario, rt: Runtime, id: string, helper: string): Promise<Sample> {
  const ctx: Ctx = { id, dir: s.dir, bundle: s.bundle };
  const total: Sample = { ns: 0, cpuNs: 0, kib: 0 };
  const fresh = s.workload.fresh?.(s.dir) ?? [];
  try {
    for (const d of fresh) makeEmpty(d, s.mode);
    for (const argv of s.workload.commands[rt.name]!(ctx)) {
      if (stopping) throw new Interrupted();
      const one = await measure(s, rt, argv, helper);
      total.ns += one.ns;
      total.cpuNs += one.cpuNs;
      total.kib = Math.max(total.kib, one.kib);
    }
  } finally {
    // As root: the stores hold files of the user's subordinate ids.
    for (const d of fresh) rmSync(d, { recursive: true, force: true });
  }
  return total;
}

/** An empty folder at dir that the mode's user owns, whatever was there. */
function makeEmpty(dir: string, mode: Mode): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (mode.user) chownSync(dir, mode.user.uid, mode.user.gid);
}

// ---- the run ----------------------------------------------------------------------------------

const RUN_TAG = `b${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
let nextId = 0;
const newId = (rt: Runtime) => `${RUN_TAG}-${rt.name}-${nextId++}`;

const scenarioDir = (tmp: string, w: Workload, mode: Mode) =>
  join(tmp, `${w.name.replace(/\W+/g, "-")}-${mode.name}`);

/** A folder for one workload in one mode, owned by the mode's user. */
function prepare(tmp: string, workload: Workload, mode: Mode, runtimes: Runtime[]): Scenario {
  const dir = scenarioDir(tmp, workload, mode);
  mkdirSync(dir, { mode: 0o700 });
  const subs = ["home", ...(mode.user ? ["xdg"] : []), ...runtimes.map((rt) => `state/${rt.name}`)];
  for (const sub of subs) {
    mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  }
  const bundle = workload.setup(dir, mode);
  if (mode.user) sh(["chown", "-R", `${mode.user.uid}:${mode.user.gid}`, dir]);
  const log = (rt: Runtime) => openSync(join(dir, `${rt.name}.log`), "a+");
  const logs = new Map(runtimes.map((rt) => [rt.name, log(rt)]));
  const env = { ...envFor(mode, dir), ...workload.env?.(dir) };
  return { workload, mode, dir, bundle, env, logs };
}

/** Warm-up runs; a runtime whose first run fails is dropped from this scenario. */
async function warmUp(s: Scenario, runtimes: Runtime[], n: number, helper: string) {
  const ok: Runtime[] = [];
  const skipped = new Map<RuntimeName, string>();
  for (const rt of runtimes) {
    try {
      for (let i = 0; i < n; i++) await iteration(s, rt, newId(rt), helper);
      ok.push(rt);
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      skipped.set(rt.name, e.message);
      progress(`  ${rt.name}: skipped, warm-up failed: ${e.message}`);
    }
  }
  return { ok, skipped };
}

/** Round-robin over the runtimes, the first one rotating, so drift hits each the same. */
async function timeRuns(s: Scenario, runtimes: Runtime[], opts: Options, helper: string) {
  const samples = new Map<RuntimeName, Sample[]>(runtimes.map((rt) => [rt.name, []]));
  const failed = new Map<RuntimeName, string>();
  for (let i = 0; i < opts.runs; i++) {
    const live = runtimes.filter((rt) => !failed.has(rt.name));
    for (let k = 0; k < live.length; k++) {
      const rt = live[(i + k) % live.length];
      try {
        samples.get(rt.name)!.push(await iteration(s, rt, newId(rt), helper));
      } catch (e) {
        if (!(e instanceof Failure)) throw e;
        failed.set(rt.name, `failed at run ${i + 1}: ${e.message}`);
        progress(`  ${rt.name}: ${failed.get(rt.name)}`);
      }
    }
  }
  return { samples, failed };
}

/** The run counts of a workload: the options, within the workload's caps. */
const countsFor = (w: Workload, opts: Options): Options => ({
  ...opts,
  runs: Math.min(opts.runs, w.maxRuns ?? opts.runs),
  warmup: Math.min(opts.warmup, w.maxWarmup ?? opts.warmup),
});

async function scenario(tmp: string, w: Workload, mode: Mode, runtimes: Runtime[],
  options: Options, helper: string): Promise<Row[]> {
  const opts = countsFor(w, options);
  const all = runtimes.filter((rt) => w.commands[rt.name]);
  progress(`${label(w.name, mode.name)}: ${opts.warmup} warm-up + ${opts.runs} runs each`);
  const s = prepare(tmp, w, mode, all);
  const row = (rt: Runtime): Row => ({ workload: w.name, mode: mode.name, runtime: rt.name,
    samples: [] });
  try {
    try {
      await w.start?.(s, all);
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      const why = e.message;
      progress(`  skipped: ${why}`);
      return all.map((rt) => ({ ...row(rt), skipped: why }));
    }
    const { ok, skipped } = await warmUp(s, all, opts.warmup, helper);
    const { samples, failed } = await timeRuns(s, ok, opts, helper);
    return all.map((rt) => {
      const why = skipped.get(rt.name) ?? failed.get(rt.name);
      return why ? { ...row(rt), skipped: why } : { ...row(rt), samples: samples.get(rt.name)! };
    });
  } finally {
    await w.stop?.(s, all);
    for (const fd of s.logs.values()) closeSync(fd);
  }
}

// ---- environment ------------------------------------------------------------------------------

/** crun refuses hybrid cgroups, so the run needs a cgroup2 /sys/fs/cgroup of its own. */
const pureCgroup2 = () => existsSync("/sys/fs/cgroup/cgroup.controllers");

/**
 * Runs this script again in a private mount namespace with cgroup2 on /sys/fs/cgroup. All
 * runtimes, and the rootless user (setpriv keeps the namespace), then see the same hierarchy.
 */
async function reexecWithCgroup2(): Promise<never> {
  progress("bench: host cgroups are not pure v2; running in a mount namespace with cgroup2");
  const script = "mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"";
  const self = [process.execPath, ...process.argv.slice(1)];
  const argv = ["unshare", "-m", "sh", "-c", script, "sh", ...self];
  const child = Bun.spawn(argv, {
    env: { ...process.env, [NS_MARK]: "1" }, stdio: ["inherit", "inherit", "inherit"],
  });
  // The child (unshare and sh exec into it) stops and cleans up; this process waits for it.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => child.kill(sig));
  }
  process.exit(await child.exited);
}

function testUser(): User | undefined {
  const line = readFileSync("/etc/passwd", "utf8").split("\n")
    .find((l) => l.startsWith(`${TEST_USER}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Compiles the measuring helper; static when libc.a is there, for the smallest RSS floor. */
function buildHelper(bin: string): string {
  const out = join(bin, "measure");
  const src = join(import.meta.dir, "bench/measure.c");
  const cc = process.env.CC ?? "cc";
  const flags = ["-O2", "-Wall", "-Wextra", "-o", out, src];
  try {
    sh([cc, "-static", ...flags]);
  } catch {
    sh([cc, ...flags]);
  }
  return out;
}

/** The 1, 5 and 15 minute load averages: a busy machine explains a wide p90. */
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

function which(name: string): string | undefined {
  return PATH.split(":").map((d) => join(d, name)).find((p) => existsSync(p));
}

function versionOf(bin: string): string {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  if (r.status !== 0) return "unknown version";
  const lines = r.stdout.split("\n").map((l) => l.trim());
  return [lines[0], ...lines.filter((l) => l.startsWith("commit:"))].join(", ");
}

/**
 * The runtimes found. tinyc is copied into the run's folder: others may rebuild dist/tinyc
 * during a run, and the rootless user must be able to execute it.
 */
function findRuntimes(bin: string): { runtimes: Runtime[]; missing: string[] } {
  const missing: string[] = [];
  const runtimes: Runtime[] = [];
  const root = (s: string) => ["--root", s];
  const dist = join(REPO, "dist/tinyc");
  if (existsSync(dist)) {
    const copy = join(bin, "tinyc");
    copyFileSync(dist, copy);
    chmodSync(copy, 0o755);
    const tinyc = { bin: copy, from: `${dist} (copied at start)`, version: versionOf(copy) };
    // As crun below: no cgroup, so the two do the same work.
    const flags = (st: string) => [...root(st), "--cgroup-manager=disabled"];
    runtimes.push({ name: "tinyc", ...tinyc, flags });
  } else missing.push("tinyc: skipped, dist/tinyc not found (npm run build)");
  for (const name of ["runc", "crun"] as const) {
    const path = which(name);
    if (!path) {
      missing.push(`${name}: skipped, not installed`);
      continue;
    }
    // crun would otherwise manage cgroups; runc cannot be told not to.
    const flags = name === "crun"
      ? (s: string) => [...root(s), "--cgroup-manager=disabled"]
      : root;
    runtimes.push({ name, bin: path, from: path, version: versionOf(path), flags });
  }
  // Only the image workloads time podman itself, with stores of theirs; the runtime workloads
  // hand it the other runtimes instead.
  const podman = which("podman");
  if (podman) {
    const flags = (_state: string, dir: string) => imagePodmanGlobal(dir);
    runtimes.push({ name: "podman", bin: podman, from: podman, version: versionOf(podman), flags });
  } else missing.push("podman: skipped, not installed");
  // bwrap makes namespaces and no container: the floor the loop workload compares with.
  const bwrap = "/usr/bin/bwrap";
  if (existsSync(bwrap)) {
    runtimes.push({ name: "bwrap", bin: bwrap, from: bwrap, version: versionOf(bwrap), flags: () => [] });
  } else missing.push("bwrap: skipped, not installed");
  return { runtimes, missing };
}

/** Containers a crash or Ctrl-C left behind are deleted, then the whole folder goes. */
function cleanup(tmp: string, scenarios: { dir: string; mode: Mode }[], runtimes: Runtime[]) {
  for (const { dir, mode } of scenarios) {
    for (const rt of runtimes) {
      const st = join(dir, "state", rt.name);
      const ids = existsSync(st) ? readdirSync(st) : [];
      for (const id of ids.filter((d) => d.startsWith(RUN_TAG))) {
        const argv = [...asUser(mode), rt.bin, ...rt.flags(st, dir), "delete", "--force", id];
        spawnSync(argv[0], argv.slice(1), { stdio: "ignore", timeout: 10_000 });
      }
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}

// ---- statistics and output --------------------------------------------------------------------

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

function median(xs: number[]): number {
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile. */
function percentile(xs: number[], p: number): number {
  const s = sorted(xs);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
}

interface Stats {
  medianMs: number;
  p90Ms: number;
  minMs: number;
  cpuMs: number;
  /** Median over the runs of each run's peak. */
  rssKiB: number;
  peakRssKiB: number;
}

function stats(samples: Sample[]): Stats {
  const ms = samples.map((x) => x.ns / 1e6);
  const kib = samples.map((x) => x.kib);
  return {
    medianMs: median(ms), p90Ms: percentile(ms, 90), minMs: sorted(ms)[0],
    cpuMs: median(samples.map((x) => x.cpuNs / 1e6)),
    rssKiB: median(kib), peakRssKiB: Math.max(...kib),
  };
}

const label = (workload: string, mode: ModeName) => `${workload} (${mode})`;
const fmtMs = (ms: number) => `${ms.toFixed(1)} ms`;
const fmtKiB = (kib: number) => (kib >= 10240 ? `${(kib / 1024).toFixed(0)} MiB`
  : `${(kib / 1024).toFixed(1)} MiB`);
const progress = (msg: string) => console.error(msg);

function ratio(rows: Row[], rt: RuntimeName, key: keyof Stats): number | undefined {
  const of = (name: RuntimeName) => rows.find((r) => r.runtime === name && !r.skipped);
  const t = of("tinyc");
  const o = of(rt);
  const below = o && stats(o.samples)[key];
  // A workload that takes no cpu or RSS (the prompt one) has nothing to compare there.
  return t && below ? stats(t.samples)[key] / below : undefined;
}

const groups = (rows: Row[]) => [...new Set(rows.map((r) => label(r.workload, r.mode)))]
  .map((l) => rows.filter((r) => label(r.workload, r.mode) === l));

function table(rows: Row[]): string[] {
  const head = ["workload", "runtime", "median", "p90", "cpu", "max RSS", "tinyc/this"];
  const lines = [head];
  for (const r of rows) {
    const name = label(r.workload, r.mode);
    if (r.skipped) {
      lines.push([name, r.runtime, "skipped", "", "", "", ""]);
      continue;
    }
    const s = stats(r.samples);
    const vs = ratio(rows.filter((x) => label(x.workload, x.mode) === name), r.runtime, "medianMs");
    lines.push([name, r.runtime, fmtMs(s.medianMs), fmtMs(s.p90Ms), fmtMs(s.cpuMs),
      fmtKiB(s.rssKiB), vs === undefined ? "-" : vs.toFixed(2)]);
  }
  const widths = head.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  return lines.map((l) => l.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
    .join("  ").trimEnd());
}

/** What tinyc is compared with in a group, in the order the summaries name them. */
const others = (group: Row[]) => (["crun", "runc", "podman", "bwrap"] as const)
  .filter((rt) => group.some((r) => r.runtime === rt));

function summary(group: Row[]): string {
  const part = (key: keyof Stats, digits: number) => others(group).map((rt) => {
    const x = ratio(group, rt, key);
    return `tinyc/${rt} ${x === undefined ? "n/a" : `${x.toFixed(digits)}x`}`;
  }).join(", ");
  const g = group[0];
  return `${label(g.workload, g.mode)}: ${part("medianMs", 2)}; max RSS ${part("rssKiB", 1)}`;
}

const NOTES = [
  "time: wall clock from fork to reap of the runtime command (for `run`, until the container",
  "  has exited and its state is gone), median and 90th percentile over the runs.",
  "cpu: user plus system time of the runtime and all it reaped, median over the runs; it",
  "  moves much less than wall time when other work loads the machine.",
  "max RSS: the peak resident set of the largest single process of the runtime's tree that",
  "  the runtime itself reaped (wait4 rusage: the runtime, its helpers, and the container",
  "  process when the runtime waits for it), median over the runs. Not a sum over processes.",
  "tinyc/this: tinyc's median time divided by this runtime's (above 1: tinyc is slower).",
  "cgroups: as root, runc makes a cgroup per container and attaches its eBPF device filter",
  "  (its default; rootless it tries and is refused); crun and tinyc run with",
  "  --cgroup-manager=disabled and make none (the bundle's device rules are then not enforced).",
  "podman run --rm true: the whole `podman run --rm --pull=never --network none IMAGE true`",
  "  command (podman 4 rootless, vfs storage, cgroupfs manager), with podman handed the",
  "  runtime's path; the image is imported once and every run joins the user namespace that",
  "  podman's pause process keeps from then on. The tinyc copy is named `tinyc`, since podman",
  "  picks the flags it passes by the runtime's basename (--log-format=json --log for runc and",
  "  crun, none for tinyc); podman passes no --root and no cgroup flag, and its config.json",
  "  has no cgroupsPath. cpu and max RSS cover podman and what it reaped (its runtime start",
  "  and delete, not conmon or the runtime create under it), so max RSS is podman's own;",
  "  compare the time.",
  "image workloads: tinyc's own commands against podman's (podman 4 rootless with crun, its",
  "  default runtime, overlay storage on the kernel's overlayfs, cgroupfs manager), both as",
  "  the test user, both pulling by explicit reference from a docker-registry on 127.0.0.1",
  "  (podman with --tls-verify=false and that registry as insecure in its registries.conf,",
  "  which has no search registries). The images are the fixtures as one gzip layer each.",
  "pull: the whole `tinyc pull -q REF` (TINYC_DATA an empty folder) or `podman pull -q",
  "  --tls-verify=false REF` (empty --root and --runroot) command; the stores are emptied",
  "  before and removed after every sample, untimed. podman's first pull makes the user",
  "  namespace its pause process keeps; the later ones join it.",
  "dev shell prompt (pty): the time from starting `tinyc dev --pull never REF sh` or",
  "  `podman run --rm -it --pull=never --userns=keep-id --network host -v DIR:DIR -w DIR REF",
  "  sh` under util-linux script (as the test user, in the scenario's folder) until the shell",
  "  prints its prompt; then `exit` is typed, and the container's removal is not timed. No cpu",
  "  or max RSS is taken (shown as 0).",
  "dev second shell prompt (pty): the same, with the container running already (made once by",
  "  `tinyc dev --keep`, and by `podman run -d --userns=keep-id ... sleep`): `tinyc dev REF sh`",
  "  again against `podman exec -it NAME sh`.",
  "run --rm IMAGE true (warm store): `run --rm --pull=never --network none REF true`, the",
  "  image pulled into each store beforehand; tinyc with --cgroup-manager=disabled, podman",
  "  making no cgroup rootless with cgroupfs, as in the podman workload above.",
  "run --rm IMAGE true (warm store, default network), with --only network: the same without",
  "  --network none, so each engine starts slirp4netns for the container and ends it after.",
  `loop of ${LOOP}: one sample is /bin/sh running the command ${LOOP} times in a row, each run`,
  "  a whole tinyc or podman process as in the warm-store workload above, or `bwrap",
  "  --unshare-all --ro-bind ROOTFS / --proc /proc --dev /dev true` over a copy of the busybox",
  "  files (new user, mount, pid, network, ipc, uts and cgroup namespaces, no image store, no",
  "  state, nothing to remove). cpu and max RSS cover the shell and everything it reaped.",
];

function printText(rows: Row[], header: string[], skips: string[]): void {
  for (const l of [...header, "", ...table(rows), ""]) console.log(l);
  for (const g of groups(rows)) console.log(summary(g));
  const why = rows.filter((r) => r.skipped)
    .map((r) => `${label(r.workload, r.mode)}: ${r.runtime} skipped: ${r.skipped}`);
  if (why.length + skips.length) console.log(["", ...skips, ...why].join("\n"));
  console.log(["", ...NOTES].join("\n"));
}

interface Environment { cgroups: string; loadAverage: string }

function printJson(rows: Row[], runtimes: Runtime[], opts: Options, env: Environment): void {
  const results = rows.map((r) => {
    const base = { workload: r.workload, mode: r.mode, runtime: r.runtime };
    if (r.skipped) return { ...base, skipped: r.skipped };
    const samplesMs = r.samples.map((x) => x.ns / 1e6);
    return { ...base, runs: r.samples.length, ...stats(r.samples), samplesMs };
  });
  // tinycOverCrun, tinycOverRunc, tinycOverPodman: those of the group's runtimes.
  const both = (g: Row[], key: keyof Stats) => Object.fromEntries(others(g).map((rt) =>
    [`tinycOver${rt[0].toUpperCase()}${rt.slice(1)}`, ratio(g, rt, key)]));
  const summaries = groups(rows).map((g) => ({
    workload: g[0].workload, mode: g[0].mode,
    time: both(g, "medianMs"), cpu: both(g, "cpuMs"), maxRss: both(g, "rssKiB"),
  }));
  const versions = Object.fromEntries(runtimes.map((rt) => [rt.name, rt.version]));
  const { runs, warmup } = opts;
  const out = { runs, warmup, environment: env, versions, results, summaries };
  console.log(JSON.stringify(out, null, 2));
}

// ---- main -------------------------------------------------------------------------------------

const USAGE = `usage: bun scripts/bench.ts [--runs N] [--warmup N] [--only TEXT] [--json]
  --runs N     timed runs per runtime and workload (50)
  --warmup N   untimed runs first, at least 1; a failed first one skips the runtime (5)
  --only TEXT  only the workloads whose name contains TEXT ("pull", "IMAGE", "podman", "loop")
  --json       print the results as JSON (progress still goes to stderr)`;

function parseOptions(): Options {
  const a = minimist(process.argv.slice(2), {
    boolean: ["json", "help"], string: ["runs", "warmup", "only"], alias: { h: "help" },
    unknown: (arg) => {
      console.error(`bench: unknown argument ${arg}\n${USAGE}`);
      process.exit(2);
    },
  });
  if (a.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (flag: string, d: number) => {
    const n = a[flag] === undefined ? d : Number(a[flag]);
    if (Number.isInteger(n) && n >= 1) return n;
    console.error(`bench: --${flag} takes a whole number of at least 1\n${USAGE}`);
    process.exit(2);
  };
  const only = a.only === undefined ? undefined : String(a.only);
  return { runs: int("runs", 50), warmup: int("warmup", 5), json: !!a.json, only };
}

async function main(): Promise<number> {
  const opts = parseOptions();
  if (process.getuid?.() !== 0) {
    console.error(`bench: run as root: it runs the rootless rows as ${TEST_USER} via setpriv`);
    return 1;
  }
  if (!existsSync(FIXTURE)) {
    console.error(`bench: ${FIXTURE} is missing: run bash scripts/fixtures.sh`);
    return 1;
  }
  if (!pureCgroup2() && !process.env[NS_MARK]) await reexecWithCgroup2();
  const cgroups = process.env[NS_MARK]
    ? "hybrid cgroups on the host; private mount namespace with cgroup2 on /sys/fs/cgroup"
    : "cgroup v2 host";
  const env = { cgroups, loadAverage: loadAverage() };

  const tmp = mkdtempSync(join(tmpdir(), "tinyc-bench-"));
  // Traversable, so the rootless user reaches its own 0700 folder and the shared binaries.
  chmodSync(tmp, 0o711);
  const made: { dir: string; mode: Mode }[] = [];
  let runtimes: Runtime[] = [];
  trapSignals();
  try {
    const bin = join(tmp, "bin");
    mkdirSync(bin, { mode: 0o755 });
    const helper = buildHelper(bin);
    const found = findRuntimes(bin);
    runtimes = found.runtimes;
    found.missing.forEach((m) => progress(m));
    const user = testUser();
    const skips = [...found.missing];
    if (!user) skips.push(`rootless: skipped, no user ${TEST_USER} (bash scripts/setup.sh)`);
    const modes: Mode[] = [{ name: "root" }];
    if (user) modes.push({ name: "rootless", user });

    const rows: Row[] = [];
    const chosen = WORKLOADS.filter((w) =>
      opts.only === undefined ? !w.optional : w.name.includes(opts.only));
    if (!chosen.length) skips.push(`no workload's name contains "${opts.only}"`);
    for (const w of chosen) {
      for (const mode of modes.filter((m) => w.modes.includes(m.name))) {
        made.push({ dir: scenarioDir(tmp, w, mode), mode });
        rows.push(...(await scenario(tmp, w, mode, runtimes, opts, helper)));
      }
    }
    // The workloads whose caps lowered the counts asked for say so under the first line.
    const capped = WORKLOADS.filter((w) => rows.some((r) => r.workload === w.name))
      .map((w) => ({ w, c: countsFor(w, opts) }))
      .filter(({ c }) => c.runs !== opts.runs || c.warmup !== opts.warmup)
      .map(({ w, c }) => `  ${w.name}: ${c.runs} runs after ${c.warmup} warm-up (its cap)`);
    const header = [
      `tinyc benchmark: ${opts.runs} runs each after ${opts.warmup} warm-up, runtimes interleaved`,
      ...capped,
      `cgroups: ${env.cgroups}`,
      `load average at start: ${env.loadAverage} (1, 5, 15 minutes)`,
      ...runtimes.map((rt) => `${rt.name}: ${rt.from}, ${rt.version}`),
    ];
    if (opts.json) printJson(rows, runtimes, opts, env);
    else printText(rows, header, skips);
    return 0;
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e;
    console.error("bench: interrupted, nothing measured is printed");
    return 130;
  } finally {
    // The registry first: its storage is in tmp.
    await endRegistry();
    cleanup(tmp, made, runtimes);
  }
}

process.exit(await main());
