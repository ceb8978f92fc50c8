/*
** bench_value.c — the benchmark "ValueState get + update per record": a stream
** of N records over K integer keys; for each record the operator sets the key,
** reads the key's counter and writes it back plus one. Every checkpoint
** interval (100,000 records) and at the end the state is committed. The same
** workload runs on several engines, chosen by the first argument:
**
**   statelite          statelite with its write-back cache (--budget BYTES)
**   statelite-nocache  statelite with a cache budget of 0
**   hash               a plain in-memory open-addressing hash table (the ceiling)
**   sqlite             a hand-written SQLite table: one prepared SELECT and one
**                      INSERT OR REPLACE per access, a transaction per interval
**   rocksdb            RocksDB through its C API, WAL disabled, default options
**
** The keys of each interval are generated before the clock starts, so the
** figures measure the engine and not the random number generator. At the end
** the program reads every counter back through the engine and checks it
** against the counts it expects from the key stream; a mismatch exits 1.
** It prints one line of key=value results. Run with --help for the options.
*/
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>
#include <sqlite3.h>

#include "statelite.h"

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct Opts {
  const char *engine;
  uint64_t records;
  uint64_t keys;
  uint64_t interval;     /* records per checkpoint */
  uint64_t seed;
  double zipf;           /* 0: uniform keys */
  size_t budget;         /* statelite cache budget */
  size_t block_cache;    /* RocksDB block cache; 0: RocksDB's default */
  int rocksdb_flush;     /* flush the memtable at every checkpoint */
  const char *tmp;       /* parent of the scratch directory */
} Opts;

static void usage(FILE *f) {
  fputs(
      "usage: bench_value ENGINE [options]\n"
      "  ENGINE             statelite | statelite-nocache | hash | sqlite | rocksdb\n"
      "  --records N        records to process (default 2000000)\n"
      "  --keys K           distinct keys drawn from (default 100000)\n"
      "  --zipf [S]         Zipf-distributed keys with exponent S (default 1.1);\n"
      "                     without it keys are uniform\n"
      "  --seed X           seed of the key stream (default 42)\n"
      "  --interval N       records per checkpoint/commit (default 100000)\n"
      "  --budget BYTES     statelite cache budget (default 64M; suffixes K M G)\n"
      "  --block-cache BYTES  RocksDB LRU block cache (default: RocksDB's own)\n"
      "  --no-flush         rocksdb: do not flush the memtable at a checkpoint\n"
      "  --dir DIR          where the scratch directory goes (default $TMPDIR or /tmp)\n"
      "  --versions         print the library versions and exit\n",
      f);
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v;
  uint64_t mul = 1;
  if (!s || !*s || *s == '-') return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  if (*end == 'K' || *end == 'k') mul = 1024, end++;
  else if (*end == 'M' || *end == 'm') mul = 1024 * 1024, end++;
  else if (*end == 'G' || *end == 'g') mul = 1024ull * 1024 * 1024, end++;
  if (*end) return -1;
  if (v > UINT64_MAX / mul) return -1;
  *out = (uint64_t)v * mul;
  return 0;
}

