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
** (sl_chkdir_open()) and retention. Every N is tried for "EIO once" and
** "ENOSPC persistent", every 5th for the other two modes (names quick_),
** and all of them in long mode (SL_TEST_LONG); the job loops sample about
** 25 values of N, and take every N in long mode, where a job with periodic
** checkpoints runs too. Also: a read error the caller ignores must not let
** later writes escape the store's transaction, and the table's contract (a
** partial table, unknown VFS names).
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
  int first_kind;    /* TF_* of the first operation failed */
  char first[600];   /* the first operation failed, for messages */
} iof;

static iof iof_g = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, ""};

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
      if (!f->failed) {
        snprintf(f->first, sizeof f->first, "%s (operation %ld) of %.500s", tf_kind_names[c->kind],
                 n, c->path);
        f->first_kind = c->kind;
      }
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
  iof_g.armed = at > 0; /* 0: count nothing, fail nothing */
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

/* Which N a loop tries: every one in long mode and for the quick forms of
** "EIO once" and "ENOSPC persistent"; every 5th for the other two modes
** (their differences to these are the code and the cleanup). */
static long iof_stride(const iof_mode *m) {
  if (test_long()) return 1;
  return m->persistent == (m->err == ENOSPC) ? 1 : 5;
}

/* The library ignores a failed close of what it only read, and of a
** directory listing: what it read was complete. */
static int iof_ignorable(void) {
  return iof_g.failed && !iof_g.persistent &&
         (iof_g.first_kind == TF_CLOSEDIR || iof_g.first_kind == TF_CLOSE);
}

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
  iof_fs(); /* the shim "tf" is registered */
  sl_config_init(&c);
  c.vfs = vfs ? vfs : "tf";
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

/* A checkpoint directory through the test's table and VFS (NULL fs: the
** table unarmed; syncs are not passed to the disk, which keeps the loops
** fast). */
static sl_chkdir *iof_chkdir(const char *dir, int keep, const sl_fs *fs, int *rc) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  const sl_fs *tf = iof_fs();
  sl_chkdir_config_init(&cfg);
  cfg.keep = keep;
  cfg.fs = fs ? fs : tf;
  cfg.vfs = "tf";
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
  long n, ops;
  int failures = 0, published_anyway = 0, stays = 0;
  tf_tree_remove(iof_path("tmpl"));
  iof_build(1);
  ASSERT_EQ(iof_restore_into_r(iof_path("tmpl/chk"), 1, 2), 1);
  for (int i = 0; i < 2; i++) {
    want[1][i] = iof_dump(iof_path("r"), i);
    want[2][i] = iof_dump(iof_path("tmpl/state"), i); /* what checkpoint 2 will hold */
  }
  for (n = 1; n < 100000; n += iof_stride(m)) {
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
    iof_same_checkpoint(1, m->name); /* so it restores as it did before */
    iof_next_start_cleans(m->name);
    if (newest == 2) {
      ASSERT_EQ(iof_restore_into_r(iof_path("w/chk"), 0, 2), 2);
      for (int i = 0; i < 2; i++) {
        char *got = iof_dump(iof_path("r"), i);
        ASSERT_MSG(got && strcmp(got, want[2][i]) == 0,
                   "%s, N = %ld: instance %d does not restore to checkpoint 2's state", m->name, n,
                   i);
        free(got);
      }
    }
  }
  ASSERT_MSG(n > 10 && n < 100000, "the loop ended after %ld runs", n);
  ops = iof_g.count; /* of the run without a fault */
  /* the run without a fault: checkpoint 2 is there and exact */
  ASSERT_EQ(iof_newest(iof_path("w/chk"), NULL), 2);
  ASSERT_EQ(iof_restore_into_r(iof_path("w/chk"), 0, 2), 2);
  for (int i = 0; i < 2; i++) {
    char *got = iof_dump(iof_path("r"), i);
    ASSERT(got && strcmp(got, want[2][i]) == 0);
    free(got);
  }
  printf("checkpoint, %s: %ld operations, N stride %ld; %d runs failed with %s (%d leaving the "
         "complete checkpoint 2: its MANIFEST could not be taken back), %d published with "
         "retention failing\n", m->name, ops, iof_stride(m), failures, sl_errstr(iof_want_rc(m)),
         stays, published_anyway);
  for (int k = 1; k <= 2; k++)
    for (int i = 0; i < 2; i++) free(want[k][i]);
  tf_teardown();
}

TEST(rel_iofault_checkpoint_eio_once) { iof_checkpoint_loop(&iof_modes[0]); }
TEST(quick_rel_iofault_checkpoint_eio) { iof_checkpoint_loop(&iof_modes[1]); }
TEST(quick_rel_iofault_checkpoint_enospc_once) { iof_checkpoint_loop(&iof_modes[2]); }
TEST(rel_iofault_checkpoint_enospc) { iof_checkpoint_loop(&iof_modes[3]); }

/* ---- a restore, also rescaled ------------------------------------------------ */

/* Restores the newest checkpoint of w/chk into w/state with parallelism p1;
** the open is not armed, the restore is. */
static int iof_do_restore(const sl_fs *fs, const iof_mode *m, long n, int p1, int64_t *got,
                          char *msg) {
  sl_rescale rs = {"wc", p1};
  int rc;
  sl_chkdir *cd = iof_chkdir(iof_path("w/chk"), 10, fs, &rc);
  SN_OK(rc, cd);
  iof_arm(n, m->persistent, m->err, 0);
  rc = sl_chkdir_restore(cd, 0, NULL, iof_path("w/state"), &rs, 1, got);
  snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(cd));
  iof_disarm();
  SN_OK(sl_chkdir_close(cd), NULL);
  return rc;
}

