// What a killed tinyc, a failed create and a mistyped flag must not leave behind or let through.

import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootless,
  spawnTinyc,
  tinycSkipReason,
} from "./harness";
import { busybox, expectTinycError, isRunning, pidsWithArg, StateRoot, waitUntil } from "./runkit";

afterAll(cleanup);

const skip = tinycSkipReason() ?? fixtureSkipReason("busybox") ?? requireUserns();

describe.skipIf(skip !== null)("rootless", () => {
  test("run's container is killed when tinyc is killed", async () => {
    const root = new StateRoot("rootless");
    const id = root.id();
    const pidFile = path.join(root.scratch, `${id}.pid`);
    const bundle = await busybox("rootless", ["sleep", "60"]);
    try {
      const p = spawnTinyc(["--root", root.dir, "run", "--pid-file", pidFile, bundle.dir, id], {
        as: "rootless",
      });
      expect(await waitUntil(() => fs.existsSync(pidFile), 5000)).toBe(true);
      const pid = Number(fs.readFileSync(pidFile, "utf8"));
      p.kill("SIGKILL");
      await p.exited;
      expect(await waitUntil(() => !isRunning(pid), 5000)).toBe(true);
    } finally {
      bundle.cleanup();
    }
  });

  test("run takes over an id whose state folder a killed tinyc left without state", async () => {
    const root = new StateRoot("rootless");
    const id = root.id();
    const bundle = await busybox("rootless", ["true"]);
    try {
      // What a tinyc killed right after claiming the id leaves: a folder with no state, whose
      // creator (pid and start time) is gone.
      const user = rootless()!;
      fs.mkdirSync(path.join(root.dir, id), { recursive: true });
      fs.writeFileSync(path.join(root.dir, id, "creator"), "999999999 1");
      for (const p of [root.dir, path.join(root.dir, id), path.join(root.dir, id, "creator")]) {
        fs.chownSync(p, user.uid, user.gid);
      }
      const r = await root.tinyc(["run", bundle.dir, id]);
      expect(r.code).toBe(0);
      expect(fs.existsSync(path.join(root.dir, id))).toBe(false);
    } finally {
      bundle.cleanup();
    }
  });

  test("create that cannot write its pid file leaves no process and no state", async () => {
    const root = new StateRoot("rootless");
    const id = root.id();
    const bundle = await busybox("rootless", ["true"]);
    try {
      const bad = path.join(root.scratch, "no-such-folder", "pid");
      const r = await root.tinyc(["create", "--bundle", bundle.dir, "--pid-file", bad, id]);
      expectTinycError(r, 1, "pid file");
      expect(pidsWithArg(id)).toEqual([]);
      expect(fs.existsSync(path.join(root.dir, id))).toBe(false);
    } finally {
      bundle.cleanup();
    }
  });

  test("a verb refuses a flag it does not know, rather than reading on", async () => {
    const root = new StateRoot("rootless");
    const typo = await root.tinyc(["run", "--detatch", "--bundle", ".", "x"]);
    // run keeps 1 and 2 for the container's own statuses: its usage errors are 125.
    expectTinycError(typo, 125, '"--detatch"');
    const del = await root.tinyc(["delete", "--froce", "x"]);
    expectTinycError(del, 2, '"--froce"');
  });
});
