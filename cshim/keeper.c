/*
 * The keeper: a small process that stands beside a foreground run with a terminal. While tinyc
 * relays the terminal, the keeper watches a socket to it; if tinyc dies without a word (it was
 * killed), the keeper kills the container, which is what PR_SET_PDEATHSIG does for runs without
 * a terminal. When the user detaches, tinyc hands it the terminal's master instead, and the
 * keeper holds that open (and reads what the container writes to it, which nobody shows) until
 * the container closes its terminal: the container goes on as a detached one would, and its
 * terminal is not hung up when tinyc exits. It also keeps the caller's terminal settings from
 * before the relay made them raw, and puts them back if tinyc is killed.
 *
 * The keeper is a clone of the tinyc process, which has threads: like the container's child it
 * never returns into JavaScript and makes only plain system calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "tinyc.h"
#include "util.h"

#define KEEPER_STACK_SIZE (64 * 1024)

struct keeper_msg {
	char kind; /* 'p': watch this pid; 'd': detached, here is the master; 'q': done */
	int32_t pid;
};

/* One message, with the fd it carries (or -1); 0 bytes means tinyc is gone. */
static ssize_t receive(int sock, struct keeper_msg *m, int *fd)
{
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cmsg;
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	cmsg = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cmsg && cmsg->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
	return n;
}

/* Closes every fd but A and B (A < B). */
static void close_all_but(int a, int b)
{
	if (a > 0)
		syscall(SYS_close_range, 0, a - 1, 0);
	if (b > a + 1)
		syscall(SYS_close_range, a + 1, b - 1, 0);
	syscall(SYS_close_range, b + 1, ~0U, 0);
}

/*
 * Ours only: stdio on /dev/null, every fd of tinyc's closed but the socket and (in *tty) a
 * copy of the caller's terminal, no terminal signals.
 */
static void detach_from_tinyc(int sock, int *tty)
{
	struct sigaction sa;
	sigset_t none;
	int sig, null;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	for (sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD)
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	*tty = isatty(0) ? fcntl(0, F_DUPFD_CLOEXEC, 3) : -1;
	if (*tty < 0)
		close_all_but(sock, sock);
	else if (*tty < sock)
		close_all_but(*tty, sock);
	else
		close_all_but(sock, *tty);
	null = open("/dev/null", O_RDWR);
	if (null == 0) {
		dup2(0, 1);
		dup2(0, 2);
	}
}

/* Reads the master until every slave is closed: the container has left its terminal. */
static void hold_terminal(int master)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(master, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
	}
}

static int keeper_main(void *arg)
{
	int sock = *(int *)arg, pidfd = -1, fd, tty;
	struct termios saved;
	int have_saved = isatty(0) && tcgetattr(0, &saved) == 0;
	struct keeper_msg m;

	detach_from_tinyc(sock, &tty);
	for (;;) {
		ssize_t n = receive(sock, &m, &fd);

		if (n <= 0) {
			/* tinyc is gone without detaching: the container goes too. */
			if (pidfd >= 0)
				syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
			if (have_saved && tty >= 0)
				tcsetattr(tty, TCSANOW, &saved);
			_exit(0);
		}
		if (m.kind == 'p' && pidfd < 0) {
			pidfd = syscall(SYS_pidfd_open, m.pid, 0);
		} else if (m.kind == 'd') {
			close(sock);
			if (tty >= 0)
				close(tty); /* the caller's terminal is the caller's again */
			if (fd >= 0)
				hold_terminal(fd);
			_exit(0);
		} else if (m.kind == 'q') {
			_exit(0);
		}
	}
}

/* Starts a keeper; out[0] = tinyc's end of the socket (close-on-exec), out[1] = its pid. */
int tc_keeper(int32_t *out)
{
	int fds[2], err = 0;
	void *stack;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
		return -errno;
	stack = mmap(NULL, KEEPER_STACK_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		err = -errno;
		goto out;
	}
	pid = clone(keeper_main, (char *)stack + KEEPER_STACK_SIZE, SIGCHLD, &fds[1]);
	if (pid < 0)
		err = -errno;
	munmap(stack, KEEPER_STACK_SIZE);
	if (err == 0) {
		out[0] = fds[0];
		out[1] = pid;
		close(fds[1]);
		return 0;
	}
out:
	close(fds[0]);
	close(fds[1]);
	return err;
}

/* Tells the keeper which process to kill should tinyc die. */
int tc_keeper_watch(int32_t sock, int32_t pid)
{
	struct keeper_msg m = { .kind = 'p', .pid = pid };

	return send(sock, &m, sizeof(m), MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* The container is left running: the keeper takes the terminal's master and stays. */
int tc_keeper_detach(int32_t sock, int32_t master)
{
	struct keeper_msg m = { .kind = 'd' };
	int err = 0;

	if (master >= 0)
		err = send_fd_on(sock, master, (const char *)&m, sizeof(m));
	else if (send(sock, &m, sizeof(m), MSG_NOSIGNAL) < 0)
		err = -errno;
	return err;
}

/* The container ended (or was never started): the keeper leaves, and is reaped. */
int tc_keeper_quit(int32_t sock, int32_t pid)
{
	struct keeper_msg m = { .kind = 'q' };
	int st;

	send(sock, &m, sizeof(m), MSG_NOSIGNAL);
	close(sock);
	while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
		;
	return 0;
}
