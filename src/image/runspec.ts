// The OCI config of a container made from an image: the image's Entrypoint, Cmd, Env,
// WorkingDir, User and StopSignal, changed by the docker-style flags people type.

import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { TinycError } from "../errors";
import type { Mount, Spec } from "../oci/config";
import { defaultSpec } from "../oci/spec";
import { defaultSeccompProfile } from "../seccomp/default";
import type { ContainerConfig } from "./types";

export interface RunFlags {
  /** The command after the image reference, replacing Cmd. */
  args: string[];
  entrypoint?: string;
  env: string[];
  envFiles: string[];
  workdir?: string;
  user?: string;
  tty: boolean;
  readOnly: boolean;
  tmpfs: string[];
  volumes: string[];
  hostname?: string;
  network: "none" | "host" | "private";
  /** Host folders (the image layers, top first) to find /etc/passwd and /etc/group in. */
  lookup: string[];
  labels?: Record<string, string>;
  /** The command when neither the image nor the flags give one (else that is an error). */
  fallbackArgs?: string[];
}

const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Env in order, a later KEY replacing an earlier one in its place. */
export function mergeEnv(...lists: string[][]): string[] {
  const out: string[] = [];
  for (const e of lists.flat()) {
    const key = e.split("=")[0];
    const at = out.findIndex((x) => x.split("=")[0] === key);
    if (at >= 0) out[at] = e;
    else out.push(e);
  }
  return out;
}

/** KEY=VALUE lines of an --env-file; a bare KEY takes the caller's value, as docker does. */
export function readEnvFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new TinycError(`--env-file ${JSON.stringify(file)}: ${(e as NodeJS.ErrnoException).code}`);
  }
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    if (line.includes("=")) out.push(line);
    else if (process.env[line] !== undefined) out.push(`${line}=${process.env[line]}`);
  }
  return out;
}

/** The first of the layer folders (top first) that has PATH. */
function findInLayers(lookup: string[], path: string): string | undefined {
  for (const dir of lookup) {
    const p = join(dir, path);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function idFromFile(lookup: string[], file: string, name: string, field: number): number | undefined {
  const path = findInLayers(lookup, file);
  if (!path) return undefined;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name) return Number(f[field]);
  }
  return undefined;
}

/** "user", "uid", "user:group", "uid:gid" resolved against the image's /etc/passwd and /etc/group. */
export function resolveUser(text: string, lookup: string[]): { uid: number; gid: number } {
  const [u, g] = text.split(":");
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
  } else {
    const found = idFromFile(lookup, "etc/passwd", u, 2);
    if (found === undefined) throw new TinycError(`user ${JSON.stringify(u)} is not in the image's /etc/passwd`);
    uid = found;
    gid = idFromFile(lookup, "etc/passwd", u, 3);
  }
  if (g !== undefined && g !== "") {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      gid = idFromFile(lookup, "etc/group", g, 2);
      if (gid === undefined) throw new TinycError(`group ${JSON.stringify(g)} is not in the image's /etc/group`);
    }
  }
  if (gid === undefined) {
    // A numeric uid with an entry in /etc/passwd gets that entry's group, as docker does.
    const path = findInLayers(lookup, "etc/passwd");
    const line = path && readFileSync(path, "utf8").split("\n").find((l) => l.split(":")[2] === String(uid));
    gid = line ? Number(line.split(":")[3]) : 0;
  }
  return { uid, gid };
}

/** -v HOST:CTR[:ro|rw] as an rbind mount; the host path must exist. */
export function volumeMount(text: string): Mount {
  const parts = text.split(":");
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) {
    throw new TinycError(`-v ${JSON.stringify(text)}: expected HOST:CONTAINER[:ro]`);
  }
  const [host, ctr, mode] = parts;
  if (!isAbsolute(ctr)) throw new TinycError(`-v ${JSON.stringify(text)}: the container path must be absolute`);
  const source = resolve(host);
  if (!existsSync(source)) throw new TinycError(`-v ${JSON.stringify(text)}: ${JSON.stringify(source)} does not exist`);
  // docker's options: ro/rw, z/Z (SELinux relabelling: nothing to do without SELinux, which
  // tinyc does not support), and a propagation.
  const PROPAGATIONS = ["private", "rprivate", "shared", "rshared", "slave", "rslave"];
  const opts = mode === undefined || mode === "" ? [] : mode.split(",");
  let ro = false;
  let propagation = "rprivate";
  for (const o of opts) {
    if (o === "ro" || o === "rw") ro = o === "ro";
    else if (o === "z" || o === "Z") continue;
    else if (PROPAGATIONS.includes(o)) propagation = o;
    else throw new TinycError(`-v ${JSON.stringify(text)}: unknown mode ${JSON.stringify(o)}`);
  }
  const options = ["rbind", propagation, ...(ro ? ["ro"] : [])];
  statSync(source);
  return { destination: ctr, type: "bind", source, options };
}

