/*
** test_rel_powerloss.c — simulated power loss, in the manner of SQLite's
** crash tests and RocksDB's lost-buffered-write tests. A job (two generators
** -> key_by -> two sequence checkers -> exactly-once file sink, checkpoints
** every few milliseconds) runs in a child process over the test's file
** table and SQLite VFS shim (test_rel_fs.h), whose hooks keep a model in
** shared memory of what is durable: a file's content as of its last sync
** (kept in a shadow copy) and, per directory, its entries as of its last
** sync (creations, renames and removals since are not durable). Before its
** k-th mutating operation the child kills itself with SIGKILL. The parent
** then applies the power loss to the tree: each directory gets its durable
** entries (or, now and then, all of its current ones, as if the file system
** had committed them), each file its durable content with what was written
** since dropped, kept or garbled sector by sector, or its size cut or
** stretched -- drawn from a printed seed. Only unsynced bytes are garbled:
** a write is assumed not to damage bytes it does not write (SQLite's
** default assumption, "powersafe overwrite").
**
** Then, before the job restarts:
**   - every checkpoint with a MANIFEST verifies (a MANIFEST that survives
**     names only files that survive);
**   - none of the checkpoints the job announced complete before the crash
**     is lost: the newest complete checkpoint X is at least the newest
**     announced one;
**   - the output file holds at least the bytes that X's sink state says
**     were published, and those lines plus X's pending lines are exactly
**     the records X's checkers had seen: no doubled or missing record;
** the restart restores exactly X (its log says so), may crash again, and
** the last run, without a crash, ends with the output and state of a run
** that never crashed. Crash points: a sweep over the operations of a run
** plus random ones, each followed by a second crash at a random point of
** the restarted run. A restore into a fresh directory and a checkpoint of
** a stopped store must also be durable once they have returned.
** SL_TEST_SEED=<the printed seed> replays a run's crash points and power
** losses (not its threads' timing).
*/
#include <signal.h>
#include <sqlite3.h>
#include <sys/mman.h>

#include "sdk_util.h"
#include "store_util.h"
#include "test_rel_fs.h"
#include "test_snapshot_util.h"

/* ---- the model of what is durable ------------------------------------------------ */

#define PL_NODES 32768
#define PL_SLOTS 65536 /* a power of two */
#define PL_NAME 120

typedef struct pl_node {
  int is_dir;
  int shadow;                /* 1: the durable content is <shadow>/<id> */
} pl_node;

typedef struct pl_entry {
  int used;
  int parent;                /* the directory's node */
  int cur, dur;              /* the node it names now / durably; -1: none */
  char name[PL_NAME];
} pl_entry;

typedef struct pl_model {
  pthread_mutex_t mu;
  char root[1024];           /* the tree the power loss hits */
  char shadow[1024];         /* durable contents, outside it */
  int nnodes;
  long ops;                  /* mutating operations under root so far */
  long crash_at;             /* 0: never; else SIGKILL before this one */
  int overflow;
  pl_node nodes[PL_NODES];
  pl_entry slots[PL_SLOTS];
} pl_model;

static pl_model *pl; /* shared with the children */
static int pl_fdnode[TF_MAXFD];

static uint32_t pl_hash(int parent, const char *name) {
  uint32_t h = 2166136261u ^ (uint32_t)parent * 0x9E3779B1u;
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
  return h;
}

/* The entry (parent, name), made when `make` is set; -1 when absent. */
static int pl_slot(int parent, const char *name, int make) {
  uint32_t i = pl_hash(parent, name) & (PL_SLOTS - 1);
  if (strlen(name) >= PL_NAME) {
    pl->overflow = 1;
    return -1;
  }
  for (int probes = 0; probes < PL_SLOTS; probes++, i = (i + 1) & (PL_SLOTS - 1)) {
    pl_entry *e = &pl->slots[i];
    if (!e->used) {
      if (!make) return -1;
      e->used = 1;
      e->parent = parent;
      e->cur = e->dur = -1;
      snprintf(e->name, sizeof e->name, "%s", name);
      return (int)i;
    }
    if (e->parent == parent && strcmp(e->name, name) == 0) return (int)i;
  }
  pl->overflow = 1;
  return -1;
}

static int pl_new_node(int is_dir) {
  if (pl->nnodes >= PL_NODES) {
    pl->overflow = 1;
    return 0;
  }
  pl->nodes[pl->nnodes].is_dir = is_dir;
  pl->nodes[pl->nnodes].shadow = 0;
  return pl->nnodes++;
}

/* The real path of a name in a directory of the tree (for lstat). */
static int pl_under_root(const char *path) {
  size_t n = strlen(pl->root);
  return strncmp(path, pl->root, n) == 0 && (path[n] == '/' || path[n] == 0);
}

