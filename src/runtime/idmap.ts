// Choosing the user namespace's id mappings for a rootless container.

import { existsSync, readFileSync } from "node:fs";
import type { IdMapping } from "../oci/config";
import { TinycError } from "../errors";

export interface Range {
  start: number;
  count: number;
}

/** The ranges /etc/subuid (or /etc/subgid) gives the user, by name or by uid. */
export function subordinateRanges(file: string, name: string, id: number): Range[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const ranges: Range[] = [];
  for (const line of text.split("\n")) {
    const [who, start, count] = line.trim().split(":");
    if (who !== name && who !== String(id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isInteger(s) && Number.isInteger(c) && c > 0) ranges.push({ start: s, count: c });
  }
  return ranges;
}

const helperDirs = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

export function findHelper(name: string): string | undefined {
  for (const dir of helperDirs) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  return undefined;
}

export interface UsernsMaps {
  uid: IdMapping[];
  gid: IdMapping[];
  /** Written by the child itself (one id each, setgroups denied) or by newuidmap/newgidmap. */
  how: "self" | "helpers" | "parent";
  /** Known from /proc/PID/setgroups when joining a container's user namespace. */
  setgroupsDenied?: boolean;
}

export interface Caller {
  uid: number;
  gid: number;
  name: string;
}

/** The name /etc/passwd gives UID; /etc/subuid may name the user either way. */
function userName(uid: number): string | undefined {
  let text = "";
  try {
    text = readFileSync("/etc/passwd", "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length > 3 && f[2] === String(uid)) return f[0];
  }
  return undefined;
}

export function caller(): Caller {
  const uid = process.getuid!();
  const gid = process.getgid!();
  return { uid, gid, name: userName(uid) ?? String(uid) };
}

function single(containerID: number, hostID: number): IdMapping[] {
  return [{ containerID, hostID, size: 1 }];
}

/** Container root is the caller; the subordinate ranges (if any) follow from container id 1. */
export function defaultMaps(who: Caller): UsernsMaps {
  const subuid = subordinateRanges("/etc/subuid", who.name, who.uid);
  const subgid = subordinateRanges("/etc/subgid", who.name, who.uid);
  const helpers = findHelper("newuidmap") && findHelper("newgidmap");
  if (!helpers || subuid.length === 0 || subgid.length === 0) {
    return { uid: single(0, who.uid), gid: single(0, who.gid), how: "self" };
  }
  const spread = (first: number, ranges: Range[]) => {
    const out = [{ containerID: 0, hostID: first, size: 1 }];
    let next = 1;
    for (const r of ranges) {
      out.push({ containerID: next, hostID: r.start, size: r.count });
      next += r.count;
    }
    return out;
  };
  return { uid: spread(who.uid, subuid), gid: spread(who.gid, subgid), how: "helpers" };
}

/**
 * Mappings a config asks for, checked against what the caller owns: its own id, or ids inside
 * its subordinate ranges. One mapping of the caller's own id needs no helper.
 */
export function configMaps(who: Caller, uid: IdMapping[], gid: IdMapping[]): UsernsMaps {
  const isSelf = (m: IdMapping[], own: number) =>
    m.length === 1 && m[0].size === 1 && m[0].hostID === own;
  if (isSelf(uid, who.uid) && isSelf(gid, who.gid)) return { uid, gid, how: "self" };

  checkOwned("uid", uid, who.uid, subordinateRanges("/etc/subuid", who.name, who.uid), who);
  checkOwned("gid", gid, who.gid, subordinateRanges("/etc/subgid", who.name, who.uid), who);
  if (!findHelper("newuidmap") || !findHelper("newgidmap")) {
    throw new TinycError("mapping more than the caller's own id needs newuidmap and newgidmap", {
      hint: "install the uidmap package",
    });
  }
  return { uid, gid, how: "helpers" };
}

function checkOwned(kind: string, maps: IdMapping[], own: number, ranges: Range[], who: Caller) {
  for (const m of maps) {
    const end = m.hostID + m.size;
    const inRange = ranges.some((r) => m.hostID >= r.start && end <= r.start + r.count);
    const isOwn = m.hostID === own && m.size === 1;
    if (!inRange && !isOwn) {
      const file = kind === "uid" ? "/etc/subuid" : "/etc/subgid";
      throw new TinycError(
        `linux.${kind}Mappings: host ${kind}s ${m.hostID}-${end - 1} are not owned by ` +
          `${JSON.stringify(who.name)}`,
        { hint: `the caller owns ${kind} ${own} and the ranges in ${file}` },
      );
    }
  }
}

/** The container id that maps to nothing is an error: the process could not run as it. */
export function isMapped(maps: IdMapping[], id: number): boolean {
  return maps.some((m) => id >= m.containerID && id < m.containerID + m.size);
}

/** newuidmap's arguments: "PID C H N C H N ...". */
export function helperArgs(pid: number, maps: IdMapping[]): string[] {
  return [String(pid), ...maps.flatMap((m) => [m.containerID, m.hostID, m.size].map(String))];
}

export function mapText(maps: IdMapping[]): string {
  return maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
}
