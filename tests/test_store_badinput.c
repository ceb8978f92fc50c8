/*
** test_store_badinput.c — the store's answers to wrong calls and wrong files:
** NULL handles and arguments, malformed state names and descriptors, values
** of the wrong type, calls of the wrong kind, keyed calls without a key,
** writes while an iterator is open, unsafe operator names, reopening with
** other operator/subtask/parallelism, foreign and garbage files, and a commit
** that fails because another connection holds the write lock. Every refusal
** comes with a code and a message naming the offending thing, and changes
** nothing.
*/
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Descriptors used below                                                    */
/* ------------------------------------------------------------------------ */

static sl_state_desc desc_of(const char *name, int kind, int n_key, const sl_column *key,
                             int n_mk, const sl_column *mk, int n_value,
                             const sl_column *value) {
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = name;
  d.kind = kind;
  d.n_key = n_key;
  d.key = key;
  d.n_map_key = n_mk;
  d.map_key = mk;
  d.n_value = n_value;
  d.value = value;
  if (kind == SL_OPERATOR_LIST) d.redistribution = SL_SPLIT_EVEN;
  return d;
}

static int red_cb(void *ud, const sl_value *acc, const sl_value *in, sl_value *out) {
  (void)ud;
  out[0] = sl_int(acc[0].v.i + in[0].v.i);
  return SL_OK;
}

static int agg_add_cb(void *ud, const sl_value *acc, const sl_value *in, sl_value *out) {
  (void)ud;
  out[0] = sl_int(acc[0].v.i + in[0].v.i);
  return SL_OK;
}

static int agg_merge_cb(void *ud, const sl_value *a, const sl_value *b, sl_value *out) {
  (void)ud;
  out[0] = sl_int(a[0].v.i + b[0].v.i);
  return SL_OK;
}

static int agg_result_cb(void *ud, const sl_value *acc, sl_value *out) {
  (void)ud;
  out[0] = acc[0];
  return SL_OK;
}

/* One state of every kind, all with key user_id INTEGER, map key mkey TEXT,
** value amount INTEGER. */
typedef struct kinds {
  sl_state *val, *lst, *map, *red, *agg, *ol, *bm;
} kinds;

static void reg_kinds(sl_store *st, kinds *k) {
  sl_column key = su_col("user_id", SL_INTEGER);
  sl_column mk = su_col("mkey", SL_TEXT);
  sl_column val = su_col_dflt("amount", SL_INTEGER, sl_int(0));
  sl_column res = su_col("res", SL_INTEGER);
  sl_state_desc d;
  d = desc_of("prices", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &val);
  k->val = su_reg(st, &d);
  d = desc_of("events", SL_LIST_STATE, 1, &key, 0, NULL, 1, &val);
  k->lst = su_reg(st, &d);
  d = desc_of("attrs", SL_MAP_STATE, 1, &key, 1, &mk, 1, &val);
  k->map = su_reg(st, &d);
  d = desc_of("totals", SL_REDUCING_STATE, 1, &key, 0, NULL, 1, &val);
  d.reduce = red_cb;
  k->red = su_reg(st, &d);
  d = desc_of("avgs", SL_AGGREGATING_STATE, 1, &key, 0, NULL, 1, &val);
  d.n_input = 1;
  d.n_result = 1;
  d.result = &res;
  d.agg_add = agg_add_cb;
  d.agg_merge = agg_merge_cb;
  d.agg_result = agg_result_cb;
  k->agg = su_reg(st, &d);
  d = desc_of("offsets", SL_OPERATOR_LIST, 0, NULL, 0, NULL, 1, &val);
  k->ol = su_reg(st, &d);
  d = desc_of("rules", SL_BROADCAST_MAP, 0, NULL, 1, &mk, 1, &val);
  k->bm = su_reg(st, &d);
}

/* ------------------------------------------------------------------------ */
/* NULL handles and arguments                                                */
/* ------------------------------------------------------------------------ */

TEST(quick_badinput_null_handles) {
  sl_store *st = NULL;
  sl_state *s = NULL;
  sl_iter *it = NULL;
  const sl_value *out = NULL;
  const char *ops = NULL;
  size_t n = 0;
  int found = 0, kg = 0, a = 0, b = 0, c = 0, d = 0, e = 0, cnt = 0;
  int64_t removed = 0;
  sl_value v = sl_int(1);
  sl_column col = su_col("x", SL_INTEGER);
  sl_state_desc desc = desc_of("x", SL_VALUE_STATE, 1, &col, 0, NULL, 1, &col);
  const char *m;

  m = sl_errmsg(NULL);
  ASSERT(m != NULL && m[0] != 0);
  ASSERT_STR(sl_errstr(12345), "unknown result code");
  ASSERT_STR(sl_errstr(-1), "unknown result code");
  ASSERT_HAS(sl_errstr(SL_MISUSE), "SL_MISUSE");
  ASSERT(sl_errstr(SL_OK) != NULL && sl_errstr(SL_DONE) != NULL && sl_errstr(SL_ROW) != NULL);
  ASSERT_STR(sl_libversion(), SL_VERSION);
  ASSERT_EQ(sl_libversion_number(), SL_VERSION_NUMBER);

  ASSERT_RC(sl_store_open(NULL, "op", 0, 1, NULL, &st), SL_MISUSE, st);
  sl_store_close(st);
  st = NULL;
  ASSERT_RC(sl_store_open(su_dir(), NULL, 0, 1, NULL, &st), SL_MISUSE, st);
  sl_store_close(st);
  st = NULL;
  ASSERT_RC(sl_store_open(su_dir(), "op", 0, 1, NULL, NULL), SL_MISUSE, NULL);
  ASSERT_RC(sl_store_open_file(NULL, NULL, &st), SL_MISUSE, st);
  sl_store_close(st);
  st = NULL;
  ASSERT_OK(sl_store_close(NULL), NULL);
  ASSERT_RC(sl_store_commit(NULL), SL_MISUSE, NULL);
  ASSERT_RC(sl_store_sweep_expired(NULL, &removed), SL_MISUSE, NULL);
  ASSERT_RC(sl_store_info(NULL, &ops, &a, &b, &c, &d, &e), SL_MISUSE, NULL);
  ASSERT(sl_store_path(NULL) == NULL);
  ASSERT_EQ(sl_store_cache_bytes(NULL), 0);
  ASSERT_RC(sl_store_set_key(NULL, &v, 1, &kg), SL_MISUSE, NULL);
  ASSERT_RC(sl_state_register(NULL, &desc, &s), SL_MISUSE, NULL);
  ASSERT_RC(sl_state_find(NULL, "x", &s), SL_MISUSE, NULL);
  ASSERT_RC(sl_state_clear(NULL), SL_MISUSE, NULL);
  ASSERT_RC(sl_value_get(NULL, &out), SL_MISUSE, NULL);
  ASSERT_RC(sl_value_update(NULL, &v), SL_MISUSE, NULL);
  ASSERT_RC(sl_list_add(NULL, &v), SL_MISUSE, NULL);
  ASSERT_RC(sl_list_add_all(NULL, &v, 1), SL_MISUSE, NULL);
  ASSERT_RC(sl_list_update(NULL, &v, 1), SL_MISUSE, NULL);
  ASSERT_RC(sl_list_get(NULL, &out, &n), SL_MISUSE, NULL);
  ASSERT_RC(sl_map_put(NULL, &v, &v), SL_MISUSE, NULL);
  ASSERT_RC(sl_map_get(NULL, &v, &out), SL_MISUSE, NULL);
  ASSERT_RC(sl_map_contains(NULL, &v, &found), SL_MISUSE, NULL);
  ASSERT_RC(sl_map_remove(NULL, &v), SL_MISUSE, NULL);
  ASSERT_RC(sl_state_add(NULL, &v), SL_MISUSE, NULL);
  ASSERT_RC(sl_agg_merge(NULL, &v), SL_MISUSE, NULL);
  ASSERT_RC(sl_agg_get(NULL, &out), SL_MISUSE, NULL);
  ASSERT_RC(sl_map_iter(NULL, &it), SL_MISUSE, NULL);
  ASSERT_RC(sl_state_scan(NULL, &it), SL_MISUSE, NULL);
  ASSERT_RC(sl_iter_next(NULL), SL_MISUSE, NULL);
  ASSERT_RC(sl_iter_key(NULL, &out, &cnt, &kg), SL_MISUSE, NULL);
  ASSERT_RC(sl_iter_map_key(NULL, &out, &cnt), SL_MISUSE, NULL);
  ASSERT_RC(sl_iter_value(NULL, &out, &cnt), SL_MISUSE, NULL);
  sl_iter_close(NULL);
  ASSERT(!su_exists(su_dir()) || test_sh(NULL, 0, "test -z \"$(ls -A '%s')\"", su_dir()) == 0);
}

