import { describe, expect, test } from "bun:test";
import { reownedId, spreadAround } from "../../src/runtime/keepid";
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from "../../src/runtime/detachkeys";
import { devName } from "../../src/commands/dev";

describe("spreadAround", () => {
  test("maps the caller's id to itself and the range around it", () => {
    expect(spreadAround(1001, [{ start: 100000, count: 65536 }])).toEqual([
      { containerID: 0, hostID: 100000, size: 1001 },
      { containerID: 1001, hostID: 1001, size: 1 },
      { containerID: 1002, hostID: 101001, size: 64535 },
    ]);
  });

  test("splits a range that spans the caller's id, and takes several ranges in order", () => {
    expect(spreadAround(5, [{ start: 100, count: 3 }, { start: 200, count: 4 }])).toEqual([
      { containerID: 0, hostID: 100, size: 3 },
      { containerID: 3, hostID: 200, size: 2 },
      { containerID: 5, hostID: 5, size: 1 },
      { containerID: 6, hostID: 202, size: 2 },
    ]);
  });

  test("leaves a gap below the caller's id when the range is shorter", () => {
    expect(spreadAround(1000, [{ start: 100000, count: 10 }])).toEqual([
      { containerID: 0, hostID: 100000, size: 10 },
      { containerID: 1000, hostID: 1000, size: 1 },
    ]);
  });
});

describe("reownedId", () => {
  test("moves ids below the caller's up one, the caller's to 0, and keeps those above", () => {
    expect([0, 1, 999, 1000, 1001, 65534].map((id) => reownedId(id, 1000))).toEqual([1, 2, 1000, 0, 1001, 65534]);
  });
});

describe("parseDetachKeys", () => {
  test("reads docker's notation", () => {
    expect([...parseDetachKeys(DEFAULT_DETACH_KEYS)]).toEqual([16, 17]);
    expect([...parseDetachKeys("ctrl-a,d")]).toEqual([1, 100]);
    expect([...parseDetachKeys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_")]).toEqual([0, 27, 28, 29, 30, 31]);
    expect([...parseDetachKeys("")]).toEqual([]);
  });

  test("refuses what is not a key", () => {
    for (const bad of ["ctrl-1", "ab", "ctrl-", ",", "é"]) expect(() => parseDetachKeys(bad)).toThrow("is not a key");
  });
});

describe("devName", () => {
  test("names a dev container after the folder and the image", () => {
    const a = devName("/home/me/src/My Project", "debian:bookworm");
    expect(a).toMatch(/^dev-my-project-[0-9a-f]{8}-[0-9a-f]{4}$/);
    expect(devName("/home/me/src/My Project", "debian:bookworm")).toBe(a);
    expect(devName("/home/me/src/My Project", "alpine:3")).not.toBe(a);
    expect(devName("/home/me/other/My Project", "debian:bookworm")).not.toBe(a);
    expect(a.startsWith(devName("/home/me/src/My Project") + "-")).toBe(true);
    expect(devName("/.hidden", "x")).toMatch(/^dev-hidden-/);
  });
});
