/*
 * The plan executor: clones the container's first process and runs the launch plan in it.
 *
 * The caller is a multi-threaded Bun process, so the child must never return into it and must
 * not touch anything another thread may hold: after clone it uses raw system calls only, no
 * allocation and no stdio. Every step that fails sends one tc_report (step, errno, path) to the
 * parent and the child exits; success is the report pipe closing at exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/if_tun.h>
#include <linux/mount.h>
#include <net/if.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tinyc.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CHILD_STACK_SIZE (256 * 1024)

struct child {
	uint8_t *plan;
	int report_fd; /* write end of the report pipe */
	int sync_fd;   /* our end of the parent's sync socket */
	int parent_fds[2]; /* the parent's ends of both pipes, closed at once in the child */
	int root_fd;   /* the rootfs, or "/" after the pivot */
	int fifo_fd;
	int step;
	int nondumpable;
	char exec_path[4096]; /* argv[0] as found by TC_OP_FIND_EXEC */
};

/* ---- small helpers that are safe after clone ---- */

static const char *str(struct child *c, uint32_t off)
{
	return off ? (const char *)(c->plan + off) : NULL;
}

static size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void scopy(char *dst, const char *src, size_t cap)
{
	size_t i = 0;

	for (; src && src[i] && i + 1 < cap; i++)
		dst[i] = src[i];
	dst[i] = 0;
}

/* "/proc/self/fd/N": mount(2) and friends take a path, this one names an fd we hold. */
static void fd_path(char *buf, int fd)
{
	path_with_number(buf, "/proc/self/fd/", fd);
}

static void send_report(struct child *c, uint32_t kind, int err, int pid, const char *path)
{
	struct tc_report r;
	const char *p = (const char *)&r;
	size_t left = sizeof(r);

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.step = c->step;
	r.err = err;
	r.pid = pid;
	scopy(r.path, path, sizeof(r.path));
	while (left > 0) {
		ssize_t n = write(c->report_fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		left -= n;
	}
}

static __attribute__((noreturn)) void die(struct child *c, int err, const char *path)
{
	send_report(c, TC_REPORT_ERROR, err, 0, path);
	_exit(127);
}

static int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = { .flags = flags, .mode = 0, .resolve = resolve };

	return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static int sys_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t set)
{
	struct mount_attr attr = { .attr_set = set };

	return syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

/* ---- resolving paths inside the rootfs ---- */

/*
 * Opens PATH inside the rootfs as an O_PATH fd. RESOLVE_IN_ROOT makes "..", absolute paths
 * and symlinks stay inside the rootfs, so a hostile image cannot point a mount outside it.
 */
static int open_in_root(struct child *c, const char *path, uint32_t flags)
{
	uint64_t resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

	if (flags & TC_F_NO_SYMLINKS)
		resolve |= RESOLVE_NO_SYMLINKS;
	return sys_openat2(c->root_fd, path, O_PATH | O_CLOEXEC, resolve);
}

/*
 * A dangling symlink met while creating PATH: PATH becomes the link's target (resolved inside
 * the rootfs, as every path here is) followed by the rest of PATH, as runc's MkdirAll does.
 * Returns 1 when PATH was rewritten, 0 when the component is no symlink.
 */
static int follow_dangling(int parent, const char *name, char *path, size_t start, size_t end)
{
	char link[4096], rest[4096];
	ssize_t n;
	size_t r = slen(path + end), at = 0;

	n = readlinkat(parent, name, link, sizeof(link) - 1);
	if (n <= 0)
		return 0;
	link[n] = 0;
	if (r >= sizeof(rest) || (size_t)n + start + r + 2 >= 4096)
		return -ENAMETOOLONG;
	memcpy(rest, path + end, r + 1);
	if (link[0] != '/')
		at = start; /* relative: from the folder that holds the link */
	memcpy(path + at, link, n);
	memcpy(path + at + n, rest, r + 1);
	return 1;
}

/* Creates the missing parts of PATH inside the rootfs, one component at a time. */
static int create_in_root(struct child *c, const char *target, int last_is_file)
{
	char path[4096], prefix[4096];
	size_t i = 0, len = slen(target);
	int links = 0;

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, target, len + 1);
	while (i < len) {
		size_t start, end;
		int parent, fd, ret;

		while (i < len && path[i] == '/')
			i++;
		start = i;
		while (i < len && path[i] != '/')
			i++;
		end = i;
		if (end == start)
			break;

		memcpy(prefix, path, end);
		prefix[end] = 0;
		fd = open_in_root(c, prefix, 0);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		if (errno != ENOENT)
			return -errno;

		prefix[start] = 0;
		parent = open_in_root(c, start ? prefix : "/", 0);
		if (parent < 0)
			return -errno;
		memcpy(prefix, path + start, end - start);
		prefix[end - start] = 0;
		ret = follow_dangling(parent, prefix, path, start, end);
		if (ret != 0) {
			close(parent);
			if (ret < 0)
				return ret;
			if (++links > 40)
				return -ELOOP;
			len = slen(path);
			i = 0; /* start over: the new path may begin anywhere */
			continue;
		}
		if (end == len && last_is_file) {
			ret = openat(parent, prefix, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
				     0644);
			if (ret >= 0)
				close(ret);
		} else {
			ret = mkdirat(parent, prefix, 0755);
		}
		if (ret < 0 && errno != EEXIST) {
			ret = -errno;
			close(parent);
			return ret;
		}
		close(parent);
	}
	return 0;
}

