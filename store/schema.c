/*
** schema.c — state descriptors: checking them, the sl_states registry, the
** table of each state (created, evolved, or refused when incompatible), and
** the SQL of each state's prepared statements.
*/
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "store/store.h"

static const char *const slKindNames[] = {
    "", "value", "list", "map", "reducing", "aggregating", "operator_list", "broadcast_map"};

static const char *slKindName(int kind) {
  return kind >= 1 && kind <= SL_BROADCAST_MAP ? slKindNames[kind] : "unknown";
}

int slSchemaInit(sl_store *st) {
  sqlite3_stmt *q = NULL;
  int n = 0;
  int src = sqlite3_prepare_v2(st->db,
                               "SELECT count(*) FROM sqlite_schema WHERE type='table' AND "
                               "name IN ('sl_meta','sl_states')",
                               -1, &q, NULL);
  if (src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    n = sqlite3_column_int(q, 0);
    src = SQLITE_OK;
  }
  sqlite3_finalize(q);
  if (src != SQLITE_OK) return slStoreSqlErr(st, src, "cannot read the schema");
  if (n != 2)
    return slStoreErr(st, SL_CORRUPT, "%s lacks the sl_meta or sl_states table", st->path);
  return SL_OK;
}

/* SQLite compares names without regard to case, and so does this. */
static int slIsReservedCol(const char *name) {
  return strcasecmp(name, "kg") == 0 || strcasecmp(name, "seq") == 0 ||
         strcasecmp(name, "expires_at") == 0;
}

/* Checks one group of columns of a descriptor. */
static int slCheckCols(sl_store *st, const sl_state_desc *d, const char *what, const sl_column *c,
                       int n, int lo, int hi) {
  if (n < lo || n > hi)
    return slStoreErr(st, SL_MISUSE, "state '%s': a %s state has %d..%d %s columns, not %d",
                      d->name, slKindName(d->kind), lo, hi, what, n);
  if (n > 0 && !c)
    return slStoreErr(st, SL_MISUSE, "state '%s': the %s columns are NULL", d->name, what);
  for (int i = 0; i < n; i++) {
    if (!slIsIdent(c[i].name))
      return slStoreErr(st, SL_MISUSE,
                        "state '%s': %s column name '%s' is not an identifier (letters, digits, "
                        "underscore, 1..64 characters, not starting with a digit)",
                        d->name, what, c[i].name ? c[i].name : "(null)");
    if (slIsReservedCol(c[i].name))
      return slStoreErr(st, SL_MISUSE, "state '%s': column name '%s' is reserved", d->name, c[i].name);
    if (c[i].type < SL_INTEGER || c[i].type > SL_BLOB)
      return slStoreErr(st, SL_MISUSE,
                        "state '%s': column '%s' has type %d; use SL_INTEGER, SL_REAL, SL_TEXT or "
                        "SL_BLOB",
                        d->name, c[i].name, c[i].type);
    if (c[i].dflt.type != 0 && c[i].dflt.type != SL_NULL && c[i].dflt.type != c[i].type)
      return slStoreErr(st, SL_MISUSE, "state '%s': the default of column '%s' is %s, not %s",
                        d->name, c[i].name, slTypeName(c[i].dflt.type), slTypeName(c[i].type));
  }
  return SL_OK;
}

