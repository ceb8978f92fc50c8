/*
** test_sdk_semantics.c — the end-to-end semantics of the runner, in the
** style of Flink's end-to-end tests: a generator emits per-key sequence
** numbers, a keyed operator checks that each is the previous one plus one,
** and the job is killed with SIGKILL at random moments and restarted until
** its input is done. Exactly-once: no violation, every record's output
** exactly once, final state equal to the uninterrupted result. At-least-once:
** no gaps, duplicates allowed and counted.
*/
#include <sqlite3.h>

#include "sdk_util.h"

typedef struct sem_cfg {
  int mode;
  int src_par, par;
  int64_t count, keys, delay_us, per_read;
  int64_t interval_ms;
  char dir[4096];
} sem_cfg;

static const sl_column sem_key[] = {{"key", SL_INTEGER, {0, 0, {0}}}};
static const sl_column sem_last[] = {{"last_seq", SL_INTEGER, {0, 0, {0}}}};
static const sl_column sem_dups[] = {{"n", SL_INTEGER, {0, 0, {0}}}};
static const sl_column sem_out[] = {{"key", SL_INTEGER, {0, 0, {0}}},
                                    {"seq", SL_INTEGER, {0, 0, {0}}},
                                    {"what", SL_TEXT, {0, 0, {0}}}};

static sl_state_desc sem_states[2];

static int sem_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *last = sl_ctx_state(ctx, "last"), *dups = sl_ctx_state(ctx, "dups");
  const sl_value *v;
  int64_t key = rec->f[1].v.i, seq = rec->f[2].v.i, prev = -1;
  sl_value out[3], nv;
  int rc;
  (void)ud;
  rc = sl_value_get(last, &v);
  if (rc == SL_OK) prev = v[0].v.i;
  else if (rc != SL_NOTFOUND) return rc;
  out[0] = sl_int(key);
  out[1] = sl_int(seq);
  if (seq <= prev) { /* a record seen before: only at-least-once allows it */
    int64_t d = 0;
    if (sl_value_get(dups, &v) == SL_OK) d = v[0].v.i;
    nv = sl_int(d + 1);
    rc = sl_value_update(dups, &nv);
    if (rc) return rc;
    out[2] = sl_text("DUP");
    return sl_ctx_emit(ctx, out, 3, rec->ts);
  }
  out[2] = sl_text(seq == prev + 1 ? "" : "GAP");
  nv = sl_int(seq);
  rc = sl_value_update(last, &nv);
  if (rc) return rc;
  return sl_ctx_emit(ctx, out, 3, rec->ts);
}

static void sem_desc(void) {
  memset(sem_states, 0, sizeof sem_states);
  sem_states[0].name = "last";
  sem_states[0].kind = SL_VALUE_STATE;
  sem_states[0].n_key = 1;
  sem_states[0].key = sem_key;
  sem_states[0].n_value = 1;
  sem_states[0].value = sem_last;
  sem_states[1] = sem_states[0];
  sem_states[1].name = "dups";
  sem_states[1].value = sem_dups;
}

/* Drops the DUP lines (allowed in at-least-once mode) from the output. */
static int sem_filter(sl_ctx *ctx, const sl_record *rec, void *ud) {
  (void)ud;
  if (rec->f[2].n == 3 && memcmp(rec->f[2].v.p, "DUP", 3) == 0) return SL_OK;
  return sl_ctx_emit(ctx, rec->f, 3, rec->ts);
}

static int sem_job(void *arg) {
  sem_cfg *c = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator check, filter, sink;
  sl_job *job = NULL;
  char state[4200], chk[4200], out[4200];
  const char *key = "key";
  int s0, s1, s2, s3, rc;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = c->interval_ms;
  cfg.mode = c->mode;
  cfg.memory_budget = 64 * 1024;
  cfg.channel_capacity = 64;
  memset(&gen, 0, sizeof gen);
  gen.count = c->count;
  gen.keys = c->keys;
  gen.records_per_read = c->per_read;
  gen.delay_us_per_read = c->delay_us;
  sl_generator_source(&src, &gen);
  sem_desc();
  memset(&check, 0, sizeof check);
  check.process = sem_process;
  check.states = sem_states;
  check.n_states = 2;
  check.out = sem_out;
  check.n_out = 3;
  memset(&filter, 0, sizeof filter);
  filter.process = sem_filter;
  filter.out = sem_out;
  filter.n_out = 3;
  sl_file_sink(&sink, out);
  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, c->src_par, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "check", &check, c->par, &s1);
  if (rc == SL_OK) rc = sl_job_operator(job, "filter", &filter, 1, &s2);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s3);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s1, s2, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_connect(job, s2, s3, SL_FORWARD, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  sl_job_free(job);
  return rc ? 1 : 0;
}

