/*
 * tinyc-shim: stays with one container for its whole life, so the daemon that started it can
 * stop, crash or be upgraded without touching the container. It runs the runtime's `create`,
 * holds the container's stdio (pipes) or terminal, writes its output to a json-file log,
 * serves attach, resize, wait and exec requests on DIR/attach.sock, reaps the container and
 * records how it ended in DIR/exit.json.
 *
 *     tinyc-shim [--tty] [--stdin] [--stdin-once] [--log NAME] [--log-max-size BYTES]
 *                [--log-max-files N] DIR -- RUNTIME_ARGV...
 *
 * The caller's child exits 0 at once; the shim goes on in a session of its own, as a child
 * subreaper, with DIR as its working folder and only names relative to it. It writes shim.pid,
 * runs RUNTIME_ARGV (a `create` that leaves the container's process waiting for `start`, which
 * then becomes the shim's child) and writes one line to its stdout: "ok PID" (from init.pid)
 * or "error STATUS" (the runtime's exit status; 125 when the shim itself could not start it),
 * after which an error ends the shim with status 1.
 *
 * attach.sock takes one request per connection, named by its first byte:
 *   A FLAGS      attach: FLAGS 1 stdin, 2 stdout, 4 stderr, 8 acknowledge with an empty stdout
 *                frame. Output comes as frames [stream, 0, 0, 0, length BE32] + bytes (stream 1
 *                stdout, 2 stderr); the end is the exit frame [3, 0, 0, 0, 0, 0, 0, 4] + status
 *                BE32, then the shim closes. Bytes sent go to stdin; with --stdin-once the
 *                client's end of file closes stdin (with a terminal: its end-of-file
 *                character is written, ^D unless the terminal says otherwise).
 *   R ROWS COLS  (BE16 each) resize the terminal; answer 0 (done) or 1 (no terminal), close.
 *   W            the exit frame once the first process has exited.
 *   X FLAGS LEN BODY  exec: FLAGS 1 stdin, 2 terminal; BODY is LEN bytes of NUL-terminated
 *                strings: pid-file name, console-socket name (empty without a terminal), the
 *                runtime's argv. The connection then works as an attach to that process alone,
 *                and the end of the client's input closes its stdin.
 *   T N NAME ROWS COLS  resize the terminal of the exec whose pid-file name is NAME (N bytes).
 * Output of the first process also goes to the log as docker's json-file lines; an exec's
 * does not. exit.json records the first process's end; attach.sock and shim.pid go when the
 * shim ends.
 *
 * One process, one poll() loop, no threads; memory is a few small allocations, so a shim
 * costs about a megabyte of RSS, most of it shared.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define READ_CHUNK 16384          /* one read from the container; also the longest log entry */
#define READS_PER_WAKE 8          /* reads of one stream before others get a turn */
#define CLIENT_MAX_BUF (1 << 20)  /* output a client may owe before it is dropped */
#define CLIENT_BEHIND (1 << 19)   /* past this, the process's output waits for the client... */
#define STALL_MS 1000             /* ... unless it has taken nothing for this long: dropped */
#define DRAIN_MS 200              /* output still read after a process has exited */
#define FLUSH_MS 2000             /* time clients get to take their last frames */
#define EXEC_MAX_REQUEST 65536    /* longest exec request */
#define REAPED_KEPT 32            /* exits of pids not known yet (a pid file not read yet) */

#define ATTACH_SOCK "attach.sock"
#define CONSOLE_SOCK "console.sock"
#define INIT_PID_FILE "init.pid"

enum { STREAM_STDOUT = 1, STREAM_STDERR = 2, STREAM_EXIT = 3 };
enum { FLAG_STDIN = 1, FLAG_STDOUT = 2, FLAG_STDERR = 4, FLAG_ACK = 8 };
enum { EXEC_STDIN = 1, EXEC_TTY = 2 };

/* A process whose stdio the shim holds: the container's first process, or one exec. */
struct proc {
	pid_t runtime;      /* the runtime command while it runs */
	pid_t pid;          /* the process, once its pid file is read */
	int in, out, err;   /* our ends of its pipes, -1 when closed */
	int tty;            /* the terminal's master, -1 without */
	int listen;         /* the console socket while the master is awaited */
	int want_tty;
	int got_tty;        /* the master came (it may be closed again: the terminal has ended) */
	int started;        /* the runtime succeeded */
	int exited;         /* the process (or the failed runtime) has ended */
	int done;           /* its exit was reported */
	int code;           /* exit status: N, or 128+signal */
	int signal;
	long long deadline; /* ms: stop waiting for output after this */
	struct timespec when;
	char *pid_name, *sock_name;
};

enum kind {
	C_NEW, C_ATTACH_FLAGS, C_ATTACH, C_RESIZE, C_WAIT, C_EXEC_HEAD, C_EXEC_BODY, C_EXEC,
	C_EXEC_RESIZE
};

struct client {
	struct client *next;
	int fd;
	enum kind kind;
	unsigned char head[8];
	size_t head_len;
	unsigned flags;
	char *body;
	uint32_t body_len, body_got;
	char *out;          /* frames not yet taken by the client */
	size_t out_len, out_cap;
	char *pend;         /* stdin bytes the process has not taken yet */
	size_t pend_len, pend_off;
	int rd_eof;         /* the client closed its write side */
	int eof_pending;    /* ... and that must act once pend is written */
	int gone;           /* the client hung up altogether */
	int closing;        /* close once out is written */
	int dead;
	long long behind_at; /* ms: when it last took output while behind; 0 when not behind */
	struct proc *ex;    /* an exec's process */
};

struct reaped {
	pid_t pid;
	int status;
	struct timespec when;
};

