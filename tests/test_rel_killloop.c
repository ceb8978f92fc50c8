/*
** test_rel_killloop.c — kill -9 loops biased to land inside checkpoints.
**
** A child process runs a job: 2 generators -> key_by -> 2 sequence checkers
** (sdk_util.h: each key's seq must be the previous one plus one) -> the
** exactly-once file sink. The parent kills it with SIGKILL and starts it
** again, over and over, until the input is done; then the next job starts
** in a fresh directory, until the wanted number of kill cycles is reached
** (20 in `make test`, 500 in `make torture`). The seed is printed;
** SL_TEST_SEED=<seed> repeats the random choices (not the timing).
**
** Where the kills land. The child tells the parent what it is doing through
** a pipe, one byte per event: 'R' when the checker's instance 0 has opened
** (the restore is over), 'S' when generator instance 0 starts its part of a
** checkpoint (its position is taken: the first thing a checkpoint does at an
** instance), 'A' when the checker's instance 0 has aligned the barrier and
** begins its synchronous part, 'C' when the checkpoint is complete (the
** checker is notified, after the MANIFEST and the sink's publication). Half
** of the kills, chosen at random, are timed from a checkpoint: the parent
** waits for the 1st, 2nd or 3rd 'S' of the run and kills after a random
** delay between 0 and 1.25 times the mean length of a checkpoint (from 'S'
** to 'C') measured so far, so most of them land between 'S' and 'C': in the
** synchronous part, the backup, the compression, the fsyncs, the rename, the
** MANIFEST, retention or the sink's publication. The other half come at a
** uniform moment 0 to 300 ms after the start, which also hits restores and
** the plain processing between checkpoints. Every kill is counted as landing
** in the startup (before 'R'), inside a checkpoint (after 'S' or 'A' and
** before 'C') or between checkpoints; kills that left a checkpoint
** directory without a MANIFEST behind are counted too.
**
** After every kill the working state files must pass PRAGMA
** integrity_check and the newest complete checkpoint must verify; a copy of
** the checkpoint directory is restored into a scratch directory, where every
** file passes PRAGMA integrity_check and the checkpoint must be exactly
** once: with the generators' positions p0, p1 in it, every key holds exactly
** the count of its records below its generator's position, and the lines the
** sink published (the first `published` bytes of the output file) together
** with its pending lines are exactly the lines of those records, each once.
** After the last run of a job: no GAP or DUP line; the output, sorted, is
** byte-identical to the sorted output of an uninterrupted run (the order in
** which the sink gets lines from two checker instances is not defined, not
** even between two uninterrupted runs; within a key the lines must be in
** order, which is checked); the state (the checkers' and the generators'
** tables, the sink's once resolved) equals the uninterrupted run's; every
** state file and the restored final checkpoint pass integrity_check.
*/
#include <fcntl.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "sdk_util.h"
#include "store_util.h"
#include "torture.h"

#define KL_KEYS 97

typedef struct kl_cfg {
  int64_t count, delay_us;
  int fd; /* write end of the event pipe, -1: none */
  char dir[4096];
} kl_cfg;

/* In the child only: the generator's own position callback and the pipe. */
static int (*kl_gen_position)(sl_ctx *, int64_t *, void *);
static int kl_fd = -1;

static void kl_say(sl_ctx *ctx, char ev) {
  int index = 0;
  sl_ctx_subtask(ctx, &index, NULL);
  if (index == 0 && kl_fd >= 0 && write(kl_fd, &ev, 1) < 0) { /* full: the parent is not listening */ }
}

static int kl_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  kl_say(ctx, 'S');
  return kl_gen_position(ctx, pos, ud);
}

static int kl_open(sl_ctx *ctx, void *ud) {
  (void)ud;
  kl_say(ctx, 'R');
  return SL_OK;
}

static int kl_snapshot(sl_ctx *ctx, int64_t id, void *ud) {
  (void)id;
  (void)ud;
  kl_say(ctx, 'A');
  return SL_OK;
}

static int kl_notify(sl_ctx *ctx, int64_t id, void *ud) {
  (void)id;
  (void)ud;
  kl_say(ctx, 'C');
  return SL_OK;
}

