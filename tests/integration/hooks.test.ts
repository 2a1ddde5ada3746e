// OCI hooks (config.json "hooks"): each phase runs when and where the runtime spec says, gets
// the container's state on stdin and its own args and env, and a failure stops the container
// only in the phases before its program runs. Every hook here is busybox run through its
// argv[0], appending to files in a folder that the host and the container both see.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  type As,
  type Spec,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  scratchDir,
  tinycSkipReason,
} from "./harness";
import {
  Tidy,
  busybox,
  expectTinycError,
  ownerIds,
  pidsWithArg,
  waitUntil,
} from "./runkit";

afterAll(cleanup);

const busyboxPath = Bun.which("busybox");
const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noHostBox = busyboxPath ? null : "no busybox on the host";
const noRootless = noTinyc ?? noHostBox ?? requireUserns();
const noRoot = noTinyc ?? noHostBox ?? rootSkipReason();
if (noRootless) console.warn(`skipping rootless hook tests: ${noRootless}`);
if (noRoot) console.warn(`skipping root hook tests: ${noRoot}`);

const tidy = new Tidy();
afterEach(() => tidy.run());

type Phase =
  | "prestart"
  | "createRuntime"
  | "createContainer"
  | "startContainer"
  | "poststart"
  | "poststop";

const PHASES: Phase[] = [
  "prestart",
  "createRuntime",
  "createContainer",
  "startContainer",
  "poststart",
  "poststop",
];

/** The status the runtime spec gives the state each phase gets. */
const STATUS: Record<Phase, string> = {
  prestart: "creating",
  createRuntime: "creating",
  createContainer: "creating",
  startContainer: "created",
  poststart: "running",
  poststop: "stopped",
};

const HOSTNAME = "hooked";

// What every recording hook does: keep its stdin, hostname, mount and uts namespaces and
// environment, then append its phase to the shared order file.
const RECORD =
  'p=$1; d=$2; cat > "$d/$p.json"; hostname > "$d/$p.hostname"; ' +
  'readlink /proc/self/ns/mnt > "$d/$p.mntns"; readlink /proc/self/ns/uts > "$d/$p.utsns"; ' +
  'env > "$d/$p.env"; echo "$p" >> "$d/order"';

interface Setup {
  /** Where the hooks write; the same path inside the container (a bind mount). */
  dir: string;
  /** busybox at a path that exists only on the host. */
  hostBox: string;
  /** busybox at a path that exists only in the container. */
  containerBox: string;
}

type Hook = { path: string; args?: string[]; env?: string[]; timeout?: number };
type HookSet = Partial<Record<Phase, Hook[]>>;

/** A hook of PHASE that records itself. Paths follow the spec: startContainer's resolves in
 * the container, the others' in the runtime's namespace. */
function recorder(phase: Phase, s: Setup): Hook {
  return {
    path: phase === "startContainer" ? s.containerBox : s.hostBox,
    args: ["sh", "-c", RECORD, "hook", phase, s.dir],
    env: ["PATH=/usr/bin:/bin", `HOOK_VAR=from-${phase}`],
  };
}

function allRecorders(s: Setup): HookSet {
  return Object.fromEntries(PHASES.map((p) => [p, [recorder(p, s)]]));
}

/** A copy of busybox as FILE, owned by the user of `as`. */
function copyBusybox(file: string, as: As): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.copyFileSync(busyboxPath!, file);
  fs.chmodSync(file, 0o755);
  const { uid, gid } = ownerIds(as);
  fs.chownSync(file, uid, gid);
  return file;
}

/**
 * A container whose hooks are made by `hooks` from the setup. Its program records itself in
 * the order file too, then waits. The rootfs is writable, so that a hook in the container can
 * leave a file in it.
 */