static struct {
	int tty, want_stdin, stdin_once;
	const char *log_name;
	long long log_max;
	int log_files;
	int logfd;
	long long log_size;
	int sigfd, lfd, devnull;
	mode_t umask;
	struct proc init;
	int finished;           /* the first process's exit went out to the clients */
	long long flush_deadline;
	struct client *clients;
	struct reaped reaped[REAPED_KEPT];
	int reaped_next;
	char *rbuf;
} S;

static void die(const char *what)
{
	dprintf(2, "tinyc-shim: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void ready_line(const char *text);
static void shutdown_sockets(void);

/* Set-up failed once the caller's child has gone: the ready line says so. */
static void start_failed(const char *what)
{
	dprintf(2, "tinyc-shim: %s: %s\n", what, strerror(errno));
	ready_line("error 125\n");
	shutdown_sockets();
	exit(1);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* RFC 3339 in UTC with nanoseconds, always nine digits. */
static void format_time(const struct timespec *ts, char *out, size_t size)
{
	struct tm tm;
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, size - n, ".%09ldZ", ts->tv_nsec);
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The exit status as a shell shows it: N, or 128+signal. */
static void decode_status(int status, int *code, int *sig)
{
	*sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	*code = *sig ? 128 + *sig : WEXITSTATUS(status);
}

/* ---- The log: docker's json-file format, one object per line of output ---- */

/* Where escaped text goes: counted only, or written out through a small buffer. */
struct sink {
	char buf[4096];
	size_t len;
	size_t total;
	int fd; /* -1: count only */
};

static void sink_put(struct sink *k, const char *s, size_t n)
{
	k->total += n;
	if (k->fd < 0)
		return;
	while (n > 0) {
		size_t room = sizeof(k->buf) - k->len, take = n < room ? n : room;

		memcpy(k->buf + k->len, s, take);
		k->len += take;
		s += take;
		n -= take;
		if (k->len == sizeof(k->buf)) {
			write_all(k->fd, k->buf, k->len);
			k->len = 0;
		}
	}
}

/* Length of the valid UTF-8 sequence at s, or 0 when the byte there starts none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t need, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4;
	else
		return 0;
	/* The second byte's range rules out overlong forms, surrogates and anything past U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < need || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need;
}

/* JSON string escaping; a byte that is not part of valid UTF-8 becomes \ufffd, as in Go's encoder. */
static void json_escape(struct sink *k, const unsigned char *s, size_t n)
{
	size_t i = 0, run = 0;
	char esc[8];

	while (i < n) {
		unsigned char c = s[i];
		size_t len = utf8_len(s + i, n - i);

		if (len > 0 && c >= 0x20 && c != '"' && c != '\\') {
			i += len;
			run += len;
			continue;
		}
		sink_put(k, (const char *)s + i - run, run);
		run = 0;
		if (len == 0)
			sink_put(k, "\\ufffd", 6);
		else if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sink_put(k, esc, 2);
		} else if (c == '\n')
			sink_put(k, "\\n", 2);
		else if (c == '\r')
			sink_put(k, "\\r", 2);
		else if (c == '\t')
			sink_put(k, "\\t", 2);
		else {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sink_put(k, esc, 6);
		}
		i++;
	}
	sink_put(k, (const char *)s + i - run, run);
}

static void log_open(int truncate)
{
	int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0);
	struct stat st;

	S.logfd = open(S.log_name, flags, 0600);
	S.log_size = S.logfd >= 0 && fstat(S.logfd, &st) == 0 ? st.st_size : 0;
}

/* NAME.(n-2) -> NAME.(n-1), ..., NAME -> NAME.1, then a new NAME (with one file: NAME emptied). */
static void log_rotate(void)
{
	char from[PATH_MAX], to[PATH_MAX];
	int i;

	for (i = S.log_files - 1; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", S.log_name);
		else
			snprintf(from, sizeof(from), "%s.%d", S.log_name, i - 1);
		snprintf(to, sizeof(to), "%s.%d", S.log_name, i);
		rename(from, to);
	}
	close_fd(&S.logfd);
	log_open(1);
}

static void log_entry(int stream, const char *s, size_t n)
{
	const char *name = stream == STREAM_STDERR ? "stderr" : "stdout";
	struct timespec ts;
	char head[] = "{\"log\":\"", mid[64], when[48];
	struct sink sink = { .fd = -1 }, *k = &sink;
	size_t total;

	if (S.logfd < 0 || n == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	format_time(&ts, when, sizeof(when));
	snprintf(mid, sizeof(mid), "\",\"stream\":\"%s\",\"time\":\"", name);
	json_escape(k, (const unsigned char *)s, n);
	total = strlen(head) + k->total + strlen(mid) + strlen(when) + 3;
	if (S.log_max > 0 && S.log_size > 0 && S.log_size + (long long)total > S.log_max)
		log_rotate();
	if (S.logfd >= 0) {
		k->fd = S.logfd;
		k->total = 0;
		sink_put(k, head, strlen(head));
		json_escape(k, (const unsigned char *)s, n);
		sink_put(k, mid, strlen(mid));
		sink_put(k, when, strlen(when));
		sink_put(k, "\"}\n", 3);
		write_all(k->fd, k->buf, k->len);
		S.log_size += (long long)k->total;
	}
}

/*
 * Logs the complete lines of buf; the rest moves to the front and its length is returned, or,
 * with all set, it is logged too as a partial line.
 */
static size_t log_lines(int stream, char *buf, size_t len, int all)
{
	size_t start = 0;
	char *nl;

	while (start < len && (nl = memchr(buf + start, '\n', len - start))) {
		log_entry(stream, buf + start, (size_t)(nl - (buf + start)) + 1);
		start = (size_t)(nl - buf) + 1;
	}
	if (all) {
		log_entry(stream, buf + start, len - start);
		return 0;
	}
	memmove(buf, buf + start, len - start);
	return len - start;
}

/* ---- Clients ---- */

static void drop(struct client *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	close_fd(&c->fd);
}

/* Writes what the client is owed, as far as it takes it now. */
static void client_flush(struct client *c)
{
	size_t off = 0;

	while (off < c->out_len && c->fd >= 0) {
		ssize_t n = write(c->fd, c->out + off, c->out_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			drop(c);
			return;
		}
		off += (size_t)n;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
	if (c->out_len < CLIENT_BEHIND)
		c->behind_at = 0;
	else if (off > 0 || !c->behind_at)
		c->behind_at = now_ms();
	if (c->out_len == 0 && c->out_cap > 65536) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	if (c->out_len == 0 && c->closing)
		drop(c);
}

/* Queues one frame: 8-byte header (stream, 0, 0, 0, length big-endian) and the payload. */
static void client_frame(struct client *c, int stream, const void *data, size_t len)
{
	size_t need = c->out_len + 8 + len;
	unsigned char head[8] = { (unsigned char)stream, 0, 0, 0, (unsigned char)(len >> 24),
				  (unsigned char)(len >> 16), (unsigned char)(len >> 8),
				  (unsigned char)len };

	if (c->dead || c->closing)
		return;
	if (need > CLIENT_MAX_BUF) {
		/* A client that does not read holds up nobody: past its buffer it is dropped. */
		drop(c);
		return;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < need)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			drop(c);
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, head, 8);
	memcpy(c->out + c->out_len + 8, data, len);
	c->out_len = need;
	client_flush(c);
}

/* The exit frame: stream 3, length 4, the exit status as int32 big-endian; then close. */
static void client_exit(struct client *c, int code)
{
	unsigned char v[4] = { (unsigned char)((uint32_t)code >> 24), (unsigned char)(code >> 16),
			       (unsigned char)(code >> 8), (unsigned char)code };

	client_frame(c, STREAM_EXIT, v, 4);
	c->closing = 1;
	if (!c->dead && c->out_len == 0)
		drop(c);
}

/* ---- Processes ---- */

static void proc_init(struct proc *p)
{
	memset(p, 0, sizeof(*p));
	p->in = p->out = p->err = p->tty = p->listen = -1;
}

static int pipe_pair(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

/* A UNIX socket listening at NAME (relative to DIR), reachable only by the owner. */
static int listen_at(const char *name)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, err;

	if (strlen(name) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, name);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(name);
	old = umask(0177);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0;
	umask(old);
	if (err) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Takes the master from a connection on the console socket, if one is there. */
static void accept_console(struct proc *p)
{
	int conn = accept4(p->listen, NULL, NULL, SOCK_CLOEXEC);
	struct pollfd pfd = { .fd = conn, .events = POLLIN };
	int fd;

	if (conn < 0)
		return;
	/* The runtime sends at once; a connection that does not must not stall the shim. */
	fd = poll(&pfd, 1, 1000) == 1 ? recv_fd_on(conn) : -1;
	close(conn);
	if (fd < 0)
		return;
	close_fd(&p->tty);
	p->tty = fd;
	p->got_tty = 1;
	set_nonblock(fd);
	close_fd(&p->listen);
	if (p->sock_name)
		unlink(p->sock_name);
}

/*
 * Starts ARGV with cwd DIR and the given stdio; signals that the shim ignores or blocks are
 * back to their defaults in it, and so is the caller's umask.
 */
static pid_t spawn(char **argv, int in, int out, int err)
{
	pid_t pid = fork();
	sigset_t none;

	if (pid != 0)
		return pid;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	umask(S.umask);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(125);
	execvp(argv[0], argv);
	dprintf(2, "tinyc-shim: run %s: %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/*
 * Runs the runtime command for P: pipes for its stdio (stdin a pipe only with STDIN), or
 * with a terminal, a console socket to listen on first. The first process with a terminal
 * gets /dev/null for all three; an exec keeps pipes for stdout and stderr, which carry the
 * runtime's own errors to the client.
 */
static int proc_start(struct proc *p, char **argv, int with_stdin, int quiet_runtime)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int saved;

	if (p->want_tty) {
		p->listen = listen_at(p->sock_name);
		if (p->listen < 0)
			return -1;
	}
	if ((with_stdin && !p->want_tty && pipe_pair(in) < 0) ||
	    (!quiet_runtime && (pipe_pair(out) < 0 || pipe_pair(err) < 0)))
		goto fail;
	p->runtime = spawn(argv, in[0] >= 0 ? in[0] : S.devnull, out[1] >= 0 ? out[1] : S.devnull,
			   err[1] >= 0 ? err[1] : S.devnull);
	if (p->runtime < 0)
		goto fail;
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	if (p->in >= 0)
		set_nonblock(p->in);
	if (p->out >= 0)
		set_nonblock(p->out);
	if (p->err >= 0)
		set_nonblock(p->err);
	return 0;
fail:
	saved = errno;
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	close_fd(&p->listen);
	errno = saved;
	return -1;
}

static int proc_drained(struct proc *p)
{
	return p->out < 0 && p->err < 0 && p->tty < 0;
}

/* Closes the process's stdin: the pipe, or with a terminal, its end-of-file character. */
static void close_stdin(struct proc *p)
{
	if (p->tty >= 0) {
		struct termios t;
		char eof = 4;

		if (tcgetattr(p->tty, &t) == 0 && t.c_cc[VEOF])
			eof = (char)t.c_cc[VEOF];
		if (write(p->tty, &eof, 1) < 0) {
			/* The terminal is gone: nothing reads stdin any more. */
		}
		return;
	}
	close_fd(&p->in);
}

static int stdin_fd(struct proc *p)
{
	return p->tty >= 0 ? p->tty : p->in;
}

static struct proc *stdin_target(struct client *c)
{
	if (c->kind == C_ATTACH && (c->flags & FLAG_STDIN) && S.want_stdin)
		return &S.init;
	if (c->kind == C_EXEC && (c->flags & EXEC_STDIN))
		return c->ex;
	return NULL;
}

/* A process whose runtime still runs: stdin for a terminal it will have waits for the master. */
static int stdin_waits(struct proc *p)
{
	return p && p->want_tty && !p->started && !p->exited;
}

/* The client closed its write side. */
static void client_eof(struct client *c)
{
	struct proc *p = stdin_target(c);

	if (c->pend || stdin_waits(p)) {
		c->eof_pending = 1;
		return;
	}
	switch (c->kind) {
	case C_ATTACH:
		if (p && S.stdin_once)
			close_stdin(p);
		break;
	case C_EXEC:
		if (p)
			close_stdin(p);
		break;
	case C_WAIT:
		break;
	default:
		drop(c); /* a request cut short */
	}
	if (c->gone)
		drop(c);
}

/* Writes the client's pending stdin bytes as far as the process takes them. */
static void stdin_flush(struct client *c)
{
	struct proc *p = stdin_target(c);
	int fd = p ? stdin_fd(p) : -1;

	if (fd < 0 && stdin_waits(p))
		return;
	while (c->pend_off < c->pend_len) {
		ssize_t n;

		if (fd < 0) {
			c->pend_off = c->pend_len; /* nobody reads stdin: the bytes go nowhere */
			break;
		}
		n = write(fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			c->pend_off = c->pend_len;
			break;
		}
		c->pend_off += (size_t)n;
	}
	free(c->pend);
	c->pend = NULL;
	c->pend_len = c->pend_off = 0;
	if (c->eof_pending) {
		c->eof_pending = 0;
		client_eof(c);
	}
}

static void to_stdin(struct client *c, const char *data, size_t len)
{
	if (!stdin_target(c) || len == 0)
		return;
	c->pend = malloc(len);
	if (!c->pend)
		return;
	memcpy(c->pend, data, len);
	c->pend_len = len;
	c->pend_off = 0;
	stdin_flush(c);
}

/* Output of P on STREAM: frames to the clients attached to it, and for the container, the log. */
static void deliver(struct proc *p, int stream, const char *data, size_t len)
{
	struct client *c;

	for (c = S.clients; c; c = c->next) {
		if (c->dead)
			continue;
		if (p == &S.init && c->kind == C_ATTACH) {
			int want = stream == STREAM_STDERR ? FLAG_STDERR : FLAG_STDOUT;

			if (c->flags & want)
				client_frame(c, stream, data, len);
		} else if (c->kind == C_EXEC && c->ex == p) {
			client_frame(c, stream, data, len);
		}
	}
}

/*
 * Reads what is there on one of P's streams. Lines go to the log as they complete; a line
 * without its newline is logged once nothing more is there to read, or at 16 KiB.
 */
static void proc_read(struct proc *p, int *fd, int stream)
{
	size_t used = 0;
	int reads = 0;

	for (;;) {
		ssize_t n = read(*fd, S.rbuf + used, READ_CHUNK - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			deliver(p, stream, S.rbuf + used, (size_t)n);
			used += (size_t)n;
			if (p == &S.init)
				used = log_lines(stream, S.rbuf, used, used == READ_CHUNK);
			else
				used = 0;
			if (++reads < READS_PER_WAKE)
				continue;
			if (p == &S.init && used)
				log_lines(stream, S.rbuf, used, 1);
			return;
		}
		if (p == &S.init && used)
			log_lines(stream, S.rbuf, used, 1);
		/* End of file, or EIO from a terminal whose other side has closed. */
		if (n == 0 || errno != EAGAIN)
			close_fd(fd);
		return;
	}
}

static void proc_read_all(struct proc *p)
{
	if (p->out >= 0)
		proc_read(p, &p->out, STREAM_STDOUT);
	if (p->err >= 0)
		proc_read(p, &p->err, STREAM_STDERR);
	if (p->tty >= 0)
		proc_read(p, &p->tty, STREAM_STDOUT);
}

static void write_exit_json(struct proc *p)
{
	char when[48], text[256];
	int fd, n;

	format_time(&p->when, when, sizeof(when));
	n = snprintf(text, sizeof(text),
		     "{\"exitCode\":%d,\"signal\":%d,\"finishedAt\":\"%s\",\"pid\":%d}\n", p->code,
		     p->signal, when, (int)p->pid);
	fd = open("exit.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write_all(fd, text, (size_t)n) == 0 && fsync(fd) == 0) {
		close(fd);
		rename("exit.json.tmp", "exit.json");
		return;
	}
	close(fd);
	unlink("exit.json.tmp");
}

static void proc_exited(struct proc *p, int status, const struct timespec *when)
{
	decode_status(status, &p->code, &p->signal);
	p->exited = 1;
	p->when = *when;
	p->deadline = now_ms() + DRAIN_MS;
	if (p == &S.init)
		write_exit_json(p);
}

static pid_t read_pid_file(const char *name)
{
	char text[32];
	ssize_t n;
	long v;
	int fd = open(name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = 0;
	v = strtol(text, NULL, 10);
	return v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

/* An exit that was seen before its pid was known. */
static int take_reaped(pid_t pid, struct reaped *out)
{
	int i;

	for (i = 0; i < REAPED_KEPT; i++) {
		if (S.reaped[i].pid == pid) {
			*out = S.reaped[i];
			S.reaped[i].pid = 0;
			return 1;
		}
	}
	return 0;
}

static void ready_line(const char *text)
{
	write_all(1, text, strlen(text));
	dup2(S.devnull, 1);
	dup2(S.devnull, 2);
}

static void shutdown_sockets(void)
{
	close_fd(&S.lfd);
	unlink(ATTACH_SOCK);
	unlink("shim.pid");
	if (S.tty)
		unlink(CONSOLE_SOCK);
}

static void flush_stdin_of(struct proc *p)
{
	struct client *c;

	for (c = S.clients; c; c = c->next)
		if (!c->dead && (c->pend || c->eof_pending) && stdin_target(c) == p)
			stdin_flush(c);
}

/* The runtime command of P has ended with STATUS. */
static void runtime_done(struct proc *p, int status)
{
	int code, sig;
	struct reaped r;
	char line[32];

	decode_status(status, &code, &sig);
	p->runtime = 0;
	if (code == 0) {
		p->pid = read_pid_file(p->pid_name);
		if (p->want_tty && !p->got_tty && p->listen >= 0)
			accept_console(p);
		if (p->pid == 0 || (p->want_tty && !p->got_tty))
			code = 125; /* the runtime said yes but left no process or no terminal */
	}
	close_fd(&p->listen);
	if (p->want_tty)
		unlink(p->sock_name);
	if (p != &S.init)
		unlink(p->pid_name);
	if (code != 0) {
		p->code = code;
		p->exited = 1;
		p->deadline = now_ms() + DRAIN_MS;
		if (p != &S.init) {
			flush_stdin_of(p);
			return;
		}
		proc_read_all(p);
		snprintf(line, sizeof(line), "error %d\n", code);
		ready_line(line);
		shutdown_sockets();
		exit(1);
	}
	p->started = 1;
	if (p == &S.init) {
		snprintf(line, sizeof(line), "ok %d\n", (int)p->pid);
		ready_line(line);
	}
	if (take_reaped(p->pid, &r))
		proc_exited(p, r.status, &r.when);
	flush_stdin_of(p);
}

static void reap(void)
{
	struct timespec when;
	struct client *c;
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int known = 0;

		clock_gettime(CLOCK_REALTIME, &when);
		if (pid == S.init.runtime) {
			runtime_done(&S.init, status);
			continue;
		}
		if (S.init.started && pid == S.init.pid && !S.init.exited) {
			proc_exited(&S.init, status, &when);
			continue;
		}
		for (c = S.clients; c && !known; c = c->next) {
			struct proc *p = c->ex;

			if (!p)
				continue;
			if (pid == p->runtime) {
				runtime_done(p, status);
				known = 1;
			} else if (p->started && pid == p->pid && !p->exited) {
				proc_exited(p, status, &when);
				known = 1;
			}
		}
		if (!known) {
			S.reaped[S.reaped_next] = (struct reaped){ pid, status, when };
			S.reaped_next = (S.reaped_next + 1) % REAPED_KEPT;
		}
	}
}

/* ---- Requests ---- */

static void start_exec(struct client *c)
{
	char *strs[3] = { NULL, NULL, NULL }, **argv = NULL;
	char *p = c->body, *end = c->body + c->body_len;
	size_t argc = 0, i;
	struct proc *ex;
	const char *why = "malformed exec request";

	for (i = 0; p < end; i++) {
		char *z = memchr(p, 0, (size_t)(end - p));

		if (!z)
			goto bad;
		if (i < 2)
			strs[i] = p;
		else
			argc++;
		p = z + 1;
	}
	if (!strs[0] || !*strs[0] || argc == 0 || strchr(strs[0], '/') || strchr(strs[1], '/') ||
	    ((c->flags & EXEC_TTY) != 0) != (*strs[1] != 0))
		goto bad;
	argv = calloc(argc + 1, sizeof(char *));
	ex = calloc(1, sizeof(*ex));
	if (!argv || !ex) {
		free(ex);
		why = "out of memory";
		goto bad;
	}
	proc_init(ex);
	ex->pid_name = strs[0];
	ex->sock_name = strs[1];
	ex->want_tty = (c->flags & EXEC_TTY) != 0;
	p = strs[1] + strlen(strs[1]) + 1;
	for (i = 0; i < argc; i++) {
		argv[i] = p;
		p += strlen(p) + 1;
	}
	c->ex = ex;
	c->kind = C_EXEC;
	unlink(ex->pid_name);
	if (proc_start(ex, argv, (c->flags & EXEC_STDIN) != 0, 0) < 0) {
		char msg[256];
		int n = snprintf(msg, sizeof(msg), "tinyc-shim: run the exec: %s\n",
				 strerror(errno));

		client_frame(c, STREAM_STDERR, msg, (size_t)n);
		ex->exited = ex->done = 1;
		client_exit(c, 125);
	}
	free(argv);
	return;
bad:
	free(argv);
	c->kind = C_EXEC;
	client_frame(c, STREAM_STDERR, why, strlen(why));
	client_frame(c, STREAM_STDERR, "\n", 1);
	client_exit(c, 125);
}

/* Sets TTY's size from 4 bytes (rows, cols, big-endian); answers 0 (done) or 1, then closes. */
static void do_resize(struct client *c, int tty, const unsigned char *size)
{
	struct winsize ws = { 0 };
	char reply = 1;

	ws.ws_row = (unsigned short)(size[0] << 8 | size[1]);
	ws.ws_col = (unsigned short)(size[2] << 8 | size[3]);
	if (tty >= 0 && ioctl(tty, TIOCSWINSZ, &ws) == 0)
		reply = 0;
	if (write(c->fd, &reply, 1) < 0) {
		/* The client left without its answer. */
	}
	drop(c);
}

/* `T`: the name length, the exec's pid-file name, rows, cols: resizes that exec's terminal. */
static void do_exec_resize(struct client *c)
{
	unsigned char *b = (unsigned char *)c->body;
	size_t len = b[0];
	struct client *e;
	int tty = -1;

	for (e = S.clients; e; e = e->next) {
		struct proc *p = e->ex;

		if (!e->dead && p && p->pid_name && strlen(p->pid_name) == len &&
		    !memcmp(p->pid_name, b + 1, len))
			tty = p->tty;
	}
	do_resize(c, tty, b + 1 + len);
}

/* The bytes a client sent, taken one request state at a time. */
static void client_bytes(struct client *c, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len && !c->dead) {
		switch (c->kind) {
		case C_NEW:
			switch (data[off++]) {
			case 'A':
				c->kind = C_ATTACH_FLAGS;
				break;
			case 'R':
				c->kind = C_RESIZE;
				break;
			case 'W':
				c->kind = C_WAIT;
				if (S.finished)
					client_exit(c, S.init.code);
				break;
			case 'X':
				c->kind = C_EXEC_HEAD;
				break;
			case 'T':
				c->kind = C_EXEC_RESIZE;
				c->body = malloc(1 + 255 + 4);
				if (!c->body)
					drop(c);
				break;
			default:
				drop(c);
			}
			break;
		case C_ATTACH_FLAGS:
			c->flags = (unsigned char)data[off++];
			c->kind = C_ATTACH;
			/* Asked for, an empty stdout frame says that output from now on gets there. */
			if (c->flags & FLAG_ACK)
				client_frame(c, STREAM_STDOUT, "", 0);
			if (S.finished)
				client_exit(c, S.init.code);
			break;
		case C_RESIZE:
			c->head[c->head_len++] = (unsigned char)data[off++];
			if (c->head_len == 4)
				do_resize(c, S.init.tty, c->head);
			break;
		case C_EXEC_RESIZE:
			c->body[c->body_got++] = data[off++];
			if (c->body_got == 1u + (unsigned char)c->body[0] + 4)
				do_exec_resize(c);
			break;
		case C_EXEC_HEAD:
			c->head[c->head_len++] = (unsigned char)data[off++];
			if (c->head_len < 5)
				break;
			c->flags = c->head[0];
			c->body_len = (uint32_t)c->head[1] << 24 | (uint32_t)c->head[2] << 16 |
				      (uint32_t)c->head[3] << 8 | c->head[4];
			if (c->body_len == 0 || c->body_len > EXEC_MAX_REQUEST) {
				drop(c);
				break;
			}
			c->body = malloc(c->body_len);
			if (!c->body) {
				drop(c);
				break;
			}
			c->kind = C_EXEC_BODY;
			break;
		case C_EXEC_BODY: {
			size_t take = len - off;

			if (take > c->body_len - c->body_got)
				take = c->body_len - c->body_got;
			memcpy(c->body + c->body_got, data + off, take);
			c->body_got += (uint32_t)take;
			off += take;
			if (c->body_got == c->body_len)
				start_exec(c);
			break;
		}
		case C_ATTACH:
		case C_EXEC:
			to_stdin(c, data + off, len - off);
			off = len;
			break;
		case C_WAIT:
			off = len; /* nothing more is expected */
			break;
		}
	}
}

static void client_read(struct client *c)
{
	char buf[4096];
	ssize_t n;

	do
		n = read(c->fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN)
			drop(c);
		return;
	}
	if (n == 0) {
		c->rd_eof = 1;
		client_eof(c);
		return;
	}
	client_bytes(c, buf, (size_t)n);
}

static void accept_clients(void)
{
	for (;;) {
		int fd = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct client *c;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->next = S.clients;
		S.clients = c;
		/* A client writes its request at once: taken now, it sees the output that follows. */
		client_read(c);
	}
}

static void free_client(struct client *c)
{
	struct proc *p = c->ex;

	close_fd(&c->fd);
	if (p) {
		/* The client is gone: its exec runs on without stdio, and is still reaped. */
		close_fd(&p->in);
		close_fd(&p->out);
		close_fd(&p->err);
		close_fd(&p->tty);
		if (p->listen >= 0)
			unlink(p->sock_name);
		close_fd(&p->listen);
		/* Its exit, when it comes, is filed with those of unknown pids. */
		free(p);
	}
	free(c->body);
	free(c->out);
	free(c->pend);
	free(c);
}

static void sweep_clients(void)
{
	struct client **pp = &S.clients;

	while (*pp) {
		struct client *c = *pp;

		if (c->dead) {
			*pp = c->next;
			free_client(c);
		} else {
			pp = &c->next;
		}
	}
}

/* ---- The loop ---- */

static int held_up(struct proc *p);

/* What one pollfd entry stands for. */
enum what { W_SIGNAL, W_LISTEN, W_CONSOLE, W_OUT, W_ERR, W_TTY, W_STDIN, W_CLIENT };

struct watch {
	enum what what;
	struct proc *p;
	struct client *c;
};

struct pollset {
	struct pollfd *fds;
	struct watch *w;
	size_t n, cap;
};

static void watch(struct pollset *ps, int fd, short events, enum what what, struct proc *p,
		  struct client *c)
{
	if (fd < 0)
		return;
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 16;
		struct pollfd *f = realloc(ps->fds, cap * sizeof(*f));
		struct watch *w;

		if (!f)
			die("allocate");
		ps->fds = f;
		w = realloc(ps->w, cap * sizeof(*w));
		if (!w)
			die("allocate");
		ps->w = w;
		ps->cap = cap;
	}
	ps->fds[ps->n] = (struct pollfd){ .fd = fd, .events = events };
	ps->w[ps->n] = (struct watch){ what, p, c };
	ps->n++;
}

static int has_pending_stdin(struct proc *p)
{
	struct client *c;

	for (c = S.clients; c; c = c->next)
		if (!c->dead && c->pend && stdin_target(c) == p)
			return 1;
	return 0;
}

static void watch_proc(struct pollset *ps, struct proc *p)
{
	/* While a client is behind, the output waits in the pipe: the writer is slowed down. */
	short in = held_up(p) ? 0 : POLLIN;
	short tty = (short)(in | (has_pending_stdin(p) ? POLLOUT : 0));

	watch(ps, p->listen, POLLIN, W_CONSOLE, p, NULL);
	if (in) {
		watch(ps, p->out, in, W_OUT, p, NULL);
		watch(ps, p->err, in, W_ERR, p, NULL);
	}
	/* The terminal is both stdin and output: one entry. */
	if (tty)
		watch(ps, p->tty, tty, W_TTY, p, NULL);
	if (p->in >= 0 && has_pending_stdin(p))
		watch(ps, p->in, POLLOUT, W_STDIN, p, NULL);
}

static void build(struct pollset *ps)
{
	struct client *c;

	ps->n = 0;
	watch(ps, S.sigfd, POLLIN, W_SIGNAL, NULL, NULL);
	watch(ps, S.lfd, POLLIN, W_LISTEN, NULL, NULL);
	watch_proc(ps, &S.init);
	for (c = S.clients; c; c = c->next) {
		short ev = 0;

		if (c->dead)
			continue;
		if (!c->rd_eof && !c->pend)
			ev |= POLLIN;
		if (c->out_len)
			ev |= POLLOUT;
		/*
		 * Watched with no events, a client still reports a hang-up. One whose stdin bytes
		 * wait for the process is left out until they are written: a hang-up would spin.
		 */
		if (ev || !c->pend)
			watch(ps, c->fd, ev, W_CLIENT, NULL, c);
		if (c->ex)
			watch_proc(ps, c->ex);
	}
}

static void handle(struct pollfd *f, struct watch *w)
{
	short rev = f->revents;
	struct proc *p = w->p;

	switch (w->what) {
	case W_SIGNAL: {
		struct signalfd_siginfo si;

		while (read(S.sigfd, &si, sizeof(si)) > 0) {
		}
		reap();
		break;
	}
	case W_LISTEN:
		accept_clients();
		break;
	case W_CONSOLE:
		if (p->listen == f->fd)
			accept_console(p);
		break;
	case W_OUT:
		if (p->out == f->fd)
			proc_read(p, &p->out, STREAM_STDOUT);
		break;
	case W_ERR:
		if (p->err == f->fd)
			proc_read(p, &p->err, STREAM_STDERR);
		break;
	case W_TTY:
		if (p->tty != f->fd)
			break;
		if (rev & POLLOUT)
			flush_stdin_of(p);
		if (rev & (POLLIN | POLLHUP | POLLERR))
			proc_read(p, &p->tty, STREAM_STDOUT);
		break;
	case W_STDIN:
		if (p->in == f->fd) {
			if (rev & (POLLERR | POLLHUP))
				close_fd(&p->in); /* nothing reads the pipe any more */
			flush_stdin_of(p);
		}
		break;
	case W_CLIENT: {
		struct client *c = w->c;

		if (c->dead || c->fd != f->fd)
			break;
		if (rev & POLLOUT)
			client_flush(c);
		if (!c->dead && (rev & POLLIN))
			client_read(c);
		if (!c->dead && (rev & (POLLHUP | POLLERR)) && !(rev & POLLIN)) {
			c->gone = 1;
			if (!c->pend)
				drop(c);
		}
		break;
	}
	}
}

/* Whether a client that P's output goes to is behind (and still taking some): P's output waits. */
static int held_up(struct proc *p)
{
	struct client *c;

	for (c = S.clients; c; c = c->next)
		if (!c->dead && c->behind_at &&
		    ((p == &S.init && c->kind == C_ATTACH) || (c->kind == C_EXEC && c->ex == p)))
			return 1;
	return 0;
}

/* A client that has taken nothing for STALL_MS while behind no longer holds anyone up. */
static void drop_stalled(long long now)
{
	struct client *c;

	for (c = S.clients; c; c = c->next)
		if (!c->dead && c->behind_at && now - c->behind_at >= STALL_MS)
			drop(c);
}

/* An exec whose process has ended and whose output is read gets its exit frame. */
static void finish_execs(long long now)
{
	struct client *c;

	for (c = S.clients; c; c = c->next) {
		struct proc *p = c->ex;

		if (!p || p->done || !p->exited || c->dead)
			continue;
		if (held_up(p) && p->deadline < now + DRAIN_MS)
			p->deadline = now + DRAIN_MS; /* output still waits in the pipes */
		if (!proc_drained(p) && now < p->deadline)
			continue;
		proc_read_all(p);
		p->done = 1;
		close_fd(&p->in);
		close_fd(&p->out);
		close_fd(&p->err);
		close_fd(&p->tty);
		client_exit(c, p->code);
	}
}

/* The first process has ended and its output is read: every client hears, then the shim ends. */
static void finish_init(void)
{
	struct client *c;

	proc_read_all(&S.init);
	close_fd(&S.init.in);
	close_fd(&S.init.out);
	close_fd(&S.init.err);
	close_fd(&S.init.tty);
	S.finished = 1;
	S.flush_deadline = now_ms() + FLUSH_MS;
	for (c = S.clients; c; c = c->next)
		if (c->kind == C_ATTACH || c->kind == C_WAIT)
			client_exit(c, S.init.code);
}

static int timeout_for(long long now)
{
	long long until = -1;
	struct client *c;

	if (S.init.exited && !S.finished)
		until = S.init.deadline;
	if (S.finished)
		until = S.flush_deadline;
	for (c = S.clients; c; c = c->next) {
		struct proc *p = c->ex;

		if (p && p->exited && !p->done && (until < 0 || p->deadline < until))
			until = p->deadline;
		if (!c->dead && c->behind_at && (until < 0 || c->behind_at + STALL_MS < until))
			until = c->behind_at + STALL_MS;
	}
	if (until < 0)
		return -1;
	return until > now ? (int)(until - now) : 0;
}

static int all_done(void)
{
	struct client *c;

	for (c = S.clients; c; c = c->next)
		if (!c->dead && (c->out_len || (c->ex && !c->ex->done)))
			return 0;
	return 1;
}

static void loop(void)
{
	struct pollset ps = { 0 };

	for (;;) {
		long long now = now_ms();
		size_t i;

		drop_stalled(now);
		finish_execs(now);
		if (S.init.exited && held_up(&S.init) && S.init.deadline < now + DRAIN_MS)
			S.init.deadline = now + DRAIN_MS;
		if (S.init.exited && !S.finished &&
		    (proc_drained(&S.init) || now >= S.init.deadline)) {
			finish_init();
			/* No new clients: the container has ended. */
			shutdown_sockets();
		}
		sweep_clients();
		if (S.finished && (all_done() || now >= S.flush_deadline))
			break;
		build(&ps);
		if (poll(ps.fds, ps.n, timeout_for(now)) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		for (i = 0; i < ps.n; i++)
			if (ps.fds[i].revents)
				handle(&ps.fds[i], &ps.w[i]);
	}
}

/* ---- Start-up ---- */

static void usage(int status)
{
	dprintf(status ? 2 : 1,
		"usage: tinyc-shim [--tty] [--stdin] [--stdin-once] [--log NAME]\n"
		"                  [--log-max-size BYTES] [--log-max-files N] DIR -- RUNTIME_ARGV...\n");
	exit(status);
}

static long long number(const char *flag, const char *v, long long max)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *v == 0 || *end || n < 0 || n > max) {
		dprintf(2, "tinyc-shim: %s \"%s\": not a number from 0 to %lld\n", flag, v, max);
		exit(2);
	}
	return n;
}

/* Returns the index of RUNTIME_ARGV in argv. */
static int parse(int argc, char **argv, const char **dir)
{
	int i;

	S.log_name = "container.log";
	S.log_files = 1;
	for (i = 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--tty"))
			S.tty = 1;
		else if (!strcmp(a, "--stdin"))
			S.want_stdin = 1;
		else if (!strcmp(a, "--stdin-once"))
			S.stdin_once = 1;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(0);
		else if (v && !strcmp(a, "--log"))
			S.log_name = argv[++i];
		else if (v && !strcmp(a, "--log-max-size"))
			S.log_max = number(a, argv[++i], LLONG_MAX);
		else if (v && !strcmp(a, "--log-max-files"))
			S.log_files = (int)number(a, argv[++i], 1000);
		else {
			dprintf(2, "tinyc-shim: unknown flag \"%s\" (or it needs a value)\n", a);
			exit(2);
		}
	}
	if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0)
		usage(2);
	if (S.log_files < 1 || !*S.log_name || strchr(S.log_name, '/')) {
		dprintf(2, "tinyc-shim: --log is a name in DIR, and --log-max-files at least 1\n");
		exit(2);
	}
	*dir = argv[i];
	return i + 2;
}