/* Splits path (under root) into the node of its directory and its last
** name. Directories on the way that the model does not know (made by a
** path it does not watch) are taken in as they are, not durable. Returns
** 0 when path is not under root or is root itself. */
static int pl_split(const char *path, int *dir, char *name) {
  char buf[4096];
  size_t n = strlen(pl->root);
  char *p, *slash;
  int node = 0;
  if (!pl_under_root(path) || !path[n]) return 0;
  snprintf(buf, sizeof buf, "%s", path + n + 1);
  p = buf;
  while ((slash = strchr(p, '/')) != NULL) {
    int e;
    *slash = 0;
    if (!*p) {
      p = slash + 1;
      continue;
    }
    e = pl_slot(node, p, 1);
    if (e < 0) return 0;
    if (pl->slots[e].cur < 0) {
      char real[4096];
      struct stat sb;
      snprintf(real, sizeof real, "%.*s", (int)(n + 1 + (size_t)(slash - buf)), path);
      if (lstat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) return 0;
      pl->slots[e].cur = pl_new_node(1);
    }
    node = pl->slots[e].cur;
    p = slash + 1;
  }
  if (!*p || strlen(p) >= PL_NAME) return 0;
  *dir = node;
  memcpy(name, p, strlen(p) + 1);
  return 1;
}

/* The node a path names now (taken in when the model does not know it but
** it exists); -1 when nothing is there or it is not under root. */
static int pl_node_of(const char *path) {
  char name[PL_NAME];
  struct stat sb;
  int dir, e;
  if (!pl_split(path, &dir, name)) return -1;
  e = pl_slot(dir, name, 1);
  if (e < 0) return -1;
  if (pl->slots[e].cur < 0) {
    if (lstat(path, &sb) != 0) return -1;
    pl->slots[e].cur = pl_new_node(S_ISDIR(sb.st_mode));
  }
  return pl->slots[e].cur;
}

/* The node of a directory path (root is node 0). */
static int pl_dir_of(const char *path) {
  if (strcmp(path, pl->root) == 0) return 0;
  return pl_node_of(path);
}

static void pl_shadow_path(char *out, size_t cap, int node) {
  snprintf(out, cap, "%s/%d", pl->shadow, node);
}

/* A sync of a file: its content now becomes its durable content. It is
** read through the descriptor synced (which may be open for writing only,
** hence the reopening through /proc), or by path for SQLite's files. */
static void pl_sync_file(int node, int fd, const char *path) {
  char sp[2048], buf[65536], via[64];
  int in, out;
  uint64_t off = 0;
  ssize_t k;
  if (node < 0) return;
  snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
  in = open(fd >= 0 ? via : path, O_RDONLY | O_CLOEXEC);
  ASSERT_MSG(in >= 0, "cannot read %s to record its sync: %s", path, strerror(errno));
  pl_shadow_path(sp, sizeof sp, node);
  out = open(sp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  ASSERT(out >= 0);
  while ((k = pread(in, buf, sizeof buf, (off_t)off)) > 0) {
    ASSERT(write(out, buf, (size_t)k) == k);
    off += (uint64_t)k;
  }
  ASSERT(k == 0);
  close(out);
  close(in);
  pl->nodes[node].shadow = 1;
}

/* A sync of a directory: its entries now are its durable entries. The real
** listing is read first, so that names made or removed by what the model
** does not watch count as they are. */
static void pl_sync_dir(const char *path) {
  int d = pl_dir_of(path);
  DIR *dh;
  struct dirent *de;
  if (d < 0) return;
  for (int i = 0; i < PL_SLOTS; i++) {
    pl_entry *e = &pl->slots[i];
    if (e->used && e->parent == d && e->cur >= 0) {
      char real[4096];
      struct stat sb;
      snprintf(real, sizeof real, "%s/%s", path, e->name);
      if (lstat(real, &sb) != 0) e->cur = -1;
    }
  }
  dh = opendir(path);
  if (dh) {
    while ((de = readdir(dh)) != NULL) {
      char real[4096];
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
      snprintf(real, sizeof real, "%s/%s", path, de->d_name);
      pl_node_of(real);
    }
    closedir(dh);
  }
  for (int i = 0; i < PL_SLOTS; i++) {
    pl_entry *e = &pl->slots[i];
    if (e->used && e->parent == d) e->dur = e->cur;
  }
}

static void pl_sync_parent(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) return;
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  if (pl_under_root(dir)) pl_sync_dir(dir);
}

/* Which operations can change what is on disk (and so make a crash point). */
static int pl_mutates(const tf_call *c) {
  switch (c->kind) {
    case TF_OPEN: return (c->flags & (SL_FS_CREATE | SL_FS_TRUNCATE)) != 0;
    case TF_WRITE: case TF_SYNC: case TF_TRUNCATE: case TF_MKDIR: case TF_RMDIR:
    case TF_UNLINK: case TF_RENAME: case TF_SYNCDIR:
      return 1;
    case TV_OPEN: return (c->flags & SQLITE_OPEN_CREATE) != 0;
    case TV_WRITE: case TV_TRUNCATE: case TV_SYNC: case TV_DELETE: return 1;
    default: return 0;
  }
}

/* Before an operation: the model is locked until after(); the crash point
** kills the process here, between two operations. */
static int pl_before(void *ud, tf_call *c) {
  (void)ud;
  pthread_mutex_lock(&pl->mu);
  if (c->path && pl_under_root(c->path) && pl_mutates(c)) {
    pl->ops++;
    if (pl->crash_at && pl->ops >= pl->crash_at) kill(getpid(), SIGKILL);
  }
  return 0;
}

