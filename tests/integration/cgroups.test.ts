// cgroups (linux.resources): as root, a container with limits gets a group of its own, the
// limits are written before its program runs and hold, exec'd processes join it, and delete
// removes it. Run by a user on a host with cgroup v1 (which cannot be delegated), limits are
// refused with an error that says so. The paths below are cgroup v1's; on a v2 host the root
// tests are skipped.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  type Spec,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  tinycSkipReason,
} from "./harness";
import { Tidy, busybox, expectTinycError, isRunning, waitUntil } from "./runkit";

afterAll(cleanup);

const CGROUP = "/sys/fs/cgroup";
const isV1 = fs.existsSync(path.join(CGROUP, "memory", "memory.limit_in_bytes"));
const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns() ?? (isV1 ? null : "the host has cgroup v2");
const noRoot = noTinyc ?? rootSkipReason() ?? (isV1 ? null : "the host has cgroup v2");
if (noRootless) console.warn(`skipping rootless cgroup tests: ${noRootless}`);
if (noRoot) console.warn(`skipping root cgroup tests: ${noRoot}`);

const tidy = new Tidy();
afterEach(() => tidy.run());

const MiB = 1024 * 1024;
const FOREVER = ["sh", "-c", "while :; do sleep 0.1; done"];
// Swap would let the container go past its memory limit without being killed: where the
// kernel accounts swap, memory plus swap gets the same limit.
const hasSwapAccounting = fs.existsSync(path.join(CGROUP, "memory", "memory.memsw.limit_in_bytes"));

function limits(spec: Spec): void {
  const memory: Record<string, number> = { limit: 64 * MiB };
  if (hasSwapAccounting) memory.swap = 64 * MiB;
  spec.linux.resources = { memory, pids: { limit: 20 }, cpu: { shares: 512 } };
}

/** The container's folder of a v1 controller when no cgroupsPath is given. */
const groupDir = (controller: string, id: string) => path.join(CGROUP, controller, "tinyc", id);
const readGroup = (controller: string, id: string, file: string) =>
  fs.readFileSync(path.join(groupDir(controller, id), file), "utf8").trim();

/** The v1 controllers mounted here, each a tree the container's group is made in. */
const controllers = () =>
  ["memory", "pids", "cpu", "freezer"].filter((c) => fs.existsSync(path.join(CGROUP, c)));

interface Options {
  config?: (spec: Spec) => void;
  created?: boolean;
}

/** A container with limits, created (and started unless `created`). */
async function limited(as: As, args: string[] = FOREVER, opts: Options = {}) {
  const bundle = tidy.bundle(
    await busybox(as, args, {
      config: (s) => {
        limits(s);
        opts.config?.(s);
      },
    }),
  );
  const rt = tidy.root(as);
  const id = rt.id();
  const pidFile = path.join(rt.scratch, "pid");
  const flags = ["--pid-file", pidFile];
  if (!opts.created) await rt.started(id, bundle, flags);
  else {
    const r = await rt.create(id, bundle, flags);
    if (r.code !== 0) throw new Error(`create ${id}: ${r.stderr.trim()}`);
  }
  return { rt, id, bundle, pid: Number(fs.readFileSync(pidFile, "utf8")) };
}

/** `tinyc run` of a bundle with limits, to its end. */
async function runLimited(as: As, args: string[], config?: (spec: Spec) => void) {
  const bundle = tidy.bundle(
    await busybox(as, args, {
      config: (s) => {
        limits(s);
        config?.(s);
      },
    }),
  );
  const rt = tidy.root(as);
  const id = rt.id();
  return { rt, id, r: await rt.tinyc(["run", "--bundle", bundle.dir, id], { timeoutMs: 30_000 }) };
}

