import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { createHash } from "node:crypto";
import type { ByteStream } from "../../src/image/bytes";
import { imageSys, SysError, type ImageSys } from "../../src/image/sys";
import { tarEnd, tarHeader, tarPadding, type EntryType, type TarHeader } from "../../src/image/tar";
import { unpackLayer } from "../../src/image/unpack";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tinyc-unpack-"));
fs.chmodSync(tmp, 0o755);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const IS_ROOT = process.getuid!() === 0;
const HAS_SETFATTR = Bun.which("setfattr") !== null;

type Spec = Partial<TarHeader> & { name: string; type?: EntryType; data?: string };

function layer(entries: Spec[]): Buffer {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? "");
    const type = e.type ?? "file";
    parts.push(tarHeader({ mode: type === "dir" ? 0o755 : 0o644, ...e, type, size: data.length }));
    if (type === "file") parts.push(data, tarPadding(data.length));
  }
  parts.push(tarEnd());
  return Buffer.concat(parts);
}

async function* once(data: Uint8Array): ByteStream {
  yield data;
}

let n = 0;
function freshDir(): string {
  const dir = path.join(tmp, `case-${++n}`);
  fs.mkdirSync(path.join(dir, "layer"), { recursive: true });
  return dir;
}

async function unpack(entries: Spec[], sys?: ImageSys) {
  const dir = freshDir();
  const dest = path.join(dir, "layer");
  const notes = await unpackLayer(once(layer(entries)), dest, { sys });
  return { dir, dest, notes };
}

/** The real calls, with the xattrs that were set written down. */
function recordingSys(): ImageSys & { xattrs: [string, string, string][] } {
  const real = imageSys();
  const xattrs: [string, string, string][] = [];
  return {
    xattrs,
    mknod: (...a) => real.mknod(...a),
    mkfifo: (...a) => real.mkfifo(...a),
    setXattr(p, name, value) {
      xattrs.push([p, name, value.toString()]);
    },
  };
}

function getXattr(p: string, name: string): string | null {
  const r = Bun.spawnSync(["getfattr", "-h", "--only-values", "-n", name, p], { stderr: "pipe" });
  return r.exitCode === 0 ? r.stdout.toString() : null;
}

