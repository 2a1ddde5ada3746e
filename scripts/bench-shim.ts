// Measures the memory of the per-container shim: COUNT shims, each holding a running busybox
// `sleep` container, and prints each one's proportional set size (PSS), RSS and private memory
// from /proc/PID/smaps_rollup, with the median and the largest.
//
// usage: bun scripts/bench-shim.ts [--count N] [--verb]
//
// By default the shims start as the daemon starts them: the embedded program, run by path
// from one memfd this process holds (ffi/shim.ts shimPath()), so all of them share its pages.
// With --verb each is started through `dist/tinyc shim`, which makes a memfd of its own.
// Runs as root (the shim is the same program for rootless containers). Everything made lives
// in one temporary folder, removed at exit, and every container is deleted.

import { spawnSync } from "node:child_process";
import {
  chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import minimist from "minimist";
import { shimPath } from "../ffi/shim";

const REPO = join(import.meta.dir, "..");
const TINYC = join(REPO, "dist/tinyc");
const FIXTURE = join(REPO, ".cache/fixtures/busybox");

const args = minimist(process.argv.slice(2), { boolean: ["verb"], string: ["count"] });
const count = Number(args.count ?? 10);
if (!Number.isInteger(count) || count < 1) {
  console.error(`bench-shim: --count ${JSON.stringify(args.count)}: not a positive number`);
  process.exit(2);
}
if (process.getuid!() !== 0) {
  console.error("bench-shim: run as root");
  process.exit(2);
}
for (const need of [TINYC, FIXTURE]) {
  if (!existsSync(need)) {
    console.error(`bench-shim: ${need} is missing: run npm run build and bash scripts/fixtures.sh`);
    process.exit(2);
  }
}

const base = mkdtempSync(join(tmpdir(), "tinyc-bench-shim-"));
const root = join(base, "state");
const ids: string[] = [];
const shims: number[] = [];

function tinyc(argv: string[]) {
  return spawnSync(TINYC, ["--root", root, ...argv], { encoding: "utf8" });
}

function cleanup(): void {
  for (const pid of shims) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  for (const id of ids) tinyc(["delete", "--force", id]);
  rmSync(base, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

/** A bundle that runs `sleep` on the busybox fixture, without a user or network namespace. */
function makeBundle(): string {
  const dir = join(base, "bundle");
  mkdirSync(dir);
  symlinkSync(FIXTURE, join(dir, "rootfs"));
  const r = spawnSync(TINYC, ["spec"], { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tinyc spec: ${r.stderr}`);
  const spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  spec.process.args = ["sleep", "100000"];
  spec.process.terminal = false;
  spec.linux.namespaces = spec.linux.namespaces.filter(
    (n: { type: string }) => n.type !== "user" && n.type !== "network",
  );
  writeFileSync(join(dir, "config.json"), JSON.stringify(spec));
  return dir;
}

/** Fields of /proc/PID/smaps_rollup, in KiB. */
function rollup(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, "utf8").split("\n")) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

function startOne(n: number, bundle: string, shim: string): number {
  const id = `bench-shim-${process.pid}-${n}`;
  const dir = join(base, `c${n}`);
  mkdirSync(dir);
  chmodSync(dir, 0o700);
  ids.push(id);
  const runtime = [TINYC, "--root", root, "--log", "runtime.log", "create", "--bundle", bundle,
    "--pid-file", "init.pid", id];
  const cmd = args.verb ? [TINYC, "shim", dir, "--", ...runtime] : [shim, dir, "--", ...runtime];
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8", argv0: "tinyc-shim" });
  if (r.status !== 0 || !r.stdout.startsWith("ok ")) {
    throw new Error(`shim ${n}: ${r.stdout}${r.stderr}`);
  }
  const pid = Number(readFileSync(join(dir, "shim.pid"), "utf8"));
  shims.push(pid);
  const s = tinyc(["start", id]);
  if (s.status !== 0) throw new Error(`start ${id}: ${s.stderr}`);
  return pid;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const bundle = makeBundle();
  const shim = shimPath();
  const pids = Array.from({ length: count }, (_, i) => startOne(i, bundle, shim));
  await Bun.sleep(300);
  const rows = pids.map((pid) => ({ pid, ...rollup(pid) }));
  const col = (k: string) => rows.map((r) => r[k as keyof typeof r] as number);
  const kib = (n: number) => `${n} KiB`;
  const how = args.verb ? "tinyc shim" : "one shared memfd";
  console.log(`${count} shims, each holding a running container (${how}):`);
  console.log("pid      Pss      Rss      Private_Clean+Private_Dirty");
  for (const r of rows) {
    const own = kib(r.Private_Clean + r.Private_Dirty);
    console.log(`${String(r.pid).padEnd(8)} ${kib(r.Pss).padEnd(8)} ${kib(r.Rss).padEnd(8)} ${own}`);
  }
  console.log(`PSS median ${kib(median(col("Pss")))}, largest ${kib(Math.max(...col("Pss")))}; ` +
    `RSS median ${kib(median(col("Rss")))}`);
} finally {
  cleanup();
}
