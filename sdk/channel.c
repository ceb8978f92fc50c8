/*
** channel.c — messages and the bounded channels between instances. A full
** channel blocks its writer (backpressure); nothing is ever queued without
** a bound.
*/
#include <string.h>

#include "sdk/sdk.h"

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
  while (c->count) {
    slMsgFree(job, c->ring[c->head]);
    c->head = (c->head + 1) % c->cap;
    c->count--;
  }
  slFree(&job->alloc, c->ring);
  c->ring = NULL;
}

/* Appends m to channel c of instance `to`, waiting while it is full. Takes
** ownership of m. Returns SL_ERROR (and frees m) when the job is stopping. */
int slChanPush(slInst *to, slChan *c, slMsg *m) {
  sl_job *job = to->job;
  pthread_mutex_lock(&to->mu);
  while (c->count == c->cap && !atomic_load(&job->stopping)) pthread_cond_wait(&to->cv_write, &to->mu);
  if (atomic_load(&job->stopping)) {
    pthread_mutex_unlock(&to->mu);
    slMsgFree(job, m);
    return SL_ERROR;
  }
  c->ring[(c->head + c->count) % c->cap] = m;
  /* the reader waits only while no readable channel has data: a channel
  ** that had some already cannot be what it waits for */
  if (c->count++ == 0) pthread_cond_signal(&to->cv_read);
  pthread_mutex_unlock(&to->mu);
  return SL_OK;
}
