// Turns a validated config.json into the launch plan: every step the child runs inside the new
// namespaces, in order, with its strings already made. Nothing here touches the system except
// to look at the host (stat a mount source, read a setting), so a plan can be printed safely.

import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { F, PLAN, type Plan, type Step } from "../../ffi/plan";
import { TinycError } from "../errors";
import type { Mount, Process, Spec } from "../oci/config";
import { CAPABILITIES, RLIMITS, type Seccomp } from "../oci/config";
import { isMapped, mapText, type UsernsMaps } from "./idmap";
import {
  ATTR,
  MS,
  bindAttributes,
  describeFlags,
  describePropagation,
  parseMountOptions,
} from "./mountopts";
import { OVERLAY_ANNOTATION } from "./annotations";

export const CLONE = {
  NEWTIME: 0x80n,
  NEWNS: 0x20000n,
  NEWCGROUP: 0x2000000n,
  NEWUTS: 0x4000000n,
  NEWIPC: 0x8000000n,
  NEWUSER: 0x10000000n,
  NEWPID: 0x20000000n,
  NEWNET: 0x40000000n,
} as const;

const nsFlags: Record<string, bigint> = {
  time: CLONE.NEWTIME,
  mount: CLONE.NEWNS,
  cgroup: CLONE.NEWCGROUP,
  uts: CLONE.NEWUTS,
  ipc: CLONE.NEWIPC,
  user: CLONE.NEWUSER,
  pid: CLONE.NEWPID,
  network: CLONE.NEWNET,
};

/** The order namespaces are joined in: the user namespace first, for the rights it gives. */
// The mount namespace last: once in it, /proc is the container's, where the other
// namespaces' /proc/PID/ns paths (host pids) are not found.
const joinOrder = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"];

export interface PlanContext {
  bundle: string;
  /** Set when tinyc makes a user namespace and must map it. */
  userns?: UsernsMaps;
  /** True when tinyc runs without root on the host (in no user namespace of its own). */
  rootless: boolean;
  /** The fifo "start" writes to; absent for a run that starts at once. */
  fifo?: string;
  preserveFds: number;
  noPivot: boolean;
  /** The parent puts the child in a cgroup before it goes on. */
  cgroup?: boolean;
  /** The container is killed when tinyc ends (a foreground run). */
  dieWithParent?: boolean;
  /** fds of ours that become the container's stdin, stdout and stderr (a detached run). */
  stdio?: [number, number, number];
  /** Stop before the pivot (and before the exec) for the parent to run hooks. */
  syncBeforePivot?: boolean;
  syncBeforeExec?: boolean;
  /**
   * The socket the child sends its terminal over, when process.terminal is set; `joined` for
   * a process joining a running container, whose /dev/console is left as it is.
   */
  console?: { fd: number; joined?: boolean };
}

export { OVERLAY_ANNOTATION };
/** A private network's helper (runtime/network.ts); its tap device is made by the plan. */
export const NETWORK_ANNOTATION = "run.tinyc.network";
/** The container's interface on a private network. */
export const NETWORK_DEVICE = "eth0";

export interface Overlay {
  /** Layer folders, top first. */
  lower: string[];
  upper: string;
  work: string;
  /** Who serves it: the kernel (the default) or fuse-overlayfs, started by tinyc. */
  driver?: "overlay" | "fuse-overlayfs";
}

export function overlayOf(spec: Spec): Overlay | undefined {
  const text = spec.annotations?.[OVERLAY_ANNOTATION];
  if (!text) return undefined;
  let o: Overlay;
  try {
    o = JSON.parse(text);
  } catch {
    throw new TinycError(`annotations.${OVERLAY_ANNOTATION}: not JSON`);
  }
  const paths = [...(o.lower ?? []), o.upper, o.work];
  if (!Array.isArray(o.lower) || o.lower.length === 0 || paths.some((p) => typeof p !== "string" || !p.startsWith("/") || /[,:]/.test(p))) {
    throw new TinycError(`annotations.${OVERLAY_ANNOTATION}: lower, upper and work must be absolute paths without "," or ":"`);
  }
  if (o.driver !== undefined && o.driver !== "overlay" && o.driver !== "fuse-overlayfs") {
    const driver = JSON.stringify(o.driver);
    throw new TinycError(
      `annotations.${OVERLAY_ANNOTATION}: driver ${driver}: expected overlay or fuse-overlayfs`,
    );
  }
  return o;
}

