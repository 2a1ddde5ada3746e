// The Docker Engine API: the routes the docker CLI uses, on top of the engine (containers) and
// the image store. Paths arrive without their /vX.Y prefix; image names may hold slashes.

import { arch, cpus, hostname, release, totalmem } from "node:os";
import type { ImageStore } from "../image/store";
import { version as tinycVersion, versionNumber } from "../version";
import { eventMatches, labelsMatch, parseFilters, type Events } from "./events";
import { API_VERSION, HttpError, MIN_API_VERSION, type Handler, type Request, type Response } from "./http";
import type { Engine, Record as CRecord } from "./engine";
import { FLAG, frame } from "./shim";
import { containerRoutes as logsRoutes } from "./logs";
import { unsupported } from "./images";

export type Route = {
  method: string;
  path: RegExp;
  handle: (req: Request, res: Response, m: string[]) => Promise<void>;
};

export interface Context {
  engine: Engine;
  store: ImageStore;
  events: Events;
}

function param(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    throw new HttpError(400, "malformed percent-encoding in the path");
  }
}

export function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v !== null && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === "") return undefined;
  if (!/^-?\d+$/.test(v)) throw new HttpError(400, `${name}: not a number: ${JSON.stringify(v)}`);
  return Number(v);
}

function unix(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}

function ago(iso: string): string {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 1) return "Less than a second";
  if (s < 60) return `${Math.floor(s)} second${Math.floor(s) === 1 ? "" : "s"}`;
  const m = s / 60;
  if (m < 60) return Math.floor(m) === 1 ? "About a minute" : `${Math.floor(m)} minutes`;
  const h = m / 60;
  if (h < 48) return Math.round(h) === 1 ? "About an hour" : `${Math.round(h)} hours`;
  const d = h / 24;
  return `${Math.floor(d)} days`;
}

