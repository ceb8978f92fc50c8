/*
** sessions.c — groups each user's clicks into sessions that end after a gap
** of inactivity, with an event-time timer and a list state per user.
**
**   sessions [--dir DIR] [--users N] [--sessions S] [--gap-minutes G]
**            [--interval-ms N] [--print]
**
** The clicks are generated: N users, each with S visits to a web shop, a
** visit being a few clicks (home, search, product, ...) 10 seconds to 2
** minutes apart, and the visits 30 to 60 minutes apart. With the default
** gap of 5 minutes every visit becomes one session.
**
** The job:
**
**   clicks (source) --key_by(user)--> sessions --> sink (DIR/sessions.tsv)
**
** `sessions` keeps per user (the key):
**   - clicks:  a list state of the current session's clicks (time, page);
**   - session: a value state (start, last) of the current session;
** and one event-time timer at last + gap. Each click appends to the list and
** moves the timer: sl_timer_delete() the old one, register the new one. When
** the watermark passes the timer, nothing came for a whole gap: the session
** is emitted as one line (user, start, minutes, clicks, path) and both states
** of the user are cleared.
**
** State, checkpoints and output live in DIR (default: a new directory under
** /tmp); a run with the same DIR resumes from the newest checkpoint. At the
** end the program compares the sessions with the visits it generated.
*/
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkdir */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <statelite.h>

#define MINUTE 60000

static const char *const pages[] = {"home", "search", "product", "reviews", "cart", "checkout"};

/* ---- the clicks ------------------------------------------------------------------ */

typedef struct click {
  int user;
  int page;
  int64_t ts;
} click;

typedef struct clicks {
  click *c;
  int64_t n;
  int64_t visits;
} clicks;

static uint64_t mix(uint64_t z) { /* splitmix64 */
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int cmp_click(const void *a, const void *b) {
  const click *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return x->user - y->user;
}

/* Every visit: 1 to 6 clicks 10 s .. 2 min apart; visits 30 .. 60 min apart. */
static int make_clicks(clicks *cl, int users, int visits) {
  int64_t cap = (int64_t)users * visits * 6, k = 0;
  cl->c = malloc(sizeof *cl->c * (size_t)cap);
  if (!cl->c) return -1;
  for (int u = 0; u < users; u++) {
    uint64_t h = mix((uint64_t)u);
    int64_t t = (int64_t)(h % 1800) * 1000; /* the first visit in the first half hour */
    for (int v = 0; v < visits; v++) {
      int n = 1 + (int)((h = mix(h)) % 6);
      for (int i = 0; i < n; i++) {
        click c;
        c.user = u;
        c.page = i == 0 ? 0 : (int)((h = mix(h)) % 6);
        c.ts = t;
        cl->c[k++] = c;
        t += 10000 + (int64_t)((h = mix(h)) % 110000);
      }
      t += 30 * MINUTE + (int64_t)((h = mix(h)) % (30 * MINUTE));
    }
  }
  cl->n = k;
  cl->visits = (int64_t)users * visits;
  qsort(cl->c, (size_t)k, sizeof *cl->c, cmp_click);
  return 0;
}

/* The source: batches of 32 clicks in event-time order. Before each click
** it emits the watermark "nothing older than this click will come", which
** holds because the stream is in order. The watermark depends only on the
** position, so a resumed run sends exactly what an uninterrupted one did. */
#define BATCH 32

static const sl_column click_fields[] = {
    {"user", SL_TEXT, {0}}, {"page", SL_TEXT, {0}}, {"ts", SL_INTEGER, {0}}};

static int clicks_read(sl_ctx *ctx, void *ud) {
  const clicks *cl = ud;
  int64_t *next = sl_ctx_instance(ctx), end;
  int rc;
  if (*next >= cl->n) return SL_DONE;
  end = (*next / BATCH + 1) * BATCH;
  if (end > cl->n) end = cl->n;
  for (rc = SL_OK; rc == SL_OK && *next < end; (*next)++) {
    const click *c = &cl->c[*next];
    char user[32];
    sl_value f[3];
    rc = sl_ctx_emit_watermark(ctx, c->ts - 1); /* sent only when it advances */
    if (rc) break;
    snprintf(user, sizeof user, "user-%03d", c->user + 1);
    f[0] = sl_text(user);
    f[1] = sl_text(pages[c->page]);
    f[2] = sl_int(c->ts);
    rc = sl_ctx_emit(ctx, f, 3, c->ts);
  }
  return rc;
}

static int clicks_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = *(int64_t *)sl_ctx_instance(ctx);
  return SL_OK;
}

static int clicks_seek(sl_ctx *ctx, int64_t pos, void *ud) {
  (void)ud;
  *(int64_t *)sl_ctx_instance(ctx) = pos;
  return SL_OK;
}

