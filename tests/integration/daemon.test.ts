// `tinyc daemon` driven by the real docker CLI, rootless: the daemon runs as the test user on a
// socket in its own folder, with its own data root, and the docker CLI (with a config folder of
// its own) talks to nothing else. Its only image is busybox:local, imported from the fixture,
// and every run says --pull=never: no public registry is ever asked.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Subprocess } from "bun";
import {
  type As,
  FIXTURES,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  runCommand,
  scratchDir,
  spawnAs,
  tinycSkipReason,
  type RunResult,
} from "./harness";
import { isRunning, waitUntil } from "./runkit";

const DOCKER = Bun.which("docker", { PATH: "/usr/local/bin:/usr/bin:/bin" });
const noDaemon =
  tinycSkipReason() ?? fixtureSkipReason("busybox") ?? requireUserns() ??
  (DOCKER ? null : "no docker CLI (Debian's docker.io)") ??
  (Bun.which("curl") ? null : "no curl");
if (noDaemon) console.warn(`skipping daemon tests: ${noDaemon}`);

const AS: As = "rootless";
const IMAGE = "busybox:local";

interface Daemon {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  sock: string;
  home: string;
  data: string;
  xdg: string;
}

let d: Daemon;

function env(): Record<string, string> {
  return {
    TINYC_DATA: d.data,
    XDG_RUNTIME_DIR: d.xdg,
    HOME: d.home,
    XDG_CONFIG_HOME: path.join(d.home, ".config"),
    DOCKER_HOST: `unix://${d.sock}`,
    DOCKER_CONFIG: path.join(d.home, ".docker"),
  };
}

function startDaemon(): Subprocess<"ignore", "pipe", "pipe"> {
  return spawnAs([TINYC, "daemon", "--host", `unix://${d.sock}`, "--log-max-size", "4096"], { as: AS, env: env() });
}

async function waitForSocket(): Promise<void> {
  const ok = await waitUntil(() => {
    const r = Bun.spawnSync(["curl", "-s", "--unix-socket", d.sock, "http://d/_ping"]);
    return r.exitCode === 0 && r.stdout.toString() === "OK";
  }, 10_000);
  if (!ok) throw new Error(`the daemon did not answer on ${d.sock}`);
}

function docker(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return runCommand([DOCKER!, ...args], { as: AS, env: env(), input: opts.input, timeoutMs: opts.timeoutMs ?? 30_000 });
}