static void pl_after(void *ud, tf_call *c) {
  char name[PL_NAME];
  int dir, e;
  (void)ud;
  if (c->failed || !c->path || !pl_under_root(c->path)) {
    if (c->kind == TF_CLOSE && c->fd >= 0 && c->fd < TF_MAXFD) pl_fdnode[c->fd] = -1;
    pthread_mutex_unlock(&pl->mu);
    return;
  }
  switch (c->kind) {
    case TF_OPEN:
    case TV_OPEN:
      if (c->created && pl_split(c->path, &dir, name) && (e = pl_slot(dir, name, 1)) >= 0)
        pl->slots[e].cur = pl_new_node(0);
      if (c->kind == TF_OPEN && c->fd >= 0 && c->fd < TF_MAXFD) pl_fdnode[c->fd] = pl_node_of(c->path);
      break;
    case TF_CLOSE:
      if (c->fd >= 0 && c->fd < TF_MAXFD) pl_fdnode[c->fd] = -1;
      break;
    case TF_SYNC:
      pl_sync_file(c->fd >= 0 && c->fd < TF_MAXFD ? pl_fdnode[c->fd] : -1, c->fd, c->path);
      break;
    case TV_SYNC:
      pl_sync_file(pl_node_of(c->path), -1, c->path);
      if (c->dirsync) pl_sync_parent(c->path);
      break;
    case TF_MKDIR:
      if (pl_split(c->path, &dir, name) && (e = pl_slot(dir, name, 1)) >= 0)
        pl->slots[e].cur = pl_new_node(1);
      break;
    case TF_RMDIR:
    case TF_UNLINK:
    case TV_DELETE:
      if (pl_split(c->path, &dir, name) && (e = pl_slot(dir, name, 0)) >= 0) pl->slots[e].cur = -1;
      if (c->kind == TV_DELETE && c->dirsync) pl_sync_parent(c->path);
      break;
    case TF_RENAME: {
      int from = -1, node = -1, d2;
      char name2[PL_NAME];
      if (pl_split(c->path, &dir, name) && (from = pl_slot(dir, name, 0)) >= 0)
        node = pl->slots[from].cur;
      if (c->path2 && pl_split(c->path2, &d2, name2) && (e = pl_slot(d2, name2, 1)) >= 0) {
        if (node < 0) node = pl_new_node(0); /* a file the model did not see made */
        pl->slots[e].cur = node;
      }
      if (from >= 0) pl->slots[from].cur = -1;
      break;
    }
    case TF_SYNCDIR:
      pl_sync_dir(c->path);
      break;
    default:
      break;
  }
  pthread_mutex_unlock(&pl->mu);
}

static const tf_hooks pl_hooks = {pl_before, pl_after, NULL};

/* Everything under root is durable as it is now: the model starts over. */
static void pl_init_walk(const char *path, int node) {
  DIR *d = opendir(path);
  struct dirent *de;
  ASSERT_MSG(d, "cannot read %s", path);
  while ((de = readdir(d)) != NULL) {
    char sub[4096];
    struct stat sb;
    int e, child;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
    ASSERT(lstat(sub, &sb) == 0);
    e = pl_slot(node, de->d_name, 1);
    ASSERT(e >= 0);
    child = pl_new_node(S_ISDIR(sb.st_mode));
    pl->slots[e].cur = pl->slots[e].dur = child;
    if (S_ISDIR(sb.st_mode)) pl_init_walk(sub, child);
    else pl_sync_file(child, -1, sub);
  }
  closedir(d);
}

static void pl_model_init(void) {
  pthread_mutexattr_t a;
  char root[1024], shadow[1024];
  snprintf(root, sizeof root, "%s", pl->root);
  snprintf(shadow, sizeof shadow, "%s", pl->shadow);
  memset(pl, 0, sizeof *pl);
  snprintf(pl->root, sizeof pl->root, "%s", root);
  snprintf(pl->shadow, sizeof pl->shadow, "%s", shadow);
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&pl->mu, &a);
  pthread_mutexattr_destroy(&a);
  tf_tree_remove(pl->shadow);
  ASSERT_EQ(mkdir(pl->shadow, 0777), 0);
  pl->nnodes = 0;
  pl_new_node(1); /* node 0: root, durable */
  pl_init_walk(pl->root, 0);
  ASSERT_MSG(!pl->overflow, "the model overflowed");
}

/* ---- applying a power loss ---------------------------------------------------------- */

typedef struct pl_stats {
  long files, dropped, kept, garbled, resized, dirs_current, entries_lost, entries_extra;
} pl_stats;

static char *pl_read_all(const char *path, size_t *n) {
  char *p = su_read_file(path, n);
  if (!p) {
    p = malloc(1);
    ASSERT(p);
    *n = 0;
  }
  return p;
}

/* Every node's path in the tree as it is now (before the crash is applied). */
static void pl_current_paths(char **paths, int node, const char *path) {
  for (int i = 0; i < PL_SLOTS; i++) {
    pl_entry *e = &pl->slots[i];
    char sub[4096];
    if (!e->used || e->parent != node || e->cur < 0) continue;
    snprintf(sub, sizeof sub, "%s/%s", path, e->name);
    if (!paths[e->cur]) paths[e->cur] = strdup(sub);
    if (pl->nodes[e->cur].is_dir) pl_current_paths(paths, e->cur, sub);
  }
}

