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
			       SIGTERM, SIGCONT, SIGALRM, SIGTSTP };
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

/* The caller's terminal: raw while the relay runs, and as it was whenever the relay stops. */
struct term {
	int is_tty;
	struct termios orig;
};

static void term_raw(struct term *t, int master)
{
	struct termios raw = t->orig;

	cfmakeraw(&raw);
	tcsetattr(0, TCSANOW, &raw);
	copy_winsize(0, master);
}

static void term_restore(struct term *t)
{
	if (t->is_tty)
		tcsetattr(0, TCSANOW, &t->orig);
}

/* Stopped from outside (SIGTSTP to tinyc): the terminal is given back until SIGCONT. */
static void stop_self(struct term *t, int master)
{
	term_restore(t);
	kill(getpid(), SIGSTOP);
	if (t->is_tty)
		term_raw(t, master);
}

/*
 * Input for the container, with the detach sequence taken out: bytes that may begin it are held
 * back until it is complete (detach: returns 1) or broken (they go on, as typed).
 */
struct keys {
	const uint8_t *seq;
	uint32_t len, matched;
};

static int pass_input(struct keys *k, int master, const char *buf, ssize_t n)
{
	ssize_t i, from = 0;

	if (k->len == 0)
		return write_all(master, buf, n) < 0 ? -1 : 0;
	for (i = 0; i < n; i++) {
		if ((uint8_t)buf[i] == k->seq[k->matched]) {
			if (i > from)
				write_all(master, buf + from, i - from);
			from = i + 1;
			if (++k->matched == k->len)
				return 1;
			continue;
		}
		if (k->matched > 0) {
			write_all(master, (const char *)k->seq, k->matched);
			k->matched = 0;
			if ((uint8_t)buf[i] == k->seq[0]) {
				if (i > from)
					write_all(master, buf + from, i - from);
				from = i + 1;
				k->matched = 1;
			}
		}
	}
	if (n > from)
		write_all(master, buf + from, n - from);
	return 0;
}

/*
 * Relays stdin to MASTER and MASTER to stdout until PID exits, with the caller's terminal in
 * raw mode (restored before returning, and while tinyc is stopped). Window size changes are
 * passed on; SIGINT, SIGTERM and the like go to PID. Stores PID's wait status and returns 0.
 *
 * Typing the NKEYS bytes of KEYS (on a terminal) detaches: the container is left running, its
 * master goes to the keeper on the socket KEEPER (one is started if KEEPER is -1), and the
 * return is 1. When the caller's terminal hangs up, the container's is hung up too, by closing
 * the master, so that a shell reading it ends.
 */
int tc_relay(int32_t master, int32_t pid, int32_t *status, const uint8_t *keys, uint32_t nkeys,
	     int32_t keeper)
{
	struct sigaction sa, old[NRELAYED];
	struct term t = { .is_tty = isatty(0) };
	struct keys k = { .seq = keys, .len = nkeys, .matched = 0 };
	int stdin_open = 1, st = 0, done = 0, ret = 0, detached = 0;
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

	if (t.is_tty && tcgetattr(0, &t.orig) == 0)
		term_raw(&t, master);
	else
		t.is_tty = 0;
	if (!t.is_tty)
		k.len = 0;

	while (!done && !detached) {
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
				if (sig == SIGWINCH && t.is_tty)
					copy_winsize(0, master);
				else if (sig == SIGTSTP)
					stop_self(&t, master);
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
				if (master >= 0 && pass_input(&k, master, buf, n) == 1)
					detached = 1;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				stdin_open = 0;
				if (t.is_tty && master >= 0) {
					/* Our terminal hung up: so does the container's. */
					close(master);
					master = -1;
				} else if (master >= 0) {
					/* End of input: the terminal's EOF character tells the program so. */
					char eof = 4;

					write_all(master, &eof, 1);
				}
			}
		}
		if (master < 0 && !done) {
			while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
				;
			done = 1;
		}
	}
	if (detached) {
		int32_t kp[2];

		if (keeper < 0 && tc_keeper(kp) == 0)
			keeper = kp[0];
		if (keeper >= 0)
			tc_keeper_detach(keeper, master);
	} else if (master >= 0) {
		int flags = fcntl(master, F_GETFL);

		fcntl(master, F_SETFL, flags | O_NONBLOCK);
		drain(master);
	}
	term_restore(&t);
	for (i = 0; i < NRELAYED; i++)
		sigaction(relayed[i], &old[i], NULL);
	close(signal_pipe[0]);
	close(signal_pipe[1]);
	*status = st;
	return ret < 0 ? ret : detached;
}
