/*
** base.c — version, result-code names, error messages, the default allocator,
** identifiers and value type names.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include "base/base.h"

int sl_libversion_number(void) { return SL_VERSION_NUMBER; }
const char *sl_libversion(void) { return SL_VERSION; }

const char *sl_errstr(int rc) {
  switch (rc) {
    case SL_OK: return "SL_OK: not an error";
    case SL_ERROR: return "SL_ERROR: operation failed";
    case SL_NOTFOUND: return "SL_NOTFOUND: not found";
    case SL_MISUSE: return "SL_MISUSE: misuse of the interface";
    case SL_NOMEM: return "SL_NOMEM: out of memory";
    case SL_CORRUPT: return "SL_CORRUPT: file is damaged or not a statelite file";
    case SL_FULL: return "SL_FULL: disk or budget full";
    case SL_MISMATCH: return "SL_MISMATCH: file or descriptor does not match";
    case SL_IOERR: return "SL_IOERR: input/output error";
    case SL_BUSY: return "SL_BUSY: file is locked";
    case SL_ROW: return "SL_ROW: a row is ready";
    case SL_DONE: return "SL_DONE: no more rows";
    default: return "unknown result code";
  }
}

const char *sl_errmsg(const void *handle) {
  const slHandle *h = handle;
  if (!h) return "no handle (NULL), or it could not be allocated";
  if (h->magic != SL_MAGIC_STORE && h->magic != SL_MAGIC_STATE && h->magic != SL_MAGIC_ITER &&
      h->magic != SL_MAGIC_JOB && h->magic != SL_MAGIC_SNAPSHOT && h->magic != SL_MAGIC_CHKDIR)
    return "not a live statelite handle";
  return h->errmsg[0] ? h->errmsg : "not an error";
}

static void *slDefMalloc(void *ud, size_t n) { (void)ud; return malloc(n ? n : 1); }
static void *slDefRealloc(void *ud, void *p, size_t n) { (void)ud; return realloc(p, n ? n : 1); }
static void slDefFree(void *ud, void *p) { (void)ud; free(p); }
static const sl_allocator slDefaultAllocator = {slDefMalloc, slDefRealloc, slDefFree, NULL};

const sl_allocator *slAllocDefault(void) { return &slDefaultAllocator; }
void *slMalloc(const sl_allocator *a, size_t n) { return a->xMalloc(a->ud, n); }
void *slRealloc(const sl_allocator *a, void *p, size_t n) { return a->xRealloc(a->ud, p, n); }
void slFree(const sl_allocator *a, void *p) { if (p) a->xFree(a->ud, p); }

char *slStrdup(const sl_allocator *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = slMalloc(a, n);
  if (p) memcpy(p, s, n);
  return p;
}

int slErrorV(char *buf, int rc, const char *fmt, va_list ap) {
  vsnprintf(buf, SL_ERRMSG_MAX, fmt, ap);
  return rc;
}

int slError(char *buf, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  slErrorV(buf, rc, fmt, ap);
  va_end(ap);
  return rc;
}

const char *slTypeName(int type) {
  switch (type) {
    case SL_INTEGER: return "INTEGER";
    case SL_REAL: return "REAL";
    case SL_TEXT: return "TEXT";
    case SL_BLOB: return "BLOB";
    case SL_NULL: return "NULL";
    default: return "an unknown type";
  }
}

int slTypeParse(const char *s, size_t n) {
  static const int types[] = {SL_INTEGER, SL_REAL, SL_TEXT, SL_BLOB};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    const char *name = slTypeName(types[i]);
    if (strlen(name) == n && memcmp(name, s, n) == 0) return types[i];
  }
  return 0;
}

int slIsIdent(const char *s) {
  size_t i;
  if (!s) return 0;
  for (i = 0; s[i]; i++) {
    char c = s[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    int digit = c >= '0' && c <= '9';
    if (!(alpha || (digit && i > 0))) return 0;
    if (i >= 64) return 0;
  }
  return i > 0;
}

int64_t slNowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Test hook: see base.h. Not on any per-record path. */
void slKillPoint(const char *name) {
  const char *p = getenv("SL_KILL_POINT");
  size_t n = strlen(name);
  while (p && *p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *colon = memchr(p, ':', len);
    size_t nlen = colon ? (size_t)(colon - p) : len;
    if (nlen == n && memcmp(p, name, n) == 0) {
      long pct = colon ? strtol(colon + 1, NULL, 10) : 100;
      struct timespec ts;
      uint64_t v;
      uint32_t x;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
      x = slMurmur3(&v, sizeof v, 0x6b696c6cu); /* spread the clock's low bits */
      if (pct >= 100 || (pct > 0 && (long)(x % 100u) < pct)) kill(getpid(), SIGKILL);
      return;
    }
    p = end ? end + 1 : NULL;
  }
}
