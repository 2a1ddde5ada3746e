// A container's network: no network (loopback only), the host's, or a private network namespace
// with outbound access through slirp4netns, published ports, and the /etc/hosts, /etc/hostname
// and /etc/resolv.conf files it gets (written beside the container, bound over the image's).
//
// The helper must live exactly as long as the container. slirp4netns takes an "exit fd" and
// ends when it reports an event; it is given a pidfd of the container's first process, which
// reports a hang-up once that process has ended and been reaped. So the helper ends with the
// container however the container ends (tinyc killed, `rm -f`, `kill`, a detached run), and no
// process of tinyc's has to stay around to watch it. The launch plan makes the tap device it
// attaches to persistent, so that its exit does not wait for the kernel to take the device down.
//
// pasta is not used: the version Debian ships does not end when the namespace of a process it
// serves goes away, and it takes no fd to watch, so a detached container's helper would outlive
// it unless another process stayed to stop it.

import { closeSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pidfdOpen } from "../../ffi/spawn";
import { EXIT, TinycError } from "../errors";
import { log } from "../log";
import type { Mount, Spec } from "../oci/config";
import { findHelper } from "./idmap";
import { HELPER_PID_FILE, processStart } from "./state";
import { NETWORK_ANNOTATION, NETWORK_DEVICE } from "./plan";

export type NetworkMode = "none" | "host" | "private";

/** Where the description of a private network travels in config.json, for whoever runs it. */
export { NETWORK_ANNOTATION };

/** slirp4netns's fixed addresses (its default 10.0.2.0/24 network). */
export const SLIRP = {
  container: "10.0.2.100",
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
  cidr: "10.0.2.0/24",
} as const;

export interface PortSpec {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: "tcp" | "udp";
}

export interface NetworkOptions {
  mode: NetworkMode;
  /** -p texts or parsed specs. */
  ports?: (string | PortSpec)[];
  hostname: string;
  /** The folder the hosts, hostname and resolv.conf files are written to. */
  dir: string;
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** --add-host NAME:IP entries. */
  addHosts?: string[];
  /** Let the container reach the host's loopback at 10.0.2.2 (podman's allow_host_loopback). */
  allowHostLoopback?: boolean;
  /** The host's resolv.conf (tests may point it elsewhere). */
  hostResolvConf?: string;
  /** The container's user namespace does not make the user its root (keep-id). */
  keepId?: boolean;
}

/** What a private network's helper needs to know, kept in config.json as an annotation. */
export interface HelperConfig {
  helper: "slirp4netns";
  ports: PortSpec[];
  allowHostLoopback: boolean;
  /**
   * false: slirp4netns runs without its sandbox. With a user namespace whose root is not the
   * user (--userns keep-id), its sandboxed API socket cannot be reached from the host, so
   * published ports need it off there; its seccomp filter stays.
   */
  sandbox?: boolean;
}

export interface ContainerNetwork {
  mode: NetworkMode;
  /** Bind mounts of the hosts, hostname and resolv.conf files. */
  mounts: Mount[];
  annotations: Record<string, string>;
  /** Sets the spec's network namespace, sysfs, mounts and annotations for this network. */
  apply(spec: Spec): void;
  /** Starts the helper of a private network, once the container's namespaces exist. */
  start(pid: number, runDir: string): Promise<NetworkHelper | undefined>;
}

export interface NetworkHelper {
  pid: number;
  /** Waits for the helper to end after its container has ended (killing it if it lingers). */
  stop(): Promise<void>;
  /** Lets tinyc exit while the helper runs on with a detached container. */
  detach(): void;
}

// ---- -p specs ----

/** A flag the user typed that cannot be honoured: docker's status for it. */
const flagError = (message: string) => new TinycError(message, { exitCode: EXIT.engine });

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function portRange(text: string, spec: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  const bad = () => flagError(`-p ${JSON.stringify(spec)}: invalid port ${JSON.stringify(text)}`);
  if (!m) throw bad();
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535 || hi < lo) throw bad();
  return [lo, hi];
}

/**
 * docker's `-p [IP:]HOST:CONTAINER[/tcp|/udp]`, with ranges of the same length on both sides
 * (`8080-8081:80-81`). The host address defaults to 0.0.0.0, as docker's does.
 */
