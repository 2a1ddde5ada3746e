import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  helperOf,
  hostsFile,
  NETWORK_ANNOTATION,
  parseNetworkFlag,
  parsePort,
  parsePorts,
  prepareNetwork,
  resolvConf,
} from "../../src/runtime/network";
import type { Spec } from "../../src/oci/config";

describe("parsePort", () => {
  test("parsePort does read docker's forms, tcp and 0.0.0.0 by default", () => {
    expect(parsePort("8080:80")).toEqual([{ hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, proto: "tcp" }]);
    expect(parsePort("127.0.0.1:53:5353/udp")).toEqual([
      { hostIp: "127.0.0.1", hostPort: 53, containerPort: 5353, proto: "udp" },
    ]);
    expect(parsePort("8080:80/tcp")[0].proto).toBe("tcp");
    expect(() => parsePort("127.0.0.1::80")).toThrow(/random host port is not supported/);
  });

  test("parsePort does expand ranges of the same length", () => {
    expect(parsePort("9000-9002:80-82").map((p) => [p.hostPort, p.containerPort])).toEqual([
      [9000, 80],
      [9001, 81],
      [9002, 82],
    ]);
  });

  test("parsePort does refuse what it cannot publish, in one line", () => {
    const bad: [string, RegExp][] = [
      ["80", /random host port is not supported/],
      ["8080:80/sctp", /protocol "sctp" is not supported/],
      ["[::1]:8080:80", /IPv6 host addresses are not supported/],
      ["1.2.3:8080:80", /not an IPv4 address/],
      ["0:80", /invalid port "0"/],
      ["70000:80", /invalid port "70000"/],
      ["9000-9001:80", /ranges differ/],
      ["a:b:c:d", /expected \[IP:\]HOST:CONTAINER/],
      ["x:80", /invalid port "x"/],
    ];
    for (const [text, why] of bad) {
      expect(() => parsePort(text)).toThrow(why);
    }
  });

  test("parsePorts does refuse a host port published twice", () => {
    expect(() => parsePorts(["8080:80", "127.0.0.1:8080:81"])).toThrow(/published twice/);
    expect(parsePorts(["8080:80", "8080:80/udp"])).toHaveLength(2);
  });
});

describe("parseNetworkFlag", () => {
  test("parseNetworkFlag does take none, host, private and slirp4netns options", () => {
    expect(parseNetworkFlag(undefined)).toEqual({ mode: "private", allowHostLoopback: false });
    expect(parseNetworkFlag("none").mode).toBe("none");
    expect(parseNetworkFlag("host").mode).toBe("host");
    expect(parseNetworkFlag("bridge").mode).toBe("private");
    expect(parseNetworkFlag("slirp4netns:allow_host_loopback=true")).toEqual({
      mode: "private",
      allowHostLoopback: true,
    });
    expect(() => parseNetworkFlag("mynet")).toThrow(/named networks are not supported/);
    expect(() => parseNetworkFlag("pasta")).toThrow(/pasta is not supported/);
    expect(() => parseNetworkFlag("slirp4netns:mtu=1500")).toThrow(/option "mtu=1500" is not supported/);
  });
});

describe("helperOf", () => {
  const specWith = (value: object | string, netns = true) => ({
    ociVersion: "1.0.2",
    annotations: { [NETWORK_ANNOTATION]: typeof value === "string" ? value : JSON.stringify(value) },
    linux: { namespaces: netns ? [{ type: "network" }] : [] },
  }) as Spec;
  const port = { hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "tcp" };

  test("helperOf does read the annotation back, checking every port again", () => {
    expect(helperOf(specWith({ helper: "slirp4netns", ports: [port], allowHostLoopback: true }))).toEqual({
      helper: "slirp4netns",
      ports: [port],
      allowHostLoopback: true,
    });
    expect(helperOf({ ociVersion: "1.0.2" } as Spec)).toBeUndefined();
    expect(() => helperOf(specWith({ helper: "slirp4netns", ports: [{ ...port, hostPort: 0 }] }))).toThrow(
      /invalid port "0"/,
    );
    expect(() => helperOf(specWith({ helper: "slirp4netns", ports: [{ ...port, hostIp: "x\"" }] }))).toThrow(
      /not an IPv4 address/,
    );
    expect(() => helperOf(specWith({ helper: "other", ports: [] }))).toThrow(/unknown helper/);
    expect(() => helperOf(specWith("{"))).toThrow(/not JSON/);
    expect(() => helperOf(specWith({ helper: "slirp4netns", ports: [] }, false))).toThrow(
      /no network namespace of its own/,
    );
  });
});