/** The child writes its own maps (one id each, setgroups denied first, as the kernel wants). */
export function selfMapSteps(maps: UsernsMaps): Step[] {
  return [
    ["setgroups", "deny"],
    ["uid_map", mapText(maps.uid)],
    ["gid_map", mapText(maps.gid)],
  ].map(([name, content]) => ({
    op: "write-file",
    s1: `/proc/self/${name}`,
    s2: content,
    flags: F.procOnly,
    text: `write ${JSON.stringify(content.trim())} to /proc/self/${name}`,
  }));
}

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function rootfsPath(spec: Spec, bundle: string): string {
  const p = spec.root!.path;
  return isAbsolute(p) ? p : resolve(bundle, p);
}

/** A container's plan, and the step at which tinyc starts fuse-overlayfs for it, if it does. */
export interface ContainerPlan extends Plan {
  fuseSync?: number;
}

export function buildPlan(spec: Spec, ctx: PlanContext): ContainerPlan {
  const b = new Builder(spec, ctx);
  return b.build();
}

export interface ExecContext {
  /** The container's first process, whose namespaces are joined. */
  pid: number;
  /** Namespace types to join (those the container does not share with us). */
  join: string[];
  userns?: UsernsMaps;
  preserveFds: number;
  console?: { fd: number };
  /** The program, when it is not args[0] (a hook's path). */
  program?: string;
  /** fds of ours that become the process's stdin, stdout and stderr. */
  stdio?: [number, number, number];
  /** The container's filter, which every process in it gets. */
  seccomp?: Seccomp;
  /** The parent puts the process in the container's cgroup. */
  cgroup?: boolean;
}

/** The plan of `exec`: join the container's namespaces, then set up the process as run does. */
export function buildExecPlan(process: Process, ctx: ExecContext): Plan {
  const spec: Spec = {
    ociVersion: "1.1.0",
    process,
    root: { path: "/" },
    linux: {
      namespaces: ctx.join.map((type) => ({ type, path: `/proc/${ctx.pid}/ns/${nsFile[type]}` })),
      seccomp: ctx.seccomp,
    },
  } as Spec;
  const b = new Builder(spec, {
    bundle: "/",
    userns: ctx.userns,
    rootless: false,
    preserveFds: ctx.preserveFds,
    noPivot: false,
    console: ctx.console && { fd: ctx.console.fd, joined: true },
  });
  b.add({ op: "close-fds", a: ctx.preserveFds, text: closeText(ctx.preserveFds) });
  ctx.stdio?.forEach((fd, i) => b.add({ op: "dup2", a: fd, b: i, text: `fd ${fd} as fd ${i}` }));
  b.program = ctx.program;
  // Before joining: the container must never see a process of ours it could open or trace.
  b.add({ op: "non-dumpable", text: "make the process non-dumpable (no access to its /proc/PID/exe)" });
  b.joinNamespaces();
  if (ctx.cgroup) b.add({ op: "wait-parent", text: "wait to be put in the container's cgroup" });
  b.cwd(false);
  b.processSetup();
  return {
    cloneFlags: 0n,
    flags: ctx.join.includes("pid") ? PLAN.forkAfterSetns : 0,
    root: "/",
    steps: b.steps,
  };
}

const nsFile: Record<string, string> = {
  user: "user", ipc: "ipc", uts: "uts", network: "net", pid: "pid", mount: "mnt",
  cgroup: "cgroup", time: "time",
};

class Builder {
  steps: Step[] = [];
  created = new Set<string>();
  joined = new Map<string, string>();
  cloneFlags = 0n;
  rootfs: string;
  program?: string;
  beforeIds = 0;
  overlay?: Overlay;
  fuseSync?: number;

  constructor(
    private spec: Spec,
    private ctx: PlanContext,
  ) {
    this.rootfs = rootfsPath(spec, ctx.bundle);
    this.overlay = overlayOf(spec);
    for (const ns of spec.linux?.namespaces ?? []) {
      if (ns.path) this.joined.set(ns.type, ns.path);
      else this.created.add(ns.type);
    }
    if (ctx.userns && !this.joined.has("user")) this.created.add("user");
    for (const t of this.created) this.cloneFlags |= nsFlags[t];
  }

