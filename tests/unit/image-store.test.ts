import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";
import type { ByteStream } from "../../src/image/bytes";
import { ImageStore, newChanges } from "../../src/image/store";
import { tarEnd, tarFile } from "../../src/image/tar";
import { MEDIA } from "../../src/image/types";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tinyc-store-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function freshStore(): ImageStore {
  return new ImageStore(path.join(tmp, `store-${++n}`));
}

function sha(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function* chunks(data: Uint8Array, fail?: Error): ByteStream {
  for (let i = 0; i < data.length; i += 1000) {
    if (fail && i > data.length / 2) throw fail;
    yield data.subarray(i, i + 1000);
  }
}

/** Every file under the store, with its size: what a failed operation must leave unchanged. */
function snapshot(store: ImageStore): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p);
      out.push(`${path.relative(store.root, p)} ${st.isDirectory() ? "dir" : st.size}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(store.root);
  return out.filter((l) => !l.startsWith("images.lock"));
}

async function addImage(store: ImageStore, names: string[], content: string) {
  const tar = Buffer.concat([tarFile("file", Buffer.from(content)), tarEnd()]);
  const layer = await store.putBlobBytes(tar);
  await store.ensureLayer(sha(tar), layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "2024-01-01T00:00:00Z",
      config: { Cmd: ["sh"], Env: ["A=1"], WorkingDir: "/w" },
      rootfs: { type: "layers", diff_ids: [sha(tar)] },
    }),
  );
  const cfg = await store.putBlobBytes(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: cfg, size: config.length },
      layers: [{ mediaType: MEDIA.ociLayer, digest: layer, size: tar.length }],
    }),
  );
  const m = await store.putBlobBytes(manifest);
  return store.addImage(m, names);
}

describe("ImageStore blobs", () => {
  const data = Buffer.alloc(10_000, 7);

  test("putBlob stores a blob under its digest and leaves no temporary file", async () => {
    const store = freshStore();
    const r = await store.putBlob(chunks(data), { digest: sha(data), size: data.length });
    expect(r.digest).toBe(sha(data));
    expect(fs.readFileSync(store.blobPath(r.digest)).equals(data)).toBe(true);
    expect(fs.readdirSync(path.join(store.root, "blobs/sha256"))).toEqual([r.digest.slice(7)]);
  });

  test("putBlob with a wrong digest leaves the store as it was", async () => {
    const store = freshStore();
    const before = snapshot(store);
    const wrong = sha(Buffer.from("other"));
    await expect(store.putBlob(chunks(data), { digest: wrong })).rejects.toThrow(
      /digest mismatch for "sha256:[0-9a-f]{64}": got "sha256:/,
    );
    expect(snapshot(store)).toEqual(before);
  });

  test("putBlob of a truncated blob leaves the store as it was", async () => {
    const store = freshStore();
    const before = snapshot(store);
    const short = data.subarray(0, 5000);
    await expect(
      store.putBlob(chunks(short), { digest: sha(data), size: data.length }),
    ).rejects.toThrow(/digest mismatch|size mismatch/);
    await expect(store.putBlob(chunks(data), { digest: sha(data), size: 100 })).rejects.toThrow(
      /larger than its 100 bytes/,
    );
    await expect(store.putBlob(chunks(data, new Error("connection reset")), {})).rejects.toThrow(
      /connection reset/,
    );
    expect(snapshot(store)).toEqual(before);
  });

  test("putBlob by two writers of the same blob at once stores it once", async () => {
    const store = freshStore();
    const other = new ImageStore(store.root);
    const [a, b] = await Promise.all([
      store.putBlob(chunks(data), { digest: sha(data) }),
      other.putBlob(chunks(data), { digest: sha(data) }),
    ]);
    expect(a.digest).toBe(b.digest);
    expect(fs.readdirSync(path.join(store.root, "blobs/sha256"))).toEqual([sha(data).slice(7)]);
  });

  test("ensureLayer with a wrong diff id leaves no layer and no temporary folder", async () => {
    const store = freshStore();
    const tar = Buffer.concat([tarFile("f", Buffer.from("x")), tarEnd()]);
    const blob = await store.putBlobBytes(tar);
    const before = snapshot(store);
    await expect(store.ensureLayer(sha(Buffer.from("no")), blob)).rejects.toThrow(
      /does not match its diff id/,
    );
    expect(snapshot(store)).toEqual(before);
  });
});

describe("ImageStore images", () => {
  test("addImage records names that resolveImage and listImages find", async () => {
    const store = freshStore();
    const img = await addImage(store, ["docker.io/library/one:latest"], "1");
    expect(store.resolveImage("one").manifest).toBe(img.manifest);
    expect(store.resolveImage("docker.io/library/one").id).toBe(img.id);
    expect(store.resolveImage(img.id.slice(7, 19)).id).toBe(img.id);
    expect(store.resolveImage(img.id).id).toBe(img.id);
    expect(store.listImages().map((i) => i.names)).toEqual([["docker.io/library/one:latest"]]);
    expect(store.imageConfig(img)).toEqual({ Cmd: ["sh"], Env: ["A=1"], WorkingDir: "/w" });
    const dirs = store.layerDirs(img);
    expect(fs.readFileSync(path.join(dirs[0], "file"), "utf8")).toBe("1");
    expect(() => store.resolveImage("two")).toThrow(/no such image: "two"/);
  });

  test("tag adds a name and moves it away from another image", async () => {
    const store = freshStore();
    const a = await addImage(store, ["docker.io/library/a:latest"], "a");
    const b = await addImage(store, ["docker.io/library/b:latest"], "b");
    await store.tag("a", "localhost:5000/x:1");
    expect(store.resolveImage("localhost:5000/x:1").id).toBe(a.id);
    await store.tag("b", "a");
    expect(store.resolveImage("a").id).toBe(b.id);
    // a has one name left, the other is untagged
    expect(store.resolveImage(a.id).names).toEqual(["localhost:5000/x:1"]);
  });

  test("removeImage untags while another name is left, then deletes blobs and layers", async () => {
    const store = freshStore();
    const img = await addImage(store, ["docker.io/library/a:latest", "docker.io/library/a:2"], "a");
    const keep = await addImage(store, ["docker.io/library/k:latest"], "k");
    const r1 = await store.removeImage("a:2");
    expect(r1).toEqual({ untagged: ["a:2"], deleted: [] });
    const r2 = await store.removeImage("a");
    expect(r2.untagged).toEqual(["a:latest"]);
    expect(r2.deleted).toContain(img.manifest);
    expect(r2.deleted).toContain(img.id);
    expect(fs.existsSync(store.layerDirs(img)[0])).toBe(false);
    expect(store.hasBlob(keep.manifest)).toBe(true);
    expect(fs.existsSync(store.layerDirs(keep)[0])).toBe(true);
    expect(store.listImages().map((i) => i.id)).toEqual([keep.id]);
    await store.removeImage("k");
    expect(fs.readdirSync(path.join(store.root, "blobs/sha256"))).toEqual([]);
    expect(fs.readdirSync(path.join(store.root, "layers"))).toEqual([]);
  });

  test("removeImage keeps layers another image shares", async () => {
    const store = freshStore();
    const a = await addImage(store, ["docker.io/library/a:latest"], "same");
    await store.tag("a", "b");
    await store.removeImage("a");
    expect(fs.existsSync(store.layerDirs(a)[0])).toBe(true);
  });

  test("removeImage by id needs force when several names point at the image", async () => {
    const store = freshStore();
    const img = await addImage(
      store,
      ["docker.io/library/a:latest", "docker.io/library/b:latest"],
      "x",
    );
    await expect(store.removeImage(img.id.slice(7, 19))).rejects.toThrow(/must be forced/);
    const r = await store.removeImage(img.id.slice(7, 19), true);
    expect(r.untagged.sort()).toEqual(["a:latest", "b:latest"]);
    expect(store.listImages()).toEqual([]);
  });

  test("untagAll takes every name off and keeps the image, its blobs and layers", async () => {
    const store = freshStore();
    const img = await addImage(store, ["docker.io/library/a:latest", "localhost:5000/b:1"], "u");
    const before = snapshot(store).filter((l) => !l.startsWith("images.json"));
    expect((await store.untagAll("a")).sort()).toEqual(["a:latest", "localhost:5000/b:1"]);
    expect(store.findImage("a")).toBeUndefined();
    const kept = store.resolveImage(img.id);
    expect(kept.names).toEqual([]);
    expect(snapshot(store).filter((l) => !l.startsWith("images.json"))).toEqual(before);
    await expect(store.untagAll("a")).rejects.toThrow(/no such image/);
  });

  test("rollback takes away what a failed operation added", async () => {
    const store = freshStore();
    const before = snapshot(store);
    const changes = newChanges();
    const tar = Buffer.concat([tarFile("f", Buffer.from("x")), tarEnd()]);
    const blob = await store.putBlobBytes(tar, undefined, changes);
    await store.ensureLayer(sha(tar), blob, changes);
    await store.rollback(changes);
    expect(snapshot(store)).toEqual(before);
  });

  test("cleanUp removes temporary files of processes that are gone, and the trash", () => {
    const store = freshStore();
    const dead = Bun.spawnSync(["true"]).pid;
    const stale = path.join(store.root, "blobs/sha256", `.tmp-${dead}-abc`);
    const live = path.join(store.root, "blobs/sha256", `.tmp-${process.pid}-abc`);
    fs.writeFileSync(stale, "x");
    fs.writeFileSync(live, "x");
    fs.mkdirSync(path.join(store.root, "trash/old/ro"), { recursive: true });
    fs.chmodSync(path.join(store.root, "trash/old/ro"), 0o555);
    expect(store.cleanUp()).toBe(0);
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
    expect(fs.readdirSync(path.join(store.root, "trash"))).toEqual([]);
  });

  test("withLock lets one holder in at a time", async () => {
    const store = freshStore();
    const other = new ImageStore(store.root);
    const log: string[] = [];
    const section = async (s: ImageStore, name: string) =>
      s.withLock(async () => {
        log.push(`${name} in`);
        await Bun.sleep(50);
        log.push(`${name} out`);
      });
    await Promise.all([section(store, "a"), section(other, "b")]);
    expect([log[0].slice(2), log[1].slice(2)]).toEqual(["in", "out"]);
    expect([log[2].slice(2), log[3].slice(2)]).toEqual(["in", "out"]);
  });
});
