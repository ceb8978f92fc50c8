/*
** zvfs.c — the backup destination that needs no uncompressed copy: a zstd
** output stream written to a file (with its CRC-32C computed on the way),
** and an SQLite VFS with one file whose page writes, arriving in increasing
** order, go straight into that stream. Page 1, which the backup rewrites at
** its end, is kept in memory and compressed last into a reserved head.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/snapshot.h"

/* The pending-byte page of SQLite: the backup never writes the page that
** holds this offset (it is used for locking), so its place is zeros. */
#define ZV_PENDING_BYTE 0x40000000u

/* ------------------------------------------------------------------------ */
/* The zstd output                                                           */
/* ------------------------------------------------------------------------ */

static int zvZstdErr(char *err, size_t r, const char *what, const char *path) {
  return slError(err, SL_ERROR, "zstd cannot %s %s: %s", what, path, ZSTD_getErrorName(r));
}

int slSnapZBegin(char *err, slZOut *z, uint64_t pledged) {
  size_t r = ZSTD_CCtx_reset(z->cctx, ZSTD_reset_session_and_parameters);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, z->level);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_contentSizeFlag, 1);
  /* a window of 1 MiB (levels up to 9 use 2 MiB for large inputs): the
  ** redundancy of a database lies within and between nearby pages, so the
  ** longer window gains nothing (0.01% on a 24 MB state file) while the
  ** compressor, and every restore's decoder, would need 1 MiB more */
  if (!ZSTD_isError(r) && z->level <= 9) r = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, 20);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setPledgedSrcSize(z->cctx, pledged);
  if (ZSTD_isError(r)) return zvZstdErr(err, r, "start compressing", z->path);
  z->crc = 0;
  z->in_bytes = 0;
  return SL_OK;
}

/* Compresses in with directive `end`, writing everything produced. */
static int zvPump(char *err, slZOut *z, ZSTD_inBuffer *in, ZSTD_EndDirective end) {
  for (;;) {
    ZSTD_outBuffer out = {z->obuf, z->ocap, 0};
    size_t left = ZSTD_compressStream2(z->cctx, &out, in, end);
    int rc;
    if (ZSTD_isError(left)) return zvZstdErr(err, left, "compress", z->path);
    if (out.pos) {
      rc = slSnapPwrite(err, z->fs, z->fd, z->obuf, out.pos, z->off, z->path);
      if (rc) return rc;
      z->crc = slSnapCrc(z->crc, z->obuf, out.pos);
      z->off += out.pos;
    }
    if (end == ZSTD_e_end ? left == 0 : in->pos == in->size) return SL_OK;
  }
}

int slSnapZFeed(char *err, slZOut *z, const void *p, size_t n) {
  ZSTD_inBuffer in = {p, n, 0};
  z->in_bytes += n;
  return n ? zvPump(err, z, &in, ZSTD_e_continue) : SL_OK;
}

int slSnapZEnd(char *err, slZOut *z) {
  ZSTD_inBuffer in = {NULL, 0, 0};
  return zvPump(err, z, &in, ZSTD_e_end);
}

size_t slSnapHeadReserve(uint32_t pgsz) {
  return ZSTD_compressBound(pgsz) + 8;
}

static void zvPut32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

int slSnapZHead(char *err, ZSTD_CCtx *cctx, int level, const unsigned char *page1, uint32_t pgsz,
                unsigned char *head, size_t reserve) {
  size_t n = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(n)) n = ZSTD_compress2(cctx, head, reserve - 8, page1, pgsz);
  if (ZSTD_isError(n)) return zvZstdErr(err, n, "compress", "the first page");
  /* a skippable frame (magic 0x184D2A50) covers the rest of the head */
  zvPut32(head + n, 0x184D2A50u);
  zvPut32(head + n + 4, (uint32_t)(reserve - n - 8));
  memset(head + n + 8, 0, reserve - n - 8);
  return SL_OK;
}

/* ------------------------------------------------------------------------ */
/* The VFS                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct zvFile {
  sqlite3_file base;
  slZvfs *v;
} zvFile;

static slZvfs *zvOf(sqlite3_file *f) { return ((zvFile *)f)->v; }

/* The size SQLite sees: what has been written so far. */
static uint64_t zvSize(const slZvfs *v) {
  if (v->next_off > v->pgsz) return v->next_off;
  return v->have_page1 ? v->pgsz : 0;
}

/* Gives up on streaming: the backup fails, and the caller falls back. */
static int zvGiveUp(slZvfs *v, int src, const char *fmt, unsigned long long a, unsigned long long b) {
  if (!v->failed) {
    v->failed = 1;
    snprintf(v->why, sizeof v->why, fmt, a, b);
  }
  return src;
}

