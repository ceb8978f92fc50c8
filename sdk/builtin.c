/*
** builtin.c — the built-in sources and sinks: a deterministic generator, a
** file of lines, a print sink, and an exactly-once file sink that publishes
** each checkpoint's output only when the checkpoint is complete.
*/
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sdk/sdk.h"
#include "snapshot/snapshot.h"

/* ---- generator ------------------------------------------------------------ */

static const sl_column slGenFields[] = {
    {"id", SL_INTEGER, {0, 0, {0}}}, {"key", SL_INTEGER, {0, 0, {0}}}, {"seq", SL_INTEGER, {0, 0, {0}}}};

typedef struct slGenInst {
  int64_t next; /* the next i this instance emits */
} slGenInst;

/* The first i >= from that instance `index` of p emits: its key belongs to
** it, so that every key's sequence comes from one instance, in order. */
static int64_t slGenNext(const sl_generator_config *cfg, int64_t from, int index, int p) {
  int64_t i = from;
  while (i < cfg->count && (i % cfg->keys) % p != index) i++;
  return i < cfg->count ? i : cfg->count;
}

static int slGenOpen(sl_ctx *ctx, void *ud) {
  const sl_generator_config *cfg = ud;
  slGenInst *g = sl_ctx_instance(ctx);
  int index = 0, p = 1;
  if (!cfg || cfg->count < 0 || cfg->keys < 1) {
    sl_ctx_error(ctx, "the generator needs count >= 0 and keys >= 1");
    return SL_MISUSE;
  }
  sl_ctx_subtask(ctx, &index, &p);
  g->next = slGenNext(cfg, 0, index, p);
  return SL_OK;
}

static int slGenRead(sl_ctx *ctx, void *ud) {
  const sl_generator_config *cfg = ud;
  slGenInst *g = sl_ctx_instance(ctx);
  int64_t per = cfg->records_per_read > 0 ? cfg->records_per_read : 64;
  int index = 0, p = 1;
  sl_ctx_subtask(ctx, &index, &p);
  if (g->next >= cfg->count) return SL_DONE;
  if (cfg->delay_us_per_read > 0) {
    struct timespec ts;
    ts.tv_sec = (time_t)(cfg->delay_us_per_read / 1000000);
    ts.tv_nsec = (long)(cfg->delay_us_per_read % 1000000) * 1000;
    nanosleep(&ts, NULL);
  }
  for (int64_t k = 0; k < per && g->next < cfg->count; k++) {
    sl_value f[3];
    int64_t i = g->next;
    int rc;
    f[0] = sl_int(i);
    f[1] = sl_int(i % cfg->keys);
    f[2] = sl_int(i / cfg->keys);
    rc = sl_ctx_emit(ctx, f, 3, i);
    if (rc) return rc;
    g->next = slGenNext(cfg, i + 1, index, p);
  }
  return SL_OK;
}

static int slGenPosition(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = ((slGenInst *)sl_ctx_instance(ctx))->next;
  return SL_OK;
}

static int slGenSeek(sl_ctx *ctx, int64_t pos, void *ud) {
  const sl_generator_config *cfg = ud;
  int index = 0, p = 1;
  sl_ctx_subtask(ctx, &index, &p);
  if (pos < 0 || pos > cfg->count || (pos < cfg->count && (pos % cfg->keys) % p != index)) {
    sl_ctx_error(ctx, "generator position %lld does not belong to instance %d of %d", (long long)pos,
                 index, p);
    return SL_CORRUPT;
  }
  ((slGenInst *)sl_ctx_instance(ctx))->next = pos;
  return SL_OK;
}

void sl_generator_source(sl_source *src, const sl_generator_config *cfg) {
  if (!src) return;
  memset(src, 0, sizeof *src);
  src->open = slGenOpen;
  src->read = slGenRead;
  src->position = slGenPosition;
  src->seek = slGenSeek;
  src->ud = (void *)cfg;
  src->instance_size = sizeof(slGenInst);
  src->out = slGenFields;
  src->n_out = 3;
  src->watermark_delay_ms = 0;
}

/* ---- rendering records as lines --------------------------------------------- */

