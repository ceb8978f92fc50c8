/*
** store_util.h — functions shared by the store tests: opening stores under the
** test's directory, reading state files through a plain SQLite connection and
** rendering rows and typed values as text, so that tests compare what is
** really in the file and what the API hands out.
**
** Everything here is static inline, so a test file uses what it needs
** without warnings about the rest. Text returned by su_* functions is
** malloc'd by the C library and freed by the caller with free().
*/
#ifndef SL_STORE_UTIL_H
#define SL_STORE_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "statelite.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Growable text                                                             */
/* ------------------------------------------------------------------------ */

typedef struct su_buf {
  char *p;
  size_t n, cap;
} su_buf;

#if defined(__GNUC__)
static inline void su_addf(su_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#endif
static inline void su_addf(su_buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    size_t room = b->cap - b->n;
    int k;
    va_start(ap, fmt);
    k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? room : 0, fmt, ap);
    va_end(ap);
    ASSERT(k >= 0);
    if (b->p && (size_t)k < room) {
      b->n += (size_t)k;
      return;
    }
    {
      size_t want = b->n + (size_t)k + 1;
      size_t cap = b->cap ? b->cap : 256;
      char *q;
      while (cap < want) cap *= 2;
      q = (char *)realloc(b->p, cap);
      ASSERT(q != NULL);
      if (!b->p) q[0] = 0;
      b->p = q;
      b->cap = cap;
    }
  }
}

/* Takes the text out of b (never NULL). */
static inline char *su_take(su_buf *b) {
  char *p;
  if (!b->p) su_addf(b, "%s", "");
  p = b->p;
  b->p = NULL;
  b->n = b->cap = 0;
  return p;
}

static inline char *su_strdup(const char *s) {
  su_buf b = {0, 0, 0};
  su_addf(&b, "%s", s);
  return su_take(&b);
}

static inline int su_contains(const char *hay, const char *needle) {
  return hay && needle && strstr(hay, needle) != NULL;
}

/* The message of handle h must contain needle. */
#define ASSERT_ERRMSG_HAS(h, needle) do { const char *m_ = sl_errmsg(h); \
    ASSERT_MSG(su_contains(m_, (needle)), "message \"%s\" does not contain \"%s\"", \
               m_ ? m_ : "(null)", (needle)); } while (0)

#define ASSERT_HAS(hay, needle) do { const char *h_ = (hay); \
    ASSERT_MSG(su_contains(h_, (needle)), "\"%s\" does not contain \"%s\"", \
               h_ ? h_ : "(null)", (needle)); } while (0)

#define ASSERT_TEXT(got, want) do { char *g_ = (got); const char *w_ = (want); \
    if (strcmp(g_, w_)) test_fail(__FILE__, __LINE__, "%s:\n--- got ---\n%s\n--- want ---\n%s", \
                                  #got, g_, w_); free(g_); } while (0)

/* ------------------------------------------------------------------------ */
/* Paths and files                                                           */
/* ------------------------------------------------------------------------ */

/* Formats a path into out; a path that does not fit fails the test. */
#if defined(__GNUC__)
static inline char *su_pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#endif
static inline char *su_pathf(char *out, size_t cap, const char *fmt, ...) {
  va_list ap;
  int k;
  va_start(ap, fmt);
  k = vsnprintf(out, cap, fmt, ap);
  va_end(ap);
  ASSERT_MSG(k >= 0 && (size_t)k < cap, "path too long: %s", out);
  return out;
}

/* The state directory every test uses: <test dir>/state. */
static inline const char *su_dir(void) {
  static char buf[4096];
  return su_pathf(buf, sizeof buf, "%s/state", test_dir());
}

/* out = <state dir>/<op>/<subtask>.db */
static inline char *su_db_path(char *out, size_t cap, const char *dir,
                               const char *op, int subtask) {
  return su_pathf(out, cap, "%s/%s/%d.db", dir, op, subtask);
}

static inline int su_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static inline void su_write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  ASSERT_MSG(f != NULL, "cannot create %s: %s", path, strerror(errno));
  ASSERT(fwrite(p, 1, n, f) == n);
  ASSERT(fclose(f) == 0);
}

