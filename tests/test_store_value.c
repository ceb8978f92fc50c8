/*
** test_store_value.c — value state: write, commit, close, reopen, register
** again and read back; many keys; clear of the current key only; typed
** values of every kind; scan order; uncommitted changes rolled back by close.
** Each scenario runs with the write-back cache off, small and large.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

static const size_t budgets[] = {0, 16 * 1024, 64u * 1024 * 1024};
#define N_BUDGETS 3

static void cfg_budget(sl_config *cfg, size_t budget) {
  sl_config_init(cfg);
  cfg->memory_budget = budget;
}

/* counts: word TEXT -> count INTEGER */
static sl_state *reg_counts(sl_store *st) {
  sl_column key = su_col("word", SL_TEXT);
  sl_column val = su_col("count", SL_INTEGER);
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = "counts";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 1;
  d.value = &val;
  return su_reg(st, &d);
}

static void put_count(sl_store *st, sl_state *s, const char *word, int64_t n) {
  sl_value v = sl_int(n);
  su_key_text(st, word);
  ASSERT_OK(sl_value_update(s, &v), s);
}

static int kg_text(const char *w) {
  sl_value k = sl_text(w);
  int kg = -1;
  ASSERT_OK(sl_key_group(&k, 1, 128, &kg), NULL);
  return kg;
}

TEST(quick_value_roundtrip) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char path[4096], op[32], want[256];
    snprintf(op, sizeof op, "words%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_counts(st);
    put_count(st, s, "apple", 1);
    put_count(st, s, "pear", 5);
    put_count(st, s, "apple", 3);
    su_key_text(st, "apple");
    ASSERT_TEXT(su_value_str(s, 1), "3");
    su_key_text(st, "pear");
    ASSERT_TEXT(su_value_str(s, 1), "5");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);

    /* The rows are in the file, typed. */
    snprintf(want, sizeof want, "%d|apple|3\n%d|pear|5\n", kg_text("apple"), kg_text("pear"));
    ASSERT_TEXT(su_sql(path, "SELECT kg, word, count FROM counts ORDER BY word"), want);
    ASSERT_TEXT(su_sql(path, "SELECT typeof(kg), typeof(word), typeof(count) FROM counts"
                             " ORDER BY word"),
                "integer|text|integer\ninteger|text|integer\n");

    st = su_open(op, 0, 1, &cfg);
    s = reg_counts(st);
    su_key_text(st, "apple");
    ASSERT_TEXT(su_value_str(s, 1), "3");
    su_key_text(st, "pear");
    ASSERT_TEXT(su_value_str(s, 1), "5");
    su_key_text(st, "kiwi");
    ASSERT_TEXT(su_value_str(s, 1), "");
    su_close(st);
  }
}

TEST(quick_value_register_again_and_find) {
  sl_store *st = su_open("reg", 0, 1, NULL);
  sl_state *s1 = reg_counts(st), *s2 = reg_counts(st), *f = NULL;
  ASSERT(s1 == s2);
  ASSERT_OK(sl_state_find(st, "counts", &f), st);
  ASSERT(f == s1);
  ASSERT_RC(sl_state_find(st, "nothere", &f), SL_NOTFOUND, st);
  su_close(st);

  /* After a reopen the state is in the file but not registered yet. */
  st = su_open("reg", 0, 1, NULL);
  f = NULL;
  ASSERT_RC(sl_state_find(st, "counts", &f), SL_NOTFOUND, st);
  s1 = reg_counts(st);
  ASSERT_OK(sl_state_find(st, "counts", &f), st);
  ASSERT(f == s1);
  su_close(st);
}

TEST(quick_value_store_info_and_path) {
  sl_store *st = su_open("info.op-1", 2, 3, NULL);
  const char *op = NULL;
  int sub = -1, par = -1, maxp = -1, first = -1, last = -1;
  char want[4096];
  ASSERT_OK(sl_store_info(st, &op, &sub, &par, &maxp, &first, &last), st);
  ASSERT_STR(op, "info.op-1");
  ASSERT_EQ(sub, 2);
  ASSERT_EQ(par, 3);
  ASSERT_EQ(maxp, 128);
  ASSERT_EQ(first, (2 * 128 + 3 - 1) / 3);
  ASSERT_EQ(last, 127);
  su_db_path(want, sizeof want, su_dir(), "info.op-1", 2);
  ASSERT_STR(sl_store_path(st), want);
  ASSERT(su_exists(want));
  ASSERT_STR(sl_errmsg(st), "not an error");
  su_close(st);
  ASSERT_EQ(su_sql_int(want, "PRAGMA application_id"), SL_APPLICATION_ID);
  ASSERT_EQ(su_sql_int(want, "PRAGMA user_version"), SL_FORMAT_VERSION);
}

