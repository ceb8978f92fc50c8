/*
** test_samples.c — runs every program of samples/ (built by make into
** $SL_BIN_DIR/samples/) and checks what it really outputs: the lines it
** prints, the files its exactly-once sink publishes, and the rows its state
** files hold. The kill tests stop a sample with SIGKILL at random moments,
** start it again with the same arguments until it exits 0, and compare the
** result with that of an uninterrupted run. The last test runs the demo of
** `make run` (samples/demo.sh).
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sdk_util.h"

/* ---- common code --------------------------------------------------------------- */

static const char *const smp_names[] = {"count_window_average", "counter_source", "dedup",
                                        "fraud_pattern", "online_regression", "sensor_windows",
                                        "sessions", "wordcount"};

static const char *smp_bin(const char *name) {
  static char buf[4][PATH_MAX];
  static unsigned next;
  char *b = buf[next++ % 4];
  char rel[256];
  snprintf(rel, sizeof rel, "samples/%s", name);
  snprintf(b, PATH_MAX, "%s", test_bin(rel));
  ASSERT_MSG(access(b, X_OK) == 0, "%s is not built (make builds it)", b);
  return b;
}

/* The top of the source tree: the first directory above the build
** directory that holds samples/data/logins.tsv. */
static const char *smp_root(void) {
  static char root[PATH_MAX];
  char probe[PATH_MAX + 64];
  char *slash;
  snprintf(root, sizeof root, "%s", test_bin("x"));
  for (;;) {
    slash = strrchr(root, '/');
    ASSERT_MSG(slash != NULL, "cannot find the source tree above %s", test_bin("x"));
    *slash = 0;
    snprintf(probe, sizeof probe, "%s/samples/data/logins.tsv", root[0] ? root : "");
    if (access(probe, R_OK) == 0) return root;
  }
}

static int64_t smp_now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Starts argv[0] with stdout and stderr appended to `log`. */
static pid_t smp_spawn(const char *const *argv, const char *log) {
  pid_t pid;
  fflush(NULL);
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd < 0) _exit(126);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* Exit status as the shell reports it: 128 + signal for a killed process. */
static int smp_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int smp_run(const char *const *argv, const char *log) {
  int status = 0;
  pid_t pid = smp_spawn(argv, log);
  ASSERT(waitpid(pid, &status, 0) == pid);
  return smp_status(status);
}

/* The id of the newest complete checkpoint (one with a MANIFEST) in dir,
** 0 when there is none. */
static int64_t smp_newest_checkpoint(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int64_t best = 0;
  if (!d) return 0;
  while ((e = readdir(d)) != NULL) {
    long long id;
    char path[PATH_MAX];
    if (sscanf(e->d_name, "chk-%lld", &id) != 1 || id <= best) continue;
    snprintf(path, sizeof path, "%s/%s/MANIFEST", dir, e->d_name);
    if (access(path, F_OK) == 0) best = id;
  }
  closedir(d);
  return best;
}

/* Runs argv `kills` times and kills each run with SIGKILL, then runs it once
** more to the end, which must exit 0. Three kills in four come at a random
** moment up to hi_ms after the run completed a checkpoint of its own (seen
** in the checkpoint directory chkdir), so that every restart has progress
** to restore; every fourth comes at a random moment up to hi_ms after the
** start, which may be in the middle of the restore. A run that ends by
** itself ends the loop. Returns the number of kills. */
static int smp_kill_loop(const char *const *argv, const char *log, const char *chkdir, uint64_t seed,
                         int kills_wanted, int64_t hi_ms) {
  int kills = 0;
  printf("kill loop seed %llu, %d kills, up to %lld ms after a checkpoint\n", (unsigned long long)seed,
         kills_wanted, (long long)hi_ms);
  while (kills < kills_wanted) {
    int status = 0, early = kills % 4 == 3;
    int64_t before = smp_newest_checkpoint(chkdir), delay, end;
    pid_t pid = smp_spawn(argv, log), got = 0;
    /* until it has a checkpoint of its own (not for the early kills) */
    while (!early && smp_newest_checkpoint(chkdir) <= before && (got = waitpid(pid, &status, WNOHANG)) == 0)
      sdk_sleep_ms(1);
    delay = (int64_t)(sdk_rand(&seed) % (uint64_t)(hi_ms + 1));
    end = smp_now_ms() + delay;
    while (got == 0 && smp_now_ms() < end && (got = waitpid(pid, &status, WNOHANG)) == 0) sdk_sleep_ms(1);
    if (got == 0) {
      kill(pid, SIGKILL);
      ASSERT(waitpid(pid, &status, 0) == pid);
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        kills++;
        continue;
      }
    }
    /* it ended by itself */
    ASSERT_MSG(smp_status(status) == 0, "%s ended with status %d (seed %llu; see %s)", argv[0],
               smp_status(status), (unsigned long long)seed, log);
    tt_count("cycles", kills);
    return kills;
  }
  ASSERT_MSG(smp_run(argv, log) == 0, "%s failed after %d kills (seed %llu; see %s)", argv[0], kills,
             (unsigned long long)seed, log);
  tt_count("cycles", kills);
  return kills;
}

