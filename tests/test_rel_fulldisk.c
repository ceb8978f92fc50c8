/*
** test_rel_fulldisk.c — checkpoints into a full filesystem. A child process
** enters a user and mount namespace of its own (what `unshare -Urm` does)
** and mounts a 2 MiB tmpfs for the checkpoint directory; the working state
** and the output stay on the ordinary disk. In there, jobs (generator ->
** key_by -> sequence checker -> exactly-once file sink) run in grandchild
** processes while a filler file takes all the free space:
**   1. a checkpoint that cannot be written fails with SL_FULL and a message;
**      with tolerable_failures = 0 the job stops with that error, and the
**      checkpoint directory is byte-identical to before, its checkpoint
**      verifies and restores;
**   2. leftovers of a checkpoint cut short (a file renamed into place, no
**      MANIFEST) are removed when the next run starts, full disk or not;
**   3. with tolerable_failures allowing it the job goes on through failed
**      checkpoints, and once space is freed it completes them and ends with
**      exactly the output and state of an uninterrupted run.
** If the kernel refuses the namespaces the test fails and says so.
*/
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "sdk_util.h"

#define FD_REFUSED 77

typedef struct fd_cfg {
  int64_t count, keys, delay_us;
  int tolerable;
  const char *point; /* SL_KILL_POINT of the job, NULL for none */
  char dir[3000];    /* state, output, logs: on the ordinary disk */
  char chk[3200];    /* the checkpoint directory: on the tmpfs */
} fd_cfg;




/* The job's log lines go to <dir>/log.txt, for the parent to watch. */
static void fd_log(void *ud, const char *line) {
  FILE *f = fopen((const char *)ud, "a");
  if (f) {
    fprintf(f, "%s\n", line);
    fclose(f);
  }
}

/* Runs the job; exits with sl_job_run's code, its message in <dir>/err.txt
** and the failed checkpoints in <dir>/failed.txt. */
static int fd_job(void *arg) {
  fd_cfg *c = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator check, sink;
  sl_job *job = NULL;
  sl_job_stats stats;
  char state[3100], out[3100], log[3100], path[3100];
  int rc;
  FILE *f;
  if (c->point) setenv("SL_KILL_POINT", c->point, 1);
  else unsetenv("SL_KILL_POINT");
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  snprintf(log, sizeof log, "%s/log.txt", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = c->chk;
  cfg.checkpoint_interval_ms = 20;
  cfg.tolerable_failures = c->tolerable;
  cfg.channel_capacity = 64;
  cfg.log = fd_log;
  cfg.log_ud = log;
  memset(&gen, 0, sizeof gen);
  gen.count = c->count;
  gen.keys = c->keys;
  gen.records_per_read = 8;
  gen.delay_us_per_read = c->delay_us;
  sl_generator_source(&src, &gen);
  sdk_checker(&check);
  sl_file_sink(&sink, out);
  rc = sdk_checked_job(&cfg, "gen", &src, 2, &check, &sink, &job);
  if (rc == SL_OK) rc = sl_job_run(job);
  snprintf(path, sizeof path, "%s/err.txt", c->dir);
  if ((f = fopen(path, "w")) != NULL) {
    fprintf(f, "%s", rc ? sl_errmsg(job) : "");
    fclose(f);
  }
  memset(&stats, 0, sizeof stats);
  if (job) sl_job_get_stats(job, &stats);
  snprintf(path, sizeof path, "%s/failed.txt", c->dir);
  if ((f = fopen(path, "w")) != NULL) {
    fprintf(f, "%lld", (long long)stats.failed_checkpoints);
    fclose(f);
  }
  sl_job_free(job);
  return rc;
}

/* Appends to the filler file until the filesystem is full. */
static void fd_fill(const char *filler) {
  static char buf[16384];
  int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0600);
  ssize_t w;
  ASSERT(fd >= 0);
  do {
    w = write(fd, buf, sizeof buf);
  } while (w > 0);
  ASSERT_MSG(w < 0 && errno == ENOSPC, "filling the tmpfs: %s", strerror(errno));
  /* the last partial block */
  while (write(fd, buf, 1) == 1) {}
  close(fd);
}

/* Every file under the checkpoint directory with its SHA-256. */
static char *fd_tree(const fd_cfg *c) {
  char *out = malloc(65536);
  ASSERT(out);
  ASSERT_EQ(test_sh(out, 65536, "cd '%s' && find . -type f | LC_ALL=C sort | xargs -r sha256sum", c->chk),
            0);
  return out;
}

static int64_t fd_file_int(const fd_cfg *c, const char *name) {
  char path[3100], *t;
  int64_t v;
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  t = sdk_read(path);
  v = atoll(t);
  free(t);
  return v;
}