  add(step: Step): void {
    this.steps.push(step);
  }

  build(): ContainerPlan {
    this.checkNamespaces();
    this.add({ op: "close-fds", a: this.ctx.preserveFds, text: closeText(this.ctx.preserveFds) });
    this.ctx.stdio?.forEach((fd, i) => this.add({ op: "dup2", a: fd, b: i, text: `fd ${fd} as fd ${i}` }));
    this.joinNamespaces();
    this.mapUserNamespace();
    if (this.overlay?.driver === "fuse-overlayfs") {
      // Before the process closes itself (non-dumpable): fuse-overlayfs joins its user
      // namespace through /proc/PID/ns/user.
      this.fuseSync = this.steps.length;
      const userns = this.created.has("user") || this.joined.has("user");
      this.add({
        op: "sync",
        text: "wait for tinyc to start fuse-overlayfs" +
          (userns ? " in this user namespace (not in its pid namespace)" : ""),
      });
    }
    this.add({ op: "non-dumpable", text: "make the process non-dumpable (no access to its /proc/PID/exe)" });
    this.prepareRoot();
    this.mounts();
    this.devices();
    this.oomScoreAdj();
    if (this.ctx.fifo) this.add({ op: "open-fifo", s1: this.ctx.fifo, text: `open ${this.ctx.fifo}` });
    const helper = this.created.has("network") && !!this.spec.annotations?.[NETWORK_ANNOTATION];
    if (helper) {
      const text = `make ${NETWORK_DEVICE}, a tap device for the network helper`;
      this.add({ op: "tap-persist", s1: NETWORK_DEVICE, text });
    }
    if (this.ctx.syncBeforePivot) {
      const hooks = "the prestart, createRuntime and createContainer hooks";
      this.add({ op: "sync", text: `wait for ${helper ? `the network helper and any of ${hooks}` : hooks}` });
    }
    this.pivot();
    this.names();
    this.sysctls();
    this.protectPaths();
    this.cwd();
    this.finishRoot();
    this.processSetup();
    return {
      cloneFlags: this.cloneFlags,
      flags: 0,
      root: this.rootfs,
      steps: this.steps,
      fuseSync: this.fuseSync,
    };
  }

  checkNamespaces(): void {
    if (this.joined.has("user") && this.created.size > 0) {
      throw new TinycError(
        "joining a user namespace by path while creating other namespaces: not supported",
      );
    }
    if (!this.created.has("mount")) {
      throw new TinycError("linux.namespaces: a new mount namespace is required");
    }
    if (this.ctx.rootless && !this.created.has("user") && !this.joined.has("user")) {
      throw new TinycError("a user namespace is required without root");
    }
  }

  joinNamespaces(): void {
    for (const type of joinOrder) {
      const path = this.joined.get(type);
      if (!path) continue;
      this.add({ op: "setns", s1: path, a: nsFlags[type], text: `join ${type} namespace ${path}` });
    }
  }

  mapUserNamespace(): void {
    const maps = this.ctx.userns;
    const mapsHere = maps && this.created.has("user");
    if (this.ctx.cgroup && (!mapsHere || maps.how === "self")) {
      this.add({ op: "wait-parent", text: "wait to be put in the container's cgroup" });
    }
    if (!maps || !mapsHere) return;
    if (maps.how === "self") {
      this.steps.push(...selfMapSteps(maps));
    } else {
      const show = (m: typeof maps.uid) => m.map((x) => `${x.containerID}:${x.hostID}:${x.size}`);
      this.add({
        op: "wait-parent",
        text:
          (this.ctx.cgroup ? "wait for the cgroup, " : "wait for ") +
          `newuidmap ${show(maps.uid).join(" ")} and newgidmap ${show(maps.gid).join(" ")}`,
      });
    }
    this.add({ op: "setresid-root", text: "become root in the user namespace" });
  }

