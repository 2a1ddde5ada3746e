import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { decompress, type ByteStream } from "../../src/image/bytes";
import {
  readTar,
  tarEnd,
  tarFile,
  tarHeader,
  tarPadding,
  type TarHeader,
} from "../../src/image/tar";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tinyc-tar-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The bytes in chunks of N, to test reads that cross chunk boundaries. */
async function* chunked(data: Uint8Array, n = 333): ByteStream {
  for (let i = 0; i < data.length; i += n) yield data.subarray(i, i + n);
}

interface Read extends TarHeader {
  data: string;
}

async function readAll(data: Uint8Array, n?: number): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readTar(await decompress(chunked(data, n)))) {
    const parts: Uint8Array[] = [];
    for await (const c of e.body()) parts.push(c);
    out.push({ ...e, data: Buffer.concat(parts).toString() });
  }
  return out;
}

/** A raw header block, for entries the writer would never make. */
function rawHeader(
  name: string,
  flag: string,
  size: number,
  extra: (b: Buffer) => void = () => {},
) {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100);
  b.write("0000644\0", 100);
  b.write("0000000\0", 108);
  b.write("0000000\0", 116);
  b.write(size.toString(8).padStart(11, "0") + "\0", 124);
  b.write("00000000000\0", 136);
  b.write(flag, 156);
  b.write("ustar\x0000", 257);
  extra(b);
  b.fill(32, 148, 156);
  let sum = 0;
  for (const v of b) sum += v;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return b;
}

function paxBlock(records: Record<string, string | Buffer>): Buffer {
  const body = Buffer.concat(
    Object.entries(records).map(([k, v]) => {
      const rest = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from("\n")]);
      let len = rest.length + 1;
      while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
      return Buffer.concat([Buffer.from(String(len)), rest]);
    }),
  );
  return Buffer.concat([rawHeader("pax", "x", body.length), body, tarPadding(body.length)]);
}

