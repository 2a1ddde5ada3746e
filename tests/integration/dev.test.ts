// `--userns keep-id` and `tinyc dev`: the caller's ids inside the container, files made in the
// bound folder that belong to the caller on the host, the subordinate range mapped around them
// (so root in the container can still install a package and give files away), and dev
// containers that shells share, that the last shell out stops, and that --keep and --stop rule.
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
  rootless,
  run,
  runCommand,
  scratchDir,
  tinycSkipReason,
} from "./harness";
import { killIfAlive, subuidRange } from "./runkit";
import { Tmux, tmuxSkipReason } from "./tmux";

const skip = tinycSkipReason() ?? fixtureSkipReason("busybox") ?? requireUserns();
const noDebian = skip ?? fixtureSkipReason("debian") ?? (Bun.which("dpkg-deb") ? null : "no dpkg-deb");
const noTmux = skip ?? tmuxSkipReason();
for (const [what, reason] of [["keep-id and dev tests", skip], ["the dpkg test", noDebian],
  ["dev tests under tmux", noTmux]] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

const as: As = "rootless";
let dir = "";
let proj = "";
let home = "";
let env: Record<string, string> = {};

function tinyc(args: string[], cwd = proj) {
  return run(args, { as, env, cwd, timeoutMs: 30_000 });
}

async function ok(args: string[], cwd = proj) {
  const r = await tinyc(args, cwd);
  if (r.code !== 0) throw new Error(`tinyc ${args.join(" ")}: ${r.code} ${r.stderr}`);
  return r;
}

async function psRows(): Promise<{ name: string; status: string }[]> {
  const r = await ok(["ps", "-a", "--format", "json"]);
  const text = r.stdout.trim();
  if (!text) return [];
  const rows: any[] = text.startsWith("[") ? JSON.parse(text) : text.split("\n").map((l) => JSON.parse(l));
  return rows.map((o) => ({ name: String(o.name ?? o.Names), status: String(o.status ?? o.State) }));
}

const devRows = async () => (await psRows()).filter((r) => r.name.startsWith("dev-proj-"));

function owner(p: string): string {
  const st = fs.statSync(p);
  return `${st.uid}:${st.gid}`;
}

beforeAll(async () => {
  if (skip) return;
  const user = rootless()!;
  dir = scratchDir(as, "dev");
  const xdg = scratchDir(as, "dev-xdg");
  fs.chmodSync(xdg, 0o700);
  proj = path.join(dir, "proj");
  home = path.join(dir, "home");
  for (const d of [proj, home]) {
    fs.mkdirSync(d, { mode: 0o755 });
    fs.chownSync(d, user.uid, user.gid);
  }
  env = { TINYC_DATA: path.join(dir, "data"), XDG_RUNTIME_DIR: xdg, HOME: home, TERM: "xterm",
    LANG: "C.UTF-8", SHELL: "/bin/sh" };
  const tar = path.join(dir, "busybox.tar");
  const r = Bun.spawnSync(["tar", "--numeric-owner", "--owner=0", "--group=0", "-C",
    path.join(FIXTURES, "busybox"), "-cf", tar, "."]);
  if (r.exitCode !== 0) throw new Error("tar of the busybox fixture failed");
  fs.chmodSync(tar, 0o644);
  await ok(["import", tar, "bb:1"], dir);
  if (!noDebian) await ok(["import", path.join(FIXTURES, "debian.tar"), "deb:1"], dir);
}, 60_000);

afterAll(async () => {
  if (!skip) {
    const r = await tinyc(["list", "--format", "json"], dir);
    for (const c of JSON.parse(r.stdout || "[]")) if (c.pid > 0) killIfAlive(c.pid);
  }
  cleanup();
});

describe.skipIf(!!skip)("rootless", () => {
  test("run --userns keep-id runs as the caller, with the subordinate ids mapped around it", async () => {
    const user = rootless()!;
    // The image's own files keep their owners (root's stay root's), whatever the mapping.
    const script = "id -u; id -g; id -un; touch kept; stat -c %u:%g /bin/busybox; cat /proc/self/uid_map";
    const r = await ok(["run", "--rm", "--pull=never", "--userns", "keep-id", "-v", `${proj}:${proj}`,
      "-w", proj, "bb:1", "sh", "-c", script]);
    const sub = subuidRange(user.user, user.uid);
    const lines = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines).toEqual([
      String(user.uid),
      String(user.gid),
      user.user,
      "0:0",
      `0 ${sub.start} ${user.uid}`,
      `${user.uid} ${user.uid} 1`,
      `${user.uid + 1} ${sub.start + user.uid} ${sub.count - user.uid}`,
    ]);
    expect(owner(path.join(proj, "kept"))).toBe(`${user.uid}:${user.gid}`);
    const bad = await tinyc(["run", "--rm", "--pull=never", "--userns", "host", "bb:1", "true"]);
    expect({ code: bad.code, err: bad.stderr }).toEqual({
      code: 125,
      err: 'tinyc: --userns "host": only keep-id is supported\n',
    });
  });

  test.skipIf(!!noDebian)("run --userns keep-id -u 0 of debian installs a .deb and gives a file to 1000", async () => {
    const pkg = path.join(dir, "pkg");
    const made = await runCommand(["sh", "-c", [
      `mkdir -p ${pkg}/DEBIAN ${pkg}/usr/share/tinyc-hello`,
      `printf 'Package: tinyc-hello\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: test <test@example.invalid>\\nDescription: a test package\\n' > ${pkg}/DEBIAN/control`,
      `echo hello > ${pkg}/usr/share/tinyc-hello/hello`,
      `dpkg-deb --root-owner-group --build ${pkg} ${proj}/hello.deb > /dev/null`,
    ].join(" && ")], { as, env, cwd: dir });
    expect(made.code).toBe(0);
    const script = [
      "dpkg -i /p/hello.deb > /dev/null",
      "dpkg-query -W -f '${Status}\\n' tinyc-hello",
      "cat /usr/share/tinyc-hello/hello",
      "touch /tmp/x && chown 1000:1000 /tmp/x && stat -c %u:%g /tmp/x",
      "stat -c %U:%G%A /usr/bin/su /etc/shadow",
      "id -u",
    ].join(" && ");
    const r = await tinyc(["run", "--rm", "--pull=never", "--userns", "keep-id", "-u", "0", "-v",
      `${proj}:/p`, "deb:1", "sh", "-c", script]);
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({
      code: 0,
      out: "install ok installed\nhello\n1000:1000\nroot:root-rwsr-xr-x\nroot:shadow-rw-r-----\n0\n",
      err: "",
    });
  }, 60_000);

  test("dev runs a command in the folder as the caller, with HOME and the locale, then removes its container", async () => {
    const user = rootless()!;
    const script = 'id -u; pwd; echo "$HOME|$LANG|$TERM"; test -d "$HOME" && echo home-ok; touch by-dev';
    const r = await ok(["dev", "bb:1", "sh", "-c", script]);
    expect(r.stdout).toBe(`${user.uid}\n${proj}\n${home}|C.UTF-8|xterm\nhome-ok\n`);
    expect(owner(path.join(proj, "by-dev"))).toBe(`${user.uid}:${user.gid}`);
    expect(await devRows()).toEqual([]);
    const failed = await tinyc(["dev", "bb:1", "sh", "-c", "exit 9"]);
    expect(failed.code).toBe(9);
  });

  test("dev takes run's network flags: a private network with /etc/hosts of its own", async () => {
    const r = await ok(["dev", "--network", "private", "--add-host", "db:10.0.2.9", "bb:1", "sh", "-c",
      "grep -c '^10.0.2.9[[:space:]]db$' /etc/hosts; ip -o link show eth0 >/dev/null && echo eth0"]);
    expect(r.stdout).toBe("1\neth0\n");
    expect(await devRows()).toEqual([]);
  });

  test("--userns keep-id publishes ports on a private network", async () => {
    const port = 21000 + (process.pid % 20000);
    await ok(["run", "-d", "--pull=never", "--userns", "keep-id", "--name", "kidweb", "-p", `127.0.0.1:${port}:8080`,
      "bb:1", "sh", "-c", "mkdir -p /tmp/w && echo kept > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]);
    let body = "";
    for (let i = 0; i < 50 && body !== "kept\n"; i++) {
      body = Bun.spawnSync(["curl", "-s", "--max-time", "2", `http://127.0.0.1:${port}/`]).stdout.toString();
      if (body !== "kept\n") await Bun.sleep(100);
    }
    expect(body).toBe("kept\n");
    await ok(["rm", "-f", "kidweb"]);
  });

  test("dev --keep leaves its container running for the next entry; dev --stop stops it", async () => {
    await ok(["dev", "--keep", "bb:1", "sh", "-c", "echo one > /tmp/mark"]);
    const rows = await devRows();
    expect(rows.map((r) => r.status)).toEqual(["running"]);
    expect(rows[0].name).toMatch(/^dev-proj-[0-9a-f]{8}-[0-9a-f]{4}$/);
    // The same folder and image: the same container, whose /tmp still has the mark.
    const again = await ok(["dev", "bb:1", "cat", "/tmp/mark"]);
    expect(again.stdout).toBe("one\n");
    expect((await devRows()).map((r) => r.status)).toEqual(["running"]);
    const stop = await ok(["dev", "--stop"]);
    expect(stop.stdout).toBe(`${rows[0].name}\n`);
    expect(await devRows()).toEqual([]);
    const none = await tinyc(["dev", "--stop"]);
    expect(none.code).toBe(1);
  });

  test("dev runs a bundle's rootfs too", async () => {
    const user = rootless()!;
    const bundle = await makeBundle({ rootfs: "busybox", owner: as });
    try {
      const r = await ok(["dev", bundle.dir, "sh", "-c", `id -u; pwd; grep -c ':x:${user.uid}:' /etc/passwd`]);
      expect(r.stdout).toBe(`${user.uid}\n${proj}\n1\n`);
      expect(await devRows()).toEqual([]);
    } finally {
      bundle.cleanup();
    }
  });

  test("exec joins a container with a cgroup namespace of its own, as every one has on cgroup v2", async () => {
    const bundle = await makeBundle({
      rootfs: "busybox",
      owner: as,
      args: ["sleep", "100"],
      config: (spec) => spec.linux.namespaces.push({ type: "cgroup" }),
    });
    try {
      const id = `cg-${process.pid}`;
      await ok(["run", "-d", bundle.dir, id]);
      const e = await tinyc(["exec", id, "sh", "-c", "echo joined"]);
      expect({ code: e.code, out: e.stdout, err: e.stderr }).toEqual({ code: 0, out: "joined\n", err: "" });
      await ok(["delete", "-f", id]);
    } finally {
      bundle.cleanup();
    }
  });

  test.skipIf(!!noTmux)("dev shells share one container, keep the terminal's size; the last one out stops it, unless one is detached", async () => {
    const tmux = new Tmux(as, dir, env);
    try {
      const a = await tmux.start(`${TINYC} dev bb:1\necho "A=$?"`, { cwd: proj });
      expect(await tmux.waitFor(a, /proj \$/)).toBe(true);
      await tmux.line(a, "stty size");
      expect(await tmux.waitFor(a, "\n30 100")).toBe(true);
      const b = await tmux.start(`${TINYC} dev bb:1\necho "B=$?"`, { cwd: proj });
      expect(await tmux.waitFor(b, /proj \$/)).toBe(true);
      expect((await devRows()).map((r) => r.status)).toEqual(["running"]);
      await tmux.line(b, "exit 3");
      expect(await tmux.waitFor(b, "B=3")).toBe(true);
      expect((await devRows()).map((r) => r.status)).toEqual(["running"]);
      await tmux.line(a, "exit");
      expect(await tmux.waitFor(a, "A=0")).toBe(true);
      expect(await devRows()).toEqual([]);

      // A shell left running with the detach keys keeps the container until dev --stop.
      const c = await tmux.start(`${TINYC} dev bb:1\necho "C=$?"`, { cwd: proj });
      expect(await tmux.waitFor(c, /proj \$/)).toBe(true);
      await tmux.keys(c, "C-p", "C-q");
      expect(await tmux.waitFor(c, "C=0")).toBe(true);
      expect(await ok(["dev", "bb:1", "sh", "-c", "ps -o comm > /tmp/ps; grep -c '^sh$' /tmp/ps"]).then((r) => r.stdout))
        .toBe("3\n");
      expect((await devRows()).map((r) => r.status)).toEqual(["running"]);
      await ok(["dev", "--stop"]);
      expect(await devRows()).toEqual([]);
    } finally {
      await tmux.stop();
    }
  }, 30_000);
});
