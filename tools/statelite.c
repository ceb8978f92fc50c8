/*
** statelite.c — the statelite command-line tool: lists, verifies, restores,
** savepoints and garbage-collects checkpoint directories, and dumps the rows
** of state files and snapshots. Uses nothing but statelite.h.
*/
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "statelite.h"

#define EXIT_FAULT 1 /* a fault was found, or the operation failed */
#define EXIT_USAGE 2 /* the command line is wrong */

static const char *const usage_main =
    "usage: statelite COMMAND [ARGUMENTS]\n"
    "\n"
    "Inspect, verify and restore statelite checkpoints and state files.\n"
    "\n"
    "commands:\n"
    "  ls DIR                      checkpoints and savepoints of a checkpoint directory\n"
    "  verify DIR [ID|NAME]        verify every checkpoint and savepoint, or one\n"
    "  restore DIR [ID|NAME] --to STATE_DIR [--parallelism [OP=]P]...\n"
    "                              restore state files, rescaled if asked\n"
    "  savepoint STATE_DIR DIR NAME\n"
    "                              take a savepoint of stopped state files\n"
    "  gc DIR [--keep K] [--max-bytes B]\n"
    "                              remove unfinished checkpoints, apply retention\n"
    "  dump FILE [--state NAME] [--format csv|json]\n"
    "                              print the rows of a state file or a .db.zst snapshot\n"
    "\n"
    "`statelite COMMAND --help` describes a command.\n"
    "exit status: 0 success, 1 a fault was found or the operation failed,\n"
    "2 the command line is wrong.\n";

static int fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int fail(const char *fmt, ...) {
  va_list ap;
  fputs("statelite: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return EXIT_FAULT;
}

static int usage(const char *text, const char *problem) {
  if (problem) {
    fprintf(stderr, "statelite: %s\n\n%s", problem, text);
    return EXIT_USAGE;
  }
  fputs(text, stdout);
  return 0;
}

static int wants_help(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

static void report(void *ud, int rc, const char *msg) {
  (void)ud;
  if (rc) fprintf(stderr, "statelite: %s: %s\n", sl_errstr(rc), msg);
  else fprintf(stderr, "statelite: %s\n", msg);
}

/* Parses an id ("7") or takes the argument as a savepoint name. */
static void which(const char *arg, int64_t *id, const char **name) {
  char *end;
  long long v;
  *id = 0;
  *name = NULL;
  if (!arg) return;
  errno = 0;
  v = strtoll(arg, &end, 10);
  if (!errno && *end == 0 && v > 0) *id = v;
  else *name = arg;
}

/* A progress line on stderr once an operation has taken a second, then at
** most one a second, and one at the end of each operator. */
typedef struct progress_state {
  struct timespec start, last;
} progress_state;

static progress_state g_progress;

static double seconds_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) / 1e9;
}

static void progress(void *ud, const char *what, const char *op, int done, int total) {
  progress_state *p = ud;
  double since_start = seconds_since(&p->start);
  if (since_start < 1.0) return;
  if (done < total && seconds_since(&p->last) < 1.0) return;
  clock_gettime(CLOCK_MONOTONIC, &p->last);
  fprintf(stderr, "statelite: %.1f s: %s: %s %d of %d\n", since_start, op, what, done, total);
}

static int open_dir(const char *dir, int flags, sl_chkdir **cd) {
  sl_chkdir_config cfg;
  struct stat sb;
  int rc;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return fail("%s is not a directory", dir);
  sl_chkdir_config_init(&cfg);
  cfg.flags = flags;
  cfg.report = report;
  cfg.progress = progress;
  cfg.progress_ud = &g_progress;
  rc = sl_chkdir_open(dir, &cfg, cd);
  if (rc) {
    fail("cannot open %s: %s", dir, sl_errmsg(*cd));
    sl_chkdir_close(*cd);
    *cd = NULL;
    return EXIT_FAULT;
  }
  return 0;
}