/* Reads a whole file; *n gets its size. NULL if it cannot be read. */
static inline char *su_read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  su_buf b = {0, 0, 0};
  char chunk[8192];
  size_t k;
  if (!f) return NULL;
  su_addf(&b, "%s", "");
  while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.n + k + 1 > b.cap) {
      size_t cap = b.cap;
      char *q;
      while (cap < b.n + k + 1) cap *= 2;
      q = (char *)realloc(b.p, cap);
      ASSERT(q != NULL);
      b.p = q;
      b.cap = cap;
    }
    memcpy(b.p + b.n, chunk, k);
    b.n += k;
    b.p[b.n] = 0;
  }
  fclose(f);
  *n = b.n;
  return su_take(&b);
}

static inline void su_copy_file(const char *src, const char *dst) {
  size_t n = 0;
  char *p = su_read_file(src, &n);
  ASSERT_MSG(p != NULL, "cannot read %s", src);
  su_write_file(dst, p, n);
  free(p);
}

/* ------------------------------------------------------------------------ */
/* Stores                                                                    */
/* ------------------------------------------------------------------------ */

static inline sl_store *su_open(const char *op, int subtask, int parallelism,
                                const sl_config *cfg) {
  sl_store *st = NULL;
  int rc = sl_store_open(su_dir(), op, subtask, parallelism, cfg, &st);
  ASSERT_MSG(rc == SL_OK, "sl_store_open(%s, %d, %d): %s (%s)", op, subtask,
             parallelism, sl_errstr(rc), st ? sl_errmsg(st) : "no handle");
  ASSERT(st != NULL);
  return st;
}

static inline sl_state *su_reg(sl_store *st, const sl_state_desc *d) {
  sl_state *s = NULL;
  int rc = sl_state_register(st, d, &s);
  ASSERT_MSG(rc == SL_OK, "sl_state_register(%s): %s (%s)", d->name,
             sl_errstr(rc), sl_errmsg(st));
  ASSERT(s != NULL);
  return s;
}

static inline void su_commit(sl_store *st) {
  ASSERT_OK(sl_store_commit(st), st);
}

static inline void su_close(sl_store *st) {
  ASSERT_OK(sl_store_close(st), NULL);
}

static inline int su_key_int(sl_store *st, int64_t i) {
  sl_value k = sl_int(i);
  int kg = -1;
  ASSERT_OK(sl_store_set_key(st, &k, 1, &kg), st);
  return kg;
}

static inline int su_key_text(sl_store *st, const char *s) {
  sl_value k = sl_text(s);
  int kg = -1;
  ASSERT_OK(sl_store_set_key(st, &k, 1, &kg), st);
  return kg;
}

/* A column with a NULL default. */
static inline sl_column su_col(const char *name, int type) {
  sl_column c;
  memset(&c, 0, sizeof c);
  c.name = name;
  c.type = type;
  return c;
}

static inline sl_column su_col_dflt(const char *name, int type, sl_value dflt) {
  sl_column c = su_col(name, type);
  c.dflt = dflt;
  return c;
}

/* ------------------------------------------------------------------------ */
/* Typed values as text                                                      */
/* ------------------------------------------------------------------------ */

static inline void su_add_value(su_buf *b, const sl_value *v) {
  size_t i;
  switch (v->type) {
  case SL_INTEGER: su_addf(b, "%lld", (long long)v->v.i); break;
  case SL_REAL: su_addf(b, "r%.17g", v->v.r); break;
  case SL_TEXT:
    su_addf(b, "'");
    for (i = 0; i < v->n; i++) su_addf(b, "%c", ((const char *)v->v.p)[i]);
    su_addf(b, "'");
    break;
  case SL_BLOB:
    su_addf(b, "x'");
    for (i = 0; i < v->n; i++) su_addf(b, "%02x", ((const unsigned char *)v->v.p)[i]);
    su_addf(b, "'");
    break;
  case SL_NULL: su_addf(b, "NULL"); break;
  default: su_addf(b, "?type%d", v->type); break;
  }
}