describe("unpackLayer", () => {
  test("unpackLayer refuses an entry with ../ and writes nothing outside", async () => {
    for (const name of ["../evil", "a/../../evil", "./../evil"]) {
      const dir = freshDir();
      const p = unpackLayer(once(layer([{ name, data: "x" }])), path.join(dir, "layer"));
      await expect(p).rejects.toThrow(/points outside the layer/);
      expect(fs.existsSync(path.join(dir, "evil"))).toBe(false);
    }
  });

  test("unpackLayer refuses an entry through a symlinked parent", async () => {
    const dir = freshDir();
    const outside = path.join(dir, "outside");
    fs.mkdirSync(outside);
    const entries: Spec[] = [
      { name: "link", type: "symlink", linkname: outside },
      { name: "link/evil", data: "x" },
    ];
    const p = unpackLayer(once(layer(entries)), path.join(dir, "layer"));
    await expect(p).rejects.toThrow(/goes through the symbolic link "link"/);
    expect(fs.readdirSync(outside)).toEqual([]);
    const rel: Spec[] = [
      { name: "up", type: "symlink", linkname: ".." },
      { name: "up/evil2", data: "x" },
    ];
    await expect(unpack(rel)).rejects.toThrow(/symbolic link/);
    expect(fs.existsSync(path.join(tmp, "evil2"))).toBe(false);
  });

  test("unpackLayer refuses a hard link through a symlink or outside the layer", async () => {
    const viaLink: Spec[] = [
      { name: "l", type: "symlink", linkname: "/etc" },
      { name: "h", type: "hardlink", linkname: "l/passwd" },
    ];
    await expect(unpack(viaLink)).rejects.toThrow(/symbolic link/);
    await expect(unpack([{ name: "h", type: "hardlink", linkname: "../x" }])).rejects.toThrow(
      /outside the layer/,
    );
    await expect(unpack([{ name: "h", type: "hardlink", linkname: "missing" }])).rejects.toThrow(
      /no such entry in the layer/,
    );
  });

  test("unpackLayer keeps an absolute entry inside the layer", async () => {
    const { dest } = await unpack([{ name: "/abs/file", data: "in" }]);
    expect(fs.readFileSync(path.join(dest, "abs/file"), "utf8")).toBe("in");
  });

  test("unpackLayer makes hard links within the layer", async () => {
    const { dest } = await unpack([
      { name: "a/one", data: "same" },
      { name: "b/two", type: "hardlink", linkname: "a/one" },
    ]);
    const one = fs.statSync(path.join(dest, "a/one"));
    const two = fs.statSync(path.join(dest, "b/two"));
    expect(two.ino).toBe(one.ino);
    expect(one.nlink).toBe(2);
  });

  test("unpackLayer keeps symlink targets as text, whatever they name", async () => {
    const { dest } = await unpack([
      { name: "abs", type: "symlink", linkname: "/etc/passwd" },
      { name: "rel", type: "symlink", linkname: "../../../x" },
    ]);
    expect(fs.readlinkSync(path.join(dest, "abs"))).toBe("/etc/passwd");
    expect(fs.readlinkSync(path.join(dest, "rel"))).toBe("../../../x");
  });

  test("unpackLayer turns whiteouts into 0:0 character devices and lists them", async () => {
    const { dest, notes } = await unpack([
      { name: ".wh.gone", data: "" },
      { name: "a/", type: "dir" },
      { name: "a/.wh.b", data: "" },
      { name: "kept", data: "k" },
      { name: ".wh.kept", data: "" },
    ]);
    expect(notes.whiteouts).toEqual(["gone", "a/b", "kept"]);
    expect(notes.whiteoutForm).toBe("device");
    for (const p of ["gone", "a/b"]) {
      const st = fs.lstatSync(path.join(dest, p));
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe(0);
    }
    // The layer's own file of that name stays: overlay cannot show both.
    expect(fs.readFileSync(path.join(dest, "kept"), "utf8")).toBe("k");
    expect(fs.existsSync(path.join(dest, ".wh.gone"))).toBe(false);
  });

  test("unpackLayer keeps .wh. files where mknod is refused", async () => {
    const sys = recordingSys();
    sys.mknod = () => {
      throw new SysError("mknod", "EPERM");
    };
    const { dest, notes } = await unpack([{ name: ".wh.gone", data: "" }], sys);
    expect(notes.whiteoutForm).toBe("file");
    expect(fs.existsSync(path.join(dest, ".wh.gone"))).toBe(true);
    expect(fs.existsSync(path.join(dest, "gone"))).toBe(false);
  });

  test("unpackLayer marks an opaque folder without hiding this layer's own files", async () => {
    const sys = recordingSys();
    const { dest, notes } = await unpack(
      [
        { name: "d/", type: "dir" },
        { name: "d/new", data: "mine" },
        { name: "d/.wh..wh..opq", data: "" },
        { name: "d/later", data: "also mine" },
      ],
      sys,
    );
    expect(fs.readFileSync(path.join(dest, "d/new"), "utf8")).toBe("mine");
    expect(fs.readFileSync(path.join(dest, "d/later"), "utf8")).toBe("also mine");
    expect(fs.existsSync(path.join(dest, "d/.wh..wh..opq"))).toBe(false);
    expect(notes.opaque).toEqual(["d"]);
    expect(sys.xattrs).toEqual([[path.join(dest, "d"), "user.overlay.opaque", "y"]]);
  });

  test.skipIf(!HAS_SETFATTR)("unpackLayer sets user.overlay.opaque on the folder", async () => {
    const { dest, notes } = await unpack([
      { name: "d/new", data: "mine" },
      { name: "d/.wh..wh..opq", data: "" },
    ]);
    expect(notes.opaqueForm).toBe("xattr");
    expect(getXattr(path.join(dest, "d"), "user.overlay.opaque")).toBe("y");
  });

  test("unpackLayer keeps the opaque marker file where xattrs cannot be set", async () => {
    const sys = recordingSys();
    sys.setXattr = () => {
      throw new SysError("setxattr", "ENOTSUP");
    };
    const { dest, notes } = await unpack([{ name: "d/.wh..wh..opq", data: "" }], sys);
    expect(notes.opaqueForm).toBe("marker");
    expect(fs.existsSync(path.join(dest, "d/.wh..wh..opq"))).toBe(true);
  });

  test("unpackLayer drops overlay xattrs that the tar carries", async () => {
    const sys = recordingSys();
    const y = Buffer.from("y");
    const xattrs = {
      "trusted.overlay.opaque": y,
      "user.overlay.opaque": y,
      "user.overlay.redirect": Buffer.from("/etc"),
      "user.fuseoverlayfs.opaque": y,
      "user.containers.override_stat": Buffer.from("0:0:4755"),
      "user.keep": Buffer.from("1"),
    };
    const { dest, notes } = await unpack(
      [
        { name: "d/", type: "dir", xattrs },
        { name: "f", data: "x", xattrs },
      ],
      sys,
    );
    expect(sys.xattrs.map(([p, k]) => [path.relative(dest, p), k])).toEqual([
      ["d", "user.keep"],
      ["f", "user.keep"],
    ]);
    expect(notes.opaque).toEqual([]);
    expect(notes.skipped.join("\n")).toMatch(/overlay xattrs in the layer dropped: 10/);
  });

  test.skipIf(!HAS_SETFATTR)("unpackLayer sets other xattrs from the tar", async () => {
    const { dest } = await unpack([
      { name: "f", data: "x", xattrs: { "user.k": Buffer.from("v") } },
    ]);
    expect(getXattr(path.join(dest, "f"), "user.k")).toBe("v");
  });

  test("unpackLayer applies modes (setuid too), folder modes last, and mtimes", async () => {
    const { dest } = await unpack([
      { name: "ro/", type: "dir", mode: 0o555, mtime: 1_500_000_000 },
      { name: "ro/inner", data: "x", mode: 0o4755, mtime: 1_400_000_000 },
      { name: "link", type: "symlink", linkname: "ro/inner", mtime: 1_300_000_000 },
    ]);
    const ro = fs.statSync(path.join(dest, "ro"));
    expect(ro.mode & 0o7777).toBe(0o555);
    expect(ro.mtimeMs).toBe(1_500_000_000_000);
    const inner = fs.statSync(path.join(dest, "ro/inner"));
    expect(inner.mode & 0o7777).toBe(0o4755);
    expect(inner.mtimeMs).toBe(1_400_000_000_000);
    expect(fs.lstatSync(path.join(dest, "link")).mtimeMs).toBe(1_300_000_000_000);
    fs.chmodSync(path.join(dest, "ro"), 0o755);
  });

  test("unpackLayer replaces an entry by a later one of the same name", async () => {
    const { dest } = await unpack([
      { name: "x", data: "file" },
      { name: "x/", type: "dir" },
      { name: "x/in", data: "1" },
      { name: "y/", type: "dir" },
      { name: "y/in", data: "1" },
      { name: "y", data: "now a file" },
    ]);
    expect(fs.readFileSync(path.join(dest, "x/in"), "utf8")).toBe("1");
    expect(fs.readFileSync(path.join(dest, "y"), "utf8")).toBe("now a file");
  });

  test("unpackLayer makes a folder that replaces a whiteout opaque", async () => {
    const sys = recordingSys();
    const { dest, notes } = await unpack(
      [
        { name: ".wh.d", data: "" },
        { name: "d/", type: "dir" },
        { name: "d/f", data: "new" },
      ],
      sys,
    );
    expect(fs.lstatSync(path.join(dest, "d")).isDirectory()).toBe(true);
    expect(notes.opaque).toEqual(["d"]);
  });

  test("unpackLayer sets owners, or notes that it could not", async () => {
    const { dest, notes } = await unpack([{ name: "owned", data: "x", uid: 1000, gid: 1000 }]);
    const st = fs.statSync(path.join(dest, "owned"));
    if (IS_ROOT) {
      expect(st.uid).toBe(1000);
      expect(st.gid).toBe(1000);
      expect(notes.ownersKept).toBe(true);
    } else {
      expect(st.uid).toBe(process.getuid!());
      expect(notes.ownersKept).toBe(false);
    }
  });

  test("unpackLayer skips device nodes with a note when mknod is not permitted", async () => {
    const sys = recordingSys();
    sys.mknod = () => {
      throw new SysError("mknod", "EPERM");
    };
    const { dest, notes } = await unpack(
      [
        { name: "dev/null", type: "char", devmajor: 1, devminor: 3 },
        { name: "after", data: "x" },
      ],
      sys,
    );
    expect(fs.existsSync(path.join(dest, "dev/null"))).toBe(false);
    expect(fs.existsSync(path.join(dest, "after"))).toBe(true);
    expect(notes.skipped).toEqual(["device nodes not created (mknod not permitted): 1"]);
  });

  test("unpackLayer makes fifos", async () => {
    const { dest } = await unpack([{ name: "p", type: "fifo", mode: 0o640 }]);
    const st = fs.lstatSync(path.join(dest, "p"));
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o777).toBe(0o640);
  });

  test("unpackLayer returns the diff id of the uncompressed tar", async () => {
    const tar = layer([{ name: "f", data: "content" }]);
    const want = `sha256:${createHash("sha256").update(tar).digest("hex")}`;
    const dest = path.join(freshDir(), "layer");
    const notes = await unpackLayer(once(zlib.gzipSync(tar)), dest);
    expect(notes.diffId).toBe(want);
    expect(notes.size).toBe(tar.length);
    expect(notes.compression).toBe("gzip");
  });
});
