// The profile a container gets when it asks for none: Docker's default, as Docker applies it to
// a container without added capabilities. Calls not listed fail with EPERM (ENOSYS when newer
// than any listed, so that libc falls back). Left out are the calls Docker grants only with a
// capability (mount, unshare, setns, bpf, perf_event_open, modules, clock setting, ...): a
// rootless container holds those capabilities only inside its user namespace, and refusing the
// calls shrinks what a container can reach of the kernel. io_uring is left out too, as Docker
// and containerd have done since 2023: its requests run beside the filter, unchecked.

import type { Seccomp, SeccompSyscall } from "../oci/config";

// Calls allowed whatever their arguments. Names a table lacks (32-bit variants on x86_64,
// x86-only calls on aarch64, calls newer than the tables) are skipped by the compiler.
const ALLOWED = [
  // files and folders
  "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
  "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
  "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
  "fcntl", "fcntl64", "fdatasync", "flock", "fstat", "fstat64", "fstatat64", "fstatfs",
  "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents",
  "getdents64", "lchown", "lchown32", "link", "linkat", "_llseek", "lseek", "lstat", "lstat64",
  "mkdir", "mkdirat", "mknod", "mknodat", "name_to_handle_at", "newfstatat", "open", "openat",
  "openat2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read",
  "readahead", "readlink", "readlinkat", "readv", "rename", "renameat", "renameat2", "rmdir",
  "sendfile", "sendfile64", "splice", "stat", "stat64", "statfs", "statfs64", "statx",
  "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "truncate64",
  "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vmsplice",
  "write", "writev", "cachestat",
  // extended attributes
  "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr", "listxattr",
  "llistxattr", "lremovexattr", "lsetxattr", "removexattr", "setxattr", "getxattrat",
  "listxattrat", "removexattrat", "setxattrat",
  // waiting for files and events
  "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
  "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark", "inotify_add_watch",
  "inotify_init", "inotify_init1", "inotify_rm_watch", "_newselect", "pipe", "pipe2", "poll",
  "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "signalfd", "signalfd4",
  // asynchronous I/O
  "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
  "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set",
  // memory
  "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
  "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal",
  "msync", "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
  "remap_file_pages",
  // processes, threads and signals
  "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork",
  "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
  "get_robust_list", "get_thread_area", "getcpu", "getpgid", "getpgrp", "getpid", "getppid",
  "getpriority", "getrlimit", "getrusage", "getsid", "gettid", "kill", "modify_ldt", "pause",
  "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "process_mrelease",
  "process_vm_readv", "process_vm_writev", "ptrace", "restart_syscall", "rseq", "rt_sigaction",
  "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
  "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_get_priority_max",
  "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
  "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
  "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
  "seccomp", "set_robust_list", "set_thread_area", "set_tid_address", "setpgid",
  "setpriority", "setrlimit", "setsid", "sigaltstack", "sigprocmask", "sigreturn", "tgkill",
  "tkill", "ugetrlimit", "vfork", "wait4", "waitid", "waitpid",
  // users and groups
  "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
  "getgroups32", "getresgid", "getresgid32", "getresuid", "getresuid32", "getuid", "getuid32",
  "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
  "setgroups32", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
  "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32",
  // time
  "adjtimex", "alarm", "clock_adjtime", "clock_adjtime64", "clock_getres",
  "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
  "clock_nanosleep_time64", "getitimer", "gettimeofday", "nanosleep", "setitimer", "time",
  "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
  "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
  "timerfd_settime", "timerfd_settime64", "times",
  // sockets (socket itself is below)
  "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
  "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg",
  "sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
  // System V and POSIX IPC
  "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
  "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
  "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
  "shmget",
  // the rest
  "getrandom", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
  "sysinfo", "uname",
  // 32-bit ARM tasks on aarch64, for runtimes with an ARM table; tinyc's filter kills those tasks
  "arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls",
  "sync_file_range2",
];

const AF_VSOCK = 40;

// The namespace flags: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NAMESPACES = 0x7e020000;

// personality(2): PER_LINUX and PER_LINUX32, each with or without UNAME26, and 0xffffffff, which
// only reads the current value. Anything else (ADDR_NO_RANDOMIZE, say) is refused.
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/**
 * Docker's default seccomp profile for a machine ("x86_64" or "aarch64"), without the
 * capability-gated groups. The caller owns the returned object.
 */
export function defaultSeccompProfile(arch = "x86_64"): Seccomp {
  const syscalls: SeccompSyscall[] = [
    { names: [...ALLOWED], action: "SCMP_ACT_ALLOW" },
    // The kernel reads the family as an int: compare the low word only, or 40 with any high
    // bit set would pass a 64-bit "not 40" and still create a vsock socket.
    {
      names: ["socket"],
      action: "SCMP_ACT_ERRNO",
      errnoRet: 1,
      args: [{ index: 0, value: 0xffffffff, valueTwo: AF_VSOCK, op: "SCMP_CMP_MASKED_EQ" }],
    },
    { names: ["socket"], action: "SCMP_ACT_ALLOW" },
    ...PERSONALITIES.map((value) => ({
      names: ["personality"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value, op: "SCMP_CMP_EQ" }],
    })),
    // Threads and forks, but no new namespaces: those take unshare(2), refused here.
    {
      names: ["clone"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value: CLONE_NAMESPACES, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
    },
    // clone3 keeps its flags in memory, out of the filter's reach. ENOSYS makes glibc fall back
    // to clone, whose flags are checked above.
    { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
  ];
  const architectures =
    arch === "aarch64" || arch === "arm64"
      ? ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
      : ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
  return { defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1, architectures, syscalls };
}