/* One integer from a query on a database file (-1 when the query gives no row). */
static int64_t smp_query(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  int64_t v = -1;
  ASSERT_MSG(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "cannot open %s", path);
  ASSERT_MSG(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
  if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return v;
}

static void smp_write(const char *path, const char *text, size_t n) {
  FILE *f = fopen(path, "wb");
  ASSERT(f);
  ASSERT(fwrite(text, 1, n, f) == n);
  ASSERT(fclose(f) == 0);
}

static int smp_lines(const char *text) {
  int n = 0;
  for (; *text; text++) n += *text == '\n';
  return n;
}

/* Asserts that the sorted lines of two texts are equal. */
static void smp_same_sorted(const char *got, const char *want, const char *what) {
  char *a = sdk_sorted(got), *b = sdk_sorted(want);
  ASSERT_MSG(strcmp(a, b) == 0, "%s: the lines differ (%zu and %zu bytes, %d and %d lines)", what,
             strlen(a), strlen(b), smp_lines(a), smp_lines(b));
  free(a);
  free(b);
}

/* ---- every sample: --help and bad options ------------------------------------ */

TEST(quick_samples_help) {
  char out[8192], want[64];
  for (size_t i = 0; i < sizeof smp_names / sizeof smp_names[0]; i++) {
    const char *bin = smp_bin(smp_names[i]);
    ASSERT_EQ(test_sh(out, sizeof out, "'%s' --help", bin), 0);
    snprintf(want, sizeof want, "usage: %s", smp_names[i]);
    ASSERT_MSG(strncmp(out, want, strlen(want)) == 0, "%s --help says: %s", smp_names[i], out);
    ASSERT_EQ(test_sh(out, sizeof out, "'%s' --no-such-option 2>&1", bin), 2);
    ASSERT_MSG(strstr(out, "usage:") != NULL, "%s: no usage after a bad option", smp_names[i]);
  }
  /* wordcount's arguments are required */
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --input x --output y 2>&1", smp_bin("wordcount")), 2);
  ASSERT(strstr(out, "--dir") != NULL);
}

/* ---- count_window_average ------------------------------------------------------ */

TEST(quick_sample_count_window_average) {
  const char *bin = smp_bin("count_window_average");
  char out[4096], *file, *again;
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir cwa 2>/dev/null", bin), 0);
  ASSERT_STR(out, "(1,4)\n(1,5)\n");
  file = sdk_read("cwa/output.txt");
  ASSERT_STR(file, "1\t4\n1\t5\n");
  /* the last value (1,2) waits in state for its partner */
  ASSERT_EQ(smp_query("cwa/state/average/0.db", "SELECT count(*) FROM sum"), 1);
  ASSERT_EQ(smp_query("cwa/state/average/0.db", "SELECT count FROM sum WHERE key = 1"), 1);
  ASSERT_EQ(smp_query("cwa/state/average/0.db", "SELECT total FROM sum WHERE key = 1"), 2);
  /* the same directory again: restored at the end of the input, no new output */
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir cwa 2>/dev/null", bin), 0);
  ASSERT_STR(out, "(1,4)\n(1,5)\n");
  again = sdk_read("cwa/output.txt");
  ASSERT_STR(again, file);
  free(file);
  free(again);
  /* pairs from the command line, two keys */
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir cwa2 2,1 2,3 5,10 5,20 2,9 7,7 2>/dev/null", bin), 0);
  ASSERT_STR(out, "(2,2)\n(5,15)\n");
  ASSERT_EQ(smp_query("cwa2/state/average/0.db", "SELECT count(*) FROM sum"), 2);
}

/* ---- wordcount ------------------------------------------------------------------ */

static int smp_is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* What wordcount must write for `text`: for each word in order, word<TAB>k,
** k its count so far. Sets *distinct. (A list of words with counts; fine for
** the sizes used here.) */
static char *smp_wordcount_expect(const char *text, size_t n, int *distinct) {
  size_t cap = n * 2 + 64, len = 0, nw = 0, capw = 1024;
  char *out = malloc(cap);
  struct w {
    const char *p;
    size_t n;
    int64_t count;
  } *words = malloc(sizeof *words * capw);
  ASSERT(out && words);
  for (size_t i = 0; i < n;) {
    size_t s, j;
    int64_t c = 0;
    while (i < n && smp_is_space((unsigned char)text[i])) i++;
    s = i;
    while (i < n && !smp_is_space((unsigned char)text[i])) i++;
    if (i == s) break;
    for (j = 0; j < nw; j++)
      if (words[j].n == i - s && memcmp(words[j].p, text + s, i - s) == 0) break;
    if (j == nw) {
      if (nw == capw) {
        capw *= 2;
        words = realloc(words, sizeof *words * capw);
        ASSERT(words);
      }
      words[nw].p = text + s;
      words[nw].n = i - s;
      words[nw].count = 0;
      nw++;
    }
    c = ++words[j].count;
    if (len + (i - s) + 32 > cap) {
      cap = cap * 2 + (i - s) + 32;
      out = realloc(out, cap);
      ASSERT(out);
    }
    memcpy(out + len, text + s, i - s);
    len += i - s;
    len += (size_t)snprintf(out + len, cap - len, "\t%lld\n", (long long)c);
  }
  out[len] = 0;
  *distinct = (int)nw;
  free(words);
  return out;
}

/* A text with separators of every kind, UTF-8, an empty line, a word of
** 100000 bytes and no newline at the end. */
static char *smp_tricky_text(size_t *n) {
  const char *head = "to be or not to be\n\tthat is\tthe question  \r\n\nna\xc3\xafve caf\xc3\xa9 "
                     "na\xc3\xafve \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac \xe6\x9d\xb1\xe4\xba\xac\v"
                     "\xe6\x9d\xb1\xe4\xba\xac\f x\n";
  size_t h = strlen(head), big = 100000, len = 0;
  char *t = malloc(h + 2 * big + 16);
  ASSERT(t);
  memcpy(t, head, h);
  len = h;
  memset(t + len, 'w', big);
  len += big;
  t[len++] = ' ';
  memset(t + len, 'w', big);
  len += big;
  memcpy(t + len, "\nto", 3);
  len += 3;
  *n = len;
  return t;
}

TEST(quick_sample_wordcount) {
  const char *bin = smp_bin("wordcount");
  size_t n;
  char *text = smp_tricky_text(&n), *want, *got;
  int distinct = 0;
  smp_write("in.txt", text, n);
  want = smp_wordcount_expect(text, n, &distinct);
  ASSERT_EQ(test_sh(NULL, 0, "'%s' --input in.txt --output out.txt --dir wc", bin), 0);
  got = sdk_read("out.txt");
  /* one counting instance: the order is the input's */
  ASSERT_MSG(strcmp(got, want) == 0, "wordcount's output differs from the expected lines");
  ASSERT(strstr(got, "to\t3\n") != NULL);
  ASSERT(strstr(got, "\xe6\x9d\xb1\xe4\xba\xac\t3\n") != NULL);
  ASSERT(strstr(got, "\t2\n") != NULL);
  /* the counts are keyed value state in the one instance's state file */
  ASSERT_EQ(smp_query("wc/state/count/0.db", "SELECT count(*) FROM counts"), distinct);
  ASSERT_EQ(smp_query("wc/state/count/0.db", "SELECT count FROM counts WHERE word = 'to'"), 3);
  ASSERT_EQ(smp_query("wc/state/count/0.db", "SELECT max(length(word)) FROM counts"), 100000);
  /* the sink is one instance */
  ASSERT_EQ(access("wc/state/sink/0.db", F_OK), 0);
  ASSERT(access("wc/state/sink/1.db", F_OK) != 0);
  free(got);
  free(want);
  free(text);
}

/* Words over a vocabulary of skewed frequencies, some with UTF-8. */
static char *smp_words_text(int lines, int per_line, uint64_t seed, size_t *n) {
  size_t cap = (size_t)lines * (size_t)per_line * 16 + 16, len = 0;
  char *t = malloc(cap);
  ASSERT(t);
  for (int l = 0; l < lines; l++) {
    for (int w = 0; w < per_line; w++) {
      uint64_t r = sdk_rand(&seed);
      unsigned v = (unsigned)((r % 2000) * ((r >> 20) % 2000) / 2000);
      len += (size_t)snprintf(t + len, cap - len, "%sw%u%s", w ? " " : "", v, v % 7 == 0 ? "\xc3\xbc" : "");
    }
    t[len++] = '\n';
  }
  t[len] = 0;
  *n = len;
  return t;
}

TEST(sample_wordcount_parallel) {
  const char *bin = smp_bin("wordcount");
  size_t n;
  char *text = smp_words_text(500, 10, 42, &n), *want, *got;
  int distinct = 0;
  int64_t rows = 0, total = 0;
  smp_write("in.txt", text, n);
  want = smp_wordcount_expect(text, n, &distinct);
  ASSERT_EQ(test_sh(NULL, 0, "'%s' --input in.txt --output out.txt --dir wc --parallelism 3 --interval-ms 20",
                    bin), 0);
  got = sdk_read("out.txt");
  smp_same_sorted(got, want, "wordcount --parallelism 3");
  /* three counting instances, each with its share of the words */
  for (int i = 0; i < 3; i++) {
    char path[64];
    int64_t r;
    snprintf(path, sizeof path, "wc/state/count/%d.db", i);
    r = smp_query(path, "SELECT count(*) FROM counts");
    ASSERT_MSG(r > 0, "instance %d counts no word", i);
    rows += r;
    total += smp_query(path, "SELECT sum(count) FROM counts");
  }
  ASSERT(access("wc/state/count/3.db", F_OK) != 0);
  ASSERT_EQ(rows, distinct);
  ASSERT_EQ(total, 5000);
  free(got);
  free(want);
  free(text);
}

TEST(sample_wordcount_across_kills) {
  const char *bin = smp_bin("wordcount");
  const char *ref_argv[] = {bin, "--input", "in.txt", "--output", "ref.txt", "--dir", "ref",
                            "--interval-ms", "25", "--parallelism", "2", NULL};
  const char *argv[] = {bin, "--input", "in.txt", "--output", "out.txt", "--dir", "killed",
                        "--interval-ms", "25", "--parallelism", "2", NULL};
  size_t n;
  char *text = smp_words_text(test_long() ? 30000 : 12000, 12, 7, &n), *want, *ref, *got;
  int distinct = 0, kills;
  int64_t t0, took;
  smp_write("in.txt", text, n);
  want = smp_wordcount_expect(text, n, &distinct);
  t0 = smp_now_ms();
  ASSERT_EQ(smp_run(ref_argv, "ref.log"), 0);
  took = smp_now_ms() - t0;
  ref = sdk_read("ref.txt");
  smp_same_sorted(ref, want, "uninterrupted wordcount");
  /* kill it 4 times (long mode: 20), each time up to an eighth (long mode:
  ** a fortieth) of an uninterrupted run's time after a checkpoint, then
  ** let it finish */
  kills = smp_kill_loop(argv, "killed.log", "killed/checkpoints", (uint64_t)time(NULL), test_long() ? 20 : 4,
                        test_long() ? took / 40 : took / 8);
  printf("an uninterrupted run took %lld ms; %d kills\n", (long long)took, kills);
  ASSERT(kills >= (test_long() ? 10 : 3));
  got = sdk_read("out.txt");
  smp_same_sorted(got, ref, "wordcount killed and restarted vs uninterrupted");
  {
    char *log = sdk_read("killed.log");
    ASSERT_MSG(strstr(log, "restored from checkpoint") != NULL, "no restart restored a checkpoint");
    free(log);
  }
  free(got);
  free(ref);
  free(want);
  free(text);
}

/* ---- sensor_windows ----------------------------------------------------------------- */

/* The table of the last summary in a run's output: from its header line
** "device ..." to the line before "N one-minute windows in DIR/...". */
static char *smp_summary(const char *out) {
  const char *p = NULL, *q = out, *end;
  char *s;
  while ((q = strstr(q, "device ")) != NULL) p = q++;
  ASSERT_MSG(p != NULL, "no summary in: %s", out);
  end = strstr(p, " one-minute windows in ");
  ASSERT_MSG(end != NULL, "no window count after the summary: %s", p);
  while (end > p && end[-1] != '\n') end--;
  s = malloc((size_t)(end - p) + 1);
  ASSERT(s);
  memcpy(s, p, (size_t)(end - p));
  s[end - p] = 0;
  return s;
}

TEST(quick_sample_sensor_windows) {
  const char *bin = smp_bin("sensor_windows");
  static char out1[16384], out3[16384];
  char *w1, *w3, *s1, *s3, *p;
  long long readings = 0, late = 0, sum_readings = 0, sum_late = 0;
  char dev[32];
  ASSERT_EQ(test_sh(out1, sizeof out1, "'%s' --dir p1 --devices 3 --minutes 5 --parallelism 1", bin), 0);
  ASSERT_EQ(test_sh(out3, sizeof out3, "'%s' --dir p3 --devices 3 --minutes 5 --parallelism 3", bin), 0);
  w1 = sdk_read("p1/windows.tsv");
  w3 = sdk_read("p3/windows.tsv");
  /* one window per device and minute, whatever the parallelism */
  ASSERT_EQ(smp_lines(w1), 15);
  smp_same_sorted(w1, w3, "windows of parallelism 1 and 3");
  ASSERT(strstr(w1, "sensor-1\t00:00\t") != NULL);
  ASSERT(strstr(w1, "sensor-3\t00:04\t") != NULL);
  /* the totals come from the state files and agree, too */
  s1 = smp_summary(out1);
  s3 = smp_summary(out3);
  ASSERT(strstr(out1, "\n15 one-minute windows in p1/windows.tsv") != NULL);
  ASSERT_STR(s1, s3);
  ASSERT_EQ(smp_lines(s1), 4); /* the header and three devices */
  /* every reading is either in a window or counted late */
  for (p = strchr(s1, '\n') + 1; sscanf(p, "%31s %lld %*s %*s %*s %lld", dev, &readings, &late) == 3;
       p = strchr(p, '\n') + 1) {
    sum_readings += readings;
    sum_late += late;
  }
  ASSERT_EQ(sum_readings + sum_late, 3 * 60 * 5);
  ASSERT(sum_late > 0);
  {
    /* and the windows hold exactly the readings that were not late */
    long long in_windows = 0, k;
    for (p = w1; *p; p = strchr(p, '\n') + 1) {
      ASSERT(sscanf(p, "%*s %*s %lld", &k) == 1);
      in_windows += k;
    }
    ASSERT_EQ(in_windows, sum_readings);
  }
  ASSERT_EQ(smp_query("p3/state/windows/0.db", "SELECT count(*) FROM open_windows"), 0);
  ASSERT_EQ(smp_query("p3/state/windows/0.db", "SELECT count(*) FROM sl_timers"), 0);
  free(s1);
  free(s3);
  free(w1);
  free(w3);
}

TEST(sample_sensor_windows_across_kills) {
  const char *bin = smp_bin("sensor_windows");
  const char *ref_argv[] = {bin, "--dir", "ref", "--minutes", "30", NULL};
  const char *argv[] = {bin, "--dir", "killed", "--minutes", "30", "--pace-ms", "8",
                        "--interval-ms", "50", NULL};
  char *a, *b, *la, *lb, *sa, *sb;
  int kills;
  ASSERT_EQ(smp_run(ref_argv, "ref.log"), 0);
  /* 360 batches at 8 ms: about 3 s of work */
  kills = smp_kill_loop(argv, "killed.log", "killed/checkpoints", (uint64_t)time(NULL) ^ 0x5e5, 4, 300);
  ASSERT(kills >= 3);
  a = sdk_read("killed/windows.tsv");
  b = sdk_read("ref/windows.tsv");
  ASSERT_EQ(smp_lines(b), 120);
  smp_same_sorted(a, b, "windows after kills vs uninterrupted");
  la = sdk_read("killed.log");
  lb = sdk_read("ref.log");
  ASSERT(strstr(la, "restored from checkpoint") != NULL);
  sa = smp_summary(la); /* of the last run, the one that finished */
  sb = smp_summary(lb);
  ASSERT_STR(sa, sb);
  free(a);
  free(b);
  free(la);
  free(lb);
  free(sa);
  free(sb);
}

/* ---- dedup ---------------------------------------------------------------------------- */

static char *smp_dedup_expect(int64_t n, int64_t window_min) {
  size_t cap = (size_t)n * 80 + 64, len = 0;
  char *s = malloc(cap);
  ASSERT(s);
  s[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t ts = i * 1000, amount = 100 + (i * 7919) % 90000;
    len += (size_t)snprintf(s + len, cap - len, "order-%lld\t%02lld:%02lld:%02lld\t%lld\n", (long long)i,
                            (long long)(ts / 3600000), (long long)(ts / 60000 % 60),
                            (long long)(ts / 1000 % 60), (long long)amount);
    if (i % 50 == 7 && 20 >= window_min) { /* sent again 20 minutes later: kept */
      ts += 20 * 60000;
      len += (size_t)snprintf(s + len, cap - len, "order-%lld\t%02lld:%02lld:%02lld\t%lld\n", (long long)i,
                              (long long)(ts / 3600000), (long long)(ts / 60000 % 60),
                              (long long)(ts / 1000 % 60), (long long)amount);
    }
  }
  return s;
}

TEST(quick_sample_dedup) {
  const char *bin = smp_bin("dedup");
  char out[4096], *got, *want;
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir d10 --events 2000", bin), 0);
  /* 2000 orders + 200 retries after 30 s + 40 resends after 20 min */
  ASSERT_MSG(strstr(out, "2240 events read, 2040 kept, 200 dropped") != NULL, "%s", out);
  got = sdk_read("d10/unique.tsv");
  want = smp_dedup_expect(2000, 10);
  smp_same_sorted(got, want, "dedup --minutes 10");
  free(got);
  free(want);
  /* the timers forgot every id once its window was over */
  ASSERT_EQ(smp_query("d10/state/dedup/0.db", "SELECT count(*) FROM seen"), 0);
  ASSERT_EQ(smp_query("d10/state/dedup/1.db", "SELECT count(*) FROM seen"), 0);
  /* with a window of 30 minutes the resends are duplicates too */
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir d30 --events 2000 --minutes 30", bin), 0);
  ASSERT_MSG(strstr(out, "2240 events read, 2000 kept, 240 dropped") != NULL, "%s", out);
  got = sdk_read("d30/unique.tsv");
  want = smp_dedup_expect(2000, 30);
  smp_same_sorted(got, want, "dedup --minutes 30");
  free(got);
  free(want);
}

/* ---- sessions ---------------------------------------------------------------------- */

TEST(quick_sample_sessions) {
  const char *bin = smp_bin("sessions");
  char out[4096], *got, *p, user[32];
  long long clicks = 0, n;
  int per_user[51] = {0}, u;
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir s5", bin), 0);
  ASSERT_MSG(strstr(out, ": 1000 sessions (the generator made 1000 visits") != NULL, "%s", out);
  ASSERT(strstr(out, "every visit is one session") != NULL);
  got = sdk_read("s5/sessions.tsv");
  ASSERT_EQ(smp_lines(got), 1000);
  for (p = got; *p; p = strchr(p, '\n') + 1) {
    double minutes;
    char start[32], path[2048];
    ASSERT(sscanf(p, "%31s %31s %lf %lld %2047s", user, start, &minutes, &n, path) == 5);
    ASSERT(sscanf(user, "user-%d", &u) == 1 && u >= 1 && u <= 50);
    per_user[u]++;
    ASSERT(n >= 1 && n <= 6);
    ASSERT(minutes >= 0 && minutes < 5 * 2);
    ASSERT(strncmp(path, "home", 4) == 0); /* every visit starts at home */
    clicks += n;
  }
  for (u = 1; u <= 50; u++) ASSERT_EQ(per_user[u], 20);
  {
    long long total;
    const char *q = strstr(out, "sessions (the generator made 1000 visits, ");
    ASSERT(q && sscanf(q, "sessions (the generator made 1000 visits, %lld clicks", &total) == 1);
    ASSERT_EQ(clicks, total);
  }
  /* every session was closed by its timer: nothing left in state */
  ASSERT_EQ(smp_query("s5/state/sessions/0.db", "SELECT count(*) FROM clicks"), 0);
  ASSERT_EQ(smp_query("s5/state/sessions/1.db", "SELECT count(*) FROM session"), 0);
  ASSERT_EQ(smp_query("s5/state/sessions/1.db", "SELECT count(*) FROM sl_timers"), 0);
  free(got);
  /* a gap longer than the time between some visits merges them */
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir s45 --gap-minutes 45", bin), 0);
  ASSERT_MSG(strstr(out, "the sessions differ from the visits") != NULL, "%s", out);
  got = sdk_read("s45/sessions.tsv");
  ASSERT(smp_lines(got) < 1000 && smp_lines(got) > 50);
  free(got);
}

/* ---- fraud_pattern ------------------------------------------------------------------- */

TEST(quick_sample_fraud_pattern) {
  const char *bin = smp_bin("fraud_pattern");
  const char *root = smp_root();
  char out[4096], *got;
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir f --input '%s/samples/data/logins.tsv'", bin, root), 0);
  got = sdk_read("f/alerts.tsv");
  smp_same_sorted(got,
                  "alice\t09:01:30\t3\t09:00:05\n"
                  "mallory\t09:03:40\t5\t09:03:20\n"
                  "dave\t09:07:05\t4\t09:03:15\n"
                  "mallory\t09:34:30\t3\t09:30:00\n",
                  "alerts");
  ASSERT_MSG(strstr(out, "4 alerts") != NULL, "%s", out);
  /* printed in time order */
  ASSERT(strstr(out, "alice") < strstr(out, "dave") && strstr(out, "dave") < strstr(out, "mallory    09:34:30"));
  /* every account ended with a success: no failures left in state */
  ASSERT_EQ(smp_query("f/state/detect/0.db", "SELECT count(*) FROM failures") +
                smp_query("f/state/detect/1.db", "SELECT count(*) FROM failures"), 0);
  free(got);
  /* two failures suffice: bob too */
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir f2 --failures 2 --input '%s/samples/data/logins.tsv'", bin,
                    root), 0);
  ASSERT_MSG(strstr(out, "5 alerts") != NULL, "%s", out);
  ASSERT(strstr(out, "bob        09:01:50          2  09:00:12") != NULL);
  /* a missing input is an error that says so */
  ASSERT(test_sh(out, sizeof out, "'%s' --dir f3 --input no-such-file 2>&1", bin) == 1);
  ASSERT(strstr(out, "no-such-file") != NULL);
}

