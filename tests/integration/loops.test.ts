// tinyc in shell loops and scripts: exact exit statuses, nothing on stdout but the container's
// output, JSON from every listing and from inspect, names and ids unique when many tinyc run at
// once, and no state, container folder, name or process left behind by `run --rm`, whether
// the loop runs to its end, runs eight at a time, or is cut short by SIGINT, SIGTERM or SIGKILL.
//
// Each test has its own data root (TINYC_DATA) and runtime folder (XDG_RUNTIME_DIR). Every
// container's command line carries a token of its test, so a process that outlives a loop is
// found by it (or by the data root in its environment) among whatever else the user runs.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  FIXTURES,
  IS_ROOT,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  runCommand,
  scratchDir,
  spawnAs,
  tinycSkipReason,
  type RunResult,
} from "./harness";
import { busybox, runBundle, waitUntil } from "./runkit";

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
const noXargs = ["bash", "xargs", "setsid", "seq"].map((t) => (Bun.which(t) ? null : `no ${t}`)).find((r) => r) ?? null;
for (const [what, reason] of [
  ["rootless loop tests", noRootless],
  ["root loop tests", noRoot],
  ["shell loop tests", noXargs],
] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

const IMAGE = "bb:1";
let busyboxTar = "";

beforeAll(() => {
  if (noRootless && noRoot) return;
  const dir = scratchDir(IS_ROOT ? "root" : "rootless", "loops-image");
  busyboxTar = path.join(dir, "busybox.tar");
  // Root of the fixture owns everything in the image, whoever made the fixture.
  const r = Bun.spawnSync(["tar", "--numeric-owner", "--owner=0", "--group=0", "-C",
    path.join(FIXTURES, "busybox"), "-cf", busyboxTar, "."], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`tar failed: ${r.stderr}`);
  fs.chmodSync(busyboxTar, 0o644);
});

afterAll(cleanup);

interface Ctx {
  as: As;
  data: string;
  state: string;
  home: string;
  token: string;
}

async function newCtx(as: As): Promise<Ctx> {
  const home = scratchDir(as, "loops");
  const xdg = scratchDir(as, "loops-xdg");
  fs.chmodSync(xdg, 0o700);
  const token = `loop-${randomBytes(6).toString("hex")}`;
  const ctx = { as, data: path.join(home, "data"), state: path.join(xdg, "tinyc"), home, token };
  const r = await tinyc(ctx, ["import", busyboxTar, IMAGE]);
  if (r.code !== 0) throw new Error(`import failed: ${r.stderr}`);
  return ctx;
}

function envOf(ctx: Ctx): Record<string, string> {
  return {
    TINYC_DATA: ctx.data,
    XDG_RUNTIME_DIR: path.dirname(ctx.state),
    HOME: ctx.home,
    T: TINYC,
    IMAGE,
    TOKEN: ctx.token,
  };
}

function tinyc(ctx: Ctx, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return runCommand([TINYC, ...args], { as: ctx.as, env: envOf(ctx), timeoutMs });
}

/** A bash script run as the test's user, with $T (tinyc), $IMAGE and $TOKEN set. */
function shell(ctx: Ctx, script: string, timeoutMs = 120_000): Promise<RunResult> {
  return runCommand(["bash", "-c", script], { as: ctx.as, env: envOf(ctx), timeoutMs });
}

function entries(dir: string, ignore: string[] = []): string[] {
  try {
    return fs.readdirSync(dir).filter((n) => !ignore.includes(n));
  } catch {
    return [];
  }
}

/** Processes that carry the test's token in their command line or its data root in their env. */
function processesOf(ctx: Ctx): string[] {
  const found: string[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, "utf8");
      let environ = "";
      try {
        environ = fs.readFileSync(`/proc/${name}/environ`, "utf8");
      } catch {
        // Another user's process, when the test itself does not run as root.
      }
      if (cmdline.includes(ctx.token) || environ.includes(`TINYC_DATA=${ctx.data}\0`)) {
        found.push(`${name}: ${cmdline.replaceAll("\0", " ").trim()}`);
      }
    } catch {
      // Ended while we looked.
    }
  }
  return found;
}

