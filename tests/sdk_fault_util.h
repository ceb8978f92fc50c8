/*
** sdk_fault_util.h — helpers of the SDK fault loops (test_sdk_alloc_fault.c,
** test_sdk_stop_points.c): a thread-safe allocator for sl_job_config that
** numbers every allocation, fails allocation N (once, or N and every one
** after it) and counts the blocks not yet freed; the job the loops run, in
** the test process itself (generators -> key_by -> sequence checkers ->
** the exactly-once file sink, checkpoints every 5 ms); what a finished job
** must hold; and the leak
** checks after a run: no statelite block, no SQLite memory and no file
** descriptor left over. The allocator also serves the stop test: from the
** start of a given checkpoint it numbers the allocations again, asks the
** job to stop at one of them and can hold the thread that makes another.
** SL_TEST_VERBOSE=1 shows the jobs' log lines on standard error.
**
** Everything here is static (one copy per test file); text returned is
** malloc'd (free()).
*/
#ifndef SL_SDK_FAULT_UTIL_H
#define SL_SDK_FAULT_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "sdk_util.h"
#include "store_util.h"
#include "torture.h"

/* ---- the allocator ---------------------------------------------------------- */

#define AF_HDR 16
static const uint64_t af_magic = 0x534c4a4f42414c4cull;

static struct {
  atomic_int armed;
  atomic_long count;       /* allocations numbered since armed */
  long fail_at;            /* fail this one (0: none) */
  int persistent;          /* and every one after it */
  atomic_int injected;     /* failures injected since armed */
  atomic_long outstanding; /* blocks handed out and not freed */
  /* the stop test: when checkpoint stop_checkpoint begins (stop_armed),
  ** allocations are counted again from 1; number stop_at asks the job to
  ** stop (0: the stop comes at once), and the thread making number
  ** pause_at (0: none) sleeps pause_ms there */
  atomic_int stop_armed;
  atomic_long stop_count;
  long stop_at, pause_at;
  int64_t pause_ms;
  atomic_int stop_done, pause_done;
  atomic_int stop_late;    /* the stop came after the checkpoint was complete */
  atomic_int stop_at_end;  /* or after both generators had read their input */
  atomic_int inputs_done;  /* generator instances whose read() said SL_DONE */
  atomic_int pause_late;   /* the pause too */
  sl_job *volatile job;
  const char *stop_savepoint;
  atomic_long completed;   /* newest checkpoint the checker saw complete */
  atomic_llong cp2_begun_ms, cp2_done_ms; /* when checkpoint 2 began and completed */
  long stop_checkpoint;
} AF;

static inline void af_stop_now(void) {
  if (atomic_exchange(&AF.stop_done, 1)) return;
  atomic_store(&AF.stop_late, atomic_load(&AF.completed) >= AF.stop_checkpoint);
  atomic_store(&AF.stop_at_end, atomic_load(&AF.inputs_done) >= 2);
  sl_job_stop(AF.job, AF.stop_savepoint);
}

/* Called at every allocation: the stop and the pause of the stop test. */
static inline void af_stop_point(void) {
  long k;
  if (!atomic_load(&AF.stop_armed)) return;
  k = atomic_fetch_add(&AF.stop_count, 1) + 1;
  if (k == AF.stop_at) af_stop_now();
  if (k == AF.pause_at && AF.pause_ms > 0 && !atomic_exchange(&AF.pause_done, 1)) {
    atomic_store(&AF.pause_late, atomic_load(&AF.completed) >= AF.stop_checkpoint);
    sdk_sleep_ms(AF.pause_ms);
  }
}