static int parse_opts(int argc, char **argv, Opts *o) {
  int i;
  memset(o, 0, sizeof *o);
  o->records = 2000000;
  o->keys = 100000;
  o->interval = 100000;
  o->seed = 42;
  o->budget = (size_t)64 * 1024 * 1024;
  o->rocksdb_flush = 1;
  o->tmp = getenv("TMPDIR");
  if (!o->tmp || !*o->tmp) o->tmp = "/tmp";
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--versions") == 0) {
      printf("statelite=%s sqlite=%s\n", sl_libversion(), sqlite3_libversion());
      exit(0);
    } else if (strcmp(a, "--no-flush") == 0) {
      o->rocksdb_flush = 0;
    } else if (strcmp(a, "--zipf") == 0) {
      char *end;
      double s = v ? strtod(v, &end) : 0;
      if (v && end != v && *end == 0) {
        if (!(s > 0 && s < 100)) {
          fprintf(stderr, "bench_value: --zipf wants an exponent above 0, not %s\n", v);
          return -1;
        }
        o->zipf = s;
        i++;
      } else {
        o->zipf = 1.1;
      }
    } else if (a[0] == '-' && a[1] == '-') {
      if (!v) {
        fprintf(stderr, "bench_value: %s needs a value\n", a);
        return -1;
      }
      if (strcmp(a, "--dir") == 0) {
        o->tmp = v;
        i++;
        continue;
      }
      if (parse_u64(v, &n) != 0) {
        fprintf(stderr, "bench_value: %s wants a non-negative integer, not '%s'\n", a, v);
        return -1;
      }
      i++;
      if (strcmp(a, "--records") == 0) o->records = n;
      else if (strcmp(a, "--keys") == 0) o->keys = n;
      else if (strcmp(a, "--seed") == 0) o->seed = n;
      else if (strcmp(a, "--interval") == 0) o->interval = n;
      else if (strcmp(a, "--budget") == 0) o->budget = (size_t)n;
      else if (strcmp(a, "--block-cache") == 0) o->block_cache = (size_t)n;
      else {
        fprintf(stderr, "bench_value: unknown option %s (see --help)\n", a);
        return -1;
      }
    } else if (!o->engine) {
      o->engine = a;
    } else {
      fprintf(stderr, "bench_value: one engine only; '%s' is extra\n", a);
      return -1;
    }
  }
  if (!o->engine) {
    usage(stderr);
    return -1;
  }
  if (o->keys < 1 || o->keys > ((uint64_t)1 << 31)) {
    fprintf(stderr, "bench_value: --keys must be 1..2^31\n");
    return -1;
  }
  if (o->interval < 1) {
    fprintf(stderr, "bench_value: --interval must be at least 1\n");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The key stream: splitmix64, uniform or Zipf                               */
/* ------------------------------------------------------------------------ */

typedef struct KeyGen {
  uint64_t state;
  uint64_t keys;
  double *cdf;           /* Zipf: cdf[r] = P(rank <= r); NULL for uniform */
  uint64_t mult;         /* Zipf: rank -> key bijection, key = rank*mult mod keys */
} KeyGen;

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static int keygen_init(KeyGen *g, const Opts *o) {
  memset(g, 0, sizeof *g);
  g->state = o->seed;
  g->keys = o->keys;
  if (o->zipf > 0) {
    double sum = 0;
    uint64_t r;
    g->cdf = malloc(sizeof *g->cdf * o->keys);
    if (!g->cdf) {
      fprintf(stderr, "bench_value: out of memory for the Zipf table\n");
      return -1;
    }
    for (r = 0; r < o->keys; r++) {
      sum += 1.0 / pow((double)(r + 1), o->zipf);
      g->cdf[r] = sum;
    }
    for (r = 0; r < o->keys; r++) g->cdf[r] /= sum;
    g->cdf[o->keys - 1] = 1.0;
    /* Scatter the hot ranks over the key space so that no engine gains
    ** from hot keys being neighbours. */
    g->mult = 1000003;
    while (gcd_u64(g->mult, o->keys) != 1) g->mult += 2;
    g->mult %= o->keys;
    if (g->mult == 0) g->mult = 1;
  }
  return 0;
}

static void keygen_reset(KeyGen *g, uint64_t seed) { g->state = seed; }

static int64_t keygen_next(KeyGen *g) {
  uint64_t x = splitmix64(&g->state);
  if (!g->cdf) return (int64_t)(x % g->keys);
  {
    double u = (double)(x >> 11) * (1.0 / 9007199254740992.0);
    uint64_t lo = 0, hi = g->keys - 1;
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      if (g->cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return (int64_t)((lo * g->mult) % g->keys);
  }
}

/* ------------------------------------------------------------------------ */
/* Engines                                                                   */
/* ------------------------------------------------------------------------ */

/* Reading back: the engine calls visit(ctx, key, count) for every row. */
typedef struct Check {
  const int64_t *expect; /* expected count per key */
  uint64_t keys;
  unsigned char *seen;
  uint64_t rows, sum, bad;
} Check;

static void check_visit(Check *c, int64_t key, int64_t count) {
  c->rows++;
  c->sum += (uint64_t)count;
  if (key < 0 || (uint64_t)key >= c->keys) {
    if (c->bad++ < 5) fprintf(stderr, "bench_value: unexpected key %lld\n", (long long)key);
    return;
  }
  if (c->seen[key]++) {
    if (c->bad++ < 5) fprintf(stderr, "bench_value: key %lld read twice\n", (long long)key);
  } else if (c->expect[key] != count) {
    if (c->bad++ < 5)
      fprintf(stderr, "bench_value: key %lld has count %lld, expected %lld\n", (long long)key,
              (long long)count, (long long)c->expect[key]);
  }
}

typedef struct Bench {
  const Opts *o;
  char dir[4096];
  /* statelite */
  sl_store *st;
  sl_state *s;
  /* hash */
  struct HSlot *slots;
  size_t cap, used;
  /* sqlite */
  sqlite3 *db;
  sqlite3_stmt *q_get, *q_put;
  int in_txn;
  /* rocksdb */
  rocksdb_t *rdb;
  rocksdb_options_t *ropt;
  rocksdb_block_based_table_options_t *rtopt;
  rocksdb_cache_t *rcache;
  rocksdb_writeoptions_t *rwo;
  rocksdb_readoptions_t *rro;
  rocksdb_flushoptions_t *rfo;
} Bench;

typedef struct Engine {
  const char *name;
  int (*open)(Bench *b);
  int (*process)(Bench *b, const int64_t *keys, size_t n); /* get + update each */
  int (*commit)(Bench *b);
  int (*scan)(Bench *b, Check *c);
  void (*close)(Bench *b);
} Engine;

/* --- statelite ----------------------------------------------------------- */

static int lite_fail(Bench *b, const void *h, int rc, const char *what) {
  (void)b;
  fprintf(stderr, "bench_value: %s failed: %s (%s)\n", what, sl_errmsg(h), sl_errstr(rc));
  return -1;
}

static int lite_open_budget(Bench *b, size_t budget) {
  sl_config cfg;
  sl_column key, val;
  sl_state_desc d;
  int rc;
  sl_config_init(&cfg);
  cfg.memory_budget = budget;
  rc = sl_store_open(b->dir, "bench", 0, 1, &cfg, &b->st);
  if (rc != SL_OK) return lite_fail(b, b->st, rc, "sl_store_open");
  memset(&key, 0, sizeof key);
  memset(&val, 0, sizeof val);
  key.name = "k";
  key.type = SL_INTEGER;
  val.name = "count";
  val.type = SL_INTEGER;
  memset(&d, 0, sizeof d);
  d.name = "counts";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 1;
  d.value = &val;
  rc = sl_state_register(b->st, &d, &b->s);
  if (rc != SL_OK) return lite_fail(b, b->st, rc, "sl_state_register");
  return 0;
}

static int lite_open(Bench *b) { return lite_open_budget(b, b->o->budget); }
static int lite_open_nocache(Bench *b) { return lite_open_budget(b, 0); }

static int lite_process(Bench *b, const int64_t *keys, size_t n) {
  sl_store *st = b->st;
  sl_state *s = b->s;
  size_t i;
  for (i = 0; i < n; i++) {
    sl_value k = sl_int(keys[i]), v;
    const sl_value *cur;
    int64_t count = 0;
    int rc = sl_store_set_key(st, &k, 1, NULL);
    if (rc != SL_OK) return lite_fail(b, st, rc, "sl_store_set_key");
    rc = sl_value_get(s, &cur);
    if (rc == SL_OK) count = cur[0].v.i;
    else if (rc != SL_NOTFOUND) return lite_fail(b, s, rc, "sl_value_get");
    v = sl_int(count + 1);
    rc = sl_value_update(s, &v);
    if (rc != SL_OK) return lite_fail(b, s, rc, "sl_value_update");
  }
  return 0;
}

static int lite_commit(Bench *b) {
  int rc = sl_store_commit(b->st);
  return rc == SL_OK ? 0 : lite_fail(b, b->st, rc, "sl_store_commit");
}

static int lite_scan(Bench *b, Check *c) {
  sl_iter *it = NULL;
  int rc = sl_state_scan(b->s, &it);
  if (rc != SL_OK) return lite_fail(b, b->s, rc, "sl_state_scan");
  while ((rc = sl_iter_next(it)) == SL_ROW) {
    const sl_value *k, *v;
    int nk, nv;
    if (sl_iter_key(it, &k, &nk, NULL) != SL_OK || sl_iter_value(it, &v, &nv) != SL_OK ||
        nk != 1 || nv != 1 || k[0].type != SL_INTEGER || v[0].type != SL_INTEGER) {
      sl_iter_close(it);
      fprintf(stderr, "bench_value: sl_state_scan gave a malformed row\n");
      return -1;
    }
    check_visit(c, k[0].v.i, v[0].v.i);
  }
  if (rc != SL_DONE) {
    lite_fail(b, it, rc, "sl_iter_next");
    sl_iter_close(it);
    return -1;
  }
  sl_iter_close(it);
  return 0;
}

static void lite_close(Bench *b) {
  sl_store_close(b->st);
  b->st = NULL;
}

/* --- hash: open addressing, linear probing, int64 -> int64 --------------- */

struct HSlot {
  int64_t k;
  int64_t v;
};

#define HASH_EMPTY INT64_MIN

static uint64_t hash_mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static int hash_alloc(Bench *b, size_t cap) {
  size_t i;
  b->slots = malloc(sizeof *b->slots * cap);
  if (!b->slots) {
    fprintf(stderr, "bench_value: out of memory for the hash table\n");
    return -1;
  }
  for (i = 0; i < cap; i++) b->slots[i].k = HASH_EMPTY;
  b->cap = cap;
  b->used = 0;
  return 0;
}

static int hash_open(Bench *b) { return hash_alloc(b, 64); }

static int hash_grow(Bench *b) {
  struct HSlot *old = b->slots;
  size_t oldcap = b->cap, i;
  if (hash_alloc(b, oldcap * 2) != 0) {
    b->slots = old;
    b->cap = oldcap;
    return -1;
  }
  for (i = 0; i < oldcap; i++) {
    if (old[i].k != HASH_EMPTY) {
      size_t j = hash_mix((uint64_t)old[i].k) & (b->cap - 1);
      while (b->slots[j].k != HASH_EMPTY) j = (j + 1) & (b->cap - 1);
      b->slots[j] = old[i];
      b->used++;
    }
  }
  free(old);
  return 0;
}

/* 1 and *v if found, else 0. */
static int hash_get(const Bench *b, int64_t k, int64_t *v) {
  size_t j = hash_mix((uint64_t)k) & (b->cap - 1);
  for (;;) {
    if (b->slots[j].k == k) {
      *v = b->slots[j].v;
      return 1;
    }
    if (b->slots[j].k == HASH_EMPTY) return 0;
    j = (j + 1) & (b->cap - 1);
  }
}

static int hash_put(Bench *b, int64_t k, int64_t v) {
  size_t j;
  if ((b->used + 1) * 2 > b->cap && hash_grow(b) != 0) return -1;
  j = hash_mix((uint64_t)k) & (b->cap - 1);
  while (b->slots[j].k != k) {
    if (b->slots[j].k == HASH_EMPTY) {
      b->slots[j].k = k;
      b->used++;
      break;
    }
    j = (j + 1) & (b->cap - 1);
  }
  b->slots[j].v = v;
  return 0;
}

static int hash_process(Bench *b, const int64_t *keys, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    int64_t count = 0;
    hash_get(b, keys[i], &count);
    if (hash_put(b, keys[i], count + 1) != 0) return -1;
  }
  return 0;
}

static int hash_commit(Bench *b) {
  (void)b;
  return 0;
}

static int hash_scan(Bench *b, Check *c) {
  size_t i;
  for (i = 0; i < b->cap; i++)
    if (b->slots[i].k != HASH_EMPTY) check_visit(c, b->slots[i].k, b->slots[i].v);
  return 0;
}

static void hash_close(Bench *b) {
  free(b->slots);
  b->slots = NULL;
}

/* --- sqlite: a hand-written table ---------------------------------------- */

static int sqlt_fail(Bench *b, const char *what) {
  fprintf(stderr, "bench_value: sqlite: %s failed: %s\n", what,
          b->db ? sqlite3_errmsg(b->db) : "cannot allocate");
  return -1;
}

static int sqlt_exec(Bench *b, const char *sql) {
  return sqlite3_exec(b->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sqlt_fail(b, sql);
}

static int sqlt_open(Bench *b) {
  char path[4200];
  snprintf(path, sizeof path, "%s/plain.db", b->dir);
  if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK)
    return sqlt_fail(b, "open");
  if (sqlt_exec(b, "PRAGMA journal_mode=WAL") || sqlt_exec(b, "PRAGMA synchronous=OFF") ||
      sqlt_exec(b, "CREATE TABLE counts(k INTEGER PRIMARY KEY, count INTEGER NOT NULL)"))
    return -1;
  if (sqlite3_prepare_v3(b->db, "SELECT count FROM counts WHERE k = ?1", -1,
                         SQLITE_PREPARE_PERSISTENT, &b->q_get, NULL) != SQLITE_OK)
    return sqlt_fail(b, "prepare SELECT");
  if (sqlite3_prepare_v3(b->db, "INSERT OR REPLACE INTO counts(k, count) VALUES(?1, ?2)", -1,
                         SQLITE_PREPARE_PERSISTENT, &b->q_put, NULL) != SQLITE_OK)
    return sqlt_fail(b, "prepare INSERT");
  return 0;
}

static int sqlt_process(Bench *b, const int64_t *keys, size_t n) {
  sqlite3_stmt *get = b->q_get, *put = b->q_put;
  size_t i;
  if (!b->in_txn) {
    if (sqlt_exec(b, "BEGIN")) return -1;
    b->in_txn = 1;
  }
  for (i = 0; i < n; i++) {
    int64_t count = 0;
    int rc;
    sqlite3_bind_int64(get, 1, keys[i]);
    rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) count = sqlite3_column_int64(get, 0);
    else if (rc != SQLITE_DONE) return sqlt_fail(b, "SELECT");
    sqlite3_reset(get);
    sqlite3_bind_int64(put, 1, keys[i]);
    sqlite3_bind_int64(put, 2, count + 1);
    if (sqlite3_step(put) != SQLITE_DONE) return sqlt_fail(b, "INSERT OR REPLACE");
    sqlite3_reset(put);
  }
  return 0;
}

