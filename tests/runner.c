/*
** runner.c — the test runner of statelite: runs every registered test in a
** child process of its own, in a fresh scratch directory, and ends with the
** line "N passed, N failed".
**
** The registry is build/test_list.h, which the Makefile writes from the
** TEST(name) lines of tests/test_*.c as one TEST_ENTRY(name) per test.
**
** Usage: test_runner [options] [SUBSTRING...]
**   SUBSTRING...   run only tests whose name contains one of these
**   --quick        run only tests whose name starts with quick_
**   --list         print the selected test names and exit
**   -j N           run N tests at the same time (default 1)
**   --timeout SEC  seconds a test may take before it is killed (default 300,
**                  or the environment variable SL_TEST_TIMEOUT)
**   --one NAME     run test NAME in this process, without forking (used by
**                  --wrap, and handy under a debugger); exit status 0 if it
**                  passed, 1 if it failed
**   --wrap CMD     run each test as `CMD <this runner> --one NAME` through
**                  /bin/sh, e.g. --wrap "valgrind --error-exitcode=99 -q"
**   --keep         keep the scratch directories of passing tests too
**
** Each test gets the directory $TMPDIR/sl-test-XXXXXX/<name> (TMPDIR defaults
** to /tmp). Directories of passing tests are removed; those of failing tests
** are kept and their paths printed. The exit status is 0 when no test failed,
** 1 when one did and 2 for a usage error.
*/
#define _XOPEN_SOURCE 700

#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The registry: first the prototypes, then the table. */
#define TEST_ENTRY(name) void test_##name(void);
#include "test_list.h"
#undef TEST_ENTRY

typedef struct test_case {
  const char *name;
  void (*fn)(void);
} test_case;

static const test_case g_tests[] = {
#define TEST_ENTRY(name) {#name, test_##name},
#include "test_list.h"
#undef TEST_ENTRY
  {NULL, NULL}
};

#define N_TESTS ((int)(sizeof(g_tests) / sizeof(g_tests[0])) - 1)
#define MAX_MSG 2048
#define MAX_JOBS 64

/* ------------------------------------------------------------------------ */
/* State of the test being run (in the child, or in --one mode)             */
/* ------------------------------------------------------------------------ */

static char g_dir[PATH_MAX];  /* the test's scratch directory */
static int g_msg_fd = -1;     /* where test_fail() reports, -1: stderr */
static const char *g_name = "";

