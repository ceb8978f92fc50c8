/*
** test_store_opstate.c — non-keyed state: operator list state (even-split and
** union) and broadcast map state. Written without a current key, the same
** whatever key is current, separate per instance, kept across commit and
** reopen, cleared entirely, rolled back when not committed; many rows;
** malformed descriptors refused.
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

/* offsets: operator list of (part INTEGER, off INTEGER) */
static int oplist_desc(sl_store *st, const char *name, int redistribution, sl_state **out) {
  sl_column val[2];
  sl_state_desc d;
  val[0] = su_col("part", SL_INTEGER);
  val[1] = su_col("off", SL_INTEGER);
  memset(&d, 0, sizeof d);
  d.name = name;
  d.kind = SL_OPERATOR_LIST;
  d.n_value = 2;
  d.value = val;
  d.redistribution = redistribution;
  return sl_state_register(st, &d, out);
}

static sl_state *reg_offsets(sl_store *st) {
  sl_state *s = NULL;
  ASSERT_OK(oplist_desc(st, "offsets", SL_SPLIT_EVEN, &s), st);
  return s;
}

/* rules: broadcast map name TEXT -> (lim INTEGER, note TEXT) */
static sl_state *reg_rules(sl_store *st) {
  sl_column mk = su_col("name", SL_TEXT);
  sl_column val[2];
  sl_state_desc d;
  val[0] = su_col("lim", SL_INTEGER);
  val[1] = su_col("note", SL_TEXT);
  memset(&d, 0, sizeof d);
  d.name = "rules";
  d.kind = SL_BROADCAST_MAP;
  d.n_map_key = 1;
  d.map_key = &mk;
  d.n_value = 2;
  d.value = val;
  return su_reg(st, &d);
}

static void add_off(sl_state *s, int64_t part, int64_t off) {
  sl_value row[2];
  row[0] = sl_int(part);
  row[1] = sl_int(off);
  ASSERT_OK(sl_list_add(s, row), s);
}

static void put_rule(sl_state *s, const char *name, int64_t lim, const char *note) {
  sl_value k = sl_text(name), v[2];
  v[0] = sl_int(lim);
  v[1] = note ? sl_text(note) : sl_null();
  ASSERT_OK(sl_map_put(s, &k, v), s);
}

static char *get_rule(sl_state *s, const char *name) {
  sl_value k = sl_text(name);
  const sl_value *out = NULL;
  int found = -1, rc = sl_map_get(s, &k, &out);
  ASSERT_OK(sl_map_contains(s, &k, &found), s);
  if (rc == SL_NOTFOUND) {
    ASSERT_EQ(found, 0);
    return su_take(&(su_buf){0, 0, 0});
  }
  ASSERT_OK(rc, s);
  ASSERT_EQ(found, 1);
  return su_values_str(out, 2);
}

TEST(quick_oplist_roundtrip) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    sl_value rows[4];
    snprintf(op, sizeof op, "src%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_offsets(st);
    ASSERT_TEXT(su_list_str(s, 2), "");
    add_off(s, 3, 300); /* no key has been set: non-keyed state needs none */
    add_off(s, 1, 100);
    rows[0] = sl_int(2);
    rows[1] = sl_int(200);
    rows[2] = sl_int(0);
    rows[3] = sl_null();
    ASSERT_OK(sl_list_add_all(s, rows, 2), s);
    ASSERT_TEXT(su_list_str(s, 2), "3,300;1,100;2,200;0,NULL;");
    su_commit(st);
    su_close(st);

    st = su_open(op, 0, 1, &cfg);
    s = reg_offsets(st);
    ASSERT_TEXT(su_list_str(s, 2), "3,300;1,100;2,200;0,NULL;");
    rows[0] = sl_int(9);
    rows[1] = sl_int(900);
    ASSERT_OK(sl_list_update(s, rows, 1), s);
    add_off(s, 8, 800);
    ASSERT_TEXT(su_list_str(s, 2), "9,900;8,800;");
    su_commit(st);
    su_close(st);

    st = su_open(op, 0, 1, &cfg);
    s = reg_offsets(st);
    ASSERT_TEXT(su_list_str(s, 2), "9,900;8,800;");
    ASSERT_OK(sl_state_clear(s), s);
    ASSERT_TEXT(su_list_str(s, 2), "");
    su_commit(st);
    su_close(st);
    st = su_open(op, 0, 1, &cfg);
    s = reg_offsets(st);
    ASSERT_TEXT(su_list_str(s, 2), "");
    su_close(st);
  }
}

