import { describe, expect, test } from "bun:test";
import { TinycError } from "../../src/errors";
import {
  CAPABILITIES,
  parseConfig,
  parseProcess,
  requireProcess,
  RLIMITS,
  type Spec,
} from "../../src/oci/config";
import { findJsonFault, lineAndColumn } from "../../src/oci/json";

/** A small valid config, as text, with changes applied to a fresh copy. */
function config(change: (spec: Record<string, any>) => void = () => {}): string {
  const spec: Record<string, any> = {
    ociVersion: "1.2.0",
    root: { path: "rootfs" },
    process: { args: ["sh"], cwd: "/", user: { uid: 0, gid: 0 } },
    linux: { namespaces: [{ type: "pid" }, { type: "mount" }] },
  };
  change(spec);
  return JSON.stringify(spec, null, 2);
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TinycError);
    return (err as Error).message;
  }
  throw new Error("expected an error, got none");
}

const parse = (text: string) => parseConfig(text, "config.json");

describe("parseConfig syntax errors", () => {
  test("parseConfig reports an empty file", () => {
    expect(errorOf(() => parse(""))).toBe("config.json: file is empty");
    expect(errorOf(() => parse(" \n\t"))).toBe("config.json: file is empty");
  });

  test("parseConfig reports a truncated file at its end", () => {
    const text = '{\n  "ociVersion": "1.2.0",\n  "root": {\n    "path": "rootfs"';
    expect(errorOf(() => parse(text))).toBe(
      "config.json: invalid JSON at line 4, column 21: " +
        'unexpected end of input, expected "," or "}"',
    );
  });

  test("parseConfig reports a truncated file inside a string", () => {
    expect(errorOf(() => parse('{"ociVersion": "1.2'))).toBe(
      "config.json: invalid JSON at line 1, column 16: unterminated string",
    );
  });

  test("parseConfig reports a trailing comma with line and column", () => {
    const text = '{\n  "ociVersion": "1.2.0",\n  "root": {"path": "rootfs"},\n}';
    expect(errorOf(() => parse(text))).toBe(
      'config.json: invalid JSON at line 4, column 1: unexpected token "}", ' +
        "expected a property name in quotes",
    );
  });

  test("parseConfig reports a trailing comma in an array", () => {
    const text = '{"process": {"args": ["sh",]}}';
    expect(errorOf(() => parse(text))).toBe(
      'config.json: invalid JSON at line 1, column 28: unexpected token "]"',
    );
  });

  test("parseConfig reports a missing closing quote at the string's start", () => {
    const text = '{\n  "ociVersion": "1.2.0,\n  "root": {"path": "rootfs"}\n}';
    expect(errorOf(() => parse(text))).toBe(
      "config.json: invalid JSON at line 2, column 17: unterminated string",
    );
  });

  test("parseConfig reports a missing opening quote", () => {
    expect(errorOf(() => parse('{ociVersion": "1"}'))).toBe(
      'config.json: invalid JSON at line 1, column 2: unexpected token "o", ' +
        "expected a property name in quotes",
    );
  });

  test("parseConfig names invisible characters by code point", () => {
    expect(errorOf(() => parse("\uFEFF{}"))).toBe(
      "config.json: invalid JSON at line 1, column 1: unexpected character U+FEFF",
    );
  });

  test("parseConfig counts columns in code points", () => {
    expect(errorOf(() => parse('{"a": "ü😀", x}'))).toBe(
      'config.json: invalid JSON at line 1, column 13: unexpected token "x", ' +
        "expected a property name in quotes",
    );
  });

  test("parseConfig reports text after the document", () => {
    expect(errorOf(() => parse('{"a": 1}\n{"b": 2}'))).toBe(
      'config.json: invalid JSON at line 2, column 1: unexpected token "{"',
    );
  });

  test("parseConfig refuses a document that is not an object", () => {
    expect(errorOf(() => parse("[]"))).toBe("config.json: expected an object, got array");
  });
});

describe("findJsonFault", () => {
  test("findJsonFault returns nothing for valid JSON", () => {
    for (const text of ['{"a": [1, -2.5e3, true, null, "\\u00e9\\n"]}', "0", '""', " [] "]) {
      expect(findJsonFault(text)).toBeUndefined();
    }
  });

  test("findJsonFault agrees with JSON.parse on malformed numbers and escapes", () => {
    for (const text of ["01", "1.", "-", "1e", '"\\x"', '"\\u12"', '"a\tb"', "tru", "[1 2]"]) {
      expect(() => JSON.parse(text)).toThrow();
      expect(findJsonFault(text)).toBeDefined();
    }
  });

  test("findJsonFault stops at nesting deeper than runc accepts", () => {
    expect(findJsonFault("[".repeat(20000))?.reason).toBe("nesting deeper than 10000 levels");
  });

  test("lineAndColumn counts from 1", () => {
    expect(lineAndColumn("ab\ncd", 0)).toEqual({ line: 1, column: 1 });
    expect(lineAndColumn("ab\ncd", 2)).toEqual({ line: 1, column: 3 });
    expect(lineAndColumn("ab\ncd", 4)).toEqual({ line: 2, column: 2 });
  });
});

