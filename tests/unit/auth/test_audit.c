/* test_audit.c -- unit tests for auth/ (the audit trail): records from many
 * threads chained without a gap, reopening, rolling, a torn last line,
 * every byte of a record flipped in turn, deleted, swapped and truncated
 * records named by verify, a chain rewritten whole caught by a recorded
 * head, any bytes kept exactly, a failed write taken back, and the SHA-256
 * of the bytes sent against known values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#define _XOPEN_SOURCE_EXTENDED 1
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/audit.h"
#include "auth/audit_int.h"
#include "common/rw.h"

/* ---- fixture: a fresh archive directory per test ---- */

struct fx {
    char dir[64];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_audit-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static audit_t *open_ok(const char *dir)
{
    char err[RW_ERRSZ] = "";
    audit_t *a = NULL;
    int rc = audit_open(dir, &a, err);
    if (rc != 0)
        fail_msg("audit_open(%s): %d %s", dir, rc, err);
    return a;
}

static uint64_t append_ok(audit_t *a, const char *principal, int64_t t)
{
    char err[RW_ERRSZ] = "";
    struct audit_rec r;
    static const char *const pts[] = {"eth0", NULL};
    audit_rec_init(&r);
    r.time_ns = t;
    r.principal = principal;
    r.role = "analyst";
    r.method = "token";
    r.client = "192.0.2.7:50312";
    r.route = "GET /api/v1/packets";
    r.filter = "port 25";
    r.points = pts;
    r.status = 200;
    r.packets = 3;
    r.bytes = 300;
    if (audit_append(a, &r, err) != 0)
        fail_msg("audit_append: %s", err);
    return r.seq;
}

static char *path_of(const struct fx *f, uint64_t num)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/audit/" AUDIT_NAME_FMT, f->dir, (unsigned long long)num);
    return p;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

static void spit(const char *path, const char *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

/* Offset of line k (1-based) of b, and its length with the '\n'. */
static size_t line_at(const char *b, size_t n, int k, size_t *len)
{
    size_t off = 0;
    for (int i = 1; i < k; i++) {
        const char *nl = memchr(b + off, '\n', n - off);
        assert_non_null(nl);
        off = (size_t)(nl - b) + 1;
    }
    const char *nl = memchr(b + off, '\n', n - off);
    *len = nl ? (size_t)(nl - (b + off)) + 1 : n - off;
    return off;
}

/* What verify says: the first problem's file, line and seq, and how many. */
struct seen {
    int n;
    char file[64];
    uint64_t line, seq;
    char msg[RW_ERRSZ];
};

static void on_problem(void *arg, const struct audit_problem *p)
{
    struct seen *s = arg;
    if (s->n++ == 0) {
        snprintf(s->file, sizeof s->file, "%s", p->file);
        s->line = p->line;
        s->seq = p->seq;
        snprintf(s->msg, sizeof s->msg, "%s", p->msg);
    }
}

static int verify(const char *dir, const struct audit_expect *want, struct seen *s,
                  struct audit_stats *st)
{
    char err[RW_ERRSZ] = "";
    struct audit_stats st0;
    memset(s, 0, sizeof *s);
    int rc = audit_verify(dir, want, on_problem, s, st ? st : &st0, err);
    if (rc == RW_ECORRUPT && strcmp(err, s->msg))
        fail_msg("verify's err '%s' is not its first problem '%s'", err, s->msg);
    return rc;
}

static void verify_clean(const char *dir, uint64_t records)
{
    struct seen s;
    struct audit_stats st;
    int rc = verify(dir, NULL, &s, &st);
    if (rc != 0)
        fail_msg("verify: %d problems, first: %s", s.n, s.msg);
    assert_int_equal(st.records, records);
    assert_int_equal(st.last_seq, records);
}

/* ---- the SHA-256 of the bytes sent ---- */

static void hash_of(const void *p, size_t n, size_t piece, char hex[AUDIT_HEXSZ])
{
    char err[RW_ERRSZ];
    audit_hash_t *h = audit_hash_new();
    assert_non_null(h);
    for (size_t i = 0; i < n; i += piece)
        audit_hash_update(h, (const char *)p + i, n - i < piece ? n - i : piece);
    assert_int_equal(audit_hash_bytes(h), n);
    assert_int_equal(audit_hash_final(h, hex, err), 0);
}

static void test_hash_vectors(void **state)
{
    (void)state;
    /* FIPS 180-2 appendix B and the empty string, as sha256sum prints them. */
    static const struct {
        const char *in;
        const char *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"hello", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
    };
    char hex[AUDIT_HEXSZ];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hash_of(v[i].in, strlen(v[i].in), 1, hex);
        assert_string_equal(hex, v[i].hex);
        hash_of(v[i].in, strlen(v[i].in), 7, hex);
        assert_string_equal(hex, v[i].hex);
    }
    /* A million 'a' fed in uneven pieces, as a streamed answer is. */
    char *m = malloc(1000000);
    assert_non_null(m);
    memset(m, 'a', 1000000);
    hash_of(m, 1000000, 65531, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(m);
    audit_hash_free(audit_hash_new()); /* abandoned: freed without a digest */
    audit_hash_free(NULL);
}

/* ---- writing ---- */

struct worker {
    audit_t *a;
    int id, n;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "t%d", w->id);
    for (int i = 0; i < w->n; i++)
        append_ok(w->a, name, 0);
    return NULL;
}

struct tally {
    uint64_t next, per[8];
};

static int count_rec(void *arg, const struct audit_rec *r, const char *line, size_t len)
{
    struct tally *t = arg;
    (void)line, (void)len;
    assert_int_equal(r->seq, t->next);
    t->next++;
    assert_true(r->principal[0] == 't' && r->principal[1] >= '0' && r->principal[1] < '8');
    t->per[r->principal[1] - '0']++;
    return 0;
}

static void test_threads(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ], hex2[AUDIT_HEXSZ];
    audit_t *a = open_ok(f->dir);
    audit_set_roll(a, 64 << 10); /* a few rolls under the threads' feet */
    pthread_t th[8];
    struct worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){a, i, 150};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    uint64_t seq, seq2;
    audit_last(a, &seq, hex);
    assert_int_equal(seq, 1200);
    audit_close(a);
    verify_clean(f->dir, 1200);
    struct tally t = {.next = 1};
    assert_int_equal(audit_list(f->dir, RW_TIME_MIN, RW_TIME_MAX, NULL, count_rec, &t, err), 0);
    assert_int_equal(t.next, 1201);
    for (int i = 0; i < 8; i++)
        assert_int_equal(t.per[i], 150);
    assert_int_equal(audit_head(f->dir, &seq2, hex2, err), 0);
    assert_int_equal(seq2, 1200);
    assert_string_equal(hex, hex2);
    struct stat sb;
    assert_int_equal(stat(path_of(f, 2), &sb), 0); /* it rolled */
}

