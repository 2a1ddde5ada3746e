// Image references as docker reads them: [REGISTRY/]PATH[:TAG][@DIGEST]. A single name is an
// official image (docker.io/library/NAME), and a reference with neither tag nor digest means
// the tag "latest".

import { TinycError } from "../errors";

export interface Reference {
  /** "docker.io", "localhost:5000", "registry.example" */
  registry: string;
  /** "library/debian", "a/b" */
  repository: string;
  tag?: string;
  /** "sha256:<64 hex>" */
  digest?: string;
}

export const DEFAULT_REGISTRY = "docker.io";
export const DEFAULT_TAG = "latest";

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const HOST = new RegExp(`^(?:${LABEL}(?:\\.${LABEL})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);

function invalid(text: string, why: string): TinycError {
  return new TinycError(`invalid reference ${JSON.stringify(text)}: ${why}`);
}

/** Docker's rule: the first part names a registry when it has a dot or a port, or is localhost. */
function splitRegistry(name: string): [string, string] {
  const i = name.indexOf("/");
  const first = name.slice(0, i);
  const isHost =
    i >= 0 && (/[.:]/.test(first) || first === "localhost" || first.toLowerCase() !== first);
  if (!isHost) return [DEFAULT_REGISTRY, name];
  return [first === "index.docker.io" ? DEFAULT_REGISTRY : first, name.slice(i + 1)];
}

/** Splits "name:tag" at the last colon after the last slash (a port is not a tag). */
function splitTag(rest: string): [string, string | undefined] {
  const colon = rest.lastIndexOf(":");
  if (colon < 0 || colon < rest.lastIndexOf("/")) return [rest, undefined];
  return [rest.slice(0, colon), rest.slice(colon + 1)];
}

export function parseReference(text: string): Reference {
  if (!text) throw invalid(text, "empty");
  const at = text.indexOf("@");
  const digest = at >= 0 ? text.slice(at + 1) : undefined;
  const [name, tag] = splitTag(at >= 0 ? text.slice(0, at) : text);
  if (digest !== undefined && !DIGEST.test(digest)) throw invalid(text, "bad digest");
  if (tag !== undefined && !TAG.test(tag)) throw invalid(text, "bad tag");
  const [registry, path] = splitRegistry(name);
  if (!HOST.test(registry)) throw invalid(text, "bad registry host");
  const repository =
    registry === DEFAULT_REGISTRY && !path.includes("/") ? `library/${path}` : path;
  if (repository.length > 255) throw invalid(text, "repository name too long");
  for (const part of repository.split("/")) {
    if (part.toLowerCase() !== part) throw invalid(text, "repository name must be lowercase");
    if (!COMPONENT.test(part)) throw invalid(text, "bad repository name");
  }
  const ref: Reference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (!ref.tag && !ref.digest) ref.tag = DEFAULT_TAG;
  return ref;
}

/** "registry/repository" */
export function repositoryName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The full normalized form: docker.io/library/debian:latest, host:5000/a@sha256:... */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}

/** The repository as docker shows it: "debian", "user/app", "localhost:5000/app". */
export function familiarRepository(ref: Reference): string {
  if (ref.registry !== DEFAULT_REGISTRY) return repositoryName(ref);
  return ref.repository.startsWith("library/") ? ref.repository.slice(8) : ref.repository;
}

/** The reference as docker shows it: "debian:bookworm". */
export function familiarReference(ref: Reference): string {
  let s = familiarRepository(ref);
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}

/** A registry as `login` and credential files name it; docker's old index URL is docker.io. */
export function normalizeRegistry(text: string): string {
  let host = text.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  if (host === "index.docker.io" || host === "registry-1.docker.io") host = DEFAULT_REGISTRY;
  if (!HOST.test(host)) throw new TinycError(`invalid registry ${JSON.stringify(text)}`);
  return host;
}

/** Where the distribution API of a registry is: docker.io's lives on another host. */
export function apiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? "registry-1.docker.io" : registry;
}

export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}
