/*
** test_rel_fs.h — the file layers of the I/O fault and power-loss tests: an
** sl_fs table over POSIX and an SQLite VFS over SQLite's default one, both
** calling a hook before and after every operation. The hook may fail an
** operation (it returns the errno to fail it with) or watch it (the
** power-loss model records what was synced). One instance per test process
** (tf_setup()); the VFS is registered as "tf".
**
** Everything here is static; paths are the ones the library passes.
*/
#ifndef SL_TEST_REL_FS_H
#define SL_TEST_REL_FS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "test.h"

/* The operations, as the hooks see them. */
enum {
  /* sl_fs */
  TF_OPEN, TF_READ, TF_WRITE, TF_SYNC, TF_TRUNCATE, TF_SIZE, TF_CLOSE, TF_STAT, TF_MKDIR,
  TF_RMDIR, TF_UNLINK, TF_RENAME, TF_SYNCDIR, TF_OPENDIR, TF_READDIR, TF_CLOSEDIR,
  /* the SQLite VFS */
  TV_OPEN, TV_DELETE, TV_READ, TV_WRITE, TV_TRUNCATE, TV_SYNC, TV_SIZE, TV_CLOSE,
  TF_NKINDS
};

static const char *const tf_kind_names[TF_NKINDS] = {
    "open",     "read",     "write",     "sync",      "truncate", "size",    "close",
    "stat",     "mkdir",    "rmdir",     "unlink",    "rename",   "syncdir", "opendir",
    "readdir",  "closedir", "vfs-open",  "vfs-delete", "vfs-read", "vfs-write",
    "vfs-truncate", "vfs-sync", "vfs-size", "vfs-close"};

#define TF_IS_VFS(kind) ((kind) >= TV_OPEN)

typedef struct tf_call {
  int kind;
  const char *path;  /* the path, or the path the file was opened with */
  const char *path2; /* rename: the new name */
  int fd;            /* sl_fs file operations */
  int flags;         /* TF_OPEN: SL_FS_*; TF_STAT: SL_FS_NOFOLLOW; TV_OPEN: SQLITE_OPEN_* */
  uint64_t off, n;
  int created;       /* after TF_OPEN, TV_OPEN: the file did not exist before */
  int dirsync;       /* TV_SYNC, TV_DELETE: SQLite's unix VFS syncs the directory
                        too (the first sync of a journal or WAL it created, a
                        delete asked to) */
  int failed;        /* after: the operation failed */
} tf_call;

#define TF_CALL(k, p, p2, d) {.kind = (k), .path = (p), .path2 = (p2), .fd = (d)}

typedef struct tf_hooks {
  /* Before an operation: 0 to perform it, or an errno to fail it with (a
  ** failed close still closes). */
  int (*before)(void *ud, tf_call *c);
  /* After an operation that was performed. */
  void (*after)(void *ud, tf_call *c);
  void *ud;
} tf_hooks;

#define TF_MAXFD 4096

typedef struct tf_ctx {
  tf_hooks hooks;
  pthread_mutex_t mu; /* fd_path */
  char *fd_path[TF_MAXFD];
  sl_fs fs;
  sqlite3_vfs vfs;
  sqlite3_vfs *real;
  int ready;
  int fake_sync;             /* xSync and xSyncDir do not call fsync(): the
                                tests that use this decide what a sync means
                                (faster on a real disk) */
} tf_ctx;

static tf_ctx tf_g;

/* ---- running an operation through the hooks -------------------------------- */

static int tf_before(tf_call *c) {
  return tf_g.hooks.before ? tf_g.hooks.before(tf_g.hooks.ud, c) : 0;
}

static void tf_after(tf_call *c, int failed) {
  c->failed = failed;
  if (tf_g.hooks.after) tf_g.hooks.after(tf_g.hooks.ud, c);
}

/* The path fd was opened with, copied into buf (4096 bytes). */
static const char *tf_fd_path(int fd, char *buf) {
  pthread_mutex_lock(&tf_g.mu);
  snprintf(buf, 4096, "%s", fd >= 0 && fd < TF_MAXFD && tf_g.fd_path[fd] ? tf_g.fd_path[fd] : "?");
  pthread_mutex_unlock(&tf_g.mu);
  return buf;
}

