/*
** test_snapshot_manifest.c — the MANIFEST format: rendered text exactly as
** documented, parsed back to the same content, and every malformation
** refused with the line and reason (a changed byte, a missing or extra line,
** bad numbers, names, order, counts, checksum, format versions).
*/
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statelite.h"
#include "store_util.h"
#include "test.h"
#include "test_snapshot_util.h"

static const sl_allocator *al(void) { return slAllocDefault(); }
static const sl_fs *posix(void) {
  static sl_fs fs;
  slSnapFsInit(&fs, NULL);
  return &fs;
}

static void sample(slManifest *m, slMfOp *ops, slMfFile *fa, slMfFile *fb) {
  memset(m, 0, sizeof *m);
  m->id = 42;
  m->kind = SL_CHECKPOINT;
  m->time_ms = 1700000000123LL;
  m->format = 1;
  m->nops = 2;
  m->ops = ops;
  memset(ops, 0, 2 * sizeof *ops);
  snprintf(ops[0].name, sizeof ops[0].name, "counter");
  ops[0].parallelism = 2;
  ops[0].maxp = 128;
  ops[0].files = fa;
  fa[0].size = 1234; fa[0].raw = 8192; fa[0].crc = 0x0badf00du;
  fa[1].size = 99; fa[1].raw = 4096; fa[1].crc = 0xdeadbeefu;
  snprintf(ops[1].name, sizeof ops[1].name, "sink.1");
  ops[1].parallelism = 1;
  ops[1].maxp = 64;
  ops[1].files = fb;
  fb[0].size = 7; fb[0].raw = 512; fb[0].crc = 0;
}

static char *render(const slManifest *m, size_t *n) {
  char err[SL_ERRMSG_MAX], *text = NULL;
  SN_OK(slSnapMfFormat(err, al(), m, &text, n), NULL);
  return text;
}

/* Recomputes the checksum line of edited text (so only the edit is wrong). */
static char *reseal(const char *body_without_checksum) {
  su_buf b = {0, 0, 0};
  su_addf(&b, "%s", body_without_checksum);
  su_addf(&b, "checksum %08x\n", (unsigned)slSnapCrc(0, body_without_checksum,
                                                     strlen(body_without_checksum)));
  return su_take(&b);
}

static int parse(const char *text, char *err) {
  slManifest m;
  int rc = slSnapMfParse(err, al(), text, strlen(text), &m);
  if (rc == SL_OK) slSnapMfFree(al(), &m);
  return rc;
}

TEST(quick_manifest_render_and_parse) {
  slManifest m, back;
  slMfOp ops[2];
  slMfFile fa[2], fb[1];
  size_t n = 0;
  char err[SL_ERRMSG_MAX], *text;
  char want[1024];
  sample(&m, ops, fa, fb);
  text = render(&m, &n);
  snprintf(want, sizeof want,
           "statelite-manifest 1\n"
           "id 42\n"
           "kind checkpoint\n"
           "name -\n"
           "time_ms 1700000000123\n"
           "format 1\n"
           "operator counter 2 128\n"
           "file counter/0.db.zst 1234 8192 0badf00d\n"
           "file counter/1.db.zst 99 4096 deadbeef\n"
           "operator sink.1 1 64\n"
           "file sink.1/0.db.zst 7 512 00000000\n");
  ASSERT_EQ(strncmp(text, want, strlen(want)), 0);
  /* the example of docs/FORMAT.md, checksum included */
  ASSERT_STR(text + strlen(want), "checksum 4ef5ba89\n");
  ASSERT_EQ(n, strlen(want) + strlen("checksum 00000000\n"));
  {
    char line[64];
    snprintf(line, sizeof line, "checksum %08x\n", (unsigned)slSnapCrc(0, want, strlen(want)));
    ASSERT_STR(text + strlen(want), line);
  }
  SN_OK(slSnapMfParse(err, al(), text, n, &back), NULL);
  ASSERT_EQ(back.id, 42);
  ASSERT_EQ(back.kind, SL_CHECKPOINT);
  ASSERT_STR(back.name, "");
  ASSERT_EQ(back.time_ms, 1700000000123LL);
  ASSERT_EQ(back.format, 1);
  ASSERT_EQ(back.nops, 2);
  ASSERT_STR(back.ops[0].name, "counter");
  ASSERT_EQ(back.ops[0].parallelism, 2);
  ASSERT_EQ(back.ops[0].maxp, 128);
  ASSERT_EQ(back.ops[0].files[1].size, 99);
  ASSERT_EQ(back.ops[0].files[1].raw, 4096);
  ASSERT_EQ(back.ops[0].files[1].crc, 0xdeadbeefu);
  ASSERT_STR(back.ops[1].name, "sink.1");
  ASSERT_EQ(back.ops[1].files[0].crc, 0);
  slSnapMfFree(al(), &back);
  /* a savepoint */
  m.kind = SL_SAVEPOINT;
  snprintf(m.name, sizeof m.name, "before-upgrade");
  free(text);
  text = render(&m, &n);
  ASSERT_HAS(text, "kind savepoint\nname before-upgrade\n");
  SN_OK(slSnapMfParse(err, al(), text, n, &back), NULL);
  ASSERT_EQ(back.kind, SL_SAVEPOINT);
  ASSERT_STR(back.name, "before-upgrade");
  slSnapMfFree(al(), &back);
  free(text);
}

