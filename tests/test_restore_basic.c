/*
** test_restore_basic.c — restoring checkpoints and savepoints: after the
** stores are closed the restored files hold exactly the state of the
** checkpoint (rows, registry, history) and open as stores; restoring in
** place replaces the working files, their stale -wal/-shm and instances
** beyond the parallelism; a named savepoint or an explicit id is restored
** as asked; operators outside the checkpoint are left alone.
*/
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "test_snapshot_util.h"

static int owner_of(int64_t k, int p) {
  sl_value key = sl_int(k);
  int kg = 0, owner = 0;
  ASSERT_OK(sl_key_group(&key, 1, 128, &kg), NULL);
  ASSERT_OK(sl_key_group_owner(128, p, kg, &owner), NULL);
  return owner;
}

static void open_n(const char *dir, sl_store **st, sn_states *s, int p) {
  for (int i = 0; i < p; i++) {
    ASSERT_OK(sl_store_open(dir, "wc", i, p, NULL, &st[i]), st[i]);
    sn_register(st[i], &s[i]);
  }
}

static void put_all(sl_store **st, sn_states *s, int p, int keys, int round) {
  for (int k = 0; k < keys; k++) {
    int o = owner_of(k, p);
    sn_put_key(st[o], &s[o], k, round);
  }
  for (int i = 0; i < p; i++) {
    sl_value off[2];
    off[0] = sl_int(i);
    off[1] = sl_int(round);
    ASSERT_OK(sl_list_add(s[i].offsets, off), st[i]);
  }
}

/* The user states and registry of instance i under dir. */
static char *dump_states(const char *dir, int i) {
  char p[4096];
  return su_dump_states(su_db_path(p, sizeof p, dir, "wc", i));
}

