/* intercept.h -- lawful intercept: cases (warrants) and what each keeps of
 * the archive. The contract between the front doors (httpd/cases.c, the
 * control socket's case verb, rewind case) and the case store.
 *
 * A case is kept as one file, DIR/cases/ID/case.json (man/rewind-archive.5,
 * CASES: the JSON of ic_case_json()), written whole to a temporary file,
 * fsynced and renamed, so that a crash leaves the old record or the new one.
 * Creating a case copies the packets that match it in its window up to now
 * into DIR/cases/ID/retro.pcapng (one interface per capture point), which
 * retention never touches: the case keeps its retrospective part however
 * long the warrant runs, without holding whole segments. A case is never
 * deleted: ending it records when it ended.
 *
 * Every change (create, patch, end) leaves an audit record with the
 * parameter case=ID, written by the same call that makes the change. */
#ifndef INTERCEPT_H
#define INTERCEPT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rw.h"

typedef struct idx idx_t;
typedef struct ic ic_t; /* a case store (ic_open) */
struct audit;
struct arc_tap;
struct idx_ident;

#define IC_ID_MAX 64        /* a case id (LIID): 1..64 of [A-Za-z0-9._-], not '.' first */
#define IC_TEXT_MAX 256     /* authority, warrant */
#define IC_FILTER_MAX 1024  /* the case's own BPF */
#define IC_MAX_TARGETS 64
#define IC_USER_MAX 128     /* a subscriber user name */
#define IC_BODY_MAX (1u << 20) /* largest case document accepted */

enum ic_target_kind { IC_TARGET_IP = 1, IC_TARGET_PREFIX, IC_TARGET_MAC, IC_TARGET_USER };
enum ic_type { IC_CONTENT = 0, IC_IRI = 1 };
enum ic_delivery { IC_PULL = 0, IC_ETSI = 1 };

struct ic_target {
    int kind;                /* enum ic_target_kind */
    int family;              /* AF_INET or AF_INET6 (ip, prefix) */
    uint8_t addr[16];        /* ip, prefix: network byte order, host bits zero for a prefix */
    int plen;                /* prefix length (ip: 32 or 128) */
    uint8_t mac[6];
    char user[IC_USER_MAX];  /* user */
};

struct ic_case {
    char id[IC_ID_MAX + 1];
    char authority[IC_TEXT_MAX], warrant[IC_TEXT_MAX];
    int64_t from, to;        /* the warrant's window [from, to), ns */
    int type;                /* enum ic_type */
    struct ic_target targets[IC_MAX_TARGETS];
    size_t ntargets;
    char filter[IC_FILTER_MAX]; /* "" for none */
    int delivery;            /* enum ic_delivery */
    char deliver_to[128];    /* etsi: "HOST:PORT" of the agency's receiver */
    char country[3];         /* etsi: authorisation country code (ISO 3166, 2 letters) */
    char operator_id[64], element_id[64]; /* etsi: operator and network element ids */
    /* etsi over TLS (delivery.tls): the agency's certificate is verified
     * against tls_ca (PEM; "" for the system's trust store) and the name
     * tls_server_name ("" for the host of deliver_to); tls_cert and
     * tls_key (PEM, both or neither) are rewind's client certificate. */
    int tls;
    char tls_ca[256], tls_cert[256], tls_key[256], tls_server_name[256];
    int64_t created;         /* when the case was made */
    char creator[128];       /* by whom */
    int64_t ended;           /* when it was ended (DELETE, rewind case end); 0: not */
    char ended_by[128];
    /* What creating it preserved: the packets of [retro_from, retro_to)
     * matching it, in DIR/cases/ID/retro.pcapng. */
    int64_t retro_from, retro_to;
    uint64_t retro_packets, retro_bytes; /* bytes: of the file */
    char retro_sha256[65];   /* of the file; "" when none was written */
};

/* The case's state at now: "pending" (before from), "active", "ended"
 * (ended, or to has passed). */