  prepareRoot(): void {
    if (!existsSync(this.rootfs)) {
      throw new TinycError(`root.path ${JSON.stringify(this.rootfs)}: no such directory`);
    }
    if (!statSync(this.rootfs).isDirectory()) {
      throw new TinycError(`root.path ${JSON.stringify(this.rootfs)}: not a directory`);
    }
    this.add({
      op: "propagation",
      s2: "/",
      a: MS.SLAVE | MS.REC,
      text: "make / rslave so nothing mounted here reaches the host",
    });
    const overlay = this.overlay;
    if (overlay?.driver === "fuse-overlayfs") {
      this.add({
        op: "attach-mount",
        s2: this.rootfs,
        text: `attach the mount fuse-overlayfs made on ${this.rootfs}: ` +
          `${overlay.lower.length} layers under ${overlay.upper}`,
      });
      return;
    }
    if (overlay) {
      // An image's layers under the container's own writable one; userxattr, since the
      // whiteouts and opaque marks of an unpacked layer are user.* attributes.
      const data = `lowerdir=${overlay.lower.join(":")},upperdir=${overlay.upper},` +
        `workdir=${overlay.work},userxattr`;
      if (data.length > 4000) {
        throw new TinycError(`the image has too many layers for one overlay mount (${overlay.lower.length})`);
      }
      this.add({
        op: "mount",
        s1: "overlay",
        s2: this.rootfs,
        s3: "overlay",
        s4: data,
        text: `mount overlay on ${this.rootfs}: ${overlay.lower.length} layers under ${overlay.upper}`,
      });
      return;
    }
    this.add({
      op: "mount",
      s1: this.rootfs,
      s2: this.rootfs,
      a: MS.BIND | MS.REC,
      text: `rbind ${this.rootfs} on itself`,
    });
  }

  mounts(): void {
    for (const [i, m] of (this.spec.mounts ?? []).entries()) this.mount(m, `mounts[${i}]`);
  }

  mount(m: Mount, where: string): void {
    const opts = parseMountOptions(m.options, m.type);
    if (opts.unsupported.length > 0) {
      throw new TinycError(`${where}: option ${JSON.stringify(opts.unsupported[0])} not supported`);
    }
    if (opts.tmpcopyup && (opts.bind || m.type !== "tmpfs")) {
      throw new TinycError(`${where}: tmpcopyup is only for tmpfs mounts`);
    }
    const dest = m.destination;
    const type = m.type ?? (opts.bind ? "bind" : undefined);

    if (opts.bind) {
      this.bind(m, opts.flags, opts.recursive, where);
    } else {
      this.newMount(m, type, opts.flags, opts.data, where);
      if (opts.tmpcopyup) {
        const step = this.steps[this.steps.length - 1];
        step.flags = (step.flags ?? 0) | F.copyUp;
        step.text += ", with what the folder held copied in";
      }
    }
    for (const p of opts.propagation) {
      this.add({
        op: "propagation",
        s2: dest,
        a: p,
        flags: F.inRoot,
        text: `make ${dest} ${describePropagation(p)}`,
      });
    }
  }

  bind(m: Mount, flags: number, recursive: boolean, where: string): void {
    if (!m.source) throw new TinycError(`${where}.source: missing for a bind mount`);
    const source = isAbsolute(m.source) ? m.source : resolve(this.ctx.bundle, m.source);
    let isDir: boolean;
    try {
      isDir = statSync(source).isDirectory();
    } catch {
      throw new TinycError(`${where}: bind source ${JSON.stringify(source)} does not exist`);
    }
    const attrs = bindAttributes(flags);
    const opts = describeFlags(flags & ~MS.REC);
    this.add({
      op: "mount",
      s1: source,
      s2: m.destination,
      a: MS.BIND | (recursive ? MS.REC : 0),
      b: attrs,
      flags: F.inRoot | (isDir ? F.mkdir : F.mkfile) | (recursive ? F.recursive : 0),
      text: `${recursive ? "rbind" : "bind"} ${source} on ${m.destination}${opts ? ` (${opts})` : ""}`,
    });
  }

