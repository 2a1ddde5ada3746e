// The runc verbs that take a container through its life one command at a time: create, start,
// state, kill, delete, list, ps, exec, pause and resume, with runc's flags and messages, since
// podman, containerd and dockerd call tinyc with exactly those. Each test has its own state
// folder (--root) and container ids; what it made is removed after it, passed or failed.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  type Spec,
  RUN_DIR,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  runCommand,
  scratchDir,
  spawnAs,
  tinycSkipReason,
} from "./harness";
import {
  OutputReader,
  type StateRoot,
  Tidy,
  busybox,
  expectTinycError,
  hostFile,
  isRunning,
  killIfAlive,
  pidsWithArg,
  waitUntil,
} from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
const gcc = Bun.which("gcc");
for (const [what, reason] of [
  ["rootless lifecycle tests", noRootless],
  ["root lifecycle tests", noRoot],
  ["console socket tests", gcc ? null : "no gcc to build tests/helper/recvtty.c"],
] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

const tidy = new Tidy();
afterEach(() => tidy.run());

// pid 1 ignores signals it has no handler for, so the traps are what make the signals visible.
const TRAPS =
  "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; " +
  "while :; do sleep 0.1; done";
const FOREVER = ["sh", "-c", "echo ready; while :; do sleep 0.1; done"];

interface ContainerOptions {
  config?: (spec: Spec) => void;
  /** Flags for create, before the id. */
  flags?: string[];
  /** Leave it created, not started. */
  created?: boolean;
}

/** A container of its own for one test: a busybox bundle, a state root, an id. */
async function container(as: As, args: string[], opts: ContainerOptions = {}) {
  // The bundle is handed to tidy first, so that it is removed after the container.
  const bundle = tidy.bundle(await busybox(as, args, { config: opts.config }));
  const rt = tidy.root(as);
  const id = rt.id();
  const c = opts.created
    ? await rt.create(id, bundle, opts.flags)
    : await rt.started(id, bundle, opts.flags);
  if (c.code !== 0) throw new Error(`create ${id}: ${c.stderr.trim()}`);
  const st = await rt.state(id);
  if (!st) throw new Error(`no state for ${id}`);
  return { rt, id, bundle, output: c.output, pid: st.pid };
}

const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "");

/** Waits until the file holds `text`. */
const fileHas = (file: string, text: string, ms = 5000) =>
  waitUntil(() => read(file).includes(text), ms);

/** The container's processes whose command line is exactly `args`. */
function childrenRunning(pids: number[], args: string[]): number[] {
  const want = args.join("\0") + "\0";
  return pids.filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") === want;
    } catch {
      return false;
    }
  });
}

/** The pids `ps --format json` gives, once there are `count` of them (the shell forks). */
async function psPids(rt: StateRoot, id: string, count: number): Promise<number[]> {
  let pids: number[] = [];
  for (let i = 0; i < 100; i++) {
    pids = JSON.parse((await rt.tinyc(["ps", "--format", "json", id])).stdout);
    if (pids.length >= count) break;
    await Bun.sleep(20);
  }
  return pids;
}

