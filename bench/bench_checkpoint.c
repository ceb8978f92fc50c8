/*
** bench_checkpoint.c — the benchmark "checkpoint of a store": a store holds a
** value state of N keys (key k INTEGER; values n INTEGER, s TEXT of about 12
** bytes). Each interval changes a fraction of the keys (default 1%, drawn
** with splitmix64) and then takes a checkpoint the way a runtime does, on one
** of two engines (--engine):
**
** statelite:
**   sl_chkdir_target        the directory chk-<id>
**   sl_snapshot_begin       the synchronous part: the pause of the operator
**   sl_snapshot_write       the asynchronous part (here on the same thread,
**                           with nothing running beside it)
**   sl_snapshot_get_info    bytes, raw_bytes, peak_disk_bytes, streamed
**   sl_snapshot_end
**   sl_chkdir_publish       the MANIFEST; retention keeps 2
**
** rocksdb (C API, default options, WAL off), as Flink's RocksDB backend:
**   rocksdb_flush + rocksdb_checkpoint_create (hard links into chk-<id>):
**                           the synchronous part
**   zstd level 3 of every file of chk-<id>, streamed, the bytes counted:
**                           the asynchronous part and the snapshot's size
**   the checkpoint two before is removed (2 kept)
**
** After the last interval the store is closed and the newest checkpoint is
** restored: statelite with sl_chkdir_restore into a fresh state directory,
** RocksDB by opening the checkpoint directory; then every key is read back
** and checked against the values the program wrote (a mismatch exits 1).
** Both are timed. Bytes written come from /proc/self/io (write_bytes: what
** this process, its background threads included, sent to the storage).
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

#include <rocksdb/c.h>
#include <zstd.h>

#include "statelite.h"
#include "bench_util.h"

typedef struct Opts {
  const char *engine;
  uint64_t keys;
  int intervals;
  double dirty;          /* fraction of the keys changed per interval */
  uint64_t seed;
  size_t budget;         /* cache budget of the store */
  int level;             /* zstd level */
  const char *tmp;
  const char *base;      /* start from a copy of this filled store */
  const char *build_base;/* fill a store here (a new directory) and exit */
} Opts;

static void usage(FILE *f) {
  fputs("usage: bench_checkpoint [options]\n"
        "  --engine E      statelite (default) or rocksdb\n"
        "  --keys N        keys in the store (default 100000)\n"
        "  --intervals I   checkpoints taken (default 20)\n"
        "  --dirty F       fraction of the keys changed per interval (default 0.01)\n"
        "  --seed X        seed of the changed keys (default 42)\n"
        "  --budget BYTES  statelite: cache budget of the store (default 64 MiB)\n"
        "  --level L       zstd level of the snapshots (default 3, the library's)\n"
        "  --build-base DIR  fill the engine's store of --keys keys into DIR (new), exit\n"
        "  --base DIR      start from a copy of that store instead of filling one\n"
        "  --dir DIR       where the scratch directory goes (default $TMPDIR or /tmp)\n",
        f);
}

static int parse_opts(int argc, char **argv, Opts *o) {
  int i;
  memset(o, 0, sizeof *o);
  o->engine = "statelite";
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
    } else if (strcmp(a, "--base") == 0) {
      o->base = v;
      continue;
    } else if (strcmp(a, "--build-base") == 0) {
      o->build_base = v;
      continue;
    } else if (strcmp(a, "--engine") == 0) {
      if (strcmp(v, "statelite") != 0 && strcmp(v, "rocksdb") != 0) {
        fprintf(stderr, "bench_checkpoint: --engine is statelite or rocksdb, not '%s'\n", v);
        return -1;
      }
      o->engine = v;
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

static uint64_t file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Bytes of the regular files under path. */
static uint64_t tree_bytes(const char *path) {
  struct stat sb;
  DIR *d;
  struct dirent *de;
  uint64_t n = 0;
  if (lstat(path, &sb) != 0) return 0;
  if (S_ISREG(sb.st_mode)) return (uint64_t)sb.st_size;
  if (!S_ISDIR(sb.st_mode) || !(d = opendir(path))) return 0;
  while ((de = readdir(d)) != NULL) {
    char sub[4352];
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) < sizeof sub)
      n += tree_bytes(sub);
  }
  closedir(d);
  return n;
}

