// `tinyc run BUNDLE`: what a container started in the foreground sees, what its caller gets
// back, and what is left once it ends. Most tests run as the unprivileged user, the product's
// main path; a smaller set runs as root, where no user namespace is made.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  type Bundle,
  type Spec,
  cleanup,
  fixtureSkipReason,
  makeBundle,
  requireUserns,
  rootSkipReason,
  rootless,
  run,
  runCommand,
  scratchDir,
  spawnTinyc,
  tinycSkipReason,
  TINYC,
} from "./harness";
import {
  OutputReader,
  busybox,
  editConfig,
  endContainer,
  hostFile,
  hostMounts,
  killIfAlive,
  processesOf,
  putFile,
  runBundle,
  runOnce,
  runWithUmask,
  sha256,
  subuidRange,
  waitForPid,
} from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
const noDebian = fixtureSkipReason("debian");
for (const [what, reason] of [
  ["rootless run tests", noRootless],
  ["root run tests", noRoot],
  ["debian run tests", noDebian],
] as const) {
  if (reason) console.warn(`skipping ${what}: ${reason}`);
}

// pid 1 ignores signals it has no handler for, so the traps are what make the signals visible.
const TRAPS =
  "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; " +
  "while :; do sleep 0.1; done";

/** The tests that hold as root and rootless alike. */
function commonTests(as: As) {
  test("run exits 0 when the program exits 0", async () => {
    const r = await runOnce(as, ["true"]);
    expect(r.code).toBe(0);
  });

  test("run exits with the program's status", async () => {
    const r = await runOnce(as, ["sh", "-c", "exit 42"]);
    expect(r.code).toBe(42);
  });

  test("run exits 139 when the program dies of SIGSEGV", async () => {
    const r = await runOnce(as, ["report", "segv"]);
    expect(r.code).toBe(139);
  });

  test("run exits 137 when the container is killed with SIGKILL", async () => {
    const bundle = await busybox(as, ["sleep", "100"]);
    const pidFile = path.join(scratchDir(as, "pid"), "pid");
    const proc = spawnTinyc(["run", "--pid-file", pidFile, bundle.dir], { as });
    const pid = await waitForPid(pidFile);
    try {
      killIfAlive(pid, "SIGKILL");
      const code = await Promise.race([proc.exited, Bun.sleep(5000).then(() => "hung")]);
      expect(code).toBe(137);
    } finally {
      await endContainer(pidFile, ["sleep", "100"]);
      proc.kill("SIGKILL");
      bundle.cleanup();
    }
  });

  for (const [signal, trapped] of [
    ["SIGUSR1", "got USR1"],
    ["SIGTERM", "got TERM"],
  ] as const) {
    test(`run forwards ${signal} to the container's first process`, async () => {
      const bundle = await busybox(as, ["sh", "-c", TRAPS]);
      const pidFile = path.join(scratchDir(as, "pid"), "pid");
      const proc = spawnTinyc(["run", "--pid-file", pidFile, bundle.dir], { as });
      const out = new OutputReader(proc.stdout);
      try {
        const ready = await out.until("ready\n");
        proc.kill(signal);
        const seen = ready && (await out.until(`${trapped}\n`));
        expect({ ready, seen }).toEqual({ ready: true, seen: true });
      } finally {
        // The TERM trap ends the container; after USR1 it still runs and TERM ends it.
        proc.kill("SIGTERM");
        await Promise.race([proc.exited, Bun.sleep(3000)]);
        await endContainer(pidFile, ["sh", "-c", TRAPS]);
        bundle.cleanup();
      }
    });
  }

  test("run exits with the status the container's TERM handler chooses", async () => {
    const bundle = await busybox(as, ["sh", "-c", TRAPS]);
    const pidFile = path.join(scratchDir(as, "pid"), "pid");
    const proc = spawnTinyc(["run", "--pid-file", pidFile, bundle.dir], { as });
    const out = new OutputReader(proc.stdout);
    try {
      await out.until("ready\n");
      proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(5000).then(() => "hung")]);
      expect(code).toBe(3);
    } finally {
      await endContainer(pidFile, ["sh", "-c", TRAPS]);
      proc.kill("SIGKILL");
      bundle.cleanup();
    }
  });

  test("run passes 1 MiB of stdin to the container intact", async () => {
    const data = randomBytes(1 << 20);
    const r = await runOnce(as, ["sha256sum"], { input: data });
    expect(r.stdout).toBe(`${sha256(data)}  -\n`);
  });

  test("run passes the end of stdin to the container", async () => {
    const r = await runOnce(as, ["sh", "-c", "cat >/dev/null; echo eof"], { input: "abc" });
    expect({ out: r.stdout, timedOut: r.timedOut }).toEqual({ out: "eof\n", timedOut: false });
  });

  test("run keeps the container's stdout and stderr apart", async () => {
    const r = await runOnce(as, ["sh", "-c", "echo out; echo err >&2"]);
    expect({ out: r.stdout, err: r.stderr }).toEqual({ out: "out\n", err: "err\n" });
  });

  test("run masks a file of maskedPaths", async () => {
    const bundle = await busybox(as, ["cat", "/etc/secret"], {
      config: (s) => s.linux.maskedPaths.push("/etc/secret"),
    });
    putFile(bundle, as, "etc/secret", "not for the container\n");
    const r = await runBundle(as, bundle);
    bundle.cleanup();
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "" });
  });

  test("run masks a folder of maskedPaths", async () => {
    const bundle = await busybox(as, ["ls", "-A", "/srv/hidden"], {
      config: (s) => s.linux.maskedPaths.push("/srv/hidden"),
    });
    putFile(bundle, as, "srv/hidden/inside", "not for the container\n");
    const r = await runBundle(as, bundle);
    bundle.cleanup();
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "" });
  });

  test("run ignores a missing path in maskedPaths", async () => {
    const r = await runOnce(as, ["true"], {
      config: (s) => s.linux.maskedPaths.push("/no/such/path"),
    });
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
  });

  test("run makes readonlyPaths read-only", async () => {
    // kernel/hostname belongs to the container's uts namespace: only the read-only mount
    // stops its root from writing it.
    const r = await runOnce(as, ["sh", "-c", "echo other > /proc/sys/kernel/hostname"]);
    expect(r.stderr).toContain("Read-only file system");
  });

  test("run makes the rootfs read-only when root.readonly is true", async () => {
    const r = await runOnce(as, ["touch", "/newfile"]);
    expect(r.stderr).toContain("Read-only file system");
  });

  test("run leaves the rootfs writable when root.readonly is false", async () => {
    const bundle = await busybox(as, ["touch", "/newfile"], {
      config: (s) => (s.root.readonly = false),
    });
    const r = await runBundle(as, bundle);
    const made = fs.existsSync(path.join(bundle.rootfs, "newfile"));
    bundle.cleanup();
    expect({ code: r.code, made }).toEqual({ code: 0, made: true });
  });

  test("run binds a host file onto a destination missing in the rootfs", async () => {
    const file = hostFile(scratchDir(as, "bind"), "newfile", as, "from the host\n");
    const r = await runOnce(as, ["cat", "/etc/newfile"], {
      config: (s) =>
        s.mounts.push({
          destination: "/etc/newfile",
          type: "bind",
          source: file,
          options: ["rbind", "ro"],
        }),
    });
    expect(r.stdout).toBe("from the host\n");
  });

  test("run sets the hostname", async () => {
    const r = await runOnce(as, ["hostname"], { config: (s) => (s.hostname = "box-1") });
    expect(r.stdout).toBe("box-1\n");
  });

  test("run applies rlimits", async () => {
    const r = await runOnce(as, ["sh", "-c", "ulimit -n"], {
      config: (s) => (s.process.rlimits = [{ type: "RLIMIT_NOFILE", soft: 123, hard: 123 }]),
    });
    expect(r.stdout).toBe("123\n");
  });

  test("run sets no_new_privs when noNewPrivileges is true", async () => {
    const r = await runOnce(as, ["report", "caps"]);
    expect(r.stdout).toContain("NoNewPrivs:\t1\n");
  });

  test("run gives the program exactly the configured capabilities", async () => {
    const r = await runOnce(as, ["report", "caps"], {
      config: (s) => {
        const only = ["CAP_KILL"];
        s.process.capabilities = { bounding: only, effective: only, permitted: only };
      },
    });
    expect(r.stdout).toContain("CapEff:\t0000000000000020\n");
  });

  test("run passes no fd of its own to the container", async () => {
    const r = await runOnce(as, ["report", "fds"]);
    expect(r.stdout.trim().split("\n").map((l) => l.split(" ")[0])).toEqual(["0", "1", "2"]);
  });

  test("run passes the fds that --preserve-fds counts, and no other", async () => {
    const bundle = await busybox(as, ["report", "fds"]);
    const extra = hostFile(scratchDir(as, "fd"), "extra", as, "fd 3\n");
    // The shell opens fd 3 and becomes tinyc, which inherits it.
    const cmd = ["sh", "-c", 'exec 3<"$0" && exec "$@"', extra, TINYC, "run"];
    const r = await runCommand([...cmd, "--preserve-fds", "1", bundle.dir], {
      as,
      timeoutMs: 20_000,
    });
    bundle.cleanup();
    const fds = r.stdout.trim().split("\n").map((l) => l.split(" ")[0]);
    expect(fds).toEqual(["0", "1", "2", "3"]);
  });

  test("run does not pass the caller's umask to the container", async () => {
    const bundle = await busybox(as, ["report", "umask"]);
    const r = await runWithUmask(as, "077", ["run", bundle.dir]);
    bundle.cleanup();
    expect(r.stdout).toBe("0022\n");
  });

  test("run makes files of mode 0644 in the container whatever the caller's umask", async () => {
    const bundle = await busybox(as, ["sh", "-c", "touch /tmp/f && stat -c %a /tmp/f"], {
      config: (s) => (s.root.readonly = false),
    });
    const r = await runWithUmask(as, "077", ["run", bundle.dir]);
    bundle.cleanup();
    expect(r.stdout).toBe("644\n");
  });

  test("run applies the umask of process.user", async () => {
    const r = await runOnce(as, ["report", "umask"], {
      config: (s) => (s.process.user.umask = 0o027),
    });
    expect(r.stdout).toBe("0027\n");
  });

  test("run gives the program exactly the configured env", async () => {
    const r = await runOnce(as, ["env"], {
      config: (s) => (s.process.env = ["FOO=bar", "HOME=/root"]),
    });
    expect(r.stdout).toBe("FOO=bar\nHOME=/root\n");
  });

  test("run finds the program in the default PATH when env has none", async () => {
    const r = await runOnce(as, ["report", "pid"], { config: (s) => (s.process.env = ["A=1"]) });
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "pid=1 ppid=0\n" });
  });

  test("run starts an absolute program path without looking in PATH", async () => {
    const r = await runOnce(as, ["/bin/report", "pid"], {
      config: (s) => (s.process.env = ["PATH=/nowhere"]),
    });
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "pid=1 ppid=0\n" });
  });

  test("run looks the program up in the container's PATH, not the caller's", async () => {
    const bundle = await busybox(as, ["x"], {
      config: (s) => (s.process.env = ["PATH=/opt/bin:/bin"]),
    });
    putFile(bundle, as, "opt/bin/x", "#!/bin/sh\necho from the container\n", 0o755);
    // The caller's PATH has an x of its own, first.
    const hostBin = scratchDir(as, "hostbin");
    hostFile(hostBin, "x", as, "#!/bin/sh\necho from the host\n", 0o755);
    const r = await runBundle(as, bundle, { env: { PATH: `${hostBin}:/usr/bin:/bin` } });
    bundle.cleanup();
    expect(r.stdout).toBe("from the container\n");
  });

  test("run starts the program in process.cwd", async () => {
    const r = await runOnce(as, ["report", "cwd"], { config: (s) => (s.process.cwd = "/etc") });
    expect(r.stdout).toBe("/etc\n");
  });

  test("run creates a missing cwd with mode 0755 whatever the caller's umask", async () => {
    const bundle = await busybox(as, ["report", "cwd"], {
      config: (s) => {
        s.root.readonly = false;
        s.process.cwd = "/work/deep/er";
      },
    });
    const r = await runWithUmask(as, "077", ["run", bundle.dir]);
    const modes = ["work", "work/deep", "work/deep/er"].map((p) => {
      const st = fs.statSync(path.join(bundle.rootfs, p), { throwIfNoEntry: false });
      return st ? (st.mode & 0o7777).toString(8) : "missing";
    });
    bundle.cleanup();
    expect({ out: r.stdout, modes }).toEqual({
      out: "/work/deep/er\n",
      modes: ["755", "755", "755"],
    });
  });

  test("run creates a missing cwd in a read-only rootfs", async () => {
    // As runc does: the folder is made before the rootfs becomes read-only.
    const r = await runOnce(as, ["report", "cwd"], { config: (s) => (s.process.cwd = "/work") });
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "/work\n" });
  });

  test("run makes a tmpfs with the mode of its options", async () => {
    const r = await runOnce(as, ["stat", "-c", "%a", "/scratch"], { config: addScratchTmpfs });
    expect(r.stdout).toBe("1777\n");
  });

  test("run makes a tmpfs with the size of its options", async () => {
    const dd = ["dd", "if=/dev/zero", "of=/scratch/big", "bs=1024", "count=2048"];
    const r = await runOnce(as, dd, { config: addScratchTmpfs });
    expect(r.stderr).toContain("No space left on device");
  });

  test("run makes a noexec tmpfs where nothing can be executed", async () => {
    const script = "cp /bin/hello /scratch/hello && /scratch/hello";
    const bundle = await busybox(as, ["sh", "-c", script], { config: addScratchTmpfs });
    putFile(bundle, as, "bin/hello", "#!/bin/sh\necho hello\n", 0o755);
    const r = await runBundle(as, bundle);
    bundle.cleanup();
    expect({ code: r.code, denied: /permission denied/i.test(r.stderr), out: r.stdout }).toEqual({
      code: 126,
      denied: true,
      out: "",
    });
  });

  test("run gives the container a /dev/null that reads empty", async () => {
    const r = await runOnce(as, ["sh", "-c", "echo x > /dev/null && wc -c < /dev/null"]);
    expect(r.stdout.trim()).toBe("0");
  });

  test("run gives the container a /dev/zero of zero bytes", async () => {
    const r = await runOnce(as, ["sh", "-c", "head -c 1000 /dev/zero | tr -d '\\000' | wc -c"]);
    expect({ code: r.code, nonZero: r.stdout.trim() }).toEqual({ code: 0, nonZero: "0" });
  });

  test("run gives the container a readable /dev/urandom", async () => {
    const r = await runOnce(as, ["sh", "-c", "head -c 32 /dev/urandom | wc -c"]);
    expect(r.stdout.trim()).toBe("32");
  });

  test("run gives the container /dev/tty as a character device", async () => {
    const r = await runOnce(as, ["sh", "-c", "test -c /dev/tty && echo char"]);
    expect(r.stdout).toBe("char\n");
  });

  test("run gives the container a /dev/fd that lists its fds", async () => {
    const r = await runOnce(as, ["ls", "/dev/fd/"]);
    expect(r.stdout.split("\n")).toEqual(expect.arrayContaining(["0", "1", "2"]));
  });

  test("run gives the container a readable /dev/stdin", async () => {
    const r = await runOnce(as, ["cat", "/dev/stdin"], { input: "through /dev/stdin\n" });
    expect(r.stdout).toBe("through /dev/stdin\n");
  });

  test("run writes the container's pid to --pid-file", async () => {
    const bundle = await busybox(as, ["sleep", "100"]);
    const pidFile = path.join(scratchDir(as, "pid"), "pid");
    const proc = spawnTinyc(["run", "--pid-file", pidFile, bundle.dir], { as });
    const pid = await waitForPid(pidFile);
    try {
      // The host's view of the container's first process: the sleep.
      const cmdline = pid ? fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") : "";
      expect(cmdline).toBe("sleep\u0000100\u0000");
    } finally {
      await endContainer(pidFile, ["sleep", "100"]);
      await Promise.race([proc.exited, Bun.sleep(3000)]);
      proc.kill("SIGKILL");
      bundle.cleanup();
    }
  });

  test("run records the container in the state folder while it runs", async () => {
    const bundle = await busybox(as, ["sleep", "100"]);
    const root = scratchDir(as, "state");
    const pidFile = path.join(scratchDir(as, "pid"), "pid");
    const args = ["--root", root, "run", "--pid-file", pidFile, "--bundle", bundle.dir, "c1"];
    const proc = spawnTinyc(args, { as });
    const pid = await waitForPid(pidFile);
    try {
      const state = JSON.parse(fs.readFileSync(path.join(root, "c1", "state.json"), "utf8"));
      expect({ id: state.id, status: state.status, pid: state.pid }).toEqual({
        id: "c1",
        status: "running",
        pid,
      });
    } finally {
      await endContainer(pidFile, ["sleep", "100"]);
      await Promise.race([proc.exited, Bun.sleep(3000)]);
      proc.kill("SIGKILL");
      bundle.cleanup();
    }
  });

  test("run removes the container's state when it ends", async () => {
    const bundle = await busybox(as, ["true"]);
    const root = scratchDir(as, "state");
    const r = await run(["--root", root, "run", "--bundle", bundle.dir, "gone"], { as });
    bundle.cleanup();
    expect({ code: r.code, left: fs.readdirSync(root) }).toEqual({ code: 0, left: [] });
  });

  test("run --keep keeps the state of the ended container as stopped", async () => {
    const bundle = await busybox(as, ["true"]);
    const root = scratchDir(as, "state");
    const r = await run(["--root", root, "run", "--keep", "--bundle", bundle.dir, "kept"], { as });
    bundle.cleanup();
    const file = path.join(root, "kept", "state.json");
    const status = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")).status : "none";
    // delete removes what was kept, its cgroup included.
    const del = await run(["--root", root, "delete", "kept"], { as });
    expect({ code: r.code, status, deleted: del.code, left: fs.existsSync(file) }).toEqual({
      code: 0,
      status: "stopped",
      deleted: 0,
      left: false,
    });
  });

  test("run --plan prints the steps, pivot_root and exec among them", async () => {
    const r = await runOnce(as, ["true"], { flags: ["--plan"] });
    const pivot = r.stdout.split("\n").findIndex((l) => /^\s*\d+\. pivot_root/.test(l));
    const exec = r.stdout.split("\n").findIndex((l) => /^\s*\d+\. exec /.test(l));
    expect({ code: r.code, pivot: pivot > 0, execAfter: exec > pivot }).toEqual({
      code: 0,
      pivot: true,
      execAfter: true,
    });
  });

  test("run --plan starts nothing", async () => {
    const bundle = await busybox(as, ["touch", "/started"], {
      config: (s) => (s.root.readonly = false),
    });
    const root = scratchDir(as, "state");
    const r = await run(["--root", root, "run", "--plan", bundle.dir], { as });
    const started = fs.existsSync(path.join(bundle.rootfs, "started"));
    bundle.cleanup();
    const state = fs.existsSync(root) ? fs.readdirSync(root) : [];
    expect({ code: r.code, started, state }).toEqual({ code: 0, started: false, state: [] });
  });

  test("run --no-pivot runs the container in its rootfs", async () => {
    const bundle = await busybox(as, ["cat", "/etc/marker"]);
    putFile(bundle, as, "etc/marker", "inside\n");
    const r = await runBundle(as, bundle, { flags: ["--no-pivot"] });
    bundle.cleanup();
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "inside\n" });
  });
}