/* Arms the stop test for checkpoint `id` (its id in a fresh directory):
** see AF; sp names the savepoint to stop with (NULL: none). */
static inline void af_arm_stop(long stop_at, long pause_at, int64_t pause_ms, long id,
                               const char *sp) {
  AF.stop_at = stop_at;
  AF.pause_at = pause_at;
  AF.pause_ms = pause_ms;
  AF.stop_checkpoint = id;
  AF.stop_savepoint = sp;
  atomic_store(&AF.stop_count, 0);
  atomic_store(&AF.stop_done, 0);
  atomic_store(&AF.pause_done, 0);
  atomic_store(&AF.stop_late, 0);
  atomic_store(&AF.stop_at_end, 0);
  atomic_store(&AF.pause_late, 0);
  atomic_store(&AF.stop_armed, 0);
}

static inline int af_fails(void) {
  long n;
  af_stop_point();
  if (!atomic_load(&AF.armed)) return 0;
  n = atomic_fetch_add(&AF.count, 1) + 1;
  if (AF.fail_at && (n == AF.fail_at || (AF.persistent && n > AF.fail_at))) {
    atomic_fetch_add(&AF.injected, 1);
    return 1;
  }
  return 0;
}

static inline void *af_malloc(void *ud, size_t n) {
  unsigned char *p;
  ASSERT(ud == &AF);
  if (af_fails()) return NULL;
  p = malloc(n + AF_HDR);
  if (!p) return NULL;
  memcpy(p, &af_magic, sizeof af_magic);
  atomic_fetch_add(&AF.outstanding, 1);
  return p + AF_HDR;
}

static inline unsigned char *af_base(void *p) {
  unsigned char *b = (unsigned char *)p - AF_HDR;
  ASSERT_MSG(memcmp(b, &af_magic, sizeof af_magic) == 0,
             "statelite handed the job's allocator a block it did not get from it");
  return b;
}

static inline void *af_realloc(void *ud, void *p, size_t n) {
  unsigned char *q;
  if (!p) return af_malloc(ud, n);
  if (af_fails()) return NULL;
  q = realloc(af_base(p), n + AF_HDR);
  return q ? q + AF_HDR : NULL;
}

static inline void af_free(void *ud, void *p) {
  unsigned char *b;
  (void)ud;
  if (!p) return;
  b = af_base(p);
  memset(b, 0, sizeof af_magic);
  atomic_fetch_sub(&AF.outstanding, 1);
  free(b);
}

static const sl_allocator af_alloc = {af_malloc, af_realloc, af_free, &AF};

static inline void af_arm(long fail_at, int persistent) {
  atomic_store(&AF.count, 0);
  atomic_store(&AF.injected, 0);
  AF.fail_at = fail_at;
  AF.persistent = persistent;
  atomic_store(&AF.armed, 1);
}

static inline void af_disarm(void) { atomic_store(&AF.armed, 0); }

static inline int64_t af_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- leaks ------------------------------------------------------------------------ */

/* Open file descriptors below 1024 (valgrind keeps its own above). */
static inline int af_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) != -1) n++;
  return n;
}

typedef struct af_mark {
  long blocks;
  sqlite3_int64 sqlite_bytes;
  int fds;
} af_mark;

static inline af_mark af_mark_now(void) {
  af_mark m;
  m.blocks = atomic_load(&AF.outstanding);
  m.sqlite_bytes = sqlite3_memory_used();
  m.fds = af_fds();
  return m;
}

/* Nothing allocated since `m` is left: statelite blocks, SQLite memory (a
** connection or statement not closed), file descriptors. */
static inline void af_no_leak(af_mark m, const char *what, long n) {
  af_mark now = af_mark_now();
  ASSERT_MSG(now.blocks == m.blocks, "%s %ld: %ld statelite block(s) not freed", what, n,
             now.blocks - m.blocks);
  ASSERT_MSG(now.sqlite_bytes == m.sqlite_bytes, "%s %ld: %lld bytes of SQLite memory not freed (a "
             "connection or statement left open)", what, n,
             (long long)(now.sqlite_bytes - m.sqlite_bytes));
  ASSERT_MSG(now.fds == m.fds, "%s %ld: %d file descriptor(s) left open", what, n, now.fds - m.fds);
}

/* ---- the job ---------------------------------------------------------------------- */

