/*
** test_store_cache.c — the write-back cache is invisible except for speed:
** one deterministic random workload (value, list and map operations over 2000
** keys, with clears and removes, commits every few hundred operations) runs
** with the cache off, with a budget much smaller than the state and with a
** large one. Every read is checked against an in-test model, the reads of the
** three runs are identical, the cache stays within its budget, and after the
** final commit and close the three files hold identical rows in every table.
*/
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

#define NKEYS 2000
#define NMK 21
#define NOPS 40000
#define COMMIT_EVERY 997
#define SLACK 8192

/* The model of what the store must hold. */
typedef struct model {
  int val_present[NKEYS];
  int64_t val_a[NKEYS];
  char val_s[NKEYS][48];
  int64_t *list[NKEYS];
  size_t list_n[NKEYS], list_cap[NKEYS];
  int map_present[NKEYS][NMK];
  char map_y[NKEYS][NMK][48];
} model;

static void model_free(model *m) {
  int i;
  for (i = 0; i < NKEYS; i++) free(m->list[i]);
  free(m);
}

static void list_push(model *m, int k, int64_t x) {
  if (m->list_n[k] == m->list_cap[k]) {
    size_t cap = m->list_cap[k] ? m->list_cap[k] * 2 : 4;
    int64_t *p = (int64_t *)realloc(m->list[k], cap * sizeof *p);
    ASSERT(p != NULL);
    m->list[k] = p;
    m->list_cap[k] = cap;
  }
  m->list[k][m->list_n[k]++] = x;
}

static sl_state *reg_state(sl_store *st, int kind) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column mk = su_col("mk", SL_INTEGER);
  sl_column vv[2];
  sl_column lv = su_col("x", SL_INTEGER);
  sl_column mv = su_col("y", SL_TEXT);
  sl_state_desc d;
  vv[0] = su_col("a", SL_INTEGER);
  vv[1] = su_col("s", SL_TEXT);
  memset(&d, 0, sizeof d);
  d.kind = kind;
  d.n_key = 1;
  d.key = &key;
  if (kind == SL_VALUE_STATE) {
    d.name = "v";
    d.n_value = 2;
    d.value = vv;
  } else if (kind == SL_LIST_STATE) {
    d.name = "l";
    d.n_value = 1;
    d.value = &lv;
  } else {
    d.name = "m";
    d.n_map_key = 1;
    d.map_key = &mk;
    d.n_value = 1;
    d.value = &mv;
  }
  return su_reg(st, &d);
}

static void rand_text(su_rng *r, char *out) {
  size_t n = su_rand_below(r, 41), i;
  for (i = 0; i < n; i++) out[i] = (char)('a' + su_rand_below(r, 26));
  out[n] = 0;
}

/* Model renderings in the su_* formats. */
static char *model_value(const model *m, int k) {
  su_buf b = {0, 0, 0};
  if (m->val_present[k]) su_addf(&b, "%lld,'%s'", (long long)m->val_a[k], m->val_s[k]);
  return su_take(&b);
}

static char *model_list(const model *m, int k) {
  su_buf b = {0, 0, 0};
  size_t i;
  for (i = 0; i < m->list_n[k]; i++) su_addf(&b, "%lld;", (long long)m->list[k][i]);
  return su_take(&b);
}

static char *model_map(const model *m, int k) {
  su_buf b = {0, 0, 0};
  int j;
  for (j = 0; j < NMK; j++) {
    if (m->map_present[k][j]) su_addf(&b, "%d='%s';", j, m->map_y[k][j]);
  }
  return su_take(&b);
}

static char *map_get_str(sl_state *s, int j) {
  sl_value mk = sl_int(j);
  const sl_value *out = NULL;
  int rc = sl_map_get(s, &mk, &out);
  if (rc == SL_NOTFOUND) return su_take(&(su_buf){0, 0, 0});
  ASSERT_OK(rc, s);
  return su_values_str(out, 1);
}

#define CHECK_READ(trace, op, k, got, want) do { char *g__ = (got), *w__ = (want); \
    ASSERT_MSG(strcmp(g__, w__) == 0, "op %d key %d: got \"%s\", model says \"%s\"", \
               (op), (k), g__, w__); \
    su_addf((trace), "%d:%d:%s\n", (op), (k), g__); free(g__); free(w__); } while (0)

