// The launch plan has one definition, cshim/tinyc.h; ffi/plan.ts must encode exactly that layout.
// These tests read the header and compile a probe against it, so a change on one side only fails.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodePlan, F, HEADER_SIZE, MAGIC, OPS, PLAN, STEP_SIZE, VERSION } from "../../ffi/plan";

const header = readFileSync(join(import.meta.dir, "../../cshim/tinyc.h"), "utf8");

/** The values of the enum tc_op, in order from TC_OP_SETNS = 1. */
function headerOps(): Record<string, number> {
  const body = header.slice(header.indexOf("enum tc_op {"), header.indexOf("};", header.indexOf("enum tc_op {")));
  const names = [...body.matchAll(/^\s*TC_OP_([A-Z0-9_]+)/gm)].map((m) => m[1]);
  return Object.fromEntries(names.map((n, i) => [n.toLowerCase().replaceAll("_", "-"), i + 1]));
}

function define(name: string): number {
  const m = new RegExp(`#define ${name}\\s+(0x[0-9a-fA-F]+|\\d+)`).exec(header);
  if (!m) throw new Error(`${name} is not in tinyc.h`);
  return Number(m[1].replace(/u$/, ""));
}

const cc = Bun.which("cc") ?? Bun.which("gcc");

describe("plan layout", () => {
  test("OPS numbers each operation as tinyc.h does", () => {
    expect(OPS as Record<string, number>).toEqual(headerOps());
  });

  test("step flags match the TC_F_ values of tinyc.h", () => {
    const names: Record<string, string> = {
      inRoot: "TC_F_IN_ROOT", mkdir: "TC_F_MKDIR", mkfile: "TC_F_MKFILE",
      noSymlinks: "TC_F_NO_SYMLINKS", recursive: "TC_F_RECURSIVE",
      ignoreEnoent: "TC_F_IGNORE_ENOENT", procOnly: "TC_F_PROC_ONLY", create: "TC_F_CREATE",
      noPivot: "TC_F_NO_PIVOT", fallback: "TC_F_FALLBACK", copyUp: "TC_F_COPYUP",
      dumpableWait: "TC_F_DUMPABLE_WAIT",
    };
    for (const [key, def] of Object.entries(names)) {
      expect({ key, value: F[key as keyof typeof F] }).toEqual({ key, value: define(def) });
    }
    expect(PLAN.forkAfterSetns).toBe(define("TC_PLAN_FORK_AFTER_SETNS"));
    expect(PLAN.newSession).toBe(define("TC_PLAN_NEW_SESSION"));
    expect(MAGIC).toBe(define("TC_PLAN_MAGIC"));
    expect(VERSION).toBe(define("TC_PLAN_VERSION"));
  });

  test.skipIf(!cc)("the header and step sizes are the C structs' sizes", () => {
    const dir = mkdtempSync(join(tmpdir(), "tinyc-layout-"));
    try {
      const probe = join(dir, "probe.c");
      writeFileSync(
        probe,
        `#include <stdio.h>\n#include <stddef.h>\n#include "${join(import.meta.dir, "../../cshim/tinyc.h")}"\n` +
          `int main(void) { printf("%zu %zu %zu %zu %zu\\n", sizeof(struct tc_plan_header),` +
          ` sizeof(struct tc_step), offsetof(struct tc_step, a), offsetof(struct tc_plan_header, root),` +
          ` sizeof(struct tc_report)); return 0; }\n`,
      );
      const build = Bun.spawnSync([cc!, "-o", join(dir, "probe"), probe]);
      expect(build.exitCode).toBe(0);
      const out = Bun.spawnSync([join(dir, "probe")]).stdout.toString().trim().split(" ").map(Number);
      expect(out).toEqual([HEADER_SIZE, STEP_SIZE, 24, 32, 16 + 4000]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("encodePlan lays strings, lists and blobs out 8-byte aligned after the steps", () => {
    const bytes = encodePlan({
      cloneFlags: 0x20000n,
      flags: 0,
      root: "/r",
      steps: [{ op: "exec", s1: ["a", "bc"], s2: [], s3: "/bin", text: "exec" }],
    });
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(0, true)).toBe(MAGIC);
    expect(Number(view.getBigUint64(24, true))).toBe(bytes.length);
    const list = view.getUint32(HEADER_SIZE + 8, true);
    expect(list % 8).toBe(0);
    expect(view.getUint32(list, true)).toBe(2);
    const first = Number(view.getBigUint64(list + 8, true));
    expect(Buffer.from(bytes.subarray(first, first + 2)).toString()).toBe("a\0");
  });
});
