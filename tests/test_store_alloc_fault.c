/*
** test_store_alloc_fault.c — allocation failure loops in SQLite's style. One
** counter numbers every allocation made by statelite (through sl_config's
** allocator) and by SQLite (through sqlite3_config(SQLITE_CONFIG_MALLOC)
** wrapping SQLite's default methods). For N = 1, 2, ... allocation N fails
** while a store is opened, states registered, keys set, several kinds of
** state written and read, the store committed and closed. Each run must
** return an error code or succeed, free every statelite allocation, and leave
** a file that opens and holds exactly the previous commit (when the commit
** did not succeed) or exactly the new one (when it did). The loop ends with
** the first run in which no failure was injected. Long mode (make torture)
** tries every N in every variant; otherwise the variants share the N past
** the opening of the store between them, to keep each test short.
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "torture.h"

/* ------------------------------------------------------------------------ */
/* The failing allocators                                                    */
/* ------------------------------------------------------------------------ */

#define MAX_RUNS 20000
#define HDR 16
static const uint64_t live_magic = 0x534c414c4c4f4321ULL;

static struct {
  int armed;
  long count;       /* allocations numbered since armed */
  long fail_at;     /* fail this one (0: none) */
  int hit;          /* a failure was injected */
  long outstanding; /* statelite blocks allocated and not yet freed */
} F;

static int fail_now(void) {
  if (!F.armed) return 0;
  F.count++;
  if (F.fail_at && F.count == F.fail_at) {
    F.hit = 1;
    return 1;
  }
  return 0;
}

static void *fa_malloc(void *ud, size_t n) {
  unsigned char *p;
  ASSERT(ud == &F);
  if (fail_now()) return NULL;
  p = (unsigned char *)malloc(n + HDR);
  if (!p) return NULL;
  memcpy(p, &live_magic, sizeof live_magic);
  F.outstanding++;
  return p + HDR;
}

static unsigned char *fa_base(void *p) {
  unsigned char *b = (unsigned char *)p - HDR;
  ASSERT_MSG(memcmp(b, &live_magic, sizeof live_magic) == 0,
             "statelite handed its allocator a block it did not get from it");
  return b;
}

static void *fa_realloc(void *ud, void *p, size_t n) {
  unsigned char *b, *q;
  if (!p) return fa_malloc(ud, n);
  b = fa_base(p);
  if (fail_now()) return NULL;
  q = (unsigned char *)realloc(b, n + HDR);
  if (!q) return NULL;
  return q + HDR;
}

static void fa_free(void *ud, void *p) {
  unsigned char *b;
  (void)ud;
  if (!p) return;
  b = fa_base(p);
  memset(b, 0, sizeof live_magic);
  F.outstanding--;
  free(b);
}

static const sl_allocator fault_alloc = {fa_malloc, fa_realloc, fa_free, &F};

static sqlite3_mem_methods sq_orig;

static void *sq_malloc(int n) {
  if (fail_now()) return NULL;
  return sq_orig.xMalloc(n);
}

static void sq_free(void *p) { sq_orig.xFree(p); }

static void *sq_realloc(void *p, int n) {
  if (fail_now()) return NULL;
  return sq_orig.xRealloc(p, n);
}

static int sq_size(void *p) { return sq_orig.xSize(p); }
static int sq_roundup(int n) { return sq_orig.xRoundup(n); }
static int sq_init(void *ud) { return sq_orig.xInit(ud); }
static void sq_shutdown(void *ud) { sq_orig.xShutdown(ud); }

/* Routes SQLite's allocations through the counter; before any other use of
** SQLite in this (forked, per-test) process. */
static void install_sqlite_hooks(void) {
  sqlite3_mem_methods m;
  ASSERT(sqlite3_shutdown() == SQLITE_OK);
  ASSERT(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_orig) == SQLITE_OK);
  m = sq_orig;
  m.xMalloc = sq_malloc;
  m.xFree = sq_free;
  m.xRealloc = sq_realloc;
  m.xSize = sq_size;
  m.xRoundup = sq_roundup;
  m.xInit = sq_init;
  m.xShutdown = sq_shutdown;
  ASSERT(sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK);
  ASSERT(sqlite3_initialize() == SQLITE_OK);
}

static void arm(long fail_at) {
  F.armed = 1;
  F.count = 0;
  F.fail_at = fail_at;
  F.hit = 0;
}

static void disarm(void) { F.armed = 0; }

/* ------------------------------------------------------------------------ */
/* The workload                                                              */
/* ------------------------------------------------------------------------ */

static int reduce_sum(void *ud, const sl_value *acc, const sl_value *in, sl_value *out) {
  (void)ud;
  out[0] = sl_int(acc[0].v.i + in[0].v.i);
  out[1] = in[1];
  return SL_OK;
}

