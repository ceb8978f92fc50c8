/*
** manifest.c — the MANIFEST of a checkpoint or savepoint: rendering it as
** text and parsing it back strictly (it is untrusted input). The format is
** line-based and ends with the CRC-32C of everything before its last line;
** docs/FORMAT.md describes it.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"

#define MF_LINE_MAX 1024
#define MF_MAX_TOKENS 6

void slSnapMfFree(const sl_allocator *a, slManifest *m) {
  if (!m) return;
  for (int i = 0; i < m->nops; i++) slFree(a, m->ops[i].files);
  slFree(a, m->ops);
  m->ops = NULL;
  m->nops = 0;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct mfBuf {
  const sl_allocator *a;
  char *p;
  size_t n, cap;
  int oom;
} mfBuf;

#if defined(__GNUC__)
static void mfAdd(mfBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
static void mfAdd(mfBuf *b, const char *fmt, ...) {
  char line[MF_LINE_MAX + 64];
  va_list ap;
  int k;
  if (b->oom) return;
  va_start(ap, fmt);
  k = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= sizeof line) {
    b->oom = 1;
    return;
  }
  if (b->n + (size_t)k + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    char *p;
    while (cap < b->n + (size_t)k + 1) cap *= 2;
    p = slRealloc(b->a, b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, line, (size_t)k + 1);
  b->n += (size_t)k;
}

int slSnapMfFormat(char *err, const sl_allocator *a, const slManifest *m, char **out, size_t *n) {
  mfBuf b = {a, NULL, 0, 0, 0};
  *out = NULL;
  *n = 0;
  mfAdd(&b, "statelite-manifest %d\n", SL_MANIFEST_VERSION);
  mfAdd(&b, "id %lld\n", (long long)m->id);
  mfAdd(&b, "kind %s\n", m->kind == SL_SAVEPOINT ? "savepoint" : "checkpoint");
  mfAdd(&b, "name %s\n", m->kind == SL_SAVEPOINT ? m->name : "-");
  mfAdd(&b, "time_ms %lld\n", (long long)m->time_ms);
  mfAdd(&b, "format %d\n", m->format);
  for (int i = 0; i < m->nops; i++) {
    const slMfOp *op = &m->ops[i];
    mfAdd(&b, "operator %s %d %d\n", op->name, op->parallelism, op->maxp);
    for (int j = 0; j < op->parallelism; j++)
      mfAdd(&b, "file %s/%d.db.zst %llu %llu %08x\n", op->name, j,
            (unsigned long long)op->files[j].size, (unsigned long long)op->files[j].raw,
            (unsigned)op->files[j].crc);
  }
  if (!b.oom) mfAdd(&b, "checksum %08x\n", (unsigned)slSnapCrc(0, b.p, b.n));
  if (b.oom) {
    slFree(a, b.p);
    return slError(err, SL_NOMEM, "out of memory");
  }
  *out = b.p;
  *n = b.n;
  return SL_OK;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct mfCur {
  const char *p;
  size_t n, pos;
  int line;
  char *err;
  const char *tok[MF_MAX_TOKENS];
  size_t len[MF_MAX_TOKENS];
  int ntok;
} mfCur;

static int mfBad(mfCur *c, const char *why) {
  return slError(c->err, SL_CORRUPT, "MANIFEST line %d: %s", c->line, why);
}

/* Splits the next line into tokens separated by single spaces. */
static int mfNext(mfCur *c) {
  size_t start = c->pos, i;
  c->line++;
  c->ntok = 0;
  if (start >= c->n) return mfBad(c, "the MANIFEST ends early");
  for (i = start; i < c->n && c->p[i] != '\n'; i++) {
    unsigned char ch = (unsigned char)c->p[i];
    if (ch < 0x20 || ch > 0x7e) return mfBad(c, "a character that is not printable ASCII");
    if (i - start >= MF_LINE_MAX) return mfBad(c, "the line is too long");
  }
  if (i >= c->n) return mfBad(c, "the last line does not end with a newline");
  c->pos = i + 1;
  if (i == start) return mfBad(c, "an empty line");
  for (size_t t = start; t <= i; t++) {
    size_t s = t;
    while (t < i && c->p[t] != ' ') t++;
    if (t == s) return mfBad(c, "two spaces in a row, or a space at the start or end");
    if (c->ntok == MF_MAX_TOKENS) return mfBad(c, "too many fields");
    c->tok[c->ntok] = c->p + s;
    c->len[c->ntok] = t - s;
    c->ntok++;
  }
  return SL_OK;
}

static int mfIs(const mfCur *c, int i, const char *s) {
  size_t n = strlen(s);
  return i < c->ntok && c->len[i] == n && memcmp(c->tok[i], s, n) == 0;
}

