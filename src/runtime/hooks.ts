// OCI hooks: each gets the container's state JSON on stdin and runs with its own args and env.
// prestart, createRuntime, poststart and poststop run here, in the runtime's namespaces;
// createContainer and startContainer run inside the container's namespaces, started by the
// same plan executor as `exec`.

import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pollStatus, waitStatus } from "../../ffi/spawn";
import { TinycError } from "../errors";
import { log } from "../log";
import type { Hook, Hooks } from "../oci/config";
import { spawnJoined } from "./join";
import { containerMaps, namespacesToJoin } from "./nsjoin";
import { buildExecPlan } from "./plan";

export type Phase = keyof Hooks;

export interface HookState {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/** Where a hook's stdin and output are kept while it runs. */
export interface HookContext {
  dir: string;
  /** For the phases that run inside the container: the pid whose namespaces are joined. */
  containerPid?: number;
}

const inContainer = new Set<Phase>(["createContainer", "startContainer"]);

/**
 * Runs the hooks of PHASE in order. The first failure throws (the phases before the program
 * runs must stop the container), with the hook's last output line.
 */
export async function runHooks(
  hooks: Hooks | undefined,
  phase: Phase,
  state: HookState,
  ctx: HookContext,
): Promise<void> {
  const list = hooks?.[phase] ?? [];
  for (const [i, hook] of list.entries()) {
    try {
      await runHook(hook, JSON.stringify(state), phase, ctx);
    } catch (e) {
      const msg = e instanceof TinycError ? e.message : String(e);
      throw new TinycError(`${phase} hook ${i} ${JSON.stringify(hook.path)}: ${msg}`);
    }
  }
}

/** The phases after the program ran: a failure is a warning, and the rest still run. */
export async function runHooksWarn(
  hooks: Hooks | undefined,
  phase: Phase,
  state: HookState,
  ctx: HookContext,
): Promise<void> {
  for (const [i, hook] of (hooks?.[phase] ?? []).entries()) {
    try {
      await runHook(hook, JSON.stringify(state), phase, ctx);
    } catch (e) {
      const msg = e instanceof TinycError ? e.message : String(e);
      log("warn", `${phase} hook ${i} ${JSON.stringify(hook.path)}: ${msg}`);
    }
  }
}

async function runHook(hook: Hook, state: string, phase: Phase, ctx: HookContext) {
  const stdin = join(ctx.dir, `hook-${process.pid}.in`);
  const output = join(ctx.dir, `hook-${process.pid}.out`);
  writeFileSync(stdin, state, { mode: 0o600 });
  writeFileSync(output, "", { mode: 0o600 });
  const inFd = openSync(stdin, "r");
  const outFd = openSync(output, "w");
  try {
    const status = inContainer.has(phase)
      ? await waitWithTimeout(spawnInContainer(hook, ctx.containerPid!, inFd, outFd), hook.timeout)
      : await spawnHere(hook, inFd, outFd);
    if (status === undefined) throw new TinycError(`timed out after ${hook.timeout}s`);
    if (status !== 0) {
      const last = readFileSync(output, "utf8").trim().split("\n").pop() ?? "";
      const how = (status & 0x7f) === 0 ? `exit status ${(status >> 8) & 0xff}` : `signal ${status & 0x7f}`;
      throw new TinycError(last ? `${how}: ${last}` : how);
    }
  } finally {
    closeSync(inFd);
    closeSync(outFd);
    rmSync(stdin, { force: true });
    rmSync(output, { force: true });
  }
}

/** Runs a hook as a child of ours; its wait status, or undefined after its timeout. */
async function spawnHere(hook: Hook, inFd: number, outFd: number): Promise<number | undefined> {
  const args = hook.args && hook.args.length > 0 ? hook.args : [hook.path];
  const env: Record<string, string> = {};
  for (const e of hook.env ?? []) {
    const at = e.indexOf("=");
    if (at > 0) env[e.slice(0, at)] = e.slice(at + 1);
  }
  let p;
  try {
    p = Bun.spawn([hook.path, ...args.slice(1)], {
      argv0: args[0],
      env,
      stdin: inFd,
      stdout: outFd,
      stderr: outFd,
    });
  } catch (e) {
    throw new TinycError(`cannot run: ${(e as Error).message}`);
  }
  let timedOut = false;
  const timer = hook.timeout
    ? setTimeout(() => {
        timedOut = true;
        p.kill("SIGKILL");
      }, hook.timeout * 1000)
    : undefined;
  await p.exited;
  clearTimeout(timer);
  if (timedOut) return undefined;
  const sig = p.signalCode ? (require("node:os").constants.signals[p.signalCode] ?? 9) : 0;
  return sig ? sig : (p.exitCode ?? 0) << 8;
}

function spawnInContainer(hook: Hook, pid: number, inFd: number, outFd: number): number {
  const join = namespacesToJoin(pid);
  const plan = buildExecPlan(
    {
      args: hook.args && hook.args.length > 0 ? hook.args : [hook.path],
      env: hook.env ?? [],
      cwd: "/",
      user: { uid: 0, gid: 0 },
    },
    {
      pid,
      join,
      userns: join.includes("user") ? containerMaps(pid) : undefined,
      preserveFds: 0,
      program: hook.path,
      stdio: [inFd, outFd, outFd],
    },
  );
  return spawnJoined(plan);
}

/** The wait status, or undefined when the hook was killed for running past its timeout. */
async function waitWithTimeout(pid: number, timeout?: number): Promise<number | undefined> {
  const deadline = timeout ? Date.now() + timeout * 1000 : Infinity;
  let pause = 1;
  for (;;) {
    const status = pollStatus(pid);
    if (status !== undefined) return status;
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      waitStatus(pid, false);
      return undefined;
    }
    await Bun.sleep(pause);
    pause = Math.min(pause * 2, 20);
  }
}

export function hasHooks(hooks: Hooks | undefined, ...phases: Phase[]): boolean {
  return phases.some((p) => (hooks?.[p]?.length ?? 0) > 0);
}

/** The three phases that run between the namespaces being made and the pivot. */
export async function runCreateHooks(
  hooks: Hooks | undefined,
  state: HookState,
  dir: string,
): Promise<void> {
  await runHooks(hooks, "prestart", state, { dir });
  await runHooks(hooks, "createRuntime", state, { dir });
  await runHooks(hooks, "createContainer", state, { dir, containerPid: state.pid });
}
