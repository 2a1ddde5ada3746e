// The daemon's side of the shim: starting one for a container, and the few kinds of connection
// its attach socket takes (attach, wait, resize, exec). Frames from the shim are docker's own
// 8-byte multiplexed frames, with stream 3 carrying the exit status at the end.

import { closeSync, openSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";

export interface ShimOptions {
  dir: string;
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  logMaxSize: number;
  logMaxFiles: number;
  /** The runtime command that creates the container (argv[0] an absolute path). */
  runtime: string[];
  /** The shim executable and any arguments that come before its own. */
  shim: string[];
}

export type ShimStart = { ok: true; pid: number } | { ok: false; status: number };

/** Starts a shim and waits for its one line: the container is created, or the runtime failed. */
export async function startShim(o: ShimOptions): Promise<ShimStart> {
  const argv = [
    ...o.shim,
    "--log", "container.log",
    "--log-max-size", String(o.logMaxSize),
    "--log-max-files", String(o.logMaxFiles),
    ...(o.tty ? ["--tty"] : []),
    ...(o.stdin ? ["--stdin"] : []),
    ...(o.stdinOnce ? ["--stdin-once"] : []),
    o.dir, "--", ...o.runtime,
  ];
  const child = Bun.spawn(argv, { cwd: o.dir, stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const text = await new Response(child.stdout).text();
  await child.exited;
  const line = text.split("\n")[0];
  const ok = /^ok (\d+)$/.exec(line);
  if (ok) return { ok: true, pid: Number(ok[1]) };
  const err = /^error (-?\d+)$/.exec(line);
  return { ok: false, status: err ? Number(err[1]) : -1 };
}

/**
 * A connection to DIR/attach.sock. The folder's path may be longer than a socket address can
 * be, so the connection goes through /proc/self/fd and an open descriptor of the folder.
 */
export function connectShim(dir: string, first: Buffer): Promise<net.Socket> {
  const fd = openSync(dir, "r");
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path: `/proc/self/fd/${fd}/attach.sock`, allowHalfOpen: true });
    const done = () => {
      try {
        closeSync(fd);
      } catch {}
    };
    // The shim ends its side only when it is finished with the connection: so is the daemon.
    s.on("end", () => s.end());
    s.once("connect", () => {
      done();
      s.write(first);
      resolve(s);
    });
    s.once("error", (e) => {
      done();
      reject(e);
    });
  });
}

export const FLAG = { stdin: 1, stdout: 2, stderr: 4, ack: 8 } as const;

/** Splits the shim's byte stream into frames; calls EXIT with the status of the exit frame. */
export class FrameReader {
  private buf = Buffer.alloc(0);
  constructor(
    private readonly onFrame: (stream: number, payload: Buffer) => void,
    private readonly onExit: (status: number) => void,
  ) {}

  push(data: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + len) return;
      const stream = this.buf[0];
      const payload = this.buf.subarray(8, 8 + len);
      this.buf = this.buf.subarray(8 + len);
      if (stream === 3 && len === 4) this.onExit(payload.readInt32BE(0));
      else this.onFrame(stream, payload);
    }
  }
}

/** docker's frame header for a payload on STREAM. */
export function frame(stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** An exec request: pid file, console socket ("" for none), then the runtime's argv. */
export function execRequest(flags: number, pidFile: string, consoleSocket: string, argv: string[]): Buffer {
  const strings = Buffer.from([pidFile, consoleSocket, ...argv].map((s) => s + "\0").join(""));
  const head = Buffer.alloc(6);
  head[0] = "X".charCodeAt(0);
  head[1] = flags;
  head.writeUInt32BE(strings.length, 2);
  return Buffer.concat([head, strings]);
}

export function resizeRequest(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = "R".charCodeAt(0);
  b.writeUInt16BE(rows & 0xffff, 1);
  b.writeUInt16BE(cols & 0xffff, 3);
  return b;
}

export function attachRequest(flags: number): Buffer {
  return Buffer.from(["A".charCodeAt(0), flags]);
}

export const waitRequest = Buffer.from("W");

/** Resizes the terminal of the exec whose pid file is NAME. */
export function execResizeRequest(name: string, rows: number, cols: number): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(2 + n.length + 4);
  b[0] = "T".charCodeAt(0);
  b[1] = n.length;
  n.copy(b, 2);
  b.writeUInt16BE(rows & 0xffff, 2 + n.length);
  b.writeUInt16BE(cols & 0xffff, 4 + n.length);
  return b;
}

/** The shim's record of how the container's first process ended. */
export interface ExitRecord {
  exitCode: number;
  signal: number;
  finishedAt: string;
  pid: number;
}

export function exitFile(dir: string): string {
  return join(dir, "exit.json");
}
