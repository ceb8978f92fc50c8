/*
** fuzz_snapshot.c — the fuzz entry point for what statelite reads back from
** a checkpoint directory: the MANIFEST parser and the snapshot loader.
**
** The first byte of an input chooses what the rest is:
**   even: a MANIFEST, written as chk-1/MANIFEST beside a valid snapshot
**         file rel/0.db.zst;
**   odd:  a snapshot file, written as chk-1/rel/0.db.zst under a MANIFEST
**         that matches its size and CRC-32C (so that the zstd frame walk,
**         the decoder and the checks of the database inside are reached),
**         with the raw size its frames declare together.
** Then sl_chkdir_verify() and sl_chkdir_restore() run on it. Both must
** return a typed result code and leave no .restore directory; a restore
** that succeeds must have given a state file that opens with the right
** application_id. Anything else is a finding.
**
** This file is compiled two ways: with -DSL_FUZZ_LIBFUZZER into a libFuzzer
** program (make fuzz), and included by tests/test_rel_fuzz.c, which replays
** tests/fuzz/corpus and tests/fuzz/regressions through the same function in
** `make test`.
*/
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "statelite.h"

/* Paths here are built from a work directory of unknown length; a path that
** does not fit is cut short and then simply not found. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* A valid 1-page snapshot for the MANIFEST mode: made once per work dir. */
static char fz_err[1024];

static uint32_t fz_crc32c(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= b[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

static int fz_write(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  if (n && fwrite(p, 1, n, f) != n) {
    fclose(f);
    return -1;
  }
  return fclose(f) == 0 ? 0 : -1;
}

/* Removes a file or a directory tree (no symlinks are followed). */
static int fz_rm_rf(const char *path) {
  struct stat sb;
  DIR *d;
  struct dirent *e;
  if (lstat(path, &sb) != 0) return 0;
  if (!S_ISDIR(sb.st_mode)) return unlink(path);
  d = opendir(path);
  if (d) {
    while ((e = readdir(d)) != NULL) {
      char sub[4300];
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      fz_rm_rf(sub);
    }
    closedir(d);
  }
  return rmdir(path);
}

static int fz_fail(const char *fmt, const char *a, int rc) {
  snprintf(fz_err, sizeof fz_err, fmt, a, sl_errstr(rc));
  return -1;
}

static int fz_typed(int rc) {
  return rc == SL_OK || rc == SL_NOTFOUND || rc == SL_CORRUPT || rc == SL_MISMATCH ||
         rc == SL_IOERR || rc == SL_NOMEM || rc == SL_FULL;
}

/* A restored file must be a statelite state file. */
static int fz_check_restored(const char *rdir) {
  char path[4200];
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  int ok = 0;
  snprintf(path, sizeof path, "%s/rel/0.db", rdir);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 0) == SL_APPLICATION_ID)
    ok = 1;
  sqlite3_finalize(q);
  sqlite3_close(db);
  return ok ? 0 : fz_fail("restore succeeded but %s is not a statelite file (%s)", path, SL_OK);
}

