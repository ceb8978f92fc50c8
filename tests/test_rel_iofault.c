/*
** test_rel_iofault.c — I/O fault loops in SQLite's style: operation N of a
** file layer fails, for N = 1, 2, ... until the operation succeeds, once
** (only N) and persistently (N and every one after), with EIO and with
** ENOSPC. The layer is either the library's file table (sl_fs: snapshot
** files, MANIFESTs, restore, retention, the file sink) or an SQLite VFS shim
** under the state file (open, commit, the snapshot's read connection).
** The operations: a checkpoint (sl_snapshot_begin/write/end of two stores
** and sl_chkdir_publish), a restore (also rescaled), garbage removal and
** retention, a store's whole life over the VFS shim, and a whole SDK job
** with the exactly-once file sink.
**
** Pass: every failing run returns the error code of the fault (SL_IOERR for
** EIO, SL_FULL for ENOSPC) with a message, and nothing crashes or leaks
** (the quick forms run under valgrind and ASan); afterwards the newest
** complete checkpoint is byte-identical to the one before, or is the new
** one and verifies, and restores to exactly the state before or after the
** operation; what a failure leaves behind is removed by the next start
** (sl_chkdir_open()) and retention. Long mode (SL_TEST_LONG) runs every N of
** the SDK job and a job with intermediate checkpoints; the quick form of the
** job samples N with a stride.
*/
#include <pthread.h>
#include <sqlite3.h>

#include "sdk_util.h"
#include "store_util.h"
#include "test_rel_fs.h"
#include "test_snapshot_util.h"

/* ---- the fault ------------------------------------------------------------- */

typedef struct iof {
  pthread_mutex_t mu;
  long count, fail_at;
  int armed, vfs, persistent, err;
  int failed;
  char first[600];   /* the first operation failed */
} iof;

static iof iof_g = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, ""};

/* Counts the operations of the armed layer and fails number fail_at (and,
** when persistent, every one after it). Closes are not counted. */
static int iof_before(void *ud, tf_call *c) {
  iof *f = ud;
  int e = 0;
  if (c->kind == TV_CLOSE) return 0;
  pthread_mutex_lock(&f->mu);
  if (f->armed && (TF_IS_VFS(c->kind) != 0) == f->vfs) {
    long n = ++f->count;
    if (n == f->fail_at || (f->persistent && n > f->fail_at)) {
      if (!f->failed)
        snprintf(f->first, sizeof f->first, "%s (operation %ld) of %.500s", tf_kind_names[c->kind],
                 n, c->path);
      f->failed = 1;
      e = f->err;
    }
  }
  pthread_mutex_unlock(&f->mu);
  return e;
}

static void iof_arm(long at, int persistent, int err, int vfs) {
  pthread_mutex_lock(&iof_g.mu);
  iof_g.count = 0;
  iof_g.fail_at = at;
  iof_g.persistent = persistent;
  iof_g.err = err;
  iof_g.vfs = vfs;
  iof_g.failed = 0;
  iof_g.first[0] = 0;
  iof_g.armed = 1;
  pthread_mutex_unlock(&iof_g.mu);
}

/* Disarms; returns the operations counted. */
static long iof_disarm(void) {
  long n;
  pthread_mutex_lock(&iof_g.mu);
  iof_g.armed = 0;
  n = iof_g.count;
  pthread_mutex_unlock(&iof_g.mu);
  return n;
}

static const sl_fs *iof_fs(void) {
  static const tf_hooks h = {iof_before, NULL, &iof_g};
  tf_setup(&h);
  return &tf_g.fs;
}

typedef struct iof_mode {
  int persistent, err;
  const char *name;
} iof_mode;

static const iof_mode iof_modes[] = {{0, EIO, "EIO once"},
                                     {1, EIO, "EIO persistent"},
                                     {0, ENOSPC, "ENOSPC once"},
                                     {1, ENOSPC, "ENOSPC persistent"}};

/* The code a failed run must return for the mode's errno. */
static int iof_want_rc(const iof_mode *m) {
  return m->err == ENOSPC ? SL_FULL : SL_IOERR;
}

/* A failed run: the code of the fault and a message that names it. */
static void iof_check_failure(const iof_mode *m, long n, int rc, const char *msg) {
  ASSERT_MSG(iof_g.failed, "%s, N = %ld: %s without a fault (%s)", m->name, n, sl_errstr(rc), msg);
  ASSERT_MSG(rc == iof_want_rc(m), "%s, N = %ld (%s): got %s, want %s: %s", m->name, n,
             iof_g.first, sl_errstr(rc), sl_errstr(iof_want_rc(m)), msg);
  ASSERT_MSG(msg && msg[0] && strcmp(msg, "not an error") != 0,
             "%s, N = %ld (%s): %s without a message", m->name, n, iof_g.first, sl_errstr(rc));
}

