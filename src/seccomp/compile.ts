// Compiles an OCI seccomp profile (linux.seccomp: the JSON Docker and podman use) into classic
// BPF before the clone, so that the child only hands the bytes to seccomp(2).
//
// The meaning is runc's on top of libseccomp:
// - The native architecture is always in the filter, with the listed ones that can run on this
//   machine (i386 and x32 beside x86_64). A call from any other ABI meets the bad-arch action,
//   KILL_PROCESS. On x86_64, a number with the x32 bit is an x32 call.
// - Rules keep the profile's order and the first that matches decides. A rule for several
//   names applies to each; the conditions of one rule must all hold.
// - Names this machine's tables lack are skipped: profiles list calls that some kernels lack.
// - When the default action refuses, calls numbered above the highest one the profile has
//   rules for get ENOSYS (runc's stub), so that a libc meeting a newer kernel falls back to an
//   older call instead of failing with the default's EPERM.
// - Arguments compare as 64-bit unsigned values on 64-bit ABIs; on i386 only the low word is
//   compared, against the value cut to 32 bits, as libseccomp does. x32 compares all 64 bits,
//   unlike libseccomp, because an x32 process can set the high halves and the kernel's 64-bit
//   entry points read them.
// - On i386, socket calls and System V IPC can also be made through socketcall(2) and ipc(2).
//   A rule for one of them is copied to the multiplexer with the call number as arg0 (masked to
//   16 bits for ipc, which ignores the version bits above). Its own conditions cannot be copied:
//   the arguments sit in memory. A conditional ALLOW or LOG is therefore not copied, and any other
//   conditional action is copied without its conditions: refusing more than asked, never less.
//
// The program checks the architecture, then finds the call with a binary search over its
// number (seven or eight comparisons for Docker's profile); calls with argument rules branch to a
// block that tests the rules in order. It is generated back to front, so every jump target
// already has its place: a target past the 255 instructions a conditional jump reaches gets a
// copy of its return, or a JA, placed right after the jump.

import { TinycError } from "../errors";
import type { Seccomp, SeccompArg } from "../oci/config";
import { AARCH64, X32, X32_SYSCALL_BIT, X86, X86_64 } from "./syscalls";

/** The kernel refuses longer programs. */
export const BPF_MAXINSNS = 4096;

export interface CompiledSeccomp {
  /** struct sock_filter[], 8 bytes each, little-endian. */
  filter: Uint8Array;
  /** SECCOMP_FILTER_FLAG_* for seccomp(SECCOMP_SET_MODE_FILTER). */
  flags: number;
}

const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

const EPERM = 1;
const ENOSYS = 38;
const MAX_ERRNO = 4095;
const BAD_ARCH = RET.KILL_PROCESS;

const FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};

