// The per-container shim (cshim/shim.c) is a separate C program embedded in the executable.
// Its bytes go once into a memfd that this process keeps open, so a child of this process
// can run it by path, and `tinyc shim` becomes it in place.

import { dlopen, FFIType, ptr, read, suffix } from "bun:ffi";
import { readFileSync } from "node:fs";
// The build compiles cshim/shim.c into build/tinyc-shim before bundling.
import embedded from "../build/tinyc-shim" with { type: "file" };
import { memfdWith, strerror } from "./lib";

let path: string | undefined;

/**
 * A path that execve() accepts for the shim: /proc/PID/fd/N of a memfd this process holds
 * open (close-on-exec, so only the path, never the fd, reaches a child). A process that is
 * not dumpable cannot be opened there by an unprivileged child, so the caller must stay
 * dumpable.
 */
export function shimPath(): string {
  if (path) return path;
  const fd = memfdWith(readFileSync(embedded), "tinyc-shim");
  path = `/proc/${process.pid}/fd/${fd}`;
  return path;
}

const cstr = (s: string) => Buffer.from(`${s}\0`);
let held: unknown;

/** Replaces this process with the shim run with ARGS; returns only on failure, with its text. */
export function execShim(args: string[]): string {
  const libc = dlopen(`libc.${suffix}.6`, {
    execve: { args: [FFIType.cstring, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
  const file = cstr(shimPath());
  const argv = ["tinyc-shim", ...args].map(cstr);
  const env = Object.entries(process.env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => cstr(`${k}=${v}`));
  const table = (items: Buffer[]) => {
    const t = new BigUint64Array(items.length + 1);
    items.forEach((b, i) => (t[i] = BigInt(ptr(b))));
    return t;
  };
  const argvTable = table(argv);
  const envTable = table(env);
  // The tables point into the buffers: all of them stay reachable while execve reads them.
  held = [file, argv, env, argvTable, envTable];
  libc.symbols.execve(ptr(file), ptr(argvTable), ptr(envTable));
  const errno = read.i32(libc.symbols.__errno_location()!, 0);
  libc.close();
  held = undefined;
  return strerror(errno);
}
