/*
** test_store_ttl.c — state time-to-live with an injected clock: expired
** values, list elements and map entries are never handed out (get, contains,
** iteration, scan), a write refreshes the expiry, SL_TTL_REFRESH_ON_READ makes
** reads refresh it too, the expires_at column is in the table, and expired
** rows are removed by commits (incrementally, bounded by ttl_cleanup_rows) and
** by sl_store_sweep_expired(). Times stay clear of the exact expiry instant.
*/
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

static const size_t budgets[] = {0, 16 * 1024, 64u * 1024 * 1024};
#define N_BUDGETS 3
#define TTL 100

static int64_t now_ms;

static int64_t test_clock(void *ud) {
  ASSERT(ud == &now_ms);
  return *(int64_t *)ud;
}

static void cfg_clock(sl_config *cfg, size_t budget) {
  sl_config_init(cfg);
  cfg->memory_budget = budget;
  cfg->clock_ms = test_clock;
  cfg->clock_ud = &now_ms;
}

static sl_state *reg_kind(sl_store *st, const char *name, int kind, int flags) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column mk = su_col("k", SL_TEXT);
  sl_column val = su_col("v", SL_INTEGER);
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = name;
  d.kind = kind;
  d.n_key = 1;
  d.key = &key;
  if (kind == SL_MAP_STATE) {
    d.n_map_key = 1;
    d.map_key = &mk;
  }
  d.n_value = 1;
  d.value = &val;
  d.ttl_ms = TTL;
  d.ttl_flags = flags;
  return su_reg(st, &d);
}

static void set_v(sl_state *s, int64_t v) {
  sl_value x = sl_int(v);
  ASSERT_OK(sl_value_update(s, &x), s);
}

static void add_e(sl_state *s, int64_t v) {
  sl_value x = sl_int(v);
  ASSERT_OK(sl_list_add(s, &x), s);
}

static void put_m(sl_state *s, const char *k, int64_t v) {
  sl_value mk = sl_text(k), x = sl_int(v);
  ASSERT_OK(sl_map_put(s, &mk, &x), s);
}

static char *get_m(sl_state *s, const char *k) {
  sl_value mk = sl_text(k);
  const sl_value *out = NULL;
  int found = -1, rc = sl_map_get(s, &mk, &out);
  if (rc == SL_NOTFOUND) {
    ASSERT_OK(sl_map_contains(s, &mk, &found), s);
    ASSERT_EQ(found, 0);
    return su_take(&(su_buf){0, 0, 0});
  }
  ASSERT_OK(rc, s);
  return su_values_str(out, 1);
}

TEST(quick_ttl_value_expiry_and_refresh_on_write) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    snprintf(op, sizeof op, "ttlv%d", b);
    cfg_clock(&cfg, budgets[b]);
    now_ms = 1000;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "sess", SL_VALUE_STATE, 0);
    su_key_int(st, 1);
    set_v(s, 10);
    su_key_int(st, 2);
    set_v(s, 20);
    su_key_int(st, 3);
    set_v(s, 30);
    now_ms = 1050;
    su_key_int(st, 1);
    ASSERT_TEXT(su_value_str(s, 1), "10");
    now_ms = 1080;
    su_key_int(st, 2);
    set_v(s, 21); /* refreshed: expires at 1180 */
    now_ms = 1090;
    su_key_int(st, 3);
    ASSERT_TEXT(su_value_str(s, 1), "30"); /* a read does not refresh here */
    now_ms = 1150;
    su_key_int(st, 1);
    ASSERT_TEXT(su_value_str(s, 1), "");
    su_key_int(st, 3);
    ASSERT_TEXT(su_value_str(s, 1), "");
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 1), "21");
    now_ms = 1200;
    ASSERT_TEXT(su_value_str(s, 1), "");
    /* A new write after expiry starts afresh. */
    set_v(s, 22);
    ASSERT_TEXT(su_value_str(s, 1), "22");
    su_commit(st);
    su_close(st);

    /* Across a reopen the expiry holds: live at 1250, gone at 1350. */
    now_ms = 1250;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "sess", SL_VALUE_STATE, 0);
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 1), "22");
    su_key_int(st, 1);
    ASSERT_TEXT(su_value_str(s, 1), "");
    su_close(st);
    now_ms = 1350;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "sess", SL_VALUE_STATE, 0);
    su_key_int(st, 2);
    ASSERT_TEXT(su_value_str(s, 1), "");
    su_close(st);
  }
}

