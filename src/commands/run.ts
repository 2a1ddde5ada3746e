import { closeSync, statSync, writeFileSync, writeSync } from "node:fs";
import { parseFlags } from "./args";
import {
  exitCodeOf,
  holdSignals,
  consolePair,
  keeperQuit,
  keeperWatch,
  receiveFd,
  relayTerminal,
  releaseSignals,
  setDumpable,
  startKeeper,
  waitStatus,
  type Keeper,
} from "../../ffi/spawn";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import { requireProcess } from "../oci/config";
import { loadBundle } from "../runtime/bundle";
import { hasHooks, runCreateHooks, runHooks, runHooksWarn } from "../runtime/hooks";
import { launch, prepare, type Prepared } from "../runtime/launch";
import { rootfsPath } from "../runtime/plan";
import { endByHeldSignal, removeWhenEmpty, sweepRunners } from "../runtime/container";
import { helperOf, startNetworkOf, type NetworkHelper } from "../runtime/network";
import { parseDetachKeys } from "../runtime/detachkeys";
import { defaultStateRoot, newId, newState, StateStore } from "../runtime/state";
import type { Command } from "./index";
import { writePidFile } from "./create";

const help = `usage: tinyc run [flags] BUNDLE [ID]
       tinyc run [flags] --bundle DIR ID
       tinyc run [docker flags] IMAGE [COMMAND [ARG...]]

Runs the container of a bundle and waits for it: its stdin, stdout and stderr are tinyc's,
signals sent to tinyc reach its first process, and tinyc exits with its status (N for exit N,
128+S for death by signal S; 125 when tinyc itself failed, 126 when the program cannot be
run, 127 when it is not found). Its state is removed when it ends.

A first argument that is a path (".", "..", one that starts with "/", "./" or "../", or an
existing folder) is the bundle, and the id is generated; with --bundle the first argument is
the id; otherwise it is an image reference ("debian", "localhost:5000/app:1").

docker flags, for an image: --rm, -d, --name N, -e K=V, --env-file F, -w DIR, -u USER[:GROUP],
-v HOST:CTR[:ro], --read-only, --tmpfs PATH[:OPTS], -h NAME, --entrypoint CMD, -i, -t,
--pull missing|always|never, --platform OS/ARCH, -l KEY=VALUE,
--network (--net) private|none|host|slirp4netns[:allow_host_loopback=true] (default private),
-p, --publish [IP:]HOST:CONTAINER[/tcp|/udp], --dns IP, --dns-search D, --dns-option O, --add-host NAME:IP,
--storage-driver overlay|fuse-overlayfs|copy (default: the kernel's overlayfs as root or where
it works in a user namespace, else fuse-overlayfs where installed, else a copy of the image),
--userns keep-id (your uid and gid inside are those outside; the default user is you).

With a terminal (-t, or process.terminal in a bundle), tinyc's terminal is in raw mode: keys
such as Ctrl-C and Ctrl-Z reach the container's programs, and window sizes follow. Typing the
detach keys (ctrl-p,ctrl-q, or --detach-keys; "" for none) leaves the container running, as
-d would have, and returns.

A signal sent to tinyc while the container is being made or removed is held; SIGINT and
SIGQUIT (Ctrl-C and Ctrl-\\ in a shell) make tinyc end by that signal once everything is
removed, so a loop around it stops.

docker flags, for an image:
  --rm                  remove the container and its files when it ends
  --detach, -d          print the id and leave it running; output goes to its log file
  --name NAME           the container's name (default: a generated one)
  --env, -e K=V         set an environment variable; -e K passes the caller's K (repeatable)
  --env-file FILE       KEY=VALUE lines (repeatable)
  --workdir, -w DIR     working folder
  --user, -u USER[:GROUP]  user (name or id) to run as
  --volume, -v HOST:CTR[:ro]  bind a host folder (repeatable)
  --read-only           a read-only root file system (with tmpfs /tmp, /var/tmp and /run)
  --tmpfs PATH[:OPTS]   mount a tmpfs (repeatable)
  --hostname, -h NAME   the container's host name
  --entrypoint CMD      replace the image's entrypoint
  --interactive, -i     pass stdin on (without it the container's stdin is empty)
  --tty, -t             give the container a terminal
  --pull POLICY         missing (default), always or never
  --network MODE        none or host (default: a network namespace with only loopback)
  --platform OS/ARCH    the platform to pull
  --label, -l KEY=VALUE  add an annotation (repeatable)
  --storage-driver D    overlay or copy (default: the kernel's overlayfs where it works
                        without root)

flags, for a bundle:
  --bundle, -b DIR    the bundle folder
  --detach, -d        return once the container runs, and leave it running
  --keep              keep the state of the container after it exits
  --pid-file FILE     write the container's pid to FILE
  --no-pivot          move the rootfs to / and chroot instead of pivot_root
  --no-new-keyring    accepted for runc compatibility (no session keyring is made)
  --preserve-fds N    pass N more fds (3 and on) to the container
  --console-socket S  refused: use create --console-socket and start for a terminal's master
  --plan              print the launch plan (namespaces, id maps, every step) and exit
  --detach-keys KEYS  the keys that detach from a terminal (default ctrl-p,ctrl-q)
`;

