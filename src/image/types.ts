// The OCI image documents tinyc reads and writes (image-spec v1.1), with Docker's schema 2
// media types beside the OCI ones.

import { TinycError } from "../errors";

export const MEDIA = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

export const MANIFEST_TYPES = [MEDIA.ociManifest, MEDIA.dockerManifest];
export const INDEX_TYPES = [MEDIA.ociIndex, MEDIA.dockerList];
export const LAYER_TYPES = [
  MEDIA.ociLayer,
  MEDIA.ociLayerGzip,
  MEDIA.ociLayerZstd,
  MEDIA.dockerLayer,
  // Docker's name for an uncompressed layer, as some tools write it.
  "application/vnd.docker.image.rootfs.diff.tar",
];

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.version"?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The part of an image config a container starts from. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface History {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfigFile {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: string; diff_ids: string[] };
  history?: History[];
}

function invalid(what: string, why: string): TinycError {
  return new TinycError(`invalid ${what}: ${why}`);
}

function parseJson(bytes: Uint8Array, what: string): any {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw invalid(what, "not JSON");
  }
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function checkDescriptor(d: any, what: string): Descriptor {
  if (!d || typeof d !== "object") throw invalid(what, "missing descriptor");
  if (typeof d.digest !== "string" || !DIGEST.test(d.digest)) {
    throw invalid(what, `unsupported digest ${JSON.stringify(d.digest)}`);
  }
  if (typeof d.size !== "number" || d.size < 0) throw invalid(what, "bad size");
  if (typeof d.mediaType !== "string") throw invalid(what, "no media type");
  return d as Descriptor;
}

/** The media type a manifest or index says it has (OCI allows leaving it out). */
export function documentType(doc: any, header?: string): string {
  if (typeof doc?.mediaType === "string") return doc.mediaType;
  if (Array.isArray(doc?.manifests)) return MEDIA.ociIndex;
  if (doc?.config) return MEDIA.ociManifest;
  return header ?? "";
}

export function parseManifest(bytes: Uint8Array): Manifest {
  const m = parseJson(bytes, "manifest");
  if (m?.schemaVersion !== 2) throw invalid("manifest", "schema version is not 2");
  const type = documentType(m);
  if (!MANIFEST_TYPES.includes(type as any)) {
    throw new TinycError(`unsupported manifest media type ${JSON.stringify(type)}`);
  }
  checkDescriptor(m.config, "manifest config");
  if (!Array.isArray(m.layers)) throw invalid("manifest", "no layers");
  for (const l of m.layers) {
    checkDescriptor(l, "manifest layer");
    if (!LAYER_TYPES.includes(l.mediaType)) {
      throw new TinycError(`unsupported layer media type ${JSON.stringify(l.mediaType)}`);
    }
  }
  return m as Manifest;
}

export function parseIndex(bytes: Uint8Array): Index {
  const x = parseJson(bytes, "image index");
  if (x?.schemaVersion !== 2 || !Array.isArray(x.manifests)) {
    throw invalid("image index", "no manifests");
  }
  for (const d of x.manifests) checkDescriptor(d, "image index entry");
  return x as Index;
}

export function parseConfig(bytes: Uint8Array): ImageConfigFile {
  const c = parseJson(bytes, "image config");
  if (!c || typeof c !== "object") throw invalid("image config", "not an object");
  if (!c.rootfs || !Array.isArray(c.rootfs.diff_ids)) throw invalid("image config", "no rootfs");
  for (const d of c.rootfs.diff_ids) {
    if (typeof d !== "string" || !DIGEST.test(d)) {
      throw invalid("image config", `bad diff id ${JSON.stringify(d)}`);
    }
  }
  return c as ImageConfigFile;
}

export function platformString(p: { os: string; architecture: string; variant?: string }): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** The host's platform in OCI terms: linux/amd64 on x86_64, linux/arm64/v8 on aarch64. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "arm",
    ia32: "386",
    ppc64: "ppc64le",
    s390x: "s390x",
    riscv64: "riscv64",
  };
  const architecture = arch[process.arch] ?? process.arch;
  const p: Platform = { os: "linux", architecture };
  if (architecture === "arm64") p.variant = "v8";
  if (architecture === "arm") p.variant = "v7";
  return p;
}

export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, extra] = text.split("/");
  if (!os || !architecture || extra !== undefined) {
    throw new TinycError(`invalid platform ${JSON.stringify(text)}: want os/arch[/variant]`);
  }
  const p: Platform = { os, architecture };
  if (variant) p.variant = variant;
  return p;
}

/** Whether an index entry's platform is the wanted one; arm64 without a variant means v8. */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  const norm = (v?: string) => (want.architecture === "arm64" ? (v ?? "v8") : v);
  return !want.variant || norm(have.variant) === norm(want.variant);
}
