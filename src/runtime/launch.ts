// Starting a container: the plan goes to the C executor, the parent maps the user namespace
// when a helper must, and the child's reports become errors that name the failing step.

import { closeSync, readFileSync, writeFileSync } from "node:fs";
import { encodePlan, type Plan } from "../../ffi/plan";
import { strerror, errnoName } from "../../ffi/lib";
import {
  closeChild,
  NativeError,
  readReport,
  release,
  releaseWithFd,
  runAll,
  spawnPlan,
  waitStatus,
  type Child,
} from "../../ffi/spawn";
import { EXIT, TinycError } from "../errors";
import { log } from "../log";
import type { DeviceRule, Spec } from "../oci/config";
import {
  caller,
  configMaps,
  defaultMaps,
  findHelper,
  helperArgs,
  mapText,
  type UsernsMaps,
} from "./idmap";
import type { FuseMount } from "./fuse";
import { buildPlan, CLONE, overlayOf, rootfsPath, type PlanContext } from "./plan";
import { checkSupported } from "./supported";
import {
  createCgroup,
  enterCgroup,
  limitWrites,
  planCgroup,
  removeCgroup,
  wantsLimits,
  v2DeviceRules,
  type Cgroup,
} from "./cgroups";

export interface Prepared {
  plan: Plan;
  userns?: UsernsMaps;
  rootless: boolean;
  /** The container's cgroup and the writes that set its limits; made by launch. */
  cgroup?: {
    cg: Cgroup;
    writes: [string, string, string][];
    devices?: DeviceRule[];
    required: boolean;
  };
  /** fuse-overlayfs, started for the container when it reaches its sync step. */
  fuse?: FuseMount;
}

export interface PrepareOptions {
  bundle: string;
  fifo?: string;
  preserveFds?: number;
  noPivot?: boolean;
  console?: { fd: number };
  stdio?: [number, number, number];
  dieWithParent?: boolean;
  /** The container id and the global --systemd-cgroup flag, for its cgroup. */
  id?: string;
  systemdCgroup?: boolean;
  noCgroups?: boolean;
  /** Stops for hooks: before the pivot, and (for run) before the exec. */
  syncBeforePivot?: boolean;
  syncBeforeExec?: boolean;
}

/** Decides the user namespace and builds the plan; starts nothing. */
export function prepare(spec: Spec, opts: PrepareOptions): Prepared {
  checkSupported(spec);
  const rootless = process.getuid!() !== 0;
  const namespaces = spec.linux?.namespaces ?? [];
  const userNs = namespaces.find((n) => n.type === "user");
  let userns: UsernsMaps | undefined;

  if (!userNs?.path && (userNs || rootless)) {
    const uidMaps = spec.linux?.uidMappings ?? [];
    const gidMaps = spec.linux?.gidMappings ?? [];
    if (uidMaps.length > 0 || gidMaps.length > 0) {
      if (uidMaps.length === 0 || gidMaps.length === 0) {
        throw new TinycError("linux.uidMappings and linux.gidMappings must both be given");
      }
      userns = rootless
        ? configMaps(caller(), uidMaps, gidMaps)
        : { uid: uidMaps, gid: gidMaps, how: "parent" };
    } else if (rootless) {
      userns = defaultMaps(caller());
    } else {
      throw new TinycError("a new user namespace needs linux.uidMappings and linux.gidMappings");
    }
  }

  const cgroup = opts.id
    ? chooseCgroup(spec, opts.id, rootless, !!opts.systemdCgroup, !!opts.noCgroups)
    : undefined;
  const ctx: PlanContext = {
    cgroup: cgroup !== undefined,
    bundle: opts.bundle,
    userns,
    rootless,
    fifo: opts.fifo,
    preserveFds: opts.preserveFds ?? 0,
    noPivot: opts.noPivot ?? false,
    console: opts.console,
    stdio: opts.stdio,
    dieWithParent: opts.dieWithParent,
    syncBeforePivot: opts.syncBeforePivot,
    syncBeforeExec: opts.syncBeforeExec,
  };
  const plan = buildPlan(spec, ctx);
  const overlay = overlayOf(spec);
  const fuse = plan.fuseSync === undefined || !overlay ? undefined : {
    overlay,
    rootfs: rootfsPath(spec, opts.bundle),
    sync: plan.fuseSync,
    userns: userns !== undefined || !!userNs,
  };
  return { plan, userns, rootless, cgroup, fuse };
}

