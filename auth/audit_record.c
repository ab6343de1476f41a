/* record.c -- one audit record as one line of JSON: writing it (escaped to
 * printable ASCII, bytes that are not UTF-8 kept in a _hex sibling), its own
 * hash, and parsing it back. Rules A2 to A5, A9 of man/rewind-archive.5. */
#include "auth/audit_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ buffers */

void audit_buf_put(struct audit_buf *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void audit_buf_free(struct audit_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void put_s(struct audit_buf *b, const char *s) { audit_buf_put(b, s, strlen(s)); }

static void put_f(struct audit_buf *b, const char *fmt, ...) RW_PRINTF(2, 3);
static void put_f(struct audit_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        audit_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ------------------------------------------------------------ UTF-8 */

/* The length of the well-formed UTF-8 sequence at s (Unicode 15, table
 * 3-7: no overlong forms, no surrogates, nothing above U+10FFFF) and its
 * code point, or 0. s is NUL-ended, so looking one byte ahead is safe until
 * a continuation byte fails. */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
    unsigned c = s[0];
    unsigned lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, *cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, *cp = c & 0x0f, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, *cp = c & 0x07, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned d = s[i];
        if (d < (i == 1 ? lo : 0x80) || d > (i == 1 ? hi : 0xbf))
            return 0;
        *cp = *cp << 6 | (d & 0x3f);
    }
    return n;
}

/* s as a JSON string of printable ASCII (A5): '"' and '\' escaped, control
 * characters and every non-ASCII code point as \u escapes, each byte that is
 * not part of well-formed UTF-8 as \ufffd. Returns 1 when such a byte was
 * replaced (the caller then adds the _hex sibling), else 0. */
static int put_jstr(struct audit_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int lossy = 0;
    char esc[16];
    audit_buf_put(b, "\"", 1);
    while (*p) {
        unsigned c = *p;
        uint32_t cp;
        size_t n;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            const unsigned char *q = p;
            while (*q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
                q++;
            audit_buf_put(b, p, (size_t)(q - p));
            p = q;
            continue;
        }
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            audit_buf_put(b, esc, 2);
            p++;
        } else if (c < 0x80) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            audit_buf_put(b, esc, 6);
            p++;
        } else if ((n = utf8_seq(p, &cp)) == 0) {
            audit_buf_put(b, "\\ufffd", 6);
            lossy = 1;
            p++;
        } else {
            if (cp < 0x10000) {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            } else {
                cp -= 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", (unsigned)(0xd800 | cp >> 10),
                         (unsigned)(0xdc00 | (cp & 0x3ff)));
            }
            audit_buf_put(b, esc, strlen(esc));
            p += n;
        }
    }
    audit_buf_put(b, "\"", 1);
    return lossy;
}

static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    size_t n;
    for (; *p; p += n)
        if ((n = *p < 0x80 ? 1 : utf8_seq(p, &cp)) == 0)
            return 0;
    return 1;
}

static void put_hex(struct audit_buf *b, const char *s)
{
    static const char digits[] = "0123456789abcdef";
    char two[2];
    audit_buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        two[0] = digits[*p >> 4];
        two[1] = digits[*p & 15];
        audit_buf_put(b, two, 2);
    }
    audit_buf_put(b, "\"", 1);
}

/* ,"key":"s" and, when s is not UTF-8, ,"key_hex":"..." (A5). first: no
 * leading comma. */
static void put_member(struct audit_buf *b, const char *key, const char *s, int first)
{
    if (!first)
        audit_buf_put(b, ",", 1);
    put_f(b, "\"%s\":", key);
    if (put_jstr(b, s ? s : "")) {
        put_f(b, ",\"%s_hex\":", key);
        put_hex(b, s);
    }
}

/* ------------------------------------------------------------ writing */

static int hex64_ok(const char *s)
{
    size_t i;
    for (i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[i] == 0;
}

static const char *const fixed_params[] = {"from_ns", "to_ns", "filter", "points", NULL};

static int param_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 32 || (len >= 4 && !strcmp(n + len - 4, "_hex")))
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    for (int i = 0; fixed_params[i]; i++)
        if (!strcmp(n, fixed_params[i]))
            return 0;
    return 1;
}

/* Parameters that carry a credential when a client sends one in the query
 * string: a caller that passes every parameter it got must not put a
 * secret into the trail, so their values never reach it. */
