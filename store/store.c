/*
** store.c — opening, checking and closing one operator instance's state
** file, its transaction (one write transaction between two commits), the
** current key, and the mapping of SQLite errors to statelite result codes.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "store/store.h"

int slStoreErr(sl_store *st, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  slErrorV(st->errmsg, rc, fmt, ap);
  va_end(ap);
  return rc;
}

int slStoreSqlRc(int src) {
  switch (src & 0xff) {
    case SQLITE_OK: return SL_OK;
    case SQLITE_NOMEM: return SL_NOMEM;
    case SQLITE_FULL: return SL_FULL;
    case SQLITE_IOERR: case SQLITE_CANTOPEN: case SQLITE_READONLY: return SL_IOERR;
    case SQLITE_BUSY: case SQLITE_LOCKED: return SL_BUSY;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return SL_CORRUPT;
    case SQLITE_MISUSE: return SL_MISUSE;
    default: return SL_ERROR;
  }
}

int slStoreSqlErr(sl_store *st, int src, const char *what) {
  /* while another thread writes a frozen batch through the connection, its
  ** last message may be that thread's: the code's own words then */
  const char *m = st->db && !st->frozen ? sqlite3_errmsg(st->db) : sqlite3_errstr(src);
  if ((src & 0xff) == SQLITE_NOMEM) m = "out of memory";
  return slStoreErr(st, slStoreSqlRc(src), "%s: %s (%s)", what, m, st->path ? st->path : "");
}

/* A statement of the write transaction failed. If SQLite rolled the
** transaction back, the changes since the last commit are gone from the file
** while the cache may already have forgotten them: the store is then marked
** failed, and only closing it (the file holds the last commit) is left. */
int slStoreStepFailed(sl_store *st, int src, const char *what) {
  int rc = slStoreSqlErr(st, src, what);
  if (st->in_txn && sqlite3_get_autocommit(st->db)) {
    st->in_txn = 0;
    st->failed = 1;
    size_t n = strlen(st->errmsg);
    snprintf(st->errmsg + n, SL_ERRMSG_MAX - n,
             "; the uncommitted changes are lost, close and reopen the store to continue "
             "from the last commit");
  }
  return rc;
}

int slStoreExec(sl_store *st, const char *sql, const char *what) {
  int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  return src == SQLITE_OK ? SL_OK : slStoreSqlErr(st, src, what);
}

int slStoreBegin(sl_store *st) {
  int rc;
  if (st->frozen && (rc = slStoreSettle(st)) != SL_OK) return rc;
  if (st->in_txn && sqlite3_get_autocommit(st->db)) {
    /* SQLite rolled the transaction back after an earlier failure (a read
    ** that failed can do that too, and its caller may have gone on): a
    ** write now would be committed on its own, outside the transaction */
    st->in_txn = 0;
    st->failed = 1;
    return slStoreErr(st, SL_ERROR, "an earlier failure made SQLite roll back the transaction of "
                      "%s; the uncommitted changes are lost, close and reopen the store to "
                      "continue from the last commit", st->path ? st->path : "the store");
  }
  if (st->in_txn) return SL_OK;
  rc = slStoreExec(st, "BEGIN IMMEDIATE", "cannot begin a write transaction");
  if (rc == SL_OK) st->in_txn = 1;
  return rc;
}

void slStoreKeepWriting(sl_store *st) {
  if (!st->in_txn && sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK)
    st->in_txn = 1;
}

int64_t slStoreNow(sl_store *st) {
  return st->cfg.clock_ms ? st->cfg.clock_ms(st->cfg.clock_ud) : slNowMs();
}

/* The slow half of slStoreUsable(): why a store cannot be used. */
int slStoreUnusable(sl_store *st) {
  if (!st || st->hdr.magic != SL_MAGIC_STORE) return SL_MISUSE;
  st->errmsg[0] = 0;
  st->pin_s = NULL;
  if (st->closed) return slStoreErr(st, SL_MISUSE, "the store is closed");
  if (st->failed)
    return slStoreErr(st, SL_ERROR,
                      "a failed write lost the uncommitted changes of this store; close and "
                      "reopen it to continue from the last commit");
  return SL_OK;
}

int slStoreWritable(sl_store *st) {
  if (st->iters)
    return slStoreErr(st, SL_MISUSE,
                      "an iterator is open on this store; close it with sl_iter_close() "
                      "before changing state");
  return SL_OK;
}