static inline void su_add_values(su_buf *b, const sl_value *v, int n) {
  int i;
  for (i = 0; i < n; i++) {
    if (i) su_addf(b, ",");
    su_add_value(b, &v[i]);
  }
}

/* n values rendered as "1,'a',r1.5,NULL". */
static inline char *su_values_str(const sl_value *v, int n) {
  su_buf b = {0, 0, 0};
  su_add_values(&b, v, n);
  return su_take(&b);
}

/* Values handed out by statelite: TEXT/BLOB point at n bytes followed by NUL. */
static inline void su_check_out_values(const sl_value *v, int n) {
  int i;
  for (i = 0; i < n; i++) {
    if (v[i].type == SL_TEXT || v[i].type == SL_BLOB) {
      ASSERT_MSG(v[i].v.p != NULL, "column %d: TEXT/BLOB with a NULL pointer", i);
      ASSERT_MSG(((const char *)v[i].v.p)[v[i].n] == 0,
                 "column %d: no NUL byte after the value", i);
    }
  }
}

/* The current key's value of a value-like state as text, or "-" if none. */
static inline char *su_value_str(sl_state *s, int n_value) {
  const sl_value *out = NULL;
  int rc = sl_value_get(s, &out);
  if (rc == SL_NOTFOUND) {
    ASSERT(out == NULL);
    return su_take(&(su_buf){0, 0, 0});
  }
  ASSERT_OK(rc, s);
  ASSERT(out != NULL);
  su_check_out_values(out, n_value);
  return su_values_str(out, n_value);
}

/* The current key's list as "row;row;" text ("" when empty). */
static inline char *su_list_str(sl_state *s, int n_value) {
  const sl_value *rows = NULL;
  size_t n = 99, i;
  su_buf b = {0, 0, 0};
  int rc = sl_list_get(s, &rows, &n);
  if (rc == SL_NOTFOUND) {
    ASSERT_EQ(n, 0);
    return su_take(&b);
  }
  ASSERT_OK(rc, s);
  ASSERT(n > 0);
  for (i = 0; i < n; i++) {
    su_check_out_values(rows + i * (size_t)n_value, n_value);
    su_add_values(&b, rows + i * (size_t)n_value, n_value);
    su_addf(&b, ";");
  }
  return su_take(&b);
}

/* A map (current key, or broadcast) through sl_map_iter, "mk=v;" per entry. */
static inline char *su_map_str(sl_state *s) {
  sl_iter *it = NULL;
  su_buf b = {0, 0, 0};
  int rc;
  ASSERT_OK(sl_map_iter(s, &it), s);
  while ((rc = sl_iter_next(it)) == SL_ROW) {
    const sl_value *mk = NULL, *v = NULL;
    int nmk = -1, nv = -1;
    ASSERT_OK(sl_iter_map_key(it, &mk, &nmk), it);
    ASSERT_OK(sl_iter_value(it, &v, &nv), it);
    ASSERT(nmk > 0 && nv > 0);
    su_check_out_values(mk, nmk);
    su_check_out_values(v, nv);
    su_add_values(&b, mk, nmk);
    su_addf(&b, "=");
    su_add_values(&b, v, nv);
    su_addf(&b, ";");
  }
  ASSERT_RC(rc, SL_DONE, it);
  sl_iter_close(it);
  return su_take(&b);
}

