/*
** test_harness.c — tests of the test harness itself: the scratch directory,
** test_sh(), test_bin() and test_long() behave as tests/test.h promises.
*/
#include "test.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

TEST(quick_harness_dir) {
  const char *dir = test_dir();
  char cwd[PATH_MAX];
  struct stat sb;
  DIR *d;
  struct dirent *e;
  int entries = 0;
  FILE *f;
  char buf[32] = {0};

  /* Absolute, the current directory, named after the test, and empty. */
  ASSERT(dir != NULL);
  ASSERT_EQ(dir[0], '/');
  ASSERT(getcwd(cwd, sizeof cwd) != NULL);
  ASSERT_STR(cwd, dir);
  ASSERT(strrchr(dir, '/') != NULL);
  ASSERT_STR(strrchr(dir, '/') + 1, "quick_harness_dir");
  ASSERT_EQ(stat(dir, &sb), 0);
  ASSERT(S_ISDIR(sb.st_mode));
  d = opendir(dir);
  ASSERT(d != NULL);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
  }
  closedir(d);
  ASSERT_EQ(entries, 0);

  /* Writable: a file written there reads back the same. */
  f = fopen("probe.txt", "w");
  ASSERT(f != NULL);
  ASSERT_EQ(fputs("statelite\n", f) >= 0, 1);
  ASSERT_EQ(fclose(f), 0);
  f = fopen("probe.txt", "r");
  ASSERT(f != NULL);
  ASSERT(fgets(buf, sizeof buf, f) != NULL);
  fclose(f);
  ASSERT_STR(buf, "statelite\n");
  ASSERT_EQ(mkdir("sub", 0777), 0);
  ASSERT_EQ(stat("sub", &sb), 0);
  ASSERT(S_ISDIR(sb.st_mode));
}

TEST(quick_harness_sh) {
  char out[64];
  char small[4];

  /* Standard output is captured, exit statuses come back as they are. */
  ASSERT_EQ(test_sh(out, sizeof out, "printf '%%s %%d\\n' hello %d", 42), 0);
  ASSERT_STR(out, "hello 42\n");
  ASSERT_EQ(test_sh(out, sizeof out, "echo partial; exit 3"), 3);
  ASSERT_STR(out, "partial\n");
  ASSERT_EQ(test_sh(NULL, 0, "exit 7"), 7);
  ASSERT_EQ(test_sh(out, sizeof out, "true"), 0);
  ASSERT_STR(out, "");

  /* Output longer than the buffer is cut to cap-1 bytes and terminated. */
  memset(small, 'x', sizeof small);
  ASSERT_EQ(test_sh(small, sizeof small, "echo abcdefgh"), 0);
  ASSERT_STR(small, "abc");

  /* The command runs in the test's directory. */
  ASSERT_EQ(test_sh(NULL, 0, "echo written > from_sh.txt"), 0);
  ASSERT_EQ(access("from_sh.txt", F_OK), 0);
  ASSERT_EQ(test_sh(out, sizeof out, "pwd"), 0);
  ASSERT(strncmp(out, test_dir(), strlen(test_dir())) == 0);

  /* A killed command reports 128 + the signal number, as the shell does. */
  ASSERT_EQ(test_sh(NULL, 0, "kill -9 $$"), 128 + 9);
}

TEST(harness_bin_and_long) {
  const char *bin_dir = getenv("SL_BIN_DIR");
  const char *a = test_bin("statelite");
  const char *b = test_bin("other");
  size_t n = strlen(a);
  char want[PATH_MAX];
  const char *lng = getenv("SL_TEST_LONG");

  /* Two results can be used side by side. */
  ASSERT(a != b);
  ASSERT(n > strlen("/statelite"));
  ASSERT_STR(a + n - strlen("/statelite"), "/statelite");
  ASSERT_STR(b + strlen(b) - strlen("/other"), "/other");
  if (bin_dir && *bin_dir) {
    snprintf(want, sizeof want, "%s/statelite", bin_dir);
    ASSERT_STR(a, want);
  }
  ASSERT_EQ(test_long(), lng && *lng && strcmp(lng, "0") != 0);
}
