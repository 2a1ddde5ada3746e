// --userns keep-id: the caller's uid and gid are the same inside the container as outside, and
// the subordinate ranges fill the ids around them, as podman's keep-id maps them. Files the
// container makes as the caller belong to the caller on the host.

import { chmodSync, existsSync, lchownSync, lstatSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EXIT, TinycError } from "../errors";
import type { IdMapping, Mount, Spec } from "../oci/config";
import { caller, findHelper, subordinateRanges, type Caller, type Range } from "./idmap";

/**
 * Container ids 0, 1, ... taken from RANGES in order, except OWN, which maps to itself:
 * 0..OWN-1 and OWN+1.. are subordinate ids, OWN is the caller.
 */
export function spreadAround(own: number, ranges: Range[]): IdMapping[] {
  const out: IdMapping[] = [{ containerID: own, hostID: own, size: 1 }];
  let next = 0;
  for (const r of ranges) {
    let host = r.start;
    let left = r.count;
    while (left > 0) {
      if (next === own) next++;
      const size = next < own ? Math.min(left, own - next) : left;
      out.push({ containerID: next, hostID: host, size });
      next += size;
      host += size;
      left -= size;
    }
  }
  return out.sort((a, b) => a.containerID - b.containerID);
}

export function keepIdMaps(who: Caller): { uid: IdMapping[]; gid: IdMapping[] } {
  const subuid = subordinateRanges("/etc/subuid", who.name, who.uid);
  const subgid = subordinateRanges("/etc/subgid", who.name, who.uid);
  if (!findHelper("newuidmap") || !findHelper("newgidmap") || subuid.length === 0 || subgid.length === 0) {
    throw new TinycError("--userns keep-id is not supported without a subordinate range", {
      exitCode: EXIT.engine,
      hint: "it needs newuidmap and newgidmap (the uidmap package) and ranges in /etc/subuid and /etc/subgid",
    });
  }
  return { uid: spreadAround(who.uid, subuid), gid: spreadAround(who.gid, subgid) };
}

/** The first of the folders (the image's layers top first, or a rootfs) that has PATH. */
function readFirst(lookup: string[], path: string): string {
  for (const dir of lookup) {
    const p = join(dir, path);
    if (existsSync(p)) {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return "";
      }
    }
  }
  return "";
}

const idOf = (line: string, field: number) => line.split(":")[field];

export interface KeepIdOptions {
  /** The container's own folder: the passwd and group files made for it are kept there. */
  dir: string;
  /** Where the image's /etc/passwd and /etc/group are found (layers top first, or a rootfs). */
  lookup: string[];
  /** The user was given (-u): the process keeps it. Otherwise it runs as the caller. */
  userGiven: boolean;
  home?: string;
  shell?: string;
}

export function checkUserns(value: string): void {
  if (value !== "keep-id") {
    throw new TinycError(`--userns ${JSON.stringify(value)}: only keep-id is supported`, { exitCode: EXIT.engine });
  }
}

/**
 * Gives SPEC the keep-id mappings, runs its process as the caller unless a user was given,
 * and, as podman does, adds the caller to the image's /etc/passwd and /etc/group when the
 * image lacks its ids: copies with the entries added are bound over the image's.
 */
export function applyKeepId(spec: Spec, opts: KeepIdOptions): void {
  const who = caller();
  const home = opts.home ?? process.env.HOME ?? `/home/${who.name}`;
  const proc = spec.process!;
  if (!opts.userGiven) proc.user = { uid: who.uid, gid: who.gid };
  if (!proc.env?.some((e) => e.startsWith("HOME="))) proc.env = [...(proc.env ?? []), `HOME=${home}`];
  if (who.uid === 0) return; // as root, ids are the host's already: nothing to map
  const maps = keepIdMaps(who);
  const linux = (spec.linux ??= {});
  linux.uidMappings = maps.uid;
  linux.gidMappings = maps.gid;
  if (!(linux.namespaces ?? []).some((n) => n.type === "user")) {
    linux.namespaces = [...(linux.namespaces ?? []), { type: "user" }];
  }

  const mounts: Mount[] = [];
  const passwd = readFirst(opts.lookup, "etc/passwd");
  const lines = passwd.split("\n").filter(Boolean);
  if (!lines.some((l) => idOf(l, 2) === String(who.uid))) {
    const name = lines.some((l) => idOf(l, 0) === who.name) ? `u${who.uid}` : who.name;
    lines.push(`${name}:x:${who.uid}:${who.gid}:${name}:${home}:${opts.shell ?? "/bin/sh"}`);
    writeFileSync(join(opts.dir, "passwd"), lines.join("\n") + "\n", { mode: 0o644 });
    mounts.push(bindFile(join(opts.dir, "passwd"), "/etc/passwd"));
  }
  const group = readFirst(opts.lookup, "etc/group").split("\n").filter(Boolean);
  if (!group.some((l) => idOf(l, 2) === String(who.gid))) {
    const name = group.some((l) => idOf(l, 0) === who.name) ? `g${who.gid}` : who.name;
    group.push(`${name}:x:${who.gid}:`);
    writeFileSync(join(opts.dir, "group"), group.join("\n") + "\n", { mode: 0o644 });
    mounts.push(bindFile(join(opts.dir, "group"), "/etc/group"));
  }
  spec.mounts = [...(spec.mounts ?? []), ...mounts];
}

