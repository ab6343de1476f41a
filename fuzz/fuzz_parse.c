/* fuzz_parse.c -- libFuzzer target for index/parse.c: any bytes, any supported link type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index/parse.h"

/* Every supported DLT, plus one unsupported to cover that path. */
static const int linktypes[] = {1, 113, 276, 12, 101, 228, 229, 0, 108, 147};

/* Crash on a broken invariant: libFuzzer reports it with the input. */
static void require(int ok)
{
    if (!ok)
        abort();
}

static void check_invariants(const struct idx_parsed *p)
{
    require(p->nterms >= 0 && p->nterms <= IDX_MAX_TERMS);
    require((p->flags & ~(IDX_F_UNPARSED | IDX_F_DEEP)) == 0);
    for (int i = 0; i < p->nterms; i++) {
        const struct idx_term *t = &p->terms[i];
        require(t->kind > 0 && t->kind < IDX_T_MAX);
        require(t->len == idx_term_len(t->kind));
    }
    if (p->flow.present)
        require(p->flow.family == 4 || p->flow.family == 6);
}

/* The hash must not depend on the direction of the flow. */
static void check_flow_symmetry(const struct idx_flow *f)
{
    struct idx_flow r = *f;
    memcpy(r.src, f->dst, sizeof r.src);
    memcpy(r.dst, f->src, sizeof r.dst);
    r.sport = f->dport;
    r.dport = f->sport;
    require(idx_flow_hash(f) == idx_flow_hash(&r));
}

/* A plain packet with a flow carries exactly the terms its flow implies
 * (parse.h), which index/segw.c relies on to reuse a flow's term ids: the
 * L3 type, both addresses, the protocol, both ports when has_ports, and
 * the flow hash, each once. */
static int has_term(const struct idx_parsed *p, int kind, const uint8_t *v)
{
    for (int i = 0; i < p->nterms; i++)
        if (p->terms[i].kind == kind && !memcmp(p->terms[i].val, v, p->terms[i].len))
            return 1;
    return 0;
}

static void check_plain_terms(const struct idx_parsed *p)
{
    const struct idx_flow *f = &p->flow;
    if (!f->present || (p->flags & (IDX_F_UNPARSED | IDX_F_DEEP)))
        return;
    int v4 = f->family == 4;
    uint8_t l3[2] = {v4 ? 0x08 : 0x86, v4 ? 0x00 : 0xdd}, sp[2], dp[2], h[8];
    uint64_t fh = idx_flow_hash(f);
    for (int i = 0; i < 8; i++)
        h[i] = (uint8_t)(fh >> (56 - 8 * i));
    sp[0] = (uint8_t)(f->sport >> 8), sp[1] = (uint8_t)f->sport;
    dp[0] = (uint8_t)(f->dport >> 8), dp[1] = (uint8_t)f->dport;
    int want = 3 + (memcmp(f->src, f->dst, 16) != 0) + 1;
    require(has_term(p, IDX_T_L3, l3) && has_term(p, v4 ? IDX_T_IP4 : IDX_T_IP6, f->src) &&
            has_term(p, v4 ? IDX_T_IP4 : IDX_T_IP6, f->dst) &&
            has_term(p, v4 ? IDX_T_PROTO4 : IDX_T_PROTO6, &f->proto) &&
            has_term(p, IDX_T_FLOW, h));
    if (f->has_ports) {
        require(has_term(p, IDX_T_PORT, sp) && has_term(p, IDX_T_PORT, dp));
        want += 1 + (f->sport != f->dport);
    }
    require(p->nterms == want);
    /* and they are what a writer derives from the flow's key */
    struct idx_term t[IDX_FLOW_TERMS];
    int n = idx_flowkey_terms(&p->key, f->has_ports, t);
    require(n == want - 1);
    for (int i = 0; i < n; i++)
        require(t[i].len == idx_term_len(t[i].kind) && has_term(p, t[i].kind, t[i].val));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct idx_parsed out;

    if (size < 1)
        return 0;
    int dlt = linktypes[data[0] % (sizeof linktypes / sizeof linktypes[0])];
    /* libFuzzer hands over an exact-size heap copy, so ASan sees any read
     * past caplen. */
    idx_parse_packet(dlt, data + 1, (uint32_t)(size - 1), &out);
    check_invariants(&out);
    if (out.flow.present && out.flow.has_ports)
        check_flow_symmetry(&out.flow);
    check_plain_terms(&out);
    /* Without the hash (a writer's parse) the same terms and flow, byte
     * for byte, but the flow term; whose value is the hash of the flow's
     * key. */
    static struct idx_parsed nohash;
    idx_parse_packet_nohash(dlt, data + 1, (uint32_t)(size - 1), &nohash);
    int fl = out.flow.present;
    require(!fl || (out.nterms > 0 && out.terms[out.nterms - 1].kind == IDX_T_FLOW));
    require(nohash.flags == out.flags && nohash.nterms == out.nterms - fl &&
            nohash.hdr_end == out.hdr_end &&
            memcmp(&nohash.flow, &out.flow, sizeof out.flow) == 0);
    for (int i = 0; i < nohash.nterms; i++) /* a value's bytes past its length are not its own */
        require(nohash.terms[i].kind == out.terms[i].kind &&
                nohash.terms[i].len == out.terms[i].len &&
                memcmp(nohash.terms[i].val, out.terms[i].val, out.terms[i].len) == 0);
    if (fl) {
        struct idx_flowkey k;
        int swap = idx_flow_key(&out.flow, &k);
        require(memcmp(&k, &out.key, sizeof k) == 0 && memcmp(&k, &nohash.key, sizeof k) == 0);
        require(swap == out.key_swap && swap == nohash.key_swap);
        uint64_t h = idx_flowkey_hash(&k), t = 0;
        for (int i = 0; i < 8; i++)
            t = t << 8 | out.terms[out.nterms - 1].val[i];
        require(h == t);
    }
    return 0;
}
