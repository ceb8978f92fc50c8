/*
** store.h — the state store's internals that other statelite modules (and the
** files of the store itself) may use. The public half is in statelite.h.
*/
#ifndef SL_STORE_H
#define SL_STORE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <string.h>

#include "base/base.h"

/* A row of values in one allocation: the sl_value array, then the TEXT/BLOB
** payloads, each followed by a NUL byte. `exp` is the expiry (0 = never). */
typedef struct slRow {
  int64_t exp;
  size_t cap;      /* bytes allocated for the whole slRow */
  sl_value v[];
} slRow;

/* The rows of one key of a list state, as far as they are cached: rows
** [0, npersist) are in the table, the rest are appended since. */
typedef struct slList {
  slRow **rows;
  size_t nrows, caprows;
  size_t rowbytes;           /* bytes of the rows, kept as they change */
  size_t npersist;
  int64_t next_seq;          /* next seq, -1 = unknown */
  size_t acct;               /* bytes of it counted in the store's total */
} slList;

/* The head of one slot of a state's cache table. The key area (kin bytes:
** the canonical key bytes, then the map key's, inline when they fit, else a
** pointer to them) and the value area (vin bytes: the packed row inline, or
** a pointer to it, or to the slList of a list state) follow. */
typedef struct slSlot {
  uint32_t hash;             /* of the key bytes (map: with the map key) */
  uint16_t flags;            /* SL_S_* */
  uint16_t kg;               /* key group (keyed states) */
  uint32_t klen;             /* key bytes, map key included */
  uint32_t nulls;            /* bit i: value column i is NULL (i < 32) */
} slSlot;

#define SL_S_USED    1u   /* the slot holds an entry */
#define SL_S_TOMB    2u   /* an entry was removed here: probing goes on */
#define SL_S_DIRTY   4u   /* differs from the table */
#define SL_S_REF     8u   /* used since the clock hand last passed */
#define SL_S_ROW     16u  /* value and map kinds: a row is present */
#define SL_S_VHEAP   32u  /* the packed row is on the heap */
#define SL_S_CLEARED 64u  /* list: the table's rows of this key must go first */
#define SL_S_LOADED  128u /* list: rows hold the whole list */
#define SL_S_FROZEN  512u /* frozen.c: counted while freezing */
#define SL_S_MOVE    1024u /* cache.c: still to be placed while rehashing */
#define SL_S_GENERIC 256u /* the row is an slRow of typed values (read from a
                             table whose cells do not have the declared types) */

/* The cache of one state: open addressing with linear probing over slots of
** ss bytes, evicted by a clock hand. `dirty` lists the slots that became
** dirty since the last flush (it may name a slot twice, or one that is no
** longer dirty: the flag decides). `gen` changes whenever an entry moves or
** goes, which is what invalidates the memo of the current key's slot. */
typedef struct slTab {
  unsigned char *slots;
  uint32_t cap, used, tombs, hand;
  uint32_t ss, kin, vin;
  uint32_t dcost;            /* about the bytes a dirty entry takes in a
                                frozen batch (frozen.c) */
  size_t dextra;             /* what the dirty entries take beyond dcost
                                each: long keys, rows on the heap */
  uint32_t *dirty;
  uint32_t ndirty, capdirty;
  uint64_t gen;
} slTab;

#define SL_NOSLOT UINT32_MAX

/* Prepared statements of a state, made when first needed. */
enum {
  SL_Q_GET,     /* value cols, expires_at of one key (and map key) */
  SL_Q_PUT,     /* insert or replace one row */
  SL_Q_DEL,     /* delete one key's row (map: one map key) */
  SL_Q_DELKEY,  /* delete every row of one key */
  SL_Q_LOAD,    /* list rows of one key, by seq */
  SL_Q_MAXSEQ,  /* max(seq) of one key */
  SL_Q_COUNT
};

/* A column of a state; its name and TEXT/BLOB default are allocated. */
typedef sl_column slCol;

