/*
** test_amalgamation.c — the one-file build: amalgamation/generate.sh writes
** statelite.c and statelite.h into the test's directory; statelite.c must
** compile alone with -Wall -Wextra -Werror -Wshadow -std=c11, export nothing
** but sl_ symbols, and build every sample from those two files and the
** system's SQLite and zstd; the samples built that way must work. An older
** SQLite or zstd stops the build with a clear #error, and file-local names
** that would collide in one translation unit stop the generator.
*/
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#define AMAL_LIBS "-lsqlite3 -lzstd -lpthread -lm"

static const char *const amal_samples[] = {"count_window_average", "counter_source", "dedup",
                                           "fraud_pattern", "online_regression", "sensor_windows",
                                           "sessions", "wordcount"};

/* The top of the source tree: the first directory above the build directory
** that holds amalgamation/generate.sh. */
static const char *amal_root(void) {
  static char root[PATH_MAX];
  char probe[PATH_MAX + 64];
  char *slash;
  snprintf(root, sizeof root, "%s", test_bin("x"));
  for (;;) {
    slash = strrchr(root, '/');
    ASSERT_MSG(slash != NULL, "cannot find amalgamation/generate.sh above %s", test_bin("x"));
    *slash = 0;
    snprintf(probe, sizeof probe, "%s/amalgamation/generate.sh", root);
    if (access(probe, R_OK) == 0) return root;
  }
}

static const char *amal_cc(void) {
  const char *cc = getenv("CC");
  return cc && *cc ? cc : "cc";
}

/* Generates into ./amal; returns the source root. */
static const char *amal_generate(void) {
  const char *root = amal_root();
  char out[4096];
  int rc = test_sh(out, sizeof out, "sh '%s/amalgamation/generate.sh' amal 2>&1", root);
  ASSERT_MSG(rc == 0, "generate.sh failed (%d):\n%s", rc, out);
  ASSERT(strstr(out, "amal/statelite.c") != NULL);
  return root;
}

/* Lines of file that contain the fixed string. */
static int amal_count(const char *file, const char *fixed) {
  char out[64];
  ASSERT(test_sh(out, sizeof out, "grep -c -F -e '%s' '%s'", fixed, file) >= 0);
  return atoi(out);
}

/* Lines of file that match the extended regular expression. */
static int amal_count_re(const char *file, const char *re) {
  char out[64];
  ASSERT(test_sh(out, sizeof out, "grep -c -E -e '%s' '%s'", re, file) >= 0);
  return atoi(out);
}

