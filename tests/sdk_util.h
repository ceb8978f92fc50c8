/*
** sdk_util.h — helpers of the SDK tests: running a job in a child process,
** killing it with SIGKILL at random moments until it finishes, and reading
** the output it published.
*/
#ifndef SL_SDK_UTIL_H
#define SL_SDK_UTIL_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "statelite.h"
#include "test.h"
#include "torture.h"

/* Runs fn(arg) in a child process and returns its exit status; the child
** exits with fn's return value (0 for success). */
static inline int sdk_run_child(int (*fn)(void *), void *arg) {
  pid_t pid;
  int status = 0;
  fflush(NULL);
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) _exit(fn(arg) & 0xff);
  ASSERT(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static inline uint64_t sdk_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline void sdk_sleep_ms(int64_t ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Starts fn(arg) in a child again and again, killing it with SIGKILL after a
** random time between lo_ms and hi_ms, until a run ends by itself. Returns
** the number of kills; the last run must have exited 0. */
static inline int sdk_kill_loop(int (*fn)(void *), void *arg, uint64_t seed, int min_kills,
                                int64_t lo_ms, int64_t hi_ms) {
  int kills = 0;
  printf("kill loop seed %llu\n", (unsigned long long)seed);
  for (int cycle = 0; cycle < 10000; cycle++) {
    pid_t pid;
    int status = 0;
    int64_t wait_ms = kills < min_kills ? lo_ms + (int64_t)(sdk_rand(&seed) % (uint64_t)(hi_ms - lo_ms + 1)) : -1;
    fflush(NULL);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) _exit(fn(arg) & 0xff);
    if (wait_ms >= 0) {
      int64_t waited = 0;
      while (waited < wait_ms && waitpid(pid, &status, WNOHANG) == 0) {
        sdk_sleep_ms(5);
        waited += 5;
      }
      if (waited >= wait_ms) {
        kill(pid, SIGKILL);
        ASSERT(waitpid(pid, &status, 0) == pid);
        if (WIFSIGNALED(status)) {
          kills++;
          continue;
        }
      }
    } else {
      ASSERT(waitpid(pid, &status, 0) == pid);
    }
    ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "the job ended with status %d (seed %llu)", status, (unsigned long long)seed);
    tt_count("cycles", kills);
    return kills;
  }
  ASSERT_MSG(0, "the job never finished");
  return kills;
}

/* Reads a whole file into a NUL-terminated malloc'd buffer ("" if absent). */
static inline char *sdk_read(const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  if (!f) {
    buf = malloc(1);
    ASSERT(buf);
    buf[0] = 0;
    return buf;
  }
  ASSERT(fseek(f, 0, SEEK_END) == 0);
  n = ftell(f);
  ASSERT(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  ASSERT(buf);
  ASSERT(fread(buf, 1, (size_t)n, f) == (size_t)n);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static inline int sdk_cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of a text sorted, joined again with newlines (malloc'd). */
static inline char *sdk_sorted(const char *text) {
  size_t n = 0, cap = 16, len = strlen(text);
  char *copy = malloc(len + 1), **lines = malloc(sizeof *lines * cap), *out, *p;
  ASSERT(copy && lines);
  memcpy(copy, text, len + 1);
  for (p = strtok(copy, "\n"); p; p = strtok(NULL, "\n")) {
    if (n == cap) {
      cap *= 2;
      lines = realloc(lines, sizeof *lines * cap);
      ASSERT(lines);
    }
    lines[n++] = p;
  }
  qsort(lines, n, sizeof *lines, sdk_cmp_lines);
  out = malloc(len + 2);
  ASSERT(out);
  out[0] = 0;
  p = out;
  for (size_t i = 0; i < n; i++) {
    size_t k = strlen(lines[i]);
    memcpy(p, lines[i], k);
    p[k] = '\n';
    p += k + 1;
  }
  *p = 0;
  free(copy);
  free(lines);
  return out;
}

/* ---- a sequence checker: the operator of the end-to-end tests -------------- */

/* Records (id, key, seq) from sl_generator_source() arrive keyed by key; each
** key's seq must be the previous one plus one. The operator keeps the last
** seq per key in value state "last" and emits (key, seq, what) with what ""
** when in order, "GAP" when a number was skipped, "DUP" when seen before. */
static const sl_column sdk_check_key[] = {{"key", SL_INTEGER, {0, 0, {0}}}};
static const sl_column sdk_check_last[] = {{"last_seq", SL_INTEGER, {0, 0, {0}}}};
static const sl_column sdk_check_out[] = {{"key", SL_INTEGER, {0, 0, {0}}},
                                          {"seq", SL_INTEGER, {0, 0, {0}}},
                                          {"what", SL_TEXT, {0, 0, {0}}}};
static const sl_state_desc sdk_check_states[] = {
    {"last", SL_VALUE_STATE, 1, sdk_check_key, 0, NULL, 1, sdk_check_last, 0, 0, 0, NULL, 0, 0,
     NULL, NULL, NULL, NULL, NULL}};

static inline int sdk_check_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *last = sl_ctx_state(ctx, "last");
  const sl_value *v;
  int64_t key = rec->f[1].v.i, seq = rec->f[2].v.i, prev = -1;
  sl_value out[3], nv;
  int rc;
  (void)ud;
  rc = sl_value_get(last, &v);
  if (rc == SL_OK) prev = v[0].v.i;
  else if (rc != SL_NOTFOUND) return rc;
  out[0] = sl_int(key);
  out[1] = sl_int(seq);
  out[2] = sl_text(seq <= prev ? "DUP" : seq == prev + 1 ? "" : "GAP");
  if (seq > prev) {
    nv = sl_int(seq);
    rc = sl_value_update(last, &nv);
    if (rc) return rc;
  }
  return sl_ctx_emit(ctx, out, 3, rec->ts);
}

/* Fills *op with the sequence checker. */
static inline void sdk_checker(sl_operator *op) {
  memset(op, 0, sizeof *op);
  op->process = sdk_check_process;
  op->states = sdk_check_states;
  op->n_states = 1;
  op->out = sdk_check_out;
  op->n_out = 3;
}

/* The reliability tests' job: the source src (parallelism n_src, named
** name) -> SL_KEY_BY "key" -> the checker check (2) -> SL_REBALANCE -> the
** sink (1). Creates *job from cfg and builds the graph; the caller runs it
** and frees *job (set even when building failed). Returns an SL_ code. */
static inline int sdk_checked_job(const sl_job_config *cfg, const char *name, sl_source *src,
                                  int n_src, sl_operator *check, sl_operator *sink, sl_job **job) {
  const char *key = "key";
  int s0, s1, s2;
  int rc = sl_job_new(cfg, job);
  if (rc == SL_OK) rc = sl_job_source(*job, name, src, n_src, &s0);
  if (rc == SL_OK) rc = sl_job_operator(*job, "check", check, 2, &s1);
  if (rc == SL_OK) rc = sl_job_operator(*job, "sink", sink, 1, &s2);
  if (rc == SL_OK) rc = sl_job_connect(*job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_connect(*job, s1, s2, SL_REBALANCE, NULL, 0);
  return rc;
}

#endif