void sl_config_init(sl_config *cfg) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->memory_budget = 32u << 20;
  cfg->max_parallelism = SL_DEFAULT_MAX_PARALLELISM;
  cfg->page_cache_bytes = 2u << 20;
  cfg->ttl_cleanup_rows = 1000;
}

static int slIsOpName(const char *s) {
  size_t i;
  if (!s || !s[0] || s[0] == '.') return 0;
  for (i = 0; s[i]; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return i <= 128;
}

static int slMkdir(sl_store *st, const char *path) {
  if (mkdir(path, 0777) == 0 || errno == EEXIST) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return SL_OK;
    return slStoreErr(st, SL_IOERR, "cannot create directory %s: a file of that name exists", path);
  }
  return slStoreErr(st, errno == ENOSPC ? SL_FULL : SL_IOERR, "cannot create directory %s: %s",
                    path, strerror(errno));
}

/* Creates every directory of `path` (not its last component). */
static int slMkdirs(sl_store *st, const char *path) {
  char *p = slStrdup(&st->alloc, path);
  int rc = SL_OK;
  if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
  for (char *s = p + 1; *s && rc == SL_OK; s++) {
    if (*s != '/') continue;
    *s = 0;
    rc = slMkdir(st, p);
    *s = '/';
  }
  slFree(&st->alloc, p);
  return rc;
}

static sl_store *slStoreAlloc(const sl_config *cfg) {
  const sl_allocator *a = cfg && cfg->allocator ? cfg->allocator : slAllocDefault();
  sl_store *st = slMalloc(a, sizeof *st);
  if (!st) return NULL;
  memset(st, 0, sizeof *st);
  st->hdr.magic = SL_MAGIC_STORE;
  st->hdr.errmsg = st->errmsg;
  st->alloc = *a;
  if (cfg) st->cfg = *cfg;
  else sl_config_init(&st->cfg);
  st->cfg.allocator = &st->alloc;
  if (pthread_mutex_init(&st->mu, NULL) == 0) {
    if (pthread_cond_init(&st->cv, NULL) == 0) {
      st->sync_ok = 1;
    } else {
      pthread_mutex_destroy(&st->mu);
    }
  }
  if (!st->sync_ok) {
    slFree(a, st);
    return NULL;
  }
  return st;
}

/* Reads one sl_meta value as text into buf; "" when absent. */
static int slMetaGet(sl_store *st, const char *name, char *buf, size_t cap) {
  sqlite3_stmt *q = NULL;
  int src = sqlite3_prepare_v2(st->db, "SELECT value FROM sl_meta WHERE name=?", -1, &q, NULL);
  buf[0] = 0;
  if (src == SQLITE_OK) {
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
      const unsigned char *t = sqlite3_column_text(q, 0);
      snprintf(buf, cap, "%s", t ? (const char *)t : "");
      src = SQLITE_OK;
    } else if (src == SQLITE_DONE) {
      src = SQLITE_OK;
    }
  }
  sqlite3_finalize(q);
  return src == SQLITE_OK ? SL_OK : slStoreSqlErr(st, src, "cannot read sl_meta");
}

static int slMetaPut(sl_store *st, const char *name, const char *value) {
  char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO sl_meta(name, value) VALUES(%Q, %Q)", name, value);
  int rc;
  if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
  rc = slStoreExec(st, sql, "cannot write sl_meta");
  sqlite3_free(sql);
  return rc;
}

static int slPragmaInt(sl_store *st, const char *pragma, int64_t *out) {
  sqlite3_stmt *q = NULL;
  char sql[64];
  int src;
  snprintf(sql, sizeof sql, "PRAGMA %s", pragma);
  src = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL);
  if (src == SQLITE_OK) {
    src = sqlite3_step(q);
    if (src == SQLITE_ROW) { *out = sqlite3_column_int64(q, 0); src = SQLITE_OK; }
  }
  sqlite3_finalize(q);
  return src == SQLITE_OK ? SL_OK : slStoreSqlErr(st, src, "cannot read the state file");
}

/* An integer sl_meta value: SL_OK, SL_NOTFOUND when absent. */
int slStoreMetaGetInt(sl_store *st, const char *name, int64_t *out) {
  char v[64];
  long long n;
  int rc = slMetaGet(st, name, v, sizeof v);
  if (rc) return rc;
  if (!v[0]) return SL_NOTFOUND;
  if (sscanf(v, "%lld", &n) != 1)
    return slStoreErr(st, SL_CORRUPT, "%s: sl_meta value %s is not a number", st->path, name);
  *out = n;
  return SL_OK;
}

