/*
** frozen.c — the changes of a store frozen for a checkpoint: the dirty cache
** entries copied into one batch on the owner thread (the synchronous part,
** which touches no SQLite), then written and committed on any thread while
** the owner goes on (the asynchronous part). Until the batch is committed
** the owner keeps off the database's write side and does not evict: a write
** or an eviction waits for the batch, or writes it itself when no other
** thread has started to.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

/* A record of the batch, 8-byte aligned; the key bytes and then the value
** image follow, each padded to 8 bytes. */
struct slRec {
  sl_state *s;
  uint8_t op;                /* SL_R_* */
  uint8_t cleared;           /* list: delete the key's rows first */
  uint16_t kg;
  uint32_t klen;
  uint32_t vlen;             /* bytes of the value image(s) */
  uint32_t nrows;            /* list: rows that follow; SL_R_PACKED: the
                                slot's NULL mask */
  int64_t seq;               /* list: seq of the first row, -1: after the last */
};

/* SL_R_PUT carries a row image, SL_R_PACKED the slot's packed row as it is
** (the common case: a plain copy). */
/* slDirtyCost() (store.h) counts on this size. */
_Static_assert(sizeof(struct slRec) == 32, "a batch record head is 32 bytes");

enum { SL_R_PUT = 1, SL_R_PACKED, SL_R_DEL, SL_R_LIST };

/* A row image: for each column a type (int32), a length (uint32) and 8
** bytes (INTEGER, REAL, or the offset of the payload from the image's
** start), then expires_at (int64), then the payloads. Any types, so that
** rows kept as read (SL_S_GENERIC) and list rows travel alike. */
#define SL_IMG_COL 16u

static size_t slPad8(size_t n) { return (n + 7) & ~(size_t)7; }

static size_t slImageSize(int n, const sl_value *v) {
  size_t sz = SL_IMG_COL * (size_t)n + 8;
  for (int i = 0; i < n; i++)
    if (v[i].type == SL_TEXT || v[i].type == SL_BLOB) sz += v[i].n;
  return slPad8(sz);
}

static void slImageWrite(int n, const sl_value *v, int64_t exp, unsigned char *dst) {
  size_t off = SL_IMG_COL * (size_t)n + 8;
  for (int i = 0; i < n; i++) {
    unsigned char *c = dst + SL_IMG_COL * (size_t)i;
    int32_t type = v[i].type;
    uint32_t len = 0;
    uint64_t word = 0;
    if (type == SL_INTEGER || type == SL_REAL) {
      memcpy(&word, &v[i].v, 8);
    } else if (type == SL_TEXT || type == SL_BLOB) {
      len = (uint32_t)v[i].n;
      word = off;
      if (len) memcpy(dst + off, v[i].v.p, len);
      off += len;
    } else {
      type = SL_NULL;
    }
    memcpy(c, &type, 4);
    memcpy(c + 4, &len, 4);
    memcpy(c + 8, &word, 8);
  }
  memcpy(dst + SL_IMG_COL * (size_t)n, &exp, 8);
}

static void slImageRead(int n, const unsigned char *src, sl_value *out, int64_t *exp) {
  for (int i = 0; i < n; i++) {
    const unsigned char *c = src + SL_IMG_COL * (size_t)i;
    int32_t type;
    uint32_t len;
    uint64_t word;
    memcpy(&type, c, 4);
    memcpy(&len, c + 4, 4);
    memcpy(&word, c + 8, 8);
    out[i].type = type;
    out[i].n = len;
    if (type == SL_TEXT || type == SL_BLOB) out[i].v.p = src + word;
    else memcpy(&out[i].v, &word, 8);
  }
  memcpy(exp, src + SL_IMG_COL * (size_t)n, 8);
}

/* ---- the synchronous part --------------------------------------------------------- */

/* The batch's records as they are made: a buffer that grows. */
typedef struct slFreezeBuf {
  sl_store *st;
  unsigned char *p;
  size_t len, cap;
  slRecRef *offs;            /* where each record starts (.off) */
  size_t n, capn;
} slFreezeBuf;

static int slFreezeReserve(slFreezeBuf *f, size_t need) {
  if (f->n == f->capn) {
    size_t cap = f->capn ? f->capn * 2 : 256;
    slRecRef *o = slRealloc(&f->st->alloc, f->offs, sizeof *o * cap);
    if (!o) return SL_NOMEM;
    f->offs = o;
    f->capn = cap;
  }
  if (f->len + need > f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 64u << 10;
    unsigned char *p;
    while (cap < f->len + need) cap *= 2;
    p = slRealloc(&f->st->alloc, f->p, cap);
    if (!p) return SL_NOMEM;
    f->p = p;
    f->cap = cap;
  }
  return SL_OK;
}

