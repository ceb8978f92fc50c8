/*
** chkdir.c — a checkpoint directory: chk-<n>/ and savepoints/<name>/ of
** snapshot files, garbage removal at open, publication by an atomically
** written MANIFEST, retention by count and bytes, and the listing.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"

#define CD_MAX_RAW_DEFAULT (64ull << 30)

void sl_chkdir_config_init(sl_chkdir_config *cfg) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->keep = 2;
  cfg->max_raw_bytes = CD_MAX_RAW_DEFAULT;
}

int slSnapCdErr(sl_chkdir *cd, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  slErrorV(cd->errmsg, rc, fmt, ap);
  va_end(ap);
  return rc;
}

void slSnapReport(sl_chkdir *cd, int rc, const char *fmt, ...) {
  char msg[SL_ERRMSG_MAX * 2];
  va_list ap;
  if (!cd->cfg.report) return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cd->cfg.report(cd->cfg.report_ud, rc, msg);
}

char *slSnapEntryDir(sl_chkdir *cd, int64_t id, const char *savepoint) {
  if (savepoint) return slSnapPrintf(&cd->alloc, "%s/savepoints/%s", cd->dir, savepoint);
  return slSnapPrintf(&cd->alloc, "%s/chk-%lld", cd->dir, (long long)id);
}

/* Checks a handle at the API boundary and clears its message. */
static int cdUsable(sl_chkdir *cd) {
  if (!cd || cd->hdr.magic != SL_MAGIC_CHKDIR) return SL_MISUSE;
  /* a handle whose open failed before it had its directory */
  if (!cd->dir) return slSnapCdErr(cd, SL_MISUSE, "the checkpoint directory was not opened");
  cd->errmsg[0] = 0;
  return SL_OK;
}

/* Checks id / savepoint arguments. */
static int cdCheckWhich(sl_chkdir *cd, const char *call, int64_t id, const char *savepoint) {
  if (savepoint && !slSnapIsName(savepoint))
    return slSnapCdErr(cd, SL_MISUSE, "%s: savepoint name '%s' is not 1..128 characters of "
                       "[A-Za-z0-9_.-] not starting with '.'", call, savepoint);
  if (!savepoint && id < 1)
    return slSnapCdErr(cd, SL_MISUSE, "%s: checkpoint id %lld is not >= 1", call, (long long)id);
  return SL_OK;
}

/* ------------------------------------------------------------------------ */
/* Scanning the directory                                                    */
/* ------------------------------------------------------------------------ */

typedef struct cdItem {
  int64_t id;
  int kind;
  char *name;                /* savepoint name */
  char *path;
  int complete, valid;
  int64_t time_ms;
  uint64_t bytes;
} cdItem;

typedef struct cdScan {
  cdItem *v;
  int n, cap;
} cdScan;

static void cdScanFree(sl_chkdir *cd, cdScan *s) {
  for (int i = 0; i < s->n; i++) {
    slFree(&cd->alloc, s->v[i].name);
    slFree(&cd->alloc, s->v[i].path);
  }
  slFree(&cd->alloc, s->v);
  memset(s, 0, sizeof *s);
}