#define AF_KEYS 12
#define AF_MSG_MAX 1024

typedef struct af_job_cfg {
  char dir[4096];
  int par;                   /* checker instances */
  int64_t count, delay_us;   /* the generators' records and their pace */
  int tolerable;             /* tolerable_failures */
  const char *restore;       /* restore_savepoint */
  int64_t stop_after;        /* > 0: sl_job_stop() once the checkers have seen this many records */
  const char *stop_savepoint;
  int arm_at_checkpoint;     /* > 0: arm AF's stop at the start of this checkpoint */
  int final_only;            /* checkpoints: only the final one (fast runs) */
  int64_t interval_ms;       /* checkpoint_interval_ms, 0: 5 ms */
  int64_t timeout_ms;        /* checkpoint_timeout_ms, 0: the default */
  int64_t slow_ms;           /* checker instance 1 takes this long in the
                                snapshot hook of checkpoint 2 */
  const sl_allocator *alloc; /* NULL: the C library's */
} af_job_cfg;

static atomic_long af_records;       /* records the checkers saw in this run */
static atomic_long af_position_calls; /* checkpoints started at generator 0 */
static int (*af_gen_position)(sl_ctx *, int64_t *, void *);
static int (*af_gen_read)(sl_ctx *, void *);
static af_job_cfg *af_current;

static inline int af_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  int index = 0;
  sl_ctx_subtask(ctx, &index, NULL);
  if (index == 0 && atomic_load(&af_position_calls) == 1 && !atomic_load(&AF.cp2_begun_ms))
    atomic_store(&AF.cp2_begun_ms, af_now_ms());
  if (index == 0 && af_current->arm_at_checkpoint > 0 &&
      atomic_fetch_add(&af_position_calls, 1) + 1 == af_current->arm_at_checkpoint) {
    atomic_store(&AF.stop_count, 0);
    atomic_store(&AF.stop_armed, 1);
    if (AF.stop_at == 0) af_stop_now();
  }
  return af_gen_position(ctx, pos, ud);
}

static inline int af_read(sl_ctx *ctx, void *ud) {
  int rc = af_gen_read(ctx, ud);
  if (rc == SL_DONE) atomic_fetch_add(&AF.inputs_done, 1); /* once: then the runner stops reading */
  return rc;
}

static inline int af_check(sl_ctx *ctx, const sl_record *rec, void *ud) {
  int rc = sdk_check_process(ctx, rec, ud);
  if (af_current->stop_after > 0 && atomic_fetch_add(&af_records, 1) + 1 == af_current->stop_after)
    sl_job_stop(AF.job, af_current->stop_savepoint);
  return rc;
}

static inline int af_notify(sl_ctx *ctx, int64_t id, void *ud) {
  int index = 0;
  (void)ud;
  sl_ctx_subtask(ctx, &index, NULL);
  if (index == 0 && id > atomic_load(&AF.completed)) atomic_store(&AF.completed, id);
  if (index == 0 && id == 2) atomic_store(&AF.cp2_done_ms, af_now_ms());
  return SL_OK;
}

static inline int af_snapshot(sl_ctx *ctx, int64_t id, void *ud) {
  int index = 0;
  (void)ud;
  sl_ctx_subtask(ctx, &index, NULL);
  if (index == 1 && id == 2 && af_current->slow_ms > 0) sdk_sleep_ms(af_current->slow_ms);
  return SL_OK;
}

/* SL_TEST_VERBOSE=1 in the environment shows the job's log lines. */
static inline void af_log(void *ud, const char *line) {
  (void)ud;
  fprintf(stderr, "job: %s\n", line);
}

