/* select.c -- which packets a case takes over a window: its address,
 * prefix and MAC targets at any time, and each address a user target held
 * only over the interval it held it (intercept.h, ic_sel_*). The archive
 * query uses the union of every address as its filter (the index narrows,
 * libpcap judges), and each packet it returns is then judged again against
 * the programs of the intervals its timestamp falls in. */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "index/index.h"

struct prog {
    int dlt;
    int state; /* 0 not compiled, 1 compiled, -1 refused for this link type */
    struct bpf_program bpf;
};

struct ic_sel {
    char *stat;           /* "(targets) and (filter)", NULL without such targets */
    char *all;            /* the union, with the filter; NULL: nothing can match */
    struct idx_ident *iv; /* intervals of user targets, clipped to the window */
    size_t niv;
    char **ivbpf;         /* per interval: "(host A [and portrange]) and (filter)" */
    struct prog *progs;   /* (1 + niv) per link type met */
    size_t nprogs, cap;
};

/* "host A", "net P/L", with the port block of a NAT'ed address. */
static void ident_term(const struct idx_ident *r, char *out, size_t n)
{
    char a[INET6_ADDRSTRLEN], base[INET6_ADDRSTRLEN + 16];
    inet_ntop(r->family == 4 ? AF_INET : AF_INET6, r->addr, a, sizeof a);
    if (r->plen == (r->family == 4 ? 32 : 128))
        snprintf(base, sizeof base, "host %s", a);
    else
        snprintf(base, sizeof base, "net %s/%u", a, r->plen);
    if (r->port_lo || r->port_hi)
        snprintf(out, n, "(%s and portrange %u-%u)", base, r->port_lo, r->port_hi);
    else
        snprintf(out, n, "%s", base);
}

static char *with_filter(const char *terms, const char *filter)
{
    size_t n = strlen(terms) + strlen(filter) + 16;
    char *s = malloc(n);
    if (s && filter[0])
        snprintf(s, n, "(%s) and (%s)", terms, filter);
    else if (s)
        snprintf(s, n, "%s", terms);
    return s;
}

void ic_sel_free(ic_sel_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nprogs; i++)
        if (s->progs[i].state == 1)
            pcap_freecode(&s->progs[i].bpf);
    for (size_t i = 0; s->ivbpf && i < s->niv; i++)
        free(s->ivbpf[i]);
    free(s->ivbpf);
    free(s->progs);
    free(s->iv);
    free(s->stat);
    free(s->all);
    free(s);
}

int ic_sel_new(idx_t *ix, const struct ic_case *c, int64_t from, int64_t to, ic_sel_t **out,
               char *err)
{
    char targets[IC_MAX_TARGETS * 64], term[160];
    struct ic_sel *s = calloc(1, sizeof *s);
    int rc = 0;
    *out = NULL;
    if (!s)
        return rw_err(err, RW_ENOMEM, "out of memory");
    int nt = ic_targets_bpf(c, targets, sizeof targets);
    if (nt < 0) {
        rc = rw_err(err, RW_EINPUT, "case %s: its targets are too long", c->id);
        goto fail;
    }
    if (nt > 0 && !(s->stat = with_filter(targets, c->filter)))
        goto nomem;
    for (size_t i = 0; i < c->ntargets; i++) {
        struct idx_ident *v = NULL;
        size_t n = 0;
        if (c->targets[i].kind != IC_TARGET_USER)
            continue;
        if ((rc = ic_ident_resolve(ix, c->targets[i].user, from, to, &v, &n, err)) < 0)
            goto fail;
        struct idx_ident *nv = n ? realloc(s->iv, (s->niv + n) * sizeof *nv) : s->iv;
        if (n && !nv) {
            free(v);
            goto nomem;
        }
        s->iv = nv;
        for (size_t k = 0; k < n; k++) {
            v[k].start = v[k].start < from ? from : v[k].start;
            v[k].end = v[k].end > to ? to : v[k].end;
            s->iv[s->niv++] = v[k];
        }
        free(v);
    }
    if (s->niv && !(s->ivbpf = calloc(s->niv, sizeof *s->ivbpf)))
        goto nomem;
    /* The union: the targets, then each interval's address once. */
    size_t cap = strlen(targets) + 1 + s->niv * sizeof term, len = 0;
    char *u = malloc(cap);
    if (!u)
        goto nomem;
    len = (size_t)snprintf(u, cap, "%s", targets);
    for (size_t i = 0; i < s->niv; i++) {
        ident_term(&s->iv[i], term, sizeof term);
        if (!(s->ivbpf[i] = with_filter(term, c->filter))) {
            free(u);
            goto nomem;
        }
        if (!strstr(u, term)) /* the same address in several intervals: once */
            len += (size_t)snprintf(u + len, cap - len, "%s%s", len ? " or " : "", term);
    }
    if (len)
        s->all = with_filter(u, c->filter);
    free(u);
    if (len && !s->all)
        goto nomem;
    *out = s;
    return 0;
nomem:
    rc = rw_err(err, RW_ENOMEM, "out of memory");
fail:
    ic_sel_free(s);
    return rc;
}

const char *ic_sel_filter(const ic_sel_t *s) { return s->all; }

const struct idx_ident *ic_sel_intervals(const ic_sel_t *s, size_t *n)
{
    *n = s->niv;
    return s->iv;
}

/* The programs for link type dlt: 1 + niv of them (the static one first). */
static struct prog *progs_for(struct ic_sel *s, int dlt)
{
    size_t per = 1 + s->niv;
    for (size_t i = 0; i < s->nprogs; i += per)
        if (s->progs[i].dlt == dlt)
            return &s->progs[i];
    if (s->nprogs + per > s->cap) {
        size_t nc = (s->cap ? s->cap * 2 : per * 2);
        while (nc < s->nprogs + per)
            nc *= 2;
        struct prog *np = realloc(s->progs, nc * sizeof *np);
        if (!np)
            return NULL;
        s->progs = np;
        s->cap = nc;
    }
    struct prog *p = &s->progs[s->nprogs];
    memset(p, 0, per * sizeof *p);
    for (size_t i = 0; i < per; i++)
        p[i].dlt = dlt;
    s->nprogs += per;
    return p;
}

static int run(struct prog *p, const char *expr, uint32_t snaplen, const struct pcap_pkthdr *h,
               const uint8_t *data)
{
    if (!expr)
        return 0;
    if (p->state == 0) {
        pcap_t *pc = pcap_open_dead(p->dlt, (int)(snaplen ? snaplen : 262144));
        p->state = pc && pcap_compile(pc, &p->bpf, expr, 1, PCAP_NETMASK_UNKNOWN) == 0 ? 1 : -1;
        if (pc)
            pcap_close(pc);
    }
    return p->state == 1 && pcap_offline_filter(&p->bpf, h, data) != 0;
}

int ic_sel_match(ic_sel_t *s, int dlt, uint32_t snaplen, int64_t ts, const uint8_t *data,
                 uint32_t caplen, uint32_t len)
{
    struct pcap_pkthdr h = {.caplen = caplen, .len = len};
    h.ts.tv_sec = ts / RW_NS_PER_SEC;
    h.ts.tv_usec = ts % RW_NS_PER_SEC / 1000;
    struct prog *p = progs_for(s, dlt);
    if (!p)
        return -1;
    if (run(&p[0], s->stat, snaplen, &h, data))
        return 1;
    for (size_t i = 0; i < s->niv; i++)
        if (s->iv[i].start <= ts && ts < s->iv[i].end &&
            run(&p[1 + i], s->ivbpf[i], snaplen, &h, data))
            return 1;
    return 0;
}