/* Runs the workload in operator `op` with the given budget; returns the text
** of every read it made, and leaves the file committed and closed. */
static char *run_workload(const char *op, size_t budget, char *path, size_t cap) {
  sl_config cfg;
  sl_store *st;
  sl_state *v, *l, *mp;
  su_rng r = {0x0123456789ABCDEFULL};
  su_buf trace = {0, 0, 0};
  model *m = (model *)calloc(1, sizeof *m);
  int i;
  size_t max_bytes = 0;
  ASSERT(m != NULL);
  sl_config_init(&cfg);
  cfg.memory_budget = budget;
  st = su_open(op, 0, 1, &cfg);
  v = reg_state(st, SL_VALUE_STATE);
  l = reg_state(st, SL_LIST_STATE);
  mp = reg_state(st, SL_MAP_STATE);
  for (i = 0; i < NOPS; i++) {
    int k = (int)su_rand_below(&r, NKEYS);
    int what = (int)su_rand_below(&r, 100);
    size_t bytes;
    su_key_int(st, k);
    if (what < 30) {
      sl_value x[2];
      m->val_present[k] = 1;
      m->val_a[k] = (int64_t)su_rand(&r);
      rand_text(&r, m->val_s[k]);
      x[0] = sl_int(m->val_a[k]);
      x[1] = sl_text(m->val_s[k]);
      ASSERT_OK(sl_value_update(v, x), v);
    } else if (what < 40) {
      CHECK_READ(&trace, i, k, su_value_str(v, 2), model_value(m, k));
    } else if (what < 45) {
      ASSERT_OK(sl_state_clear(v), v);
      m->val_present[k] = 0;
    } else if (what < 55) {
      int64_t x = (int64_t)su_rand_below(&r, 1000000);
      sl_value xv = sl_int(x);
      ASSERT_OK(sl_list_add(l, &xv), l);
      list_push(m, k, x);
    } else if (what < 60) {
      CHECK_READ(&trace, i, k, su_list_str(l, 1), model_list(m, k));
    } else if (what < 63) {
      sl_value rows[3];
      size_t n = su_rand_below(&r, 4), j;
      m->list_n[k] = 0;
      for (j = 0; j < n; j++) {
        int64_t x = (int64_t)su_rand_below(&r, 1000);
        rows[j] = sl_int(x);
        list_push(m, k, x);
      }
      ASSERT_OK(sl_list_update(l, rows, n), l);
    } else if (what < 65) {
      ASSERT_OK(sl_state_clear(l), l);
      m->list_n[k] = 0;
    } else if (what < 77) {
      int j = (int)su_rand_below(&r, NMK);
      sl_value mk = sl_int(j), y;
      rand_text(&r, m->map_y[k][j]);
      m->map_present[k][j] = 1;
      y = sl_text(m->map_y[k][j]);
      ASSERT_OK(sl_map_put(mp, &mk, &y), mp);
    } else if (what < 83) {
      int j = (int)su_rand_below(&r, NMK);
      char want[64];
      int found = -1;
      sl_value mk = sl_int(j);
      snprintf(want, sizeof want, "'%s'", m->map_y[k][j]);
      CHECK_READ(&trace, i, k, map_get_str(mp, j),
                 su_strdup(m->map_present[k][j] ? want : ""));
      ASSERT_OK(sl_map_contains(mp, &mk, &found), mp);
      ASSERT_EQ(found, m->map_present[k][j]);
    } else if (what < 89) {
      int j = (int)su_rand_below(&r, NMK);
      sl_value mk = sl_int(j);
      ASSERT_OK(sl_map_remove(mp, &mk), mp);
      m->map_present[k][j] = 0;
    } else if (what < 95) {
      CHECK_READ(&trace, i, k, su_map_str(mp), model_map(m, k));
    } else if (what < 97) {
      ASSERT_OK(sl_state_clear(mp), mp);
      memset(m->map_present[k], 0, sizeof m->map_present[k]);
    } else {
      /* A read of a key that was just written by another state. */
      CHECK_READ(&trace, i, k, su_value_str(v, 2), model_value(m, k));
    }
    bytes = sl_store_cache_bytes(st);
    if (bytes > max_bytes) max_bytes = bytes;
    ASSERT_MSG(bytes <= budget + SLACK, "op %d: cache holds %zu bytes, budget %zu", i, bytes,
               budget);
    if (i % COMMIT_EVERY == COMMIT_EVERY - 1) su_commit(st);
  }
  su_commit(st);
  snprintf(path, cap, "%s", sl_store_path(st));
  su_close(st);

  /* Everything reads back after a reopen (with the same budget). */
  st = su_open(op, 0, 1, &cfg);
  v = reg_state(st, SL_VALUE_STATE);
  l = reg_state(st, SL_LIST_STATE);
  mp = reg_state(st, SL_MAP_STATE);
  for (i = 0; i < NKEYS; i++) {
    su_key_int(st, i);
    CHECK_READ(&trace, -1, i, su_value_str(v, 2), model_value(m, i));
    CHECK_READ(&trace, -1, i, su_list_str(l, 1), model_list(m, i));
    CHECK_READ(&trace, -1, i, su_map_str(mp), model_map(m, i));
  }
  su_close(st);
  (void)max_bytes;
  model_free(m);
  return su_take(&trace);
}