/* Whether instance j of dir holds `dump` (NULL: no file): by the file's
** bytes when they are those of `hash`, else by its rows. */
static int iof_holds(const char *dir, int j, const char *dump, uint64_t hash) {
  char p[4096], *d;
  uint64_t size = 0;
  int same;
  su_db_path(p, sizeof p, dir, "wc", j);
  if (!su_exists(p)) return dump == NULL;
  if (!dump) return 0;
  if (hash && tf_file_hash(p, &size) == hash) return 1;
  d = iof_dump(dir, j);
  same = d && strcmp(d, dump) == 0;
  free(d);
  return same;
}

static uint64_t iof_hash_of(const char *dir, int j) {
  char p[4096];
  uint64_t size = 0;
  su_db_path(p, sizeof p, dir, "wc", j);
  return su_exists(p) ? tf_file_hash(p, &size) : 0;
}

static void iof_restore_loop(const iof_mode *m, int p1) {
  const sl_fs *fs = iof_fs();
  char *before[4] = {NULL, NULL, NULL, NULL}, *after[4] = {NULL, NULL, NULL, NULL};
  char msg[SL_ERRMSG_MAX], *chk_tree;
  uint64_t hbefore[4] = {0, 0, 0, 0}, hafter[4] = {0, 0, 0, 0};
  int nfiles = p1 > 2 ? p1 : 2, failures = 0, mixed = 0;
  long n, ops;
  ASSERT(p1 <= 4);
  tf_tree_remove(iof_path("tmpl"));
  iof_build(2); /* checkpoints 1 and 2; the state files hold round 2 */
  ASSERT_EQ(iof_restore_into_r(iof_path("tmpl/chk"), 2, p1), 2);
  for (int j = 0; j < nfiles; j++) {
    before[j] = iof_dump(iof_path("tmpl/state"), j);
    after[j] = iof_dump(iof_path("r"), j);
  }
  for (int j = 0; j < nfiles; j++) {
    hbefore[j] = iof_hash_of(iof_path("tmpl/state"), j);
    hafter[j] = iof_hash_of(iof_path("r"), j);
  }
  chk_tree = tf_tree(iof_path("tmpl/chk"));
  for (n = 1; n < 100000; n += iof_stride(m)) {
    int64_t got = -1;
    int rc, nbefore = 0, nafter = 0;
    char *t;
    iof_reset();
    rc = iof_do_restore(fs, m, n, p1, &got, msg);
    if (rc == SL_OK && !iof_g.failed) break;
    if (rc != SL_OK) {
      iof_check_failure(m, n, rc, msg);
      ASSERT_EQ(got, 0);
      failures++;
    } else {
      /* an I/O error must not make the restore fall back to checkpoint 1 */
      ASSERT_MSG(got == 2, "%s, N = %ld (%s): restored checkpoint %lld", m->name, n, iof_g.first,
                 (long long)got);
    }
    /* the checkpoints are untouched */
    t = tf_tree(iof_path("w/chk"));
    ASSERT_MSG(strcmp(t, chk_tree) == 0, "%s, N = %ld: the restore changed the checkpoints",
               m->name, n);
    free(t);
    /* every state file is intact and holds what it held before or the
    ** restored state (a failed restore may have installed some instances;
    ** restoring again completes it) */
    for (int j = 0; j < nfiles; j++) {
      int is_after = iof_holds(iof_path("w/state"), j, after[j], hafter[j]);
      int is_before = !is_after && iof_holds(iof_path("w/state"), j, before[j], hbefore[j]);
      ASSERT_MSG(is_before || is_after, "%s, N = %ld (%s): instance %d holds neither the state "
                 "before nor the one restored", m->name, n, iof_g.first, j);
      if (rc == SL_OK) ASSERT(is_after);
      nbefore += is_before;
      nafter += is_after;
    }
    mixed += nbefore && nafter;
    /* the next restore completes it and leaves nothing behind */
    iof_g.failed = 0;
    ASSERT_OK(iof_do_restore(NULL, m, 0, p1, &got, msg), NULL);
    ASSERT_EQ(got, 2);
    for (int j = 0; j < nfiles; j++)
      ASSERT_MSG(iof_holds(iof_path("w/state"), j, after[j], hafter[j]),
                 "%s, N = %ld: restoring again does not give the checkpoint's state", m->name, n);
    ASSERT(!su_exists(iof_path("w/state/wc/.restore")));
  }
  ASSERT_MSG(n > 10 && n < 100000, "the loop ended after %ld runs", n);
  ops = iof_g.count; /* of the run without a fault */
  for (int j = 0; j < nfiles; j++) {
    char *d = iof_dump(iof_path("w/state"), j);
    ASSERT((!d && !after[j]) || (d && after[j] && strcmp(d, after[j]) == 0));
    free(d);
  }
  ASSERT(!su_exists(iof_path("w/state/wc/.restore")));
  printf("restore to %d instance(s), %s: %ld operations, N stride %ld; %d runs failed with %s, "
         "%d of them with some instances installed and others not\n", p1, m->name, ops,
         iof_stride(m), failures, sl_errstr(iof_want_rc(m)), mixed);
  for (int j = 0; j < nfiles; j++) {
    free(before[j]);
    free(after[j]);
  }
  free(chk_tree);
  tf_teardown();
}

TEST(rel_iofault_restore_eio_once) { iof_restore_loop(&iof_modes[0], 2); }
TEST(quick_rel_iofault_restore_eio) { iof_restore_loop(&iof_modes[1], 2); }
TEST(quick_rel_iofault_restore_enospc_once) { iof_restore_loop(&iof_modes[2], 2); }
TEST(rel_iofault_restore_enospc) { iof_restore_loop(&iof_modes[3], 2); }
TEST(rel_iofault_rescale_eio_once) { iof_restore_loop(&iof_modes[0], 3); }
TEST(quick_rel_iofault_rescale_eio) { iof_restore_loop(&iof_modes[1], 3); }
TEST(quick_rel_iofault_rescale_enospc_once) { iof_restore_loop(&iof_modes[2], 3); }
TEST(rel_iofault_rescale_enospc) { iof_restore_loop(&iof_modes[3], 3); }