static int secret_name(const char *n)
{
    static const char *const secret[] = {"token", "access_token", "bearer", "authorization",
                                         "password", "secret", "api_key", "apikey", NULL};
    for (int i = 0; secret[i]; i++)
        if (!strcmp(n, secret[i]))
            return 1;
    return 0;
}

static void put_params(struct audit_buf *b, const struct audit_rec *r)
{
    int first = 1;
    audit_buf_put(b, ",\"params\":{", 11);
    if (r->from_ns != RW_TIME_MIN) {
        put_f(b, "\"from_ns\":%" PRId64, r->from_ns);
        first = 0;
    }
    if (r->to_ns != RW_TIME_MAX) {
        put_f(b, "%s\"to_ns\":%" PRId64, first ? "" : ",", r->to_ns);
        first = 0;
    }
    if (r->filter) {
        put_member(b, "filter", r->filter, first);
        first = 0;
    }
    if (r->points) {
        int lossy = 0;
        put_s(b, first ? "\"points\":[" : ",\"points\":[");
        first = 0;
        for (size_t i = 0; r->points[i]; i++) {
            if (i)
                audit_buf_put(b, ",", 1);
            lossy |= put_jstr(b, r->points[i]);
        }
        audit_buf_put(b, "]", 1);
        if (lossy) {
            put_s(b, ",\"points_hex\":[");
            for (size_t i = 0; r->points[i]; i++) {
                if (i)
                    audit_buf_put(b, ",", 1);
                put_hex(b, r->points[i]);
            }
            audit_buf_put(b, "]", 1);
        }
    }
    for (size_t i = 0; i < r->nparams; i++) {
        put_member(b, r->params[i].name,
                   secret_name(r->params[i].name) ? AUDIT_REDACTED : r->params[i].value, first);
        first = 0;
    }
    audit_buf_put(b, "}", 1);
}

int audit_body_format(const struct audit_rec *r, const struct audit_cut *cuts, size_t ncuts,
                      struct audit_buf *b, char *err)
{
    for (size_t i = 0; i < r->nparams; i++) {
        const char *n = r->params[i].name;
        if (!n || !param_name_ok(n))
            return rw_err(err, RW_EINPUT, "audit record: parameter name '%s' is not 1 to 32 "
                          "of [a-z0-9_] or is reserved", n ? n : "(null)");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(n, r->params[j].name))
                return rw_err(err, RW_EINPUT, "audit record: parameter '%s' given twice", n);
    }
    if (r->sha256 && !hex64_ok(r->sha256))
        return rw_err(err, RW_EINPUT, "audit record: sha256 is not 64 lowercase hex digits");
    if (r->packets > INT64_MAX || r->bytes > INT64_MAX)
        return rw_err(err, RW_EINPUT, "audit record: packets or bytes out of range");
    put_f(b, ",\"time_ns\":%" PRId64, r->time_ns);
    put_member(b, "principal", r->principal, 0);
    put_member(b, "role", r->role, 0);
    put_member(b, "method", r->method, 0);
    put_member(b, "client", r->client, 0);
    put_member(b, "route", r->route, 0);
    put_params(b, r);
    put_f(b, ",\"status\":%d,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64, r->status, r->packets,
          r->bytes);
    if (r->sha256)
        put_f(b, ",\"sha256\":\"%s\"", r->sha256);
    put_f(b, ",\"duration_ns\":%" PRId64, r->duration_ns);
    if (r->detail)
        put_member(b, "detail", r->detail, 0);
    if (ncuts) {
        put_s(b, ",\"cut\":[");
        for (size_t i = 0; i < ncuts; i++) {
            put_s(b, i ? ",{" : "{");
            put_member(b, "file", cuts[i].file, 1);
            put_f(b, ",\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", cuts[i].offset,
                  cuts[i].bytes);
        }
        audit_buf_put(b, "]", 1);
    }
    if (b->oom)
        return rw_err(err, RW_ENOMEM, "audit record: out of memory");
    return 0;
}

void audit_sha256_hex2(const void *a, size_t alen, const void *b, size_t blen,
                       char hex[AUDIT_HEXSZ])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* A libcrypto that cannot hash gives a hash no record matches, which
     * verify then reports: never a made-up match. */
    memset(md, 0xff, 32);
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1)
        EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = 0;
}