/* ---- online_regression ---------------------------------------------------------------- */

TEST(quick_sample_online_regression) {
  const char *bin = smp_bin("online_regression");
  char out[4096], *got, *p;
  int rows = 0;
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir r", bin), 0);
  /* the learned parameters, read back from state, near the true ones */
  p = strstr(out, "line-1 ");
  ASSERT_MSG(p != NULL, "%s", out);
  for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    int k;
    long long n;
    double a, ta, b, tb;
    if (sscanf(p, "line-%d %lld %lf %lf %lf %lf", &k, &n, &a, &ta, &b, &tb) != 6) break;
    ASSERT_EQ(n, 5000);
    ASSERT_MSG(a > ta - 0.02 && a < ta + 0.02, "line-%d: slope %f, true %f", k, a, ta);
    ASSERT_MSG(b > tb - 0.6 && b < tb + 0.6, "line-%d: intercept %f, true %f", k, b, tb);
    rows++;
  }
  ASSERT_EQ(rows, 4);
  got = sdk_read("r/model.tsv");
  ASSERT_EQ(smp_lines(got), 4 * 5); /* every 1000 samples of each key */
  ASSERT(strstr(got, "line-3\t5000\t") != NULL);
  free(got);
  ASSERT_EQ(smp_query("r/state/fit/0.db", "SELECT count(*) FROM model") +
                smp_query("r/state/fit/1.db", "SELECT count(*) FROM model"), 4);
  ASSERT_EQ(smp_query("r/state/fit/0.db", "SELECT min(n) FROM model"), 5000);
}