/* Sets an integer sl_meta value inside the store's write transaction, so
** that it is committed together with the state. */
int slStoreMetaSetInt(sl_store *st, const char *name, int64_t value) {
  char v[32];
  int rc = slStoreBegin(st);
  if (rc) return rc;
  snprintf(v, sizeof v, "%lld", (long long)value);
  return slMetaPut(st, name, v);
}

/* Writes the schema and meta rows of a new state file. */
static int slStoreCreate(sl_store *st) {
  char v[64];
  int rc;
  static const char schema[] =
      "PRAGMA application_id=1397511217;"
      "PRAGMA user_version=1;"
      "CREATE TABLE sl_meta(name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
      "CREATE TABLE sl_states(name TEXT PRIMARY KEY, kind TEXT NOT NULL, table_name TEXT NOT NULL,"
      " key_columns TEXT NOT NULL, map_key_columns TEXT NOT NULL, value_columns TEXT NOT NULL,"
      " ttl_ms INTEGER NOT NULL, ttl_flags INTEGER NOT NULL, redistribution TEXT) WITHOUT ROWID;"
      "CREATE TABLE sl_timers(domain INTEGER NOT NULL, ts INTEGER NOT NULL, kg INTEGER NOT NULL,"
      " key BLOB NOT NULL, PRIMARY KEY(domain, ts, kg, key)) WITHOUT ROWID;";
  rc = slStoreExec(st, "BEGIN IMMEDIATE", "cannot create the state file");
  if (rc == SL_OK) rc = slStoreExec(st, schema, "cannot create the state file");
  if (rc == SL_OK) rc = slMetaPut(st, "operator", st->op);
#define SL_PUT_INT(name, x) \
  if (rc == SL_OK) { snprintf(v, sizeof v, "%lld", (long long)(x)); rc = slMetaPut(st, name, v); }
  SL_PUT_INT("format", SL_FORMAT_VERSION);
  SL_PUT_INT("subtask", st->subtask);
  SL_PUT_INT("parallelism", st->parallelism);
  SL_PUT_INT("max_parallelism", st->maxp);
  SL_PUT_INT("kg_first", st->kg_first);
  SL_PUT_INT("kg_last", st->kg_last);
  SL_PUT_INT("last_checkpoint", 0);
  SL_PUT_INT("created_ms", slNowMs());
#undef SL_PUT_INT
  if (rc == SL_OK) rc = slMetaPut(st, "library_version", SL_VERSION);
  if (rc == SL_OK) rc = slStoreExec(st, "COMMIT", "cannot create the state file");
  if (rc != SL_OK && !sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", 0, 0, 0);
  return rc;
}

/* Checks an existing file's identity; want_* < 0 or NULL: take from file. */
static int slStoreCheck(sl_store *st, int64_t appid, int64_t version) {
  char v[160];
  int rc;
  long long n;
  if (appid != SL_APPLICATION_ID)
    return slStoreErr(st, SL_CORRUPT,
                      "%s is not a statelite state file (application_id %lld, expected %d)",
                      st->path, (long long)appid, SL_APPLICATION_ID);
  if (version != SL_FORMAT_VERSION)
    return slStoreErr(st, SL_MISMATCH,
                      "%s has state file format %lld; this library reads format %d", st->path,
                      (long long)version, SL_FORMAT_VERSION);
  rc = slMetaGet(st, "operator", v, sizeof v);
  if (rc) return rc;
  if (!st->op) {
    st->op = slStrdup(&st->alloc, v);
    if (!st->op) return slStoreErr(st, SL_NOMEM, "out of memory");
  } else if (strcmp(v, st->op) != 0) {
    return slStoreErr(st, SL_MISMATCH, "%s belongs to operator '%s', not '%s'", st->path, v, st->op);
  }
#define SL_CHECK_INT(name, field)                                                            \
  rc = slMetaGet(st, name, v, sizeof v);                                                     \
  if (rc) return rc;                                                                         \
  if (sscanf(v, "%lld", &n) != 1)                                                            \
    return slStoreErr(st, SL_CORRUPT, "%s: sl_meta has no valid %s", st->path, name);       \
  if (field < 0) field = (int)n;                                                             \
  else if (n != field)                                                                       \
    return slStoreErr(st, SL_MISMATCH, "%s was written with %s %lld, not %d", st->path, name, \
                      n, field);
  SL_CHECK_INT("subtask", st->subtask);
  SL_CHECK_INT("parallelism", st->parallelism);
  SL_CHECK_INT("max_parallelism", st->maxp);
#undef SL_CHECK_INT
  if (st->maxp < 1 || st->maxp > SL_MAX_MAX_PARALLELISM || st->parallelism < 1 ||
      st->parallelism > st->maxp || st->subtask < 0 || st->subtask >= st->parallelism)
    return slStoreErr(st, SL_CORRUPT, "%s: sl_meta holds an impossible parallelism", st->path);
  return SL_OK;
}

static int slStoreOpenDb(sl_store *st, int create) {
  int64_t appid = 0, version = 0, ntables = 0;
  int rc, src;
  char sql[128];
  /* serialized: the asynchronous part of a checkpoint writes through this
  ** connection while the owner thread reads through it (frozen.c) */
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  if (st->cfg.vfs && !sqlite3_vfs_find(st->cfg.vfs))
    return slStoreErr(st, SL_MISUSE, "no SQLite VFS named '%s' is registered", st->cfg.vfs);
  src = sqlite3_open_v2(st->path, &st->db, flags, st->cfg.vfs);
  if (src != SQLITE_OK) return slStoreSqlErr(st, src, "cannot open the state file");
  sqlite3_extended_result_codes(st->db, 1);
  sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
  sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
  sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)0);
  sqlite3_busy_timeout(st->db, 1000);
  rc = slPragmaInt(st, "application_id", &appid);
  if (rc == SL_OK) rc = slPragmaInt(st, "user_version", &version);
  if (rc == SL_OK) {
    sqlite3_stmt *q = NULL;
    src = sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sqlite_schema", -1, &q, NULL);
    if (src == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) ntables = sqlite3_column_int64(q, 0);
    else rc = slStoreSqlErr(st, src ? src : sqlite3_errcode(st->db), "cannot read the state file");
    sqlite3_finalize(q);
  }
  if (rc == SL_CORRUPT)
    return slStoreErr(st, SL_CORRUPT, "%s is not a statelite state file (not an SQLite database)",
                      st->path);
  if (rc) return rc;
  if (appid == 0 && version == 0 && ntables == 0) {
    if (!create)
      return slStoreErr(st, SL_CORRUPT, "%s is not a statelite state file (it is empty)", st->path);
    if (sl_key_group_range(st->maxp, st->parallelism, st->subtask, &st->kg_first, &st->kg_last))
      return slStoreErr(st, SL_MISUSE, "impossible parallelism");
    rc = slStoreCreate(st);
  } else {
    rc = slStoreCheck(st, appid, version);
  }
  if (rc) return rc;
  rc = slStoreExec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA secure_delete=OFF;",
                   "cannot configure the state file");
  if (rc) return rc;
  {
    /* the page cache is part of the memory budget (a quarter at most) */
    size_t pc = st->cfg.page_cache_bytes, budget = st->cfg.memory_budget;
    if (budget > 0 && pc > budget / 4) pc = budget / 4;
    st->budget = budget - (budget > 0 ? pc : 0);
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%llu", (unsigned long long)(pc / 1024 + 1));
  }
  rc = slStoreExec(st, sql, "cannot configure the state file");
  if (rc) return rc;
  if (sl_key_group_range(st->maxp, st->parallelism, st->subtask, &st->kg_first, &st->kg_last))
    return slStoreErr(st, SL_CORRUPT, "%s: impossible parallelism", st->path);
  return slSchemaInit(st);
}

