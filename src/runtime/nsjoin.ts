// What joining a running container takes: which of its namespaces differ from ours, and the id
// maps of its user namespace.

import { readFileSync, readlinkSync } from "node:fs";
import { TinycError } from "../errors";
import type { IdMapping } from "../oci/config";
import type { UsernsMaps } from "./idmap";

const nsFiles: [string, string][] = [
  ["user", "user"], ["ipc", "ipc"], ["uts", "uts"], ["network", "net"], ["pid", "pid"],
  ["mount", "mnt"], ["cgroup", "cgroup"], ["time", "time"],
];

/** The namespaces of PID that differ from ours: those a process must join to be inside. */
export function namespacesToJoin(pid: number): string[] {
  const out: string[] = [];
  for (const [type, file] of nsFiles) {
    let own: string;
    try {
      own = readlinkSync(`/proc/self/ns/${file}`);
    } catch {
      continue; // a namespace type this kernel does not have
    }
    let theirs: string;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/${file}`);
    } catch (e) {
      // Never run the process in our own namespaces instead of the container's.
      const code = (e as NodeJS.ErrnoException).code;
      throw new TinycError(
        `cannot join the ${type} namespace of pid ${pid}: ${code === "EACCES" ? "permission denied" : code}`,
        { hint: code === "EACCES" ? "a container that waits for start cannot be joined without root" : undefined },
      );
    }
    if (theirs !== own) out.push(type);
  }
  return out;
}

function readMap(file: string): IdMapping[] {
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3)
    .map(([containerID, hostID, size]) => ({ containerID, hostID, size }));
}

export function containerMaps(pid: number): UsernsMaps {
  return {
    uid: readMap(`/proc/${pid}/uid_map`),
    gid: readMap(`/proc/${pid}/gid_map`),
    how: "parent",
    setgroupsDenied: readFileSync(`/proc/${pid}/setgroups`, "utf8").trim() === "deny",
  };
}