/* ---- the fixture: one operator "wc" of two instances ------------------------- */

static const char *iof_path(const char *rel) {
  static char buf[8][4096];
  static int i;
  i = (i + 1) % 8;
  return su_pathf(buf[i], sizeof buf[i], "%s/%s", test_dir(), rel);
}

static int iof_owner(int64_t k, int p) {
  sl_value key = sl_int(k);
  int kg = 0, owner = 0;
  ASSERT_OK(sl_key_group(&key, 1, 128, &kg), NULL);
  ASSERT_OK(sl_key_group_owner(128, p, kg, &owner), NULL);
  return owner;
}

static sl_store *iof_open_store(const char *dir, int i, const char *vfs, size_t budget, int *rc) {
  sl_config c;
  sl_store *st = NULL;
  sl_config_init(&c);
  c.vfs = vfs;
  c.memory_budget = budget;
  *rc = sl_store_open(dir, "wc", i, 2, &c, &st);
  return st;
}

static void iof_fill(sl_store **st, sn_states *s, int round) {
  for (int64_t k = round * 37; k < 200 + round * 37; k++) {
    int o = iof_owner(k, 2);
    sn_put_key(st[o], &s[o], k, round);
  }
  for (int i = 0; i < 2; i++) {
    sl_value row[2], tag = sl_text(round ? "r1" : "r0"), mk = sl_text("max"), lim = sl_int(round);
    row[0] = sl_int(i);
    row[1] = sl_int(round * 100 + i);
    ASSERT_OK(sl_list_add(s[i].offsets, row), st[i]);
    ASSERT_OK(sl_list_add(s[i].seen, &tag), st[i]);
    ASSERT_OK(sl_map_put(s[i].rules, &mk, &lim), st[i]);
  }
}

static sl_chkdir *iof_chkdir(const char *dir, int keep, const sl_fs *fs, int *rc) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  sl_chkdir_config_init(&cfg);
  cfg.keep = keep;
  cfg.fs = fs;
  *rc = sl_chkdir_open(dir, &cfg, &cd);
  return cd;
}

/* tmpl/state (two instances of "wc") and tmpl/chk with checkpoints 1..nchk
** of rounds 0..nchk-1; the state files hold round nchk, committed. */
static void iof_build(int nchk) {
  sl_store *st[2];
  sn_states s[2];
  int rc;
  sl_chkdir *cd = iof_chkdir(iof_path("tmpl/chk"), 10, NULL, &rc);
  SN_OK(rc, cd);
  for (int i = 0; i < 2; i++) {
    st[i] = iof_open_store(iof_path("tmpl/state"), i, NULL, 1 << 20, &rc);
    ASSERT_OK(rc, st[i]);
    sn_register(st[i], &s[i]);
  }
  for (int round = 0; round <= nchk; round++) {
    iof_fill(st, s, round);
    for (int i = 0; i < 2; i++) su_commit(st[i]);
    if (round < nchk) sn_checkpoint(cd, st, 2, round + 1, NULL);
  }
  for (int i = 0; i < 2; i++) su_commit(st[i]);
  for (int i = 0; i < 2; i++) su_close(st[i]);
  SN_OK(sl_chkdir_close(cd), NULL);
}

/* Starts w/ afresh as a copy of tmpl/. */
static void iof_reset(void) {
  tf_tree_remove(iof_path("w"));
  tf_tree_copy(iof_path("tmpl"), iof_path("w"));
}

/* The states of instance i of a state directory (NULL if the file is
** missing). */
static char *iof_dump(const char *dir, int i) {
  char p[4096];
  su_db_path(p, sizeof p, dir, "wc", i);
  return su_exists(p) ? su_dump_states(p) : NULL;
}

/* Restores checkpoint id (0: the newest) of chk into a fresh directory r/
** (fault-free, POSIX) with parallelism p; returns the id restored. */
static int64_t iof_restore_into_r(const char *chk, int64_t id, int p) {
  sl_rescale rs = {"wc", p};
  int64_t got = 0;
  int rc;
  sl_chkdir *cd = iof_chkdir(chk, 10, NULL, &rc);
  SN_OK(rc, cd);
  tf_tree_remove(iof_path("r"));
  SN_OK(sl_chkdir_restore(cd, id, NULL, iof_path("r"), &rs, 1, &got), cd);
  SN_OK(sl_chkdir_close(cd), NULL);
  return got;
}