static void tf_fd_set(int fd, const char *path) {
  pthread_mutex_lock(&tf_g.mu);
  if (fd >= 0 && fd < TF_MAXFD) {
    free(tf_g.fd_path[fd]);
    tf_g.fd_path[fd] = path ? strdup(path) : NULL;
  }
  pthread_mutex_unlock(&tf_g.mu);
}

/* ---- the sl_fs table ---------------------------------------------------- */

static int tf_open(void *ud, const char *path, int flags) {
  tf_call c = TF_CALL(TF_OPEN, path, NULL, -1);
  c.flags = flags;
  int o = O_CLOEXEC, fd, e;
  struct stat sb;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  if ((flags & SL_FS_READ) && (flags & SL_FS_WRITE)) o |= O_RDWR;
  else if (flags & SL_FS_WRITE) o |= O_WRONLY;
  else o |= O_RDONLY;
  if (flags & SL_FS_CREATE) o |= O_CREAT;
  if (flags & SL_FS_TRUNCATE) o |= O_TRUNC;
  if ((flags & SL_FS_CREATE) && lstat(path, &sb) != 0) c.created = 1;
  fd = open(path, o, 0666);
  e = errno;
  c.fd = fd;
  if (fd >= 0) tf_fd_set(fd, path);
  tf_after(&c, fd < 0);
  errno = e;
  return fd;
}

static int64_t tf_read(void *ud, int fd, void *buf, size_t n, uint64_t off) {
  char pbuf[4096];
  tf_call c = TF_CALL(TF_READ, tf_fd_path(fd, pbuf), NULL, fd);
  c.off = off;
  c.n = n;
  ssize_t k;
  int e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  k = pread(fd, buf, n, (off_t)off);
  e = errno;
  tf_after(&c, k < 0);
  errno = e;
  return (int64_t)k;
}

static int64_t tf_write(void *ud, int fd, const void *buf, size_t n, uint64_t off) {
  char pbuf[4096];
  tf_call c = TF_CALL(TF_WRITE, tf_fd_path(fd, pbuf), NULL, fd);
  c.off = off;
  c.n = n;
  ssize_t k;
  int e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  k = pwrite(fd, buf, n, (off_t)off);
  e = errno;
  tf_after(&c, k < 0);
  errno = e;
  return (int64_t)k;
}

static int tf_sync(void *ud, int fd) {
  char pbuf[4096];
  tf_call c = TF_CALL(TF_SYNC, tf_fd_path(fd, pbuf), NULL, fd);
  int r, e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  r = tf_g.fake_sync ? 0 : fsync(fd);
  e = errno;
  tf_after(&c, r != 0);
  errno = e;
  return r;
}

static int tf_truncate(void *ud, int fd, uint64_t size) {
  char pbuf[4096];
  tf_call c = TF_CALL(TF_TRUNCATE, tf_fd_path(fd, pbuf), NULL, fd);
  c.off = size;
  int r, e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  r = ftruncate(fd, (off_t)size);
  e = errno;
  tf_after(&c, r != 0);
  errno = e;
  return r;
}

static int tf_size(void *ud, int fd, uint64_t *size) {
  char pbuf[4096];
  tf_call c = TF_CALL(TF_SIZE, tf_fd_path(fd, pbuf), NULL, fd);
  struct stat sb;
  int r, e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  r = fstat(fd, &sb);
  e = errno;
  if (r == 0) *size = (uint64_t)sb.st_size;
  tf_after(&c, r != 0);
  errno = e;
  return r;
}

static int tf_close(void *ud, int fd) {
  char pbuf[4096];
  tf_call c = TF_CALL(TF_CLOSE, tf_fd_path(fd, pbuf), NULL, fd);
  int r, e, fail = tf_before(&c);
  (void)ud;
  tf_fd_set(fd, NULL); /* before the number can be handed out again */
  r = close(fd);
  e = errno;
  tf_after(&c, r != 0);
  errno = fail ? fail : e;
  return fail ? -1 : r;
}

