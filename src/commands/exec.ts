import { closeSync, readFileSync } from "node:fs";
import minimist from "minimist";
import { containerId, parseFlags } from "./args";
import {
  exitCodeOf,
  holdSignals,
  consolePair,
  keeperQuit,
  receiveFd,
  startKeeper,
  relayTerminal,
  sendFd,
  setDumpable,
  waitStatus,
} from "../../ffi/spawn";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import { parseProcess, type Process } from "../oci/config";
import { endByHeldSignal, liveStatus, mustLoad } from "../runtime/container";
import { parseDetachKeys } from "../runtime/detachkeys";
import type { ContainerState } from "../runtime/state";
import { containerMaps, namespacesToJoin } from "../runtime/nsjoin";
import { spawnJoined } from "../runtime/join";
import { buildExecPlan } from "../runtime/plan";
import { defaultStateRoot, StateStore } from "../runtime/state";
import { parsePreserveFds, writePidFile } from "./create";
import type { Command } from "./index";

const help = `usage: tinyc exec [flags] ID [COMMAND [ARG...]]
       tinyc exec [flags] --process process.json ID

Runs another process in a running container: it joins the container's namespaces and gets the
container's environment, working folder, user and capabilities unless flags say otherwise.

flags:
  --process, -p FILE      the process as OCI process JSON (instead of COMMAND)
  --tty, -t               give the process a terminal
  --interactive, -i       accepted, as docker's exec takes it: stdin is always the process's
  --console-socket PATH   with --tty and --detach: send the terminal's master over this socket
  --cwd DIR               working folder in the container
  --env, -e KEY=VALUE     add or replace an environment variable (repeatable)
  --user, -u UID[:GID]    run as this user
  --additional-gids, -g G add a supplementary group (repeatable)
  --cap CAP               add a capability (repeatable)
  --no-new-privs          set no_new_privs
  --detach, -d            return once the process runs
  --pid-file FILE         write the process's pid to FILE
  --preserve-fds N        pass N more fds (3 and on) to the process
  --detach-keys KEYS      with --tty: the keys that detach, leaving the process running
                          (default ctrl-p,ctrl-q; "" for none)
  --process-label L       accepted for runc compatibility, not applied (not supported)
  --apparmor P            accepted for runc compatibility, not applied (not supported)
`;

const list = (v: unknown): string[] =>
  v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String);

function processFromFlags(a: minimist.ParsedArgs, base: Process | undefined): Process {
  if (a.process) {
    let text: string;
    try {
      text = readFileSync(a.process, "utf8");
    } catch (e) {
      throw new TinycError(`--process ${JSON.stringify(a.process)}: ${(e as NodeJS.ErrnoException).code}`);
    }
    return parseProcess(text, a.process);
  }
  const args = a._.slice(1).map(String);
  if (args.length === 0) {
    throw new TinycError("exec: a command (or --process) is needed", { exitCode: EXIT.usage });
  }
  const p: Process = structuredClone(base ?? { cwd: "/", args: [] });
  p.args = args;
  p.terminal = !!a.tty;
  if (a.cwd) p.cwd = a.cwd;
  const env = [...(p.env ?? [])];
  for (const e of list(a.env)) {
    const key = e.split("=")[0];
    const at = env.findIndex((x) => x.split("=")[0] === key);
    if (at >= 0) env[at] = e;
    else env.push(e);
  }
  p.env = env;
  if (a.user) {
    const [uid, gid] = String(a.user).split(":");
    if (!/^\d+$/.test(uid) || (gid !== undefined && !/^\d+$/.test(gid))) {
      throw new TinycError(`--user ${JSON.stringify(a.user)}: expected UID[:GID] as numbers`);
    }
    p.user = { uid: Number(uid), gid: gid === undefined ? 0 : Number(gid) };
  }
  const groups = list(a["additional-gids"]).map(Number);
  if (groups.length > 0) p.user = { ...(p.user ?? { uid: 0, gid: 0 }), additionalGids: groups };
  for (const cap of list(a.cap)) {
    const c = p.capabilities ?? {};
    for (const set of ["bounding", "effective", "permitted", "ambient"] as const) {
      c[set] = [...new Set([...(c[set] ?? []), cap])];
    }
    p.capabilities = c;
  }
  if (a["no-new-privs"]) p.noNewPrivileges = true;
  return p;
}

