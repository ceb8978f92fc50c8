/*
** test_sdk_alloc_fault.c — allocation failure loops across the SDK, in
** SQLite's style. A job (2 generators -> key_by -> sequence checkers -> the
** exactly-once file sink) runs in the test process with the allocator of
** sdk_fault_util.h in its sl_job_config, which numbers every allocation the
** job makes on any of its threads (stores, channels, messages, snapshots,
** the checkpoint directory, restore) and fails allocation N, only N
** ("_once") or N and every one after it, for N = 1, 2, ... until a run in
** which no failure was injected. The scenarios:
**
**   fresh       from empty directories: job setup, opening the stores,
**               processing with checkpoints every 5 ms, the final checkpoint
**   restore     from a checkpoint of an earlier run that was stopped halfway
**   rescale     the same, with 3 checker instances where the checkpoint has 2
**   savepoint   from that checkpoint, and the run is stopped with a savepoint
**               (sl_job_stop(job, "sp")) when the checkers have seen 60 records
**   tolerated   like restore, with tolerable_failures high: a failure inside
**               a checkpoint fails only that checkpoint and the job goes on
**
** Every run must end with SL_OK or with an error code and a sentence from
** sl_errmsg() (never a crash, an abort or an error without an injected
** failure), free every block it got from the allocator, leave no SQLite
** memory (a connection or statement) and no file descriptor behind, and
** leave a checkpoint directory whose newest checkpoint verifies. Then a run
** without faults from the same directories (from the savepoint when the
** failing run completed it) must finish with the output and state of an
** uninterrupted run: nothing lost, nothing doubled. Long mode (make
** torture) tries every N; otherwise every N up to 20 (job setup) and then
** about 15 more spread over the rest of the run's
** allocations from a random start (the seed is printed; SL_TEST_SEED=<seed>
** repeats it). ASan or valgrind (make
** valgrind TEST_ARGS=sdk_alloc_fault) check the memory beyond that.
*/
#include "sdk_fault_util.h"

typedef struct af_scenario {
  int from_base;  /* restore from a checkpoint of a run stopped halfway */
  int par;        /* checker instances of the runs (the base has 2) */
  int tolerable;  /* tolerable_failures */
  int savepoint;  /* the run is stopped with a savepoint */
} af_scenario;

#define AF_COUNT 240

static void af_cfg(af_job_cfg *c, const char *sub, int par) {
  memset(c, 0, sizeof *c);
  snprintf(c->dir, sizeof c->dir, "%.4000s/%s", test_dir(), sub);
  c->par = par;
  c->count = AF_COUNT;
  c->delay_us = 500;
  c->alloc = &af_alloc;
}

/* A run without faults that must succeed. */
static void af_clean_run(af_job_cfg *c) {
  char msg[AF_MSG_MAX];
  int rc = af_run(c, msg, sizeof msg);
  ASSERT_MSG(rc == SL_OK, "a run without faults failed: %s: %s", sl_errstr(rc), msg);
}

/* base: a run with 2 checkers stopped (without a savepoint) once the
** checkers have seen half of the records; it has published a checkpoint
** from before the end of the input. */
static void af_make_base(void) {
  af_job_cfg c;
  int sp_ok, incomplete;
  int64_t newest = 0, pos = AF_COUNT * 2;
  for (int attempt = 0; attempt < 10 && (newest == 0 || pos >= AF_COUNT * 2); attempt++) {
    char path[4300];
    af_cfg(&c, "base", 2);
    af_reset_dir(c.dir, NULL);
    c.stop_after = AF_COUNT / 2 + (attempt % 2 ? attempt * 10 : -attempt * 10);
    af_clean_run(&c);
    newest = af_chk_state(&c, NULL, &sp_ok, &incomplete);
    pos = 0;
    for (int j = 0; j < 2 && newest; j++) {
      /* the working file holds the last checkpoint's commit */
      snprintf(path, sizeof path, "%s/state/gen/%d.db", c.dir, j);
      pos += su_sql_int(path, "SELECT value FROM sl_meta WHERE name = 'source_position'");
    }
  }
  ASSERT_MSG(newest > 0 && pos < AF_COUNT * 2, "the base run published no checkpoint before the "
             "end of its input");
  printf("base: checkpoint %lld, the generators at %lld of %d records\n", (long long)newest,
         (long long)pos / 2, AF_COUNT);
}

/* The next N: every one in long mode; otherwise every one up to AF_DENSE
** (job setup and the first stores), then every step-th from a random start. */
#define AF_DENSE 20
#define AF_SPREAD 15

static long af_next(long n, long step, long offset) {
  if (test_long() || n < AF_DENSE) return n + 1;
  if (n == AF_DENSE) return n + 1 + offset;
  return n + step;
}

