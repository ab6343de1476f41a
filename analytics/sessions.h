/* sessions.h -- application evidence read from the archive: SMTP sessions and
 * their messages, VoIP calls and their media, as the front ends show them.
 *
 * One read API for the HTTP routes (/api/v1/smtp, /api/v1/voip/calls) and
 * `rewind smtp` / `rewind calls` reading an archive themselves, so both give
 * the same bytes. A run plans a query (query/query.h) that the index narrows
 * to the window, the host and the ports, decodes the packets it answers,
 * reassembles TCP (analytics/reasm.h) and parses SMTP (analytics/smtp.h) or
 * SIP, SDP and RTP (analytics/sip.h). Answers are written through a write
 * callback as they are ready; ses_pump() does a bounded amount of work per
 * call so that a server can interleave it with sending.
 *
 * Memory is bounded whatever the window: the query streams; at most `limit`
 * sessions or calls are followed (default 100, at most 10000), each with the
 * caps of smtp.h and sip.h; out-of-order TCP bytes share one pool (16 MiB);
 * and a run whose results outgrow 64 MiB stops following new ones and says
 * so ("truncated"). Message bodies and call packets are never held: they
 * stream.
 *
 * Identifiers name what to find again, so that an ID from a listing is all
 * a later request needs (and nothing is stored between requests):
 *   SMTP session  S<start>-<client>-<cport>-<server>-<sport>
 *   SMTP message  the session's ID, "-", n
 *   VoIP call     C<start>-<end>-<hash>
 * start and end are the nanosecond times of the session's (call's) first and
 * last packet, addresses are hex (8 or 32 digits), n counts the messages of
 * the session from 1, hash is 16 hex digits of the Call-ID (FNV-1a 64). A
 * message is looked for from its session's start to the end of the window
 * asked for (spec.to) and the search ends with the message. */
#ifndef SES_SESSIONS_H
#define SES_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "common/rw.h"
#include "query/query.h"

enum ses_kind {
    SES_SMTP = 0,      /* the sessions list */
    SES_SMTP_EML = 1,  /* one message's bytes (spec.id) */
    SES_CALLS = 2,     /* the calls list */
    SES_CALL_PCAP = 3, /* one call's SIP and RTP/RTCP packets (spec.id) */
};

enum ses_format {
    SES_JSON = 0,
    SES_CSV = 1,    /* SMTP: one row per transaction; calls: one row per call */
    SES_TEXT = 2,   /* a table for people */
    SES_REPORT = 3, /* SMTP: the spam-complaint report of a subscriber */
};

#define SES_LIMIT_DEFAULT 100
#define SES_LIMIT_MAX 10000

struct ses_spec {
    enum ses_kind kind;
    int64_t from, to;     /* [from, to) ns; RW_TIME_MIN / RW_TIME_MAX: open */
    const char *host;     /* an IPv4 or IPv6 address, or NULL */
    const char *user;     /* calls: a substring of the caller or callee URI, or NULL */
    uint64_t limit;       /* sessions or calls; 0: SES_LIMIT_DEFAULT */
    enum ses_format format;
    const char *id;       /* SES_SMTP_EML, SES_CALL_PCAP */
    int pcap_format;      /* SES_CALL_PCAP: QRY_PCAP or QRY_PCAPNG */
    /* SES_SMTP: every message's bytes as well, as the listing runs (the
     * CLI's --eml DIR): begin(id) once, data() any number of times, end().
     * Any may be NULL; a nonzero return ends the run with RW_EIO. */
    int (*msg_begin)(void *arg, const char *id);
    int (*msg_data)(void *arg, const void *p, size_t n);
    int (*msg_end)(void *arg, int complete);
    void *msg_arg;
};

typedef struct ses ses_t;

/* Check spec's values (the host an address, the id well formed, the limit
 * in range): RW_EINPUT with a message that starts with the parameter's
 * name ("host: ..."), else 0. ses_new() checks them too. */
int ses_check(const struct ses_spec *spec, char *err) RW_WUR;

/* Plan a run over the archive behind ix, writing the answer through w(arg)
 * (nothing is written before ses_pump()). RW_EINPUT for a bad spec. For
 * SES_CALL_PCAP the call is looked for first (a pass over its window): 0 and
 * *out NULL when there is no such call. */
int ses_new(idx_t *ix, const struct ses_spec *spec, qry_write_fn w, void *arg, ses_t **out,
            char *err) RW_WUR;
/* Do some work: 1 more to do, 0 done (the answer is complete), <0 failed
 * (RW_ESTOP if the cancel function said so). */
int ses_pump(ses_t *s, char *err) RW_WUR;
/* SES_SMTP_EML: -1 while unknown, 1 once the message was found (its bytes
 * follow), 0 once the run is over without it. Others: 1. */
int ses_found(const ses_t *s);
/* Asked while the query scans (qry_set_cancel). */
void ses_set_cancel(ses_t *s, int (*fn)(void *arg), void *arg);
/* Packets read so far, and the answer's content type ("application/json",
 * "text/csv", "text/plain", "message/rfc822", pcap types). */
uint64_t ses_packets(const ses_t *s);
const char *ses_content_type(const ses_t *s);
/* The filter the run asked the archive for (for the audit trail). */
const char *ses_filter(const ses_t *s);
void ses_free(ses_t *s); /* NULL is fine */

/* Parse a format name ("json", "csv", "text", "report"): RW_EINPUT naming
 * parameter param otherwise. */
int ses_format_parse(const char *s, const char *param, enum ses_format *out, char *err) RW_WUR;

#endif
