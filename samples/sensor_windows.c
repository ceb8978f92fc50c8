/*
** sensor_windows.c — per-device tumbling one-minute windows of min / avg /
** max over temperature readings, in event time, with late readings counted.
**
**   sensor_windows [--dir DIR] [--devices N] [--minutes M] [--parallelism P]
**                  [--interval-ms N] [--pace-ms MS] [--windows] [--progress]
**
** The readings are generated (the same every run): N devices send one
** reading a second for M minutes of event time. They arrive out of order by
** up to 3 seconds, and about one in fifty is held back by 70 to 100 seconds,
** as from a device that was offline for a while.
**
** Event time is the time a reading was taken, written in the reading; it is
** not the time the program happens to see it. A window [12:03, 12:04) can only
** be closed when no more readings of that minute are to be expected. The
** source says so with watermarks: a watermark W promises "no reading older
** than W will come (except late ones)". When the watermark passes the end of
** a window, an event-time timer of that window fires and the window's result
** is emitted. A reading that comes after its window was closed is late: it
** is counted, not added.
**
** The job:
**
**   readings (source) --key_by(device)--> windows (P instances) --> sink
**
** The `windows` operator keeps, per device (the key):
**   - open_windows: a map state, window start -> (readings, sum, min, max)
**   - totals:       a value state, (readings, late, sum, min, max) over all time
** and registers one event-time timer per open window. Timers live in the
** state file too, so after a crash they fire exactly as they would have.
**
** Output: DIR/windows.tsv gets one line per closed window (device, window
** start, readings, min, avg, max) through the exactly-once file sink; at the
** end the program reads the `totals` state from the state files and prints
** a summary per device. Kill it (kill -9) and run it again with the same
** arguments: it resumes from the newest checkpoint in DIR and ends with the
** same windows and totals as a run that was never interrupted. `make run`
** shows exactly that.
*/
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkdir, nanosleep */

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <statelite.h>

#define MINUTE 60000
#define MAX_DEVICES 64

/* ---- the readings: a deterministic generator ---------------------------------- */

typedef struct gen_config {
  int devices;
  int64_t count;     /* readings in all: devices * 60 * minutes */
  int64_t pace_ms;   /* sleep per batch of 5 seconds of readings (0: full speed) */
  int progress;      /* print progress lines */
} gen_config;

typedef struct reading {
  int device;
  int64_t ts;        /* event time, ms since the start */
  double celsius;
} reading;