TEST(quick_restore_after_close) {
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = sn_chkdir(3, 0, NULL);
  char *want[2];
  int64_t restored = 0;
  char p[4096];
  open_n(su_dir(), st, s, 2);
  put_all(st, s, 2, 500, 0);
  sn_checkpoint(cd, st, 2, 1, NULL);
  put_all(st, s, 2, 700, 1);
  sn_checkpoint(cd, st, 2, 2, NULL);
  for (int i = 0; i < 2; i++) want[i] = dump_states(su_dir(), i);
  put_all(st, s, 2, 900, 2); /* after the checkpoint: lost on restore */
  for (int i = 0; i < 2; i++) {
    su_commit(st[i]);
    su_close(st[i]);
  }
  SN_OK(sl_chkdir_close(cd), NULL);
  cd = sn_chkdir(3, 0, NULL);
  SN_OK(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), NULL, 0, &restored), cd);
  ASSERT_EQ(restored, 2);
  for (int i = 0; i < 2; i++) {
    su_db_path(p, sizeof p, sn_rdir(), "wc", i);
    ASSERT_TEXT(dump_states(sn_rdir(), i), want[i]);
    free(want[i]);
    ASSERT_EQ(su_sql_int(p, "SELECT value FROM sl_meta WHERE name='last_checkpoint'"), 2);
    ASSERT_EQ(su_sql_int(p, "SELECT count(*) FROM sl_checkpoints WHERE id=1"), 1);
    ASSERT_EQ(su_sql_int(p, "SELECT count(*) FROM sl_checkpoints WHERE id=2"), 0);
    ASSERT_EQ(su_sql_int(p, "PRAGMA application_id"), SL_APPLICATION_ID);
  }
  /* no leftovers of the restore */
  snprintf(p, sizeof p, "%s/wc/.restore", sn_rdir());
  ASSERT(!su_exists(p));
  /* the files open as stores with the state of checkpoint 2 */
  open_n(sn_rdir(), st, s, 2);
  for (int k = 0; k < 900; k += 37) {
    int o = owner_of(k, 2);
    char *v;
    su_key_int(st[o], k);
    v = su_value_str(s[o].counts, 2);
    if (k < 700) {
      char w[64];
      snprintf(w, sizeof w, "%d,'note-%d-1'", k * 10 + 1, k);
      ASSERT_STR(v, w);
    } else {
      ASSERT_STR(v, "");
    }
    free(v);
  }
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(quick_restore_in_place) {
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = sn_chkdir(3, 0, NULL);
  char *want[2], p[4096];
  int64_t restored = 0;
  open_n(su_dir(), st, s, 2);
  put_all(st, s, 2, 300, 0);
  sn_checkpoint(cd, st, 2, 1, NULL);
  for (int i = 0; i < 2; i++) want[i] = dump_states(su_dir(), i);
  put_all(st, s, 2, 400, 5);
  for (int i = 0; i < 2; i++) {
    su_commit(st[i]);
    su_close(st[i]);
  }
  /* a stale -wal of the old working file must not be replayed into the
  ** restored one; a file of an instance beyond the parallelism goes */
  su_db_path(p, sizeof p, su_dir(), "wc", 0);
  strcat(p, "-wal");
  su_write_file(p, "stale wal", 9);
  su_db_path(p, sizeof p, su_dir(), "wc", 1);
  strcat(p, "-shm");
  su_write_file(p, "stale shm", 9);
  su_db_path(p, sizeof p, su_dir(), "wc", 5);
  su_write_file(p, "old instance", 12);
  SN_OK(sl_chkdir_restore(cd, 0, NULL, su_dir(), NULL, 0, &restored), cd);
  ASSERT_EQ(restored, 1);
  ASSERT(!su_exists(p));
  su_db_path(p, sizeof p, su_dir(), "wc", 0);
  strcat(p, "-wal");
  ASSERT(!su_exists(p));
  for (int i = 0; i < 2; i++) {
    ASSERT_TEXT(dump_states(su_dir(), i), want[i]);
    free(want[i]);
  }
  open_n(su_dir(), st, s, 2);
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(restore_savepoint_and_id) {
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = sn_chkdir(1, 0, NULL);
  char *at_sp[2], *at_2[2], other[4096];
  int64_t restored = 0;
  sl_store *o;
  open_n(su_dir(), st, s, 2);
  put_all(st, s, 2, 200, 0);
  sn_checkpoint(cd, st, 2, 1, NULL);
  put_all(st, s, 2, 250, 1);
  sn_checkpoint(cd, st, 2, 2, "keep-me");
  for (int i = 0; i < 2; i++) at_sp[i] = dump_states(su_dir(), i);
  put_all(st, s, 2, 300, 2);
  sn_checkpoint(cd, st, 2, 3, NULL);
  for (int i = 0; i < 2; i++) at_2[i] = dump_states(su_dir(), i);
  put_all(st, s, 2, 350, 3);
  sn_checkpoint(cd, st, 2, 4, NULL);
  /* keep 1: checkpoint 3 is gone */
  SN_RC(sl_chkdir_restore(cd, 3, NULL, sn_rdir(), NULL, 0, &restored), SL_NOTFOUND, cd);
  SN_OK(sl_chkdir_restore(cd, 0, "keep-me", sn_rdir(), NULL, 0, &restored), cd);
  ASSERT_EQ(restored, 2);
  for (int i = 0; i < 2; i++) {
    ASSERT_TEXT(dump_states(sn_rdir(), i), at_sp[i]);
    free(at_sp[i]);
    free(at_2[i]);
  }
  SN_OK(sl_chkdir_restore(cd, 4, NULL, sn_rdir(), NULL, 0, &restored), cd);
  ASSERT_EQ(restored, 4);
  /* another operator in the state directory is left alone */
  ASSERT_OK(sl_store_open(sn_rdir(), "other", 0, 1, NULL, &o), o);
  su_close(o);
  su_db_path(other, sizeof other, sn_rdir(), "other", 0);
  SN_OK(sl_chkdir_restore(cd, 0, "keep-me", sn_rdir(), NULL, 0, &restored), cd);
  ASSERT(su_exists(other));
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(quick_restore_bad_calls) {
  sl_chkdir *cd = sn_chkdir(2, 0, NULL);
  sl_rescale rs[2];
  ASSERT_RC(sl_chkdir_restore(NULL, 0, NULL, "x", NULL, 0, NULL), SL_MISUSE, NULL);
  SN_RC(sl_chkdir_restore(cd, 0, NULL, NULL, NULL, 0, NULL), SL_MISUSE, cd);
  SN_RC(sl_chkdir_restore(cd, 0, NULL, "", NULL, 0, NULL), SL_MISUSE, cd);
  SN_RC(sl_chkdir_restore(cd, -1, NULL, "x", NULL, 0, NULL), SL_MISUSE, cd);
  SN_RC(sl_chkdir_restore(cd, 0, "a/b", "x", NULL, 0, NULL), SL_MISUSE, cd);
  SN_RC(sl_chkdir_restore(cd, 0, NULL, "x", NULL, 1, NULL), SL_MISUSE, cd);
  rs[0].op = "wc";
  rs[0].parallelism = 0;
  SN_RC(sl_chkdir_restore(cd, 0, NULL, "x", rs, 1, NULL), SL_MISUSE, cd);
  rs[0].parallelism = 2;
  rs[1] = rs[0];
  SN_RC(sl_chkdir_restore(cd, 0, NULL, "x", rs, 2, NULL), SL_MISUSE, cd);
  SN_MSG_HAS(cd, "twice");
  SN_OK(sl_chkdir_close(cd), NULL);
}

/* An operator to rescale must be in the checkpoint, within its max. */
TEST(quick_restore_rescale_unknown_operator) {
  sl_store *st[1];
  sn_states s[1];
  sl_chkdir *cd = sn_chkdir(2, 0, NULL);
  sl_rescale rs;
  open_n(su_dir(), st, s, 1);
  put_all(st, s, 1, 10, 0);
  sn_checkpoint(cd, st, 1, 1, NULL);
  rs.op = "nope";
  rs.parallelism = 2;
  SN_RC(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), &rs, 1, NULL), SL_MISUSE, cd);
  SN_MSG_HAS(cd, "'nope' is not in");
  rs.op = "wc";
  rs.parallelism = 129;
  SN_RC(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), &rs, 1, NULL), SL_MISUSE, cd);
  SN_MSG_HAS(cd, "max parallelism 128");
  su_close(st[0]);
  SN_OK(sl_chkdir_close(cd), NULL);
}
