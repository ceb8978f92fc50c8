/*
** test_snapshot_retention.c — the checkpoint directory: publication by
** MANIFEST (and what it refuses), retention by count and by bytes that never
** removes the newest checkpoint, savepoints that survive it, garbage removed
** at open, discard, listing, next id, and the read-only mode.
*/
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "test_snapshot_util.h"

/* Two instances of operator "wc" with some state each. */
static void open_two(sl_store **st, sn_states *s, int keys) {
  for (int i = 0; i < 2; i++) {
    st[i] = su_open("wc", i, 2, NULL);
    sn_register(st[i], &s[i]);
  }
  for (int k = 0; k < keys; k++) {
    sl_value key = sl_int(k);
    int kg = 0, owner = 0;
    ASSERT_OK(sl_key_group(&key, 1, 128, &kg), NULL);
    ASSERT_OK(sl_key_group_owner(128, 2, kg, &owner), NULL);
    sn_put_key(st[owner], &s[owner], k, 0);
  }
}

static char *ids(sl_chkdir *cd) {
  const sl_chk_entry *e = NULL;
  int n = 0;
  su_buf b = {0, 0, 0};
  SN_OK(sl_chkdir_list(cd, &e, &n), cd);
  for (int i = 0; i < n; i++) {
    if (e[i].kind == SL_CHECKPOINT) su_addf(&b, "%lld%s ", (long long)e[i].id, e[i].valid ? "" : "?");
    else su_addf(&b, "sp:%s(%lld) ", e[i].name, (long long)e[i].id);
  }
  return su_take(&b);
}

static int chk_exists(int64_t id) {
  char p[4096];
  snprintf(p, sizeof p, "%s/chk/chk-%lld", test_dir(), (long long)id);
  return su_exists(p);
}