export function parsePort(text: string): PortSpec[] {
  const fail = (why: string) => flagError(`-p ${JSON.stringify(text)}: ${why}`);
  const noRandom = "a host port is needed (publishing to a random host port is not supported)";
  const slash = text.lastIndexOf("/");
  const proto = slash < 0 ? "tcp" : text.slice(slash + 1);
  if (proto !== "tcp" && proto !== "udp") {
    throw fail(`protocol ${JSON.stringify(proto)} is not supported`);
  }
  const body = slash < 0 ? text : text.slice(0, slash);
  if (body.startsWith("[")) throw fail("IPv6 host addresses are not supported");
  const parts = body.split(":");
  if (parts.length === 1) throw fail(noRandom);
  if (parts.length > 3) throw fail("expected [IP:]HOST:CONTAINER[/PROTO]");
  const [ip, host, ctr] = parts.length === 3 ? parts : ["", ...parts];
  const hostIp = ip || "0.0.0.0";
  if (!IPV4.test(hostIp)) {
    throw fail(`host address ${JSON.stringify(hostIp)} is not an IPv4 address`);
  }
  if (!host) throw fail(noRandom);
  const [h0, h1] = portRange(host, text);
  const [c0, c1] = portRange(ctr, text);
  if (h1 - h0 !== c1 - c0) throw fail("the host and container ranges differ in length");
  const out: PortSpec[] = [];
  for (let i = 0; i <= h1 - h0; i++) {
    out.push({ hostIp, hostPort: h0 + i, containerPort: c0 + i, proto });
  }
  return out;
}

export function parsePorts(texts: (string | PortSpec)[]): PortSpec[] {
  const out: PortSpec[] = [];
  for (const t of texts) {
    // A spec read back from config.json is checked as the text it stands for.
    const text =
      typeof t === "string" ? t : `${t.hostIp}:${t.hostPort}:${t.containerPort}/${t.proto}`;
    for (const p of parsePort(text)) {
      const clash = out.find((q) => q.proto === p.proto && q.hostPort === p.hostPort &&
        (q.hostIp === p.hostIp || q.hostIp === "0.0.0.0" || p.hostIp === "0.0.0.0"));
      if (clash) {
        throw flagError(`-p: host port ${p.hostPort}/${p.proto} is published twice`);
      }
      out.push(p);
    }
  }
  return out;
}

/**
 * `--network` values: none, host, private (the default), and slirp4netns as another name for
 * private, with podman's `:allow_host_loopback=true`.
 */
export function parseNetworkFlag(
  text: string | undefined,
): { mode: NetworkMode; allowHostLoopback: boolean } {
  const value = text ?? "private";
  const [name, opts] = [value.split(":")[0], value.split(":").slice(1).join(":")];
  const fail = (why: string) => flagError(`--network ${JSON.stringify(value)}: ${why}`);
  if (name === "none" || name === "host") {
    if (opts) throw fail("takes no options");
    return { mode: name, allowHostLoopback: false };
  }
  if (name === "private" || name === "slirp4netns" || name === "bridge" || name === "default") {
    let allowHostLoopback = false;
    for (const o of opts ? opts.split(",") : []) {
      if (o === "allow_host_loopback=true") allowHostLoopback = true;
      else if (o !== "allow_host_loopback=false") {
        throw fail(`option ${JSON.stringify(o)} is not supported`);
      }
    }
    return { mode: "private", allowHostLoopback };
  }
  if (name === "pasta") throw fail("pasta is not supported: the private network uses slirp4netns");
  throw fail("expected none, host, private or slirp4netns (named networks are not supported)");
}

// ---- the files ----

interface Resolv {
  nameservers: string[];
  search: string[];
  options: string[];
}

function readResolv(path: string): Resolv {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // No resolv.conf on the host: the container gets only what the flags give.
  }
  const r: Resolv = { nameservers: [], search: [], options: [] };
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "nameserver" && f[1]) r.nameservers.push(f[1]);
    else if ((f[0] === "search" || f[0] === "domain") && f.length > 1) r.search = f.slice(1);
    else if (f[0] === "options") r.options.push(...f.slice(1));
  }
  return r;
}

const isLoopback = (ip: string) => ip.startsWith("127.") || ip === "::1";

/**
 * The container's resolv.conf. A private network asks slirp4netns's 10.0.2.3, which forwards to
 * the host's resolver wherever that is (on the host's loopback too, which the container cannot
 * reach itself); the host network uses the host's resolvers as they are; `--dns` replaces both.
 */
