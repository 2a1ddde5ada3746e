/*
 * Small system calls Bun has no binding for: pidfds, file locks, and passing a descriptor over
 * a UNIX socket. Each returns 0 (or a new fd) or a negative errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tinyc.h"
#include "util.h"

int tc_pidfd_open(int32_t pid)
{
	int fd = syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

int tc_pidfd_signal(int32_t pidfd, int32_t sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int tc_flock(int32_t fd, int32_t op)
{
	int ret;

	do
		ret = flock(fd, op);
	while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : 0;
}

/* Connects to the console socket at PATH and sends FD with SCM_RIGHTS, as runc does. */
int tc_send_fd(const char *path, int32_t fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sock, err = 0;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		err = -errno;
	else
		err = send_fd_on(sock, fd, "/dev/ptmx", 9);
	close(sock);
	return err;
}

int tc_mkfifo(const char *path, uint32_t mode)
{
	return mkfifo(path, mode) < 0 ? -errno : 0;
}

/* A pair of connected UNIX sockets, both close-on-exec: out[0] for the parent, out[1] the child. */
int tc_socketpair(int32_t *out)
{
	int fds[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return -errno;
	out[0] = fds[0];
	out[1] = fds[1];
	return 0;
}

/* Sends FD with the byte "g" over SOCK: the go-ahead a child waits for in TC_OP_ATTACH_MOUNT. */
int tc_send_fd_sock(int32_t sock, int32_t fd)
{
	return send_fd_on(sock, fd, "g", 1);
}

/* Receives one fd sent with SCM_RIGHTS; returns it, or a negative errno. */
int tc_recv_fd(int32_t sock)
{
	return recv_fd_on(sock);
}

/*
 * Loads an eBPF device program (BPF_PROG_TYPE_CGROUP_DEVICE) and attaches it to the cgroup
 * folder at PATH: cgroup v2's way of enforcing device rules.
 */
int tc_attach_device_filter(const char *path, const uint8_t *insns, uint32_t count)
{
	union bpf_attr attr;
	int prog, cg, err = 0;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = count;
	attr.license = (uint64_t)(uintptr_t)"Apache";
	prog = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (prog < 0)
		return -errno;
	cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		err = -errno;
		close(prog);
		return err;
	}
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cg;
	attr.attach_bpf_fd = prog;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr)) < 0)
		err = -errno;
	close(cg);
	close(prog);
	return err;
}

/* lsetxattr: sets an extended attribute of PATH itself, never of what a symlink names. */
int tc_lsetxattr(const char *path, const char *name, const uint8_t *value, uint32_t len)
{
	return lsetxattr(path, name, value, len, 0) < 0 ? -errno : 0;
}

int tc_mknod(const char *path, uint32_t mode, uint64_t dev)
{
	return mknod(path, mode, dev) < 0 ? -errno : 0;
}

#define RUN_MAX_ARGS 256

/*
 * Runs NPROGS programs at once and waits for all of them: newuidmap and newgidmap, which are
 * quicker started from here than through the runtime's own process machinery. PROGS holds each
 * program's arguments as NUL-terminated strings, the first an absolute path, and an empty
 * string after the last. Their stdin and stdout are /dev/null; what they write on stderr (the
 * first ERRLEN - 1 bytes) ends up in ERR. STATUS gets each wait status.
 */
int tc_run_all(const char *progs, uint32_t nprogs, int32_t *status, char *err, uint64_t errlen)
{
	char *argv[RUN_MAX_ARGS];
	pid_t pids[8];
	posix_spawn_file_actions_t fa;
	int pipefd[2], ret = 0, n = 0, st;
	uint32_t i, started = 0;
	const char *p = progs;
	ssize_t got;

	if (nprogs > 8 || errlen == 0)
		return -EINVAL;
	err[0] = 0;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	for (i = 0; i < nprogs; i++) {
		int argc = 0;

		while (*p && argc < RUN_MAX_ARGS - 1) {
			argv[argc++] = (char *)p;
			p += strlen(p) + 1;
		}
		argv[argc] = NULL;
		p++;
		if (argc == 0) {
			ret = -EINVAL;
			break;
		}
		ret = -posix_spawn(&pids[i], argv[0], &fa, NULL, argv, (char *[]){ NULL });
		if (ret < 0)
			break;
		started++;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	for (i = 0; i < started; i++) {
		while (waitpid(pids[i], &st, 0) < 0)
			if (errno != EINTR) {
				st = -1;
				break;
			}
		status[i] = st;
	}
	/* Every writer has ended: this reads what they wrote, up to the end. */
	while (n < (int)errlen - 1 && (got = read(pipefd[0], err + n, errlen - 1 - n)) > 0)
		n += got;
	err[n] = 0;
	close(pipefd[0]);
	return ret;
}
