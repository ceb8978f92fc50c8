/*
** store.h — the state store's internals that other statelite modules (and the
** files of the store itself) may use. The public half is in statelite.h.
*/
#ifndef SL_STORE_H
#define SL_STORE_H

#include <sqlite3.h>

#include "base/base.h"

/* A row of values in one allocation: the sl_value array, then the TEXT/BLOB
** payloads, each followed by a NUL byte. `exp` is the expiry (0 = never). */
typedef struct slRow {
  int64_t exp;
  size_t cap;      /* bytes allocated for the whole slRow */
  sl_value v[];
} slRow;

/* One cached entry: (state, key[, map key]) -> value, or a list of rows. */
typedef struct slEntry slEntry;
struct slEntry {
  slEntry *hnext;            /* hash bucket chain */
  slEntry *lprev, *lnext;    /* the store's list for second-chance eviction */
  slEntry *dprev, *dnext;    /* dirty list of the state */
  slEntry *sprev, *snext;    /* all entries of the state */
  sl_state *s;
  uint32_t hash;
  int kg;
  unsigned flags;            /* SL_E_* */
  uint32_t klen;             /* key bytes, then map-key bytes */
  uint32_t kklen;            /* of which the key */
  size_t bytes;              /* accounted size */
  slRow *row;                /* value/map/reducing/aggregating: NULL = absent */
  slRow **rows;              /* list: rows */
  size_t nrows, caprows;
  size_t rowbytes;           /* list: bytes of the rows, kept as they change */
  size_t npersist;           /* list: rows [0, npersist) are in the table */
  int64_t next_seq;          /* list: next seq, -1 = unknown */
  unsigned char kbytes[];
};

#define SL_E_DIRTY   1u /* differs from the table */
#define SL_E_CLEARED 2u /* list: the table's rows of this key must go first */
#define SL_E_LOADED  4u /* list: rows hold the whole list */
#define SL_E_REF     8u /* used since the eviction hand last passed */

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
  slEntry *dirty;            /* dirty entries */
  slEntry *all;              /* every cached entry */
  uint64_t key_checked;      /* store key generation that was type-checked */
  slEntry *memo;             /* the entry of the current key, when memo_gen */
  uint64_t memo_gen;         /* equals the store's key generation */
  int opened;                /* by sl_state_open(): no callbacks */
  sl_value *out;             /* list_get output */
  size_t out_cap;
  slRow *scratch;            /* aggregating result, callback output */
};

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
  sl_state **states;
  int nstates, capstates;
  /* the current key */
  unsigned char *kbuf;
  size_t klen, kcap;
  uint32_t khash;
  int kg;
  int key_set;
  int nkey;
  sl_value keyv[SL_MAX_KEY_COLUMNS];
  uint64_t key_gen;
  /* the cache */
  slEntry **buckets;
  size_t nbuckets, nentries;
  size_t bytes;
  slEntry *lru_head, *lru_tail;
  slEntry *pin;              /* the entry the last call handed out */
  sqlite3_stmt *tq[4];       /* timer statements (timer.c) */
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
SL_PRIVATE int slStoreExec(sl_store *st, const char *sql, const char *what);
SL_PRIVATE int64_t slStoreNow(sl_store *st);
SL_PRIVATE int slStoreUsable(sl_store *st);
SL_PRIVATE int slStoreWritable(sl_store *st);
SL_PRIVATE int slStoreStepFailed(sl_store *st, int src, const char *what);
SL_PRIVATE int slStoreMetaGetInt(sl_store *st, const char *name, int64_t *out);
SL_PRIVATE int slStoreMetaSetInt(sl_store *st, const char *name, int64_t value);

/* schema.c */
SL_PRIVATE int slSchemaInit(sl_store *st);
SL_PRIVATE void slStateFree(sl_state *s);
SL_PRIVATE void slSchemaFree(sl_store *st);
SL_PRIVATE int slStatePrepare(sl_state *s, int q, sqlite3_stmt **out);

/* state.c */
SL_PRIVATE const char *slKindWord(int kind);

/* timer.c */
SL_PRIVATE void slTimerFree(sl_store *st);

/* cache.c */
SL_PRIVATE int slCacheInit(sl_store *st);
SL_PRIVATE void slCacheFree(sl_store *st);
SL_PRIVATE slEntry *slCacheFind(sl_store *st, sl_state *s, const unsigned char *k,
                                uint32_t klen, uint32_t hash);
SL_PRIVATE slEntry *slCacheAdd(sl_store *st, sl_state *s, const unsigned char *k,
                               uint32_t klen, uint32_t kklen, uint32_t hash, int kg);
/* Marks an entry used: eviction gives it a second chance. */
static inline void slCacheTouch(slEntry *e) { e->flags |= SL_E_REF; }
SL_PRIVATE void slCacheDirty(sl_store *st, slEntry *e);
SL_PRIVATE void slCacheResize(sl_store *st, slEntry *e);
SL_PRIVATE void slCacheDrop(sl_store *st, slEntry *e);
SL_PRIVATE int slCacheFlushEntry(sl_store *st, slEntry *e);
SL_PRIVATE int slCacheFlushState(sl_store *st, sl_state *s);
SL_PRIVATE int slCacheFlushAll(sl_store *st);
SL_PRIVATE int slCacheTrim(sl_store *st);
SL_PRIVATE int slStoreBind(sqlite3_stmt *q, int p, const sl_value *v, sqlite3_destructor_type how);
SL_PRIVATE void slStoreColumns(sqlite3_stmt *q, int first, int n, sl_value *v);
SL_PRIVATE int slRowSet(sl_store *st, slRow **row, const sl_value *v, int n, int64_t exp);
SL_PRIVATE void slRowsFree(sl_store *st, slEntry *e);

#endif