/* Index of the first line where a and b differ, for the failure message. */
static const char *first_diff(const char *a, const char *b) {
  const char *line = a;
  while (*a && *a == *b) {
    if (*a == '\n') line = a + 1;
    a++;
    b++;
  }
  return line;
}

TEST(cache_budgets_give_identical_files) {
  static const size_t budgets[3] = {0, 16 * 1024, 64u * 1024 * 1024};
  static const char *ops[3] = {"nocache", "smallcache", "bigcache"};
  char paths[3][4096];
  char *traces[3], *dumps[3];
  int i;
  for (i = 0; i < 3; i++) {
    traces[i] = run_workload(ops[i], budgets[i], paths[i], sizeof paths[i]);
    dumps[i] = su_dump_no_meta(paths[i]);
  }
  for (i = 1; i < 3; i++) {
    ASSERT_MSG(strcmp(traces[0], traces[i]) == 0, "reads differ (budget %zu), from: %.200s",
               budgets[i], first_diff(traces[0], traces[i]));
    ASSERT_MSG(strcmp(dumps[0], dumps[i]) == 0,
               "file rows differ between budget 0 and %zu, from: %.300s", budgets[i],
               first_diff(dumps[0], dumps[i]));
  }
  /* The dumps really contain the three states' rows. */
  ASSERT_HAS(dumps[0], "== v\n");
  ASSERT_HAS(dumps[0], "== l\n");
  ASSERT_HAS(dumps[0], "== m\n");
  ASSERT(su_count(paths[0], "v") > 100);
  ASSERT(su_count(paths[0], "l") > 100);
  ASSERT(su_count(paths[0], "m") > 100);
  /* The state is far larger than the small budget. */
  ASSERT(su_sql_int(paths[0], "SELECT (SELECT sum(length(s)) + 8 * count(*) FROM v) + "
                              "(SELECT sum(length(y)) + 8 * count(*) FROM m) + "
                              "(SELECT 16 * count(*) FROM l)") > 8 * 16 * 1024);
  for (i = 0; i < 3; i++) {
    free(traces[i]);
    free(dumps[i]);
  }
}

TEST(quick_cache_reads_own_writes_before_commit) {
  static const size_t budgets[3] = {0, 16 * 1024, 64u * 1024 * 1024};
  int b;
  for (b = 0; b < 3; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *v;
    char op[32], path[4096];
    int i;
    snprintf(op, sizeof op, "own%d", b);
    sl_config_init(&cfg);
    cfg.memory_budget = budgets[b];
    st = su_open(op, 0, 1, &cfg);
    v = reg_state(st, SL_VALUE_STATE);
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    for (i = 0; i < 3000; i++) {
      char s[48];
      sl_value x[2];
      snprintf(s, sizeof s, "value-%d-%032d", i, i);
      x[0] = sl_int(i);
      x[1] = sl_text(s);
      su_key_int(st, i);
      ASSERT_OK(sl_value_update(v, x), v);
      ASSERT(sl_store_cache_bytes(st) <= budgets[b] + SLACK);
    }
    for (i = 2999; i >= 0; i--) {
      char want[80];
      su_key_int(st, i);
      snprintf(want, sizeof want, "%d,'value-%d-%032d'", i, i, i);
      ASSERT_TEXT(su_value_str(v, 2), want);
    }
    /* Another connection sees none of it before the commit. */
    ASSERT_EQ(su_count(path, "v"), 0);
    su_commit(st);
    ASSERT_EQ(su_count(path, "v"), 3000);
    ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM v WHERE s = 'value-' || id || '-' || "
                               "printf('%032d', id)"), 3000);
    su_close(st);
  }
}

