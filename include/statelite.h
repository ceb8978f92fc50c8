/*
** statelite.h — the public interface of statelite.
**
** statelite keeps the state of stream operators in one SQLite file per operator
** instance. This header is the whole contract and its manual: every public type
** and call is declared and documented here, and nothing else is exported.
**
** Conventions used throughout:
**   - Every call returns an int result code (SL_OK on success); results go out
**     through pointers. Result code numbers never change.
**   - After a failure, sl_errmsg(handle) gives a sentence naming what was wrong.
**   - Handles are opaque. Destructors accept NULL.
**   - A handle is used by one thread at a time. Different handles may be used
**     by different threads concurrently.
**   - Memory returned by a call is owned by the library unless the call says
**     otherwise, and stays valid until the next call on the same store.
*/
#ifndef STATELITE_H
#define STATELITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SL_API
#define SL_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

/* SL_VERSION_NUMBER is major*1000000 + minor*1000 + patch. */
#define SL_VERSION        "0.1.0"
#define SL_VERSION_NUMBER 1000
/* The state file format this library writes (PRAGMA user_version). */
#define SL_FORMAT_VERSION 1
/* PRAGMA application_id of every statelite state file: "SLT1". */
#define SL_APPLICATION_ID 0x534C5431

/* The version of the library linked in, as SL_VERSION_NUMBER / SL_VERSION. */
SL_API int sl_libversion_number(void);
SL_API const char *sl_libversion(void);

/* ------------------------------------------------------------------------ */
/* Result codes                                                              */
/* ------------------------------------------------------------------------ */

#define SL_OK        0  /* success */
#define SL_ERROR     1  /* generic failure; see sl_errmsg() */
#define SL_NOTFOUND  2  /* the thing asked for does not exist (no value, no state) */
#define SL_MISUSE    3  /* the call was wrong: NULL argument, wrong kind, wrong type,
                           key outside this instance's key groups, closed handle */
#define SL_NOMEM     4  /* an allocation failed */
#define SL_CORRUPT   5  /* a file is damaged or is not what it claims to be */
#define SL_FULL      6  /* the disk (or a configured budget) is full */
#define SL_MISMATCH  7  /* a file or descriptor does not match what it must match:
                           another operator, an incompatible schema change */
#define SL_IOERR     8  /* an operating system call failed */
#define SL_BUSY      9  /* the file is locked by another connection */
#define SL_ROW       100 /* sl_iter_next(): a row is ready */
#define SL_DONE      101 /* sl_iter_next(): no more rows */

/* A short English name of a result code ("SL_MISUSE: misuse of the interface").
** Never NULL; unknown codes give "unknown result code". Static memory. */
SL_API const char *sl_errstr(int rc);

/* The sentence describing the last failure on `handle`, which may be any
** statelite handle (sl_store *, sl_state *, sl_iter *). Returns "not an error"
** when the last call on that handle's store succeeded, and a fixed sentence
** for a NULL handle. Valid until the next call on the same store. */
SL_API const char *sl_errmsg(const void *handle);

/* ------------------------------------------------------------------------ */
/* Allocator                                                                 */
/* ------------------------------------------------------------------------ */

/* Every allocation statelite makes goes through one of these. SQLite's own
** allocations are SQLite's business (see sqlite3_config(), which statelite
** never calls). xRealloc(ud, NULL, n) must act as malloc; xFree(ud, NULL) must
** be harmless. A NULL sl_allocator pointer means the C library's allocator. */
typedef struct sl_allocator {
  void *(*xMalloc)(void *ud, size_t n);
  void *(*xRealloc)(void *ud, void *p, size_t n);
  void (*xFree)(void *ud, void *p);
  void *ud;
} sl_allocator;

/* ------------------------------------------------------------------------ */
/* File system                                                               */
/* ------------------------------------------------------------------------ */

/* Every file-system call statelite makes for checkpoints and savepoints
** (snapshot files, MANIFESTs), restore, retention and garbage removal, and
** for the SDK's file source and exactly-once file sink goes through one of
** these functions, so that a program can put its own file layer underneath
** and tests can fail or simulate any call (a power loss, a full disk). What
** SQLite does with a database file is SQLite's business and goes through an
** SQLite VFS instead (sl_config.vfs, sl_chkdir_config.vfs); statelite's own
** directory creation for state files (sl_store_open()) is plain POSIX.
**
** A NULL sl_fs pointer means POSIX. A NULL function in a table means the
** POSIX call too, so a table may replace only some calls -- it must then
** hand out real file descriptors (and DIR pointers of opendir(3)) as
** handles, since the POSIX calls will get them -- or all of them, and then
** handles are whatever it likes (file handles >= 0).
** The table is copied when a handle is made (sl_chkdir_open(),
** sl_snapshot_begin(), sl_job_new()); `ud` must stay valid while any of
** them is in use.
**
** Conventions, those of POSIX: on failure a function returns -1 (xOpenDir
** NULL) and sets errno. statelite turns ENOSPC and EDQUOT into SL_FULL,
** ENOMEM into SL_NOMEM and any other errno into SL_IOERR, with
** strerror(errno) in the message; ENOENT where a name may be missing is no
** error (removing what is gone) or a finding (SL_NOTFOUND for what was
** asked for, SL_CORRUPT for a checkpoint that lacks a file). xRead and
** xWrite are called again after EINTR and after a short count. A failed
** xClose of a file statelite wrote fails the operation (close can report a
** failed write); of a file it only read, like a failed xCloseDir, it is
** ignored: what was read is complete.
**
** Threads: the functions are called from several threads at once (the SDK
** writes snapshots on a thread of its own while operators run on theirs,
** and sl_snapshot_write() may run on any thread), also on different
** handles; one file or directory handle is used by one thread at a time.
**
** Durability: statelite calls xSync on a file and xSyncDir on its directory
** wherever it needs a file's content and name to survive a power loss
** (docs/FORMAT.md, "Durability"); a table that makes them do nothing makes
** checkpoints as fragile as the operating system's write-back. */

/* xOpen flags. */
#define SL_FS_READ     1  /* open for reading */
#define SL_FS_WRITE    2  /* open for writing (with SL_FS_READ: both) */
#define SL_FS_CREATE   4  /* create the file when it does not exist (mode 0666
                             less the umask) */
#define SL_FS_TRUNCATE 8  /* an existing file is cut to 0 bytes */

/* xStat flags and file types. */
#define SL_FS_NOFOLLOW 1  /* look at a symbolic link itself (lstat) */
#define SL_FS_FILE     1  /* a regular file */
#define SL_FS_DIR      2  /* a directory */
#define SL_FS_OTHER    3  /* anything else: a symbolic link (with
                             SL_FS_NOFOLLOW), a device, a socket */

typedef struct sl_fs_stat {
  int type;                  /* SL_FS_FILE, SL_FS_DIR or SL_FS_OTHER */
  uint64_t size;             /* bytes, for a regular file */
} sl_fs_stat;