static int zvClose(sqlite3_file *f) {
  slZvfs *v = zvOf(f);
  v->open = 0;
  return SQLITE_OK;
}

static int zvRead(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off) {
  slZvfs *v = zvOf(f);
  uint64_t size = zvSize(v), o = (uint64_t)off, n = (uint64_t)amt;
  if (off < 0 || amt < 0) return SQLITE_IOERR_READ;
  if (o + n <= v->pgsz) {
    if (v->have_page1) memcpy(buf, v->page1 + o, (size_t)n);
    else memset(buf, 0, (size_t)n);
    return o + n <= size ? SQLITE_OK : SQLITE_IOERR_SHORT_READ;
  }
  if (o >= size) {
    memset(buf, 0, (size_t)n);
    return SQLITE_IOERR_SHORT_READ;
  }
  return zvGiveUp(v, SQLITE_IOERR_READ,
                  "the backup read back %llu bytes at offset %llu of its destination, "
                  "which a stream cannot give",
                  (unsigned long long)n, (unsigned long long)o);
}

static int zvWrite(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off) {
  slZvfs *v = zvOf(f);
  uint64_t o = (uint64_t)off;
  int rc;
  if (v->failed || v->io_rc) return SQLITE_IOERR_WRITE;
  if (off < 0 || (uint32_t)amt != v->pgsz || o % v->pgsz != 0)
    return zvGiveUp(v, SQLITE_IOERR_WRITE,
                    "the backup wrote %llu bytes at offset %llu, not one whole page",
                    (unsigned long long)amt, (unsigned long long)o);
  if (o == 0) {
    memcpy(v->page1, buf, v->pgsz);
    v->have_page1 = 1;
    return SQLITE_OK;
  }
  if (o == v->next_off + v->pgsz && v->next_off == ZV_PENDING_BYTE) {
    /* the pending-byte page is skipped by the backup: zeros in its place */
    static const unsigned char zvZeros[512];
    for (uint32_t k = 0; k < v->pgsz; k += 512) {
      rc = slSnapZFeed(v->why, v->out, zvZeros, 512);
      if (rc) {
        v->io_rc = rc;
        return rc == SL_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
      }
    }
    v->next_off += v->pgsz;
  }
  if (o != v->next_off)
    return zvGiveUp(v, SQLITE_IOERR_WRITE,
                    "the backup wrote the page at offset %llu where the page at offset %llu "
                    "was due: pages came out of order",
                    (unsigned long long)o, (unsigned long long)v->next_off);
  if (o + v->pgsz > v->raw_size)
    return zvGiveUp(v, SQLITE_IOERR_WRITE,
                    "the backup wrote the page at offset %llu beyond the %llu bytes of the "
                    "database",
                    (unsigned long long)o, (unsigned long long)v->raw_size);
  rc = slSnapZFeed(v->why, v->out, buf, v->pgsz);
  if (rc) {
    v->io_rc = rc;
    return rc == SL_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
  }
  v->next_off += v->pgsz;
  if (v->next_off == 2 * (uint64_t)v->pgsz) slKillPoint("backup"); /* test hook (base.h) */
  return SQLITE_OK;
}

static int zvTruncate(sqlite3_file *f, sqlite3_int64 size) {
  slZvfs *v = zvOf(f);
  if (size >= 0 && (uint64_t)size >= zvSize(v)) return SQLITE_OK;
  return zvGiveUp(v, SQLITE_IOERR_TRUNCATE,
                  "the backup truncated its destination to %llu bytes after writing %llu",
                  (unsigned long long)size, (unsigned long long)zvSize(v));
}

static int zvSync(sqlite3_file *f, int flags) {
  (void)f;
  (void)flags;
  return SQLITE_OK;
}

static int zvFileSize(sqlite3_file *f, sqlite3_int64 *size) {
  *size = (sqlite3_int64)zvSize(zvOf(f));
  return SQLITE_OK;
}

static int zvLock(sqlite3_file *f, int level) {
  (void)f;
  (void)level;
  return SQLITE_OK;
}

static int zvCheckReservedLock(sqlite3_file *f, int *out) {
  (void)f;
  *out = 0;
  return SQLITE_OK;
}

static int zvFileControl(sqlite3_file *f, int op, void *arg) {
  (void)f;
  (void)op;
  (void)arg;
  return SQLITE_NOTFOUND;
}

static int zvSectorSize(sqlite3_file *f) {
  (void)f;
  return 4096;
}

static int zvDeviceCharacteristics(sqlite3_file *f) {
  (void)f;
  return 0;
}

static const sqlite3_io_methods zvIoMethods = {
    1, zvClose, zvRead, zvWrite, zvTruncate, zvSync, zvFileSize, zvLock, zvLock,
    zvCheckReservedLock, zvFileControl, zvSectorSize, zvDeviceCharacteristics,
    NULL, NULL, NULL, NULL, NULL, NULL};