static uint64_t mix(uint64_t z) { /* splitmix64: a good cheap hash */
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Reading i: device i % devices, taken at second i / devices. */
static reading reading_at(const gen_config *g, int64_t i) {
  reading r;
  uint64_t h = mix((uint64_t)i);
  int64_t sec = i / g->devices, nominal = sec * 1000, phase = sec % 600;
  double wave = 3.0 * (phase < 300 ? (double)phase / 300.0 : (double)(600 - phase) / 300.0);
  double noise = (double)((int)(h >> 40) % 41 - 20) / 20.0;
  r.device = (int)(i % g->devices);
  r.ts = nominal - (int64_t)(h % 3000);                     /* up to 3 s out of order */
  if ((h >> 20) % 50 == 0 && nominal >= 100000)
    r.ts = nominal - 70000 - (int64_t)((h >> 8) % 30000);   /* held back 70..100 s */
  if (r.ts < 0) r.ts = 0;
  r.celsius = (double)(long)((18.0 + 2.5 * r.device + wave + noise) * 10.0 + 0.5) / 10.0;
  return r;
}

/* The source emits the readings in batches of 5 seconds of readings. Before
** each batch it emits a watermark: the batch's nominal time minus 5 seconds,
** which no regular reading undercuts (they are at most 3 s out of order).
** Because the watermark is a function of the position only, a restarted
** source sends exactly the watermarks the uninterrupted one sent, and late
** readings are judged the same way in both. */
static int64_t batch_size(const gen_config *g) { return 5 * (int64_t)g->devices; }
static int64_t watermark_at(const gen_config *g, int64_t i) {
  return (i / g->devices) * 1000 - 5000;
}

typedef struct gen_instance {
  int64_t next;     /* position: the index of the next reading */
  int resumed;      /* seek() happened: repeat the last watermark first */
} gen_instance;

static const sl_column reading_fields[] = {
    {"device", SL_TEXT, {0}}, {"ts", SL_INTEGER, {0}}, {"celsius", SL_REAL, {0}}};

static atomic_llong last_checkpoint; /* for the progress lines */

static void device_name(char *buf, size_t n, int device) { snprintf(buf, n, "sensor-%d", device + 1); }

static int gen_read(sl_ctx *ctx, void *ud) {
  const gen_config *g = ud;
  gen_instance *in = sl_ctx_instance(ctx);
  int64_t b = batch_size(g), end;
  int rc;
  if (in->next >= g->count) return SL_DONE;
  if (g->pace_ms > 0) {
    struct timespec ts = {(time_t)(g->pace_ms / 1000), (long)(g->pace_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
  /* the watermark of the batch this position is in */
  if (in->next % b == 0 || in->resumed) {
    rc = sl_ctx_emit_watermark(ctx, watermark_at(g, in->next / b * b));
    if (rc) return rc;
    in->resumed = 0;
  }
  end = (in->next / b + 1) * b;
  if (end > g->count) end = g->count;
  for (; in->next < end; in->next++) {
    reading r = reading_at(g, in->next);
    char name[32];
    sl_value f[3];
    device_name(name, sizeof name, r.device);
    f[0] = sl_text(name);
    f[1] = sl_int(r.ts);
    f[2] = sl_real(r.celsius);
    rc = sl_ctx_emit(ctx, f, 3, r.ts); /* the record's event time */
    if (rc) return rc;
    if (g->progress && (in->next + 1) % (g->count / 10 > 0 ? g->count / 10 : 1) == 0) {
      printf("progress: %" PRId64 "/%" PRId64 " readings, checkpoint %lld complete\n", in->next + 1,
             g->count, (long long)atomic_load(&last_checkpoint));
      fflush(stdout);
    }
  }
  return SL_OK;
}

static int gen_position(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = ((gen_instance *)sl_ctx_instance(ctx))->next;
  return SL_OK;
}

static int gen_seek(sl_ctx *ctx, int64_t pos, void *ud) {
  gen_instance *in = sl_ctx_instance(ctx);
  (void)ud;
  in->next = pos;
  in->resumed = 1;
  return SL_OK;
}

/* ---- the window operator ------------------------------------------------------ */

static const sl_column device_key[] = {{"device", SL_TEXT, {0}}};
static const sl_column window_key[] = {{"window_start", SL_INTEGER, {0}}};
static const sl_column window_cols[] = {{"readings", SL_INTEGER, {0}},
                                        {"sum", SL_REAL, {0}},
                                        {"min", SL_REAL, {0}},
                                        {"max", SL_REAL, {0}}};
static const sl_column total_cols[] = {{"readings", SL_INTEGER, {0}}, {"late", SL_INTEGER, {0}},
                                       {"sum", SL_REAL, {0}},         {"min", SL_REAL, {0}},
                                       {"max", SL_REAL, {0}}};
static const sl_column window_fields[] = {{"device", SL_TEXT, {0}}, {"window", SL_TEXT, {0}},
                                          {"readings", SL_INTEGER, {0}}, {"min", SL_TEXT, {0}},
                                          {"avg", SL_TEXT, {0}},         {"max", SL_TEXT, {0}}};

/* Adds a reading to this device's totals (late: only counts it). */
static int add_to_totals(sl_state *totals, double c, int late) {
  const sl_value *cur;
  sl_value v[5];
  int rc = sl_value_get(totals, &cur);
  if (rc == SL_OK) {
    memcpy(v, cur, sizeof v);
  } else if (rc == SL_NOTFOUND) {
    v[0] = sl_int(0);
    v[1] = sl_int(0);
    v[2] = sl_real(0);
    v[3] = sl_real(c);
    v[4] = sl_real(c);
  } else {
    return rc;
  }
  if (late) {
    v[1].v.i++;
  } else {
    v[0].v.i++;
    v[2].v.r += c;
    if (c < v[3].v.r) v[3].v.r = c;
    if (c > v[4].v.r) v[4].v.r = c;
  }
  return sl_value_update(totals, v);
}

static int windows_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *open = sl_ctx_state(ctx, "open_windows"), *totals = sl_ctx_state(ctx, "totals");
  int64_t ts = rec->f[1].v.i, start = ts - ts % MINUTE;
  double c = rec->f[2].v.r;
  const sl_value *cur;
  sl_value mk = sl_int(start), v[4];
  int rc;
  (void)ud;
  /* the window ends at start + MINUTE; its timer is at the last millisecond
  ** in it, and it has fired once the watermark reached that time */
  if (start + MINUTE - 1 <= sl_ctx_watermark(ctx)) return add_to_totals(totals, c, 1);
  rc = add_to_totals(totals, c, 0);
  if (rc) return rc;
  rc = sl_map_get(open, &mk, &cur);
  if (rc == SL_OK) {
    v[0] = sl_int(cur[0].v.i + 1);
    v[1] = sl_real(cur[1].v.r + c);
    v[2] = sl_real(c < cur[2].v.r ? c : cur[2].v.r);
    v[3] = sl_real(c > cur[3].v.r ? c : cur[3].v.r);
  } else if (rc == SL_NOTFOUND) { /* the first reading of this window: set its timer */
    v[0] = sl_int(1);
    v[1] = v[2] = v[3] = sl_real(c);
    rc = sl_ctx_timer(ctx, SL_EVENT_TIME, start + MINUTE - 1);
    if (rc) return rc;
  } else {
    return rc;
  }
  return sl_map_put(open, &mk, v);
}

/* The watermark passed the end of a window of the current key: emit it. */
static int windows_on_timer(sl_ctx *ctx, int domain, int64_t time, void *ud) {
  sl_state *open = sl_ctx_state(ctx, "open_windows");
  int64_t start = time + 1 - MINUTE;
  const sl_value *key, *w;
  sl_value mk = sl_int(start), out[6];
  char when[32], mn[32], avg[32], mx[32];
  int n, rc;
  (void)ud;
  (void)domain;
  rc = sl_store_key(sl_ctx_store(ctx), &key, &n, NULL); /* the device */
  if (rc == SL_OK) rc = sl_map_get(open, &mk, &w);
  if (rc) return rc;
  snprintf(when, sizeof when, "%02d:%02d", (int)(start / MINUTE / 60), (int)(start / MINUTE % 60));
  snprintf(mn, sizeof mn, "%.1f", w[2].v.r);
  snprintf(avg, sizeof avg, "%.2f", w[1].v.r / (double)w[0].v.i);
  snprintf(mx, sizeof mx, "%.1f", w[3].v.r);
  out[0] = key[0];
  out[1] = sl_text(when);
  out[2] = w[0];
  out[3] = sl_text(mn);
  out[4] = sl_text(avg);
  out[5] = sl_text(mx);
  rc = sl_ctx_emit(ctx, out, 6, time);
  if (rc == SL_OK) rc = sl_map_remove(open, &mk);
  return rc;
}

/* ---- after the job: the totals, read straight from the state files ------------- */

typedef struct total {
  char device[32];
  int64_t readings, late;
  double sum, min, max;
} total;

static int cmp_total(const void *a, const void *b) {
  const total *x = a, *y = b;
  size_t nx = strlen(x->device), ny = strlen(y->device);
  return nx != ny ? (nx < ny ? -1 : 1) : strcmp(x->device, y->device);
}

/* Each instance's state file holds the devices of its key groups. */
static int print_totals(const char *state_dir, int par, const char *windows_file) {
  total t[MAX_DEVICES];
  int nt = 0, nwin = 0;
  char line[256];
  FILE *f;
  for (int i = 0; i < par; i++) {
    char path[4200];
    sl_store *st = NULL;
    sl_state *s = NULL;
    sl_iter *it = NULL;
    int rc;
    snprintf(path, sizeof path, "%s/windows/%d.db", state_dir, i);
    rc = sl_store_open_file(path, NULL, &st);
    if (rc == SL_OK) rc = sl_state_open(st, "totals", &s);
    if (rc == SL_OK) rc = sl_state_scan(s, &it);
    while (rc == SL_OK && (rc = sl_iter_next(it)) == SL_ROW) {
      const sl_value *k, *v;
      int nk, nv;
      rc = sl_iter_key(it, &k, &nk, NULL);
      if (rc == SL_OK) rc = sl_iter_value(it, &v, &nv);
      if (rc == SL_OK && nt < MAX_DEVICES) {
        snprintf(t[nt].device, sizeof t[nt].device, "%.*s", (int)k[0].n, (const char *)k[0].v.p);
        t[nt].readings = v[0].v.i;
        t[nt].late = v[1].v.i;
        t[nt].sum = v[2].v.r;
        t[nt].min = v[3].v.r;
        t[nt].max = v[4].v.r;
        nt++;
      }
    }
    sl_iter_close(it);
    if (rc != SL_DONE && rc != SL_NOTFOUND) {
      fprintf(stderr, "sensor_windows: %s: %s: %s\n", path, sl_errstr(rc), sl_errmsg(st));
      sl_store_close(st);
      return 1;
    }
    sl_store_close(st);
  }
  f = fopen(windows_file, "r");
  if (f) {
    while (fgets(line, sizeof line, f)) nwin++;
    fclose(f);
  }
  qsort(t, (size_t)nt, sizeof *t, cmp_total);
  printf("%-10s %8s %6s %6s %6s %5s\n", "device", "readings", "min", "avg", "max", "late");
  for (int i = 0; i < nt; i++)
    printf("%-10s %8" PRId64 " %6.1f %6.2f %6.1f %5" PRId64 "\n", t[i].device, t[i].readings, t[i].min,
           t[i].readings ? t[i].sum / (double)t[i].readings : 0.0, t[i].max, t[i].late);
  printf("%d one-minute windows in %s\n", nwin, windows_file);
  return 0;
}

/* ---- the job -------------------------------------------------------------------- */

static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: sensor_windows [options]\n"
          "\n"
          "One-minute windows (min/avg/max) per device over generated temperature\n"
          "readings, in event time; late readings are counted.\n"
          "\n"
          "  --dir DIR          state, checkpoints and windows.tsv; a run with the same\n"
          "                     DIR resumes from its newest checkpoint (default: a new\n"
          "                     directory under /tmp)\n"
          "  --devices N        devices (default 4, at most %d)\n"
          "  --minutes M        minutes of readings, one per device and second (default 20)\n"
          "  --parallelism P    instances of the window operator (default 2)\n"
          "  --interval-ms N    milliseconds between checkpoints (default 200)\n"
          "  --pace-ms MS       sleep per 5 seconds of readings, to watch it (default 0)\n"
          "  --windows          print every window, not only the summary\n"
          "  --progress         print a line at every tenth of the readings\n"
          "  --verbose          print what the job does (checkpoints, restore)\n"
          "  --help             this text\n",
          MAX_DEVICES);
  return rc;
}

typedef struct log_config {
  int verbose;
} log_config;

static void job_log(void *ud, const char *line) {
  const log_config *lc = ud;
  long long id;
  if (sscanf(line, "checkpoint %lld complete", &id) == 1) atomic_store(&last_checkpoint, id);
  if (lc->verbose || strncmp(line, "restored", 8) == 0) {
    printf("%s\n", line);
    fflush(stdout);
  }
}

static long long number(const char *s, long long min) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  return (errno || end == s || *end || v < min) ? -1 : v;
}