TEST(quick_cache_large_entries_within_budget) {
  sl_config cfg;
  sl_store *st;
  sl_state *v;
  char big[4097];
  int i;
  sl_config_init(&cfg);
  cfg.memory_budget = 16 * 1024;
  st = su_open("bigvals", 0, 1, &cfg);
  v = reg_state(st, SL_VALUE_STATE);
  for (i = 0; i < 200; i++) {
    sl_value x[2];
    memset(big, 'a' + i % 26, 4096);
    big[4096] = 0;
    x[0] = sl_int(i);
    x[1] = sl_text(big);
    su_key_int(st, i);
    ASSERT_OK(sl_value_update(v, x), v);
    ASSERT_MSG(sl_store_cache_bytes(st) <= 16 * 1024 + 4096 + SLACK,
               "cache holds %zu bytes", sl_store_cache_bytes(st));
  }
  for (i = 0; i < 200; i++) {
    const sl_value *out = NULL;
    su_key_int(st, i);
    ASSERT_OK(sl_value_get(v, &out), v);
    ASSERT_EQ(out[1].n, 4096);
    ASSERT_EQ(((const char *)out[1].v.p)[4095], 'a' + i % 26);
    ASSERT_EQ(out[0].v.i, i);
  }
  su_commit(st);
  su_close(st);
}

/* Rows of INTEGER and REAL columns too wide for a slot (9 or more columns, 8
** with a TTL, 40 beyond the 32 of the NULL mask) live on the heap: every
** write and read of them, in the cache and after a reopen, keeps each key's
** own values and touches no other slot. */
TEST(quick_cache_wide_fixed_rows) {
  static const int widths[] = {7, 8, 9, 10, 33, 40};
  for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
    for (int ttl = 0; ttl < 2; ttl++) {
      for (int kind = 0; kind < 2; kind++) {
        int nv = widths[w];
        sl_column key = su_col("id", SL_INTEGER), mk = su_col("mk", SL_INTEGER);
        sl_column cols[40];
        char names[40][16];
        sl_value vals[40];
        sl_state_desc d;
        sl_store *st;
        sl_state *s;
        char op[48];
        snprintf(op, sizeof op, "wide%d_%d_%d", nv, ttl, kind);
        for (int c = 0; c < nv; c++) {
          snprintf(names[c], sizeof names[c], "c%d", c);
          cols[c] = su_col(names[c], c % 3 == 2 ? SL_REAL : SL_INTEGER);
        }
        memset(&d, 0, sizeof d);
        d.name = "wide";
        d.kind = kind ? SL_MAP_STATE : SL_VALUE_STATE;
        d.n_key = 1;
        d.key = &key;
        if (kind) {
          d.n_map_key = 1;
          d.map_key = &mk;
        }
        d.n_value = nv;
        d.value = cols;
        d.ttl_ms = ttl ? 3600 * 1000 : 0;
        for (int round = 0; round < 2; round++) {
          st = su_open(op, 0, 1, NULL);
          s = su_reg(st, &d);
          for (int k = 0; k < 50 && round == 0; k++) {
            for (int c = 0; c < nv; c++)
              vals[c] = c % 3 == 2 ? sl_real(k * 1000 + c + 0.5) : sl_int(k * 1000 + c);
            if (k % 7 == 3) vals[nv - 1] = sl_null(); /* a NULL in the last column */
            su_key_int(st, k);
            if (kind) {
              sl_value m = sl_int(k % 5);
              ASSERT_OK(sl_map_put(s, &m, vals), s);
            } else {
              ASSERT_OK(sl_value_update(s, vals), s);
            }
          }
          for (int k = 0; k < 50; k++) {
            const sl_value *out = NULL;
            su_key_int(st, k);
            if (kind) {
              sl_value m = sl_int(k % 5);
              ASSERT_OK(sl_map_get(s, &m, &out), s);
            } else {
              ASSERT_OK(sl_value_get(s, &out), s);
            }
            for (int c = 0; c < nv; c++) {
              if (c == nv - 1 && k % 7 == 3) {
                ASSERT_MSG(out[c].type == SL_NULL, "width %d key %d column %d: type %d", nv, k,
                           c, out[c].type);
              } else if (c % 3 == 2) {
                ASSERT_MSG(out[c].type == SL_REAL && out[c].v.r == k * 1000 + c + 0.5,
                           "width %d ttl %d kind %d round %d key %d column %d", nv, ttl, kind,
                           round, k, c);
              } else {
                ASSERT_MSG(out[c].type == SL_INTEGER && out[c].v.i == k * 1000 + c,
                           "width %d ttl %d kind %d round %d key %d column %d", nv, ttl, kind,
                           round, k, c);
              }
            }
          }
          su_commit(st);
          su_close(st);
        }
        {
          char path[4096];
          su_db_path(path, sizeof path, su_dir(), op, 0);
          ASSERT_EQ(su_count(path, "wide"), 50);
        }
      }
    }
  }
}