static int zvOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *outFlags) {
  slZvfs *v = (slZvfs *)vfs;
  zvFile *zf = (zvFile *)f;
  (void)name;
  zf->base.pMethods = NULL;
  if (!(flags & SQLITE_OPEN_MAIN_DB) || v->open) return SQLITE_CANTOPEN;
  zf->v = v;
  v->open = 1;
  zf->base.pMethods = &zvIoMethods;
  if (outFlags) *outFlags = flags;
  return SQLITE_OK;
}

static int zvDelete(sqlite3_vfs *vfs, const char *name, int syncDir) {
  (void)vfs;
  (void)name;
  (void)syncDir;
  return SQLITE_OK;
}

static int zvAccess(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  (void)vfs;
  (void)name;
  (void)flags;
  *out = 0;
  return SQLITE_OK;
}

static int zvFullPathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  sqlite3_snprintf(n, out, "%s", name);
  return SQLITE_OK;
}

static void *zvDlOpen(sqlite3_vfs *vfs, const char *name) {
  (void)vfs;
  (void)name;
  return NULL;
}

static void zvDlError(sqlite3_vfs *vfs, int n, char *msg) {
  (void)vfs;
  sqlite3_snprintf(n, msg, "%s", "no extensions in a snapshot destination");
}

static void (*zvDlSym(sqlite3_vfs *vfs, void *h, const char *sym))(void) {
  (void)vfs;
  (void)h;
  (void)sym;
  return NULL;
}

static void zvDlClose(sqlite3_vfs *vfs, void *h) {
  (void)vfs;
  (void)h;
}

static int zvRandomness(sqlite3_vfs *vfs, int n, char *out) {
  sqlite3_vfs *p = ((slZvfs *)vfs)->parent;
  return p->xRandomness(p, n, out);
}

static int zvSleep(sqlite3_vfs *vfs, int us) {
  sqlite3_vfs *p = ((slZvfs *)vfs)->parent;
  return p->xSleep(p, us);
}

static int zvCurrentTime(sqlite3_vfs *vfs, double *out) {
  sqlite3_vfs *p = ((slZvfs *)vfs)->parent;
  return p->xCurrentTime(p, out);
}

static int zvGetLastError(sqlite3_vfs *vfs, int n, char *out) {
  (void)vfs;
  if (n > 0) out[0] = 0;
  return 0;
}

static int zvCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
  sqlite3_vfs *p = ((slZvfs *)vfs)->parent;
  if (p->iVersion >= 2 && p->xCurrentTimeInt64) return p->xCurrentTimeInt64(p, out);
  {
    double d = 0;
    int rc = p->xCurrentTime(p, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
  }
}

int slSnapZvfsInit(char *err, slZvfs *v, slZOut *z, uint32_t pgsz, uint64_t raw_size,
                   unsigned char *page1) {
  int src;
  memset(v, 0, sizeof *v);
  v->parent = sqlite3_vfs_find(NULL);
  if (!v->parent) return slError(err, SL_ERROR, "SQLite has no default VFS");
  snprintf(v->name, sizeof v->name, "statelite-zstd-%p", (void *)v);
  v->base.iVersion = 2;
  v->base.szOsFile = (int)sizeof(zvFile);
  v->base.mxPathname = v->parent->mxPathname;
  v->base.zName = v->name;
  v->base.pAppData = v;
  v->base.xOpen = zvOpen;
  v->base.xDelete = zvDelete;
  v->base.xAccess = zvAccess;
  v->base.xFullPathname = zvFullPathname;
  v->base.xDlOpen = zvDlOpen;
  v->base.xDlError = zvDlError;
  v->base.xDlSym = zvDlSym;
  v->base.xDlClose = zvDlClose;
  v->base.xRandomness = zvRandomness;
  v->base.xSleep = zvSleep;
  v->base.xCurrentTime = zvCurrentTime;
  v->base.xGetLastError = zvGetLastError;
  v->base.xCurrentTimeInt64 = zvCurrentTimeInt64;
  v->out = z;
  v->pgsz = pgsz;
  v->raw_size = raw_size;
  v->page1 = page1;
  v->next_off = pgsz;
  src = sqlite3_vfs_register(&v->base, 0);
  if (src != SQLITE_OK)
    return slError(err, src == SQLITE_NOMEM ? SL_NOMEM : SL_ERROR,
                   "cannot register the snapshot VFS: %s", sqlite3_errstr(src));
  v->registered = 1;
  return SL_OK;
}

void slSnapZvfsShutdown(slZvfs *v) {
  if (v->registered) sqlite3_vfs_unregister(&v->base);
  v->registered = 0;
}