static void fmt_time(int64_t ms, char *buf, size_t cap) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (ms <= 0 || !gmtime_r(&t, &tm)) {
    snprintf(buf, cap, "-");
    return;
  }
  strftime(buf, cap, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void fmt_bytes(uint64_t b, char *buf, size_t cap) {
  if (b < 10 * 1024) snprintf(buf, cap, "%llu B", (unsigned long long)b);
  else if (b < 10ull * 1024 * 1024) snprintf(buf, cap, "%.1f KiB", b / 1024.0);
  else if (b < 10ull * 1024 * 1024 * 1024) snprintf(buf, cap, "%.1f MiB", b / 1048576.0);
  else snprintf(buf, cap, "%.1f GiB", b / 1073741824.0);
}

/* ---- ls, verify -------------------------------------------------------------- */

static const char *const usage_ls =
    "usage: statelite ls DIR\n"
    "\n"
    "Lists the checkpoints and savepoints of the checkpoint directory DIR: id,\n"
    "time, size, state (complete or unfinished) and verdict (the result of a\n"
    "full verification: ok, or what is wrong). Changes nothing.\n";

static const char *const usage_verify =
    "usage: statelite verify DIR [ID|NAME]\n"
    "\n"
    "Verifies every complete checkpoint and savepoint of DIR, or only checkpoint\n"
    "ID or savepoint NAME: the MANIFEST parses, every file has its size and\n"
    "checksum, and the zstd frames hold the declared sizes. Prints one line per\n"
    "checkpoint; exits 1 if anything is wrong.\n";

static int list_or_verify(int argc, char **argv, int verify_only) {
  const sl_chk_entry *e;
  sl_chkdir *cd = NULL;
  const char *name = NULL;
  int64_t id = 0;
  int n, rc, faults = 0, shown = 0;
  if (wants_help(argc, argv)) return usage(verify_only ? usage_verify : usage_ls, NULL);
  if (argc < 1 || argc > (verify_only ? 2 : 1))
    return usage(verify_only ? usage_verify : usage_ls, "wrong number of arguments");
  if (verify_only && argc == 2) which(argv[1], &id, &name);
  if (open_dir(argv[0], SL_CHKDIR_READONLY, &cd)) return EXIT_FAULT;
  rc = sl_chkdir_list(cd, &e, &n);
  if (rc) {
    fail("%s", sl_errmsg(cd));
    sl_chkdir_close(cd);
    return EXIT_FAULT;
  }
  if (!verify_only) printf("%-10s %-10s %-21s %10s  %-10s %s\n", "kind", "id/name", "time", "size", "state", "verdict");
  for (int i = 0; i < n; i++) {
    char when[32], size[32], label[160];
    const char *verdict = "-";
    if (verify_only && (id || name)) {
      if (name ? !(e[i].name && !strcmp(e[i].name, name)) : (e[i].name || e[i].id != id)) continue;
    }
    shown++;
    if (e[i].complete) {
      rc = sl_chkdir_verify(cd, e[i].name ? 0 : e[i].id, e[i].name);
      verdict = rc == SL_OK ? "ok" : sl_errmsg(cd);
      if (rc) faults++;
    } else if (verify_only) {
      verdict = "unfinished (no MANIFEST)";
      if (id || name) faults++;
    }
    fmt_time(e[i].time_ms, when, sizeof when);
    fmt_bytes(e[i].bytes, size, sizeof size);
    if (e[i].name) snprintf(label, sizeof label, "%s", e[i].name);
    else snprintf(label, sizeof label, "%lld", (long long)e[i].id);
    if (verify_only)
      printf("%s %s: %s\n", e[i].kind == SL_SAVEPOINT ? "savepoint" : "checkpoint", label, verdict);
    else
      printf("%-10s %-10s %-21s %10s  %-10s %s\n", e[i].kind == SL_SAVEPOINT ? "savepoint" : "checkpoint",
             label, when, size, e[i].complete ? "complete" : "unfinished", verdict);
  }
  sl_chkdir_close(cd);
  if (verify_only && (id || name) && shown == 0)
    return fail("%s: no %s %s", argv[0], name ? "savepoint" : "checkpoint", argv[1]);
  if (!verify_only && n == 0) printf("(no checkpoints)\n");
  if (verify_only && shown == 0) printf("(no checkpoints)\n");
  return faults ? EXIT_FAULT : 0;
}

/* ---- restore ------------------------------------------------------------------- */

static const char *const usage_restore =
    "usage: statelite restore DIR [ID|NAME] --to STATE_DIR [--parallelism [OP=]P]...\n"
    "\n"
    "Restores the state files of a checkpoint of DIR into STATE_DIR: checkpoint\n"
    "ID, savepoint NAME, or (without either) the newest checkpoint that verifies,\n"
    "falling back to older ones and saying why. --parallelism P gives every\n"
    "operator P instances, --parallelism OP=P only operator OP; keyed state then\n"
    "moves by key group. No program may have those state files open.\n";

/* Frees the operator names from first on, which were strdup'ed. */
static void free_names(sl_rescale *rs, int n, int first) {
  for (int i = first; i < n; i++) free((void *)(uintptr_t)rs[i].op);
}

static int cmd_restore(int argc, char **argv) {
  sl_rescale rs[64];
  int nrs = 0, all = 0, rc, first_owned = 0;
  const char *dir = NULL, *sel = NULL, *to = NULL, *name = NULL;
  int64_t id = 0, restored = 0;
  sl_chkdir *cd = NULL;
  time_t t0;
  if (wants_help(argc, argv)) return usage(usage_restore, NULL);
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--to")) {
      if (++i == argc) return usage(usage_restore, "--to needs a directory");
      to = argv[i];
    } else if (!strcmp(argv[i], "--parallelism")) {
      char *eq, *end;
      long p;
      if (++i == argc) return usage(usage_restore, "--parallelism needs a value");
      eq = strchr(argv[i], '=');
      p = strtol(eq ? eq + 1 : argv[i], &end, 10);
      if (*end || p < 1 || p > SL_MAX_MAX_PARALLELISM)
        return usage(usage_restore, "--parallelism takes P or OP=P with P a positive number");
      if (nrs == (int)(sizeof rs / sizeof rs[0])) return usage(usage_restore, "too many --parallelism");
      if (eq) {
        *eq = 0;
        rs[nrs].op = argv[i];
      } else {
        rs[nrs].op = NULL;
        all = (int)p;
      }
      rs[nrs].parallelism = (int)p;
      if (eq) nrs++;
    } else if (argv[i][0] == '-') {
      return usage(usage_restore, "unknown option");
    } else if (!dir) {
      dir = argv[i];
    } else if (!sel) {
      sel = argv[i];
    } else {
      return usage(usage_restore, "too many arguments");
    }
  }
  if (!dir || !to) return usage(usage_restore, "DIR and --to STATE_DIR are required");
  which(sel, &id, &name);
  if (open_dir(dir, 0, &cd)) return EXIT_FAULT;
  first_owned = nrs;
  if (all) {
    /* every operator of the checkpoint: found from the state files it holds
    ** after a plain restore would be circular, so ask the operators listed in
    ** the checkpoint's directory */
    const sl_chk_entry *e;
    int n;
    char path[4096];
    DIR *d;
    struct dirent *de;
    if (sl_chkdir_list(cd, &e, &n) == SL_OK) {
      const char *pick = NULL;
      for (int i = 0; i < n; i++) {
        if (!e[i].complete || !e[i].valid) continue;
        if (name ? (e[i].name && !strcmp(e[i].name, name))
                 : id ? (!e[i].name && e[i].id == id) : !e[i].name)
          pick = e[i].path;
      }
      if (pick) {
        snprintf(path, sizeof path, "%s", pick);
        d = opendir(path);
        while (d && (de = readdir(d)) != NULL) {
          struct stat sb;
          char sub[8192];
          int dup = 0;
          if (de->d_name[0] == '.') continue;
          snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
          if (stat(sub, &sb) != 0 || !S_ISDIR(sb.st_mode)) continue;
          for (int k = 0; k < nrs; k++) dup |= rs[k].op && !strcmp(rs[k].op, de->d_name);
          if (dup || nrs == (int)(sizeof rs / sizeof rs[0])) continue;
          rs[nrs].op = strdup(de->d_name);
          rs[nrs].parallelism = all;
          if (rs[nrs].op) nrs++;
        }
        if (d) closedir(d);
      }
    }
  }
  t0 = time(NULL);
  clock_gettime(CLOCK_MONOTONIC, &g_progress.start);
  g_progress.last = g_progress.start;
  fprintf(stderr, "statelite: restoring %s into %s ...\n", sel ? sel : "the newest checkpoint", to);
  rc = sl_chkdir_restore(cd, id, name, to, nrs ? rs : NULL, nrs, &restored);
  if (rc) {
    fail("cannot restore: %s", sl_errmsg(cd));
    sl_chkdir_close(cd);
    free_names(rs, nrs, first_owned);
    return EXIT_FAULT;
  }
  printf("restored %s %lld into %s in %lld s\n", name ? "savepoint" : "checkpoint", (long long)restored,
         to, (long long)(time(NULL) - t0));
  sl_chkdir_close(cd);
  free_names(rs, nrs, first_owned);
  return 0;
}

