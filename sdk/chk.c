/*
** chk.c — the runner's side of checkpoints: the checkpoint directory of a
** job, restoring the job's state files when it starts, the two parts of each
** instance's snapshot, and publishing or discarding a checkpoint.
*/
#include <stdio.h>
#include <string.h>

#include "sdk/sdk.h"
#include "snapshot/snapshot.h"

static void slSdkReport(void *ud, int rc, const char *msg) {
  sl_job *job = ud;
  if (rc) slJobLog(job, "%s: %s", sl_errstr(rc), msg);
  else slJobLog(job, "%s", msg);
}

/* Removes the working state files of a stage (*.db with -wal and -shm) so
** that a job without a checkpoint to restore starts empty. */
static int slSdkClearStage(sl_job *job, const slStage *st) {
  char path[4096], err[SL_ERRMSG_MAX];
  const char *n;
  slDir d;
  int rc, r = SL_DONE;
  snprintf(path, sizeof path, "%s/%s", job->state_dir, st->name);
  rc = slSnapDirOpen(err, &job->fs, path, &d);
  if (rc == SL_NOTFOUND) return SL_OK;
  if (rc) return slJobFail(job, rc, "%s", err);
  while (rc == SL_OK && (r = slSnapDirNext(err, &d, &n)) == SL_ROW) {
    const char *dot = strstr(n, ".db");
    char file[4352];
    if (!dot || (strcmp(dot, ".db") && strcmp(dot, ".db-wal") && strcmp(dot, ".db-shm") &&
                 strcmp(dot, ".db-journal")))
      continue;
    snprintf(file, sizeof file, "%s/%s", path, n);
    rc = slSnapUnlink(err, &job->fs, file);
  }
  if (rc == SL_OK && r != SL_DONE) rc = r;
  slSnapDirClose(&d);
  return rc ? slJobFail(job, rc, "%s", err) : SL_OK;
}

int slSdkChkOpen(sl_job *job, int64_t *restored_id, int *restored) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  sl_rescale *rs;
  int rc;
  *restored = 0;
  *restored_id = 0;
  sl_chkdir_config_init(&cfg);
  cfg.keep = job->cfg.retain;
  cfg.max_bytes = job->cfg.retain_bytes;
  cfg.allocator = &job->alloc;
  cfg.report = slSdkReport;
  cfg.report_ud = job;
  cfg.fs = &job->fs;
  cfg.vfs = job->vfs;
  rc = sl_chkdir_open(job->checkpoint_dir, &cfg, &cd);
  job->chkdir = cd;
  if (rc) return slJobFail(job, rc, "cannot open the checkpoint directory: %s", sl_errmsg(cd));
  /* the working files are never the truth: start from a checkpoint or empty */
  for (int s = 0; s < job->nstages; s++) {
    rc = slSdkClearStage(job, &job->stages[s]);
    if (rc) return rc;
  }
  rc = sl_chkdir_next_id(cd, &job->next_id);
  if (rc) return slJobFail(job, rc, "%s", sl_errmsg(cd));
  if (job->cfg.no_restore) return SL_OK;
  rs = slMalloc(&job->alloc, sizeof *rs * (size_t)job->nstages);
  if (!rs) return slJobFail(job, SL_NOMEM, "out of memory");
  for (int s = 0; s < job->nstages; s++) {
    rs[s].op = job->stages[s].name;
    rs[s].parallelism = job->stages[s].par;
  }
  rc = sl_chkdir_restore(cd, 0, job->savepoint, job->state_dir, rs, job->nstages, restored_id);
  slFree(&job->alloc, rs);
  if (rc == SL_NOTFOUND && !job->savepoint) return SL_OK;
  if (rc) return slJobFail(job, rc, "cannot restore: %s", sl_errmsg(cd));
  *restored = 1;
  return SL_OK;
}

int slSdkChkTarget(sl_job *job, int64_t id, int savepoint) {
  const char *path = NULL;
  int rc = sl_chkdir_target(job->chkdir, id, savepoint ? job->stop_savepoint : NULL, &path);
  if (rc) return slJobFail(job, rc, "%s", sl_errmsg(job->chkdir));
  pthread_mutex_lock(&job->mu);
  snprintf(job->target, sizeof job->target, "%s", path);
  pthread_mutex_unlock(&job->mu);
  return SL_OK;
}

int slSdkSnapBegin(slInst *in, int64_t id, int savepoint, void **snap) {
  sl_snapshot_config cfg;
  sl_snapshot *sn = NULL;
  char target[sizeof in->job->target];
  int rc;
  sl_snapshot_config_init(&cfg);
  if (in->job->cfg.zstd_level > 0) cfg.level = in->job->cfg.zstd_level;
  cfg.fs = &in->job->fs;
  pthread_mutex_lock(&in->job->mu);
  memcpy(target, in->job->target, sizeof target);
  pthread_mutex_unlock(&in->job->mu);
  rc = sl_snapshot_begin(in->store, target, id, savepoint ? SL_SAVEPOINT : SL_CHECKPOINT, &cfg, &sn);
  *snap = sn;
  return rc;
}

