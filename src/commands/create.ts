import { closeSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseFlags } from "./args";
import { consolePair, mkfifo, receiveFd, sendFd, setDumpable } from "../../ffi/spawn";
import type { Globals } from "../cli";
import { EXIT, fromSystem, TinycError } from "../errors";
import { helperOf, startNetworkOf } from "../runtime/network";
import { requireProcess } from "../oci/config";
import { FIFO } from "../runtime/container";
import { loadBundle } from "../runtime/bundle";
import { hasHooks, runCreateHooks } from "../runtime/hooks";
import { launch, prepare, type Started } from "../runtime/launch";
import { removeWhenEmpty, signalProcess } from "../runtime/container";
import { rootfsPath } from "../runtime/plan";
import { defaultStateRoot, newState, StateStore } from "../runtime/state";
import type { Command } from "./index";

const help = `usage: tinyc create [flags] ID

Creates the container ID from a bundle: every namespace, mount and limit is set up and its
process waits, until "tinyc start ID", to run the program.

flags:
  --bundle, -b DIR        the bundle folder (default: the current folder)
  --pid-file FILE         write the container's pid to FILE
  --console-socket PATH   send the terminal's master over this UNIX socket (process.terminal)
  --no-pivot              move the rootfs to / and chroot instead of pivot_root
  --no-new-keyring        accepted for runc compatibility (no session keyring is made)
  --preserve-fds N        pass N more fds (3 and on) to the container
`;

/** Writes FILE through a temporary name, so a reader never sees half of it. */
export function writePidFile(file: string, pid: number): void {
  const abs = resolve(file);
  const tmp = join(dirname(abs), `.${process.pid}.pid.tmp`);
  try {
    writeFileSync(tmp, String(pid));
    renameSync(tmp, abs);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fromSystem(e, "write the pid file", abs);
  }
}

export function parsePreserveFds(value: unknown): number {
  const n = value === undefined ? 0 : Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new TinycError(`--preserve-fds ${JSON.stringify(value)}: not a count`, {
      exitCode: EXIT.usage,
    });
  }
  return n;
}

export const createCommand: Command = {
  help,
  async run(args: string[], globals: Globals) {
    const a = parseFlags("create", args, {
      boolean: ["no-pivot", "no-new-keyring", "help"],
      string: ["bundle", "pid-file", "console-socket", "preserve-fds"],
      alias: { b: "bundle", h: "help" },
    });
    if (a.help) {
      process.stdout.write(help);
      return 0;
    }
    const id = a._[0] === undefined ? undefined : String(a._[0]);
    if (!id) throw new TinycError("create: a container id is needed", { exitCode: EXIT.usage });
    const { dir, spec } = loadBundle(a.bundle || ".");
    requireProcess(spec);
    const terminal = !!spec.process!.terminal;
    const socket: string | undefined = a["console-socket"] || undefined;
    if (terminal && !socket) {
      throw new TinycError("process.terminal needs --console-socket when the container is created");
    }
    if (!terminal && socket) {
      throw new TinycError("--console-socket given but process.terminal is not set");
    }
    const preserveFds = parsePreserveFds(a["preserve-fds"]);
    const wantsNetwork = helperOf(spec) !== undefined;


    const store = new StateStore(globals.root ?? defaultStateRoot());
    const stateDir = store.claim(id);
    let done = false;
    let launched: Started | undefined;
    try {
      const fifo = join(stateDir, FIFO);
      mkfifo(fifo, 0o600);
      const pair = terminal ? consolePair() : undefined;
      const tty = pair && { fd: pair.child };
      setDumpable(false);
      const prepared = prepare(spec, {
        bundle: dir,
        fifo,
        noPivot: !!a["no-pivot"],
        preserveFds,
        console: tty,
        id,
        systemdCgroup: globals.systemdCgroup,
        noCgroups: globals.noCgroups,
        syncBeforePivot: wantsNetwork || hasHooks(spec.hooks, "prestart", "createRuntime", "createContainer"),
      });
      const base = { ociVersion: spec.ociVersion, id, bundle: dir, annotations: spec.annotations };
      const started = await launch(prepared, async (pid) => {
        // A private network named in the config (tinyc bundle writes one), up before start.
        if (wantsNetwork) (await startNetworkOf(spec, pid, stateDir))?.detach();
        await runCreateHooks(spec.hooks, { ...base, status: "creating", pid }, stateDir);
      });
      const { pid, cgroup } = started;
      launched = started;
      if (pair) {
        closeSync(pair.child);
        const master = receiveFd(pair.parent);
        closeSync(pair.parent);
        try {
          sendFd(socket!, master);
        } finally {
          closeSync(master);
        }
      }
      const at = { id, bundle: dir, rootfs: rootfsPath(spec, dir), pid, cgroup };
      store.write(newState(spec, at, "created"));
      if (a["pid-file"]) writePidFile(a["pid-file"], pid);
      done = true;
      return 0;
    } finally {
      if (!done) {
        // A failure after the launch must not leave the waiting process behind.
        if (launched) {
          signalProcess(launched.pid, undefined, 9);
          if (launched.cgroup) await removeWhenEmpty(launched.cgroup);
        }
        store.remove(id);
      }
    }
  },
};