static int slCheckDesc(sl_store *st, const sl_state_desc *d, int opened) {
  int rc, keyed, isMap, isAgg;
  const sl_column *groups[3];
  int counts[3];
  if (!d) return slStoreErr(st, SL_MISUSE, "the state descriptor is NULL");
  if (!slIsIdent(d->name))
    return slStoreErr(st, SL_MISUSE,
                      "state name '%s' is not an identifier (letters, digits, underscore, 1..64 "
                      "characters, not starting with a digit)",
                      d->name ? d->name : "(null)");
  if (strncasecmp(d->name, "sl_", 3) == 0)
    return slStoreErr(st, SL_MISUSE, "state name '%s' starts with sl_, which is reserved", d->name);
  if (d->kind < SL_VALUE_STATE || d->kind > SL_BROADCAST_MAP)
    return slStoreErr(st, SL_MISUSE, "state '%s': unknown kind %d", d->name, d->kind);
  keyed = d->kind <= SL_AGGREGATING_STATE;
  isMap = d->kind == SL_MAP_STATE || d->kind == SL_BROADCAST_MAP;
  isAgg = d->kind == SL_AGGREGATING_STATE;
  rc = slCheckCols(st, d, "key", d->key, d->n_key, keyed, keyed ? SL_MAX_KEY_COLUMNS : 0);
  if (rc == SL_OK)
    rc = slCheckCols(st, d, "map-key", d->map_key, d->n_map_key, isMap, isMap ? SL_MAX_KEY_COLUMNS : 0);
  if (rc == SL_OK) rc = slCheckCols(st, d, "value", d->value, d->n_value, 1, SL_MAX_VALUE_COLUMNS);
  if (rc == SL_OK && isAgg && !opened)
    rc = slCheckCols(st, d, "result", d->result, d->n_result, 1, SL_MAX_VALUE_COLUMNS);
  if (rc) return rc;
  /* no name twice among the stored columns */
  groups[0] = d->key; counts[0] = d->n_key;
  groups[1] = d->map_key; counts[1] = d->n_map_key;
  groups[2] = d->value; counts[2] = d->n_value;
  for (int g = 0; g < 3; g++)
    for (int i = 0; i < counts[g]; i++)
      for (int h = g; h < 3; h++)
        for (int j = (h == g ? i + 1 : 0); j < counts[h]; j++)
          if (strcasecmp(groups[g][i].name, groups[h][j].name) == 0)
            return slStoreErr(st, SL_MISUSE, "state '%s': column name '%s' is used twice", d->name,
                              groups[g][i].name);
  if (d->ttl_ms < 0 || (d->ttl_ms > 0 && !keyed))
    return slStoreErr(st, SL_MISUSE, "state '%s': ttl_ms must be >= 0, and 0 for a %s state",
                      d->name, slKindName(d->kind));
  if (d->ttl_flags & ~SL_TTL_REFRESH_ON_READ)
    return slStoreErr(st, SL_MISUSE, "state '%s': unknown ttl_flags 0x%x", d->name, d->ttl_flags);
  if (d->kind == SL_OPERATOR_LIST && d->redistribution != SL_SPLIT_EVEN &&
      d->redistribution != SL_UNION)
    return slStoreErr(st, SL_MISUSE,
                      "state '%s': an operator list state needs redistribution SL_SPLIT_EVEN or "
                      "SL_UNION",
                      d->name);
  if (opened) return SL_OK;
  if (d->kind == SL_REDUCING_STATE && !d->reduce)
    return slStoreErr(st, SL_MISUSE, "state '%s': a reducing state needs a reduce callback", d->name);
  if (isAgg && (!d->agg_add || !d->agg_merge || !d->agg_result))
    return slStoreErr(st, SL_MISUSE,
                      "state '%s': an aggregating state needs agg_add, agg_merge and agg_result",
                      d->name);
  if (isAgg && (d->n_input < 1 || d->n_input > SL_MAX_VALUE_COLUMNS))
    return slStoreErr(st, SL_MISUSE, "state '%s': n_input must be 1..%d, not %d", d->name,
                      SL_MAX_VALUE_COLUMNS, d->n_input);
  return SL_OK;
}

static void slFreeConst(sl_store *st, const void *p) { slFree(&st->alloc, (void *)(uintptr_t)p); }

static void slColsFree(sl_store *st, slCol *c, int n) {
  if (!c) return;
  for (int i = 0; i < n; i++) {
    slFreeConst(st, c[i].name);
    if (c[i].dflt.type == SL_TEXT || c[i].dflt.type == SL_BLOB) slFreeConst(st, c[i].dflt.v.p);
  }
  slFree(&st->alloc, c);
}

static int slColsCopy(sl_store *st, slCol **out, const sl_column *c, int n) {
  slCol *d;
  *out = NULL;
  if (n == 0) return SL_OK;
  d = slMalloc(&st->alloc, sizeof *d * (size_t)n);
  if (!d) return slStoreErr(st, SL_NOMEM, "out of memory");
  memset(d, 0, sizeof *d * (size_t)n);
  *out = d;
  for (int i = 0; i < n; i++) {
    d[i].name = slStrdup(&st->alloc, c[i].name);
    d[i].type = c[i].type;
    d[i].dflt = c[i].dflt;
    if (d[i].dflt.type == 0) d[i].dflt.type = SL_NULL;
    if (d[i].dflt.type == SL_TEXT || d[i].dflt.type == SL_BLOB) {
      void *p = slMalloc(&st->alloc, d[i].dflt.n + 1);
      if (p) {
        if (d[i].dflt.n) memcpy(p, d[i].dflt.v.p, d[i].dflt.n);
        ((char *)p)[d[i].dflt.n] = 0;
      }
      d[i].dflt.v.p = p;
      if (!p) d[i].dflt.type = SL_NULL;
      if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
    }
    if (!d[i].name) return slStoreErr(st, SL_NOMEM, "out of memory");
  }
  return SL_OK;
}

void slStateFree(sl_state *s) {
  sl_store *st;
  if (!s) return;
  st = s->store;
  for (int i = 0; i < SL_Q_COUNT; i++) {
    sqlite3_finalize(s->q[i]);
    sqlite3_finalize(s->fq[i]);
  }
  slCacheStateFree(s);
  slColsFree(st, s->key, s->n_key);
  slColsFree(st, s->mk, s->n_mk);
  slColsFree(st, s->val, s->n_val);
  slColsFree(st, s->result, s->n_result);
  slFree(&st->alloc, s->name);
  slFree(&st->alloc, s->table);
  slFree(&st->alloc, s->pkcols);
  slFree(&st->alloc, s->out);
  slFree(&st->alloc, s->scratch);
  s->hdr.magic = SL_MAGIC_DEAD;
  slFree(&st->alloc, s);
}