TEST(quick_badinput_null_arguments) {
  sl_store *st = su_open("nullargs", 0, 1, NULL);
  kinds k;
  const sl_value *out = NULL;
  size_t n = 0;
  int found = 0;
  sl_value v = sl_int(1), mk = sl_text("m");
  sl_state *s = NULL;
  sl_iter *it = NULL;
  reg_kinds(st, &k);
  su_key_int(st, 1);
  ASSERT_RC(sl_state_register(st, NULL, &s), SL_MISUSE, st);
  {
    sl_column col = su_col("x", SL_INTEGER);
    sl_state_desc d = desc_of("x", SL_VALUE_STATE, 1, &col, 0, NULL, 1, &col);
    ASSERT_RC(sl_state_register(st, &d, NULL), SL_MISUSE, st);
  }
  ASSERT_RC(sl_state_find(st, NULL, &s), SL_MISUSE, st);
  ASSERT_RC(sl_state_find(st, "prices", NULL), SL_MISUSE, st);
  ASSERT_RC(sl_value_get(k.val, NULL), SL_MISUSE, k.val);
  ASSERT_RC(sl_value_update(k.val, NULL), SL_MISUSE, k.val);
  ASSERT_RC(sl_list_add(k.lst, NULL), SL_MISUSE, k.lst);
  ASSERT_RC(sl_list_add_all(k.lst, NULL, 2), SL_MISUSE, k.lst);
  ASSERT_RC(sl_list_get(k.lst, NULL, &n), SL_MISUSE, k.lst);
  ASSERT_RC(sl_list_get(k.lst, &out, NULL), SL_MISUSE, k.lst);
  ASSERT_RC(sl_map_put(k.map, NULL, &v), SL_MISUSE, k.map);
  ASSERT_RC(sl_map_put(k.map, &mk, NULL), SL_MISUSE, k.map);
  ASSERT_RC(sl_map_get(k.map, NULL, &out), SL_MISUSE, k.map);
  ASSERT_RC(sl_map_get(k.map, &mk, NULL), SL_MISUSE, k.map);
  ASSERT_RC(sl_map_contains(k.map, NULL, &found), SL_MISUSE, k.map);
  ASSERT_RC(sl_map_contains(k.map, &mk, NULL), SL_MISUSE, k.map);
  ASSERT_RC(sl_map_remove(k.map, NULL), SL_MISUSE, k.map);
  ASSERT_RC(sl_state_add(k.red, NULL), SL_MISUSE, k.red);
  ASSERT_RC(sl_agg_merge(k.agg, NULL), SL_MISUSE, k.agg);
  ASSERT_RC(sl_agg_get(k.agg, NULL), SL_MISUSE, k.agg);
  ASSERT_RC(sl_map_iter(k.map, NULL), SL_MISUSE, k.map);
  ASSERT_RC(sl_state_scan(k.val, NULL), SL_MISUSE, k.val);
  ASSERT_RC(sl_store_set_key(st, NULL, 1, NULL), SL_MISUSE, st);
  su_key_int(st, 1);
  ASSERT_OK(sl_map_iter(k.map, &it), k.map);
  ASSERT_RC(sl_iter_next(it), SL_DONE, it);
  sl_iter_close(it);
  /* Nothing was written by any of it. */
  su_commit(st);
  ASSERT_EQ(su_count(sl_store_path(st), "prices"), 0);
  ASSERT_EQ(su_count(sl_store_path(st), "events"), 0);
  ASSERT_EQ(su_count(sl_store_path(st), "attrs"), 0);
  su_close(st);
}

/* ------------------------------------------------------------------------ */
/* State names                                                               */
/* ------------------------------------------------------------------------ */

static int try_name(sl_store *st, const char *name) {
  sl_column key = su_col("k", SL_INTEGER), val = su_col("v", SL_INTEGER);
  sl_state_desc d = desc_of(name, SL_VALUE_STATE, 1, &key, 0, NULL, 1, &val);
  sl_state *s = NULL;
  return sl_state_register(st, &d, &s);
}

TEST(quick_badinput_state_names) {
  static const char *bad[] = {"a-b", "1x", "x;drop", "a'b", "a\"b", "a b", "x]", "sl_x",
                              "SL_x", "sl_states", "sl_meta", "t\xc3\xa9"};
  char long65[66], long64[65];
  char path[4096];
  sl_store *st = su_open("names", 0, 1, NULL);
  size_t i;
  memset(long65, 'n', 65);
  long65[65] = 0;
  memset(long64, 'n', 64);
  long64[64] = 0;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_RC(try_name(st, bad[i]), SL_MISUSE, st);
    ASSERT_ERRMSG_HAS(st, bad[i]);
  }
  ASSERT_RC(try_name(st, ""), SL_MISUSE, st);
  ASSERT_RC(try_name(st, long65), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, long65);
  {
    sl_state *s = NULL;
    sl_state_desc d = desc_of(NULL, SL_VALUE_STATE, 0, NULL, 0, NULL, 0, NULL);
    ASSERT_RC(sl_state_register(st, &d, &s), SL_MISUSE, st);
  }
  /* Good names. */
  ASSERT_OK(try_name(st, long64), st);
  ASSERT_OK(try_name(st, "_x"), st);
  ASSERT_OK(try_name(st, "slow"), st);
  ASSERT_OK(try_name(st, "x1_Y"), st);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  /* No table was made for any refused name. */
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_states"), 4);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                             "name IN ('a-b','1x','x;drop','a''b','a b','sl_x','SL_x')"), 0);
}

