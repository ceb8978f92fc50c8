/*
** test_restore_faults.c — damaged checkpoints: a truncated snapshot, a
** flipped byte, a missing file, a missing or malformed MANIFEST, and
** snapshot files that are consistent with their MANIFEST but hostile or
** wrong inside (not a database, another application_id, triggers, views,
** foreign tables, rows outside the key groups, another subtask, a damaged
** page, a decompression bomb, frames that lie about their size). Each is
** detected, reported with the file and the reason, and the restore falls
** back to the previous checkpoint, whose state is then restored exactly.
*/
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "test_snapshot_util.h"

static int owner_of(int64_t k) {
  sl_value key = sl_int(k);
  int kg = 0, owner = 0;
  ASSERT_OK(sl_key_group(&key, 1, 128, &kg), NULL);
  ASSERT_OK(sl_key_group_owner(128, 2, kg, &owner), NULL);
  return owner;
}

/* Checkpoints 1 and 2 of two instances; *want gets the states of 1. */
static void setup(char **want) {
  sl_store *st[2];
  sn_states s[2];
  sl_chkdir *cd = sn_chkdir(5, 0, NULL);
  for (int i = 0; i < 2; i++) {
    st[i] = su_open("wc", i, 2, NULL);
    sn_register(st[i], &s[i]);
  }
  for (int k = 0; k < 400; k++) sn_put_key(st[owner_of(k)], &s[owner_of(k)], k, 0);
  sn_checkpoint(cd, st, 2, 1, NULL);
  for (int i = 0; i < 2; i++) {
    char p[4096];
    want[i] = su_dump_states(su_db_path(p, sizeof p, su_dir(), "wc", i));
  }
  for (int k = 0; k < 600; k++) sn_put_key(st[owner_of(k)], &s[owner_of(k)], k, 1);
  sn_checkpoint(cd, st, 2, 2, NULL);
  for (int i = 0; i < 2; i++) {
    su_commit(st[i]);
    su_close(st[i]);
  }
  SN_OK(sl_chkdir_close(cd), NULL);
}

/* Restores (falling back) and checks that checkpoint 1 came back and that
** the report names `what` (the file) and `why`. */
static void expect_fallback(char **want, const char *what, const char *why, uint64_t max_raw,
                            int inside) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  su_buf rep = {0, 0, 0};
  char dir[4096], *r;
  int64_t restored = 0;
  sl_chkdir_config_init(&cfg);
  cfg.keep = 5;
  cfg.report = sn_report_collect;
  cfg.report_ud = &rep;
  if (max_raw) cfg.max_raw_bytes = max_raw;
  snprintf(dir, sizeof dir, "%s/chk", test_dir());
  SN_OK(sl_chkdir_open(dir, &cfg, &cd), cd);
  SN_OK(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), NULL, 0, &restored), cd);
  ASSERT_EQ(restored, 1);
  r = su_take(&rep);
  printf("%s", r);
  ASSERT_HAS(r, "checkpoint 2 does not verify, trying the previous one");
  ASSERT_HAS(r, what);
  ASSERT_HAS(r, why);
  ASSERT_HAS(r, "restored checkpoint 1");
  free(r);
  for (int i = 0; i < 2; i++) {
    char p[4096];
    ASSERT_TEXT(su_dump_states(su_db_path(p, sizeof p, sn_rdir(), "wc", i)), want[i]);
    free(want[i]);
    snprintf(p, sizeof p, "%s/wc/.restore", sn_rdir());
    ASSERT(!su_exists(p));
  }
  /* asking for the damaged one by id fails and says why */
  SN_RC(sl_chkdir_restore(cd, 2, NULL, sn_rdir(), NULL, 0, &restored), SL_CORRUPT, cd);
  SN_MSG_HAS(cd, why);
  /* sl_chkdir_verify() checks the files, not the databases inside them */
  SN_RC(sl_chkdir_verify(cd, 2, NULL), inside ? SL_OK : SL_CORRUPT, cd);
  SN_OK(sl_chkdir_verify(cd, 1, NULL), cd);
  SN_OK(sl_chkdir_close(cd), NULL);
}

static const char *snap2(int i) {
  static char buf[4096];
  return sn_snap_path(buf, sizeof buf, 2, "wc", i);
}

static const char *manifest2(void) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/chk/chk-2/MANIFEST", test_dir());
  return buf;
}

/* ------------------------------------------------------------------------ */
/* Damage from outside                                                       */
/* ------------------------------------------------------------------------ */

