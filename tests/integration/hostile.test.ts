// `tinyc run` with bundles made to break out: symlinks and ".." in the rootfs and in mount
// destinations, a cwd through /proc's magic links, a /proc that is not procfs, and a container
// that reaches for the tinyc executable. Whatever the bundle says, nothing outside the rootfs
// may change, as the user or as root.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  type Bundle,
  type Spec,
  TINYC,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  runCommand,
  scratchDir,
  spawnAs,
  tinycSkipReason,
} from "./harness";
import {
  OutputReader,
  busybox,
  expectTinycError,
  hostFile,
  ownerIds,
  runBundle,
  sha256File,
  withoutNamespace,
} from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
if (noRootless) console.warn(`skipping rootless hostile-bundle tests: ${noRootless}`);
if (noRoot) console.warn(`skipping root hostile-bundle tests: ${noRoot}`);

const modes: [As, string | null][] = [
  ["rootless", noRootless],
  ["root", noRoot],
];

/** A symlink in a bundle's rootfs, owned like the rest of it. */
function link(bundle: Bundle, as: As, at: string, target: string): void {
  const file = path.join(bundle.rootfs, at);
  fs.rmSync(file, { recursive: true, force: true });
  fs.symlinkSync(target, file);
  const { uid, gid } = ownerIds(as);
  fs.lchownSync(file, uid, gid);
}

/** A host folder the container must not reach; owned by the user, so only tinyc stops it. */
function hostDir(as: As): string {
  return scratchDir(as, "host-target");
}

// Enough ".." to climb from any rootfs on the host to "/"; more of them stay at "/".
const UP = "../".repeat(24);

