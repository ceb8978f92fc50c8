/*
** timer.c — the timer service of a store: event-time and processing-time
** timers per key, kept in the sl_timers table so that every commit and
** checkpoint holds them, fired in time order.
*/
#include <string.h>

#include "store/store.h"

enum { SL_T_ADD, SL_T_DEL, SL_T_FIRST, SL_T_PEEK, SL_T_COUNT };

static const char *const slTimerSql[SL_T_COUNT] = {
    "INSERT OR IGNORE INTO sl_timers(domain, ts, kg, key) VALUES(?1, ?2, ?3, ?4)",
    "DELETE FROM sl_timers WHERE domain=?1 AND ts=?2 AND kg=?3 AND key=?4",
    "SELECT ts, kg, key FROM sl_timers WHERE domain=?1 AND ts<=?2 ORDER BY ts, kg, key LIMIT 1",
    "SELECT min(ts) FROM sl_timers WHERE domain=?1",
};

/* Makes sure sl_timers exists (files are created with it; older files of
** this format get it on first use) and prepares statement t. */
static int slTimerStmt(sl_store *st, int t, sqlite3_stmt **out) {
  int rc, src;
  if (!st->tq[t]) {
    if (!st->timers_ok) {
      rc = slStoreBegin(st);
      if (rc == SL_OK)
        rc = slStoreExec(st,
                         "CREATE TABLE IF NOT EXISTS sl_timers(domain INTEGER NOT NULL, "
                         "ts INTEGER NOT NULL, kg INTEGER NOT NULL, key BLOB NOT NULL, "
                         "PRIMARY KEY(domain, ts, kg, key)) WITHOUT ROWID",
                         "cannot create the timer table");
      if (rc) return rc;
      st->timers_ok = 1;
    }
    src = sqlite3_prepare_v3(st->db, slTimerSql[t], -1, SQLITE_PREPARE_PERSISTENT, &st->tq[t], NULL);
    if (src != SQLITE_OK) return slStoreSqlErr(st, src, "cannot prepare a timer statement");
  }
  sqlite3_reset(st->tq[t]);
  *out = st->tq[t];
  return SL_OK;
}

static int slTimerEnter(sl_store *st, int domain, int write) {
  int rc = slStoreUsable(st);
  if (rc) return rc;
  if (domain != SL_EVENT_TIME && domain != SL_PROCESSING_TIME)
    return slStoreErr(st, SL_MISUSE, "unknown timer domain %d; use SL_EVENT_TIME or "
                      "SL_PROCESSING_TIME", domain);
  if (write && (rc = slStoreWritable(st)) != SL_OK) return rc;
  return SL_OK;
}

/* Adds or deletes the timer (domain, time) of the current key. */
static int slTimerChange(sl_store *st, int domain, int64_t time, int t) {
  sqlite3_stmt *q;
  int rc = slTimerEnter(st, domain, 1), src;
  if (rc) return rc;
  if (!st->key_set)
    return slStoreErr(st, SL_MISUSE, "timers belong to a key and no key is set; call "
                      "sl_store_set_key() first");
  rc = slStoreBegin(st);
  if (rc == SL_OK) rc = slTimerStmt(st, t, &q);
  if (rc) return rc;
  sqlite3_bind_int(q, 1, domain);
  sqlite3_bind_int64(q, 2, time);
  sqlite3_bind_int(q, 3, st->kg);
  sqlite3_bind_blob(q, 4, st->kbuf, (int)st->klen, SQLITE_STATIC);
  src = sqlite3_step(q);
  sqlite3_reset(q);
  if (src != SQLITE_DONE) return slStoreStepFailed(st, src, "cannot change a timer");
  return SL_OK;
}

int sl_timer_register(sl_store *st, int domain, int64_t time) {
  return slTimerChange(st, domain, time, SL_T_ADD);
}

int sl_timer_delete(sl_store *st, int domain, int64_t time) {
  return slTimerChange(st, domain, time, SL_T_DEL);
}

