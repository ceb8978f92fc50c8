/*
** state.c — the keyed and non-keyed state operations: value, list, map,
** reducing and aggregating state, operator list and broadcast state. Every
** operation works on the cache; the cache decides when SQLite is touched.
*/
#include <string.h>

#include "store/store.h"

const char *slKindWord(int kind) {
  static const char *const w[] = {"",          "a value",          "a list",
                                  "a map",     "a reducing",       "an aggregating",
                                  "an operator list", "a broadcast map"};
  return kind >= 1 && kind <= SL_BROADCAST_MAP ? w[kind] : "an unknown";
}

#define SL_K(kind) (1u << (kind))
#define SL_KVALUES (SL_K(SL_VALUE_STATE) | SL_K(SL_REDUCING_STATE) | SL_K(SL_AGGREGATING_STATE))
#define SL_KLISTS (SL_K(SL_LIST_STATE) | SL_K(SL_OPERATOR_LIST))
#define SL_KMAPS (SL_K(SL_MAP_STATE) | SL_K(SL_BROADCAST_MAP))

/* The checks at the start of every state call, in full. */
static int slEnterSlow(sl_state *s, unsigned kinds, int write, const char *call, const char *want) {
  sl_store *st;
  int rc;
  if (!s || s->hdr.magic != SL_MAGIC_STATE) return SL_MISUSE;
  st = s->store;
  rc = slStoreUsable(st);
  if (rc) return rc;
  if (!(kinds & SL_K(s->kind)))
    return slStoreErr(st, SL_MISUSE, "%s: state '%s' is %s state, not %s state", call, s->name,
                      slKindWord(s->kind), want);
  if (write && (rc = slStoreWritable(st)) != SL_OK) return rc;
  if (!s->keyed) return SL_OK;
  if (!st->key_set)
    return slStoreErr(st, SL_MISUSE, "%s: state '%s' is keyed and no key is set; call "
                      "sl_store_set_key() first", call, s->name);
  if (s->key_checked == st->key_gen) return SL_OK;
  if (st->nkey != s->n_key)
    return slStoreErr(st, SL_MISUSE, "%s: state '%s' has %d key columns, the current key has %d",
                      call, s->name, s->n_key, st->nkey);
  for (int i = 0; i < s->n_key; i++)
    if (st->keyv[i].type != s->key[i].type)
      return slStoreErr(st, SL_MISUSE, "%s: key column '%s' of state '%s' is %s, the key has %s",
                        call, s->key[i].name, s->name, slTypeName(s->key[i].type),
                        slTypeName(st->keyv[i].type));
  s->key_checked = st->key_gen;
  return SL_OK;
}

/* The checks at the start of every state call: the common case inline. */
static inline int slEnter(sl_state *s, unsigned kinds, int write, const char *call,
                          const char *want) {
  sl_store *st;
  if (s && s->hdr.magic == SL_MAGIC_STATE && (kinds & SL_K(s->kind))) {
    st = s->store;
    if (slStoreUsable(st) == SL_OK && (!write || !st->iters) &&
        (!s->keyed || (st->key_set && st->ksig == s->ksig)))
      return SL_OK;
  }
  return slEnterSlow(s, kinds, write, call, want);
}

/* The end of every call that succeeded so far: keep within the budget. */
static int slLeave(sl_state *s, int rc, uint32_t pin) {
  sl_store *st = s->store;
  st->pin_s = pin == SL_NOSLOT ? NULL : s;
  st->pin_ix = pin;
  if ((rc == SL_OK || rc == SL_NOTFOUND) && (st->bytes + st->dirty_est > st->budget || !st->budget)) {
    int trc = slCacheTrim(st);
    if (trc) return trc;
  }
  return rc;
}

