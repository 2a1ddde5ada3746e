// measure: runs one command and prints "WALL_NS CPU_NS MAXRSS_KIB STATUS" on stdout. CPU_NS is
// user plus system time of the command and what it reaped; STATUS is the exit code, or 128+N
// after death by signal N.
//
// The benchmark runs every runtime through this program instead of timing Bun.spawn directly.
// A child made with vfork (as Bun spawns) starts its peak RSS at the parent's own, so every
// runtime would show at least Bun's ~30 MiB. Forked from this small program, the floor is its
// few hundred KiB. wait4 reports the peak of the largest process of the tree that the command
// itself reaped (the kernel's RUSAGE_BOTH for a waited-for child), and the clock covers only
// fork to reap, not the benchmark's own spawning. CPU time, unlike wall time, hardly moves
// when other work loads the machine.
//
// usage: measure TIMEOUT_SECONDS COMMAND [ARG...]
// The command's stdout goes to /dev/null; stdin and stderr are this program's. After
// TIMEOUT_SECONDS the command is killed with SIGKILL.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;

static void on_alarm(int sig) {
  (void)sig;
  if (child > 0) kill(child, SIGKILL);
}

// Signals from the terminal reach the command directly (same process group); this program
// must outlive it to report, so it ignores them and restores the defaults for the command.
static void set_signals(void (*handler)(int)) {
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], handler);
}

static void run_child(char **argv) {
  set_signals(SIG_DFL);
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null < 0 || dup2(null, STDOUT_FILENO) < 0) _exit(125);
  execvp(argv[0], argv);
  fprintf(stderr, "measure: %s: cannot run\n", argv[0]);
  _exit(errno == ENOENT ? 127 : 126);
}

static long long ns_between(struct timespec a, struct timespec b) {
  return (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

static long long tv_ns(struct timeval t) {
  return (long long)t.tv_sec * 1000000000LL + (long long)t.tv_usec * 1000LL;
}

int main(int argc, char **argv) {
  if (argc < 3 || atoi(argv[1]) <= 0) {
    fprintf(stderr, "usage: measure TIMEOUT_SECONDS COMMAND [ARG...]\n");
    return 2;
  }
  set_signals(SIG_IGN);
  struct sigaction sa = {.sa_handler = on_alarm};
  sigaction(SIGALRM, &sa, NULL);

  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  pid_t pid = fork();
  if (pid < 0) {
    perror("measure: fork");
    return 125;
  }
  if (pid == 0) run_child(argv + 2);
  child = pid;
  alarm((unsigned)atoi(argv[1]));

  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("measure: wait4");
      return 125;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  long long cpu = tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime);
  printf("%lld %lld %ld %d\n", ns_between(start, end), cpu, ru.ru_maxrss, code);
  return 0;
}
