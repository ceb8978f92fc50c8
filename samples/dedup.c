/*
** dedup.c — drops events whose id was already seen in the last N minutes
** (of event time), with a keyed value state and an event-time timer.
**
**   dedup [--dir DIR] [--events N] [--minutes M] [--interval-ms N] [--print]
**
** The events are generated: N orders, one a second, with the ids order-0,
** order-1, ... Senders retry: every tenth order (i % 10 == 3) is sent a
** second time 30 seconds later, which is a duplicate to drop, and every
** fiftieth (i % 50 == 7) is sent again 20 minutes later, which with the
** default window of 10 minutes is no longer a duplicate and is kept.
**
** The job:
**
**   orders (source) --key_by(id)--> dedup --> sink (DIR/unique.tsv)
**
** `dedup` is keyed by the event id, so its value state "seen" holds, for each
** id, the event time of the last event kept with that id. An event is a
** duplicate when its id was kept less than M minutes before it. To keep the
** state small, each kept event also registers an event-time timer M minutes
** later; when the watermark passes it, the id is forgotten (its row is
** deleted from the state file).
**
** Why not a TTL? A state descriptor can give a state a time to live
** (sl_state_desc.ttl_ms): rows then expire by themselves. But TTL counts
** processing time (the wall clock), so it fits "seen in the last N minutes
** of wall-clock time". Here the window is in event time, so the answer does
** not depend on how fast or how often the job runs, and a replay of old
** events, or a run resumed after a crash, gives the same result.
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

/* ---- the events ------------------------------------------------------------------ */

typedef struct event {
  int64_t order;     /* the id is "order-<order>" */
  int64_t ts;        /* event time in ms */
  int64_t amount;    /* cents */
} event;

typedef struct events {
  event *e;
  int64_t n;
} events;

static int cmp_event(const void *a, const void *b) {
  const event *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* The stream in event-time order: the orders and their retries. */
static int make_events(events *ev, int64_t n) {
  int64_t k = 0;
  ev->e = malloc(sizeof *ev->e * (size_t)(n + n / 10 + n / 50 + 2));
  if (!ev->e) return -1;
  for (int64_t i = 0; i < n; i++) {
    event o = {i, i * 1000, 100 + (i * 7919) % 90000};
    ev->e[k++] = o;
    if (i % 10 == 3) { /* a retry 30 s later: a duplicate */
      o.ts += 30 * 1000;
      ev->e[k++] = o;
    }
    if (i % 50 == 7) { /* sent again 20 minutes later */
      o.ts += 20 * MINUTE;
      ev->e[k++] = o;
    }
  }
  ev->n = k;
  qsort(ev->e, (size_t)k, sizeof *ev->e, cmp_event);
  return 0;
}

/* A replayable source over the array, in batches of 64 events. Before each
** event it emits the watermark "nothing older than this event will come",
** which holds because the stream is in event-time order. The watermark
** depends only on the position, so a resumed run sends the same ones. */
#define BATCH 64

static const sl_column order_fields[] = {
    {"id", SL_TEXT, {0}}, {"ts", SL_INTEGER, {0}}, {"amount", SL_INTEGER, {0}}};

static int orders_read(sl_ctx *ctx, void *ud) {
  const events *ev = ud;
  int64_t *next = sl_ctx_instance(ctx), end;
  int rc;
  if (*next >= ev->n) return SL_DONE;
  end = (*next / BATCH + 1) * BATCH;
  if (end > ev->n) end = ev->n;
  for (rc = SL_OK; rc == SL_OK && *next < end; (*next)++) {
    const event *e = &ev->e[*next];
    char id[32];
    sl_value f[3];
    rc = sl_ctx_emit_watermark(ctx, e->ts - 1); /* sent only when it advances */
    if (rc) break;
    snprintf(id, sizeof id, "order-%lld", (long long)e->order);
    f[0] = sl_text(id);
    f[1] = sl_int(e->ts);
    f[2] = sl_int(e->amount);
    rc = sl_ctx_emit(ctx, f, 3, e->ts);
  }
  return rc;
}

static int orders_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = *(int64_t *)sl_ctx_instance(ctx);
  return SL_OK;
}

static int orders_seek(sl_ctx *ctx, int64_t pos, void *ud) {
  (void)ud;
  *(int64_t *)sl_ctx_instance(ctx) = pos;
  return SL_OK;
}

/* ---- the dedup operator --------------------------------------------------------- */

static const sl_column id_key[] = {{"id", SL_TEXT, {0}}};
static const sl_column seen_cols[] = {{"kept_ts", SL_INTEGER, {0}}};
static const sl_column unique_fields[] = {
    {"id", SL_TEXT, {0}}, {"time", SL_TEXT, {0}}, {"amount", SL_INTEGER, {0}}};

typedef struct dedup_config {
  int64_t window_ms;
} dedup_config;

static int dedup_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  const dedup_config *dc = ud;
  sl_state *seen = sl_ctx_state(ctx, "seen");
  const sl_value *v;
  int64_t ts = rec->f[1].v.i;
  sl_value kept, out[3];
  char when[32];
  int rc = sl_value_get(seen, &v);
  if (rc == SL_OK && ts < v[0].v.i + dc->window_ms) return SL_OK; /* a duplicate: drop it */
  if (rc != SL_OK && rc != SL_NOTFOUND) return rc;
  kept = sl_int(ts);
  rc = sl_value_update(seen, &kept);
  /* forget the id once the window after this event is over */
  if (rc == SL_OK) rc = sl_ctx_timer(ctx, SL_EVENT_TIME, ts + dc->window_ms);
  if (rc) return rc;
  snprintf(when, sizeof when, "%02lld:%02lld:%02lld", (long long)(ts / 3600000),
           (long long)(ts / 60000 % 60), (long long)(ts / 1000 % 60));
  out[0] = rec->f[0];
  out[1] = sl_text(when);
  out[2] = rec->f[2];
  return sl_ctx_emit(ctx, out, 3, ts);
}

