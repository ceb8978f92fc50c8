/*
** online_regression.c — a linear model per key, learned online from a
** stream of (x, y) samples; its parameters live in keyed state, so they
** survive a crash and a restart.
**
**   online_regression [--dir DIR] [--keys K] [--samples N] [--parallelism P]
**                     [--interval-ms N] [--pace-ms MS]
**
** The samples are generated: K series "line-1" ... "line-K", each following
** y = a*x + b plus noise, with a and b different per series. For each series
** the operator `fit` keeps the least-squares fit of all samples so far:
**
**   state "model", per key: n, sum_x, sum_y, sum_xx, sum_xy  (sufficient
**   statistics), and slope, intercept (the parameters derived from them)
**
**   slope     = (n*sum_xy - sum_x*sum_y) / (n*sum_xx - sum_x^2)
**   intercept = (sum_y - slope*sum_x) / n
**
** Each sample updates the row of its key; every 1000 samples of a key the
** current parameters go to DIR/model.tsv (exactly once). Since the whole
** model is state, a restarted job does not learn from zero: it goes on from
** the newest checkpoint, and ends with exactly the model of a run that was
** never interrupted (the same samples were added in the same order).
**
** At the end the program opens the state files with the store API, reads
** the parameters from them, and prints them next to the true ones. You can
** read them yourself with
**
**   sqlite3 DIR/state/fit/0.db 'SELECT key, n, slope, intercept FROM model'
*/
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkdir, nanosleep */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <statelite.h>

#define MAX_KEYS 1000

/* ---- the samples ---------------------------------------------------------------- */

typedef struct gen_config {
  int keys;
  int64_t count;     /* samples in all */
  int64_t pace_ms;   /* sleep per batch of 100 samples (0: full speed) */
} gen_config;

static double true_slope(int k) { return 0.5 + 0.75 * k; }
static double true_intercept(int k) { return 10.0 - 3.0 * k; }

