/* bag.c -- evidence bundles: a case's packets, record, capture facts and
 * audit records as a BagIt bag (RFC 8493) in a ustar file, with an RFC 3161
 * timestamp request over its manifest; and their verification
 * (evidence.h). */
#include "evidence/evidence.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/audit.h"
#include "index/index.h"
#include "query/query.h"
#include "query/read.h"

#define TAG_MAX (16u << 20) /* a tag file (or a small payload file) read whole */

static void hex32(const uint8_t d[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void sha_hex(const void *p, size_t n, char out[65])
{
    uint8_t d[32];
    SHA256(p, n, d);
    hex32(d, out);
}

/* ---------- the payload ---------- */

struct fsink {
    int fd;
    audit_hash_t *h;
    uint64_t bytes;
    int failed;
};

static int fsink_write(void *arg, const void *buf, size_t n)
{
    struct fsink *s = arg;
    if (rw_write_all(s->fd, buf, n) < 0) {
        s->failed = errno ? errno : EIO;
        return -1;
    }
    audit_hash_update(s->h, buf, n);
    s->bytes += n;
    return 0;
}

/* data/packets.pcapng into the file fd: the case's packets in the window,
 * as its preservation takes them (ic_sel), narrowed by rq->filter. */
static int write_packets(const struct ev_request *rq, int fd, ic_sel_t **selp, char hex[65],
                         uint64_t *bytes, uint64_t *packets, char *err)
{
    struct ic_case *c = malloc(sizeof *c);
    struct fsink s = {.fd = fd, .h = audit_hash_new()};
    qry_t *q = NULL;
    qry_out_t *o = NULL;
    ic_sel_t *sel = NULL;
    int rc = 0, npts = 0;
    const struct qry_point *pts = NULL;
    *packets = 0;
    if (!c || !s.h) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    *c = *rq->c;
    if (rq->filter && rq->filter[0]) {
        char f[IC_FILTER_MAX];
        if ((size_t)snprintf(f, sizeof f, c->filter[0] ? "(%s) and (%s)" : "%s%s",
                             c->filter[0] ? c->filter : "", rq->filter) >= sizeof f) {
            rc = rw_err(err, RW_EINPUT, "filter: too long with the case's");
            goto out;
        }
        memcpy(c->filter, f, sizeof f);
    }
    if ((rc = ic_sel_new(rq->ix, c, rq->from, rq->to, &sel, err)) < 0)
        goto out;
    size_t niv;
    int judge = ic_sel_intervals(sel, &niv) && niv;
    if (ic_sel_filter(sel)) {
        struct qry_spec spec = {.from = rq->from, .to = rq->to, .filter = ic_sel_filter(sel)};
        if ((rc = qry_new(rq->ix, &spec, &q, err)) < 0)
            goto out;
        pts = qry_points(q, &npts);
    }
    if ((rc = qry_out_new(QRY_PCAPNG, pts, npts, fsink_write, &s, &o, err)) < 0)
        goto out;
    while (q) {
        struct qry_pkt pkt;
        if ((rc = qry_next(q, &pkt, err)) <= 0)
            break;
        if (judge) {
            int m = ic_sel_match(sel, pts[pkt.point].dlt, pts[pkt.point].snaplen,
                                 (int64_t)pkt.sec * RW_NS_PER_SEC + pkt.frac, pkt.data, pkt.caplen,
                                 pkt.len);
            if (m < 0) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                break;
            }
            if (!m)
                continue;
        }
        (*packets)++;
        if (qry_out_packet(o, &pkt) < 0)
            break;
    }
    if (rc == 0 && q && qry_out_losses(o, q) < 0)
        rc = RW_EIO;
    int crc = qry_out_close(o);
    o = NULL;
    if (rc == 0 && (crc < 0 || s.failed))
        rc = rw_err(err, RW_EIO, "writing the packets: %s", strerror(s.failed ? s.failed : EIO));
    if (rc == 0) {
        rc = audit_hash_final(s.h, hex, err);
        s.h = NULL;
        *bytes = s.bytes;
    }
out:
    if (o)
        (void)!qry_out_close(o);
    audit_hash_free(s.h);
    qry_free(q);
    free(c);
    if (rc < 0)
        ic_sel_free(sel);
    else
        *selp = sel;
    return rc;
}

/* ---------- the other payload files ---------- */

static json_t *jtime(int64_t ns)
{
    char b[48];
    return json_string(rw_time_fmt(ns, b, sizeof b));
}

static char *case_doc(const struct ev_request *rq, const ic_sel_t *sel)
{
    char *s = ic_case_json(rq->c, rw_now_ns());
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (!j)
        return NULL;
    size_t n;
    const struct idx_ident *iv = ic_sel_intervals(sel, &n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char a[64], b[80];
        inet_ntop(iv[i].family == 4 ? AF_INET : AF_INET6, iv[i].addr, a, sizeof a);
        snprintf(b, sizeof b, "%s/%u", a, iv[i].plen);
        json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:s,s:s}", "user", iv[i].user, "prefix", b,
                              "from", jtime(iv[i].start), "to", jtime(iv[i].end), "session",
                              iv[i].session, "source", iv[i].source);
        if (iv[i].port_lo || iv[i].port_hi) {
            snprintf(b, sizeof b, "%u-%u", iv[i].port_lo, iv[i].port_hi);
            json_object_set_new(o, "ports", json_string(b));
        }
        json_array_append_new(arr, o);
    }
    json_object_set_new(j, "resolved_identities", arr);
    json_object_set_new(j, "export", json_pack("{s:o,s:o,s:s,s:s?}", "from", jtime(rq->from),
                                               "to", jtime(rq->to), "case_filter",
                                               rq->c->filter, "filter",
                                               rq->filter && rq->filter[0] ? rq->filter : NULL));
    s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

