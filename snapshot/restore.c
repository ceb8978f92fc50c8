/*
** restore.c — restoring a checkpoint or savepoint into a state directory:
** verification of its files (sizes, CRC-32C, frames), bounded decompression,
** the checks of each untrusted database (identity, schema, quick_check,
** sl_meta, key groups), rescaling to another parallelism (keyed rows by
** key-group range, operator list state split or unioned, broadcast state
** copied), and the atomic replacement of the working files; falling back to
** older checkpoints when one does not verify.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"

/* What a restore works from. */
typedef struct rsCtx {
  sl_chkdir *cd;
  const slManifest *m;
  const char *cdir;          /* the checkpoint's directory */
  const char *state_dir;
} rsCtx;

/* An operator list state of the old instances, for the even split. */
typedef struct rsOpList {
  char *table;
  int is_union;
  int64_t *counts;           /* rows per old instance */
} rsOpList;

/* ------------------------------------------------------------------------ */
/* Verification of the files                                                 */
/* ------------------------------------------------------------------------ */

int slSnapVerifyFiles(sl_chkdir *cd, const char *dir, const slManifest *m) {
  unsigned char *buf = slMalloc(&cd->alloc, SL_SNAP_IOBUF);
  int rc = SL_OK;
  if (!buf) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  for (int k = 0; k < m->nops && rc == SL_OK; k++) {
    const slMfOp *op = &m->ops[k];
    for (int j = 0; j < op->parallelism && rc == SL_OK; j++) {
      const slMfFile *f = &op->files[j];
      char *path = slSnapPrintf(&cd->alloc, "%s/%s/%d.db.zst", dir, op->name, j);
      uint32_t crc = 0;
      uint64_t size = 0, have = 0;
      int src;
      if (!path) {
        rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
        break;
      }
      src = slSnapFileSize(cd->errmsg, &cd->fs, path, &have);
      if (f->raw > cd->cfg.max_raw_bytes)
        rc = slSnapCdErr(cd, SL_CORRUPT, "%s would decompress to %llu bytes, more than the limit "
                         "of %llu bytes (max_raw_bytes)", path, (unsigned long long)f->raw,
                         (unsigned long long)cd->cfg.max_raw_bytes);
      else if (src == SL_NOTFOUND)
        rc = slSnapCdErr(cd, SL_CORRUPT, "%s is missing", path);
      else if (src != SL_OK)
        rc = src;
      else if (have != f->size)
        rc = slSnapCdErr(cd, SL_CORRUPT, "%s has %llu bytes where the MANIFEST says %llu "
                         "(truncated or replaced)", path, (unsigned long long)have,
                         (unsigned long long)f->size);
      if (rc == SL_OK)
        rc = slSnapFileCrc(cd->errmsg, &cd->fs, path, buf, SL_SNAP_IOBUF, &crc, &size);
      if (rc == SL_OK && (crc != f->crc || size != f->size))
        rc = slSnapCdErr(cd, SL_CORRUPT, "%s has checksum %08x where the MANIFEST says %08x "
                         "(damaged)", path, (unsigned)crc, (unsigned)f->crc);
      if (rc == SL_OK)
        rc = slSnapFrameCheck(cd->errmsg, &cd->fs, path, f->raw, cd->cfg.max_raw_bytes, NULL);
      slFree(&cd->alloc, path);
    }
  }
  slFree(&cd->alloc, buf);
  return rc;
}

int sl_chkdir_verify(sl_chkdir *cd, int64_t id, const char *savepoint) {
  slManifest m;
  char *dir, *mf;
  int rc;
  if (!cd || cd->hdr.magic != SL_MAGIC_CHKDIR) return SL_MISUSE;
  if (!cd->dir) return slSnapCdErr(cd, SL_MISUSE, "the checkpoint directory was not opened");
  cd->errmsg[0] = 0;
  if (savepoint && !slSnapIsName(savepoint))
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_verify: bad savepoint name '%s'", savepoint);
  if (!savepoint && id < 1)
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_verify: checkpoint id %lld is not >= 1",
                       (long long)id);
  dir = slSnapEntryDir(cd, id, savepoint);
  mf = dir ? slSnapPrintf(&cd->alloc, "%s/MANIFEST", dir) : NULL;
  if (!mf) {
    slFree(&cd->alloc, dir);
    return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  }
  rc = slSnapMfLoad(cd->errmsg, &cd->fs, &cd->alloc, mf, &m);
  if (rc == SL_OK) {
    if (m.kind != (savepoint ? SL_SAVEPOINT : SL_CHECKPOINT) ||
        (savepoint ? strcmp(m.name, savepoint) != 0 : m.id != id))
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s describes another checkpoint (%s %lld)", mf,
                       m.kind == SL_SAVEPOINT ? "savepoint" : "checkpoint", (long long)m.id);
    else rc = slSnapVerifyFiles(cd, dir, &m);
    slSnapMfFree(&cd->alloc, &m);
  }
  slFree(&cd->alloc, dir);
  slFree(&cd->alloc, mf);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Untrusted databases                                                       */
/* ------------------------------------------------------------------------ */

static int rsSqlRc(int src) {
  switch (src & 0xff) {
    case SQLITE_NOMEM: return SL_NOMEM;
    case SQLITE_FULL: return SL_FULL;
    case SQLITE_IOERR: case SQLITE_CANTOPEN: case SQLITE_READONLY: return SL_IOERR;
    case SQLITE_BUSY: case SQLITE_LOCKED: return SL_BUSY;
    default: return SL_CORRUPT;
  }
}

static int rsSqlErr(sl_chkdir *cd, sqlite3 *db, int src, const char *label, const char *what) {
  return slSnapCdErr(cd, rsSqlRc(src), "%s: %s: %s", label, what,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
}

/* Opens a database file defensively: it may come from anywhere. */
static int rsOpenDb(sl_chkdir *cd, const char *path, int create, const char *label, sqlite3 **out) {
  sqlite3 *db = NULL;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int src = sqlite3_open_v2(path, &db, flags, cd->cfg.vfs);
  *out = NULL;
  if (src != SQLITE_OK) {
    int rc = rsSqlErr(cd, db, src, label, "cannot open");
    sqlite3_close(db);
    return rc;
  }
  sqlite3_extended_result_codes(db, 0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)0);
#ifdef SQLITE_DBCONFIG_ENABLE_VIEW
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, (int *)0);
#endif
  sqlite3_busy_timeout(db, 1000);
  *out = db;
  return SL_OK;
}