export interface RunArgs {
  bundle: string;
  id: string;
  detach: boolean;
  keep: boolean;
  pidFile?: string;
  noPivot: boolean;
  preserveFds: number;
  plan: boolean;
  /** fds that become the container's stdin, stdout and stderr, for a detached run. */
  stdio?: [number, number, number];
  /** The bytes that detach from the container's terminal (none: cannot detach). */
  detachKeys?: Uint8Array;
  /** Called when the user detached: the container goes on running, its state is kept. */
  onDetach?: () => void;
}

/**
 * A bundle path, as opposed to an image reference: ".", "..", a path that starts with "/",
 * "./" or "../", or an existing folder ("bundles/web"). "localhost:5000/debian" is an image.
 */
function isPath(arg: string): boolean {
  if (arg === "." || arg === ".." || /^(\/|\.\/|\.\.\/)/.test(arg)) return true;
  try {
    return arg.includes("/") && statSync(arg).isDirectory();
  } catch {
    return false;
  }
}

/** Flags of run (runc's and docker's) that take a value, to find the first positional. */
const VALUE_FLAGS = new Set([
  "-b", "--bundle", "--pid-file", "--console-socket", "--preserve-fds", "-e", "--env",
  "--env-file", "-w", "--workdir", "-u", "--user", "-v", "--volume", "--tmpfs", "-h",
  "--hostname", "--entrypoint", "--pull", "--network", "--platform", "-l", "--label", "--name",
  "--storage-driver", "-p", "--publish", "--dns", "--dns-search", "--dns-option", "--add-host", "--net", "--detach-keys", "--userns",
]);

function firstPositional(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") return args[i + 1];
    if (!a.startsWith("-") || a === "-") return a;
    if (VALUE_FLAGS.has(a)) i++;
  }
  return undefined;
}

function parseArgs(args: string[]): RunArgs | "help" {
  const a = parseFlags("run", args, {
    boolean: ["detach", "keep", "no-pivot", "no-new-keyring", "plan", "help"],
    string: ["bundle", "pid-file", "console-socket", "preserve-fds", "detach-keys"],
    alias: { b: "bundle", d: "detach", h: "help" },
  });
  if (a.help) return "help";
  const pos = a._.map(String);
  let bundle: string;
  let id: string | undefined;
  if (a.bundle) {
    bundle = a.bundle;
    id = pos[0];
    if (!id) throw new TinycError("run: a container id is needed with --bundle", { exitCode: EXIT.usage });
  } else if (pos[0] !== undefined && isPath(pos[0])) {
    bundle = pos[0];
    id = pos[1];
  } else {
    throw new TinycError("run: a bundle is needed", { exitCode: EXIT.usage, hint: help.split("\n")[0] });
  }
  if (a["console-socket"]) {
    throw new TinycError("run: --console-socket is not supported", { exitCode: EXIT.usage });
  }
  const preserve = a["preserve-fds"] === undefined ? 0 : Number(a["preserve-fds"]);
  if (!Number.isInteger(preserve) || preserve < 0) {
    throw new TinycError(`run: --preserve-fds ${JSON.stringify(a["preserve-fds"])}: not a count`, {
      exitCode: EXIT.usage,
    });
  }
  return {
    bundle,
    id: id ?? newId().slice(0, 12),
    detach: !!a.detach,
    keep: !!a.keep,
    pidFile: a["pid-file"] || undefined,
    noPivot: !!a["no-pivot"],
    preserveFds: preserve,
    plan: !!a.plan,
    detachKeys: parseDetachKeys(a["detach-keys"]),
  };
}