function addScratchTmpfs(s: Spec): void {
  s.mounts.push({
    destination: "/scratch",
    type: "tmpfs",
    source: "tmpfs",
    options: ["nosuid", "nodev", "noexec", "mode=1777", "size=1m"],
  });
}

describe.skipIf(!!noRootless)("rootless", () => {
  commonTests("rootless");

  test("run maps container ids into the user's subordinate range", async () => {
    // uid 1000 and gids 5 and 10 exist only through the range of /etc/subuid and /etc/subgid.
    const r = await runOnce("rootless", ["report", "ids"], {
      config: (s) => (s.process.user = { uid: 1000, gid: 1000, additionalGids: [5, 10] }),
    });
    expect(r.stdout).toBe("uid=1000 euid=1000 gid=1000 egid=1000 groups=5,10\n");
  });

  test("run makes container root the user who runs tinyc", async () => {
    const user = rootless()!;
    const bundle = await busybox("rootless", ["touch", "/made-by-root"], {
      config: (s) => (s.root.readonly = false),
    });
    await runBundle("rootless", bundle);
    const st = fs.statSync(path.join(bundle.rootfs, "made-by-root"), { throwIfNoEntry: false });
    bundle.cleanup();
    expect(st && { uid: st.uid, gid: st.gid }).toEqual({ uid: user.uid, gid: user.gid });
  });

  test("run runs a bundle that `spec --rootless` wrote, once terminal is false", async () => {
    const bundle = await busybox("rootless", ["true"]);
    fs.rmSync(path.join(bundle.dir, "config.json"));
    const spec = await run(["spec", "--rootless"], { as: "rootless", cwd: bundle.dir });
    editConfig(bundle, (s) => {
      s.process.terminal = false;
      s.process.args = ["sh", "-c", "echo hello from spec; report ids"];
    });
    const r = await runBundle("rootless", bundle);
    bundle.cleanup();
    expect({ spec: spec.code, code: r.code, out: r.stdout }).toEqual({
      spec: 0,
      code: 0,
      out: "hello from spec\nuid=0 euid=0 gid=0 egid=0 groups=\n",
    });
  });

  describe("after 100 runs in a row", () => {
    const user = rootless();
    let codes: (number | null)[] = [];
    let stateRoot = "";
    let mountsBefore: string[] = [];
    let mountsAfter: string[] = [];
    let procsBefore = new Set<number>();
    let procsAfter = new Set<number>();

    beforeAll(async () => {
      const range = subuidRange(user!.user, user!.uid);
      const bundle = await busybox("rootless", ["sh", "-c", "sleep 0 & true"]);
      stateRoot = scratchDir("rootless", "state");
      mountsBefore = hostMounts();
      procsBefore = processesOf(user!.uid, range.start, range.count);
      for (let i = 0; i < 100; i++) {
        const r = await run(["--root", stateRoot, "run", bundle.dir], { as: "rootless" });
        codes.push(r.code);
      }
      mountsAfter = hostMounts();
      procsAfter = processesOf(user!.uid, range.start, range.count);
      bundle.cleanup();
    }, 60_000);

    test("run succeeds each time", () => {
      expect(codes.filter((c) => c !== 0)).toEqual([]);
    });

    test("run leaves the state folder empty", () => {
      expect(fs.readdirSync(stateRoot)).toEqual([]);
    });

    test("run leaves no process of the user behind", () => {
      expect([...procsAfter].filter((p) => !procsBefore.has(p))).toEqual([]);
    });

    test("run adds no mount to the host", () => {
      expect(mountsAfter).toEqual(mountsBefore);
    });
  });
});