TEST(quick_ttl_refresh_on_read) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s, *m;
    char op[32], path[4096];
    snprintf(op, sizeof op, "ttlr%d", b);
    cfg_clock(&cfg, budgets[b]);
    now_ms = 1000;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "sessr", SL_VALUE_STATE, SL_TTL_REFRESH_ON_READ);
    m = reg_kind(st, "mapr", SL_MAP_STATE, SL_TTL_REFRESH_ON_READ);
    su_key_int(st, 1);
    set_v(s, 10);
    put_m(m, "a", 1);
    put_m(m, "b", 2);
    su_commit(st);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    ASSERT_TEXT(su_sql(path, "SELECT id, v, expires_at FROM sessr"), "1|10|1100\n");
    now_ms = 1090;
    ASSERT_TEXT(su_value_str(s, 1), "10"); /* now expires at 1190 */
    ASSERT_TEXT(get_m(m, "a"), "1");       /* entry a too; b not */
    now_ms = 1180;
    ASSERT_TEXT(su_value_str(s, 1), "10"); /* now 1280 */
    ASSERT_TEXT(get_m(m, "a"), "1");
    ASSERT_TEXT(get_m(m, "b"), "");
    su_commit(st);
    ASSERT_TEXT(su_sql(path, "SELECT id, v, expires_at FROM sessr"), "1|10|1280\n");
    ASSERT_EQ(su_sql_int(path, "SELECT expires_at FROM mapr WHERE k = 'a'"), 1280);
    now_ms = 1300;
    ASSERT_TEXT(su_value_str(s, 1), "");
    ASSERT_TEXT(get_m(m, "a"), "");
    su_close(st);
  }
}

TEST(quick_ttl_list_per_element) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    sl_value rows[2];
    snprintf(op, sizeof op, "ttll%d", b);
    cfg_clock(&cfg, budgets[b]);
    now_ms = 1000;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "hist", SL_LIST_STATE, 0);
    su_key_int(st, 1);
    add_e(s, 1);
    add_e(s, 2);
    now_ms = 1050;
    ASSERT_TEXT(su_list_str(s, 1), "1;2;");
    now_ms = 1080;
    add_e(s, 3);
    now_ms = 1090;
    ASSERT_TEXT(su_list_str(s, 1), "1;2;3;");
    now_ms = 1150;
    ASSERT_TEXT(su_list_str(s, 1), "3;");
    su_commit(st);
    now_ms = 1200;
    ASSERT_TEXT(su_list_str(s, 1), "");
    rows[0] = sl_int(4);
    rows[1] = sl_int(5);
    ASSERT_OK(sl_list_add_all(s, rows, 2), s);
    now_ms = 1250;
    add_e(s, 6);
    now_ms = 1290;
    ASSERT_TEXT(su_list_str(s, 1), "4;5;6;");
    su_commit(st);
    su_close(st);
    now_ms = 1320;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "hist", SL_LIST_STATE, 0);
    su_key_int(st, 1);
    ASSERT_TEXT(su_list_str(s, 1), "6;");
    /* update gives every row a fresh expiry */
    rows[0] = sl_int(7);
    rows[1] = sl_int(8);
    ASSERT_OK(sl_list_update(s, rows, 2), s);
    now_ms = 1410;
    ASSERT_TEXT(su_list_str(s, 1), "7;8;");
    now_ms = 1430;
    ASSERT_TEXT(su_list_str(s, 1), "");
    su_close(st);
  }
}

TEST(quick_ttl_map_per_entry) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    snprintf(op, sizeof op, "ttlm%d", b);
    cfg_clock(&cfg, budgets[b]);
    now_ms = 1000;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "prefs", SL_MAP_STATE, 0);
    su_key_int(st, 1);
    put_m(s, "a", 1);
    put_m(s, "c", 3);
    now_ms = 1080;
    put_m(s, "b", 2);
    put_m(s, "c", 33);
    now_ms = 1090;
    ASSERT_TEXT(su_map_str(s), "'a'=1;'b'=2;'c'=33;");
    su_commit(st);
    now_ms = 1150;
    ASSERT_TEXT(get_m(s, "a"), "");
    ASSERT_TEXT(get_m(s, "b"), "2");
    ASSERT_TEXT(su_map_str(s), "'b'=2;'c'=33;");
    put_m(s, "a", 11);
    ASSERT_TEXT(su_map_str(s), "'a'=11;'b'=2;'c'=33;");
    su_commit(st);
    su_close(st);
    now_ms = 1200;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "prefs", SL_MAP_STATE, 0);
    su_key_int(st, 1);
    ASSERT_TEXT(su_map_str(s), "'a'=11;");
    now_ms = 1260;
    ASSERT_TEXT(su_map_str(s), "");
    ASSERT_TEXT(get_m(s, "a"), "");
    su_close(st);
  }
}

