/*
** cache.c — the write-back cache of a store: one open-addressing table per
** state whose slots hold the key bytes and the value as a packed row inline
** (on the heap only when they do not fit), so that a hit reads one slot.
** Reads are served from it and writes absorbed; dirty entries go to SQLite
** inside the store's open write transaction when the memory budget is
** exceeded or at a commit, in key order. Clean entries are evicted by a
** clock hand that gives recently used ones a second chance.
*/
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

#define SL_TAB_MIN 8u
/* The largest slot: a 16-byte head, a key area of at most 64 bytes and a
** value area of at most 80 (a packed row of up to 64 bytes and 16 of
** payload). */
#define SL_SLOT_MAX 160u

static uint32_t slRound8(uint32_t n) { return (n + 7u) & ~7u; }

static int slIsVar(int type) { return type == SL_TEXT || type == SL_BLOB; }

/* ---- packed rows ------------------------------------------------------------

   A packed row of a value or map state: [expires_at int64, when the state has
   a TTL][bits 32..63 of the NULL mask, uint32 + 4 unused bytes, when it has
   more than 32 value columns] then 8 bytes per value column (INTEGER int64,
   REAL double, TEXT/BLOB uint32 length + uint32 offset of the payload from
   the row's start), then the payloads, each followed by a NUL byte. Bits
   0..31 of the NULL mask live in the slot. A packed row on the heap is
   preceded by 8 bytes: its size as a uint32, and 4 unused. */

static uint32_t slColBase(const sl_state *s) { return s->pfix - 8u * (uint32_t)s->n_val; }

static size_t slPackSize(const sl_state *s, const sl_value *v) {
  size_t n = s->pfix;
  if (s->nvar)
    for (int i = 0; i < s->n_val; i++)
      if (slIsVar(v[i].type)) n += v[i].n + 1;
  return n;
}

/* 1 when every value has its column's type or is NULL. */
static int slRowTyped(const sl_state *s, const sl_value *v) {
  for (int i = 0; i < s->n_val; i++)
    if (v[i].type != SL_NULL && v[i].type != s->val[i].type) return 0;
  return 1;
}

static void slPack(const sl_state *s, const sl_value *v, int64_t exp, unsigned char *dst,
                   uint32_t *nulls_lo) {
  unsigned char *col = dst + slColBase(s);
  uint64_t nulls = 0;
  size_t off = s->pfix;
  for (int i = 0; i < s->n_val; i++, col += 8) {
    switch (v[i].type) {
      case SL_INTEGER: memcpy(col, &v[i].v.i, 8); break;
      case SL_REAL: memcpy(col, &v[i].v.r, 8); break;
      case SL_TEXT:
      case SL_BLOB: {
        uint32_t len = (uint32_t)v[i].n, o = (uint32_t)off;
        memcpy(col, &len, 4);
        memcpy(col + 4, &o, 4);
        if (len) memcpy(dst + off, v[i].v.p, len);
        dst[off + len] = 0;
        off += (size_t)len + 1;
        break;
      }
      default:
        memset(col, 0, 8);
        nulls |= (uint64_t)1 << i;
    }
  }
  if (s->has_expires) memcpy(dst, &exp, 8);
  if (s->n_val > 32) {
    uint32_t hi = (uint32_t)(nulls >> 32);
    memcpy(dst + (s->has_expires ? 8 : 0), &hi, 4);
  }
  *nulls_lo = (uint32_t)nulls;
}

void slCacheUnpack(const sl_state *s, const unsigned char *p, uint32_t nulls_lo, sl_value *out,
                   int64_t *exp) {
  const unsigned char *col = p + slColBase(s);
  uint64_t nulls = nulls_lo;
  if (s->n_val > 32) {
    uint32_t hi;
    memcpy(&hi, p + (s->has_expires ? 8 : 0), 4);
    nulls |= (uint64_t)hi << 32;
  }
  if (!s->nvar && !nulls) {
    for (int i = 0; i < s->n_val; i++, col += 8) {
      out[i].type = s->val[i].type;
      out[i].n = 0;
      memcpy(&out[i].v, col, 8);
    }
    if (exp) {
      if (s->has_expires) memcpy(exp, p, 8);
      else *exp = 0;
    }
    return;
  }
  for (int i = 0; i < s->n_val; i++, col += 8) {
    sl_value *o = &out[i];
    if (nulls >> i & 1) {
      o->type = SL_NULL;
      o->n = 0;
      o->v.i = 0;
      continue;
    }
    o->type = s->val[i].type;
    if (slIsVar(o->type)) {
      uint32_t len, off;
      memcpy(&len, col, 4);
      memcpy(&off, col + 4, 4);
      o->n = len;
      o->v.p = p + off;
    } else {
      o->n = 0;
      memcpy(&o->v.i, col, 8);
    }
  }
  if (exp) {
    if (s->has_expires) memcpy(exp, p, 8);
    else *exp = 0;
  }
}