typedef struct sl_fs {
  /* Opens (SL_FS_* flags) and returns a handle >= 0 (open(2)). */
  int (*xOpen)(void *ud, const char *path, int flags);
  /* Reads up to n bytes at offset off: the count read, 0 at the end of the
  ** file (pread(2)). */
  int64_t (*xRead)(void *ud, int fd, void *buf, size_t n, uint64_t off);
  /* Writes up to n bytes at offset off, extending the file as needed: the
  ** count written (pwrite(2)). */
  int64_t (*xWrite)(void *ud, int fd, const void *buf, size_t n, uint64_t off);
  /* Makes the file's content and size durable (fsync(2)). */
  int (*xSync)(void *ud, int fd);
  /* Sets the file's size (ftruncate(2)). */
  int (*xTruncate)(void *ud, int fd, uint64_t size);
  /* The file's size in bytes (fstat(2)). */
  int (*xSize)(void *ud, int fd, uint64_t *size);
  /* Closes the handle; it is gone even when this fails (close(2)). */
  int (*xClose)(void *ud, int fd);
  /* Type and size of a path (stat(2), or lstat(2) with SL_FS_NOFOLLOW);
  ** -1 with ENOENT when nothing is there. */
  int (*xStat)(void *ud, const char *path, int flags, sl_fs_stat *out);
  /* Creates one directory (mode 0777 less the umask); -1 with EEXIST when
  ** the name exists (mkdir(2)). */
  int (*xMkdir)(void *ud, const char *path);
  /* Removes an empty directory (rmdir(2)). */
  int (*xRmdir)(void *ud, const char *path);
  /* Removes a file name (unlink(2)). */
  int (*xUnlink)(void *ud, const char *path);
  /* Renames a file, atomically replacing `to` (rename(2)). */
  int (*xRename)(void *ud, const char *from, const char *to);
  /* Makes the directory's entries (names created, renamed, removed in it)
  ** durable: open(2) and fsync(2) of the directory. The POSIX call treats
  ** EINVAL and EROFS of fsync as success (file systems that cannot). */
  int (*xSyncDir)(void *ud, const char *path);
  /* Lists a directory (opendir(3), readdir(3), closedir(3)): xOpenDir
  ** returns a handle or NULL; xReadDir sets *name to the next entry (valid
  ** until the next call on the handle; "." and ".." may come and are
  ** skipped) and returns 1, returns 0 at the end and -1 on an error;
  ** xCloseDir frees the handle. */
  void *(*xOpenDir)(void *ud, const char *path);
  int (*xReadDir)(void *ud, void *dir, const char **name);
  int (*xCloseDir)(void *ud, void *dir);
  void *ud;                  /* passed to every call */
} sl_fs;

/* ------------------------------------------------------------------------ */
/* Typed values                                                              */
/* ------------------------------------------------------------------------ */

/* Value types; the numbers equal SQLite's fundamental datatypes. */
#define SL_INTEGER 1
#define SL_REAL    2
#define SL_TEXT    3
#define SL_BLOB    4
#define SL_NULL    5

/* One typed value. For SL_TEXT and SL_BLOB, v.p points at n bytes (TEXT is
** UTF-8 and need not be NUL-terminated; values returned by statelite always
** have a NUL byte after the n bytes). A value passed in is copied by the call;
** a value handed out points into library memory valid until the next call on
** the same store. */
typedef struct sl_value {
  int type;   /* SL_INTEGER, SL_REAL, SL_TEXT, SL_BLOB or SL_NULL */
  size_t n;   /* length in bytes of TEXT / BLOB */
  union {
    int64_t i;
    double r;
    const void *p;
  } v;
} sl_value;

static inline sl_value sl_int(int64_t i) {
  sl_value x; x.type = SL_INTEGER; x.n = 0; x.v.i = i; return x;
}
static inline sl_value sl_real(double r) {
  sl_value x; x.type = SL_REAL; x.n = 0; x.v.r = r; return x;
}
static inline sl_value sl_textn(const char *s, size_t n) {
  sl_value x; x.type = SL_TEXT; x.n = n; x.v.p = s; return x;
}
static inline sl_value sl_text(const char *s) {
  size_t n = 0; while (s[n]) n++; return sl_textn(s, n);
}
static inline sl_value sl_blob(const void *p, size_t n) {
  sl_value x; x.type = SL_BLOB; x.n = n; x.v.p = p; return x;
}
static inline sl_value sl_null(void) {
  sl_value x; x.type = SL_NULL; x.n = 0; x.v.i = 0; return x;
}

/* ------------------------------------------------------------------------ */
/* Keys and key groups                                                       */
/* ------------------------------------------------------------------------ */

#define SL_DEFAULT_MAX_PARALLELISM 128
#define SL_MAX_MAX_PARALLELISM     32768
#define SL_MAX_KEY_COLUMNS         16
#define SL_MAX_VALUE_COLUMNS       64

/* The key group of a key of n typed columns (1 <= n <= SL_MAX_KEY_COLUMNS, no
** NULL column): murmur3_32(canonical bytes, seed 0) mod max_parallelism. The
** canonical bytes are described in docs/FORMAT.md. Returns SL_OK, or SL_MISUSE
** for a NULL argument, a NULL key column, a bad type or max_parallelism outside
** 1..SL_MAX_MAX_PARALLELISM. */
SL_API int sl_key_group(const sl_value *key, int n, int max_parallelism, int *kg);

/* The key groups [*first, *last] owned by instance `index` of `parallelism`:
** first = (index*maxp + p - 1) / p, last = ((index+1)*maxp - 1) / p.
** SL_MISUSE unless 1 <= parallelism <= max_parallelism <= SL_MAX_MAX_PARALLELISM
** and 0 <= index < parallelism. */
SL_API int sl_key_group_range(int max_parallelism, int parallelism, int index,
                              int *first, int *last);

/* The instance of `parallelism` that owns key group kg: kg * p / maxp.
** SL_MISUSE for arguments out of range. */
SL_API int sl_key_group_owner(int max_parallelism, int parallelism, int kg,
                              int *index);

/* ------------------------------------------------------------------------ */
/* The store: one operator instance's state file                             */
/* ------------------------------------------------------------------------ */

typedef struct sl_store sl_store;

/* Settings of a store. Initialise with sl_config_init() and then change the
** fields you care about; fields added in later versions get safe defaults. */
typedef struct sl_config {
  /* Bytes the store may use for its state (default 32 MiB): SQLite's page
  ** cache of the state file (page_cache_bytes, but at most a quarter of the
  ** budget) and the write-back cache, which gets the rest. 0 turns the
  ** write-back cache off: every access goes to SQLite (whose page cache is
  ** then page_cache_bytes). */
  size_t memory_budget;
  /* Number of key groups (default 128); fixed for the life of a job. */
  int max_parallelism;
  /* SQLite page cache of the state file, in bytes (default 2 MiB), taken
  ** from memory_budget (see there). */
  size_t page_cache_bytes;
  /* Allocator for statelite's own memory; NULL for malloc/realloc/free. */
  const sl_allocator *allocator;
  /* Processing-time clock used for TTL, in milliseconds; NULL for the real
  ** clock (CLOCK_REALTIME). Tests inject one. */
  int64_t (*clock_ms)(void *ud);
  void *clock_ud;
  /* How many expired rows a commit removes per state at most (default 1000;
  ** 0 disables the incremental cleanup, leaving sl_store_sweep_expired()). */
  int ttl_cleanup_rows;
  /* The name of an SQLite VFS (registered with sqlite3_vfs_register(), which
  ** is the program's business) through which the state file is opened, and
  ** the read connection of a snapshot (sl_snapshot_begin()); NULL for
  ** SQLite's default. It must store the bytes SQLite writes unchanged (a
  ** shim that counts, traces or fails calls, not one that encrypts), because
  ** snapshots and restore read and write state files as plain files. The
  ** string must stay valid while the store is open. An unknown name is
  ** SL_MISUSE. */
  const char *vfs;
} sl_config;

/* Fills *cfg with the defaults above. */
SL_API void sl_config_init(sl_config *cfg);