typedef struct slLine {
  const sl_allocator *a;
  char *p;
  size_t n, cap;
} slLine;

static int slLineAdd(slLine *l, const void *p, size_t n) {
  if (l->n + n + 1 > l->cap) {
    size_t cap = l->cap ? l->cap : 128;
    char *q;
    while (cap < l->n + n + 1) cap *= 2;
    q = slRealloc(l->a, l->p, cap);
    if (!q) return SL_NOMEM;
    l->p = q;
    l->cap = cap;
  }
  memcpy(l->p + l->n, p, n);
  l->n += n;
  l->p[l->n] = 0;
  return SL_OK;
}

/* ---- file of lines ----------------------------------------------------------- */

static const sl_column slLineFields[] = {{"line", SL_TEXT, {0, 0, {0}}}};

#define SL_FILE_BUF (64u << 10)

/* The file is read through the job's file layer (sl_job_config.fs) in
** blocks of SL_FILE_BUF bytes: buf holds [buf_off, buf_off + buf_len). */
typedef struct slFileInst {
  int fd, opened;
  int64_t pos;               /* the offset of the next line */
  unsigned char *buf;
  uint64_t buf_off;
  size_t buf_len;
  slLine line;
  char err[SL_ERRMSG_MAX];
} slFileInst;

static const sl_allocator *slCtxAlloc(sl_ctx *ctx) { return &ctx->inst->job->alloc; }
static const sl_fs *slCtxFs(sl_ctx *ctx) { return &ctx->inst->job->fs; }

/* Reads the line at fi->pos (without its newline) into fi->line: 1, 0 at
** the end of the file, or minus an error code (fi->err says why). *len is
** the bytes consumed. */
static int slReadLine(sl_ctx *ctx, slFileInst *fi, const char *path, size_t *len) {
  uint64_t at = (uint64_t)fi->pos;
  int rc;
  fi->line.n = 0;
  *len = 0;
  for (;;) {
    const unsigned char *p, *nl;
    size_t avail;
    if (at < fi->buf_off || at >= fi->buf_off + fi->buf_len) {
      fi->buf_off = at;
      fi->buf_len = 0;
      rc = slSnapPread(fi->err, slCtxFs(ctx), fi->fd, fi->buf, SL_FILE_BUF, at, &fi->buf_len, path);
      if (rc) return -rc;
      if (fi->buf_len == 0) return *len > 0;
    }
    p = fi->buf + (at - fi->buf_off);
    avail = fi->buf_len - (size_t)(at - fi->buf_off);
    nl = memchr(p, '\n', avail);
    if (nl) avail = (size_t)(nl - p);
    rc = slLineAdd(&fi->line, p, avail);
    if (rc) {
      snprintf(fi->err, sizeof fi->err, "out of memory");
      return -rc;
    }
    *len += avail + (nl ? 1 : 0);
    at += avail + (nl ? 1 : 0);
    if (nl) return 1;
  }
}

static int slFileOpen(sl_ctx *ctx, void *ud) {
  slFileInst *fi = sl_ctx_instance(ctx);
  int p = 1, rc;
  sl_ctx_subtask(ctx, NULL, &p);
  if (p != 1) {
    sl_ctx_error(ctx, "the file source reads one file and runs with parallelism 1, not %d", p);
    return SL_MISUSE;
  }
  fi->line.a = slCtxAlloc(ctx);
  fi->buf = slMalloc(slCtxAlloc(ctx), SL_FILE_BUF);
  if (!fi->buf) {
    sl_ctx_error(ctx, "out of memory");
    return SL_NOMEM;
  }
  rc = slSnapOpen(fi->err, slCtxFs(ctx), (const char *)ud, SL_FS_READ, &fi->fd);
  if (rc) {
    sl_ctx_error(ctx, "%s", fi->err);
    return rc == SL_NOTFOUND ? SL_IOERR : rc;
  }
  fi->opened = 1;
  return SL_OK;
}

