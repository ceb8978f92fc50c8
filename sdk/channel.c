/*
** channel.c — messages and the bounded channels between instances. A full
** channel blocks its writer (backpressure); nothing is ever queued without
** a bound.
*/
#include <string.h>

#include "sdk/sdk.h"
#include "snapshot/snapshot.h"

slMsg *slMsgNew(sl_job *job, int kind, int64_t ts, const sl_value *f, int n) {
  size_t need = sizeof(slMsg) + sizeof(sl_value) * (size_t)n;
  slMsg *m;
  char *pay;
  for (int i = 0; i < n; i++)
    if (f[i].type == SL_TEXT || f[i].type == SL_BLOB) need += f[i].n + 1;
  m = slMalloc(&job->alloc, need);
  if (!m) return NULL;
  m->kind = kind;
  m->n = n;
  m->ts = ts;
  pay = (char *)&m->f[n];
  for (int i = 0; i < n; i++) {
    m->f[i] = f[i];
    if (f[i].type == SL_TEXT || f[i].type == SL_BLOB) {
      if (f[i].n) memcpy(pay, f[i].v.p, f[i].n);
      pay[f[i].n] = 0;
      m->f[i].v.p = pay;
      pay += f[i].n + 1;
    }
  }
  return m;
}

void slMsgFree(sl_job *job, slMsg *m) { slFree(&job->alloc, m); }

int slChanInit(sl_job *job, slChan *c, size_t cap, slEdge *edge) {
  memset(c, 0, sizeof *c);
  c->ring = slMalloc(&job->alloc, sizeof *c->ring * cap);
  if (!c->ring) return SL_NOMEM;
  c->cap = cap;
  c->wm = INT64_MIN;
  c->edge = edge;
  return SL_OK;
}

void slChanFree(sl_job *job, slChan *c) {
  if (!c || !c->ring) return;
  for (int i = 0; i < c->npend; i++) slMsgFree(job, c->pend[i]);
  c->npend = 0;
  while (c->count) {
    slMsgFree(job, c->ring[c->head]);
    c->head = (c->head + 1) % c->cap;
    c->count--;
  }
  slFree(&job->alloc, c->ring);
  c->ring = NULL;
}

/* Moves n messages into channel c of instance `to` in order, waiting while
** it is full; takes ownership of them. Returns SL_ERROR (and frees those
** not moved) when the job is stopping. */
static int slChanPut(slInst *to, slChan *c, slMsg **m, int n) {
  sl_job *job = to->job;
  int i = 0;
  pthread_mutex_lock(&to->mu);
  while (i < n) {
    while (c->count == c->cap && !atomic_load(&job->stopping)) pthread_cond_wait(&to->cv_write, &to->mu);
    if (atomic_load(&job->stopping)) break;
    /* the reader waits only while no readable channel has data: a channel
    ** that had some already cannot be what it waits for */
    int was_empty = c->count == 0;
    while (i < n && c->count < c->cap) c->ring[(c->head + c->count++) % c->cap] = m[i++];
    if (was_empty) pthread_cond_signal(&to->cv_read);
  }
  pthread_mutex_unlock(&to->mu);
  if (i == n) return SL_OK;
  for (; i < n; i++) slMsgFree(job, m[i]);
  return SL_ERROR;
}

int slChanFlush(slInst *to, slChan *c) {
  int n = c->npend;
  if (!n) return SL_OK;
  c->npend = 0;
  return slChanPut(to, c, c->pend, n);
}

int slChanPush(slInst *to, slChan *c, slMsg *m) {
  if (slChanFlush(to, c)) {
    slMsgFree(to->job, m);
    return SL_ERROR;
  }
  return slChanPut(to, c, &m, 1);
}

int slChanPushRecord(slInst *to, slChan *c, slMsg *m) {
  if (!c->npend) c->pend_since_us = slSnapMonoUs();
  c->pend[c->npend++] = m;
  return c->npend == SL_CHAN_BATCH ? slChanFlush(to, c) : SL_OK;
}
