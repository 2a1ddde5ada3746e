import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TinycError } from "../../src/errors";
import type { Seccomp, SeccompArg } from "../../src/oci/config";
import { BPF_MAXINSNS, compileSeccomp, disassemble } from "../../src/seccomp/compile";
import { defaultSeccompProfile } from "../../src/seccomp/default";
import { AARCH64, X32, X32_SYSCALL_BIT, X86, X86_64 } from "../../src/seccomp/syscalls";

const AUDIT = { x86_64: 0xc000003e, i386: 0x40000003, aarch64: 0xc00000b7, arm: 0x40000028 };
const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
};
const errno = (e: number) => RET.ERRNO | e;

interface Call {
  nr: number;
  arch?: number;
  args?: bigint[];
}

/** A classic BPF interpreter for the instructions a seccomp filter may use. */
function runFilter(filter: Uint8Array, call: Call): number {
  const data = new DataView(new ArrayBuffer(64));
  data.setUint32(0, call.nr >>> 0, true);
  data.setUint32(4, call.arch ?? AUDIT.x86_64, true);
  (call.args ?? []).forEach((a, i) => data.setBigUint64(16 + 8 * i, a, true));
  const prog = new DataView(filter.buffer, filter.byteOffset, filter.byteLength);
  const count = filter.length / 8;
  let a = 0;
  for (let pc = 0; pc < count; pc++) {
    const code = prog.getUint16(pc * 8, true);
    const jt = prog.getUint8(pc * 8 + 2);
    const jf = prog.getUint8(pc * 8 + 3);
    const k = prog.getUint32(pc * 8 + 4, true);
    switch (code) {
      case 0x20:
        a = data.getUint32(k, true);
        break;
      case 0x54:
        a = (a & k) >>> 0;
        break;
      case 0x05:
        pc += k;
        break;
      case 0x15:
        pc += a === k ? jt : jf;
        break;
      case 0x25:
        pc += a > k ? jt : jf;
        break;
      case 0x35:
        pc += a >= k ? jt : jf;
        break;
      case 0x06:
        return k;
      default:
        throw new Error(`instruction ${pc}: unexpected code 0x${code.toString(16)}`);
    }
  }
  throw new Error("ran off the end of the filter");
}

/** What the kernel's checker (seccomp_check_filter, bpf_check_classic) would refuse. */
function checkStructure(filter: Uint8Array): void {
  expect(filter.length % 8).toBe(0);
  const count = filter.length / 8;
  expect(count).toBeGreaterThan(0);
  expect(count).toBeLessThanOrEqual(BPF_MAXINSNS);
  const prog = new DataView(filter.buffer, filter.byteOffset, filter.byteLength);
  for (let pc = 0; pc < count; pc++) {
    const code = prog.getUint16(pc * 8, true);
    const jt = prog.getUint8(pc * 8 + 2);
    const jf = prog.getUint8(pc * 8 + 3);
    const k = prog.getUint32(pc * 8 + 4, true);
    expect([0x20, 0x54, 0x05, 0x15, 0x25, 0x35, 0x06]).toContain(code);
    if (code === 0x20) {
      expect(k % 4).toBe(0);
      expect(k).toBeLessThan(64);
    }
    if (code === 0x05) expect(pc + 1 + k).toBeLessThan(count);
    if (code === 0x15 || code === 0x25 || code === 0x35) {
      expect(pc + 1 + Math.max(jt, jf)).toBeLessThan(count);
    }
  }
  expect(prog.getUint16((count - 1) * 8, true)).toBe(0x06);
}

const compile = (profile: Seccomp, arch?: string) => {
  const out = compileSeccomp(profile, arch);
  checkStructure(out.filter);
  return out;
};

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TinycError);
    return (err as Error).message;
  }
  throw new Error("expected an error, got none");
}

const allow = (rest: Partial<Seccomp> = {}): Seccomp => ({
  defaultAction: "SCMP_ACT_ALLOW",
  ...rest,
});