describe.skipIf(!!noRoot)("as root", () => {
  commonTests("root");

  test("run sets the uid, gid and groups of process.user on the host", async () => {
    const r = await runOnce("root", ["report", "ids"], {
      config: (s) => (s.process.user = { uid: 1000, gid: 1000, additionalGids: [5, 10] }),
    });
    expect(r.stdout).toBe("uid=1000 euid=1000 gid=1000 egid=1000 groups=5,10\n");
  });

  test("run maps the ids that linux.uidMappings and gidMappings give", async () => {
    const bundle = await busybox("root", ["sh", "-c", "touch /mapped; report ids"], {
      config: (s) => {
        s.root.readonly = false;
        s.linux.namespaces.push({ type: "user" });
        s.linux.uidMappings = [{ containerID: 0, hostID: 4000, size: 10 }];
        s.linux.gidMappings = [{ containerID: 0, hostID: 4000, size: 10 }];
        s.process.user = { uid: 3, gid: 3 };
      },
    });
    // Host root owns the rootfs and is unmapped inside: uid 3 may write only to an open folder.
    fs.chmodSync(bundle.rootfs, 0o777);
    const r = await runBundle("root", bundle);
    const st = fs.statSync(path.join(bundle.rootfs, "mapped"), { throwIfNoEntry: false });
    bundle.cleanup();
    expect({ out: r.stdout, owner: st && `${st.uid}:${st.gid}` }).toEqual({
      out: "uid=3 euid=3 gid=3 egid=3 groups=\n",
      owner: "4003:4003",
    });
  });
});