TEST(sample_online_regression_across_kills) {
  const char *bin = smp_bin("online_regression");
  const char *ref_argv[] = {bin, "--dir", "ref", NULL};
  const char *argv[] = {bin, "--dir", "killed", "--pace-ms", "10", "--interval-ms", "40", NULL};
  char *a, *b, *la, *lb, *ta, *tb, *p;
  int kills;
  ASSERT_EQ(smp_run(ref_argv, "ref.log"), 0);
  /* 200 batches at 10 ms: about 2 s of work */
  kills = smp_kill_loop(argv, "killed.log", "killed/checkpoints", (uint64_t)time(NULL) ^ 0x0e, 4, 250);
  ASSERT(kills >= 3);
  a = sdk_read("killed/model.tsv");
  b = sdk_read("ref/model.tsv");
  smp_same_sorted(a, b, "model updates after kills vs uninterrupted");
  /* the final model, to the last printed digit, as the uninterrupted one */
  la = sdk_read("killed.log");
  lb = sdk_read("ref.log");
  ASSERT(strstr(la, "restored from checkpoint") != NULL);
  ta = NULL;
  for (p = la; (p = strstr(p, "key      samples")) != NULL; p++) ta = p;
  tb = strstr(lb, "key      samples");
  ASSERT(ta && tb);
  ASSERT_STR(ta, tb);
  free(a);
  free(b);
  free(la);
  free(lb);
}

