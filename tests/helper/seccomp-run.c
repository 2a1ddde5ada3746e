/*
 * seccomp-run: loads a seccomp filter, then runs a command under it, for the unit tests.
 *
 *   seccomp-run FILTER FLAGS COMMAND [ARG...]
 *
 * FILTER is a file of struct sock_filter, as compileSeccomp writes them, or "-" for none.
 * FLAGS are the SECCOMP_FILTER_FLAG_* bits (decimal or 0x...). COMMAND is run with execvp,
 * unless it is one of these probes, which run in this process once the filter is loaded:
 *
 *   @sys NR [ARG...]     syscall(NR, ARG...) through the native ABI
 *   @int80 NR [ARG...]   the same through int $0x80, the i386 ABI (x86_64 only, up to 3 args)
 *   @fork FLAGS          raw clone(FLAGS | SIGCHLD); the child exits at once
 *
 * A probe prints "ok RESULT" and exits 0, or prints the strerror text and exits 1. Numbers
 * are decimal or 0x.... The filter is loaded with no_new_privs set, so any user can run this.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sock_filter prog[4096];

static unsigned long num(const char *s) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || *end || end == s) {
    fprintf(stderr, "seccomp-run: not a number: %s\n", s);
    exit(2);
  }
  return v;
}

static int report(long ret, int err) {
  if (ret == -1) {
    printf("%s\n", strerror(err));
    return 1;
  }
  printf("ok %ld\n", ret);
  return 0;
}

static long int80(unsigned long nr, unsigned long a, unsigned long b, unsigned long c) {
#ifdef __x86_64__
  int ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
  if (ret < 0 && ret > -4096) {
    errno = -ret;
    return -1;
  }
  return ret;
#else
  (void)nr, (void)a, (void)b, (void)c;
  errno = ENOSYS;
  return -1;
#endif
}

static int run_probe(int argc, char **argv) {
  /* argv[0] is the probe name, argv[1..] its numbers. */
  if (argc < 2) {
    fprintf(stderr, "seccomp-run: %s needs a number\n", argv[0]);
    return 2;
  }
  unsigned long n[7] = {0};
  for (int i = 1; i < argc && i < 8; i++) n[i - 1] = num(argv[i]);

  if (strcmp(argv[0], "@sys") == 0) {
    long ret = syscall((long)n[0], n[1], n[2], n[3], n[4], n[5], n[6]);
    return report(ret, errno);
  }
  if (strcmp(argv[0], "@int80") == 0) {
    long ret = int80(n[0], n[1], n[2], n[3]);
    return report(ret, errno);
  }
  if (strcmp(argv[0], "@fork") == 0) {
    long pid = syscall(SYS_clone, n[0] | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid < 0) return report(-1, errno);
    waitpid((pid_t)pid, NULL, 0);
    return report(0, 0);
  }
  fprintf(stderr, "seccomp-run: unknown probe %s\n", argv[0]);
  return 2;
}

static void load(const char *path, unsigned long flags) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  size_t n = fread(prog, sizeof prog[0], sizeof prog / sizeof prog[0], f);
  fclose(f);
  struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};

  /* A killed probe must not leave a core file behind in the test's folder. */
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    perror("seccomp-run: no_new_privs");
    exit(2);
  }
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog) < 0) {
    perror("seccomp-run: seccomp");
    exit(2);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: seccomp-run FILTER FLAGS COMMAND [ARG...]\n");
    return 2;
  }
  unsigned long flags = num(argv[2]);
  if (strcmp(argv[1], "-") != 0) load(argv[1], flags);
  if (argv[3][0] == '@') {
    int status = run_probe(argc - 3, argv + 3);
    fflush(stdout);
    return status;
  }
  execvp(argv[3], argv + 3);
  fprintf(stderr, "seccomp-run: %s: %s\n", argv[3], strerror(errno));
  return 127;
}
