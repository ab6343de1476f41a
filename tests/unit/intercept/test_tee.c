/* test_tee.c -- unit tests for live intercept's tee (intercept/live.c): the
 * packets each active case spools are exactly those a plain comparison of
 * the packet's addresses and MACs with the case's targets selects, for
 * IPv4 and IPv6 addresses, prefixes of several lengths (more of them than
 * the capture path's filter keeps apart), one address shared by more cases
 * than a table slot holds, and MACs; and a case made or ended between
 * packets is taken at the next packet (each capturing thread keeps its own
 * copy of the cases' addresses and must see the change). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <pcap/dlt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/rw.h"
#include "index/index.h"
#include "index/parse.h"
#include "intercept/intercept.h"

struct target {
    int kind; /* 4, 6: address or prefix; 'm': MAC */
    uint8_t addr[16];
    int plen;
    uint8_t mac[6];
};

#define MAXT 8
struct tcase {
    char id[32];
    struct target t[MAXT];
    int nt;
    int ended;
    uint64_t want;
};

static const struct ic_who who = {"test", "admin", "test", "127.0.0.1", "test"};

static void target(struct tcase *c, const char *s)
{
    struct target *t = &c->t[c->nt++];
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    if (strlen(buf) == 17 && buf[2] == ':' && !strchr(buf, '.')) {
        unsigned m[6];
        assert_int_equal(sscanf(buf, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4],
                                &m[5]), 6);
        t->kind = 'm';
        for (int i = 0; i < 6; i++)
            t->mac[i] = (uint8_t)m[i];
        return;
    }
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = 0;
    t->kind = strchr(buf, ':') ? 6 : 4;
    assert_int_equal(inet_pton(t->kind == 4 ? AF_INET : AF_INET6, buf, t->addr), 1);
    t->plen = slash ? atoi(slash + 1) : t->kind == 4 ? 32 : 128;
}

static void make_case(ic_t *ic, struct tcase *c)
{
    char json[2048], err[RW_ERRSZ];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"id\": \"%s\", \"authority\": \"a\", "
                                "\"warrant\": \"w\", \"from\": \"-1h\", \"to\": \"+1h\", "
                                "\"targets\": [", c->id);
    for (int i = 0; i < c->nt; i++) {
        const struct target *t = &c->t[i];
        char a[64];
        if (t->kind == 'm')
            n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"mac\": \"%02x:%02x:%02x:%02x:"
                                  "%02x:%02x\"}", i ? ", " : "", t->mac[0], t->mac[1], t->mac[2],
                                  t->mac[3], t->mac[4], t->mac[5]);
        else {
            inet_ntop(t->kind == 4 ? AF_INET : AF_INET6, t->addr, a, sizeof a);
            if (t->plen == (t->kind == 4 ? 32 : 128))
                n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"ip\": \"%s\"}",
                                      i ? ", " : "", a);
            else
                n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"prefix\": \"%s/%d\"}",
                                      i ? ", " : "", a, t->plen);
        }
    }
    n += (size_t)snprintf(json + n, sizeof json - n, "]}");
    if (ic_create(ic, json, n, &who, NULL, err) != 0)
        fail_msg("case %s: %s (%s)", c->id, err, json);
}

static int in_target(const struct target *t, int family, const uint8_t *a)
{
    if (t->kind != family)
        return 0;
    for (int b = 0; b < t->plen; b++)
        if ((a[b / 8] ^ t->addr[b / 8]) & (0x80 >> (b % 8)))
            return 0;
    return 1;
}