static uint64_t mix(uint64_t z) { /* splitmix64 */
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static const sl_column sample_fields[] = {
    {"key", SL_TEXT, {0}}, {"x", SL_REAL, {0}}, {"y", SL_REAL, {0}}};

/* Sample i belongs to series i % keys; x in [0, 100), noise in [-5, 5). */
static int samples_read(sl_ctx *ctx, void *ud) {
  const gen_config *g = ud;
  int64_t *next = sl_ctx_instance(ctx);
  int rc = SL_OK;
  if (*next >= g->count) return SL_DONE;
  if (g->pace_ms > 0) {
    struct timespec ts = {(time_t)(g->pace_ms / 1000), (long)(g->pace_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
  for (int b = 0; b < 100 && *next < g->count && rc == SL_OK; b++, (*next)++) {
    uint64_t h = mix((uint64_t)*next);
    int k = (int)(*next % g->keys);
    double x = (double)(h % 100000) / 1000.0;
    double noise = (double)((h >> 32) % 10000) / 1000.0 - 5.0;
    char key[32];
    sl_value f[3];
    snprintf(key, sizeof key, "line-%d", k + 1);
    f[0] = sl_text(key);
    f[1] = sl_real(x);
    f[2] = sl_real(true_slope(k) * x + true_intercept(k) + noise);
    rc = sl_ctx_emit(ctx, f, 3, *next);
  }
  return rc;
}

static int samples_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = *(int64_t *)sl_ctx_instance(ctx);
  return SL_OK;
}

static int samples_seek(sl_ctx *ctx, int64_t pos, void *ud) {
  (void)ud;
  *(int64_t *)sl_ctx_instance(ctx) = pos;
  return SL_OK;
}

/* ---- the model ------------------------------------------------------------------ */

static const sl_column key_cols[] = {{"key", SL_TEXT, {0}}};
static const sl_column model_cols[] = {
    {"n", SL_INTEGER, {0}},   {"sum_x", SL_REAL, {0}}, {"sum_y", SL_REAL, {0}},
    {"sum_xx", SL_REAL, {0}}, {"sum_xy", SL_REAL, {0}}, {"slope", SL_REAL, {0}},
    {"intercept", SL_REAL, {0}}};
static const sl_column model_fields[] = {{"key", SL_TEXT, {0}},
                                         {"n", SL_INTEGER, {0}},
                                         {"slope", SL_TEXT, {0}},
                                         {"intercept", SL_TEXT, {0}}};

static int fit_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *model = sl_ctx_state(ctx, "model");
  const sl_value *cur;
  double x = rec->f[1].v.r, y = rec->f[2].v.r, s[4] = {0, 0, 0, 0}, den, slope = 0, intercept = 0;
  int64_t n = 0;
  sl_value v[7];
  int rc = sl_value_get(model, &cur);
  (void)ud;
  if (rc == SL_OK) {
    n = cur[0].v.i;
    for (int i = 0; i < 4; i++) s[i] = cur[1 + i].v.r;
  } else if (rc != SL_NOTFOUND) {
    return rc;
  }
  n += 1;
  s[0] += x;
  s[1] += y;
  s[2] += x * x;
  s[3] += x * y;
  den = (double)n * s[2] - s[0] * s[0];
  if (n >= 2 && den != 0) {
    slope = ((double)n * s[3] - s[0] * s[1]) / den;
    intercept = (s[1] - slope * s[0]) / (double)n;
  }
  v[0] = sl_int(n);
  for (int i = 0; i < 4; i++) v[1 + i] = sl_real(s[i]);
  v[5] = sl_real(slope);
  v[6] = sl_real(intercept);
  rc = sl_value_update(model, v);
  if (rc == SL_OK && n % 1000 == 0) {
    char a[32], b[32];
    sl_value out[4];
    snprintf(a, sizeof a, "%.4f", slope);
    snprintf(b, sizeof b, "%.4f", intercept);
    out[0] = rec->f[0];
    out[1] = sl_int(n);
    out[2] = sl_text(a);
    out[3] = sl_text(b);
    rc = sl_ctx_emit(ctx, out, 4, rec->ts);
  }
  return rc;
}

/* ---- after the job: the parameters, read from the state files -------------------- */

typedef struct param {
  int k;
  int64_t n;
  double slope, intercept;
} param;

static int cmp_param(const void *a, const void *b) {
  return ((const param *)a)->k - ((const param *)b)->k;
}

static int print_model(const char *state_dir, int par) {
  static param p[MAX_KEYS];
  int np = 0;
  for (int i = 0; i < par; i++) {
    char path[4200];
    sl_store *st = NULL;
    sl_state *s = NULL;
    sl_iter *it = NULL;
    int rc;
    snprintf(path, sizeof path, "%s/fit/%d.db", state_dir, i);
    rc = sl_store_open_file(path, NULL, &st);
    if (rc == SL_OK) rc = sl_state_open(st, "model", &s);
    if (rc == SL_OK) rc = sl_state_scan(s, &it); /* every key of this instance */
    while (rc == SL_OK && (rc = sl_iter_next(it)) == SL_ROW) {
      const sl_value *k, *v;
      int nk, nv;
      rc = sl_iter_key(it, &k, &nk, NULL);
      if (rc == SL_OK) rc = sl_iter_value(it, &v, &nv);
      if (rc == SL_OK && np < MAX_KEYS && sscanf((const char *)k[0].v.p, "line-%d", &p[np].k) == 1) {
        p[np].n = v[0].v.i;
        p[np].slope = v[5].v.r;
        p[np].intercept = v[6].v.r;
        np++;
      }
    }
    sl_iter_close(it);
    if (rc != SL_DONE && rc != SL_NOTFOUND) {
      fprintf(stderr, "online_regression: %s: %s: %s\n", path, sl_errstr(rc), sl_errmsg(st));
      sl_store_close(st);
      return 1;
    }
    sl_store_close(st);
  }
  qsort(p, (size_t)np, sizeof *p, cmp_param);
  printf("%-8s %7s %9s %9s %10s %10s\n", "key", "samples", "slope", "(true)", "intercept", "(true)");
  for (int i = 0; i < np; i++)
    printf("line-%-3d %7lld %9.4f %9.4f %10.4f %10.4f\n", p[i].k, (long long)p[i].n, p[i].slope,
           true_slope(p[i].k - 1), p[i].intercept, true_intercept(p[i].k - 1));
  return 0;
}

/* ---- the job -------------------------------------------------------------------- */

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: online_regression [options]\n"
          "\n"
          "Fits y = slope*x + intercept per key online; the model is keyed state.\n"
          "\n"
          "  --dir DIR          state, checkpoints and model.tsv; a run with the same\n"
          "                     DIR resumes from its newest checkpoint (default: a new\n"
          "                     directory under /tmp)\n"
          "  --keys K           series (default 4, at most %d)\n"
          "  --samples N        samples per series (default 5000)\n"
          "  --parallelism P    instances of the fit operator (default 2)\n"
          "  --interval-ms N    milliseconds between checkpoints (default 200)\n"
          "  --pace-ms MS       sleep per 100 samples, to watch it (default 0)\n"
          "  --help             this text\n",
          MAX_KEYS);
  return rc;
}

