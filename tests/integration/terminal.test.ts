// `run -it` and `exec -it` under a real pseudo-terminal (a tmux pane): raw mode, window sizes
// that follow, Ctrl-C and Ctrl-Z for the container's programs, the detach keys, and the
// caller's terminal settings as they were however tinyc ends.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  FIXTURES,
  TINYC,
  cleanup,
  fixtureSkipReason,
  makeBundle,
  requireUserns,
  run,
  scratchDir,
  tinycSkipReason,
} from "./harness";
import { isRunning, killIfAlive, waitUntil } from "./runkit";
import { Tmux, childrenOf, tmuxSkipReason } from "./tmux";

const skip = tinycSkipReason() ?? fixtureSkipReason("busybox") ?? requireUserns() ?? tmuxSkipReason();
if (skip) console.warn(`skipping terminal tests: ${skip}`);

const as: As = "rootless";
let dir = "";
let env: Record<string, string> = {};
let tmux: Tmux;

function tinyc(args: string[]) {
  return run(args, { as, env, cwd: dir, timeoutMs: 20_000 });
}

beforeAll(async () => {
  if (skip) return;
  dir = scratchDir(as, "terminal");
  const xdg = scratchDir(as, "terminal-xdg");
  fs.chmodSync(xdg, 0o700);
  env = { TINYC_DATA: path.join(dir, "data"), XDG_RUNTIME_DIR: xdg, HOME: dir, TERM: "xterm",
    SHELL: "/bin/sh" };
  const tar = path.join(dir, "busybox.tar");
  const r = Bun.spawnSync(["tar", "--numeric-owner", "--owner=0", "--group=0", "-C",
    path.join(FIXTURES, "busybox"), "-cf", tar, "."]);
  if (r.exitCode !== 0) throw new Error("tar of the busybox fixture failed");
  fs.chmodSync(tar, 0o644);
  const imp = await tinyc(["import", tar, "bb:1"]);
  if (imp.code !== 0) throw new Error(`import: ${imp.stderr}`);
  tmux = new Tmux(as, dir, env);
});

afterAll(async () => {
  // Containers left by a failed test, found in this file's own state folder, are ended by pid.
  if (!skip) {
    const r = await tinyc(["list", "--format", "json"]);
    for (const c of JSON.parse(r.stdout || "[]")) if (c.pid > 0) killIfAlive(c.pid);
  }
  await tmux?.stop();
  cleanup();
});

/** A pane that saves `stty -a` before and after COMMAND and prints its status as TAG=N. */
async function pane(tag: string, command: string): Promise<string> {
  return tmux.start(
    `stty -a > ${tag}.before\n${command}\nstatus=$?\nstty -a > ${tag}.after\necho "${tag}=$status"`,
  );
}

/** The pane's terminal settings before and after, but for its size (a test may resize it). */
function settingsKept(tag: string): { before: string; after: string } {
  const read = (f: string) =>
    fs.readFileSync(path.join(dir, f), "utf8").replace(/rows \d+; columns \d+;/, "");
  return { before: read(`${tag}.before`), after: read(`${tag}.after`) };
}