TEST(quick_fault_truncated_snapshot) {
  char *want[2];
  setup(want);
  ASSERT_EQ(truncate(snap2(1), 300), 0);
  expect_fallback(want, "chk-2/wc/1.db.zst", "has 300 bytes where the MANIFEST says", 0, 0);
}

TEST(quick_fault_flipped_byte) {
  char *want[2];
  size_t n = 0;
  char *p;
  setup(want);
  p = su_read_file(snap2(0), &n);
  p[n / 2] ^= 0x10;
  su_write_file(snap2(0), p, n);
  free(p);
  expect_fallback(want, "chk-2/wc/0.db.zst", "checksum", 0, 0);
}

TEST(quick_fault_missing_file) {
  char *want[2];
  setup(want);
  ASSERT_EQ(unlink(snap2(1)), 0);
  expect_fallback(want, "chk-2/wc/1.db.zst", "is missing", 0, 0);
}

TEST(quick_fault_manifest_missing) {
  char *want[2];
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  su_buf rep = {0, 0, 0};
  char dir[4096], *r;
  int64_t restored = 0;
  setup(want);
  ASSERT_EQ(unlink(manifest2()), 0);
  /* the open removes chk-2 as garbage and says so */
  sl_chkdir_config_init(&cfg);
  cfg.report = sn_report_collect;
  cfg.report_ud = &rep;
  snprintf(dir, sizeof dir, "%s/chk", test_dir());
  SN_OK(sl_chkdir_open(dir, &cfg, &cd), cd);
  r = su_take(&rep);
  ASSERT_HAS(r, "chk-2: it has no MANIFEST");
  free(r);
  SN_OK(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), NULL, 0, &restored), cd);
  ASSERT_EQ(restored, 1);
  SN_RC(sl_chkdir_restore(cd, 2, NULL, sn_rdir(), NULL, 0, &restored), SL_NOTFOUND, cd);
  SN_OK(sl_chkdir_close(cd), NULL);
  for (int i = 0; i < 2; i++) {
    char p[4096];
    ASSERT_TEXT(su_dump_states(su_db_path(p, sizeof p, sn_rdir(), "wc", i)), want[i]);
    free(want[i]);
  }
}

TEST(quick_fault_manifest_missing_skipped_by_restore) {
  char *want[2];
  setup(want);
  ASSERT_EQ(unlink(manifest2()), 0);
  {
    /* the MANIFEST vanishes after the directory was opened */
    sl_chkdir_config cfg;
    sl_chkdir *cd = NULL;
    su_buf rep = {0, 0, 0};
    char dir[4096], *r;
    int64_t restored = 0;
    sl_chkdir_config_init(&cfg);
    cfg.report = sn_report_collect;
    cfg.report_ud = &rep;
    snprintf(dir, sizeof dir, "%s/chk", test_dir());
    /* recreate the MANIFEST-less directory after open removed it */
    SN_OK(sl_chkdir_open(dir, &cfg, &cd), cd);
    snprintf(dir, sizeof dir, "%s/chk/chk-2/wc", test_dir());
    ASSERT_EQ(test_sh(NULL, 0, "mkdir -p '%s'", dir), 0);
    SN_OK(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), NULL, 0, &restored), cd);
    ASSERT_EQ(restored, 1);
    r = su_take(&rep);
    ASSERT_HAS(r, "chk-2 has no MANIFEST: an unfinished checkpoint, skipped");
    free(r);
    SN_OK(sl_chkdir_close(cd), NULL);
  }
  for (int i = 0; i < 2; i++) free(want[i]);
}

TEST(quick_fault_manifest_malformed) {
  char *want[2];
  size_t n = 0;
  char *p;
  setup(want);
  p = su_read_file(manifest2(), &n);
  p[30] = p[30] == '7' ? '8' : '7'; /* within the header lines */
  su_write_file(manifest2(), p, n);
  free(p);
  expect_fallback(want, "chk-2/MANIFEST", "checksum", 0, 0);
}

TEST(quick_fault_manifest_garbage) {
  char *want[2];
  setup(want);
  su_write_file(manifest2(), "hello\n", 6);
  expect_fallback(want, "chk-2/MANIFEST", "does not end with a line 'checksum", 0, 0);
}

/* ------------------------------------------------------------------------ */
/* Consistent files, wrong or hostile inside                                 */
/* ------------------------------------------------------------------------ */

static uint64_t file_size(const char *path) {
  struct stat sb;
  ASSERT(stat(path, &sb) == 0);
  return (uint64_t)sb.st_size;
}

