/*
** bench_pipeline.c — the end-to-end figure of the SDK runner: a job
**
**   sl_generator_source (id, key, seq; parallelism 1)
**     -> SL_KEY_BY "key"
**     -> counter: a keyed operator with a value state `count`; per record
**        sl_value_get + sl_value_update, and it emits (key, count)
**     -> SL_REBALANCE
**     -> sink: counts the records it receives (no output file; parallelism 1)
**
** with the counter at parallelism --par, checkpoints every --interval-ms, in
** fresh state and checkpoint directories under --dir (removed afterwards).
** records/s is the records of the source over the wall time of sl_job_run(),
** which includes the final checkpoint. The checkpoint pauses and the count of
** completed checkpoints come from sl_job_get_stats(). The run is checked:
** the sink must have seen every record once, and the counts it saw must add
** up to what per-key counters give (sum over keys of n_k (n_k + 1) / 2).
**
** Prints one line of key=value results. Run with --help for the options.
*/
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "statelite.h"
#include "bench_util.h"

typedef struct Opts {
  int64_t records;
  int64_t keys;
  int par;
  int64_t interval_ms;
  uint64_t budget;      /* memory budget per instance; 0: the job's default */
  const char *tmp;
} Opts;

static void usage(FILE *f) {
  fputs("usage: bench_pipeline [options]\n"
        "  --records N       records the generator emits (default 3000000)\n"
        "  --keys K          distinct keys (default 100000)\n"
        "  --par P           parallelism of the counter (default 1)\n"
        "  --interval-ms MS  checkpoint interval (default 1000)\n"
        "  --budget BYTES    memory budget per instance (default: the job's, 8 MiB)\n"
        "  --dir DIR         where the scratch directory goes (default $TMPDIR or /tmp)\n",
        f);
}

static int parse_opts(int argc, char **argv, Opts *o) {
  int i;
  memset(o, 0, sizeof *o);
  o->records = 3000000;
  o->keys = 100000;
  o->par = 1;
  o->interval_ms = 1000;
  o->tmp = getenv("TMPDIR");
  if (!o->tmp || !*o->tmp) o->tmp = "/tmp";
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    long long n;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (!v) {
      fprintf(stderr, "bench_pipeline: %s needs a value (see --help)\n", a);
      return -1;
    }
    i++;
    if (strcmp(a, "--dir") == 0) {
      o->tmp = v;
      continue;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < 1) {
      fprintf(stderr, "bench_pipeline: %s wants a positive integer, not '%s'\n", a, v);
      return -1;
    }
    if (strcmp(a, "--records") == 0) o->records = n;
    else if (strcmp(a, "--keys") == 0) o->keys = n;
    else if (strcmp(a, "--par") == 0) o->par = (int)n;
    else if (strcmp(a, "--interval-ms") == 0) o->interval_ms = n;
    else if (strcmp(a, "--budget") == 0) o->budget = n;
    else {
      fprintf(stderr, "bench_pipeline: unknown option %s (see --help)\n", a);
      return -1;
    }
  }
  if (o->par > 128) {
    fprintf(stderr, "bench_pipeline: --par must be 1..128\n");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The operators                                                             */
/* ------------------------------------------------------------------------ */

static const sl_column key_col[] = {{"key", SL_INTEGER, {0, 0, {0}}}};
static const sl_column count_col[] = {{"count", SL_INTEGER, {0, 0, {0}}}};
static const sl_column counter_out[] = {{"key", SL_INTEGER, {0, 0, {0}}},
                                        {"count", SL_INTEGER, {0, 0, {0}}}};

static int counter_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *s = sl_ctx_state(ctx, "count");
  const sl_value *cur;
  int64_t n = 0;
  sl_value v, out[2];
  int rc;
  (void)ud;
  rc = sl_value_get(s, &cur);
  if (rc == SL_OK) n = cur[0].v.i;
  else if (rc != SL_NOTFOUND) return rc;
  v = sl_int(n + 1);
  rc = sl_value_update(s, &v);
  if (rc != SL_OK) return rc;
  out[0] = rec->f[1];
  out[1] = v;
  return sl_ctx_emit(ctx, out, 2, rec->ts);
}

/* The sink runs as one instance, on its own thread; sl_job_run() has joined
** it before these are read. */
static int64_t sink_records;
static int64_t sink_sum;