const char *ic_case_state(const struct ic_case *c, int64_t now);
/* When live intercept of the case stops: to, or when it was ended. */
int64_t ic_case_end_ns(const struct ic_case *c);

/* Parse a case document (the JSON of POST /api/v1/cases; man/rewindd.8,
 * LAWFUL INTERCEPT) into c, checking every field: RW_EINPUT with a message
 * that starts with the field ("targets[1].prefix: ...", "to: ...",
 * "delivery.type: ..."). Times are RFC 3339, Unix seconds or relative to
 * now, as everywhere. The filter is compiled by libpcap to be checked. */
int ic_case_parse(const char *json, size_t n, int64_t now, struct ic_case *c, char *err) RW_WUR;
/* The case as JSON (one line, no newline), with its state at now;
 * malloc'ed, NULL when out of memory. */
char *ic_case_json(const struct ic_case *c, int64_t now);

/* The BPF expression of the case's address, prefix and MAC targets
 * ("host A or net P or ether host M"), and'ed with its filter, into out.
 * User targets are not in it (they resolve to addresses over intervals).
 * Returns 0, or RW_EINPUT when the case has no address target ("" in out)
 * or the expression does not fit n. */
int ic_case_bpf(const struct ic_case *c, char *out, size_t n, char *err) RW_WUR;

/* ---- the packets a case takes (select.c) ---- */
typedef struct ic_sel ic_sel_t;
/* What case c takes over [from, to): its address, prefix and MAC targets
 * throughout, and each address a user target held (ic_ident_resolve) only
 * while it held it, all and'ed with its filter. */
int ic_sel_new(idx_t *ix, const struct ic_case *c, int64_t from, int64_t to, ic_sel_t **out,
               char *err) RW_WUR;
void ic_sel_free(ic_sel_t *s);
/* The union of every address with the filter, for a query over the window
 * (a superset: ic_sel_match judges each packet); NULL when nothing can
 * match (user targets that held no address then). */
const char *ic_sel_filter(const ic_sel_t *s);
/* The user targets' intervals used, clipped to the window. */
const struct idx_ident *ic_sel_intervals(const ic_sel_t *s, size_t *n);
/* 1 if the case takes this packet (link type dlt, time ts), 0 if not, -1
 * when out of memory. */
int ic_sel_match(ic_sel_t *s, int dlt, uint32_t snaplen, int64_t ts, const uint8_t *data,
                 uint32_t caplen, uint32_t len);

/* ---- reading a case's spool (spool.c) ---- */
struct ic_spool_rec {
    uint64_t seq;            /* 1, 2, 3... per case, without gaps */
    int64_t ts;              /* ns */
    int dlt;                 /* the point's link type */
    uint32_t snaplen;
    uint32_t caplen, len;
    char point[65];
    const uint8_t *data;     /* valid until the next ic_spool_next */
};
typedef struct ic_spool_reader ic_spool_reader_t;
/* A reader of the spool directory sdir (DIR/cases/ID/spool) from sequence
 * number after + 1. */
int ic_spool_reader_open(const char *sdir, uint64_t after, ic_spool_reader_t **out,
                         char *err) RW_WUR;
void ic_spool_reader_close(ic_spool_reader_t *r);
/* The next record, if its number is at most durable (what the writer has
 * synced): 1 and *rec; 0 when there is none yet; RW_ECORRUPT when the
 * spool is damaged or skips a number. */
int ic_spool_next(ic_spool_reader_t *r, uint64_t durable, struct ic_spool_rec *rec,
                  char *err) RW_WUR;

/* ---- live intercept (live.c) ----
 * While a content case is active (now before its end), every packet the
 * archive stores that the case takes (ic_sel_match, within its window) is
 * numbered and spooled to DIR/cases/ID/spool/ (man/rewind-archive.5,
 * SPOOL), synced within 100 ms of a case's first packet after a quiet
 * spell, then every 200 ms while packets keep coming (every 100 ms while
 * 1 MiB or more waits), and offered for delivery once synced. */