/* Appends the record of entry ix. */
static int slFreezeEntry(slFreezeBuf *f, sl_state *s, uint32_t ix) {
  slTab *t = &s->tab;
  slSlot *e = slSlotAt(t, ix);
  size_t klen = slPad8(e->klen), vlen = 0;
  sl_value v[SL_MAX_VALUE_COLUMNS];
  const sl_value *row = NULL;
  const unsigned char *packed = NULL;
  size_t plen = 0;
  slList *l = NULL;
  int64_t exp = 0;
  unsigned char *dst;
  slRec r;
  memset(&r, 0, sizeof r);
  r.s = s;
  r.kg = e->kg;
  r.klen = e->klen;
  if (s->is_list) {
    l = slCacheList(s, ix);
    r.op = SL_R_LIST;
    r.cleared = (e->flags & SL_S_CLEARED) != 0;
    r.nrows = (uint32_t)(l->nrows - l->npersist);
    r.seq = r.cleared ? 0 : l->next_seq;
    for (size_t i = l->npersist; i < l->nrows; i++) vlen += slImageSize(s->n_val, l->rows[i]->v);
  } else if ((packed = slCachePacked(s, ix, &plen)) != NULL) {
    r.op = SL_R_PACKED;
    r.nrows = e->nulls;
    vlen = slPad8(plen);
  } else {
    row = slCacheRowInto(s, ix, v, &exp);
    r.op = row ? SL_R_PUT : SL_R_DEL;
    if (row) vlen = slImageSize(s->n_val, row);
  }
  r.vlen = (uint32_t)vlen;
  if (slFreezeReserve(f, sizeof r + klen + vlen)) return SL_NOMEM;
  f->offs[f->n++].off = f->len;
  dst = f->p + f->len;
  memcpy(dst, &r, sizeof r);
  memcpy(dst + sizeof r, slSlotKey(t, e), e->klen);
  dst += sizeof r + klen;
  if (l) {
    for (size_t i = l->npersist; i < l->nrows; i++) {
      slImageWrite(s->n_val, l->rows[i]->v, l->rows[i]->exp, dst);
      dst += slImageSize(s->n_val, l->rows[i]->v);
    }
  } else if (packed) {
    memcpy(dst, packed, plen);
  } else if (row) {
    slImageWrite(s->n_val, row, exp, dst);
  }
  f->len += sizeof r + klen + vlen;
  return SL_OK;
}

/* The entry is in the batch now: it is clean, and a list keeps only what it
** needs for reading. */
static void slFrozenEntry(sl_state *s, uint32_t ix) {
  slSlot *e = slSlotAt(&s->tab, ix);
  if (s->is_list) {
    slList *l = slCacheList(s, ix);
    size_t n = l->nrows - l->npersist;
    if (e->flags & SL_S_CLEARED) l->next_seq = 0;
    if (l->next_seq >= 0) l->next_seq += (int64_t)n;
    l->npersist = l->nrows;
    e->flags &= (uint16_t)~SL_S_CLEARED;
    if (!(e->flags & SL_S_LOADED)) {
      slListRowsFree(s, l);
      slCacheListSync(s, l);
    }
  }
  e->flags &= (uint16_t)~(SL_S_DIRTY | SL_S_FROZEN);
}