int audit_line_assemble(uint64_t seq, const char *prev, const char *body, size_t bodylen,
                        struct audit_buf *b, char hex[AUDIT_HEXSZ])
{
    put_f(b, "{\"v\":1,\"seq\":%" PRIu64 ",\"prev\":\"%s\"", seq, prev);
    audit_buf_put(b, body, bodylen);
    if (b->oom)
        return RW_ENOMEM;
    /* A3: the hash is of the line as it would be without its last member. */
    audit_sha256_hex2(b->p, b->len, "}", 1, hex);
    put_s(b, AUDIT_HASH_PREFIX);
    audit_buf_put(b, hex, 64);
    audit_buf_put(b, "\"}\n", 3);
    return b->oom ? RW_ENOMEM : 0;
}

int audit_line_hashes(const char *line, size_t len, char claimed[AUDIT_HEXSZ],
                      char actual[AUDIT_HEXSZ])
{
    const size_t pl = sizeof AUDIT_HASH_PREFIX - 1;
    if (len < AUDIT_SUFFIX_LEN + 1)
        return -1;
    const char *suf = line + len - AUDIT_SUFFIX_LEN;
    if (memcmp(suf, AUDIT_HASH_PREFIX, pl) || memcmp(line + len - 2, "\"}", 2))
        return -1;
    memcpy(claimed, suf + pl, 64);
    claimed[64] = 0;
    if (!hex64_ok(claimed))
        return -1;
    audit_sha256_hex2(line, len - AUDIT_SUFFIX_LEN, "}", 1, actual);
    return 0;
}

/* ------------------------------------------------------------ parsing */

static void *own(struct audit_parsed *p, void *mem)
{
    if (!mem)
        return NULL;
    if (p->nowned == p->capowned) {
        size_t cap = p->capowned ? 2 * p->capowned : 8;
        void **o = realloc(p->owned, cap * sizeof *o);
        if (!o) {
            free(mem);
            return NULL;
        }
        p->owned = o;
        p->capowned = cap;
    }
    p->owned[p->nowned++] = mem;
    return mem;
}

void audit_parsed_free(struct audit_parsed *p)
{
    if (!p)
        return;
    json_decref(p->json);
    for (size_t i = 0; i < p->nowned; i++)
        free(p->owned[i]);
    free(p->owned);
    memset(p, 0, sizeof *p);
}

/* The bytes of a _hex value: even length, lowercase hex, no NUL. */
static char *unhex(struct audit_parsed *p, const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n % 2)
        return NULL;
    char *s = own(p, malloc(n / 2 + 1));
    if (!s)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = rw_hexval(h[2 * i]), lo = rw_hexval(h[2 * i + 1]);
        if (hi < 0 || lo < 0 || (h[2 * i] >= 'A' && h[2 * i] <= 'F') ||
            (h[2 * i + 1] >= 'A' && h[2 * i + 1] <= 'F') || (hi | lo) == 0)
            return NULL;
        s[i] = (char)(hi << 4 | lo);
    }
    s[n / 2] = 0;
    return s;
}

/* A string member with its optional _hex sibling (A5): the bytes, or NULL
 * with a message. The sibling is there exactly when the bytes are not
 * UTF-8, and then the string is what the writer makes of them. */
static const char *get_bytes(struct audit_parsed *p, json_t *obj, const char *key,
                             json_t *val, char *err)
{
    char hk[64];
    snprintf(hk, sizeof hk, "%s_hex", key);
    if (!json_is_string(val)) {
        rw_err(err, RW_ECORRUPT, "member \"%s\" is not a string", key);
        return NULL;
    }
    json_t *hv = json_object_get(obj, hk);
    if (!hv)
        return json_string_value(val);
    const char *s;
    if (!json_is_string(hv) || !(s = unhex(p, json_string_value(hv)))) {
        rw_err(err, RW_ECORRUPT, "member \"%s\" is not hex of bytes", hk);
        return NULL;
    }
    struct audit_buf b = {0};
    put_jstr(&b, s);
    json_t *again = b.oom ? NULL : json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL);
    int same = utf8_ok(s) == 0 && json_is_string(again) &&
               !strcmp(json_string_value(again), json_string_value(val));
    json_decref(again);
    audit_buf_free(&b);
    if (!same) {
        rw_err(err, RW_ECORRUPT, "member \"%s\" does not match \"%s\"", hk, key);
        return NULL;
    }
    return s;
}

static int get_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                   int optional, char *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v && optional)
        return 0;
    if (!json_is_integer(v))
        return rw_err(err, RW_ECORRUPT, "member \"%s\" is %s", key,
                      v ? "not an integer" : "missing");
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return rw_err(err, RW_ECORRUPT, "member \"%s\" is out of range", key);
    *out = x;
    return 1;
}

