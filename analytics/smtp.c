/* smtp.c -- SMTP sessions, transactions and messages from a connection's
 * two byte streams (what smtp.h promises, and how). */
#include "analytics/smtp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_CAP 1024      /* command and reply lines: the rest of a longer line is dropped */
#define HDR_CAP (64 << 10) /* a message's header section kept for parsing */
#define PHDR_CAP 4096      /* a MIME part's header section */
#define PEND_CAP 64        /* commands waiting for their reply */
#define MIME_DEPTH 8

enum cmd {
    C_OTHER, C_HELO, C_MAIL, C_RCPT, C_DATA, C_DATAEND, C_BDAT, C_BDAT_LAST,
    C_STARTTLS, C_RSET, C_AUTH,
};

struct pend {
    enum cmd cmd;
    int txn;  /* index, -1 none, -2 the scratch transaction */
    int rcpt; /* index into its rcpt[], -1 beyond the cap */
};

struct line {
    char b[LINE_CAP + 1];
    size_t n;
};

/* How the client's bytes are read now. */
enum cmode { M_CMD, M_DATA, M_BDAT, M_TLS };
/* Where the dot-unstuffing stands in a DATA line (RFC 5321 §4.5.2). */
enum dstate { D_LS, D_MID, D_CR, D_DOT, D_DOTCR };

/* A message's MIME parse: header sections and the parts that are attachments. */
struct mime {
    int in_body;           /* past the message's header section */
    char *hdr;             /* the message's header section (HDR_CAP) */
    size_t hn;
    char bnd[MIME_DEPTH][72];
    int nb;
    int in_phdr;           /* in a part's header section */
    char phdr[PHDR_CAP + 1]; /* + 1: hdr_fields ends each field with a NUL */
    size_t pn;
    int att;               /* the part now read is attachment att-1 (0: not one) */
    int enc;               /* 1 base64, 2 quoted-printable, 0 other */
    uint64_t raw, b64, qp; /* the part's bytes: raw, base64 digits, qp decoded */
    size_t last_eol;       /* length of the line end that may belong to the delimiter */
    struct line l;         /* the current body line */
    int lover;
};

struct smtp_conn {
    struct smtp_session s;
    struct smtp_msg_sink sink;
    int stopped, encrypted, got_banner, auth_expect, data_pending;
    struct line cl, sl;     /* client and server lines being read */
    int cl_over;
    enum cmode mode;
    enum dstate ds;
    uint64_t bdat_left;
    int bdat_last;
    int cur;                /* the open transaction: index, -1 none, -2 scratch */
    struct smtp_txn *scratch; /* beyond SMTP_MAX_TXN: parsed, not kept (made when needed) */
    struct pend pend[PEND_CAP];
    int ph, pn;
    int reply_code;         /* of the reply being read, 0 none */
    struct mime mm;
};

static struct smtp_txn *txn_at(smtp_conn_t *c, int i)
{
    if (i == -2)
        return c->scratch;
    if (i < 0 || i >= c->s.ntxn)
        return NULL;
    return &c->s.txn[i];
}

smtp_conn_t *smtp_conn_new(const struct smtp_msg_sink *sink)
{
    smtp_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (sink)
        c->sink = *sink;
    c->cur = -1;
    c->s.start = c->s.end = INT64_MIN;
    return c;
}

void smtp_conn_free(smtp_conn_t *c)
{
    if (!c)
        return;
    free(c->s.txn);
    free(c->mm.hdr);
    free(c->scratch);
    free(c);
}

const struct smtp_session *smtp_session(const smtp_conn_t *c) { return &c->s; }
int smtp_stopped(const smtp_conn_t *c) { return c->stopped; }

void smtp_session_take(smtp_conn_t *c, struct smtp_session *out)
{
    *out = c->s;
    c->s.txn = NULL;
    c->s.ntxn = 0;
    c->cur = -1;
}

static void copy_str(char *dst, size_t n, const char *src, size_t len)
{
    if (len >= n)
        len = n - 1;
    memcpy(dst, src, len);
    dst[len] = 0;
    for (size_t i = 0; i < len; i++) /* a string we show: no control characters */
        if ((unsigned char)dst[i] < 0x20 && dst[i] != '\t')
            dst[i] = ' ';
}

