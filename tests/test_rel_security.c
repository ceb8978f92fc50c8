/*
** test_rel_security.c — hostile input. Checkpoints are built by hand, the
** way an attacker would: a state file with a trigger or a view added through
** the sqlite3 C API, compressed with zstd, with a MANIFEST whose CRC-32C
** values are computed here. A control built the same way without the
** hostile part restores, so the refusal is for the reason named. Zstd frames
** that declare or produce far more than allowed are refused without the
** memory (the restore runs in a child whose peak memory is measured). Names
** with quotes, slashes, "..", spaces and NUL bytes are refused with
** SL_MISUSE and a message, and nothing is written outside the configured
** directories.
*/
#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "test_rel_util.h"

/* ------------------------------------------------------------------------ */
/* Hand-made checkpoints                                                     */
/* ------------------------------------------------------------------------ */

/* A real state file of operator "rel" (subtask 0 of 1) at <test dir>/src.db
** with 50 rows of `counts`, committed and closed (its WAL folded in). */
static void make_state_file(char *out, size_t cap) {
  sl_store *st = su_open("rel", 0, 1, NULL);
  sl_state *s = rel_counts(st);
  char db[4096];
  for (int64_t k = 0; k < 50; k++) {
    sl_value v = sl_int(k + 1000);
    su_key_int(st, k);
    ASSERT_OK(sl_value_update(s, &v), st);
  }
  su_commit(st);
  su_close(st);
  su_db_path(db, sizeof db, su_dir(), "rel", 0);
  su_pathf(out, cap, "%s/src.db", test_dir());
  /* a plain copy of a closed WAL-mode file is the whole database */
  su_copy_file(db, out);
}

static void exec_sql(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  char *err = NULL;
  ASSERT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
  ASSERT_MSG(sqlite3_exec(h, sql, NULL, NULL, &err) == SQLITE_OK, "%s: %s", sql, err);
  ASSERT(sqlite3_close(h) == SQLITE_OK);
}

/* Writes MANIFEST of checkpoint `id` holding the one file rel/0.db.zst. */
static void write_manifest(int64_t id, uint64_t raw) {
  char dir[4096], snap[4096], path[4096];
  size_t n = 0;
  char *f;
  su_buf m = {0, 0, 0};
  su_pathf(dir, sizeof dir, "%s/chk/chk-%lld", test_dir(), (long long)id);
  su_pathf(snap, sizeof snap, "%s/rel/0.db.zst", dir);
  su_pathf(path, sizeof path, "%s/MANIFEST", dir);
  f = su_read_file(snap, &n);
  ASSERT(f != NULL);
  su_addf(&m, "statelite-manifest 1\nid %lld\nkind checkpoint\nname -\ntime_ms 1700000000000\n"
          "format 1\noperator rel 1 128\nfile rel/0.db.zst %zu %llu %08x\n", (long long)id, n,
          (unsigned long long)raw, rel_crc32c(f, n));
  su_addf(&m, "checksum %08x\n", rel_crc32c(m.p, m.n));
  su_write_file(path, m.p, m.n);
  free(m.p);
  free(f);
}

/* Compresses db into checkpoint `id` with the zstd tool and seals it. */
static void make_checkpoint(int64_t id, const char *db) {
  char out[512];
  struct stat sb;
  ASSERT(stat(db, &sb) == 0);
  ASSERT_EQ(test_sh(out, sizeof out, "mkdir -p '%s/chk/chk-%lld/rel' && zstd -q -f '%s' -o "
                    "'%s/chk/chk-%lld/rel/0.db.zst' 2>&1", test_dir(), (long long)id, db,
                    test_dir(), (long long)id), 0);
  write_manifest(id, (uint64_t)sb.st_size);
}

static sl_chkdir *open_chk(uint64_t max_raw, su_buf *rep) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  char dir[4096];
  sl_chkdir_config_init(&cfg);
  cfg.keep = 5;
  if (max_raw) cfg.max_raw_bytes = max_raw;
  if (rep) {
    cfg.report = rel_report;
    cfg.report_ud = rep;
  }
  su_pathf(dir, sizeof dir, "%s/chk", test_dir());
  ASSERT(sl_chkdir_open(dir, &cfg, &cd) == SL_OK);
  return cd;
}