export function printPlan(p: Prepared): void {
  const ns = Object.entries({
    NEWNS: 0x20000n, NEWCGROUP: 0x2000000n, NEWUTS: 0x4000000n, NEWIPC: 0x8000000n,
    NEWUSER: 0x10000000n, NEWPID: 0x20000000n, NEWNET: 0x40000000n, NEWTIME: 0x80n,
  })
    .filter(([, f]) => (p.plan.cloneFlags & f) !== 0n)
    .map(([n]) => `CLONE_${n}`);
  const lines = [`clone ${ns.join("|") || "(no new namespaces)"}`];
  if (p.userns) {
    const show = (m: typeof p.userns.uid) =>
      m.map((x) => `${x.containerID}->${x.hostID} (${x.size})`).join(", ");
    const by = { self: "the child", helpers: "newuidmap/newgidmap", parent: "tinyc" }[p.userns.how];
    lines.push(`uid map ${show(p.userns.uid)}; gid map ${show(p.userns.gid)}; written by ${by}`);
  }
  p.plan.steps.forEach((s, i) => lines.push(`${String(i + 1).padStart(3)}. ${s.text}`));
  writeSync(1, lines.join("\n") + "\n");
}

export const runCommand: Command = {
  help,
  async run(args: string[], globals: Globals) {
    try {
      return await runEither(args, globals);
    } catch (e) {
      // A failure of tinyc's own (not of the container's program), usage errors included, is
      // 125, as docker has it: 1 and 2 may be the program's own.
      if (e instanceof TinycError && (e.exitCode === 1 || e.exitCode === EXIT.usage)) e.exitCode = EXIT.engine;
      throw e;
    } finally {
      endByHeldSignal();
    }
  },
};

async function runEither(args: string[], globals: Globals): Promise<number> {
  const bundleFlag = args.some((x) => x === "-b" || x === "--bundle" || x.startsWith("--bundle="));
  // The image code is loaded only for an image: a bundle run stays as small as it can be.
  const first = firstPositional(args);
  if (first === "") throw new TinycError("run: the image (or bundle) name is empty", { exitCode: EXIT.engine });
  const container = bundleFlag || !first || isPath(first) ? undefined : await import("./container");
  const image = container?.parseImageRun(args);
  if (container && image && !isPath(image.image) && !image.a.help) return await container.runImage(image, globals);
  const r = parseArgs(args);
  if (r === "help") {
    writeSync(1, help);
    return 0;
  }
  return await runBundle(r, globals);
}

