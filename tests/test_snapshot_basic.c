/*
** test_snapshot_basic.c — the checkpoint of one store: the .db.zst holds
** exactly the state of the synchronous part (checked with the zstd and
** sqlite3 shells), with the size and CRC-32C it reports, streamed without an
** uncompressed copy or through one when asked; a writer thread that goes on
** while the file is written changes nothing in it; sl_checkpoints and
** last_checkpoint record it; bad calls are refused; CRC-32C vectors.
*/
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "test_snapshot_util.h"

static void fill(sl_store *st, const sn_states *s, int n, int round) {
  for (int k = 0; k < n; k++) sn_put_key(st, s, k, round);
  for (int i = 0; i < 20; i++) {
    sl_value off[2], tag;
    char t[16];
    off[0] = sl_int(i);
    off[1] = sl_int(1000 + i + round);
    ASSERT_OK(sl_list_add(s->offsets, off), st);
    snprintf(t, sizeof t, "t%d", i);
    tag = sl_text(t);
    ASSERT_OK(sl_list_add(s->seen, &tag), st);
  }
  for (int i = 0; i < 5; i++) {
    sl_value k, v;
    char nm[16];
    snprintf(nm, sizeof nm, "r%d", i);
    k = sl_text(nm);
    v = sl_int(i * 7 + round);
    ASSERT_OK(sl_map_put(s->rules, &k, &v), st);
  }
}

static uint32_t file_crc(const char *path, size_t *n) {
  char *p = su_read_file(path, n);
  uint32_t c;
  ASSERT_MSG(p != NULL, "cannot read %s", path);
  c = slSnapCrc(0, p, *n);
  free(p);
  return c;
}

/* Decompresses with the zstd shell and checks with the sqlite3 shell. */
static void shell_check(const char *zst, const char *db) {
  char out[256];
  int rc = test_sh(out, sizeof out, "zstd -q -d -f '%s' -o '%s' 2>&1", zst, db);
  ASSERT_MSG(rc == 0, "zstd -d %s failed (%d): %s", zst, rc, out);
  rc = test_sh(out, sizeof out, "sqlite3 '%s' 'PRAGMA integrity_check' 2>&1", db);
  ASSERT_MSG(rc == 0, "sqlite3 failed (%d): %s", rc, out);
  ASSERT_STR(out, "ok\n");
}

static void roundtrip(int flags, int level) {
  sl_store *st = su_open("wc", 0, 1, NULL);
  sn_states s;
  sl_snapshot_config cfg;
  sl_snapshot *sn = NULL;
  sl_snapshot_info info;
  char target[2048], zst[4096], db[4096], work[4096];
  char *want, *got;
  size_t n = 0;
  sn_register(st, &s);
  fill(st, &s, 5000, 0);
  snprintf(target, sizeof target, "%s/target", test_dir());
  sl_snapshot_config_init(&cfg);
  ASSERT_EQ(cfg.level, 3);
  cfg.flags = flags;
  if (level) cfg.level = level;
  ASSERT_OK(sl_snapshot_begin(st, target, 7, SL_CHECKPOINT, &cfg, &sn), st);
  ASSERT(sn != NULL);
  su_db_path(work, sizeof work, su_dir(), "wc", 0);
  fill(st, &s, 100, 1); /* the owner goes on (in its cache) */
  SN_OK(sl_snapshot_write(sn), sn);
  /* the write committed what the synchronous part froze, and only that */
  want = su_dump(work);
  SN_RC(sl_snapshot_write(sn), SL_MISUSE, sn);
  SN_OK(sl_snapshot_get_info(sn, &info), sn);
  ASSERT_EQ(info.id, 7);
  ASSERT_EQ(info.kind, SL_CHECKPOINT);
  ASSERT_STR(info.op, "wc");
  ASSERT_EQ(info.subtask, 0);
  ASSERT_EQ(info.parallelism, 1);
  ASSERT_EQ(info.max_parallelism, 128);
  ASSERT_EQ(info.streamed, !(flags & SL_SNAPSHOT_NO_STREAM));
  ASSERT(info.sync_us >= 0 && info.async_us > 0);
  ASSERT(info.started_ms > 1600000000000LL);
  snprintf(zst, sizeof zst, "%s/wc/0.db.zst", target);
  ASSERT_EQ(file_crc(zst, &n), info.checksum);
  ASSERT_EQ(n, info.bytes);
  ASSERT(info.bytes < info.raw_bytes / 2);
  ASSERT_EQ(info.raw_bytes % 4096, 0);
  if (info.streamed) {
    ASSERT_EQ(info.peak_disk_bytes, info.bytes); /* only the compressed file itself */
  } else {
    ASSERT_EQ(info.peak_disk_bytes, info.bytes + info.raw_bytes);
  }
  printf("level %d %s: raw %llu bytes -> %llu bytes, peak extra disk %llu bytes, sync %lld us, "
         "async %lld us\n", cfg.level, info.streamed ? "streamed" : "via a copy",
         (unsigned long long)info.raw_bytes, (unsigned long long)info.bytes,
         (unsigned long long)info.peak_disk_bytes, (long long)info.sync_us,
         (long long)info.async_us);
  /* no temporary file is left */
  snprintf(db, sizeof db, "%s/wc/0.db.zst.tmp", target);
  ASSERT(!su_exists(db));
  snprintf(db, sizeof db, "%s/wc/0.db.raw.tmp", target);
  ASSERT(!su_exists(db));
  ASSERT_OK(sl_snapshot_end(sn), st);
  su_commit(st);
  /* the history, readable with sqlite3 */
  ASSERT_EQ(su_sql_int(work, "SELECT count(*) FROM sl_checkpoints WHERE id=7 AND "
                       "kind='checkpoint'"), 1);
  ASSERT_EQ(su_sql_int(work, "SELECT bytes FROM sl_checkpoints WHERE id=7"), (long long)info.bytes);
  ASSERT_EQ(su_sql_int(work, "SELECT raw_bytes FROM sl_checkpoints WHERE id=7"),
            (long long)info.raw_bytes);
  ASSERT_EQ(su_sql_int(work, "SELECT started_ms FROM sl_checkpoints WHERE id=7"),
            (long long)info.started_ms);
  ASSERT_EQ(su_sql_int(work, "SELECT async_ms FROM sl_checkpoints WHERE id=7"),
            (info.async_us + 500) / 1000);
  ASSERT_EQ(su_sql_int(work, "SELECT value FROM sl_meta WHERE name='last_checkpoint'"), 7);
  su_close(st);
  /* the file is a plain zstd stream of the exact database */
  snprintf(db, sizeof db, "%s/x.db", test_dir());
  shell_check(zst, db);
  got = su_dump(db);
  ASSERT_TEXT(got, want);
  free(want);
}

