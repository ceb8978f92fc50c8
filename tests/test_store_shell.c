/*
** test_store_shell.c — a committed state file read with the real sqlite3
** command-line shell: typed key and value columns under their declared names,
** the sl_states registry, application_id, user_version, WAL journal, and only
** committed rows visible while the store is open.
*/
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

static int kg_of(const char *word) {
  sl_value k = sl_text(word);
  int kg = -1;
  ASSERT_OK(sl_key_group(&k, 1, 128, &kg), NULL);
  return kg;
}

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

static void count(sl_store *st, sl_state *s, const char *w, int64_t n) {
  sl_value v = sl_int(n);
  su_key_text(st, w);
  ASSERT_OK(sl_value_update(s, &v), s);
}

/* Runs the sqlite3 shell on path with extra options and one SQL text. */
static void shell(char *out, size_t cap, const char *opts, const char *path, const char *sql) {
  int rc = test_sh(out, cap, "sqlite3 %s '%s' \"%s\" 2>&1", opts, path, sql);
  ASSERT_MSG(rc == 0, "sqlite3 %s %s \"%s\" exited %d: %s", opts, path, sql, rc, out);
}

TEST(quick_shell_reads_committed_state) {
  sl_store *st = su_open("wordcount", 0, 1, NULL);
  sl_state *s = reg_counts(st);
  char path[4096], out[4096], want[512];
  count(st, s, "pear", 5);
  count(st, s, "apple", 3);
  count(st, s, "kiwi", 1);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));

  /* Uncommitted changes stay invisible to the shell. */
  count(st, s, "apple", 100);
  count(st, s, "plum", 2);

  ASSERT_EQ(kg_of("apple"), 41);
  ASSERT_EQ(kg_of("pear"), 42);
  ASSERT_EQ(kg_of("kiwi"), 115);
  shell(out, sizeof out, "-header -separator '|'", path, "select * from counts order by word");
  snprintf(want, sizeof want, "kg|word|count\n%d|apple|3\n%d|kiwi|1\n%d|pear|5\n",
           kg_of("apple"), kg_of("kiwi"), kg_of("pear"));
  ASSERT_STR(out, want);
  su_close(st);

  shell(out, sizeof out, "-header -separator '|'", path, "select * from counts order by word");
  ASSERT_STR(out, want);
  shell(out, sizeof out, "-separator '|'", path,
        "select typeof(kg), typeof(word), typeof(count) from counts limit 1");
  ASSERT_STR(out, "integer|text|integer\n");
  shell(out, sizeof out, "-separator '|'", path,
        "select name, kind, key_columns, value_columns from sl_states");
  ASSERT_STR(out, "counts|value|word TEXT|count INTEGER\n");
  shell(out, sizeof out, "", path, "pragma application_id");
  ASSERT_STR(out, "1397511217\n");
  shell(out, sizeof out, "", path, "pragma user_version");
  ASSERT_STR(out, "1\n");
  shell(out, sizeof out, "", path, "pragma journal_mode");
  ASSERT_STR(out, "wal\n");
  shell(out, sizeof out, "", path, "pragma integrity_check");
  ASSERT_STR(out, "ok\n");
  shell(out, sizeof out, "-separator '|'", path, "select * from sl_meta");
  ASSERT_HAS(out, "wordcount");
}

TEST(quick_shell_list_map_ttl_layout) {
  sl_store *st = su_open("layouts", 0, 1, NULL);
  sl_column key = su_col("user", SL_TEXT);
  sl_column mk = su_col("field", SL_TEXT);
  sl_column lv[2];
  sl_column mv = su_col("val", SL_REAL);
  sl_column tv = su_col("seen", SL_INTEGER);
  sl_state_desc d;
  sl_state *l, *m, *t;
  sl_value row[2], k, x;
  char path[4096], out[4096], want[512];
  int kg;
  lv[0] = su_col("item", SL_TEXT);
  lv[1] = su_col("qty", SL_INTEGER);
  memset(&d, 0, sizeof d);
  d.name = "basket";
  d.kind = SL_LIST_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 2;
  d.value = lv;
  l = su_reg(st, &d);
  memset(&d, 0, sizeof d);
  d.name = "profile";
  d.kind = SL_MAP_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_map_key = 1;
  d.map_key = &mk;
  d.n_value = 1;
  d.value = &mv;
  m = su_reg(st, &d);
  memset(&d, 0, sizeof d);
  d.name = "lastseen";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = 1;
  d.value = &tv;
  d.ttl_ms = 3600 * 1000;
  t = su_reg(st, &d);

  kg = su_key_text(st, "ann");
  row[0] = sl_text("egg");
  row[1] = sl_int(12);
  ASSERT_OK(sl_list_add(l, row), l);
  row[0] = sl_text("milk");
  row[1] = sl_int(1);
  ASSERT_OK(sl_list_add(l, row), l);
  k = sl_text("height");
  x = sl_real(1.75);
  ASSERT_OK(sl_map_put(m, &k, &x), m);
  x = sl_int(42);
  ASSERT_OK(sl_value_update(t, &x), t);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);

  shell(out, sizeof out, "-header -separator '|'", path,
        "select kg, user, item, qty from basket order by seq");
  snprintf(want, sizeof want, "kg|user|item|qty\n%d|ann|egg|12\n%d|ann|milk|1\n", kg, kg);
  ASSERT_STR(out, want);
  shell(out, sizeof out, "-header -separator '|'", path, "select * from profile");
  snprintf(want, sizeof want, "kg|user|field|val\n%d|ann|height|1.75\n", kg);
  ASSERT_STR(out, want);
  shell(out, sizeof out, "-header -separator '|'", path,
        "select kg, user, seen, expires_at > 0 from lastseen");
  snprintf(want, sizeof want, "kg|user|seen|expires_at > 0\n%d|ann|42|1\n", kg);
  ASSERT_STR(out, want);
  shell(out, sizeof out, "", path, "select name from sl_states order by name");
  ASSERT_STR(out, "basket\nlastseen\nprofile\n");
  shell(out, sizeof out, "", path, "select value_columns from sl_states where name='basket'");
  ASSERT_HAS(out, "item TEXT");
  ASSERT_HAS(out, "qty INTEGER");
  shell(out, sizeof out, "", path, "select key_columns from sl_states where name='profile'");
  ASSERT_HAS(out, "user TEXT");
}