// Exist, but only serve SCMP_ACT_NOTIFY, which is not supported.
const LISTENER_FLAGS = [
  "SECCOMP_FILTER_FLAG_NEW_LISTENER",
  "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;
const AUDIT_ARCH_AARCH64 = 0xc00000b7;

interface Abi {
  audit: number;
  calls: Readonly<Record<string, number>>;
  /** Added to every number of calls (the x32 bit). */
  bit: number;
  /** The numbers this ABI owns within its audit arch. */
  from: number;
  to: number;
  /** Arguments are 64 bits wide; false compares the low word only. */
  wide: boolean;
  /** Has socketcall(2) and ipc(2). */
  mux: boolean;
}

const U32 = 0xffffffff;

const ABIS: Readonly<Record<string, Abi>> = {
  SCMP_ARCH_X86_64: abi(AUDIT_ARCH_X86_64, X86_64, 0, 0, X32_SYSCALL_BIT - 1),
  SCMP_ARCH_X32: abi(AUDIT_ARCH_X86_64, X32, X32_SYSCALL_BIT, X32_SYSCALL_BIT, U32),
  SCMP_ARCH_X86: { ...abi(AUDIT_ARCH_I386, X86, 0, 0, U32), wide: false, mux: true },
  SCMP_ARCH_AARCH64: abi(AUDIT_ARCH_AARCH64, AARCH64, 0, 0, U32),
};

function abi(audit: number, calls: Abi["calls"], bit: number, from: number, to: number): Abi {
  return { audit, calls, bit, from, to, wide: true, mux: false };
}

/** Per machine: its own ABI, then the ones its kernel may also run. */
const MACHINES: Readonly<Record<string, string[]>> = {
  x86_64: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  // 32-bit ARM tasks meet the bad-arch action: there is no table for SCMP_ARCH_ARM.
  aarch64: ["SCMP_ARCH_AARCH64"],
};

const MACHINE_ALIASES: Readonly<Record<string, string>> = {
  x86_64: "x86_64",
  amd64: "x86_64",
  x64: "x86_64",
  aarch64: "aarch64",
  arm64: "aarch64",
};

// Valid in a profile, but no task here runs them, or (ARM) there is no table for them: their
// calls meet the bad-arch action.
const FOREIGN_ARCHES = new Set([
  "SCMP_ARCH_ARM",
  "SCMP_ARCH_MIPS",
  "SCMP_ARCH_MIPS64",
  "SCMP_ARCH_MIPS64N32",
  "SCMP_ARCH_MIPSEL",
  "SCMP_ARCH_MIPSEL64",
  "SCMP_ARCH_MIPSEL64N32",
  "SCMP_ARCH_PPC",
  "SCMP_ARCH_PPC64",
  "SCMP_ARCH_PPC64LE",
  "SCMP_ARCH_S390",
  "SCMP_ARCH_S390X",
  "SCMP_ARCH_PARISC",
  "SCMP_ARCH_PARISC64",
  "SCMP_ARCH_RISCV32",
  "SCMP_ARCH_RISCV64",
  "SCMP_ARCH_LOONGARCH64",
  "SCMP_ARCH_M68K",
  "SCMP_ARCH_SH",
  "SCMP_ARCH_SHEB",
]);

// i386 call numbers of socketcall(2) and ipc(2) (linux/net.h, linux/ipc.h).
const SOCKETCALL: Readonly<Record<string, number>> = {
  socket: 1, bind: 2, connect: 3, listen: 4, accept: 5, getsockname: 6, getpeername: 7,
  socketpair: 8, send: 9, recv: 10, sendto: 11, recvfrom: 12, shutdown: 13, setsockopt: 14,
  getsockopt: 15, sendmsg: 16, recvmsg: 17, accept4: 18, recvmmsg: 19, sendmmsg: 20,
};
const IPC: Readonly<Record<string, number>> = {
  semop: 1, semget: 2, semctl: 3, semtimedop: 4, msgsnd: 11, msgrcv: 12, msgget: 13, msgctl: 14,
  shmat: 21, shmdt: 22, shmget: 23, shmctl: 24,
};

type Op = "NE" | "LT" | "LE" | "EQ" | "GE" | "GT" | "MASKED_EQ";

const OPS: Readonly<Record<string, Op>> = {
  SCMP_CMP_NE: "NE",
  SCMP_CMP_LT: "LT",
  SCMP_CMP_LE: "LE",
  SCMP_CMP_EQ: "EQ",
  SCMP_CMP_GE: "GE",
  SCMP_CMP_GT: "GT",
  SCMP_CMP_MASKED_EQ: "MASKED_EQ",
};

interface Cond {
  index: number;
  op: Op;
  /** The compared value; for MASKED_EQ the expected value after masking. */
  value: bigint;
  /** MASKED_EQ only. */
  mask: bigint;
}

interface Rule {
  conds: Cond[];
  ret: number;
}

const U64 = (1n << 64n) - 1n;

/** table[key] for the table's own keys only: a profile may say "constructor". */
function lookup<T>(table: Readonly<Record<string, T>>, key: unknown): T | undefined {
  return typeof key === "string" && Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Compiles profile for a machine ("x86_64" or "aarch64"; amd64, x64 and arm64 are accepted). */
export function compileSeccomp(profile: Seccomp, arch = "x86_64"): CompiledSeccomp {
  const machine = lookup(MACHINE_ALIASES, arch);
  if (!machine) {
    throw new TinycError(`seccomp on architecture ${JSON.stringify(arch)}: not supported`);
  }
  const where = "linux.seccomp";
  if (profile.listenerPath !== undefined) {
    throw new TinycError(`${where}.listenerPath: not supported (no SCMP_ACT_NOTIFY)`);
  }
  const dflt = action(
    profile.defaultAction,
    profile.defaultErrnoRet,
    `${where}.defaultAction`,
    "defaultErrnoRet",
  );
  const flags = filterFlags(profile.flags ?? [], `${where}.flags`);
  const rules = (profile.syscalls ?? []).map((s, i) => {
    const at = `${where}.syscalls[${i}]`;
    if (!Array.isArray(s.names)) throw new TinycError(`${at}.names: expected an array`);
    const ret = action(s.action, s.errnoRet, `${at}.action`, "errnoRet");
    const conds = (s.args ?? []).map((a, j) => condition(a, `${at}.args[${j}]`));
    return { names: s.names, rule: { conds, ret } };
  });

  const abis = chooseAbis(machine, profile.architectures ?? [], `${where}.architectures`);
  // runc counts TRACE as permissive too: a tracer can answer new calls itself.
  const permissive =
    dflt === RET.ALLOW || dflt === RET.LOG || (dflt & 0xffff0000) >>> 0 === RET.TRACE;

  const p = new Program();
  const sections: { audit: number; entry: Target }[] = [];
  for (const audit of [...new Set(abis.map((a) => a.audit))].reverse()) {
    const own = abis.filter((a) => a.audit === audit);
    const segs: Seg[] = [];
    for (const a of own) segs.push(...abiSegments(p, a, rules, dflt, !permissive));
    sections.unshift({ audit, entry: p.search(fillGaps(segs)) });
  }
  let entry: Target = { ret: BAD_ARCH };
  for (const s of [...sections].reverse()) entry = p.jump(JEQ, s.audit, s.entry, entry, true);
  p.load(OFF_ARCH, entry);

  const insns = p.finish();
  if (insns.length > BPF_MAXINSNS) {
    throw new TinycError(
      `${where}: the filter needs ${insns.length} instructions, more than the kernel's ` +
        `limit of ${BPF_MAXINSNS}`,
    );
  }
  return { filter: encode(insns), flags };
}

function action(name: string, errnoRet: number | undefined, at: string, field: string): number {
  const data = (fallback: number): number => {
    const e = errnoRet ?? fallback;
    if (!Number.isInteger(e) || e < 0 || e > MAX_ERRNO) {
      throw new TinycError(`${at}: ${field} ${JSON.stringify(e)} is not an errno (0 to 4095)`);
    }
    return e;
  };
  const noData = (): void => {
    if (errnoRet !== undefined) {
      throw new TinycError(
        `${at}: ${field} needs "SCMP_ACT_ERRNO" or "SCMP_ACT_TRACE", not ${JSON.stringify(name)}`,
      );
    }
  };
  switch (name) {
    case "SCMP_ACT_ERRNO":
      // The runtime spec and runc fall back to EPERM here, not to defaultErrnoRet.
      return RET.ERRNO | data(EPERM);
    case "SCMP_ACT_TRACE":
      return RET.TRACE | data(EPERM);
    case "SCMP_ACT_NOTIFY":
      throw new TinycError(`${at}: "SCMP_ACT_NOTIFY" not supported`);
  }
  noData();
  switch (name) {
    case "SCMP_ACT_KILL":
    case "SCMP_ACT_KILL_THREAD":
      return RET.KILL_THREAD;
    case "SCMP_ACT_KILL_PROCESS":
      return RET.KILL_PROCESS;
    case "SCMP_ACT_TRAP":
      return RET.TRAP;
    case "SCMP_ACT_ALLOW":
      return RET.ALLOW;
    case "SCMP_ACT_LOG":
      return RET.LOG;
  }
  throw new TinycError(`${at}: unknown seccomp action ${JSON.stringify(name)}`);
}

function filterFlags(names: string[], at: string): number {
  let flags = 0;
  for (const name of names) {
    const flag = lookup(FLAGS, name);
    if (flag !== undefined) flags |= flag;
    else if (LISTENER_FLAGS.includes(name)) {
      throw new TinycError(`${at}: ${JSON.stringify(name)} not supported (no SCMP_ACT_NOTIFY)`);
    } else throw new TinycError(`${at}: unknown seccomp flag ${JSON.stringify(name)}`);
  }
  return flags;
}

function uint64(v: unknown, at: string): bigint {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 2 ** 64) {
    throw new TinycError(`${at}: expected an integer from 0 to 2^64-1, got ${JSON.stringify(v)}`);
  }
  // 18446744073709551615 (all ones) reaches JavaScript rounded up to 2^64.
  return v === 2 ** 64 ? U64 : BigInt(v);
}

function condition(a: SeccompArg, at: string): Cond {
  if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) {
    throw new TinycError(`${at}.index: expected 0 to 5, got ${JSON.stringify(a.index)}`);
  }
  const op = lookup(OPS, a.op);
  if (!op) throw new TinycError(`${at}.op: unknown seccomp operator ${JSON.stringify(a.op)}`);
  const value = uint64(a.value, `${at}.value`);
  if (op !== "MASKED_EQ") return { index: a.index, op, value, mask: U64 };
  // OCI (and runc) give MASKED_EQ its mask in value and the expected result in valueTwo.
  const expect = uint64(a.valueTwo ?? 0, `${at}.valueTwo`);
  return { index: a.index, op: "MASKED_EQ", value: expect, mask: value };
}

