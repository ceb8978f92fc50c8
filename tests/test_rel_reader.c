/*
** test_rel_reader.c — a concurrent reader: the sqlite3 shell reads the live
** state file of a running job in a loop while the job writes and takes
** checkpoints. Neither side may see an error, the checkpoints must go on
** completing, and the state file's WAL must stay bounded (its largest size
** is measured and printed). The shell waits up to 2 s on a lock
** (.timeout), as any reader of a WAL database must: without it, it sees
** "database is locked" in the moments the job opens, recovers or closes
** the file.
*/
#include <sys/stat.h>

#include "sdk_util.h"

typedef struct rd_cfg {
  char dir[4096];
} rd_cfg;

static const sl_column rd_key[] = {{"key", SL_INTEGER, {0, 0, {0}}}};
static const sl_column rd_val[] = {{"n", SL_INTEGER, {0, 0, {0}}}};
static const sl_column rd_out[] = {{"key", SL_INTEGER, {0, 0, {0}}}};

static int rd_process(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *s = sl_ctx_state(ctx, "counts");
  const sl_value *v;
  int64_t n = 0;
  sl_value nv;
  int rc;
  (void)ud;
  rc = sl_value_get(s, &v);
  if (rc == SL_OK) n = v[0].v.i;
  else if (rc != SL_NOTFOUND) return rc;
  nv = sl_int(n + 1);
  return sl_value_update(s, &nv);
  (void)rec;
}

static int rd_job(void *arg) {
  rd_cfg *c = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator op;
  sl_state_desc d;
  sl_job *job = NULL;
  sl_job_stats stats;
  char state[4200], chk[4200], path[4200];
  const char *key = "key";
  int s0, s1, rc;
  FILE *f;
  snprintf(state, sizeof state, "%s/state", c->dir);
  snprintf(chk, sizeof chk, "%s/chk", c->dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 50;
  cfg.memory_budget = 64 * 1024;
  memset(&gen, 0, sizeof gen);
  gen.count = 300000;
  gen.keys = 5000;
  gen.records_per_read = 100;
  gen.delay_us_per_read = 300;
  sl_generator_source(&src, &gen);
  memset(&d, 0, sizeof d);
  d.name = "counts";
  d.kind = SL_VALUE_STATE;
  d.n_key = 1;
  d.key = rd_key;
  d.n_value = 1;
  d.value = rd_val;
  memset(&op, 0, sizeof op);
  op.process = rd_process;
  op.states = &d;
  op.n_states = 1;
  op.out = rd_out;
  op.n_out = 1;
  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, 1, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "counter", &op, 1, &s1);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  if (sl_job_get_stats(job, &stats) == SL_OK) {
    snprintf(path, sizeof path, "%s/stats", c->dir);
    f = fopen(path, "w");
    if (f) {
      fprintf(f, "%lld %lld %lld\n", (long long)stats.checkpoints,
              (long long)stats.failed_checkpoints, (long long)stats.records_in);
      fclose(f);
    }
  }
  sl_job_free(job);
  return rc ? 1 : 0;
}

TEST(rel_concurrent_shell_reader) {
  rd_cfg c;
  pid_t pid;
  int status = 0, reads = 0, nonempty = 0;
  long long max_wal = 0, checkpoints = -1, failed = -1, records = -1;
  char db[4200], wal[4300], out[256], *stats;
  snprintf(c.dir, sizeof c.dir, "%s", test_dir());
  snprintf(db, sizeof db, "%s/state/counter/0.db", c.dir);
  snprintf(wal, sizeof wal, "%s-wal", db);
  fflush(NULL);
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) _exit(rd_job(&c));
  while (waitpid(pid, &status, WNOHANG) == 0) {
    struct stat sb;
    if (stat(wal, &sb) == 0 && sb.st_size > max_wal) max_wal = sb.st_size;
    if (stat(db, &sb) == 0) {
      int rc = test_sh(out, sizeof out, "sqlite3 -readonly -bail -cmd '.timeout 2000' '%s' "
                       "'SELECT count(*), coalesce(sum(n), 0) FROM counts' 2>&1", db);
      if (rc != 0 && strstr(out, "no such table")) continue; /* not created yet */
      ASSERT_MSG(rc == 0, "the shell failed (%d): %s", rc, out);
      reads++;
      if (atoll(out) > 0) nonempty++;
    }
    sdk_sleep_ms(2);
  }
  ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the job failed: %d", status);
  {
    char p[4300];
    snprintf(p, sizeof p, "%s/stats", c.dir);
    stats = sdk_read(p);
  }
  ASSERT(sscanf(stats, "%lld %lld %lld", &checkpoints, &failed, &records) == 3);
  free(stats);
  printf("%d shell reads (%d saw rows), %lld checkpoints, %lld failed, %lld records, "
         "largest WAL %lld bytes\n", reads, nonempty, checkpoints, failed, records, max_wal);
  ASSERT(reads >= 20 && nonempty >= 10);
  ASSERT_EQ(records, 300000);
  ASSERT_EQ(failed, 0);
  ASSERT(checkpoints >= 5);
  /* bounded: far below what 300,000 updates would leave in an unchecked WAL */
  ASSERT_MSG(max_wal < 16 * 1024 * 1024, "the WAL grew to %lld bytes", max_wal);
  ASSERT_EQ(test_sh(out, sizeof out, "sqlite3 '%s' 'PRAGMA integrity_check; "
                    "SELECT sum(n) FROM counts'", db), 0);
  ASSERT_STR(out, "ok\n300000\n");
}