/* "a TYPE, b TYPE" of a column list, sqlite3_malloc'ed. */
static char *slColsSpec(const slCol *c, int n) {
  char *s = sqlite3_mprintf("%s", "");
  for (int i = 0; i < n && s; i++) {
    char *t = sqlite3_mprintf("%s%s%s %s", s, i ? ", " : "", c[i].name, slTypeName(c[i].type));
    sqlite3_free(s);
    s = t;
  }
  return s;
}

/* Parses "a TYPE, b TYPE" into names[]/types[] (names point into buf, which
** is modified). Returns the column count or -1. */
static int slColsParse(char *buf, char **names, int *types, int max) {
  int n = 0;
  char *p = buf;
  if (!*p) return 0;
  while (*p) {
    char *name = p, *sp, *end;
    sp = strchr(p, ' ');
    if (!sp || n >= max) return -1;
    *sp = 0;
    end = strchr(sp + 1, ',');
    if (end) *end = 0;
    types[n] = slTypeParse(sp + 1, strlen(sp + 1));
    names[n] = name;
    if (!types[n] || !slIsIdent(name)) return -1;
    n++;
    if (!end) break;
    p = end + 1;
    if (*p == ' ') p++;
  }
  return n;
}

/* A SQL literal of a value, sqlite3_malloc'ed. */
static char *slLiteral(const sl_value *v) {
  switch (v->type) {
    case SL_INTEGER: return sqlite3_mprintf("%lld", (long long)v->v.i);
    case SL_REAL: return sqlite3_mprintf("%!.17g", v->v.r);
    case SL_TEXT: return sqlite3_mprintf("%Q", (const char *)v->v.p);
    case SL_BLOB: {
      char *s = sqlite3_mprintf("X'");
      for (size_t i = 0; i < v->n && s; i++) {
        char *t = sqlite3_mprintf("%s%02x", s, ((const unsigned char *)v->v.p)[i]);
        sqlite3_free(s);
        s = t;
      }
      if (s) {
        char *t = sqlite3_mprintf("%s'", s);
        sqlite3_free(s);
        s = t;
      }
      return s;
    }
    default: return sqlite3_mprintf("NULL");
  }
}

/* Appends `"name" TYPE[ NOT NULL][ DEFAULT x]` for each column. */
static char *slColsDdl(char *s, const slCol *c, int n, int notnull) {
  for (int i = 0; i < n && s; i++) {
    char *lit = c[i].dflt.type != SL_NULL ? slLiteral(&c[i].dflt) : NULL;
    char *t = sqlite3_mprintf("%s, \"%w\" %s%s%s%s", s, c[i].name, slTypeName(c[i].type),
                              notnull ? " NOT NULL" : "", lit ? " DEFAULT " : "", lit ? lit : "");
    sqlite3_free(lit);
    sqlite3_free(s);
    s = t;
  }
  return s;
}

/* Appends `sep"name"` for each column, with a prefix before each name. */
static char *slColsList(char *s, const slCol *c, int n, const char *sep) {
  for (int i = 0; i < n && s; i++) {
    char *t = sqlite3_mprintf("%s%s\"%w\"", s, (*s || i) ? sep : "", c[i].name);
    sqlite3_free(s);
    s = t;
  }
  return s;
}

/* `"a"=?k AND "b"=?k+1 ...` appended with AND. */
static char *slColsMatch(char *s, const slCol *c, int n, int *param) {
  for (int i = 0; i < n && s; i++) {
    char *t = sqlite3_mprintf("%s%s\"%w\"=?%d", s, *s ? " AND " : "", c[i].name, (*param)++);
    sqlite3_free(s);
    s = t;
  }
  return s;
}

/* The primary key columns of the state's table, quoted, comma-separated. */
static char *slPkCols(const sl_state *s) {
  char *r = sqlite3_mprintf("%s", s->keyed ? "kg" : "");
  r = slColsList(r, s->key, s->n_key, ", ");
  if (s->is_list) r = r ? sqlite3_mprintf("%z%sseq", r, *r ? ", " : "") : NULL;
  r = slColsList(r, s->mk, s->n_mk, ", ");
  return r;
}

static int slCreateTable(sl_state *s) {
  sl_store *st = s->store;
  char *sql, *pk;
  int rc;
  if (s->kind == SL_OPERATOR_LIST) {
    sql = sqlite3_mprintf("CREATE TABLE \"%w\"(seq INTEGER PRIMARY KEY", s->table);
    sql = slColsDdl(sql, s->val, s->n_val, 0);
    if (sql) sql = sqlite3_mprintf("%z)", sql);
  } else {
    sql = sqlite3_mprintf("CREATE TABLE \"%w\"(%s", s->table, s->keyed ? "kg INTEGER NOT NULL" : "");
    sql = slColsDdl(sql, s->key, s->n_key, 1);
    if (sql && s->is_list) sql = sqlite3_mprintf("%z, seq INTEGER NOT NULL", sql);
    sql = slColsDdl(sql, s->mk, s->n_mk, 1);
    sql = slColsDdl(sql, s->val, s->n_val, 0);
    if (sql && s->has_expires) sql = sqlite3_mprintf("%z, expires_at INTEGER", sql);
    pk = slPkCols(s);
    if (sql && pk) sql = sqlite3_mprintf("%z, PRIMARY KEY(%s)) WITHOUT ROWID", sql, pk);
    else { sqlite3_free(sql); sql = NULL; }
    sqlite3_free(pk);
  }
  if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
  /* "(," appears when the table has no kg column: remove the comma */
  {
    char *p = strstr(sql, "(, ");
    if (p) memmove(p + 1, p + 3, strlen(p + 3) + 1);
  }
  rc = slStoreExec(st, sql, "cannot create the table of a state");
  sqlite3_free(sql);
  if (rc == SL_OK && s->has_expires) {
    sql = sqlite3_mprintf("CREATE INDEX \"sl_ttl_%w\" ON \"%w\"(expires_at)", s->name, s->table);
    if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
    rc = slStoreExec(st, sql, "cannot create the expiry index of a state");
    sqlite3_free(sql);
  }
  return rc;
}