#define IC_DEFAULT_QUOTA (1ull << 30) /* a case's spool, unless set */
#define IC_ALARM_PCT 80               /* alarm when the spool passes this % of it */
struct ic_live_opts {
    uint64_t quota; /* bytes per case spool (0: IC_DEFAULT_QUOTA) */
    /* Where events go (a drop, the alarm): the daemon's log. */
    void (*log)(void *arg, const char *level, const char *msg);
    void *log_arg;
};
/* Start live intercept on ic's store (the daemon: before capture starts;
 * ic_tap then tees). */
int ic_live_start(ic_t *ic, const struct ic_live_opts *o, char *err) RW_WUR;
/* Write what is spooled and stop (after capture stopped). */
void ic_live_stop(ic_t *ic);
/* Take the cases and identities as they are now (the store calls it after
 * each change; the tap after a RADIUS record of an active user target). */
int ic_live_rebuild(ic_t *ic, char *err) RW_WUR;
/* The last synced sequence number of case id's spool (0: none), and
 * whether the case is being intercepted now. */
int ic_live_durable(ic_t *ic, const char *id, uint64_t *durable, int *active,
                    char *err) RW_WUR;
/* Wait up to ms for case id to get a record beyond seen. */
void ic_live_wait(ic_t *ic, uint64_t seen, const char *id, int ms);
struct ic_live_stat {
    char id[IC_ID_MAX + 1];
    uint64_t teed, dropped;  /* packets spooled, packets dropped (this run) */
    uint64_t durable;        /* the last synced sequence number */
    uint64_t next_seq;
    uint64_t spool_bytes, quota;
    uint64_t delivered;      /* the highest number pull delivery has sent (lag: durable -
                                delivered) */
    uint64_t connections;    /* pull connections made this run */
    int push;                /* etsi push runs for it: the four below hold */
    uint64_t push_sent;      /* the highest number written to the agency's link */
    uint64_t push_reconnects;
    int push_connected;
    uint64_t push_skipped;   /* spooled frames without an IP packet: no IPCC */
    uint64_t push_failures;  /* connection attempts that failed (this run) */
    char push_error[256];    /* why the last one failed; "" once connected */
    int alarm, active;
};
/* Pull delivery of case id sent up to seq (connect: a new connection). */
void ic_live_pulled(ic_t *ic, const char *id, uint64_t seq, int connect);
/* The spools of this run, up to max. */
size_t ic_live_stats(ic_t *ic, struct ic_live_stat *out, size_t max);

/* ---- pull delivery's wire format (pull.c) ----
 * A pcapng stream, one section (host byte order), interfaces named after
 * capture points with nanosecond timestamps, each Enhanced Packet Block
 * with an opt_comment "rewind-seq N"; an Interface Statistics Block whose
 * comment is a note of the server (packets dropped). */
#define IC_NG_MAX_BLOCK ((256u << 10) + 1024) /* the largest block either side takes */
#define IC_NG_MAX_IFS 256
/* Encoders into p, which has room for the block; each returns its size. */
size_t ic_ng_shb(uint8_t *p);
size_t ic_ng_idb(uint8_t *p, int dlt, uint32_t snaplen, const char *name);
size_t ic_ng_epb(uint8_t *p, uint32_t ifid, int64_t ts, const uint8_t *data, uint32_t caplen,
                 uint32_t len, uint64_t seq);
size_t ic_ng_note(uint8_t *p, uint32_t ifid, int64_t now, const char *text);

/* The client's incremental parser: feed what arrives, take blocks out. */
typedef struct ic_ng_parser ic_ng_parser_t;
struct ic_ng_if {
    int linktype;
    uint32_t snaplen;
    int tsresol;
    char name[65];
};
enum { IC_NG_SECTION = 1, IC_NG_IFACE, IC_NG_PACKET, IC_NG_NOTE, IC_NG_OTHER };
struct ic_ng_event {
    int kind;
    uint32_t ifid;           /* IFACE, PACKET */
    int64_t ts;              /* PACKET, ns */
    uint32_t caplen, len;
    const uint8_t *data;     /* valid until ic_ng_consume */
    uint64_t seq;            /* PACKET */
    char note[512];          /* NOTE */
};
ic_ng_parser_t *ic_ng_parser_new(void); /* NULL: out of memory */
void ic_ng_parser_free(ic_ng_parser_t *p);
int ic_ng_feed(ic_ng_parser_t *p, const void *data, size_t len, char *err) RW_WUR;
/* The next whole block: 1 and *ev (then ic_ng_consume(*consumed)), 0 when
 * more bytes are needed, RW_EINPUT for bytes that are not this format. */