  newMount(m: Mount, type: string | undefined, flags: number, data: string[], where: string) {
    if (!type) throw new TinycError(`${where}.type: missing`);
    const dest = m.destination;
    const userns = this.created.has("user") || this.joined.has("user");
    let fsType = type;
    let fallback: string | undefined;
    let strict = false;

    switch (type) {
      case "proc":
        strict = true;
        // A new procfs is only allowed with a pid namespace owned by our user namespace.
        if (userns && !this.created.has("pid")) return this.hostBind("/proc", dest, flags, where);
        break;
      case "sysfs":
        strict = true;
        // sysfs belongs to the network namespace; without a new one, show the host's read-only.
        if (userns && !this.created.has("network")) {
          return this.hostBind("/sys", dest, flags | MS.RDONLY, where);
        }
        fallback = "/sys";
        break;
      case "cgroup":
      case "cgroup2":
        fsType = "cgroup2";
        // A v1 host has one hierarchy per controller; showing the host's tree keeps it simple.
        if (!cgroup2Host() || !this.created.has("cgroup")) {
          return this.hostBind("/sys/fs/cgroup", dest, flags, where);
        }
        fallback = "/sys/fs/cgroup";
        break;
      case "mqueue":
        fallback = "/dev/mqueue";
        break;
      case "devpts":
        data = this.devptsData(data);
        break;
    }
    const text = [data.join(","), describeFlags(flags)].filter(Boolean).join(",");
    this.add({
      op: "mount",
      s1: m.source ?? type,
      s2: dest,
      s3: fsType,
      s4: data.length ? data.join(",") : undefined,
      a: flags,
      b: 0,
      c: fallback,
      flags:
        F.inRoot | F.mkdir | (strict ? F.noSymlinks : 0) | (fallback ? F.fallback | F.recursive : 0),
      text:
        `mount ${fsType} on ${dest}${text ? ` (${text})` : ""}` +
        (fallback ? `, or rbind ${fallback} if refused` : ""),
    });
    if (fallback) {
      // If the fallback was taken, its attributes come from the options.
      const attrs = bindAttributes(flags);
      if (attrs) this.steps[this.steps.length - 1].b = attrs;
    }
  }

  hostBind(source: string, dest: string, flags: number, where: string): void {
    const attrs = bindAttributes(flags) | ATTR.NOSUID | ATTR.NODEV | ATTR.NOEXEC;
    this.add({
      op: "mount",
      s1: source,
      s2: dest,
      a: MS.BIND | MS.REC,
      b: attrs,
      flags: F.inRoot | F.mkdir | F.noSymlinks | F.recursive,
      text: `rbind host ${source} on ${dest} (${describeFlags(flags | MS.NOSUID | MS.NODEV | MS.NOEXEC)}) for ${where}`,
    });
  }

  /** gid= names a host group through the mapping; drop it when that gid is not mapped. */
  devptsData(data: string[]): string[] {
    const maps = this.ctx.userns;
    if (!maps) return data;
    return data.filter((d) => {
      const m = /^gid=(\d+)$/.exec(d);
      return !m || isMapped(maps.gid, Number(m[1]));
    });
  }

  /**
   * The standard nodes, bound from the host (mknod is refused in a user namespace), their
   * links, and the config's own devices.
   */
  devices(): void {
    const userns = this.created.has("user") || this.joined.has("user");
    const mountsDev = (this.spec.mounts ?? []).some((m) => m.destination === "/dev");
    const wanted = (this.spec.linux?.devices ?? []).map((d) => d.path);
    const standard = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"];
    for (const path of standard) {
      if (!wanted.includes(path)) this.device(path, userns, 0o666, 0, 0);
    }
    for (const d of this.spec.linux?.devices ?? []) {
      this.device(d.path, userns, d.fileMode ?? 0o666, d.uid ?? 0, d.gid ?? 0, d);
    }
    if (!mountsDev) return;
    const links: [string, string][] = [
      ["/proc/self/fd", "/dev/fd"],
      ["/proc/self/fd/0", "/dev/stdin"],
      ["/proc/self/fd/1", "/dev/stdout"],
      ["/proc/self/fd/2", "/dev/stderr"],
    ];
    if ((this.spec.mounts ?? []).some((m) => m.destination === "/dev/pts")) {
      links.push(["pts/ptmx", "/dev/ptmx"]);
    }
    if (existsSync("/proc/kcore")) links.push(["/proc/kcore", "/dev/core"]);
    for (const [text, path] of links) {
      this.add({ op: "symlink", s1: text, s2: path, text: `link ${path} -> ${text}` });
    }
  }

