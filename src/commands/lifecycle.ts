// The runc verbs that look at or end a container: state, kill, delete, list, ps.

import { writeSync } from "node:fs";
import type minimist from "minimist";
import { containerId, parseFlags } from "./args";
import type { Globals } from "../cli";
import { EXIT, TinycError } from "../errors";
import {
  containerPids,
  isAlive,
  liveStatus,
  lockContainer,
  mustLoad,
  ociState,
  parseSignal,
  removeWhenEmpty,
  signalProcess,
  sweepRunners,
  waitGone,
} from "../runtime/container";
import { runHooksWarn } from "../runtime/hooks";
import { cgroupPids, freeze } from "../runtime/cgroups";
import { defaultStateRoot, StateStore } from "../runtime/state";
import type { Command } from "./index";

function store(globals: Globals): StateStore {
  return new StateStore(globals.root ?? defaultStateRoot());
}

function needId(verb: string, a: minimist.ParsedArgs, globals: Globals): string {
  const id = a._[0] === undefined ? undefined : String(a._[0]);
  if (!id) throw new TinycError(`${verb}: a container id is needed`, { exitCode: EXIT.usage });
  const s = store(globals);
  return containerId(id, (x) => s.exists(x));
}

function out(text: string): void {
  writeSync(1, text);
}

function helpOr(a: minimist.ParsedArgs, help: string): boolean {
  if (a.help) out(help);
  return !!a.help;
}

export const stateCommand: Command = {
  help: `usage: tinyc state [--format json] ID

Prints the container's state (the OCI state JSON).

flags:
  --format, -f json  the only format (accepted so every listing takes --format json)
`,
  run(args, globals) {
    const a = parseFlags("state", args, { boolean: ["help"], string: ["format"], alias: { h: "help", f: "format" } });
    if (helpOr(a, this.help)) return 0;
    if (a.format !== undefined && a.format !== "json") {
      throw new TinycError(`state: unknown format ${JSON.stringify(a.format)}`, { exitCode: EXIT.usage });
    }
    const s = store(globals);
    const st = mustLoad(s, needId("state", a, globals));
    out(JSON.stringify(ociState(s, st), null, "  ") + "\n");
    return 0;
  },
};

export const killCommand: Command = {
  help: `usage: tinyc kill [--all] ID [SIGNAL]
       tinyc kill -s SIGNAL ID

Sends SIGNAL (a name such as KILL or SIGKILL, or a number) to the container's first process.

flags:
  --all, -a        send it to every process of the container
  --signal, -s SIG the signal, as docker spells it
`,
  run(args, globals) {
    const a = parseFlags("kill", args, {
      boolean: ["all", "help"],
      string: ["signal"],
      alias: { a: "all", s: "signal", h: "help" },
    });
    if (helpOr(a, this.help)) return 0;
    const id = needId("kill", a, globals);
    const sig = parseSignal(a.signal || (a._[1] === undefined ? "TERM" : String(a._[1])));
    const s = store(globals);
    const st = mustLoad(s, id);
    const status = liveStatus(s, st);
    if (status === "stopped") throw new TinycError("container not running");
    const pids = a.all ? containerPids(st) : [st.pid];
    let sent = false;
    for (const pid of pids) {
      sent = signalProcess(pid, pid === st.pid ? st.pidStart : undefined, sig) || sent;
    }
    if (!sent) throw new TinycError("container not running");
    return 0;
  },
};

export const deleteCommand: Command = {
  help: `usage: tinyc delete [--force] ID

Removes the container's state. A container that still runs is refused unless --force, which
kills it first. With --force an id that does not exist is not an error.

flags:
  --force, -f  kill it first if it runs
`,
  async run(args, globals) {
    const a = parseFlags("delete", args, { boolean: ["force", "help"], alias: { f: "force", h: "help" } });
    if (helpOr(a, this.help)) return 0;
    const id = needId("delete", a, globals);
    const s = store(globals);
    const st = s.read(id);
    if (!st) {
      // What a create that died early left behind goes too.
      if (s.exists(id) && (s.removeIfStale(id) || a.force)) {
        if (s.exists(id)) s.remove(id);
        return 0;
      }
      if (a.force) return 0;
      throw new TinycError(`container ${JSON.stringify(id)} does not exist`);
    }
    const release = lockContainer(s, id);
    try {
      // Another delete may have won the lock and removed it meanwhile.
      if (!s.read(id)) {
        if (a.force) return 0;
        throw new TinycError(`container ${JSON.stringify(id)} does not exist`);
      }
      const status = liveStatus(s, st);
      if (status === "running" || status === "paused") {
        if (!a.force) {
          throw new TinycError(`cannot delete container ${id} that is not stopped: ${status}`);
        }
      }
      if (status !== "stopped") {
        // A created container is ended too: it never ran its program.
        signalProcess(st.pid, st.pidStart, 9);
        // A frozen process cannot act on its SIGKILL until it is thawed.
        if (status === "paused" && st.cgroup) freeze(st.cgroup, false);
        if (!(await waitGone(st, 10_000))) {
          throw new TinycError(`container ${id} did not end after SIGKILL`);
        }
      }
      if (st.cgroup) {
        // Processes that left the first one's tree (with --all semantics) end with it too.
        for (const pid of cgroupPids(st.cgroup) ?? []) signalProcess(pid, undefined, 9);
        await removeWhenEmpty(st.cgroup);
      }
      const hookState = { ociVersion: st.ociVersion, id, bundle: st.bundle, annotations: st.annotations };
      await runHooksWarn(st.hooks, "poststop", { ...hookState, status: "stopped" }, { dir: s.dir(id) });
      s.remove(id);
      return 0;
    } finally {
      release();
    }
  },
};