/* Opens or creates the state file `<dir>/<op>/<subtask>.db` of instance
** `subtask` of `parallelism` of operator `op` (1..128 characters of
** [A-Za-z0-9_.-], not starting with '.'). Missing directories are created.
** cfg may be NULL for the defaults.
**
** A new file records operator, subtask, parallelism, max parallelism and the
** key group range in sl_meta. Reopening checks application_id, format version,
** operator, subtask, parallelism and max parallelism and fails with
** SL_MISMATCH (or SL_CORRUPT for a file that is not a statelite file) and a
** message naming what differs.
**
** *out is set to a handle even when the open fails (except when even that
** allocation fails: *out is NULL and SL_NOMEM returned), so that sl_errmsg()
** can say why; close it with sl_store_close(). Errors: SL_MISUSE, SL_NOMEM,
** SL_IOERR, SL_CORRUPT, SL_MISMATCH, SL_BUSY, SL_FULL. */
SL_API int sl_store_open(const char *dir, const char *op, int subtask,
                         int parallelism, const sl_config *cfg, sl_store **out);

/* Like sl_store_open() but on an explicit file path, for an existing state
** file only (it is never created). Operator, subtask and parallelism are
** taken from the file. Used by tools. */
SL_API int sl_store_open_file(const char *path, const sl_config *cfg,
                              sl_store **out);

/* Closes the store. Changes not committed by sl_store_commit() are rolled
** back: after a close the file holds exactly the last commit. Accepts NULL.
** Returns SL_OK; SL_MISUSE (and closes nothing) while iterators of the store
** are open or snapshots begun with sl_snapshot_begin() are not ended; SL_BUSY when SQLite could not close the file. */
SL_API int sl_store_close(sl_store *st);

/* Writes everything dirty in the cache and commits it in one transaction,
** removing up to cfg.ttl_cleanup_rows expired rows per state on the way,
** on the calling thread. (A checkpoint does not call it: its synchronous
** part, sl_snapshot_begin(), only freezes the changes and its asynchronous
** part commits them.) Changes frozen by a snapshot and not yet committed
** are committed first. On failure the file is
** exactly as it was after the previous commit. When the failure left the
** transaction open (SL_BUSY, for one), nothing is lost and a later commit can
** try again. When SQLite had to roll the transaction back (a full disk, an
** I/O error), the changes since the last commit are gone: the store is then
** marked failed, every later call returns SL_ERROR saying so, and the way on
** is to close it and reopen (or restore) from the last commit.
** Errors: SL_IOERR, SL_FULL, SL_NOMEM, SL_BUSY, SL_ERROR, SL_MISUSE. */
SL_API int sl_store_commit(sl_store *st);

/* Removes every expired row of every state now. The removal becomes durable
** with the next commit. Sets *removed (may be NULL) to the count. */
SL_API int sl_store_sweep_expired(sl_store *st, int64_t *removed);

/* Facts about the store; any output pointer may be NULL. first and last:
** the key group range it owns. The operator name is valid until close. */
SL_API int sl_store_info(sl_store *st, const char **op, int *subtask,
                         int *parallelism, int *max_parallelism, int *first,
                         int *last);

/* The path of the state file; valid until sl_store_close(). */
SL_API const char *sl_store_path(sl_store *st);

/* Bytes the cache holds now: every state's table of slots (about 16 bytes
** plus the key and a row of 8 bytes per value column, per slot; a table is
** at most 4/5 full), the keys and rows too long for a slot, and changes a
** snapshot froze and has not yet committed. After each call it is at most
** memory_budget less the page cache, plus the one entry that call handed out when the budget
** cannot hold it, plus the smallest table of each state (8 slots; always
** so with a budget of 0). */
SL_API size_t sl_store_cache_bytes(sl_store *st);

/* Sets the key of the record being processed: n typed columns, no NULLs.
** Its canonical bytes and key group are computed once here and used by every
** keyed state call until the next sl_store_set_key(). A key whose key group
** is outside this instance's range is refused with SL_MISUSE (it means the
** stream was partitioned wrongly). *kg (may be NULL) receives the key group.
** The key values are copied. */
SL_API int sl_store_set_key(sl_store *st, const sl_value *key, int n, int *kg);

/* ------------------------------------------------------------------------ */
/* State descriptors and registration                                        */
/* ------------------------------------------------------------------------ */

/* State kinds. */
#define SL_VALUE_STATE       1  /* one row of value columns per key */
#define SL_LIST_STATE        2  /* an ordered list of rows per key */
#define SL_MAP_STATE         3  /* map-key columns -> value columns per key */
#define SL_REDUCING_STATE    4  /* a value folded by a reduce callback */
#define SL_AGGREGATING_STATE 5  /* an accumulator with add/merge/result */
#define SL_OPERATOR_LIST     6  /* non-keyed list per operator instance */
#define SL_BROADCAST_MAP     7  /* non-keyed map, the same on every instance */

/* Redistribution of SL_OPERATOR_LIST state when parallelism changes. */
#define SL_SPLIT_EVEN 1  /* the rows are split evenly over the new instances */
#define SL_UNION      2  /* every new instance gets all rows */

/* TTL flags. */
#define SL_TTL_REFRESH_ON_READ 1 /* a read also extends the expiry */

/* A named, typed column. Column names are identifiers (letters, digits,
** underscore; not starting with a digit; 1..64 characters) and may not be
** kg, seq or expires_at. `type` is SL_INTEGER, SL_REAL, SL_TEXT or SL_BLOB.
** A value column accepts values of its type or SL_NULL; a key column only its
** type. `dflt` is the value a column added by schema evolution gets in the
** existing rows and the initial accumulator value of aggregating state
** (type 0, i.e. a zeroed sl_value, means NULL). */
typedef struct sl_column {
  const char *name;
  int type;
  sl_value dflt;
} sl_column;

/* Reducing state: *out = reduce(acc, in); acc and in have n_value columns.
** Out values of type TEXT/BLOB must stay valid until the callback returns to
** statelite, which copies them. Return SL_OK or an error code, which the
** calling state operation returns. */
typedef int (*sl_reduce_fn)(void *ud, const sl_value *acc, const sl_value *in,
                            sl_value *out);
/* Aggregating state: acc -> acc' by adding input `in` (n_input columns). */
typedef int (*sl_agg_add_fn)(void *ud, const sl_value *acc, const sl_value *in,
                             sl_value *out);
/* Aggregating state: merges accumulators a and b. */
typedef int (*sl_agg_merge_fn)(void *ud, const sl_value *a, const sl_value *b,
                               sl_value *out);
/* Aggregating state: the result (n_result columns) of an accumulator. */
typedef int (*sl_agg_result_fn)(void *ud, const sl_value *acc, sl_value *out);

/* Describes a state. The descriptor and the strings it points to need only
** live during sl_state_register(). */
typedef struct sl_state_desc {
  const char *name;       /* identifier, not starting with "sl_" */
  int kind;               /* SL_VALUE_STATE ... SL_BROADCAST_MAP */
  int n_key;              /* key columns (keyed kinds: 1..16; others: 0) */
  const sl_column *key;
  int n_map_key;          /* map-key columns (map kinds: 1..16; others: 0) */
  const sl_column *map_key;
  int n_value;            /* value columns, 1..64; the accumulator for
                             aggregating state */
  const sl_column *value;
  int64_t ttl_ms;         /* 0: never expires; keyed kinds only */
  int ttl_flags;          /* SL_TTL_* */
  int redistribution;     /* SL_OPERATOR_LIST: SL_SPLIT_EVEN or SL_UNION */
  sl_reduce_fn reduce;    /* SL_REDUCING_STATE */
  int n_input;            /* SL_AGGREGATING_STATE: input columns */
  int n_result;           /* SL_AGGREGATING_STATE: result columns */
  const sl_column *result;
  sl_agg_add_fn agg_add;
  sl_agg_merge_fn agg_merge;
  sl_agg_result_fn agg_result;
  void *ud;               /* passed to the callbacks */
} sl_state_desc;

