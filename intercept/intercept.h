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

#include <stddef.h>
#include <stdint.h>

#include "common/rw.h"

typedef struct idx idx_t;
struct audit;

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

/* ---- the store ---- */
typedef struct ic ic_t;

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

/* 1 if s is a well-formed case id. */
int ic_id_ok(const char *s);

#endif
