// The per-container shim (`tinyc shim`, the C program the daemon starts for each container),
// driven directly as the daemon drives it: its command line, the ready line on its stdout,
// the attach socket's requests (attach, resize, wait, exec, exec resize), the json-file log
// and its rotation, exit.json, and what happens when the shim itself is killed. Real
// containers, made by the built tinyc from the busybox fixture, as root and rootless.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import {
  type As,
  type Spec,
  IS_ROOT,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  run,
  runCommand,
  scratchDir,
  tinycSkipReason,
} from "./harness";
import {
  Tidy, busybox, isRunning, killIfAlive, ownerIds, pidsWithArg, waitUntil,
} from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
for (const [what, reason] of [
  ["rootless shim tests", noRootless],
  ["root shim tests", noRoot],
] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

const tidy = new Tidy();
afterEach(() => tidy.run());

const FOREVER = ["sh", "-c", "while :; do sleep 0.1; done"];

/** One frame of the attach protocol: stream 1 stdout, 2 stderr, 3 exit (payload: int32 BE). */
interface Frame {
  stream: number;
  data: Buffer;
}

/** A connection to a shim's attach socket, with the frames it has received so far. */
class Client {
  private buf = Buffer.alloc(0);
  raw = Buffer.alloc(0);
  frames: Frame[] = [];
  closed: Promise<void>;
  private wake: (() => void)[] = [];
  sock: net.Socket;

  constructor(file: string, first: Buffer) {
    this.sock = net.createConnection({ path: file, allowHalfOpen: true });
    this.sock.write(first);
    this.sock.on("data", (d: Buffer) => {
      this.raw = Buffer.concat([this.raw, d]);
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 8) {
        const len = this.buf.readUInt32BE(4);
        if (this.buf.length < 8 + len) break;
        this.frames.push({ stream: this.buf[0], data: this.buf.subarray(8, 8 + len) });
        this.buf = this.buf.subarray(8 + len);
      }
      this.notify();
    });
    this.sock.on("error", () => {});
    // The shim closes after the exit frame; our side then closes too.
    this.sock.on("end", () => this.sock.end());
    this.closed = new Promise((resolve) => this.sock.on("close", () => {
      this.notify();
      resolve();
    }));
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  send(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** Half-closes: the shim sees end of file on the client's side. */
  end(): void {
    this.sock.end();
  }

  /** What came on a stream, as text. */
  text(stream = 1): string {
    const mine = this.frames.filter((f) => f.stream === stream);
    return Buffer.concat(mine.map((f) => f.data)).toString();
  }

  /** The exit status of the exit frame, or undefined before it. */
  exit(): number | undefined {
    const f = this.frames.find((x) => x.stream === 3);
    return f && f.data.length === 4 ? f.data.readInt32BE(0) : undefined;
  }

  /** Waits until `check` holds (or the connection closes, or ms pass); whether it held. */
  async until(check: () => boolean, ms = 8000): Promise<boolean> {
    const deadline = Date.now() + ms;
    let closed = false;
    this.closed.then(() => (closed = true));
    while (!check()) {
      const left = deadline - Date.now();
      if (closed || left <= 0) return check();
      const woken = new Promise<void>((r) => this.wake.push(r));
      await Promise.race([woken, Bun.sleep(Math.min(left, 100))]);
    }
    return true;
  }

  /** Waits for the exit frame and the close after it. */
  async finished(ms = 8000): Promise<number | undefined> {
    await Promise.race([this.closed, Bun.sleep(ms)]);
    return this.exit();
  }
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/** `X`: an exec request with its flag byte, pid-file and console-socket names and argv. */
function execRequest(flags: number, pidFile: string, sock: string, argv: string[]): Buffer {
  const body = Buffer.from([pidFile, sock, ...argv].map((s) => `${s}\0`).join(""));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([Buffer.from("X"), Buffer.from([flags]), len, body]);
}

interface ShimOptions {
  tty?: boolean;
  flags?: string[];
  config?: (spec: Spec) => void;
  /** Create flags in place of the bundle's (to make the runtime fail). */
  bundleDir?: string;
}

let execCount = 0;

/** A shim holding a created container: its folder, the ready line, and ways to drive it. */
async function shimmed(as: As, args: string[], opts: ShimOptions = {}) {
  const bundle = tidy.bundle(
    await busybox(as, args, {
      config: (spec) => {
        spec.process.terminal = !!opts.tty;
        opts.config?.(spec);
      },
    }),
  );
  const rt = tidy.root(as);
  const id = rt.id();
  const dir = path.join(scratchDir(as, "shim"), "c");
  fs.mkdirSync(dir, { mode: 0o700 });
  if (IS_ROOT) fs.chownSync(dir, ownerIds(as).uid, ownerIds(as).gid);
  const runtime = [TINYC, "--root", rt.dir, "--log", "runtime.log", "create", "--bundle",
    opts.bundleDir ?? bundle.dir, "--pid-file", "init.pid",
    ...(opts.tty ? ["--console-socket", "console.sock"] : []), id];
  const flags = [...(opts.tty ? ["--tty"] : []), ...(opts.flags ?? [])];
  const r = await run(["shim", ...flags, dir, "--", ...runtime], { as, timeoutMs: 20_000 });
  const file = (name: string) => path.join(dir, name);
  const pidText = fs.existsSync(file("shim.pid")) ? fs.readFileSync(file("shim.pid"), "utf8") : "0";
  const shimPid = Number(pidText);
  // Undone before the root's cleanup: the container is then deleted by the runtime.
  tidy.add(() => killIfAlive(shimPid));
  const exec = (flags: number, argv: string[], tty = false) => {
    const n = ++execCount;
    const sock = tty ? `exec-${n}.sock` : "";
    const rtArgs = [TINYC, "--root", rt.dir, "exec", "--detach", "--pid-file", `exec-${n}.pid`,
      ...(tty ? ["--tty", "--console-socket", sock] : []), id, ...argv];
    const pidFile = `exec-${n}.pid`;
    return { client: new Client(file("attach.sock"), execRequest(flags, pidFile, sock, rtArgs)), pidFile };
  };
  return {
    r,
    rt,
    id,
    dir,
    shimPid,
    file,
    read: (name: string) => fs.readFileSync(file(name), "utf8"),
    /** `A` with the flags and 8 (ack): returns once the shim has said it is attached. */
    attach: async (flags: number) => {
      const c = new Client(file("attach.sock"), Buffer.from([0x41, flags | 8]));
      if (!(await c.until(() => c.frames.length > 0, 3000))) throw new Error("attach: no answer");
      return c;
    },
    wait: () => new Client(file("attach.sock"), Buffer.from("W")),
    exec,
    start: async () => {
      const s = await rt.tinyc(["start", id]);
      if (s.code !== 0) throw new Error(`start ${id}: ${s.stderr}`);
    },
    /** `R`: resizes the container's terminal; the one-byte answer (0 done, 1 not). */
    resize: async (rows: number, cols: number, exec?: string) => {
      const head = exec
        ? Buffer.concat([Buffer.from("T"), Buffer.from([exec.length]), Buffer.from(exec)])
        : Buffer.from("R");
      const c = new Client(file("attach.sock"), Buffer.concat([head, u16(rows), u16(cols)]));
      await c.closed;
      return c.raw[0];
    },
    /** Waits until the shim has ended (it removes shim.pid last). */
    gone: () => waitUntil(() => !isRunning(shimPid), 8000),
  };
}

type Shim = Awaited<ReturnType<typeof shimmed>>;

/** The log's entries, parsed. */
function logEntries(s: Shim, name = "container.log") {
  return s.read(name).split("\n").filter(Boolean).map((l) => JSON.parse(l) as {
    log: string;
    stream: string;
    time: string;
  });
}

const RFC3339NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

function shimTests(as: As) {
  test("shim runs create, says ok with the pid and adopts the container's process", async () => {
    const s = await shimmed(as, FOREVER);
    const pid = Number(s.read("init.pid"));
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
    const mode = (name: string) => fs.statSync(s.file(name)).mode & 0o777;
    const resize = await s.resize(24, 80);
    expect({
      resize,
      code: s.r.code,
      stdout: s.r.stdout,
      parent: ppid,
      running: isRunning(s.shimPid),
      modes: [mode("attach.sock"), mode("container.log")],
    }).toEqual({
      resize: 1, // no terminal
      code: 0,
      stdout: `ok ${pid}\n`,
      parent: s.shimPid,
      running: true,
      modes: [0o600, 0o600],
    });
  });

  test("shim sends output as frames and to the log, then the exit to every client", async () => {
    const script = "echo out1; echo err1 >&2; printf 'q\"b\\\\s\\t\\001\\377\\n'; " +
      "printf partial; sleep 0.2; exit 3";
    const s = await shimmed(as, ["sh", "-c", script]);
    const both = await s.attach(2 | 4);
    const outOnly = await s.attach(2);
    const waiter = s.wait();
    await Bun.sleep(100);
    await s.start();
    const codes = await Promise.all([both.finished(), outOnly.finished(), waiter.finished()]);
    expect(await s.gone()).toBe(true);
    const entries = logEntries(s);
    const exit = JSON.parse(s.read("exit.json"));
    expect({
      codes,
      ack: [both.frames[0].stream, both.frames[0].data.length],
      out: both.text(1),
      err: both.text(2),
      outOnly: [outOnly.text(1), outOnly.text(2)],
      waiter: waiter.frames.length,
      log: entries.map((e) => [e.stream, e.log]).sort(),
      times: entries.every((e) => RFC3339NANO.test(e.time)),
      exit: { ...exit, finishedAt: RFC3339NANO.test(exit.finishedAt) },
      left: ["attach.sock", "shim.pid"].filter((f) => fs.existsSync(s.file(f))),
    }).toEqual({
      codes: [3, 3, 3],
      ack: [1, 0],
      out: "out1\nq\"b\\s\t\u0001\uFFFD\npartial",
      err: "err1\n",
      outOnly: ["out1\nq\"b\\s\t\u0001\uFFFD\npartial", ""],
      waiter: 1,
      log: [
        ["stderr", "err1\n"],
        ["stdout", "out1\n"],
        ["stdout", "partial"],
        ["stdout", "q\"b\\s\t\u0001\uFFFD\n"],
      ],
      times: true,
      exit: { exitCode: 3, signal: 0, finishedAt: true, pid: Number(s.read("init.pid")) },
      left: [],
    });
  });

  test("shim passes stdin from a client, closed at the client's end with --stdin-once", async () => {
    const flags = ["--stdin", "--stdin-once"];
    const s = await shimmed(as, ["sh", "-c", "cat; echo done"], { flags });
    const c = await s.attach(1 | 2);
    await s.start();
    c.send("abc\n");
    expect(await c.until(() => c.text().includes("abc"))).toBe(true);
    c.send("def\n");
    c.end();
    const got = { code: await c.finished(), out: c.text() };
    expect(got).toEqual({ code: 0, out: "abc\ndef\ndone\n" });
  });

  test("shim keeps stdin open at a client's end without --stdin-once", async () => {
    const s = await shimmed(as, ["cat"], { flags: ["--stdin"] });
    const first = await s.attach(1 | 2);
    await s.start();
    first.send("a\n");
    first.end();
    await first.until(() => first.text() === "a\n");
    const second = await s.attach(1 | 2);
    second.send("b\n");
    await second.until(() => second.text() === "b\n");
    expect((await s.rt.tinyc(["kill", s.id, "KILL"])).code).toBe(0);
    expect({
      first: [await first.finished(), first.text()],
      second: [await second.finished(), second.text()],
    }).toEqual({ first: [137, "a\nb\n"], second: [137, "b\n"] });
  });

  test("shim records death by signal as 128+N in exit.json", async () => {
    const s = await shimmed(as, FOREVER);
    const w = s.wait();
    await s.start();
    await Bun.sleep(100);
    expect((await s.rt.tinyc(["kill", s.id, "KILL"])).code).toBe(0);
    expect(await w.finished()).toBe(137);
    await s.gone();
    const exit = JSON.parse(s.read("exit.json"));
    expect([exit.exitCode, exit.signal]).toEqual([137, 9]);
  });

  test("shim gives a terminal: stdin to it, resizes seen by stty size", async () => {
    const script = "stty size; read x; echo got $x; stty size";
    const s = await shimmed(as, ["sh", "-c", script], { tty: true, flags: ["--stdin"] });
    expect(await s.resize(30, 100)).toBe(0);
    const c = await s.attach(1 | 2 | 4);
    await s.start();
    await c.until(() => c.text().includes("30 100"));
    expect(c.text()).toContain("30 100");
    expect(await s.resize(40, 120)).toBe(0);
    c.send("hi\n");
    expect(await c.finished()).toBe(0);
    const out = c.text().replaceAll("\r\n", "\n");
    expect({
      out,
      streams: [...new Set(c.frames.map((f) => f.stream))],
      log: logEntries(s).map((e) => e.log).join("").replaceAll("\r\n", "\n"),
    }).toEqual({ out: "30 100\nhi\ngot hi\n40 120\n", streams: [1, 3], log: out });
  });

  test("shim ends a terminal's input with its end-of-file character with --stdin-once", async () => {
    const s = await shimmed(as, ["sh", "-c", "cat; echo done"], {
      tty: true,
      flags: ["--stdin", "--stdin-once"],
    });
    const c = await s.attach(1 | 2);
    await s.start();
    c.send("x\n");
    await c.until(() => c.text().includes("x\r\nx\r\n"));
    c.end();
    expect({ code: await c.finished(), out: c.text() }).toEqual({
      code: 0,
      out: expect.stringMatching(/^x\r\nx\r\n(\^D\x08\x08)?done\r\n$/),
    });
  });

  test("shim execs in the container: output, stdin with end of file, exit status", async () => {
    const s = await shimmed(as, FOREVER);
    await s.start();
    const a = s.exec(1, ["sh", "-c", "echo out; echo err >&2; cat; exit 5"]).client;
    a.send("in\n");
    a.end();
    const missing = s.exec(0, ["no-such-program"]).client;
    const codes = [await a.finished(), await missing.finished()];
    expect({
      codes,
      out: a.text(1),
      err: a.text(2),
      missing: missing.text(2).includes("no-such-program"),
      log: s.read("container.log"),
      left: fs.readdirSync(s.dir).filter((f) => f.startsWith("exec-")),
    }).toEqual({
      codes: [5, 127],
      out: "out\nin\n",
      err: "err\n",
      missing: true,
      log: "",
      left: [],
    });
  });

  test("shim execs with a terminal, resized through the exec's pid-file name", async () => {
    const s = await shimmed(as, FOREVER);
    await s.start();
    const { client: c, pidFile } = s.exec(1 | 2, ["sh", "-c", "tty; read x; stty size"], true);
    expect(await c.until(() => c.text().includes("/dev/pts/"))).toBe(true);
    expect(await s.resize(12, 34, pidFile)).toBe(0);
    expect(await s.resize(12, 34, "exec-none.pid")).toBe(1);
    c.send("\n");
    expect(await c.finished()).toBe(0);
    expect(c.text().replaceAll("\r\n", "\n")).toMatch(/^\/dev\/pts\/\d+\n\n12 34\n$/);
    // A second terminal in the same container, once the first has closed.
    const again = s.exec(2, ["tty"], true).client;
    expect({ code: await again.finished(), out: again.text() }).toEqual({
      code: 0,
      out: expect.stringMatching(/^\/dev\/pts\/\d+\r\n$/),
    });
  });

  test("shim rotates its log by size and keeps --log-max-files files", async () => {
    const script = "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); done";
    const s = await shimmed(as, ["sh", "-c", script], {
      flags: ["--log", "out.log", "--log-max-size", "400", "--log-max-files", "3"],
    });
    const w = s.wait();
    await s.start();
    expect(await w.finished()).toBe(0);
    await s.gone();
    const files = fs.readdirSync(s.dir).filter((f) => f.startsWith("out.log")).sort();
    const lines = ["out.log.2", "out.log.1", "out.log"]
      .flatMap((f) => logEntries(s, f).map((e) => e.log));
    const first = Number(/line-(\d+)/.exec(lines[0])?.[1]);
    expect({
      files,
      sizes: files.every((f) => fs.statSync(s.file(f)).size <= 400),
      lines,
    }).toEqual({
      files: ["out.log", "out.log.1", "out.log.2"],
      sizes: true,
      lines: Array.from({ length: 40 - first }, (_, i) => `line-${first + i}\n`),
    });
    expect(first).toBeGreaterThan(0);
  });

  test("shim killed outright leaves the container running and no exit.json", async () => {
    const s = await shimmed(as, FOREVER);
    await s.start();
    const pid = Number(s.read("init.pid"));
    process.kill(s.shimPid, "SIGKILL");
    expect(await s.gone()).toBe(true);
    await Bun.sleep(200);
    expect({
      container: isRunning(pid),
      exitJson: fs.existsSync(s.file("exit.json")),
      state: (await s.rt.state(s.id))?.status,
    }).toEqual({ container: true, exitJson: false, state: "running" });
  });
}

describe.skipIf(!!noRootless)("rootless", () => shimTests("rootless"));
describe.skipIf(!!noRoot)("root", () => shimTests("root"));

describe.skipIf(!!noRoot)("shim, once", () => {
  const as: As = "root";

  test("shim drops a client that does not read, and the others get everything", async () => {
    // 2.5 MiB in one burst: more than a client may owe.
    const script = "sleep 0.3; dd if=/dev/zero bs=65536 count=40 2>/dev/null | tr '\\0' x; echo";
    const s = await shimmed(as, ["sh", "-c", script]);
    const reader = await s.attach(2);
    const stuck = await s.attach(2);
    stuck.sock.pause();
    await Bun.sleep(100);
    await s.start();
    expect(await reader.finished(15_000)).toBe(0);
    expect(await s.gone()).toBe(true);
    const log = logEntries(s);
    expect({
      got: reader.text().length,
      stuckExit: stuck.exit(),
      log: log.map((e) => e.log).join("").length,
      longest: Math.max(...log.map((e) => e.log.length)),
    }).toEqual({
      got: 65536 * 40 + 1,
      stuckExit: undefined,
      log: 65536 * 40 + 1,
      longest: 16384,
    });
  });

  test("shim ends soon after the first process although another holds its stdout open", async () => {
    // Without a pid namespace the background sleep outlives the first process, pipes and all.
    const marker = `shim-bg-${process.pid}-${Date.now()}`;
    const s = await shimmed(as, ["sh", "-c", `sh -c 'sleep 30; : ${marker}' & echo hi`], {
      config: (spec) => {
        spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== "pid");
      },
    });
    tidy.add(() => {
      for (const pid of pidsWithArg(marker)) {
        const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
        for (const kid of kids.split(" ").filter(Boolean)) killIfAlive(Number(kid));
        killIfAlive(pid);
      }
    });
    const c = await s.attach(2);
    await s.start();
    expect({ code: await c.finished(), out: c.text(), gone: await s.gone() }).toEqual({
      code: 0,
      out: "hi\n",
      gone: true,
    });
    expect(pidsWithArg(marker).length).toBe(1);
  });

  test("shim with one log file empties it when it is full", async () => {
    const script = "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); done";
    const s = await shimmed(as, ["sh", "-c", script], { flags: ["--log-max-size", "400"] });
    const w = s.wait();
    await s.start();
    expect(await w.finished()).toBe(0);
    await s.gone();
    const lines = logEntries(s).map((e) => e.log);
    expect({
      files: fs.readdirSync(s.dir).filter((f) => f.startsWith("container.log")),
      size: fs.statSync(s.file("container.log")).size <= 400,
      last: lines.at(-1),
      count: lines.length < 40,
    }).toEqual({ files: ["container.log"], size: true, last: "line-39\n", count: true });
  });

  test("shim says error with the runtime's status when create fails, leaving no socket", async () => {
    const s = await shimmed(as, FOREVER, { bundleDir: "/nonexistent-bundle" });
    expect(await waitUntil(() => !fs.existsSync(s.file("attach.sock")))).toBe(true);
    expect({
      stdout: s.r.stdout,
      left: fs.readdirSync(s.dir).filter((f) => f.endsWith(".sock") || f === "shim.pid"),
      log: fs.readFileSync(s.file("runtime.log"), "utf8").includes("nonexistent-bundle"),
    }).toEqual({ stdout: "error 1\n", left: [], log: true });
  });

  test("shim is a hidden verb with its own usage and one-line errors", async () => {
    const help = await run(["--help"], { as });
    const usage = await run(["shim", "--help"], { as });
    const bad = await run(["shim", "--bogus", "x", "--", "true"], { as });
    const noDir = await runCommand([TINYC, "shim", "/nonexistent", "--", "true"], { as });
    expect({
      listed: help.stdout.includes("shim"),
      usage: [usage.code, usage.stdout.startsWith("usage: tinyc-shim")],
      bad: [bad.code, bad.stderr],
      noDir: [noDir.code, noDir.stderr.split("\n").length, noDir.stderr.startsWith("tinyc-shim: ")],
    }).toEqual({
      listed: false,
      usage: [0, true],
      bad: [2, 'tinyc-shim: unknown flag "--bogus" (or it needs a value)\n'],
      noDir: [1, 2, true],
    });
  });
});
