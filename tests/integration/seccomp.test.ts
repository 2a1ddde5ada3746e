// Seccomp (linux.seccomp): profiles in the OCI format, compiled by tinyc and loaded into the
// container's process before its program runs, and into every process exec'd into it. Each
// test runs busybox against a profile and looks at what the kernel let through.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
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
import { Tidy, busybox, expectTinycError, withTmp } from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
if (noRootless) console.warn(`skipping rootless seccomp tests: ${noRootless}`);
if (noRoot) console.warn(`skipping root seccomp tests: ${noRoot}`);

const tidy = new Tidy();
afterEach(() => tidy.run());

interface Rule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: { index: number; value: number; op: string }[];
}

/** A profile that allows everything but what `rules` say. */
function allowBut(...rules: Rule[]) {
  return { defaultAction: "SCMP_ACT_ALLOW", syscalls: rules };
}

// busybox's mkdir may use either call, depending on the libc it was built with.
const NO_MKDIR: Rule = { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 };

const SIGSYS = 31;

let specProfile: unknown;

/** The profile that `tinyc spec` writes, read once from a spec made in a scratch bundle. */
async function defaultProfile(as: As): Promise<unknown> {
  if (specProfile) return specProfile;
  const rt = tidy.root(as);
  const r = await rt.tinyc(["spec", "--rootless", "--bundle", rt.scratch]);
  if (r.code !== 0) throw new Error(`spec: ${r.stderr}`);
  specProfile = JSON.parse(fs.readFileSync(path.join(rt.scratch, "config.json"), "utf8")).linux
    .seccomp;
  return specProfile;
}

interface Options {
  config?: (spec: Spec) => void;
}

/** `tinyc run` of a busybox bundle with this profile, under a state root of its own. */
async function runWith(as: As, seccomp: unknown, args: string[], opts: Options = {}) {
  const bundle = tidy.bundle(
    await busybox(as, args, {
      config: (s) => {
        withTmp(s);
        if (seccomp) s.linux.seccomp = seccomp;
        opts.config?.(s);
      },
    }),
  );
  const rt = tidy.root(as);
  return rt.tinyc(["run", "--bundle", bundle.dir, rt.id()]);
}

/** A started container with this profile, for exec. */
async function startedWith(as: As, seccomp: unknown) {
  const args = ["sh", "-c", "while :; do sleep 0.1; done"];
  const bundle = tidy.bundle(
    await busybox(as, args, {
      config: (s) => {
        withTmp(s);
        s.linux.seccomp = seccomp;
      },
    }),
  );
  const rt = tidy.root(as);
  const id = rt.id();
  await rt.started(id, bundle);
  return { rt, id };
}

const withCaps = (...caps: string[]) => (s: Spec) => {
  const c = s.process.capabilities;
  for (const set of ["bounding", "effective", "permitted"]) c[set] = [...c[set], ...caps];
};

