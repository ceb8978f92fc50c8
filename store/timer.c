/*
** timer.c — the timer service of a store: event-time and processing-time
** timers per key, kept in the sl_timers table so that every commit and
** checkpoint holds them, fired in time order.
**
** While a checkpoint's frozen batch is being committed on another thread
** (store/frozen.c), timers set or deleted are kept in a sorted log instead
** of the table, so that they cannot end up in that checkpoint, and nobody
** waits for the batch; reads merge the table with the log. The log goes to
** the table when the batch is settled.
*/
#include <string.h>

#include "store/store.h"

enum { SL_T_ADD, SL_T_DEL, SL_T_FIRST, SL_T_PEEK, SL_T_SCAN, SL_T_COUNT };

static const char *const slTimerSql[SL_T_COUNT] = {
    "INSERT OR IGNORE INTO sl_timers(domain, ts, kg, key) VALUES(?1, ?2, ?3, ?4)",
    "DELETE FROM sl_timers WHERE domain=?1 AND ts=?2 AND kg=?3 AND key=?4",
    "SELECT ts, kg, key FROM sl_timers WHERE domain=?1 AND ts<=?2 ORDER BY ts, kg, key LIMIT 1",
    "SELECT min(ts) FROM sl_timers WHERE domain=?1",
    "SELECT ts, kg, key FROM sl_timers WHERE domain=?1 AND ts<=?2 ORDER BY ts, kg, key",
};

/* ---- the log of changes kept while a batch is committed ----------------------- */

/* The order of sl_timers' primary key: domain, ts, kg, key (as SQLite
** compares BLOBs: bytes, then length). */
static int slTimerCmp(int32_t d1, int64_t t1, int32_t g1, const unsigned char *k1, uint32_t n1,
                      int32_t d2, int64_t t2, int32_t g2, const unsigned char *k2, uint32_t n2) {
  uint32_t n = n1 < n2 ? n1 : n2;
  int c;
  if (d1 != d2) return d1 < d2 ? -1 : 1;
  if (t1 != t2) return t1 < t2 ? -1 : 1;
  if (g1 != g2) return g1 < g2 ? -1 : 1;
  c = n ? memcmp(k1, k2, n) : 0;
  if (c) return c;
  return n1 < n2 ? -1 : n1 > n2;
}

/* The first log position not before (d, t, g, k); *found when it is that one. */
static size_t slTimerFind(const sl_store *st, int32_t d, int64_t t, int32_t g,
                          const unsigned char *k, uint32_t n, int *found) {
  size_t lo = 0, hi = st->ntlog;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const slTimerOp *o = &st->tlog[mid];
    if (slTimerCmp(o->domain, o->ts, o->kg, o->key, o->klen, d, t, g, k, n) < 0) lo = mid + 1;
    else hi = mid;
  }
  *found = lo < st->ntlog &&
           slTimerCmp(st->tlog[lo].domain, st->tlog[lo].ts, st->tlog[lo].kg, st->tlog[lo].key,
                      st->tlog[lo].klen, d, t, g, k, n) == 0;
  return lo;
}

/* Keeps "timer (domain, time) of the current key is set / deleted". */
static int slTimerLog(sl_store *st, int domain, int64_t time, int add) {
  int found;
  size_t at = slTimerFind(st, domain, time, st->kg, st->kbuf, (uint32_t)st->klen, &found);
  slTimerOp *o;
  if (found) {
    st->tlog[at].add = add;
    return SL_OK;
  }
  if (st->ntlog == st->captlog) {
    size_t cap = st->captlog ? st->captlog * 2 : 64;
    slTimerOp *p = slRealloc(&st->alloc, st->tlog, sizeof *p * cap);
    if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
    st->bytes += sizeof *p * (cap - st->captlog);
    st->tlog = p;
    st->captlog = cap;
  }
  unsigned char *k = slMalloc(&st->alloc, st->klen ? st->klen : 1);
  if (!k) return slStoreErr(st, SL_NOMEM, "out of memory");
  memcpy(k, st->kbuf, st->klen);
  st->bytes += SL_HEAP(st->klen);
  memmove(&st->tlog[at + 1], &st->tlog[at], sizeof *st->tlog * (st->ntlog - at));
  o = &st->tlog[at];
  o->domain = domain;
  o->kg = st->kg;
  o->ts = time;
  o->klen = (uint32_t)st->klen;
  o->add = add;
  o->key = k;
  st->ntlog++;
  return SL_OK;
}

static void slTimerLogFree(sl_store *st) {
  for (size_t i = 0; i < st->ntlog; i++) {
    st->bytes -= SL_HEAP(st->tlog[i].klen);
    slFree(&st->alloc, st->tlog[i].key);
  }
  st->bytes -= sizeof *st->tlog * st->captlog;
  slFree(&st->alloc, st->tlog);
  st->tlog = NULL;
  st->ntlog = st->captlog = 0;
}

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

