// Networks of containers made from images: the private network through slirp4netns (published
// ports, DNS, reaching the host), --network none and host, the hosts, hostname and resolv.conf
// files, and the helper's lifetime, which must end with its container however that ends.
//
// Nothing here leaves the machine. The container's addresses (10.0.2.x) exist only in network
// namespaces the tests make: 10.0.2.2 is slirp4netns's own address there, which it turns into
// the host's 127.0.0.1 when allow_host_loopback is set, and that is how the container reaches
// the HTTP server and the DNS responder that the tests run on the host's loopback. The default
// resolver, 10.0.2.3, forwards to the host's own resolver, which need not be on this machine:
// no test sends a query to it, only --dns ones.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
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
import { expectTinycError, isRunning, killIfAlive, waitUntil } from "./runkit";

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noSlirp = Bun.which("slirp4netns", { PATH: "/usr/bin:/bin:/usr/local/bin" })
  ? null
  : "no slirp4netns";
const noCurl = Bun.which("curl") ? null : "no curl";
const noRootless = noTinyc ?? noSlirp ?? requireUserns();
const noRoot = noTinyc ?? noSlirp ?? rootSkipReason();
for (const [what, reason] of [
  ["rootless network tests", noRootless],
  ["root network tests", noRoot],
  ["published port tests", noCurl],
] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

const ME: As = IS_ROOT ? "root" : "rootless";
const IMAGE = "netbox:1";
let busyboxTar = "";

beforeAll(() => {
  if (noRootless && noRoot) return;
  const dir = scratchDir(ME, "network-image");
  busyboxTar = path.join(dir, "busybox.tar");
  const tar = ["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", path.join(FIXTURES, "busybox")];
  const r = Bun.spawnSync([...tar, "-cf", busyboxTar, "."], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`tar: ${r.stderr.toString()}`);
  fs.chmodSync(busyboxTar, 0o644);
});

afterAll(() => cleanup());

interface Ctx {
  as: As;
  data: string;
  state: string;
  home: string;
}

const made: Ctx[] = [];

async function newCtx(as: As): Promise<Ctx> {
  const home = scratchDir(as, "network");
  const xdg = scratchDir(as, "network-xdg");
  fs.chmodSync(xdg, 0o700);
  const ctx = { as, data: path.join(home, "data"), state: path.join(xdg, "tinyc"), home };
  made.push(ctx);
  await ok(ctx, ["import", busyboxTar, IMAGE]);
  return ctx;
}

function env(ctx: Ctx): Record<string, string> {
  return { TINYC_DATA: ctx.data, XDG_RUNTIME_DIR: path.dirname(ctx.state), HOME: ctx.home };
}

function tinyc(ctx: Ctx, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return runCommand([TINYC, ...args], { as: ctx.as, env: env(ctx), timeoutMs });
}

async function ok(ctx: Ctx, args: string[]): Promise<RunResult> {
  const r = await tinyc(ctx, args);
  if (r.code !== 0) throw new Error(`tinyc ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

const runImage = (ctx: Ctx, args: string[]) => tinyc(ctx, ["run", "--pull=never", ...args]);

/**
 * The slirp4netns processes of this context's containers: their log (stdout and stderr) is a
 * file in the container's state folder, which stays in /proc/PID/fd even once it is removed.
 */
function helpersOf(ctx: Ctx): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/comm`, "utf8").trim() !== "slirp4netns") continue;
      if (fs.readlinkSync(`/proc/${name}/fd/2`).startsWith(ctx.state + "/")) pids.push(Number(name));
    } catch {
      // Gone, or not ours to look at.
    }
  }
  return pids.filter(isRunning);
}