struct sl_state {
  slHandle hdr;
  sl_store *store;
  char *name;
  char *table;
  char *pkcols;               /* the primary key's column list, quoted */
  int kind;
  int keyed;                 /* has kg and key columns */
  int is_list, is_map;       /* list or operator list; map or broadcast */
  int n_key, n_mk, n_val, n_input, n_result;
  slCol *key, *mk, *val, *result;
  int64_t ttl_ms;
  int ttl_flags;
  int has_expires;           /* the table has an expires_at column */
  int redistribution;
  sl_reduce_fn reduce;
  sl_agg_add_fn agg_add;
  sl_agg_merge_fn agg_merge;
  sl_agg_result_fn agg_result;
  void *ud;
  uint32_t seed;             /* mixed into entry hashes */
  sqlite3_stmt *q[SL_Q_COUNT];
  sqlite3_stmt *fq[SL_Q_COUNT]; /* the same, for the thread writing a frozen batch */
  uint64_t key_checked;      /* store key generation that was type-checked */
  uint64_t ksig;             /* the signature of its key columns (slKeySigAdd) */
  int opened;                /* by sl_state_open(): no callbacks */
  sl_value *out;             /* list_get output */
  size_t out_cap;
  slRow *scratch;            /* aggregating result, callback output */
  /* the cache (cache.c) */
  slTab tab;
  uint32_t pfix;             /* bytes of a packed row without its payloads */
  int nvar;                  /* TEXT and BLOB value columns */
  uint32_t memo_ix;          /* the slot of the current key, when memo_gen */
  uint64_t memo_gen;         /* equals the store's key generation */
  uint64_t memo_tgen;        /* equals tab.gen */
  sl_value *vout;            /* n_val values: a row handed out */
  unsigned char *pack;       /* scratch for a packed row */
  size_t pack_cap;
};

/* A timer set or deleted while a frozen batch was being committed: kept
** until the batch is, so that it cannot end up in that checkpoint. */
typedef struct slTimerOp {
  int32_t domain, kg;
  int64_t ts;
  uint32_t klen;
  int add;                   /* 1: set, 0: deleted */
  unsigned char *key;        /* klen canonical key bytes */
} slTimerOp;

/* Changes frozen for a checkpoint (frozen.c): written and committed by
** whichever thread claims them first. */
typedef struct slRec slRec;
typedef union slRecRef {
  size_t off;                /* while the batch is made: its offset */
  const slRec *rec;          /* then: the record */
} slRecRef;
typedef int (*slFrozenHook)(void *ud);
enum { SL_FROZEN_PENDING, SL_FROZEN_RUNNING, SL_FROZEN_DONE };
typedef struct slFrozen {
  sl_store *st;
  atomic_int state;          /* SL_FROZEN_*, changed under st->mu */
  unsigned char *buf;        /* the records */
  size_t len;
  slRecRef *recs;            /* each record, sorted before they are written */
  size_t nrecs;
  size_t acct;               /* bytes counted in the store's total */
  slFrozenHook hook;         /* run right after the commit, before the owner
                                may write again (a snapshot pins it) */
  void *hook_ud;
  int hook_rc;
  int rc;                    /* of writing and committing */
  char err[SL_ERRMSG_MAX];
  int64_t now;               /* expired rows: the time, and the states */
  int nttl;
  sl_state *ttl[];
} slFrozen;

struct sl_store {
  slHandle hdr;              /* first: sl_errmsg() reads it from any handle */
  char **names;              /* sl_store_list_states() */
  int nnames;
  char errmsg[SL_ERRMSG_MAX];
  sl_allocator alloc;
  sl_config cfg;
  sqlite3 *db;
  char *path;
  char *op;
  int subtask, parallelism, maxp, kg_first, kg_last;
  int in_txn;                /* a write transaction is open */
  int failed;                /* uncommitted changes were lost: refuse work */
  int closed;
  int iters;                 /* open iterators */
  int snapshots;             /* snapshots begun and not yet ended */
  slFrozen *frozen;          /* changes being committed by a snapshot */
  pthread_mutex_t mu;        /* guards the state of `frozen` */
  pthread_cond_t cv;
  int sync_ok;               /* mu and cv are initialised */
  sl_state **states;
  int nstates, capstates;
  /* the current key */
  unsigned char *kbuf;
  size_t klen, kcap;
  uint32_t khash;
  int kg;
  int key_set;
  int nkey;
  uint64_t ksig;             /* the signature of the current key (slKeySigAdd) */
  sl_value keyv[SL_MAX_KEY_COLUMNS];
  uint64_t key_gen;
  /* the cache: every state's table (cache.c) */
  size_t budget;             /* memory_budget less the page cache */
  size_t bytes;              /* slot arrays and the entries' heap parts */
  size_t arrays;             /* of which the slot arrays */
  size_t dirty_est;          /* about what the dirty entries would take in a
                                frozen batch: kept free within the budget */
  sl_state *pin_s;           /* the entry the last call handed out */
  uint32_t pin_ix;
  int hand_state;            /* the state the eviction hand is in */
  sqlite3_stmt *tq[8];       /* timer statements (timer.c) */
  slTimerOp *tlog;           /* timer changes made while a frozen batch is */
  size_t ntlog, captlog;     /* being committed, sorted (timer.c) */
  int timers_ok;             /* sl_timers exists */
  unsigned char *mkbuf;      /* scratch for key + map key */
  size_t mkcap;
};

