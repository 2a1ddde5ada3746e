// The few system calls layer unpacking needs that node:fs lacks: mknod (for devices and for
// overlay whiteouts, which are character devices 0:0), mkfifo and setting extended attributes,
// through the C library. setImageSys replaces the whole set (tests use a fake).

import {
  lsetxattr,
  mkfifo as nativeMkfifo,
  mknod as nativeMknod,
  NativeError,
} from "../../ffi/spawn";
import { errnoName } from "../../ffi/lib";

export interface ImageSys {
  mknod(path: string, kind: "char" | "block", major: number, minor: number, mode: number): void;
  mkfifo(path: string, mode: number): void;
  /** Sets an extended attribute without following a symlink at PATH (lsetxattr). */
  setXattr(path: string, name: string, value: Buffer): void;
}

/** An error with a code like node:fs gives, so callers can tell EPERM from the rest. */
export class SysError extends Error {
  constructor(
    op: string,
    public code: string,
  ) {
    super(`${op}: ${code}`);
  }
}

function native<T>(op: string, call: () => T): T {
  try {
    return call();
  } catch (e) {
    if (e instanceof NativeError) throw new SysError(op, errnoName(e.errno));
    throw e;
  }
}

const nativeSys: ImageSys = {
  mknod(path, kind, major, minor, mode) {
    const type = kind === "char" ? 0o020000 : 0o060000;
    native("mknod", () => nativeMknod(path, type | (mode & 0o7777), major, minor));
  },
  mkfifo(path, mode) {
    native("mkfifo", () => nativeMkfifo(path, mode));
  },
  setXattr(path, name, value) {
    native("setxattr", () => lsetxattr(path, name, value));
  },
};

let current: ImageSys = nativeSys;

export function imageSys(): ImageSys {
  return current;
}

export function setImageSys(sys: ImageSys): void {
  current = sys;
}
