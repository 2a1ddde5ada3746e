// `tinyc inspect`: containers made from images, and images, as a JSON array with the fields
// docker and podman scripts read (Id, Name, State.Status, State.ExitCode, Config.Env, ...).
// --format takes "json" or a Go template made of {{json .}} and {{.Field.Path}} actions only.

import { readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseFlags } from "./args";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import { containersDir, findContainer, type ContainerMeta } from "../image/containers";
import { openStore } from "../image/open";
import { familiarReference, parseReference } from "../image/reference";
import type { Image } from "../image/store";
import type { Spec } from "../oci/config";
import { isAlive, liveStatus } from "../runtime/container";
import { defaultStateRoot, StateStore } from "../runtime/state";
import type { Command } from "./index";

const help = `usage: tinyc inspect [--type container|image] [--format json|TEMPLATE] NAME|ID...

Prints what tinyc knows of containers made from images and of images, as one JSON array (as
docker inspect does): a container is looked for first, then an image, unless --type says.

flags:
  --type T           container or image
  --format, -f F     json (the default), or a template of {{json .}} and {{.A.B}} actions,
                     printed once per object ("{{.State.Status}}", "{{.Config.Env}}")
  --size, -s         accepted, as docker's (the image's Size is always there)
`;

/** docker's words for a container's state. */
function dockerStatus(status: string, started: boolean): string {
  if (status === "stopped") return started ? "exited" : "created";
  return status;
}

function containerObject(m: ContainerMeta, states: StateStore): Record<string, unknown> {
  const dir = join(containersDir(), m.id);
  let spec: Spec = {} as Spec;
  try {
    spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  } catch {
    // A container being made or removed this moment: its meta is all there is.
  }
  const st = states.read(m.id);
  const status = st ? liveStatus(states, st) : "stopped";
  const running = status === "running" || status === "paused";
  const proc = spec.process;
  const user = proc?.user;
  return {
    Id: m.id,
    Name: m.name,
    Created: m.created,
    Path: m.command[0] ?? "",
    Args: m.command.slice(1),
    State: {
      Status: dockerStatus(status, st !== undefined),
      Running: running,
      Paused: status === "paused",
      Pid: st && isAlive(st) ? st.pid : 0,
      // Without a daemon no one waits for a detached container: its status is not known (-1).
      ExitCode: running ? 0 : (st?.exitCode ?? (st ? -1 : 0)),
      StartedAt: st?.created ?? "",
      FinishedAt: running ? "" : (st?.finished ?? ""),
    },
    Image: m.imageId,
    ImageName: m.image,
    Config: {
      Image: m.image,
      Cmd: m.cmd ?? m.command,
      Entrypoint: m.entrypoint ?? [],
      Env: proc?.env ?? [],
      WorkingDir: proc?.cwd ?? "/",
      User: m.user ?? (user ? `${user.uid}:${user.gid}` : ""),
      Labels: m.labels ?? {},
      Hostname: spec.hostname ?? "",
      Tty: !!proc?.terminal,
    },
    Mounts: (spec.mounts ?? [])
      // The files tinyc writes for the network (hosts, hostname, resolv.conf) are not mounts
      // the user asked for, as docker leaves them out too.
      .filter((x) => x.type === "bind" && x.source !== "/sys" && !isNetworkFile(x.source, x.destination))
      .map((x) => ({
        Type: "bind",
        Source: x.source,
        Destination: x.destination,
        RW: !(x.options ?? []).includes("ro"),
      })),
    HostConfig: { AutoRemove: !!m.autoRemove },
  };
}

function imageObject(img: Image): Record<string, unknown> {
  const c = img.config.config ?? {};
  const tags = img.names.map((n) => {
    try {
      return familiarReference(parseReference(n));
    } catch {
      return n;
    }
  });
  return {
    Id: img.id,
    RepoTags: tags,
    RepoDigests: img.digests,
    Created: img.config.created ?? "",
    Architecture: img.config.architecture,
    Os: img.config.os,
    ...(img.config.variant && { Variant: img.config.variant }),
    Size: img.size,
    Config: {
      Cmd: c.Cmd ?? null,
      Entrypoint: c.Entrypoint ?? null,
      Env: c.Env ?? [],
      WorkingDir: c.WorkingDir ?? "",
      User: c.User ?? "",
      Labels: c.Labels ?? {},
      StopSignal: c.StopSignal ?? "",
    },
    RootFS: { Type: img.config.rootfs.type, Layers: img.config.rootfs.diff_ids },
  };
}