function chooseAbis(machine: string, listed: string[], at: string): Abi[] {
  const possible = MACHINES[machine];
  const chosen = new Set([possible[0]]);
  for (const name of listed) {
    if (possible.includes(name)) chosen.add(name);
    else if (!lookup(ABIS, name) && !FOREIGN_ARCHES.has(name)) {
      throw new TinycError(`${at}: unknown seccomp architecture ${JSON.stringify(name)}`);
    }
  }
  return possible.filter((n) => chosen.has(n)).map((n) => ABIS[n]);
}

/** Rules per call number of one ABI, in profile order, and the highest number with rules. */
function collect(
  a: Abi,
  rules: { names: string[]; rule: Rule }[],
): { byNr: Map<number, Rule[]>; max: number } {
  const byNr = new Map<number, Rule[]>();
  const add = (nr: number, rule: Rule): void => {
    const list = byNr.get(nr);
    if (list) list.push(rule);
    else byNr.set(nr, [rule]);
  };
  let max = -1;
  for (const { names, rule } of rules) {
    for (const name of names) {
      const nr = lookup(a.calls, name);
      if (nr !== undefined) {
        add(nr + a.bit, rule);
        max = Math.max(max, nr + a.bit);
      }
      const via = a.mux ? multiplexed(a, name, rule) : undefined;
      if (via) {
        add(via.nr, via.rule);
        max = Math.max(max, via.nr);
      }
    }
  }
  return { byNr, max };
}

