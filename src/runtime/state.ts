// Runtime state: one folder per container under the state root, holding state.json (written
// atomically) and the start fifo.

import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fromSystem, TinycError } from "../errors";
import type { Hooks, Process, Seccomp, Spec } from "../oci/config";
import type { Cgroup } from "./cgroups";

export interface ContainerState {
  ociVersion: string;
  id: string;
  status: "creating" | "created" | "running" | "stopped" | "paused";
  pid: number;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
  /** Start time of the pid in clock ticks since boot, to tell a reused pid from ours. */
  pidStart?: number;
  owner: number;
  /** The config's process, the defaults of `exec`. */
  process?: Process;
  /** The config's hooks: start runs startContainer and poststart, delete poststop. */
  hooks?: Hooks;
  /** The config's seccomp profile, which exec'd processes get too. */
  seccomp?: Seccomp;
  /** The cgroup the container's processes are in, if it has one. */
  cgroup?: Cgroup;
  /**
   * The foreground `run` (pid and start time) that removes this state when the container ends;
   * if it is gone and the container too, any later run or list removes it.
   */
  runner?: string;
  /** Recorded by a foreground run that keeps the state: the shell's status and when it ended. */
  exitCode?: number;
  finished?: string;
}

/** The default state root: /run/tinyc as root, $XDG_RUNTIME_DIR/tinyc otherwise. */
export function defaultStateRoot(): string {
  if (process.getuid!() === 0 && !process.env.XDG_RUNTIME_DIR) return "/run/tinyc";
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg) return join(xdg, "tinyc");
  return privateTmp();
}

/** Without XDG_RUNTIME_DIR: /tmp/tinyc-UID, which must be ours and closed to others. */
function privateTmp(): string {
  const uid = process.getuid!();
  const dir = `/tmp/tinyc-${uid}`;
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new TinycError(`state folder ${JSON.stringify(dir)} is not a private folder of uid ${uid}`, {
      hint: "set XDG_RUNTIME_DIR or --root",
    });
  }
  return dir;
}

const ID = /^[A-Za-z0-9_+\-.]+$/;

export function checkId(id: string): void {
  if (!ID.test(id) || id === "." || id === ".." || id.length > 200) {
    throw new TinycError(`invalid container id ${JSON.stringify(id)}`, { exitCode: 1 });
  }
}

export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Buffer.from(bytes).toString("hex");
}

export class StateStore {
  constructor(public root: string) {}

  dir(id: string): string {
    return join(this.root, id);
  }

  /**
   * Claims the id: the folder is made exclusively, so two creates of one id cannot both win.
   * It names its creator (pid and start time) until the first state is written, so a folder
   * whose creator died before that (killed, say) is known to be stale and is taken over.
   */
  claim(id: string): string {
    checkId(id);
    try {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw fromSystem(e, "create the state folder", this.root);
    }
    const dir = this.dir(id);
    for (let attempt = 0; ; attempt++) {
      try {
        mkdirSync(dir, { mode: 0o700 });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
          throw fromSystem(e, "create the state folder", dir);
        }
        if (attempt > 0 || !this.removeIfStale(id)) {
          throw new TinycError(`container with id ${JSON.stringify(id)} already exists`);
        }
      }
    }
    writeFileSync(join(dir, "creator"), `${process.pid} ${processStart(process.pid)}`);
    return dir;
  }

  /** A folder with no state whose creator is gone: removed, and true. */
  removeIfStale(id: string): boolean {
    const dir = this.dir(id);
    if (existsSync(join(dir, "state.json"))) return false;
    let creator: string | undefined;
    try {
      creator = readFileSync(join(dir, "creator"), "utf8");
    } catch {
      // A folder made this very moment has no creator yet; one that is older lost it.
      try {
        if (Date.now() - statSync(dir).mtimeMs < 10_000) return false;
      } catch {
        return false;
      }
    }
    if (creator !== undefined) {
      const [pid, start] = creator.split(" ").map(Number);
      if (processStart(pid) === start) return false;
    }
    rmSync(dir, { recursive: true, force: true });
    return true;
  }

  write(state: ContainerState): void {
    const dir = this.dir(state.id);
    const tmp = join(dir, `.state.json.${process.pid}`);
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, join(dir, "state.json"));
    // With state in place the creator no longer matters; a folder that loses its state while
    // being removed must not then look like one a dead creator left.
    rmSync(join(dir, "creator"), { force: true });
  }

  /** "PID START" of this process, as a runner or creator names it. */
  static self(): string {
    return `${process.pid} ${processStart(process.pid)}`;
  }

  read(id: string): ContainerState | undefined {
    checkId(id);
    try {
      return JSON.parse(readFileSync(join(this.dir(id), "state.json"), "utf8"));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      if (e instanceof SyntaxError) return undefined;
      throw e;
    }
  }

  exists(id: string): boolean {
    checkId(id);
    try {
      return statSync(this.dir(id)).isDirectory();
    } catch {
      return false;
    }
  }

  remove(id: string): void {
    endHelper(this.dir(id));
    rmSync(this.dir(id), { recursive: true, force: true });
  }

  ids(): string[] {
    try {
      return readdirSync(this.root).filter((n) => ID.test(n) && !n.startsWith("."));
    } catch {
      return [];
    }
  }
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
export function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** The file in a container's state folder that names its network helper: "PID START". */
export const HELPER_PID_FILE = "network-helper.pid";

/**
 * A network helper ends by itself once its container has ended and been reaped; when the state
 * goes first (rm, delete), it is ended now, so nothing of the container outlives its removal.
 */
function endHelper(dir: string): void {
  let text: string;
  try {
    text = readFileSync(join(dir, HELPER_PID_FILE), "utf8");
  } catch {
    return;
  }
  const [pid, start] = text.trim().split(" ").map(Number);
  const running = () => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat[stat.lastIndexOf(")") + 2] !== "Z" && processStart(pid) === start;
    } catch {
      return false;
    }
  };
  if (!pid || !running()) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const until = Date.now() + 1000;
  while (running() && Date.now() < until) Bun.sleepSync(2);
}

/** The state of a container whose first process PID has just been started. */
export function newState(
  spec: Spec,
  at: { id: string; bundle: string; rootfs: string; pid: number; cgroup?: Cgroup },
  status: "created" | "running",
): ContainerState {
  return {
    ociVersion: spec.ociVersion,
    id: at.id,
    status,
    pid: at.pid,
    bundle: at.bundle,
    rootfs: at.rootfs,
    created: new Date().toISOString(),
    annotations: spec.annotations,
    pidStart: processStart(at.pid),
    owner: process.getuid!(),
    process: spec.process,
    hooks: spec.hooks,
    seccomp: spec.linux?.seccomp,
    cgroup: at.cgroup,
  };
}