static int rsCloseDb(sl_chkdir *cd, sqlite3 *db, const char *label, int rc) {
  if (db && sqlite3_close(db) != SQLITE_OK && rc == SL_OK)
    rc = slSnapCdErr(cd, SL_BUSY, "%s: cannot close the database", label);
  return rc;
}

/* Runs a statement that returns at most one integer (*out) or nothing. */
static int rsInt(sl_chkdir *cd, sqlite3 *db, const char *label, const char *sql, int64_t *out,
                 int *found) {
  sqlite3_stmt *q = NULL;
  int src = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
  if (found) *found = 0;
  if (src == SQLITE_OK) {
    src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
      if (out) *out = sqlite3_column_int64(q, 0);
      if (found) *found = 1;
      src = SQLITE_OK;
    } else if (src == SQLITE_DONE) {
      src = SQLITE_OK;
    }
  }
  if (src != SQLITE_OK) {
    int rc = rsSqlErr(cd, db, src, label, "cannot read the database");
    sqlite3_finalize(q);
    return rc;
  }
  sqlite3_finalize(q);
  return SL_OK;
}

static int rsExec(sl_chkdir *cd, sqlite3 *db, const char *label, const char *sql) {
  int src = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return src == SQLITE_OK ? SL_OK : rsSqlErr(cd, db, src, label, "cannot write the database");
}

/* Compares an sl_meta value (of schema `sch`) with the text it must be. */
static int rsMetaIs(sl_chkdir *cd, sqlite3 *db, const char *label, const char *name,
                    const char *want) {
  sqlite3_stmt *q = NULL;
  int src = sqlite3_prepare_v2(db, "SELECT CAST(value AS TEXT) FROM sl_meta WHERE name=?1", -1, &q,
                               NULL);
  int rc = SL_OK;
  if (src == SQLITE_OK) {
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    src = sqlite3_step(q);
  }
  if (src == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(q, 0);
    if (!v || strcmp(v, want) != 0)
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s holds %s '%s' in sl_meta where the MANIFEST means '%s'",
                       label, name, v ? v : "(null)", want);
  } else if (src == SQLITE_DONE) {
    rc = slSnapCdErr(cd, SL_CORRUPT, "%s has no %s in sl_meta", label, name);
  } else {
    rc = rsSqlErr(cd, db, src, label, "cannot read sl_meta");
  }
  sqlite3_finalize(q);
  return rc;
}

static int rsIsKeyedKind(const char *kind) {
  return strcmp(kind, "value") == 0 || strcmp(kind, "list") == 0 || strcmp(kind, "map") == 0 ||
         strcmp(kind, "reducing") == 0 || strcmp(kind, "aggregating") == 0;
}

/* Does table `t` of schema `sch` have column `col`? */
static int rsHasCol(sl_chkdir *cd, sqlite3 *db, const char *label, const char *sch, const char *t,
                    const char *col, int *has) {
  char *sql = sqlite3_mprintf("SELECT 1 FROM pragma_table_info(%Q, %Q) WHERE name=%Q", t, sch, col);
  int rc;
  if (!sql) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  rc = rsInt(cd, db, label, sql, NULL, has);
  sqlite3_free(sql);
  return rc;
}

/* The schema of an untrusted state file: sl_meta and sl_states, each state's
** table named by the rules, no triggers, views or virtual tables, and no
** table that is neither a state's nor statelite's own. */
static int rsSchemaCheck(sl_chkdir *cd, sqlite3 *db, const char *label) {
  sqlite3_stmt *q = NULL;
  int64_t n = 0;
  int rc, src, found = 0;
  rc = rsInt(cd, db, label,
             "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN "
             "('sl_meta','sl_states')", &n, NULL);
  if (rc) return rc;
  if (n != 2) return slSnapCdErr(cd, SL_CORRUPT, "%s lacks the sl_meta or sl_states table", label);
  src = sqlite3_prepare_v2(db,
                           "SELECT type, name FROM sqlite_schema WHERE type IN ('trigger','view') "
                           "OR (type='table' AND upper(substr(sql,1,14))='CREATE VIRTUAL') LIMIT 1",
                           -1, &q, NULL);
  if (src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(q, 0);
    rc = slSnapCdErr(cd, SL_CORRUPT, "%s holds the %s '%s'; a snapshot holds only tables and "
                     "indexes", label, type && strcmp(type, "table") == 0 ? "virtual table" : type,
                     (const char *)sqlite3_column_text(q, 1));
  } else if (src != SQLITE_DONE) {
    rc = rsSqlErr(cd, db, src, label, "cannot read the schema");
  }
  sqlite3_finalize(q);
  q = NULL;
  if (rc) return rc;
  src = sqlite3_prepare_v2(db,
                           "SELECT name FROM sqlite_schema WHERE type='table' AND "
                           "substr(name,1,7)<>'sqlite_' AND substr(name,1,3)<>'sl_' AND name NOT IN "
                           "(SELECT table_name FROM sl_states) LIMIT 1",
                           -1, &q, NULL);
  if (src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW)
    rc = slSnapCdErr(cd, SL_CORRUPT, "%s holds the table '%s', which is no state of the file",
                     label, (const char *)sqlite3_column_text(q, 0));
  else if (src != SQLITE_DONE)
    rc = rsSqlErr(cd, db, src, label, "cannot read the schema");
  sqlite3_finalize(q);
  q = NULL;
  if (rc) return rc;
  src = sqlite3_prepare_v2(db,
                           "SELECT CAST(name AS TEXT), CAST(kind AS TEXT), CAST(table_name AS TEXT),"
                           " CAST(redistribution AS TEXT) FROM sl_states",
                           -1, &q, NULL);
  while (src == SQLITE_OK && rc == SL_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(q, 0);
    const char *kind = (const char *)sqlite3_column_text(q, 1);
    const char *table = (const char *)sqlite3_column_text(q, 2);
    const char *redis = (const char *)sqlite3_column_text(q, 3);
    char want[80];
    int keyed, has = 0;
    char *sql;
    src = SQLITE_OK;
    if (!name || !kind || !table || !slIsIdent(name)) {
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: sl_states holds a malformed row", label);
      break;
    }
    keyed = rsIsKeyedKind(kind);
    if (keyed) snprintf(want, sizeof want, "%s", name);
    else if (strcmp(kind, "operator_list") == 0) snprintf(want, sizeof want, "sl_op_%s", name);
    else if (strcmp(kind, "broadcast_map") == 0) snprintf(want, sizeof want, "sl_bc_%s", name);
    else {
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: state '%s' has the unknown kind '%s'", label, name, kind);
      break;
    }
    if (strcmp(table, want) != 0) {
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: state '%s' names table '%s', expected '%s'", label, name,
                       table, want);
      break;
    }
    if (strcmp(kind, "operator_list") == 0 &&
        (!redis || (strcmp(redis, "split_even") != 0 && strcmp(redis, "union") != 0))) {
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: operator list state '%s' has redistribution '%s'",
                       label, name, redis ? redis : "NULL");
      break;
    }
    sql = sqlite3_mprintf("SELECT 1 FROM sqlite_schema WHERE type='table' AND name=%Q", table);
    if (!sql) {
      rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
      break;
    }
    rc = rsInt(cd, db, label, sql, NULL, &found);
    sqlite3_free(sql);
    if (rc == SL_OK && !found)
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: the table '%s' of state '%s' is missing", label, table,
                       name);
    if (rc == SL_OK)
      rc = rsHasCol(cd, db, label, "main", table, keyed ? "kg" : "seq", &has);
    if (rc == SL_OK && (keyed || strcmp(kind, "operator_list") == 0) && !has)
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: the table '%s' lacks its %s column", label, table,
                       keyed ? "kg" : "seq");
  }
  if (rc == SL_OK && src != SQLITE_DONE) rc = rsSqlErr(cd, db, src, label, "cannot read sl_states");
  sqlite3_finalize(q);
  return rc;
}