int slStoreFreeze(sl_store *st, slFrozenHook hook, void *ud, slFrozen **out) {
  slFreezeBuf f;
  slFrozen *b = NULL;
  int rc = slStoreSettle(st), nttl = 0;
  *out = NULL;
  if (rc) return rc;
  memset(&f, 0, sizeof f);
  f.st = st;
  {
    /* about the size it will be (what the budget keeps room for), so that
    ** it seldom has to grow past that room */
    size_t est = 0, n = 0;
    for (int i = 0; i < st->nstates; i++) {
      const slTab *t = &st->states[i]->tab;
      est += (size_t)t->ndirty * slDirtyCost(t) + t->dextra;
      n += t->ndirty;
    }
    if (n && (f.p = slMalloc(&st->alloc, est)) != NULL) f.cap = est;
    if (n && (f.offs = slMalloc(&st->alloc, sizeof *f.offs * n)) != NULL) f.capn = n;
  }
  for (int i = 0; i < st->nstates; i++) nttl += st->states[i]->has_expires;
  b = slMalloc(&st->alloc, sizeof *b + sizeof(sl_state *) * (size_t)nttl);
  if (!b) {
    slFree(&st->alloc, f.p);
    slFree(&st->alloc, f.offs);
    return slStoreErr(st, SL_NOMEM, "out of memory");
  }
  memset(b, 0, sizeof *b);
  /* one pass over the dirty slots: each is copied once (FROZEN marks the
  ** slots copied, for the dirty list may name one twice) */
  for (int i = 0; i < st->nstates && rc == SL_OK; i++) {
    sl_state *s = st->states[i];
    for (uint32_t k = 0; k < s->tab.ndirty && rc == SL_OK; k++) {
      slSlot *e = slSlotAt(&s->tab, s->tab.dirty[k]);
      if ((e->flags & (SL_S_DIRTY | SL_S_FROZEN)) != SL_S_DIRTY) continue;
      rc = slFreezeEntry(&f, s, s->tab.dirty[k]);
      if (rc == SL_OK) e->flags |= SL_S_FROZEN;
    }
  }
  if (rc) {
    /* nothing is frozen: the entries stay dirty */
    for (int i = 0; i < st->nstates; i++) {
      slTab *t = &st->states[i]->tab;
      for (uint32_t k = 0; k < t->ndirty; k++) slSlotAt(t, t->dirty[k])->flags &= (uint16_t)~SL_S_FROZEN;
    }
    slFree(&st->alloc, f.p);
    slFree(&st->alloc, f.offs);
    slFree(&st->alloc, b);
    return slStoreErr(st, SL_NOMEM, "out of memory");
  }
  for (int i = 0; i < st->nstates; i++) {
    sl_state *s = st->states[i];
    slTab *t = &s->tab;
    for (uint32_t k = 0; k < t->ndirty; k++)
      if (slSlotAt(t, t->dirty[k])->flags & SL_S_FROZEN) slFrozenEntry(s, t->dirty[k]);
    slCacheDirtyCount(s, 0);
  }
  b->st = st;
  b->buf = f.p;
  b->len = f.len;
  /* the offsets become pointers now that the buffer stays where it is */
  for (size_t i = 0; i < f.n; i++) {
    size_t off = f.offs[i].off;
    f.offs[i].rec = (const slRec *)(const void *)(f.p + off);
  }
  b->recs = f.offs;
  b->nrecs = f.n;
  b->hook = hook;
  b->hook_ud = ud;
  atomic_init(&b->state, SL_FROZEN_PENDING);
  if (st->cfg.ttl_cleanup_rows > 0 && nttl) {
    b->now = slStoreNow(st);
    for (int i = 0; i < st->nstates; i++)
      if (st->states[i]->has_expires) b->ttl[b->nttl++] = st->states[i];
  }
  b->acct = sizeof *b + f.cap + sizeof *b->recs * f.capn;
  st->bytes += b->acct;
  st->frozen = b;
  *out = b;
  return SL_OK;
}

/* ---- the asynchronous part -------------------------------------------------------- */

static int slFrozenFail(slFrozen *b, int src, const char *what) {
  sl_store *st = b->st;
  const char *m = (src & 0xff) == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(st->db);
  int rc = slStoreSqlRc(src);
  snprintf(b->err, sizeof b->err, "%s: %s (%s)", what, m, st->path);
  return rc;
}

static int slFrozenStep(slFrozen *b, sqlite3_stmt *q, const char *what) {
  int src = sqlite3_step(q);
  sqlite3_reset(q);
  return src == SQLITE_DONE ? SL_OK : slFrozenFail(b, src, what);
}

static int slFrozenPrepare(slFrozen *b, sl_state *s, int q, sqlite3_stmt **out) {
  int src = slStatePrepareFor(s, s->fq, q, out);
  return src == SQLITE_OK ? SL_OK : slFrozenFail(b, src, "cannot prepare a statement");
}

/* Binds the key of a record (and its map key). */
static int slRecBindKey(const slRec *r, const unsigned char *k, sqlite3_stmt *q, int mapkey) {
  return slStoreBindKey(r->s, q, r->kg, k, r->klen, mapkey);
}

static int slRecBindImage(sl_state *s, sqlite3_stmt *q, int p, const unsigned char *img,
                          const slRec *packed) {
  sl_value v[SL_MAX_VALUE_COLUMNS];
  int64_t exp;
  if (packed) slCacheUnpack(s, img, packed->nrows, v, &exp);
  else slImageRead(s->n_val, img, v, &exp);
  for (int i = 0; i < s->n_val; i++) slStoreBind(q, p++, &v[i], SQLITE_STATIC);
  if (s->has_expires) {
    if (exp) sqlite3_bind_int64(q, p, exp);
    else sqlite3_bind_null(q, p);
  }
  return SL_OK;
}

