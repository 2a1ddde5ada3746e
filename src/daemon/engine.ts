// The daemon's containers: what docker create asked for, their state as docker reports it, and
// the moves between states. Each container is a folder under the data root (config.json, its
// writable layer, its logs, daemon.json); a shim per running container holds its stdio and
// records how it ended, so the daemon can go away and come back without touching it.

import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import type * as net from "node:net";
import { join } from "node:path";
import { TinycError } from "../errors";
import { log } from "../log";
import type { Image, ImageStore } from "../image/store";
import type { ContainerConfig } from "../image/types";
import { claimName, containersDir, releaseName, type ContainerMeta } from "../image/containers";
import { OVERLAY_ANNOTATION } from "../runtime/annotations";
import { CAPABILITIES } from "../oci/config";
import { defaultStateRoot, newId } from "../runtime/state";
import { selfArgv } from "../runtime/self";
import type { NetworkMode, PortSpec } from "../runtime/network";
import type { Events } from "./events";
import { HttpError, type Inbound } from "./http";
import {
  attachRequest,
  connectShim,
  execRequest,
  exitFile,
  FLAG,
  frame,
  FrameReader,
  execResizeRequest,
  resizeRequest,
  startShim,
  waitRequest,
  type ExitRecord,
} from "./shim";

export interface DockerState {
  Status: "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
}

const ZERO_TIME = "0001-01-01T00:00:00Z";

export interface Record {
  Id: string;
  /** With docker's leading slash. */
  Name: string;
  Created: string;
  Path: string;
  Args: string[];
  /** The image's id (sha256:...). */
  Image: string;
  /** The image as the user named it. */
  ImageName: string;
  Config: any;
  HostConfig: any;
  State: DockerState;
  RestartCount: number;
  /** Stopped by a user: `unless-stopped` and `always` leave it stopped. */
  ManuallyStopped: boolean;
  Driver: string;
  LogPath: string;
  Warnings?: string[];
}

interface ExecRecord {
  ID: string;
  ContainerID: string;
  Config: any;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  n: number;
  /** The pid file of its run, which names it to the shim. */
  pidFile?: string;
  /** The terminal size last asked for (rows, columns). */
  size?: [number, number];
}

type Waiter = (code: number) => void;

interface Live {
  rec: Record;
  dir: string;
  /** Attach connections made before the container started, to join it when it does. */
  pending: { client: net.Socket; inbound: Inbound; flags: number }[];
  exitWaiters: Waiter[];
  removedWaiters: Waiter[];
  monitor?: net.Socket;
  starting?: Promise<void>;
  restartTimer?: ReturnType<typeof setTimeout>;
  removing?: Promise<void>;
  /** Its start failed and it is being removed from inside that start. */
  failedStart?: boolean;
  execs: Set<string>;
}

const NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const ADJECTIVES = ["admiring", "bold", "clever", "dreamy", "eager", "festive", "gentle", "happy",
  "jolly", "keen", "lucid", "modest", "nifty", "optimistic", "quirky", "serene", "tender", "vibrant"];
const NAMES = ["archimedes", "babbage", "curie", "darwin", "euler", "feynman", "galileo", "hopper",
  "johnson", "kepler", "lovelace", "meitner", "noether", "pascal", "ritchie", "turing", "wozniak"];

export interface EngineOptions {
  store: ImageStore;
  events: Events;
  /** The shim and any arguments before its own. */
  shim: string[];
  logMaxSize: number;
  logMaxFiles: number;
}

export class Engine {
  readonly containers = new Map<string, Live>();
  readonly execs = new Map<string, ExecRecord>();
  readonly stateRoot = defaultStateRoot();

  constructor(readonly o: EngineOptions) {}

  // ---- finding -------------------------------------------------------------------------------

  find(text: string): Live {
    const t = text.startsWith("/") ? text.slice(1) : text;
    const byId = this.containers.get(t);
    if (byId) return byId;
    for (const c of this.containers.values()) if (c.rec.Name === `/${t}`) return c;
    if (/^[0-9a-f]+$/.test(t)) {
      const hits = [...this.containers.values()].filter((c) => c.rec.Id.startsWith(t));
      if (hits.length === 1) return hits[0];
      if (hits.length > 1) throw new HttpError(400, `multiple IDs found with provided prefix: ${t}`);
    }
    throw new HttpError(404, `No such container: ${text}`);
  }

  private save(c: Live): void {
    const tmp = join(c.dir, ".daemon.json.tmp");
    try {
      writeFileSync(tmp, JSON.stringify(c.rec), { mode: 0o600 });
      renameSync(tmp, join(c.dir, "daemon.json"));
    } catch (e) {
      // A container removed meanwhile has no record left to keep.
      if ((e as NodeJS.ErrnoException).code === "ENOENT" && (c.removing || !this.containers.has(c.rec.Id))) return;
      throw e;
    }
  }

  private attrs(c: Live, extra: Record2 = {}): Record2 {
    return { image: c.rec.ImageName, name: c.rec.Name.slice(1), ...(c.rec.Config.Labels ?? {}), ...extra };
  }

  // ---- loading after a start of the daemon ----------------------------------------------------

