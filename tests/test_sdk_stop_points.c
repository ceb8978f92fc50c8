/*
** test_sdk_stop_points.c — stopping a job at many points of a checkpoint.
** The job of sdk_fault_util.h (2 generators -> key_by -> 2 sequence
** checkers -> the exactly-once file sink, checkpoints every 3 ms) runs in
** the test process from empty directories. When generator 0 starts its
** part of checkpoint 2, the job's allocator starts numbering the job's
** allocations again, on every thread, and the stop comes at one of them:
**
**   stop at K      allocation K asks the job to stop: sl_job_stop(job, NULL),
**                  or sl_job_stop(job, "sp") to stop with a savepoint. The
**                  coordinator acts on a stop between checkpoints, so this
**                  checks that a stop asked for at any moment of a
**                  checkpoint waits for it and ends the job cleanly.
**   pause at K     the stop is asked for at the start of checkpoint 2, the
**                  checkpoint timeout is T = 40 ms (or 3 times what
**                  checkpoint 2 takes here undisturbed, when that is more:
**                  valgrind), and the thread making allocation K sleeps
**                  1.5 T in it: the checkpoint times out, the job stops,
**                  and the thread goes on from that allocation with the
**                  job stopping. Allocation K is
**                  anywhere: an instance's synchronous part, the message of
**                  a barrier being sent, the snapshot handed to the writer
**                  thread, the writer's backup and publication, a record.
**                  (A snapshot begun while the job was stopping was once
**                  lost that way, with its memory and its store.)
**   slow hook      the same timeout, with checker instance 1 taking S ms in
**                  its snapshot hook of checkpoint 2: S = 0 to 2 T in 5 steps
**                  (long mode: every ms).
**
** K = 1, 2, ... until the stop (or the pause) comes after checkpoint 2 is
** complete, three times in a row; in make test every K up to 4, then every
** 12th; long mode: every K.
**
** Every run must return SL_OK (with the savepoint, when it was asked for
** one before checkpoint 2 was complete and before the end of the input),
** free every block it got from the allocator,
** leave no SQLite memory and no file descriptor behind, and leave no
** checkpoint directory without its MANIFEST (unfinished ones are removed
** when the job ends); the newest checkpoint and a completed savepoint
** verify. A run without a stop from the same directories (from the
** savepoint when there is one) then finishes with the output and state of
** an uninterrupted run.
*/
#include <limits.h>

#include "sdk_fault_util.h"

#define SP_COUNT 240

static void sp_cfg(af_job_cfg *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->dir, sizeof c->dir, "%.4000s/run", test_dir());
  c->par = 2;
  c->count = SP_COUNT;
  c->delay_us = 500;
  c->tolerable = 1000;
  c->alloc = &af_alloc;
  c->arm_at_checkpoint = 2;
  c->interval_ms = 3;
}

/* One run stopped as armed, its checks, and the run that finishes the job. */
static void sp_once(af_job_cfg *c, const char *sp, const char *want, const char *what, long k) {
  char msg[AF_MSG_MAX], *got;
  af_job_cfg clean;
  af_mark mark;
  int rc, sp_ok = 0, incomplete = 0;
  af_reset_dir(c->dir, NULL);
  mark = af_mark_now();
  rc = af_run(c, msg, sizeof msg);
  ASSERT_MSG(rc == SL_OK, "%s %ld: the stopped job returned %s: %s", what, k, sl_errstr(rc), msg);
  af_no_leak(mark, what, k);
  af_chk_state(c, sp, &sp_ok, &incomplete);
  /* asked for before checkpoint 2 was complete and before the end of the
  ** input, the savepoint must be there */
  ASSERT_MSG(!sp || sp_ok || !atomic_load(&AF.stop_done) || atomic_load(&AF.stop_late) ||
                 atomic_load(&AF.stop_at_end),
             "%s %ld: asked to stop with a savepoint, the job ended without one", what, k);
  ASSERT_MSG(incomplete == 0, "%s %ld: %d checkpoint director%s without a MANIFEST left behind",
             what, k, incomplete, incomplete == 1 ? "y" : "ies");
  clean = *c;
  clean.arm_at_checkpoint = 0;
  clean.slow_ms = 0;
  clean.timeout_ms = 0;
  clean.final_only = 1;
  clean.delay_us = 0;
  clean.restore = sp_ok ? sp : NULL;
  rc = af_run(&clean, msg, sizeof msg);
  ASSERT_MSG(rc == SL_OK, "%s %ld: the run after the stop failed: %s: %s", what, k, sl_errstr(rc), msg);
  af_no_leak(mark, what, k);
  got = af_result(&clean);
  ASSERT_MSG(strcmp(got, want) == 0, "%s %ld: the run after the stop does not end as an "
             "uninterrupted run", what, k);
  free(got);
}

