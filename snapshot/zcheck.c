/*
** zcheck.c — reading snapshot files, which are untrusted: the walk over
** their zstd frames that checks declared sizes before anything is
** decompressed, their CRC-32C, bounded streaming decompression into a new
** file (also public, for tools), and compression of a whole file (the
** fallback of a snapshot).
*/
#include <string.h>

#include "snapshot/snapshot.h"

#define ZC_MAGIC 0xFD2FB528u
#define ZC_SKIP_MASK 0xFFFFFFF0u
#define ZC_SKIP_MAGIC 0x184D2A50u
#define ZC_BLOCK_MAX (128u << 10)

static uint64_t zcGetLE(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Opens a snapshot file for reading: a missing one is SL_CORRUPT (a
** checkpoint that lacks it does not verify). */
static int zcOpen(char *err, const sl_fs *fs, const char *path, int *fd) {
  int rc = slSnapOpen(err, fs, path, SL_FS_READ, fd);
  if (rc == SL_NOTFOUND) return slError(err, SL_CORRUPT, "%s is missing", path);
  return rc;
}

int slSnapFrameCheck(char *err, const sl_fs *fs, const char *path, uint64_t expect, uint64_t max,
                     uint64_t *sum) {
  unsigned char h[18];
  uint64_t off = 0, total = 0, size = 0;
  size_t got;
  int rc = SL_OK, nframes = 0, fd;
  char ignored[SL_ERRMSG_MAX];
  rc = zcOpen(err, fs, path, &fd);
  if (rc) return rc;
  rc = slSnapFdSize(err, fs, fd, &size, path);
  if (rc) goto done;
  while (rc == SL_OK && off < size) {
    uint32_t magic;
    unsigned fhd, fcsFlag, single, dictFlag, checksum;
    int pos, fcsSize;
    uint64_t fcs;
    rc = slSnapPread(err, fs, fd, h, sizeof h, off, &got, path);
    if (rc) break;
    if (got < 8) {
      rc = slError(err, SL_CORRUPT, "%s is truncated: %zu stray bytes at offset %llu", path, got,
                   (unsigned long long)off);
      break;
    }
    magic = (uint32_t)zcGetLE(h, 4);
    if ((magic & ZC_SKIP_MASK) == ZC_SKIP_MAGIC) {
      off += 8 + zcGetLE(h + 4, 4);
      if (off > size)
        rc = slError(err, SL_CORRUPT, "%s is truncated: a skippable frame runs past its end", path);
      continue;
    }
    if (magic != ZC_MAGIC) {
      rc = slError(err, SL_CORRUPT, "%s is not a zstd stream: no frame starts at offset %llu", path,
                   (unsigned long long)off);
      break;
    }
    fhd = h[4];
    fcsFlag = fhd >> 6;
    single = (fhd >> 5) & 1u;
    checksum = (fhd >> 2) & 1u;
    dictFlag = fhd & 3u;
    if (fhd & 0x08u) {
      rc = slError(err, SL_CORRUPT, "%s: the zstd frame at offset %llu sets a reserved bit", path,
                   (unsigned long long)off);
      break;
    }
    if (dictFlag) {
      rc = slError(err, SL_CORRUPT, "%s: the zstd frame at offset %llu needs a dictionary", path,
                   (unsigned long long)off);
      break;
    }
    pos = 5 + (single ? 0 : 1);
    fcsSize = fcsFlag == 0 ? (single ? 1 : 0) : 1 << fcsFlag;
    if (fcsSize == 0) {
      rc = slError(err, SL_CORRUPT,
                   "%s: the zstd frame at offset %llu does not declare its content size", path,
                   (unsigned long long)off);
      break;
    }
    if (got < (size_t)(pos + fcsSize)) {
      rc = slError(err, SL_CORRUPT, "%s is truncated in a frame header", path);
      break;
    }
    fcs = zcGetLE(h + pos, fcsSize) + (fcsSize == 2 ? 256 : 0);
    if (fcs > max || total + fcs > max) {
      rc = slError(err, SL_CORRUPT,
                   "%s declares %llu bytes of content, more than the limit of %llu bytes", path,
                   (unsigned long long)(total + fcs), (unsigned long long)max);
      break;
    }
    total += fcs;
    off += (uint64_t)(pos + fcsSize);
    for (;;) { /* the blocks of the frame */
      uint32_t bh, type, bsize;
      rc = slSnapPread(err, fs, fd, h, 3, off, &got, path);
      if (rc) break;
      if (got < 3) {
        rc = slError(err, SL_CORRUPT, "%s is truncated in the middle of a zstd frame", path);
        break;
      }
      bh = (uint32_t)zcGetLE(h, 3);
      type = (bh >> 1) & 3u;
      bsize = bh >> 3;
      if (type == 3 || bsize > ZC_BLOCK_MAX) {
        rc = slError(err, SL_CORRUPT, "%s: malformed zstd block at offset %llu", path,
                     (unsigned long long)off);
        break;
      }
      off += 3 + (type == 1 ? 1 : bsize);
      if (off > size) {
        rc = slError(err, SL_CORRUPT, "%s is truncated in the middle of a zstd frame", path);
        break;
      }
      if (bh & 1u) break;
    }
    if (rc) break;
    off += checksum ? 4 : 0;
    if (off > size) rc = slError(err, SL_CORRUPT, "%s is truncated before a frame checksum", path);
    nframes++;
  }
  if (rc == SL_OK && nframes == 0)
    rc = slError(err, SL_CORRUPT, "%s holds no zstd frame", path);
  if (sum) *sum = total;
  if (rc == SL_OK && expect != UINT64_MAX && total != expect)
    rc = slError(err, SL_CORRUPT,
                 "%s holds frames of %llu bytes of content where the MANIFEST says %llu", path,
                 (unsigned long long)total, (unsigned long long)expect);
done:
  slSnapClose(ignored, fs, fd, path);
  return rc;
}

int slSnapFileCrc(char *err, const sl_fs *fs, const char *path, unsigned char *buf, size_t cap,
                  uint32_t *crc, uint64_t *size) {
  char ignored[SL_ERRMSG_MAX];
  int rc, fd;
  *crc = 0;
  *size = 0;
  rc = zcOpen(err, fs, path, &fd);
  if (rc) return rc;
  for (;;) {
    size_t k = 0;
    rc = slSnapPread(err, fs, fd, buf, cap, *size, &k, path);
    if (rc || k == 0) break;
    *crc = slSnapCrc(*crc, buf, k);
    *size += (uint64_t)k;
  }
  slSnapClose(ignored, fs, fd, path);
  return rc;
}

int slSnapDecompress(char *err, const sl_fs *fs, const sl_allocator *a, const char *src,
                     const char *dst, uint64_t expect) {
  ZSTD_DCtx *dctx = NULL;
  size_t icap = ZSTD_DStreamInSize(), ocap = ZSTD_DStreamOutSize(), last = 1;
  unsigned char *ibuf = NULL, *obuf = NULL;
  uint64_t total = 0, inoff = 0;
  int rc = SL_OK, fdin = -1, fdout = -1;
  char ignored[SL_ERRMSG_MAX];
  rc = zcOpen(err, fs, src, &fdin);
  if (rc) return rc;
  ibuf = slMalloc(a, icap);
  obuf = slMalloc(a, ocap);
  dctx = ZSTD_createDCtx();
  if (!ibuf || !obuf || !dctx) {
    rc = slError(err, SL_NOMEM, "out of memory");
    goto done;
  }
  if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, 27))) {
    rc = slError(err, SL_ERROR, "zstd refuses a window limit");
    goto done;
  }
  rc = slSnapOpen(err, fs, dst, SL_FS_WRITE | SL_FS_CREATE | SL_FS_TRUNCATE, &fdout);
  if (rc) goto done;
  for (;;) {
    size_t k = 0;
    ZSTD_inBuffer in;
    rc = slSnapPread(err, fs, fdin, ibuf, icap, inoff, &k, src);
    if (rc || k == 0) break;
    inoff += k;
    in.src = ibuf;
    in.size = k;
    in.pos = 0;
    while (rc == SL_OK && in.pos < in.size) {
      ZSTD_outBuffer out = {obuf, ocap, 0};
      last = ZSTD_decompressStream(dctx, &out, &in);
      if (ZSTD_isError(last)) {
        rc = slError(err, SL_CORRUPT, "%s does not decompress: %s", src, ZSTD_getErrorName(last));
        break;
      }
      if (out.pos > expect - total) {
        rc = slError(err, SL_CORRUPT, "%s decompresses to more than the %llu bytes the MANIFEST "
                     "says", src, (unsigned long long)expect);
        break;
      }
      total += out.pos;
      if (out.pos) rc = slSnapPwrite(err, fs, fdout, obuf, out.pos, total - out.pos, dst);
    }
    if (rc) break;
  }
  if (rc == SL_OK && last != 0)
    rc = slError(err, SL_CORRUPT, "%s is truncated: it ends in the middle of a zstd frame", src);
  if (rc == SL_OK && total != expect)
    rc = slError(err, SL_CORRUPT, "%s decompresses to %llu bytes where the MANIFEST says %llu", src,
                 (unsigned long long)total, (unsigned long long)expect);
  if (rc == SL_OK) rc = slSnapSync(err, fs, fdout, dst);
