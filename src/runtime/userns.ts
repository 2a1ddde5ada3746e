// Running one of tinyc's own helpers (or a system tool) as root of a user namespace that maps
// the caller's subordinate ids, the way a rootless container is mapped: layers unpack with
// their owners kept, and files a container left behind can be removed.

import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import type { Plan, Step } from "../../ffi/plan";
import { exitCodeOf, waitStatus } from "../../ffi/spawn";
import { TinycError } from "../errors";
import { caller, defaultMaps } from "./idmap";
import { launch } from "./launch";
import { ATTR, MS } from "./mountopts";
import { CLONE, DEFAULT_PATH, selfMapSteps } from "./plan";
import { selfArgv } from "./self";

export { selfArgv };


/**
 * Runs ARGV as root of a new user namespace mapped like a rootless container's; returns its
 * exit code, with stdout (if asked for) collected through a file in DIR.
 */
export interface UsernsRunOptions {
  /** Collect stdout and stderr through files in this folder. */
  captureIn?: string;
  /** Mount a read-only overlay of these folders (top first) on `at` before the exec. */
  overlay?: { lower: string[]; at: string };
}

export async function runInUserns(
  argv: string[],
  opts: UsernsRunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  // As root there is nothing to map: a mount namespace of its own is all an overlay needs.
  const maps = process.getuid!() === 0 ? undefined : defaultMaps(caller());
  const outFile = opts.captureIn ? join(opts.captureIn, `.out-${process.pid}`) : undefined;
  const errFile = opts.captureIn ? join(opts.captureIn, `.err-${process.pid}`) : undefined;
  const outFd = outFile ? openSync(outFile, "w", 0o600) : undefined;
  const errFd = errFile ? openSync(errFile, "w", 0o600) : undefined;
  const steps: Step[] = [{ op: "close-fds", a: 0, text: "close every fd above 2 at exec" }];
  if (outFd !== undefined) steps.push({ op: "dup2", a: outFd, b: 1, text: "stdout to a file" });
  if (errFd !== undefined) steps.push({ op: "dup2", a: errFd, b: 2, text: "stderr to a file" });
  if (maps?.how === "self") {
    steps.push(...selfMapSteps(maps));
  } else if (maps) {
    steps.push({ op: "wait-parent", text: "wait for newuidmap and newgidmap" });
  }
  if (maps) steps.push({ op: "setresid-root", text: "become root in the user namespace" });
  if (opts.overlay) {
    const { lower, at } = opts.overlay;
    steps.push({ op: "propagation", s2: "/", a: MS.SLAVE | MS.REC, text: "make / rslave" });
    // overlayfs wants two lower folders at least when it has no upper one; one is just bound.
    steps.push(
      lower.length === 1
        ? { op: "mount", s1: lower[0], s2: at, a: MS.BIND | MS.REC, b: ATTR.RDONLY,
          text: `bind ${lower[0]} on ${at}, read-only` }
        : { op: "mount", s1: "overlay", s2: at, s3: "overlay", s4: `lowerdir=${lower.join(":")},userxattr`,
          a: MS.RDONLY, text: `mount a read-only overlay of ${lower.length} folders on ${at}` },
    );
  }
  steps.push(
    { op: "find-exec", s1: argv, s3: DEFAULT_PATH, text: `find ${argv[0]}` },
    { op: "exec", s1: argv, s2: [`PATH=${DEFAULT_PATH}`, ...passEnv()], text: `exec ${argv.join(" ")}` },
  );
  const flags = (maps ? CLONE.NEWUSER : 0n) | (opts.overlay ? CLONE.NEWNS : 0n);
  const plan: Plan = { cloneFlags: flags, flags: 0, steps };
  try {
    const { pid } = await launch({ plan, userns: maps, rootless: maps !== undefined });
    const code = exitCodeOf(waitStatus(pid, false));
    const stdout = outFile ? readFileSync(outFile, "utf8") : "";
    const stderr = errFile ? readFileSync(errFile, "utf8") : "";
    return { code, stdout, stderr };
  } finally {
    for (const fd of [outFd, errFd]) if (fd !== undefined) closeSync(fd);
    for (const f of [outFile, errFile]) if (f) rmSync(f, { force: true });
  }
}

/** What the helpers need of the caller's environment: where data and config live. */
function passEnv(): string[] {
  return ["HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "TINYC_DATA"]
    .filter((k) => process.env[k] !== undefined)
    .map((k) => `${k}=${process.env[k]}`);
}

/**
 * Removes DIR as root of a user namespace that maps the subordinate ids, where files a
 * container made as one of them are ours to remove (util-linux unshare, synchronously).
 */
export function removeInUserns(dir: string): void {
  const r = Bun.spawnSync(
    ["unshare", "--map-root-user", "--map-auto", "rm", "-rf", "--one-file-system", dir],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (r.exitCode !== 0) {
    const why = r.stderr.toString().trim().split("\n").pop();
    throw new TinycError(`remove ${JSON.stringify(dir)}: ${why || `exit status ${r.exitCode}`}`);
  }
}

/** Unpacks a layer as root of the user namespace, so its files keep their owners. */
export async function unpackInUserns(src: string, dest: string): Promise<unknown> {
  const r = await runInUserns(selfArgv("_unpack", src, dest), { captureIn: join(dest, "..") });
  if (r.code !== 0) {
    const why = r.stderr.trim().split("\n").pop()?.replace(/^tinyc: /, "");
    throw new TinycError(why || `unpacking a layer failed with status ${r.code}`);
  }
  return JSON.parse(r.stdout);
}

/** Linux 5.11 and later mount overlayfs inside a user namespace. */
export function overlayInUserns(): boolean {
  const [major, minor] = release().split(".").map(Number);
  return major > 5 || (major === 5 && minor >= 11);
}