  async recover(): Promise<void> {
    let ids: string[] = [];
    try {
      ids = readdirSync(containersDir());
    } catch {}
    for (const id of ids) {
      const dir = join(containersDir(), id);
      let rec: Record;
      try {
        rec = JSON.parse(readFileSync(join(dir, "daemon.json"), "utf8"));
      } catch {
        continue;
      }
      const c: Live = { rec, dir, pending: [], exitWaiters: [], removedWaiters: [], execs: new Set() };
      this.containers.set(id, c);
      if (rec.State.Status === "removing") {
        await this.remove(c, true).catch((e) => log("warn", `removing ${id}: ${(e as Error).message}`));
        continue;
      }
      if (rec.State.Running || rec.State.Restarting) {
        if (shimAlive(dir)) {
          await this.watch(c).catch(() => this.ended(c));
        } else await this.ended(c);
        continue;
      }
      // A daemon that died between a shim's create and the start left the first process
      // waiting for a start nobody will give: it goes, and the container is created again.
      if (shimAlive(dir) && this.runtimeState(id)) await this.runtime("delete", "--force", id);
      // As dockerd does: a --rm container that is not running is removed.
      if (rec.HostConfig.AutoRemove) {
        await this.remove(c, true).catch((e) => log("warn", `removing ${id}: ${(e as Error).message}`));
      }
    }
    // Restart policies apply when the daemon comes up, as they do when dockerd does.
    for (const c of this.containers.values()) {
      const p = c.rec.HostConfig.RestartPolicy?.Name ?? "no";
      if (c.rec.State.Running) continue;
      if (p === "always" || (p === "unless-stopped" && !c.rec.ManuallyStopped)) {
        if (c.rec.State.StartedAt === ZERO_TIME) continue;
        this.start(c).catch((e) => log("warn", `restarting ${c.rec.Id}: ${(e as Error).message}`));
      }
    }
  }

  // ---- create --------------------------------------------------------------------------------