static int slRecWrite(slFrozen *b, const slRec *r) {
  sl_state *s = r->s;
  const unsigned char *k = (const unsigned char *)(r + 1);
  const unsigned char *img = k + slPad8(r->klen);
  sqlite3_stmt *q;
  int rc;
  if (r->op != SL_R_LIST) {
    int put = r->op != SL_R_DEL;
    rc = slFrozenPrepare(b, s, put ? SL_Q_PUT : SL_Q_DEL, &q);
    if (rc) return rc;
    int p = slRecBindKey(r, k, q, s->is_map);
    if (put) slRecBindImage(s, q, p, img, r->op == SL_R_PACKED ? r : NULL);
    return slFrozenStep(b, q, put ? "cannot write state" : "cannot delete state");
  }
  int64_t seq = r->seq;
  if (r->cleared) {
    rc = slFrozenPrepare(b, s, SL_Q_DELKEY, &q);
    if (rc) return rc;
    slRecBindKey(r, k, q, 0);
    rc = slFrozenStep(b, q, "cannot clear a list");
    if (rc) return rc;
  }
  if (r->nrows && seq < 0) {
    int src;
    rc = slFrozenPrepare(b, s, SL_Q_MAXSEQ, &q);
    if (rc) return rc;
    slRecBindKey(r, k, q, 0);
    src = sqlite3_step(q);
    if (src != SQLITE_ROW) {
      sqlite3_reset(q);
      return slFrozenFail(b, src, "cannot read a list");
    }
    seq = sqlite3_column_type(q, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(q, 0) + 1;
    sqlite3_reset(q);
  }
  for (uint32_t i = 0; i < r->nrows; i++) {
    sl_value v[SL_MAX_VALUE_COLUMNS];
    int64_t exp;
    slImageRead(s->n_val, img, v, &exp);
    rc = slFrozenPrepare(b, s, SL_Q_PUT, &q);
    if (rc) return rc;
    int p = slRecBindKey(r, k, q, 0);
    sqlite3_bind_int64(q, p++, seq++);
    slRecBindImage(s, q, p, img, NULL);
    rc = slFrozenStep(b, q, "cannot write a list");
    if (rc) return rc;
    img += slImageSize(s->n_val, v);
  }
  return SL_OK;
}

/* Orders records by state, key group and key bytes: each table's B-tree
** is written in key order, page after page. */
static int slRecCmp(const void *pa, const void *pb) {
  const slRec *x = *(const slRec *const *)pa, *y = *(const slRec *const *)pb;
  uint32_t n;
  int c;
  if (x->s != y->s) return (uintptr_t)x->s < (uintptr_t)y->s ? -1 : 1;
  if (x->kg != y->kg) return x->kg < y->kg ? -1 : 1;
  n = x->klen < y->klen ? x->klen : y->klen;
  c = n ? memcmp(x + 1, y + 1, n) : 0;
  if (c) return c;
  return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* Heapsort of the records: in place, because the thread writing the batch
** must not allocate (qsort may, as much again). */
static void slRecSift(slRecRef *v, size_t i, size_t n) {
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) return;
    if (c + 1 < n && slRecCmp(&v[c].rec, &v[c + 1].rec) < 0) c++;
    if (slRecCmp(&v[i].rec, &v[c].rec) >= 0) return;
    slRecRef t = v[i];
    v[i] = v[c];
    v[c] = t;
    i = c;
  }
}

static void slRecSort(slRecRef *v, size_t n) {
  if (n < 2) return;
  for (size_t i = n / 2; i-- > 0;) slRecSift(v, i, n);
  for (size_t end = n - 1; end > 0; end--) {
    slRecRef t = v[0];
    v[0] = v[end];
    v[end] = t;
    slRecSift(v, 0, end);
  }
}

/* SQLite rolls a connection's transaction back when certain statements fail,
** reads too: the owner's read of an uncached key may do so while the batch
** is written. Each record is therefore written under the connection's mutex
** after checking that the transaction is still open; otherwise it would be
** committed on its own. */
static int slFrozenStillInTxn(slFrozen *b) {
  if (sqlite3_get_autocommit(b->st->db)) {
    snprintf(b->err, sizeof b->err, "an earlier failure made SQLite roll back the transaction "
             "of %s before the checkpoint's changes were written", b->st->path);
    return SL_ERROR;
  }
  return SL_OK;
}