/* Restoring checkpoint id must fail with SL_CORRUPT naming `why`, leaving
** no state file and no .restore directory behind. */
static void expect_refused(int64_t id, const char *why) {
  su_buf rep = {0, 0, 0};
  sl_chkdir *cd = open_chk(0, &rep);
  char rdir[4096], p[4096], *r;
  int64_t restored = -1;
  int rc;
  su_pathf(rdir, sizeof rdir, "%s/restored", test_dir());
  rc = sl_chkdir_restore(cd, id, NULL, rdir, NULL, 0, &restored);
  ASSERT_MSG(rc == SL_CORRUPT, "restore gave %s (%s)", sl_errstr(rc), sl_errmsg(cd));
  ASSERT_MSG(su_contains(sl_errmsg(cd), why), "message \"%s\" does not name \"%s\"",
             sl_errmsg(cd), why);
  printf("refused: %s\n", sl_errmsg(cd));
  ASSERT(restored <= 0);
  ASSERT(!su_exists(su_db_path(p, sizeof p, rdir, "rel", 0)));
  ASSERT(!su_exists(su_pathf(p, sizeof p, "%s/rel/.restore", rdir)));
  /* the newest-that-verifies restore reports it too and finds nothing */
  rc = sl_chkdir_restore(cd, 0, NULL, rdir, NULL, 0, &restored);
  ASSERT_MSG(rc == SL_CORRUPT, "restore of the newest gave %s", sl_errstr(rc));
  r = su_take(&rep);
  ASSERT_MSG(su_contains(r, why), "the report \"%s\" does not name \"%s\"", r, why);
  free(r);
  sl_chkdir_close(cd);
}

static void expect_restores(int64_t id, int64_t want_rows) {
  sl_chkdir *cd = open_chk(0, NULL);
  char rdir[4096], p[4096];
  int64_t restored = 0;
  su_pathf(rdir, sizeof rdir, "%s/restored", test_dir());
  ASSERT_MSG(sl_chkdir_restore(cd, id, NULL, rdir, NULL, 0, &restored) == SL_OK, "control: %s",
             sl_errmsg(cd));
  ASSERT_EQ(restored, id);
  su_db_path(p, sizeof p, rdir, "rel", 0);
  ASSERT_EQ(su_count(p, "counts"), want_rows);
  ASSERT_EQ(rel_last_checkpoint(p), id);
  sl_chkdir_close(cd);
}

/* The hand-made checkpoint without anything hostile restores: the MANIFEST
** and compression made here are right, so the refusals below are real. */
TEST(quick_rel_handmade_checkpoint_restores) {
  char db[4096];
  make_state_file(db, sizeof db);
  make_checkpoint(1, db);
  expect_restores(1, 50);
}

TEST(quick_rel_snapshot_with_trigger_refused) {
  char db[4096], p[4096];
  make_state_file(db, sizeof db);
  su_pathf(p, sizeof p, "%s/pwned", test_dir());
  exec_sql(db, "CREATE TABLE sl_audit(kg INTEGER, x); "
               "CREATE TRIGGER evil AFTER INSERT ON counts BEGIN "
               "DELETE FROM counts; INSERT INTO sl_audit VALUES (0, 'fired'); END;");
  make_checkpoint(1, db);
  expect_refused(1, "trigger");
}

TEST(quick_rel_snapshot_with_view_refused) {
  char db[4096];
  make_state_file(db, sizeof db);
  exec_sql(db, "CREATE VIEW sl_peek AS SELECT k, n, load_extension('x') FROM counts");
  make_checkpoint(1, db);
  expect_refused(1, "view");
}

/* ------------------------------------------------------------------------ */
/* Decompression bombs                                                       */
/* ------------------------------------------------------------------------ */

/* A frame that claims 1 TiB and holds one RLE block. */
static void write_lying_frame(const char *path, uint64_t claim) {
  unsigned char f[4 + 1 + 8 + 3 + 1];
  size_t n = 0;
  uint32_t blk = 1u | (1u << 1) | ((uint32_t)131072 << 3); /* last, RLE, 128 KiB */
  f[n++] = 0x28; f[n++] = 0xB5; f[n++] = 0x2F; f[n++] = 0xFD;
  f[n++] = 0xC0 | 0x20; /* 8-byte content size, single segment, no checksum */
  for (int i = 0; i < 8; i++) f[n++] = (unsigned char)(claim >> (8 * i));
  f[n++] = (unsigned char)blk; f[n++] = (unsigned char)(blk >> 8); f[n++] = (unsigned char)(blk >> 16);
  f[n++] = 0;
  su_write_file(path, f, n);
}