/* The newest complete checkpoint of a directory (0: none), read-only. */
static int64_t iof_newest(const char *chk, int *ncomplete) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  const sl_chk_entry *e = NULL;
  int n = 0;
  int64_t id = 0;
  sl_chkdir_config_init(&cfg);
  cfg.flags = SL_CHKDIR_READONLY;
  SN_OK(sl_chkdir_open(chk, &cfg, &cd), cd);
  SN_OK(sl_chkdir_list(cd, &e, &n), cd);
  if (ncomplete) *ncomplete = 0;
  for (int i = 0; i < n; i++)
    if (e[i].kind == SL_CHECKPOINT && e[i].complete) {
      if (e[i].id > id) id = e[i].id;
      if (ncomplete) (*ncomplete)++;
    }
  sl_chkdir_close(cd);
  return id;
}

/* The part of a tree listing under prefix (e.g. "chk-1/"). */
static char *iof_subtree(const char *tree, const char *prefix) {
  su_buf b = {0, 0, 0};
  const char *p = tree;
  su_addf(&b, "%s", "");
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (strncmp(p, prefix, strlen(prefix)) == 0) su_addf(&b, "%.*s\n", (int)len, p);
    p += len + (nl ? 1 : 0);
  }
  return su_take(&b);
}

/* The checkpoint's files are byte-identical in w/chk and tmpl/chk. */
static void iof_same_checkpoint(int64_t id, const char *what) {
  char prefix[64], *a, *b, *ta = tf_tree(iof_path("tmpl/chk")), *tb = tf_tree(iof_path("w/chk"));
  snprintf(prefix, sizeof prefix, "chk-%lld/", (long long)id);
  a = iof_subtree(ta, prefix);
  b = iof_subtree(tb, prefix);
  ASSERT_MSG(a[0], "the template has no %s", prefix);
  ASSERT_MSG(strcmp(a, b) == 0, "%s: checkpoint %lld is not byte-identical:\nbefore:\n%safter:\n%s",
             what, (long long)id, a, b);
  free(a);
  free(b);
  free(ta);
  free(tb);
}

/* After the next start (garbage removal) and retention, w/chk holds only
** complete checkpoints: no directory without a MANIFEST, no temporary file. */
static void iof_next_start_cleans(const char *what) {
  int rc;
  sl_chkdir *cd = iof_chkdir(iof_path("w/chk"), 10, NULL, &rc);
  const sl_chk_entry *e = NULL;
  int n = 0;
  char *t;
  SN_OK(rc, cd);
  SN_OK(sl_chkdir_gc(cd, NULL), cd);
  SN_OK(sl_chkdir_list(cd, &e, &n), cd);
  for (int i = 0; i < n; i++)
    ASSERT_MSG(e[i].complete && e[i].valid, "%s: %s is left after the next start", what, e[i].path);
  SN_OK(sl_chkdir_close(cd), NULL);
  t = tf_tree(iof_path("w/chk"));
  ASSERT_MSG(!strstr(t, ".tmp"), "%s: a temporary file is left after the next start:\n%s", what, t);
  free(t);
}

/* ---- a checkpoint ------------------------------------------------------------ */

/* Takes checkpoint 2 of the two stores of w/state into w/chk through the
** faulty table; returns the first error and its message. */
static int iof_take_checkpoint(const sl_fs *fs, const iof_mode *m, long n, char *msg) {
  sl_store *st[2] = {NULL, NULL};
  sn_states s[2];
  sl_snapshot_info info[2];
  sl_snapshot_config sc;
  const char *target = NULL;
  int rc, orc;
  sl_chkdir *cd;
  msg[0] = 0;
  for (int i = 0; i < 2; i++) {
    st[i] = iof_open_store(iof_path("w/state"), i, NULL, 1 << 20, &orc);
    ASSERT_OK(orc, st[i]);
    sn_register(st[i], &s[i]);
  }
  cd = iof_chkdir(iof_path("w/chk"), 2, fs, &orc);
  SN_OK(orc, cd); /* not armed yet */
  sl_snapshot_config_init(&sc);
  sc.fs = fs;
  iof_arm(n, m->persistent, m->err, 0);
  rc = sl_chkdir_target(cd, 2, NULL, &target);
  if (rc) snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(cd));
  for (int i = 0; i < 2 && rc == SL_OK; i++) {
    sl_snapshot *sn = NULL;
    rc = sl_snapshot_begin(st[i], target, 2, SL_CHECKPOINT, &sc, &sn);
    if (rc) snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(st[i]));
    if (rc == SL_OK) {
      rc = sl_snapshot_write(sn);
      if (rc) snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(sn));
    }
    if (rc == SL_OK) ASSERT_OK(sl_snapshot_get_info(sn, &info[i]), sn);
    if (sn) {
      int erc = sl_snapshot_end(sn);
      if (rc == SL_OK && erc) {
        rc = erc;
        snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(st[i]));
      }
    }
  }
  if (rc == SL_OK) {
    rc = sl_chkdir_publish(cd, 2, NULL, info, 2);
    if (rc) snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(cd));
  }
  iof_disarm();
  /* as the SDK does: a failed checkpoint is discarded, the stores go on */
  if (rc) sl_chkdir_discard(cd, 2, NULL);
  SN_OK(sl_chkdir_close(cd), NULL);
  for (int i = 0; i < 2; i++) {
    su_commit(st[i]);
    su_close(st[i]);
  }
  return rc;
}