/* Replaces snapshot i of checkpoint 2 by `zst` and fixes up the MANIFEST
** (size and checksum; raw size = raw unless 0: the file's frames). */
static void reseal(int i, uint64_t raw) {
  char err[SL_ERRMSG_MAX], *text = NULL;
  slManifest m;
  size_t n = 0, len = 0;
  char *p = su_read_file(snap2(i), &n);
  sl_fs fs;
  int renamed = 0;
  ASSERT(p != NULL);
  slSnapFsInit(&fs, NULL);
  SN_OK(slSnapMfLoad(err, &fs, slAllocDefault(), manifest2(), &m), NULL);
  ASSERT_STR(m.ops[0].name, "wc");
  m.ops[0].files[i].size = n;
  m.ops[0].files[i].crc = slSnapCrc(0, p, n);
  if (raw) m.ops[0].files[i].raw = raw;
  free(p);
  SN_OK(slSnapMfFormat(err, slAllocDefault(), &m, &text, &len), NULL);
  SN_OK(slSnapWriteAtomic(err, &fs, manifest2(), text, len, &renamed), NULL);
  free(text);
  slSnapMfFree(slAllocDefault(), &m);
}

/* Decompresses snapshot i of checkpoint 2, runs sql on it with the sqlite3
** shell, compresses it back and reseals the MANIFEST. */
static void tamper(int i, const char *sql) {
  char db[4096], out[512];
  snprintf(db, sizeof db, "%s/tamper.db", test_dir());
  ASSERT_EQ(test_sh(out, sizeof out, "zstd -q -d -f '%s' -o '%s' 2>&1", snap2(i), db), 0);
  if (sql) ASSERT_EQ(test_sh(out, sizeof out, "sqlite3 '%s' \"%s\" 2>&1", db, sql), 0);
  ASSERT_EQ(test_sh(out, sizeof out, "sqlite3 '%s' 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null",
                    db), 0);
  ASSERT_EQ(test_sh(out, sizeof out, "zstd -q -f '%s' -o '%s' 2>&1", db, snap2(i)), 0);
  reseal(i, file_size(db));
}

/* Overwrites n bytes at off of the decompressed snapshot i. */
static void damage_page(int i, long off, int n) {
  char db[4096], out[512];
  int fd;
  unsigned char junk[64];
  snprintf(db, sizeof db, "%s/tamper.db", test_dir());
  ASSERT_EQ(test_sh(out, sizeof out, "zstd -q -d -f '%s' -o '%s' 2>&1", snap2(i), db), 0);
  memset(junk, 0xee, sizeof junk);
  fd = open(db, O_WRONLY);
  ASSERT(fd >= 0);
  ASSERT_EQ(pwrite(fd, junk, (size_t)n, off), n);
  close(fd);
  ASSERT_EQ(test_sh(out, sizeof out, "zstd -q -f '%s' -o '%s' 2>&1", db, snap2(i)), 0);
  reseal(i, file_size(db));
}

/* The frames' sizes: the raw size of the MANIFEST must follow them. */
static uint64_t raw_of(int i) {
  char db[4096], out[64];
  snprintf(db, sizeof db, "%s/tamper.db", test_dir());
  ASSERT_EQ(test_sh(out, sizeof out, "zstd -q -d -f '%s' -o '%s' 2>&1", snap2(i), db), 0);
  return file_size(db);
}

TEST(quick_fault_inner_not_a_database) {
  char *want[2], src[4096], out[256];
  setup(want);
  snprintf(src, sizeof src, "%s/junk", test_dir());
  {
    char junk[8192];
    for (size_t k = 0; k < sizeof junk; k++) junk[k] = (char)('a' + k % 26);
    su_write_file(src, junk, sizeof junk);
  }
  ASSERT_EQ(test_sh(out, sizeof out, "zstd -q -f '%s' -o '%s' 2>&1", src, snap2(1)), 0);
  reseal(1, 8192);
  expect_fallback(want, "chk-2/wc/1.db.zst", "file is not a database", 0, 1);
}

TEST(quick_fault_inner_application_id) {
  char *want[2];
  setup(want);
  tamper(0, "PRAGMA application_id=7");
  expect_fallback(want, "chk-2/wc/0.db.zst", "is not a statelite state file (application_id 7)",
                  0, 1);
}

TEST(quick_fault_inner_trigger) {
  char *want[2];
  setup(want);
  tamper(1, "CREATE TRIGGER evil AFTER INSERT ON counts BEGIN DELETE FROM counts; END");
  expect_fallback(want, "chk-2/wc/1.db.zst", "holds the trigger 'evil'", 0, 1);
}