/* buf = a "/" b; returns 0, or -1 (and an empty buf) when it does not fit. */
static int join_path(char *buf, size_t cap, const char *a, const char *b) {
  int n = snprintf(buf, cap, "%s/%s", a, b);
  if (n < 0 || (size_t)n >= cap) {
    buf[0] = '\0';
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The interface of test.h                                                   */
/* ------------------------------------------------------------------------ */

void test_fail(const char *file, int line, const char *fmt, ...) {
  char msg[MAX_MSG];
  int n;
  va_list ap;

  n = snprintf(msg, sizeof msg, "%s:%d: ", file, line);
  if (n < 0 || n >= (int)sizeof msg) n = 0;
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  va_end(ap);

  fflush(stdout);
  if (g_msg_fd >= 0) {
    /* The parent prints the message in its FAIL line. A message shorter than
    ** PIPE_BUF is written in one piece, so several processes of one test
    ** (a test may fork) cannot interleave within a message. */
    size_t len = strlen(msg);
    msg[len++] = '\n';
    if (write(g_msg_fd, msg, len) < 0) fprintf(stderr, "%s", msg);
  } else {
    fprintf(stderr, "FAIL %s: %s\n", g_name, msg);
    if (g_dir[0]) fprintf(stderr, "     scratch directory kept: %s\n", g_dir);
  }
  exit(1);
}

const char *test_dir(void) {
  return g_dir;
}

const char *test_bin(const char *name) {
  /* A few buffers in turn, so that test_bin("a") and test_bin("b") can be
  ** used in one expression. */
  static char bufs[8][PATH_MAX];
  static unsigned next;
  char *buf = bufs[next++ % 8];
  const char *dir = getenv("SL_BIN_DIR");
  char self[PATH_MAX];

  if (!dir || !*dir) {
    /* Beside this runner, which make builds in the same directory. */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      self[n] = '\0';
      char *slash = strrchr(self, '/');
      if (slash) *slash = '\0';
      dir = self;
    } else {
      dir = ".";
    }
  }
  if (join_path(buf, PATH_MAX, dir, name) != 0) {
    test_fail(__FILE__, __LINE__, "test_bin: path too long: %s/%s", dir, name);
  }
  return buf;
}

int test_sh(char *out, size_t cap, const char *fmt, ...) {
  va_list ap;
  int len, status;
  char *cmd;

  va_start(ap, fmt);
  len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (len < 0) return -1;
  cmd = malloc((size_t)len + 1);
  if (!cmd) return -1;
  va_start(ap, fmt);
  vsnprintf(cmd, (size_t)len + 1, fmt, ap);
  va_end(ap);

  if (out && cap > 0) out[0] = '\0';
  fflush(stdout);
  fflush(stderr);
  if (!out || cap == 0) {
    status = system(cmd);
  } else {
    FILE *p = popen(cmd, "r");
    size_t got = 0;
    if (!p) {
      free(cmd);
      return -1;
    }
    for (;;) {
      char tmp[4096];
      size_t n = fread(tmp, 1, sizeof tmp, p);
      if (n == 0) break;
      if (got < cap - 1) {
        size_t take = cap - 1 - got;
        if (take > n) take = n;
        memcpy(out + got, tmp, take);
        got += take;
      }
    }
    out[got] = '\0';
    status = pclose(p);
  }
  free(cmd);

  if (status == -1) return -1;
  if (WIFEXITED(status)) {
    /* The shell's 127 means it could not run the command at all. */
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int test_long(void) {
  const char *s = getenv("SL_TEST_LONG");
  return s && *s && strcmp(s, "0") != 0;
}

/* ------------------------------------------------------------------------ */
/* Small utilities                                                           */
/* ------------------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  if (remove(path) != 0 && errno != ENOENT) {
    fprintf(stderr, "runner: cannot remove %s: %s\n", path, strerror(errno));
  }
  return 0;
}

static int chmod_entry(const char *path, const struct stat *sb, int flag,
                       struct FTW *ftw) {
  (void)ftw;
  if (flag == FTW_D || flag == FTW_DNR) chmod(path, (sb->st_mode & 07777) | S_IRWXU);
  return 0;
}

/* rm -rf path */
static void rm_rf(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return;
  if (S_ISDIR(sb.st_mode)) {
    /* A test may have left a directory read-only: make them all writable
    ** first (parents before children), then remove depth first. */
    nftw(path, chmod_entry, 32, FTW_PHYS);
    nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
  } else {
    remove(path);
  }
}

static int is_dir_empty(const char *path) {
  DIR *d = opendir(path);
  struct dirent *e;
  int empty = 1;
  if (!d) return 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      empty = 0;
      break;
    }
  }
  closedir(d);
  return empty;
}

static const test_case *find_test(const char *name) {
  for (int i = 0; i < N_TESTS; i++) {
    if (strcmp(g_tests[i].name, name) == 0) return &g_tests[i];
  }
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: test_runner [options] [SUBSTRING...]\n"
          "  SUBSTRING...   run only tests whose name contains one of these\n"
          "  --quick        run only tests whose name starts with quick_\n"
          "  --list         print the selected test names and exit\n"
          "  -j N           run N tests at the same time (default 1)\n"
          "  --timeout SEC  seconds a test may take (default 300, or SL_TEST_TIMEOUT)\n"
          "  --one NAME     run test NAME in this process, without forking\n"
          "  --wrap CMD     run each test as: CMD <this runner> --one NAME\n"
          "  --keep         keep the scratch directories of passing tests too\n"
          "Scratch directories are made under $TMPDIR (default /tmp).\n");
}

/* ------------------------------------------------------------------------ */
/* Running tests                                                             */
/* ------------------------------------------------------------------------ */

typedef struct job {
  const test_case *t;
  pid_t pid;          /* 0: slot free */
  int msg_fd;         /* read end of the failure-message pipe */
  double started;
  char dir[PATH_MAX];
  char msg[MAX_MSG];
  size_t msg_len;
} job;

static job g_jobs[MAX_JOBS];
static int g_njobs = 1;
static int g_sigpipe[2] = {-1, -1};   /* SIGCHLD self-pipe */

static void on_sigchld(int sig) {
  int saved = errno;
  (void)sig;
  if (g_sigpipe[1] >= 0) (void)!write(g_sigpipe[1], "", 1);
  errno = saved;
}