TEST(quick_snapshot_streamed_roundtrip) { roundtrip(0, 0); }

TEST(snapshot_via_copy_roundtrip) { roundtrip(SL_SNAPSHOT_NO_STREAM, 0); }

TEST(snapshot_levels) {
  roundtrip(0, 1);
}

TEST(snapshot_level_19) {
  roundtrip(0, 19);
}

/* A writer thread-free check of content: the owner commits many times
** while another thread writes the snapshot. */
typedef struct bg {
  sl_snapshot *sn;
  int rc;
  volatile int done;
} bg;

static void *bg_write(void *arg) {
  bg *b = (bg *)arg;
  b->rc = sl_snapshot_write(b->sn);
  b->done = 1;
  return NULL;
}

static void concurrent(int flags) {
  sl_config c;
  sl_store *st;
  sn_states s;
  sl_snapshot_config cfg;
  sl_snapshot *sn = NULL;
  sl_snapshot_info info;
  char target[2048], zst[4096], db[4096], work[4096];
  char *want, *got;
  pthread_t t;
  bg b;
  int rounds = 0;
  sl_config_init(&c);
  c.memory_budget = 1u << 20;
  st = su_open("wc", 0, 1, &c);
  sn_register(st, &s);
  fill(st, &s, 30000, 0);
  snprintf(target, sizeof target, "%s/target", test_dir());
  sl_snapshot_config_init(&cfg);
  cfg.flags = flags;
  cfg.level = 9; /* slower, so the writer overlaps it for longer */
  ASSERT_OK(sl_snapshot_begin(st, target, 3, SL_CHECKPOINT, &cfg, &sn), st);
  /* a commit of the owner settles the frozen changes first (here, before
  ** the writer thread starts: it finds them committed and pinned) */
  su_commit(st);
  su_db_path(work, sizeof work, su_dir(), "wc", 0);
  want = su_dump(work);
  memset(&b, 0, sizeof b);
  b.sn = sn;
  ASSERT(pthread_create(&t, NULL, bg_write, &b) == 0);
  /* the owner keeps writing and committing: changed values, new keys,
  ** deletions */
  while (!b.done || rounds < 3) {
    for (int k = 0; k < 2000; k++) sn_put_key(st, &s, (rounds * 2000 + k) % 40000, rounds + 1);
    for (int k = 0; k < 200; k++) {
      su_key_int(st, k + rounds);
      ASSERT_OK(sl_state_clear(s.events), st);
    }
    su_commit(st);
    rounds++;
  }
  ASSERT(pthread_join(t, NULL) == 0);
  SN_OK(b.rc, sn);
  SN_OK(sl_snapshot_get_info(sn, &info), sn);
  ASSERT_OK(sl_snapshot_end(sn), st);
  printf("%d commits of the owner while the snapshot was written (%s, %lld us)\n", rounds,
         info.streamed ? "streamed" : "via a copy", (long long)info.async_us);
  su_commit(st);
  su_close(st);
  snprintf(zst, sizeof zst, "%s/wc/0.db.zst", target);
  snprintf(db, sizeof db, "%s/x.db", test_dir());
  shell_check(zst, db);
  got = su_dump(db);
  ASSERT_TEXT(got, want);
  free(want);
}

