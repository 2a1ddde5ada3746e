// Loads the C library that is embedded in the executable. Its bytes are copied into a memfd and
// loaded from /proc/self/fd, so nothing lands in a folder another user could have prepared and
// a noexec /tmp does not matter.

import { dlopen, FFIType, ptr, suffix } from "bun:ffi";
import { closeSync, readFileSync, writeSync } from "node:fs";
// The build compiles cshim/ into build/libtinyc.so before bundling.
import embedded from "../build/libtinyc.so" with { type: "file" };

const symbols = {
  tc_spawn: { args: [FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  tc_wait: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  tc_strerror: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  tc_socketpair: { args: [FFIType.ptr], returns: FFIType.i32 },
  tc_recv_fd: { args: [FFIType.i32], returns: FFIType.i32 },
  tc_send_fd_sock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  tc_run_all: {
    args: [FFIType.ptr, FFIType.u32, FFIType.ptr, FFIType.ptr, FFIType.u64],
    returns: FFIType.i32,
  },
  tc_attach_device_filter: { args: [FFIType.cstring, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  tc_relay: {
    args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.i32],
    returns: FFIType.i32,
  },
  tc_keeper: { args: [FFIType.ptr], returns: FFIType.i32 },
  tc_keeper_watch: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  tc_keeper_quit: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  tc_set_dumpable: { args: [FFIType.i32], returns: FFIType.i32 },
  tc_pidfd_open: { args: [FFIType.i32], returns: FFIType.i32 },
  tc_pidfd_signal: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  tc_flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  tc_send_fd: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  tc_mkfifo: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
  tc_lsetxattr: {
    args: [FFIType.cstring, FFIType.cstring, FFIType.ptr, FFIType.u32],
    returns: FFIType.i32,
  },
  tc_mknod: { args: [FFIType.cstring, FFIType.u32, FFIType.u64], returns: FFIType.i32 },
  tc_forward: { args: [FFIType.i32], returns: FFIType.i32 },
  tc_forward_stop: { args: [], returns: FFIType.i32 },
  tc_signals: { args: [FFIType.i32], returns: FFIType.i32 },
} as const;

type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

let lib: Lib | undefined;

const MFD_CLOEXEC = 0x1;
const MFD_EXEC = 0x10;

/** A close-on-exec memfd holding BYTES; MFD_EXEC is needed where vm.memfd_noexec is set. */
export function memfdWith(bytes: Uint8Array, label = "tinyc"): number {
  const libc = dlopen(`libc.${suffix}.6`, {
    memfd_create: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
  });
  const name = Buffer.from(`${label}\0`);
  let fd = libc.symbols.memfd_create(ptr(name), MFD_CLOEXEC | MFD_EXEC);
  if (fd < 0) fd = libc.symbols.memfd_create(ptr(name), MFD_CLOEXEC);
  libc.close();
  if (fd < 0) throw new Error("memfd_create failed");
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off);
  return fd;
}

export function native(): Lib {
  if (lib) return lib;
  const fd = memfdWith(readFileSync(embedded));
  try {
    lib = dlopen(`/proc/self/fd/${fd}`, symbols).symbols;
  } finally {
    closeSync(fd);
  }
  return lib;
}

const textBuf = new Uint8Array(256);

/** The C library's text for an errno ("no such file or directory"), lowercased. */
export function strerror(errno: number): string {
  native().tc_strerror(errno, ptr(textBuf), textBuf.length);
  const end = textBuf.indexOf(0);
  const s = Buffer.from(textBuf.subarray(0, end < 0 ? undefined : end)).toString();
  return s.charAt(0).toLowerCase() + s.slice(1);
}

const errnoNames: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 9: "EBADF", 12: "ENOMEM",
  13: "EACCES", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 20: "ENOTDIR", 21: "EISDIR",
  22: "EINVAL", 28: "ENOSPC", 30: "EROFS", 36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY",
  40: "ELOOP", 95: "EOPNOTSUPP", 125: "ECANCELED",
};

export function errnoName(errno: number): string {
  return errnoNames[errno] ?? `errno ${errno}`;
}
