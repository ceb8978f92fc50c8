/*
** test_store_list.c — keyed list state: add, add_all, update, get in
** insertion order across commits and reopens; many keys; long lists; clear of
** the current key only; the table layout (kg, key, seq, values); scan order;
** uncommitted changes rolled back by close. Each scenario runs with the
** write-back cache off, small and large.
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

/* events: user TEXT -> list of (item TEXT, n INTEGER) */
static sl_state *reg_events(sl_store *st) {
  sl_column key = su_col("user", SL_TEXT);
  sl_column val[2];
  sl_state_desc d;
  val[0] = su_col("item", SL_TEXT);
  val[1] = su_col("n", SL_INTEGER);
  memset(&d, 0, sizeof d);
  d.name = "events";
  d.kind = SL_LIST_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 2;
  d.value = val;
  return su_reg(st, &d);
}

static void add_event(sl_state *s, const char *item, int64_t n) {
  sl_value row[2];
  row[0] = sl_text(item);
  row[1] = sl_int(n);
  ASSERT_OK(sl_list_add(s, row), s);
}

TEST(quick_list_roundtrip) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    sl_value rows[6];
    snprintf(op, sizeof op, "lists%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_list_str(s, 2), "");
    add_event(s, "c", 1);
    add_event(s, "a", 2);
    rows[0] = sl_text("b");
    rows[1] = sl_int(3);
    rows[2] = sl_text("b");
    rows[3] = sl_null();
    rows[4] = sl_text("z");
    rows[5] = sl_int(-5);
    ASSERT_OK(sl_list_add_all(s, rows, 3), s);
    su_key_text(st, "bob");
    add_event(s, "x", 9);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_list_str(s, 2), "'c',1;'a',2;'b',3;'b',NULL;'z',-5;");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_EQ(su_count(path, "events"), 6);
    ASSERT_TEXT(su_sql(path, "SELECT item, n FROM events WHERE user='ann' ORDER BY seq"),
                "c|1\na|2\nb|3\nb|NULL\nz|-5\n");

    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_list_str(s, 2), "'c',1;'a',2;'b',3;'b',NULL;'z',-5;");
    add_event(s, "after", 6);
    ASSERT_TEXT(su_list_str(s, 2), "'c',1;'a',2;'b',3;'b',NULL;'z',-5;'after',6;");
    su_key_text(st, "bob");
    ASSERT_TEXT(su_list_str(s, 2), "'x',9;");
    su_key_text(st, "cid");
    ASSERT_TEXT(su_list_str(s, 2), "");
    su_commit(st);
    su_close(st);
    ASSERT_TEXT(su_sql(path, "SELECT item FROM events WHERE user='ann' ORDER BY seq"),
                "c\na\nb\nb\nz\nafter\n");
  }
}

TEST(quick_list_table_layout) {
  sl_store *st = su_open("layout", 0, 1, NULL);
  sl_state *s = reg_events(st);
  char path[4096];
  su_key_text(st, "ann");
  add_event(s, "a", 1);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_TEXT(su_columns(path, "events"), "kg,user,seq,item,n");
}

TEST(quick_list_update_replaces) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    sl_value rows[4];
    const sl_value *got = NULL;
    size_t n = 7;
    snprintf(op, sizeof op, "upd%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    add_event(s, "old1", 1);
    add_event(s, "old2", 2);
    su_commit(st);
    rows[0] = sl_text("new1");
    rows[1] = sl_int(10);
    rows[2] = sl_text("new2");
    rows[3] = sl_int(20);
    ASSERT_OK(sl_list_update(s, rows, 2), s);
    ASSERT_TEXT(su_list_str(s, 2), "'new1',10;'new2',20;");
    add_event(s, "new3", 30);
    ASSERT_TEXT(su_list_str(s, 2), "'new1',10;'new2',20;'new3',30;");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    ASSERT_TEXT(su_sql(path, "SELECT item, n FROM events ORDER BY seq"),
                "new1|10\nnew2|20\nnew3|30\n");

    /* Update with no rows clears the list. */
    ASSERT_OK(sl_list_update(s, NULL, 0), s);
    ASSERT_RC(sl_list_get(s, &got, &n), SL_NOTFOUND, s);
    ASSERT_EQ(n, 0);
    su_commit(st);
    su_close(st);
    ASSERT_EQ(su_count(path, "events"), 0);
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_list_str(s, 2), "");
    su_close(st);
  }
}