void smtp_path(const char *arg, char *out, size_t n)
{
    while (*arg == ' ')
        arg++;
    const char *e;
    if (*arg == '<') {
        arg++;
        e = strchr(arg, '>');
        if (!e)
            e = arg + strcspn(arg, " ");
    } else {
        e = arg + strcspn(arg, " ");
    }
    copy_str(out, n, arg, (size_t)(e - arg));
}

/* ---- the message: header fields and MIME attachments ---- */

/* The value of parameter name in a header value ("multipart/mixed;
 * boundary=\"x\""), into out; 0 if absent. */
static int hdr_param(const char *v, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = v; (p = strchr(p, ';')); ) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, name, nl) || p[nl] != '=')
            continue;
        p += nl + 1;
        const char *e;
        if (*p == '"') {
            p++;
            e = strchr(p, '"');
            if (!e)
                e = p + strlen(p);
        } else {
            e = p + strcspn(p, "; \t");
        }
        copy_str(out, n, p, (size_t)(e - p));
        return 1;
    }
    return 0;
}

/* Calls fn for each field of a header section (unfolded, NUL-ended in
 * place: buf is changed). */
static void hdr_fields(char *buf, size_t n, void (*fn)(void *, const char *, char *), void *arg)
{
    size_t i = 0;
    while (i < n) {
        size_t st = i, w = i;
        /* a field runs until a line end not followed by white space */
        while (i < n) {
            if (buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n') {
                if (i + 2 < n && (buf[i + 2] == ' ' || buf[i + 2] == '\t')) {
                    i += 2;
                    continue;
                }
                i += 2;
                break;
            }
            if (buf[i] == '\n') {
                if (i + 1 < n && (buf[i + 1] == ' ' || buf[i + 1] == '\t')) {
                    i++;
                    continue;
                }
                i++;
                break;
            }
            buf[w++] = buf[i++];
        }
        buf[w] = 0;
        char *colon = memchr(buf + st, ':', w - st);
        if (!colon)
            continue;
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = 0;
        fn(arg, buf + st, v);
    }
}

static void msg_field(void *arg, const char *name, char *v)
{
    smtp_conn_t *c = arg;
    struct smtp_txn *t = txn_at(c, c->cur);
    struct smtp_msg *m = &t->msg;
    struct mime *mm = &c->mm;
    if (!strcasecmp(name, "Subject"))
        copy_str(m->subject, sizeof m->subject, v, strlen(v));
    else if (!strcasecmp(name, "From"))
        copy_str(m->from, sizeof m->from, v, strlen(v));
    else if (!strcasecmp(name, "To"))
        copy_str(m->to, sizeof m->to, v, strlen(v));
    else if (!strcasecmp(name, "Date"))
        copy_str(m->date, sizeof m->date, v, strlen(v));
    else if (!strcasecmp(name, "Message-ID"))
        copy_str(m->message_id, sizeof m->message_id, v, strlen(v));
    else if (!strcasecmp(name, "Content-Type") && !strncasecmp(v, "multipart/", 10) &&
             mm->nb < MIME_DEPTH && hdr_param(v, "boundary", mm->bnd[mm->nb], sizeof mm->bnd[0]))
        mm->nb++;
}

struct part_info {
    int att, enc, multipart;
    char name[128], bnd[72];
};

static void part_field(void *arg, const char *name, char *v)
{
    struct part_info *pi = arg;
    if (!strcasecmp(name, "Content-Disposition")) {
        if (!strncasecmp(v, "attachment", 10))
            pi->att = 1;
        if (hdr_param(v, "filename", pi->name, sizeof pi->name))
            pi->att = 1;
    } else if (!strcasecmp(name, "Content-Type")) {
        if (!strncasecmp(v, "multipart/", 10) && hdr_param(v, "boundary", pi->bnd, sizeof pi->bnd))
            pi->multipart = 1;
        else if (!pi->name[0] && hdr_param(v, "name", pi->name, sizeof pi->name))
            pi->att = 1;
    } else if (!strcasecmp(name, "Content-Transfer-Encoding")) {
        if (!strncasecmp(v, "base64", 6))
            pi->enc = 1;
        else if (!strncasecmp(v, "quoted-printable", 16))
            pi->enc = 2;
    }
}