/* ---- tables ------------------------------------------------------------------ */

static void *slGetPtr(const unsigned char *a) {
  void *p;
  memcpy(&p, a, sizeof p);
  return p;
}

static void slPutPtr(unsigned char *a, const void *p) { memcpy(a, &p, sizeof p); }

int slCacheStateInit(sl_state *s) {
  sl_store *st = s->store;
  slTab *t = &s->tab;
  uint32_t kfix = 0, kvar = 0;
  const slCol *cols[2] = {s->keyed ? s->key : NULL, s->mk};
  int ncols[2] = {s->keyed ? s->n_key : 0, s->n_mk};
  for (int c = 0; c < 2; c++)
    for (int i = 0; i < ncols[c]; i++) {
      if (slIsVar(cols[c][i].type)) kvar++;
      else kfix += 9;
    }
  /* short TEXT and BLOB keys (up to about a dozen bytes each) stay inline */
  t->kin = slRound8(kfix + 5 * kvar + (kvar ? 12 : 0));
  if (t->kin > 64) t->kin = 64;
  if (t->kin < 8) t->kin = 8;
  s->nvar = 0;
  for (int i = 0; i < s->n_val; i++) s->nvar += slIsVar(s->val[i].type);
  s->pfix = (s->has_expires ? 8u : 0u) + (s->n_val > 32 ? 8u : 0u) + 8u * (uint32_t)s->n_val;
  if (s->is_list) t->vin = 8;
  else if (s->pfix <= 64) t->vin = slRound8(s->pfix + (s->nvar ? 16 : 0));
  else t->vin = 8; /* wide rows live on the heap */
  t->ss = (uint32_t)sizeof(slSlot) + t->kin + t->vin;
  if (t->ss > SL_SLOT_MAX) return slStoreErr(st, SL_ERROR, "internal: a slot of %u bytes", t->ss);
  /* a batch record: its 32-byte head, its place in the index, the key, the
  ** packed row (or, for a list, a guess at its new rows) */
  t->dcost = 32 + 8 + t->kin + (s->is_list ? 64 : slRound8(s->pfix + (s->nvar ? 16 : 0)));
  t->cap = SL_TAB_MIN;
  t->slots = slMalloc(&st->alloc, (size_t)t->cap * t->ss);
  s->vout = slMalloc(&st->alloc, sizeof *s->vout * (size_t)s->n_val);
  if (!t->slots || !s->vout) {
    slFree(&st->alloc, t->slots);
    slFree(&st->alloc, s->vout);
    t->slots = NULL;
    s->vout = NULL;
    return slStoreErr(st, SL_NOMEM, "out of memory");
  }
  memset(t->slots, 0, (size_t)t->cap * t->ss);
  st->bytes += (size_t)t->cap * t->ss;
  st->arrays += (size_t)t->cap * t->ss;
  s->memo_ix = SL_NOSLOT;
  s->ksig = (uint64_t)s->n_key;
  for (int i = 0; i < s->n_key; i++) s->ksig = slKeySigAdd(s->ksig, s->key[i].type);
  return SL_OK;
}

void slListRowsFree(sl_state *s, slList *l) {
  for (size_t i = 0; i < l->nrows; i++) slFree(&s->store->alloc, l->rows[i]);
  slFree(&s->store->alloc, l->rows);
  l->rows = NULL;
  l->nrows = l->caprows = l->npersist = 0;
  l->rowbytes = 0;
}

void slCacheListSync(sl_state *s, slList *l) {
  size_t n = SL_HEAP(sizeof *l) + (l->caprows ? SL_HEAP(l->caprows * sizeof(slRow *)) : 0) +
             l->rowbytes + SL_HEAP(0) * l->nrows;
  s->store->bytes = s->store->bytes - l->acct + n;
  l->acct = n;
}