static int sqlt_commit(Bench *b) {
  if (!b->in_txn) return 0;
  b->in_txn = 0;
  return sqlt_exec(b, "COMMIT");
}

static int sqlt_scan(Bench *b, Check *c) {
  sqlite3_stmt *q;
  int rc;
  if (sqlite3_prepare_v2(b->db, "SELECT k, count FROM counts", -1, &q, NULL) != SQLITE_OK)
    return sqlt_fail(b, "prepare scan");
  while ((rc = sqlite3_step(q)) == SQLITE_ROW)
    check_visit(c, sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1));
  sqlite3_finalize(q);
  return rc == SQLITE_DONE ? 0 : sqlt_fail(b, "scan");
}

static void sqlt_close(Bench *b) {
  sqlite3_finalize(b->q_get);
  sqlite3_finalize(b->q_put);
  sqlite3_close(b->db);
  b->db = NULL;
}

/* --- rocksdb ------------------------------------------------------------- */

static int rdb_fail(char *err, const char *what) {
  fprintf(stderr, "bench_value: rocksdb: %s failed: %s\n", what, err ? err : "?");
  rocksdb_free(err);
  return -1;
}

static void rdb_key(int64_t k, char out[8]) {
  uint64_t u = (uint64_t)k;
  int i;
  for (i = 7; i >= 0; i--) {
    out[i] = (char)(u & 0xff);
    u >>= 8;
  }
}