function seccompTests(as: As) {
  test("the program runs with a filter: Seccomp 2 in /proc/self/status", async () => {
    const r = await runWith(as, allowBut(NO_MKDIR), ["grep", "^Seccomp:", "/proc/self/status"]);
    expect(r.stdout).toBe("Seccomp:\t2\n");
  });

  test("an ERRNO rule makes the call fail: mkdir says Operation not permitted", async () => {
    const r = await runWith(as, allowBut(NO_MKDIR), ["mkdir", "/tmp/x"]);
    expect({ failed: r.code !== 0, err: r.stderr.includes("Operation not permitted") }).toEqual({
      failed: true,
      err: true,
    });
  });

  test("an ERRNO rule returns its errnoRet", async () => {
    const rule = { ...NO_MKDIR, errnoRet: 28 };
    const r = await runWith(as, allowBut(rule), ["mkdir", "/tmp/x"]);
    expect(r.stderr).toContain("No space left on device");
  });

  test("calls that the profile does not name still work", async () => {
    const script = "echo data > /tmp/file && cat /tmp/file && ls /tmp && rm /tmp/file";
    const r = await runWith(as, allowBut(NO_MKDIR), ["sh", "-c", script]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "data\nfile\n" });
  });

  test("a KILL_PROCESS rule kills the program with SIGSYS: run exits 159", async () => {
    const rule = { names: ["uname"], action: "SCMP_ACT_KILL_PROCESS" };
    const r = await runWith(as, allowBut(rule), ["uname"]);
    expect(r.code).toBe(128 + SIGSYS);
  });

  test("a KILL rule kills the program with SIGSYS too", async () => {
    const rule = { names: ["uname"], action: "SCMP_ACT_KILL" };
    const r = await runWith(as, allowBut(rule), ["uname"]);
    expect(r.code).toBe(128 + SIGSYS);
  });

  test("a rule with an argument condition refuses only the calls that match it", async () => {
    // umask(0o077) is refused, umask(0o022) is not.
    const rule = {
      names: ["umask"],
      action: "SCMP_ACT_ERRNO",
      errnoRet: 1,
      args: [{ index: 0, value: 0o077, op: "SCMP_CMP_EQ" }],
    };
    const script = "umask 022 && echo 022 ok; umask 077 && echo 077 ok; umask";
    const r = await runWith(as, allowBut(rule), ["sh", "-c", script]);
    expect(r.stdout).toBe("022 ok\n077 ok\n0022\n");
  });

  test("a profile with an unknown action fails create naming it", async () => {
    const r = await runWith(as, allowBut({ names: ["uname"], action: "SCMP_ACT_NOPE" }), ["true"]);
    expectTinycError(r, "non-zero", "SCMP_ACT_NOPE");
  });

  test("exec'd processes run with a filter: Seccomp 2", async () => {
    const { rt, id } = await startedWith(as, allowBut(NO_MKDIR));
    const r = await rt.tinyc(["exec", id, "grep", "^Seccomp:", "/proc/self/status"]);
    expect(r.stdout).toBe("Seccomp:\t2\n");
  });

  test("exec'd processes get the container's filter: mkdir is refused", async () => {
    const { rt, id } = await startedWith(as, allowBut(NO_MKDIR));
    const r = await rt.tinyc(["exec", id, "mkdir", "/tmp/x"]);
    expect(r.stderr).toContain("Operation not permitted");
  });

  describe("with noNewPrivileges false", () => {
    const noNNP = { config: (s: Spec) => (s.process.noNewPrivileges = false) };

    test("the filter still loads", async () => {
      const r = await runWith(as, allowBut(NO_MKDIR), ["grep", "^Seccomp:", "/proc/self/status"],
        noNNP);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "Seccomp:\t2\n" });
    });

    test("the filter still refuses what it names", async () => {
      const r = await runWith(as, allowBut(NO_MKDIR), ["mkdir", "/tmp/x"], noNNP);
      expect(r.stderr).toContain("Operation not permitted");
    });

    test("no_new_privs is left unset", async () => {
      const r = await runWith(as, allowBut(NO_MKDIR), ["grep", "^NoNewPrivs:",
        "/proc/self/status"], noNNP);
      expect(r.stdout).toBe("NoNewPrivs:\t0\n");
    });
  });

  describe("the profile that tinyc spec writes", () => {
    test("allows an ordinary shell session", async () => {
      const script =
        "echo piped | cat && mkdir /tmp/d && cd /tmp/d && echo x > f && cat f && " +
        "ln -s f l && readlink l && rm f l && cd / && rmdir /tmp/d && ls / >/dev/null && " +
        "sleep 0.1 && date >/dev/null && id -u && (exit 3); echo status $?";
      const r = await runWith(as, await defaultProfile(as), ["sh", "-c", script]);
      expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({
        code: 0,
        out: "piped\nx\nf\n0\nstatus 3\n",
        err: "",
      });
    });

    test("denies unshare -U with EPERM", async () => {
      const r = await runWith(as, await defaultProfile(as), ["unshare", "-U", "true"]);
      expect({ failed: r.code !== 0, err: r.stderr.includes("Operation not permitted") })
        .toEqual({ failed: true, err: true });
    });

    test("denies mount, even to a container that holds CAP_SYS_ADMIN", async () => {
      const r = await runWith(as, await defaultProfile(as),
        ["mount", "-t", "tmpfs", "none", "/home"], { config: withCaps("CAP_SYS_ADMIN") });
      expect({ failed: r.code !== 0, err: /not permitted|permission denied/i.test(r.stderr) })
        .toEqual({ failed: true, err: true });
    });

    // The controls: without the profile the same calls succeed, so the refusals above are
    // the filter's.
    test("without it, unshare -U works in the container", async () => {
      const r = await runWith(as, undefined, ["unshare", "-U", "true"]);
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    });

    test("without it, a container with CAP_SYS_ADMIN can mount", async () => {
      const r = await runWith(as, undefined, ["mount", "-t", "tmpfs", "none", "/home"], {
        config: withCaps("CAP_SYS_ADMIN"),
      });
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    });
  });
}

describe.skipIf(!!noRootless)("rootless", () => seccompTests("rootless"));
describe.skipIf(!!noRoot)("as root", () => seccompTests("root"));
