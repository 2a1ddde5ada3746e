// cgroups: a container's limits (linux.resources) and the group that holds its processes, on
// cgroup v2 (one unified tree) or v1 (one tree per controller). A limit that cannot be applied
// is an error that says why; none is passed over.

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TinycError } from "../errors";
import { log } from "../log";
import type { DeviceRule, Resources } from "../oci/config";
import { attachDeviceFilter } from "../../ffi/spawn";
import { deviceFilter } from "./devicefilter";

const ROOT = "/sys/fs/cgroup";

export type Mode = "v2" | "v1";

export function cgroupMode(): Mode {
  return existsSync(join(ROOT, "cgroup.controllers")) ? "v2" : "v1";
}

/** Where a container's group lives: one folder (v2) or one per controller (v1). */
export interface Cgroup {
  mode: Mode;
  /** The path below the cgroup root, e.g. "/tinyc/ID". */
  path: string;
  /** v2: the one folder; v1: controller -> folder. */
  dirs: Record<string, string>;
}

type Write = [controller: string, file: string, value: string];

const V1_CONTROLLERS = ["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices",
  "freezer", "hugetlb"];

/** A value that sets something: 0, false, "" and empty lists mean "not set", as runc reads them. */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === 0 || v === false || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.values(v as object).some(isSet);
  return true;
}

/** The resources that need a group at all. */
export function wantsLimits(r: Resources | undefined, rootless: boolean): boolean {
  if (!r) return false;
  return Object.entries(r).some(([k, v]) => {
    if (k === "devices") return !rootless && deviceRulesRestrict(v as DeviceRule[]);
    return isSet(v);
  });
}

function deviceRulesRestrict(rules: DeviceRule[] | undefined): boolean {
  return (rules ?? []).some((r) => !r.allow);
}

/** The group of this process on v2, e.g. "/user.slice/user-1000.slice/session-1.scope". */
function ownV2Group(): string {
  const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => l.startsWith("0::"));
  return line ? line.slice(3) : "/";
}

/**
 * The group a container gets. cgroupsPath is used as runc uses it (relative to the cgroup
 * root); without one, root containers go in /tinyc/ID, and rootless ones in a tinyc group
 * beside the caller's own, which a delegated systemd user session lets it make.
 */
export function planCgroup(id: string, cgroupsPath: string | undefined, systemd: boolean): Cgroup {
  const mode = cgroupMode();
  if (systemd && cgroupsPath && /^[^/:]*:[^:]*:[^:]*$/.test(cgroupsPath)) {
    throw new TinycError(
      `linux.cgroupsPath ${JSON.stringify(cgroupsPath)}: the systemd cgroup driver is not supported`,
      { hint: "give a path such as /tinyc/ID, or leave out --systemd-cgroup" },
    );
  }
  let path = cgroupsPath && cgroupsPath.startsWith("/") ? cgroupsPath : undefined;
  if (!path) {
    const rel = cgroupsPath ?? id;
    if (process.getuid!() === 0) path = `/tinyc/${rel}`;
    else if (mode === "v2") path = join(ownV2Group(), "..", `tinyc-${rel}`);
    else path = `/tinyc/${rel}`;
  }
  if (path.split("/").includes("..")) {
    throw new TinycError(`linux.cgroupsPath ${JSON.stringify(cgroupsPath)}: ".." is not allowed`);
  }
  const dirs: Record<string, string> =
    mode === "v2"
      ? { unified: join(ROOT, path) }
      : Object.fromEntries(
          V1_CONTROLLERS.filter((c) => existsSync(join(ROOT, c))).map((c) => [c, join(ROOT, c, path!)]),
        );
  return { mode, path, dirs };
}

/** The file writes that apply the resources, checked before anything is made. */
export function limitWrites(cg: Cgroup, r: Resources, rootless: boolean): Write[] {
  return cg.mode === "v2" ? v2Writes(r, rootless) : v1Writes(cg, r, rootless);
}

function unsupported(field: string, why: string): never {
  throw new TinycError(`linux.resources.${field}: not supported (${why})`);
}