/* Runs one input in the directory `work` (which must exist). Returns 0, or
** -1 with the finding in fz_err. */
static int fz_one(const char *work, const uint8_t *data, size_t size) {
  char chk[4200], dir[4200], path[4200], rdir[4200], m[1024];
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  const uint8_t *body = size ? data + 1 : data;
  size_t n = size ? size - 1 : 0;
  int64_t restored = 0;
  int rc, mode = size ? (data[0] & 1) : 0, result = 0;
  struct stat sb;
  snprintf(chk, sizeof chk, "%s/chk", work);
  snprintf(dir, sizeof dir, "%s/chk-1", chk);
  snprintf(rdir, sizeof rdir, "%s/restored", work);
  fz_rm_rf(chk);
  fz_rm_rf(rdir);
  snprintf(path, sizeof path, "%s/rel", dir);
  if (mkdir(chk, 0755) || mkdir(dir, 0755) || mkdir(path, 0755))
    return fz_fail("cannot make %s (%s)", path, SL_IOERR);
  snprintf(path, sizeof path, "%s/rel/0.db.zst", dir);
  if (mode == 0) {
    /* a 512-byte zero page, compressed: a frame that declares its size */
    static unsigned char raw[512], z[1024];
    size_t zn = ZSTD_compress(z, sizeof z, raw, sizeof raw, 1);
    if (ZSTD_isError(zn) || fz_write(path, z, zn)) return fz_fail("%s (%s)", "zstd", SL_ERROR);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    if (fz_write(path, body, n)) return fz_fail("cannot write %s (%s)", path, SL_IOERR);
  } else {
    unsigned long long raw = 0;
    size_t k, at = 0;
    while (at < n) { /* add up what the frames declare */
      size_t fs = ZSTD_findFrameCompressedSize(body + at, n - at);
      unsigned long long cs = ZSTD_getFrameContentSize(body + at, n - at);
      if (ZSTD_isError(fs) || cs == ZSTD_CONTENTSIZE_UNKNOWN || cs == ZSTD_CONTENTSIZE_ERROR ||
          cs > (1ull << 40)) {
        raw = 0;
        break;
      }
      raw += cs;
      at += fs;
    }
    if (raw == 0) raw = 4096;
    if (fz_write(path, body, n)) return fz_fail("cannot write %s (%s)", path, SL_IOERR);
    k = (size_t)snprintf(m, sizeof m, "statelite-manifest 1\nid 1\nkind checkpoint\nname -\n"
                         "time_ms 1700000000000\nformat 1\noperator rel 1 128\n"
                         "file rel/0.db.zst %zu %llu %08x\n", n, raw, fz_crc32c(body, n));
    snprintf(m + k, sizeof m - k, "checksum %08x\n", fz_crc32c(m, k));
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    if (fz_write(path, m, strlen(m))) return fz_fail("cannot write %s (%s)", path, SL_IOERR);
  }
  sl_chkdir_config_init(&cfg);
  cfg.keep = 5;
  cfg.max_raw_bytes = 8u << 20;
  rc = sl_chkdir_open(chk, &cfg, &cd);
  if (rc != SL_OK) {
    sl_chkdir_close(cd);
    return fz_fail("sl_chkdir_open(%s): %s", chk, rc);
  }
  rc = sl_chkdir_verify(cd, 1, NULL);
  if (!fz_typed(rc) || strlen(sl_errmsg(cd)) == 0) result = fz_fail("verify of %s: %s", dir, rc);
  if (result == 0) {
    rc = sl_chkdir_restore(cd, 0, NULL, rdir, NULL, 0, &restored);
    if (!fz_typed(rc)) result = fz_fail("restore of %s: %s", dir, rc);
    else if (rc == SL_OK && restored != 1) result = fz_fail("restore of %s: %s, not id 1", dir, rc);
    else if (rc == SL_OK) result = fz_check_restored(rdir);
    else if (rc != SL_CORRUPT && rc != SL_NOTFOUND && rc != SL_MISMATCH)
      result = fz_fail("restore of %s gave %s, not a verdict on the input", dir, rc);
  }
  snprintf(path, sizeof path, "%s/rel/.restore", rdir);
  if (result == 0 && stat(path, &sb) == 0) result = fz_fail("%s left behind (%s)", path, rc);
  sl_chkdir_close(cd);
  return result;
}

#ifdef SL_FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_work[256];

static void fz_cleanup(void) {
  if (fz_work[0]) fz_rm_rf(fz_work);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fz_work[0]) {
    const char *t = getenv("TMPDIR");
    snprintf(fz_work, sizeof fz_work, "%s/sl-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fz_work)) abort();
    atexit(fz_cleanup);
  }
  if (fz_one(fz_work, data, size) != 0) {
    fprintf(stderr, "finding: %s\n", fz_err);
    abort();
  }
  return 0;
}
#endif
