/*
** test_snapshot_util.h — helpers shared by the snapshot, restore and rescale
** tests: a store filled with every kind of state, taking a whole checkpoint
** of several stores, reading the files a checkpoint consists of, and a
** report callback that collects what a checkpoint directory says.
**
** Everything here is static inline; text returned is malloc'd (free()).
*/
#ifndef SL_TEST_SNAPSHOT_UTIL_H
#define SL_TEST_SNAPSHOT_UTIL_H

#include <pthread.h>

#include "base/base.h"
#include "snapshot/snapshot.h"
#include "statelite.h"
#include "store_util.h"
#include "test.h"

/* The message of a store, snapshot or checkpoint directory handle. */
static inline const char *sn_msg(const void *h) {
  return sl_errmsg(h);
}

#define SN_OK(rc, h) do { int r_ = (rc); if (r_ != SL_OK) \
    test_fail(__FILE__, __LINE__, "%s: got %s (%s)", #rc, sl_errstr(r_), sn_msg(h)); } while (0)
#define SN_RC(rc, want, h) do { int r_ = (rc); if (r_ != (want)) \
    test_fail(__FILE__, __LINE__, "%s: got %s, want %s (%s)", #rc, sl_errstr(r_), \
              sl_errstr(want), sn_msg(h)); } while (0)
#define SN_MSG_HAS(h, needle) do { const char *m_ = sn_msg(h); \
    ASSERT_MSG(su_contains(m_, (needle)), "message \"%s\" does not contain \"%s\"", m_, (needle)); \
  } while (0)

/* ------------------------------------------------------------------------ */
/* The states every test store has                                           */
/* ------------------------------------------------------------------------ */

typedef struct sn_states {
  sl_state *counts;   /* value: k INTEGER -> (n INTEGER, note TEXT) */
  sl_state *events;   /* list: k INTEGER -> rows (x INTEGER) */
  sl_state *attrs;    /* map: k INTEGER, name TEXT -> score REAL */
  sl_state *offsets;  /* operator list, split evenly: (part INTEGER, off INTEGER) */
  sl_state *seen;     /* operator list, union: (tag TEXT) */
  sl_state *rules;    /* broadcast: name TEXT -> lim INTEGER */
} sn_states;

static inline void sn_register(sl_store *st, sn_states *s) {
  sl_column k = su_col("k", SL_INTEGER), name = su_col("name", SL_TEXT);
  sl_column cv[2], x = su_col("x", SL_INTEGER), score = su_col("score", SL_REAL);
  sl_column off[2], tag = su_col("tag", SL_TEXT), lim = su_col("lim", SL_INTEGER);
  sl_state_desc d;
  cv[0] = su_col("n", SL_INTEGER);
  cv[1] = su_col("note", SL_TEXT);
  off[0] = su_col("part", SL_INTEGER);
  off[1] = su_col("off", SL_INTEGER);
  memset(s, 0, sizeof *s);
  memset(&d, 0, sizeof d);
  d.name = "counts"; d.kind = SL_VALUE_STATE; d.n_key = 1; d.key = &k; d.n_value = 2; d.value = cv;
  s->counts = su_reg(st, &d);
  memset(&d, 0, sizeof d);
  d.name = "events"; d.kind = SL_LIST_STATE; d.n_key = 1; d.key = &k; d.n_value = 1; d.value = &x;
  s->events = su_reg(st, &d);
  memset(&d, 0, sizeof d);
  d.name = "attrs"; d.kind = SL_MAP_STATE; d.n_key = 1; d.key = &k; d.n_map_key = 1;
  d.map_key = &name; d.n_value = 1; d.value = &score;
  s->attrs = su_reg(st, &d);
  memset(&d, 0, sizeof d);
  d.name = "offsets"; d.kind = SL_OPERATOR_LIST; d.n_value = 2; d.value = off;
  d.redistribution = SL_SPLIT_EVEN;
  s->offsets = su_reg(st, &d);
  memset(&d, 0, sizeof d);
  d.name = "seen"; d.kind = SL_OPERATOR_LIST; d.n_value = 1; d.value = &tag;
  d.redistribution = SL_UNION;
  s->seen = su_reg(st, &d);
  memset(&d, 0, sizeof d);
  d.name = "rules"; d.kind = SL_BROADCAST_MAP; d.n_map_key = 1; d.map_key = &name; d.n_value = 1;
  d.value = &lim;
  s->rules = su_reg(st, &d);
}