static int resolve_target(struct child *c, const struct tc_step *s, const char *path)
{
	int fd, ret;

	if (!(s->flags & TC_F_IN_ROOT))
		return open(path, O_PATH | O_CLOEXEC);

	fd = open_in_root(c, path, s->flags);
	if (fd >= 0 || errno != ENOENT || !(s->flags & (TC_F_MKDIR | TC_F_MKFILE)))
		return fd;

	ret = create_in_root(c, path, s->flags & TC_F_MKFILE);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return open_in_root(c, path, s->flags);
}

/* ---- mount steps ---- */

/*
 * Mount attributes set after a bind. mount_setattr only adds the attributes asked for, so a
 * flag the host has locked (nosuid on a user's home, say) is kept rather than refused.
 */
static int set_attrs(struct child *c, const struct tc_step *s, const char *path, uint64_t attrs)
{
	unsigned int at = AT_EMPTY_PATH | ((s->flags & TC_F_RECURSIVE) ? AT_RECURSIVE : 0);
	int fd, ret;

	if (!attrs)
		return 0;
	fd = resolve_target(c, s, path);
	if (fd < 0)
		return -errno;
	ret = sys_mount_setattr(fd, "", at, attrs);
	if (ret < 0 && errno == ENOSYS) {
		/* Before Linux 5.12: remount, repeating the flags the mount already has. */
		struct statfs st;
		unsigned long keep = 0, flags = MS_BIND | MS_REMOUNT;
		char p[64];

		if (fstatfs(fd, &st) == 0)
			keep = st.f_flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC |
					     MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
		if (attrs & MOUNT_ATTR_RDONLY)
			flags |= MS_RDONLY;
		if (attrs & MOUNT_ATTR_NOSUID)
			flags |= MS_NOSUID;
		if (attrs & MOUNT_ATTR_NODEV)
			flags |= MS_NODEV;
		if (attrs & MOUNT_ATTR_NOEXEC)
			flags |= MS_NOEXEC;
		fd_path(p, fd);
		ret = mount(NULL, p, NULL, flags | keep, NULL);
	}
	ret = ret < 0 ? -errno : 0;
	close(fd);
	return ret;
}

static int copy_entry(int from, int to, const char *name, int depth);

/*
 * tmpcopyup: what the folder held before the tmpfs covered it is copied into the tmpfs, owners
 * and modes kept, so a read-only root can still have a writable /run with its usual contents.
 */
static int copy_tree(int from, int to, int depth)
{
	char buf[2048];
	long n;

	if (depth > 32)
		return -ELOOP;
	while ((n = syscall(SYS_getdents64, from, buf, sizeof(buf))) > 0) {
		long off = 0;

		while (off < n) {
			struct linux_dirent64 {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);
			int ret;

			off += d->reclen;
			if (!strcmp(d->name, ".") || !strcmp(d->name, ".."))
				continue;
			ret = copy_entry(from, to, d->name, depth);
			if (ret < 0)
				return ret;
		}
	}
	return n < 0 ? -errno : 0;
}

static int copy_entry(int from, int to, const char *name, int depth)
{
	struct stat st;
	char link[4096];
	int in, out, ret = 0;
	ssize_t len;

	if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(to, name, 0700) < 0 && errno != EEXIST)
			return -errno;
		in = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		out = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0 || out < 0)
			ret = -errno;
		else
			ret = copy_tree(in, out, depth + 1);
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
	} else if (S_ISREG(st.st_mode)) {
		in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0)
			return -errno;
		out = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out < 0) {
			ret = -errno;
			close(in);
			return ret;
		}
		while ((len = read(in, link, sizeof(link))) > 0)
			if (write(out, link, len) != len) {
				ret = -EIO;
				break;
			}
		if (len < 0)
			ret = -errno;
		close(in);
		close(out);
	} else if (S_ISLNK(st.st_mode)) {
		len = readlinkat(from, name, link, sizeof(link) - 1);
		if (len < 0)
			return -errno;
		link[len] = 0;
		if (symlinkat(link, to, name) < 0)
			return -errno;
	} else if (mknodat(to, name, st.st_mode, st.st_rdev) < 0) {
		return 0; /* device nodes cannot be made in a user namespace: left out */
	}
	if (ret < 0)
		return ret;
	/* An id the user namespace does not map cannot be kept (EINVAL): the file stays ours. */
	if (fchownat(to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL)
		return -errno;
	if (!S_ISLNK(st.st_mode) && fchmodat(to, name, st.st_mode & 07777, 0) < 0)
		return -errno;
	return 0;
}

