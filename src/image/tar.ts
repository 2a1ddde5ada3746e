// A streaming tar reader and a small writer. The reader understands ustar, GNU long names and
// links (types L and K) and PAX headers (path, linkpath, size, uid, gid, uname, gname, mtime,
// and extended attributes as SCHILY.xattr.* and LIBARCHIVE.xattr.*); entry bodies are streamed,
// never held whole. GNU sparse files and multi-volume archives are refused.

import { TinycError } from "../errors";
import { ByteReader, type ByteStream } from "./bytes";

export type EntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export interface TarHeader {
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  size: number;
  /** Seconds since the epoch, with a fraction when PAX gave one. */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, Buffer>;
}

export interface TarEntry extends TarHeader {
  /** The entry's content; read it before asking for the next entry, or it is skipped. */
  body(): ByteStream;
}

const BLOCK = 512;
/** Long names and PAX headers are held in memory: a cap keeps a hostile one from filling it. */
const META_MAX = 1 << 20;

function bad(why: string): TinycError {
  return new TinycError(`invalid tar archive: ${why}`);
}

function cString(b: Uint8Array, off: number, len: number): string {
  const field = b.subarray(off, off + len);
  const end = field.indexOf(0);
  return Buffer.from(end < 0 ? field : field.subarray(0, end)).toString("utf8");
}

