/*
** run.c — running a job: one thread per instance joined by bounded
** channels, barrier injection at the sources and alignment at operators,
** watermarks and timers, the snapshot writer thread, and the checkpoint
** coordinator that publishes checkpoints and announces them complete.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdk/sdk.h"
#include "snapshot/snapshot.h"

/* A callback failed: stop the job with the operator named. */
static int slCallbackFailed(slInst *in, int rc, const char *cb) {
  if (rc == SL_ROW || rc == SL_DONE) rc = SL_ERROR;
  /* the job is ending already, stopped or failed: what fails now fails
  ** because of that (sl_ctx_emit() refuses records once the job stops) */
  if (atomic_load(&in->job->stopping)) return rc;
  return slJobFail(in->job, rc, "%s '%s' (instance %d of %d): %s failed with %s%s%s",
                   in->stage->is_source ? "source" : "operator", in->stage->name, in->index,
                   in->stage->par, cb, sl_errstr(rc), in->errbuf[0] ? ": " : "",
                   in->errbuf[0] ? in->errbuf : (in->store && sl_errmsg(in->store)[0] &&
                                                         strcmp(sl_errmsg(in->store), "not an error")
                                                     ? sl_errmsg(in->store) : ""));
}

/* ---- checkpoints at an instance ------------------------------------------- */

static void slRecordPause(sl_job *job, int64_t us) {
  pthread_mutex_lock(&job->mu);
  if (job->npauses == job->cappauses) {
    size_t cap = job->cappauses ? job->cappauses * 2 : 256;
    int64_t *p = slRealloc(&job->alloc, job->pauses, sizeof *p * cap);
    if (p) {
      job->pauses = p;
      job->cappauses = cap;
    }
  }
  if (job->npauses < job->cappauses) job->pauses[job->npauses++] = us;
  pthread_mutex_unlock(&job->mu);
}

static void slAck(sl_job *job, int64_t id, int rc, const char *err) {
  pthread_mutex_lock(&job->mu);
  if (id == job->pending_id) {
    job->acks++;
    if (rc != SL_OK && !job->ack_failed) {
      job->ack_failed = rc;
      snprintf(job->ack_err, sizeof job->ack_err, "%s", err);
    }
    pthread_cond_broadcast(&job->cv);
  }
  pthread_mutex_unlock(&job->mu);
}

/* Checkpoint `id` at this instance: the operator's snapshot hook, the
** source position, the synchronous part (commit), the barrier downstream,
** and the asynchronous part handed to the writer thread. */
static int slInstCheckpoint(slInst *in, int64_t id, int savepoint) {
  sl_job *job = in->job;
  void *snap = NULL;
  int64_t t0;
  int rc = SL_OK;
  if (in->stage->op.snapshot) {
    rc = in->stage->op.snapshot(&in->ctx, id, in->stage->op.ud);
    if (rc) return slCallbackFailed(in, rc, "snapshot");
  }
  if (in->stage->is_source) {
    int64_t pos = 0;
    rc = in->stage->src.position(&in->ctx, &pos, in->stage->src.ud);
    if (rc) return slCallbackFailed(in, rc, "position");
    rc = slStoreMetaSetInt(in->store, "source_position", pos);
    if (rc == SL_OK) rc = slStoreMetaSetInt(in->store, "source_max_ts", in->max_ts);
    if (rc == SL_OK) rc = slStoreMetaSetInt(in->store, "source_done", in->done);
    if (rc) return slJobFail(job, rc, "source '%s': %s", in->stage->name, sl_errmsg(in->store));
  }
  t0 = slSnapMonoUs();
  rc = slSdkSnapBegin(in, id, savepoint, &snap);
  slRecordPause(job, slSnapMonoUs() - t0);
  if (rc) {
    char err[SL_ERRMSG_MAX];
    snprintf(err, sizeof err, "'%s' instance %d: %s", in->stage->name, in->index, sl_errmsg(in->store));
    slAck(job, id, rc, err);
    if (in->store->failed) return slJobFail(job, rc, "%s", err);
  }
  /* the snapshot is recorded before the barrier goes on: should the job stop
  ** while it is being sent, teardown still ends the snapshot */
  if (snap) {
    slPendingSnap *p = slMalloc(&job->alloc, sizeof *p);
    slSnapTask *t = slMalloc(&job->alloc, sizeof *t);
    if (!p || !t) {
      slFree(&job->alloc, p);
      slFree(&job->alloc, t);
      slSdkSnapEnd(in, snap, 0);
      return slJobFail(job, SL_NOMEM, "out of memory");
    }
    p->id = id;
    p->snap = snap;
    atomic_init(&p->ran, 0);
    p->next = in->snaps;
    in->snaps = p;
    t->inst = in;
    t->id = id;
    t->snap = snap;
    t->pending = p;
    t->next = NULL;
    pthread_mutex_lock(&job->mu);
    if (job->tasks_tail) job->tasks_tail->next = t;
    else job->tasks = t;
    job->tasks_tail = t;
    pthread_cond_signal(&job->cv_writer);
    pthread_mutex_unlock(&job->mu);
  }
  /* also after the end of the input: a final checkpoint that failed is
  ** taken again, and its barrier must reach the instances that have ended */
  if (slSdkBroadcast(in, SL_M_BARRIER, savepoint ? -id : id)) return SL_ERROR;
  return SL_OK;
}

