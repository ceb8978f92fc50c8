/*
** iter.c — iterators over a map of the current key (or a broadcast map) and
** over every row of a state. They read the table through their own
** statement, after writing the state's dirty cache entries to it.
*/
#include <string.h>

#include "store/store.h"

struct sl_iter {
  slHandle hdr;
  sl_state *s;
  sqlite3_stmt *q;
  int kg;
  int n_key, n_mk, n_val;
  int c_kg, c_key, c_mk, c_val, c_exp; /* result column of each part (-1: none) */
  int64_t now;
  int done;
  sl_value v[];                        /* key, map key, value */
};

static char *slQuotedList(char *s, const slCol *c, int n) {
  for (int i = 0; i < n && s; i++) s = sqlite3_mprintf("%z%s\"%w\"", s, *s ? ", " : "", c[i].name);
  return s;
}

static int slIterOpen(sl_state *s, int scan, sl_iter **out, const char *call) {
  sl_store *st;
  sl_iter *it;
  char *cols, *where = NULL, *order, *sql;
  int rc, src, ncol = 0, p = 1;
  size_t nv;
  if (!s || s->hdr.magic != SL_MAGIC_STATE) return SL_MISUSE;
  st = s->store;
  rc = slStoreUsable(st);
  if (rc) return rc;
  if (!out) return slStoreErr(st, SL_MISUSE, "%s: the output pointer is NULL", call);
  *out = NULL;
  if (!scan && !s->is_map)
    return slStoreErr(st, SL_MISUSE, "%s: state '%s' is %s state, not a map state", call, s->name,
                      slKindWord(s->kind));
  if (!scan && s->keyed) {
    if (!st->key_set)
      return slStoreErr(st, SL_MISUSE, "%s: state '%s' is keyed and no key is set", call, s->name);
    if (st->nkey != s->n_key)
      return slStoreErr(st, SL_MISUSE, "%s: state '%s' has %d key columns, the key has %d", call,
                        s->name, s->n_key, st->nkey);
    for (int i = 0; i < s->n_key; i++)
      if (st->keyv[i].type != s->key[i].type)
        return slStoreErr(st, SL_MISUSE, "%s: key column '%s' of state '%s' is %s", call,
                          s->key[i].name, s->name, slTypeName(s->key[i].type));
  }
  /* an iterator reads the table, which holds what a checkpoint froze only
  ** once its batch is committed */
  rc = slStoreSettle(st);
  if (rc) return rc;
  if (!st->iters) {
    rc = slCacheFlushState(s);
    if (rc) return rc;
  } else if (slCacheHasDirty(s)) {
    return slStoreErr(st, SL_MISUSE, "%s: another iterator is open and state '%s' has unwritten "
                      "changes", call, s->name);
  }
  nv = (size_t)(s->n_key + s->n_mk + s->n_val);
  it = slMalloc(&st->alloc, sizeof *it + sizeof(sl_value) * nv);
  if (!it) return slStoreErr(st, SL_NOMEM, "out of memory");
  memset(it, 0, sizeof *it);
  it->hdr.magic = SL_MAGIC_ITER;
  it->hdr.errmsg = st->errmsg;
  it->s = s;
  it->kg = -1;
  it->n_key = scan ? s->n_key : 0;
  it->n_mk = s->n_mk;
  it->n_val = s->n_val;
  it->now = s->has_expires ? slStoreNow(st) : 0;
  it->c_kg = it->c_key = it->c_mk = -1;
  cols = sqlite3_mprintf("%s", "");
  if (scan && s->keyed) { cols = cols ? sqlite3_mprintf("%zkg", cols) : NULL; it->c_kg = ncol++; }
  if (it->n_key) { cols = slQuotedList(cols, s->key, s->n_key); it->c_key = ncol; ncol += s->n_key; }
  if (s->is_list && cols) { cols = sqlite3_mprintf("%z%sseq", cols, *cols ? ", " : ""); ncol++; }
  if (s->n_mk) { cols = slQuotedList(cols, s->mk, s->n_mk); it->c_mk = ncol; ncol += s->n_mk; }
  cols = slQuotedList(cols, s->val, s->n_val);
  it->c_val = ncol;
  ncol += s->n_val;
  if (cols) cols = sqlite3_mprintf("%z, %s", cols, s->has_expires ? "expires_at" : "NULL");
  it->c_exp = ncol;
  if (!scan && s->keyed) {
    where = sqlite3_mprintf("kg=?%d", p++);
    for (int i = 0; i < s->n_key && where; i++) where = sqlite3_mprintf("%z AND \"%w\"=?%d", where, s->key[i].name, p++);
  }
  order = scan ? sqlite3_mprintf("%s", s->pkcols) : slQuotedList(sqlite3_mprintf("%s", ""), s->mk, s->n_mk);
  sql = cols && order && (where || scan || !s->keyed)
            ? sqlite3_mprintf("SELECT %s FROM \"%w\"%s%s ORDER BY %s", cols, s->table,
                              where ? " WHERE " : "", where ? where : "", order)
            : NULL;
  sqlite3_free(cols);
  sqlite3_free(where);
  sqlite3_free(order);
  if (!sql) {
    slFree(&st->alloc, it);
    return slStoreErr(st, SL_NOMEM, "out of memory");
  }
  src = sqlite3_prepare_v2(st->db, sql, -1, &it->q, NULL);
  sqlite3_free(sql);
  if (src != SQLITE_OK) {
    slFree(&st->alloc, it);
    return slStoreSqlErr(st, src, "cannot iterate a state");
  }
  if (!scan && s->keyed) {
    sqlite3_bind_int(it->q, 1, st->kg);
    for (int i = 0; i < s->n_key; i++) slStoreBind(it->q, 2 + i, &st->keyv[i], SQLITE_TRANSIENT);
  }
  st->iters++;
  *out = it;
  return SL_OK;
}