/* Frees what the value area of e points to. */
static void slValueFree(sl_state *s, slSlot *e) {
  sl_store *st = s->store;
  unsigned char *a = slSlotVal(&s->tab, e);
  if (s->is_list) {
    slList *l = slGetPtr(a);
    if (l) {
      slListRowsFree(s, l);
      st->bytes -= l->acct;
      slFree(&st->alloc, l);
      slPutPtr(a, NULL);
    }
    return;
  }
  if (e->flags & SL_S_GENERIC) {
    slRow *r = slGetPtr(a);
    st->bytes -= SL_HEAP(r->cap);
    slFree(&st->alloc, r);
  } else if (e->flags & SL_S_VHEAP) {
    unsigned char *b = slGetPtr(a);
    uint32_t n;
    memcpy(&n, b, 4);
    st->bytes -= SL_HEAP((size_t)n + 8);
    slFree(&st->alloc, b);
  }
  e->flags &= (uint16_t)~(SL_S_GENERIC | SL_S_VHEAP | SL_S_ROW);
  e->nulls = 0;
}

void slCacheDrop(sl_state *s, uint32_t ix) {
  sl_store *st = s->store;
  slTab *t = &s->tab;
  slSlot *e = slSlotAt(t, ix);
  slValueFree(s, e);
  if (e->klen > t->kin) {
    slFree(&st->alloc, slSlotKey(t, e));
    st->bytes -= SL_HEAP(e->klen);
  }
  e->flags = SL_S_TOMB;
  t->used--;
  t->tombs++;
  t->gen++;
  if (st->pin_s == s && st->pin_ix == ix) st->pin_s = NULL;
}

void slCacheStateFree(sl_state *s) {
  sl_store *st = s->store;
  slTab *t = &s->tab;
  if (!t->slots) return;
  for (uint32_t i = 0; i < t->cap; i++)
    if (slSlotAt(t, i)->flags & SL_S_USED) slCacheDrop(s, i);
  st->bytes -= (size_t)t->cap * t->ss;
  st->arrays -= (size_t)t->cap * t->ss;
  slFree(&st->alloc, t->slots);
  slFree(&st->alloc, t->dirty);
  slFree(&st->alloc, s->vout);
  slFree(&st->alloc, s->pack);
  memset(t, 0, sizeof *t);
  s->vout = NULL;
  s->pack = NULL;
  s->pack_cap = 0;
}

void slCacheFree(sl_store *st) {
  for (int i = 0; i < st->nstates; i++) slCacheStateFree(st->states[i]);
}

/* Rehashes the table in place into newcap slots (cap or 2 * cap), dropping
** the tombstones; rebuilds the dirty list. The array grows with realloc
** (for large blocks the C library moves pages rather than copying them), so
** memory does not briefly hold both an old and a new array. Every entry is
** marked to move; each marked entry is then taken out and placed by probing
** from its home slot, skipping entries already placed and swapping with
** marked ones. A placed entry never skipped a marked slot, so the slots
** emptied later are never on a placed entry's probe path. */
static int slTabRehash(sl_state *s, uint32_t newcap) {
  sl_store *st = s->store;
  slTab *t = &s->tab;
  uint32_t mask = newcap - 1, nd = 0;
  unsigned char tmp[SL_SLOT_MAX], tmp2[SL_SLOT_MAX];
  if (newcap != t->cap) {
    unsigned char *ns = slRealloc(&st->alloc, t->slots, (size_t)newcap * t->ss);
    if (!ns) return slStoreErr(st, SL_NOMEM, "out of memory");
    memset(ns + (size_t)t->cap * t->ss, 0, (size_t)(newcap - t->cap) * t->ss);
    st->bytes += (size_t)(newcap - t->cap) * t->ss;
    st->arrays += (size_t)(newcap - t->cap) * t->ss;
    t->slots = ns;
  }
  for (uint32_t i = 0; i < t->cap; i++) {
    slSlot *e = slSlotAt(t, i);
    if (e->flags & SL_S_USED) e->flags |= SL_S_MOVE;
    else e->flags = 0;
  }
  t->cap = newcap;
  for (uint32_t i = 0; i < newcap; i++) {
    slSlot *e = slSlotAt(t, i), *x = (slSlot *)(void *)tmp;
    if (!(e->flags & SL_S_MOVE)) continue;
    memcpy(tmp, e, t->ss);
    memset(e, 0, t->ss);
    x->flags &= (uint16_t)~SL_S_MOVE;
    for (uint32_t j = x->hash & mask;; j = (j + 1) & mask) {
      slSlot *y = slSlotAt(t, j);
      if (!(y->flags & SL_S_USED)) {
        memcpy(y, tmp, t->ss);
        break;
      }
      if (y->flags & SL_S_MOVE) {
        /* take its place; it is placed next, from its own home slot */
        memcpy(tmp2, y, t->ss);
        memcpy(y, tmp, t->ss);
        memcpy(tmp, tmp2, t->ss);
        x->flags &= (uint16_t)~SL_S_MOVE;
        j = (x->hash & mask) - 1;
      }
    }
  }
  for (uint32_t i = 0; i < newcap; i++)
    if (slSlotAt(t, i)->flags & SL_S_DIRTY) t->dirty[nd++] = i; /* it is long enough */
  t->tombs = 0;
  t->hand = 0;
  slCacheDirtyCount(s, nd);
  t->gen++;
  return SL_OK;
}