/* Delivers "checkpoint complete" up to `upto` on the instance's thread. */
static int slInstNotify(slInst *in, int64_t upto) {
  slPendingSnap **pp = &in->snaps;
  int rc;
  if (upto <= in->notified) return SL_OK;
  while (*pp) {
    slPendingSnap *p = *pp;
    if (p->id <= upto && atomic_load(&p->ran)) {
      *pp = p->next;
      slSdkSnapEnd(in, p->snap, p->id == upto);
      slFree(&in->job->alloc, p);
    } else {
      pp = &p->next;
    }
  }
  in->notified = upto;
  if (in->stage->op.notify_checkpoint_complete) {
    rc = in->stage->op.notify_checkpoint_complete(&in->ctx, upto, in->stage->op.ud);
    if (rc) return slCallbackFailed(in, rc, "notify_checkpoint_complete");
  }
  return SL_OK;
}

/* ---- timers and watermarks -------------------------------------------------- */

static int slFireTimers(slInst *in, int domain, int64_t upto) {
  int64_t t;
  int rc;
  while ((rc = sl_timer_pop(in->store, domain, upto, &t)) == SL_ROW) {
    if (in->stage->op.on_timer) {
      rc = in->stage->op.on_timer(&in->ctx, domain, t, in->stage->op.ud);
      if (rc) return slCallbackFailed(in, rc, "on_timer");
    }
    if (atomic_load(&in->job->stopping)) return SL_ERROR;
  }
  if (rc != SL_DONE) return slCallbackFailed(in, rc, "a timer");
  if (domain == SL_PROCESSING_TIME) {
    rc = sl_timer_peek(in->store, domain, &t);
    if (rc != SL_OK && rc != SL_NOTFOUND) return slCallbackFailed(in, rc, "a timer");
    in->next_ptimer = rc == SL_OK ? t : INT64_MAX;
  }
  return SL_OK;
}

static int slAdvanceWatermark(slInst *in) {
  int64_t wm = INT64_MAX;
  for (int c = 0; c < in->nin; c++)
    if (!in->in[c]->ended && in->in[c]->wm < wm) wm = in->in[c]->wm;
  if (wm <= in->wm) return SL_OK;
  in->wm = wm;
  if (slFireTimers(in, SL_EVENT_TIME, wm)) return SL_ERROR;
  return slSdkBroadcast(in, SL_M_WATERMARK, wm);
}

/* ---- operator instances ----------------------------------------------------- */

static int slInstRecord(slInst *in, slChan *c, slMsg *m) {
  sl_record rec;
  int rc;
  if (c->edge->how == SL_KEY_BY) {
    sl_value key[SL_MAX_KEY_COLUMNS];
    for (int i = 0; i < c->edge->nkey; i++) key[i] = m->f[c->edge->key[i]];
    rc = sl_store_set_key(in->store, key, c->edge->nkey, NULL);
    if (rc) return slJobFail(in->job, rc, "operator '%s': %s", in->stage->name, sl_errmsg(in->store));
  }
  if (!in->stage->op.process) return SL_OK;
  rec.ts = m->ts;
  rec.n = m->n;
  rec.f = m->f;
  rc = in->stage->op.process(&in->ctx, &rec, in->stage->op.ud);
  if (rc) return slCallbackFailed(in, rc, "process");
  return SL_OK;
}

/* Every input has delivered the barrier being aligned, or has ended. */
static int slAligned(slInst *in) {
  for (int c = 0; c < in->nin; c++)
    if (!in->in[c]->ended && !in->in[c]->got_barrier) return 0;
  return 1;
}

static int slFinishAlignment(slInst *in) {
  int64_t id = in->aligning;
  int rc;
  pthread_mutex_lock(&in->mu);
  for (int c = 0; c < in->nin; c++) in->in[c]->blocked = in->in[c]->got_barrier = 0;
  pthread_mutex_unlock(&in->mu);
  in->aligning = 0;
  in->aligned = id;
  rc = slInstCheckpoint(in, id, in->aligning_savepoint);
  return rc;
}