/* The part being read is over: its size goes to its attachment. */
static void part_close(smtp_conn_t *c)
{
    struct mime *mm = &c->mm;
    struct smtp_txn *t = txn_at(c, c->cur);
    if (mm->att && t) {
        uint64_t sz;
        if (mm->enc == 1)
            sz = mm->b64 * 3 / 4;
        else if (mm->enc == 2)
            sz = mm->qp;
        else
            sz = mm->raw;
        /* the line end before the delimiter belongs to the delimiter */
        if (mm->enc != 1 && sz >= mm->last_eol)
            sz -= mm->last_eol;
        t->msg.att[mm->att - 1].size = sz;
    }
    mm->att = 0;
    mm->enc = 0;
    mm->raw = mm->b64 = mm->qp = 0;
    mm->last_eol = 0;
}

static void part_headers_done(smtp_conn_t *c)
{
    struct mime *mm = &c->mm;
    struct part_info pi;
    memset(&pi, 0, sizeof pi);
    hdr_fields(mm->phdr, mm->pn, part_field, &pi);
    mm->in_phdr = 0;
    mm->pn = 0;
    if (pi.multipart && mm->nb < MIME_DEPTH) {
        snprintf(mm->bnd[mm->nb++], sizeof mm->bnd[0], "%s", pi.bnd);
        return;
    }
    struct smtp_txn *t = txn_at(c, c->cur);
    if (pi.att && t) {
        struct smtp_msg *m = &t->msg;
        if (m->natt < SMTP_MAX_ATT) {
            snprintf(m->att[m->natt].name, sizeof m->att[0].name, "%s", pi.name);
            m->att[m->natt].size = 0;
            mm->att = ++m->natt;
            mm->enc = pi.enc;
        } else {
            m->att_more++;
        }
    }
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = toupper(ch);
    return ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* One line of a message body (with its line end, len bytes in all). */
static void body_line(smtp_conn_t *c, const char *l, size_t kept, uint64_t len)
{
    struct mime *mm = &c->mm;
    /* a delimiter: "--" boundary, "--" boundary "--" closes the multipart */
    if (kept >= 2 && l[0] == '-' && l[1] == '-') {
        for (int i = mm->nb - 1; i >= 0; i--) {
            size_t bl = strlen(mm->bnd[i]);
            if (!bl || kept < 2 + bl || memcmp(l + 2, mm->bnd[i], bl))
                continue;
            part_close(c);
            int closing = kept >= 4 + bl && l[2 + bl] == '-' && l[3 + bl] == '-';
            mm->nb = closing ? i : i + 1;
            mm->in_phdr = !closing;
            mm->pn = 0;
            return;
        }
    }
    if (mm->in_phdr) {
        if (len <= 2 && (l[0] == '\r' || l[0] == '\n')) {
            part_headers_done(c);
            return;
        }
        size_t k = kept;
        if (mm->pn + k > PHDR_CAP)
            k = PHDR_CAP - mm->pn;
        memcpy(mm->phdr + mm->pn, l, k);
        mm->pn += k;
        return;
    }
    if (!mm->att)
        return;
    size_t eol = kept >= 2 && l[kept - 2] == '\r' && l[kept - 1] == '\n' ? 2
                 : kept >= 1 && l[kept - 1] == '\n'                    ? 1 : 0;
    mm->raw += len;
    mm->last_eol = eol;
    if (mm->enc == 1) {
        for (size_t i = 0; i < kept; i++)
            if (isalnum((unsigned char)l[i]) || l[i] == '+' || l[i] == '/')
                mm->b64++;
    } else if (mm->enc == 2) {
        size_t e = kept - eol, i;
        uint64_t out = 0;
        for (i = 0; i < e; i++) {
            if (l[i] == '=' && i + 2 < e && hexval(l[i + 1]) >= 0 && hexval(l[i + 2]) >= 0) {
                out++;
                i += 2;
            } else if (l[i] == '=' && i + 1 == e) {
                eol = 0; /* a soft line break: the line end is not data */
                break;
            } else {
                out++;
            }
        }
        mm->qp += out + eol;
        mm->last_eol = eol;
    }
}

/* Message bytes as composed: counted, handed to the sink, parsed. */
static void msg_bytes(smtp_conn_t *c, const uint8_t *p, size_t n)
{
    struct smtp_txn *t = txn_at(c, c->cur);
    struct mime *mm = &c->mm;
    if (!t || !n)
        return;
    t->msg.size += n;
    if (c->sink.data && c->sink.data(c->sink.arg, t, p, n))
        c->stopped = 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (!mm->in_body && !mm->hdr)
            mm->in_body = 1; /* no memory for the header section: sizes only */
        if (!mm->in_body) {
            if (mm->hn < HDR_CAP)
                mm->hdr[mm->hn++] = (char)b;
            if (b != '\n')
                continue;
            /* the header section ends at an empty line */
            size_t hn = mm->hn;
            int empty = (hn >= 2 && mm->hdr[hn - 2] == '\n') ||
                        (hn >= 3 && mm->hdr[hn - 2] == '\r' && mm->hdr[hn - 3] == '\n') ||
                        (hn == 2 && mm->hdr[0] == '\r') || hn == 1;
            if (empty || hn >= HDR_CAP) {
                hdr_fields(mm->hdr, hn, msg_field, c);
                mm->in_body = 1;
            }
            continue;
        }
        if (mm->l.n < LINE_CAP)
            mm->l.b[mm->l.n++] = (char)b;
        else
            mm->lover++;
        if (b == '\n') {
            body_line(c, mm->l.b, mm->l.n, mm->l.n + (uint64_t)mm->lover);
            mm->l.n = 0;
            mm->lover = 0;
        }
    }
}

