// A container as the lifecycle commands see it: its recorded state, its live status, and the
// ways to signal it without ever hitting a process that merely reuses its pid.

import { closeSync, existsSync, openSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { flock, LOCK, NativeError, pidfdOpen, pidfdSignal, releaseSignals, signalsReceived } from "../../ffi/spawn";
import { TinycError } from "../errors";
import { cgroupPids, isFrozen, removeCgroup, type Cgroup } from "./cgroups";
import { processStart, type ContainerState, type StateStore } from "./state";

export type Status = "created" | "running" | "stopped" | "paused";

export const FIFO = "exec.fifo";

/** Alive means: the pid is there, started when ours did, and is not a zombie. */
export function isAlive(st: ContainerState): boolean {
  if (!st.pid || st.pid <= 0) return false;
  const start = processStart(st.pid);
  if (start === undefined || (st.pidStart !== undefined && start !== st.pidStart)) return false;
  return processState(st.pid) !== "Z";
}

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

export function liveStatus(store: StateStore, st: ContainerState): Status {
  if (!isAlive(st)) return "stopped";
  if (existsSync(join(store.dir(st.id), FIFO))) return "created";
  return st.cgroup && isFrozen(st.cgroup) ? "paused" : "running";
}

/**
 * Removes the state a foreground run left when it was killed (SIGKILL) after its container
 * ended: it names its run, which is gone, and its container is gone too.
 */
export function sweepRunners(store: StateStore): void {
  for (const id of store.ids()) {
    const st = store.read(id);
    if (!st?.runner) continue;
    const [pid, start] = st.runner.split(" ").map(Number);
    if (processStart(pid) === start || isAlive(st)) continue;
    store.remove(id);
  }
}

/** Removes a cgroup once the kernel has let go of its last processes. */
export async function removeWhenEmpty(cg: Cgroup): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const pids = cgroupPids(cg);
    if (!pids || pids.length === 0) break;
    await Bun.sleep(5);
  }
  removeCgroup(cg);
}

/** The state of an id that must exist; runc's wording, which clients match on. */
export function mustLoad(store: StateStore, id: string): ContainerState {
  const st = store.read(id);
  if (!st) throw new TinycError(`container ${JSON.stringify(id)} does not exist`);
  return st;
}

/** Holds the container's lock until release(); concurrent commands on one id take turns. */
export function lockContainer(store: StateStore, id: string): () => void {
  let fd: number;
  try {
    fd = openSync(join(store.dir(id), "lock"), "a", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new TinycError(`container ${JSON.stringify(id)} does not exist`);
    }
    throw e;
  }
  flock(fd, LOCK.EX);
  return () => closeSync(fd);
}

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10,
  SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19,
  TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28,
  IO: 29, POLL: 29, PWR: 30, SYS: 31,
};

/** "9", "KILL", "SIGKILL", "sigkill", "RTMIN+3" -> a signal number. */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = text.toUpperCase().replace(/^SIG/, "");
    if (name in SIGNALS) return SIGNALS[name];
    const rt = /^RTM(IN|AX)([+-]\d+)?$/.exec(name);
    if (rt) {
      const n = (rt[1] === "IN" ? 34 : 64) + Number(rt[2] ?? 0);
      if (n >= 34 && n <= 64) return n;
    }
  }
  throw new TinycError(`unknown signal ${JSON.stringify(text)}`);
}

/**
 * Signals PID through a pidfd taken before the start time is checked, so a pid that was
 * reused after the container died is never signalled.
 */
export function signalProcess(pid: number, pidStart: number | undefined, sig: number): boolean {
  let fd: number;
  try {
    fd = pidfdOpen(pid);
  } catch (e) {
    if (e instanceof NativeError && e.errno === 3) return false;
    throw e;
  }
  try {
    if (pidStart !== undefined && processStart(pid) !== pidStart) return false;
    pidfdSignal(fd, sig);
    return true;
  } catch (e) {
    if (e instanceof NativeError && e.errno === 3) return false;
    throw new TinycError(`signal ${sig} to pid ${pid}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * The processes of the container: its first process and every descendant of it. In a pid
 * namespace every process of the container is one, since orphans are given to its pid 1.
 */
export function containerPids(st: ContainerState): number[] {
  if (!isAlive(st)) return [];
  const inGroup = st.cgroup && cgroupPids(st.cgroup);
  if (inGroup && inGroup.length > 0) return inGroup;
  const parents = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
      if (!parents.has(ppid)) parents.set(ppid, []);
      parents.get(ppid)!.push(pid);
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = [];
  const queue = [st.pid];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(parents.get(pid) ?? []));
  }
  return out;
}

/** Waits up to timeoutMs for the container's first process to be gone (or a zombie). */
export async function waitGone(st: ContainerState, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(st)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(5);
  }
  return true;
}

/** The OCI state as `tinyc state` prints it. */
export function ociState(store: StateStore, st: ContainerState): Record<string, unknown> {
  const status = liveStatus(store, st);
  return {
    ociVersion: st.ociVersion,
    id: st.id,
    pid: status === "stopped" ? 0 : st.pid,
    status,
    bundle: st.bundle,
    rootfs: st.rootfs,
    created: st.created,
    owner: "",
    annotations: st.annotations ?? {},
  };
}

/** Signals whose default action ends a process. */
const ENDING = new Set([1, 2, 3, 10, 12, 13, 14, 15, 24, 25, 26, 27, 29, 30]);

/**
 * After a foreground run (or exec) has cleaned up: tinyc ends itself by a signal it got that
 * no container process was there to take (it came during the clean-up), or by SIGINT or
 * SIGQUIT, the keys of a shell's Ctrl-C and Ctrl-\, whatever became of the container, as a
 * shell expects of an interrupted program: a loop or xargs around tinyc then stops.
 */
export function endByHeldSignal(): void {
  const held = [...signalsReceived(true)].find((s) => ENDING.has(s));
  const sig = held ?? [...signalsReceived()].find((s) => s === 2 || s === 3);
  if (sig === undefined) return;
  releaseSignals();
  process.kill(process.pid, sig);
}