function bindFile(source: string, destination: string): Mount {
  return { destination, type: "bind", source, options: ["rbind", "rprivate"] };
}

/**
 * The image's layers are stored for the default mapping (image id 0 is the caller, image id
 * N >= 1 the Nth subordinate id); seen through keep-id's mapping their owners would be off by
 * one. keep-id containers use copies of the layers re-owned for it, made once per layer and
 * caller (beside the layer: `diff-keepid-UID-GID`) and removed with the layer.
 */
export async function keepIdLayers(lower: string[]): Promise<string[]> {
  const who = caller();
  if (who.uid === 0) return lower;
  const copyOf = (dir: string) => join(dir, "..", `diff-keepid-${who.uid}-${who.gid}`);
  const missing = lower.filter((d) => !existsSync(copyOf(d)));
  if (missing.length > 0) {
    const { runInUserns, selfArgv } = await import("./userns");
    const pairs = missing.flatMap((d) => [d, copyOf(d)]);
    const r = await runInUserns(selfArgv("_reown", String(who.uid), String(who.gid), ...pairs));
    if (r.code !== 0) throw new TinycError(`re-owning the image's layers for keep-id failed (status ${r.code})`);
  }
  return lower.map(copyOf);
}

/**
 * Where an image id must be, in the default mapping's user namespace (where ids are image
 * ids), for keep-id's mapping to show it as itself: below the caller's id one up, the caller's
 * id at 0 (the caller), above it unchanged.
 */
export function reownedId(id: number, own: number): number {
  return id < own ? id + 1 : id === own ? 0 : id;
}

/** `tinyc _reown UID GID SRC DEST...`: run as root of the default mapping's user namespace. */
export const reownCommand = {
  help: `usage: tinyc _reown UID GID SRC DEST [SRC DEST...]

Copies each layer folder SRC to DEST with its owners changed for --userns keep-id of UID and
GID. tinyc runs it inside a user namespace with the default mapping.
`,
  async run(args: string[]): Promise<number> {
    const [uid, gid, ...pairs] = args;
    const own = { uid: Number(uid), gid: Number(gid) };
    if (!Number.isInteger(own.uid) || !Number.isInteger(own.gid) || pairs.length === 0 || pairs.length % 2) {
      throw new TinycError("_reown: UID, GID and pairs of SRC and DEST are needed", { exitCode: EXIT.usage });
    }
    for (let i = 0; i < pairs.length; i += 2) reownCopy(pairs[i], pairs[i + 1], own);
    return 0;
  },
};

function reownCopy(src: string, dest: string, own: { uid: number; gid: number }): void {
  const tmp = `${dest}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  // cp keeps modes, times, hard links, whiteouts and the user.overlay.* attributes.
  const cp = Bun.spawnSync(["cp", "-a", "--preserve=all", "--", src, tmp], { stderr: "pipe" });
  if (cp.exitCode !== 0) {
    throw new TinycError(`_reown: copying ${JSON.stringify(src)}: ${cp.stderr.toString().trim()}`);
  }
  const seen = new Set<string>();
  const walk = (p: string) => {
    const st = lstatSync(p, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      lchownSync(p, reownedId(Number(st.uid), own.uid), reownedId(Number(st.gid), own.gid));
      // chown drops the set-id bits: they are put back.
      if (!st.isSymbolicLink() && (Number(st.mode) & 0o6000) !== 0) chmodSync(p, Number(st.mode) & 0o7777);
    }
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(tmp);
  try {
    renameSync(tmp, dest);
  } catch {
    // Another tinyc made it meanwhile: the same copy.
    rmSync(tmp, { recursive: true, force: true });
  }
}