int slSdkSnapRun(sl_job *job, void *snap, char *err) {
  sl_snapshot_info info;
  int rc = sl_snapshot_write(snap);
  if (rc) {
    snprintf(err, SL_ERRMSG_MAX, "%s", sl_errmsg(snap));
    return rc;
  }
  rc = sl_snapshot_get_info(snap, &info);
  if (rc) {
    snprintf(err, SL_ERRMSG_MAX, "%s", sl_errmsg(snap));
    return rc;
  }
  pthread_mutex_lock(&job->mu);
  if (job->ninfos == job->capinfos) {
    int cap = job->capinfos ? job->capinfos * 2 : 16;
    sl_snapshot_info *p = slRealloc(&job->alloc, job->infos, sizeof *p * (size_t)cap);
    if (!p) {
      pthread_mutex_unlock(&job->mu);
      snprintf(err, SL_ERRMSG_MAX, "out of memory");
      return SL_NOMEM;
    }
    job->infos = p;
    job->capinfos = cap;
  }
  job->infos[job->ninfos++] = info;
  pthread_mutex_unlock(&job->mu);
  return SL_OK;
}

void slSdkSnapCommit(void *snap) { slSnapCommit(snap); }

void slSdkSnapEnd(slInst *in, void *snap, int completed) {
  int rc = sl_snapshot_end(snap);
  (void)completed;
  if (rc && rc != SL_MISUSE)
    slJobLog(in->job, "'%s' instance %d: the checkpoint is not recorded in its state file: %s",
             in->stage->name, in->index, sl_errmsg(in->store));
}

/* Keeps only the infos of other checkpoints than `id`; returns how many of
** `id` there were, moved to the front of a copy in *mine. */
static int slSdkTakeInfos(sl_job *job, int64_t id, sl_snapshot_info **mine) {
  int n = 0, k = 0;
  pthread_mutex_lock(&job->mu);
  for (int i = 0; i < job->ninfos; i++) n += job->infos[i].id == id;
  *mine = n ? slMalloc(&job->alloc, sizeof **mine * (size_t)n) : NULL;
  if (n && !*mine) n = -1;
  for (int i = 0, j = 0; i < job->ninfos; i++) {
    if (job->infos[i].id == id) {
      if (*mine) (*mine)[k++] = job->infos[i];
    } else {
      job->infos[j++] = job->infos[i];
    }
  }
  if (n >= 0) job->ninfos -= n;
  pthread_mutex_unlock(&job->mu);
  return n;
}

int slSdkPublish(sl_job *job, int64_t id, int savepoint) {
  sl_snapshot_info *mine = NULL;
  int n = slSdkTakeInfos(job, id, &mine), rc;
  if (n < 0) return slError(job->errmsg, SL_NOMEM, "out of memory");
  rc = sl_chkdir_publish(job->chkdir, id, savepoint ? job->stop_savepoint : NULL, mine, n);
  slFree(&job->alloc, mine);
  if (rc) {
    pthread_mutex_lock(&job->mu);
    snprintf(job->ack_err, sizeof job->ack_err, "cannot publish checkpoint %lld: %s", (long long)id,
             sl_errmsg(job->chkdir));
    pthread_mutex_unlock(&job->mu);
    sl_chkdir_discard(job->chkdir, id, savepoint ? job->stop_savepoint : NULL);
  }
  return rc;
}

void slSdkAbort(sl_job *job, int64_t id, int savepoint) {
  sl_snapshot_info *mine = NULL;
  slSdkTakeInfos(job, id, &mine);
  slFree(&job->alloc, mine);
  sl_chkdir_discard(job->chkdir, id, savepoint ? job->stop_savepoint : NULL);
  if (!savepoint && job->naborted < (int)(sizeof job->aborted / sizeof job->aborted[0]))
    job->aborted[job->naborted++] = id;
}

/* After every thread has stopped: files that late instances wrote for
** aborted checkpoints, or for the one in flight when the job stopped, go. */
void slSdkChkCleanup(sl_job *job, int64_t in_flight) {
  if (!job->chkdir) return;
  for (int i = 0; i < job->naborted; i++) sl_chkdir_discard(job->chkdir, job->aborted[i], NULL);
  job->naborted = 0;
  if (in_flight > 0) sl_chkdir_discard(job->chkdir, in_flight, NULL);
}

void slSdkChkClose(sl_job *job) {
  sl_chkdir_close(job->chkdir);
  job->chkdir = NULL;
  slFree(&job->alloc, job->infos);
  job->infos = NULL;
  job->ninfos = job->capinfos = 0;
}
