/* test_sip.c -- unit tests for analytics/sip.c: SIP start lines and headers
 * (compact forms, TCP framing by Content-Length), SDP media, RTP figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "analytics/sip.h"

static const char invite[] =
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060\r\n"
    "f: \"Alice\" <sip:alice@example.com>;tag=1\r\n"
    "t: sip:bob@example.com\r\n"
    "i: abc@10.0.0.1\r\n"
    "CSeq: 7 INVITE\r\n"
    "c: application/sdp\r\n"
    "l: 112\r\n"
    "\r\n"
    "v=0\r\n"
    "o=- 1 1 IN IP4 10.0.0.1\r\n"
    "c=IN IP4 10.0.0.1\r\n"
    "m=audio 4000 RTP/AVP 0 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n";

static void test_sip_request(void **state)
{
    (void)state;
    struct sip_msg m;
    size_t n = strlen(invite);
    assert_int_equal(sip_looks((const uint8_t *)invite, n), 1);
    int rc = sip_parse((const uint8_t *)invite, n, 0, &m);
    assert_int_equal(rc, (int)n);
    assert_int_equal(m.request, 1);
    assert_string_equal(m.method, "INVITE");
    assert_string_equal(m.call_id, "abc@10.0.0.1");
    assert_string_equal(m.from, "sip:alice@example.com");
    assert_string_equal(m.to, "sip:bob@example.com");
    assert_int_equal(m.cseq, 7);
    assert_int_equal(m.sdp, 1);
    assert_int_equal(m.body_len, 112);
    struct sdp_info sd;
    assert_int_equal(sdp_parse(m.body, m.body_len, &sd), 0);
    assert_int_equal(sd.nm, 1);
    assert_int_equal(sd.m[0].port, 4000);
    assert_int_equal(sd.m[0].rtcp_port, 4001);
    assert_int_equal(sd.m[0].fam, 4);
    assert_memory_equal(sd.m[0].addr, "\x0a\x00\x00\x01", 4);
    assert_int_equal(sd.m[0].nmap, 1);
    assert_string_equal(sd.m[0].map[0].name, "telephone-event");
}

/* Over TCP a message ends after Content-Length bytes of body; two messages
 * back to back, and one cut short, need more. */
static void test_sip_stream(void **state)
{
    (void)state;
    char two[4096];
    struct sip_msg m;
    const char *ok = "SIP/2.0 180 Ringing\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    snprintf(two, sizeof two, "%s%s", invite, ok);
    int rc = sip_parse((const uint8_t *)two, strlen(two), 1, &m);
    assert_int_equal(rc, (int)strlen(invite));
    rc = sip_parse((const uint8_t *)two + rc, strlen(ok), 1, &m);
    assert_int_equal(rc, (int)strlen(ok));
    assert_int_equal(m.request, 0);
    assert_int_equal(m.status, 180);
    assert_string_equal(m.method, "INVITE"); /* CSeq's, for a response */
    assert_int_equal(sip_parse((const uint8_t *)invite, strlen(invite) - 10, 1, &m), 0);
    assert_int_equal(sip_parse((const uint8_t *)invite, 40, 1, &m), 0);
}

static void test_sip_bad(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "INVITE sip:x SIP/2.0\r\nFrom: a\r\n\r\n",                      /* no Call-ID */
        "INVITE sip:x SIP/2.0\r\nCall-ID: 1\r\nContent-Length: -5\r\n\r\n", /* bad length */
        "SIP/2.0 2x0 OK\r\nCall-ID: 1\r\n\r\n",
        "invite sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n",
        "",
    };
    struct sip_msg m;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sip_parse((const uint8_t *)bad[i], strlen(bad[i]), 0, &m), -1);
}