function multiplexed(a: Abi, name: string, rule: Rule): { nr: number; rule: Rule } | undefined {
  const sock = lookup(SOCKETCALL, name);
  const ipc = lookup(IPC, name);
  if (sock === undefined && ipc === undefined) return undefined;
  if (rule.conds.length > 0 && (rule.ret === RET.ALLOW || rule.ret === RET.LOG)) return undefined;
  const select: Cond =
    sock !== undefined
      ? { index: 0, op: "EQ", value: BigInt(sock), mask: U64 }
      : { index: 0, op: "MASKED_EQ", value: BigInt(ipc!), mask: 0xffffn };
  const nr = sock !== undefined ? a.calls.socketcall : a.calls.ipc;
  return { nr, rule: { conds: [select], ret: rule.ret } };
}

/** true or false when a condition holds for every or for no argument value of the ABI. */
function fixed(c: Cond, wide: boolean): boolean | undefined {
  const max = wide ? U64 : BigInt(U32);
  const value = c.value & max;
  const mask = c.mask & max;
  switch (c.op) {
    case "GT":
      return value === max ? false : undefined;
    case "GE":
      return value === 0n ? true : undefined;
    case "LT":
      return value === 0n ? false : undefined;
    case "LE":
      return value === max ? true : undefined;
    case "MASKED_EQ":
      if ((value & ~mask) !== 0n) return false;
      return mask === 0n ? true : undefined;
  }
  return undefined;
}