/* The content a file has after the power loss: its durable content D, with
** what was written since (the current content C) dropped, kept, or mixed
** sector by sector with garbage. */
static void pl_write_crashed_file(const char *dst, int node, char **paths, su_rng *r,
                                  pl_stats *st) {
  char sp[2048], *d, *c, *out;
  size_t nd = 0, nc = 0, len;
  int fd, how;
  pl_shadow_path(sp, sizeof sp, node);
  if (pl->nodes[node].shadow) {
    d = pl_read_all(sp, &nd);
  } else { /* never synced: nothing of it is durable */
    d = malloc(1);
    ASSERT(d);
  }
  if (paths[node]) c = pl_read_all(paths[node], &nc);
  else {
    c = malloc(nd + 1);
    ASSERT(c);
    memcpy(c, d, nd);
    nc = nd;
  }
  st->files++;
  if (nd == nc && memcmp(d, c, nd) == 0) {
    out = d;
    len = nd;
  } else {
    how = (int)su_rand_below(r, 10);
    if (how < 4) { /* nothing since the last sync reached the disk */
      out = d;
      len = nd;
      st->dropped++;
    } else if (how < 6) { /* all of it did */
      out = c;
      len = nc;
      st->kept++;
    } else { /* some sectors did, some hold garbage; the size is either */
      size_t lo = nd < nc ? nd : nc, hi = nd < nc ? nc : nd;
      uint32_t pick = su_rand_below(r, 3);
      len = pick == 0 ? nd : pick == 1 ? nc : lo + (hi > lo ? su_rand_below(r, (uint32_t)(hi - lo + 1)) : 0);
      out = malloc(len + 1);
      ASSERT(out);
      for (size_t s = 0; s < len; s += 512) {
        size_t k = len - s < 512 ? len - s : 512;
        unsigned char a[512], b[512];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        if (s < nd) memcpy(a, d + s, nd - s < k ? nd - s : k);
        if (s < nc) memcpy(b, c + s, nc - s < k ? nc - s : k);
        /* only what is not durable can be lost or garbled: bytes written
        ** since the last sync (they differ) and bytes past the synced size
        ** (a write tears only the bytes it writes, as SQLite assumes by
        ** default: "powersafe overwrite") */
        uint32_t how_sector = su_rand_below(r, 3);
        for (size_t i = 0; i < k; i++) {
          int synced = s + i < nd && a[i] == b[i];
          if (synced || how_sector == 0) out[s + i] = (char)a[i];
          else if (how_sector == 1) out[s + i] = (char)b[i];
          else out[s + i] = (char)su_rand(r);
        }
      }
      st->garbled++;
      if (len != nd && len != nc) st->resized++;
    }
  }
  fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  ASSERT(fd >= 0);
  ASSERT(len == 0 || write(fd, out, len) == (ssize_t)len);
  close(fd);
  if (out != d && out != c) free(out);
  free(d);
  free(c);
}

static void pl_materialize(int node, const char *dst, char **paths, su_rng *r, pl_stats *st,
                           int depth) {
  /* a directory keeps its durable entries, or now and then (the file system
  ** committed them) all of its current ones */
  int current = su_rand_below(r, 10) < 3;
  ASSERT(depth < 32);
  st->dirs_current += current;
  for (int i = 0; i < PL_SLOTS; i++) {
    pl_entry *e = &pl->slots[i];
    int child;
    char sub[4096];
    if (!e->used || e->parent != node) continue;
    child = current ? e->cur : e->dur;
    if (e->dur >= 0 && child < 0) st->entries_lost++;
    if (e->dur < 0 && child >= 0) st->entries_extra++;
    if (child < 0) continue;
    snprintf(sub, sizeof sub, "%s/%s", dst, e->name);
    if (pl->nodes[child].is_dir) {
      ASSERT_EQ(mkdir(sub, 0777), 0);
      pl_materialize(child, sub, paths, r, st, depth + 1);
    } else {
      pl_write_crashed_file(sub, child, paths, r, st);
    }
  }
}

/* The power loss: the tree under root becomes what survives it. */
static void pl_apply_crash(uint64_t seed, pl_stats *st) {
  char **paths = calloc(PL_NODES, sizeof *paths), crashed[1100], old[1100];
  su_rng r = {seed | 1};
  ASSERT(paths);
  ASSERT_MSG(!pl->overflow, "the model overflowed");
  pl_current_paths(paths, 0, pl->root);
  snprintf(crashed, sizeof crashed, "%s.crashed", pl->root);
  snprintf(old, sizeof old, "%s.old", pl->root);
  tf_tree_remove(crashed);
  tf_tree_remove(old);
  ASSERT_EQ(mkdir(crashed, 0777), 0);
  pl_materialize(0, crashed, paths, &r, st, 0);
  ASSERT_EQ(rename(pl->root, old), 0);
  ASSERT_EQ(rename(crashed, pl->root), 0);
  tf_tree_remove(old);
  for (int i = 0; i < PL_NODES; i++) free(paths[i]);
  free(paths);
  pl_model_init();
}

/* ---- the job ------------------------------------------------------------------------- */

typedef struct pl_run {
  int64_t count;
  long crash_at;             /* 0: no crash */
  char log[1100];            /* the job's log lines, outside root */
} pl_run;

#define PL_KEYS 13

static void pl_log(void *ud, const char *line) {
  FILE *f = fopen((const char *)ud, "a");
  if (f) {
    fprintf(f, "%s\n", line);
    fclose(f);
  }
}

static const char *pl_path(const char *rel) {
  static char buf[8][2048];
  static int i;
  i = (i + 1) % 8;
  return su_pathf(buf[i], sizeof buf[i], "%s/%s", pl->root, rel);
}