/* ---- savepoint (offline) ------------------------------------------------------- */

static const char *const usage_savepoint =
    "usage: statelite savepoint STATE_DIR DIR NAME\n"
    "\n"
    "Takes savepoint NAME of every state file under STATE_DIR\n"
    "(<operator>/<subtask>.db) into the checkpoint directory DIR, as\n"
    "DIR/savepoints/NAME. The state files must not be open in a running job:\n"
    "what they hold is their last commit. Savepoints are never removed\n"
    "automatically.\n";

static int snapshot_file(sl_chkdir *cd, const char *target, const char *path, int64_t id,
                         sl_snapshot_info *info) {
  sl_store *st = NULL;
  sl_snapshot *sn = NULL;
  int rc = sl_store_open_file(path, NULL, &st);
  if (rc) {
    fail("cannot open %s: %s", path, sl_errmsg(st));
    sl_store_close(st);
    return rc;
  }
  rc = sl_snapshot_begin(st, target, id, SL_SAVEPOINT, NULL, &sn);
  if (rc == SL_OK) rc = sl_snapshot_write(sn);
  if (rc == SL_OK) rc = sl_snapshot_get_info(sn, info);
  if (rc) fail("cannot snapshot %s: %s", path, sn ? sl_errmsg(sn) : sl_errmsg(st));
  if (sn) {
    int erc = sl_snapshot_end(sn);
    if (rc == SL_OK && erc == SL_OK) erc = sl_store_commit(st);
    if (rc == SL_OK && erc) {
      fail("cannot record the savepoint in %s: %s", path, sl_errmsg(st));
      rc = erc;
    }
  }
  (void)cd;
  sl_store_close(st);
  return rc;
}

