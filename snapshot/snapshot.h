/*
** snapshot.h — the snapshot module's internals that its files share:
** CRC-32C, file and directory helpers, the streaming backup destination
** (a VFS that compresses page writes into a zstd stream), zstd frame checks,
** the MANIFEST format, and the handles of snapshots and checkpoint
** directories. The public half is in statelite.h, section "Checkpoints,
** savepoints, restore". Described for users in docs/FORMAT.md.
*/
#ifndef SL_SNAPSHOT_H
#define SL_SNAPSHOT_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <zstd.h>

#include "base/base.h"
#include "store/store.h"

/* Handle magics of this module. base.h may define them too (sl_errmsg()
** must know them); the values are the same. */
#ifndef SL_MAGIC_SNAPSHOT
#define SL_MAGIC_SNAPSHOT 0x736c534eu
#endif
#ifndef SL_MAGIC_CHKDIR
#define SL_MAGIC_CHKDIR 0x736c4344u
#endif

/* ------------------------------------------------------------------------ */
/* crc32c.c: CRC-32C (Castagnoli), as in iSCSI (RFC 3720) and ext4           */
/* ------------------------------------------------------------------------ */

/* Continues a CRC-32C: start with crc 0 and feed the bytes in any pieces;
** slSnapCrc(0, "123456789", 9) == 0xE3069283. */
SL_PRIVATE uint32_t slSnapCrc(uint32_t crc, const void *p, size_t n);
/* The CRC of A||B from crcA = CRC(A), crcB = CRC(B) and the length of B. */
SL_PRIVATE uint32_t slSnapCrcCombine(uint32_t crcA, uint32_t crcB, uint64_t lenB);

/* ------------------------------------------------------------------------ */
/* fsutil.c: the file layer. Every call goes through an sl_fs table made    */
/* complete by slSnapFsInit(); every failure is a code and a sentence       */
/* written into err (SL_ERRMSG_MAX bytes)                                    */
/* ------------------------------------------------------------------------ */

/* Monotonic clock in microseconds. */
SL_PRIVATE int64_t slSnapMonoUs(void);
/* SL_FULL for ENOSPC/EDQUOT, SL_NOMEM for ENOMEM, else SL_IOERR. */
SL_PRIVATE int slSnapErrnoRc(int e);
/* Copies the table fs (NULL: none) into *out and fills every NULL function
** with the POSIX one, so that *out can be called without checks. */
SL_PRIVATE void slSnapFsInit(sl_fs *out, const sl_fs *fs);
/* Opens path with SL_FS_* flags into *fd. SL_NOTFOUND when it is missing
** (and SL_FS_CREATE not given). */
SL_PRIVATE int slSnapOpen(char *err, const sl_fs *fs, const char *path, int flags, int *fd);
/* Closes fd (a negative fd is ignored). */
SL_PRIVATE int slSnapClose(char *err, const sl_fs *fs, int fd, const char *path);
/* Closes fd after work that returned rc: rc, or when that is SL_OK the
** close's own result (a failed close can report a failed write). */
SL_PRIVATE int slSnapCloseAfter(char *err, const sl_fs *fs, int fd, const char *path, int rc);
SL_PRIVATE int slSnapSync(char *err, const sl_fs *fs, int fd, const char *path);
SL_PRIVATE int slSnapTruncate(char *err, const sl_fs *fs, int fd, uint64_t size,
                              const char *path);
SL_PRIVATE int slSnapFdSize(char *err, const sl_fs *fs, int fd, uint64_t *size, const char *path);
SL_PRIVATE int slSnapRename(char *err, const sl_fs *fs, const char *from, const char *to);
/* Type and size of path; SL_NOTFOUND when nothing is there. */
SL_PRIVATE int slSnapStat(char *err, const sl_fs *fs, const char *path, int flags,
                          sl_fs_stat *st);
