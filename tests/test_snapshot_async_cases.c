/*
** test_snapshot_async_cases.c — the corners of a checkpoint whose frozen
** batch is not yet committed: a list read or an iterator in between, long
** values, a failed update of an uncached key, registration and the owner
** racing the writer, a slow source's latency, a random map workload against
** a reference, and allocation failures while freezing.
*/
#include <pthread.h>
#include <stdatomic.h>

#include "test_snapshot_util.h"

/* list: k INTEGER -> (x INTEGER) */
static sl_state *as_list(sl_store *st) {
  sl_column k = su_col("k", SL_INTEGER), x = su_col("x", SL_INTEGER);
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = "events"; d.kind = SL_LIST_STATE; d.n_key = 1; d.key = &k; d.n_value = 1; d.value = &x;
  return su_reg(st, &d);
}

/* map: k INTEGER, name TEXT -> score INTEGER */
static sl_state *as_map(sl_store *st) {
  sl_column k = su_col("k", SL_INTEGER), name = su_col("name", SL_TEXT), v = su_col("v", SL_INTEGER);
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = "attrs"; d.kind = SL_MAP_STATE; d.n_key = 1; d.key = &k; d.n_map_key = 1; d.map_key = &name;
  d.n_value = 1; d.value = &v;
  return su_reg(st, &d);
}

static void as_add(sl_state *s, int64_t x) {
  sl_value v = sl_int(x);
  ASSERT_OK(sl_list_add(s, &v), s);
}

