/* fuzz_reasm.c -- libFuzzer target for analytics/reasm.c, and for the
 * sessions' packet decoder (the same input as a packet of each link type:
 * what it finds lies within the packet). For the reassembler the input is a
 * script of segments (sequence number, flags, length, bytes) for one
 * direction, in any order, with a small buffer and pool so the bounds bite.
 * Invariants: every byte handed on is one the script sent at that offset
 * (checked against a shadow of first copies), delivered + missing equals
 * the direction's length when it ends, memory returns to the pool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/reasm.h"
#include "analytics/ses_int.h"

static const int dlts[] = {1, 113, 276, 12, 101, 228, 229, 0, 108, 147};

static void decode_all(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof dlts / sizeof dlts[0]; i++) {
        struct qry_pkt raw = {0, 0, 0, (uint32_t)size, (uint32_t)size, data};
        struct ses_pkt p;
        if (ses_decode(dlts[i], &raw, &p)) {
            if (!(p.fam == 4 || p.fam == 6) || !(p.proto == 6 || p.proto == 17))
                abort();
            if (p.pl < data || p.pl + p.pln > data + size)
                abort();
        }
    }
}

static void require(int ok)
{
    if (!ok)
        abort();
}

struct state {
    uint64_t at;       /* offset of the next byte handed on */
    uint8_t shadow[4096];
    uint8_t known[4096];
    int ends;
};

static int on_data(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    struct state *s = arg;
    (void)ts;
    for (size_t i = 0; i < n; i++, s->at++)
        if (s->at < sizeof s->shadow)
            require(s->known[s->at] && s->shadow[s->at] == p[i]);
    return 0;
}

static int on_gap(void *arg, uint64_t len, int64_t ts)
{
    struct state *s = arg;
    (void)ts;
    require(len > 0);
    s->at += len;
    return 0;
}

static void on_end(void *arg, int rst, int64_t ts)
{
    (void)rst, (void)ts;
    ((struct state *)arg)->ends++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct state s;
    decode_all(data, size);
    memset(&s, 0, sizeof s);
    struct rsm_pool pool = {0, 512};
    struct rsm_sink sink = {on_data, on_gap, on_end, &s};
    rsm_dir_t *d = rsm_dir_new(&sink, &pool, 256);
    require(d != NULL);
    uint32_t isn = 0xfffffff0u; /* wraps within the script */
    rsm_segment(d, isn, RSM_SYN, NULL, 0, 0);
    size_t i = 0;
    while (i + 4 <= size) {
        uint16_t off = (uint16_t)((data[i] << 8 | data[i + 1]) % 3000);
        int flags = data[i + 2] & (RSM_FIN | RSM_RST);
        size_t n = data[i + 3] % 200;
        i += 4;
        if (n > size - i)
            n = size - i;
        /* the first copy of each byte is what must come out */
        for (size_t k = 0; k < n && off + k < sizeof s.shadow; k++)
            if (!s.known[off + k]) {
                s.known[off + k] = 1;
                s.shadow[off + k] = data[i + k];
            }
        rsm_segment(d, isn + 1 + off, flags, data + i, n, 0);
        i += n;
        require(pool.used <= pool.max + 200);
    }
    rsm_end(d, 0);
    require(s.ends == 1);
    struct rsm_stats st;
    rsm_stats(d, &st);
    require(st.delivered + st.missing == s.at);
    rsm_dir_free(d);
    require(pool.used == 0);
    return 0;
}
