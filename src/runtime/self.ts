// How tinyc runs itself again: a module of its own, so that callers load nothing else.

/** argv that runs this tinyc again: the executable, and the script when run from source. */
export function selfArgv(...args: string[]): string[] {
  const script = process.argv[1];
  const fromSource = script !== undefined && /\.(ts|js)$/.test(script) && !script.startsWith("/$bunfs");
  return fromSource ? [process.execPath, script, ...args] : [process.execPath, ...args];
}
