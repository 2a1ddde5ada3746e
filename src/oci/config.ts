// The OCI runtime-spec config.json (1.0 to 1.2): its types, and a parser that checks the type
// of every field it knows and names the field's path when one is wrong. Unknown fields are
// kept and ignored, as the spec requires. A field set to null counts as absent, as it does for
// runc (Go's encoding/json), and is removed so that users of a Spec never meet a null.

import { TinycError } from "../errors";
import { parseJson } from "./json";

export interface Spec {
  ociVersion: string;
  process?: Process;
  root: Root;
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  /** Filled in by the parser when absent: uid and gid 0, as runc reads a missing user. */
  user: User;
  args: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  scheduler?: Scheduler;
  ioPriority?: IoPriority;
  execCPUAffinity?: { initial?: string; final?: string };
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  username?: string;
}

export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

/**
 * JSON numbers are doubles, so RLIM_INFINITY (2**64 - 1) arrives as 2**64: any value at or
 * above 2**64 - 1 means unlimited.
 */
export interface Rlimit {
  type: string;
  hard: number;
  soft: number;
}

export interface Scheduler {
  policy: string;
  nice?: number;
  priority?: number;
  flags?: string[];
  runtime?: number;
  deadline?: number;
  period?: number;
}

export interface IoPriority {
  class: string;
  priority?: number;
}

export interface Root {
  path: string;
  readonly?: boolean;
}

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface Hooks {
  /** Deprecated by the spec in favour of createRuntime, still honoured by runc. */
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

export type NamespaceType =
  | "pid"
  | "network"
  | "mount"
  | "ipc"
  | "uts"
  | "user"
  | "cgroup"
  | "time";

export interface Namespace {
  type: NamespaceType;
  path?: string;
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface Device {
  type: "c" | "b" | "u" | "p";
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface DeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface Resources {
  devices?: DeviceRule[];
  memory?: MemoryResources;
  cpu?: CpuResources;
  pids?: { limit?: number };
  blockIO?: Record<string, unknown>;
  hugepageLimits?: { pageSize: string; limit: number }[];
  network?: { classID?: number; priorities?: { name: string; priority: number }[] };
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
  unified?: Record<string, string>;
}

export interface MemoryResources {
  limit?: number;
  reservation?: number;
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  checkBeforeUpdate?: boolean;
}

export interface CpuResources {
  shares?: number;
  quota?: number;
  burst?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
}

export interface SeccompArg {
  index: number;
  /** A double: masks above 2**53 cannot be written exactly in JSON read by JavaScript. */
  value: number;
  valueTwo?: number;
  op: string;
}

export interface SeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface Seccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: SeccompSyscall[];
}

export interface Linux {
  namespaces?: Namespace[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  devices?: Device[];
  cgroupsPath?: string;
  resources?: Resources;
  sysctl?: Record<string, string>;
  seccomp?: Seccomp;
  rootfsPropagation?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  intelRdt?: Record<string, unknown>;
  personality?: { domain: "LINUX" | "LINUX32"; flags?: string[] };
  timeOffsets?: Record<string, { secs?: number; nanosecs?: number }>;
  netDevices?: Record<string, { name?: string }>;
}

/** Capability numbers, as in linux/capability.h. */
export const CAPABILITIES: Readonly<Record<string, number>> = Object.freeze({
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
});

/** Resource numbers for setrlimit, as in asm-generic/resource.h (x86_64, arm64, riscv). */
export const RLIMITS: Readonly<Record<string, number>> = Object.freeze({
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
});

export const NAMESPACE_TYPES: readonly NamespaceType[] = Object.freeze([
  "pid",
  "network",
  "mount",
  "ipc",
  "uts",
  "user",
  "cgroup",
  "time",
]);

/** Parses and checks a config.json; file names it in messages ("config.json: process.cwd: ..."). */
export function parseConfig(text: string, file: string): Spec {
  const value = parseJson(text, file);
  return withFile(file, () => {
    checkSpec(value, "");
    checkNoNul(value, "");
    return value as Spec;
  });
}

/** No string may hold a NUL byte: none could reach the kernel whole. */
function checkNoNul(v: unknown, path: string): void {
  if (typeof v === "string") {
    if (v.includes("\0")) throw new TinycError(`${path || "value"}: contains a NUL byte`);
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => checkNoNul(x, `${path}[${i}]`));
  } else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) checkNoNul(x, path ? `${path}.${k}` : k);
  }
}

