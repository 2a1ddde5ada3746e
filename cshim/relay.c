/*
 * Terminals: making a pseudo-terminal for a container, and the loop that relays it to the
 * caller's terminal while the container runs. The loop is C because the caller's JavaScript
 * thread waits in it: it needs poll(2) and waitpid(2) together, which Bun does not offer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "tinyc.h"

int tc_set_dumpable(int32_t on)
{
	return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0) < 0 ? -errno : 0;
}

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = sig;

	if (write(signal_pipe[1], &b, 1) < 0) {
		/* The pipe is full: the loop has signals enough to look at already. */
	}
	errno = saved;
}

static const int relayed[] = { SIGCHLD, SIGWINCH, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2,
			       SIGTERM, SIGCONT, SIGALRM };
#define NRELAYED (sizeof(relayed) / sizeof(relayed[0]))

static void copy_winsize(int from, int to)
{
	struct winsize ws;

	if (ioctl(from, TIOCGWINSZ, &ws) == 0)
		ioctl(to, TIOCSWINSZ, &ws);
}

/* Writes all of buf; a reader that went away only stops the output. */
static int write_all(int fd, const char *buf, ssize_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			poll(&p, 1, -1);
			continue;
		}
		if (w <= 0)
			return -1;
		buf += w;
		n -= w;
	}
	return 0;
}

/* Reads what the container wrote last; after its exit the master gives EIO once it is empty. */
static void drain(int master)
{
	char buf[8192];
	ssize_t n;

	while ((n = read(master, buf, sizeof(buf))) > 0)
		if (write_all(1, buf, n) < 0)
			break;
}

/*
 * Relays stdin to MASTER and MASTER to stdout until PID exits, with the caller's terminal in
 * raw mode (restored before returning). Window size changes are passed on; SIGINT, SIGTERM and
 * the like go to PID. Stores PID's wait status.
 */
int tc_relay(int32_t master, int32_t pid, int32_t *status)
{
	struct sigaction sa, old[NRELAYED];
	struct termios orig, raw;
	int is_tty = isatty(0), stdin_open = 1, st = 0, done = 0, ret = 0;
	size_t i;
	char buf[8192];

	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	/* Signals held since before the container existed go to it now. */
	tc_forward(pid);
	tc_forward_stop();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < NRELAYED; i++)
		sigaction(relayed[i], &sa, &old[i]);

	if (is_tty && tcgetattr(0, &orig) == 0) {
		raw = orig;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
		copy_winsize(0, master);
	} else {
		is_tty = 0;
	}

	while (!done) {
		struct pollfd p[3] = {
			{ .fd = signal_pipe[0], .events = POLLIN },
			{ .fd = master, .events = POLLIN },
			{ .fd = stdin_open ? 0 : -1, .events = POLLIN },
		};

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (p[0].revents & POLLIN) {
			unsigned char sig;

			while (read(signal_pipe[0], &sig, 1) == 1) {
				if (sig == SIGWINCH && is_tty)
					copy_winsize(0, master);
				else if (sig != SIGCHLD && sig != SIGWINCH)
					kill(pid, sig);
			}
			if (waitpid(pid, &st, WNOHANG | __WALL) == pid)
				done = 1;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(master, buf, sizeof(buf));

			if (n > 0)
				write_all(1, buf, n);
			else if (n < 0 && errno != EINTR && errno != EAGAIN)
				p[1].fd = -1, master = -1; /* every slave closed: wait for the exit */
		}
		if (stdin_open && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(0, buf, sizeof(buf));

			if (n > 0) {
				write_all(master, buf, n);
			} else if (n == 0 || errno != EINTR) {
				/* End of input: the terminal's EOF character tells the program so. */
				char eof = 4;

				stdin_open = 0;
				if (!is_tty && master >= 0)
					write_all(master, &eof, 1);
			}
		}
		if (master < 0 && !done) {
			while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
				;
			done = 1;
		}
	}
	if (master >= 0) {
		int flags = fcntl(master, F_GETFL);

		fcntl(master, F_SETFL, flags | O_NONBLOCK);
		drain(master);
	}
	if (is_tty)
		tcsetattr(0, TCSANOW, &orig);
	for (i = 0; i < NRELAYED; i++)
		sigaction(relayed[i], &old[i], NULL);
	close(signal_pipe[0]);
	close(signal_pipe[1]);
	*status = st;
	return ret;
}