/* The checkpoint timeout of the runs that make checkpoint 2 time out: 40
** ms, or three times what checkpoint 2 takes here undisturbed when that is
** more (a loaded machine, valgrind), so that only checkpoint 2 times out. */
static int64_t sp_timeout_ms(void) {
  af_job_cfg c;
  char msg[AF_MSG_MAX];
  int64_t worst = 0;
  sp_cfg(&c);
  for (int i = 0; i < 3; i++) {
    int rc;
    af_reset_dir(c.dir, NULL);
    af_arm_stop(LONG_MAX, 0, 0, 2, NULL);
    rc = af_run(&c, msg, sizeof msg);
    ASSERT_MSG(rc == SL_OK, "%s: %s", sl_errstr(rc), msg);
    if (atomic_load(&AF.cp2_done_ms) && atomic_load(&AF.cp2_begun_ms) &&
        atomic_load(&AF.cp2_done_ms) - atomic_load(&AF.cp2_begun_ms) > worst)
      worst = atomic_load(&AF.cp2_done_ms) - atomic_load(&AF.cp2_begun_ms);
  }
  printf("checkpoint 2 takes up to %lld ms undisturbed: the timeout is %lld ms\n",
         (long long)worst, (long long)(3 * worst > 40 ? 3 * worst : 40));
  return 3 * worst > 40 ? 3 * worst : 40;
}

/* K = 1, 2, ...: the stop (pause 0) or the pause at allocation K. */
static void sp_loop(const char *sp, int pause) {
  af_job_cfg c;
  char *want = af_expected(SP_COUNT);
  const char *what = pause ? "a pause at allocation" : "a stop at allocation";
  long k, runs = 0;
  int late_in_a_row = 0, during = 0;
  sp_cfg(&c);
  if (pause) c.timeout_ms = sp_timeout_ms();
  for (k = 1; late_in_a_row < 3; k += test_long() || k < 4 ? 1 : 12) {
    int late;
    ASSERT_MSG(k < 100000, "%s never came after checkpoint 2", what);
    if (pause) af_arm_stop(0, k, c.timeout_ms * 3 / 2, 2, sp);
    else af_arm_stop(k, 0, 0, 2, sp);
    sp_once(&c, sp, want, what, k);
    late = pause ? !atomic_load(&AF.pause_done) || atomic_load(&AF.pause_late)
                 : !atomic_load(&AF.stop_done) || atomic_load(&AF.stop_late);
    if (late) {
      late_in_a_row++;
    } else {
      late_in_a_row = 0;
      during++;
    }
    runs++;
  }
  printf("%ld runs, %s a savepoint: %d with %s during checkpoint 2, up to allocation %ld after "
         "it began\n", runs, sp ? "with" : "without", during, pause ? "the pause" : "the stop",
         k - (test_long() || k < 4 ? 1 : 12));
  tt_count("faults", runs);
  ASSERT(during >= 2);
  free(want);
}

/* Checkpoint 2 times out while checker 1 is still in its snapshot hook. */
static void sp_slow_hook_loop(const char *sp) {
  af_job_cfg c;
  char *want = af_expected(SP_COUNT);
  long runs = 0;
  sp_cfg(&c);
  c.timeout_ms = sp_timeout_ms();
  for (int64_t s = 0; s <= 2 * c.timeout_ms; s += test_long() ? 1 : c.timeout_ms * 2 / 5) {
    c.slow_ms = s;
    af_arm_stop(0, 0, 0, 2, sp);
    sp_once(&c, sp, want, "a slow snapshot hook of ms", (long)s);
    runs++;
  }
  printf("%ld runs stopped at the start of checkpoint 2 (%s a savepoint) with its timeout %lld ms\n",
         runs, sp ? "with" : "without", (long long)c.timeout_ms);
  tt_count("faults", runs);
  free(want);
}

TEST(sdk_stop_during_checkpoint) { sp_loop(NULL, 0); }
TEST(sdk_stop_with_savepoint_during_checkpoint) { sp_loop("sp", 0); }
TEST(sdk_stop_while_checkpoint_times_out) {
  sp_loop(NULL, 1);
  sp_slow_hook_loop(NULL);
}
TEST(sdk_stop_with_savepoint_while_checkpoint_times_out) {
  sp_loop("sp", 1);
  sp_slow_hook_loop("sp");
}