static void check_user_list(sl_state *s, int64_t i) {
  su_buf want = {0, 0, 0};
  char *got;
  int64_t j;
  for (j = 0; j <= i % 3; j++) su_addf(&want, "'e%lld.%lld',%lld;", (long long)i, (long long)j,
                                       (long long)(i * 10 + j));
  got = su_list_str(s, 2);
  ASSERT_MSG(strcmp(got, want.p) == 0, "key %lld: %s, want %s", (long long)i, got, want.p);
  free(got);
  free(want.p);
}

static void key_user(sl_store *st, int64_t i) {
  char u[32];
  snprintf(u, sizeof u, "user%lld", (long long)i);
  su_key_text(st, u);
}

TEST(list_many_keys) {
  const int64_t n = 10000;
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    int64_t i, j, total = 0;
    snprintf(op, sizeof op, "manyl%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    /* Interleave the keys: element j of every key, then j+1. */
    for (j = 0; j < 3; j++) {
      for (i = 0; i < n; i++) {
        char item[48];
        if (j > i % 3) continue;
        snprintf(item, sizeof item, "e%lld.%lld", (long long)i, (long long)j);
        key_user(st, i);
        add_event(s, item, i * 10 + j);
        total++;
      }
    }
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_EQ(su_count(path, "events"), total);

    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    for (i = 0; i < n; i++) {
      key_user(st, i);
      check_user_list(s, i);
    }
    su_close(st);
  }
}

/* The same many-keys scenario with an INTEGER key column. */
static sl_state *reg_ilist(sl_store *st) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column val[2];
  sl_state_desc d;
  val[0] = su_col("item", SL_TEXT);
  val[1] = su_col("n", SL_INTEGER);
  memset(&d, 0, sizeof d);
  d.name = "ilist";
  d.kind = SL_LIST_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 2;
  d.value = val;
  return su_reg(st, &d);
}

TEST(list_many_int_keys) {
  const int64_t n = 10000;
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    int64_t i, j, total = 0;
    snprintf(op, sizeof op, "manyi%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_ilist(st);
    for (j = 0; j < 3; j++) {
      for (i = 0; i < n; i++) {
        char item[48];
        if (j > i % 3) continue;
        snprintf(item, sizeof item, "e%lld.%lld", (long long)i, (long long)j);
        su_key_int(st, i);
        add_event(s, item, i * 10 + j);
        total++;
      }
      if (j == 1) su_commit(st);
    }
    for (i = 0; i < n; i += 101) {
      su_key_int(st, i);
      check_user_list(s, i);
    }
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_EQ(su_count(path, "ilist"), total);

    st = su_open(op, 0, 1, &cfg);
    s = reg_ilist(st);
    for (i = 0; i < n; i++) {
      su_key_int(st, i);
      check_user_list(s, i);
    }
    su_close(st);
  }
}

TEST(list_long_list_in_order) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    const sl_value *rows = NULL;
    size_t n = 0, i;
    snprintf(op, sizeof op, "long%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_ilist(st);
    for (i = 0; i < 5000; i++) {
      char item[32];
      snprintf(item, sizeof item, "%05zu", 4999 - i);
      su_key_int(st, 1);
      add_event(s, item, (int64_t)i);
      /* Other keys in between, so that the list is not written in one go. */
      su_key_int(st, 2 + (int64_t)(i % 50));
      add_event(s, "other", (int64_t)i);
      if (i % 1000 == 999) su_commit(st);
    }
    su_close(st);
    st = su_open(op, 0, 1, &cfg);
    s = reg_ilist(st);
    su_key_int(st, 1);
    ASSERT_OK(sl_list_get(s, &rows, &n), s);
    ASSERT_EQ(n, 5000);
    for (i = 0; i < n; i++) {
      char item[32];
      snprintf(item, sizeof item, "%05zu", 4999 - i);
      ASSERT_EQ(rows[2 * i].type, SL_TEXT);
      ASSERT_MSG(rows[2 * i].n == 5 && memcmp(rows[2 * i].v.p, item, 5) == 0,
                 "element %zu is not %s", i, item);
      ASSERT_EQ(rows[2 * i + 1].v.i, (int64_t)i);
    }
    su_close(st);
  }
}

