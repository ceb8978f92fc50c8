/*
** fsutil.c — the file layer of the snapshot module, which the SDK's file
** source and sink use too: every file-system call goes through an sl_fs
** table (POSIX unless the program gives its own), wrapped here in helpers
** that retry, measure, walk and remove trees, make directories durable and
** write whole files atomically; names and numbers are checked here as well.
** Every failure returns a result code and writes a sentence into err.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/snapshot.h"

int64_t slSnapMonoUs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int slSnapErrnoRc(int e) {
  if (e == ENOSPC
#ifdef EDQUOT
      || e == EDQUOT
#endif
  )
    return SL_FULL;
  if (e == ENOMEM) return SL_NOMEM;
  return SL_IOERR;
}

/* ------------------------------------------------------------------------ */
/* The POSIX table                                                           */
/* ------------------------------------------------------------------------ */

static int fsPxOpen(void *ud, const char *path, int flags) {
  int o = O_CLOEXEC;
  (void)ud;
  if ((flags & SL_FS_READ) && (flags & SL_FS_WRITE)) o |= O_RDWR;
  else if (flags & SL_FS_WRITE) o |= O_WRONLY;
  else o |= O_RDONLY;
  if (flags & SL_FS_CREATE) o |= O_CREAT;
  if (flags & SL_FS_TRUNCATE) o |= O_TRUNC;
  return open(path, o, 0666);
}

static int64_t fsPxRead(void *ud, int fd, void *buf, size_t n, uint64_t off) {
  (void)ud;
  return (int64_t)pread(fd, buf, n, (off_t)off);
}

static int64_t fsPxWrite(void *ud, int fd, const void *buf, size_t n, uint64_t off) {
  (void)ud;
  return (int64_t)pwrite(fd, buf, n, (off_t)off);
}

static int fsPxSync(void *ud, int fd) {
  (void)ud;
  return fsync(fd);
}

static int fsPxTruncate(void *ud, int fd, uint64_t size) {
  (void)ud;
  return ftruncate(fd, (off_t)size);
}

static int fsPxSize(void *ud, int fd, uint64_t *size) {
  struct stat sb;
  (void)ud;
  if (fstat(fd, &sb) != 0) return -1;
  *size = (uint64_t)sb.st_size;
  return 0;
}

static int fsPxClose(void *ud, int fd) {
  (void)ud;
  return close(fd);
}

static int fsPxStat(void *ud, const char *path, int flags, sl_fs_stat *out) {
  struct stat sb;
  (void)ud;
  if ((flags & SL_FS_NOFOLLOW ? lstat(path, &sb) : stat(path, &sb)) != 0) return -1;
  out->type = S_ISREG(sb.st_mode) ? SL_FS_FILE : S_ISDIR(sb.st_mode) ? SL_FS_DIR : SL_FS_OTHER;
  out->size = S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;
  return 0;
}

static int fsPxMkdir(void *ud, const char *path) {
  (void)ud;
  return mkdir(path, 0777);
}

static int fsPxRmdir(void *ud, const char *path) {
  (void)ud;
  return rmdir(path);
}

static int fsPxUnlink(void *ud, const char *path) {
  (void)ud;
  return unlink(path);
}

static int fsPxRename(void *ud, const char *from, const char *to) {
  (void)ud;
  return rename(from, to);
}

static int fsPxSyncDir(void *ud, const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;
  (void)ud;
  if (fd < 0) return -1;
  if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  close(fd);
  return 0;
}

static void *fsPxOpenDir(void *ud, const char *path) {
  (void)ud;
  return opendir(path);
}

static int fsPxReadDir(void *ud, void *dir, const char **name) {
  struct dirent *de;
  (void)ud;
  errno = 0;
  de = readdir((DIR *)dir);
  if (!de) return errno ? -1 : 0;
  *name = de->d_name;
  return 1;
}

static int fsPxCloseDir(void *ud, void *dir) {
  (void)ud;
  return closedir((DIR *)dir);
}

