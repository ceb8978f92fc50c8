/*
** test_store_describe.c — what tools need from a store they know nothing
** about: the names of its states, opening a state by its stored descriptor,
** describing it, and reading its rows.
*/
#include "store_util.h"

static int sum_reduce(void *ud, const sl_value *acc, const sl_value *in, sl_value *out) {
  (void)ud;
  out[0] = sl_int(acc[0].v.i + in[0].v.i);
  return SL_OK;
}

TEST(quick_describe_open_list_states) {
  sl_store *st = su_open("tool", 0, 1, NULL);
  sl_column key = su_col("word", SL_TEXT), val = su_col("n", SL_INTEGER), mk = su_col("k", SL_INTEGER);
  sl_state_desc d, got;
  sl_state *counts, *sums, *m, *opened;
  const char *const *names;
  char path[4096];
  int n;
  memset(&d, 0, sizeof d);
  d.name = "counts";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 1;
  d.value = &val;
  d.ttl_ms = 5000;
  counts = su_reg(st, &d);
  d.name = "sums";
  d.kind = SL_REDUCING_STATE;
  d.ttl_ms = 0;
  d.reduce = sum_reduce;
  sums = su_reg(st, &d);
  d.name = "attrs";
  d.kind = SL_MAP_STATE;
  d.reduce = NULL;
  d.n_map_key = 1;
  d.map_key = &mk;
  m = su_reg(st, &d);
  su_key_text(st, "apple");
  {
    sl_value v = sl_int(3), k = sl_int(9);
    ASSERT_OK(sl_value_update(counts, &v), st);
    ASSERT_OK(sl_state_add(sums, &v), st);
    ASSERT_OK(sl_state_add(sums, &v), st);
    ASSERT_OK(sl_map_put(m, &k, &v), st);
  }
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);

  /* a tool opens the file by path alone */
  ASSERT_OK(sl_store_open_file(path, NULL, &st), st);
  ASSERT_OK(sl_store_list_states(st, &names, &n), st);
  ASSERT_EQ(n, 3);
  ASSERT_STR(names[0], "attrs");
  ASSERT_STR(names[1], "counts");
  ASSERT_STR(names[2], "sums");
  ASSERT_RC(sl_state_open(st, "nope", &opened), SL_NOTFOUND, st);
  ASSERT(su_contains(sl_errmsg(st), "nope"));

  ASSERT_OK(sl_state_open(st, "counts", &opened), st);
  ASSERT_OK(sl_state_describe(opened, &got), st);
  ASSERT_STR(got.name, "counts");
  ASSERT_EQ(got.kind, SL_VALUE_STATE);
  ASSERT_EQ(got.n_key, 1);
  ASSERT_STR(got.key[0].name, "word");
  ASSERT_EQ(got.key[0].type, SL_TEXT);
  ASSERT_EQ(got.n_value, 1);
  ASSERT_STR(got.value[0].name, "n");
  ASSERT_EQ(got.ttl_ms, 5000);
  {
    char *s = su_scan_str(opened, 0);
    ASSERT(su_contains(s, "'apple'"));
    ASSERT(su_contains(s, "3"));
    free(s);
  }
  /* a reducing state opened without its callback reads, but refuses adds */
  ASSERT_OK(sl_state_open(st, "sums", &opened), st);
  su_key_text(st, "apple");
  {
    const sl_value *v;
    sl_value one = sl_int(1);
    ASSERT_OK(sl_value_get(opened, &v), st);
    ASSERT_EQ(v[0].v.i, 6);
    ASSERT_RC(sl_state_add(opened, &one), SL_MISUSE, st);
    ASSERT(su_contains(sl_errmsg(st), "callbacks"));
  }
  ASSERT_OK(sl_state_open(st, "attrs", &opened), st);
  ASSERT_OK(sl_state_describe(opened, &got), st);
  ASSERT_EQ(got.kind, SL_MAP_STATE);
  ASSERT_EQ(got.n_map_key, 1);
  ASSERT_STR(got.map_key[0].name, "k");
  /* opening twice gives the same handle */
  {
    sl_state *again;
    ASSERT_OK(sl_state_open(st, "attrs", &again), st);
    ASSERT(again == opened);
  }
  su_close(st);
}
