/*
** count_window_average.c — the classic first example of keyed state: for
** every key, keep a count and a running sum of the values seen; when the
** count reaches 2, emit (key, average) and clear the state of that key.
**
**   count_window_average [--dir DIR] [KEY,VALUE ...]
**
** With no pairs it reads (1,3) (1,5) (1,7) (1,4) (1,2) and prints
**
**   (1,4)
**   (1,5)
**
** The job has three stages, each a separate thread:
**
**   pairs (source) --key_by(key)--> average (keyed operator) --> sink (file)
**
** "Keyed" means the runtime sends all records with the same key to the same
** instance of `average` and, before calling it, makes that key the current
** key of the instance's store. The operator's state ("sum", a value state of
** two integers) is then automatically the state *of that key*: each key has
** its own count and sum, kept in a table of an SQLite file.
**
** State, checkpoints and output live in DIR (default: a new directory under
** /tmp, printed at the end, so that you can look inside with sqlite3). Run it
** again with the same --dir and it restores from the newest checkpoint.
**
** Build: cc -std=c11 count_window_average.c -lstatelite -lsqlite3 -lzstd -lpthread -lm
*/
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkdir */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <statelite.h>

/* ---- the input: a list of (key, value) pairs -------------------------------- */

#define MAX_PAIRS 1024

typedef struct pairs {
  int n;
  int64_t key[MAX_PAIRS], value[MAX_PAIRS];
} pairs;

/* The fields of the records the source emits. */
static const sl_column pair_fields[] = {{"key", SL_INTEGER, {0}}, {"value", SL_INTEGER, {0}}};

/* A source must be replayable: it says where it is (position) and can go back
** there (seek). The runtime stores the position in every checkpoint and, after
** a crash, seeks the source to the position of the checkpoint it restores, so
** that no record is lost or counted twice. Here the position is simply the
** index of the next pair. Each source instance has its own memory
** (sl_source.instance_size bytes, zeroed): sl_ctx_instance() returns it. */
static int pairs_read(sl_ctx *ctx, void *ud) {
  const pairs *in = ud;
  int64_t *next = sl_ctx_instance(ctx);
  sl_value f[2];
  int rc;
  if (*next >= in->n) return SL_DONE; /* the end of the input */
  f[0] = sl_int(in->key[*next]);
  f[1] = sl_int(in->value[*next]);
  rc = sl_ctx_emit(ctx, f, 2, *next); /* the event time: just the index here */
  if (rc == SL_OK) (*next)++;
  return rc;
}

static int pairs_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = *(int64_t *)sl_ctx_instance(ctx);
  return SL_OK;
}

static int pairs_seek(sl_ctx *ctx, int64_t pos, void *ud) {
  (void)ud;
  *(int64_t *)sl_ctx_instance(ctx) = pos;
  return SL_OK;
}

/* ---- the keyed operator ----------------------------------------------------- */

/* The state: per key one row (count, sum). In the state file it is the table
** `sum` with the columns kg (key group), key, count, total. */
static const sl_column key_cols[] = {{"key", SL_INTEGER, {0}}};
static const sl_column sum_cols[] = {{"count", SL_INTEGER, {0}}, {"total", SL_INTEGER, {0}}};
static const sl_column average_fields[] = {{"key", SL_INTEGER, {0}}, {"average", SL_INTEGER, {0}}};

/* Called for every record, with the record's key already current. */
static int average_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *sum = sl_ctx_state(ctx, "sum");
  const sl_value *cur;
  int64_t count = 0, total = 0;
  sl_value v[2];
  int rc;
  (void)ud;
  rc = sl_value_get(sum, &cur); /* this key's (count, total), if any */
  if (rc == SL_OK) {
    count = cur[0].v.i;
    total = cur[1].v.i;
  } else if (rc != SL_NOTFOUND) {
    return rc;
  }
  count += 1;
  total += rec->f[1].v.i;
  if (count >= 2) {
    v[0] = rec->f[0];
    v[1] = sl_int(total / count); /* integer average, as in the Flink example */
    rc = sl_ctx_emit(ctx, v, 2, rec->ts);
    if (rc == SL_OK) rc = sl_state_clear(sum); /* start again for this key */
    return rc;
  }
  v[0] = sl_int(count);
  v[1] = sl_int(total);
  return sl_value_update(sum, v);
}