int sl_store_open(const char *dir, const char *op, int subtask, int parallelism,
                  const sl_config *cfg, sl_store **out) {
  sl_store *st;
  int rc;
  size_t n;
  if (!out) return SL_MISUSE;
  *out = st = slStoreAlloc(cfg);
  if (!st) return SL_NOMEM;
  if (!dir || !dir[0]) return slStoreErr(st, SL_MISUSE, "the state directory is NULL or empty");
  if (!slIsOpName(op))
    return slStoreErr(st, SL_MISUSE,
                      "operator name '%s' is not 1..128 characters of [A-Za-z0-9_.-] "
                      "starting with something other than '.'",
                      op ? op : "(null)");
  st->maxp = st->cfg.max_parallelism;
  if (st->maxp < 1 || st->maxp > SL_MAX_MAX_PARALLELISM)
    return slStoreErr(st, SL_MISUSE, "max_parallelism %d is outside 1..%d", st->maxp,
                      SL_MAX_MAX_PARALLELISM);
  if (parallelism < 1 || parallelism > st->maxp)
    return slStoreErr(st, SL_MISUSE, "parallelism %d is outside 1..%d (max_parallelism)",
                      parallelism, st->maxp);
  if (subtask < 0 || subtask >= parallelism)
    return slStoreErr(st, SL_MISUSE, "subtask %d is outside 0..%d", subtask, parallelism - 1);
  st->subtask = subtask;
  st->parallelism = parallelism;
  st->op = slStrdup(&st->alloc, op);
  n = strlen(dir) + strlen(op) + 32;
  st->path = slMalloc(&st->alloc, n);
  if (!st->op || !st->path) return slStoreErr(st, SL_NOMEM, "out of memory");
  snprintf(st->path, n, "%s/%s/%d.db", dir, op, subtask);
  rc = slMkdirs(st, st->path);
  if (rc == SL_OK) rc = slStoreOpenDb(st, 1);
  return rc;
}