TEST(quick_list_clear_current_key_only) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    snprintf(op, sizeof op, "clr%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    add_event(s, "a1", 1);
    add_event(s, "a2", 2);
    su_key_text(st, "bob");
    add_event(s, "b1", 1);
    su_commit(st);
    su_key_text(st, "cid");
    add_event(s, "c1", 1);
    su_key_text(st, "ann");
    ASSERT_OK(sl_state_clear(s), s);
    ASSERT_TEXT(su_list_str(s, 2), "");
    su_key_text(st, "cid");
    ASSERT_OK(sl_state_clear(s), s);
    su_key_text(st, "bob");
    ASSERT_TEXT(su_list_str(s, 2), "'b1',1;");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    su_close(st);
    ASSERT_TEXT(su_sql(path, "SELECT user, item, n FROM events ORDER BY user, seq"),
                "bob|b1|1\n");
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_list_str(s, 2), "");
    add_event(s, "again", 3);
    ASSERT_TEXT(su_list_str(s, 2), "'again',3;");
    su_close(st);
  }
}

TEST(quick_list_uncommitted_rolled_back) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32], path[4096];
    char *before;
    int64_t i;
    sl_value rows[2];
    snprintf(op, sizeof op, "undo%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    add_event(s, "a1", 1);
    su_key_text(st, "bob");
    add_event(s, "b1", 1);
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    before = su_dump(path);

    add_event(s, "b2", 2);
    su_key_text(st, "ann");
    rows[0] = sl_text("replaced");
    rows[1] = sl_int(0);
    ASSERT_OK(sl_list_update(s, rows, 1), s);
    for (i = 0; i < 3000; i++) {
      char u[32];
      snprintf(u, sizeof u, "u%lld", (long long)i);
      su_key_text(st, u);
      add_event(s, "x", i);
    }
    su_key_text(st, "bob");
    ASSERT_TEXT(su_list_str(s, 2), "'b1',1;'b2',2;");
    su_close(st);

    ASSERT_TEXT(su_dump(path), before);
    st = su_open(op, 0, 1, &cfg);
    s = reg_events(st);
    su_key_text(st, "ann");
    ASSERT_TEXT(su_list_str(s, 2), "'a1',1;");
    su_key_text(st, "bob");
    ASSERT_TEXT(su_list_str(s, 2), "'b1',1;");
    su_key_text(st, "u5");
    ASSERT_TEXT(su_list_str(s, 2), "");
    su_close(st);
    free(before);
  }
}

TEST(quick_list_scan_order) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    sl_iter *it = NULL;
    int rc, prev_kg = -1, rows = 0;
    int64_t prev_key = -1, prev_n = -1;
    int64_t i;
    snprintf(op, sizeof op, "scan%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_ilist(st);
    /* 200 keys, 4 elements each, added round-robin with decreasing item
    ** text so that insertion order differs from value order. */
    for (i = 0; i < 800; i++) {
      char item[32];
      snprintf(item, sizeof item, "%04lld", (long long)(1000 - i));
      su_key_int(st, i % 200);
      add_event(s, item, i);
      if (i == 400) su_commit(st);
    }
    ASSERT_OK(sl_state_scan(s, &it), s);
    while ((rc = sl_iter_next(it)) == SL_ROW) {
      const sl_value *k = NULL, *v = NULL;
      int nk = 0, nv = 0, kg = -1;
      ASSERT_OK(sl_iter_key(it, &k, &nk, &kg), it);
      ASSERT_OK(sl_iter_value(it, &v, &nv), it);
      ASSERT_EQ(nk, 1);
      ASSERT_EQ(nv, 2);
      if (kg == prev_kg && k[0].v.i == prev_key) {
        /* Same list: insertion order, i.e. ascending n here. */
        ASSERT_MSG(v[1].v.i > prev_n, "key %lld: %lld after %lld", (long long)prev_key,
                   (long long)v[1].v.i, (long long)prev_n);
      } else {
        ASSERT_MSG(kg > prev_kg || (kg == prev_kg && k[0].v.i > prev_key),
                   "scan order: (%d,%lld) after (%d,%lld)", kg, (long long)k[0].v.i,
                   prev_kg, (long long)prev_key);
        ASSERT_EQ(v[1].v.i, k[0].v.i); /* the first element of key i is n = i */
      }
      prev_kg = kg;
      prev_key = k[0].v.i;
      prev_n = v[1].v.i;
      rows++;
    }
    ASSERT_RC(rc, SL_DONE, it);
    sl_iter_close(it);
    ASSERT_EQ(rows, 800);
    su_close(st);
  }
}