static int slFileRead(sl_ctx *ctx, void *ud) {
  slFileInst *fi = sl_ctx_instance(ctx);
  for (int k = 0; k < 64; k++) {
    size_t used = 0;
    int got = slReadLine(ctx, fi, (const char *)ud, &used), rc;
    int64_t at = fi->pos;
    sl_value v;
    if (got < 0) {
      sl_ctx_error(ctx, "%s", fi->err);
      return -got;
    }
    if (got == 0) return k ? SL_OK : SL_DONE;
    fi->pos += (int64_t)used;
    v = sl_textn(fi->line.p ? fi->line.p : "", fi->line.n);
    rc = sl_ctx_emit(ctx, &v, 1, at);
    if (rc) return rc;
  }
  return SL_OK;
}

static int slFilePosition(sl_ctx *ctx, int64_t *pos, void *ud) {
  (void)ud;
  *pos = ((slFileInst *)sl_ctx_instance(ctx))->pos;
  return SL_OK;
}

static int slFileSeek(sl_ctx *ctx, int64_t pos, void *ud) {
  slFileInst *fi = sl_ctx_instance(ctx);
  if (pos < 0) {
    sl_ctx_error(ctx, "cannot seek %s to %lld", (const char *)ud, (long long)pos);
    return SL_IOERR;
  }
  fi->pos = pos;
  return SL_OK;
}

static int slFileClose(sl_ctx *ctx, void *ud) {
  slFileInst *fi = sl_ctx_instance(ctx);
  char ignored[SL_ERRMSG_MAX];
  if (fi->opened) slSnapClose(ignored, slCtxFs(ctx), fi->fd, (const char *)ud);
  slFree(slCtxAlloc(ctx), fi->line.p);
  slFree(slCtxAlloc(ctx), fi->buf);
  fi->opened = 0;
  fi->line.p = NULL;
  fi->buf = NULL;
  return SL_OK;
}

void sl_file_source(sl_source *src, const char *path) {
  if (!src) return;
  memset(src, 0, sizeof *src);
  src->open = slFileOpen;
  src->read = slFileRead;
  src->position = slFilePosition;
  src->seek = slFileSeek;
  src->close = slFileClose;
  src->ud = (void *)path;
  src->instance_size = sizeof(slFileInst);
  src->out = slLineFields;
  src->n_out = 1;
  src->watermark_delay_ms = -1;
}

/* Renders fields tab-separated, with a newline. */
static int slRender(slLine *l, const sl_record *rec) {
  char num[64];
  int rc = SL_OK;
  l->n = 0;
  for (int i = 0; i < rec->n && rc == SL_OK; i++) {
    const sl_value *v = &rec->f[i];
    if (i) rc = slLineAdd(l, "\t", 1);
    if (rc) break;
    switch (v->type) {
      case SL_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)v->v.i);
        rc = slLineAdd(l, num, strlen(num));
        break;
      case SL_REAL:
        snprintf(num, sizeof num, "%.17g", v->v.r);
        rc = slLineAdd(l, num, strlen(num));
        break;
      case SL_TEXT: rc = slLineAdd(l, v->v.p, v->n); break;
      case SL_BLOB:
        for (size_t k = 0; k < v->n && rc == SL_OK; k++) {
          snprintf(num, sizeof num, "%02x", ((const unsigned char *)v->v.p)[k]);
          rc = slLineAdd(l, num, 2);
        }
        break;
      default: break;
    }
  }
  if (rc == SL_OK) rc = slLineAdd(l, "\n", 1);
  return rc;
}

/* ---- print sink ---------------------------------------------------------------- */

typedef struct slPrintInst {
  slLine line;
} slPrintInst;

static int slPrintProcess(sl_ctx *ctx, const sl_record *rec, void *ud) {
  slPrintInst *pi = sl_ctx_instance(ctx);
  int rc;
  pi->line.a = slCtxAlloc(ctx);
  rc = slRender(&pi->line, rec);
  if (rc) return rc;
  if (fwrite(pi->line.p, 1, pi->line.n, ud ? (FILE *)ud : stdout) != pi->line.n) return SL_IOERR;
  return SL_OK;
}

static int slPrintClose(sl_ctx *ctx, void *ud) {
  slPrintInst *pi = sl_ctx_instance(ctx);
  fflush(ud ? (FILE *)ud : stdout);
  slFree(slCtxAlloc(ctx), pi->line.p);
  pi->line.p = NULL;
  return SL_OK;
}