static int cmd_savepoint(int argc, char **argv) {
  sl_snapshot_info *infos = NULL;
  int n = 0, cap = 0, rc = SL_OK;
  sl_chkdir *cd = NULL;
  const char *target = NULL;
  int64_t id = 0;
  DIR *d;
  struct dirent *de;
  if (wants_help(argc, argv)) return usage(usage_savepoint, NULL);
  if (argc != 3) return usage(usage_savepoint, "wrong number of arguments");
  d = opendir(argv[0]);
  if (!d) return fail("cannot read %s: %s", argv[0], strerror(errno));
  if (open_dir(argv[1], 0, &cd)) {
    closedir(d);
    return EXIT_FAULT;
  }
  rc = sl_chkdir_next_id(cd, &id);
  if (rc == SL_OK) rc = sl_chkdir_target(cd, id, argv[2], &target);
  if (rc) {
    fail("%s", sl_errmsg(cd));
    closedir(d);
    sl_chkdir_close(cd);
    return EXIT_FAULT;
  }
  {
    char tgt[4096];
    snprintf(tgt, sizeof tgt, "%s", target);
    while (rc == SL_OK && (de = readdir(d)) != NULL) {
      char opdir[4096];
      DIR *od;
      struct dirent *fe;
      if (de->d_name[0] == '.') continue;
      snprintf(opdir, sizeof opdir, "%s/%s", argv[0], de->d_name);
      od = opendir(opdir);
      if (!od) continue;
      while (rc == SL_OK && (fe = readdir(od)) != NULL) {
        size_t len = strlen(fe->d_name);
        char file[8192];
        if (len < 4 || strcmp(fe->d_name + len - 3, ".db")) continue;
        snprintf(file, sizeof file, "%s/%s", opdir, fe->d_name);
        if (n == cap) {
          cap = cap ? cap * 2 : 16;
          infos = realloc(infos, sizeof *infos * (size_t)cap);
          if (!infos) {
            rc = fail("out of memory");
            break;
          }
        }
        fprintf(stderr, "statelite: %s\n", file);
        rc = snapshot_file(cd, tgt, file, id, &infos[n]);
        if (rc == SL_OK) n++;
      }
      closedir(od);
    }
  }
  closedir(d);
  if (rc == SL_OK && n == 0) rc = fail("%s holds no state files (<operator>/<subtask>.db)", argv[0]);
  if (rc == SL_OK) {
    rc = sl_chkdir_publish(cd, id, argv[2], infos, n);
    if (rc) fail("cannot publish the savepoint: %s", sl_errmsg(cd));
  }
  if (rc) sl_chkdir_discard(cd, id, argv[2]);
  else printf("savepoint %s (id %lld) of %d state file(s) in %s\n", argv[2], (long long)id, n, argv[1]);
  free(infos);
  sl_chkdir_close(cd);
  return rc ? EXIT_FAULT : 0;
}