/* ---- garbage removal and retention --------------------------------------------- */

static void iof_gc_loop(const iof_mode *m) {
  const sl_fs *fs = iof_fs();
  char *want[2], msg[SL_ERRMSG_MAX], *tmpl_tree, *tmpl4;
  int failures = 0;
  long n, ops;
  tf_tree_remove(iof_path("tmpl"));
  iof_build(4);
  /* garbage: an unfinished checkpoint 5 and a MANIFEST.tmp left in 4 */
  ASSERT_EQ(mkdir(iof_path("tmpl/chk/chk-5"), 0777), 0);
  ASSERT_EQ(mkdir(iof_path("tmpl/chk/chk-5/wc"), 0777), 0);
  su_write_file(iof_path("tmpl/chk/chk-5/wc/0.db.zst.tmp"), "half", 4);
  tf_copy_file(iof_path("tmpl/chk/chk-4/MANIFEST"), iof_path("tmpl/chk/chk-4/MANIFEST.tmp"));
  ASSERT_EQ(iof_restore_into_r(iof_path("tmpl/chk"), 4, 2), 4);
  for (int i = 0; i < 2; i++) want[i] = iof_dump(iof_path("r"), i);
  tf_tree_remove(iof_path("tmpl/chk/chk-4/MANIFEST.tmp")); /* the restore's open removed it */
  tf_copy_file(iof_path("tmpl/chk/chk-4/MANIFEST"), iof_path("tmpl/chk/chk-4/MANIFEST.tmp"));
  if (!su_exists(iof_path("tmpl/chk/chk-5"))) {
    ASSERT_EQ(mkdir(iof_path("tmpl/chk/chk-5"), 0777), 0);
    ASSERT_EQ(mkdir(iof_path("tmpl/chk/chk-5/wc"), 0777), 0);
    su_write_file(iof_path("tmpl/chk/chk-5/wc/0.db.zst.tmp"), "half", 4);
  }
  tmpl_tree = tf_tree(iof_path("tmpl/chk"));
  tmpl4 = iof_subtree(tmpl_tree, "chk-4/");
  for (n = 1; n < 100000; n += iof_stride(m)) {
    int rc, removed = 0;
    sl_chkdir *cd;
    char *t, *t4;
    iof_reset();
    iof_arm(n, m->persistent, m->err, 0);
    cd = iof_chkdir(iof_path("w/chk"), 1, fs, &rc);
    if (rc == SL_OK) rc = sl_chkdir_gc(cd, &removed);
    snprintf(msg, sizeof msg, "%s", sl_errmsg(cd));
    iof_disarm();
    SN_OK(sl_chkdir_close(cd), NULL);
    if (rc == SL_OK && !iof_g.failed) break;
    ASSERT_MSG(rc != SL_OK || iof_ignorable(), "%s, N = %ld (%s): the fault went unnoticed",
               m->name, n, iof_g.first);
    if (rc != SL_OK) {
      iof_check_failure(m, n, rc, msg);
      failures++;
    }
    /* the newest checkpoint is untouched (its MANIFEST.tmp may be gone) */
    t = tf_tree(iof_path("w/chk"));
    t4 = iof_subtree(t, "chk-4/");
    {
      char *a = strstr(tmpl4, "chk-4/MANIFEST.tmp"), *b = strstr(t4, "chk-4/MANIFEST.tmp");
      su_buf x = {0, 0, 0};
      su_addf(&x, "%.*s%s", (int)(a - tmpl4), tmpl4, strchr(a, '\n') + 1);
      if (b) ASSERT_MSG(strcmp(t4, tmpl4) == 0, "%s, N = %ld: checkpoint 4 changed", m->name, n);
      else ASSERT_MSG(strcmp(t4, x.p) == 0, "%s, N = %ld: checkpoint 4 changed:\n%s", m->name, n,
                      t4);
      free(x.p);
    }
    /* an older checkpoint is whole, or has lost its MANIFEST first */
    for (int k = 1; k <= 3; k++) {
      char prefix[32], mfline[64], *a, *b;
      snprintf(prefix, sizeof prefix, "chk-%d/", k);
      snprintf(mfline, sizeof mfline, "chk-%d/MANIFEST ", k);
      a = iof_subtree(tmpl_tree, prefix);
      b = iof_subtree(t, prefix);
      if (strstr(b, mfline))
        ASSERT_MSG(strcmp(a, b) == 0, "%s, N = %ld (%s): checkpoint %d has its MANIFEST but not "
                   "all its files", m->name, n, iof_g.first, k);
      free(a);
      free(b);
    }
    free(t4);
    free(t);
    ASSERT_EQ(iof_newest(iof_path("w/chk"), NULL), 4);
  }
  ASSERT_MSG(n > 10 && n < 100000, "the loop ended after %ld runs", n);
  ops = iof_g.count; /* of the run without a fault */
  /* the run without a fault left checkpoint 4 alone, and no garbage */
  ASSERT_EQ(iof_restore_into_r(iof_path("w/chk"), 0, 2), 4);
  for (int i = 0; i < 2; i++) {
    char *got = iof_dump(iof_path("r"), i);
    ASSERT(got && strcmp(got, want[i]) == 0);
    free(got);
  }
  {
    char *t = tf_tree(iof_path("w/chk")), *t4 = iof_subtree(t, "chk-4/");
    ASSERT_MSG(strlen(t4) == strlen(t) && !strstr(t, ".tmp") && !strstr(t, "chk-5"),
               "after garbage removal and retention:\n%s", t);
    free(t4);
    free(t);
  }
  printf("garbage removal and retention, %s: %ld operations, N stride %ld; %d runs failed with "
         "%s\n", m->name, ops, iof_stride(m), failures, sl_errstr(iof_want_rc(m)));
  for (int i = 0; i < 2; i++) free(want[i]);
  free(tmpl_tree);
  free(tmpl4);
  tf_teardown();
}