/* Runs the job once in this process. Returns its result; msg gets
** sl_errmsg() of the job. */
static inline int af_run(af_job_cfg *c, char *msg, size_t cap) {
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator check, sink;
  sl_job *job = NULL;
  char state[4200], chk[4200], out[4200];
  const char *key = "key";
  int s0, s1, s2, rc;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  af_current = c;
  atomic_store(&af_records, 0);
  atomic_store(&AF.completed, 0);
  atomic_store(&AF.cp2_begun_ms, 0);
  atomic_store(&AF.cp2_done_ms, 0);
  atomic_store(&AF.inputs_done, 0);
  atomic_store(&AF.stop_armed, 0); /* armed again by af_position() if asked */
  atomic_store(&af_position_calls, 0);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = c->final_only ? 0 : c->interval_ms ? c->interval_ms : 5;
  cfg.tolerable_failures = c->tolerable;
  if (c->timeout_ms) cfg.checkpoint_timeout_ms = c->timeout_ms;
  cfg.memory_budget = 16 * 1024;
  cfg.channel_capacity = 16;
  cfg.restore_savepoint = c->restore;
  cfg.allocator = c->alloc;
  if (getenv("SL_TEST_VERBOSE")) cfg.log = af_log;
  memset(&gen, 0, sizeof gen);
  gen.count = c->count;
  gen.keys = AF_KEYS;
  gen.records_per_read = 6;
  gen.delay_us_per_read = c->delay_us;
  sl_generator_source(&src, &gen);
  af_gen_position = src.position;
  src.position = af_position;
  af_gen_read = src.read;
  src.read = af_read;
  sdk_checker(&check);
  check.process = af_check;
  check.notify_checkpoint_complete = af_notify;
  check.snapshot = af_snapshot;
  sl_file_sink(&sink, out);
  rc = sl_job_new(&cfg, &job);
  AF.job = job;
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, 2, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "check", &check, c->par, &s1);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s2);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s1, s2, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  snprintf(msg, cap, "%s", sl_errmsg(job));
  AF.job = NULL;
  sl_job_free(job);
  af_current = NULL;
  return rc;
}

/* ---- what a finished job holds ------------------------------------------------------ */