/** A port nothing listens on now (the kernel's choice for port 0), for TCP or UDP. */
async function freePort(udp = false): Promise<number> {
  if (udp) {
    const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    const port = s.port;
    s.close();
    return port;
  }
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function udpTaken(port: number): Promise<boolean> {
  try {
    (await Bun.udpSocket({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch {
    return true;
  }
}

function curl(url: string): { code: number; body: string } {
  const r = Bun.spawnSync(["curl", "-s", "--max-time", "2", url], { stderr: "pipe" });
  return { code: r.exitCode, body: r.stdout.toString() };
}

afterEach(async () => {
  for (const ctx of made.splice(0)) {
    const q = await tinyc(ctx, ["ps", "-a", "-q"]);
    for (const id of q.stdout.split("\n").filter(Boolean)) await tinyc(ctx, ["rm", "-f", id]);
    for (const pid of helpersOf(ctx)) killIfAlive(pid);
  }
});

// ---- a DNS responder on the host's loopback ----

/** The name in a DNS message's question, and where the question ends. */
function question(msg: Buffer): { name: string; end: number; type: number } {
  const labels: string[] = [];
  let at = 12;
  while (msg[at] !== 0) {
    labels.push(msg.subarray(at + 1, at + 1 + msg[at]).toString());
    at += msg[at] + 1;
  }
  return { name: labels.join("."), end: at + 5, type: msg.readUInt16BE(at + 1) };
}

/** Answers A queries for `names`, and every other query with no records. */
async function dnsResponder(port: number, names: Record<string, string>) {
  const asked: string[] = [];
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(s, msg, fromPort, fromAddr) {
        const q = question(Buffer.from(msg));
        asked.push(q.name);
        const known = names[q.name] !== undefined;
        const ip = q.type === 1 ? names[q.name] : undefined;
        const head = Buffer.alloc(12);
        msg.subarray(0, 2).forEach((b, i) => (head[i] = b));
        // A response, recursion desired and available; NXDOMAIN for a name it does not know.
        head.writeUInt16BE(known ? 0x8180 : 0x8183, 2);
        head.writeUInt16BE(1, 4);
        head.writeUInt16BE(ip ? 1 : 0, 6);
        const answer = ip
          ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip.split(".").map(Number)])
          : Buffer.alloc(0);
        s.send(Buffer.concat([head, Buffer.from(msg.subarray(12, q.end)), answer]), fromPort, fromAddr);
      },
    },
  });
  return { asked, close: () => socket.close() };
}

/** Why this process cannot answer on 127.0.0.1:53: it needs root, and nothing else there. */
function port53Reason(): string | null {
  if (!IS_ROOT) return "a resolver on port 53 needs root";
  // Local addresses in /proc/net/udp are hex, little-endian: 0100007F:0035 is 127.0.0.1:53.
  const taken = fs.readFileSync("/proc/net/udp", "utf8").split("\n").slice(1)
    .map((l) => l.trim().split(/\s+/)[1])
    .some((a) => a === "0100007F:0035" || a === "00000000:0035");
  return taken ? "127.0.0.1:53 is taken" : null;
}
const noDns = port53Reason();
if (noDns) console.warn(`skipping the DNS resolution tests: ${noDns}`);