/* The output must hold, for every key k, the lines k<TAB>s<TAB> for s = 0 ..
** n_k - 1, each exactly once, and nothing else. */
/* Removes repeated lines of sorted text in place; returns how many. */
static int64_t sem_uniq(char *sorted) {
  char *w = sorted, *prev = NULL, *p = sorted;
  int64_t dropped = 0;
  while (*p) {
    char *nl = strchr(p, '\n');
    size_t k = nl ? (size_t)(nl - p) + 1 : strlen(p);
    if (prev && strncmp(prev, p, k) == 0 && prev[k - 1] == '\n') {
      dropped++;
    } else {
      memmove(w, p, k);
      prev = w;
      w += k;
    }
    p += k;
  }
  *w = 0;
  return dropped;
}

/* Returns the number of repeated output lines (0 in exactly-once mode). */
static int64_t sem_check_output(const sem_cfg *c) {
  char path[4200], *text, *sorted, *expect;
  size_t cap = (size_t)c->count * 32 + 16, n = 0;
  int64_t repeated = 0;
  snprintf(path, sizeof path, "%s/out.txt", c->dir);
  text = sdk_read(path);
  ASSERT_MSG(!strstr(text, "GAP"), "a sequence gap in the output");
  ASSERT_MSG(!strstr(text, "DUP"), "a duplicate in the output");
  sorted = sdk_sorted(text);
  if (c->mode == SL_AT_LEAST_ONCE) repeated = sem_uniq(sorted);
  expect = malloc(cap);
  ASSERT(expect);
  expect[0] = 0;
  for (int64_t i = 0; i < c->count; i++)
    n += (size_t)snprintf(expect + n, cap - n, "%lld\t%lld\t\n", (long long)(i % c->keys),
                          (long long)(i / c->keys));
  {
    char *e = sdk_sorted(expect);
    ASSERT_MSG(strcmp(sorted, e) == 0, "the output differs from the expected lines (%zu vs %zu bytes)",
               strlen(sorted), strlen(e));
    free(e);
  }
  free(expect);
  free(sorted);
  free(text);
  return repeated;
}