export async function runBundle(r: RunArgs, globals: Globals): Promise<number> {
  const { dir, spec } = loadBundle(r.bundle);
  requireProcess(spec);
  const terminal = !!spec.process!.terminal;
  // A terminal of tinyc's own starts at the size of the caller's, before the program looks.
  if (terminal && !spec.process!.consoleSize && process.stdout.isTTY && process.stdout.rows > 0) {
    spec.process!.consoleSize = { height: process.stdout.rows, width: process.stdout.columns };
  }
  const wantsNetwork = helperOf(spec) !== undefined;
  if (terminal && r.detach) {
    throw new TinycError("process.terminal with --detach needs --console-socket, not supported by run", {
      hint: "use create --console-socket and start",
    });
  }
  if (r.plan) {
    const tty = terminal ? { fd: 3 + r.preserveFds } : undefined;
    printPlan(
      prepare(spec, {
        bundle: dir,
        noPivot: r.noPivot,
        preserveFds: r.preserveFds,
        console: tty,
        syncBeforePivot: wantsNetwork || hasHooks(spec.hooks, "prestart", "createRuntime", "createContainer"),
        syncBeforeExec: hasHooks(spec.hooks, "startContainer"),
      }),
    );
    return 0;
  }

  const store = new StateStore(globals.root ?? defaultStateRoot());
  sweepRunners(store);
  // From here a signal to tinyc is held and passed on once the container runs.
  holdSignals();
  store.claim(r.id);
  let keepState = false;
  const pair = terminal ? consolePair() : undefined;
  let master: number | undefined;
  let network: NetworkHelper | undefined;
  // A foreground terminal can be detached from, so its container cannot die with tinyc by
  // PR_SET_PDEATHSIG: a keeper kills it should tinyc die, and holds it when detached.
  let keeper: Keeper | undefined = terminal && !r.detach ? startKeeper() : undefined;
  try {
    // Nothing in the container may open this process's /proc/PID/exe (the tinyc executable).
    setDumpable(false);
    const tty = pair && { fd: pair.child };
    const prepared = prepare(spec, {
      bundle: dir,
      noPivot: r.noPivot,
      preserveFds: r.preserveFds,
      console: tty,
      stdio: r.stdio,
      dieWithParent: !r.detach && !keeper,
      id: r.id,
      systemdCgroup: globals.systemdCgroup,
      noCgroups: globals.noCgroups,
      syncBeforePivot: wantsNetwork || hasHooks(spec.hooks, "prestart", "createRuntime", "createContainer"),
      syncBeforeExec: hasHooks(spec.hooks, "startContainer"),
    });
    const stateDir = store.dir(r.id);
    const base = { ociVersion: spec.ociVersion, id: r.id, bundle: dir, annotations: spec.annotations };
    const hooksBeforePivot = hasHooks(spec.hooks, "prestart", "createRuntime", "createContainer");
    const beforePivot = hooksBeforePivot || wantsNetwork;
    const { pid, cgroup: cg } = await launch(prepared, async (pid, index) => {
      if (index === 0 && beforePivot) {
        // A private network's helper, before the hooks, so that they see the network too.
        if (wantsNetwork) network = await startNetworkOf(spec, pid, stateDir);
        if (hooksBeforePivot) await runCreateHooks(spec.hooks, { ...base, status: "creating", pid }, stateDir);
      } else {
        await runHooks(spec.hooks, "startContainer", { ...base, status: "created", pid }, {
          dir: stateDir,
          containerPid: pid,
        });
      }
    });
    if (keeper) keeperWatch(keeper, pid);
    if (pair) {
      closeSync(pair.child);
      master = receiveFd(pair.parent);
      closeSync(pair.parent);
    }
    const at = { id: r.id, bundle: dir, rootfs: rootfsPath(spec, dir), pid, cgroup: cg };
    const runner = !r.detach && !r.keep ? StateStore.self() : undefined;
    store.write({ ...newState(spec, at, "running"), runner });
    if (r.pidFile) writePidFile(r.pidFile, pid);
    await runHooksWarn(spec.hooks, "poststart", { ...base, status: "running", pid }, { dir: stateDir });
    if (r.detach) {
      keepState = true;
      network?.detach();
      return 0;
    }
    let status: number;
    if (master !== undefined) {
      const relayed = relayTerminal(master, pid, { keys: r.detachKeys, keeper });
      if (relayed.detached) {
        keepState = true;
        keeper = undefined;
        writeSync(1, "\r\n");
        r.onDetach?.();
        network?.detach();
        return 0;
      }
      status = relayed.status;
    } else {
      status = waitStatus(pid, true);
    }
    if (keeper) keeperQuit(keeper);
    keeper = undefined;
    const code = exitCodeOf(status);
    await network?.stop();
    if (cg && !r.keep) await removeWhenEmpty(cg);
    if (!r.keep) {
      await runHooksWarn(spec.hooks, "poststop", { ...base, status: "stopped" }, { dir: stateDir });
    }
    if (r.keep) {
      keepState = true;
      const st = store.read(r.id);
      if (st) store.write({ ...st, status: "stopped", exitCode: code, finished: new Date().toISOString() });
    }
    return code;
  } finally {
    // Closed without a word, the keeper kills what it was told of: tinyc failed on the way.
    if (keeper) closeSync(keeper.sock);
    if (master !== undefined) closeSync(master);
    if (!keepState) store.remove(r.id);
    releaseSignals();
  }
}