static int slInstBarrier(slInst *in, slChan *c, int64_t raw) {
  int64_t id = raw < 0 ? -raw : raw;
  /* a stale barrier of an abandoned checkpoint, or of one taken already:
  ** once inputs have ended, a barrier that comes through one of them after
  ** the others completed the alignment */
  if (id < in->aligning || id <= in->aligned) return SL_OK;
  if (id > in->aligning) {
    /* a newer checkpoint: whatever was being aligned was abandoned */
    pthread_mutex_lock(&in->mu);
    for (int k = 0; k < in->nin; k++) in->in[k]->blocked = in->in[k]->got_barrier = 0;
    pthread_mutex_unlock(&in->mu);
    in->aligning = id;
    in->aligning_savepoint = raw < 0;
  }
  pthread_mutex_lock(&in->mu);
  c->got_barrier = 1;
  if (in->job->cfg.mode == SL_EXACTLY_ONCE) c->blocked = 1;
  pthread_mutex_unlock(&in->mu);
  if (slAligned(in)) return slFinishAlignment(in);
  return SL_OK;
}

static int slInstMessage(slInst *in, slChan *c, slMsg *m) {
  int rc = SL_OK;
  switch (m->kind) {
    case SL_M_RECORD: rc = slInstRecord(in, c, m); break;
    case SL_M_WATERMARK:
      if (m->ts > c->wm) c->wm = m->ts;
      rc = slAdvanceWatermark(in);
      break;
    case SL_M_BARRIER: rc = slInstBarrier(in, c, m->ts); break;
    case SL_M_END:
      pthread_mutex_lock(&in->mu);
      c->ended = 1;
      c->blocked = 0;
      pthread_mutex_unlock(&in->mu);
      rc = slAdvanceWatermark(in);
      if (rc == SL_OK && in->aligning && slAligned(in)) rc = slFinishAlignment(in);
      break;
  }
  return rc;
}

static int slAllEnded(slInst *in) {
  for (int c = 0; c < in->nin; c++)
    if (!in->in[c]->ended) return 0;
  return 1;
}

/* 1 when some output of `in` still holds gathered records. */
static int slInstPending(const slInst *in) {
  for (int o = 0; o < in->nout; o++)
    for (int c = 0; c < in->out[o].nchan; c++)
      if (in->out[o].chan[c]->npend) return 1;
  return 0;
}

#define SL_TAKE_MAX 64

/* Waits for the next messages of an unblocked channel or an event. Returns
** the channel and up to SL_TAKE_MAX of its messages in m[] (*n; a message
** that is not a record comes last), or NULL for an event or a time-out.
** Before it waits it hands over what the instance's outputs have gathered. */
static slChan *slInstNext(slInst *in, slMsg **m, int *n, int64_t *notify, int *finish) {
  slChan *c = NULL;
  *n = 0;
  pthread_mutex_lock(&in->mu);
  for (;;) {
    if (atomic_load(&in->job->stopping)) break;
    if (in->notify_upto > in->notified) {
      *notify = in->notify_upto;
      break;
    }
    for (int k = 0; k < in->nin; k++) {
      slChan *x = in->in[(in->rr + k) % in->nin];
      if (x->count && !x->blocked) {
        c = x;
        in->rr = (in->rr + k + 1) % in->nin;
        break;
      }
    }
    if (c) {
      int was_full = c->count == c->cap;
      while (*n < SL_TAKE_MAX && c->count) {
        slMsg *x = c->ring[c->head];
        m[(*n)++] = x;
        c->head = (c->head + 1) % c->cap;
        c->count--;
        if (x->kind != SL_M_RECORD) break;
      }
      /* writers wait only on a full channel */
      if (was_full) pthread_cond_broadcast(&in->cv_write);
      break;
    }
    if (in->finish) {
      *finish = 1;
      break;
    }
    if (slInstPending(in)) {
      /* nothing to read: what was gathered goes on before waiting */
      pthread_mutex_unlock(&in->mu);
      if (slSdkFlushOutputs(in)) return NULL;
      pthread_mutex_lock(&in->mu);
      continue;
    }
    if (in->next_ptimer != INT64_MAX) {
      int64_t now = slNowMs();
      struct timespec ts;
      if (now >= in->next_ptimer) break;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t wait = in->next_ptimer - now;
      if (wait > 100) wait = 100;
      ts.tv_sec += wait / 1000;
      ts.tv_nsec += (long)(wait % 1000) * 1000000;
      if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
      pthread_cond_timedwait(&in->cv_read, &in->mu, &ts);
      if (slNowMs() >= in->next_ptimer) break;
    } else {
      pthread_cond_wait(&in->cv_read, &in->mu);
    }
  }
  pthread_mutex_unlock(&in->mu);
  return c;
}