/* The frame: Ethernet, IPv4 or IPv6, UDP with a byte of payload. */
static size_t frame(uint8_t *p, const uint8_t smac[6], const uint8_t dmac[6], int family,
                    const uint8_t *src, const uint8_t *dst)
{
    static const uint8_t ip4[] = {0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0};
    static const uint8_t ip6[] = {0x60, 0, 0, 0, 0, 9, 17, 64};
    static const uint8_t udp[] = {0x30, 0x39, 0x00, 0x35, 0, 9, 0, 0, 'x'};
    size_t al = family == 4 ? 4 : 16, n = 14;
    memcpy(p, dmac, 6);
    memcpy(p + 6, smac, 6);
    p[12] = family == 4 ? 0x08 : 0x86;
    p[13] = family == 4 ? 0x00 : 0xdd;
    memcpy(p + n, family == 4 ? ip4 : ip6, family == 4 ? sizeof ip4 : sizeof ip6);
    n += family == 4 ? sizeof ip4 : sizeof ip6;
    memcpy(p + n, src, al);
    memcpy(p + n + al, dst, al);
    n += 2 * al;
    memcpy(p + n, udp, sizeof udp);
    return n + sizeof udp;
}

/* An address near one of the targets (inside it, or just beside a
 * prefix's edge) or anywhere, of the target's family. */
static void pick_addr(struct tcase *cs, int ncs, unsigned *seed, int family, uint8_t *a)
{
    int r = rand_r(seed) % 4;
    memset(a, 0, 16);
    for (int i = 0; i < (family == 4 ? 4 : 16); i++)
        a[i] = (uint8_t)rand_r(seed);
    if (r == 0)
        return;
    for (int tries = 0; tries < 20; tries++) {
        const struct tcase *c = &cs[rand_r(seed) % ncs];
        const struct target *t = &c->t[rand_r(seed) % c->nt];
        if (t->kind != family)
            continue;
        for (int b = 0; b < t->plen; b++) {
            uint8_t bit = (uint8_t)(0x80 >> (b % 8));
            a[b / 8] = (uint8_t)((a[b / 8] & ~bit) | (t->addr[b / 8] & bit));
        }
        if (r == 3 && t->plen > 0) /* its last bit flipped: just beside it */
            a[(t->plen - 1) / 8] ^= (uint8_t)(0x80 >> ((t->plen - 1) % 8));
        return;
    }
}

static void feed(ic_t *ic, struct tcase *cs, int ncs, unsigned *seed, int n)
{
    static const uint8_t plain[6] = {0x02, 0, 0, 0, 0, 1};
    uint8_t buf[128], src[16], dst[16];
    for (int k = 0; k < n; k++) {
        int family = rand_r(seed) % 3 ? 4 : 6;
        pick_addr(cs, ncs, seed, family, src);
        pick_addr(cs, ncs, seed, family, dst);
        const uint8_t *smac = plain, *dmac = plain;
        if (rand_r(seed) % 8 == 0) { /* a target's MAC, either side */
            for (int i = 0; i < ncs; i++)
                for (int j = 0; j < cs[i].nt; j++)
                    if (cs[i].t[j].kind == 'm') {
                        if (rand_r(seed) % 2)
                            smac = cs[i].t[j].mac;
                        else
                            dmac = cs[i].t[j].mac;
                    }
        }
        size_t len = frame(buf, smac, dmac, family, src, dst);
        struct idx_parsed parsed;
        idx_parse_packet(DLT_EN10MB, buf, (uint32_t)len, &parsed);
        assert_true(parsed.flow.present);
        struct arc_tap t = {"p", DLT_EN10MB, 65535, rw_now_ns(), buf, (uint32_t)len,
                            (uint32_t)len, &parsed};
        ic_tap(ic, &t);
        for (int i = 0; i < ncs; i++) {
            int hit = 0;
            for (int j = 0; j < cs[i].nt; j++) {
                const struct target *tg = &cs[i].t[j];
                if (tg->kind == 'm')
                    hit |= !memcmp(smac, tg->mac, 6) || !memcmp(dmac, tg->mac, 6);
                else
                    hit |= in_target(tg, family, src) || in_target(tg, family, dst);
            }
            cs[i].want += hit && !cs[i].ended;
        }
    }
}