static void msg_begin(smtp_conn_t *c, struct smtp_txn *t)
{
    if (t->has_msg)
        return;
    t->has_msg = 1;
    t->msg.no = (int)++c->s.nmsg;
    memset(&c->mm.bnd, 0, sizeof c->mm.bnd);
    c->mm.in_body = 0;
    c->mm.hn = 0;
    /* the header section's buffer lives while a message is read: + 1 for
     * the NUL hdr_fields ends the last field with */
    if (!c->mm.hdr)
        c->mm.hdr = malloc(HDR_CAP + 1);
    c->mm.nb = 0;
    c->mm.in_phdr = 0;
    c->mm.pn = 0;
    c->mm.l.n = 0;
    c->mm.lover = 0;
    part_close(c);
    if (c->sink.begin)
        c->sink.begin(c->sink.arg, &c->s, t);
}

static void msg_end(smtp_conn_t *c, int complete)
{
    struct smtp_txn *t = txn_at(c, c->cur);
    if (!t || !t->has_msg)
        return;
    struct mime *mm = &c->mm;
    if (!mm->in_body && mm->hdr) /* headers only, or cut: what there is still counts */
        hdr_fields(mm->hdr, mm->hn, msg_field, c);
    mm->in_body = 1;
    free(mm->hdr);
    mm->hdr = NULL;
    if (mm->l.n)
        body_line(c, mm->l.b, mm->l.n, mm->l.n + (uint64_t)mm->lover);
    mm->l.n = 0;
    part_close(c);
    t->msg.complete = complete;
    if (c->sink.end)
        c->sink.end(c->sink.arg, &c->s, t);
}

/* ---- commands and replies ---- */

static void push(smtp_conn_t *c, enum cmd cmd, int txn, int rcpt)
{
    if (c->pn == PEND_CAP) { /* a reply lost long ago: forget the oldest */
        c->ph = (c->ph + 1) % PEND_CAP;
        c->pn--;
    }
    struct pend *p = &c->pend[(c->ph + c->pn++) % PEND_CAP];
    p->cmd = cmd;
    p->txn = txn;
    p->rcpt = rcpt;
}

static void txn_close(smtp_conn_t *c, int64_t ts)
{
    struct smtp_txn *t = txn_at(c, c->cur);
    if (t && !t->end)
        t->end = ts;
    c->cur = -1;
}