async function ok(args: string[], input?: string): Promise<string> {
  const r = await docker(args, { input });
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A raw API call through curl: status line code and body. */
async function api(method: string, url: string, body?: string, headers: string[] = []): Promise<{ status: number; body: string }> {
  const args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", d.sock, "-X", method];
  for (const h of headers) args.push("-H", h);
  if (body !== undefined) args.push("-H", "Content-Type: application/json", "--data-binary", "@-");
  const r = await runCommand([...args, `http://d${url}`], { as: AS, input: body });
  const text = r.stdout;
  const nl = text.lastIndexOf("\n");
  return { status: Number(text.slice(nl + 1)), body: text.slice(0, nl) };
}

function containerDirs(): string[] {
  try {
    return fs.readdirSync(path.join(d.data, "containers"));
  } catch {
    return [];
  }
}

beforeAll(async () => {
  if (noDaemon) return;
  const home = scratchDir(AS, "daemon-home");
  const xdg = scratchDir(AS, "daemon-xdg");
  fs.chmodSync(xdg, 0o700);
  d = { proc: undefined as never, sock: path.join(xdg, "tinyc", "docker.sock"), home, data: path.join(home, "data"), xdg };
  const tarFile = path.join(scratchDir("rootless", "daemon-img"), "busybox.tar");
  const t = Bun.spawnSync(["tar", "-C", path.join(FIXTURES, "busybox"), "-cf", tarFile, "."]);
  if (t.exitCode !== 0) throw new Error("tar of the busybox fixture failed");
  const imp = await runCommand([TINYC, "import", tarFile, IMAGE], { as: AS, env: env() });
  if (imp.code !== 0) throw new Error(`import: ${imp.stderr}`);
  d.proc = startDaemon();
  await waitForSocket();
}, 60_000);

afterAll(async () => {
  if (noDaemon) return;
  // Containers outlive the daemon by design: remove them through it, then end it.
  if (d.proc.exitCode === null) {
    const ids = (await docker(["ps", "-aq"])).stdout.split("\n").filter(Boolean);
    if (ids.length) await docker(["rm", "-f", ...ids]);
    d.proc.kill("SIGTERM");
    await d.proc.exited;
  }
  cleanup();
}, 60_000);

const run = (args: string[], input?: string) => docker(["run", "--pull=never", ...args], { input });

describe.skipIf(!!noDaemon)("the docker CLI against tinyc daemon, rootless", () => {
  test("docker version and info name tinyc", async () => {
    const v = await ok(["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"]);
    expect(v).toMatch(/^\S+ 1\.41\n$/);
    const info = await ok(["info", "--format", "{{.OSType}} {{.Images}}"]);
    expect(info).toBe("linux 1\n");
  });

  test("run --rm: the output, the status, and nothing left", async () => {
    const before = containerDirs().length;
    const r = await run(["--rm", IMAGE, "sh", "-c", "echo out; echo err >&2"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    expect(containerDirs().length).toBe(before);
    expect(await ok(["ps", "-aq"])).toBe("");
  });

  test("the exit status is the container's; 125, 126 and 127 as docker gives them", async () => {
    expect((await run(["--rm", IMAGE, "sh", "-c", "exit 3"])).code).toBe(3);
    const missing = await run(["--rm", IMAGE, "no-such-command"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("executable file not found");
    const noImage = await run(["--rm", "no-such-image:1"]);
    expect(noImage.code).toBe(125);
    expect(noImage.stderr).toContain("No such image: no-such-image:1");
    expect(await ok(["ps", "-aq"])).toBe("");
  });

  test("run -i: stdin that arrives before start, with its end", async () => {
    const r = await run(["-i", "--rm", IMAGE, "sh", "-c", "cat; echo done"], "hi\nthere\n");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hi\nthere\ndone\n");
  });

  test("run -d, logs, ps, stop, rm", async () => {
    const script = 'trap "echo bye; exit 0" TERM; echo started; while true; do sleep 0.1; done';
    const id = (await ok(["run", "--pull=never", "-d", "--name", "web", "--label", "role=web", IMAGE, "sh", "-c", script])).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await waitUntilLogs("web", "started\n");
    const ps = await ok(["ps", "--format", "{{.Names}} {{.Status}}"]);
    expect(ps).toMatch(/^web Up /m);
    expect(await ok(["ps", "-q", "--filter", "label=role=web"])).toBe(`${id.slice(0, 12)}\n`);
    expect(await ok(["ps", "-q", "--filter", "label=role=db"])).toBe("");
    expect(await ok(["inspect", "-f", "{{.State.Running}} {{.Name}} {{.Config.Image}}", "web"])).toBe(`true /web ${IMAGE}\n`);
    expect((await docker(["stop", "-t", "5", "web"])).code).toBe(0);
    expect(await ok(["logs", "web"])).toBe("started\nbye\n");
    expect(await ok(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web"])).toBe("exited 0\n");
    expect(await ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"])).toMatch(/^web Exited \(0\)/m);
    expect((await docker(["rm", "web"])).code).toBe(0);
    expect((await docker(["inspect", "web"])).code).not.toBe(0);
  });

  test("logs --tail and -t; logs -f follows to the end", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "counter", IMAGE, "sh", "-c", "for i in 1 2 3 4 5; do echo $i; sleep 0.2; done"]);
    const f = await docker(["logs", "-f", "counter"], { timeoutMs: 15_000 });
    expect(f.stdout).toBe("1\n2\n3\n4\n5\n");
    expect(await ok(["logs", "--tail", "2", "counter"])).toBe("4\n5\n");
    const stamped = await ok(["logs", "-t", "--tail", "1", "counter"]);
    expect(stamped).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z 5\n$/);
    expect((await docker(["wait", "counter"])).stdout).toBe("0\n");
    await ok(["rm", "counter"]);
  });

  test("exec: output, status, stdin, user and workdir", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "ex", IMAGE, "sleep", "60"]);
    const r = await docker(["exec", "ex", "sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("hi\n");
    expect(r.stderr).toBe("oops\n");
    expect(await ok(["exec", "-i", "ex", "cat"], "piped\n")).toBe("piped\n");
    expect(await ok(["exec", "-u", "1000:1000", "-w", "/tmp", "-e", "X=y", "ex", "sh", "-c", "id -u; pwd; echo $X"])).toBe("1000\n/tmp\ny\n");
    expect((await docker(["exec", "ex", "no-such-command"])).code).toBe(127);
    const noUser = await docker(["exec", "-u", "nosuch", "ex", "id"]);
    expect(noUser.code).toBe(126);
    expect(noUser.stderr).toContain("nosuch");
    await ok(["rm", "-f", "ex"]);
  });

  test("kill: SIGKILL by default (137), -s passes another signal", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "killme", IMAGE, "sh", "-c", 'trap "echo usr1" USR1; while true; do sleep 0.1; done']);
    await ok(["kill", "-s", "USR1", "killme"]);
    await waitUntilLogs("killme", "usr1\n");
    await ok(["kill", "killme"]);
    expect((await docker(["wait", "killme"])).stdout).toBe("137\n");
    const again = await docker(["kill", "killme"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("is not running");
    await ok(["rm", "killme"]);
  });

  test("restart policy on-failure:2 restarts twice, then stays exited", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "flaky", "--restart", "on-failure:2", IMAGE, "sh", "-c", "echo try; exit 1"]);
    let out = "";
    for (let i = 0; i < 100; i++) {
      out = await ok(["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky"]);
      if (out === "2 exited\n") break;
      await Bun.sleep(100);
    }
    expect(out).toBe("2 exited\n");
    expect(await ok(["logs", "flaky"])).toBe("try\ntry\ntry\n");
    await ok(["rm", "flaky"]);
  });

  test("export writes the container's files as a tar stream", async () => {
    await ok(["create", "--name", "exp", IMAGE, "true"]);
    const r = await runCommand(["sh", "-c", `${DOCKER} export exp | tar -tf - | grep -x './bin/sh'`], { as: AS, env: env() });
    expect(r.stdout).toBe("./bin/sh\n");
    await ok(["rm", "exp"]);
  });

  test("twenty docker runs at once", async () => {
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => run(["--rm", IMAGE, "echo", `run ${i}`])),
    );
    runs.forEach((r, i) => {
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`run ${i}\n`);
    });
    expect(await ok(["ps", "-aq"])).toBe("");
  }, 60_000);

  test("bad requests get a 4xx and a message; the daemon stays up", async () => {
    const bad = await api("POST", "/v1.41/containers/create", "{not json");
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).message).toContain("malformed JSON");
    const noImage = await api("POST", "/v1.41/containers/create", JSON.stringify({ Cmd: ["true"] }));
    expect(noImage.status).toBe(400);
    const wrongType = await api("POST", "/v1.41/containers/create", JSON.stringify({ Image: IMAGE, Cmd: "true; rm -rf /" }));
    expect(wrongType.status).toBe(400);
    const badLabels = await api("POST", "/v1.41/containers/create", JSON.stringify({ Image: IMAGE, Cmd: ["true"], Labels: { a: 1 } }));
    expect(badLabels.status).toBe(400);
    const badRetries = await api("POST", "/v1.41/containers/create",
      JSON.stringify({ Image: IMAGE, Cmd: ["true"], HostConfig: { RestartPolicy: { Name: "on-failure", MaximumRetryCount: "x" } } }));
    expect(badRetries.status).toBe(400);
    const traversal = await api("GET", "/v1.41/containers/..%2F..%2Fetc/json");
    expect(traversal.status).toBe(404);
    const badName = await api("POST", "/v1.41/containers/create?name=../x", JSON.stringify({ Image: IMAGE }));
    expect(badName.status).toBe(400);
    const huge = await api("POST", "/v1.41/containers/create", JSON.stringify({ Image: IMAGE, Env: ["X=" + "a".repeat(5 * 1024 * 1024)] }));
    expect(huge.status).toBe(413);
    const unknown = await api("GET", "/v1.41/no/such/route");
    expect(unknown.status).toBe(404);
    const volumes = await api("GET", "/v1.41/volumes");
    expect(volumes.status).toBe(501);
    expect(JSON.parse(volumes.body).message).toContain("not supported");
    const tooNew = await api("GET", "/v9.99/version");
    expect(tooNew.status).toBe(400);
    expect((await api("GET", "/_ping")).body).toBe("OK");
  });

  test("a client that goes away mid-attach leaves the container running", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "att", IMAGE, "sh", "-c", "while true; do echo tick; sleep 0.1; done"]);
    const p = spawnAs([DOCKER!, "attach", "att"], { as: AS, env: env() });
    await Bun.sleep(500);
    p.kill("SIGKILL");
    await p.exited;
    expect(await ok(["inspect", "-f", "{{.State.Running}}", "att"])).toBe("true\n");
    await ok(["rm", "-f", "att"]);
  });

  test("containers outlive a daemon killed with SIGKILL; the next one finds them", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "survivor", IMAGE, "sh", "-c", 'trap "exit 0" TERM; echo up; while true; do sleep 0.1; done']);
    await waitUntilLogs("survivor", "up\n");
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    d.proc = startDaemon();
    await waitForSocket();
    expect(await ok(["ps", "--format", "{{.Names}}"])).toContain("survivor\n");
    expect(await ok(["logs", "survivor"])).toBe("up\n");
    expect((await docker(["stop", "survivor"])).code).toBe(0);
    expect(await ok(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "survivor"])).toBe("exited 0\n");
    await ok(["rm", "survivor"]);
  }, 60_000);

  test("a shim killed with SIGKILL: the container is stopped, with the reason", async () => {
    const id = (await ok(["run", "--pull=never", "-d", IMAGE, "sleep", "60"])).trim();
    const shimPid = Number(fs.readFileSync(path.join(d.data, "containers", id, "shim.pid"), "utf8"));
    const initPid = Number((await ok(["inspect", "-f", "{{.State.Pid}}", id])).trim());
    expect(isRunning(initPid)).toBe(true);
    process.kill(shimPid, "SIGKILL");
    let st = "";
    for (let i = 0; i < 50 && !st.startsWith("exited"); i++) {
      await Bun.sleep(100);
      st = await ok(["inspect", "-f", "{{.State.Status}} {{.State.Error}}", id]);
    }
    expect(st).toContain("exited");
    expect(st).toContain("shim");
    expect(await waitUntil(() => !isRunning(initPid), 5000)).toBe(true);
    await ok(["rm", id]);
  });
});

