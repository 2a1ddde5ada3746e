// Containers made from images, without a daemon: `tinyc run IMAGE`, `tinyc ps`, `tinyc rm`.
// Each is an ordinary bundle under the data root (containers/ID: config.json, the writable
// layer, a log) run by the same runtime code, so `tinyc list` sees them too.

import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type minimist from "minimist";
import { parseFlags } from "./args";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import { log } from "../log";
import { defaultDataRoot, type Image } from "../image/store";
import { familiarReference, parseReference } from "../image/reference";
import { specFromImage } from "../image/runspec";
import { stringifySpec } from "../oci/spec";
import { isAlive, liveStatus, signalProcess, waitGone } from "../runtime/container";
import { OVERLAY_ANNOTATION } from "../runtime/plan";
import {
  allMetas, claimName, containersDir, findContainer, leftBehind, markCreator, readMeta, releaseName,
  unmarkCreator, type ContainerMeta,
} from "../image/containers";
import { holdSignals, releaseSignals } from "../../ffi/spawn";
import { defaultStateRoot, newId, StateStore } from "../runtime/state";
import { overlayInUserns, removeInUserns, runInUserns } from "../runtime/userns";
import { fuseUnusable } from "../runtime/fuse";
import { openStore } from "../image/open";
import { runBundle } from "./run";
import { parseNetworkFlag, prepareNetwork } from "../runtime/network";
import { parseDetachKeys } from "../runtime/detachkeys";
import { applyKeepId, checkUserns, keepIdLayers } from "../runtime/keepid";