static int tf_stat(void *ud, const char *path, int flags, sl_fs_stat *out) {
  tf_call c = TF_CALL(TF_STAT, path, NULL, -1);
  c.flags = flags;
  struct stat sb;
  int r, e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  r = flags & SL_FS_NOFOLLOW ? lstat(path, &sb) : stat(path, &sb);
  e = errno;
  if (r == 0) {
    out->type = S_ISREG(sb.st_mode) ? SL_FS_FILE : S_ISDIR(sb.st_mode) ? SL_FS_DIR : SL_FS_OTHER;
    out->size = S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;
  }
  tf_after(&c, r != 0);
  errno = e;
  return r;
}

static int tf_path_op(int kind, const char *path, const char *path2) {
  tf_call c = TF_CALL(kind, path, path2, -1);
  int r, e;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  switch (kind) {
    case TF_MKDIR: r = mkdir(path, 0777); break;
    case TF_RMDIR: r = rmdir(path); break;
    case TF_UNLINK: r = unlink(path); break;
    case TF_RENAME: r = rename(path, path2); break;
    default: {
      int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      r = fd < 0 ? -1 : tf_g.fake_sync ? 0 : fsync(fd);
      e = errno;
      if (fd >= 0) close(fd);
      errno = e;
      if (r != 0 && (errno == EINVAL || errno == EROFS)) r = 0;
      break;
    }
  }
  e = errno;
  tf_after(&c, r != 0);
  errno = e;
  return r;
}

static int tf_mkdir(void *ud, const char *path) {
  (void)ud;
  return tf_path_op(TF_MKDIR, path, NULL);
}
static int tf_rmdir(void *ud, const char *path) {
  (void)ud;
  return tf_path_op(TF_RMDIR, path, NULL);
}
static int tf_unlink(void *ud, const char *path) {
  (void)ud;
  return tf_path_op(TF_UNLINK, path, NULL);
}
static int tf_rename(void *ud, const char *from, const char *to) {
  (void)ud;
  return tf_path_op(TF_RENAME, from, to);
}
static int tf_syncdir(void *ud, const char *path) {
  (void)ud;
  return tf_path_op(TF_SYNCDIR, path, NULL);
}

typedef struct tf_dir {
  DIR *d;
  char path[4096];
} tf_dir;

static void *tf_opendir(void *ud, const char *path) {
  tf_call c = TF_CALL(TF_OPENDIR, path, NULL, -1);
  tf_dir *t;
  int e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return NULL;
  }
  t = malloc(sizeof *t);
  if (!t) {
    tf_after(&c, 1);
    errno = ENOMEM;
    return NULL;
  }
  snprintf(t->path, sizeof t->path, "%s", path);
  t->d = opendir(path);
  e = errno;
  if (!t->d) {
    free(t);
    t = NULL;
  }
  tf_after(&c, t == NULL);
  errno = e;
  return t;
}

static int tf_readdir(void *ud, void *dir, const char **name) {
  tf_dir *t = dir;
  tf_call c = TF_CALL(TF_READDIR, t->path, NULL, -1);
  struct dirent *de;
  int e;
  (void)ud;
  if ((e = tf_before(&c)) != 0) {
    errno = e;
    return -1;
  }
  errno = 0;
  de = readdir(t->d);
  e = errno;
  tf_after(&c, !de && e);
  if (!de) {
    errno = e;
    return e ? -1 : 0;
  }
  *name = de->d_name;
  return 1;
}

static int tf_closedir(void *ud, void *dir) {
  tf_dir *t = dir;
  tf_call c = TF_CALL(TF_CLOSEDIR, t->path, NULL, -1);
  int fail = tf_before(&c), r;
  (void)ud;
  r = closedir(t->d);
  tf_after(&c, r != 0);
  free(t);
  if (fail) {
    errno = fail;
    return -1;
  }
  return r;
}

/* ---- the SQLite VFS --------------------------------------------------------- */

typedef struct tv_file {
  sqlite3_file base;
  sqlite3_file *real;        /* right after this struct */
  char path[4096];
  int dirsync;               /* the first sync also syncs the directory */
} tv_file;