/* Writes key k's value, list and map, deterministic in (k, round). */
static inline void sn_put_key(sl_store *st, const sn_states *s, int64_t k, int round) {
  sl_value v[2], row, mk, sc;
  char note[64], nm[32];
  su_key_int(st, k);
  snprintf(note, sizeof note, "note-%lld-%d", (long long)k, round);
  v[0] = sl_int(k * 10 + round);
  v[1] = sl_text(note);
  ASSERT_OK(sl_value_update(s->counts, v), st);
  row = sl_int(k * 100 + round);
  ASSERT_OK(sl_list_add(s->events, &row), st);
  snprintf(nm, sizeof nm, "a%d", (int)(k % 3));
  mk = sl_text(nm);
  sc = sl_real((double)k + round / 8.0);
  ASSERT_OK(sl_map_put(s->attrs, &mk, &sc), st);
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */
/* ------------------------------------------------------------------------ */

static inline void sn_report_collect(void *ud, int rc, const char *msg) {
  su_buf *b = (su_buf *)ud;
  su_addf(b, "[%s] %s\n", rc == SL_OK ? "ok" : sl_errstr(rc), msg);
}

/* Opens the checkpoint directory <test dir>/chk with keep/budget and the
** report collected into *reports (may be NULL). */
static inline sl_chkdir *sn_chkdir(int keep, uint64_t max_bytes, su_buf *reports) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  char dir[4096];
  sl_chkdir_config_init(&cfg);
  if (keep) cfg.keep = keep;
  cfg.max_bytes = max_bytes;
  if (reports) {
    cfg.report = sn_report_collect;
    cfg.report_ud = reports;
  }
  snprintf(dir, sizeof dir, "%s/chk", test_dir());
  SN_OK(sl_chkdir_open(dir, &cfg, &cd), cd);
  return cd;
}

/* Takes checkpoint id (or savepoint) of n stores, publishes it. */
static inline void sn_checkpoint(sl_chkdir *cd, sl_store **stores, int n, int64_t id,
                                 const char *savepoint) {
  const char *target = NULL;
  sl_snapshot_info infos[64];
  ASSERT(n <= 64);
  SN_OK(sl_chkdir_target(cd, id, savepoint, &target), cd);
  for (int i = 0; i < n; i++) {
    sl_snapshot *sn = NULL;
    ASSERT_OK(sl_snapshot_begin(stores[i], target, id, savepoint ? SL_SAVEPOINT : SL_CHECKPOINT,
                                NULL, &sn), stores[i]);
    SN_OK(sl_snapshot_write(sn), sn);
    SN_OK(sl_snapshot_get_info(sn, &infos[i]), sn);
    ASSERT_OK(sl_snapshot_end(sn), stores[i]);
  }
  SN_OK(sl_chkdir_publish(cd, id, savepoint, infos, n), cd);
}

/* Path of a checkpoint's snapshot file. */
static inline char *sn_snap_path(char *out, size_t cap, int64_t id, const char *op, int subtask) {
  snprintf(out, cap, "%s/chk/chk-%lld/%s/%d.db.zst", test_dir(), (long long)id, op, subtask);
  return out;
}

/* The state directory restores go to: <test dir>/restored. */
static inline const char *sn_rdir(void) {
  static char buf[2048];
  snprintf(buf, sizeof buf, "%s/restored", test_dir());
  return buf;
}

/* Restores with the report collected; returns the rc. */
static inline int sn_restore(sl_chkdir *cd, int64_t id, const char *savepoint, const char *dir,
                             const sl_rescale *rs, int nrs, int64_t *restored) {
  return sl_chkdir_restore(cd, id, savepoint, dir, rs, nrs, restored);
}

#endif