/* Registers the states; returns the first failing code. */
static int reg_all(sl_store *st, sl_state **s) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column mk = su_col("mk", SL_TEXT);
  sl_column vv[2];
  sl_column lv = su_col("x", SL_INTEGER);
  sl_state_desc d;
  int rc;
  vv[0] = su_col("n", SL_INTEGER);
  vv[1] = su_col("s", SL_TEXT);
  memset(&d, 0, sizeof d);
  d.name = "vals";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 2;
  d.value = vv;
  if ((rc = sl_state_register(st, &d, &s[0])) != SL_OK) return rc;
  d.name = "sums";
  d.kind = SL_REDUCING_STATE;
  d.reduce = reduce_sum;
  if ((rc = sl_state_register(st, &d, &s[1])) != SL_OK) return rc;
  memset(&d, 0, sizeof d);
  d.name = "hist";
  d.kind = SL_LIST_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 1;
  d.value = &lv;
  if ((rc = sl_state_register(st, &d, &s[2])) != SL_OK) return rc;
  memset(&d, 0, sizeof d);
  d.name = "attrs";
  d.kind = SL_MAP_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_map_key = 1;
  d.map_key = &mk;
  d.n_value = 2;
  d.value = vv;
  if ((rc = sl_state_register(st, &d, &s[3])) != SL_OK) return rc;
  memset(&d, 0, sizeof d);
  d.name = "offsets";
  d.kind = SL_OPERATOR_LIST;
  d.n_value = 1;
  d.value = &lv;
  d.redistribution = SL_SPLIT_EVEN;
  return sl_state_register(st, &d, &s[4]);
}

#define TRY(x) do { rc = (x); if (rc != SL_OK) goto done; } while (0)

/* Writes generation `gen` of the data for keys [from, to). */
static int write_keys(sl_store *st, sl_state **s, int gen, int from, int to) {
  int i, rc = SL_OK;
  for (i = from; i < to; i++) {
    char text[64];
    sl_value k = sl_int(i), v[2], x, m;
    snprintf(text, sizeof text, "gen%d-key%d-%s", gen, i, "padding-padding-padding");
    v[0] = sl_int(gen * 1000 + i);
    v[1] = sl_text(text);
    x = sl_int(gen * 100 + i);
    m = sl_text(i % 2 ? "odd" : "even");
    TRY(sl_store_set_key(st, &k, 1, NULL));
    TRY(sl_value_update(s[0], v));
    TRY(sl_state_add(s[1], v));
    TRY(sl_list_add(s[2], &x));
    TRY(sl_map_put(s[3], &m, v));
  }
done:
  return rc;
}

/* The run under test: open, register, write, read back, commit, close. */
static int run_once(const char *op, size_t budget, int *committed) {
  sl_config cfg;
  sl_store *st = NULL;
  sl_state *s[5];
  int rc, crc, i;
  sl_value x = sl_int(7), m = sl_text("odd");
  static const int probe[4] = {0, 1, 5, 10};
  *committed = 0;
  sl_config_init(&cfg);
  cfg.allocator = &fault_alloc;
  cfg.memory_budget = budget;
  TRY(sl_store_open(su_dir(), op, 0, 1, &cfg, &st));
  TRY(reg_all(st, s));
  TRY(write_keys(st, s, 2, 3, 12));
  /* Clear one old key's value, remove an old map entry, replace a list. */
  {
    sl_value k = sl_int(1);
    TRY(sl_store_set_key(st, &k, 1, NULL));
    TRY(sl_state_clear(s[0]));
    TRY(sl_map_remove(s[3], &m));
    TRY(sl_list_update(s[2], &x, 1));
  }
  TRY(sl_list_add(s[4], &x));
  /* Reads give the right answer or an error, never a wrong answer. */
  for (i = 0; i < 4; i++) {
    sl_value k = sl_int(probe[i]);
    const sl_value *out = NULL;
    TRY(sl_store_set_key(st, &k, 1, NULL));
    rc = sl_value_get(s[0], &out);
    if (probe[i] == 1) {
      ASSERT_MSG(rc != SL_OK, "cleared key 1 has a value (fail_at %ld)", F.fail_at);
      if (rc == SL_NOTFOUND) continue;
      goto done;
    }
    ASSERT_MSG(rc != SL_NOTFOUND, "key %d lost its value (fail_at %ld)", probe[i], F.fail_at);
    if (rc != SL_OK) goto done;
    ASSERT_EQ(out[0].v.i, (probe[i] >= 3 ? 2000 : 1000) + probe[i]);
  }
  {
    sl_iter *it = NULL;
    sl_value k = sl_int(4);
    int n = 0;
    TRY(sl_store_set_key(st, &k, 1, NULL));
    TRY(sl_map_iter(s[3], &it));
    while ((rc = sl_iter_next(it)) == SL_ROW) n++;
    sl_iter_close(it);
    if (rc != SL_DONE) goto done;
    ASSERT_EQ(n, 1);
    rc = SL_OK;
  }
  TRY(sl_store_commit(st));
  *committed = 1;
done:
  crc = sl_store_close(st);
  return rc != SL_OK ? rc : crc;
}

