/*
** test_store_map.c — keyed map state: put, get, contains, remove, iterate in
** ascending map-key order (integers and reals numerically, text and blobs
** bytewise, several map-key columns lexicographically) before and after a
** commit and a reopen; many keys; clear of the current key only; the table
** layout; scan order; uncommitted changes rolled back by close. Each scenario
** runs with the write-back cache off, small and large.
*/
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

/* attrs: user TEXT -> map field TEXT -> val INTEGER */
static sl_state *reg_attrs(sl_store *st) {
  sl_column key = su_col("user", SL_TEXT);
  sl_column mk = su_col("field", SL_TEXT);
  sl_column val = su_col("val", SL_INTEGER);
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = "attrs";
  d.kind = SL_MAP_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_map_key = 1;
  d.map_key = &mk;
  d.n_value = 1;
  d.value = &val;
  return su_reg(st, &d);
}

static void put_attr(sl_state *s, const char *field, int64_t v) {
  sl_value k = sl_text(field), x = sl_int(v);
  ASSERT_OK(sl_map_put(s, &k, &x), s);
}

static char *get_attr(sl_state *s, const char *field) {
  sl_value k = sl_text(field);
  const sl_value *out = NULL;
  int found = -1;
  int rc = sl_map_get(s, &k, &out);
  ASSERT_OK(sl_map_contains(s, &k, &found), s);
  if (rc == SL_NOTFOUND) {
    ASSERT_EQ(found, 0);
    return su_take(&(su_buf){0, 0, 0});
  }
  ASSERT_OK(rc, s);
  ASSERT_EQ(found, 1);
  su_check_out_values(out, 1);
  return su_values_str(out, 1);
}

static void del_attr(sl_state *s, const char *field) {
  sl_value k = sl_text(field);
  ASSERT_OK(sl_map_remove(s, &k), s);
}

TEST(quick_map_roundtrip) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    snprintf(op, sizeof op, "maps%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(get_attr(s, "age"), "");
    put_attr(s, "age", 30);
    put_attr(s, "height", 170);
    put_attr(s, "age", 31);
    put_attr(s, "tmp", 1);
    del_attr(s, "tmp");
    del_attr(s, "never-there");
    su_key_text(st, "bob");
    put_attr(s, "age", 40);
    su_key_text(st, "ann");
    ASSERT_TEXT(get_attr(s, "age"), "31");
    ASSERT_TEXT(get_attr(s, "height"), "170");
    ASSERT_TEXT(get_attr(s, "tmp"), "");
    ASSERT_TEXT(su_map_str(s), "'age'=31;'height'=170;");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_TEXT(su_columns(path, "attrs"), "kg,user,field,val");
    ASSERT_TEXT(su_sql(path, "SELECT user, field, val FROM attrs ORDER BY user, field"),
                "ann|age|31\nann|height|170\nbob|age|40\n");

    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(get_attr(s, "age"), "31");
    ASSERT_TEXT(su_map_str(s), "'age'=31;'height'=170;");
    del_attr(s, "age");
    put_attr(s, "zip", 12345);
    ASSERT_TEXT(su_map_str(s), "'height'=170;'zip'=12345;");
    su_key_text(st, "bob");
    ASSERT_TEXT(su_map_str(s), "'age'=40;");
    su_key_text(st, "cid");
    ASSERT_TEXT(su_map_str(s), "");
    su_commit(st);
    su_close(st);
    ASSERT_TEXT(su_sql(path, "SELECT user, field, val FROM attrs ORDER BY user, field"),
                "ann|height|170\nann|zip|12345\nbob|age|40\n");
  }
}

/* A map state "m" with key id INTEGER, map-key columns of the given types
** and value v INTEGER. */
static sl_state *reg_typed_map(sl_store *st, int n_mk, const int *types) {
  static const char *names[] = {"mk1", "mk2", "mk3"};
  sl_column key = su_col("id", SL_INTEGER);
  sl_column mk[3];
  sl_column val = su_col("v", SL_INTEGER);
  sl_state_desc d;
  int i;
  for (i = 0; i < n_mk; i++) mk[i] = su_col(names[i], types[i]);
  memset(&d, 0, sizeof d);
  d.name = "m";
  d.kind = SL_MAP_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_map_key = n_mk;
  d.map_key = mk;
  d.n_value = 1;
  d.value = &val;
  return su_reg(st, &d);
}