/* Writes the registry row of a state. */
static int slRegistryPut(sl_state *s) {
  sl_store *st = s->store;
  char *k = slColsSpec(s->key, s->n_key), *m = slColsSpec(s->mk, s->n_mk);
  char *v = slColsSpec(s->val, s->n_val), *sql = NULL;
  int rc;
  if (k && m && v)
    sql = sqlite3_mprintf(
        "INSERT OR REPLACE INTO sl_states(name, kind, table_name, key_columns, map_key_columns, "
        "value_columns, ttl_ms, ttl_flags, redistribution) VALUES(%Q,%Q,%Q,%Q,%Q,%Q,%lld,%d,%Q)",
        s->name, slKindName(s->kind), s->table, k, m, v, (long long)s->ttl_ms, s->ttl_flags,
        s->kind != SL_OPERATOR_LIST ? NULL
        : s->redistribution == SL_UNION ? "union" : "split_even");
  sqlite3_free(k);
  sqlite3_free(m);
  sqlite3_free(v);
  if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
  rc = slStoreExec(st, sql, "cannot write sl_states");
  sqlite3_free(sql);
  return rc;
}

/* Compares stored key or map-key columns with the descriptor's: equal. */
static int slSameCols(sl_state *s, const char *what, char *spec, const slCol *c, int n) {
  char *names[SL_MAX_VALUE_COLUMNS];
  int types[SL_MAX_VALUE_COLUMNS];
  int m = slColsParse(spec, names, types, SL_MAX_VALUE_COLUMNS);
  if (m < 0)
    return slStoreErr(s->store, SL_CORRUPT, "state '%s': sl_states holds malformed %s columns",
                      s->name, what);
  for (int i = 0; i < m || i < n; i++) {
    if (i >= m || i >= n || strcmp(names[i], c[i].name) != 0 || types[i] != c[i].type)
      return slStoreErr(s->store, SL_MISMATCH,
                        "state '%s': the file has %s columns (%s%s%s) where the descriptor "
                        "has (%s%s%s) at position %d; key columns cannot change",
                        s->name, what, i < m ? names[i] : "", i < m ? " " : "",
                        i < m ? slTypeName(types[i]) : "none", i < n ? c[i].name : "",
                        i < n ? " " : "", i < n ? slTypeName(c[i].type) : "none", i + 1);
  }
  return SL_OK;
}

static int slHasColumn(sl_state *s, const char *col, int *has) {
  sqlite3_stmt *q = NULL;
  int src = sqlite3_prepare_v2(s->store->db, "SELECT 1 FROM pragma_table_info(?1) WHERE name=?2",
                               -1, &q, NULL);
  *has = 0;
  if (src == SQLITE_OK) {
    sqlite3_bind_text(q, 1, s->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, col, -1, SQLITE_STATIC);
    src = sqlite3_step(q);
    if (src == SQLITE_ROW) *has = 1;
    if (src == SQLITE_ROW || src == SQLITE_DONE) src = SQLITE_OK;
  }
  sqlite3_finalize(q);
  return src == SQLITE_OK ? SL_OK : slStoreSqlErr(s->store, src, "cannot read a table's columns");
}