static int txn_open(smtp_conn_t *c, int64_t ts)
{
    txn_close(c, ts);
    struct smtp_session *s = &c->s;
    struct smtp_txn *nt = s->ntxn < SMTP_MAX_TXN
                              ? realloc(s->txn, (size_t)(s->ntxn + 1) * sizeof *nt) : NULL;
    if (!nt) { /* beyond the cap (or out of memory): parsed as the scratch one, counted */
        s->txn_more++;
        if (!c->scratch && !(c->scratch = malloc(sizeof *c->scratch)))
            return c->cur = -1;
        memset(c->scratch, 0, sizeof *c->scratch);
        c->scratch->start = ts;
        return c->cur = -2;
    }
    s->txn = nt;
    memset(&nt[s->ntxn], 0, sizeof *nt);
    nt[s->ntxn].start = ts;
    return c->cur = s->ntxn++;
}

static int verb_is(const char *l, size_t n, const char *v)
{
    size_t vl = strlen(v);
    return n >= vl && !strncasecmp(l, v, vl) && (n == vl || l[vl] == ' ' || l[vl] == '\t');
}

static void client_line(smtp_conn_t *c, char *l, size_t n, int64_t ts)
{
    struct smtp_session *s = &c->s;
    while (n && (l[n - 1] == '\r' || l[n - 1] == '\n'))
        l[--n] = 0;
    s->commands++;
    if (c->auth_expect) { /* a SASL response, not a command */
        c->auth_expect = 0;
        push(c, C_AUTH, -1, -1);
        return;
    }
    const char *arg = l;
    while (*arg && *arg != ' ')
        arg++;
    while (*arg == ' ')
        arg++;
    if (verb_is(l, n, "HELO") || verb_is(l, n, "EHLO")) {
        s->ehlo = toupper((unsigned char)l[0]) == 'E';
        copy_str(s->helo, sizeof s->helo, arg, strlen(arg));
        push(c, C_HELO, -1, -1);
    } else if (verb_is(l, n, "MAIL")) {
        int i = txn_open(c, ts);
        struct smtp_txn *t = txn_at(c, i);
        if (t && !strncasecmp(arg, "FROM:", 5))
            smtp_path(arg + 5, t->mail_from, sizeof t->mail_from);
        push(c, C_MAIL, i, -1);
    } else if (verb_is(l, n, "RCPT")) {
        if (c->cur == -1)
            txn_open(c, ts); /* the capture began after MAIL */
        struct smtp_txn *t = txn_at(c, c->cur);
        int r = -1;
        if (!t) {
            push(c, C_OTHER, -1, -1);
            return;
        }
        t->rcpt_total++;
        if (t->nrcpt < SMTP_MAX_RCPT) {
            r = t->nrcpt++;
            smtp_path(!strncasecmp(arg, "TO:", 3) ? arg + 3 : arg, t->rcpt[r].addr,
                      sizeof t->rcpt[r].addr);
        }
        push(c, C_RCPT, c->cur, r);
    } else if (verb_is(l, n, "DATA")) {
        if (c->cur == -1)
            txn_open(c, ts);
        if (txn_at(c, c->cur))
            txn_at(c, c->cur)->data = SMTP_DATA;
        c->data_pending = 1;
        push(c, C_DATA, c->cur, -1);
    } else if (verb_is(l, n, "BDAT")) {
        char *e;
        unsigned long long sz = strtoull(arg, &e, 10);
        if (e == arg) {
            push(c, C_OTHER, -1, -1);
            return;
        }
        while (*e == ' ')
            e++;
        int last = !strncasecmp(e, "LAST", 4);
        if (c->cur == -1)
            txn_open(c, ts);
        struct smtp_txn *t = txn_at(c, c->cur);
        if (t) {
            t->data = SMTP_BDAT;
            msg_begin(c, t);
        }
        c->mode = M_BDAT; /* its bytes are read past, kept or not */
        c->bdat_left = sz;
        c->bdat_last = last;
        push(c, last ? C_BDAT_LAST : C_BDAT, c->cur, -1);
        if (!sz && last) { /* BDAT 0 LAST: the message is complete now */
            c->mode = M_CMD;
            msg_end(c, 1);
        }
    } else if (verb_is(l, n, "STARTTLS")) {
        push(c, C_STARTTLS, -1, -1);
    } else if (verb_is(l, n, "RSET")) {
        txn_close(c, ts);
        push(c, C_RSET, -1, -1);
    } else if (verb_is(l, n, "AUTH")) {
        s->auth = 1;
        push(c, C_AUTH, -1, -1);
    } else {
        push(c, C_OTHER, -1, -1);
    }
}

