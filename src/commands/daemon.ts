// `tinyc daemon`: the Docker Engine API on a UNIX socket, for the unmodified docker CLI.

import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, unlinkSync, writeSync } from "node:fs";
import * as net from "node:net";
import { dirname, join } from "node:path";
import { parseFlags } from "./args";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import { log, logError } from "../log";
import type { Command } from "./index";

export const daemonCommand: Command = {
  help: `usage: tinyc daemon [options]

Serves the Docker Engine API (1.41) on a UNIX socket, so the docker CLI can drive tinyc:

  export DOCKER_HOST=unix://$XDG_RUNTIME_DIR/tinyc/docker.sock
  docker run --rm busybox echo hi

Containers run under a shim each and keep running when the daemon stops; a new daemon finds
them again.

Options:
  --host, -H unix://PATH   the socket (default $XDG_RUNTIME_DIR/tinyc/docker.sock, or
                           /run/tinyc/docker.sock as root); only unix:// is supported
  --log-max-size BYTES     rotate a container's log past this size (default 10485760; 0: never)
  --log-max-files N        log files kept per container, the current one included (default 3)
  --help, -h               this help
`,
  async run(args: string[], globals: Globals): Promise<number> {
    const a = parseFlags("daemon", args, {
      string: ["host", "log-max-size", "log-max-files"],
      boolean: ["help"],
      alias: { H: "host", h: "help" },
    });
    if (a.help) {
      writeSync(1, this.help);
      return 0;
    }
    if (a._.length > 0) throw new TinycError("daemon: no arguments are taken", { exitCode: EXIT.usage });
    const number = (name: string, dflt: number) => {
      const v = a[name];
      if (v === undefined) return dflt;
      if (!/^\d+$/.test(String(v))) throw new TinycError(`daemon: --${name} ${JSON.stringify(v)}: not a number`, { exitCode: EXIT.usage });
      return Number(v);
    };
    const logMaxSize = number("log-max-size", 10 * 1024 * 1024);
    const logMaxFiles = Math.max(1, number("log-max-files", 3));
    const path = socketPath(a.host === undefined ? undefined : String(a.host));
    void globals;

    const { Events } = await import("../daemon/events");
    const { Engine } = await import("../daemon/engine");
    const { containerRoutes, router, systemRoutes } = await import("../daemon/api");
    const { imageRoutes } = await import("../daemon/images");
    const { serve } = await import("../daemon/http");
    const { openStore } = await import("../image/open");
    const { shimCommand } = await import("../daemon/shimexe");

    prepareSocketFolder(path);
    await refuseIfServed(path);
    const store = openStore();
    lockStore(store.root);
    const events = new Events();
    const engine = new Engine({ store, events, shim: shimCommand(), logMaxSize, logMaxFiles });
    const ctx = { engine, store, events };
    const server = net.createServer({ allowHalfOpen: true });
    serve(server, router([...systemRoutes(ctx), ...containerRoutes(ctx), ...imageRoutes(ctx)]), (e) =>
      logError(`internal error: ${(e as Error)?.stack ?? e}`),
    );
    try {
      if (existsSync(path)) unlinkSync(path);
    } catch {}
    const old = process.umask(0o177);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e) => reject(new TinycError(`daemon: cannot listen on ${path}: ${(e as Error).message}`)));
      server.listen(path, () => resolve());
    });
    process.umask(old);
    chmodSync(path, 0o600);
    await engine.recover();
    // What start-up left behind (module set-up, parsing) is garbage by now: a daemon at rest
    // should not keep it.
    Bun.gc(true);
    log("info", `daemon: listening on unix://${path}`);
    writeSync(2, `tinyc daemon: listening on unix://${path}\n`);

    await new Promise<void>((resolve) => {
      const stop = () => {
        server.close();
        resolve();
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    try {
      unlinkSync(path);
    } catch {}
    // Containers stay with their shims; the next daemon finds them.
    return 0;
  },
};

function socketPath(host: string | undefined): string {
  if (host !== undefined) {
    if (!host.startsWith("unix://")) {
      throw new TinycError(`daemon: --host ${JSON.stringify(host)}: only unix:// sockets are supported`, { exitCode: EXIT.usage });
    }
    const p = host.slice("unix://".length);
    if (!p.startsWith("/")) throw new TinycError("daemon: the socket path must be absolute", { exitCode: EXIT.usage });
    return p;
  }
  if (process.getuid!() === 0 && !process.env.XDG_RUNTIME_DIR) return "/run/tinyc/docker.sock";
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (!xdg) throw new TinycError("daemon: XDG_RUNTIME_DIR is not set", { hint: "set it, or give --host unix://PATH" });
  return join(xdg, "tinyc", "docker.sock");
}

/** The socket's folder: made 0700 if missing, and refused if others may enter it. */
function prepareSocketFolder(path: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid!()) {
    throw new TinycError(`daemon: ${dir} is not a folder of this user`);
  }
  if ((st.mode & 0o077) !== 0 && dir !== "/run/tinyc") {
    throw new TinycError(`daemon: ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)})`, {
      hint: "chmod 700 it, or choose another --host",
    });
  }
}

/** Another daemon answering on PATH is left alone: one daemon per socket. */
async function refuseIfServed(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const answered = await new Promise<boolean>((resolve) => {
    const s = net.createConnection({ path });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
  if (answered) throw new TinycError(`daemon: another daemon is serving ${path}`);
}

/**
 * One daemon a store: a second, on another socket, would start and restart the same
 * containers. The lock is held (its fd left open) for as long as the daemon runs.
 */
function lockStore(root: string): void {
  const { flock, LOCK } = require("../../ffi/spawn") as typeof import("../../ffi/spawn");
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const fd = openSync(join(root, "daemon.lock"), "a", 0o600);
  try {
    flock(fd, LOCK.EX | LOCK.NB);
  } catch {
    closeSync(fd);
    throw new TinycError(`daemon: another tinyc daemon serves the store ${root}`, {
      hint: "one daemon a store: stop it, or give this one another TINYC_DATA",
    });
  }
}