/* The output, sorted, then every key's last_seq over all checker instances
** (by key), then the generators' positions: equal for every run that
** finished the same input, whatever its parallelism and history. */
static inline char *af_result(const af_job_cfg *c) {
  char path[4300], *text, *sorted;
  int64_t last[AF_KEYS];
  su_buf b = {0, 0, 0};
  snprintf(path, sizeof path, "%s/out.txt", c->dir);
  text = sdk_read(path);
  sorted = sdk_sorted(text);
  su_addf(&b, "%s== state\n", sorted);
  free(sorted);
  free(text);
  for (int k = 0; k < AF_KEYS; k++) last[k] = -1;
  for (int i = 0; i < c->par; i++) {
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    snprintf(path, sizeof path, "%s/state/check/%d.db", c->dir, i);
    ASSERT_MSG(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "%s", path);
    ASSERT(sqlite3_prepare_v2(db, "SELECT key, last_seq FROM last", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
      int64_t k = sqlite3_column_int64(q, 0);
      ASSERT(k >= 0 && k < AF_KEYS && last[k] < 0);
      last[k] = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    ASSERT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  for (int k = 0; k < AF_KEYS; k++) su_addf(&b, "%d=%lld\n", k, (long long)last[k]);
  for (int j = 0; j < 2; j++) {
    snprintf(path, sizeof path, "%s/state/gen/%d.db", c->dir, j);
    su_addf(&b, "gen %d at %lld\n", j,
            (long long)su_sql_int(path, "SELECT value FROM sl_meta WHERE name = 'source_position'"));
  }
  return su_take(&b);
}

/* What af_result() must give for c->count records, computed. */
static inline char *af_expected(int64_t count) {
  su_buf out = {0, 0, 0};
  char *t, *sorted;
  su_buf b = {0, 0, 0};
  su_addf(&out, "%s", "");
  for (int64_t i = 0; i < count; i++)
    su_addf(&out, "%lld\t%lld\t\n", (long long)(i % AF_KEYS), (long long)(i / AF_KEYS));
  t = su_take(&out);
  sorted = sdk_sorted(t);
  su_addf(&b, "%s== state\n", sorted);
  free(sorted);
  free(t);
  for (int k = 0; k < AF_KEYS; k++) {
    int64_t n = count > k ? (count - k - 1) / AF_KEYS + 1 : 0;
    su_addf(&b, "%d=%lld\n", k, (long long)(n - 1));
  }
  for (int j = 0; j < 2; j++) su_addf(&b, "gen %d at %lld\n", j, (long long)count);
  return su_take(&b);
}

/* rm -rf path (no shell: the loops do this hundreds of times). */
static inline void af_rm_rf(const char *path) {
  struct stat sb;
  DIR *d;
  struct dirent *e;
  if (lstat(path, &sb) != 0) return;
  if (!S_ISDIR(sb.st_mode)) {
    ASSERT_MSG(unlink(path) == 0, "cannot remove %s", path);
    return;
  }
  d = opendir(path);
  ASSERT_MSG(d, "cannot read %s", path);
  while ((e = readdir(d)) != NULL) {
    char sub[4400];
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    su_pathf(sub, sizeof sub, "%s/%s", path, e->d_name);
    af_rm_rf(sub);
  }
  closedir(d);
  ASSERT_MSG(rmdir(path) == 0, "cannot remove %s", path);
}

/* cp -R src dst, for directories of plain files. */
static inline void af_copy_tree(const char *src, const char *dst) {
  struct stat sb;
  ASSERT_MSG(lstat(src, &sb) == 0, "cannot stat %s", src);
  if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(src);
    struct dirent *e;
    ASSERT_MSG(d && mkdir(dst, 0777) == 0, "cannot copy %s to %s", src, dst);
    while ((e = readdir(d)) != NULL) {
      char a[4400], b[4400];
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      su_pathf(a, sizeof a, "%s/%s", src, e->d_name);
      su_pathf(b, sizeof b, "%s/%s", dst, e->d_name);
      af_copy_tree(a, b);
    }
    closedir(d);
  } else {
    size_t n = 0;
    char *p = su_read_file(src, &n);
    ASSERT_MSG(p, "cannot read %s", src);
    su_write_file(dst, p, n);
    free(p);
  }
}

/* dst becomes a copy of src, or an empty directory when src is NULL. */
static inline void af_reset_dir(const char *dst, const char *src) {
  af_rm_rf(dst);
  if (src) af_copy_tree(src, dst);
  else ASSERT_MSG(mkdir(dst, 0777) == 0, "cannot make %s", dst);
}

/* The checkpoint directory's newest complete checkpoint verifies and no
** checkpoint directory lacks its MANIFEST unless allowed; returns the
** newest id (0: none). *sp_ok is 1 when savepoint `sp` is complete. */
static inline int64_t af_chk_state(const af_job_cfg *c, const char *sp, int *sp_ok, int *incomplete) {
  sl_chkdir_config cc;
  sl_chkdir *cd = NULL;
  const sl_chk_entry *e;
  char chk[4300];
  int n = 0;
  int64_t id = 0;
  *sp_ok = 0;
  *incomplete = 0;
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  if (access(chk, F_OK) != 0) return 0;
  sl_chkdir_config_init(&cc);
  cc.flags = SL_CHKDIR_READONLY;
  ASSERT_OK(sl_chkdir_open(chk, &cc, &cd), cd);
  ASSERT_OK(sl_chkdir_list(cd, &e, &n), cd);
  for (int i = 0; i < n; i++) {
    if (e[i].kind == SL_SAVEPOINT) {
      if (sp && e[i].complete && strcmp(e[i].name, sp) == 0) *sp_ok = 1;
      continue;
    }
    if (!e[i].complete) (*incomplete)++;
    else if (e[i].id > id) id = e[i].id;
  }
  if (id) ASSERT_OK(sl_chkdir_verify(cd, id, NULL), cd);
  if (*sp_ok) ASSERT_OK(sl_chkdir_verify(cd, 0, sp), cd);
  sl_chkdir_close(cd);
  return id;
}

#endif