  device(
    path: string,
    userns: boolean,
    mode: number,
    uid: number,
    gid: number,
    d?: { type: string; major?: number; minor?: number },
  ): void {
    if (userns || !d) {
      if (!existsSync(path)) {
        if (!d) return;
        throw new TinycError(
          `linux.devices: ${JSON.stringify(path)} does not exist on the host to bind`,
          { hint: "without root, devices are bound from the host, not created" },
        );
      }
      this.add({
        op: "mount",
        s1: path,
        s2: path,
        a: MS.BIND,
        b: 0,
        flags: F.inRoot | F.mkfile,
        text: `bind host ${path} on ${path}`,
      });
      return;
    }
    const kind = { c: 0o020000, u: 0o020000, b: 0o060000, p: 0o010000 }[d.type];
    if (kind === undefined) throw new TinycError(`linux.devices: type ${JSON.stringify(d.type)} unknown`);
    const major = d.major ?? 0;
    const minor = d.minor ?? 0;
    const dev = (BigInt(major & 0xfff) << 8n) | BigInt(minor & 0xff) |
      (BigInt(minor & ~0xff) << 12n) | (BigInt(major & ~0xfff) << 32n);
    this.add({
      op: "mknod",
      s2: path,
      a: kind | (mode & 0o7777),
      b: dev,
      c: (BigInt(uid) << 32n) | BigInt(gid),
      flags: F.inRoot,
      text: `mknod ${path} ${d.type} ${major}:${minor} mode ${(mode & 0o7777).toString(8)}`,
    });
  }

  oomScoreAdj(): void {
    const adj = this.spec.process?.oomScoreAdj;
    if (adj === undefined) return;
    let current: number | undefined;
    try {
      current = Number(readFileSync("/proc/self/oom_score_adj", "utf8").trim());
    } catch {
      // Written below all the same; the child reports what went wrong.
    }
    if (current === adj) return;
    this.add({
      op: "write-file",
      s1: "/proc/self/oom_score_adj",
      s2: String(adj),
      flags: F.procOnly,
      text: `set oom_score_adj ${adj}`,
    });
  }

  pivot(): void {
    this.add({
      op: "pivot-root",
      s1: this.rootfs,
      flags: this.ctx.noPivot ? F.noPivot : 0,
      text: this.ctx.noPivot ? `move ${this.rootfs} to / and chroot` : `pivot_root to ${this.rootfs}`,
    });
  }

  names(): void {
    const { hostname, domainname } = this.spec;
    const uts = this.created.has("uts") || this.joined.has("uts");
    if ((hostname || domainname) && !uts) {
      throw new TinycError("hostname: setting it needs a new uts namespace");
    }
    if (hostname && this.created.has("uts")) {
      this.add({ op: "sethostname", s1: hostname, text: `hostname ${hostname}` });
    }
    if (domainname && this.created.has("uts")) {
      this.add({ op: "setdomainname", s1: domainname, text: `domainname ${domainname}` });
    }
    if (this.created.has("network")) this.add({ op: "loopback-up", text: "bring up lo" });
  }

  sysctls(): void {
    for (const [key, value] of Object.entries(this.spec.linux?.sysctl ?? {})) {
      this.checkSysctl(key);
      const path = "/proc/sys/" + key.replaceAll(".", "/");
      this.add({
        op: "write-file",
        s1: path,
        s2: value,
        flags: F.procOnly,
        text: `sysctl ${key}=${value}`,
      });
    }
  }

  /** Only sysctls that belong to a namespace of the container may be set. */
  checkSysctl(key: string): void {
    const has = (t: string) => this.created.has(t) || this.joined.has(t);
    const ipc =
      ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"].includes(key) ||
      key.startsWith("fs.mqueue.");
    if (ipc && has("ipc")) return;
    if (key.startsWith("net.") && has("network")) return;
    if ((key === "kernel.hostname" || key === "kernel.domainname") && has("uts")) return;
    if (key.includes("/") || key.includes("..")) {
      throw new TinycError(`linux.sysctl: invalid name ${JSON.stringify(key)}`);
    }
    throw new TinycError(
      `linux.sysctl: ${JSON.stringify(key)} is not in a namespace of the container`,
    );
  }