/* The store's entry handed out by the last call: never evicted. */
static int slPinned(const sl_state *s, uint32_t ix) {
  return s->store->pin_s == s && s->store->pin_ix == ix;
}

/* Looks at the slot under the clock hand and moves the hand on; evicts the
** entry there if it is clean, not pinned, and (with `chance`) not used since
** the hand last passed. Returns 1 when it evicted.
**
** The hand does not move to the next slot but by an odd stride of about
** 0.618 of the table (so it still visits every slot once per round): a hand
** that moved slot by slot would empty one stretch of the table while the
** rest stayed as full as before, and linear probing in that rest would then
** walk runs of thousands of slots. */
static int slClockStep(sl_state *s, int chance) {
  slTab *t = &s->tab;
  uint32_t ix = t->hand;
  slSlot *e = slSlotAt(t, ix);
  uint32_t stride = (uint32_t)(((uint64_t)t->cap * 40503u) >> 16) | 1u;
  t->hand = (ix + stride) & (t->cap - 1);
  if (!(e->flags & SL_S_USED) || (e->flags & SL_S_DIRTY) || slPinned(s, ix)) return 0;
  if (chance && (e->flags & SL_S_REF)) {
    e->flags &= (uint16_t)~SL_S_REF;
    return 0;
  }
  slCacheDrop(s, ix);
  return 1;
}

/* Makes room in a full table that may not grow: evicts clean entries down
** to 3/5 of the slots (writing the state's dirty entries when too few are
** clean), then drops the tombstones. */
static int slTabMakeRoom(sl_state *s) {
  slTab *t = &s->tab;
  int chance = s->store->budget > 0, rc = slStoreSettle(s->store);
  if (rc) return rc;
  for (int round = 0; round < 2; round++) {
    for (uint32_t steps = 2 * t->cap; steps && (uint64_t)t->used * 5 > (uint64_t)t->cap * 3; steps--)
      slClockStep(s, chance);
    if ((uint64_t)t->used * 5 <= (uint64_t)t->cap * 3) break;
    rc = slCacheFlushState(s);
    if (rc) return rc;
  }
  return slTabRehash(s, t->cap);
}

int slCacheAdd(sl_state *s, const unsigned char *k, uint32_t klen, uint32_t hash, int kg,
               uint32_t *out) {
  sl_store *st = s->store;
  slTab *t = &s->tab;
  unsigned char *heapkey = NULL;
  slList *list = NULL;
  slSlot *e;
  uint32_t i, mask;
  int rc;
  if ((uint64_t)(t->used + t->tombs + 1) * 5 > (uint64_t)t->cap * 4) {
    size_t grow = (size_t)t->cap * t->ss;
    if (t->tombs * 4 >= t->cap) rc = slTabRehash(s, t->cap);
    else if (st->bytes + st->dirty_est + grow <= st->budget &&
             st->arrays + grow <= st->budget / 3 * 2 && t->cap < (1u << 30))
      /* the slot arrays take at most two thirds of the budget: the rest is
      ** for rows too long for a slot and for the copy a checkpoint makes of
      ** the dirty entries */
      rc = slTabRehash(s, t->cap * 2);
    else rc = slTabMakeRoom(s);
    if (rc) return rc;
  }
  if (klen > t->kin) {
    heapkey = slMalloc(&st->alloc, klen);
    if (!heapkey) return slStoreErr(st, SL_NOMEM, "out of memory");
    memcpy(heapkey, k, klen);
  }
  if (s->is_list) {
    list = slMalloc(&st->alloc, sizeof *list);
    if (!list) {
      slFree(&st->alloc, heapkey);
      return slStoreErr(st, SL_NOMEM, "out of memory");
    }
    memset(list, 0, sizeof *list);
    list->next_seq = -1;
  }
  mask = t->cap - 1;
  i = hash & mask;
  while (slSlotAt(t, i)->flags & SL_S_USED) i = (i + 1) & mask;
  e = slSlotAt(t, i);
  if (e->flags & SL_S_TOMB) t->tombs--;
  memset(e, 0, t->ss);
  e->hash = hash;
  e->flags = SL_S_USED;
  e->kg = (uint16_t)(kg < 0 ? 0 : kg);
  e->klen = klen;
  if (heapkey) {
    slPutPtr((unsigned char *)(e + 1), heapkey);
    st->bytes += SL_HEAP(klen);
  } else if (klen) {
    memcpy(e + 1, k, klen);
  }
  if (list) {
    slPutPtr(slSlotVal(t, e), list);
    slCacheListSync(s, list);
  }
  t->used++;
  *out = i;
  return SL_OK;
}