describe.skipIf(!!(noTinyc ?? noDebian ?? (noRootless && noRoot)))("debian", () => {
  // One copy of the debian rootfs serves every test: it is large. The user's range maps the
  // container's ids, so files that root owns inside are the user's on the host. As root, the
  // same mappings are given in config.json.
  let bundle: Bundle;

  beforeAll(async () => {
    bundle = await makeBundle({ rootfs: "debian", owner: noRootless ? "root" : "rootless" });
  }, 60_000);
  afterAll(() => bundle?.cleanup());

  function debian(as: As, args: string[], change?: (s: Spec) => void) {
    editConfig(bundle, (s) => {
      s.process.args = args;
      s.process.user = { uid: 0, gid: 0 };
      delete s.linux.uidMappings;
      delete s.linux.gidMappings;
      if (as === "root") {
        const user = rootless()!;
        const range = subuidRange(user.user, user.uid);
        const maps = (own: number) => [
          { containerID: 0, hostID: own, size: 1 },
          { containerID: 1, hostID: range.start, size: range.count },
        ];
        s.linux.uidMappings = maps(user.uid);
        s.linux.gidMappings = maps(user.gid);
      }
      change?.(s);
    });
    return runBundle(as, bundle);
  }

  const both: As[] = [
    ...(noRootless ? [] : (["rootless"] as As[])),
    ...(noRoot || noRootless ? [] : (["root"] as As[])),
  ];
  for (const as of both) {
    test(`run shows debian's /etc/debian_version (${as})`, async () => {
      const want = fs.readFileSync(path.join(bundle.rootfs, "etc/debian_version"), "utf8");
      const r = await debian(as, ["cat", "/etc/debian_version"]);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: want });
    });

    test(`run starts debian's apt (${as})`, async () => {
      const r = await debian(as, ["apt", "--version"]);
      expect({ code: r.code, apt: /^apt \d/.test(r.stdout) }).toEqual({ code: 0, apt: true });
    });

    test(`run is root with debian's names for it (${as})`, async () => {
      const r = await debian(as, ["id"]);
      expect(r.stdout).toBe("uid=0(root) gid=0(root) groups=0(root)\n");
    });

    test(`run shows debian's files as owned by root (${as})`, async () => {
      const r = await debian(as, ["stat", "-c", "%U:%G %a", "/etc/passwd"]);
      expect(r.stdout).toBe("root:root 644\n");
    });

    test(`run runs as debian's nobody through the subordinate range (${as})`, async () => {
      const r = await debian(as, ["id"], (s) => (s.process.user = { uid: 65534, gid: 65534 }));
      expect(r.stdout).toBe("uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n");
    });
  }

  test.skipIf(!!noRootless)("run runs debian's dash with a script from stdin", async () => {
    editConfig(bundle, (s) => {
      s.process.args = ["sh", "-s"];
      s.process.user = { uid: 0, gid: 0 };
      delete s.linux.uidMappings;
      delete s.linux.gidMappings;
    });
    const r = await runBundle("rootless", bundle, {
      input: 'readlink -f /bin/sh; test -w / || echo read-only\n',
    });
    expect(r.stdout).toBe("/usr/bin/dash\nread-only\n");
  });
});
