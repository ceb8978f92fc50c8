/*
** counter_source.c — a stateful source, like Flink's CounterSource: each
** instance counts 0, 1, 2, ... and keeps its offset (the next number) in
** operator state, so that after a crash it counts on from the offset of the
** checkpoint it is restored from: no number is lost and none repeats.
**
**   counter_source [--dir DIR] [--count N] [--parallelism P] [--interval-ms N]
**                  [--pace-ms MS]
**
** Operator state belongs to an instance of an operator, not to a key: here
** one row per source instance, the list state "offset", which is the table
** sl_op_offset in the instance's state file DIR/state/counter/<i>.db.
**
** How the offset and the output stay in step: a checkpoint starts at the
** sources. Between two calls of read() the runtime asks the source for its
** position, commits the source's state file (the offset row and the
** position together, one SQLite transaction), and sends a barrier down the
** stream behind the records already emitted. Every operator commits its
** state when the barrier reaches it; the checkpoint is complete when all
** have, and only then does the exactly-once sink publish the output written
** before the barrier. Restored from that checkpoint, the source starts at
** the offset it had at the barrier, and the sink holds exactly the records
** emitted before it: together, every number once.
**
** In statelite every source has a position (the int64 that position() and
** seek() exchange) that the runtime keeps for it; for this counter it is the
** offset itself. The sample keeps the offset in operator state as well, as
** Flink's CounterSource does, to show how a source keeps state of its own
** (a list of files read, a map of partitions to offsets, ...): it registers
** the state on its store in open(), updates it as it emits, and reads it
** back after a restore, where seek() checks that both agree.
**
** The job:   counter (P instances) --rebalance--> sink (DIR/numbers.tsv)
** At the end the program checks that every instance's numbers 0 .. N-1 are
** in the output exactly once.
*/
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkdir, nanosleep */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <statelite.h>

typedef struct counter_config {
  int64_t count;     /* numbers per instance */
  int64_t pace_ms;   /* sleep per batch of 100 numbers (0: full speed) */
} counter_config;

typedef struct counter {
  sl_state *offset;  /* the operator state, a list of one row */
  int64_t next;      /* the offset: the next number to emit */
} counter;

static const sl_column offset_cols[] = {{"next", SL_INTEGER, {0}}};
static const sl_column number_fields[] = {{"instance", SL_INTEGER, {0}}, {"n", SL_INTEGER, {0}}};

static int counter_open(sl_ctx *ctx, void *ud) {
  counter *c = sl_ctx_instance(ctx);
  sl_state_desc d;
  const sl_value *rows;
  size_t n = 0;
  int rc;
  (void)ud;
  memset(&d, 0, sizeof d);
  d.name = "offset";
  d.kind = SL_OPERATOR_LIST;    /* per instance, not per key */
  d.n_value = 1;
  d.value = offset_cols;
  d.redistribution = SL_SPLIT_EVEN;
  rc = sl_state_register(sl_ctx_store(ctx), &d, &c->offset);
  if (rc) return rc;
  /* after a restore the state holds the offset of that checkpoint */
  rc = sl_list_get(c->offset, &rows, &n);
  if (rc == SL_OK && n > 0) c->next = rows[0].v.i;
  else if (rc != SL_NOTFOUND && rc != SL_OK) return rc;
  return SL_OK;
}

static int counter_read(sl_ctx *ctx, void *ud) {
  const counter_config *cc = ud;
  counter *c = sl_ctx_instance(ctx);
  int index = 0, rc = SL_OK;
  sl_value row;
  sl_ctx_subtask(ctx, &index, NULL);
  if (c->next >= cc->count) return SL_DONE;
  if (cc->pace_ms > 0) {
    struct timespec ts = {(time_t)(cc->pace_ms / 1000), (long)(cc->pace_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
  for (int b = 0; b < 100 && c->next < cc->count && rc == SL_OK; b++) {
    sl_value f[2];
    f[0] = sl_int(index);
    f[1] = sl_int(c->next);
    rc = sl_ctx_emit(ctx, f, 2, c->next);
    if (rc == SL_OK) c->next++;
  }
  /* the state follows the offset; it goes to the file with the next commit */
  row = sl_int(c->next);
  if (rc == SL_OK) rc = sl_list_update(c->offset, &row, 1);
  return rc;
}

static int counter_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = ((counter *)sl_ctx_instance(ctx))->next;
  return SL_OK;
}

/* Called after open() when the job restores: pos is the position of the
** checkpoint, committed together with the offset state read in open(). */
static int counter_seek(sl_ctx *ctx, int64_t pos, void *ud) {
  counter *c = sl_ctx_instance(ctx);
  (void)ud;
  if (pos != c->next) {
    sl_ctx_error(ctx, "the position %lld and the offset in state %lld disagree", (long long)pos,
                 (long long)c->next);
    return SL_CORRUPT;
  }
  return SL_OK;
}

/* ---- the job -------------------------------------------------------------------- */

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: counter_source [options]\n"
          "\n"
          "P source instances count 0..N-1 each, with the offset in operator state;\n"
          "the numbers reach DIR/numbers.tsv exactly once, also across kills.\n"
          "\n"
          "  --dir DIR          state, checkpoints and numbers.tsv; a run with the same\n"
          "                     DIR resumes from its newest checkpoint (default: a new\n"
          "                     directory under /tmp)\n"
          "  --count N          numbers per instance (default 10000)\n"
          "  --parallelism P    source instances (default 2)\n"
          "  --interval-ms N    milliseconds between checkpoints (default 100)\n"
          "  --pace-ms MS       sleep per 100 numbers, to watch it or kill it (default 0)\n"
          "  --help             this text\n");
  return rc;
}

