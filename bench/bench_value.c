/*
** bench_value.c — per-record keyed state, the way a stream operator uses it:
** a stream of N records over K integer keys, taken through one of three
** kinds of state (--state):
**
**   value  ValueState: read the key's counter, write it back plus one
**   map    MapState: each record also carries a map key (one of --map-keys
**          per key); read that entry's counter, put it back plus one
**   list   ListState: append the record's number to the key's list; one
**          record in --list-every also reads the whole list and, when it
**          holds more than --list-keep rows, replaces it by the last ones
**          (a bounded buffer: what a count window or a pattern keeps)
**
** on one engine, the first argument:
**
**   statelite          statelite with its write-back cache (--budget BYTES)
**   statelite-nocache  statelite with a cache budget of 0
**   hash               an in-memory hash table (the ceiling); no checkpoints
**   sqlite             a hand-written SQLite table: one prepared statement per
**                      access, one transaction per checkpoint interval
**   rocksdb            RocksDB through its C API, WAL off, default options
**                      (--block-cache BYTES for an LRU block cache); only in
**                      the build bench_value_rocksdb, so that the other
**                      engines' memory figures do not carry librocksdb
**
** Checkpoints follow Flink: one starts every --checkpoint-ms of processing
** (or every --interval records), and the next only once the previous one
** has completed. statelite takes real checkpoints: sl_snapshot_begin on the
** processing thread (its duration is the pause), sl_snapshot_write and
** sl_chkdir_publish on a second thread while processing goes on, and
** sl_snapshot_end on the processing thread once that thread is done (a flag
** polled between batches). SQLite commits its transaction (synchronous=FULL,
** so that a completed checkpoint is durable). RocksDB flushes its memtable
** and creates a checkpoint of hard links (--rocksdb-flush-only: the flush
** alone). The stream ends with a final checkpoint that must complete.
**
** The keys are generated in chunks with the clock stopped, so the figures
** measure the engine and not the generator. After the final checkpoint the
** program reads the whole state back through the engine and checks it
** against what the stream implies; a mismatch exits 1. It prints one line of
** key=value results. Run with --help for the options.
*/
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_ROCKSDB
#include <rocksdb/c.h>
#endif
#include <sqlite3.h>

#include "statelite.h"
#include "bench_util.h"

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

enum { ST_VALUE, ST_MAP, ST_LIST };
static const char *const state_names[] = {"value", "map", "list"};

#define CHUNK 65536 /* records generated at a time, with the clock stopped */
#define BATCH 1024  /* records between two looks at the checkpoint clock */

typedef struct Opts {
  const char *engine;
  int state;
  uint64_t records;
  uint64_t keys;
  uint64_t seed;
  double zipf;           /* 0: uniform keys */
  size_t budget;         /* statelite cache budget */
  size_t page_cache;     /* sqlite: page cache bytes; 0: SQLite's default */
  size_t block_cache;    /* rocksdb: LRU block cache; 0: RocksDB's default */
  uint64_t checkpoint_ms;/* checkpoint interval in ms of processing; 0: none */
  uint64_t interval;     /* > 0: a checkpoint every N records instead */
  int rocksdb_chk;       /* rocksdb: also create a checkpoint (hard links) */
  uint64_t map_keys;     /* map: map keys per key */
  uint64_t list_keep;    /* list: rows kept when a read trims the list */
  uint64_t list_every;   /* list: one record in N reads the list */
  const char *tmp;       /* parent of the scratch directory */
  const char *base;      /* value: start from a copy of this state */
  const char *build_base;/* value: write a state of every key at 0 here */
} Opts;