/* ---- gc ---------------------------------------------------------------------------- */

static const char *const usage_gc =
    "usage: statelite gc DIR [--keep K] [--max-bytes B]\n"
    "\n"
    "Removes unfinished checkpoints (directories without a MANIFEST) and\n"
    "leftover temporary files of DIR, then keeps the newest K complete\n"
    "checkpoints (default 2) within B bytes (default: no limit). The newest\n"
    "complete checkpoint and every savepoint stay.\n";

static int cmd_gc(int argc, char **argv) {
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  const char *dir = NULL;
  int removed = 0, rc;
  if (wants_help(argc, argv)) return usage(usage_gc, NULL);
  sl_chkdir_config_init(&cfg);
  cfg.report = report;
  for (int i = 0; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--keep") && i + 1 < argc) {
      long k = strtol(argv[++i], &end, 10);
      if (*end || k < 1) return usage(usage_gc, "--keep takes a positive number");
      cfg.keep = (int)k;
    } else if (!strcmp(argv[i], "--max-bytes") && i + 1 < argc) {
      unsigned long long b = strtoull(argv[++i], &end, 10);
      if (*end) return usage(usage_gc, "--max-bytes takes a number of bytes");
      cfg.max_bytes = b;
    } else if (argv[i][0] == '-' || dir) {
      return usage(usage_gc, "unknown option or too many arguments");
    } else {
      dir = argv[i];
    }
  }
  if (!dir) return usage(usage_gc, "DIR is required");
  {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return fail("%s is not a directory", dir);
  }
  rc = sl_chkdir_open(dir, &cfg, &cd);
  if (rc == SL_OK) rc = sl_chkdir_gc(cd, &removed);
  if (rc) {
    fail("%s", sl_errmsg(cd));
    sl_chkdir_close(cd);
    return EXIT_FAULT;
  }
  printf("removed %d checkpoint(s) by retention\n", removed);
  sl_chkdir_close(cd);
  return 0;
}

