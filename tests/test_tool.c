/*
** test_tool.c — the statelite command-line tool through the real binary:
** ls, verify, restore (also rescaled), savepoint, gc and dump of state files
** and snapshots, --help everywhere, and the documented exit codes.
*/
#include <sqlite3.h>
#include <stdarg.h>

#include "sdk_util.h"

static const sl_column t_key[] = {{"key", SL_INTEGER, {0, 0, {0}}}};
static const sl_column t_val[] = {{"n", SL_INTEGER, {0, 0, {0}}}};
static sl_state_desc t_state;

static int t_count(sl_ctx *ctx, const sl_record *rec, void *ud) {
  sl_state *s = sl_ctx_state(ctx, "counts");
  const sl_value *v;
  sl_value nv;
  int64_t n = 0;
  (void)rec;
  (void)ud;
  if (sl_value_get(s, &v) == SL_OK) n = v[0].v.i;
  nv = sl_int(n + 1);
  return sl_value_update(s, &nv);
}

/* A finished job with 2 counting instances: checkpoints in DIR/chk. */
static int t_job(void *arg) {
  const char *dir = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator op;
  sl_job *job = NULL;
  char state[4200], chk[4200];
  const char *key = "key";
  int s0, s1, rc;
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(chk, sizeof chk, "%s/chk", dir);
  sl_job_config_init(&cfg);
  cfg.state_dir = state;
  cfg.checkpoint_dir = chk;
  cfg.checkpoint_interval_ms = 10;
  cfg.retain = 3;
  memset(&gen, 0, sizeof gen);
  gen.count = 30000;
  gen.keys = 300;
  gen.records_per_read = 100;
  gen.delay_us_per_read = 500;
  sl_generator_source(&src, &gen);
  memset(&t_state, 0, sizeof t_state);
  t_state.name = "counts";
  t_state.kind = SL_VALUE_STATE;
  t_state.n_key = 1;
  t_state.key = t_key;
  t_state.n_value = 1;
  t_state.value = t_val;
  memset(&op, 0, sizeof op);
  op.process = t_count;
  op.states = &t_state;
  op.n_states = 1;
  rc = sl_job_new(&cfg, &job);
  if (rc == SL_OK) rc = sl_job_source(job, "gen", &src, 1, &s0);
  if (rc == SL_OK) rc = sl_job_operator(job, "count", &op, 2, &s1);
  if (rc == SL_OK) rc = sl_job_connect(job, s0, s1, SL_KEY_BY, &key, 1);
  if (rc == SL_OK) rc = sl_job_run(job);
  sl_job_free(job);
  return rc ? 1 : 0;
}

static char out[1 << 16];

