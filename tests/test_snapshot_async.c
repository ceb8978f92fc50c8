/*
** test_snapshot_async.c — the two parts of a checkpoint of one store: the
** synchronous part only freezes the dirty cache entries (the state file is
** untouched), the asynchronous part commits them and backs that commit up
** while the owner goes on. Each snapshot is compared with a reference store
** that received the same changes up to the snapshot and committed them.
*/
#include <pthread.h>
#include <stdatomic.h>

#include "test_snapshot_util.h"

typedef struct as_writer {
  sl_snapshot *sn;
  int rc;
  atomic_int done;
} as_writer;

static void *as_write(void *arg) {
  as_writer *w = (as_writer *)arg;
  w->rc = sl_snapshot_write(w->sn);
  atomic_store(&w->done, 1);
  return NULL;
}

/* One round of changes, the same for every store given the same rng state:
** values, list rows, map entries, list and map clears, timers. */
static void as_changes(sl_store *st, const sn_states *s, su_rng *r, int n, int round) {
  for (int i = 0; i < n; i++) {
    int64_t k = su_rand_below(r, 3000);
    uint32_t what = su_rand_below(r, 20);
    sn_put_key(st, s, k, round);
    if (what == 0) {
      ASSERT_OK(sl_state_clear(s->events), st);
    } else if (what == 1) {
      ASSERT_OK(sl_state_clear(s->attrs), st);
    } else if (what == 2) {
      ASSERT_OK(sl_timer_register(st, SL_EVENT_TIME, k * 7 + round), st);
    } else if (what == 3) {
      sl_value mk = sl_text("a1");
      ASSERT_OK(sl_map_remove(s->attrs, &mk), st);
    }
  }
}

/* The tables a snapshot and the reference must agree on. */
static char *as_dump(const char *path) {
  sqlite3 *db = su_db_open(path);
  char *r = su_dump_db(db, "substr(name,1,3) <> 'sl_' OR name IN ('sl_states', 'sl_timers')");
  sqlite3_close(db);
  return r;
}

static char *as_dump_snapshot(const char *target, int64_t id) {
  char zst[4096], db[4096];
  snprintf(zst, sizeof zst, "%s/chk-%lld/wa/0.db.zst", target, (long long)id);
  snprintf(db, sizeof db, "%s/x-%lld.db", test_dir(), (long long)id);
  SN_OK(sl_snapshot_extract(zst, db, 0), NULL);
  return as_dump(db);
}

/* Rows of `table` in the snapshot of operator wa written into target. */
static int64_t as_count(const char *target, const char *table) {
  char zst[4096], db[4096];
  static int n;
  snprintf(zst, sizeof zst, "%s/wa/0.db.zst", target);
  snprintf(db, sizeof db, "%s/count-%d.db", test_dir(), ++n);
  SN_OK(sl_snapshot_extract(zst, db, 0), NULL);
  return su_count(db, table);
}

/* Rounds of: changes to both stores; a snapshot of A; A goes on with the
** next changes (spilling and waiting for the snapshot's commit, with the
** small budget) while another thread writes the snapshot; B commits at the
** snapshot and is dumped; then B catches up. Every snapshot must equal B's
** dump. */
static void as_rounds(size_t budget, int rounds) {
  sl_config cfg;
  sl_store *a, *b;
  sn_states sa, sb;
  su_rng ra = {0x5eed1234abcdULL}, rb = ra;
  char target[2048], refpath[4096];
  sl_config_init(&cfg);
  cfg.memory_budget = budget;
  a = su_open("wa", 0, 1, &cfg);
  b = su_open("wb", 0, 1, &cfg);
  sn_register(a, &sa);
  sn_register(b, &sb);
  su_db_path(refpath, sizeof refpath, su_dir(), "wb", 0);
  snprintf(target, sizeof target, "%s/target", test_dir());
  as_changes(a, &sa, &ra, 2000, 0);
  as_changes(b, &sb, &rb, 2000, 0);
  for (int i = 1; i <= rounds; i++) {
    char dir[2200];
    sl_snapshot *sn = NULL;
    as_writer w;
    pthread_t t;
    char *want, *got;
    snprintf(dir, sizeof dir, "%s/chk-%d", target, i);
    ASSERT_OK(sl_snapshot_begin(a, dir, i, SL_CHECKPOINT, NULL, &sn), a);
    su_commit(b);
    want = as_dump(refpath);
    memset(&w, 0, sizeof w);
    w.sn = sn;
    atomic_init(&w.done, 0);
    ASSERT(pthread_create(&t, NULL, as_write, &w) == 0);
    as_changes(a, &sa, &ra, 1500, i);
    ASSERT(pthread_join(t, NULL) == 0);
    SN_OK(w.rc, sn);
    ASSERT_OK(sl_snapshot_end(sn), a);
    got = as_dump_snapshot(target, i);
    ASSERT_TEXT(got, want);
    free(want);
    as_changes(b, &sb, &rb, 1500, i);
  }
  /* and after the last changes, both files hold the same */
  su_commit(a);
  su_commit(b);
  {
    char apath[4096];
    char *x, *y;
    su_db_path(apath, sizeof apath, su_dir(), "wa", 0);
    x = as_dump(apath);
    y = as_dump(refpath);
    ASSERT_TEXT(x, y);
    free(y);
  }
  su_close(a);
  su_close(b);
}

