/* fuzz_sip.c -- libFuzzer target for analytics/sip.c: any bytes as a SIP
 * datagram, as a TCP stream's start, as an SDP body, and as RTP packets
 * into a stream's figures. Invariants: a parsed message lies within the
 * input, its body within it too, strings stay terminated, SDP media stay
 * within their caps, jitter stays a finite number. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/sip.h"

static void require(int ok)
{
    if (!ok)
        abort();
}

static void check_msg(const uint8_t *data, size_t size, int rc, const struct sip_msg *m)
{
    if (rc <= 0)
        return;
    require((size_t)rc == m->len && m->len <= size);
    require(m->body >= data && m->body + m->body_len <= data + size);
    require(memchr(m->call_id, 0, sizeof m->call_id) && m->call_id[0]);
    require(memchr(m->from, 0, sizeof m->from) && memchr(m->method, 0, sizeof m->method));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sip_msg m;
    int rc = sip_parse(data, size, 0, &m);
    check_msg(data, size, rc, &m);
    if (rc > 0 && m.sdp) {
        struct sdp_info sd;
        if (sdp_parse(m.body, m.body_len, &sd) == 0)
            require(sd.nm > 0 && sd.nm <= SDP_MAX_MEDIA);
    }
    rc = sip_parse(data, size, 1, &m);
    check_msg(data, size, rc, &m);
    struct sdp_info sd;
    if (sdp_parse(data, size, &sd) == 0) {
        require(sd.nm > 0 && sd.nm <= SDP_MAX_MEDIA);
        for (int i = 0; i < sd.nm; i++)
            require(sd.m[i].nmap >= 0 && sd.m[i].nmap <= SDP_MAX_MAP);
    }
    /* the input as a run of 16-byte RTP packets, 20 ms apart */
    struct rtp_stats st;
    memset(&st, 0, sizeof st);
    for (size_t i = 0; i + 16 <= size; i += 16) {
        struct rtp_hdr h;
        if (rtp_header(data + i, 16, &h))
            rtp_stats_add(&st, &h, (int64_t)i * 1250000 + data[i + 15] * 100000,
                          rtp_clock_rate(h.pt) ? rtp_clock_rate(h.pt) : 8000);
    }
    require(isfinite(st.jitter) && isfinite(st.max_jitter) && st.max_jitter >= 0);
    (void)rtp_stats_lost(&st);
    return 0;
}
