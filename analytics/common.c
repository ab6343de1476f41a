/* common.c -- pieces every analytics answer uses: the points asked for, a
 * scan of packets through the query engine, text forms. */
#include "analytics/an_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"

int an_points_selected(idx_t *ix, const char **names, struct idx_point **out, size_t *n,
                       char *err)
{
    struct idx_point *pts = NULL;
    size_t npts = 0, keep = 0;
    int rc = idx_point_list(ix, &pts, &npts, err);
    *out = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    if (names) {
        for (const char **p = names; *p; p++) {
            size_t i;
            for (i = 0; i < npts && strcmp(pts[i].name, *p); i++)
                ;
            if (i == npts) {
                char list[256] = "";
                for (size_t j = 0; j < npts; j++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             j ? ", " : "", pts[j].name);
                free(pts);
                return rw_err(err, RW_EINPUT, "no capture point named '%.64s' (the archive has: %s)",
                              *p, npts ? list : "none");
            }
        }
        for (size_t i = 0; i < npts; i++) {
            const char **p;
            for (p = names; *p && strcmp(*p, pts[i].name); p++)
                ;
            if (*p)
                pts[keep++] = pts[i];
        }
        npts = keep;
    }
    *out = pts;
    *n = npts;
    return 0;
}

int an_scan(idx_t *ix, int64_t from, int64_t to, const char *filter, const char **points,
            const uint64_t *segs, size_t nsegs, an_pkt_fn cb, void *arg, char *err)
{
    struct qry_spec spec = {.from = from, .to = to, .filter = filter, .points = points,
                            .segs = segs, .nsegs = nsegs};
    qry_t *q;
    int rc, npts;
    if (segs && nsegs == 0)
        return 0;
    if ((rc = qry_new(ix, &spec, &q, err)) < 0)
        return rc;
    const struct qry_point *pts = qry_points(q, &npts);
    struct qry_pkt p;
    while ((rc = qry_next(q, &p, err)) > 0)
        if (cb(arg, &pts[p.point], &p))
            break;
    if (rc > 0)
        rc = 0;
    if (rc == 0) {
        size_t nl, more;
        qry_losses(q, &nl, &more);
        if (nl || more) {
            char text[RW_ERRSZ];
            qry_loss_desc(&qry_losses(q, &nl, &more)[0], text, sizeof text);
            rc = rw_err(err, RW_EIO, "%s", text);
        }
    }
    qry_free(q);
    return rc;
}

int an_filter_check(idx_t *ix, const char *filter, const char **points, char *err)
{
    /* A window with no packets: the filter is compiled for every point
     * asked for (query/query.h), nothing is read. */
    struct qry_spec spec = {.from = RW_TIME_MIN, .to = RW_TIME_MIN + 1, .filter = filter,
                            .points = points};
    qry_t *q;
    int rc = qry_new(ix, &spec, &q, err);
    if (rc == 0)
        qry_free(q);
    return rc;
}

void an_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

const char *an_addr(int family, const uint8_t *a, char *buf, size_t n)
{
    if (family == 4 && n >= 16) {
        /* By hand: inet_ntop formats with sprintf, a million flows' worth. */
        char *p = buf;
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 3 ? '.' : 0;
        }
        return buf;
    }
    if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)n))
        snprintf(buf, n, "?");
    return buf;
}

const char *an_proto_name(int proto)
{
    switch (proto) {
    case 1:
        return "icmp";
    case 6:
        return "tcp";
    case 17:
        return "udp";
    case 58:
        return "icmp6";
    case 132:
        return "sctp";
    case 47:
        return "gre";
    case 50:
        return "esp";
    default:
        return NULL;
    }
}