/* The store's files: a copy of the base when there is one. */
static int start_from_base(const Opts *o, const char *dir) {
  if (!o->base) return 0;
  if (mkdir(dir, 0755) != 0 || copy_tree(o->base, dir) != 0) {
    fprintf(stderr, "bench_checkpoint: cannot copy the base %s\n", o->base);
    return -1;
  }
  return 0;
}

/* What this process has sent to the storage so far (/proc/self/io). */
static uint64_t io_written(void) {
  FILE *f = fopen("/proc/self/io", "r");
  char line[128];
  unsigned long long v = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "write_bytes: %llu", &v) == 1) break;
  fclose(f);
  return (uint64_t)v;
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

/* What one run measured: per checkpoint, and once. */
typedef struct Figures {
  double *sync_ms, *async_ms, *ratio, *bytes, *raw, *peak, *publish_ms, *filebytes, *written,
      *kept, *incr;
  double populate_s, restore_s, read_s;
  uint64_t written_all;  /* bytes written over all intervals, changes included */
  int streamed;
} Figures;

/* The directory names of one run. */
typedef struct Paths {
  char root[4096], state[4200], chk[4200], restored[4200];
} Paths;

/* ------------------------------------------------------------------------ */
/* statelite                                                                 */
/* ------------------------------------------------------------------------ */

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

