/*
** test_rel_corrupt.c — corrupt snapshots, swept: the newest checkpoint's
** snapshot file is truncated at many offsets and has single bits flipped
** (in the zstd frames, their headers, the padding, the checksums), and its
** MANIFEST gets single bit flips and truncations. Each time
** sl_chkdir_verify() returns a typed error and sl_chkdir_restore() falls
** back to the previous checkpoint, whose state then comes back exactly
** (rows and last_checkpoint). With the MANIFEST resealed to match a damaged
** snapshot file, only the zstd decoder and the checks of the database
** inside stand between the damage and the state: the restore must give
** exactly checkpoint 2 or exactly checkpoint 1, never anything else.
** The suite runs under ASan+UBSan too (make asan).
*/
#include <time.h>

#include "test_rel_util.h"

typedef struct rel_run {
  sl_chkdir *cd;
  char *want1, *want2;
  char *snap, *manifest;   /* pristine bytes of chk-2's file and MANIFEST */
  size_t snap_n, manifest_n;
  char snap_path[4096], manifest_path[4096], rdb[4096], rdir[4096];
  int n_verify_fail, n_fallback, n_exact2;
} rel_run;

static void rel_open(rel_run *r) {
  sl_chkdir_config cfg;
  char dir[4096];
  memset(r, 0, sizeof *r);
  rel_two_checkpoints(&r->want1, &r->want2);
  ASSERT(strcmp(r->want1, r->want2) != 0);
  su_pathf(r->snap_path, sizeof r->snap_path, "%s/chk/chk-2/rel/0.db.zst", test_dir());
  su_pathf(r->manifest_path, sizeof r->manifest_path, "%s/chk/chk-2/MANIFEST", test_dir());
  su_pathf(r->rdir, sizeof r->rdir, "%s/restored", test_dir());
  su_db_path(r->rdb, sizeof r->rdb, r->rdir, "rel", 0);
  r->snap = su_read_file(r->snap_path, &r->snap_n);
  r->manifest = su_read_file(r->manifest_path, &r->manifest_n);
  ASSERT(r->snap && r->manifest && r->snap_n > 64 && r->manifest_n > 64);
  sl_chkdir_config_init(&cfg);
  cfg.keep = 5;
  su_pathf(dir, sizeof dir, "%s/chk", test_dir());
  ASSERT(sl_chkdir_open(dir, &cfg, &r->cd) == SL_OK);
}

static void rel_close(rel_run *r) {
  sl_chkdir_close(r->cd);
  free(r->want1);
  free(r->want2);
  free(r->snap);
  free(r->manifest);
}

static void rel_pristine(rel_run *r) {
  su_write_file(r->snap_path, r->snap, r->snap_n);
  su_write_file(r->manifest_path, r->manifest, r->manifest_n);
}

/* The damage is in place: verify must fail with a typed error, and restore
** must fall back to checkpoint 1 and bring back exactly its state. */
static void rel_expect_fallback(rel_run *r, const char *what) {
  int64_t restored = 0;
  char *rows;
  int rc = sl_chkdir_verify(r->cd, 2, NULL);
  ASSERT_MSG(rc == SL_CORRUPT || rc == SL_MISMATCH, "%s: verify gave %s (%s)", what,
             sl_errstr(rc), sl_errmsg(r->cd));
  rc = sl_chkdir_restore(r->cd, 0, NULL, r->rdir, NULL, 0, &restored);
  ASSERT_MSG(rc == SL_OK, "%s: restore gave %s", what, sl_errstr(rc));
  ASSERT_MSG(restored == 1, "%s: restored checkpoint %lld, not 1", what, (long long)restored);
  ASSERT_MSG(rel_last_checkpoint(r->rdb) == 1, "%s: last_checkpoint is not 1", what);
  rows = rel_rows(r->rdb);
  ASSERT_MSG(strcmp(rows, r->want1) == 0, "%s: the restored rows are not checkpoint 1's", what);
  free(rows);
  /* asking for checkpoint 2 by id fails with a typed error */
  rc = sl_chkdir_restore(r->cd, 2, NULL, r->rdir, NULL, 0, &restored);
  ASSERT_MSG(rc == SL_CORRUPT || rc == SL_MISMATCH, "%s: restore of 2 gave %s", what,
             sl_errstr(rc));
  r->n_verify_fail++;
  r->n_fallback++;
}

/* The MANIFEST was resealed: the result must be exactly one checkpoint. */
static void rel_expect_one_of(rel_run *r, const char *what) {
  int64_t restored = 0;
  char *rows;
  int rc = sl_chkdir_verify(r->cd, 2, NULL);
  ASSERT_MSG(rc == SL_OK || rc == SL_CORRUPT || rc == SL_MISMATCH, "%s: verify gave %s", what,
             sl_errstr(rc));
  if (rc != SL_OK) r->n_verify_fail++;
  rc = sl_chkdir_restore(r->cd, 0, NULL, r->rdir, NULL, 0, &restored);
  ASSERT_MSG(rc == SL_OK, "%s: restore gave %s", what, sl_errstr(rc));
  ASSERT_MSG(restored == 1 || restored == 2, "%s: restored %lld", what, (long long)restored);
  ASSERT_MSG(rel_last_checkpoint(r->rdb) == restored, "%s: last_checkpoint %lld != %lld", what,
             (long long)rel_last_checkpoint(r->rdb), (long long)restored);
  rows = rel_rows(r->rdb);
  ASSERT_MSG(strcmp(rows, restored == 1 ? r->want1 : r->want2) == 0,
             "%s: the rows are not exactly those of checkpoint %lld", what, (long long)restored);
  free(rows);
  if (restored == 1) r->n_fallback++;
  else r->n_exact2++;
}