static void test_reopen(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ];
    uint64_t seq;
    assert_int_equal(audit_open("/nonexistent/dir", &(audit_t *){NULL}, err), RW_EINPUT);
    audit_t *a = open_ok(f->dir);
    audit_last(a, &seq, hex);
    assert_int_equal(seq, 0);
    assert_string_equal(hex, AUDIT_ZERO_HASH);
    assert_int_equal(audit_head(f->dir, &seq, hex, err), 0); /* empty trail */
    assert_int_equal(seq, 0);
    assert_string_equal(hex, AUDIT_ZERO_HASH);
    for (int i = 0; i < 3; i++)
        append_ok(a, "alice", 0);
    /* One writer: a second open, even in this process, is refused. */
    audit_t *b = NULL;
    assert_int_equal(audit_open(f->dir, &b, err), RW_EBUSY);
    assert_null(b);
    audit_last(a, &seq, hex);
    audit_close(a);

    a = open_ok(f->dir);
    struct audit_rec r;
    audit_rec_init(&r);
    r.principal = "bob";
    assert_int_equal(audit_append(a, &r, err), 0);
    assert_int_equal(r.seq, 4);
    assert_string_equal(r.prev, hex); /* the chain goes on across opens */
    assert_int_not_equal(r.time_ns, 0); /* 0 was "now" */
    audit_close(a);
    audit_close(NULL);
    verify_clean(f->dir, 4);
    struct stat sb;
    assert_int_equal(stat(path_of(f, 2), &sb), -1); /* same file */
    char ad[128];
    snprintf(ad, sizeof ad, "%s/audit", f->dir);
    assert_int_equal(stat(ad, &sb), 0);
    assert_int_equal(sb.st_mode & 0777 & ~0750, 0);
}