TEST(quick_snapshot_async_rounds_large_budget) { as_rounds(64u << 20, 4); }

TEST(snapshot_async_rounds_small_budget) { as_rounds(48u << 10, 6); }

/* The synchronous part touches no SQLite: after sl_snapshot_begin() the
** file still holds the previous commit; the write commits the frozen
** changes. */
TEST(quick_snapshot_begin_leaves_the_file_alone) {
  sl_store *st = su_open("wa", 0, 1, NULL);
  sn_states s;
  sl_snapshot *sn = NULL;
  char target[2048], path[4096];
  sn_register(st, &s);
  su_db_path(path, sizeof path, su_dir(), "wa", 0);
  sn_put_key(st, &s, 1, 1);
  su_commit(st);
  sn_put_key(st, &s, 2, 1);
  snprintf(target, sizeof target, "%s/target", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  ASSERT_EQ(su_count(path, "counts"), 1);
  sn_put_key(st, &s, 3, 1); /* after the snapshot: not in it */
  SN_OK(sl_snapshot_write(sn), sn);
  ASSERT_EQ(su_count(path, "counts"), 2);
  ASSERT_OK(sl_snapshot_end(sn), st);
  ASSERT_EQ(as_count(target, "counts"), 2);
  su_close(st);
}

/* The owner must write (a map clear) before the writer thread has started:
** it commits the frozen changes itself and the snapshot still holds exactly
** the state of the synchronous part. */
TEST(quick_snapshot_owner_commits_the_frozen_changes) {
  sl_store *st = su_open("wa", 0, 1, NULL);
  sn_states s;
  sl_snapshot *sn = NULL;
  char target[2048], path[4096];
  sn_register(st, &s);
  su_commit(st);
  su_db_path(path, sizeof path, su_dir(), "wa", 0);
  for (int k = 0; k < 50; k++) sn_put_key(st, &s, k, 1);
  snprintf(target, sizeof target, "%s/chk-1", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  ASSERT_EQ(su_count(path, "counts"), 0);
  su_key_int(st, 7);
  ASSERT_OK(sl_state_clear(s.attrs), st);
  ASSERT_EQ(su_count(path, "counts"), 50); /* committed by the owner */
  ASSERT_EQ(su_count(path, "attrs"), 50);  /* the clear is not committed */
  SN_OK(sl_snapshot_write(sn), sn);
  ASSERT_OK(sl_snapshot_end(sn), st);
  su_commit(st);
  ASSERT_EQ(as_count(target, "counts"), 50);
  ASSERT_EQ(as_count(target, "attrs"), 50);
  ASSERT_EQ(su_count(path, "attrs"), 49);
  su_close(st);
}

/* Timers set and deleted while the frozen batch is not yet committed are
** kept aside: the owner does not wait, reads see them, the snapshot does
** not hold them, and they reach the file once the batch is committed. */
TEST(quick_snapshot_timers_kept_aside_during_the_write) {
  sl_store *st = su_open("wa", 0, 1, NULL);
  sn_states s;
  sl_snapshot *sn = NULL;
  char target[2048], path[4096];
  int64_t t = 0;
  sn_register(st, &s);
  su_db_path(path, sizeof path, su_dir(), "wa", 0);
  for (int k = 0; k < 5; k++) {
    su_key_int(st, k);
    ASSERT_OK(sl_timer_register(st, SL_EVENT_TIME, 100 + k), st);
  }
  su_commit(st);
  sn_put_key(st, &s, 1, 1);
  snprintf(target, sizeof target, "%s/chk-1", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  /* the batch is pending: these do not commit it */
  su_key_int(st, 9);
  ASSERT_OK(sl_timer_register(st, SL_EVENT_TIME, 50), st);  /* now the earliest */
  ASSERT_OK(sl_timer_register(st, SL_EVENT_TIME, 103), st); /* ties with key 3's */
  su_key_int(st, 0);
  ASSERT_OK(sl_timer_delete(st, SL_EVENT_TIME, 100), st);
  ASSERT_EQ(su_count(path, "counts"), 0);
  ASSERT_OK(sl_timer_peek(st, SL_EVENT_TIME, &t), st);
  ASSERT_EQ(t, 50);
  /* pops in order, the table and what was kept aside merged */
  {
    const int64_t want_t[] = {50, 101, 102};
    const int64_t want_k[] = {9, 1, 2};
    for (int i = 0; i < 3; i++) {
      const sl_value *key;
      int n;
      ASSERT_RC(sl_timer_pop(st, SL_EVENT_TIME, 102, &t), SL_ROW, st);
      ASSERT_EQ(t, want_t[i]);
      ASSERT_OK(sl_store_key(st, &key, &n, NULL), st);
      ASSERT_EQ(key[0].v.i, want_k[i]);
    }
    ASSERT_RC(sl_timer_pop(st, SL_EVENT_TIME, 102, &t), SL_DONE, st);
  }
  ASSERT_EQ(su_count(path, "counts"), 0); /* still not committed by the owner */
  SN_OK(sl_snapshot_write(sn), sn);
  ASSERT_OK(sl_snapshot_end(sn), st);
  ASSERT_EQ(as_count(target, "sl_timers"), 5); /* as at the synchronous part */
  su_commit(st);
  /* 3 and 4 at 103 and 104, and key 9's 103 */
  ASSERT_EQ(su_count(path, "sl_timers"), 3);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_timers WHERE ts = 103"), 2);
  su_close(st);
}

/* A snapshot begun and ended without being written (an aborted checkpoint)
** loses nothing: the frozen changes are committed when it ends. */
TEST(quick_snapshot_aborted_keeps_the_frozen_changes) {
  sl_store *st = su_open("wa", 0, 1, NULL);
  sn_states s;
  sl_snapshot *sn = NULL;
  char target[2048], path[4096];
  sn_register(st, &s);
  su_db_path(path, sizeof path, su_dir(), "wa", 0);
  for (int k = 0; k < 20; k++) sn_put_key(st, &s, k, 1);
  snprintf(target, sizeof target, "%s/chk-1", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  ASSERT_OK(sl_snapshot_end(sn), st);
  ASSERT_EQ(su_count(path, "counts"), 20);
  ASSERT_EQ(su_count(path, "events"), 20);
  ASSERT_EQ(su_count(path, "attrs"), 20);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name='sl_checkpoints'"), 0);
  su_close(st);
  /* closed without a commit: still there */
  ASSERT_EQ(su_count(path, "counts"), 20);
}

/* Two snapshots begun one after the other without a write in between: the
** second waits for (here: commits) the first's frozen changes, and each
** holds its own state. */
TEST(quick_snapshot_two_begun_in_a_row) {
  sl_store *st = su_open("wa", 0, 1, NULL);
  sn_states s;
  sl_snapshot *sn1 = NULL, *sn2 = NULL;
  char t1[2048], t2[2048];
  sn_register(st, &s);
  for (int k = 0; k < 10; k++) sn_put_key(st, &s, k, 1);
  snprintf(t1, sizeof t1, "%s/chk-1", test_dir());
  snprintf(t2, sizeof t2, "%s/chk-2", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, t1, 1, SL_CHECKPOINT, NULL, &sn1), st);
  for (int k = 10; k < 25; k++) sn_put_key(st, &s, k, 1);
  ASSERT_OK(sl_snapshot_begin(st, t2, 2, SL_CHECKPOINT, NULL, &sn2), st);
  SN_OK(sl_snapshot_write(sn2), sn2);
  SN_OK(sl_snapshot_write(sn1), sn1);
  ASSERT_OK(sl_snapshot_end(sn1), st);
  ASSERT_OK(sl_snapshot_end(sn2), st);
  ASSERT_EQ(as_count(t1, "counts"), 10);
  ASSERT_EQ(as_count(t2, "counts"), 25);
  su_close(st);
}