describe("parseConfig field checks", () => {
  test("parseConfig accepts a minimal config", () => {
    const spec = parse(config());
    expect(spec.root.path).toBe("rootfs");
    expect(spec.process?.args).toEqual(["sh"]);
  });

  test("parseConfig reports a wrong type inside process.args", () => {
    const text = config((s) => (s.process.args = ["sh", 1]));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: process.args: expected an array of strings, got number at process.args[1]",
    );
  });

  test("parseConfig reports process.args that is not an array", () => {
    const text = config((s) => (s.process.args = "sh"));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: process.args: expected an array of strings, got string",
    );
  });

  test("parseConfig reports empty process.args", () => {
    const text = config((s) => (s.process.args = []));
    expect(errorOf(() => parse(text))).toBe("config.json: process.args: must not be empty");
  });

  test("parseConfig reports a relative cwd", () => {
    const text = config((s) => (s.process.cwd = "tmp"));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: process.cwd: expected an absolute path, got "tmp"',
    );
  });

  test("parseConfig reports a missing cwd", () => {
    const text = config((s) => delete s.process.cwd);
    expect(errorOf(() => parse(text))).toBe("config.json: process.cwd: missing");
  });

  test("parseConfig reports an unknown namespace type", () => {
    const text = config((s) => s.linux.namespaces.push({ type: "net" }));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: linux.namespaces[2].type: unknown namespace type "net"',
    );
  });

  test("parseConfig reports a duplicate namespace", () => {
    const text = config((s) => s.linux.namespaces.push({ type: "pid", path: "/proc/1/ns/pid" }));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: linux.namespaces[2]: duplicate namespace type "pid"',
    );
  });

  test("parseConfig reports an unknown capability", () => {
    const text = config((s) => (s.process.capabilities = { bounding: ["CAP_KILL", "KILL"] }));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: process.capabilities.bounding[1]: unknown capability "KILL"',
    );
  });

  test("parseConfig does not take inherited property names for capabilities", () => {
    const text = config((s) => (s.process.capabilities = { ambient: ["constructor"] }));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: process.capabilities.ambient[0]: unknown capability "constructor"',
    );
  });

  test("parseConfig reports an unknown rlimit type", () => {
    const text = config((s) => (s.process.rlimits = [{ type: "RLIMIT_FILES", hard: 1, soft: 1 }]));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: process.rlimits[0].type: unknown rlimit type "RLIMIT_FILES"',
    );
  });

  test("parseConfig reports a soft rlimit above the hard one", () => {
    const text = config((s) => (s.process.rlimits = [{ type: "RLIMIT_NOFILE", hard: 1, soft: 2 }]));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: process.rlimits[0]: soft limit 2 is above hard limit 1",
    );
  });

  test("parseConfig reports a duplicate rlimit", () => {
    const limit = { type: "RLIMIT_NOFILE", hard: 1, soft: 1 };
    const text = config((s) => (s.process.rlimits = [limit, limit]));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: process.rlimits[1]: duplicate rlimit type "RLIMIT_NOFILE"',
    );
  });

  test("parseConfig accepts RLIM_INFINITY", () => {
    const text = config((s) => (s.process.rlimits = [{ type: "RLIMIT_CORE", hard: 0, soft: 0 }]));
    const infinite = text.replace(/"hard": 0/, '"hard": 18446744073709551615');
    expect(parse(infinite).process?.rlimits?.[0].hard).toBe(2 ** 64);
  });

  test("parseConfig reports a uid out of range", () => {
    const text = config((s) => (s.process.user.uid = 4294967295));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: process.user.uid: expected an integer in 0..4294967294, got 4294967295",
    );
  });

  test("parseConfig reports a uid of the wrong type", () => {
    const text = config((s) => (s.process.user.gid = "0"));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: process.user.gid: expected an integer in 0..4294967294, got string",
    );
  });

  test("parseConfig fills in a missing user as root", () => {
    const spec = parse(config((s) => delete s.process.user));
    expect(spec.process?.user).toEqual({ uid: 0, gid: 0 });
  });

  test("parseConfig reports a mapping of size zero", () => {
    const text = config((s) => (s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 0 }]));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: linux.uidMappings[0].size: expected an integer in 1..4294967295, got 0",
    );
  });

  test("parseConfig reports a mapping past the last id", () => {
    const map = { containerID: 0, hostID: 100000, size: 4294967295 };
    const text = config((s) => (s.linux.gidMappings = [map]));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: linux.gidMappings[0]: hostID 100000 plus size 4294967295 exceeds 4294967295",
    );
  });

  test("parseConfig reports a missing root as a missing root.path", () => {
    const missing = "config.json: root.path: missing";
    expect(errorOf(() => parse(config((s) => delete s.root)))).toBe(missing);
    expect(errorOf(() => parse(config((s) => (s.root = {}))))).toBe(missing);
  });

  test("parseConfig reports a missing ociVersion", () => {
    const text = config((s) => delete s.ociVersion);
    expect(errorOf(() => parse(text))).toBe("config.json: ociVersion: missing");
  });

  test("parseConfig reports a relative mount destination", () => {
    const mount = { destination: "proc", type: "proc", source: "proc" };
    const text = config((s) => (s.mounts = [mount]));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: mounts[0].destination: expected an absolute path, got "proc"',
    );
  });

  test("parseConfig reports a hook without a path", () => {
    const text = config((s) => (s.hooks = { poststop: [{ args: ["x"] }] }));
    expect(errorOf(() => parse(text))).toBe("config.json: hooks.poststop[0].path: missing");
  });

  test("parseConfig reports a non-string annotation", () => {
    const text = config((s) => (s.annotations = { "org.example": true }));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: annotations["org.example"]: expected a string, got boolean',
    );
  });

  test("parseConfig reports an unknown seccomp action", () => {
    const text = config((s) => (s.linux.seccomp = { defaultAction: "SCMP_ACT_DENY" }));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: linux.seccomp.defaultAction: unknown seccomp action "SCMP_ACT_DENY"',
    );
  });

  test("parseConfig reports a character device without numbers", () => {
    const text = config((s) => (s.linux.devices = [{ type: "c", path: "/dev/null", major: 1 }]));
    expect(errorOf(() => parse(text))).toBe(
      'config.json: linux.devices[0].minor: missing for device type "c"',
    );
  });

  test("parseConfig reports a wrong type in resources", () => {
    const text = config((s) => (s.linux.resources = { memory: { limit: "1g" } }));
    expect(errorOf(() => parse(text))).toBe(
      "config.json: linux.resources.memory.limit: expected an integer, got string",
    );
  });

  test("parseConfig ignores unknown fields", () => {
    const text = config((s) => {
      s.future = { anything: [1] };
      s.process.somethingNew = 3;
      s.linux.memoryPolicy = { mode: "MPOL_BIND" };
    });
    expect((parse(text) as Spec & { future: unknown }).future).toEqual({ anything: [1] });
  });

  test("parseConfig treats null fields as absent", () => {
    const spec = parse(config((s) => ((s.mounts = null), (s.process.env = null))));
    expect("mounts" in spec).toBe(false);
    expect(spec.process?.env).toBeUndefined();
  });

  test("parseConfig uses the file name it is given", () => {
    const text = config((s) => (s.hostname = 7));
    expect(errorOf(() => parseConfig(text, "/b/config.json"))).toBe(
      "/b/config.json: hostname: expected a string, got number",
    );
  });
});