static int slCheckVals(sl_state *s, const slCol *c, int n, const sl_value *v, const char *what) {
  if (!v) return slStoreErr(s->store, SL_MISUSE, "state '%s': the %s values are NULL", s->name, what);
  for (int i = 0; i < n; i++) {
    if (v[i].type == SL_NULL) continue;
    if (v[i].type != c[i].type)
      return slStoreErr(s->store, SL_MISUSE, "state '%s': column '%s' is %s, the %s value is %s",
                        s->name, c[i].name, slTypeName(c[i].type), what, slTypeName(v[i].type));
    if ((v[i].type == SL_TEXT || v[i].type == SL_BLOB) && v[i].n && !v[i].v.p)
      return slStoreErr(s->store, SL_MISUSE, "state '%s': column '%s' has a NULL pointer", s->name,
                        c[i].name);
  }
  return SL_OK;
}

static int64_t slExpiry(sl_state *s) {
  return s->ttl_ms > 0 ? slStoreNow(s->store) + s->ttl_ms : 0;
}

static int slLiveExp(int64_t exp, int64_t now) { return exp == 0 || exp > now; }
static int slLive(const slRow *r, int64_t now) { return r && slLiveExp(r->exp, now); }

/* Binds the current key (kg, key columns) from ?1, then n more values. */
static int slBindCurrent(sl_state *s, sqlite3_stmt *q, const sl_value *more, int n) {
  sl_store *st = s->store;
  int p = 1;
  if (s->keyed) {
    sqlite3_bind_int(q, p++, st->kg);
    for (int i = 0; i < s->n_key; i++) slStoreBind(q, p++, &st->keyv[i], SQLITE_STATIC);
  }
  for (int i = 0; i < n; i++) slStoreBind(q, p++, &more[i], SQLITE_STATIC);
  return p;
}

/* Loads the row of the current key (and map key) into entry ix. */
static int slLoadRow(sl_state *s, uint32_t ix, const sl_value *mk) {
  sl_store *st = s->store;
  sl_value v[SL_MAX_VALUE_COLUMNS];
  sqlite3_stmt *q;
  int rc = slStatePrepare(s, SL_Q_GET, &q), src;
  if (rc) return rc;
  slBindCurrent(s, q, mk, mk ? s->n_mk : 0);
  src = sqlite3_step(q);
  if (src == SQLITE_ROW) {
    slStoreColumns(q, 0, s->n_val, v);
    rc = slCacheSetRow(s, ix, v, sqlite3_column_int64(q, s->n_val));
  } else if (src != SQLITE_DONE) {
    rc = slStoreSqlErr(st, src, "cannot read state");
  }
  sqlite3_reset(q);
  return rc;
}

/* The cache entry of key bytes k (the current key, and map key mk when not
** NULL), made when missing and then, when `load`, filled from the table. */
static inline int slEntryFind(sl_state *s, const unsigned char *k, uint32_t klen, uint32_t hash,
                       const sl_value *mk, int load, uint32_t *out) {
  uint32_t ix = slCacheFind(s, k, klen, hash);
  int rc = SL_OK;
  if (ix == SL_NOSLOT) {
    rc = slCacheAdd(s, k, klen, hash, s->keyed ? s->store->kg : -1, &ix);
    if (rc) return rc;
    if (load) rc = slLoadRow(s, ix, mk);
    if (rc) {
      slCacheDrop(s, ix);
      return rc;
    }
  }
  slCacheTouch(s, ix);
  *out = ix;
  return SL_OK;
}

/* The cache entry of the current key of s; created (and, when `load`,
** filled from the table) if missing. */
static int slEntryOf(sl_state *s, int load, uint32_t *out) {
  sl_store *st = s->store;
  uint32_t hash = s->keyed ? st->khash : s->seed, ix;
  const unsigned char *k = s->keyed ? st->kbuf : NULL;
  uint32_t klen = s->keyed ? (uint32_t)st->klen : 0;
  int rc = SL_OK;
  if (s->memo_gen == st->key_gen && s->memo_tgen == s->tab.gen && s->memo_ix != SL_NOSLOT) {
    /* the same key as the call before (a get, then an update) */
    slCacheTouch(s, s->memo_ix);
    *out = s->memo_ix;
    return SL_OK;
  }
  rc = slEntryFind(s, k, klen, hash, NULL, load, &ix);
  if (rc) return rc;
  s->memo_ix = ix;
  s->memo_gen = st->key_gen;
  s->memo_tgen = s->tab.gen;
  *out = ix;
  return SL_OK;
}

