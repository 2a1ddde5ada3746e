// cgroup v2 enforces device rules with an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE.
// This builds one from the OCI rules: the last rule that matches a device decides, as writing
// the rules one by one to a v1 devices cgroup would; a device no rule matches is allowed, as in
// a new v1 group.

import type { DeviceRule } from "../oci/config";

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, access_type being
// (access << 16) | type.
const DEV_BLOCK = 1;
const DEV_CHAR = 2;
const ACC_MKNOD = 1;
const ACC_READ = 2;
const ACC_WRITE = 4;

// Opcodes (linux/bpf.h): 64-bit ALU and jumps with an immediate or a register, word loads.
const LDX_W = 0x61;
const MOV64_X = 0xbf;
const MOV64_K = 0xb7;
const AND64_K = 0x57;
const RSH64_K = 0x77;
const JNE_K = 0x55;
const EXIT = 0x95;

type Insn = [code: number, dst: number, src: number, off: number, imm: number];

function accessMask(access: string | undefined): number {
  let mask = 0;
  for (const ch of access ?? "rwm") {
    if (ch === "r") mask |= ACC_READ;
    else if (ch === "w") mask |= ACC_WRITE;
    else if (ch === "m") mask |= ACC_MKNOD;
  }
  return mask;
}

/** The checks of one rule, each jumping past the rule (to `skip`) when the device differs. */
function ruleChecks(rule: DeviceRule): ((skip: number) => Insn)[] {
  const checks: ((skip: number) => Insn)[] = [];
  const type = rule.type === "b" ? DEV_BLOCK : rule.type === "c" ? DEV_CHAR : 0;
  if (type) checks.push((skip) => [JNE_K, 3, 0, skip, type]);
  const mask = accessMask(rule.access);
  if (mask !== (ACC_READ | ACC_WRITE | ACC_MKNOD)) {
    // Matches only when the access asked for is within the rule's: (asked & ~mask) == 0.
    checks.push(() => [MOV64_X, 7, 4, 0, 0]);
    checks.push(() => [AND64_K, 7, 0, 0, ~mask & 7]);
    checks.push((skip) => [JNE_K, 7, 0, skip, 0]);
  }
  if (rule.major !== undefined && rule.major >= 0) checks.push((skip) => [JNE_K, 5, 0, skip, rule.major!]);
  if (rule.minor !== undefined && rule.minor >= 0) checks.push((skip) => [JNE_K, 6, 0, skip, rule.minor!]);
  return checks;
}

export function deviceFilter(rules: DeviceRule[]): Uint8Array {
  const insns: Insn[] = [
    [LDX_W, 2, 1, 0, 0], // r2 = access_type
    [MOV64_X, 3, 2, 0, 0],
    [AND64_K, 3, 0, 0, 0xffff], // r3 = type
    [MOV64_X, 4, 2, 0, 0],
    [RSH64_K, 4, 0, 0, 16], // r4 = access
    [LDX_W, 5, 1, 4, 0], // r5 = major
    [LDX_W, 6, 1, 8, 0], // r6 = minor
  ];
  // Last rule first: the first match in the program is the last matching rule. A rule that
  // matches every device ends the program: the verifier refuses code that cannot be reached.
  let catchAll = false;
  for (const rule of [...rules].reverse()) {
    const checks = ruleChecks(rule);
    const total = checks.length + 2;
    checks.forEach((check, i) => insns.push(check(total - i - 1)));
    insns.push([MOV64_K, 0, 0, 0, rule.allow ? 1 : 0]);
    insns.push([EXIT, 0, 0, 0, 0]);
    if (checks.length === 0) {
      catchAll = true;
      break;
    }
  }
  if (!catchAll) {
    insns.push([MOV64_K, 0, 0, 0, 1]);
    insns.push([EXIT, 0, 0, 0, 0]);
  }

  const out = new Uint8Array(insns.length * 8);
  const view = new DataView(out.buffer);
  insns.forEach(([code, dst, src, off, imm], i) => {
    view.setUint8(i * 8, code);
    view.setUint8(i * 8 + 1, (src << 4) | dst);
    view.setInt16(i * 8 + 2, off, true);
    view.setInt32(i * 8 + 4, imm, true);
  });
  return out;
}
