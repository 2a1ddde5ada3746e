// The fuse-overlayfs storage driver: the container's root file system served by fuse-overlayfs
// where the kernel's overlayfs cannot be mounted without root.
//
// The layers' files belong to the user's subordinate ids, so fuse-overlayfs must run as root of
// a user namespace that maps them as the container's does; and with allow_other the kernel
// lets only that user namespace (and those below it) use the mount. So it joins the container's
// own user namespace, but not its pid namespace: nothing in the container can see, signal or
// trace it. It mounts in a private mount namespace of its own; a detached copy of that mount
// goes to the container, which attaches it on its rootfs before the pivot, and the original is
// unmounted at once. The container's mount namespace then holds the only mount, so when the
// container's last process ends (however it ends: exit, `rm -f`, SIGKILL of a foreground
// tinyc) the kernel unmounts it, and fuse-overlayfs, reading ENODEV from /dev/fuse, exits.

import { closeSync, openSync, readSync } from "node:fs";
import { encodePlan, PLAN, type Plan, type Step } from "../../ffi/plan";
import {
  closeChild,
  consolePair,
  readReport,
  receiveFd,
  spawnPlan,
  waitStatus,
} from "../../ffi/spawn";
import { TinycError } from "../errors";
import { log } from "../log";
import { findHelper } from "./idmap";
import { stepError } from "./launch";
import { MS } from "./mountopts";
import { CLONE, DEFAULT_PATH, type Overlay } from "./plan";

export interface FuseMount {
  overlay: Overlay;
  /** Where the container attaches the mount: its rootfs. */
  rootfs: string;
  /** The index of the container's sync step that waits for the mount. */
  sync: number;
  /** The container has a user namespace, which fuse-overlayfs joins. */
  userns: boolean;
}

/** Why fuse-overlayfs cannot be used here, or undefined when it can. */
export function fuseUnusable(): string | undefined {
  if (!findHelper("fuse-overlayfs")) return "fuse-overlayfs is not installed";
  try {
    closeSync(openSync("/dev/fuse", "r+"));
  } catch (e) {
    return `/dev/fuse cannot be opened (${(e as NodeJS.ErrnoException).code})`;
  }
  return undefined;
}

export function fuseOverlayArgv(o: Overlay, at: string): string[] {
  const program = findHelper("fuse-overlayfs");
  if (!program) {
    const hint = "apt-get install fuse-overlayfs";
    throw new TinycError("fuse-overlayfs is not installed", { hint });
  }
  const dirs = `lowerdir=${o.lower.join(":")},upperdir=${o.upper},workdir=${o.work}`;
  return [program, "-o", dirs, at];
}

/**
 * Starts fuse-overlayfs for the container whose first process is PID (waiting in its sync
 * step) and returns a detached mount of it, an fd, for the container to attach.
 */
export function mountFuseOverlay(f: FuseMount, pid: number): number {
  const argv = fuseOverlayArgv(f.overlay, f.rootfs);
  const sock = consolePair();
  const err = consolePair();
  const steps: Step[] = [
    { op: "close-fds", a: 0, text: "close every fd above 2 at exec" },
    { op: "dup2", a: err.child, b: 1, text: "stdout to tinyc" },
    { op: "dup2", a: err.child, b: 2, text: "stderr to tinyc" },
  ];
  if (f.userns) {
    steps.push(
      {
        op: "setns",
        s1: `/proc/${pid}/ns/user`,
        a: CLONE.NEWUSER,
        text: "join the container's user namespace",
      },
      { op: "setresid-root", text: "become root in the user namespace" },
    );
  }
  steps.push(
    { op: "unshare", a: CLONE.NEWNS, text: "make a mount namespace" },
    { op: "propagation", s2: "/", a: MS.PRIVATE | MS.REC, text: "make / rprivate" },
    { op: "find-exec", s1: argv, s3: DEFAULT_PATH, text: "find fuse-overlayfs" },
    { op: "run", s1: argv, s2: [`PATH=${DEFAULT_PATH}`], text: `run ${argv.join(" ")}` },
    {
      op: "send-mount",
      s1: f.rootfs,
      a: sock.child,
      text: `send the mount on ${f.rootfs} to tinyc and unmount it here`,
    },
    { op: "exit", a: 0, text: "exit" },
  );
  // A session of its own: a Ctrl-C meant for the container must not stop the helper between
  // fuse-overlayfs's mount and its unmount, which would leave fuse-overlayfs running.
  const plan: Plan = { cloneFlags: 0n, flags: PLAN.newSession, steps };
  try {
    const child = spawnPlan(encodePlan(plan));
    closeSync(err.child);
    closeSync(sock.child);
    err.child = sock.child = -1;
    const r = readReport(child.reportFd);
    closeSync(child.reportFd);
    closeChild(child);
    const status = waitStatus(child.pid, false);
    if (r?.kind === "error") {
      const e = stepError(plan, r.step, r.errno, r.path, r.status);
      if (plan.steps[r.step]?.op !== "run") e.message = `fuse-overlayfs: ${e.message}`;
      // fuse-overlayfs warns of mount options it ignores, which is not why it failed.
      const lines = drain(err.parent).trim().split("\n");
      const said = lines.filter((l) => !/unknown argument ignored/.test(l)).pop();
      if (said) e.message += `: ${said}`;
      throw e;
    }
    if (status !== 0) {
      throw new TinycError(`fuse-overlayfs: its helper ended with wait status ${status}`);
    }
    const fd = receiveFd(sock.parent);
    const { lower, upper } = f.overlay;
    log("debug", `fuse-overlayfs serves ${f.rootfs}: ${lower.length} layers under ${upper}`);
    return fd;
  } finally {
    for (const fd of [sock.parent, sock.child, err.parent, err.child]) if (fd >= 0) closeSync(fd);
  }
}

/** What the helper and fuse-overlayfs wrote, once all of them have ended. */
function drain(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(4096);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch {
      break;
    }
    if (n <= 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString();
}