static char *capture_doc(const struct ev_request *rq, char *err)
{
    struct qry_status st;
    if (qry_status_get(rq->ix, NULL, NULL, &st, err) < 0)
        return NULL;
    json_t *pts = json_array();
    for (size_t i = 0; i < st.npoints; i++) {
        const struct qry_point_status *p = &st.points[i];
        json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I}", "name", p->name, "linktype", p->linktype,
                              "packets", (json_int_t)p->packets, "kernel_drops",
                              (json_int_t)p->kernel_drops, "queue_drops",
                              (json_int_t)p->queue_drops);
        if (p->segments) {
            json_object_set_new(o, "first", jtime(p->first));
            json_object_set_new(o, "last", jtime(p->last));
        }
        json_array_append_new(pts, o);
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    json_t *j = json_pack(
        "{s:s,s:o,s:s,s:{s:s,s:n},s:s,s:o}", "sensor", host, "points", pts, "drops_note",
        "kernel and queue drops are the points' totals since each began: the archive does not "
        "keep them per window",
        "clock", "source", "the capturing host's system clock (CLOCK_REALTIME)", "offset_ns",
        "software", "rewind (built " __DATE__ " " __TIME__ ")", "made", jtime(rw_now_ns()));
    qry_status_free(&st);
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
        rw_err(err, RW_ENOMEM, "out of memory");
    return s;
}

struct audit_cat {
    FILE *f;
    const char *id;
};

static int audit_line(void *arg, const struct audit_rec *r, const char *line, size_t len)
{
    struct audit_cat *a = arg;
    for (size_t i = 0; i < r->nparams; i++)
        if (!strcmp(r->params[i].name, "case") && !strcmp(r->params[i].value, a->id)) {
            fwrite(line, 1, len, a->f);
            fputc('\n', a->f);
            break;
        }
    return 0;
}

/* An RFC 3161 TimeStampReq over digest (SHA-256), as `openssl ts -query
 * -sha256 -cert` makes it: version 1, the imprint, a 64-bit nonce, certReq. */
static int tsq(const uint8_t digest[32], uint8_t **der, int *len, char *err)
{
    TS_REQ *r = TS_REQ_new();
    TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_INTEGER *nonce = ASN1_INTEGER_new();
    uint8_t nb[8];
    BIGNUM *bn = NULL;
    int rc = rw_err(err, RW_ENOMEM, "making the timestamp request: out of memory");
    if (!r || !mi || !alg || !nonce || RAND_bytes(nb, sizeof nb) != 1)
        goto out;
    nb[0] &= 0x7f;
    if (!(bn = BN_bin2bn(nb, sizeof nb, NULL)) || !BN_to_ASN1_INTEGER(bn, nonce))
        goto out;
    X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL);
    if (!TS_REQ_set_version(r, 1) || !TS_MSG_IMPRINT_set_algo(mi, alg) ||
        !TS_MSG_IMPRINT_set_msg(mi, (unsigned char *)digest, 32) ||
        !TS_REQ_set_msg_imprint(r, mi) || !TS_REQ_set_nonce(r, nonce) ||
        !TS_REQ_set_cert_req(r, 1))
        goto out;
    *der = NULL;
    if ((*len = i2d_TS_REQ(r, der)) > 0)
        rc = 0;
out:
    BN_free(bn);
    ASN1_INTEGER_free(nonce);
    X509_ALGOR_free(alg);
    TS_MSG_IMPRINT_free(mi);
    TS_REQ_free(r);
    return rc;
}

/* ---------- ustar ---------- */