/* The cache entry of (current key, map key). */
static int slMapEntryOf(sl_state *s, const sl_value *mk, int load, uint32_t *out) {
  sl_store *st = s->store;
  const char *why = "";
  int bad = 0;
  size_t klen = s->keyed ? st->klen : 0;
  size_t mlen = slKeySize(mk, s->n_mk, 0, &why, &bad), need = klen + mlen;
  uint32_t hash;
  if (mlen == 0)
    return slStoreErr(st, SL_MISUSE, "state '%s': map-key column '%s' %s", s->name,
                      s->mk[bad].name, why);
  for (int i = 0; i < s->n_mk; i++)
    if (mk[i].type != s->mk[i].type)
      return slStoreErr(st, SL_MISUSE, "state '%s': map-key column '%s' is %s, the value is %s",
                        s->name, s->mk[i].name, slTypeName(s->mk[i].type), slTypeName(mk[i].type));
  if (need > UINT32_MAX)
    return slStoreErr(st, SL_MISUSE, "state '%s': the key and map key are too long", s->name);
  if (need > st->mkcap) {
    unsigned char *p = slRealloc(&st->alloc, st->mkbuf, need * 2);
    if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
    st->mkbuf = p;
    st->mkcap = need * 2;
  }
  if (klen) memcpy(st->mkbuf, st->kbuf, klen);
  slKeyEncode(mk, s->n_mk, st->mkbuf + klen);
  hash = slMurmur3(st->mkbuf + klen, mlen, (s->keyed ? st->khash : 0) ^ s->seed);
  return slEntryFind(s, st->mkbuf, (uint32_t)need, hash, mk, load, out);
}

/* Sets an entry's row and marks it dirty. On failure the entry is as it
** was (a failed row change leaves the old row), or, when it cannot be marked
** dirty, forgotten: its table row stays what it was, as does a call that
** failed. */
static int slPut(sl_state *s, uint32_t ix, const sl_value *v, int64_t exp) {
  slSlot *e = slSlotAt(&s->tab, ix);
  int rc = SL_OK, was_dirty = (e->flags & SL_S_DIRTY) != 0;
  if (!(v && slCacheSetFixed(s, ix, v, exp))) rc = slCacheSetRow(s, ix, v, exp);
  if (rc == SL_OK) rc = slCacheDirty(s, ix);
  if (rc != SL_OK && !was_dirty && !(e->flags & SL_S_DIRTY)) {
    /* an entry made for this write without reading its row, or one whose
    ** new row cannot be written later: it must not stand for the table.
    ** While a frozen batch is not committed the table may be older than the
    ** entry, so the batch is committed first (a failure of that fails the
    ** store, and its message says so) */
    if (s->store->frozen) {
      int src = slStoreSettle(s->store);
      if (src) rc = src;
    }
    slCacheDrop(s, ix);
  }
  return rc;
}

/* A read of a live row; refreshes the expiry when the state asks for it. */
static int slRead(sl_state *s, uint32_t ix, const sl_value **out) {
  int64_t now = s->has_expires ? slStoreNow(s->store) : 0, exp = 0;
  const sl_value *v;
  if (!slCacheRowFixed(s, ix, &v, &exp)) v = slCacheRow(s, ix, &exp);
  if (!v || !slLiveExp(exp, now)) {
    *out = NULL;
    return SL_NOTFOUND;
  }
  if ((s->ttl_flags & SL_TTL_REFRESH_ON_READ) && s->ttl_ms > 0) {
    int rc = slCacheDirty(s, ix);
    if (rc) return rc;
    slCacheSetExpiry(s, ix, now + s->ttl_ms);
  }
  *out = v;
  return SL_OK;
}

