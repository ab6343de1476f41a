/* fuzz_audit.c -- libFuzzer target for the audit record parser that
 * `rewind audit` list and verify use (auth/audit_record.c): any line it
 * accepts must be written again by the writer's own code to a printable-ASCII
 * line that carries its own hash and parses back to the same record. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/audit_int.h"

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static void same_rec(const struct audit_parsed *x, const struct audit_parsed *y)
{
    const struct audit_rec *a = &x->rec, *b = &y->rec;
    if (a->seq != b->seq || strcmp(a->prev, b->prev) || a->time_ns != b->time_ns ||
        !same_str(a->principal, b->principal) || !same_str(a->role, b->role) ||
        !same_str(a->method, b->method) || !same_str(a->client, b->client) ||
        !same_str(a->route, b->route) || a->from_ns != b->from_ns || a->to_ns != b->to_ns ||
        !same_str(a->filter, b->filter) || a->status != b->status ||
        a->packets != b->packets || a->bytes != b->bytes || !same_str(a->sha256, b->sha256) ||
        a->duration_ns != b->duration_ns || !same_str(a->detail, b->detail) ||
        a->nparams != b->nparams || x->ncuts != y->ncuts || !a->points != !b->points)
        abort();
    for (size_t i = 0; a->points && (a->points[i] || b->points[i]); i++)
        if (!same_str(a->points[i], b->points[i]))
            abort();
    for (size_t i = 0; i < a->nparams; i++)
        if (strcmp(a->params[i].name, b->params[i].name) ||
            (strcmp(a->params[i].value, b->params[i].value) &&
             strcmp(b->params[i].value, AUDIT_REDACTED))) /* a secret is written redacted */
            abort();
    for (size_t i = 0; i < x->ncuts; i++)
        if (strcmp(x->cuts[i].file, y->cuts[i].file) || x->cuts[i].offset != y->cuts[i].offset ||
            x->cuts[i].bytes != y->cuts[i].bytes)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[RW_ERRSZ], claimed[AUDIT_HEXSZ], actual[AUDIT_HEXSZ], hex[AUDIT_HEXSZ];
    struct audit_parsed p, q;
    const char *line = (const char *)data;
    (void)audit_line_hashes(line, size, claimed, actual);
    err[0] = 0;
    if (audit_line_parse(line, size, &p, err) != 0) {
        if (!err[0])
            abort(); /* a refusal says why */
        audit_parsed_free(&p);
        return 0;
    }
    struct audit_buf body = {0}, again = {0};
    if (audit_body_format(&p.rec, p.cuts, p.ncuts, &body, err) != 0 ||
        audit_line_assemble(p.rec.seq, p.rec.prev, body.p, body.len, &again, hex) != 0)
        abort(); /* what was read can be written */
    if (again.len < 2 || again.p[again.len - 1] != '\n')
        abort();
    for (size_t i = 0; i + 1 < again.len; i++)
        if (again.p[i] < 0x20 || again.p[i] > 0x7e)
            abort();
    if (audit_line_hashes(again.p, again.len - 1, claimed, actual) != 0 ||
        strcmp(claimed, actual) || strcmp(claimed, hex))
        abort();
    if (audit_line_parse(again.p, again.len - 1, &q, err) != 0)
        abort();
    same_rec(&p, &q);
    audit_parsed_free(&q);
    audit_parsed_free(&p);
    audit_buf_free(&body);
    audit_buf_free(&again);
    return 0;
}