function networkTests(as: As) {
  test.skipIf(!!noCurl)("run IMAGE does publish tcp and udp ports that the host reaches", async () => {
    const ctx = await newCtx(as);
    const [tcp, udp] = [await freePort(), await freePort(true)];
    const script = "mkdir -p /www && echo served-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";
    const d = await runImage(ctx, [
      "-d", "--name", "web", "-h", "webhost",
      "-p", `127.0.0.1:${tcp}:80`, "-p", `127.0.0.1:${udp}:9/udp`,
      IMAGE, "sh", "-c", script,
    ]);
    expect({ code: d.code, err: d.stderr }).toEqual({ code: 0, err: "" });
    let got = { code: -1, body: "" };
    await waitUntil(() => (got = curl(`http://127.0.0.1:${tcp}/`)).code === 0);
    expect(got).toEqual({ code: 0, body: "served-from-webhost\n" });
    // busybox has no UDP server to answer; the host side of the forward is slirp4netns's socket.
    expect(await udpTaken(udp)).toBe(true);
    expect(helpersOf(ctx)).toHaveLength(1);

    // rm -f ends the container, and its helper goes with it: the ports are free again.
    await ok(ctx, ["rm", "-f", "web"]);
    expect(await waitUntil(() => helpersOf(ctx).length === 0)).toBe(true);
    expect(curl(`http://127.0.0.1:${tcp}/`).code).not.toBe(0);
    expect(await udpTaken(udp)).toBe(false);
  }, 30_000);

  test("run IMAGE does write /etc/hosts, /etc/hostname and /etc/resolv.conf of its network", async () => {
    const ctx = await newCtx(as);
    const show = "cat /etc/hostname /etc/hosts /etc/resolv.conf; ip -o -4 addr show | awk '{print $2, $4}'";
    const r = await runImage(ctx, [
      "--rm", "-h", "box", "--dns", "192.0.2.53", "--dns-search", "tinyc.test", "--dns-option", "ndots:2",
      "--add-host", "db.tinyc.test:192.0.2.10", IMAGE, "sh", "-c", show,
    ]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("box");
    expect(lines).toContain("127.0.0.1\tlocalhost");
    expect(lines).toContain("192.0.2.10\tdb.tinyc.test");
    expect(lines).toContain("10.0.2.100\tbox");
    expect(lines.filter((l) => /^(search|nameserver|options) /.test(l))).toEqual([
      "search tinyc.test",
      "nameserver 192.0.2.53",
      "options ndots:2",
    ]);
    expect(lines.slice(-2)).toEqual(["lo 127.0.0.1/8", "eth0 10.0.2.100/24"]);

    // Without flags, the private network's resolver is slirp4netns's.
    const plain = await runImage(ctx, ["--rm", IMAGE, "grep", "^nameserver", "/etc/resolv.conf"]);
    expect(plain.stdout).toBe("nameserver 10.0.2.3\n");
    // The files are bound over the image's, not written into it.
    const none = await runImage(ctx, ["--network", "none", "--name", "quiet", "-h", "q", IMAGE, "sh", "-c",
      "echo changed > /etc/hostname; ip -o -4 addr show | awk '{print $2, $4}'; grep q /etc/hosts"]);
    expect({ code: none.code, out: none.stdout }).toEqual({ code: 0, out: "lo 127.0.0.1/8\n127.0.0.1\tq\n" });
    const [id] = fs.readdirSync(path.join(ctx.data, "containers"));
    const dir = path.join(ctx.data, "containers", id);
    expect(fs.readFileSync(path.join(dir, "hostname"), "utf8")).toBe("changed\n");
    const upper = path.join(dir, "upper/etc/hostname");
    expect(fs.existsSync(upper) ? fs.readFileSync(upper, "utf8") : "").toBe("");
  });

  test("run IMAGE does reach a server on the host's loopback only when allowed", async () => {
    const ctx = await newCtx(as);
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("from-the-host\n") });
    try {
      const get = `timeout 5 wget -q -O - http://10.0.2.2:${server.port}/`;
      const allowed = await runImage(ctx, ["--rm", "--network", "slirp4netns:allow_host_loopback=true",
        IMAGE, "sh", "-c", get]);
      expect({ code: allowed.code, out: allowed.stdout }).toEqual({ code: 0, out: "from-the-host\n" });
      const refused = await runImage(ctx, ["--rm", IMAGE, "sh", "-c", get]);
      expect(refused.code).not.toBe(0);
    } finally {
      server.stop(true);
    }
  }, 20_000);

  test.skipIf(!!noDns)("run IMAGE does resolve names with --dns through a resolver on the host's loopback", async () => {
    const ctx = await newCtx(as);
    const dns = await dnsResponder(53, { "web.tinyc.test": "198.51.100.7" });
    try {
      const r = await runImage(ctx, ["--rm", "--network", "slirp4netns:allow_host_loopback=true",
        "--dns", "10.0.2.2", "--dns-search", ".", IMAGE, "nslookup", "web.tinyc.test"]);
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
      expect(r.stdout).toMatch(/Address:\s+198\.51\.100\.7/);
      expect(dns.asked).toContain("web.tinyc.test");
    } finally {
      dns.close();
    }
  });

  test("run IMAGE does leave no helper after --rm, kill -9 of tinyc, or tinyc kill", async () => {
    const ctx = await newCtx(as);
    const r = await runImage(ctx, ["--rm", IMAGE, "true"]);
    expect(r.code).toBe(0);
    expect(helpersOf(ctx)).toEqual([]);

    // A detached container, whose helper is all that runs besides it.
    const d = await runImage(ctx, ["-d", "--name", "bg", IMAGE, "sleep", "100"]);
    expect(d.code).toBe(0);
    const [detached] = helpersOf(ctx);
    expect(detached).toBeGreaterThan(0);
    // A foreground one, whose tinyc is then killed.
    const fg = spawnAs([TINYC, "run", "--pull=never", "--rm", IMAGE, "sleep", "100"], { as, env: env(ctx) });
    expect(await waitUntil(() => helpersOf(ctx).length === 2)).toBe(true);
    const foreground = helpersOf(ctx).find((p) => p !== detached)!;

    // Both end together: their helpers go once the init system has reaped the containers.
    await ok(ctx, ["kill", "bg", "KILL"]);
    fg.kill("SIGKILL");
    await fg.exited;
    expect(await waitUntil(() => !isRunning(detached) && !isRunning(foreground), 10_000)).toBe(true);
    expect(helpersOf(ctx)).toEqual([]);
  }, 30_000);

  test("run IMAGE does fail in one line when a port cannot be published, leaving nothing", async () => {
    const ctx = await newCtx(as);
    const busy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const r = await runImage(ctx, ["--rm", "-p", `127.0.0.1:${busy.port}:80`, IMAGE, "true"]);
      expectTinycError(r, 125, `127.0.0.1:${busy.port}->80/tcp`, "cannot publish");
      expect(helpersOf(ctx)).toEqual([]);
      expect((await ok(ctx, ["ps", "-a", "-q"])).stdout).toBe("");
    } finally {
      busy.stop(true);
    }
    const bad = await runImage(ctx, ["--rm", "-p", "80", IMAGE, "true"]);
    expectTinycError(bad, 125, "random host port is not supported");
    const none = await runImage(ctx, ["--rm", "--network", "none", "-p", "8080:80", IMAGE, "true"]);
    expectTinycError(none, 125, "--network none");
  });

  test("run and create of a bundle written by tinyc bundle do start its private network", async () => {
    const ctx = await newCtx(as);
    const dir = path.join(ctx.home, "bundle");
    await ok(ctx, ["bundle", "-h", "bundled", IMAGE, dir]);
    const spec = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    spec.process.args = ["sh", "-c", "cat /etc/hostname; ip -o -4 addr show eth0 | awk '{print $4}'"];
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(spec));
    // The plan makes the tap device and waits for the helper before the pivot; lo comes up.
    const plan = (await ok(ctx, ["run", "--plan", dir])).stdout.split("\n");
    const at = (text: string) => plan.findIndex((l) => l.includes(text));
    expect(at("make eth0, a tap device for the network helper")).toBeGreaterThan(0);
    expect(at("wait for the network helper")).toBe(at("make eth0") + 1);
    expect(at("pivot_root")).toBeGreaterThan(at("wait for the network helper"));
    expect(at("bring up lo")).toBeGreaterThan(0);
    const r = await tinyc(ctx, ["run", dir]);
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({
      code: 0,
      out: "bundled\n10.0.2.100/24\n",
      err: "",
    });
    expect(helpersOf(ctx)).toEqual([]);

    // create starts the network too, before start; delete ends it.
    spec.process.args = ["sleep", "100"];
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(spec));
    const created = await tinyc(ctx, ["create", "--bundle", dir, "netbundle"]);
    expect({ code: created.code, err: created.stderr }).toEqual({ code: 0, err: "" });
    expect(helpersOf(ctx)).toHaveLength(1);
    await ok(ctx, ["start", "netbundle"]);
    const seen = await ok(ctx, ["exec", "netbundle", "ip", "-o", "-4", "addr", "show", "eth0"]);
    expect(seen.stdout).toContain("10.0.2.100/24");
    await ok(ctx, ["delete", "--force", "netbundle"]);
    expect(helpersOf(ctx)).toEqual([]);
  }, 20_000);
}

describe.skipIf(!!noRootless)("rootless", () => networkTests("rootless"));
describe.skipIf(!!noRoot)("as root", () => networkTests("root"));

test.skipIf(!!noRoot)("run IMAGE does share the host's network with --network host", async () => {
  const ctx = await newCtx("root");
  const r = await runImage(ctx, ["--rm", "--network", "host", IMAGE, "sh", "-c",
    "grep ^nameserver /etc/resolv.conf; ls /sys/class/net | sort"]);
  const host = fs.readFileSync("/etc/resolv.conf", "utf8").split("\n").filter((l) => l.startsWith("nameserver"));
  const ifaces = fs.readdirSync("/sys/class/net").sort();
  expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: [...host, ...ifaces].join("\n") + "\n" });
  expect(helpersOf(ctx)).toEqual([]);
});
