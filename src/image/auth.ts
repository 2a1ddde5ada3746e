// Registry credentials: tinyc's own file ($XDG_CONFIG_HOME/tinyc/auth.json, mode 0600, in the
// shape of docker's config.json) first, then the "auths" of docker's config.json. Credential
// helpers (credsStore, credHelpers) are not run: their entries are passed over.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { TinycError, fromSystem } from "../errors";
import { normalizeRegistry } from "./reference";

export interface Credentials {
  username: string;
  password: string;
}

export function authFile(): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return path.join(base, "tinyc", "auth.json");
}

function dockerConfigFile(): string {
  const dir = process.env.DOCKER_CONFIG || path.join(os.homedir(), ".docker");
  return path.join(dir, "config.json");
}

interface AuthsFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string }>;
  [key: string]: unknown;
}

function readAuths(file: string, strict: boolean): AuthsFile {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
    if (!strict) return {};
    throw fromSystem(e, "read", file);
  }
  try {
    const data = JSON.parse(text);
    return data && typeof data === "object" ? data : {};
  } catch {
    if (!strict) return {};
    throw new TinycError(`${JSON.stringify(file)} is not valid JSON`);
  }
}

function decode(entry: {
  auth?: string;
  username?: string;
  password?: string;
}): Credentials | null {
  if (entry.username && entry.password)
    return { username: entry.username, password: entry.password };
  if (!entry.auth) return null;
  const text = Buffer.from(entry.auth, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon <= 0) return null;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function lookup(file: string, registry: string, strict: boolean): Credentials | null {
  const auths = readAuths(file, strict).auths ?? {};
  for (const [key, entry] of Object.entries(auths)) {
    let host: string;
    try {
      host = normalizeRegistry(key);
    } catch {
      continue;
    }
    if (host === registry && entry && typeof entry === "object") {
      const c = decode(entry);
      if (c) return c;
    }
  }
  return null;
}

/** The stored credentials for REGISTRY (normalized, "docker.io" for Docker Hub), if any. */
export function credentialsFor(registry: string): Credentials | null {
  return lookup(authFile(), registry, true) ?? lookup(dockerConfigFile(), registry, false);
}

function writeAuths(data: AuthsFile): void {
  const file = authFile();
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.auth-${randomBytes(6).toString("hex")}`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, JSON.stringify(data, null, 2) + "\n", { mode: 0o600, flag: "wx" });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw fromSystem(e, "write", file);
  }
}

export function saveCredentials(registry: string, c: Credentials): void {
  const data = readAuths(authFile(), true);
  data.auths = data.auths ?? {};
  data.auths[registry] = { auth: Buffer.from(`${c.username}:${c.password}`).toString("base64") };
  writeAuths(data);
}

/** Forgets REGISTRY's credentials; false when tinyc had none. */
export function removeCredentials(registry: string): boolean {
  const data = readAuths(authFile(), true);
  const key = Object.keys(data.auths ?? {}).find((k) => {
    try {
      return normalizeRegistry(k) === registry;
    } catch {
      return false;
    }
  });
  if (!key) return false;
  delete data.auths![key];
  writeAuths(data);
  return true;
}