TEST(quick_retention_by_count) {
  sl_store *st[2];
  sn_states s[2];
  su_buf rep = {0, 0, 0};
  sl_chkdir *cd = sn_chkdir(2, 0, &rep);
  char *r;
  open_two(st, s, 200);
  for (int64_t id = 1; id <= 5; id++) {
    sn_put_key(st[0], &s[0], 2, (int)id);
    sn_checkpoint(cd, st, 2, id, NULL);
    ASSERT(chk_exists(id));
    if (id > 2) ASSERT(!chk_exists(id - 2));
  }
  ASSERT_TEXT(ids(cd), "4 5 ");
  r = su_take(&rep);
  ASSERT_HAS(r, "chk-3 (");
  ASSERT_HAS(r, "retention keeps 2");
  free(r);
  /* unfinished directories: an old one goes (a removal cut short), a newer
  ** one (a checkpoint in progress) stays */
  {
    char p[4096];
    snprintf(p, sizeof p, "%s/chk/chk-2/wc", test_dir());
    ASSERT_EQ(test_sh(NULL, 0, "mkdir -p '%s' && echo x > '%s/0.db.zst'", p, p), 0);
    snprintf(p, sizeof p, "%s/chk/chk-9/wc", test_dir());
    ASSERT_EQ(test_sh(NULL, 0, "mkdir -p '%s' && echo x > '%s/0.db.zst'", p, p), 0);
    sn_checkpoint(cd, st, 2, 6, NULL);
    ASSERT(!chk_exists(2));
    ASSERT(chk_exists(9));
    ASSERT(!chk_exists(4));
    ASSERT_TEXT(ids(cd), "5 6 9? ");
    r = su_take(&rep);
    ASSERT_HAS(r, "chk-2: it has no MANIFEST and is older than the checkpoints kept");
    free(r);
  }
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(retention_by_bytes) {
  sl_store *st[2];
  sn_states s[2];
  su_buf rep = {0, 0, 0};
  sl_chkdir *cd = sn_chkdir(10, 0, NULL);
  const sl_chk_entry *e = NULL;
  uint64_t one;
  int n = 0, removed = -1;
  char *r;
  open_two(st, s, 2000);
  sn_checkpoint(cd, st, 2, 1, NULL);
  SN_OK(sl_chkdir_list(cd, &e, &n), cd);
  ASSERT_EQ(n, 1);
  one = e[0].bytes;
  ASSERT(one > 1000);
  SN_OK(sl_chkdir_close(cd), NULL);
  /* a budget of about two and a half checkpoints */
  cd = sn_chkdir(10, one * 5 / 2, &rep);
  for (int64_t id = 2; id <= 6; id++) sn_checkpoint(cd, st, 2, id, NULL);
  ASSERT_TEXT(ids(cd), "5 6 ");
  SN_OK(sl_chkdir_list(cd, &e, &n), cd);
  ASSERT(e[0].bytes + e[1].bytes <= one * 5 / 2);
  SN_OK(sl_chkdir_close(cd), NULL);
  /* a budget smaller than one checkpoint: the newest stays all the same */
  cd = sn_chkdir(10, 10, &rep);
  SN_OK(sl_chkdir_gc(cd, &removed), cd);
  ASSERT_EQ(removed, 1);
  ASSERT_TEXT(ids(cd), "6 ");
  sn_checkpoint(cd, st, 2, 7, NULL);
  ASSERT_TEXT(ids(cd), "7 ");
  r = su_take(&rep);
  ASSERT_HAS(r, "exceeds the byte budget");
  free(r);
  SN_OK(sl_chkdir_verify(cd, 7, NULL), cd);
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(savepoints_survive_retention) {
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = sn_chkdir(1, 1, NULL);
  int64_t next = 0;
  open_two(st, s, 300);
  sn_checkpoint(cd, st, 2, 1, NULL);
  sn_checkpoint(cd, st, 2, 2, "before-upgrade");
  for (int64_t id = 3; id <= 6; id++) sn_checkpoint(cd, st, 2, id, NULL);
  sn_checkpoint(cd, st, 2, 7, "nightly.1");
  sn_checkpoint(cd, st, 2, 8, NULL);
  ASSERT_TEXT(ids(cd), "8 sp:before-upgrade(2) sp:nightly.1(7) ");
  SN_OK(sl_chkdir_verify(cd, 0, "before-upgrade"), cd);
  SN_OK(sl_chkdir_next_id(cd, &next), cd);
  ASSERT_EQ(next, 9);
  {
    char p[4096];
    snprintf(p, sizeof p, "%s/chk/savepoints/before-upgrade/wc/1.db.zst", test_dir());
    ASSERT(su_exists(p));
    snprintf(p, sizeof p, "%s/chk/savepoints/before-upgrade/MANIFEST", test_dir());
    {
      size_t len = 0;
      char *m = su_read_file(p, &len);
      ASSERT_HAS(m, "id 2\nkind savepoint\nname before-upgrade\n");
      free(m);
    }
  }
  /* the same savepoint name cannot be taken twice */
  {
    const char *t = NULL;
    SN_RC(sl_chkdir_target(cd, 9, "nightly.1", &t), SL_MISUSE, cd);
    SN_MSG_HAS(cd, "already published");
  }
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(quick_garbage_removed_at_open) {
  sl_store *st[2];
  sn_states s[2];
  su_buf rep = {0, 0, 0};
  sl_chkdir *cd = sn_chkdir(2, 0, NULL);
  const char *target = NULL;
  char p[4096], *r;
  open_two(st, s, 50);
  sn_checkpoint(cd, st, 2, 1, NULL);
  /* an unfinished checkpoint 2: files written, no MANIFEST */
  SN_OK(sl_chkdir_target(cd, 2, NULL, &target), cd);
  {
    sl_snapshot *sn = NULL;
    ASSERT_OK(sl_snapshot_begin(st[0], target, 2, SL_CHECKPOINT, NULL, &sn), st[0]);
    SN_OK(sl_snapshot_write(sn), sn);
    ASSERT_OK(sl_snapshot_end(sn), st[0]);
  }
  SN_OK(sl_chkdir_target(cd, 3, "half", &target), cd);
  snprintf(p, sizeof p, "%s/chk/notes", test_dir());
  ASSERT_EQ(mkdir(p, 0777), 0);
  snprintf(p, sizeof p, "%s/chk/chk-007", test_dir());
  ASSERT_EQ(mkdir(p, 0777), 0);
  snprintf(p, sizeof p, "%s/chk/chk-1/MANIFEST.tmp", test_dir());
  su_write_file(p, "x", 1);
  SN_OK(sl_chkdir_close(cd), NULL);
  /* read-only: looks, removes nothing */
  {
    sl_chkdir_config cfg;
    sl_chkdir *ro = NULL;
    sl_chkdir_config_init(&cfg);
    cfg.flags = SL_CHKDIR_READONLY;
    snprintf(p, sizeof p, "%s/chk", test_dir());
    SN_OK(sl_chkdir_open(p, &cfg, &ro), ro);
    ASSERT(chk_exists(2));
    ASSERT_TEXT(ids(ro), "1 2? sp:half(0) ");
    SN_RC(sl_chkdir_publish(ro, 2, NULL, NULL, 0), SL_MISUSE, ro);
    SN_MSG_HAS(ro, "read-only");
    SN_RC(sl_chkdir_gc(ro, NULL), SL_MISUSE, ro);
    SN_RC(sl_chkdir_restore(ro, 0, NULL, sn_rdir(), NULL, 0, NULL), SL_MISUSE, ro);
    SN_OK(sl_chkdir_verify(ro, 1, NULL), ro);
    SN_OK(sl_chkdir_close(ro), NULL);
  }
  cd = sn_chkdir(2, 0, &rep);
  ASSERT(chk_exists(1));
  ASSERT(!chk_exists(2));
  snprintf(p, sizeof p, "%s/chk/savepoints/half", test_dir());
  ASSERT(!su_exists(p));
  snprintf(p, sizeof p, "%s/chk/notes", test_dir());
  ASSERT(su_exists(p));
  snprintf(p, sizeof p, "%s/chk/chk-007", test_dir());
  ASSERT(su_exists(p));
  snprintf(p, sizeof p, "%s/chk/chk-1/MANIFEST.tmp", test_dir());
  ASSERT(!su_exists(p));
  r = su_take(&rep);
  ASSERT_HAS(r, "chk-2: it has no MANIFEST (an unfinished or aborted checkpoint)");
  ASSERT_HAS(r, "savepoints/half: it has no MANIFEST");
  free(r);
  ASSERT_TEXT(ids(cd), "1 ");
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(quick_publish_refuses) {
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = sn_chkdir(2, 0, NULL);
  sl_snapshot_info info[2], bad[3];
  const char *target = NULL;
  char p[4096];
  open_two(st, s, 50);
  SN_OK(sl_chkdir_target(cd, 1, NULL, &target), cd);
  for (int i = 0; i < 2; i++) {
    sl_snapshot *sn = NULL;
    ASSERT_OK(sl_snapshot_begin(st[i], target, 1, SL_CHECKPOINT, NULL, &sn), st[i]);
    SN_OK(sl_snapshot_write(sn), sn);
    SN_OK(sl_snapshot_get_info(sn, &info[i]), sn);
    ASSERT_OK(sl_snapshot_end(sn), st[i]);
  }
  SN_RC(sl_chkdir_publish(cd, 1, NULL, info, 0), SL_MISUSE, cd);
  SN_RC(sl_chkdir_publish(cd, 0, NULL, info, 2), SL_MISUSE, cd);
  SN_RC(sl_chkdir_publish(cd, 2, NULL, info, 2), SL_MISMATCH, cd);
  SN_MSG_HAS(cd, "not of checkpoint 2");
  SN_RC(sl_chkdir_publish(cd, 1, "sp", info, 2), SL_MISMATCH, cd);
  SN_RC(sl_chkdir_publish(cd, 1, NULL, info, 1), SL_MISMATCH, cd);
  SN_MSG_HAS(cd, "subtask 1 of operator wc (of 2) is missing");
  bad[0] = info[0];
  bad[1] = info[1];
  bad[2] = info[0];
  SN_RC(sl_chkdir_publish(cd, 1, NULL, bad, 3), SL_MISMATCH, cd);
  SN_MSG_HAS(cd, "appears twice");
  bad[1].parallelism = 3;
  SN_RC(sl_chkdir_publish(cd, 1, NULL, bad, 2), SL_MISMATCH, cd);
  bad[1] = info[1];
  bad[1].bytes += 1;
  SN_RC(sl_chkdir_publish(cd, 1, NULL, bad, 2), SL_MISMATCH, cd);
  SN_MSG_HAS(cd, "bytes");
  snprintf(bad[1].op, sizeof bad[1].op, "../x");
  SN_RC(sl_chkdir_publish(cd, 1, NULL, bad, 2), SL_MISUSE, cd);
  snprintf(p, sizeof p, "%s/wc/1.db.zst", target);
  ASSERT_EQ(rename(p, "moved"), 0);
  SN_RC(sl_chkdir_publish(cd, 1, NULL, info, 2), SL_NOTFOUND, cd);
  ASSERT_EQ(rename("moved", p), 0);
  snprintf(p, sizeof p, "%s/MANIFEST", target);
  ASSERT(!su_exists(p));
  SN_OK(sl_chkdir_publish(cd, 1, NULL, info, 2), cd);
  ASSERT(su_exists(p));
  SN_RC(sl_chkdir_publish(cd, 1, NULL, info, 2), SL_MISUSE, cd);
  SN_MSG_HAS(cd, "already published");
  SN_RC(sl_chkdir_discard(cd, 1, NULL), SL_MISUSE, cd);
  SN_RC(sl_chkdir_target(cd, 1, NULL, &target), SL_MISUSE, cd);
  /* discard of an unpublished one */
  SN_OK(sl_chkdir_target(cd, 2, NULL, &target), cd);
  ASSERT(chk_exists(2));
  SN_OK(sl_chkdir_discard(cd, 2, NULL), cd);
  ASSERT(!chk_exists(2));
  SN_RC(sl_chkdir_target(cd, 2, "bad/name", &target), SL_MISUSE, cd);
  SN_RC(sl_chkdir_target(cd, 0, NULL, &target), SL_MISUSE, cd);
  SN_RC(sl_chkdir_verify(cd, 5, NULL), SL_NOTFOUND, cd);
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
  ASSERT_OK(sl_chkdir_close(NULL), NULL);
}

TEST(quick_chkdir_open_refuses) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  char p[4096];
  ASSERT_RC(sl_chkdir_open(NULL, NULL, NULL), SL_MISUSE, NULL);
  SN_RC(sl_chkdir_open("", NULL, &cd), SL_MISUSE, cd);
  SN_MSG_HAS(cd, "NULL or empty");
  SN_OK(sl_chkdir_close(cd), NULL);
  sl_chkdir_config_init(&cfg);
  cfg.keep = 0;
  SN_RC(sl_chkdir_open("x", &cfg, &cd), SL_MISUSE, cd);
  SN_MSG_HAS(cd, "keep is 0");
  SN_OK(sl_chkdir_close(cd), NULL);
  snprintf(p, sizeof p, "%s/file", test_dir());
  su_write_file(p, "x", 1);
  SN_RC(sl_chkdir_open(p, NULL, &cd), SL_IOERR, cd);
  SN_OK(sl_chkdir_close(cd), NULL);
  {
    int64_t next = 0;
    snprintf(p, sizeof p, "%s/fresh/chk", test_dir());
    SN_OK(sl_chkdir_open(p, NULL, &cd), cd);
    SN_OK(sl_chkdir_next_id(cd, &next), cd);
    ASSERT_EQ(next, 1);
    SN_RC(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), NULL, 0, NULL), SL_NOTFOUND, cd);
    SN_MSG_HAS(cd, "there is no checkpoint");
    SN_RC(sl_chkdir_restore(cd, 0, "nope", sn_rdir(), NULL, 0, NULL), SL_NOTFOUND, cd);
    SN_RC(sl_chkdir_restore(cd, 3, NULL, sn_rdir(), NULL, 0, NULL), SL_NOTFOUND, cd);
    SN_OK(sl_chkdir_close(cd), NULL);
  }
}