struct tarw {
    int fd;
    audit_hash_t *h;
    uint64_t bytes;
};

static int tw(struct tarw *t, const void *p, size_t n)
{
    if (rw_write_all(t->fd, p, n) < 0)
        return -1;
    audit_hash_update(t->h, p, n);
    t->bytes += n;
    return 0;
}

static int tar_header(struct tarw *t, const char *name, uint64_t size, int dir, int64_t mtime)
{
    uint8_t h[512] = {0};
    unsigned sum = 0;
    if (strlen(name) >= 100)
        return -1;
    memcpy(h, name, strlen(name));
    snprintf((char *)h + 100, 8, "%07o", dir ? 0750 : 0640);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)(mtime / RW_NS_PER_SEC));
    memset(h + 148, ' ', 8);
    h[156] = dir ? '5' : '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return tw(t, h, 512);
}

static int tar_pad(struct tarw *t, uint64_t size)
{
    static const uint8_t zero[512];
    size_t pad = (512 - size % 512) % 512;
    return pad ? tw(t, zero, pad) : 0;
}

static int tar_mem(struct tarw *t, const char *bag, const char *name, const void *p, size_t n,
                   int64_t now)
{
    char full[256];
    snprintf(full, sizeof full, "%s/%s", bag, name);
    return tar_header(t, full, n, 0, now) < 0 || tw(t, p, n) < 0 || tar_pad(t, n) < 0 ? -1 : 0;
}

/* ---------- the bundle ---------- */

