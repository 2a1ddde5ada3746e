import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type Spec } from "../../src/oci/config";
import { defaultSpec, stringifySpec } from "../../src/oci/spec";

const RUNC = "/usr/bin/runc";
const CRUN = "/usr/bin/crun";

const uid = process.geteuid!();
const gid = process.getegid!();

/** Runs `TOOL spec [--rootless]` in a fresh folder and returns the config.json it wrote. */
function toolSpecText(tool: string, rootless: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), "tinyc-spec-"));
  try {
    const args = [tool, "spec", ...(rootless ? ["--rootless"] : [])];
    const run = Bun.spawnSync(args, { cwd: dir, stderr: "pipe" });
    if (run.exitCode !== 0) throw new Error(`${args.join(" ")}: ${run.stderr.toString()}`);
    return readFileSync(join(dir, "config.json"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const toolSpec = (tool: string, rootless: boolean): any =>
  JSON.parse(toolSpecText(tool, rootless));

const withoutCgroupNs = (spec: any) =>
  spec.linux.namespaces.filter((ns: { type: string }) => ns.type !== "cgroup");

/** Checks that ours has runc's layout; differences between runc releases are allowed. */
function expectSameShape(ours: Spec, theirs: any): void {
  expect(Object.keys(ours)).toEqual(Object.keys(theirs));
  expect(Object.keys(ours.linux!)).toEqual(Object.keys(theirs.linux));
  expect(ours.mounts).toEqual(theirs.mounts);
  expect(ours.root).toEqual(theirs.root);
  expect(ours.linux!.resources).toEqual(theirs.linux.resources);
  expect(ours.linux!.uidMappings).toEqual(theirs.linux.uidMappings);
  expect(ours.linux!.gidMappings).toEqual(theirs.linux.gidMappings);
  expect(withoutCgroupNs(ours)).toEqual(withoutCgroupNs(theirs));
  expect(ours.linux!.readonlyPaths).toEqual(theirs.linux.readonlyPaths);
  // Newer runc masks /sys/devices/virtual/tpm as well.
  expect(ours.linux!.maskedPaths).toEqual(expect.arrayContaining(theirs.linux.maskedPaths));
  const { capabilities, ...process } = ours.process!;
  const { capabilities: theirCaps, ...theirProcess } = theirs.process;
  expect(process).toEqual(theirProcess);
  // runc 1.1 also filled the ambient set; 1.2 and later fill these three only.
  for (const set of ["bounding", "effective", "permitted"] as const) {
    expect(capabilities![set]).toEqual(theirCaps[set]);
  }
}

describe("defaultSpec", () => {
  test("defaultSpec follows runc's example", () => {
    const spec = defaultSpec({ rootless: false, uid, gid, cgroupNamespace: false });
    expect(spec.ociVersion).toBe("1.1.0");
    expect(spec.hostname).toBe("tinyc");
    expect(spec.process?.terminal).toBe(true);
    expect(spec.process?.args).toEqual(["sh"]);
    expect(spec.linux?.namespaces?.map((ns) => ns.type)).toEqual([
      "pid",
      "network",
      "ipc",
      "uts",
      "mount",
    ]);
    expect(spec.linux?.resources).toEqual({ devices: [{ allow: false, access: "rwm" }] });
    const pts = spec.mounts?.find((m) => m.destination === "/dev/pts");
    expect(pts?.options).toContain("gid=5");
  });

  test("defaultSpec adds a cgroup namespace when asked", () => {
    const spec = defaultSpec({ rootless: true, uid, gid, cgroupNamespace: true });
    const types = spec.linux?.namespaces?.map((ns) => ns.type);
    expect(types).toEqual(["pid", "ipc", "uts", "mount", "cgroup", "user"]);
  });

  test("defaultSpec rootless has a user namespace and maps root to the caller", () => {
    const spec = defaultSpec({ rootless: true, uid: 1000, gid: 1001, cgroupNamespace: false });
    const types = spec.linux?.namespaces?.map((ns) => ns.type);
    expect(types).toEqual(["pid", "ipc", "uts", "mount", "user"]);
    expect(spec.linux?.uidMappings).toEqual([{ containerID: 0, hostID: 1000, size: 1 }]);
    expect(spec.linux?.gidMappings).toEqual([{ containerID: 0, hostID: 1001, size: 1 }]);
    expect(spec.linux?.resources).toBeUndefined();
    expect(Object.keys(spec.linux!)[0]).toBe("uidMappings");
  });

  test("defaultSpec rootless binds /sys and drops gid options", () => {
    const spec = defaultSpec({ rootless: true, uid: 1000, gid: 1000 });
    const sys = spec.mounts?.find((m) => m.destination === "/sys");
    expect(sys).toEqual({
      destination: "/sys",
      type: "none",
      source: "/sys",
      options: ["rbind", "nosuid", "noexec", "nodev", "ro"],
    });
    const options = spec.mounts!.flatMap((m) => m.options ?? []);
    expect(options.filter((o) => o.startsWith("gid=") || o.startsWith("uid="))).toEqual([]);
  });

  test("defaultSpec takes args and terminal", () => {
    const spec = defaultSpec({ rootless: true, uid, gid, args: ["/bin/true"], terminal: false });
    expect(spec.process?.args).toEqual(["/bin/true"]);
    expect(spec.process?.terminal).toBe(false);
  });

  test("defaultSpec returns fresh arrays on every call", () => {
    const a = defaultSpec({ rootless: false, uid, gid });
    a.process!.capabilities!.bounding!.push("CAP_SYS_ADMIN");
    a.linux!.maskedPaths!.pop();
    const b = defaultSpec({ rootless: false, uid, gid });
    expect(b.process!.capabilities!.bounding).toHaveLength(3);
    expect(b.linux!.maskedPaths).toContain("/sys/devices/virtual/tpm");
  });

  test("defaultSpec output passes parseConfig", () => {
    for (const rootless of [false, true]) {
      const spec = defaultSpec({ rootless, uid, gid });
      expect(parseConfig(stringifySpec(spec), "config.json")).toEqual(spec);
    }
  });

  test("stringifySpec indents with tabs and ends with a newline", () => {
    const text = stringifySpec(defaultSpec({ rootless: true, uid, gid }));
    const head = '{\n\t"ociVersion": "1.1.0",\n\t"process": {\n\t\t"terminal"';
    expect(text.startsWith(head)).toBe(true);
    expect(text.endsWith("}\n")).toBe(true);
  });
});

describe("defaultSpec against runc and crun", () => {
  test.skipIf(!existsSync(RUNC))("defaultSpec matches runc spec (needs /usr/bin/runc)", () => {
    const ours = defaultSpec({ rootless: false, uid, gid });
    expectSameShape(ours, toolSpec(RUNC, false));
  });

  test.skipIf(!existsSync(RUNC))(
    "defaultSpec rootless matches runc spec --rootless (needs /usr/bin/runc)",
    () => {
      const ours = defaultSpec({ rootless: true, uid, gid });
      expectSameShape(ours, toolSpec(RUNC, true));
    },
  );

  test.skipIf(!existsSync(RUNC) || !existsSync(CRUN))(
    "parseConfig accepts the specs runc and crun write (needs /usr/bin/runc and /usr/bin/crun)",
    () => {
      for (const tool of [RUNC, CRUN]) {
        for (const rootless of [false, true]) {
          const text = toolSpecText(tool, rootless);
          expect(() => parseConfig(text, `${tool} config.json`)).not.toThrow();
        }
      }
    },
  );
});