export function resolvConf(o: NetworkOptions): string {
  const badIp = o.dns?.find((ip) => !/^[0-9a-fA-F.:]+$/.test(ip));
  if (badIp !== undefined) throw flagError(`--dns ${JSON.stringify(badIp)}: not an IP address`);
  const words = [["--dns-search", o.dnsSearch], ["--dns-option", o.dnsOptions]] as const;
  for (const [flag, values] of words) {
    const bad = values?.find((v) => !v || /\s/.test(v));
    if (bad !== undefined) throw flagError(`${flag} ${JSON.stringify(bad)}: one word expected`);
  }
  const host = readResolv(o.hostResolvConf ?? "/etc/resolv.conf");
  let servers: string[];
  if (o.dns?.length) servers = o.dns;
  else if (o.mode === "private") servers = [SLIRP.dns];
  else if (o.mode === "host") servers = host.nameservers;
  else servers = host.nameservers.filter((s) => !isLoopback(s));
  const search = o.dnsSearch?.length ? o.dnsSearch.filter((s) => s !== ".") : host.search;
  const options = o.dnsOptions?.length ? o.dnsOptions : host.options;
  return [
    ...(search.length ? [`search ${search.join(" ")}`] : []),
    ...servers.map((s) => `nameserver ${s}`),
    ...(options.length ? [`options ${options.join(" ")}`] : []),
  ].join("\n") + "\n";
}

/** --add-host NAME:IP lines; docker's "host-gateway" is the host, 10.0.2.2 on a private network. */
function addHostLines(entries: string[], mode: NetworkMode): string[] {
  return entries.map((e) => {
    const at = e.indexOf(":");
    const name = e.slice(0, at);
    let ip = e.slice(at + 1);
    if (ip === "host-gateway") ip = mode === "private" ? SLIRP.gateway : "127.0.0.1";
    if (at <= 0 || /\s/.test(name) || !/^[0-9a-fA-F.:]+$/.test(ip)) {
      throw flagError(`--add-host ${JSON.stringify(e)}: expected NAME:IP`);
    }
    return `${ip}\t${name}`;
  });
}

/** The container's /etc/hosts: localhost, the hostname at the container's address, --add-host. */
export function hostsFile(o: NetworkOptions): string {
  const extra = addHostLines(o.addHosts ?? [], o.mode);
  if (o.mode === "host") {
    let text = "";
    try {
      text = readFileSync("/etc/hosts", "utf8");
    } catch {
      text = "127.0.0.1\tlocalhost\n";
    }
    if (text && !text.endsWith("\n")) text += "\n";
    return text + extra.map((l) => l + "\n").join("");
  }
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
    ...extra,
    // Without a network there is no address of its own: the name is loopback's, so it resolves.
    `${o.mode === "private" ? SLIRP.container : "127.0.0.1"}\t${o.hostname}`,
  ];
  return lines.join("\n") + "\n";
}

const bind = (source: string, destination: string): Mount => ({
  destination,
  type: "bind",
  source,
  options: ["rbind", "rprivate"],
});

// ---- the network of one container ----

/**
 * Writes the hosts, hostname and resolv.conf files into o.dir and returns what the container's
 * spec needs and how to start its helper. Nothing runs until start.
 */
export function prepareNetwork(o: NetworkOptions): ContainerNetwork {
  const ports = parsePorts(o.ports ?? []);
  if (!o.hostname || /[\s/]/.test(o.hostname)) {
    throw flagError(`hostname ${JSON.stringify(o.hostname)}: not a host name`);
  }
  if (ports.length && o.mode === "none") {
    throw flagError("-p: a container with --network none has no ports to publish");
  }
  if (ports.length && o.mode === "host") {
    log("warn", "-p is not used with --network host: the container uses the host's ports");
  }
  if (o.mode === "private" && !findHelper("slirp4netns")) {
    throw new TinycError("the private network needs slirp4netns, which is not installed", {
      exitCode: EXIT.engine,
      hint: "apt-get install slirp4netns, or run with --network none or host",
    });
  }
  const files = { hosts: hostsFile(o), hostname: `${o.hostname}\n`, "resolv.conf": resolvConf(o) };
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(o.dir, name), text, { mode: 0o644 });
  }
  const mounts = [
    bind(join(o.dir, "hosts"), "/etc/hosts"),
    bind(join(o.dir, "hostname"), "/etc/hostname"),
    bind(join(o.dir, "resolv.conf"), "/etc/resolv.conf"),
  ];
  const helper: HelperConfig | undefined = o.mode === "private"
    ? { helper: "slirp4netns", ports, allowHostLoopback: !!o.allowHostLoopback,
      ...(o.keepId && ports.length > 0 && { sandbox: false }) }
    : undefined;
  const annotations: Record<string, string> =
    helper ? { [NETWORK_ANNOTATION]: JSON.stringify(helper) } : {};
  return {
    mode: o.mode,
    mounts,
    annotations,
    apply(spec: Spec) {
      applyNetwork(spec, o.mode, mounts, annotations);
    },
    async start(pid: number, runDir: string) {
      return helper ? startSlirp(helper, pid, runDir) : undefined;
    },
  };
}