/** Everything a run may leave: state folders, container folders, name claims, processes. */
async function leftovers(ctx: Ctx) {
  // A process that is ending as the loop ends gets a moment.
  await waitUntil(() => processesOf(ctx).length === 0, 2000);
  return {
    state: entries(ctx.state),
    containers: entries(path.join(ctx.data, "containers")),
    names: entries(path.join(ctx.data, "names"), [".lock"]),
    processes: processesOf(ctx),
  };
}

const NOTHING = { state: [], containers: [], names: [], processes: [] };

function lines(from: number, to: number, suffix: string): string {
  let out = "";
  for (let i = from; i <= to; i++) out += `${i} ${suffix}\n`;
  return out;
}

function loopTests(as: As) {
  test("200 runs of run --rm in a shell loop print exactly their output and leave nothing", async () => {
    const ctx = await newCtx(as);
    const r = await shell(ctx, 'for i in $(seq 200); do "$T" run --rm --pull=never "$IMAGE" echo "$i" "$TOKEN" || echo "failed: $i $?"; done');
    expect({ code: r.code, out: r.stdout === lines(1, 200, ctx.token), err: r.stderr }).toEqual({
      code: 0,
      out: true,
      err: "",
    });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 120_000);

  test("200 runs of run --rm through xargs -P 8 all succeed and leave nothing", async () => {
    const ctx = await newCtx(as);
    const r = await shell(ctx, 'seq 200 | xargs -P 8 -I{} "$T" run --rm --pull=never "$IMAGE" echo {} "$TOKEN"');
    const sorted = r.stdout.split("\n").filter(Boolean).sort((a, b) => parseInt(a) - parseInt(b));
    expect({ code: r.code, out: sorted.join("\n") + "\n" === lines(1, 200, ctx.token), err: r.stderr }).toEqual({
      code: 0,
      out: true,
      err: "",
    });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 120_000);

  test("a loop cut short by SIGINT to its process group stops and leaves nothing", async () => {
    const ctx = await newCtx(as);
    const loop = 'i=0; while [ $i -lt 1000 ]; do "$T" run --rm --pull=never "$IMAGE" true "$TOKEN"; i=$((i+1)); echo $i; done';
    // Its own session, so the signal reaches the loop, tinyc and the container, and no more.
    const proc = spawnAs(["setsid", "bash", "-c", loop], { as, env: envOf(ctx) });
    const out = new Response(proc.stdout).text();
    await Bun.sleep(1500);
    process.kill(-proc.pid, "SIGINT");
    const ended = await Promise.race([proc.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
    if (!ended) proc.kill("SIGKILL");
    const runs = (await out).trim().split("\n").length;
    // bash ends by SIGINT itself only when the program it waited for did.
    expect({ ended, signal: proc.signalCode, cut: runs < 1000 }).toEqual({ ended: true, signal: "SIGINT", cut: true });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 30_000);
}

function statusTests(as: As) {
  test("run IMAGE exits with the program's status, 125, 126, 127 or 128+N", async () => {
    const ctx = await newCtx(as);
    const cases: [string[], number][] = [
      [[IMAGE, "true"], 0],
      [[IMAGE, "sh", "-c", "exit 3"], 3],
      [[IMAGE, "sh", "-c", "exit 125"], 125],
      [[IMAGE, "/etc/passwd"], 126],
      [[IMAGE, "nosuchprogram"], 127],
      [["missing:1", "true"], 125],
      [["--bogus-flag", IMAGE, "true"], 125],
      [["--network", "nosuch", IMAGE, "true"], 125],
    ];
    const got: [string, number | null][] = [];
    for (const [args, _] of cases) {
      const r = await tinyc(ctx, ["run", "--rm", "--pull=never", ...args]);
      got.push([args.join(" "), r.code]);
    }
    expect(got).toEqual(cases.map(([args, code]) => [args.join(" "), code]));
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 60_000);

  test("run IMAGE exits 137 when its container is killed with SIGKILL", async () => {
    const ctx = await newCtx(as);
    const proc = spawnAs([TINYC, "run", "--rm", "--pull=never", "--name", "k", IMAGE, ...sleeper(ctx, 30)], {
      as,
      env: envOf(ctx),
    });
    const running = await waitUntil(() => fs.existsSync(path.join(ctx.state, idOf(ctx, "k"), "state.json")), 10_000);
    const kill = await tinyc(ctx, ["kill", "k", "KILL"]);
    const code = await Promise.race([proc.exited, Bun.sleep(10_000).then(() => "hung")]);
    if (code === "hung") proc.kill("SIGKILL");
    expect({ running, kill: kill.code, code }).toEqual({ running: true, kill: 0, code: 137 });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 30_000);

  test("run BUNDLE exits with the program's status, 125, 126 or 127", async () => {
    const got: number[] = [];
    for (const args of [["sh", "-c", "exit 3"], ["/etc/passwd"], ["nosuchprogram"]]) {
      const bundle = await busybox(as, args);
      got.push((await runBundle(as, bundle)).code!);
      bundle.cleanup();
    }
    const ctx = await newCtx(as);
    for (const args of [["run", "--bundle", "/nonexistent-bundle", "b1"], ["run", "--bogus-flag", "./b"]]) {
      got.push((await tinyc(ctx, args)).code!);
    }
    expect(got).toEqual([3, 126, 127, 125, 125]);
  }, 30_000);

  test("exec exits with the process's status, 125, 126, 127 or 128+N", async () => {
    const ctx = await newCtx(as);
    const d = await tinyc(ctx, ["run", "-d", "--rm", "--pull=never", "--name", "x", IMAGE, ...sleeper(ctx, 60)]);
    expect(d.code).toBe(0);
    const cases: [string[], number][] = [
      [["x", "true"], 0],
      [["x", "sh", "-c", "exit 4"], 4],
      [["x", "/etc/passwd"], 126],
      [["x", "nosuchprogram"], 127],
      [["x", "sh", "-c", "kill -KILL $$"], 137],
      [["--bogus-flag", "x", "true"], 125],
      [["nosuchcontainer", "true"], 125],
    ];
    const got: [string, number | null][] = [];
    for (const [args, _] of cases) got.push([args.join(" "), (await tinyc(ctx, ["exec", ...args])).code]);
    await tinyc(ctx, ["rm", "-f", "x"]);
    expect(got).toEqual(cases.map(([args, code]) => [args.join(" "), code]));
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 60_000);

  test("stdout holds the container's output only, with --debug and -d too", async () => {
    const ctx = await newCtx(as);
    const fg = await tinyc(ctx, ["--debug", "run", "--rm", "--pull=never", IMAGE, "sh", "-c", "printf 'a\\nb'; echo err >&2"]);
    const bg = await tinyc(ctx, ["run", "-d", "--rm", "--pull=never", IMAGE, "true"]);
    expect({ out: fg.stdout, err: fg.stderr.includes("err\n"), debug: fg.stderr.includes("debug") }).toEqual({
      out: "a\nb",
      err: true,
      debug: true,
    });
    expect(bg.stdout).toMatch(/^[0-9a-f]{64}\n$/);
  }, 30_000);
}

/** A command that sleeps, whose first process carries the test's token ($0 of its shell). */
function sleeper(ctx: Ctx, seconds: number): string[] {
  return ["sh", "-c", `sleep ${seconds}; true`, ctx.token];
}

/** The id a container name is claimed for, from the claim itself ("" when there is none). */
function idOf(ctx: Ctx, name: string): string {
  try {
    return path.basename(fs.readlinkSync(path.join(ctx.data, "names", name)));
  } catch {
    return "";
  }
}

function signalTests(as: As) {
  test("SIGTERM to a foreground run --rm reaches the container, and nothing is left", async () => {
    const ctx = await newCtx(as);
    const script = `trap "exit 7" TERM; echo ready; sleep 30 & wait # ${ctx.token}`;
    const proc = spawnAs([TINYC, "run", "--rm", "--pull=never", IMAGE, "sh", "-c", script], { as, env: envOf(ctx) });
    const reader = proc.stdout.getReader();
    const first = await reader.read();
    proc.kill("SIGTERM");
    const code = await Promise.race([proc.exited, Bun.sleep(10_000).then(() => "hung")]);
    if (code === "hung") proc.kill("SIGKILL");
    expect({ ready: new TextDecoder().decode(first.value), code }).toEqual({ ready: "ready\n", code: 7 });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 30_000);

  test("SIGTERM and SIGINT end a first process that has no handler for them, as outside a pid namespace", async () => {
    const ctx = await newCtx(as);
    const got: [string, number | null, string | null][] = [];
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const proc = spawnAs([TINYC, "run", "--rm", "--pull=never", "--name", "t", IMAGE, "sleep", "30"], {
        as,
        env: envOf(ctx),
      });
      await waitUntil(() => fs.existsSync(path.join(ctx.state, idOf(ctx, "t"), "state.json")), 10_000);
      proc.kill(signal);
      const ended = await Promise.race([proc.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
      if (!ended) proc.kill("SIGKILL");
      await proc.exited;
      got.push([signal, proc.exitCode, proc.signalCode]);
    }
    // 143 for SIGTERM; tinyc ends by SIGINT itself, as an interrupted program does.
    expect(got).toEqual([["SIGTERM", 143, null], ["SIGINT", null, "SIGINT"]]);
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 30_000);

  test("after SIGKILL of a foreground run --rm the next tinyc command sweeps what it left", async () => {
    const ctx = await newCtx(as);
    const proc = spawnAs([TINYC, "run", "--rm", "--pull=never", "--name", "s", IMAGE, ...sleeper(ctx, 30)], {
      as,
      env: envOf(ctx),
    });
    const running = await waitUntil(() => fs.existsSync(path.join(ctx.state, idOf(ctx, "s"), "state.json")), 10_000);
    proc.kill("SIGKILL");
    await proc.exited;
    // The container dies with its tinyc.
    const gone = await waitUntil(() => processesOf(ctx).length === 0, 5000);
    const before = entries(path.join(ctx.data, "containers")).length;
    const ps = await tinyc(ctx, ["ps", "-a", "--format", "json"]);
    expect({ running, gone, before, ps: ps.stdout }).toEqual({ running: true, gone: true, before: 1, ps: "[]\n" });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 30_000);
}

function bundleSweepTest(as: As) {
  test("after SIGKILL of a foreground run BUNDLE the next list removes its state", async () => {
    const ctx = await newCtx(as);
    const bundle = await busybox(as, sleeper(ctx, 30));
    const proc = spawnAs([TINYC, "run", bundle.dir, "k1"], { as, env: envOf(ctx) });
    const running = await waitUntil(() => fs.existsSync(path.join(ctx.state, "k1", "state.json")), 10_000);
    proc.kill("SIGKILL");
    await proc.exited;
    const gone = await waitUntil(() => processesOf(ctx).length === 0, 5000);
    const list = await tinyc(ctx, ["list", "-q"]);
    bundle.cleanup();
    expect({ running, gone, list: list.stdout, state: entries(ctx.state) }).toEqual({
      running: true,
      gone: true,
      list: "",
      state: [],
    });
  }, 30_000);
}

function concurrencyTests(as: As) {
  test("eight runs with one --name at once: one gets it, the others fail with 125", async () => {
    const ctx = await newCtx(as);
    const r = await shell(ctx, 'seq 8 | xargs -P 8 -I{} sh -c \'"$T" run --rm --pull=never --name same "$IMAGE" sh -c "sleep 1; true" "$TOKEN"; echo "status $?"\'');
    const statuses = r.stdout.trim().split("\n").sort();
    expect(statuses).toEqual(["status 0", ...Array(7).fill("status 125")]);
    expect(r.stderr.split("\n").filter((l) => l.includes('the name "same" is already in use')).length).toBe(7);
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 60_000);

  test("60 runs at once get 60 different ids and generated names", async () => {
    const ctx = await newCtx(as);
    const r = await shell(ctx, 'seq 60 | xargs -P 8 -I{} "$T" run --pull=never "$IMAGE" true "$TOKEN"');
    const ps = JSON.parse((await tinyc(ctx, ["ps", "-a", "--format", "json"])).stdout) as { id: string; name: string }[];
    const ids = new Set(ps.map((c) => c.id));
    const names = new Set(ps.map((c) => c.name));
    const rm = await shell(ctx, '"$T" ps -aq | xargs -P 8 -n 8 "$T" rm >/dev/null');
    expect({ code: r.code, ids: ids.size, names: names.size, rm: rm.code, err: rm.stderr }).toEqual({
      code: 0, ids: 60, names: 60, rm: 0, err: "",
    });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 90_000);
}

function jsonTests(as: As) {
  test("inspect prints a container's and an image's fields as a JSON array, and templates", async () => {
    const ctx = await newCtx(as);
    const r = await tinyc(ctx, ["run", "--pull=never", "--name", "j", "-l", "k=v", "-e", "A=1", "-w", "/tmp",
      IMAGE, "sh", "-c", "exit 3"]);
    const all = await tinyc(ctx, ["inspect", "j", IMAGE]);
    const [c, img] = JSON.parse(all.stdout);
    const status = await tinyc(ctx, ["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{json .Config.Labels}}", "j"]);
    const whole = await tinyc(ctx, ["inspect", "-f", "{{json .}}", "j"]);
    const missing = await tinyc(ctx, ["inspect", "j", "nosuch"]);
    const refused = await tinyc(ctx, ["inspect", "-f", "{{range .Mounts}}x{{end}}", "j"]);
    expect(r.code).toBe(3);
    expect({
      id: c.Id.length,
      name: c.Name,
      state: { status: c.State.Status, running: c.State.Running, pid: c.State.Pid, exit: c.State.ExitCode },
      times: [c.Created, c.State.StartedAt, c.State.FinishedAt].every((t: string) => !isNaN(Date.parse(t))),
      config: { image: c.Config.Image, cmd: c.Config.Cmd, wd: c.Config.WorkingDir, labels: c.Config.Labels },
      env: c.Config.Env.includes("A=1"),
      image: c.Image === img.Id,
      mounts: c.Mounts,
      tags: img.RepoTags,
    }).toEqual({
      id: 64,
      name: "j",
      state: { status: "exited", running: false, pid: 0, exit: 3 },
      times: true,
      config: { image: IMAGE, cmd: ["sh", "-c", "exit 3"], wd: "/tmp", labels: { k: "v" } },
      env: true,
      image: true,
      mounts: [],
      tags: [IMAGE],
    });
    expect(status.stdout).toBe('exited 3 {"k":"v"}\n');
    expect(JSON.parse(whole.stdout).Id).toBe(c.Id);
    expect({ code: missing.code, found: JSON.parse(missing.stdout).length, err: missing.stderr.includes('"nosuch"') })
      .toEqual({ code: 1, found: 1, err: true });
    expect({ code: refused.code, err: refused.stderr.includes("not supported") }).toEqual({ code: 1, err: true });
  }, 30_000);

  test("ps, images, list and state take --format json", async () => {
    const ctx = await newCtx(as);
    const d = await tinyc(ctx, ["run", "-d", "--pull=never", "--name", "l", IMAGE, ...sleeper(ctx, 30)]);
    const id = d.stdout.trim();
    const ps = JSON.parse((await tinyc(ctx, ["ps", "--format", "json"])).stdout);
    const images = (await tinyc(ctx, ["images", "--format", "json"])).stdout.trim().split("\n").map((l) => JSON.parse(l));
    const list = JSON.parse((await tinyc(ctx, ["list", "--format", "json"])).stdout);
    const state = JSON.parse((await tinyc(ctx, ["state", "--format", "json", "l"])).stdout);
    await tinyc(ctx, ["rm", "-f", "l"]);
    expect({
      ps: ps.map((c: { id: string; status: string }) => [c.id, c.status]),
      images: images.length,
      list: list.map((c: { id: string }) => c.id),
      state: [state.id, state.status],
    }).toEqual({ ps: [[id, "running"]], images: 1, list: [id], state: [id, "running"] });
    expect(await leftovers(ctx)).toEqual(NOTHING);
  }, 30_000);
}

describe.skipIf(noRootless !== null || noXargs !== null)("rootless", () => {
  loopTests("rootless");
  statusTests("rootless");
  signalTests("rootless");
  bundleSweepTest("rootless");
  concurrencyTests("rootless");
  jsonTests("rootless");
});

describe.skipIf(noRoot !== null || noXargs !== null)("as root", () => {
  loopTests("root");
  statusTests("root");
});
