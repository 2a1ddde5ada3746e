// ffi/shim.ts: the embedded shim, run by path from a memfd of this process, as the daemon
// starts it. Needs build/tinyc-shim (npm run build).

import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

const built = join(import.meta.dir, "../../build/tinyc-shim");

describe.skipIf(!existsSync(built))("shimPath", () => {
  test("shimPath names a memfd of this process that holds the built shim", async () => {
    const { shimPath } = await import("../../ffi/shim");
    const file = shimPath();
    expect({
      form: /^\/proc\/\d+\/fd\/\d+$/.test(file),
      pid: Number(file.split("/")[2]),
      again: shimPath(),
      memfd: readlinkSync(file).startsWith("/memfd:tinyc-shim"),
      same: Buffer.compare(readFileSync(file), readFileSync(built)),
    }).toEqual({ form: true, pid: process.pid, again: file, memfd: true, same: 0 });
  });

  test("shimPath can be run by a child of this process", async () => {
    const { shimPath } = await import("../../ffi/shim");
    const child = Bun.spawnSync([shimPath(), "--help"]);
    const bad = Bun.spawnSync([shimPath(), "--log-max-files", "x", "d", "--", "true"]);
    expect({
      code: child.exitCode,
      usage: child.stdout.toString().startsWith("usage: tinyc-shim"),
      bad: [bad.exitCode, bad.stderr.toString()],
    }).toEqual({
      code: 0,
      usage: true,
      bad: [2, 'tinyc-shim: --log-max-files "x": not a number from 0 to 1000\n'],
    });
  });
});
