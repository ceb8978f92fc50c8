/*
** wordcount.c — counts words with keyed state, exactly once, across crashes.
**
**   wordcount --input FILE --output FILE --dir DIR [--interval-ms N]
**             [--parallelism P]
**
** Reads whitespace-separated words from the input (any bytes but space, tab,
** newline, carriage return, vertical tab and form feed make up a word, so
** UTF-8 passes through unchanged; a word may be of any length), counts them
** per word, and for every word it reads appends one line
**
**   word<TAB>count
**
** to the output, where count is that word's count so far. So a word that
** occurs n times has the lines word<TAB>1 ... word<TAB>n in the output.
**
** Kill it at any moment (even with kill -9) and start it again with the same
** arguments: it resumes from the newest checkpoint under DIR, and when it
** exits with status 0 the output is the same as that of a run that was never
** interrupted: every line exactly once. (With --parallelism above 1 the
** lines of different words may interleave in another order; the lines of one
** word are always in order.)
**
** The job:
**
**   lines (file source) -> split -> key_by(word) -> count (P instances) -> sink
**
**   - `lines` reads the input line by line; its position is the byte offset,
**     stored in every checkpoint, so a restart reads on from there.
**   - `split` cuts lines into words (no state).
**   - key_by(word) sends every occurrence of a word to the same instance of
**     `count`: the word's key group (a hash of the word) decides which.
**   - `count` keeps each word's count in a keyed value state, one table in
**     the SQLite file of each instance: DIR/state/count/<instance>.db.
**   - `sink` is the exactly-once file sink: the lines of a checkpoint are
**     held back in its state and appended to the output file only when that
**     checkpoint is complete. After a crash it cuts the file back to what
**     the restored checkpoint had published and writes the rest again.
**
** Every --interval-ms (default 1000) a checkpoint copies the state files into
** DIR/checkpoints/chk-<n>/, zstd-compressed.
*/
#define _POSIX_C_SOURCE 200809L /* mkdir */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <statelite.h>

static const sl_column word_fields[] = {{"word", SL_TEXT, {0}}};
static const sl_column count_fields[] = {{"word", SL_TEXT, {0}}, {"count", SL_INTEGER, {0}}};

/* The state of `count`: per word (the key) one integer. */
static const sl_column word_key[] = {{"word", SL_TEXT, {0}}};
static const sl_column count_value[] = {{"count", SL_INTEGER, {0}}};

static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* split: one record (line) in, one record per word out. A TEXT value is
** pointer + length, so the words are not copied here (sl_ctx_emit copies). */
static int split_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  const unsigned char *p = rec->f[0].v.p;
  size_t n = rec->f[0].n, i = 0;
  (void)ud;
  while (i < n) {
    size_t start;
    sl_value w;
    int rc;
    while (i < n && is_space(p[i])) i++;
    start = i;
    while (i < n && !is_space(p[i])) i++;
    if (i == start) break;
    w = sl_textn((const char *)p + start, i - start);
    rc = sl_ctx_emit(ctx, &w, 1, rec->ts);
    if (rc) return rc;
  }
  return SL_OK;
}

/* count: the record's word is the current key, so "counts" reads and writes
** the count of that word. */
static int count_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *counts = sl_ctx_state(ctx, "counts");
  const sl_value *cur;
  int64_t n = 0;
  sl_value out[2];
  int rc;
  (void)ud;
  rc = sl_value_get(counts, &cur);
  if (rc == SL_OK) n = cur[0].v.i;
  else if (rc != SL_NOTFOUND) return rc;
  out[0] = rec->f[0];
  out[1] = sl_int(n + 1);
  rc = sl_value_update(counts, &out[1]);
  if (rc == SL_OK) rc = sl_ctx_emit(ctx, out, 2, rec->ts);
  return rc;
}

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: wordcount --input FILE --output FILE --dir DIR [--interval-ms N] [--parallelism P]\n"
          "\n"
          "Counts whitespace-separated words and appends \"word<TAB>count\" to the output\n"
          "for every word read, exactly once even when killed and started again with\n"
          "the same arguments (it resumes from the newest checkpoint under DIR).\n"
          "\n"
          "  --input FILE        the text to read\n"
          "  --output FILE       the lines word<TAB>count go here\n"
          "  --dir DIR           state files and checkpoints\n"
          "  --interval-ms N     milliseconds between checkpoints (default 1000)\n"
          "  --parallelism P     instances of the counting stage (default 1)\n"
          "  --help              this text\n");
  return rc;
}

