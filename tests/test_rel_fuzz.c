/*
** test_rel_fuzz.c — replays the fuzz corpus and every finding of the fuzzer
** (tests/fuzz/corpus/, tests/fuzz/regressions/) through the fuzz entry point
** itself (tests/fuzz/fuzz_snapshot.c), so that a finding, once fixed, stays
** fixed. `make fuzz` runs the libFuzzer build of the same function.
*/
#include <dirent.h>
#include <limits.h>

#include "store_util.h"
#include "test.h"

#include "fuzz/fuzz_snapshot.c"

/* tests/fuzz/<sub> of the source tree, found upwards from the build
** directory (SL_BIN_DIR is build/ or build/asan/ ...). */
static int fz_find_dir(char *out, size_t cap, const char *sub) {
  char base[PATH_MAX];
  const char *bin = getenv("SL_BIN_DIR");
  struct stat sb;
  ASSERT_MSG(bin != NULL, "SL_BIN_DIR is not set");
  snprintf(base, sizeof base, "%s", bin);
  for (int up = 0; up < 6; up++) {
    char *slash;
    snprintf(out, cap, "%s/tests/fuzz/%s", base, sub);
    if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) return 1;
    slash = strrchr(base, '/');
    if (!slash || slash == base) break;
    *slash = 0;
  }
  return 0;
}

static int fz_replay(const char *sub, int *with_restore) {
  char dir[PATH_MAX], work[4200];
  DIR *d;
  struct dirent *e;
  int n = 0;
  ASSERT_MSG(fz_find_dir(dir, sizeof dir, sub), "tests/fuzz/%s not found", sub);
  snprintf(work, sizeof work, "%s/w", test_dir());
  ASSERT(mkdir(work, 0755) == 0);
  d = opendir(dir);
  ASSERT(d != NULL);
  while ((e = readdir(d)) != NULL) {
    char path[PATH_MAX + 300], rdb[4300];
    size_t len = 0;
    char *data;
    if (e->d_name[0] == '.' || strcmp(e->d_name, "README") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    data = su_read_file(path, &len);
    ASSERT_MSG(data != NULL, "cannot read %s", path);
    ASSERT_MSG(fz_one(work, (const uint8_t *)data, len) == 0, "%s: %s", path, fz_err);
    snprintf(rdb, sizeof rdb, "%s/restored/rel/0.db", work);
    if (su_exists(rdb)) (*with_restore)++;
    free(data);
    n++;
  }
  closedir(d);
  return n;
}

TEST(quick_rel_fuzz_corpus_replays) {
  int restored = 0, n = fz_replay("corpus", &restored);
  printf("%d corpus inputs, %d restored\n", n, restored);
  ASSERT(n >= 4);
  /* the seeds include real checkpoints, which must restore */
  ASSERT(restored >= 2);
}

TEST(quick_rel_fuzz_regressions_replay) {
  int restored = 0, n = fz_replay("regressions", &restored);
  printf("%d regression inputs replayed\n", n);
  ASSERT(n >= 3);
}