static int get_str(struct audit_parsed *p, json_t *obj, const char *key, const char **out,
                   int optional, char *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        char hk[64];
        snprintf(hk, sizeof hk, "%s_hex", key);
        if (!optional)
            return rw_err(err, RW_ECORRUPT, "member \"%s\" is missing", key);
        if (json_object_get(obj, hk))
            return rw_err(err, RW_ECORRUPT, "member \"%s\" without \"%s\"", hk, key);
        return 0;
    }
    if (!(*out = get_bytes(p, obj, key, v, err)))
        return RW_ECORRUPT;
    return 1;
}

static int get_hash(json_t *obj, const char *key, char out[AUDIT_HEXSZ], int optional,
                    char *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v && optional)
        return 0;
    if (!json_is_string(v) || !hex64_ok(json_string_value(v)))
        return rw_err(err, RW_ECORRUPT, "member \"%s\" is not 64 lowercase hex digits", key);
    memcpy(out, json_string_value(v), AUDIT_HEXSZ);
    return 1;
}

static int parse_points(struct audit_parsed *p, json_t *params, char *err)
{
    json_t *a = json_object_get(params, "points"), *h = json_object_get(params, "points_hex");
    if (!a) {
        if (h)
            return rw_err(err, RW_ECORRUPT, "member \"points_hex\" without \"points\"");
        return 0;
    }
    if (!json_is_array(a) || (h && (!json_is_array(h) || json_array_size(h) != json_array_size(a))))
        return rw_err(err, RW_ECORRUPT, "member \"points\" is not an array of strings");
    size_t n = json_array_size(a);
    const char **pts = own(p, calloc(n + 1, sizeof *pts));
    if (!pts)
        return rw_err(err, RW_ENOMEM, "out of memory");
    int lossy = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_string(v))
            return rw_err(err, RW_ECORRUPT, "member \"points\" is not an array of strings");
        pts[i] = json_string_value(v);
        if (h) {
            json_t *hv = json_array_get(h, i);
            const char *s = json_is_string(hv) ? unhex(p, json_string_value(hv)) : NULL;
            struct audit_buf b = {0};
            if (!s)
                return rw_err(err, RW_ECORRUPT, "member \"points_hex\" is not hex of bytes");
            lossy |= put_jstr(&b, s);
            json_t *again = b.oom ? NULL : json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL);
            int same = json_is_string(again) && !strcmp(json_string_value(again), pts[i]);
            json_decref(again);
            audit_buf_free(&b);
            if (!same)
                return rw_err(err, RW_ECORRUPT, "member \"points_hex\" does not match "
                              "\"points\"");
            pts[i] = s;
        }
    }
    if (h && !lossy)
        return rw_err(err, RW_ECORRUPT, "member \"points_hex\" present for UTF-8 points");
    p->rec.points = pts;
    return 0;
}

static int parse_params(struct audit_parsed *p, json_t *params, char *err)
{
    struct audit_rec *r = &p->rec;
    int rc;
    if (!json_is_object(params))
        return rw_err(err, RW_ECORRUPT, "member \"params\" is %s",
                      params ? "not an object" : "missing");
    if ((rc = get_int(params, "from_ns", INT64_MIN, INT64_MAX, &r->from_ns, 1, err)) < 0 ||
        (rc = get_int(params, "to_ns", INT64_MIN, INT64_MAX, &r->to_ns, 1, err)) < 0 ||
        (rc = get_str(p, params, "filter", &r->filter, 1, err)) < 0 ||
        (rc = parse_points(p, params, err)) < 0)
        return rc;
    size_t n = json_object_size(params);
    struct audit_param *extra = own(p, calloc(n ? n : 1, sizeof *extra));
    if (!extra)
        return rw_err(err, RW_ENOMEM, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        size_t kl = strlen(key);
        int fixed = 0;
        for (int i = 0; fixed_params[i]; i++)
            fixed |= !strcmp(key, fixed_params[i]);
        if (fixed || !strcmp(key, "filter_hex") || !strcmp(key, "points_hex"))
            continue;
        if (kl >= 4 && !strcmp(key + kl - 4, "_hex")) {
            char base[64];
            snprintf(base, sizeof base, "%.*s", (int)(kl - 4), key);
            if (!json_object_get(params, base))
                return rw_err(err, RW_ECORRUPT, "member \"%s\" without \"%s\"", key, base);
            continue;
        }
        if (!param_name_ok(key))
            return rw_err(err, RW_ECORRUPT, "parameter name \"%.40s\" is not one a writer makes",
                          key);
        extra[r->nparams].name = key;
        if (!(extra[r->nparams].value = get_bytes(p, params, key, v, err)))
            return RW_ECORRUPT;
        r->nparams++;
    }
    r->params = extra;
    return 0;
}