static int64_t rdb_unkey(const char *p) {
  uint64_t u = 0;
  int i;
  for (i = 0; i < 8; i++) u = (u << 8) | (unsigned char)p[i];
  return (int64_t)u;
}

static int rdb_open(Bench *b) {
  char path[4200];
  char *err = NULL;
  snprintf(path, sizeof path, "%s/rocksdb", b->dir);
  b->ropt = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(b->ropt, 1);
  if (b->o->block_cache) {
    b->rcache = rocksdb_cache_create_lru(b->o->block_cache);
    b->rtopt = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(b->rtopt, b->rcache);
    rocksdb_options_set_block_based_table_factory(b->ropt, b->rtopt);
  }
  b->rdb = rocksdb_open(b->ropt, path, &err);
  if (err) return rdb_fail(err, "open");
  b->rwo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_disable_WAL(b->rwo, 1);
  b->rro = rocksdb_readoptions_create();
  b->rfo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(b->rfo, 1);
  return 0;
}

static int rdb_process(Bench *b, const int64_t *keys, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    char k[8], *val, *err = NULL;
    size_t vlen = 0;
    int64_t count = 0;
    rdb_key(keys[i], k);
    val = rocksdb_get(b->rdb, b->rro, k, sizeof k, &vlen, &err);
    if (err) return rdb_fail(err, "get");
    if (val) {
      if (vlen != sizeof count) {
        rocksdb_free(val);
        fprintf(stderr, "bench_value: rocksdb: a value of %zu bytes\n", vlen);
        return -1;
      }
      memcpy(&count, val, sizeof count);
      rocksdb_free(val);
    }
    count++;
    rocksdb_put(b->rdb, b->rwo, k, sizeof k, (const char *)&count, sizeof count, &err);
    if (err) return rdb_fail(err, "put");
  }
  return 0;
}