describe("compileSeccomp structure", () => {
  test("compileSeccomp writes sock_filter records that start with the architecture check", () => {
    const { filter, flags } = compile(allow());
    expect(flags).toBe(0);
    const lines = disassemble(filter);
    expect(lines[0]).toBe("0: ld 0x4");
    expect(lines[1]).toStartWith(`1: jeq 0x${AUDIT.x86_64.toString(16)} `);
  });

  test("compileSeccomp keeps the default profile small", () => {
    const x86 = compile(defaultSeccompProfile()).filter.length / 8;
    const arm = compile(defaultSeccompProfile("aarch64"), "aarch64").filter.length / 8;
    // A binary search: seven or eight comparisons per call, a few hundred instructions in all.
    expect(x86).toBeLessThan(450);
    expect(arm).toBeLessThan(150);
  });

  test("compileSeccomp maps the filter flags", () => {
    const flags = [
      "SECCOMP_FILTER_FLAG_TSYNC",
      "SECCOMP_FILTER_FLAG_LOG",
      "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ];
    expect(compile(allow({ flags })).flags).toBe(7);
    expect(compile(allow({ flags: ["SECCOMP_FILTER_FLAG_LOG"] })).flags).toBe(2);
  });

  test("compileSeccomp drops rules that end in the default action", () => {
    const base = compile(allow()).filter.length;
    const same = compile(allow({ syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW" }] }));
    expect(same.filter.length).toBe(base);
  });

  test("compileSeccomp reaches every target past the 255 instructions of a jump", () => {
    // One argument rule per call: blocks far from the search tree and from their returns.
    const names = Object.keys(X86_64).slice(0, 300);
    const syscalls = names.map((name, i) => ({
      names: [name],
      action: "SCMP_ACT_ERRNO",
      errnoRet: (i % 200) + 1,
      args: [{ index: i % 6, value: i, op: "SCMP_CMP_EQ" }],
    }));
    const { filter } = compile(allow({ syscalls }));
    expect(filter.length / 8).toBeGreaterThan(1000);
    names.forEach((name, i) => {
      const args = [0n, 0n, 0n, 0n, 0n, 0n];
      args[i % 6] = BigInt(i);
      expect(runFilter(filter, { nr: X86_64[name], args })).toBe(errno((i % 200) + 1));
      args[i % 6] = BigInt(i) + (1n << 32n);
      expect(runFilter(filter, { nr: X86_64[name], args })).toBe(RET.ALLOW);
    });
  });

  test("compileSeccomp refuses a filter longer than the kernel takes", () => {
    const syscalls = Object.keys(X86_64).map((name, i) => ({
      names: [name],
      action: "SCMP_ACT_KILL",
      args: [0, 1, 2, 3, 4, 5].map((index) => ({ index, value: i, op: "SCMP_CMP_NE" })),
    }));
    expect(errorOf(() => compileSeccomp(allow({ syscalls })))).toMatch(
      /^linux\.seccomp: the filter needs \d+ instructions, more than the kernel's limit of 4096$/,
    );
  });
});

describe("compileSeccomp errors", () => {
  test("compileSeccomp refuses SCMP_ACT_NOTIFY", () => {
    const p = allow({ syscalls: [{ names: ["read"], action: "SCMP_ACT_NOTIFY" }] });
    expect(errorOf(() => compileSeccomp(p))).toBe(
      'linux.seccomp.syscalls[0].action: "SCMP_ACT_NOTIFY" not supported',
    );
    expect(errorOf(() => compileSeccomp({ defaultAction: "SCMP_ACT_NOTIFY" }))).toBe(
      'linux.seccomp.defaultAction: "SCMP_ACT_NOTIFY" not supported',
    );
    expect(errorOf(() => compileSeccomp(allow({ listenerPath: "/run/x.sock" })))).toBe(
      "linux.seccomp.listenerPath: not supported (no SCMP_ACT_NOTIFY)",
    );
  });

  test("compileSeccomp names unknown actions, operators, flags and architectures", () => {
    const rule = (action: string, args?: SeccompArg[]) =>
      allow({ syscalls: [{ names: ["read"], action, args }] });
    expect(errorOf(() => compileSeccomp(rule("SCMP_ACT_MAYBE")))).toBe(
      'linux.seccomp.syscalls[0].action: unknown seccomp action "SCMP_ACT_MAYBE"',
    );
    const arg = { index: 0, value: 1, op: "SCMP_CMP_ABOUT" };
    expect(errorOf(() => compileSeccomp(rule("SCMP_ACT_ALLOW", [arg])))).toBe(
      'linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator "SCMP_CMP_ABOUT"',
    );
    const far = { index: 6, value: 1, op: "SCMP_CMP_EQ" };
    expect(errorOf(() => compileSeccomp(rule("SCMP_ACT_ALLOW", [far])))).toBe(
      "linux.seccomp.syscalls[0].args[0].index: expected 0 to 5, got 6",
    );
    expect(errorOf(() => compileSeccomp(allow({ flags: ["SECCOMP_FILTER_FLAG_FAST"] })))).toBe(
      'linux.seccomp.flags: unknown seccomp flag "SECCOMP_FILTER_FLAG_FAST"',
    );
    const listener = allow({ flags: ["SECCOMP_FILTER_FLAG_NEW_LISTENER"] });
    expect(errorOf(() => compileSeccomp(listener))).toBe(
      'linux.seccomp.flags: "SECCOMP_FILTER_FLAG_NEW_LISTENER" not supported (no SCMP_ACT_NOTIFY)',
    );
    expect(errorOf(() => compileSeccomp(allow({ architectures: ["SCMP_ARCH_VAX"] })))).toBe(
      'linux.seccomp.architectures: unknown seccomp architecture "SCMP_ARCH_VAX"',
    );
    expect(errorOf(() => compileSeccomp(allow(), "sparc64"))).toBe(
      'seccomp on architecture "sparc64": not supported',
    );
  });

  test("compileSeccomp refuses an errnoRet the action cannot carry", () => {
    const p = allow({ syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW", errnoRet: 5 }] });
    expect(errorOf(() => compileSeccomp(p))).toBe(
      'linux.seccomp.syscalls[0].action: errnoRet needs "SCMP_ACT_ERRNO" or "SCMP_ACT_TRACE", ' +
        'not "SCMP_ACT_ALLOW"',
    );
    const big = allow({
      syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", errnoRet: 5000 }],
    });
    expect(errorOf(() => compileSeccomp(big))).toBe(
      "linux.seccomp.syscalls[0].action: errnoRet 5000 is not an errno (0 to 4095)",
    );
  });
});

describe("compileSeccomp semantics", () => {
  test("compileSeccomp encodes every action", () => {
    const actions: [string, number | undefined, number][] = [
      ["SCMP_ACT_KILL", undefined, RET.KILL_THREAD],
      ["SCMP_ACT_KILL_THREAD", undefined, RET.KILL_THREAD],
      ["SCMP_ACT_KILL_PROCESS", undefined, RET.KILL_PROCESS],
      ["SCMP_ACT_TRAP", undefined, RET.TRAP],
      ["SCMP_ACT_ERRNO", undefined, errno(1)],
      ["SCMP_ACT_ERRNO", 13, errno(13)],
      ["SCMP_ACT_TRACE", undefined, RET.TRACE | 1],
      ["SCMP_ACT_TRACE", 77, RET.TRACE | 77],
      ["SCMP_ACT_LOG", undefined, RET.LOG],
    ];
    for (const [action, errnoRet, ret] of actions) {
      const { filter } = compile(allow({ syscalls: [{ names: ["getpid"], action, errnoRet }] }));
      expect(runFilter(filter, { nr: X86_64.getpid })).toBe(ret);
      expect(runFilter(filter, { nr: X86_64.getppid })).toBe(RET.ALLOW);
    }
  });

  test("compileSeccomp gives ERRNO rules EPERM, not defaultErrnoRet, when they name none", () => {
    const p: Seccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: 38,
      syscalls: [
        { names: ["getpid"], action: "SCMP_ACT_ERRNO" },
        { names: ["read"], action: "SCMP_ACT_ALLOW" },
      ],
    };
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86_64.getpid })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86_64.write })).toBe(errno(38));
  });

  test("compileSeccomp applies one rule to each of its names and skips unknown names", () => {
    const p = allow({
      syscalls: [{ names: ["mkdir", "no_such_call", "rmdir"], action: "SCMP_ACT_ERRNO" }],
    });
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86_64.mkdir })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86_64.rmdir })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86_64.mkdirat })).toBe(RET.ALLOW);
  });

  test("compileSeccomp lets the first matching rule decide", () => {
    const p = allow({
      syscalls: [
        { names: ["dup"], action: "SCMP_ACT_ERRNO", errnoRet: 1, args: [eq(0, 1)] },
        // Same as the default, but not last: must stay, or dup(1) would fall to the next rule.
        { names: ["dup"], action: "SCMP_ACT_ALLOW", args: [eq(0, 2)] },
        { names: ["dup"], action: "SCMP_ACT_ERRNO", errnoRet: 2 },
        { names: ["dup"], action: "SCMP_ACT_ERRNO", errnoRet: 3 },
      ],
    });
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86_64.dup, args: [1n] })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86_64.dup, args: [2n] })).toBe(RET.ALLOW);
    expect(runFilter(filter, { nr: X86_64.dup, args: [3n] })).toBe(errno(2));
  });

  test("compileSeccomp ANDs the conditions of one rule", () => {
    const p = allow({
      syscalls: [{ names: ["kill"], action: "SCMP_ACT_ERRNO", args: [eq(0, 1), eq(1, 9)] }],
    });
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86_64.kill, args: [1n, 9n] })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86_64.kill, args: [1n, 15n] })).toBe(RET.ALLOW);
    expect(runFilter(filter, { nr: X86_64.kill, args: [2n, 9n] })).toBe(RET.ALLOW);
  });

  test("compileSeccomp compares 64-bit arguments like unsigned numbers", () => {
    const edges = [0n, 1n, 2n, 0x7fffffffn, 0xfffffffen, 0xffffffffn, 1n << 32n, (1n << 32n) + 1n,
      0x1_7fffffffn, 0xffffffff_00000000n, 0xffffffff_fffffffen, (1n << 64n) - 1n];
    const values = [0, 1, 2, 0x7fffffff, 0xffffffff, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 5, 2 ** 64];
    const ops: [string, (a: bigint, v: bigint) => boolean][] = [
      ["SCMP_CMP_EQ", (a, v) => a === v],
      ["SCMP_CMP_NE", (a, v) => a !== v],
      ["SCMP_CMP_LT", (a, v) => a < v],
      ["SCMP_CMP_LE", (a, v) => a <= v],
      ["SCMP_CMP_GT", (a, v) => a > v],
      ["SCMP_CMP_GE", (a, v) => a >= v],
    ];
    for (const [op, holds] of ops) {
      for (const value of values) {
        const v = value === 2 ** 64 ? (1n << 64n) - 1n : BigInt(value);
        const p = allow({
          syscalls: [{ names: ["dup"], action: "SCMP_ACT_ERRNO", args: [{ index: 2, value, op }] }],
        });
        const { filter } = compile(p);
        for (const a of [...edges, v, v + 1n, v - 1n].filter((x) => x >= 0n && x < 1n << 64n)) {
          const want = holds(a, v) ? errno(1) : RET.ALLOW;
          const got = runFilter(filter, { nr: X86_64.dup, args: [0n, 0n, a] });
          if (got !== want) throw new Error(`${op} ${v}: arg ${a} gave ${got.toString(16)}`);
        }
      }
    }
  });

  test("compileSeccomp masks arguments for SCMP_CMP_MASKED_EQ", () => {
    const masked = (value: number, valueTwo: number) =>
      compile(allow({
        syscalls: [{ names: ["dup"], action: "SCMP_ACT_ERRNO",
          args: [{ index: 0, value, valueTwo, op: "SCMP_CMP_MASKED_EQ" }] }],
      })).filter;
    const low = masked(0x7e020000, 0);
    expect(runFilter(low, { nr: X86_64.dup, args: [0x11n] })).toBe(errno(1));
    expect(runFilter(low, { nr: X86_64.dup, args: [0x10000000n] })).toBe(RET.ALLOW);
    // High bits outside the mask do not matter.
    expect(runFilter(low, { nr: X86_64.dup, args: [0xffff_0000_0000_0011n] })).toBe(errno(1));
    const high = masked(2 ** 33 + 1, 2 ** 33);
    expect(runFilter(high, { nr: X86_64.dup, args: [2n ** 33n] })).toBe(errno(1));
    expect(runFilter(high, { nr: X86_64.dup, args: [2n ** 33n + 1n] })).toBe(RET.ALLOW);
    expect(runFilter(high, { nr: X86_64.dup, args: [0n] })).toBe(RET.ALLOW);
    // An expected value with bits outside the mask never matches.
    const never = masked(0xff, 0x100);
    expect(runFilter(never, { nr: X86_64.dup, args: [0x100n] })).toBe(RET.ALLOW);
  });

  test("compileSeccomp kills calls from an architecture not in the filter", () => {
    const { filter } = compile(allow({ architectures: ["SCMP_ARCH_X86_64"] }));
    expect(runFilter(filter, { nr: X86_64.getpid })).toBe(RET.ALLOW);
    expect(runFilter(filter, { nr: X86.getpid, arch: AUDIT.i386 })).toBe(RET.KILL_PROCESS);
    expect(runFilter(filter, { nr: 1, arch: AUDIT.aarch64 })).toBe(RET.KILL_PROCESS);
    // x32 calls share x86_64's audit arch and carry the x32 bit.
    expect(runFilter(filter, { nr: X32.getpid + X32_SYSCALL_BIT })).toBe(RET.KILL_PROCESS);
    expect(runFilter(filter, { nr: -1 })).toBe(RET.KILL_PROCESS);
  });

  test("compileSeccomp always filters the native architecture", () => {
    const p = allow({
      architectures: ["SCMP_ARCH_AARCH64"],
      syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }],
    });
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86_64.mkdir })).toBe(errno(1));
    expect(runFilter(filter, { nr: AARCH64.mkdirat, arch: AUDIT.aarch64 })).toBe(RET.KILL_PROCESS);
  });

  test("compileSeccomp looks names up in the table of each architecture", () => {
    const p = allow({
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      syscalls: [{ names: ["getpid"], action: "SCMP_ACT_ERRNO" }],
    });
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86_64.getpid })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86.getpid, arch: AUDIT.i386 })).toBe(errno(1));
    expect(runFilter(filter, { nr: X32.getpid + X32_SYSCALL_BIT })).toBe(errno(1));
    // A number means another call on the other ABI: i386's getpid (20) is x86_64's writev.
    expect(runFilter(filter, { nr: X86.getpid })).toBe(RET.ALLOW);
    expect(runFilter(filter, { nr: X86_64.getpid, arch: AUDIT.i386 })).toBe(RET.ALLOW);
  });

  test("compileSeccomp compares only the low word of i386 arguments", () => {
    const p = allow({
      architectures: ["SCMP_ARCH_X86"],
      syscalls: [{ names: ["dup"], action: "SCMP_ACT_ERRNO", args: [eq(0, 2 ** 32 + 7)] }],
    });
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86.dup, arch: AUDIT.i386, args: [7n] })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86.dup, arch: AUDIT.i386, args: [8n] })).toBe(RET.ALLOW);
    expect(runFilter(filter, { nr: X86_64.dup, args: [7n] })).toBe(RET.ALLOW);
    expect(runFilter(filter, { nr: X86_64.dup, args: [2n ** 32n + 7n] })).toBe(errno(1));
  });

  test("compileSeccomp copies i386 socket and ipc rules to socketcall and ipc", () => {
    const p = allow({
      architectures: ["SCMP_ARCH_X86"],
      syscalls: [
        { names: ["socket"], action: "SCMP_ACT_ERRNO" },
        { names: ["shmget"], action: "SCMP_ACT_ERRNO", errnoRet: 13, args: [eq(0, 1)] },
      ],
    });
    const { filter } = compile(p);
    const i386 = (nr: number, ...args: bigint[]) =>
      runFilter(filter, { nr, arch: AUDIT.i386, args });
    expect(i386(X86.socket)).toBe(errno(1));
    expect(i386(X86.socketcall, 1n)).toBe(errno(1));
    expect(i386(X86.socketcall, 2n)).toBe(RET.ALLOW);
    // A conditional refusal is copied without its condition; ipc ignores the version bits.
    expect(i386(X86.shmget, 2n)).toBe(RET.ALLOW);
    expect(i386(X86.ipc, 23n)).toBe(errno(13));
    expect(i386(X86.ipc, 0x10017n)).toBe(errno(13));
    expect(i386(X86.ipc, 22n)).toBe(RET.ALLOW);
  });

  test("compileSeccomp returns ENOSYS above the highest call the profile names", () => {
    const p: Seccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
      syscalls: [{ names: ["read", "mkdirat"], action: "SCMP_ACT_ALLOW" }],
    };
    const { filter } = compile(p);
    expect(runFilter(filter, { nr: X86_64.read })).toBe(RET.ALLOW);
    expect(runFilter(filter, { nr: X86_64.write })).toBe(errno(1));
    expect(runFilter(filter, { nr: X86_64.mkdirat + 1 })).toBe(errno(38));
    expect(runFilter(filter, { nr: X32_SYSCALL_BIT - 1 })).toBe(errno(38));
    expect(runFilter(filter, { nr: X32.mkdirat + X32_SYSCALL_BIT + 1 })).toBe(errno(38));
    expect(runFilter(filter, { nr: X32.write + X32_SYSCALL_BIT })).toBe(errno(1));
    // Not when the default allows: a tracer or the log sees new calls instead.
    const logged = compile({ ...p, defaultAction: "SCMP_ACT_LOG" }).filter;
    expect(runFilter(logged, { nr: 1000 })).toBe(RET.LOG);
  });

  test("compileSeccomp builds aarch64 filters from the generic table", () => {
    const p: Seccomp = {
      defaultAction: "SCMP_ACT_KILL_PROCESS",
      architectures: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
      syscalls: [{ names: ["openat", "open", "exit_group"], action: "SCMP_ACT_ALLOW" }],
    };
    const { filter } = compile(p, "arm64");
    const arm64 = (nr: number) => runFilter(filter, { nr, arch: AUDIT.aarch64 });
    expect(arm64(AARCH64.openat)).toBe(RET.ALLOW);
    expect(arm64(AARCH64.exit_group)).toBe(RET.ALLOW);
    expect(arm64(AARCH64.read)).toBe(RET.KILL_PROCESS);
    expect(runFilter(filter, { nr: AARCH64.openat, arch: AUDIT.x86_64 })).toBe(RET.KILL_PROCESS);
    // No table for 32-bit ARM: its tasks meet the bad-arch action.
    expect(runFilter(filter, { nr: 5, arch: AUDIT.arm })).toBe(RET.KILL_PROCESS);
  });
});