int slCacheDirtySlow(sl_state *s, uint32_t ix) {
  slTab *t = &s->tab;
  slSlot *e = slSlotAt(t, ix);
  if (e->flags & SL_S_DIRTY) return SL_OK;
  if (t->ndirty == t->capdirty) {
    uint32_t cap = t->capdirty ? t->capdirty * 2 : 64;
    uint32_t *p = slRealloc(&s->store->alloc, t->dirty, sizeof *p * cap);
    if (!p) return slStoreErr(s->store, SL_NOMEM, "out of memory");
    t->dirty = p;
    t->capdirty = cap;
  }
  t->dirty[t->ndirty++] = ix;
  s->store->dirty_est += slDirtyCost(t);
  e->flags |= SL_S_DIRTY;
  /* what its record will take beyond dcost: a long key, a row on the heap
  ** (lists count their rows as they are added) */
  if (e->klen > t->kin) slCacheDirtyMore(s, e->klen);
  if (e->flags & SL_S_VHEAP) {
    uint32_t n;
    memcpy(&n, slGetPtr(slSlotVal(t, e)), 4);
    slCacheDirtyMore(s, n);
  } else if (e->flags & SL_S_GENERIC) {
    slCacheDirtyMore(s, ((slRow *)slGetPtr(slSlotVal(t, e)))->cap);
  }
  return SL_OK;
}

void slCacheDirtyCount(sl_state *s, uint32_t n) {
  slTab *t = &s->tab;
  s->store->dirty_est -= (size_t)(t->ndirty - n) * slDirtyCost(t);
  t->ndirty = n;
  if (n == 0) {
    s->store->dirty_est -= t->dextra;
    t->dextra = 0;
  }
}

int slCacheHasDirty(const sl_state *s) {
  for (uint32_t i = 0; i < s->tab.ndirty; i++)
    if (slSlotAt(&s->tab, s->tab.dirty[i])->flags & SL_S_DIRTY) return 1;
  return 0;
}

/* ---- rows of value and map entries -------------------------------------------- */

const sl_value *slCacheRowInto(sl_state *s, uint32_t ix, sl_value *out, int64_t *exp) {
  slTab *t = &s->tab;
  slSlot *e = slSlotAt(t, ix);
  unsigned char *a = slSlotVal(t, e);
  if (!(e->flags & SL_S_ROW)) return NULL;
  if (e->flags & SL_S_GENERIC) {
    slRow *r = slGetPtr(a);
    if (exp) *exp = r->exp;
    return r->v;
  }
  slCacheUnpack(s, (e->flags & SL_S_VHEAP) ? (unsigned char *)slGetPtr(a) + 8 : a, e->nulls, out, exp);
  return out;
}

const sl_value *slCacheRow(sl_state *s, uint32_t ix, int64_t *exp) {
  return slCacheRowInto(s, ix, s->vout, exp);
}

