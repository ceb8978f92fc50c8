/*
** test_sdk_timers.c — event-time timers and watermarks through the runner:
** tumbling windows per key, closed by timers when the watermark passes
** their end, fire exactly once and in order, also when the job is killed
** and restored in between; the output equals that of a run without kills.
*/
#include "sdk_util.h"

typedef struct win_cfg {
  char dir[4096];
  int64_t delay_us;
} win_cfg;

static const sl_column win_key[] = {{"key", SL_INTEGER, {0, 0, {0}}}};
static const sl_column win_mk[] = {{"window_end", SL_INTEGER, {0, 0, {0}}}};
static const sl_column win_val[] = {{"n", SL_INTEGER, {0, 0, {0}}}, {"sum", SL_INTEGER, {0, 0, {0}}}};
static const sl_column win_out[] = {{"key", SL_INTEGER, {0, 0, {0}}},
                                    {"window_end", SL_INTEGER, {0, 0, {0}}},
                                    {"n", SL_INTEGER, {0, 0, {0}}},
                                    {"sum", SL_INTEGER, {0, 0, {0}}}};
static sl_state_desc win_states[1];

#define WINDOW 100

static int win_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *w = sl_ctx_state(ctx, "windows");
  int64_t end = (rec->ts / WINDOW + 1) * WINDOW;
  sl_value mk = sl_int(end), v[2];
  const sl_value *cur;
  int rc;
  (void)ud;
  rc = sl_map_get(w, &mk, &cur);
  if (rc == SL_OK) {
    v[0] = sl_int(cur[0].v.i + 1);
    v[1] = sl_int(cur[1].v.i + rec->f[0].v.i);
  } else if (rc == SL_NOTFOUND) {
    v[0] = sl_int(1);
    v[1] = sl_int(rec->f[0].v.i);
    rc = sl_ctx_timer(ctx, SL_EVENT_TIME, end - 1);
    if (rc) return rc;
  } else {
    return rc;
  }
  return sl_map_put(w, &mk, v);
}

static int win_timer(sl_ctx *ctx, int domain, int64_t time, void *ud) {
  sl_state *w = sl_ctx_state(ctx, "windows");
  const sl_value *key, *cur;
  sl_value mk = sl_int(time + 1), out[4];
  int n, rc;
  (void)ud;
  if (domain != SL_EVENT_TIME) return SL_ERROR;
  if (time > sl_ctx_watermark(ctx)) {
    sl_ctx_error(ctx, "timer %lld fired before the watermark (%lld) passed it", (long long)time,
                 (long long)sl_ctx_watermark(ctx));
    return SL_ERROR;
  }
  rc = sl_store_key(sl_ctx_store(ctx), &key, &n, NULL);
  if (rc) return rc;
  out[0] = key[0];
  rc = sl_map_get(w, &mk, &cur);
  if (rc) {
    sl_ctx_error(ctx, "timer %lld of key %lld has no window (fired twice?)", (long long)time,
                 (long long)key[0].v.i);
    return SL_ERROR;
  }
  out[1] = sl_int(time + 1);
  out[2] = cur[0];
  out[3] = cur[1];
  rc = sl_ctx_emit(ctx, out, 4, time);
  if (rc == SL_OK) rc = sl_map_remove(w, &mk);
  return rc;
}

static int win_job(void *arg) {
  win_cfg *c = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator win, sink;
  sl_job *job = NULL;
  char state[4200], chk[4200], out[4200];
  const char *key = "key";
  int s0, s1, s2, rc;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 40;
  cfg.channel_capacity = 32;
  memset(&gen, 0, sizeof gen);
  gen.count = 8000;
  gen.keys = 7;
  gen.records_per_read = 20;
  gen.delay_us_per_read = c->delay_us;
  sl_generator_source(&src, &gen);
  src.watermark_delay_ms = 0;
  memset(win_states, 0, sizeof win_states);
  win_states[0].name = "windows";
  win_states[0].kind = SL_MAP_STATE;
  win_states[0].n_key = 1;
  win_states[0].key = win_key;
  win_states[0].n_map_key = 1;
  win_states[0].map_key = win_mk;
  win_states[0].n_value = 2;
  win_states[0].value = win_val;
  memset(&win, 0, sizeof win);
  win.process = win_process;
  win.on_timer = win_timer;
  win.states = win_states;
  win.n_states = 1;
  win.out = win_out;
  win.n_out = 4;
  sl_file_sink(&sink, out);
  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, 1, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "windows", &win, 1, &s1);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s2);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s1, s2, SL_FORWARD, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  sl_job_free(job);
  return rc ? 1 : 0;
}

/* What the windows must say: per key and window, count and sum of ids. */
static char *win_expected(void) {
  size_t cap = 1 << 20, n = 0;
  char *s = malloc(cap);
  ASSERT(s);
  s[0] = 0;
  for (int64_t end = WINDOW; end <= 8000; end += WINDOW)
    for (int64_t k = 0; k < 7; k++) {
      int64_t cnt = 0, sum = 0;
      for (int64_t i = end - WINDOW; i < end; i++)
        if (i % 7 == k) {
          cnt++;
          sum += i;
        }
      if (cnt) n += (size_t)snprintf(s + n, cap - n, "%lld\t%lld\t%lld\t%lld\n", (long long)k,
                                     (long long)end, (long long)cnt, (long long)sum);
    }
  return s;
}