/* Puts entries[i] -> i (n_mk columns each) in the given insertion order, half
** before a commit, half after; a doomed entry comes and goes; then the
** iteration must follow `sorted` (indexes in expected order), before and
** after close + reopen. */
static void check_order(const char *opbase, int n_mk, const int *types,
                        const sl_value *entries, int n, const int *insert_order,
                        const int *sorted) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[64];
    su_buf want = {0, 0, 0};
    int i;
    snprintf(op, sizeof op, "%s%d", opbase, b);
    cfg_budget(&cfg, budgets[b]);
    for (i = 0; i < n; i++) {
      su_add_values(&want, &entries[sorted[i] * n_mk], n_mk);
      su_addf(&want, "=%d;", sorted[i]);
    }
    st = su_open(op, 0, 1, &cfg);
    s = reg_typed_map(st, n_mk, types);
    su_key_int(st, 7);
    for (i = 0; i < n; i++) {
      int e = insert_order[i];
      sl_value v = sl_int(e), doomed = sl_int(-1);
      ASSERT_OK(sl_map_put(s, &entries[e * n_mk], &doomed), s);
      ASSERT_OK(sl_map_put(s, &entries[e * n_mk], &v), s);
      if (i == n / 2) su_commit(st);
      /* Another key's entries in between must not show up. */
      su_key_int(st, 8);
      ASSERT_OK(sl_map_put(s, &entries[e * n_mk], &doomed), s);
      su_key_int(st, 7);
    }
    {
      /* The first entry removed and put back: still in its sorted place. */
      sl_value v = sl_int(insert_order[0]);
      ASSERT_OK(sl_map_remove(s, &entries[insert_order[0] * n_mk]), s);
      ASSERT_OK(sl_map_put(s, &entries[insert_order[0] * n_mk], &v), s);
    }
    ASSERT_TEXT(su_map_str(s), want.p);
    su_commit(st);
    ASSERT_TEXT(su_map_str(s), want.p);
    su_close(st);
    st = su_open(op, 0, 1, &cfg);
    s = reg_typed_map(st, n_mk, types);
    su_key_int(st, 7);
    ASSERT_TEXT(su_map_str(s), want.p);
    su_close(st);
    free(want.p);
  }
}

TEST(quick_map_iter_order_integer) {
  const int types[] = {SL_INTEGER};
  sl_value e[8];
  const int order[] = {3, 0, 7, 1, 6, 2, 5, 4};
  /* values: 0:5 1:-3 2:0 3:100 4:-100 5:INT64_MAX 6:INT64_MIN 7:42 */
  const int sorted[] = {6, 4, 1, 2, 0, 7, 3, 5};
  e[0] = sl_int(5);
  e[1] = sl_int(-3);
  e[2] = sl_int(0);
  e[3] = sl_int(100);
  e[4] = sl_int(-100);
  e[5] = sl_int(INT64_MAX);
  e[6] = sl_int(INT64_MIN);
  e[7] = sl_int(42);
  check_order("mint", 1, types, e, 8, order, sorted);
}

TEST(quick_map_iter_order_real) {
  const int types[] = {SL_REAL};
  sl_value e[7];
  const int order[] = {6, 5, 4, 3, 2, 1, 0};
  /* 0:2.25 1:-0.5 2:10 3:-1.5 4:0 5:1e-9 6:-1e10 */
  const int sorted[] = {6, 3, 1, 4, 5, 0, 2};
  e[0] = sl_real(2.25);
  e[1] = sl_real(-0.5);
  e[2] = sl_real(10.0);
  e[3] = sl_real(-1.5);
  e[4] = sl_real(0.0);
  e[5] = sl_real(1e-9);
  e[6] = sl_real(-1e10);
  check_order("mreal", 1, types, e, 7, order, sorted);
}

TEST(quick_map_iter_order_text) {
  const int types[] = {SL_TEXT};
  sl_value e[8];
  const int order[] = {0, 1, 2, 3, 4, 5, 6, 7};
  /* 0:"b" 1:"a" 2:"ab" 3:"B" 4:"" 5:"\xc3\xa9" 6:"z" 7:"a~" */
  const int sorted[] = {4, 3, 1, 2, 7, 0, 6, 5};
  e[0] = sl_text("b");
  e[1] = sl_text("a");
  e[2] = sl_text("ab");
  e[3] = sl_text("B");
  e[4] = sl_text("");
  e[5] = sl_text("\xc3\xa9");
  e[6] = sl_text("z");
  e[7] = sl_text("a~");
  check_order("mtext", 1, types, e, 8, order, sorted);
}