done:
  if (fdout >= 0) rc = slSnapCloseAfter(err, fs, fdout, dst, rc);
  slSnapClose(ignored, fs, fdin, src);
  ZSTD_freeDCtx(dctx);
  slFree(a, ibuf);
  slFree(a, obuf);
  return rc;
}

int slSnapCompressFile(char *err, slZOut *z, const char *src, unsigned char *buf, size_t cap) {
  char ignored[SL_ERRMSG_MAX];
  uint64_t off = 0;
  int rc, fd;
  rc = slSnapOpen(err, z->fs, src, SL_FS_READ, &fd);
  if (rc) return rc;
  for (;;) {
    size_t k = 0;
    rc = slSnapPread(err, z->fs, fd, buf, cap, off, &k, src);
    if (rc || k == 0) break;
    off += k;
    rc = slSnapZFeed(err, z, buf, k);
    if (rc) break;
  }
  slSnapClose(ignored, z->fs, fd, src);
  return rc;
}

int sl_snapshot_extract(const char *src, const char *dst, uint64_t max_raw_bytes) {
  char err[SL_ERRMSG_MAX], ignored[SL_ERRMSG_MAX];
  uint64_t total = 0;
  sl_fs fs;
  int rc;
  if (!src || !src[0] || !dst || !dst[0]) return SL_MISUSE;
  if (max_raw_bytes == 0) max_raw_bytes = 64ull << 30;
  slSnapFsInit(&fs, NULL);
  rc = slSnapFrameCheck(err, &fs, src, UINT64_MAX, max_raw_bytes, &total);
  if (rc == SL_OK) rc = slSnapDecompress(err, &fs, slAllocDefault(), src, dst, total);
  if (rc != SL_OK) slSnapUnlink(ignored, &fs, dst);
  return rc;
}