static int cdItemCmp(const void *a, const void *b) {
  const cdItem *x = a, *y = b;
  if (x->kind != y->kind) return x->kind - y->kind;
  if (x->kind == SL_SAVEPOINT) return strcmp(x->name, y->name);
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Looks at one entry directory: MANIFEST present and parsing, bytes. */
static int cdLook(sl_chkdir *cd, cdItem *it, int bytes) {
  char *mf = slSnapPrintf(&cd->alloc, "%s/MANIFEST", it->path);
  char why[SL_ERRMSG_MAX];
  slManifest m;
  int rc;
  if (!mf) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  rc = slSnapExists(why, &cd->fs, mf, &it->complete);
  if (rc == SL_OK && it->complete) {
    rc = slSnapMfLoad(why, &cd->fs, &cd->alloc, mf, &m);
    if (rc == SL_NOTFOUND) it->complete = 0; /* removed meanwhile */
    /* a MANIFEST that does not parse is a finding (valid = 0); one that
    ** cannot be read is an error: nothing may be decided on it */
    if (rc != SL_OK && rc != SL_CORRUPT && rc != SL_MISMATCH && rc != SL_NOTFOUND) {
      slFree(&cd->alloc, mf);
      return slSnapCdErr(cd, rc, "%s", why);
    }
    if (rc == SL_OK && m.kind == it->kind &&
        (it->kind == SL_CHECKPOINT ? m.id == it->id : strcmp(m.name, it->name) == 0)) {
      it->valid = 1;
      it->time_ms = m.time_ms;
      if (it->kind == SL_SAVEPOINT) it->id = m.id;
    }
    if (rc == SL_OK) slSnapMfFree(&cd->alloc, &m);
  } else if (rc) {
    slFree(&cd->alloc, mf);
    return slSnapCdErr(cd, rc, "%s", why);
  }
  slFree(&cd->alloc, mf);
  if (bytes) {
    rc = slSnapTreeBytes(why, &cd->fs, &cd->alloc, it->path, &it->bytes);
    if (rc) return slSnapCdErr(cd, rc, "%s", why);
  }
  return SL_OK;
}

static int cdAdd(sl_chkdir *cd, cdScan *s, int kind, int64_t id, const char *name, char *path) {
  cdItem *it;
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 16;
    cdItem *v = slRealloc(&cd->alloc, s->v, sizeof *v * (size_t)cap);
    if (!v) {
      slFree(&cd->alloc, path);
      return slSnapCdErr(cd, SL_NOMEM, "out of memory");
    }
    s->v = v;
    s->cap = cap;
  }
  it = &s->v[s->n++];
  memset(it, 0, sizeof *it);
  it->kind = kind;
  it->id = id;
  it->path = path;
  if (name) {
    it->name = slStrdup(&cd->alloc, name);
    if (!it->name) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  }
  return SL_OK;
}

/* Lists chk-<n> directories (kind SL_CHECKPOINT) and savepoints, sorted. */
static int cdList(sl_chkdir *cd, cdScan *s, int bytes) {
  slDir d;
  const char *name;
  char *spdir = NULL;
  int rc = SL_OK, r = SL_DONE;
  memset(s, 0, sizeof *s);
  for (int pass = 0; pass < 2 && rc == SL_OK; pass++) {
    const char *dir = cd->dir;
    char why[SL_ERRMSG_MAX];
    if (pass == 1) {
      spdir = slSnapPrintf(&cd->alloc, "%s/savepoints", cd->dir);
      if (!spdir) {
        rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
        break;
      }
      dir = spdir;
    }
    rc = slSnapDirOpen(why, &cd->fs, dir, &d);
    if (rc == SL_NOTFOUND && pass == 1) { /* no savepoint yet */
      rc = SL_OK;
      break;
    }
    if (rc) {
      slSnapCdErr(cd, rc, "%s", why);
      break;
    }
    while (rc == SL_OK && (r = slSnapDirNext(cd->errmsg, &d, &name)) == SL_ROW) {
      uint64_t id = 0;
      sl_fs_stat sb;
      char *path;
      int src;
      if (pass == 0) {
        if (strncmp(name, "chk-", 4) != 0 ||
            !slSnapParseU64(name + 4, strlen(name + 4), (uint64_t)INT64_MAX, &id) || id < 1)
          continue;
      } else if (!slSnapIsName(name)) {
        continue;
      }
      path = slSnapPrintf(&cd->alloc, "%s/%s", dir, name);
      if (!path) {
        rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
        break;
      }
      /* an entry gone since the listing is skipped without a message */
      src = slSnapStat(why, &cd->fs, path, SL_FS_NOFOLLOW, &sb);
      if (src != SL_OK || sb.type != SL_FS_DIR) {
        slFree(&cd->alloc, path);
        if (src != SL_OK && src != SL_NOTFOUND) rc = slSnapCdErr(cd, src, "%s", why);
        continue;
      }
      rc = cdAdd(cd, s, pass == 0 ? SL_CHECKPOINT : SL_SAVEPOINT, (int64_t)id,
                 pass == 0 ? NULL : name, path);
    }
    if (rc == SL_OK && r != SL_DONE) rc = r;
    slSnapDirClose(&d);
  }
  slFree(&cd->alloc, spdir);
  for (int i = 0; i < s->n && rc == SL_OK; i++) rc = cdLook(cd, &s->v[i], bytes);
  if (rc == SL_OK && s->n > 1) qsort(s->v, (size_t)s->n, sizeof *s->v, cdItemCmp);
  if (rc) cdScanFree(cd, s);
  return rc;
}

