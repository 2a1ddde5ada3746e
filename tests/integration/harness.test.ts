// The integration harness itself; none of these needs dist/tinyc.
import { afterAll, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  cleanup,
  fixtureSkipReason,
  makeBundle,
  requireUserns,
  rootless,
  rootlessSkipReason,
  runCommand,
  runtimeDir,
} from "./harness";

afterAll(cleanup);

const noRootless = rootlessSkipReason();
if (noRootless) console.warn(`skipping rootless harness tests: ${noRootless}`);

test.skipIf(!!noRootless)("the rootless user's XDG_RUNTIME_DIR is private to them", () => {
  const user = rootless()!;
  const st = fs.statSync(runtimeDir("rootless"));
  expect(st.mode & 0o777).toBe(0o700);
  expect(st.uid).toBe(user.uid);
  expect(st.gid).toBe(user.gid);
});

test.skipIf(!!noRootless)("commands run as the rootless user with the harness's env", async () => {
  const user = rootless()!;
  const r = await runCommand(["sh", "-c", 'id -u; id -g; id -G; echo "$XDG_RUNTIME_DIR"; cat'], {
    as: "rootless",
    input: "from stdin\n",
  });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const [uid, gid, groups, xdg, echoed] = r.stdout.trimEnd().split("\n");
  expect([uid, gid, groups]).toEqual([String(user.uid), String(user.gid), String(user.gid)]);
  expect(xdg).toBe(runtimeDir("rootless"));
  expect(echoed).toBe("from stdin");
});

test("a command that outlives its time is killed", async () => {
  const as = rootless() ? "rootless" : "root";
  const r = await runCommand(["sleep", "30"], { as, timeoutMs: 200 });
  expect(r.timedOut).toBe(true);
  expect(r.signal).toBe("SIGKILL");
});

const noBundle = noRootless ?? fixtureSkipReason("busybox");

test.skipIf(!!noBundle)("makeBundle gives the rootless user a busybox bundle", async () => {
  const user = rootless()!;
  const bundle = await makeBundle({
    rootfs: "busybox",
    owner: "rootless",
    args: ["report", "ids"],
    config: (spec) => {
      spec.hostname = "bundled";
    },
  });
  for (const p of [bundle.dir, bundle.rootfs, path.join(bundle.rootfs, "bin/busybox")]) {
    expect(fs.lstatSync(p).uid).toBe(user.uid);
  }
  expect(fs.statSync(bundle.dir).mode & 0o777).toBe(0o755);
  const spec = JSON.parse(fs.readFileSync(path.join(bundle.dir, "config.json"), "utf8"));
  expect(spec.process.args).toEqual(["report", "ids"]);
  expect(spec.hostname).toBe("bundled");
  // The user can reach and run what is in it (the bundle is under the shared temp folder).
  const r = await runCommand([path.join(bundle.rootfs, "bin/report"), "ids"], { as: "rootless" });
  expect(r.stdout).toStartWith(`uid=${user.uid} euid=${user.uid} gid=${user.gid}`);
  bundle.cleanup();
  expect(fs.existsSync(bundle.dir)).toBe(false);
});

const noUserns = noRootless ?? requireUserns();

test.skipIf(!!noUserns)("the rootless user can make a user namespace", async () => {
  const r = await runCommand(["unshare", "--map-root-user", "id", "-u"], { as: "rootless" });
  expect(r.stdout).toBe("0\n");
});