/* The working state of the checker after the last run: every key's last
** sequence number, as a run without kills leaves it; returns the total of
** duplicates counted. */
static int64_t sem_check_state(const sem_cfg *c) {
  int64_t seen = 0, dups = 0;
  for (int i = 0; i < c->par; i++) {
    char path[4200];
    sqlite3 *db;
    sqlite3_stmt *q;
    snprintf(path, sizeof path, "%s/state/check/%d.db", c->dir, i);
    ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    ASSERT(sqlite3_prepare_v2(db, "SELECT key, last_seq FROM last", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
      int64_t k = sqlite3_column_int64(q, 0), s = sqlite3_column_int64(q, 1);
      int64_t n_k = c->count / c->keys + (k < c->count % c->keys ? 1 : 0);
      ASSERT_MSG(s == n_k - 1, "key %lld ends at %lld, expected %lld", (long long)k, (long long)s,
                 (long long)(n_k - 1));
      seen++;
    }
    sqlite3_finalize(q);
    ASSERT(sqlite3_prepare_v2(db, "SELECT coalesce(sum(n), 0) FROM dups", -1, &q, NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    dups += sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    ASSERT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  ASSERT_EQ(seen, c->keys < c->count ? c->keys : c->count);
  return dups;
}

static void sem_setup(sem_cfg *c, int mode) {
  memset(c, 0, sizeof *c);
  c->mode = mode;
  c->src_par = 2;
  c->par = 2;
  c->count = 60000;
  c->keys = 97;
  c->per_read = 8;
  c->delay_us = 1000;
  c->interval_ms = 40;
  snprintf(c->dir, sizeof c->dir, "%s", test_dir());
}

/* FNV-1a of a text, with its length mixed in. */
static uint64_t sem_hash(const char *t) {
  uint64_t h = 1469598103934665603ull;
  size_t n = 0;
  for (; t[n]; n++) h = (h ^ (unsigned char)t[n]) * 1099511628211ull;
  return h ^ n;
}

TEST(quick_sdk_semantics_without_kills) {
  sem_cfg c;
  sem_setup(&c, SL_EXACTLY_ONCE);
  c.count = 20000;
  c.delay_us = 0;
  ASSERT_EQ(sdk_run_child(sem_job, &c), 0);
  sem_check_output(&c);
  ASSERT_EQ(sem_check_state(&c), 0);
  /* running it again on the same directories adds nothing */
  {
    /* (no heap block may be held across the fork: valgrind would call it
    ** lost in the child) */
    char path[4200], *text;
    uint64_t before, after;
    snprintf(path, sizeof path, "%s/out.txt", c.dir);
    text = sdk_read(path);
    before = sem_hash(text);
    free(text);
    ASSERT_EQ(sdk_run_child(sem_job, &c), 0);
    text = sdk_read(path);
    after = sem_hash(text);
    free(text);
    ASSERT_EQ(before, after);
  }
}

TEST(sdk_exactly_once_across_kills) {
  sem_cfg c;
  int kills;
  sem_setup(&c, SL_EXACTLY_ONCE);
  if (test_long()) c.count = 600000;
  kills = sdk_kill_loop(sem_job, &c, (uint64_t)time(NULL), test_long() ? 200 : 20, 30, 300);
  printf("%d kills\n", kills);
  ASSERT(kills >= (test_long() ? 200 : 20));
  ASSERT_EQ(sem_check_output(&c), 0);
  ASSERT_EQ(sem_check_state(&c), 0);
}

TEST(sdk_at_least_once_across_kills) {
  sem_cfg c;
  int kills;
  int64_t dups, repeated;
  sem_setup(&c, SL_AT_LEAST_ONCE);
  kills = sdk_kill_loop(sem_job, &c, (uint64_t)time(NULL) ^ 0x5a5a, 20, 30, 300);
  repeated = sem_check_output(&c); /* no gaps: every record's output is there */
  dups = sem_check_state(&c);
  printf("%d kills, %lld duplicates seen by the checker, %lld repeated output lines\n", kills,
         (long long)dups, (long long)repeated);
  ASSERT(kills >= 20);
  ASSERT(dups >= 0);
}

/* ---- two inputs of different speeds: barrier alignment -------------------- */

static const sl_column gen_out[] = {{"id", SL_INTEGER, {0, 0, {0}}},
                                    {"key", SL_INTEGER, {0, 0, {0}}},
                                    {"seq", SL_INTEGER, {0, 0, {0}}}};

/* Moves the keys of the second generator out of the first one's range. */
static int shift_keys(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_value f[3];
  (void)ud;
  f[0] = rec->f[0];
  f[1] = sl_int(rec->f[1].v.i + 1000);
  f[2] = rec->f[2];
  return sl_ctx_emit(ctx, f, 3, rec->ts);
}

typedef struct align_cfg {
  int mode;
  int64_t slow_delay_us;
  char dir[4096];
} align_cfg;

static int align_job(void *arg) {
  align_cfg *c = arg;
  sl_job_config cfg;
  sl_generator_config fast, slow;
  sl_source a, b;
  sl_operator shift, check, sink;
  sl_job *job = NULL;
  char state[4200], chk[4200], out[4200];
  const char *key = "key";
  int sa, sb, ss, sc, sk, rc;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 30;
  cfg.mode = c->mode;
  cfg.channel_capacity = 16;
  memset(&fast, 0, sizeof fast);
  fast.count = 12000;
  fast.keys = 50;
  fast.records_per_read = 32;
  fast.delay_us_per_read = 100;
  slow = fast;
  slow.count = 6000;
  slow.records_per_read = 4;
  slow.delay_us_per_read = c->slow_delay_us;
  sl_generator_source(&a, &fast);
  sl_generator_source(&b, &slow);
  memset(&shift, 0, sizeof shift);
  shift.process = shift_keys;
  shift.out = gen_out;
  shift.n_out = 3;
  sem_desc();
  memset(&check, 0, sizeof check);
  check.process = sem_process;
  check.states = sem_states;
  check.n_states = 2;
  check.out = sem_out;
  check.n_out = 3;
  sl_file_sink(&sink, out);
  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "fast", &a, 1, &sa);
  if (rc == SL_OK) rc = sl_job_source(job, "slow", &b, 1, &sb);
  if (rc == SL_OK) rc = sl_job_operator(job, "shift", &shift, 1, &ss);
  if (rc == SL_OK) rc = sl_job_operator(job, "check", &check, 1, &sc);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &sk);
  if (rc == SL_OK) rc = sl_job_connect(job, sb, ss, SL_FORWARD, NULL, 0);
  if (rc == SL_OK) rc = sl_job_connect(job, sa, sc, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, ss, sc, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, sc, sk, SL_FORWARD, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  sl_job_free(job);
  return rc ? 1 : 0;
}

static void align_check(const align_cfg *c) {
  char path[4200], *text, *sorted, *expect, *e;
  size_t cap = 16000 * 32, n = 0;
  snprintf(path, sizeof path, "%s/out.txt", c->dir);
  text = sdk_read(path);
  ASSERT_MSG(!strstr(text, "GAP"), "a sequence gap in the output");
  expect = malloc(cap);
  ASSERT(expect);
  expect[0] = 0;
  for (int64_t i = 0; i < 12000; i++)
    n += (size_t)snprintf(expect + n, cap - n, "%lld\t%lld\t\n", (long long)(i % 50), (long long)(i / 50));
  for (int64_t i = 0; i < 6000; i++)
    n += (size_t)snprintf(expect + n, cap - n, "%lld\t%lld\t\n", (long long)(i % 50 + 1000),
                          (long long)(i / 50));
  if (c->mode == SL_EXACTLY_ONCE) {
    ASSERT_MSG(!strstr(text, "DUP"), "a duplicate in exactly-once mode");
    sorted = sdk_sorted(text);
  } else {
    /* duplicates are allowed: compare the distinct lines */
    char *t2 = malloc(strlen(text) + 1), *w = t2;
    const char *p = text;
    ASSERT(t2);
    while (*p) {
      const char *nl = strchr(p, '\n');
      size_t k = nl ? (size_t)(nl - p) + 1 : strlen(p);
      if (!(k > 4 && memcmp(nl - 3, "DUP", 3) == 0)) {
        memcpy(w, p, k);
        w += k;
      }
      p += k;
    }
    *w = 0;
    sorted = sdk_sorted(t2);
    free(t2);
  }
  e = sdk_sorted(expect);
  ASSERT_MSG(strcmp(sorted, e) == 0, "the output differs from the expected lines");
  free(e);
  free(expect);
  free(sorted);
  free(text);
}

TEST(sdk_alignment_two_inputs_across_kills) {
  align_cfg c;
  int kills;
  memset(&c, 0, sizeof c);
  c.mode = SL_EXACTLY_ONCE;
  c.slow_delay_us = 2000;
  snprintf(c.dir, sizeof c.dir, "%s", test_dir());
  kills = sdk_kill_loop(align_job, &c, (uint64_t)time(NULL) ^ 0x77, 10, 50, 400);
  ASSERT(kills >= 10);
  align_check(&c);
}

TEST(quick_sdk_alignment_two_inputs) {
  align_cfg c;
  memset(&c, 0, sizeof c);
  c.mode = SL_EXACTLY_ONCE;
  c.slow_delay_us = 200;
  snprintf(c.dir, sizeof c.dir, "%s", test_dir());
  ASSERT_EQ(sdk_run_child(align_job, &c), 0);
  align_check(&c);
}