/* fds 0 to 2 open (on /dev/null if the caller closed them): pipes made later never land there. */
static void stdio_open(void)
{
	int fd;

	do
		fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd <= 2);
	if (fd >= 0)
		close(fd);
}

static void write_pid_file(void)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%d", (int)getpid());
	int fd = open("shim.pid.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write_all(fd, text, (size_t)n) < 0 || close(fd) < 0 ||
	    rename("shim.pid.tmp", "shim.pid") < 0)
		start_failed("write shim.pid");
}

int main(int argc, char **argv)
{
	const char *dir;
	int first = parse(argc, argv, &dir);
	sigset_t mask;
	pid_t pid;

	/* Nothing the caller left open (a listening socket, say) is held for the container's life. */
	close_range(3, ~0U, 0);
	stdio_open();
	S.umask = umask(0077);
	if (chdir(dir) < 0)
		die(dir);
	S.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (S.devnull < 0)
		die("/dev/null");
	S.rbuf = malloc(READ_CHUNK);
	if (!S.rbuf)
		die("allocate");
	log_open(0);
	if (S.logfd < 0)
		die(S.log_name);
	S.lfd = listen_at(ATTACH_SOCK);
	if (S.lfd < 0)
		die(ATTACH_SOCK);
	proc_init(&S.init);
	S.init.want_tty = S.tty;
	S.init.pid_name = INIT_PID_FILE;
	S.init.sock_name = CONSOLE_SOCK;

	/* The caller's child ends now; the shim lives on, reparented, in a session of its own. */
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid > 0)
		_exit(0);
	setsid();
	dup2(S.devnull, 0);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		start_failed("become a subreaper");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	S.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (S.sigfd < 0)
		start_failed("signalfd");
	write_pid_file();
	unlink(INIT_PID_FILE);
	unlink("exit.json");
	if (proc_start(&S.init, argv + first, S.want_stdin, S.tty) < 0)
		start_failed("run the runtime");
	loop();
	return 0;
}
