/*
 * recvtty: the far end of --console-socket, for the integration tests.
 *
 *   recvtty SOCKET
 *
 * Listens on the UNIX socket SOCKET, accepts one connection, receives one file descriptor
 * (the pseudo-terminal master) in an SCM_RIGHTS message and prints "ready" on stderr once it
 * has it. Then copies what the master gives to stdout, and its own stdin to the master, until
 * the terminal's other side is closed (read fails with EIO) or gives end of file. Exits 0 then,
 * non-zero (with a message on stderr) when anything before fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char *what) {
  fprintf(stderr, "recvtty: %s: %s\n", what, strerror(errno));
  return 1;
}

static int write_all(int fd, const char *buf, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += w;
    n -= w;
  }
  return 0;
}

static int receive_fd(int conn) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg = {
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control.buf,
      .msg_controllen = sizeof control.buf,
  };
  if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) < 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
    errno = EPROTO;
    return -1;
  }
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: recvtty SOCKET\n");
    return 2;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof addr.sun_path) {
    fprintf(stderr, "recvtty: socket path too long\n");
    return 2;
  }
  strcpy(addr.sun_path, argv[1]);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return fail("socket");
  if (bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0) return fail("bind");
  if (listen(sock, 1) < 0) return fail("listen");
  /* The test waits for this line before it hands the socket to tinyc. */
  fprintf(stderr, "listening\n");
  int conn = accept4(sock, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) return fail("accept");
  int master = receive_fd(conn);
  if (master < 0) return fail("recvmsg");
  close(conn);
  close(sock);
  fprintf(stderr, "ready\n");

  struct pollfd fds[2] = {{.fd = master, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  char buf[4096];
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return fail("poll");
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(master, buf, sizeof buf);
      /* EIO: every slave fd is closed, the container's side of the terminal is gone. */
      if (n == 0 || (n < 0 && errno == EIO)) return 0;
      if (n < 0 && errno != EINTR) return fail("read the terminal");
      if (n > 0 && write_all(1, buf, n) < 0) return fail("write stdout");
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(0, buf, sizeof buf);
      /* Without more input the terminal is still read: stop polling stdin. */
      if (n <= 0) fds[1].fd = -1;
      else if (write_all(master, buf, n) < 0) return fail("write the terminal");
    }
  }
}