int ev_bundle(const struct ev_request *rq, const char *out, struct ev_result *res, char *err)
{
    char ptmp[4200], otmp[4200], ph[65], manifest_hex[65], b0[48], b1[48], b2[48];
    char *casej = NULL, *capj = NULL, *auditj = NULL, *bagit = NULL, *info = NULL;
    char *manifest = NULL, *tagm = NULL;
    size_t auditn = 0;
    uint8_t *der = NULL;
    int derlen = 0, rc, pfd = -1;
    uint64_t pbytes = 0;
    ic_sel_t *sel = NULL;
    struct tarw t = {.fd = -1};
    int64_t now = rw_now_ns();
    memset(res, 0, sizeof *res);
    if (rq->from >= rq->to)
        return rw_err(err, RW_EINPUT, "to: the window is reversed or empty");
    snprintf(ptmp, sizeof ptmp, "%s.packets.tmp", out);
    snprintf(otmp, sizeof otmp, "%s.tmp", out);
    {
        char ts[48];
        rw_time_fmt(now, ts, sizeof ts);
        snprintf(res->name, sizeof res->name, "%s-%.4s%.2s%.2sT%.2s%.2s%.2sZ", rq->c->id, ts,
                 ts + 5, ts + 8, ts + 11, ts + 14, ts + 17);
    }
    if ((pfd = open(ptmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
        rc = rw_err(err, RW_EIO, "%s: %s", ptmp, strerror(errno));
        goto out;
    }
    if ((rc = write_packets(rq, pfd, &sel, ph, &pbytes, &res->packets, err)) < 0)
        goto out;
    rc = rw_err(err, RW_ENOMEM, "out of memory");
    if (!(casej = case_doc(rq, sel)))
        goto out;
    if (!(capj = capture_doc(rq, err))) {
        rc = RW_EIO;
        goto out;
    }
    struct audit_cat ac = {open_memstream(&auditj, &auditn), rq->c->id};
    if (!ac.f)
        goto out;
    rc = audit_list(rq->dir, RW_TIME_MIN, RW_TIME_MAX, NULL, audit_line, &ac, err);
    fclose(ac.f);
    if (rc < 0 && rc != RW_EINPUT) /* no trail yet: an empty audit.jsonl */
        goto out;
    rc = rw_err(err, RW_ENOMEM, "out of memory");
    /* Payload files in name order, as the manifest lists them. */
    struct {
        const char *name;
        const char *mem;
        size_t n;
        char hex[65];
    } pay[] = {{"data/audit.jsonl", auditj, auditn, ""},
               {"data/capture.json", capj, strlen(capj), ""},
               {"data/case.json", casej, strlen(casej), ""},
               {"data/packets.pcapng", NULL, pbytes, ""}};
    size_t np = sizeof pay / sizeof pay[0];
    uint64_t oct = 0;
    FILE *m = open_memstream(&manifest, &(size_t){0});
    if (!m)
        goto out;
    for (size_t i = 0; i < np; i++) {
        if (pay[i].mem)
            sha_hex(pay[i].mem, pay[i].n, pay[i].hex);
        else
            memcpy(pay[i].hex, ph, 65);
        oct += pay[i].n;
        fprintf(m, "%s  %s\n", pay[i].hex, pay[i].name);
    }
    fclose(m);
    if (asprintf(&bagit, "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n") < 0)
        goto out;
    if (asprintf(&info,
                 "Source-Organization: rewind lawful intercept\n"
                 "Bagging-Date: %.10s\n"
                 "External-Identifier: %s\n"
                 "External-Description: packets of case %s (warrant %s, %s) from %s to %s\n"
                 "Payload-Oxum: %llu.%zu\n"
                 "Bag-Software-Agent: rewind\n",
                 rw_time_fmt(now, b0, sizeof b0), rq->c->id, rq->c->id, rq->c->warrant,
                 rq->c->authority, rw_time_fmt(rq->from, b1, sizeof b1),
                 rw_time_fmt(rq->to, b2, sizeof b2), (unsigned long long)oct, np) < 0)
        goto out;
    uint8_t md[32];
    SHA256((const uint8_t *)manifest, strlen(manifest), md);
    hex32(md, manifest_hex);
    if ((rc = tsq(md, &der, &derlen, err)) < 0)
        goto out;
    char hb[65], hi[65], hm[65], ht[65];
    sha_hex(bagit, strlen(bagit), hb);
    sha_hex(info, strlen(info), hi);
    sha_hex(manifest, strlen(manifest), hm);
    sha_hex(der, (size_t)derlen, ht);
    if (asprintf(&tagm, "%s  bag-info.txt\n%s  bagit.txt\n%s  manifest-sha256.txt\n"
                        "%s  manifest-sha256.txt.tsq\n", hi, hb, hm, ht) < 0) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    /* The tar. */
    if ((t.fd = open(otmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0 ||
        !(t.h = audit_hash_new())) {
        rc = rw_err(err, RW_EIO, "%s: %s", otmp, strerror(errno));
        goto out;
    }
    char dname[200];
    rc = rw_err(err, RW_EIO, "writing %s: %s", otmp, strerror(errno));
    snprintf(dname, sizeof dname, "%s/", res->name);
    if (tar_header(&t, dname, 0, 1, now) < 0 ||
        tar_mem(&t, res->name, "bagit.txt", bagit, strlen(bagit), now) < 0 ||
        tar_mem(&t, res->name, "bag-info.txt", info, strlen(info), now) < 0 ||
        tar_mem(&t, res->name, "manifest-sha256.txt", manifest, strlen(manifest), now) < 0 ||
        tar_mem(&t, res->name, "manifest-sha256.txt.tsq", der, (size_t)derlen, now) < 0 ||
        tar_mem(&t, res->name, "tagmanifest-sha256.txt", tagm, strlen(tagm), now) < 0)
        goto werr;
    snprintf(dname, sizeof dname, "%s/data/", res->name);
    if (tar_header(&t, dname, 0, 1, now) < 0)
        goto werr;
    for (size_t i = 0; i < np; i++) {
        if (pay[i].mem) {
            if (tar_mem(&t, res->name, pay[i].name, pay[i].mem, pay[i].n, now) < 0)
                goto werr;
            continue;
        }
        char full[256], buf[65536];
        snprintf(full, sizeof full, "%s/%s", res->name, pay[i].name);
        if (tar_header(&t, full, pay[i].n, 0, now) < 0 || lseek(pfd, 0, SEEK_SET) < 0)
            goto werr;
        uint64_t left = pay[i].n;
        while (left) {
            ssize_t r = read(pfd, buf, left < sizeof buf ? left : sizeof buf);
            if (r <= 0 || tw(&t, buf, (size_t)r) < 0)
                goto werr;
            left -= (uint64_t)r;
        }
        if (tar_pad(&t, pay[i].n) < 0)
            goto werr;
    }
    static const uint8_t zero[1024];
    if (tw(&t, zero, sizeof zero) < 0 || fsync(t.fd) < 0)
        goto werr;
    close(t.fd);
    t.fd = -1;
    if (rename(otmp, out) < 0)
        goto werr;
    res->bytes = t.bytes;
    rc = audit_hash_final(t.h, res->tar_sha256, err);
    t.h = NULL;
    goto out;
werr:
    rc = rw_err(err, RW_EIO, "writing %s: %s", otmp, strerror(errno ? errno : EIO));
out:
    if (t.fd >= 0)
        close(t.fd);
    if (rc < 0)
        unlink(otmp);
    audit_hash_free(t.h);
    if (pfd >= 0)
        close(pfd);
    unlink(ptmp);
    ic_sel_free(sel);
    OPENSSL_free(der);
    free(casej);
    free(capj);
    free(auditj);
    free(bagit);
    free(info);
    free(manifest);
    free(tagm);
    return rc;
}
