import { existsSync, readFileSync, writeSync } from "node:fs";
import { release, machine } from "node:os";
import { parseFlags } from "./args";
import type { Globals } from "../cli";
import { cgroupMode } from "../runtime/cgroups";
import { caller, findHelper, subordinateRanges } from "../runtime/idmap";
import { defaultStateRoot } from "../runtime/state";
import { overlayInUserns } from "../runtime/userns";
import { fuseUnusable } from "../runtime/fuse";
import { version } from "../version";
import type { Command } from "./index";

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

interface Fact {
  name: string;
  value: string;
  /** What to do when the fact is a missing piece. */
  missing?: string;
}

function usernsFact(): Fact {
  const max = read("/proc/sys/user/max_user_namespaces");
  const clone = read("/proc/sys/kernel/unprivileged_userns_clone");
  const apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  if (max === "0") {
    return { name: "user namespaces", value: "no", missing: "sysctl user.max_user_namespaces=15000" };
  }
  if (clone === "0") {
    return { name: "user namespaces", value: "no", missing: "sysctl kernel.unprivileged_userns_clone=1" };
  }
  if (apparmor === "1") {
    return {
      name: "user namespaces",
      value: "restricted by AppArmor",
      missing: "sysctl kernel.apparmor_restrict_unprivileged_userns=0",
    };
  }
  return { name: "user namespaces", value: `yes (at most ${max ?? "?"})` };
}

function tool(name: string, pkg: string): Fact {
  const path = findHelper(name);
  if (path) return { name, value: path };
  return { name, value: "missing", missing: `apt-get install ${pkg}` };
}

function cgroupFact(): Fact {
  const mode = cgroupMode();
  if (mode === "v1") {
    return {
      name: "cgroups",
      value: existsSync("/sys/fs/cgroup/unified") ? "v1 (hybrid)" : "v1",
      missing: process.getuid!() === 0 ? undefined : "limits need root on cgroup v1",
    };
  }
  const own = read("/proc/self/cgroup")?.split("\n").find((l) => l.startsWith("0::"))?.slice(3);
  const controllers = read(`/sys/fs/cgroup${own ?? ""}/../cgroup.controllers`) ?? "";
  return { name: "cgroups", value: `v2 (controllers here: ${controllers || "none"})` };
}

function subordinateFact(user: string, ranges: { start: number; count: number }[]): Fact {
  const name = "subordinate ids";
  if (ranges.length) {
    return { name, value: ranges.map((r) => `${r.start}-${r.start + r.count - 1}`).join(", ") };
  }
  if (process.getuid!() === 0) return { name, value: "not needed as root" };
  return { name, value: "none", missing: `add a range for ${user} to /etc/subuid and /etc/subgid` };
}

/** The storage driver `tinyc run IMAGE` picks here when none is asked for. */
function storageFact(): Fact {
  const name = "storage driver";
  const why = process.getuid!() === 0 || overlayInUserns() ? undefined : fuseUnusable();
  const value = process.getuid!() === 0 || overlayInUserns()
    ? "overlay (the kernel's overlayfs)"
    : why ? `copy (${why})` : "fuse-overlayfs";
  const forced = process.env.TINYC_STORAGE_DRIVER;
  return { name, value: forced ? `${forced} (TINYC_STORAGE_DRIVER); else ${value}` : value };
}

/** The private network of image containers: slirp4netns; pasta is found but not used. */
function networkFact(): Fact {
  const name = "private network";
  if (findHelper("slirp4netns")) return { name, value: "slirp4netns (--network none and host need nothing)" };
  return {
    name,
    value: findHelper("pasta") ? "none: slirp4netns is missing (pasta is not supported)" : "none: slirp4netns is missing",
    missing: "apt-get install slirp4netns",
  };
}

function facts(): Fact[] {
  const who = caller();
  const subuid = subordinateRanges("/etc/subuid", who.name, who.uid);
  const overlay = overlayInUserns();
  const seccomp = read("/proc/self/status")?.includes("Seccomp:") ?? false;
  return [
    { name: "version", value: version().split("\n").slice(0, 2).join(", ") },
    { name: "kernel", value: `${release()} ${machine()}` },
    usernsFact(),
    tool("newuidmap", "uidmap"),
    tool("newgidmap", "uidmap"),
    subordinateFact(who.name, subuid),
    cgroupFact(),
    { name: "seccomp", value: seccomp ? "yes" : "no" },
    {
      name: "overlay in a user namespace",
      value: overlay ? "yes (Linux 5.11 or later)" : "no",
      missing: overlay ? undefined : "fuse-overlayfs or a newer kernel",
    },
    tool("fuse-overlayfs", "fuse-overlayfs"),
    storageFact(),
    networkFact(),
    tool("slirp4netns", "slirp4netns"),
    {
      name: "pasta",
      value: `${findHelper("pasta") ?? "missing"} (not used: this pasta outlives a detached container)`,
    },
    { name: "runtime state", value: defaultStateRoot() },
  ];
}

export const infoCommand: Command = {
  help: `usage: tinyc info [--format json]

Prints versions and the kernel features tinyc uses.

flags:
  --format, -f json  as one JSON object
`,
  run(args, globals: Globals) {
    const a = parseFlags("info", args, {
      boolean: ["help"],
      string: ["format"],
      alias: { f: "format", h: "help" },
    });
    if (a.help) {
      writeSync(1, this.help);
      return 0;
    }
    const list = facts();
    if (globals.root) list[list.length - 1].value = globals.root;
    if (a.format === "json") {
      const entry = (f: Fact) => (f.missing ? { value: f.value, missing: f.missing } : f.value);
      writeSync(1, JSON.stringify(Object.fromEntries(list.map((f) => [f.name, entry(f)]))) + "\n");
      return 0;
    }
    const width = Math.max(...list.map((f) => f.name.length));
    const hint = (f: Fact) => (f.missing ? `  (to get it: ${f.missing})` : "");
    const lines = list.map((f) => `${f.name.padEnd(width)}  ${f.value}${hint(f)}`);
    writeSync(1, lines.join("\n") + "\n");
    return 0;
  },
};