static int sink_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  (void)ctx;
  (void)ud;
  sink_records++;
  sink_sum += rec->f[1].v.i;
  return SL_OK;
}

int main(int argc, char **argv) {
  Opts o;
  char root[4096], state_dir[4200], chk_dir[4200];
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator counter, sink;
  sl_state_desc desc;
  sl_job *job = NULL;
  sl_job_stats stats;
  const char *key = "key";
  int s0, s1, s2, rc, ok = 0;
  double t0, secs;
  int64_t expect_sum = 0, k;

  if (parse_opts(argc, argv, &o) != 0) return 2;
  if ((size_t)snprintf(root, sizeof root, "%s/bench_pipeline-XXXXXX", o.tmp) >= sizeof root ||
      !mkdtemp(root)) {
    fprintf(stderr, "bench_pipeline: cannot create a directory under %s\n", o.tmp);
    return 2;
  }
  snprintf(state_dir, sizeof state_dir, "%s/state", root);
  snprintf(chk_dir, sizeof chk_dir, "%s/chk", root);

  sl_job_config_init(&cfg);
  cfg.state_dir = state_dir;
  cfg.checkpoint_dir = chk_dir;
  cfg.checkpoint_interval_ms = o.interval_ms;
  if (o.budget) cfg.memory_budget = (size_t)o.budget;

  memset(&gen, 0, sizeof gen);
  gen.count = o.records;
  gen.keys = o.keys;
  sl_generator_source(&src, &gen);

  memset(&desc, 0, sizeof desc);
  desc.name = "count";
  desc.kind = SL_VALUE_STATE;
  desc.n_key = 1;
  desc.key = key_col;
  desc.n_value = 1;
  desc.value = count_col;

  memset(&counter, 0, sizeof counter);
  counter.process = counter_process;
  counter.states = &desc;
  counter.n_states = 1;
  counter.out = counter_out;
  counter.n_out = 2;

  memset(&sink, 0, sizeof sink);
  sink.process = sink_process;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, 1, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "counter", &counter, o.par, &s1);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s2);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s1, s2, SL_REBALANCE, NULL, 0);
  if (rc != SL_OK) {
    fprintf(stderr, "bench_pipeline: building the job failed: %s (%s)\n", sl_errmsg(job),
            sl_errstr(rc));
    goto out;
  }
  t0 = now_sec();
  rc = sl_job_run(job);
  secs = now_sec() - t0;
  if (rc != SL_OK) {
    fprintf(stderr, "bench_pipeline: sl_job_run failed: %s (%s)\n", sl_errmsg(job),
            sl_errstr(rc));
    goto out;
  }
  rc = sl_job_get_stats(job, &stats);
  if (rc != SL_OK) {
    fprintf(stderr, "bench_pipeline: sl_job_get_stats failed: %s\n", sl_errstr(rc));
    goto out;
  }
  for (k = 0; k < o.keys && k < o.records; k++) {
    int64_t n = o.records / o.keys + (k < o.records % o.keys ? 1 : 0);
    expect_sum += n * (n + 1) / 2;
  }
  if (sink_records != o.records || sink_sum != expect_sum || stats.records_in != o.records) {
    fprintf(stderr,
            "bench_pipeline: WRONG RESULT: the sink saw %lld records (expected %lld), their "
            "counts sum to %lld (expected %lld); the sources read %lld\n",
            (long long)sink_records, (long long)o.records, (long long)sink_sum,
            (long long)expect_sum, (long long)stats.records_in);
    goto out;
  }
  ok = 1;
  printf("records=%lld keys=%lld par=%d interval_ms=%lld seconds=%.4f records_per_sec=%.0f "
         "checkpoints=%lld failed_checkpoints=%lld pause_p50_us=%lld pause_p99_us=%lld "
         "pause_max_us=%lld verified=ok\n",
         (long long)o.records, (long long)o.keys, o.par, (long long)o.interval_ms, secs,
         secs > 0 ? (double)o.records / secs : 0.0, (long long)stats.checkpoints,
         (long long)stats.failed_checkpoints, (long long)stats.pause_p50_us,
         (long long)stats.pause_p99_us, (long long)stats.pause_max_us);

out:
  sl_job_free(job);
  if (rm_tree(root) != 0)
    fprintf(stderr, "bench_pipeline: could not remove the scratch directory %s\n", root);
  return ok ? 0 : 1;
}