/** The tests that hold as root and rootless alike. */
function lifecycleTests(as: As) {
  test("create leaves the container in state created", async () => {
    const { rt, id } = await container(as, FOREVER, { created: true });
    expect((await rt.state(id))?.status).toBe("created");
  });

  test("create leaves a live process waiting", async () => {
    const { pid } = await container(as, FOREVER, { created: true });
    expect({ positive: pid > 0, running: isRunning(pid) }).toEqual({
      positive: true,
      running: true,
    });
  });

  test("create does not run the program", async () => {
    const { bundle } = await container(as, ["touch", "/ran"], {
      created: true,
      config: (s) => (s.root.readonly = false),
    });
    // Long enough for a program that had been let go to have made its file.
    await Bun.sleep(300);
    expect(fs.existsSync(path.join(bundle.rootfs, "ran"))).toBe(false);
  });

  test("start runs the program", async () => {
    const { bundle } = await container(as, ["sh", "-c", "touch /ran; sleep 100"], {
      config: (s) => (s.root.readonly = false),
    });
    expect(await waitUntil(() => fs.existsSync(path.join(bundle.rootfs, "ran")))).toBe(true);
  });

  test("start puts the container in state running", async () => {
    const { rt, id } = await container(as, FOREVER);
    expect((await rt.state(id))?.status).toBe("running");
  });

  test("state reports stopped and pid 0 once the program has exited", async () => {
    const { rt, id } = await container(as, ["true"]);
    const st = await rt.waitStatus(id, "stopped");
    expect({ status: st?.status, pid: st?.pid }).toEqual({ status: "stopped", pid: 0 });
  });

  test("state reports the id and the bundle", async () => {
    const { rt, id, bundle } = await container(as, FOREVER, { created: true });
    const st = await rt.state(id);
    expect({ id: st?.id, bundle: st?.bundle }).toEqual({ id, bundle: bundle.dir });
  });

  test("create --pid-file writes the pid that state reports", async () => {
    const pidFile = path.join(scratchDir(as, "pid"), "pid");
    const { pid } = await container(as, FOREVER, { created: true, flags: ["--pid-file", pidFile] });
    expect(Number(read(pidFile))).toBe(pid);
  });

  test("create --pid-file replaces the file whole rather than writing into it", async () => {
    // A pid file written in place would change through its other name too; one written to a
    // temporary name and renamed (so that no reader ever sees half of it) leaves that alone.
    const dir = scratchDir(as, "pid");
    const other = hostFile(dir, "other-name", as, "old");
    const pidFile = path.join(dir, "pid");
    fs.linkSync(other, pidFile);
    const { pid } = await container(as, FOREVER, { created: true, flags: ["--pid-file", pidFile] });
    expect({ pidFile: read(pidFile).trim(), other: read(other) }).toEqual({
      pidFile: String(pid),
      other: "old",
    });
  });

  test("start of a running container fails", async () => {
    const { rt, id } = await container(as, FOREVER);
    expectTinycError(await rt.tinyc(["start", id]), "non-zero");
  });

  test("start of a stopped container fails", async () => {
    const { rt, id } = await container(as, ["true"]);
    await rt.waitStatus(id, "stopped");
    expectTinycError(await rt.tinyc(["start", id]), "non-zero");
  });

  for (const verb of ["state", "start", "kill", "delete", "exec", "ps", "pause"]) {
    // exec, like run, keeps 1 and 2 for the process's own statuses: its failures are 125.
    const status = verb === "exec" ? 125 : 1;
    test(`${verb} of an unknown id exits ${status} saying it does not exist`, async () => {
      const rt = tidy.root(as);
      const args = verb === "exec" ? [verb, rt.id(), "true"] : [verb, rt.id()];
      expectTinycError(await rt.tinyc(args), status, "does not exist");
    });
  }

  test("delete --force of an unknown id exits 0", async () => {
    const rt = tidy.root(as);
    const r = await rt.tinyc(["delete", "--force", rt.id()]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
  });

  test("delete of a running container fails saying it is not stopped", async () => {
    const { rt, id } = await container(as, FOREVER);
    expectTinycError(await rt.tinyc(["delete", id]), "non-zero", "not stopped");
  });

  test("delete of a running container leaves it running", async () => {
    const { rt, id, pid } = await container(as, FOREVER);
    await rt.tinyc(["delete", id]);
    expect({ running: isRunning(pid), status: (await rt.state(id))?.status }).toEqual({
      running: true,
      status: "running",
    });
  });

  test("delete --force kills a running container and removes it", async () => {
    const { rt, id, pid } = await container(as, FOREVER);
    const r = await rt.tinyc(["delete", "--force", id]);
    expect({ code: r.code, running: isRunning(pid), state: await rt.state(id) }).toEqual({
      code: 0,
      running: false,
      state: undefined,
    });
  });

  test("delete removes a created container without --force", async () => {
    const { rt, id, pid } = await container(as, FOREVER, { created: true });
    const r = await rt.tinyc(["delete", id]);
    expect({ code: r.code, running: isRunning(pid), state: await rt.state(id) }).toEqual({
      code: 0,
      running: false,
      state: undefined,
    });
  });

  test("delete removes a stopped container and its state folder", async () => {
    const { rt, id } = await container(as, ["true"]);
    await rt.waitStatus(id, "stopped");
    const r = await rt.tinyc(["delete", id]);
    expect({ code: r.code, left: rt.entries() }).toEqual({ code: 0, left: [] });
  });

  test("kill sends TERM by default", async () => {
    const { rt, id, output } = await container(as, ["sh", "-c", TRAPS]);
    await fileHas(output, "ready\n");
    const r = await rt.tinyc(["kill", id]);
    expect({ code: r.code, got: await fileHas(output, "got TERM\n") }).toEqual({
      code: 0,
      got: true,
    });
  });

  for (const name of ["KILL", "SIGKILL", "9"]) {
    test(`kill ${name} ends the container`, async () => {
      const { rt, id } = await container(as, FOREVER);
      const r = await rt.tinyc(["kill", id, name]);
      const st = await rt.waitStatus(id, "stopped");
      expect({ code: r.code, status: st?.status }).toEqual({ code: 0, status: "stopped" });
    });
  }

  for (const args of [["sigusr1"], ["usr1"], ["10"]]) {
    test(`kill ID ${args[0]} sends USR1`, async () => {
      const { rt, id, output } = await container(as, ["sh", "-c", TRAPS]);
      await fileHas(output, "ready\n");
      const r = await rt.tinyc(["kill", id, ...args]);
      expect({ code: r.code, got: await fileHas(output, "got USR1\n") }).toEqual({
        code: 0,
        got: true,
      });
    });
  }

  test("kill -s SIGNAL takes the signal as docker spells it", async () => {
    const { rt, id, output } = await container(as, ["sh", "-c", TRAPS]);
    await fileHas(output, "ready\n");
    const r = await rt.tinyc(["kill", "-s", "USR1", id]);
    expect({ code: r.code, got: await fileHas(output, "got USR1\n") }).toEqual({
      code: 0,
      got: true,
    });
  });

  test("kill of an unknown signal name fails", async () => {
    const { rt, id } = await container(as, FOREVER);
    expectTinycError(await rt.tinyc(["kill", id, "NOSUCHSIG"]), "non-zero", "NOSUCHSIG");
  });

  test("kill of a stopped container fails saying container not running", async () => {
    const { rt, id } = await container(as, ["true"]);
    await rt.waitStatus(id, "stopped");
    expectTinycError(await rt.tinyc(["kill", id, "KILL"]), "non-zero", "container not running");
  });

  test("kill --all KILL ends every process of the container", async () => {
    const { rt, id } = await container(as, ["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    const pids = await psPids(rt, id, 3);
    const r = await rt.tinyc(["kill", "--all", id, "KILL"]);
    const gone = await waitUntil(() => pids.every((p) => !isRunning(p)));
    expect({ code: r.code, seen: pids.length, gone }).toEqual({ code: 0, seen: 3, gone: true });
  });

  test("kill --all sends the signal to every process, not only the first", async () => {
    // The first process survives TERM (it traps it), so only --all can have ended the sleeps.
    const script =
      "trap 'echo got TERM' TERM; sleep 100 & sleep 100 & echo ready; " +
      "while :; do sleep 0.1; done";
    const { rt, id, output } = await container(as, ["sh", "-c", script]);
    await fileHas(output, "ready\n");
    const pids = JSON.parse((await rt.tinyc(["ps", "--format", "json", id])).stdout) as number[];
    const sleeps = childrenRunning(pids, ["sleep", "100"]);
    const r = await rt.tinyc(["kill", "--all", id, "TERM"]);
    expect({
      code: r.code,
      sleeps: sleeps.length,
      sleepsGone: await waitUntil(() => sleeps.every((p) => !isRunning(p))),
      first: await fileHas(output, "got TERM\n"),
    }).toEqual({ code: 0, sleeps: 2, sleepsGone: true, first: true });
  });

  test("kill of an exited container signals no other process", async () => {
    const { rt, id } = await container(as, ["true"]);
    await rt.waitStatus(id, "stopped");
    // A process of the same user, which a stray signal could reach.
    const bystander = spawnAs(["sleep", "1000"], { as, stdout: "ignore", stderr: "ignore" });
    tidy.add(() => killIfAlive(bystander.pid));
    const r = await rt.tinyc(["kill", id, "KILL"]);
    await Bun.sleep(100);
    expect({ failed: r.code !== 0, alive: isRunning(bystander.pid) }).toEqual({
      failed: true,
      alive: true,
    });
  });

  test("list prints a table with ID PID STATUS BUNDLE CREATED OWNER", async () => {
    const { rt, id, pid } = await container(as, FOREVER);
    const lines = (await rt.tinyc(["list"])).stdout.trim().split("\n");
    const row = lines[1]?.split(/\s+/) ?? [];
    expect({ header: lines[0].split(/\s+/), row: row.slice(0, 3) }).toEqual({
      header: ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
      row: [id, String(pid), "running"],
    });
  });

  test("list --format json gives id, status and pid of each container", async () => {
    const { rt, id, pid } = await container(as, FOREVER, { created: true });
    const list = JSON.parse((await rt.tinyc(["list", "--format", "json"])).stdout);
    const mine = list.map((c: any) => ({ id: c.id, status: c.status, pid: c.pid }));
    expect(mine).toEqual([{ id, status: "created", pid }]);
  });

  test("list -q prints only the ids", async () => {
    const bundle = tidy.bundle(await busybox(as, FOREVER));
    const a = await container(as, FOREVER, { created: true });
    const other = a.rt.id();
    await a.rt.create(other, bundle);
    const r = await a.rt.tinyc(["list", "-q"]);
    expect(r.stdout.split("\n").filter(Boolean).sort()).toEqual([a.id, other].sort());
  });

  test("ps --format json lists the container's pids, the first one included", async () => {
    const { rt, id, pid } = await container(as, ["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    const pids = await psPids(rt, id, 3);
    expect({ count: pids.length, first: pids.includes(pid) }).toEqual({ count: 3, first: true });
  });

  test("ps prints a table with the container's first process", async () => {
    const { rt, id, pid } = await container(as, FOREVER);
    const r = await rt.tinyc(["ps", id]);
    const lines = r.stdout.trim().split("\n");
    expect({
      code: r.code,
      header: lines[0]?.split(/\s+/).includes("PID"),
      first: lines.slice(1).some((l) => l.split(/\s+/).includes(String(pid))),
    }).toEqual({ code: 0, header: true, first: true });
  });

  test("exec prints the command's output", async () => {
    const { rt, id } = await container(as, FOREVER);
    const r = await rt.tinyc(["exec", id, "echo", "hello"]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "hello\n" });
  });

  test("exec exits with the command's status", async () => {
    const { rt, id } = await container(as, FOREVER);
    expect((await rt.tinyc(["exec", id, "sh", "-c", "exit 7"])).code).toBe(7);
  });

  test("exec passes its stdin to the command", async () => {
    const { rt, id } = await container(as, FOREVER);
    const r = await rt.tinyc(["exec", id, "cat"], { input: "through stdin\n" });
    expect(r.stdout).toBe("through stdin\n");
  });

  test("exec -e sets an environment variable", async () => {
    const { rt, id } = await container(as, FOREVER);
    const r = await rt.tinyc(["exec", "-e", "GREETING=hi there", id, "sh", "-c", "echo $GREETING"]);
    expect(r.stdout).toBe("hi there\n");
  });

  test("exec keeps the container's environment", async () => {
    const { rt, id } = await container(as, FOREVER, {
      config: (s) => s.process.env.push("FROM_CONFIG=yes"),
    });
    const r = await rt.tinyc(["exec", id, "sh", "-c", "echo $FROM_CONFIG"]);
    expect(r.stdout).toBe("yes\n");
  });

  test("exec --cwd sets the working folder", async () => {
    const { rt, id } = await container(as, FOREVER);
    const r = await rt.tinyc(["exec", "--cwd", "/dev", id, "pwd"]);
    expect(r.stdout).toBe("/dev\n");
    // A folder that is not there is an error, as with runc: exec makes nothing in the container.
    const missing = await rt.tinyc(["exec", "--cwd", "/no/such/folder", id, "pwd"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("/no/such/folder");
    expect((await rt.tinyc(["exec", id, "test", "-e", "/no"])).code).toBe(1);
  });

  test("exec --process runs the process that the file describes", async () => {
    const { rt, id } = await container(as, FOREVER);
    const proc = {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ["sh", "-c", 'echo "$WHO in $(pwd)"'],
      env: ["PATH=/bin:/usr/bin", "WHO=process.json"],
      cwd: "/etc",
    };
    const file = hostFile(rt.scratch, "process.json", as, JSON.stringify(proc));
    const r = await rt.tinyc(["exec", "--process", file, id]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "process.json in /etc\n" });
  });

  test("exec --detach --pid-file returns with the process running", async () => {
    const { rt, id } = await container(as, FOREVER);
    const pidFile = path.join(rt.scratch, "exec.pid");
    const r = await rt.detached(["exec", "--detach", "--pid-file", pidFile, id, "sleep", "37"]);
    const pid = Number(read(pidFile));
    expect({
      code: r.code,
      running: pid > 0 && isRunning(pid),
      cmdline: read(`/proc/${pid}/cmdline`),
    }).toEqual({ code: 0, running: true, cmdline: "sleep\x0037\x00" });
  });

  test("exec into a stopped container fails", async () => {
    const { rt, id } = await container(as, ["true"]);
    await rt.waitStatus(id, "stopped");
    expectTinycError(await rt.tinyc(["exec", id, "true"]), "non-zero", "stopped");
  });

  test("exec of a missing program exits 127 saying not found", async () => {
    const { rt, id } = await container(as, FOREVER);
    const r = await rt.tinyc(["exec", id, "nosuch"]);
    expect({ code: r.code, found: r.stderr.includes("not found") }).toEqual({
      code: 127,
      found: true,
    });
  });

  test("exec joins the container's pid namespace", async () => {
    const { rt, id, pid } = await container(as, FOREVER);
    const r = await rt.tinyc(["exec", id, "readlink", "/proc/self/ns/pid"]);
    expect(r.stdout.trim()).toBe(fs.readlinkSync(`/proc/${pid}/ns/pid`));
  });

  test("exec sees the container's first process as pid 1", async () => {
    const { rt, id } = await container(as, ["sleep", "100"]);
    const r = await rt.tinyc(["exec", id, "cat", "/proc/1/cmdline"]);
    expect(r.stdout).toBe("sleep\x00100\x00");
  });

  test("exec sees the container's hostname", async () => {
    const { rt, id } = await container(as, FOREVER, { config: (s) => (s.hostname = "box-7") });
    expect((await rt.tinyc(["exec", id, "hostname"])).stdout).toBe("box-7\n");
  });

  test("exec -t gives the process a terminal of the container's", async () => {
    const { rt, id } = await container(as, FOREVER);
    // script(1) provides the terminal that exec -t relays to. At the end of its own stdin it
    // types the terminal's end-of-file character, which the container's terminal may echo
    // (as ^@) ahead of the output.
    const cmd = `${TINYC} --root ${rt.dir} exec -t ${id} tty`;
    const r = await runCommand(["script", "-qec", cmd, "/dev/null"], { as, timeoutMs: 20_000 });
    expect(r.stdout).toMatch(/(^|\^@)\/dev\/pts\/\d+\r$/m);
  });

  test("run --detach returns with the container running", async () => {
    const bundle = tidy.bundle(await busybox(as, FOREVER));
    const rt = tidy.root(as);
    const id = rt.id();
    const r = await rt.detached(["run", "--detach", "--bundle", bundle.dir, id]);
    expect({ code: r.code, status: (await rt.state(id))?.status }).toEqual({
      code: 0,
      status: "running",
    });
  });

  test("delete --force removes a container that run --detach started", async () => {
    const bundle = tidy.bundle(await busybox(as, FOREVER));
    const rt = tidy.root(as);
    const id = rt.id();
    await rt.detached(["run", "--detach", "--bundle", bundle.dir, id]);
    const pid = (await rt.state(id))?.pid ?? 0;
    const r = await rt.tinyc(["delete", "--force", id]);
    expect({ code: r.code, running: isRunning(pid), left: rt.entries() }).toEqual({
      code: 0,
      running: false,
      left: [],
    });
  });
}

describe.skipIf(!!noRootless)("rootless", () => {
  lifecycleTests("rootless");

  test("exec -u runs the process as that uid and gid", async () => {
    const { rt, id } = await container("rootless", FOREVER);
    const r = await rt.tinyc(["exec", "-u", "1000:1000", id, "sh", "-c", "echo $(id -u):$(id -g)"]);
    expect(r.stdout).toBe("1000:1000\n");
  });

  test("pause of a rootless container fails saying not supported", async () => {
    const { rt, id } = await container("rootless", FOREVER);
    expectTinycError(await rt.tinyc(["pause", id]), "non-zero", "not supported");
  });

  test("features prints JSON with ociVersionMax", async () => {
    const rt = tidy.root("rootless");
    const r = await rt.tinyc(["features"]);
    expect(JSON.parse(r.stdout).ociVersionMax).toMatch(/^1\.\d+\.\d+$/);
  });

  test("features names every hook phase", async () => {
    const rt = tidy.root("rootless");
    const r = await rt.tinyc(["features"]);
    const phases = ["prestart", "createRuntime", "createContainer", "startContainer",
      "poststart", "poststop"];
    expect([...JSON.parse(r.stdout).hooks].sort()).toEqual(phases.sort());
  });

  describe("global flags", () => {
    const missing = () => path.join(RUN_DIR, "no-such-bundle");

    /** The entries of a JSON log, each parsed; a line that does not parse fails the test. */
    const jsonLines = (file: string) =>
      read(file)
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);

    test("--log with --log-format json writes the error as a JSON line", async () => {
      const rt = tidy.root("rootless");
      const log = path.join(rt.scratch, "log.json");
      const flags = ["--log", log, "--log-format", "json"];
      await rt.tinyc([...flags, "create", "--bundle", missing(), rt.id()]);
      const errors = jsonLines(log).filter((e) => e.level === "error");
      expect(errors.map((e) => String(e.msg).includes(missing()))).toEqual([true]);
    });

    test("--log-format json gives every entry level, msg and time", async () => {
      const rt = tidy.root("rootless");
      const log = path.join(rt.scratch, "log.json");
      const flags = ["--debug", "--log", log, "--log-format", "json"];
      await rt.tinyc([...flags, "create", "--bundle", missing(), rt.id()]);
      const entries = jsonLines(log);
      const shapes = entries.map((e) => [typeof e.level, typeof e.msg, typeof e.time]);
      expect({ some: entries.length > 0, shapes: [...new Set(shapes.map(String))] }).toEqual({
        some: true,
        shapes: ["string,string,string"],
      });
    });

    test("--log-format=json is accepted as one argument", async () => {
      const rt = tidy.root("rootless");
      const log = path.join(rt.scratch, "log.json");
      const r = await rt.tinyc(["--log", log, "--log-format=json", "create", "--bundle",
        missing(), rt.id()]);
      const errors = jsonLines(log).filter((e) => e.level === "error");
      expect({ failed: r.code !== 0, errors: errors.length }).toEqual({ failed: true, errors: 1 });
    });

    test("--log still prints the error on stderr", async () => {
      const rt = tidy.root("rootless");
      const log = path.join(rt.scratch, "log.json");
      const r = await rt.tinyc(["--log", log, "--log-format", "json", "create", "--bundle",
        missing(), rt.id()]);
      expectTinycError(r, "non-zero", missing());
    });

    test("--debug writes debug entries while the command succeeds", async () => {
      const bundle = tidy.bundle(await busybox("rootless", FOREVER));
      const rt = tidy.root("rootless");
      const log = path.join(rt.scratch, "log.txt");
      const r = await rt.detached(["create", "--bundle", bundle.dir, rt.id()], [
        "--debug",
        "--log",
        log,
      ]);
      expect({ code: r.code, debug: read(log).includes("level=debug") }).toEqual({
        code: 0,
        debug: true,
      });
    });
  });

  describe("concurrency", () => {
    test("20 parallel creates and 20 parallel delete --force all succeed, leaving nothing",
      async () => {
        const bundle = tidy.bundle(await busybox("rootless", FOREVER));
        const rt = tidy.root("rootless");
        const ids = Array.from({ length: 20 }, () => rt.id());
        const creates = await Promise.all(ids.map((id) => rt.create(id, bundle)));
        const listed = (await rt.tinyc(["list", "-q"])).stdout.split("\n").filter(Boolean);
        const deletes = await Promise.all(ids.map((id) => rt.tinyc(["delete", "--force", id])));
        expect({
          creates: creates.map((r) => r.code ?? r.stderr),
          listed: listed.length,
          deletes: deletes.map((r) => r.code ?? r.stderr),
          left: rt.entries(),
          leftProcesses: ids.flatMap((id) => pidsWithArg(id)),
        }).toEqual({
          creates: ids.map(() => 0),
          listed: 20,
          deletes: ids.map(() => 0),
          left: [],
          leftProcesses: [],
        });
      },
      30_000,
    );

    test("5 concurrent delete --force of one running id all succeed and remove it", async () => {
      const { rt, id, pid } = await container("rootless", FOREVER);
      const rs = await Promise.all(
        Array.from({ length: 5 }, () => rt.tinyc(["delete", "--force", id])),
      );
      expect({
        codes: rs.map((r) => r.code),
        stderr: rs.map((r) => r.stderr),
        running: isRunning(pid),
        left: rt.entries(),
      }).toEqual({
        codes: [0, 0, 0, 0, 0],
        stderr: ["", "", "", "", ""],
        running: false,
        left: [],
      });
    });

    test("5 concurrent delete of one stopped id: one succeeds, the others find no container",
      async () => {
        const { rt, id } = await container("rootless", ["true"]);
        await rt.waitStatus(id, "stopped");
        const rs = await Promise.all(Array.from({ length: 5 }, () => rt.tinyc(["delete", id])));
        const failed = rs.filter((r) => r.code !== 0);
        expect({
          succeeded: rs.length - failed.length,
          failures: [...new Set(failed.map((r) => /^tinyc: .*does not exist\n$/.test(r.stderr)))],
          left: rt.entries(),
        }).toEqual({ succeeded: 1, failures: [true], left: [] });
      },
    );
  });

  describe.skipIf(!gcc)("console socket", () => {
    let recvtty = "";

    /** Builds tests/helper/recvtty.c once, where the test user can run it. */
    function helper(): string {
      if (recvtty) return recvtty;
      const dir = scratchDir("root", "recvtty");
      const out = path.join(dir, "recvtty");
      const src = path.join(import.meta.dir, "../helper/recvtty.c");
      const cc = [gcc!, "-O2", "-Wall", "-Werror", "-o", out, src];
      const r = Bun.spawnSync(cc, { stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(`gcc recvtty.c: ${r.stderr.toString()}`);
      fs.chmodSync(out, 0o755);
      recvtty = out;
      return out;
    }

    /** A terminal container created with --console-socket, started; what came through. */
    async function throughSocket(args: string[]): Promise<string> {
      const bundle = tidy.bundle(
        await busybox("rootless", args, { config: (s) => (s.process.terminal = true) }),
      );
      const rt = tidy.root("rootless");
      const sock = path.join(rt.scratch, "tty.sock");
      const recv = spawnAs([helper(), sock], { as: "rootless" });
      tidy.add(() => killIfAlive(recv.pid));
      const out = new OutputReader(recv.stdout);
      const err = new OutputReader(recv.stderr);
      if (!(await err.until("listening\n"))) throw new Error(`recvtty: ${err.text}`);
      const id = rt.id();
      const c = await rt.create(id, bundle, ["--console-socket", sock]);
      if (c.code !== 0) throw new Error(`create: ${c.stderr}`);
      await rt.tinyc(["start", id]);
      await Promise.race([recv.exited, Bun.sleep(5000)]);
      return out.text;
    }

    test("create --console-socket sends the terminal that the program writes to", async () => {
      expect(await throughSocket(["sh", "-c", "echo hi"])).toContain("hi\r\n");
    });

    test("create --console-socket makes that terminal the program's: tty names it", async () => {
      // runc names it /dev/pts/N; the same terminal bound at /dev/console is as good.
      expect(await throughSocket(["tty"])).toMatch(/^\/dev\/(pts\/\d+|console)\r$/m);
    });
  });
});

describe.skipIf(!!noRoot)("as root", () => {
  lifecycleTests("root");

  // A root container gets a cgroup, which pause needs, when its config names one (as
  // containerd's and dockerd's configs do).
  const withCgroup = (s: Spec) => (s.linux.cgroupsPath = `it-${randomBytes(6).toString("hex")}`);

  /** Lines the container has written so far: it counts, one line each 50 ms. */
  const COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done"];
  const lines = (file: string) => read(file).split("\n").length;

  test("pause puts the container in state paused", async () => {
    const { rt, id } = await container("root", COUNTER, { config: withCgroup });
    const r = await rt.tinyc(["pause", id]);
    expect({ code: r.code, status: (await rt.state(id))?.status }).toEqual({
      code: 0,
      status: "paused",
    });
  });

  test("pause stops the container's processes", async () => {
    const { rt, id, output } = await container("root", COUNTER, { config: withCgroup });
    await fileHas(output, "3\n");
    await rt.tinyc(["pause", id]);
    // A line that was on its way when the freezer took hold may still land.
    await Bun.sleep(100);
    const before = lines(output);
    await Bun.sleep(500);
    expect(lines(output)).toBe(before);
  });

  test("resume lets a paused container go on", async () => {
    const { rt, id, output } = await container("root", COUNTER, { config: withCgroup });
    await fileHas(output, "3\n");
    await rt.tinyc(["pause", id]);
    await Bun.sleep(100);
    const before = lines(output);
    const r = await rt.tinyc(["resume", id]);
    expect({
      code: r.code,
      status: (await rt.state(id))?.status,
      counting: await waitUntil(() => lines(output) > before + 2),
    }).toEqual({ code: 0, status: "running", counting: true });
  });

  test("resume of a running container fails", async () => {
    const { rt, id } = await container("root", FOREVER, { config: withCgroup });
    expectTinycError(await rt.tinyc(["resume", id]), "non-zero");
  });

  test("delete --force removes a paused container", async () => {
    const { rt, id, pid } = await container("root", FOREVER, { config: withCgroup });
    await rt.tinyc(["pause", id]);
    const r = await rt.tinyc(["delete", "--force", id]);
    expect({ code: r.code, running: isRunning(pid), left: rt.entries() }).toEqual({
      code: 0,
      running: false,
      left: [],
    });
  }, 20_000);

  describe.skipIf(!!noRootless)("a pid reused after the container ended", () => {
    /**
     * Starts a process of the test user's that gets exactly PID: the next pid is PID when
     * ns_last_pid holds PID-1, unless another process takes it first (then try again).
     */
    async function spawnAtPid(pid: number) {
      for (let i = 0; i < 50; i++) {
        fs.writeFileSync("/proc/sys/kernel/ns_last_pid", String(pid - 1));
        const quiet = { as: "rootless", stdout: "ignore", stderr: "ignore" } as const;
        const p = spawnAs(["sleep", "1000"], quiet);
        if (p.pid === pid) return p;
        p.kill("SIGKILL");
        await p.exited;
      }
      throw new Error(`could not start a process with pid ${pid}`);
    }

    async function reused() {
      // The program may be gone before state is read: the pid file keeps its pid.
      const pidFile = path.join(scratchDir("rootless", "pid"), "pid");
      const { rt, id } = await container("rootless", ["true"], { flags: ["--pid-file", pidFile] });
      const pid = Number(read(pidFile));
      await rt.waitStatus(id, "stopped");
      if (!(await waitUntil(() => !fs.existsSync(`/proc/${pid}`)))) {
        throw new Error(`pid ${pid} of the ended container was never reaped`);
      }
      const p = await spawnAtPid(pid);
      tidy.add(() => killIfAlive(p.pid));
      return { rt, id, pid };
    }

    test("kill does not signal the process that now has the container's pid", async () => {
      const { rt, id, pid } = await reused();
      const r = await rt.tinyc(["kill", id, "KILL"]);
      await Bun.sleep(100);
      expect({ failed: r.code !== 0, alive: isRunning(pid) }).toEqual({
        failed: true,
        alive: true,
      });
    });

    test("state reports stopped although the container's pid is in use again", async () => {
      const { rt, id } = await reused();
      expect((await rt.state(id))?.status).toBe("stopped");
    });

    test("delete --force does not kill the process that now has the container's pid", async () => {
      const { rt, id, pid } = await reused();
      const r = await rt.tinyc(["delete", "--force", id]);
      await Bun.sleep(100);
      expect({ code: r.code, alive: isRunning(pid) }).toEqual({ code: 0, alive: true });
    });
  });
});