/* ---- dump ------------------------------------------------------------------------------- */

static const char *const usage_dump =
    "usage: statelite dump FILE [--state NAME] [--format csv|json]\n"
    "\n"
    "Prints the rows of every state (or of state NAME) of FILE, a state file\n"
    "(.db) or a snapshot (.db.zst, read directly), as CSV (default: a header\n"
    "line per state, then its rows) or JSON (one object per row). Columns: the\n"
    "key group kg, the key columns, the map-key columns and the value columns.\n"
    "BLOBs are written in hexadecimal.\n";

static void csv_text(const char *p, size_t n) {
  int quote = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] == ',' || p[i] == '"' || p[i] == '\n' || p[i] == '\r') quote = 1;
  if (quote) putchar('"');
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '"') putchar('"');
    putchar(p[i]);
  }
  if (quote) putchar('"');
}

static void json_text(const char *p, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c == '\n') fputs("\\n", stdout);
    else if (c == '\t') fputs("\\t", stdout);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void print_value(const sl_value *v, int json) {
  switch (v->type) {
    case SL_INTEGER: printf("%lld", (long long)v->v.i); break;
    case SL_REAL: printf("%.17g", v->v.r); break;
    case SL_TEXT:
      if (json) json_text(v->v.p, v->n);
      else csv_text(v->v.p, v->n);
      break;
    case SL_BLOB:
      if (json) putchar('"');
      for (size_t i = 0; i < v->n; i++) printf("%02x", ((const unsigned char *)v->v.p)[i]);
      if (json) putchar('"');
      break;
    default:
      if (json) fputs("null", stdout);
  }
}

static int dump_state(sl_store *st, const char *name, int json) {
  sl_state *s;
  sl_state_desc d;
  sl_iter *it;
  int rc = sl_state_open(st, name, &s);
  if (rc == SL_OK) rc = sl_state_describe(s, &d);
  if (rc == SL_OK) rc = sl_state_scan(s, &it);
  if (rc) return fail("state '%s': %s", name, sl_errmsg(st));
  if (!json) {
    int first = 1;
    printf("# state %s\n", name);
    if (d.n_key) {
      fputs("kg", stdout);
      first = 0;
    }
    for (int i = 0; i < d.n_key; i++) printf(",%s", d.key[i].name);
    for (int i = 0; i < d.n_map_key; i++) printf("%s%s", first && i == 0 ? "" : ",", d.map_key[i].name), first = 0;
    for (int i = 0; i < d.n_value; i++) printf("%s%s", first && i == 0 ? "" : ",", d.value[i].name), first = 0;
    putchar('\n');
  }
  while ((rc = sl_iter_next(it)) == SL_ROW) {
    const sl_value *k, *m, *v;
    int nk, nm, nv, kg, first = 1;
    sl_iter_key(it, &k, &nk, &kg);
    sl_iter_map_key(it, &m, &nm);
    sl_iter_value(it, &v, &nv);
    if (json) {
      printf("{\"state\":");
      json_text(name, strlen(name));
      if (d.n_key) printf(",\"kg\":%d", kg);
    } else if (d.n_key) {
      printf("%d", kg);
      first = 0;
    }
#define FIELD(colname, val)                         \
  do {                                              \
    if (json) {                                     \
      putchar(',');                                 \
      json_text(colname, strlen(colname));          \
      putchar(':');                                 \
    } else if (!first) {                            \
      putchar(',');                                 \
    }                                               \
    first = 0;                                      \
    print_value(val, json);                         \
  } while (0)
    for (int i = 0; i < nk; i++) FIELD(d.key[i].name, &k[i]);
    for (int i = 0; i < nm; i++) FIELD(d.map_key[i].name, &m[i]);
    for (int i = 0; i < nv; i++) FIELD(d.value[i].name, &v[i]);
#undef FIELD
    fputs(json ? "}\n" : "\n", stdout);
  }
  sl_iter_close(it);
  if (rc != SL_DONE) return fail("state '%s': %s", name, sl_errmsg(st));
  return 0;
}

