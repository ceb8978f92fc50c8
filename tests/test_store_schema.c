/*
** test_store_schema.c — schema evolution of registered states: a descriptor
** that adds value columns evolves the table (existing rows get the default);
** a descriptor that drops or retypes a value column, changes the kind, the key
** columns or the map-key columns is refused with SL_MISMATCH and a message
** naming the state and the column, and nothing in the file changes.
*/
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

/* prof: id INTEGER -> name TEXT [, score INTEGER default 7 [, note TEXT]] */
static int reg_prof(sl_store *st, int version, int kind, int key_type, const char *key_name,
                    int name_type, sl_state **out) {
  sl_column key[2];
  sl_column mk = su_col("mk", SL_TEXT);
  sl_column val[3];
  sl_state_desc d;
  key[0] = su_col(key_name, key_type);
  key[1] = su_col("extra", SL_INTEGER);
  val[0] = su_col("name", name_type);
  val[1] = su_col_dflt("score", SL_INTEGER, sl_int(7));
  val[2] = su_col("note", SL_TEXT);
  memset(&d, 0, sizeof d);
  d.name = "prof";
  d.kind = kind;
  d.n_key = 1;
  d.key = key;
  d.n_value = version;
  d.value = val;
  if (kind == SL_MAP_STATE) {
    d.n_map_key = 1;
    d.map_key = &mk;
  }
  return sl_state_register(st, &d, out);
}

static sl_state *reg_v(sl_store *st, int version) {
  sl_state *s = NULL;
  ASSERT_OK(reg_prof(st, version, SL_VALUE_STATE, SL_INTEGER, "id", SL_TEXT, &s), st);
  return s;
}

static void put_prof(sl_store *st, sl_state *s, int64_t id, const sl_value *vals) {
  su_key_int(st, id);
  ASSERT_OK(sl_value_update(s, vals), s);
}

/* Creates the v1 state with three rows and commits. Returns the path. */
static void make_v1(const char *op, char *path, size_t cap) {
  sl_store *st = su_open(op, 0, 1, NULL);
  sl_state *s = reg_v(st, 1);
  sl_value v;
  v = sl_text("ann");
  put_prof(st, s, 1, &v);
  v = sl_text("bob");
  put_prof(st, s, 2, &v);
  v = sl_null();
  put_prof(st, s, 3, &v);
  su_commit(st);
  snprintf(path, cap, "%s", sl_store_path(st));
  su_close(st);
}

TEST(quick_schema_add_column_with_default) {
  char path[4096];
  sl_store *st;
  sl_state *s;
  sl_value v[3];
  make_v1("evo", path, sizeof path);
  ASSERT_TEXT(su_columns(path, "prof"), "kg,id,name");

  st = su_open("evo", 0, 1, NULL);
  s = reg_v(st, 2);
  su_key_int(st, 1);
  ASSERT_TEXT(su_value_str(s, 2), "'ann',7");
  su_key_int(st, 3);
  ASSERT_TEXT(su_value_str(s, 2), "NULL,7");
  v[0] = sl_text("cid");
  v[1] = sl_int(9);
  put_prof(st, s, 4, v);
  su_commit(st);
  su_close(st);
  ASSERT_TEXT(su_columns(path, "prof"), "kg,id,name,score");
  ASSERT_TEXT(su_sql(path, "SELECT id, name, score FROM prof ORDER BY id"),
              "1|ann|7\n2|bob|7\n3|NULL|7\n4|cid|9\n");
  {
    char *cols = su_sql(path, "SELECT value_columns FROM sl_states WHERE name = 'prof'");
    ASSERT_HAS(cols, "score");
    free(cols);
  }

  /* A second evolution with a NULL default. */
  st = su_open("evo", 0, 1, NULL);
  s = reg_v(st, 3);
  su_key_int(st, 2);
  ASSERT_TEXT(su_value_str(s, 3), "'bob',7,NULL");
  v[0] = sl_text("dan");
  v[1] = sl_int(1);
  v[2] = sl_text("hi");
  put_prof(st, s, 5, v);
  su_commit(st);
  su_close(st);
  ASSERT_TEXT(su_columns(path, "prof"), "kg,id,name,score,note");
  ASSERT_TEXT(su_sql(path, "SELECT id, name, score, note FROM prof ORDER BY id"),
              "1|ann|7|NULL\n2|bob|7|NULL\n3|NULL|7|NULL\n4|cid|9|NULL\n5|dan|1|hi\n");

  /* The evolved descriptor registers again as it is. */
  st = su_open("evo", 0, 1, NULL);
  s = reg_v(st, 3);
  su_key_int(st, 4);
  ASSERT_TEXT(su_value_str(s, 3), "'cid',9,NULL");
  su_close(st);
}