/* ---- value, reducing, aggregating -------------------------------------- */

int sl_value_get(sl_state *s, const sl_value **out) {
  uint32_t ix = SL_NOSLOT;
  int rc = slEnter(s, SL_KVALUES, 0, "sl_value_get", "a value, reducing or aggregating");
  if (rc) return rc;
  if (!out) return slStoreErr(s->store, SL_MISUSE, "sl_value_get: the output pointer is NULL");
  *out = NULL;
  rc = slEntryOf(s, 1, &ix);
  if (rc == SL_OK) rc = slRead(s, ix, out);
  return slLeave(s, rc, ix);
}

int sl_value_update(sl_state *s, const sl_value *vals) {
  uint32_t ix = SL_NOSLOT;
  int rc = slEnter(s, SL_K(SL_VALUE_STATE), 1, "sl_value_update", "a value");
  if (rc == SL_OK) rc = slCheckVals(s, s->val, s->n_val, vals, "new");
  if (rc) return rc;
  rc = slEntryOf(s, 0, &ix);
  if (rc == SL_OK) rc = slPut(s, ix, vals, slExpiry(s));
  return slLeave(s, rc, SL_NOSLOT);
}

/* Checks what a user callback returned against the columns. */
static int slCheckOut(sl_state *s, const slCol *c, int n, const sl_value *v, const char *cb) {
  for (int i = 0; i < n; i++) {
    if (v[i].type == SL_NULL || v[i].type == c[i].type) {
      if ((v[i].type == SL_TEXT || v[i].type == SL_BLOB) && v[i].n && !v[i].v.p) break;
      continue;
    }
    return slStoreErr(s->store, SL_MISUSE, "state '%s': the %s callback returned %s for %s column '%s'",
                      s->name, cb, slTypeName(v[i].type), slTypeName(c[i].type), c[i].name);
  }
  for (int i = 0; i < n; i++)
    if ((v[i].type == SL_TEXT || v[i].type == SL_BLOB) && v[i].n && !v[i].v.p)
      return slStoreErr(s->store, SL_MISUSE, "state '%s': the %s callback returned a NULL pointer "
                        "for column '%s'", s->name, cb, c[i].name);
  return SL_OK;
}

static int slCallback(sl_state *s, int crc, const char *cb) {
  if (crc == SL_OK) return SL_OK;
  return slStoreErr(s->store, crc, "state '%s': the %s callback failed with %s", s->name, cb,
                    sl_errstr(crc));
}

static void slDefaults(const sl_state *s, sl_value *v) {
  for (int i = 0; i < s->n_val; i++) v[i] = s->val[i].dflt;
}

int sl_state_add(sl_state *s, const sl_value *in) {
  sl_value out[SL_MAX_VALUE_COLUMNS], acc[SL_MAX_VALUE_COLUMNS];
  const sl_value *cur = NULL;
  uint32_t ix = SL_NOSLOT;
  int64_t now, exp = 0;
  int rc = slEnter(s, SL_K(SL_REDUCING_STATE) | SL_K(SL_AGGREGATING_STATE), 1, "sl_state_add",
                   "a reducing or aggregating");
  if (rc) return rc;
  if (s->opened)
    return slStoreErr(s->store, SL_MISUSE, "sl_state_add: state '%s' was opened without its "
                      "callbacks (sl_state_open); register it with sl_state_register()", s->name);
  if (s->kind == SL_REDUCING_STATE) rc = slCheckVals(s, s->val, s->n_val, in, "input");
  else if (!in) rc = slStoreErr(s->store, SL_MISUSE, "state '%s': the input values are NULL", s->name);
  if (rc) return rc;
  rc = slEntryOf(s, 1, &ix);
  if (rc) return slLeave(s, rc, SL_NOSLOT);
  now = s->has_expires ? slStoreNow(s->store) : 0;
  cur = slCacheRow(s, ix, &exp);
  if (cur && !slLiveExp(exp, now)) cur = NULL;
  memset(out, 0, sizeof out);
  if (s->kind == SL_REDUCING_STATE) {
    if (!cur) {
      rc = slPut(s, ix, in, slExpiry(s));
      return slLeave(s, rc, SL_NOSLOT);
    }
    rc = slCallback(s, s->reduce(s->ud, cur, in, out), "reduce");
    if (rc == SL_OK) rc = slCheckOut(s, s->val, s->n_val, out, "reduce");
  } else {
    if (!cur) {
      slDefaults(s, acc);
      cur = acc;
    }
    rc = slCallback(s, s->agg_add(s->ud, cur, in, out), "agg_add");
    if (rc == SL_OK) rc = slCheckOut(s, s->val, s->n_val, out, "agg_add");
  }
  if (rc == SL_OK) rc = slPut(s, ix, out, slExpiry(s));
  return slLeave(s, rc, SL_NOSLOT);
}