/**
 * Limits need a cgroup, and fail without one. Without limits, a root container whose config
 * names a cgroupsPath (as containerd's and dockerd's do) gets that group, if it can be made;
 * otherwise none is made, since moving a process into a cgroup costs more than all the rest
 * of starting it.
 */
function chooseCgroup(spec: Spec, id: string, rootless: boolean, systemd: boolean, none: boolean) {
  const resources = spec.linux?.resources;
  const inUserns = rootless || (spec.linux?.namespaces ?? []).some((n) => n.type === "user");
  if (none && wantsLimits(resources, inUserns)) {
    // Asked for explicitly (crun's --cgroup-manager disabled): device rules alone are let go,
    // loudly; real limits cannot be.
    if (wantsLimits({ ...resources, devices: undefined }, inUserns)) {
      throw new TinycError("linux.resources: limits need a cgroup, and cgroups are disabled");
    }
    log("warn", "linux.resources.devices: not enforced, since cgroups are disabled");
    return undefined;
  }
  if (wantsLimits(resources, inUserns)) {
    const cg = planCgroup(id, spec.linux?.cgroupsPath, systemd);
    const devices = v2DeviceRules(cg, resources, inUserns);
    return { cg, writes: limitWrites(cg, resources!, inUserns), devices, required: true };
  }
  if (none || rootless || !spec.linux?.cgroupsPath) return undefined;
  const cg = planCgroup(id, spec.linux.cgroupsPath, systemd);
  return { cg, writes: [], required: false };
}

/** Makes the cgroup before the child exists; undefined when an optional one cannot be made. */
function makeCgroup(p: Prepared): Cgroup | undefined {
  if (!p.cgroup) return undefined;
  try {
    createCgroup(p.cgroup.cg, p.cgroup.writes, p.cgroup.devices);
    return p.cgroup.cg;
  } catch (e) {
    removeCgroup(p.cgroup.cg);
    if (p.cgroup.required) throw e;
    log("debug", `no cgroup: ${(e as Error).message}`);
    return undefined;
  }
}

export interface Started {
  pid: number;
  cgroup?: Cgroup;
  /** The child that must be reaped besides the container (the one that forked into a pid ns). */
  intermediate?: number;
}

/**
 * Starts the plan and waits until the child has exec'd, or, with a fifo, until it is ready and
 * waits for "start". Throws the child's failure as a TinycError.
 */
export async function launch(
  p: Prepared,
  onSync?: (pid: number, index: number) => Promise<void>,
): Promise<Started> {
  const bytes = encodePlan(p.plan);
  const cgroup = makeCgroup(p);
  let child: Child;
  try {
    child = spawnPlan(bytes);
  } catch (e) {
    if (cgroup) removeCgroup(cgroup);
    if (e instanceof NativeError) throw cloneError(e.errno, p.plan.cloneFlags);
    throw e;
  }
  log("debug", `child ${child.pid} started`);

  // Each wait-parent or sync step of the child consumes one "g"; the first waits for these.
  const helperMaps = p.userns && p.userns.how !== "self" && (p.plan.cloneFlags & CLONE.NEWUSER) !== 0n;
  if (p.cgroup || helperMaps) {
    try {
      if (cgroup) enterCgroup(cgroup, child.pid);
      if (helperMaps) await mapUserNamespace(child.pid, p.userns!);
    } catch (e) {
      release(child, false);
      closeChild(child);
      waitStatus(child.pid, false);
      if (cgroup) removeCgroup(cgroup);
      throw e;
    }
    release(child, true);
  }

  let pid = child.pid;
  let syncs = 0;
  try {
    for (;;) {
      const r = readReport(child.reportFd);
      if (r === null || r.kind === "ready") break;
      if (r.kind === "pid") {
        pid = r.pid;
      } else if (r.kind === "sync" && p.fuse && r.step === p.fuse.sync) {
        let mount: number;
        try {
          const { mountFuseOverlay } = await import("./fuse");
          mount = mountFuseOverlay(p.fuse, child.pid);
        } catch (e) {
          release(child, false);
          waitStatus(child.pid, false);
          if (cgroup) removeCgroup(cgroup);
          throw e;
        }
        // The first byte ends the sync step; the second, with the mount, is for attach-mount.
        try {
          release(child, true);
          releaseWithFd(child, mount);
        } finally {
          closeSync(mount);
        }
      } else if (r.kind === "sync") {
        try {
          await onSync?.(pid, syncs++);
        } catch (e) {
          release(child, false);
          waitStatus(child.pid, false);
          if (cgroup) removeCgroup(cgroup);
          throw e;
        }
        release(child, true);
      } else {
        waitStatus(child.pid, false);
        if (cgroup) removeCgroup(cgroup);
        throw stepError(p.plan, r.step, r.errno, r.path, r.status);
      }
    }
  } finally {
    closeSync(child.reportFd);
    closeChild(child);
  }
  return { pid, cgroup };
}