export const listCommand: Command = {
  help: `usage: tinyc list [--format table|json] [--quiet]

flags:
  --format, -f FMT  table (default) or json
  --quiet, -q       only the ids
`,
  run(args, globals) {
    const a = parseFlags("list", args, {
      boolean: ["quiet", "help"],
      string: ["format"],
      alias: { f: "format", q: "quiet", h: "help" },
    });
    if (helpOr(a, this.help)) return 0;
    const s = store(globals);
    sweepRunners(s);
    const states = s
      .ids()
      .map((id) => s.read(id))
      .filter((st) => st !== undefined)
      .map((st) => ociState(s, st));
    if (a.quiet) {
      out(states.map((st) => `${st.id}\n`).join(""));
    } else if (a.format === "json") {
      out(JSON.stringify(states) + "\n");
    } else if (a.format && a.format !== "table") {
      throw new TinycError(`list: unknown format ${JSON.stringify(a.format)}`, { exitCode: EXIT.usage });
    } else {
      const rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]];
      for (const st of states) {
        rows.push([String(st.id), String(st.pid), String(st.status), String(st.bundle),
          String(st.created), String(process.getuid!())]);
      }
      const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      out(rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd() + "\n").join(""));
    }
    return 0;
  },
};

export const psCommand: Command = {
  help: `usage: tinyc ps [--format table|json] ID
       tinyc ps [-a] [-q] [--format json]

With an id, the processes of that container (--format json: the pids). Without one, the
containers made from images, as docker lists them.

flags:
  --format, -f FMT  table (default) or json (an array of objects)
  --all, -a         without an id: stopped containers too
  --quiet, -q       without an id: only the ids
  --no-trunc        without an id: full ids
`,
  async run(args, globals) {
    const a = parseFlags("ps", args, {
      boolean: ["help", "all", "quiet", "no-trunc"],
      string: ["format"],
      alias: { f: "format", h: "help", a: "all", q: "quiet" },
    });
    if (helpOr(a, this.help)) return 0;
    // Without an id, docker's form: the containers made from images.
    if (a._.length === 0) return (await import("./container")).psCommandDocker(args, globals);
    const id = needId("ps", a, globals);
    const s = store(globals);
    const st = mustLoad(s, id);
    const pids = isAlive(st) ? containerPids(st) : [];
    if (a.format === "json") {
      out(JSON.stringify(pids) + "\n");
      return 0;
    }
    const r = Bun.spawnSync(["ps", "-o", "user,pid,ppid,stime,tty,time,cmd", "-p", pids.join(",") || "0"], {
      stdout: "pipe",
      stderr: "pipe",
    });
    out(r.stdout.toString());
    return 0;
  },
};

function pauseOrResume(verb: "pause" | "resume"): Command {
  return {
    help: `usage: tinyc ${verb} ID\n\nNeeds the container to have a cgroup with a freezer.\n`,
    run(args, globals) {
      const a = parseFlags("ps", args, { boolean: ["help"], alias: { h: "help" } });
      if (helpOr(a, this.help)) return 0;
      const id = needId(verb, a, globals);
      const s = store(globals);
      const st = mustLoad(s, id);
      const status = liveStatus(s, st);
      if (verb === "pause" && status !== "running") {
        throw new TinycError(`cannot pause a container that is ${status}`);
      }
      if (verb === "resume" && status !== "paused") {
        throw new TinycError(`cannot resume a container that is ${status}`);
      }
      if (!st.cgroup) {
        throw new TinycError(`${verb}: not supported for a container without a cgroup`, {
          hint: "rootless containers get one only with a delegated cgroup v2 and limits",
        });
      }
      freeze(st.cgroup, verb === "pause");
      s.write({ ...st, status: verb === "pause" ? "paused" : "running" });
      return 0;
    },
  };
}

export const pauseCommand = pauseOrResume("pause");
export const resumeCommand = pauseOrResume("resume");