/** The tinyc the pane's shell runs: the first process named tinyc under the pane. */
async function tinycOf(p: string): Promise<number> {
  const find = (pid: number): number | undefined => {
    for (const c of childrenOf(pid)) {
      if (comm(c) === "tinyc") return c;
      const below = find(c);
      if (below !== undefined) return below;
    }
    return undefined;
  };
  const top = await tmux.panePid(p);
  let pid: number | undefined;
  await waitUntil(() => (pid = find(top)) !== undefined, 5000);
  return pid!;
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

async function psNames(): Promise<string[]> {
  const r = await tinyc(["ps", "--format", "json"]);
  const text = r.stdout.trim();
  if (!text) return [];
  const rows: any[] = text.startsWith("[") ? JSON.parse(text) : text.split("\n").map((l) => JSON.parse(l));
  return rows.map((o) => String(o.name ?? o.Names));
}

describe.skipIf(!!skip)("rootless", () => {
  test("run -it gives a terminal: resizes, Ctrl-C and Ctrl-Z reach it, its status, settings kept", async () => {
    const p = await pane("t1", `${TINYC} run -it --rm --pull=never bb:1 sh`);
    expect(await tmux.waitFor(p, "/ #")).toBe(true);
    await tmux.line(p, "stty size");
    expect(await tmux.waitFor(p, "\n30 100")).toBe(true);
    await tmux.resize(p, 80, 20);
    await tmux.line(p, "stty size");
    expect(await tmux.waitFor(p, "\n20 80")).toBe(true);
    await tmux.line(p, "sleep 100");
    await Bun.sleep(300);
    await tmux.keys(p, "C-c");
    await tmux.line(p, "echo alive-$((40+2))");
    expect(await tmux.waitFor(p, "\nalive-42")).toBe(true);
    await tmux.line(p, "sleep 101");
    await Bun.sleep(300);
    await tmux.keys(p, "C-z");
    expect(await tmux.waitFor(p, /Stopped\s+sleep 101/)).toBe(true);
    await tmux.line(p, "fg");
    await Bun.sleep(300);
    await tmux.keys(p, "C-c");
    await tmux.line(p, "exit 7");
    expect(await tmux.waitFor(p, "t1=7")).toBe(true);
    const s = settingsKept("t1");
    expect(s.after).toBe(s.before);
  }, 30_000);

  test("run -it detaches on ctrl-p,ctrl-q and leaves the container running, as -d would", async () => {
    const p = await pane("t2", `${TINYC} run -it --name det1 --pull=never bb:1 sh`);
    expect(await tmux.waitFor(p, "/ #")).toBe(true);
    await tmux.line(p, "echo marker > /tmp/m");
    await tmux.keys(p, "C-p", "C-q");
    expect(await tmux.waitFor(p, "t2=0")).toBe(true);
    const s = settingsKept("t2");
    expect(s.after).toBe(s.before);
    expect(await psNames()).toContain("det1");
    // The shell is still there, with its terminal: it did not get a hangup.
    const e = await tinyc(["exec", "det1", "sh", "-c", "cat /tmp/m; ps -o comm > /tmp/ps; grep -c '^sh$' /tmp/ps"]);
    expect({ code: e.code, out: e.stdout }).toEqual({ code: 0, out: "marker\n2\n" });
    const rm = await tinyc(["rm", "-f", "det1"]);
    expect(rm.code).toBe(0);
    expect(await psNames()).not.toContain("det1");
  }, 30_000);

  test("run of a bundle with process.terminal gives a terminal that detaches too", async () => {
    const bundle = await makeBundle({
      rootfs: "busybox",
      owner: as,
      config: (spec) => {
        spec.process.terminal = true;
      },
    });
    const id = `tty-${process.pid}`;
    try {
      const p = await pane("t8", `${TINYC} run ${bundle.dir} ${id}`);
      expect(await tmux.waitFor(p, "/ #")).toBe(true);
      await tmux.line(p, "tty");
      expect(await tmux.waitFor(p, "\n/dev/pts/0")).toBe(true);
      await tmux.keys(p, "C-p", "C-q");
      expect(await tmux.waitFor(p, "t8=0")).toBe(true);
      const st = await tinyc(["state", id]);
      expect(JSON.parse(st.stdout).status).toBe("running");
      expect((await tinyc(["delete", "-f", id])).code).toBe(0);
      const s = settingsKept("t8");
      expect(s.after).toBe(s.before);
    } finally {
      bundle.cleanup();
    }
  }, 30_000);

  test("exec -it gives a terminal, and --detach-keys leaves its process running", async () => {
    const d = await tinyc(["run", "-d", "--name", "ex1", "--pull=never", "bb:1", "sleep", "300"]);
    expect(d.code).toBe(0);
    const p = await pane("t3", `${TINYC} exec -it ex1 sh`);
    expect(await tmux.waitFor(p, "/ #")).toBe(true);
    await tmux.resize(p, 90, 25);
    await tmux.line(p, "stty size");
    expect(await tmux.waitFor(p, "\n25 90")).toBe(true);
    await tmux.line(p, "exit 3");
    expect(await tmux.waitFor(p, "t3=3")).toBe(true);
    const s = settingsKept("t3");
    expect(s.after).toBe(s.before);

    const q = await pane("t4", `${TINYC} exec -it --detach-keys ctrl-a,d ex1 sh`);
    expect(await tmux.waitFor(q, "/ #")).toBe(true);
    await tmux.keys(q, "C-a", "d");
    expect(await tmux.waitFor(q, "t4=0")).toBe(true);
    const e = await tinyc(["exec", "ex1", "sh", "-c", "ps -o comm > /tmp/ps; grep -c '^sh$' /tmp/ps"]);
    expect(e.stdout).toBe("2\n");
    await tinyc(["rm", "-f", "ex1"]);
  }, 30_000);

  test("run -it passes SIGTERM and SIGHUP on; a killed tinyc takes its container along; settings kept", async () => {
    const script = 'trap "exit 5" TERM; echo ready; while :; do sleep 1; done';
    const p = await pane("t5", `${TINYC} run -it --rm --pull=never bb:1 sh -c '${script}'`);
    expect(await tmux.waitFor(p, "ready")).toBe(true);
    process.kill(await tinycOf(p), "SIGTERM");
    expect(await tmux.waitFor(p, "t5=5")).toBe(true);
    const s5 = settingsKept("t5");
    expect(s5.after).toBe(s5.before);

    const hup = 'trap "exit 6" HUP; echo ready; while :; do sleep 1; done';
    const h = await pane("t9", `${TINYC} run -it --rm --pull=never bb:1 sh -c '${hup}'`);
    expect(await tmux.waitFor(h, "ready")).toBe(true);
    process.kill(await tinycOf(h), "SIGHUP");
    expect(await tmux.waitFor(h, "t9=6")).toBe(true);
    const s9 = settingsKept("t9");
    expect(s9.after).toBe(s9.before);

    const q = await pane("t6", `${TINYC} run -it --rm --pull=never --name k6 bb:1 sh`);
    expect(await tmux.waitFor(q, "/ #")).toBe(true);
    const t = await tinycOf(q);
    let container: number[] = [];
    await waitUntil(() => (container = childrenOf(t).filter((c) => comm(c) === "sh")).length === 1, 5000);
    expect(container.length).toBe(1);
    process.kill(t, "SIGKILL");
    expect(await tmux.waitFor(q, "t6=137")).toBe(true);
    expect(await waitUntil(() => !isRunning(container[0]), 5000)).toBe(true);
    const s6 = settingsKept("t6");
    expect(s6.after).toBe(s6.before);
  }, 30_000);

  test("run -it of a program that is not there fails with 127 and leaves the terminal as it was", async () => {
    const p = await pane("t7", `${TINYC} run -it --rm --pull=never bb:1 no-such-program`);
    expect(await tmux.waitFor(p, "t7=127")).toBe(true);
    const s = settingsKept("t7");
    expect(s.after).toBe(s.before);
  }, 30_000);
});