static void iof_checkpoint_loop(const iof_mode *m) {
  const sl_fs *fs = iof_fs();
  char *want[3][2], msg[SL_ERRMSG_MAX];
  long n;
  int failures = 0, published_anyway = 0, stays = 0;
  tf_tree_remove(iof_path("tmpl"));
  iof_build(1);
  ASSERT_EQ(iof_restore_into_r(iof_path("tmpl/chk"), 1, 2), 1);
  for (int i = 0; i < 2; i++) {
    want[1][i] = iof_dump(iof_path("r"), i);
    want[2][i] = iof_dump(iof_path("tmpl/state"), i); /* what checkpoint 2 will hold */
  }
  for (n = 1; n < 100000; n++) {
    int rc, ncomplete = 0;
    int64_t newest;
    iof_reset();
    rc = iof_take_checkpoint(fs, m, n, msg);
    if (rc == SL_OK && !iof_g.failed) break;
    if (rc != SL_OK) {
      iof_check_failure(m, n, rc, msg);
      failures++;
    } else {
      published_anyway++; /* the fault hit retention, which only reports */
    }
    newest = iof_newest(iof_path("w/chk"), &ncomplete);
    if (rc != SL_OK && newest == 2) {
      /* the MANIFEST was in place when a sync failed, and taking it back
      ** failed too: the checkpoint is complete, and the message says so */
      ASSERT_MSG(su_contains(msg, "MANIFEST stays"), "%s, N = %ld (%s): the failed checkpoint "
                 "left checkpoint 2 complete: %s", m->name, n, iof_g.first, msg);
      stays++;
    } else if (rc != SL_OK) {
      ASSERT_EQ(newest, 1);
    } else {
      ASSERT_EQ(newest, 2);
    }
    iof_same_checkpoint(1, m->name);
    iof_next_start_cleans(m->name);
    ASSERT_EQ(iof_restore_into_r(iof_path("w/chk"), 0, 2), newest);
    for (int i = 0; i < 2; i++) {
      char *got = iof_dump(iof_path("r"), i);
      ASSERT_MSG(got && strcmp(got, want[newest][i]) == 0,
                 "%s, N = %ld: instance %d does not restore to checkpoint %lld's state", m->name,
                 n, i, (long long)newest);
      free(got);
    }
  }
  ASSERT_MSG(n > 10 && n < 100000, "the loop ended after %ld runs", n);
  /* the run without a fault: checkpoint 2 is there and exact */
  ASSERT_EQ(iof_newest(iof_path("w/chk"), NULL), 2);
  ASSERT_EQ(iof_restore_into_r(iof_path("w/chk"), 0, 2), 2);
  for (int i = 0; i < 2; i++) {
    char *got = iof_dump(iof_path("r"), i);
    ASSERT(got && strcmp(got, want[2][i]) == 0);
    free(got);
  }
  printf("checkpoint, %s: %ld operations; %d runs failed with %s (%d leaving the complete "
         "checkpoint 2: its MANIFEST could not be taken back), %d published with retention "
         "failing\n", m->name, n - 1, failures, sl_errstr(iof_want_rc(m)), stays, published_anyway);
  for (int k = 1; k <= 2; k++)
    for (int i = 0; i < 2; i++) free(want[k][i]);
  tf_teardown();
}

TEST(quick_rel_iofault_checkpoint_eio_once) { iof_checkpoint_loop(&iof_modes[0]); }
TEST(quick_rel_iofault_checkpoint_eio) { iof_checkpoint_loop(&iof_modes[1]); }
TEST(quick_rel_iofault_checkpoint_enospc_once) { iof_checkpoint_loop(&iof_modes[2]); }
TEST(quick_rel_iofault_checkpoint_enospc) { iof_checkpoint_loop(&iof_modes[3]); }