int main(int argc, char **argv) {
  static gen_config gen; /* must outlive the job */
  char dirbuf[] = "/tmp/sensor_windows-XXXXXX";
  const char *dir = NULL, *key = "device";
  char state[4096], chk[4096], out[4096];
  long long devices = 4, minutes = 20, par = 2, interval = 200, pace = 0;
  int print_windows = 0, s_src, s_win, s_sink, rc;
  log_config lc = {0};
  sl_job_config cfg;
  sl_source src;
  sl_operator win, sink;
  sl_state_desc states[2];
  sl_job *job = NULL;

  for (int i = 1; i < argc;) {
    const char *a = argv[i++], *v = i < argc ? argv[i] : "";
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
    if (strcmp(a, "--windows") == 0) { print_windows = 1; continue; }
    if (strcmp(a, "--progress") == 0) { gen.progress = 1; continue; }
    if (strcmp(a, "--verbose") == 0) { lc.verbose = 1; continue; }
    if (strcmp(a, "--dir") == 0) dir = v;
    else if (strcmp(a, "--devices") == 0) devices = number(v, 1);
    else if (strcmp(a, "--minutes") == 0) minutes = number(v, 1);
    else if (strcmp(a, "--parallelism") == 0) par = number(v, 1);
    else if (strcmp(a, "--interval-ms") == 0) interval = number(v, 1);
    else if (strcmp(a, "--pace-ms") == 0) pace = number(v, 0);
    else {
      fprintf(stderr, "sensor_windows: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    i++; /* the option's value */
  }
  if (devices < 1 || devices > MAX_DEVICES || minutes < 1 || minutes > 100000 || par < 1 ||
      par > SL_DEFAULT_MAX_PARALLELISM || interval < 1 || pace < 0 || (dir && !dir[0])) {
    fprintf(stderr, "sensor_windows: an option has a bad value\n");
    return usage(stderr, 2);
  }
  gen.devices = (int)devices;
  gen.count = devices * 60 * minutes;
  gen.pace_ms = pace;
  if (!dir) dir = mkdtemp(dirbuf);
  if (!dir || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
    fprintf(stderr, "sensor_windows: cannot create the directory %s\n", dir ? dir : dirbuf);
    return 1;
  }
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/checkpoints", dir);
  snprintf(out, sizeof out, "%s/windows.tsv", dir);

  memset(&src, 0, sizeof src);
  src.read = gen_read;
  src.position = gen_position;
  src.seek = gen_seek;
  src.ud = &gen;
  src.instance_size = sizeof(gen_instance);
  src.out = reading_fields;
  src.n_out = 3;
  src.watermark_delay_ms = -1; /* the source emits its own watermarks */

  memset(states, 0, sizeof states);
  states[0].name = "open_windows";
  states[0].kind = SL_MAP_STATE;
  states[0].n_key = 1;
  states[0].key = device_key;
  states[0].n_map_key = 1;
  states[0].map_key = window_key;
  states[0].n_value = 4;
  states[0].value = window_cols;
  states[1].name = "totals";
  states[1].kind = SL_VALUE_STATE;
  states[1].n_key = 1;
  states[1].key = device_key;
  states[1].n_value = 5;
  states[1].value = total_cols;
  memset(&win, 0, sizeof win);
  win.process = windows_process;
  win.on_timer = windows_on_timer;
  win.states = states;
  win.n_states = 2;
  win.out = window_fields;
  win.n_out = 6;

  sl_file_sink(&sink, out);

  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = interval;
  cfg.log = job_log;
  cfg.log_ud = &lc;

  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "readings", &src, 1, &s_src);
  if (rc == SL_OK) rc = sl_job_operator(job, "windows", &win, (int)par, &s_win);
  if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s_sink);
  if (rc == SL_OK) rc = sl_job_connect(job, s_src, s_win, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(job, s_win, s_sink, SL_REBALANCE, NULL, 0);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc != SL_OK) {
    fprintf(stderr, "sensor_windows: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
    sl_job_free(job);
    return 1;
  }
  sl_job_free(job);

  if (print_windows) {
    FILE *f = fopen(out, "r");
    char line[256];
    printf("%-10s %-6s %8s %6s %6s %6s\n", "device", "window", "readings", "min", "avg", "max");
    while (f && fgets(line, sizeof line, f)) {
      char dev[32], when[16], mn[16], avg[16], mx[16];
      long long n;
      if (sscanf(line, "%31s %15s %lld %15s %15s %15s", dev, when, &n, mn, avg, mx) == 6)
        printf("%-10s %-6s %8lld %6s %6s %6s\n", dev, when, n, mn, avg, mx);
    }
    if (f) fclose(f);
  }
  return print_totals(state, (int)par, out);
}