/* item: id INTEGER -> (n INTEGER, name TEXT, score REAL, data BLOB) */
static sl_state *reg_items(sl_store *st) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column val[4];
  sl_state_desc d;
  val[0] = su_col("n", SL_INTEGER);
  val[1] = su_col("name", SL_TEXT);
  val[2] = su_col("score", SL_REAL);
  val[3] = su_col("data", SL_BLOB);
  memset(&d, 0, sizeof d);
  d.name = "items";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 4;
  d.value = val;
  return su_reg(st, &d);
}

static void item_values(int64_t i, int gen, sl_value v[4], char *name, size_t cap,
                        unsigned char blob[8]) {
  int j;
  snprintf(name, cap, "item-%lld-%d", (long long)i, gen);
  for (j = 0; j < 8; j++) blob[j] = (unsigned char)(i >> (8 * (j % 4))) ^ (unsigned char)gen;
  v[0] = sl_int(i * 7 - 3 + gen);
  v[1] = sl_text(name);
  v[2] = sl_real((double)i / 4.0 + gen);
  v[3] = sl_blob(blob, (size_t)(i % 9));
}

static void check_item(sl_state *s, int64_t i, int gen) {
  sl_value want[4];
  char name[64];
  unsigned char blob[8];
  char *w, *g;
  item_values(i, gen, want, name, sizeof name, blob);
  w = su_values_str(want, 4);
  g = su_value_str(s, 4);
  ASSERT_MSG(strcmp(w, g) == 0, "key %lld: got %s, want %s", (long long)i, g, w);
  free(w);
  free(g);
}

TEST(value_many_keys) {
  const int64_t n = 10000;
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char path[4096], op[32];
    int64_t i;
    int prev_kg = -1;
    int64_t prev_key = 0, rows = 0;
    sl_iter *it = NULL;
    int rc;
    snprintf(op, sizeof op, "many%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_items(st);
    for (i = 0; i < n; i++) {
      sl_value v[4];
      char name[64];
      unsigned char blob[8];
      item_values(i, 0, v, name, sizeof name, blob);
      su_key_int(st, i);
      ASSERT_OK(sl_value_update(s, v), s);
    }
    /* Overwrite every third key before the commit; the last write wins. */
    for (i = 0; i < n; i += 3) {
      sl_value v[4];
      char name[64];
      unsigned char blob[8];
      item_values(i, 1, v, name, sizeof name, blob);
      su_key_int(st, i);
      ASSERT_OK(sl_value_update(s, v), s);
    }
    for (i = 0; i < n; i += 97) {
      su_key_int(st, i);
      check_item(s, i, i % 3 == 0);
    }
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_EQ(su_count(path, "items"), n);

    st = su_open(op, 0, 1, &cfg);
    s = reg_items(st);
    for (i = 0; i < n; i++) {
      su_key_int(st, i);
      check_item(s, i, i % 3 == 0);
    }
    /* sl_state_scan: ascending (kg, id), every key once, kg matching. */
    ASSERT_OK(sl_state_scan(s, &it), s);
    while ((rc = sl_iter_next(it)) == SL_ROW) {
      const sl_value *k = NULL, *v = NULL;
      int nk = 0, nv = 0, kg = -1, want_kg = -1;
      ASSERT_OK(sl_iter_key(it, &k, &nk, &kg), it);
      ASSERT_OK(sl_iter_value(it, &v, &nv), it);
      ASSERT_EQ(nk, 1);
      ASSERT_EQ(nv, 4);
      ASSERT_EQ(k[0].type, SL_INTEGER);
      ASSERT_OK(sl_key_group(k, 1, 128, &want_kg), NULL);
      ASSERT_EQ(kg, want_kg);
      ASSERT_MSG(kg > prev_kg || (kg == prev_kg && k[0].v.i > prev_key),
                 "scan order: (%d,%lld) after (%d,%lld)", kg, (long long)k[0].v.i,
                 prev_kg, (long long)prev_key);
      ASSERT_EQ(v[0].v.i, k[0].v.i * 7 - 3 + (k[0].v.i % 3 == 0));
      prev_kg = kg;
      prev_key = k[0].v.i;
      rows++;
    }
    ASSERT_RC(rc, SL_DONE, it);
    sl_iter_close(it);
    ASSERT_EQ(rows, n);
    su_close(st);
  }
}

