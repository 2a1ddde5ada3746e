// `tinyc dev`: a shell in a container, in the current folder, as yourself. The folder is bound at
// the same path, ids are kept (--userns keep-id), the network is the host's; the container is
// made on the first entry and later entries join it with exec. It is named after the folder and
// the image, so the same folder and image always find the same container.

import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { isatty } from "node:tty";
import { basename, isAbsolute, join, relative, resolve } from "node:path";
import { flock, LOCK, NativeError } from "../../ffi/spawn";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import { allMetas, containersDir, releaseName, type ContainerMeta } from "../image/containers";
import { defaultDataRoot } from "../image/store";
import { familiarReference, parseReference } from "../image/reference";
import { mergeEnv } from "../image/runspec";
import { requireProcess } from "../oci/config";
import { stringifySpec } from "../oci/spec";
import { loadBundle } from "../runtime/bundle";
import { isAlive, signalProcess, waitGone } from "../runtime/container";
import { parseDetachKeys } from "../runtime/detachkeys";
import { applyKeepId } from "../runtime/keepid";
import { defaultStateRoot, newId, StateStore, type ContainerState } from "../runtime/state";
import { parseFlags } from "./args";
import { NETWORK_ANNOTATION } from "../runtime/network";
import { parseImageRun, removeContainerDir, runImage } from "./container";
import { execProcess } from "./exec";
import type { Command } from "./index";
import { runBundle } from "./run";

const help = `usage: tinyc dev [flags] IMAGE|BUNDLE [COMMAND [ARG...]]
       tinyc dev --stop [IMAGE|BUNDLE]

Runs a shell (or COMMAND) in a container of IMAGE (or of the bundle folder BUNDLE), in the
current folder, as yourself: the folder is bound at the same path, your uid and gid inside are
those outside (--userns keep-id: files you make there are yours on the host), HOME, TERM, the
locale (LANG, LC_*) and the terminal's size carry over, and the network is the host's.

The container is named dev-FOLDER-HASH (from the folder's path and the image) and shows in
"tinyc ps". Running "tinyc dev" again in the same folder with the same image starts another
shell in the same container. When the last shell leaves, the container is stopped and removed,
unless a session was started with --keep; "tinyc dev --stop" stops it.

flags:
  --keep              leave the container running when the last shell leaves
  --stop              stop and remove the dev container of this folder and IMAGE (without
                      IMAGE: every dev container of this folder)
  --bind-home         bind your home folder at its path (default: a private home folder,
                      kept as long as the container)
(The host's /etc/resolv.conf is bound read-only, since the network is the host's.)
  --env, -e K=V       more environment for the shell (repeatable)
  --pull POLICY       missing (default), always or never, as for run
  --detach-keys KEYS  the keys that leave the shell running and return (default ctrl-p,ctrl-q)
  --network MODE      host (default), private, none, as for run (an image's container only)
  --publish, -p [IP:]HOST:CONTAINER[/udp]   publish a port (with --network private)
  --dns IP, --add-host NAME:IP              as for run
`;

/** The container's first process: it only waits, so that shells can come and go. */
const IDLE = ["/bin/sh", "-c", "trap 'exit 0' TERM INT HUP; while :; do sleep 3600 & wait $!; done"];

/** The user's shell if the container has it, else bash, else sh; SHELL names the one chosen. */
const SHELL_PICK =
  's="$0"; [ -x "$s" ] || s=/bin/bash; [ -x "$s" ] || s=/bin/sh; SHELL="$s"; export SHELL; exec "$s"';

const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
const hash = (s: string) => createHash("sha256").update(s).digest("hex");

/** A bundle is a path, or a folder with a config.json; anything else is an image reference. */
function isBundle(arg: string): boolean {
  if (arg === "." || arg === ".." || /^(\/|\.\/|\.\.\/)/.test(arg)) return true;
  return arg.includes("/") && existsSync(join(arg, "config.json"));
}

