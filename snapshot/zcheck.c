/*
** zcheck.c — reading snapshot files, which are untrusted: the walk over
** their zstd frames that checks declared sizes before anything is
** decompressed, their CRC-32C, bounded streaming decompression into a new
** file (also public, for tools), and compression of a whole file (the
** fallback of a snapshot).
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static int zcOpenErr(char *err, const char *path) {
  int e = errno;
  if (e == ENOENT) return slError(err, SL_CORRUPT, "%s is missing", path);
  return slError(err, slSnapErrnoRc(e), "cannot open %s: %s", path, strerror(e));
}

int slSnapFrameCheck(char *err, const char *path, uint64_t expect, uint64_t max,
                     uint64_t *sum) {
  unsigned char h[18];
  struct stat sb;
  uint64_t off = 0, total = 0, size;
  size_t got;
  int rc = SL_OK, nframes = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return zcOpenErr(err, path);
  if (fstat(fd, &sb) != 0) {
    rc = slError(err, SL_IOERR, "cannot look at %s: %s", path, strerror(errno));
    goto done;
  }
  size = (uint64_t)sb.st_size;
  while (rc == SL_OK && off < size) {
    uint32_t magic;
    unsigned fhd, fcsFlag, single, dictFlag, checksum;
    int pos, fcsSize;
    uint64_t fcs;
    rc = slSnapPread(err, fd, h, sizeof h, off, &got, path);
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
      rc = slSnapPread(err, fd, h, 3, off, &got, path);
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
  close(fd);
  return rc;
}

int slSnapFileCrc(char *err, const char *path, unsigned char *buf, size_t cap, uint32_t *crc,
                  uint64_t *size) {
  int rc = SL_OK;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  *crc = 0;
  *size = 0;
  if (fd < 0) return zcOpenErr(err, path);
  for (;;) {
    ssize_t k = read(fd, buf, cap);
    if (k < 0) {
      if (errno == EINTR) continue;
      rc = slError(err, slSnapErrnoRc(errno), "cannot read %s: %s", path, strerror(errno));
      break;
    }
    if (k == 0) break;
    *crc = slSnapCrc(*crc, buf, (size_t)k);
    *size += (uint64_t)k;
  }
  close(fd);
  return rc;
}

int slSnapDecompress(char *err, const sl_allocator *a, const char *src, const char *dst,
                     uint64_t expect) {
  ZSTD_DCtx *dctx = NULL;
  size_t icap = ZSTD_DStreamInSize(), ocap = ZSTD_DStreamOutSize(), last = 1;
  unsigned char *ibuf = NULL, *obuf = NULL;
  uint64_t total = 0;
  int rc = SL_OK, fdin = -1, fdout = -1;
  fdin = open(src, O_RDONLY | O_CLOEXEC);
  if (fdin < 0) return zcOpenErr(err, src);
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
  fdout = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fdout < 0) {
    rc = slError(err, slSnapErrnoRc(errno), "cannot create %s: %s", dst, strerror(errno));
    goto done;
  }
  for (;;) {
    ssize_t k = read(fdin, ibuf, icap);
    ZSTD_inBuffer in;
    if (k < 0) {
      if (errno == EINTR) continue;
      rc = slError(err, slSnapErrnoRc(errno), "cannot read %s: %s", src, strerror(errno));
      break;
    }
    if (k == 0) break;
    in.src = ibuf;
    in.size = (size_t)k;
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
      if (out.pos) rc = slSnapPwrite(err, fdout, obuf, out.pos, total - out.pos, dst);
    }
    if (rc) break;
  }
  if (rc == SL_OK && last != 0)
    rc = slError(err, SL_CORRUPT, "%s is truncated: it ends in the middle of a zstd frame", src);
  if (rc == SL_OK && total != expect)
    rc = slError(err, SL_CORRUPT, "%s decompresses to %llu bytes where the MANIFEST says %llu", src,
                 (unsigned long long)total, (unsigned long long)expect);
  if (rc == SL_OK && fsync(fdout) != 0)
    rc = slError(err, slSnapErrnoRc(errno), "cannot sync %s: %s", dst, strerror(errno));
done:
  if (fdout >= 0 && close(fdout) != 0 && rc == SL_OK)
    rc = slError(err, slSnapErrnoRc(errno), "cannot close %s: %s", dst, strerror(errno));
  close(fdin);
  ZSTD_freeDCtx(dctx);
  slFree(a, ibuf);
  slFree(a, obuf);
  return rc;
}

int slSnapCompressFile(char *err, slZOut *z, const char *src, unsigned char *buf, size_t cap) {
  int rc = SL_OK;
  int fd = open(src, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return slError(err, slSnapErrnoRc(errno), "cannot open %s: %s", src, strerror(errno));
  for (;;) {
    ssize_t k = read(fd, buf, cap);
    if (k < 0) {
      if (errno == EINTR) continue;
      rc = slError(err, slSnapErrnoRc(errno), "cannot read %s: %s", src, strerror(errno));
      break;
    }
    if (k == 0) break;
    rc = slSnapZFeed(err, z, buf, (size_t)k);
    if (rc) break;
  }
  close(fd);
  return rc;
}

int sl_snapshot_extract(const char *src, const char *dst, uint64_t max_raw_bytes) {
  char err[SL_ERRMSG_MAX];
  uint64_t total = 0;
  int rc;
  if (!src || !src[0] || !dst || !dst[0]) return SL_MISUSE;
  if (max_raw_bytes == 0) max_raw_bytes = 64ull << 30;
  rc = slSnapFrameCheck(err, src, UINT64_MAX, max_raw_bytes, &total);
  if (rc == SL_OK) rc = slSnapDecompress(err, slAllocDefault(), src, dst, total);
  if (rc != SL_OK) unlink(dst);
  return rc;
}
