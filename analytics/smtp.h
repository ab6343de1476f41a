/* smtp.h -- SMTP sessions from the two reassembled directions of one TCP
 * connection: the client's commands, the server's replies, the
 * transactions they make and the messages sent, as the sender composed them.
 *
 * The bytes come from analytics/reasm.h (or anything that orders them):
 * smtp_bytes() with the direction, smtp_gap() where bytes are missing,
 * in capture order across the two directions. What the parser reads
 * (RFC 5321, RFC 3030, RFC 2045-2046):
 *
 *  - every command line of the client and the reply (code) it got; replies
 *    pair with commands in order, so pipelined commands (RFC 2920) pair too;
 *  - HELO/EHLO's argument; STARTTLS answered 220 marks the rest of the
 *    session encrypted (nothing after it is parsed);
 *  - a transaction is MAIL FROM, its RCPT TOs each with its reply, DATA or
 *    BDAT and the server's final reply; RSET or a new MAIL ends one;
 *  - a message's bytes are DATA's lines dot-unstuffed (RFC 5321 §4.5.2),
 *    without the terminating ".CRLF", or BDAT's chunks joined; its header
 *    fields Subject, From, To, Date, Message-ID (unfolded, as written) and
 *    the names and decoded sizes of MIME parts that are attachments.
 *
 * Missing bytes are never invented: a message that crossed a gap says how
 * many bytes it lacks. Memory is bounded: lines, header sections and the
 * lists kept (transactions, recipients, attachments) have fixed caps; what
 * goes beyond is counted, not kept. Never reads past what it is given. */
#ifndef SMTP_SMTP_H
#define SMTP_SMTP_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_STR 256
#define SMTP_MAX_TXN 256   /* transactions kept per session */
#define SMTP_MAX_RCPT 64   /* recipients kept per transaction */
#define SMTP_MAX_ATT 32    /* attachments kept per message */

struct smtp_rcpt {
    char addr[128];      /* the argument of TO:, without <> (cut at 127 bytes) */
    int reply;           /* the server's reply code, 0 if none was seen */
};

struct smtp_att {
    char name[128];
    uint64_t size; /* decoded bytes (base64 and quoted-printable undone) */
};

struct smtp_msg {
    int no;                /* 1, 2, ... within the session */
    uint64_t size;         /* bytes of the message as composed (the .eml) */
    uint64_t missing;      /* bytes lost in gaps: not in size, not invented */
    int complete;          /* the terminator (or BDAT LAST) was seen */
    char subject[512], from[SMTP_STR], to[512], date[128], message_id[SMTP_STR];
    struct smtp_att att[SMTP_MAX_ATT];
    int natt, att_more;    /* kept, and seen beyond the cap */
};

enum smtp_data_kind { SMTP_NODATA = 0, SMTP_DATA = 1, SMTP_BDAT = 2 };

struct smtp_txn {
    int64_t start, end;
    char mail_from[SMTP_STR];
    int mail_reply;
    struct smtp_rcpt rcpt[SMTP_MAX_RCPT];
    int nrcpt;                 /* kept */
    uint32_t rcpt_total, rcpt_accepted; /* every RCPT TO; those answered 2xx */
    enum smtp_data_kind data;
    int data_reply;            /* DATA: its reply (354 goes on); BDAT: the first chunk's */
    int final_reply;           /* after the message: 250 accepted, else rejected; 0 none */
    char final_text[SMTP_STR]; /* the last line of that reply */
    int has_msg;
    struct smtp_msg msg;
};

struct smtp_session {
    int64_t start, end;
    int banner_reply;
    char banner[SMTP_STR];
    char helo[SMTP_STR];
    int ehlo;                 /* EHLO rather than HELO */
    int auth;                 /* AUTH was used */
    int starttls;             /* STARTTLS answered 220: the rest is encrypted */
    int64_t tls_at;
    struct smtp_txn *txn;     /* ntxn of them, at most SMTP_MAX_TXN */
    int ntxn;
    uint32_t txn_more;        /* transactions beyond the cap */
    uint32_t nmsg;            /* messages begun */
    uint64_t missing[2];      /* bytes missing, client and server */
    uint32_t commands, replies;
};

/* Message bytes as they are composed, for .eml answers: begin, data...,
 * end(complete). Any callback may be NULL. A nonzero return from data
 * stops the parser (smtp_stopped). */
struct smtp_msg_sink {
    void (*begin)(void *arg, const struct smtp_session *s, const struct smtp_txn *t);
    int (*data)(void *arg, const struct smtp_txn *t, const uint8_t *p, size_t n);
    void (*end)(void *arg, const struct smtp_session *s, const struct smtp_txn *t);
    void *arg;
};

typedef struct smtp_conn smtp_conn_t;

/* A parser for one connection; sink may be NULL. NULL when out of memory. */
smtp_conn_t *smtp_conn_new(const struct smtp_msg_sink *sink);
void smtp_conn_free(smtp_conn_t *c); /* NULL is fine */

enum { SMTP_CLIENT = 0, SMTP_SERVER = 1 };
void smtp_bytes(smtp_conn_t *c, int dir, const uint8_t *p, size_t n, int64_t ts);
void smtp_gap(smtp_conn_t *c, int dir, uint64_t len, int64_t ts);
/* The connection ended (or the capture did): open transactions close. */
void smtp_end(smtp_conn_t *c, int64_t ts);
/* The session so far; valid until the next call on c. */
const struct smtp_session *smtp_session(const smtp_conn_t *c);
int smtp_stopped(const smtp_conn_t *c);
/* Move the session out of c into *out (which then owns out->txn: free() it);
 * c keeps an empty one. */
void smtp_session_take(smtp_conn_t *c, struct smtp_session *out);

/* The address in a MAIL FROM:/RCPT TO: argument ("<a@b> SIZE=12" -> "a@b")
 * into out (n bytes). */
void smtp_path(const char *arg, char *out, size_t n);

#endif