describe("defaultSeccompProfile", () => {
  const { filter } = compileSeccomp(defaultSeccompProfile());
  const x64 = (name: string, ...args: bigint[]) => runFilter(filter, { nr: X86_64[name], args });

  test("defaultSeccompProfile allows what programs need, not namespace or admin calls", () => {
    for (const name of ["read", "openat", "mmap", "execve", "exit_group", "futex", "rt_sigreturn",
      "wait4", "getrandom", "statx", "ioctl", "prctl", "setuid", "socketpair", "arch_prctl"]) {
      expect(x64(name)).toBe(RET.ALLOW);
    }
    for (const name of ["mount", "umount2", "unshare", "setns", "pivot_root", "reboot",
      "init_module", "kexec_load", "bpf", "perf_event_open", "io_uring_setup", "keyctl",
      "add_key", "open_by_handle_at", "chroot", "swapon", "settimeofday"]) {
      expect(x64(name)).toBe(errno(1));
    }
    expect(x64("clone3")).toBe(errno(38));
  });

  test("defaultSeccompProfile allows clone without namespace flags", () => {
    expect(x64("clone", 0x01200011n)).toBe(RET.ALLOW);
    expect(x64("clone", 0x003d0f00n)).toBe(RET.ALLOW);
    for (const flag of [0x20000n, 0x02000000n, 0x04000000n, 0x08000000n, 0x10000000n,
      0x20000000n, 0x40000000n]) {
      expect(x64("clone", flag | 0x11n)).toBe(errno(1));
    }
  });

  test("defaultSeccompProfile allows the Linux personalities only", () => {
    for (const value of [0n, 8n, 0x20000n, 0x20008n, 0xffffffffn]) {
      expect(x64("personality", value)).toBe(RET.ALLOW);
    }
    for (const value of [0x40000n, 0x0040008n, 1n, 0x1_00000000n]) {
      expect(x64("personality", value)).toBe(errno(1));
    }
  });

  test("defaultSeccompProfile refuses vsock sockets however the family is padded", () => {
    expect(x64("socket", 2n)).toBe(RET.ALLOW);
    expect(x64("socket", 1n)).toBe(RET.ALLOW);
    expect(x64("socket", 40n)).toBe(errno(1));
    expect(x64("socket", (1n << 32n) | 40n)).toBe(errno(1));
  });

  test("defaultSeccompProfile treats i386 and x32 calls like x86_64 ones", () => {
    const i386 = (name: string) => runFilter(filter, { nr: X86[name], arch: AUDIT.i386 });
    const x32 = (name: string) => runFilter(filter, { nr: X32[name] + X32_SYSCALL_BIT });
    for (const name of ["read", "execve", "exit_group", "socketcall", "mmap2"]) {
      expect(i386(name)).toBe(RET.ALLOW);
    }
    for (const name of ["read", "execve", "exit_group", "rt_sigaction"]) {
      expect(x32(name)).toBe(RET.ALLOW);
    }
    for (const name of ["mount", "unshare", "setns"]) {
      expect(i386(name)).toBe(errno(1));
      expect(x32(name)).toBe(errno(1));
    }
  });
});