/* Makes `len` canonical key bytes the current key. */
static int slStoreSetKeyBytes(sl_store *st, const void *bytes, size_t len, int kg) {
  sl_value v[SL_MAX_KEY_COLUMNS];
  int n = 0;
  size_t off = 0;
  while (off < len && n < SL_MAX_KEY_COLUMNS) {
    size_t used = slKeyDecode((const unsigned char *)bytes + off, len - off, &v[n], 1);
    if (!used) break;
    off += used;
    n++;
  }
  if (off != len || n == 0)
    return slStoreErr(st, SL_CORRUPT, "%s: sl_timers holds a malformed key", st->path);
  if (len > st->kcap) {
    unsigned char *p = slRealloc(&st->alloc, st->kbuf, len * 2);
    if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
    st->kbuf = p;
    st->kcap = len * 2;
  }
  memcpy(st->kbuf, bytes, len);
  st->klen = len;
  st->khash = slMurmur3(st->kbuf, len, 0);
  st->kg = slKeyGroupOf(st->khash, st->maxp);
  if (st->kg != kg)
    return slStoreErr(st, SL_CORRUPT, "%s: sl_timers holds a key under the wrong key group", st->path);
  slKeyDecode(st->kbuf, len, st->keyv, n);
  st->nkey = n;
  st->ksig = (uint64_t)n;
  for (int i = 0; i < n; i++) st->ksig = slKeySigAdd(st->ksig, v[i].type);
  st->key_set = 1;
  st->key_gen++;
  return SL_OK;
}

int sl_timer_pop(sl_store *st, int domain, int64_t upto, int64_t *time) {
  sqlite3_stmt *q;
  int rc = slTimerEnter(st, domain, 1), src, kg;
  int64_t ts;
  if (rc) return rc;
  if (!time) return slStoreErr(st, SL_MISUSE, "sl_timer_pop: the output pointer is NULL");
  rc = slTimerStmt(st, SL_T_FIRST, &q);
  if (rc) return rc;
  sqlite3_bind_int(q, 1, domain);
  sqlite3_bind_int64(q, 2, upto);
  src = sqlite3_step(q);
  if (src == SQLITE_DONE) {
    sqlite3_reset(q);
    return SL_DONE;
  }
  if (src != SQLITE_ROW) {
    sqlite3_reset(q);
    return slStoreSqlErr(st, src, "cannot read the timers");
  }
  ts = sqlite3_column_int64(q, 0);
  kg = sqlite3_column_int(q, 1);
  st->key_set = 0;
  rc = slStoreSetKeyBytes(st, sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2), kg);
  sqlite3_reset(q);
  if (rc) return rc;
  if (st->kg < st->kg_first || st->kg > st->kg_last) {
    st->key_set = 0;
    return slStoreErr(st, SL_CORRUPT, "%s: sl_timers holds a timer of key group %d, outside "
                      "this instance's range %d..%d", st->path, st->kg, st->kg_first, st->kg_last);
  }
  rc = slTimerChange(st, domain, ts, SL_T_DEL);
  if (rc) return rc;
  *time = ts;
  return SL_ROW;
}

int sl_timer_peek(sl_store *st, int domain, int64_t *time) {
  sqlite3_stmt *q;
  int rc = slTimerEnter(st, domain, 0), src;
  if (rc) return rc;
  if (!time) return slStoreErr(st, SL_MISUSE, "sl_timer_peek: the output pointer is NULL");
  rc = slTimerStmt(st, SL_T_PEEK, &q);
  if (rc) return rc;
  sqlite3_bind_int(q, 1, domain);
  src = sqlite3_step(q);
  if (src == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
    *time = sqlite3_column_int64(q, 0);
    rc = SL_OK;
  } else if (src == SQLITE_ROW || src == SQLITE_DONE) {
    rc = SL_NOTFOUND;
  } else {
    rc = slStoreSqlErr(st, src, "cannot read the timers");
  }
  sqlite3_reset(q);
  return rc;
}

int sl_store_key(sl_store *st, const sl_value **key, int *n, int *kg) {
  int rc = slStoreUsable(st);
  if (rc) return rc;
  if (!key || !n) return slStoreErr(st, SL_MISUSE, "sl_store_key: an output pointer is NULL");
  if (!st->key_set) return SL_NOTFOUND;
  *key = st->keyv;
  *n = st->nkey;
  if (kg) *kg = st->kg;
  return SL_OK;
}

void slTimerFree(sl_store *st) {
  for (int t = 0; t < SL_T_COUNT; t++) {
    sqlite3_finalize(st->tq[t]);
    st->tq[t] = NULL;
  }
}
