// Mount options as config.json spells them, turned into mount(2) flags, mount_setattr
// attributes, a propagation change and the data string.

export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
  LAZYTIME: 0x2000000,
} as const;

export const ATTR = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
} as const;

/** Options that set (true) or clear (false) a flag. */
const flagOptions: Record<string, [number, boolean]> = {
  ro: [MS.RDONLY, true],
  rw: [MS.RDONLY, false],
  nosuid: [MS.NOSUID, true],
  suid: [MS.NOSUID, false],
  nodev: [MS.NODEV, true],
  dev: [MS.NODEV, false],
  noexec: [MS.NOEXEC, true],
  exec: [MS.NOEXEC, false],
  sync: [MS.SYNCHRONOUS, true],
  async: [MS.SYNCHRONOUS, false],
  dirsync: [MS.DIRSYNC, true],
  mand: [MS.MANDLOCK, true],
  nomand: [MS.MANDLOCK, false],
  noatime: [MS.NOATIME, true],
  atime: [MS.NOATIME, false],
  nodiratime: [MS.NODIRATIME, true],
  diratime: [MS.NODIRATIME, false],
  relatime: [MS.RELATIME, true],
  norelatime: [MS.RELATIME, false],
  strictatime: [MS.STRICTATIME, true],
  nostrictatime: [MS.STRICTATIME, false],
  lazytime: [MS.LAZYTIME, true],
  nolazytime: [MS.LAZYTIME, false],
  nosymfollow: [MS.NOSYMFOLLOW, true],
  symfollow: [MS.NOSYMFOLLOW, false],
  silent: [MS.SILENT, true],
  loud: [MS.SILENT, false],
  remount: [MS.REMOUNT, true],
  defaults: [0, false],
};

const propagationOptions: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** Options of runc's and crun's that change how a mount is made, not its flags. */
const unsupported = new Set(["idmap", "ridmap", "rro", "rrw", "copy-symlink", "src-nofollow"]);

export interface ParsedOptions {
  flags: number;
  bind: boolean;
  recursive: boolean;
  propagation: number[];
  data: string[];
  tmpcopyup: boolean;
  unsupported: string[];
}

export function parseMountOptions(options: string[] = [], type?: string): ParsedOptions {
  const out: ParsedOptions = {
    flags: 0,
    bind: type === "bind" || type === "rbind",
    recursive: type === "rbind",
    propagation: [],
    data: [],
    tmpcopyup: false,
    unsupported: [],
  };
  for (const opt of options) {
    if (opt === "bind" || opt === "rbind") {
      out.bind = true;
      out.recursive ||= opt === "rbind";
    } else if (opt in flagOptions) {
      const [flag, set] = flagOptions[opt];
      out.flags = set ? out.flags | flag : out.flags & ~flag;
    } else if (opt in propagationOptions) {
      out.propagation.push(propagationOptions[opt]);
    } else if (opt === "tmpcopyup") {
      out.tmpcopyup = true;
    } else if (unsupported.has(opt)) {
      out.unsupported.push(opt);
    } else {
      out.data.push(opt);
    }
  }
  return out;
}

/** The attributes a bind mount gets with mount_setattr once it is in place. */
export function bindAttributes(flags: number): number {
  let attrs = 0;
  if (flags & MS.RDONLY) attrs |= ATTR.RDONLY;
  if (flags & MS.NOSUID) attrs |= ATTR.NOSUID;
  if (flags & MS.NODEV) attrs |= ATTR.NODEV;
  if (flags & MS.NOEXEC) attrs |= ATTR.NOEXEC;
  return attrs;
}

export function describeFlags(flags: number): string {
  const names = Object.entries(flagOptions)
    .filter(([, [flag, set]]) => set && flag && (flags & flag) === flag)
    .map(([name]) => name);
  return names.join(",");
}

export function describePropagation(p: number): string {
  return Object.entries(propagationOptions).find(([, v]) => v === p)?.[0] ?? `0x${p.toString(16)}`;
}

/** Every option this runtime understands, for `tinyc features`. */
export const MOUNT_OPTIONS = [
  ...Object.keys(flagOptions),
  ...Object.keys(propagationOptions),
  "bind",
  "rbind",
  "tmpcopyup",
].sort();
