// `tinyc run` with bundles that cannot run. Each failure must reach the caller the same way: a
// non-zero status (125 for tinyc's own failures, 126 and 127 for the program's), and exactly one
// line on stderr, "tinyc: " and a message that says what is wrong, with no stack trace.
import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type As,
  RUN_DIR,
  cleanup,
  fixtureSkipReason,
  requireUserns,
  rootSkipReason,
  rootless,
  run,
  scratchDir,
  tinycSkipReason,
} from "./harness";
import { busybox, expectTinycError, putFile, runBundle, runOnce } from "./runkit";

afterAll(cleanup);

const noTinyc = tinycSkipReason() ?? fixtureSkipReason("busybox");
const noRootless = noTinyc ?? requireUserns();
const noRoot = noTinyc ?? rootSkipReason();
if (noRootless) console.warn(`skipping rootless error tests: ${noRootless}`);
if (noRoot) console.warn(`skipping root error tests: ${noRoot}`);

function errorTests(as: As) {
  test("run reports a missing bundle folder", async () => {
    const missing = path.join(RUN_DIR, "no-such-bundle");
    const r = await run(["run", missing], { as });
    expectTinycError(r, 125, missing, "no such directory");
  });

  test("run reports a bundle without config.json", async () => {
    const dir = scratchDir(as, "empty-bundle");
    const r = await run(["run", dir], { as });
    expectTinycError(r, 125, "config.json", "not found");
  });

  test("run reports where config.json does not parse", async () => {
    const bundle = await busybox(as, ["true"]);
    // A comma missing after the ociVersion line: line 3 is where the parser stops.
    fs.writeFileSync(
      path.join(bundle.dir, "config.json"),
      '{\n  "ociVersion": "1.0.2"\n  "process": {}\n}\n',
    );
    const r = await runBundle(as, bundle);
    bundle.cleanup();
    expectTinycError(r, 125, "config.json", "line 3", "column");
  });

  test("run reports a half-written config.json", async () => {
    const bundle = await busybox(as, ["true"]);
    const file = path.join(bundle.dir, "config.json");
    const text = fs.readFileSync(file, "utf8");
    fs.writeFileSync(file, text.slice(0, Math.floor(text.length / 2)));
    const r = await runBundle(as, bundle);
    bundle.cleanup();
    expectTinycError(r, 125, "config.json", "line", "column");
  });

  test("run names the field of the wrong type", async () => {
    const r = await runOnce(as, ["true"], {
      config: (s) => ((s.process as any).args = "sh -c true"),
    });
    expectTinycError(r, 125, "process.args");
  });

  test("run reports an unknown namespace type", async () => {
    const r = await runOnce(as, ["true"], {
      config: (s) => s.linux.namespaces.push({ type: "bogus" }),
    });
    expectTinycError(r, 125, "linux.namespaces", '"bogus"');
  });

  test("run reports a missing rootfs", async () => {
    const bundle = await busybox(as, ["true"]);
    fs.rmSync(bundle.rootfs, { recursive: true, force: true });
    const r = await runBundle(as, bundle);
    bundle.cleanup();
    expectTinycError(r, 125, "root.path", bundle.rootfs);
  });

  test("run reports a program that is not in the container with 127", async () => {
    // The caller has ls; the container's PATH does not lead to one named like this.
    const r = await runOnce(as, ["no-such-program", "arg"]);
    expectTinycError(r, 127, '"no-such-program"', "not found");
  });

  test("run reports an absolute program path that is missing with 127", async () => {
    const r = await runOnce(as, ["/opt/none/prog"]);
    expectTinycError(r, 127, '"/opt/none/prog"', "not found");
  });

  test("run reports a program that is not executable with 126", async () => {
    const bundle = await busybox(as, ["/bin/notexec"]);
    putFile(bundle, as, "bin/notexec", "#!/bin/sh\necho should not run\n", 0o644);
    const r = await runBundle(as, bundle);
    bundle.cleanup();
    expectTinycError(r, 126, '"/bin/notexec"', "permission denied");
  });

  test("run reports a bind mount source that does not exist", async () => {
    const missing = path.join(RUN_DIR, "no-such-source");
    const r = await runOnce(as, ["true"], {
      config: (s) =>
        s.mounts.push({ destination: "/mnt", type: "bind", source: missing, options: ["rbind"] }),
    });
    expectTinycError(r, 125, "mounts[6]", missing, "does not exist");
  });

  test("run reports a container id that is not valid", async () => {
    const bundle = await busybox(as, ["true"]);
    const r = await run(["run", "--bundle", bundle.dir, "../escape"], { as });
    bundle.cleanup();
    expectTinycError(r, "non-zero", '"../escape"');
  });

  test("run refuses an id that is in use", async () => {
    const bundle = await busybox(as, ["true"]);
    const root = scratchDir(as, "state");
    fs.mkdirSync(path.join(root, "taken"));
    if (as === "rootless") fs.chownSync(path.join(root, "taken"), rootless()!.uid, rootless()!.gid);
    const r = await run(["--root", root, "run", "--bundle", bundle.dir, "taken"], { as });
    bundle.cleanup();
    expectTinycError(r, 125, '"taken"', "already exists");
  });

  test("run of an image that is not in the store, with --pull=never, says so", async () => {
    // A first argument that is no path is an image; --pull=never keeps this off any registry.
    const r = await run(["run", "--pull=never", "tinyc-test-missing:latest"], { as });
    expectTinycError(r, 125, '"tinyc-test-missing:latest"', "not in the store");
  });
}