void slSnapFsInit(sl_fs *out, const sl_fs *fs) {
  if (fs) *out = *fs;
  else memset(out, 0, sizeof *out);
#define FS_DEFAULT(field, fn) if (!out->field) out->field = fn
  FS_DEFAULT(xOpen, fsPxOpen);
  FS_DEFAULT(xRead, fsPxRead);
  FS_DEFAULT(xWrite, fsPxWrite);
  FS_DEFAULT(xSync, fsPxSync);
  FS_DEFAULT(xTruncate, fsPxTruncate);
  FS_DEFAULT(xSize, fsPxSize);
  FS_DEFAULT(xClose, fsPxClose);
  FS_DEFAULT(xStat, fsPxStat);
  FS_DEFAULT(xMkdir, fsPxMkdir);
  FS_DEFAULT(xRmdir, fsPxRmdir);
  FS_DEFAULT(xUnlink, fsPxUnlink);
  FS_DEFAULT(xRename, fsPxRename);
  FS_DEFAULT(xSyncDir, fsPxSyncDir);
  FS_DEFAULT(xOpenDir, fsPxOpenDir);
  FS_DEFAULT(xReadDir, fsPxReadDir);
  FS_DEFAULT(xCloseDir, fsPxCloseDir);
#undef FS_DEFAULT
}

/* ------------------------------------------------------------------------ */
/* Helpers over a table                                                      */
/* ------------------------------------------------------------------------ */

static int fsErr(char *err, const char *what, const char *path) {
  int e = errno;
  return slError(err, slSnapErrnoRc(e), "cannot %s %s: %s", what, path, strerror(e));
}

int slSnapOpen(char *err, const sl_fs *fs, const char *path, int flags, int *fd) {
  int h;
  do {
    errno = 0;
    h = fs->xOpen(fs->ud, path, flags);
  } while (h < 0 && errno == EINTR);
  *fd = -1;
  if (h < 0) {
    if (errno == ENOENT && !(flags & SL_FS_CREATE))
      return slError(err, SL_NOTFOUND, "%s does not exist", path);
    return fsErr(err, flags & SL_FS_CREATE ? "create" : "open", path);
  }
  *fd = h;
  return SL_OK;
}

int slSnapClose(char *err, const sl_fs *fs, int fd, const char *path) {
  if (fd < 0) return SL_OK;
  if (fs->xClose(fs->ud, fd) != 0) return fsErr(err, "close", path);
  return SL_OK;
}

int slSnapCloseAfter(char *err, const sl_fs *fs, int fd, const char *path, int rc) {
  char ignored[SL_ERRMSG_MAX];
  int crc = slSnapClose(rc ? ignored : err, fs, fd, path);
  return rc ? rc : crc;
}

int slSnapSync(char *err, const sl_fs *fs, int fd, const char *path) {
  if (fs->xSync(fs->ud, fd) != 0) return fsErr(err, "sync", path);
  return SL_OK;
}

int slSnapTruncate(char *err, const sl_fs *fs, int fd, uint64_t size, const char *path) {
  if (fs->xTruncate(fs->ud, fd, size) != 0) return fsErr(err, "truncate", path);
  return SL_OK;
}

int slSnapFdSize(char *err, const sl_fs *fs, int fd, uint64_t *size, const char *path) {
  *size = 0;
  if (fs->xSize(fs->ud, fd, size) != 0) return fsErr(err, "look at", path);
  return SL_OK;
}

int slSnapRename(char *err, const sl_fs *fs, const char *from, const char *to) {
  if (fs->xRename(fs->ud, from, to) != 0) {
    int e = errno;
    return slError(err, slSnapErrnoRc(e), "cannot rename %s to %s: %s", from, to, strerror(e));
  }
  return SL_OK;
}

int slSnapStat(char *err, const sl_fs *fs, const char *path, int flags, sl_fs_stat *st) {
  memset(st, 0, sizeof *st);
  if (fs->xStat(fs->ud, path, flags, st) != 0) {
    if (errno == ENOENT) return slError(err, SL_NOTFOUND, "%s does not exist", path);
    return fsErr(err, "look at", path);
  }
  return SL_OK;
}

