/*
** keygroup.c — murmur3, the canonical bytes of a typed key, and the key-group
** arithmetic that decides which operator instance owns a key (the same
** arithmetic as Flink's KeyGroupRangeAssignment).
*/
#include <math.h>
#include <string.h>

#include "base/base.h"

/* Big-endian 64-bit stores and loads, written so that compilers make one
** byte-swapped move of each. */
static void slPut64(unsigned char *o, uint64_t v) {
  o[0] = (unsigned char)(v >> 56); o[1] = (unsigned char)(v >> 48);
  o[2] = (unsigned char)(v >> 40); o[3] = (unsigned char)(v >> 32);
  o[4] = (unsigned char)(v >> 24); o[5] = (unsigned char)(v >> 16);
  o[6] = (unsigned char)(v >> 8);  o[7] = (unsigned char)v;
}
static uint64_t slGet64(const unsigned char *o) {
  return (uint64_t)o[0] << 56 | (uint64_t)o[1] << 48 | (uint64_t)o[2] << 40 |
         (uint64_t)o[3] << 32 | (uint64_t)o[4] << 24 | (uint64_t)o[5] << 16 |
         (uint64_t)o[6] << 8 | (uint64_t)o[7];
}

size_t slKeySize(const sl_value *key, int n, int allow_nan, const char **why, int *bad) {
  size_t sz = 0;
  for (int i = 0; i < n; i++) {
    *bad = i;
    switch (key[i].type) {
      case SL_INTEGER: sz += 9; break;
      case SL_REAL:
        if (!allow_nan && isnan(key[i].v.r)) {
          *why = "is NaN, which SQLite cannot store in a key";
          return 0;
        }
        sz += 9;
        break;
      case SL_TEXT:
      case SL_BLOB:
        if (key[i].n > 0x7fffffffu) { *why = "is longer than 2 GiB"; return 0; }
        if (key[i].n && !key[i].v.p) { *why = "has a NULL pointer"; return 0; }
        sz += 5 + key[i].n;
        break;
      case SL_NULL: *why = "is NULL"; return 0;
      default: *why = "has an unknown type"; return 0;
    }
  }
  return sz;
}

void slKeyEncodeCopy(const sl_value *key, int n, unsigned char *o, sl_value *copy) {
  for (int i = 0; i < n; i++) {
    uint64_t bits;
    double d;
    *o++ = (unsigned char)key[i].type;
    switch (key[i].type) {
      case SL_INTEGER:
        slPut64(o, (uint64_t)key[i].v.i);
        o += 8;
        if (copy) copy[i] = key[i];
        break;
      case SL_REAL:
        d = key[i].v.r == 0.0 ? 0.0 : key[i].v.r;
        memcpy(&bits, &d, 8);
        if (isnan(d)) bits = 0x7FF8000000000000ull;
        slPut64(o, bits);
        o += 8;
        if (copy) {
          copy[i].type = SL_REAL;
          copy[i].n = 0;
          memcpy(&copy[i].v.r, &bits, 8);
        }
        break;
      default: /* TEXT, BLOB */
        o[0] = (unsigned char)(key[i].n >> 24); o[1] = (unsigned char)(key[i].n >> 16);
        o[2] = (unsigned char)(key[i].n >> 8); o[3] = (unsigned char)key[i].n;
        if (key[i].n) memcpy(o + 4, key[i].v.p, key[i].n);
        if (copy) {
          copy[i].type = key[i].type;
          copy[i].n = key[i].n;
          copy[i].v.p = o + 4;
        }
        o += 4 + key[i].n;
    }
  }
}

void slKeyEncode(const sl_value *key, int n, unsigned char *o) { slKeyEncodeCopy(key, n, o, NULL); }

size_t slKeyDecode(const unsigned char *buf, size_t len, sl_value *out, int n) {
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    uint64_t bits;
    size_t m;
    if (off >= len) return 0;
    out[i].type = buf[off++];
    out[i].n = 0;
    switch (out[i].type) {
      case SL_INTEGER:
      case SL_REAL:
        if (len - off < 8) return 0;
        bits = slGet64(buf + off);
        if (out[i].type == SL_INTEGER) out[i].v.i = (int64_t)bits;
        else memcpy(&out[i].v.r, &bits, 8);
        off += 8;
        break;
      case SL_TEXT:
      case SL_BLOB:
        if (len - off < 4) return 0;
        m = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 | (size_t)buf[off + 2] << 8 | buf[off + 3];
        off += 4;
        if (len - off < m) return 0;
        out[i].n = m;
        out[i].v.p = buf + off;
        off += m;
        break;
      default: return 0;
    }
  }
  return off;
}


static int slMaxpOk(int maxp) { return maxp >= 1 && maxp <= SL_MAX_MAX_PARALLELISM; }

int sl_key_group(const sl_value *key, int n, int max_parallelism, int *kg) {
  unsigned char small[256], *buf = small;
  const char *why = "";
  int bad = 0;
  size_t sz;
  if (!key || !kg || n < 1 || n > SL_MAX_KEY_COLUMNS || !slMaxpOk(max_parallelism))
    return SL_MISUSE;
  sz = slKeySize(key, n, 1, &why, &bad);
  if (sz == 0) return SL_MISUSE;
  if (sz > sizeof small) {
    buf = slMalloc(slAllocDefault(), sz);
    if (!buf) return SL_NOMEM;
  }
  slKeyEncode(key, n, buf);
  *kg = slKeyGroupOf(slMurmur3(buf, sz, 0), max_parallelism);
  if (buf != small) slFree(slAllocDefault(), buf);
  return SL_OK;
}

int sl_key_group_range(int max_parallelism, int parallelism, int index, int *first, int *last) {
  int64_t maxp = max_parallelism, p = parallelism, i = index;
  if (!first || !last || !slMaxpOk(max_parallelism) || parallelism < 1 ||
      parallelism > max_parallelism || index < 0 || index >= parallelism)
    return SL_MISUSE;
  *first = (int)((i * maxp + p - 1) / p);
  *last = (int)(((i + 1) * maxp - 1) / p);
  return SL_OK;
}

int sl_key_group_owner(int max_parallelism, int parallelism, int kg, int *index) {
  if (!index || !slMaxpOk(max_parallelism) || parallelism < 1 || parallelism > max_parallelism ||
      kg < 0 || kg >= max_parallelism)
    return SL_MISUSE;
  *index = (int)((int64_t)kg * parallelism / max_parallelism);
  return SL_OK;
}