static int rdb_commit(Bench *b) {
  char *err = NULL;
  if (!b->o->rocksdb_flush) return 0;
  rocksdb_flush(b->rdb, b->rfo, &err);
  return err ? rdb_fail(err, "flush") : 0;
}

static int rdb_scan(Bench *b, Check *c) {
  rocksdb_iterator_t *it = rocksdb_create_iterator(b->rdb, b->rro);
  char *err = NULL;
  for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl;
    const char *k = rocksdb_iter_key(it, &kl);
    const char *v = rocksdb_iter_value(it, &vl);
    int64_t count;
    if (kl != 8 || vl != 8) {
      rocksdb_iter_destroy(it);
      fprintf(stderr, "bench_value: rocksdb: a row of %zu+%zu bytes\n", kl, vl);
      return -1;
    }
    memcpy(&count, v, sizeof count);
    check_visit(c, rdb_unkey(k), count);
  }
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  return err ? rdb_fail(err, "iterate") : 0;
}

static void rdb_close(Bench *b) {
  if (b->rdb) rocksdb_close(b->rdb);
  if (b->rfo) rocksdb_flushoptions_destroy(b->rfo);
  if (b->rro) rocksdb_readoptions_destroy(b->rro);
  if (b->rwo) rocksdb_writeoptions_destroy(b->rwo);
  if (b->ropt) rocksdb_options_destroy(b->ropt);
  if (b->rtopt) rocksdb_block_based_options_destroy(b->rtopt);
  if (b->rcache) rocksdb_cache_destroy(b->rcache);
  b->rdb = NULL;
}