/* Expects "key value" with a number value in [lo, hi]. */
static int mfNumLine(mfCur *c, const char *key, uint64_t lo, uint64_t hi, uint64_t *out) {
  char why[128];
  int rc = mfNext(c);
  if (rc) return rc;
  snprintf(why, sizeof why, "expected '%s <number %llu..%llu>'", key, (unsigned long long)lo,
           (unsigned long long)hi);
  if (c->ntok != 2 || !mfIs(c, 0, key) || !slSnapParseU64(c->tok[1], c->len[1], hi, out) ||
      *out < lo)
    return mfBad(c, why);
  return SL_OK;
}

static int mfHex32(const char *s, size_t n, uint32_t *out) {
  uint32_t v = 0;
  if (n != 8) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    unsigned d;
    if (ch >= '0' && ch <= '9') d = (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') d = (unsigned)(ch - 'a' + 10);
    else return 0;
    v = (v << 4) | d;
  }
  *out = v;
  return 1;
}

/* Copies token i as a name into out (129 bytes): 1 if it is a valid name. */
static int mfName(const mfCur *c, int i, char *out) {
  if (c->len[i] > 128) return 0;
  memcpy(out, c->tok[i], c->len[i]);
  out[c->len[i]] = 0;
  return slSnapIsName(out);
}

static int mfParseOps(mfCur *c, const sl_allocator *a, slManifest *m, size_t body_end) {
  int cap = 0, rc = SL_OK;
  while (c->pos < body_end) {
    slMfOp *op;
    uint64_t p, maxp;
    rc = mfNext(c);
    if (rc) return rc;
    if (c->ntok != 4 || !mfIs(c, 0, "operator"))
      return mfBad(c, "expected 'operator <name> <parallelism> <max parallelism>'");
    if (m->nops == cap) {
      int ncap = cap ? cap * 2 : 8;
      slMfOp *n;
      if (ncap > 100000) return mfBad(c, "too many operators");
      n = slRealloc(a, m->ops, sizeof *n * (size_t)ncap);
      if (!n) return slError(c->err, SL_NOMEM, "out of memory");
      m->ops = n;
      cap = ncap;
    }
    op = &m->ops[m->nops];
    memset(op, 0, sizeof *op);
    if (!mfName(c, 1, op->name)) return mfBad(c, "the operator name is not 1..128 characters of "
                                              "[A-Za-z0-9_.-] not starting with '.'");
    if (m->nops > 0 && strcmp(m->ops[m->nops - 1].name, op->name) >= 0)
      return mfBad(c, "operators are not in strictly ascending order of name");
    if (!slSnapParseU64(c->tok[3], c->len[3], SL_MAX_MAX_PARALLELISM, &maxp) || maxp < 1 ||
        !slSnapParseU64(c->tok[2], c->len[2], maxp, &p) || p < 1)
      return mfBad(c, "parallelism and max parallelism must satisfy 1 <= p <= max <= 32768");
    op->parallelism = (int)p;
    op->maxp = (int)maxp;
    op->files = slMalloc(a, sizeof *op->files * (size_t)p);
    if (!op->files) return slError(c->err, SL_NOMEM, "out of memory");
    m->nops++;
    for (int j = 0; j < op->parallelism; j++) {
      char want[160];
      slMfFile *f = &op->files[j];
      uint64_t v;
      rc = mfNext(c);
      if (rc) return rc;
      snprintf(want, sizeof want, "%s/%d.db.zst", op->name, j);
      if (c->ntok != 5 || !mfIs(c, 0, "file"))
        return mfBad(c, "expected 'file <path> <size> <raw size> <crc32c>'");
      if (!mfIs(c, 1, want)) {
        char why[256];
        snprintf(why, sizeof why, "expected the file %s here", want);
        return mfBad(c, why);
      }
      if (!slSnapParseU64(c->tok[2], c->len[2], (uint64_t)INT64_MAX, &f->size) || f->size < 1)
        return mfBad(c, "the file size is not a number >= 1");
      if (!slSnapParseU64(c->tok[3], c->len[3], (uint64_t)INT64_MAX, &v) || v < 512)
        return mfBad(c, "the raw size is not a number >= 512");
      f->raw = v;
      if (!mfHex32(c->tok[4], c->len[4], &f->crc))
        return mfBad(c, "the checksum is not 8 lower-case hex digits");
    }
  }
  if (m->nops == 0) return mfBad(c, "the MANIFEST lists no operator");
  return SL_OK;
}