static int run_statelite(const Opts *o, const Paths *p, int64_t *expect, Figures *f) {
  sl_store *st = NULL;
  sl_state *s = NULL;
  sl_chkdir *cd = NULL;
  sl_chkdir_config ccfg;
  sl_snapshot_config scfg;
  char db_path[4300];
  int64_t restored = 0;
  uint64_t rng, k, dirty, w0, wall0;
  double t0, t1;
  int i, rc, ret = -1;

  /* The initial state: every key at version 0, committed. Not timed as part
  ** of the checkpoints. */
  t0 = now_sec();
  if (start_from_base(o, p->state) != 0) goto out;
  if (open_store(p->state, o->budget, &st, &s) != 0) goto out;
  snprintf(db_path, sizeof db_path, "%s", sl_store_path(st));
  for (k = o->base ? o->keys : 0; k < o->keys; k++) {
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
  f->populate_s = now_sec() - t0;
  if (o->build_base) {
    ret = 0;
    goto out;
  }

  sl_chkdir_config_init(&ccfg);
  rc = sl_chkdir_open(p->chk, &ccfg, &cd);
  if (rc != SL_OK) {
    fail(cd, rc, "sl_chkdir_open");
    goto out;
  }
  sl_snapshot_config_init(&scfg);
  scfg.level = o->level;

  rng = o->seed;
  dirty = (uint64_t)((double)o->keys * o->dirty + 0.5);
  if (dirty < 1) dirty = 1;
  wall0 = io_written();
  for (i = 0; i < o->intervals; i++) {
    const char *target;
    sl_snapshot *sn = NULL;
    sl_snapshot_info info;
    int64_t id = i + 1;
    uint64_t j;
    /* Change `dirty` keys (a key drawn twice counts once more). */
    for (j = 0; j < dirty; j++) {
      int64_t key = (int64_t)(splitmix64(&rng) % o->keys);
      if (put(st, s, key, ++expect[key]) != 0) goto out;
    }
    rc = sl_chkdir_target(cd, id, NULL, &target);
    if (rc != SL_OK) {
      fail(cd, rc, "sl_chkdir_target");
      goto out;
    }
    w0 = io_written();
    t0 = now_sec();
    rc = sl_snapshot_begin(st, target, id, SL_CHECKPOINT, &scfg, &sn);
    t1 = now_sec();
    if (rc != SL_OK) {
      fail(st, rc, "sl_snapshot_begin");
      goto out;
    }
    f->sync_ms[i] = (t1 - t0) * 1e3;
    /* The database file as it is on disk now (WAL included). */
    f->filebytes[i] = (double)file_size(db_path);
    {
      char wal[4400];
      snprintf(wal, sizeof wal, "%s-wal", db_path);
      f->filebytes[i] += (double)file_size(wal);
    }
    t0 = now_sec();
    rc = sl_snapshot_write(sn);
    t1 = now_sec();
    if (rc != SL_OK) {
      fail(sn, rc, "sl_snapshot_write");
      sl_snapshot_end(sn);
      goto out;
    }
    f->async_ms[i] = (t1 - t0) * 1e3;
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
    f->written[i] = (double)(io_written() - w0);
    f->publish_ms[i] = (t1 - t0) * 1e3;
    f->bytes[i] = (double)info.bytes;
    f->raw[i] = (double)info.raw_bytes;
    f->ratio[i] = info.raw_bytes ? (double)info.bytes / (double)info.raw_bytes : 0;
    f->peak[i] = (double)info.peak_disk_bytes;
    f->kept[i] = (double)tree_bytes(p->chk);
    f->incr[i] = (double)info.bytes; /* every snapshot is a whole one */
    f->streamed += info.streamed != 0;
  }
  f->written_all = io_written() - wall0;

  /* Restore the newest checkpoint into a fresh state directory and read
  ** every key back. */
  rc = sl_store_close(st);
  st = NULL;
  if (rc != SL_OK) {
    fprintf(stderr, "bench_checkpoint: sl_store_close failed: %s\n", sl_errstr(rc));
    goto out;
  }
  t0 = now_sec();
  rc = sl_chkdir_restore(cd, 0, NULL, p->restored, NULL, 0, &restored);
  f->restore_s = now_sec() - t0;
  if (rc != SL_OK) {
    fail(cd, rc, "sl_chkdir_restore");
    goto out;
  }
  if (restored != o->intervals) {
    fprintf(stderr, "bench_checkpoint: restored checkpoint %lld, expected %d\n",
            (long long)restored, o->intervals);
    goto out;
  }
  t0 = now_sec();
  if (verify(p->restored, expect, o->keys) != 0) goto out;
  f->read_s = now_sec() - t0;
  ret = 0;
out:
  sl_store_close(st);
  sl_chkdir_close(cd);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* RocksDB                                                                   */
/* ------------------------------------------------------------------------ */

static int rdb_fail(char *err, const char *what) {
  fprintf(stderr, "bench_checkpoint: rocksdb: %s failed: %s\n", what, err ? err : "?");
  rocksdb_free(err);
  return -1;
}

/* The value: n as 8 bytes, then the text. */
static int rdb_put(rocksdb_t *db, rocksdb_writeoptions_t *wo, int64_t k, int64_t n) {
  char key[8], val[56], *err = NULL;
  size_t len;
  be64((uint64_t)k, key);
  memcpy(val, &n, 8);
  len = 8 + text_of(val + 8, sizeof val - 8, k, n);
  rocksdb_put(db, wo, key, 8, val, len, &err);
  return err ? rdb_fail(err, "put") : 0;
}

/* A sorted list of the inodes of the files in a directory. */
typedef struct Inodes {
  ino_t *v;
  size_t n, cap;
} Inodes;

static int cmp_ino(const void *a, const void *b) {
  ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;
  return x < y ? -1 : x > y;
}

static void inodes_of(const char *dir, Inodes *in) {
  DIR *d = opendir(dir);
  struct dirent *de;
  in->n = 0;
  if (!d) return;
  while ((de = readdir(d)) != NULL) {
    char path[4352];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    if (in->n == in->cap) {
      size_t cap = in->cap ? in->cap * 2 : 64;
      ino_t *p = realloc(in->v, cap * sizeof *p);
      if (!p) break;
      in->v = p;
      in->cap = cap;
    }
    in->v[in->n++] = sb.st_ino;
  }
  closedir(d);
  qsort(in->v, in->n, sizeof *in->v, cmp_ino);
}

/* Bytes of the files of checkpoint directory dir that the live database
** does not hold (the disk the checkpoint costs on top of it); files whose
** inode is in *seen are not counted again, and are added to it. */
static uint64_t unshared_bytes(const char *dir, const Inodes *live, Inodes *seen) {
  DIR *d = opendir(dir);
  struct dirent *de;
  uint64_t n = 0;
  if (!d) return 0;
  while ((de = readdir(d)) != NULL) {
    char path[4352];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    if (bsearch(&sb.st_ino, live->v, live->n, sizeof *live->v, cmp_ino)) continue;
    if (seen) {
      size_t i;
      for (i = 0; i < seen->n && seen->v[i] != sb.st_ino; i++) {
      }
      if (i < seen->n) continue;
      if (seen->n == seen->cap) {
        size_t cap = seen->cap ? seen->cap * 2 : 64;
        ino_t *p = realloc(seen->v, cap * sizeof *p);
        if (!p) continue;
        seen->v = p;
        seen->cap = cap;
      }
      seen->v[seen->n++] = sb.st_ino;
    }
    n += (uint64_t)sb.st_size;
  }
  closedir(d);
  return n;
}

/* Bytes of the files of chk that are not (by name) in prev: what an
** incremental checkpoint would have to copy. */
static uint64_t new_file_bytes(const char *chk, const char *prev) {
  DIR *d = opendir(chk);
  struct dirent *de;
  uint64_t n = 0;
  if (!d) return 0;
  while ((de = readdir(d)) != NULL) {
    char path[4352], old[4352];
    struct stat sb;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", chk, de->d_name) >= sizeof path ||
        (size_t)snprintf(old, sizeof old, "%s/%s", prev ? prev : "", de->d_name) >= sizeof old ||
        lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
      continue;
    if (prev && access(old, F_OK) == 0) continue;
    n += (uint64_t)sb.st_size;
  }
  closedir(d);
  return n;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Streams every file of dir (sorted by name) through one zstd frame at
** `level`; *out gets the compressed bytes and *raw the input bytes. */
static int zstd_dir(const char *dir, int level, uint64_t *out, uint64_t *raw) {
  static char inbuf[1 << 20], outbuf[1 << 17];
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  DIR *d = opendir(dir);
  struct dirent *de;
  char **names = NULL;
  size_t n = 0, cap = 0, i;
  int ret = -1;
  *out = *raw = 0;
  if (!cctx || !d) goto done;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    if (n == cap) {
      char **p = realloc(names, (cap = cap ? cap * 2 : 32) * sizeof *p);
      if (!p) goto done;
      names = p;
    }
    if (!(names[n] = strdup(de->d_name))) goto done;
    n++;
  }
  qsort(names, n, sizeof *names, cmp_str);
  if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level))) goto done;
  for (i = 0; i <= n; i++) {
    FILE *f = NULL;
    size_t got;
    char path[4352];
    if (i < n) {
      if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path ||
          !(f = fopen(path, "rb")))
        goto done;
    }
    do {
      ZSTD_inBuffer in;
      ZSTD_EndDirective mode;
      size_t left;
      got = f ? fread(inbuf, 1, sizeof inbuf, f) : 0;
      *raw += got;
      in.src = inbuf;
      in.size = got;
      in.pos = 0;
      mode = f ? ZSTD_e_continue : ZSTD_e_end;
      do {
        ZSTD_outBuffer o = {outbuf, sizeof outbuf, 0};
        left = ZSTD_compressStream2(cctx, &o, &in, mode);
        if (ZSTD_isError(left)) {
          if (f) fclose(f);
          goto done;
        }
        *out += o.pos;
      } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
    } while (f && got > 0);
    if (f) fclose(f);
  }
  ret = 0;