TEST(snapshot_concurrent_writer_streamed) { concurrent(0); }

TEST(snapshot_concurrent_writer_via_copy) { concurrent(SL_SNAPSHOT_NO_STREAM); }

TEST(quick_snapshot_bad_calls) {
  sl_store *st = su_open("wc", 0, 1, NULL);
  sl_snapshot_config cfg;
  sl_snapshot *sn = (sl_snapshot *)1;
  char target[4096];
  snprintf(target, sizeof target, "%s/target", test_dir());
  ASSERT_RC(sl_snapshot_begin(NULL, target, 1, SL_CHECKPOINT, NULL, &sn), SL_MISUSE, NULL);
  ASSERT_RC(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, NULL), SL_MISUSE, st);
  ASSERT_RC(sl_snapshot_begin(st, NULL, 1, SL_CHECKPOINT, NULL, &sn), SL_MISUSE, st);
  ASSERT(sn == NULL);
  ASSERT_ERRMSG_HAS(st, "target directory");
  ASSERT_RC(sl_snapshot_begin(st, target, 0, SL_CHECKPOINT, NULL, &sn), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "id 0");
  ASSERT_RC(sl_snapshot_begin(st, target, 1, 9, NULL, &sn), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "kind 9");
  sl_snapshot_config_init(&cfg);
  cfg.level = 23;
  ASSERT_RC(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, &cfg, &sn), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "level 23");
  cfg.level = 3;
  cfg.flags = 0x100;
  ASSERT_RC(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, &cfg, &sn), SL_MISUSE, st);
  ASSERT_ERRMSG_HAS(st, "flags");
  ASSERT(!su_exists(target));
  ASSERT_RC(sl_snapshot_write(NULL), SL_MISUSE, NULL);
  ASSERT_RC(sl_snapshot_get_info(NULL, NULL), SL_MISUSE, NULL);
  ASSERT_OK(sl_snapshot_end(NULL), NULL);
  /* info before the write; end without a write records nothing */
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  {
    sl_snapshot_info info;
    SN_RC(sl_snapshot_get_info(sn, &info), SL_MISUSE, sn);
    SN_MSG_HAS(sn, "not been written");
  }
  ASSERT_OK(sl_snapshot_end(sn), st);
  su_commit(st);
  {
    char work[4096];
    su_db_path(work, sizeof work, su_dir(), "wc", 0);
    ASSERT_EQ(su_sql_int(work, "SELECT count(*) FROM sqlite_schema WHERE name='sl_checkpoints'"),
              0);
  }
  su_close(st);
}

/* A target directory that cannot be made: the file of that name exists. */
TEST(quick_snapshot_target_is_a_file) {
  sl_store *st = su_open("wc", 0, 1, NULL);
  sl_snapshot *sn = NULL;
  char target[4096];
  snprintf(target, sizeof target, "%s/target", test_dir());
  su_write_file(target, "x", 1);
  ASSERT_RC(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), SL_IOERR, st);
  ASSERT(sn == NULL);
  ASSERT_ERRMSG_HAS(st, "target");
  su_close(st);
}

/* The write fails (its directory vanished): the message reaches the owner
** at the end, and no row is recorded. */
TEST(snapshot_write_failure_reported) {
  sl_store *st = su_open("wc", 0, 1, NULL);
  sl_snapshot *sn = NULL;
  char target[4096], cmd[4200];
  snprintf(target, sizeof target, "%s/target", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 4, SL_CHECKPOINT, NULL, &sn), st);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", target);
  ASSERT_EQ(test_sh(NULL, 0, "%s", cmd), 0);
  SN_RC(sl_snapshot_write(sn), SL_IOERR, sn);
  SN_MSG_HAS(sn, "cannot create");
  ASSERT_RC(sl_snapshot_end(sn), SL_IOERR, st);
  ASSERT_ERRMSG_HAS(st, "was not written");
  su_commit(st);
  su_close(st);
}