int slSnapMkdirs(char *err, const sl_fs *fs, const char *path, int durable) {
  char buf[4096];
  size_t n = strlen(path);
  sl_fs_stat sb;
  int rc;
  if (n == 0 || n >= sizeof buf) return slError(err, SL_MISUSE, "path '%s' is empty or too long", path);
  memcpy(buf, path, n + 1);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
  for (size_t i = 1; i <= n; i++) {
    int made;
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    made = fs->xMkdir(fs->ud, buf) == 0;
    if (!made && errno != EEXIST) return fsErr(err, "create directory", buf);
    rc = slSnapStat(err, fs, buf, 0, &sb);
    if (rc) return rc;
    if (sb.type != SL_FS_DIR)
      return slError(err, SL_IOERR, "cannot create directory %s: a file of that name exists", buf);
    /* a directory's name is durable once its parent is synced: the ones
    ** made here, and the directory asked for even when it was there
    ** already (a run may have made it and died before syncing) */
    if (durable && (made || i == n)) {
      rc = slSnapSyncParent(err, fs, buf);
      if (rc) return rc;
    }
    buf[i] = c;
  }
  return SL_OK;
}

int slSnapSyncDir(char *err, const sl_fs *fs, const char *path) {
  if (fs->xSyncDir(fs->ud, path) != 0) return fsErr(err, "sync directory", path);
  return SL_OK;
}

int slSnapSyncParent(char *err, const sl_fs *fs, const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) return slSnapSyncDir(err, fs, ".");
  if (snprintf(dir, sizeof dir, "%.*s", slash > path ? (int)(slash - path) : 1, path) >=
      (int)sizeof dir)
    return slError(err, SL_MISUSE, "path '%s' is too long", path);
  return slSnapSyncDir(err, fs, dir);
}

int slSnapPwrite(char *err, const sl_fs *fs, int fd, const void *p, size_t n, uint64_t off,
                 const char *path) {
  const unsigned char *b = p;
  while (n > 0) {
    int64_t k;
    errno = 0;
    k = fs->xWrite(fs->ud, fd, b, n, off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return fsErr(err, "write", path);
    }
    if (k == 0 || (uint64_t)k > n) return slError(err, SL_IOERR, "cannot write %s: no progress", path);
    b += k;
    n -= (size_t)k;
    off += (uint64_t)k;
  }
  return SL_OK;
}

int slSnapPread(char *err, const sl_fs *fs, int fd, void *p, size_t n, uint64_t off, size_t *got,
                const char *path) {
  unsigned char *b = p;
  *got = 0;
  while (n > 0) {
    int64_t k;
    errno = 0;
    k = fs->xRead(fs->ud, fd, b, n, off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return fsErr(err, "read", path);
    }
    if (k == 0) break;
    if ((uint64_t)k > n) return slError(err, SL_IOERR, "cannot read %s: the file layer returned "
                                        "more bytes than asked for", path);
    b += k;
    n -= (size_t)k;
    off += (uint64_t)k;
    *got += (size_t)k;
  }
  return SL_OK;
}

int slSnapWriteAtomic(char *err, const sl_fs *fs, const char *path, const void *p, size_t n,
                      int *renamed) {
  char tmp[4096], ignored[SL_ERRMSG_MAX];
  int fd, rc;
  *renamed = 0;
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return slError(err, SL_MISUSE, "path '%s' is too long", path);
  rc = slSnapOpen(err, fs, tmp, SL_FS_WRITE | SL_FS_CREATE | SL_FS_TRUNCATE, &fd);
  if (rc) return rc;
  rc = slSnapPwrite(err, fs, fd, p, n, 0, tmp);
  if (rc == SL_OK) rc = slSnapSync(err, fs, fd, tmp);
  rc = slSnapCloseAfter(err, fs, fd, tmp, rc);
  if (rc == SL_OK) rc = slSnapRename(err, fs, tmp, path);
  if (rc != SL_OK) {
    slSnapUnlink(ignored, fs, tmp);
    return rc;
  }
  *renamed = 1;
  return slSnapSyncParent(err, fs, path);
}

int slSnapUnlink(char *err, const sl_fs *fs, const char *path) {
  if (fs->xUnlink(fs->ud, path) != 0 && errno != ENOENT) return fsErr(err, "remove", path);
  return SL_OK;
}

int slSnapExists(char *err, const sl_fs *fs, const char *path, int *exists) {
  sl_fs_stat sb;
  int rc = slSnapStat(err, fs, path, SL_FS_NOFOLLOW, &sb);
  *exists = rc == SL_OK;
  return rc == SL_NOTFOUND ? SL_OK : rc;
}