function v1Writes(cg: Cgroup, r: Resources, rootless: boolean): Write[] {
  const w: Write[] = [];
  const m = r.memory ?? {};
  if (m.limit) w.push(["memory", "memory.limit_in_bytes", String(m.limit)]);
  if (m.reservation) {
    w.push(["memory", "memory.soft_limit_in_bytes", String(m.reservation)]);
  }
  if (m.swap) {
    if (!existsSync(join(cg.dirs.memory ?? "", "..", "memory.memsw.limit_in_bytes"))) {
      unsupported("memory.swap", "this kernel has no swap accounting");
    }
    w.push(["memory", "memory.memsw.limit_in_bytes", String(m.swap)]);
  }
  if (m.swappiness !== undefined) w.push(["memory", "memory.swappiness", String(m.swappiness)]);
  if (m.disableOOMKiller) w.push(["memory", "memory.oom_control", "1"]);
  if (m.kernel || m.kernelTCP) {
    unsupported("memory.kernel", "kernel memory limits are gone from current kernels");
  }
  const c = r.cpu ?? {};
  if (c.shares) w.push(["cpu", "cpu.shares", String(c.shares)]);
  if (c.period) w.push(["cpu", "cpu.cfs_period_us", String(c.period)]);
  if (c.quota) w.push(["cpu", "cpu.cfs_quota_us", String(c.quota)]);
  if (c.cpus) w.push(["cpuset", "cpuset.cpus", c.cpus]);
  if (c.mems) w.push(["cpuset", "cpuset.mems", c.mems]);
  if (c.realtimeRuntime || c.realtimePeriod) {
    unsupported("cpu.realtimeRuntime", "real-time scheduling groups");
  }
  if (c.burst || c.idle) unsupported("cpu.burst", "cgroup v1");
  if (r.pids?.limit) {
    w.push(["pids", "pids.max", r.pids.limit > 0 ? String(r.pids.limit) : "max"]);
  }
  w.push(...blockIOWrites(r.blockIO, "v1"));
  for (const h of r.hugepageLimits ?? []) {
    w.push(["hugetlb", `hugetlb.${h.pageSize}.limit_in_bytes`, String(h.limit)]);
  }
  if (!rootless && deviceRulesRestrict(r.devices)) {
    w.push(...v1DeviceWrites([...r.devices!, ...STANDARD_DEVICES]));
  }
  if (r.network && Object.keys(r.network).length) unsupported("network", "net_cls and net_prio");
  if (r.rdma && Object.keys(r.rdma).length) unsupported("rdma", "the rdma controller");
  if (r.unified && Object.keys(r.unified).length) unsupported("unified", "this host has cgroup v1");
  return w;
}

/** The nodes every container gets (tinyc makes them), allowed after the config's own rules. */
const STANDARD_DEVICES: DeviceRule[] = [
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // null
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }, // zero
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" }, // full
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" }, // random
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" }, // urandom
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" }, // tty
  { allow: true, type: "c", major: 5, minor: 1, access: "rwm" }, // console
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" }, // ptmx
  { allow: true, type: "c", major: 136, access: "rwm" }, // the pts of devpts
];

function v1DeviceWrites(rules: DeviceRule[]): Write[] {
  return rules.map((d) => {
    const rule = `${d.type ?? "a"} ${d.major ?? "*"}:${d.minor ?? "*"} ${d.access ?? "rwm"}`;
    return ["devices", d.allow ? "devices.allow" : "devices.deny", d.type === "a" || !d.type ? "a" : rule] as Write;
  });
}

function blockIOWrites(b: Record<string, unknown> | undefined, mode: Mode): Write[] {
  if (!b) return [];
  const w: Write[] = [];
  const weight = b.weight as number | undefined;
  if (weight) {
    w.push(mode === "v1" ? ["blkio", "blkio.bfq.weight", String(weight)]
      : ["unified", "io.weight", String(Math.round(1 + ((weight - 10) * 9999) / 990))]);
  }
  if (b.leafWeight || isSet(b.weightDevice)) {
    unsupported("blockIO.weightDevice", "per-device weights");
  }
  const throttles: [string, string, string][] = [
    ["throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"],
    ["throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"],
    ["throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"],
    ["throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"],
  ];
  for (const [key, v1file, v2key] of throttles) {
    for (const d of (b[key] as { major: number; minor: number; rate: number }[] | undefined) ?? []) {
      w.push(mode === "v1" ? ["blkio", v1file, `${d.major}:${d.minor} ${d.rate}`]
        : ["unified", "io.max", `${d.major}:${d.minor} ${v2key}=${d.rate}`]);
    }
  }
  return w;
}