typedef struct sl_state sl_state;

/* Registers a state with the store, creating its table on first use and
** evolving it when the descriptor adds value columns (ALTER TABLE ADD COLUMN
** with the column's default). Registering the same name again with an equal
** descriptor returns the same handle.
**
** Errors: SL_MISUSE for a descriptor that is not well formed (bad names,
** reserved names, counts out of range, missing callbacks); SL_MISMATCH when
** the file holds the state with another kind, other key or map-key columns,
** a value column that the descriptor lacks or declares with another type;
** SL_IOERR, SL_NOMEM. The handle is owned by the store and valid until
** sl_store_close(). */
SL_API int sl_state_register(sl_store *st, const sl_state_desc *desc,
                             sl_state **out);

/* Finds a registered state by name: SL_NOTFOUND if this store has not
** registered it since it was opened. */
SL_API int sl_state_find(sl_store *st, const char *name, sl_state **out);

/* The names of every state the file holds, registered or not, sorted.
** *names points at *n strings owned by the store, valid until the next
** sl_store_list_states() or sl_store_close(). For tools. */
SL_API int sl_store_list_states(sl_store *st, const char *const **names, int *n);

/* Opens a state the file holds by its stored descriptor, for reading (and
** for writing value, list and map kinds) without knowing its descriptor: for
** tools. Reducing and aggregating states opened this way have no callbacks:
** sl_state_add(), sl_agg_merge() and sl_agg_get() return SL_MISUSE; read
** their accumulators with sl_value_get() or sl_state_scan(). A state already
** registered is returned as it is. SL_NOTFOUND when the file has no such
** state. The handle is owned by the store. */
SL_API int sl_state_open(sl_store *st, const char *name, sl_state **out);

/* Fills *out with the descriptor of a state: its name, kind, columns, TTL
** and callbacks. The pointers stay valid until sl_store_close(). */
SL_API int sl_state_describe(sl_state *s, sl_state_desc *out);

/* Clears the state for the current key (keyed kinds) or entirely (operator
** list and broadcast state). Works on every kind. */
SL_API int sl_state_clear(sl_state *s);

/* ------------------------------------------------------------------------ */
/* Value state                                                               */
/* ------------------------------------------------------------------------ */

/* The value of the current key: *out points at n_value values (library
** memory, valid until the next call on the store). SL_NOTFOUND (and *out
** NULL) when there is none or it has expired. */
SL_API int sl_value_get(sl_state *s, const sl_value **out);

/* Sets the value of the current key to n_value values. */
SL_API int sl_value_update(sl_state *s, const sl_value *vals);

/* ------------------------------------------------------------------------ */
/* List state (keyed SL_LIST_STATE and non-keyed SL_OPERATOR_LIST)           */
/* ------------------------------------------------------------------------ */

/* Appends one row (n_value values). Appending does not read the list. */
SL_API int sl_list_add(sl_state *s, const sl_value *row);

/* Appends n rows given as n*n_value consecutive values. */
SL_API int sl_list_add_all(sl_state *s, const sl_value *rows, size_t n);

/* Replaces the list by n rows (n may be 0, which clears it). */
SL_API int sl_list_update(sl_state *s, const sl_value *rows, size_t n);

/* The whole list, in insertion order, expired rows left out: *rows points at
** *n rows of n_value values each. SL_NOTFOUND with *n = 0 when empty. */
SL_API int sl_list_get(sl_state *s, const sl_value **rows, size_t *n);

/* ------------------------------------------------------------------------ */
/* Map state (keyed SL_MAP_STATE and non-keyed SL_BROADCAST_MAP)             */
/* ------------------------------------------------------------------------ */

/* Puts map_key (n_map_key values) -> vals (n_value values). */
SL_API int sl_map_put(sl_state *s, const sl_value *map_key, const sl_value *vals);

/* The value of map_key: SL_NOTFOUND when absent or expired. */
SL_API int sl_map_get(sl_state *s, const sl_value *map_key, const sl_value **out);

/* *found = 1 if map_key is present (and not expired), else 0. */
SL_API int sl_map_contains(sl_state *s, const sl_value *map_key, int *found);

/* Removes map_key; removing an absent key is not an error. */
SL_API int sl_map_remove(sl_state *s, const sl_value *map_key);

/* ------------------------------------------------------------------------ */
/* Reducing and aggregating state                                            */
/* ------------------------------------------------------------------------ */

/* Reducing: folds `in` (n_value values) into the current key's value with the
** reduce callback (the first value is stored as it is). Read with
** sl_value_get(). Aggregating: adds `in` (n_input values) to the accumulator
** (starting from the columns' defaults) with agg_add. */
SL_API int sl_state_add(sl_state *s, const sl_value *in);

/* Aggregating: merges an accumulator (n_value values) into the current key's
** with agg_merge (or stores it when there is none). */
SL_API int sl_agg_merge(sl_state *s, const sl_value *acc);

/* Aggregating: the result (n_result values) of the current key's accumulator,
** via agg_result. SL_NOTFOUND when there is no accumulator. Read the raw
** accumulator with sl_value_get(). */
SL_API int sl_agg_get(sl_state *s, const sl_value **out);

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */
/* ------------------------------------------------------------------------ */

/* Time domains of timers. */
#define SL_EVENT_TIME      1 /* fired when the watermark passes the time */
#define SL_PROCESSING_TIME 2 /* fired when the wall clock passes the time */

/* Timers are kept per key in the state file (table sl_timers), so they are
** part of every commit and checkpoint and survive a restart. Registering the
** same (domain, time, key) twice keeps one timer.
**
** sl_timer_register() / sl_timer_delete(): for the current key.
** Errors: SL_MISUSE (no current key, unknown domain), SL_IOERR, SL_FULL,
** SL_NOMEM. Deleting a timer that does not exist is not an error. */
SL_API int sl_timer_register(sl_store *st, int domain, int64_t time);
SL_API int sl_timer_delete(sl_store *st, int domain, int64_t time);

/* Removes the earliest timer of `domain` whose time is <= upto, makes its key
** the current key (as sl_store_set_key() would) and sets *time. Timers fire in
** order of (time, key group, key bytes). Returns SL_ROW when one fired and
** SL_DONE when none is due. */
SL_API int sl_timer_pop(sl_store *st, int domain, int64_t upto, int64_t *time);

/* The time of the earliest timer of `domain`: SL_OK, or SL_NOTFOUND. */
SL_API int sl_timer_peek(sl_store *st, int domain, int64_t *time);

/* The current key as values (valid until the next sl_store_set_key() or
** sl_timer_pop()) and its key group. SL_NOTFOUND when no key is set. */
SL_API int sl_store_key(sl_store *st, const sl_value **key, int *n, int *kg);

/* ------------------------------------------------------------------------ */
/* Iteration                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct sl_iter sl_iter;

/* Iterates the entries of a map for the current key (SL_MAP_STATE) or of a
** broadcast map, in ascending order of the map-key columns (integers and
** reals numerically, text and blobs bytewise), expired entries left out.
** Iterates all keys of a keyed state with sl_state_scan().
** While an iterator is open, calls that change the store return SL_MISUSE;
** close it with sl_iter_close() first. */
SL_API int sl_map_iter(sl_state *s, sl_iter **out);

