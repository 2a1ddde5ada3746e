// HTTP/1.1 on a stream socket, as much of it as the Docker Engine API needs: keep-alive,
// Content-Length and chunked bodies in both directions, responses that stream for as long as the
// client stays, and the hijack that turns a connection into a raw byte stream (101 UPGRADED).
// Written on node:net because a hijacked connection must survive the client's half-close.

import * as net from "node:net";

/** Larger request heads are refused (431). */
const MAX_HEAD = 64 * 1024;
/** A JSON body past this is refused (413); uploads (load, import) are streamed instead. */
export const MAX_JSON_BODY = 4 * 1024 * 1024;
/** Unread bytes a connection buffers before it stops reading from the socket. */
const HIGH_WATER = 1024 * 1024;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Bytes from a socket, pulled by the request loop, with the socket paused while they pile up. */
export class Inbound {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private waiter: (() => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      if (this.size > HIGH_WATER) socket.pause();
      this.wake();
    });
    socket.on("end", () => {
      this.ended = true;
      this.wake();
    });
    socket.on("close", () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** The next bytes, or null at the end of input. */
  async read(): Promise<Buffer | null> {
    for (;;) {
      if (this.chunks.length > 0) {
        const c = this.chunks.shift()!;
        this.size -= c.length;
        if (this.size <= HIGH_WATER && this.socket.isPaused()) this.socket.resume();
        return c;
      }
      if (this.ended) return null;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Puts bytes back to be read first. */
  unread(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.unshift(b);
    this.size += b.length;
  }

  get atEnd(): boolean {
    return this.ended && this.chunks.length === 0;
  }
}

export interface Request {
  method: string;
  /** The path without the /vX.Y prefix, still percent-encoded. */
  path: string;
  /** The API version the client asked for ("1.41"), or undefined. */
  version: string | undefined;
  query: URLSearchParams;
  headers: Map<string, string>;
  /** The body, as a stream of bytes (empty when there is none). */
  body: AsyncIterable<Buffer>;
  /** The whole body as JSON; undefined when there is no body. */
  json(): Promise<any>;
  /** Whether the client asked to turn the connection into a raw stream. */
  upgrade: boolean;
}

const STATUS_TEXT: Record<number, string> = {
  101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
  405: "Method Not Allowed", 409: "Conflict", 411: "Length Required", 413: "Payload Too Large",
  431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
  503: "Service Unavailable",
};

/** Writes that wait for the socket to take them, so a slow reader slows the writer. */
export function writeAll(socket: net.Socket, data: Buffer | string): Promise<void> {
  if (socket.destroyed || !socket.writable) return Promise.resolve();
  return new Promise((resolve) => {
    if (socket.write(data)) resolve();
    else {
      const done = () => {
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    }
  });
}

export class Response {
  /** Headers have been written. */
  started = false;
  hijacked = false;
  private chunked = false;
  keepAlive = true;
  private closers: (() => void)[] = [];

  constructor(
    readonly socket: net.Socket,
    readonly inbound: Inbound,
  ) {
    socket.on("close", () => {
      for (const c of this.closers.splice(0)) c();
    });
  }

  /** Runs F when the client goes away (at once if it has). */
  onClose(f: () => void): void {
    if (this.socket.destroyed) f();
    else this.closers.push(f);
  }

  get closed(): boolean {
    return this.socket.destroyed;
  }

  private head(status: number, headers: Record<string, string>): string {
    const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Status"}`];
    const all: Record<string, string> = {
      "Api-Version": API_VERSION,
      "Docker-Experimental": "false",
      Ostype: "linux",
      Server: `tinyc/${TINYC_SERVER}`,
      Date: new Date().toUTCString(),
      ...headers,
    };
    for (const [k, v] of Object.entries(all)) lines.push(`${k}: ${v}`);
    return lines.join("\r\n") + "\r\n\r\n";
  }

  async send(status: number, body: Buffer | string = "", headers: Record<string, string> = {}): Promise<void> {
    this.started = true;
    const b = typeof body === "string" ? Buffer.from(body) : body;
    const h = { ...headers };
    if (status !== 204 && status !== 304) h["Content-Length"] = String(b.length);
    if (!this.keepAlive) h.Connection = "close";
    await writeAll(this.socket, this.head(status, h));
    if (b.length > 0) await writeAll(this.socket, b);
  }

  json(status: number, value: unknown): Promise<void> {
    return this.send(status, JSON.stringify(value) + "\n", { "Content-Type": "application/json" });
  }

  error(status: number, message: string): Promise<void> {
    return this.json(status, { message });
  }

  /** Starts a chunked response; its headers go out at once. */
  async begin(status: number, headers: Record<string, string> = {}): Promise<void> {
    this.started = true;
    this.chunked = true;
    await writeAll(this.socket, this.head(status, { ...headers, "Transfer-Encoding": "chunked" }));
  }

  async write(data: Buffer | string): Promise<void> {
    const b = typeof data === "string" ? Buffer.from(data) : data;
    if (b.length === 0) return;
    if (!this.chunked) throw new Error("write before begin");
    await writeAll(this.socket, Buffer.concat([Buffer.from(b.length.toString(16) + "\r\n"), b, Buffer.from("\r\n")]));
  }

  async end(): Promise<void> {
    if (this.chunked) {
      this.chunked = false;
      await writeAll(this.socket, "0\r\n\r\n");
    }
  }

  /** 101 UPGRADED; from then on the socket carries raw bytes both ways. */
  async hijack(): Promise<net.Socket> {
    this.started = true;
    this.hijacked = true;
    await writeAll(
      this.socket,
      this.head(101, {
        "Content-Type": "application/vnd.docker.raw-stream",
        Connection: "Upgrade",
        Upgrade: "tcp",
      }),
    );
    return this.socket;
  }
}

export const API_VERSION = "1.41";
export const MIN_API_VERSION = "1.12";
declare const TINYC_VERSION: string | undefined;
const TINYC_SERVER = typeof TINYC_VERSION === "string" ? TINYC_VERSION : "dev";

export type Handler = (req: Request, res: Response) => Promise<void>;

/** Reads up to the end of the request head; null when the client has gone. */
async function readHead(inb: Inbound): Promise<string | null> {
  let buf = Buffer.alloc(0);
  for (;;) {
    const at = buf.indexOf("\r\n\r\n");
    if (at >= 0) {
      inb.unread(buf.subarray(at + 4));
      return buf.subarray(0, at).toString("latin1");
    }
    if (buf.length > MAX_HEAD) throw new HttpError(431, "request head too large");
    const c = await inb.read();
    if (c === null) {
      if (buf.length === 0) return null;
      throw new HttpError(400, "connection closed inside a request head");
    }
    buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
  }
}

async function* fixedBody(inb: Inbound, length: number): AsyncGenerator<Buffer> {
  let left = length;
  while (left > 0) {
    const c = await inb.read();
    if (c === null) throw new HttpError(400, "connection closed inside a request body");
    if (c.length > left) {
      inb.unread(c.subarray(left));
      yield c.subarray(0, left);
      return;
    }
    left -= c.length;
    yield c;
  }
}

async function* chunkedBody(inb: Inbound): AsyncGenerator<Buffer> {
  let buf = Buffer.alloc(0);
  const more = async () => {
    const c = await inb.read();
    if (c === null) throw new HttpError(400, "connection closed inside a chunked body");
    buf = buf.length ? Buffer.concat([buf, c]) : c;
  };
  const line = async (): Promise<string> => {
    for (;;) {
      const at = buf.indexOf("\r\n");
      if (at >= 0) {
        const l = buf.subarray(0, at).toString("latin1");
        buf = buf.subarray(at + 2);
        return l;
      }
      if (buf.length > 4096) throw new HttpError(400, "bad chunk header");
      await more();
    }
  };
  for (;;) {
    const sizeText = (await line()).split(";")[0].trim();
    if (!/^[0-9a-fA-F]{1,15}$/.test(sizeText)) throw new HttpError(400, "bad chunk size");
    let left = parseInt(sizeText, 16);
    if (left === 0) {
      // Trailers, up to the empty line.
      while ((await line()) !== "");
      inb.unread(buf);
      return;
    }
    while (left > 0) {
      if (buf.length === 0) await more();
      const take = Math.min(left, buf.length);
      const out = buf.subarray(0, take);
      buf = buf.subarray(take);
      left -= take;
      yield out;
    }
    while (buf.length < 2) await more();
    if (buf[0] !== 13 || buf[1] !== 10) throw new HttpError(400, "bad chunk end");
    buf = buf.subarray(2);
  }
}

async function* emptyBody(): AsyncGenerator<Buffer> {}

function parseRequest(head: string, inb: Inbound): Request {
  const lines = head.split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0]);
  if (!m) throw new HttpError(400, "malformed request line");
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const c = l.indexOf(":");
    if (c <= 0) throw new HttpError(400, "malformed header line");
    const k = l.slice(0, c).trim().toLowerCase();
    const v = l.slice(c + 1).trim();
    headers.set(k, headers.has(k) ? `${headers.get(k)}, ${v}` : v);
  }
  const target = m[2];
  const q = target.indexOf("?");
  let path = q >= 0 ? target.slice(0, q) : target;
  const query = new URLSearchParams(q >= 0 ? target.slice(q + 1) : "");
  let version: string | undefined;
  const vm = /^\/v(\d+\.\d+)(\/.*)$/.exec(path);
  if (vm) {
    version = vm[1];
    path = vm[2];
  }
  let body: AsyncIterable<Buffer>;
  const te = headers.get("transfer-encoding");
  const cl = headers.get("content-length");
  if (te !== undefined) {
    if (te.toLowerCase() !== "chunked") throw new HttpError(501, `transfer encoding ${JSON.stringify(te)} is not supported`);
    body = chunkedBody(inb);
  } else if (cl !== undefined) {
    if (!/^\d{1,15}$/.test(cl)) throw new HttpError(400, "bad Content-Length");
    body = fixedBody(inb, Number(cl));
  } else body = emptyBody();
  const hasBody = te !== undefined || (cl !== undefined && cl !== "0");
  let consumed = false;
  const req: Request = {
    method: m[1],
    path,
    version,
    query,
    headers,
    upgrade: /\bupgrade\b/i.test(headers.get("connection") ?? "") || headers.has("upgrade"),
    body: {
      [Symbol.asyncIterator]() {
        consumed = true;
        return body[Symbol.asyncIterator]();
      },
    },
    async json() {
      if (!hasBody || consumed) return undefined;
      const parts: Buffer[] = [];
      let size = 0;
      for await (const c of req.body) {
        size += c.length;
        if (size > MAX_JSON_BODY) throw new HttpError(413, `request body larger than ${MAX_JSON_BODY} bytes`);
        parts.push(c);
      }
      const text = Buffer.concat(parts).toString("utf8");
      if (text.trim() === "") return undefined;
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new HttpError(400, `malformed JSON body: ${(e as Error).message}`);
      }
    },
  };
  (req as any).drain = async () => {
    if (!consumed) for await (const _ of req.body);
  };
  (req as any).http10 = m[3] === "0";
  return req;
}

