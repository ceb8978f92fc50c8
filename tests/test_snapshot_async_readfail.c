/*
** test_snapshot_async_readfail.c — a read that fails between the freeze of a
** checkpoint and the commit of its batch (SQLite then rolls the transaction
** back): the batch must not be written outside a transaction, and the file
** must stay the last commit.
*/
#include <stdatomic.h>

#include "test_rel_fs.h"
#include "store_util.h"

static atomic_int asr_fail_reads;
static int asr_before(void *ud, tf_call *c) {
  (void)ud;
  if (c->kind == TV_READ && atomic_load(&asr_fail_reads)) {
    atomic_store(&asr_fail_reads, 0);
    return EIO;
  }
  return 0;
}

TEST(quick_snapshot_async_read_error_then_batch_outside_txn) {
  tf_hooks h = {asr_before, NULL, NULL};
  sl_config cfg;
  sl_store *st;
  sl_state *s, *m;
  sl_snapshot *sn = NULL;
  sl_column k = su_col("k", SL_INTEGER), x = su_col("x", SL_INTEGER), nm = su_col("name", SL_TEXT);
  sl_state_desc d, dm;
  char path[4096], target[2048];
  const sl_value *out = NULL;
  int rc;
  tf_setup(&h);
  sl_config_init(&cfg);
  cfg.vfs = "tf";
  cfg.page_cache_bytes = 4096;
  memset(&d, 0, sizeof d);
  d.name = "vals"; d.kind = SL_VALUE_STATE; d.n_key = 1; d.key = &k; d.n_value = 1; d.value = &x;
  memset(&dm, 0, sizeof dm);
  dm.name = "attrs"; dm.kind = SL_MAP_STATE; dm.n_key = 1; dm.key = &k; dm.n_map_key = 1;
  dm.map_key = &nm; dm.n_value = 1; dm.value = &x;
  st = su_open("rv", 0, 1, &cfg);
  s = su_reg(st, &d);
  m = su_reg(st, &dm);
  for (int i = 0; i < 20000; i++) {
    sl_value v = sl_int(i);
    su_key_int(st, i);
    ASSERT_OK(sl_value_update(s, &v), s);
  }
  su_commit(st);
  su_close(st);
  st = su_open("rv", 0, 1, &cfg); /* an empty cache */
  s = su_reg(st, &d);
  m = su_reg(st, &dm);
  su_db_path(path, sizeof path, su_dir(), "rv", 0);
  /* a change written into the open transaction (an iterator writes the
  ** state's dirty entries first) */
  {
    sl_value mk = sl_text("a"), v = sl_int(1);
    sl_iter *it = NULL;
    su_key_int(st, 1);
    ASSERT_OK(sl_map_put(m, &mk, &v), m);
    ASSERT_OK(sl_map_iter(m, &it), m);
    sl_iter_close(it);
  }
  /* changes frozen by a snapshot */
  for (int i = 0; i < 3; i++) {
    sl_value v = sl_int(-1);
    su_key_int(st, i);
    ASSERT_OK(sl_value_update(s, &v), s);
  }
  snprintf(target, sizeof target, "%s/t", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  /* an uncached key: a read of the file fails */
  su_key_int(st, 15000);
  atomic_store(&asr_fail_reads, 1);
  rc = sl_value_get(s, &out);
  atomic_store(&asr_fail_reads, 0);
  fprintf(stderr, "the read: %s (%s)\n", sl_errstr(rc), sl_errmsg(st));
  rc = sl_store_commit(st);
  fprintf(stderr, "the commit (settles the batch): %s (%s)\n", sl_errstr(rc), sl_errmsg(st));
  fprintf(stderr, "file: vals with x=-1: %lld (last commit: 0), attrs rows: %lld\n",
          (long long)su_sql_int(path, "SELECT count(*) FROM vals WHERE x=-1"),
          (long long)su_sql_int(path, "SELECT count(*) FROM attrs"));
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM vals WHERE x=-1"), 0);

  sl_snapshot_end(sn);
  sl_store_close(st);
}
