import { writeSync } from "node:fs";
import { parseFlags } from "./args";
import { versionNumber } from "../version";
import { CAPABILITIES, NAMESPACE_TYPES } from "../oci/config";
import { MOUNT_OPTIONS } from "../runtime/mountopts";
import type { Command } from "./index";

/** What this build implements, in the OCI features format (runtime-spec features.md). */
function features(): Record<string, unknown> {
  return {
    ociVersionMin: "1.0.0",
    ociVersionMax: "1.1.0",
    hooks: ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    mountOptions: MOUNT_OPTIONS,
    linux: {
      namespaces: [...NAMESPACE_TYPES],
      capabilities: Object.keys(CAPABILITIES),
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: false },
      seccomp: {
        enabled: true,
        actions: ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
          "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
        operators: ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
          "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        archs: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
        knownFlags: ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        supportedFlags: ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: false } },
    },
    annotations: { "io.github.tinyc.version": versionNumber() },
  };
}

export const featuresCommand: Command = {
  help: "usage: tinyc features\n\nPrints the OCI features document of this build.\n",
  run(args) {
    const a = parseFlags("features", args, { boolean: ["help"], alias: { h: "help" } });
    if (a.help) {
      writeSync(1, this.help);
      return 0;
    }
    writeSync(1, JSON.stringify(features(), null, "    ") + "\n");
    return 0;
  },
};