/* Each malformed variant (checksum fixed up) is refused, naming why. */
TEST(quick_manifest_malformed) {
  static const struct {
    const char *from, *to, *why;
    int rc;
  } cases[] = {
      {"statelite-manifest 1\n", "statelite-manifest 2\n", "format 2", SL_MISMATCH},
      {"statelite-manifest 1\n", "statelite 1\n", "not a statelite MANIFEST", SL_CORRUPT},
      {"id 42\n", "id 042\n", "line 2", SL_CORRUPT},
      {"id 42\n", "id -42\n", "line 2", SL_CORRUPT},
      {"id 42\n", "id 0\n", "line 2", SL_CORRUPT},
      {"id 42\n", "id 99999999999999999999\n", "line 2", SL_CORRUPT},
      {"id 42\n", "id  42\n", "two spaces", SL_CORRUPT},
      {"id 42\n", "id 42 \n", "space at the start or end", SL_CORRUPT},
      {"id 42\n", "", "line 2", SL_CORRUPT},
      {"kind checkpoint\n", "kind snapshot\n", "line 3", SL_CORRUPT},
      {"name -\n", "name x\n", "'-'", SL_CORRUPT},
      {"time_ms 1700000000123\n", "time_ms 17e11\n", "line 5", SL_CORRUPT},
      {"format 1\n", "format 2\n", "state file format 2", SL_MISMATCH},
      {"operator counter 2 128\n", "operator counter 3 128\n", "line 10: expected 'file",
       SL_CORRUPT},
      {"operator counter 2 128\n", "operator counter 2 1\n", "parallelism", SL_CORRUPT},
      {"operator counter 2 128\n", "operator counter 0 128\n", "parallelism", SL_CORRUPT},
      {"operator counter 2 128\n", "operator counter 2 40000\n", "parallelism", SL_CORRUPT},
      {"operator counter 2 128\n", "operator ../x 2 128\n", "operator name", SL_CORRUPT},
      {"operator counter 2 128\n", "operator .hidden 2 128\n", "operator name", SL_CORRUPT},
      {"operator sink.1 1 64\n", "operator counter 1 64\n", "ascending", SL_CORRUPT},
      {"file counter/1.db.zst", "file counter/../1.db.zst", "expected the file counter/1",
       SL_CORRUPT},
      {"file counter/1.db.zst 99 ", "file counter/1.db.zst 0 ", "file size", SL_CORRUPT},
      {"4096 deadbeef", "100 deadbeef", "raw size", SL_CORRUPT},
      {"deadbeef\n", "DEADBEEF\n", "checksum is not 8", SL_CORRUPT},
      {"deadbeef\n", "deadbee\n", "checksum is not 8", SL_CORRUPT},
      {"file sink.1/0.db.zst 7 512 00000000\n", "", "line 11: expected 'file", SL_CORRUPT},
      {"file sink.1/0.db.zst 7 512 00000000\n",
       "file sink.1/0.db.zst 7 512 00000000\nfile sink.1/1.db.zst 7 512 00000000\n",
       "expected 'operator", SL_CORRUPT},
      {"format 1\n", "format 1\n\n", "empty line", SL_CORRUPT},
      {"format 1\n", "format 1\r\n", "printable", SL_CORRUPT},
      {"operator counter 2 128\n", "operator counter 2 128 extra\n", "expected 'operator",
       SL_CORRUPT},
  };
  slManifest m;
  slMfOp ops[2];
  slMfFile fa[2], fb[1];
  size_t n = 0;
  char *text, err[SL_ERRMSG_MAX];
  sample(&m, ops, fa, fb);
  text = render(&m, &n);
  SN_OK(parse(text, err), NULL);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    su_buf b = {0, 0, 0};
    const char *at = strstr(text, cases[i].from);
    char *body, *sealed;
    int rc;
    ASSERT_MSG(at != NULL, "case %zu: '%s' not in the sample", i, cases[i].from);
    su_addf(&b, "%.*s%s%s", (int)(at - text), text, cases[i].to, at + strlen(cases[i].from));
    body = su_take(&b);
    *strstr(body, "checksum ") = 0;
    sealed = reseal(body);
    rc = parse(sealed, err);
    ASSERT_MSG(rc == cases[i].rc, "case %zu (%s): rc %s, want %s (%s)", i, cases[i].to,
               sl_errstr(rc), sl_errstr(cases[i].rc), err);
    ASSERT_MSG(su_contains(err, cases[i].why), "case %zu: message \"%s\" lacks \"%s\"", i, err,
               cases[i].why);
    free(body);
    free(sealed);
  }
  free(text);
}