done:
  for (i = 0; i < n; i++) free(names[i]);
  free(names);
  if (d) closedir(d);
  ZSTD_freeCCtx(cctx);
  if (ret) fprintf(stderr, "bench_checkpoint: cannot compress %s\n", dir);
  return ret;
}

static int run_rocksdb(const Opts *o, const Paths *p, int64_t *expect, Figures *f) {
  rocksdb_options_t *opt = rocksdb_options_create();
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  rocksdb_t *db = NULL;
  rocksdb_checkpoint_t *cp = NULL;
  rocksdb_iterator_t *it = NULL;
  Inodes live = {NULL, 0, 0}, seen = {NULL, 0, 0};
  char *err = NULL, path[4352], prev[4352];
  uint64_t rng, k, dirty, w0, wall0, rows = 0, bad = 0;
  double t0, t1;
  int i, ret = -1;

  rocksdb_options_set_create_if_missing(opt, 1);
  rocksdb_writeoptions_disable_WAL(wo, 1);
  rocksdb_flushoptions_set_wait(fo, 1);
  /* The initial state, flushed and compacted (or a copy of it): not timed
  ** with the checkpoints. */
  t0 = now_sec();
  if (start_from_base(o, p->state) != 0) goto out;
  db = rocksdb_open(opt, p->state, &err);
  if (err) {
    rdb_fail(err, "open");
    goto out;
  }
  if (!o->base) {
    for (k = 0; k < o->keys; k++)
      if (rdb_put(db, wo, (int64_t)k, 0) != 0) goto out;
    rocksdb_flush(db, fo, &err);
    if (err) {
      rdb_fail(err, "flush");
      goto out;
    }
    rocksdb_compact_range(db, NULL, 0, NULL, 0);
  }
  f->populate_s = now_sec() - t0;
  if (o->build_base) {
    ret = 0;
    goto out;
  }
  cp = rocksdb_checkpoint_object_create(db, &err);
  if (err) {
    rdb_fail(err, "checkpoint_object_create");
    goto out;
  }
  if (mkdir(p->chk, 0755) != 0) {
    fprintf(stderr, "bench_checkpoint: cannot create %s\n", p->chk);
    goto out;
  }

  rng = o->seed;
  dirty = (uint64_t)((double)o->keys * o->dirty + 0.5);
  if (dirty < 1) dirty = 1;
  wall0 = io_written();
  prev[0] = 0;
  for (i = 0; i < o->intervals; i++) {
    uint64_t j, zbytes, zraw, x;
    for (j = 0; j < dirty; j++) {
      int64_t key = (int64_t)(splitmix64(&rng) % o->keys);
      if (rdb_put(db, wo, key, ++expect[key]) != 0) goto out;
    }
    /* The previous checkpoint may have grown apart from the live database
    ** by compactions since: that is disk it held during this interval. */
    if (i > 0) {
      inodes_of(p->state, &live);
      x = unshared_bytes(prev, &live, NULL);
      if ((double)x > f->peak[i - 1]) f->peak[i - 1] = (double)x;
    }
    snprintf(path, sizeof path, "%s/chk-%d", p->chk, i + 1);
    w0 = io_written();
    t0 = now_sec();
    rocksdb_flush(db, fo, &err);
    if (!err) rocksdb_checkpoint_create(cp, path, 0, &err);
    t1 = now_sec();
    if (err) {
      rdb_fail(err, "flush + checkpoint_create");
      goto out;
    }
    f->sync_ms[i] = (t1 - t0) * 1e3;
    f->written[i] = (double)(io_written() - w0);
    f->filebytes[i] = (double)tree_bytes(p->state);
    t0 = now_sec();
    if (zstd_dir(path, o->level, &zbytes, &zraw) != 0) goto out;
    f->async_ms[i] = (now_sec() - t0) * 1e3;
    f->bytes[i] = (double)zbytes;
    f->raw[i] = (double)zraw;
    f->ratio[i] = zraw ? (double)zbytes / (double)zraw : 0;
    f->incr[i] = (double)new_file_bytes(path, prev[0] ? prev : NULL);
    inodes_of(p->state, &live);
    f->peak[i] = (double)unshared_bytes(path, &live, NULL);
    /* Keep two, like the statelite checkpoint directory. */
    if (i >= 2) {
      char old[4352];
      snprintf(old, sizeof old, "%s/chk-%d", p->chk, i - 1);
      if (rm_tree(old) != 0) {
        fprintf(stderr, "bench_checkpoint: cannot remove %s\n", old);
        goto out;
      }
    }
    seen.n = 0;
    f->kept[i] = (double)(unshared_bytes(path, &live, &seen) +
                          (prev[0] ? unshared_bytes(prev, &live, &seen) : 0));
    f->publish_ms[i] = 0;
    f->streamed++;
    snprintf(prev, sizeof prev, "%s", path);
  }
  f->written_all = io_written() - wall0;
  rocksdb_checkpoint_object_destroy(cp);
  cp = NULL;
  rocksdb_close(db);
  db = NULL;

  /* Restore: open the newest checkpoint, then read every key back. */
  t0 = now_sec();
  rocksdb_options_set_create_if_missing(opt, 0);
  db = rocksdb_open(opt, prev, &err);
  f->restore_s = now_sec() - t0;
  if (err) {
    rdb_fail(err, "open of the checkpoint");
    goto out;
  }
  t0 = now_sec();
  it = rocksdb_create_iterator(db, ro);
  for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl, len;
    const char *kp = rocksdb_iter_key(it, &kl), *vp = rocksdb_iter_value(it, &vl);
    char buf[48];
    int64_t key, n;
    rows++;
    if (kl != 8 || vl < 8 || (key = unbe64(kp)) < 0 || (uint64_t)key >= o->keys) {
      bad++;
      continue;
    }
    memcpy(&n, vp, 8);
    len = text_of(buf, sizeof buf, key, expect[key]);
    if (n != expect[key] || vl - 8 != len || memcmp(vp + 8, buf, len) != 0)
      if (bad++ < 5) fprintf(stderr, "bench_checkpoint: key %lld restored wrong\n",
                             (long long)key);
  }
  rocksdb_iter_get_error(it, &err);
  f->read_s = now_sec() - t0;
  if (err) {
    rdb_fail(err, "iterate");
    goto out;
  }
  if (bad || rows != o->keys) {
    fprintf(stderr, "bench_checkpoint: WRONG RESTORE: %llu rows (expected %llu), %llu bad\n",
            (unsigned long long)rows, (unsigned long long)o->keys, (unsigned long long)bad);
    goto out;
  }
  ret = 0;