static void check(ic_t *ic, struct tcase *cs, int ncs, const char *when)
{
    struct ic_live_stat st[64];
    size_t n = ic_live_stats(ic, st, 64);
    for (int i = 0; i < ncs; i++) {
        size_t k = 0;
        while (k < n && strcmp(st[k].id, cs[i].id))
            k++;
        if (k == n) {
            if (cs[i].want)
                fail_msg("%s: case %s has no spool, want %llu packets", when, cs[i].id,
                         (unsigned long long)cs[i].want);
            continue;
        }
        if (st[k].teed != cs[i].want || st[k].dropped)
            fail_msg("%s: case %s spooled %llu packets (dropped %llu), want %llu", when, cs[i].id,
                     (unsigned long long)st[k].teed, (unsigned long long)st[k].dropped,
                     (unsigned long long)cs[i].want);
    }
}

static void test_tee(void **state)
{
    (void)state;
    char dir[] = "/tmp/rw-tee-XXXXXX", err[RW_ERRSZ], cmd[64];
    idx_t *ix;
    ic_t *ic;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(idx_open(dir, IDX_WRITE, &ix, err), 0);
    assert_int_equal(ic_open(dir, ix, NULL, &ic, err), 0);
    struct ic_live_opts o = {0};
    assert_int_equal(ic_live_start(ic, &o, err), 0);

    static struct tcase cs[40];
    int ncs = 0;
    struct tcase *c;
    c = &cs[ncs++], strcpy(c->id, "V4"), target(c, "192.0.2.7");
    c = &cs[ncs++], strcpy(c->id, "P24"), target(c, "198.51.100.0/24");
    c = &cs[ncs++], strcpy(c->id, "P6"), target(c, "2001:db8:7::/48");
    c = &cs[ncs++], strcpy(c->id, "V6"), target(c, "2001:db8::9");
    c = &cs[ncs++], strcpy(c->id, "ODD"), target(c, "10.128.0.0/9"), target(c, "10.1.2.0/23"),
    target(c, "2001:db8:ff00::/41"), target(c, "192.0.2.64/26");
    /* nine cases on one address: more than a table slot holds (the ninth is
     * kept as a prefix of 32 bits: seven prefix lengths in all so far, as
     * many as the filter keeps apart) */
    for (int i = 0; i < 9; i++)
        c = &cs[ncs++], snprintf(c->id, sizeof c->id, "SH%d", i), target(c, "203.0.113.5");
    for (int i = 0; i < ncs; i++)
        make_case(ic, &cs[i]);
    unsigned seed = 7;
    feed(ic, cs, ncs, &seed, 20000);
    check(ic, cs, ncs, "first cases");

    /* more prefix lengths than the filter keeps apart: every packet is
     * compared with the lists */
    c = &cs[ncs++], strcpy(c->id, "MANY"), target(c, "172.16.0.0/12"), target(c, "172.24.0.0/13"),
    target(c, "172.20.0.0/14"), target(c, "172.18.0.0/15"), target(c, "172.17.0.0/16"),
    target(c, "172.16.128.0/17"), target(c, "172.16.64.0/18");
    make_case(ic, c);
    feed(ic, cs, ncs, &seed, 20000);
    check(ic, cs, ncs, "a case with seven prefix lengths");

    /* a case ended, and one made, between two packets */
    int found;
    assert_int_equal(ic_end(ic, "V4", &who, NULL, &found, err), 0);
    assert_int_equal(found, 1);
    cs[0].ended = 1;
    c = &cs[ncs++], strcpy(c->id, "LATE"), target(c, "198.51.100.128/25");
    make_case(ic, c);
    /* with a MAC target, every frame's MACs are compared */
    c = &cs[ncs++], strcpy(c->id, "MAC"), target(c, "00:11:22:33:44:55");
    make_case(ic, c);
    feed(ic, cs, ncs, &seed, 20000);
    check(ic, cs, ncs, "after V4 ended and LATE and MAC were made");
    for (int i = 0; i < ncs; i++)
        if (!cs[i].want)
            fail_msg("case %s took no packet: the test does not exercise it", cs[i].id);

    ic_live_stop(ic);
    ic_close(ic);
    idx_close(ix);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tee)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
