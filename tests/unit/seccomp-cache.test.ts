import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compiledSeccomp } from "../../src/seccomp/cache";
import { compileSeccomp } from "../../src/seccomp/compile";
import { defaultSeccompProfile } from "../../src/seccomp/default";

// The cache lives under XDG_CACHE_HOME for a user; as root it is /var/cache/tinyc.
const dir = mkdtempSync(join(tmpdir(), "tinyc-seccomp-cache-"));
process.env.XDG_CACHE_HOME = dir;
const cacheDir = process.getuid!() === 0 ? "/var/cache/tinyc/seccomp" : join(dir, "tinyc/seccomp");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A profile of this test run alone, so that its cache file is new and is the only one touched.
const profile = { ...defaultSeccompProfile("x64"), defaultErrnoRet: 1 + (process.pid % 4000) };

test("compiledSeccomp gives the compiler's filter, first compiled and then from the cache", () => {
  const direct = compileSeccomp(profile, "x64");
  const first = compiledSeccomp(profile, "x64");
  const second = compiledSeccomp(profile, "x64");
  expect(Buffer.from(first.filter).equals(Buffer.from(direct.filter))).toBe(true);
  expect(Buffer.from(second.filter).equals(Buffer.from(direct.filter))).toBe(true);
  expect(second.flags).toBe(direct.flags);
});

test("compiledSeccomp compiles again when the cached file was changed", () => {
  const direct = compileSeccomp(profile, "x64");
  const before = new Set(readdirSync(cacheDir));
  const changed = { ...profile, defaultErrnoRet: profile.defaultErrnoRet + 1 };
  compiledSeccomp(changed, "x64");
  const ours = readdirSync(cacheDir).filter((n) => !before.has(n));
  expect(ours.length).toBe(1);
  for (const name of ours) {
    const file = join(cacheDir, name);
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(file, bytes);
  }
  const again = compiledSeccomp(changed, "x64");
  const fresh = compileSeccomp(changed, "x64");
  expect(Buffer.from(again.filter).equals(Buffer.from(fresh.filter))).toBe(true);
  expect(Buffer.from(again.filter).equals(Buffer.from(direct.filter))).toBe(false);
});