/* The child: the job over the model's table and VFS. */
static int pl_job(void *arg) {
  pl_run *c = arg;
  sl_job_config cfg;
  sl_generator_config gen;
  sl_source src;
  sl_operator check, sink;
  sl_job *job = NULL;
  int rc;
  for (int i = 0; i < TF_MAXFD; i++) pl_fdnode[i] = -1;
  tf_setup(&pl_hooks);
  pl->ops = 0;
  pl->crash_at = c->crash_at;
  sl_job_config_init(&cfg);
  cfg.state_dir = pl_path("state");
  cfg.checkpoint_dir = pl_path("chk");
  cfg.checkpoint_interval_ms = 5;
  cfg.channel_capacity = 64;
  cfg.fs = &tf_g.fs;
  cfg.vfs = "tf";
  cfg.log = pl_log;
  cfg.log_ud = c->log;
  memset(&gen, 0, sizeof gen);
  gen.count = c->count;
  gen.keys = PL_KEYS;
  gen.records_per_read = 8;
  gen.delay_us_per_read = 300;
  sl_generator_source(&src, &gen);
  sdk_checker(&check);
  sl_file_sink(&sink, pl_path("out.txt"));
  rc = sdk_checked_job(&cfg, "gen", &src, 2, &check, &sink, &job);
  if (rc == SL_OK) rc = sl_job_run(job);
  if (rc) fprintf(stderr, "job: %s: %s\n", sl_errstr(rc), sl_errmsg(job));
  sl_job_free(job);
  tf_teardown();
  return rc ? 1 : 0;
}

/* Runs the job in a child; 1 if it crashed at its crash point, 0 if it
** ended by itself (successfully). */
static int pl_run_job(pl_run *c) {
  int st;
  unlink(c->log);
  st = sdk_run_child(pl_job, c);
  if (st == 128 + SIGKILL) {
    ASSERT_MSG(c->crash_at, "the job died by SIGKILL without a crash point");
    return 1;
  }
  ASSERT_MSG(st == 0, "the job ended with status %d (crash point %ld)", st, c->crash_at);
  return 0;
}

/* The largest id in the log lines "checkpoint <id> complete", and the id of
** "restored from checkpoint <id>" (-1: no such line). */
static int64_t pl_log_announced(const char *log, int64_t *restored) {
  char *t = sdk_read(log), *p = t;
  int64_t max = 0;
  *restored = -1;
  while (*p) {
    long long id;
    char *nl = strchr(p, '\n');
    if (sscanf(p, "checkpoint %lld complete", &id) == 1 && id > max) max = id;
    if (sscanf(p, "restored from checkpoint %lld", &id) == 1) *restored = id;
    if (!nl) break;
    p = nl + 1;
  }
  free(t);
  return max;
}

/* ---- what must hold after a power loss ---------------------------------------------------- */

/* Opens the database inside a snapshot file (decompressed into a scratch
** file; pl_snapshot_close() removes it). */
static sqlite3 *pl_snapshot_open(const char *zst) {
  char db[2048];
  sqlite3 *h = NULL;
  snprintf(db, sizeof db, "%s/snap.db", test_dir());
  unlink(db);
  ASSERT_MSG(sl_snapshot_extract(zst, db, 0) == SL_OK, "cannot extract %s", zst);
  ASSERT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
  return h;
}

static void pl_snapshot_close(sqlite3 *h) {
  char db[2048];
  sqlite3_close(h);
  snprintf(db, sizeof db, "%s/snap.db", test_dir());
  unlink(db);
}

typedef struct pl_check {
  int64_t newest;            /* X */
  int64_t announced;         /* the newest the job announced */
  int complete;              /* checkpoints with a MANIFEST */
} pl_check;

