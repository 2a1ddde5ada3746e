// tinyc's unpacked image against podman's, file by file. The same image goes into both: a
// two-layer image built here entry by entry (whiteouts, an opaque folder whose marker comes after
// its new files, hard links, symlinks, owners other than root, setuid and setgid bits, an empty
// folder, a fifo, names whose type changes), handed over as a docker-archive that skopeo makes
// from an OCI layout, and the debian fixture, imported as a root filesystem tarball. Each side
// then writes the container's files as a tar (tinyc export after tinyc run, podman export after
// podman create), and tinyc bundle's rootfs is tarred too. The tar headers give what the
// container sees, and every path is compared: type, mode with the setuid, setgid and sticky
// bits, numeric owners, the time of everything but folders, symlink targets, size and sha256 of
// contents, xattrs, and which paths are one file.
//
// Left out, as matters of the archive's form rather than of the files: a folder's time (adding
// an entry changes it), times below the second (GNU tar's header has whole seconds), access and
// change times, user and group names (tinyc's export has numbers only), the order of entries,
// which name of a hard-linked file carries its data, and the entry of the root folder itself,
// which podman's export does not have.
//
// Rootless is the case that matters (layers unpacked in a user namespace over subordinate ids);
// the same comparison runs as root when the test process is root. podman gets private storage
// (vfs), runtime and config folders, and never reaches a registry: images come from archives.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import {
  type As,
  FIXTURES,
  IS_ROOT,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  runCommand,
  scratchDir,
  tinycSkipReason,
  type RunResult,
} from "./harness";

const PATH_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
const SLOW = 120_000;

function which(name: string): string | null {
  for (const dir of PATH_DIRS) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // Not in this folder.
    }
  }
  return null;
}

function missing(...names: string[]): string | null {
  const absent = names.filter((n) => !which(n));
  return absent.length ? `not installed: ${absent.join(", ")} (run scripts/setup.sh)` : null;
}

const noTools =
  tinycSkipReason() ??
  fixtureSkipReason("busybox") ??
  missing("podman", "skopeo", "newuidmap", "newgidmap", "unshare", "tar");