async function mapUserNamespace(pid: number, maps: UsernsMaps): Promise<void> {
  if (maps.how === "parent") {
    writeFileSync(`/proc/${pid}/uid_map`, mapText(maps.uid));
    writeFileSync(`/proc/${pid}/gid_map`, mapText(maps.gid));
    return;
  }
  // Both at once, started from the C library: quicker than the runtime's process machinery.
  const names = ["newuidmap", "newgidmap"];
  const { statuses, stderr } = runAll([
    [findHelper("newuidmap")!, ...helperArgs(pid, maps.uid)],
    [findHelper("newgidmap")!, ...helperArgs(pid, maps.gid)],
  ]);
  const failed = statuses.findIndex((st) => st !== 0);
  if (failed >= 0) {
    const lines = stderr.trim().split("\n");
    const said = lines.findLast((l) => l.startsWith(`${names[failed]}:`)) ?? lines.pop() ?? "";
    throw new TinycError(`${names[failed]} failed: ${said || statusText(statuses[failed])}`, {
      hint: "check the ranges in /etc/subuid and /etc/subgid",
    });
  }
}

/** "exit status N" or "signal S", for a wait status. */
function statusText(status: number): string {
  return (status & 0x7f) === 0 ? `exit status ${(status >> 8) & 0xff}` : `signal ${status & 0x7f}`;
}

/** One line that names the failing step, its path and the errno. */
export function stepError(
  plan: Plan,
  index: number,
  errno: number,
  path: string,
  status = 0,
): TinycError {
  const step = plan.steps[index];
  const opts = { errno, code: errnoName(errno), path };
  if (step?.op === "run" && errno === 10) {
    return new TinycError(`${path.split("/").pop()} failed (${statusText(status)})`, opts);
  }
  if (step?.op === "exec" || step?.op === "find-exec") {
    if (errno === 2) {
      return new TinycError(`exec: ${JSON.stringify(path)}: executable file not found in $PATH`, {
        ...opts,
        exitCode: EXIT.notFound,
      });
    }
    return new TinycError(`exec: ${JSON.stringify(path)}: ${strerror(errno)}`, {
      ...opts,
      exitCode: errno === 13 || errno === 8 ? EXIT.cannotExecute : EXIT.engine,
    });
  }
  if (step?.op === "wait-parent") {
    return new TinycError("container setup was cancelled", opts);
  }
  const what = step ? step.text : "container setup";
  const where = path && !step?.text.includes(path) ? `${JSON.stringify(path)}: ` : "";
  const why = step?.op === "write-file" && errno === 18 ? "not on procfs, refused" : strerror(errno);
  return new TinycError(`${what}: ${where}${why}`, { ...opts, hint: stepHint(step?.op, errno) });
}

function stepHint(op: string | undefined, errno: number): string | undefined {
  if (op === "mount" && errno === 1) {
    return "the kernel refused this mount in the user namespace";
  }
  if (op === "rlimit" && errno === 1) return "a hard limit cannot be raised without root";
  return undefined;
}

/** The kernel's refusal of a new user namespace, with the setting that causes it. */
function cloneError(errno: number, flags: bigint): TinycError {
  const userns = (flags & CLONE.NEWUSER) !== 0n;
  if (userns && (errno === 1 || errno === 28 || errno === 22 || errno === 13)) {
    return new TinycError(`cannot create a user namespace: ${strerror(errno)}`, {
      errno,
      hint: usernsHint(),
    });
  }
  return new TinycError(`clone: ${strerror(errno)}`, { errno });
}

export function usernsHint(): string {
  const read = (p: string) => {
    try {
      return readFileSync(p, "utf8").trim();
    } catch {
      return undefined;
    }
  };
  if (read("/proc/sys/kernel/unprivileged_userns_clone") === "0") {
    return "set the sysctl kernel.unprivileged_userns_clone=1";
  }
  if (read("/proc/sys/user/max_user_namespaces") === "0") {
    return "set the sysctl user.max_user_namespaces to a positive number";
  }
  if (read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") === "1") {
    return "AppArmor restricts unprivileged user namespaces: set the sysctl " +
      "kernel.apparmor_restrict_unprivileged_userns=0 or give tinyc an AppArmor profile";
  }
  return "the kernel or a security module refuses unprivileged user namespaces";
}