/* The SQLite code of a failed operation: SQLITE_FULL for ENOSPC where it
** can mean that (writing, truncating, syncing), as SQLite's unix VFS does. */
static int tv_rc(int e, int io) {
  if (e == ENOSPC && (io == SQLITE_IOERR_WRITE || io == SQLITE_IOERR_TRUNCATE ||
                      io == SQLITE_IOERR_FSYNC))
    return SQLITE_FULL;
  if (e == ENOMEM) return SQLITE_NOMEM;
  return io;
}

static int tv_io(tv_file *f, int kind, uint64_t off, uint64_t n, int dirsync, int io_rc,
                 int (*op)(tv_file *, void *), void *arg) {
  tf_call c = TF_CALL(kind, f->path, NULL, -1);
  c.off = off;
  c.n = n;
  c.dirsync = dirsync;
  int e = tf_before(&c), rc;
  if (e) return tv_rc(e, io_rc);
  rc = op(f, arg);
  tf_after(&c, rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ);
  return rc;
}

typedef struct tv_args {
  void *buf;
  const void *cbuf;
  int amt;
  sqlite3_int64 off;
  int flags;
  sqlite3_int64 *size;
} tv_args;

static int tv_do_read(tv_file *f, void *a) {
  tv_args *x = a;
  return f->real->pMethods->xRead(f->real, x->buf, x->amt, x->off);
}
static int tv_do_write(tv_file *f, void *a) {
  tv_args *x = a;
  return f->real->pMethods->xWrite(f->real, x->cbuf, x->amt, x->off);
}
static int tv_do_truncate(tv_file *f, void *a) {
  tv_args *x = a;
  return f->real->pMethods->xTruncate(f->real, x->off);
}
static int tv_do_sync(tv_file *f, void *a) {
  tv_args *x = a;
  return tf_g.fake_sync ? SQLITE_OK : f->real->pMethods->xSync(f->real, x->flags);
}
static int tv_do_size(tv_file *f, void *a) {
  tv_args *x = a;
  return f->real->pMethods->xFileSize(f->real, x->size);
}

static int tv_close(sqlite3_file *pf) {
  tv_file *f = (tv_file *)pf;
  tf_call c = TF_CALL(TV_CLOSE, f->path, NULL, -1);
  int rc;
  tf_before(&c); /* a close is not failed */
  rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
  tf_after(&c, rc != SQLITE_OK);
  return rc;
}
static int tv_read(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off) {
  tv_args x = {buf, NULL, amt, off, 0, NULL};
  return tv_io((tv_file *)pf, TV_READ, (uint64_t)off, (uint64_t)amt, 0, SQLITE_IOERR_READ,
               tv_do_read, &x);
}
static int tv_write(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off) {
  tv_args x = {NULL, buf, amt, off, 0, NULL};
  return tv_io((tv_file *)pf, TV_WRITE, (uint64_t)off, (uint64_t)amt, 0, SQLITE_IOERR_WRITE,
               tv_do_write, &x);
}
static int tv_truncate(sqlite3_file *pf, sqlite3_int64 size) {
  tv_args x = {NULL, NULL, 0, size, 0, NULL};
  return tv_io((tv_file *)pf, TV_TRUNCATE, (uint64_t)size, 0, 0, SQLITE_IOERR_TRUNCATE,
               tv_do_truncate, &x);
}
static int tv_sync(sqlite3_file *pf, int flags) {
  tv_file *f = (tv_file *)pf;
  tv_args x = {NULL, NULL, 0, 0, flags, NULL};
  int rc = tv_io(f, TV_SYNC, 0, 0, f->dirsync, SQLITE_IOERR_FSYNC, tv_do_sync, &x);
  if (rc == SQLITE_OK) f->dirsync = 0;
  return rc;
}
static int tv_file_size(sqlite3_file *pf, sqlite3_int64 *size) {
  tv_args x = {NULL, NULL, 0, 0, 0, size};
  return tv_io((tv_file *)pf, TV_SIZE, 0, 0, 0, SQLITE_IOERR_FSTAT, tv_do_size, &x);
}
static int tv_lock(sqlite3_file *pf, int l) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xLock(f->real, l);
}
static int tv_unlock(sqlite3_file *pf, int l) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xUnlock(f->real, l);
}
static int tv_check_reserved(sqlite3_file *pf, int *out) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xCheckReservedLock(f->real, out);
}
static int tv_file_control(sqlite3_file *pf, int op, void *arg) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xFileControl(f->real, op, arg);
}
static int tv_sector_size(sqlite3_file *pf) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xSectorSize(f->real);
}
static int tv_device(sqlite3_file *pf) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xDeviceCharacteristics(f->real);
}
static int tv_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}
static int tv_shm_lock(sqlite3_file *pf, int off, int n, int flags) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xShmLock(f->real, off, n, flags);
}
static void tv_shm_barrier(sqlite3_file *pf) {
  tv_file *f = (tv_file *)pf;
  f->real->pMethods->xShmBarrier(f->real);
}
static int tv_shm_unmap(sqlite3_file *pf, int del) {
  tv_file *f = (tv_file *)pf;
  return f->real->pMethods->xShmUnmap(f->real, del);
}

