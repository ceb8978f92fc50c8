/*
** test_snapshot_alloc_fault.c — allocation failures in SQLite's style: fail
** allocation number N for N = 1, 2, ... until the operation succeeds, for a
** checkpoint of a store, its publication, a restore and a rescale. Each
** failing run returns an error cleanly, leaks nothing (the sanitizer build
** checks), publishes no MANIFEST, and the last checkpoint stays usable.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "test_snapshot_util.h"
#include "torture.h"

/* An allocator that fails allocation number `fail_at` (counting from when
** it is armed): only that one, or (persistent) every one after it too,
** until disarmed. */
typedef struct failing {
  long count, fail_at;
  int armed, failed, persistent;
} failing;

static int fa_fails(failing *f) {
  if (!f->armed) return 0;
  ++f->count;
  if (f->count == f->fail_at || (f->persistent && f->count > f->fail_at)) {
    f->failed = 1;
    return 1;
  }
  return 0;
}

static void *fa_malloc(void *ud, size_t n) {
  if (fa_fails((failing *)ud)) return NULL;
  return malloc(n ? n : 1);
}

static void *fa_realloc(void *ud, void *p, size_t n) {
  if (fa_fails((failing *)ud)) return NULL;
  return realloc(p, n ? n : 1);
}

static void fa_free(void *ud, void *p) {
  (void)ud;
  free(p);
}

static void arm(failing *f, long at) {
  f->count = 0;
  f->fail_at = at;
  f->failed = 0;
  f->armed = 1;
}

static int owner_of(int64_t k, int p) {
  sl_value key = sl_int(k);
  int kg = 0, owner = 0;
  ASSERT_OK(sl_key_group(&key, 1, 128, &kg), NULL);
  ASSERT_OK(sl_key_group_owner(128, p, kg, &owner), NULL);
  return owner;
}

static sl_chkdir *open_cd(const sl_allocator *a) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  char dir[4096];
  sl_chkdir_config_init(&cfg);
  cfg.keep = 1;
  cfg.allocator = a;
  snprintf(dir, sizeof dir, "%s/chk", test_dir());
  SN_OK(sl_chkdir_open(dir, &cfg, &cd), cd);
  return cd;
}

static void checkpoint_loop(int persistent) {
  failing f = {0, 0, 0, 0, 0};
  sl_allocator a = {fa_malloc, fa_realloc, fa_free, &f};
  sl_config c;
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = open_cd(&a);
  int64_t id = 1;
  long n;
  sl_config_init(&c);
  c.allocator = &a;
  for (int i = 0; i < 2; i++) {
    st[i] = su_open("wc", i, 2, &c);
    sn_register(st[i], &s[i]);
  }
  for (int k = 0; k < 300; k++) sn_put_key(st[owner_of(k, 2)], &s[owner_of(k, 2)], k, 0);
  sn_checkpoint(cd, st, 2, id++, NULL); /* a checkpoint that must survive */
  f.persistent = persistent;
  for (n = 1; n < 10000; n++) {
    const char *target = NULL;
    sl_snapshot_info info[2];
    int rc = SL_OK, made = 0;
    char mf[4096];
    arm(&f, n);
    rc = sl_chkdir_target(cd, id, NULL, &target);
    for (int i = 0; i < 2 && rc == SL_OK; i++) {
      sl_snapshot *sn = NULL;
      rc = sl_snapshot_begin(st[i], target, id, SL_CHECKPOINT, NULL, &sn);
      if (rc == SL_OK) rc = sl_snapshot_write(sn);
      if (rc == SL_OK) rc = sl_snapshot_get_info(sn, &info[i]);
      if (sn) {
        int erc = sl_snapshot_end(sn);
        if (rc == SL_OK) rc = erc;
      }
      if (rc == SL_OK) made++;
    }
    if (rc == SL_OK) rc = sl_chkdir_publish(cd, id, NULL, info, 2);
    f.armed = 0;
    snprintf(mf, sizeof mf, "%s/chk/chk-%lld/MANIFEST", test_dir(), (long long)id);
    if (rc == SL_OK) {
      ASSERT(su_exists(mf));
      SN_OK(sl_chkdir_verify(cd, id, NULL), cd);
      id++;
      if (!f.failed) break;
      /* the failure hit retention, which only reports it: tidy up */
      SN_OK(sl_chkdir_gc(cd, NULL), cd);
      continue;
    }
    ASSERT_MSG(rc == SL_NOMEM, "allocation %ld failed: rc %s", n, sl_errstr(rc));
    ASSERT(f.failed);
    ASSERT(!su_exists(mf));
    /* the stores go on; the failed checkpoint is discarded */
    for (int i = 0; i < 2; i++) su_commit(st[i]);
    SN_OK(sl_chkdir_discard(cd, id, NULL), cd);
    (void)made;
  }
  ASSERT_MSG(n > 5 && n < 10000, "the loop ended after %ld runs", n);
  tt_count("faults", n - 1);
  printf("a checkpoint needs %ld allocations (%s failures)\n", n - 1,
         persistent ? "persistent" : "single");
  SN_OK(sl_chkdir_verify(cd, id - 1, NULL), cd);
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

TEST(snapshot_alloc_fault_checkpoint) { checkpoint_loop(1); }

TEST(snapshot_alloc_fault_checkpoint_once) { checkpoint_loop(0); }

static void restore_loop(int p1, int persistent) {
  failing f = {0, 0, 0, 0, 0};
  sl_allocator a = {fa_malloc, fa_realloc, fa_free, &f};
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = open_cd(NULL);
  sl_rescale rs;
  char *want[3];
  long n;
  for (int i = 0; i < 2; i++) {
    st[i] = su_open("wc", i, 2, NULL);
    sn_register(st[i], &s[i]);
  }
  for (int k = 0; k < 300; k++) sn_put_key(st[owner_of(k, 2)], &s[owner_of(k, 2)], k, 0);
  sn_checkpoint(cd, st, 2, 1, NULL);
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
  /* what a restore without faults gives */
  cd = open_cd(NULL);
  rs.op = "wc";
  rs.parallelism = p1;
  SN_OK(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), &rs, 1, NULL), cd);
  SN_OK(sl_chkdir_close(cd), NULL);
  for (int i = 0; i < p1; i++) {
    char p[4096];
    want[i] = su_dump_states(su_db_path(p, sizeof p, sn_rdir(), "wc", i));
  }
  ASSERT_EQ(test_sh(NULL, 0, "rm -rf '%s'", sn_rdir()), 0);
  f.persistent = persistent;
  for (n = 1; n < 10000; n++) {
    int64_t restored = 0;
    int rc;
    cd = open_cd(&a);
    arm(&f, n);
    rc = sl_chkdir_restore(cd, 0, NULL, sn_rdir(), &rs, 1, &restored);
    f.armed = 0;
    SN_OK(sl_chkdir_close(cd), NULL);
    if (rc == SL_OK) {
      ASSERT_EQ(restored, 1);
      for (int i = 0; i < p1; i++) {
        char p[4096];
        char *got = su_dump_states(su_db_path(p, sizeof p, sn_rdir(), "wc", i));
        ASSERT_MSG(strcmp(got, want[i]) == 0, "instance %d differs after a restore that survived "
                   "failing allocation %ld", i, n);
        free(got);
        snprintf(p, sizeof p, "%s/wc/.restore", sn_rdir());
        ASSERT(!su_exists(p));
      }
      if (!f.failed) break;
      continue;
    }
    ASSERT_MSG(rc == SL_NOMEM, "allocation %ld failed: rc %s", n, sl_errstr(rc));
    ASSERT_EQ(restored, 0);
  }
  ASSERT_MSG(n > 5 && n < 10000, "the loop ended after %ld runs", n);
  tt_count("faults", n - 1);
  printf("the restore to %d instance(s) needs %ld allocations (%s failures)\n", p1, n - 1,
         persistent ? "persistent" : "single");
  for (int i = 0; i < p1; i++) free(want[i]);
}

