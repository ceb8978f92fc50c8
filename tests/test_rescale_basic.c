/*
** test_rescale_basic.c — restoring with another parallelism: 10,000 keys
** with value, list and map state, an even-split and a union operator list
** and a broadcast map, rescaled 1 -> 3 -> 2 -> 1 through checkpoints. Every
** key and value is in exactly one instance, in the instance that owns its
** key group; the split list keeps its order and is divided evenly; every
** instance gets the union of the union list; broadcast state is everywhere;
** sl_meta of each new instance is right and the files open as stores.
*/
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "test_snapshot_util.h"

#define KEYS 10000

static int owner_of(int64_t k, int p) {
  sl_value key = sl_int(k);
  int kg = 0, owner = 0;
  ASSERT_OK(sl_key_group(&key, 1, 128, &kg), NULL);
  ASSERT_OK(sl_key_group_owner(128, p, kg, &owner), NULL);
  return owner;
}

static void open_n(const char *dir, sl_store **st, sn_states *s, int p) {
  for (int i = 0; i < p; i++) {
    int rc = sl_store_open(dir, "wc", i, p, NULL, &st[i]);
    ASSERT_MSG(rc == SL_OK, "open %s wc %d/%d: %s (%s)", dir, i, p, sl_errstr(rc),
               sl_errmsg(st[i]));
    sn_register(st[i], &s[i]);
  }
}

/* The rows of a query over the instances 0..p-1 under dir, concatenated. */
static char *rows_of(const char *dir, int p, const char *sql) {
  su_buf b = {0, 0, 0};
  for (int i = 0; i < p; i++) {
    char path[4096], *r;
    r = su_sql(su_db_path(path, sizeof path, dir, "wc", i), sql);
    su_addf(&b, "%s", r);
    free(r);
  }
  return su_take(&b);
}

static const char *const keyed_sql[] = {
    "SELECT kg, k, n, note FROM counts ORDER BY kg, k",
    "SELECT kg, k, seq, x FROM events ORDER BY kg, k, seq",
    "SELECT kg, k, name, score FROM attrs ORDER BY kg, k, name",
};

/* What the instances must hold together, from the single original file. */
typedef struct expected {
  char *keyed[3];
  char *offsets;   /* the split list, in order */
  char *seen;      /* the union list of the original instance */
  char *rules;
} expected;

static void check(const char *dir, int p, const expected *e, int64_t restored_id,
                  int union_copies) {
  char path[4096];
  int64_t total = 0;
  /* every keyed row exactly once: the concatenation in instance order is
  ** the original ordered by key group */
  for (int q = 0; q < 3; q++) {
    char *got = rows_of(dir, p, keyed_sql[q]);
    ASSERT_MSG(strcmp(got, e->keyed[q]) == 0, "%s differs after rescaling to %d", keyed_sql[q], p);
    free(got);
  }
  for (int i = 0; i < p; i++) {
    int first = 0, last = 0;
    char sql[256], *got;
    su_db_path(path, sizeof path, dir, "wc", i);
    ASSERT_OK(sl_key_group_range(128, p, i, &first, &last), NULL);
    /* sl_meta of the new instance */
    ASSERT_EQ(su_sql_int(path, "SELECT value FROM sl_meta WHERE name='subtask'"), i);
    ASSERT_EQ(su_sql_int(path, "SELECT value FROM sl_meta WHERE name='parallelism'"), p);
    ASSERT_EQ(su_sql_int(path, "SELECT value FROM sl_meta WHERE name='max_parallelism'"), 128);
    ASSERT_EQ(su_sql_int(path, "SELECT value FROM sl_meta WHERE name='kg_first'"), first);
    ASSERT_EQ(su_sql_int(path, "SELECT value FROM sl_meta WHERE name='kg_last'"), last);
    ASSERT_EQ(su_sql_int(path, "SELECT value FROM sl_meta WHERE name='last_checkpoint'"),
              restored_id);
    ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_states"), 6);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM counts WHERE kg NOT BETWEEN %d AND %d",
             first, last);
    ASSERT_EQ(su_sql_int(path, sql), 0);
    /* the split list: an even share */
    {
      int64_t n = su_sql_int(path, "SELECT count(*) FROM sl_op_offsets");
      int64_t all = 100;
      ASSERT_MSG(n == all / p || n == all / p + 1, "instance %d of %d has %lld of 100 offsets", i,
                 p, (long long)n);
      total += n;
    }
    /* the union list: every row of every old instance */
    got = su_sql(path, "SELECT tag FROM sl_op_seen ORDER BY seq");
    {
      su_buf w = {0, 0, 0};
      char *want;
      for (int c = 0; c < union_copies; c++) su_addf(&w, "%s", e->seen);
      want = su_take(&w);
      ASSERT_TEXT(got, want);
      free(want);
    }
    got = su_sql(path, "SELECT name, lim FROM sl_bc_rules ORDER BY name");
    ASSERT_TEXT(got, e->rules);
  }
  ASSERT_EQ(total, 100);
  {
    char *got = rows_of(dir, p, "SELECT part, off FROM sl_op_offsets ORDER BY seq");
    ASSERT_TEXT(got, e->offsets);
  }
}