static const sqlite3_io_methods tv_methods = {
    2,           tv_close,          tv_read,         tv_write,          tv_truncate,
    tv_sync,     tv_file_size,      tv_lock,         tv_unlock,         tv_check_reserved,
    tv_file_control, tv_sector_size, tv_device,      tv_shm_map,        tv_shm_lock,
    tv_shm_barrier, tv_shm_unmap,   NULL,            NULL};

static int tv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out) {
  tv_file *f = (tv_file *)pf;
  tf_call c = TF_CALL(TV_OPEN, name ? name : "", NULL, -1);
  c.flags = flags;
  struct stat sb;
  int rc, e, created = 0;
  (void)vfs;
  memset(f, 0, sizeof *f);
  f->real = (sqlite3_file *)(f + 1);
  snprintf(f->path, sizeof f->path, "%s", name ? name : "");
  c.path = f->path;
  if ((e = tf_before(&c)) != 0) return e == ENOMEM ? SQLITE_NOMEM : SQLITE_CANTOPEN;
  if (name && (flags & SQLITE_OPEN_CREATE) && lstat(name, &sb) != 0) created = 1;
  rc = tf_g.real->xOpen(tf_g.real, name, f->real, flags, out);
  if (rc == SQLITE_OK && created) {
    c.created = 1;
    if (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL)) f->dirsync = 1;
  }
  tf_after(&c, rc != SQLITE_OK);
  f->base.pMethods = rc == SQLITE_OK ? &tv_methods : NULL;
  return rc;
}

static int tv_delete(sqlite3_vfs *vfs, const char *name, int syncdir) {
  tf_call c = TF_CALL(TV_DELETE, name, NULL, -1);
  int e, rc;
  (void)vfs;
  c.dirsync = syncdir;
  e = tf_before(&c);
  if (e) return tv_rc(e, SQLITE_IOERR_DELETE);
  rc = tf_g.real->xDelete(tf_g.real, name, syncdir);
  tf_after(&c, rc != SQLITE_OK && rc != SQLITE_IOERR_DELETE_NOENT);
  return rc;
}

static int tv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  (void)vfs;
  return tf_g.real->xAccess(tf_g.real, name, flags, out);
}
static int tv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  return tf_g.real->xFullPathname(tf_g.real, name, n, out);
}
static void *tv_dlopen(sqlite3_vfs *vfs, const char *name) {
  (void)vfs;
  (void)name;
  return NULL;
}
static void tv_dlerror(sqlite3_vfs *vfs, int n, char *msg) {
  (void)vfs;
  sqlite3_snprintf(n, msg, "%s", "no extensions");
}
static void (*tv_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void) {
  (void)vfs;
  (void)h;
  (void)sym;
  return NULL;
}
static void tv_dlclose(sqlite3_vfs *vfs, void *h) {
  (void)vfs;
  (void)h;
}
static int tv_randomness(sqlite3_vfs *vfs, int n, char *out) {
  (void)vfs;
  return tf_g.real->xRandomness(tf_g.real, n, out);
}
static int tv_sleep(sqlite3_vfs *vfs, int us) {
  (void)vfs;
  return tf_g.real->xSleep(tf_g.real, us);
}
static int tv_current_time(sqlite3_vfs *vfs, double *out) {
  (void)vfs;
  return tf_g.real->xCurrentTime(tf_g.real, out);
}
static int tv_last_error(sqlite3_vfs *vfs, int n, char *out) {
  (void)vfs;
  return tf_g.real->xGetLastError(tf_g.real, n, out);
}
static int tv_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
  (void)vfs;
  return tf_g.real->xCurrentTimeInt64(tf_g.real, out);
}