/** Parses and checks a standalone process.json, as `exec --process` reads it. */
export function parseProcess(text: string, file: string): Process {
  const value = parseJson(text, file);
  return withFile(file, () => {
    checkProcess(value, "");
    checkNoNul(value, "");
    return value as Process;
  });
}

/** The process of a spec, which `run` and `start` need and `create` alone does not check. */
export function requireProcess(spec: Spec, file?: string): Process {
  if (spec.process) return spec.process;
  throw new TinycError(file === undefined ? "process: missing" : `${file}: process: missing`);
}

function withFile<T>(file: string, body: () => T): T {
  try {
    return body();
  } catch (err) {
    throw err instanceof TinycError ? err.wrap(file) : err;
  }
}

// Checkers. Each takes a value and the path that names it, and throws on the first problem.
// When the type is wrong the message names the type found; when the type is right but the
// value is not, it quotes the value.

type Check = (value: unknown, path: string) => void;
type Obj = Record<string, unknown>;

const ID_MAX = 2 ** 32 - 2;
const U32_MAX = 2 ** 32 - 1;

function bad(path: string, message: string): never {
  throw new TinycError(path === "" ? message : `${path}: ${message}`);
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "array" : typeof value;
}

function expected(path: string, what: string, value: unknown): never {
  bad(path, `expected ${what}, got ${typeName(value)}`);
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

const str: Check = (v, p) => {
  if (typeof v !== "string") expected(p, "a string", v);
};

const bool: Check = (v, p) => {
  if (typeof v !== "boolean") expected(p, "a boolean", v);
};

function int(min: number, max: number, what?: string): Check {
  const range = what ?? `an integer in ${min}..${max}`;
  return (v, p) => {
    if (typeof v !== "number") expected(p, range, v);
    if (!Number.isInteger(v) || v < min || v > max) bad(p, `expected ${range}, got ${v}`);
  };
}

const id = int(0, ID_MAX);
const uint16 = int(0, 2 ** 16 - 1);
const uint32 = int(0, U32_MAX);
const int32 = int(-(2 ** 31), 2 ** 31 - 1);
const int64 = int(-(2 ** 63), 2 ** 63, "an integer");
// 2**64 itself is accepted: it is what 18446744073709551615 becomes after JSON.parse.
const uint64 = int(0, 2 ** 64, "a non-negative integer");

function object(value: unknown, path: string): Obj {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    expected(path, "an object", value);
  }
  return value as Obj;
}

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) expected(path, "an array", value);
  return value;
}

const strings: Check = (v, p) => {
  if (!Array.isArray(v)) expected(p, "an array of strings", v);
  const i = v.findIndex((item) => typeof item !== "string");
  if (i !== -1) bad(p, `expected an array of strings, got ${typeName(v[i])} at ${p}[${i}]`);
};

const nonEmptyStrings: Check = (v, p) => {
  strings(v, p);
  if ((v as string[]).length === 0) bad(p, "must not be empty");
};

function arrayOf(item: Check): Check {
  return (v, p) => array(v, p).forEach((entry, i) => item(entry, `${p}[${i}]`));
}

function mapOf(item: Check): Check {
  return (v, p) => {
    for (const [key, entry] of Object.entries(object(v, p))) {
      item(entry, `${p}[${JSON.stringify(key)}]`);
    }
  };
}

function oneOf(values: readonly string[], what: string): Check {
  return (v, p) => {
    str(v, p);
    if (!values.includes(v as string)) bad(p, `unknown ${what} ${JSON.stringify(v)}`);
  };
}

