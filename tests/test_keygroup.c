/*
** test_keygroup.c — key groups: the canonical key bytes and murmur3 arithmetic
** checked against an independent reference implementation and literal
** vectors, the range/owner arithmetic over many parallelisms, bad arguments,
** and a store refusing keys outside its instance's range.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Reference murmur3_x86_32 and canonical key bytes, written from the spec   */
/* ------------------------------------------------------------------------ */

static uint32_t ref_rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

static uint32_t ref_murmur3(const uint8_t *d, size_t len, uint32_t seed) {
  const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
  uint32_t h = seed, k;
  size_t nb = len / 4, i;
  const uint8_t *tail = d + nb * 4;
  for (i = 0; i < nb; i++) {
    k = (uint32_t)d[4 * i] | ((uint32_t)d[4 * i + 1] << 8) |
        ((uint32_t)d[4 * i + 2] << 16) | ((uint32_t)d[4 * i + 3] << 24);
    k *= c1;
    k = ref_rotl(k, 15);
    k *= c2;
    h ^= k;
    h = ref_rotl(h, 13);
    h = h * 5 + 0xe6546b64u;
  }
  k = 0;
  switch (len & 3) {
  case 3: k ^= (uint32_t)tail[2] << 16; /* fall through */
  case 2: k ^= (uint32_t)tail[1] << 8;  /* fall through */
  case 1:
    k ^= tail[0];
    k *= c1;
    k = ref_rotl(k, 15);
    k *= c2;
    h ^= k;
    break;
  default: break;
  }
  h ^= (uint32_t)len;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

static size_t ref_put_be64(uint8_t *p, uint64_t v) {
  int i;
  for (i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
  return 8;
}

/* Canonical bytes of a key into buf (large enough); returns the length. */
static size_t ref_canonical(const sl_value *key, int n, uint8_t *buf) {
  size_t len = 0;
  int i;
  for (i = 0; i < n; i++) {
    const sl_value *v = &key[i];
    buf[len++] = (uint8_t)v->type;
    if (v->type == SL_INTEGER) {
      len += ref_put_be64(buf + len, (uint64_t)v->v.i);
    } else if (v->type == SL_REAL) {
      double r = v->v.r;
      uint64_t bits;
      if (r == 0.0) r = 0.0; /* -0.0 -> +0.0 */
      memcpy(&bits, &r, 8);
      if (isnan(v->v.r)) bits = 0x7FF8000000000000ULL;
      len += ref_put_be64(buf + len, bits);
    } else {
      uint32_t m = (uint32_t)v->n;
      buf[len++] = (uint8_t)(m >> 24);
      buf[len++] = (uint8_t)(m >> 16);
      buf[len++] = (uint8_t)(m >> 8);
      buf[len++] = (uint8_t)m;
      if (v->n) memcpy(buf + len, v->v.p, v->n);
      len += v->n;
    }
  }
  return len;
}

static int ref_key_group(const sl_value *key, int n, int maxp) {
  uint8_t buf[4096];
  size_t len = ref_canonical(key, n, buf);
  return (int)(ref_murmur3(buf, len, 0) % (uint32_t)maxp);
}

static int lib_key_group(const sl_value *key, int n, int maxp) {
  int kg = -1;
  ASSERT_OK(sl_key_group(key, n, maxp, &kg), NULL);
  ASSERT(kg >= 0 && kg < maxp);
  return kg;
}

TEST(quick_keygroup_reference_murmur3) {
  const char *fox = "The quick brown fox jumps over the lazy dog";
  ASSERT_EQ(ref_murmur3((const uint8_t *)"", 0, 0), 0u);
  ASSERT_EQ(ref_murmur3((const uint8_t *)"hello", 5, 0), 0x248bfa47u);
  ASSERT_EQ(ref_murmur3((const uint8_t *)fox, strlen(fox), 0), 0x2e4ff723u);
}

TEST(quick_keygroup_literal_vectors) {
  sl_value k1 = sl_int(42);
  sl_value k2 = sl_text("hello");
  sl_value k3[2];
  k3[0] = sl_text("a");
  k3[1] = sl_int(1);
  /* Computed once with the reference above; pinned so that a change of the
  ** encoding or the hash anywhere shows up. */
  ASSERT_EQ(ref_key_group(&k1, 1, 128), 27);
  ASSERT_EQ(ref_key_group(&k2, 1, 128), 103);
  ASSERT_EQ(ref_key_group(k3, 2, 128), 5);
  ASSERT_EQ(lib_key_group(&k1, 1, 128), 27);
  ASSERT_EQ(lib_key_group(&k2, 1, 128), 103);
  ASSERT_EQ(lib_key_group(k3, 2, 128), 5);
}

/* The vectors of docs/FORMAT.md: canonical bytes, hash and key group. */
TEST(quick_keygroup_format_vectors) {
  static const unsigned char blob[] = {0x00, 0xff};
  static const struct {
    const char *hex;
    uint32_t hash;
    int kg;
  } want[8] = {
      {"01000000000000002A", 0x2BC49D9Bu, 27},
      {"01FFFFFFFFFFFFFFFF", 0x7415C8C7u, 71},
      {"020000000000000000", 0xCEC43499u, 25},
      {"023FF8000000000000", 0x4F7D2BB9u, 57},
      {"030000000568656C6C6F", 0x5A61E8E7u, 103},
      {"0300000000", 0xF395BB28u, 40},
      {"040000000200FF", 0xD5A85A02u, 2},
      {"0300000006757365722D37010000000000000003", 0x39C91634u, 52},
  };
  sl_value keys[9];
  int nk[8] = {1, 1, 1, 1, 1, 1, 1, 2}, i;
  keys[0] = sl_int(42);
  keys[1] = sl_int(-1);
  keys[2] = sl_real(-0.0);
  keys[3] = sl_real(1.5);
  keys[4] = sl_text("hello");
  keys[5] = sl_text("");
  keys[6] = sl_blob(blob, 2);
  keys[7] = sl_text("user-7");
  keys[8] = sl_int(3);
  for (i = 0; i < 8; i++) {
    uint8_t buf[64];
    char hex[160];
    size_t len = ref_canonical(&keys[i], nk[i], buf), j;
    for (j = 0; j < len; j++) snprintf(hex + 2 * j, 3, "%02X", buf[j]);
    ASSERT_STR(hex, want[i].hex);
    ASSERT_EQ(ref_murmur3(buf, len, 0), want[i].hash);
    ASSERT_EQ(ref_key_group(&keys[i], nk[i], 128), want[i].kg);
    ASSERT_EQ(lib_key_group(&keys[i], nk[i], 128), want[i].kg);
  }
  /* maxp 128, p 3: 0..42, 43..85, 86..127 */
  for (i = 0; i < 3; i++) {
    int first = -1, last = -1;
    ASSERT_OK(sl_key_group_range(128, 3, i, &first, &last), NULL);
    ASSERT_EQ(first, i == 0 ? 0 : i == 1 ? 43 : 86);
    ASSERT_EQ(last, i == 0 ? 42 : i == 1 ? 85 : 127);
  }
}

TEST(quick_keygroup_canonical_bytes_edge_values) {
  static const int maxps[] = {1, 2, 7, 128, 1000, 32768};
  static const unsigned char blob[] = {0, 1, 2, 0xff, 0x80, 0};
  double nan_a = nan(""), nan_b = -nan("");
  sl_value keys[24];
  int nk = 0, i, m;
  keys[nk++] = sl_int(0);
  keys[nk++] = sl_int(-1);
  keys[nk++] = sl_int(1);
  keys[nk++] = sl_int(INT64_MAX);
  keys[nk++] = sl_int(INT64_MIN);
  keys[nk++] = sl_int(0x0102030405060708LL);
  keys[nk++] = sl_real(0.0);
  keys[nk++] = sl_real(-0.0);
  keys[nk++] = sl_real(1.5);
  keys[nk++] = sl_real(-1e300);
  keys[nk++] = sl_real(nan_a);
  keys[nk++] = sl_real(nan_b);
  keys[nk++] = sl_real(INFINITY);
  keys[nk++] = sl_text("");
  keys[nk++] = sl_text("hello");
  keys[nk++] = sl_textn("a\0b", 3);
  keys[nk++] = sl_text("\xc3\xa9t\xc3\xa9");
  keys[nk++] = sl_blob(blob, sizeof blob);
  keys[nk++] = sl_blob(blob, 0);
  keys[nk++] = sl_blob("hello", 5);
  for (m = 0; m < (int)(sizeof maxps / sizeof maxps[0]); m++) {
    for (i = 0; i < nk; i++) {
      int want = ref_key_group(&keys[i], 1, maxps[m]);
      int got = lib_key_group(&keys[i], 1, maxps[m]);
      ASSERT_MSG(got == want, "key #%d at maxp %d: got %d, want %d", i,
                 maxps[m], got, want);
    }
  }
  /* -0.0 and +0.0 are one key, and every NaN is one key. */
  ASSERT_EQ(lib_key_group(&keys[6], 1, 32768), lib_key_group(&keys[7], 1, 32768));
  ASSERT_EQ(lib_key_group(&keys[10], 1, 32768), lib_key_group(&keys[11], 1, 32768));
  /* The tag separates TEXT and BLOB of the same bytes: at least the
  ** canonical bytes differ, so the reference must differ somewhere. */
  {
    uint8_t a[64], b[64];
    size_t la = ref_canonical(&keys[14], 1, a), lb = ref_canonical(&keys[19], 1, b);
    ASSERT(la == lb && memcmp(a, b, la) != 0);
  }
}

TEST(quick_keygroup_multi_column_vectors) {
  su_rng r = {0x9E3779B97F4A7C15ULL};
  static const int maxps[] = {1, 128, 32768, 777};
  char texts[16][20];
  unsigned char blobs[16][12];
  int round;
  for (round = 0; round < 2000; round++) {
    sl_value key[SL_MAX_KEY_COLUMNS];
    int n = 1 + (int)su_rand_below(&r, SL_MAX_KEY_COLUMNS), i, m;
    for (i = 0; i < n; i++) {
      switch (su_rand_below(&r, 4)) {
      case 0: key[i] = sl_int((int64_t)su_rand(&r)); break;
      case 1: key[i] = sl_real((double)(int64_t)su_rand(&r) / 1024.0); break;
      case 2: {
        size_t len = su_rand_below(&r, 19), j;
        for (j = 0; j < len; j++) texts[i][j] = (char)('a' + su_rand_below(&r, 26));
        texts[i][len] = 0;
        key[i] = sl_textn(texts[i], len);
        break;
      }
      default: {
        size_t len = su_rand_below(&r, 12), j;
        for (j = 0; j < len; j++) blobs[i][j] = (unsigned char)su_rand(&r);
        key[i] = sl_blob(blobs[i], len);
        break;
      }
      }
    }
    for (m = 0; m < 4; m++) {
      int want = ref_key_group(key, n, maxps[m]);
      int got = lib_key_group(key, n, maxps[m]);
      ASSERT_MSG(got == want, "round %d (%d columns) maxp %d: got %d want %d",
                 round, n, maxps[m], got, want);
    }
  }
}

TEST(quick_keygroup_ranges_partition_all_groups) {
  static const int maxps[] = {1, 7, 128, 32768};
  int mi, p;
  for (mi = 0; mi < 4; mi++) {
    int maxp = maxps[mi];
    for (p = 1; p <= 7 && p <= maxp; p++) {
      int i, next = 0;
      for (i = 0; i < p; i++) {
        int first = -1, last = -1, kg;
        ASSERT_OK(sl_key_group_range(maxp, p, i, &first, &last), NULL);
        ASSERT_EQ(first, (i * maxp + p - 1) / p);
        ASSERT_EQ(last, ((i + 1) * maxp - 1) / p);
        ASSERT_MSG(first == next, "maxp %d p %d instance %d starts at %d, not %d",
                   maxp, p, i, first, next);
        ASSERT_MSG(first <= last, "maxp %d p %d instance %d: empty range", maxp, p, i);
        for (kg = first; kg <= last; kg++) {
          int owner = -1;
          ASSERT_OK(sl_key_group_owner(maxp, p, kg, &owner), NULL);
          ASSERT_MSG(owner == i, "maxp %d p %d kg %d: owner %d, range says %d",
                     maxp, p, kg, owner, i);
          ASSERT_EQ(owner, (int)((int64_t)kg * p / maxp));
        }
        next = last + 1;
      }
      ASSERT_MSG(next == maxp, "maxp %d p %d: ranges end at %d", maxp, p, next - 1);
    }
  }
}

TEST(quick_keygroup_bad_arguments) {
  sl_value k = sl_int(1), bad[2];
  sl_value many[SL_MAX_KEY_COLUMNS + 1];
  int kg = -7, a = 0, b = 0, i;
  for (i = 0; i <= SL_MAX_KEY_COLUMNS; i++) many[i] = sl_int(i);
  ASSERT_RC(sl_key_group(NULL, 1, 128, &kg), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group(&k, 1, 128, NULL), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group(&k, 0, 128, &kg), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group(&k, -1, 128, &kg), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group(many, SL_MAX_KEY_COLUMNS + 1, 128, &kg), SL_MISUSE, NULL);
  ASSERT_OK(sl_key_group(many, SL_MAX_KEY_COLUMNS, 128, &kg), NULL);
  ASSERT_EQ(kg, ref_key_group(many, SL_MAX_KEY_COLUMNS, 128));
  ASSERT_RC(sl_key_group(&k, 1, 0, &kg), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group(&k, 1, -5, &kg), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group(&k, 1, SL_MAX_MAX_PARALLELISM + 1, &kg), SL_MISUSE, NULL);
  ASSERT_OK(sl_key_group(&k, 1, SL_MAX_MAX_PARALLELISM, &kg), NULL);
  bad[0] = sl_int(1);
  bad[1] = sl_null();
  ASSERT_RC(sl_key_group(bad, 2, 128, &kg), SL_MISUSE, NULL);
  bad[1] = sl_int(1);
  bad[1].type = 99;
  ASSERT_RC(sl_key_group(bad, 2, 128, &kg), SL_MISUSE, NULL);
  bad[1].type = 0;
  ASSERT_RC(sl_key_group(bad, 2, 128, &kg), SL_MISUSE, NULL);
  bad[1] = sl_textn(NULL, 3);
  ASSERT_RC(sl_key_group(bad, 2, 128, &kg), SL_MISUSE, NULL);

  ASSERT_RC(sl_key_group_range(128, 0, 0, &a, &b), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_range(128, 129, 0, &a, &b), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_range(128, 2, 2, &a, &b), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_range(128, 2, -1, &a, &b), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_range(0, 1, 0, &a, &b), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_range(SL_MAX_MAX_PARALLELISM + 1, 1, 0, &a, &b), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_range(128, 2, 0, NULL, &b), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_range(128, 2, 0, &a, NULL), SL_MISUSE, NULL);
  ASSERT_OK(sl_key_group_range(128, 128, 127, &a, &b), NULL);
  ASSERT_EQ(a, 127);
  ASSERT_EQ(b, 127);

  ASSERT_RC(sl_key_group_owner(128, 2, -1, &a), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_owner(128, 2, 128, &a), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_owner(128, 0, 5, &a), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_owner(128, 129, 5, &a), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_owner(0, 1, 0, &a), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_owner(SL_MAX_MAX_PARALLELISM + 1, 1, 0, &a), SL_MISUSE, NULL);
  ASSERT_RC(sl_key_group_owner(128, 2, 5, NULL), SL_MISUSE, NULL);
  ASSERT_OK(sl_key_group_owner(128, 2, 127, &a), NULL);
  ASSERT_EQ(a, 1);
}

/* Finds an integer key owned by instance `want` of `p` (maxp 128). */
static int64_t key_of_instance(int p, int want, int *kg_out) {
  int64_t i;
  for (i = 0; i < 100000; i++) {
    sl_value k = sl_int(i);
    int kg = lib_key_group(&k, 1, 128), owner = -1;
    ASSERT_OK(sl_key_group_owner(128, p, kg, &owner), NULL);
    if (owner == want) {
      *kg_out = kg;
      return i;
    }
  }
  ASSERT_MSG(0, "no key for instance %d of %d", want, p);
  return -1;
}

TEST(quick_keygroup_store_refuses_foreign_keys) {
  sl_store *st[2];
  int kgs[2], i;
  int64_t keys[2];
  keys[0] = key_of_instance(2, 0, &kgs[0]);
  keys[1] = key_of_instance(2, 1, &kgs[1]);
  st[0] = su_open("router", 0, 2, NULL);
  st[1] = su_open("router", 1, 2, NULL);
  for (i = 0; i < 2; i++) {
    const char *op = NULL;
    int sub = -1, par = -1, maxp = -1, first = -1, last = -1;
    sl_value own = sl_int(keys[i]), other = sl_int(keys[1 - i]);
    int kg = -1;
    char num[32];
    ASSERT_OK(sl_store_info(st[i], &op, &sub, &par, &maxp, &first, &last), st[i]);
    ASSERT_STR(op, "router");
    ASSERT_EQ(sub, i);
    ASSERT_EQ(par, 2);
    ASSERT_EQ(maxp, 128);
    ASSERT_EQ(first, i == 0 ? 0 : 64);
    ASSERT_EQ(last, i == 0 ? 63 : 127);

    ASSERT_OK(sl_store_set_key(st[i], &own, 1, &kg), st[i]);
    ASSERT_EQ(kg, kgs[i]);
    ASSERT_RC(sl_store_set_key(st[i], &other, 1, &kg), SL_MISUSE, st[i]);
    snprintf(num, sizeof num, "%d", kgs[1 - i]);
    ASSERT_ERRMSG_HAS(st[i], num);
  }
  su_close(st[0]);
  su_close(st[1]);
}

TEST(quick_keygroup_store_uses_configured_max_parallelism) {
  sl_config cfg;
  sl_store *st;
  sl_value k = sl_text("hello");
  const char *op = NULL;
  int kg = -1, first = -1, last = -1, maxp = -1, sub = -1, par = -1;
  sl_config_init(&cfg);
  ASSERT_EQ(cfg.max_parallelism, SL_DEFAULT_MAX_PARALLELISM);
  cfg.max_parallelism = 1000;
  st = su_open("wide", 0, 1, &cfg);
  ASSERT_OK(sl_store_info(st, &op, &sub, &par, &maxp, &first, &last), st);
  ASSERT_EQ(maxp, 1000);
  ASSERT_EQ(first, 0);
  ASSERT_EQ(last, 999);
  ASSERT_OK(sl_store_set_key(st, &k, 1, &kg), st);
  ASSERT_EQ(kg, ref_key_group(&k, 1, 1000));
  su_close(st);
}
