/*
** job.c — building a job (stages and edges), checking that it is well formed
** before it runs, and the context calls that operators and sources use:
** emitting records and watermarks, timers, their state and their memory.
*/
#include <stdio.h>
#include <string.h>

#include "sdk/sdk.h"
#include "snapshot/snapshot.h"

void sl_job_config_init(sl_job_config *cfg) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->checkpoint_timeout_ms = 60000;
  cfg->retain = 2;
  cfg->mode = SL_EXACTLY_ONCE;
  cfg->max_parallelism = SL_DEFAULT_MAX_PARALLELISM;
  cfg->memory_budget = 8u << 20;
  cfg->channel_capacity = 1024;
  cfg->zstd_level = 3;
}

static int slJobErr(sl_job *job, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int slJobErr(sl_job *job, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  slErrorV(job->errmsg, rc, fmt, ap);
  va_end(ap);
  return rc;
}

/* Records the first failure of a running job and makes everything stop. */
int slJobFail(sl_job *job, int rc, const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&job->mu);
  if (!job->failed_rc) {
    job->failed_rc = rc;
    va_start(ap, fmt);
    slErrorV(job->errmsg, rc, fmt, ap);
    va_end(ap);
  }
  atomic_store(&job->stopping, 1);
  pthread_cond_broadcast(&job->cv);
  pthread_cond_broadcast(&job->cv_writer);
  pthread_mutex_unlock(&job->mu);
  for (int s = 0; s < job->nstages; s++)
    for (int i = 0; i < job->stages[s].par && job->stages[s].inst; i++) {
      slInst *in = &job->stages[s].inst[i];
      pthread_mutex_lock(&in->mu);
      pthread_cond_broadcast(&in->cv_read);
      pthread_cond_broadcast(&in->cv_write);
      pthread_mutex_unlock(&in->mu);
    }
  return rc;
}

void slJobLog(sl_job *job, const char *fmt, ...) {
  char line[SL_ERRMSG_MAX];
  va_list ap;
  if (!job->cfg.log) return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  job->cfg.log(job->cfg.log_ud, line);
}

int sl_job_new(const sl_job_config *cfg, sl_job **out) {
  sl_job_config def;
  const sl_allocator *a;
  sl_job *job;
  if (!out) return SL_MISUSE;
  if (!cfg) {
    sl_job_config_init(&def);
    cfg = &def;
  }
  a = cfg->allocator ? cfg->allocator : slAllocDefault();
  *out = job = slMalloc(a, sizeof *job);
  if (!job) return SL_NOMEM;
  memset(job, 0, sizeof *job);
  job->hdr.magic = SL_MAGIC_JOB;
  job->hdr.errmsg = job->errmsg;
  job->alloc = *a;
  job->cfg = *cfg;
  job->cfg.allocator = &job->alloc;
  slSnapFsInit(&job->fs, cfg->fs);
  job->cfg.fs = &job->fs;
  pthread_mutex_init(&job->mu, NULL);
  pthread_cond_init(&job->cv, NULL);
  pthread_cond_init(&job->cv_writer, NULL);
  if (!cfg->state_dir || !cfg->state_dir[0] || !cfg->checkpoint_dir || !cfg->checkpoint_dir[0])
    return slJobErr(job, SL_MISUSE, "a job needs state_dir and checkpoint_dir");
  if (cfg->mode != SL_EXACTLY_ONCE && cfg->mode != SL_AT_LEAST_ONCE)
    return slJobErr(job, SL_MISUSE, "mode must be SL_EXACTLY_ONCE or SL_AT_LEAST_ONCE, not %d", cfg->mode);
  if (cfg->max_parallelism < 1 || cfg->max_parallelism > SL_MAX_MAX_PARALLELISM)
    return slJobErr(job, SL_MISUSE, "max_parallelism %d is outside 1..%d", cfg->max_parallelism,
                    SL_MAX_MAX_PARALLELISM);
  if (cfg->checkpoint_interval_ms < 0 || cfg->checkpoint_timeout_ms <= 0 || cfg->min_pause_ms < 0 ||
      cfg->tolerable_failures < 0 || cfg->retain < 1 || cfg->channel_capacity < 1)
    return slJobErr(job, SL_MISUSE,
                    "checkpoint_interval_ms, min_pause_ms and tolerable_failures must be >= 0, "
                    "checkpoint_timeout_ms, retain and channel_capacity >= 1");
  job->state_dir = slStrdup(&job->alloc, cfg->state_dir);
  job->checkpoint_dir = slStrdup(&job->alloc, cfg->checkpoint_dir);
  if (cfg->restore_savepoint) job->savepoint = slStrdup(&job->alloc, cfg->restore_savepoint);
  if (cfg->vfs) job->vfs = slStrdup(&job->alloc, cfg->vfs);
  if (!job->state_dir || !job->checkpoint_dir || (cfg->restore_savepoint && !job->savepoint) ||
      (cfg->vfs && !job->vfs))
    return slJobErr(job, SL_NOMEM, "out of memory");
  job->cfg.state_dir = job->state_dir;
  job->cfg.checkpoint_dir = job->checkpoint_dir;
  job->cfg.restore_savepoint = job->savepoint;
  job->cfg.vfs = job->vfs;
  if (job->vfs && !sqlite3_vfs_find(job->vfs))
    return slJobErr(job, SL_MISUSE, "no SQLite VFS named '%s' is registered", job->vfs);
  return SL_OK;
}

