/*
** test_store_timer.c — the timer service: timers per key kept in sl_timers,
** deduplicated, deleted, fired in (time, key group, key) order, surviving a
** close and reopen, and refused without a key or with an unknown domain.
*/
#include "store_util.h"

static void reg_timer(sl_store *st, int64_t key, int domain, int64_t t) {
  su_key_int(st, key);
  ASSERT_OK(sl_timer_register(st, domain, t), st);
}

/* Pops every due timer of a domain, rendered as "time:key;". */
static char *pop_all(sl_store *st, int domain, int64_t upto) {
  su_buf b = {0, 0, 0};
  int64_t t;
  int rc;
  su_addf(&b, "%s", "");
  while ((rc = sl_timer_pop(st, domain, upto, &t)) == SL_ROW) {
    const sl_value *k;
    int n, kg, want;
    ASSERT_OK(sl_store_key(st, &k, &n, &kg), st);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(k[0].type, SL_INTEGER);
    ASSERT_OK(sl_key_group(k, n, 128, &want), NULL);
    ASSERT_EQ(kg, want);
    su_addf(&b, "%lld:%lld;", (long long)t, (long long)k[0].v.i);
  }
  ASSERT_RC(rc, SL_DONE, st);
  return su_take(&b);
}

TEST(quick_timer_order_dedupe_delete_reopen) {
  sl_store *st = su_open("timers", 0, 1, NULL);
  int64_t t = 0;
  char path[4096];
  ASSERT_RC(sl_timer_peek(st, SL_EVENT_TIME, &t), SL_NOTFOUND, st);
  reg_timer(st, 5, SL_EVENT_TIME, 300);
  reg_timer(st, 6, SL_EVENT_TIME, 100);
  reg_timer(st, 7, SL_EVENT_TIME, 200);
  reg_timer(st, 7, SL_EVENT_TIME, 200); /* the same timer again: kept once */
  reg_timer(st, 8, SL_EVENT_TIME, 250);
  reg_timer(st, 8, SL_PROCESSING_TIME, 50);
  su_key_int(st, 8);
  ASSERT_OK(sl_timer_delete(st, SL_EVENT_TIME, 250), st);
  ASSERT_OK(sl_timer_delete(st, SL_EVENT_TIME, 999), st); /* absent: fine */
  su_commit(st);
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_timers"), 4);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_timers WHERE domain=1"), 3);

  st = su_open("timers", 0, 1, NULL);
  ASSERT_OK(sl_timer_peek(st, SL_EVENT_TIME, &t), st);
  ASSERT_EQ(t, 100);
  ASSERT_OK(sl_timer_peek(st, SL_PROCESSING_TIME, &t), st);
  ASSERT_EQ(t, 50);
  {
    char *s = pop_all(st, SL_EVENT_TIME, 200);
    ASSERT_STR(s, "100:6;200:7;");
    free(s);
    s = pop_all(st, SL_EVENT_TIME, 10000);
    ASSERT_STR(s, "300:5;");
    free(s);
  }
  /* popping is a change like any other: a close without commit undoes it */
  su_close(st);
  st = su_open("timers", 0, 1, NULL);
  {
    char *s = pop_all(st, SL_EVENT_TIME, 10000);
    ASSERT_STR(s, "100:6;200:7;300:5;");
    free(s);
    s = pop_all(st, SL_PROCESSING_TIME, 10000);
    ASSERT_STR(s, "50:8;");
    free(s);
  }
  su_commit(st);
  su_close(st);
  ASSERT_EQ(su_sql_int(path, "SELECT count(*) FROM sl_timers"), 0);
}

TEST(quick_timer_same_time_orders_by_key_group) {
  sl_store *st = su_open("timers", 0, 1, NULL);
  int64_t prev_kg = -1, t;
  int fired = 0, rc;
  for (int64_t k = 0; k < 50; k++) reg_timer(st, k, SL_EVENT_TIME, 42);
  while ((rc = sl_timer_pop(st, SL_EVENT_TIME, 42, &t)) == SL_ROW) {
    const sl_value *key;
    int n, kg;
    ASSERT_OK(sl_store_key(st, &key, &n, &kg), st);
    ASSERT(kg >= prev_kg);
    prev_kg = kg;
    fired++;
  }
  ASSERT_RC(rc, SL_DONE, st);
  ASSERT_EQ(fired, 50);
  su_close(st);
}

TEST(quick_timer_misuse) {
  sl_store *st = su_open("timers", 0, 1, NULL);
  int64_t t;
  ASSERT_RC(sl_timer_register(st, SL_EVENT_TIME, 1), SL_MISUSE, st);
  ASSERT(su_contains(sl_errmsg(st), "no key is set"));
  su_key_int(st, 1);
  ASSERT_RC(sl_timer_register(st, 3, 1), SL_MISUSE, st);
  ASSERT(su_contains(sl_errmsg(st), "domain"));
  ASSERT_RC(sl_timer_pop(st, SL_EVENT_TIME, 1, NULL), SL_MISUSE, st);
  ASSERT_RC(sl_timer_peek(NULL, SL_EVENT_TIME, &t), SL_MISUSE, NULL);
  ASSERT_RC(sl_timer_register(NULL, SL_EVENT_TIME, 1), SL_MISUSE, NULL);
  su_close(st);
}

TEST(quick_timer_pop_refuses_foreign_key_group) {
  /* A file whose sl_timers holds a key of another instance (a wrongly
  ** rescaled or tampered file) is reported, not fired. */
  sl_store *st = su_open("timers", 0, 2, NULL);
  char path[4096], sql[256];
  int first, last, kg = -1;
  int64_t k, t;
  ASSERT_OK(sl_key_group_range(128, 2, 0, &first, &last), NULL);
  for (k = 0;; k++) {
    sl_value v = sl_int(k);
    ASSERT_OK(sl_key_group(&v, 1, 128, &kg), NULL);
    if (kg > last) break;
  }
  snprintf(path, sizeof path, "%s", sl_store_path(st));
  su_close(st);
  {
    sqlite3 *db = su_db_open(path);
    unsigned char key[9];
    key[0] = SL_INTEGER;
    for (int i = 0; i < 8; i++) key[1 + i] = (unsigned char)((uint64_t)k >> (56 - 8 * i));
    sqlite3_stmt *q;
    snprintf(sql, sizeof sql, "INSERT INTO sl_timers VALUES(1, 5, %d, ?)", kg);
    ASSERT(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK);
    sqlite3_bind_blob(q, 1, key, 9, SQLITE_STATIC);
    ASSERT(sqlite3_step(q) == SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  st = su_open("timers", 0, 2, NULL);
  ASSERT_RC(sl_timer_pop(st, SL_EVENT_TIME, 10, &t), SL_CORRUPT, st);
  ASSERT(su_contains(sl_errmsg(st), "outside"));
  su_close(st);
}