TEST(quick_fault_inner_view) {
  char *want[2];
  setup(want);
  tamper(1, "CREATE VIEW peek AS SELECT * FROM counts");
  expect_fallback(want, "chk-2/wc/1.db.zst", "holds the view 'peek'", 0, 1);
}

TEST(quick_fault_inner_foreign_table) {
  char *want[2];
  setup(want);
  tamper(0, "CREATE TABLE stuff(x)");
  expect_fallback(want, "chk-2/wc/0.db.zst", "holds the table 'stuff', which is no state", 0,
                  1);
}

TEST(quick_fault_inner_rows_outside_key_groups) {
  char *want[2];
  setup(want);
  tamper(0, "UPDATE counts SET kg=127 WHERE k=(SELECT min(k) FROM counts)");
  expect_fallback(want, "chk-2/wc/0.db.zst", "outside the key groups 0..63", 0, 1);
}

TEST(quick_fault_inner_wrong_subtask) {
  char *want[2];
  setup(want);
  tamper(1, "UPDATE sl_meta SET value='0' WHERE name='subtask'");
  expect_fallback(want, "chk-2/wc/1.db.zst", "holds subtask '0' in sl_meta where the MANIFEST "
                  "means '1'", 0, 1);
}

TEST(quick_fault_inner_state_table_missing) {
  char *want[2];
  setup(want);
  tamper(1, "DROP TABLE attrs");
  expect_fallback(want, "chk-2/wc/1.db.zst", "the table 'attrs' of state 'attrs' is missing", 0,
                  1);
}

TEST(quick_fault_inner_damaged_page) {
  char *want[2];
  setup(want);
  /* the b-tree page header of page 3 */
  damage_page(0, 2 * 4096, 12);
  expect_fallback(want, "chk-2/wc/0.db.zst", "fails quick_check: Page 3", 0, 1);
}

TEST(quick_fault_decompression_bomb) {
  char *want[2], out[256];
  setup(want);
  /* 256 MiB of zeros in a few kilobytes; the MANIFEST tells the truth */
  ASSERT_EQ(test_sh(out, sizeof out, "head -c 268435456 /dev/zero | zstd -q "
                    "--stream-size=268435456 -f -o '%s' 2>&1", snap2(1)), 0);
  reseal(1, 268435456);
  expect_fallback(want, "chk-2/wc/1.db.zst", "more than the limit of 67108864 bytes", 64u << 20,
                  0);
}

TEST(quick_fault_frames_lie_about_size) {
  char *want[2];
  uint64_t raw;
  setup(want);
  raw = raw_of(1);
  /* the MANIFEST says one page less than the frames hold */
  reseal(1, raw - 4096);
  expect_fallback(want, "chk-2/wc/1.db.zst", "holds frames of", 0, 0);
}

TEST(quick_fault_frame_without_size) {
  char *want[2], db[4096], out[512];
  setup(want);
  snprintf(db, sizeof db, "%s/tamper.db", test_dir());
  ASSERT_EQ(test_sh(out, sizeof out, "zstd -q -d -f '%s' -o '%s' && cat '%s' | zstd -q "
                    "--no-content-size > '%s'", snap2(1), db, db, snap2(1)), 0);
  reseal(1, raw_of(1));
  expect_fallback(want, "chk-2/wc/1.db.zst", "does not declare its content size", 0, 0);
}

/* Both checkpoints damaged: the restore fails and lists both reasons;
** the state directory is not touched. */
TEST(quick_fault_all_damaged) {
  char *want[2], one[4096], p[4096];
  sl_chkdir *cd;
  int64_t restored = 5;
  setup(want);
  ASSERT_EQ(unlink(snap2(1)), 0);
  sn_snap_path(one, sizeof one, 1, "wc", 0);
  ASSERT_EQ(truncate(one, 10), 0);
  cd = sn_chkdir(5, 0, NULL);
  SN_RC(sl_chkdir_restore(cd, 0, NULL, sn_rdir(), NULL, 0, &restored), SL_CORRUPT, cd);
  ASSERT_EQ(restored, 0);
  SN_MSG_HAS(cd, "no checkpoint in");
  SN_MSG_HAS(cd, "chk-2: ");
  SN_MSG_HAS(cd, "chk-1: ");
  SN_MSG_HAS(cd, "is missing");
  SN_MSG_HAS(cd, "has 10 bytes");
  su_db_path(p, sizeof p, sn_rdir(), "wc", 0);
  ASSERT(!su_exists(p));
  SN_OK(sl_chkdir_close(cd), NULL);
  for (int i = 0; i < 2; i++) free(want[i]);
}