int sl_agg_merge(sl_state *s, const sl_value *accIn) {
  sl_value out[SL_MAX_VALUE_COLUMNS];
  const sl_value *cur;
  uint32_t ix = SL_NOSLOT;
  int64_t exp = 0;
  int rc = slEnter(s, SL_K(SL_AGGREGATING_STATE), 1, "sl_agg_merge", "an aggregating");
  if (rc == SL_OK && s->opened)
    rc = slStoreErr(s->store, SL_MISUSE, "sl_agg_merge: state '%s' was opened without its callbacks",
                    s->name);
  if (rc == SL_OK) rc = slCheckVals(s, s->val, s->n_val, accIn, "accumulator");
  if (rc) return rc;
  rc = slEntryOf(s, 1, &ix);
  if (rc) return slLeave(s, rc, SL_NOSLOT);
  cur = slCacheRow(s, ix, &exp);
  if (!cur || !slLiveExp(exp, s->has_expires ? slStoreNow(s->store) : 0)) {
    rc = slPut(s, ix, accIn, slExpiry(s));
    return slLeave(s, rc, SL_NOSLOT);
  }
  memset(out, 0, sizeof out);
  rc = slCallback(s, s->agg_merge(s->ud, cur, accIn, out), "agg_merge");
  if (rc == SL_OK) rc = slCheckOut(s, s->val, s->n_val, out, "agg_merge");
  if (rc == SL_OK) rc = slPut(s, ix, out, slExpiry(s));
  return slLeave(s, rc, SL_NOSLOT);
}

int sl_agg_get(sl_state *s, const sl_value **out) {
  sl_value res[SL_MAX_VALUE_COLUMNS];
  const sl_value *acc = NULL;
  uint32_t ix = SL_NOSLOT;
  int rc = slEnter(s, SL_K(SL_AGGREGATING_STATE), 0, "sl_agg_get", "an aggregating");
  if (rc) return rc;
  if (s->opened)
    return slStoreErr(s->store, SL_MISUSE, "sl_agg_get: state '%s' was opened without its callbacks",
                      s->name);
  if (!out) return slStoreErr(s->store, SL_MISUSE, "sl_agg_get: the output pointer is NULL");
  *out = NULL;
  rc = slEntryOf(s, 1, &ix);
  if (rc == SL_OK) rc = slRead(s, ix, &acc);
  if (rc == SL_OK) {
    memset(res, 0, sizeof res);
    rc = slCallback(s, s->agg_result(s->ud, acc, res), "agg_result");
    if (rc == SL_OK) rc = slCheckOut(s, s->result, s->n_result, res, "agg_result");
    if (rc == SL_OK) rc = slRowSet(s->store, &s->scratch, res, s->n_result, 0);
    if (rc == SL_OK) *out = s->scratch->v;
  }
  return slLeave(s, rc, ix);
}

/* ---- lists ------------------------------------------------------------- */

