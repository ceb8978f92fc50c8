/*
** fsutil.c — the file-system helpers of the snapshot module: directories
** made and synced, whole files written atomically, positioned reads and
** writes that retry, trees measured and removed, names and numbers checked.
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

static int fsErr(char *err, const char *what, const char *path) {
  int e = errno;
  return slError(err, slSnapErrnoRc(e), "cannot %s %s: %s", what, path, strerror(e));
}

int slSnapMkdirs(char *err, const char *path) {
  char buf[4096];
  size_t n = strlen(path);
  struct stat sb;
  if (n == 0 || n >= sizeof buf) return slError(err, SL_MISUSE, "path '%s' is empty or too long", path);
  memcpy(buf, path, n + 1);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return fsErr(err, "create directory", buf);
    if (stat(buf, &sb) != 0) return fsErr(err, "look at", buf);
    if (!S_ISDIR(sb.st_mode))
      return slError(err, SL_IOERR, "cannot create directory %s: a file of that name exists", buf);
    buf[i] = c;
  }
  return SL_OK;
}

int slSnapSyncDir(char *err, const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = SL_OK;
  if (fd < 0) return fsErr(err, "open directory", path);
  if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) rc = fsErr(err, "sync directory", path);
  close(fd);
  return rc;
}

int slSnapPwrite(char *err, int fd, const void *p, size_t n, uint64_t off, const char *path) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t k = pwrite(fd, b, n, (off_t)off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return fsErr(err, "write", path);
    }
    if (k == 0) return slError(err, SL_IOERR, "cannot write %s: no progress", path);
    b += k;
    n -= (size_t)k;
    off += (uint64_t)k;
  }
  return SL_OK;
}

int slSnapPread(char *err, int fd, void *p, size_t n, uint64_t off, size_t *got, const char *path) {
  unsigned char *b = p;
  *got = 0;
  while (n > 0) {
    ssize_t k = pread(fd, b, n, (off_t)off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return fsErr(err, "read", path);
    }
    if (k == 0) break;
    b += k;
    n -= (size_t)k;
    off += (uint64_t)k;
    *got += (size_t)k;
  }
  return SL_OK;
}

int slSnapWriteAtomic(char *err, const char *path, const void *p, size_t n) {
  char tmp[4096], dir[4096];
  const char *slash;
  int fd, rc;
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return slError(err, SL_MISUSE, "path '%s' is too long", path);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return fsErr(err, "create", tmp);
  rc = slSnapPwrite(err, fd, p, n, 0, tmp);
  if (rc == SL_OK && fsync(fd) != 0) rc = fsErr(err, "sync", tmp);
  if (close(fd) != 0 && rc == SL_OK) rc = fsErr(err, "close", tmp);
  if (rc == SL_OK && rename(tmp, path) != 0) rc = fsErr(err, "rename into place", path);
  if (rc != SL_OK) {
    unlink(tmp);
    return rc;
  }
  slash = strrchr(path, '/');
  if (!slash) return slSnapSyncDir(err, ".");
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) > 0 ? (int)(slash - path) : 1, path);
  return slSnapSyncDir(err, dir);
}

int slSnapUnlink(char *err, const char *path) {
  if (unlink(path) != 0 && errno != ENOENT) return fsErr(err, "remove", path);
  return SL_OK;
}

int slSnapExists(const char *path) {
  struct stat sb;
  return lstat(path, &sb) == 0;
}

int64_t slSnapFileSize(const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0) return -1;
  if (!S_ISREG(sb.st_mode)) {
    errno = EISDIR;
    return -1;
  }
  return (int64_t)sb.st_size;
}

/* Walks a tree depth first: sums regular files, removes everything when
** `remove` is set. Symbolic links are removed, never followed. */
static int fsWalk(char *err, const sl_allocator *a, const char *path, int remove, uint64_t *bytes,
                  int depth) {
  struct stat sb;
  DIR *d;
  struct dirent *de;
  int rc = SL_OK;
  if (lstat(path, &sb) != 0) return errno == ENOENT ? SL_OK : fsErr(err, "look at", path);
  if (!S_ISDIR(sb.st_mode)) {
    if (S_ISREG(sb.st_mode)) *bytes += (uint64_t)sb.st_size;
    if (remove && unlink(path) != 0 && errno != ENOENT) return fsErr(err, "remove", path);
    return SL_OK;
  }
  if (depth > 16) return slError(err, SL_IOERR, "directory %s is nested too deeply", path);
  d = opendir(path);
  if (!d) return fsErr(err, "open directory", path);
  while (rc == SL_OK && (errno = 0, de = readdir(d)) != NULL) {
    char *child;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    child = slSnapPrintf(a, "%s/%s", path, de->d_name);
    if (!child) {
      rc = slError(err, SL_NOMEM, "out of memory");
      break;
    }
    rc = fsWalk(err, a, child, remove, bytes, depth + 1);
    slFree(a, child);
  }
  closedir(d);
  if (rc == SL_OK && remove && rmdir(path) != 0 && errno != ENOENT)
    rc = fsErr(err, "remove directory", path);
  return rc;
}

int slSnapRemoveTree(char *err, const sl_allocator *a, const char *path, uint64_t *bytes) {
  uint64_t n = 0;
  int rc = fsWalk(err, a, path, 1, &n, 0);
  if (bytes) *bytes = n;
  return rc;
}

int slSnapTreeBytes(char *err, const sl_allocator *a, const char *path, uint64_t *bytes) {
  *bytes = 0;
  return fsWalk(err, a, path, 0, bytes, 0);
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