const ADJECTIVES = ["brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "swift", "tidy"];
const NOUNS = ["otter", "heron", "maple", "comet", "ember", "fjord", "lynx", "pebble", "quartz", "wren"];

function generatedName(): string {
  const r = crypto.getRandomValues(new Uint16Array(3));
  return `${ADJECTIVES[r[0] % 10]}_${NOUNS[r[1] % 10]}_${r[2] % 1000}`;
}

/** Claims the --name, or a generated one that no other container holds. */
function claimAName(given: string | undefined, id: string): string {
  if (given !== undefined) {
    if (!claimName(given, id)) {
      throw new TinycError(`the name ${JSON.stringify(given)} is already in use`, { exitCode: EXIT.engine });
    }
    return given;
  }
  for (;;) {
    const name = generatedName();
    if (claimName(name, id)) return name;
  }
}

const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

export interface ImageRunArgs {
  image: string;
  args: string[];
  a: minimist.ParsedArgs;
  /** Print nothing (not the id of a -d container): tinyc dev makes its container so. */
  quiet?: boolean;
}

/** docker run's flags; everything after the image is the command. */
export function parseImageRun(args: string[]): ImageRunArgs | undefined {
  const a = parseFlags("run", args, {
    boolean: ["rm", "detach", "interactive", "tty", "read-only", "help"],
    string: ["name", "env", "env-file", "workdir", "user", "volume", "tmpfs", "hostname",
      "entrypoint", "pull", "network", "platform", "label", "storage-driver",
      "publish", "dns", "dns-search", "dns-option", "add-host", "detach-keys", "userns"],
    alias: { d: "detach", i: "interactive", t: "tty", e: "env", w: "workdir", u: "user",
      v: "volume", h: "hostname", l: "label", p: "publish", net: "network" },
    stopEarly: true,
  });
  const pos = a._.map(String);
  if (pos.length === 0) return undefined;
  return { image: pos[0], args: pos.slice(1), a };
}

async function imageFor(ref: string, policyGiven: string | string[], platform: string | undefined): Promise<Image> {
  // Given twice, the last one counts, as in docker.
  const policy = Array.isArray(policyGiven) ? policyGiven[policyGiven.length - 1] : policyGiven;
  const store = openStore();
  if (!["missing", "always", "never"].includes(policy)) {
    throw new TinycError(`--pull ${JSON.stringify(policy)}: expected missing, always or never`, { exitCode: EXIT.engine });
  }
  let img = policy === "always" ? undefined : store.findImage(ref);
  if (!img) {
    if (policy === "never") {
      throw new TinycError(`image ${JSON.stringify(ref)} is not in the store, and --pull=never`, { exitCode: EXIT.engine });
    }
    const { pull } = await import("../image/pull");
    await pull(store, ref, { platform });
    img = store.resolveImage(ref);
  }
  return img;
}

export type StorageDriver = "overlay" | "fuse-overlayfs" | "copy";
const DRIVERS: StorageDriver[] = ["overlay", "fuse-overlayfs", "copy"];

/**
 * How the container's root file system is made: the kernel's overlayfs (as root, or inside the
 * user namespace from Linux 5.11 on), else fuse-overlayfs where it is installed and /dev/fuse
 * opens, else a private copy of the image's files. --storage-driver or TINYC_STORAGE_DRIVER
 * forces one. Returns the driver and why it was chosen.
 */
export function storageDriver(flag: string | undefined): { driver: StorageDriver; why: string } {
  const fromEnv = flag === undefined && process.env.TINYC_STORAGE_DRIVER !== undefined;
  const asked = flag ?? process.env.TINYC_STORAGE_DRIVER;
  const source = fromEnv ? "TINYC_STORAGE_DRIVER" : "--storage-driver";
  if (asked !== undefined) {
    if (!DRIVERS.includes(asked as StorageDriver)) {
      const expected = "expected overlay, fuse-overlayfs or copy";
      throw new TinycError(`${source} ${JSON.stringify(asked)}: ${expected}`, {
        exitCode: EXIT.engine,
      });
    }
    if (asked === "fuse-overlayfs") {
      const why = fuseUnusable();
      if (why) throw new TinycError(`${source} fuse-overlayfs: ${why}`, { exitCode: EXIT.engine });
    }
    return { driver: asked as StorageDriver, why: `asked for by ${source}` };
  }
  if (process.getuid!() === 0) return { driver: "overlay", why: "run as root" };
  if (overlayInUserns()) {
    return { driver: "overlay", why: "the kernel mounts overlayfs in a user namespace" };
  }
  const why = fuseUnusable();
  if (!why) return { driver: "fuse-overlayfs", why: "the kernel's overlayfs needs root here" };
  return { driver: "copy", why: `the kernel's overlayfs needs root here, and ${why}` };
}

const DRIVER_TEXT: Record<StorageDriver, string> = {
  overlay: "the kernel's overlayfs",
  "fuse-overlayfs": "fuse-overlayfs",
  copy: "a copy of the image",
};

export async function runImage(r: ImageRunArgs, globals: Globals): Promise<number> {
  const a = r.a;
  const network = parseNetworkFlag(a.network);
  const detach = !!a.detach;
  if (a.userns !== undefined) checkUserns(a.userns);
  const detachKeys = parseDetachKeys(a["detach-keys"]);
  await sweepEnded(globals);
  const store = openStore();
  const img = await imageFor(r.image, a.pull ?? "missing", a.platform);
  const config = store.imageConfig(img);
  let lower = [...store.layerDirs(img)].reverse();
  if (a.userns !== undefined) lower = await keepIdLayers(lower);

  if (a.name !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(a.name)) {
    throw new TinycError(`--name ${JSON.stringify(a.name)}: invalid name`, { exitCode: EXIT.engine });
  }
  const id = newId() + newId();
  const dir = join(containersDir(), id);
  // From here until everything is removed (or the container runs on its own), a signal to
  // tinyc ends neither tinyc nor its clean-up: it is held, and passed on once the container runs.
  holdSignals();
  let name: string | undefined;
  let removeAfter = !detach && !!a.rm;
  const labels = Object.fromEntries(list(a.label).map((l) => [l.split("=")[0], l.split("=").slice(1).join("=")]));
  try {
    mkdirSync(containersDir(), { recursive: true, mode: 0o700 });
    mkdirSync(dir, { mode: 0o700 });
    markCreator(dir);
    for (const sub of ["rootfs", "upper", "work"]) mkdirSync(join(dir, sub), { mode: 0o700 });
    // The writable layer's top folder is the container's "/": it must be open to every user.
    chmodSync(join(dir, "upper"), 0o755);
    name = claimAName(a.name, id);
    const spec = specFromImage(config, join(dir, "rootfs"), {
      args: r.args,
      entrypoint: a.entrypoint,
      env: list(a.env),
      envFiles: list(a["env-file"]),
      workdir: a.workdir,
      user: a.user,
      tty: !!a.tty,
      readOnly: !!a["read-only"],
      tmpfs: list(a.tmpfs),
      volumes: list(a.volume),
      hostname: a.hostname ?? id.slice(0, 12),
      network: network.mode,
      lookup: lower,
      labels,
    });
    prepareNetwork({ ...network, ports: list(a.publish), hostname: spec.hostname!, dir, keepId: a.userns !== undefined,
      dns: list(a.dns), dnsSearch: list(a["dns-search"]), dnsOptions: list(a["dns-option"]),
      addHosts: list(a["add-host"]) }).apply(spec);
    if (a.userns !== undefined) applyKeepId(spec, { dir, lookup: lower, userGiven: a.user !== undefined });
    const { driver, why } = storageDriver(a["storage-driver"]);
    const what = DRIVER_TEXT[driver];
    log("info", `storage driver ${driver}: the root file system is ${what} (${why})`);
    if (driver === "copy") await copyImage(lower, dir);
    const layers = { lower, upper: join(dir, "upper"), work: join(dir, "work") };
    spec.annotations = {
      ...spec.annotations,
      ...(driver === "overlay" && { [OVERLAY_ANNOTATION]: JSON.stringify(layers) }),
      ...(driver === "fuse-overlayfs" && {
        [OVERLAY_ANNOTATION]: JSON.stringify({ ...layers, driver }),
      }),
      "run.tinyc.image": familiarReference(parseReference(r.image)),
      "run.tinyc.name": name,
    };
    writeFileSync(join(dir, "config.json"), stringifySpec(spec));
    const meta: ContainerMeta = {
      id,
      name,
      image: familiarReference(parseReference(r.image)),
      imageId: img.id,
      command: spec.process!.args!,
      created: new Date().toISOString(),
      autoRemove: detach && !!a.rm,
      entrypoint: a.entrypoint !== undefined ? (a.entrypoint ? [a.entrypoint] : []) : (config.Entrypoint ?? []),
      cmd: r.args.length > 0 || a.entrypoint !== undefined ? r.args : (config.Cmd ?? []),
      labels,
      user: a.user ?? config.User ?? "",
    };
    writeFileSync(join(dir, "meta.json"), JSON.stringify(meta));
    // Complete: a container that is not removed at its end stays if tinyc dies from here on.
    if (!removeAfter) unmarkCreator(dir);

    if (detach) {
      // No daemon holds its output: it goes to a log file beside the container.
      const logFd = openSync(join(dir, "container.log"), "a", 0o600);
      const nullFd = openSync("/dev/null", "r");
      try {
        await runBundle({ bundle: dir, id, detach: true, keep: false, noPivot: false, preserveFds: 0,
          plan: false, stdio: [nullFd, logFd, logFd] }, globals);
      } finally {
        closeSync(logFd);
        closeSync(nullFd);
      }
      if (!r.quiet) writeFileSync(1, `${id}\n`);
      return 0;
    }
    // Without -i the container's stdin is empty, as docker has it.
    const stdin = a.interactive || a.tty ? undefined : openSync("/dev/null", "r");
    try {
      // Detached from its terminal, it goes on as a -d container: a --rm one is removed later.
      const onDetach = () => {
        removeAfter = false;
        if (a.rm) writeFileSync(join(dir, "meta.json"), JSON.stringify({ ...meta, autoRemove: true }));
      };
      return await runBundle({ bundle: dir, id, detach: false, keep: !a.rm, noPivot: false,
        preserveFds: 0, plan: false, stdio: stdin === undefined ? undefined : [stdin, 1, 2],
        detachKeys, onDetach }, globals);
    } finally {
      if (stdin !== undefined) closeSync(stdin);
    }
  } catch (e) {
    removeAfter = true;
    throw e;
  } finally {
    if (removeAfter) removeContainer(id, name);
    releaseSignals();
  }
}

/** The copy driver: the image's files into DIR/rootfs, owners kept (in the user namespace). */
async function copyImage(lower: string[], dir: string): Promise<void> {
  const mnt = join(dir, "work");
  const cp = ["cp", "-a", "--", `${mnt}/.`, join(dir, "rootfs")];
  const r = await runInUserns(cp, { overlay: { lower, at: mnt } });
  if (r.code !== 0) throw new TinycError(`copying the image's files failed (status ${r.code})`);
}

/**
 * Without a daemon nobody watches a `-d --rm` container: the next tinyc run, ps, rm or
 * inspect removes those that have ended, and what a killed tinyc left (a `--rm` container, or
 * one it had not finished making) once its container has ended too.
 */
export async function sweepEnded(globals: Globals): Promise<void> {
  const states = new StateStore(globals.root ?? defaultStateRoot());
  let ids: string[];
  try {
    ids = readdirSync(containersDir());
  } catch {
    return;
  }
  for (const id of ids) {
    const m = readMeta(id);
    if (!(m?.autoRemove || leftBehind(id))) continue;
    if (!/^[0-9a-f]{64}$/.test(id)) continue;
    const st = states.read(id);
    if (st && isAlive(st)) continue;
    if (st) states.remove(id);
    removeContainer(id, m?.name);
  }
}

/** Removes a container's folder and gives its name up (first, so no stale claim is left). */
function removeContainer(id: string, name: string | undefined): void {
  if (name !== undefined) releaseName(name, id);
  removeContainerDir(join(containersDir(), id));
}

export function removeContainerDir(dir: string): void {
  // overlayfs leaves its work folder (work/work) with mode 0: opened up, the folder goes without
  // a user namespace, which costs another process.
  try {
    chmodSync(join(dir, "work", "work"), 0o700);
  } catch {
    // No overlay work folder (the copy driver), or not ours.
  }
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // Files of the container's other users: only the user namespace can remove them.
    if (process.getuid!() !== 0) removeInUserns(dir);
  }
  if (existsSync(dir) && process.getuid!() !== 0) removeInUserns(dir);
}