static void on_interrupt(int sig) {
  /* Take the running tests (each leads a process group) down with us. */
  for (int i = 0; i < g_njobs; i++) {
    if (g_jobs[i].pid > 0) kill(-g_jobs[i].pid, SIGKILL);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static void set_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFD);
  if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Runs t in this process, in directory dir; returns only if it passed. */
static void run_here(const test_case *t, const char *dir) {
  g_name = t->name;
  snprintf(g_dir, sizeof g_dir, "%s", dir);
  if (chdir(g_dir) != 0) {
    test_fail(__FILE__, __LINE__, "cannot enter the scratch directory %s: %s",
              g_dir, strerror(errno));
  }
  setenv("SL_TEST_DIR", g_dir, 1);
  t->fn();
  fflush(stdout);
  fflush(stderr);
}

/* The child's side of a job. Never returns. */
static _Noreturn void child_main(job *j, int msg_wfd, const char *self, const char *wrap) {
  int devnull;

  setpgid(0, 0);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  close(g_sigpipe[0]);
  close(g_sigpipe[1]);
  g_sigpipe[0] = g_sigpipe[1] = -1;
  for (int i = 0; i < g_njobs; i++) {
    if (g_jobs[i].pid > 0) close(g_jobs[i].msg_fd);
  }
  devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) {
    dup2(devnull, 0);
    if (devnull != 0) close(devnull);
  }
  g_msg_fd = msg_wfd;

  if (wrap) {
    char fdbuf[16];
    if (chdir(j->dir) != 0) {
      test_fail(__FILE__, __LINE__, "cannot enter the scratch directory %s: %s",
                j->dir, strerror(errno));
    }
    snprintf(fdbuf, sizeof fdbuf, "%d", msg_wfd);
    setenv("SL_TEST_MSG_FD", fdbuf, 1);
    setenv("SL_TEST_DIR", j->dir, 1);
    /* $0 is this runner and $1 the test: no quoting trouble with either. */
    size_t n = strlen(wrap) + 64;
    char *script = malloc(n);
    if (!script) test_fail(__FILE__, __LINE__, "out of memory");
    snprintf(script, n, "exec %s \"$0\" --one \"$1\"", wrap);
    execl("/bin/sh", "sh", "-c", script, self, j->t->name, (char *)NULL);
    test_fail(__FILE__, __LINE__, "cannot run /bin/sh: %s", strerror(errno));
  }
  set_cloexec(msg_wfd);
  run_here(j->t, j->dir);
  exit(0);
}