int slSnapMfParse(char *err, const sl_allocator *a, const char *p, size_t n, slManifest *m) {
  mfCur c;
  size_t last;
  uint32_t want, got;
  uint64_t v;
  int rc;
  memset(m, 0, sizeof *m);
  memset(&c, 0, sizeof c);
  c.p = p;
  c.n = n;
  c.err = err;
  if (n > SL_MANIFEST_MAX)
    return slError(err, SL_CORRUPT, "the MANIFEST is larger than %u bytes", SL_MANIFEST_MAX);
  if (n == 0 || p[n - 1] != '\n')
    return slError(err, SL_CORRUPT, "the MANIFEST is empty or does not end with a newline "
                   "(truncated?)");
  /* the checksum line is the last line */
  for (last = n - 1; last > 0 && p[last - 1] != '\n'; last--) {}
  if (n - last != 18 || memcmp(p + last, "checksum ", 9) != 0 || !mfHex32(p + last + 9, 8, &want))
    return slError(err, SL_CORRUPT, "the MANIFEST does not end with a line 'checksum <8 hex "
                   "digits>' (truncated?)");
  got = slSnapCrc(0, p, last);
  if (got != want)
    return slError(err, SL_CORRUPT, "the MANIFEST's checksum is %08x, its content has %08x: it "
                   "was changed or damaged", (unsigned)want, (unsigned)got);
  rc = mfNext(&c);
  if (rc == SL_OK && (c.ntok != 2 || !mfIs(&c, 0, "statelite-manifest")))
    rc = mfBad(&c, "this is not a statelite MANIFEST");
  if (rc == SL_OK && !mfIs(&c, 1, "1"))
    rc = slError(err, SL_MISMATCH, "MANIFEST format %.*s; this library reads format %d",
                 (int)(c.len[1] < 20 ? c.len[1] : 20), c.tok[1], SL_MANIFEST_VERSION);
  if (rc == SL_OK) rc = mfNumLine(&c, "id", 1, (uint64_t)INT64_MAX, &v);
  if (rc == SL_OK) {
    m->id = (int64_t)v;
    rc = mfNext(&c);
  }
  if (rc == SL_OK) {
    if (c.ntok == 2 && mfIs(&c, 0, "kind") && mfIs(&c, 1, "checkpoint")) m->kind = SL_CHECKPOINT;
    else if (c.ntok == 2 && mfIs(&c, 0, "kind") && mfIs(&c, 1, "savepoint")) m->kind = SL_SAVEPOINT;
    else rc = mfBad(&c, "expected 'kind checkpoint' or 'kind savepoint'");
  }
  if (rc == SL_OK) rc = mfNext(&c);
  if (rc == SL_OK) {
    if (c.ntok != 2 || !mfIs(&c, 0, "name")) rc = mfBad(&c, "expected 'name <savepoint name or ->'");
    else if (m->kind == SL_CHECKPOINT && !mfIs(&c, 1, "-"))
      rc = mfBad(&c, "a checkpoint's name must be '-'");
    else if (m->kind == SL_SAVEPOINT && !mfName(&c, 1, m->name))
      rc = mfBad(&c, "the savepoint name is not 1..128 characters of [A-Za-z0-9_.-] not "
                 "starting with '.'");
  }
  if (rc == SL_OK) rc = mfNumLine(&c, "time_ms", 0, (uint64_t)INT64_MAX, &v);
  if (rc == SL_OK) {
    m->time_ms = (int64_t)v;
    rc = mfNumLine(&c, "format", 1, 1000000, &v);
  }
  if (rc == SL_OK) {
    m->format = (int)v;
    if (m->format != SL_FORMAT_VERSION)
      rc = slError(err, SL_MISMATCH, "the checkpoint holds state file format %d; this library "
                   "reads format %d", m->format, SL_FORMAT_VERSION);
  }
  if (rc == SL_OK) rc = mfParseOps(&c, a, m, last);
  if (rc != SL_OK) slSnapMfFree(a, m);
  return rc;
}

int slSnapMfLoad(char *err, const sl_fs *fs, const sl_allocator *a, const char *path,
                 slManifest *m) {
  char ignored[SL_ERRMSG_MAX];
  sl_fs_stat sb;
  char *buf = NULL;
  uint64_t size = 0;
  size_t got = 0;
  int rc, fd;
  memset(m, 0, sizeof *m);
  rc = slSnapStat(err, fs, path, 0, &sb);
  if (rc == SL_OK && sb.type != SL_FS_FILE)
    return slError(err, SL_CORRUPT, "%s is not a regular file of at most %u bytes", path,
                   SL_MANIFEST_MAX);
  if (rc == SL_OK) rc = slSnapOpen(err, fs, path, SL_FS_READ, &fd);
  if (rc) return rc;
  rc = slSnapFdSize(err, fs, fd, &size, path);
  if (rc == SL_OK && size > SL_MANIFEST_MAX) {
    rc = slError(err, SL_CORRUPT, "%s is not a regular file of at most %u bytes", path,
                 SL_MANIFEST_MAX);
  } else if (rc == SL_OK) {
    buf = slMalloc(a, (size_t)size + 1);
    rc = buf ? slSnapPread(err, fs, fd, buf, (size_t)size, 0, &got, path)
             : slError(err, SL_NOMEM, "out of memory");
  }
  slSnapClose(ignored, fs, fd, path);
  if (rc == SL_OK) {
    char why[SL_ERRMSG_MAX];
    rc = slSnapMfParse(why, a, buf, got, m);
    if (rc) slError(err, rc, "%s: %s", path, why);
  }
  slFree(a, buf);
  return rc;
}
