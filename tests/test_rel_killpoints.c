/*
** test_rel_killpoints.c — named kill points (base.h, slKillPoint): for every
** point, a job (generator -> key_by -> sequence checker -> exactly-once file
** sink) runs in a child process with SL_KILL_POINT=<point>:30 (or :60) in its
** environment, so that it kills itself with SIGKILL there now and then; it
** is restarted until it exits 0. After a cap of kills the last run goes
** without the kill point, so the job always ends. Pass: every point killed
** the job at least once, no sequence gap or duplicate, the output equal to
** an uninterrupted run's, every key's final state exact, integrity_check ok.
*/
#include <sqlite3.h>

#include "sdk_util.h"
#include "torture.h"

typedef struct kp_cfg {
  int64_t count, keys, delay_us;
  const char *point; /* SL_KILL_POINT of the child, NULL for none */
  char dir[4096];
} kp_cfg;




static int kp_job(void *arg) {
  kp_cfg *c = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator check, sink;
  sl_job *job = NULL;
  char state[4200], chk[4200], out[4200];
  int rc;
  if (c->point) setenv("SL_KILL_POINT", c->point, 1); /* only in this child */
  else unsetenv("SL_KILL_POINT");
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  snprintf(out, sizeof out, "%s/out.txt", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 20;
  cfg.mode = SL_EXACTLY_ONCE;
  cfg.channel_capacity = 64;
  memset(&gen, 0, sizeof gen);
  gen.count = c->count;
  gen.keys = c->keys;
  gen.records_per_read = 8;
  gen.delay_us_per_read = c->delay_us;
  sl_generator_source(&src, &gen);
  sdk_checker(&check);
  sl_file_sink(&sink, out);
  rc = sdk_checked_job(&cfg, "gen", &src, 2, &check, &sink, &job);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  sl_job_free(job);
  return rc ? 1 : 0;
}

/* Runs the job once in a child; returns 1 if it died by SIGKILL, 0 if it
** exited 0, and fails the test otherwise. */
static int kp_run(kp_cfg *c) {
  int st = sdk_run_child(kp_job, c);
  if (st == 128 + SIGKILL) return 1;
  ASSERT_MSG(st == 0, "the job ended with status %d (kill point %s)", st,
             c->point ? c->point : "none");
  return 0;
}

/* The id of the newest complete checkpoint in the job's directory, 0 if none. */
static int64_t kp_newest(const kp_cfg *c) {
  sl_chkdir_config cc;
  sl_chkdir *cd = NULL;
  const sl_chk_entry *e;
  char chk[4200];
  int n = 0;
  int64_t id = 0;
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  if (access(chk, F_OK) != 0) return 0;
  sl_chkdir_config_init(&cc);
  cc.flags = SL_CHKDIR_READONLY;
  ASSERT_OK(sl_chkdir_open(chk, &cc, &cd), cd);
  ASSERT_OK(sl_chkdir_list(cd, &e, &n), cd);
  for (int i = 0; i < n; i++)
    if (e[i].kind == SL_CHECKPOINT && e[i].complete && e[i].id > id) id = e[i].id;
  sl_chkdir_close(cd);
  return id;
}

static void kp_check(const kp_cfg *c) {
  char path[4200], *text, *sorted, *expect, *e;
  size_t cap = (size_t)c->count * 32 + 16, n = 0;
  int64_t seen = 0;
  snprintf(path, sizeof path, "%s/out.txt", c->dir);
  text = sdk_read(path);
  ASSERT_MSG(!strstr(text, "GAP"), "a sequence gap in the output");
  ASSERT_MSG(!strstr(text, "DUP"), "a duplicate in the output");
  sorted = sdk_sorted(text);
  expect = malloc(cap);
  ASSERT(expect);
  expect[0] = 0;
  for (int64_t i = 0; i < c->count; i++)
    n += (size_t)snprintf(expect + n, cap - n, "%lld\t%lld\t\n", (long long)(i % c->keys),
                          (long long)(i / c->keys));
  e = sdk_sorted(expect);
  ASSERT_MSG(strcmp(sorted, e) == 0, "the output differs from an uninterrupted run's (%zu vs %zu bytes)",
             strlen(sorted), strlen(e));
  free(e);
  free(expect);
  free(sorted);
  free(text);
  for (int i = 0; i < 2; i++) {
    sqlite3 *db;
    sqlite3_stmt *q;
    snprintf(path, sizeof path, "%s/state/check/%d.db", c->dir, i);
    ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    ASSERT(sqlite3_prepare_v2(db, "SELECT key, last_seq FROM last", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
      int64_t k = sqlite3_column_int64(q, 0), s = sqlite3_column_int64(q, 1);
      int64_t n_k = c->count / c->keys + (k < c->count % c->keys ? 1 : 0);
      ASSERT_MSG(s == n_k - 1, "key %lld ends at %lld, expected %lld", (long long)k, (long long)s,
                 (long long)(n_k - 1));
      seen++;
    }
    sqlite3_finalize(q);
    ASSERT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  ASSERT_EQ(seen, c->keys);
}

static const char *const kp_points[] = {"commit",          "backup",         "snapshot_written",
                                        "snapshot_synced", "snapshot_renamed", "manifest_before",
                                        "manifest_after",  "restore",        "retention"};

TEST(rel_named_kill_points) {
  const int npoints = (int)(sizeof kp_points / sizeof kp_points[0]);
  const int max_kills = test_long() ? 40 : 4; /* hits per point before the last, clean run */
  const int max_cycles = test_long() ? 400 : 40;
  int total = 0;
  for (int p = 0; p < npoints; p++) {
    kp_cfg c;
    char spec[64];
    int kills = 0, hits = 0, cycles = 0, done = 0;
    memset(&c, 0, sizeof c);
    c.count = test_long() ? 40000 : 6000;
    c.keys = 61;
    c.delay_us = 1500;
    snprintf(c.dir, sizeof c.dir, "%.4000s/%s", test_dir(), kp_points[p]);
    ASSERT(test_sh(NULL, 0, "mkdir -p '%s'", c.dir) == 0);
    if (strcmp(kp_points[p], "restore") == 0) {
      /* A restore needs a checkpoint, and a run that gets through its
      ** restore would finish: restore:30 goes with manifest_after:100, so
      ** every run dies, after its restore or after publishing a checkpoint.
      ** A death that published nothing is a death in the restore. */
      c.point = "manifest_after";
      ASSERT_MSG(kp_run(&c) == 1, "the job did not die at manifest_after:100");
      snprintf(spec, sizeof spec, "restore:30,manifest_after");
    } else {
      /* points passed once per checkpoint (about 15 in a run) take 60%, so
      ** that a run never getting killed (0.4^13) does not happen in practice;
      ** the others are passed by each of the 5 instances: 30% */
      int once = strncmp(kp_points[p], "manifest_", 9) == 0 || strcmp(kp_points[p], "retention") == 0;
      snprintf(spec, sizeof spec, "%s:%d", kp_points[p], once ? 60 : 30);
    }
    while (!done) {
      int64_t before = kp_newest(&c);
      ASSERT_MSG(++cycles <= max_cycles, "kill point %s: the job did not finish in %d runs",
                 kp_points[p], max_cycles);
      c.point = hits < max_kills ? spec : NULL;
      if (kp_run(&c)) {
        ASSERT_MSG(c.point, "the job died by SIGKILL without a kill point");
        kills++;
        if (strcmp(kp_points[p], "restore") != 0 || kp_newest(&c) == before) hits++;
      } else {
        done = 1;
      }
    }
    printf("kill point %-16s hit %d times, %d kills in %d runs, last checkpoint %lld\n",
           kp_points[p], hits, kills, cycles, (long long)kp_newest(&c));
    tt_figure("kill_point %d %s", hits, kp_points[p]);
    ASSERT_MSG(hits >= 1, "kill point %s was never hit", kp_points[p]);
    kp_check(&c);
    total += hits;
  }
  printf("%d points, %d hits, 0 violations\n", npoints, total);
}

/* The hook itself: the exact name, a list, a probability of 0 and 100. */
TEST(quick_rel_kill_point_matching) {
  kp_cfg c;
  static const struct {
    const char *spec;
    int dies;
  } cases[] = {{"commit", 1},         {"commi", 0},        {"commit2", 0},       {"x,commit", 1},
               {"x:100,commit:100", 1}, {"commit:0", 0},     {"manifest_after", 1}, {"", 0},
               {"restore,commitx", 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int st;
    memset(&c, 0, sizeof c);
    c.count = 500;
    c.keys = 7;
    snprintf(c.dir, sizeof c.dir, "%s/%zu", test_dir(), i);
    ASSERT(test_sh(NULL, 0, "mkdir -p '%s'", c.dir) == 0);
    c.point = cases[i].spec;
    st = sdk_run_child(kp_job, &c);
    ASSERT_MSG(st == (cases[i].dies ? 128 + SIGKILL : 0), "SL_KILL_POINT=\"%s\": status %d",
               cases[i].spec, st);
  }
}