static int kl_job(void *arg) {
  kl_cfg *c = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator check, sink;
  sl_job *job = NULL;
  char state[4200], chk[4200], out[4200];
  int rc;
  kl_fd = c->fd;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 30;
  cfg.mode = SL_EXACTLY_ONCE;
  cfg.memory_budget = 64 * 1024;
  cfg.channel_capacity = 64;
  memset(&gen, 0, sizeof gen);
  gen.count = c->count;
  gen.keys = KL_KEYS;
  gen.records_per_read = 8;
  gen.delay_us_per_read = c->delay_us;
  sl_generator_source(&src, &gen);
  kl_gen_position = src.position;
  src.position = kl_position;
  sdk_checker(&check);
  check.open = kl_open;
  check.snapshot = kl_snapshot;
  check.notify_checkpoint_complete = kl_notify;
  sl_file_sink(&sink, out);
  rc = sdk_checked_job(&cfg, "gen", &src, 2, &check, &sink, &job);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  sl_job_free(job);
  return rc ? 1 : 0;
}

/* ---- what a checkpoint or a state directory holds -------------------------- */

static int64_t kl_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sqlite3 *kl_open_db(const char *path) {
  sqlite3 *db = NULL;
  ASSERT_MSG(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "cannot open %s",
             path);
  return db;
}

/* 1 if PRAGMA integrity_check of the file says ok. */
static int kl_integrity_ok(const char *path) {
  sqlite3 *db = kl_open_db(path);
  sqlite3_stmt *q = NULL;
  int ok;
  ASSERT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK);
  ok = sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
  if (!ok) printf("integrity_check of %s: %s\n", path, (const char *)sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
  sqlite3_close(db);
  return ok;
}

static int kl_cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A list of lines (malloc'd copies). */
typedef struct kl_lines {
  char **v;
  size_t n, cap;
} kl_lines;

static void kl_add(kl_lines *l, const char *p, size_t n) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1024;
    l->v = realloc(l->v, sizeof *l->v * l->cap);
    ASSERT(l->v);
  }
  l->v[l->n] = malloc(n + 1);
  ASSERT(l->v[l->n]);
  memcpy(l->v[l->n], p, n);
  l->v[l->n][n] = 0;
  l->n++;
}

static void kl_free_lines(kl_lines *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* Adds the lines (each with its newline) of n bytes of text. */
static void kl_add_text(kl_lines *l, const char *t, size_t n) {
  size_t i = 0;
  while (i < n) {
    const char *nl = memchr(t + i, '\n', n - i);
    size_t k = nl ? (size_t)(nl - (t + i)) + 1 : n - i;
    kl_add(l, t + i, k);
    i += k;
  }
}

/* How many lines are in one sorted list and not in the other. */
static int64_t kl_diff(kl_lines *a, kl_lines *b) {
  size_t i = 0, j = 0;
  int64_t d = 0;
  qsort(a->v, a->n, sizeof *a->v, kl_cmp_str);
  qsort(b->v, b->n, sizeof *b->v, kl_cmp_str);
  while (i < a->n || j < b->n) {
    int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->v[i], b->v[j]);
    if (c == 0) {
      i++;
      j++;
    } else {
      if (d < 3) printf("  %s line: %s", c < 0 ? "unexpected" : "missing", c < 0 ? a->v[i] : b->v[j]);
      d++;
      if (c < 0) i++;
      else j++;
    }
  }
  return d;
}