/* ---- the session operator ------------------------------------------------------- */

static const sl_column user_key[] = {{"user", SL_TEXT, {0}}};
static const sl_column click_cols[] = {{"ts", SL_INTEGER, {0}}, {"page", SL_TEXT, {0}}};
static const sl_column session_cols[] = {{"start", SL_INTEGER, {0}}, {"last", SL_INTEGER, {0}}};
static const sl_column session_fields[] = {{"user", SL_TEXT, {0}},    {"start", SL_TEXT, {0}},
                                           {"minutes", SL_TEXT, {0}}, {"clicks", SL_INTEGER, {0}},
                                           {"path", SL_TEXT, {0}}};

typedef struct session_config {
  int64_t gap_ms;
} session_config;

static int sessions_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  const session_config *sc = ud;
  sl_state *list = sl_ctx_state(ctx, "clicks"), *session = sl_ctx_state(ctx, "session");
  int64_t ts = rec->f[2].v.i, start = ts, last = ts;
  const sl_value *cur;
  sl_value row[2], s[2];
  int rc = sl_value_get(session, &cur);
  if (rc == SL_OK) { /* the session goes on: move its timer */
    start = cur[0].v.i;
    last = cur[1].v.i > ts ? cur[1].v.i : ts;
    rc = sl_timer_delete(sl_ctx_store(ctx), SL_EVENT_TIME, cur[1].v.i + sc->gap_ms);
  } else if (rc == SL_NOTFOUND) {
    rc = SL_OK;
  }
  if (rc) return rc;
  row[0] = sl_int(ts);
  row[1] = rec->f[1];
  s[0] = sl_int(start);
  s[1] = sl_int(last);
  rc = sl_list_add(list, row);
  if (rc == SL_OK) rc = sl_value_update(session, s);
  if (rc == SL_OK) rc = sl_ctx_timer(ctx, SL_EVENT_TIME, last + sc->gap_ms);
  return rc;
}

/* A gap without clicks: the user's session is over. */
static int sessions_on_timer(sl_ctx *ctx, int domain, int64_t time, void *ud) {
  sl_state *list = sl_ctx_state(ctx, "clicks"), *session = sl_ctx_state(ctx, "session");
  const sl_value *key, *cur, *rows;
  size_t n = 0, len = 0;
  int nk, rc;
  int64_t start, last;
  char path[2048], when[32], minutes[32];
  sl_value out[5];
  (void)domain;
  (void)ud;
  rc = sl_store_key(sl_ctx_store(ctx), &key, &nk, NULL);
  if (rc == SL_OK) rc = sl_value_get(session, &cur);
  if (rc == SL_NOTFOUND) return SL_OK; /* no session (cannot happen: moved timers are deleted) */
  if (rc) return rc;
  start = cur[0].v.i;
  last = cur[1].v.i;
  rc = sl_list_get(list, &rows, &n); /* valid until the next call on the store */
  if (rc) return rc;
  path[0] = 0;
  for (size_t i = 0; i < n; i++) {
    const sl_value *page = &rows[2 * i + 1];
    int w = snprintf(path + len, sizeof path - len, "%s%.*s", i ? ">" : "", (int)page->n,
                     (const char *)page->v.p);
    if (w < 0 || (size_t)w >= sizeof path - len) break;
    len += (size_t)w;
  }
  snprintf(when, sizeof when, "%02lld:%02lld:%02lld", (long long)(start / 3600000),
           (long long)(start / 60000 % 60), (long long)(start / 1000 % 60));
  snprintf(minutes, sizeof minutes, "%.1f", (double)(last - start) / MINUTE);
  out[0] = key[0];
  out[1] = sl_text(when);
  out[2] = sl_text(minutes);
  out[3] = sl_int((int64_t)n);
  out[4] = sl_text(path);
  rc = sl_ctx_emit(ctx, out, 5, time);
  if (rc == SL_OK) rc = sl_state_clear(list);
  if (rc == SL_OK) rc = sl_state_clear(session);
  return rc;
}

/* ---- the job -------------------------------------------------------------------- */

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: sessions [options]\n"
          "\n"
          "Groups each user's clicks into sessions closed by a gap of inactivity.\n"
          "\n"
          "  --dir DIR          state, checkpoints and sessions.tsv; a run with the same\n"
          "                     DIR resumes from its newest checkpoint (default: a new\n"
          "                     directory under /tmp)\n"
          "  --users N          users (default 50)\n"
          "  --sessions S       visits per user (default 20)\n"
          "  --gap-minutes G    the inactivity that ends a session (default 5)\n"
          "  --interval-ms N    milliseconds between checkpoints (default 200)\n"
          "  --print            print the sessions\n"
          "  --help             this text\n");
  return rc;
}