async function hooked(
  as: As,
  hooks: (s: Setup) => HookSet,
  opts: { args?: (s: Setup) => string[]; config?: (spec: Spec) => void } = {},
) {
  const dir = scratchDir(as, "hooks");
  const bin = scratchDir(as, "hookbin");
  const hostBox = copyBusybox(path.join(bin, "hostbox"), as);
  const containerBox = "/sbin/containerbox";
  const setup: Setup = { dir, hostBox, containerBox };
  const args = opts.args?.(setup) ?? [
    "sh",
    "-c",
    `echo program >> ${dir}/order; while :; do sleep 0.1; done`,
  ];
  const bundle = tidy.bundle(
    await busybox(as, args, {
      config: (spec) => {
        spec.root.readonly = false;
        spec.hostname = HOSTNAME;
        spec.mounts.push({ destination: dir, type: "bind", source: dir, options: ["rbind"] });
        spec.hooks = hooks(setup);
        opts.config?.(spec);
      },
    }),
  );
  copyBusybox(path.join(bundle.rootfs, containerBox), as);
  const rt = tidy.root(as);
  const id = rt.id();
  const pidFile = path.join(rt.scratch, "pid");
  return {
    rt,
    id,
    bundle,
    dir,
    setup,
    pidFile,
    create: () => rt.create(id, bundle, ["--pid-file", pidFile]),
    /** create, for tests about what follows it: a failure ends the test at once. */
    mustCreate: async () => {
      const r = await rt.create(id, bundle, ["--pid-file", pidFile]);
      if (r.code !== 0) throw new Error(`create: ${r.stderr.trim()}`);
      return r;
    },
    pid: () => Number(fs.readFileSync(pidFile, "utf8")),
  };
}

const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "");
const orderOf = (dir: string) => read(path.join(dir, "order")).split("\n").filter(Boolean);
const stateOf = (dir: string, phase: Phase) => JSON.parse(read(path.join(dir, `${phase}.json`)));

/** Creates, starts and deletes (after the program has started) a recording container. */
async function fullLife(as: As) {
  const c = await hooked(as, allRecorders);
  await c.mustCreate();
  const pid = c.pid();
  await c.rt.tinyc(["start", c.id]);
  await waitUntil(() => orderOf(c.dir).includes("program"));
  const del = await c.rt.tinyc(["delete", "--force", c.id]);
  if (del.code !== 0) throw new Error(`delete: ${del.stderr}`);
  return { ...c, pid };
}

/** A hook that fails with a message on stderr. */
function failing(s: Setup, phase: Phase): Hook {
  return {
    path: phase === "startContainer" ? s.containerBox : s.hostBox,
    args: ["sh", "-c", `echo ${phase} says no >&2; exit 3`],
  };
}

