/* ipfix.c -- the IPFIX sink (RFC 7011, libfixbuf): each flow record of a
 * segment becomes one IPFIX data record per direction that has packets,
 * with IANA information elements only, so that any collector (nfcapd,
 * ipfixcol2, YAF's tools) reads it:
 *   octetDeltaCount(1) packetDeltaCount(2) flowStartMilliseconds(152)
 *   flowEndMilliseconds(153) source/destinationIPv4Address(8, 12) or
 *   source/destinationIPv6Address(27, 28) source/destinationTransportPort
 *   (7, 11; ICMP: 0 and type*256+code, as NetFlow does, the reverse
 *   direction with the answering type: echo reply for echo) vlanId(58)
 *   tcpControlBits(6) protocolIdentifier(4).
 * Octets are those rewind counts (original frame lengths). Over UDP the
 * templates are sent again with every batch (RFC 7011, 8.4) and the
 * messages are paced, so that a collector on the same host keeps up. */
#include "export/ex_int.h"
#include "common/dl.h"

#include <fixbuf/public.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* libfixbuf and GLib are loaded with dlopen() when an IPFIX export is
 * configured, as libcurl is (common/curl_dl.h): linked, they were mapped
 * and relocated in every rewindd, which most never export IPFIX. */
static struct {
    fBuf_t *(*buf_alloc_for_export)(fbSession_t *, fbExporter_t *);
    gboolean (*buf_append)(fBuf_t *, uint8_t *, size_t, GError **);
    gboolean (*buf_emit)(fBuf_t *, GError **);
    void (*buf_free)(fBuf_t *);
    fbSession_t *(*buf_get_session)(fBuf_t *);
    gboolean (*buf_set_export_template)(fBuf_t *, uint16_t, GError **);
    gboolean (*buf_set_internal_template)(fBuf_t *, uint16_t, GError **);
    fbExporter_t *(*exporter_alloc_net)(fbConnSpec_t *);
    fbInfoModel_t *(*info_model_alloc)(void);
    void (*info_model_free)(fbInfoModel_t *);
    uint16_t (*session_add_template)(fbSession_t *, gboolean, uint16_t, fbTemplate_t *, GError **);
    fbSession_t *(*session_alloc)(fbInfoModel_t *);
    gboolean (*session_export_templates)(fbSession_t *, GError **);
    fbTemplate_t *(*template_alloc)(fbInfoModel_t *);
    gboolean (*template_append_spec_array)(fbTemplate_t *, fbInfoElementSpec_t *, uint32_t, GError **);
    void (*error_free)(GError *);
} fx;
static char fx_err[RW_ERRSZ]; /* why libfixbuf could not be loaded, "" if it was */

static void fx_load(void)
{
    /* libfixbuf does not name GLib as a library it needs (its users link
     * both): GLib first, its symbols global for libfixbuf to find */
    static const char *const glib[] = {"libglib-2.0.so.0"};
    static const char *const fixbuf[] = {"libfixbuf.so.9", "libfixbuf.so"};
    const struct rw_dlsym gsyms[] = {{"g_error_free", (void **)&fx.error_free}};
    const struct rw_dlsym syms[] = {
        {"fBufAllocForExport", (void **)&fx.buf_alloc_for_export},
        {"fBufAppend", (void **)&fx.buf_append},
        {"fBufEmit", (void **)&fx.buf_emit},
        {"fBufFree", (void **)&fx.buf_free},
        {"fBufGetSession", (void **)&fx.buf_get_session},
        {"fBufSetExportTemplate", (void **)&fx.buf_set_export_template},
        {"fBufSetInternalTemplate", (void **)&fx.buf_set_internal_template},
        {"fbExporterAllocNet", (void **)&fx.exporter_alloc_net},
        {"fbInfoModelAlloc", (void **)&fx.info_model_alloc},
        {"fbInfoModelFree", (void **)&fx.info_model_free},
        {"fbSessionAddTemplate", (void **)&fx.session_add_template},
        {"fbSessionAlloc", (void **)&fx.session_alloc},
        {"fbSessionExportTemplates", (void **)&fx.session_export_templates},
        {"fbTemplateAlloc", (void **)&fx.template_alloc},
        {"fbTemplateAppendSpecArray", (void **)&fx.template_append_spec_array},
    };
    if (rw_dl_load("GLib", "libglib2.0-0", NULL, glib, 1, 1, gsyms, 1, fx_err))
        rw_dl_load("libfixbuf", "libfixbuf9", NULL, fixbuf, 2, 0, syms,
                   sizeof syms / sizeof syms[0], fx_err);
}

