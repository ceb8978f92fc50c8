/*
** test_sdk_badinput.c — jobs that are not well formed are refused before
** they run, with a sentence; a failing user callback stops the job cleanly
** with the operator named, and the last completed checkpoint stays usable.
*/
#include "sdk_util.h"

static const sl_column one_int[] = {{"x", SL_INTEGER, {0, 0, {0}}}};
static const sl_column v_key[] = {{"key", SL_INTEGER, {0, 0, {0}}}};

static sl_job *new_job(void) {
  sl_job_config cfg;
  sl_job *job = NULL;
  char state[4200], chk[4200];
  snprintf(state, sizeof state, "%s/state", test_dir());
  snprintf(chk, sizeof chk, "%s/chk", test_dir());
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  ASSERT_OK(sl_job_new(&cfg, &job), job);
  return job;
}

#define EXPECT_REFUSED(call, job, text) do { \
    ASSERT_RC(call, SL_MISUSE, job); \
    ASSERT_MSG(strstr(sl_errmsg(job), text) != NULL, "message '%s' lacks '%s'", sl_errmsg(job), text); \
  } while (0)

TEST(quick_sdk_refuses_malformed_jobs) {
  static sl_generator_config gen = {10, 2, 0, 0};
  sl_source src;
  sl_operator op, none;
  sl_job *job;
  int s0, s1, s2;
  const char *missing = "nope", *key = "key";
  sl_state_desc twice[2];
  sl_job_config cfg;

  /* no source */
  job = new_job();
  memset(&op, 0, sizeof op);
  ASSERT_OK(sl_job_operator(job, "op", &op, 1, &s0), job);
  EXPECT_REFUSED(sl_job_run(job), job, "no input");
  sl_job_free(job);
  job = new_job();
  EXPECT_REFUSED(sl_job_run(job), job, "no stages");
  sl_job_free(job);

  /* key_by on a field the records do not have */
  job = new_job();
  sl_generator_source(&src, &gen);
  ASSERT_OK(sl_job_source(job, "gen", &src, 1, &s0), job);
  ASSERT_OK(sl_job_operator(job, "op", &op, 1, &s1), job);
  EXPECT_REFUSED(sl_job_connect(job, s0, s1, SL_KEY_BY, &missing, 1), job, "no field 'nope'");
  sl_job_free(job);

  /* the same state twice with different kinds */
  memset(twice, 0, sizeof twice);
  twice[0].name = "s";
  twice[0].kind = SL_VALUE_STATE;
  twice[0].n_key = 1;
  twice[0].key = v_key;
  twice[0].n_value = 1;
  twice[0].value = one_int;
  twice[1] = twice[0];
  twice[1].kind = SL_LIST_STATE;
  op.states = twice;
  op.n_states = 2;
  job = new_job();
  EXPECT_REFUSED(sl_job_operator(job, "op", &op, 1, &s1), job, "declares state 's' twice with different kinds");
  sl_job_free(job);
  op.states = NULL;
  op.n_states = 0;

  /* parallelism 0 and above max parallelism */
  job = new_job();
  EXPECT_REFUSED(sl_job_source(job, "gen", &src, 0, &s0), job, "parallelism 0");
  EXPECT_REFUSED(sl_job_operator(job, "op", &op, 129, &s1), job, "parallelism 129");
  sl_job_free(job);

  /* a forward edge between different parallelism; a duplicate name; a bad name */
  job = new_job();
  ASSERT_OK(sl_job_source(job, "gen", &src, 2, &s0), job);
  ASSERT_OK(sl_job_operator(job, "op", &op, 3, &s1), job);
  EXPECT_REFUSED(sl_job_connect(job, s0, s1, SL_FORWARD, NULL, 0), job, "equal parallelism");
  EXPECT_REFUSED(sl_job_operator(job, "op", &op, 1, &s2), job, "two stages named 'op'");
  EXPECT_REFUSED(sl_job_operator(job, "../x", &op, 1, &s2), job, "not 1..128 characters");
  ASSERT_OK(sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1), job);
  sl_job_free(job);

  /* a source that cannot be replayed */
  job = new_job();
  src.seek = NULL;
  EXPECT_REFUSED(sl_job_source(job, "gen", &src, 1, &s0), job, "not replayable");
  sl_job_free(job);

  /* a configuration without directories */
  sl_job_config_init(&cfg);
  job = NULL;
  ASSERT_RC(sl_job_new(&cfg, &job), SL_MISUSE, job);
  ASSERT(strstr(sl_errmsg(job), "state_dir") != NULL);
  sl_job_free(job);
  memset(&none, 0, sizeof none);
  (void)none;
}

/* An operator that fails on record number `fail_at`. */
typedef struct fail_cfg {
  int64_t fail_at;
  char dir[4096];
} fail_cfg;

static int fail_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  const fail_cfg *c = ud;
  sl_state *s = sl_ctx_state(ctx, "seen");
  sl_value v = sl_int(rec->f[0].v.i);
  if (rec->f[0].v.i == c->fail_at) {
    sl_ctx_error(ctx, "record %lld is poison", (long long)rec->f[0].v.i);
    return SL_ERROR;
  }
  return sl_value_update(s, &v);
}

static int fail_job(void *arg) {
  fail_cfg *c = arg;
  static sl_generator_config gen;
  sl_job_config cfg;
  sl_source src;
  sl_operator op;
  sl_state_desc d;
  sl_job *job = NULL;
  char state[4200], chk[4200];
  const char *key = "key";
  int s0, s1, rc;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 10;
  memset(&gen, 0, sizeof gen);
  gen.count = 4000;
  gen.keys = 10;
  gen.records_per_read = 10;
  gen.delay_us_per_read = 500;
  sl_generator_source(&src, &gen);
  memset(&d, 0, sizeof d);
  d.name = "seen";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = v_key;
  d.n_value = 1;
  d.value = one_int;
  memset(&op, 0, sizeof op);
  op.process = fail_process;
  op.ud = c;
  op.states = &d;
  op.n_states = 1;
  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, 1, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "picky", &op, 1, &s1);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "%s\n", sl_errmsg(job));
  if (rc && (!strstr(sl_errmsg(job), "'picky'") || !strstr(sl_errmsg(job), "poison"))) rc = 99;
  sl_job_free(job);
  return rc == SL_ERROR ? 7 : rc ? 1 : 0;
}

TEST(quick_sdk_failing_callback_stops_cleanly) {
  fail_cfg c;
  memset(&c, 0, sizeof c);
  snprintf(c.dir, sizeof c.dir, "%s", test_dir());
  c.fail_at = 3000;
  /* the job stops with the callback's error and the operator named */
  ASSERT_EQ(sdk_run_child(fail_job, &c), 7);
  /* the last completed checkpoint is intact: a run without the poison
  ** record restores from it and finishes */
  c.fail_at = -1;
  ASSERT_EQ(sdk_run_child(fail_job, &c), 0);
  {
    char out[256];
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s/state/picky/0.db' 'select count(*), max(x) from seen'", c.dir);
    ASSERT_EQ(test_sh(out, sizeof out, "%s", cmd), 0);
    ASSERT_STR(out, "10|3999\n");
  }
}
