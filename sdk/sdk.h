/*
** sdk.h — internals of the SDK: messages, bounded channels, stages and
** their instances, the job, and the checkpoint hooks that connect the runner
** to the snapshot layer.
*/
#ifndef SL_SDK_H
#define SL_SDK_H

#include <pthread.h>
#include <stdatomic.h>

#include "store/store.h"

/* What flows on a channel. */
enum { SL_M_RECORD = 1, SL_M_WATERMARK, SL_M_BARRIER, SL_M_END };

typedef struct slMsg {
  int kind;
  int n;
  int64_t ts;  /* record: event time; watermark: its time; barrier: checkpoint id */
  sl_value f[]; /* record fields, then their TEXT/BLOB payloads */
} slMsg;

/* Records a producer gathers for one channel before it hands them over
** under one lock (and at most one wake-up of the reader). */
#define SL_CHAN_BATCH 64

/* A bounded channel from one upstream instance to one downstream instance.
** The ring is guarded by the downstream instance's mutex; `pend` belongs to
** the upstream instance's thread alone. */
typedef struct slChan {
  slMsg **ring;
  size_t cap, head, count;
  slMsg *pend[SL_CHAN_BATCH]; /* records not yet handed over, in order */
  int npend;
  int64_t pend_since_us;     /* when the oldest of them was made */
  int blocked;             /* held back while aligning a barrier */
  int got_barrier;         /* delivered the barrier being aligned */
  int ended;
  int64_t wm;              /* the last watermark that came through */
  struct slEdge *edge;     /* the edge it belongs to (key fields) */
} slChan;

typedef struct slInst slInst;
typedef struct slStage slStage;

/* A connection between two stages. */
typedef struct slEdge {
  int from, to, how;
  int nkey;
  int key[SL_MAX_KEY_COLUMNS]; /* field indexes in from's output */
} slEdge;

/* One outgoing edge, seen from an upstream instance. */
typedef struct slOut {
  slEdge *edge;
  slStage *to;
  slChan **chan;           /* to each downstream instance */
  int nchan;
  int rr;                  /* round robin */
} slOut;

/* The checkpoint (or savepoint) an instance took and has not yet seen
** complete. */
typedef struct slPendingSnap {
  int64_t id;
  void *snap;              /* snapshot handle */
  atomic_int ran;          /* the writer thread is done with it */
  struct slPendingSnap *next;
} slPendingSnap;

struct sl_ctx {
  slInst *inst;
};

struct slInst {
  sl_job *job;
  slStage *stage;
  int index;
  sl_ctx ctx;
  sl_store *store;
  sl_state **states;
  void *mem;
  pthread_t thread;
  int started;
  /* inputs and events, guarded by mu */
  pthread_mutex_t mu;
  pthread_cond_t cv_read;  /* data or an event for this instance */
  pthread_cond_t cv_write; /* room in one of its input channels */
  slChan **in;
  int nin, rr;
  int64_t notify_upto;     /* the coordinator's newest completed checkpoint */
  int64_t trigger;         /* sources: the barrier to inject next */
  int trigger_savepoint;   /* sources: it is a savepoint */
  int trigger_final;       /* sources: the last checkpoint; END follows */
  atomic_int has_event;    /* something above changed */
  int finish;              /* the coordinator says: close and leave */
  /* the instance's own thread only */
  slOut *out;
  int nout;
  int64_t notified;
  int64_t wm;
  int64_t max_ts, wm_sent;
  int64_t wm_last_ms;
  int64_t aligning;        /* barrier being aligned, 0: none */
  int64_t aligned;         /* the last barrier aligned: its checkpoint is taken */
  int aligning_savepoint;
  int nbarrier;
  int ended_sent;
  int done;                /* sources: read() said SL_DONE */
  int64_t records;         /* sources: records emitted */
  int restored;
  int64_t restored_id;
  int64_t next_ptimer;     /* the earliest processing-time timer */
  slPendingSnap *snaps;
  char errbuf[SL_ERRMSG_MAX]; /* set by sl_ctx_error() */
};

struct slStage {
  char *name;
  int is_source;
  sl_source src;
  sl_operator op;
  const sl_column *out;
  int n_out;
  int par;
  slInst *inst;            /* par instances */
  int nin;                 /* incoming edges */
};

/* A snapshot job for the writer thread. */
typedef struct slSnapTask {
  slInst *inst;
  int64_t id;
  void *snap;
  slPendingSnap *pending;
  struct slSnapTask *next;
} slSnapTask;