/* Reconciles a state that the file already holds with its descriptor:
** equal key columns, every stored value column still declared with the same
** type, new value columns added with their defaults. */
static int slEvolve(sl_state *s, sqlite3_stmt *row) {
  sl_store *st = s->store;
  char kbuf[2048], mbuf[2048], vbuf[4096];
  char *names[SL_MAX_VALUE_COLUMNS];
  int types[SL_MAX_VALUE_COLUMNS], nstored, rc, changed = 0, hasExp = 0;
  const char *kind = (const char *)sqlite3_column_text(row, 1);
  const char *table = (const char *)sqlite3_column_text(row, 2);
  if (!kind || strcmp(kind, slKindName(s->kind)) != 0)
    return slStoreErr(st, SL_MISMATCH, "state '%s' is a %s state in the file, not a %s state",
                      s->name, kind ? kind : "(unknown)", slKindName(s->kind));
  if (!table || strcmp(table, s->table) != 0)
    return slStoreErr(st, SL_CORRUPT, "state '%s': sl_states names table '%s', expected '%s'",
                      s->name, table ? table : "", s->table);
  snprintf(kbuf, sizeof kbuf, "%s", (const char *)sqlite3_column_text(row, 3));
  snprintf(mbuf, sizeof mbuf, "%s", (const char *)sqlite3_column_text(row, 4));
  snprintf(vbuf, sizeof vbuf, "%s", (const char *)sqlite3_column_text(row, 5));
  rc = slSameCols(s, "key", kbuf, s->key, s->n_key);
  if (rc == SL_OK) rc = slSameCols(s, "map-key", mbuf, s->mk, s->n_mk);
  if (rc) return rc;
  nstored = slColsParse(vbuf, names, types, SL_MAX_VALUE_COLUMNS);
  if (nstored < 0)
    return slStoreErr(st, SL_CORRUPT, "state '%s': sl_states holds malformed value columns", s->name);
  for (int i = 0; i < nstored; i++) {
    int j;
    for (j = 0; j < s->n_val && strcmp(s->val[j].name, names[i]) != 0; j++) {}
    if (j == s->n_val)
      return slStoreErr(st, SL_MISMATCH,
                        "state '%s': value column '%s' is in the file but not in the descriptor; "
                        "removing a column is not supported, keep it in the descriptor",
                        s->name, names[i]);
    if (s->val[j].type != types[i])
      return slStoreErr(st, SL_MISMATCH,
                        "state '%s': value column '%s' is %s in the file but %s in the descriptor",
                        s->name, names[i], slTypeName(types[i]), slTypeName(s->val[j].type));
  }
  rc = slHasColumn(s, "expires_at", &hasExp);
  if (rc) return rc;
  s->has_expires = hasExp;
  for (int j = 0; j < s->n_val && rc == SL_OK; j++) {
    int i;
    char *sql, *lit;
    for (i = 0; i < nstored && strcmp(s->val[j].name, names[i]) != 0; i++) {}
    if (i < nstored) continue;
    rc = slStoreBegin(st);
    if (rc) break;
    lit = slLiteral(&s->val[j].dflt);
    sql = lit ? sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN \"%w\" %s DEFAULT %s", s->table,
                                s->val[j].name, slTypeName(s->val[j].type), lit)
              : NULL;
    sqlite3_free(lit);
    if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
    rc = slStoreExec(st, sql, "cannot add a value column");
    sqlite3_free(sql);
    changed = 1;
  }
  if (rc == SL_OK && s->ttl_ms > 0 && !s->has_expires) {
    char *sql = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN expires_at INTEGER;"
                                "CREATE INDEX \"sl_ttl_%w\" ON \"%w\"(expires_at)",
                                s->table, s->name, s->table);
    if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
    rc = slStoreBegin(st);
    if (rc == SL_OK) rc = slStoreExec(st, sql, "cannot add the expiry column");
    sqlite3_free(sql);
    s->has_expires = 1;
    changed = 1;
  }
  if (rc == SL_OK && (changed || sqlite3_column_int64(row, 6) != s->ttl_ms ||
                      sqlite3_column_int(row, 7) != s->ttl_flags ||
                      (s->kind == SL_OPERATOR_LIST &&
                       strcmp((const char *)sqlite3_column_text(row, 8),
                              s->redistribution == SL_UNION ? "union" : "split_even") != 0))) {
    rc = slStoreBegin(st);
    if (rc == SL_OK) rc = slRegistryPut(s);
  }
  return rc;
}

static int slSameDesc(const sl_state *s, const sl_state_desc *d) {
  if (s->kind != d->kind || s->n_key != d->n_key || s->n_mk != d->n_map_key ||
      s->n_val != d->n_value || s->ttl_ms != d->ttl_ms || s->ttl_flags != d->ttl_flags)
    return 0;
  for (int i = 0; i < d->n_key; i++)
    if (strcmp(s->key[i].name, d->key[i].name) || s->key[i].type != d->key[i].type) return 0;
  for (int i = 0; i < d->n_map_key; i++)
    if (strcmp(s->mk[i].name, d->map_key[i].name) || s->mk[i].type != d->map_key[i].type) return 0;
  for (int i = 0; i < d->n_value; i++)
    if (strcmp(s->val[i].name, d->value[i].name) || s->val[i].type != d->value[i].type) return 0;
  return 1;
}

