/* sip.h -- SIP messages (RFC 3261), the SDP they carry (RFC 4566) and RTP
 * stream statistics (RFC 3550): the parsers behind VoIP calls.
 *
 * Parsers of untrusted bytes: they never read past the length given, never
 * allocate, and keep at most fixed-size copies of what they find. */
#ifndef SIP_SIP_H
#define SIP_SIP_H

#include <stddef.h>
#include <stdint.h>

#define SIP_STR 256

struct sip_msg {
    int request;            /* 1 request, 0 response */
    char method[24];        /* request method; for a response, CSeq's method */
    int status;             /* response status code */
    char reason[64];        /* response reason phrase */
    char call_id[SIP_STR];  /* Call-ID (or i), as written */
    char from[SIP_STR], to[SIP_STR]; /* the URIs of From (f) and To (t), without name or tag */
    uint32_t cseq;
    char cseq_method[24];
    int sdp;                /* Content-Type (c) application/sdp */
    const uint8_t *body;    /* into the bytes given */
    size_t body_len;
    size_t len;             /* bytes of the whole message */
};

/* 1 if p starts with a SIP start line ("INVITE sip:... SIP/2.0",
 * "SIP/2.0 200 OK"), as far as the n bytes given show; 0 otherwise. */
int sip_looks(const uint8_t *p, size_t n);

/* Parse one message at p. For a datagram (stream 0) the message is the n
 * bytes (its body cut to Content-Length when that is shorter). For a TCP
 * stream (stream 1) the message ends after Content-Length bytes of body
 * (none without the header): returns 0 if more bytes are needed.
 * Returns m->len (> 0), 0 (need more), or -1 (not SIP, or malformed:
 * no Call-ID, a bad Content-Length). */
int sip_parse(const uint8_t *p, size_t n, int stream, struct sip_msg *m);

/* ---- SDP ---- */
#define SDP_MAX_MEDIA 8
#define SDP_MAX_MAP 16

struct sdp_media {
    int fam;              /* 4 or 6: the connection address ("c=", media or session) */
    uint8_t addr[16];
    uint16_t port;        /* RTP; 0: the stream is refused or off */
    uint16_t rtcp_port;   /* port + 1, or "a=rtcp:" */
    int rtcp_mux;         /* a=rtcp-mux */
    char media[16];       /* audio, video, ... */
    struct {
        int pt;
        char name[32];
        uint32_t rate;
    } map[SDP_MAX_MAP];   /* a=rtpmap */
    int nmap;
};

struct sdp_info {
    struct sdp_media m[SDP_MAX_MEDIA];
    int nm;
};

/* Parse an SDP body: 0, or -1 when it holds no usable media line. */
int sdp_parse(const uint8_t *p, size_t n, struct sdp_info *out);

/* ---- RTP ---- */

/* The RTP fixed header, if p holds one (version 2): 1, else 0. */
struct rtp_hdr {
    int pt, marker;
    uint16_t seq;
    uint32_t ts, ssrc;
};
int rtp_header(const uint8_t *p, size_t n, struct rtp_hdr *h);
/* An RTCP packet (version 2, packet type 200-207): 1, else 0. */
int rtcp_looks(const uint8_t *p, size_t n);

/* The sampling clock of a static payload type (RFC 3551), 0 if unknown. */
uint32_t rtp_clock_rate(int pt);
/* Its name ("g711U", "g711A", ...), or NULL. */
const char *rtp_pt_name(int pt);

/* One stream's figures, as RFC 3550 A.8 computes jitter (in ms here): J +=
 * (|D| - J) / 16 over each packet's transit difference; the maximum is taken
 * over the packets that are not the first, do not carry the marker bit, are
 * not comfort noise (PT 13, 19) nor follow it, and are not behind the last
 * timestamp. Loss is the packets expected from the first and last sequence
 * numbers (wraps counted) less those received. */
struct rtp_stats {
    uint64_t packets;
    int started;
    uint16_t first_seq, last_seq;
    uint32_t cycles;
    int under;
    int pt;                /* of the last packet */
    int64_t first_ns, last_ns;
    double time_ms;        /* arrival of the last in-sequence packet */
    int64_t seq_ts;        /* its extended timestamp */
    int64_t ext_ts;        /* extended timestamp of the last packet */
    uint32_t prev_ts32;
    double jitter, max_jitter, mean_jitter, max_delta;
    uint32_t clock_rate;
};
/* Add one packet arriving at ns with header h; rate is the payload type's
 * clock (0: unknown: no jitter). */
void rtp_stats_add(struct rtp_stats *s, const struct rtp_hdr *h, int64_t ns, uint32_t rate);
/* Expected less received: negative when packets came twice. */
int64_t rtp_stats_lost(const struct rtp_stats *s);

#endif