/* Removes an entry directory: its MANIFEST first (synced), so that a
** removal cut short leaves garbage, never a checkpoint with missing files. */
static int cdRemove(sl_chkdir *cd, const char *path) {
  char *mf = slSnapPrintf(&cd->alloc, "%s/MANIFEST", path);
  int rc;
  if (!mf) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  rc = slSnapUnlink(cd->errmsg, &cd->fs, mf);
  slFree(&cd->alloc, mf);
  if (rc == SL_OK) rc = slSnapSyncDir(cd->errmsg, &cd->fs, path);
  if (rc == SL_OK) rc = slSnapRemoveTree(cd->errmsg, &cd->fs, &cd->alloc, path, NULL);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Open, close, target                                                       */
/* ------------------------------------------------------------------------ */

static int cdRemoveGarbage(sl_chkdir *cd) {
  cdScan s;
  int rc = cdList(cd, &s, 0);
  for (int i = 0; i < s.n && rc == SL_OK; i++) {
    cdItem *it = &s.v[i];
    char *tmp;
    if (!it->complete) {
      rc = slSnapRemoveTree(cd->errmsg, &cd->fs, &cd->alloc, it->path, NULL);
      if (rc == SL_OK)
        slSnapReport(cd, SL_OK, "removed %s: it has no MANIFEST (an unfinished or aborted %s)",
                     it->path, it->kind == SL_SAVEPOINT ? "savepoint" : "checkpoint");
      continue;
    }
    tmp = slSnapPrintf(&cd->alloc, "%s/MANIFEST.tmp", it->path);
    if (!tmp) rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
    else rc = slSnapUnlink(cd->errmsg, &cd->fs, tmp);
    slFree(&cd->alloc, tmp);
  }
  cdScanFree(cd, &s);
  return rc;
}

int sl_chkdir_open(const char *dir, const sl_chkdir_config *cfg, sl_chkdir **out) {
  const sl_allocator *a = cfg && cfg->allocator ? cfg->allocator : slAllocDefault();
  sl_chkdir *cd;
  size_t n;
  int rc;
  if (!out) return SL_MISUSE;
  *out = cd = slMalloc(a, sizeof *cd);
  if (!cd) return SL_NOMEM;
  memset(cd, 0, sizeof *cd);
  cd->hdr.magic = SL_MAGIC_CHKDIR;
  cd->hdr.errmsg = cd->errmsg;
  cd->alloc = *a;
  if (cfg) cd->cfg = *cfg;
  else sl_chkdir_config_init(&cd->cfg);
  cd->cfg.allocator = &cd->alloc;
  slSnapFsInit(&cd->fs, cd->cfg.fs);
  cd->cfg.fs = &cd->fs;
  if (!dir || !dir[0]) return slSnapCdErr(cd, SL_MISUSE, "the checkpoint directory is NULL or empty");
  if (strlen(dir) > 3000) return slSnapCdErr(cd, SL_MISUSE, "the checkpoint directory path is too long");
  if (cd->cfg.keep < 1)
    return slSnapCdErr(cd, SL_MISUSE, "keep is %d; at least 1 checkpoint must be kept", cd->cfg.keep);
  if (cd->cfg.max_raw_bytes == 0) cd->cfg.max_raw_bytes = CD_MAX_RAW_DEFAULT;
  if (cd->cfg.flags & ~SL_CHKDIR_READONLY)
    return slSnapCdErr(cd, SL_MISUSE, "unknown flags 0x%x", (unsigned)cd->cfg.flags);
  if (cd->cfg.vfs && !sqlite3_vfs_find(cd->cfg.vfs))
    return slSnapCdErr(cd, SL_MISUSE, "no SQLite VFS named '%s' is registered", cd->cfg.vfs);
  n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  cd->dir = slMalloc(&cd->alloc, n + 1);
  if (!cd->dir) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  memcpy(cd->dir, dir, n);
  cd->dir[n] = 0;
  if (cd->cfg.flags & SL_CHKDIR_READONLY) {
    sl_fs_stat sb;
    rc = slSnapStat(cd->errmsg, &cd->fs, cd->dir, 0, &sb);
    if (rc == SL_NOTFOUND || (rc == SL_OK && sb.type != SL_FS_DIR))
      return slSnapCdErr(cd, SL_NOTFOUND, "checkpoint directory %s does not exist", cd->dir);
    return rc;
  }
  /* durable: a checkpoint published in a directory whose own name could be
  ** lost in a power loss would be lost with it */
  rc = slSnapMkdirs(cd->errmsg, &cd->fs, cd->dir, 1);
  if (rc == SL_OK) rc = cdRemoveGarbage(cd);
  return rc;
}

static void cdListFree(sl_chkdir *cd) {
  for (int i = 0; i < cd->nstrs; i++) slFree(&cd->alloc, cd->list_strs[i]);
  slFree(&cd->alloc, cd->list_strs);
  slFree(&cd->alloc, cd->list);
  cd->list_strs = NULL;
  cd->list = NULL;
  cd->nstrs = cd->nlist = 0;
}

int sl_chkdir_close(sl_chkdir *cd) {
  sl_allocator a;
  if (!cd) return SL_OK;
  if (cd->hdr.magic != SL_MAGIC_CHKDIR) return SL_MISUSE;
  cdListFree(cd);
  a = cd->alloc;
  slFree(&a, cd->dir);
  slFree(&a, cd->path);
  cd->hdr.magic = SL_MAGIC_DEAD;
  slFree(&a, cd);
  return SL_OK;
}

static int cdWritable(sl_chkdir *cd, const char *call) {
  if (cd->cfg.flags & SL_CHKDIR_READONLY)
    return slSnapCdErr(cd, SL_MISUSE, "%s: the checkpoint directory %s was opened read-only", call,
                       cd->dir);
  return SL_OK;
}

int sl_chkdir_target(sl_chkdir *cd, int64_t id, const char *savepoint, const char **path) {
  char *dir, *mf;
  int rc = cdUsable(cd);
  if (rc) return rc;
  if (!path) return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_target: the output pointer is NULL");
  *path = NULL;
  rc = cdWritable(cd, "sl_chkdir_target");
  if (rc == SL_OK) rc = cdCheckWhich(cd, "sl_chkdir_target", id, savepoint);
  if (rc) return rc;
  dir = slSnapEntryDir(cd, id, savepoint);
  mf = dir ? slSnapPrintf(&cd->alloc, "%s/MANIFEST", dir) : NULL;
  if (!mf) {
    slFree(&cd->alloc, dir);
    return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  }
  {
    int published = 0;
    rc = slSnapExists(cd->errmsg, &cd->fs, mf, &published);
    if (rc == SL_OK && published)
      rc = slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_target: %s is already published", dir);
  }
  /* not durable yet: publication syncs the directories of what it names */
  if (rc == SL_OK) rc = slSnapMkdirs(cd->errmsg, &cd->fs, dir, 0);
  slFree(&cd->alloc, mf);
  if (rc) {
    slFree(&cd->alloc, dir);
    return rc;
  }
  slFree(&cd->alloc, cd->path);
  cd->path = dir;
  *path = dir;
  return SL_OK;
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                 */
/* ------------------------------------------------------------------------ */

static int cdRetain(sl_chkdir *cd, int *removed) {
  cdScan s;
  int rc = cdList(cd, &s, 1), kept = 0, oldest_kept = -1;
  uint64_t bytes = 0;
  if (removed) *removed = 0;
  if (rc) return rc;
  /* newest first: keep `keep` valid checkpoints within the byte budget */
  for (int i = s.n - 1; i >= 0; i--) {
    cdItem *it = &s.v[i];
    if (it->kind != SL_CHECKPOINT || !it->complete || !it->valid) continue;
    if (kept == 0 || (kept < cd->cfg.keep &&
                      (cd->cfg.max_bytes == 0 || bytes + it->bytes <= cd->cfg.max_bytes))) {
      kept++;
      bytes += it->bytes;
      oldest_kept = i;
      continue;
    }
    break;
  }
  /* older than the oldest kept: checkpoints, and unfinished directories
  ** (a removal cut short, or a checkpoint subsumed by newer ones) */
  for (int i = 0; i < s.n && rc == SL_OK && oldest_kept >= 0 && i < oldest_kept; i++) {
    cdItem *it = &s.v[i];
    if (it->kind != SL_CHECKPOINT) continue;
    if (!it->complete) {
      rc = slSnapRemoveTree(cd->errmsg, &cd->fs, &cd->alloc, it->path, NULL);
      if (rc == SL_OK)
        slSnapReport(cd, SL_OK, "removed %s: it has no MANIFEST and is older than the checkpoints "
                     "kept", it->path);
      continue;
    }
    rc = cdRemove(cd, it->path);
    if (rc) break;
    slKillPoint("retention"); /* test hook (base.h): between removals */
    if (removed) (*removed)++;
    slSnapReport(cd, SL_OK, "removed %s (%llu bytes): retention keeps %d checkpoint(s)%s",
                 it->path, (unsigned long long)it->bytes, cd->cfg.keep,
                 cd->cfg.max_bytes ? " within the byte budget" : "");
  }
  if (rc == SL_OK && cd->cfg.max_bytes && bytes > cd->cfg.max_bytes)
    slSnapReport(cd, SL_FULL, "the newest checkpoint alone (%llu bytes) exceeds the byte budget of "
                 "%llu bytes; it is kept", (unsigned long long)bytes,
                 (unsigned long long)cd->cfg.max_bytes);
  cdScanFree(cd, &s);
  return rc;
}

int sl_chkdir_gc(sl_chkdir *cd, int *removed) {
  int rc = cdUsable(cd);
  if (removed) *removed = 0;
  if (rc) return rc;
  rc = cdWritable(cd, "sl_chkdir_gc");
  if (rc) return rc;
  return cdRetain(cd, removed);
}

/* ------------------------------------------------------------------------ */
/* Publication                                                               */
/* ------------------------------------------------------------------------ */

static int cdOpCmp(const void *a, const void *b) {
  return strcmp(((const slMfOp *)a)->name, ((const slMfOp *)b)->name);
}

/* Builds the manifest of n snapshot infos; checks they form a checkpoint. */
static int cdBuild(sl_chkdir *cd, int64_t id, int kind, const char *dir,
                   const sl_snapshot_info *files, int n, slManifest *m) {
  int rc = SL_OK;
  m->ops = slMalloc(&cd->alloc, sizeof *m->ops * (size_t)n);
  if (!m->ops) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
  for (int i = 0; i < n && rc == SL_OK; i++) {
    const sl_snapshot_info *f = &files[i];
    slMfOp *op = NULL;
    char *path, why[SL_ERRMSG_MAX];
    uint64_t size = 0;
    int src;
    if (f->id != id || f->kind != kind)
      return slSnapCdErr(cd, SL_MISMATCH, "sl_chkdir_publish: file %d is of %s %lld, not of %s %lld",
                         i, f->kind == SL_SAVEPOINT ? "savepoint" : "checkpoint", (long long)f->id,
                         kind == SL_SAVEPOINT ? "savepoint" : "checkpoint", (long long)id);
    if (memchr(f->op, 0, sizeof f->op) == NULL || !slSnapIsName(f->op))
      return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_publish: file %d has no valid operator name", i);
    if (f->max_parallelism < 1 || f->max_parallelism > SL_MAX_MAX_PARALLELISM ||
        f->parallelism < 1 || f->parallelism > f->max_parallelism || f->subtask < 0 ||
        f->subtask >= f->parallelism || f->raw_bytes < 512 || f->bytes < 1)
      return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_publish: file %d (%s/%d) has impossible figures",
                         i, f->op, f->subtask);
    for (int k = 0; k < m->nops; k++)
      if (strcmp(m->ops[k].name, f->op) == 0) op = &m->ops[k];
    if (!op) {
      op = &m->ops[m->nops++];
      memset(op, 0, sizeof *op);
      snprintf(op->name, sizeof op->name, "%s", f->op);
      op->parallelism = f->parallelism;
      op->maxp = f->max_parallelism;
      op->files = slMalloc(&cd->alloc, sizeof *op->files * (size_t)op->parallelism);
      if (!op->files) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
      memset(op->files, 0, sizeof *op->files * (size_t)op->parallelism);
    }
    if (op->parallelism != f->parallelism || op->maxp != f->max_parallelism)
      return slSnapCdErr(cd, SL_MISMATCH, "sl_chkdir_publish: operator %s has parallelism %d/%d in "
                         "one file and %d/%d in another", f->op, op->parallelism, op->maxp,
                         f->parallelism, f->max_parallelism);
    if (op->files[f->subtask].size)
      return slSnapCdErr(cd, SL_MISMATCH, "sl_chkdir_publish: subtask %d of operator %s appears "
                         "twice", f->subtask, f->op);
    path = slSnapPrintf(&cd->alloc, "%s/%s/%d.db.zst", dir, f->op, f->subtask);
    if (!path) return slSnapCdErr(cd, SL_NOMEM, "out of memory");
    src = slSnapFileSize(why, &cd->fs, path, &size);
    if (src != SL_OK)
      rc = slSnapCdErr(cd, src, "sl_chkdir_publish: %s", why);
    else if (size != f->bytes)
      rc = slSnapCdErr(cd, SL_MISMATCH, "sl_chkdir_publish: %s has %llu bytes, the snapshot wrote "
                       "%llu", path, (unsigned long long)size, (unsigned long long)f->bytes);
    slFree(&cd->alloc, path);
    op->files[f->subtask].size = f->bytes;
    op->files[f->subtask].raw = f->raw_bytes;
    op->files[f->subtask].crc = f->checksum;
  }
  for (int k = 0; k < m->nops && rc == SL_OK; k++)
    for (int j = 0; j < m->ops[k].parallelism; j++)
      if (!m->ops[k].files[j].size)
        return slSnapCdErr(cd, SL_MISMATCH, "sl_chkdir_publish: subtask %d of operator %s (of %d) "
                           "is missing", j, m->ops[k].name, m->ops[k].parallelism);
  if (rc == SL_OK && m->nops > 1) qsort(m->ops, (size_t)m->nops, sizeof *m->ops, cdOpCmp);
  return rc;
}

int sl_chkdir_publish(sl_chkdir *cd, int64_t id, const char *savepoint,
                      const sl_snapshot_info *files, int n) {
  slManifest m;
  char *dir = NULL, *mf = NULL, *text = NULL, *parent = NULL;
  size_t len = 0;
  int kind = savepoint ? SL_SAVEPOINT : SL_CHECKPOINT;
  int rc = cdUsable(cd), renamed = 0, published = 0;
  if (rc) return rc;
  memset(&m, 0, sizeof m);
  rc = cdWritable(cd, "sl_chkdir_publish");
  if (rc == SL_OK) rc = cdCheckWhich(cd, "sl_chkdir_publish", id, savepoint);
  if (rc) return rc;
  if (!files || n < 1)
    return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_publish: no files (NULL or n < 1)");
  dir = slSnapEntryDir(cd, id, savepoint);
  mf = dir ? slSnapPrintf(&cd->alloc, "%s/MANIFEST", dir) : NULL;
  parent = savepoint ? slSnapPrintf(&cd->alloc, "%s/savepoints", cd->dir) : NULL;
  if (!mf || (savepoint && !parent)) {
    rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
    goto done;
  }
  rc = slSnapExists(cd->errmsg, &cd->fs, mf, &published);
  if (rc == SL_OK && published)
    rc = slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_publish: %s is already published", dir);
  if (rc) goto done;
  m.id = id;
  m.kind = kind;
  if (savepoint) snprintf(m.name, sizeof m.name, "%s", savepoint);
  m.time_ms = slNowMs();
  m.format = SL_FORMAT_VERSION;
  rc = cdBuild(cd, id, kind, dir, files, n, &m);
  if (rc == SL_OK) rc = slSnapMfFormat(cd->errmsg, &cd->alloc, &m, &text, &len);
  for (int k = 0; k < m.nops && rc == SL_OK; k++) {
    char *opdir = slSnapPrintf(&cd->alloc, "%s/%s", dir, m.ops[k].name);
    rc = opdir ? slSnapSyncDir(cd->errmsg, &cd->fs, opdir)
               : slSnapCdErr(cd, SL_NOMEM, "out of memory");
    slFree(&cd->alloc, opdir);
  }
  if (rc == SL_OK) slKillPoint("manifest_before"); /* test hook (base.h) */
  if (rc == SL_OK) rc = slSnapWriteAtomic(cd->errmsg, &cd->fs, mf, text, len, &renamed);
  if (rc == SL_OK && parent) rc = slSnapSyncDir(cd->errmsg, &cd->fs, parent);
  if (rc == SL_OK) rc = slSnapSyncDir(cd->errmsg, &cd->fs, cd->dir);
  if (rc != SL_OK && renamed) {
    /* the MANIFEST is in place but not known to be durable: take it back,
    ** so that a failed publication leaves no MANIFEST (should even that
    ** fail, the checkpoint stays complete, and the message says so) */
    char why[SL_ERRMSG_MAX];
    if (slSnapUnlink(why, &cd->fs, mf) != SL_OK) {
      size_t k = strlen(cd->errmsg);
      snprintf(cd->errmsg + k, sizeof cd->errmsg - k, "; %s stays: %s", mf, why);
    }
  }
  if (rc == SL_OK) slKillPoint("manifest_after"); /* test hook (base.h) */
  if (rc == SL_OK && kind == SL_CHECKPOINT && cdRetain(cd, NULL) != SL_OK) {
    /* published all the same; retention runs again at the next one */
    slSnapReport(cd, SL_ERROR, "checkpoint %lld is published, but retention failed: %s",
                 (long long)id, cd->errmsg);
    cd->errmsg[0] = 0;
  }
done:
  slSnapMfFree(&cd->alloc, &m);
  slFree(&cd->alloc, text);
  slFree(&cd->alloc, dir);
  slFree(&cd->alloc, mf);
  slFree(&cd->alloc, parent);
  return rc;
}

int sl_chkdir_discard(sl_chkdir *cd, int64_t id, const char *savepoint) {
  char *dir, *mf;
  int rc = cdUsable(cd);
  if (rc) return rc;
  rc = cdWritable(cd, "sl_chkdir_discard");
  if (rc == SL_OK) rc = cdCheckWhich(cd, "sl_chkdir_discard", id, savepoint);
  if (rc) return rc;
  dir = slSnapEntryDir(cd, id, savepoint);
  mf = dir ? slSnapPrintf(&cd->alloc, "%s/MANIFEST", dir) : NULL;
  if (!mf) {
    rc = slSnapCdErr(cd, SL_NOMEM, "out of memory");
  } else {
    int published = 0;
    rc = slSnapExists(cd->errmsg, &cd->fs, mf, &published);
    if (rc == SL_OK && published)
      rc = slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_discard: %s is published; only retention "
                       "removes it", dir);
    else if (rc == SL_OK)
      rc = slSnapRemoveTree(cd->errmsg, &cd->fs, &cd->alloc, dir, NULL);
  }
  slFree(&cd->alloc, dir);
  slFree(&cd->alloc, mf);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Listing                                                                   */
/* ------------------------------------------------------------------------ */

int sl_chkdir_list(sl_chkdir *cd, const sl_chk_entry **out, int *n) {
  cdScan s;
  int rc = cdUsable(cd);
  if (rc) return rc;
  if (!out || !n) return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_list: an output pointer is NULL");
  *out = NULL;
  *n = 0;
  cdListFree(cd);
  rc = cdList(cd, &s, 1);
  if (rc) return rc;
  if (s.n > 0) {
    cd->list = slMalloc(&cd->alloc, sizeof *cd->list * (size_t)s.n);
    cd->list_strs = slMalloc(&cd->alloc, sizeof *cd->list_strs * (size_t)s.n * 2);
    if (!cd->list || !cd->list_strs) {
      cdScanFree(cd, &s);
      cdListFree(cd);
      return slSnapCdErr(cd, SL_NOMEM, "out of memory");
    }
  }
  for (int i = 0; i < s.n; i++) {
    sl_chk_entry *e = &cd->list[i];
    cdItem *it = &s.v[i];
    memset(e, 0, sizeof *e);
    e->id = it->id;
    e->kind = it->kind;
    e->name = it->name;
    e->path = it->path;
    e->time_ms = it->time_ms;
    e->bytes = it->bytes;
    e->complete = it->complete;
    e->valid = it->valid;
    /* the strings move to the list */
    if (it->name) cd->list_strs[cd->nstrs++] = it->name;
    cd->list_strs[cd->nstrs++] = it->path;
    it->name = it->path = NULL;
  }
  cd->nlist = s.n;
  cdScanFree(cd, &s);
  *out = cd->list;
  *n = cd->nlist;
  return SL_OK;
}

int sl_chkdir_next_id(sl_chkdir *cd, int64_t *id) {
  cdScan s;
  int64_t max = 0;
  int rc = cdUsable(cd);
  if (rc) return rc;
  if (!id) return slSnapCdErr(cd, SL_MISUSE, "sl_chkdir_next_id: the output pointer is NULL");
  rc = cdList(cd, &s, 0);
  if (rc) return rc;
  for (int i = 0; i < s.n; i++)
    if ((s.v[i].kind == SL_CHECKPOINT || s.v[i].valid) && s.v[i].id > max) max = s.v[i].id;
  cdScanFree(cd, &s);
  if (max == INT64_MAX) return slSnapCdErr(cd, SL_FULL, "checkpoint ids are exhausted");
  *id = max + 1;
  return SL_OK;
}