static void drain_msg(job *j) {
  for (;;) {
    ssize_t n;
    if (j->msg_len >= sizeof j->msg - 1) {
      char junk[512];
      n = read(j->msg_fd, junk, sizeof junk);
    } else {
      n = read(j->msg_fd, j->msg + j->msg_len, sizeof j->msg - 1 - j->msg_len);
      if (n > 0) j->msg_len += (size_t)n;
    }
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  j->msg[j->msg_len] = '\0';
}

typedef struct totals {
  int passed, failed, keep;
} totals;

/* Reports the end of job j whose wait status is `status` (or a timeout). */
static void finish(job *j, int status, int timed_out, double timeout, totals *tot) {
  double secs = now_s() - j->started;
  char why[MAX_MSG + 64];
  int ok = 0;

  drain_msg(j);
  close(j->msg_fd);
  /* Trim the trailing newline; join several messages with "; ". */
  while (j->msg_len > 0 && j->msg[j->msg_len - 1] == '\n') j->msg[--j->msg_len] = '\0';
  if (strchr(j->msg, '\n')) {
    char joined[MAX_MSG];
    size_t k = 0;
    for (const char *p = j->msg; *p && k + 3 < sizeof joined; p++) {
      if (*p == '\n') {
        joined[k++] = ';';
        joined[k++] = ' ';
      } else {
        joined[k++] = *p;
      }
    }
    joined[k] = '\0';
    memcpy(j->msg, joined, k + 1);
    j->msg_len = k;
  }

  if (timed_out) {
    snprintf(why, sizeof why, "timed out after %.0f s%s%s", timeout,
             j->msg_len ? "; " : "", j->msg);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    ok = 1;
  } else if (j->msg_len) {
    snprintf(why, sizeof why, "%s", j->msg);
  } else if (WIFEXITED(status)) {
    snprintf(why, sizeof why, "exit status %d%s", WEXITSTATUS(status),
             WEXITSTATUS(status) == 99 ? " (errors reported above)" : "");
  } else if (WIFSIGNALED(status)) {
    snprintf(why, sizeof why, "killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  } else {
    snprintf(why, sizeof why, "ended with wait status 0x%x", (unsigned)status);
  }

  if (ok) {
    tot->passed++;
    printf("ok   %s (%.2fs)\n", j->t->name, secs);
    if (!tot->keep) rm_rf(j->dir);
  } else {
    tot->failed++;
    printf("FAIL %s: %s\n", j->t->name, why);
    printf("     scratch directory kept: %s\n", j->dir);
  }
  fflush(stdout);
  j->pid = 0;
  j->msg_len = 0;
}

static int start(job *j, const test_case *t, const char *base, const char *self,
                 const char *wrap) {
  int p[2];
  pid_t pid;

  j->t = t;
  j->msg_len = 0;
  j->msg[0] = '\0';
  if (join_path(j->dir, sizeof j->dir, base, t->name) != 0 ||
      mkdir(j->dir, 0777) != 0) {
    fprintf(stderr, "runner: cannot create %s: %s\n", j->dir, strerror(errno));
    return -1;
  }
  if (pipe(p) != 0) {
    fprintf(stderr, "runner: pipe: %s\n", strerror(errno));
    return -1;
  }
  set_cloexec(p[0]);
  fflush(stdout);
  fflush(stderr);
  j->started = now_s();
  pid = fork();
  if (pid < 0) {
    fprintf(stderr, "runner: fork: %s\n", strerror(errno));
    close(p[0]);
    close(p[1]);
    return -1;
  }
  if (pid == 0) {
    close(p[0]);
    child_main(j, p[1], self, wrap);
  }
  setpgid(pid, pid);  /* also done by the child; whichever runs first wins */
  close(p[1]);
  set_nonblock(p[0]);
  j->msg_fd = p[0];
  j->pid = pid;
  return 0;
}

static int selected(const test_case *t, int quick, char **filters, int nfilters) {
  if (quick && strncmp(t->name, "quick_", 6) != 0) return 0;
  if (nfilters == 0) return 1;
  for (int i = 0; i < nfilters; i++) {
    if (strstr(t->name, filters[i])) return 1;
  }
  return 0;
}

/* --one NAME: run in this process. */
static int run_one(const char *name) {
  const test_case *t = find_test(name);
  const char *env_dir = getenv("SL_TEST_DIR");
  const char *env_fd = getenv("SL_TEST_MSG_FD");
  char base[PATH_MAX], dir[PATH_MAX];
  int own_dir = 0;

  if (!t) {
    fprintf(stderr, "runner: no test named %s\n", name);
    return 2;
  }
  if (env_fd && *env_fd) g_msg_fd = atoi(env_fd);
  if (env_dir && *env_dir) {
    snprintf(dir, sizeof dir, "%s", env_dir);
  } else {
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/sl-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
      fprintf(stderr, "runner: cannot create a directory in %s: %s\n",
              tmp && *tmp ? tmp : "/tmp", strerror(errno));
      return 1;
    }
    if (join_path(dir, sizeof dir, base, name) != 0 || mkdir(dir, 0777) != 0) {
      fprintf(stderr, "runner: cannot create %s: %s\n", dir, strerror(errno));
      return 1;
    }
    own_dir = 1;
  }
  run_here(t, dir);
  if (own_dir) {
    if (chdir("/") != 0) { /* leave the directory before removing it */ }
    rm_rf(base);
  }
  return 0;
}

int main(int argc, char **argv) {
  int quick = 0, list = 0, keep = 0;
  double timeout = 300;
  const char *wrap = NULL, *one = NULL;
  char **filters;
  int nfilters = 0;
  const char *env_timeout = getenv("SL_TEST_TIMEOUT");

  setvbuf(stdout, NULL, _IOLBF, 0);
  if (env_timeout && atof(env_timeout) > 0) timeout = atof(env_timeout);
  filters = calloc((size_t)argc + 1, sizeof *filters);
  if (!filters) return 2;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      quick = 1;
    } else if (strcmp(a, "--list") == 0) {
      list = 1;
    } else if (strcmp(a, "--keep") == 0) {
      keep = 1;
    } else if (strcmp(a, "--one") == 0 && i + 1 < argc) {
      one = argv[++i];
    } else if (strcmp(a, "--wrap") == 0 && i + 1 < argc) {
      wrap = argv[++i];
      if (!*wrap) wrap = NULL;
    } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
      timeout = atof(argv[++i]);
      if (timeout <= 0) {
        fprintf(stderr, "runner: --timeout wants a positive number of seconds\n");
        free(filters);
        return 2;
      }
    } else if (strncmp(a, "-j", 2) == 0) {
      const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
      g_njobs = atoi(v);
      if (g_njobs < 1 || g_njobs > MAX_JOBS) {
        fprintf(stderr, "runner: -j wants a number from 1 to %d\n", MAX_JOBS);
        free(filters);
        return 2;
      }
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      free(filters);
      return 0;
    } else if (a[0] == '-') {
      fprintf(stderr, "runner: unknown option %s\n", a);
      usage(stderr);
      free(filters);
      return 2;
    } else {
      filters[nfilters++] = argv[i];
    }
  }

  if (one) {
    free(filters);
    return run_one(one);
  }

  /* Select. */
  const test_case **sel = calloc((size_t)N_TESTS + 1, sizeof *sel);
  int nsel = 0;
  if (!sel) {
    free(filters);
    return 2;
  }
  for (int i = 0; i < N_TESTS; i++) {
    if (selected(&g_tests[i], quick, filters, nfilters)) sel[nsel++] = &g_tests[i];
  }
  if (list) {
    for (int i = 0; i < nsel; i++) printf("%s\n", sel[i]->name);
    free(sel);
    free(filters);
    return 0;
  }
  if (nfilters > 0 && nsel == 0) {
    fprintf(stderr, "runner: no test name contains");
    for (int i = 0; i < nfilters; i++) fprintf(stderr, " '%s'", filters[i]);
    fprintf(stderr, "%s\n", quick ? " and starts with quick_" : "");
    printf("0 passed, 0 failed\n");
    free(sel);
    free(filters);
    return 2;
  }

  /* The runner's own path, for --wrap. */
  char self[PATH_MAX];
  ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sn > 0) {
    self[sn] = '\0';
  } else if (!realpath(argv[0], self)) {
    snprintf(self, sizeof self, "%s", argv[0]);
  }

  /* The scratch base directory. */
  const char *tmp = getenv("TMPDIR");
  char base_tmpl[PATH_MAX], base[PATH_MAX];
  snprintf(base_tmpl, sizeof base_tmpl, "%s/sl-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(base_tmpl) || !realpath(base_tmpl, base)) {
    fprintf(stderr, "runner: cannot create a directory in %s: %s\n",
            tmp && *tmp ? tmp : "/tmp", strerror(errno));
    free(sel);
    free(filters);
    return 2;
  }

  /* Signals. */
  struct sigaction sa;
  if (pipe(g_sigpipe) != 0) {
    fprintf(stderr, "runner: pipe: %s\n", strerror(errno));
    return 2;
  }
  set_cloexec(g_sigpipe[0]);
  set_cloexec(g_sigpipe[1]);
  set_nonblock(g_sigpipe[0]);
  set_nonblock(g_sigpipe[1]);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  totals tot = {0, 0, keep};
  int next = 0, running = 0;

  while (next < nsel || running > 0) {
    /* Fill the free slots. */
    while (next < nsel && running < g_njobs) {
      job *j = NULL;
      for (int i = 0; i < g_njobs; i++) {
        if (g_jobs[i].pid == 0) { j = &g_jobs[i]; break; }
      }
      if (start(j, sel[next], base, self, wrap) != 0) {
        printf("FAIL %s: the runner could not start it\n", sel[next]->name);
        tot.failed++;
      } else {
        running++;
      }
      next++;
    }
    if (running == 0) continue;

    /* Reap whatever has ended. */
    int reaped = 0;
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (int i = 0; i < g_njobs; i++) {
        if (g_jobs[i].pid == pid) {
          /* Kill what the test left behind in its process group. */
          kill(-pid, SIGKILL);
          finish(&g_jobs[i], status, 0, timeout, &tot);
          running--;
          reaped = 1;
          break;
        }
      }
    }
    if (reaped) continue;

    /* Kill those past their time; wait for the next event otherwise. */
    double t = now_s(), wait_s = 1.0;
    for (int i = 0; i < g_njobs; i++) {
      job *j = &g_jobs[i];
      if (j->pid <= 0) continue;
      double left = j->started + timeout - t;
      if (left <= 0) {
        int status = 0;
        kill(-j->pid, SIGKILL);
        kill(j->pid, SIGKILL);
        while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR) {}
        finish(j, status, 1, timeout, &tot);
        running--;
        wait_s = 0;
      } else if (left < wait_s) {
        wait_s = left;
      }
    }
    if (wait_s > 0) {
      struct pollfd pfd = {g_sigpipe[0], POLLIN, 0};
      int ms = (int)(wait_s * 1000) + 1;
      if (poll(&pfd, 1, ms) > 0) {
        char junk[64];
        while (read(g_sigpipe[0], junk, sizeof junk) > 0) {}
      }
    }
  }

  if (tot.failed == 0 && !keep) {
    rm_rf(base);
  } else if (is_dir_empty(base)) {
    rmdir(base);
  }
  close(g_sigpipe[0]);
  close(g_sigpipe[1]);
  free(sel);
  free(filters);
  printf("%d passed, %d failed\n", tot.passed, tot.failed);
  return tot.failed ? 1 : 0;
}