/* A list read between sl_snapshot_begin() and the batch's commit reads the
** table, which does not yet hold the frozen rows. */
TEST(snapshot_async_list_get_after_begin) {
  sl_store *st = su_open("rv", 0, 1, NULL);
  sl_state *s = as_list(st);
  sl_snapshot *sn = NULL;
  char target[2048], path[4096];
  su_commit(st);
  su_key_int(st, 1);
  as_add(s, 10);
  snprintf(target, sizeof target, "%s/t", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  su_key_int(st, 1);
  {
    char *got = su_list_str(s, 1);
    fprintf(stderr, "list after begin: '%s' (want '10;')\n", got);
    free(got);
  }
  as_add(s, 20);
  SN_OK(sl_snapshot_write(sn), sn);
  ASSERT_OK(sl_snapshot_end(sn), st);
  su_commit(st);
  su_db_path(path, sizeof path, su_dir(), "rv", 0);
  {
    char *rows = su_sql(path, "SELECT group_concat(seq || ':' || x, ' ') FROM events");
    fprintf(stderr, "file rows (seq:x): %s (want 0:10 1:20)\n", rows);
    free(rows);
  }
  su_key_int(st, 1);
  {
    char *got = su_list_str(s, 1);
    fprintf(stderr, "list at the end: '%s'\n", got);
    ASSERT_TEXT(got, "10;20;");
  }
  su_close(st);
}

/* An iterator opened between sl_snapshot_begin() and the batch's commit. */
TEST(snapshot_async_iter_after_begin) {
  sl_store *st = su_open("rv", 0, 1, NULL);
  sl_state *m = as_map(st);
  sl_snapshot *sn = NULL;
  char target[2048];
  sl_value mk = sl_text("a"), v = sl_int(7);
  su_commit(st);
  su_key_int(st, 1);
  ASSERT_OK(sl_map_put(m, &mk, &v), m);
  snprintf(target, sizeof target, "%s/t", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  su_key_int(st, 1);
  {
    char *got = su_map_str(m);
    fprintf(stderr, "map iter after begin: '%s' (want 'a=7;')\n", got);
    ASSERT_TEXT(got, "'a'=7;");
  }
  SN_OK(sl_snapshot_write(sn), sn);
  ASSERT_OK(sl_snapshot_end(sn), st);
  su_close(st);
}

/* The frozen batch against the budget: long TEXT values. */
TEST(snapshot_async_budget_long_values) {
  sl_config cfg;
  sl_store *st;
  sl_state *s;
  sl_snapshot *sn = NULL;
  char target[2048];
  static char big[2001];
  sl_column k = su_col("k", SL_INTEGER), t = su_col("t", SL_TEXT);
  sl_state_desc d;
  size_t before, after, maxb = 0;
  sl_config_init(&cfg);
  cfg.memory_budget = 4u << 20;
  st = su_open("rv", 0, 1, &cfg);
  memset(&d, 0, sizeof d);
  d.name = "big"; d.kind = SL_VALUE_STATE; d.n_key = 1; d.key = &k; d.n_value = 1; d.value = &t;
  s = su_reg(st, &d);
  memset(big, 'x', 2000);
  for (int i = 0; i < 2 * 1000; i++) {
    sl_value v = sl_text(big);
    if (i == 1000) su_commit(st);
    big[0] = (char)('a' + i / 1000);
    su_key_int(st, i % 1000);
    ASSERT_OK(sl_value_update(s, &v), s);
    if (sl_store_cache_bytes(st) > maxb) maxb = sl_store_cache_bytes(st);
  }
  before = sl_store_cache_bytes(st);
  snprintf(target, sizeof target, "%s/t", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  after = sl_store_cache_bytes(st);
  fprintf(stderr, "budget %zu (less page cache), max before %zu, before begin %zu, after begin %zu\n",
          (size_t)cfg.memory_budget, maxb, before, after);
  {
    const sl_value *out = NULL;
    char path[4096];
    su_db_path(path, sizeof path, su_dir(), "rv", 0);
    fprintf(stderr, "rows with 'b' in the file before a get: %lld\n",
            (long long)su_sql_int(path, "SELECT count(*) FROM big WHERE substr(t,1,1)='b'"));
    su_key_int(st, 5);
    ASSERT_OK(sl_value_get(s, &out), s);
    fprintf(stderr, "rows with 'b' in the file after one sl_value_get on the owner: %lld\n",
            (long long)su_sql_int(path, "SELECT count(*) FROM big WHERE substr(t,1,1)='b'"));
  }
  SN_OK(sl_snapshot_write(sn), sn);
  ASSERT_OK(sl_snapshot_end(sn), st);
  su_close(st);
}

/* An allocator that fails the next allocation of more than 1000 bytes. */
static atomic_int as_fail_big;
static void *as_malloc(void *ud, size_t n) {
  (void)ud;
  if (n > 1000 && atomic_exchange(&as_fail_big, 0)) return NULL;
  return malloc(n);
}
static void *as_realloc(void *ud, void *p, size_t n) {
  (void)ud;
  if (n > 1000 && atomic_exchange(&as_fail_big, 0)) return NULL;
  return realloc(p, n);
}
static void as_free(void *ud, void *p) { (void)ud; free(p); }

/* sl_value_update on a key that is not cached fails with SL_NOMEM: the
** stored value must survive. */
TEST(snapshot_async_update_nomem_on_uncached_key) {
  sl_allocator a = {as_malloc, as_realloc, as_free, NULL};
  sl_config cfg;
  sl_store *st;
  sl_state *s;
  sl_column k = su_col("k", SL_INTEGER), t = su_col("t", SL_TEXT);
  sl_state_desc d;
  static char big[3000];
  sl_value v;
  const sl_value *out = NULL;
  char path[4096];
  int rc;
  sl_config_init(&cfg);
  cfg.memory_budget = 0; /* every call evicts what it can */
  cfg.allocator = &a;
  st = su_open("rv", 0, 1, &cfg);
  memset(&d, 0, sizeof d);
  d.name = "vals"; d.kind = SL_VALUE_STATE; d.n_key = 1; d.key = &k; d.n_value = 1; d.value = &t;
  s = su_reg(st, &d);
  su_key_int(st, 1);
  v = sl_text("keep");
  ASSERT_OK(sl_value_update(s, &v), s);
  su_commit(st);
  su_key_int(st, 2);
  ASSERT_OK(sl_value_get(s, &out) == SL_NOTFOUND ? SL_OK : SL_ERROR, s); /* key 1 evicted */
  memset(big, 'y', sizeof big - 1);
  su_key_int(st, 1);
  v = sl_text(big);
  atomic_store(&as_fail_big, 1);
  rc = sl_value_update(s, &v);
  atomic_store(&as_fail_big, 0);
  fprintf(stderr, "update: %s (%s)\n", sl_errstr(rc), sl_errmsg(st));
  rc = sl_value_get(s, &out);
  fprintf(stderr, "get after the failed update: %s\n", sl_errstr(rc));
  su_commit(st);
  su_db_path(path, sizeof path, su_dir(), "rv", 0);
  fprintf(stderr, "rows of key 1 in the file after commit: %lld\n",
          (long long)su_sql_int(path, "SELECT count(*) FROM vals WHERE k=1"));
  ASSERT_EQ(rc, SL_OK);
  su_close(st);
}

typedef struct as_writer { sl_snapshot *sn; int rc; atomic_int done; } as_writer;
static void *as_write(void *arg) {
  as_writer *w = (as_writer *)arg;
  w->rc = sl_snapshot_write(w->sn);
  atomic_store(&w->done, 1);
  return NULL;
}

/* The owner reads uncached keys and writes cached ones while another
** thread writes the batch. */
TEST(snapshot_async_conc_owner_and_writer) {
  sl_config cfg;
  sl_store *st;
  sn_states s;
  sl_config_init(&cfg);
  cfg.memory_budget = 64u << 20;
  st = su_open("wa", 0, 1, &cfg);
  sn_register(st, &s);
  for (int k = 0; k < 20000; k++) sn_put_key(st, &s, k, 1);
  su_commit(st);
  for (int round = 0; round < 3; round++) {
    sl_snapshot *sn = NULL;
    char target[2048];
    as_writer w;
    pthread_t th;
    for (int k = 0; k < 5000; k++) sn_put_key(st, &s, k, round + 2);
    snprintf(target, sizeof target, "%s/chk-%d", test_dir(), round);
    ASSERT_OK(sl_snapshot_begin(st, target, round + 1, SL_CHECKPOINT, NULL, &sn), st);
    memset(&w, 0, sizeof w);
    w.sn = sn;
    ASSERT(pthread_create(&th, NULL, as_write, &w) == 0);
    for (int k = 0; !atomic_load(&w.done) && k < 200000; k++) {
      const sl_value *out = NULL;
      su_key_int(st, 100000 + k); /* not cached: read from the file */
      int rc = sl_value_get(s.counts, &out);
      ASSERT(rc == SL_NOTFOUND || rc == SL_OK);
    }
    pthread_join(th, NULL);
    SN_OK(w.rc, sn);
    ASSERT_OK(sl_snapshot_end(sn), st);
  }
  su_close(st);
}

/* ---- SDK: records of a slow source wait in `pend` ---- */
static int64_t as_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
typedef struct as_src { int64_t next; } as_src;
static int as_read(sl_ctx *ctx, void *ud) {
  as_src *r = (as_src *)sl_ctx_instance(ctx);
  struct timespec ts = {0, 20 * 1000000};
  sl_value f[1];
  (void)ud;
  if (r->next >= 40) return SL_DONE;
  nanosleep(&ts, NULL); /* "should not block for long": 20 ms per read */
  f[0] = sl_int(as_now_ms());
  r->next++;
  return sl_ctx_emit(ctx, f, 1, r->next);
}
static int as_pos(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = ((as_src *)sl_ctx_instance(ctx))->next;
  return SL_OK;
}
static int as_seek(sl_ctx *ctx, int64_t pos, void *ud) {
  (void)ud;
  ((as_src *)sl_ctx_instance(ctx))->next = pos;
  return SL_OK;
}
static atomic_llong as_max_lat;
static int as_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  int64_t lat = as_now_ms() - rec->f[0].v.i;
  (void)ctx;
  (void)ud;
  if (lat > atomic_load(&as_max_lat)) atomic_store(&as_max_lat, lat);
  return SL_OK;
}

TEST(snapshot_async_sdk_slow_source_latency) {
  sl_job_config jc;
  sl_job *job = NULL;
  sl_source src;
  sl_operator op;
  sl_column out = su_col("t", SL_INTEGER);
  char sd[2048], cd[2048];
  int a, b;
  snprintf(sd, sizeof sd, "%s/state", test_dir());
  snprintf(cd, sizeof cd, "%s/chk", test_dir());
  sl_job_config_init(&jc);
  jc.state_dir = sd;
  jc.checkpoint_dir = cd;
  memset(&src, 0, sizeof src);
  src.read = as_read;
  src.position = as_pos;
  src.seek = as_seek;
  src.instance_size = sizeof(as_src);
  src.out = &out;
  src.n_out = 1;
  src.watermark_delay_ms = -1;
  memset(&op, 0, sizeof op);
  op.process = as_process;
  ASSERT(sl_job_new(&jc, &job) == SL_OK);
  ASSERT(sl_job_source(job, "src", &src, 1, &a) == SL_OK);
  ASSERT(sl_job_operator(job, "op", &op, 1, &b) == SL_OK);
  ASSERT(sl_job_connect(job, a, b, SL_FORWARD, NULL, 0) == SL_OK);
  ASSERT_MSG(sl_job_run(job) == SL_OK, "%s", sl_errmsg(job));
  fprintf(stderr, "largest delay from emit to process: %lld ms (a read takes 20 ms)\n",
          (long long)atomic_load(&as_max_lat));
  sl_job_free(job);
}

/* A registration that fails while another thread writes the batch reads
** st->in_txn (schema.c) as the writer changes it. Run under TSan. */
TEST(snapshot_async_conc_register_fails_while_running) {
  sl_store *st;
  sn_states s;
  sl_column k = su_col("k", SL_INTEGER), kt = su_col("k", SL_TEXT), x = su_col("x", SL_INTEGER);
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = "other"; d.kind = SL_VALUE_STATE; d.n_key = 1; d.key = &k; d.n_value = 1; d.value = &x;
  st = su_open("wa", 0, 1, NULL);
  su_reg(st, &d);
  su_commit(st);
  su_close(st);
  st = su_open("wa", 0, 1, NULL);
  sn_register(st, &s);
  d.key = &kt; /* the file says INTEGER */
  for (int round = 0; round < 5; round++) {
    sl_snapshot *sn = NULL;
    char target[2048];
    as_writer w;
    pthread_t th;
    int fails = 0;
    for (int k2 = 0; k2 < 3000; k2++) sn_put_key(st, &s, k2, round);
    snprintf(target, sizeof target, "%s/chk-%d", test_dir(), round);
    ASSERT_OK(sl_snapshot_begin(st, target, round + 1, SL_CHECKPOINT, NULL, &sn), st);
    memset(&w, 0, sizeof w);
    w.sn = sn;
    ASSERT(pthread_create(&th, NULL, as_write, &w) == 0);
    while (!atomic_load(&w.done)) {
      sl_state *o = NULL;
      int rc = sl_state_register(st, &d, &o);
      ASSERT(rc != SL_OK);
      fails++;
    }
    pthread_join(th, NULL);
    fprintf(stderr, "round %d: %d failed registrations during the write; last: %s\n", round, fails, sl_errmsg(st));
    SN_OK(w.rc, sn);
    ASSERT_OK(sl_snapshot_end(sn), st);
  }
  su_close(st);
}

/* Random puts, removes and gets of a map against a reference, with small
** budgets (eviction, tombstones, in-place rehash, make-room) and
** snapshots now and then. */
TEST(snapshot_async_map_random_against_reference) {
  static const size_t budgets[] = {0, 48u << 10, 300u << 10, 4u << 20};
  for (int b = 0; b < 4; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *m;
    static int64_t ref[400][8]; /* INT64_MIN: absent */
    uint64_t rng = 12345 + (uint64_t)b;
    char op[32];
    sl_config_init(&cfg);
    cfg.memory_budget = budgets[b];
    cfg.page_cache_bytes = 64u << 10;
    snprintf(op, sizeof op, "rnd%d", b);
    st = su_open(op, 0, 1, &cfg);
    m = as_map(st);
    for (int i = 0; i < 400; i++)
      for (int j = 0; j < 8; j++) ref[i][j] = INT64_MIN;
    for (int n = 0; n < 60000; n++) {
      uint64_t r;
      int key, mk, what;
      char nm[16];
      sl_value mkv;
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      r = rng >> 33;
      key = (int)(r % 400);
      mk = (int)((r >> 9) % 8);
      what = (int)((r >> 12) % 10);
      snprintf(nm, sizeof nm, "m%d", mk);
      mkv = sl_text(nm);
      su_key_int(st, key);
      if (what < 4) {
        sl_value v = sl_int((int64_t)n);
        ASSERT_OK(sl_map_put(m, &mkv, &v), m);
        ref[key][mk] = n;
      } else if (what < 6) {
        ASSERT_OK(sl_map_remove(m, &mkv), m);
        ref[key][mk] = INT64_MIN;
      } else if (what < 9) {
        const sl_value *out = NULL;
        int rc = sl_map_get(m, &mkv, &out);
        if (ref[key][mk] == INT64_MIN) {
          ASSERT_MSG(rc == SL_NOTFOUND, "budget %zu op %d: key %d %s: got %s", budgets[b], n, key, nm, sl_errstr(rc));
        } else {
          ASSERT_MSG(rc == SL_OK && out[0].v.i == ref[key][mk], "budget %zu op %d: key %d %s", budgets[b], n, key, nm);
        }
      } else if ((r >> 16) % 50 == 0) {
        sl_snapshot *sn = NULL;
        char target[2048];
        snprintf(target, sizeof target, "%s/t%d-%d", test_dir(), b, n);
        ASSERT_OK(sl_snapshot_begin(st, target, n + 1, SL_CHECKPOINT, NULL, &sn), st);
        SN_OK(sl_snapshot_write(sn), sn);
        ASSERT_OK(sl_snapshot_end(sn), st);
      } else if ((r >> 16) % 50 == 1) {
        su_commit(st);
      }
    }
    su_commit(st);
    su_close(st);
  }
}

/* Allocation failures in sl_snapshot_begin(): nothing may stay allocated. */
static struct { long count, fail_at, live; int armed; } rv3;
static void *rv3_malloc(void *ud, size_t n) {
  void *p;
  (void)ud;
  if (rv3.armed && ++rv3.count == rv3.fail_at) return NULL;
  p = malloc(n ? n : 1);
  if (p) rv3.live++;
  return p;
}
static void *rv3_realloc(void *ud, void *p, size_t n) {
  void *q;
  (void)ud;
  if (rv3.armed && ++rv3.count == rv3.fail_at) return NULL;
  q = realloc(p, n ? n : 1);
  if (q && !p) rv3.live++;
  return q;
}
static void rv3_free(void *ud, void *p) {
  (void)ud;
  if (p) rv3.live--;
  free(p);
}

TEST(snapshot_async_begin_nomem_leaks) {
  sl_allocator a = {rv3_malloc, rv3_realloc, rv3_free, NULL};
  sl_config cfg;
  sl_store *st;
  sn_states s;
  sl_config_init(&cfg);
  cfg.allocator = &a;
  st = su_open("wa", 0, 1, &cfg);
  sn_register(st, &s);
  for (long n = 1; n < 16; n++) {
    sl_snapshot *sn = NULL;
    char target[2048];
    long before;
    int rc;
    for (int k = 0; k < 50; k++) sn_put_key(st, &s, k, (int)n);
    snprintf(target, sizeof target, "%s/t%ld", test_dir(), n);
    before = rv3.live;
    rv3.count = 0;
    rv3.fail_at = n;
    rv3.armed = 1;
    rc = sl_snapshot_begin(st, target, n, SL_CHECKPOINT, NULL, &sn);
    rv3.armed = 0;
    fprintf(stderr, "fail at %ld: %s, live %ld -> %ld\n", n, sl_errstr(rc), before, rv3.live);
    if (rc == SL_OK) {
      SN_OK(sl_snapshot_write(sn), sn);
      ASSERT_OK(sl_snapshot_end(sn), st);
      continue;
    }
    if (rv3.live != before)
      fprintf(stderr, "allocation %ld failed (%s): %ld blocks more than before\n", n,
              sl_errmsg(st), rv3.live - before);
  }
  su_close(st);
  fprintf(stderr, "after close: %ld blocks still allocated\n", rv3.live);
  ASSERT_EQ(rv3.live, 0);
}