/** The rules that can decide: after an unconditional rule nothing is reached, and rules at the
 *  end that do what the default does change nothing. */
function decisive(rules: Rule[], dflt: number, wide: boolean): Rule[] {
  const out: Rule[] = [];
  for (const r of rules) {
    const folded = r.conds.map((c) => fixed(c, wide));
    if (folded.includes(false)) continue;
    const conds = r.conds.filter((_, i) => folded[i] === undefined);
    out.push({ conds, ret: r.ret });
    if (conds.length === 0) break;
  }
  while (out.length > 0 && out[out.length - 1].ret === dflt) out.pop();
  return out;
}

type Seg = { from: number; to: number; target: Target };

/** Emits the rule blocks of one ABI and returns what each range of its numbers leads to. */
function abiSegments(
  p: Program,
  a: Abi,
  rules: { names: string[]; rule: Rule }[],
  dflt: number,
  refusing: boolean,
): Seg[] {
  const { byNr, max } = collect(a, rules);
  const segs: Seg[] = [];
  for (const nr of [...byNr.keys()].sort((x, y) => x - y)) {
    const kept = decisive(byNr.get(nr)!, dflt, a.wide);
    if (kept.length === 0) continue;
    segs.push({ from: nr, to: nr, target: p.rules(kept, dflt, a.wide) });
  }
  // Gaps up to the highest named call get the default; above it, ENOSYS when refusing.
  const gaps: Seg[] = [];
  let next = a.from;
  const gap = (from: number, to: number): void => {
    if (from > to) return;
    if (!refusing || max < 0 || to <= max) gaps.push({ from, to, target: { ret: dflt } });
    else if (from > max) gaps.push({ from, to, target: { ret: RET.ERRNO | ENOSYS } });
    else {
      gap(from, max);
      gap(max + 1, to);
    }
  };
  for (const s of segs) {
    gap(next, s.from - 1);
    next = s.to + 1;
  }
  gap(next, a.to);
  return [...segs, ...gaps].sort((x, y) => x.from - y.from);
}

/** Covers 0..2^32-1: numbers no chosen ABI owns meet the bad-arch action. Merges neighbours
 *  with the same target. */
function fillGaps(segs: Seg[]): Seg[] {
  const sorted = [...segs].sort((x, y) => x.from - y.from);
  const out: Seg[] = [];
  let next = 0;
  const push = (s: Seg): void => {
    const last = out[out.length - 1];
    if (last && sameTarget(last.target, s.target)) last.to = s.to;
    else out.push({ ...s });
  };
  for (const s of sorted) {
    if (s.from > next) push({ from: next, to: s.from - 1, target: { ret: BAD_ARCH } });
    push(s);
    next = s.to + 1;
  }
  if (next <= U32) push({ from: next, to: U32, target: { ret: BAD_ARCH } });
  return out;
}

// --- classic BPF ---------------------------------------------------------------------------

const LD_W_ABS = 0x20;
const ALU_AND_K = 0x54;
const JA = 0x05;
const JEQ = 0x15;
const JGT = 0x25;
const JGE = 0x35;
const RET_K = 0x06;

// struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]. All four ABIs
// are little-endian: the low word of an argument comes first.
const OFF_NR = 0;
const OFF_ARCH = 4;
const argLow = (i: number): number => 16 + 8 * i;
const argHigh = (i: number): number => 20 + 8 * i;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** Where control goes: a return with this value, or an emitted instruction. */
type Target = { ret: number } | { label: number };

function sameTarget(a: Target, b: Target): boolean {
  return "ret" in a ? "ret" in b && a.ret === b.ret : "label" in b && a.label === b.label;
}

/**
 * A program built back to front. A label is an instruction's index counted from the end, so
 * it never moves while more is put in front.
 */
class Program {
  private rev: Insn[] = [];
  /** The nearest return of each value, the one to jump to next. */
  private rets = new Map<number, number>();
  /** Rule blocks already emitted: x86_64 and x32 share theirs. */
  private blocks = new Map<string, Target>();