for (const [as, skip] of modes) {
  describe.skipIf(!!skip)(as, () => {
    for (const kind of ["absolute", "relative"] as const) {
      const which = kind === "absolute" ? "an absolute" : "a relative";
      describe(`a mount destination through ${which} symlink to a host folder`, () => {
        let host = "";
        let bundle: Bundle;
        let code: number | null = null;

        beforeAll(async () => {
          host = hostDir(as);
          bundle = await busybox(as, ["true"], {
            config: (s) =>
              s.mounts.push({ destination: "/escape/sub", type: "tmpfs", source: "tmpfs" }),
          });
          link(bundle, as, "escape", kind === "absolute" ? host : UP + host.slice(1));
          code = (await runBundle(as, bundle)).code;
        });
        afterAll(() => bundle?.cleanup());

        test("run creates nothing in the host folder", () => {
          expect(fs.readdirSync(host)).toEqual([]);
        });

        test("run creates the destination inside the rootfs instead", () => {
          // In the rootfs the symlink leads to the same path under the rootfs, as runc has it.
          const inside = fs.statSync(path.join(bundle.rootfs, host, "sub"), {
            throwIfNoEntry: false,
          });
          expect({ code, dir: inside?.isDirectory() ?? false }).toEqual({ code: 0, dir: true });
        });
      });
    }

    describe('a mount destination with ".." that climbs out of the rootfs', () => {
      let host = "";
      let bundle: Bundle;
      let code: number | null = null;

      beforeAll(async () => {
        host = hostDir(as);
        const destination = "/" + UP + host.slice(1) + "/dotdot";
        bundle = await busybox(as, ["true"], {
          config: (s) => s.mounts.push({ destination, type: "tmpfs", source: "tmpfs" }),
        });
        code = (await runBundle(as, bundle)).code;
      });
      afterAll(() => bundle?.cleanup());

      test("run creates nothing in the host folder", () => {
        expect(fs.readdirSync(host)).toEqual([]);
      });

      test('run keeps ".." at the root of the rootfs', () => {
        const inside = fs.statSync(path.join(bundle.rootfs, host, "dotdot"), {
          throwIfNoEntry: false,
        });
        expect({ code, dir: inside?.isDirectory() ?? false }).toEqual({ code: 0, dir: true });
      });
    });

    // What a cwd outside the rootfs would show: the caller's folder (a marker file in it), the
    // bundle folder (config.json), the state folder (state.json), or a getcwd that fails.
    const ESCAPED = /HOST-MARKER|config\.json|state\.json|unreachable|getcwd/;

    const magicLinks = [
      "/proc/self/cwd",
      "/proc/self/fd/3",
      "/proc/self/fd/4",
      "/proc/self/root",
      "/proc/1/cwd",
    ];
    for (const cwd of magicLinks) {
      test(`run never starts the program outside the rootfs with cwd ${cwd}`, async () => {
        const callerDir = scratchDir(as, "caller");
        hostFile(callerDir, "HOST-MARKER", as, "");
        const bundle = await busybox(as, ["sh", "-c", "report cwd; ls -a"], {
          config: (s) => (s.process.cwd = cwd),
        });
        const r = await runBundle(as, bundle, { cwd: callerDir });
        bundle.cleanup();
        expect({ escaped: ESCAPED.test(r.stdout + r.stderr), out: r.stdout }).toEqual({
          escaped: false,
          out: expect.any(String),
        });
      });
    }

    test("run never starts the program in a host folder passed as fd 3", async () => {
      // The caller hands over an open host folder on purpose; cwd must still not leave the root.
      const callerDir = scratchDir(as, "caller");
      hostFile(callerDir, "HOST-MARKER", as, "");
      const bundle = await busybox(as, ["sh", "-c", "report cwd; ls -a"], {
        config: (s) => (s.process.cwd = "/proc/self/fd/3"),
      });
      const cmd = ["sh", "-c", 'exec 3<"$0" && exec "$@"', callerDir, TINYC, "run"];
      const r = await runCommand([...cmd, "--preserve-fds", "1", bundle.dir], {
        as,
        timeoutMs: 20_000,
      });
      bundle.cleanup();
      expect(ESCAPED.test(r.stdout + r.stderr)).toBe(false);
    });

    test("run refuses to mount proc on a /proc that is a symlink", async () => {
      const bundle = await busybox(as, ["true"]);
      link(bundle, as, "proc", "/tmp");
      const r = await runBundle(as, bundle);
      bundle.cleanup();
      expectTinycError(r, 125, "proc", "/proc");
    });

    test("run refuses a sysctl when /proc/sys is a tmpfs", async () => {
      const r = await runBundleWith(as, ["true"], (s) => {
        s.mounts.push({ destination: "/proc/sys", type: "tmpfs", source: "tmpfs" });
        s.linux.sysctl = { "kernel.shmmax": "65536" };
      });
      expectTinycError(r, 125, "kernel.shmmax");
    });

    describe("a sysctl whose /proc/sys file is a host file bound over a tmpfs", () => {
      let file = "";
      let stderr = "";
      let code: number | null = null;

      beforeAll(async () => {
        file = hostFile(scratchDir(as, "fake-sysctl"), "shmmax", as, "untouched\n");
        const r = await runBundleWith(as, ["true"], (s) => {
          s.mounts.push({ destination: "/proc/sys", type: "tmpfs", source: "tmpfs" });
          s.mounts.push({
            destination: "/proc/sys/kernel/shmmax",
            type: "bind",
            source: file,
            options: ["bind"],
          });
          s.linux.sysctl = { "kernel.shmmax": "65536" };
        });
        stderr = r.stderr;
        code = r.code;
      });

      test("run refuses the sysctl as not on procfs", () => {
        expect({ code, refused: /kernel\.shmmax.*not on procfs/.test(stderr) }).toEqual({
          code: 125,
          refused: true,
        });
      });

      test("run leaves the host file unchanged", () => {
        expect(fs.readFileSync(file, "utf8")).toBe("untouched\n");
      });
    });

    describe("a container without a pid namespace that reaches for tinyc's executable", () => {
      // A copy of tinyc that the user of the test owns: only tinyc's own protection (it is not
      // dumpable, so /proc/PID/exe cannot be opened) keeps the container from writing to it.
      let copy = "";
      let before = "";
      let tinycPid = 0;
      let out = "";
      let bundle: Bundle;

      beforeAll(async () => {
        const dir = scratchDir(as, "exe");
        copy = path.join(dir, "tinyc");
        fs.copyFileSync(TINYC, copy);
        fs.chmodSync(copy, 0o755);
        const { uid, gid } = ownerIds(as);
        fs.chownSync(copy, uid, gid);
        before = sha256File(copy);
        // Without a pid namespace, $PPID is tinyc's host pid. The last attempt keeps an fd
        // open and writes through it after tinyc has exited, when the file is no longer busy.
        const script = [
          'echo "ppid=$PPID"',
          "t=/proc/$PPID/exe",
          "if echo x >> $t; then echo appended; fi",
          "if cat $t > /dev/null; then echo opened; fi",
          "(exec 3<$t && echo opened-for-later && sleep 1 && echo x >> /proc/self/fd/3) &",
          "sleep 0.2",
        ].join("\n");
        bundle = await busybox(as, ["sh", "-c", script], {
          config: (s) => withoutNamespace(s, "pid"),
        });
        const proc = spawnAs([copy, "run", bundle.dir], { as });
        tinycPid = proc.pid;
        const reader = new OutputReader(proc.stdout);
        await Promise.race([proc.exited, Bun.sleep(10_000)]);
        // The background writer sleeps 1 s after tinyc is gone.
        await Bun.sleep(1500);
        out = reader.text;
      }, 20_000);
      afterAll(() => bundle?.cleanup());

      test("run is the parent of the container's first process", () => {
        expect(out.split("\n")[0]).toBe(`ppid=${tinycPid}`);
      });

      test("run keeps the container from opening /proc/PID/exe of tinyc", () => {
        // The script ran (its first line) and none of its attempts printed success.
        expect(out.trimEnd().split("\n")).toEqual([`ppid=${tinycPid}`]);
      });

      test("run leaves the tinyc executable unchanged", () => {
        expect(sha256File(copy)).toBe(before);
      });
    });
  });
}

async function runBundleWith(as: As, args: string[], change: (s: Spec) => void) {
  const bundle = await busybox(as, args, { config: change });
  try {
    return await runBundle(as, bundle);
  } finally {
    bundle.cleanup();
  }
}