static void test_roll(void **state)
{
    struct fx *f = *state;
    audit_t *a = open_ok(f->dir);
    audit_set_roll(a, 1500); /* about three records a file */
    for (int i = 0; i < 10; i++)
        append_ok(a, "alice", 0);
    /* Files are append-only: what a roll left behind never changes. */
    size_t n1, n1b;
    char *first = slurp(path_of(f, 1), &n1);
    for (int i = 0; i < 10; i++)
        append_ok(a, "alice", 0);
    audit_close(a);
    char *again = slurp(path_of(f, 1), &n1b);
    assert_int_equal(n1, n1b);
    assert_memory_equal(first, again, n1);
    free(first);
    free(again);
    uint64_t files = 0;
    struct stat sb;
    while (stat(path_of(f, files + 1), &sb) == 0) {
        assert_true(sb.st_size <= 1500);
        files++;
    }
    assert_true(files >= 6);
    verify_clean(f->dir, 20);
    /* Each file's first record follows the last of the file before. */
    for (uint64_t k = 2; k <= files; k++) {
        size_t n, len;
        char *b = slurp(path_of(f, k), &n);
        struct audit_parsed p;
        char err[RW_ERRSZ];
        line_at(b, n, 1, &len);
        assert_int_equal(audit_line_parse(b, len - 1, &p, err), 0);
        assert_true(p.rec.seq > 1);
        audit_parsed_free(&p);
        free(b);
    }
}

/* A record torn by a crash: the first bytes of a line without its '\n'. */
static void tear(const char *path, const char *bytes)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, strlen(bytes)), (ssize_t)strlen(bytes));
    close(fd);
}

static void test_torn_last_line(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ], hex0[AUDIT_HEXSZ];
    struct seen s;
    struct audit_stats st;
    uint64_t seq;
    audit_t *a = open_ok(f->dir);
    for (int i = 0; i < 5; i++)
        append_ok(a, "alice", 0);
    audit_last(a, &seq, hex0);
    audit_close(a);
    static const char torn[] = "{\"v\":1,\"seq\":6,\"prev\":\"0123";
    tear(path_of(f, 1), torn);
    size_t n0;
    char *before = slurp(path_of(f, 1), &n0);

    /* Readers: the torn line is not a record. head skips it, verify
     * names it (after waiting for a writer that is not there). */
    assert_int_equal(audit_head(f->dir, &seq, hex, err), 0);
    assert_int_equal(seq, 5);
    assert_string_equal(hex, hex0);
    assert_int_equal(verify(f->dir, NULL, &s, NULL), RW_ECORRUPT);
    assert_string_equal(s.file, "audit-0000000001.jsonl");
    assert_int_equal(s.seq, 6);
    assert_non_null(strstr(s.msg, "cut off"));

    /* The writer: the torn bytes stay, a new file says where they are. */
    audit_t *b = NULL;
    assert_int_equal(audit_open(f->dir, &b, err), AUDIT_RECOVERED);
    assert_non_null(b);
    assert_non_null(strstr(err, "audit-0000000001.jsonl"));
    char what[64];
    snprintf(what, sizeof what, "%zu bytes at offset %zu", strlen(torn), n0 - strlen(torn));
    assert_non_null(strstr(err, what));
    assert_int_equal(append_ok(b, "bob", 0), 7); /* 6 is the cut record */
    audit_close(b);
    size_t n1;
    char *after = slurp(path_of(f, 1), &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
    assert_int_equal(verify(f->dir, NULL, &s, &st), 0);
    assert_int_equal(st.cuts, 1);
    assert_int_equal(st.records, 7);

    /* Torn again after the cut record: one more cut, one more record. */
    tear(path_of(f, 2), "{\"v\":1,\"seq\":8");
    b = NULL;
    assert_int_equal(audit_open(f->dir, &b, err), AUDIT_RECOVERED);
    audit_close(b);
    assert_int_equal(verify(f->dir, NULL, &s, &st), 0);
    assert_int_equal(st.cuts, 2);
    assert_int_equal(st.records, 8);
}

static void test_torn_twice(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ];
    struct seen s;
    struct audit_stats st;
    audit_t *a = open_ok(f->dir);
    for (int i = 0; i < 3; i++)
        append_ok(a, "alice", 0);
    audit_close(a);
    /* A crash tore record 4; the writer started file 2 and crashed again
     * while writing the cut record there. */
    tear(path_of(f, 1), "{\"v\":1,\"seq\":4,");
    tear(path_of(f, 2), "{\"v\":1,\"seq\":4,\"prev\":");
    a = NULL;
    assert_int_equal(audit_open(f->dir, &a, err), AUDIT_RECOVERED);
    assert_non_null(strstr(err, "audit-0000000001.jsonl"));
    assert_non_null(strstr(err, "audit-0000000002.jsonl"));
    append_ok(a, "bob", 0);
    audit_close(a);
    assert_int_equal(verify(f->dir, NULL, &s, &st), 0);
    assert_int_equal(st.cuts, 2);
    assert_int_equal(st.records, 5);
    struct stat sb;
    assert_int_equal(stat(path_of(f, 3), &sb), 0);
}