static void copy_up(struct child *c, int lower, const struct tc_step *s, const char *target)
{
	int from, to, upper, ret;

	upper = resolve_target(c, s, target);
	if (upper < 0)
		die(c, errno, target);
	from = openat(lower, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	to = openat(upper, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (from < 0 || to < 0)
		die(c, errno, target);
	ret = copy_tree(from, to, 0);
	if (ret < 0)
		die(c, -ret, target);
	close(from);
	close(to);
	close(upper);
}

static void step_mount(struct child *c, const struct tc_step *s)
{
	const char *src = str(c, s->s1), *target = str(c, s->s2), *type = str(c, s->s3);
	const char *data = str(c, s->s4);
	char p[64];
	int fd, ret;

	fd = resolve_target(c, s, target);
	if (fd < 0)
		die(c, errno, target);
	fd_path(p, fd);

	ret = mount(src, p, type, s->a, data);
	if (ret < 0 && (errno == EPERM || errno == EACCES) && (s->flags & TC_F_FALLBACK)) {
		/* A new instance is not allowed in this user namespace: bind the host's. */
		src = str(c, s->c);
		ret = mount(src, p, NULL, MS_BIND | MS_REC, NULL);
	}
	if (ret < 0)
		die(c, errno, target);
	/* fd still names the folder under the new mount, which copy_up reads from. */
	if (s->flags & TC_F_COPYUP)
		copy_up(c, fd, s, target);
	close(fd);

	ret = set_attrs(c, s, target, s->b);
	if (ret < 0)
		die(c, -ret, target);
}

static void step_mount_attr(struct child *c, const struct tc_step *s)
{
	const char *target = str(c, s->s2);
	int ret = set_attrs(c, s, target, s->b);

	if (ret == -ENOENT && (s->flags & TC_F_IGNORE_ENOENT))
		return;
	if (ret < 0)
		die(c, -ret, target);
}

static void step_propagation(struct child *c, const struct tc_step *s)
{
	const char *target = str(c, s->s2);
	char p[64];
	int fd = resolve_target(c, s, target);

	if (fd < 0)
		die(c, errno, target);
	fd_path(p, fd);
	if (mount(NULL, p, NULL, s->a, NULL) < 0)
		die(c, errno, target);
	close(fd);
}

/* Opens the folder that holds PATH inside the rootfs; *name is set to PATH's last part. */
static int open_parent_in_root(struct child *c, const char *path, const char **name)
{
	char parent[4096];
	size_t i, cut = 0;

	for (i = 0; path[i]; i++)
		if (path[i] == '/')
			cut = i;
	scopy(parent, path, cut + 1 < sizeof(parent) ? cut + 1 : sizeof(parent));
	*name = path + cut + (path[cut] == '/');
	return open_in_root(c, cut ? parent : "/", 0);
}

static void step_symlink(struct child *c, const struct tc_step *s)
{
	const char *text = str(c, s->s1), *path = str(c, s->s2), *name;
	int dir = open_parent_in_root(c, path, &name);

	if (dir < 0)
		die(c, errno, path);
	if (symlinkat(text, dir, name) < 0 && errno != EEXIST)
		die(c, errno, path);
	close(dir);
}

static void step_mknod(struct child *c, const struct tc_step *s)
{
	const char *path = str(c, s->s2), *name;
	int dir = open_parent_in_root(c, path, &name);

	if (dir < 0)
		die(c, errno, path);
	if (mknodat(dir, name, s->a, s->b) < 0 && errno != EEXIST)
		die(c, errno, path);
	if (fchownat(dir, name, s->c >> 32, s->c & 0xffffffff, AT_SYMLINK_NOFOLLOW) < 0)
		die(c, errno, path);
	close(dir);
}

/*
 * pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then takes
 * the old root away without needing a folder for it inside the rootfs.
 */
static void step_pivot_root(struct child *c, const struct tc_step *s)
{
	const char *root = str(c, s->s1);
	int oldroot, newroot;

	newroot = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (newroot < 0)
		die(c, errno, root);
	if (fchdir(newroot) < 0)
		die(c, errno, root);

	if (s->flags & TC_F_NO_PIVOT) {
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			die(c, errno, root);
		if (chroot(".") < 0)
			die(c, errno, root);
	} else {
		oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (oldroot < 0)
			die(c, errno, "/");
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			die(c, errno, root);
		if (fchdir(oldroot) < 0)
			die(c, errno, "/");
		/* Keep the unmount below from reaching the host's mounts. */
		if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
			die(c, errno, "/");
		if (umount2(".", MNT_DETACH) < 0)
			die(c, errno, "/");
		close(oldroot);
	}
	if (chdir("/") < 0)
		die(c, errno, "/");
	close(newroot);
	close(c->root_fd);
	c->root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->root_fd < 0)
		die(c, errno, "/");
}

/* A masked file gets /dev/null bound over it, a masked folder an empty read-only tmpfs. */
static void step_mask_path(struct child *c, const struct tc_step *s)
{
	const char *path = str(c, s->s2);
	struct stat st;
	char p[64];
	int fd, ret;

	fd = open_in_root(c, path, 0);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return;
	if (fd < 0 || fstat(fd, &st) < 0)
		die(c, errno, path);
	fd_path(p, fd);
	if (S_ISDIR(st.st_mode))
		ret = mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0");
	else
		ret = mount("/dev/null", p, NULL, MS_BIND, NULL);
	if (ret < 0)
		die(c, errno, path);
	close(fd);
}

static void step_readonly_path(struct child *c, const struct tc_step *s)
{
	const char *path = str(c, s->s2);
	char p[64];
	int fd, ret;

	fd = open_in_root(c, path, 0);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return;
	if (fd < 0)
		die(c, errno, path);
	fd_path(p, fd);
	if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
		die(c, errno, path);
	close(fd);
	ret = set_attrs(c, s, path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					     MOUNT_ATTR_NOEXEC);
	if (ret < 0)
		die(c, -ret, path);
}

/* ---- process steps ---- */

static void step_write_file(struct child *c, const struct tc_step *s)
{
	const char *path = str(c, s->s1), *text = str(c, s->s2);
	size_t len = slen(text);
	struct statfs st;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && (s->flags & TC_F_IGNORE_ENOENT))
		return;
	if (fd < 0)
		die(c, errno, path);
	/* A bundle could mount something else over /proc; write only to the real one. */
	if ((s->flags & TC_F_PROC_ONLY) && (fstatfs(fd, &st) < 0 || st.f_type != PROC_SUPER_MAGIC))
		die(c, EXDEV, path);
	if (write(fd, text, len) != (ssize_t)len)
		die(c, errno, path);
	close(fd);
}