TEST(quick_map_iter_order_blob) {
  static const unsigned char b00[] = {0x00}, b0000[] = {0x00, 0x00}, b00ff[] = {0x00, 0xff},
                             b01[] = {0x01}, b80[] = {0x80}, bff[] = {0xff};
  const int types[] = {SL_BLOB};
  sl_value e[7];
  const int order[] = {6, 0, 5, 1, 4, 2, 3};
  /* 0:x'01' 1:x'' 2:x'00' 3:x'0000' 4:x'ff' 5:x'00ff' 6:x'80' */
  const int sorted[] = {1, 2, 3, 5, 0, 6, 4};
  e[0] = sl_blob(b01, 1);
  e[1] = sl_blob(b00, 0);
  e[2] = sl_blob(b00, 1);
  e[3] = sl_blob(b0000, 2);
  e[4] = sl_blob(bff, 1);
  e[5] = sl_blob(b00ff, 2);
  e[6] = sl_blob(b80, 1);
  check_order("mblob", 1, types, e, 7, order, sorted);
}

TEST(quick_map_iter_order_two_columns) {
  const int types[] = {SL_TEXT, SL_INTEGER};
  sl_value e[12];
  const int order[] = {0, 1, 2, 3, 4, 5};
  /* 0:("b",1) 1:("a",10) 2:("a",2) 3:("a",-1) 4:("",5) 5:("ab",0) */
  const int sorted[] = {4, 3, 2, 1, 5, 0};
  e[0] = sl_text("b");
  e[1] = sl_int(1);
  e[2] = sl_text("a");
  e[3] = sl_int(10);
  e[4] = sl_text("a");
  e[5] = sl_int(2);
  e[6] = sl_text("a");
  e[7] = sl_int(-1);
  e[8] = sl_text("");
  e[9] = sl_int(5);
  e[10] = sl_text("ab");
  e[11] = sl_int(0);
  check_order("mtwo", 2, types, e, 6, order, sorted);
}

TEST(quick_map_iter_empty_and_values) {
  sl_store *st = su_open("mempty", 0, 1, NULL);
  sl_state *s = reg_attrs(st);
  sl_iter *it = NULL;
  const sl_value *mk = NULL, *v = NULL;
  int n = -1;
  su_key_text(st, "nobody");
  ASSERT_OK(sl_map_iter(s, &it), s);
  ASSERT_RC(sl_iter_next(it), SL_DONE, it);
  sl_iter_close(it);
  su_key_text(st, "ann");
  put_attr(s, "a", 1);
  ASSERT_OK(sl_map_iter(s, &it), s);
  ASSERT_RC(sl_iter_next(it), SL_ROW, it);
  ASSERT_OK(sl_iter_map_key(it, &mk, &n), it);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(mk[0].type, SL_TEXT);
  ASSERT(mk[0].n == 1 && memcmp(mk[0].v.p, "a", 1) == 0);
  ASSERT_OK(sl_iter_value(it, &v, &n), it);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(v[0].v.i, 1);
  ASSERT_RC(sl_iter_next(it), SL_DONE, it);
  /* Past the end it stays done. */
  ASSERT_RC(sl_iter_next(it), SL_DONE, it);
  sl_iter_close(it);
  /* After closing the iterator, writes work again. */
  put_attr(s, "b", 2);
  ASSERT_TEXT(su_map_str(s), "'a'=1;'b'=2;");
  su_close(st);
}

static void user_key(sl_store *st, int64_t i) {
  char u[32];
  snprintf(u, sizeof u, "u%06lld", (long long)i);
  su_key_text(st, u);
}

TEST(map_many_keys) {
  const int64_t n = 10000;
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    int64_t i;
    snprintf(op, sizeof op, "manym%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    for (i = 0; i < n; i++) {
      user_key(st, i);
      put_attr(s, "c", i * 3);
      put_attr(s, "a", i);
      put_attr(s, "b", i * 2);
      if (i % 2) del_attr(s, "b");
      if (i == n / 2) su_commit(st);
    }
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_EQ(su_count(path, "attrs"), n * 3 - n / 2);

    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    for (i = 0; i < n; i++) {
      char want[128], *got;
      user_key(st, i);
      if (i % 2) {
        snprintf(want, sizeof want, "'a'=%lld;'c'=%lld;", (long long)i, (long long)(i * 3));
      } else {
        snprintf(want, sizeof want, "'a'=%lld;'b'=%lld;'c'=%lld;", (long long)i,
                 (long long)(i * 2), (long long)(i * 3));
      }
      got = su_map_str(s);
      ASSERT_MSG(strcmp(got, want) == 0, "user %lld: %s, want %s", (long long)i, got, want);
      free(got);
    }
    su_close(st);
  }
}