/* Reads a few keys through the API in the instance that owns them. */
static void check_api(const char *dir, int p) {
  sl_store *st[4];
  sn_states s[4];
  open_n(dir, st, s, p);
  for (int64_t k = 0; k < KEYS; k += 997) {
    int o = owner_of(k, p);
    char want[64], *v;
    su_key_int(st[o], k);
    v = su_value_str(s[o].counts, 2);
    snprintf(want, sizeof want, "%lld,'note-%lld-0'", (long long)(k * 10), (long long)k);
    ASSERT_STR(v, want);
    free(v);
    v = su_list_str(s[o].events, 1);
    snprintf(want, sizeof want, "%lld;", (long long)(k * 100));
    ASSERT_STR(v, want);
    free(v);
  }
  for (int i = 0; i < p; i++) su_close(st[i]);
}

/* Checkpoints the p instances under dir as checkpoint id. */
static void checkpoint_dir(sl_chkdir *cd, const char *dir, int p, int64_t id) {
  sl_store *st[4];
  sn_states s[4];
  open_n(dir, st, s, p);
  sn_checkpoint(cd, st, p, id, NULL);
  for (int i = 0; i < p; i++) su_close(st[i]);
}

TEST(rescale_1_3_2_1) {
  sl_store *st[1];
  sn_states s[1];
  sl_chkdir *cd = sn_chkdir(10, 0, NULL);
  expected e;
  sl_rescale rs;
  int64_t restored = 0;
  char path[4096], d3[2048], d2[2048], d1[2048];
  open_n(su_dir(), st, s, 1);
  for (int64_t k = 0; k < KEYS; k++) sn_put_key(st[0], &s[0], k, 0);
  for (int i = 0; i < 100; i++) {
    sl_value off[2];
    off[0] = sl_int(i % 7);
    off[1] = sl_int(1000 + i);
    ASSERT_OK(sl_list_add(s[0].offsets, off), st[0]);
  }
  for (int i = 0; i < 3; i++) {
    char t[16];
    sl_value tag;
    snprintf(t, sizeof t, "tag%d", i);
    tag = sl_text(t);
    ASSERT_OK(sl_list_add(s[0].seen, &tag), st[0]);
  }
  for (int i = 0; i < 5; i++) {
    char nm[16];
    sl_value k, v;
    snprintf(nm, sizeof nm, "rule%d", i);
    k = sl_text(nm);
    v = sl_int(i * 11);
    ASSERT_OK(sl_map_put(s[0].rules, &k, &v), st[0]);
  }
  sn_checkpoint(cd, st, 1, 1, NULL);
  su_close(st[0]);
  su_db_path(path, sizeof path, su_dir(), "wc", 0);
  for (int q = 0; q < 3; q++) e.keyed[q] = su_sql(path, keyed_sql[q]);
  e.offsets = su_sql(path, "SELECT part, off FROM sl_op_offsets ORDER BY seq");
  e.seen = su_sql(path, "SELECT tag FROM sl_op_seen ORDER BY seq");
  e.rules = su_sql(path, "SELECT name, lim FROM sl_bc_rules ORDER BY name");
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM counts"), KEYS);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM attrs"), KEYS);

  /* 1 -> 3 */
  snprintf(d3, sizeof d3, "%s/p3", test_dir());
  rs.op = "wc";
  rs.parallelism = 3;
  SN_OK(sl_chkdir_restore(cd, 0, NULL, d3, &rs, 1, &restored), cd);
  ASSERT_EQ(restored, 1);
  check(d3, 3, &e, 1, 1);
  check_api(d3, 3);
  snprintf(path, sizeof path, "%s/wc/.restore", d3);
  ASSERT(!su_exists(path));
  checkpoint_dir(cd, d3, 3, 2);

  /* 3 -> 2 */
  snprintf(d2, sizeof d2, "%s/p2", test_dir());
  rs.parallelism = 2;
  SN_OK(sl_chkdir_restore(cd, 0, NULL, d2, &rs, 1, &restored), cd);
  ASSERT_EQ(restored, 2);
  check(d2, 2, &e, 2, 3);
  check_api(d2, 2);
  checkpoint_dir(cd, d2, 2, 3);

  /* 2 -> 1, into the state directory of the 3 instances: 1.db and 2.db go */
  snprintf(d1, sizeof d1, "%s", d3);
  rs.parallelism = 1;
  SN_OK(sl_chkdir_restore(cd, 0, NULL, d1, &rs, 1, &restored), cd);
  ASSERT_EQ(restored, 3);
  check(d1, 1, &e, 3, 6);
  check_api(d1, 1);
  su_db_path(path, sizeof path, d1, "wc", 1);
  ASSERT(!su_exists(path));
  su_db_path(path, sizeof path, d1, "wc", 2);
  ASSERT(!su_exists(path));
  for (int q = 0; q < 3; q++) free(e.keyed[q]);
  free(e.offsets);
  free(e.seen);
  free(e.rules);
  SN_OK(sl_chkdir_close(cd), NULL);
}

