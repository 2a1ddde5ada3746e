/*
 * report: prints facts about the process it runs as, for the integration tests.
 * Built static (gcc -static -O2) into the busybox fixture as /bin/report.
 *
 *   report fds     one line per open fd: "FD TARGET" (the fd used to list is left out)
 *   report ids     "uid=R euid=E gid=R egid=E groups=G1,G2" (groups empty when none)
 *   report umask   the umask in octal, e.g. "0022"
 *   report caps    the Cap*, NoNewPrivs and Seccomp lines of /proc/self/status, verbatim
 *   report segv    dies of SIGSEGV (writes through a null pointer)
 *   report cwd     the working directory
 *   report pid     "pid=P ppid=PP"
 */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    perror("report: /proc/self/fd");
    return 1;
  }
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd == self) continue;
    char target[PATH_MAX];
    ssize_t n = readlinkat(self, e->d_name, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    printf("%d %s\n", fd, target);
  }
  closedir(d);
  return 0;
}

static int ids(void) {
  gid_t groups[NGROUPS_MAX];
  int n = getgroups(NGROUPS_MAX, groups);
  if (n < 0) {
    perror("report: getgroups");
    return 1;
  }
  printf("uid=%u euid=%u gid=%u egid=%u groups=", getuid(), geteuid(), getgid(), getegid());
  for (int i = 0; i < n; i++) printf(i ? ",%u" : "%u", groups[i]);
  printf("\n");
  return 0;
}

static int caps(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) {
    perror("report: /proc/self/status");
    return 1;
  }
  char line[512];
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs:", 11) ||
        !strncmp(line, "Seccomp:", 8))
      fputs(line, stdout);
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (!strcmp(what, "fds")) return fds();
  if (!strcmp(what, "ids")) return ids();
  if (!strcmp(what, "caps")) return caps();
  if (!strcmp(what, "umask")) {
    mode_t m = umask(0);
    umask(m);
    printf("%04o\n", (unsigned)m);
    return 0;
  }
  if (!strcmp(what, "cwd")) {
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf)) {
      perror("report: getcwd");
      return 1;
    }
    printf("%s\n", buf);
    return 0;
  }
  if (!strcmp(what, "pid")) {
    printf("pid=%d ppid=%d\n", (int)getpid(), (int)getppid());
    return 0;
  }
  if (!strcmp(what, "segv")) {
    fflush(stdout);
    *(volatile int *)0 = 1;
    raise(SIGSEGV); /* only if the write somehow did not fault */
    return 1;
  }
  fprintf(stderr, "usage: report fds|ids|umask|caps|segv|cwd|pid\n");
  return 2;
}
