/*
 * The launch plan: the one definition of the byte layout that ffi/plan.ts encodes and
 * cshim/exec.c executes.
 *
 *   struct tc_plan_header
 *   struct tc_step[nsteps]
 *   data area: NUL-terminated strings, lists and blobs, each 8-byte aligned
 *
 * Every reference into the data area is a byte offset from the start of the plan; 0 means
 * "none". A list is { uint32 count; uint32 pad; uint64 slot[count + 1] } whose slots hold
 * string offsets; the executor turns them into pointers in place, so a list can be passed to
 * execve as it is. A blob is { uint32 length; uint32 pad; bytes }.
 */
#ifndef TINYC_H
#define TINYC_H

#include <stdint.h>

#define TC_PLAN_MAGIC 0x4e4c5054u /* "TPLN" */
#define TC_PLAN_VERSION 1

/* Header flags. */
#define TC_PLAN_FORK_AFTER_SETNS 0x1 /* fork once more after joining namespaces (pid join) */
#define TC_PLAN_NEW_SESSION 0x4      /* setsid in the child */

struct tc_plan_header {
	uint32_t magic;
	uint32_t version;
	uint32_t nsteps;
	uint32_t flags;
	uint64_t clone_flags; /* CLONE_NEW* for the namespaces to create */
	uint64_t total_size;
	uint32_t root;        /* offset of the rootfs path, for TC_F_IN_ROOT before the pivot */
	uint32_t reserved;
};

enum tc_op {
	TC_OP_SETNS = 1,      /* s1 = namespace path, a = CLONE_NEW* type */
	TC_OP_WAIT_PARENT,    /* block until the parent writes one byte on the sync pipe */
	TC_OP_WRITE_FILE,     /* s1 = path, s2 = content; flags: TC_F_PROC_ONLY, TC_F_IGNORE_ENOENT */
	TC_OP_SETRESID_ROOT,  /* setresgid(0) and setresuid(0) inside a new user namespace */
	TC_OP_MOUNT,          /* s1 = source, s2 = target, s3 = fstype, s4 = data, a = MS_* flags,
			       * b = MOUNT_ATTR_* set afterwards (keeping locked flags), c = offset of
			       * the source bound instead when a new instance is refused */
	TC_OP_MOUNT_ATTR,     /* s2 = target, b = MOUNT_ATTR_* to set */
	TC_OP_PROPAGATION,    /* s2 = target, a = MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE | MS_REC */
	TC_OP_SYMLINK,        /* s1 = link text, s2 = link path in the rootfs */
	TC_OP_MKNOD,          /* s2 = path in the rootfs, a = mode, b = dev, c = uid << 32 | gid */
	TC_OP_PIVOT_ROOT,     /* s1 = rootfs; flags: TC_F_NO_PIVOT uses MS_MOVE + chroot */
	TC_OP_SETHOSTNAME,    /* s1 = name */
	TC_OP_SETDOMAINNAME,  /* s1 = name */
	TC_OP_MASK_PATH,      /* s2 = path; a folder gets a read-only tmpfs, a file /dev/null */
	TC_OP_READONLY_PATH,  /* s2 = path; bound on itself and made read-only */
	TC_OP_RLIMIT,         /* a = resource, b = soft, c = hard */
	TC_OP_CHDIR,          /* s1 = path, resolved without magic links; flags: TC_F_CREATE */
	TC_OP_CAP_BOUNDING,   /* a = low 64 bits of the set to keep */
	TC_OP_SETGROUPS,      /* s1 = blob of uint32 gids */
	TC_OP_SETGID,         /* a = gid */
	TC_OP_SETUID,         /* a = uid (capabilities kept across the change) */
	TC_OP_CAPS,           /* a = effective, b = permitted, c = inheritable, d = ambient */
	TC_OP_UMASK,          /* a = mask */
	TC_OP_NO_NEW_PRIVS,
	TC_OP_SECCOMP,        /* s1 = blob of struct sock_filter, a = seccomp filter flags */
	TC_OP_OPEN_FIFO,      /* s1 = path of the start fifo, opened now and waited on by TC_OP_READY */
	TC_OP_READY,          /* report "ready" to the parent, then wait for a byte on the fifo */
	TC_OP_CLOSE_FDS,      /* a = first fd to keep open after exec beyond 2 (preserve-fds count) */
	TC_OP_CONSOLE,        /* a = socket to the parent: a terminal is made from the container's
			       * /dev/ptmx, its master sent over a, its slave made the controlling
			       * terminal, stdin/stdout/stderr and (unless
			       * TC_F_KEEP_CONSOLE) /dev/console */
	TC_OP_EXEC,           /* s1 = argv list, s2 = envp list, s3 = PATH used to find argv[0] */
	TC_OP_DUP2,           /* a = from fd, b = to fd */
	TC_OP_NON_DUMPABLE,   /* no other process may open /proc/PID/exe or ptrace the child */
	TC_OP_FIND_EXEC,      /* s1 = argv list, s3 = PATH, s4 = program if not argv[0]: find it now */
	TC_OP_SYNC,           /* report TC_REPORT_SYNC, then wait like TC_OP_WAIT_PARENT (hooks) */
	TC_OP_PDEATHSIG,      /* a = signal the program gets when tinyc dies (a foreground run) */
	TC_OP_UNSHARE,        /* a = CLONE_NEW* flags of namespaces to make now */
	TC_OP_RUN,            /* s1 = argv list, s2 = envp list: run the program TC_OP_FIND_EXEC
			       * found and wait for it; a status other than 0 fails the step */
	TC_OP_SEND_MOUNT,     /* s1 = mount point, a = socket: a detached copy of the mount is sent
			       * over a (SCM_RIGHTS), and the mount itself is lazily unmounted */
	TC_OP_ATTACH_MOUNT,   /* s2 = target: wait for the parent's byte with a mount fd on the sync
			       * socket, and attach that mount on the target */
	TC_OP_EXIT,           /* a = exit status (a plan that runs no program of its own) */
	TC_OP_LOOPBACK_UP,    /* bring up "lo" of the container's new network namespace */
	TC_OP_TAP_PERSIST,    /* s1 = name: make a persistent tap device for the network helper */
};