TEST(quick_badinput_names_differing_only_in_case) {
  sl_store *st = su_open("cases", 0, 1, NULL);
  sl_column key = su_col("k", SL_INTEGER), val = su_col("v", SL_INTEGER);
  sl_state_desc d = desc_of("counts", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &val);
  sl_state *s = su_reg(st, &d), *s2 = NULL;
  sl_value x = sl_int(5);
  char path[4096];
  char *before;
  int rc;
  su_key_int(st, 1);
  ASSERT_OK(sl_value_update(s, &x), s);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  before = su_dump(path);
  /* SQLite table names ignore case: these would share tables with existing
  ** ones, so they must not be accepted as new states. */
  d = desc_of("COUNTS", SL_LIST_STATE, 1, &key, 0, NULL, 1, &val);
  rc = sl_state_register(st, &d, &s2);
  ASSERT_MSG(rc != SL_OK, "a list state COUNTS registered beside value state counts");
  d = desc_of("Sl_Meta", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &val);
  rc = sl_state_register(st, &d, &s2);
  ASSERT_MSG(rc != SL_OK, "a state Sl_Meta registered over sl_meta");
  su_key_int(st, 1);
  ASSERT_TEXT(su_value_str(s, 1), "5");
  su_commit(st);
  su_close(st);
  ASSERT_TEXT(su_dump(path), before);
  free(before);
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

/* Registers d and expects SL_MISUSE with a message containing `needle` (if
** not NULL); nothing may be registered under d's name. */
static void expect_bad_desc(sl_store *st, const sl_state_desc *d, const char *needle) {
  sl_state *s = NULL;
  int rc = sl_state_register(st, d, &s);
  ASSERT_MSG(rc == SL_MISUSE, "descriptor %s (%s): got %s (%s)", d->name ? d->name : "(null)",
             needle ? needle : "", sl_errstr(rc), sl_errmsg(st));
  if (needle) ASSERT_ERRMSG_HAS(st, needle);
  if (d->name) ASSERT_RC(sl_state_find(st, d->name, &s), SL_NOTFOUND, st);
}

TEST(quick_badinput_reserved_and_duplicate_columns) {
  static const char *reserved[] = {"kg", "seq", "expires_at"};
  sl_store *st = su_open("cols", 0, 1, NULL);
  sl_column key = su_col("user_id", SL_INTEGER), mk = su_col("mkey", SL_TEXT);
  sl_column val = su_col("amount", SL_INTEGER);
  sl_column two[2], c;
  sl_state_desc d;
  size_t i;
  char path[4096];
  for (i = 0; i < 3; i++) {
    c = su_col(reserved[i], SL_INTEGER);
    d = desc_of("r_key", SL_VALUE_STATE, 1, &c, 0, NULL, 1, &val);
    expect_bad_desc(st, &d, reserved[i]);
    d = desc_of("r_val", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
    expect_bad_desc(st, &d, reserved[i]);
    d = desc_of("r_mk", SL_MAP_STATE, 1, &key, 1, &c, 1, &val);
    expect_bad_desc(st, &d, reserved[i]);
    d = desc_of("r_list", SL_LIST_STATE, 1, &key, 0, NULL, 1, &c);
    expect_bad_desc(st, &d, reserved[i]);
  }
  /* Upper-case spellings collide in SQLite too. */
  {
    sl_state *s = NULL;
    c = su_col("KG", SL_INTEGER);
    d = desc_of("r_upper", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
    ASSERT_MSG(sl_state_register(st, &d, &s) != SL_OK, "value column KG accepted");
  }
  /* Duplicates: within values, between key and value, key and map key. */
  two[0] = su_col("dup", SL_INTEGER);
  two[1] = su_col("dup", SL_TEXT);
  d = desc_of("d_val", SL_VALUE_STATE, 1, &key, 0, NULL, 2, two);
  expect_bad_desc(st, &d, "dup");
  d = desc_of("d_key", SL_VALUE_STATE, 2, two, 0, NULL, 1, &val);
  expect_bad_desc(st, &d, "dup");
  c = su_col("user_id", SL_TEXT);
  d = desc_of("d_kv", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
  expect_bad_desc(st, &d, "user_id");
  d = desc_of("d_kmk", SL_MAP_STATE, 1, &key, 1, &c, 1, &val);
  expect_bad_desc(st, &d, "user_id");
  c = su_col("mkey", SL_INTEGER);
  d = desc_of("d_mkv", SL_MAP_STATE, 1, &key, 1, &mk, 1, &c);
  expect_bad_desc(st, &d, "mkey");
  {
    sl_state *s = NULL;
    two[0] = su_col("Amount", SL_INTEGER);
    two[1] = su_col("amount", SL_INTEGER);
    d = desc_of("d_case", SL_VALUE_STATE, 1, &key, 0, NULL, 2, two);
    ASSERT_MSG(sl_state_register(st, &d, &s) != SL_OK, "columns Amount and amount accepted");
  }
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_states"), 0);
}

TEST(quick_badinput_column_names_and_types) {
  static const char *bad[] = {"a b", "1a", "a-b", "a;b", "a'b", "a\"b"};
  sl_store *st = su_open("coltypes", 0, 1, NULL);
  sl_column key = su_col("user_id", SL_INTEGER), c;
  sl_state_desc d;
  char long65[66], long64[65];
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = su_col(bad[i], SL_INTEGER);
    d = desc_of("badcol", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
    expect_bad_desc(st, &d, bad[i]);
    d = desc_of("badkey", SL_VALUE_STATE, 1, &c, 0, NULL, 1, &key);
    expect_bad_desc(st, &d, bad[i]);
  }
  c = su_col("", SL_INTEGER);
  d = desc_of("badcol", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
  expect_bad_desc(st, &d, NULL);
  c = su_col(NULL, SL_INTEGER);
  d = desc_of("badcol", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
  expect_bad_desc(st, &d, NULL);
  memset(long65, 'c', 65);
  long65[65] = 0;
  memset(long64, 'c', 64);
  long64[64] = 0;
  c = su_col(long65, SL_INTEGER);
  d = desc_of("badcol", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
  expect_bad_desc(st, &d, long65);
  /* Column types: only INTEGER, REAL, TEXT, BLOB. */
  c = su_col("typed", 0);
  d = desc_of("badtype", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
  expect_bad_desc(st, &d, "typed");
  c = su_col("typed", SL_NULL);
  expect_bad_desc(st, &d, "typed");
  c = su_col("typed", 99);
  expect_bad_desc(st, &d, "typed");
  c = su_col("ktyped", SL_NULL);
  d = desc_of("badtype", SL_VALUE_STATE, 1, &c, 0, NULL, 1, &key);
  expect_bad_desc(st, &d, "ktyped");
  /* A default of the wrong type. */
  c = su_col_dflt("dflt", SL_INTEGER, sl_text("seven"));
  d = desc_of("baddflt", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
  expect_bad_desc(st, &d, "dflt");
  /* The longest name is fine. */
  c = su_col(long64, SL_INTEGER);
  d = desc_of("goodcol", SL_VALUE_STATE, 1, &key, 0, NULL, 1, &c);
  su_reg(st, &d);
  su_close(st);
}

TEST(quick_badinput_descriptor_counts_and_callbacks) {
  sl_store *st = su_open("counts", 0, 1, NULL);
  sl_column keys[SL_MAX_KEY_COLUMNS + 1], vals[SL_MAX_VALUE_COLUMNS + 1];
  char kn[SL_MAX_KEY_COLUMNS + 1][8], vn[SL_MAX_VALUE_COLUMNS + 1][8];
  sl_column res = su_col("res", SL_INTEGER);
  sl_state_desc d;
  int i;
  for (i = 0; i <= SL_MAX_KEY_COLUMNS; i++) {
    snprintf(kn[i], sizeof kn[i], "k%d", i);
    keys[i] = su_col(kn[i], SL_INTEGER);
  }
  for (i = 0; i <= SL_MAX_VALUE_COLUMNS; i++) {
    snprintf(vn[i], sizeof vn[i], "v%d", i);
    vals[i] = su_col(vn[i], SL_INTEGER);
  }
  d = desc_of("kind0", 0, 1, keys, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, NULL);
  d = desc_of("kind8", 8, 1, keys, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, NULL);
  d = desc_of("noval", SL_VALUE_STATE, 1, keys, 0, NULL, 0, vals);
  expect_bad_desc(st, &d, "noval");
  d = desc_of("manyval", SL_VALUE_STATE, 1, keys, 0, NULL, SL_MAX_VALUE_COLUMNS + 1, vals);
  expect_bad_desc(st, &d, "manyval");
  d = desc_of("nullval", SL_VALUE_STATE, 1, keys, 0, NULL, 1, NULL);
  expect_bad_desc(st, &d, "nullval");
  d = desc_of("nokey", SL_VALUE_STATE, 0, NULL, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, "nokey");
  d = desc_of("negkey", SL_VALUE_STATE, -1, keys, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, "negkey");
  d = desc_of("manykey", SL_VALUE_STATE, SL_MAX_KEY_COLUMNS + 1, keys, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, "manykey");
  d = desc_of("nullkey", SL_VALUE_STATE, 1, NULL, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, "nullkey");
  d = desc_of("nomk", SL_MAP_STATE, 1, keys, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, "nomk");
  d = desc_of("manymk", SL_MAP_STATE, 1, keys, SL_MAX_KEY_COLUMNS + 1, keys + 1, 1, vals);
  expect_bad_desc(st, &d, "manymk");
  d = desc_of("mkonvalue", SL_VALUE_STATE, 1, keys, 1, keys + 1, 1, vals);
  expect_bad_desc(st, &d, "mkonvalue");
  d = desc_of("negttl", SL_VALUE_STATE, 1, keys, 0, NULL, 1, vals);
  d.ttl_ms = -1;
  expect_bad_desc(st, &d, "negttl");
  d = desc_of("badflags", SL_VALUE_STATE, 1, keys, 0, NULL, 1, vals);
  d.ttl_ms = 1000;
  d.ttl_flags = 0x100;
  expect_bad_desc(st, &d, "badflags");
  d = desc_of("noreduce", SL_REDUCING_STATE, 1, keys, 0, NULL, 1, vals);
  expect_bad_desc(st, &d, "noreduce");
  d = desc_of("noadd", SL_AGGREGATING_STATE, 1, keys, 0, NULL, 1, vals);
  d.n_input = 1;
  d.n_result = 1;
  d.result = &res;
  d.agg_merge = agg_merge_cb;
  d.agg_result = agg_result_cb;
  expect_bad_desc(st, &d, "noadd");
  d.name = "nomerge";
  d.agg_add = agg_add_cb;
  d.agg_merge = NULL;
  expect_bad_desc(st, &d, "nomerge");
  d.name = "noresult";
  d.agg_merge = agg_merge_cb;
  d.agg_result = NULL;
  expect_bad_desc(st, &d, "noresult");
  d.name = "noinput";
  d.agg_result = agg_result_cb;
  d.n_input = 0;
  expect_bad_desc(st, &d, "noinput");
  d.name = "noresultcols";
  d.n_input = 1;
  d.n_result = 0;
  expect_bad_desc(st, &d, "noresultcols");
  d.name = "nullresult";
  d.n_result = 1;
  d.result = NULL;
  expect_bad_desc(st, &d, "nullresult");
  /* The maxima themselves are fine. */
  d = desc_of("widest", SL_MAP_STATE, SL_MAX_KEY_COLUMNS, keys, 1, keys + SL_MAX_KEY_COLUMNS,
              SL_MAX_VALUE_COLUMNS, vals);
  su_reg(st, &d);
  d.name = "aggok";
  d = desc_of("aggok", SL_AGGREGATING_STATE, 1, keys, 0, NULL, 1, vals);
  d.n_input = 1;
  d.n_result = 1;
  d.result = &res;
  d.agg_add = agg_add_cb;
  d.agg_merge = agg_merge_cb;
  d.agg_result = agg_result_cb;
  su_reg(st, &d);
  su_close(st);
}

/* ------------------------------------------------------------------------ */
/* Values of the wrong type                                                  */
/* ------------------------------------------------------------------------ */

static sl_state *reg_typed(sl_store *st) {
  sl_column key = su_col("user_id", SL_INTEGER);
  sl_column mk = su_col("mkey", SL_TEXT);
  sl_column val[4];
  sl_state_desc d;
  val[0] = su_col("qty", SL_INTEGER);
  val[1] = su_col("label", SL_TEXT);
  val[2] = su_col("ratio", SL_REAL);
  val[3] = su_col("payload", SL_BLOB);
  d = desc_of("typed", SL_MAP_STATE, 1, &key, 1, &mk, 4, val);
  return su_reg(st, &d);
}

TEST(quick_badinput_wrong_value_types) {
  sl_store *st = su_open("types", 0, 1, NULL);
  sl_state *s = reg_typed(st);
  sl_value mk = sl_text("m"), good[4], bad[4];
  static const char *cols[4] = {"qty", "label", "ratio", "payload"};
  sl_value wrong[4];
  int i;
  char path[4096];
  good[0] = sl_int(1);
  good[1] = sl_text("one");
  good[2] = sl_real(1.5);
  good[3] = sl_blob("\x01", 1);
  wrong[0] = sl_text("42");   /* TEXT into INTEGER */
  wrong[1] = sl_int(7);       /* INTEGER into TEXT */
  wrong[2] = sl_int(2);       /* INTEGER into REAL */
  wrong[3] = sl_text("blob"); /* TEXT into BLOB */
  su_key_int(st, 1);
  ASSERT_OK(sl_map_put(s, &mk, good), s);
  for (i = 0; i < 4; i++) {
    memcpy(bad, good, sizeof bad);
    bad[i] = wrong[i];
    ASSERT_RC(sl_map_put(s, &mk, bad), SL_MISUSE, s);
    ASSERT_ERRMSG_HAS(s, cols[i]);
    bad[i] = sl_int(0);
    bad[i].type = 99;
    ASSERT_RC(sl_map_put(s, &mk, bad), SL_MISUSE, s);
    bad[i] = sl_real(0.5);
    if (i != 2) {
      ASSERT_RC(sl_map_put(s, &mk, bad), SL_MISUSE, s);
      ASSERT_ERRMSG_HAS(s, cols[i]);
    }
  }
  /* NULL is fine in a value column. */
  memcpy(bad, good, sizeof bad);
  bad[1] = sl_null();
  ASSERT_OK(sl_map_put(s, &mk, bad), s);
  ASSERT_OK(sl_map_put(s, &mk, good), s);
  /* Map key of the wrong type, or NULL. */
  bad[0] = sl_int(5);
  ASSERT_RC(sl_map_put(s, &bad[0], good), SL_MISUSE, s);
  ASSERT_ERRMSG_HAS(s, "mkey");
  bad[0] = sl_null();
  ASSERT_RC(sl_map_put(s, &bad[0], good), SL_MISUSE, s);
  ASSERT_ERRMSG_HAS(s, "mkey");
  ASSERT_RC(sl_map_remove(s, &bad[0]), SL_MISUSE, s);
  {
    const sl_value *out = NULL;
    int found = 0;
    bad[0] = sl_blob("m", 1);
    ASSERT_RC(sl_map_get(s, &bad[0], &out), SL_MISUSE, s);
    ASSERT_ERRMSG_HAS(s, "mkey");
    ASSERT_RC(sl_map_contains(s, &bad[0], &found), SL_MISUSE, s);
  }
  /* The current key has the wrong type for this state's key column. */
  su_key_text(st, "one");
  ASSERT_RC(sl_map_put(s, &mk, good), SL_MISUSE, s);
  ASSERT_ERRMSG_HAS(s, "user_id");
  {
    sl_value two[2];
    two[0] = sl_int(1);
    two[1] = sl_int(2);
    ASSERT_OK(sl_store_set_key(st, two, 2, NULL), st);
    ASSERT_RC(sl_map_put(s, &mk, good), SL_MISUSE, s);
  }
  su_key_int(st, 1);
  ASSERT_TEXT(su_map_str(s), "'m'=1,'one',r1.5,x'01';");
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_TEXT(su_sql(path, "SELECT user_id, mkey, qty, label, ratio, hex(payload) FROM typed"),
              "1|m|1|one|1.5|01\n");
}

TEST(quick_badinput_bad_keys) {
  sl_store *st = su_open("keys", 0, 1, NULL);
  sl_value k[SL_MAX_KEY_COLUMNS + 1];
  int i, kg = -1;
  for (i = 0; i <= SL_MAX_KEY_COLUMNS; i++) k[i] = sl_int(i);
  ASSERT_RC(sl_store_set_key(st, k, 0, &kg), SL_MISUSE, st);
  ASSERT_RC(sl_store_set_key(st, k, -1, &kg), SL_MISUSE, st);
  ASSERT_RC(sl_store_set_key(st, k, SL_MAX_KEY_COLUMNS + 1, &kg), SL_MISUSE, st);
  k[1] = sl_null();
  ASSERT_RC(sl_store_set_key(st, k, 2, &kg), SL_MISUSE, st);
  k[1] = sl_int(1);
  k[1].type = 42;
  ASSERT_RC(sl_store_set_key(st, k, 2, &kg), SL_MISUSE, st);
  k[1] = sl_int(1);
  ASSERT_OK(sl_store_set_key(st, k, SL_MAX_KEY_COLUMNS, &kg), st);
  su_close(st);
}

TEST(quick_badinput_list_add_all_with_bad_row_adds_nothing) {
  sl_store *st = su_open("addall", 0, 1, NULL);
  kinds k;
  sl_value rows[3];
  reg_kinds(st, &k);
  su_key_int(st, 1);
  rows[0] = sl_int(1);
  ASSERT_OK(sl_list_add(k.lst, rows), k.lst);
  rows[0] = sl_int(2);
  rows[1] = sl_text("three");
  rows[2] = sl_int(4);
  ASSERT_RC(sl_list_add_all(k.lst, rows, 3), SL_MISUSE, k.lst);
  ASSERT_ERRMSG_HAS(k.lst, "amount");
  ASSERT_RC(sl_list_update(k.lst, rows, 3), SL_MISUSE, k.lst);
  ASSERT_TEXT(su_list_str(k.lst, 1), "1;");
  su_close(st);
}

/* ------------------------------------------------------------------------ */
/* Calls of the wrong kind, without a key, during iteration                  */
/* ------------------------------------------------------------------------ */

#define EXPECT_KIND(call, h, word) do { ASSERT_RC(call, SL_MISUSE, h); \
    ASSERT_ERRMSG_HAS(h, word); } while (0)

TEST(quick_badinput_wrong_kind_calls) {
  sl_store *st = su_open("kinds", 0, 1, NULL);
  kinds k;
  sl_value v = sl_int(1), mk = sl_text("m");
  const sl_value *out = NULL;
  size_t n = 0;
  int found = 0;
  sl_iter *it = NULL;
  char path[4096];
  reg_kinds(st, &k);
  su_key_int(st, 1);
  EXPECT_KIND(sl_map_put(k.val, &mk, &v), k.val, "value");
  EXPECT_KIND(sl_map_put(k.val, &mk, &v), k.val, "prices");
  EXPECT_KIND(sl_value_update(k.lst, &v), k.lst, "events");
  EXPECT_KIND(sl_list_add(k.map, &v), k.map, "attrs");
  EXPECT_KIND(sl_agg_get(k.red, &out), k.red, "totals");
  EXPECT_KIND(sl_map_get(k.val, &mk, &out), k.val, "value");
  EXPECT_KIND(sl_map_contains(k.val, &mk, &found), k.val, "value");
  EXPECT_KIND(sl_map_remove(k.val, &mk), k.val, "value");
  EXPECT_KIND(sl_map_iter(k.val, &it), k.val, "map");
  EXPECT_KIND(sl_list_add(k.val, &v), k.val, "value");
  EXPECT_KIND(sl_list_add_all(k.val, &v, 1), k.val, "value");
  EXPECT_KIND(sl_list_update(k.val, &v, 1), k.val, "value");
  EXPECT_KIND(sl_list_get(k.val, &out, &n), k.val, "value");
  EXPECT_KIND(sl_state_add(k.val, &v), k.val, "value");
  EXPECT_KIND(sl_agg_merge(k.val, &v), k.val, "value");
  EXPECT_KIND(sl_agg_get(k.val, &out), k.val, "value");
  EXPECT_KIND(sl_value_update(k.lst, &v), k.lst, "list");
  EXPECT_KIND(sl_value_get(k.lst, &out), k.lst, "list");
  EXPECT_KIND(sl_map_put(k.lst, &mk, &v), k.lst, "list");
  EXPECT_KIND(sl_map_iter(k.lst, &it), k.lst, "map");
  EXPECT_KIND(sl_value_update(k.map, &v), k.map, "map");
  EXPECT_KIND(sl_value_get(k.map, &out), k.map, "map");
  EXPECT_KIND(sl_list_add(k.map, &v), k.map, "map");
  EXPECT_KIND(sl_state_add(k.map, &v), k.map, "map");
  EXPECT_KIND(sl_agg_merge(k.red, &v), k.red, "reducing");
  EXPECT_KIND(sl_agg_get(k.red, &out), k.red, "reducing");
  EXPECT_KIND(sl_map_put(k.red, &mk, &v), k.red, "reducing");
  EXPECT_KIND(sl_list_add(k.agg, &v), k.agg, "aggregating");
  EXPECT_KIND(sl_map_put(k.ol, &mk, &v), k.ol, "list");
  EXPECT_KIND(sl_value_update(k.ol, &v), k.ol, "list");
  EXPECT_KIND(sl_list_add(k.bm, &v), k.bm, "map");
  EXPECT_KIND(sl_value_get(k.bm, &out), k.bm, "map");
  ASSERT(it == NULL);
  /* Reading a reducing or aggregating state's value is allowed. */
  ASSERT_OK(sl_state_add(k.red, &v), k.red);
  ASSERT_OK(sl_value_get(k.red, &out), k.red);
  ASSERT_EQ(out[0].v.i, 1);
  ASSERT_OK(sl_state_add(k.agg, &v), k.agg);
  ASSERT_OK(sl_value_get(k.agg, &out), k.agg);
  ASSERT_EQ(out[0].v.i, 1);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_EQ(su_count(path, "prices"), 0);
  ASSERT_EQ(su_count(path, "events"), 0);
  ASSERT_EQ(su_count(path, "attrs"), 0);
}

TEST(quick_badinput_keyed_calls_without_key) {
  sl_store *st = su_open("nokey", 0, 1, NULL);
  kinds k;
  sl_value v = sl_int(1), mk = sl_text("m");
  const sl_value *out = NULL;
  size_t n = 0;
  int found = 0;
  sl_iter *it = NULL;
  reg_kinds(st, &k);
  EXPECT_KIND(sl_value_get(k.val, &out), k.val, "key");
  EXPECT_KIND(sl_value_update(k.val, &v), k.val, "key");
  EXPECT_KIND(sl_state_clear(k.val), k.val, "key");
  EXPECT_KIND(sl_list_add(k.lst, &v), k.lst, "key");
  EXPECT_KIND(sl_list_get(k.lst, &out, &n), k.lst, "key");
  EXPECT_KIND(sl_map_put(k.map, &mk, &v), k.map, "key");
  EXPECT_KIND(sl_map_contains(k.map, &mk, &found), k.map, "key");
  EXPECT_KIND(sl_map_iter(k.map, &it), k.map, "key");
  EXPECT_KIND(sl_state_add(k.red, &v), k.red, "key");
  EXPECT_KIND(sl_agg_get(k.agg, &out), k.agg, "key");
  /* Non-keyed state needs no key. */
  ASSERT_OK(sl_list_add(k.ol, &v), k.ol);
  ASSERT_OK(sl_map_put(k.bm, &mk, &v), k.bm);
  su_close(st);
}

TEST(quick_badinput_writes_while_iterating) {
  sl_store *st = su_open("iterating", 0, 1, NULL);
  kinds k;
  sl_value v = sl_int(9), mk = sl_text("b"), mk2 = sl_text("zz");
  sl_iter *it = NULL;
  int64_t removed = 0;
  const sl_value *got = NULL;
  int n = 0;
  char path[4096];
  reg_kinds(st, &k);
  su_key_int(st, 1);
  {
    sl_value x = sl_int(1);
    sl_value a = sl_text("a"), c = sl_text("c");
    ASSERT_OK(sl_map_put(k.map, &a, &x), k.map);
    ASSERT_OK(sl_map_put(k.map, &c, &x), k.map);
    ASSERT_OK(sl_value_update(k.val, &x), k.val);
  }
  su_commit(st);
  ASSERT_OK(sl_map_iter(k.map, &it), k.map);
  ASSERT_RC(sl_iter_next(it), SL_ROW, it);
  ASSERT_RC(sl_map_put(k.map, &mk, &v), SL_MISUSE, k.map);
  ASSERT_RC(sl_map_remove(k.map, &mk2), SL_MISUSE, k.map);
  ASSERT_RC(sl_value_update(k.val, &v), SL_MISUSE, k.val);
  ASSERT_RC(sl_list_add(k.lst, &v), SL_MISUSE, k.lst);
  ASSERT_RC(sl_state_clear(k.val), SL_MISUSE, k.val);
  ASSERT_RC(sl_state_clear(k.map), SL_MISUSE, k.map);
  ASSERT_RC(sl_state_add(k.red, &v), SL_MISUSE, k.red);
  ASSERT_RC(sl_list_add(k.ol, &v), SL_MISUSE, k.ol);
  ASSERT_RC(sl_map_put(k.bm, &mk, &v), SL_MISUSE, k.bm);
  ASSERT_RC(sl_store_sweep_expired(st, &removed), SL_MISUSE, st);
  /* The iteration goes on undisturbed. */
  ASSERT_RC(sl_iter_next(it), SL_ROW, it);
  ASSERT_OK(sl_iter_map_key(it, &got, &n), it);
  ASSERT(n == 1 && got[0].n == 1 && memcmp(got[0].v.p, "c", 1) == 0);
  ASSERT_RC(sl_iter_next(it), SL_DONE, it);
  sl_iter_close(it);

  /* A scan iterator blocks writes the same way. */
  ASSERT_OK(sl_state_scan(k.val, &it), k.val);
  ASSERT_RC(sl_value_update(k.val, &v), SL_MISUSE, k.val);
  ASSERT_RC(sl_map_put(k.map, &mk, &v), SL_MISUSE, k.map);
  sl_iter_close(it);

  /* Closed: writes work again. */
  ASSERT_OK(sl_map_put(k.map, &mk, &v), k.map);
  ASSERT_OK(sl_value_update(k.val, &v), k.val);
  ASSERT_TEXT(su_map_str(k.map), "'a'=1;'b'=9;'c'=1;");
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_TEXT(su_sql(path, "SELECT mkey, amount FROM attrs ORDER BY mkey"), "a|1\nb|9\nc|1\n");
  ASSERT_TEXT(su_sql(path, "SELECT amount FROM prices"), "9\n");
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */
/* ------------------------------------------------------------------------ */

/* Lists every path under the test directory. */
static char *tree(void) {
  char out[8192];
  ASSERT_EQ(test_sh(out, sizeof out, "cd '%s' && find . | LC_ALL=C sort", test_dir()), 0);
  return su_strdup(out);
}

static void expect_open_refused(const char *op, int subtask, int par, const sl_config *cfg,
                                int want, const char *needle) {
  sl_store *st = NULL;
  int rc = sl_store_open(su_dir(), op, subtask, par, cfg, &st);
  ASSERT_MSG(rc == want, "open(%s, %d, %d): got %s, want %s (%s)", op ? op : "(null)", subtask,
             par, sl_errstr(rc), sl_errstr(want), st ? sl_errmsg(st) : "no handle");
  if (needle) ASSERT_ERRMSG_HAS(st, needle);
  ASSERT_OK(sl_store_close(st), NULL);
}

TEST(quick_badinput_operator_names_and_numbers) {
  static const char *bad[] = {"../evil", "a/b", "..", ".", ".hidden", "a\\b", "a b", "a;b",
                              "x\n", "/abs"};
  char long129[130], long128[129];
  char *before, *after;
  sl_config cfg;
  size_t i;
  sl_store *st;
  memset(long129, 'o', 129);
  long129[129] = 0;
  memset(long128, 'o', 128);
  long128[128] = 0;
  before = tree();
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_open_refused(bad[i], 0, 1, NULL,
                                                                        SL_MISUSE, NULL);
  expect_open_refused("../evil", 0, 1, NULL, SL_MISUSE, "../evil");
  expect_open_refused("a/b", 0, 1, NULL, SL_MISUSE, "a/b");
  expect_open_refused("", 0, 1, NULL, SL_MISUSE, NULL);
  expect_open_refused(long129, 0, 1, NULL, SL_MISUSE, NULL);
  expect_open_refused("op", -1, 1, NULL, SL_MISUSE, NULL);
  expect_open_refused("op", 1, 1, NULL, SL_MISUSE, NULL);
  expect_open_refused("op", 0, 0, NULL, SL_MISUSE, NULL);
  expect_open_refused("op", 0, 129, NULL, SL_MISUSE, NULL);
  sl_config_init(&cfg);
  cfg.max_parallelism = 0;
  expect_open_refused("op", 0, 1, &cfg, SL_MISUSE, NULL);
  cfg.max_parallelism = SL_MAX_MAX_PARALLELISM + 1;
  expect_open_refused("op", 0, 1, &cfg, SL_MISUSE, NULL);
  after = tree();
  /* Nothing was created anywhere, at most the (empty) state directory. */
  ASSERT_MSG(strcmp(before, after) == 0 || strcmp(after, ".\n./state\n") == 0,
             "files appeared:\n%s", after);
  free(before);
  free(after);
  /* Names at the limits are fine. */
  st = su_open(long128, 0, 1, NULL);
  su_close(st);
  st = su_open("A-z_0.9", 0, 1, NULL);
  su_close(st);
  cfg.max_parallelism = SL_MAX_MAX_PARALLELISM;
  st = su_open("wide", 32767, SL_MAX_MAX_PARALLELISM, &cfg);
  su_close(st);
}

/* Makes <state>/<op>/<subtask>.db with one committed value; returns a dump. */
static char *make_store(const char *op, int subtask, int par, char *path, size_t cap) {
  sl_store *st = su_open(op, subtask, par, NULL);
  kinds k;
  sl_value v = sl_int(77);
  int64_t key = 0;
  reg_kinds(st, &k);
  /* A key of this instance's key groups. */
  for (;;) {
    sl_value kv = sl_int(key);
    if (sl_store_set_key(st, &kv, 1, NULL) == SL_OK) break;
    ASSERT(++key < 100000);
  }
  ASSERT_OK(sl_list_add(k.ol, &v), k.ol);
  ASSERT_OK(sl_value_update(k.val, &v), k.val);
  su_commit(st);
  snprintf(path, cap, "%s", sl_store_path(st));
  su_close(st);
  return su_dump(path);
}

static void copy_db(const char *src, const char *dstdir, const char *dst) {
  char w1[4200], w2[4200];
  ASSERT_EQ(test_sh(NULL, 0, "mkdir -p '%s'", dstdir), 0);
  su_copy_file(src, dst);
  su_pathf(w1, sizeof w1, "%s-wal", src);
  su_pathf(w2, sizeof w2, "%s-wal", dst);
  if (su_exists(w1)) su_copy_file(w1, w2);
}

TEST(quick_badinput_reopen_mismatches) {
  char path[4096], other[4096], dir[4096];
  char *before = make_store("alpha", 0, 2, path, sizeof path);
  sl_config cfg;
  sl_store *st;
  char *msg;

  /* The file of operator alpha placed where operator beta's would be. */
  su_pathf(dir, sizeof dir, "%s/beta", su_dir());
  su_db_path(other, sizeof other, su_dir(), "beta", 0);
  copy_db(path, dir, other);
  st = NULL;
  ASSERT_RC(sl_store_open(su_dir(), "beta", 0, 2, NULL, &st), SL_MISMATCH, st);
  msg = su_strdup(sl_errmsg(st));
  ASSERT_MSG(su_contains(msg, "alpha") || su_contains(msg, "operator"),
             "message \"%s\" names neither the operator nor alpha", msg);
  free(msg);
  sl_store_close(st);

  /* Subtask 0's file as subtask 1. */
  su_pathf(dir, sizeof dir, "%s/alpha", su_dir());
  su_db_path(other, sizeof other, su_dir(), "alpha", 1);
  copy_db(path, dir, other);
  expect_open_refused("alpha", 1, 2, NULL, SL_MISMATCH, "subtask");

  /* Other parallelism, other max parallelism. */
  expect_open_refused("alpha", 0, 3, NULL, SL_MISMATCH, "parallelism");
  expect_open_refused("alpha", 0, 1, NULL, SL_MISMATCH, "parallelism");
  sl_config_init(&cfg);
  cfg.max_parallelism = 256;
  expect_open_refused("alpha", 0, 2, &cfg, SL_MISMATCH, "parallelism");

  /* Nothing changed, and the right arguments still open it. */
  ASSERT_TEXT(su_dump(path), before);
  st = su_open("alpha", 0, 2, NULL);
  su_close(st);
  ASSERT_TEXT(su_dump(path), before);
  free(before);
}

TEST(quick_badinput_open_file) {
  char path[4096], missing[4096];
  char *before = make_store("tool", 1, 3, path, sizeof path);
  sl_store *st = NULL;
  const char *op = NULL;
  int sub = -1, par = -1, maxp = -1, first = -1, last = -1;
  kinds k;
  const sl_value *out = NULL;
  ASSERT_OK(sl_store_open_file(path, NULL, &st), st);
  ASSERT_OK(sl_store_info(st, &op, &sub, &par, &maxp, &first, &last), st);
  ASSERT_STR(op, "tool");
  ASSERT_EQ(sub, 1);
  ASSERT_EQ(par, 3);
  ASSERT_EQ(maxp, 128);
  ASSERT_EQ(first, 43);
  ASSERT_EQ(last, 85);
  reg_kinds(st, &k);
  ASSERT_OK(sl_list_get(k.ol, &out, (size_t[]){0}), k.ol);
  ASSERT_EQ(out[0].v.i, 77);
  su_close(st);
  ASSERT_TEXT(su_dump(path), before);
  free(before);

  /* A missing file is never created. */
  su_pathf(missing, sizeof missing, "%s/nothere/0.db", su_dir());
  st = NULL;
  ASSERT(sl_store_open_file(missing, NULL, &st) != SL_OK);
  sl_store_close(st);
  ASSERT(!su_exists(missing));
}

TEST(quick_badinput_foreign_sqlite_file) {
  char dir[4096], path[4096];
  sqlite3 *db = NULL;
  sl_store *st = NULL;
  int rc;
  char *before;
  su_pathf(dir, sizeof dir, "%s/foreign", su_dir());
  ASSERT_EQ(test_sh(NULL, 0, "mkdir -p '%s'", dir), 0);
  su_db_path(path, sizeof path, su_dir(), "foreign", 0);
  ASSERT(sqlite3_open(path, &db) == SQLITE_OK);
  ASSERT(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);", NULL, NULL,
                      NULL) == SQLITE_OK);
  sqlite3_close(db);
  before = su_dump(path);
  rc = sl_store_open(su_dir(), "foreign", 0, 1, NULL, &st);
  ASSERT_MSG(rc == SL_CORRUPT || rc == SL_MISMATCH, "foreign file opened: %s (%s)",
             sl_errstr(rc), sl_errmsg(st));
  ASSERT(st != NULL);
  ASSERT(strcmp(sl_errmsg(st), "not an error") != 0 && sl_errmsg(st)[0] != 0);
  sl_store_close(st);
  ASSERT_TEXT(su_dump(path), before);
  ASSERT_EQ(su_sql_int(path, "PRAGMA application_id"), 0);
  st = NULL;
  rc = sl_store_open_file(path, NULL, &st);
  ASSERT_MSG(rc == SL_CORRUPT || rc == SL_MISMATCH, "foreign file opened: %s", sl_errstr(rc));
  sl_store_close(st);
  free(before);
}

TEST(quick_badinput_future_format_version) {
  char path[4096];
  char *before = make_store("future", 0, 1, path, sizeof path);
  sqlite3 *db = su_db_open(path);
  sl_store *st = NULL;
  int rc;
  ASSERT(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  free(before);
  before = su_dump(path);
  rc = sl_store_open(su_dir(), "future", 0, 1, NULL, &st);
  ASSERT_MSG(rc == SL_CORRUPT || rc == SL_MISMATCH, "format 99 opened: %s (%s)", sl_errstr(rc),
             sl_errmsg(st));
  ASSERT_ERRMSG_HAS(st, "99");
  sl_store_close(st);
  ASSERT_EQ(su_sql_int(path, "PRAGMA user_version"), 99);
  ASSERT_TEXT(su_dump(path), before);
  free(before);
}

TEST(quick_badinput_garbage_file) {
  char dir[4096], path[4096];
  unsigned char junk[8192];
  su_rng r = {42};
  sl_store *st = NULL;
  size_t i, n = 0;
  int rc;
  char *after;
  for (i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)su_rand(&r);
  su_pathf(dir, sizeof dir, "%s/junk", su_dir());
  ASSERT_EQ(test_sh(NULL, 0, "mkdir -p '%s'", dir), 0);
  su_db_path(path, sizeof path, su_dir(), "junk", 0);
  su_write_file(path, junk, sizeof junk);
  rc = sl_store_open(su_dir(), "junk", 0, 1, NULL, &st);
  ASSERT_MSG(rc == SL_CORRUPT || rc == SL_ERROR, "garbage opened: %s (%s)", sl_errstr(rc),
             sl_errmsg(st));
  ASSERT(st != NULL);
  ASSERT(strcmp(sl_errmsg(st), "not an error") != 0 && sl_errmsg(st)[0] != 0);
  sl_store_close(st);
  st = NULL;
  rc = sl_store_open_file(path, NULL, &st);
  ASSERT_MSG(rc == SL_CORRUPT || rc == SL_ERROR, "garbage opened: %s", sl_errstr(rc));
  sl_store_close(st);
  /* The file is untouched. */
  after = su_read_file(path, &n);
  ASSERT(after != NULL);
  ASSERT_EQ(n, sizeof junk);
  ASSERT(memcmp(after, junk, n) == 0);
  free(after);
}

/* ------------------------------------------------------------------------ */
/* A failed commit                                                           */
/* ------------------------------------------------------------------------ */

/* Takes the write lock of path from another connection. A store holds the
** write lock from its first write on (it begins the next write transaction
** right after each commit), so the tests below reopen the store and take the
** lock before the store writes again: its commit then has to begin one. */
static sqlite3 *lock_db(const char *path) {
  sqlite3 *db = su_db_open(path);
  int rc;
  sqlite3_busy_timeout(db, 0);
  rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  ASSERT_MSG(rc == SQLITE_OK,
             "another connection cannot take the write lock between commits: %s",
             sqlite3_errmsg(db));
  return db;
}

static void unlock_db(sqlite3 *db) {
  ASSERT(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
}

static void write_more(sl_store *st, kinds *k) {
  sl_value v;
  sl_value mk = sl_text("m");
  su_key_int(st, 1);
  v = sl_int(2);
  ASSERT_OK(sl_value_update(k->val, &v), k->val);
  v = sl_int(3);
  ASSERT_OK(sl_list_add(k->lst, &v), k->lst);
  ASSERT_OK(sl_map_put(k->map, &mk, &v), k->map);
  su_key_int(st, 2);
  v = sl_int(4);
  ASSERT_OK(sl_value_update(k->val, &v), k->val);
}

TEST(quick_badinput_failed_commit_keeps_previous_commit) {
  sl_store *st = su_open("busy", 0, 1, NULL);
  kinds k;
  sl_value v = sl_int(1);
  sqlite3 *db;
  char path[4096];
  char *before;
  reg_kinds(st, &k);
  su_key_int(st, 1);
  ASSERT_OK(sl_value_update(k.val, &v), k.val);
  ASSERT_OK(sl_list_add(k.lst, &v), k.lst);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  before = su_dump(path);
  st = su_open("busy", 0, 1, NULL);
  reg_kinds(st, &k);
  write_more(st, &k);
  db = lock_db(path);
  ASSERT_RC(sl_store_commit(st), SL_BUSY, st);
  unlock_db(db);
  /* The store still reads its own writes. */
  su_key_int(st, 1);
  ASSERT_TEXT(su_value_str(k.val, 1), "2");
  su_close(st);
  ASSERT_TEXT(su_dump(path), before);
  st = su_open("busy", 0, 1, NULL);
  reg_kinds(st, &k);
  su_key_int(st, 1);
  ASSERT_TEXT(su_value_str(k.val, 1), "1");
  ASSERT_TEXT(su_list_str(k.lst, 1), "1;");
  ASSERT_TEXT(su_map_str(k.map), "");
  su_key_int(st, 2);
  ASSERT_TEXT(su_value_str(k.val, 1), "");
  su_close(st);
  free(before);
}

TEST(quick_badinput_failed_commit_can_be_retried) {
  sl_store *st = su_open("retry", 0, 1, NULL);
  kinds k;
  sl_value v = sl_int(1);
  sqlite3 *db;
  char path[4096];
  reg_kinds(st, &k);
  su_key_int(st, 1);
  ASSERT_OK(sl_value_update(k.val, &v), k.val);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  st = su_open("retry", 0, 1, NULL);
  reg_kinds(st, &k);
  write_more(st, &k);
  db = lock_db(path);
  ASSERT_RC(sl_store_commit(st), SL_BUSY, st);
  ASSERT_TEXT(su_sql(path, "SELECT user_id, amount FROM prices ORDER BY 1"), "1|1\n");
  unlock_db(db);
  su_commit(st);
  ASSERT_TEXT(su_sql(path, "SELECT user_id, amount FROM prices ORDER BY 1"), "1|2\n2|4\n");
  ASSERT_TEXT(su_sql(path, "SELECT user_id, amount FROM events ORDER BY seq"), "1|3\n");
  ASSERT_TEXT(su_sql(path, "SELECT user_id, mkey, amount FROM attrs"), "1|m|3\n");
  su_close(st);
  ASSERT_TEXT(su_sql(path, "SELECT user_id, amount FROM prices ORDER BY 1"), "1|2\n2|4\n");
}
