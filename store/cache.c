/*
** cache.c — the write-back cache of a store: a hash table keyed by (state,
** key[, map key]) that serves reads and absorbs writes, bounded by the
** memory budget. Dirty entries go to SQLite inside the store's open write
** transaction when the budget is exceeded or at a commit; clean entries are
** evicted in least-recently-used order.
*/
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

#define SL_INITIAL_BUCKETS 64

int slCacheInit(sl_store *st) {
  st->nbuckets = SL_INITIAL_BUCKETS;
  st->buckets = slMalloc(&st->alloc, sizeof *st->buckets * st->nbuckets);
  if (!st->buckets) return slStoreErr(st, SL_NOMEM, "out of memory");
  memset(st->buckets, 0, sizeof *st->buckets * st->nbuckets);
  return SL_OK;
}

void slRowsFree(sl_store *st, slEntry *e) {
  for (size_t i = 0; i < e->nrows; i++) slFree(&st->alloc, e->rows[i]);
  slFree(&st->alloc, e->rows);
  e->rows = NULL;
  e->nrows = e->caprows = e->npersist = 0;
  e->rowbytes = 0;
}

static void slEntryFree(sl_store *st, slEntry *e) {
  slFree(&st->alloc, e->row);
  slRowsFree(st, e);
  slFree(&st->alloc, e);
}

void slCacheFree(sl_store *st) {
  slEntry *e = st->lru_head;
  while (e) {
    slEntry *next = e->lnext;
    slEntryFree(st, e);
    e = next;
  }
  for (int i = 0; i < st->nstates; i++) st->states[i]->dirty = st->states[i]->all = NULL;
  slFree(&st->alloc, st->buckets);
  st->buckets = NULL;
  st->lru_head = st->lru_tail = NULL;
  st->nentries = st->bytes = 0;
}

static size_t slEntrySize(const slEntry *e) {
  return sizeof *e + e->klen + (e->row ? e->row->cap : 0) + e->caprows * sizeof(slRow *) +
         e->rowbytes;
}

void slCacheResize(sl_store *st, slEntry *e) {
  size_t n = slEntrySize(e);
  st->bytes = st->bytes - e->bytes + n;
  e->bytes = n;
}

slEntry *slCacheFind(sl_store *st, sl_state *s, const unsigned char *k, uint32_t klen,
                     uint32_t hash) {
  slEntry *e = st->buckets[hash & (st->nbuckets - 1)];
  for (; e; e = e->hnext)
    if (e->hash == hash && e->s == s && e->klen == klen && (!klen || memcmp(e->kbytes, k, klen) == 0))
      break;
  return e;
}

static void slLruUnlink(sl_store *st, slEntry *e) {
  if (e->lprev) e->lprev->lnext = e->lnext;
  else st->lru_head = e->lnext;
  if (e->lnext) e->lnext->lprev = e->lprev;
  else st->lru_tail = e->lprev;
}

static void slLruAppend(sl_store *st, slEntry *e) {
  e->lnext = NULL;
  e->lprev = st->lru_tail;
  if (st->lru_tail) st->lru_tail->lnext = e;
  else st->lru_head = e;
  st->lru_tail = e;
}

/* Doubles the bucket array when the table gets crowded (best effort). */
static void slCacheGrow(sl_store *st) {
  size_t nb = st->nbuckets * 2;
  slEntry **b = slMalloc(&st->alloc, sizeof *b * nb);
  if (!b) return;
  memset(b, 0, sizeof *b * nb);
  for (size_t i = 0; i < st->nbuckets; i++) {
    slEntry *e = st->buckets[i];
    while (e) {
      slEntry *next = e->hnext;
      e->hnext = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
      e = next;
    }
  }
  slFree(&st->alloc, st->buckets);
  st->buckets = b;
  st->nbuckets = nb;
}

slEntry *slCacheAdd(sl_store *st, sl_state *s, const unsigned char *k, uint32_t klen,
                    uint32_t kklen, uint32_t hash, int kg) {
  slEntry *e;
  size_t b;
  if (st->nentries >= st->nbuckets) slCacheGrow(st);
  e = slMalloc(&st->alloc, sizeof *e + klen);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->s = s;
  e->hash = hash;
  e->kg = kg;
  e->klen = klen;
  e->kklen = kklen;
  e->next_seq = -1;
  if (klen) memcpy(e->kbytes, k, klen);
  b = hash & (st->nbuckets - 1);
  e->hnext = st->buckets[b];
  st->buckets[b] = e;
  slLruAppend(st, e);
  e->snext = s->all;
  if (s->all) s->all->sprev = e;
  s->all = e;
  st->nentries++;
  e->bytes = 0;
  slCacheResize(st, e);
  return e;
}