static void job_log(void *ud, const char *line) {
  (void)ud;
  if (strncmp(line, "restored", 8) == 0) fprintf(stderr, "sessions: %s\n", line);
}

static long long number(const char *s) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  return (errno || end == s || *end || v < 1) ? -1 : v;
}

int main(int argc, char **argv) {
  static clicks cl;              /* must outlive the job */
  static session_config sc;
  char dirbuf[] = "/tmp/sessions-XXXXXX";
  const char *dir = NULL, *key = "user";
  char state[4096], chk[4096], out[4096], line[4096];
  long long users = 50, visits = 20, gap = 5, interval = 200;
  int print = 0, s_src, s_ses, s_sink, rc;
  int64_t nsessions = 0, nclicks = 0;
  sl_job_config cfg;
  sl_source src;
  sl_operator ses, sink;
  sl_state_desc states[2];
  sl_job *job = NULL;
  FILE *f;

  for (int i = 1; i < argc;) {
    const char *a = argv[i++], *v = i < argc ? argv[i] : "";
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
    if (strcmp(a, "--print") == 0) { print = 1; continue; }
    if (strcmp(a, "--dir") == 0) dir = v;
    else if (strcmp(a, "--users") == 0) users = number(v);
    else if (strcmp(a, "--sessions") == 0) visits = number(v);
    else if (strcmp(a, "--gap-minutes") == 0) gap = number(v);
    else if (strcmp(a, "--interval-ms") == 0) interval = number(v);
    else {
      fprintf(stderr, "sessions: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    i++; /* the option's value */
  }
  if (users < 1 || users > 100000 || visits < 1 || visits > 10000 || users * visits > 10000000 ||
      gap < 1 || gap > 100000 || interval < 1 || (dir && !dir[0])) {
    fprintf(stderr, "sessions: an option has a bad value\n");
    return usage(stderr, 2);
  }
  if (make_clicks(&cl, (int)users, (int)visits) != 0) {
    fprintf(stderr, "sessions: out of memory\n");
    return 1;
  }
  sc.gap_ms = gap * MINUTE;
  if (!dir) dir = mkdtemp(dirbuf);
  if (!dir || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
    fprintf(stderr, "sessions: cannot create the directory %s\n", dir ? dir : dirbuf);
    return 1;
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);
  snprintf(out, sizeof out, "%s/sessions.tsv", dir);

  memset(&src, 0, sizeof src);
  src.read = clicks_read;
  src.position = clicks_position;
  src.seek = clicks_seek;
  src.ud = &cl;
  src.instance_size = sizeof(int64_t);
  src.out = click_fields;
  src.n_out = 3;
  src.watermark_delay_ms = -1; /* it emits its own */

  memset(states, 0, sizeof states);
  states[0].name = "clicks";
  states[0].kind = SL_LIST_STATE;
  states[0].n_key = 1;
  states[0].key = user_key;
  states[0].n_value = 2;
  states[0].value = click_cols;
  states[1].name = "session";
  states[1].kind = SL_VALUE_STATE;
  states[1].n_key = 1;
  states[1].key = user_key;
  states[1].n_value = 2;
  states[1].value = session_cols;
  memset(&ses, 0, sizeof ses);
  ses.process = sessions_process;
  ses.on_timer = sessions_on_timer;
  ses.ud = &sc;
  ses.states = states;
  ses.n_states = 2;
  ses.out = session_fields;
  ses.n_out = 5;

  sl_file_sink(&sink, out);

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = interval;
  cfg.log = job_log;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "clicks", &src, 1, &s_src);
  if (rc == SL_OK) rc = sl_job_operator(job, "sessions", &ses, 2, &s_ses);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_src, s_ses, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s_ses, s_sink, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc != SL_OK) {
    fprintf(stderr, "sessions: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    free(cl.c);
    return 1;
  }
  sl_job_free(job);

  f = fopen(out, "r");
  while (f && fgets(line, sizeof line, f)) {
    char user[32], start[32], minutes[32];
    long long n;
    if (sscanf(line, "%31s %31s %31s %lld", user, start, minutes, &n) == 4) {
      nsessions++;
      nclicks += n;
    }
    if (print) fputs(line, stdout);
  }
  if (f) fclose(f);
  printf("%lld clicks of %lld users: %lld sessions (the generator made %lld visits, %lld clicks)\n",
         (long long)cl.n, users, (long long)nsessions, (long long)cl.visits, (long long)nclicks);
  printf("%s\n", nsessions == cl.visits && nclicks == cl.n
                     ? "every visit is one session"
                     : "the sessions differ from the visits (a gap shorter than the time between clicks?)");
  printf("the sessions are in %s\n", out);
  free(cl.c);
  return 0;
}