/* A damaged last record is no crash's work: the writer refuses to guess. */
static void test_damaged_last_record(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ];
    audit_t *a = open_ok(f->dir);
    for (int i = 0; i < 3; i++)
        append_ok(a, "alice", 0);
    audit_close(a);
    size_t n, len;
    char *b = slurp(path_of(f, 1), &n);
    size_t off = line_at(b, n, 3, &len);
    b[off + 30] ^= 1;
    spit(path_of(f, 1), b, n);
    free(b);
    a = NULL;
    assert_int_equal(audit_open(f->dir, &a, err), RW_ECORRUPT);
    assert_null(a);
    assert_non_null(strstr(err, "audit-0000000001.jsonl"));
    uint64_t seq;
    char hex[AUDIT_HEXSZ];
    assert_int_equal(audit_head(f->dir, &seq, hex, err), RW_ECORRUPT);
}

/* ---- verify names the bad record ---- */

static void make_ten(const struct fx *f)
{
    audit_t *a = open_ok(f->dir);
    for (int i = 0; i < 10; i++)
        append_ok(a, i == 4 ? "mallory" : "alice", 1000 + i);
    audit_close(a);
}

static void test_flip_each_byte(void **state)
{
    struct fx *f = *state;
    struct seen s;
    make_ten(f);
    size_t n, len;
    char *orig = slurp(path_of(f, 1), &n);
    /* Every byte of record 5 but its '\n', and of the last record (which no
     * record after it names), with two different bit flips. */
    static const int recs[] = {5, 10};
    for (int ri = 0; ri < 2; ri++) {
        size_t off = line_at(orig, n, recs[ri], &len);
        for (size_t i = 0; i + 1 < len; i++) {
            for (int mask = 1; mask <= 0x20; mask <<= 5) {
                char *b = malloc(n);
                memcpy(b, orig, n);
                b[off + i] ^= (char)mask;
                if (b[off + i] == '\n') { /* a new line is a different test */
                    free(b);
                    continue;
                }
                spit(path_of(f, 1), b, n);
                free(b);
                assert_int_equal(verify(f->dir, NULL, &s, NULL), RW_ECORRUPT);
                if (s.line != (uint64_t)recs[ri] || s.seq != (uint64_t)recs[ri] || s.n != 1)
                    fail_msg("byte %zu of record %d flipped (0x%02x): %d problems, first at "
                             "line %llu seq %llu: %s", i, recs[ri], mask, s.n,
                             (unsigned long long)s.line, (unsigned long long)s.seq, s.msg);
            }
        }
    }
    spit(path_of(f, 1), orig, n);
    verify_clean(f->dir, 10);
    free(orig);
}

static void test_deleted_swapped_truncated(void **state)
{
    struct fx *f = *state;
    struct seen s;
    struct audit_stats st;
    char hex[AUDIT_HEXSZ], err[RW_ERRSZ];
    uint64_t seq;
    make_ten(f);
    assert_int_equal(audit_head(f->dir, &seq, hex, err), 0);
    size_t n, l4, l5, l10;
    char *orig = slurp(path_of(f, 1), &n);
    size_t o4 = line_at(orig, n, 4, &l4), o5 = line_at(orig, n, 5, &l5);
    size_t o10 = line_at(orig, n, 10, &l10);
    char *b = malloc(n);

    /* Record 5 deleted: named where it should be. */
    memcpy(b, orig, o5);
    memcpy(b + o5, orig + o5 + l5, n - o5 - l5);
    spit(path_of(f, 1), b, n - l5);
    assert_int_equal(verify(f->dir, NULL, &s, NULL), RW_ECORRUPT);
    assert_int_equal(s.line, 5);
    assert_int_equal(s.seq, 5);
    assert_non_null(strstr(s.msg, "record 5 is missing"));

    /* Records 4 and 5 swapped. */
    memcpy(b, orig, n);
    memcpy(b + o4, orig + o5, l5);
    memcpy(b + o4 + l5, orig + o4, l4);
    spit(path_of(f, 1), b, n);
    assert_int_equal(verify(f->dir, NULL, &s, NULL), RW_ECORRUPT);
    assert_int_equal(s.line, 4);
    assert_int_equal(s.seq, 4);
    assert_int_equal(s.n, 2); /* 5 too early, 4 too late; 6 follows 5 again */

    /* Cut in the middle of the last record. */
    spit(path_of(f, 1), orig, o10 + l10 / 2);
    assert_int_equal(verify(f->dir, NULL, &s, NULL), RW_ECORRUPT);
    assert_int_equal(s.seq, 10);
    assert_non_null(strstr(s.msg, "cut off"));

    /* Cut at the end of record 9: consistent in itself, so only the head
     * recorded off the machine tells. */
    spit(path_of(f, 1), orig, o10);
    assert_int_equal(verify(f->dir, NULL, &s, &st), 0);
    assert_int_equal(st.last_seq, 9);
    struct audit_expect want = {.seq = seq};
    memcpy(want.hash, hex, AUDIT_HEXSZ);
    assert_int_equal(verify(f->dir, &want, &s, NULL), RW_ECORRUPT);
    assert_non_null(strstr(s.msg, "recorded off the machine"));
    want.seq = 0; /* the hash alone */
    assert_int_equal(verify(f->dir, &want, &s, NULL), RW_ECORRUPT);
    spit(path_of(f, 1), orig, n);
    want.seq = seq;
    assert_int_equal(verify(f->dir, &want, &s, NULL), 0);
    want.seq = 3; /* the right hash for another record: not this chain's */
    assert_int_equal(verify(f->dir, &want, &s, NULL), RW_ECORRUPT);
    free(b);
    free(orig);
}