TEST(quick_sdk_event_time_windows) {
  win_cfg c;
  char path[4200], *got, *want, *a, *b;
  memset(&c, 0, sizeof c);
  snprintf(c.dir, sizeof c.dir, "%s", test_dir());
  ASSERT_EQ(sdk_run_child(win_job, &c), 0);
  snprintf(path, sizeof path, "%s/out.txt", c.dir);
  got = sdk_read(path);
  want = win_expected();
  a = sdk_sorted(got);
  b = sdk_sorted(want);
  ASSERT_STR(a, b);
  free(a);
  free(b);
  free(got);
  free(want);
}

TEST(sdk_timers_fire_once_in_order_across_kills) {
  win_cfg c, ref;
  char path[4200], *got, *clean;
  int kills;
  memset(&ref, 0, sizeof ref);
  snprintf(ref.dir, sizeof ref.dir, "%s/ref", test_dir());
  ASSERT_EQ(sdk_run_child(win_job, &ref), 0);
  memset(&c, 0, sizeof c);
  snprintf(c.dir, sizeof c.dir, "%s/killed", test_dir());
  c.delay_us = 8000;
  kills = sdk_kill_loop(win_job, &c, (uint64_t)time(NULL) ^ 0x31, 15, 40, 400);
  ASSERT(kills >= 15);
  snprintf(path, sizeof path, "%s/out.txt", c.dir);
  got = sdk_read(path);
  snprintf(path, sizeof path, "%s/out.txt", ref.dir);
  clean = sdk_read(path);
  /* one path of parallelism 1: the order is deterministic, so the bytes are */
  ASSERT_MSG(strcmp(got, clean) == 0, "the output after kills differs from a run without kills");
  free(got);
  free(clean);
}

/* ---- processing-time timers ---------------------------------------------- */

static const sl_column pt_out[] = {{"key", SL_INTEGER, {0, 0, {0}}}, {"late_ms", SL_INTEGER, {0, 0, {0}}}};
static const sl_column pt_val[] = {{"due", SL_INTEGER, {0, 0, {0}}}};
static sl_state_desc pt_states[1];

static int pt_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *armed = sl_ctx_state(ctx, "armed");
  const sl_value *v;
  sl_value due;
  int rc = sl_value_get(armed, &v);
  (void)rec;
  (void)ud;
  if (rc != SL_NOTFOUND) return rc;
  due = sl_int(sl_ctx_now(ctx) + 50);
  rc = sl_value_update(armed, &due);
  if (rc == SL_OK) rc = sl_ctx_timer(ctx, SL_PROCESSING_TIME, due.v.i);
  return rc;
}

static int pt_timer(sl_ctx *ctx, int domain, int64_t time, void *ud) {
  const sl_value *key;
  sl_value out[2];
  int n, rc;
  (void)ud;
  if (domain != SL_PROCESSING_TIME) return SL_ERROR;
  if (sl_ctx_now(ctx) < time) {
    sl_ctx_error(ctx, "processing-time timer %lld fired early", (long long)time);
    return SL_ERROR;
  }
  rc = sl_store_key(sl_ctx_store(ctx), &key, &n, NULL);
  if (rc) return rc;
  out[0] = key[0];
  out[1] = sl_int(sl_ctx_now(ctx) - time);
  return sl_ctx_emit(ctx, out, 2, time);
}

static int pt_job(void *arg) {
  const char *dir = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator op, sink;
  sl_job *job = NULL;
  char state[4200], chk[4200], out[4200];
  const char *key = "key";
  int s0, s1, s2, rc;
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/chk", dir);
  snprintf(out, sizeof out, "%s/out.txt", dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 50;
  memset(&gen, 0, sizeof gen);
  gen.count = 1500;
  gen.keys = 20;
  gen.records_per_read = 10;
  gen.delay_us_per_read = 8000;
  sl_generator_source(&src, &gen);
  memset(pt_states, 0, sizeof pt_states);
  pt_states[0].name = "armed";
  pt_states[0].kind = SL_VALUE_STATE;
  pt_states[0].n_key = 1;
  pt_states[0].key = win_key;
  pt_states[0].n_value = 1;
  pt_states[0].value = pt_val;
  memset(&op, 0, sizeof op);
  op.process = pt_process;
  op.on_timer = pt_timer;
  op.states = pt_states;
  op.n_states = 1;
  op.out = pt_out;
  op.n_out = 2;
  sl_file_sink(&sink, out);
  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, 1, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "arm", &op, 2, &s1);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s2);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s1, s2, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  sl_job_free(job);
  return rc ? 1 : 0;
}

TEST(sdk_processing_time_timers_fire_once) {
  char path[4200], *text, *p;
  int seen[20] = {0};
  ASSERT_EQ(sdk_run_child(pt_job, (void *)test_dir()), 0);
  snprintf(path, sizeof path, "%s/out.txt", test_dir());
  text = sdk_read(path);
  for (p = text; *p;) {
    long long k = -1, late = -1;
    ASSERT(sscanf(p, "%lld\t%lld", &k, &late) == 2);
    ASSERT(k >= 0 && k < 20);
    ASSERT(late >= 0);
    seen[k]++;
    p = strchr(p, '\n');
    ASSERT(p);
    p++;
  }
  for (int k = 0; k < 20; k++) ASSERT_MSG(seen[k] == 1, "key %d's timer fired %d times", k, seen[k]);
  free(text);
}