function gnuTar(args: string[], cwd: string): Buffer {
  const r = Bun.spawnSync(["tar", ...args, "-f", "-"], { cwd, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return Buffer.from(r.stdout);
}

describe("readTar", () => {
  const longDir = "d".repeat(90) + "/" + "e".repeat(90);
  const longName = `${longDir}/${"f".repeat(60)}`;
  const longTarget = "t".repeat(150);

  function stage(): string {
    const dir = fs.mkdtempSync(path.join(tmp, "stage-"));
    fs.mkdirSync(path.join(dir, longDir), { recursive: true });
    fs.writeFileSync(path.join(dir, longName), "long file");
    fs.symlinkSync(longTarget, path.join(dir, "sym"));
    fs.writeFileSync(path.join(dir, "plain"), "x".repeat(1000));
    fs.chmodSync(path.join(dir, "plain"), 0o4755);
    fs.utimesSync(path.join(dir, "plain"), 1_600_000_000, 1_600_000_000);
    fs.linkSync(path.join(dir, "plain"), path.join(dir, "hard"));
    return dir;
  }

  test("readTar reads GNU tar's pax format: long names and targets, modes, times", async () => {
    const dir = stage();
    const entries = await readAll(gnuTar(["--format=pax", "-c", "."], dir));
    const by = new Map(entries.map((e) => [e.name.replace(/^\.\//, "").replace(/\/$/, ""), e]));
    expect(by.get(longName)?.data).toBe("long file");
    expect(by.get("sym")?.type).toBe("symlink");
    expect(by.get("sym")?.linkname).toBe(longTarget);
    const plain = by.get("plain") ?? by.get("hard");
    expect(plain?.mode).toBe(0o4755);
    expect(Math.floor(plain!.mtime)).toBe(1_600_000_000);
    const link = [by.get("plain"), by.get("hard")].find((e) => e?.type === "hardlink");
    expect(link?.linkname.replace(/^\.\//, "")).toMatch(/^(plain|hard)$/);
    expect(by.get(longDir)?.type).toBe("dir");
  });

  test("readTar reads GNU long names (L) and long links (K)", async () => {
    const dir = stage();
    const entries = await readAll(gnuTar(["--format=gnu", "-c", "."], dir), 512);
    const names = entries.map((e) => e.name.replace(/^\.\//, ""));
    expect(names).toContain(longName);
    expect(entries.find((e) => e.type === "symlink")?.linkname).toBe(longTarget);
    expect(entries.find((e) => e.name.endsWith(longName))?.data).toBe("long file");
  });

  test("readTar takes path, size, uid, gid, mtime and xattrs from pax records", async () => {
    const archive = Buffer.concat([
      paxBlock({
        path: "from/pax",
        uid: "3000000",
        gid: "4000000",
        mtime: "1700000000.5",
        "SCHILY.xattr.user.one": Buffer.from([1, 2, 0, 255]),
        "LIBARCHIVE.xattr.user.t%C3%BCv": Buffer.from("dmFsdWU=", "utf8"),
      }),
      rawHeader("short", "0", 5),
      Buffer.from("hello"),
      tarPadding(5),
      tarEnd(),
    ]);
    const [e] = await readAll(archive);
    expect(e.name).toBe("from/pax");
    expect(e.uid).toBe(3000000);
    expect(e.gid).toBe(4000000);
    expect(e.mtime).toBe(1700000000.5);
    expect(e.data).toBe("hello");
    expect([...e.xattrs["user.one"]]).toEqual([1, 2, 0, 255]);
    expect(e.xattrs["user.tüv"].toString()).toBe("value");
  });

  test("readTar reads GNU base-256 numbers", async () => {
    const header = rawHeader("big", "0", 0, (b) => {
      b.fill(0, 108, 116);
      b[108] = 0x80;
      b.writeUInt32BE(5_000_000, 112);
    });
    const [e] = await readAll(Buffer.concat([header, tarEnd()]));
    expect(e.uid).toBe(5_000_000);
  });

  test("readTar skips bodies that are not read", async () => {
    const archive = Buffer.concat([
      tarFile("a", Buffer.from("x".repeat(2000))),
      tarFile("b", Buffer.from("second")),
      tarEnd(),
    ]);
    const names: string[] = [];
    for await (const e of readTar(chunked(archive, 100))) names.push(e.name);
    expect(names).toEqual(["a", "b"]);
  });

  test("readTar refuses a truncated archive", async () => {
    const archive = tarFile("a", Buffer.from("x".repeat(2000)));
    await expect(readAll(archive.subarray(0, 1200))).rejects.toThrow(/unexpected end of archive/);
  });

  test("readTar refuses a header with a bad checksum", async () => {
    const archive = Buffer.from(tarFile("a", Buffer.from("x")));
    archive[10] ^= 1;
    await expect(readAll(archive)).rejects.toThrow(/checksum/);
  });

  test("readTar refuses GNU sparse files", async () => {
    const archive = Buffer.concat([rawHeader("s", "S", 0), tarEnd()]);
    await expect(readAll(archive)).rejects.toThrow(/sparse/);
  });

  test("readTar caps a long-name entry's size", async () => {
    const archive = Buffer.concat([rawHeader("././@LongLink", "L", 64 << 20), tarEnd()]);
    await expect(readAll(archive)).rejects.toThrow(/too large/);
  });
});

describe("tarHeader", () => {
  test("tarHeader writes what readTar and GNU tar read back", async () => {
    const name = `${"n".repeat(120)}/file`;
    const parts = [
      tarHeader({ name: "dir/", type: "dir", mode: 0o755 }),
      tarHeader({ name, type: "file", size: 3, uid: 4_000_000, gid: 7, mtime: 1_234_567_890 }),
      Buffer.from("abc"),
      tarPadding(3),
      tarHeader({ name: "l", type: "symlink", linkname: "x".repeat(200) }),
      tarHeader({ name: "x", type: "file", size: 0, xattrs: { "user.k": Buffer.from("v") } }),
      tarEnd(),
    ];
    const archive = Buffer.concat(parts);
    const entries = await readAll(archive);
    expect(entries.map((e) => e.name)).toEqual(["dir/", name, "l", "x"]);
    expect(entries[0].type).toBe("dir");
    expect(entries[1].uid).toBe(4_000_000);
    expect(entries[1].data).toBe("abc");
    expect(entries[2].linkname).toBe("x".repeat(200));
    expect(entries[3].xattrs["user.k"].toString()).toBe("v");
    const file = path.join(tmp, "written.tar");
    fs.writeFileSync(file, archive);
    const listed = Bun.spawnSync(["tar", "-tf", file]).stdout.toString().trim().split("\n");
    expect(listed).toEqual(["dir/", name, "l", "x"]);
  });
});

describe("decompress", () => {
  const archive = Buffer.concat([tarFile("z", Buffer.from("zipped")), tarEnd()]);

  test("decompress reads gzip and zstd layers, detected by their first bytes", async () => {
    for (const packed of [zlib.gzipSync(archive), zlib.zstdCompressSync(archive)]) {
      const [e] = await readAll(packed, 7);
      expect(e.data).toBe("zipped");
    }
  });

  test("decompress fails on a truncated gzip stream", async () => {
    const packed = zlib.gzipSync(Buffer.concat([archive, Buffer.alloc(100_000, 1)]));
    await expect(readAll(packed.subarray(0, packed.length - 20))).rejects.toThrow(/gzip data/);
  });

  test("decompress refuses xz", async () => {
    const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 0, 0]);
    await expect(readAll(xz)).rejects.toThrow(/xz-compressed layers are not supported/);
  });
});
