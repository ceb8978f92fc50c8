/*
** bench_checkpoint.c — the benchmark "checkpoint of a store": a store holds a
** value state of N keys (key k INTEGER; values n INTEGER, s TEXT of about 12
** bytes). Each interval changes a fraction of the keys (default 1%, drawn
** with splitmix64) and then takes a checkpoint the way a runtime does:
**
**   sl_chkdir_target        the directory chk-<id>
**   sl_snapshot_begin       the synchronous part: the pause of the operator
**   sl_snapshot_write       the asynchronous part (here on the same thread,
**                           with nothing running beside it)
**   sl_snapshot_get_info    bytes, raw_bytes, peak_disk_bytes, streamed
**   sl_snapshot_end
**   sl_chkdir_publish       the MANIFEST
**
** After the last interval the store is closed and the newest checkpoint is
** restored (sl_chkdir_restore) into a fresh state directory; that time is
** reported, and every row of the restored state is read back and checked
** against the values the program wrote (a mismatch exits 1).
**
** Prints one line of key=value results. Run with --help for the options.
*/
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "statelite.h"

typedef struct Opts {
  uint64_t keys;
  int intervals;
  double dirty;          /* fraction of the keys changed per interval */
  uint64_t seed;
  size_t budget;         /* cache budget of the store */
  int level;             /* zstd level */
  const char *tmp;
} Opts;

static void usage(FILE *f) {
  fputs("usage: bench_checkpoint [options]\n"
        "  --keys N        keys in the store (default 100000)\n"
        "  --intervals I   checkpoints taken (default 20)\n"
        "  --dirty F       fraction of the keys changed per interval (default 0.01)\n"
        "  --seed X        seed of the changed keys (default 42)\n"
        "  --budget BYTES  cache budget of the store (default 64 MiB)\n"
        "  --level L       zstd level of the snapshots (default 3, the library's)\n"
        "  --dir DIR       where the scratch directory goes (default $TMPDIR or /tmp)\n",
        f);
}

static int parse_opts(int argc, char **argv, Opts *o) {
  int i;
  memset(o, 0, sizeof *o);
  o->keys = 100000;
  o->intervals = 20;
  o->dirty = 0.01;
  o->seed = 42;
  o->budget = (size_t)64 * 1024 * 1024;
  o->level = 3;
  o->tmp = getenv("TMPDIR");
  if (!o->tmp || !*o->tmp) o->tmp = "/tmp";
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (!v) {
      fprintf(stderr, "bench_checkpoint: %s needs a value (see --help)\n", a);
      return -1;
    }
    i++;
    errno = 0;
    if (strcmp(a, "--dir") == 0) {
      o->tmp = v;
      continue;
    } else if (strcmp(a, "--dirty") == 0) {
      o->dirty = strtod(v, &end);
      if (!(o->dirty > 0 && o->dirty <= 1)) end = NULL;
    } else {
      unsigned long long n = strtoull(v, &end, 10);
      if (*v == '-') end = NULL;
      if (strcmp(a, "--keys") == 0) o->keys = n;
      else if (strcmp(a, "--intervals") == 0) o->intervals = (int)n;
      else if (strcmp(a, "--seed") == 0) o->seed = n;
      else if (strcmp(a, "--budget") == 0) o->budget = (size_t)n;
      else if (strcmp(a, "--level") == 0) o->level = (int)n;
      else {
        fprintf(stderr, "bench_checkpoint: unknown option %s (see --help)\n", a);
        return -1;
      }
    }
    if (!end || end == v || *end || errno) {
      fprintf(stderr, "bench_checkpoint: bad value '%s' for %s\n", v, a);
      return -1;
    }
  }
  if (o->keys < 100 || o->keys > ((uint64_t)1 << 31) || o->intervals < 1 ||
      o->intervals > 100000 || o->level < 1 || o->level > 19) {
    fprintf(stderr, "bench_checkpoint: --keys 100..2^31, --intervals >= 1, --level 1..19\n");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Utilities                                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_tree(const char *path) {
  struct stat sb;
  DIR *d;
  struct dirent *de;
  int rc = 0;
  if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(sb.st_mode)) return unlink(path);
  d = opendir(path);
  if (!d) return -1;
  while ((de = readdir(d)) != NULL) {
    char sub[4352];
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= sizeof sub) {
      rc = -1;
      continue;
    }
    if (rm_tree(sub) != 0) rc = -1;
  }
  closedir(d);
  if (rmdir(path) != 0) rc = -1;
  return rc;
}