TEST(rel_iofault_gc_eio_once) { iof_gc_loop(&iof_modes[0]); }
TEST(quick_rel_iofault_gc_eio) { iof_gc_loop(&iof_modes[1]); }
TEST(quick_rel_iofault_gc_enospc_once) { iof_gc_loop(&iof_modes[2]); }
TEST(rel_iofault_gc_enospc) { iof_gc_loop(&iof_modes[3]); }

/* ---- the state file under the VFS shim ------------------------------------------ */

/* The states of the fixture that a store's life uses (registering a part
** of them is allowed), without asserting: registration reads the file. */
static int iof_register(sl_store *st, sn_states *s) {
  sl_column k = su_col("k", SL_INTEGER), cv[2], x = su_col("x", SL_INTEGER);
  sl_state_desc d;
  int rc;
  cv[0] = su_col("n", SL_INTEGER);
  cv[1] = su_col("note", SL_TEXT);
  memset(s, 0, sizeof *s);
  memset(&d, 0, sizeof d);
  d.name = "counts";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = &k;
  d.n_value = 2;
  d.value = cv;
  rc = sl_state_register(st, &d, &s->counts);
  if (rc) return rc;
  memset(&d, 0, sizeof d);
  d.name = "events";
  d.kind = SL_LIST_STATE;
  d.n_key = 1;
  d.key = &k;
  d.n_value = 1;
  d.value = &x;
  return sl_state_register(st, &d, &s->events);
}

/* Round 3 of counts and events, without asserting. */
static int iof_write_round(sl_store *st, const sn_states *s, int i) {
  int rc = SL_OK;
  for (int64_t k = 500; k < 560 && rc == SL_OK; k++) {
    sl_value key = sl_int(k), v[2], row = sl_int(k * 7);
    if (iof_owner(k, 2) != i) continue;
    rc = sl_store_set_key(st, &key, 1, NULL);
    v[0] = sl_int(k);
    v[1] = sl_text("round 3");
    if (rc == SL_OK) rc = sl_value_update(s->counts, v);
    if (rc == SL_OK) rc = sl_list_add(s->events, &row);
    if (rc == SL_OK && k % 5 == 0) {
      const sl_value *got; /* a read of a key written in an earlier round */
      sl_value old = sl_int(k % 200);
      rc = sl_store_set_key(st, &old, 1, NULL);
      if (rc == SL_OK && iof_owner(k % 200, 2) == i) {
        rc = sl_value_get(s->counts, &got);
        if (rc == SL_NOTFOUND) rc = SL_OK;
      } else if (rc == SL_MISUSE) {
        rc = SL_OK; /* another instance's key */
      }
    }
  }
  return rc;
}

/* A store's whole life over the shim "tf", with the cache off so that
** every access is SQLite's: both instances of w/state opened, round 3
** written and committed, checkpoint 2 taken (the snapshot's read connection
** reads through the shim too) and published, the history row committed,
** closed. The VFS's operations are armed (vfs = 1), nothing else. */
static int iof_store_life(const iof_mode *m, long n, char *msg) {
  sl_store *st[2] = {NULL, NULL};
  sl_snapshot *sn[2] = {NULL, NULL};
  sl_snapshot_info info[2];
  sn_states s[2];
  const char *target = NULL;
  int rc = SL_OK, orc;
  sl_chkdir *cd = iof_chkdir(iof_path("w/chk"), 2, NULL, &orc);
  SN_OK(orc, cd);
  SN_OK(sl_chkdir_target(cd, 2, NULL, &target), cd);
  msg[0] = 0;
  iof_arm(n, m->persistent, m->err, 1);
#define IOF_STEP(call, h) do { if (rc == SL_OK) { rc = (call); \
    if (rc) snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(h)); } } while (0)
  for (int i = 0; i < 2; i++) {
    if (rc == SL_OK) {
      st[i] = iof_open_store(iof_path("w/state"), i, "tf", 0, &rc);
      if (rc) snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(st[i]));
    }
    IOF_STEP(iof_register(st[i], &s[i]), st[i]);
    IOF_STEP(iof_write_round(st[i], &s[i], i), st[i]);
    IOF_STEP(sl_store_commit(st[i]), st[i]);
  }
  for (int i = 0; i < 2; i++) {
    IOF_STEP(sl_snapshot_begin(st[i], target, 2, SL_CHECKPOINT, NULL, &sn[i]), st[i]);
    IOF_STEP(sl_snapshot_write(sn[i]), sn[i]);
    IOF_STEP(sl_snapshot_get_info(sn[i], &info[i]), sn[i]);
  }
  IOF_STEP(sl_chkdir_publish(cd, 2, NULL, info, 2), cd);
  for (int i = 0; i < 2; i++) {
    if (sn[i]) {
      int erc = sl_snapshot_end(sn[i]);
      if (rc == SL_OK && erc) {
        rc = erc;
        snprintf(msg, SL_ERRMSG_MAX, "%s", sl_errmsg(st[i]));
      }
    }
    IOF_STEP(sl_store_commit(st[i]), st[i]);
  }
  for (int i = 0; i < 2; i++) {
    int crc = st[i] ? sl_store_close(st[i]) : SL_OK;
    if (rc == SL_OK && crc) {
      rc = crc;
      snprintf(msg, SL_ERRMSG_MAX, "sl_store_close: %s", sl_errstr(crc));
    }
  }
