// tinyc against hosts that make life hard: a noexec /tmp (the embedded C library must still
// load), and a kernel that refuses user namespaces (the error must name the setting).

import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  IS_ROOT,
  REPO,
  TINYC,
  TINYC_DIST,
  cleanup,
  ensureTinyc,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  runCommand,
  tinycSkipReason,
} from "./harness";
import { busybox, expectTinycError } from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");

describe.skipIf((noTinyc ?? rootSkipReason()) !== null)("a noexec /tmp", () => {
  test("run loads its C library and runs a container with /tmp mounted noexec", () => {
    // The executable and the bundle live outside /tmp (the checkout may be under it), which
    // the private mount namespace covers with a noexec tmpfs.
    const dir = fs.mkdtempSync("/var/tmp/tinyc-noexec-");
    try {
      const bin = path.join(dir, "tinyc");
      fs.copyFileSync(TINYC_DIST, bin);
      fs.chmodSync(bin, 0o755);
      fs.cpSync(path.join(REPO, ".cache/fixtures/busybox"), path.join(dir, "rootfs"), {
        recursive: true,
        verbatimSymlinks: true,
      });
      const spec = JSON.parse(fs.readFileSync(path.join(REPO, "examples/hello/config.json"), "utf8"));
      spec.process.args = ["sh", "-c", "echo ran"];
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(spec));
      const script = 'mount -t tmpfs -o noexec tmpfs /tmp && exec "$0" run "$1"';
      const r = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
        bin, dir], { stdout: "pipe", stderr: "pipe" });
      expect({ code: r.exitCode, out: r.stdout.toString().trim(), err: r.stderr.toString() })
        .toEqual({ code: 0, out: "ran", err: "" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const noUserns = noTinyc ?? requireUserns();

describe.skipIf(noUserns !== null)("a kernel that refuses user namespaces", () => {
  test("run names user.max_user_namespaces when it is 0", async () => {
    // Inside a user namespace of its own the test user may set the limit for what it makes;
    // tinyc runs there as that namespace's root and asks for a user namespace by config.
    const bundle = await busybox("rootless", ["true"], {
      config: (spec) => {
        if (!spec.linux.namespaces.some((n: { type: string }) => n.type === "user")) {
          spec.linux.namespaces.push({ type: "user" });
        }
        spec.linux.uidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
        spec.linux.gidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
      },
    });
    try {
      ensureTinyc();
      const script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" run "$1"';
      const r = await runCommand(["unshare", "-U", "-r", "sh", "-c", script, TINYC, bundle.dir], {
        as: "rootless",
      });
      expectTinycError(r, 125, "user namespace", "user.max_user_namespaces");
    } finally {
      bundle.cleanup();
    }
  });
});