async function waitUntilLogs(name: string, want: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await docker(["logs", name]);
    if (r.stdout.includes(want)) return;
    await Bun.sleep(100);
  }
  throw new Error(`no ${JSON.stringify(want)} in the logs of ${name}`);
}

describe.skipIf(!!noDaemon)("more of the docker CLI against tinyc daemon", () => {
  test("run -t: a terminal, raw output, and the size the CLI gives", async () => {
    const cmd = `stty rows 24 cols 80; ${DOCKER} run --rm -t --pull=never ${IMAGE} sh -c 'tty; stty size'`;
    const r = await runCommand(["script", "-qec", cmd, "/dev/null"], { as: AS, env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("/dev/pts/0");
    expect(r.stdout).toContain("24 80");
  });

  test("-p publishes a port of the container on the host", async () => {
    const port = 20000 + (process.pid % 20000);
    await ok(["run", "--pull=never", "-d", "--name", "httpd", "-p", `127.0.0.1:${port}:8080`, IMAGE,
      "sh", "-c", "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www"]);
    let body = "";
    for (let i = 0; i < 50 && body !== "served\n"; i++) {
      const r = Bun.spawnSync(["curl", "-s", "--max-time", "2", `http://127.0.0.1:${port}/`]);
      body = r.stdout.toString();
      if (body !== "served\n") await Bun.sleep(100);
    }
    expect(body).toBe("served\n");
    expect(await ok(["ps", "--format", "{{.Ports}}", "--filter", "name=httpd"])).toContain(`127.0.0.1:${port}->8080/tcp`);
    await ok(["rm", "-f", "httpd"]);
  });

  test("pause, unpause, rename, exec -d and the events they make", async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await ok(["run", "--pull=never", "-d", "--name", "ev", IMAGE, "sleep", "60"]);
    // Freezing needs a cgroup, which a rootless container gets only where v2 is delegated.
    const paused = await docker(["pause", "ev"]);
    if (paused.code === 0) {
      expect(await ok(["inspect", "-f", "{{.State.Status}}", "ev"])).toBe("paused\n");
      const refused = await docker(["exec", "ev", "true"]);
      expect(refused.code).not.toBe(0);
      await ok(["unpause", "ev"]);
    } else {
      expect(paused.stderr).toContain("not supported");
    }
    await ok(["rename", "ev", "ev2"]);
    await ok(["exec", "-d", "ev2", "sh", "-c", "echo detached > /tmp/mark"]);
    let mark = "";
    for (let i = 0; i < 30 && mark !== "detached\n"; i++) {
      mark = (await docker(["exec", "ev2", "cat", "/tmp/mark"])).stdout;
      if (mark !== "detached\n") await Bun.sleep(100);
    }
    expect(mark).toBe("detached\n");
    await ok(["rm", "-f", "ev2"]);
    const until = Math.ceil(Date.now() / 1000) + 1;
    const events = await ok(["events", "--since", String(since), "--until", String(until), "--format", "{{.Action}}"]);
    const actions = events.trim().split("\n");
    const want = ["create", "start", "rename", "kill", "die", "destroy", ...(paused.code === 0 ? ["pause", "unpause"] : [])];
    for (const a of want) {
      expect(actions).toContain(a);
    }
  });

  test("restart always: a container started again when a new daemon comes up", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "always", "--restart", "always", IMAGE, "sh", "-c", "echo run; sleep 60"]);
    await waitUntilLogs("always", "run\n");
    const pid = Number((await ok(["inspect", "-f", "{{.State.Pid}}", "always"])).trim());
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    process.kill(pid, "SIGKILL");
    await waitUntil(() => !isRunning(pid), 5000);
    d.proc = startDaemon();
    await waitForSocket();
    let state = "";
    for (let i = 0; i < 50 && !state.startsWith("running"); i++) {
      state = await ok(["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "always"]);
      if (!state.startsWith("running")) await Bun.sleep(100);
    }
    expect(state).toMatch(/^running /);
    await ok(["rm", "-f", "always"]);
  }, 60_000);

  test("top lists the container's processes; network ls the three networks", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "topped", IMAGE, "sleep", "60"]);
    const top = await ok(["top", "topped", "-o", "pid,comm"]);
    expect(top).toMatch(/^PID\s+COMMAND\n\d+\s+sleep\n$/);
    await ok(["rm", "-f", "topped"]);
    expect(await ok(["network", "ls", "--format", "{{.Name}}"])).toBe("bridge\nhost\nnone\n");
    const missing = await docker(["network", "inspect", "nosuchnet"]);
    expect(missing.code).not.toBe(0);
  });

  test("logs are rotated by size (--log-max-size 4096, 3 files) and read across the files", async () => {
    await ok(["run", "--pull=never", "--name", "chatty", IMAGE, "sh", "-c", "i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1)); done"]);
    const id = (await ok(["inspect", "-f", "{{.Id}}", "chatty"])).trim();
    const files = fs.readdirSync(path.join(d.data, "containers", id)).filter((f) => f.startsWith("container.log")).sort();
    expect(files).toEqual(["container.log", "container.log.1", "container.log.2"]);
    const lines = (await ok(["logs", "chatty"])).trim().split("\n");
    // The oldest lines are gone with the oldest file; what is left is whole and in order.
    expect(lines.length).toBeLessThan(300);
    expect(lines.at(-1)).toBe("line-300");
    const first = Number(lines[0].slice(5));
    expect(lines).toEqual(Array.from({ length: 301 - first }, (_, i) => `line-${first + i}`));
    await ok(["rm", "chatty"]);
  });

  test("names are the store's: tinyc run and docker run cannot both take one", async () => {
    await ok(["run", "--pull=never", "-d", "--name", "clash", IMAGE, "sleep", "60"]);
    const cli = await runCommand([TINYC, "run", "--pull=never", "-d", "--name", "clash", IMAGE, "true"], { as: AS, env: env() });
    expect(cli.code).toBe(125);
    const rm = await runCommand([TINYC, "rm", "-f", "clash"], { as: AS, env: env() });
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain("docker rm");
    // Three removals at once: one removes it, none fails with the daemon's own error.
    const id = (await ok(["inspect", "-f", "{{.Id}}", "clash"])).trim();
    const rms = await Promise.all([docker(["rm", "-f", "clash"]), docker(["rm", "-f", id]), docker(["rm", "-f", "clash"])]);
    expect(rms.some((r) => r.code === 0)).toBe(true);
    for (const r of rms) expect(r.stderr).not.toContain("ENOENT");
    expect(await ok(["ps", "-aq"])).toBe("");
  });

  test("one daemon a store; a --rm container left created is removed by the next daemon", async () => {
    const other = scratchDir(AS, "daemon-other");
    fs.chmodSync(other, 0o700);
    const second = await runCommand([TINYC, "daemon", "--host", `unix://${other}/d.sock`], { as: AS, env: env(), timeoutMs: 10_000 });
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain("another tinyc daemon serves the store");
    await ok(["create", "--rm", "--name", "leftover", IMAGE, "true"]);
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    d.proc = startDaemon();
    await waitForSocket();
    expect((await docker(["inspect", "leftover"])).code).not.toBe(0);
  }, 60_000);

  test("ps filters as docker's: name is a pattern, ancestor any name of the image, -l the newest", async () => {
    await ok(["tag", IMAGE, "other-name:1"]);
    await ok(["run", "--pull=never", "--name", "filtered", IMAGE, "true"]);
    expect(await ok(["ps", "-aq", "--filter", "name=^/filt.*d$"])).not.toBe("");
    expect(await ok(["ps", "-aq", "--filter", "name=^/nomatch$"])).toBe("");
    expect(await ok(["ps", "-aq", "--filter", "ancestor=other-name:1"])).toContain(
      (await ok(["inspect", "-f", "{{.Id}}", "filtered"])).slice(0, 12));
    expect(await ok(["ps", "-l", "--format", "{{.Names}}"])).toBe("filtered\n");
    expect((await docker(["ps", "--filter", "status=bogus"])).code).not.toBe(0);
    expect(await ok(["logs", "--tail", "-1", "filtered"])).toBe("");
    await ok(["rm", "filtered"]);
    await ok(["rmi", "other-name:1"]);
  });

  test("rmi refuses an image a container uses", async () => {
    await ok(["create", "--name", "user-of-image", IMAGE, "true"]);
    const r = await docker(["rmi", IMAGE]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("conflict");
    await ok(["rm", "user-of-image"]);
    expect(await ok(["images", "-q", IMAGE])).not.toBe("");
  });
});