static int slJobUsable(sl_job *job) {
  if (!job || job->hdr.magic != SL_MAGIC_JOB) return SL_MISUSE;
  job->errmsg[0] = 0;
  if (job->ran) return slJobErr(job, SL_MISUSE, "the job has run already; make a new one");
  if (!job->state_dir) return slJobErr(job, SL_MISUSE, "the job was not created successfully");
  return SL_OK;
}

static int slIsStageName(const char *s) {
  size_t i;
  if (!s || !s[0] || s[0] == '.') return 0;
  for (i = 0; s[i]; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == '-'))
      return 0;
  }
  return i <= 128;
}

static int slStageAdd(sl_job *job, const char *name, int par, slStage **out, int *stage) {
  slStage *st;
  int rc = slJobUsable(job);
  if (rc) return rc;
  if (!slIsStageName(name))
    return slJobErr(job, SL_MISUSE, "stage name '%s' is not 1..128 characters of [A-Za-z0-9_.-] "
                    "starting with something other than '.'", name ? name : "(null)");
  for (int i = 0; i < job->nstages; i++)
    if (strcmp(job->stages[i].name, name) == 0)
      return slJobErr(job, SL_MISUSE, "there are two stages named '%s'", name);
  if (par < 1 || par > job->cfg.max_parallelism)
    return slJobErr(job, SL_MISUSE, "stage '%s': parallelism %d is outside 1..%d (max_parallelism)",
                    name, par, job->cfg.max_parallelism);
  if (!stage) return slJobErr(job, SL_MISUSE, "stage '%s': the stage output pointer is NULL", name);
  if (job->nstages == job->capstages) {
    int cap = job->capstages ? job->capstages * 2 : 8;
    slStage *p = slRealloc(&job->alloc, job->stages, sizeof *p * (size_t)cap);
    if (!p) return slJobErr(job, SL_NOMEM, "out of memory");
    job->stages = p;
    job->capstages = cap;
  }
  st = &job->stages[job->nstages];
  memset(st, 0, sizeof *st);
  st->name = slStrdup(&job->alloc, name);
  if (!st->name) return slJobErr(job, SL_NOMEM, "out of memory");
  st->par = par;
  *stage = job->nstages++;
  *out = st;
  return SL_OK;
}

static int slCheckOutCols(sl_job *job, const char *name, const sl_column *c, int n) {
  if (n < 0 || n > SL_MAX_VALUE_COLUMNS || (n > 0 && !c))
    return slJobErr(job, SL_MISUSE, "stage '%s': %d output fields (0..%d, with a field array)", name,
                    n, SL_MAX_VALUE_COLUMNS);
  for (int i = 0; i < n; i++) {
    if (!slIsIdent(c[i].name))
      return slJobErr(job, SL_MISUSE, "stage '%s': output field name '%s' is not an identifier",
                      name, c[i].name ? c[i].name : "(null)");
    if (c[i].type < SL_INTEGER || c[i].type > SL_BLOB)
      return slJobErr(job, SL_MISUSE, "stage '%s': output field '%s' has no valid type", name,
                      c[i].name);
  }
  return SL_OK;
}

int sl_job_source(sl_job *job, const char *name, const sl_source *src, int parallelism, int *stage) {
  slStage *st;
  int rc = slJobUsable(job);
  if (rc) return rc;
  if (!src || !src->read)
    return slJobErr(job, SL_MISUSE, "source '%s' has no read callback", name ? name : "(null)");
  if (!src->position || !src->seek)
    return slJobErr(job, SL_MISUSE, "source '%s' is not replayable: it needs position and seek",
                    name ? name : "(null)");
  rc = slCheckOutCols(job, name ? name : "(null)", src->out, src->n_out);
  if (rc == SL_OK) rc = slStageAdd(job, name, parallelism, &st, stage);
  if (rc) return rc;
  st->is_source = 1;
  st->src = *src;
  st->out = src->out;
  st->n_out = src->n_out;
  return SL_OK;
}