static int slStateNew(sl_store *st, const sl_state_desc *d, sl_state **out) {
  sl_state *s = slMalloc(&st->alloc, sizeof *s);
  int rc;
  size_t n;
  *out = s;
  if (!s) return slStoreErr(st, SL_NOMEM, "out of memory");
  memset(s, 0, sizeof *s);
  s->hdr.magic = SL_MAGIC_STATE;
  s->hdr.errmsg = st->errmsg;
  s->store = st;
  s->kind = d->kind;
  s->keyed = d->kind <= SL_AGGREGATING_STATE;
  s->is_list = d->kind == SL_LIST_STATE || d->kind == SL_OPERATOR_LIST;
  s->is_map = d->kind == SL_MAP_STATE || d->kind == SL_BROADCAST_MAP;
  s->n_key = d->n_key;
  s->n_mk = d->n_map_key;
  s->n_val = d->n_value;
  s->n_input = d->kind == SL_AGGREGATING_STATE ? d->n_input : d->n_value;
  s->n_result = d->kind == SL_AGGREGATING_STATE ? d->n_result : 0;
  s->ttl_ms = d->ttl_ms;
  s->ttl_flags = d->ttl_flags;
  s->has_expires = d->ttl_ms > 0;
  s->redistribution = d->redistribution;
  s->reduce = d->reduce;
  s->agg_add = d->agg_add;
  s->agg_merge = d->agg_merge;
  s->agg_result = d->agg_result;
  s->ud = d->ud;
  s->seed = slMurmur3(d->name, strlen(d->name), 0x5e17e);
  s->name = slStrdup(&st->alloc, d->name);
  n = strlen(d->name) + 8;
  s->table = slMalloc(&st->alloc, n);
  if (!s->name || !s->table) return slStoreErr(st, SL_NOMEM, "out of memory");
  snprintf(s->table, n, "%s%s",
           d->kind == SL_OPERATOR_LIST ? "sl_op_" : d->kind == SL_BROADCAST_MAP ? "sl_bc_" : "",
           d->name);
  rc = slColsCopy(st, &s->key, d->key, d->n_key);
  if (rc == SL_OK) rc = slColsCopy(st, &s->mk, d->map_key, d->n_map_key);
  if (rc == SL_OK) rc = slColsCopy(st, &s->val, d->value, d->n_value);
  if (rc == SL_OK && s->n_result) rc = slColsCopy(st, &s->result, d->result, d->n_result);
  if (rc) return rc;
  {
    char *pk = slPkCols(s);
    if (!pk) return slStoreErr(st, SL_NOMEM, "out of memory");
    s->pkcols = slStrdup(&st->alloc, pk);
    sqlite3_free(pk);
    if (!s->pkcols) return slStoreErr(st, SL_NOMEM, "out of memory");
  }
  return SL_OK;
}

static int slRegister(sl_store *st, const sl_state_desc *desc, int opened, sl_state **out) {
  sl_state *s = NULL;
  sqlite3_stmt *q = NULL;
  int rc, src;
  rc = slStoreWritable(st);
  if (rc == SL_OK) rc = slCheckDesc(st, desc, opened);
  /* it may write the registry and its failure looks at the transaction:
  ** after a checkpoint's frozen batch, not beside it */
  if (rc == SL_OK) rc = slStoreSettle(st);
  if (rc) return rc;
  for (int i = 0; i < st->nstates; i++) {
    if (strcasecmp(st->states[i]->name, desc->name) != 0) continue;
    if (strcmp(st->states[i]->name, desc->name) != 0)
      return slStoreErr(st, SL_MISUSE, "state '%s' differs from state '%s' only in case; SQLite "
                        "table names ignore case", desc->name, st->states[i]->name);
    if (!slSameDesc(st->states[i], desc))
      return slStoreErr(st, SL_MISMATCH,
                        "state '%s' is already registered with another descriptor", desc->name);
    *out = st->states[i];
    return SL_OK;
  }
  if (st->nstates == st->capstates) {
    int cap = st->capstates ? st->capstates * 2 : 8;
    sl_state **p = slRealloc(&st->alloc, st->states, sizeof *p * (size_t)cap);
    if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
    st->states = p;
    st->capstates = cap;
  }
  rc = slStateNew(st, desc, &s);
  if (rc == SL_OK) rc = slCacheStateInit(s);
  if (rc == SL_OK) s->opened = opened;
  if (rc == SL_OK) {
    src = sqlite3_prepare_v2(st->db, "SELECT * FROM sl_states WHERE name=?", -1, &q, NULL);
    if (src == SQLITE_OK) {
      sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
      src = sqlite3_step(q);
    }
    if (src == SQLITE_ROW) {
      rc = slEvolve(s, q);
    } else if (src == SQLITE_DONE) {
      rc = slStoreBegin(st);
      if (rc == SL_OK) rc = slCreateTable(s);
      if (rc == SL_OK) rc = slRegistryPut(s);
    } else {
      rc = slStoreSqlErr(st, src, "cannot read sl_states");
    }
    sqlite3_finalize(q);
  }
  if (rc) {
    slStateFree(s);
    if (st->in_txn && sqlite3_get_autocommit(st->db)) {
      char why[SL_ERRMSG_MAX];
      snprintf(why, sizeof why, "%s", st->errmsg);
      slStoreStepFailed(st, SQLITE_ERROR, why);
    }
    return rc;
  }
  st->states[st->nstates++] = s;
  *out = s;
  return SL_OK;
}

int sl_state_register(sl_store *st, const sl_state_desc *desc, sl_state **out) {
  int rc = slStoreUsable(st);
  if (rc) return rc;
  if (!out) return slStoreErr(st, SL_MISUSE, "the output pointer is NULL");
  *out = NULL;
  return slRegister(st, desc, 0, out);
}

static void slNamesFree(sl_store *st) {
  for (int i = 0; i < st->nnames; i++) slFree(&st->alloc, st->names[i]);
  slFree(&st->alloc, st->names);
  st->names = NULL;
  st->nnames = 0;
}

void slSchemaFree(sl_store *st) { slNamesFree(st); }

