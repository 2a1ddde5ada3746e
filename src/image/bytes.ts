// A reader over a stream of byte chunks: exact reads, skips and bounded sub-streams, which is
// what a tar reader needs; and the detection of a layer's compression from its first bytes.

import type { Transform } from "node:stream";
import { TinycError } from "../errors";

export type ByteStream = AsyncIterable<Uint8Array>;

export class ByteReader {
  private it: AsyncIterator<Uint8Array>;
  private head: Uint8Array = new Uint8Array(0);
  private done = false;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(source: ByteStream) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (!this.done && this.head.length === 0) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.head = r.value;
    }
    return this.head.length > 0;
  }

  /** Up to N bytes, fewer only at the end of the stream. */
  async read(n: number): Promise<Uint8Array> {
    if (!(await this.fill())) return new Uint8Array(0);
    if (this.head.length >= n) return this.take(n);
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n && (await this.fill())) {
      const part = this.take(Math.min(n - got, this.head.length));
      out.set(part, got);
      got += part.length;
    }
    return got === n ? out : out.subarray(0, got);
  }

  /** The next chunk, at most N bytes long; empty at the end. */
  async chunk(n: number): Promise<Uint8Array> {
    if (!(await this.fill())) return new Uint8Array(0);
    return this.take(Math.min(n, this.head.length));
  }

  /** Drops N bytes; returns how many there were. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const c = await this.chunk(left);
      if (c.length === 0) break;
      left -= c.length;
    }
    return n - left;
  }

  /** Reads to the end; returns the count of bytes dropped. */
  async drain(): Promise<number> {
    let n = 0;
    for (;;) {
      const c = await this.chunk(1 << 20);
      if (c.length === 0) return n;
      n += c.length;
    }
  }

  private take(n: number): Uint8Array {
    const part = this.head.subarray(0, n);
    this.head = this.head.subarray(n);
    this.offset += n;
    return part;
  }
}

export type Compression = "gzip" | "zstd" | "none";

export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) {
    throw new TinycError("bzip2-compressed layers are not supported");
  }
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) {
    throw new TinycError("xz-compressed layers are not supported");
  }
  return "none";
}

/** Yields the first chunks again after they were looked at. */
async function* prepend(first: Uint8Array[], rest: AsyncIterator<Uint8Array>): ByteStream {
  for (const c of first) yield c;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}

/** Feeds SOURCE through a zlib transform and yields what comes out, with back-pressure. */
async function* through(t: Transform, source: ByteStream, what: string): ByteStream {
  let failed: unknown;
  const pump = (async () => {
    try {
      for await (const c of source) {
        if (!t.write(c)) await new Promise((r) => t.once("drain", r));
      }
      t.end();
    } catch (e) {
      failed = e;
      t.destroy(e as Error);
    }
  })();
  try {
    for await (const c of t) yield c as Uint8Array;
  } catch (e) {
    if (failed) throw failed;
    throw new TinycError(`${what} data: ${String((e as Error).message ?? e).toLowerCase()}`);
  } finally {
    t.destroy();
    await pump;
  }
  if (failed) throw failed;
}

/** The stream, decompressed when its first bytes say gzip or zstd. */
export async function decompress(
  source: ByteStream,
  onDetect?: (c: Compression) => void,
): Promise<ByteStream> {
  const it = source[Symbol.asyncIterator]();
  const first: Uint8Array[] = [];
  let have = 0;
  while (have < 4) {
    const r = await it.next();
    if (r.done) break;
    first.push(r.value);
    have += r.value.length;
  }
  const head = Buffer.concat(first).subarray(0, 4);
  const kind = detectCompression(head);
  onDetect?.(kind);
  const all = prepend(first, it);
  // node:zlib takes milliseconds to load: only a command that decompresses pays for it.
  const zlib = require("node:zlib") as typeof import("node:zlib");
  if (kind === "gzip") return through(zlib.createGunzip(), all, "gzip");
  if (kind === "zstd") return through(zlib.createZstdDecompress(), all, "zstd");
  return all;
}

/** Passes the stream on unchanged while feeding every chunk to ON. */
export async function* tap(source: ByteStream, on: (c: Uint8Array) => void): ByteStream {
  for await (const c of source) {
    on(c);
    yield c;
  }
}

/** A file's bytes as a stream. */
export function fileStream(path: string): ByteStream {
  return Bun.file(path).stream() as unknown as ByteStream;
}
