// The launch plan in TypeScript, and its encoding into the byte layout of cshim/tinyc.h.


export const OPS = {
  setns: 1,
  "wait-parent": 2,
  "write-file": 3,
  "setresid-root": 4,
  mount: 5,
  "mount-attr": 6,
  propagation: 7,
  symlink: 8,
  mknod: 9,
  "pivot-root": 10,
  sethostname: 11,
  setdomainname: 12,
  "mask-path": 13,
  "readonly-path": 14,
  rlimit: 15,
  chdir: 16,
  "cap-bounding": 17,
  setgroups: 18,
  setgid: 19,
  setuid: 20,
  caps: 21,
  umask: 22,
  "no-new-privs": 23,
  seccomp: 24,
  "open-fifo": 25,
  ready: 26,
  "close-fds": 27,
  console: 28,
  exec: 29,
  dup2: 30,
  "non-dumpable": 31,
  "find-exec": 32,
  sync: 33,
  pdeathsig: 34,
  unshare: 35,
  run: 36,
  "send-mount": 37,
  "attach-mount": 38,
  exit: 39,
  "loopback-up": 40,
  "tap-persist": 41,
} as const;

export type Op = keyof typeof OPS;

/** Step flags, as TC_F_* in the header. */
export const F = {
  inRoot: 0x1,
  mkdir: 0x2,
  mkfile: 0x4,
  noSymlinks: 0x8,
  recursive: 0x10,
  ignoreEnoent: 0x20,
  procOnly: 0x40,
  create: 0x80,
  noPivot: 0x100,
  fallback: 0x200,
  copyUp: 0x400,
  dumpableWait: 0x800,
  keepConsole: 0x1000,
} as const;

/** Plan flags, as TC_PLAN_* in the header. */
export const PLAN = {
  forkAfterSetns: 0x1,
  newSession: 0x4,
} as const;

/** A string, a list of strings (argv, envp) or a blob of bytes. */
export type Arg = string | string[] | Uint8Array;
export type Num = number | bigint;

export interface Step {
  op: Op;
  flags?: number;
  s1?: Arg;
  s2?: Arg;
  s3?: Arg;
  s4?: Arg;
  a?: Num;
  b?: Num;
  /** A number, or a string whose offset is passed (the fallback source of a mount). */
  c?: Num | string;
  d?: Num;
  /** What the plan printer shows for this step. */
  text: string;
}

export interface Plan {
  cloneFlags: bigint;
  flags: number;
  /** The rootfs, for steps that resolve paths inside it before the pivot. */
  root?: string;
  steps: Step[];
}

export const MAGIC = 0x4e4c5054;
export const VERSION = 1;
export const HEADER_SIZE = 40;
export const STEP_SIZE = 56;

const align8 = (n: number) => (n + 7) & ~7;

/** Lays out the data area: each string, list and blob once, 8-byte aligned. */
class DataArea {
  chunks: Uint8Array[] = [];
  size: number;
  constructor(private base: number) {
    this.size = base;
  }

  private push(bytes: Uint8Array): number {
    const off = this.size;
    this.chunks.push(bytes);
    this.size += bytes.length;
    const pad = align8(this.size) - this.size;
    if (pad) {
      this.chunks.push(new Uint8Array(pad));
      this.size += pad;
    }
    return off;
  }

  string(s: string): number {
    if (s.includes("\0")) {
      throw new Error(`${JSON.stringify(s)}: a string with a NUL byte cannot be passed on`);
    }
    return this.push(Buffer.from(s + "\0"));
  }

  blob(b: Uint8Array): number {
    const out = new Uint8Array(8 + b.length);
    new DataView(out.buffer).setUint32(0, b.length, true);
    out.set(b, 8);
    return this.push(out);
  }

  list(items: string[]): number {
    const offsets = items.map((s) => this.string(s));
    const out = new Uint8Array(8 + 8 * (items.length + 1));
    const view = new DataView(out.buffer);
    view.setUint32(0, items.length, true);
    offsets.forEach((o, i) => view.setBigUint64(8 + 8 * i, BigInt(o), true));
    return this.push(out);
  }

  arg(a: Arg | undefined): number {
    if (a === undefined) return 0;
    if (typeof a === "string") return this.string(a);
    if (Array.isArray(a)) return this.list(a);
    return this.blob(a);
  }
}

export function encodePlan(plan: Plan): Uint8Array {
  const stepsEnd = HEADER_SIZE + STEP_SIZE * plan.steps.length;
  const data = new DataArea(stepsEnd);
  const root = plan.root !== undefined ? data.string(plan.root) : 0;
  const encoded = plan.steps.map((s) => ({
    s: [data.arg(s.s1), data.arg(s.s2), data.arg(s.s3), data.arg(s.s4)],
    c: typeof s.c === "string" ? BigInt(data.string(s.c)) : BigInt(s.c ?? 0),
  }));

  const out = new Uint8Array(data.size);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, plan.steps.length, true);
  view.setUint32(12, plan.flags, true);
  view.setBigUint64(16, plan.cloneFlags, true);
  view.setBigUint64(24, BigInt(out.length), true);
  view.setUint32(32, root, true);

  plan.steps.forEach((step, i) => {
    const at = HEADER_SIZE + STEP_SIZE * i;
    const e = encoded[i];
    view.setUint32(at, OPS[step.op], true);
    view.setUint32(at + 4, step.flags ?? 0, true);
    e.s.forEach((off, k) => view.setUint32(at + 8 + 4 * k, off, true));
    view.setBigUint64(at + 24, BigInt(step.a ?? 0), true);
    view.setBigUint64(at + 32, BigInt(step.b ?? 0), true);
    view.setBigUint64(at + 40, e.c, true);
    view.setBigUint64(at + 48, BigInt(step.d ?? 0), true);
  });

  let at = stepsEnd;
  for (const chunk of data.chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