typedef struct bomb_arg {
  int64_t id;
  uint64_t max_raw;
} bomb_arg;

/* In a child: the restore must fail with SL_CORRUPT. */
static int bomb_child(const bomb_arg *a) {
  sl_chkdir *cd = open_chk(a->max_raw, NULL);
  char rdir[4096];
  int64_t restored = 0;
  int rc;
  su_pathf(rdir, sizeof rdir, "%s/restored", test_dir());
  rc = sl_chkdir_restore(cd, a->id, NULL, rdir, NULL, 0, &restored);
  printf("bomb: %s: %s\n", sl_errstr(rc), sl_errmsg(cd));
  fflush(stdout);
  sl_chkdir_close(cd);
  return rc == SL_CORRUPT ? 0 : 1;
}

/* Runs bomb_child in a child process; returns its peak resident set in KiB. */
static long run_bomb(int64_t id, uint64_t max_raw) {
  bomb_arg a;
  struct rusage ru;
  int status = 0;
  pid_t pid;
  a.id = id;
  a.max_raw = max_raw;
  fflush(NULL);
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) _exit(bomb_child(&a));
  ASSERT(wait4(pid, &status, 0, &ru) == pid);
  ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the bomb was not refused (%d)",
             status);
  return ru.ru_maxrss;
}

