// Device rules on cgroup v2 are an eBPF program attached to the container's cgroup. This host
// has cgroup v1 controllers with a v2 tree beside them; the tests run tinyc in a private mount
// namespace whose /sys/fs/cgroup is that v2 tree, so tinyc takes the v2 path, as root.

import { describe, expect, test } from "bun:test";
import {
  IS_ROOT,
  TINYC,
  ensureTinyc,
  fixtureSkipReason,
  rootSkipReason,
  tinycSkipReason,
} from "./harness";
import { busybox } from "./runkit";

const skip = rootSkipReason() ?? tinycSkipReason() ?? fixtureSkipReason("busybox");

/** Runs `tinyc run BUNDLE` where /sys/fs/cgroup is a cgroup2 mount. */
function runOnV2(bundle: string): { code: number; out: string } {
  ensureTinyc();
  const script =
    'mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$0" run "$1"';
  const r = Bun.spawnSync(["unshare", "-m", "sh", "-c", script, TINYC, bundle], {
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

const mknodCaps = {
  bounding: ["CAP_MKNOD", "CAP_DAC_OVERRIDE"],
  effective: ["CAP_MKNOD", "CAP_DAC_OVERRIDE"],
  permitted: ["CAP_MKNOD", "CAP_DAC_OVERRIDE"],
};

describe.skipIf(!IS_ROOT || skip !== null)("device rules on cgroup v2", () => {
  test("run denies a device the rules do not allow, and allows the standard ones", async () => {
    const script =
      "mknod /tmp/port c 1 4 && echo made-port; mknod /tmp/null c 1 3 && echo made-null; " +
      "head -c 1 /dev/zero | wc -c";
    const bundle = await busybox("root", ["sh", "-c", script], {
      config: (spec) => {
        spec.root.readonly = false;
        spec.process.capabilities = mknodCaps;
        spec.linux.resources = { devices: [{ allow: false, access: "rwm" }] };
      },
    });
    try {
      const r = runOnV2(bundle.dir);
      expect({
        code: r.code,
        port: r.out.includes("made-port"),
        null: r.out.includes("made-null"),
        zero: /^1$/m.test(r.out),
      }).toEqual({ code: 0, port: false, null: true, zero: true });
    } finally {
      bundle.cleanup();
    }
  });

  test("run lets the last matching rule decide", async () => {
    const bundle = await busybox("root", ["sh", "-c", "mknod /tmp/port c 1 4 && echo made"], {
      config: (spec) => {
        spec.root.readonly = false;
        spec.process.capabilities = mknodCaps;
        spec.linux.resources = {
          devices: [
            { allow: false, access: "rwm" },
            { allow: true, type: "c", major: 1, minor: 4, access: "m" },
          ],
        };
      },
    });
    try {
      const r = runOnV2(bundle.dir);
      expect({ code: r.code, made: r.out.includes("made") }).toEqual({ code: 0, made: true });
    } finally {
      bundle.cleanup();
    }
  });
});