/* A trail rewritten whole (a new chain from record 1) verifies in itself;
 * the head recorded before names the rewrite. */
static void test_rewritten_chain(void **state)
{
    struct fx *f = *state;
    char hex[AUDIT_HEXSZ], err[RW_ERRSZ], rm[256];
    uint64_t seq;
    struct seen s;
    make_ten(f);
    assert_int_equal(audit_head(f->dir, &seq, hex, err), 0);
    struct audit_expect want = {.seq = seq};
    memcpy(want.hash, hex, AUDIT_HEXSZ);
    snprintf(rm, sizeof rm, "%s", path_of(f, 1));
    assert_int_equal(unlink(rm), 0);
    audit_t *a = open_ok(f->dir);
    for (int i = 0; i < 12; i++)
        append_ok(a, "alice", 1000 + i);
    audit_close(a);
    verify_clean(f->dir, 12);
    assert_int_equal(verify(f->dir, &want, &s, NULL), RW_ECORRUPT);
    assert_int_equal(s.seq, 10);
    assert_non_null(strstr(s.msg, "rewritten"));
}

static void test_missing_file(void **state)
{
    struct fx *f = *state;
    struct seen s;
    audit_t *a = open_ok(f->dir);
    audit_set_roll(a, 1200);
    for (int i = 0; i < 12; i++)
        append_ok(a, "alice", 0);
    audit_close(a);
    char p[256];
    snprintf(p, sizeof p, "%s", path_of(f, 2));
    assert_int_equal(unlink(p), 0);
    assert_int_equal(verify(f->dir, NULL, &s, NULL), RW_ECORRUPT);
    assert_string_equal(s.file, "audit-0000000003.jsonl");
    assert_non_null(strstr(s.msg, "audit-0000000002.jsonl"));
}

/* ---- what a record holds ---- */

struct got {
    int n;
    struct audit_parsed copy; /* of the last record, parsed again */
    char *line;
};

static int keep_last(void *arg, const struct audit_rec *r, const char *line, size_t len)
{
    struct got *g = arg;
    char err[RW_ERRSZ];
    (void)r;
    g->n++;
    audit_parsed_free(&g->copy);
    free(g->line);
    g->line = strndup(line, len);
    assert_int_equal(audit_line_parse(g->line, len, &g->copy, err), 0);
    return 0;
}