/* Appends a row to a cached list; `pending` when it is still to be written
** (counted for the checkpoint's copy), not when it was read from the table. */
static int slListAppend(sl_state *s, slList *l, const sl_value *row, int64_t exp, int pending) {
  sl_store *st = s->store;
  int rc;
  if (l->nrows == l->caprows) {
    size_t cap = l->caprows ? l->caprows * 2 : 4;
    slRow **p = slRealloc(&st->alloc, l->rows, sizeof *p * cap);
    if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
    l->rows = p;
    l->caprows = cap;
  }
  l->rows[l->nrows] = NULL;
  rc = slRowSet(st, &l->rows[l->nrows], row, s->n_val, exp);
  if (rc) return rc;
  l->rowbytes += l->rows[l->nrows]->cap;
  /* its record in a frozen batch: a row image, about this size */
  if (pending) slCacheDirtyMore(s, l->rows[l->nrows]->cap);
  l->nrows++;
  return SL_OK;
}

static int slListAdd(sl_state *s, const sl_value *rows, size_t n, int replace, const char *call) {
  uint32_t ix = SL_NOSLOT;
  slList *l, old;
  int64_t exp;
  int rc = slEnter(s, SL_KLISTS, 1, call, "a list");
  if (rc) return rc;
  if (n && !rows) return slStoreErr(s->store, SL_MISUSE, "%s: state '%s': the rows are NULL", call, s->name);
  for (size_t i = 0; i < n && rc == SL_OK; i++)
    rc = slCheckVals(s, s->val, s->n_val, rows + i * (size_t)s->n_val, "list");
  if (rc) return rc;
  rc = slEntryOf(s, 0, &ix);
  if (rc == SL_OK) rc = slCacheDirty(s, ix);
  if (rc) return slLeave(s, rc, SL_NOSLOT);
  l = slCacheList(s, ix);
  if (replace) {
    /* the new rows may point into the old ones: free those last */
    slSlot *e = slSlotAt(&s->tab, ix);
    old = *l;
    l->rows = NULL;
    l->nrows = l->caprows = l->npersist = 0;
    l->rowbytes = 0;
    e->flags |= SL_S_CLEARED | SL_S_LOADED;
    l->next_seq = 0;
  }
  exp = slExpiry(s);
  for (size_t i = 0; i < n && rc == SL_OK; i++)
    rc = slListAppend(s, l, rows + i * (size_t)s->n_val, exp, 1);
  if (replace) slListRowsFree(s, &old);
  slCacheListSync(s, l);
  return slLeave(s, rc, SL_NOSLOT);
}

int sl_list_add(sl_state *s, const sl_value *row) {
  if (!row && s && s->hdr.magic == SL_MAGIC_STATE && slStoreUsable(s->store) == SL_OK)
    return slStoreErr(s->store, SL_MISUSE, "sl_list_add: state '%s': the row is NULL", s->name);
  return slListAdd(s, row, 1, 0, "sl_list_add");
}

int sl_list_add_all(sl_state *s, const sl_value *rows, size_t n) {
  return slListAdd(s, rows, n, 0, "sl_list_add_all");
}

int sl_list_update(sl_state *s, const sl_value *rows, size_t n) {
  return slListAdd(s, rows, n, 1, "sl_list_update");
}

