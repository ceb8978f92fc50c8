/*
** test_rel_util.h — helpers of the reliability tests (tests/test_rel_*.c):
** an independent CRC-32C, resealing a MANIFEST after a snapshot file was
** changed on purpose, and a small checkpoint directory of two checkpoints
** of one operator whose state is known exactly.
**
** Everything here is static inline; text returned is malloc'd (free()).
*/
#ifndef SL_TEST_REL_UTIL_H
#define SL_TEST_REL_UTIL_H

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

/* CRC-32C as docs/FORMAT.md defines it (reflected 0x82F63B78, init and
** final XOR 0xFFFFFFFF), bit by bit: slow, short and independent of the
** library's own table-driven code. */
static inline uint32_t rel_crc32c(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= b[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

/* splitmix64: a seeded, reproducible random sequence. */
static inline uint64_t rel_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Rewrites the `file <rel> ...` line of the MANIFEST at `manifest` with the
** size and CRC-32C of the file `path` as it is now (and raw size `raw` unless
** 0), then the checksum line, so that the MANIFEST is consistent again and
** only what is inside the snapshot file is wrong. */
static inline void rel_reseal(const char *manifest, const char *rel, const char *path,
                              uint64_t raw) {
  size_t n = 0, fn = 0;
  char *m = su_read_file(manifest, &n), *f = su_read_file(path, &fn);
  su_buf out = {0, 0, 0};
  char prefix[512], *line, *save = NULL;
  ASSERT_MSG(m && f, "cannot read %s or %s", manifest, path);
  snprintf(prefix, sizeof prefix, "file %s ", rel);
  su_addf(&out, "%s", "");
  for (line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "checksum ", 9) == 0) break;
    if (strncmp(line, prefix, strlen(prefix)) == 0) {
      unsigned long long osize = 0, oraw = 0;
      ASSERT(sscanf(line + strlen(prefix), "%llu %llu", &osize, &oraw) == 2);
      su_addf(&out, "%s%zu %llu %08x\n", prefix, fn, raw ? (unsigned long long)raw : oraw,
              rel_crc32c(f, fn));
    } else {
      su_addf(&out, "%s\n", line);
    }
  }
  su_addf(&out, "checksum %08x\n", rel_crc32c(out.p, out.n));
  su_write_file(manifest, out.p, out.n);
  free(out.p);
  free(m);
  free(f);
}

/* A report callback collecting what a checkpoint directory says. */
static inline void rel_report(void *ud, int rc, const char *msg) {
  su_addf((su_buf *)ud, "[%s] %s\n", rc == SL_OK ? "ok" : sl_errstr(rc), msg);
}

/* ------------------------------------------------------------------------ */
/* Two checkpoints of one operator "rel" (parallelism 1)                     */
/* ------------------------------------------------------------------------ */

static inline sl_state *rel_counts(sl_store *st) {
  sl_column k = su_col("k", SL_INTEGER), v = su_col("n", SL_INTEGER);
  sl_state_desc d;
  memset(&d, 0, sizeof d);
  d.name = "counts";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &k;
  d.n_value = 1;
  d.value = &v;
  return su_reg(st, &d);
}

/* The rows of `counts` in a state file, as text "k=n;..." (malloc'd). */
static inline char *rel_rows(const char *db) {
  sqlite3 *h = NULL;
  sqlite3_stmt *q = NULL;
  su_buf b = {0, 0, 0};
  ASSERT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
  ASSERT_MSG(sqlite3_prepare_v2(h, "SELECT k, n FROM counts ORDER BY k", -1, &q, NULL) ==
             SQLITE_OK, "%s: %s", db, sqlite3_errmsg(h));
  su_addf(&b, "%s", "");
  while (sqlite3_step(q) == SQLITE_ROW)
    su_addf(&b, "%lld=%lld;", (long long)sqlite3_column_int64(q, 0),
            (long long)sqlite3_column_int64(q, 1));
  sqlite3_finalize(q);
  sqlite3_close(h);
  return su_take(&b);
}

/* last_checkpoint of sl_meta of a state file. */
static inline int64_t rel_last_checkpoint(const char *db) {
  return su_sql_int(db, "SELECT value FROM sl_meta WHERE name = 'last_checkpoint'");
}

/* Takes checkpoint `id` of one store into cd and publishes it. */
static inline void rel_checkpoint(sl_chkdir *cd, sl_store *st, int64_t id) {
  const char *target = NULL;
  sl_snapshot *sn = NULL;
  sl_snapshot_info info;
  int rc = sl_chkdir_target(cd, id, NULL, &target);
  ASSERT_MSG(rc == SL_OK, "sl_chkdir_target: %s", sl_errstr(rc));
  ASSERT_OK(sl_snapshot_begin(st, target, id, SL_CHECKPOINT, NULL, &sn), st);
  rc = sl_snapshot_write(sn);
  ASSERT_MSG(rc == SL_OK, "sl_snapshot_write: %s", sl_errstr(rc));
  ASSERT(sl_snapshot_get_info(sn, &info) == SL_OK);
  ASSERT_OK(sl_snapshot_end(sn), st);
  rc = sl_chkdir_publish(cd, id, NULL, &info, 1);
  ASSERT_MSG(rc == SL_OK, "sl_chkdir_publish: %s", sl_errstr(rc));
}

/* <test dir>/chk with checkpoints 1 (keys 0..299 -> k*2) and 2 (keys
** 0..399 -> k*3); want1/want2 get their rows (may be NULL). */
static inline void rel_two_checkpoints(char **want1, char **want2) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  sl_store *st = su_open("rel", 0, 1, NULL);
  sl_state *s = rel_counts(st);
  char dir[4096], db[4096];
  sl_chkdir_config_init(&cfg);
  cfg.keep = 5;
  su_pathf(dir, sizeof dir, "%s/chk", test_dir());
  ASSERT(sl_chkdir_open(dir, &cfg, &cd) == SL_OK);
  su_db_path(db, sizeof db, su_dir(), "rel", 0);
  for (int round = 1; round <= 2; round++) {
    for (int64_t k = 0; k < (round == 1 ? 300 : 400); k++) {
      sl_value v = sl_int(k * (round + 1));
      su_key_int(st, k);
      ASSERT_OK(sl_value_update(s, &v), st);
    }
    su_commit(st);
    if (round == 1 && want1) *want1 = rel_rows(db);
    if (round == 2 && want2) *want2 = rel_rows(db);
    rel_checkpoint(cd, st, round);
  }
  su_commit(st);
  su_close(st);
  sl_chkdir_close(cd);
}

static inline const char *rel_path(const char *fmt, const char *arg) {
  static char buf[4][4096];
  static int i;
  char rel[1024];
  i = (i + 1) % 4;
  snprintf(rel, sizeof rel, fmt, arg);
  return su_pathf(buf[i], sizeof buf[i], "%s/%s", test_dir(), rel);
}

#endif