/** Serves HANDLER on a listening socket: every connection its own request loop. */
export function serve(server: net.Server, handler: Handler, onError: (e: unknown) => void): void {
  server.on("connection", (socket) => {
    socket.on("error", () => {});
    void connection(socket, handler, onError);
  });
}

async function connection(socket: net.Socket, handler: Handler, onError: (e: unknown) => void): Promise<void> {
  const inb = new Inbound(socket);
  for (;;) {
    let req: Request;
    const res = new Response(socket, inb);
    try {
      const head = await readHead(inb);
      if (head === null) break;
      req = parseRequest(head, inb);
      if ((req as any).http10 || /\bclose\b/i.test(req.headers.get("connection") ?? "")) res.keepAlive = false;
    } catch (e) {
      res.keepAlive = false;
      if (e instanceof HttpError) await res.error(e.status, e.message);
      break;
    }
    try {
      await handler(req, res);
    } catch (e) {
      if (!(e instanceof HttpError)) onError(e);
      const status = e instanceof HttpError ? e.status : 500;
      const msg = e instanceof Error ? e.message : String(e);
      if (!res.started) {
        res.keepAlive = res.keepAlive && e instanceof HttpError && status < 500;
        await res.error(status, msg);
      } else {
        // Mid-stream there is no status left to give: the connection is cut.
        socket.destroy();
        return;
      }
    }
    if (res.hijacked) return;
    try {
      await (req as any).drain();
    } catch {
      res.keepAlive = false;
    }
    await res.end();
    if (!res.keepAlive || socket.destroyed) break;
  }
  if (!socket.destroyed) socket.end();
}
