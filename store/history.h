/*
** history.h — the checkpoint history of a state file (the sl_checkpoints
** table and last_checkpoint in sl_meta), which the snapshot module records
** through the store's own connection.
*/
#ifndef SL_HISTORY_H
#define SL_HISTORY_H

#include "store/store.h"

/* One row of sl_checkpoints. */
typedef struct slHistoryRow {
  int64_t id;
  const char *kind;          /* "checkpoint" or "savepoint" */
  int64_t started_ms, sync_ms, async_ms;
  uint64_t bytes, raw_bytes;
} slHistoryRow;

/* Appends (or replaces, for the same id) a row of sl_checkpoints, creating
** the table when missing, and sets sl_meta last_checkpoint to its id, in the
** store's write transaction (opened when needed): durable at the next
** commit. Errors as slStoreStepFailed(). */
SL_PRIVATE int slHistoryRecord(sl_store *st, const slHistoryRow *row);

#endif
