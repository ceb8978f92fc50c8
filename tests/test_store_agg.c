/*
** test_store_agg.c — reducing and aggregating state: folding with the
** callbacks (first value stored as it is, accumulators starting from the
** column defaults), merge, result, errors from callbacks, commit + reopen,
** many keys, clear of the current key only, rollback of uncommitted changes,
** the rows in the file. Each scenario runs with the write-back cache off,
** small and large.
*/
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

static const size_t budgets[] = {0, 16 * 1024, 64u * 1024 * 1024};
#define N_BUDGETS 3
/* An input the callbacks refuse with SL_ERROR. */
#define BAD_INPUT (-987654321)

static void cfg_budget(sl_config *cfg, size_t budget) {
  sl_config_init(cfg);
  cfg->memory_budget = budget;
}

/* ------------------------------------------------------------------------ */
/* Reducing: (total INTEGER, names TEXT); total = acc - in, names joined     */
/* ------------------------------------------------------------------------ */

typedef struct red_ud {
  int calls;
  char text[4096];
} red_ud;

static int reduce_cb(void *ud, const sl_value *acc, const sl_value *in, sl_value *out) {
  red_ud *u = (red_ud *)ud;
  size_t na = acc[1].type == SL_TEXT ? acc[1].n : 0;
  size_t ni = in[1].type == SL_TEXT ? in[1].n : 0;
  u->calls++;
  if (in[0].type == SL_INTEGER && in[0].v.i == BAD_INPUT) return SL_ERROR;
  ASSERT(acc[0].type == SL_INTEGER && in[0].type == SL_INTEGER);
  ASSERT(na + ni + 2 < sizeof u->text);
  if (na) memcpy(u->text, acc[1].v.p, na);
  u->text[na] = ',';
  if (ni) memcpy(u->text + na + 1, in[1].v.p, ni);
  /* Scribble after the end: statelite must copy exactly n bytes. */
  u->text[na + 1 + ni] = '#';
  out[0] = sl_int(acc[0].v.i - in[0].v.i);
  out[1] = sl_textn(u->text, na + 1 + ni);
  return SL_OK;
}

static sl_state *reg_red(sl_store *st, red_ud *u) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column val[2];
  sl_state_desc d;
  val[0] = su_col("total", SL_INTEGER);
  val[1] = su_col("names", SL_TEXT);
  memset(&d, 0, sizeof d);
  d.name = "red";
  d.kind = SL_REDUCING_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 2;
  d.value = val;
  d.reduce = reduce_cb;
  d.ud = u;
  return su_reg(st, &d);
}

static void red_add(sl_state *s, int64_t n, const char *name) {
  sl_value in[2];
  in[0] = sl_int(n);
  in[1] = sl_text(name);
  ASSERT_OK(sl_state_add(s, in), s);
}

TEST(quick_reducing_fold_and_reopen) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    red_ud u;
    char op[32], path[4096], want[128];
    int kg;
    memset(&u, 0, sizeof u);
    snprintf(op, sizeof op, "red%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_red(st, &u);
    kg = su_key_int(st, 1);
    ASSERT_TEXT(su_value_str(s, 2), "");
    red_add(s, 10, "a");
    ASSERT_EQ(u.calls, 0); /* the first value is stored as it is */
    ASSERT_TEXT(su_value_str(s, 2), "10,'a'");
    red_add(s, 3, "b");
    red_add(s, 2, "c");
    ASSERT_EQ(u.calls, 2);
    ASSERT_TEXT(su_value_str(s, 2), "5,'a,b,c'");
    su_key_int(st, 2);
    red_add(s, -4, "x");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_TEXT(su_columns(path, "red"), "kg,id,total,names");
    snprintf(want, sizeof want, "%d|1|5|a,b,c\n", kg);
    ASSERT_TEXT(su_sql(path, "SELECT kg, id, total, names FROM red WHERE id = 1"), want);

    st = su_open(op, 0, 1, &cfg);
    s = reg_red(st, &u);
    su_key_int(st, 1);
    ASSERT_TEXT(su_value_str(s, 2), "5,'a,b,c'");
    red_add(s, 1, "d");
    ASSERT_TEXT(su_value_str(s, 2), "4,'a,b,c,d'");
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 2), "-4,'x'");
    su_commit(st);
    su_close(st);
    ASSERT_TEXT(su_sql(path, "SELECT id, total, names FROM red ORDER BY id"),
                "1|4|a,b,c,d\n2|-4|x\n");
  }
}

TEST(quick_reducing_callback_error_propagates) {
  sl_store *st = su_open("rederr", 0, 1, NULL);
  red_ud u;
  sl_state *s;
  sl_value in[2];
  memset(&u, 0, sizeof u);
  s = reg_red(st, &u);
  su_key_int(st, 1);
  red_add(s, 10, "a");
  red_add(s, 1, "b");
  in[0] = sl_int(BAD_INPUT);
  in[1] = sl_text("bad");
  ASSERT_RC(sl_state_add(s, in), SL_ERROR, s);
  ASSERT_TEXT(su_value_str(s, 2), "9,'a,b'");
  su_commit(st);
  su_close(st);
  st = su_open("rederr", 0, 1, NULL);
  s = reg_red(st, &u);
  su_key_int(st, 1);
  ASSERT_TEXT(su_value_str(s, 2), "9,'a,b'");
  su_close(st);
}