/* Every row of every table with a kg column lies within [first, last]. */
static int rsKgCheck(sl_chkdir *cd, sqlite3 *db, const char *label, int first, int last) {
  sqlite3_stmt *q = NULL;
  int rc = SL_OK;
  int src = sqlite3_prepare_v2(db,
                               "SELECT name FROM sqlite_schema s WHERE type='table' AND "
                               "substr(name,1,7)<>'sqlite_' AND EXISTS (SELECT 1 FROM "
                               "pragma_table_info(s.name) WHERE name='kg')",
                               -1, &q, NULL);
  while (src == SQLITE_OK && rc == SL_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(q, 0);
    int64_t n = 0;
    char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\" WHERE kg < %d OR kg > %d OR "
                                "typeof(kg) <> 'integer'", t, first, last);
    src = SQLITE_OK;
    if (!sql) {
      rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
      break;
    }
    rc = rsInt(cd, db, label, sql, &n, NULL);
    sqlite3_free(sql);
    if (rc == SL_OK && n > 0)
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: table '%s' holds %lld row(s) outside the key groups "
                       "%d..%d of the instance", label, t, (long long)n, first, last);
  }
  if (rc == SL_OK && src != SQLITE_DONE) rc = rsSqlErr(cd, db, src, label, "cannot read the schema");
  sqlite3_finalize(q);
  return rc;
}

/* All checks of the state file of instance `subtask` of p of operator op. */
static int rsCheckOpen(sl_chkdir *cd, sqlite3 *db, const char *label, const char *op, int subtask,
                       int p, int maxp) {
  int64_t v = 0;
  int rc, first = 0, last = 0;
  char num[32];
  sqlite3_stmt *q = NULL;
  int src;
  rc = rsInt(cd, db, label, "PRAGMA application_id", &v, NULL);
  if (rc) return rc;
  if (v != SL_APPLICATION_ID)
    return slSnapCdErr(cd, SL_CORRUPT, "%s is not a statelite state file (application_id %lld)",
                       label, (long long)v);
  rc = rsInt(cd, db, label, "PRAGMA user_version", &v, NULL);
  if (rc) return rc;
  if (v != SL_FORMAT_VERSION)
    return slSnapCdErr(cd, SL_MISMATCH, "%s has state file format %lld; this library reads format "
                       "%d", label, (long long)v, SL_FORMAT_VERSION);
  src = sqlite3_prepare_v2(db, "PRAGMA quick_check(3)", -1, &q, NULL);
  if (src == SQLITE_OK) src = sqlite3_step(q);
  if (src == SQLITE_ROW) {
    const char *r = (const char *)sqlite3_column_text(q, 0);
    if (!r || strcmp(r, "ok") != 0) {
      char why[300];
      size_t used = 0;
      int code = SL_CORRUPT;
      why[0] = 0;
      for (; src == SQLITE_ROW && used < sizeof why - 1; src = sqlite3_step(q)) {
        const char *ec;
        r = (const char *)sqlite3_column_text(q, 0);
        if (r && strncmp(r, "*** in database", 15) == 0) r = strchr(r, '\n') ? strchr(r, '\n') + 1 : "";
        if (!r || !*r) continue;
        /* a page SQLite could not read ("unable to get the page. error
        ** code=266") is the file system's failure, not the snapshot's */
        ec = strstr(r, "error code=");
        if (ec && code == SL_CORRUPT && rsSqlRc(atoi(ec + 11)) != SL_CORRUPT)
          code = rsSqlRc(atoi(ec + 11));
        used += (size_t)snprintf(why + used, sizeof why - used, "%s%s", used ? "; " : "", r);
      }
      rc = slSnapCdErr(cd, code, "%s %s quick_check: %s", label,
                       code == SL_CORRUPT ? "fails" : "could not be read by", why);
    }
  } else {
    rc = rsSqlErr(cd, db, src, label, "quick_check failed");
  }
  sqlite3_finalize(q);
  if (rc == SL_OK) rc = rsSchemaCheck(cd, db, label);
  if (rc == SL_OK) rc = rsMetaIs(cd, db, label, "operator", op);
  snprintf(num, sizeof num, "%d", SL_FORMAT_VERSION);
  if (rc == SL_OK) rc = rsMetaIs(cd, db, label, "format", num);
  snprintf(num, sizeof num, "%d", subtask);
  if (rc == SL_OK) rc = rsMetaIs(cd, db, label, "subtask", num);
  snprintf(num, sizeof num, "%d", p);
  if (rc == SL_OK) rc = rsMetaIs(cd, db, label, "parallelism", num);
  snprintf(num, sizeof num, "%d", maxp);
  if (rc == SL_OK) rc = rsMetaIs(cd, db, label, "max_parallelism", num);
  if (rc == SL_OK && sl_key_group_range(maxp, p, subtask, &first, &last) != SL_OK)
    rc = slSnapCdErr(cd, SL_CORRUPT, "%s: impossible parallelism", label);
  snprintf(num, sizeof num, "%d", first);
  if (rc == SL_OK) rc = rsMetaIs(cd, db, label, "kg_first", num);
  snprintf(num, sizeof num, "%d", last);
  if (rc == SL_OK) rc = rsMetaIs(cd, db, label, "kg_last", num);
  if (rc == SL_OK) rc = rsKgCheck(cd, db, label, first, last);
  return rc;
}

