import { closeSync, openSync, unlinkSync, writeSync, constants } from "node:fs";
import { join } from "node:path";
import { containerId, parseFlags } from "./args";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import { FIFO, liveStatus, lockContainer, mustLoad, signalProcess } from "../runtime/container";
import { runHooks, runHooksWarn } from "../runtime/hooks";
import { defaultStateRoot, StateStore } from "../runtime/state";
import type { Command } from "./index";

const help = `usage: tinyc start ID

Lets a created container run its program.
`;

export const startCommand: Command = {
  help,
  async run(args: string[], globals: Globals) {
    const a = parseFlags("start", args, { boolean: ["help"], alias: { h: "help" } });
    if (a.help) {
      process.stdout.write(help);
      return 0;
    }
    const given = a._[0] === undefined ? undefined : String(a._[0]);
    if (!given) throw new TinycError("start: a container id is needed", { exitCode: EXIT.usage });
    const store = new StateStore(globals.root ?? defaultStateRoot());
    const id = containerId(given, (x) => store.exists(x));
    const st = mustLoad(store, id);
    const release = lockContainer(store, id);
    try {
      const status = liveStatus(store, st);
      if (status === "stopped") throw new TinycError("cannot start a container that has stopped");
      if (status !== "created") throw new TinycError(`cannot start an already ${status} container`);
      const hookState = { ociVersion: st.ociVersion, id, bundle: st.bundle, annotations: st.annotations };
      try {
        await runHooks(st.hooks, "startContainer", { ...hookState, status: "created", pid: st.pid }, {
          dir: store.dir(id),
          containerPid: st.pid,
        });
      } catch (e) {
        // A container whose startContainer hook failed must not run its program.
        signalProcess(st.pid, st.pidStart, 9);
        throw e;
      }
      const fifo = join(store.dir(id), FIFO);
      // The container holds the fifo open for reading; nobody else may. No reader: it died.
      let fd: number;
      try {
        fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        throw new TinycError("cannot start a container that has stopped");
      }
      try {
        writeSync(fd, "0");
      } finally {
        closeSync(fd);
      }
      unlinkSync(fifo);
      store.write({ ...st, status: "running" });
      await runHooksWarn(st.hooks, "poststart", { ...hookState, status: "running", pid: st.pid }, {
        dir: store.dir(id),
      });
      return 0;
    } finally {
      release();
    }
  },
};
