/* radius.c -- RADIUS accounting requests (RFC 2866, RFC 3162, RFC 4818)
 * read from captured UDP payloads: who held which address from when to
 * when. Untrusted bytes: every length is checked against what is there,
 * and anything malformed is refused whole, never half used. */
#include "intercept/intercept.h"

#include <string.h>

enum {
    RAD_ACCOUNTING_REQUEST = 4,
    RAD_USER_NAME = 1,
    RAD_FRAMED_IP_ADDRESS = 8,
    RAD_CALLING_STATION_ID = 31,
    RAD_ACCT_STATUS_TYPE = 40,
    RAD_ACCT_SESSION_ID = 44,
    RAD_FRAMED_IPV6_PREFIX = 97,
    RAD_DELEGATED_IPV6_PREFIX = 123,
};

/* A text attribute: printable bytes (no NUL, no control characters), that
 * fit out. */
static int rad_text(const uint8_t *v, size_t n, char *out, size_t cap, const char *what,
                    char *err)
{
    if (n == 0 || n >= cap)
        return rw_err(err, RW_EINPUT, "%s: %zu bytes (1 to %zu)", what, n, cap - 1);
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] == 0x7f)
            return rw_err(err, RW_EINPUT, "%s: byte %zu is a control character", what, i);
    memcpy(out, v, n);
    out[n] = 0;
    return 0;
}

/* RFC 3162 2.3: reserved, prefix length, then as many bytes of the
 * prefix as the length needs (0 to 16); bits beyond the length must be 0. */
static int rad_prefix(const uint8_t *v, size_t n, struct ic_radius_prefix *p, const char *what,
                      char *err)
{
    if (n < 2 || n > 18)
        return rw_err(err, RW_EINPUT, "%s: %zu bytes (2 to 18)", what, n);
    if (v[1] > 128 || (size_t)(v[1] + 7) / 8 > n - 2)
        return rw_err(err, RW_EINPUT, "%s: prefix length %u with %zu bytes", what, v[1], n - 2);
    memset(p->addr, 0, sizeof p->addr);
    memcpy(p->addr, v + 2, n - 2);
    p->plen = v[1];
    for (int b = p->plen; b < 128; b++)
        if (p->addr[b / 8] & (0x80 >> (b % 8)))
            return rw_err(err, RW_EINPUT, "%s: bits set beyond /%d", what, p->plen);
    return 0;
}

int ic_radius_parse(const uint8_t *p, size_t n, struct ic_radius_acct *a, char *err)
{
    memset(a, 0, sizeof *a);
    if (n < 20)
        return rw_err(err, RW_EINPUT, "RADIUS: %zu bytes, a header needs 20", n);
    size_t len = (size_t)p[2] << 8 | p[3];
    if (len < 20 || len > 4096 || len > n)
        return rw_err(err, RW_EINPUT, "RADIUS: length field %zu with %zu bytes there", len, n);
    if (p[0] != RAD_ACCOUNTING_REQUEST)
        return 0;
    int status_seen = 0;
    for (size_t at = 20; at < len;) {
        if (len - at < 2 || p[at + 1] < 2 || p[at + 1] > len - at)
            return rw_err(err, RW_EINPUT, "RADIUS: attribute at byte %zu overruns the packet", at);
        uint8_t type = p[at];
        const uint8_t *v = p + at + 2;
        size_t vl = p[at + 1] - 2u;
        at += p[at + 1];
        switch (type) {
        case RAD_ACCT_STATUS_TYPE:
            if (vl != 4 || status_seen++)
                return rw_err(err, RW_EINPUT, "RADIUS: Acct-Status-Type %s",
                              vl != 4 ? "is not 4 bytes" : "twice");
            a->status = (int)(((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
                               (uint32_t)v[2] << 8 | v[3]) & 0x7fffffff);
            break;
        case RAD_USER_NAME:
            if (a->user[0])
                return rw_err(err, RW_EINPUT, "RADIUS: User-Name twice");
            if (rad_text(v, vl, a->user, sizeof a->user, "User-Name", err) < 0)
                return rw_errctx(err, RW_EINPUT, "RADIUS");
            break;
        case RAD_ACCT_SESSION_ID:
            if (rad_text(v, vl, a->session, sizeof a->session, "Acct-Session-Id", err) < 0)
                return rw_errctx(err, RW_EINPUT, "RADIUS");
            break;
        case RAD_CALLING_STATION_ID:
            if (rad_text(v, vl, a->station, sizeof a->station, "Calling-Station-Id", err) < 0)
                return rw_errctx(err, RW_EINPUT, "RADIUS");
            break;
        case RAD_FRAMED_IP_ADDRESS:
            if (vl != 4)
                return rw_err(err, RW_EINPUT, "RADIUS: Framed-IP-Address is not 4 bytes");
            memcpy(a->ip4, v, 4);
            a->has_ip4 = 1;
            break;
        case RAD_FRAMED_IPV6_PREFIX:
        case RAD_DELEGATED_IPV6_PREFIX:
            if (a->nprefix == IC_RADIUS_PREFIXES)
                return rw_err(err, RW_EINPUT, "RADIUS: more than %d IPv6 prefixes",
                              IC_RADIUS_PREFIXES);
            if (rad_prefix(v, vl, &a->prefix[a->nprefix],
                           type == RAD_FRAMED_IPV6_PREFIX ? "Framed-IPv6-Prefix"
                                                          : "Delegated-IPv6-Prefix",
                           err) < 0)
                return rw_errctx(err, RW_EINPUT, "RADIUS");
            a->nprefix++;
            break;
        default:
            break; /* others (vendor-specific...) carry nothing an identity needs */
        }
    }
    if (!status_seen)
        return rw_err(err, RW_EINPUT, "RADIUS: accounting request without Acct-Status-Type");
    if (a->status != IC_ACCT_START && a->status != IC_ACCT_STOP && a->status != IC_ACCT_INTERIM)
        return 0; /* Accounting-On/Off and the like: no subscriber's address */
    if (!a->user[0])
        return rw_err(err, RW_EINPUT, "RADIUS: accounting %s without User-Name",
                      a->status == IC_ACCT_START ? "Start" : a->status == IC_ACCT_STOP ? "Stop"
                                                                                   : "Interim");
    return 1;
}