  private push(insn: Insn): number {
    this.rev.push(insn);
    return this.rev.length - 1;
  }

  private label(t: Target): number {
    if ("label" in t) return t.label;
    const near = this.rets.get(t.ret);
    if (near !== undefined) return near;
    return this.ret(t.ret);
  }

  private ret(k: number): number {
    const at = this.push({ code: RET_K, jt: 0, jf: 0, k });
    this.rets.set(k, at);
    return at;
  }

  /** An instruction right here that leads to t: a copy of its return, or a JA. */
  private trampoline(t: Target, to: number): number {
    if ("ret" in t) return this.ret(t.ret);
    return this.push({ code: JA, jt: 0, jf: 0, k: this.rev.length - 1 - to });
  }

  /** A conditional jump, placed in front of everything emitted so far. Unless kept, a jump to
   *  one place either way is left out. */
  jump(code: number, k: number, onTrue: Target, onFalse: Target, keep = false): Target {
    if (!keep && sameTarget(onTrue, onFalse)) return onTrue;
    let t = this.label(onTrue);
    let f = this.label(onFalse);
    for (;;) {
      const here = this.rev.length;
      if (here - 1 - t > 255) t = this.trampoline(onTrue, t);
      else if (here - 1 - f > 255) f = this.trampoline(onFalse, f);
      else break;
    }
    const here = this.rev.length;
    return { label: this.push({ code, jt: here - 1 - t, jf: here - 1 - f, k }) };
  }

  /** Loads a word of seccomp_data and goes on at next, which must be what was emitted last. */
  load(offset: number, next: Target, mask = U32): Target {
    if (mask !== U32) next = this.step(ALU_AND_K, mask, next);
    return this.step(LD_W_ABS, offset, next);
  }

  private step(code: number, k: number, next: Target): Target {
    if (!("label" in next) || next.label !== this.rev.length - 1) {
      throw new Error("seccomp compiler: a statement must fall through to its successor");
    }
    return { label: this.push({ code, jt: 0, jf: 0, k }) };
  }

  /** Tests one word: (A & mask) compared with k. */
  private test(
    offset: number,
    mask: number,
    code: number,
    k: number,
    onTrue: Target,
    onFalse: Target,
  ): Target {
    if (sameTarget(onTrue, onFalse)) return onTrue;
    return this.load(offset, this.jump(code, k, onTrue, onFalse), mask);
  }

  /** The rules of one call, first match first; none matching gives the default. */
  rules(rules: Rule[], dflt: number, wide: boolean): Target {
    if (rules.length === 1 && rules[0].conds.length === 0) return { ret: rules[0].ret };
    const key = JSON.stringify([wide, rules], (_, v) => (typeof v === "bigint" ? `${v}` : v));
    const done = this.blocks.get(key);
    if (done) return done;
    let next: Target = { ret: dflt };
    for (const r of [...rules].reverse()) {
      let entry: Target = { ret: r.ret };
      for (const c of [...r.conds].reverse()) {
        entry = wide ? this.cond64(c, entry, next) : this.cond32(c, entry, next);
      }
      next = entry;
    }
    this.blocks.set(key, next);
    return next;
  }

  private cond32(c: Cond, pass: Target, fail: Target): Target {
    const lo = argLow(c.index);
    const v = Number(c.value & 0xffffffffn);
    switch (c.op) {
      case "EQ":
        return this.test(lo, U32, JEQ, v, pass, fail);
      case "NE":
        return this.test(lo, U32, JEQ, v, fail, pass);
      case "GT":
        return this.test(lo, U32, JGT, v, pass, fail);
      case "GE":
        return this.test(lo, U32, JGE, v, pass, fail);
      case "LT":
        return this.test(lo, U32, JGE, v, fail, pass);
      case "LE":
        return this.test(lo, U32, JGT, v, fail, pass);
      case "MASKED_EQ":
        return this.test(lo, Number(c.mask & 0xffffffffn), JEQ, v, pass, fail);
    }
  }