static void test_fields(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ];
    audit_t *a = open_ok(f->dir);
    static const char *const pts[] = {"eth0", "uplink", NULL};
    struct audit_param ps[] = {{"format", "pcapng"}, {"limit_packets", "10"},
                               {"token", "s3cr3t-token"}, {"api_key", "s3cr3t-key"}};
    struct audit_rec r;
    audit_hash_t *h = audit_hash_new();
    audit_hash_update(h, "hello", 5);
    assert_int_equal(audit_hash_final(h, hex, err), 0);
    audit_rec_init(&r);
    r.time_ns = 1700000000123456789LL;
    r.principal = "alice";
    r.role = "admin";
    r.method = "token";
    r.client = "[2001:db8::1]:50312";
    r.route = "GET /api/v1/packets";
    r.from_ns = -5; /* before the epoch is a time like any other */
    r.to_ns = 1700000060000000000LL;
    r.filter = "host 192.0.2.7 and port 25";
    r.points = pts;
    r.params = ps;
    r.nparams = 4;
    r.status = 206;
    r.packets = 12;
    r.bytes = 5;
    r.sha256 = hex;
    r.duration_ns = 12345678;
    r.detail = "hold 3 placed";
    assert_int_equal(audit_append(a, &r, err), 0);
    audit_rec_init(&r); /* the least a record can be */
    assert_int_equal(audit_append(a, &r, err), 0);
    audit_close(a);

    struct got g = {0};
    assert_int_equal(audit_list(f->dir, RW_TIME_MIN, 1700000000123456790LL, "alice", keep_last,
                                &g, err), 0);
    assert_int_equal(g.n, 1);
    const struct audit_rec *q = &g.copy.rec;
    assert_int_equal(q->seq, 1);
    assert_string_equal(q->prev, AUDIT_ZERO_HASH);
    assert_int_equal(q->time_ns, 1700000000123456789LL);
    assert_string_equal(q->principal, "alice");
    assert_string_equal(q->role, "admin");
    assert_string_equal(q->method, "token");
    assert_string_equal(q->client, "[2001:db8::1]:50312");
    assert_string_equal(q->route, "GET /api/v1/packets");
    assert_int_equal(q->from_ns, -5);
    assert_int_equal(q->to_ns, 1700000060000000000LL);
    assert_string_equal(q->filter, "host 192.0.2.7 and port 25");
    assert_string_equal(q->points[0], "eth0");
    assert_string_equal(q->points[1], "uplink");
    assert_null(q->points[2]);
    assert_int_equal(q->nparams, 4);
    assert_string_equal(q->params[0].name, "format");
    assert_string_equal(q->params[0].value, "pcapng");
    assert_string_equal(q->params[1].name, "limit_packets");
    assert_string_equal(q->params[1].value, "10");
    /* A credential in a query string never reaches the trail. */
    assert_string_equal(q->params[2].name, "token");
    assert_string_equal(q->params[2].value, AUDIT_REDACTED);
    assert_string_equal(q->params[3].value, AUDIT_REDACTED);
    assert_null(strstr(g.line, "s3cr3t"));
    assert_int_equal(q->status, 206);
    assert_int_equal(q->packets, 12);
    assert_int_equal(q->bytes, 5);
    assert_string_equal(q->sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    assert_int_equal(q->duration_ns, 12345678);
    assert_string_equal(q->detail, "hold 3 placed");
    /* The names of A4, in that order. */
    const char *order[] = {"{\"v\":1,\"seq\":1,\"prev\":", ",\"time_ns\":", ",\"principal\":",
                           ",\"role\":", ",\"method\":", ",\"client\":", ",\"route\":",
                           ",\"params\":{\"from_ns\":", ",\"to_ns\":", ",\"filter\":",
                           ",\"points\":[", ",\"format\":", ",\"limit_packets\":",
                           ",\"status\":", ",\"packets\":", ",\"bytes\":", ",\"sha256\":",
                           ",\"duration_ns\":", ",\"detail\":", ",\"hash\":"};
    const char *at = g.line;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *k = strstr(at, order[i]);
        if (!k)
            fail_msg("%s not after %.40s in %s", order[i], at, g.line);
        at = k;
    }

    /* The bare record: open window, no filter, points, sha256 or detail. */
    g.n = 0;
    assert_int_equal(audit_list(f->dir, RW_TIME_MIN, RW_TIME_MAX, "", keep_last, &g, err), 0);
    assert_int_equal(g.n, 1);
    q = &g.copy.rec;
    assert_int_equal(q->seq, 2);
    assert_int_equal(q->from_ns, RW_TIME_MIN);
    assert_int_equal(q->to_ns, RW_TIME_MAX);
    assert_null(q->filter);
    assert_null(q->points);
    assert_null(q->sha256);
    assert_null(q->detail);
    assert_int_equal(q->nparams, 0);
    assert_non_null(strstr(g.line, "\"params\":{}"));
    audit_parsed_free(&g.copy);
    free(g.line);
}

static void test_any_bytes(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ];
    /* Control bytes, quotes, backslashes, DEL, C1 controls, valid UTF-8 of
     * 2, 3 and 4 bytes, and bytes that are no UTF-8: lone continuation,
     * overlong '/', a surrogate, a cut sequence, past U+10FFFF, 0xff. */
    static const char *const cases[] = {
        "port 25\n\t\r\x01\x1b[31m\x7f",
        "\"quoted\" and 'single' \\ back\\slash \\u0041",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\x9b",
        "\x80 \xc0\xaf \xed\xa0\x80 \xe2\x82 \xf4\x90\x80\x80 \xff\xfe",
        "tail cut \xe2",
    };
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = 0;
    audit_t *a = open_ok(f->dir);
    for (size_t i = 0; i <= sizeof cases / sizeof cases[0]; i++) {
        const char *s = i < sizeof cases / sizeof cases[0] ? cases[i] : all;
        const char *pts[] = {s, "eth0", NULL};
        struct audit_param ps[] = {{"why", s}};
        struct audit_rec r;
        audit_rec_init(&r);
        r.principal = s;
        r.role = s;
        r.method = s;
        r.client = s;
        r.route = s;
        r.filter = s;
        r.points = pts;
        r.params = ps;
        r.nparams = 1;
        r.detail = s;
        assert_int_equal(audit_append(a, &r, err), 0);
        struct got g = {0};
        assert_int_equal(audit_list(f->dir, RW_TIME_MIN, RW_TIME_MAX, s, keep_last, &g, err), 0);
        assert_int_equal(g.n, 1);
        const struct audit_rec *q = &g.copy.rec;
        assert_string_equal(q->principal, s);
        assert_string_equal(q->role, s);
        assert_string_equal(q->method, s);
        assert_string_equal(q->client, s);
        assert_string_equal(q->route, s);
        assert_string_equal(q->filter, s);
        assert_string_equal(q->points[0], s);
        assert_string_equal(q->points[1], "eth0");
        assert_string_equal(q->params[0].value, s);
        assert_string_equal(q->detail, s);
        /* The line itself is printable ASCII (A5): safe for any terminal,
         * grep and every JSON reader. */
        for (const char *c = g.line; *c; c++)
            if (*c < 0x20 || *c > 0x7e)
                fail_msg("byte 0x%02x in the line of case %zu", (unsigned char)*c, i);
        audit_parsed_free(&g.copy);
        free(g.line);
    }
    audit_close(a);
    verify_clean(f->dir, sizeof cases / sizeof cases[0] + 1);
}