/* Step flags. */
#define TC_F_IN_ROOT 0x1        /* the target is a path inside the rootfs, resolved there */
#define TC_F_MKDIR 0x2          /* create the target (and parents) as a folder if missing */
#define TC_F_MKFILE 0x4         /* create the target as an empty file if missing */
#define TC_F_NO_SYMLINKS 0x8    /* refuse a target with any symlink in it (proc, sysfs) */
#define TC_F_RECURSIVE 0x10     /* attributes apply to the whole mount tree */
#define TC_F_IGNORE_ENOENT 0x20 /* a missing target is not an error */
#define TC_F_PROC_ONLY 0x40     /* the file must be on procfs (sysctl, oom_score_adj) */
#define TC_F_CREATE 0x80        /* chdir: create the folder if missing */
#define TC_F_NO_PIVOT 0x100
#define TC_F_FALLBACK 0x200     /* on EPERM or EACCES, rbind the fallback source instead */
#define TC_F_COPYUP 0x400       /* copy what the target held into the new mount (tmpcopyup) */
#define TC_F_DUMPABLE_WAIT 0x800 /* ready: dumpable while waiting for start (hooks join it) */
#define TC_F_KEEP_CONSOLE 0x1000 /* console: leave /dev/console alone (a process joining a container) */

struct tc_step {
	uint32_t op;
	uint32_t flags;
	uint32_t s1, s2, s3, s4; /* offsets of strings or blobs, 0 for none */
	uint64_t a, b, c, d;
};

/* What the child sends back on the report pipe. */
#define TC_REPORT_ERROR 1
#define TC_REPORT_READY 2
#define TC_REPORT_PID 3 /* the pid of the grandchild, after TC_PLAN_FORK_AFTER_SETNS */
#define TC_REPORT_SYNC 4 /* the parent has work to do (hooks) before the child goes on */

struct tc_report {
	uint32_t kind;
	int32_t step; /* index of the step that failed, -1 for the set-up before the first */
	int32_t err;  /* errno */
	int32_t pid;     /* for TC_REPORT_ERROR of TC_OP_RUN: the program's wait status */
	char path[4000]; /* the whole record stays under PIPE_BUF */
};

/* Exported to TypeScript through bun:ffi. Each returns 0 or a negative errno. */
int tc_spawn(uint8_t *plan, uint64_t len, int32_t *out);
#define TC_WAIT_FORWARD 1 /* pass signals on to the process meanwhile */
#define TC_WAIT_NOHANG 2  /* return 1 at once if it has not ended */
int tc_wait(int32_t pid, int32_t *status, int32_t options);
int tc_strerror(int32_t err, char *buf, uint64_t len);
int tc_forward(int32_t pid);
int tc_forward_stop(void);
int32_t tc_signals(int32_t which);
int tc_socketpair(int32_t *out);
int tc_recv_fd(int32_t sock);
int tc_send_fd_sock(int32_t sock, int32_t fd);
int tc_run_all(const char *progs, uint32_t nprogs, int32_t *status, char *err, uint64_t errlen);
int tc_attach_device_filter(const char *path, const uint8_t *insns, uint32_t count);
int tc_relay(int32_t master, int32_t pid, int32_t *status, const uint8_t *keys, uint32_t nkeys,
	     int32_t keeper);
int tc_keeper(int32_t *out);
int tc_keeper_watch(int32_t sock, int32_t pid);
int tc_keeper_detach(int32_t sock, int32_t master);
int tc_keeper_quit(int32_t sock, int32_t pid);
int tc_set_dumpable(int32_t on);
int tc_pidfd_open(int32_t pid);
int tc_pidfd_signal(int32_t pidfd, int32_t sig);
int tc_flock(int32_t fd, int32_t op);
int tc_send_fd(const char *path, int32_t fd);
int tc_mkfifo(const char *path, uint32_t mode);
int tc_lsetxattr(const char *path, const char *name, const uint8_t *value, uint32_t len);
int tc_mknod(const char *path, uint32_t mode, uint64_t dev);

#endif