  // A 64-bit comparison is decided by the high words unless they are equal; then the low words
  // decide. Code runs high word first, so it is emitted low word first.
  private cond64(c: Cond, pass: Target, fail: Target): Target {
    const lo = argLow(c.index);
    const hi = argHigh(c.index);
    const vl = Number(c.value & 0xffffffffn);
    const vh = Number(c.value >> 32n);
    switch (c.op) {
      case "EQ":
        return this.test(hi, U32, JEQ, vh, this.test(lo, U32, JEQ, vl, pass, fail), fail);
      case "NE":
        return this.test(hi, U32, JEQ, vh, this.test(lo, U32, JEQ, vl, fail, pass), pass);
      case "GT":
        return this.above(hi, vh, this.test(lo, U32, JGT, vl, pass, fail), pass, fail);
      case "GE":
        return this.above(hi, vh, this.test(lo, U32, JGE, vl, pass, fail), pass, fail);
      case "LT":
        return this.above(hi, vh, this.test(lo, U32, JGE, vl, fail, pass), fail, pass);
      case "LE":
        return this.above(hi, vh, this.test(lo, U32, JGT, vl, fail, pass), fail, pass);
      case "MASKED_EQ": {
        const ml = Number(c.mask & 0xffffffffn);
        const mh = Number(c.mask >> 32n);
        // fixed() has dropped the rule when the expected value has bits outside the mask, so
        // a half without mask bits holds for every argument.
        const low = ml === 0 ? pass : this.test(lo, ml, JEQ, vl, pass, fail);
        return mh === 0 ? low : this.test(hi, mh, JEQ, vh, low, fail);
      }
    }
  }

  /** High word: above vh goes to over, below to under, equal to low. */
  private above(hi: number, vh: number, low: Target, over: Target, under: Target): Target {
    if (vh === 0) return this.test(hi, U32, JGT, 0, over, low);
    if (vh === U32) return this.test(hi, U32, JEQ, U32, low, under);
    if (sameTarget(low, under) && sameTarget(low, over)) return low;
    const eq = this.jump(JEQ, vh, low, under);
    const gt = this.jump(JGT, vh, over, eq);
    return this.load(hi, gt);
  }

  /** A binary search over call numbers; A holds nr. segs cover 0..2^32-1 in order. */
  search(segs: Seg[]): Target {
    if (segs.length === 1) return segs[0].target;
    return this.load(OFF_NR, this.node(segs, 0, segs.length - 1));
  }

  private node(segs: Seg[], first: number, last: number): Target {
    if (first === last) return segs[first].target;
    const mid = (first + last + 1) >> 1;
    const upper = this.node(segs, mid, last);
    const lower = this.node(segs, first, mid - 1);
    return this.jump(JGE, segs[mid].from, upper, lower);
  }

  finish(): Insn[] {
    return [...this.rev].reverse();
  }
}

function encode(insns: Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * 8);
  const view = new DataView(out.buffer);
  insns.forEach((insn, i) => {
    view.setUint16(i * 8, insn.code, true);
    view.setUint8(i * 8 + 2, insn.jt);
    view.setUint8(i * 8 + 3, insn.jf);
    view.setUint32(i * 8 + 4, insn.k >>> 0, true);
  });
  return out;
}

/** One line per instruction, for debugging and tests: "12: jge 0x3c 0 4". */
export function disassemble(filter: Uint8Array): string[] {
  const view = new DataView(filter.buffer, filter.byteOffset, filter.byteLength);
  const names: Record<number, string> = {
    [LD_W_ABS]: "ld",
    [ALU_AND_K]: "and",
    [JA]: "ja",
    [JEQ]: "jeq",
    [JGT]: "jgt",
    [JGE]: "jge",
    [RET_K]: "ret",
  };
  const lines: string[] = [];
  for (let i = 0; i * 8 < filter.length; i++) {
    const code = view.getUint16(i * 8, true);
    const k = `0x${view.getUint32(i * 8 + 4, true).toString(16)}`;
    const name = names[code] ?? `op${code.toString(16)}`;
    const jumps = code === JEQ || code === JGT || code === JGE;
    const args = jumps ? `${k} ${view.getUint8(i * 8 + 2)} ${view.getUint8(i * 8 + 3)}` : k;
    lines.push(`${i}: ${name} ${args}`);
  }
  return lines;
}