function v2Writes(r: Resources, rootless: boolean): Write[] {
  const w: Write[] = [];
  const m = r.memory ?? {};
  if (m.limit) w.push(["unified", "memory.max", m.limit > 0 ? String(m.limit) : "max"]);
  if (m.reservation) w.push(["unified", "memory.low", String(m.reservation)]);
  if (m.swap) {
    // The OCI value is memory + swap, cgroup v2's is swap alone.
    const swap = m.swap < 0 ? "max" : String(Math.max(0, m.swap - (m.limit ?? 0)));
    w.push(["unified", "memory.swap.max", swap]);
  }
  if (m.disableOOMKiller) unsupported("memory.disableOOMKiller", "cgroup v2 has no such switch");
  if (m.kernel || m.kernelTCP) {
    unsupported("memory.kernel", "kernel memory limits are gone from current kernels");
  }
  const c = r.cpu ?? {};
  if (c.shares) {
    w.push(["unified", "cpu.weight", String(Math.round(1 + ((c.shares - 2) * 9999) / 262142))]);
  }
  if (c.quota || c.period) {
    const quota = c.quota !== undefined && c.quota > 0 ? String(c.quota) : "max";
    w.push(["unified", "cpu.max", `${quota} ${c.period ?? 100000}`]);
  }
  if (c.burst) w.push(["unified", "cpu.max.burst", String(c.burst)]);
  if (c.idle) w.push(["unified", "cpu.idle", String(c.idle)]);
  if (c.cpus) w.push(["unified", "cpuset.cpus", c.cpus]);
  if (c.mems) w.push(["unified", "cpuset.mems", c.mems]);
  if (c.realtimeRuntime || c.realtimePeriod) {
    unsupported("cpu.realtimeRuntime", "real-time scheduling groups");
  }
  if (r.pids?.limit) {
    w.push(["unified", "pids.max", r.pids.limit > 0 ? String(r.pids.limit) : "max"]);
  }
  w.push(...blockIOWrites(r.blockIO, "v2"));
  for (const h of r.hugepageLimits ?? []) {
    w.push(["unified", `hugetlb.${h.pageSize}.max`, String(h.limit)]);
  }
  if (r.network && Object.keys(r.network).length) unsupported("network", "net_cls and net_prio");
  for (const [file, value] of Object.entries(r.unified ?? {})) {
    if (file.includes("/") || file.startsWith(".")) {
      throw new TinycError(`linux.resources.unified: invalid file name ${JSON.stringify(file)}`);
    }
    w.push(["unified", file, value]);
  }
  return w;
}

function controllerOf(file: string): string {
  return file.split(".")[0];
}

/**
 * The device rules cgroup v2 enforces with an eBPF program: the config's, then the standard
 * nodes. None without root: in a user namespace no device node can be made or opened anew.
 */
export function v2DeviceRules(cg: Cgroup, r: Resources | undefined, rootless: boolean) {
  if (cg.mode !== "v2" || rootless || !deviceRulesRestrict(r?.devices)) return undefined;
  return [...r!.devices!, ...STANDARD_DEVICES];
}

/** Makes the group, turning on the v2 controllers its limits need in every parent. */
export function createCgroup(cg: Cgroup, writes: Write[], devices?: DeviceRule[]): void {
  try {
    if (cg.mode === "v2") {
      const needed = [...new Set(writes.map(([, f]) => controllerOf(f)))].filter(
        (c) => !["cgroup"].includes(c),
      );
      enableControllers(cg.path, needed);
      mkdirSync(cg.dirs.unified, { recursive: true });
    } else {
      for (const [ctrl, dir] of Object.entries(cg.dirs)) {
        mkdirSync(dir, { recursive: true });
        if (ctrl === "cpuset") inheritCpuset(dir);
      }
    }
  } catch (e) {
    throw noCgroup(cg, e);
  }
  if (devices) {
    try {
      attachDeviceFilter(cg.dirs.unified, deviceFilter(devices));
    } catch (e) {
      throw new TinycError(`linux.resources.devices: ${(e as Error).message}`);
    }
  }
  for (const [ctrl, file, value] of writes) {
    const dir = cg.mode === "v2" ? cg.dirs.unified : cg.dirs[ctrl];
    if (!dir) throw new TinycError(`cgroup controller ${JSON.stringify(ctrl)} is not mounted`);
    try {
      writeFileSync(join(dir, file), value);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new TinycError(
        `cgroup: write ${JSON.stringify(value)} to ${join(dir, file)}: ${code ?? String(e)}`,
      );
    }
  }
}