/* Sets the hooks (NULL: none) and, the first time, the table and the VFS.
** Syncs are passed to the hooks but not to the disk. */
static inline void tf_setup(const tf_hooks *h) {
  if (h) tf_g.hooks = *h;
  else memset(&tf_g.hooks, 0, sizeof tf_g.hooks);
  tf_g.fake_sync = 1;
  if (tf_g.ready) return;
  pthread_mutex_init(&tf_g.mu, NULL);
  tf_g.fs.xOpen = tf_open;
  tf_g.fs.xRead = tf_read;
  tf_g.fs.xWrite = tf_write;
  tf_g.fs.xSync = tf_sync;
  tf_g.fs.xTruncate = tf_truncate;
  tf_g.fs.xSize = tf_size;
  tf_g.fs.xClose = tf_close;
  tf_g.fs.xStat = tf_stat;
  tf_g.fs.xMkdir = tf_mkdir;
  tf_g.fs.xRmdir = tf_rmdir;
  tf_g.fs.xUnlink = tf_unlink;
  tf_g.fs.xRename = tf_rename;
  tf_g.fs.xSyncDir = tf_syncdir;
  tf_g.fs.xOpenDir = tf_opendir;
  tf_g.fs.xReadDir = tf_readdir;
  tf_g.fs.xCloseDir = tf_closedir;
  tf_g.fs.ud = &tf_g;
  tf_g.real = sqlite3_vfs_find(NULL);
  ASSERT(tf_g.real != NULL && tf_g.real->iVersion >= 2);
  tf_g.vfs.iVersion = 2;
  tf_g.vfs.szOsFile = (int)sizeof(tv_file) + tf_g.real->szOsFile;
  tf_g.vfs.mxPathname = tf_g.real->mxPathname;
  tf_g.vfs.zName = "tf";
  tf_g.vfs.xOpen = tv_open;
  tf_g.vfs.xDelete = tv_delete;
  tf_g.vfs.xAccess = tv_access;
  tf_g.vfs.xFullPathname = tv_full_pathname;
  tf_g.vfs.xDlOpen = tv_dlopen;
  tf_g.vfs.xDlError = tv_dlerror;
  tf_g.vfs.xDlSym = tv_dlsym;
  tf_g.vfs.xDlClose = tv_dlclose;
  tf_g.vfs.xRandomness = tv_randomness;
  tf_g.vfs.xSleep = tv_sleep;
  tf_g.vfs.xCurrentTime = tv_current_time;
  tf_g.vfs.xGetLastError = tv_last_error;
  tf_g.vfs.xCurrentTimeInt64 = tv_current_time64;
  ASSERT(sqlite3_vfs_register(&tf_g.vfs, 0) == SQLITE_OK);
  tf_g.ready = 1;
}

/* ---- trees of files ---------------------------------------------------- */

static inline int tf_cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* FNV-1a (64 bits) of a file's bytes: an identity, not the format's CRC. */
static inline uint64_t tf_file_hash(const char *path, uint64_t *size) {
  unsigned char buf[65536];
  uint64_t h = 0xcbf29ce484222325ull;
  ssize_t k;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  *size = 0;
  ASSERT_MSG(fd >= 0, "cannot open %s: %s", path, strerror(errno));
  while ((k = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < k; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
    *size += (uint64_t)k;
  }
  ASSERT(k == 0);
  close(fd);
  return h;
}

static inline void tf_tree_walk(const char *root, const char *rel, char ***v, size_t *n,
                                size_t *cap) {
  char path[8192];
  DIR *d;
  struct dirent *de;
  snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
  d = opendir(path);
  if (!d) return;
  while ((de = readdir(d)) != NULL) {
    char sub[8192], full[12300], line[8400];
    struct stat sb;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
    snprintf(full, sizeof full, "%s/%s", root, sub);
    ASSERT(lstat(full, &sb) == 0);
    if (S_ISDIR(sb.st_mode)) {
      snprintf(line, sizeof line, "%s/", sub);
    } else {
      uint64_t size = 0, h = tf_file_hash(full, &size);
      snprintf(line, sizeof line, "%s %llu %016llx", sub, (unsigned long long)size,
               (unsigned long long)h);
    }
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 64;
      *v = realloc(*v, sizeof **v * *cap);
      ASSERT(*v);
    }
    (*v)[(*n)++] = strdup(line);
    if (S_ISDIR(sb.st_mode)) tf_tree_walk(root, sub, v, n, cap);
  }
  closedir(d);
}