#undef IOF_STEP
  iof_disarm();
  if (rc) sl_chkdir_discard(cd, 2, NULL);
  SN_OK(sl_chkdir_close(cd), NULL);
  return rc;
}

/* The state file is intact (integrity_check ok). */
static void iof_integrity(const char *db, const char *what) {
  char *r = su_sql(db, "PRAGMA integrity_check");
  ASSERT_MSG(strcmp(r, "ok\n") == 0 || strcmp(r, "ok") == 0, "%s: %s: %s", what, db, r);
  free(r);
}

static void iof_vfs_loop(const iof_mode *m) {
  char *before[2], *after[2], *chk1[2], msg[SL_ERRMSG_MAX];
  int failures = 0, codes[16] = {0};
  su_buf unnoticed = {0, 0, 0};
  long n, ops;
  iof_fs();
  tf_tree_remove(iof_path("tmpl"));
  iof_build(1);
  ASSERT_EQ(iof_restore_into_r(iof_path("tmpl/chk"), 1, 2), 1);
  for (int i = 0; i < 2; i++) {
    before[i] = iof_dump(iof_path("tmpl/state"), i);
    chk1[i] = iof_dump(iof_path("r"), i);
  }
  iof_reset(); /* the life without a fault gives the state after */
  ASSERT_OK(iof_store_life(m, 0, msg), NULL);
  for (int i = 0; i < 2; i++) after[i] = iof_dump(iof_path("w/state"), i);
  for (n = 1; n < 100000; n += iof_stride(m)) {
    int rc, ncomplete = 0;
    int64_t newest;
    iof_reset();
    rc = iof_store_life(m, n, msg);
    if (rc == SL_OK && !iof_g.failed) break;
    ASSERT_MSG(iof_g.failed, "%s, N = %ld: %s without a fault: %s", m->name, n, sl_errstr(rc), msg);
    if (rc != SL_OK) {
      /* EIO is SL_IOERR; ENOSPC is SL_FULL where SQLite writes, and where it
      ** opens or reads what SQLite calls an I/O error */
      ASSERT_MSG(rc == SL_IOERR || (m->err == ENOSPC && rc == SL_FULL),
                 "%s, N = %ld (%s): got %s: %s", m->name, n, iof_g.first, sl_errstr(rc), msg);
      ASSERT_MSG(msg[0] && strcmp(msg, "not an error") != 0, "%s, N = %ld (%s): no message",
                 m->name, n, iof_g.first);
      failures++;
      codes[rc & 15]++;
    } else {
      su_addf(&unnoticed, "%s%s", unnoticed.n ? ", " : "", tf_kind_names[iof_g.first_kind]);
    }
    /* each state file is intact and holds the last commit before or after */
    for (int i = 0; i < 2; i++) {
      char db[4096], *d;
      su_db_path(db, sizeof db, iof_path("w/state"), "wc", i);
      iof_integrity(db, m->name);
      d = iof_dump(iof_path("w/state"), i);
      ASSERT_MSG(d && (strcmp(d, before[i]) == 0 || strcmp(d, after[i]) == 0),
                 "%s, N = %ld (%s): instance %d holds neither the state before nor after: %s",
                 m->name, n, iof_g.first, i, msg);
      free(d);
    }
    newest = iof_newest(iof_path("w/chk"), &ncomplete);
    ASSERT_MSG(newest == 1 || newest == 2, "%s, N = %ld: newest checkpoint %lld", m->name, n,
               (long long)newest);
    iof_same_checkpoint(1, m->name);
    iof_next_start_cleans(m->name);
    ASSERT_EQ(iof_restore_into_r(iof_path("w/chk"), 0, 2), newest);
    for (int i = 0; i < 2; i++) {
      char *got = iof_dump(iof_path("r"), i);
      ASSERT_MSG(got && strcmp(got, newest == 1 ? chk1[i] : after[i]) == 0,
                 "%s, N = %ld: checkpoint %lld does not restore to its state", m->name, n,
                 (long long)newest);
      free(got);
    }
  }
  ASSERT_MSG(n > 10 && n < 100000, "the loop ended after %ld runs", n);
  ops = iof_g.count;
  for (int i = 0; i < 2; i++) {
    char *d = iof_dump(iof_path("w/state"), i);
    ASSERT(d && strcmp(d, after[i]) == 0);
    free(d);
    free(before[i]);
    free(after[i]);
    free(chk1[i]);
  }
  printf("a store's life over the VFS shim, %s: %ld VFS operations, N stride %ld; %d runs failed "
         "(%d SL_IOERR, %d SL_FULL); faults SQLite absorbed: %s\n", m->name, ops, iof_stride(m),
         failures, codes[SL_IOERR], codes[SL_FULL], unnoticed.p ? unnoticed.p : "none");
  free(unnoticed.p);
  tf_teardown();
}

TEST(rel_iofault_vfs_eio_once) { iof_vfs_loop(&iof_modes[0]); }
TEST(quick_rel_iofault_vfs_eio) { iof_vfs_loop(&iof_modes[1]); }
TEST(quick_rel_iofault_vfs_enospc_once) { iof_vfs_loop(&iof_modes[2]); }
TEST(rel_iofault_vfs_enospc) { iof_vfs_loop(&iof_modes[3]); }

/* ---- a whole SDK job ----------------------------------------------------------- */

/* Job A: generator (2) -> key_by -> sequence checker (2) -> exactly-once
** file sink; job B: file source -> file sink. They run in w/ (state, chk,
** out.txt, in.txt) with the test's table (and VFS); in.txt is job B's. */
typedef struct iof_job {
  int file_source;
  int64_t count;             /* records (A) or lines (B) */
  int64_t interval_ms;       /* 0: only the final checkpoint */
  int vfs;                   /* the faults are the VFS's */
} iof_job;