TEST(quick_ttl_scan_skips_expired) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *s;
    char op[32];
    char *scan;
    int i;
    su_buf want = {0, 0, 0};
    snprintf(op, sizeof op, "ttls%d", b);
    cfg_clock(&cfg, budgets[b]);
    now_ms = 1000;
    st = su_open(op, 0, 1, &cfg);
    s = reg_kind(st, "sess", SL_VALUE_STATE, 0);
    for (i = 0; i < 20; i++) {
      if (i == 10) {
        su_commit(st);
        now_ms = 1080;
      }
      su_key_int(st, i);
      set_v(s, i);
    }
    now_ms = 1150;
    scan = su_scan_str(s, 0);
    /* exactly keys 10..19 remain */
    ASSERT_EQ(strlen(scan) > 0, 1);
    {
      int lines = 0;
      const char *p;
      for (p = scan; *p; p++) lines += *p == '\n';
      ASSERT_EQ(lines, 10);
    }
    for (i = 0; i < 10; i++) {
      char needle[32];
      snprintf(needle, sizeof needle, "|%d|%d\n", i, i);
      ASSERT_MSG(!su_contains(scan, needle), "expired key %d scanned:\n%s", i, scan);
      snprintf(needle, sizeof needle, "|%d|%d\n", i + 10, i + 10);
      ASSERT_HAS(scan, needle);
    }
    free(scan);
    free(want.p);
    su_close(st);
  }
}

TEST(quick_ttl_expires_at_column) {
  sl_config cfg;
  sl_store *st;
  sl_state *v, *l, *m;
  char path[4096];
  cfg_clock(&cfg, 0);
  now_ms = 5000;
  st = su_open("ttlcol", 0, 1, &cfg);
  v = reg_kind(st, "sess", SL_VALUE_STATE, 0);
  l = reg_kind(st, "hist", SL_LIST_STATE, 0);
  m = reg_kind(st, "prefs", SL_MAP_STATE, 0);
  su_key_int(st, 7);
  set_v(v, 1);
  add_e(l, 1);
  put_m(m, "x", 1);
  now_ms = 5030;
  add_e(l, 2);
  put_m(m, "y", 2);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_TEXT(su_columns(path, "sess"), "kg,id,v,expires_at");
  ASSERT_TEXT(su_columns(path, "hist"), "kg,id,seq,v,expires_at");
  ASSERT_TEXT(su_columns(path, "prefs"), "kg,id,k,v,expires_at");
  ASSERT_TEXT(su_sql(path, "SELECT id, v, expires_at FROM sess"), "7|1|5100\n");
  ASSERT_TEXT(su_sql(path, "SELECT v, expires_at FROM hist ORDER BY seq"), "1|5100\n2|5130\n");
  ASSERT_TEXT(su_sql(path, "SELECT k, v, expires_at FROM prefs ORDER BY k"),
              "x|1|5100\ny|2|5130\n");
}

/* Writes n_old rows of each kind at time 1000 (expiring at 1100) and
** commits, then n_live rows at 1050 (expiring at 1150) and commits. Between
** 1100 and 1150 the old rows are expired and the live ones are not. */
static void ttl_fill(sl_store *st, sl_state *v, sl_state *l, sl_state *m, int n_old,
                     int n_live) {
  int i;
  now_ms = 1000;
  for (i = 0; i < n_old; i++) {
    su_key_int(st, i);
    set_v(v, i);
    add_e(l, i);
    add_e(l, i + 1000);
    put_m(m, "old", i);
  }
  su_commit(st);
  now_ms = 1050;
  for (i = 0; i < n_live; i++) {
    su_key_int(st, 100 + i);
    set_v(v, i);
    add_e(l, i);
    put_m(m, "new", i);
  }
  /* A key with old and new list elements and map entries. */
  su_key_int(st, 0);
  add_e(l, 77);
  put_m(m, "new", 77);
  su_commit(st);
}

TEST(quick_ttl_commit_removes_expired) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *v, *l, *m;
    char op[32], path[4096];
    snprintf(op, sizeof op, "ttlc%d", b);
    cfg_clock(&cfg, budgets[b]);
    st = su_open(op, 0, 1, &cfg);
    v = reg_kind(st, "sess", SL_VALUE_STATE, 0);
    l = reg_kind(st, "hist", SL_LIST_STATE, 0);
    m = reg_kind(st, "prefs", SL_MAP_STATE, 0);
    ttl_fill(st, v, l, m, 10, 5);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    ASSERT_EQ(su_count(path, "sess"), 15);
    ASSERT_EQ(su_count(path, "hist"), 26);
    ASSERT_EQ(su_count(path, "prefs"), 16);
    now_ms = 1120;
    su_commit(st); /* nothing dirty, but expired rows go */
    ASSERT_EQ(su_count(path, "sess"), 5);
    ASSERT_EQ(su_count(path, "hist"), 6);
    ASSERT_EQ(su_count(path, "prefs"), 6);
    ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM hist WHERE expires_at <= 1120"), 0);
    su_key_int(st, 0);
    ASSERT_TEXT(su_list_str(l, 1), "77;");
    ASSERT_TEXT(su_map_str(m), "'new'=77;");
    su_close(st);
  }
}