#define TID_V4 0x5201
#define TID_V6 0x5202
#define PACE_RECORDS 24 /* UDP: a message every this many records, then a pause */

struct __attribute__((packed)) rec4 {
    uint64_t octets, packets, start_ms, end_ms;
    uint32_t src, dst;
    uint16_t sport, dport, vlan, flags;
    uint8_t proto;
};
struct __attribute__((packed)) rec6 {
    uint64_t octets, packets, start_ms, end_ms;
    uint8_t src[16], dst[16];
    uint16_t sport, dport, vlan, flags;
    uint8_t proto;
};

static fbInfoElementSpec_t spec4[] = {
    {"octetDeltaCount", 8, 0},       {"packetDeltaCount", 8, 0},
    {"flowStartMilliseconds", 8, 0}, {"flowEndMilliseconds", 8, 0},
    {"sourceIPv4Address", 4, 0},     {"destinationIPv4Address", 4, 0},
    {"sourceTransportPort", 2, 0},   {"destinationTransportPort", 2, 0},
    {"vlanId", 2, 0},                {"tcpControlBits", 2, 0},
    {"protocolIdentifier", 1, 0},    FB_IESPEC_NULL};
static fbInfoElementSpec_t spec6[] = {
    {"octetDeltaCount", 8, 0},       {"packetDeltaCount", 8, 0},
    {"flowStartMilliseconds", 8, 0}, {"flowEndMilliseconds", 8, 0},
    {"sourceIPv6Address", 16, 0},    {"destinationIPv6Address", 16, 0},
    {"sourceTransportPort", 2, 0},   {"destinationTransportPort", 2, 0},
    {"vlanId", 2, 0},                {"tcpControlBits", 2, 0},
    {"protocolIdentifier", 1, 0},    FB_IESPEC_NULL};

struct ipx {
    int udp;
    char host[256], port[16];
    fbInfoModel_t *model;
    fBuf_t *buf; /* NULL until connected, and again after a failure */
    int cur;     /* template set on buf: 0, TID_V4 or TID_V6 */
};

/* "[udp://|tcp://]HOST:PORT" (HOST may be [V6]). */
static int parse(const char *spec, int *udp, char *host, size_t hn, char *port, size_t pn,
                 char *err)
{
    const char *p = spec;
    *udp = 1;
    if (!strncmp(p, "udp://", 6)) {
        p += 6;
    } else if (!strncmp(p, "tcp://", 6)) {
        *udp = 0;
        p += 6;
    } else if (strstr(p, "://")) {
        return rw_err(err, RW_EINPUT, "--export-ipfix: transport must be udp:// or tcp://, not "
                      "'%s'", spec);
    }
    const char *colon, *h = p;
    size_t hl;
    if (*p == '[') {
        const char *rb = strchr(p, ']');
        if (!rb || rb[1] != ':')
            return rw_err(err, RW_EINPUT, "--export-ipfix: '%s' is not HOST:PORT", spec);
        h = p + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(p, ':');
        if (!colon)
            return rw_err(err, RW_EINPUT, "--export-ipfix: '%s' is not HOST:PORT (e.g. "
                          "127.0.0.1:4739)", spec);
        hl = (size_t)(colon - p);
    }
    if (hl == 0 || hl >= hn)
        return rw_err(err, RW_EINPUT, "--export-ipfix: '%s' has no host", spec);
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || v < 1 || v > 65535)
        return rw_err(err, RW_EINPUT, "--export-ipfix: port of '%s' must be 1..65535", spec);
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, pn, "%ld", v);
    return 0;
}