TEST(quick_value_clear_current_key_only) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char path[4096], op[32], want[256];
    snprintf(op, sizeof op, "clear%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_counts(st);
    put_count(st, s, "apple", 1);
    put_count(st, s, "pear", 2);
    put_count(st, s, "kiwi", 3);
    su_commit(st);
    su_key_text(st, "pear");
    ASSERT_OK(sl_state_clear(s), s);
    ASSERT_TEXT(su_value_str(s, 1), "");
    /* Clearing a key without a value is fine too. */
    su_key_text(st, "plum");
    ASSERT_OK(sl_state_clear(s), s);
    su_key_text(st, "apple");
    ASSERT_TEXT(su_value_str(s, 1), "1");
    su_key_text(st, "kiwi");
    ASSERT_TEXT(su_value_str(s, 1), "3");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    snprintf(want, sizeof want, "apple|1\nkiwi|3\n");
    ASSERT_TEXT(su_sql(path, "SELECT word, count FROM counts ORDER BY word"), want);

    st = su_open(op, 0, 1, &cfg);
    s = reg_counts(st);
    su_key_text(st, "pear");
    ASSERT_TEXT(su_value_str(s, 1), "");
    put_count(st, s, "pear", 9);
    ASSERT_TEXT(su_value_str(s, 1), "9");
    su_close(st);
  }
}

TEST(quick_value_uncommitted_rolled_back) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char path[4096], op[32];
    char *before;
    int64_t i;
    snprintf(op, sizeof op, "undo%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_counts(st);
    put_count(st, s, "apple", 1);
    put_count(st, s, "pear", 2);
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    before = su_dump(path);
    /* Changes after the commit: update, new keys (enough to spill a small
    ** cache into SQLite), a clear. */
    put_count(st, s, "apple", 100);
    for (i = 0; i < 2000; i++) {
      char w[32];
      snprintf(w, sizeof w, "new%lld", (long long)i);
      put_count(st, s, w, i);
    }
    su_key_text(st, "pear");
    ASSERT_OK(sl_state_clear(s), s);
    su_key_text(st, "apple");
    ASSERT_TEXT(su_value_str(s, 1), "100");
    su_close(st);

    ASSERT_TEXT(su_dump(path), before);
    st = su_open(op, 0, 1, &cfg);
    s = reg_counts(st);
    su_key_text(st, "apple");
    ASSERT_TEXT(su_value_str(s, 1), "1");
    su_key_text(st, "pear");
    ASSERT_TEXT(su_value_str(s, 1), "2");
    su_key_text(st, "new7");
    ASSERT_TEXT(su_value_str(s, 1), "");
    su_close(st);
    free(before);
  }
}

/* Rendered rows are equal; -0.0 may come back as 0.0 (r0) or -0.0 (r-0). */
static int same_row(const char *got, const char *want) {
  return strcmp(got, want) == 0 ||
         (strcmp(want, "0,'',r0,x''") == 0 && strcmp(got, "0,'',r-0,x''") == 0);
}