static void fd_check_final(const fd_cfg *c) {
  char path[3100], *text, *sorted, *expect, *e;
  size_t cap = (size_t)c->count * 32 + 16, n = 0;
  int64_t seen = 0;
  snprintf(path, sizeof path, "%s/out.txt", c->dir);
  text = sdk_read(path);
  ASSERT_MSG(!strstr(text, "GAP") && !strstr(text, "DUP"), "a gap or duplicate in the output");
  sorted = sdk_sorted(text);
  expect = malloc(cap);
  ASSERT(expect);
  expect[0] = 0;
  for (int64_t i = 0; i < c->count; i++)
    n += (size_t)snprintf(expect + n, cap - n, "%lld\t%lld\t\n", (long long)(i % c->keys),
                          (long long)(i / c->keys));
  e = sdk_sorted(expect);
  ASSERT_MSG(strcmp(sorted, e) == 0, "the output differs from an uninterrupted run's");
  free(e);
  free(expect);
  free(sorted);
  free(text);
  for (int i = 0; i < 2; i++) {
    sqlite3 *db;
    sqlite3_stmt *q;
    snprintf(path, sizeof path, "%s/state/check/%d.db", c->dir, i);
    ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    ASSERT(sqlite3_prepare_v2(db, "SELECT key, last_seq FROM last", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
      int64_t k = sqlite3_column_int64(q, 0), s = sqlite3_column_int64(q, 1);
      int64_t n_k = c->count / c->keys + (k < c->count % c->keys ? 1 : 0);
      ASSERT_MSG(s == n_k - 1, "key %lld ends at %lld", (long long)k, (long long)s);
      seen++;
    }
    sqlite3_finalize(q);
    ASSERT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  ASSERT_EQ(seen, c->keys);
}

/* Enters a user and mount namespace and mounts a 2 MiB tmpfs at `at`; exits
** with FD_REFUSED (after saying why) when the kernel refuses. */
static void fd_enter(const char *at) {
  char map[64];
  uid_t uid = getuid();
  gid_t gid = getgid();
  int fd;
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    fprintf(stderr, "unshare(CLONE_NEWUSER | CLONE_NEWNS) refused: %s\n", strerror(errno));
    _exit(FD_REFUSED);
  }
  if ((fd = open("/proc/self/setgroups", O_WRONLY)) >= 0) {
    ASSERT(write(fd, "deny", 4) == 4);
    close(fd);
  }
  snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
  fd = open("/proc/self/uid_map", O_WRONLY);
  ASSERT(fd >= 0 && write(fd, map, strlen(map)) == (ssize_t)strlen(map));
  close(fd);
  snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
  fd = open("/proc/self/gid_map", O_WRONLY);
  ASSERT(fd >= 0 && write(fd, map, strlen(map)) == (ssize_t)strlen(map));
  close(fd);
  mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL); /* nothing propagates out */
  if (mount("tmpfs", at, "tmpfs", 0, "size=2m") != 0) {
    fprintf(stderr, "mounting a tmpfs in a user namespace refused: %s\n", strerror(errno));
    _exit(FD_REFUSED);
  }
}