  protectPaths(): void {
    for (const path of this.spec.linux?.readonlyPaths ?? []) {
      this.add({ op: "readonly-path", s2: path, flags: F.recursive, text: `read-only ${path}` });
    }
    for (const path of this.spec.linux?.maskedPaths ?? []) {
      this.add({ op: "mask-path", s2: path, text: `mask ${path}` });
    }
  }

  finishRoot(): void {
    const prop = this.spec.linux?.rootfsPropagation;
    if (prop) {
      const p = parseMountOptions([prop]).propagation[0];
      if (p === undefined) {
        throw new TinycError(`linux.rootfsPropagation: ${JSON.stringify(prop)} unknown`);
      }
      this.add({ op: "propagation", s2: "/", a: p, text: `make / ${prop}` });
    }
    if (this.spec.root?.readonly) {
      this.add({ op: "mount-attr", s2: "/", b: ATTR.RDONLY, text: "make / read-only" });
    }
  }

  seccomp(): Step | undefined {
    const profile = this.spec.linux?.seccomp;
    if (!profile) return undefined;
    // The compiler and its syscall tables load only when a profile is not in the cache.
    const { compiledSeccomp } = require("../seccomp/cache") as typeof import("../seccomp/cache");
    const { filter, flags } = compiledSeccomp(profile, process.arch);
    return {
      op: "seccomp",
      s1: filter,
      a: flags,
      text: `seccomp filter of ${filter.length / 8} instructions, default ${profile.defaultAction}`,
    };
  }

  /**
   * Before a read-only root is made, so a missing working folder can still be created; a
   * process joining a running container (exec) must find its folder there, as with runc.
   */
  cwd(create = true): void {
    const cwd = this.spec.process!.cwd;
    this.add({
      op: "chdir",
      s1: cwd,
      flags: F.inRoot | (create ? F.create : 0),
      text: create ? `chdir ${cwd} (created with mode 0755 if missing)` : `chdir ${cwd}`,
    });
  }