describe("requireProcess and parseProcess", () => {
  test("requireProcess reports a missing process", () => {
    const spec = parse(config((s) => delete s.process));
    expect(errorOf(() => requireProcess(spec))).toBe("process: missing");
    const withFile = errorOf(() => requireProcess(spec, "config.json"));
    expect(withFile).toBe("config.json: process: missing");
  });

  test("requireProcess returns the process", () => {
    expect(requireProcess(parse(config())).args).toEqual(["sh"]);
  });

  test("parseProcess accepts a process.json", () => {
    const proc = parseProcess('{"args": ["ls", "-l"], "cwd": "/tmp", "env": ["A=1"]}', "p.json");
    const user = { uid: 0, gid: 0 };
    expect(proc).toEqual({ args: ["ls", "-l"], cwd: "/tmp", env: ["A=1"], user });
  });

  test("parseProcess names fields from the file's top", () => {
    expect(errorOf(() => parseProcess('{"args": ["ls"], "cwd": "x"}', "process.json"))).toBe(
      'process.json: cwd: expected an absolute path, got "x"',
    );
    expect(errorOf(() => parseProcess('{"args": ["ls"],', "process.json"))).toBe(
      "process.json: invalid JSON at line 1, column 17: unexpected end of input, " +
        "expected a property name in quotes",
    );
  });
});

describe("tables", () => {
  test("CAPABILITIES numbers run from 0 to 40 without gaps", () => {
    const numbers = Object.values(CAPABILITIES).sort((a, b) => a - b);
    expect(numbers).toEqual([...Array(41).keys()]);
    expect(CAPABILITIES.CAP_SYS_ADMIN).toBe(21);
    expect(CAPABILITIES.CAP_CHECKPOINT_RESTORE).toBe(40);
  });

  test("RLIMITS numbers match the generic Linux layout", () => {
    expect(Object.values(RLIMITS)).toEqual([...Array(16).keys()]);
    expect(RLIMITS.RLIMIT_NOFILE).toBe(7);
  });
});
