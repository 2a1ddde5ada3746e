// Compiled filters, kept by the hash of their profile: compiling Docker's default profile costs
// more than the rest of starting a container, and the same profile comes back run after run.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Seccomp } from "../oci/config";
import type { CompiledSeccomp } from "./compile";

/** Bumped whenever the compiler's output for a profile could change. */
const FORMAT = 2;

function digest(bytes: Uint8Array): Buffer {
  return Buffer.from(new Bun.CryptoHasher("sha256").update(bytes).digest());
}

function cacheDir(): string {
  if (process.getuid!() === 0) return "/var/cache/tinyc/seccomp";
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "tinyc", "seccomp");
}

/** The filter for PROFILE on ARCH, compiled once and then read back. */
export function compiledSeccomp(profile: Seccomp, arch: string): CompiledSeccomp {
  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(`${FORMAT}\n${arch}\n${JSON.stringify(profile)}`);
  const key = hasher.digest("hex");
  const dir = cacheDir();
  const file = join(dir, `${key}.bpf`);
  try {
    // 4 bytes of flags, the sha256 of the instructions, then the instructions: a file that
    // was cut short or changed is compiled again, never loaded.
    const bytes = readFileSync(file);
    const filter = new Uint8Array(bytes.subarray(36));
    if (bytes.length > 36 && filter.length % 8 === 0 && digest(filter).equals(bytes.subarray(4, 36))) {
      return { flags: bytes.readUInt32LE(0), filter };
    }
  } catch {
    // Not compiled yet.
  }
  const { compileSeccomp } = require("./compile") as typeof import("./compile");
  const compiled = compileSeccomp(profile, arch);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const out = Buffer.alloc(36 + compiled.filter.length);
    out.writeUInt32LE(compiled.flags, 0);
    out.set(digest(compiled.filter), 4);
    out.set(compiled.filter, 36);
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, out, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // A cache that cannot be written only costs time.
  }
  return compiled;
}