/* Checks a database file; sets last_checkpoint when set_last > 0. */
static int rsCheckDb(sl_chkdir *cd, const char *path, const char *label, const char *op,
                     int subtask, int p, int maxp, int64_t set_last) {
  sqlite3 *db = NULL;
  int rc = rsOpenDb(cd, path, 0, label, &db);
  if (rc == SL_OK) rc = rsCheckOpen(cd, db, label, op, subtask, p, maxp);
  if (rc == SL_OK && set_last > 0) {
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO sl_meta(name, value) "
             "VALUES('last_checkpoint', '%lld')", (long long)set_last);
    rc = rsExec(cd, db, label, sql);
  }
  return rsCloseDb(cd, db, label, rc);
}

/* ------------------------------------------------------------------------ */
/* Rescaling                                                                 */
/* ------------------------------------------------------------------------ */

static void rsOpListFree(sl_chkdir *cd, rsOpList *v, int n) {
  for (int i = 0; i < n; i++) {
    slFree(&cd->alloc, v[i].table);
    slFree(&cd->alloc, v[i].counts);
  }
  slFree(&cd->alloc, v);
}

/* Counts the rows of every operator list state of old instance i. */
static int rsCountOpLists(sl_chkdir *cd, const char *path, const char *label, int i, int p0,
                          rsOpList **v, int *n, int *cap) {
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  int rc = rsOpenDb(cd, path, 0, label, &db), src = SQLITE_OK;
  if (rc) return rc;
  src = sqlite3_prepare_v2(db, "SELECT CAST(table_name AS TEXT), redistribution='union' FROM "
                           "sl_states WHERE kind='operator_list'", -1, &q, NULL);
  while (rc == SL_OK && src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(q, 0);
    rsOpList *o = NULL;
    char *sql;
    int64_t cnt = 0;
    src = SQLITE_OK;
    for (int k = 0; k < *n; k++)
      if (strcmp((*v)[k].table, t) == 0) o = &(*v)[k];
    if (!o) {
      if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        rsOpList *nv = slRealloc(&cd->alloc, *v, sizeof *nv * (size_t)ncap);
        if (!nv) {
          rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
          break;
        }
        *v = nv;
        *cap = ncap;
      }
      o = &(*v)[*n];
      memset(o, 0, sizeof *o);
      (*n)++;
      o->table = slStrdup(&cd->alloc, t);
      o->counts = slMalloc(&cd->alloc, sizeof *o->counts * (size_t)p0);
      if (!o->table || !o->counts) {
        rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
        break;
      }
      memset(o->counts, 0, sizeof *o->counts * (size_t)p0);
      o->is_union = sqlite3_column_int(q, 1);
    } else if (o->is_union != sqlite3_column_int(q, 1)) {
      rc = slSnapCdErr(cd, SL_MISMATCH, "%s: operator list table '%s' has another redistribution "
                       "in another instance", label, t);
      break;
    }
    sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", t);
    if (!sql) {
      rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
      break;
    }
    rc = rsInt(cd, db, label, sql, &cnt, NULL);
    sqlite3_free(sql);
    o->counts[i] = cnt;
  }
  if (rc == SL_OK && src != SQLITE_DONE) rc = rsSqlErr(cd, db, src, label, "cannot read sl_states");
  sqlite3_finalize(q);
  return rsCloseDb(cd, db, label, rc);
}

/* The quoted column list of main.t, leaving out `skip` (may be NULL). */
static int rsCols(sl_chkdir *cd, sqlite3 *db, const char *label, const char *t, const char *skip,
                  char **out) {
  sqlite3_stmt *q = NULL;
  char *cols = sqlite3_mprintf("%s", "");
  int src = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid",
                               -1, &q, NULL);
  *out = NULL;
  if (src == SQLITE_OK) sqlite3_bind_text(q, 1, t, -1, SQLITE_STATIC);
  while (cols && src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *c = (const char *)sqlite3_column_text(q, 0);
    src = SQLITE_OK;
    if (!c || (skip && strcmp(c, skip) == 0)) continue;
    cols = sqlite3_mprintf("%z%s\"%w\"", cols, *cols ? ", " : "", c);
  }
  sqlite3_finalize(q);
  if (!cols) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  if (src != SQLITE_DONE) {
    sqlite3_free(cols);
    return rsSqlErr(cd, db, src, label, "cannot read a table's columns");
  }
  *out = cols;
  return SL_OK;
}

/* Creates in main every table and index of o that main lacks, from o's own
** statements (one CREATE each, nothing after it); those main has must be
** identical. */
static int rsCopySchema(sl_chkdir *cd, sqlite3 *db, const char *label) {
  sqlite3_stmt *q = NULL;
  int rc = SL_OK;
  int src = sqlite3_prepare_v2(db,
                               "SELECT a.type, a.name, a.sql, b.sql FROM o.sqlite_schema a LEFT JOIN "
                               "main.sqlite_schema b ON b.name=a.name AND b.type=a.type WHERE "
                               "a.type IN ('table','index') AND a.sql IS NOT NULL AND "
                               "substr(a.name,1,7)<>'sqlite_' ORDER BY a.type='index', a.rowid",
                               -1, &q, NULL);
  while (rc == SL_OK && src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(q, 0);
    const char *name = (const char *)sqlite3_column_text(q, 1);
    const char *sql = (const char *)sqlite3_column_text(q, 2);
    const char *have = (const char *)sqlite3_column_text(q, 3);
    const char *tail = NULL;
    sqlite3_stmt *c = NULL;
    int csrc;
    src = SQLITE_OK;
    if (!type || !name || !sql) continue;
    if (have) {
      if (strcmp(have, sql) != 0)
        rc = slSnapCdErr(cd, SL_MISMATCH, "%s: the %s '%s' is defined differently in another "
                         "instance", label, type, name);
      continue;
    }
    if (strcmp(type, "table") == 0 ? strncmp(sql, "CREATE TABLE ", 13) != 0
                                   : strncmp(sql, "CREATE INDEX ", 13) != 0 &&
                                         strncmp(sql, "CREATE UNIQUE INDEX ", 20) != 0) {
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: the %s '%s' has an unexpected definition", label, type,
                       name);
      break;
    }
    csrc = sqlite3_prepare_v2(db, sql, -1, &c, &tail);
    while (csrc == SQLITE_OK && tail && (*tail == ' ' || *tail == '\n' || *tail == '\t')) tail++;
    if (csrc == SQLITE_OK && (!c || (tail && *tail))) {
      rc = slSnapCdErr(cd, SL_CORRUPT, "%s: the %s '%s' has an unexpected definition", label, type,
                       name);
    } else if (csrc == SQLITE_OK) {
      csrc = sqlite3_step(c);
      if (csrc == SQLITE_DONE) csrc = SQLITE_OK;
    }
    if (rc == SL_OK && csrc != SQLITE_OK)
      rc = rsSqlErr(cd, db, csrc, label, "cannot create a table of the new instance");
    sqlite3_finalize(c);
  }
  if (rc == SL_OK && src != SQLITE_DONE) rc = rsSqlErr(cd, db, src, label, "cannot read the schema");
  sqlite3_finalize(q);
  return rc;
}