/* Iterates every live row of a state across all keys of this instance, in
** ascending order of (key group, key columns[, seq | map-key columns]). For
** tools and for tests; it flushes the cache of that state first. */
SL_API int sl_state_scan(sl_state *s, sl_iter **out);

/* Advances: SL_ROW when a row is ready, SL_DONE at the end, or an error. */
SL_API int sl_iter_next(sl_iter *it);

/* Parts of the current row (valid until the next sl_iter_next()):
** key columns (scan only), map-key columns (maps) and value columns. Each
** sets *n to the column count. *kg (sl_iter_key only, may be NULL) gets the
** row's key group. */
SL_API int sl_iter_key(sl_iter *it, const sl_value **key, int *n, int *kg);
SL_API int sl_iter_map_key(sl_iter *it, const sl_value **map_key, int *n);
SL_API int sl_iter_value(sl_iter *it, const sl_value **vals, int *n);

/* Ends an iteration. Accepts NULL. */
SL_API void sl_iter_close(sl_iter *it);

/* ======================================================================== */
/* The SDK: operators, pipelines, checkpoints and recovery                   */
/* ======================================================================== */

/* A record: a row of typed fields with an event timestamp (milliseconds).
** Records handed to a callback are valid until the callback returns. */
typedef struct sl_record {
  int64_t ts;
  int n;
  const sl_value *f;
} sl_record;

/* The context of one instance of an operator or source, given to every
** callback. Valid during the callback only. */
typedef struct sl_ctx sl_ctx;

/* An operator: callbacks run on the instance's own thread, one at a time.
** Every callback returns SL_OK or an error code; an error stops the job
** cleanly (the last completed checkpoint stays intact) and sl_job_run()
** returns it with the operator named. Any callback may be NULL.
**
** Keyed operators (those fed through SL_KEY_BY) have the record's key set as
** the current key of sl_ctx_store() before process() and on_timer(), so the
** keyed states work on that key. */
typedef struct sl_operator {
  /* Called once before the first record, after a restore if there was one
  ** (sl_ctx_restored() says so). Register nothing here: states are declared
  ** in `states` and found with sl_ctx_state(). */
  int (*open)(sl_ctx *ctx, void *ud);
  /* One record. Emit output with sl_ctx_emit(). */
  int (*process)(sl_ctx *ctx, const sl_record *rec, void *ud);
  /* A timer registered with sl_ctx_timer() is due; its key is current. */
  int (*on_timer)(sl_ctx *ctx, int domain, int64_t time, void *ud);
  /* Checkpoint `id` is being taken: write instance fields into state (Flink's
  ** CheckpointedFunction.snapshotState). Runs before the store commits. */
  int (*snapshot)(sl_ctx *ctx, int64_t id, void *ud);
  /* Checkpoint `id` is complete (published). Runs again after a restore for
  ** the checkpoint restored from, so two-phase sinks can finish publishing. */
  int (*notify_checkpoint_complete)(sl_ctx *ctx, int64_t id, void *ud);
  /* Called once at the end, also after a failure. */
  int (*close)(sl_ctx *ctx, void *ud);
  void *ud;                 /* shared by all instances; read-only is wise */
  size_t instance_size;     /* zeroed bytes per instance: sl_ctx_instance() */
  const sl_state_desc *states; /* the states every instance uses */
  int n_states;
  const sl_column *out;     /* the fields of the records it emits */
  int n_out;
} sl_operator;

/* A replaceable source: it reports a position and can seek to it, so that a
** restore can rewind it. Positions are stored in the same commit as the
** state of its instance, so offsets and state never disagree. */
typedef struct sl_source {
  int (*open)(sl_ctx *ctx, void *ud);
  /* Emits the next records with sl_ctx_emit() and returns SL_OK, or returns
  ** SL_DONE at the end of the input. Should not block for long. */
  int (*read)(sl_ctx *ctx, void *ud);
  /* The position after the last record emitted. */
  int (*position)(sl_ctx *ctx, int64_t *pos, void *ud);
  /* Rewinds to a position that position() reported; called after open()
  ** when the job restores. */
  int (*seek)(sl_ctx *ctx, int64_t pos, void *ud);
  int (*close)(sl_ctx *ctx, void *ud);
  void *ud;
  size_t instance_size;
  const sl_column *out;     /* the fields of the records it emits */
  int n_out;
  /* Sources declare no states: a source that keeps operator state of its
  ** own registers it in open() on sl_ctx_store(); its position is kept for
  ** it. */
  /* Watermarks: the largest event time emitted minus this delay is sent on
  ** (bounded out-of-orderness); < 0 sends none but the final one. */
  int64_t watermark_delay_ms;
} sl_source;

/* ---- the context ---- */

