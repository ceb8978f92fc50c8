/*
** snapshot.c — the checkpoint of one store: the synchronous part (the dirty
** cache entries frozen into a batch), the asynchronous part (the batch
** committed, a read connection pinned to that commit, and the online backup
** streamed into a zstd file, or through an uncompressed temporary copy when
** streaming is impossible) and the end, which records the checkpoint in the
** state file.
*/
#include <stdio.h>
#include <string.h>

#include "snapshot/snapshot.h"
#include "store/history.h"

/* Returned by the streaming attempt when SQLite wrote out of order. */
#define SNAP_RETRY (-1)

void sl_snapshot_config_init(sl_snapshot_config *cfg) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->level = 3;
}

static void snapFree(sl_snapshot *sn) {
  sl_allocator a;
  if (!sn) return;
  a = sn->alloc;
  /* changes frozen and not yet committed (a snapshot never written) are
  ** committed now: they are the store's, whatever becomes of the snapshot */
  if (sn->frozen && atomic_load(&sn->state) == SL_SNAP_BEGUN) sn->frozen->hook = NULL;
  slStoreFrozenFree(sn->st, sn->frozen);
  if (sn->rdb) sqlite3_close(sn->rdb);
  ZSTD_freeCCtx(sn->cctx);
  slFree(&a, sn->dir);
  slFree(&a, sn->final_path);
  slFree(&a, sn->tmp_path);
  slFree(&a, sn->raw_path);
  slFree(&a, sn->page1);
  slFree(&a, sn->head);
  slFree(&a, sn->iobuf);
  slFree(&a, sn->obuf);
  sn->hdr.magic = SL_MAGIC_DEAD;
  slFree(&a, sn);
}

/* One integer from a PRAGMA or query on db; err (SL_ERRMSG_MAX bytes) says
** why it failed. */
static int snapPragma(char *err, const char *path, sqlite3 *db, const char *sql, int64_t *out) {
  sqlite3_stmt *q = NULL;
  int src = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
  if (src == SQLITE_OK) {
    src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
      *out = sqlite3_column_int64(q, 0);
      src = SQLITE_OK;
    }
  }
  sqlite3_finalize(q);
  if (src != SQLITE_OK)
    return slError(err, slStoreSqlRc(src),
                   "cannot pin the snapshot's read transaction on %s: %s", path,
                   sqlite3_errmsg(db));
  return SL_OK;
}