out:
  if (it) rocksdb_iter_destroy(it);
  if (cp) rocksdb_checkpoint_object_destroy(cp);
  if (db) rocksdb_close(db);
  rocksdb_flushoptions_destroy(fo);
  rocksdb_readoptions_destroy(ro);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_options_destroy(opt);
  free(live.v);
  free(seen.v);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  Opts o;
  Paths p;
  Figures f;
  int64_t *expect = NULL;
  double **arrays[11];
  int i, ok = 0, rc;
  uint64_t dirty;

  if (parse_opts(argc, argv, &o) != 0) return 2;
  if ((size_t)snprintf(p.root, sizeof p.root, "%s/bench_checkpoint-XXXXXX", o.tmp) >=
          sizeof p.root ||
      !mkdtemp(p.root)) {
    fprintf(stderr, "bench_checkpoint: cannot create a directory under %s\n", o.tmp);
    return 2;
  }
  if (o.build_base) {
    /* The store is filled straight into the new directory. */
    if ((size_t)snprintf(p.state, sizeof p.state, "%s", o.build_base) >= sizeof p.state ||
        (access(o.build_base, F_OK) == 0 && (errno = EEXIST))) {
      fprintf(stderr, "bench_checkpoint: %s exists already\n", o.build_base);
      rm_tree(p.root);
      return 2;
    }
    o.base = NULL;
  } else {
    snprintf(p.state, sizeof p.state, "%s/state", p.root);
  }
  snprintf(p.chk, sizeof p.chk, "%s/chk", p.root);
  snprintf(p.restored, sizeof p.restored, "%s/restored", p.root);

  memset(&f, 0, sizeof f);
  arrays[0] = &f.sync_ms;
  arrays[1] = &f.async_ms;
  arrays[2] = &f.ratio;
  arrays[3] = &f.bytes;
  arrays[4] = &f.raw;
  arrays[5] = &f.peak;
  arrays[6] = &f.publish_ms;
  arrays[7] = &f.filebytes;
  arrays[8] = &f.written;
  arrays[9] = &f.kept;
  arrays[10] = &f.incr;
  expect = calloc((size_t)o.keys, sizeof *expect);
  rc = expect != NULL;
  for (i = 0; i < 11; i++)
    if (!(*arrays[i] = calloc((size_t)o.intervals, sizeof(double)))) rc = 0;
  if (!rc) {
    fprintf(stderr, "bench_checkpoint: out of memory\n");
    goto out;
  }

  rc = strcmp(o.engine, "rocksdb") == 0 ? run_rocksdb(&o, &p, expect, &f)
                                         : run_statelite(&o, &p, expect, &f);
  if (rc != 0) {
    if (o.build_base) rm_tree(o.build_base);
    goto out;
  }
  ok = 1;
  if (o.build_base) {
    printf("engine=%s base=%s keys=%llu seconds=%.3f\n", o.engine, o.build_base,
           (unsigned long long)o.keys, f.populate_s);
    goto out;
  }
  dirty = (uint64_t)((double)o.keys * o.dirty + 0.5);
  {
    int n = o.intervals;
    double p50, p99, pmax, peak_med, peak_max;
    qsort(f.sync_ms, (size_t)n, sizeof *f.sync_ms, cmp_double);
    p50 = pct(f.sync_ms, n, 50);
    p99 = pct(f.sync_ms, n, 99);
    pmax = f.sync_ms[n - 1];
    peak_med = median(f.peak, n); /* sorts */
    peak_max = f.peak[n - 1];
    printf("engine=%s keys=%llu intervals=%d dirty_keys=%llu level=%d budget=%zu base=%d "
           "populate_seconds=%.3f sync_p50_ms=%.3f sync_p99_ms=%.3f sync_max_ms=%.3f "
           "async_median_ms=%.3f publish_median_ms=%.3f bytes_median=%.0f "
           "raw_bytes_median=%.0f file_bytes_median=%.0f ratio_median=%.4f "
           "peak_disk_median=%.0f peak_disk_max=%.0f kept_disk_median=%.0f "
           "written_median=%.0f written_per_interval=%.0f incremental_median=%.0f "
           "streamed=%d/%d restore_seconds=%.4f read_seconds=%.4f restore_total_seconds=%.4f "
           "verified=ok\n",
           o.engine, (unsigned long long)o.keys, n, (unsigned long long)(dirty ? dirty : 1),
           o.level, o.budget, o.base != NULL, f.populate_s, p50, p99, pmax, median(f.async_ms, n),
           median(f.publish_ms, n), median(f.bytes, n), median(f.raw, n),
           median(f.filebytes, n), median(f.ratio, n), peak_med, peak_max, median(f.kept, n), median(f.written, n), (double)f.written_all / n,
           median(f.incr, n), f.streamed, n, f.restore_s, f.read_s, f.restore_s + f.read_s);
  }

out:
  if (rm_tree(p.root) != 0)
    fprintf(stderr, "bench_checkpoint: could not remove the scratch directory %s\n", p.root);
  free(expect);
  for (i = 0; i < 11; i++) free(*arrays[i]);
  return ok ? 0 : 1;
}
