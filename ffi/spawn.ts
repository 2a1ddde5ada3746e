// Starting a plan's child and talking to it: the only calls into the C library that start or
// wait for processes.

import { ptr } from "bun:ffi";
import { closeSync, readSync, writeSync } from "node:fs";
import { native } from "./lib";

export class NativeError extends Error {
  constructor(
    public op: string,
    public errno: number,
  ) {
    super(`${op} failed with errno ${errno}`);
  }
}

export interface Child {
  pid: number;
  /** Read end of the pipe the child reports on; closed at its exec. */
  reportFd: number;
  /** Our end of the socket the child waits on (wait-parent, sync and attach-mount steps). */
  syncFd: number;
}

export function spawnPlan(bytes: Uint8Array): Child {
  const out = new Int32Array(3);
  const ret = native().tc_spawn(ptr(bytes), bytes.length, ptr(out));
  if (ret < 0) throw new NativeError("clone", -ret);
  return { pid: out[0], reportFd: out[1], syncFd: out[2] };
}

/** Lets the child go on past a wait-parent or sync step ("g"), or makes it give up ("x"). */
export function release(child: Child, go = true): void {
  try {
    writeSync(child.syncFd, go ? "g" : "x");
  } catch {
    // The child is gone already; its report or exit status says why.
  }
}

/** Lets the child go on past an attach-mount step, with the mount (an fd) it attaches. */
export function releaseWithFd(child: Child, fd: number): void {
  // A failure means the child is gone already; its report or exit status says why.
  native().tc_send_fd_sock(child.syncFd, fd);
}

/** Done with the child's set-up: a wait that was not answered yet makes it give up. */
export function closeChild(child: Child): void {
  closeSync(child.syncFd);
}

export type Report =
  | { kind: "error"; step: number; errno: number; path: string; status: number }
  | { kind: "ready" }
  | { kind: "pid"; pid: number }
  | { kind: "sync"; step: number };

const REPORT_SIZE = 16 + 4000;
const reportBuf = new Uint8Array(REPORT_SIZE);