static int dedup_on_timer(sl_ctx *ctx, int domain, int64_t time, void *ud) {
  const dedup_config *dc = ud;
  sl_state *seen = sl_ctx_state(ctx, "seen");
  const sl_value *v;
  int rc = sl_value_get(seen, &v);
  (void)domain;
  if (rc == SL_NOTFOUND) return SL_OK;
  if (rc) return rc;
  /* the id may have been kept again since: then a later timer is due */
  if (v[0].v.i + dc->window_ms <= time) return sl_state_clear(seen);
  return SL_OK;
}

/* ---- the job -------------------------------------------------------------------- */

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: dedup [options]\n"
          "\n"
          "Drops events whose id was seen in the last M minutes of event time.\n"
          "\n"
          "  --dir DIR          state, checkpoints and unique.tsv; a run with the same\n"
          "                     DIR resumes from its newest checkpoint (default: a new\n"
          "                     directory under /tmp)\n"
          "  --events N         orders to generate (default 5000)\n"
          "  --minutes M        the window (default 10)\n"
          "  --interval-ms N    milliseconds between checkpoints (default 200)\n"
          "  --print            print the events kept\n"
          "  --help             this text\n");
  return rc;
}

static void job_log(void *ud, const char *line) {
  (void)ud;
  if (strncmp(line, "restored", 8) == 0) fprintf(stderr, "dedup: %s\n", line);
}

static long long number(const char *s) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  return (errno || end == s || *end || v < 1) ? -1 : v;
}

int main(int argc, char **argv) {
  static events ev;              /* must outlive the job */
  static dedup_config dc;
  char dirbuf[] = "/tmp/dedup-XXXXXX";
  const char *dir = NULL, *key = "id";
  char state[4096], chk[4096], out[4096], line[256];
  long long n = 5000, minutes = 10, interval = 200;
  int print = 0, s_src, s_dedup, s_sink, rc;
  int64_t kept = 0;
  sl_job_config cfg;
  sl_source src;
  sl_operator dedup, sink;
  sl_state_desc seen;
  sl_job *job = NULL;
  FILE *f;

  for (int i = 1; i < argc;) {
    const char *a = argv[i++], *v = i < argc ? argv[i] : "";
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
    if (strcmp(a, "--print") == 0) { print = 1; continue; }
    if (strcmp(a, "--dir") == 0) dir = v;
    else if (strcmp(a, "--events") == 0) n = number(v);
    else if (strcmp(a, "--minutes") == 0) minutes = number(v);
    else if (strcmp(a, "--interval-ms") == 0) interval = number(v);
    else {
      fprintf(stderr, "dedup: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    i++; /* the option's value */
  }
  if (n < 1 || n > 10000000 || minutes < 1 || minutes > 1000000 || interval < 1 || (dir && !dir[0])) {
    fprintf(stderr, "dedup: an option has a bad value\n");
    return usage(stderr, 2);
  }
  if (make_events(&ev, n) != 0) {
    fprintf(stderr, "dedup: out of memory\n");
    return 1;
  }
  dc.window_ms = minutes * MINUTE;
  if (!dir) dir = mkdtemp(dirbuf);
  if (!dir || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
    fprintf(stderr, "dedup: cannot create the directory %s\n", dir ? dir : dirbuf);
    return 1;
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);
  snprintf(out, sizeof out, "%s/unique.tsv", dir);

  memset(&src, 0, sizeof src);
  src.read = orders_read;
  src.position = orders_position;
  src.seek = orders_seek;
  src.ud = &ev;
  src.instance_size = sizeof(int64_t);
  src.out = order_fields;
  src.n_out = 3;
  src.watermark_delay_ms = -1; /* it emits its own */

  memset(&seen, 0, sizeof seen);
  seen.name = "seen";
  seen.kind = SL_VALUE_STATE;
  seen.n_key = 1;
  seen.key = id_key;
  seen.n_value = 1;
  seen.value = seen_cols;
  memset(&dedup, 0, sizeof dedup);
  dedup.process = dedup_process;
  dedup.on_timer = dedup_on_timer;
  dedup.ud = &dc;
  dedup.states = &seen;
  dedup.n_states = 1;
  dedup.out = unique_fields;
  dedup.n_out = 3;

  sl_file_sink(&sink, out);

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = interval;
  cfg.log = job_log;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "orders", &src, 1, &s_src);
  if (rc == SL_OK) rc = sl_job_operator(job, "dedup", &dedup, 2, &s_dedup);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_src, s_dedup, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s_dedup, s_sink, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc != SL_OK) {
    fprintf(stderr, "dedup: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    free(ev.e);
    return 1;
  }
  sl_job_free(job);

  f = fopen(out, "r");
  while (f && fgets(line, sizeof line, f)) {
    kept++;
    if (print) fputs(line, stdout);
  }
  if (f) fclose(f);
  printf("%lld events read, %lld kept, %lld dropped as duplicates within %lld minutes\n",
         (long long)ev.n, (long long)kept, (long long)(ev.n - kept), minutes);
  printf("the events kept are in %s\n", out);
  free(ev.e);
  return 0;
}