static int slFrozenWriteAll(slFrozen *b) {
  sqlite3_mutex *mu = sqlite3_db_mutex(b->st->db);
  int rc = SL_OK;
  slRecSort(b->recs, b->nrecs);
  for (size_t i = 0; i < b->nrecs && rc == SL_OK; i++) {
    sqlite3_mutex_enter(mu);
    rc = slFrozenStillInTxn(b);
    if (rc == SL_OK) rc = slRecWrite(b, b->recs[i].rec);
    sqlite3_mutex_leave(mu);
  }
  return rc;
}

static int slFrozenExec(slFrozen *b, const char *sql, const char *what) {
  int src = sqlite3_exec(b->st->db, sql, NULL, NULL, NULL);
  return src == SQLITE_OK ? SL_OK : slFrozenFail(b, src, what);
}

/* Writes and commits the batch; on the thread that claimed it. */
static void slFrozenRun(slFrozen *b) {
  sl_store *st = b->st;
  sqlite3_mutex *mu = sqlite3_db_mutex(st->db);
  int rc = SL_OK;
  if (!st->in_txn) {
    rc = slFrozenExec(b, "BEGIN IMMEDIATE", "cannot begin a write transaction");
    if (rc == SL_OK) st->in_txn = 1;
  }
  if (rc == SL_OK) rc = slFrozenWriteAll(b);
  sqlite3_mutex_enter(mu);
  if (rc == SL_OK) rc = slFrozenStillInTxn(b);
  for (int i = 0; i < b->nttl && rc == SL_OK; i++) {
    char *sql = slStoreExpireSql(b->ttl[i], b->now, st->cfg.ttl_cleanup_rows);
    if (!sql) {
      rc = SL_NOMEM;
      snprintf(b->err, sizeof b->err, "out of memory");
      break;
    }
    rc = slFrozenExec(b, sql, "cannot remove expired rows");
    sqlite3_free(sql);
  }
  if (rc == SL_OK && st->in_txn) {
    rc = slFrozenExec(b, "COMMIT", "cannot commit");
    if (rc == SL_OK) st->in_txn = 0;
    if (rc == SL_OK) slKillPoint("commit"); /* test hook (base.h) */
  }
  if (rc != SL_OK) {
    /* the changes since the last commit cannot all be written: the file
    ** goes back to the last commit and the store is failed (slStoreSettle) */
    if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    st->in_txn = 0;
  }
  sqlite3_mutex_leave(mu);
  b->rc = rc;
  if (rc == SL_OK && b->hook) b->hook_rc = b->hook(b->hook_ud);
  if (rc == SL_OK) slStoreKeepWriting(st);
  pthread_mutex_lock(&st->mu);
  atomic_store(&b->state, SL_FROZEN_DONE);
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

/* Claims the batch and writes it, or waits for whoever claimed it. */
static void slFrozenClaim(slFrozen *b) {
  sl_store *st = b->st;
  int mine = 0;
  pthread_mutex_lock(&st->mu);
  if (atomic_load(&b->state) == SL_FROZEN_PENDING) {
    atomic_store(&b->state, SL_FROZEN_RUNNING);
    mine = 1;
  } else {
    while (atomic_load(&b->state) != SL_FROZEN_DONE) pthread_cond_wait(&st->cv, &st->mu);
  }
  pthread_mutex_unlock(&st->mu);
  if (mine) slFrozenRun(b);
}

int slStoreFlushFrozen(slFrozen *b, char *err) {
  slFrozenClaim(b);
  if (b->rc) {
    snprintf(err, SL_ERRMSG_MAX, "%s", b->err);
    return b->rc;
  }
  return SL_OK;
}

int slStoreSettle(sl_store *st) {
  slFrozen *b = st->frozen;
  if (!b) return SL_OK;
  slFrozenClaim(b);
  st->frozen = NULL;
  st->bytes -= b->acct;
  b->acct = 0;
  /* written: the records are not needed any more */
  slFree(&st->alloc, b->buf);
  slFree(&st->alloc, b->recs);
  b->buf = NULL;
  b->recs = NULL;
  b->nrecs = b->len = 0;
  if (b->rc) {
    slTimerApplyLog(st, 1);
    st->failed = 1;
    return slStoreErr(st, b->rc, "%s; the changes since the last commit are lost, close and "
                      "reopen the store to continue from the last commit", b->err);
  }
  /* timers changed meanwhile were kept aside: now they may go to the file */
  return slTimerApplyLog(st, 0);
}

void slStoreFrozenFree(sl_store *st, slFrozen *b) {
  if (!b) return;
  if (st->frozen == b) slStoreSettle(st);
  slFree(&st->alloc, b->buf);
  slFree(&st->alloc, b->recs);
  slFree(&st->alloc, b);
}

