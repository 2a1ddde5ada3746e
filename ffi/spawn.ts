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
  /** Write end of the pipe the child waits on before its user namespace is mapped. */
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

/** Done with the child's set-up: a wait that was not answered yet makes it give up. */
export function closeChild(child: Child): void {
  closeSync(child.syncFd);
}

export type Report =
  | { kind: "error"; step: number; errno: number; path: string }
  | { kind: "ready" }
  | { kind: "pid"; pid: number }
  | { kind: "sync" };

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
  if (kind === 4) return { kind: "sync" };
  const end = reportBuf.indexOf(0, 16);
  const path = Buffer.from(reportBuf.subarray(16, end < 0 ? undefined : end)).toString();
  return { kind: "error", step: view.getInt32(4, true), errno: view.getInt32(8, true), path };
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

/** Relays the terminal until PID exits; returns its wait status. */
export function relayTerminal(master: number, pid: number): number {
  const status = new Int32Array(1);
  const ret = native().tc_relay(master, pid, ptr(status));
  // The relay gives the signals back when it ends; a caller that holds them holds them again.
  if (holds > 0) native().tc_forward(0);
  if (ret < 0) throw new NativeError("relay", -ret);
  return status[0];
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
