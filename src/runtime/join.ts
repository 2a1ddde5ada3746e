// Starting a process inside a running container's namespaces (exec, and the hooks that run in
// the container): spawn the plan, learn the pid of the process that forked into the pid
// namespace, and turn a failed step into its error.

import { closeSync } from "node:fs";
import { encodePlan, PLAN, type Plan } from "../../ffi/plan";
import { closeChild, readReport, release, spawnPlan, waitStatus } from "../../ffi/spawn";
import { enterCgroup, type Cgroup } from "./cgroups";
import { stepError } from "./launch";

/**
 * Returns the pid of the program once it has exec'd; it is a child of this process. With a
 * cgroup, the process waits in its plan until it has been put there.
 */
export function spawnJoined(plan: Plan, cgroup?: Cgroup): number {
  const child = spawnPlan(encodePlan(plan));
  const forks = (plan.flags & PLAN.forkAfterSetns) !== 0;
  const place = (pid: number) => {
    try {
      if (cgroup) enterCgroup(cgroup, pid);
    } finally {
      release(child, true);
    }
  };
  if (cgroup && !forks) place(child.pid);
  let pid = child.pid;
  try {
    for (;;) {
      const r = readReport(child.reportFd);
      if (r === null) break;
      if (r.kind === "pid") {
        pid = r.pid;
        if (cgroup) place(pid);
      } else if (r.kind === "error") {
        if (pid !== child.pid) waitStatus(pid, false);
        waitStatus(child.pid, false);
        throw stepError(plan, r.step, r.errno, r.path);
      }
    }
  } finally {
    closeSync(child.reportFd);
    closeChild(child);
  }
  // The process that forked into the pid namespace has ended; the program is its sibling.
  if (pid !== child.pid) waitStatus(child.pid, false);
  return pid;
}
