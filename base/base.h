/*
** base.h — what every statelite module may call: handle headers, error
** messages, the allocator, murmur3, canonical key bytes and key groups.
*/
#ifndef SL_BASE_H
#define SL_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "statelite.h"

/* Internal functions shared between files. The amalgamation predefines this
** as `static`. */
#ifndef SL_PRIVATE
#define SL_PRIVATE
#endif

#define SL_ERRMSG_MAX 512

/* Every public handle begins with this, so sl_errmsg() can take any of them. */
#define SL_MAGIC_STORE 0x736c5354u
#define SL_MAGIC_STATE 0x736c5341u
#define SL_MAGIC_ITER  0x736c4954u
#define SL_MAGIC_JOB   0x736c4a42u
#define SL_MAGIC_SNAPSHOT 0x736c534eu
#define SL_MAGIC_CHKDIR   0x736c4344u
#define SL_MAGIC_DEAD  0x00646561u
typedef struct slHandle {
  uint32_t magic;
  char *errmsg; /* the owning store's message buffer (SL_ERRMSG_MAX bytes) */
} slHandle;

/* Allocation through a handle's allocator (never NULL: see slAllocDefault). */
SL_PRIVATE const sl_allocator *slAllocDefault(void);
SL_PRIVATE void *slMalloc(const sl_allocator *a, size_t n);
SL_PRIVATE void *slRealloc(const sl_allocator *a, void *p, size_t n);
SL_PRIVATE void slFree(const sl_allocator *a, void *p);
SL_PRIVATE char *slStrdup(const sl_allocator *a, const char *s);

/* Formats a message into buf (SL_ERRMSG_MAX bytes) and returns rc. */
SL_PRIVATE int slErrorV(char *buf, int rc, const char *fmt, va_list ap);
SL_PRIVATE int slError(char *buf, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Name of a value type ("INTEGER") and parse of one (0 if unknown). */
SL_PRIVATE const char *slTypeName(int type);
SL_PRIVATE int slTypeParse(const char *s, size_t n);

/* 1 if s is an identifier: [A-Za-z_][A-Za-z0-9_]{0,63}. */
SL_PRIVATE int slIsIdent(const char *s);

/* MurmurHash3 x86_32 (inline: the key of every record is hashed, and with
** a constant length the compiler unrolls it). */
static inline uint32_t slRotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* A little-endian 32-bit load, written so that compilers make one move. */
static inline uint32_t slLoad32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint32_t slMurmur3(const void *data, size_t len, uint32_t seed) {
  const unsigned char *p = data;
  const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
  uint32_t h = seed, k;
  size_t i, nblocks = len / 4;
  for (i = 0; i < nblocks; i++) {
    k = slLoad32(p + 4 * i);
    k *= c1; k = slRotl32(k, 15); k *= c2;
    h ^= k; h = slRotl32(h, 13); h = h * 5 + 0xe6546b64u;
  }
  k = 0;
  switch (len & 3) {
    case 3: k ^= (uint32_t)p[4 * nblocks + 2] << 16; /* fall through */
    case 2: k ^= (uint32_t)p[4 * nblocks + 1] << 8;  /* fall through */
    case 1: k ^= p[4 * nblocks];
      k *= c1; k = slRotl32(k, 15); k *= c2; h ^= k;
  }
  h ^= (uint32_t)len;
  h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
  return h;
}



/* Canonical key bytes (docs/FORMAT.md). slKeySize checks the key and gives
** its encoded size (0 when a column is NULL, of a bad type, or NaN unless
** allow_nan: *why then names the problem). slKeyEncode writes exactly that many bytes. slKeyDecode
** reads n columns back into out[]; TEXT/BLOB point into buf. Returns the
** bytes consumed, 0 on malformed input. */
SL_PRIVATE size_t slKeySize(const sl_value *key, int n, int allow_nan, const char **why,
                             int *bad);
SL_PRIVATE void slKeyEncode(const sl_value *key, int n, unsigned char *out);
/* slKeyEncode, and copy[] (n values) gets what slKeyDecode would read back:
** TEXT/BLOB pointing into out. */
SL_PRIVATE void slKeyEncodeCopy(const sl_value *key, int n, unsigned char *out, sl_value *copy);
SL_PRIVATE size_t slKeyDecode(const unsigned char *buf, size_t len, sl_value *out, int n);

/* Key group from a murmur3 hash of canonical bytes (hash mod max
** parallelism; a mask for a power of two, as the default 128). */
static inline int slKeyGroupOf(uint32_t hash, int max_parallelism) {
  uint32_t m = (uint32_t)max_parallelism;
  return (int)((m & (m - 1)) == 0 ? hash & (m - 1) : hash % m);
}

/* Milliseconds since the Unix epoch, CLOCK_REALTIME. */
SL_PRIVATE int64_t slNowMs(void);

/* Named kill points, for the reliability tests (tests/test_rel_killpoints.c).
** When the environment variable SL_KILL_POINT names `name` -- a comma-separated
** list of entries `name` or `name:percent` -- the process kills itself with
** SIGKILL there (with `percent`, only with that probability, drawn from the
** nanoseconds of the monotonic clock: the library keeps no global state).
** getenv() is read at each call; none of these is on the per-record path.
** The points:
**   commit            store/frozen.c  after the commit of the changes a
**                                   checkpoint froze (its asynchronous part)
**   backup            snapshot/zvfs.c   during the backup, after its second page
**   snapshot_written  snapshot/snapshot.c  the .db.zst written, not yet synced
**   snapshot_synced   snapshot/snapshot.c  after its fsync, before the rename
**   snapshot_renamed  snapshot/snapshot.c  after the rename into place
**   manifest_before   snapshot/chkdir.c  publish: before the MANIFEST is written
**   manifest_after    snapshot/chkdir.c  publish: after it is written and synced
**   restore           snapshot/restore.c after each snapshot file unpacked
**   retention         snapshot/chkdir.c  after each checkpoint removed
*/
SL_PRIVATE void slKillPoint(const char *name);

#endif
