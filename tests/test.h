/*
** test.h — the plain C test harness of statelite: TEST() definitions and
** ASSERT macros that work whatever NDEBUG says.
**
** A test file defines tests with TEST(name) { ... }. The Makefile finds every
** TEST(name) in tests/test_*.c and writes the registry; the runner (tests/runner.c)
** runs each test in a child process and ends with "N passed, N failed".
** Tests named with the prefix quick_ also run in `make check`.
**
** Each test starts in a fresh, empty working directory of its own
** (test_dir()), so it may create files freely.
*/
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST(name) void test_##name(void); void test_##name(void)

/* Reports a failure and ends the test (the child process) with status 1. */
void test_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noreturn))
#endif
    ;

/* The test's own scratch directory (absolute path, exists, empty at start). */
const char *test_dir(void);

/* Path of a built tool or helper binary, e.g. test_bin("statelite"); the
** directory comes from the environment variable SL_BIN_DIR (set by make). */
const char *test_bin(const char *name);

/* Runs a shell command, returns its exit status (-1 if it could not run) and,
** if out is not NULL, captures up to cap-1 bytes of its standard output. */
int test_sh(char *out, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Long mode: the environment variable SL_TEST_LONG is set (make torture). */
int test_long(void);

#define ASSERT(c) do { if (!(c)) test_fail(__FILE__, __LINE__, "assertion failed: %s", #c); } while (0)
#define ASSERT_MSG(c, ...) do { if (!(c)) test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define ASSERT_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define ASSERT_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_)) test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
/* rc must equal want; on failure prints sl_errmsg(h) too (h may be NULL). */
#define ASSERT_RC(rc, want, h) do { int r_ = (rc); if (r_ != (want)) \
    test_fail(__FILE__, __LINE__, "%s: got %s, want %s (%s)", #rc, sl_errstr(r_), sl_errstr(want), sl_errmsg(h)); } while (0)
#define ASSERT_OK(rc, h) ASSERT_RC(rc, SL_OK, h)

#endif