static void slOperatorLoop(slInst *in) {
  sl_job *job = in->job;
  while (!atomic_load(&job->stopping)) {
    slMsg *m[SL_TAKE_MAX];
    int64_t notify = 0;
    int finish = 0, n = 0, rc = SL_OK;
    slChan *c = slInstNext(in, m, &n, &notify, &finish);
    if (c) {
      for (int i = 0; i < n; i++) {
        if (rc == SL_OK && !atomic_load(&job->stopping)) rc = slInstMessage(in, c, m[i]);
        slMsgFree(job, m[i]);
      }
      if (rc || atomic_load(&job->stopping)) return;
      if (!in->ended_sent && slAllEnded(in)) {
        in->ended_sent = 1;
        if (slSdkBroadcast(in, SL_M_END, 0)) return;
      }
      if (slSdkFlushOld(in)) return;
    } else if (notify) {
      if (slInstNotify(in, notify)) return;
    } else if (finish) {
      return;
    }
    if (in->next_ptimer != INT64_MAX && slNowMs() >= in->next_ptimer)
      if (slFireTimers(in, SL_PROCESSING_TIME, slNowMs())) return;
  }
}

/* ---- source instances -------------------------------------------------------- */

static void slSourceEvents(slInst *in, int64_t *trigger, int *savepoint, int *final, int64_t *notify,
                           int *finish) {
  pthread_mutex_lock(&in->mu);
  atomic_store(&in->has_event, 0);
  if (in->trigger) {
    *trigger = in->trigger;
    *savepoint = in->trigger_savepoint;
    *final = in->trigger_final;
    in->trigger = 0;
  }
  if (in->notify_upto > in->notified) *notify = in->notify_upto;
  *finish = in->finish;
  pthread_mutex_unlock(&in->mu);
}

static void slSourceLoop(slInst *in) {
  sl_job *job = in->job;
  const sl_source *src = &in->stage->src;
  int64_t delay = src->watermark_delay_ms;
  while (!atomic_load(&job->stopping)) {
    if (atomic_load(&in->has_event)) {
      int64_t trigger = 0, notify = 0;
      int savepoint = 0, final = 0, finish = 0;
      slSourceEvents(in, &trigger, &savepoint, &final, &notify, &finish);
      if (trigger) {
        if (slInstCheckpoint(in, trigger, savepoint)) return;
        if (final && !in->ended_sent) {
          in->ended_sent = 1;
          if (slSdkBroadcast(in, SL_M_END, 0)) return;
        }
      }
      if (notify && slInstNotify(in, notify)) return;
      if (finish) return;
      continue;
    }
    if (in->done) {
      if (slSdkFlushOutputs(in)) return;
      pthread_mutex_lock(&in->mu);
      while (!atomic_load(&in->has_event) && !atomic_load(&job->stopping))
        pthread_cond_wait(&in->cv_read, &in->mu);
      pthread_mutex_unlock(&in->mu);
      continue;
    }
    int64_t before = in->records;
    int rc = src->read(&in->ctx, src->ud);
    if (atomic_load(&job->stopping)) return;
    /* a read that emitted nothing may be a slow or idle source: what it
    ** gathered goes on; otherwise what waited longer than the linger */
    if (in->records == before ? slSdkFlushOutputs(in) : slSdkFlushOld(in)) return;
    if (rc == SL_DONE) {
      in->done = 1;
      if (slSdkBroadcast(in, SL_M_WATERMARK, INT64_MAX)) return;
      in->wm_sent = INT64_MAX;
      pthread_mutex_lock(&job->mu);
      job->sources_done++;
      pthread_cond_broadcast(&job->cv);
      pthread_mutex_unlock(&job->mu);
      continue;
    }
    if (rc) {
      slCallbackFailed(in, rc, "read");
      return;
    }
    if (delay >= 0 && in->max_ts - delay > in->wm_sent) {
      int64_t now = slNowMs();
      if (now - in->wm_last_ms >= 50) {
        in->wm_last_ms = now;
        if (sl_ctx_emit_watermark(&in->ctx, in->max_ts - delay)) return;
      }
    }
  }
}

/* ---- instance threads ---------------------------------------------------------- */