export const psCommandDocker = async (args: string[], globals: Globals): Promise<number> => {
  const a = parseFlags("ps", args, { boolean: ["all", "quiet", "no-trunc", "help"],
    string: ["format"], alias: { a: "all", q: "quiet", f: "format", h: "help" } });
  await sweepEnded(globals);
  const states = new StateStore(globals.root ?? defaultStateRoot());
  const rows = allMetas().map((m) => {
    const st = states.read(m.id);
    const status = st ? liveStatus(states, st) : "stopped";
    return { ...m, status };
  }).filter((m) => a.all || m.status === "running" || m.status === "paused")
    .sort((x, y) => y.created.localeCompare(x.created));
  if (a.format !== undefined && a.format !== "json" && a.format !== "table") {
    throw new TinycError(`ps: --format ${JSON.stringify(a.format)}: only table and json are supported`, {
      exitCode: EXIT.usage,
    });
  }
  if (a.format === "json") {
    writeFileSync(1, JSON.stringify(rows) + "\n");
  } else if (a.quiet) {
    writeFileSync(1, rows.map((m) => `${m.id.slice(0, 12)}\n`).join(""));
  } else {
    const table = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"],
      ...rows.map((m) => [a["no-trunc"] ? m.id : m.id.slice(0, 12), m.image,
        JSON.stringify(m.command.join(" ").slice(0, 20)), m.created, m.status, m.name])];
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    writeFileSync(1, table.map((row) => row.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd() + "\n").join(""));
  }
  return 0;
};