static int iof_run_job(const iof_job *j, char *msg) {
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator check, sink;
  sl_job *job = NULL;
  int s0, s2, rc;
  sl_job_config_init(&cfg);
  cfg.state_dir = iof_path("w/state");
  cfg.checkpoint_dir = iof_path("w/chk");
  cfg.checkpoint_interval_ms = j->interval_ms;
  cfg.channel_capacity = 64;
  cfg.fs = iof_fs();
  cfg.vfs = "tf";
  memset(&gen, 0, sizeof gen);
  gen.count = j->count;
  gen.keys = 13;
  gen.records_per_read = 16;
  gen.delay_us_per_read = j->interval_ms ? 300 : 0;
  if (j->file_source) sl_file_source(&src, iof_path("w/in.txt"));
  else sl_generator_source(&src, &gen);
  sdk_checker(&check);
  sl_file_sink(&sink, iof_path("w/out.txt"));
  if (j->file_source) {
    rc = sl_job_new(&cfg, &job);
    if (rc == SL_OK) rc = sl_job_source(job, "src", &src, 1, &s0);
    if (rc == SL_OK) rc = sl_job_operator(job, "sink", &sink, 1, &s2);
    if (rc == SL_OK) rc = sl_job_connect(job, s0, s2, SL_FORWARD, NULL, 0);
  } else {
    rc = sdk_checked_job(&cfg, "src", &src, 2, &check, &sink, &job);
  }
  if (rc == SL_OK) rc = sl_job_run(job);
  snprintf(msg, SL_ERRMSG_MAX, "%s", rc ? sl_errmsg(job) : "");
  sl_job_free(job);
  return rc;
}

/* The input of job B: lines of varying length. */
static void iof_write_input(const char *path, int64_t lines) {
  su_buf b = {0, 0, 0};
  su_addf(&b, "%s", "");
  for (int64_t i = 0; i < lines; i++) su_addf(&b, "line %lld %.*s\n", (long long)i, (int)(i % 23), "abcdefghijklmnopqrstuvwxyz");
  su_write_file(path, b.p, b.n);
  free(b.p);
}

/* What the output must be once the job has completed. */
static char *iof_expected(const iof_job *j) {
  su_buf b = {0, 0, 0};
  char *sorted;
  su_addf(&b, "%s", "");
  if (j->file_source) {
    size_t n = 0;
    char *in = su_read_file(iof_path("w/in.txt"), &n);
    ASSERT(in);
    free(b.p);
    return in;
  }
  for (int64_t i = 0; i < j->count; i++)
    su_addf(&b, "%lld\t%lld\t\n", (long long)(i % 13), (long long)(i / 13));
  sorted = sdk_sorted(b.p);
  free(b.p);
  return sorted;
}

static void iof_check_output(const iof_job *j, const char *want, const char *what, long n) {
  char *out = sdk_read(iof_path("w/out.txt")), *got;
  ASSERT_MSG(!strstr(out, "GAP") && !strstr(out, "DUP"), "%s, N = %ld: a gap or a duplicate",
             what, n);
  got = j->file_source ? out : sdk_sorted(out);
  ASSERT_MSG(strcmp(got, want) == 0, "%s, N = %ld: the output differs from an uninterrupted run's "
             "(%zu bytes, want %zu)", what, n, strlen(got), strlen(want));
  if (got != out) free(got);
  free(out);
}

/* The template run: killed (kill point manifest_after) once its first
** checkpoint is published, in the middle of its input. */
static int iof_first_run(void *arg) {
  const iof_job *j = arg;
  char msg[SL_ERRMSG_MAX];
  setenv("SL_KILL_POINT", "manifest_after", 1);
  return iof_run_job(j, msg) == SL_OK ? 0 : 1;
}