static void test_refused_records(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ];
    audit_t *a = open_ok(f->dir);
    static const char *const bad_names[] = {"from_ns", "filter", "points", "to_ns", "x_hex",
                                            "Format", "", "with space",
                                            "a_name_longer_than_thirty_two_bye"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        struct audit_param p = {bad_names[i], "v"};
        struct audit_rec r;
        audit_rec_init(&r);
        r.params = &p;
        r.nparams = 1;
        assert_int_equal(audit_append(a, &r, err), RW_EINPUT);
    }
    struct audit_param twice[] = {{"format", "pcap"}, {"format", "pcapng"}};
    struct audit_rec r;
    audit_rec_init(&r);
    r.params = twice;
    r.nparams = 2;
    assert_int_equal(audit_append(a, &r, err), RW_EINPUT);
    audit_rec_init(&r);
    r.sha256 = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";
    assert_int_equal(audit_append(a, &r, err), RW_EINPUT);
    r.sha256 = "2cf24dba";
    assert_int_equal(audit_append(a, &r, err), RW_EINPUT);
    audit_rec_init(&r);
    char *huge = malloc(AUDIT_LINE_MAX + 2);
    memset(huge, 'x', AUDIT_LINE_MAX + 1);
    huge[AUDIT_LINE_MAX + 1] = 0;
    r.filter = huge;
    assert_int_equal(audit_append(a, &r, err), RW_EINPUT);
    free(huge);
    /* Nothing of them was written, and no seq was used up. */
    assert_int_equal(append_ok(a, "alice", 0), 1);
    audit_close(a);
    verify_clean(f->dir, 1);
}

/* A write that fails half way (here the file size limit, as a full disk
 * would) is taken back: the next record starts a line of its own. */
static void test_failed_write(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ];
    struct rlimit old, lim;
    struct stat sb;
    audit_t *a = open_ok(f->dir);
    append_ok(a, "alice", 0);
    assert_int_equal(stat(path_of(f, 1), &sb), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    struct audit_rec r;
    audit_rec_init(&r);
    r.principal = "bob";
    int rc = audit_append(a, &r, err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, RW_EIO);
    struct stat sb2;
    assert_int_equal(stat(path_of(f, 1), &sb2), 0);
    assert_int_equal(sb2.st_size, sb.st_size);
    assert_int_equal(append_ok(a, "carol", 0), 2);
    audit_close(a);
    verify_clean(f->dir, 2);
}

/* ---- the parser ---- */