/* ---- counter_source ---------------------------------------------------------------- */

static void smp_check_numbers(const char *path, int par, int64_t count) {
  char *text = sdk_read(path), *want;
  size_t cap = (size_t)par * (size_t)count * 24 + 16, len = 0;
  want = malloc(cap);
  ASSERT(want);
  want[0] = 0;
  for (int i = 0; i < par; i++)
    for (int64_t k = 0; k < count; k++)
      len += (size_t)snprintf(want + len, cap - len, "%d\t%lld\n", i, (long long)k);
  smp_same_sorted(text, want, "the counters' numbers");
  free(text);
  free(want);
}

TEST(quick_sample_counter_source) {
  const char *bin = smp_bin("counter_source");
  char out[4096];
  ASSERT_EQ(test_sh(out, sizeof out, "'%s' --dir c --count 3000 --parallelism 3", bin), 0);
  ASSERT_MSG(strstr(out, "9000 numbers from 3 instances") != NULL && strstr(out, "0 missing, 0 repeated"),
             "%s", out);
  smp_check_numbers("c/numbers.tsv", 3, 3000);
  /* each instance's offset is its operator state, committed with its position */
  for (int i = 0; i < 3; i++) {
    char path[64];
    snprintf(path, sizeof path, "c/state/counter/%d.db", i);
    ASSERT_EQ(smp_query(path, "SELECT next FROM sl_op_offset"), 3000);
    ASSERT_EQ(smp_query(path, "SELECT value FROM sl_meta WHERE name = 'source_position'"), 3000);
  }
}