TEST(quick_schema_refusals_change_nothing) {
  char path[4096];
  sl_store *st;
  sl_state *s = NULL;
  char *before;
  sl_value v[2];
  make_v1("refuse", path, sizeof path);
  st = su_open("refuse", 0, 1, NULL);
  s = reg_v(st, 2);
  su_commit(st);
  su_close(st);
  before = su_dump(path);

  st = su_open("refuse", 0, 1, NULL);
  /* The old descriptor lacks column score. */
  ASSERT_RC(reg_prof(st, 1, SL_VALUE_STATE, SL_INTEGER, "id", SL_TEXT, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "prof");
  ASSERT_ERRMSG_HAS(st, "score");
  /* name declared REAL instead of TEXT. */
  ASSERT_RC(reg_prof(st, 2, SL_VALUE_STATE, SL_INTEGER, "id", SL_REAL, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "prof");
  ASSERT_ERRMSG_HAS(st, "name");
  /* Another kind under the same name. */
  ASSERT_RC(reg_prof(st, 2, SL_LIST_STATE, SL_INTEGER, "id", SL_TEXT, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "prof");
  ASSERT_RC(reg_prof(st, 2, SL_MAP_STATE, SL_INTEGER, "id", SL_TEXT, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "prof");
  /* Other key columns: retyped, renamed. */
  ASSERT_RC(reg_prof(st, 2, SL_VALUE_STATE, SL_TEXT, "id", SL_TEXT, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "prof");
  ASSERT_RC(reg_prof(st, 2, SL_VALUE_STATE, SL_INTEGER, "uid", SL_TEXT, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "prof");
  ASSERT_RC(sl_state_find(st, "prof", &s), SL_NOTFOUND, st);
  /* After all that, the right descriptor works in the same store. */
  s = reg_v(st, 2);
  su_key_int(st, 1);
  ASSERT_TEXT(su_value_str(s, 2), "'ann',7");
  v[0] = sl_text("zed");
  v[1] = sl_int(0);
  su_key_int(st, 9);
  ASSERT_OK(sl_value_update(s, v), s);
  su_close(st); /* not committed */
  ASSERT_TEXT(su_dump(path), before);
  free(before);
}

TEST(quick_schema_two_key_columns_refused) {
  char path[4096];
  sl_store *st;
  sl_state *s = NULL;
  sl_column key[2];
  sl_column val = su_col("name", SL_TEXT);
  sl_state_desc d;
  char *before;
  make_v1("keys2", path, sizeof path);
  before = su_dump(path);
  key[0] = su_col("id", SL_INTEGER);
  key[1] = su_col("extra", SL_INTEGER);
  memset(&d, 0, sizeof d);
  d.name = "prof";
  d.kind = SL_VALUE_STATE;
  d.n_key = 2;
  d.key = key;
  d.n_value = 1;
  d.value = &val;
  st = su_open("keys2", 0, 1, NULL);
  ASSERT_RC(sl_state_register(st, &d, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "prof");
  su_commit(st);
  su_close(st);
  ASSERT_TEXT(su_dump(path), before);
  free(before);
}

/* tags: id INTEGER -> map (tag TEXT) -> cnt INTEGER [, weight REAL default 0.5] */
static int reg_tags(sl_store *st, int n_value, int mk_type, sl_state **out) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column mk = su_col("tag", mk_type);
  sl_column val[2];
  sl_state_desc d;
  val[0] = su_col("cnt", SL_INTEGER);
  val[1] = su_col_dflt("weight", SL_REAL, sl_real(0.5));
  memset(&d, 0, sizeof d);
  d.name = "tags";
  d.kind = SL_MAP_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_map_key = 1;
  d.map_key = &mk;
  d.n_value = n_value;
  d.value = val;
  return sl_state_register(st, &d, out);
}

TEST(quick_schema_map_evolution_and_map_key_change) {
  sl_store *st = su_open("maps", 0, 1, NULL);
  sl_state *s = NULL;
  sl_value mk = sl_text("red"), v[2];
  char path[4096];
  char *before;
  ASSERT_OK(reg_tags(st, 1, SL_TEXT, &s), st);
  su_key_int(st, 1);
  v[0] = sl_int(3);
  ASSERT_OK(sl_map_put(s, &mk, v), s);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);

  st = su_open("maps", 0, 1, NULL);
  ASSERT_OK(reg_tags(st, 2, SL_TEXT, &s), st);
  su_key_int(st, 1);
  ASSERT_TEXT(su_map_str(s), "'red'=3,r0.5;");
  mk = sl_text("blue");
  v[0] = sl_int(4);
  v[1] = sl_real(2.0);
  ASSERT_OK(sl_map_put(s, &mk, v), s);
  su_commit(st);
  su_close(st);
  ASSERT_TEXT(su_columns(path, "tags"), "kg,id,tag,cnt,weight");
  ASSERT_TEXT(su_sql(path, "SELECT tag, cnt, weight FROM tags ORDER BY tag"),
              "blue|4|2\nred|3|0.5\n");
  before = su_dump(path);

  st = su_open("maps", 0, 1, NULL);
  ASSERT_RC(reg_tags(st, 2, SL_BLOB, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "tags");
  ASSERT_RC(reg_tags(st, 1, SL_TEXT, &s), SL_MISMATCH, st);
  ASSERT_ERRMSG_HAS(st, "tags");
  ASSERT_ERRMSG_HAS(st, "weight");
  su_commit(st);
  su_close(st);
  ASSERT_TEXT(su_dump(path), before);
  free(before);
}

/* hist: list id INTEGER -> (e INTEGER [, src TEXT default 'old']) with TTL */
static sl_state *reg_hist(sl_store *st, int n_value, int64_t ttl) {
  sl_column key = su_col("id", SL_INTEGER);
  sl_column val[2];
  sl_state_desc d;
  val[0] = su_col("e", SL_INTEGER);
  val[1] = su_col_dflt("src", SL_TEXT, sl_text("old"));
  memset(&d, 0, sizeof d);
  d.name = "hist";
  d.kind = SL_LIST_STATE;
  d.n_key = 1;
  d.key = &key;
  d.n_value = n_value;
  d.value = val;
  d.ttl_ms = ttl;
  return su_reg(st, &d);
}

static int64_t fixed_clock(void *ud) {
  (void)ud;
  return 1000000;
}

TEST(quick_schema_list_evolution_with_ttl) {
  sl_config cfg;
  sl_store *st;
  sl_state *s;
  sl_value v[2];
  char path[4096];
  sl_config_init(&cfg);
  cfg.clock_ms = fixed_clock;
  st = su_open("lists", 0, 1, &cfg);
  s = reg_hist(st, 1, 60000);
  su_key_int(st, 1);
  v[0] = sl_int(1);
  ASSERT_OK(sl_list_add(s, v), s);
  v[0] = sl_int(2);
  ASSERT_OK(sl_list_add(s, v), s);
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);

  st = su_open("lists", 0, 1, &cfg);
  s = reg_hist(st, 2, 60000);
  su_key_int(st, 1);
  ASSERT_TEXT(su_list_str(s, 2), "1,'old';2,'old';");
  v[0] = sl_int(3);
  v[1] = sl_text("new");
  ASSERT_OK(sl_list_add(s, v), s);
  ASSERT_TEXT(su_list_str(s, 2), "1,'old';2,'old';3,'new';");
  su_commit(st);
  su_close(st);
  ASSERT_TEXT(su_sql(path, "SELECT e, src, expires_at FROM hist ORDER BY seq"),
              "1|old|1060000\n2|old|1060000\n3|new|1060000\n");
  st = su_open("lists", 0, 1, &cfg);
  s = reg_hist(st, 2, 60000);
  su_key_int(st, 1);
  ASSERT_TEXT(su_list_str(s, 2), "1,'old';2,'old';3,'new';");
  su_close(st);
}

TEST(quick_schema_registry_descriptor) {
  char path[4096];
  make_v1("registry", path, sizeof path);
  ASSERT_TEXT(su_sql(path, "SELECT name, kind, key_columns, value_columns FROM sl_states"),
              "prof|value|id INTEGER|name TEXT\n");
}