int slSnapFileSize(char *err, const sl_fs *fs, const char *path, uint64_t *size) {
  sl_fs_stat sb;
  int rc = slSnapStat(err, fs, path, 0, &sb);
  *size = 0;
  if (rc) return rc;
  if (sb.type != SL_FS_FILE) return slError(err, SL_IOERR, "%s is not a regular file", path);
  *size = sb.size;
  return SL_OK;
}

int slSnapDirOpen(char *err, const sl_fs *fs, const char *path, slDir *d) {
  d->fs = fs;
  d->path = path;
  errno = 0;
  d->h = fs->xOpenDir(fs->ud, path);
  if (!d->h) {
    if (errno == ENOENT) return slError(err, SL_NOTFOUND, "directory %s does not exist", path);
    return fsErr(err, "read directory", path);
  }
  return SL_OK;
}

int slSnapDirNext(char *err, slDir *d, const char **name) {
  for (;;) {
    int r;
    errno = 0;
    r = d->fs->xReadDir(d->fs->ud, d->h, name);
    if (r < 0) return fsErr(err, "read directory", d->path);
    if (r == 0) return SL_DONE;
    if (strcmp(*name, ".") != 0 && strcmp(*name, "..") != 0) return SL_ROW;
  }
}

void slSnapDirClose(slDir *d) {
  if (d->h) d->fs->xCloseDir(d->fs->ud, d->h);
  d->h = NULL;
}

/* Walks a tree depth first: sums regular files, removes everything when
** `remove` is set. Symbolic links are removed, never followed. */
static int fsWalk(char *err, const sl_fs *fs, const sl_allocator *a, const char *path, int remove,
                  uint64_t *bytes, int depth) {
  sl_fs_stat sb;
  slDir d;
  const char *name;
  int rc = slSnapStat(err, fs, path, SL_FS_NOFOLLOW, &sb), r = SL_DONE;
  if (rc == SL_NOTFOUND) return SL_OK;
  if (rc) return rc;
  if (sb.type != SL_FS_DIR) {
    if (sb.type == SL_FS_FILE) *bytes += sb.size;
    return remove ? slSnapUnlink(err, fs, path) : SL_OK;
  }
  if (depth > 16) return slError(err, SL_IOERR, "directory %s is nested too deeply", path);
  rc = slSnapDirOpen(err, fs, path, &d);
  if (rc == SL_NOTFOUND) return SL_OK;
  if (rc) return rc;
  while (rc == SL_OK && (r = slSnapDirNext(err, &d, &name)) == SL_ROW) {
    char *child = slSnapPrintf(a, "%s/%s", path, name);
    if (!child) {
      rc = slError(err, SL_NOMEM, "out of memory");
      break;
    }
    rc = fsWalk(err, fs, a, child, remove, bytes, depth + 1);
    slFree(a, child);
  }
  if (rc == SL_OK && r != SL_DONE) rc = r;
  slSnapDirClose(&d);
  if (rc == SL_OK && remove && fs->xRmdir(fs->ud, path) != 0 && errno != ENOENT)
    rc = fsErr(err, "remove directory", path);
  return rc;
}

int slSnapRemoveTree(char *err, const sl_fs *fs, const sl_allocator *a, const char *path,
                     uint64_t *bytes) {
  uint64_t n = 0;
  int rc = fsWalk(err, fs, a, path, 1, &n, 0);
  if (bytes) *bytes = n;
  return rc;
}

int slSnapTreeBytes(char *err, const sl_fs *fs, const sl_allocator *a, const char *path,
                    uint64_t *bytes) {
  *bytes = 0;
  return fsWalk(err, fs, a, path, 0, bytes, 0);
}

char *slSnapPrintf(const sl_allocator *a, const char *fmt, ...) {
  va_list ap;
  int n;
  char *p;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  p = slMalloc(a, (size_t)n + 1);
  if (!p) return NULL;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

int slSnapIsName(const char *s) {
  size_t i;
  if (!s || !s[0] || s[0] == '.') return 0;
  for (i = 0; s[i]; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return 0;
    if (i >= 128) return 0;
  }
  return 1;
}

int slSnapParseU64(const char *s, size_t n, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned d;
    if (s[i] < '0' || s[i] > '9') return 0;
    d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  if (v > max) return 0;
  *out = v;
  return 1;
}
