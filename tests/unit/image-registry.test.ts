// The distribution client against small registries served on loopback addresses.
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { parseChallenge, RegistryClient, registryBase } from "../../src/image/registry";

const servers: { stop: (force?: boolean) => void }[] = [];
afterAll(() => servers.forEach((s) => s.stop(true)));

function serve(hostname: string, fetch: (req: Request) => Response | Promise<Response>) {
  const s = Bun.serve({ hostname, port: 0, fetch });
  servers.push(s);
  return `${hostname}:${s.port}`;
}

function sha(data: string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function text(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts).toString();
}

const MANIFEST = JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha("{}"), size: 2 },
  layers: [],
});

describe("RegistryClient", () => {
  test("parseChallenge reads a bearer challenge", () => {
    const c = parseChallenge(
      'Bearer realm="http://127.0.0.1/token",service="reg",scope="repository:a/b:pull,push"',
    );
    expect(c).toEqual({
      scheme: "bearer",
      params: {
        realm: "http://127.0.0.1/token",
        service: "reg",
        scope: "repository:a/b:pull,push",
      },
    });
  });

  test("manifest answers a bearer challenge with a token, using stored credentials", async () => {
    const seen: string[] = [];
    const host: string = serve("127.0.0.1", (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/token") {
        seen.push(`token ${url.searchParams.get("scope")} ${req.headers.get("authorization")}`);
        return Response.json({ token: "T0K" });
      }
      if (req.headers.get("authorization") !== "Bearer T0K") {
        const realm = `http://${host}/token`;
        return new Response("{}", {
          status: 401,
          headers: { "www-authenticate": `Bearer realm="${realm}",service="test"` },
        });
      }
      return new Response(MANIFEST, {
        headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      });
    });
    const client = new RegistryClient(host, { username: "u", password: "p" });
    const m = await client.manifest("a/b", "v1");
    expect(m.digest).toBe(sha(MANIFEST));
    expect(m.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    const basic = `Basic ${Buffer.from("u:p").toString("base64")}`;
    expect(seen).toEqual([`token repository:a/b:pull ${basic}`]);
  });

  test("blob follows a redirect to another host without the Authorization header", async () => {
    const data = "layer bytes";
    let storageAuth: string | null = "unset";
    const storage = serve("127.0.0.2", (req) => {
      storageAuth = req.headers.get("authorization");
      return new Response(data);
    });
    const host = serve("127.0.0.1", (req) => {
      if (!req.headers.get("authorization")) {
        return new Response("", {
          status: 401,
          headers: { "www-authenticate": 'Basic realm="r"' },
        });
      }
      return new Response(null, { status: 307, headers: { location: `http://${storage}/blob` } });
    });
    const client = new RegistryClient(host, { username: "u", password: "p" });
    expect(await text(await client.blob("x", sha(data)))).toBe(data);
    expect(storageAuth).toBeNull();
  });

  test("manifest refuses content that does not match the digest asked for", async () => {
    const host = serve("127.0.0.1", () => new Response(MANIFEST));
    const client = new RegistryClient(host, null);
    const other = sha("other");
    await expect(client.manifest("x", other)).rejects.toThrow(
      `digest mismatch for manifest "${other}": got "${sha(MANIFEST)}"`,
    );
  });

  const statuses: [number, RegExp][] = [
    [401, /^manifest "x:v": authentication required: no entry$/],
    [403, /^manifest "x:v": access denied: no entry$/],
    [404, /^manifest "x:v": not found: no entry$/],
    [429, /^manifest "x:v": too many requests, retry after 30s$/],
    [500, /^manifest "x:v": registry answered 500/],
  ];
  for (const [status, message] of statuses) {
    test(`manifest turns status ${status} into one line`, async () => {
      const body = JSON.stringify({ errors: [{ code: "X", message: "no entry" }] });
      const host = serve(
        "127.0.0.1",
        () => new Response(body, { status, headers: { "retry-after": "30" } }),
      );
      const client = new RegistryClient(host, null);
      await expect(client.manifest("x", "v")).rejects.toThrow(message);
    });
  }

  test("blob fails when the registry stops sending in the middle", async () => {
    process.env.TINYC_REGISTRY_TIMEOUT = "1";
    try {
      const host = serve("127.0.0.1", () => {
        const body = new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode("first part"));
          },
        });
        return new Response(body, { headers: { "content-length": "1000" } });
      });
      const client = new RegistryClient(host, null);
      const stream = await client.blob("x", sha("y"));
      await expect(text(stream)).rejects.toThrow(/no data for 1s/);
    } finally {
      delete process.env.TINYC_REGISTRY_TIMEOUT;
    }
  });

  test("a loopback registry is reached over http, others over https", () => {
    expect(registryBase("127.0.0.1:5000")).toBe("http://127.0.0.1:5000");
    expect(registryBase("[::1]:5000")).toBe("http://[::1]:5000");
    expect(registryBase("localhost")).toBe("http://localhost");
    expect(registryBase("docker.io")).toBe("https://registry-1.docker.io");
    process.env.TINYC_INSECURE_REGISTRIES = "reg.test:5000, other.test";
    try {
      expect(registryBase("reg.test:5000")).toBe("http://reg.test:5000");
      expect(registryBase("reg.test")).toBe("https://reg.test");
    } finally {
      delete process.env.TINYC_INSECURE_REGISTRIES;
    }
  });
});