void sl_print_sink(sl_operator *op, void *stdio_file) {
  if (!op) return;
  memset(op, 0, sizeof *op);
  op->process = slPrintProcess;
  op->close = slPrintClose;
  op->ud = stdio_file;
  op->instance_size = sizeof(slPrintInst);
}

/* ---- exactly-once file sink ------------------------------------------------------ */

/* Output waits in state `pending` (epoch, line) until the checkpoint of its
** epoch completes; `published` holds how many bytes of the output file are
** published. Both are part of every checkpoint, so after a restore the sink
** truncates the file to what the restored checkpoint had published and
** publishes that checkpoint's pending lines again: exactly once. */
static const sl_column slSinkPendingCols[] = {{"epoch", SL_INTEGER, {0, 0, {0}}},
                                              {"line", SL_TEXT, {0, 0, {0}}}};
static const sl_column slSinkKeyCols[] = {{"name", SL_TEXT, {0, 0, {0}}}};
static const sl_column slSinkValCols[] = {{"value", SL_INTEGER, {0, 0, {0}}}};
static const sl_state_desc slSinkStates[] = {
    {"pending", SL_OPERATOR_LIST, 0, NULL, 0, NULL, 2, slSinkPendingCols, 0, 0, SL_UNION, NULL, 0, 0,
     NULL, NULL, NULL, NULL, NULL},
    {"published", SL_BROADCAST_MAP, 0, NULL, 1, slSinkKeyCols, 1, slSinkValCols, 0, 0, 0, NULL, 0, 0,
     NULL, NULL, NULL, NULL, NULL}};

typedef struct slSinkInst {
  int64_t epoch;
  int dir_synced;            /* the file's name is durable */
  slLine line;
  slLine out;                /* lines gathered into one write */
  char err[SL_ERRMSG_MAX];
} slSinkInst;

#define SL_SINK_WRITE (64u << 10)

static int slSinkOpen(sl_ctx *ctx, void *ud) {
  slSinkInst *si = sl_ctx_instance(ctx);
  int p = 1;
  (void)ud;
  sl_ctx_subtask(ctx, NULL, &p);
  if (p != 1) {
    sl_ctx_error(ctx, "the exactly-once file sink writes one file and runs with parallelism 1, "
                 "not %d", p);
    return SL_MISUSE;
  }
  si->epoch = 1;
  return SL_OK;
}

static int slSinkProcess(sl_ctx *ctx, const sl_record *rec, void *ud) {
  slSinkInst *si = sl_ctx_instance(ctx);
  sl_value row[2];
  int rc;
  (void)ud;
  si->line.a = slCtxAlloc(ctx);
  rc = slRender(&si->line, rec);
  if (rc) return rc;
  row[0] = sl_int(si->epoch);
  row[1] = sl_textn(si->line.p, si->line.n);
  return sl_list_add(sl_ctx_state(ctx, "pending"), row);
}

static int slSinkSnapshot(sl_ctx *ctx, int64_t id, void *ud) {
  slSinkInst *si = sl_ctx_instance(ctx);
  (void)ud;
  si->epoch = id + 1;
  return SL_OK;
}