const absPath: Check = (v, p) => {
  str(v, p);
  if (!(v as string).startsWith("/")) bad(p, `expected an absolute path, got ${JSON.stringify(v)}`);
};

const absPaths = arrayOf(absPath);

/** Checks the known fields of an object; null fields are dropped, required ones must remain. */
function fields(table: Record<string, Check>, required: readonly string[] = []): Check {
  return (v, p) => {
    const obj = object(v, p);
    for (const key of Object.keys(table)) {
      if (obj[key] === null) delete obj[key];
    }
    for (const key of required) {
      if (obj[key] === undefined) bad(join(p, key), "missing");
    }
    for (const [key, check] of Object.entries(table)) {
      if (obj[key] !== undefined) check(obj[key], join(p, key));
    }
  };
}

function all(...checks: Check[]): Check {
  return (v, p) => checks.forEach((check) => check(v, p));
}

function noDuplicates(key: string, what: string): Check {
  return (v, p) => {
    const seen = new Set<unknown>();
    (v as Obj[]).forEach((entry, i) => {
      const value = entry[key];
      if (seen.has(value)) bad(`${p}[${i}]`, `duplicate ${what} ${JSON.stringify(value)}`);
      seen.add(value);
    });
  };
}

// The process.

const capList = all(strings, (v, p) => {
  (v as string[]).forEach((name, i) => {
    if (Object.hasOwn(CAPABILITIES, name)) return;
    bad(`${p}[${i}]`, `unknown capability ${JSON.stringify(name)}`);
  });
});

const capabilities = fields({
  bounding: capList,
  effective: capList,
  inheritable: capList,
  permitted: capList,
  ambient: capList,
});

const softWithinHard: Check = (v, p) => {
  const { soft, hard } = v as Rlimit;
  if (soft > hard) bad(p, `soft limit ${soft} is above hard limit ${hard}`);
};

const rlimit = all(
  fields(
    { type: oneOf(Object.keys(RLIMITS), "rlimit type"), hard: uint64, soft: uint64 },
    ["type", "hard", "soft"],
  ),
  softWithinHard,
);

const rlimits = all(arrayOf(rlimit), noDuplicates("type", "rlimit type"));

const user = fields({
  uid: id,
  gid: id,
  umask: uint32,
  additionalGids: arrayOf(id),
  username: str,
});

const SCHED_POLICIES = [
  "SCHED_OTHER",
  "SCHED_FIFO",
  "SCHED_RR",
  "SCHED_BATCH",
  "SCHED_ISO",
  "SCHED_IDLE",
  "SCHED_DEADLINE",
];

const SCHED_FLAGS = [
  "SCHED_FLAG_RESET_ON_FORK",
  "SCHED_FLAG_RECLAIM",
  "SCHED_FLAG_DL_OVERRUN",
  "SCHED_FLAG_KEEP_POLICY",
  "SCHED_FLAG_KEEP_PARAMS",
  "SCHED_FLAG_UTIL_CLAMP_MIN",
  "SCHED_FLAG_UTIL_CLAMP_MAX",
];

const scheduler = fields(
  {
    policy: oneOf(SCHED_POLICIES, "scheduler policy"),
    nice: int(-20, 19),
    priority: int32,
    flags: arrayOf(oneOf(SCHED_FLAGS, "scheduler flag")),
    runtime: uint64,
    deadline: uint64,
    period: uint64,
  },
  ["policy"],
);

const IOPRIO_CLASSES = ["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"];

const ioPriority = fields(
  { class: oneOf(IOPRIO_CLASSES, "io priority class"), priority: int(0, 7) },
  ["class"],
);

/** A CPU list as the kernel writes one: "0-3,7". */
const cpuList: Check = (v, p) => {
  str(v, p);
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v as string)) {
    bad(p, `expected a cpu list like "0-3,7", got ${JSON.stringify(v)}`);
  }
};