/* Runs the tool with the arguments fmt makes; its output goes to out. */
static int TOOL(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int TOOL(const char *fmt, ...) {
  char args[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  return test_sh(out, sizeof out, "'%s' %s", test_bin("statelite"), args);
}

static int64_t t_sum(const char *state_dir, int par) {
  int64_t sum = 0;
  for (int i = 0; i < par; i++) {
    char path[4300];
    sqlite3 *db;
    sqlite3_stmt *q;
    snprintf(path, sizeof path, "%s/count/%d.db", state_dir, i);
    ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    ASSERT(sqlite3_prepare_v2(db, "SELECT coalesce(sum(n),0) FROM counts", -1, &q, NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    sum += sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  return sum;
}

TEST(tool_commands_through_the_binary) {
  const char *d = test_dir();
  char path[4300];
  ASSERT_EQ(sdk_run_child(t_job, (void *)d), 0);

  /* help and usage errors */
  ASSERT_EQ(TOOL("--help"), 0);
  ASSERT(strstr(out, "usage: statelite COMMAND"));
  for (const char *const *c = (const char *const[]){"ls", "verify", "restore", "savepoint", "gc", "dump", NULL}; *c; c++) {
    ASSERT_EQ(TOOL("%s --help", *c), 0);
    ASSERT_MSG(strstr(out, "usage: statelite "), "%s --help printed: %s", *c, out);
  }
  ASSERT_EQ(TOOL("frobnicate 2>&1"), 2);
  ASSERT(strstr(out, "unknown command"));
  ASSERT_EQ(TOOL("ls 2>&1"), 2);
  ASSERT_EQ(TOOL("ls '%s/nowhere' 2>&1", d), 1);

  /* ls and verify of a healthy directory */
  ASSERT_EQ(TOOL("ls '%s/chk'", d), 0);
  ASSERT(strstr(out, "checkpoint"));
  ASSERT(strstr(out, "complete"));
  ASSERT(strstr(out, " ok"));
  ASSERT_EQ(TOOL("verify '%s/chk'", d), 0);
  ASSERT(strstr(out, ": ok"));
  ASSERT(!strstr(out, "corrupt"));

  /* dump of a state file and of a snapshot, csv and json */
  ASSERT_EQ(TOOL("dump '%s/state/count/0.db' --state counts | head -3", d), 0);
  ASSERT(!strncmp(out, "# state counts\nkg,key,n\n", 24));
  ASSERT_EQ(TOOL("dump \"$(ls -d '%s'/chk/chk-* | sort -t- -k2 -n | tail -1)/count/1.db.zst\" --format json | head -1", d), 0);
  ASSERT_MSG(strstr(out, "{\"state\":\"counts\",\"kg\":") && strstr(out, "\"key\":") && strstr(out, "\"n\":"), "%s", out);
  ASSERT_EQ(TOOL("dump '%s/state/count/0.db' --state nope 2>&1", d), 1);
  ASSERT(strstr(out, "nope"));

  /* restore rescaled to 3 instances: every count is there, once */
  ASSERT_EQ(TOOL("restore '%s/chk' --to '%s/r3' --parallelism count=3 --parallelism gen=1", d, d), 0);
  ASSERT(strstr(out, "restored checkpoint"));
  snprintf(path, sizeof path, "%s/r3", d);
  ASSERT_EQ(t_sum(path, 3), 30000);
  ASSERT_EQ(TOOL("restore '%s/chk' --to '%s/r1' --parallelism 1", d, d), 0);
  snprintf(path, sizeof path, "%s/r1", d);
  ASSERT_EQ(t_sum(path, 1), 30000);

  /* an offline savepoint of the rescaled files, then gc keeps it */
  ASSERT_EQ(TOOL("savepoint '%s/r3' '%s/chk' mine", d, d), 0);
  ASSERT(strstr(out, "savepoint mine"));
  ASSERT_EQ(TOOL("gc '%s/chk' --keep 1", d), 0);
  ASSERT_EQ(TOOL("ls '%s/chk'", d), 0);
  ASSERT(strstr(out, "savepoint  mine"));
  ASSERT_EQ(TOOL("restore '%s/chk' mine --to '%s/rsp'", d, d), 0);
  snprintf(path, sizeof path, "%s/rsp", d);
  ASSERT_EQ(t_sum(path, 3), 30000);

  /* a damaged snapshot: verify names it and exits 1 */
  ASSERT_EQ(test_sh(NULL, 0, "f=\"$(ls -d '%s'/chk/chk-* | sort -t- -k2 -n | tail -1)/count/0.db.zst\"; "
                             "printf 'XXXX' | dd of=\"$f\" bs=1 seek=200 conv=notrunc 2>/dev/null", d), 0);
  ASSERT_EQ(TOOL("verify '%s/chk' 2>&1", d), 1);
  ASSERT_MSG(strstr(out, "0.db.zst"), "verify did not name the file: %s", out);
}

typedef struct prog_count {
  int unpacked, rebuilt, last_done, last_total;
} prog_count;

static void count_progress(void *ud, const char *what, const char *op, int done, int total) {
  prog_count *p = ud;
  ASSERT(op != NULL);
  if (!strcmp(what, "unpacked")) p->unpacked++;
  else if (!strcmp(what, "rebuilt")) p->rebuilt++;
  else ASSERT_MSG(0, "unknown progress step %s", what);
  ASSERT(done >= 1 && done <= total);
  p->last_done = done;
  p->last_total = total;
}

TEST(tool_restore_reports_progress) {
  const char *d = test_dir();
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  prog_count p;
  sl_rescale rs[2] = {{"count", 3}, {"gen", 1}};
  char dir[4300], to[4300];
  int64_t restored = 0;
  ASSERT_EQ(sdk_run_child(t_job, (void *)d), 0);
  memset(&p, 0, sizeof p);
  sl_chkdir_config_init(&cfg);
  cfg.progress = count_progress;
  cfg.progress_ud = &p;
  snprintf(dir, sizeof dir, "%s/chk", d);
  snprintf(to, sizeof to, "%s/r", d);
  ASSERT_OK(sl_chkdir_open(dir, &cfg, &cd), cd);
  ASSERT_OK(sl_chkdir_restore(cd, 0, NULL, to, rs, 2, &restored), cd);
  sl_chkdir_close(cd);
  /* gen: 1 file unpacked; count: 2 old files unpacked, 3 instances rebuilt */
  ASSERT_EQ(p.unpacked, 3);
  ASSERT_EQ(p.rebuilt, 3);
  ASSERT_EQ(t_sum(to, 3), 30000);
}