int sl_job_operator(sl_job *job, const char *name, const sl_operator *op, int parallelism, int *stage) {
  slStage *st;
  int rc = slJobUsable(job);
  if (rc) return rc;
  if (!op) return slJobErr(job, SL_MISUSE, "operator '%s' is NULL", name ? name : "(null)");
  rc = slCheckOutCols(job, name ? name : "(null)", op->out, op->n_out);
  if (rc) return rc;
  if (op->n_states < 0 || (op->n_states > 0 && !op->states))
    return slJobErr(job, SL_MISUSE, "operator '%s': n_states %d without states", name ? name : "",
                    op->n_states);
  for (int i = 0; i < op->n_states; i++)
    for (int j = i + 1; j < op->n_states; j++)
      if (op->states[i].name && op->states[j].name &&
          strcmp(op->states[i].name, op->states[j].name) == 0)
        return slJobErr(job, SL_MISUSE,
                        "operator '%s' declares state '%s' twice%s", name ? name : "",
                        op->states[i].name,
                        op->states[i].kind != op->states[j].kind ? " with different kinds" : "");
  rc = slStageAdd(job, name, parallelism, &st, stage);
  if (rc) return rc;
  st->op = *op;
  st->out = op->out;
  st->n_out = op->n_out;
  return SL_OK;
}

int sl_job_connect(sl_job *job, int from, int to, int how, const char *const *key_fields, int n) {
  slEdge *e;
  slStage *f, *t;
  int rc = slJobUsable(job);
  if (rc) return rc;
  if (from < 0 || from >= job->nstages || to < 0 || to >= job->nstages)
    return slJobErr(job, SL_MISUSE, "sl_job_connect: stage %d or %d does not exist", from, to);
  f = &job->stages[from];
  t = &job->stages[to];
  if (from >= to)
    return slJobErr(job, SL_MISUSE, "sl_job_connect: '%s' -> '%s' goes backwards; add stages in "
                    "the order records flow", f->name, t->name);
  if (t->is_source)
    return slJobErr(job, SL_MISUSE, "sl_job_connect: '%s' is a source and takes no input", t->name);
  if (how != SL_FORWARD && how != SL_REBALANCE && how != SL_KEY_BY)
    return slJobErr(job, SL_MISUSE, "sl_job_connect: unknown edge kind %d", how);
  if (how == SL_FORWARD && f->par != t->par)
    return slJobErr(job, SL_MISUSE, "a forward edge '%s' -> '%s' needs equal parallelism (%d, %d)",
                    f->name, t->name, f->par, t->par);
  if (how == SL_KEY_BY && (n < 1 || n > SL_MAX_KEY_COLUMNS || !key_fields))
    return slJobErr(job, SL_MISUSE, "a key_by edge '%s' -> '%s' needs 1..%d key fields", f->name,
                    t->name, SL_MAX_KEY_COLUMNS);
  if (job->nedges == job->capedges) {
    int cap = job->capedges ? job->capedges * 2 : 8;
    slEdge *p = slRealloc(&job->alloc, job->edges, sizeof *p * (size_t)cap);
    if (!p) return slJobErr(job, SL_NOMEM, "out of memory");
    job->edges = p;
    job->capedges = cap;
  }
  e = &job->edges[job->nedges];
  memset(e, 0, sizeof *e);
  e->from = from;
  e->to = to;
  e->how = how;
  if (how == SL_KEY_BY) {
    for (int i = 0; i < n; i++) {
      int j;
      for (j = 0; j < f->n_out; j++)
        if (key_fields[i] && strcmp(f->out[j].name, key_fields[i]) == 0) break;
      if (j == f->n_out)
        return slJobErr(job, SL_MISUSE, "key_by: the records of '%s' have no field '%s'", f->name,
                        key_fields[i] ? key_fields[i] : "(null)");
      e->key[i] = j;
    }
    e->nkey = n;
  }
  job->nedges++;
  t->nin++;
  return SL_OK;
}