static int parse_cut(struct audit_parsed *p, json_t *obj, char *err)
{
    json_t *a = json_object_get(obj, "cut");
    if (!a)
        return 0;
    size_t n = json_array_size(a);
    if (!json_is_array(a) || n == 0)
        return rw_err(err, RW_ECORRUPT, "member \"cut\" is not an array of cuts");
    if (!(p->cuts = own(p, calloc(n, sizeof *p->cuts))))
        return rw_err(err, RW_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(a, i);
        struct audit_cut *k = &p->cuts[i];
        int64_t off, bytes;
        if (!json_is_object(c) || get_str(p, c, "file", &k->file, 0, err) < 0 ||
            audit_name_number(k->file) == 0 ||
            get_int(c, "offset", 0, INT64_MAX, &off, 0, err) < 0 ||
            get_int(c, "bytes", 1, INT64_MAX, &bytes, 0, err) < 0)
            return rw_err(err, RW_ECORRUPT, "member \"cut\" is not an array of cuts: {file, "
                          "offset, bytes}");
        k->offset = (uint64_t)off;
        k->bytes = (uint64_t)bytes;
    }
    p->ncuts = n;
    return 0;
}

int audit_line_parse(const char *line, size_t len, struct audit_parsed *p, char *err)
{
    struct audit_rec *r = &p->rec;
    json_error_t je;
    int64_t v, seq, status, packets, bytes;
    int rc;
    memset(p, 0, sizeof *p);
    audit_rec_init(r);
    /* JSON_REJECT_DUPLICATES: a second "seq" must not hide the first. No
     * JSON_ALLOW_NUL: the writer never writes \u0000. */
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return rw_err(err, RW_ECORRUPT, "not JSON: %s at column %d", je.text, je.column);
    p->json = j;
    if (!json_is_object(j))
        return rw_err(err, RW_ECORRUPT, "not a JSON object");
    if ((rc = get_int(j, "v", 1, INT64_MAX, &v, 0, err)) < 0)
        return rc;
    if (v != 1)
        return rw_err(err, RW_ECORRUPT, "format version %lld: this rewind reads version 1",
                      (long long)v);
    if ((rc = get_int(j, "seq", 1, INT64_MAX, &seq, 0, err)) < 0 ||
        (rc = get_hash(j, "prev", r->prev, 0, err)) < 0 ||
        (rc = get_hash(j, "hash", r->hash, 0, err)) < 0 ||
        (rc = get_int(j, "time_ns", INT64_MIN, INT64_MAX, &r->time_ns, 0, err)) < 0 ||
        (rc = get_str(p, j, "principal", &r->principal, 0, err)) < 0 ||
        (rc = get_str(p, j, "role", &r->role, 0, err)) < 0 ||
        (rc = get_str(p, j, "method", &r->method, 0, err)) < 0 ||
        (rc = get_str(p, j, "client", &r->client, 0, err)) < 0 ||
        (rc = get_str(p, j, "route", &r->route, 0, err)) < 0 ||
        (rc = parse_params(p, json_object_get(j, "params"), err)) < 0 ||
        (rc = get_int(j, "status", INT32_MIN, INT32_MAX, &status, 0, err)) < 0 ||
        (rc = get_int(j, "packets", 0, INT64_MAX, &packets, 0, err)) < 0 ||
        (rc = get_int(j, "bytes", 0, INT64_MAX, &bytes, 0, err)) < 0 ||
        (rc = get_int(j, "duration_ns", INT64_MIN, INT64_MAX, &r->duration_ns, 0, err)) < 0 ||
        (rc = get_str(p, j, "detail", &r->detail, 1, err)) < 0 || (rc = parse_cut(p, j, err)) < 0)
        return rc;
    json_t *sh = json_object_get(j, "sha256");
    if (sh) {
        if (!json_is_string(sh) || !hex64_ok(json_string_value(sh)))
            return rw_err(err, RW_ECORRUPT, "member \"sha256\" is not 64 lowercase hex digits");
        r->sha256 = json_string_value(sh);
    }
    r->seq = (uint64_t)seq;
    r->status = (int)status;
    r->packets = (uint64_t)packets;
    r->bytes = (uint64_t)bytes;
    return 0;
}