static void *slInstMain(void *arg) {
  slInst *in = arg;
  sl_job *job = in->job;
  int rc = SL_OK;
  if (in->stage->is_source) {
    if (in->stage->src.open) rc = in->stage->src.open(&in->ctx, in->stage->src.ud);
    if (rc) slCallbackFailed(in, rc, "open");
    if (rc == SL_OK && in->restored) {
      int64_t pos = 0, done = 0;
      /* a failed read is an error, not an absent value: it may also have
      ** made SQLite roll back the store's transaction */
      int mrc = slStoreMetaGetInt(in->store, "source_position", &pos);
      if (mrc == SL_OK) {
        rc = in->stage->src.seek(&in->ctx, pos, in->stage->src.ud);
        if (rc) slCallbackFailed(in, rc, "seek");
      } else if (mrc != SL_NOTFOUND) {
        rc = slCallbackFailed(in, mrc, "reading its position");
      }
      mrc = rc ? SL_NOTFOUND : slStoreMetaGetInt(in->store, "source_max_ts", &in->max_ts);
      if (mrc != SL_OK && mrc != SL_NOTFOUND) rc = slCallbackFailed(in, mrc, "reading its position");
      mrc = rc ? SL_NOTFOUND : slStoreMetaGetInt(in->store, "source_done", &done);
      if (mrc != SL_OK && mrc != SL_NOTFOUND) rc = slCallbackFailed(in, mrc, "reading its position");
      if (rc == SL_OK && mrc == SL_OK && done) {
        /* it had finished before: it reads nothing more */
        rc = slSdkBroadcast(in, SL_M_WATERMARK, INT64_MAX);
        in->done = 1;
        in->wm_sent = INT64_MAX;
        pthread_mutex_lock(&job->mu);
        job->sources_done++;
        pthread_cond_broadcast(&job->cv);
        pthread_mutex_unlock(&job->mu);
      }
    }
    if (rc == SL_OK) slSourceLoop(in);
    if (in->stage->src.close) in->stage->src.close(&in->ctx, in->stage->src.ud);
  } else {
    if (in->stage->op.open) rc = in->stage->op.open(&in->ctx, in->stage->op.ud);
    if (rc) slCallbackFailed(in, rc, "open");
    if (rc == SL_OK && in->restored) rc = slInstNotify(in, in->restored_id);
    if (rc == SL_OK) {
      rc = sl_timer_peek(in->store, SL_PROCESSING_TIME, &in->next_ptimer);
      if (rc == SL_NOTFOUND) in->next_ptimer = INT64_MAX;
      if (rc == SL_NOTFOUND) rc = SL_OK;
      else if (rc) slCallbackFailed(in, rc, "a timer");
    }
    if (rc == SL_OK) slOperatorLoop(in);
    if (in->stage->op.close) {
      int crc = in->stage->op.close(&in->ctx, in->stage->op.ud);
      if (crc && !atomic_load(&job->stopping)) slCallbackFailed(in, crc, "close");
    }
  }
  pthread_mutex_lock(&job->mu);
  job->threads_left--;
  pthread_cond_broadcast(&job->cv);
  pthread_mutex_unlock(&job->mu);
  return NULL;
}

/* ---- the snapshot writer --------------------------------------------------------- */

/* The writer takes the snapshots in turn. Before each backup it commits the
** frozen changes of every snapshot waiting (a few milliseconds each), so that
** no instance that must write to its state file waits behind the backup of
** another instance. */
static void *slWriterMain(void *arg) {
  sl_job *job = arg;
  pthread_mutex_lock(&job->mu);
  for (;;) {
    slSnapTask *t;
    void *waiting[32];
    int nwaiting = 0;
    char err[SL_ERRMSG_MAX];
    int rc;
    while (!job->tasks && !job->writer_stop) pthread_cond_wait(&job->cv_writer, &job->mu);
    if (!job->tasks) break;
    t = job->tasks;
    job->tasks = t->next;
    if (!job->tasks) job->tasks_tail = NULL;
    for (slSnapTask *q = job->tasks; q && nwaiting < 32; q = q->next) waiting[nwaiting++] = q->snap;
    pthread_mutex_unlock(&job->mu);
    if (!atomic_load(&job->stopping)) {
      slSdkSnapCommit(t->snap);
      for (int i = 0; i < nwaiting; i++) slSdkSnapCommit(waiting[i]);
    }
    err[0] = 0;
    rc = atomic_load(&job->stopping) ? SL_ERROR : slSdkSnapRun(job, t->snap, err);
    atomic_store(&t->pending->ran, 1);
    slAck(job, t->id, rc, err);
    slFree(&job->alloc, t);
    pthread_mutex_lock(&job->mu);
  }
  pthread_mutex_unlock(&job->mu);
  return NULL;
}

/* ---- setting up and tearing down instances ------------------------------------------ */

static int slInstOpen(sl_job *job, slStage *st, slInst *in) {
  sl_config cfg;
  int rc;
  sl_config_init(&cfg);
  cfg.memory_budget = job->cfg.memory_budget;
  cfg.max_parallelism = job->cfg.max_parallelism;
  cfg.allocator = &job->alloc;
  cfg.vfs = job->vfs;
  rc = sl_store_open(job->state_dir, st->name, in->index, st->par, &cfg, &in->store);
  if (rc) return slJobFail(job, rc, "cannot open the state of '%s' instance %d: %s", st->name,
                           in->index, sl_errmsg(in->store));
  if (!st->is_source && st->op.n_states) {
    in->states = slMalloc(&job->alloc, sizeof *in->states * (size_t)st->op.n_states);
    if (!in->states) return slJobFail(job, SL_NOMEM, "out of memory");
    for (int k = 0; k < st->op.n_states; k++) {
      rc = sl_state_register(in->store, &st->op.states[k], &in->states[k]);
      if (rc) return slJobFail(job, rc, "operator '%s': %s", st->name, sl_errmsg(in->store));
    }
  }
  {
    size_t size = st->is_source ? st->src.instance_size : st->op.instance_size;
    if (size) {
      in->mem = slMalloc(&job->alloc, size);
      if (!in->mem) return slJobFail(job, SL_NOMEM, "out of memory");
      memset(in->mem, 0, size);
    }
  }
  return SL_OK;
}

