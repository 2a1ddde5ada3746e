/*
 * Small helpers shared by the C files. Each is safe in the cloned child: no allocation, no
 * stdio, nothing that another thread of the parent might hold.
 */
#ifndef TINYC_UTIL_H
#define TINYC_UTIL_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* PREFIX followed by N in decimal, in BUF (which must hold both). */
static inline void path_with_number(char *buf, const char *prefix, unsigned long n)
{
	size_t len = strlen(prefix);
	char digits[24];
	int count = 0, i;

	memcpy(buf, prefix, len);
	do {
		digits[count++] = '0' + n % 10;
		n /= 10;
	} while (n);
	for (i = 0; i < count; i++)
		buf[len + i] = digits[count - 1 - i];
	buf[len + count] = 0;
}

/* Sends FD over the UNIX socket SOCK with SCM_RIGHTS, and one byte of data. */
static inline int send_fd_on(int sock, int fd, const char *data, size_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cmsg;

	memset(u.buf, 0, sizeof(u.buf));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Receives one fd that send_fd_on sent (close-on-exec); returns it, or a negative errno. */
static inline int recv_fd_on(int sock)
{
	char data;
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cmsg;
	ssize_t n;
	int fd;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (n == 0 || !cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
		return -EBADMSG;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

#endif