/* CRC-32C: the check value of the catalogue and the combination. */
TEST(quick_snapshot_crc32c) {
  const char *s = "123456789";
  unsigned char buf[1000];
  ASSERT_EQ(slSnapCrc(0, s, 9), 0xE3069283u);
  ASSERT_EQ(slSnapCrc(0, "", 0), 0);
  ASSERT_EQ(slSnapCrc(slSnapCrc(0, s, 4), s + 4, 5), 0xE3069283u);
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 7 + 3);
  for (size_t cut = 0; cut <= sizeof buf; cut += 37) {
    uint32_t a = slSnapCrc(0, buf, cut), b = slSnapCrc(0, buf + cut, sizeof buf - cut);
    ASSERT_EQ(slSnapCrcCombine(a, b, sizeof buf - cut), slSnapCrc(0, buf, sizeof buf));
  }
}

/* The streaming VFS refuses pages out of order, and says so. */
TEST(quick_snapshot_stream_out_of_order) {
  slZvfs v;
  slZOut z;
  sl_fs fs;
  char err[SL_ERRMSG_MAX], path[4096];
  unsigned char page1[4096], page[4096], obuf[1 << 17];
  sqlite3_file *f;
  int flags = 0, fd;
  snprintf(path, sizeof path, "%s/out.zst", test_dir());
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  ASSERT(fd >= 0);
  memset(&z, 0, sizeof z);
  slSnapFsInit(&fs, NULL);
  z.fs = &fs;
  z.fd = fd;
  z.path = path;
  z.cctx = ZSTD_createCCtx();
  z.level = 3;
  z.obuf = obuf;
  z.ocap = sizeof obuf;
  SN_OK(slSnapZBegin(err, &z, 3 * 4096), NULL);
  SN_OK(slSnapZvfsInit(err, &v, &z, 4096, 4 * 4096, page1), NULL);
  f = (sqlite3_file *)malloc((size_t)v.base.szOsFile);
  ASSERT_EQ(v.base.xOpen(&v.base, "x", f, SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE, &flags),
            SQLITE_OK);
  memset(page, 0xab, sizeof page);
  ASSERT_EQ(f->pMethods->xWrite(f, page, 4096, 4096), SQLITE_OK);    /* page 2 */
  ASSERT_EQ(f->pMethods->xWrite(f, page, 4096, 0), SQLITE_OK);       /* page 1, kept */
  ASSERT_EQ(f->pMethods->xWrite(f, page, 4096, 3 * 4096), SQLITE_IOERR_WRITE); /* 4 before 3 */
  ASSERT(v.failed);
  ASSERT_HAS(v.why, "out of order");
  ASSERT_EQ(v.io_rc, 0);
  f->pMethods->xClose(f);
  free(f);
  slSnapZvfsShutdown(&v);
  ZSTD_freeCCtx(z.cctx);
  close(fd);
}

/* sl_snapshot_extract(): a snapshot file back to its database, bounded. */
TEST(quick_snapshot_extract) {
  sl_store *st = su_open("wc", 0, 1, NULL);
  sn_states s;
  sl_snapshot *sn = NULL;
  char target[2048], zst[4096], db[4096], work[4096], out[256], *want;
  sn_register(st, &s);
  fill(st, &s, 300, 0);
  snprintf(target, sizeof target, "%s/target", test_dir());
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, NULL, &sn), st);
  su_db_path(work, sizeof work, su_dir(), "wc", 0);
  SN_OK(sl_snapshot_write(sn), sn);
  want = su_dump(work);
  ASSERT_OK(sl_snapshot_end(sn), st);
  su_close(st);
  snprintf(zst, sizeof zst, "%s/wc/0.db.zst", target);
  snprintf(db, sizeof db, "%s/x.db", test_dir());
  ASSERT_OK(sl_snapshot_extract(zst, db, 0), NULL);
  ASSERT_TEXT(su_dump(db), want);
  free(want);
  /* over the limit: refused, nothing left */
  ASSERT_RC(sl_snapshot_extract(zst, db, 4096), SL_CORRUPT, NULL);
  ASSERT(!su_exists(db));
  /* not a snapshot; a truncated one; bad arguments */
  ASSERT_RC(sl_snapshot_extract(work, db, 0), SL_CORRUPT, NULL);
  ASSERT_EQ(test_sh(out, sizeof out, "head -c 3000 '%s' > '%s/cut.zst'", zst, test_dir()), 0);
  snprintf(zst, sizeof zst, "%s/cut.zst", test_dir());
  ASSERT_RC(sl_snapshot_extract(zst, db, 0), SL_CORRUPT, NULL);
  ASSERT(!su_exists(db));
  ASSERT_RC(sl_snapshot_extract(NULL, db, 0), SL_MISUSE, NULL);
  ASSERT_RC(sl_snapshot_extract(zst, "", 0), SL_MISUSE, NULL);
  ASSERT_RC(sl_snapshot_extract("missing.zst", db, 0), SL_CORRUPT, NULL);
}