struct sl_job {
  slHandle hdr;
  char errmsg[SL_ERRMSG_MAX];
  sl_allocator alloc;
  sl_fs fs;                /* the file layer (complete: slSnapFsInit) */
  sl_job_config cfg;
  char *state_dir, *checkpoint_dir, *savepoint, *vfs;
  slStage *stages;
  int nstages, capstages;
  slEdge *edges;
  int nedges, capedges;
  int ran;
  /* run-time, guarded by mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* the coordinator waits here */
  atomic_int stopping;     /* leave as soon as possible */
  atomic_int stop_requested;
  char stop_savepoint[256];
  int failed_rc;
  int sources_done;
  int nsource_inst;
  int64_t final_id;        /* the final checkpoint, once triggered */
  int threads_left;
  int64_t pending_id;      /* checkpoint in flight, 0: none */
  int pending_savepoint;
  int acks, ack_failed;
  char ack_err[SL_ERRMSG_MAX];
  int ninst;
  slSnapTask *tasks, *tasks_tail;
  pthread_t writer;
  int writer_started, writer_stop;
  pthread_cond_t cv_writer;
  int64_t *pauses;         /* sync pauses in microseconds */
  size_t npauses, cappauses;
  sl_job_stats stats;
  sl_chkdir *chkdir;       /* checkpoint storage */
  int64_t next_id;         /* the id of the next checkpoint */
  char target[4096];       /* the directory of the checkpoint in flight */
  int64_t aborted[16];     /* checkpoints aborted (late writers may still */
  int naborted;            /* have made files for them) */
  sl_snapshot_info *infos; /* written snapshots not yet published */
  int ninfos, capinfos;
};

/* job.c */
SL_PRIVATE int slJobFail(sl_job *job, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
SL_PRIVATE void slJobLog(sl_job *job, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

SL_PRIVATE int slJobCheck(sl_job *job);
SL_PRIVATE int slSdkBroadcast(slInst *in, int kind, int64_t ts);

/* channel.c */
SL_PRIVATE slMsg *slMsgNew(sl_job *job, int kind, int64_t ts, const sl_value *f, int n);
SL_PRIVATE void slMsgFree(sl_job *job, slMsg *m);
SL_PRIVATE int slChanInit(sl_job *job, slChan *c, size_t cap, slEdge *edge);
SL_PRIVATE void slChanFree(sl_job *job, slChan *c);
/* Appends m to channel c of instance `to` (a message other than a record
** after the records gathered for c), waiting while it is full. */
SL_PRIVATE int slChanPush(slInst *to, slChan *c, slMsg *m);
/* Gathers record m for channel c; hands the gathered ones over when there
** are SL_CHAN_BATCH of them. */
SL_PRIVATE int slChanPushRecord(slInst *to, slChan *c, slMsg *m);
/* Hands over what is gathered for c. */
SL_PRIVATE int slChanFlush(slInst *to, slChan *c);
/* Hands over what every output of `in` has gathered: before it waits, and
** (sources) when the oldest gathered record is older than a millisecond. */
SL_PRIVATE int slSdkFlushOutputs(slInst *in);
/* Hands over what has waited longer than SL_CHAN_LINGER_US. */
SL_PRIVATE int slSdkFlushOld(slInst *in);
#define SL_CHAN_LINGER_US 1000

/* chk.c: the checkpoint hooks */
SL_PRIVATE int slSdkChkOpen(sl_job *job, int64_t *restored_id, int *restored);
SL_PRIVATE int slSdkChkTarget(sl_job *job, int64_t id, int savepoint);
SL_PRIVATE int slSdkSnapBegin(slInst *inst, int64_t id, int savepoint, void **snap);
SL_PRIVATE int slSdkSnapRun(sl_job *job, void *snap, char *err);
/* The first part of slSdkSnapRun(): the snapshot's frozen changes committed. */
SL_PRIVATE void slSdkSnapCommit(void *snap);
SL_PRIVATE void slSdkSnapEnd(slInst *inst, void *snap, int completed);
SL_PRIVATE int slSdkPublish(sl_job *job, int64_t id, int savepoint);
SL_PRIVATE void slSdkAbort(sl_job *job, int64_t id, int savepoint);
SL_PRIVATE void slSdkChkCleanup(sl_job *job, int64_t in_flight);
SL_PRIVATE void slSdkChkClose(sl_job *job);

#endif
