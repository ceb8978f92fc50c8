/*
** bench_util.h — the small helpers the benchmark programs share: a
** random-number step, a monotonic clock, the scratch directory trees, sorting
** doubles and big-endian integer keys. Each program includes it once; every
** function is static inline, so a program that does not use one is not
** warned about it.
*/
#ifndef STATELITE_BENCH_UTIL_H
#define STATELITE_BENCH_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One step of splitmix64: the next of a stream of well-mixed 64-bit values. */
static inline uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Seconds of the monotonic clock. */
static inline double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Removes a file or a directory tree; a missing path is not an error.
** Returns 0 or -1. */
static inline int rm_tree(const char *path) {
  struct stat sb;
  DIR *d;
  struct dirent *de;
  int rc = 0;
  if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(sb.st_mode)) return unlink(path);
  d = opendir(path);
  if (!d) return -1;
  while ((de = readdir(d)) != NULL) {
    char sub[4352];
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= sizeof sub) {
      rc = -1;
      continue;
    }
    if (rm_tree(sub) != 0) rc = -1;
  }
  closedir(d);
  if (rmdir(path) != 0) rc = -1;
  return rc;
}

/* Copies the tree src (directories and regular files) into dst, which exists
** as a directory. Returns 0 or -1. */
static inline int copy_tree(const char *src, const char *dst) {
  DIR *d = opendir(src);
  struct dirent *de;
  static char buf[1 << 20];
  int rc = 0;
  if (!d) return -1;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    char from[4352], to[4352];
    struct stat sb;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if ((size_t)snprintf(from, sizeof from, "%s/%s", src, de->d_name) >= sizeof from ||
        (size_t)snprintf(to, sizeof to, "%s/%s", dst, de->d_name) >= sizeof to ||
        lstat(from, &sb) != 0) {
      rc = -1;
    } else if (S_ISDIR(sb.st_mode)) {
      rc = mkdir(to, 0755) == 0 ? copy_tree(from, to) : -1;
    } else if (S_ISREG(sb.st_mode)) {
      FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
      size_t n;
      if (!in || !out) rc = -1;
      while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
      if (in && ferror(in)) rc = -1;
      if (in) fclose(in);
      if (out && fclose(out) != 0) rc = -1;
    }
  }
  closedir(d);
  return rc;
}

/* qsort's comparison of doubles, ascending. */
static inline int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* u as 8 big-endian bytes (keys that sort as their integers do), and back. */
static inline void be64(uint64_t u, char *out) {
  int i;
  for (i = 7; i >= 0; i--) {
    out[i] = (char)(u & 0xff);
    u >>= 8;
  }
}

static inline int64_t unbe64(const char *p) {
  uint64_t u = 0;
  int i;
  for (i = 0; i < 8; i++) u = (u << 8) | (unsigned char)p[i];
  return (int64_t)u;
}

#endif /* STATELITE_BENCH_UTIL_H */