/* Checks the exactly-once invariant of a state directory (a restored
** checkpoint, or the working files at the end) against the output file:
** see the comment at the top. Returns the number of violations. */
static int64_t kl_check_state(const char *state_dir, const char *out_path, int64_t count) {
  int64_t pos[2], n_k[KL_KEYS], seen[KL_KEYS], violations = 0, published = 0;
  kl_lines got = {0, 0, 0}, want = {0, 0, 0};
  char path[4300], *text;
  size_t tn = 0;
  for (int j = 0; j < 2; j++) {
    su_pathf(path, sizeof path, "%s/gen/%d.db", state_dir, j);
    pos[j] = su_sql_int(path, "SELECT value FROM sl_meta WHERE name = 'source_position'");
    ASSERT_MSG(pos[j] >= 0 && pos[j] <= count, "generator %d at %lld", j, (long long)pos[j]);
  }
  for (int k = 0; k < KL_KEYS; k++) {
    int64_t p = pos[k % 2];
    n_k[k] = p > k ? (p - k - 1) / KL_KEYS + 1 : 0;
    seen[k] = -1;
    for (int64_t s = 0; s < n_k[k]; s++) {
      char line[64];
      int len = snprintf(line, sizeof line, "%d\t%lld\t\n", k, (long long)s);
      kl_add(&want, line, (size_t)len);
    }
  }
  for (int i = 0; i < 2; i++) {
    sqlite3 *db;
    sqlite3_stmt *q = NULL;
    su_pathf(path, sizeof path, "%s/check/%d.db", state_dir, i);
    db = kl_open_db(path);
    ASSERT(sqlite3_prepare_v2(db, "SELECT key, last_seq FROM last", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
      int64_t k = sqlite3_column_int64(q, 0);
      ASSERT(k >= 0 && k < KL_KEYS && seen[k] < 0);
      seen[k] = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  for (int k = 0; k < KL_KEYS; k++)
    if (seen[k] != n_k[k] - 1) {
      if (violations < 3)
        printf("  key %d: last_seq %lld, but its generator is at %lld (expected %lld)\n", k,
               (long long)seen[k], (long long)pos[k % 2], (long long)(n_k[k] - 1));
      violations++;
    }
  {
    sqlite3 *db;
    sqlite3_stmt *q = NULL;
    su_pathf(path, sizeof path, "%s/sink/0.db", state_dir);
    db = kl_open_db(path);
    ASSERT(sqlite3_prepare_v2(db, "SELECT value FROM sl_bc_published WHERE name = 'bytes'", -1, &q,
                              NULL) == SQLITE_OK);
    if (sqlite3_step(q) == SQLITE_ROW) published = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    ASSERT(sqlite3_prepare_v2(db, "SELECT line FROM sl_op_pending", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW)
      kl_add(&got, (const char *)sqlite3_column_text(q, 0), (size_t)sqlite3_column_bytes(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  text = su_read_file(out_path, &tn);
  if (!text) tn = 0;
  if ((int64_t)tn < published) {
    printf("  the output holds %zu bytes, %lld were published\n", tn, (long long)published);
    violations++;
  } else {
    kl_add_text(&got, text ? text : "", (size_t)published);
  }
  free(text);
  violations += kl_diff(&got, &want);
  kl_free_lines(&got);
  kl_free_lines(&want);
  return violations;
}

/* The deterministic part of a job's state: every table of every file but
** sl_meta (of which the source_ entries), the checkpoint history and the
** sink's tables (they hold the last epoch's lines as pending or as
** published, depending on timing; kl_check_state() resolves them). */
static char *kl_dump(const char *state_dir) {
  static const char *const files[] = {"gen/0.db", "gen/1.db", "check/0.db", "check/1.db"};
  su_buf b = {0, 0, 0};
  su_addf(&b, "%s", "");
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[4300], *t;
    sqlite3 *db;
    su_pathf(path, sizeof path, "%s/%s", state_dir, files[i]);
    db = kl_open_db(path);
    t = su_dump_db(db, "name NOT IN ('sl_meta', 'sl_checkpoints')");
    su_addf(&b, "## %s\n%s", files[i], t);
    free(t);
    t = su_db_rows(db, "SELECT name, value FROM sl_meta WHERE name LIKE 'source%' ORDER BY name");
    su_addf(&b, "%s", t);
    free(t);
    sqlite3_close(db);
  }
  return su_take(&b);
}

/* Every state file of the state directory passes integrity_check (those
** that exist, unless all must); returns the number that do not. */
static int kl_integrity_all(const char *state_dir, int all) {
  static const char *const files[] = {"gen/0.db", "gen/1.db", "check/0.db", "check/1.db", "sink/0.db"};
  int bad = 0;
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[4300];
    su_pathf(path, sizeof path, "%s/%s", state_dir, files[i]);
    if (!all && !su_exists(path)) continue;
    if (!kl_integrity_ok(path)) bad++;
  }
  return bad;
}

/* ---- the loop ---------------------------------------------------------------- */

typedef struct kl_stats {
  int cycles, jobs, timed, uniform;
  int startup, inside, between, unpublished;
  int64_t violations, verified;
  int64_t ckpt_ms_sum, ckpt_n;
} kl_stats;

/* The newest complete checkpoint of dir/chk (0: none); *incomplete gets
** the number of checkpoint directories without a MANIFEST. */
static int64_t kl_newest(const char *dir, int *incomplete) {
  sl_chkdir_config cc;
  sl_chkdir *cd = NULL;
  const sl_chk_entry *e;
  char chk[4200];
  int n = 0;
  int64_t id = 0;
  *incomplete = 0;
  snprintf(chk, sizeof chk, "%s/chk", dir);
  if (access(chk, F_OK) != 0) return 0;
  sl_chkdir_config_init(&cc);
  cc.flags = SL_CHKDIR_READONLY;
  ASSERT_OK(sl_chkdir_open(chk, &cc, &cd), cd);
  ASSERT_OK(sl_chkdir_list(cd, &e, &n), cd);
  for (int i = 0; i < n; i++) {
    if (e[i].kind != SL_CHECKPOINT) continue;
    if (!e[i].complete) (*incomplete)++;
    else if (e[i].id > id) id = e[i].id;
  }
  if (id) ASSERT_OK(sl_chkdir_verify(cd, id, NULL), cd);
  sl_chkdir_close(cd);
  return id;
}

/* Restores a copy of the newest complete checkpoint of c->dir into
** c->dir/v/state and checks it; returns its id (0: none yet). */
static int64_t kl_verify_checkpoint(const kl_cfg *c, kl_stats *st, int *incomplete) {
  sl_chkdir_config cc;
  sl_chkdir *cd = NULL;
  char chk[4300], state[4300], out[4300];
  int64_t id = kl_newest(c->dir, incomplete), restored = 0, v;
  int bad;
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  if (!id) {
    /* nothing completed: nothing may have been published */
    size_t n = 0;
    char *t = su_read_file(out, &n);
    if (t && n) {
      printf("  %zu bytes of output without a complete checkpoint\n", n);
      st->violations++;
    }
    free(t);
    return 0;
  }
  ASSERT_EQ(test_sh(NULL, 0, "rm -rf '%s/v' && mkdir -p '%s/v' && cp -R '%s/chk' '%s/v/chk'", c->dir,
                    c->dir, c->dir, c->dir), 0);
  snprintf(chk, sizeof chk, "%s/v/chk", c->dir);
  snprintf(state, sizeof state, "%s/v/state", c->dir);
  sl_chkdir_config_init(&cc);
  ASSERT_OK(sl_chkdir_open(chk, &cc, &cd), cd);
  ASSERT_OK(sl_chkdir_restore(cd, id, NULL, state, NULL, 0, &restored), cd);
  sl_chkdir_close(cd);
  ASSERT_EQ(restored, id);
  bad = kl_integrity_all(state, 1);
  v = kl_check_state(state, out, c->count);
  if (bad || v)
    printf("  checkpoint %lld: %d file(s) fail integrity_check, %lld violation(s)\n", (long long)id,
           bad, (long long)v);
  st->violations += bad + v;
  st->verified++;
  return id;
}

/* Runs the job once in a child. kill_it: kill it (timed from a checkpoint
** or uniformly, at random). Returns 1 if it was killed, 0 if it ended by
** itself (with status 0). */
static int kl_run(kl_cfg *c, int rd, uint64_t *seed, kl_stats *st, int kill_it) {
  int64_t t0 = kl_now_ms(), deadline = -1, s_at = -1;
  int timed = kill_it && (sdk_rand(seed) & 1), want_s = 1 + (int)(sdk_rand(seed) % 3);
  int phase = 0, nS = 0, status = 0; /* phase: 0 startup, 1 between, 2 inside a checkpoint */
  pid_t pid;
  int64_t mean = st->ckpt_n ? st->ckpt_ms_sum / st->ckpt_n : 15;
  int64_t delay = (int64_t)(sdk_rand(seed) % (uint64_t)(mean + mean / 4 + 1));
  if (kill_it && !timed) deadline = t0 + (int64_t)(sdk_rand(seed) % 301);
  fflush(NULL);
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) _exit(kl_job(c) & 0xff);
  for (;;) {
    struct pollfd pfd = {rd, POLLIN, 0};
    int64_t now = kl_now_ms(), wait = 5;
    char ev[256];
    ssize_t n;
    if (deadline >= 0 && deadline - now < wait) wait = deadline - now > 0 ? deadline - now : 0;
    if (poll(&pfd, 1, (int)wait) < 0) ASSERT(errno == EINTR);
    now = kl_now_ms();
    while ((n = read(rd, ev, sizeof ev)) > 0)
      for (ssize_t i = 0; i < n; i++) {
        if (ev[i] == 'R') {
          phase = 1;
        } else if (ev[i] == 'S') {
          phase = 2;
          s_at = now;
          if (timed && ++nS == want_s && deadline < 0) deadline = now + delay;
        } else if (ev[i] == 'A') {
          phase = 2;
        } else if (ev[i] == 'C') {
          if (phase == 2 && s_at >= 0) {
            st->ckpt_ms_sum += now - s_at;
            st->ckpt_n++;
          }
          phase = 1;
          s_at = -1;
        }
      }
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    if (deadline >= 0 && kl_now_ms() >= deadline) {
      kill(pid, SIGKILL);
      ASSERT(waitpid(pid, &status, 0) == pid);
      while (read(rd, ev, sizeof ev) > 0) {} /* what it said last does not matter */
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        st->cycles++;
        if (timed) st->timed++;
        else st->uniform++;
        if (phase == 0) st->startup++;
        else if (phase == 2) st->inside++;
        else st->between++;
        return 1;
      }
      break;
    }
  }
  ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the job ended with status 0x%x", status);
  return 0;
}

/* The whole check of a job that has finished: see the top of the file. */
static void kl_check_final(const kl_cfg *c, const char *ref_sorted, const char *ref_dump,
                           kl_stats *st) {
  char path[4300], *text, *sorted, *dump;
  int64_t last[KL_KEYS];
  int incomplete = 0;
  const char *p;
  snprintf(path, sizeof path, "%s/out.txt", c->dir);
  text = sdk_read(path);
  if (strstr(text, "GAP") || strstr(text, "DUP")) {
    printf("  a GAP or DUP line in the output\n");
    st->violations++;
  }
  for (int k = 0; k < KL_KEYS; k++) last[k] = -1;
  for (p = text; *p;) {
    long long k = -1, s = -1;
    ASSERT(sscanf(p, "%lld\t%lld\t", &k, &s) == 2 && k >= 0 && k < KL_KEYS);
    if (s != last[k] + 1) {
      if (st->violations < 3) printf("  key %lld: line %lld follows %lld\n", k, s, (long long)last[k]);
      st->violations++;
    }
    last[k] = s;
    p = strchr(p, '\n');
    ASSERT(p);
    p++;
  }
  sorted = sdk_sorted(text);
  if (strcmp(sorted, ref_sorted) != 0) {
    printf("  the sorted output differs from the uninterrupted run's (%zu vs %zu bytes)\n",
           strlen(sorted), strlen(ref_sorted));
    st->violations++;
  }
  snprintf(path, sizeof path, "%s/state", c->dir);
  dump = kl_dump(path);
  if (strcmp(dump, ref_dump) != 0) {
    printf("  the final state differs from the uninterrupted run's\n");
    st->violations++;
  }
  st->violations += kl_integrity_all(path, 1);
  {
    char out[4300];
    snprintf(out, sizeof out, "%s/out.txt", c->dir);
    st->violations += kl_check_state(path, out, c->count);
  }
  free(dump);
  free(sorted);
  free(text);
  /* the final checkpoint, restored, is the final state */
  ASSERT(kl_verify_checkpoint(c, st, &incomplete) > 0);
  snprintf(path, sizeof path, "%s/v/state", c->dir);
  dump = kl_dump(path);
  if (strcmp(dump, ref_dump) != 0) {
    printf("  the final checkpoint differs from the uninterrupted run's state\n");
    st->violations++;
  }
  free(dump);
}

static void kl_loop(int cycles_wanted, int64_t count) {
  const char *env = getenv("SL_TEST_SEED");
  const uint64_t seed0 =
      env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  uint64_t seed = seed0;
  kl_stats st;
  kl_cfg c;
  int fds[2];
  char path[4300], *ref_text, *ref_sorted, *ref_dump;
  memset(&st, 0, sizeof st);
  printf("kill loop seed %llu (SL_TEST_SEED=%llu repeats its choices)\n", (unsigned long long)seed0,
         (unsigned long long)seed0);
  ASSERT(pipe(fds) == 0);
  ASSERT(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
  ASSERT(fcntl(fds[1], F_SETFL, O_NONBLOCK) == 0);
  /* the uninterrupted run */
  memset(&c, 0, sizeof c);
  c.count = count;
  c.fd = -1;
  snprintf(c.dir, sizeof c.dir, "%s/ref", test_dir());
  ASSERT_EQ(sdk_run_child(kl_job, &c), 0);
  snprintf(path, sizeof path, "%s/out.txt", c.dir);
  ref_text = sdk_read(path);
  ref_sorted = sdk_sorted(ref_text);
  free(ref_text);
  snprintf(path, sizeof path, "%s/state", c.dir);
  ref_dump = kl_dump(path);
  {
    char out[4300];
    snprintf(out, sizeof out, "%s/out.txt", c.dir);
    ASSERT_EQ(kl_check_state(path, out, count), 0);
  }
  /* jobs killed again and again */
  c.fd = fds[1];
  while (st.cycles < cycles_wanted) {
    int done = 0, runs = 0;
    snprintf(c.dir, sizeof c.dir, "%s/job%d", test_dir(), st.jobs++);
    while (!done) {
      int incomplete = 0;
      ASSERT_MSG(++runs < 5000, "job %d did not finish", st.jobs);
      c.delay_us = st.cycles < cycles_wanted ? 1000 : 0; /* the last run goes at full speed */
      if (kl_run(&c, fds[0], &seed, &st, st.cycles < cycles_wanted)) {
        /* the working files as the kill left them (the next run replaces
        ** them with the checkpoint), and the newest checkpoint */
        snprintf(path, sizeof path, "%s/state", c.dir);
        st.violations += kl_integrity_all(path, 0);
        kl_verify_checkpoint(&c, &st, &incomplete);
        if (incomplete) st.unpublished++;
        ASSERT_MSG(st.violations == 0, "%lld violation(s) after kill %d (seed %llu)",
                   (long long)st.violations, st.cycles, (unsigned long long)seed0);
      } else {
        done = 1;
      }
    }
    kl_check_final(&c, ref_sorted, ref_dump, &st);
    ASSERT_MSG(st.violations == 0, "%lld violation(s) at the end of job %d (seed %llu)",
               (long long)st.violations, st.jobs, (unsigned long long)seed0);
    printf("job %d: finished after %d runs\n", st.jobs, runs);
  }
  printf("%d kill cycles in %d job(s): %d timed from a checkpoint start, %d uniform; "
         "%d landed in the startup or restore, %d inside a checkpoint, %d between checkpoints; "
         "%d left a checkpoint without MANIFEST; mean checkpoint %lld ms; %lld checkpoints "
         "restored and checked; %lld violations\n",
         st.cycles, st.jobs, st.timed, st.uniform, st.startup, st.inside, st.between,
         st.unpublished, (long long)(st.ckpt_n ? st.ckpt_ms_sum / st.ckpt_n : 0),
         (long long)st.verified, (long long)st.violations);
  tt_count("cycles", st.cycles);
  tt_count("kills_inside_checkpoints", st.inside);
  tt_count("violations", st.violations);
  ASSERT_EQ(st.violations, 0);
  ASSERT(st.cycles >= cycles_wanted);
  /* the bias works: many kills land inside a checkpoint */
  ASSERT_MSG(st.inside * 5 >= st.cycles, "only %d of %d kills landed inside a checkpoint", st.inside,
             st.cycles);
  close(fds[0]);
  close(fds[1]);
  free(ref_sorted);
  free(ref_dump);
}

TEST(rel_kill_loop_biased_to_checkpoints) {
  if (test_long()) kl_loop(500, 60000);
  else kl_loop(20, 30000);
}