/* store.c */
SL_PRIVATE int slStoreErr(sl_store *st, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
SL_PRIVATE int slStoreSqlErr(sl_store *st, int src, const char *what);
SL_PRIVATE int slStoreBegin(sl_store *st);
/* After a commit: the next write transaction begins at once (best effort).
** Reads of a connection outside a transaction each take and release the
** WAL's shared-memory locks (system calls); inside one they do not, and a
** store writes again soon anyway. Readers of the file are not held up. */
SL_PRIVATE void slStoreKeepWriting(sl_store *st);
SL_PRIVATE int slStoreExec(sl_store *st, const char *sql, const char *what);
SL_PRIVATE int64_t slStoreNow(sl_store *st);
SL_PRIVATE int slStoreUnusable(sl_store *st);
SL_PRIVATE int slStoreWritable(sl_store *st);
SL_PRIVATE int slStoreStepFailed(sl_store *st, int src, const char *what);
SL_PRIVATE int slStoreMetaGetInt(sl_store *st, const char *name, int64_t *out);
SL_PRIVATE int slStoreMetaSetInt(sl_store *st, const char *name, int64_t value);
/* The statelite code of an SQLite result code. */
SL_PRIVATE int slStoreSqlRc(int src);
/* DELETE of up to `limit` rows of s expired at `now` (limit < 0: all);
** sqlite3_malloc'ed, NULL when out of memory. */
SL_PRIVATE char *slStoreExpireSql(const sl_state *s, int64_t now, int64_t limit);

/* frozen.c */
/* The synchronous part of a checkpoint: copies every dirty entry into a new
** batch (the entries become clean) and makes it the store's frozen batch;
** nothing of SQLite is touched. `hook` (may be NULL) runs right after the
** batch's commit. */
SL_PRIVATE int slStoreFreeze(sl_store *st, slFrozenHook hook, void *ud, slFrozen **out);
/* Writes and commits a frozen batch on any thread, or waits for the thread
** that does. On failure err (SL_ERRMSG_MAX bytes) says why. Touches neither
** the store's allocator nor its message. */
SL_PRIVATE int slStoreFlushFrozen(slFrozen *b, char *err);
/* On the owner thread: the frozen batch, if any, is committed (written here
** when no thread has started to); its failure fails the store. Every write
** to the database and every eviction comes after it. */
SL_PRIVATE int slStoreSettle(sl_store *st);
/* Frees a batch (settling it first when it is the store's). */
SL_PRIVATE void slStoreFrozenFree(sl_store *st, slFrozen *b);

/* What the cache counts for a heap allocation of n bytes: n and about what
** the C library's allocator keeps beside it. */
#define SL_HEAP(n) ((size_t)(n) + 16)

/* The count and types of a key's columns in one number: start with the
** count, add each column's type (3 bits each, SL_MAX_KEY_COLUMNS of them). */
static inline uint64_t slKeySigAdd(uint64_t sig, int type) { return sig << 3 | (uint64_t)(type & 7); }

/* Checks a store handle at the API boundary and clears its message and
** the entry the last call handed out. */
static inline int slStoreUsable(sl_store *st) {
  if (!st || st->hdr.magic != SL_MAGIC_STORE || st->closed || st->failed) return slStoreUnusable(st);
  st->errmsg[0] = 0;
  st->pin_s = NULL;
  return SL_OK;
}

/* schema.c */
SL_PRIVATE int slSchemaInit(sl_store *st);
SL_PRIVATE void slStateFree(sl_state *s);
SL_PRIVATE void slSchemaFree(sl_store *st);
SL_PRIVATE int slStatePrepare(sl_state *s, int q, sqlite3_stmt **out);
/* Statement q of s in the set `set` (s->q or s->fq), reset; returns an
** SQLite code and touches neither the allocator nor the message. */
SL_PRIVATE int slStatePrepareFor(sl_state *s, sqlite3_stmt **set, int q, sqlite3_stmt **out);

/* state.c */
SL_PRIVATE const char *slKindWord(int kind);

/* timer.c */
SL_PRIVATE void slTimerFree(sl_store *st);
/* After the frozen batch is committed (slStoreSettle): the timer changes
** kept meanwhile go to sl_timers. With `drop`, they are only freed. */
SL_PRIVATE int slTimerApplyLog(sl_store *st, int drop);

/* cache.c */
SL_PRIVATE int slCacheStateInit(sl_state *s);
SL_PRIVATE void slCacheStateFree(sl_state *s);
SL_PRIVATE void slCacheFree(sl_store *st);
static inline slSlot *slSlotAt(const slTab *t, uint32_t ix) {
  return (slSlot *)(void *)(t->slots + (size_t)ix * t->ss);
}
static inline unsigned char *slSlotKey(const slTab *t, slSlot *e) {
  unsigned char *a = (unsigned char *)(e + 1);
  if (e->klen <= t->kin) return a;
  unsigned char *p;
  memcpy(&p, a, sizeof p);
  return p;
}
/* 1 when n bytes at a and b are equal; short keys without a call. */
static inline int slKeyEq(const unsigned char *a, const unsigned char *b, uint32_t n) {
  uint64_t x, y, x2, y2;
  if (n >= 8 && n <= 16) {
    /* two loads of 8 bytes, overlapping when n < 16 */
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    memcpy(&x2, a + n - 8, 8);
    memcpy(&y2, b + n - 8, 8);
    return x == y && x2 == y2;
  }
  return n == 0 || memcmp(a, b, n) == 0;
}

/* The slot of (key bytes, hash) in s, or SL_NOSLOT. */
static inline uint32_t slCacheFind(sl_state *s, const unsigned char *k, uint32_t klen,
                                   uint32_t hash) {
  const slTab *t = &s->tab;
  uint32_t mask = t->cap - 1, i = hash & mask;
  for (;;) {
    slSlot *e = slSlotAt(t, i);
    if (!(e->flags & (SL_S_USED | SL_S_TOMB))) return SL_NOSLOT;
    if ((e->flags & SL_S_USED) && e->hash == hash && e->klen == klen &&
        slKeyEq(slSlotKey(t, e), k, klen))
      return i;
    i = (i + 1) & mask;
  }
}
/* A new, empty entry for a key known to be absent; may make room first
** (writing dirty entries, evicting). SL_NOMEM, or the errors of a write. */
SL_PRIVATE int slCacheAdd(sl_state *s, const unsigned char *k, uint32_t klen, uint32_t hash,
                          int kg, uint32_t *ix);
/* Marks an entry used: eviction gives it a second chance. */
static inline void slCacheTouch(sl_state *s, uint32_t ix) { slSlotAt(&s->tab, ix)->flags |= SL_S_REF; }
SL_PRIVATE int slCacheDirtySlow(sl_state *s, uint32_t ix);
/* About the bytes a dirty entry of a table takes in a frozen batch. */
static inline size_t slDirtyCost(const slTab *t) { return t->dcost; }
/* Sets the length of a state's dirty list, and the store's estimate. */
SL_PRIVATE void slCacheDirtyCount(sl_state *s, uint32_t n);
/* Counts `n` more bytes a dirty entry of s will take in a frozen batch. */
static inline void slCacheDirtyMore(sl_state *s, size_t n) {
  s->tab.dextra += n;
  s->store->dirty_est += n;
}
/* Marks an entry dirty (SL_NOMEM when the dirty list cannot grow). */
static inline int slCacheDirty(sl_state *s, uint32_t ix) {
  return (slSlotAt(&s->tab, ix)->flags & SL_S_DIRTY) ? SL_OK : slCacheDirtySlow(s, ix);
}
/* The value area of a slot. */
static inline unsigned char *slSlotVal(const slTab *t, slSlot *e) {
  return (unsigned char *)(e + 1) + t->kin;
}
/* The common case of slCacheSetRow() and slCacheRow(), inline: a state whose
** value columns are all INTEGER or REAL, few enough that the packed row fits
** in the slot (pfix <= vin, which also keeps n_val <= 32), and a row that is
** packed in its slot. They return 0 when the case does not apply. The
** values given to the first have the columns' types or are NULL. */
static inline int slCacheSetFixed(sl_state *s, uint32_t ix, const sl_value *v, int64_t exp) {
  slSlot *e = slSlotAt(&s->tab, ix);
  unsigned char *a = slSlotVal(&s->tab, e), *col;
  uint32_t nulls = 0;
  if (s->nvar || s->pfix > s->tab.vin || (e->flags & (SL_S_VHEAP | SL_S_GENERIC))) return 0;
  if (s->has_expires) memcpy(a, &exp, 8);
  col = a + (s->has_expires ? 8 : 0);
  for (int i = 0; i < s->n_val; i++, col += 8) {
    if (v[i].type == SL_INTEGER || v[i].type == SL_REAL) {
      memcpy(col, &v[i].v, 8); /* v.i and v.r share these 8 bytes */
    } else {
      memset(col, 0, 8);
      nulls |= 1u << i;
    }
  }
  e->nulls = nulls;
  e->flags |= SL_S_ROW;
  return 1;
}
static inline int slCacheRowFixed(sl_state *s, uint32_t ix, const sl_value **out, int64_t *exp) {
  slSlot *e = slSlotAt(&s->tab, ix);
  const unsigned char *a = slSlotVal(&s->tab, e), *col;
  if (s->nvar || s->pfix > s->tab.vin || e->nulls || (e->flags & (SL_S_VHEAP | SL_S_GENERIC)))
    return 0;
  if (!(e->flags & SL_S_ROW)) {
    *out = NULL;
    return 1;
  }
  *exp = 0;
  if (s->has_expires) memcpy(exp, a, 8);
  col = a + (s->has_expires ? 8 : 0);
  for (int i = 0; i < s->n_val; i++, col += 8) {
    s->vout[i].type = s->val[i].type;
    s->vout[i].n = 0;
    memcpy(&s->vout[i].v, col, 8);
  }
  *out = s->vout;
  return 1;
}
SL_PRIVATE void slCacheDrop(sl_state *s, uint32_t ix);
/* Value and map kinds: the row of an entry, decoded into s->vout (TEXT and
** BLOB point into the entry); NULL when absent. *exp gets its expiry. */
SL_PRIVATE const sl_value *slCacheRow(sl_state *s, uint32_t ix, int64_t *exp);
/* A packed row (the layout is cache.c's) decoded into out. */
SL_PRIVATE void slCacheUnpack(const sl_state *s, const unsigned char *p, uint32_t nulls_lo,
                              sl_value *out, int64_t *exp);
/* The packed row of an entry and its size (*n), to be copied whole; NULL
** when there is none, or it is kept as read (SL_S_GENERIC). */
SL_PRIVATE const unsigned char *slCachePacked(sl_state *s, uint32_t ix, size_t *n);
/* The same, decoded into out (n_val values) instead. */
SL_PRIVATE const sl_value *slCacheRowInto(sl_state *s, uint32_t ix, sl_value *out, int64_t *exp);
/* Sets (v != NULL) or removes the row of an entry; v may point into it. */
SL_PRIVATE int slCacheSetRow(sl_state *s, uint32_t ix, const sl_value *v, int64_t exp);
/* Sets the expiry of an entry's row. */
SL_PRIVATE void slCacheSetExpiry(sl_state *s, uint32_t ix, int64_t exp);
/* List kinds: the entry's rows. */
SL_PRIVATE slList *slCacheList(sl_state *s, uint32_t ix);
/* Counts a list's allocation again after a change. */
SL_PRIVATE void slCacheListSync(sl_state *s, slList *l);
SL_PRIVATE void slListRowsFree(sl_state *s, slList *l);
SL_PRIVATE int slCacheFlushEntry(sl_state *s, uint32_t ix);
SL_PRIVATE int slCacheFlushState(sl_state *s);
SL_PRIVATE int slCacheFlushAll(sl_store *st);
SL_PRIVATE int slCacheHasDirty(const sl_state *s);
SL_PRIVATE int slCacheTrim(sl_store *st);
SL_PRIVATE int slStoreBind(sqlite3_stmt *q, int p, const sl_value *v, sqlite3_destructor_type how);
/* Binds key group kg and the key columns of canonical key bytes k (then the
** map-key columns when `mapkey`) of state s from ?1 on, statically: k must
** outlive the statement's step. Returns the next parameter number. */
SL_PRIVATE int slStoreBindKey(sl_state *s, sqlite3_stmt *q, int kg, const unsigned char *k,
                              uint32_t klen, int mapkey);
SL_PRIVATE void slStoreColumns(sqlite3_stmt *q, int first, int n, sl_value *v);
SL_PRIVATE int slRowSet(sl_store *st, slRow **row, const sl_value *v, int n, int64_t exp);

#endif