const args: Check = (v, p) => {
  nonEmptyStrings(v, p);
  if ((v as string[])[0] === "") bad(`${p}[0]`, "must not be empty");
};

const fillUser: Check = (v) => {
  const proc = v as Obj;
  const u = (proc.user ??= {}) as Obj;
  u.uid ??= 0;
  u.gid ??= 0;
};

const checkProcess: Check = all(
  fields(
    {
      terminal: bool,
      consoleSize: fields({ height: uint32, width: uint32 }, ["height", "width"]),
      user,
      args,
      commandLine: str,
      env: strings,
      cwd: absPath,
      capabilities,
      rlimits,
      noNewPrivileges: bool,
      apparmorProfile: str,
      oomScoreAdj: int(-1000, 1000),
      selinuxLabel: str,
      scheduler,
      ioPriority,
      execCPUAffinity: fields({ initial: cpuList, final: cpuList }),
    },
    ["args", "cwd"],
  ),
  fillUser,
);

// Mounts, hooks and id mappings.

const mappingFits: Check = (v, p) => {
  const m = v as IdMapping;
  for (const key of ["containerID", "hostID"] as const) {
    if (m[key] + m.size <= U32_MAX) continue;
    bad(p, `${key} ${m[key]} plus size ${m.size} exceeds ${U32_MAX}`);
  }
};

const mapping = all(
  fields({ containerID: id, hostID: id, size: int(1, U32_MAX) }, ["containerID", "hostID", "size"]),
  mappingFits,
);

const mappings = arrayOf(mapping);

const mount = fields(
  {
    destination: absPath,
    type: str,
    source: str,
    options: strings,
    uidMappings: mappings,
    gidMappings: mappings,
  },
  ["destination"],
);

const hook = fields(
  { path: absPath, args: strings, env: strings, timeout: int(1, 2 ** 31 - 1) },
  ["path"],
);

const hookList = arrayOf(hook);

const hooks = fields({
  prestart: hookList,
  createRuntime: hookList,
  createContainer: hookList,
  startContainer: hookList,
  poststart: hookList,
  poststop: hookList,
});

// The linux object.

const namespace = fields(
  { type: oneOf(NAMESPACE_TYPES, "namespace type"), path: absPath },
  ["type"],
);

const namespaces = all(arrayOf(namespace), noDuplicates("type", "namespace type"));

const majorMinorGiven: Check = (v, p) => {
  const dev = v as Obj;
  if (dev.type === "p") return;
  for (const key of ["major", "minor"]) {
    if (dev[key] !== undefined) continue;
    bad(join(p, key), `missing for device type ${JSON.stringify(dev.type)}`);
  }
};

const device = all(
  fields(
    {
      type: oneOf(["c", "b", "u", "p"], "device type"),
      path: absPath,
      major: int64,
      minor: int64,
      fileMode: uint32,
      uid: id,
      gid: id,
    },
    ["type", "path"],
  ),
  majorMinorGiven,
);

const blockDevice = { major: int64, minor: int64 };
const throttle = arrayOf(fields({ ...blockDevice, rate: uint64 }, ["major", "minor", "rate"]));

const blockIO = fields({
  weight: uint16,
  leafWeight: uint16,
  weightDevice: arrayOf(
    fields({ ...blockDevice, weight: uint16, leafWeight: uint16 }, ["major", "minor"]),
  ),
  throttleReadBpsDevice: throttle,
  throttleWriteBpsDevice: throttle,
  throttleReadIOPSDevice: throttle,
  throttleWriteIOPSDevice: throttle,
});

const memory = fields({
  limit: int64,
  reservation: int64,
  swap: int64,
  kernel: int64,
  kernelTCP: int64,
  swappiness: uint64,
  disableOOMKiller: bool,
  useHierarchy: bool,
  checkBeforeUpdate: bool,
});

const cpu = fields({
  shares: uint64,
  quota: int64,
  burst: uint64,
  period: uint64,
  realtimeRuntime: int64,
  realtimePeriod: uint64,
  cpus: str,
  mems: str,
  idle: int64,
});