/* Runs `INSERT ... SELECT` SQL built by the caller (freed here). */
static int rsRun(sl_chkdir *cd, sqlite3 *db, const char *label, char *sql) {
  int rc;
  if (!sql) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  rc = rsExec(cd, db, label, sql);
  sqlite3_free(sql);
  return rc;
}

/* Copies the rows of attached old instance i (of p0) that new instance j
** (of p1, key groups [f, l]) gets. */
static int rsCopyRows(sl_chkdir *cd, sqlite3 *db, const char *label, int i, int p0, int j, int p1,
                      int maxp, int f, int l, const rsOpList *ops, int nops) {
  sqlite3_stmt *q = NULL;
  int rc, src, f0 = 0, l0 = 0;
  int64_t bad = 0;
  sl_key_group_range(maxp, p0, i, &f0, &l0);
  rc = rsExec(cd, db, label, "INSERT OR IGNORE INTO main.sl_states SELECT * FROM o.sl_states;"
                             "INSERT OR IGNORE INTO main.sl_meta SELECT * FROM o.sl_meta;");
  if (rc == SL_OK)
    rc = rsInt(cd, db, label,
               "SELECT count(*) FROM o.sl_states a JOIN main.sl_states b USING(name) WHERE "
               "a.kind IS NOT b.kind OR a.table_name IS NOT b.table_name OR a.key_columns IS NOT "
               "b.key_columns OR a.map_key_columns IS NOT b.map_key_columns OR a.value_columns IS "
               "NOT b.value_columns OR a.redistribution IS NOT b.redistribution",
               &bad, NULL);
  if (rc == SL_OK && bad)
    rc = slSnapCdErr(cd, SL_MISMATCH, "%s: the instances register %lld state(s) differently",
                     label, (long long)bad);
  if (rc) return rc;
  src = sqlite3_prepare_v2(db,
                           "SELECT t.name, s.kind, s.redistribution FROM o.sqlite_schema t LEFT JOIN "
                           "o.sl_states s ON s.table_name=t.name WHERE t.type='table' AND "
                           "substr(t.name,1,7)<>'sqlite_' AND t.name NOT IN ('sl_meta','sl_states') "
                           "ORDER BY t.rowid",
                           -1, &q, NULL);
  while (rc == SL_OK && src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(q, 0);
    const char *kind = (const char *)sqlite3_column_text(q, 1);
    char *cols = NULL;
    int has_kg = 0;
    src = SQLITE_OK;
    if (!t) continue;
    if (!kind) rc = rsHasCol(cd, db, label, "o", t, "kg", &has_kg);
    if (rc) break;
    if ((kind && rsIsKeyedKind(kind)) || (!kind && strcmp(t, "sl_checkpoints") != 0 && has_kg)) {
      int a = f > f0 ? f : f0, b = l < l0 ? l : l0;
      if (a > b) continue;
      rc = rsCols(cd, db, label, t, NULL, &cols);
      if (rc == SL_OK)
        rc = rsRun(cd, db, label,
                   sqlite3_mprintf("INSERT INTO main.\"%w\"(%s) SELECT %s FROM o.\"%w\" WHERE kg "
                                   "BETWEEN %d AND %d", t, cols, cols, t, a, b));
    } else if (kind && strcmp(kind, "operator_list") == 0) {
      const rsOpList *o = NULL;
      for (int k = 0; k < nops; k++)
        if (strcmp(ops[k].table, t) == 0) o = &ops[k];
      if (!o) {
        rc = slSnapCdErr(cd, SL_ERROR, "%s: operator list '%s' was not counted", label, t);
        break;
      }
      rc = rsCols(cd, db, label, t, "seq", &cols);
      if (rc == SL_OK && o->is_union) {
        rc = rsRun(cd, db, label,
                   sqlite3_mprintf("INSERT INTO main.\"%w\"(%s) SELECT %s FROM o.\"%w\" ORDER BY "
                                   "seq", t, cols, cols, t));
      } else if (rc == SL_OK) {
        int64_t total = 0, before = 0, start, end, lo, hi;
        for (int k = 0; k < p0; k++) total += o->counts[k];
        for (int k = 0; k < i; k++) before += o->counts[k];
        start = total / p1 * j + (j < total % p1 ? j : total % p1);
        end = start + total / p1 + (j < total % p1 ? 1 : 0);
        lo = start - before > 0 ? start - before : 0;
        hi = end - before < o->counts[i] ? end - before : o->counts[i];
        if (lo < hi)
          rc = rsRun(cd, db, label,
                     sqlite3_mprintf("INSERT INTO main.\"%w\"(%s) SELECT %s FROM o.\"%w\" ORDER BY "
                                     "seq LIMIT %lld OFFSET %lld", t, cols, cols, t,
                                     (long long)(hi - lo), (long long)lo));
      }
    } else if ((kind && strcmp(kind, "broadcast_map") == 0) ||
               (strcmp(t, "sl_checkpoints") == 0 && !kind)) {
      int owner = 0;
      sl_key_group_owner(maxp, p0, f, &owner);
      if (kind || owner == i) { /* broadcast from all (the same), history from one */
        rc = rsCols(cd, db, label, t, NULL, &cols);
        if (rc == SL_OK)
          rc = rsRun(cd, db, label,
                     sqlite3_mprintf("INSERT OR IGNORE INTO main.\"%w\"(%s) SELECT %s FROM o.\"%w\"",
                                     t, cols, cols, t));
      }
    } else {
      rc = slSnapCdErr(cd, SL_MISMATCH, "%s: table '%s' has no key groups and no known "
                       "redistribution, so it cannot be rescaled", label, t);
    }
    sqlite3_free(cols);
  }
  if (rc == SL_OK && src != SQLITE_DONE) rc = rsSqlErr(cd, db, src, label, "cannot read the schema");
  sqlite3_finalize(q);
  return rc;
}