static void test_sdp_media(void **state)
{
    (void)state;
    const char *s = "v=0\r\nc=IN IP6 2001:db8::1\r\nm=audio 0 RTP/AVP 0\r\n"
                    "m=audio 5000 RTP/AVP 8\r\na=rtcp:6000\r\nm=video 7000 RTP/AVP 96\r\n"
                    "c=IN IP4 192.0.2.9\r\na=rtcp-mux\r\n";
    struct sdp_info sd;
    assert_int_equal(sdp_parse((const uint8_t *)s, strlen(s), &sd), 0);
    assert_int_equal(sd.nm, 3);
    assert_int_equal(sd.m[0].port, 0); /* refused */
    assert_int_equal(sd.m[1].fam, 6);
    assert_int_equal(sd.m[1].rtcp_port, 6000);
    assert_int_equal(sd.m[2].fam, 4); /* the media's own c= */
    assert_int_equal(sd.m[2].rtcp_mux, 1);
    assert_int_equal(sdp_parse((const uint8_t *)"v=0\r\n", 5, &sd), -1);
}

static void rtp(struct rtp_stats *st, uint16_t seq, uint32_t ts, int64_t ms_x1000, int marker)
{
    struct rtp_hdr h = {8, marker, seq, ts, 1};
    rtp_stats_add(st, &h, ms_x1000 * 1000, 8000);
}

/* Packets 20 ms apart with timestamps 160 apart: no jitter. One arriving
 * 8 ms late: D = 8 ms, J = 8/16 = 0.5 ms; then it decays. A lost packet
 * (seq 4) counts once. */
static void test_rtp_stats(void **state)
{
    (void)state;
    struct rtp_stats st;
    memset(&st, 0, sizeof st);
    rtp(&st, 1, 0, 0, 1);
    rtp(&st, 2, 160, 20000, 0);
    rtp(&st, 3, 320, 48000, 0); /* 8 ms late */
    assert_true(fabs(st.jitter - 0.5) < 1e-9);
    rtp(&st, 5, 640, 80000, 0);  /* on time again relative to the one before: D = 8 - 0 ... */
    assert_int_equal(st.packets, 4);
    assert_int_equal(rtp_stats_lost(&st), 1);
    assert_true(st.max_jitter >= 0.5);
    /* wrap of the sequence number */
    struct rtp_stats w;
    memset(&w, 0, sizeof w);
    rtp(&w, 65534, 0, 0, 0);
    rtp(&w, 65535, 160, 20000, 0);
    rtp(&w, 0, 320, 40000, 0);
    rtp(&w, 1, 480, 60000, 0);
    assert_int_equal(rtp_stats_lost(&w), 0);
    assert_true(w.max_jitter < 1e-9);
}

static void test_rtp_header(void **state)
{
    (void)state;
    struct rtp_hdr h;
    const uint8_t ok[12] = {0x80, 0x88, 0x00, 0x05, 0, 0, 0, 160, 0x37, 0x96, 0xcb, 0x71};
    assert_int_equal(rtp_header(ok, 12, &h), 1);
    assert_int_equal(h.pt, 8);
    assert_int_equal(h.marker, 1);
    assert_int_equal(h.seq, 5);
    assert_int_equal(h.ssrc, 0x3796cb71);
    assert_int_equal(rtp_header(ok, 11, &h), 0);
    const uint8_t v1[12] = {0x40};
    assert_int_equal(rtp_header(v1, 12, &h), 0);
    const uint8_t csrc[12] = {0x8f}; /* 15 CSRCs announced, none there */
    assert_int_equal(rtp_header(csrc, 12, &h), 0);
    const uint8_t rr[8] = {0x81, 201, 0, 1, 1, 2, 3, 4};
    assert_int_equal(rtcp_looks(rr, 8), 1);
    assert_int_equal(rtp_clock_rate(0), 8000);
    assert_int_equal(rtp_clock_rate(99), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sip_request), cmocka_unit_test(test_sip_stream),
        cmocka_unit_test(test_sip_bad),     cmocka_unit_test(test_sdp_media),
        cmocka_unit_test(test_rtp_stats),   cmocka_unit_test(test_rtp_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