/** An octal field, or GNU's base-256 form (high bit of the first byte set). */
function number(b: Uint8Array, off: number, len: number): number {
  if (b[off] & 0x80) {
    const negative = b[off] === 0xff;
    let v = (b[off] & 0x7f) ^ (negative ? 0x7f : 0);
    for (let i = 1; i < len; i++) v = v * 256 + (negative ? b[off + i] ^ 0xff : b[off + i]);
    return negative ? -(v + 1) : v;
  }
  const text = cString(b, off, len).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw bad(`bad number field ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function checksumOk(b: Uint8Array): boolean {
  const want = number(b, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 32 : b[i];
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return want === unsigned || want === signed;
}

const typeOf: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

/** PAX records by key; values stay bytes, since an xattr value need not be text. */
type Pax = Record<string, Buffer>;

/** PAX records: "LEN KEY=VALUE\n", LEN counting the whole record. */
function parsePax(data: Uint8Array): Pax {
  const out: Pax = {};
  let off = 0;
  while (off < data.length) {
    const space = data.indexOf(0x20, off);
    if (space < 0) break;
    const len = parseInt(Buffer.from(data.subarray(off, space)).toString(), 10);
    if (!(len > 0) || off + len > data.length) throw bad("bad pax record");
    const record = Buffer.from(data.subarray(space + 1, off + len - 1));
    const eq = record.indexOf(0x3d);
    if (eq > 0) out[record.subarray(0, eq).toString("utf8")] = record.subarray(eq + 1);
    off += len;
  }
  return out;
}

/** Extended attributes in PAX: SCHILY.xattr.NAME=raw, LIBARCHIVE.xattr.URLNAME=base64. */
function paxXattrs(pax: Pax): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith("SCHILY.xattr.")) out[k.slice(13)] = v;
    else if (k.startsWith("LIBARCHIVE.xattr.")) {
      out[decodeURIComponent(k.slice(17))] = Buffer.from(v.toString("latin1"), "base64");
    }
  }
  return out;
}

function parseHeader(b: Uint8Array): { header: TarHeader; flag: string } {
  if (!checksumOk(b)) throw bad("header checksum mismatch");
  const flag = String.fromCharCode(b[156]);
  const magic = cString(b, 257, 6);
  let name = cString(b, 0, 100);
  // Only POSIX ustar has the prefix field; GNU keeps times there.
  const gnu = Buffer.from(b.subarray(257, 265)).toString("latin1") === "ustar  \0";
  if (magic === "ustar" && !gnu) {
    const prefix = cString(b, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  const header: TarHeader = {
    name,
    type: typeOf[flag] ?? "file",
    mode: number(b, 100, 8) & 0o7777,
    uid: number(b, 108, 8),
    gid: number(b, 116, 8),
    uname: cString(b, 265, 32) || undefined,
    gname: cString(b, 297, 32) || undefined,
    size: number(b, 124, 12),
    mtime: number(b, 136, 12),
    linkname: cString(b, 157, 100),
    devmajor: magic.startsWith("ustar") ? number(b, 329, 8) : 0,
    devminor: magic.startsWith("ustar") ? number(b, 337, 8) : 0,
    xattrs: {},
  };
  return { header, flag };
}

function applyPax(h: TarHeader, raw: Pax): void {
  const pax = (k: string) => raw[k]?.toString("utf8");
  h.name = pax("path") ?? h.name;
  h.linkname = pax("linkpath") ?? h.linkname;
  h.uname = pax("uname") ?? h.uname;
  h.gname = pax("gname") ?? h.gname;
  if (raw.size !== undefined) h.size = paxNumber(pax("size")!, "size");
  if (raw.uid !== undefined) h.uid = paxNumber(pax("uid")!, "uid");
  if (raw.gid !== undefined) h.gid = paxNumber(pax("gid")!, "gid");
  if (raw.mtime !== undefined) h.mtime = paxTime(pax("mtime")!);
  Object.assign(h.xattrs, paxXattrs(raw));
  if (Object.keys(raw).some((k) => k.startsWith("GNU.sparse."))) {
    throw bad(`sparse file ${JSON.stringify(h.name)} not supported`);
  }
}

function paxTime(v: string): number {
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(v)) throw bad(`bad pax mtime ${JSON.stringify(v)}`);
  return Number(v);
}

function paxNumber(v: string, what: string): number {
  if (!/^[0-9]+$/.test(v)) throw bad(`bad pax ${what} ${JSON.stringify(v)}`);
  return Number(v);
}

function padOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

async function readMeta(r: ByteReader, size: number, what: string): Promise<Uint8Array> {
  if (size > META_MAX) throw bad(`${what} of ${size} bytes is too large`);
  const data = await r.read(size);
  if (data.length < size) throw bad("unexpected end of archive");
  await r.skip(padOf(size));
  return data;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** A state that carries what meta entries (L, K, x, g) say about the next real entry. */
interface Pending {
  longName?: string;
  longLink?: string;
  pax?: Pax;
  global: Pax;
}

async function nextHeader(r: ByteReader, p: Pending): Promise<TarHeader | null> {
  for (;;) {
    const block = await r.read(BLOCK);
    if (block.length === 0) return null;
    if (block.length < BLOCK) throw bad("unexpected end of archive");
    if (isZero(block)) return null;
    const { header, flag } = parseHeader(block);
    if (flag === "L" || flag === "K") {
      const text = cString(await readMeta(r, header.size, "long name"), 0, header.size);
      if (flag === "L") p.longName = text;
      else p.longLink = text;
      continue;
    }
    if (flag === "x" || flag === "g") {
      const pax = parsePax(await readMeta(r, header.size, "pax header"));
      if (flag === "g") Object.assign(p.global, pax);
      else p.pax = { ...p.pax, ...pax };
      continue;
    }
    if (flag === "V") {
      await r.skip(header.size + padOf(header.size));
      continue;
    }
    if (flag === "S") throw bad(`sparse file ${JSON.stringify(header.name)} not supported`);
    if (flag === "M") throw bad("multi-volume archives are not supported");
    if (p.longName !== undefined) header.name = p.longName;
    if (p.longLink !== undefined) header.linkname = p.longLink;
    applyPax(header, { ...p.global, ...p.pax });
    p.longName = p.longLink = p.pax = undefined;
    if (header.name.endsWith("/") && header.type === "file") header.type = "dir";
    // As Go's archive/tar does: only regular files have a body, whatever the size field says.
    if (header.type !== "file") header.size = 0;
    return header;
  }
}

/**
 * The entries of a tar stream, in order. Each entry's body must be read before the next is
 * asked for; what is left of it is skipped. Bytes after the end-of-archive blocks are read too,
 * so a digest taken over the stream covers all of it.
 */
export async function* readTar(source: ByteStream): AsyncGenerator<TarEntry> {
  const r = new ByteReader(source);
  const pending: Pending = { global: {} };
  for (;;) {
    const header = await nextHeader(r, pending);
    if (!header) break;
    let left = header.size;
    const body = async function* (): ByteStream {
      while (left > 0) {
        const c = await r.chunk(left);
        if (c.length === 0)
          throw bad(`unexpected end of archive in ${JSON.stringify(header.name)}`);
        left -= c.length;
        yield c;
      }
    };
    yield { ...header, body };
    if (left > 0 && (await r.skip(left)) < left) throw bad("unexpected end of archive");
    left = 0;
    if ((await r.skip(padOf(header.size))) < padOf(header.size)) {
      throw bad("unexpected end of archive");
    }
  }
  await r.drain();
}

// The writer: ustar headers, with a PAX header in front when a field does not fit.

function octal(out: Uint8Array, off: number, len: number, v: number): void {
  const text = v.toString(8).padStart(len - 1, "0");
  out.set(Buffer.from(text + "\0", "latin1"), off);
}

function field(out: Uint8Array, off: number, len: number, text: string): void {
  out.set(Buffer.from(text, "utf8").subarray(0, len), off);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

const flagOf: Record<EntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

function ustar(h: Partial<TarHeader> & { name: string }, flag: string, size: number): Uint8Array {
  const b = new Uint8Array(BLOCK);
  field(b, 0, 100, h.name);
  octal(b, 100, 8, h.mode ?? 0o644);
  octal(b, 108, 8, Math.min(h.uid ?? 0, 0o7777777));
  octal(b, 116, 8, Math.min(h.gid ?? 0, 0o7777777));
  octal(b, 124, 12, size);
  octal(b, 136, 12, Math.floor(Math.min(h.mtime ?? 0, 0o77777777777)));
  b[156] = flag.charCodeAt(0);
  field(b, 157, 100, h.linkname ?? "");
  b.set(Buffer.from("ustar\x0000", "latin1"), 257);
  field(b, 265, 32, h.uname ?? "");
  field(b, 297, 32, h.gname ?? "");
  octal(b, 329, 8, h.devmajor ?? 0);
  octal(b, 337, 8, h.devminor ?? 0);
  b.fill(32, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  octal(b, 148, 7, sum);
  b[155] = 32;
  return b;
}

/** The header blocks of one entry (a PAX header first when needed); the body follows. */
export function tarHeader(h: Partial<TarHeader> & { name: string; type: EntryType }): Uint8Array {
  const size = h.type === "file" ? (h.size ?? 0) : 0;
  const records: Buffer[] = [];
  if (Buffer.byteLength(h.name) > 100) records.push(paxRecord("path", Buffer.from(h.name)));
  if (Buffer.byteLength(h.linkname ?? "") > 100) {
    records.push(paxRecord("linkpath", Buffer.from(h.linkname!)));
  }
  if (size > 0o77777777777) records.push(paxRecord("size", Buffer.from(String(size))));
  if ((h.uid ?? 0) > 0o7777777) records.push(paxRecord("uid", Buffer.from(String(h.uid))));
  if ((h.gid ?? 0) > 0o7777777) records.push(paxRecord("gid", Buffer.from(String(h.gid))));
  for (const [k, v] of Object.entries(h.xattrs ?? {})) {
    records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  }
  const main = ustar(h, flagOf[h.type], Math.min(size, 0o77777777777));
  if (records.length === 0) return main;
  const data = Buffer.concat(records);
  const paxName = `PaxHeaders/${h.name.replace(/\/$/, "").split("/").pop()}`.slice(0, 100);
  const paxHead = ustar({ name: paxName, mode: 0o644 }, "x", data.length);
  return Buffer.concat([paxHead, data, new Uint8Array(padOf(data.length)), main]);
}

/** Zero bytes that fill an entry of SIZE bytes up to a whole block. */
export function tarPadding(size: number): Uint8Array {
  return new Uint8Array(padOf(size));
}

/** The two zero blocks that end an archive. */
export function tarEnd(): Uint8Array {
  return new Uint8Array(BLOCK * 2);
}

/** A whole entry in memory: header, body and padding. For small files (manifests, configs). */
export function tarFile(name: string, data: Uint8Array, mode = 0o644, mtime = 0): Uint8Array {
  const head = tarHeader({ name, type: "file", size: data.length, mode, mtime });
  return Buffer.concat([head, data, tarPadding(data.length)]);
}