/* Makes entry ix hold the whole list: writes its pending rows, then reads it. */
static int slListLoad(sl_state *s, uint32_t ix) {
  sl_store *st = s->store;
  slSlot *e = slSlotAt(&s->tab, ix);
  slList *l = slCacheList(s, ix);
  sl_value v[SL_MAX_VALUE_COLUMNS];
  sqlite3_stmt *q;
  int rc, src;
  if (e->flags & SL_S_LOADED) return SL_OK;
  /* the rows of this list that a checkpoint froze are in its batch alone
  ** until the batch is committed */
  rc = slStoreSettle(st);
  if (rc == SL_OK) rc = slCacheFlushEntry(s, ix);
  if (rc) return rc;
  slListRowsFree(s, l);
  rc = slStatePrepare(s, SL_Q_LOAD, &q);
  if (rc) return rc;
  slBindCurrent(s, q, NULL, 0);
  l->next_seq = 0;
  while ((src = sqlite3_step(q)) == SQLITE_ROW) {
    slStoreColumns(q, 1, s->n_val, v);
    rc = slListAppend(s, l, v, sqlite3_column_int64(q, 1 + s->n_val), 0);
    if (rc) break;
    l->next_seq = sqlite3_column_int64(q, 0) + 1;
  }
  sqlite3_reset(q);
  if (rc == SL_OK && src != SQLITE_DONE) rc = slStoreSqlErr(st, src, "cannot read a list");
  if (rc) {
    slListRowsFree(s, l);
    l->next_seq = -1;
    slCacheListSync(s, l);
    return rc;
  }
  l->npersist = l->nrows;
  e->flags |= SL_S_LOADED;
  slCacheListSync(s, l);
  return SL_OK;
}

int sl_list_get(sl_state *s, const sl_value **rows, size_t *n) {
  sl_store *st;
  uint32_t ix = SL_NOSLOT;
  slList *l;
  size_t live = 0, nv;
  int64_t now;
  int refresh, rc = slEnter(s, SL_KLISTS, 0, "sl_list_get", "a list");
  if (rc) return rc;
  st = s->store;
  if (!rows || !n) return slStoreErr(st, SL_MISUSE, "sl_list_get: an output pointer is NULL");
  *rows = NULL;
  *n = 0;
  rc = slEntryOf(s, 0, &ix);
  if (rc == SL_OK) rc = slListLoad(s, ix);
  if (rc) return slLeave(s, rc, SL_NOSLOT);
  l = slCacheList(s, ix);
  now = s->has_expires ? slStoreNow(st) : 0;
  refresh = (s->ttl_flags & SL_TTL_REFRESH_ON_READ) && s->ttl_ms > 0;
  nv = (size_t)s->n_val;
  if (l->nrows * nv > s->out_cap) {
    sl_value *p = slRealloc(&st->alloc, s->out, sizeof *p * l->nrows * nv);
    if (!p) return slLeave(s, slStoreErr(st, SL_NOMEM, "out of memory"), SL_NOSLOT);
    s->out = p;
    s->out_cap = l->nrows * nv;
  }
  if (refresh && (rc = slCacheDirty(s, ix)) != SL_OK) return slLeave(s, rc, SL_NOSLOT);
  for (size_t i = 0; i < l->nrows; i++) {
    if (!slLive(l->rows[i], now)) continue;
    if (refresh) l->rows[i]->exp = now + s->ttl_ms;
    memcpy(s->out + live * nv, l->rows[i]->v, sizeof(sl_value) * nv);
    live++;
  }
  if (refresh && live) {
    /* the new expiries must reach the table: rewrite the list */
    slSlotAt(&s->tab, ix)->flags |= SL_S_CLEARED;
    l->npersist = 0;
  }
  *rows = live ? s->out : NULL;
  *n = live;
  return slLeave(s, live ? SL_OK : SL_NOTFOUND, ix);
}

/* ---- maps -------------------------------------------------------------- */

static int slMapEnter(sl_state *s, const sl_value *mk, int write, const char *call) {
  int rc = slEnter(s, SL_KMAPS, write, call, "a map");
  if (rc) return rc;
  if (!mk) return slStoreErr(s->store, SL_MISUSE, "%s: state '%s': the map key is NULL", call, s->name);
  return SL_OK;
}

int sl_map_put(sl_state *s, const sl_value *mk, const sl_value *vals) {
  uint32_t ix = SL_NOSLOT;
  int rc = slMapEnter(s, mk, 1, "sl_map_put");
  if (rc == SL_OK) rc = slCheckVals(s, s->val, s->n_val, vals, "new");
  if (rc) return rc;
  rc = slMapEntryOf(s, mk, 0, &ix);
  if (rc == SL_OK) rc = slPut(s, ix, vals, slExpiry(s));
  return slLeave(s, rc, SL_NOSLOT);
}