describe.skipIf(!!noRoot)("as root", () => {
  test("create writes the memory limit to memory.limit_in_bytes", async () => {
    const { id } = await limited("root", FOREVER, { created: true });
    expect(readGroup("memory", id, "memory.limit_in_bytes")).toBe(String(64 * MiB));
  });

  test("the memory limit holds while the container runs", async () => {
    const { id } = await limited("root");
    expect(readGroup("memory", id, "memory.limit_in_bytes")).toBe(String(64 * MiB));
  });

  test("create writes the pids limit to pids.max", async () => {
    const { id } = await limited("root", FOREVER, { created: true });
    expect(readGroup("pids", id, "pids.max")).toBe("20");
  });

  test("create writes the cpu shares to cpu.shares", async () => {
    const { id } = await limited("root", FOREVER, { created: true });
    expect(readGroup("cpu", id, "cpu.shares")).toBe("512");
  });

  test("the container's first process is in its group under every controller", async () => {
    const { id, pid } = await limited("root");
    const lines = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n");
    const got = controllers().map((c) => lines.find((l) => l.split(":")[1].split(",").includes(c))
      ?.split(":")[2]);
    expect(got).toEqual(controllers().map(() => `/tinyc/${id}`));
  });

  test("a process allocating past the memory limit is killed", async () => {
    // busybox tail keeps a line whole, and /dev/zero has no newline: 200 MiB held in memory.
    const { r } = await runLimited("root", ["sh", "-c", "head -c 200m /dev/zero | tail"]);
    expect(r.code).toBe(137);
  }, 30_000);

  test("the memory limit leaves an allocation below it alone", async () => {
    const { r } = await runLimited("root", ["sh", "-c", "head -c 16m /dev/zero | tail | wc -c"]);
    expect({ code: r.code, out: r.stdout.trim() }).toEqual({ code: 0, out: String(16 * MiB) });
  });

  test("the pids limit makes forking past it fail", async () => {
    const script = "for i in $(seq 50); do sleep 30 & done; echo forked";
    const { r } = await runLimited("root", ["sh", "-c", script]);
    expect(r.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
  }, 30_000);

  test("the pids limit lets the container have exactly 20 processes", async () => {
    // The shell is one; it counts the sleeps it could start until a fork fails, which ends it.
    const script = "n=0; for i in $(seq 50); do sleep 30 & n=$((n+1)); echo $n; done";
    const { r } = await runLimited("root", ["sh", "-c", script]);
    expect(r.stdout.trim().split("\n").at(-1)).toBe("19");
  }, 30_000);

  test("exec'd processes join the container's group", async () => {
    const { rt, id, pid } = await limited("root");
    const r = await rt.tinyc(["exec", id, "cat", "/proc/self/cgroup"]);
    expect(r.stdout).toBe(fs.readFileSync(`/proc/${pid}/cgroup`, "utf8"));
  });

  test("delete removes the container's group under every controller", async () => {
    const { rt, id } = await limited("root");
    const made = controllers().filter((c) => fs.existsSync(groupDir(c, id)));
    const r = await rt.tinyc(["delete", "--force", id]);
    const left = controllers().filter((c) => fs.existsSync(groupDir(c, id)));
    expect({ made, code: r.code, left }).toEqual({ made: controllers(), code: 0, left: [] });
  });

  test("run removes the container's group when it ends", async () => {
    const { r, id } = await runLimited("root", ["true"]);
    const left = controllers().filter((c) => fs.existsSync(groupDir(c, id)));
    expect({ code: r.code, left }).toEqual({ code: 0, left: [] });
  });

  test("a create that fails removes the group it made", async () => {
    const bundle = tidy.bundle(await busybox("root", ["no-such-program"], { config: limits }));
    const rt = tidy.root("root");
    const id = rt.id();
    const r = await rt.create(id, bundle);
    const left = controllers().filter((c) => fs.existsSync(groupDir(c, id)));
    expect({ failed: r.code !== 0, left }).toEqual({ failed: true, left: [] });
  });

  test("linux.cgroupsPath names the group", async () => {
    const name = `it-${randomBytes(6).toString("hex")}`;
    const { pid } = await limited("root", FOREVER, {
      config: (s) => (s.linux.cgroupsPath = `/tinyc/${name}`),
    });
    expect(fs.readFileSync(`/proc/${pid}/cgroup`, "utf8")).toContain(`:memory:/tinyc/${name}\n`);
  });

  test("delete --force ends processes of the group that left the first one's tree", async () => {
    // A double fork leaves the grandchild with pid 1 of the container as its parent; in the
    // cgroup it stays.
    const { rt, id } = await limited("root");
    await rt.tinyc(["exec", "--detach", id, "sh", "-c", "(sleep 77 &) ; true"]);
    let sleeper = 0;
    await waitUntil(() => {
      const procs = readGroup("pids", id, "cgroup.procs").split("\n").map(Number);
      sleeper = procs.find((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, "utf8") === "sleep\x0077\x00";
        } catch {
          return false;
        }
      }) ?? 0;
      return sleeper > 0;
    });
    await rt.tinyc(["delete", "--force", id]);
    expect({ found: sleeper > 0, gone: await waitUntil(() => !isRunning(sleeper)) }).toEqual({
      found: true,
      gone: true,
    });
  });
});

describe.skipIf(!!noRootless)("rootless", () => {
  async function createLimited() {
    const bundle = tidy.bundle(await busybox("rootless", FOREVER, { config: limits }));
    const rt = tidy.root("rootless");
    const id = rt.id();
    return { rt, id, r: await rt.create(id, bundle) };
  }

  test("create with a memory limit fails saying cgroup v1 cannot be delegated", async () => {
    const { r } = await createLimited();
    expectTinycError(r, "non-zero", "cgroup", "delegated");
  });

  test("create with a memory limit that fails leaves no state", async () => {
    const { rt, id } = await createLimited();
    expect({ state: await rt.state(id), entries: rt.entries() }).toEqual({
      state: undefined,
      entries: [],
    });
  });

  test("run with a memory limit fails with an error that mentions cgroup", async () => {
    const { r } = await runLimited("rootless", ["true"]);
    expectTinycError(r, 125, "cgroup");
  });

  test("a container without limits runs", async () => {
    const bundle = tidy.bundle(await busybox("rootless", ["sh", "-c", "echo ran"]));
    const rt = tidy.root("rootless");
    const r = await rt.tinyc(["run", "--bundle", bundle.dir, rt.id()]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "ran\n" });
  });

  test("a container with only device rules runs: without root they restrict nothing more",
    async () => {
      const bundle = tidy.bundle(
        await busybox("rootless", ["true"], {
          config: (s) => (s.linux.resources = { devices: [{ allow: false, access: "rwm" }] }),
        }),
      );
      const rt = tidy.root("rootless");
      const r = await rt.tinyc(["run", "--bundle", bundle.dir, rt.id()]);
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    });
});