/* The checks before a restart; see the head of the file. */
static void pl_check_crashed(uint64_t seed, const char *log, int64_t floor, pl_check *out) {
  sl_chkdir_config cc;
  sl_chkdir *cd = NULL;
  const sl_chk_entry *e = NULL;
  int n = 0;
  int64_t restored, x = 0, published = 0;
  char path[2048];
  memset(out, 0, sizeof *out);
  out->announced = pl_log_announced(log, &restored);
  if (su_exists(pl_path("chk"))) {
    sl_chkdir_config_init(&cc);
    cc.flags = SL_CHKDIR_READONLY;
    SN_OK(sl_chkdir_open(pl_path("chk"), &cc, &cd), cd);
    SN_OK(sl_chkdir_list(cd, &e, &n), cd);
    for (int i = 0; i < n; i++) {
      if (e[i].kind != SL_CHECKPOINT || !e[i].complete) continue;
      ASSERT_MSG(e[i].valid, "seed %llu: the MANIFEST of %s does not parse",
                 (unsigned long long)seed, e[i].path);
      ASSERT_MSG(sl_chkdir_verify(cd, e[i].id, NULL) == SL_OK,
                 "seed %llu: checkpoint %lld survives with its MANIFEST but does not verify: %s",
                 (unsigned long long)seed, (long long)e[i].id, sl_errmsg(cd));
      out->complete++;
      if (e[i].id > x) x = e[i].id;
    }
    sl_chkdir_close(cd);
  }
  out->newest = x;
  ASSERT_MSG(x >= out->announced, "seed %llu: checkpoint %lld was announced complete before the "
             "crash, but after it the newest complete checkpoint is %lld",
             (unsigned long long)seed, (long long)out->announced, (long long)x);
  ASSERT_MSG(x >= floor, "seed %llu: before the run the newest complete checkpoint was %lld; "
             "after its crash it is %lld", (unsigned long long)seed, (long long)floor,
             (long long)x);
  if (x == 0) return;
  /* the output against the sink's and the checkers' state in X */
  {
    su_buf seen = {0, 0, 0}, want = {0, 0, 0};
    char *sorted_seen, *sorted_want, *out_txt;
    int64_t last[PL_KEYS];
    size_t nout = 0;
    sqlite3 *h;
    sqlite3_stmt *q;
    for (int k = 0; k < PL_KEYS; k++) last[k] = -1;
    for (int i = 0; i < 2; i++) {
      snprintf(path, sizeof path, "%s/chk-%lld/check/%d.db.zst", pl_path("chk"), (long long)x, i);
      h = pl_snapshot_open(path);
      ASSERT(sqlite3_prepare_v2(h, "SELECT key, last_seq FROM last", -1, &q, NULL) == SQLITE_OK);
      while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t k = sqlite3_column_int64(q, 0);
        if (k >= 0 && k < PL_KEYS) last[k] = sqlite3_column_int64(q, 1);
      }
      sqlite3_finalize(q);
      pl_snapshot_close(h);
    }
    snprintf(path, sizeof path, "%s/chk-%lld/sink/0.db.zst", pl_path("chk"), (long long)x);
    h = pl_snapshot_open(path);
    ASSERT(sqlite3_prepare_v2(h, "SELECT value FROM sl_bc_published WHERE name = 'bytes'", -1, &q,
                              NULL) == SQLITE_OK);
    if (sqlite3_step(q) == SQLITE_ROW) published = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    out_txt = pl_read_all(pl_path("out.txt"), &nout);
    ASSERT_MSG((int64_t)nout >= published, "seed %llu: %s holds %zu bytes, but checkpoint %lld "
               "records %lld bytes published", (unsigned long long)seed, pl_path("out.txt"), nout,
               (long long)x, (long long)published);
    ASSERT_MSG(published == 0 || out_txt[published - 1] == '\n',
               "seed %llu: the published output ends inside a line", (unsigned long long)seed);
    su_addf(&seen, "%.*s", (int)published, out_txt);
    ASSERT(sqlite3_prepare_v2(h, "SELECT line FROM sl_op_pending ORDER BY seq", -1, &q, NULL) ==
           SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW)
      su_addf(&seen, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    pl_snapshot_close(h);
    su_addf(&want, "%s", "");
    for (int k = 0; k < PL_KEYS; k++)
      for (int64_t s = 0; s <= last[k]; s++) su_addf(&want, "%d\t%lld\t\n", k, (long long)s);
    sorted_seen = sdk_sorted(seen.p);
    sorted_want = sdk_sorted(want.p);
    ASSERT_MSG(strcmp(sorted_seen, sorted_want) == 0,
               "seed %llu: the published and pending output of checkpoint %lld are not exactly "
               "the records its checkers had seen (%zu bytes against %zu)",
               (unsigned long long)seed, (long long)x, strlen(sorted_seen), strlen(sorted_want));
    free(sorted_seen);
    free(sorted_want);
    free(seen.p);
    free(want.p);
    free(out_txt);
  }
}

/* The last run's output and state: those of a run that never crashed. */
static void pl_check_final(int64_t count) {
  char *text = sdk_read(pl_path("out.txt")), *sorted, *e;
  su_buf want = {0, 0, 0};
  ASSERT_MSG(!strstr(text, "GAP") && !strstr(text, "DUP"), "a gap or a duplicate in the output");
  su_addf(&want, "%s", "");
  for (int64_t i = 0; i < count; i++)
    su_addf(&want, "%lld\t%lld\t\n", (long long)(i % PL_KEYS), (long long)(i / PL_KEYS));
  sorted = sdk_sorted(text);
  e = sdk_sorted(want.p);
  ASSERT_MSG(strcmp(sorted, e) == 0, "the output differs from an uninterrupted run's (%zu bytes, "
             "want %zu)", strlen(sorted), strlen(e));
  free(e);
  free(sorted);
  free(text);
  free(want.p);
}

/* ---- the test ------------------------------------------------------------------------------ */

/* The seed: SL_TEST_SEED when set (to replay the crash points and what each
** power loss keeps; the threads' timing is not replayed), else the clock. */
static uint64_t pl_seed(uint64_t salt) {
  const char *e = getenv("SL_TEST_SEED");
  if (e && *e) return strtoull(e, NULL, 10);
  return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << salt);
}