TEST(quick_amalgamation_layout) {
  const char *root = amal_generate();
  char out[16384], *p, *save = NULL;
  long prev = 0;
  int files = 0;

  /* statelite.h is the public header as it is */
  ASSERT_EQ(test_sh(NULL, 0, "cmp -s amal/statelite.h '%s/include/statelite.h'", root), 0);

  /* the top: internal functions static, feature macros, version checks */
  ASSERT_EQ(test_sh(out, sizeof out, "sed -n '1,60p' amal/statelite.c"), 0);
  ASSERT(strstr(out, "#define SL_PRIVATE static") != NULL);
  ASSERT(strstr(out, "#define _POSIX_C_SOURCE 200809L") != NULL);
  ASSERT(strstr(out, "#define _DEFAULT_SOURCE") != NULL);
  ASSERT(strstr(out, "#if !defined(SQLITE_VERSION_NUMBER) || SQLITE_VERSION_NUMBER < 3033000") != NULL);
  ASSERT(strstr(out, "#if !defined(ZSTD_VERSION_NUMBER) || ZSTD_VERSION_NUMBER < 10400") != NULL);
  ASSERT(strstr(out, "#define SL_PRIVATE static") < strstr(out, "#include"));

  /* only one project include is left: the public header */
  ASSERT_EQ(amal_count_re("amal/statelite.c", "^[[:space:]]*#[[:space:]]*include[[:space:]]*\""), 1);
  ASSERT_EQ(amal_count_re("amal/statelite.c", "^#include \"statelite.h\"$"), 1);
  /* system includes are kept */
  ASSERT(amal_count("amal/statelite.c", "#include <sqlite3.h>") >= 1);
  ASSERT(amal_count("amal/statelite.c", "#include <pthread.h>") >= 1);

  /* every header and every .c file of the modules once, headers first, the
  ** .c files in the order base, store, snapshot, sdk */
  ASSERT_EQ(test_sh(out, sizeof out,
                    "cd '%s' && for f in base/*.h store/*.h snapshot/*.h sdk/*.h base/*.c store/*.c "
                    "snapshot/*.c sdk/*.c; do echo $f; done",
                    root), 0);
  for (p = strtok_r(out, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
    char line[512], where[64];
    long at;
    snprintf(line, sizeof line, "#line 1 \"%s\"", p);
    ASSERT_MSG(amal_count("amal/statelite.c", line) == 1, "%s is not in statelite.c exactly once", p);
    ASSERT_EQ(test_sh(where, sizeof where, "grep -n -F -x -e '%s' amal/statelite.c | cut -d: -f1", line), 0);
    at = atol(where);
    if (strstr(p, ".c")) {
      ASSERT_MSG(at > prev, "%s comes too early in statelite.c", p);
      prev = at;
      files++;
    }
  }
  ASSERT(files >= 4);
  /* no SQLite or zstd pasted in */
  ASSERT_EQ(amal_count("amal/statelite.c", "SQLITE_API"), 0);
  ASSERT_EQ(amal_count("amal/statelite.c", "ZSTDLIB_API"), 0);
}

TEST(amalgamation_builds_alone_and_builds_the_samples) {
  const char *root = amal_generate();
  const char *cc = amal_cc();
  static char out[65536];
  int rc;

  /* statelite.c alone, strict, with nothing but the system's headers */
  rc = test_sh(out, sizeof out, "cd amal && %s -Wall -Wextra -Werror -Wshadow -std=c11 -c statelite.c -o statelite.o 2>&1",
               cc);
  ASSERT_MSG(rc == 0, "statelite.c does not compile:\n%s", out);
  /* and with clang, when there is one */
  if (test_sh(NULL, 0, "command -v clang >/dev/null 2>&1") == 0) {
    rc = test_sh(out, sizeof out, "cd amal && clang -Wall -Wextra -Werror -Wshadow -std=c11 -c statelite.c -o clang.o 2>&1");
    ASSERT_MSG(rc == 0, "statelite.c does not compile with clang:\n%s", out);
  }

  /* only sl_ symbols are exported */
  ASSERT_EQ(test_sh(out, sizeof out, "nm -g --defined-only amal/statelite.o | awk '{print $3}' | grep -v '^sl_'"), 1);
  ASSERT_STR(out, "");
  ASSERT_EQ(test_sh(out, sizeof out, "nm -g --defined-only amal/statelite.o | awk '{print $3}' | sort"), 0);
  ASSERT(strstr(out, "sl_store_open\n") != NULL);
  ASSERT(strstr(out, "sl_job_run\n") != NULL);
  ASSERT(strstr(out, "sl_chkdir_restore\n") != NULL);
  ASSERT(strstr(out, "sl_file_sink\n") != NULL);

  /* every sample from the two files and the system's sqlite3 and zstd */
  for (size_t i = 0; i < sizeof amal_samples / sizeof amal_samples[0]; i++) {
    rc = test_sh(out, sizeof out, "%s -std=c11 -Wall -Wextra -Werror -Iamal -o amal/%s '%s/samples/%s.c' amal/statelite.o " AMAL_LIBS " 2>&1",
                 cc, amal_samples[i], root, amal_samples[i]);
    ASSERT_MSG(rc == 0, "samples/%s.c does not build against the amalgamation:\n%s", amal_samples[i], out);
  }

  /* and they work */
  ASSERT_EQ(test_sh(out, sizeof out, "amal/count_window_average --dir cwa 2>/dev/null"), 0);
  ASSERT_STR(out, "(1,4)\n(1,5)\n");
  ASSERT_EQ(test_sh(out, sizeof out, "printf 'a b a\\nc a b\\n' > in.txt && amal/wordcount --input in.txt --output out.txt --dir wc && cat out.txt"), 0);
  ASSERT_STR(out, "a\t1\nb\t1\na\t2\nc\t1\na\t3\nb\t2\n");
  ASSERT_EQ(test_sh(out, sizeof out, "amal/counter_source --dir cs --count 2000 --parallelism 3"), 0);
  ASSERT(strstr(out, "6000 numbers from 3 instances") != NULL && strstr(out, "0 missing, 0 repeated") != NULL);
  ASSERT_EQ(test_sh(out, sizeof out, "amal/fraud_pattern --dir fp --input '%s/samples/data/logins.tsv'", root), 0);
  ASSERT(strstr(out, "4 alerts") != NULL);
  ASSERT_EQ(test_sh(out, sizeof out, "amal/sensor_windows --dir sw --devices 2 --minutes 3"), 0);
  ASSERT(strstr(out, "6 one-minute windows") != NULL);

  /* the size of the object at -Os, for the README */
  ASSERT_EQ(test_sh(out, sizeof out, "cd amal && %s -std=c11 -Os -c statelite.c -o small.o && size small.o | tail -n 1",
                    cc), 0);
  printf("size of statelite.o at -Os (text data bss dec hex file): %s", out);
}

TEST(quick_amalgamation_version_checks) {
  char out[65536];
  int rc;
  amal_generate();
  /* an sqlite3.h older than 3.33.0 */
  ASSERT_EQ(test_sh(NULL, 0,
                    "mkdir -p old-sqlite old-zstd && "
                    "printf '#define SQLITE_VERSION \"3.32.3\"\\n#define SQLITE_VERSION_NUMBER 3032003\\n' > old-sqlite/sqlite3.h && "
                    "printf '#define ZSTD_VERSION_NUMBER 10309\\n' > old-zstd/zstd.h"),
            0);
  rc = test_sh(out, sizeof out, "%s -std=c11 -Iold-sqlite -fsyntax-only amal/statelite.c 2>&1", amal_cc());
  ASSERT(rc != 0);
  ASSERT_MSG(strstr(out, "statelite needs SQLite 3.33.0 or newer") != NULL, "%s", out);
  /* a zstd.h older than 1.4.0 */
  rc = test_sh(out, sizeof out, "%s -std=c11 -Iold-zstd -fsyntax-only amal/statelite.c 2>&1", amal_cc());
  ASSERT(rc != 0);
  ASSERT_MSG(strstr(out, "statelite needs zstd 1.4.0 or newer") != NULL, "%s", out);
}

TEST(quick_amalgamation_refuses_name_collisions) {
  const char *root = amal_root();
  char out[8192];
  int rc;
  /* a copy of the tree with one more file whose static names clash */
  ASSERT_EQ(test_sh(NULL, 0, "mkdir tree && cd '%s' && cp -R base store snapshot sdk include amalgamation '%s/tree/'",
                    root, test_dir()),
            0);
  ASSERT_EQ(test_sh(NULL, 0,
                    "printf '/* clash */\\n#include \"base/base.h\"\\n#define SL_CLASH_MACRO 1\\n"
                    "static int slClashFn(void) { return 0; }\\n' > tree/base/aa_clash.c && "
                    "printf '/* clash */\\n#include \"sdk/sdk.h\"\\n#define SL_CLASH_MACRO 2\\n"
                    "static int slClashFn(void) { return 1; }\\n' > tree/sdk/zz_clash.c"),
            0);
  rc = test_sh(out, sizeof out, "sh tree/amalgamation/generate.sh tree/out 2>&1");
  ASSERT_EQ(rc, 1);
  ASSERT_MSG(strstr(out, "slClashFn (static): base/aa_clash.c and sdk/zz_clash.c") != NULL, "%s", out);
  ASSERT_MSG(strstr(out, "SL_CLASH_MACRO (macro): base/aa_clash.c and sdk/zz_clash.c") != NULL, "%s", out);
  ASSERT(access("tree/out/statelite.c", F_OK) != 0);
  /* the same macro with the same body is no clash */
  ASSERT_EQ(test_sh(NULL, 0, "sed -i 's/SL_CLASH_MACRO 2/SL_CLASH_MACRO 1/; s/slClashFn/slClashFn2/g' tree/sdk/zz_clash.c"), 0);
  rc = test_sh(out, sizeof out, "sh tree/amalgamation/generate.sh tree/out 2>&1");
  ASSERT_MSG(rc == 0, "%s", out);
}