/* Runs right after the frozen changes are committed, before the owner may
** write again (on whichever thread committed them): a read connection with
** a read transaction of exactly that commit. Uses no store memory. */
static int snapPin(void *ud) {
  sl_snapshot *sn = ud;
  const char *path = sn->st->path;
  int64_t v = 0;
  int src, rc;
  src = sqlite3_open_v2(path, &sn->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        sn->st->cfg.vfs);
  if (src != SQLITE_OK)
    return slError(sn->pin_err, slStoreSqlRc(src),
                   "cannot open a read connection to %s: %s", path,
                   sn->rdb ? sqlite3_errmsg(sn->rdb) : sqlite3_errstr(src));
  sqlite3_db_config(sn->rdb, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
  sqlite3_db_config(sn->rdb, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
  sqlite3_busy_timeout(sn->rdb, 5000);
  /* the backup reads every page once, in order: a small page cache will do */
  sqlite3_exec(sn->rdb, "PRAGMA cache_size=32", NULL, NULL, NULL);
  src = sqlite3_exec(sn->rdb, "BEGIN", NULL, NULL, NULL);
  if (src != SQLITE_OK)
    return slError(sn->pin_err, slStoreSqlRc(src), "cannot begin the snapshot's read transaction: %s",
                   sqlite3_errmsg(sn->rdb));
  rc = snapPragma(sn->pin_err, path, sn->rdb, "SELECT count(*) FROM sl_meta", &v);
  if (rc == SL_OK) rc = snapPragma(sn->pin_err, path, sn->rdb, "PRAGMA page_size", &v);
  if (rc == SL_OK && (uint32_t)v != sn->pgsz)
    rc = slError(sn->pin_err, SL_CORRUPT, "%s changed its page size from %u to %lld", path,
                 sn->pgsz, (long long)v);
  if (rc == SL_OK) rc = snapPragma(sn->pin_err, path, sn->rdb, "PRAGMA page_count", &v);
  if (rc) return rc;
  sn->npages = (uint64_t)v;
  if (sn->npages < 1)
    return slError(sn->pin_err, SL_CORRUPT, "%s has an impossible page count %llu", path,
                   (unsigned long long)sn->npages);
  sn->info.raw_bytes = sn->npages * sn->pgsz;
  return SL_OK;
}

int sl_snapshot_begin(sl_store *st, const char *target, int64_t id, int kind,
                      const sl_snapshot_config *cfg, sl_snapshot **out) {
  sl_snapshot_config dflt;
  sl_snapshot *sn = NULL;
  int64_t t0 = slSnapMonoUs(), started = slNowMs(), v = 0;
  int rc = slStoreUsable(st);
  char err[SL_ERRMSG_MAX];
  if (rc) return rc;
  if (!out) return slStoreErr(st, SL_MISUSE, "sl_snapshot_begin: the output pointer is NULL");
  *out = NULL;
  if (!cfg) {
    sl_snapshot_config_init(&dflt);
    cfg = &dflt;
  }
  if (!target || !target[0])
    return slStoreErr(st, SL_MISUSE, "sl_snapshot_begin: the target directory is NULL or empty");
  if (id < 1) return slStoreErr(st, SL_MISUSE, "sl_snapshot_begin: id %lld is not >= 1", (long long)id);
  if (kind != SL_CHECKPOINT && kind != SL_SAVEPOINT)
    return slStoreErr(st, SL_MISUSE, "sl_snapshot_begin: kind %d is neither SL_CHECKPOINT nor "
                      "SL_SAVEPOINT", kind);
  if (cfg->level < 1 || cfg->level > 19)
    return slStoreErr(st, SL_MISUSE, "sl_snapshot_begin: zstd level %d is outside 1..19", cfg->level);
  if (cfg->flags & ~SL_SNAPSHOT_NO_STREAM)
    return slStoreErr(st, SL_MISUSE, "sl_snapshot_begin: unknown flags 0x%x", (unsigned)cfg->flags);
  if (strlen(target) > 3000)
    return slStoreErr(st, SL_MISUSE, "sl_snapshot_begin: the target directory path is too long");

  /* the synchronous part: the dirty entries are frozen into a batch that
  ** the asynchronous part commits and pins (snapPin) */
  rc = slStoreWritable(st);
  if (rc == SL_OK) rc = slStoreSettle(st);
  if (rc) return rc;
  sn = slMalloc(&st->alloc, sizeof *sn);
  if (!sn) return slStoreErr(st, SL_NOMEM, "out of memory");
  memset(sn, 0, sizeof *sn);
  sn->hdr.magic = SL_MAGIC_SNAPSHOT;
  sn->hdr.errmsg = sn->errmsg;
  sn->alloc = st->alloc;
  sn->st = st;
  atomic_init(&sn->state, SL_SNAP_BEGUN);
  sn->level = cfg->level;
  sn->flags = cfg->flags;
  slSnapFsInit(&sn->fs, cfg->fs);
  sn->dir = slSnapPrintf(&sn->alloc, "%s/%s", target, st->op);
  sn->final_path = slSnapPrintf(&sn->alloc, "%s/%s/%d.db.zst", target, st->op, st->subtask);
  sn->tmp_path = slSnapPrintf(&sn->alloc, "%s/%s/%d.db.zst.tmp", target, st->op, st->subtask);
  sn->raw_path = slSnapPrintf(&sn->alloc, "%s/%s/%d.db.raw.tmp", target, st->op, st->subtask);
  if (!sn->dir || !sn->final_path || !sn->tmp_path || !sn->raw_path) {
    rc = slStoreErr(st, SL_NOMEM, "out of memory");
    goto fail;
  }
  rc = slSnapMkdirs(err, &sn->fs, sn->dir, 0);
  if (rc) {
    slStoreErr(st, rc, "%s", err);
    goto fail;
  }
  rc = snapPragma(err, st->path, st->db, "PRAGMA page_size", &v);
  if (rc) {
    slStoreErr(st, rc, "%s", err);
    goto fail;
  }
  sn->pgsz = (uint32_t)v;
  if (sn->pgsz < 512 || sn->pgsz > 65536 || (sn->pgsz & (sn->pgsz - 1))) {
    rc = slStoreErr(st, SL_CORRUPT, "%s has an impossible page size %u", st->path, sn->pgsz);
    goto fail;
  }
  sn->page1 = slMalloc(&sn->alloc, sn->pgsz);
  sn->head = slMalloc(&sn->alloc, slSnapHeadReserve(sn->pgsz));
  sn->iobuf = slMalloc(&sn->alloc, SL_SNAP_IOBUF);
  sn->obuf = slMalloc(&sn->alloc, ZSTD_CStreamOutSize());
  sn->cctx = ZSTD_createCCtx();
  if (!sn->page1 || !sn->head || !sn->iobuf || !sn->obuf || !sn->cctx) {
    rc = slStoreErr(st, SL_NOMEM, "out of memory");
    goto fail;
  }
  sn->info.id = id;
  sn->info.kind = kind;
  snprintf(sn->info.op, sizeof sn->info.op, "%s", st->op);
  sn->info.subtask = st->subtask;
  sn->info.parallelism = st->parallelism;
  sn->info.max_parallelism = st->maxp;
  sn->info.started_ms = started;
  rc = slStoreFreeze(st, snapPin, sn, &sn->frozen);
  if (rc) goto fail;
  sn->info.sync_us = slSnapMonoUs() - t0;
  st->snapshots++;
  *out = sn;
  return SL_OK;
fail:
  snapFree(sn);
  return rc;
}

/* Opens the destination of a backup and runs it to the end. */
static int snapBackup(sl_snapshot *sn, const char *name, const char *vfs, const char *pragmas) {
  sqlite3 *ddb = NULL;
  sqlite3_backup *bk;
  int rc = SL_OK;
  int src = sqlite3_open_v2(name, &ddb,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
  if (src == SQLITE_OK) src = sqlite3_exec(ddb, pragmas, NULL, NULL, NULL);
  if (src != SQLITE_OK) {
    rc = slError(sn->errmsg, src == SQLITE_NOMEM ? SL_NOMEM : SL_IOERR,
                 "cannot open the backup destination %s: %s", name,
                 ddb ? sqlite3_errmsg(ddb) : sqlite3_errstr(src));
    sqlite3_close(ddb);
    return rc;
  }
  bk = sqlite3_backup_init(ddb, "main", sn->rdb, "main");
  if (!bk) {
    rc = slError(sn->errmsg, SL_ERROR, "cannot start the backup: %s", sqlite3_errmsg(ddb));
  } else {
    src = sqlite3_backup_step(bk, -1);
    sqlite3_backup_finish(bk);
    if (src != SQLITE_DONE) {
      int code = (src & 0xff) == SQLITE_FULL ? SL_FULL
                 : (src & 0xff) == SQLITE_NOMEM ? SL_NOMEM
                 : (src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED ? SL_BUSY
                 : SL_IOERR;
      rc = slError(sn->errmsg, code, "the backup of %s failed: %s", sn->st->path,
                   sqlite3_errstr(src));
    }
  }
  if (sqlite3_close(ddb) != SQLITE_OK && rc == SL_OK)
    rc = slError(sn->errmsg, SL_ERROR, "cannot close the backup destination %s", name);
  return rc;
}

/* Streams the backup into the zstd file: no uncompressed copy. */
static int snapStream(sl_snapshot *sn, uint64_t *peak) {
  size_t reserve = slSnapHeadReserve(sn->pgsz);
  uint32_t crc;
  slZOut z;
  int rc, fd;
  memset(&z, 0, sizeof z);
  rc = slSnapOpen(sn->errmsg, &sn->fs, sn->tmp_path, SL_FS_WRITE | SL_FS_CREATE | SL_FS_TRUNCATE,
                  &fd);
  if (rc) return rc;
  z.fs = &sn->fs;
  z.fd = fd;
  z.path = sn->tmp_path;
  z.cctx = sn->cctx;
  z.level = sn->level;
  z.obuf = sn->obuf;
  z.ocap = ZSTD_CStreamOutSize();
  z.off = z.body_start = reserve;
  rc = slSnapZBegin(sn->errmsg, &z, (sn->npages - 1) * sn->pgsz);
  if (rc == SL_OK)
    rc = slSnapZvfsInit(sn->errmsg, &sn->vfs, &z, sn->pgsz, sn->npages * sn->pgsz, sn->page1);
  if (rc == SL_OK) {
    rc = snapBackup(sn, "snapshot.db", sn->vfs.name,
                    "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=OFF; "
                    "PRAGMA synchronous=OFF; PRAGMA cache_size=16;");
    if (sn->vfs.io_rc) {
      rc = slError(sn->errmsg, sn->vfs.io_rc, "%s", sn->vfs.why);
    } else if (sn->vfs.failed) {
      snprintf(sn->errmsg, sizeof sn->errmsg, "%s", sn->vfs.why);
      rc = SNAP_RETRY;
    } else if (rc == SL_OK && (!sn->vfs.have_page1 || sn->vfs.next_off != sn->npages * sn->pgsz)) {
      rc = slError(sn->errmsg, SL_ERROR,
                   "the backup of %s wrote %llu of its %llu bytes", sn->st->path,
                   (unsigned long long)(sn->vfs.have_page1 ? sn->vfs.next_off : 0),
                   (unsigned long long)(sn->npages * sn->pgsz));
    }
  }
  slSnapZvfsShutdown(&sn->vfs);
  if (rc == SL_OK) rc = slSnapZEnd(sn->errmsg, &z);
  if (rc == SL_OK)
    rc = slSnapZHead(sn->errmsg, sn->cctx, sn->level, sn->page1, sn->pgsz, sn->head, reserve);
  if (rc == SL_OK) rc = slSnapPwrite(sn->errmsg, &sn->fs, fd, sn->head, reserve, 0, sn->tmp_path);
  if (rc == SL_OK) slKillPoint("snapshot_written"); /* test hook (base.h) */
  if (rc == SL_OK) rc = slSnapSync(sn->errmsg, &sn->fs, fd, sn->tmp_path);
  if (rc == SL_OK) slKillPoint("snapshot_synced"); /* test hook (base.h) */
  rc = slSnapCloseAfter(sn->errmsg, &sn->fs, fd, sn->tmp_path, rc);
  if (rc == SL_OK) {
    crc = slSnapCrc(0, sn->head, reserve);
    sn->info.checksum = slSnapCrcCombine(crc, z.crc, z.off - reserve);
    sn->info.bytes = z.off;
  }
  *peak = z.off;
  return rc;
}

/* The fallback: a backup into an uncompressed temporary file, compressed
** afterwards. */
static int snapViaCopy(sl_snapshot *sn, uint64_t *peak) {
  slZOut z;
  uint64_t raw = 0;
  int rc, fd;
  memset(&z, 0, sizeof z);
  rc = slSnapUnlink(sn->errmsg, &sn->fs, sn->raw_path);
  if (rc == SL_OK)
    rc = snapBackup(sn, sn->raw_path, sn->st->cfg.vfs,
                    "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=OFF; "
                    "PRAGMA synchronous=OFF;");
  if (rc) return rc;
  rc = slSnapFileSize(sn->errmsg, &sn->fs, sn->raw_path, &raw);
  if (rc) return rc == SL_NOTFOUND ? SL_ERROR : rc;
  if (raw != sn->npages * sn->pgsz)
    return slError(sn->errmsg, SL_ERROR, "the backup copy %s has %llu bytes, not %llu",
                   sn->raw_path, (unsigned long long)raw,
                   (unsigned long long)(sn->npages * sn->pgsz));
  rc = slSnapOpen(sn->errmsg, &sn->fs, sn->tmp_path, SL_FS_WRITE | SL_FS_CREATE | SL_FS_TRUNCATE,
                  &fd);
  if (rc) return rc;
  z.fs = &sn->fs;
  z.fd = fd;
  z.path = sn->tmp_path;
  z.cctx = sn->cctx;
  z.level = sn->level;
  z.obuf = sn->obuf;
  z.ocap = ZSTD_CStreamOutSize();
  rc = slSnapZBegin(sn->errmsg, &z, raw);
  if (rc == SL_OK) rc = slSnapCompressFile(sn->errmsg, &z, sn->raw_path, sn->iobuf, SL_SNAP_IOBUF);
  if (rc == SL_OK) rc = slSnapZEnd(sn->errmsg, &z);
  if (rc == SL_OK) slKillPoint("snapshot_written"); /* test hook (base.h) */
  if (rc == SL_OK) rc = slSnapSync(sn->errmsg, &sn->fs, fd, sn->tmp_path);
  if (rc == SL_OK) slKillPoint("snapshot_synced"); /* test hook (base.h) */
  rc = slSnapCloseAfter(sn->errmsg, &sn->fs, fd, sn->tmp_path, rc);
  *peak = raw + z.off;
  if (rc == SL_OK) {
    sn->info.checksum = z.crc;
    sn->info.bytes = z.off;
    rc = slSnapUnlink(sn->errmsg, &sn->fs, sn->raw_path);
  }
  return rc;
}

int slSnapCommit(sl_snapshot *sn) {
  char err[SL_ERRMSG_MAX];
  if (!sn || sn->hdr.magic != SL_MAGIC_SNAPSHOT || !sn->frozen) return SL_MISUSE;
  return slStoreFlushFrozen(sn->frozen, err);
}

int sl_snapshot_write(sl_snapshot *sn) {
  int expected = SL_SNAP_BEGUN, rc = SL_OK;
  int64_t t0;
  uint64_t peak = 0, peak2 = 0;
  char why[SL_ERRMSG_MAX] = "";
  if (!sn || sn->hdr.magic != SL_MAGIC_SNAPSHOT) return SL_MISUSE;
  if (!atomic_compare_exchange_strong(&sn->state, &expected, SL_SNAP_WRITING))
    return slError(sn->errmsg, SL_MISUSE, "sl_snapshot_write() was already called on this snapshot");
  sn->errmsg[0] = 0;
  t0 = slSnapMonoUs();
  sn->info.streamed = 0;
  /* the frozen changes are committed and the read transaction pinned,
  ** here or already on the owner thread */
  rc = slStoreFlushFrozen(sn->frozen, sn->errmsg);
  if (rc == SL_OK && (rc = sn->frozen->hook_rc) != SL_OK)
    snprintf(sn->errmsg, sizeof sn->errmsg, "%s", sn->pin_err);
  if (rc != SL_OK) {
    if (sn->rdb) sqlite3_close(sn->rdb);
    sn->rdb = NULL;
    sn->info.async_us = slSnapMonoUs() - t0;
    sn->write_rc = rc;
    atomic_store(&sn->state, SL_SNAP_FAILED);
    return rc;
  }
  if (!(sn->flags & SL_SNAPSHOT_NO_STREAM)) {
    rc = snapStream(sn, &peak);
    if (rc == SL_OK) sn->info.streamed = 1;
  }
  if ((sn->flags & SL_SNAPSHOT_NO_STREAM) || rc == SNAP_RETRY) {
    snprintf(why, sizeof why, "%s", sn->errmsg);
    sn->errmsg[0] = 0;
    slSnapUnlink(sn->errmsg, &sn->fs, sn->tmp_path);
    rc = snapViaCopy(sn, &peak2);
    if (peak2 > peak) peak = peak2;
    if (rc != SL_OK && why[0]) { /* say why streaming was given up, too */
      size_t n = strlen(sn->errmsg);
      if (n + 40 < sizeof sn->errmsg)
        snprintf(sn->errmsg + n, sizeof sn->errmsg - n, " (after streaming was given up: %.*s)",
                 (int)(sizeof sn->errmsg - n - 40), why);
    }
  }
  if (rc == SL_OK) rc = slSnapRename(sn->errmsg, &sn->fs, sn->tmp_path, sn->final_path);
  if (rc == SL_OK) slKillPoint("snapshot_renamed"); /* test hook (base.h) */
  if (rc == SL_OK) rc = slSnapSyncDir(sn->errmsg, &sn->fs, sn->dir);
  if (rc != SL_OK) {
    char ignored[SL_ERRMSG_MAX];
    slSnapUnlink(ignored, &sn->fs, sn->tmp_path);
    slSnapUnlink(ignored, &sn->fs, sn->raw_path);
    slSnapUnlink(ignored, &sn->fs, sn->final_path);
  }
  /* the read transaction is no longer needed: let the WAL be checkpointed */
  sqlite3_close(sn->rdb);
  sn->rdb = NULL;
  sn->info.peak_disk_bytes = peak;
  sn->info.async_us = slSnapMonoUs() - t0;
  sn->write_rc = rc;
  atomic_store(&sn->state, rc == SL_OK ? SL_SNAP_WRITTEN : SL_SNAP_FAILED);
  return rc;
}

int sl_snapshot_get_info(sl_snapshot *sn, sl_snapshot_info *info) {
  if (!sn || sn->hdr.magic != SL_MAGIC_SNAPSHOT) return SL_MISUSE;
  if (!info) return slError(sn->errmsg, SL_MISUSE, "sl_snapshot_get_info: the output pointer is NULL");
  if (atomic_load(&sn->state) != SL_SNAP_WRITTEN)
    return slError(sn->errmsg, SL_MISUSE,
                   "sl_snapshot_get_info: the snapshot has not been written successfully");
  *info = sn->info;
  return SL_OK;
}

int sl_snapshot_end(sl_snapshot *sn) {
  sl_store *st;
  int rc = SL_OK, state;
  if (!sn) return SL_OK;
  if (sn->hdr.magic != SL_MAGIC_SNAPSHOT) return SL_MISUSE;
  st = sn->st;
  state = atomic_load(&sn->state);
  if (state == SL_SNAP_WRITING)
    return slStoreErr(st, SL_MISUSE,
                      "sl_snapshot_end: sl_snapshot_write() of this snapshot is still running");
  if (state == SL_SNAP_WRITTEN) {
    rc = slStoreUsable(st);
    if (rc == SL_OK) {
      slHistoryRow row;
      row.id = sn->info.id;
      row.kind = sn->info.kind == SL_SAVEPOINT ? "savepoint" : "checkpoint";
      row.started_ms = sn->info.started_ms;
      row.sync_ms = (sn->info.sync_us + 500) / 1000;
      row.async_ms = (sn->info.async_us + 500) / 1000;
      row.bytes = sn->info.bytes;
      row.raw_bytes = sn->info.raw_bytes;
      rc = slHistoryRecord(st, &row);
    }
  } else if (state == SL_SNAP_FAILED) {
    rc = slStoreErr(st, sn->write_rc, "the snapshot of checkpoint %lld was not written: %s",
                    (long long)sn->info.id, sn->errmsg);
  }
  st->snapshots--;
  snapFree(sn);
  return rc;
}