int sl_store_list_states(sl_store *st, const char *const **names, int *n) {
  sqlite3_stmt *q = NULL;
  int rc = slStoreUsable(st), src, cap = 0;
  if (rc) return rc;
  if (!names || !n) return slStoreErr(st, SL_MISUSE, "sl_store_list_states: an output pointer is NULL");
  slNamesFree(st);
  src = sqlite3_prepare_v2(st->db, "SELECT name FROM sl_states ORDER BY name", -1, &q, NULL);
  while (src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(q, 0);
    if (st->nnames == cap) {
      int ncap = cap ? cap * 2 : 8;
      char **p = slRealloc(&st->alloc, st->names, sizeof *p * (size_t)ncap);
      if (!p) { rc = slStoreErr(st, SL_NOMEM, "out of memory"); break; }
      st->names = p;
      cap = ncap;
    }
    st->names[st->nnames] = slStrdup(&st->alloc, name ? name : "");
    if (!st->names[st->nnames]) { rc = slStoreErr(st, SL_NOMEM, "out of memory"); break; }
    st->nnames++;
    src = SQLITE_OK;
  }
  sqlite3_finalize(q);
  if (rc == SL_OK && src != SQLITE_DONE) rc = slStoreSqlErr(st, src, "cannot read sl_states");
  if (rc) {
    slNamesFree(st);
    return rc;
  }
  *names = (const char *const *)st->names;
  *n = st->nnames;
  return SL_OK;
}

static int slKindParse(const char *s) {
  for (int k = 1; k <= SL_BROADCAST_MAP; k++)
    if (s && strcmp(s, slKindNames[k]) == 0) return k;
  return 0;
}

int sl_state_open(sl_store *st, const char *name, sl_state **out) {
  sqlite3_stmt *q = NULL;
  sl_state_desc d;
  sl_column cols[3][SL_MAX_VALUE_COLUMNS];
  char bufs[3][4096];
  char *names[SL_MAX_VALUE_COLUMNS];
  int types[SL_MAX_VALUE_COLUMNS], counts[3];
  int rc = slStoreUsable(st), src;
  if (rc) return rc;
  if (!name || !out) return slStoreErr(st, SL_MISUSE, "sl_state_open: a NULL argument");
  *out = NULL;
  for (int i = 0; i < st->nstates; i++)
    if (strcmp(st->states[i]->name, name) == 0) {
      *out = st->states[i];
      return SL_OK;
    }
  memset(&d, 0, sizeof d);
  src = sqlite3_prepare_v2(st->db,
                           "SELECT kind, key_columns, map_key_columns, value_columns, ttl_ms, "
                           "ttl_flags, redistribution FROM sl_states WHERE name=?",
                           -1, &q, NULL);
  if (src == SQLITE_OK) {
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    src = sqlite3_step(q);
  }
  if (src == SQLITE_DONE) {
    sqlite3_finalize(q);
    return slStoreErr(st, SL_NOTFOUND, "%s holds no state named '%s'", st->path, name);
  }
  if (src != SQLITE_ROW) {
    sqlite3_finalize(q);
    return slStoreSqlErr(st, src, "cannot read sl_states");
  }
  d.name = name;
  d.kind = slKindParse((const char *)sqlite3_column_text(q, 0));
  for (int g = 0; g < 3 && rc == SL_OK; g++) {
    const unsigned char *t = sqlite3_column_text(q, 1 + g);
    snprintf(bufs[g], sizeof bufs[g], "%s", t ? (const char *)t : "");
    counts[g] = slColsParse(bufs[g], names, types, SL_MAX_VALUE_COLUMNS);
    if (counts[g] < 0) rc = slStoreErr(st, SL_CORRUPT, "state '%s': sl_states holds malformed columns", name);
    for (int i = 0; i < counts[g] && rc == SL_OK; i++) {
      memset(&cols[g][i], 0, sizeof cols[g][i]);
      cols[g][i].name = names[i];
      cols[g][i].type = types[i];
    }
  }
  d.ttl_ms = sqlite3_column_int64(q, 4);
  d.ttl_flags = sqlite3_column_int(q, 5);
  {
    const unsigned char *r = sqlite3_column_text(q, 6);
    d.redistribution = r && strcmp((const char *)r, "union") == 0 ? SL_UNION : SL_SPLIT_EVEN;
  }
  if (rc == SL_OK && !d.kind) rc = slStoreErr(st, SL_CORRUPT, "state '%s' has an unknown kind", name);
  if (rc == SL_OK) {
    d.n_key = counts[0];
    d.key = cols[0];
    d.n_map_key = counts[1];
    d.map_key = cols[1];
    d.n_value = counts[2];
    d.value = cols[2];
    d.n_input = counts[2];
    rc = slRegister(st, &d, 1, out);
  }
  sqlite3_finalize(q);
  return rc;
}