TEST(quick_map_clear_current_key_only) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    snprintf(op, sizeof op, "mclr%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    su_key_text(st, "ann");
    put_attr(s, "a", 1);
    put_attr(s, "b", 2);
    su_key_text(st, "bob");
    put_attr(s, "a", 3);
    su_commit(st);
    su_key_text(st, "ann");
    put_attr(s, "c", 4); /* uncommitted entry of the cleared key */
    ASSERT_OK(sl_state_clear(s), s);
    ASSERT_TEXT(su_map_str(s), "");
    ASSERT_TEXT(get_attr(s, "a"), "");
    ASSERT_TEXT(get_attr(s, "c"), "");
    su_key_text(st, "bob");
    ASSERT_TEXT(su_map_str(s), "'a'=3;");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_TEXT(su_sql(path, "SELECT user, field, val FROM attrs ORDER BY 1, 2"), "bob|a|3\n");
    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_map_str(s), "");
    put_attr(s, "z", 26);
    ASSERT_TEXT(su_map_str(s), "'z'=26;");
    su_close(st);
  }
}

TEST(quick_map_uncommitted_rolled_back) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    char *before;
    int64_t i;
    snprintf(op, sizeof op, "mundo%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    su_key_text(st, "ann");
    put_attr(s, "a", 1);
    put_attr(s, "b", 2);
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    before = su_dump(path);
    put_attr(s, "a", 100);
    del_attr(s, "b");
    put_attr(s, "c", 3);
    for (i = 0; i < 3000; i++) {
      user_key(st, i);
      put_attr(s, "x", i);
    }
    su_key_text(st, "ann");
    ASSERT_TEXT(su_map_str(s), "'a'=100;'c'=3;");
    su_close(st);

    ASSERT_TEXT(su_dump(path), before);
    st = su_open(op, 0, 1, &cfg);
    s = reg_attrs(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_map_str(s), "'a'=1;'b'=2;");
    user_key(st, 5);
    ASSERT_TEXT(su_map_str(s), "");
    su_close(st);
    free(before);
  }
}

TEST(quick_map_scan_order) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    const int types[] = {SL_INTEGER};
    sl_iter *it = NULL;
    int rc, prev_kg = -1, rows = 0;
    int64_t prev_key = -1, prev_mk = 0, i;
    snprintf(op, sizeof op, "mscan%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_typed_map(st, 1, types);
    for (i = 0; i < 1000; i++) {
      sl_value mk = sl_int(1000 - i), v = sl_int(i);
      su_key_int(st, i % 100);
      ASSERT_OK(sl_map_put(s, &mk, &v), s);
      if (i == 500) su_commit(st);
    }
    ASSERT_OK(sl_state_scan(s, &it), s);
    while ((rc = sl_iter_next(it)) == SL_ROW) {
      const sl_value *k = NULL, *mk = NULL, *v = NULL;
      int nk = 0, nmk = 0, nv = 0, kg = -1;
      ASSERT_OK(sl_iter_key(it, &k, &nk, &kg), it);
      ASSERT_OK(sl_iter_map_key(it, &mk, &nmk), it);
      ASSERT_OK(sl_iter_value(it, &v, &nv), it);
      ASSERT_EQ(nk, 1);
      ASSERT_EQ(nmk, 1);
      ASSERT_EQ(nv, 1);
      ASSERT_EQ(mk[0].v.i, 1000 - v[0].v.i);
      if (kg == prev_kg && k[0].v.i == prev_key) {
        ASSERT_MSG(mk[0].v.i > prev_mk, "key %lld: map key %lld after %lld",
                   (long long)prev_key, (long long)mk[0].v.i, (long long)prev_mk);
      } else {
        ASSERT_MSG(kg > prev_kg || (kg == prev_kg && k[0].v.i > prev_key),
                   "scan order: (%d,%lld) after (%d,%lld)", kg, (long long)k[0].v.i,
                   prev_kg, (long long)prev_key);
      }
      prev_kg = kg;
      prev_key = k[0].v.i;
      prev_mk = mk[0].v.i;
      rows++;
    }
    ASSERT_RC(rc, SL_DONE, it);
    sl_iter_close(it);
    ASSERT_EQ(rows, 1000);
    su_close(st);
  }
}