/* The whole job, before it runs. */
int slJobCheck(sl_job *job) {
  int nsrc = 0;
  if (job->nstages == 0) return slJobErr(job, SL_MISUSE, "the job has no stages");
  for (int i = 0; i < job->nstages; i++) {
    slStage *st = &job->stages[i];
    int nout = 0;
    if (st->is_source) nsrc++;
    if (!st->is_source && st->nin == 0)
      return slJobErr(job, SL_MISUSE, "operator '%s' has no input", st->name);
    for (int e = 0; e < job->nedges; e++) {
      if (job->edges[e].from != i) continue;
      nout++;
      if (job->edges[e].how == SL_KEY_BY) {
        /* a keyed edge needs every keyed state of the receiver to take a key
        ** of that many columns */
        slStage *t = &job->stages[job->edges[e].to];
        for (int k = 0; k < t->op.n_states; k++)
          if (t->op.states[k].kind <= SL_AGGREGATING_STATE &&
              t->op.states[k].n_key != job->edges[e].nkey)
            return slJobErr(job, SL_MISUSE,
                            "operator '%s': state '%s' has %d key columns but '%s' is keyed by %d "
                            "fields", t->name, t->op.states[k].name, t->op.states[k].n_key,
                            t->name, job->edges[e].nkey);
      }
    }
    if (st->n_out > 0 && nout == 0)
      slJobLog(job, "note: the output of '%s' goes nowhere", st->name);
  }
  if (nsrc == 0) return slJobErr(job, SL_MISUSE, "the job has no source");
  return SL_OK;
}

/* ---- the context ---------------------------------------------------------- */

sl_store *sl_ctx_store(sl_ctx *ctx) { return ctx ? ctx->inst->store : NULL; }

sl_state *sl_ctx_state(sl_ctx *ctx, const char *name) {
  slStage *st;
  if (!ctx || !name) return NULL;
  st = ctx->inst->stage;
  for (int i = 0; i < st->op.n_states; i++)
    if (strcmp(st->op.states[i].name, name) == 0) return ctx->inst->states[i];
  return NULL;
}

void *sl_ctx_instance(sl_ctx *ctx) { return ctx ? ctx->inst->mem : NULL; }

void sl_ctx_subtask(sl_ctx *ctx, int *index, int *parallelism) {
  if (!ctx) return;
  if (index) *index = ctx->inst->index;
  if (parallelism) *parallelism = ctx->inst->stage->par;
}

int sl_ctx_restored(sl_ctx *ctx) { return ctx ? ctx->inst->restored : 0; }

int64_t sl_ctx_watermark(sl_ctx *ctx) { return ctx ? ctx->inst->wm : INT64_MIN; }

int64_t sl_ctx_now(sl_ctx *ctx) {
  (void)ctx;
  return slNowMs();
}

void sl_ctx_error(sl_ctx *ctx, const char *fmt, ...) {
  va_list ap;
  if (!ctx || !fmt) return;
  va_start(ap, fmt);
  vsnprintf(ctx->inst->errbuf, sizeof ctx->inst->errbuf, fmt, ap);
  va_end(ap);
}

int sl_ctx_timer(sl_ctx *ctx, int domain, int64_t time) {
  int rc;
  if (!ctx) return SL_MISUSE;
  rc = sl_timer_register(ctx->inst->store, domain, time);
  if (rc == SL_OK && domain == SL_PROCESSING_TIME && time < ctx->inst->next_ptimer)
    ctx->inst->next_ptimer = time;
  return rc;
}

/* The instance of `to` a record goes to over edge `o`. */
static int slRoute(slInst *in, slOut *o, const sl_value *f, int *target) {
  const slEdge *e = o->edge;
  if (e->how == SL_FORWARD) {
    *target = in->index;
  } else if (e->how == SL_REBALANCE) {
    *target = o->rr;
    o->rr = (o->rr + 1) % o->nchan;
  } else {
    sl_value key[SL_MAX_KEY_COLUMNS];
    int kg = 0, rc;
    for (int i = 0; i < e->nkey; i++) key[i] = f[e->key[i]];
    rc = sl_key_group(key, e->nkey, in->job->cfg.max_parallelism, &kg);
    if (rc)
      return slJobFail(in->job, SL_MISUSE, "'%s' emitted a record whose key field '%s' is NULL or "
                       "not a valid key", in->stage->name, in->stage->out[e->key[0]].name);
    sl_key_group_owner(in->job->cfg.max_parallelism, o->nchan, kg, target);
  }
  return SL_OK;
}

/* Sends a message to every channel of every output (barriers, watermarks,
** end of input). */
int slSdkBroadcast(slInst *in, int kind, int64_t ts) {
  for (int o = 0; o < in->nout; o++)
    for (int c = 0; c < in->out[o].nchan; c++) {
      slMsg *m = slMsgNew(in->job, kind, ts, NULL, 0);
      if (!m) return slJobFail(in->job, SL_NOMEM, "out of memory");
      if (slChanPush(&in->out[o].to->inst[c], in->out[o].chan[c], m)) return SL_ERROR;
    }
  return SL_OK;
}