const noRootless = noTools ?? requireUserns();
const noRoot = noTools ?? rootSkipReason();
const noDebian = fixtureSkipReason("debian");
for (const [what, reason] of [
  ["rootless unpack comparison", noRootless],
  ["root unpack comparison", noRoot],
  ["debian unpack comparison", noDebian],
] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

// The test process's own files (layouts, archives) belong to whoever runs it; the users of the
// suites only read them.
const ME: As = IS_ROOT ? "root" : "rootless";
const LAYERED = "unpack-compare-layered:test";
const DEBIAN = "unpack-compare-debian:test";

function sh(cmd: string[], env: Record<string, string> = {}): Buffer {
  const r = Bun.spawnSync(cmd, { env: { ...process.env, ...env }, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString()}`);
  return Buffer.from(r.stdout);
}

function sha(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function checked(what: string, r: RunResult): RunResult {
  if (r.code !== 0 || r.timedOut) {
    const why = r.timedOut ? "timed out" : `exited ${r.code}`;
    throw new Error(`${what} ${why}: ${r.stderr.trim()}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Writing layers: entry by entry, so that owners, modes, hard links, fifos and the order of
// whiteout markers are exactly what the test says, whoever runs it.
// ---------------------------------------------------------------------------------------------

interface Entry {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "fifo";
  data?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  link?: string;
}

const MTIME = 1714521600;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** The entries as ustar records, without the end-of-archive blocks. */
function tarRecords(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  const byName = new Map<string, Entry>();
  for (const given of entries) {
    // Unless the entry says otherwise, a hard link's header repeats its file's mode and owners,
    // as every tar writer does: podman applies a link header's mode and owners to the file, GNU
    // tar does not, and only the HLMETA entries are about headers that disagree.
    const target = given.type === "hardlink" ? byName.get(given.link!) : undefined;
    const e = target ? { mode: target.mode, uid: target.uid, gid: target.gid, ...given } : given;
    byName.set(e.name, e);
    const type = e.type ?? "file";
    const data = type === "file" ? Buffer.from(e.data ?? "") : Buffer.alloc(0);
    const h = Buffer.alloc(512);
    h.write(type === "dir" ? `${e.name}/` : e.name, 0, 100);
    h.write(octal(e.mode ?? (type === "dir" ? 0o755 : 0o644), 8), 100);
    h.write(octal(e.uid ?? 0, 8), 108);
    h.write(octal(e.gid ?? 0, 8), 116);
    h.write(octal(data.length, 12), 124);
    h.write(octal(MTIME, 12), 136);
    h.write({ file: "0", hardlink: "1", symlink: "2", dir: "5", fifo: "6" }[type], 156);
    if (e.link) h.write(e.link, 157, 100);
    h.write("ustar\x0000", 257);
    h.fill(32, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  return Buffer.concat(blocks);
}

/** Bytes that no text editor would write, so that a hash catches any change. */
function noise(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

// Layer 1 is the busybox fixture and then these. Layer 2 takes some of them away again.
const LAYER1_EXTRA: Entry[] = [
  { name: "etc/base", data: "base\n" },
  { name: "etc/gone", data: "whited out by layer 2\n" },
  { name: "gonedir", type: "dir" },
  { name: "gonedir/f", data: "in a folder that layer 2 whites out\n" },
  { name: "opq", type: "dir", mode: 0o700 },
  { name: "opq/old1", data: "hidden by the opaque marker\n" },
  { name: "opq/sub", type: "dir" },
  { name: "opq/sub/old2", data: "hidden too\n" },
  { name: "replaced", data: "v1\n", mode: 0o644 },
  // Three names of one file; layer 2 replaces the third, so two stay linked.
  { name: "pair", type: "dir" },
  { name: "pair/a", data: "shared\n" },
  { name: "pair/b", type: "hardlink", link: "pair/a" },
  { name: "pair/c", type: "hardlink", link: "pair/a" },
  { name: "kept", data: noise(70_000, 1), uid: 2, gid: 3, mode: 0o444 },
  // Names whose type layer 2 changes: a folder that becomes a file, a file that becomes a folder.
  { name: "swap1", type: "dir" },
  { name: "swap1/x", data: "goes with its folder\n" },
  { name: "swap2", data: "becomes a folder\n" },
];

const LAYER2: Entry[] = [
  { name: "etc", type: "dir" },
  { name: "etc/.wh.gone" },
  { name: ".wh.gonedir" },
  { name: "opq", type: "dir", mode: 0o755 },
  { name: "opq/new1", data: "layer 2's own\n" },
  { name: "opq/newsub", type: "dir", mode: 0o711 },
  { name: "opq/newsub/f", data: "also layer 2's\n", uid: 1000 },
  // The opaque marker after the folder's new files, as some image builders write it: it hides
  // what lower layers have there, not what this layer has just put there.
  { name: "opq/.wh..wh..opq" },
  { name: "hl", type: "dir" },
  { name: "hl/one", data: "linked\n", mode: 0o600, uid: 1000, gid: 1000 },
  { name: "hl/two", type: "hardlink", link: "hl/one" },
  { name: "sym", type: "symlink", link: "etc/base" },
  { name: "abs", type: "symlink", link: "/bin/busybox" },
  { name: "dangling", type: "symlink", link: "../no/such/file" },
  { name: "owned", type: "dir", mode: 0o750, uid: 1000, gid: 1000 },
  { name: "owned/file", data: "mine\n", mode: 0o640, uid: 1000, gid: 1000 },
  { name: "owned/gidonly", data: "group's\n", mode: 0o604, gid: 1000 },
  { name: "owned/link", type: "symlink", link: "file", uid: 1000, gid: 1000 },
  { name: "suid", data: "#!/bin/sh\n", mode: 0o4755 },
  { name: "sgid", data: "#!/bin/sh\n", mode: 0o2711, gid: 1000 },
  { name: "sticky", type: "dir", mode: 0o1777 },
  { name: "empty", type: "dir", mode: 0o750 },
  { name: "fifo", type: "fifo", mode: 0o620, uid: 1000, gid: 1000 },
  { name: "replaced", data: "v2, longer\n", mode: 0o600 },
  // Only the folder's mode and group change; what layer 1 has in it stays.
  { name: "pair", type: "dir", mode: 0o770, gid: 1000 },
  { name: "pair/c", data: "its own now\n" },
  { name: "big", data: noise(300_000, 2) },
  { name: "swap1", data: "a file now\n" },
  { name: "swap2", type: "dir", mode: 0o711 },
  { name: "swap2/y", data: "in the new folder\n" },
  // A hard link whose header gives its file other owners and another mode than the file's own
  // header. Tar writers repeat the file's, but docker's, podman's and containerd's unpackers
  // apply a link header's mode and owners to the file, so that is what such a layer means to
  // them. It is compared on its own (see HLMETA).
  { name: "hlmeta", type: "dir" },
  { name: "hlmeta/orig", data: "one file, two headers\n" },
  { name: "hlmeta/link", type: "hardlink", link: "hlmeta/orig", mode: 0o600, uid: 1000, gid: 1000 },
];

const HLMETA = "/hlmeta";
const inHlmeta = (p: string) => p === HLMETA || p.startsWith(`${HLMETA}/`);

function ociLayout(dir: string, ref: string, layers: Buffer[]): void {
  const blobs = path.join(dir, "blobs/sha256");
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer, mediaType: string) => {
    fs.writeFileSync(path.join(blobs, sha(data).slice(7)), data);
    return { mediaType, digest: sha(data), size: data.length };
  };
  const configBlob = Buffer.from(
    JSON.stringify({
      created: "2024-05-01T00:00:00Z",
      architecture: process.arch === "arm64" ? "arm64" : "amd64",
      os: "linux",
      config: { Cmd: ["sh"], Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: layers.map(sha) },
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: put(configBlob, "application/vnd.oci.image.config.v1+json"),
    layers: layers.map((l) =>
      put(zlib.gzipSync(l, { level: 1 }), "application/vnd.oci.image.layer.v1.tar+gzip"),
    ),
  };
  const top = put(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  const entry = { ...top, annotations: { "org.opencontainers.image.ref.name": ref } };
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [entry],
  };
  fs.writeFileSync(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify(index));
}

// ---------------------------------------------------------------------------------------------
// Reading tars: ustar, GNU long names and PAX records (GNU tar writes the first two, Go's
// archive/tar, which podman uses, the last), into one tree per archive.
// ---------------------------------------------------------------------------------------------

interface TarEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  link: string;
  rdev: string;
  xattrs: Record<string, string>;
  data: Buffer;
  /** Where the entry's header starts and where its data ends, in the archive. */
  start: number;
  end: number;
}

function field(h: Buffer, off: number, len: number): string {
  const b = h.subarray(off, off + len);
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? len : z).toString("utf8");
}

function num(h: Buffer, off: number, len: number): number {
  // GNU's base-256 form, for values that do not fit the octal field.
  if (h[off] & 0x80) {
    let v = h[off] & 0x7f;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + h[i];
    return v;
  }
  const s = field(h, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

/** PAX records ("LEN key=value\n"); values stay bytes, as xattr values may be binary. */
function paxRecords(body: Buffer): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  let at = 0;
  while (at < body.length) {
    const sp = body.indexOf(0x20, at);
    if (sp < 0) break;
    const len = Number(body.toString("latin1", at, sp));
    if (!(len > 0)) break;
    const rec = body.subarray(sp + 1, at + len - 1);
    const eq = rec.indexOf(0x3d);
    out[rec.subarray(0, eq).toString("utf8")] = rec.subarray(eq + 1);
    at += len;
  }
  return out;
}

function readTar(buf: Buffer): TarEntry[] {
  const out: TarEntry[] = [];
  let global: Record<string, Buffer> = {};
  let pax: Record<string, Buffer> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  let off = 0;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const type = h[156] === 0 ? "0" : String.fromCharCode(h[156]);
    const attrs = { ...global, ...pax };
    const size = attrs.size ? Number(attrs.size.toString()) : num(h, 124, 12);
    const dataAt = off + 512;
    const next = dataAt + Math.ceil(size / 512) * 512;
    const body = buf.subarray(dataAt, dataAt + size);
    if (next > buf.length) throw new Error(`tar entry at ${off} runs past the archive's end`);
    if (type === "x" || type === "g") {
      if (type === "x") pax = paxRecords(body);
      else global = { ...global, ...paxRecords(body) };
    } else if (type === "L") {
      longName = field(body, 0, body.length);
    } else if (type === "K") {
      longLink = field(body, 0, body.length);
    } else {
      // The ustar prefix field; GNU's own format keeps other things at that offset.
      const prefix = field(h, 257, 6) === "ustar" ? field(h, 345, 155) : "";
      const short = prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
      const xattrs: Record<string, string> = {};
      for (const [k, v] of Object.entries(attrs)) {
        if (k.startsWith("SCHILY.xattr.")) xattrs[k.slice(13)] = v.toString("hex");
      }
      const text = (k: string) => (attrs[k] ? attrs[k].toString("utf8") : undefined);
      out.push({
        name: text("path") ?? longName ?? short,
        type,
        mode: num(h, 100, 8),
        uid: attrs.uid ? Number(text("uid")) : num(h, 108, 8),
        gid: attrs.gid ? Number(text("gid")) : num(h, 116, 8),
        mtime: Math.floor(attrs.mtime ? Number(text("mtime")) : num(h, 136, 12)),
        link: text("linkpath") ?? longLink ?? field(h, 157, 100),
        rdev: `${num(h, 329, 8)}:${num(h, 337, 8)}`,
        xattrs,
        data: body,
        start: off,
        end: dataAt + size,
      });
      pax = {};
      longName = longLink = undefined;
    }
    off = next;
  }
  return out;
}

/** The entries of a tar without its end-of-archive blocks, to append more entries to. */
function withoutEnd(tar: Buffer): Buffer {
  const entries = readTar(tar);
  const last = entries[entries.length - 1];
  return tar.subarray(0, Math.ceil(last.end / 512) * 512);
}

// What the container sees at one path. Link members get the attributes of the file they name.
interface Node {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  mtime?: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: string;
  xattrs?: string;
  /** Every path of the file when it has more than one (hard links), sorted. */
  links?: string;
}

interface Tree {
  nodes: Map<string, Node>;
  /** Paths that the archive holds twice or more. */
  duplicates: string[];
}

const TYPES: Record<string, string> = {
  "0": "file",
  "7": "file",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

function clean(name: string): string {
  const p = path.posix.normalize("/" + name);
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

function treeOf(tar: Buffer): Tree {
  const nodes = new Map<string, Node>();
  const duplicates: string[] = [];
  // Hard link sets, by the first path of each (the one whose entry carries the data).
  const setOf = new Map<string, string>();
  for (const e of readTar(tar)) {
    const p = clean(e.name);
    if (nodes.has(p)) duplicates.push(p);
    if (e.type === "1") {
      const first = setOf.get(clean(e.link)) ?? clean(e.link);
      const target = nodes.get(first);
      if (!target) throw new Error(`hard link ${p} names ${e.link}, which comes nowhere before`);
      nodes.set(p, { ...target });
      setOf.set(first, first);
      setOf.set(p, first);
      continue;
    }
    const type = TYPES[e.type];
    if (!type) throw new Error(`${p}: tar entry type ${JSON.stringify(e.type)} is not handled`);
    const node: Node = {
      type,
      mode: (e.mode & 0o7777).toString(8).padStart(4, "0"),
      uid: e.uid,
      gid: e.gid,
    };
    // Folder times change whenever an entry is added; only the times of files are the image's.
    if (type !== "dir") node.mtime = e.mtime;
    if (type === "file") {
      node.size = e.data.length;
      node.sha256 = sha(e.data).slice(7, 23);
    }
    if (type === "symlink") node.target = e.link;
    if (type === "char" || type === "block") node.rdev = e.rdev;
    const names = Object.keys(e.xattrs).sort();
    if (names.length) node.xattrs = names.map((k) => `${k}=${e.xattrs[k]}`).join(" ");
    nodes.set(p, node);
  }
  const sets = new Map<string, string[]>();
  for (const [p, first] of setOf) sets.set(first, [...(sets.get(first) ?? []), p]);
  for (const members of sets.values()) {
    const links = members.sort().join(" ");
    for (const p of members) nodes.get(p)!.links = links;
  }
  return { nodes, duplicates };
}

/** Every difference between the trees, one line each, for the paths that `within` keeps. */
const MOUNT_POINTS = new Set(["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]);

function differences(
  tinyc: Tree,
  podman: Tree,
  within: (p: string) => boolean = () => true,
): string[] {
  const out: string[] = [];
  for (const p of tinyc.duplicates.filter(within)) out.push(`${p}: twice in tinyc's archive`);
  for (const p of podman.duplicates.filter(within)) out.push(`${p}: twice in podman's archive`);
  const paths = new Set([...tinyc.nodes.keys(), ...podman.nodes.keys()]);
  for (const p of [...paths].filter(within).sort()) {
    const t = tinyc.nodes.get(p);
    const q = podman.nodes.get(p);
    // tinyc binds /etc/hosts, /etc/hostname and /etc/resolv.conf of its own over the image's;
    // where the image has none, the empty file the bind needs stays in the container's
    // writable layer, as it does with docker. podman's export leaves them out.
    if (!q && t && MOUNT_POINTS.has(p) && t.type === "file" && t.size === 0) continue;
    // podman's export has no entry for the root folder itself, tinyc's (GNU tar of ".") has:
    // a matter of the archive's form, not of the files.
    if (p === "/" && (!t || !q)) continue;
    if (!q) {
      out.push(`${p}: only in tinyc (${JSON.stringify(t)})`);
      continue;
    }
    if (!t) {
      out.push(`${p}: only in podman (${JSON.stringify(q)})`);
      continue;
    }
    const keys = new Set([...Object.keys(t), ...Object.keys(q)]) as Set<keyof Node>;
    for (const k of keys) {
      if (t[k] !== q[k]) out.push(`${p}: ${k} tinyc=${t[k]} podman=${q[k]}`);
    }
  }
  return out;
}

/** What the layered image must look like, so that agreeing on a wrong tree cannot pass. */
function expectLayered(tree: Tree, who: string): void {
  const n = (p: string) => tree.nodes.get(p);
  const has = (p: string) => tree.nodes.has(p);
  const seen = {
    who,
    whiteouts: [...tree.nodes.keys()].filter((p) => path.posix.basename(p).startsWith(".wh.")),
    // An overlay whiteout (a 0:0 character device) that leaked through.
    devices: [...tree.nodes.entries()].filter(([, v]) => v.type === "char").map(([p]) => p),
    gone: ["/etc/gone", "/gonedir", "/gonedir/f", "/opq/old1", "/opq/sub"].filter(has),
    opq: ["/opq/new1", "/opq/newsub", "/opq/newsub/f"].filter(has),
    opqMode: n("/opq")?.mode,
    hl: n("/hl/two")?.links,
    pair: [n("/pair/a")?.links, n("/pair/c")?.links],
    sym: n("/sym")?.target,
    owned: [n("/owned/file")?.uid, n("/owned/file")?.gid, n("/owned/file")?.mode],
    suid: n("/suid")?.mode,
    empty: [n("/empty")?.type, n("/empty")?.mode],
    emptyInside: [...tree.nodes.keys()].filter((p) => p.startsWith("/empty/")),
    fifo: [n("/fifo")?.type, n("/fifo")?.uid],
    replaced: n("/replaced")?.size,
    pairDir: [n("/pair")?.mode, n("/pair")?.gid],
    swap: [n("/swap1")?.type, has("/swap1/x"), n("/swap2")?.type, n("/swap2/y")?.type],
    busybox: n("/bin/busybox")?.type,
  };
  expect(seen).toEqual({
    who,
    whiteouts: [],
    devices: [],
    gone: [],
    opq: ["/opq/new1", "/opq/newsub", "/opq/newsub/f"],
    opqMode: "0755",
    hl: "/hl/one /hl/two",
    pair: ["/pair/a /pair/b", undefined],
    sym: "etc/base",
    owned: [1000, 1000, "0640"],
    suid: "4755",
    empty: ["dir", "0750"],
    emptyInside: [],
    fifo: ["fifo", 1000],
    replaced: 11,
    pairDir: ["0770", 1000],
    swap: ["file", false, "dir", "file"],
    busybox: "file",
  });
}

// ---------------------------------------------------------------------------------------------
// The images, built once by the test process.
// ---------------------------------------------------------------------------------------------

let work = "";
let layeredArchive = "";
let debianTar = "";

function buildImages(): void {
  work = scratchDir(ME, "unpack-compare");
  // Root owns the fixture's files in the image, whoever made the fixture.
  const busybox = sh([
    "tar",
    "--numeric-owner",
    "--owner=0",
    "--group=0",
    "-C",
    path.join(FIXTURES, "busybox"),
    "-cf",
    "-",
    ".",
  ]);
  const layer1 = Buffer.concat([withoutEnd(busybox), tarRecords(LAYER1_EXTRA), Buffer.alloc(1024)]);
  const layer2 = Buffer.concat([tarRecords(LAYER2), Buffer.alloc(1024)]);
  const layout = path.join(work, "layered");
  ociLayout(layout, "test", [layer1, layer2]);
  const policy = path.join(work, "policy.json");
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  layeredArchive = path.join(work, "layered.docker.tar");
  sh(
    [
      ...["skopeo", "--policy", policy, "copy", "--quiet"],
      `oci:${layout}:test`,
      `docker-archive:${layeredArchive}:${LAYERED}`,
    ],
    { HOME: work },
  );
  fs.chmodSync(layeredArchive, 0o644);
  if (!noDebian) {
    // The users of the suites must read it; a checkout under /root is closed to them.
    debianTar = path.join(work, "debian.tar");
    fs.copyFileSync(path.join(FIXTURES, "debian.tar"), debianTar);
    fs.chmodSync(debianTar, 0o644);
  }
}

beforeAll(() => {
  if (noRootless && noRoot) return;
  buildImages();
}, 60_000);

// ---------------------------------------------------------------------------------------------
// tinyc and podman, each with folders of its own for one user.
// ---------------------------------------------------------------------------------------------

interface Tinyc {
  as: As;
  env: Record<string, string>;
  out: string;
}

function newTinyc(as: As): Tinyc {
  const home = scratchDir(as, "tinyc");
  const xdg = scratchDir(as, "tinyc-xdg");
  // tinyc refuses a runtime folder that others may enter, as XDG_RUNTIME_DIR never is.
  fs.chmodSync(xdg, 0o700);
  const env = {
    TINYC_DATA: path.join(home, "data"),
    XDG_RUNTIME_DIR: xdg,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local/share"),
  };
  return { as, env, out: scratchDir(as, "tinyc-out") };
}

function tinyc(t: Tinyc, args: string[]): Promise<RunResult> {
  // As root, state would go to /run/tinyc; --root keeps it in the test's folder.
  const global = t.as === "root" ? ["--root", path.join(t.env.XDG_RUNTIME_DIR, "tinyc")] : [];
  return runCommand([TINYC, ...global, ...args], { as: t.as, env: t.env, timeoutMs: SLOW });
}

async function tinycOk(t: Tinyc, args: string[]): Promise<RunResult> {
  return checked(`tinyc ${args.join(" ")}`, await tinyc(t, args));
}

/** The files of a container that tinyc ran from the image, as `tinyc export` writes them. */
async function tinycExport(t: Tinyc, image: string, name: string): Promise<Buffer> {
  await tinycOk(t, ["run", "--pull=never", "--name", name, image, "true"]);
  const file = path.join(t.out, `${name}.export.tar`);
  await tinycOk(t, ["export", "-o", file, name]);
  await tinycOk(t, ["rm", name]);
  return fs.readFileSync(file);
}

/** tinyc bundle's rootfs, tarred where its owners read as the container's ids. */
async function tinycBundle(t: Tinyc, image: string, name: string): Promise<Buffer> {
  const dir = path.join(t.out, name);
  await tinycOk(t, ["bundle", "--pull=never", image, dir]);
  const file = path.join(t.out, `${name}.bundle.tar`);
  const tar = ["tar", "--numeric-owner", "--xattrs", "-C", path.join(dir, "rootfs")];
  // A user's copy belongs to its subordinate ids; unshare maps them as tinyc's containers do
  // (the user is 0, the first subordinate id is 1).
  const cmd = [
    ...(t.as === "rootless" ? ["unshare", "--map-root-user", "--map-auto"] : []),
    ...tar,
    "-cf",
    file,
    ".",
  ];
  checked("tar of the bundle", await runCommand(cmd, { as: t.as, timeoutMs: SLOW }));
  return fs.readFileSync(file);
}

interface Podman {
  as: As;
  dir: string;
  global: string[];
  env: Record<string, string>;
  /** Where rootless podman may write its pause process's pid. */
  pidFiles: string[];
}

function newPodman(as: As): Podman {
  const dir = scratchDir(as, "podman");
  const sub = (name: string, mode = 0o755) => {
    const d = scratchDir(as, `podman-${name}`);
    fs.chmodSync(d, mode);
    return d;
  };
  const home = sub("home");
  const xdg = sub("xdg", 0o700);
  const tmp = sub("tmp", 0o700);
  // Root's podman would keep its temporary state in /run/libpod; it stays in the test's folder.
  const conf = path.join(dir, "containers.conf");
  fs.writeFileSync(conf, `[engine]\ntmp_dir = "${tmp}"\n`);
  // No search registries: a short name can never turn into a pull.
  const registries = path.join(dir, "registries.conf");
  fs.writeFileSync(registries, "unqualified-search-registries = []\n");
  const env = {
    HOME: home,
    XDG_RUNTIME_DIR: xdg,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local/share"),
    CONTAINERS_CONF: conf,
    CONTAINERS_REGISTRIES_CONF: registries,
  };
  // podman refuses a runroot longer than 50 characters, hence the short name.
  const runroot = scratchDir(as, "rr");
  fs.chmodSync(runroot, 0o700);
  // vfs: layers are plain copies, with neither fuse nor kernel overlay; cgroupfs and file
  // events: no systemd user manager is needed.
  const global = [
    ...["--root", sub("storage"), "--runroot", runroot],
    ...["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"],
  ];
  const pidFiles = [path.join(xdg, "libpod/tmp/pause.pid"), path.join(tmp, "pause.pid")];
  return { as, dir, global, env, pidFiles };
}

function podman(pm: Podman, args: string[]): Promise<RunResult> {
  return runCommand([which("podman")!, ...pm.global, ...args], {
    as: pm.as,
    env: pm.env,
    timeoutMs: SLOW,
  });
}

async function podmanOk(pm: Podman, args: string[]): Promise<RunResult> {
  return checked(`podman ${args.join(" ")}`, await podman(pm, args));
}

/** The files of a container that podman created (never started) from the image. */
async function podmanExport(pm: Podman, image: string, name: string): Promise<Buffer> {
  const create = ["create", "--pull=never", "--network=none", "--name", name, image, "true"];
  await podmanOk(pm, create);
  const file = path.join(pm.dir, `${name}.export.tar`);
  await podmanOk(pm, ["export", "-o", file, name]);
  await podmanOk(pm, ["rm", name]);
  return fs.readFileSync(file);
}

function readPid(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Ends rootless podman's pause process, which holds its user namespace between commands. */
async function stopPodman(pm: Podman): Promise<void> {
  const pid = pm.pidFiles.map(readPid).find((p) => p !== null);
  if (!pid) return;
  try {
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("podman")) return;
    process.kill(pid, "SIGKILL");
  } catch {
    return;
  }
  for (let i = 0; i < 50 && fs.existsSync(`/proc/${pid}`); i++) await Bun.sleep(100);
}

// ---------------------------------------------------------------------------------------------
// The comparisons, rootless and as root.
// ---------------------------------------------------------------------------------------------

const pods: Podman[] = [];
afterAll(async () => {
  for (const pm of pods) await stopPodman(pm);
  cleanup();
}, 60_000);

function suite(as: As, reason: string | null): void {
  describe.skipIf(!!reason)(`unpacked trees (${as}): tinyc agrees with podman`, () => {
    let t: Tinyc;
    let pm: Podman;
    let layeredPodman: Tree;
    // tinyc's two trees of the layered image, made once for the tests that look at them.
    let exported: Promise<Tree> | undefined;
    let bundled: Promise<Tree> | undefined;
    const tinycExported = () => (exported ??= tinycExport(t, LAYERED, "layered").then(treeOf));
    const tinycBundled = () =>
      (bundled ??= tinycBundle(t, LAYERED, "layered-bundle").then(treeOf));
    const outsideHlmeta = (p: string) => !inHlmeta(p);

    beforeAll(async () => {
      t = newTinyc(as);
      pm = newPodman(as);
      pods.push(pm);
      await tinycOk(t, ["load", "-q", "-i", layeredArchive]);
      await podmanOk(pm, ["load", "--quiet", "--input", layeredArchive]);
      layeredPodman = treeOf(await podmanExport(pm, LAYERED, "layered"));
    }, SLOW);

    test("podman's tree of the layered image is the one the layers describe", () => {
      expectLayered(layeredPodman, "podman");
      const link = layeredPodman.nodes.get(`${HLMETA}/orig`);
      expect([link?.mode, link?.uid, link?.gid, link?.links]).toEqual([
        "0600",
        1000,
        1000,
        `${HLMETA}/link ${HLMETA}/orig`,
      ]);
    });

    test(
      "layered image: tinyc run + export, entry by entry",
      async () => {
        const tree = await tinycExported();
        expect(differences(tree, layeredPodman, outsideHlmeta)).toEqual([]);
        expectLayered(tree, "tinyc");
      },
      SLOW,
    );

    test(
      "layered image: tinyc bundle's rootfs, entry by entry",
      async () => {
        const tree = await tinycBundled();
        expect(differences(tree, layeredPodman, outsideHlmeta)).toEqual([]);
        expectLayered(tree, "tinyc bundle");
      },
      SLOW,
    );

    test(
      "layered image: a hard link's header sets its file's mode and owners, as in podman",
      async () => {
        const found = {
          export: differences(await tinycExported(), layeredPodman, inHlmeta),
          bundle: differences(await tinycBundled(), layeredPodman, inHlmeta),
        };
        expect(found).toEqual({ export: [], bundle: [] });
      },
      SLOW,
    );

    test.skipIf(!!noDebian)(
      "debian fixture, imported: tinyc run + export, entry by entry",
      async () => {
        await tinycOk(t, ["import", debianTar, DEBIAN]);
        await podmanOk(pm, ["import", "--quiet", debianTar, DEBIAN]);
        const [mine, theirs] = await Promise.all([
          tinycExport(t, DEBIAN, "debian").then(treeOf),
          podmanExport(pm, DEBIAN, "debian").then(treeOf),
        ]);
        expect(theirs.nodes.get("/usr/bin/apt-get")?.type).toBe("file");
        expect(mine.nodes.size).toBeGreaterThan(1000);
        expect(differences(mine, theirs)).toEqual([]);
      },
      SLOW,
    );
  });
}

suite("rootless", noRootless);
suite("root", noRoot);
