/*
** torture.h — figures for the summary of `make torture`.
**
** A test reports what it injected and what it found with lines
**
**   figure: <kind> <n> <what>
**
** on its standard output, for example
**
**   figure: cycles 500 rel_kill_loop    kill -9 cycles (a kill, then a restart)
**   figure: kill_point 40 commit        deaths at the named kill point `commit`
**   figure: faults 1234 sdk_alloc_fault_open   faults injected (failed
**                                       allocations, ...)
**   figure: violations 0 rel_kill_loop  broken guarantees found (a test that
**                                       finds any also fails)
**
** tests/torture_summary.sh adds them up per kind (kill points per name) at
** the end of `make torture` and checks that every kill point of the library
** was hit.
** Every line goes out in one write(), so that processes of one test (a test
** may fork) cannot interleave within a line.
*/
#ifndef SL_TORTURE_H
#define SL_TORTURE_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static inline void tt_figure(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static inline void tt_figure(const char *fmt, ...) {
  char line[512];
  int n = snprintf(line, sizeof line, "figure: ");
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  fflush(stdout);
  if (write(STDOUT_FILENO, line, (size_t)n) < 0) { /* nothing to do about it */ }
}

/* The name of the running test: the last part of its scratch directory. */
static inline const char *tt_test_name(void) {
  const char *d = test_dir(), *slash = strrchr(d, '/');
  return slash ? slash + 1 : d;
}

/* "figure: <kind> <n> <the running test>" */
static inline void tt_count(const char *kind, long long n) {
  tt_figure("%s %lld %s", kind, n, tt_test_name());
}

#endif