void slCacheDirty(sl_store *st, slEntry *e) {
  (void)st;
  if (e->flags & SL_E_DIRTY) return;
  e->flags |= SL_E_DIRTY;
  e->dprev = NULL;
  e->dnext = e->s->dirty;
  if (e->s->dirty) e->s->dirty->dprev = e;
  e->s->dirty = e;
}

static void slDirtyUnlink(slEntry *e) {
  if (!(e->flags & SL_E_DIRTY)) return;
  if (e->dprev) e->dprev->dnext = e->dnext;
  else e->s->dirty = e->dnext;
  if (e->dnext) e->dnext->dprev = e->dprev;
  e->flags &= ~SL_E_DIRTY;
  e->dprev = e->dnext = NULL;
}

void slCacheDrop(sl_store *st, slEntry *e) {
  slEntry **pp = &st->buckets[e->hash & (st->nbuckets - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  slLruUnlink(st, e);
  slDirtyUnlink(e);
  if (e->sprev) e->sprev->snext = e->snext;
  else e->s->all = e->snext;
  if (e->snext) e->snext->sprev = e->sprev;
  if (st->pin == e) st->pin = NULL;
  if (e->s->memo == e) e->s->memo = NULL;
  st->nentries--;
  st->bytes -= e->bytes;
  slEntryFree(st, e);
}

static int slPayloadInside(const slRow *row, const sl_value *v, int n) {
  const char *lo = (const char *)row, *hi = lo + row->cap;
  for (int i = 0; i < n; i++)
    if ((v[i].type == SL_TEXT || v[i].type == SL_BLOB) && (const char *)v[i].v.p >= lo &&
        (const char *)v[i].v.p < hi)
      return 1;
  return 0;
}

int slRowSet(sl_store *st, slRow **rowp, const sl_value *v, int n, int64_t exp) {
  size_t need = sizeof(slRow) + sizeof(sl_value) * (size_t)n;
  slRow *row = *rowp;
  char *pay;
  for (int i = 0; i < n; i++)
    if (v[i].type == SL_TEXT || v[i].type == SL_BLOB) need += v[i].n + 1;
  if (!row || row->cap < need || slPayloadInside(row, v, n)) {
    slRow *nr = slMalloc(&st->alloc, need);
    if (!nr) return slStoreErr(st, SL_NOMEM, "out of memory");
    nr->cap = need;
    /* fill before freeing: v may point into the old row */
    row = nr;
  }
  row->exp = exp;
  pay = (char *)&row->v[n];
  for (int i = 0; i < n; i++) {
    row->v[i] = v[i];
    if (v[i].type == SL_TEXT || v[i].type == SL_BLOB) {
      if (v[i].n) memcpy(pay, v[i].v.p, v[i].n);
      pay[v[i].n] = 0;
      row->v[i].v.p = pay;
      pay += v[i].n + 1;
    } else if (v[i].type != SL_INTEGER && v[i].type != SL_REAL) {
      row->v[i].type = SL_NULL;
      row->v[i].n = 0;
    }
  }
  if (row != *rowp) {
    slFree(&st->alloc, *rowp);
    *rowp = row;
  }
  return SL_OK;
}

int slStoreBind(sqlite3_stmt *q, int p, const sl_value *v, sqlite3_destructor_type how) {
  switch (v->type) {
    case SL_INTEGER: return sqlite3_bind_int64(q, p, v->v.i);
    case SL_REAL: return sqlite3_bind_double(q, p, v->v.r);
    case SL_TEXT: return sqlite3_bind_text64(q, p, v->v.p, v->n, how, SQLITE_UTF8);
    case SL_BLOB: return sqlite3_bind_blob64(q, p, v->v.p, v->n, how);
    default: return sqlite3_bind_null(q, p);
  }
}

void slStoreColumns(sqlite3_stmt *q, int first, int n, sl_value *v) {
  for (int i = 0; i < n; i++) {
    int c = first + i;
    v[i].type = sqlite3_column_type(q, c);
    v[i].n = 0;
    switch (v[i].type) {
      case SL_INTEGER: v[i].v.i = sqlite3_column_int64(q, c); break;
      case SL_REAL: v[i].v.r = sqlite3_column_double(q, c); break;
      case SL_TEXT:
      case SL_BLOB:
        /* column_text also NUL-terminates a blob, as the header promises */
        v[i].v.p = sqlite3_column_text(q, c);
        v[i].n = (size_t)sqlite3_column_bytes(q, c);
        if (!v[i].v.p) v[i].v.p = "";
        break;
      default: v[i].type = SL_NULL; v[i].v.i = 0;
    }
  }
}

/* Binds kg and the key columns of entry e (and its map key) from ?1 on;
** returns the next parameter number. */
static int slBindEntryKey(sl_state *s, sqlite3_stmt *q, const slEntry *e, int mapkey) {
  sl_value kv[SL_MAX_KEY_COLUMNS];
  int p = 1;
  if (s->keyed) {
    sqlite3_bind_int(q, p++, e->kg);
    slKeyDecode(e->kbytes, e->kklen, kv, s->n_key);
    for (int i = 0; i < s->n_key; i++) slStoreBind(q, p++, &kv[i], SQLITE_STATIC);
  }
  if (mapkey) {
    slKeyDecode(e->kbytes + e->kklen, e->klen - e->kklen, kv, s->n_mk);
    for (int i = 0; i < s->n_mk; i++) slStoreBind(q, p++, &kv[i], SQLITE_STATIC);
  }
  return p;
}

static int slBindVals(sl_state *s, sqlite3_stmt *q, int p, const slRow *row) {
  for (int i = 0; i < s->n_val; i++) slStoreBind(q, p++, &row->v[i], SQLITE_STATIC);
  if (s->has_expires) {
    if (row->exp) sqlite3_bind_int64(q, p, row->exp);
    else sqlite3_bind_null(q, p);
    p++;
  }
  return p;
}

static int slRun(sl_store *st, sqlite3_stmt *q, const char *what) {
  int src = sqlite3_step(q);
  sqlite3_reset(q);
  return src == SQLITE_DONE ? SL_OK : slStoreStepFailed(st, src, what);
}

static int slFlushList(sl_store *st, sl_state *s, slEntry *e) {
  sqlite3_stmt *q;
  int rc = SL_OK;
  if (e->flags & SL_E_CLEARED) {
    rc = slStatePrepare(s, SL_Q_DELKEY, &q);
    if (rc) return rc;
    slBindEntryKey(s, q, e, 0);
    rc = slRun(st, q, "cannot clear a list");
    if (rc) return rc;
    e->flags &= ~SL_E_CLEARED;
    e->next_seq = 0;
  }
  if (e->npersist < e->nrows && e->next_seq < 0) {
    rc = slStatePrepare(s, SL_Q_MAXSEQ, &q);
    if (rc) return rc;
    slBindEntryKey(s, q, e, 0);
    int src = sqlite3_step(q);
    if (src != SQLITE_ROW) {
      sqlite3_reset(q);
      return slStoreStepFailed(st, src, "cannot read a list");
    }
    e->next_seq = sqlite3_column_type(q, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(q, 0) + 1;
    sqlite3_reset(q);
  }
  while (e->npersist < e->nrows) {
    rc = slStatePrepare(s, SL_Q_PUT, &q);
    if (rc) return rc;
    int p = slBindEntryKey(s, q, e, 0);
    sqlite3_bind_int64(q, p++, e->next_seq);
    slBindVals(s, q, p, e->rows[e->npersist]);
    rc = slRun(st, q, "cannot write a list");
    if (rc) return rc;
    e->next_seq++;
    e->npersist++;
  }
  if (!(e->flags & SL_E_LOADED)) slRowsFree(st, e);
  return SL_OK;
}

int slCacheFlushEntry(sl_store *st, slEntry *e) {
  sl_state *s = e->s;
  sqlite3_stmt *q;
  int rc;
  if (!(e->flags & SL_E_DIRTY)) return SL_OK;
  rc = slStoreBegin(st);
  if (rc) return rc;
  if (s->is_list) {
    rc = slFlushList(st, s, e);
  } else if (e->row) {
    rc = slStatePrepare(s, SL_Q_PUT, &q);
    if (rc == SL_OK) {
      slBindVals(s, q, slBindEntryKey(s, q, e, s->is_map), e->row);
      rc = slRun(st, q, "cannot write state");
    }
  } else {
    rc = slStatePrepare(s, SL_Q_DEL, &q);
    if (rc == SL_OK) {
      slBindEntryKey(s, q, e, s->is_map);
      rc = slRun(st, q, "cannot delete state");
    }
  }
  if (rc == SL_OK) {
    slDirtyUnlink(e);
    slCacheResize(st, e);
  }
  return rc;
}

/* A dirty entry to sort: its key group and first key bytes are copied in,
** so that sorting rarely touches the entries themselves. */
typedef struct slSortKey {
  int kg;
  uint64_t prefix;
  slEntry *e;
} slSortKey;

/* Orders by key group and key bytes, so that a flush writes the table's
** B-tree in key order, page after page. */
static int slSortCmp(const void *a, const void *b) {
  const slSortKey *x = a, *y = b;
  uint32_t n;
  int c;
  if (x->kg != y->kg) return x->kg < y->kg ? -1 : 1;
  if (x->prefix != y->prefix) return x->prefix < y->prefix ? -1 : 1;
  n = x->e->klen < y->e->klen ? x->e->klen : y->e->klen;
  c = n ? memcmp(x->e->kbytes, y->e->kbytes, n) : 0;
  if (c) return c;
  return x->e->klen < y->e->klen ? -1 : x->e->klen > y->e->klen;
}

int slCacheFlushState(sl_store *st, sl_state *s) {
  slSortKey *v;
  slEntry *e;
  size_t n = 0, i;
  int rc = SL_OK;
  if (!s->dirty) return SL_OK;
  for (e = s->dirty; e; e = e->dnext) n++;
  v = n > 1 ? slMalloc(&st->alloc, sizeof *v * n) : NULL;
  if (!v) {
    /* one entry, or no memory to sort: in list order */
    while (s->dirty && rc == SL_OK) rc = slCacheFlushEntry(st, s->dirty);
    return rc;
  }
  for (i = 0, e = s->dirty; e; e = e->dnext, i++) {
    uint64_t p = 0;
    for (uint32_t k = 0; k < 8; k++) p = p << 8 | (k < e->klen ? e->kbytes[k] : 0);
    v[i].kg = e->kg;
    v[i].prefix = p;
    v[i].e = e;
  }
  qsort(v, n, sizeof *v, slSortCmp);
  for (i = 0; i < n && rc == SL_OK; i++) rc = slCacheFlushEntry(st, v[i].e);
  slFree(&st->alloc, v);
  return rc;
}

int slCacheFlushAll(sl_store *st) {
  int rc = SL_OK;
  for (int i = 0; i < st->nstates && rc == SL_OK; i++) rc = slCacheFlushState(st, st->states[i]);
  return rc;
}

/* Keeps the cache within the budget: when it is over, writes every dirty
** entry and evicts entries down to 3/4 of the budget (with budget 0, all of
** them), giving entries used since the hand last passed a second chance.
** The entry a call just handed out stays. */
int slCacheTrim(sl_store *st) {
  size_t budget = st->cfg.memory_budget, low;
  size_t passes;
  slEntry *e;
  int rc;
  if (st->bytes <= budget && budget > 0) return SL_OK;
  rc = slCacheFlushAll(st);
  if (rc) return rc;
  low = budget / 4 * 3;
  /* every entry is looked at most twice: once to clear its bit, once more */
  passes = 2 * st->nentries + 1;
  e = st->lru_head;
  while (e && st->bytes > low && passes--) {
    slEntry *next = e->lnext;
    if (e == st->pin) {
      /* keep it */
    } else if ((e->flags & SL_E_REF) && budget > 0) {
      e->flags &= ~SL_E_REF;
      if (next) {
        slLruUnlink(st, e);
        slLruAppend(st, e);
      }
    } else {
      slCacheDrop(st, e);
    }
    e = next ? next : st->lru_head;
    if (!next) break;
  }
  return SL_OK;
}
