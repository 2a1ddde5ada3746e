// linux.devices: made with mknod as root, bound from the host without root (where mknod is
// refused), and the refusal when the host has no such node to bind.

import { afterAll, describe, expect, test } from "bun:test";
import {
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  tinycSkipReason,
} from "./harness";
import { expectTinycError, runOnce } from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");

describe.skipIf((noTinyc ?? rootSkipReason()) !== null)("as root", () => {
  test("run makes a config's device with its type, numbers, mode and owner", async () => {
    const r = await runOnce("root", ["sh", "-c", "stat -c '%F %t:%T %a %u:%g' /dev/mydev"], {
      config: (spec) => {
        spec.linux.devices = [
          { path: "/dev/mydev", type: "c", major: 1, minor: 3, fileMode: 0o640, uid: 5, gid: 6 },
        ];
      },
    });
    expect({ code: r.code, out: r.stdout.trim() }).toEqual({
      code: 0,
      out: "character special file 1:3 640 5:6",
    });
  });
});

describe.skipIf((noTinyc ?? requireUserns()) !== null)("rootless", () => {
  test("run binds a config's device from the host, since mknod is refused", async () => {
    const script = "stat -c '%F %t:%T' /dev/full && echo x > /dev/full";
    const r = await runOnce("rootless", ["sh", "-c", script], {
      config: (spec) => {
        spec.linux.devices = [{ path: "/dev/full", type: "c", major: 1, minor: 7 }];
      },
    });
    expect(r.stdout.trim()).toBe("character special file 1:7");
    // Writing to /dev/full fails with ENOSPC: the node is the real one.
    expect(r.stderr).toContain("No space left on device");
  });

  test("run refuses a device the host has no node of to bind", async () => {
    const r = await runOnce("rootless", ["true"], {
      config: (spec) => {
        spec.linux.devices = [{ path: "/dev/tinyc-no-such-node", type: "c", major: 1, minor: 3 }];
      },
    });
    expectTinycError(r, 125, "/dev/tinyc-no-such-node", "does not exist on the host");
  });
});