export const execCommand: Command = {
  help,
  async run(args: string[], globals: Globals) {
    try {
      return await execCommandRun(args, globals);
    } catch (e) {
      // tinyc's own failure, usage errors included, is 125 (as for run): 1 and 2 may be the
      // process's own status; 126 and 127 (cannot run, not found) stay.
      if (e instanceof TinycError && (e.exitCode === 1 || e.exitCode === EXIT.usage)) e.exitCode = EXIT.engine;
      throw e;
    }
  },
};

async function execCommandRun(args: string[], globals: Globals): Promise<number> {
  const a = parseFlags("exec", args, {
    boolean: ["tty", "interactive", "detach", "no-new-privs", "help"],
    string: ["process", "console-socket", "cwd", "env", "user", "additional-gids", "cap",
      "pid-file", "preserve-fds", "process-label", "apparmor", "detach-keys"],
    alias: { p: "process", t: "tty", i: "interactive", e: "env", u: "user", g: "additional-gids",
      d: "detach", h: "help" },
    stopEarly: true,
  });
  if (a.help) {
    process.stdout.write(help);
    return 0;
  }
  const given = a._[0] === undefined ? undefined : String(a._[0]);
  if (!given) throw new TinycError("exec: a container id is needed", { exitCode: EXIT.usage });
  const store = new StateStore(globals.root ?? defaultStateRoot());
  const id = containerId(given, (x) => store.exists(x));
  const st = mustLoad(store, id);
  const status = liveStatus(store, st);
  if (status !== "running" && status !== "created") {
    throw new TinycError(`cannot exec in a ${status} container`);
  }
  const proc = processFromFlags(a, st.process);
  return execProcess(st, proc, {
    socket: a["console-socket"] || undefined,
    detach: !!a.detach,
    pidFile: a["pid-file"] || undefined,
    preserveFds: parsePreserveFds(a["preserve-fds"]),
    detachKeys: parseDetachKeys(a["detach-keys"]),
  });
}

export interface ExecOptions {
  socket?: string;
  detach?: boolean;
  pidFile?: string;
  preserveFds?: number;
  detachKeys?: Uint8Array;
  /** Called when the user detached from the terminal: the process goes on running. */
  onDetach?: () => void;
}

/** Runs PROC in the running container ST and waits for it (unless detached): its status. */
export function execProcess(st: ContainerState, proc: Process, o: ExecOptions): number {
  const socket = o.socket;
  const detach = !!o.detach;
  if (proc.terminal && detach && !socket) {
    throw new TinycError("exec: --tty with --detach needs --console-socket");
  }

  const join = namespacesToJoin(st.pid);
  const userns = join.includes("user") ? containerMaps(st.pid) : undefined;
  if (proc.terminal && !socket && !proc.consoleSize && process.stdout.isTTY && process.stdout.rows > 0) {
    proc.consoleSize = { height: process.stdout.rows, width: process.stdout.columns };
  }
  const pair = proc.terminal ? consolePair() : undefined;
  setDumpable(false);
  if (!detach) holdSignals();
  const plan = buildExecPlan(proc, {
    pid: st.pid,
    join,
    userns,
    preserveFds: o.preserveFds ?? 0,
    seccomp: st.seccomp,
    cgroup: st.cgroup !== undefined,
    console: pair && { fd: pair.child },
  });

  const pid = spawnJoined(plan, st.cgroup);
  let master: number | undefined;
  if (pair) {
    closeSync(pair.child);
    master = receiveFd(pair.parent);
    closeSync(pair.parent);
    if (socket) {
      sendFd(socket, master);
      closeSync(master);
      master = undefined;
    }
  }
  if (o.pidFile) writePidFile(o.pidFile, pid);
  if (detach) return 0;
  if (master === undefined) {
    const status = waitStatus(pid, true);
    endByHeldSignal();
    return exitCodeOf(status);
  }
  // The keeper puts the terminal back should tinyc be killed, and holds it once detached.
  const keeper = startKeeper();
  let detached = false;
  try {
    const relayed = relayTerminal(master, pid, { keys: o.detachKeys, keeper });
    detached = relayed.detached;
    if (detached) {
      process.stdout.write("\r\n");
      o.onDetach?.();
      return 0;
    }
    return exitCodeOf(relayed.status);
  } finally {
    if (!detached) keeperQuit(keeper);
    closeSync(master);
  }
}