const deviceRule = fields(
  {
    allow: bool,
    type: oneOf(["a", "b", "c"], "device type"),
    major: int64,
    minor: int64,
    access: str,
  },
  ["allow"],
);

const resources = fields({
  devices: arrayOf(deviceRule),
  memory,
  cpu,
  pids: fields({ limit: int64 }),
  blockIO,
  hugepageLimits: arrayOf(fields({ pageSize: str, limit: uint64 }, ["pageSize", "limit"])),
  network: fields({
    classID: uint32,
    priorities: arrayOf(fields({ name: str, priority: uint32 }, ["name", "priority"])),
  }),
  rdma: mapOf(fields({ hcaHandles: uint32, hcaObjects: uint32 })),
  unified: mapOf(str),
});

const SECCOMP_ACTIONS = [
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE",
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_LOG",
  "SCMP_ACT_NOTIFY",
];

const SECCOMP_OPS = [
  "SCMP_CMP_NE",
  "SCMP_CMP_LT",
  "SCMP_CMP_LE",
  "SCMP_CMP_EQ",
  "SCMP_CMP_GE",
  "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
];

const seccompAction = oneOf(SECCOMP_ACTIONS, "seccomp action");

const seccompArg = fields(
  { index: int(0, 5), value: uint64, valueTwo: uint64, op: oneOf(SECCOMP_OPS, "seccomp operator") },
  ["index", "value", "op"],
);

const seccompSyscall = fields(
  { names: strings, action: seccompAction, errnoRet: uint32, args: arrayOf(seccompArg) },
  ["names", "action"],
);

// Architectures and flags are only type-checked here: which of them this machine can use is
// for the seccomp compiler to say.
const seccomp = fields(
  {
    defaultAction: seccompAction,
    defaultErrnoRet: uint32,
    architectures: strings,
    flags: strings,
    listenerPath: absPath,
    listenerMetadata: str,
    syscalls: arrayOf(seccompSyscall),
  },
  ["defaultAction"],
);

const personality = fields(
  { domain: oneOf(["LINUX", "LINUX32"], "personality domain"), flags: strings },
  ["domain"],
);

const PROPAGATIONS = [
  "shared",
  "slave",
  "private",
  "unbindable",
  "rshared",
  "rslave",
  "rprivate",
  "runbindable",
];

const timeOffsets: Check = (v, p) => {
  mapOf(fields({ secs: int64, nanosecs: int(0, 999_999_999) }))(v, p);
  for (const clock of Object.keys(v as Obj)) {
    if (clock === "monotonic" || clock === "boottime") continue;
    bad(p, `unknown clock ${JSON.stringify(clock)}`);
  }
};

const linux = fields({
  namespaces,
  uidMappings: mappings,
  gidMappings: mappings,
  devices: arrayOf(device),
  cgroupsPath: str,
  resources,
  sysctl: mapOf(str),
  seccomp,
  rootfsPropagation: oneOf(PROPAGATIONS, "rootfs propagation"),
  maskedPaths: absPaths,
  readonlyPaths: absPaths,
  mountLabel: str,
  intelRdt: fields({
    closID: str,
    l3CacheSchema: str,
    memBwSchema: str,
    schemata: strings,
    enableMonitoring: bool,
  }),
  personality,
  timeOffsets,
  netDevices: mapOf(fields({ name: str })),
});

// The whole spec.

const root = all(fields({ path: str, readonly: bool }, ["path"]), (v, p) => {
  if ((v as Root).path === "") bad(join(p, "path"), "must not be empty");
});

const checkSpec: Check = all(
  (v, p) => {
    const obj = object(v, p);
    if (obj.root === undefined || obj.root === null) bad("root.path", "missing");
  },
  fields(
    {
      ociVersion: str,
      process: checkProcess,
      root,
      hostname: str,
      domainname: str,
      mounts: arrayOf(mount),
      hooks,
      annotations: mapOf(str),
      linux,
    },
    ["ociVersion"],
  ),
);