TEST(quick_value_typed_values_roundtrip) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    int i;
    static const unsigned char bytes[] = {0, 1, 0, 0xff, 0x7f};
    sl_value rows[7][4];
    const char *want[7] = {
        "NULL,NULL,NULL,NULL",
        "0,'',r0,x''",
        "-9223372036854775808,'\xc3\xa9t\xc3\xa9',r-1.5,x'000100ff7f'",
        "9223372036854775807,'x',r1.0000000000000001e+300,x'00'",
        "-1,'with 'quote' and |bar',r0.10000000000000001,NULL",
        "NULL,'a',NULL,x'ff'",
        "42,NULL,r-2.5,NULL",
    };
    snprintf(op, sizeof op, "typed%d", b);
    cfg_budget(&cfg, budgets[b]);
    for (i = 0; i < 4; i++) rows[0][i] = sl_null();
    rows[1][0] = sl_int(0);
    rows[1][1] = sl_text("");
    rows[1][2] = sl_real(-0.0);
    rows[1][3] = sl_blob(bytes, 0);
    rows[2][0] = sl_int(INT64_MIN);
    rows[2][1] = sl_text("\xc3\xa9t\xc3\xa9");
    rows[2][2] = sl_real(-1.5);
    rows[2][3] = sl_blob(bytes, sizeof bytes);
    rows[3][0] = sl_int(INT64_MAX);
    rows[3][1] = sl_textn("xyz", 1);
    rows[3][2] = sl_real(1e300);
    rows[3][3] = sl_blob(bytes, 1);
    rows[4][0] = sl_int(-1);
    rows[4][1] = sl_text("with 'quote' and |bar");
    rows[4][2] = sl_real(0.1);
    rows[4][3] = sl_null();
    rows[5][0] = sl_null();
    rows[5][1] = sl_text("a");
    rows[5][2] = sl_null();
    rows[5][3] = sl_blob(bytes + 3, 1);
    rows[6][0] = sl_int(42);
    rows[6][1] = sl_null();
    rows[6][2] = sl_real(-2.5);
    rows[6][3] = sl_null();

    st = su_open(op, 0, 1, &cfg);
    s = reg_items(st);
    for (i = 0; i < 7; i++) {
      su_key_int(st, i);
      ASSERT_OK(sl_value_update(s, rows[i]), s);
    }
    for (i = 0; i < 7; i++) {
      char *g;
      su_key_int(st, i);
      g = su_value_str(s, 4);
      ASSERT_MSG(same_row(g, want[i]), "row %d before commit: %s, want %s", i, g, want[i]);
      free(g);
    }
    su_commit(st);
    su_close(st);
    st = su_open(op, 0, 1, &cfg);
    s = reg_items(st);
    for (i = 0; i < 7; i++) {
      char *g;
      su_key_int(st, i);
      g = su_value_str(s, 4);
      ASSERT_MSG(same_row(g, want[i]), "row %d after reopen: %s, want %s", i, g, want[i]);
      free(g);
    }
    su_close(st);
  }
}

/* pairs: (a TEXT, b INTEGER) -> v TEXT */
static sl_state *reg_pairs(sl_store *st) {
  sl_column key[2];
  sl_column val = su_col("v", SL_TEXT);
  sl_state_desc d;
  key[0] = su_col("a", SL_TEXT);
  key[1] = su_col("b", SL_INTEGER);
  memset(&d, 0, sizeof d);
  d.name = "pairs";
  d.kind = SL_VALUE_STATE;
  d.n_key = 2;
  d.key = key;
  d.n_value = 1;
  d.value = &val;
  return su_reg(st, &d);
}

static void pair_key(sl_store *st, const char *a, int64_t b) {
  sl_value k[2];
  k[0] = sl_text(a);
  k[1] = sl_int(b);
  ASSERT_OK(sl_store_set_key(st, k, 2, NULL), st);
}

TEST(quick_value_multi_column_key) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    sl_value v;
    char *scan;
    su_buf want = {0, 0, 0};
    sl_value k[2];
    int kg1, kg2;
    snprintf(op, sizeof op, "pairs%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_pairs(st);
    pair_key(st, "a", 1);
    v = sl_text("a1");
    ASSERT_OK(sl_value_update(s, &v), s);
    pair_key(st, "a", 2);
    v = sl_text("a2");
    ASSERT_OK(sl_value_update(s, &v), s);
    pair_key(st, "a", 1);
    ASSERT_TEXT(su_value_str(s, 1), "'a1'");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);

    st = su_open(op, 0, 1, &cfg);
    s = reg_pairs(st);
    pair_key(st, "a", 2);
    ASSERT_TEXT(su_value_str(s, 1), "'a2'");
    pair_key(st, "a", 3);
    ASSERT_TEXT(su_value_str(s, 1), "");
    /* The scan gives the rows in ascending (kg, a, b). */
    k[0] = sl_text("a");
    k[1] = sl_int(1);
    ASSERT_OK(sl_key_group(k, 2, 128, &kg1), NULL);
    k[1] = sl_int(2);
    ASSERT_OK(sl_key_group(k, 2, 128, &kg2), NULL);
    ASSERT_EQ(kg1, 5);
    if (kg1 <= kg2) {
      su_addf(&want, "%d|'a',1|'a1'\n%d|'a',2|'a2'\n", kg1, kg2);
    } else {
      su_addf(&want, "%d|'a',2|'a2'\n%d|'a',1|'a1'\n", kg2, kg1);
    }
    scan = su_scan_str(s, 0);
    ASSERT_TEXT(scan, want.p);
    free(want.p);
    su_close(st);
    ASSERT_TEXT(su_sql(path, "SELECT a, b, v FROM pairs ORDER BY a, b"), "a|1|a1\na|2|a2\n");
  }
}