static int cmd_dump(int argc, char **argv) {
  const char *file = NULL, *state = NULL;
  int json = 0, rc = 0, n;
  const char *const *names;
  char tmp[4096] = "";
  sl_store *st = NULL;
  if (wants_help(argc, argv)) return usage(usage_dump, NULL);
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--state") && i + 1 < argc) {
      state = argv[++i];
    } else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
      i++;
      if (!strcmp(argv[i], "json")) json = 1;
      else if (strcmp(argv[i], "csv")) return usage(usage_dump, "--format is csv or json");
    } else if (argv[i][0] == '-' || file) {
      return usage(usage_dump, "unknown option or too many arguments");
    } else {
      file = argv[i];
    }
  }
  if (!file) return usage(usage_dump, "FILE is required");
  if (access(file, R_OK) != 0) return fail("cannot read %s: %s", file, strerror(errno));
  {
    size_t len = strlen(file);
    if (len > 4 && !strcmp(file + len - 4, ".zst")) {
      const char *td = getenv("TMPDIR");
      int fd;
      snprintf(tmp, sizeof tmp, "%s/statelite-dump-XXXXXX", td && *td ? td : "/tmp");
      fd = mkstemp(tmp);
      if (fd < 0) return fail("cannot make a temporary file: %s", strerror(errno));
      close(fd);
      rc = sl_snapshot_extract(file, tmp, 0);
      if (rc) {
        fail("cannot read the snapshot %s: %s", file, sl_errstr(rc));
        unlink(tmp);
        return EXIT_FAULT;
      }
      file = tmp;
    }
  }
  rc = sl_store_open_file(file, NULL, &st);
  if (rc == SL_OK) rc = sl_store_list_states(st, &names, &n);
  if (rc) {
    rc = fail("cannot open %s: %s", file, sl_errmsg(st));
  } else if (state) {
    rc = dump_state(st, state, json);
  } else {
    /* dump_state() changes the names array: copy it first */
    char **copy = calloc((size_t)n + 1, sizeof *copy);
    for (int i = 0; copy && i < n; i++) copy[i] = strdup(names[i]);
    for (int i = 0; copy && i < n && rc == 0; i++) rc = copy[i] ? dump_state(st, copy[i], json) : fail("out of memory");
    for (int i = 0; copy && i < n; i++) free(copy[i]);
    free(copy);
  }
  sl_store_close(st);
  if (tmp[0]) {
    char side[4200];
    unlink(tmp);
    snprintf(side, sizeof side, "%s-wal", tmp);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", tmp);
    unlink(side);
  }
  return rc ? EXIT_FAULT : 0;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : NULL;
  if (!cmd) return usage(usage_main, "a command is required");
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) return usage(usage_main, NULL);
  if (!strcmp(cmd, "--version")) {
    printf("statelite %s\n", sl_libversion());
    return 0;
  }
  if (!strcmp(cmd, "ls")) return list_or_verify(argc - 2, argv + 2, 0);
  if (!strcmp(cmd, "verify")) return list_or_verify(argc - 2, argv + 2, 1);
  if (!strcmp(cmd, "restore")) return cmd_restore(argc - 2, argv + 2);
  if (!strcmp(cmd, "savepoint")) return cmd_savepoint(argc - 2, argv + 2);
  if (!strcmp(cmd, "gc")) return cmd_gc(argc - 2, argv + 2);
  if (!strcmp(cmd, "dump")) return cmd_dump(argc - 2, argv + 2);
  return usage(usage_main, "unknown command");
}