static void reply_done(smtp_conn_t *c, int code, const char *text, int64_t ts)
{
    struct smtp_session *s = &c->s;
    s->replies++;
    if (!c->pn) {
        if (!c->got_banner) {
            c->got_banner = 1;
            s->banner_reply = code;
            copy_str(s->banner, sizeof s->banner, text, strlen(text));
        }
        return;
    }
    struct pend p = c->pend[c->ph];
    c->ph = (c->ph + 1) % PEND_CAP;
    c->pn--;
    c->got_banner = 1;
    struct smtp_txn *t = txn_at(c, p.txn);
    switch (p.cmd) {
    case C_MAIL:
        if (t)
            t->mail_reply = code;
        break;
    case C_RCPT:
        if (t && p.rcpt >= 0)
            t->rcpt[p.rcpt].reply = code;
        if (t && code >= 200 && code < 300)
            t->rcpt_accepted++;
        break;
    case C_DATA:
        if (t)
            t->data_reply = code;
        if (c->data_pending) {
            c->data_pending = 0;
            if (code == 354 && t) {
                c->mode = M_DATA;
                c->ds = D_LS;
                msg_begin(c, t);
            }
        }
        if (t && code != 354) { /* refused: this is the transaction's last word */
            t->final_reply = code;
            copy_str(t->final_text, sizeof t->final_text, text, strlen(text));
            t->end = ts;
        }
        break;
    case C_BDAT:
    case C_BDAT_LAST:
        if (t && !t->data_reply)
            t->data_reply = code;
        if (t && (p.cmd == C_BDAT_LAST || code >= 400)) {
            t->final_reply = code;
            copy_str(t->final_text, sizeof t->final_text, text, strlen(text));
            t->end = ts;
        }
        break;
    case C_DATAEND:
        if (t) {
            t->final_reply = code;
            copy_str(t->final_text, sizeof t->final_text, text, strlen(text));
            t->end = ts;
        }
        break;
    case C_STARTTLS:
        if (code == 220) {
            s->starttls = 1;
            s->tls_at = ts;
            c->encrypted = 1;
            c->mode = M_TLS;
        }
        break;
    case C_AUTH:
        if (code == 334)
            c->auth_expect = 1;
        break;
    default:
        break;
    }
}

static void server_line(smtp_conn_t *c, char *l, size_t n, int64_t ts)
{
    while (n && (l[n - 1] == '\r' || l[n - 1] == '\n'))
        l[--n] = 0;
    if (n < 3 || !isdigit((unsigned char)l[0]) || !isdigit((unsigned char)l[1]) ||
        !isdigit((unsigned char)l[2]))
        return; /* not a reply line: a lost start, or noise */
    int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (n > 3 && l[3] == '-') { /* more lines follow */
        c->reply_code = code;
        return;
    }
    c->reply_code = 0;
    reply_done(c, code, n > 4 ? l + 4 : "", ts);
}

/* Client bytes in DATA: dot-unstuffed into the message until ".CRLF".
 * Returns how many bytes of p it took. */
static size_t data_bytes(smtp_conn_t *c, const uint8_t *p, size_t n, int64_t ts)
{
    uint8_t out[2048];
    size_t on = 0, i;
    for (i = 0; i < n && c->mode == M_DATA; i++) {
        uint8_t b = p[i];
        if (on + 2 > sizeof out) {
            msg_bytes(c, out, on);
            on = 0;
        }
        switch (c->ds) {
        case D_LS:
            if (b == '.') {
                c->ds = D_DOT;
                continue;
            }
            break;
        case D_DOT:
            if (b == '\r') {
                c->ds = D_DOTCR;
                continue;
            }
            break; /* the stuffed dot is dropped */
        case D_DOTCR:
            if (b == '\n') { /* ".CRLF": the end */
                msg_bytes(c, out, on);
                on = 0;
                c->mode = M_CMD;
                msg_end(c, 1);
                push(c, C_DATAEND, c->cur, -1);
                (void)ts;
                continue;
            }
            out[on++] = '\r';
            c->ds = D_CR;
            break;
        default:
            break;
        }
        out[on++] = b;
        if (b == '\r')
            c->ds = D_CR;
        else if (b == '\n' && c->ds == D_CR)
            c->ds = D_LS;
        else
            c->ds = D_MID;
    }
    msg_bytes(c, out, on);
    return i;
}