export const rmCommand = {
  help: `usage: tinyc rm [-f] CONTAINER...

Removes containers by name or id, with their files.

flags:
  --force, -f  kill running ones first
`,
  async run(args: string[], globals: Globals): Promise<number> {
    const a = parseFlags("rm", args, { boolean: ["force", "help"], alias: { f: "force", h: "help" } });
    if (a.help) {
      writeFileSync(1, this.help);
      return 0;
    }
    await sweepEnded(globals);
    const states = new StateStore(globals.root ?? defaultStateRoot());
    let failed = 0;
    for (const text of a._.map(String)) {
      try {
        const m = findContainer(text);
        if (!m) throw new TinycError(`no such container: ${text}`);
        if ((m as { daemon?: boolean }).daemon) {
          throw new TinycError(`container ${m.name} belongs to tinyc daemon: remove it with docker rm`);
        }
        const st = states.read(m.id);
        if (st && isAlive(st)) {
          if (!a.force) throw new TinycError(`container ${m.name} is running: stop it first, or rm -f`);
          signalProcess(st.pid, st.pidStart, 9);
          await waitGone(st, 10_000);
        }
        if (st) states.remove(m.id);
        removeContainer(m.id, m.name);
        writeFileSync(1, `${text}\n`);
      } catch (e) {
        if (!(e instanceof TinycError)) throw e;
        writeFileSync(2, `tinyc: ${e.message}\n`);
        failed = 1;
      }
    }
    return failed;
  },
};

/** The folders of a container's file system, top first: its writable layer, then the image's. */
/** The folders of the file system of the container in DIR, top first; none for a copy. */
export function containerLayers(dir: string): string[] | undefined {
  const spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  const overlay = JSON.parse(spec.annotations?.[OVERLAY_ANNOTATION] ?? "null");
  return overlay ? [overlay.upper, ...overlay.lower] : undefined;
}

/**
 * Writes the files of the container in DIR as a tar stream to OUTPUT ("-": stdout): through a
 * read-only overlay of LAYERS in a mount namespace of our own, since the container may be
 * running with its own overlay on the same folders; without layers, its rootfs as it is.
 */