static void test_parse_rejects(void **state)
{
    (void)state;
    char err[RW_ERRSZ];
    struct audit_parsed p;
    /* A good record's members, and lines that differ from it in one way. */
#define HEAD "{\"v\":1,\"seq\":1,\"prev\":\"" AUDIT_ZERO_HASH "\",\"time_ns\":5"
#define WHO ",\"principal\":\"a\",\"role\":\"\",\"method\":\"\",\"client\":\"\",\"route\":\"r\""
#define TAIL ",\"status\":200,\"packets\":0,\"bytes\":0,\"duration_ns\":0,\"hash\":\"" \
    AUDIT_ZERO_HASH "\"}"
    static const char good[] = HEAD WHO ",\"params\":{}" TAIL;
    assert_int_equal(audit_line_parse(good, strlen(good), &p, err), 0);
    audit_parsed_free(&p);
    static const char *const bad[] = {
        "",
        "[]",
        "{\"v\":2" WHO,
        HEAD WHO ",\"params\":{}" TAIL " x",
        HEAD ",\"seq\":2" WHO ",\"params\":{}" TAIL,                  /* duplicate */
        HEAD WHO TAIL,                                                /* no params */
        HEAD WHO ",\"params\":[]" TAIL,
        HEAD WHO ",\"params\":{\"filter\":1}" TAIL,
        HEAD WHO ",\"params\":{\"filter_hex\":\"ff\"}" TAIL,          /* no filter */
        HEAD WHO ",\"params\":{\"filter\":\"a\",\"filter_hex\":\"61\"}" TAIL, /* UTF-8 */
        HEAD WHO ",\"params\":{\"filter\":\"b\",\"filter_hex\":\"ff\"}" TAIL, /* mismatch */
        HEAD WHO ",\"params\":{\"filter\":\"\\ufffd\",\"filter_hex\":\"FF\"}" TAIL,
        HEAD WHO ",\"params\":{\"filter\":\"\\u0000\"}" TAIL,
        HEAD WHO ",\"params\":{\"points\":[1]}" TAIL,
        HEAD WHO ",\"params\":{\"Bad\":\"x\"}" TAIL,
        HEAD WHO ",\"params\":{\"from_ns\":1.5}" TAIL,
        HEAD WHO ",\"params\":{},\"cut\":[]" TAIL,
        HEAD WHO ",\"params\":{},\"cut\":[{\"file\":\"x\",\"offset\":0,\"bytes\":1}]" TAIL,
        HEAD WHO ",\"params\":{},\"sha256\":\"abc\"" TAIL,
        "{\"v\":1,\"seq\":0,\"prev\":\"" AUDIT_ZERO_HASH "\",\"time_ns\":5" WHO
        ",\"params\":{}" TAIL,
        "{\"v\":1,\"seq\":1,\"prev\":\"00\",\"time_ns\":5" WHO ",\"params\":{}" TAIL,
        HEAD ",\"principal\":\"a\",\"role\":\"\",\"method\":\"\",\"client\":\"\""
        ",\"params\":{}" TAIL,                                        /* no route */
        HEAD WHO ",\"params\":{}" ",\"status\":200,\"packets\":-1,\"bytes\":0,\"duration_ns\":0"
        ",\"hash\":\"" AUDIT_ZERO_HASH "\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (audit_line_parse(bad[i], strlen(bad[i]), &p, err) != RW_ECORRUPT)
            fail_msg("case %zu parsed: %s", i, bad[i]);
        if (!err[0])
            fail_msg("case %zu: no reason given", i);
        audit_parsed_free(&p);
    }
    char claimed[AUDIT_HEXSZ], actual[AUDIT_HEXSZ];
    assert_int_equal(audit_line_hashes(good, strlen(good), claimed, actual), 0);
    assert_string_equal(claimed, AUDIT_ZERO_HASH);
    assert_string_not_equal(actual, AUDIT_ZERO_HASH);
    assert_int_equal(audit_line_hashes(good, strlen(good) - 1, claimed, actual), -1);
    assert_int_equal(audit_line_hashes("{}", 2, claimed, actual), -1);
}

/* A line that does not parse is reported, and the records around it are
 * still listed. */
static int count_only(void *arg, const struct audit_rec *r, const char *line, size_t len)
{
    (void)r, (void)line, (void)len;
    ++*(int *)arg;
    return 0;
}

static void test_list_damaged(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ];
    make_ten(f);
    size_t n, len;
    char *b = slurp(path_of(f, 1), &n);
    size_t off = line_at(b, n, 3, &len);
    b[off] = '[';
    spit(path_of(f, 1), b, n);
    free(b);
    int count = 0;
    assert_int_equal(audit_list(f->dir, RW_TIME_MIN, RW_TIME_MAX, NULL, count_only, &count, err),
                     RW_ECORRUPT);
    assert_int_equal(count, 9);
    assert_non_null(strstr(err, "line 3"));
    count = 0;
    assert_int_equal(audit_list(f->dir, 1002, 1005, NULL, count_only, &count, err), RW_ECORRUPT);
    assert_int_equal(count, 2); /* 1003, 1004: 1002 is the damaged one */
    count = 0;
    assert_int_equal(audit_list(f->dir, RW_TIME_MIN, RW_TIME_MAX, "mallory", count_only, &count,
                                err), RW_ECORRUPT);
    assert_int_equal(count, 1);
    char nope[128];
    snprintf(nope, sizeof nope, "%s/none", f->dir);
    assert_int_equal(audit_list(nope, RW_TIME_MIN, RW_TIME_MAX, NULL, count_only, &count, err),
                     RW_EINPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_last_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_each_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_swapped_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write, setup, teardown),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test_setup_teardown(test_list_damaged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
