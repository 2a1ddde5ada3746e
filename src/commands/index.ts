// The verbs of the command line, and the overview `tinyc --help` prints. Each verb's module
// is loaded only when that verb runs: tinyc is started thousands of times from scripts, and
// module set-up is a large part of a short run.

import type { Globals } from "../cli";

export interface Command {
  help: string;
  run(args: string[], globals: Globals): Promise<number> | number;
}

export interface Verb {
  summary: string;
  load(): Promise<Command>;
  /** Not shown in the help and not completed: run by tinyc's own parts, not by people. */
  hidden?: boolean;
}

const verb = (summary: string, load: () => Promise<Command>): Verb => ({ summary, load });

export const commands: Record<string, Verb> = {
  spec: verb("write a config.json for a bundle (runc's template)",
    async () => (await import("./spec")).specCommand),
  run: verb("run a bundle, or an image, in the foreground (or --detach)",
    async () => (await import("./run")).runCommand),
  create: verb("create a container from a bundle; it waits for start",
    async () => (await import("./create")).createCommand),
  start: verb("run the program of a created container",
    async () => (await import("./start")).startCommand),
  state: verb("print the OCI state of a container as JSON",
    async () => (await import("./lifecycle")).stateCommand),
  kill: verb("send a signal (default TERM) to a container's process",
    async () => (await import("./lifecycle")).killCommand),
  delete: verb("remove a stopped (or, with --force, any) container",
    async () => (await import("./lifecycle")).deleteCommand),
  list: verb("list the runtime's containers", async () => (await import("./lifecycle")).listCommand),
  ps: verb("list a container's processes, or (without an id) the containers of images",
    async () => (await import("./lifecycle")).psCommand),
  dev: verb("a shell in a container of an image, in this folder, as yourself",
    async () => (await import("./dev")).devCommand),
  exec: verb("run another process in a running container",
    async () => (await import("./exec")).execCommand),
  pause: verb("freeze every process of a container",
    async () => (await import("./lifecycle")).pauseCommand),
  resume: verb("thaw a paused container", async () => (await import("./lifecycle")).resumeCommand),
  features: verb("print what this runtime implements (OCI features JSON)",
    async () => (await import("./features")).featuresCommand),
  info: verb("what this host offers tinyc, and what is missing",
    async () => (await import("./info")).infoCommand),
  pull: verb("pull an image from a registry", async () => (await import("./images")).pullCommand),
  images: verb("list the images in the store",
    async () => (await import("./images")).imagesCommand),
  rmi: verb("remove images", async () => (await import("./images")).rmiCommand),
  load: verb("load images from a docker save or OCI archive",
    async () => (await import("./images")).loadCommand),
  save: verb("write images to a tarball (docker save format, also an OCI layout)",
    async () => (await import("./images")).saveCommand),
  import: verb("make an image from a root filesystem tarball",
    async () => (await import("./images")).importCommand),
  tag: verb("give an image another name", async () => (await import("./images")).tagCommand),
  login: verb("store credentials for a registry",
    async () => (await import("./images")).loginCommand),
  logout: verb("forget the credentials of a registry",
    async () => (await import("./images")).logoutCommand),
  inspect: verb("print containers made from images, and images, as JSON (docker inspect)",
    async () => (await import("./inspect")).inspectCommand),
  rm: verb("remove containers made from images (-f: also running ones)",
    async () => (await import("./container")).rmCommand),
  export: verb("write a container's file system as a tar stream (docker export)",
    async () => (await import("./container")).exportCommand),
  bundle: verb("write an image out as an OCI bundle (config.json and rootfs)",
    async () => (await import("./container")).bundleCommand),
  daemon: verb("serve the Docker Engine API on a UNIX socket (for the docker CLI)",
    async () => (await import("./daemon")).daemonCommand),
  completion: verb("print a bash or zsh completion script",
    async () => (await import("./completion")).completionCommand),
  shim: {
    ...verb("the per-container shim (started by the daemon)",
      async () => (await import("./shim")).shimCommand),
    hidden: true,
  },
  _reown: verb("copy layers re-owned for --userns keep-id (used by tinyc itself)",
    async () => (await import("../runtime/keepid")).reownCommand),
  _unpack: verb("unpack one layer blob into an empty folder (used by tinyc itself)",
    async () => (await import("./images")).unpackCommand),
};

/** The global flags, before the verb: those that take a value, and the others. */
export const GLOBAL_FLAGS = {
  value: ["root", "log", "log-format", "criu", "rootless", "cgroup-manager"],
  boolean: ["debug", "systemd-cgroup", "help", "version", "h", "v"],
};

export function usage(): string {
  // Verbs starting with "_" are tinyc's own helpers, not for people.
  const shown = Object.entries(commands).filter(([k, c]) => !k.startsWith("_") && !c.hidden);
  const width = Math.max(...shown.map(([k]) => k.length));
  const lines = shown.map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`);
  return `tinyc: a rootless container engine in one executable

usage: tinyc [global flags] COMMAND [flags] [arguments]

commands:
${lines.join("\n")}

global flags:
  --root DIR          runtime state (default $XDG_RUNTIME_DIR/tinyc, or /run/tinyc as root)
  --log FILE          write log entries to FILE instead of stderr
  --log-format FMT    text (default) or json: one object per line with level, msg, time
  --debug             log debug entries
  --systemd-cgroup    accepted for runc compatibility (a systemd cgroupsPath is refused)
  --cgroup-manager M  cgroupfs (default), systemd (as --systemd-cgroup) or disabled (no cgroup)
  --rootless V        accepted for runc compatibility (true, false or auto: tinyc decides)
  --criu PATH         accepted for runc compatibility (checkpoints are not supported)
  --version, -v       print the version and the commit it was built from
  --help, -h          print this help; "tinyc COMMAND --help" for a command's flags
`;
}