int sl_map_get(sl_state *s, const sl_value *mk, const sl_value **out) {
  uint32_t ix = SL_NOSLOT;
  int rc = slMapEnter(s, mk, 0, "sl_map_get");
  if (rc) return rc;
  if (!out) return slStoreErr(s->store, SL_MISUSE, "sl_map_get: the output pointer is NULL");
  *out = NULL;
  rc = slMapEntryOf(s, mk, 1, &ix);
  if (rc == SL_OK) rc = slRead(s, ix, out);
  return slLeave(s, rc, ix);
}

int sl_map_contains(sl_state *s, const sl_value *mk, int *found) {
  const sl_value *v = NULL;
  uint32_t ix = SL_NOSLOT;
  int rc = slMapEnter(s, mk, 0, "sl_map_contains");
  if (rc) return rc;
  if (!found) return slStoreErr(s->store, SL_MISUSE, "sl_map_contains: the output pointer is NULL");
  *found = 0;
  rc = slMapEntryOf(s, mk, 1, &ix);
  if (rc == SL_OK) rc = slRead(s, ix, &v);
  if (rc == SL_OK) *found = 1;
  if (rc == SL_NOTFOUND) rc = SL_OK;
  return slLeave(s, rc, ix);
}

int sl_map_remove(sl_state *s, const sl_value *mk) {
  uint32_t ix = SL_NOSLOT;
  int rc = slMapEnter(s, mk, 1, "sl_map_remove");
  if (rc) return rc;
  rc = slMapEntryOf(s, mk, 0, &ix);
  if (rc == SL_OK) rc = slPut(s, ix, NULL, 0);
  return slLeave(s, rc, SL_NOSLOT);
}

/* ---- clear --------------------------------------------------------------- */

/* Clears a map for the current key: writes the state's dirty entries, deletes
** the key's rows in the table and forgets the key's cached entries. */
static int slMapClear(sl_state *s) {
  sl_store *st = s->store;
  slTab *t = &s->tab;
  sqlite3_stmt *q;
  size_t klen = s->keyed ? st->klen : 0;
  int rc = slCacheFlushState(s), src;
  if (rc == SL_OK) rc = slStoreBegin(st);
  if (rc == SL_OK) rc = slStatePrepare(s, SL_Q_DELKEY, &q);
  if (rc) return rc;
  slBindCurrent(s, q, NULL, 0);
  src = sqlite3_step(q);
  sqlite3_reset(q);
  if (src != SQLITE_DONE) return slStoreStepFailed(st, src, "cannot clear a map");
  /* canonical key bytes are prefix-free: an entry whose bytes start with the
  ** current key's is an entry of the current key */
  for (uint32_t i = 0; i < t->cap; i++) {
    slSlot *e = slSlotAt(t, i);
    if ((e->flags & SL_S_USED) && e->klen >= klen &&
        (klen == 0 || memcmp(slSlotKey(t, e), st->kbuf, klen) == 0))
      slCacheDrop(s, i);
  }
  return SL_OK;
}

int sl_state_clear(sl_state *s) {
  uint32_t ix = SL_NOSLOT;
  int rc = slEnter(s, ~0u, 1, "sl_state_clear", "any");
  if (rc) return rc;
  if (s->is_map) return slLeave(s, slMapClear(s), SL_NOSLOT);
  rc = slEntryOf(s, 0, &ix);
  if (rc == SL_OK) rc = slCacheDirty(s, ix);
  if (rc) return slLeave(s, rc, SL_NOSLOT);
  if (s->is_list) {
    slList *l = slCacheList(s, ix);
    slListRowsFree(s, l);
    slSlotAt(&s->tab, ix)->flags |= SL_S_CLEARED | SL_S_LOADED;
    l->next_seq = 0;
    slCacheListSync(s, l);
  } else {
    slCacheSetRow(s, ix, NULL, 0);
  }
  return slLeave(s, SL_OK, SL_NOSLOT);
}