/* The instance's store (keyed and operator state, timers). */
SL_API sl_store *sl_ctx_store(sl_ctx *ctx);
/* A state declared in the operator's `states`, by name; NULL if unknown. */
SL_API sl_state *sl_ctx_state(sl_ctx *ctx, const char *name);
/* The instance's zeroed memory of sl_operator.instance_size bytes. */
SL_API void *sl_ctx_instance(sl_ctx *ctx);
/* This instance's index and its stage's parallelism. */
SL_API void sl_ctx_subtask(sl_ctx *ctx, int *index, int *parallelism);
/* 1 if the instance was restored from a checkpoint or savepoint. */
SL_API int sl_ctx_restored(sl_ctx *ctx);
/* Emits a record of n fields (the declared `out` fields; NULL allowed) with
** event time ts. Blocks while the next stage is full (backpressure). The
** values are copied. SL_MISUSE when the fields do not fit the declaration. */
SL_API int sl_ctx_emit(sl_ctx *ctx, const sl_value *fields, int n, int64_t ts);
/* Sources only: emits a watermark now. */
SL_API int sl_ctx_emit_watermark(sl_ctx *ctx, int64_t ts);
/* Registers a timer of the current key (SL_EVENT_TIME or
** SL_PROCESSING_TIME); see sl_timer_register(). */
SL_API int sl_ctx_timer(sl_ctx *ctx, int domain, int64_t time);
/* The current watermark of this instance (INT64_MIN before the first). */
SL_API int64_t sl_ctx_watermark(sl_ctx *ctx);
/* The processing time in milliseconds (the job's clock). */
SL_API int64_t sl_ctx_now(sl_ctx *ctx);
/* Sets the message sl_job_run() reports when the callback returns an error. */
SL_API void sl_ctx_error(sl_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- jobs ---- */

typedef struct sl_job sl_job;

#define SL_EXACTLY_ONCE  1 /* barriers aligned across inputs */
#define SL_AT_LEAST_ONCE 2 /* not aligned: after a failure, records may repeat */

/* Edges between stages. */
#define SL_FORWARD   1 /* instance i feeds instance i (equal parallelism) */
#define SL_REBALANCE 2 /* round robin over the next stage's instances */
#define SL_KEY_BY    3 /* by key group of the named key fields */

typedef struct sl_job_config {
  const char *state_dir;        /* working state files (required) */
  const char *checkpoint_dir;   /* checkpoints and savepoints (required) */
  int64_t checkpoint_interval_ms; /* 0: only the final checkpoint */
  int64_t checkpoint_timeout_ms;  /* default 60000 */
  int64_t min_pause_ms;           /* between the end of one and the next */
  int tolerable_failures;         /* consecutive failed checkpoints allowed */
  int retain;                     /* checkpoints kept (default 2) */
  uint64_t retain_bytes;          /* byte budget of kept checkpoints, 0: none */
  int mode;                       /* SL_EXACTLY_ONCE (default) or SL_AT_LEAST_ONCE */
  int max_parallelism;            /* default 128 */
  size_t memory_budget;           /* per instance, default 8 MiB */
  size_t channel_capacity;        /* records per channel, default 1024 */
  int zstd_level;                 /* default 3 */
  const char *restore_savepoint;  /* restore this savepoint instead of the
                                     newest checkpoint */
  int no_restore;                 /* start empty even if checkpoints exist */
  /* Progress and diagnostics, one line at a time; NULL for silence. */
  void (*log)(void *ud, const char *line);
  void *log_ud;
  const sl_allocator *allocator;
  /* The file system of the job's checkpoints, restore, retention, and of
  ** sl_file_source() and sl_file_sink() (see sl_fs); NULL for POSIX. Copied
  ** by sl_job_new(); its functions are called from the job's threads. */
  const sl_fs *fs;
  /* The SQLite VFS of the job's state files (sl_config.vfs) and of its
  ** restore (sl_chkdir_config.vfs); NULL for SQLite's default. Copied by
  ** sl_job_new(), which refuses an unknown name with SL_MISUSE. */
  const char *vfs;
} sl_job_config;

SL_API void sl_job_config_init(sl_job_config *cfg);

/* Creates an empty job. Like sl_store_open(), *out is a handle even on
** failure (unless SL_NOMEM), for sl_errmsg(); free it with sl_job_free(). */
SL_API int sl_job_new(const sl_job_config *cfg, sl_job **out);

/* Adds stages; *stage receives the stage number for sl_job_connect(). Names
** are operator names (see sl_store_open()) and must differ. */
SL_API int sl_job_source(sl_job *job, const char *name, const sl_source *src,
                         int parallelism, int *stage);
SL_API int sl_job_operator(sl_job *job, const char *name, const sl_operator *op,
                           int parallelism, int *stage);

/* Connects stage `from` to stage `to`. For SL_KEY_BY, key_fields names the
** n fields (of `from`'s output) that make the key. A stage may have several
** inputs; their barriers are aligned in exactly-once mode. */
SL_API int sl_job_connect(sl_job *job, int from, int to, int how,
                          const char *const *key_fields, int n);

/* Checks the job (refusing one that is not well formed with SL_MISUSE and a
** sentence), restores from the newest valid checkpoint (or the configured
** savepoint), runs it until every source is done, takes a final checkpoint,
** lets every operator see it complete, and returns SL_OK. Returns the error
** of a failed callback (naming the operator) or of a failed checkpoint
** beyond the tolerated ones. */
SL_API int sl_job_run(sl_job *job);

/* Asks a running job to stop (thread-safe, async-signal-safe). With a
** savepoint name, the job first takes that savepoint. */
SL_API int sl_job_stop(sl_job *job, const char *savepoint);

/* Figures of the last run: completed checkpoints, records read by sources,
** and the synchronous checkpoint pause percentiles in microseconds. */
typedef struct sl_job_stats {
  int64_t checkpoints, failed_checkpoints, records_in;
  int64_t last_checkpoint_id;
  int64_t pause_p50_us, pause_p99_us, pause_max_us;
} sl_job_stats;
SL_API int sl_job_get_stats(sl_job *job, sl_job_stats *out);

SL_API void sl_job_free(sl_job *job);

/* ---- built-in sources and sinks ---- */

/* A generator: `count` records (id INTEGER, key INTEGER, seq INTEGER), for
** i = 0..count-1: id = i, key = i % keys, seq = i / keys (so each key's seq
** counts 0, 1, 2 ...), event time i. Instance j of p emits the records whose
** key % p == j, so every key's sequence comes from one instance, in order.
** Position: the next i. Fills *src; the config must outlive the job. */
typedef struct sl_generator_config {
  int64_t count;
  int64_t keys;
  int64_t records_per_read;   /* default 64 */
  int64_t delay_us_per_read;  /* slows it down for tests and demos */
} sl_generator_config;
SL_API void sl_generator_source(sl_source *src, const sl_generator_config *cfg);

/* A file of lines: records (line TEXT), ts = the byte offset of the line.
** Position: the byte offset. One instance (parallelism 1). The file is read
** through the job's file layer (sl_job_config.fs). `path` must outlive the
** job. */
SL_API void sl_file_source(sl_source *src, const char *path);

/* Prints every record as a tab-separated line to a stdio stream. */
SL_API void sl_print_sink(sl_operator *op, void *stdio_file);

/* An exactly-once file sink: the fields of each record are written as one
** tab-separated line. Output of checkpoint n is pending until n completes;
** then it is appended to `path`, and the file (and, once per run, its
** directory) synced before the checkpoint's state records it as published.
** After any crash or power loss and restart the file holds the output of
** the completed checkpoints exactly once. Parallelism 1. `path` must
** outlive the job. */
SL_API void sl_file_sink(sl_operator *op, const char *path);

/* ------------------------------------------------------------------------ */
/* Checkpoints, savepoints, restore                                          */
/* ------------------------------------------------------------------------ */

/* A checkpoint of one store has two parts. The synchronous part,
** sl_snapshot_begin(), runs on the thread that owns the store: it freezes
** the changes the cache holds (a copy of each changed entry; SQLite is not
** touched, so this pause is short). The asynchronous part,
** sl_snapshot_write(), may run on any other thread while the owner goes on
** writing and committing: it commits the frozen changes, pins a second,
** read-only connection to exactly that commit, and copies the pinned state
** with SQLite's online backup API into `<target>/<operator>/<subtask>.db.zst`, a
** zstd stream with a CRC-32C checksum, without an uncompressed temporary copy
** when it can. sl_snapshot_end(), on the owner thread again, records the
** checkpoint in the state file and releases the handle.
**
** A checkpoint directory (sl_chkdir) holds `chk-<n>/` directories of
** snapshot files, published by a MANIFEST once every instance is done, and
** `savepoints/<name>/` of the same layout. Restore picks the newest
** checkpoint that verifies (or a named savepoint), falling back to older ones
** and saying why, and rescales it when the parallelism changes. The layout
** and the MANIFEST format are described in docs/FORMAT.md. */

/* Kinds of snapshots. */
#define SL_CHECKPOINT 1  /* taken by the runtime; removed by retention */
#define SL_SAVEPOINT  2  /* taken on request; never removed automatically */

typedef struct sl_snapshot sl_snapshot;

/* Settings of a snapshot. Initialise with sl_snapshot_config_init(). */
typedef struct sl_snapshot_config {
  /* zstd level, 1..19 (default 3). */
  int level;
  /* SL_SNAPSHOT_* flags. */
  int flags;
  /* The file system the snapshot file is written through (see sl_fs); NULL
  ** for POSIX. Copied by sl_snapshot_begin(); sl_snapshot_write() calls it
  ** on whatever thread it runs. */
  const sl_fs *fs;
} sl_snapshot_config;

/* Always go through an uncompressed temporary copy of the database instead
** of streaming the backup into the compressor (needs that much more disk). */
#define SL_SNAPSHOT_NO_STREAM 1

/* Fills *cfg with the defaults above. */
SL_API void sl_snapshot_config_init(sl_snapshot_config *cfg);

/* What a finished snapshot is: everything the checkpoint directory needs to
** publish it (see sl_chkdir_publish()), and its figures. A plain value:
** copy it freely, it points at nothing. */
typedef struct sl_snapshot_info {
  int64_t id;                /* checkpoint (or savepoint) id */
  int kind;                  /* SL_CHECKPOINT or SL_SAVEPOINT */
  char op[129];              /* the operator */
  int subtask, parallelism, max_parallelism;
  uint64_t bytes;            /* size of the .db.zst file */
  uint64_t raw_bytes;        /* size of the database it holds */
  uint32_t checksum;         /* CRC-32C of the .db.zst file */
  int64_t started_ms;        /* when sl_snapshot_begin() started (Unix ms) */
  int64_t sync_us;           /* duration of the synchronous part */
  int64_t async_us;          /* duration of sl_snapshot_write() */
  uint64_t peak_disk_bytes;  /* most disk the snapshot used at any time, its
                                own file included: `bytes` when streamed,
                                raw_bytes + bytes through a copy */
  int streamed;              /* 1: no uncompressed temporary copy was made */
} sl_snapshot_info;

/* The synchronous part of a checkpoint, on the thread that owns `st`: the
** state of the store as of now is fixed. Every changed cache entry is copied
** into a batch that sl_snapshot_write() commits (the entries become clean;
** the state file is not touched here). `target` is the directory of the
** checkpoint (see sl_chkdir_target()); the directory `<target>/<operator>`
** is created. `id` >= 1 and `kind` (SL_CHECKPOINT or SL_SAVEPOINT) are
** recorded with it. cfg may be NULL for the defaults.
**
** Until the batch is committed the owner goes on using the store, mostly in
** its cache; a call that must write to the file first (a timer, an
** iterator, a map clear, a spill when the cache is over its budget, a
** commit, another sl_snapshot_begin()) waits for the batch, or commits it
** itself when sl_snapshot_write() has not started. The batch is memory
** counted against the budget until then. Should committing the batch fail,
** the store is failed as after a failed sl_store_commit().
**
** On success *out is a handle that must be given to sl_snapshot_end() on
** this thread, before sl_store_close(). On failure *out is NULL, nothing
** was frozen, and sl_errmsg(st) says why. Errors: SL_MISUSE (NULL argument,
** bad id, kind or level, an iterator open), SL_IOERR, SL_NOMEM, and those
** of committing an earlier snapshot's batch. The store's allocator is used
** only here and in sl_snapshot_end(), on the owner thread. */
SL_API int sl_snapshot_begin(sl_store *st, const char *target, int64_t id, int kind,
                             const sl_snapshot_config *cfg, sl_snapshot **out);

/* The asynchronous part: commits the changes sl_snapshot_begin() froze
** (unless the owner already had to), pins a read-only connection to that
** commit and writes `<target>/<operator>/<subtask>.db.zst` holding exactly
** the state of sl_snapshot_begin(), whatever the owner has done since. It
** may run on any thread, once per handle,
** while the owner thread goes on using the store (but not sl_snapshot_end()
** of this handle). The file is written as `<subtask>.db.zst.tmp`, synced and
** renamed, so the name appears only complete. The backup is streamed into
** the compressor; should SQLite write a page out of order, the attempt is
** dropped and the file made from an uncompressed temporary copy instead
** (sl_snapshot_get_info() tells which, and the peak disk use).
**
** Returns SL_OK; SL_MISUSE when called twice or on a bad handle; SL_FULL,
** SL_IOERR, SL_NOMEM, SL_ERROR. sl_errmsg(sn) says why; the temporary files
** are removed. Allocates nothing through the store's allocator. */
SL_API int sl_snapshot_write(sl_snapshot *sn);

/* Copies the figures of a written snapshot into *info. SL_MISUSE unless
** sl_snapshot_write() succeeded. Any thread, when no other call on sn runs. */
SL_API int sl_snapshot_get_info(sl_snapshot *sn, sl_snapshot_info *info);

/* Ends a snapshot on the owner thread and frees the handle (NULL is
** accepted). When sl_snapshot_write() succeeded, appends a row to the table
** sl_checkpoints(id, kind, started_ms, sync_ms, async_ms, bytes, raw_bytes)
** of the state file (creating it when missing) and sets last_checkpoint in
** sl_meta; both are part of the store's open transaction and become durable
** with its next commit. Returns SL_OK, the error of recording (sl_errmsg(st)
** says why; the handle is freed all the same), or SL_MISUSE (and frees
** nothing) while sl_snapshot_write() runs. When the write failed, its code
** is returned and sl_errmsg(st) repeats its message. A snapshot never
** written (an aborted checkpoint) is freed and nothing recorded; the
** changes it froze are committed here (they are the store's). */
SL_API int sl_snapshot_end(sl_snapshot *sn);

/* Decompresses the snapshot file `src` (a .db.zst) into the database file
** `dst` (created or replaced), for tools. The zstd frames are checked first
** (each must declare its size, and together at most max_raw_bytes; 0 means
** 64 GiB) and decompression stops at their declared total. The database is
** not checked: open it as the untrusted file it is. On failure dst is
** removed. Returns SL_OK; SL_MISUSE (NULL or empty path); SL_CORRUPT (not a
** zstd stream, truncated, a frame without a declared size, over the limit);
** SL_IOERR, SL_FULL, SL_NOMEM. Any thread. */
SL_API int sl_snapshot_extract(const char *src, const char *dst, uint64_t max_raw_bytes);

/* A checkpoint directory. */
typedef struct sl_chkdir sl_chkdir;

/* Called with what a checkpoint directory finds and does: a checkpoint that
** does not verify and why (rc the error), a fallback, removals by retention
** and of garbage (rc SL_OK). msg is valid during the call. */
typedef void (*sl_report_fn)(void *ud, int rc, const char *msg);

/* Settings of a checkpoint directory. Initialise with
** sl_chkdir_config_init(). */
typedef struct sl_chkdir_config {
  /* Complete checkpoints kept, newest first (default 2, at least 1). */
  int keep;
  /* Bytes the kept checkpoints may use together; 0 = no budget. The newest
  ** complete checkpoint is kept even when it alone is larger. */
  uint64_t max_bytes;
  /* The most bytes a restored database may have (default 64 GiB): larger
  ** snapshot files are refused before anything is decompressed. */
  uint64_t max_raw_bytes;
  /* SL_CHKDIR_* flags. */
  int flags;
  /* Allocator for the directory's own memory; NULL for malloc. */
  const sl_allocator *allocator;
  sl_report_fn report;
  void *report_ud;
  /* Called during sl_chkdir_restore() after each snapshot file unpacked and
  ** each instance rebuilt by a rescale: `what` names the step ("unpacked",
  ** "rebuilt") and the operator; done of total steps of that operator. For
  ** progress lines on long restores; NULL for none. */
  void (*progress)(void *ud, const char *what, const char *op, int done, int total);
  void *progress_ud;
  /* The file system of every call on the directory and of restore: listing,
  ** MANIFESTs, verification, retention, unpacking and installing state
  ** files (see sl_fs); NULL for POSIX. Copied by sl_chkdir_open(). */
  const sl_fs *fs;
  /* The SQLite VFS through which restore opens the databases it unpacks and
  ** builds (checks, last_checkpoint, rescaling); NULL for SQLite's default.
  ** Like sl_config.vfs it must store bytes unchanged; the string must stay
  ** valid until sl_chkdir_close(). An unknown name is SL_MISUSE, from
  ** sl_chkdir_open() (and from sl_chkdir_restore() should it be gone). */
  const char *vfs;
} sl_chkdir_config;

/* Only look: no garbage removal, no retention; publishing and restore are
** refused. For tools that inspect a directory a job is using. */
#define SL_CHKDIR_READONLY 1

SL_API void sl_chkdir_config_init(sl_chkdir_config *cfg);

/* Opens (creating it when missing) the checkpoint directory `dir`. Unless
** read-only, removes the garbage: every chk-<n> and savepoints/<name>
** directory without a MANIFEST (an unfinished or aborted checkpoint) and
** leftover temporary files. *out is set to a handle even when the open fails
** (except when even that allocation fails: *out NULL and SL_NOMEM), for
** sl_errmsg(); close it with sl_chkdir_close(). Errors: SL_MISUSE, SL_NOMEM,
** SL_IOERR, SL_FULL. One thread at a time per handle. */
SL_API int sl_chkdir_open(const char *dir, const sl_chkdir_config *cfg, sl_chkdir **out);

/* Frees the handle; accepts NULL. Returns SL_OK. */
SL_API int sl_chkdir_close(sl_chkdir *cd);

/* The directory to give to sl_snapshot_begin() for checkpoint `id`
** (`<dir>/chk-<id>`) or, when savepoint is not NULL, for that savepoint
** (`<dir>/savepoints/<name>`, name as an operator name); it is created.
** *path is valid until the next call on cd. SL_MISUSE when that checkpoint
** or savepoint is already published, or for a bad id or name. */
SL_API int sl_chkdir_target(sl_chkdir *cd, int64_t id, const char *savepoint,
                            const char **path);

/* Publishes checkpoint `id` (or the savepoint) made of the n snapshots
** described by files[] (from sl_snapshot_get_info(), in any order): checks that
** they are all of this id and kind, that every operator's parallelism and
** max parallelism agree and each of its subtasks appears exactly once, and
** that each file exists with its size; then writes MANIFEST atomically (temp
** file, fsync, rename, fsync of the directories). A checkpoint then applies
** retention: the newest `keep` complete checkpoints stay, older ones go, and
** then the oldest while over max_bytes, never the one just published;
** directories without a MANIFEST older than the oldest kept go too.
** Errors: SL_MISUSE (bad arguments, read-only), SL_MISMATCH (files that do
** not form a checkpoint), SL_NOTFOUND (a file is missing), SL_IOERR,
** SL_FULL, SL_NOMEM. A failed publication leaves no MANIFEST: one renamed
** into place before a directory sync failed is removed again; only when
** even that removal fails does it stay (the checkpoint is then complete)
** and sl_errmsg(cd) says so. Once it has returned SL_OK the checkpoint
** survives a power loss (docs/FORMAT.md, "Durability"). Retention that
** fails after the MANIFEST is written does not fail the publication: it is
** reported through the report callback and tried again next time. */
SL_API int sl_chkdir_publish(sl_chkdir *cd, int64_t id, const char *savepoint,
                             const sl_snapshot_info *files, int n);

/* Removes an unpublished checkpoint (or savepoint) directory, for example
** after an instance failed to write its snapshot. SL_MISUSE for a published
** one. */
SL_API int sl_chkdir_discard(sl_chkdir *cd, int64_t id, const char *savepoint);

/* Applies retention now (see sl_chkdir_publish()). Sets *removed (may be
** NULL) to the number of checkpoints removed. */
SL_API int sl_chkdir_gc(sl_chkdir *cd, int *removed);

/* One checkpoint or savepoint of a directory. */
typedef struct sl_chk_entry {
  int64_t id;                /* from the MANIFEST (or the directory name) */
  int kind;                  /* SL_CHECKPOINT or SL_SAVEPOINT */
  const char *name;          /* savepoint name; NULL for a checkpoint */
  const char *path;          /* its directory */
  int64_t time_ms;           /* from the MANIFEST; 0 when it does not parse */
  uint64_t bytes;            /* bytes of its files */
  int complete;              /* 1: it has a MANIFEST */
  int valid;                 /* 1: the MANIFEST parses (the files are not
                                checked; see sl_chkdir_verify()) */
} sl_chk_entry;

/* Lists the checkpoints (by ascending id) and then the savepoints (by name).
** *out points at *n entries owned by cd, valid until the next call on cd. */
SL_API int sl_chkdir_list(sl_chkdir *cd, const sl_chk_entry **out, int *n);

/* 1 + the highest id of any checkpoint or savepoint (1 when empty): the id
** for the next checkpoint. */
SL_API int sl_chkdir_next_id(sl_chkdir *cd, int64_t *id);

/* Verifies checkpoint `id` (or the savepoint): its MANIFEST parses, every
** file exists with the size and CRC-32C the MANIFEST gives, and its zstd
** frames declare the raw size the MANIFEST gives (within max_raw_bytes).
** Nothing is decompressed: the databases inside are checked by a restore.
** Returns SL_OK; SL_NOTFOUND when there is no such checkpoint; SL_CORRUPT
** (sl_errmsg(cd) names the file and what is wrong), SL_MISMATCH (a format
** this library does not read), SL_IOERR, SL_NOMEM. */
SL_API int sl_chkdir_verify(sl_chkdir *cd, int64_t id, const char *savepoint);

/* A new parallelism of an operator for sl_chkdir_restore(). */
typedef struct sl_rescale {
  const char *op;
  int parallelism;           /* 1..the checkpoint's max parallelism */
} sl_rescale;

/* Restores the state files of every operator of a checkpoint into
** `<state_dir>/<operator>/<subtask>.db`. Which checkpoint: the savepoint
** `savepoint` when not NULL; else checkpoint `id` when id > 0; else the
** newest checkpoint that verifies: one that does not (MANIFEST, file sizes,
** checksums, frames, or the databases inside: application_id, format,
** sl_meta, schema, quick_check) is reported through the report callback with
** the file and the reason, and the previous one is tried. Snapshot files are
** untrusted input: they are decompressed with a bound, opened defensively
** (SQLITE_DBCONFIG_DEFENSIVE, trusted_schema off, no extensions) and refused
** when they hold triggers, views, virtual tables or tables other than their
** states and statelite's own.
**
** Every file of every operator is first made and checked under
** `<state_dir>/<operator>/.restore/`; only then are the old working files
** (with their -wal and -shm) replaced by rename, and files of instances
** beyond the new parallelism removed. The restored files record the
** checkpoint id as last_checkpoint. No store of these operators may be open.
**
** rescale[] (n_rescale entries, may be NULL) gives operators a new
** parallelism: keyed rows then move to the instance owning their key group,
** operator list state is split evenly or unioned as registered, broadcast
** state is copied to every instance. *restored (may be NULL) gets the id.
** Returns SL_OK; SL_NOTFOUND when there is no checkpoint (or no such
** savepoint); SL_CORRUPT when none verifies (the message lists why each
** failed); SL_MISUSE, SL_MISMATCH, SL_IOERR, SL_FULL, SL_NOMEM. An I/O
** error (also one SQLite meets while checking a database) is returned as it
** is, never taken for a damaged checkpoint, so it makes no fallback. After
** a failure some instances may have been replaced and others not; restoring
** again completes it. Once it has returned SL_OK the restored files survive
** a power loss. */
SL_API int sl_chkdir_restore(sl_chkdir *cd, int64_t id, const char *savepoint,
                             const char *state_dir, const sl_rescale *rescale,
                             int n_rescale, int64_t *restored);

#ifdef __cplusplus
}
#endif
#endif /* STATELITE_H */