/* Every row of a keyed state through sl_state_scan(), one line each:
** "kg|key cols|map-key cols|value cols" (map-key part only if with_map_key). */
static inline char *su_scan_str(sl_state *s, int with_map_key) {
  sl_iter *it = NULL;
  su_buf b = {0, 0, 0};
  int rc;
  ASSERT_OK(sl_state_scan(s, &it), s);
  while ((rc = sl_iter_next(it)) == SL_ROW) {
    const sl_value *k = NULL, *mk = NULL, *v = NULL;
    int nk = -1, nmk = -1, nv = -1, kg = -1;
    ASSERT_OK(sl_iter_key(it, &k, &nk, &kg), it);
    ASSERT_OK(sl_iter_value(it, &v, &nv), it);
    ASSERT(nk > 0 && nv > 0 && kg >= 0);
    su_addf(&b, "%d|", kg);
    su_add_values(&b, k, nk);
    if (with_map_key) {
      ASSERT_OK(sl_iter_map_key(it, &mk, &nmk), it);
      ASSERT(nmk > 0);
      su_addf(&b, "|");
      su_add_values(&b, mk, nmk);
    }
    su_addf(&b, "|");
    su_add_values(&b, v, nv);
    su_addf(&b, "\n");
  }
  ASSERT_RC(rc, SL_DONE, it);
  sl_iter_close(it);
  return su_take(&b);
}

/* ------------------------------------------------------------------------ */
/* The file through a plain SQLite connection                                */
/* ------------------------------------------------------------------------ */

static inline sqlite3 *su_db_open(const char *path) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
  ASSERT_MSG(rc == SQLITE_OK, "sqlite3_open_v2(%s): %s", path,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  sqlite3_busy_timeout(db, 2000);
  return db;
}

static inline void su_add_column(su_buf *b, sqlite3_stmt *q, int i) {
  int j, n;
  const unsigned char *p;
  switch (sqlite3_column_type(q, i)) {
  case SQLITE_INTEGER: su_addf(b, "%lld", (long long)sqlite3_column_int64(q, i)); break;
  case SQLITE_FLOAT: su_addf(b, "%.17g", sqlite3_column_double(q, i)); break;
  case SQLITE_TEXT: su_addf(b, "%s", (const char *)sqlite3_column_text(q, i)); break;
  case SQLITE_BLOB:
    p = (const unsigned char *)sqlite3_column_blob(q, i);
    n = sqlite3_column_bytes(q, i);
    su_addf(b, "x'");
    for (j = 0; j < n; j++) su_addf(b, "%02x", p[j]);
    su_addf(b, "'");
    break;
  default: su_addf(b, "NULL"); break;
  }
}

/* Rows of a query on an open connection: columns joined by '|', one line
** per row. */
static inline char *su_db_rows(sqlite3 *db, const char *sql) {
  sqlite3_stmt *q = NULL;
  su_buf b = {0, 0, 0};
  int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
  ASSERT_MSG(rc == SQLITE_OK, "prepare \"%s\": %s", sql, sqlite3_errmsg(db));
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    int i, n = sqlite3_column_count(q);
    for (i = 0; i < n; i++) {
      if (i) su_addf(&b, "|");
      su_add_column(&b, q, i);
    }
    su_addf(&b, "\n");
  }
  ASSERT_MSG(rc == SQLITE_DONE, "step \"%s\": %s", sql, sqlite3_errmsg(db));
  sqlite3_finalize(q);
  return su_take(&b);
}

/* Rows of a query on the file at path (opened and closed here). */
static inline char *su_sql(const char *path, const char *sql) {
  sqlite3 *db = su_db_open(path);
  char *r = su_db_rows(db, sql);
  sqlite3_close(db);
  return r;
}

/* The first column of the first row as an integer; the row must exist. */
static inline int64_t su_sql_int(const char *path, const char *sql) {
  sqlite3 *db = su_db_open(path);
  sqlite3_stmt *q = NULL;
  int64_t v;
  int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
  ASSERT_MSG(rc == SQLITE_OK, "prepare \"%s\": %s", sql, sqlite3_errmsg(db));
  rc = sqlite3_step(q);
  ASSERT_MSG(rc == SQLITE_ROW, "\"%s\" gave no row: %s", sql, sqlite3_errmsg(db));
  v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return v;
}