static int slNoMem(sl_job *job) {
  pthread_mutex_lock(&job->mu);
  if (!job->failed_rc) {
    job->failed_rc = SL_NOMEM;
    snprintf(job->errmsg, sizeof job->errmsg, "out of memory");
  }
  pthread_mutex_unlock(&job->mu);
  return SL_NOMEM;
}

/* Builds instances, channels and outputs of every stage. */
static int slJobBuild(sl_job *job) {
  size_t cap = job->cfg.channel_capacity;
  for (int s = 0; s < job->nstages; s++) {
    slStage *st = &job->stages[s];
    st->inst = slMalloc(&job->alloc, sizeof *st->inst * (size_t)st->par);
    if (!st->inst) return slNoMem(job);
    memset(st->inst, 0, sizeof *st->inst * (size_t)st->par);
    for (int i = 0; i < st->par; i++) {
      slInst *in = &st->inst[i];
      in->job = job;
      in->stage = st;
      in->index = i;
      in->ctx.inst = in;
      in->wm = INT64_MIN;
      in->max_ts = INT64_MIN;
      in->wm_sent = INT64_MIN;
      in->next_ptimer = INT64_MAX;
      pthread_mutex_init(&in->mu, NULL);
      pthread_cond_init(&in->cv_read, NULL);
      pthread_cond_init(&in->cv_write, NULL);
      atomic_init(&in->has_event, 0);
      job->ninst++;
      if (st->is_source) job->nsource_inst++;
    }
  }
  for (int e = 0; e < job->nedges; e++) {
    slEdge *ed = &job->edges[e];
    slStage *f = &job->stages[ed->from], *t = &job->stages[ed->to];
    for (int i = 0; i < f->par; i++) {
      slInst *in = &f->inst[i];
      slOut *o;
      slOut *p = slRealloc(&job->alloc, in->out, sizeof *p * (size_t)(in->nout + 1));
      if (!p) return slNoMem(job);
      in->out = p;
      o = &in->out[in->nout++];
      memset(o, 0, sizeof *o);
      o->edge = ed;
      o->to = t;
      o->rr = i % t->par;
      o->chan = slMalloc(&job->alloc, sizeof *o->chan * (size_t)t->par);
      if (!o->chan) return slNoMem(job);
      memset(o->chan, 0, sizeof *o->chan * (size_t)t->par);
      o->nchan = t->par; /* only now: teardown frees nchan channels of chan */
      for (int j = 0; j < t->par; j++) {
        slInst *to = &t->inst[j];
        slChan **q;
        if (ed->how == SL_FORWARD && j != i) continue;
        o->chan[j] = slMalloc(&job->alloc, sizeof(slChan));
        if (!o->chan[j] || slChanInit(job, o->chan[j], cap, ed)) return slNoMem(job);
        q = slRealloc(&job->alloc, to->in, sizeof *q * (size_t)(to->nin + 1));
        if (!q) return slNoMem(job);
        to->in = q;
        to->in[to->nin++] = o->chan[j];
      }
    }
  }
  return SL_OK;
}

static void slJobTeardown(sl_job *job) {
  for (int s = 0; s < job->nstages; s++) {
    slStage *st = &job->stages[s];
    if (!st->inst) continue;
    for (int i = 0; i < st->par; i++) {
      slInst *in = &st->inst[i];
      if (st->is_source) job->stats.records_in += in->records;
      while (in->snaps) {
        slPendingSnap *p = in->snaps;
        in->snaps = p->next;
        slSdkSnapEnd(in, p->snap, 0);
        slFree(&job->alloc, p);
      }
      for (int o = 0; o < in->nout; o++) {
        for (int c = 0; c < in->out[o].nchan; c++) {
          slChanFree(job, in->out[o].chan[c]);
          slFree(&job->alloc, in->out[o].chan[c]);
        }
        slFree(&job->alloc, in->out[o].chan);
      }
      slFree(&job->alloc, in->out);
      slFree(&job->alloc, in->in);
      sl_store_close(in->store);
      slFree(&job->alloc, in->states);
      slFree(&job->alloc, in->mem);
      pthread_mutex_destroy(&in->mu);
      pthread_cond_destroy(&in->cv_read);
      pthread_cond_destroy(&in->cv_write);
    }
    slFree(&job->alloc, st->inst);
    st->inst = NULL;
  }
  while (job->tasks) {
    slSnapTask *t = job->tasks;
    job->tasks = t->next;
    slFree(&job->alloc, t);
  }
  job->tasks_tail = NULL;
}

/* ---- the coordinator ---------------------------------------------------------------- */