/* Offsets to damage: the first and last bytes always, then `k` random ones. */
static size_t rel_offset(uint64_t *seed, int i, size_t n) {
  if (i < 16) return (size_t)i < n ? (size_t)i : n - 1;
  if (i < 24) return n - 1 - (size_t)(i - 16) % n;
  return (size_t)(rel_rand(seed) % n);
}

TEST(rel_corrupt_snapshot_truncations_and_bit_flips) {
  rel_run r;
  uint64_t seed = (uint64_t)time(NULL), s;
  int samples = test_long() ? 600 : 60;
  char what[256];
  printf("seed %llu\n", (unsigned long long)seed);
  rel_open(&r);
  /* baseline: both checkpoints verify and the newest is restored */
  ASSERT(sl_chkdir_verify(r.cd, 2, NULL) == SL_OK);
  rel_expect_one_of(&r, "pristine");
  ASSERT_EQ(r.n_exact2, 1);
  r.n_exact2 = 0;
  s = seed;
  for (int i = 0; i < samples; i++) {
    size_t off = rel_offset(&s, i, r.snap_n);
    snprintf(what, sizeof what, "snapshot truncated to %zu of %zu bytes", off, r.snap_n);
    rel_pristine(&r);
    su_write_file(r.snap_path, r.snap, off);
    rel_expect_fallback(&r, what);
  }
  for (int i = 0; i < samples; i++) {
    size_t off = rel_offset(&s, i, r.snap_n);
    int bit = (int)(rel_rand(&s) % 8);
    rel_pristine(&r);
    r.snap[off] ^= (char)(1 << bit);
    su_write_file(r.snap_path, r.snap, r.snap_n);
    r.snap[off] ^= (char)(1 << bit);
    snprintf(what, sizeof what, "snapshot bit %d of byte %zu flipped", bit, off);
    rel_expect_fallback(&r, what);
  }
  for (int i = 0; i < samples; i++) {
    size_t off = rel_offset(&s, i, r.manifest_n);
    int bit = (int)(rel_rand(&s) % 8);
    rel_pristine(&r);
    r.manifest[off] ^= (char)(1 << bit);
    su_write_file(r.manifest_path, r.manifest, r.manifest_n);
    r.manifest[off] ^= (char)(1 << bit);
    snprintf(what, sizeof what, "MANIFEST bit %d of byte %zu flipped", bit, off);
    rel_expect_fallback(&r, what);
  }
  for (int i = 0; i < samples / 2; i++) {
    size_t off = rel_offset(&s, i, r.manifest_n);
    rel_pristine(&r);
    su_write_file(r.manifest_path, r.manifest, off);
    snprintf(what, sizeof what, "MANIFEST truncated to %zu of %zu bytes", off, r.manifest_n);
    rel_expect_fallback(&r, what);
  }
  printf("plain damage: %d faults, %d typed errors, %d fallbacks to checkpoint 1\n",
         samples * 3 + samples / 2, r.n_verify_fail, r.n_fallback);
  ASSERT_EQ(r.n_fallback, samples * 3 + samples / 2);
  rel_pristine(&r);
  rel_close(&r);
}

TEST(rel_corrupt_snapshot_resealed_bit_flips) {
  rel_run r;
  uint64_t seed = (uint64_t)time(NULL) ^ 0x5eed, s;
  int samples = test_long() ? 800 : 80, trunc = test_long() ? 200 : 20;
  char what[256];
  printf("seed %llu\n", (unsigned long long)seed);
  rel_open(&r);
  s = seed;
  for (int i = 0; i < samples; i++) {
    size_t off = rel_offset(&s, i, r.snap_n);
    int bit = (int)(rel_rand(&s) % 8);
    rel_pristine(&r);
    r.snap[off] ^= (char)(1 << bit);
    su_write_file(r.snap_path, r.snap, r.snap_n);
    r.snap[off] ^= (char)(1 << bit);
    rel_reseal(r.manifest_path, "rel/0.db.zst", r.snap_path, 0);
    snprintf(what, sizeof what, "resealed snapshot, bit %d of byte %zu flipped", bit, off);
    rel_expect_one_of(&r, what);
  }
  /* a resealed truncation holds fewer bytes than the MANIFEST's raw size */
  for (int i = 0; i < trunc; i++) {
    size_t off = 1 + (size_t)(rel_rand(&s) % (r.snap_n - 1));
    rel_pristine(&r);
    su_write_file(r.snap_path, r.snap, off);
    rel_reseal(r.manifest_path, "rel/0.db.zst", r.snap_path, 0);
    snprintf(what, sizeof what, "resealed snapshot truncated to %zu bytes", off);
    rel_expect_fallback(&r, what);
  }
  printf("resealed damage: %d flips (%d restored checkpoint 2 exactly, %d fell back), "
         "%d truncations fell back; %d typed errors from verify\n",
         samples, r.n_exact2, r.n_fallback - trunc, trunc, r.n_verify_fail);
  /* most flips land in compressed data and must be caught */
  ASSERT_MSG(r.n_fallback - trunc > samples / 2, "only %d of %d flips were detected",
             r.n_fallback - trunc, samples);
  rel_pristine(&r);
  rel_close(&r);
}