export async function exportContainer(dir: string, layers: string[] | undefined, output: string): Promise<void> {
  const at = join(dir, "rootfs");
  const tar = ["tar", "--numeric-owner", "--xattrs", "-C", at, "-cf", output, "."];
  const r = await runInUserns(tar, layers ? { overlay: { lower: layers, at } } : {});
  if (r.code !== 0) throw new TinycError(`export: tar exited with status ${r.code}`);
}

export const exportCommand = {
  help: `usage: tinyc export [-o FILE] CONTAINER

Writes the container's files as a tarball to stdout or FILE.

flags:
  --output, -o FILE  write to FILE instead of stdout
`,
  async run(args: string[]): Promise<number> {
    const a = parseFlags("export", args, {
      string: ["output"],
      boolean: ["help"],
      alias: { o: "output", h: "help" },
    });
    if (a.help) {
      writeFileSync(1, this.help);
      return 0;
    }
    const text = a._[0] === undefined ? undefined : String(a._[0]);
    if (!text) throw new TinycError("export: a container is needed", { exitCode: EXIT.usage });
    const m = findContainer(text);
    if (!m) throw new TinycError(`no such container: ${text}`);
    const dir = join(containersDir(), m.id);
    const layers = containerLayers(dir);
    if (!layers) throw new TinycError(`container ${m.name} has no layers to export`);
    await exportContainer(dir, layers, a.output ?? "-");
    return 0;
  },
};

export const bundleCommand = {
  help: `usage: tinyc bundle [docker run flags] IMAGE DIR

Writes DIR/config.json, made from the image as "tinyc run IMAGE" makes it, and DIR/rootfs, a
copy of the image's files. Then "tinyc run DIR" runs it.

It takes run's docker flags (see tinyc run --help); those that shape the config count:
--env, -e, --env-file, --workdir, -w, --user, -u, --volume, -v, --read-only, --tmpfs,
--hostname, -h, --entrypoint, --tty, -t, --network (--net), --publish, -p, --dns, --dns-search,
--dns-option, --add-host, --pull and --platform. --rm, --detach, -d, --name, --interactive, -i,
--label, -l, --storage-driver, --detach-keys and --userns are accepted and change nothing.
`,
  async run(args: string[], globals: Globals): Promise<number> {
    const parsed = parseImageRun(args);
    if (!parsed || parsed.a.help) {
      writeFileSync(1, this.help);
      return parsed ? 0 : EXIT.usage;
    }
    const dir = parsed.args[0];
    if (!dir || parsed.args.length > 1) throw new TinycError("bundle: IMAGE and DIR are needed", { exitCode: EXIT.usage });
    if (existsSync(join(dir, "config.json")) || existsSync(join(dir, "rootfs"))) {
      throw new TinycError(`bundle: ${JSON.stringify(dir)} already holds a bundle`);
    }
    const network = parseNetworkFlag(parsed.a.network);
    const store = openStore();
    const img = await imageFor(parsed.image, parsed.a.pull ?? "missing", parsed.a.platform);
    const lower = [...store.layerDirs(img)].reverse();
    const a = parsed.a;
    const spec = specFromImage(store.imageConfig(img), "rootfs", {
      args: [], entrypoint: a.entrypoint, env: list(a.env), envFiles: list(a["env-file"]),
      workdir: a.workdir, user: a.user, tty: !!a.tty, readOnly: !!a["read-only"],
      tmpfs: list(a.tmpfs), volumes: list(a.volume), hostname: a.hostname,
      network: network.mode, lookup: lower,
      fallbackArgs: ["sh"],
    });
    mkdirSync(join(dir, "rootfs"), { recursive: true, mode: 0o755 });
    // The network files beside config.json; "run" and "create" start a private network's helper.
    prepareNetwork({ ...network, ports: list(a.publish), hostname: spec.hostname!, dir: resolve(dir),
      dns: list(a.dns), dnsSearch: list(a["dns-search"]), dnsOptions: list(a["dns-option"]),
      addHosts: list(a["add-host"]) }).apply(spec);
    const mnt = join(dir, ".layers");
    mkdirSync(mnt, { mode: 0o700 });
    try {
      // Copied inside the user namespace the containers use, so owners stay what they are.
      const cp = ["cp", "-a", "--", `${mnt}/.`, join(dir, "rootfs")];
      const r = await runInUserns(cp, { overlay: { lower, at: mnt } });
      if (r.code !== 0) throw new TinycError(`bundle: copying the image's files failed (status ${r.code})`);
    } finally {
      rmSync(mnt, { recursive: true, force: true });
    }
    writeFileSync(join(dir, "config.json"), stringifySpec(spec));
    void globals;
    return 0;
  },
};