static void slForEachInst(sl_job *job, void (*fn)(slInst *, void *), void *arg) {
  for (int s = 0; s < job->nstages; s++)
    for (int i = 0; i < job->stages[s].par; i++) fn(&job->stages[s].inst[i], arg);
}

static void slTriggerOne(slInst *in, void *arg) {
  const int64_t *v = arg;
  if (!in->stage->is_source) return;
  pthread_mutex_lock(&in->mu);
  in->trigger = v[0];
  in->trigger_savepoint = (int)v[1];
  in->trigger_final = (int)v[2];
  atomic_store(&in->has_event, 1);
  pthread_cond_broadcast(&in->cv_read);
  pthread_mutex_unlock(&in->mu);
}

static void slNotifyOne(slInst *in, void *arg) {
  const int64_t *v = arg;
  pthread_mutex_lock(&in->mu);
  if (v[0] > in->notify_upto) in->notify_upto = v[0];
  if (v[1]) in->finish = 1;
  atomic_store(&in->has_event, 1);
  pthread_cond_broadcast(&in->cv_read);
  pthread_mutex_unlock(&in->mu);
}

static int slCmpI64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void slJobPauseStats(sl_job *job) {
  if (!job->npauses) return;
  qsort(job->pauses, job->npauses, sizeof *job->pauses, slCmpI64);
  job->stats.pause_p50_us = job->pauses[job->npauses / 2];
  job->stats.pause_p99_us = job->pauses[(job->npauses * 99) / 100 < job->npauses ? (job->npauses * 99) / 100 : job->npauses - 1];
  job->stats.pause_max_us = job->pauses[job->npauses - 1];
}

/* The coordinator's loop; runs on the thread that called sl_job_run(). */
static void slCoordinate(sl_job *job, int64_t next_id) {
  const int64_t interval = job->cfg.checkpoint_interval_ms;
  int64_t last_end = slNowMs(), started = 0;
  int consecutive = 0, finishing = 0, stop_after = 0;
  pthread_mutex_lock(&job->mu);
  while (!job->failed_rc && job->threads_left > 0) {
    int64_t now = slNowMs();
    if (job->pending_id) {
      if (job->acks == job->ninst) {
        int64_t id = job->pending_id;
        int sp = job->pending_savepoint, rc;
        job->pending_id = 0;
        if (job->ack_failed) {
          rc = job->ack_failed;
          pthread_mutex_unlock(&job->mu);
          slSdkAbort(job, id, sp);
          slJobLog(job, "checkpoint %lld failed: %s", (long long)id, job->ack_err);
          pthread_mutex_lock(&job->mu);
        } else {
          pthread_mutex_unlock(&job->mu);
          rc = slSdkPublish(job, id, sp);
          pthread_mutex_lock(&job->mu);
        }
        if (rc) {
          job->stats.failed_checkpoints++;
          if (++consecutive > job->cfg.tolerable_failures) {
            pthread_mutex_unlock(&job->mu);
            slJobFail(job, rc, "checkpoint %lld failed, more than %d time(s) in a row: %s",
                      (long long)id, job->cfg.tolerable_failures,
                      job->ack_err[0] ? job->ack_err : sl_errmsg(job));
            pthread_mutex_lock(&job->mu);
            break;
          }
          if (id == job->final_id) job->final_id = 0; /* try the final one again */
          if (sp) stop_after = 0;                     /* and the savepoint to stop with */
        } else {
          int64_t v[2];
          consecutive = 0;
          job->stats.checkpoints++;
          job->stats.last_checkpoint_id = id;
          v[0] = id;
          v[1] = id == job->final_id || (sp && stop_after);
          if (v[1]) finishing = 1;
          pthread_mutex_unlock(&job->mu);
          slJobLog(job, "%s %lld complete", sp ? "savepoint" : "checkpoint", (long long)id);
          slForEachInst(job, slNotifyOne, v);
          pthread_mutex_lock(&job->mu);
        }
        last_end = slNowMs();
      } else if (now - started > job->cfg.checkpoint_timeout_ms) {
        int64_t id = job->pending_id;
        int sp = job->pending_savepoint;
        job->pending_id = 0;
        job->stats.failed_checkpoints++;
        pthread_mutex_unlock(&job->mu);
        slSdkAbort(job, id, sp);
        slJobLog(job, "checkpoint %lld timed out after %lld ms", (long long)id,
                 (long long)job->cfg.checkpoint_timeout_ms);
        pthread_mutex_lock(&job->mu);
        if (++consecutive > job->cfg.tolerable_failures) {
          pthread_mutex_unlock(&job->mu);
          slJobFail(job, SL_ERROR, "checkpoint %lld timed out after %lld ms", (long long)id,
                    (long long)job->cfg.checkpoint_timeout_ms);
          pthread_mutex_lock(&job->mu);
          break;
        }
        if (id == job->final_id) job->final_id = 0;
        if (sp) stop_after = 0;
        last_end = slNowMs();
      }
    } else if (!finishing) {
      int stop = atomic_load(&job->stop_requested);
      int64_t v[3] = {0, 0, 0};
      if (stop == 1) {
        atomic_store(&job->stopping, 1);
        pthread_mutex_unlock(&job->mu);
        slJobFail(job, SL_OK, "stopped");
        pthread_mutex_lock(&job->mu);
        break;
      }
      if (stop == 2 && !stop_after) {
        stop_after = 1;
        v[1] = 1;
      } else if (job->sources_done == job->nsource_inst && !job->final_id) {
        v[2] = 1;
      } else if (interval > 0 && now - last_end >= interval && now - last_end >= job->cfg.min_pause_ms) {
        v[0] = 1;
      }
      if (v[0] || v[1] || v[2]) {
        int64_t id = next_id++;
        job->pending_id = id;
        job->pending_savepoint = (int)v[1];
        job->acks = 0;
        job->ack_failed = 0;
        job->ack_err[0] = 0;
        if (v[2]) job->final_id = id;
        started = now;
        v[0] = id;
        pthread_mutex_unlock(&job->mu);
        if (slSdkChkTarget(job, id, (int)v[1])) {
          pthread_mutex_lock(&job->mu);
          break;
        }
        slForEachInst(job, slTriggerOne, v);
        pthread_mutex_lock(&job->mu);
        continue;
      }
    }
    {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 5 * 1000000;
      if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
      pthread_cond_timedwait(&job->cv, &job->mu, &ts);
    }
  }
  pthread_mutex_unlock(&job->mu);
}