/** The value at a path of field names ("State.Status"); undefined when one is missing. */
function at(obj: unknown, path: string): unknown {
  let v = obj;
  for (const key of path.split(".").filter(Boolean)) {
    if (v === null || typeof v !== "object" || !(key in v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** A value as Go's template prints it: text as is, lists as [a b], maps as map[k:v]. */
function goText(v: unknown): string {
  if (v === undefined) return "<no value>";
  if (v === null) return "<nil>";
  if (Array.isArray(v)) return `[${v.map(goText).join(" ")}]`;
  if (typeof v === "object") {
    const entries = Object.entries(v as object).sort(([a], [b]) => a.localeCompare(b));
    return `map[${entries.map(([k, x]) => `${k}:${goText(x)}`).join(" ")}]`;
  }
  return String(v);
}

/** Fills a template of {{json .Path}} and {{.Path}} actions; anything else is refused. */
export function fillTemplate(template: string, obj: unknown): string {
  return template.replace(/\{\{-?\s*(.*?)\s*-?\}\}/g, (_, action: string) => {
    const m = /^(json\s+)?\.([A-Za-z0-9_.]*)$/.exec(action);
    if (!m) {
      throw new TinycError(`--format: the template action {{${action}}} is not supported`, {
        hint: "only {{json .}}, {{.Field.Path}} and {{json .Field.Path}} are",
      });
    }
    const v = at(obj, m[2]);
    return m[1] ? JSON.stringify(v ?? null) : goText(v);
  });
}

export const inspectCommand: Command = {
  help,
  async run(args: string[], globals: Globals) {
    const a = parseFlags("inspect", args, {
      boolean: ["help", "size"],
      string: ["type", "format"],
      alias: { f: "format", h: "help", s: "size" },
    });
    if (a.help) {
      writeSync(1, help);
      return 0;
    }
    const names = a._.map(String);
    if (names.length === 0) throw new TinycError("inspect: a container or image is needed", { exitCode: EXIT.usage });
    const type = a.type as string | undefined;
    if (type !== undefined && type !== "container" && type !== "image") {
      throw new TinycError(`inspect: --type ${JSON.stringify(type)}: expected container or image`, {
        exitCode: EXIT.usage,
      });
    }
    const format = a.format as string | undefined;
    if (format !== undefined && format !== "json" && !format.includes("{{")) {
      throw new TinycError(`inspect: --format ${JSON.stringify(format)}: expected json or a template`, {
        exitCode: EXIT.usage,
      });
    }
    await (await import("./container")).sweepEnded(globals);
    const states = new StateStore(globals.root ?? defaultStateRoot());
    const found: Record<string, unknown>[] = [];
    const missing: string[] = [];
    for (const name of names) {
      const m = type === "image" ? undefined : findContainer(name);
      if (m) {
        found.push(containerObject(m, states));
        continue;
      }
      const img = type === "container" ? undefined : openStore().findImage(name);
      if (img) found.push(imageObject(img));
      else missing.push(name);
    }
    if (format !== undefined && format !== "json") {
      writeSync(1, found.map((o) => fillTemplate(format, o) + "\n").join(""));
    } else {
      writeSync(1, JSON.stringify(found, null, 4) + "\n");
    }
    for (const name of missing) writeSync(2, `tinyc: no such object: ${JSON.stringify(name)}\n`);
    return missing.length > 0 ? 1 : 0;
  },
};

function isNetworkFile(source: string | undefined, destination: string): boolean {
  const name = { "/etc/hosts": "hosts", "/etc/hostname": "hostname", "/etc/resolv.conf": "resolv.conf" }[destination];
  return name !== undefined && source !== undefined && source.endsWith(`/${name}`) && source.includes("/containers/");
}
