/*
** test_sdk_savepoint.c — savepoints taken on demand: a job stopped with a
** savepoint resumes from it, also with another parallelism (the keyed state
** is redistributed by key group); checkpoint timeouts abort the checkpoint
** and remove its files; a job that restarts from a finished one adds nothing.
*/
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "sdk_util.h"

static const sl_column cnt_key[] = {{"key", SL_INTEGER, {0, 0, {0}}}};
static const sl_column cnt_val[] = {{"n", SL_INTEGER, {0, 0, {0}}}};
static sl_state_desc cnt_state;

static int count_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *s = sl_ctx_state(ctx, "counts");
  const sl_value *v;
  sl_value nv;
  int64_t n = 0;
  int rc = sl_value_get(s, &v);
  (void)rec;
  (void)ud;
  if (rc == SL_OK) n = v[0].v.i;
  else if (rc != SL_NOTFOUND) return rc;
  nv = sl_int(n + 1);
  return sl_value_update(s, &nv);
}

typedef struct sp_cfg {
  char dir[4096];
  int par;
  int64_t count, delay_us;
  const char *restore;
  int64_t snapshot_sleep_ms; /* > 0: the snapshot hook sleeps this long */
  int64_t timeout_ms;
} sp_cfg;

static int slow_snapshot(sl_ctx *ctx, int64_t id, void *ud) {
  const sp_cfg *c = ud;
  (void)ctx;
  (void)id;
  sdk_sleep_ms(c->snapshot_sleep_ms);
  return SL_OK;
}

static sl_job *sp_build(sp_cfg *c, sl_generator_config *gen, sl_source *src, sl_operator *op) {
  sl_job_config cfg;
  sl_job *job = NULL;
  char state[4200], chk[4200];
  const char *key = "key";
  int s0, s1;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 20;
  cfg.restore_savepoint = c->restore;
  if (c->timeout_ms) cfg.checkpoint_timeout_ms = c->timeout_ms;
  memset(gen, 0, sizeof *gen);
  gen->count = c->count;
  gen->keys = 500;
  gen->records_per_read = 50;
  gen->delay_us_per_read = c->delay_us;
  sl_generator_source(src, gen);
  memset(&cnt_state, 0, sizeof cnt_state);
  cnt_state.name = "counts";
  cnt_state.kind = SL_VALUE_STATE;
  cnt_state.n_key = 1;
  cnt_state.key = cnt_key;
  cnt_state.n_value = 1;
  cnt_state.value = cnt_val;
  memset(op, 0, sizeof *op);
  op->process = count_process;
  op->states = &cnt_state;
  op->n_states = 1;
  op->ud = c;
  if (c->snapshot_sleep_ms) op->snapshot = slow_snapshot;
  ASSERT_OK(sl_job_new(&cfg, &job), job);
  ASSERT_OK(sl_job_source(job, "gen", src, 1, &s0), job);
  ASSERT_OK(sl_job_operator(job, "count", op, c->par, &s1), job);
  ASSERT_OK(sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1), job);
  return job;
}

static void *stop_later(void *arg) {
  sdk_sleep_ms(300);
  sl_job_stop(arg, "before-upgrade");
  return NULL;
}

/* Sum and number of keys of the counts over every instance's state file. */
static void sp_totals(const sp_cfg *c, int64_t *sum, int64_t *keys) {
  *sum = *keys = 0;
  for (int i = 0; i < c->par; i++) {
    char path[4300];
    sqlite3 *db;
    sqlite3_stmt *q;
    snprintf(path, sizeof path, "%s/state/count/%d.db", c->dir, i);
    ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    ASSERT(sqlite3_prepare_v2(db, "SELECT coalesce(sum(n),0), count(*) FROM counts", -1, &q, NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    *sum += sqlite3_column_int64(q, 0);
    *keys += sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
}

TEST(sdk_stop_with_savepoint_and_rescale) {
  sp_cfg c;
  sl_generator_config gen;
  sl_source src;
  sl_operator op;
  sl_job *job;
  pthread_t t;
  sl_job_stats stats;
  int64_t sum, keys;
  char path[4300];
  struct stat sb;
  memset(&c, 0, sizeof c);
  snprintf(c.dir, sizeof c.dir, "%s", test_dir());
  c.par = 2;
  c.count = 100000;
  c.delay_us = 2000;
  job = sp_build(&c, &gen, &src, &op);
  ASSERT(pthread_create(&t, NULL, stop_later, job) == 0);
  ASSERT_OK(sl_job_run(job), job);
  pthread_join(t, NULL);
  ASSERT_OK(sl_job_get_stats(job, &stats), job);
  sl_job_free(job);
  ASSERT(stats.records_in < 100000); /* it stopped early */
  snprintf(path, sizeof path, "%s/chk/savepoints/before-upgrade/MANIFEST", c.dir);
  ASSERT_MSG(stat(path, &sb) == 0, "no savepoint MANIFEST at %s", path);

  /* resume from the savepoint with three counting instances */
  c.par = 3;
  c.delay_us = 0;
  c.restore = "before-upgrade";
  job = sp_build(&c, &gen, &src, &op);
  ASSERT_OK(sl_job_run(job), job);
  sl_job_free(job);
  sp_totals(&c, &sum, &keys);
  ASSERT_EQ(sum, 100000);
  ASSERT_EQ(keys, 500);
  /* the savepoint is still there: retention never removes it */
  ASSERT(stat(path, &sb) == 0);

  /* and back to one instance, from the newest checkpoint: nothing new */
  c.par = 1;
  c.restore = NULL;
  job = sp_build(&c, &gen, &src, &op);
  ASSERT_OK(sl_job_run(job), job);
  sl_job_free(job);
  sp_totals(&c, &sum, &keys);
  ASSERT_EQ(sum, 100000);
  ASSERT_EQ(keys, 500);
}

TEST(sdk_checkpoint_timeout_aborts_and_cleans) {
  sp_cfg c;
  sl_generator_config gen;
  sl_source src;
  sl_operator op;
  sl_job *job;
  char cmd[4400], out[4096];
  int rc;
  memset(&c, 0, sizeof c);
  snprintf(c.dir, sizeof c.dir, "%s", test_dir());
  c.par = 1;
  c.count = 20000;
  c.delay_us = 1000;
  c.snapshot_sleep_ms = 300;
  c.timeout_ms = 100;
  job = sp_build(&c, &gen, &src, &op);
  rc = sl_job_run(job);
  ASSERT_RC(rc, SL_ERROR, job);
  ASSERT_MSG(strstr(sl_errmsg(job), "timed out") != NULL, "%s", sl_errmsg(job));
  sl_job_free(job);
  /* no directory of an unfinished checkpoint is left behind */
  snprintf(cmd, sizeof cmd, "cd '%s/chk' && for d in chk-*; do [ -e \"$d\" ] || continue; "
                            "[ -f \"$d/MANIFEST\" ] || echo \"$d\"; done", c.dir);
  ASSERT_EQ(test_sh(out, sizeof out, "%s", cmd), 0);
  ASSERT_STR(out, "");
}