TEST(reducing_many_keys) {
  const int64_t n = 10000;
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    red_ud u;
    char op[32], path[4096];
    int64_t i;
    memset(&u, 0, sizeof u);
    snprintf(op, sizeof op, "redmany%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_red(st, &u);
    for (i = 0; i < n; i++) {
      su_key_int(st, i);
      red_add(s, i * 2, "p");
    }
    su_commit(st);
    for (i = 0; i < n; i++) {
      su_key_int(st, i);
      red_add(s, i, "q");
    }
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_EQ(su_count(path, "red"), n);
    ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM red WHERE total = id AND names = 'p,q'"), n);
    st = su_open(op, 0, 1, &cfg);
    s = reg_red(st, &u);
    for (i = 0; i < n; i += 7) {
      char want[64];
      su_key_int(st, i);
      snprintf(want, sizeof want, "%lld,'p,q'", (long long)i);
      ASSERT_TEXT(su_value_str(s, 2), want);
    }
    su_close(st);
  }
}

TEST(quick_reducing_clear_and_rollback) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    red_ud u;
    char op[32], path[4096];
    char *before;
    memset(&u, 0, sizeof u);
    snprintf(op, sizeof op, "redclr%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_red(st, &u);
    su_key_int(st, 1);
    red_add(s, 1, "a");
    su_key_int(st, 2);
    red_add(s, 2, "b");
    su_commit(st);
    su_key_int(st, 1);
    ASSERT_OK(sl_state_clear(s), s);
    ASSERT_TEXT(su_value_str(s, 2), "");
    red_add(s, 50, "fresh"); /* stored as it is again */
    ASSERT_TEXT(su_value_str(s, 2), "50,'fresh'");
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 2), "2,'b'");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    ASSERT_TEXT(su_sql(path, "SELECT id, total, names FROM red ORDER BY id"),
                "1|50|fresh\n2|2|b\n");
    before = su_dump(path);
    /* Uncommitted: gone after close. */
    red_add(s, 1, "c");
    su_key_int(st, 1);
    ASSERT_OK(sl_state_clear(s), s);
    su_close(st);
    ASSERT_TEXT(su_dump(path), before);
    st = su_open(op, 0, 1, &cfg);
    s = reg_red(st, &u);
    su_key_int(st, 1);
    ASSERT_TEXT(su_value_str(s, 2), "50,'fresh'");
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 2), "2,'b'");
    su_close(st);
    free(before);
  }
}

/* ------------------------------------------------------------------------ */
/* Aggregating: accumulator (sum INTEGER default 100, cnt INTEGER default 0),
** input one INTEGER, result avg REAL = sum / cnt.                           */
/* ------------------------------------------------------------------------ */

typedef struct agg_ud {
  int adds, merges, results;
} agg_ud;

static int agg_add(void *ud, const sl_value *acc, const sl_value *in, sl_value *out) {
  agg_ud *u = (agg_ud *)ud;
  u->adds++;
  if (in[0].type == SL_INTEGER && in[0].v.i == BAD_INPUT) return SL_ERROR;
  ASSERT(acc[0].type == SL_INTEGER && acc[1].type == SL_INTEGER);
  out[0] = sl_int(acc[0].v.i + in[0].v.i);
  out[1] = sl_int(acc[1].v.i + 1);
  return SL_OK;
}

static int agg_merge(void *ud, const sl_value *a, const sl_value *b, sl_value *out) {
  agg_ud *u = (agg_ud *)ud;
  u->merges++;
  out[0] = sl_int(a[0].v.i + b[0].v.i);
  out[1] = sl_int(a[1].v.i + b[1].v.i);
  return SL_OK;
}

static int agg_result(void *ud, const sl_value *acc, sl_value *out) {
  agg_ud *u = (agg_ud *)ud;
  u->results++;
  if (acc[1].v.i == 0) {
    out[0] = sl_null();
  } else {
    out[0] = sl_real((double)acc[0].v.i / (double)acc[1].v.i);
  }
  return SL_OK;
}

static sl_state *reg_agg(sl_store *st, agg_ud *u) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column acc[2];
  sl_column res = su_col("avg", SL_REAL);
  sl_state_desc d;
  acc[0] = su_col_dflt("sum", SL_INTEGER, sl_int(100));
  acc[1] = su_col_dflt("cnt", SL_INTEGER, sl_int(0));
  memset(&d, 0, sizeof d);
  d.name = "avgs";
  d.kind = SL_AGGREGATING_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 2;
  d.value = acc;
  d.n_input = 1;
  d.n_result = 1;
  d.result = &res;
  d.agg_add = agg_add;
  d.agg_merge = agg_merge;
  d.agg_result = agg_result;
  d.ud = u;
  return su_reg(st, &d);
}

static void agg_in(sl_state *s, int64_t v) {
  sl_value in = sl_int(v);
  ASSERT_OK(sl_state_add(s, &in), s);
}