function statusText(r: CRecord): string {
  const s = r.State;
  if (s.Status === "running") return `Up ${ago(s.StartedAt)}`;
  if (s.Status === "paused") return `Up ${ago(s.StartedAt)} (Paused)`;
  if (s.Status === "restarting") return `Restarting (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
  if (s.Status === "removing") return "Removal In Progress";
  if (s.Status === "created") return "Created";
  return `Exited (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
}

function command(r: CRecord): string {
  return [r.Path, ...r.Args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ");
}

function summary(r: CRecord) {
  return {
    Id: r.Id,
    Names: [r.Name],
    Image: r.ImageName,
    ImageID: r.Image,
    Command: command(r),
    Created: unix(r.Created),
    Ports: portList(r),
    Labels: r.Config.Labels ?? {},
    State: r.State.Status,
    Status: statusText(r),
    HostConfig: { NetworkMode: r.HostConfig.NetworkMode },
    NetworkSettings: { Networks: {} },
    Mounts: mounts(r),
  };
}

/** Published ports as docker ps reads them. */
function portList(r: CRecord) {
  const out: { IP: string; PrivatePort: number; PublicPort: number; Type: string }[] = [];
  for (const [key, binds] of Object.entries(r.HostConfig.PortBindings ?? {})) {
    const [port, proto = "tcp"] = key.split("/");
    for (const b of (binds as { HostIp?: string; HostPort?: string }[]) ?? []) {
      out.push({ IP: b.HostIp || "0.0.0.0", PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: proto });
    }
  }
  return out;
}

function mounts(r: CRecord) {
  return (r.HostConfig.Binds ?? []).map((b: string) => {
    const [src, dst, opts = ""] = b.split(":");
    return { Type: "bind", Source: src, Destination: dst, Mode: opts, RW: !opts.split(",").includes("ro"), Propagation: "rprivate" };
  });
}

function inspect(r: CRecord, execIds: string[]) {
  return {
    Id: r.Id,
    Created: r.Created,
    Path: r.Path,
    Args: r.Args,
    State: r.State,
    Image: r.Image,
    ResolvConfPath: "",
    HostnamePath: "",
    HostsPath: "",
    LogPath: r.LogPath,
    Name: r.Name,
    RestartCount: r.RestartCount,
    Driver: r.Driver,
    Platform: "linux",
    MountLabel: "",
    ProcessLabel: "",
    AppArmorProfile: "",
    ExecIDs: execIds.length ? execIds : null,
    HostConfig: r.HostConfig,
    GraphDriver: { Name: r.Driver, Data: null },
    Mounts: mounts(r),
    Config: r.Config,
    NetworkSettings: {
      Bridge: "", SandboxID: "", HairpinMode: false, Ports: r.HostConfig.PortBindings ?? {}, SandboxKey: "",
      Gateway: "", IPAddress: "", IPPrefixLen: 0, MacAddress: "", Networks: {},
    },
  };
}

function goArch(): string {
  return arch() === "x64" ? "amd64" : arch();
}

/** docker's name filter is a regular expression over the name with its slash. */
function nameMatches(name: string, pattern: string): boolean {
  try {
    return new RegExp(pattern).test(name) || new RegExp(pattern).test(name.slice(1));
  } catch {
    return name.slice(1).includes(pattern.replace(/^\//, ""));
  }
}

const PS_FILTERS = ["label", "name", "id", "status", "exited", "ancestor"];
const STATUSES = ["created", "running", "paused", "restarting", "removing", "exited", "dead"];

function psFilter(r: CRecord, f: Map<string, string[]>, ancestorIds: Map<string, string>): boolean {
  const any = (key: string, test: (v: string) => boolean) => !f.has(key) || f.get(key)!.some(test);
  return (
    labelsMatch(r.Config.Labels, f.get("label")) &&
    any("name", (v) => nameMatches(r.Name, v)) &&
    any("id", (v) => r.Id.startsWith(v)) &&
    any("status", (v) => r.State.Status === v) &&
    any("exited", (v) => r.State.Status === "exited" && String(r.State.ExitCode) === v) &&
    any("ancestor", (v) => r.ImageName === v || r.Image === v || r.Image.startsWith(`sha256:${v}`) || ancestorIds.get(v) === r.Image)
  );
}

export function systemRoutes(x: Context): Route[] {
  const ping = async (req: Request, res: Response) => {
    await res.send(200, req.method === "HEAD" ? "" : "OK", {
      "Content-Type": "text/plain; charset=utf-8",
      "Cache-Control": "no-cache, no-store, must-revalidate",
      Pragma: "no-cache",
    });
  };
  return [
    { method: "GET", path: /^\/_ping$/, handle: ping },
    { method: "HEAD", path: /^\/_ping$/, handle: ping },
    {
      method: "GET",
      path: /^\/version$/,
      handle: async (_req, res) => {
        const commit = /commit: (\S+)/.exec(tinycVersion())?.[1] ?? "";
        await res.json(200, {
          Platform: { Name: "tinyc" },
          Components: [{
            Name: "Engine",
            Version: versionNumber(),
            Details: {
              ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, GitCommit: commit,
              GoVersion: `bun ${Bun.version}`, Os: "linux", Arch: goArch(), KernelVersion: release(),
              Experimental: "false", BuildTime: "",
            },
          }],
          Version: versionNumber(),
          ApiVersion: API_VERSION,
          MinAPIVersion: MIN_API_VERSION,
          GitCommit: commit,
          GoVersion: `bun ${Bun.version}`,
          Os: "linux",
          Arch: goArch(),
          KernelVersion: release(),
          BuildTime: "",
        });
      },
    },
    {
      method: "GET",
      path: /^\/info$/,
      handle: async (_req, res) => {
        const all = [...x.engine.containers.values()].map((c) => c.rec.State.Status);
        await res.json(200, {
          ID: "tinyc",
          Containers: all.length,
          ContainersRunning: all.filter((s) => s === "running").length,
          ContainersPaused: all.filter((s) => s === "paused").length,
          ContainersStopped: all.filter((s) => s !== "running" && s !== "paused").length,
          Images: x.store.listImages().length,
          Driver: "overlay",
          DriverStatus: [],
          Plugins: { Volume: [], Network: ["host", "none"], Authorization: null, Log: ["json-file"] },
          MemoryLimit: false,
          SwapLimit: false,
          CpuCfsPeriod: false,
          CpuCfsQuota: false,
          IPv4Forwarding: false,
          Debug: false,
          NFd: 0,
          NGoroutines: 0,
          SystemTime: new Date().toISOString(),
          LoggingDriver: "json-file",
          CgroupDriver: "none",
          CgroupVersion: "",
          NEventsListener: 0,
          KernelVersion: release(),
          OperatingSystem: "tinyc",
          OSType: "linux",
          Architecture: arch() === "x64" ? "x86_64" : arch(),
          NCPU: cpus().length,
          MemTotal: totalmem(),
          IndexServerAddress: "",
          RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: ["127.0.0.0/8"] },
          DockerRootDir: x.store.root,
          Name: hostname(),
          Labels: [],
          ExperimentalBuild: false,
          ServerVersion: versionNumber(),
          Runtimes: { tinyc: { path: process.execPath } },
          DefaultRuntime: "tinyc",
          SecurityOptions: ["name=seccomp,profile=default", ...(process.getuid!() !== 0 ? ["name=rootless"] : [])],
          Warnings: [],
        });
      },
    },
    {
      method: "GET",
      path: /^\/events$/,
      handle: async (req, res) => {
        let filters: Map<string, string[]>;
        try {
          filters = parseFilters(req.query.get("filters"));
        } catch (e) {
          throw new HttpError(400, (e as Error).message);
        }
        const since = req.query.get("since");
        const until = req.query.get("until");
        const untilMs = until ? Number(until) * 1000 : undefined;
        await res.begin(200, { "Content-Type": "application/json" });
        const send = (e: unknown) => res.write(JSON.stringify(e) + "\n");
        if (since) for (const e of x.events.since(Number(since))) if (eventMatches(e, filters)) await send(e);
        if (untilMs !== undefined && untilMs <= Date.now()) return;
        await new Promise<void>((resolve) => {
          const stop = x.events.listen((e) => {
            if (eventMatches(e, filters)) void send(e);
          });
          const end = () => {
            stop();
            resolve();
          };
          res.onClose(end);
          if (untilMs !== undefined) setTimeout(end, untilMs - Date.now());
        });
      },
    },
  ];
}

export function containerRoutes(x: Context): Route[] {
  const e = x.engine;
  return [
    {
      method: "GET",
      path: /^\/containers\/json$/,
      handle: async (req, res) => {
        let f: Map<string, string[]>;
        try {
          f = parseFilters(req.query.get("filters"));
        } catch (err) {
          throw new HttpError(400, (err as Error).message);
        }
        for (const k of f.keys()) {
          if (!PS_FILTERS.includes(k)) throw new HttpError(400, `invalid filter '${k}'`);
        }
        for (const v of f.get("status") ?? []) {
          if (!STATUSES.includes(v)) throw new HttpError(400, `invalid filter 'status=${v}'`);
        }
        // An ancestor named by another of its names is the same image.
        const ancestorIds = new Map<string, string>();
        for (const v of f.get("ancestor") ?? []) {
          try {
            const img = x.store.findImage(v);
            if (img) ancestorIds.set(v, img.id);
          } catch {}
        }
        const limit = intParam(req.query, "limit");
        const all = flag(req.query, "all") || f.has("status") || f.has("exited") || (limit !== undefined && limit > 0);
        let list = [...e.containers.values()].map((c) => c.rec)
          .filter((r) => all || r.State.Running)
          .filter((r) => psFilter(r, f, ancestorIds))
          .sort((a, b) => b.Created.localeCompare(a.Created));
        if (limit !== undefined && limit > 0) list = list.slice(0, limit);
        await res.json(200, list.map(summary));
      },
    },
    {
      method: "POST",
      path: /^\/containers\/create$/,
      handle: async (req, res) => {
        const body = await req.json();
        await res.json(201, await e.create(body ?? {}, req.query.get("name")));
      },
    },
    {
      method: "GET",
      path: /^\/containers\/([^/]+)\/json$/,
      handle: async (_req, res, m) => {
        const c = e.find(param(m[1]));
        await res.json(200, inspect(c.rec, [...c.execs]));
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/start$/,
      handle: async (_req, res, m) => {
        const c = e.find(param(m[1]));
        const r = await e.start(c);
        await res.send(r === "already" ? 304 : 204);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/stop$/,
      handle: async (req, res, m) => {
        const c = e.find(param(m[1]));
        const r = await e.stop(c, intParam(req.query, "t"));
        await res.send(r === "already" ? 304 : 204);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/restart$/,
      handle: async (req, res, m) => {
        const c = e.find(param(m[1]));
        await e.stop(c, intParam(req.query, "t"));
        await e.start(c);
        x.events.emit("container", "restart", c.rec.Id, { name: c.rec.Name.slice(1), image: c.rec.ImageName });
        await res.send(204);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/kill$/,
      handle: async (req, res, m) => {
        const c = e.find(param(m[1]));
        await e.kill(c, req.query.get("signal") || "KILL");
        await res.send(204);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/(pause|unpause)$/,
      handle: async (_req, res, m) => {
        await e.pause(e.find(param(m[1])), m[2] === "pause");
        await res.send(204);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/rename$/,
      handle: async (req, res, m) => {
        const name = req.query.get("name");
        if (!name) throw new HttpError(400, "name is required");
        e.rename(e.find(param(m[1])), name);
        await res.send(204);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/wait$/,
      handle: async (req, res, m) => {
        const c = e.find(param(m[1]));
        const cond = req.query.get("condition") || "not-running";
        if (!["not-running", "next-exit", "removed"].includes(cond)) {
          throw new HttpError(400, `invalid condition: ${JSON.stringify(cond)}`);
        }
        // The waiter is in place before the headers go: the CLI starts the container on them.
        let done: Promise<number>;
        if (cond === "removed") done = e.removed(c);
        else if (cond === "next-exit" || c.rec.State.Running || c.starting || c.rec.State.Restarting) done = e.nextExit(c);
        else done = Promise.resolve(c.rec.State.ExitCode);
        await res.begin(200, { "Content-Type": "application/json" });
        const gone = new Promise<null>((r) => res.onClose(() => r(null)));
        const code = await Promise.race([done, gone]);
        if (code === null) return;
        const err = cond !== "removed" && c.rec.State.Error ? { Message: c.rec.State.Error } : null;
        await res.write(JSON.stringify({ Error: err, StatusCode: code }) + "\n");
      },
    },
    {
      method: "DELETE",
      path: /^\/containers\/([^/]+)$/,
      handle: async (req, res, m) => {
        if (flag(req.query, "link")) throw new HttpError(400, "links are not supported");
        await e.remove(e.find(param(m[1])), flag(req.query, "force"));
        await res.send(204);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/attach$/,
      handle: async (req, res, m) => {
        const c = e.find(param(m[1]));
        if (!req.upgrade) throw new HttpError(400, "attach needs a connection upgrade (Upgrade: tcp)");
        if (flag(req.query, "logs")) throw new HttpError(400, "attach with logs=1 is not supported");
        const flags = (flag(req.query, "stdin") ? FLAG.stdin : 0) |
          (flag(req.query, "stdout") ? FLAG.stdout : 0) | (flag(req.query, "stderr") ? FLAG.stderr : 0);
        if (!flag(req.query, "stream")) throw new HttpError(400, "attach without stream=1 is not supported");
        const sock = await res.hijack();
        await e.attach(c, sock, res.inbound, flags);
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/resize$/,
      handle: async (req, res, m) => {
        const c = e.find(param(m[1]));
        await e.resize(c, intParam(req.query, "h") ?? 0, intParam(req.query, "w") ?? 0);
        await res.send(200, "");
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/exec$/,
      handle: async (req, res, m) => {
        const c = e.find(param(m[1]));
        const id = e.execCreate(c, await req.json());
        await res.json(201, { Id: id });
      },
    },
    {
      method: "POST",
      path: /^\/exec\/([^/]+)\/start$/,
      handle: async (req, res, m) => {
        const ex = e.findExec(param(m[1]));
        const body = (await req.json()) ?? {};
        const tty = !!(body.Tty ?? ex.Config.Tty);
        if (body.Detach) {
          await e.execStart(ex, undefined, undefined, tty);
          await res.send(200, "");
          return;
        }
        if (!req.upgrade) throw new HttpError(400, "exec start needs a connection upgrade (Upgrade: tcp)");
        if (ex.Running || ex.ExitCode !== null) throw new HttpError(409, `exec ${ex.ID} has already been started`);
        const sock = await res.hijack();
        try {
          await e.execStart(ex, sock, res.inbound, tty);
        } catch (err) {
          // The stream is the only way left to say it: on stderr, and the exec ends with 126
          // (cannot run), as the CLI reads the status from the exec's inspect.
          const text = Buffer.from(`${(err as Error).message}\n`);
          ex.ExitCode = err instanceof HttpError && err.status === 409 ? 1 : 126;
          ex.Running = false;
          sock.end(tty ? text : frame(2, text));
        }
      },
    },
    {
      method: "POST",
      path: /^\/exec\/([^/]+)\/resize$/,
      handle: async (req, res, m) => {
        const ex = e.findExec(param(m[1]));
        await e.execResize(ex, intParam(req.query, "h") ?? 0, intParam(req.query, "w") ?? 0);
        await res.send(200, "");
      },
    },
    {
      method: "GET",
      path: /^\/exec\/([^/]+)\/json$/,
      handle: async (_req, res, m) => {
        await res.json(200, e.execInspect(e.findExec(param(m[1]))));
      },
    },
    ...logsRoutes(x),
    {
      method: "GET",
      path: /^\/containers\/([^/]+)\/top$/,
      handle: async (req, res, m) => {
        await res.json(200, await e.top(e.find(param(m[1])), req.query.get("ps_args") ?? ""));
      },
    },
    unsupported("GET", /^\/containers\/[^/]+\/stats$/, "stats"),
    unsupported("GET", /^\/containers\/[^/]+\/changes$/, "diff"),
    unsupported("POST", /^\/containers\/[^/]+\/update$/, "update"),
    unsupported("GET", /^\/containers\/[^/]+\/archive$/, "cp"),
    unsupported("PUT", /^\/containers\/[^/]+\/archive$/, "cp"),
    unsupported("HEAD", /^\/containers\/[^/]+\/archive$/, "cp"),
    unsupported("POST", /^\/containers\/prune$/, "container prune"),
    ...networkRoutes(),
    unsupported("GET", /^\/networks(\/.*)?$/, "networks"),
    unsupported("POST", /^\/networks(\/.*)?$/, "networks"),
    unsupported("GET", /^\/volumes(\/.*)?$/, "volumes"),
    unsupported("POST", /^\/volumes(\/.*)?$/, "volumes"),
    unsupported("GET", /^\/system\/df$/, "system df"),
  ];
}

/** The three networks a container can name (there are no others to make or join). */
const NETWORKS = [
  { Name: "bridge", Driver: "slirp4netns", about: "a private network namespace, outbound through slirp4netns" },
  { Name: "host", Driver: "host", about: "the host's network namespace" },
  { Name: "none", Driver: "null", about: "loopback only" },
];

function networkRoutes(): Route[] {
  const shape = (n: (typeof NETWORKS)[number]) => ({
    Name: n.Name, Id: n.Name, Created: "0001-01-01T00:00:00Z", Scope: "local", Driver: n.Driver,
    EnableIPv6: false, IPAM: { Driver: "default", Options: null, Config: [] }, Internal: false,
    Attachable: false, Ingress: false, ConfigFrom: { Network: "" }, ConfigOnly: false,
    Containers: {}, Options: {}, Labels: { "run.tinyc.about": n.about },
  });
  return [
    {
      method: "GET",
      path: /^\/networks$/,
      handle: async (_req, res) => {
        await res.json(200, NETWORKS.map(shape));
      },
    },
    {
      method: "GET",
      path: /^\/networks\/([^/]+)$/,
      handle: async (_req, res, m) => {
        const n = NETWORKS.find((x) => x.Name === param(m[1]));
        if (!n) throw new HttpError(404, `network ${param(m[1])} not found`);
        await res.json(200, shape(n));
      },
    },
  ];
}

/** The one handler: version check, then the first route whose method and path match. */
export function router(routes: Route[]): Handler {
  return async (req, res) => {
    if (req.version !== undefined && compareVersions(req.version, API_VERSION) > 0) {
      throw new HttpError(400, `client version ${req.version} is too new. Maximum supported API version is ${API_VERSION}`);
    }
    let pathMatched = false;
    for (const r of routes) {
      const m = r.path.exec(req.path);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== req.method) continue;
      await r.handle(req, res, m);
      return;
    }
    if (pathMatched) throw new HttpError(405, `method ${req.method} is not allowed on ${req.path}`);
    throw new HttpError(404, `page not found: ${req.method} ${req.path}`);
  };
}

function compareVersions(a: string, b: string): number {
  const [a1, a2] = a.split(".").map(Number);
  const [b1, b2] = b.split(".").map(Number);
  return a1 !== b1 ? a1 - b1 : a2 - b2;
}