TEST(quick_rel_decompression_bombs_refused) {
  char db[4096], snap[4096], out[512], rdir[4096];
  long kib;
  struct stat sb;
  make_state_file(db, sizeof db);
  /* 1: a frame declaring 1 TiB, MANIFEST agreeing: over the 64 GiB default */
  make_checkpoint(1, db);
  su_pathf(snap, sizeof snap, "%s/chk/chk-1/rel/0.db.zst", test_dir());
  write_lying_frame(snap, 1ull << 40);
  write_manifest(1, 1ull << 40);
  kib = run_bomb(1, 0);
  printf("1 TiB declared: child peak %ld KiB\n", kib);
  ASSERT_MSG(kib < 192 * 1024, "peak memory %ld KiB", kib);
  /* 2: 512 MiB of zeros really inside (about 16 KiB compressed), honestly
  ** declared, restored with a 16 MiB limit */
  make_checkpoint(2, db);
  su_pathf(snap, sizeof snap, "%s/chk/chk-2/rel/0.db.zst", test_dir());
  ASSERT_EQ(test_sh(out, sizeof out, "head -c 536870912 /dev/zero | zstd -q -1 "
                    "--stream-size=536870912 -f -o '%s' 2>&1", snap), 0);
  ASSERT(stat(snap, &sb) == 0 && sb.st_size < 1024 * 1024);
  write_manifest(2, 536870912ull);
  kib = run_bomb(2, 16u << 20);
  printf("512 MiB inside, 16 MiB limit: child peak %ld KiB\n", kib);
  ASSERT_MSG(kib < 192 * 1024, "peak memory %ld KiB", kib);
  /* 3: the same bomb under a MANIFEST claiming 8 MiB (within the limit):
  ** the frames contradict it */
  write_manifest(2, 8u << 20);
  kib = run_bomb(2, 16u << 20);
  ASSERT_MSG(kib < 192 * 1024, "peak memory %ld KiB", kib);
  /* 4: the frame header itself lies: it declares 8 MiB and holds 512 MiB;
  ** decompression must stop at the declared size */
  {
    size_t n = 0, pos;
    unsigned char *f = (unsigned char *)su_read_file(snap, &n);
    static const int did_len[4] = {0, 1, 2, 4};
    int fhd, ss, fcs_len;
    ASSERT(f != NULL && n > 16);
    fhd = f[4];
    ss = (fhd >> 5) & 1;
    fcs_len = (fhd >> 6) == 0 ? ss : (fhd >> 6) == 1 ? 2 : (fhd >> 6) == 2 ? 4 : 8;
    ASSERT_EQ(fcs_len, 4);
    pos = 5 + (ss ? 0 : 1) + (size_t)did_len[fhd & 3];
    for (int i = 0; i < 4; i++) f[pos + (size_t)i] = (unsigned char)((8u << 20) >> (8 * i));
    su_write_file(snap, f, n);
    free(f);
    write_manifest(2, 8u << 20);
    kib = run_bomb(2, 16u << 20);
    printf("8 MiB declared, 512 MiB inside: child peak %ld KiB\n", kib);
    ASSERT_MSG(kib < 192 * 1024, "peak memory %ld KiB", kib);
  }
  /* nothing was decompressed into the state directory */
  su_pathf(rdir, sizeof rdir, "%s/restored/rel/0.db", test_dir());
  ASSERT(!su_exists(rdir));
  /* the control: checkpoint 3 made the same way restores */
  make_checkpoint(3, db);
  expect_restores(3, 50);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

/* Every path under dir, one per line, sorted (malloc'd). */
static char *tree(const char *dir) {
  char out[65536];
  ASSERT_EQ(test_sh(out, sizeof out, "cd '%s' && find . | LC_ALL=C sort", dir), 0);
  return su_strdup(out);
}

static const char *bad_names[] = {
    "a'b", "a\"b", "a/b", "../evil", "..", ".", ".hidden", "a\\b", "a b", "",
    "x'; DROP TABLE sl_meta; --", "evil/../../evil", "a\nb", "\xc3\xa9t\xc3\xa9",
    "/tmp/evil",
};

TEST(quick_rel_hostile_names_refused) {
  char sandbox[4096], state[4096], chk[4096], *before, *after, parent[4096];
  char longname[200], nul[16];
  sl_store *st = NULL;
  sl_chkdir *cd;
  const char *target = NULL;
  int64_t restored = 0;
  su_pathf(sandbox, sizeof sandbox, "%s/box", test_dir());
  su_pathf(state, sizeof state, "%s/box/state/in", test_dir());
  su_pathf(chk, sizeof chk, "%s/box/chk", test_dir());
  memset(longname, 'a', 129);
  longname[129] = 0;
  /* a good store and checkpoint to compare the tree with */
  ASSERT(sl_store_open(state, "good", 0, 1, NULL, &st) == SL_OK);
  {
    sl_state *s = rel_counts(st);
    sl_state_desc d;
    sl_column k = su_col("k", SL_INTEGER), v = su_col("n", SL_INTEGER);
    sl_state *bad = NULL;
    sl_value one = sl_int(1);
    su_key_int(st, 1);
    ASSERT_OK(sl_value_update(s, &one), st);
    su_commit(st);
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
      memset(&d, 0, sizeof d);
      d.name = bad_names[i];
      d.kind = SL_VALUE_STATE;
      d.n_key = 1;
      d.key = &k;
      d.n_value = 1;
      d.value = &v;
      ASSERT_MSG(sl_state_register(st, &d, &bad) == SL_MISUSE, "state name \"%s\" accepted",
                 bad_names[i]);
      ASSERT_MSG(strlen(sl_errmsg(st)) > 10 && strcmp(sl_errmsg(st), "not an error") != 0,
                 "no message for state name \"%s\"", bad_names[i]);
      /* column names are checked the same way */
      d.name = "ok_state";
      v.name = bad_names[i];
      ASSERT_MSG(sl_state_register(st, &d, &bad) == SL_MISUSE, "column name \"%s\" accepted",
                 bad_names[i]);
      v.name = "n";
    }
    d.name = "sl_meta";
    ASSERT(sl_state_register(st, &d, &bad) == SL_MISUSE);
    d.name = longname;
    ASSERT(sl_state_register(st, &d, &bad) == SL_MISUSE);
    /* the file still has exactly its table and its row */
    ASSERT_OK(sl_state_find(st, "counts", &bad), st);
    su_close(st);
  }
  cd = NULL;
  ASSERT(sl_chkdir_open(chk, NULL, &cd) == SL_OK);
  before = tree(sandbox);
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    const char *nm = bad_names[i];
    int rc;
    st = NULL;
    rc = sl_store_open(state, nm, 0, 1, NULL, &st);
    ASSERT_MSG(rc == SL_MISUSE, "operator \"%s\": %s", nm, sl_errstr(rc));
    ASSERT_MSG(st == NULL || su_contains(sl_errmsg(st), "operator"),
               "operator \"%s\": message \"%s\"", nm, st ? sl_errmsg(st) : "");
    sl_store_close(st);
    if (nm[0]) {
      rc = sl_chkdir_target(cd, 7, nm, &target);
      ASSERT_MSG(rc == SL_MISUSE, "savepoint \"%s\": %s", nm, sl_errstr(rc));
      ASSERT_MSG(strcmp(sl_errmsg(cd), "not an error") != 0, "savepoint \"%s\": no message", nm);
      rc = sl_chkdir_restore(cd, 0, nm, state, NULL, 0, &restored);
      ASSERT_MSG(rc == SL_MISUSE || rc == SL_NOTFOUND, "restore of savepoint \"%s\": %s", nm,
                 sl_errstr(rc));
      rc = sl_chkdir_discard(cd, 0, nm);
      ASSERT_MSG(rc != SL_OK, "discard of savepoint \"%s\" succeeded", nm);
    }
  }
  /* the longest names */
  ASSERT(sl_store_open(state, longname, 0, 1, NULL, &st) == SL_MISUSE);
  sl_store_close(st);
  ASSERT(sl_chkdir_target(cd, 7, longname, &target) == SL_MISUSE);
  /* a NUL byte ends a C string: "ok\0/../../evil" is the name "ok", and it
  ** stays inside the state directory */
  memcpy(nul, "ok\0/../../evil", 15);
  ASSERT(sl_store_open(state, nul, 0, 1, NULL, &st) == SL_OK);
  ASSERT_STR(sl_store_path(st), su_pathf(longname, sizeof longname, "%s/ok/0.db", state));
  su_close(st);
  sl_chkdir_close(cd);
  after = tree(sandbox);
  /* nothing but ./state/in/ok and its file is new, and nothing outside */
  {
    su_buf want = {0, 0, 0};
    char *w, *line, *save = NULL, *b2 = su_strdup(before);
    su_addf(&want, "%s", "");
    for (line = strtok_r(b2, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
      su_addf(&want, "%s\n", line);
    free(b2);
    w = su_take(&want);
    for (line = strtok_r(after, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      char l2[4200];
      snprintf(l2, sizeof l2, "%s\n", line);
      ASSERT_MSG(strstr(w, l2) || strncmp(line, "./state/in/ok", 13) == 0,
                 "unexpected new path %s", line);
    }
    free(w);
  }
  ASSERT(!su_exists(su_pathf(parent, sizeof parent, "%s/evil", test_dir())));
  ASSERT(!su_exists(su_pathf(parent, sizeof parent, "%s/../evil", test_dir())));
  ASSERT(!su_exists(su_pathf(parent, sizeof parent, "%s/box/evil", test_dir())));
  ASSERT(!su_exists(su_pathf(parent, sizeof parent, "%s/box/state/evil", test_dir())));
  free(before);
  free(after);
}

/* An SDK job refuses hostile stage names before it touches a directory. */
TEST(quick_rel_hostile_job_names_refused) {
  char state[4096], chk[4096], p[4096];
  sl_generator_config gen;
  sl_source src;
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    sl_job_config cfg;
    sl_job *job = NULL;
    int stage = -1, rc;
    su_pathf(state, sizeof state, "%s/state", test_dir());
    su_pathf(chk, sizeof chk, "%s/chk", test_dir());
    sl_job_config_init(&cfg);
    cfg.state_dir = state;
    cfg.checkpoint_dir = chk;
    memset(&gen, 0, sizeof gen);
    gen.count = 10;
    gen.keys = 2;
    sl_generator_source(&src, &gen);
    ASSERT(sl_job_new(&cfg, &job) == SL_OK);
    rc = sl_job_source(job, bad_names[i], &src, 1, &stage);
    ASSERT_MSG(rc == SL_MISUSE, "source name \"%s\": %s", bad_names[i], sl_errstr(rc));
    ASSERT_MSG(strcmp(sl_errmsg(job), "not an error") != 0, "no message for \"%s\"",
               bad_names[i]);
    sl_job_free(job);
  }
  ASSERT(!su_exists(su_pathf(p, sizeof p, "%s/evil", test_dir())));
  ASSERT(!su_exists(su_pathf(p, sizeof p, "%s/../evil", test_dir())));
}