TEST(quick_ttl_cleanup_is_bounded) {
  sl_config cfg;
  sl_store *st;
  sl_state *v, *l, *m;
  char path[4096];
  int64_t left, prev;
  int commits = 0;
  cfg_clock(&cfg, 64u * 1024 * 1024);
  cfg.ttl_cleanup_rows = 3;
  st = su_open("ttlb", 0, 1, &cfg);
  v = reg_kind(st, "sess", SL_VALUE_STATE, 0);
  l = reg_kind(st, "hist", SL_LIST_STATE, 0);
  m = reg_kind(st, "prefs", SL_MAP_STATE, 0);
  ttl_fill(st, v, l, m, 10, 5);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  now_ms = 1120;
  prev = su_count(path, "sess");
  ASSERT_EQ(prev, 15);
  do {
    su_commit(st);
    commits++;
    left = su_count(path, "sess");
    ASSERT_MSG(prev - left >= 1 && prev - left <= 3,
               "commit %d removed %lld expired rows, limit 3", commits,
               (long long)(prev - left));
    prev = left;
  } while (left > 5 && commits < 20);
  ASSERT_EQ(left, 5);
  ASSERT(commits >= 4);
  /* The other states were cleaned up the same way meanwhile. */
  ASSERT_EQ(su_count(path, "prefs"), 6);
  su_close(st);
}

TEST(quick_ttl_sweep_expired) {
  int b;
  for (b = 0; b < N_BUDGETS; b++) {
    sl_config cfg;
    sl_store *st;
    sl_state *v, *l, *m;
    char op[32], path[4096];
    int64_t removed = -1;
    snprintf(op, sizeof op, "ttlsw%d", b);
    cfg_clock(&cfg, budgets[b]);
    cfg.ttl_cleanup_rows = 0;
    st = su_open(op, 0, 1, &cfg);
    v = reg_kind(st, "sess", SL_VALUE_STATE, 0);
    l = reg_kind(st, "hist", SL_LIST_STATE, 0);
    m = reg_kind(st, "prefs", SL_MAP_STATE, 0);
    ttl_fill(st, v, l, m, 10, 5);
    snprintf(path, sizeof path, "%s", sl_store_path(st));
    now_ms = 1120;
    su_commit(st); /* cleanup disabled: nothing removed */
    ASSERT_EQ(su_count(path, "sess"), 15);
    ASSERT_EQ(su_count(path, "hist"), 26);
    ASSERT_EQ(su_count(path, "prefs"), 16);
    ASSERT_OK(sl_store_sweep_expired(st, &removed), st);
    ASSERT_EQ(removed, 10 + 20 + 10);
    /* Durable only with the next commit. */
    ASSERT_EQ(su_count(path, "sess"), 15);
    su_commit(st);
    ASSERT_EQ(su_count(path, "sess"), 5);
    ASSERT_EQ(su_count(path, "hist"), 6);
    ASSERT_EQ(su_count(path, "prefs"), 6);
    /* Nothing left to sweep; NULL count pointer allowed. */
    ASSERT_OK(sl_store_sweep_expired(st, &removed), st);
    ASSERT_EQ(removed, 0);
    ASSERT_OK(sl_store_sweep_expired(st, NULL), st);
    su_key_int(st, 100);
    ASSERT_TEXT(su_value_str(v, 1), "0");
    su_close(st);
  }
}

TEST(quick_ttl_sweep_then_close_rolls_back) {
  sl_config cfg;
  sl_store *st;
  sl_state *v, *l, *m;
  char path[4096];
  char *before;
  int64_t removed = -1;
  cfg_clock(&cfg, 0);
  cfg.ttl_cleanup_rows = 0;
  st = su_open("ttlsr", 0, 1, &cfg);
  v = reg_kind(st, "sess", SL_VALUE_STATE, 0);
  l = reg_kind(st, "hist", SL_LIST_STATE, 0);
  m = reg_kind(st, "prefs", SL_MAP_STATE, 0);
  ttl_fill(st, v, l, m, 4, 2);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  before = su_dump(path);
  now_ms = 3000;
  ASSERT_OK(sl_store_sweep_expired(st, &removed), st);
  ASSERT_EQ(removed, 6 + 11 + 7);
  su_close(st);
  ASSERT_TEXT(su_dump(path), before);
  free(before);
}