TEST(sample_counter_source_across_kills) {
  const char *bin = smp_bin("counter_source");
  const char *argv[] = {bin, "--dir", "c", "--count", "20000", "--pace-ms", "10", "--interval-ms", "30",
                        NULL};
  char *log;
  /* 200 batches at 10 ms: about 2 s of work */
  int kills = smp_kill_loop(argv, "c.log", "c/checkpoints", (uint64_t)time(NULL) ^ 0xc0, 4, 250);
  ASSERT(kills >= 3);
  log = sdk_read("c.log");
  ASSERT(strstr(log, "restored from checkpoint") != NULL);
  ASSERT(strstr(log, "40000 numbers from 2 instances") != NULL);
  free(log);
  smp_check_numbers("c/numbers.tsv", 2, 20000);
}

/* ---- the demo of `make run` ------------------------------------------------------------- */

TEST(sample_demo_make_run) {
  static char out[65536];
  const char *root = smp_root();
  int64_t t0 = smp_now_ms();
  ASSERT_EQ(test_sh(out, sizeof out, "sh '%s/samples/demo.sh' '%s' demo 2>&1", root,
                    smp_bin("sensor_windows")), 0);
  printf("the demo took %lld ms\n", (long long)(smp_now_ms() - t0));
  ASSERT_MSG(strstr(out, "kill -9 ") != NULL, "the demo did not kill its run:\n%s", out);
  ASSERT_MSG(strstr(out, "restored from checkpoint") != NULL, "%s", out);
  ASSERT_MSG(strstr(out, "Identical: the same totals, and the same 120 window results") != NULL, "%s", out);
  ASSERT(strstr(out, "sqlite3 -readonly demo/A/state/windows/0.db") != NULL);
  ASSERT(strstr(out, "zstd -d -c demo/A/checkpoints/chk-") != NULL);
  ASSERT(smp_now_ms() - t0 < 60000);
}
