// The config.json that `tinyc spec` writes. It has the shape of runc's (libcontainer/specconv
// Example and ToRootless), key order included, so that tools which edit runc's template find
// every field where they expect it.

import { existsSync } from "node:fs";
import type { Mount, Namespace, Seccomp, Spec } from "./config";

export interface DefaultSpecOptions {
  rootless: boolean;
  /** The host ids that container root maps to when rootless. */
  uid: number;
  gid: number;
  args?: string[];
  terminal?: boolean;
  /** The seccomp profile to include (the caller's default profile). */
  seccomp?: Seccomp;
  /** Adds a cgroup namespace; by default only on a cgroup v2 host, as runc does. */
  cgroupNamespace?: boolean;
}

export const OCI_VERSION = "1.1.0";

const DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

const MASKED_PATHS = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/sys/firmware",
  "/proc/scsi",
  "/sys/devices/virtual/tpm",
];

const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export function defaultSpec(opts: DefaultSpecOptions): Spec {
  const spec = exampleSpec(opts);
  if (opts.rootless) toRootless(spec, opts.uid, opts.gid);
  // Unlike runc's template, a seccomp profile like Docker's default is part of it.
  if (opts.seccomp) spec.linux!.seccomp = opts.seccomp;
  return spec;
}

/** The spec as runc writes it: tab indents. A final newline is added, which runc omits. */
export function stringifySpec(spec: Spec): string {
  return JSON.stringify(spec, null, "\t") + "\n";
}

function exampleSpec(opts: DefaultSpecOptions): Spec {
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: opts.terminal ?? true,
      user: { uid: 0, gid: 0 },
      args: opts.args ?? ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      capabilities: {
        bounding: [...DEFAULT_CAPS],
        effective: [...DEFAULT_CAPS],
        permitted: [...DEFAULT_CAPS],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "tinyc",
    mounts: defaultMounts(),
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: defaultNamespaces(opts.cgroupNamespace ?? isCgroup2()),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}

function defaultMounts(): Mount[] {
  const noSuidExecDev = ["nosuid", "noexec", "nodev"];
  return [
    { destination: "/proc", type: "proc", source: "proc" },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: [...noSuidExecDev, "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: [...noSuidExecDev] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: [...noSuidExecDev, "ro"] },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: [...noSuidExecDev, "relatime", "ro"],
    },
  ];
}

function defaultNamespaces(cgroup: boolean): Namespace[] {
  const list: Namespace[] = [{ type: "pid" }, { type: "network" }, { type: "ipc" }];
  list.push({ type: "uts" }, { type: "mount" });
  if (cgroup) list.push({ type: "cgroup" });
  return list;
}

// runc calls a host cgroup v2 when /sys/fs/cgroup is a cgroup2 mount; cgroup.controllers
// exists only at the root of such a mount.
function isCgroup2(): boolean {
  return existsSync("/sys/fs/cgroup/cgroup.controllers");
}

// What `runc spec --rootless` changes: a user namespace, and no network namespace, so the
// container shares the host's network (an unprivileged user cannot connect a new one to
// anything); root mapped to the caller; /sys bound from the host, because the kernel lets
// only the owner of the current network namespace mount sysfs; no uid=/gid= mount options,
// since gid 5 is not mapped; and no cgroup limits, which need a delegated cgroup.
function toRootless(spec: Spec, uid: number, gid: number): void {
  const linux = spec.linux!;
  const kept = (linux.namespaces ?? []).filter((ns) => ns.type !== "network" && ns.type !== "user");
  // Rebuilt rather than edited so that the mappings come first, in runc's key order.
  spec.linux = {
    uidMappings: [{ containerID: 0, hostID: uid, size: 1 }],
    gidMappings: [{ containerID: 0, hostID: gid, size: 1 }],
    ...linux,
    namespaces: [...kept, { type: "user" }],
  };
  delete spec.linux.resources;
  spec.mounts = (spec.mounts ?? []).map(rootlessMount);
}

function rootlessMount(mount: Mount): Mount {
  if (mount.destination.replace(/\/+$/, "") === "/sys") {
    return {
      destination: "/sys",
      type: "none",
      source: "/sys",
      options: ["rbind", "nosuid", "noexec", "nodev", "ro"],
    };
  }
  const options = mount.options?.filter((o) => !o.startsWith("uid=") && !o.startsWith("gid="));
  const { options: _, ...rest } = mount;
  return options && options.length > 0 ? { ...rest, options } : rest;
}