/* mkdir -p of path itself (and its parents). With `durable`, the parent of
** every directory it creates, and of path itself when it existed, is synced,
** so that the names survive a power loss. */
SL_PRIVATE int slSnapMkdirs(char *err, const sl_fs *fs, const char *path, int durable);
/* Sync of a directory, and of the directory holding path. */
SL_PRIVATE int slSnapSyncDir(char *err, const sl_fs *fs, const char *path);
SL_PRIVATE int slSnapSyncParent(char *err, const sl_fs *fs, const char *path);
/* Writes n bytes at offset off (retried after EINTR and short writes). */
SL_PRIVATE int slSnapPwrite(char *err, const sl_fs *fs, int fd, const void *p, size_t n,
                            uint64_t off, const char *path);
/* Reads up to n bytes at offset off; *got = bytes read (short at EOF). */
SL_PRIVATE int slSnapPread(char *err, const sl_fs *fs, int fd, void *p, size_t n, uint64_t off,
                           size_t *got, const char *path);
/* Writes a whole file atomically: path.tmp, sync, rename, sync of the
** directory. *renamed tells whether the rename happened (a failure after it
** leaves path in place). */
SL_PRIVATE int slSnapWriteAtomic(char *err, const sl_fs *fs, const char *path, const void *p,
                                 size_t n, int *renamed);
/* Removes a file; a missing file is not an error. */
SL_PRIVATE int slSnapUnlink(char *err, const sl_fs *fs, const char *path);
/* Removes a directory tree (files, subdirectories); missing is not an error.
** *bytes (may be NULL) gets the bytes of the regular files removed. */
SL_PRIVATE int slSnapRemoveTree(char *err, const sl_fs *fs, const sl_allocator *a,
                                const char *path, uint64_t *bytes);
/* Sum of the sizes of the regular files under path. */
SL_PRIVATE int slSnapTreeBytes(char *err, const sl_fs *fs, const sl_allocator *a,
                               const char *path, uint64_t *bytes);