/* Number of rows of table `name` in the file. */
static inline int64_t su_count(const char *path, const char *table) {
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", table);
  return su_sql_int(path, sql);
}

/* Column names of a table, comma separated, in declaration order. */
static inline char *su_columns(const char *path, const char *table) {
  char sql[512];
  su_buf b = {0, 0, 0};
  sqlite3 *db = su_db_open(path);
  sqlite3_stmt *q = NULL;
  snprintf(sql, sizeof sql, "PRAGMA table_info(\"%s\")", table);
  ASSERT(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK);
  while (sqlite3_step(q) == SQLITE_ROW) {
    su_addf(&b, "%s%s", b.n ? "," : "", (const char *)sqlite3_column_text(q, 1));
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return su_take(&b);
}

/* The tables of the file selected by an SQL condition on sqlite_master
** (NULL: every table): each one's name, CREATE statement and all its rows
** ordered by every column, as one text. Two files with equal dumps hold the
** same rows. */
static inline char *su_dump_db(sqlite3 *db, const char *where) {
  sqlite3_stmt *q = NULL;
  su_buf b = {0, 0, 0};
  char sel[1024];
  int rc;
  snprintf(sel, sizeof sel,
           "SELECT name, sql FROM sqlite_master WHERE type='table' AND (%s) "
           "ORDER BY name", where ? where : "1");
  rc = sqlite3_prepare_v2(db, sel, -1, &q, NULL);
  ASSERT_MSG(rc == SQLITE_OK, "%s", sqlite3_errmsg(db));
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(q, 0);
    char sql[1024];
    sqlite3_stmt *c = NULL;
    int ncol = 0, i;
    su_buf order = {0, 0, 0};
    char *rows, *ord;
    su_addf(&b, "== %s\n%s\n", name, (const char *)sqlite3_column_text(q, 1));
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", name);
    ASSERT(sqlite3_prepare_v2(db, sql, -1, &c, NULL) == SQLITE_OK);
    ncol = sqlite3_column_count(c);
    sqlite3_finalize(c);
    for (i = 1; i <= ncol; i++) su_addf(&order, "%s%d", i > 1 ? "," : "", i);
    ord = su_take(&order);
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY %s", name, ord);
    free(ord);
    rows = su_db_rows(db, sql);
    su_addf(&b, "%s", rows);
    free(rows);
  }
  ASSERT_MSG(rc == SQLITE_DONE, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(q);
  return su_take(&b);
}

/* Every table of the file at path. */
static inline char *su_dump(const char *path) {
  sqlite3 *db = su_db_open(path);
  char *r = su_dump_db(db, NULL);
  sqlite3_close(db);
  return r;
}

/* Every table of the file at path except sl_meta (which records the
** operator's name and the creation time). */
static inline char *su_dump_no_meta(const char *path) {
  sqlite3 *db = su_db_open(path);
  char *r = su_dump_db(db, "name <> 'sl_meta'");
  sqlite3_close(db);
  return r;
}

/* The user states' tables (names not starting with sl_) and the sl_states
** registry of the file at path. */
static inline char *su_dump_states(const char *path) {
  sqlite3 *db = su_db_open(path);
  char *r = su_dump_db(db, "substr(name,1,3) <> 'sl_' OR name = 'sl_states'");
  sqlite3_close(db);
  return r;
}

/* ------------------------------------------------------------------------ */
/* A small deterministic PRNG (xorshift64*)                                  */
/* ------------------------------------------------------------------------ */

typedef struct su_rng {
  uint64_t s;
} su_rng;

static inline uint64_t su_rand(su_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ULL;
}

static inline uint32_t su_rand_below(su_rng *r, uint32_t n) {
  return (uint32_t)((su_rand(r) >> 11) % n);
}

#endif /* SL_STORE_UTIL_H */