  processSetup(): void {
    const p = this.spec.process!;
    const userns = this.ctx.userns;
    const uid = p.user?.uid ?? 0;
    const gid = p.user?.gid ?? 0;
    const groups = p.user?.additionalGids ?? [];

    if (userns) {
      const spec = this.spec;
      if (!isMapped(userns.uid, uid)) throw unmapped("uid", uid, userns.uid, spec);
      if (!isMapped(userns.gid, gid)) throw unmapped("gid", gid, userns.gid, spec);
      for (const g of groups) if (!isMapped(userns.gid, g)) throw unmapped("gid", g, userns.gid, spec);
    }

    for (const rl of p.rlimits ?? []) {
      this.add({
        op: "rlimit",
        a: RLIMITS[rl.type],
        b: BigInt(rl.soft),
        c: BigInt(rl.hard),
        text: `rlimit ${rl.type} soft ${rl.soft} hard ${rl.hard}`,
      });
    }

    if (this.ctx.console) {
      this.add({
        op: "console",
        a: this.ctx.console.fd,
        b: consoleSize(p.consoleSize),
        flags: this.ctx.console.joined ? F.keepConsole : 0,
        text: this.ctx.console.joined
          ? "make a terminal from /dev/ptmx, send its master to tinyc, make it stdin/stdout/stderr"
          : "make a terminal from /dev/ptmx, send its master to tinyc, make it stdin/stdout/stderr and /dev/console",
      });
    }

    const caps = p.capabilities ?? {};
    const mask = (names?: string[]) =>
      (names ?? []).reduce((m, n) => m | (1n << BigInt(CAPABILITIES[n])), 0n);
    this.add({ op: "cap-bounding", a: mask(caps.bounding), text: `bounding set ${capText(caps.bounding)}` });

    this.beforeIds = this.steps.length;
    const setgroupsDenied = userns?.setgroupsDenied ?? userns?.how === "self";
    if (groups.length > 0 && setgroupsDenied) {
      throw new TinycError(
        "process.user.additionalGids: supplementary groups need a mapping made by newgidmap",
        { hint: "add a range for the user to /etc/subgid and install uidmap" },
      );
    }
    if (!setgroupsDenied) {
      const blob = new Uint8Array(4 * groups.length);
      const view = new DataView(blob.buffer);
      groups.forEach((g, i) => view.setUint32(4 * i, g, true));
      this.add({ op: "setgroups", s1: blob, text: `groups ${groups.join(",") || "(none)"}` });
    }
    this.add({ op: "setgid", a: gid, text: `gid ${gid}` });
    this.add({ op: "setuid", a: uid, text: `uid ${uid}` });
    this.add({
      op: "caps",
      a: mask(caps.effective),
      b: mask(caps.permitted),
      c: mask(caps.inheritable),
      d: mask(caps.ambient),
      text:
        `capabilities effective ${capText(caps.effective)}, permitted ${capText(caps.permitted)}, ` +
        `inheritable ${capText(caps.inheritable)}, ambient ${capText(caps.ambient)}`,
    });
    const seccomp = this.seccomp();
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the capabilities go.
    if (seccomp && !p.noNewPrivileges) this.steps.splice(this.beforeIds, 0, seccomp);
    const umask = p.user?.umask ?? 0o022;
    this.add({ op: "umask", a: umask, text: `umask ${umask.toString(8).padStart(4, "0")}` });
    if (p.noNewPrivileges) this.add({ op: "no-new-privs", text: "no new privileges" });

    const env = p.env ?? [];
    const pathVar = env.findLast((e) => e.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH;
    this.add({
      op: "find-exec",
      s1: p.args!,
      s3: pathVar,
      s4: this.program,
      text: this.program
        ? `check ${JSON.stringify(this.program)}`
        : `find ${JSON.stringify(p.args![0])} in ${pathVar}`,
    });
    if (this.ctx.fifo) {
      // Without root, `start` can only join a dumpable process to run startContainer hooks in
      // it; the window is the wait for start, and only when such hooks exist.
      const open = this.ctx.rootless && (this.spec.hooks?.startContainer?.length ?? 0) > 0;
      this.add({
        op: "ready",
        flags: open ? F.dumpableWait : 0,
        text: open ? "wait for start (dumpable, for the startContainer hooks)" : "wait for start",
      });
    }
    if (this.ctx.syncBeforeExec) this.add({ op: "sync", text: "wait for the startContainer hooks" });
    // A foreground run's container ends with tinyc, even when tinyc is killed outright. Set
    // last: a change of credentials clears it.
    if (this.ctx.dieWithParent) {
      this.add({ op: "pdeathsig", a: 9, text: "SIGKILL when tinyc ends" });
    }
    // With no_new_privs, as late as possible: the filter then only has to allow execve.
    if (seccomp && p.noNewPrivileges) this.add(seccomp);
    this.add({
      op: "exec",
      s1: p.args!,
      s2: env,
      s3: pathVar,
      text: `exec ${JSON.stringify(p.args)} env ${JSON.stringify(env)}`,
    });
  }
}

function closeText(preserve: number): string {
  return preserve > 0
    ? `close every fd above ${2 + preserve} at exec`
    : "close every fd above 2 at exec";
}

function capText(names?: string[]): string {
  return names && names.length > 0 ? names.join(",") : "(none)";
}

function unmapped(kind: string, id: number, maps: { containerID: number; size: number }[], spec: Spec) {
  const ranges = maps.map((m) => `${m.containerID}-${m.containerID + m.size - 1}`).join(", ");
  const fromConfig = (spec.linux?.uidMappings?.length ?? 0) > 0;
  const single = maps.length === 1 && maps[0].size === 1;
  const hint = fromConfig
    ? "the config's linux.uidMappings and gidMappings map only these; without them tinyc maps the subordinate range"
    : single
      ? "add a range for the user to /etc/subuid and /etc/subgid and install uidmap"
      : "the user's subordinate range is not that large";
  return new TinycError(
    `process.user: ${kind} ${id} has no mapping in the user namespace (mapped: ${ranges})`,
    { hint },
  );
}

let cgroup2: boolean | undefined;
function cgroup2Host(): boolean {
  cgroup2 ??= existsSync("/sys/fs/cgroup/cgroup.controllers");
  return cgroup2;
}

/** process.consoleSize for the console step: rows in the high 16 bits, columns in the low. */
function consoleSize(size: { height: number; width: number } | undefined): number {
  if (!size || size.height === 0 || size.width === 0) return 0;
  return (Math.min(size.height, 0xffff) * 0x10000) + Math.min(size.width, 0xffff);
}