/* Builds the file of new instance j of p1 from the p0 old files. */
static int rsBuild(sl_chkdir *cd, const slMfOp *op, int p1, int j, const char *rdir,
                   int64_t pgsz, int64_t id, const rsOpList *ops, int nops) {
  char *path = slSnapPrintf(&cd->alloc, "%s/new-%d.db", rdir, j), *sql = NULL;
  char label[200];
  sqlite3 *db = NULL;
  sqlite3_stmt *att = NULL;
  int rc, src, f = 0, l = 0;
  snprintf(label, sizeof label, "rescaling %s to instance %d of %d", op->name, j, p1);
  if (!path) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  sl_key_group_range(op->maxp, p1, j, &f, &l);
  rc = slSnapUnlink(cd->errmsg, &cd->fs, path);
  if (rc == SL_OK) rc = rsOpenDb(cd, path, 1, label, &db);
  if (rc == SL_OK) {
    sql = sqlite3_mprintf("PRAGMA page_size=%lld; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                          "PRAGMA application_id=%d; PRAGMA user_version=%d;",
                          (long long)pgsz, SL_APPLICATION_ID, SL_FORMAT_VERSION);
    rc = rsRun(cd, db, label, sql);
  }
  if (rc == SL_OK) {
    src = sqlite3_prepare_v2(db, "ATTACH ?1 AS o", -1, &att, NULL);
    if (src != SQLITE_OK) rc = rsSqlErr(cd, db, src, label, "cannot prepare ATTACH");
  }
  for (int i = 0; i < op->parallelism && rc == SL_OK; i++) {
    char *old = slSnapPrintf(&cd->alloc, "%s/old-%d.db", rdir, i);
    if (!old) {
      rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
      break;
    }
    sqlite3_reset(att);
    sqlite3_bind_text(att, 1, old, -1, SQLITE_STATIC);
    src = sqlite3_step(att);
    sqlite3_reset(att);
    sqlite3_clear_bindings(att);
    slFree(&cd->alloc, old);
    if (src != SQLITE_DONE) {
      rc = rsSqlErr(cd, db, src, label, "cannot attach an old instance");
      break;
    }
    rc = rsCopySchema(cd, db, label);
    if (rc == SL_OK) rc = rsExec(cd, db, label, "BEGIN");
    if (rc == SL_OK)
      rc = rsCopyRows(cd, db, label, i, op->parallelism, j, p1, op->maxp, f, l, ops, nops);
    if (rc == SL_OK) rc = rsExec(cd, db, label, "COMMIT");
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (sqlite3_exec(db, "DETACH o", NULL, NULL, NULL) != SQLITE_OK && rc == SL_OK)
      rc = rsSqlErr(cd, db, SQLITE_ERROR, label, "cannot detach an old instance");
  }
  sqlite3_finalize(att);
  if (rc == SL_OK) {
    sql = sqlite3_mprintf(
        "INSERT OR REPLACE INTO sl_meta(name, value) VALUES('subtask', '%d'), ('parallelism', "
        "'%d'), ('kg_first', '%d'), ('kg_last', '%d'), ('last_checkpoint', '%lld')",
        j, p1, f, l, (long long)id);
    rc = rsRun(cd, db, label, sql);
  }
  rc = rsCloseDb(cd, db, label, rc);
  slFree(&cd->alloc, path);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Restoring one operator                                                    */
/* ------------------------------------------------------------------------ */

static char *rsRestoreDir(rsCtx *x, const slMfOp *op) {
  return slSnapPrintf(&x->cd->alloc, "%s/%s/.restore", x->state_dir, op->name);
}

/* Makes (or empties) <state_dir>/<op>/.restore. The directories made on
** the way are durable: the state directory and the operator's would
** otherwise take the installed files with them in a power loss. */
static int rsFreshDir(rsCtx *x, const char *rdir) {
  int rc = slSnapRemoveTree(x->cd->errmsg, &x->cd->fs, &x->cd->alloc, rdir, NULL);
  if (rc == SL_OK) rc = slSnapMkdirs(x->cd->errmsg, &x->cd->fs, rdir, 1);
  return rc;
}

/* Decompresses old file j of op into dst and checks it. */
static int rsUnpack(rsCtx *x, const slMfOp *op, int j, const char *dst, int64_t set_last) {
  sl_chkdir *cd = x->cd;
  char *src = slSnapPrintf(&cd->alloc, "%s/%s/%d.db.zst", x->cdir, op->name, j);
  int rc;
  if (!src) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  rc = slSnapDecompress(cd->errmsg, &cd->fs, &cd->alloc, src, dst, op->files[j].raw);
  if (rc == SL_OK) rc = rsCheckDb(cd, dst, src, op->name, j, op->parallelism, op->maxp, set_last);
  if (rc == SL_OK) slKillPoint("restore"); /* test hook (base.h): a file unpacked */
  slFree(&cd->alloc, src);
  return rc;
}

static int rsPrepareSame(rsCtx *x, const slMfOp *op, const char *rdir) {
  sl_chkdir *cd = x->cd;
  int rc = rsFreshDir(x, rdir);
  for (int j = 0; j < op->parallelism && rc == SL_OK; j++) {
    char *dst = slSnapPrintf(&cd->alloc, "%s/new-%d.db", rdir, j);
    if (!dst) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
    rc = rsUnpack(x, op, j, dst, x->m->id);
    slFree(&cd->alloc, dst);
    if (rc == SL_OK && cd->cfg.progress)
      cd->cfg.progress(cd->cfg.progress_ud, "unpacked", op->name, j + 1, op->parallelism);
  }
  return rc;
}

static int rsPrepareRescale(rsCtx *x, const slMfOp *op, int p1, const char *rdir) {
  sl_chkdir *cd = x->cd;
  rsOpList *ops = NULL;
  int nops = 0, cap = 0, p0 = op->parallelism;
  int64_t pgsz = 4096;
  int rc = rsFreshDir(x, rdir);
  for (int i = 0; i < p0 && rc == SL_OK; i++) {
    char *old = slSnapPrintf(&cd->alloc, "%s/old-%d.db", rdir, i);
    if (!old) {
      rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
      break;
    }
    rc = rsUnpack(x, op, i, old, 0);
    if (rc == SL_OK && cd->cfg.progress)
      cd->cfg.progress(cd->cfg.progress_ud, "unpacked", op->name, i + 1, p0);
    if (rc == SL_OK) rc = rsCountOpLists(cd, old, old, i, p0, &ops, &nops, &cap);
    if (rc == SL_OK && i == 0) {
      sqlite3 *db = NULL;
      rc = rsOpenDb(cd, old, 0, old, &db);
      if (rc == SL_OK) rc = rsInt(cd, db, old, "PRAGMA page_size", &pgsz, NULL);
      rc = rsCloseDb(cd, db, old, rc);
    }
    slFree(&cd->alloc, old);
  }
  for (int j = 0; j < p1 && rc == SL_OK; j++) {
    char *dst = slSnapPrintf(&cd->alloc, "%s/new-%d.db", rdir, j);
    char label[200];
    if (!dst) {
      rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
      break;
    }
    snprintf(label, sizeof label, "instance %d of %d of %s rebuilt from %s", j, p1, op->name,
             x->cdir);
    rc = rsBuild(cd, op, p1, j, rdir, pgsz, x->m->id, ops, nops);
    if (rc == SL_OK) rc = rsCheckDb(cd, dst, label, op->name, j, p1, op->maxp, 0);
    slFree(&cd->alloc, dst);
    if (rc == SL_OK && cd->cfg.progress)
      cd->cfg.progress(cd->cfg.progress_ud, "rebuilt", op->name, j + 1, p1);
  }
  for (int i = 0; i < p0; i++) { /* the old files are no longer needed */
    char *old = slSnapPrintf(&cd->alloc, "%s/old-%d.db", rdir, i);
    char ignored[SL_ERRMSG_MAX];
    if (old) slSnapUnlink(ignored, &cd->fs, old);
    slFree(&cd->alloc, old);
  }
  rsOpListFree(cd, ops, nops);
  return rc;
}

/* 1 and *index if name is "<index>.db" or "<index>.db-wal|-shm|-journal". */
static int rsInstanceFile(const char *name, int *index) {
  const char *dot = strstr(name, ".db");
  uint64_t v;
  if (!dot || dot == name || !slSnapParseU64(name, (size_t)(dot - name), 1u << 20, &v)) return 0;
  if (strcmp(dot, ".db") && strcmp(dot, ".db-wal") && strcmp(dot, ".db-shm") &&
      strcmp(dot, ".db-journal"))
    return 0;
  *index = (int)v;
  return 1;
}

/* Moves the new files of an operator into place. */
static int rsInstall(rsCtx *x, const slMfOp *op, int p1, const char *rdir) {
  static const char *const sfx[] = {"-wal", "-shm", "-journal"};
  sl_chkdir *cd = x->cd;
  char *opdir = slSnapPrintf(&cd->alloc, "%s/%s", x->state_dir, op->name);
  int rc = opdir ? SL_OK : slSnapCdErr(cd, SL_NOMEM, "out of memory");
  char ignored[SL_ERRMSG_MAX];
  slDir d;
  for (int j = 0; j < p1 && rc == SL_OK; j++) {
    char *src = slSnapPrintf(&cd->alloc, "%s/new-%d.db", rdir, j);
    char *dst = slSnapPrintf(&cd->alloc, "%s/%d.db", opdir, j);
    int fd = -1;
    if (!src || !dst) rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
    if (rc == SL_OK) rc = slSnapOpen(cd->errmsg, &cd->fs, src, SL_FS_READ, &fd);
    if (rc == SL_OK) rc = slSnapSync(cd->errmsg, &cd->fs, fd, src);
    slSnapClose(ignored, &cd->fs, fd, src);
    /* the old file's -wal must go first: it would be replayed into the new */
    for (int k = 0; k < 3 && rc == SL_OK; k++) {
      char *p = slSnapPrintf(&cd->alloc, "%s%s", dst, sfx[k]);
      rc = p ? slSnapUnlink(cd->errmsg, &cd->fs, p) : slSnapCdErr(cd, SL_NOMEM, "out of memory");
      slFree(&cd->alloc, p);
    }
    if (rc == SL_OK) rc = slSnapRename(cd->errmsg, &cd->fs, src, dst);
    slFree(&cd->alloc, src);
    slFree(&cd->alloc, dst);
  }
  if (rc == SL_OK) rc = slSnapDirOpen(cd->errmsg, &cd->fs, opdir, &d);
  if (rc == SL_OK) { /* files of instances beyond p1 */
    const char *name;
    int r = SL_DONE;
    while (rc == SL_OK && (r = slSnapDirNext(cd->errmsg, &d, &name)) == SL_ROW) {
      int idx = 0;
      char *p;
      if (!rsInstanceFile(name, &idx) || idx < p1) continue;
      p = slSnapPrintf(&cd->alloc, "%s/%s", opdir, name);
      rc = p ? slSnapUnlink(cd->errmsg, &cd->fs, p) : slSnapCdErr(cd, SL_NOMEM, "out of memory");
      slFree(&cd->alloc, p);
    }
    if (rc == SL_OK && r != SL_DONE) rc = r;
    slSnapDirClose(&d);
  }
  if (rc == SL_OK) rc = slSnapSyncDir(cd->errmsg, &cd->fs, opdir);
  if (rc == SL_OK) rc = slSnapRemoveTree(cd->errmsg, &cd->fs, &cd->alloc, rdir, NULL);
  slFree(&cd->alloc, opdir);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Restore                                                                   */
/* ------------------------------------------------------------------------ */

static int rsNewParallelism(const slMfOp *op, const sl_rescale *rs, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(rs[i].op, op->name) == 0) return rs[i].parallelism;
  return op->parallelism;
}

/* Restores from one checkpoint directory. kind/id/name: what it must be. */
static int rsTry(sl_chkdir *cd, const char *cdir, int kind, int64_t id, const char *name,
                 const char *state_dir, const sl_rescale *rs, int nrs, int64_t *restored) {
  slManifest m;
  rsCtx x;
  char *mf = slSnapPrintf(&cd->alloc, "%s/MANIFEST", cdir);
  char **rdirs = NULL;
  int rc, prepared = 0;
  if (!mf) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  rc = slSnapMfLoad(cd->errmsg, &cd->fs, &cd->alloc, mf, &m);
  slFree(&cd->alloc, mf);
  if (rc) return rc;
  if (m.kind != kind || (kind == SL_SAVEPOINT ? strcmp(m.name, name) != 0 : m.id != id))
    rc = slSnapCdErr(cd, SL_CORRUPT, "%s/MANIFEST describes another checkpoint (%s %lld)", cdir,
                     m.kind == SL_SAVEPOINT ? "savepoint" : "checkpoint", (long long)m.id);
  for (int i = 0; i < nrs && rc == SL_OK; i++) {
    int k;
    for (k = 0; k < m.nops && strcmp(m.ops[k].name, rs[i].op) != 0; k++) {}
    if (k == m.nops)
      rc = slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: operator '%s' is not in %s", rs[i].op,
                       cdir);
    else if (rs[i].parallelism > m.ops[k].maxp)
      rc = slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: parallelism %d of operator '%s' is above "
                       "its max parallelism %d", rs[i].parallelism, rs[i].op, m.ops[k].maxp);
  }
  if (rc == SL_OK) rc = slSnapVerifyFiles(cd, cdir, &m);
  if (rc == SL_OK) {
    rdirs = slMalloc(&cd->alloc, sizeof *rdirs * (size_t)m.nops);
    if (!rdirs) rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
    else memset(rdirs, 0, sizeof *rdirs * (size_t)m.nops);
  }
  x.cd = cd;
  x.m = &m;
  x.cdir = cdir;
  x.state_dir = state_dir;
  for (int k = 0; k < m.nops && rc == SL_OK; k++) {
    const slMfOp *op = &m.ops[k];
    int p1 = rsNewParallelism(op, rs, nrs);
    rdirs[k] = rsRestoreDir(&x, op);
    prepared = k + 1;
    if (!rdirs[k]) rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
    else if (p1 == op->parallelism) rc = rsPrepareSame(&x, op, rdirs[k]);
    else rc = rsPrepareRescale(&x, op, p1, rdirs[k]);
  }
  for (int k = 0; k < m.nops && rc == SL_OK; k++)
    rc = rsInstall(&x, &m.ops[k], rsNewParallelism(&m.ops[k], rs, nrs), rdirs[k]);
  if (rc != SL_OK) {
    char ignored[SL_ERRMSG_MAX];
    for (int k = 0; k < prepared; k++)
      if (rdirs[k]) slSnapRemoveTree(ignored, &cd->fs, &cd->alloc, rdirs[k], NULL);
  } else if (restored) {
    *restored = m.id;
  }
  for (int k = 0; rdirs && k < m.nops; k++) slFree(&cd->alloc, rdirs[k]);
  slFree(&cd->alloc, rdirs);
  slSnapMfFree(&cd->alloc, &m);
  return rc;
}