/* The whole scenario, in the namespace (a child process of the test). */
static int fd_scenario(void *arg) {
  fd_cfg *c = arg;
  char small[3100], filler[3200], leftover[3400], *before, *after, *msg;
  int st;
  snprintf(small, sizeof small, "%s/small", c->dir);
  snprintf(filler, sizeof filler, "%s/filler", small);
  fd_enter(small);
  snprintf(c->chk, sizeof c->chk, "%s/chk", small);

  /* checkpoint 1 on a disk with room; the job dies right after it */
  c->point = "manifest_after";
  ASSERT_EQ(sdk_run_child(fd_job, c), 128 + SIGKILL);
  c->point = NULL;
  before = fd_tree(c);
  ASSERT_MSG(strstr(before, "./chk-1/MANIFEST"), "no checkpoint 1:\n%s", before);

  /* 1. full: the next checkpoint fails, the job stops with SL_FULL */
  fd_fill(filler);
  c->tolerable = 0;
  st = sdk_run_child(fd_job, c);
  msg = NULL;
  {
    char path[3100];
    snprintf(path, sizeof path, "%s/err.txt", c->dir);
    msg = sdk_read(path);
  }
  printf("full disk, tolerable_failures 0: %s: %s\n", sl_errstr(st), msg);
  ASSERT_MSG(st == SL_FULL, "the job ended with %d (%s), not SL_FULL: %s", st, sl_errstr(st), msg);
  ASSERT_MSG(strstr(msg, "checkpoint") && strstr(msg, "space"), "the message: %s", msg);
  free(msg);
  after = fd_tree(c);
  ASSERT_MSG(strcmp(before, after) == 0, "the checkpoint directory changed:\n%s\nnow:\n%s", before,
             after);
  free(after);
  {
    sl_chkdir_config cc;
    sl_chkdir *cd = NULL;
    char fresh[3100];
    int64_t id = 0;
    snprintf(fresh, sizeof fresh, "%s/fresh", c->dir);
    sl_chkdir_config_init(&cc);
    cc.flags = SL_CHKDIR_READONLY;
    ASSERT_OK(sl_chkdir_open(c->chk, &cc, &cd), cd);
    ASSERT_OK(sl_chkdir_verify(cd, 1, NULL), cd);
    sl_chkdir_close(cd);
    cd = NULL;
    ASSERT_OK(sl_chkdir_open(c->chk, NULL, &cd), cd); /* restoring wants it writable */
    ASSERT_OK(sl_chkdir_restore(cd, 0, NULL, fresh, NULL, 0, &id), cd);
    ASSERT_EQ(id, 1);
    sl_chkdir_close(cd);
  }

  /* 2. leftovers: with room again, a run dies after renaming a snapshot
  ** file into place, before any MANIFEST */
  ASSERT_EQ(unlink(filler), 0);
  c->point = "snapshot_renamed";
  ASSERT_EQ(sdk_run_child(fd_job, c), 128 + SIGKILL);
  c->point = NULL;
  after = fd_tree(c);
  ASSERT_MSG(strstr(after, ".db.zst") && strstr(after, "./chk-2/"), "no leftover:\n%s", after);
  ASSERT_MSG(!strstr(after, "./chk-2/MANIFEST"), "checkpoint 2 was published:\n%s", after);
  free(after);
  snprintf(leftover, sizeof leftover, "%s/chk-2", c->chk);

  /* 3. full again, tolerable_failures high: the leftovers go at the start,
  ** checkpoints fail and the job goes on; space comes back, it finishes */
  fd_fill(filler);
  c->tolerable = 1000000;
  {
    char log[3100];
    pid_t pid;
    int status = 0, freed = 0;
    snprintf(log, sizeof log, "%s/log.txt", c->dir);
    unlink(log);
    fflush(NULL);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) _exit(fd_job(c) & 0xff);
    for (int waited = 0; waited < 60000; waited += 10) {
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      if (!freed) {
        char *text = sdk_read(log);
        int fails = 0;
        for (char *p = text; (p = strstr(p, "failed")) != NULL; p++) fails++;
        free(text);
        if (fails >= 3) {
          ASSERT_MSG(access(leftover, F_OK) != 0, "the leftover %s is still there", leftover);
          ASSERT_EQ(unlink(filler), 0);
          freed = 1;
        }
      }
      sdk_sleep_ms(10);
      if (waited + 10 >= 60000) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ASSERT_MSG(0, "the job did not end in 60 s");
      }
    }
    ASSERT_MSG(freed, "the job ended before three checkpoints failed");
    ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the job ended with status %d",
               status);
    printf("full disk, tolerable_failures high: %lld failed checkpoints, then done\n",
           (long long)fd_file_int(c, "failed.txt"));
    ASSERT(fd_file_int(c, "failed.txt") >= 3);
    {
      /* the leftover went when the run started, before the restore */
      char *text = sdk_read(log), *rm = strstr(text, "chk-2: it has no MANIFEST"),
           *rs = strstr(text, "restored from checkpoint 1");
      ASSERT_MSG(rm && rs && rm < rs, "the log does not show the leftover removed at the start:\n%s",
                 text);
      free(text);
    }
  }
  {
    /* nothing left of the failed checkpoints: every entry has its MANIFEST */
    char out[4096];
    ASSERT_EQ(test_sh(out, sizeof out, "cd '%s' && for d in */; do [ -f \"$d/MANIFEST\" ] || echo \"$d\"; done",
                      c->chk), 0);
    ASSERT_MSG(out[0] == 0, "unpublished entries left: %s", out);
  }
  fd_check_final(c);
  free(before);
  return 0;
}

TEST(rel_full_disk_checkpoints) {
  fd_cfg c;
  int st;
  memset(&c, 0, sizeof c);
  c.count = test_long() ? 60000 : 16000;
  c.keys = 61;
  c.delay_us = 1000;
  snprintf(c.dir, sizeof c.dir, "%.2900s", test_dir());
  ASSERT(test_sh(NULL, 0, "mkdir -p '%s/small'", c.dir) == 0);
  st = sdk_run_child(fd_scenario, &c);
  ASSERT_MSG(st != FD_REFUSED,
             "this test needs a user and mount namespace (as `unshare -Urm` makes) to mount a "
             "small tmpfs, and the kernel refused it (see above); it cannot run here");
  ASSERT_EQ(st, 0);
}