static void af_loop(const af_scenario *s, int persistent) {
  af_job_cfg c, ref;
  char base[4300], msg[AF_MSG_MAX], *want, *got;
  long n, total, step, offset, runs = 0, injected_runs = 0, errors = 0, slowest_n = 0;
  int64_t t0, slowest = 0;
  int sp_ok = 0, incomplete = 0;
  af_mark mark;
  /* what an uninterrupted run gives */
  want = af_expected(AF_COUNT);
  af_cfg(&ref, "ref", s->par);
  af_reset_dir(ref.dir, NULL);
  af_clean_run(&ref);
  got = af_result(&ref);
  ASSERT_MSG(strcmp(got, want) == 0, "an uninterrupted run does not give the expected result");
  free(got);
  if (s->from_base) af_make_base();
  snprintf(base, sizeof base, "%s/base", test_dir());
  af_cfg(&c, "run", s->par);
  c.tolerable = s->tolerable;
  if (s->savepoint) {
    c.stop_after = 60;
    c.stop_savepoint = "sp";
  }
  /* how many allocations a run makes */
  af_reset_dir(c.dir, s->from_base ? base : NULL);
  mark = af_mark_now();
  af_arm(0, 0);
  ASSERT_OK(af_run(&c, msg, sizeof msg), NULL);
  af_disarm();
  total = atomic_load(&AF.count);
  af_no_leak(mark, "the run without faults", 0);
  step = total > AF_DENSE + AF_SPREAD ? (total - AF_DENSE) / AF_SPREAD : 1;
  {
    const char *env = getenv("SL_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    offset = (long)(seed % (uint64_t)step);
    if (!test_long())
      printf("seed %llu: every allocation up to %d, then every %ld-th from %ld\n",
             (unsigned long long)seed, AF_DENSE, step, AF_DENSE + 1 + offset);
  }

  for (n = 1;; n = af_next(n, step, offset)) {
    af_job_cfg clean;
    int rc, injected;
    ASSERT_MSG(n < 20 * total + 1000, "still failing at allocation %ld", n);
    af_reset_dir(c.dir, s->from_base ? base : NULL);
    mark = af_mark_now();
    t0 = af_now_ms();
    af_arm(n, persistent);
    rc = af_run(&c, msg, sizeof msg);
    af_disarm();
    if (af_now_ms() - t0 > slowest) {
      slowest = af_now_ms() - t0;
      slowest_n = n;
    }
    injected = atomic_load(&AF.injected);
    runs++;
    if (injected) injected_runs++;
    ASSERT_MSG(rc == SL_OK || injected, "allocation %ld: %s (%s) without an injected failure", n,
               sl_errstr(rc), msg);
    if (rc != SL_OK) {
      errors++;
      ASSERT_MSG(rc >= SL_ERROR && rc <= SL_BUSY, "allocation %ld: result code %d", n, rc);
      ASSERT_MSG(msg[0] && strcmp(msg, "not an error") != 0, "allocation %ld: %s without a message",
                 n, sl_errstr(rc));
    }
    af_no_leak(mark, persistent ? "failing allocations from" : "failing allocation", n);
    af_chk_state(&c, "sp", &sp_ok, &incomplete);
    /* a run without faults from what the failing one left */
    clean = c;
    clean.stop_after = 0;
    clean.stop_savepoint = NULL;
    clean.restore = s->savepoint && sp_ok ? "sp" : NULL;
    clean.final_only = 1;
    clean.delay_us = 0;
    af_clean_run(&clean);
    af_no_leak(mark, "the run after failing allocation", n);
    got = af_result(&clean);
    ASSERT_MSG(strcmp(got, want) == 0,
               "allocation %ld (%s) failed; the run after it does not end as an uninterrupted run",
               n, sl_errstr(rc));
    free(got);
    if (!injected) break;
  }
  printf("%ld runs (%s failures): %ld with a failure injected, %ld ended with an error; a run "
         "makes about %ld allocations; the slowest failing run took %lld ms (allocation %ld)\n",
         runs, persistent ? "persistent" : "single", injected_runs, errors, total,
         (long long)slowest, slowest_n);
  tt_count("faults", injected_runs);
  ASSERT(errors > 0);
  ASSERT_MSG(n >= total / 2, "the loop ended at allocation %ld; a run makes about %ld", n, total);
  free(want);
}

static const af_scenario af_fresh = {0, 2, 0, 0};
static const af_scenario af_restore = {1, 2, 0, 0};
static const af_scenario af_rescale = {1, 3, 0, 0};
static const af_scenario af_savepoint = {1, 2, 0, 1};
static const af_scenario af_tolerated = {1, 2, 1000, 0};

TEST(sdk_alloc_fault_fresh) { af_loop(&af_fresh, 1); }
TEST(sdk_alloc_fault_fresh_once) { af_loop(&af_fresh, 0); }
TEST(sdk_alloc_fault_restore) { af_loop(&af_restore, 1); }
TEST(sdk_alloc_fault_restore_once) { af_loop(&af_restore, 0); }
TEST(sdk_alloc_fault_rescale) { af_loop(&af_rescale, 1); }
TEST(sdk_alloc_fault_rescale_once) { af_loop(&af_rescale, 0); }
TEST(sdk_alloc_fault_savepoint) { af_loop(&af_savepoint, 1); }
TEST(sdk_alloc_fault_savepoint_once) { af_loop(&af_savepoint, 0); }
TEST(sdk_alloc_fault_tolerated_once) { af_loop(&af_tolerated, 0); }