int sl_chkdir_restore(sl_chkdir *cd, int64_t id, const char *savepoint, const char *state_dir,
                      const sl_rescale *rescale, int n_rescale, int64_t *restored) {
  char summary[SL_ERRMSG_MAX];
  int rc, tried = 0;
  size_t used = 0;
  if (!cd || cd->hdr.magic != SL_MAGIC_CHKDIR) return SL_MISUSE;
  if (restored) *restored = 0;
  if (!cd->dir) return slSnapCdErr(cd, SL_MISUSE, "the checkpoint directory was not opened");
  cd->errmsg[0] = 0;
  if (cd->cfg.flags & SL_CHKDIR_READONLY)
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: the checkpoint directory %s was opened "
                       "read-only", cd->dir);
  if (!state_dir || !state_dir[0])
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: the state directory is NULL or empty");
  if (savepoint && !slSnapIsName(savepoint))
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: bad savepoint name '%s'", savepoint);
  if (id < 0) return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: id %lld < 0", (long long)id);
  if (n_rescale < 0 || (n_rescale > 0 && !rescale))
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: bad rescale list");
  if (cd->cfg.vfs && !sqlite3_vfs_find(cd->cfg.vfs))
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: no SQLite VFS named '%s' is registered",
                       cd->cfg.vfs);
  for (int i = 0; i < n_rescale; i++) {
    if (!slSnapIsName(rescale[i].op) || rescale[i].parallelism < 1 ||
        rescale[i].parallelism > SL_MAX_MAX_PARALLELISM)
      return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: rescale entry %d has a bad operator "
                         "name or parallelism", i);
    for (int k = 0; k < i; k++)
      if (strcmp(rescale[k].op, rescale[i].op) == 0)
        return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_restore: operator '%s' is rescaled twice",
                           rescale[i].op);
  }
  if (savepoint || id > 0) {
    char *dir = slSnapEntryDir(cd, id, savepoint);
    char *mf = dir ? slSnapPrintf(&cd->alloc, "%s/MANIFEST", dir) : NULL;
    int have = 0;
    if (!mf) rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
    else rc = slSnapExists(cd->errmsg, &cd->fs, mf, &have);
    if (rc == SL_OK && !have)
      rc = slSnapCdErr(cd, SL_NOTFOUND, "there is no %s %s (no %s)",
                       savepoint ? "savepoint" : "checkpoint", dir, mf);
    else if (rc == SL_OK)
      rc = rsTry(cd, dir, savepoint ? SL_SAVEPOINT : SL_CHECKPOINT, id, savepoint, state_dir,
                 rescale, n_rescale, restored);
    slFree(&cd->alloc, dir);
    slFree(&cd->alloc, mf);
    return rc;
  }
  {
    const sl_chk_entry *list = NULL;
    int n = 0;
    summary[0] = 0;
    rc = sl_chkdir_list(cd, &list, &n);
    if (rc) return rc;
    for (int i = n - 1; i >= 0; i--) {
      const sl_chk_entry *e = &list[i];
      if (e->kind != SL_CHECKPOINT) continue;
      if (!e->complete) {
        slSnapReport(cd, SL_CORRUPT, "%s has no MANIFEST: an unfinished checkpoint, skipped",
                     e->path);
        continue;
      }
      tried++;
      rc = rsTry(cd, e->path, SL_CHECKPOINT, e->id, NULL, state_dir, rescale, n_rescale, restored);
      if (rc == SL_OK) {
        if (tried > 1)
          slSnapReport(cd, SL_OK, "restored checkpoint %lld from %s after %d newer one(s) did not "
                       "verify", (long long)e->id, e->path, tried - 1);
        return SL_OK;
      }
      if (rc != SL_CORRUPT && rc != SL_MISMATCH) return rc;
      slSnapReport(cd, rc, "checkpoint %lld does not verify, trying the previous one: %s",
                   (long long)e->id, cd->errmsg);
      if (used < sizeof summary - 1) {
        int k = snprintf(summary + used, sizeof summary - used, "%schk-%lld: %s", used ? "; " : "",
                         (long long)e->id, cd->errmsg);
        if (k > 0) used += (size_t)k;
        if (used > sizeof summary - 1) used = sizeof summary - 1;
      }
    }
  }
  if (!tried) return slSnapCdErr(cd, SL_NOTFOUND, "there is no checkpoint in %s", cd->dir);
  return slSnapCdErr(cd, SL_CORRUPT, "no checkpoint in %s verifies: %s", cd->dir, summary);
}