TEST(quick_manifest_checksum_and_truncation) {
  slManifest m;
  slMfOp ops[2];
  slMfFile fa[2], fb[1];
  size_t n = 0;
  char *text, err[SL_ERRMSG_MAX];
  sample(&m, ops, fa, fb);
  text = render(&m, &n);
  /* every single flipped bit of the body is caught by the checksum */
  for (size_t i = 0; i < n - 18; i++) {
    for (int bit = 0; bit < 8; bit++) {
      slManifest back;
      int rc;
      text[i] ^= (char)(1 << bit);
      rc = slSnapMfParse(err, al(), text, n, &back);
      ASSERT_MSG(rc != SL_OK, "flipping bit %d of byte %zu went unnoticed", bit, i);
      text[i] ^= (char)(1 << bit);
    }
  }
  /* every truncation is refused */
  for (size_t k = 0; k < n; k++) {
    slManifest back;
    ASSERT_RC(slSnapMfParse(err, al(), text, k, &back), SL_CORRUPT, NULL);
  }
  ASSERT_RC(slSnapMfParse(err, al(), text, n - 1, &(slManifest){0}), SL_CORRUPT, NULL);
  ASSERT_HAS(err, "truncated");
  /* a bad checksum line */
  text[n - 2] = text[n - 2] == '0' ? '1' : '0';
  ASSERT_RC(slSnapMfParse(err, al(), text, n, &(slManifest){0}), SL_CORRUPT, NULL);
  ASSERT_HAS(err, "checksum");
  free(text);
  /* not a manifest at all, and text too large */
  ASSERT_RC(slSnapMfParse(err, al(), "hello\n", 6, &(slManifest){0}), SL_CORRUPT, NULL);
  ASSERT_RC(slSnapMfParse(err, al(), "", 0, &(slManifest){0}), SL_CORRUPT, NULL);
}

/* Files whose name is the MANIFEST: missing, a directory, empty. */
TEST(quick_manifest_load) {
  char path[4096], err[SL_ERRMSG_MAX];
  slManifest m;
  snprintf(path, sizeof path, "%s/MANIFEST", test_dir());
  ASSERT_RC(slSnapMfLoad(err, posix(), al(), path, &m), SL_NOTFOUND, NULL);
  su_write_file(path, "", 0);
  ASSERT_RC(slSnapMfLoad(err, posix(), al(), path, &m), SL_CORRUPT, NULL);
  ASSERT_HAS(err, path);
  unlink(path);
  ASSERT_EQ(mkdir(path, 0777), 0);
  ASSERT_RC(slSnapMfLoad(err, posix(), al(), path, &m), SL_CORRUPT, NULL);
}