/** The next report of the child, or null when the pipe closed (the child exec'd or died). */
export function readReport(fd: number): Report | null {
  let got = 0;
  while (got < REPORT_SIZE) {
    let n: number;
    try {
      n = readSync(fd, reportBuf, got, REPORT_SIZE - got, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      throw e;
    }
    if (n === 0) return null;
    got += n;
  }
  const view = new DataView(reportBuf.buffer);
  const kind = view.getUint32(0, true);
  if (kind === 2) return { kind: "ready" };
  if (kind === 3) return { kind: "pid", pid: view.getInt32(12, true) };
  if (kind === 4) return { kind: "sync", step: view.getInt32(4, true) };
  const end = reportBuf.indexOf(0, 16);
  const path = Buffer.from(reportBuf.subarray(16, end < 0 ? undefined : end)).toString();
  return {
    kind: "error",
    step: view.getInt32(4, true),
    errno: view.getInt32(8, true),
    path,
    status: view.getInt32(12, true),
  };
}

/** Blocks until PID ends and returns its wait status; FORWARD passes signals on to it. */
export function waitStatus(pid: number, forward: boolean): number {
  const status = new Int32Array(1);
  const ret = native().tc_wait(pid, ptr(status), forward ? 1 : 0);
  if (ret < 0) throw new NativeError("waitpid", -ret);
  return status[0];
}

/** The wait status of PID if it has ended, else undefined; does not block. */
export function pollStatus(pid: number): number | undefined {
  const status = new Int32Array(1);
  const ret = native().tc_wait(pid, ptr(status), 2);
  if (ret < 0) throw new NativeError("waitpid", -ret);
  return ret === 1 ? undefined : status[0];
}

/** The shell's view of a wait status: N for exit N, 128+S for death by signal S. */
export function exitCodeOf(status: number): number {
  const sig = status & 0x7f;
  if (sig === 0) return (status >> 8) & 0xff;
  return 128 + sig;
}

/** A connected pair of UNIX sockets: the child sends the terminal it makes over its end. */
export function consolePair(): { parent: number; child: number } {
  const out = new Int32Array(2);
  const ret = native().tc_socketpair(ptr(out));
  if (ret < 0) throw new NativeError("socketpair", -ret);
  return { parent: out[0], child: out[1] };
}

/** The fd the other end sent (SCM_RIGHTS). */
export function receiveFd(sock: number): number {
  const fd = native().tc_recv_fd(sock);
  if (fd < 0) throw new NativeError("receive the terminal", -fd);
  return fd;
}

export interface Relayed {
  /** PID's wait status, when it ended. */
  status: number;
  /** The user typed the detach keys: PID is left running. */
  detached: boolean;
}

/**
 * Relays the terminal until PID exits, or until the detach KEYS are typed; a detached
 * terminal goes to the KEEPER (one is started when none is given).
 */
export function relayTerminal(
  master: number,
  pid: number,
  opts: { keys?: Uint8Array; keeper?: Keeper } = {},
): Relayed {
  const status = new Int32Array(1);
  const keys = opts.keys && opts.keys.length > 0 ? opts.keys : new Uint8Array(1);
  const n = opts.keys?.length ?? 0;
  const ret = native().tc_relay(master, pid, ptr(status), ptr(keys), n, opts.keeper?.sock ?? -1);
  // The relay gives the signals back when it ends; a caller that holds them holds them again.
  if (holds > 0) native().tc_forward(0);
  if (ret < 0) throw new NativeError("relay", -ret);
  return { status: status[0], detached: ret === 1 };
}

/**
 * A process that kills PID (once told it) if tinyc dies without detaching, and holds a
 * detached container's terminal: PR_SET_PDEATHSIG could not let a container be detached.
 */
export interface Keeper {
  sock: number;
  pid: number;
}

export function startKeeper(): Keeper {
  const out = new Int32Array(2);
  const ret = native().tc_keeper(ptr(out));
  if (ret < 0) throw new NativeError("start the keeper", -ret);
  return { sock: out[0], pid: out[1] };
}

export function keeperWatch(k: Keeper, pid: number): void {
  const ret = native().tc_keeper_watch(k.sock, pid);
  if (ret < 0) throw new NativeError("tell the keeper", -ret);
}

/** The container ended, or never started: the keeper leaves and is reaped. */
export function keeperQuit(k: Keeper): void {
  native().tc_keeper_quit(k.sock, k.pid);
}

/** A non-dumpable process: no other process of the same user can open its /proc/PID/exe. */
export function setDumpable(on: boolean): void {
  native().tc_set_dumpable(on ? 1 : 0);
}

/** A pidfd: it names one process for good, so a reused pid is never signalled. */
export function pidfdOpen(pid: number): number {
  const fd = native().tc_pidfd_open(pid);
  if (fd < 0) throw new NativeError("pidfd_open", -fd);
  return fd;
}

export function pidfdSignal(pidfd: number, sig: number): void {
  const ret = native().tc_pidfd_signal(pidfd, sig);
  if (ret < 0) throw new NativeError("pidfd_send_signal", -ret);
}

export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

export function flock(fd: number, op: number): void {
  const ret = native().tc_flock(fd, op);
  if (ret < 0) throw new NativeError("flock", -ret);
}

/** Sends FD over the UNIX socket at PATH (SCM_RIGHTS), the way runc hands out a pty master. */
export function sendFd(path: string, fd: number): void {
  const ret = native().tc_send_fd(ptr(Buffer.from(path + "\0")), fd);
  if (ret < 0) throw new NativeError(`send to console socket ${JSON.stringify(path)}`, -ret);
}

export function mkfifo(path: string, mode: number): void {
  const ret = native().tc_mkfifo(ptr(Buffer.from(path + "\0")), mode);
  if (ret < 0) throw new NativeError(`mkfifo ${JSON.stringify(path)}`, -ret);
}

/**
 * Signals sent to tinyc from now on are held, and passed on to the container once a wait with
 * forwarding starts; so none is lost or ends tinyc while the container is being made.
 */
export function holdSignals(): void {
  held = true;
  if (holds++ === 0) native().tc_forward(0);
}

/** Ends a holdSignals(); the handlers go back once every hold has ended. */
export function releaseSignals(): void {
  if (holds > 0 && --holds === 0) native().tc_forward_stop();
}

let holds = 0;
let held = false;

/**
 * The signals that reached tinyc while they were held or passed on (held: only those still
 * held, that no process got), as a set of numbers.
 */
export function signalsReceived(stillHeld = false): Set<number> {
  const out = new Set<number>();
  if (!held) return out;
  const mask = native().tc_signals(stillHeld ? 1 : 0) >>> 0;
  for (let sig = 1; sig < 31; sig++) if (mask & (1 << sig)) out.add(sig);
  return out;
}

/** Attaches an eBPF device program (8-byte instructions) to the cgroup folder at PATH. */
export function attachDeviceFilter(path: string, insns: Uint8Array): void {
  const ret = native().tc_attach_device_filter(ptr(Buffer.from(path + "\0")), ptr(insns), insns.length / 8);
  if (ret < 0) {
    throw new NativeError(`load or attach the device filter for ${JSON.stringify(path)}`, -ret);
  }
}

const cstr = (s: string) => ptr(Buffer.from(s + "\0"));

/** lsetxattr(2): the attribute of PATH itself, never of a symlink's target. */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  const buf = value.length ? value : new Uint8Array(1);
  const ret = native().tc_lsetxattr(cstr(path), cstr(name), ptr(buf), value.length);
  if (ret < 0) throw new NativeError(`setxattr ${name} on ${JSON.stringify(path)}`, -ret);
}

export function mknod(path: string, mode: number, major: number, minor: number): void {
  const dev = (BigInt(major & 0xfff) << 8n) | BigInt(minor & 0xff) |
    (BigInt(minor & ~0xff) << 12n) | (BigInt(major & ~0xfff) << 32n);
  const ret = native().tc_mknod(cstr(path), mode, dev);
  if (ret < 0) throw new NativeError(`mknod ${JSON.stringify(path)}`, -ret);
}

/**
 * Runs the programs (each an argv whose first item is an absolute path) at once, with stdin
 * and stdout on /dev/null, and waits for them all: their wait statuses and what they wrote
 * on stderr.
 */
export function runAll(programs: string[][]): { statuses: number[]; stderr: string } {
  const text = programs.map((argv) => argv.map((a) => a + "\0").join("") + "\0").join("");
  const status = new Int32Array(programs.length);
  const err = new Uint8Array(4096);
  const n = programs.length;
  const ret = native().tc_run_all(ptr(Buffer.from(text)), n, ptr(status), ptr(err), err.length);
  if (ret < 0) throw new NativeError(`run ${programs.map((p) => p[0]).join(", ")}`, -ret);
  const end = err.indexOf(0);
  const stderr = Buffer.from(err.subarray(0, end < 0 ? undefined : end)).toString();
  return { statuses: [...status], stderr };
}