int sl_job_run(sl_job *job) {
  int64_t restored_id = 0;
  int restored = 0, rc;
  if (!job || job->hdr.magic != SL_MAGIC_JOB) return SL_MISUSE;
  job->errmsg[0] = 0;
  if (job->ran) return slError(job->errmsg, SL_MISUSE, "the job has run already; make a new one");
  if (!job->state_dir) return slError(job->errmsg, SL_MISUSE, "the job was not created successfully");
  rc = slJobCheck(job);
  if (rc) return rc;
  job->ran = 1;
  rc = slJobBuild(job);
  if (rc == SL_OK) rc = slSdkChkOpen(job, &restored_id, &restored);
  for (int s = 0; s < job->nstages && rc == SL_OK; s++) {
    slStage *st = &job->stages[s];
    for (int i = 0; i < st->par && rc == SL_OK; i++) {
      rc = slInstOpen(job, st, &st->inst[i]);
      st->inst[i].restored = restored;
      st->inst[i].restored_id = restored_id;
      st->inst[i].notified = 0;
    }
  }
  if (rc == SL_OK) {
    if (restored) slJobLog(job, "restored from checkpoint %lld", (long long)restored_id);
    job->threads_left = 0;
    if (pthread_create(&job->writer, NULL, slWriterMain, job) == 0) job->writer_started = 1;
    else rc = slJobFail(job, SL_ERROR, "cannot start a thread: %s", strerror(errno));
    for (int s = 0; s < job->nstages && rc == SL_OK; s++)
      for (int i = 0; i < job->stages[s].par && rc == SL_OK; i++) {
        slInst *in = &job->stages[s].inst[i];
        pthread_mutex_lock(&job->mu);
        job->threads_left++;
        pthread_mutex_unlock(&job->mu);
        if (pthread_create(&in->thread, NULL, slInstMain, in) != 0) {
          pthread_mutex_lock(&job->mu);
          job->threads_left--;
          pthread_mutex_unlock(&job->mu);
          rc = slJobFail(job, SL_ERROR, "cannot start a thread: %s", strerror(errno));
        } else {
          in->started = 1;
        }
      }
    if (rc == SL_OK) slCoordinate(job, job->next_id);
    if (!job->failed_rc) {
      /* finished: every instance closes on its own */
    }
    for (int s = 0; s < job->nstages; s++)
      for (int i = 0; i < job->stages[s].par; i++)
        if (job->stages[s].inst[i].started) pthread_join(job->stages[s].inst[i].thread, NULL);
    if (job->writer_started) {
      pthread_mutex_lock(&job->mu);
      job->writer_stop = 1;
      pthread_cond_broadcast(&job->cv_writer);
      pthread_mutex_unlock(&job->mu);
      pthread_join(job->writer, NULL);
    }
  }
  pthread_mutex_lock(&job->mu);
  slJobPauseStats(job);
  if (!rc) rc = job->failed_rc;
  pthread_mutex_unlock(&job->mu);
  slJobTeardown(job);
  slSdkChkCleanup(job, job->pending_savepoint ? 0 : job->pending_id);
  slSdkChkClose(job);
  if (rc == SL_OK) job->errmsg[0] = 0;
  return rc;
}