describe.skipIf(!!noRootless)("rootless", () => {
  errorTests("rootless");

  test("run reports a uid that the user namespace does not map", async () => {
    // The mappings of `spec --rootless`: the caller's own ids, one each, as container root.
    const user = rootless()!;
    const r = await runOnce("rootless", ["true"], {
      config: (s) => {
        s.linux.uidMappings = [{ containerID: 0, hostID: user.uid, size: 1 }];
        s.linux.gidMappings = [{ containerID: 0, hostID: user.gid, size: 1 }];
        s.process.user = { uid: 1000, gid: 0 };
      },
    });
    expectTinycError(r, 125, "uid 1000", "no mapping");
  });

  test("run reports supplementary groups that a single mapping cannot give", async () => {
    // With one id of its own mapped, the child writes "deny" to setgroups before its maps.
    const user = rootless()!;
    const r = await runOnce("rootless", ["true"], {
      config: (s) => {
        s.linux.uidMappings = [{ containerID: 0, hostID: user.uid, size: 1 }];
        s.linux.gidMappings = [{ containerID: 0, hostID: user.gid, size: 1 }];
        s.process.user = { uid: 0, gid: 0, additionalGids: [0] };
      },
    });
    expectTinycError(r, 125, "additionalGids");
  });

  test("run reports host ids in the mappings that the user does not own", async () => {
    const r = await runOnce("rootless", ["true"], {
      config: (s) => {
        s.linux.uidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
        s.linux.gidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
      },
    });
    expectTinycError(r, 125, "linux.uidMappings", "not owned");
  });

  test("run reports a state folder the user cannot write", async () => {
    const bundle = await busybox("rootless", ["true"]);
    const root = path.join(scratchDir("root", "closed"), "state");
    const r = await run(["--root", root, "run", bundle.dir], { as: "rootless" });
    bundle.cleanup();
    expectTinycError(r, 125, root);
  });
});

describe.skipIf(!!noRoot)("as root", () => {
  errorTests("root");

  test("run reports a user namespace without mappings", async () => {
    const r = await runOnce("root", ["true"], {
      config: (s) => s.linux.namespaces.push({ type: "user" }),
    });
    expectTinycError(r, 125, "uidMappings");
  });
});

test.skipIf(!!noRootless)("run prints no stack trace when tinyc fails inside", async () => {
  // A config.json that is a folder: reading it fails in a way no check above foresees.
  const bundle = await busybox("rootless", ["true"]);
  const file = path.join(bundle.dir, "config.json");
  fs.rmSync(file);
  fs.mkdirSync(file);
  const r = await runBundle("rootless", bundle);
  bundle.cleanup();
  expect({ lines: r.stderr.trimEnd().split("\n").length, at: /\n\s+at /.test(r.stderr) }).toEqual({
    lines: 1,
    at: false,
  });
});