static const Engine engines[] = {
    {"statelite", lite_open, lite_process, lite_commit, lite_scan, lite_close},
    {"statelite-nocache", lite_open_nocache, lite_process, lite_commit, lite_scan, lite_close},
    {"hash", hash_open, hash_process, hash_commit, hash_scan, hash_close},
    {"sqlite", sqlt_open, sqlt_process, sqlt_commit, sqlt_scan, sqlt_close},
    {"rocksdb", rdb_open, rdb_process, rdb_commit, rdb_scan, rdb_close},
};

/* ------------------------------------------------------------------------ */
/* Scratch directory, clock, memory                                          */
/* ------------------------------------------------------------------------ */

/* Removes a directory tree; returns 0 or -1. */
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

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return ru.ru_maxrss; /* kilobytes on Linux */
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  Opts o;
  const Engine *e = NULL;
  Bench b;
  KeyGen g;
  Check c;
  int64_t *keys = NULL, *expect = NULL;
  uint64_t done = 0, distinct = 0, k;
  double secs = 0, commit_secs = 0, t0, t1, t2;
  long rss;
  size_t i;
  int ok = 0;
  char dist[32];

  if (parse_opts(argc, argv, &o) != 0) return 2;
  for (i = 0; i < sizeof engines / sizeof engines[0]; i++)
    if (strcmp(engines[i].name, o.engine) == 0) e = &engines[i];
  if (!e) {
    fprintf(stderr, "bench_value: unknown engine '%s' (statelite, statelite-nocache, hash, "
                    "sqlite, rocksdb)\n", o.engine);
    return 2;
  }
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  b.o = &o;
  if (o.zipf > 0) snprintf(dist, sizeof dist, "zipf%g", o.zipf);
  else snprintf(dist, sizeof dist, "uniform");

  if ((size_t)snprintf(b.dir, sizeof b.dir, "%s/bench_value-XXXXXX", o.tmp) >= sizeof b.dir) {
    fprintf(stderr, "bench_value: the directory name is too long\n");
    return 2;
  }
  if (!mkdtemp(b.dir)) {
    fprintf(stderr, "bench_value: cannot create a directory under %s: %s\n", o.tmp,
            strerror(errno));
    return 2;
  }
  if (keygen_init(&g, &o) != 0) goto out;
  keys = malloc(sizeof *keys * (size_t)(o.interval < o.records ? o.interval : o.records + 1));
  if (!keys) {
    fprintf(stderr, "bench_value: out of memory for the key buffer\n");
    goto out;
  }

  if (e->open(&b) != 0) goto out;

  /* The timed part: per interval, generate its keys, then process and commit. */
  while (done < o.records) {
    size_t n = (size_t)(o.records - done < o.interval ? o.records - done : o.interval);
    for (i = 0; i < n; i++) keys[i] = keygen_next(&g);
    t0 = now_sec();
    if (e->process(&b, keys, n) != 0) goto out;
    t1 = now_sec();
    if (e->commit(&b) != 0) goto out;
    t2 = now_sec();
    secs += t2 - t0;
    commit_secs += t2 - t1;
    done += n;
  }
  rss = peak_rss_kb();

  /* Check: every counter read back equals its count in the key stream. */
  expect = calloc((size_t)o.keys, sizeof *expect);
  c.seen = calloc((size_t)o.keys, 1);
  if (!expect || !c.seen) {
    fprintf(stderr, "bench_value: out of memory for the check\n");
    goto out;
  }
  keygen_reset(&g, o.seed);
  for (k = 0; k < o.records; k++) expect[keygen_next(&g)]++;
  for (k = 0; k < o.keys; k++) distinct += expect[k] != 0;
  c.expect = expect;
  c.keys = o.keys;
  if (e->scan(&b, &c) != 0) goto out;
  if (c.bad || c.rows != distinct || c.sum != o.records) {
    fprintf(stderr,
            "bench_value: %s: WRONG RESULT: %llu rows (expected %llu), counters sum to %llu "
            "(expected %llu), %llu bad rows\n",
            e->name, (unsigned long long)c.rows, (unsigned long long)distinct,
            (unsigned long long)c.sum, (unsigned long long)o.records,
            (unsigned long long)c.bad);
    goto out;
  }
  ok = 1;

  printf("engine=%s records=%llu keys=%llu dist=%s seed=%llu interval=%llu", e->name,
         (unsigned long long)o.records, (unsigned long long)o.keys, dist,
         (unsigned long long)o.seed, (unsigned long long)o.interval);
  if (strcmp(e->name, "statelite") == 0) printf(" budget=%zu", o.budget);
  if (strcmp(e->name, "rocksdb") == 0)
    printf(" block_cache=%zu flush=%d", o.block_cache, o.rocksdb_flush);
  printf(" distinct=%llu seconds=%.4f commit_seconds=%.4f ops_per_sec=%.0f peak_rss_kb=%ld "
         "verified=ok\n",
         (unsigned long long)distinct, secs, commit_secs,
         secs > 0 ? (double)o.records / secs : 0.0, rss);

out:
  e->close(&b); /* every close copes with a partial or failed open */
  if (rm_tree(b.dir) != 0)
    fprintf(stderr, "bench_value: could not remove the scratch directory %s\n", b.dir);
  free(keys);
  free(expect);
  free(c.seen);
  free(g.cdf);
  return ok ? 0 : 1;
}