/* Writes the lines of epochs <= id at offset `published` of the file,
** cutting off what follows (output of a checkpoint that is not the one
** restored: it will be produced again), and makes them durable: the data
** with a sync of the file, the file's name, once per run, with a sync of
** its directory (a file created and never named durably could vanish in a
** power loss with its published output). *written gets the bytes. */
static int slSinkPublish(sl_ctx *ctx, slSinkInst *si, const char *path, int64_t id,
                         int64_t published, const sl_value *rows, size_t n, int64_t *written) {
  const sl_fs *fs = slCtxFs(ctx);
  uint64_t size = 0, off = (uint64_t)published;
  int fd = -1, rc;
  *written = 0;
  rc = slSnapOpen(si->err, fs, path, SL_FS_READ | SL_FS_WRITE | SL_FS_CREATE, &fd);
  if (rc == SL_OK) rc = slSnapFdSize(si->err, fs, fd, &size, path);
  if (rc == SL_OK && size < off)
    rc = slError(si->err, SL_CORRUPT, "%s holds %llu bytes but %lld were published: it was "
                 "changed by someone else", path, (unsigned long long)size, (long long)published);
  if (rc == SL_OK && size > off) rc = slSnapTruncate(si->err, fs, fd, off, path);
  si->out.a = slCtxAlloc(ctx);
  si->out.n = 0;
  for (size_t i = 0; i <= n && rc == SL_OK; i++) {
    const sl_value *r = rows + 2 * i;
    if (i < n && r[0].v.i > id) continue;
    if (si->out.n && (i == n || si->out.n + r[1].n > SL_SINK_WRITE)) {
      rc = slSnapPwrite(si->err, fs, fd, si->out.p, si->out.n, off, path);
      off += si->out.n;
      *written += (int64_t)si->out.n;
      si->out.n = 0;
    }
    if (rc == SL_OK && i < n && slLineAdd(&si->out, r[1].v.p, r[1].n) != SL_OK)
      rc = slError(si->err, SL_NOMEM, "out of memory");
  }
  if (rc == SL_OK) rc = slSnapSync(si->err, fs, fd, path);
  if (fd >= 0) rc = slSnapCloseAfter(si->err, fs, fd, path, rc);
  if (rc == SL_OK && !si->dir_synced) {
    rc = slSnapSyncParent(si->err, fs, path);
    if (rc == SL_OK) si->dir_synced = 1;
  }
  return rc;
}

static int slSinkNotify(sl_ctx *ctx, int64_t id, void *ud) {
  const char *path = ud;
  slSinkInst *si = sl_ctx_instance(ctx);
  sl_state *pending = sl_ctx_state(ctx, "pending"), *pub = sl_ctx_state(ctx, "published");
  const sl_value *rows, *v;
  sl_value key = sl_text("bytes"), nv;
  size_t n = 0, keep = 0;
  int64_t published = 0, written = 0;
  int rc;
  if (id + 1 > si->epoch) si->epoch = id + 1;
  rc = sl_map_get(pub, &key, &v);
  if (rc == SL_OK) published = v[0].v.i;
  else if (rc != SL_NOTFOUND) return rc;
  rc = sl_list_get(pending, &rows, &n);
  if (rc != SL_OK && rc != SL_NOTFOUND) return rc;
  rc = slSinkPublish(ctx, si, path, id, published, rows, n, &written);
  if (rc) {
    sl_ctx_error(ctx, "%s", si->err);
    return rc;
  }
  /* keep the lines of later epochs (compacted to the front) */
  {
    sl_value *later = NULL;
    for (size_t i = 0; i < n; i++)
      if (rows[2 * i].v.i > id) keep++;
    if (keep) {
      later = slMalloc(slCtxAlloc(ctx), sizeof *later * 2 * keep);
      if (!later) return SL_NOMEM;
      keep = 0;
      for (size_t i = 0; i < n; i++)
        if (rows[2 * i].v.i > id) {
          later[2 * keep] = rows[2 * i];
          later[2 * keep + 1] = rows[2 * i + 1];
          keep++;
        }
    }
    nv = sl_int(published + written);
    rc = sl_list_update(pending, later, keep);
    slFree(slCtxAlloc(ctx), later);
    if (rc) return rc;
  }
  return sl_map_put(pub, &key, &nv);
}

static int slSinkClose(sl_ctx *ctx, void *ud) {
  slSinkInst *si = sl_ctx_instance(ctx);
  (void)ud;
  slFree(slCtxAlloc(ctx), si->line.p);
  slFree(slCtxAlloc(ctx), si->out.p);
  si->line.p = NULL;
  si->out.p = NULL;
  return SL_OK;
}

void sl_file_sink(sl_operator *op, const char *path) {
  if (!op) return;
  memset(op, 0, sizeof *op);
  op->open = slSinkOpen;
  op->process = slSinkProcess;
  op->snapshot = slSinkSnapshot;
  op->notify_checkpoint_complete = slSinkNotify;
  op->close = slSinkClose;
  op->ud = (void *)path;
  op->instance_size = sizeof(slSinkInst);
  op->states = slSinkStates;
  op->n_states = 2;
}
