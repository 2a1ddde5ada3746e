import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { applyChange, importRootfs, loadArchive, saveArchive } from "../../src/image/archive";
import type { ByteStream } from "../../src/image/bytes";
import { ImageStore } from "../../src/image/store";
import { tarEnd, tarFile, tarHeader } from "../../src/image/tar";
import type { ContainerConfig } from "../../src/image/types";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tinyc-archive-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function freshStore(): ImageStore {
  return new ImageStore(path.join(tmp, `store-${++n}`));
}

function sha(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function* once(data: Uint8Array): ByteStream {
  yield data;
}

function layerTar(name: string, content: string): Buffer {
  return Buffer.concat([tarFile(name, Buffer.from(content)), tarEnd()]);
}

/** A `docker save` archive as docker wrote it before version 25: one folder per layer. */
function legacyDockerSave(): { archive: Buffer; diffIds: string[] } {
  const l1 = layerTar("one", "1");
  const l2 = layerTar("two", "2");
  const diffIds = [sha(l1), sha(l2)];
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["sh"] },
      rootfs: { type: "layers", diff_ids: [...diffIds, diffIds[0]] },
    }),
  );
  const configName = `${sha(config).slice(7)}.json`;
  const manifest = [
    {
      Config: configName,
      RepoTags: ["legacy:1", "example.test/x/legacy:2"],
      // The third layer repeats the first: docker links it rather than writing it twice.
      Layers: ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
    },
  ];
  const archive = Buffer.concat([
    tarFile(configName, config),
    tarHeader({ name: "aaa/", type: "dir", mode: 0o755 }),
    tarFile("aaa/layer.tar", l1),
    tarFile("bbb/layer.tar", l2),
    tarHeader({ name: "ccc/layer.tar", type: "symlink", linkname: "../aaa/layer.tar" }),
    tarFile("manifest.json", Buffer.from(JSON.stringify(manifest))),
    tarFile("repositories", Buffer.from("{}")),
    tarEnd(),
  ]);
  return { archive, diffIds };
}

describe("loadArchive", () => {
  test("loadArchive reads docker save's older form, linked layers included", async () => {
    const store = freshStore();
    const { archive, diffIds } = legacyDockerSave();
    const [img] = await loadArchive(store, once(Bun.gzipSync(new Uint8Array(archive))));
    expect(img.names).toEqual(["docker.io/library/legacy:1", "example.test/x/legacy:2"]);
    expect(img.config.rootfs.diff_ids).toEqual([...diffIds, diffIds[0]]);
    expect(img.manifestDoc.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar");
    const dirs = store.layerDirs(img);
    expect(fs.readFileSync(path.join(dirs[1], "two"), "utf8")).toBe("2");
    expect(fs.readdirSync(path.join(store.root, "tmp"))).toEqual([]);
  });

  test("saveArchive writes what loadArchive reads back into another store", async () => {
    const store = freshStore();
    const { archive } = legacyDockerSave();
    const [img] = await loadArchive(store, once(archive));
    const file = path.join(tmp, "saved.tar");
    const fd = fs.openSync(file, "w");
    await saveArchive(store, ["legacy:1"], fd);
    fs.closeSync(fd);
    const other = freshStore();
    const [back] = await loadArchive(other, once(fs.readFileSync(file)));
    expect(back.id).toBe(img.id);
    expect(back.manifest).toBe(img.manifest);
    // Asked for by one name, the image is saved with that name only.
    expect(back.names).toEqual(["docker.io/library/legacy:1"]);
  });

  test("loadArchive refuses a blob whose content does not match its name", async () => {
    const store = freshStore();
    const fake = `sha256:${"b".repeat(64)}`;
    const index = {
      schemaVersion: 2,
      manifests: [
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: fake, size: 2 },
      ],
    };
    const archive = Buffer.concat([
      tarFile("oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}')),
      tarFile("index.json", Buffer.from(JSON.stringify(index))),
      tarFile(`blobs/sha256/${"b".repeat(64)}`, Buffer.from("{}")),
      tarEnd(),
    ]);
    await expect(loadArchive(store, once(archive))).rejects.toThrow(
      /^load: digest mismatch for "sha256:b{64}": got "sha256:/,
    );
    expect(store.listImages()).toEqual([]);
  });

  test("loadArchive refuses a tarball that holds no image", async () => {
    const store = freshStore();
    await expect(loadArchive(store, once(layerTar("x", "y")))).rejects.toThrow(
      "load: not an image archive: no manifest.json or index.json",
    );
  });
});

describe("importRootfs", () => {
  test("importRootfs makes a one-layer image with the changes applied", async () => {
    const store = freshStore();
    const tar = layerTar("bin/sh", "#!");
    const img = await importRootfs(store, once(tar), "imported:1", {
      changes: ['CMD ["/bin/sh"]', "WORKDIR /w"],
    });
    expect(img.config.rootfs.diff_ids).toEqual([sha(tar)]);
    expect(img.config.config).toEqual({ Cmd: ["/bin/sh"], WorkingDir: "/w" });
    expect(store.resolveImage("imported:1").id).toBe(img.id);
  });

  test("applyChange reads Dockerfile instructions", () => {
    const c: ContainerConfig = {};
    applyChange(c, "CMD echo hi");
    applyChange(c, 'ENTRYPOINT ["/init", "--x"]');
    applyChange(c, 'ENV A=1 B="two words"');
    applyChange(c, "ENV C 3 4");
    applyChange(c, "ENV A=5");
    applyChange(c, "EXPOSE 80 53/udp");
    applyChange(c, "LABEL k=v");
    applyChange(c, "USER 1000:1000");
    applyChange(c, "VOLUME /data");
    applyChange(c, "STOPSIGNAL SIGINT");
    expect(c).toEqual({
      Cmd: ["/bin/sh", "-c", "echo hi"],
      Entrypoint: ["/init", "--x"],
      Env: ["B=two words", "C=3 4", "A=5"],
      ExposedPorts: { "80/tcp": {}, "53/udp": {} },
      Labels: { k: "v" },
      User: "1000:1000",
      Volumes: { "/data": {} },
      StopSignal: "SIGINT",
    });
    expect(() => applyChange(c, "RUN make")).toThrow('change "RUN" is not supported by import');
  });
});