/* The base: keys 0..5 of generation 1, committed, in <dir>/run/0.db. */
static void make_base(const char *dir) {
  sl_config cfg;
  sl_store *st = NULL;
  sl_state *s[5];
  sl_value x = sl_int(1);
  sl_config_init(&cfg);
  cfg.allocator = &fault_alloc;
  ASSERT_OK(sl_store_open(dir, "run", 0, 1, &cfg, &st), st);
  ASSERT_OK(reg_all(st, s), st);
  ASSERT_OK(write_keys(st, s, 1, 0, 6), st);
  ASSERT_OK(sl_list_add(s[4], &x), s[4]);
  su_commit(st);
  su_close(st);
}

static void remove_db(const char *path) {
  char p[4200];
  unlink(path);
  su_pathf(p, sizeof p, "%s-wal", path);
  unlink(p);
  su_pathf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static void copy_db(const char *src, const char *dst) {
  char a[4200], b[4200];
  remove_db(dst);
  su_copy_file(src, dst);
  su_pathf(a, sizeof a, "%s-wal", src);
  su_pathf(b, sizeof b, "%s-wal", dst);
  if (su_exists(a)) su_copy_file(a, b);
}

/* The file opens through the API (no faults) and passes integrity_check. */
static void check_opens(const char *op) {
  sl_store *st = su_open(op, 0, 1, NULL);
  sl_state *s[5];
  ASSERT_OK(reg_all(st, s), st);
  su_close(st);
}

/* The next allocation number to fail. Every one in long mode; otherwise every
** one up to 300 (opening the store) and then every third, starting at
** `offset`, so that the three variants below share the work between them. */
static long next_n(long n, int offset) {
  if (test_long() || n < 300) return n + 1;
  n++;
  while (n % 3 != offset) n++;
  return n;
}

static void fault_loop(size_t budget, int offset) {
  char base_dir[4096], base_path[4096], run_path[4096];
  char *base_dump, *full_dump;
  long n, total = 0;
  int committed = 0, rc, failures = 0, runs = 0, injected = 0;
  install_sqlite_hooks();
  /* The base file is made once in a directory of its own and copied into
  ** place before every run. */
  su_pathf(base_dir, sizeof base_dir, "%s/base", test_dir());
  make_base(base_dir);
  su_db_path(base_path, sizeof base_path, base_dir, "run", 0);
  base_dump = su_dump(base_path);
  ASSERT_EQ(F.outstanding, 0);

  /* The reference run: nothing fails. */
  ASSERT_EQ(test_sh(NULL, 0, "mkdir -p '%s/run'", su_dir()), 0);
  su_db_path(run_path, sizeof run_path, su_dir(), "run", 0);
  copy_db(base_path, run_path);
  arm(0);
  rc = run_once("run", budget, &committed);
  disarm();
  total = F.count;
  ASSERT_OK(rc, NULL);
  ASSERT(committed);
  ASSERT_EQ(F.outstanding, 0);
  full_dump = su_dump(run_path);
  ASSERT(strcmp(base_dump, full_dump) != 0);

  for (n = 1;; n = next_n(n, offset)) {
    char *dump;
    ASSERT_MSG(n <= MAX_RUNS, "still failing at allocation %d", MAX_RUNS);
    copy_db(base_path, run_path);
    arm(n);
    rc = run_once("run", budget, &committed);
    disarm();
    ASSERT_MSG(rc == SL_OK || F.hit, "fail_at %ld: %s without an injected failure", n,
               sl_errstr(rc));
    ASSERT_MSG(rc == SL_OK || (rc >= SL_ERROR && rc <= SL_BUSY),
               "fail_at %ld: result code %d", n, rc);
    ASSERT_MSG(F.outstanding == 0, "fail_at %ld: %ld statelite blocks not freed (%s)", n,
               F.outstanding, sl_errstr(rc));
    dump = su_dump(run_path);
    if (committed) {
      ASSERT_MSG(strcmp(dump, full_dump) == 0,
                 "fail_at %ld: commit succeeded but the file is not the new state (%s)", n,
                 sl_errstr(rc));
    } else {
      ASSERT_MSG(strcmp(dump, base_dump) == 0,
                 "fail_at %ld: no commit (%s) but the file is not the previous commit", n,
                 sl_errstr(rc));
    }
    free(dump);
    if (rc != SL_OK) failures++;
    if (F.hit) injected++;
    /* The dump above already pins the contents; also open it through the
    ** API now and then. */
    if (runs++ % 64 == 0) check_opens("run");
    if (!F.hit) break;
  }
  ASSERT(failures > 0);
  tt_count("faults", injected);
  ASSERT_MSG(n > total - 3, "the loop ended at allocation %ld, the workload made %ld", n,
             total);
  free(base_dump);
  free(full_dump);
}

TEST(alloc_fault_cache_off) { fault_loop(0, 0); }

TEST(alloc_fault_cache_small) { fault_loop(1024, 1); }

TEST(alloc_fault_cache_large) { fault_loop(64u * 1024 * 1024, 2); }