/* The job's progress lines ("checkpoint 3 complete", ...): only the one
** that says a run resumed is worth a line on stderr. */
static void job_log(void *ud, const char *line) {
  (void)ud;
  if (strncmp(line, "restored", 8) == 0) fprintf(stderr, "wordcount: %s\n", line);
}

/* A positive integer argument, or -1. */
static long long number(const char *s) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  return (errno || end == s || *end || v < 1) ? -1 : v;
}

int main(int argc, char **argv) {
  const char *input = NULL, *output = NULL, *dir = NULL, *key = "word";
  long long interval = 1000, par = 1;
  int s_lines, s_split, s_count, s_sink, rc;
  char state[4096], chk[4096];
  sl_job_config cfg;
  sl_source lines;
  sl_operator split, count, sink;
  sl_state_desc counts;
  sl_job *job = NULL;

  for (int i = 1; i < argc;) {
    const char *a = argv[i++], *v = i < argc ? argv[i] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
    if (!v) {
      fprintf(stderr, "wordcount: %s needs a value\n", a);
      return usage(stderr, 2);
    }
    if (strcmp(a, "--input") == 0) input = v;
    else if (strcmp(a, "--output") == 0) output = v;
    else if (strcmp(a, "--dir") == 0) dir = v;
    else if (strcmp(a, "--interval-ms") == 0) interval = number(v);
    else if (strcmp(a, "--parallelism") == 0) par = number(v);
    else {
      fprintf(stderr, "wordcount: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    i++; /* the option's value */
  }
  if (!input || !output || !dir) {
    fprintf(stderr, "wordcount: --input, --output and --dir are required\n");
    return usage(stderr, 2);
  }
  if (interval < 1 || par < 1 || par > SL_DEFAULT_MAX_PARALLELISM) {
    fprintf(stderr, "wordcount: --interval-ms needs a number >= 1 and --parallelism 1..%d\n",
            SL_DEFAULT_MAX_PARALLELISM);
    return 2;
  }
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "wordcount: cannot create %s: %s\n", dir, strerror(errno));
    return 1;
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);

  sl_file_source(&lines, input); /* records (line TEXT) */

  memset(&split, 0, sizeof split);
  split.process = split_process;
  split.out = word_fields;
  split.n_out = 1;

  memset(&counts, 0, sizeof counts);
  counts.name = "counts";
  counts.kind = SL_VALUE_STATE;
  counts.n_key = 1;
  counts.key = word_key;
  counts.n_value = 1;
  counts.value = count_value;
  memset(&count, 0, sizeof count);
  count.process = count_process;
  count.states = &counts;
  count.n_states = 1;
  count.out = count_fields;
  count.n_out = 2;

  sl_file_sink(&sink, output); /* exactly once; parallelism 1 */

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = interval;
  /* Records in flight between two stages, per channel. A barrier queues
  ** behind them, so fewer make checkpoints complete sooner after they
  ** start, which matters more here than the last bit of throughput. */
  cfg.channel_capacity = 64;
  cfg.log = job_log;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "lines", &lines, 1, &s_lines);
  if (rc == SL_OK) rc = sl_job_operator(job, "split", &split, 1, &s_split);
  if (rc == SL_OK) rc = sl_job_operator(job, "count", &count, (int)par, &s_count);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_lines, s_split, SL_FORWARD, NULL, 0);
  if (rc == SL_OK) rc = sl_job_connect(job, s_split, s_count, SL_KEY_BY, &key, 1);
  /* P instances of count all feed the one sink instance */
  if (rc == SL_OK) rc = sl_job_connect(job, s_count, s_sink, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc != SL_OK) {
    fprintf(stderr, "wordcount: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    return 1;
  }
  sl_job_free(job);
  return 0;
}