static void step_chdir(struct child *c, const struct tc_step *s)
{
	const char *path = str(c, s->s1);
	int fd;

	/* No magic links: a cwd of /proc/self/fd/N must not lead to one of our descriptors. */
	fd = sys_openat2(c->root_fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC,
			 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	if (fd < 0 && errno == ENOENT && (s->flags & TC_F_CREATE)) {
		mode_t old = umask(0);
		int ret;

		ret = create_in_root(c, path, 0);
		umask(old);
		if (ret < 0)
			die(c, -ret, path);
		fd = sys_openat2(c->root_fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC,
				 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	}
	if (fd < 0 || fchdir(fd) < 0)
		die(c, errno, path);
	close(fd);
}

static void step_cap_bounding(struct child *c, const struct tc_step *s)
{
	int cap;

	for (cap = 0; cap < 64; cap++) {
		if (s->a & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the last capability this kernel knows */
			die(c, errno, NULL);
		}
	}
}

static void step_caps(struct child *c, const struct tc_step *s)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	int cap;

	data[0].effective = s->a;
	data[1].effective = s->a >> 32;
	data[0].permitted = s->b;
	data[1].permitted = s->b >> 32;
	data[0].inheritable = s->c;
	data[1].inheritable = s->c >> 32;
	if (syscall(SYS_capset, &hdr, data) < 0)
		die(c, errno, NULL);

	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		die(c, errno, NULL);
	/*
	 * The kernel raises an ambient capability only if it is also permitted and inheritable;
	 * configs (runc's template among them) list ambient ones that are not, and runc passes
	 * over those. So do we.
	 */
	for (cap = 0; cap < 64; cap++)
		if ((s->d & (1ULL << cap)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno != EPERM)
			die(c, errno, NULL);
}

static void step_setgroups(struct child *c, const struct tc_step *s)
{
	const uint8_t *blob = c->plan + s->s1;
	uint32_t n = *(const uint32_t *)blob / sizeof(gid_t); /* a blob's length is in bytes */

	if (syscall(SYS_setgroups, n, (const gid_t *)(blob + 8)) < 0)
		die(c, errno, NULL);
}

static void step_setuid(struct child *c, const struct tc_step *s)
{
	/* Keep the permitted set across the change; step_caps then sets exactly what is asked. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		die(c, errno, NULL);
	if (syscall(SYS_setresuid, s->a, s->a, s->a) < 0)
		die(c, errno, NULL);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		die(c, errno, NULL);
}

static void step_seccomp(struct child *c, const struct tc_step *s)
{
	const uint8_t *blob = c->plan + s->s1;
	struct sock_fprog prog = {
		.len = *(const uint32_t *)blob / sizeof(struct sock_filter),
		.filter = (struct sock_filter *)(blob + 8),
	};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned int)s->a, &prog) < 0)
		die(c, errno, NULL);
}

/* A new network namespace starts with "lo" down; programs expect 127.0.0.1 to work. */
static void step_loopback_up(struct child *c)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die(c, errno, "lo");
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		die(c, errno, "lo");

	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		die(c, errno, "lo");
	close(fd);
}

/*
 * The network helper attaches to this device instead of making its own. Made persistent, it
 * is not taken down when the helper closes it, which would hold the helper's exit for the
 * kernel's unregistering of the device; it goes with the namespace, in the background.
 */
static void step_tap_persist(struct child *c, const struct tc_step *s)
{
	const char *name = str(c, s->s1);
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die(c, errno, "/dev/net/tun");
	memset(&ifr, 0, sizeof(ifr));
	if (slen(name) >= IFNAMSIZ)
		die(c, ENAMETOOLONG, name);
	memcpy(ifr.ifr_name, name, slen(name));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die(c, errno, name);

	if (ioctl(fd, TUNSETPERSIST, 1) < 0)
		die(c, errno, name);
	close(fd);
}

static void step_ready(struct child *c, const struct tc_step *s)
{
	int open_up = c->nondumpable && (s->flags & TC_F_DUMPABLE_WAIT);
	char b;
	ssize_t n;

	/* startContainer hooks of a user without CAP_SYS_PTRACE join us through /proc/PID/ns. */
	if (open_up)
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	send_report(c, TC_REPORT_READY, 0, 0, NULL);
	/* We hold both ends of the fifo, so this read ends only when "start" writes. */
	do
		n = read(c->fifo_fd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		die(c, n < 0 ? errno : EPIPE, "exec.fifo");
	close(c->fifo_fd);
	if (open_up)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Binds the terminal's slave PATH over /dev/console, made if missing (a read-only /dev skips it). */
static void bind_console(struct child *c, const char *path)
{
	int fd = open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		if (errno != EROFS)
			die(c, errno, "/dev/console");
		return;
	}
	close(fd);
	if (mount(path, "/dev/console", NULL, MS_BIND, NULL) < 0)
		die(c, errno, "/dev/console");
}

/*
 * The terminal is made inside the container, from its own /dev/ptmx, so that the program sees
 * /dev/pts/N of its own devpts (ttyname works). The master goes to the parent over the socket
 * in a; the slave becomes the controlling terminal, stdin, stdout and stderr, and /dev/console.
 */
static void step_console(struct child *c, const struct tc_step *s)
{
	int sock = s->a, master, slave, unlock = 0, ret;
	unsigned int n;
	char path[32];

	master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		die(c, errno, "/dev/ptmx");
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
		die(c, errno, "/dev/ptmx");
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		die(c, errno, "/dev/ptmx");
	/* b: process.consoleSize as rows << 16 | columns, the size before the program looks. */
	if (s->b) {
		struct winsize ws = { .ws_row = (unsigned short)(s->b >> 16), .ws_col = (unsigned short)(s->b & 0xffff) };

		if (ioctl(master, TIOCSWINSZ, &ws) < 0)
			die(c, errno, "/dev/ptmx");
	}
	ret = send_fd_on(sock, master, "t", 1);
	if (ret < 0)
		die(c, -ret, "console socket");
	close(master);
	close(sock);

	path_with_number(path, "/dev/pts/", n);
	/* A process joining a running container keeps the container's /dev/console. */
	if (!(s->flags & TC_F_KEEP_CONSOLE))
		bind_console(c, path);

	if (setsid() < 0)
		die(c, errno, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		die(c, errno, path);
	if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
		die(c, errno, path);
	if (slave > 2)
		close(slave);
}

/* Relocates a list of string offsets into a NULL-terminated array of pointers, in place. */
static char **list(struct child *c, uint32_t off)
{
	uint32_t n = *(uint32_t *)(c->plan + off), i;
	uint64_t *slot = (uint64_t *)(c->plan + off + 8);

	for (i = 0; i < n; i++)
		slot[i] = (uint64_t)(uintptr_t)(c->plan + slot[i]);
	slot[n] = 0;
	return (char **)slot;
}

static int is_executable(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	return access(path, X_OK) < 0 ? -errno : 0;
}

/*
 * Finds argv[0] in the container's PATH now, as the container's user, so that a missing
 * program fails "create" rather than "start" (runc does the same).
 */
static void step_find_exec(struct child *c, const struct tc_step *s)
{
	const char *name = (const char *)(c->plan + ((uint64_t *)(c->plan + s->s1 + 8))[0]);
	const char *path = str(c, s->s3);
	size_t alen = slen(name);
	int ret, seen_eacces = 0;

	if (s->s4) /* the program is named apart from argv[0] (a hook's path) */
		name = str(c, s->s4);
	if (strchr(name, '/')) {
		ret = is_executable(name);
		if (ret < 0)
			die(c, -ret, name);
		scopy(c->exec_path, name, sizeof(c->exec_path));
		return;
	}
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t dlen = end ? (size_t)(end - path) : slen(path);
		char *buf = c->exec_path;

		if (dlen + alen + 2 < sizeof(c->exec_path)) {
			memcpy(buf, dlen ? path : ".", dlen ? dlen : 1);
			buf[dlen ? dlen : 1] = '/';
			memcpy(buf + (dlen ? dlen : 1) + 1, name, alen + 1);
			ret = is_executable(buf);
			if (ret == 0)
				return;
			if (ret == -EACCES)
				seen_eacces = 1;
		}
		path = end ? end + 1 : path + dlen;
	}
	c->exec_path[0] = 0;
	die(c, seen_eacces ? EACCES : ENOENT, name);
}

static void step_exec(struct child *c, const struct tc_step *s)
{
	char **argv = list(c, s->s1), **envp = list(c, s->s2);

	execve(c->exec_path[0] ? c->exec_path : argv[0], argv, envp);
	die(c, errno, c->exec_path[0] ? c->exec_path : argv[0]);
}

/*
 * Runs the program TC_OP_FIND_EXEC found as a child of ours and waits for it. A program that
 * daemonizes (fuse-overlayfs) has made its mount by the time it exits 0.
 */
static void step_run(struct child *c, const struct tc_step *s)
{
	char **argv = list(c, s->s1), **envp = list(c, s->s2);
	pid_t pid;
	int st;

	pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		die(c, errno, argv[0]);
	if (pid == 0) {
		execve(c->exec_path, argv, envp);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die(c, errno, argv[0]);
	if (st != 0) {
		send_report(c, TC_REPORT_ERROR, ECHILD, st, c->exec_path);
		_exit(127);
	}
}

/*
 * A detached copy of the mount on PATH goes to the parent, and the mount itself is unmounted
 * here: from then on the copy is the only one, and whoever attaches it owns the file system.
 * For a FUSE file system that means its daemon ends when the last mount of it goes.
 */
static void step_send_mount(struct child *c, const struct tc_step *s)
{
	const char *path = str(c, s->s1);
	int fd, ret;

	fd = syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (fd < 0)
		die(c, errno, path);
	if (umount2(path, MNT_DETACH) < 0)
		die(c, errno, path);
	ret = send_fd_on(s->a, fd, "m", 1);
	if (ret < 0)
		die(c, -ret, path);
	close(fd);
}

/* The parent's go-ahead carries a detached mount, which is attached on the target. */
static void step_attach_mount(struct child *c, const struct tc_step *s)
{
	const char *target = str(c, s->s2);
	char b = 0;
	struct iovec iov = { .iov_base = &b, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cmsg;
	ssize_t n;
	int mnt, to;

	do
		n = recvmsg(c->sync_fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != 1 || b != 'g')
		die(c, ECANCELED, NULL);
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
		die(c, EBADMSG, target);
	memcpy(&mnt, CMSG_DATA(cmsg), sizeof(int));

	to = open(target, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (to < 0)
		die(c, errno, target);
	if (syscall(SYS_move_mount, mnt, "", to, "",
		    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		die(c, errno, target);
	close(mnt);
	close(to);
}

static void run_step(struct child *c, const struct tc_step *s)
{
	char b;

	switch (s->op) {
	case TC_OP_SETNS: {
		int fd = open(str(c, s->s1), O_RDONLY | O_CLOEXEC);

		if (fd < 0 || setns(fd, s->a) < 0)
			die(c, errno, str(c, s->s1));
		close(fd);
		break;
	}
	case TC_OP_SYNC:
		/*
		 * Hooks that run in the container join its namespaces through /proc/PID/ns, which
		 * a non-dumpable process closes to its own user. Nothing else can be in the container
		 * yet, so it opens for as long as the hooks run. (So does fuse-overlayfs's helper,
		 * which joins the user namespace; a change of ids may have closed it already.)
		 */
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		send_report(c, TC_REPORT_SYNC, 0, 0, NULL);
		if (read(c->sync_fd, &b, 1) != 1 || b != 'g')
			die(c, ECANCELED, NULL);
		if (c->nondumpable)
			prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		break;
	case TC_OP_WAIT_PARENT:
		if (read(c->sync_fd, &b, 1) != 1 || b != 'g')
			die(c, ECANCELED, NULL);
		break;
	case TC_OP_WRITE_FILE:
		step_write_file(c, s);
		break;
	case TC_OP_SETRESID_ROOT:
		if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0)
			die(c, errno, NULL);
		break;
	case TC_OP_MOUNT:
		step_mount(c, s);
		break;
	case TC_OP_MOUNT_ATTR:
		step_mount_attr(c, s);
		break;
	case TC_OP_PROPAGATION:
		step_propagation(c, s);
		break;
	case TC_OP_SYMLINK:
		step_symlink(c, s);
		break;
	case TC_OP_MKNOD:
		step_mknod(c, s);
		break;
	case TC_OP_PIVOT_ROOT:
		step_pivot_root(c, s);
		break;
	case TC_OP_SETHOSTNAME:
		if (sethostname(str(c, s->s1), slen(str(c, s->s1))) < 0)
			die(c, errno, str(c, s->s1));
		break;
	case TC_OP_SETDOMAINNAME:
		if (setdomainname(str(c, s->s1), slen(str(c, s->s1))) < 0)
			die(c, errno, str(c, s->s1));
		break;
	case TC_OP_MASK_PATH:
		step_mask_path(c, s);
		break;
	case TC_OP_READONLY_PATH:
		step_readonly_path(c, s);
		break;
	case TC_OP_RLIMIT: {
		struct rlimit64 rl = { .rlim_cur = s->b, .rlim_max = s->c };

		if (syscall(SYS_prlimit64, 0, (int)s->a, &rl, NULL) < 0)
			die(c, errno, NULL);
		break;
	}
	case TC_OP_CHDIR:
		step_chdir(c, s);
		break;
	case TC_OP_CAP_BOUNDING:
		step_cap_bounding(c, s);
		break;
	case TC_OP_SETGROUPS:
		step_setgroups(c, s);
		break;
	case TC_OP_SETGID:
		if (syscall(SYS_setresgid, s->a, s->a, s->a) < 0)
			die(c, errno, NULL);
		break;
	case TC_OP_SETUID:
		step_setuid(c, s);
		break;
	case TC_OP_CAPS:
		step_caps(c, s);
		break;
	case TC_OP_UMASK:
		umask(s->a);
		break;
	case TC_OP_NO_NEW_PRIVS:
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			die(c, errno, NULL);
		break;
	case TC_OP_SECCOMP:
		step_seccomp(c, s);
		break;
	case TC_OP_OPEN_FIFO:
		c->fifo_fd = open(str(c, s->s1), O_RDWR | O_CLOEXEC);
		if (c->fifo_fd < 0)
			die(c, errno, str(c, s->s1));
		break;
	case TC_OP_READY:
		step_ready(c, s);
		break;
	case TC_OP_CLOSE_FDS:
		/* Nothing of ours may reach the container: mark every other fd close-on-exec. */
		if (syscall(SYS_close_range, 3 + (unsigned int)s->a, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			die(c, errno, NULL);
		break;
	case TC_OP_CONSOLE:
		step_console(c, s);
		break;
	case TC_OP_DUP2:
		if (dup2(s->a, s->b) < 0)
			die(c, errno, NULL);
		break;
	case TC_OP_EXEC:
		step_exec(c, s);
		break;
	case TC_OP_FIND_EXEC:
		step_find_exec(c, s);
		break;
	case TC_OP_PDEATHSIG: {
		struct pollfd p = { .fd = c->report_fd, .events = 0 };

		if (prctl(PR_SET_PDEATHSIG, (unsigned long)s->a, 0, 0, 0) < 0)
			die(c, errno, NULL);
		/* Set after the parent died, it would never fire: a closed report pipe tells. */
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
			_exit(127);
		break;
	}
	case TC_OP_UNSHARE:
		if (unshare(s->a) < 0)
			die(c, errno, NULL);
		break;
	case TC_OP_RUN:
		step_run(c, s);
		break;
	case TC_OP_SEND_MOUNT:
		step_send_mount(c, s);
		break;
	case TC_OP_ATTACH_MOUNT:
		step_attach_mount(c, s);
		break;
	case TC_OP_EXIT:
		_exit(s->a);
		break;
	case TC_OP_LOOPBACK_UP:
		step_loopback_up(c);
		break;
	case TC_OP_TAP_PERSIST:
		step_tap_persist(c, s);
		break;
	case TC_OP_NON_DUMPABLE:
		/* Also makes /proc/self root-owned, so it comes after the child maps itself. */
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			die(c, errno, NULL);
		c->nondumpable = 1;
		break;
	default:
		die(c, EINVAL, "unknown step");
	}
}

static void fork_into_pid_namespace(struct child *c)
{
	/* setns(CLONE_NEWPID) only moves our children; CLONE_PARENT hands this one to tinyc. */
	pid_t pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);

	if (pid < 0)
		die(c, errno, NULL);
	if (pid > 0) {
		send_report(c, TC_REPORT_PID, 0, pid, NULL);
		_exit(0);
	}
}

/* The parent's handlers forward signals to a pid of its own; here they would misfire. */
static void reset_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < 65; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int child_main(void *arg)
{
	struct child *c = arg;
	struct tc_plan_header *h = (struct tc_plan_header *)c->plan;
	const struct tc_step *steps = (const struct tc_step *)(c->plan + sizeof(*h));
	uint32_t i;

	/*
	 * The parent may be non-dumpable, which makes our /proc/self root-owned; the child must
	 * write its own id maps there before TC_OP_NON_DUMPABLE closes it again.
	 */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	reset_signals();
	/* Holding the parent's ends would hide its death: a read would never see EOF. */
	close(c->parent_fds[0]);
	close(c->parent_fds[1]);
	if (h->flags & TC_PLAN_NEW_SESSION)
		setsid();
	for (i = 0; i < h->nsteps; i++) {
		c->step = i;
		if ((h->flags & TC_PLAN_FORK_AFTER_SETNS) && steps[i].op != TC_OP_SETNS && i > 0 &&
		    steps[i - 1].op == TC_OP_SETNS)
			fork_into_pid_namespace(c);
		if (c->root_fd < 0 && h->root && (steps[i].flags & TC_F_IN_ROOT)) {
			c->root_fd = open(str(c, h->root), O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (c->root_fd < 0)
				die(c, errno, str(c, h->root));
		}
		run_step(c, &steps[i]);
	}
	die(c, ENOEXEC, "plan has no exec step");
}

/* ---- exported to TypeScript ---- */

/*
 * Starts the child. out[0] = pid, out[1] = read end of the report pipe, out[2] = write end
 * of the sync socket (the child waits on it in TC_OP_WAIT_PARENT; the parent may send an fd
 * with its byte, for TC_OP_ATTACH_MOUNT).
 */
int tc_spawn(uint8_t *plan, uint64_t len, int32_t *out)
{
	struct tc_plan_header *h = (struct tc_plan_header *)plan;
	int report[2], sync[2];
	struct child c;
	void *stack;
	pid_t pid;
	int err;

	if (len < sizeof(*h) || h->magic != TC_PLAN_MAGIC || h->version != TC_PLAN_VERSION ||
	    h->total_size != len || sizeof(*h) + (uint64_t)h->nsteps * sizeof(struct tc_step) > len)
		return -EINVAL;
	if (pipe2(report, O_CLOEXEC) < 0)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) < 0) {
		err = -errno;
		close(report[0]);
		close(report[1]);
		return err;
	}
	stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		err = -errno;
		goto fail;
	}

	c = (struct child){ .plan = plan, .report_fd = report[1], .sync_fd = sync[0],
			    .parent_fds = { report[0], sync[1] }, .root_fd = -1, .fifo_fd = -1,
			    .step = -1 };
	pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE, h->clone_flags | SIGCHLD, &c);
	err = pid < 0 ? -errno : 0;
	munmap(stack, CHILD_STACK_SIZE);
	if (err < 0)
		goto fail;

	close(report[1]);
	close(sync[0]);
	out[0] = pid;
	out[1] = report[0];
	out[2] = sync[1];
	return 0;

fail:
	close(report[0]);
	close(report[1]);
	close(sync[0]);
	close(sync[1]);
	return err;
}

static volatile pid_t forward_to;
static volatile sig_atomic_t pending[65];
static volatile sig_atomic_t received[65];
/* A signal the container's first process was ended for (see pass_on), 0 if none. */
static volatile sig_atomic_t ended_for;
static struct sigaction saved[32];
static int forwarding;

/* The hex mask that follows KEY in TEXT ("SigCgt:\t0000000000004002"). */
static uint64_t status_mask(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	uint64_t mask = 0;

	if (!p)
		return 0;
	for (p += strlen(key); *p == '\t' || *p == ' '; p++)
		;
	for (; *p; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;

		if (d < 0)
			break;
		mask = mask << 4 | (uint64_t)d;
	}
	return mask;
}

/*
 * Whether SIG would be dropped by the kernel at PID: PID is the init of a pid namespace (the
 * last NSpid field is 1), which only gets the signals it has a handler for, and SIG is neither
 * caught nor ignored there. Async-signal-safe: it only opens and reads /proc.
 */
static int shielded(pid_t pid, int sig)
{
	char path[40], text[2048], *ns, *eol;
	int fd, n = 0, got;
	uint64_t bit = (uint64_t)1 << (sig - 1);

	path_with_number(path, "/proc/", (unsigned long)pid);
	strcat(path, "/status");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (n < (int)sizeof(text) - 1 && (got = read(fd, text + n, sizeof(text) - 1 - n)) > 0)
		n += got;
	close(fd);
	text[n] = 0;
	ns = strstr(text, "NSpid:");
	if (!ns)
		return 0;
	eol = strchr(ns, '\n');
	if (!eol)
		eol = ns + strlen(ns);
	/* The last field is its pid in the innermost pid namespace. */
	if (eol - ns < 2 || eol[-1] != '1' || (eol[-2] != '\t' && eol[-2] != ' '))
		return 0;
	return !((status_mask(text, "SigCgt:") | status_mask(text, "SigIgn:")) & bit);
}

/* Signals whose default action ends a process (core dumps aside). */
static int ends_by_default(int sig)
{
	switch (sig) {
	case SIGHUP: case SIGINT: case SIGQUIT: case SIGUSR1: case SIGUSR2: case SIGPIPE:
	case SIGALRM: case SIGTERM: case SIGXCPU: case SIGXFSZ: case SIGVTALRM: case SIGPROF:
	case SIGIO: case SIGPWR:
		return 1;
	}
	return 0;
}

/*
 * Passes SIG on to PID. The container's first process is the init of its pid namespace, which
 * the kernel shields from any signal it has no handler for: a signal that would end any other
 * process would be lost, and tinyc would wait on. So such a signal ends it with SIGKILL
 * instead, and tc_wait reports it as ended by SIG, as it would have been outside a pid namespace.
 */
static void pass_on(pid_t pid, int sig)
{
	if (ends_by_default(sig) && shielded(pid, sig)) {
		ended_for = sig;
		kill(pid, SIGKILL);
		return;
	}
	kill(pid, sig);
}

static void forward_signal(int sig)
{
	int saved_errno = errno;

	received[sig] = 1;
	if (forward_to > 0)
		pass_on(forward_to, sig);
	else
		pending[sig] = 1; /* the container is not there yet: passed on once it is */
	errno = saved_errno;
}

/* Signals the foreground `run` passes on to the container; faults and job control stay ours. */
static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM,
				 SIGTERM, SIGCONT, SIGWINCH, SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM,
				 SIGPROF, SIGIO, SIGPWR };
#define NFORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

/*
 * From now on the signals above go to PID; with PID 0 they are held until a PID is given.
 * Called before the container exists, so that a signal sent to tinyc meanwhile is not lost
 * and does not end tinyc with the container left behind.
 */
int tc_forward(int32_t pid)
{
	struct sigaction sa;
	size_t i;
	int sig;

	if (!forwarding) {
		for (sig = 1; sig < 65; sig++)
			received[sig] = pending[sig] = 0;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = forward_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		for (i = 0; i < NFORWARDED; i++) {
			sigaction(forwarded[i], &sa, &saved[i]);
			/*
			 * One that tinyc was started to ignore (nohup, a shell's background job) stays
			 * ignored; Bun ignores SIGPIPE and SIGXFSZ itself, so those are passed on anyway.
			 */
			if (saved[i].sa_handler == SIG_IGN && forwarded[i] != SIGPIPE &&
			    forwarded[i] != SIGXFSZ)
				sigaction(forwarded[i], &saved[i], NULL);
		}
		forwarding = 1;
	}
	forward_to = pid;
	if (pid > 0)
		for (sig = 1; sig < 65; sig++)
			if (pending[sig]) {
				pending[sig] = 0;
				pass_on(pid, sig);
			}
	return 0;
}

/* Gives the signals back to the handlers that were there before tc_forward. */
int tc_forward_stop(void)
{
	size_t i;

	if (!forwarding)
		return 0;
	forward_to = 0;
	for (i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &saved[i], NULL);
	forwarding = 0;
	return 0;
}

/*
 * The signals tinyc got since it began to hold them (WHICH 0), or those of them that are held
 * still, since no process was there to pass them on to (WHICH 1): one bit per signal number.
 */
int32_t tc_signals(int32_t which)
{
	uint32_t mask = 0;
	int sig;

	/* Every signal that is passed on is below 31. */
	for (sig = 1; sig < 31; sig++)
		if (which == 0 ? received[sig] : pending[sig])
			mask |= (uint32_t)1 << sig;
	return mask;
}

/*
 * Waits for PID and stores its wait status. With TC_WAIT_FORWARD, signals are passed on to it
 * meanwhile (see tc_forward); afterwards they are held again if they were held before the
 * wait (so one that comes while the caller cleans up is neither lost nor fatal), otherwise
 * the handlers that were there before are restored.
 */
int tc_wait(int32_t pid, int32_t *status, int32_t options)
{
	int st, ret, held = forwarding && forward_to == 0;

	if (options & TC_WAIT_NOHANG) {
		ret = waitpid(pid, &st, WNOHANG | __WALL);
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return 1;
		*status = st;
		return 0;
	}
	if (options & TC_WAIT_FORWARD) {
		ended_for = 0;
		tc_forward(pid);
	}
	do
		ret = waitpid(pid, &st, __WALL);
	while (ret < 0 && errno == EINTR);
	ret = ret < 0 ? -errno : 0;
	/* Killed in place of a signal it was shielded from: ended by that signal (see pass_on). */
	if (ret == 0 && (options & TC_WAIT_FORWARD) && ended_for && WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGKILL)
		st = ended_for;
	if ((options & TC_WAIT_FORWARD) && held)
		forward_to = 0;
	else if (options & TC_WAIT_FORWARD)
		tc_forward_stop();
	if (ret == 0)
		*status = st;
	return ret;
}

int tc_strerror(int32_t err, char *buf, uint64_t len)
{
	const char *s = strerrordesc_np(err);

	if (!s)
		s = "unknown error";
	if (len == 0)
		return -EINVAL;
	scopy(buf, s, len);
	return 0;
}