/** --tmpfs PATH[:OPTIONS] as a tmpfs mount. */
export function tmpfsMount(text: string): Mount {
  const at = text.indexOf(":");
  const dest = at < 0 ? text : text.slice(0, at);
  const opts = at < 0 ? [] : text.slice(at + 1).split(",").filter(Boolean);
  if (!isAbsolute(dest)) throw new TinycError(`--tmpfs ${JSON.stringify(text)}: the path must be absolute`);
  return {
    destination: dest,
    type: "tmpfs",
    source: "tmpfs",
    options: opts.length ? opts : ["rw", "nosuid", "nodev", "noexec", "mode=1777"],
  };
}

export function specFromImage(image: ContainerConfig, rootfs: string, f: RunFlags): Spec {
  const rootless = process.getuid!() !== 0;
  const spec = defaultSpec({
    rootless: false,
    uid: process.getuid!(),
    gid: process.getgid!(),
    seccomp: defaultSeccompProfile(process.arch),
  });
  const proc = spec.process!;
  const entrypoint = f.entrypoint !== undefined ? (f.entrypoint ? [f.entrypoint] : []) : (image.Entrypoint ?? []);
  const cmd = f.args.length > 0 || f.entrypoint !== undefined ? f.args : (image.Cmd ?? []);
  proc.args = [...entrypoint, ...cmd];
  if (proc.args.length === 0 && f.fallbackArgs) proc.args = f.fallbackArgs;
  if (proc.args.length === 0) throw new TinycError("no command: the image has no Entrypoint or Cmd, and none was given");
  const envFiles = f.envFiles.flatMap(readEnvFile);
  // -e NAME without a value passes the caller's NAME on, or nothing when it has none.
  const flagEnv = f.env.flatMap((e) =>
    e.includes("=") ? [e] : process.env[e] !== undefined ? [`${e}=${process.env[e]}`] : [],
  );
  proc.env = mergeEnv([DEFAULT_PATH], image.Env ?? [], f.tty ? ["TERM=xterm"] : [], envFiles, flagEnv);
  proc.cwd = f.workdir ?? (image.WorkingDir || "/");
  if (!isAbsolute(proc.cwd)) throw new TinycError(`-w ${JSON.stringify(proc.cwd)}: must be absolute`);
  const user = f.user ?? image.User;
  proc.user = user ? resolveUser(user, f.lookup) : { uid: 0, gid: 0 };
  proc.terminal = f.tty;
  // Docker's default set: what images expect to be allowed as container root.
  const caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"];
  proc.capabilities = { bounding: caps, effective: caps, permitted: caps };
  proc.noNewPrivileges = false;
  spec.root = { path: rootfs, readonly: f.readOnly };
  spec.hostname = f.hostname ?? spec.hostname;
  if (f.labels) spec.annotations = { ...spec.annotations, ...f.labels };
  if (image.StopSignal) spec.annotations = { ...spec.annotations, "org.opencontainers.image.stopSignal": image.StopSignal };

  const linux = spec.linux!;
  if (f.network === "host") {
    linux.namespaces = (linux.namespaces ?? []).filter((n) => n.type !== "network");
  }
  // No cgroup limits are asked for; device rules are met by the nodes tinyc makes.
  delete linux.resources;
  if (rootless) {
    // sysfs of a network namespace that is not ours cannot be mounted: the host's, read-only.
    const sys = spec.mounts!.find((m) => m.destination === "/sys");
    if (sys && f.network === "host") {
      sys.type = "bind";
      sys.source = "/sys";
      sys.options = ["rbind", "nosuid", "noexec", "nodev", "ro"];
      // The bind brings the host's /sys/fs/cgroup along; on a cgroup v2 host a cgroup2 mount
      // there again would be the same mount on itself, which the kernel refuses (EBUSY).
      spec.mounts = spec.mounts!.filter((m) => m.destination !== "/sys/fs/cgroup");
    }
  }
  if (f.readOnly) {
    for (const dest of ["/tmp", "/var/tmp", "/run"]) {
      spec.mounts!.push({ destination: dest, type: "tmpfs", source: "tmpfs",
        options: ["rw", "nosuid", "nodev", "mode=1777", "tmpcopyup"] });
    }
  }
  spec.mounts!.push(...f.tmpfs.map(tmpfsMount), ...f.volumes.map(volumeMount));
  return spec;
}