static char *agg_result_str(sl_state *s) {
  const sl_value *out = NULL;
  int rc = sl_agg_get(s, &out);
  if (rc == SL_NOTFOUND) return su_take(&(su_buf){0, 0, 0});
  ASSERT_OK(rc, s);
  return su_values_str(out, 1);
}

TEST(quick_aggregating_add_merge_result) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    agg_ud u;
    char op[32], path[4096];
    sl_value acc[2];
    memset(&u, 0, sizeof u);
    snprintf(op, sizeof op, "agg%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_agg(st, &u);
    su_key_int(st, 1);
    ASSERT_TEXT(agg_result_str(s), "");
    ASSERT_TEXT(su_value_str(s, 2), "");
    agg_in(s, 5); /* from the defaults: (100 + 5, 0 + 1) */
    ASSERT_TEXT(su_value_str(s, 2), "105,1");
    agg_in(s, 15);
    ASSERT_TEXT(su_value_str(s, 2), "120,2");
    ASSERT_TEXT(agg_result_str(s), "r60");
    ASSERT(u.adds == 2 && u.results >= 1);
    acc[0] = sl_int(30);
    acc[1] = sl_int(2);
    ASSERT_OK(sl_agg_merge(s, acc), s);
    ASSERT_EQ(u.merges, 1);
    ASSERT_TEXT(su_value_str(s, 2), "150,4");
    ASSERT_TEXT(agg_result_str(s), "r37.5");
    /* Merging into a key without an accumulator stores it as it is. */
    su_key_int(st, 2);
    acc[0] = sl_int(7);
    acc[1] = sl_int(1);
    ASSERT_OK(sl_agg_merge(s, acc), s);
    ASSERT_TEXT(su_value_str(s, 2), "7,1");
    ASSERT_TEXT(agg_result_str(s), "r7");
    su_key_int(st, 3);
    ASSERT_TEXT(agg_result_str(s), "");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_TEXT(su_columns(path, "avgs"), "kg,id,sum,cnt");
    ASSERT_TEXT(su_sql(path, "SELECT id, sum, cnt FROM avgs ORDER BY id"), "1|150|4\n2|7|1\n");

    st = su_open(op, 0, 1, &cfg);
    s = reg_agg(st, &u);
    su_key_int(st, 1);
    ASSERT_TEXT(agg_result_str(s), "r37.5");
    agg_in(s, 0);
    ASSERT_TEXT(agg_result_str(s), "r30");
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 2), "7,1");
    su_close(st); /* not committed */
    ASSERT_TEXT(su_sql(path, "SELECT id, sum, cnt FROM avgs ORDER BY id"), "1|150|4\n2|7|1\n");
  }
}

TEST(quick_aggregating_error_clear_rollback) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    agg_ud u;
    char op[32], path[4096];
    sl_value bad = sl_int(BAD_INPUT);
    memset(&u, 0, sizeof u);
    snprintf(op, sizeof op, "aggerr%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_agg(st, &u);
    su_key_int(st, 1);
    agg_in(s, 1);
    ASSERT_RC(sl_state_add(s, &bad), SL_ERROR, s);
    ASSERT_TEXT(su_value_str(s, 2), "101,1");
    su_key_int(st, 2);
    agg_in(s, 2);
    su_commit(st);
    su_key_int(st, 1);
    ASSERT_OK(sl_state_clear(s), s);
    ASSERT_TEXT(agg_result_str(s), "");
    agg_in(s, 1); /* starts from the defaults again */
    ASSERT_TEXT(su_value_str(s, 2), "101,1");
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 2), "102,1");
    ASSERT_OK(sl_state_clear(s), s);
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    ASSERT_TEXT(su_sql(path, "SELECT id, sum, cnt FROM avgs ORDER BY id"), "1|101|1\n");
    su_key_int(st, 1);
    agg_in(s, 9);
    su_close(st);
    ASSERT_TEXT(su_sql(path, "SELECT id, sum, cnt FROM avgs ORDER BY id"), "1|101|1\n");
  }
}

TEST(aggregating_many_keys) {
  const int64_t n = 10000;
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    agg_ud u;
    char op[32], path[4096];
    int64_t i;
    memset(&u, 0, sizeof u);
    snprintf(op, sizeof op, "aggmany%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_agg(st, &u);
    for (i = 0; i < 3 * n; i++) {
      su_key_int(st, i % n);
      agg_in(s, i);
    }
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_EQ(su_count(path, "avgs"), n);
    /* key k got k, k+n, k+2n: sum 100 + 3k + 3n, cnt 3 */
    ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM avgs WHERE cnt = 3 AND "
                               "sum = 100 + 3*id + 30000"), n);
    st = su_open(op, 0, 1, &cfg);
    s = reg_agg(st, &u);
    for (i = 0; i < n; i += 13) {
      char want[64];
      su_key_int(st, i);
      snprintf(want, sizeof want, "%lld,3", (long long)(100 + 3 * i + 3 * n));
      ASSERT_TEXT(su_value_str(s, 2), want);
    }
    su_close(st);
  }
}
