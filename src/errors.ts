// One error type for everything tinyc reports to a user. The message is lowercase, has no
// trailing period, quotes values, and context is joined with ": ".

export class TinycError extends Error {
  /** Exit status the command line uses for this error. */
  exitCode: number;
  /** Name of the errno (ENOENT, ...) when the error came from a system call. */
  code?: string;
  errno?: number;
  path?: string;
  hint?: string;

  constructor(
    message: string,
    opts: { exitCode?: number; code?: string; errno?: number; path?: string; hint?: string } = {},
  ) {
    super(message);
    this.name = "TinycError";
    this.exitCode = opts.exitCode ?? 1;
    this.code = opts.code;
    this.errno = opts.errno;
    this.path = opts.path;
    this.hint = opts.hint;
  }

  /** The same error with more context in front: "context: message". */
  wrap(context: string): TinycError {
    const e = new TinycError(`${context}: ${this.message}`, this);
    e.hint = this.hint;
    return e;
  }

  /** The full one-line text, hint included. */
  text(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** Exit statuses of tinyc's own failures, as docker and the shell use them. */
export const EXIT = {
  failure: 1,
  usage: 2,
  engine: 125,
  cannotExecute: 126,
  notFound: 127,
} as const;

export function fail(message: string, opts?: ConstructorParameters<typeof TinycError>[1]): never {
  throw new TinycError(message, opts);
}

/** Turns an error thrown by node:fs into a TinycError with the op and path in the message. */
export function fromSystem(err: unknown, op: string, path?: string): TinycError {
  if (err instanceof TinycError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === "string") {
    const what = path !== undefined ? `${op} ${JSON.stringify(path)}` : op;
    const detail = describeCode(e.code) ?? e.message;
    return new TinycError(`${what}: ${detail}`, { code: e.code, errno: e.errno, path });
  }
  return new TinycError(`${op}: ${String((e as Error)?.message ?? e)}`);
}

const codeText: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EEXIST: "file exists",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  ELOOP: "too many levels of symbolic links",
  EINVAL: "invalid argument",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  EBUSY: "device or resource busy",
  ESRCH: "no such process",
  EXDEV: "invalid cross-device link",
  ENOTEMPTY: "directory not empty",
};

function describeCode(code: string): string | undefined {
  return codeText[code];
}