/* Every directory and file under root, sorted, a line each: "dir/" or
** "file size hash" (malloc'd; "" when root does not exist). */
static inline char *tf_tree(const char *root) {
  char **v = NULL, *out;
  size_t n = 0, cap = 0, len = 1, at = 0;
  tf_tree_walk(root, "", &v, &n, &cap);
  if (n) qsort(v, n, sizeof *v, tf_cmp_str);
  for (size_t i = 0; i < n; i++) len += strlen(v[i]) + 1;
  out = malloc(len);
  ASSERT(out);
  out[0] = 0;
  for (size_t i = 0; i < n; i++) {
    at += (size_t)sprintf(out + at, "%s\n", v[i]);
    free(v[i]);
  }
  free(v);
  return out;
}

/* rm -rf root. */
static inline void tf_tree_remove(const char *root) {
  struct stat sb;
  DIR *d;
  struct dirent *de;
  if (lstat(root, &sb) != 0) return;
  if (!S_ISDIR(sb.st_mode)) {
    ASSERT_MSG(unlink(root) == 0, "cannot remove %s: %s", root, strerror(errno));
    return;
  }
  d = opendir(root);
  ASSERT(d);
  while ((de = readdir(d)) != NULL) {
    char sub[8192];
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(sub, sizeof sub, "%s/%s", root, de->d_name);
    tf_tree_remove(sub);
  }
  closedir(d);
  ASSERT_MSG(rmdir(root) == 0, "cannot remove %s: %s", root, strerror(errno));
}

/* Copies the file src to dst (created or replaced). */
static inline void tf_copy_file(const char *src, const char *dst) {
  char buf[65536];
  ssize_t k;
  int in = open(src, O_RDONLY | O_CLOEXEC), out;
  ASSERT_MSG(in >= 0, "cannot open %s: %s", src, strerror(errno));
  out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  ASSERT_MSG(out >= 0, "cannot create %s: %s", dst, strerror(errno));
  while ((k = read(in, buf, sizeof buf)) > 0) ASSERT(write(out, buf, (size_t)k) == k);
  ASSERT(k == 0);
  close(in);
  close(out);
}

/* cp -r src dst (dst must not exist; a missing src copies nothing). */
static inline void tf_tree_copy(const char *src, const char *dst) {
  struct stat sb;
  DIR *d;
  struct dirent *de;
  if (lstat(src, &sb) != 0) return;
  if (!S_ISDIR(sb.st_mode)) {
    tf_copy_file(src, dst);
    return;
  }
  ASSERT_MSG(mkdir(dst, 0777) == 0, "cannot create %s: %s", dst, strerror(errno));
  d = opendir(src);
  ASSERT(d);
  while ((de = readdir(d)) != NULL) {
    char a[8192], b[8192];
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(a, sizeof a, "%s/%s", src, de->d_name);
    snprintf(b, sizeof b, "%s/%s", dst, de->d_name);
    tf_tree_copy(a, b);
  }
  closedir(d);
}

/* Frees the path table (the VFS stays registered for the process). */
static inline void tf_teardown(void) {
  if (!tf_g.ready) return;
  pthread_mutex_lock(&tf_g.mu);
  for (int i = 0; i < TF_MAXFD; i++) {
    free(tf_g.fd_path[i]);
    tf_g.fd_path[i] = NULL;
  }
  pthread_mutex_unlock(&tf_g.mu);
  memset(&tf_g.hooks, 0, sizeof tf_g.hooks);
}

#endif