/* ---- the job -------------------------------------------------------------------- */

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: count_window_average [--dir DIR] [KEY,VALUE ...]\n"
          "\n"
          "Per key, averages every two values and prints (key, average).\n"
          "Without pairs the input is 1,3 1,5 1,7 1,4 1,2, which prints (1,4) and (1,5).\n"
          "\n"
          "  --dir DIR  state, checkpoints and output.txt; a run with the same DIR\n"
          "             resumes from its newest checkpoint (default: a new\n"
          "             directory under /tmp)\n"
          "  --help     this text\n");
  return rc;
}

static void job_log(void *ud, const char *line) {
  (void)ud;
  if (strncmp(line, "restored", 8) == 0) fprintf(stderr, "count_window_average: %s\n", line);
}

int main(int argc, char **argv) {
  static pairs in; /* static: it must outlive the job, and it is big */
  char dirbuf[] = "/tmp/count_window_average-XXXXXX";
  const char *dir = NULL;
  char state[4096], chk[4096], out[4096], line[256];
  const char *key = "key";
  sl_job_config cfg;
  sl_source src;
  sl_operator avg, sink;
  sl_state_desc sum;
  sl_job *job = NULL;
  int s_src, s_avg, s_sink, rc;
  FILE *f;

  for (int i = 1; i < argc; i++) {
    long long k, v;
    char extra;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return usage(stdout, 0);
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else if (sscanf(argv[i], "%lld,%lld%c", &k, &v, &extra) == 2 && in.n < MAX_PAIRS) {
      in.key[in.n] = k;
      in.value[in.n++] = v;
    } else {
      fprintf(stderr, "count_window_average: unexpected argument '%s'\n", argv[i]);
      return usage(stderr, 2);
    }
  }
  if (in.n == 0) { /* the input of the Flink documentation's example */
    static const int64_t def[5][2] = {{1, 3}, {1, 5}, {1, 7}, {1, 4}, {1, 2}};
    for (int i = 0; i < 5; i++) {
      in.key[i] = def[i][0];
      in.value[i] = def[i][1];
    }
    in.n = 5;
  }
  if (!dir) {
    dir = mkdtemp(dirbuf);
    if (!dir) {
      perror("count_window_average: mkdtemp");
      return 1;
    }
  } else if (mkdir(dir, 0777) != 0) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      fprintf(stderr, "count_window_average: cannot create the directory %s\n", dir);
      return 1;
    }
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);
  snprintf(out, sizeof out, "%s/output.txt", dir);

  /* the source: a replayable list of pairs */
  memset(&src, 0, sizeof src);
  src.read = pairs_read;
  src.position = pairs_position;
  src.seek = pairs_seek;
  src.ud = &in;
  src.instance_size = sizeof(int64_t);
  src.out = pair_fields;
  src.n_out = 2;
  src.watermark_delay_ms = -1; /* no event-time windows here: no watermarks */

  /* the keyed operator and the state it declares */
  memset(&sum, 0, sizeof sum);
  sum.name = "sum";
  sum.kind = SL_VALUE_STATE;
  sum.n_key = 1;
  sum.key = key_cols;
  sum.n_value = 2;
  sum.value = sum_cols;
  memset(&avg, 0, sizeof avg);
  avg.process = average_process;
  avg.states = &sum;
  avg.n_states = 1;
  avg.out = average_fields;
  avg.n_out = 2;

  /* the sink: writes each record as a line "key<TAB>average" to output.txt,
  ** exactly once: a line appears only when the checkpoint after it is done */
  sl_file_sink(&sink, out);

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 100;
  cfg.log = job_log;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "pairs", &src, 1, &s_src);
  if (rc == SL_OK) rc = sl_job_operator(job, "average", &avg, 1, &s_avg);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_src, s_avg, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s_avg, s_sink, SL_FORWARD, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job); /* returns when the input is done */
  if (rc != SL_OK) {
    fprintf(stderr, "count_window_average: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    return 1;
  }
  sl_job_free(job);

  /* the results: the lines the sink published */
  f = fopen(out, "r");
  if (!f) {
    perror(out);
    return 1;
  }
  while (fgets(line, sizeof line, f)) {
    long long k, v;
    if (sscanf(line, "%lld\t%lld", &k, &v) == 2) printf("(%lld,%lld)\n", k, v);
  }
  fclose(f);
  fprintf(stderr, "state, checkpoints and output: %s (try: sqlite3 %s/average/0.db 'SELECT * FROM sum')\n",
          dir, state);
  return 0;
}