describe("network files", () => {
  const dir = mkdtempSync(join(tmpdir(), "tinyc-net-"));
  const host = join(dir, "host-resolv.conf");
  writeFileSync(host, "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch a.test b.test\noptions edns0\n");

  test("resolvConf does point a private network at slirp4netns's resolver, keeping search and options", () => {
    const o = { mode: "private" as const, hostname: "h", dir, hostResolvConf: host };
    expect(resolvConf(o)).toBe("search a.test b.test\nnameserver 10.0.2.3\noptions edns0\n");
    expect(resolvConf({ ...o, mode: "host" })).toBe(
      "search a.test b.test\nnameserver 127.0.0.53\nnameserver 192.0.2.1\noptions edns0\n",
    );
    // Without a network, the host's loopback resolver is not the container's.
    expect(resolvConf({ ...o, mode: "none" })).toBe("search a.test b.test\nnameserver 192.0.2.1\noptions edns0\n");
    expect(resolvConf({ ...o, dns: ["192.0.2.9"], dnsSearch: ["c.test"], dnsOptions: ["ndots:2"] })).toBe(
      "search c.test\nnameserver 192.0.2.9\noptions ndots:2\n",
    );
    expect(() => resolvConf({ ...o, dns: ["dns.example"] })).toThrow(/--dns "dns.example": not an IP address/);
    expect(() => resolvConf({ ...o, dnsSearch: ["a\nnameserver 1.2.3.4"] })).toThrow(/one word expected/);
    expect(() => resolvConf({ ...o, dnsOptions: [""] })).toThrow(/--dns-option "": one word expected/);
  });

  test("hostsFile does name the container's address and --add-host entries", () => {
    const o = { mode: "private" as const, hostname: "web", dir, addHosts: ["db:192.0.2.7"] };
    const lines = hostsFile(o).trim().split("\n");
    expect(lines[0]).toBe("127.0.0.1\tlocalhost");
    expect(lines).toContain("192.0.2.7\tdb");
    expect(lines.at(-1)).toBe("10.0.2.100\tweb");
    expect(hostsFile({ ...o, mode: "none", addHosts: [] }).trim().split("\n").at(-1)).toBe("127.0.0.1\tweb");
    expect(() => hostsFile({ ...o, addHosts: ["nohost"] })).toThrow(/expected NAME:IP/);
    expect(() => hostsFile({ ...o, addHosts: ["a:1.2.3.4\n5.6.7.8 evil"] })).toThrow(/expected NAME:IP/);
    expect(hostsFile({ ...o, addHosts: ["gw:host-gateway", "v6:2001:db8::1"] })).toContain(
      "10.0.2.2\tgw\n2001:db8::1\tv6\n",
    );
  });

  test("prepareNetwork does write the files and bind them over the image's", () => {
    const net = prepareNetwork({ mode: "private", hostname: "web", dir, ports: ["127.0.0.1:8080:80"], hostResolvConf: host });
    expect(readFileSync(join(dir, "hostname"), "utf8")).toBe("web\n");
    const spec: Spec = {
      ociVersion: "1.0.2",
      mounts: [{ destination: "/etc/hosts", type: "bind", source: "/elsewhere" }],
      linux: { namespaces: [{ type: "pid" }] },
    } as Spec;
    net.apply(spec);
    expect(spec.linux!.namespaces!.map((n) => n.type)).toEqual(["pid", "network"]);
    expect(spec.mounts!.map((m) => [m.destination, m.source])).toEqual([
      ["/etc/hosts", join(dir, "hosts")],
      ["/etc/hostname", join(dir, "hostname")],
      ["/etc/resolv.conf", join(dir, "resolv.conf")],
    ]);
    expect(JSON.parse(spec.annotations![NETWORK_ANNOTATION])).toEqual({
      helper: "slirp4netns",
      ports: [{ hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "tcp" }],
      allowHostLoopback: false,
    });
    const hostSpec = { ociVersion: "1.0.2", mounts: [], linux: { namespaces: [{ type: "network" }] } } as Spec;
    prepareNetwork({ mode: "host", hostname: "web", dir }).apply(hostSpec);
    expect(hostSpec.linux!.namespaces).toEqual([]);
    expect(hostSpec.annotations?.[NETWORK_ANNOTATION]).toBeUndefined();
    expect(() => prepareNetwork({ mode: "none", hostname: "x", dir, ports: ["1:2"] })).toThrow(/--network none/);
    rmSync(dir, { recursive: true, force: true });
  });
});