function noCgroup(cg: Cgroup, e: unknown): TinycError {
  const code = (e as NodeJS.ErrnoException).code;
  const why =
    process.getuid!() !== 0 && cg.mode === "v1"
      ? "cgroup v1 cannot be delegated to a user"
      : process.getuid!() !== 0
        ? "the user has no delegated cgroup (a systemd user session with Delegate=yes gives one)"
        : `${(e as Error).message ?? code}`;
  return new TinycError(`linux.resources: no writable cgroup at ${JSON.stringify(cg.path)}: ${why}`);
}

/**
 * v1 cpuset groups start with no cpus and no memory nodes, and a child may only have what its
 * parent has: each level from the top down takes its parent's.
 */
function inheritCpuset(dir: string): void {
  const top = join(ROOT, "cpuset");
  const parts = dir.slice(top.length).split("/").filter(Boolean);
  let parent = top;
  for (const part of parts) {
    const here = join(parent, part);
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      if (readFileSync(join(here, file), "utf8").trim()) continue;
      writeFileSync(join(here, file), readFileSync(join(parent, file), "utf8").trim());
    }
    parent = here;
  }
}

function enableControllers(path: string, controllers: string[]): void {
  if (controllers.length === 0) return;
  const parts = path.split("/").filter(Boolean);
  let dir = ROOT;
  for (const part of parts) {
    const available = readFileSync(join(dir, "cgroup.controllers"), "utf8").trim().split(/\s+/);
    const missing = controllers.filter((c) => !available.includes(c));
    if (missing.length) {
      throw new TinycError(
        `linux.resources: the cgroup controller ${JSON.stringify(missing[0])} is not available in ${dir}`,
      );
    }
    writeFileSync(join(dir, "cgroup.subtree_control"), controllers.map((c) => `+${c}`).join(" "));
    dir = join(dir, part);
    mkdirSync(dir, { recursive: true });
  }
}

/** Moves PID into the group. */
export function enterCgroup(cg: Cgroup, pid: number): void {
  for (const dir of Object.values(cg.dirs)) {
    try {
      writeFileSync(join(dir, "cgroup.procs"), String(pid));
    } catch (e) {
      throw new TinycError(`cgroup: add pid ${pid} to ${dir}: ${(e as NodeJS.ErrnoException).code}`);
    }
  }
}

/** The pids in the group, or undefined when it is gone. */
export function cgroupPids(cg: Cgroup): number[] | undefined {
  const dir = cg.mode === "v2" ? cg.dirs.unified : (cg.dirs.pids ?? cg.dirs.memory ?? Object.values(cg.dirs)[0]);
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return undefined;
  }
}

export function freeze(cg: Cgroup, frozen: boolean): void {
  const [file, value] =
    cg.mode === "v2"
      ? [join(cg.dirs.unified, "cgroup.freeze"), frozen ? "1" : "0"]
      : [join(cg.dirs.freezer ?? "", "freezer.state"), frozen ? "FROZEN" : "THAWED"];
  if (cg.mode === "v1" && !cg.dirs.freezer) throw new TinycError("the cgroup freezer is not mounted");
  writeFileSync(file, value);
}

export function isFrozen(cg: Cgroup): boolean {
  try {
    if (cg.mode === "v2") return readFileSync(join(cg.dirs.unified, "cgroup.freeze"), "utf8").trim() === "1";
    return readFileSync(join(cg.dirs.freezer, "freezer.state"), "utf8").trim() !== "THAWED";
  } catch {
    return false;
  }
}

/** Removes the group's folders once no process is left in them. */
export function removeCgroup(cg: Cgroup): void {
  for (const dir of Object.values(cg.dirs)) {
    try {
      rmdirSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") log("warn", `cgroup: remove ${dir}: ${code}`);
    }
  }
}