int sl_state_describe(sl_state *s, sl_state_desc *out) {
  if (!s || s->hdr.magic != SL_MAGIC_STATE || !out) return SL_MISUSE;
  memset(out, 0, sizeof *out);
  out->name = s->name;
  out->kind = s->kind;
  out->n_key = s->n_key;
  out->key = s->key;
  out->n_map_key = s->n_mk;
  out->map_key = s->mk;
  out->n_value = s->n_val;
  out->value = s->val;
  out->ttl_ms = s->ttl_ms;
  out->ttl_flags = s->ttl_flags;
  out->redistribution = s->redistribution;
  out->n_input = s->n_input;
  out->n_result = s->n_result;
  out->result = s->result;
  out->reduce = s->reduce;
  out->agg_add = s->agg_add;
  out->agg_merge = s->agg_merge;
  out->agg_result = s->agg_result;
  out->ud = s->ud;
  return SL_OK;
}

int sl_state_find(sl_store *st, const char *name, sl_state **out) {
  int rc = slStoreUsable(st);
  if (rc) return rc;
  if (!name || !out) return slStoreErr(st, SL_MISUSE, "the name or the output pointer is NULL");
  *out = NULL;
  for (int i = 0; i < st->nstates; i++)
    if (strcmp(st->states[i]->name, name) == 0) {
      *out = st->states[i];
      return SL_OK;
    }
  return slStoreErr(st, SL_NOTFOUND, "no state named '%s' is registered with this store", name);
}

/* Builds the SQL of statement q of a state; sqlite3_malloc'ed. Parameters:
** ?1 kg, then key columns, then seq or map-key columns, then value columns,
** then expires_at (when the table has it). */
static char *slStateSql(sl_state *s, int q) {
  int p = 1;
  char *where = sqlite3_mprintf("%s", "");
  char *sql = NULL, *cols = NULL;
  const char *exp = s->has_expires ? "expires_at" : "NULL";
  if (!where) return NULL;
  if (s->keyed) { sqlite3_free(where); where = sqlite3_mprintf("kg=?%d", p++); }
  where = slColsMatch(where, s->key, s->n_key, &p);
  if (!where) return NULL;
  switch (q) {
    case SL_Q_GET:
      if (s->is_map) where = slColsMatch(where, s->mk, s->n_mk, &p);
      cols = slColsList(sqlite3_mprintf("%s", ""), s->val, s->n_val, ", ");
      if (where && cols)
        sql = sqlite3_mprintf("SELECT %s, %s FROM \"%w\"%s%s", cols, exp, s->table,
                              *where ? " WHERE " : "", where);
      break;
    case SL_Q_PUT: {
      char *params = sqlite3_mprintf("%s", "");
      int n = (s->keyed ? 1 : 0) + s->n_key + (s->is_list ? 1 : 0) + s->n_mk + s->n_val +
              (s->has_expires ? 1 : 0);
      cols = sqlite3_mprintf("%s", s->keyed ? "kg" : "");
      cols = slColsList(cols, s->key, s->n_key, ", ");
      if (cols && s->is_list) cols = sqlite3_mprintf("%z%sseq", cols, *cols ? ", " : "");
      cols = slColsList(cols, s->mk, s->n_mk, ", ");
      cols = slColsList(cols, s->val, s->n_val, ", ");
      if (cols && s->has_expires) cols = sqlite3_mprintf("%z, expires_at", cols);
      for (int i = 1; i <= n && params; i++) params = sqlite3_mprintf("%z%s?%d", params, i > 1 ? ", " : "", i);
      if (cols && params)
        sql = sqlite3_mprintf("INSERT OR REPLACE INTO \"%w\"(%s) VALUES(%s)", s->table, cols, params);
      sqlite3_free(params);
      break;
    }
    case SL_Q_DEL:
      if (s->is_map) where = slColsMatch(where, s->mk, s->n_mk, &p);
      /* fall through */
    case SL_Q_DELKEY:
      if (where) sql = sqlite3_mprintf("DELETE FROM \"%w\"%s%s", s->table, *where ? " WHERE " : "", where);
      break;
    case SL_Q_LOAD:
      cols = slColsList(sqlite3_mprintf("%s", ""), s->val, s->n_val, ", ");
      if (cols)
        sql = sqlite3_mprintf("SELECT seq, %s, %s FROM \"%w\"%s%s ORDER BY seq", cols, exp, s->table,
                              *where ? " WHERE " : "", where);
      break;
    case SL_Q_MAXSEQ:
      sql = sqlite3_mprintf("SELECT max(seq) FROM \"%w\"%s%s", s->table, *where ? " WHERE " : "", where);
      break;
  }
  sqlite3_free(cols);
  sqlite3_free(where);
  return sql;
}

int slStatePrepareFor(sl_state *s, sqlite3_stmt **set, int q, sqlite3_stmt **out) {
  if (!set[q]) {
    char *sql = slStateSql(s, q);
    int src;
    if (!sql) return SQLITE_NOMEM;
    src = sqlite3_prepare_v3(s->store->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &set[q], NULL);
    sqlite3_free(sql);
    if (src != SQLITE_OK) return src;
  }
  sqlite3_reset(set[q]);
  *out = set[q];
  return SQLITE_OK;
}

int slStatePrepare(sl_state *s, int q, sqlite3_stmt **out) {
  int src = slStatePrepareFor(s, s->q, q, out);
  if (src == SQLITE_OK) return SL_OK;
  return slStoreSqlErr(s->store, src, src == SQLITE_NOMEM ? "out of memory" : "cannot prepare a statement");
}