/* Runs the add or delete statement t for (domain, time, kg, key). */
static int slTimerWrite(sl_store *st, int t, int domain, int64_t time, int kg,
                        const unsigned char *key, size_t klen) {
  sqlite3_stmt *q;
  int rc = slStoreBegin(st), src;
  if (rc == SL_OK) rc = slTimerStmt(st, t, &q);
  if (rc) return rc;
  sqlite3_bind_int(q, 1, domain);
  sqlite3_bind_int64(q, 2, time);
  sqlite3_bind_int(q, 3, kg);
  sqlite3_bind_blob(q, 4, key, (int)klen, SQLITE_STATIC);
  src = sqlite3_step(q);
  sqlite3_reset(q);
  if (src != SQLITE_DONE) return slStoreStepFailed(st, src, "cannot change a timer");
  return SL_OK;
}

int slTimerApplyLog(sl_store *st, int drop) {
  int rc = SL_OK;
  /* ops whose write failed stay unapplied: the store is failed then */
  for (size_t i = 0; i < st->ntlog && rc == SL_OK && !drop; i++) {
    const slTimerOp *o = &st->tlog[i];
    rc = slTimerWrite(st, o->add ? SL_T_ADD : SL_T_DEL, o->domain, o->ts, o->kg, o->key, o->klen);
  }
  if (st->tlog) slTimerLogFree(st);
  return rc;
}

/* 1 while a frozen batch is still being committed (changes go to the log). */
static int slTimerKeepAside(const sl_store *st) {
  return st->frozen && atomic_load(&st->frozen->state) != SL_FROZEN_DONE;
}

/* Adds or deletes the timer (domain, time) of the current key. */
static int slTimerChange(sl_store *st, int domain, int64_t time, int t) {
  int rc = slTimerEnter(st, domain, 1);
  if (rc) return rc;
  if (!st->key_set)
    return slStoreErr(st, SL_MISUSE, "timers belong to a key and no key is set; call "
                      "sl_store_set_key() first");
  if (slTimerKeepAside(st)) return slTimerLog(st, domain, time, t == SL_T_ADD);
  return slTimerWrite(st, t, domain, time, st->kg, st->kbuf, st->klen);
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

/* The first timer of `domain` due by `upto`, the table and the log merged:
** SL_ROW with *ts and (when set_key) the timer's key made current, SL_DONE
** when there is none, or an error. */
static int slTimerFirst(sl_store *st, int domain, int64_t upto, int set_key, int64_t *ts) {
  const slTimerOp *best = NULL;
  sqlite3_stmt *q;
  int rc, src;
  /* the log's first timer still set */
  int found;
  for (size_t i = slTimerFind(st, domain, INT64_MIN, INT32_MIN, NULL, 0, &found);
       i < st->ntlog && st->tlog[i].domain == domain && st->tlog[i].ts <= upto; i++)
    if (st->tlog[i].add) {
      best = &st->tlog[i];
      break;
    }
  /* the table's first timer the log has not deleted */
  rc = slTimerStmt(st, st->ntlog ? SL_T_SCAN : SL_T_FIRST, &q);
  if (rc) return rc;
  sqlite3_bind_int(q, 1, domain);
  sqlite3_bind_int64(q, 2, upto);
  while ((src = sqlite3_step(q)) == SQLITE_ROW) {
    int64_t t = sqlite3_column_int64(q, 0);
    int kg = sqlite3_column_int(q, 1);
    const unsigned char *k = sqlite3_column_blob(q, 2);
    uint32_t n = (uint32_t)sqlite3_column_bytes(q, 2);
    size_t at = st->ntlog ? slTimerFind(st, domain, t, kg, k, n, &found) : 0;
    if (st->ntlog && found && !st->tlog[at].add) continue; /* deleted meanwhile */
    if (best && slTimerCmp(best->domain, best->ts, best->kg, best->key, best->klen, domain, t, kg,
                           k, n) < 0)
      break; /* the log's comes first */
    *ts = t;
    rc = SL_ROW;
    if (set_key) {
      st->key_set = 0;
      rc = slStoreSetKeyBytes(st, k, n, kg);
      if (rc == SL_OK) rc = SL_ROW;
    }
    sqlite3_reset(q);
    return rc;
  }
  sqlite3_reset(q);
  if (src != SQLITE_ROW && src != SQLITE_DONE) return slStoreSqlErr(st, src, "cannot read the timers");
  if (!best) return SL_DONE;
  *ts = best->ts;
  if (!set_key) return SL_ROW;
  st->key_set = 0;
  rc = slStoreSetKeyBytes(st, best->key, best->klen, best->kg);
  return rc == SL_OK ? SL_ROW : rc;
}

int sl_timer_pop(sl_store *st, int domain, int64_t upto, int64_t *time) {
  int rc = slTimerEnter(st, domain, 1);
  int64_t ts = 0;
  if (rc) return rc;
  if (!time) return slStoreErr(st, SL_MISUSE, "sl_timer_pop: the output pointer is NULL");
  rc = slTimerFirst(st, domain, upto, 1, &ts);
  if (rc != SL_ROW) return rc;
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
  if (st->ntlog) {
    rc = slTimerFirst(st, domain, INT64_MAX, 0, time);
    return rc == SL_ROW ? SL_OK : rc == SL_DONE ? SL_NOTFOUND : rc;
  }
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
  if (st->tlog) slTimerLogFree(st);
  for (int t = 0; t < SL_T_COUNT; t++) {
    sqlite3_finalize(st->tq[t]);
    st->tq[t] = NULL;
  }
}