static void line_add(struct line *l, int *over, uint8_t b)
{
    if (l->n < LINE_CAP)
        l->b[l->n++] = (char)b;
    else if (over)
        (*over)++;
}

static void client_bytes(smtp_conn_t *c, const uint8_t *p, size_t n, int64_t ts)
{
    size_t i = 0;
    if (c->data_pending && n) { /* data before DATA's reply: take it as the message */
        c->data_pending = 0;
        struct smtp_txn *t = txn_at(c, c->cur);
        if (t) {
            c->mode = M_DATA;
            c->ds = D_LS;
            msg_begin(c, t);
        }
    }
    while (i < n && !c->stopped) {
        if (c->mode == M_TLS)
            return;
        if (c->mode == M_DATA) {
            i += data_bytes(c, p + i, n - i, ts);
            continue;
        }
        if (c->mode == M_BDAT) {
            size_t k = n - i < c->bdat_left ? n - i : (size_t)c->bdat_left;
            msg_bytes(c, p + i, k);
            i += k;
            c->bdat_left -= k;
            if (!c->bdat_left) {
                c->mode = M_CMD;
                if (c->bdat_last)
                    msg_end(c, 1);
            }
            continue;
        }
        uint8_t b = p[i++];
        line_add(&c->cl, &c->cl_over, b);
        if (b == '\n') {
            c->cl.b[c->cl.n] = 0;
            client_line(c, c->cl.b, c->cl.n, ts);
            c->cl.n = 0;
            c->cl_over = 0;
        }
    }
}

static void server_bytes(smtp_conn_t *c, const uint8_t *p, size_t n, int64_t ts)
{
    for (size_t i = 0; i < n && !c->encrypted; i++) {
        line_add(&c->sl, NULL, p[i]);
        if (p[i] == '\n') {
            c->sl.b[c->sl.n] = 0;
            server_line(c, c->sl.b, c->sl.n, ts);
            c->sl.n = 0;
        }
    }
}

static void seen(smtp_conn_t *c, int64_t ts)
{
    if (c->s.start == INT64_MIN || ts < c->s.start)
        c->s.start = ts;
    if (ts > c->s.end)
        c->s.end = ts;
}

void smtp_bytes(smtp_conn_t *c, int dir, const uint8_t *p, size_t n, int64_t ts)
{
    if (c->stopped || !n)
        return;
    seen(c, ts);
    if (dir == SMTP_CLIENT)
        client_bytes(c, p, n, ts);
    else
        server_bytes(c, p, n, ts);
}

void smtp_gap(smtp_conn_t *c, int dir, uint64_t len, int64_t ts)
{
    if (c->stopped || !len)
        return;
    seen(c, ts);
    c->s.missing[dir == SMTP_CLIENT ? 0 : 1] += len;
    if (dir != SMTP_CLIENT) {
        c->sl.n = 0; /* a reply cut in two is no reply */
        return;
    }
    struct smtp_txn *t = txn_at(c, c->cur);
    if (c->mode == M_DATA) {
        if (t)
            t->msg.missing += len;
        c->ds = D_MID; /* where the lost bytes left us is unknown */
        return;
    }
    if (c->mode == M_BDAT) {
        uint64_t k = len < c->bdat_left ? len : c->bdat_left;
        if (t)
            t->msg.missing += k;
        c->bdat_left -= k;
        len -= k;
        if (!c->bdat_left) {
            c->mode = M_CMD;
            if (c->bdat_last)
                msg_end(c, 1);
        }
        if (!len)
            return;
    }
    c->cl.n = 0;
}

void smtp_end(smtp_conn_t *c, int64_t ts)
{
    if (c->mode == M_DATA || c->mode == M_BDAT) {
        c->mode = M_CMD;
        msg_end(c, 0);
    }
    txn_close(c, ts);
}