function hookTests(as: As) {
  describe("order and state", () => {
    // One life of one container serves the tests that only read what its hooks recorded.
    let life: Awaited<ReturnType<typeof fullLife>> | undefined;
    const once = async () => (life ??= await fullLife(as));

    test("hooks run in the order the runtime spec gives", async () => {
      const { dir } = await once();
      expect(orderOf(dir).filter((p) => p !== "program")).toEqual(PHASES);
    });

    test("startContainer runs before the program and poststart after startContainer",
      async () => {
        const order = orderOf((await once()).dir);
        const at = (p: string) => order.indexOf(p);
        expect({
          program: at("startContainer") < at("program"),
          poststart: at("startContainer") < at("poststart"),
        }).toEqual({ program: true, poststart: true });
      });

    for (const phase of PHASES) {
      test(`${phase} hook gets the state with status ${STATUS[phase]} on stdin`, async () => {
        expect(stateOf((await once()).dir, phase).status).toBe(STATUS[phase]);
      });
    }

    test("every hook gets the container's id and bundle in the state", async () => {
      const { dir, id, bundle } = await once();
      const got = PHASES.map((p) => {
        const st = stateOf(dir, p);
        return { phase: p, id: st.id, bundle: st.bundle };
      });
      expect(got).toEqual(PHASES.map((p) => ({ phase: p, id, bundle: bundle.dir })));
    });

    test("hooks up to poststart get the container's pid in the state", async () => {
      const { dir, pid } = await once();
      const before = PHASES.filter((p) => p !== "poststop");
      expect(before.map((p) => stateOf(dir, p).pid)).toEqual(before.map(() => pid));
    });

    test("every hook gets the env its config gives", async () => {
      const { dir } = await once();
      const env = (p: Phase) => read(path.join(dir, `${p}.env`));
      const got = PHASES.map((p) => env(p).includes(`HOOK_VAR=from-${p}\n`));
      expect(got).toEqual(PHASES.map(() => true));
    });

    test("hooks get none of the runtime's own environment", async () => {
      const { dir } = await once();
      const leaked = PHASES.filter((p) =>
        /^(XDG_RUNTIME_DIR|HOME)=/m.test(read(path.join(dir, `${p}.env`))),
      );
      expect(leaked).toEqual([]);
    });

    test("startContainer sees the container's hostname", async () => {
      const { dir } = await once();
      expect(read(path.join(dir, "startContainer.hostname")).trim()).toBe(HOSTNAME);
    });

    // The spec puts createContainer in the container's namespaces but does not say whether
    // the hostname is set by then (runc sets it later): the namespace is what is checked.
    for (const ns of ["mnt", "uts"]) {
      test(`createContainer runs in the container's ${ns} namespace`, async () => {
        const { dir } = await once();
        const inContainer = read(path.join(dir, `startContainer.${ns}ns`)).trim();
        const got = read(path.join(dir, `createContainer.${ns}ns`)).trim();
        const host = fs.readlinkSync(`/proc/self/ns/${ns}`);
        expect({ same: got === inContainer, host: got === host }).toEqual({
          same: true,
          host: false,
        });
      });
    }

    test("prestart, createRuntime, poststart and poststop run in the runtime's namespaces",
      async () => {
        const { dir } = await once();
        const phases: Phase[] = ["prestart", "createRuntime", "poststart", "poststop"];
        const got = phases.map((p) => ({
          hostname: read(path.join(dir, `${p}.hostname`)).trim(),
          mntns: read(path.join(dir, `${p}.mntns`)).trim(),
        }));
        const host = { hostname: os.hostname(), mntns: fs.readlinkSync("/proc/self/ns/mnt") };
        expect(got).toEqual(phases.map(() => host));
      });
  });

  test("create runs prestart, createRuntime and createContainer, and no later phase", async () => {
    const c = await hooked(as, allRecorders);
    await c.create();
    expect(orderOf(c.dir)).toEqual(["prestart", "createRuntime", "createContainer"]);
  });

  test("poststop runs only at delete", async () => {
    const c = await hooked(as, (s) => ({ poststop: [recorder("poststop", s)] }), {
      args: () => ["true"],
    });
    await c.mustCreate();
    await c.rt.tinyc(["start", c.id]);
    await c.rt.waitStatus(c.id, "stopped");
    const before = orderOf(c.dir).includes("poststop");
    const r = await c.rt.tinyc(["delete", c.id]);
    expect({ before, code: r.code, after: orderOf(c.dir) }).toEqual({
      before: false,
      code: 0,
      after: ["poststop"],
    });
  });

  test("startContainer sees the container's rootfs at /", async () => {
    const c = await hooked(as, (s) => ({
      startContainer: [{ path: s.containerBox, args: ["touch", "/left-by-startContainer"] }],
    }));
    await c.mustCreate();
    const r = await c.rt.tinyc(["start", c.id]);
    const made = fs.existsSync(path.join(c.bundle.rootfs, "left-by-startContainer"));
    expect({ start: r.stderr, made }).toEqual({ start: "", made: true });
  });

  for (const phase of ["prestart", "createContainer", "startContainer"] as Phase[]) {
    test(`a ${phase} hook runs with args[0] as its argv[0]`, async () => {
      // busybox picks its applet by argv[0]: "touch" only works if that is what it got.
      const c = await hooked(as, (s) => ({
        [phase]: [{
          path: phase === "startContainer" ? s.containerBox : s.hostBox,
          args: ["touch", path.join(s.dir, "touched")],
        }],
      }));
      const cr = await c.create();
      const st = await c.rt.tinyc(["start", c.id]);
      const touched = fs.existsSync(path.join(c.dir, "touched"));
      expect({ errors: cr.stderr + st.stderr, touched }).toEqual({ errors: "", touched: true });
    });
  }

  for (const phase of ["prestart", "createRuntime", "createContainer"] as Phase[]) {
    describe(`a failing ${phase} hook`, () => {
      async function failed() {
        const c = await hooked(as, (s) => ({ [phase]: [failing(s, phase)] }));
        return { ...c, r: await c.create() };
      }

      test("fails create with a message naming the hook", async () => {
        const { r } = await failed();
        expectTinycError(r, "non-zero", phase);
      });

      test("leaves no state behind", async () => {
        const { rt, id } = await failed();
        expect({ state: await rt.state(id), entries: rt.entries() }).toEqual({
          state: undefined,
          entries: [],
        });
      });

      test("leaves no process behind", async () => {
        const { id } = await failed();
        // The container's process is a clone of tinyc's until it execs: its command line
        // still names the id.
        expect(await waitUntil(() => pidsWithArg(id).length === 0, 2000)).toBe(true);
      });
    });
  }

  test("a failing startContainer hook fails start and the program never runs", async () => {
    const c = await hooked(as, (s) => ({ startContainer: [failing(s, "startContainer")] }));
    await c.mustCreate();
    const r = await c.rt.tinyc(["start", c.id]);
    await Bun.sleep(300);
    expect({ failed: r.code !== 0, ran: orderOf(c.dir).includes("program") }).toEqual({
      failed: true,
      ran: false,
    });
  });

  for (const phase of ["prestart", "createContainer"] as Phase[]) {
    test(`a ${phase} hook past its timeout is killed and fails create`, async () => {
      // A sleep that no other test runs, so that its process can be found.
      const secs = `${30 + Math.floor(Math.random() * 1000)}.5`;
      const c = await hooked(as, (s) => ({
        [phase]: [{ path: s.hostBox, args: ["sleep", secs], timeout: 1 }],
      }));
      const t0 = Date.now();
      const r = await c.create();
      const took = Date.now() - t0;
      const gone = await waitUntil(() => pidsWithArg(`sleep\0${secs}`).length === 0, 2000);
      expect({ failed: r.code !== 0, quick: took < 10_000, gone, left: c.rt.entries() })
        .toEqual({ failed: true, quick: true, gone: true, left: [] });
    }, 20_000);
  }

  test("a failing poststart hook only warns: start succeeds", async () => {
    const c = await hooked(as, (s) => ({ poststart: [failing(s, "poststart")] }));
    await c.mustCreate();
    const r = await c.rt.tinyc(["start", c.id]);
    expect({ code: r.code, warned: r.stderr.includes("poststart") }).toEqual({
      code: 0,
      warned: true,
    });
  });

  test("a failing poststart hook leaves the container running", async () => {
    const c = await hooked(as, (s) => ({ poststart: [failing(s, "poststart")] }));
    await c.mustCreate();
    await c.rt.tinyc(["start", c.id]);
    expect((await c.rt.state(c.id))?.status).toBe("running");
  });

  test("a failing poststop hook only warns: delete succeeds and removes the state", async () => {
    const c = await hooked(as, (s) => ({ poststop: [failing(s, "poststop")] }));
    await c.mustCreate();
    const r = await c.rt.tinyc(["delete", "--force", c.id]);
    expect({ code: r.code, warned: r.stderr.includes("poststop"), left: c.rt.entries() })
      .toEqual({ code: 0, warned: true, left: [] });
  });

  test("concurrent deletes of one stopped container run poststop once", async () => {
    const c = await hooked(as, (s) => ({ poststop: [recorder("poststop", s)] }), {
      args: () => ["true"],
    });
    await c.mustCreate();
    await c.rt.tinyc(["start", c.id]);
    await c.rt.waitStatus(c.id, "stopped");
    await Promise.all(Array.from({ length: 5 }, () => c.rt.tinyc(["delete", c.id])));
    expect(orderOf(c.dir)).toEqual(["poststop"]);
  });

  test("hooks of one phase run in the order they are listed", async () => {
    const c = await hooked(as, (s) => ({
      prestart: ["first", "second", "third"].map((name) => ({
        path: s.hostBox,
        args: ["sh", "-c", `echo ${name} >> ${s.dir}/order`],
      })),
    }));
    await c.create();
    expect(orderOf(c.dir)).toEqual(["first", "second", "third"]);
  });

  test("a failing hook stops the hooks after it in its phase", async () => {
    const c = await hooked(as, (s) => ({
      prestart: [failing(s, "prestart"), recorder("prestart", s)],
    }));
    await c.create();
    expect(orderOf(c.dir)).toEqual([]);
  });

  test("create with hooks still runs the program at start", async () => {
    const c = await hooked(as, allRecorders);
    await c.mustCreate();
    await c.rt.tinyc(["start", c.id]);
    expect(await waitUntil(() => orderOf(c.dir).includes("program"))).toBe(true);
  });
}

describe.skipIf(!!noRootless)("rootless", () => hookTests("rootless"));
describe.skipIf(!!noRoot)("as root", () => hookTests("root"));