int slCacheSetRow(sl_state *s, uint32_t ix, const sl_value *v, int64_t exp) {
  sl_store *st = s->store;
  slTab *t = &s->tab;
  slSlot *e = slSlotAt(t, ix);
  unsigned char *a = slSlotVal(t, e);
  size_t need;
  uint32_t nulls;
  if (!v) {
    slValueFree(s, e);
    return SL_OK;
  }
  if (!slRowTyped(s, v)) {
    /* cells of other types than declared (only rows read from the table can
    ** have them): kept as they are */
    slRow *r = NULL;
    int rc = slRowSet(st, &r, v, s->n_val, exp);
    if (rc) return rc;
    slValueFree(s, e);
    slPutPtr(a, r);
    st->bytes += SL_HEAP(r->cap);
    e->flags |= SL_S_ROW | SL_S_GENERIC;
    return SL_OK;
  }
  need = s->nvar ? slPackSize(s, v) : s->pfix;
  if (need <= t->vin && !s->nvar && !(e->flags & (SL_S_VHEAP | SL_S_GENERIC))) {
    /* fixed-size columns, packed in place (slCacheSetFixed() is the
    ** inline form of this for values that a caller has checked) */
    slPack(s, v, exp, a, &nulls);
  } else if (need <= t->vin) {
    /* v may point into the old row: pack aside first */
    if (need > s->pack_cap) {
      unsigned char *p = slRealloc(&st->alloc, s->pack, need);
      if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
      s->pack = p;
      s->pack_cap = need;
    }
    slPack(s, v, exp, s->pack, &nulls);
    slValueFree(s, e);
    memcpy(a, s->pack, need);
  } else {
    uint32_t n = (uint32_t)need;
    unsigned char *b;
    if (need > UINT32_MAX - 8)
      return slStoreErr(st, SL_MISUSE, "state '%s': a row of %zu bytes is too large", s->name, need);
    b = slMalloc(&st->alloc, need + 8);
    if (!b) return slStoreErr(st, SL_NOMEM, "out of memory");
    memcpy(b, &n, 4);
    memset(b + 4, 0, 4);
    slPack(s, v, exp, b + 8, &nulls);
    slValueFree(s, e);
    slPutPtr(a, b);
    st->bytes += SL_HEAP(need + 8);
    e->flags |= SL_S_VHEAP;
  }
  e->nulls = nulls;
  e->flags |= SL_S_ROW;
  return SL_OK;
}

void slCacheSetExpiry(sl_state *s, uint32_t ix, int64_t exp) {
  slTab *t = &s->tab;
  slSlot *e = slSlotAt(t, ix);
  unsigned char *a = slSlotVal(t, e);
  if (!(e->flags & SL_S_ROW) || !s->has_expires) return;
  if (e->flags & SL_S_GENERIC) ((slRow *)slGetPtr(a))->exp = exp;
  else memcpy((e->flags & SL_S_VHEAP) ? (unsigned char *)slGetPtr(a) + 8 : a, &exp, 8);
}

const unsigned char *slCachePacked(sl_state *s, uint32_t ix, size_t *n) {
  slTab *t = &s->tab;
  slSlot *e = slSlotAt(t, ix);
  unsigned char *a = slSlotVal(t, e);
  if (!(e->flags & SL_S_ROW) || (e->flags & SL_S_GENERIC)) return NULL;
  if (e->flags & SL_S_VHEAP) {
    unsigned char *b = slGetPtr(a);
    uint32_t len;
    memcpy(&len, b, 4);
    *n = len;
    return b + 8;
  }
  *n = t->vin;
  return a;
}

slList *slCacheList(sl_state *s, uint32_t ix) {
  return slGetPtr(slSlotVal(&s->tab, slSlotAt(&s->tab, ix)));
}

/* A row of sl_values in one allocation (lists, scratch). */
static int slPayloadInside(const slRow *row, const sl_value *v, int n) {
  const char *lo = (const char *)row, *hi = lo + row->cap;
  for (int i = 0; i < n; i++)
    if (slIsVar(v[i].type) && (const char *)v[i].v.p >= lo && (const char *)v[i].v.p < hi) return 1;
  return 0;
}