int sl_store_open_file(const char *path, const sl_config *cfg, sl_store **out) {
  sl_store *st;
  if (!out) return SL_MISUSE;
  *out = st = slStoreAlloc(cfg);
  if (!st) return SL_NOMEM;
  if (!path || !path[0]) return slStoreErr(st, SL_MISUSE, "the path is NULL or empty");
  st->path = slStrdup(&st->alloc, path);
  if (!st->path) return slStoreErr(st, SL_NOMEM, "out of memory");
  st->subtask = st->parallelism = st->maxp = -1;
  return slStoreOpenDb(st, 0);
}

int sl_store_close(sl_store *st) {
  int src = SQLITE_OK;
  if (!st) return SL_OK;
  if (st->hdr.magic != SL_MAGIC_STORE) return SL_MISUSE;
  if (st->iters)
    return slStoreErr(st, SL_MISUSE, "%d iterator(s) of this store are still open; close them "
                      "with sl_iter_close() first", st->iters);
  if (st->snapshots)
    return slStoreErr(st, SL_MISUSE, "%d snapshot(s) of this store are not ended; call "
                      "sl_snapshot_end() first", st->snapshots);
  slStoreSettle(st);
  slCacheFree(st);
  slTimerFree(st);
  slSchemaFree(st);
  for (int i = 0; i < st->nstates; i++) slStateFree(st->states[i]);
  slFree(&st->alloc, st->states);
  if (st->db) {
    if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", 0, 0, 0);
    src = sqlite3_close(st->db);
  }
  slFree(&st->alloc, st->kbuf);
  slFree(&st->alloc, st->mkbuf);
  slFree(&st->alloc, st->path);
  slFree(&st->alloc, st->op);
  st->hdr.magic = SL_MAGIC_DEAD;
  pthread_cond_destroy(&st->cv);
  pthread_mutex_destroy(&st->mu);
  sl_allocator a = st->alloc;
  slFree(&a, st);
  return src == SQLITE_OK ? SL_OK : SL_BUSY;
}

char *slStoreExpireSql(const sl_state *s, int64_t now, int64_t limit) {
  if (limit < 0)
    return sqlite3_mprintf("DELETE FROM \"%w\" WHERE expires_at <= %lld", s->table, (long long)now);
  return sqlite3_mprintf("DELETE FROM \"%w\" WHERE (%s) IN (SELECT %s FROM \"%w\" "
                         "WHERE expires_at <= %lld LIMIT %lld)",
                         s->table, s->pkcols, s->pkcols, s->table, (long long)now, (long long)limit);
}

/* Removes up to `limit` expired rows of every TTL state (limit < 0: all).
** Cached entries keep their expired rows; reads never return them. */
static int slStoreExpire(sl_store *st, int64_t limit, int64_t *removed) {
  int64_t now = slStoreNow(st);
  int rc = SL_OK;
  for (int i = 0; i < st->nstates && rc == SL_OK; i++) {
    sl_state *s = st->states[i];
    char *sql;
    int src;
    if (!s->has_expires) continue;
    rc = slCacheFlushState(s);
    if (rc == SL_OK) rc = slStoreBegin(st);
    if (rc) break;
    sql = slStoreExpireSql(s, now, limit);
    if (!sql) return slStoreErr(st, SL_NOMEM, "out of memory");
    src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (src != SQLITE_OK) return slStoreStepFailed(st, src, "cannot remove expired rows");
    if (removed) *removed += sqlite3_changes(st->db);
  }
  return rc;
}