/** dev-FOLDER-PATHHASH (8 hex digits of the folder's path), then IMAGEHASH (4 of the image). */
export function devName(folder: string, target?: string): string {
  const slug = basename(folder).toLowerCase().replace(/[^a-z0-9_.-]+/g, "-").replace(/^[-.]+/, "")
    .slice(0, 24) || "root";
  const prefix = `dev-${slug}-${hash(folder).slice(0, 8)}`;
  return target === undefined ? prefix : `${prefix}-${hash(target).slice(0, 4)}`;
}

/** What names the image in the container's name: the reference in full, or the bundle's path. */
function targetKey(target: string): string {
  return isBundle(target) ? realpathSync(target) : familiarReference(parseReference(target));
}

/** The folders a dev container must not be bound over: the system's own. */
function checkFolder(folder: string): void {
  const system = ["/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run",
    "/sbin", "/sys", "/usr", "/var"];
  if (system.includes(folder) || /^\/(proc|sys|dev)\//.test(folder)) {
    throw new TinycError(`dev: ${JSON.stringify(folder)} is a system folder: run it in a project folder`, {
      exitCode: EXIT.usage,
    });
  }
}

interface Session {
  name: string;
  folder: string;
  home: string;
  /** The folder of the dev container's own files: its locks and private home. */
  devDir: string;
}

