/* audit_append.c -- test tool: append audit records to DIR/audit/ through
 * auth/audit.h, as the archive's writer would (tests/e2e/test_audit_cli.py).
 *
 * usage: audit_append [--roll BYTES] DIR < RECORDS
 *
 * Each line of standard input is a JSON object giving one record's fields:
 * principal, role, method, client, route, detail, filter (or filter_hex: its
 * bytes in hex, for bytes that are not UTF-8), points (an array), params (an
 * object of strings), time_ns, from_ns, to_ns, status, packets,
 * duration_ns, and body (or body_hex): the bytes "sent", whose length and
 * SHA-256 (through audit_hash_*) become the record's bytes and sha256.
 * Prints "SEQ HASH" for each record appended. A trail that audit_open had to
 * recover is reported on stderr ("note: ...") and appended to. Exit 0, or 1
 * with the reason on stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/audit.h"
#include "common/rw.h"

static int usage(void)
{
    fprintf(stderr, "usage: audit_append [--roll BYTES] DIR < RECORDS\n");
    return 2;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The bytes of a hex string, NUL-ended (a test's own input: no checks). */
static char *unhex(const char *h, size_t *n)
{
    size_t l = strlen(h) / 2;
    char *s = malloc(l + 1);
    for (size_t i = 0; s && i < l; i++)
        s[i] = (char)(rw_hexval(h[2 * i]) << 4 | rw_hexval(h[2 * i + 1]));
    if (s)
        s[l] = 0;
    *n = l;
    return s;
}

static int64_t num(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static int append_one(audit_t *a, json_t *o, char *err)
{
    struct audit_rec r;
    struct audit_param params[32];
    const char *points[65];
    char hex[AUDIT_HEXSZ], *filter = NULL, *body = NULL;
    size_t blen = 0, n;
    int rc;
    audit_rec_init(&r);
    r.principal = str(o, "principal");
    r.role = str(o, "role");
    r.method = str(o, "method");
    r.client = str(o, "client");
    r.route = str(o, "route");
    r.detail = str(o, "detail");
    r.filter = str(o, "filter");
    if (str(o, "filter_hex"))
        r.filter = filter = unhex(str(o, "filter_hex"), &n);
    r.time_ns = num(o, "time_ns", 0);
    r.from_ns = num(o, "from_ns", RW_TIME_MIN);
    r.to_ns = num(o, "to_ns", RW_TIME_MAX);
    r.status = (int)num(o, "status", 200);
    r.packets = (uint64_t)num(o, "packets", 0);
    r.duration_ns = num(o, "duration_ns", 0);
    json_t *pts = json_object_get(o, "points");
    if (json_is_array(pts)) {
        size_t i;
        for (i = 0; i < json_array_size(pts) && i < 64; i++)
            points[i] = json_string_value(json_array_get(pts, i));
        points[i] = NULL;
        r.points = points;
    }
    json_t *ps = json_object_get(o, "params"), *v;
    const char *k;
    json_object_foreach(ps, k, v) {
        if (r.nparams < 32)
            params[r.nparams++] = (struct audit_param){k, json_string_value(v)};
    }
    r.params = params;
    if (str(o, "body"))
        body = strdup(str(o, "body")), blen = strlen(body);
    else if (str(o, "body_hex"))
        body = unhex(str(o, "body_hex"), &blen);
    if (body) {
        audit_hash_t *h = audit_hash_new();
        if (!h)
            return rw_err(err, RW_ENOMEM, "out of memory");
        audit_hash_update(h, body, blen);
        r.bytes = audit_hash_bytes(h);
        if ((rc = audit_hash_final(h, hex, err)) < 0)
            return rc;
        r.sha256 = hex;
    }
    rc = audit_append(a, &r, err);
    if (rc == 0)
        printf("%llu %s\n", (unsigned long long)r.seq, r.hash);
    free(filter);
    free(body);
    return rc;
}

int main(int argc, char **argv)
{
    char err[RW_ERRSZ], *line = NULL;
    size_t cap = 0;
    uint64_t roll = 0;
    int i = 1, rc;
    if (argc > 2 && !strcmp(argv[1], "--roll")) {
        roll = strtoull(argv[2], NULL, 10);
        i = 3;
    }
    if (argc - i != 1)
        return usage();
    audit_t *a;
    rc = audit_open(argv[i], &a, err);
    if (rc < 0) {
        fprintf(stderr, "audit_append: %s\n", err);
        return 1;
    }
    if (rc == AUDIT_RECOVERED)
        fprintf(stderr, "audit_append: note: %s\n", err);
    if (roll)
        audit_set_roll(a, roll);
    int status = 0;
    while (getline(&line, &cap, stdin) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!json_is_object(o)) {
            fprintf(stderr, "audit_append: bad input line: %s\n", je.text);
            status = 1;
        } else if ((rc = append_one(a, o, err)) < 0) {
            fprintf(stderr, "audit_append: %s\n", err);
            status = 1;
        }
        json_decref(o);
        if (status)
            break;
    }
    free(line);
    audit_close(a);
    return status;
}
