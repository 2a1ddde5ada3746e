// Config fields tinyc does not implement. Each is refused with "… not supported" rather than
// passed over, so a bundle never runs with less protection or fewer limits than it asked for.

import { existsSync, readFileSync } from "node:fs";
import { TinycError } from "../errors";
import type { Spec } from "../oci/config";

function nonEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.values(v as object).some(nonEmpty);
  return true;
}

function refuse(field: string, why?: string): never {
  throw new TinycError(`${field}: not supported${why ? ` (${why})` : ""}`);
}

function apparmorEnabled(): boolean {
  try {
    return readFileSync("/sys/module/apparmor/parameters/enabled", "utf8").trim() === "Y";
  } catch {
    return false;
  }
}

function selinuxEnabled(): boolean {
  return existsSync("/sys/fs/selinux/enforce");
}

export function checkSupported(spec: Spec): void {
  const linux = spec.linux ?? {};
  const p = spec.process;
  if (nonEmpty(linux.personality)) refuse("linux.personality");
  if (nonEmpty(linux.intelRdt)) refuse("linux.intelRdt");
  if (nonEmpty(linux.timeOffsets)) refuse("linux.timeOffsets");
  if (nonEmpty(p?.scheduler)) refuse("process.scheduler");
  if (nonEmpty(p?.ioPriority)) refuse("process.ioPriority");
  if (nonEmpty(p?.execCPUAffinity)) refuse("process.execCPUAffinity");
  // A profile for a module the host does not run has nothing to apply, as runc treats it.
  if (p?.apparmorProfile && apparmorEnabled()) refuse("process.apparmorProfile");
  if (p?.selinuxLabel && selinuxEnabled()) refuse("process.selinuxLabel");
  if (linux.mountLabel && selinuxEnabled()) refuse("linux.mountLabel");
}