function lockFile(path: string, op: number): number {
  const fd = openSync(path, "a", 0o600);
  try {
    flock(fd, op);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

function findByName(name: string): ContainerMeta | undefined {
  return allMetas().find((m) => m.name === name);
}

/** Kills and removes a dev container and its private home. */
async function stopDev(m: ContainerMeta, states: StateStore, devDir: string): Promise<void> {
  const st = states.read(m.id);
  if (st && isAlive(st)) {
    signalProcess(st.pid, st.pidStart, 9);
    await waitGone(st, 10_000);
  }
  if (st) states.remove(m.id);
  releaseName(m.name, m.id);
  removeContainerDir(join(containersDir(), m.id));
  if (existsSync(join(devDir, "home"))) removeContainerDir(join(devDir, "home"));
  rmSync(join(devDir, "keep"), { force: true });
}

/** The -v flags: a home folder (private, or yours with --bind-home), then the project folder. */
function binds(s: Session, bindHome: boolean, hostNetwork = true): string[] {
  const out: string[] = [];
  const homeInFolder = !relative(s.folder, s.home).startsWith("..") && s.home !== s.folder;
  if (bindHome && existsSync(s.home)) {
    out.push(`${s.home}:${s.home}`);
  } else if (!homeInFolder && isAbsolute(s.home) && s.home !== "/") {
    const source = join(s.devDir, "home");
    mkdirSync(source, { recursive: true, mode: 0o755 });
    // The folders between the home and the project are made here, the user's, for the bind.
    const rel = relative(s.home, s.folder);
    if (rel && !rel.startsWith("..")) mkdirSync(join(source, rel), { recursive: true, mode: 0o755 });
    out.push(`${source}:${s.home}`);
  }
  out.push(`${s.folder}:${s.folder}`);
  // The host's network, so the host's name servers (a private network writes its own).
  if (hostNetwork && existsSync("/etc/resolv.conf")) out.push("/etc/resolv.conf:/etc/resolv.conf:ro");
  return out;
}

async function createFromImage(s: Session, image: string, a: Record<string, any>, globals: Globals) {
  const network = a.network ?? "host";
  const many = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
  const netFlags = [
    ...many(a.publish).flatMap((p) => ["-p", p]),
    ...many(a.dns).flatMap((d) => ["--dns", d]),
    ...many(a["add-host"]).flatMap((h) => ["--add-host", h]),
  ];
  const args = ["-d", "--name", s.name, "--network", network, ...netFlags, "--userns", "keep-id", "-w", s.folder,
    ...binds(s, !!a["bind-home"], network === "host").flatMap((v) => ["-v", v]), "--pull", a.pull ?? "missing",
    "-l", `run.tinyc.dev=${s.folder}`, "--entrypoint", IDLE[0], image, ...IDLE.slice(1)];
  const parsed = parseImageRun(args)!;
  await runImage({ ...parsed, quiet: true }, globals);
}

/** A bundle's dev container: its config, changed as runImage changes an image's, in the store. */
async function createFromBundle(s: Session, bundle: string, a: Record<string, any>, globals: Globals) {
  for (const f of ["network", "publish", "dns", "add-host"]) {
    if (a[f] !== undefined) {
      throw new TinycError(`dev: --${f} is not supported for a bundle (it keeps its config's namespaces)`, {
        exitCode: EXIT.engine,
      });
    }
  }
  const { dir: bdir, spec } = loadBundle(bundle);
  const id = newId() + newId();
  const dir = join(containersDir(), id);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    spec.root = { ...spec.root!, path: resolve(bdir, spec.root!.path) };
    requireProcess(spec);
    const proc = spec.process!;
    proc.args = IDLE;
    proc.terminal = false;
    proc.cwd = s.folder;
    const linux = (spec.linux ??= {});
    linux.namespaces = (linux.namespaces ?? []).filter((n) => n.type !== "network");
    // A private network that `tinyc bundle` named has no namespace left to serve.
    if (spec.annotations) delete spec.annotations[NETWORK_ANNOTATION];
    // The host's network: its sysfs cannot be mounted anew, it is bound read-only.
    const sys = (spec.mounts ?? []).find((m) => m.destination === "/sys" && m.type === "sysfs");
    if (sys) {
      Object.assign(sys, { type: "bind", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"] });
      // The host's /sys/fs/cgroup comes with the bind; a cgroup2 mount on it again fails.
      spec.mounts = spec.mounts!.filter((m) => m.destination !== "/sys/fs/cgroup");
    }
    const volumes = binds(s, !!a["bind-home"]).map((v) => {
      const [source, destination, mode] = v.split(":");
      return { destination, type: "bind", source, options: ["rbind", "rprivate", ...(mode ? [mode] : [])] };
    });
    spec.mounts = [...(spec.mounts ?? []), ...volumes];
    applyKeepId(spec, { dir, lookup: [spec.root.path], userGiven: false });
    spec.annotations = { ...spec.annotations, "run.tinyc.name": s.name, "run.tinyc.dev": s.folder };
    writeFileSync(join(dir, "config.json"), stringifySpec(spec));
    const meta: ContainerMeta = { id, name: s.name, image: bdir, imageId: "", command: IDLE,
      created: new Date().toISOString() };
    writeFileSync(join(dir, "meta.json"), JSON.stringify(meta));
    const logFd = openSync(join(dir, "container.log"), "a", 0o600);
    const nullFd = openSync("/dev/null", "r");
    try {
      await runBundle({ bundle: dir, id, detach: true, keep: false, noPivot: false, preserveFds: 0,
        plan: false, stdio: [nullFd, logFd, logFd] }, globals);
    } finally {
      closeSync(logFd);
      closeSync(nullFd);
    }
  } catch (e) {
    removeContainerDir(dir);
    throw e;
  }
}

/** The environment a shell gets from the caller: terminal, locale, who and where. */
function callerEnv(s: Session, extra: string[]): string[] {
  const env = [`HOME=${s.home}`];
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (["TERM", "LANG", "LANGUAGE", "COLORTERM", "USER", "LOGNAME", "SHELL"].includes(k) || k.startsWith("LC_")) {
      env.push(`${k}=${v}`);
    }
  }
  return [...env, ...extra];
}

export const devCommand: Command = {
  help,
  async run(args: string[], globals: Globals) {
    const a = parseFlags("dev", args, {
      boolean: ["keep", "stop", "bind-home", "help"],
      string: ["env", "pull", "detach-keys", "network", "publish", "dns", "add-host"],
      alias: { e: "env", h: "help", p: "publish" },
      stopEarly: true,
    });
    if (a.help) {
      writeFileSync(1, help);
      return 0;
    }
    let folder: string;
    try {
      folder = realpathSync(process.cwd());
    } catch {
      throw new TinycError("dev: the current folder is gone (deleted or unreachable): cd to one that exists");
    }
    checkFolder(folder);
    const pos = a._.map(String);
    const states = new StateStore(globals.root ?? defaultStateRoot());
    const devRoot = join(defaultDataRoot(), "dev");
    mkdirSync(devRoot, { recursive: true, mode: 0o700 });

    if (a.stop) {
      const prefix = pos[0] === undefined ? `${devName(folder)}-` : devName(folder, targetKey(pos[0]));
      const found = allMetas().filter((m) => (pos[0] === undefined ? m.name.startsWith(prefix) : m.name === prefix));
      if (found.length === 0) throw new TinycError("dev: no dev container of this folder is running");
      for (const m of found) {
        const control = lockFile(join(devRoot, `${m.name}.lock`), LOCK.EX);
        try {
          await stopDev(m, states, join(devRoot, m.name));
        } finally {
          closeSync(control);
        }
        writeFileSync(1, `${m.name}\n`);
      }
      return 0;
    }
    if (pos.length === 0) throw new TinycError("dev: an image or a bundle is needed", { exitCode: EXIT.usage, hint: help.split("\n")[0] });
    const detachKeys = parseDetachKeys(a["detach-keys"]);
    const target = pos[0];
    const name = devName(folder, targetKey(target));
    const s: Session = { name, folder, home: process.env.HOME ?? folder, devDir: join(devRoot, name) };
    mkdirSync(s.devDir, { recursive: true, mode: 0o700 });

    // Making or finding the container, and leaving it, take turns under this lock; each shell
    // holds a shared lock on the sessions file for as long as it runs.
    const lockPath = join(devRoot, `${name}.lock`);
    const sessionsPath = join(devRoot, `${name}.sessions`);
    let control = lockFile(lockPath, LOCK.EX);
    let session: number;
    let st: ContainerState;
    try {
      let m = findByName(name);
      const old = m && states.read(m.id);
      if (m && !(old && isAlive(old))) {
        await stopDev(m, states, s.devDir);
        m = undefined;
      }
      if (!m) {
        if (isBundle(target)) await createFromBundle(s, target, a, globals);
        else await createFromImage(s, target, a, globals);
        m = findByName(name);
      }
      if (a.keep) writeFileSync(join(s.devDir, "keep"), "");
      st = states.read(m!.id)!;
      session = lockFile(sessionsPath, LOCK.SH);
    } finally {
      closeSync(control);
    }

    const tty = isatty(0) && isatty(1);
    const proc = structuredClone(st.process!);
    const command = pos.slice(1);
    proc.args = command.length > 0 ? command : ["/bin/sh", "-c", SHELL_PICK, process.env.SHELL ?? "/bin/bash"];
    proc.terminal = tty;
    proc.cwd = folder;
    proc.env = mergeEnv(proc.env ?? [], callerEnv(s, list(a.env)));
    let detached = false;
    let code: number;
    try {
      // A shell left running keeps the container, for the next session as well as this one.
      const onDetach = () => {
        detached = true;
        writeFileSync(join(s.devDir, "keep"), "");
      };
      code = execProcess(st, proc, { detachKeys, onDetach });
    } finally {
      // The last shell out stops the container, unless it is kept (or this one was detached).
      control = lockFile(lockPath, LOCK.EX);
      try {
        closeSync(session);
        const keep = detached || existsSync(join(s.devDir, "keep"));
        if (!keep && lastOut(sessionsPath)) {
          const m = findByName(name);
          if (m) await stopDev(m, states, s.devDir);
        }
      } finally {
        closeSync(control);
      }
    }
    return code;
  },
};

/** True when no other shell holds the sessions file. */
function lastOut(path: string): boolean {
  let fd: number;
  try {
    fd = lockFile(path, LOCK.EX | LOCK.NB);
  } catch (e) {
    if (e instanceof NativeError && e.errno === 11) return false;
    throw e;
  }
  closeSync(fd);
  return true;
}