static void iof_job_loop(const iof_mode *m, const iof_job *j) {
  iof_job first = *j;
  char msg[SL_ERRMSG_MAX], *want, *tmpl_tree;
  int64_t tmpl_newest;
  long n, ops, stride, runs = 0;
  int failures = 0, completed_anyway = 0;
  iof_fs();
  tf_tree_remove(iof_path("tmpl"));
  tf_tree_remove(iof_path("w"));
  ASSERT_EQ(mkdir(iof_path("w"), 0777), 0);
  if (j->file_source) iof_write_input(iof_path("w/in.txt"), j->count);
  /* the template: a run that dies after its first checkpoint, in the
  ** middle of its input (slowed down, checkpoints every 2 ms) */
  first.interval_ms = 2;
  ASSERT_EQ(sdk_run_child(iof_first_run, &first), 128 + SIGKILL);
  ASSERT_EQ(rename(iof_path("w"), iof_path("tmpl")), 0);
  tmpl_newest = iof_newest(iof_path("tmpl/chk"), NULL);
  ASSERT(tmpl_newest >= 1);
  tmpl_tree = tf_tree(iof_path("tmpl/chk"));
  /* a run without faults: how many operations, what comes out */
  iof_reset();
  iof_arm(1L << 40, m->persistent, m->err, j->vfs);
  ASSERT_MSG(iof_run_job(j, msg) == SL_OK, "the run without faults: %s", msg);
  ops = iof_disarm();
  want = iof_expected(j);
  iof_check_output(j, want, "without faults", 0);
  /* long mode: every N, but about 200 of them for the slowed-down job with
  ** periodic checkpoints (whose runs take a second) */
  stride = !test_long() ? ops / 24 + 1 : j->interval_ms ? ops / 200 + 1 : 1;
  for (n = 1; n < 1000000; n += stride) {
    int rc;
    int64_t newest;
    iof_reset();
    iof_arm(n, m->persistent, m->err, j->vfs);
    rc = iof_run_job(j, msg);
    iof_disarm();
    runs++;
    if (rc == SL_OK && !iof_g.failed) break;
    if (rc != SL_OK) {
      if (j->vfs)
        ASSERT_MSG(iof_g.failed && (rc == SL_IOERR || (m->err == ENOSPC && rc == SL_FULL)),
                   "%s, N = %ld (%s): got %s: %s", m->name, n, iof_g.first, sl_errstr(rc), msg);
      else
        iof_check_failure(m, n, rc, msg);
      ASSERT_MSG(msg[0], "%s, N = %ld: no message", m->name, n);
      failures++;
    } else {
      completed_anyway++; /* retention only reports; SQLite absorbs some */
    }
    /* the newest complete checkpoint: the one before, byte-identical, or a
    ** newer one that verifies */
    newest = iof_newest(iof_path("w/chk"), NULL);
    ASSERT_MSG(newest >= tmpl_newest, "%s, N = %ld: checkpoint %lld is gone", m->name, n,
               (long long)tmpl_newest);
    if (newest == tmpl_newest) {
      iof_same_checkpoint(newest, m->name);
    } else {
      int vrc;
      sl_chkdir *cd = iof_chkdir(iof_path("w/chk"), 10, NULL, &vrc);
      SN_OK(vrc, cd);
      SN_OK(sl_chkdir_verify(cd, newest, NULL), cd);
      sl_chkdir_close(cd);
    }
    /* the next run, without faults, cleans up and completes the job exactly */
    iof_arm(0, 0, 0, 0);
    ASSERT_MSG(iof_run_job(j, msg) == SL_OK, "%s, N = %ld (%s): the run after: %s", m->name, n,
               iof_g.first, msg);
    iof_check_output(j, want, m->name, n);
    iof_next_start_cleans(m->name);
    {
      char *t = tf_tree(iof_path("w/state"));
      ASSERT_MSG(!strstr(t, ".restore"), "%s, N = %ld: a restore directory is left:\n%s", m->name,
                 n, t);
      free(t);
    }
  }
  ASSERT_MSG(n > 10 && n < 1000000, "the loop ended after %ld runs", n);
  iof_check_output(j, want, "the last run", n);
  printf("a job (%s, %lld %s, %s), %s faults, %s: %ld operations, N stride %ld; %ld runs, %d "
         "failed with an error, %d completed\n", j->file_source ? "file source" : "generator",
         (long long)j->count, j->file_source ? "lines" : "records",
         j->interval_ms ? "periodic checkpoints" : "a final checkpoint",
         j->vfs ? "VFS" : "file table", m->name, ops, stride, runs, failures, completed_anyway);
  free(want);
  free(tmpl_tree);
  tf_teardown();
}

static const iof_job iof_job_gen = {0, 2000, 0, 0};
static const iof_job iof_job_file = {1, 20000, 0, 0};
static const iof_job iof_job_gen_vfs = {0, 2000, 0, 1};
static const iof_job iof_job_periodic = {0, 4000, 10, 0};

TEST(quick_rel_iofault_job_eio_once) { iof_job_loop(&iof_modes[0], &iof_job_gen); }
TEST(rel_iofault_job_enospc) { iof_job_loop(&iof_modes[3], &iof_job_gen); }
TEST(rel_iofault_job_file_source_eio_once) { iof_job_loop(&iof_modes[0], &iof_job_file); }
TEST(rel_iofault_job_vfs_eio_once) { iof_job_loop(&iof_modes[0], &iof_job_gen_vfs); }
TEST(rel_iofault_job_vfs_enospc) { iof_job_loop(&iof_modes[3], &iof_job_gen_vfs); }

/* Long mode: the other modes, and a job with intermediate checkpoints. */
TEST(rel_iofault_job_all_modes) {
  if (!test_long()) {
    printf("long mode only (SL_TEST_LONG=1): every N of every mode, file table and VFS\n");
    return;
  }
  for (int k = 0; k < 4; k++) {
    iof_job_loop(&iof_modes[k], &iof_job_gen);
    iof_job_loop(&iof_modes[k], &iof_job_file);
    iof_job_loop(&iof_modes[k], &iof_job_gen_vfs);
    iof_job_loop(&iof_modes[k], &iof_job_periodic);
  }
}

/* ---- the table's contract ------------------------------------------------------- */

static int iof_syncs, iof_dirsyncs;

static int iof_count_sync(void *ud, int fd) {
  (void)ud;
  iof_syncs++;
  return fsync(fd);
}

static int iof_count_syncdir(void *ud, const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
  (void)ud;
  iof_dirsyncs++;
  if (fd < 0) return -1;
  r = fsync(fd);
  close(fd);
  return r;
}