function applyNetwork(
  spec: Spec,
  mode: NetworkMode,
  mounts: Mount[],
  annotations: Record<string, string>,
): void {
  const linux = (spec.linux ??= {});
  const others = (linux.namespaces ?? []).filter((n) => n.type !== "network");
  linux.namespaces = mode === "host" ? others : [...others, { type: "network" }];
  if (mode === "host" && process.getuid!() !== 0) {
    // sysfs of a network namespace that is not the user's cannot be mounted: the host's, read-only.
    const sys = spec.mounts?.find((m) => m.destination === "/sys");
    const options = ["rbind", "nosuid", "noexec", "nodev", "ro"];
    if (sys) Object.assign(sys, { type: "bind", source: "/sys", options });
  }
  const taken = new Set(mounts.map((m) => m.destination));
  spec.mounts = [...(spec.mounts ?? []).filter((m) => !taken.has(m.destination)), ...mounts];
  spec.annotations = { ...spec.annotations, ...annotations };
}

/** The helper a config.json asks for, if any (a private network's annotation). */
export function helperOf(spec: Spec): HelperConfig | undefined {
  const text = spec.annotations?.[NETWORK_ANNOTATION];
  if (!text) return undefined;
  const ownNetns = (spec.linux?.namespaces ?? []).some((n) => n.type === "network" && !n.path);
  let h: HelperConfig;
  try {
    h = JSON.parse(text);
  } catch {
    throw new TinycError(`annotation ${NETWORK_ANNOTATION}: not JSON`);
  }
  if (h.helper !== "slirp4netns") {
    throw new TinycError(`annotation ${NETWORK_ANNOTATION}: unknown helper`);
  }
  if (!ownNetns) {
    const why = "the config has no network namespace of its own";
    throw new TinycError(`annotation ${NETWORK_ANNOTATION}: ${why}`);
  }
  const ports = parsePorts(h.ports ?? []);
  return { helper: "slirp4netns", ports, allowHostLoopback: !!h.allowHostLoopback,
    ...(h.sandbox === false && { sandbox: false }) };
}

/** Starts the helper a config.json asks for, for the container whose first process is pid. */
export async function startNetworkOf(
  spec: Spec,
  pid: number,
  runDir: string,
): Promise<NetworkHelper | undefined> {
  const h = helperOf(spec);
  return h ? startSlirp(h, pid, runDir) : undefined;
}

// ---- slirp4netns ----

const API_SOCKET = "slirp4netns.sock";

/** Reads until the helper writes its ready byte, or ends; false when it ended first. */
async function waitReady(fd: number, ms: number): Promise<boolean> {
  const buf = Buffer.alloc(8);
  const until = Date.now() + ms;
  for (;;) {
    try {
      return readSync(fd, buf) > 0;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    }
    if (Date.now() > until) return false;
    await Bun.sleep(2);
  }
}

function lastLines(file: string): string {
  try {
    const lines = readFileSync(file, "utf8").trim().split("\n");
    return lines.filter((l) => !/tapfd|exitfd|exiting|^WARNING: Support for/.test(l)).pop() ?? "";
  } catch {
    return "";
  }
}