/* The checkpoint history follows the instance that owns the first key
** group; instances that never registered a state still get its table. */
TEST(rescale_partial_registration) {
  sl_store *st[2];
  sn_states s;
  sl_chkdir *cd = sn_chkdir(10, 0, NULL);
  sl_rescale rs;
  int64_t restored = 0;
  char path[4096], d[2048];
  sl_column v = su_col("v", SL_INTEGER), k = su_col("k", SL_INTEGER);
  sl_state_desc desc;
  sl_state *only;
  st[0] = su_open("wc", 0, 2, NULL);
  st[1] = su_open("wc", 1, 2, NULL);
  sn_register(st[0], &s);
  memset(&desc, 0, sizeof desc);
  desc.name = "only_one";
  desc.kind = SL_VALUE_STATE;
  desc.n_key = 1;
  desc.key = &k;
  desc.n_value = 1;
  desc.value = &v;
  only = su_reg(st[1], &desc);
  for (int64_t key = 0; key < 1000; key++) {
    if (owner_of(key, 2) == 1) {
      sl_value val = sl_int(key);
      su_key_int(st[1], key);
      ASSERT_OK(sl_value_update(only, &val), st[1]);
    } else {
      sn_put_key(st[0], &s, key, 0);
    }
  }
  sn_checkpoint(cd, st, 2, 1, NULL);
  sn_checkpoint(cd, st, 2, 2, NULL);
  for (int i = 0; i < 2; i++) su_close(st[i]);
  snprintf(d, sizeof d, "%s/p3", test_dir());
  rs.op = "wc";
  rs.parallelism = 3;
  SN_OK(sl_chkdir_restore(cd, 0, NULL, d, &rs, 1, &restored), cd);
  ASSERT_EQ(restored, 2);
  {
    char *all = rows_of(d, 3, "SELECT k, v FROM only_one ORDER BY kg, k");
    char *want;
    char p0[4096], p1[4096];
    su_db_path(p0, sizeof p0, su_dir(), "wc", 0);
    su_db_path(p1, sizeof p1, su_dir(), "wc", 1);
    want = su_sql(p1, "SELECT k, v FROM only_one ORDER BY kg, k");
    ASSERT(strlen(want) > 1000);
    ASSERT_TEXT(all, want);
    free(want);
    all = rows_of(d, 3, "SELECT kg, k, n FROM counts ORDER BY kg, k");
    want = su_sql(p0, "SELECT kg, k, n FROM counts ORDER BY kg, k");
    ASSERT(strlen(want) > 1000);
    ASSERT_TEXT(all, want);
    free(want);
  }
  for (int i = 0; i < 3; i++) {
    su_db_path(path, sizeof path, d, "wc", i);
    ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_states"), 7);
    ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_checkpoints WHERE id=1"), 1);
  }
  SN_OK(sl_chkdir_close(cd), NULL);
}