function eq(index: number, value: number): SeccompArg {
  return { index, value, op: "SCMP_CMP_EQ" };
}

// The filters below are loaded into the kernel, each by a fresh process.
const gcc = Bun.which("gcc");
const work = mkdtempSync(join(tmpdir(), "tinyc-seccomp-"));
const runner = join(work, "seccomp-run");
let built = "";

beforeAll(() => {
  if (!gcc) return;
  const src = join(import.meta.dir, "../helper/seccomp-run.c");
  const r = Bun.spawnSync([gcc, "-O2", "-Wall", "-Werror", "-o", runner, src], { stderr: "pipe" });
  built = r.exitCode === 0 ? "yes" : r.stderr.toString();
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

let filters = 0;

/** Runs cmd under the profile; signal is set when the process was killed. */
function underFilter(profile: Seccomp | undefined, cmd: string[], arch?: string) {
  let file = "-";
  let flags = 0;
  if (profile) {
    const out = compileSeccomp(profile, arch);
    file = join(work, `filter-${filters++}`);
    writeFileSync(file, out.filter);
    flags = out.flags;
  }
  const r = Bun.spawnSync([runner, file, String(flags), ...cmd], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const text = (r.stdout.toString() + r.stderr.toString()).trim();
  return { status: r.exitCode, signal: r.signalCode ?? undefined, text };
}

const kernel = gcc ? describe : describe.skip;
if (!gcc) console.warn("seccomp: gcc not found, filters are not loaded into the kernel");

kernel("compileSeccomp in the kernel", () => {
  const ready = () => expect(built).toBe("yes");
  const dir = () => mkdtempSync(join(work, "d-"));

  test("compileSeccomp does ERRNO: mkdir fails with EPERM, true still runs", () => {
    ready();
    const p = allow({ syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }] });
    const r = underFilter(p, ["mkdir", join(dir(), "x")]);
    expect(r.status).toBe(1);
    expect(r.text).toContain("Operation not permitted");
    expect(underFilter(p, ["true"]).status).toBe(0);
    expect(underFilter(undefined, ["mkdir", join(dir(), "x")]).status).toBe(0);
  });

  test("compileSeccomp does ERRNO with errnoRet: ENOSYS", () => {
    ready();
    const p = allow({
      syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 38 }],
    });
    const r = underFilter(p, ["mkdir", join(dir(), "x")]);
    expect(r.status).toBe(1);
    expect(r.text).toContain("Function not implemented");
  });

  test("compileSeccomp does KILL_PROCESS, KILL_THREAD and TRAP: the process dies of SIGSYS", () => {
    ready();
    for (const action of ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"]) {
      const p = allow({ syscalls: [{ names: ["getppid"], action }] });
      expect(underFilter(p, ["@sys", String(X86_64.getppid)]).signal).toBe("SIGSYS");
      expect(underFilter(p, ["@sys", String(X86_64.getpid)]).status).toBe(0);
    }
  });

  test("compileSeccomp does TRACE without a tracer and LOG", () => {
    ready();
    const traced = allow({ syscalls: [{ names: ["getppid"], action: "SCMP_ACT_TRACE" }] });
    expect(underFilter(traced, ["@sys", String(X86_64.getppid)]).text).toBe(
      "Function not implemented",
    );
    const logged = allow({ syscalls: [{ names: ["getppid"], action: "SCMP_ACT_LOG" }] });
    expect(underFilter(logged, ["@sys", String(X86_64.getppid)]).text).toStartWith("ok ");
  });

  test("compileSeccomp does argument conditions: AF_INET refused, AF_UNIX allowed", () => {
    ready();
    const p = allow({
      syscalls: [{ names: ["socket"], action: "SCMP_ACT_ERRNO", args: [eq(0, 2)] }],
    });
    const socket = (family: number) =>
      underFilter(p, ["@sys", String(X86_64.socket), `${family}`, "1", "0"]);
    expect(socket(2).text).toBe("Operation not permitted");
    expect(socket(1).text).toStartWith("ok ");
  });

  test("compileSeccomp does MASKED_EQ on clone flags: a user namespace fails, a fork works", () => {
    ready();
    const p = allow({
      syscalls: [
        { names: ["clone"], action: "SCMP_ACT_ALLOW",
          args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] },
        { names: ["clone"], action: "SCMP_ACT_ERRNO" },
      ],
    });
    expect(underFilter(p, ["@fork", "0"]).text).toBe("ok 0");
    expect(underFilter(p, ["@fork", "0x10000000"]).text).toBe("Operation not permitted");
  });

  test("compileSeccomp does the default profile: a shell runs, unshare fails with EPERM", () => {
    ready();
    const p = defaultSeccompProfile();
    const file = existsSync("/etc/hostname") ? "/etc/hostname" : "/etc/passwd";
    const sh = underFilter(p, ["sh", "-c", `ls /; cat ${file}`]);
    expect(sh.status).toBe(0);
    expect(sh.text).toContain("proc");
    const unshare = underFilter(p, ["unshare", "-U", "true"]);
    expect(unshare.status).not.toBe(0);
    expect(unshare.text).toContain("Operation not permitted");
    expect(underFilter(p, ["@fork", "0x10000000"]).text).toBe("Operation not permitted");
    expect(underFilter(p, ["@fork", "0"]).text).toBe("ok 0");
    expect(underFilter(p, ["@sys", String(X86_64.setns), "-1", "0"]).text).toBe(
      "Operation not permitted",
    );
    expect(underFilter(p, ["@sys", String(X86_64.clone3), "0", "0"]).text).toBe(
      "Function not implemented",
    );
    expect(underFilter(p, ["@sys", "1000"]).text).toBe("Function not implemented");
  });

  test("compileSeccomp does flags: LOG and TSYNC load", () => {
    ready();
    const p = allow({
      flags: ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
      syscalls: [{ names: ["getppid"], action: "SCMP_ACT_ERRNO" }],
    });
    expect(underFilter(p, ["@sys", String(X86_64.getppid)]).text).toBe("Operation not permitted");
  });

  test("compileSeccomp does the architecture check: an aarch64 filter kills all here", () => {
    ready();
    expect(underFilter(allow(), ["true"], "aarch64").signal).toBe("SIGSYS");
    // A profile that lists only aarch64 still filters x86_64, as libseccomp adds the native arch.
    const p = allow({
      architectures: ["SCMP_ARCH_AARCH64"],
      syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }],
    });
    expect(underFilter(p, ["true"]).status).toBe(0);
    expect(underFilter(p, ["mkdir", join(dir(), "x")]).text).toContain("Operation not permitted");
  });

  test("compileSeccomp does x32: calls with the x32 bit die unless SCMP_ARCH_X32 is listed", () => {
    ready();
    const x32getpid = String(X32.getpid + X32_SYSCALL_BIT);
    const rule = [{ names: ["getpid"], action: "SCMP_ACT_ERRNO" }];
    const without = allow({ architectures: ["SCMP_ARCH_X86_64"], syscalls: rule });
    expect(underFilter(without, ["@sys", x32getpid]).signal).toBe("SIGSYS");
    const listed = allow({ architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"], syscalls: rule });
    expect(underFilter(listed, ["@sys", x32getpid]).text).toBe("Operation not permitted");
    // Allowed through: the kernel answers, with ENOSYS when it was built without x32.
    const open = allow({ architectures: ["SCMP_ARCH_X32"] });
    expect(underFilter(open, ["@sys", x32getpid]).signal).toBeUndefined();
  });

  test("compileSeccomp does i386 through int $0x80", () => {
    ready();
    // Kernels without IA32 emulation (or booted with ia32_emulation=0) cannot run this.
    if (!underFilter(undefined, ["@int80", String(X86.getpid)]).text.startsWith("ok ")) {
      console.warn("seccomp: no i386 emulation in this kernel, i386 checks skipped");
      return;
    }
    const i386getpid = ["@int80", String(X86.getpid)];
    const rule = [{ names: ["getpid", "socket"], action: "SCMP_ACT_ERRNO" }];
    const without = allow({ architectures: ["SCMP_ARCH_X86_64"], syscalls: rule });
    expect(underFilter(without, i386getpid).signal).toBe("SIGSYS");
    const listed = allow({ architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], syscalls: rule });
    expect(underFilter(listed, i386getpid).text).toBe("Operation not permitted");
    const native = underFilter(listed, ["@sys", String(X86_64.getpid)]);
    expect(native.text).toBe("Operation not permitted");
    // socket through socketcall(SYS_SOCKET, NULL) is refused; bind through it reaches the kernel,
    // which finds no argument block at NULL.
    const socketcall = (call: number) =>
      underFilter(listed, ["@int80", String(X86.socketcall), `${call}`, "0"]).text;
    expect(socketcall(1)).toBe("Operation not permitted");
    expect(socketcall(2)).toBe("Bad address");
  });
});