TEST(snapshot_alloc_fault_restore) { restore_loop(2, 1); }

TEST(snapshot_alloc_fault_restore_once) { restore_loop(2, 0); }

TEST(snapshot_alloc_fault_rescale) { restore_loop(3, 1); }

TEST(snapshot_alloc_fault_rescale_once) { restore_loop(3, 0); }

/* A checkpoint directory whose open failed before it had its path (its
** copy could not be allocated, or the settings were refused) is a handle
** for sl_errmsg() and sl_chkdir_close(): every other call refuses it with
** SL_MISUSE and a sentence, and none crashes. */
TEST(quick_snapshot_alloc_fault_failed_open_handle) {
  failing f = {0, 0, 0, 0, 0};
  sl_allocator a = {fa_malloc, fa_realloc, fa_free, &f};
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/chk", test_dir());
  for (int how = 0; how < 2; how++) {
    sl_chkdir_config cfg;
    sl_chkdir *cd = NULL;
    const sl_chk_entry *e = NULL;
    const char *path = NULL;
    int64_t id = 0;
    int n = 0, removed = 0;
    sl_rescale rs = {"wc", 1};
    sl_chkdir_config_init(&cfg);
    if (how == 0) {
      cfg.allocator = &a;
      arm(&f, 2); /* the handle is allocation 1, its path 2 */
      ASSERT_EQ(sl_chkdir_open(dir, &cfg, &cd), SL_NOMEM);
      f.armed = 0;
      ASSERT(f.failed);
    } else {
      cfg.keep = 0;
      ASSERT_EQ(sl_chkdir_open(dir, &cfg, &cd), SL_MISUSE);
    }
    ASSERT(cd != NULL);
    ASSERT_EQ(sl_chkdir_list(cd, &e, &n), SL_MISUSE);
    ASSERT(strstr(sl_errmsg(cd), "not opened") != NULL);
    ASSERT_EQ(sl_chkdir_next_id(cd, &id), SL_MISUSE);
    ASSERT_EQ(sl_chkdir_target(cd, 1, NULL, &path), SL_MISUSE);
    ASSERT_EQ(sl_chkdir_discard(cd, 1, NULL), SL_MISUSE);
    ASSERT_EQ(sl_chkdir_gc(cd, &removed), SL_MISUSE);
    ASSERT_EQ(sl_chkdir_publish(cd, 1, NULL, NULL, 0), SL_MISUSE);
    ASSERT_EQ(sl_chkdir_verify(cd, 1, NULL), SL_MISUSE);
    ASSERT_EQ(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), &rs, 1, NULL), SL_MISUSE);
    ASSERT(strstr(sl_errmsg(cd), "not opened") != NULL);
    ASSERT_EQ(sl_chkdir_close(cd), SL_OK);
  }
}
