/*
** fraud_pattern.c — a pattern over the events of each account: three or more
** failed logins followed by a successful one, all within five minutes,
** raises an alert. The failures so far are kept in a list state per account.
**
**   fraud_pattern [--input FILE] [--dir DIR] [--minutes M] [--failures K]
**
** The input is a file of lines "HH:MM:SS<TAB>account<TAB>ok|fail" in time
** order; lines starting with '#' are comments. The default input is
** samples/data/logins.tsv, whose comment says which alerts to expect.
**
** The job:
**
**   lines (file source) -> parse -> key_by(account) -> detect -> sink
**
**   - `parse` turns each line into a typed record (account, ok) whose event
**     time is the time in the line.
**   - `detect` is keyed by account. Its list state "failures" holds the
**     times of the account's recent failed logins: a failure appends to it
**     (dropping the ones older than M minutes), a success checks whether at
**     least K of them are within M minutes before it, alerts if so, and
**     clears the list. This is the state machine of a pattern, kept in
**     state so that a crash in the middle of an attack does not forget the
**     failures seen so far.
**   - `sink` appends each alert to DIR/alerts.tsv, exactly once.
**
** State, checkpoints and output live in DIR (default: a new directory under
** /tmp); a run with the same DIR resumes from the newest checkpoint.
*/
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkdir */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <statelite.h>

#define MINUTE 60000
#define MAX_FAILURES 256 /* kept per account at most */

/* ---- parse: line -> (account, ok) -------------------------------------------------- */

static const sl_column login_fields[] = {{"account", SL_TEXT, {0}}, {"ok", SL_INTEGER, {0}}};

static int parse_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  char line[512], account[128], result[16];
  int h, m, s;
  sl_value f[2];
  size_t n = rec->f[0].n < sizeof line - 1 ? rec->f[0].n : sizeof line - 1;
  (void)ud;
  memcpy(line, rec->f[0].v.p, n);
  line[n] = 0;
  if (line[0] == '#' || line[strspn(line, " \t\r")] == 0) return SL_OK; /* comment, blank */
  if (sscanf(line, "%d:%d:%d %127s %15s", &h, &m, &s, account, result) != 5 ||
      (strcmp(result, "ok") != 0 && strcmp(result, "fail") != 0)) {
    fprintf(stderr, "fraud_pattern: skipping a line that is not \"HH:MM:SS account ok|fail\": %s\n", line);
    return SL_OK;
  }
  f[0] = sl_text(account);
  f[1] = sl_int(strcmp(result, "ok") == 0);
  return sl_ctx_emit(ctx, f, 2, ((int64_t)h * 3600 + m * 60 + s) * 1000);
}

/* ---- detect: the pattern per account ------------------------------------------------ */

static const sl_column account_key[] = {{"account", SL_TEXT, {0}}};
static const sl_column failure_cols[] = {{"ts", SL_INTEGER, {0}}};
static const sl_column alert_fields[] = {{"account", SL_TEXT, {0}},
                                         {"success_at", SL_TEXT, {0}},
                                         {"failures", SL_INTEGER, {0}},
                                         {"first_failure_at", SL_TEXT, {0}}};

typedef struct pattern {
  int64_t window_ms;
  int failures;
} pattern;

static void clock_text(char *buf, size_t n, int64_t ts) {
  snprintf(buf, n, "%02lld:%02lld:%02lld", (long long)(ts / 3600000), (long long)(ts / 60000 % 60),
           (long long)(ts / 1000 % 60));
}

static int detect_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  const pattern *p = ud;
  sl_state *failures = sl_ctx_state(ctx, "failures");
  const sl_value *rows;
  sl_value keep[MAX_FAILURES + 1];
  size_t n = 0, k = 0;
  int64_t ts = rec->ts, first = 0;
  int rc = sl_list_get(failures, &rows, &n);
  if (rc != SL_OK && rc != SL_NOTFOUND) return rc;
  /* the failures within the window before this event, oldest first */
  for (size_t i = 0; i < n; i++)
    if (rows[i].v.i > ts - p->window_ms && k < MAX_FAILURES) {
      if (k == 0) first = rows[i].v.i;
      keep[k++] = sl_int(rows[i].v.i);
    }
  if (rec->f[1].v.i == 0) { /* a failure: remember it */
    keep[k++] = sl_int(ts);
    return sl_list_update(failures, keep, k);
  }
  if (k >= (size_t)p->failures) { /* the pattern is complete: alert */
    char at[32], since[32];
    sl_value alert[4];
    clock_text(at, sizeof at, ts);
    clock_text(since, sizeof since, first);
    alert[0] = rec->f[0];
    alert[1] = sl_text(at);
    alert[2] = sl_int((int64_t)k);
    alert[3] = sl_text(since);
    rc = sl_ctx_emit(ctx, alert, 4, ts);
    if (rc) return rc;
  }
  return n ? sl_state_clear(failures) : SL_OK; /* a success starts over */
}