TEST(quick_oplist_ignores_current_key) {
  sl_store *st = su_open("srckey", 0, 1, NULL);
  sl_state *s = reg_offsets(st);
  su_key_int(st, 1);
  add_off(s, 1, 1);
  su_key_text(st, "other");
  add_off(s, 2, 2);
  ASSERT_TEXT(su_list_str(s, 2), "1,1;2,2;");
  su_key_int(st, 99);
  ASSERT_OK(sl_state_clear(s), s); /* clears entirely, whatever the key */
  su_key_int(st, 1);
  ASSERT_TEXT(su_list_str(s, 2), "");
  su_close(st);
}

TEST(quick_oplist_per_instance_and_union) {
  sl_store *a = su_open("par", 0, 2, NULL), *b = su_open("par", 1, 2, NULL);
  sl_state *sa = reg_offsets(a), *sb = reg_offsets(b), *ua = NULL;
  add_off(sa, 0, 10);
  add_off(sb, 1, 11);
  add_off(sb, 1, 12);
  ASSERT_OK(oplist_desc(a, "everything", SL_UNION, &ua), a);
  add_off(ua, 5, 5);
  su_commit(a);
  su_commit(b);
  su_close(a);
  su_close(b);
  a = su_open("par", 0, 2, NULL);
  b = su_open("par", 1, 2, NULL);
  sa = reg_offsets(a);
  sb = reg_offsets(b);
  ASSERT_OK(oplist_desc(a, "everything", SL_UNION, &ua), a);
  ASSERT_TEXT(su_list_str(sa, 2), "0,10;");
  ASSERT_TEXT(su_list_str(sb, 2), "1,11;1,12;");
  ASSERT_TEXT(su_list_str(ua, 2), "5,5;");
  su_close(a);
  su_close(b);
}

TEST(quick_oplist_registry_rows) {
  sl_store *st = su_open("reg", 0, 1, NULL);
  char path[4096];
  sl_state *u = NULL;
  reg_offsets(st);
  reg_rules(st);
  ASSERT_OK(oplist_desc(st, "unioned", SL_UNION, &u), st);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_TEXT(su_sql(path, "SELECT name FROM sl_states ORDER BY name"),
              "offsets\nrules\nunioned\n");
  /* Non-keyed state lives in sl_ tables; no table is named after it. */
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                             "name IN ('offsets','rules','unioned')"), 0);
}

TEST(quick_oplist_bad_descriptors) {
  sl_store *st = su_open("badop", 0, 1, NULL);
  sl_state *s = NULL;
  sl_column key = su_col("k", SL_INTEGER);
  sl_column val = su_col("v", SL_INTEGER);
  sl_state_desc d;
  ASSERT_RC(oplist_desc(st, "noredist", 0, &s), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "noredist");
  ASSERT_RC(oplist_desc(st, "badredist", 3, &s), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "badredist");
  memset(&d, 0, sizeof d);
  d.name = "keyedlist";
  d.kind = SL_OPERATOR_LIST;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 1;
  d.value = &val;
  d.redistribution = SL_SPLIT_EVEN;
  ASSERT_RC(sl_state_register(st, &d, &s), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "keyedlist");
  memset(&d, 0, sizeof d);
  d.name = "nomapkey";
  d.kind = SL_BROADCAST_MAP;
  d.n_value = 1;
  d.value = &val;
  ASSERT_RC(sl_state_register(st, &d, &s), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "nomapkey");
  ASSERT_RC(sl_state_find(st, "noredist", &s), SL_NOTFOUND, st);
  su_close(st);
}

TEST(oplist_many_rows) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    const sl_value *rows = NULL;
    size_t n = 0, i;
    snprintf(op, sizeof op, "srcmany%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_offsets(st);
    for (i = 0; i < 10000; i++) {
      add_off(s, (int64_t)(i % 7), (int64_t)(10000 - i));
      if (i % 3000 == 2999) su_commit(st);
    }
    su_commit(st);
    su_close(st);
    st = su_open(op, 0, 1, &cfg);
    s = reg_offsets(st);
    ASSERT_OK(sl_list_get(s, &rows, &n), s);
    ASSERT_EQ(n, 10000);
    for (i = 0; i < n; i++) {
      ASSERT_EQ(rows[2 * i].v.i, (int64_t)(i % 7));
      ASSERT_EQ(rows[2 * i + 1].v.i, (int64_t)(10000 - i));
    }
    su_close(st);
  }
}