  async create(body: any, name: string | null): Promise<{ Id: string; Warnings: string[] }> {
    // What making a container needs is loaded on the first one: a daemon at rest stays small.
    const { familiarReference, parseReference } = await import("../image/reference");
    const { mergeEnv, specFromImage } = await import("../image/runspec");
    const { stringifySpec } = await import("../oci/spec");
    const { storageDriver } = await import("../commands/container");
    const { parseNetworkFlag, prepareNetwork } = await import("../runtime/network");
    const { runInUserns } = await import("../runtime/userns");
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new HttpError(400, "the request body must be a JSON object");
    }
    const hc = body.HostConfig ?? {};
    if (typeof hc !== "object" || Array.isArray(hc)) throw new HttpError(400, "HostConfig must be an object");
    if (typeof body.Image !== "string" || body.Image === "") throw new HttpError(400, "Config.Image is required");
    const warnings: string[] = [];
    if (name !== null && name !== "" && !NAME.test(name)) {
      throw new HttpError(400, `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    const wanted = name ? `/${name.replace(/^\//, "")}` : this.generatedName();
    for (const c of this.containers.values()) {
      if (c.rec.Name === wanted) {
        throw new HttpError(409, `Conflict. The container name "${wanted}" is already in use by container "${c.rec.Id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
    }
    let img: Image | undefined;
    try {
      img = this.o.store.findImage(body.Image);
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
    if (!img) throw new HttpError(404, `No such image: ${body.Image}`);
    const imageConfig: ContainerConfig = this.o.store.imageConfig(img);
    const lower = [...this.o.store.layerDirs(img)].reverse();

    checkStrings(body.Cmd, "Cmd");
    checkStrings(body.Env, "Env");
    checkStrings(hc.Binds, "HostConfig.Binds");
    checkStringMap(body.Labels, "Labels");
    checkStringMap(hc.Tmpfs, "HostConfig.Tmpfs");
    for (const [k, v] of [["Hostname", body.Hostname], ["User", body.User], ["WorkingDir", body.WorkingDir],
      ["StopSignal", body.StopSignal], ["Domainname", body.Domainname]] as const) {
      if (v !== undefined && v !== null && typeof v !== "string") throw new HttpError(400, `${k} must be a string`);
    }
    const retries = hc.RestartPolicy?.MaximumRetryCount;
    if (retries !== undefined && (!Number.isInteger(retries) || retries < 0)) {
      throw new HttpError(400, "RestartPolicy.MaximumRetryCount must be a whole number, 0 or more");
    }
    if (typeof body.StopSignal === "string" && body.StopSignal !== "") {
      const { parseSignal } = await import("../runtime/container");
      try {
        parseSignal(body.StopSignal);
      } catch {
        throw new HttpError(400, `invalid StopSignal ${JSON.stringify(body.StopSignal)}`);
      }
    }
    for (const e of [...(body.Env ?? []), ...(body.Cmd ?? []), ...(Array.isArray(body.Entrypoint) ? body.Entrypoint : [])]) {
      if (String(e).includes("\0")) throw new HttpError(400, "Env, Cmd and Entrypoint cannot hold NUL bytes");
    }
    const entry: string[] = Array.isArray(body.Entrypoint)
      ? body.Entrypoint.filter((s: unknown) => s !== "")
      : typeof body.Entrypoint === "string" && body.Entrypoint !== ""
        ? [body.Entrypoint]
        : body.Entrypoint !== undefined && body.Entrypoint !== null
          ? []
          : (imageConfig.Entrypoint ?? []);
    const entryGiven = body.Entrypoint !== undefined && body.Entrypoint !== null;
    const cmd: string[] = Array.isArray(body.Cmd) && body.Cmd.length > 0 ? body.Cmd : entryGiven ? [] : (imageConfig.Cmd ?? []);
    const args = [...entry, ...cmd];
    if (args.length === 0) throw new HttpError(400, "No command specified");

    for (const unsupported of ["Privileged", "PublishAllPorts"]) {
      if (hc[unsupported]) throw new HttpError(400, `HostConfig.${unsupported} is not supported`);
    }
    const mode = String(hc.NetworkMode ?? "default");
    let net: { mode: NetworkMode; allowHostLoopback: boolean };
    try {
      net = parseNetworkFlag(mode);
    } catch (e) {
      throw new HttpError(400, `network ${mode} is not supported: use default, bridge, slirp4netns, host or none`);
    }
    const network = net.mode;
    // {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}: one spec per host binding.
    const ports: PortSpec[] = [];
    for (const [key, binds] of Object.entries(hc.PortBindings ?? {})) {
      const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(key);
      if (!m) throw new HttpError(400, `invalid port ${JSON.stringify(key)}`);
      for (const b of (Array.isArray(binds) ? binds : []) as { HostIp?: string; HostPort?: string }[]) {
        if (!b?.HostPort || !/^\d+$/.test(b.HostPort)) {
          throw new HttpError(400, `port ${key}: a host port is needed (a random one is not supported)`);
        }
        ports.push({ hostIp: b.HostIp || "0.0.0.0", hostPort: Number(b.HostPort), containerPort: Number(m[1]),
          proto: (m[2] ?? "tcp") as "tcp" | "udp" });
      }
    }
    checkStrings(hc.Dns, "HostConfig.Dns");
    checkStrings(hc.DnsSearch, "HostConfig.DnsSearch");
    checkStrings(hc.DnsOptions, "HostConfig.DnsOptions");
    checkStrings(hc.ExtraHosts, "HostConfig.ExtraHosts");
    const volumes: string[] = [...(hc.Binds ?? [])];
    const tmpfs: string[] = Object.entries(hc.Tmpfs ?? {}).map(([d, o]) => (o ? `${d}:${o}` : d));
    for (const m of hc.Mounts ?? []) {
      if (m.Type === "bind") volumes.push(`${m.Source}:${m.Target}${m.ReadOnly ? ":ro" : ""}`);
      else if (m.Type === "tmpfs") tmpfs.push(m.Target);
      else throw new HttpError(400, `mount type ${JSON.stringify(m.Type)} is not supported`);
    }
    for (const b of volumes) {
      const src = b.split(":")[0];
      if (!src.startsWith("/")) throw new HttpError(400, `named volumes are not supported: ${JSON.stringify(b)}`);
    }
    const policy = hc.RestartPolicy?.Name ?? "no";
    if (!["", "no", "always", "on-failure", "unless-stopped"].includes(policy)) {
      throw new HttpError(400, `invalid restart policy ${JSON.stringify(policy)}`);
    }
    if (hc.AutoRemove && policy !== "" && policy !== "no") {
      throw new HttpError(400, "conflicting options: AutoRemove and a restart policy");
    }
    for (const k of ["Memory", "NanoCpus", "CpuShares", "PidsLimit", "CpuQuota"]) {
      if (hc[k]) warnings.push(`${k} is not applied: the daemon sets no resource limits`);
    }
    if (hc.Init) warnings.push("--init is not supported: the command runs as the container's first process");
    if (Array.isArray(hc.GroupAdd) && hc.GroupAdd.length) warnings.push("--group-add is not supported: no groups were added");

    const id = newId() + newId();
    const dir = join(containersDir(), id);
    mkdirSync(containersDir(), { recursive: true, mode: 0o700 });
    for (const sub of ["rootfs", "upper", "work"]) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
    chmodSync(join(dir, "upper"), 0o755);
    // The name is claimed in the store, as tinyc run claims its names: one container a name,
    // whichever made it.
    if (!claimName(wanted.slice(1), id)) {
      removeDir(dir);
      throw new HttpError(409, `Conflict. The container name "${wanted}" is already in use by another container. You have to remove (or rename) that container to be able to reuse that name.`);
    }
    try {
      let spec;
      try {
        spec = specFromImage(imageConfig, join(dir, "rootfs"), {
          args,
          entrypoint: "",
          env: (body.Env ?? []).filter((e: string) => e.includes("=")),
          envFiles: [],
          workdir: body.WorkingDir || undefined,
          user: body.User || undefined,
          tty: !!body.Tty,
          readOnly: !!hc.ReadonlyRootfs,
          tmpfs,
          volumes,
          hostname: body.Hostname || id.slice(0, 12),
          network,
          lookup: lower,
          labels: body.Labels ?? {},
        });
      } catch (e) {
        if (e instanceof TinycError) throw new HttpError(400, e.message);
        throw e;
      }
      try {
        prepareNetwork({
          mode: network, allowHostLoopback: net.allowHostLoopback, ports, hostname: spec.hostname!, dir,
          dns: hc.Dns ?? [], dnsSearch: hc.DnsSearch ?? [], dnsOptions: hc.DnsOptions ?? [],
          addHosts: (hc.ExtraHosts ?? []).map((h: string) => h.replace(/^([^:]+):/, "$1:")),
        }).apply(spec);
      } catch (e) {
        if (e instanceof TinycError) throw new HttpError(400, e.message);
        throw e;
      }
      const size = hc.ConsoleSize;
      if (body.Tty && Array.isArray(size) && size[0] > 0 && size[1] > 0) {
        spec.process!.consoleSize = { height: Number(size[0]), width: Number(size[1]) };
      }
      if (Array.isArray(hc.CapAdd) || Array.isArray(hc.CapDrop)) {
        const caps = new Set(spec.process!.capabilities!.bounding);
        const norm = (c: string) => (c.toUpperCase().startsWith("CAP_") ? c.toUpperCase() : `CAP_${c.toUpperCase()}`);
        for (const c of hc.CapDrop ?? []) {
          if (String(c).toUpperCase() === "ALL") caps.clear();
          else caps.delete(norm(String(c)));
        }
        for (const c of hc.CapAdd ?? []) {
          if (String(c).toUpperCase() === "ALL") for (const all of Object.keys(CAPABILITIES)) caps.add(all);
          else caps.add(norm(String(c)));
        }
        const list = [...caps];
        const unknown = list.find((c) => CAPABILITIES[c] === undefined);
        if (unknown) throw new HttpError(400, `unknown capability ${JSON.stringify(unknown)}`);
        spec.process!.capabilities = { bounding: list, effective: list, permitted: list };
      }
      let driver: "overlay" | "fuse-overlayfs" | "copy";
      try {
        driver = storageDriver(undefined).driver;
      } catch (e) {
        throw new HttpError(500, (e as Error).message);
      }
      // Kept for inspect and ps.
      hc.PortBindings = hc.PortBindings ?? {};
      if (driver === "copy") {
        const mnt = join(dir, "work");
        const r = await runInUserns(["cp", "-a", "--", `${mnt}/.`, join(dir, "rootfs")], { overlay: { lower, at: mnt } });
        if (r.code !== 0) throw new Error(`copying the image's files failed (status ${r.code})`);
      }
      // dockerd makes a missing working folder; scripts count on `-w /new/dir`.
      const cwd = spec.process!.cwd ?? "/";
      if (cwd !== "/") {
        mkdirSync(join(dir, driver === "copy" ? "rootfs" : "upper", cwd), { recursive: true, mode: 0o755 });
      }
      spec.annotations = {
        ...spec.annotations,
        ...(driver !== "copy" && {
          [OVERLAY_ANNOTATION]: JSON.stringify({
            lower, upper: join(dir, "upper"), work: join(dir, "work"),
            ...(driver === "fuse-overlayfs" && { driver }),
          }),
        }),
        "run.tinyc.image": familiarReference(parseReference(body.Image)),
        "run.tinyc.name": wanted.slice(1),
      };
      writeFileSync(join(dir, "config.json"), stringifySpec(spec));
      const now = new Date().toISOString();
      const meta: ContainerMeta = {
        id,
        name: wanted.slice(1),
        image: familiarReference(parseReference(body.Image)),
        imageId: img.id,
        command: spec.process!.args!,
        created: now,
      };
      writeFileSync(join(dir, "meta.json"), JSON.stringify({ ...meta, daemon: true }));
      const config = {
        Hostname: spec.hostname ?? id.slice(0, 12),
        Domainname: body.Domainname ?? "",
        User: body.User ?? imageConfig.User ?? "",
        AttachStdin: !!body.AttachStdin,
        AttachStdout: !!body.AttachStdout,
        AttachStderr: !!body.AttachStderr,
        ExposedPorts: body.ExposedPorts ?? imageConfig.ExposedPorts,
        Tty: !!body.Tty,
        OpenStdin: !!body.OpenStdin,
        StdinOnce: !!body.StdinOnce,
        Env: mergeEnv(imageConfig.Env ?? [], body.Env ?? []),
        Cmd: cmd.length ? cmd : null,
        Image: body.Image,
        Volumes: body.Volumes ?? null,
        WorkingDir: cwd === "/" && !body.WorkingDir && !imageConfig.WorkingDir ? "" : cwd,
        Entrypoint: entry.length ? entry : null,
        OnBuild: null,
        Labels: { ...(imageConfig.Labels ?? {}), ...(body.Labels ?? {}) },
        StopSignal: body.StopSignal ?? imageConfig.StopSignal,
        StopTimeout: body.StopTimeout,
      };
      const rec: Record = {
        Id: id,
        Name: wanted,
        Created: now,
        Path: args[0],
        Args: args.slice(1),
        Image: img.id,
        ImageName: body.Image,
        Config: config,
        HostConfig: {
          ...hc,
          Binds: hc.Binds ?? null,
          NetworkMode: mode,
          RestartPolicy: { Name: policy || "no", MaximumRetryCount: hc.RestartPolicy?.MaximumRetryCount ?? 0 },
          AutoRemove: !!hc.AutoRemove,
          LogConfig: { Type: "json-file", Config: {} },
        },
        State: {
          Status: "created", Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
          Pid: 0, ExitCode: 0, Error: "", StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME,
        },
        RestartCount: 0,
        ManuallyStopped: false,
        Driver: driver,
        LogPath: join(dir, "container.log"),
        Warnings: warnings,
      };
      const c: Live = { rec, dir, pending: [], exitWaiters: [], removedWaiters: [], execs: new Set() };
      this.save(c);
      this.containers.set(id, c);
      this.o.events.emit("container", "create", id, this.attrs(c));
      return { Id: id, Warnings: warnings };
    } catch (e) {
      releaseName(wanted.slice(1), id);
      removeDir(dir);
      throw e;
    }
  }

  private generatedName(): string {
    const taken = new Set([...this.containers.values()].map((c) => c.rec.Name));
    for (;;) {
      const r = crypto.getRandomValues(new Uint16Array(2));
      const n = `/${ADJECTIVES[r[0] % ADJECTIVES.length]}_${NAMES[r[1] % NAMES.length]}`;
      if (!taken.has(n)) return n;
      const m = `${n}${r[0] % 100}`;
      if (!taken.has(m)) return m;
    }
  }

  // ---- the runtime ---------------------------------------------------------------------------

  private runtimeArgv(...args: string[]): string[] {
    return selfArgv("--root", this.stateRoot, ...args);
  }

  async runtime(...args: string[]): Promise<{ code: number; stderr: string }> {
    const p = Bun.spawn(this.runtimeArgv(...args), { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const stderr = await new Response(p.stderr).text();
    return { code: await p.exited, stderr: stderr.trim() };
  }

  private runtimeState(id: string): boolean {
    return existsSync(join(this.stateRoot, id));
  }

  // ---- start ---------------------------------------------------------------------------------

  async start(c: Live): Promise<"started" | "already"> {
    if (c.starting) {
      await c.starting;
      return "already";
    }
    if (c.rec.State.Running) return "already";
    if (c.rec.State.Status === "removing") throw new HttpError(409, `container ${c.rec.Id} is being removed`);
    const p = this.doStart(c);
    c.starting = p;
    try {
      await p;
    } finally {
      c.starting = undefined;
    }
    return "started";
  }

  private async doStart(c: Live): Promise<void> {
    const id = c.rec.Id;
    if (this.runtimeState(id)) await this.runtime("delete", "--force", id);
    rmSync(exitFile(c.dir), { force: true });
    rmSync(join(c.dir, "runtime.log"), { force: true });
    const cfg = c.rec.Config;
    const tty = !!cfg.Tty;
    const runtime = this.runtimeArgv(
      "--log", "runtime.log", "--log-format", "json",
      "create", "--bundle", c.dir, "--pid-file", "init.pid",
      ...(tty ? ["--console-socket", "console.sock"] : []),
      id,
    );
    const r = await startShim({
      dir: c.dir,
      tty,
      stdin: !!cfg.OpenStdin,
      stdinOnce: !!cfg.StdinOnce,
      logMaxSize: this.o.logMaxSize,
      logMaxFiles: this.o.logMaxFiles,
      runtime,
      shim: this.o.shim,
    });
    if (!r.ok) {
      const msg = runtimeError(c.dir) ?? `the runtime failed (status ${r.status})`;
      const code = r.status === 126 || r.status === 127 ? r.status : 128;
      await this.startFailed(c, code, msg);
      throw new HttpError(r.status === 127 || r.status === 126 ? 400 : 500, msg);
    }
    await this.watch(c);
    // The size the CLI asked for at create, before the program first looks.
    const size = c.rec.HostConfig.ConsoleSize;
    if (tty && Array.isArray(size) && size[0] > 0 && size[1] > 0) {
      await this.resizeShim(c, resizeRequest(size[0], size[1])).catch(() => {});
    }
    // Each attach made before the start is in place (the shim says so) before the start.
    await Promise.all(c.pending.splice(0).map((a) =>
      this.pump(c, a.client, a.inbound, a.flags).catch(() => a.client.destroy())));
    const s = await this.runtime("start", id);
    if (s.code !== 0) {
      const msg = s.stderr.replace(/^tinyc: /, "") || `start failed (status ${s.code})`;
      await this.runtime("kill", id, "KILL");
      await this.startFailed(c, 128, msg);
      throw new HttpError(500, msg);
    }
    const st = c.rec.State;
    Object.assign(st, {
      Status: "running", Running: true, Paused: false, Restarting: false, Dead: false,
      Pid: r.pid, ExitCode: 0, Error: "", StartedAt: new Date().toISOString(), FinishedAt: ZERO_TIME,
    });
    c.rec.ManuallyStopped = false;
    this.save(c);
    this.o.events.emit("container", "start", id, this.attrs(c));
  }

  /**
   * A start that failed: attached clients are let go, waiters told, and a --rm container
   * removed, as the docker CLI waits for all three before it reports the error.
   */
  private async startFailed(c: Live, code: number, msg: string): Promise<void> {
    const id = c.rec.Id;
    if (c.monitor) {
      const m = c.monitor;
      c.monitor = undefined;
      m.destroy();
    }
    if (this.runtimeState(id)) await this.runtime("delete", "--force", id);
    this.setExited(c, code, msg);
    for (const a of c.pending.splice(0)) a.client.end();
    for (const w of c.exitWaiters.splice(0)) w(code);
    if (c.rec.HostConfig.AutoRemove) {
      c.failedStart = true;
      await this.remove(c, true).catch(() => {});
    }
  }

  /** Holds a wait connection to the shim; its end is the container's end. */
  private async watch(c: Live): Promise<void> {
    const s = await connectShim(c.dir, waitRequest);
    c.monitor = s;
    let status: number | undefined;
    const reader = new FrameReader(() => {}, (code) => (status = code));
    s.on("data", (d: Buffer) => reader.push(d));
    s.on("error", () => {});
    s.on("close", () => {
      log("debug", `daemon: the shim of ${c.rec.Id} closed its wait connection (status ${status})`);
      if (c.monitor !== s) return;
      c.monitor = undefined;
      // A process that ends at once may end before its start is recorded: that comes first.
      const starting = c.starting ?? Promise.resolve();
      void starting.catch(() => {}).then(() => this.ended(c, status));
    });
  }

  /** The container's first process has ended (or its shim has). */
  private async ended(c: Live, status?: number): Promise<void> {
    const id = c.rec.Id;
    let exit: ExitRecord | undefined;
    try {
      exit = JSON.parse(readFileSync(exitFile(c.dir), "utf8"));
    } catch {}
    if (exit) this.setExited(c, exit.exitCode, "", exit.finishedAt);
    else if (status !== undefined) this.setExited(c, status, "");
    else {
      // The shim went without recording an end: its container may still run, alone.
      await this.runtime("kill", id, "KILL");
      this.setExited(c, 137, "the container's shim ended unexpectedly");
    }
    if (this.runtimeState(id)) await this.runtime("delete", "--force", id);
    const code = c.rec.State.ExitCode;
    this.o.events.emit("container", "die", id, this.attrs(c, { exitCode: String(code) }));
    for (const w of c.exitWaiters.splice(0)) w(code);
    if (this.shouldRestart(c)) {
      c.rec.RestartCount++;
      c.rec.State.Restarting = true;
      c.rec.State.Status = "restarting";
      this.save(c);
      const delay = Math.min(100 * 2 ** Math.min(c.rec.RestartCount - 1, 10), 60_000);
      c.restartTimer = setTimeout(() => {
        c.restartTimer = undefined;
        if (!this.containers.has(id) || !c.rec.State.Restarting) return;
        this.start(c).catch((e) => {
          log("warn", `restarting ${id}: ${(e as Error).message}`);
          c.rec.State.Restarting = false;
          c.rec.State.Status = "exited";
          this.save(c);
        });
      }, delay);
      return;
    }
    if (c.rec.HostConfig.AutoRemove) await this.remove(c, true).catch(() => {});
  }

  private shouldRestart(c: Live): boolean {
    const p = c.rec.HostConfig.RestartPolicy ?? { Name: "no" };
    if (c.rec.ManuallyStopped || c.rec.State.Status === "removing") return false;
    if (p.Name === "always" || p.Name === "unless-stopped") return true;
    if (p.Name === "on-failure") {
      return c.rec.State.ExitCode !== 0 && (!p.MaximumRetryCount || c.rec.RestartCount < p.MaximumRetryCount);
    }
    return false;
  }

  private setExited(c: Live, code: number, error: string, finishedAt?: string): void {
    Object.assign(c.rec.State, {
      Status: "exited", Running: false, Paused: false, Restarting: false, Pid: 0,
      ExitCode: code, Error: error, FinishedAt: finishedAt ?? new Date().toISOString(),
    });
    this.save(c);
  }

  // ---- stop, kill, pause, remove -------------------------------------------------------------

  async kill(c: Live, signal: string): Promise<void> {
    if (!c.rec.State.Running) throw new HttpError(409, `Container ${c.rec.Id} is not running`);
    const { parseSignal } = await import("../runtime/container");
    let sig: number;
    try {
      sig = parseSignal(signal);
    } catch {
      throw new HttpError(400, `Invalid signal: ${signal}`);
    }
    const r = await this.runtime("kill", c.rec.Id, String(sig));
    if (r.code !== 0 && c.rec.State.Running) throw new HttpError(500, r.stderr.replace(/^tinyc: /, ""));
    this.o.events.emit("container", "kill", c.rec.Id, this.attrs(c, { signal: String(sig) }));
  }

  /** Resolves with the exit code of the next end of C's first process. */
  nextExit(c: Live): Promise<number> {
    return new Promise((r) => c.exitWaiters.push(r));
  }

  removed(c: Live): Promise<number> {
    return new Promise((r) => c.removedWaiters.push(r));
  }

  async stop(c: Live, seconds: number | undefined): Promise<"stopped" | "already"> {
    if (c.restartTimer) {
      clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      c.rec.State.Restarting = false;
      c.rec.State.Status = "exited";
    }
    c.rec.ManuallyStopped = true;
    this.save(c);
    if (!c.rec.State.Running) return "already";
    const t = seconds ?? c.rec.Config.StopTimeout ?? 10;
    const exit = this.nextExit(c);
    const sig = c.rec.Config.StopSignal || "TERM";
    await this.runtime("kill", c.rec.Id, String(sig)).catch(() => {});
    const timedOut = await Promise.race([exit.then(() => false), sleep(Math.max(0, t) * 1000).then(() => true)]);
    if (timedOut && c.rec.State.Running) {
      await this.runtime("kill", c.rec.Id, "KILL");
      await exit;
    }
    this.o.events.emit("container", "stop", c.rec.Id, this.attrs(c));
    return "stopped";
  }

  async pause(c: Live, pause: boolean): Promise<void> {
    if (!c.rec.State.Running) throw new HttpError(409, `Container ${c.rec.Id} is not running`);
    if (c.rec.State.Paused === pause) {
      throw new HttpError(409, `Container ${c.rec.Id} is ${pause ? "already paused" : "not paused"}`);
    }
    const r = await this.runtime(pause ? "pause" : "resume", c.rec.Id);
    if (r.code !== 0) throw new HttpError(500, r.stderr.replace(/^tinyc: /, ""));
    c.rec.State.Paused = pause;
    c.rec.State.Status = pause ? "paused" : "running";
    this.save(c);
    this.o.events.emit("container", pause ? "pause" : "unpause", c.rec.Id, this.attrs(c));
  }

  /** Removes C; a second removal while one runs waits for that one. */
  remove(c: Live, force: boolean): Promise<void> {
    if (c.removing) return c.removing;
    const p = this.doRemove(c, force);
    c.removing = p;
    p.catch(() => {}).then(() => {
      if (c.removing === p && this.containers.has(c.rec.Id)) c.removing = undefined;
    });
    return p;
  }

  private async doRemove(c: Live, force: boolean): Promise<void> {
    if (c.rec.State.Running || (c.starting && !c.failedStart)) {
      if (!force) {
        throw new HttpError(409, `You cannot remove a running container ${c.rec.Id}. Stop the container before attempting removal or force remove`);
      }
      c.rec.ManuallyStopped = true;
      const exit = this.nextExit(c);
      await this.runtime("kill", c.rec.Id, "KILL");
      this.o.events.emit("container", "kill", c.rec.Id, this.attrs(c, { signal: "9" }));
      await Promise.race([exit, sleep(10_000)]);
    }
    if (c.restartTimer) clearTimeout(c.restartTimer);
    c.rec.State.Status = "removing";
    c.rec.State.Restarting = false;
    this.save(c);
    if (this.runtimeState(c.rec.Id)) await this.runtime("delete", "--force", c.rec.Id);
    c.monitor?.destroy();
    releaseName(c.rec.Name.slice(1), c.rec.Id);
    removeDir(c.dir);
    this.containers.delete(c.rec.Id);
    for (const x of c.execs) this.execs.delete(x);
    this.o.events.emit("container", "destroy", c.rec.Id, this.attrs(c));
    for (const w of c.removedWaiters.splice(0)) w(c.rec.State.ExitCode);
  }

  rename(c: Live, name: string): void {
    if (!NAME.test(name)) throw new HttpError(400, `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const wanted = `/${name.replace(/^\//, "")}`;
    for (const o of this.containers.values()) {
      if (o !== c && o.rec.Name === wanted) {
        throw new HttpError(409, `Conflict. The container name "${wanted}" is already in use by container "${o.rec.Id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
    }
    const old = c.rec.Name;
    if (old === wanted) return;
    if (!claimName(wanted.slice(1), c.rec.Id)) {
      throw new HttpError(409, `Conflict. The container name "${wanted}" is already in use by another container. You have to remove (or rename) that container to be able to reuse that name.`);
    }
    releaseName(old.slice(1), c.rec.Id);
    c.rec.Name = wanted;
    this.save(c);
    try {
      const metaPath = join(c.dir, "meta.json");
      const meta = JSON.parse(readFileSync(metaPath, "utf8"));
      meta.name = wanted.slice(1);
      writeFileSync(metaPath, JSON.stringify(meta));
    } catch {}
    this.o.events.emit("container", "rename", c.rec.Id, this.attrs(c, { oldName: old }));
  }

  /** docker top: the container's processes, as ps prints them on the host. */
  async top(c: Live, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    if (!c.rec.State.Running) throw new HttpError(409, `Container ${c.rec.Id} is not running`);
    const p = Bun.spawn(this.runtimeArgv("ps", "--format", "json", c.rec.Id), { stdout: "pipe", stderr: "pipe" });
    const [out, code] = [await new Response(p.stdout).text(), await p.exited];
    if (code !== 0) throw new HttpError(500, `top: the runtime's ps failed (status ${code})`);
    const pids = (JSON.parse(out) as number[]).filter((n) => Number.isInteger(n));
    if (pids.length === 0) return { Titles: [], Processes: [] };
    const fields = psArgs.trim() === "" ? ["-o", "user,pid,ppid,c,stime,tty,time,cmd"] : psArgs.trim().split(/\s+/);
    if (!fields.every((f) => /^[-a-zA-Z0-9,=:%]+$/.test(f))) throw new HttpError(400, `ps options ${JSON.stringify(psArgs)}: not supported`);
    const ps = Bun.spawnSync(["ps", ...fields, "-p", pids.join(",")], { stderr: "pipe" });
    if (ps.exitCode !== 0 && ps.stdout.length === 0) {
      throw new HttpError(500, `ps ${fields.join(" ")}: ${ps.stderr.toString().trim()}`);
    }
    const lines = ps.stdout.toString().trimEnd().split("\n");
    const titles = lines[0].trim().split(/\s+/);
    const rows = lines.slice(1).map((l) => {
      const cols = l.trim().split(/\s+/);
      return [...cols.slice(0, titles.length - 1), cols.slice(titles.length - 1).join(" ")];
    });
    return { Titles: titles, Processes: rows };
  }

  // ---- attach --------------------------------------------------------------------------------

  /** Joins a hijacked client to the container's stdio: now if it runs, else when it starts. */
  async attach(c: Live, client: net.Socket, inbound: Inbound, flags: number): Promise<void> {
    if (c.rec.State.Running && !c.starting) return this.pump(c, client, inbound, flags);
    c.pending.push({ client, inbound, flags });
    client.once("close", () => {
      c.pending = c.pending.filter((p) => p.client !== client);
    });
  }

  /** Joins CLIENT to the shim; resolves once the shim has taken the attach in. */
  private async pump(c: Live, client: net.Socket, inbound: Inbound, flags: number): Promise<void> {
    const shim = await connectShim(c.dir, attachRequest(flags | FLAG.ack));
    await new Promise<void>((ready) => {
      joinStreams(client, inbound, shim, !!c.rec.Config.Tty, (flags & FLAG.stdin) !== 0, () => ready(), ready);
    });
  }

  async resize(c: Live, h: number, w: number): Promise<void> {
    if (!c.rec.State.Running) throw new HttpError(409, `Container ${c.rec.Id} is not running`);
    if (!c.rec.Config.Tty) return;
    await this.resizeShim(c, resizeRequest(h, w));
  }

  /** Sends a resize request; true when the shim says it was done. */
  private async resizeShim(c: Live, request: Buffer): Promise<boolean> {
    const s = await connectShim(c.dir, request);
    let answer = -1;
    await new Promise<void>((r) => {
      s.on("data", (d: Buffer) => {
        if (answer < 0 && d.length > 0) answer = d[0];
      });
      s.on("close", () => r());
      s.on("error", () => r());
    });
    return answer === 0;
  }

  // ---- exec ----------------------------------------------------------------------------------

  execCreate(c: Live, body: any): string {
    if (!c.rec.State.Running) throw new HttpError(409, `Container ${c.rec.Id} is not running`);
    if (c.rec.State.Paused) throw new HttpError(409, `Container ${c.rec.Id} is paused, unpause the container before exec`);
    if (typeof body !== "object" || body === null) throw new HttpError(400, "the request body must be a JSON object");
    checkStrings(body.Cmd, "Cmd");
    checkStrings(body.Env, "Env");
    if (!Array.isArray(body.Cmd) || body.Cmd.length === 0) throw new HttpError(400, "No exec command specified");
    const id = newId() + newId();
    const n = this.execs.size + Date.now();
    this.execs.set(id, { ID: id, ContainerID: c.rec.Id, Config: body, Running: false, ExitCode: null, Pid: 0, n });
    c.execs.add(id);
    return id;
  }

  findExec(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw new HttpError(404, `No such exec instance: ${id}`);
    return e;
  }

  /** Runs an exec through the shim; CLIENT (when attached) gets its streams. */
  async execStart(e: ExecRecord, client: net.Socket | undefined, inbound: Inbound | undefined, tty: boolean): Promise<void> {
    const c = this.containers.get(e.ContainerID);
    if (!c || !c.rec.State.Running) throw new HttpError(409, `Container ${e.ContainerID} is not running`);
    if (e.Running || e.ExitCode !== null) throw new HttpError(409, `exec ${e.ID} has already been started`);
    const { mergeEnv, resolveUser } = await import("../image/runspec");
    const spec = JSON.parse(readFileSync(join(c.dir, "config.json"), "utf8"));
    const proc = { ...spec.process };
    const cfg = e.Config;
    proc.args = cfg.Cmd;
    proc.env = mergeEnv(proc.env ?? [], cfg.Env ?? []);
    if (cfg.WorkingDir) proc.cwd = cfg.WorkingDir;
    proc.terminal = tty;
    if (tty) proc.env = mergeEnv(proc.env, ["TERM=xterm"]);
    const size = e.size ?? cfg.ConsoleSize;
    if (tty && Array.isArray(size) && size[0] > 0 && size[1] > 0) proc.consoleSize = { height: size[0], width: size[1] };
    else delete proc.consoleSize;
    if (cfg.User) {
      try {
        const lower = JSON.parse(spec.annotations?.[OVERLAY_ANNOTATION] ?? "null");
        const lookup = lower ? [lower.upper, ...lower.lower] : [join(c.dir, "rootfs")];
        proc.user = { ...resolveUser(cfg.User, lookup) };
        if (proc.user.uid > 0xfffffffe || proc.user.gid > 0xfffffffe) throw new Error(`user ${cfg.User}: out of range`);
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
    }
    if (cfg.Privileged) throw new HttpError(400, "privileged exec is not supported");
    const base = `exec-${e.ID.slice(0, 16)}`;
    e.pidFile = `${base}.pid`;
    writeFileSync(join(c.dir, `${base}.json`), JSON.stringify(proc), { mode: 0o600 });
    const argv = this.runtimeArgv(
      "exec", "--detach", "--pid-file", `${base}.pid`,
      ...(tty ? ["--tty", "--console-socket", `${base}.sock`] : []),
      "--process", `${base}.json`, c.rec.Id,
    );
    const flags = (cfg.AttachStdin && client ? 1 : 0) | (tty ? 2 : 0);
    const shim = await connectShim(c.dir, execRequest(flags, `${base}.pid`, tty ? `${base}.sock` : "", argv));
    e.Running = true;
    if (tty && e.size && (e.size[0] !== proc.consoleSize?.height || e.size[1] !== proc.consoleSize?.width)) {
      void this.execResize(e, e.size[0], e.size[1]).catch(() => {});
    }
    this.o.events.emit("container", `exec_start: ${cfg.Cmd.join(" ")}`, c.rec.Id, this.attrs(c, { execID: e.ID }));
    const done = (code: number) => {
      e.Running = false;
      e.ExitCode = code;
      rmSync(join(c.dir, `${base}.json`), { force: true });
      this.o.events.emit("container", "exec_die", c.rec.Id, this.attrs(c, { execID: e.ID, exitCode: String(code) }));
    };
    if (client && inbound) {
      joinStreams(client, inbound, shim, tty, !!cfg.AttachStdin, done);
    } else {
      const reader = new FrameReader(() => {}, done);
      shim.on("data", (d: Buffer) => reader.push(d));
      shim.on("error", () => {});
      shim.end();
      shim.on("close", () => {
        if (e.Running) done(-1);
      });
    }
  }

  async execResize(e: ExecRecord, h: number, w: number): Promise<void> {
    const c = this.containers.get(e.ContainerID);
    if (!c || (!e.Running && e.ExitCode !== null)) throw new HttpError(409, `exec ${e.ID} is not running`);
    if (!e.Config.Tty) return;
    // The CLI sizes the terminal right after its start: the process (and its pid file) may not
    // be there yet, so the size is kept for the start, and tried again for a little while.
    e.size = [h, w];
    if (!e.Running || !e.pidFile) return;
    for (let i = 0; i < 20; i++) {
      if (await this.resizeShim(c, execResizeRequest(e.pidFile, h, w))) return;
      if (!e.Running) return;
      await sleep(25);
    }
  }

  execInspect(e: ExecRecord): unknown {
    const cfg = e.Config;
    return {
      ID: e.ID,
      Running: e.Running,
      ExitCode: e.ExitCode,
      ProcessConfig: {
        tty: !!cfg.Tty, entrypoint: cfg.Cmd[0], arguments: cfg.Cmd.slice(1), privileged: !!cfg.Privileged,
        user: cfg.User ?? "",
      },
      OpenStdin: !!cfg.AttachStdin,
      OpenStderr: !!cfg.AttachStderr,
      OpenStdout: !!cfg.AttachStdout,
      CanRemove: false,
      ContainerID: e.ContainerID,
      DetachKeys: cfg.DetachKeys ?? "",
      Pid: e.Pid,
    };
  }
}

type Record2 = { [k: string]: string };

function checkStringMap(v: unknown, what: string): void {
  if (v === undefined || v === null) return;
  if (typeof v !== "object" || Array.isArray(v) || !Object.values(v as object).every((x) => typeof x === "string")) {
    throw new HttpError(400, `${what} must map names to strings`);
  }
}

function checkStrings(v: unknown, what: string): void {
  if (v === undefined || v === null) return;
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw new HttpError(400, `${what} must be a list of strings`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function shimAlive(dir: string): boolean {
  try {
    const pid = Number(readFileSync(join(dir, "shim.pid"), "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The runtime's last error, from the JSON log it was given. */
function runtimeError(dir: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, "runtime.log"), "utf8");
  } catch {
    return undefined;
  }
  const lines = text.trim().split("\n").reverse();
  for (const l of lines) {
    try {
      const j = JSON.parse(l);
      if (j.level === "error" && j.msg) return String(j.msg);
    } catch {
      if (l.trim()) return l.replace(/^tinyc: /, "");
    }
  }
  return undefined;
}

/** A container's folder, removed as tinyc rm removes one (loaded when first needed). */
function removeDir(dir: string): void {
  (require("../commands/container") as typeof import("../commands/container")).removeContainerDir(dir);
}

/**
 * A hijacked client and a shim connection, joined: the client's bytes become the process's
 * stdin (its half-close the stdin's end), and the shim's frames become the client's stream,
 * raw with a terminal. DONE gets the exit status at the end.
 */
export function joinStreams(
  client: net.Socket,
  inbound: Inbound,
  shim: net.Socket,
  tty: boolean,
  stdin: boolean,
  done: (code: number) => void,
  ready?: () => void,
): void {
  let exited = false;
  const reader = new FrameReader(
    (stream, payload) => {
      ready?.();
      if (client.destroyed || payload.length === 0) return;
      const ok = client.write(tty ? payload : frame(stream, payload));
      if (!ok) {
        shim.pause();
        client.once("drain", () => shim.resume());
      }
    },
    (code) => {
      exited = true;
      done(code);
    },
  );
  shim.on("data", (d: Buffer) => reader.push(d));
  shim.on("error", () => {});
  shim.on("close", () => {
    if (!exited) done(-1);
    if (!client.destroyed) client.end();
  });
  client.on("close", () => {
    if (!exited) shim.destroy();
  });
  void (async () => {
    for (;;) {
      const b = await inbound.read();
      if (b === null) break;
      if (stdin && !shim.destroyed) {
        if (!shim.write(b)) await new Promise((r) => shim.once("drain", r));
      }
    }
    if (stdin && !shim.destroyed) shim.end();
  })();
}
