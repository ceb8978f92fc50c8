/*
** history.c — records checkpoints in the state file: the sl_checkpoints
** table (created when missing) and last_checkpoint in sl_meta, written in
** the store's open write transaction.
*/
#include <stdio.h>

#include "store/history.h"

int slHistoryRecord(sl_store *st, const slHistoryRow *row) {
  char *sql;
  int rc, src;
  rc = slStoreBegin(st);
  if (rc) return rc;
  sql = sqlite3_mprintf(
      "CREATE TABLE IF NOT EXISTS sl_checkpoints(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
      "started_ms INTEGER NOT NULL, sync_ms INTEGER NOT NULL, async_ms INTEGER NOT NULL, "
      "bytes INTEGER NOT NULL, raw_bytes INTEGER NOT NULL);"
      "INSERT OR REPLACE INTO sl_checkpoints(id, kind, started_ms, sync_ms, async_ms, bytes, "
      "raw_bytes) VALUES(%lld, %Q, %lld, %lld, %lld, %lld, %lld);"
      "INSERT OR REPLACE INTO sl_meta(name, value) VALUES('last_checkpoint', '%lld');",
      (long long)row->id, row->kind, (long long)row->started_ms, (long long)row->sync_ms,
      (long long)row->async_ms, (long long)row->bytes, (long long)row->raw_bytes,
      (long long)row->id);
  if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
  src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  sqlite3_free(sql);
  if (src != SQLITE_OK) return slStoreStepFailed(st, src, "cannot record the checkpoint in sl_checkpoints");
  return SL_OK;
}