static uint64_t file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0..100) of n sorted values. */
static double pct(const double *sorted, int n, double p) {
  int r = (int)((p / 100.0) * n + 0.999999);
  if (r < 1) r = 1;
  if (r > n) r = n;
  return sorted[r - 1];
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The text value of key k at version n. */
static size_t text_of(char *buf, size_t cap, int64_t k, int64_t n) {
  return (size_t)snprintf(buf, cap, "v%07llx-%lld", (unsigned long long)k, (long long)n);
}

static int fail(const void *h, int rc, const char *what) {
  fprintf(stderr, "bench_checkpoint: %s failed: %s (%s)\n", what, sl_errmsg(h), sl_errstr(rc));
  return -1;
}

static const sl_column key_col[] = {{"k", SL_INTEGER, {0, 0, {0}}}};
static const sl_column val_cols[] = {{"n", SL_INTEGER, {0, 0, {0}}},
                                     {"s", SL_TEXT, {0, 0, {0}}}};

static int open_store(const char *dir, size_t budget, sl_store **st, sl_state **s) {
  sl_config cfg;
  sl_state_desc d;
  int rc;
  sl_config_init(&cfg);
  cfg.memory_budget = budget;
  rc = sl_store_open(dir, "bench", 0, 1, &cfg, st);
  if (rc != SL_OK) return fail(*st, rc, "sl_store_open");
  memset(&d, 0, sizeof d);
  d.name = "vals";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = key_col;
  d.n_value = 2;
  d.value = val_cols;
  rc = sl_state_register(*st, &d, s);
  if (rc != SL_OK) return fail(*st, rc, "sl_state_register");
  return 0;
}

static int put(sl_store *st, sl_state *s, int64_t k, int64_t n) {
  char buf[48];
  sl_value key = sl_int(k), v[2];
  size_t len = text_of(buf, sizeof buf, k, n);
  int rc = sl_store_set_key(st, &key, 1, NULL);
  if (rc != SL_OK) return fail(st, rc, "sl_store_set_key");
  v[0] = sl_int(n);
  v[1] = sl_textn(buf, len);
  rc = sl_value_update(s, v);
  return rc == SL_OK ? 0 : fail(s, rc, "sl_value_update");
}

/* Reads every row of the restored state and checks it against expect[]. */
static int verify(const char *dir, const int64_t *expect, uint64_t keys) {
  sl_store *st = NULL;
  sl_state *s = NULL;
  sl_iter *it = NULL;
  uint64_t rows = 0, bad = 0;
  int rc, ret = -1;
  if (open_store(dir, 0, &st, &s) != 0) goto out;
  rc = sl_state_scan(s, &it);
  if (rc != SL_OK) {
    fail(s, rc, "sl_state_scan");
    goto out;
  }
  while ((rc = sl_iter_next(it)) == SL_ROW) {
    const sl_value *k, *v;
    int nk, nv;
    char buf[48];
    size_t len;
    if (sl_iter_key(it, &k, &nk, NULL) != SL_OK || sl_iter_value(it, &v, &nv) != SL_OK ||
        nk != 1 || nv != 2 || k[0].v.i < 0 || (uint64_t)k[0].v.i >= keys) {
      bad++;
      continue;
    }
    len = text_of(buf, sizeof buf, k[0].v.i, expect[k[0].v.i]);
    if (v[0].type != SL_INTEGER || v[0].v.i != expect[k[0].v.i] || v[1].type != SL_TEXT ||
        v[1].n != len || memcmp(v[1].v.p, buf, len) != 0) {
      if (bad++ < 5) fprintf(stderr, "bench_checkpoint: key %lld restored wrong\n",
                             (long long)k[0].v.i);
    }
    rows++;
  }
  if (rc != SL_DONE) {
    fail(it, rc, "sl_iter_next");
    goto out;
  }
  if (bad || rows != keys) {
    fprintf(stderr, "bench_checkpoint: WRONG RESTORE: %llu rows (expected %llu), %llu bad\n",
            (unsigned long long)rows, (unsigned long long)keys, (unsigned long long)bad);
    goto out;
  }
  ret = 0;
out:
  sl_iter_close(it);
  sl_store_close(st);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  Opts o;
  char root[4096], state_dir[4200], chk_dir[4200], restore_dir[4200], db_path[4300];
  sl_store *st = NULL;
  sl_state *s = NULL;
  sl_chkdir *cd = NULL;
  sl_chkdir_config ccfg;
  sl_snapshot_config scfg;
  int64_t *expect = NULL, restored = 0;
  double *sync_ms = NULL, *async_ms = NULL, *ratio = NULL, *bytes = NULL, *raw = NULL,
         *peak = NULL, *publish_ms = NULL, *filebytes = NULL;
  double populate_s, restore_s, t0, t1;
  uint64_t rng, k, dirty;
  int i, rc, streamed = 0, ok = 0;

  if (parse_opts(argc, argv, &o) != 0) return 2;
  if ((size_t)snprintf(root, sizeof root, "%s/bench_checkpoint-XXXXXX", o.tmp) >= sizeof root ||
      !mkdtemp(root)) {
    fprintf(stderr, "bench_checkpoint: cannot create a directory under %s\n", o.tmp);
    return 2;
  }
  snprintf(state_dir, sizeof state_dir, "%s/state", root);
  snprintf(chk_dir, sizeof chk_dir, "%s/chk", root);
  snprintf(restore_dir, sizeof restore_dir, "%s/restored", root);

  expect = calloc((size_t)o.keys, sizeof *expect);
  sync_ms = calloc((size_t)o.intervals, sizeof(double));
  async_ms = calloc((size_t)o.intervals, sizeof(double));
  ratio = calloc((size_t)o.intervals, sizeof(double));
  bytes = calloc((size_t)o.intervals, sizeof(double));
  raw = calloc((size_t)o.intervals, sizeof(double));
  peak = calloc((size_t)o.intervals, sizeof(double));
  publish_ms = calloc((size_t)o.intervals, sizeof(double));
  filebytes = calloc((size_t)o.intervals, sizeof(double));
  if (!expect || !sync_ms || !async_ms || !ratio || !bytes || !raw || !peak || !publish_ms ||
      !filebytes) {
    fprintf(stderr, "bench_checkpoint: out of memory\n");
    goto out;
  }

  /* The initial state: every key at version 0, committed. Not timed as part
  ** of the checkpoints. */
  if (open_store(state_dir, o.budget, &st, &s) != 0) goto out;
  snprintf(db_path, sizeof db_path, "%s", sl_store_path(st));
  t0 = now_sec();
  for (k = 0; k < o.keys; k++) {
    if (put(st, s, (int64_t)k, 0) != 0) goto out;
    if ((k + 1) % 100000 == 0 && (rc = sl_store_commit(st)) != SL_OK) {
      fail(st, rc, "sl_store_commit");
      goto out;
    }
  }
  rc = sl_store_commit(st);
  if (rc != SL_OK) {
    fail(st, rc, "sl_store_commit");
    goto out;
  }
  populate_s = now_sec() - t0;

  sl_chkdir_config_init(&ccfg);
  rc = sl_chkdir_open(chk_dir, &ccfg, &cd);
  if (rc != SL_OK) {
    fail(cd, rc, "sl_chkdir_open");
    goto out;
  }
  sl_snapshot_config_init(&scfg);
  scfg.level = o.level;

  rng = o.seed;
  dirty = (uint64_t)((double)o.keys * o.dirty + 0.5);
  if (dirty < 1) dirty = 1;
  for (i = 0; i < o.intervals; i++) {
    const char *target;
    sl_snapshot *sn = NULL;
    sl_snapshot_info info;
    int64_t id = i + 1;
    uint64_t j;
    /* Change `dirty` keys (a key drawn twice counts once more). */
    for (j = 0; j < dirty; j++) {
      int64_t key = (int64_t)(splitmix64(&rng) % o.keys);
      if (put(st, s, key, ++expect[key]) != 0) goto out;
    }
    rc = sl_chkdir_target(cd, id, NULL, &target);
    if (rc != SL_OK) {
      fail(cd, rc, "sl_chkdir_target");
      goto out;
    }
    t0 = now_sec();
    rc = sl_snapshot_begin(st, target, id, SL_CHECKPOINT, &scfg, &sn);
    t1 = now_sec();
    if (rc != SL_OK) {
      fail(st, rc, "sl_snapshot_begin");
      goto out;
    }
    sync_ms[i] = (t1 - t0) * 1e3;
    if (getenv("BENCH_TRACE")) fprintf(stderr, "checkpoint %d: sync %.3f ms\n", i, sync_ms[i]);
    /* The database file as it is on disk now (WAL included). */
    filebytes[i] = (double)file_size(db_path);
    {
      char wal[4400];
      snprintf(wal, sizeof wal, "%s-wal", db_path);
      filebytes[i] += (double)file_size(wal);
    }
    t0 = now_sec();
    rc = sl_snapshot_write(sn);
    t1 = now_sec();
    if (rc != SL_OK) {
      fail(sn, rc, "sl_snapshot_write");
      sl_snapshot_end(sn);
      goto out;
    }
    async_ms[i] = (t1 - t0) * 1e3;
    rc = sl_snapshot_get_info(sn, &info);
    if (rc != SL_OK) {
      fail(sn, rc, "sl_snapshot_get_info");
      sl_snapshot_end(sn);
      goto out;
    }
    rc = sl_snapshot_end(sn);
    if (rc != SL_OK) {
      fail(st, rc, "sl_snapshot_end");
      goto out;
    }
    t0 = now_sec();
    rc = sl_chkdir_publish(cd, id, NULL, &info, 1);
    t1 = now_sec();
    if (rc != SL_OK) {
      fail(cd, rc, "sl_chkdir_publish");
      goto out;
    }
    publish_ms[i] = (t1 - t0) * 1e3;
    bytes[i] = (double)info.bytes;
    raw[i] = (double)info.raw_bytes;
    ratio[i] = info.raw_bytes ? (double)info.bytes / (double)info.raw_bytes : 0;
    peak[i] = (double)info.peak_disk_bytes;
    streamed += info.streamed != 0;
  }

  /* Restore the newest checkpoint into a fresh state directory. */
  rc = sl_store_close(st);
  st = NULL;
  if (rc != SL_OK) {
    fprintf(stderr, "bench_checkpoint: sl_store_close failed: %s\n", sl_errstr(rc));
    goto out;
  }
  t0 = now_sec();
  rc = sl_chkdir_restore(cd, 0, NULL, restore_dir, NULL, 0, &restored);
  restore_s = now_sec() - t0;
  if (rc != SL_OK) {
    fail(cd, rc, "sl_chkdir_restore");
    goto out;
  }
  if (restored != o.intervals) {
    fprintf(stderr, "bench_checkpoint: restored checkpoint %lld, expected %d\n",
            (long long)restored, o.intervals);
    goto out;
  }
  if (verify(restore_dir, expect, o.keys) != 0) goto out;
  ok = 1;

  {
    int n = o.intervals;
    double p50, p99, pmax;
    qsort(sync_ms, (size_t)n, sizeof *sync_ms, cmp_double);
    p50 = pct(sync_ms, n, 50);
    p99 = pct(sync_ms, n, 99);
    pmax = sync_ms[n - 1];
    printf("keys=%llu intervals=%d dirty_keys=%llu level=%d budget=%zu populate_seconds=%.3f "
           "sync_p50_ms=%.3f sync_p99_ms=%.3f sync_max_ms=%.3f async_median_ms=%.3f "
           "publish_median_ms=%.3f bytes_median=%.0f raw_bytes_median=%.0f "
           "file_bytes_median=%.0f ratio_median=%.4f peak_disk_median=%.0f "
           "peak_over_bytes=%.3f streamed=%d/%d restore_seconds=%.4f verified=ok\n",
           (unsigned long long)o.keys, n, (unsigned long long)dirty, o.level, o.budget,
           populate_s, p50, p99, pmax, median(async_ms, n), median(publish_ms, n),
           median(bytes, n), median(raw, n), median(filebytes, n), median(ratio, n),
           median(peak, n), median(peak, n) / median(bytes, n), streamed, n, restore_s);
  }

out:
  sl_store_close(st);
  sl_chkdir_close(cd);
  if (rm_tree(root) != 0)
    fprintf(stderr, "bench_checkpoint: could not remove the scratch directory %s\n", root);
  free(expect);
  free(sync_ms);
  free(async_ms);
  free(ratio);
  free(bytes);
  free(raw);
  free(peak);
  free(publish_ms);
  free(filebytes);
  return ok ? 0 : 1;
}