int sl_store_commit(sl_store *st) {
  int rc = slStoreUsable(st);
  if (rc) return rc;
  rc = slStoreWritable(st);
  if (rc) return rc;
  rc = slStoreSettle(st);
  if (rc == SL_OK) rc = slCacheFlushAll(st);
  if (rc == SL_OK && st->cfg.ttl_cleanup_rows > 0) rc = slStoreExpire(st, st->cfg.ttl_cleanup_rows, NULL);
  if (rc == SL_OK && st->in_txn) {
    int src = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (src != SQLITE_OK) return slStoreStepFailed(st, src, "cannot commit");
    st->in_txn = 0;
    slStoreKeepWriting(st);
  }
  if (rc == SL_OK) rc = slCacheTrim(st);
  return rc;
}

int sl_store_sweep_expired(sl_store *st, int64_t *removed) {
  int rc = slStoreUsable(st);
  if (removed) *removed = 0;
  if (rc) return rc;
  rc = slStoreWritable(st);
  if (rc) return rc;
  return slStoreExpire(st, -1, removed);
}

int sl_store_info(sl_store *st, const char **op, int *subtask, int *parallelism,
                  int *max_parallelism, int *first, int *last) {
  int rc = slStoreUsable(st);
  if (rc) return rc;
  if (op) *op = st->op;
  if (subtask) *subtask = st->subtask;
  if (parallelism) *parallelism = st->parallelism;
  if (max_parallelism) *max_parallelism = st->maxp;
  if (first) *first = st->kg_first;
  if (last) *last = st->kg_last;
  return SL_OK;
}

const char *sl_store_path(sl_store *st) {
  return st && st->hdr.magic == SL_MAGIC_STORE ? st->path : NULL;
}

size_t sl_store_cache_bytes(sl_store *st) {
  return st && st->hdr.magic == SL_MAGIC_STORE ? st->bytes : 0;
}

int sl_store_set_key(sl_store *st, const sl_value *key, int n, int *kg) {
  const char *why = "";
  int bad = 0, rc = slStoreUsable(st);
  size_t sz;
  if (rc) return rc;
  st->key_set = 0;
  if (!key) return slStoreErr(st, SL_MISUSE, "the key is NULL");
  if (n == 1 && key[0].type == SL_INTEGER && st->kcap >= 9) {
    /* the most common key, one integer: its 9 canonical bytes at once */
    slKeyEncode(key, 1, st->kbuf);
    st->keyv[0] = key[0];
    sz = 9;
  } else {
    if (n < 1 || n > SL_MAX_KEY_COLUMNS)
      return slStoreErr(st, SL_MISUSE, "a key has 1..%d columns, not %d", SL_MAX_KEY_COLUMNS, n);
    sz = slKeySize(key, n, 0, &why, &bad);
    if (sz == 0) return slStoreErr(st, SL_MISUSE, "key column %d %s", bad + 1, why);
    if (sz > st->kcap) {
      unsigned char *p = slRealloc(&st->alloc, st->kbuf, sz * 2);
      if (!p) return slStoreErr(st, SL_NOMEM, "out of memory");
      st->kbuf = p;
      st->kcap = sz * 2;
    }
    slKeyEncodeCopy(key, n, st->kbuf, st->keyv);
  }
  st->klen = sz;
  /* the same call twice: with the length a constant, the compiler unrolls
  ** the hash of a one-integer key (9 bytes), the common case */
  st->khash = sz == 9 ? slMurmur3(st->kbuf, 9, 0) : slMurmur3(st->kbuf, sz, 0);
  st->kg = slKeyGroupOf(st->khash, st->maxp);
  if (kg) *kg = st->kg;
  if (st->kg < st->kg_first || st->kg > st->kg_last)
    return slStoreErr(st, SL_MISUSE,
                      "the key belongs to key group %d, outside this instance's range %d..%d "
                      "(subtask %d of %d): the stream is partitioned wrongly",
                      st->kg, st->kg_first, st->kg_last, st->subtask, st->parallelism);
  st->nkey = n;
  if (n == 1) {
    st->ksig = slKeySigAdd(1, key[0].type);
  } else {
    st->ksig = (uint64_t)n;
    for (int i = 0; i < n; i++) st->ksig = slKeySigAdd(st->ksig, key[i].type);
  }
  st->key_set = 1;
  st->key_gen++;
  return SL_OK;
}