/* ---- the job -------------------------------------------------------------------- */

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: fraud_pattern [options]\n"
          "\n"
          "Alerts when an account has K or more failed logins and then a successful\n"
          "one, all within M minutes.\n"
          "\n"
          "  --input FILE       lines HH:MM:SS<TAB>account<TAB>ok|fail (default\n"
          "                     samples/data/logins.tsv)\n"
          "  --dir DIR          state, checkpoints and alerts.tsv; a run with the same\n"
          "                     DIR resumes from its newest checkpoint (default: a new\n"
          "                     directory under /tmp)\n"
          "  --minutes M        the window (default 5)\n"
          "  --failures K       failed logins before the success (default 3)\n"
          "  --help             this text\n");
  return rc;
}

static void job_log(void *ud, const char *line) {
  (void)ud;
  if (strncmp(line, "restored", 8) == 0) fprintf(stderr, "fraud_pattern: %s\n", line);
}

static long long number(const char *s) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  return (errno || end == s || *end || v < 1) ? -1 : v;
}

static int cmp_lines(const void *a, const void *b) {
  /* by the time of the success (the second field), then by account */
  const char *x = *(char *const *)a, *y = *(char *const *)b;
  int c = strcmp(strchr(x, '\t'), strchr(y, '\t'));
  return c ? c : strcmp(x, y);
}

int main(int argc, char **argv) {
  static pattern pat;           /* must outlive the job */
  char dirbuf[] = "/tmp/fraud_pattern-XXXXXX";
  const char *input = "samples/data/logins.tsv", *dir = NULL, *key = "account";
  char state[4096], chk[4096], out[4096], line[512], *lines[1024];
  long long minutes = 5, failures = 3;
  int s_lines, s_parse, s_detect, s_sink, rc, n = 0;
  sl_job_config cfg;
  sl_source src;
  sl_operator parse, detect, sink;
  sl_state_desc fails;
  sl_job *job = NULL;
  FILE *f;

  for (int i = 1; i < argc;) {
    const char *a = argv[i++], *v = i < argc ? argv[i] : "";
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
    if (strcmp(a, "--input") == 0) input = v;
    else if (strcmp(a, "--dir") == 0) dir = v;
    else if (strcmp(a, "--minutes") == 0) minutes = number(v);
    else if (strcmp(a, "--failures") == 0) failures = number(v);
    else {
      fprintf(stderr, "fraud_pattern: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    i++; /* the option's value */
  }
  if (minutes < 1 || minutes > 100000 || failures < 1 || failures > MAX_FAILURES || (dir && !dir[0])) {
    fprintf(stderr, "fraud_pattern: an option has a bad value\n");
    return usage(stderr, 2);
  }
  f = fopen(input, "r");
  if (!f) {
    fprintf(stderr, "fraud_pattern: cannot read %s: %s (run it from the top of the source tree, or "
            "give --input)\n", input, strerror(errno));
    return 1;
  }
  fclose(f);
  pat.window_ms = minutes * MINUTE;
  pat.failures = (int)failures;
  if (!dir) dir = mkdtemp(dirbuf);
  if (!dir || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
    fprintf(stderr, "fraud_pattern: cannot create the directory %s\n", dir ? dir : dirbuf);
    return 1;
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);
  snprintf(out, sizeof out, "%s/alerts.tsv", dir);

  sl_file_source(&src, input);

  memset(&parse, 0, sizeof parse);
  parse.process = parse_process;
  parse.out = login_fields;
  parse.n_out = 2;

  memset(&fails, 0, sizeof fails);
  fails.name = "failures";
  fails.kind = SL_LIST_STATE;
  fails.n_key = 1;
  fails.key = account_key;
  fails.n_value = 1;
  fails.value = failure_cols;
  memset(&detect, 0, sizeof detect);
  detect.process = detect_process;
  detect.ud = &pat;
  detect.states = &fails;
  detect.n_states = 1;
  detect.out = alert_fields;
  detect.n_out = 4;

  sl_file_sink(&sink, out);

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 200;
  cfg.log = job_log;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "lines", &src, 1, &s_lines);
  if (rc == SL_OK) rc = sl_job_operator(job, "parse", &parse, 1, &s_parse);
  if (rc == SL_OK) rc = sl_job_operator(job, "detect", &detect, 2, &s_detect);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_lines, s_parse, SL_FORWARD, NULL, 0);
  if (rc == SL_OK) rc = sl_job_connect(job, s_parse, s_detect, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s_detect, s_sink, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc != SL_OK) {
    fprintf(stderr, "fraud_pattern: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    return 1;
  }
  sl_job_free(job);

  /* two instances of detect write in either order: print by time */
  f = fopen(out, "r");
  while (f && n < 1024 && fgets(line, sizeof line, f))
    if (strchr(line, '\t') && (lines[n] = malloc(strlen(line) + 1)) != NULL) strcpy(lines[n++], line);
  if (f) fclose(f);
  qsort(lines, (size_t)n, sizeof *lines, cmp_lines);
  printf("%-10s %-10s %8s  %s\n", "account", "success", "failures", "first failure");
  for (int i = 0; i < n; i++) {
    char account[128], at[16], since[16];
    long long k;
    if (sscanf(lines[i], "%127s %15s %lld %15s", account, at, &k, since) == 4)
      printf("%-10s %-10s %8lld  %s\n", account, at, k, since);
    free(lines[i]);
  }
  printf("%d alert%s (in %s)\n", n, n == 1 ? "" : "s", out);
  return 0;
}
