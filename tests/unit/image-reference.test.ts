import { describe, expect, test } from "bun:test";
import {
  familiarReference,
  formatReference,
  normalizeRegistry,
  parseReference,
} from "../../src/image/reference";

const HEX = "a".repeat(64);

describe("parseReference", () => {
  const cases: [string, string][] = [
    ["debian", "docker.io/library/debian:latest"],
    ["debian:bookworm", "docker.io/library/debian:bookworm"],
    ["user/app", "docker.io/user/app:latest"],
    ["docker.io/debian", "docker.io/library/debian:latest"],
    ["index.docker.io/library/debian:12", "docker.io/library/debian:12"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/debian:bookworm", "localhost:5000/debian:bookworm"],
    ["127.0.0.1:5000/a/b/c:v1.2", "127.0.0.1:5000/a/b/c:v1.2"],
    ["[::1]:5000/app:x", "[::1]:5000/app:x"],
    [`registry.example/a/b@sha256:${HEX}`, `registry.example/a/b@sha256:${HEX}`],
    [`debian:12@sha256:${HEX}`, `docker.io/library/debian:12@sha256:${HEX}`],
    ["u/a__b.c-d/e---f:T_a.g-1", "docker.io/u/a__b.c-d/e---f:T_a.g-1"],
  ];
  for (const [input, want] of cases) {
    test(`parseReference normalizes ${JSON.stringify(input)}`, () => {
      expect(formatReference(parseReference(input))).toBe(want);
    });
  }

  test("parseReference keeps no tag for a digest reference", () => {
    const r = parseReference(`localhost:5000/x@sha256:${HEX}`);
    expect(r.tag).toBeUndefined();
    expect(r.digest).toBe(`sha256:${HEX}`);
    expect(r.registry).toBe("localhost:5000");
    expect(r.repository).toBe("x");
  });

  test("parseReference reads a host with a port but no dot as a registry", () => {
    expect(parseReference("myhost:5000/app").registry).toBe("myhost:5000");
    expect(parseReference("myhost/app").registry).toBe("docker.io");
  });

  const bad = [
    "",
    "Debian",
    "debian:",
    "debian:-x",
    "debian@sha256:abc",
    "a//b",
    "a/../b",
    `x:${"t".repeat(129)}`,
    "-a",
    "a b",
  ];
  for (const input of bad) {
    test(`parseReference refuses ${JSON.stringify(input)}`, () => {
      expect(() => parseReference(input)).toThrow(/invalid reference/);
    });
  }

  test("familiarReference drops docker.io and library/", () => {
    expect(familiarReference(parseReference("debian"))).toBe("debian:latest");
    expect(familiarReference(parseReference("user/app:1"))).toBe("user/app:1");
    expect(familiarReference(parseReference("localhost:5000/app"))).toBe(
      "localhost:5000/app:latest",
    );
  });

  test("normalizeRegistry maps docker's index URL to docker.io", () => {
    expect(normalizeRegistry("https://index.docker.io/v1/")).toBe("docker.io");
    expect(normalizeRegistry("localhost:5000")).toBe("localhost:5000");
    expect(normalizeRegistry("http://127.0.0.1:5000/")).toBe("127.0.0.1:5000");
  });
});