static void pl_setup(void) {
  pl = mmap(NULL, sizeof *pl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT(pl != MAP_FAILED);
  memset(pl, 0, sizeof(pl->root) + sizeof(pl->shadow) + sizeof(pl->mu));
  snprintf(pl->root, sizeof pl->root, "%s/pl", test_dir());
  snprintf(pl->shadow, sizeof pl->shadow, "%s/shadow", test_dir());
}

static void pl_fresh(void) {
  tf_tree_remove(pl->root);
  ASSERT_EQ(mkdir(pl->root, 0777), 0);
  pl_model_init();
}

TEST(rel_power_loss_job) {
  const int64_t count = test_long() ? 6000 : 3000;
  const int sweep = test_long() ? 150 : 16, randoms = test_long() ? 150 : 8;
  uint64_t seed = pl_seed(20);
  pl_run run;
  pl_stats st;
  long total;
  int crashes = 0, restarts_checked = 0, announced_max = 0, maxcomplete = 0;
  pl_setup();
  memset(&run, 0, sizeof run);
  memset(&st, 0, sizeof st);
  run.count = count;
  snprintf(run.log, sizeof run.log, "%s/log.txt", test_dir());
  printf("power loss seed %llu\n", (unsigned long long)seed);
  /* a run without a crash: how many mutating operations one makes */
  pl_fresh();
  ASSERT_EQ(pl_run_job(&run), 0);
  total = pl->ops;
  pl_check_final(count);
  ASSERT_MSG(total > 100, "a run made only %ld mutating operations", total);
  for (int chain = 0; chain < sweep + randoms; chain++) {
    uint64_t s = seed + (uint64_t)chain * 7919;
    su_rng r = {s | 1};
    int64_t floor = 0;
    pl_fresh();
    /* a crash at a point of a sweep over a run (or a random one), then a
    ** restart that crashes at a random point, then one that finishes */
    for (int k = 0; k < 3; k++) {
      pl_check c;
      int64_t restored = -1;
      if (k == 0)
        run.crash_at = chain < sweep ? 1 + (long)chain * total / sweep
                                     : 1 + (long)su_rand_below(&r, (uint32_t)total);
      else
        run.crash_at = k == 1 ? 1 + (long)su_rand_below(&r, (uint32_t)total) : 0;
      if (!pl_run_job(&run)) {
        pl_log_announced(run.log, &restored);
        if (k > 0) {
          ASSERT_MSG(restored == (floor ? floor : -1), "seed %llu: the restart restored "
                     "checkpoint %lld, the newest complete one is %lld",
                     (unsigned long long)(s + (uint64_t)k - 1), (long long)restored,
                     (long long)floor);
          restarts_checked++;
        }
        break; /* finished */
      }
      if (k > 0 && (pl_log_announced(run.log, &restored), restored >= 0)) {
        ASSERT_MSG(restored == floor, "seed %llu: the restart restored checkpoint %lld, the "
                   "newest complete one is %lld", (unsigned long long)(s + (uint64_t)k - 1),
                   (long long)restored, (long long)floor);
        restarts_checked++;
      }
      crashes++;
      pl_apply_crash(s + (uint64_t)k, &st);
      pl_check_crashed(s + (uint64_t)k, run.log, floor, &c);
      floor = c.newest;
      if (c.announced > announced_max) announced_max = (int)c.announced;
      if (c.complete > maxcomplete) maxcomplete = c.complete;
      ASSERT_MSG(k < 2, "the run without a crash point crashed");
    }
    pl_check_final(count);
  }
  printf("%d chains, %d power losses (%ld mutating operations in a run; %ld files: %ld lost what "
         "was written since their last sync, %ld kept it, %ld garbled, %ld of them resized; "
         "%ld directories kept their current entries, %ld durable entries undone, %ld unsynced "
         "ones kept), %d restarts checked, newest announced checkpoint %d, up to %d complete "
         "after a crash, 0 violations\n",
         sweep + randoms, crashes, total, st.files, st.dropped, st.kept, st.garbled, st.resized,
         st.dirs_current, st.entries_lost, st.entries_extra, restarts_checked, announced_max,
         maxcomplete);
  munmap(pl, sizeof *pl);
}

/* ---- operations that must be durable once they returned -------------------------------- */

typedef struct pl_op {
  int what;                  /* 0: restore into a fresh directory; 1: a savepoint */
} pl_op;

/* The child: the operation over the model's table and VFS, then the power
** goes. */
static int pl_op_child(void *arg) {
  const pl_op *o = arg;
  sl_chkdir_config cfg;
  sl_chkdir *cd = NULL;
  int rc;
  for (int i = 0; i < TF_MAXFD; i++) pl_fdnode[i] = -1;
  tf_setup(&pl_hooks);
  pl->crash_at = 0;
  sl_chkdir_config_init(&cfg);
  cfg.fs = &tf_g.fs;
  cfg.vfs = "tf";
  cfg.keep = 5;
  rc = sl_chkdir_open(pl_path("chk"), &cfg, &cd);
  if (rc == SL_OK && o->what == 0) {
    rc = sl_chkdir_restore(cd, 0, NULL, pl_path("restored"), NULL, 0, NULL);
  } else if (rc == SL_OK) {
    sl_store *st[2] = {NULL, NULL};
    sl_snapshot_info info[2];
    sl_snapshot_config sc;
    const char *target = NULL;
    sl_config c;
    sl_config_init(&c);
    c.vfs = "tf";
    sl_snapshot_config_init(&sc);
    sc.fs = &tf_g.fs;
    rc = sl_chkdir_target(cd, 0, "sp", &target);
    for (int i = 0; i < 2 && rc == SL_OK; i++) {
      sl_snapshot *sn = NULL;
      rc = sl_store_open(pl_path("state"), "wc", i, 2, &c, &st[i]);
      if (rc == SL_OK) rc = sl_snapshot_begin(st[i], target, 9, SL_SAVEPOINT, &sc, &sn);
      if (rc == SL_OK) rc = sl_snapshot_write(sn);
      if (rc == SL_OK) rc = sl_snapshot_get_info(sn, &info[i]);
      if (sn && sl_snapshot_end(sn) != SL_OK && rc == SL_OK) rc = SL_ERROR;
    }
    if (rc == SL_OK) rc = sl_chkdir_publish(cd, 9, "sp", info, 2);
    for (int i = 0; i < 2; i++) sl_store_close(st[i]);
  }
  if (rc) fprintf(stderr, "%s: %s\n", sl_errstr(rc), sl_errmsg(cd));
  sl_chkdir_close(cd);
  if (rc) return 1;
  kill(getpid(), SIGKILL); /* it returned: now the power goes */
  return 2;
}

static void pl_fill_stores(void) {
  sl_store *st[2];
  sn_states s[2];
  sl_config c;
  sl_config_init(&c);
  for (int i = 0; i < 2; i++) {
    ASSERT_OK(sl_store_open(pl_path("state"), "wc", i, 2, &c, &st[i]), st[i]);
    sn_register(st[i], &s[i]);
  }
  for (int64_t k = 0; k < 300; k++) {
    sl_value key = sl_int(k);
    int kg = 0, o = 0;
    ASSERT_OK(sl_key_group(&key, 1, 128, &kg), NULL);
    ASSERT_OK(sl_key_group_owner(128, 2, kg, &o), NULL);
    sn_put_key(st[o], &s[o], k, 1);
  }
  for (int i = 0; i < 2; i++) {
    su_commit(st[i]);
    su_close(st[i]);
  }
}

TEST(rel_power_loss_after_restore_and_savepoint) {
  const int rounds = test_long() ? 40 : 8;
  uint64_t seed = pl_seed(16);
  char *want[2];
  pl_stats st;
  pl_setup();
  memset(&st, 0, sizeof st);
  printf("power loss seed %llu\n", (unsigned long long)seed);
  for (int what = 0; what < 2; what++) {
    for (int round = 0; round < rounds; round++) {
      pl_op o = {what};
      char db[2048];
      int rc;
      sl_chkdir *cd = NULL;
      /* the state files and checkpoint 1, made without the model: durable */
      tf_tree_remove(pl->root);
      ASSERT_EQ(mkdir(pl->root, 0777), 0);
      pl_fill_stores();
      {
        sl_store *sts[2];
        sl_config c;
        sl_config_init(&c);
        for (int i = 0; i < 2; i++) ASSERT_OK(sl_store_open(pl_path("state"), "wc", i, 2, &c,
                                                            &sts[i]), sts[i]);
        SN_OK(sl_chkdir_open(pl_path("chk"), NULL, &cd), cd);
        sn_checkpoint(cd, sts, 2, 1, NULL);
        sl_chkdir_close(cd);
        for (int i = 0; i < 2; i++) su_close(sts[i]);
      }
      for (int i = 0; i < 2; i++) {
        su_db_path(db, sizeof db, pl_path("state"), "wc", i);
        want[i] = su_dump_states(db);
      }
      pl_model_init();
      ASSERT_EQ(sdk_run_child(pl_op_child, &o), 128 + SIGKILL);
      pl_apply_crash(seed + (uint64_t)(what * 1000 + round), &st);
      if (what == 0) { /* the restored files are there, whole */
        for (int i = 0; i < 2; i++) {
          char *got;
          su_db_path(db, sizeof db, pl_path("restored"), "wc", i);
          ASSERT_MSG(su_exists(db), "seed %llu: %s is gone after the power loss, though the "
                     "restore had returned", (unsigned long long)(seed + (uint64_t)round), db);
          got = su_dump_states(db);
          ASSERT_MSG(strcmp(got, want[i]) == 0, "seed %llu: %s differs from the checkpoint",
                     (unsigned long long)(seed + (uint64_t)round), db);
          free(got);
        }
      } else { /* the savepoint is there, verifies and restores */
        sl_chkdir_config cc;
        sl_chkdir_config_init(&cc);
        cc.flags = SL_CHKDIR_READONLY;
        SN_OK(sl_chkdir_open(pl_path("chk"), &cc, &cd), cd);
        rc = sl_chkdir_verify(cd, 0, "sp");
        ASSERT_MSG(rc == SL_OK, "seed %llu: the savepoint does not survive the power loss: %s: %s",
                   (unsigned long long)(seed + (uint64_t)(1000 + round)), sl_errstr(rc),
                   sl_errmsg(cd));
        sl_chkdir_close(cd);
        SN_OK(sl_chkdir_open(pl_path("chk"), NULL, &cd), cd);
        SN_OK(sl_chkdir_restore(cd, 0, "sp", pl_path("r"), NULL, 0, NULL), cd);
        sl_chkdir_close(cd);
        for (int i = 0; i < 2; i++) {
          char *got;
          su_db_path(db, sizeof db, pl_path("r"), "wc", i);
          got = su_dump_states(db);
          ASSERT(strcmp(got, want[i]) == 0);
          free(got);
        }
      }
      for (int i = 0; i < 2; i++) free(want[i]);
    }
  }
  printf("%d power losses after a restore into a fresh directory and %d after a savepoint of "
         "stopped stores (%ld files: %ld lost unsynced writes, %ld garbled; %ld durable entries "
         "undone): 0 violations\n", rounds, rounds, st.files, st.dropped, st.garbled,
         st.entries_lost);
  munmap(pl, sizeof *pl);
}