int ic_ng_next(ic_ng_parser_t *p, struct ic_ng_event *ev, size_t *consumed, char *err) RW_WUR;
void ic_ng_consume(ic_ng_parser_t *p, size_t n);
const struct ic_ng_if *ic_ng_iface(const ic_ng_parser_t *p, uint32_t id);

/* ---- following what is stored (follow.c) ---- */
typedef struct ic_follow ic_follow_t;
/* From now on (ic_follow_cut), queue every packet the archive stores that
 * is of one of points (NULL: any) and that filter takes (libpcap, per link
 * type; "" or NULL: all), each cut after its headers first when
 * headers_only (as a noc answer), up to queue bytes waiting. Needs the tap
 * (rewindd's). */
int ic_follow_new(ic_t *ic, const char *filter, const char *const *points, int headers_only,
                  size_t queue, ic_follow_t **out, char *err) RW_WUR;
int64_t ic_follow_cut(const ic_follow_t *f);
/* The next packet (seq 0), waiting up to ms: 1 and *rec (valid until the
 * next call), 0 none yet, RW_ESTATE when the queue overflowed (the reader
 * fell behind: the answer must end as incomplete). */
int ic_follow_next(ic_follow_t *f, struct ic_spool_rec *rec, int ms) RW_WUR;
void ic_follow_free(ic_follow_t *f);

/* ---- the store ---- */

/* Who changes a case, for the audit record. */
struct ic_who {
    const char *principal, *role, *method, *client; /* as struct audit_rec's */
    const char *route; /* e.g. "POST /api/v1/cases", "ctl case add" */
};

/* The case store of the archive in dir, whose index ix (borrowed) answers
 * the retrospective copies, recording changes in audit (borrowed; NULL:
 * nowhere). Creates DIR/cases (0750) when needed. Free with ic_close(). */
int ic_open(const char *dir, idx_t *ix, struct audit *audit, ic_t **out, char *err) RW_WUR;
void ic_close(ic_t *ic);

/* Create the case in json: checked (RW_EINPUT naming the field), refused
 * with RW_ESTATE when its id exists already; its retrospective part
 * preserved; recorded; audited. *out (may be NULL) gets the stored case. */
int ic_create(ic_t *ic, const char *json, size_t n, const struct ic_who *who,
              struct ic_case *out, char *err) RW_WUR;
/* Change authority, warrant, to, filter-free fields of case id from json
 * (an object with any of authority, warrant, to, delivery): RW_EINPUT
 * naming a bad or unchangeable field, 0 with *found 0 when there is no such
 * case, RW_ESTATE when it has ended. */
int ic_patch(ic_t *ic, const char *id, const char *json, size_t n, const struct ic_who *who,
             struct ic_case *out, int *found, char *err) RW_WUR;
/* End case id now (its record stays): *found 0 when there is none;
 * RW_ESTATE when it ended already. */
int ic_end(ic_t *ic, const char *id, const struct ic_who *who, struct ic_case *out, int *found,
           char *err) RW_WUR;
/* Case id: 1 and *out, 0 when there is none. */
int ic_get(ic_t *ic, const char *id, struct ic_case *out, char *err) RW_WUR;
/* Every case, by id. *out malloc'ed. */
int ic_list(ic_t *ic, struct ic_case **out, size_t *n, char *err) RW_WUR;

/* The same for a reader without a store handle (rewind case list/show
 * with no daemon): dir's cases. */
