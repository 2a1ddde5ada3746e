// Builds dist/tinyc: the C library first (it is embedded), then one executable with bun.

import { mkdirSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const cc = process.env.CC ?? "cc";

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) {
    console.error(`build: ${cmd[0]} failed with status ${r.exitCode}`);
    process.exit(1);
  }
}

function commit(): string {
  const r = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: root, stderr: "ignore" });
  const id = r.exitCode === 0 ? r.stdout.toString().trim() : "unknown";
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: root });
  return dirty.stdout.toString().trim() ? `${id}-dirty` : id;
}

mkdirSync(join(root, "build"), { recursive: true });
mkdirSync(join(root, "dist"), { recursive: true });
run([
  cc, "-O2", "-g0", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-fvisibility=default",
  "-Wl,-z,now", "-o", "build/libtinyc.so", "cshim/exec.c", "cshim/relay.c", "cshim/misc.c",
  "cshim/keeper.c",
]);
// The shim runs once per container for the container's whole life: a small C program.
run([
  cc, "-O2", "-g0", "-Wall", "-Wextra", "-Werror", "-s", "-Wl,-z,now", "-o", "build/tinyc-shim",
  "cshim/shim.c",
]);
const version = JSON.parse(await Bun.file(join(root, "package.json")).text()).version;
run([
  process.execPath, "build", "--compile", "--minify", "--bytecode", "--sourcemap=none",
  `--define`, `TINYC_VERSION=${JSON.stringify(version)}`,
  `--define`, `TINYC_COMMIT=${JSON.stringify(commit())}`,
  "src/cli.ts", "--outfile", "dist/tinyc",
]);