/* *exists = 1 if path exists (any type, links not followed), 0 if not; an
** error only when that cannot be told. */
SL_PRIVATE int slSnapExists(char *err, const sl_fs *fs, const char *path, int *exists);
/* Size of a regular file: SL_NOTFOUND when missing, SL_IOERR when it is
** not a regular file. */
SL_PRIVATE int slSnapFileSize(char *err, const sl_fs *fs, const char *path, uint64_t *size);
/* Listing a directory: entries without "." and "..". slSnapDirOpen gives
** SL_NOTFOUND for a missing directory; slSnapDirNext gives SL_ROW with
** *name (valid until the next call), SL_DONE or an error. */
typedef struct slDir {
  const sl_fs *fs;
  void *h;
  const char *path;
} slDir;
SL_PRIVATE int slSnapDirOpen(char *err, const sl_fs *fs, const char *path, slDir *d);
SL_PRIVATE int slSnapDirNext(char *err, slDir *d, const char **name);
SL_PRIVATE void slSnapDirClose(slDir *d);
/* sqlite3_mprintf-like formatting into the given allocator; NULL on OOM. */
SL_PRIVATE char *slSnapPrintf(const sl_allocator *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* 1 if s is a valid operator or savepoint name: 1..128 characters of
** [A-Za-z0-9_.-], not starting with '.'. */
SL_PRIVATE int slSnapIsName(const char *s);
/* Parses a decimal number without sign or leading zeros (exactly "0" is
** allowed) of n bytes, at most max: 1 on success. */
SL_PRIVATE int slSnapParseU64(const char *s, size_t n, uint64_t max, uint64_t *out);

/* ------------------------------------------------------------------------ */
/* zvfs.c: the streaming backup destination                                  */
/* ------------------------------------------------------------------------ */

/* The output of a snapshot file being written: a zstd stream in a file.
** Layout of a streamed file: [frame A: page 1][skippable frame: padding]
** [frame B: pages 2..N], where the first `reserve` bytes hold frames A and
** the padding, written last. A file written in one piece (the fallback after
** an uncompressed temporary copy) is a single frame. */
typedef struct slZOut {
  const sl_fs *fs;
  int fd;
  const char *path;
  ZSTD_CCtx *cctx;
  int level;
  unsigned char *obuf;       /* ZSTD_CStreamOutSize() bytes */
  size_t ocap;
  uint64_t off;              /* next write offset in the file */
  uint64_t body_start;       /* first byte of the crc'ed body */
  uint32_t crc;              /* CRC-32C of bytes [body_start, off) */
  uint64_t in_bytes;         /* uncompressed bytes fed so far */
} slZOut;

SL_PRIVATE int slSnapZBegin(char *err, slZOut *z, uint64_t pledged);
SL_PRIVATE int slSnapZFeed(char *err, slZOut *z, const void *p, size_t n);
SL_PRIVATE int slSnapZEnd(char *err, slZOut *z);

/* The streaming VFS: registered under a unique name for one backup, with
** one file, whose writes must come in increasing page order (page 1 is kept
** in memory and written into the reserved head at the end). */
typedef struct slZvfs {
  sqlite3_vfs base;          /* must be first */
  sqlite3_vfs *parent;
  char name[64];
  int registered;
  int open;                  /* the one file is open */
  slZOut *out;
  uint32_t pgsz;
  unsigned char *page1;      /* pgsz bytes */
  int have_page1;
  uint64_t next_off;         /* offset of the next page >= 2 */
  uint64_t raw_size;         /* pages expected * pgsz */
  int failed;                /* a write came out of order, or a read-back */
  int io_rc;                 /* an SL_ code of an I/O failure of the output */
  char why[SL_ERRMSG_MAX];
} slZvfs;

/* Prepares a VFS for one backup of raw_size bytes of pgsz-byte pages whose
** output is z; page1 must hold pgsz bytes. Registers it. */
SL_PRIVATE int slSnapZvfsInit(char *err, slZvfs *v, slZOut *z, uint32_t pgsz, uint64_t raw_size,
                              unsigned char *page1);
SL_PRIVATE void slSnapZvfsShutdown(slZvfs *v);
/* The bytes reserved at the start of a streamed file for page 1. */
SL_PRIVATE size_t slSnapHeadReserve(uint32_t pgsz);
/* Writes the head of a streamed file: frame A of page 1 and a skippable
** frame that fills it up to `reserve` bytes; head must hold reserve bytes. */
SL_PRIVATE int slSnapZHead(char *err, ZSTD_CCtx *cctx, int level, const unsigned char *page1,
                           uint32_t pgsz, unsigned char *head, size_t reserve);

/* ------------------------------------------------------------------------ */
/* zcheck.c: reading snapshot files                                          */
/* ------------------------------------------------------------------------ */

/* Walks the frames of a .db.zst (zstd and skippable frames, block headers)
** and checks that every zstd frame declares its content size, that the sizes
** add up to `expect` (UINT64_MAX: any sum) and stay within `max`. *total
** (may be NULL) gets the sum. */
SL_PRIVATE int slSnapFrameCheck(char *err, const sl_fs *fs, const char *path, uint64_t expect,
                                uint64_t max, uint64_t *total);
/* CRC-32C and size of a whole file. */
SL_PRIVATE int slSnapFileCrc(char *err, const sl_fs *fs, const char *path, unsigned char *buf,
                             size_t cap, uint32_t *crc, uint64_t *size);
/* Decompresses src into a new file dst (synced), refusing more than
** `expect` bytes of output (and fewer). */
SL_PRIVATE int slSnapDecompress(char *err, const sl_fs *fs, const sl_allocator *a,
                                const char *src, const char *dst, uint64_t expect);
/* Compresses a whole file into z (one frame), read through z->fs. */
SL_PRIVATE int slSnapCompressFile(char *err, slZOut *z, const char *src, unsigned char *buf,
                                  size_t cap);

/* ------------------------------------------------------------------------ */
/* manifest.c                                                                */
/* ------------------------------------------------------------------------ */

#define SL_MANIFEST_VERSION 1
#define SL_MANIFEST_MAX (16u << 20) /* bytes */

typedef struct slMfFile {
  uint64_t size, raw;
  uint32_t crc;
} slMfFile;

typedef struct slMfOp {
  char name[129];
  int parallelism, maxp;
  slMfFile *files;           /* parallelism entries, by subtask */
} slMfOp;

typedef struct slManifest {
  int64_t id;
  int kind;                  /* SL_CHECKPOINT or SL_SAVEPOINT */
  char name[129];            /* savepoint name, "" for checkpoints */
  int64_t time_ms;
  int format;
  int nops;
  slMfOp *ops;               /* sorted by name */
} slManifest;

SL_PRIVATE void slSnapMfFree(const sl_allocator *a, slManifest *m);
/* Renders m as MANIFEST text (allocated with a). */
SL_PRIVATE int slSnapMfFormat(char *err, const sl_allocator *a, const slManifest *m, char **out,
                              size_t *n);
/* Parses MANIFEST text strictly; on failure err names the line and why. */
SL_PRIVATE int slSnapMfParse(char *err, const sl_allocator *a, const char *p, size_t n,
                             slManifest *m);
/* Reads and parses a MANIFEST file. SL_NOTFOUND when it does not exist. */
SL_PRIVATE int slSnapMfLoad(char *err, const sl_fs *fs, const sl_allocator *a, const char *path,
                            slManifest *m);

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */
/* ------------------------------------------------------------------------ */

enum { SL_SNAP_BEGUN, SL_SNAP_WRITING, SL_SNAP_WRITTEN, SL_SNAP_FAILED };

struct sl_snapshot {
  slHandle hdr;
  char errmsg[SL_ERRMSG_MAX];
  sl_allocator alloc;
  sl_fs fs;                  /* the file layer (complete: slSnapFsInit) */
  sl_store *st;
  sqlite3 *rdb;              /* the read connection, pinned to the commit */
  slFrozen *frozen;          /* the changes the synchronous part froze */
  char pin_err[SL_ERRMSG_MAX]; /* why snapPin() failed (it may run on the
                                owner thread while the writer starts) */
  atomic_int state;          /* SL_SNAP_* */
  int write_rc;              /* what sl_snapshot_write() returned */
  int level, flags;
  char *dir;                 /* <target>/<operator> */
  char *final_path;          /* <dir>/<subtask>.db.zst */
  char *tmp_path;            /* <dir>/<subtask>.db.zst.tmp */
  char *raw_path;            /* <dir>/<subtask>.db.raw.tmp (fallback only) */
  uint32_t pgsz;
  uint64_t npages;
  unsigned char *page1;      /* pgsz bytes */
  unsigned char *head;       /* slSnapHeadReserve(pgsz) bytes */
  unsigned char *iobuf;      /* SL_SNAP_IOBUF bytes */
  unsigned char *obuf;       /* ZSTD_CStreamOutSize() bytes */
  ZSTD_CCtx *cctx;
  slZvfs vfs;
  int64_t started_us;
  sl_snapshot_info info;
};

#define SL_SNAP_IOBUF (128u << 10)

struct sl_chkdir {
  slHandle hdr;
  char errmsg[SL_ERRMSG_MAX];
  sl_allocator alloc;
  sl_fs fs;                  /* the file layer (complete: slSnapFsInit) */
  sl_chkdir_config cfg;
  char *dir;
  char *path;                /* last sl_chkdir_target() path */
  sl_chk_entry *list;        /* last sl_chkdir_list() */
  int nlist;
  char **list_strs;          /* strings the list points to */
  int nstrs;
};

/* chkdir.c: reports a message through the configured callback. */
SL_PRIVATE void slSnapReport(sl_chkdir *cd, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
SL_PRIVATE int slSnapCdErr(sl_chkdir *cd, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The directory of checkpoint id or savepoint name (allocated). */
SL_PRIVATE char *slSnapEntryDir(sl_chkdir *cd, int64_t id, const char *savepoint);

/* snapshot.c: commits the changes the snapshot froze (and pins the read
** transaction), or waits for the thread that does; the first part of
** sl_snapshot_write(), which then finds it done. Any thread. */
SL_PRIVATE int slSnapCommit(sl_snapshot *sn);

/* restore.c: verifies the files of a parsed MANIFEST in directory dir:
** sizes, CRC-32C, frames. On failure cd's message says which file and why. */
SL_PRIVATE int slSnapVerifyFiles(sl_chkdir *cd, const char *dir, const slManifest *m);

#endif