int ex_ipfix_check(const char *spec, char *err)
{
    char host[256], port[16];
    int udp;
    return parse(spec, &udp, host, sizeof host, port, sizeof port, err);
}

static void drop(struct ipx *x)
{
    if (x->buf)
        fx.buf_free(x->buf); /* frees its session and exporter */
    x->buf = NULL;
    x->cur = 0;
}

static int gfail(GError *ge, const char *what, char *err)
{
    int rc = rw_err(err, RW_EIO, "IPFIX: %s: %s", what, ge ? ge->message : "failed");
    if (ge)
        fx.error_free(ge);
    return rc;
}

static int connect_(struct ipx *x, char *err)
{
    GError *ge = NULL;
    fbSession_t *s = fx.session_alloc(x->model);
    fbTemplate_t *t4 = fx.template_alloc(x->model), *t6 = fx.template_alloc(x->model);
    if (!fx.template_append_spec_array(t4, spec4, UINT32_MAX, &ge) ||
        !fx.template_append_spec_array(t6, spec6, UINT32_MAX, &ge))
        return gfail(ge, "template", err);
    if (!fx.session_add_template(s, TRUE, TID_V4, t4, &ge) ||
        !fx.session_add_template(s, FALSE, TID_V4, t4, &ge) ||
        !fx.session_add_template(s, TRUE, TID_V6, t6, &ge) ||
        !fx.session_add_template(s, FALSE, TID_V6, t6, &ge))
        return gfail(ge, "session", err);
    fbConnSpec_t cs = FB_CONNSPEC_INIT;
    cs.transport = x->udp ? FB_UDP : FB_TCP;
    cs.host = x->host;
    cs.svc = x->port;
    fbExporter_t *ex = fx.exporter_alloc_net(&cs);
    if (!ex)
        return rw_err(err, RW_EIO, "IPFIX: cannot reach %s port %s", x->host, x->port);
    x->buf = fx.buf_alloc_for_export(s, ex);
    if (!x->buf)
        return rw_err(err, RW_EIO, "IPFIX: cannot connect to %s port %s", x->host, x->port);
    return 0;
}

struct walk {
    struct ipx *x;
    uint64_t records, flows;
    int rc;
    char *err;
};

static int use(struct ipx *x, int tid, char *err)
{
    GError *ge = NULL;
    if (x->cur == tid)
        return 0;
    if (!fx.buf_set_internal_template(x->buf, (uint16_t)tid, &ge) ||
        !fx.buf_set_export_template(x->buf, (uint16_t)tid, &ge))
        return gfail(ge, "template", err);
    x->cur = tid;
    return 0;
}

