/* reasm_follow.c -- every TCP stream of a capture file reassembled by
 * analytics/reasm.h, printed for comparison with `tshark -z follow,tcp,raw`:
 * streams numbered as tshark numbers them (by first packet; a SYN on a
 * finished connection starts a new one), each direction as lines
 *   D <stream> <dir> <hex>     bytes handed on
 *   G <stream> <dir> <length>  a gap
 * in the order they were handed on; dir 0 is the first packet's sender. */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/ses_int.h"

struct conn {
    int idx;
    struct ses_ep first; /* the sender of the stream's first packet */
    rsm_dir_t *d[2];
    int ended[2];
    struct sink {
        int idx, dir;
        struct conn *c;
    } s[2];
};

static int on_data(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    struct sink *s = arg;
    (void)ts;
    printf("D %d %d ", s->idx, s->dir);
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
    return 0;
}

static int on_gap(void *arg, uint64_t len, int64_t ts)
{
    struct sink *s = arg;
    (void)ts;
    printf("G %d %d %llu\n", s->idx, s->dir, (unsigned long long)len);
    return 0;
}

static void on_end(void *arg, int rst, int64_t ts)
{
    struct sink *s = arg;
    (void)rst, (void)ts;
    s->c->ended[s->dir] = 1;
}

static struct conn **all;
static size_t nall;

static void conn_end(void *arg, void *v)
{
    (void)arg;
    struct conn *c = v;
    all = realloc(all, (nall + 1) * sizeof *all);
    all[nall++] = c;
}

static int by_idx(const void *a, const void *b)
{
    return (*(struct conn *const *)a)->idx - (*(struct conn *const *)b)->idx;
}

int main(int argc, char **argv)
{
    char eb[PCAP_ERRBUF_SIZE];
    if (argc != 2) {
        fprintf(stderr, "usage: reasm_follow FILE\n");
        return 2;
    }
    pcap_t *p = pcap_open_offline(argv[1], eb);
    if (!p) {
        fprintf(stderr, "reasm_follow: %s\n", eb);
        return 2;
    }
    int dlt = pcap_datalink(p), next = 0;
    struct rsm_pool pool = {0, 64 << 20};
    ses_map_t *m = ses_map_new();
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        struct qry_pkt qp = {0, (uint32_t)h->ts.tv_sec, (uint32_t)h->ts.tv_usec * 1000, h->caplen,
                             h->len, data};
        struct ses_pkt sp;
        if (!ses_decode(dlt, &qp, &sp) || sp.proto != 6)
            continue;
        struct ses_key k;
        ses_key_of(&sp, &k, NULL);
        struct conn *c = ses_map_get(m, &k);
        if (c && c->ended[0] && c->ended[1] && (sp.flags & 0x12) == 0x02) {
            ses_map_del(m, &k); /* the tuple used again: a new stream */
            conn_end(NULL, c);
            c = NULL;
        }
        if (!c) {
            c = calloc(1, sizeof *c);
            c->idx = next++;
            c->first.fam = sp.fam;
            memcpy(c->first.addr, sp.src, 16);
            c->first.port = sp.sport;
            for (int d = 0; d < 2; d++) {
                c->s[d] = (struct sink){c->idx, d, c};
                struct rsm_sink s = {on_data, on_gap, on_end, &c->s[d]};
                c->d[d] = rsm_dir_new(&s, &pool, 8 << 20);
            }
            ses_map_put(m, &k, c);
        }
        int dir = !(c->first.port == sp.sport && !memcmp(c->first.addr, sp.src, 16));
        rsm_segment(c->d[dir], sp.seq, sp.flags & (RSM_SYN | RSM_FIN | RSM_RST), sp.pl, sp.pln,
                    sp.ts);
    }
    ses_map_each(m, conn_end, NULL);
    qsort(all, nall, sizeof *all, by_idx);
    for (size_t i = 0; i < nall; i++) {
        rsm_end(all[i]->d[0], 0);
        rsm_end(all[i]->d[1], 0);
        rsm_dir_free(all[i]->d[0]);
        rsm_dir_free(all[i]->d[1]);
        free(all[i]);
    }
    free(all);
    ses_map_free(m, NULL);
    pcap_close(p);
    return 0;
}