TEST(quick_broadcast_roundtrip) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    sl_value gone = sl_text("gone");
    snprintf(op, sizeof op, "bc%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_rules(st);
    ASSERT_TEXT(su_map_str(s), "");
    put_rule(s, "zeta", 26, "last");
    put_rule(s, "alpha", 1, NULL);
    put_rule(s, "Mid", 13, "upper");
    put_rule(s, "alpha", 2, "again");
    put_rule(s, "gone", 0, "x");
    ASSERT_OK(sl_map_remove(s, &gone), s);
    ASSERT_TEXT(get_rule(s, "alpha"), "2,'again'");
    ASSERT_TEXT(get_rule(s, "gone"), "");
    su_key_int(st, 5); /* the current key does not matter */
    ASSERT_TEXT(su_map_str(s), "'Mid'=13,'upper';'alpha'=2,'again';'zeta'=26,'last';");
    su_commit(st);
    su_close(st);

    st = su_open(op, 0, 1, &cfg);
    s = reg_rules(st);
    ASSERT_TEXT(su_map_str(s), "'Mid'=13,'upper';'alpha'=2,'again';'zeta'=26,'last';");
    ASSERT_TEXT(get_rule(s, "zeta"), "26,'last'");
    ASSERT_OK(sl_state_clear(s), s);
    ASSERT_TEXT(su_map_str(s), "");
    put_rule(s, "only", 1, "one");
    su_commit(st);
    su_close(st);
    st = su_open(op, 0, 1, &cfg);
    s = reg_rules(st);
    ASSERT_TEXT(su_map_str(s), "'only'=1,'one';");
    su_close(st);
  }
}

TEST(broadcast_many_entries) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    sl_iter *it = NULL;
    int i, rc, rows = 0;
    snprintf(op, sizeof op, "bcmany%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    s = reg_rules(st);
    for (i = 0; i < 10000; i++) {
      char name[32];
      snprintf(name, sizeof name, "r%05d", (i * 7919) % 10000);
      put_rule(s, name, (i * 7919) % 10000, NULL);
    }
    su_commit(st);
    su_close(st);
    st = su_open(op, 0, 1, &cfg);
    s = reg_rules(st);
    ASSERT_OK(sl_map_iter(s, &it), s);
    while ((rc = sl_iter_next(it)) == SL_ROW) {
      const sl_value *mk = NULL, *v = NULL;
      int nmk = 0, nv = 0;
      char name[32];
      ASSERT_OK(sl_iter_map_key(it, &mk, &nmk), it);
      ASSERT_OK(sl_iter_value(it, &v, &nv), it);
      snprintf(name, sizeof name, "r%05d", rows);
      ASSERT_MSG(mk[0].n == 6 && memcmp(mk[0].v.p, name, 6) == 0, "entry %d is not %s", rows,
                 name);
      ASSERT_EQ(v[0].v.i, rows);
      ASSERT_EQ(v[1].type, SL_NULL);
      rows++;
    }
    ASSERT_RC(rc, SL_DONE, it);
    sl_iter_close(it);
    ASSERT_EQ(rows, 10000);
    su_close(st);
  }
}

TEST(quick_opstate_uncommitted_rolled_back) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *l, *m;
    char op[32], path[4096];
    char *before;
    int i;
    snprintf(op, sizeof op, "opundo%d", b);
    cfg_budget(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    l = reg_offsets(st);
    m = reg_rules(st);
    add_off(l, 1, 1);
    put_rule(m, "a", 1, "x");
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    before = su_dump(path);
    for (i = 0; i < 2000; i++) {
      char name[32];
      add_off(l, 2, i);
      snprintf(name, sizeof name, "n%d", i);
      put_rule(m, name, i, "pending");
    }
    put_rule(m, "a", 100, "changed");
    ASSERT_TEXT(get_rule(m, "a"), "100,'changed'");
    su_close(st);
    ASSERT_TEXT(su_dump(path), before);
    st = su_open(op, 0, 1, &cfg);
    l = reg_offsets(st);
    m = reg_rules(st);
    ASSERT_TEXT(su_list_str(l, 2), "1,1;");
    ASSERT_TEXT(su_map_str(m), "'a'=1,'x';");
    su_close(st);
    free(before);
  }
}