static int emit_rec(struct walk *w, const struct idx_flowrec *r, int rev)
{
    struct ipx *x = w->x;
    GError *ge = NULL;
    uint64_t pk = rev ? r->pkts_rev : r->pkts_fwd, by = rev ? r->bytes_rev : r->bytes_fwd;
    const uint8_t *sa = rev ? r->dst : r->src, *da = rev ? r->src : r->dst;
    uint16_t sp = rev ? r->dport : r->sport, dp = rev ? r->sport : r->dport;
    if (r->proto == 1 || r->proto == 58) { /* type in sport, code in dport */
        int type = r->sport, other;
        if (rev && idx_icmp_counterpart(r->proto == 58, type, &other))
            type = other; /* the answers of an echo are echo replies */
        dp = (uint16_t)(type << 8 | r->dport);
        sp = 0;
    }
    int rc;
    if (r->family == 4) {
        struct rec4 v = {.octets = by, .packets = pk, .start_ms = (uint64_t)(r->first_ts / 1000000),
                         .end_ms = (uint64_t)(r->last_ts / 1000000), .sport = sp, .dport = dp,
                         .vlan = r->vlan, .flags = r->tcp_flags, .proto = r->proto};
        v.src = (uint32_t)sa[0] << 24 | (uint32_t)sa[1] << 16 | (uint32_t)sa[2] << 8 | sa[3];
        v.dst = (uint32_t)da[0] << 24 | (uint32_t)da[1] << 16 | (uint32_t)da[2] << 8 | da[3];
        if ((rc = use(x, TID_V4, w->err)) < 0)
            return rc;
        if (!fx.buf_append(x->buf, (uint8_t *)&v, sizeof v, &ge))
            return gfail(ge, "sending", w->err);
    } else {
        struct rec6 v = {.octets = by, .packets = pk, .start_ms = (uint64_t)(r->first_ts / 1000000),
                         .end_ms = (uint64_t)(r->last_ts / 1000000), .sport = sp, .dport = dp,
                         .vlan = r->vlan, .flags = r->tcp_flags, .proto = r->proto};
        memcpy(v.src, sa, 16);
        memcpy(v.dst, da, 16);
        if ((rc = use(x, TID_V6, w->err)) < 0)
            return rc;
        if (!fx.buf_append(x->buf, (uint8_t *)&v, sizeof v, &ge))
            return gfail(ge, "sending", w->err);
    }
    if (++w->records % PACE_RECORDS == 0 && x->udp) {
        if (!fx.buf_emit(x->buf, &ge))
            return gfail(ge, "sending", w->err);
        struct timespec ts = {0, 300 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int on_flow(void *arg, const struct idx_flowrec *r)
{
    struct walk *w = arg;
    if (r->family != 4 && r->family != 6)
        return 0;
    if (r->pkts_fwd && (w->rc = emit_rec(w, r, 0)) < 0)
        return 1;
    if (r->pkts_rev && (w->rc = emit_rec(w, r, 1)) < 0)
        return 1;
    w->flows++;
    return 0;
}

static int ipx_send(void *ctx, idx_t *ix, const struct ex_batch *b, uint64_t *flows,
                    volatile int *cancel, char *err)
{
    struct ipx *x = ctx;
    GError *ge = NULL;
    int rc;
    if (!x->buf && (rc = connect_(x, err)) < 0) {
        drop(x);
        return rc;
    }
    x->cur = 0;
    if (!fx.session_export_templates(fx.buf_get_session(x->buf), &ge)) {
        drop(x);
        return gfail(ge, "sending templates", err);
    }
    struct walk w = {.x = x, .err = err};
    for (size_t i = 0; i < b->n && !*cancel; i++) {
        w.rc = 0;
        rc = idx_flows(ix, b->segs[i].s.id, on_flow, &w, err);
        if (rc == 0)
            rc = w.rc;
        if (rc < 0) {
            drop(x);
            return rw_errctx(err, rc, "flows of segment %llu", (unsigned long long)b->segs[i].s.id);
        }
    }
    if (*cancel) {
        drop(x);
        return rw_err(err, RW_EIO, "IPFIX: stopped");
    }
    if (!fx.buf_emit(x->buf, &ge)) {
        drop(x);
        return gfail(ge, "sending", err);
    }
    *flows = w.flows;
    return 0;
}

static void ipx_free(void *ctx)
{
    struct ipx *x = ctx;
    if (!x)
        return;
    drop(x);
    if (x->model)
        fx.info_model_free(x->model);
    free(x);
}

int ex_ipfix_sink(const struct ex_opts *o, struct ex_sink *out, char *err)
{
    struct ipx *x = calloc(1, sizeof *x);
    int rc;
    if (!x)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if ((rc = parse(o->ipfix, &x->udp, x->host, sizeof x->host, x->port, sizeof x->port, err)) < 0) {
        free(x);
        return rc;
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fx_load);
    if (fx_err[0]) {
        free(x);
        return rw_err(err, RW_EIO, "--export-ipfix: %s", fx_err);
    }
    x->model = fx.info_model_alloc();
    *out = (struct ex_sink){.name = "ipfix", .ctx = x, .send = ipx_send, .free = ipx_free};
    return 0;
}