int sl_map_iter(sl_state *s, sl_iter **out) { return slIterOpen(s, 0, out, "sl_map_iter"); }
int sl_state_scan(sl_state *s, sl_iter **out) { return slIterOpen(s, 1, out, "sl_state_scan"); }

int sl_iter_next(sl_iter *it) {
  sl_store *st;
  int src;
  if (!it || it->hdr.magic != SL_MAGIC_ITER) return SL_MISUSE;
  st = it->s->store;
  if (it->done) return SL_DONE;
  for (;;) {
    src = sqlite3_step(it->q);
    if (src != SQLITE_ROW) break;
    if (sqlite3_column_type(it->q, it->c_exp) == SQLITE_INTEGER) {
      int64_t exp = sqlite3_column_int64(it->q, it->c_exp);
      if (exp && exp <= it->now) continue;
    }
    if (it->c_kg >= 0) it->kg = sqlite3_column_int(it->q, it->c_kg);
    if (it->n_key) slStoreColumns(it->q, it->c_key, it->n_key, it->v);
    if (it->n_mk) slStoreColumns(it->q, it->c_mk, it->n_mk, it->v + it->n_key);
    slStoreColumns(it->q, it->c_val, it->n_val, it->v + it->n_key + it->n_mk);
    return SL_ROW;
  }
  it->done = 1;
  if (src == SQLITE_DONE) return SL_DONE;
  return slStoreSqlErr(st, src, "cannot iterate a state");
}

int sl_iter_key(sl_iter *it, const sl_value **key, int *n, int *kg) {
  if (!it || it->hdr.magic != SL_MAGIC_ITER || !key || !n) return SL_MISUSE;
  *key = it->v;
  *n = it->n_key;
  if (kg) *kg = it->kg;
  return SL_OK;
}

int sl_iter_map_key(sl_iter *it, const sl_value **mk, int *n) {
  if (!it || it->hdr.magic != SL_MAGIC_ITER || !mk || !n) return SL_MISUSE;
  *mk = it->v + it->n_key;
  *n = it->n_mk;
  return SL_OK;
}

int sl_iter_value(sl_iter *it, const sl_value **vals, int *n) {
  if (!it || it->hdr.magic != SL_MAGIC_ITER || !vals || !n) return SL_MISUSE;
  *vals = it->v + it->n_key + it->n_mk;
  *n = it->n_val;
  return SL_OK;
}

void sl_iter_close(sl_iter *it) {
  sl_store *st;
  if (!it || it->hdr.magic != SL_MAGIC_ITER) return;
  st = it->s->store;
  sqlite3_finalize(it->q);
  it->hdr.magic = SL_MAGIC_DEAD;
  st->iters--;
  slFree(&st->alloc, it);
}