int slRowSet(sl_store *st, slRow **rowp, const sl_value *v, int n, int64_t exp) {
  size_t need = sizeof(slRow) + sizeof(sl_value) * (size_t)n;
  slRow *row = *rowp;
  char *pay;
  for (int i = 0; i < n; i++)
    if (slIsVar(v[i].type)) need += v[i].n + 1;
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
    if (slIsVar(v[i].type)) {
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

/* ---- statements ----------------------------------------------------------------- */

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

int slStoreBindKey(sl_state *s, sqlite3_stmt *q, int kg, const unsigned char *k, uint32_t klen,
                   int mapkey) {
  sl_value kv[SL_MAX_KEY_COLUMNS];
  size_t used = 0;
  int p = 1;
  if (s->keyed) {
    sqlite3_bind_int(q, p++, kg);
    used = slKeyDecode(k, klen, kv, s->n_key);
    for (int i = 0; i < s->n_key; i++) slStoreBind(q, p++, &kv[i], SQLITE_STATIC);
  }
  if (mapkey) {
    slKeyDecode(k + used, klen - used, kv, s->n_mk);
    for (int i = 0; i < s->n_mk; i++) slStoreBind(q, p++, &kv[i], SQLITE_STATIC);
  }
  return p;
}

/* Binds the key of an entry (and its map key). */
static int slBindEntryKey(sl_state *s, sqlite3_stmt *q, slSlot *e, int mapkey) {
  return slStoreBindKey(s, q, e->kg, slSlotKey(&s->tab, e), e->klen, mapkey);
}

static int slBindVals(sl_state *s, sqlite3_stmt *q, int p, const sl_value *v, int64_t exp) {
  for (int i = 0; i < s->n_val; i++) slStoreBind(q, p++, &v[i], SQLITE_STATIC);
  if (s->has_expires) {
    if (exp) sqlite3_bind_int64(q, p, exp);
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

/* ---- writing dirty entries ------------------------------------------------------ */

static int slFlushList(sl_state *s, slSlot *e) {
  sl_store *st = s->store;
  slList *l = slGetPtr(slSlotVal(&s->tab, e));
  sqlite3_stmt *q;
  int rc = SL_OK;
  if (e->flags & SL_S_CLEARED) {
    rc = slStatePrepare(s, SL_Q_DELKEY, &q);
    if (rc) return rc;
    slBindEntryKey(s, q, e, 0);
    rc = slRun(st, q, "cannot clear a list");
    if (rc) return rc;
    e->flags &= (uint16_t)~SL_S_CLEARED;
    l->next_seq = 0;
  }
  if (l->npersist < l->nrows && l->next_seq < 0) {
    rc = slStatePrepare(s, SL_Q_MAXSEQ, &q);
    if (rc) return rc;
    slBindEntryKey(s, q, e, 0);
    int src = sqlite3_step(q);
    if (src != SQLITE_ROW) {
      sqlite3_reset(q);
      return slStoreStepFailed(st, src, "cannot read a list");
    }
    l->next_seq = sqlite3_column_type(q, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(q, 0) + 1;
    sqlite3_reset(q);
  }
  while (l->npersist < l->nrows) {
    const slRow *r = l->rows[l->npersist];
    rc = slStatePrepare(s, SL_Q_PUT, &q);
    if (rc) return rc;
    int p = slBindEntryKey(s, q, e, 0);
    sqlite3_bind_int64(q, p++, l->next_seq);
    slBindVals(s, q, p, r->v, r->exp);
    rc = slRun(st, q, "cannot write a list");
    if (rc) return rc;
    l->next_seq++;
    l->npersist++;
  }
  if (!(e->flags & SL_S_LOADED)) {
    slListRowsFree(s, l);
    slCacheListSync(s, l);
  }
  return SL_OK;
}

int slCacheFlushEntry(sl_state *s, uint32_t ix) {
  sl_store *st = s->store;
  slSlot *e = slSlotAt(&s->tab, ix);
  sl_value v[SL_MAX_VALUE_COLUMNS];
  sqlite3_stmt *q;
  int rc;
  if (!(e->flags & SL_S_DIRTY)) return SL_OK;
  rc = slStoreBegin(st);
  if (rc) return rc;
  if (s->is_list) {
    rc = slFlushList(s, e);
  } else if (e->flags & SL_S_ROW) {
    int64_t exp = 0;
    const sl_value *row = slCacheRowInto(s, ix, v, &exp);
    rc = slStatePrepare(s, SL_Q_PUT, &q);
    if (rc == SL_OK) {
      slBindVals(s, q, slBindEntryKey(s, q, e, s->is_map), row, exp);
      rc = slRun(st, q, "cannot write state");
    }
  } else {
    rc = slStatePrepare(s, SL_Q_DEL, &q);
    if (rc == SL_OK) {
      slBindEntryKey(s, q, e, s->is_map);
      rc = slRun(st, q, "cannot delete state");
    }
  }
  if (rc == SL_OK) e->flags &= (uint16_t)~SL_S_DIRTY;
  return rc;
}

/* A dirty entry to sort: its key group and first key bytes are copied in,
** so that sorting rarely touches the slots themselves. */
typedef struct slSortKey {
  uint32_t kg;
  uint32_t ix;
  uint64_t prefix;
  const unsigned char *k;
  uint32_t klen;
} slSortKey;

/* Orders by key group and key bytes, so that a flush writes the table's
** B-tree in key order, page after page. */
static int slSortCmp(const void *a, const void *b) {
  const slSortKey *x = a, *y = b;
  uint32_t n;
  int c;
  if (x->kg != y->kg) return x->kg < y->kg ? -1 : 1;
  if (x->prefix != y->prefix) return x->prefix < y->prefix ? -1 : 1;
  n = x->klen < y->klen ? x->klen : y->klen;
  c = n ? memcmp(x->k, y->k, n) : 0;
  if (c) return c;
  if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
  return x->ix < y->ix ? -1 : x->ix > y->ix;
}

/* Entries sorted and written at a time: the sort keys of a chunk take
** 256 KiB, whatever the count of dirty entries. */
#define SL_FLUSH_CHUNK 8192u

int slCacheFlushState(sl_state *s) {
  slTab *t = &s->tab;
  slSortKey *v;
  int rc = SL_OK;
  if (!t->ndirty) return SL_OK;
  v = t->ndirty > 1 ? slMalloc(&s->store->alloc,
                               sizeof *v * (t->ndirty < SL_FLUSH_CHUNK ? t->ndirty : SL_FLUSH_CHUNK))
                    : NULL;
  if (!v) {
    /* one entry, or no memory to sort: in the order they became dirty */
    for (uint32_t i = 0; i < t->ndirty && rc == SL_OK; i++) rc = slCacheFlushEntry(s, t->dirty[i]);
    if (rc == SL_OK) slCacheDirtyCount(s, 0);
    return rc;
  }
  for (uint32_t from = 0; from < t->ndirty && rc == SL_OK;) {
    size_t n = 0;
    for (; from < t->ndirty && n < SL_FLUSH_CHUNK; from++) {
      uint32_t ix = t->dirty[from];
      slSlot *e = slSlotAt(t, ix);
      const unsigned char *k;
      uint64_t p = 0;
      if (!(e->flags & SL_S_DIRTY)) continue;
      k = slSlotKey(t, e);
      for (uint32_t b = 0; b < 8; b++) p = p << 8 | (b < e->klen ? k[b] : 0);
      v[n].kg = e->kg;
      v[n].ix = ix;
      v[n].prefix = p;
      v[n].k = k;
      v[n].klen = e->klen;
      n++;
    }
    qsort(v, n, sizeof *v, slSortCmp);
    for (size_t i = 0; i < n && rc == SL_OK; i++) rc = slCacheFlushEntry(s, v[i].ix);
  }
  slFree(&s->store->alloc, v);
  if (rc == SL_OK) slCacheDirtyCount(s, 0);
  return rc;
}

int slCacheFlushAll(sl_store *st) {
  int rc = SL_OK;
  for (int i = 0; i < st->nstates && rc == SL_OK; i++) rc = slCacheFlushState(st->states[i]);
  return rc;
}

/* Keeps the cache within the budget. What the dirty entries would take in a
** frozen batch counts too: room for the copy a checkpoint makes of them is
** kept free. When it is over, every dirty entry is written; when that is not
** enough, entries are evicted down to 3/4 of the budget (with budget 0, all
** of them), giving entries used since the hand last passed a second chance;
** entries held in their slots alone free nothing, so eviction stops once
** only the slot arrays are left.
** The states take turns, 64 slots at a time. The entry a call just handed
** out stays. */
int slCacheTrim(sl_store *st) {
  size_t budget = st->budget, low = budget / 4 * 3;
  int chance = budget > 0, rc;
  uint64_t left = 0;
  if (st->bytes + st->dirty_est <= budget && budget > 0) return SL_OK;
  if (!st->nstates) return SL_OK;
  /* no eviction while a frozen batch is being committed: a clean entry may
  ** be newer than its row in the table until then */
  rc = slStoreSettle(st);
  if (rc == SL_OK) rc = slCacheFlushAll(st);
  if (rc) return rc;
  if (budget > 0) {
    if (st->bytes <= budget) return SL_OK;
    if (low < st->arrays) low = st->arrays;
  }
  /* every slot is looked at most twice: once to clear its bit, once more */
  for (int i = 0; i < st->nstates; i++) left += 2 * (uint64_t)st->states[i]->tab.cap;
  while ((st->bytes > low || budget == 0) && left) {
    sl_state *s = st->states[st->hand_state % st->nstates];
    for (int k = 0; k < 64 && left && (st->bytes > low || budget == 0); k++, left--) {
      if (!s->tab.used) break;
      slClockStep(s, chance);
    }
    st->hand_state = (st->hand_state + 1) % st->nstates;
    /* a state with nothing left to evict must not hold the others up */
    int any = 0;
    for (int i = 0; i < st->nstates && !any; i++) any = st->states[i]->tab.used > 0;
    if (!any) break;
  }
  return SL_OK;
}