static void usage(FILE *f) {
  fputs(
      "usage: bench_value ENGINE [options]\n"
      "  ENGINE               statelite | statelite-nocache | hash | sqlite"
#ifdef BENCH_ROCKSDB
      " | rocksdb"
#endif
      "\n"
      "  --state KIND         value | map | list (default value)\n"
      "  --records N          records to process (default 2000000)\n"
      "  --keys K             distinct keys drawn from (default 100000)\n"
      "  --zipf [S]           Zipf-distributed keys with exponent S (default 1.1);\n"
      "                       without it keys are uniform\n"
      "  --seed X             seed of the stream (default 42)\n"
      "  --checkpoint-ms MS   a checkpoint every MS ms of processing (default 1000;\n"
      "                       0: only the final one)\n"
      "  --interval N         a checkpoint every N records instead\n"
      "  --budget BYTES       statelite cache budget (default 64M; suffixes K M G)\n"
      "  --page-cache BYTES   sqlite: page cache (default SQLite's, 2000 KiB)\n"
      "  --block-cache BYTES  rocksdb: LRU block cache (default RocksDB's own)\n"
      "  --rocksdb-flush-only rocksdb: a checkpoint only flushes the memtable\n"
      "  --map-keys N         map: map keys per key (default 8)\n"
      "  --list-keep N        list: rows a trimming read keeps (default 8)\n"
      "  --list-every N       list: one record in N reads the list (default 8)\n"
      "  --build-base DIR     value state: write into DIR (new) the engine's state of\n"
      "                       every key with count 0, and exit\n"
      "  --base DIR           value state: start from a copy of that state (copied\n"
      "                       before the clock starts; the hash table is filled\n"
      "                       in memory instead)\n"
      "  --dir DIR            where the scratch directory goes (default $TMPDIR or /tmp)\n"
      "  --versions           print the library versions and exit\n",
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
  o->state = ST_VALUE;
  o->records = 2000000;
  o->keys = 100000;
  o->seed = 42;
  o->budget = (size_t)64 * 1024 * 1024;
  o->checkpoint_ms = 1000;
  o->rocksdb_chk = 1;
  o->map_keys = 8;
  o->list_keep = 8;
  o->list_every = 8;
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
    } else if (strcmp(a, "--rocksdb-flush-only") == 0) {
      o->rocksdb_chk = 0;
    } else if (strcmp(a, "--zipf") == 0) {
      char *end;
      double s = v ? strtod(v, &end) : 0;
      if (v && end != v && *end == 0) {
        if (!(s > 0 && s < 100) || s == 1.0) {
          fprintf(stderr, "bench_value: --zipf wants an exponent above 0 other than 1, "
                          "not %s\n", v);
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
      i++;
      if (strcmp(a, "--dir") == 0) {
        o->tmp = v;
        continue;
      }
      if (strcmp(a, "--base") == 0 || strcmp(a, "--build-base") == 0) {
        *(a[2] == 'b' && a[3] == 'a' ? &o->base : &o->build_base) = v;
        continue;
      }
      if (strcmp(a, "--state") == 0) {
        int k;
        for (k = 0; k < 3 && strcmp(v, state_names[k]) != 0; k++) {
        }
        if (k == 3) {
          fprintf(stderr, "bench_value: --state is value, map or list, not '%s'\n", v);
          return -1;
        }
        o->state = k;
        continue;
      }
      if (parse_u64(v, &n) != 0) {
        fprintf(stderr, "bench_value: %s wants a non-negative integer, not '%s'\n", a, v);
        return -1;
      }
      if (strcmp(a, "--records") == 0) o->records = n;
      else if (strcmp(a, "--keys") == 0) o->keys = n;
      else if (strcmp(a, "--seed") == 0) o->seed = n;
      else if (strcmp(a, "--checkpoint-ms") == 0) o->checkpoint_ms = n, o->interval = 0;
      else if (strcmp(a, "--interval") == 0) o->interval = n;
      else if (strcmp(a, "--budget") == 0) o->budget = (size_t)n;
      else if (strcmp(a, "--page-cache") == 0) o->page_cache = (size_t)n;
      else if (strcmp(a, "--block-cache") == 0) o->block_cache = (size_t)n;
      else if (strcmp(a, "--map-keys") == 0) o->map_keys = n;
      else if (strcmp(a, "--list-keep") == 0) o->list_keep = n;
      else if (strcmp(a, "--list-every") == 0) o->list_every = n;
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
  if (o->records < 1 || o->records > UINT32_MAX) {
    fprintf(stderr, "bench_value: --records must be 1..2^32-1\n");
    return -1;
  }
  if (o->map_keys < 1 || o->map_keys > 1024 || o->keys * o->map_keys > ((uint64_t)1 << 32)) {
    fprintf(stderr, "bench_value: --map-keys must be 1..1024, keys * map keys at most 2^32\n");
    return -1;
  }
  if ((o->base || o->build_base) && o->state != ST_VALUE) {
    fprintf(stderr, "bench_value: --base and --build-base are for the value state\n");
    return -1;
  }
  if (o->list_keep < 1 || o->list_keep > 4096 || o->list_every < 1) {
    fprintf(stderr, "bench_value: --list-keep must be 1..4096 and --list-every at least 1\n");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The stream: splitmix64; keys uniform or Zipf                              */
/* ------------------------------------------------------------------------ */

/* Zipf keys come from rejection-inversion sampling (W. Hörmann and G.
** Derflinger, "Rejection-inversion to generate variates from monotone
** discrete distributions", 1996; the method of Apache Commons RNG's
** RejectionInversionZipfSampler): a few logarithms per key and no table, so
** the generator adds nothing to the memory the engines are measured with. */
typedef struct Gen {
  uint64_t s;            /* key stream */
  uint64_t a;            /* auxiliary stream: map key, list reads */
  uint64_t keys;
  double q;              /* Zipf exponent; 0: uniform */
  double hx1, hn, sp;    /* Zipf: H(1.5) - 1, H(n + 0.5), the squeeze bound */
  uint64_t mult;         /* Zipf: rank -> key bijection, key = rank*mult mod keys */
} Gen;

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* log1p(x)/x and expm1(x)/x, continuous at 0. */
static double zh1(double x) {
  return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}
static double zh2(double x) {
  return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
}
static double zipf_h(const Gen *g, double x) { return exp(-g->q * log(x)); }
static double zipf_hint(const Gen *g, double x) {
  double lx = log(x);
  return zh2((1.0 - g->q) * lx) * lx;
}
static double zipf_hinv(const Gen *g, double x) {
  double t = x * (1.0 - g->q);
  if (t < -1.0) t = -1.0;
  return exp(zh1(t) * x);
}

static void gen_init(Gen *g, const Opts *o) {
  memset(g, 0, sizeof *g);
  g->s = o->seed;
  g->a = o->seed ^ 0x5851f42d4c957f2dull;
  g->keys = o->keys;
  g->q = o->zipf;
  if (g->q > 0) {
    g->hx1 = zipf_hint(g, 1.5) - 1.0;
    g->hn = zipf_hint(g, (double)o->keys + 0.5);
    g->sp = 2.0 - zipf_hinv(g, zipf_hint(g, 2.5) - zipf_h(g, 2.0));
    /* Scatter the hot ranks over the key space so that no engine gains
    ** from hot keys being neighbours. */
    g->mult = 1000003;
    while (gcd_u64(g->mult, o->keys) != 1) g->mult += 2;
    g->mult %= o->keys;
    if (g->mult == 0) g->mult = 1;
  }
}

/* The next record: its key and a 32-bit auxiliary number. */
static void gen_next(Gen *g, int64_t *key, uint32_t *aux) {
  *aux = (uint32_t)(splitmix64(&g->a) >> 32);
  if (g->q <= 0) {
    *key = (int64_t)(splitmix64(&g->s) % g->keys);
    return;
  }
  for (;;) {
    double u01 = (double)(splitmix64(&g->s) >> 11) * (1.0 / 9007199254740992.0);
    double u = g->hn + u01 * (g->hx1 - g->hn);
    double x = zipf_hinv(g, u);
    double k = floor(x + 0.5);
    if (k < 1) k = 1;
    else if (k > (double)g->keys) k = (double)g->keys;
    if (k - x <= g->sp || u >= zipf_hint(g, k + 0.5) - zipf_h(g, k)) {
      *key = (int64_t)((((uint64_t)k - 1) * g->mult) % g->keys);
      return;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Checking what an engine holds at the end                                  */
/* ------------------------------------------------------------------------ */

typedef struct Check {
  int state;
  uint64_t keys, map_keys;
  uint64_t rows, sum, bad;
  /* value: expected count per key; map: per (key, map key) */
  uint32_t *expect;
  unsigned char *seen;
  /* list: key k's expected list is occ[off[k] + lo[k] .. off[k+1] - 1] */
  uint32_t *occ, *lo, *pos;
  uint64_t *off;
} Check;

static void bad_row(Check *c, const char *fmt, long long a, long long b, long long d) {
  if (c->bad++ < 5) {
    fprintf(stderr, "bench_value: ");
    fprintf(stderr, fmt, a, b, d);
    fputc('\n', stderr);
  }
}

static void check_value(Check *c, int64_t key, int64_t count) {
  c->rows++;
  c->sum += (uint64_t)count;
  if (key < 0 || (uint64_t)key >= c->keys) bad_row(c, "unexpected key %lld", key, 0, 0);
  else if (c->seen[key]++) bad_row(c, "key %lld read twice", key, 0, 0);
  else if (c->expect[key] != count)
    bad_row(c, "key %lld has count %lld, expected %lld", key, count, c->expect[key]);
}

static void check_map(Check *c, int64_t key, int64_t mk, int64_t count) {
  uint64_t i;
  c->rows++;
  c->sum += (uint64_t)count;
  if (key < 0 || (uint64_t)key >= c->keys || mk < 0 || (uint64_t)mk >= c->map_keys) {
    bad_row(c, "unexpected entry %lld/%lld", key, mk, 0);
    return;
  }
  i = (uint64_t)key * c->map_keys + (uint64_t)mk;
  if (c->seen[i]++) bad_row(c, "entry %lld/%lld read twice", key, mk, 0);
  else if (c->expect[i] != count)
    bad_row(c, "entry %lld/%lld has count %lld", key, mk, count);
}

/* Rows of one key must come in list order; keys may interleave. */
static void check_list(Check *c, int64_t key, int64_t v) {
  uint64_t at;
  c->rows++;
  if (key < 0 || (uint64_t)key >= c->keys) {
    bad_row(c, "unexpected key %lld", key, 0, 0);
    return;
  }
  at = c->off[key] + c->pos[key];
  if (at >= c->off[key + 1]) bad_row(c, "key %lld has a row too many (%lld)", key, v, 0);
  else if ((int64_t)c->occ[at] != v)
    bad_row(c, "key %lld: row %lld, expected %lld", key, v, c->occ[at]);
  c->pos[key]++;
}

/* ------------------------------------------------------------------------ */
/* Engines                                                                   */
/* ------------------------------------------------------------------------ */

struct HSlot {
  int64_t k;
  int64_t v;
};

typedef struct ListVec {
  int64_t *v;
  uint32_t n, cap;
} ListVec;

/* The second thread of a statelite checkpoint. */
typedef struct Writer {
  pthread_t th;
  sl_snapshot *sn;
  sl_chkdir *cd;
  int64_t id;
  int rc;
  double secs;
  sl_snapshot_info info;
  char err[512];
  atomic_int done;
} Writer;

typedef struct Bench {
  const Opts *o;
  char dir[4096];
  int state;
  double last_async_ms;  /* of the checkpoint that completed last */
  double end_ms_max;     /* statelite: longest sl_snapshot_end */
  uint64_t state_bytes;  /* size of the state at the end, as the engine keeps it */
  uint64_t cache_bytes;  /* statelite: sl_store_cache_bytes() at the end */
  /* statelite */
  sl_store *st;
  sl_state *s;
  sl_chkdir *cd;
  Writer w;
  int writer_running;
  /* hash */
  struct HSlot *slots;
  size_t cap, used;
  ListVec *vecs;
  size_t nvecs, capvecs;
  /* sqlite */
  sqlite3 *db;
  sqlite3_stmt *q_get, *q_put, *q_del;
  int in_txn;
  /* list reads */
  int64_t *buf;
  size_t capbuf;
#ifdef BENCH_ROCKSDB
  rocksdb_t *rdb;
  rocksdb_options_t *ropt;
  rocksdb_block_based_table_options_t *rtopt;
  rocksdb_cache_t *rcache;
  rocksdb_writeoptions_t *rwo;
  rocksdb_readoptions_t *rro;
  rocksdb_flushoptions_t *rfo;
  rocksdb_checkpoint_t *rchk;
#endif
} Bench;

typedef int (*process_fn)(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                          size_t n);

typedef struct Engine {
  const char *name;
  int (*open)(Bench *b);
  process_fn process[3]; /* by state kind */
  /* The synchronous part of checkpoint `id`; sets *pause_ms. NULL: the
  ** engine takes no checkpoints. */
  int (*chk_begin)(Bench *b, int64_t id, double *pause_ms);
  /* The asynchronous part: 1 when it has completed (and is finished off),
  ** 0 not yet, -1 failed; wait: block until it completes. NULL: a checkpoint
  ** is complete when chk_begin returns. */
  int (*chk_poll)(Bench *b, int wait);
  int (*scan)(Bench *b, Check *c);
  void (*close)(Bench *b);
  /* Value state: sets keys [from, to) to count 0, for a base state. */
  int (*load)(Bench *b, int64_t from, int64_t to);
} Engine;

static int grow_buf(Bench *b, size_t n) {
  int64_t *p;
  size_t cap = b->capbuf ? b->capbuf : 64;
  if (n <= b->capbuf) return 0;
  while (cap < n) cap *= 2;
  p = realloc(b->buf, cap * sizeof *p);
  if (!p) {
    fprintf(stderr, "bench_value: out of memory for a list\n");
    return -1;
  }
  b->buf = p;
  b->capbuf = cap;
  return 0;
}

/* --- statelite ----------------------------------------------------------- */

static int lite_fail(const void *h, int rc, const char *what) {
  fprintf(stderr, "bench_value: %s failed: %s (%s)\n", what, sl_errmsg(h), sl_errstr(rc));
  return -1;
}

static int lite_open_budget(Bench *b, size_t budget) {
  sl_config cfg;
  sl_chkdir_config ccfg;
  sl_column key, mkey, val;
  sl_state_desc d;
  char path[4200];
  int rc;
  sl_config_init(&cfg);
  cfg.memory_budget = budget;
  rc = sl_store_open(b->dir, "bench", 0, 1, &cfg, &b->st);
  if (rc != SL_OK) return lite_fail(b->st, rc, "sl_store_open");
  memset(&key, 0, sizeof key);
  memset(&mkey, 0, sizeof mkey);
  memset(&val, 0, sizeof val);
  memset(&d, 0, sizeof d);
  key.name = "k";
  key.type = SL_INTEGER;
  mkey.name = "mk";
  mkey.type = SL_INTEGER;
  val.type = SL_INTEGER;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 1;
  d.value = &val;
  if (b->state == ST_VALUE) {
    d.name = "counts";
    d.kind = SL_VALUE_STATE;
    val.name = "count";
  } else if (b->state == ST_MAP) {
    d.name = "counts";
    d.kind = SL_MAP_STATE;
    d.n_map_key = 1;
    d.map_key = &mkey;
    val.name = "count";
  } else {
    d.name = "rows";
    d.kind = SL_LIST_STATE;
    val.name = "v";
  }
  rc = sl_state_register(b->st, &d, &b->s);
  if (rc != SL_OK) return lite_fail(b->st, rc, "sl_state_register");
  snprintf(path, sizeof path, "%s/chk", b->dir);
  sl_chkdir_config_init(&ccfg);
  ccfg.keep = 2;
  rc = sl_chkdir_open(path, &ccfg, &b->cd);
  if (rc != SL_OK) return lite_fail(b->cd, rc, "sl_chkdir_open");
  return 0;
}

static int lite_open(Bench *b) { return lite_open_budget(b, b->o->budget); }
static int lite_open_nocache(Bench *b) { return lite_open_budget(b, 0); }

static int lite_value(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                      size_t n) {
  sl_store *st = b->st;
  sl_state *s = b->s;
  size_t i;
  (void)aux;
  (void)first;
  for (i = 0; i < n; i++) {
    sl_value k = sl_int(keys[i]), v;
    const sl_value *cur;
    int64_t count = 0;
    int rc = sl_store_set_key(st, &k, 1, NULL);
    if (rc != SL_OK) return lite_fail(st, rc, "sl_store_set_key");
    rc = sl_value_get(s, &cur);
    if (rc == SL_OK) count = cur[0].v.i;
    else if (rc != SL_NOTFOUND) return lite_fail(s, rc, "sl_value_get");
    v = sl_int(count + 1);
    rc = sl_value_update(s, &v);
    if (rc != SL_OK) return lite_fail(s, rc, "sl_value_update");
  }
  return 0;
}

static int lite_map(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                    size_t n) {
  sl_store *st = b->st;
  sl_state *s = b->s;
  uint64_t nmk = b->o->map_keys;
  size_t i;
  (void)first;
  for (i = 0; i < n; i++) {
    sl_value k = sl_int(keys[i]), mk = sl_int((int64_t)(aux[i] % nmk)), v;
    const sl_value *cur;
    int64_t count = 0;
    int rc = sl_store_set_key(st, &k, 1, NULL);
    if (rc != SL_OK) return lite_fail(st, rc, "sl_store_set_key");
    rc = sl_map_get(s, &mk, &cur);
    if (rc == SL_OK) count = cur[0].v.i;
    else if (rc != SL_NOTFOUND) return lite_fail(s, rc, "sl_map_get");
    v = sl_int(count + 1);
    rc = sl_map_put(s, &mk, &v);
    if (rc != SL_OK) return lite_fail(s, rc, "sl_map_put");
  }
  return 0;
}

static int lite_list(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                     size_t n) {
  sl_store *st = b->st;
  sl_state *s = b->s;
  size_t keep = (size_t)b->o->list_keep, i, j;
  uint64_t every = b->o->list_every;
  sl_value kept[4096];
  for (i = 0; i < n; i++) {
    sl_value k = sl_int(keys[i]), v = sl_int((int64_t)(first + i));
    const sl_value *rows;
    size_t nrows;
    int rc = sl_store_set_key(st, &k, 1, NULL);
    if (rc != SL_OK) return lite_fail(st, rc, "sl_store_set_key");
    rc = sl_list_add(s, &v);
    if (rc != SL_OK) return lite_fail(s, rc, "sl_list_add");
    if (aux[i] % every != 0) continue;
    rc = sl_list_get(s, &rows, &nrows);
    if (rc != SL_OK) return lite_fail(s, rc, "sl_list_get");
    if (nrows <= keep) continue;
    /* The rows are library memory until the next call: copy the last ones. */
    for (j = 0; j < keep; j++) kept[j] = sl_int(rows[nrows - keep + j].v.i);
    rc = sl_list_update(s, kept, keep);
    if (rc != SL_OK) return lite_fail(s, rc, "sl_list_update");
  }
  return 0;
}

static int lite_load(Bench *b, int64_t from, int64_t to) {
  int64_t k;
  int rc;
  for (k = from; k < to; k++) {
    sl_value key = sl_int(k), zero = sl_int(0);
    if ((rc = sl_store_set_key(b->st, &key, 1, NULL)) != SL_OK)
      return lite_fail(b->st, rc, "sl_store_set_key");
    if ((rc = sl_value_update(b->s, &zero)) != SL_OK)
      return lite_fail(b->s, rc, "sl_value_update");
  }
  rc = sl_store_commit(b->st);
  return rc == SL_OK ? 0 : lite_fail(b->st, rc, "sl_store_commit");
}

static void *lite_writer(void *arg) {
  Writer *w = arg;
  double t0 = now_sec();
  int rc = sl_snapshot_write(w->sn);
  if (rc != SL_OK) snprintf(w->err, sizeof w->err, "sl_snapshot_write: %s", sl_errmsg(w->sn));
  if (rc == SL_OK && (rc = sl_snapshot_get_info(w->sn, &w->info)) != SL_OK)
    snprintf(w->err, sizeof w->err, "sl_snapshot_get_info: %s", sl_errmsg(w->sn));
  if (rc == SL_OK && (rc = sl_chkdir_publish(w->cd, w->id, NULL, &w->info, 1)) != SL_OK)
    snprintf(w->err, sizeof w->err, "sl_chkdir_publish: %s", sl_errmsg(w->cd));
  w->secs = now_sec() - t0;
  w->rc = rc;
  atomic_store_explicit(&w->done, 1, memory_order_release);
  return NULL;
}

static int lite_chk_begin(Bench *b, int64_t id, double *pause_ms) {
  const char *target;
  double t0;
  int rc = sl_chkdir_target(b->cd, id, NULL, &target);
  if (rc != SL_OK) return lite_fail(b->cd, rc, "sl_chkdir_target");
  memset(&b->w.info, 0, sizeof b->w.info);
  b->w.sn = NULL;
  t0 = now_sec();
  rc = sl_snapshot_begin(b->st, target, id, SL_CHECKPOINT, NULL, &b->w.sn);
  *pause_ms = (now_sec() - t0) * 1e3;
  if (rc != SL_OK) return lite_fail(b->st, rc, "sl_snapshot_begin");
  b->w.cd = b->cd;
  b->w.id = id;
  b->w.err[0] = 0;
  atomic_store_explicit(&b->w.done, 0, memory_order_relaxed);
  if (pthread_create(&b->w.th, NULL, lite_writer, &b->w) != 0) {
    fprintf(stderr, "bench_value: cannot start the checkpoint thread\n");
    sl_snapshot_end(b->w.sn);
    b->w.sn = NULL;
    return -1;
  }
  b->writer_running = 1;
  return 0;
}

static int lite_chk_poll(Bench *b, int wait) {
  double t0;
  int rc;
  if (!b->writer_running) return 1;
  if (!wait && !atomic_load_explicit(&b->w.done, memory_order_acquire)) return 0;
  pthread_join(b->w.th, NULL);
  b->writer_running = 0;
  t0 = now_sec();
  rc = sl_snapshot_end(b->w.sn);
  t0 = (now_sec() - t0) * 1e3;
  if (t0 > b->end_ms_max) b->end_ms_max = t0;
  b->w.sn = NULL;
  if (b->w.rc != SL_OK) {
    fprintf(stderr, "bench_value: checkpoint %lld failed: %s\n", (long long)b->w.id, b->w.err);
    return -1;
  }
  if (rc != SL_OK) return lite_fail(b->st, rc, "sl_snapshot_end");
  b->last_async_ms = b->w.secs * 1e3;
  b->state_bytes = b->w.info.raw_bytes;
  b->cache_bytes = sl_store_cache_bytes(b->st);
  return 1;
}

static int lite_scan(Bench *b, Check *c) {
  sl_iter *it = NULL;
  int rc = sl_state_scan(b->s, &it);
  if (rc != SL_OK) return lite_fail(b->s, rc, "sl_state_scan");
  while ((rc = sl_iter_next(it)) == SL_ROW) {
    const sl_value *k, *v, *mk = NULL;
    int nk, nv, nm = 1;
    if (sl_iter_key(it, &k, &nk, NULL) != SL_OK || sl_iter_value(it, &v, &nv) != SL_OK ||
        (b->state == ST_MAP && sl_iter_map_key(it, &mk, &nm) != SL_OK) || nk != 1 ||
        nv != 1 || nm != 1 || k[0].type != SL_INTEGER || v[0].type != SL_INTEGER ||
        (mk && mk[0].type != SL_INTEGER)) {
      sl_iter_close(it);
      fprintf(stderr, "bench_value: sl_state_scan gave a malformed row\n");
      return -1;
    }
    if (b->state == ST_VALUE) check_value(c, k[0].v.i, v[0].v.i);
    else if (b->state == ST_MAP) check_map(c, k[0].v.i, mk[0].v.i, v[0].v.i);
    else check_list(c, k[0].v.i, v[0].v.i);
  }
  if (rc != SL_DONE) {
    lite_fail(it, rc, "sl_iter_next");
    sl_iter_close(it);
    return -1;
  }
  sl_iter_close(it);
  return 0;
}

static void lite_close(Bench *b) {
  if (b->writer_running) lite_chk_poll(b, 1);
  sl_store_close(b->st);
  sl_chkdir_close(b->cd);
  b->st = NULL;
  b->cd = NULL;
}

/* --- hash: open addressing, linear probing, int64 -> int64 --------------- */

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

/* The slot of key k, inserted with value v0 when missing; NULL: no memory. */
static struct HSlot *hash_slot(Bench *b, int64_t k, int64_t v0) {
  size_t j;
  if ((b->used + 1) * 2 > b->cap && hash_grow(b) != 0) return NULL;
  j = hash_mix((uint64_t)k) & (b->cap - 1);
  while (b->slots[j].k != k) {
    if (b->slots[j].k == HASH_EMPTY) {
      b->slots[j].k = k;
      b->slots[j].v = v0;
      b->used++;
      break;
    }
    j = (j + 1) & (b->cap - 1);
  }
  return &b->slots[j];
}

/* 1 and *v if found, else 0: a get as a map's get. */
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
  struct HSlot *sl = hash_slot(b, k, v);
  if (!sl) return -1;
  sl->v = v;
  return 0;
}

static int hash_value(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                      size_t n) {
  size_t i;
  (void)aux;
  (void)first;
  for (i = 0; i < n; i++) {
    int64_t count = 0;
    hash_get(b, keys[i], &count);
    if (hash_put(b, keys[i], count + 1) != 0) return -1;
  }
  return 0;
}

static int hash_map(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                    size_t n) {
  int64_t nmk = (int64_t)b->o->map_keys;
  size_t i;
  (void)first;
  for (i = 0; i < n; i++) {
    int64_t k = keys[i] * nmk + (int64_t)(aux[i] % (uint32_t)nmk), count = 0;
    hash_get(b, k, &count);
    if (hash_put(b, k, count + 1) != 0) return -1;
  }
  return 0;
}

static int hash_list(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                     size_t n) {
  uint32_t keep = (uint32_t)b->o->list_keep;
  uint64_t every = b->o->list_every;
  size_t i;
  for (i = 0; i < n; i++) {
    struct HSlot *sl = hash_slot(b, keys[i], -1);
    ListVec *lv;
    if (!sl) return -1;
    if (sl->v < 0) {
      if (b->nvecs == b->capvecs) {
        size_t cap = b->capvecs ? b->capvecs * 2 : 1024;
        ListVec *p = realloc(b->vecs, cap * sizeof *p);
        if (!p) return -1;
        b->vecs = p;
        b->capvecs = cap;
      }
      memset(&b->vecs[b->nvecs], 0, sizeof b->vecs[0]);
      sl->v = (int64_t)b->nvecs++;
    }
    lv = &b->vecs[sl->v];
    if (lv->n == lv->cap) {
      uint32_t cap = lv->cap ? lv->cap * 2 : 4;
      int64_t *p = realloc(lv->v, cap * sizeof *p);
      if (!p) return -1;
      lv->v = p;
      lv->cap = cap;
    }
    lv->v[lv->n++] = (int64_t)(first + i);
    /* A read of the whole list is a look at lv->v; then trim. */
    if (aux[i] % every == 0 && lv->n > keep) {
      memmove(lv->v, lv->v + (lv->n - keep), keep * sizeof *lv->v);
      lv->n = keep;
    }
  }
  return 0;
}

static int hash_load(Bench *b, int64_t from, int64_t to) {
  int64_t k;
  for (k = from; k < to; k++)
    if (hash_put(b, k, 0) != 0) return -1;
  return 0;
}

static int hash_scan(Bench *b, Check *c) {
  size_t i;
  uint32_t j;
  for (i = 0; i < b->cap; i++) {
    const struct HSlot *sl = &b->slots[i];
    if (sl->k == HASH_EMPTY) continue;
    if (b->state == ST_VALUE) {
      check_value(c, sl->k, sl->v);
    } else if (b->state == ST_MAP) {
      int64_t nmk = (int64_t)b->o->map_keys;
      check_map(c, sl->k / nmk, sl->k % nmk, sl->v);
    } else {
      const ListVec *lv = &b->vecs[sl->v];
      for (j = 0; j < lv->n; j++) check_list(c, sl->k, lv->v[j]);
    }
  }
  b->state_bytes = b->cap * sizeof *b->slots;
  for (i = 0; i < b->nvecs; i++) b->state_bytes += b->vecs[i].cap * sizeof(int64_t);
  return 0;
}

static void hash_close(Bench *b) {
  size_t i;
  for (i = 0; i < b->nvecs; i++) free(b->vecs[i].v);
  free(b->vecs);
  free(b->slots);
  b->vecs = NULL;
  b->slots = NULL;
}

/* --- sqlite: hand-written tables ----------------------------------------- */

static int sqlt_fail(Bench *b, const char *what) {
  fprintf(stderr, "bench_value: sqlite: %s failed: %s\n", what,
          b->db ? sqlite3_errmsg(b->db) : "cannot allocate");
  return -1;
}

static int sqlt_exec(Bench *b, const char *sql) {
  return sqlite3_exec(b->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sqlt_fail(b, sql);
}

static int sqlt_prepare(Bench *b, const char *sql, sqlite3_stmt **q) {
  if (sqlite3_prepare_v3(b->db, sql, -1, SQLITE_PREPARE_PERSISTENT, q, NULL) != SQLITE_OK)
    return sqlt_fail(b, sql);
  return 0;
}

static int sqlt_open(Bench *b) {
  char path[4200], pragma[64];
  snprintf(path, sizeof path, "%s/plain.db", b->dir);
  if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK)
    return sqlt_fail(b, "open");
  if (sqlt_exec(b, "PRAGMA journal_mode=WAL") || sqlt_exec(b, "PRAGMA synchronous=FULL"))
    return -1;
  if (b->o->page_cache) {
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%zu", b->o->page_cache / 1024);
    if (sqlt_exec(b, pragma)) return -1;
  }
  if (b->state == ST_VALUE) {
    if (sqlt_exec(b, "CREATE TABLE IF NOT EXISTS counts(k INTEGER PRIMARY KEY, count INTEGER "
                     "NOT NULL)") ||
        sqlt_prepare(b, "SELECT count FROM counts WHERE k = ?1", &b->q_get) ||
        sqlt_prepare(b, "INSERT OR REPLACE INTO counts(k, count) VALUES(?1, ?2)", &b->q_put))
      return -1;
  } else if (b->state == ST_MAP) {
    if (sqlt_exec(b, "CREATE TABLE counts(k INTEGER NOT NULL, mk INTEGER NOT NULL, count "
                     "INTEGER NOT NULL, PRIMARY KEY(k, mk)) WITHOUT ROWID") ||
        sqlt_prepare(b, "SELECT count FROM counts WHERE k = ?1 AND mk = ?2", &b->q_get) ||
        sqlt_prepare(b, "INSERT OR REPLACE INTO counts(k, mk, count) VALUES(?1, ?2, ?3)",
                     &b->q_put))
      return -1;
  } else {
    if (sqlt_exec(b, "CREATE TABLE rows(k INTEGER NOT NULL, seq INTEGER NOT NULL, v INTEGER "
                     "NOT NULL, PRIMARY KEY(k, seq)) WITHOUT ROWID") ||
        sqlt_prepare(b, "SELECT seq, v FROM rows WHERE k = ?1 ORDER BY seq", &b->q_get) ||
        sqlt_prepare(b, "INSERT INTO rows(k, seq, v) VALUES(?1, ?2, ?3)", &b->q_put) ||
        sqlt_prepare(b, "DELETE FROM rows WHERE k = ?1 AND seq < ?2", &b->q_del))
      return -1;
  }
  return 0;
}

static int sqlt_begin(Bench *b) {
  if (b->in_txn) return 0;
  if (sqlt_exec(b, "BEGIN")) return -1;
  b->in_txn = 1;
  return 0;
}

/* value and map: SELECT the counter, INSERT OR REPLACE it plus one. */
static int sqlt_counter(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                        size_t n) {
  sqlite3_stmt *get = b->q_get, *put = b->q_put;
  int map = b->state == ST_MAP, col = map ? 3 : 2;
  uint32_t nmk = (uint32_t)b->o->map_keys;
  size_t i;
  (void)first;
  if (sqlt_begin(b)) return -1;
  for (i = 0; i < n; i++) {
    int64_t count = 0;
    int rc;
    sqlite3_bind_int64(get, 1, keys[i]);
    if (map) sqlite3_bind_int64(get, 2, aux[i] % nmk);
    rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) count = sqlite3_column_int64(get, 0);
    else if (rc != SQLITE_DONE) return sqlt_fail(b, "SELECT");
    sqlite3_reset(get);
    sqlite3_bind_int64(put, 1, keys[i]);
    if (map) sqlite3_bind_int64(put, 2, aux[i] % nmk);
    sqlite3_bind_int64(put, col, count + 1);
    if (sqlite3_step(put) != SQLITE_DONE) return sqlt_fail(b, "INSERT OR REPLACE");
    sqlite3_reset(put);
  }
  return 0;
}

static int sqlt_list(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                     size_t n) {
  sqlite3_stmt *get = b->q_get, *put = b->q_put, *del = b->q_del;
  size_t keep = (size_t)b->o->list_keep, i;
  uint64_t every = b->o->list_every;
  if (sqlt_begin(b)) return -1;
  for (i = 0; i < n; i++) {
    int64_t rec = (int64_t)(first + i);
    size_t nrows = 0;
    int rc;
    sqlite3_bind_int64(put, 1, keys[i]);
    sqlite3_bind_int64(put, 2, rec);
    sqlite3_bind_int64(put, 3, rec);
    if (sqlite3_step(put) != SQLITE_DONE) return sqlt_fail(b, "INSERT");
    sqlite3_reset(put);
    if (aux[i] % every != 0) continue;
    /* The whole list, as an operator reading it would; seq in buf. */
    sqlite3_bind_int64(get, 1, keys[i]);
    while ((rc = sqlite3_step(get)) == SQLITE_ROW) {
      if (grow_buf(b, nrows + 1)) return -1;
      b->buf[nrows++] = sqlite3_column_int64(get, 0);
      (void)sqlite3_column_int64(get, 1);
    }
    sqlite3_reset(get);
    if (rc != SQLITE_DONE) return sqlt_fail(b, "SELECT");
    if (nrows <= keep) continue;
    sqlite3_bind_int64(del, 1, keys[i]);
    sqlite3_bind_int64(del, 2, b->buf[nrows - keep]);
    if (sqlite3_step(del) != SQLITE_DONE) return sqlt_fail(b, "DELETE");
    sqlite3_reset(del);
  }
  return 0;
}

static int sqlt_load(Bench *b, int64_t from, int64_t to) {
  int64_t k;
  if (sqlt_begin(b)) return -1;
  for (k = from; k < to; k++) {
    sqlite3_bind_int64(b->q_put, 1, k);
    sqlite3_bind_int64(b->q_put, 2, 0);
    if (sqlite3_step(b->q_put) != SQLITE_DONE) return sqlt_fail(b, "INSERT");
    sqlite3_reset(b->q_put);
  }
  b->in_txn = 0;
  return sqlt_exec(b, "COMMIT");
}

static int sqlt_chk_begin(Bench *b, int64_t id, double *pause_ms) {
  double t0 = now_sec();
  int rc = 0;
  (void)id;
  if (b->in_txn) {
    b->in_txn = 0;
    rc = sqlt_exec(b, "COMMIT");
  }
  *pause_ms = (now_sec() - t0) * 1e3;
  return rc;
}

static int sqlt_scan(Bench *b, Check *c) {
  static const char *const sql[] = {"SELECT k, count FROM counts",
                                    "SELECT k, mk, count FROM counts",
                                    "SELECT k, v FROM rows ORDER BY k, seq"};
  sqlite3_stmt *q;
  int rc;
  if (sqlite3_prepare_v2(b->db, sql[b->state], -1, &q, NULL) != SQLITE_OK)
    return sqlt_fail(b, "prepare scan");
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    int64_t k = sqlite3_column_int64(q, 0), x = sqlite3_column_int64(q, 1);
    if (b->state == ST_VALUE) check_value(c, k, x);
    else if (b->state == ST_MAP) check_map(c, k, x, sqlite3_column_int64(q, 2));
    else check_list(c, k, x);
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) return sqlt_fail(b, "scan");
  if (sqlite3_prepare_v2(b->db, "SELECT page_count * page_size FROM pragma_page_count, "
                         "pragma_page_size", -1, &q, NULL) == SQLITE_OK) {
    if (sqlite3_step(q) == SQLITE_ROW) b->state_bytes = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
  }
  return 0;
}

static void sqlt_close(Bench *b) {
  sqlite3_finalize(b->q_get);
  sqlite3_finalize(b->q_put);
  sqlite3_finalize(b->q_del);
  sqlite3_close(b->db);
  b->db = NULL;
}

/* --- rocksdb ------------------------------------------------------------- */

#ifdef BENCH_ROCKSDB

static int rdb_fail(char *err, const char *what) {
  fprintf(stderr, "bench_value: rocksdb: %s failed: %s\n", what, err ? err : "?");
  rocksdb_free(err);
  return -1;
}

/* The list's merge operator: append, as Flink's RocksDB list state does with
** RocksDB's string-append operator (here without a delimiter: every
** element is 8 bytes). */
static char *rdb_concat(const char *first, size_t first_len, const char *const *ops,
                        const size_t *lens, int nops, unsigned char *success,
                        size_t *out_len) {
  size_t n = first_len, at;
  char *out;
  int i;
  for (i = 0; i < nops; i++) n += lens[i];
  out = malloc(n ? n : 1);
  if (!out) {
    *success = 0;
    return NULL;
  }
  if (first_len) memcpy(out, first, first_len);
  at = first_len;
  for (i = 0; i < nops; i++) {
    memcpy(out + at, ops[i], lens[i]);
    at += lens[i];
  }
  *out_len = n;
  *success = 1;
  return out;
}

static char *rdb_full_merge(void *st, const char *key, size_t klen, const char *existing,
                            size_t elen, const char *const *ops, const size_t *lens,
                            int nops, unsigned char *success, size_t *out_len) {
  (void)st;
  (void)key;
  (void)klen;
  return rdb_concat(existing, existing ? elen : 0, ops, lens, nops, success, out_len);
}

static char *rdb_partial_merge(void *st, const char *key, size_t klen, const char *const *ops,
                               const size_t *lens, int nops, unsigned char *success,
                               size_t *out_len) {
  (void)st;
  (void)key;
  (void)klen;
  return rdb_concat(NULL, 0, ops, lens, nops, success, out_len);
}

static void rdb_merge_free(void *st, const char *v, size_t len) {
  (void)st;
  (void)len;
  free((void *)v);
}

static void rdb_merge_destroy(void *st) { (void)st; }
static const char *rdb_merge_name(void *st) {
  (void)st;
  return "bench_append";
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
  if (b->state == ST_LIST)
    rocksdb_options_set_merge_operator(
        b->ropt, rocksdb_mergeoperator_create(NULL, rdb_merge_destroy, rdb_full_merge,
                                              rdb_partial_merge, rdb_merge_free,
                                              rdb_merge_name));
  b->rdb = rocksdb_open(b->ropt, path, &err);
  if (err) return rdb_fail(err, "open");
  b->rwo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_disable_WAL(b->rwo, 1);
  b->rro = rocksdb_readoptions_create();
  b->rfo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(b->rfo, 1);
  if (b->o->rocksdb_chk) {
    b->rchk = rocksdb_checkpoint_object_create(b->rdb, &err);
    if (err) return rdb_fail(err, "checkpoint_object_create");
    snprintf(path, sizeof path, "%s/rchk", b->dir);
    if (mkdir(path, 0755) != 0) {
      fprintf(stderr, "bench_value: cannot create %s: %s\n", path, strerror(errno));
      return -1;
    }
  }
  return 0;
}

/* value and map: get the counter, put it back plus one. */
static int rdb_counter(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                       size_t n) {
  size_t klen = b->state == ST_MAP ? 16 : 8, i;
  uint32_t nmk = (uint32_t)b->o->map_keys;
  (void)first;
  for (i = 0; i < n; i++) {
    char k[16], *val, *err = NULL;
    size_t vlen = 0;
    int64_t count = 0;
    be64((uint64_t)keys[i], k);
    if (klen == 16) be64(aux[i] % nmk, k + 8);
    val = rocksdb_get(b->rdb, b->rro, k, klen, &vlen, &err);
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
    rocksdb_put(b->rdb, b->rwo, k, klen, (const char *)&count, sizeof count, &err);
    if (err) return rdb_fail(err, "put");
  }
  return 0;
}

static int rdb_list(Bench *b, const int64_t *keys, const uint32_t *aux, uint64_t first,
                    size_t n) {
  size_t keep = (size_t)b->o->list_keep, i;
  uint64_t every = b->o->list_every;
  for (i = 0; i < n; i++) {
    char k[8], *val, *err = NULL;
    int64_t rec = (int64_t)(first + i);
    size_t vlen = 0;
    be64((uint64_t)keys[i], k);
    rocksdb_merge(b->rdb, b->rwo, k, 8, (const char *)&rec, sizeof rec, &err);
    if (err) return rdb_fail(err, "merge");
    if (aux[i] % every != 0) continue;
    val = rocksdb_get(b->rdb, b->rro, k, 8, &vlen, &err);
    if (err) return rdb_fail(err, "get");
    if (!val || vlen % 8) {
      rocksdb_free(val);
      fprintf(stderr, "bench_value: rocksdb: a list of %zu bytes\n", vlen);
      return -1;
    }
    if (vlen / 8 > keep)
      rocksdb_put(b->rdb, b->rwo, k, 8, val + vlen - keep * 8, keep * 8, &err);
    rocksdb_free(val);
    if (err) return rdb_fail(err, "put");
  }
  return 0;
}

static int rdb_load(Bench *b, int64_t from, int64_t to) {
  char *err = NULL;
  int64_t k, zero = 0;
  for (k = from; k < to; k++) {
    char key[8];
    be64((uint64_t)k, key);
    rocksdb_put(b->rdb, b->rwo, key, 8, (const char *)&zero, sizeof zero, &err);
    if (err) return rdb_fail(err, "put");
  }
  if (to < (int64_t)b->o->keys) return 0;
  rocksdb_flush(b->rdb, b->rfo, &err);
  return err ? rdb_fail(err, "flush") : 0;
}

static int rdb_chk_begin(Bench *b, int64_t id, double *pause_ms) {
  char *err = NULL, path[4300];
  double t0 = now_sec();
  rocksdb_flush(b->rdb, b->rfo, &err);
  if (err) return rdb_fail(err, "flush");
  if (b->rchk) {
    snprintf(path, sizeof path, "%s/rchk/chk-%lld", b->dir, (long long)id);
    rocksdb_checkpoint_create(b->rchk, path, 0, &err);
    if (err) return rdb_fail(err, "checkpoint_create");
  }
  *pause_ms = (now_sec() - t0) * 1e3;
  /* Keep two, like the statelite checkpoint directory. */
  if (b->rchk && id > 2) {
    snprintf(path, sizeof path, "%s/rchk/chk-%lld", b->dir, (long long)(id - 2));
    if (rm_tree(path) != 0) {
      fprintf(stderr, "bench_value: cannot remove %s\n", path);
      return -1;
    }
  }
  return 0;
}

static int rdb_scan(Bench *b, Check *c) {
  rocksdb_iterator_t *it = rocksdb_create_iterator(b->rdb, b->rro);
  size_t klen = b->state == ST_MAP ? 16 : 8;
  char *err = NULL, *prop;
  for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl, j;
    const char *k = rocksdb_iter_key(it, &kl);
    const char *v = rocksdb_iter_value(it, &vl);
    int64_t x;
    if (kl != klen || (b->state != ST_LIST && vl != 8) || vl % 8) {
      rocksdb_iter_destroy(it);
      fprintf(stderr, "bench_value: rocksdb: a row of %zu+%zu bytes\n", kl, vl);
      return -1;
    }
    if (b->state == ST_LIST) {
      for (j = 0; j < vl; j += 8) {
        memcpy(&x, v + j, 8);
        check_list(c, unbe64(k), x);
      }
      continue;
    }
    memcpy(&x, v, 8);
    if (b->state == ST_VALUE) check_value(c, unbe64(k), x);
    else check_map(c, unbe64(k), unbe64(k + 8), x);
  }
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  if (err) return rdb_fail(err, "iterate");
  prop = rocksdb_property_value(b->rdb, "rocksdb.total-sst-files-size");
  if (prop) b->state_bytes = strtoull(prop, NULL, 10);
  rocksdb_free(prop);
  return 0;
}

static void rdb_close(Bench *b) {
  if (b->rchk) rocksdb_checkpoint_object_destroy(b->rchk);
  if (b->rdb) rocksdb_close(b->rdb);
  if (b->rfo) rocksdb_flushoptions_destroy(b->rfo);
  if (b->rro) rocksdb_readoptions_destroy(b->rro);
  if (b->rwo) rocksdb_writeoptions_destroy(b->rwo);
  if (b->ropt) rocksdb_options_destroy(b->ropt);
  if (b->rtopt) rocksdb_block_based_options_destroy(b->rtopt);
  if (b->rcache) rocksdb_cache_destroy(b->rcache);
  b->rchk = NULL;
  b->rdb = NULL;
}

#endif /* BENCH_ROCKSDB */

static const Engine engines[] = {
    {"statelite", lite_open, {lite_value, lite_map, lite_list}, lite_chk_begin, lite_chk_poll,
     lite_scan, lite_close, lite_load},
    {"statelite-nocache", lite_open_nocache, {lite_value, lite_map, lite_list}, lite_chk_begin,
     lite_chk_poll, lite_scan, lite_close, lite_load},
    {"hash", hash_open, {hash_value, hash_map, hash_list}, NULL, NULL, hash_scan, hash_close,
     hash_load},
    {"sqlite", sqlt_open, {sqlt_counter, sqlt_counter, sqlt_list}, sqlt_chk_begin, NULL,
     sqlt_scan, sqlt_close, sqlt_load},
#ifdef BENCH_ROCKSDB
    {"rocksdb", rdb_open, {rdb_counter, rdb_counter, rdb_list}, rdb_chk_begin, NULL, rdb_scan,
     rdb_close, rdb_load},
#endif
};

/* ------------------------------------------------------------------------ */
/* Scratch directory, memory, statistics                                     */
/* ------------------------------------------------------------------------ */

static long peak_rss_kb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return ru.ru_maxrss; /* kilobytes on Linux */
}

static double cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static long rss_now_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

typedef struct Series {
  double *v;
  size_t n, cap;
} Series;

static int series_add(Series *s, double x) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    double *p = realloc(s->v, cap * sizeof *p);
    if (!p) return -1;
    s->v = p;
    s->cap = cap;
  }
  s->v[s->n++] = x;
  return 0;
}

/* Nearest-rank percentile p (0..100); 0 for an empty series. Sorts. */
static double series_pct(Series *s, double p) {
  size_t r;
  if (!s->n) return 0;
  qsort(s->v, s->n, sizeof *s->v, cmp_double);
  r = (size_t)ceil(p / 100.0 * (double)s->n);
  if (r < 1) r = 1;
  if (r > s->n) r = s->n;
  return s->v[r - 1];
}

/* ------------------------------------------------------------------------ */
/* The expected state                                                        */
/* ------------------------------------------------------------------------ */

/* Replays the stream and fills c with what the engine must hold. Returns the
** rows expected, or -1 (out of memory). */
static int64_t expect_state(const Opts *o, Check *c) {
  Gen g;
  uint64_t i, k, rows = 0;
  int64_t key;
  uint32_t aux;
  gen_init(&g, o);
  c->state = o->state;
  c->keys = o->keys;
  c->map_keys = o->map_keys;
  if (o->state != ST_LIST) {
    uint64_t n = o->keys * (o->state == ST_MAP ? o->map_keys : 1);
    c->expect = calloc((size_t)n, sizeof *c->expect);
    c->seen = calloc((size_t)n, 1);
    if (!c->expect || !c->seen) return -1;
    for (i = 0; i < o->records; i++) {
      gen_next(&g, &key, &aux);
      if (o->state == ST_MAP) key = key * (int64_t)o->map_keys + (int64_t)(aux % o->map_keys);
      if (c->expect[key]++ == 0) rows++;
    }
    /* A base state holds every key (the untouched ones at 0). */
    return o->base ? (int64_t)o->keys : (int64_t)rows;
  }
  {
    /* The list of key k: the numbers of its records, from the first one a
    ** trimming read kept (lo[k], as an index into k's records). */
    uint32_t *keys = malloc(sizeof *keys * (size_t)o->records);
    unsigned char *reads = malloc((size_t)o->records);
    uint32_t *cnt = calloc((size_t)o->keys, sizeof *cnt);
    c->off = calloc((size_t)o->keys + 1, sizeof *c->off);
    c->occ = malloc(sizeof *c->occ * (size_t)o->records);
    c->lo = calloc((size_t)o->keys, sizeof *c->lo);
    c->pos = calloc((size_t)o->keys, sizeof *c->pos);
    if (!keys || !reads || !cnt || !c->off || !c->occ || !c->lo || !c->pos) {
      free(keys);
      free(reads);
      free(cnt);
      return -1;
    }
    for (i = 0; i < o->records; i++) {
      gen_next(&g, &key, &aux);
      keys[i] = (uint32_t)key;
      reads[i] = aux % o->list_every == 0;
      cnt[key]++;
    }
    for (k = 0; k < o->keys; k++) c->off[k + 1] = c->off[k] + cnt[k];
    memset(cnt, 0, sizeof *cnt * (size_t)o->keys);
    for (i = 0; i < o->records; i++) {
      uint32_t kk = keys[i];
      c->occ[c->off[kk] + cnt[kk]++] = (uint32_t)i;
      if (reads[i] && cnt[kk] - c->lo[kk] > o->list_keep)
        c->lo[kk] = cnt[kk] - (uint32_t)o->list_keep;
    }
    for (k = 0; k < o->keys; k++) {
      c->pos[k] = c->lo[k];
      rows += cnt[k] - c->lo[k];
    }
    free(keys);
    free(reads);
    free(cnt);
    return (int64_t)rows;
  }
}

/* After the scan: did every key get all of its rows? */
static int check_done(const Opts *o, Check *c, int64_t rows) {
  uint64_t k, short_keys = 0;
  if (o->state == ST_LIST) {
    for (k = 0; k < o->keys; k++)
      if (c->off[k] + c->pos[k] != c->off[k + 1]) short_keys++;
  }
  if (c->bad || short_keys || c->rows != (uint64_t)rows ||
      (o->state != ST_LIST && c->sum != o->records)) {
    fprintf(stderr,
            "bench_value: WRONG RESULT: %llu rows (expected %lld), counters sum to %llu "
            "(expected %llu), %llu bad rows, %llu lists short\n",
            (unsigned long long)c->rows, (long long)rows, (unsigned long long)c->sum,
            (unsigned long long)o->records, (unsigned long long)c->bad,
            (unsigned long long)short_keys);
    return -1;
  }
  return 0;
}

/* --build-base: the engine's state of every key at count 0, in a new
** directory, for runs that start from a copy of it (--base). */
static int build_base(const Opts *o, const Engine *e) {
  Bench b;
  char path[4300];
  double t0 = now_sec();
  int64_t k, step = 100000;
  int ok = 0;
  if (e->process[0] == hash_value) {
    fprintf(stderr, "bench_value: the hash table has no base state to build; --base fills it "
                    "in memory\n");
    return 2;
  }
  memset(&b, 0, sizeof b);
  b.o = o;
  b.state = o->state;
  if ((size_t)snprintf(b.dir, sizeof b.dir, "%s", o->build_base) >= sizeof b.dir ||
      mkdir(b.dir, 0755) != 0) {
    fprintf(stderr, "bench_value: cannot create the new directory %s: %s\n", o->build_base,
            strerror(errno));
    return 2;
  }
  if (e->open(&b) != 0) goto out;
  for (k = 0; k < (int64_t)o->keys; k += step)
    if (e->load(&b, k, k + step < (int64_t)o->keys ? k + step : (int64_t)o->keys) != 0) goto out;
  ok = 1;
out:
  e->close(&b);
  /* The empty checkpoint directories are not part of the state. */
  snprintf(path, sizeof path, "%s/chk", b.dir);
  rm_tree(path);
  snprintf(path, sizeof path, "%s/rchk", b.dir);
  rm_tree(path);
  if (!ok) {
    rm_tree(b.dir);
    return 1;
  }
  printf("engine=%s base=%s keys=%llu seconds=%.3f\n", e->name, o->build_base,
         (unsigned long long)o->keys, now_sec() - t0);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  Opts o;
  const Engine *e = NULL;
  Bench b;
  Gen g;
  Check c;
  Series pauses = {NULL, 0, 0}, asyncs = {NULL, 0, 0};
  int64_t *keys = NULL, rows, next_id = 1;
  uint32_t *aux = NULL;
  uint64_t done = 0, since = 0, distinct = 0;
  double wall0 = now_sec(), gen_secs = 0, t_start, t_last, t_end, next_due, pause, cpu0;
  double p50, p99, pmax, amed, amax;
  long rss, base_rss;
  int64_t completed = 0;
  int in_flight = 0, ok = 0, r;
  size_t i;
  char dist[32];
  process_fn process;

  if (parse_opts(argc, argv, &o) != 0) return 2;
  for (i = 0; i < sizeof engines / sizeof engines[0]; i++)
    if (strcmp(engines[i].name, o.engine) == 0) e = &engines[i];
  if (!e) {
    fprintf(stderr,
            "bench_value: unknown engine '%s' (statelite, statelite-nocache, hash, sqlite%s)\n",
            o.engine,
#ifdef BENCH_ROCKSDB
            ", rocksdb"
#else
            "; rocksdb is in bench_value_rocksdb"
#endif
    );
    return 2;
  }
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  b.o = &o;
  b.state = o.state;
  process = e->process[o.state];
  if (o.zipf > 0) snprintf(dist, sizeof dist, "zipf%g", o.zipf);
  else snprintf(dist, sizeof dist, "uniform");

  if (o.build_base) return build_base(&o, e);
  if ((size_t)snprintf(b.dir, sizeof b.dir, "%s/bench_value-XXXXXX", o.tmp) >= sizeof b.dir) {
    fprintf(stderr, "bench_value: the directory name is too long\n");
    return 2;
  }
  if (!mkdtemp(b.dir)) {
    fprintf(stderr, "bench_value: cannot create a directory under %s: %s\n", o.tmp,
            strerror(errno));
    return 2;
  }
  if (o.base && e->process[0] != hash_value && copy_tree(o.base, b.dir) != 0) {
    fprintf(stderr, "bench_value: cannot copy the base state %s\n", o.base);
    rm_tree(b.dir);
    return 2;
  }
  gen_init(&g, &o);
  keys = malloc(sizeof *keys * CHUNK);
  aux = malloc(sizeof *aux * CHUNK);
  if (!keys || !aux) {
    fprintf(stderr, "bench_value: out of memory for the key buffer\n");
    goto out;
  }
  memset(keys, 0, sizeof *keys * CHUNK);
  memset(aux, 0, sizeof *aux * CHUNK);
  base_rss = rss_now_kb();
  cpu0 = cpu_seconds();

  if (e->open(&b) != 0) goto out;
  if (o.base && e->process[0] == hash_value && e->load(&b, 0, (int64_t)o.keys) != 0) goto out;

  /* The processing clock: real time minus the time spent generating keys. */
#define PNOW() (now_sec() - gen_secs)
  t_start = PNOW();
  next_due = t_start + (double)o.checkpoint_ms / 1e3;
  while (done < o.records) {
    size_t n = (size_t)(o.records - done < CHUNK ? o.records - done : CHUNK), off;
    double g0 = now_sec();
    for (i = 0; i < n; i++) gen_next(&g, &keys[i], &aux[i]);
    gen_secs += now_sec() - g0;
    for (off = 0; off < n; off += BATCH) {
      size_t m = n - off < BATCH ? n - off : BATCH;
      if (process(&b, keys + off, aux + off, done, m) != 0) goto out;
      done += m;
      since += m;
      if (!e->chk_begin) continue;
      if (in_flight) {
        r = e->chk_poll(&b, 0);
        if (r < 0) goto out;
        if (r) {
          in_flight = 0;
          completed++;
          if (series_add(&asyncs, b.last_async_ms)) goto out;
        }
      }
      if (in_flight || done == o.records) continue;
      if (o.interval ? since >= o.interval : o.checkpoint_ms > 0 && PNOW() >= next_due) {
        double t = PNOW();
        if (e->chk_begin(&b, next_id++, &pause) != 0) goto out;
        if (series_add(&pauses, pause)) goto out;
        next_due = t + (double)o.checkpoint_ms / 1e3;
        since = 0;
        if (e->chk_poll) in_flight = 1;
        else completed++;
      }
    }
  }
  t_last = PNOW();
  /* The final checkpoint: after the one in flight, and it must complete. */
  if (e->chk_begin) {
    if (in_flight) {
      if (e->chk_poll(&b, 1) < 0) goto out;
      completed++;
      if (series_add(&asyncs, b.last_async_ms)) goto out;
    }
    if (e->chk_begin(&b, next_id++, &pause) != 0) goto out;
    if (series_add(&pauses, pause)) goto out;
    if (e->chk_poll) {
      if (e->chk_poll(&b, 1) < 0) goto out;
      if (series_add(&asyncs, b.last_async_ms)) goto out;
    }
    completed++;
  }
  t_end = PNOW();
#undef PNOW
  rss = peak_rss_kb();
  cpu0 = cpu_seconds() - cpu0;

  /* Check: the state read back equals what the stream implies. */
  rows = expect_state(&o, &c);
  if (rows < 0) {
    fprintf(stderr, "bench_value: out of memory for the check\n");
    goto out;
  }
  if (e->scan(&b, &c) != 0 || check_done(&o, &c, rows) != 0) goto out;
  if (o.state == ST_VALUE) {
    uint64_t k;
    for (k = 0; k < o.keys; k++) distinct += c.expect[k] != 0;
  } else {
    Check tmp;
    Opts ov = o;
    memset(&tmp, 0, sizeof tmp);
    ov.state = ST_VALUE;
    rows = expect_state(&ov, &tmp);
    distinct = rows > 0 ? (uint64_t)rows : 0;
    free(tmp.expect);
    free(tmp.seen);
    rows = (int64_t)c.rows;
  }
  ok = 1;

  p50 = series_pct(&pauses, 50);
  p99 = series_pct(&pauses, 99);
  pmax = series_pct(&pauses, 100);
  amed = series_pct(&asyncs, 50);
  amax = series_pct(&asyncs, 100);
  printf("engine=%s state=%s records=%llu keys=%llu dist=%s seed=%llu", e->name,
         state_names[o.state], (unsigned long long)o.records, (unsigned long long)o.keys, dist,
         (unsigned long long)o.seed);
  if (o.interval) printf(" interval=%llu", (unsigned long long)o.interval);
  else printf(" checkpoint_ms=%llu", (unsigned long long)o.checkpoint_ms);
  if (strncmp(e->name, "statelite", 9) == 0)
    printf(" budget=%zu", strcmp(e->name, "statelite") == 0 ? o.budget : (size_t)0);
  if (strcmp(e->name, "sqlite") == 0) printf(" page_cache=%zu", o.page_cache);
  if (strcmp(e->name, "rocksdb") == 0)
    printf(" block_cache=%zu rocksdb_checkpoint=%d", o.block_cache, o.rocksdb_chk);
  if (o.state == ST_MAP) printf(" map_keys=%llu", (unsigned long long)o.map_keys);
  if (o.state == ST_LIST)
    printf(" list_keep=%llu list_every=%llu", (unsigned long long)o.list_keep,
           (unsigned long long)o.list_every);
  if (o.base) printf(" base=1");
  if (strncmp(e->name, "statelite", 9) == 0) printf(" cache_bytes=%llu", (unsigned long long)b.cache_bytes);
  printf(" distinct=%llu rows=%lld seconds=%.4f e2e_seconds=%.4f ops_per_sec=%.0f "
         "e2e_ops_per_sec=%.0f checkpoints=%lld pause_p50_ms=%.3f pause_p99_ms=%.3f "
         "pause_max_ms=%.3f async_median_ms=%.3f async_max_ms=%.3f end_max_ms=%.3f "
         "gen_seconds=%.4f cpu_seconds=%.3f peak_rss_kb=%ld base_rss_kb=%ld state_bytes=%llu "
         "wall_seconds=%.3f verified=ok\n",
         (unsigned long long)distinct, (long long)rows, t_last - t_start, t_end - t_start,
         (double)o.records / (t_last - t_start), (double)o.records / (t_end - t_start),
         (long long)completed, p50, p99, pmax, amed, amax, b.end_ms_max, gen_secs, cpu0, rss,
         base_rss, (unsigned long long)b.state_bytes, now_sec() - wall0);

out:
  e->close(&b); /* every close copes with a partial or failed open */
  if (rm_tree(b.dir) != 0)
    fprintf(stderr, "bench_value: could not remove the scratch directory %s\n", b.dir);
  free(keys);
  free(aux);
  free(c.expect);
  free(c.seen);
  free(c.occ);
  free(c.off);
  free(c.lo);
  free(c.pos);
  free(pauses.v);
  free(asyncs.v);
  free(b.buf);
  return ok ? 0 : 1;
}