/* A table that replaces only xSync and xSyncDir: every other call is the
** POSIX one, and the checkpoint is whole. Unknown VFS names are refused. */
TEST(quick_rel_fs_table_partial_and_unknown_vfs) {
  sl_fs fs;
  sl_snapshot_config sc;
  sl_chkdir_config cc;
  sl_config c;
  sl_job_config jc;
  sl_chkdir *cd = NULL;
  sl_store *st = NULL;
  sl_job *job = NULL;
  sl_snapshot *sn = NULL;
  sl_snapshot_info info;
  sn_states s;
  const char *target = NULL;
  memset(&fs, 0, sizeof fs);
  fs.xSync = iof_count_sync;
  fs.xSyncDir = iof_count_syncdir;
  sl_chkdir_config_init(&cc);
  cc.fs = &fs;
  SN_OK(sl_chkdir_open(iof_path("chk"), &cc, &cd), cd);
  ASSERT_OK(sl_store_open(iof_path("state"), "wc", 0, 1, NULL, &st), st);
  sn_register(st, &s);
  sn_put_key(st, &s, 7, 1);
  sl_snapshot_config_init(&sc);
  sc.fs = &fs;
  SN_OK(sl_chkdir_target(cd, 1, NULL, &target), cd);
  ASSERT_OK(sl_snapshot_begin(st, target, 1, SL_CHECKPOINT, &sc, &sn), st);
  SN_OK(sl_snapshot_write(sn), sn);
  SN_OK(sl_snapshot_get_info(sn, &info), sn);
  ASSERT_OK(sl_snapshot_end(sn), st);
  ASSERT_EQ(iof_syncs, 1); /* the snapshot file */
  SN_OK(sl_chkdir_publish(cd, 1, NULL, &info, 1), cd);
  ASSERT_EQ(iof_syncs, 2); /* and the MANIFEST */
  /* the snapshot's directory, the operator's, chk-1 and the checkpoint
  ** directory, and (sl_chkdir_open) the parent of the directory it made */
  ASSERT_MSG(iof_dirsyncs >= 5, "%d directory syncs", iof_dirsyncs);
  SN_OK(sl_chkdir_verify(cd, 1, NULL), cd);
  su_close(st);
  sl_chkdir_close(cd);
  /* unknown VFS names: SL_MISUSE, naming it */
  sl_config_init(&c);
  c.vfs = "no-such-vfs";
  ASSERT_RC(sl_store_open(iof_path("state"), "wc", 0, 1, &c, &st), SL_MISUSE, st);
  ASSERT(su_contains(sl_errmsg(st), "no-such-vfs"));
  sl_store_close(st);
  cc.vfs = "no-such-vfs";
  ASSERT_RC(sl_chkdir_open(iof_path("chk"), &cc, &cd), SL_MISUSE, cd);
  ASSERT(su_contains(sl_errmsg(cd), "no-such-vfs"));
  sl_chkdir_close(cd);
  sl_job_config_init(&jc);
  jc.state_dir = iof_path("state");
  jc.checkpoint_dir = iof_path("chk");
  jc.vfs = "no-such-vfs";
  ASSERT_RC(sl_job_new(&jc, &job), SL_MISUSE, job);
  ASSERT(su_contains(sl_errmsg(job), "no-such-vfs"));
  sl_job_free(job);
}

/* A read that fails inside the store's transaction, whose error the caller
** ignores, then more writes and a commit: the file must hold the previous
** commit or all of the transaction, never a part of it. The store has 6,000
** keys, no cache of its own and the smallest page cache, so that reads and
** writes reach the VFS inside the transaction. */
static int iof_read_then_commit(long n, const iof_mode *m) {
  sl_store *st = NULL;
  sn_states s;
  sl_config c;
  int rc;
  iof_arm(0, 0, 0, 0);
  sl_config_init(&c);
  c.vfs = "tf";
  c.memory_budget = 0;
  c.page_cache_bytes = 1;
  ASSERT_OK(sl_store_open(iof_path("w/state"), "one", 0, 1, &c, &st), st);
  ASSERT_OK(iof_register(st, &s), st);
  iof_arm(n, m->persistent, m->err, 1);
  for (int64_t i = 0; i < 600; i++) {
    int64_t k = (i * 7919) % 6000;
    sl_value key = sl_int(k), v[2];
    const sl_value *got;
    if (sl_store_set_key(st, &key, 1, NULL) != SL_OK) continue;
    (void)sl_value_get(s.counts, &got); /* errors ignored, on purpose */
    v[0] = sl_int(k + 1000);
    v[1] = sl_text("the second round, a little longer than the first");
    (void)sl_value_update(s.counts, v);
  }
  rc = sl_store_commit(st);
  iof_disarm();
  sl_store_close(st);
  return rc;
}

static char *iof_dump_one(void) {
  char db[4096];
  su_db_path(db, sizeof db, iof_path("w/state"), "one", 0);
  iof_integrity(db, "the state file");
  return su_dump_states(db);
}

TEST(rel_iofault_vfs_ignored_read_error) {
  const iof_mode *m = &iof_modes[0];
  char *before, *after;
  int runs = 0, failed = 0;
  long n, ops;
  sl_store *st = NULL;
  sn_states s;
  iof_fs();
  tf_tree_remove(iof_path("tmpl"));
  ASSERT_OK(sl_store_open(iof_path("tmpl/state"), "one", 0, 1, NULL, &st), st);
  ASSERT_OK(iof_register(st, &s), st);
  for (int64_t k = 0; k < 6000; k++) {
    sl_value key = sl_int(k), v[2];
    ASSERT_OK(sl_store_set_key(st, &key, 1, NULL), st);
    v[0] = sl_int(k);
    v[1] = sl_text("the first round");
    ASSERT_OK(sl_value_update(s.counts, v), st);
  }
  su_commit(st);
  su_close(st);
  iof_reset();
  before = iof_dump_one();
  ASSERT_OK(iof_read_then_commit(1L << 40, m), NULL);
  ops = iof_g.count;
  after = iof_dump_one();
  ASSERT(strcmp(before, after) != 0);
  for (n = 1; n < 100000; n += iof_stride(m) * (ops > 200 ? ops / 200 : 1)) {
    char *d;
    int rc;
    iof_reset();
    rc = iof_read_then_commit(n, m);
    runs++;
    d = iof_dump_one();
    ASSERT_MSG(strcmp(d, before) == 0 || strcmp(d, after) == 0,
               "N = %ld (%s): the commit returned %s and the file holds a part of the "
               "transaction", n, iof_g.first, sl_errstr(rc));
    if (rc == SL_OK) ASSERT_MSG(strcmp(d, after) == 0, "N = %ld: committed, but not all", n);
    else failed++;
    free(d);
    if (rc == SL_OK && !iof_g.failed) break;
  }
  printf("%ld VFS operations, %d runs, %d failed commits, none with a part of the transaction "
         "in the file\n", ops, runs, failed);
  free(before);
  free(after);
  tf_teardown();
}
