// The registry of the benchmark's image workloads: Debian's docker-registry on 127.0.0.1, on a
// free port, its storage in the benchmark's folder, and the test root filesystems pushed to it
// with skopeo as one-layer images from OCI layouts written here (as the integration tests do).
// Every reference handed out names 127.0.0.1 explicitly, so no pull can reach another registry.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Subprocess } from "bun";

export interface Registry {
  /** host:port, for references and registries.conf. */
  host: string;
  proc: Subprocess;
  /** The registry's own log, for the reason it would not start. */
  log: string;
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

/** Runs a set-up command; its stdout, or an Error with the last line it wrote to stderr. */
function run(argv: string[], env: Record<string, string> = { PATH }): Buffer {
  // No output limit: a layer tar is megabytes.
  const r = spawnSync(argv[0], argv.slice(1), { env, maxBuffer: Infinity });
  if (r.status !== 0) {
    const last = r.stderr?.toString().trim().split("\n").pop();
    throw new Error(`${argv[0]} failed: ${r.error?.message ?? (last || `exit ${r.status}`)}`);
  }
  return r.stdout;
}

/** A port nobody listens on now; the registry may still lose it to another program. */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** Starts the registry in dir/registry and waits until it answers; throws if it does not. */
export async function startRegistry(dir: string): Promise<Registry> {
  const root = join(dir, "registry");
  mkdirSync(root, { recursive: true });
  const host = `127.0.0.1:${freePort()}`;
  const config = join(root, "config.yml");
  writeFileSync(config, [
    "version: 0.1",
    "log:",
    "  level: error",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(root, "data")}`,
    "http:",
    `  addr: ${host}`,
    "",
  ].join("\n"));
  const log = join(root, "registry.log");
  const fd = openSync(log, "a");
  // A clean environment: REGISTRY_* variables of the caller's would override the config.
  const proc = Bun.spawn(["docker-registry", "serve", config], {
    env: { PATH }, stdin: "ignore", stdout: fd, stderr: fd,
  });
  closeSync(fd);
  const reg = { host, proc, log };
  for (let i = 0; i < 200 && proc.exitCode === null; i++) {
    try {
      if ((await fetch(`http://${host}/v2/`)).status === 200) return reg;
    } catch {
      // Not listening yet.
    }
    await Bun.sleep(50);
  }
  await stopRegistry(reg);
  const said = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").pop() : "";
  throw new Error(`docker-registry on ${host} did not start${said ? `: ${said}` : ""}`);
}

/** Ends the registry by its pid: TERM, then KILL if it lingers. */
export async function stopRegistry(reg: Registry): Promise<void> {
  if (reg.proc.exitCode !== null || reg.proc.signalCode !== null) return;
  reg.proc.kill("SIGTERM");
  const ended = await Promise.race([reg.proc.exited.then(() => true), Bun.sleep(5000)]);
  if (!ended) {
    reg.proc.kill("SIGKILL");
    await reg.proc.exited;
  }
}

const sha256 = (data: Uint8Array) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

function putBlob(layout: string, data: Uint8Array, mediaType: string) {
  const digest = sha256(data);
  mkdirSync(join(layout, "blobs/sha256"), { recursive: true });
  writeFileSync(join(layout, "blobs/sha256", digest.slice(7)), data);
  return { mediaType, digest, size: data.length };
}

/**
 * An OCI layout of one image: tar as its single layer, gzipped at gzip's default level (as
 * docker and podman push), and a config that runs sh with a PATH, for the host's platform.
 */
function writeLayout(layout: string, tar: Buffer, tag: string): void {
  const arch = process.arch === "arm64" ? "arm64" : "amd64";
  const config = {
    architecture: arch,
    os: "linux",
    config: { Cmd: ["sh"], Env: [`PATH=${PATH}`], WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: [sha256(tar)] },
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: putBlob(layout, Buffer.from(JSON.stringify(config)), OCI_CONFIG),
    layers: [putBlob(layout, gzipSync(tar), GZIP_LAYER)],
  };
  const top = putBlob(layout, Buffer.from(JSON.stringify(manifest)), OCI_MANIFEST);
  const entry = { ...top, annotations: { "org.opencontainers.image.ref.name": tag } };
  writeFileSync(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(layout, "index.json"),
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [entry] }));
}

/** The tar of a root filesystem: a folder is archived, a file is taken as the tar itself. */
export function rootfsTar(source: string, isDir: boolean): Buffer {
  return isDir ? run(["tar", "--numeric-owner", "-C", source, "-cf", "-", "."])
    : readFileSync(source);
}

/**
 * Pushes tar as the image NAME:1 of the registry, through an OCI layout in dir/oci/NAME, and
 * returns its reference. skopeo reads only files of dir: a policy that accepts anything (the
 * images are our own) and registries.conf, the one given.
 */
export function pushImage(reg: Registry, dir: string, name: string, tar: Buffer,
  registriesConf: string): string {
  const layout = join(dir, "oci", name);
  writeLayout(layout, tar, "1");
  const policy = join(dir, "oci", "policy.json");
  writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const ref = `${reg.host}/bench/${name}:1`;
  const env = { PATH, HOME: join(dir, "oci"), CONTAINERS_REGISTRIES_CONF: registriesConf };
  run(["skopeo", "--policy", policy, "copy", "--quiet", "--dest-tls-verify=false",
    `oci:${layout}:1`, `docker://${ref}`], env);
  return ref;
}