static void job_log(void *ud, const char *line) {
  (void)ud;
  if (strncmp(line, "restored", 8) == 0) fprintf(stderr, "counter_source: %s\n", line);
}

static long long number(const char *s, long long min) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  return (errno || end == s || *end || v < min) ? -1 : v;
}

/* Reads the output back: every instance's numbers must be there once. */
static int check_output(const char *path, int par, int64_t count) {
  unsigned char *seen = calloc((size_t)(par * count), 1);
  int64_t lines = 0, dups = 0, missing = 0;
  long long inst, n;
  FILE *f = fopen(path, "r");
  if (!seen || !f) {
    if (!seen) fprintf(stderr, "counter_source: out of memory\n");
    else fprintf(stderr, "counter_source: cannot read %s\n", path);
    free(seen);
    if (f) fclose(f);
    return 1;
  }
  while (fscanf(f, "%lld %lld", &inst, &n) == 2) {
    lines++;
    if (inst < 0 || inst >= par || n < 0 || n >= count) continue;
    if (seen[inst * count + n]) dups++;
    seen[inst * count + n] = 1;
  }
  fclose(f);
  for (int64_t i = 0; i < par * count; i++) missing += !seen[i];
  free(seen);
  printf("%lld numbers from %d instances in %s: %lld missing, %lld repeated\n", (long long)lines, par,
         path, (long long)missing, (long long)dups);
  return missing || dups ? 1 : 0;
}

int main(int argc, char **argv) {
  static counter_config cc;     /* must outlive the job */
  char dirbuf[] = "/tmp/counter_source-XXXXXX";
  const char *dir = NULL;
  char state[4096], chk[4096], out[4096];
  long long count = 10000, par = 2, interval = 100, pace = 0;
  int s_src, s_sink, rc;
  sl_job_config cfg;
  sl_source src;
  sl_operator sink;
  sl_job *job = NULL;

  for (int i = 1; i < argc;) {
    const char *a = argv[i++], *v = i < argc ? argv[i] : "";
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
    if (strcmp(a, "--dir") == 0) dir = v;
    else if (strcmp(a, "--count") == 0) count = number(v, 1);
    else if (strcmp(a, "--parallelism") == 0) par = number(v, 1);
    else if (strcmp(a, "--interval-ms") == 0) interval = number(v, 1);
    else if (strcmp(a, "--pace-ms") == 0) pace = number(v, 0);
    else {
      fprintf(stderr, "counter_source: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    i++; /* the option's value */
  }
  if (count < 1 || par < 1 || par > 64 || count > 100000000 / par || interval < 1 || pace < 0 ||
      (dir && !dir[0])) {
    fprintf(stderr, "counter_source: an option has a bad value\n");
    return usage(stderr, 2);
  }
  cc.count = count;
  cc.pace_ms = pace;
  if (!dir) dir = mkdtemp(dirbuf);
  if (!dir || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
    fprintf(stderr, "counter_source: cannot create the directory %s\n", dir ? dir : dirbuf);
    return 1;
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);
  snprintf(out, sizeof out, "%s/numbers.tsv", dir);

  memset(&src, 0, sizeof src);
  src.open = counter_open;
  src.read = counter_read;
  src.position = counter_position;
  src.seek = counter_seek;
  src.ud = &cc;
  src.instance_size = sizeof(counter);
  src.out = number_fields;
  src.n_out = 2;
  src.watermark_delay_ms = -1;

  sl_file_sink(&sink, out);

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = interval;
  cfg.log = job_log;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "counter", &src, (int)par, &s_src);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_src, s_sink, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc != SL_OK) {
    fprintf(stderr, "counter_source: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    return 1;
  }
  sl_job_free(job);
  return check_output(out, (int)par, count);
}