static void job_log(void *ud, const char *line) {
  (void)ud;
  if (strncmp(line, "restored", 8) == 0) fprintf(stderr, "online_regression: %s\n", line);
}

static long long number(const char *s, long long min) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  return (errno || end == s || *end || v < min) ? -1 : v;
}

int main(int argc, char **argv) {
  static gen_config gen;        /* must outlive the job */
  char dirbuf[] = "/tmp/online_regression-XXXXXX";
  const char *dir = NULL, *key = "key";
  char state[4096], chk[4096], out[4096];
  long long keys = 4, per_key = 5000, par = 2, interval = 200, pace = 0;
  int s_src, s_fit, s_sink, rc;
  sl_job_config cfg;
  sl_source src;
  sl_operator fit, sink;
  sl_state_desc model;
  sl_job *job = NULL;

  for (int i = 1; i < argc;) {
    const char *a = argv[i++], *v = i < argc ? argv[i] : "";
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
    if (strcmp(a, "--dir") == 0) dir = v;
    else if (strcmp(a, "--keys") == 0) keys = number(v, 1);
    else if (strcmp(a, "--samples") == 0) per_key = number(v, 1);
    else if (strcmp(a, "--parallelism") == 0) par = number(v, 1);
    else if (strcmp(a, "--interval-ms") == 0) interval = number(v, 1);
    else if (strcmp(a, "--pace-ms") == 0) pace = number(v, 0);
    else {
      fprintf(stderr, "online_regression: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    i++; /* the option's value */
  }
  if (keys < 1 || keys > MAX_KEYS || per_key < 1 || per_key > 100000000 / keys || par < 1 ||
      par > SL_DEFAULT_MAX_PARALLELISM || interval < 1 || pace < 0 || (dir && !dir[0])) {
    fprintf(stderr, "online_regression: an option has a bad value\n");
    return usage(stderr, 2);
  }
  gen.keys = (int)keys;
  gen.count = keys * per_key;
  gen.pace_ms = pace;
  if (!dir) dir = mkdtemp(dirbuf);
  if (!dir || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
    fprintf(stderr, "online_regression: cannot create the directory %s\n", dir ? dir : dirbuf);
    return 1;
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);
  snprintf(out, sizeof out, "%s/model.tsv", dir);

  memset(&src, 0, sizeof src);
  src.read = samples_read;
  src.position = samples_position;
  src.seek = samples_seek;
  src.ud = &gen;
  src.instance_size = sizeof(int64_t);
  src.out = sample_fields;
  src.n_out = 3;
  src.watermark_delay_ms = -1;

  memset(&model, 0, sizeof model);
  model.name = "model";
  model.kind = SL_VALUE_STATE;
  model.n_key = 1;
  model.key = key_cols;
  model.n_value = 7;
  model.value = model_cols;
  memset(&fit, 0, sizeof fit);
  fit.process = fit_process;
  fit.states = &model;
  fit.n_states = 1;
  fit.out = model_fields;
  fit.n_out = 4;

  sl_file_sink(&sink, out);

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = interval;
  cfg.log = job_log;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "samples", &src, 1, &s_src);
  if (rc == SL_OK) rc = sl_job_operator(job, "fit", &fit, (int)par, &s_fit);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_src, s_fit, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s_fit, s_sink, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc != SL_OK) {
    fprintf(stderr, "online_regression: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    return 1;
  }
  sl_job_free(job);
  printf("the model every 1000 samples of a key is in %s; the state in %s/fit/\n", out, state);
  return print_model(state, (int)par);
}