int slSdkFlushOutputs(slInst *in) {
  for (int o = 0; o < in->nout; o++)
    for (int c = 0; c < in->out[o].nchan; c++)
      if (slChanFlush(&in->out[o].to->inst[c], in->out[o].chan[c])) return SL_ERROR;
  return SL_OK;
}

int slSdkFlushOld(slInst *in) {
  int64_t now = -1; /* the clock is read once, and only when something waits */
  for (int o = 0; o < in->nout; o++)
    for (int c = 0; c < in->out[o].nchan; c++) {
      slChan *ch = in->out[o].chan[c];
      if (!ch->npend) continue;
      if (now < 0) now = slSnapMonoUs();
      if (now - ch->pend_since_us >= SL_CHAN_LINGER_US &&
          slChanFlush(&in->out[o].to->inst[c], ch))
        return SL_ERROR;
    }
  return SL_OK;
}

int sl_ctx_emit(sl_ctx *ctx, const sl_value *f, int n, int64_t ts) {
  slInst *in;
  slStage *st;
  if (!ctx) return SL_MISUSE;
  in = ctx->inst;
  st = in->stage;
  if (n != st->n_out || (n && !f)) {
    sl_ctx_error(ctx, "'%s' emitted a record of %d fields; it declares %d", st->name, n, st->n_out);
    return SL_MISUSE;
  }
  for (int i = 0; i < n; i++)
    if (f[i].type != SL_NULL && f[i].type != st->out[i].type) {
      sl_ctx_error(ctx, "'%s' emitted %s in field '%s', which is declared %s", st->name,
                   slTypeName(f[i].type), st->out[i].name, slTypeName(st->out[i].type));
      return SL_MISUSE;
    }
  if (st->is_source) {
    in->records++;
    if (ts > in->max_ts) in->max_ts = ts;
  }
  for (int o = 0; o < in->nout; o++) {
    int target = 0;
    slMsg *m;
    if (slRoute(in, &in->out[o], f, &target)) return SL_ERROR;
    m = slMsgNew(in->job, SL_M_RECORD, ts, f, n);
    if (!m) return SL_NOMEM;
    if (slChanPushRecord(&in->out[o].to->inst[target], in->out[o].chan[target], m)) return SL_ERROR;
  }
  return SL_OK;
}

int sl_ctx_emit_watermark(sl_ctx *ctx, int64_t ts) {
  slInst *in;
  if (!ctx) return SL_MISUSE;
  in = ctx->inst;
  if (!in->stage->is_source) {
    sl_ctx_error(ctx, "only sources emit watermarks; '%s' is an operator", in->stage->name);
    return SL_MISUSE;
  }
  if (ts <= in->wm_sent) return SL_OK;
  in->wm_sent = ts;
  return slSdkBroadcast(in, SL_M_WATERMARK, ts);
}

int sl_job_get_stats(sl_job *job, sl_job_stats *out) {
  if (!job || job->hdr.magic != SL_MAGIC_JOB || !out) return SL_MISUSE;
  pthread_mutex_lock(&job->mu);
  *out = job->stats;
  pthread_mutex_unlock(&job->mu);
  return SL_OK;
}

int sl_job_stop(sl_job *job, const char *savepoint) {
  if (!job || job->hdr.magic != SL_MAGIC_JOB) return SL_MISUSE;
  if (savepoint) {
    size_t n = strlen(savepoint);
    if (n == 0 || n >= sizeof job->stop_savepoint) return SL_MISUSE;
    memcpy(job->stop_savepoint, savepoint, n + 1);
  }
  atomic_store(&job->stop_requested, savepoint ? 2 : 1);
  return SL_OK;
}

void sl_job_free(sl_job *job) {
  sl_allocator a;
  if (!job || job->hdr.magic != SL_MAGIC_JOB) return;
  for (int i = 0; i < job->nstages; i++) slFree(&job->alloc, job->stages[i].name);
  slFree(&job->alloc, job->stages);
  slFree(&job->alloc, job->edges);
  slFree(&job->alloc, job->pauses);
  slFree(&job->alloc, job->state_dir);
  slFree(&job->alloc, job->checkpoint_dir);
  slFree(&job->alloc, job->savepoint);
  slFree(&job->alloc, job->vfs);
  pthread_mutex_destroy(&job->mu);
  pthread_cond_destroy(&job->cv);
  pthread_cond_destroy(&job->cv_writer);
  job->hdr.magic = SL_MAGIC_DEAD;
  a = job->alloc;
  slFree(&a, job);
}