int ic_get_dir(const char *dir, const char *id, struct ic_case *out, char *err) RW_WUR;
int ic_list_dir(const char *dir, struct ic_case **out, size_t *n, char *err) RW_WUR;

/* ---- RADIUS accounting (radius.c) ---- */
enum { IC_ACCT_START = 1, IC_ACCT_STOP = 2, IC_ACCT_INTERIM = 3 };
#define IC_RADIUS_PREFIXES 4
struct ic_radius_prefix {
    uint8_t addr[16];
    int plen;
};
struct ic_radius_acct {
    int status;                 /* Acct-Status-Type: IC_ACCT_* */
    char user[IC_USER_MAX];     /* User-Name */
    char session[64];           /* Acct-Session-Id ("" if absent) */
    char station[64];           /* Calling-Station-Id ("" if absent) */
    int has_ip4;
    uint8_t ip4[4];             /* Framed-IP-Address */
    int nprefix;                /* Framed-IPv6-Prefix, Delegated-IPv6-Prefix */
    struct ic_radius_prefix prefix[IC_RADIUS_PREFIXES];
};
/* Parse one RADIUS packet (a UDP payload of n bytes, untrusted): 1 and *a
 * for an Accounting-Request with Acct-Status-Type Start, Stop or
 * Interim-Update and a User-Name; 0 for a well-formed packet that is none
 * of those (an Access-Request, an Accounting-On...); RW_EINPUT saying what
 * is malformed (lengths that overrun, a text attribute with control
 * characters, an address of the wrong size, prefix bits beyond the length),
 * in which case nothing of it may be used. */
int ic_radius_parse(const uint8_t *p, size_t n, struct ic_radius_acct *a, char *err) RW_WUR;

/* ---- subscriber identities (ident.c) ----
 * The table user -> address or prefix over [start, end) is kept in the
 * index (index.h, struct idx_ident; man/rewind-archive.5, K17 and K18).
 * When an address is given to a session, every interval still open on it
 * for another session ends at that moment: an interval never covers the
 * traffic of whoever held the address before or after. */

/* Apply one accounting record seen at ts: Start and Interim-Update open an
 * interval per address (unless the session holds it already), Stop ends
 * the user's open ones (of its session, when it names one). Writer only;
 * *added counts the intervals opened. */
int ic_ident_radius(idx_t *ix, const struct ic_radius_acct *a, int64_t ts, uint64_t *added,
                    char *err) RW_WUR;

/* Identity records as JSON lines (POST /api/v1/identities): each line
 * {"user", "ip" or "prefix", "start", optional "end", "session", "station",
 * "ports": "LO-HI"}; every line is checked before any is applied
 * (RW_EINPUT "line N: FIELD: ..."), then each is applied as a Start at
 * start and, with an end, a Stop at end. *added counts intervals opened. */
int ic_ident_lines(idx_t *ix, const char *text, size_t n, uint64_t *added, char *err) RW_WUR;

/* The intervals user held that meet [from, to), by start. *out malloc'ed. */
int ic_ident_resolve(idx_t *ix, const char *user, int64_t from, int64_t to,
                     struct idx_ident **out, size_t *n, char *err) RW_WUR;

/* The archive's tap (archive.h, arc_set_tap): feeds identities from RADIUS
 * accounting (UDP to port 1813 or 1646) on any point, and with live
 * intercept started tees to the case spools. arg is the ic_t. */
struct ic_ident_tap {
    idx_t *ix;                   /* the archive's index, as its writer */
    atomic_uint_fast64_t radius;     /* accounting packets seen */
    atomic_uint_fast64_t malformed;  /* ... refused as malformed (nothing used) */
    atomic_uint_fast64_t identities; /* intervals opened */
    atomic_uint_fast64_t failed;     /* index writes that failed */
};
void ic_tap(void *arg, const struct arc_tap *t);
struct ic_ident_tap *ic_ident_counters(ic_t *ic);

/* 1 if s is a well-formed case id. */
int ic_id_ok(const char *s);

#endif