async function startSlirp(h: HelperConfig, pid: number, runDir: string): Promise<NetworkHelper> {
  const exe = findHelper("slirp4netns");
  if (!exe) {
    throw new TinycError("the private network needs slirp4netns, which is not installed", {
      hint: "apt-get install slirp4netns, or run with --network none or host",
    });
  }
  const logFile = join(runDir, "slirp4netns.log");
  const logFd = openSync(logFile, "w", 0o600);
  // A pidfd of the container's first process is the exit fd: slirp4netns sees a hang-up on it
  // once that process has ended and been reaped, and then ends itself.
  const pidfd = pidfdOpen(pid);
  const args = [
    exe, "--configure", "--mtu=65520", ...(h.sandbox === false ? [] : ["--enable-sandbox"]), "--enable-seccomp",
    ...(h.allowHostLoopback ? [] : ["--disable-host-loopback"]),
    "--exit-fd=3", "--ready-fd=4", `--api-socket=${API_SOCKET}`, String(pid), NETWORK_DEVICE,
  ];
  log("debug", `network: ${args.join(" ")}`);
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    // Its own session: a ^C meant for the container must not end the container's network.
    proc = Bun.spawn(args, {
      cwd: runDir,
      detached: true,
      stdio: ["ignore", logFd, logFd, pidfd, "pipe"],
    });
  } finally {
    closeSync(pidfd);
    closeSync(logFd);
  }
  const readyFd = proc.stdio[4] as unknown as number;
  const fail = (why: string) => {
    proc.kill(9);
    const said = lastLines(logFile);
    return new TinycError(`slirp4netns: ${why}${said ? `: ${said}` : ""}`);
  };
  try {
    log("debug", "network: helper started");
    if (!(await waitReady(readyFd, 10_000))) throw fail("did not set up the network");
    log("debug", "network: helper ready");
  } finally {
    closeSync(readyFd);
  }
  try {
    for (const p of h.ports) await addHostForward(runDir, p);
  } catch (e) {
    proc.kill(9);
    throw e;
  } finally {
    rmSync(join(runDir, API_SOCKET), { force: true });
  }
  // Named in the state folder, so that removing the container's state ends it too.
  writeFileSync(join(runDir, HELPER_PID_FILE), `${proc.pid} ${processStart(proc.pid)}\n`);
  log("info", `network: slirp4netns ${proc.pid} for container ${pid}` +
    (h.ports.length ? `, ports ${h.ports.map(portText).join(", ")}` : ""));
  return {
    pid: proc.pid,
    async stop() {
      log("debug", "network: waiting for the helper");
      const ended = await Promise.race([
        proc.exited.then(() => true),
        Bun.sleep(2000).then(() => false),
      ]);
      if (!ended) {
        proc.kill(9);
        await proc.exited;
      }
      log("debug", "network: helper ended");
    },
    detach() {
      proc.unref();
    },
  };
}

const portText = (p: PortSpec) => `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.proto}`;

/** One add_hostfwd request on slirp4netns's API socket. */
async function addHostForward(runDir: string, p: PortSpec): Promise<void> {
  const request = JSON.stringify({
    execute: "add_hostfwd",
    arguments: {
      proto: p.proto,
      host_addr: p.hostIp,
      host_port: p.hostPort,
      guest_port: p.containerPort,
    },
  });
  // The folder may be deeper than a socket address can name: then go through a descriptor of
  // it (which a process that is not dumpable may not be allowed to).
  const direct = join(runDir, API_SOCKET);
  const fits = Buffer.byteLength(direct) < 108;
  const dirFd = fits ? -1 : openSync(runDir, "r");
  let answer = "";
  try {
    answer = await new Promise<string>((resolve, reject) => {
      let text = "";
      Bun.connect({
        unix: fits ? direct : `/proc/self/fd/${dirFd}/${API_SOCKET}`,
        socket: {
          open(s) {
            s.write(request);
            s.flush();
          },
          data(_s, d) {
            text += d.toString();
          },
          close() {
            resolve(text);
          },
          error(_s, e) {
            reject(e);
          },
          connectError(_s, e) {
            reject(e);
          },
        },
      }).catch(reject);
    });
  } catch (e) {
    throw new TinycError(`-p ${portText(p)}: slirp4netns's API: ${(e as Error).message}`);
  } finally {
    if (dirFd >= 0) closeSync(dirFd);
  }
  let reply: { return?: unknown; error?: { desc?: string } };
  try {
    reply = JSON.parse(answer);
  } catch {
    const said = JSON.stringify(answer.slice(0, 100));
    throw new TinycError(`-p ${portText(p)}: slirp4netns answered ${said}`);
  }
  if (reply.error) {
    const low = p.hostPort < 1024 && process.getuid!() !== 0;
    throw new TinycError(`-p ${portText(p)}: cannot publish: ${reply.error.desc ?? "refused"}`, {
      hint: low
        ? "ports below 1024 need root, or a lower sysctl net.ipv4.ip_unprivileged_port_start"
        : "is the port already in use?",
    });
  }
}
