/* filter.c -- turn a BPF filter expression into an index plan (see filter.h).
 *
 * A small recursive-descent mirror of libpcap's grammar (grammar.y.in and
 * scanner.l, pcap-filter(7)). It never rejects anything: pcap_compile() is the
 * judge. Its only duty is that the plan's upper bound is a superset of what
 * BPF accepts for every filter pcap_compile() accepts, so:
 *
 *  - a syntax error anywhere, or anything we cannot tokenise or consume with
 *    certainty, makes the WHOLE result a single QF_ANY;
 *  - a primitive we understand but cannot index becomes a QF_ANY leaf;
 *  - qualifier inheritance follows libpcap exactly: a bare id after and/or
 *    takes the qualifiers of the previous term; a parenthesised expression
 *    passes on the qualifiers that were in force BEFORE its '(' (libpcap's
 *    `paren expr ')'` rule); protocol names, relations and "other"
 *    primitives leave no qualifiers (pcap rejects a bare id after them; we
 *    plan it as `host`, which is harmless);
 *  - after `vlan`, `mpls`, `pppoes`, `geneve`, `vxlan` or `batadv`, which
 *    shift libpcap's offsets for the rest of the expression, primitives
 *    stay planned only where BPF runs them for packets that matched that
 *    keyword: the whole expression implies it, or they are in the right
 *    operand of an `and` whose left one does (`(F) or (vlan and (F))`);
 *    see shift_limit() and shift_unsafe();
 *  - when a primitive whose BPF code may abort the program (a packet load
 *    out of bounds, an ancillary load) could leave the plan with a non-empty
 *    lower bound, the root becomes (and <plan> any); see qf_parse();
 *  - a relation such as `tcp[13] & 2 != 0` is planned as
 *    (and <protocol leaves> any): BPF ANDs a protocol check into every
 *    `proto[...]` load, so the leaves bound it from above, while the `any`
 *    keeps its lower bound empty -- the negation `not tcp[13]&2!=0` matches
 *    TCP packets too, so planning it as plain `tcp` would lose packets.
 *
 * Limits: nesting of parentheses / `not` / arithmetic deeper than
 * QF_MAX_NEST, or a result tree deeper than QF_MAX_TREE (long chains that
 * alternate `and` and `or`), gives a single QF_ANY. Runs of the same operator
 * (`a or b or c ...`) are built as balanced trees, so long lists stay shallow.
 */
#include "query/filter.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rw.h"
#include "index/parse.h"

#define QF_MAX_NEST 200
#define QF_MAX_TREE 400

/* Value lengths per term kind; kept here so the query module does not depend
 * on index/parse.c (must agree with idx_term_len()). */
static const uint8_t qf_kind_len[IDX_T_MAX] = {
    [IDX_T_IP4] = 4, [IDX_T_IP6] = 16, [IDX_T_PORT] = 2, [IDX_T_PROTO4] = 1,
    [IDX_T_PROTO6] = 1, [IDX_T_L3] = 2, [IDX_T_VLAN] = 2, [IDX_T_FLOW] = 8,
};

/* ---- tokens ------------------------------------------------------------ */

enum tk {
    TK_END,
    TK_WORD,
    TK_LP,
    TK_RP,
    TK_LB,
    TK_RB,
    TK_COLON,
    TK_AND,
    TK_OR,
    TK_NOT,
    TK_ARITH, /* op: + - * / % & | ^, 'L' <<, 'R' >> */
    TK_REL,   /* op: '>' '<' '=' ('=' and '=='), 'G' >=, 'E' <=, 'N' != */
};

enum wc {
    WC_KW,     /* keyword: kw */
    WC_NUM,    /* number or a scanner name for one (tcpflags, icmp-echo): num */
    WC_BADNUM, /* a number pcap's scanner rejects (080, overflow) */
    WC_HID,    /* dotted IPv4, 2..4 parts */
    WC_HID6,   /* IPv6 address */
    WC_EID,    /* MAC address (or pcap's "bogus ethernet address") */
    WC_AID,    /* $xx ARCnet address */
    WC_ID,     /* any other name, including \escaped ones */
};

/* Keywords. Protocol names the index knows come first (they index the bit
 * mask of protocols a relation loads from); the rest of the protocol names
 * are K_PNOTHER. */
enum kw {
    K_IP,
    K_IP6,
    K_ARP,
    K_RARP,
    K_TCP,
    K_UDP,
    K_SCTP,
    K_ICMP,
    K_ICMP6,
    K_IGMP,
    K_IGRP,
    K_PIM,
    K_VRRP,
    K_CARP,
    K_AH,
    K_ESP,
    K_PNOTHER, /* link ether wlan decnet iso stp ... : never indexed */
    K_SRC,
    K_DST,
    K_WDIR, /* addr1..addr4 ra ta */
    K_HOST,
    K_NET,
    K_PORT,
    K_PORTRANGE,
    K_PROTO,
    K_PROTOCHAIN,
    K_GATEWAY,
    K_MASK,
    K_TYPE,
    K_SUBTYPE,
    K_DIR,
    K_LESS,
    K_GREATER,
    K_BYTE,
    K_BROADCAST,
    K_MULTICAST,
    K_LEN,
    K_BARE,   /* takes no argument: inbound outbound pppoed atm/mtp2 types */
    K_IFINDEX,
    K_VLAN,
    K_OPTNUM, /* optional pnum: mpls pppoes geneve vxlan */
    K_BATADV,
    K_LLC,
    K_FIELD,  /* vpi vci sio opc dpc sls hsio hopc hdpc hsls + value */
    K_PFID,   /* on ifname rset ruleset action + ID */
    K_RNR,    /* rnr rulenum + NUM (also `llc rnr`) */
    K_PFNUM,  /* srnr subrulenum + NUM */
    K_REASON, /* reason + NUM or ID */
};

#define K_NONE 0xff /* no protocol qualifier */

struct kwent {
    const char *name;
    uint8_t kw;
};

static const struct kwent qf_keywords[] = {
    {"ip", K_IP}, {"ip6", K_IP6}, {"arp", K_ARP}, {"rarp", K_RARP},
    {"tcp", K_TCP}, {"udp", K_UDP}, {"sctp", K_SCTP}, {"icmp", K_ICMP},
    {"icmp6", K_ICMP6}, {"igmp", K_IGMP}, {"igrp", K_IGRP}, {"pim", K_PIM},
    {"vrrp", K_VRRP}, {"carp", K_CARP}, {"ah", K_AH}, {"esp", K_ESP},
    {"link", K_PNOTHER}, {"ether", K_PNOTHER}, {"ppp", K_PNOTHER},
    {"slip", K_PNOTHER}, {"fddi", K_PNOTHER}, {"tr", K_PNOTHER},
    {"wlan", K_PNOTHER}, {"radio", K_PNOTHER}, {"atalk", K_PNOTHER},
    {"aarp", K_PNOTHER}, {"decnet", K_PNOTHER}, {"lat", K_PNOTHER},
    {"sca", K_PNOTHER}, {"moprc", K_PNOTHER}, {"mopdl", K_PNOTHER},
    {"iso", K_PNOTHER}, {"esis", K_PNOTHER}, {"es-is", K_PNOTHER},
    {"isis", K_PNOTHER}, {"is-is", K_PNOTHER}, {"l1", K_PNOTHER},
    {"l2", K_PNOTHER}, {"iih", K_PNOTHER}, {"lsp", K_PNOTHER},
    {"snp", K_PNOTHER}, {"csnp", K_PNOTHER}, {"psnp", K_PNOTHER},
    {"clnp", K_PNOTHER}, {"stp", K_PNOTHER}, {"ipx", K_PNOTHER},
    {"netbeui", K_PNOTHER},
    {"src", K_SRC}, {"dst", K_DST},
    {"address1", K_WDIR}, {"addr1", K_WDIR}, {"address2", K_WDIR},
    {"addr2", K_WDIR}, {"address3", K_WDIR}, {"addr3", K_WDIR},
    {"address4", K_WDIR}, {"addr4", K_WDIR}, {"ra", K_WDIR}, {"ta", K_WDIR},
    {"host", K_HOST}, {"net", K_NET}, {"port", K_PORT},
    {"portrange", K_PORTRANGE}, {"proto", K_PROTO},
    {"protochain", K_PROTOCHAIN}, {"gateway", K_GATEWAY}, {"mask", K_MASK},
    {"type", K_TYPE}, {"subtype", K_SUBTYPE}, {"direction", K_DIR},
    {"dir", K_DIR}, {"less", K_LESS}, {"greater", K_GREATER},
    {"byte", K_BYTE}, {"broadcast", K_BROADCAST}, {"multicast", K_MULTICAST},
    {"len", K_LEN}, {"length", K_LEN},
    {"inbound", K_BARE}, {"outbound", K_BARE}, {"pppoed", K_BARE},
    {"lane", K_BARE}, {"metac", K_BARE}, {"bcc", K_BARE}, {"oam", K_BARE},
    {"oamf4", K_BARE}, {"oamf4ec", K_BARE}, {"oamf4sc", K_BARE},
    {"sc", K_BARE}, {"ilmic", K_BARE}, {"connectmsg", K_BARE},
    {"metaconnect", K_BARE}, {"fisu", K_BARE}, {"lssu", K_BARE},
    {"lsu", K_BARE}, {"msu", K_BARE}, {"hfisu", K_BARE}, {"hlssu", K_BARE},
    {"hmsu", K_BARE},
    {"ifindex", K_IFINDEX}, {"vlan", K_VLAN}, {"mpls", K_OPTNUM},
    {"pppoes", K_OPTNUM}, {"geneve", K_OPTNUM}, {"vxlan", K_OPTNUM},
    {"batadv", K_BATADV}, {"llc", K_LLC},
    {"vpi", K_FIELD}, {"vci", K_FIELD}, {"sio", K_FIELD}, {"opc", K_FIELD},
    {"dpc", K_FIELD}, {"sls", K_FIELD}, {"hsio", K_FIELD}, {"hopc", K_FIELD},
    {"hdpc", K_FIELD}, {"hsls", K_FIELD},
    {"on", K_PFID}, {"ifname", K_PFID}, {"rset", K_PFID},
    {"ruleset", K_PFID}, {"action", K_PFID}, {"rnr", K_RNR},
    {"rulenum", K_RNR}, {"srnr", K_PFNUM}, {"subrulenum", K_PFNUM},
    {"reason", K_REASON},
};

/* Names libpcap's scanner turns into numbers. */
struct nument {
    const char *name;
    uint32_t v;
};

static const struct nument qf_numnames[] = {
    {"icmptype", 0}, {"icmpcode", 1}, {"icmp-echoreply", 0},
    {"icmp-unreach", 3}, {"icmp-sourcequench", 4}, {"icmp-redirect", 5},
    {"icmp-echo", 8}, {"icmp-routeradvert", 9}, {"icmp-routersolicit", 10},
    {"icmp-timxceed", 11}, {"icmp-paramprob", 12}, {"icmp-tstamp", 13},
    {"icmp-tstampreply", 14}, {"icmp-ireq", 15}, {"icmp-ireqreply", 16},
    {"icmp-maskreq", 17}, {"icmp-maskreply", 18},
    {"icmp6type", 0}, {"icmp6code", 1},
    {"icmp6-destinationunreach", 1}, {"icmp6-packettoobig", 2},
    {"icmp6-timeexceeded", 3}, {"icmp6-parameterproblem", 4},
    {"icmp6-echo", 128}, {"icmp6-echoreply", 129},
    {"icmp6-multicastlistenerquery", 130},
    {"icmp6-multicastlistenerreportv1", 131},
    {"icmp6-multicastlistenerdone", 132}, {"icmp6-routersolicit", 133},
    {"icmp6-routeradvert", 134}, {"icmp6-neighborsolicit", 135},
    {"icmp6-neighboradvert", 136}, {"icmp6-redirect", 137},
    {"icmp6-routerrenum", 138}, {"icmp6-nodeinformationquery", 139},
    {"icmp6-nodeinformationresponse", 140},
    {"icmp6-ineighbordiscoverysolicit", 141},
    {"icmp6-ineighbordiscoveryadvert", 142},
    {"icmp6-multicastlistenerreportv2", 143},
    {"icmp6-homeagentdiscoveryrequest", 144},
    {"icmp6-homeagentdiscoveryreply", 145},
    {"icmp6-mobileprefixsolicit", 146}, {"icmp6-mobileprefixadvert", 147},
    {"icmp6-certpathsolicit", 148}, {"icmp6-certpathadvert", 149},
    {"icmp6-multicastrouteradvert", 151},
    {"icmp6-multicastroutersolicit", 152},
    {"icmp6-multicastrouterterm", 153},
    {"tcpflags", 13}, {"tcp-fin", 0x01}, {"tcp-syn", 0x02}, {"tcp-rst", 0x04},
    {"tcp-push", 0x08}, {"tcp-ack", 0x10}, {"tcp-urg", 0x20},
    {"tcp-ece", 0x40}, {"tcp-cwr", 0x80},
};

/* IP protocol names for `proto \name`. libpcap asks getprotobyname(); we only
 * trust the names whose numbers are the same everywhere; others plan as ANY. */
static const struct nument qf_protonames[] = {
    {"icmp", 1}, {"igmp", 2}, {"tcp", 6}, {"udp", 17}, {"gre", 47},
    {"esp", 50}, {"ah", 51}, {"ipv6-icmp", 58}, {"pim", 103}, {"vrrp", 112},
    {"sctp", 132},
};

struct tok {
    uint8_t type; /* enum tk */
    uint8_t wc;   /* enum wc, for TK_WORD */
    uint8_t kw;   /* enum kw, for WC_KW */
    int op;       /* TK_ARITH, TK_REL */
    uint32_t num; /* WC_NUM */
    const char *s; /* word text, not NUL-terminated */
    int len;
};

static int is_alnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int all_hex(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (rw_hexval((unsigned char)s[i]) < 0)
            return 0;
    return n > 0;
}

static int all_dec(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n > 0;
}

/* Does s[0..n) match scanner.l's N: decimal digits or 0x + hex digits? */
static int is_scanner_num(const char *s, int n)
{
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        return all_hex(s + 2, n - 2);
    return all_dec(s, n);
}

/* libpcap's stoulen(): 0x hex, leading 0 octal, else decimal, 32 bits. */
static int scan_num(const char *s, int n, uint32_t *out)
{
    uint64_t v = 0;
    int base = 10, i = 0;

    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    } else if (n > 1 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    for (; i < n; i++) {
        int d = rw_hexval((unsigned char)s[i]);
        if (d < 0 || d >= base)
            return -1;
        v = v * base + d;
        if (v > 0xffffffffu)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static void classify_word(struct tok *t)
{
    const char *s = t->s;
    int n = t->len;
    char tmp[64];

    t->type = TK_WORD;
    for (size_t i = 0; i < sizeof(qf_keywords) / sizeof(qf_keywords[0]); i++) {
        if ((int)strlen(qf_keywords[i].name) == n && memcmp(qf_keywords[i].name, s, n) == 0) {
            t->wc = WC_KW;
            t->kw = qf_keywords[i].kw;
            return;
        }
    }
    if ((n == 3 && memcmp(s, "and", 3) == 0)) {
        t->type = TK_AND;
        return;
    }
    if ((n == 2 && memcmp(s, "or", 2) == 0)) {
        t->type = TK_OR;
        return;
    }
    if ((n == 3 && memcmp(s, "not", 3) == 0)) {
        t->type = TK_NOT;
        return;
    }
    for (size_t i = 0; i < sizeof(qf_numnames) / sizeof(qf_numnames[0]); i++) {
        if ((int)strlen(qf_numnames[i].name) == n && memcmp(qf_numnames[i].name, s, n) == 0) {
            t->wc = WC_NUM;
            t->num = qf_numnames[i].v;
            return;
        }
    }
    if (memchr(s, ':', n)) {
        struct in6_addr a;
        t->wc = WC_EID;
        if (n < (int)sizeof(tmp)) {
            memcpy(tmp, s, n);
            tmp[n] = 0;
            if (inet_pton(AF_INET6, tmp, &a) == 1)
                t->wc = WC_HID6;
        }
        return;
    }
    if (n == 12 && all_hex(s, n)) { /* scanner.l's MAC {B2}{3} wins over N */
        t->wc = WC_EID;
        return;
    }
    if (is_scanner_num(s, n)) {
        t->wc = scan_num(s, n, &t->num) == 0 ? WC_NUM : WC_BADNUM;
        return;
    }
    /* HID: 2..4 dot-separated scanner numbers. */
    int parts = 0, start = 0, ok = 1;
    for (int i = 0; i <= n && ok; i++) {
        if (i == n || s[i] == '.') {
            ok = is_scanner_num(s + start, i - start);
            parts++;
            start = i + 1;
        }
    }
    t->wc = (ok && parts >= 2 && parts <= 4) ? WC_HID : WC_ID;
}

/* Split expr into tokens; returns the count (the last is TK_END), 0 when the
 * scanner would reject the text, -1 when out of memory. *out is malloc'd. */
static int lex(const char *s, struct tok **out)
{
    size_t cap = 16, nt = 0;
    struct tok *t = malloc(cap * sizeof(*t));
    int brackets = 0;

    if (!t)
        return -1;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        if (nt + 1 >= cap) {
            struct tok *nt2;
            if (cap > (size_t)1 << 28)
                goto bad;
            nt2 = realloc(t, cap * 2 * sizeof(*t));
            if (!nt2) {
                free(t);
                return -1;
            }
            t = nt2;
            cap *= 2;
        }
        struct tok *k = &t[nt];
        memset(k, 0, sizeof(*k));
        if (!*s) {
            k->type = TK_END;
            nt++;
            break;
        }
        unsigned char c = (unsigned char)*s;
        if (is_alnum(c) || (c == ':' && brackets == 0)) {
            /* scanner.l: ID is [A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?;
             * addresses also take ':'. Inside [] a ':' separates. */
            const char *e = s;
            while (is_alnum((unsigned char)*e) || *e == '-' || *e == '_' || *e == '.' ||
                   (*e == ':' && brackets == 0))
                e++;
            while (e > s + 1 && (e[-1] == '-' || e[-1] == '_'))
                e--;
            k->s = s;
            k->len = (int)(e - s);
            classify_word(k);
            s = e;
        } else if (c == '\\') {
            const char *e = s + 1;
            while (*e && *e != ' ' && *e != '!' && *e != '(' && *e != ')' && *e != '\n' &&
                   *e != '\t')
                e++;
            if (e == s + 1)
                goto bad;
            k->type = TK_WORD;
            k->wc = WC_ID;
            k->s = s + 1;
            k->len = (int)(e - s - 1);
            s = e;
        } else if (c == '$') {
            int n = 0;
            while (n < 2 && rw_hexval((unsigned char)s[1 + n]) >= 0)
                n++;
            if (n == 0)
                goto bad;
            k->type = TK_WORD;
            k->wc = WC_AID;
            k->s = s;
            k->len = 1 + n;
            s += 1 + n;
        } else {
            char d = s[1];
            int two = 1;
            if (c == '&' && d == '&')
                k->type = TK_AND;
            else if (c == '|' && d == '|')
                k->type = TK_OR;
            else if (c == '!' && d == '=')
                k->type = TK_REL, k->op = 'N';
            else if (c == '>' && d == '=')
                k->type = TK_REL, k->op = 'G';
            else if (c == '<' && d == '=')
                k->type = TK_REL, k->op = 'E';
            else if (c == '=' && d == '=')
                k->type = TK_REL, k->op = '=';
            else if (c == '<' && d == '<')
                k->type = TK_ARITH, k->op = 'L';
            else if (c == '>' && d == '>')
                k->type = TK_ARITH, k->op = 'R';
            else {
                two = 0;
                switch (c) {
                case '!': k->type = TK_NOT; break;
                case '(': k->type = TK_LP; break;
                case ')': k->type = TK_RP; break;
                case '[': k->type = TK_LB; brackets++; break;
                case ']': k->type = TK_RB; if (brackets > 0) brackets--; break;
                case ':': k->type = TK_COLON; break;
                case '>': case '<': case '=': k->type = TK_REL; k->op = c; break;
                case '+': case '-': case '*': case '/': case '%': case '&': case '|':
                case '^':
                    k->type = TK_ARITH;
                    k->op = c;
                    break;
                default: goto bad;
                }
            }
            s += two ? 2 : 1;
        }
        nt++;
    }
    *out = t;
    return (int)nt;
bad:
    free(t);
    return 0;
}

/* ---- nodes ------------------------------------------------------------- */

#define QF_MAX_SHIFT 16

struct parser {
    const struct tok *t;
    int pos;
    int depth;
    int fail; /* syntax error or too deep: the whole result is QF_ANY */
    int oom;
    /* Offset-shifting keywords (vlan, mpls, pppoes, geneve, vxlan, batadv)
     * seen: their nodes and token positions, for the check in qf_parse(). */
    const struct qf_node *shift[QF_MAX_SHIFT];
    int shift_pos[QF_MAX_SHIFT];
    int nshift;
    int first_shift_pos;
    /* Second pass: primitives starting after this token plan as ANY. */
    int any_after;
    /* First pass: every primitive's node and first token, in the order they
     * are made (prim_cap of them at most). Second pass: unsafe[i] says
     * that the i-th primitive made plans as ANY. */
    const struct qf_node **prim;
    int *prim_pos;
    int nprim, prim_cap;
    const uint8_t *unsafe;
    /* A primitive whose BPF code can abort the whole program (see qf_parse). */
    int may_abort;
};

/* Qualifiers in force for a bare id (libpcap's struct qual). */
enum { D_DEF, D_SRC, D_DST, D_OR, D_AND, D_WLAN };
enum { A_DEF, A_HOST, A_NET, A_PORT, A_PORTRANGE, A_PROTO, A_PROTOCHAIN, A_GATEWAY };

struct qual {
    uint8_t valid; /* 0: libpcap's qerr (after a protocol name, relation...) */
    uint8_t proto; /* enum kw of a protocol name, or K_NONE */
    uint8_t dir;
    uint8_t addr;
};

static struct qf_node *mk(struct parser *p, enum qf_op op)
{
    struct qf_node *n = calloc(1, sizeof(*n));
    if (!n)
        p->oom = 1;
    else
        n->op = op;
    return n;
}

static struct qf_node *mk_any(struct parser *p)
{
    return mk(p, QF_ANY);
}

/* Combine two subtrees; takes ownership of both, frees them on failure. */
static struct qf_node *mk2(struct parser *p, enum qf_op op, struct qf_node *a, struct qf_node *b)
{
    struct qf_node *n = NULL;
    if (a && b)
        n = mk(p, op);
    if (!n) {
        qf_free(a);
        qf_free(b);
        return NULL;
    }
    n->a = a;
    n->b = b;
    return n;
}

static struct qf_node *mk_not(struct parser *p, struct qf_node *a)
{
    struct qf_node *n = a ? mk(p, QF_NOT) : NULL;
    if (!n) {
        qf_free(a);
        return NULL;
    }
    n->a = a;
    return n;
}

/* A term over [lo, hi], both kind-length big-endian byte strings. */
static struct qf_node *mk_term(struct parser *p, int kind, const uint8_t *lo, const uint8_t *hi,
                               int exact)
{
    struct qf_node *n = mk(p, QF_TERM);
    if (!n)
        return NULL;
    n->kind = (uint8_t)kind;
    n->len = qf_kind_len[kind];
    n->exact = exact ? 1 : 0;
    memcpy(n->lo, lo, n->len);
    memcpy(n->hi, hi, n->len);
    return n;
}

static struct qf_node *term_num(struct parser *p, int kind, uint32_t lo, uint32_t hi, int exact)
{
    uint8_t l[4], h[4];
    int len = qf_kind_len[kind];
    rw_put_be32(l, lo);
    rw_put_be32(h, hi);
    return mk_term(p, kind, l + 4 - len, h + 4 - len, exact);
}

static struct qf_node *l3_term(struct parser *p, uint16_t ethertype)
{
    return term_num(p, IDX_T_L3, ethertype, ethertype, 1);
}

/* The plan for a protocol name used alone (libpcap's gen_proto_abbrev()),
 * or NULL-with-ANY for names the index does not carry. */
static struct qf_node *proto_abbrev(struct parser *p, int kw)
{
    int v4 = -1, v6 = -1;

    switch (kw) {
    case K_IP: return l3_term(p, 0x0800);
    case K_IP6: return l3_term(p, 0x86dd);
    case K_ARP: return l3_term(p, 0x0806);
    case K_RARP: return l3_term(p, 0x8035);
    case K_TCP: v4 = v6 = 6; break;
    case K_UDP: v4 = v6 = 17; break;
    case K_SCTP: v4 = v6 = 132; break;
    case K_ICMP: v4 = 1; break;
    case K_ICMP6: v6 = 58; break;
    case K_IGMP: v4 = 2; break;
    case K_IGRP: v4 = 9; break;
    case K_PIM: v4 = v6 = 103; break;
    case K_VRRP: v4 = 112; break;
    case K_CARP: v4 = 112; break;
    case K_AH: v4 = v6 = 51; break;
    case K_ESP: v4 = v6 = 50; break;
    default: return mk_any(p);
    }
    if (v6 < 0)
        return term_num(p, IDX_T_PROTO4, v4, v4, 1);
    if (v4 < 0)
        return term_num(p, IDX_T_PROTO6, v6, v6, 1);
    return mk2(p, QF_OR, term_num(p, IDX_T_PROTO4, v4, v4, 1),
               term_num(p, IDX_T_PROTO6, v6, v6, 1));
}

static int dir_exact(const struct qual *q)
{
    return q->dir == D_DEF || q->dir == D_OR;
}

/* `[proto] [dir] host|net A/mask` for IPv4 (libpcap's gen_host()). */
static struct qf_node *plan_addr4(struct parser *p, const struct qual *q, uint32_t v, uint32_t mask)
{
    uint16_t et;

    if (q->dir == D_WLAN || (q->addr != A_DEF && q->addr != A_HOST && q->addr != A_NET))
        return mk_any(p);
    switch (q->proto) {
    case K_NONE: et = 0; break; /* ip, arp and rarp: all in the IPv4 postings */
    case K_IP: et = 0x0800; break;
    case K_ARP: et = 0x0806; break;
    case K_RARP: et = 0x8035; break;
    default: return mk_any(p);
    }
    struct qf_node *t = term_num(p, IDX_T_IP4, v & mask, v | ~mask, dir_exact(q));
    return et ? mk2(p, QF_AND, l3_term(p, et), t) : t;
}

static struct qf_node *plan_addr6(struct parser *p, const struct qual *q, const uint8_t *a,
                                  int masklen)
{
    uint8_t lo[16], hi[16];

    if (q->dir == D_WLAN || masklen < 0 || masklen > 128)
        return mk_any(p);
    if (q->addr == A_NET)
        ;
    else if ((q->addr == A_DEF || q->addr == A_HOST) && masklen == 128)
        ;
    else
        return mk_any(p);
    if (q->proto != K_NONE && q->proto != K_IP6)
        return mk_any(p);
    for (int i = 0; i < 16; i++) {
        int bits = masklen - 8 * i;
        uint8_t m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        lo[i] = a[i] & m;
        hi[i] = a[i] | (uint8_t)~m;
    }
    struct qf_node *t = mk_term(p, IDX_T_IP6, lo, hi, dir_exact(q));
    return q->proto == K_IP6 ? mk2(p, QF_AND, l3_term(p, 0x86dd), t) : t;
}

/* `[tcp|udp|sctp] [dir] port|portrange lo[-hi]` (gen_port(), gen_portrange()). */
static struct qf_node *plan_port(struct parser *p, const struct qual *q, uint32_t lo, uint32_t hi)
{
    struct qf_node *l;

    if (q->dir == D_WLAN || lo > 65535 || hi > 65535)
        return mk_any(p);
    if (lo > hi) {
        uint32_t x = lo;
        lo = hi;
        hi = x;
    }
    switch (q->proto) {
    case K_NONE: l = NULL; break;
    case K_TCP: case K_UDP: case K_SCTP: case K_IP: case K_IP6:
        l = proto_abbrev(p, q->proto);
        if (!l)
            return NULL;
        break;
    default: return mk_any(p);
    }
    struct qf_node *t = term_num(p, IDX_T_PORT, lo, hi, dir_exact(q));
    return l ? mk2(p, QF_AND, l, t) : t;
}

/* `[ip|ip6] proto N` (gen_proto()). */
static struct qf_node *plan_proto(struct parser *p, const struct qual *q, uint32_t v)
{
    if (v > 255 || q->dir != D_DEF)
        return mk_any(p);
    switch (q->proto) {
    case K_NONE:
        return mk2(p, QF_OR, term_num(p, IDX_T_PROTO4, v, v, 1),
                   term_num(p, IDX_T_PROTO6, v, v, 1));
    case K_IP: return term_num(p, IDX_T_PROTO4, v, v, 1);
    case K_IP6: return term_num(p, IDX_T_PROTO6, v, v, 1);
    default: return mk_any(p);
    }
}

/* A bare number (libpcap's gen_ncode() with s == NULL). */
static struct qf_node *plan_num(struct parser *p, const struct qual *q, uint32_t v)
{
    uint32_t mask = 0xffffffffu;

    switch (q->addr) {
    case A_DEF:
    case A_HOST:
        return plan_addr4(p, q, v, mask);
    case A_NET: /* "Promote short net number": net 10 is 10.0.0.0/8 */
        while (v && (v & 0xff000000u) == 0) {
            v <<= 8;
            mask <<= 8;
        }
        return plan_addr4(p, q, v, mask);
    case A_PORT:
    case A_PORTRANGE:
        return plan_port(p, q, v, v);
    case A_PROTO:
        return plan_proto(p, q, v);
    default:
        return mk_any(p);
    }
}

/* libpcap's __pcap_atoin(): decimal dotted parts; returns bits (8..32) or -1. */
static int atoin(const struct tok *t, uint32_t *v)
{
    int bits = 0;
    uint32_t part = 0, acc = 0;
    int digits = 0;

    for (int i = 0; i <= t->len; i++) {
        if (i == t->len || t->s[i] == '.') {
            if (!digits || part > 255)
                return -1;
            acc = acc << 8 | part;
            bits += 8;
            part = 0;
            digits = 0;
        } else if (t->s[i] >= '0' && t->s[i] <= '9') {
            if (part > 255)
                return -1;
            part = part * 10 + (uint32_t)(t->s[i] - '0');
            digits++;
        } else {
            return -1;
        }
    }
    if (bits > 32)
        return -1;
    *v = acc;
    return bits;
}

static uint32_t prefix_mask(int len)
{
    return len <= 0 ? 0 : len >= 32 ? 0xffffffffu : 0xffffffffu << (32 - len);
}

/* HID, HID/len (len >= 0) or HID mask HID (m != NULL) (gen_ncode, gen_mcode). */
static struct qf_node *plan_hid(struct parser *p, const struct qual *q, const struct tok *t,
                                int masklen, const struct tok *m)
{
    uint32_t v, mv;
    int vlen = atoin(t, &v);

    if (vlen < 0)
        return mk_any(p);
    v <<= 32 - vlen; /* "Promote short ipaddr": host 10.1 is 10.1.0.0/16 */
    if (masklen < 0 && !m)
        return plan_addr4(p, q, v, prefix_mask(vlen));
    if (q->addr != A_NET) /* "Mask syntax for networks only" */
        return mk_any(p);
    if (m) {
        int mlen = atoin(m, &mv);
        if (mlen < 0)
            return mk_any(p);
        mv <<= 32 - mlen;
        uint32_t inv = ~mv;
        if (inv & (inv + 1)) /* not contiguous: not a range */
            return mk_any(p);
        return plan_addr4(p, q, v, mv);
    }
    if (masklen > 32)
        return mk_any(p);
    return plan_addr4(p, q, v, prefix_mask(masklen));
}

static int lookup_num(const struct nument *tab, size_t n, const struct tok *t, uint32_t *v)
{
    for (size_t i = 0; i < n; i++) {
        if ((int)strlen(tab[i].name) == t->len && memcmp(tab[i].name, t->s, t->len) == 0) {
            *v = tab[i].v;
            return 1;
        }
    }
    return 0;
}

/* A decimal port in [s, s+n) (libpcap reads portrange bounds as decimal). */
static int dec_port(const char *s, int n, uint32_t *v)
{
    uint32_t x = 0;
    if (!all_dec(s, n) || n > 5)
        return 0;
    for (int i = 0; i < n; i++)
        x = x * 10 + (uint32_t)(s[i] - '0');
    *v = x;
    return x <= 65535;
}

/* A name (libpcap's gen_scode()): host, net and service names need lookups
 * we do not do, so only portrange "a-b" and protocol names are planned. */
static struct qf_node *plan_name(struct parser *p, const struct qual *q, const struct tok *t)
{
    uint32_t lo, hi, v;

    if (q->addr == A_PORTRANGE) {
        const char *dash = memchr(t->s, '-', t->len);
        if (dash && dec_port(t->s, (int)(dash - t->s), &lo) &&
            dec_port(dash + 1, (int)(t->s + t->len - dash - 1), &hi))
            return plan_port(p, q, lo, hi);
        return mk_any(p);
    }
    if (q->addr == A_PROTO &&
        lookup_num(qf_protonames, sizeof(qf_protonames) / sizeof(qf_protonames[0]), t, &v))
        return plan_proto(p, q, v);
    return mk_any(p);
}

/* ---- parser ------------------------------------------------------------ */

static const struct tok *cur(const struct parser *p)
{
    return &p->t[p->pos];
}

/* Token i ahead; TK_END is sticky so lookahead never runs past the end. */
static const struct tok *peek(const struct parser *p, int i)
{
    int k = p->pos;
    while (i-- > 0 && p->t[k].type != TK_END)
        k++;
    return &p->t[k];
}

static void adv(struct parser *p)
{
    if (p->t[p->pos].type != TK_END)
        p->pos++;
}

static int is_kw(const struct tok *t, int kw)
{
    return t->type == TK_WORD && t->wc == WC_KW && t->kw == kw;
}

static int is_pname(const struct tok *t)
{
    return t->type == TK_WORD && t->wc == WC_KW && t->kw <= K_PNOTHER;
}

static int is_wc(const struct tok *t, int wc)
{
    return t->type == TK_WORD && t->wc == wc;
}

static struct qf_node *fail(struct parser *p)
{
    p->fail = 1;
    return NULL;
}

static int enter(struct parser *p)
{
    if (++p->depth > QF_MAX_NEST) {
        p->fail = 1;
        return 0;
    }
    return 1;
}

static int expect(struct parser *p, int type)
{
    if (cur(p)->type != type) {
        p->fail = 1;
        return 0;
    }
    adv(p);
    return 1;
}

/* pnum: NUM | '(' pnum ')' */
static int parse_pnum(struct parser *p, uint32_t *v)
{
    int ok;
    if (!enter(p))
        return 0;
    if (is_wc(cur(p), WC_NUM)) {
        *v = cur(p)->num;
        adv(p);
        ok = 1;
    } else if (cur(p)->type == TK_LP) {
        adv(p);
        ok = parse_pnum(p, v) && expect(p, TK_RP);
    } else {
        ok = 0;
        p->fail = 1;
    }
    p->depth--;
    return ok;
}

/* ---- relations: arth relop arth ---- */

static int arith(struct parser *p, uint64_t *protos);

static int arith_unary(struct parser *p, uint64_t *protos)
{
    const struct tok *t = cur(p);
    int ok = 0;

    if (!enter(p))
        return 0;
    if (t->type == TK_ARITH && t->op == '-') {
        adv(p);
        ok = arith_unary(p, protos);
    } else if (t->type == TK_LP) {
        adv(p);
        ok = arith(p, protos) && cur(p)->type == TK_RP;
        if (ok)
            adv(p);
    } else if (is_wc(t, WC_NUM) || is_kw(t, K_LEN)) {
        adv(p);
        ok = 1;
    } else if (is_pname(t) && peek(p, 1)->type == TK_LB) {
        *protos |= (uint64_t)1 << t->kw;
        adv(p);
        adv(p);
        ok = arith(p, protos);
        if (ok && cur(p)->type == TK_COLON) {
            adv(p);
            ok = is_wc(cur(p), WC_NUM);
            if (ok)
                adv(p);
        }
        ok = ok && cur(p)->type == TK_RB;
        if (ok)
            adv(p);
    }
    p->depth--;
    return ok;
}

static int arith(struct parser *p, uint64_t *protos)
{
    if (!arith_unary(p, protos))
        return 0;
    while (cur(p)->type == TK_ARITH) {
        adv(p);
        if (!arith_unary(p, protos))
            return 0;
    }
    return 1;
}

static int starts_arith(const struct parser *p)
{
    const struct tok *t = cur(p);
    return t->type == TK_LP || (t->type == TK_ARITH && t->op == '-') || is_wc(t, WC_NUM) ||
           is_kw(t, K_LEN) || (is_pname(t) && peek(p, 1)->type == TK_LB);
}

/* Try to read a relation at the cursor; on failure restore the cursor. */
static int try_relation(struct parser *p, uint64_t *protos)
{
    int save = p->pos;
    *protos = 0;
    if (arith(p, protos) && cur(p)->type == TK_REL) {
        adv(p);
        if (arith(p, protos))
            return 1;
    }
    p->pos = save;
    return 0;
}

/* BPF ANDs a check for each protocol a relation loads from into the
 * relation, reversed operators included: (and <leaves> any). */
static struct qf_node *plan_relation(struct parser *p, uint64_t protos)
{
    struct qf_node *conj = NULL;

    for (int kw = 0; kw < K_PNOTHER; kw++) {
        if (!(protos & ((uint64_t)1 << kw)))
            continue;
        struct qf_node *l = proto_abbrev(p, kw);
        conj = conj ? mk2(p, QF_AND, conj, l) : l;
        if (!conj)
            return NULL;
    }
    return conj ? mk2(p, QF_AND, conj, mk_any(p)) : mk_any(p);
}

/* ---- ids and terms ---- */

typedef struct qf_node *(*elem_fn)(struct parser *p, struct qual *q);

static struct qf_node *parse_unit(struct parser *p, struct qual *q);
static struct qf_node *parse_id(struct parser *p, struct qual *q);

/* Combine items[lo, hi) with op into a balanced tree (and/or are
 * associative); takes ownership of the items. */
static struct qf_node *balance(struct parser *p, enum qf_op op, struct qf_node **items, size_t lo,
                               size_t hi)
{
    if (hi - lo == 1)
        return items[lo];
    size_t mid = lo + (hi - lo + 1) / 2;
    struct qf_node *a = balance(p, op, items, lo, mid);
    struct qf_node *b = balance(p, op, items, mid, hi);
    return mk2(p, op, a, b);
}

/* elem ((and|or) elem)*, left-associative, equal precedence. The first elem
 * inherits *q; each later one inherits what the previous one left in *q. */
static struct qf_node *parse_seq(struct parser *p, struct qual *q, elem_fn elem)
{
    struct qf_node *acc = elem(p, q);
    struct qf_node **items = NULL;
    size_t cap = 0;

    while (acc && (cur(p)->type == TK_AND || cur(p)->type == TK_OR)) {
        int type = cur(p)->type;
        enum qf_op op = type == TK_AND ? QF_AND : QF_OR;
        size_t n = 0;
        if (cap == 0) {
            cap = 8;
            items = malloc(cap * sizeof(*items));
            if (!items) {
                p->oom = 1;
                qf_free(acc);
                return NULL;
            }
        }
        items[n++] = acc;
        acc = NULL;
        while (cur(p)->type == type) {
            adv(p);
            struct qf_node *e = elem(p, q);
            if (!e)
                break;
            if (n == cap) {
                struct qf_node **ni = realloc(items, cap * 2 * sizeof(*items));
                if (!ni) {
                    p->oom = 1;
                    qf_free(e);
                    break;
                }
                items = ni;
                cap *= 2;
            }
            items[n++] = e;
        }
        if (p->fail || p->oom) {
            for (size_t i = 0; i < n; i++)
                qf_free(items[i]);
            break;
        }
        acc = balance(p, op, items, 0, n);
    }
    free(items);
    return acc;
}

/* A primitive starting at token `start`, in the second pass of an expression
 * whose offsets an earlier vlan/mpls/... may have shifted: see qf_parse(). */
static struct qf_node *late(struct parser *p, int start, struct qf_node *n)
{
    int i = p->nprim++;
    if (p->prim && i < p->prim_cap) {
        p->prim[i] = n;
        p->prim_pos[i] = start;
    }
    if (n && ((p->any_after >= 0 && start > p->any_after) || (p->unsafe && p->unsafe[i]))) {
        qf_free(n);
        return mk_any(p);
    }
    return n;
}

/* Remember an offset-shifting keyword's node (n may be NULL on OOM). */
static struct qf_node *shifter(struct parser *p, int start, struct qf_node *n)
{
    if (p->first_shift_pos < 0)
        p->first_shift_pos = start;
    if (n && p->nshift < QF_MAX_SHIFT) {
        p->shift[p->nshift] = n;
        p->shift_pos[p->nshift] = start;
    }
    p->nshift++;
    return n;
}

static struct qf_node *parse_leaf_in(struct parser *p, const struct qual *qin);

/* A bare id: NUM, HID[/len | mask HID], HID6[/len], name, MAC. */
static struct qf_node *parse_leaf(struct parser *p, const struct qual *qin)
{
    int start = p->pos;
    return late(p, start, parse_leaf_in(p, qin));
}

static struct qf_node *parse_leaf_in(struct parser *p, const struct qual *qin)
{
    static const struct qual host = {1, K_NONE, D_DEF, A_DEF};
    const struct qual *q = qin->valid ? qin : &host;
    const struct tok *t = cur(p);

    if (t->type != TK_WORD)
        return fail(p);
    adv(p);
    switch (t->wc) {
    case WC_NUM:
        return plan_num(p, q, t->num);
    case WC_HID:
        if (cur(p)->type == TK_ARITH && cur(p)->op == '/') {
            adv(p);
            if (!is_wc(cur(p), WC_NUM))
                return fail(p);
            uint32_t len = cur(p)->num;
            adv(p);
            return plan_hid(p, q, t, len > 64 ? 64 : (int)len, NULL);
        }
        if (is_kw(cur(p), K_MASK)) {
            adv(p);
            const struct tok *m = cur(p);
            if (!is_wc(m, WC_HID))
                return fail(p);
            adv(p);
            return plan_hid(p, q, t, -1, m);
        }
        return plan_hid(p, q, t, -1, NULL);
    case WC_HID6: {
        uint8_t a[16];
        char tmp[64];
        uint32_t len = 128;
        memcpy(tmp, t->s, t->len); /* classify_word() checked len < 64 */
        tmp[t->len] = 0;
        if (inet_pton(AF_INET6, tmp, a) != 1)
            return mk_any(p);
        if (cur(p)->type == TK_ARITH && cur(p)->op == '/') {
            adv(p);
            if (!is_wc(cur(p), WC_NUM))
                return fail(p);
            len = cur(p)->num;
            adv(p);
        }
        return plan_addr6(p, q, a, len > 255 ? 255 : (int)len);
    }
    case WC_ID:
        return plan_name(p, q, t);
    case WC_EID:
    case WC_AID:
        return mk_any(p);
    case WC_KW:
        /* `ip proto tcp` is a syntax error for libpcap (it wants \tcp);
         * planning it like \tcp is harmless. */
        if (q->addr == A_PROTO && t->kw < K_PNOTHER) {
            struct tok name = *t;
            name.wc = WC_ID;
            return plan_name(p, q, &name);
        }
        return fail(p);
    default:
        return fail(p);
    }
}

/* libpcap's `id`: not id | '(' id ((and|or) id)* ')' | leaf, all with the
 * qualifiers of the head before it. */
static struct qf_node *parse_id(struct parser *p, struct qual *q)
{
    struct qf_node *n;

    if (!enter(p))
        return NULL;
    if (cur(p)->type == TK_NOT) {
        adv(p);
        n = mk_not(p, parse_id(p, q));
    } else if (cur(p)->type == TK_LP) {
        adv(p);
        n = parse_seq(p, q, parse_id);
        if (n && !expect(p, TK_RP)) {
            qf_free(n);
            n = NULL;
        }
    } else {
        n = parse_leaf(p, q);
    }
    p->depth--;
    return n;
}

/* head id: [pname] [dqual] [aqual | proto | protochain | gateway] id */
static struct qf_node *parse_head(struct parser *p, struct qual *q)
{
    struct qual h = {1, K_NONE, D_DEF, A_DEF};
    int have = 0;
    const struct tok *t;

    if (is_pname(cur(p))) {
        h.proto = cur(p)->kw;
        adv(p);
    }
    t = cur(p);
    if (is_kw(t, K_SRC) || is_kw(t, K_DST)) {
        int other = t->kw == K_SRC ? K_DST : K_SRC;
        h.dir = t->kw == K_SRC ? D_SRC : D_DST;
        adv(p);
        if ((cur(p)->type == TK_AND || cur(p)->type == TK_OR) && is_kw(peek(p, 1), other)) {
            h.dir = cur(p)->type == TK_AND ? D_AND : D_OR;
            adv(p);
            adv(p);
        }
        have = 1;
    } else if (is_kw(t, K_WDIR)) {
        h.dir = D_WLAN;
        adv(p);
        have = 1;
    }
    t = cur(p);
    if (t->type == TK_WORD && t->wc == WC_KW) {
        int a = -1;
        switch (t->kw) {
        case K_HOST: a = A_HOST; break;
        case K_NET: a = A_NET; break;
        case K_PORT: a = A_PORT; break;
        case K_PORTRANGE: a = A_PORTRANGE; break;
        case K_PROTO: a = have ? -1 : A_PROTO; break;
        case K_PROTOCHAIN: a = have ? -1 : A_PROTOCHAIN; p->may_abort = 1; break;
        case K_GATEWAY: a = have ? -1 : A_GATEWAY; break;
        }
        if (a >= 0) {
            h.addr = (uint8_t)a;
            adv(p);
            have = 1;
        }
    }
    if (!have)
        return fail(p);
    *q = h;
    return parse_id(p, q);
}

/* type T [subtype S] | subtype S | dir D (802.11) */
static struct qf_node *parse_p80211(struct parser *p)
{
    int kw = cur(p)->kw;
    adv(p);
    if (!is_wc(cur(p), WC_ID) && !(kw != K_SUBTYPE && is_wc(cur(p), WC_NUM)))
        return fail(p);
    adv(p);
    if (kw == K_TYPE && is_kw(cur(p), K_SUBTYPE)) {
        adv(p);
        if (!is_wc(cur(p), WC_ID) && !is_wc(cur(p), WC_NUM))
            return fail(p);
        adv(p);
    }
    return mk_any(p);
}

/* ATM / MTP3 field value: NUM | relop NUM | '(' NUM (or NUM)* ')' */
static struct qf_node *parse_fieldvalue(struct parser *p)
{
    if (cur(p)->type == TK_REL)
        adv(p);
    else if (cur(p)->type == TK_LP) {
        adv(p);
        for (;;) {
            if (!is_wc(cur(p), WC_NUM))
                return fail(p);
            adv(p);
            if (cur(p)->type != TK_OR)
                break;
            adv(p);
        }
        if (!expect(p, TK_RP))
            return NULL;
        return mk_any(p);
    }
    if (!is_wc(cur(p), WC_NUM))
        return fail(p);
    adv(p);
    return mk_any(p);
}

/* Consume one word of class wc (or fail). */
static int want(struct parser *p, int wc)
{
    if (!is_wc(cur(p), wc)) {
        p->fail = 1;
        return 0;
    }
    adv(p);
    return 1;
}

static struct qf_node *parse_keyword_in(struct parser *p, struct qual *q);

static int is_head_start(const struct tok *t)
{
    return is_kw(t, K_SRC) || is_kw(t, K_DST) || is_kw(t, K_WDIR) || is_kw(t, K_HOST) ||
           is_kw(t, K_NET) || is_kw(t, K_PORT) || is_kw(t, K_PORTRANGE) || is_kw(t, K_PROTO) ||
           is_kw(t, K_PROTOCHAIN) || is_kw(t, K_GATEWAY);
}

/* A term starting with a keyword. Leaves *q as libpcap does. */
static struct qf_node *parse_keyword(struct parser *p, struct qual *q)
{
    int start = p->pos;
    const struct tok *t = cur(p);

    if (is_head_start(t) || (is_pname(t) && is_head_start(peek(p, 1))))
        return parse_head(p, q); /* its leaves go through parse_leaf() */
    int kw = t->wc == WC_KW ? t->kw : -1;
    struct qf_node *n = late(p, start, parse_keyword_in(p, q));
    switch (kw) {
    case K_VLAN: case K_OPTNUM: case K_BATADV:
        n = shifter(p, start, n);
        break;
    case K_BYTE: case K_BARE: case K_IFINDEX: case K_LLC: case K_FIELD: case K_PFID:
    case K_RNR: case K_PFNUM: case K_REASON: case K_TYPE: case K_SUBTYPE: case K_DIR:
        p->may_abort = 1;
        break;
    }
    return n;
}

static struct qf_node *parse_keyword_in(struct parser *p, struct qual *q)
{
    const struct tok *t = cur(p);
    const struct tok *n1 = peek(p, 1);
    uint32_t v;

    if (is_pname(t)) {
        q->valid = 0;
        adv(p);
        if (is_kw(n1, K_BROADCAST) || is_kw(n1, K_MULTICAST)) {
            adv(p);
            return mk_any(p);
        }
        if (is_kw(n1, K_TYPE) || is_kw(n1, K_SUBTYPE) || is_kw(n1, K_DIR))
            return parse_p80211(p);
        return proto_abbrev(p, t->kw);
    }
    q->valid = 0;
    switch (t->kw) {
    case K_TYPE: case K_SUBTYPE: case K_DIR:
        return parse_p80211(p);
    case K_BROADCAST: case K_MULTICAST: case K_BARE:
        adv(p);
        return mk_any(p);
    case K_LESS: case K_GREATER: case K_IFINDEX: case K_RNR: case K_PFNUM:
        adv(p);
        return want(p, WC_NUM) ? mk_any(p) : NULL;
    case K_PFID:
        adv(p);
        return want(p, WC_ID) ? mk_any(p) : NULL;
    case K_REASON:
        adv(p);
        if (is_wc(cur(p), WC_NUM) || is_wc(cur(p), WC_ID)) {
            adv(p);
            return mk_any(p);
        }
        return fail(p);
    case K_BYTE: /* byte NUM byteop NUM, byteop one of & | < > = */
        adv(p);
        if (!want(p, WC_NUM))
            return NULL;
        t = cur(p);
        if (!((t->type == TK_ARITH && (t->op == '&' || t->op == '|')) ||
              (t->type == TK_REL && (t->op == '<' || t->op == '>' || t->op == '='))))
            return fail(p);
        adv(p);
        return want(p, WC_NUM) ? mk_any(p) : NULL;
    case K_VLAN:
        adv(p);
        if (is_wc(cur(p), WC_NUM) || cur(p)->type == TK_LP) {
            if (!parse_pnum(p, &v))
                return NULL;
            if (v > 4095)
                return mk_any(p);
            return term_num(p, IDX_T_VLAN, v, v, 0);
        }
        return term_num(p, IDX_T_VLAN, 0, 4095, 0);
    case K_OPTNUM:
        adv(p);
        if ((is_wc(cur(p), WC_NUM) || cur(p)->type == TK_LP) && !parse_pnum(p, &v))
            return NULL;
        return mk_any(p);
    case K_BATADV: /* batadv [pnum [pnum | ID]] */
        adv(p);
        if (is_wc(cur(p), WC_NUM) || cur(p)->type == TK_LP) {
            if (!parse_pnum(p, &v))
                return NULL;
            if (is_wc(cur(p), WC_ID))
                adv(p);
            else if ((is_wc(cur(p), WC_NUM) || cur(p)->type == TK_LP) && !parse_pnum(p, &v))
                return NULL;
        }
        return mk_any(p);
    case K_LLC: /* llc [ID | rnr] */
        adv(p);
        if (is_wc(cur(p), WC_ID) || is_kw(cur(p), K_RNR))
            adv(p);
        return mk_any(p);
    case K_FIELD:
        adv(p);
        return parse_fieldvalue(p);
    default: /* len without a relation, mask, ... */
        return fail(p);
    }
}

/* One operand of and/or: a term (libpcap's `term`) or a bare id that
 * inherits *q (libpcap's `expr and id`). Updates *q for the next operand. */
static struct qf_node *parse_unit_in(struct parser *p, struct qual *q)
{
    const struct tok *t = cur(p);
    uint64_t protos;
    int start = p->pos;

    if (t->type == TK_NOT) {
        adv(p);
        return mk_not(p, parse_unit(p, q));
    }
    if (starts_arith(p) && try_relation(p, &protos)) {
        q->valid = 0;
        p->may_abort = 1;
        return late(p, start, plan_relation(p, protos));
    }
    if (p->fail)
        return NULL;
    if (t->type == TK_LP) {
        /* `paren expr ')'` and `paren pid ')'`: both leave the qualifiers
         * of before the '(' in force afterwards. */
        struct qual before = *q;
        adv(p);
        struct qf_node *n = parse_seq(p, q, parse_unit);
        if (n && !expect(p, TK_RP)) {
            qf_free(n);
            n = NULL;
        }
        *q = before;
        return n;
    }
    if (t->type != TK_WORD || t->wc == WC_BADNUM)
        return fail(p);
    if (t->wc == WC_KW)
        return parse_keyword(p, q);
    return parse_leaf(p, q);
}

static struct qf_node *parse_unit(struct parser *p, struct qual *q)
{
    struct qf_node *n = NULL;
    if (enter(p))
        n = parse_unit_in(p, q);
    p->depth--;
    return n;
}

/* Is the tree deeper than QF_MAX_TREE? (bounded recursion) */
static int too_deep(const struct qf_node *n, int d)
{
    if (!n)
        return 0;
    if (d > QF_MAX_TREE)
        return 1;
    return too_deep(n->a, d + 1) || too_deep(n->b, d + 1);
}

/* Is target reachable from n through QF_AND nodes only? Then the whole
 * expression implies target. (Bounded: called on trees too_deep() passed.) */
static int on_and_path(const struct qf_node *n, const struct qf_node *target)
{
    if (n == target)
        return 1;
    if (!n || n->op != QF_AND)
        return 0;
    return on_and_path(n->a, target) || on_and_path(n->b, target);
}

/* libpcap's vlan, mpls, pppoes, geneve, vxlan and batadv move the offsets of
 * every primitive textually after them, in whatever branch. Our postings see
 * through encapsulations, so such a primitive is still bounded by its
 * posting when the whole expression implies the shifting keyword (the packet
 * really is encapsulated), e.g. `vlan 10 and host X`. Otherwise BPF reads
 * the shifted bytes of packets without that encapsulation (`vlan or ip6`
 * tests bytes 16-17 of an untagged frame) and can accept packets whose
 * postings lack the term. Returns the token position after which every
 * primitive must plan as ANY, or -1 when the plan is sound as it is. */
static int shift_limit(const struct parser *p, const struct qf_node *root)
{
    int limit = -1;

    if (p->nshift > QF_MAX_SHIFT)
        return p->first_shift_pos;
    for (int i = 0; i < p->nshift; i++)
        if (!on_and_path(root, p->shift[i]) && (limit < 0 || p->shift_pos[i] < limit))
            limit = p->shift_pos[i];
    return limit;
}

/* Is target in n's subtree? 1 if so, with *guarded set when on the way
 * down it is in the right operand of an AND whose left operand implies
 * shift (shift on its AND path): BPF then runs target's code only for
 * packets that matched shift, which really are encapsulated, so target's
 * postings (which see through encapsulations) still bound it -- as in
 * `(F) or (vlan and (F))`. (Bounded like on_and_path.) */
static int find_guarded(const struct qf_node *n, const struct qf_node *target,
                        const struct qf_node *shift, int g, int *guarded)
{
    if (!n)
        return 0;
    if (n == target) {
        *guarded = g;
        return 1;
    }
    switch (n->op) {
    case QF_AND:
        return find_guarded(n->a, target, shift, g, guarded) ||
               find_guarded(n->b, target, shift, g || on_and_path(n->a, shift), guarded);
    case QF_OR:
        return find_guarded(n->a, target, shift, g, guarded) ||
               find_guarded(n->b, target, shift, g, guarded);
    case QF_NOT:
        return find_guarded(n->a, target, shift, g, guarded);
    default:
        return 0;
    }
}

/* The primitives that must plan as ANY: each one textually after a
 * shifting keyword that does not guard it (find_guarded). Finer than
 * shift_limit(), which it replaces when every primitive and keyword was
 * recorded: 1 and unsafe[] filled, else 0. */
static int shift_unsafe(const struct parser *p, const struct qf_node *root, uint8_t *unsafe)
{
    if (p->nshift > QF_MAX_SHIFT || !p->prim || p->nprim > p->prim_cap)
        return 0;
    for (int i = 0; i < p->nprim; i++) {
        unsafe[i] = 0;
        for (int j = 0; j < p->nshift && !unsafe[i]; j++) {
            int g = 0;
            if (p->shift_pos[j] >= p->prim_pos[i] || p->prim[i] == p->shift[j])
                continue;
            if (!p->prim[i] || !find_guarded(root, p->prim[i], p->shift[j], 0, &g) || !g)
                unsafe[i] = 1;
        }
    }
    return 1;
}

/* Can n's lower bound be non-empty? (conservative; bounded like on_and_path) */
static int lower_possible(const struct qf_node *n)
{
    switch (n->op) {
    case QF_ANY: return 0;
    case QF_TERM: return n->exact;
    case QF_AND: return lower_possible(n->a) && lower_possible(n->b);
    case QF_OR: return lower_possible(n->a) || lower_possible(n->b);
    default: return 1;
    }
}

/* One pass over the tokens; NULL on failure (p->fail or p->oom set). */
static struct qf_node *parse_all(struct parser *p)
{
    struct qual q = {0, K_NONE, D_DEF, A_DEF};
    struct qf_node *n;

    if (p->t[0].type == TK_END)
        return mk_any(p);
    n = parse_seq(p, &q, parse_unit);
    if (n && (p->fail || cur(p)->type != TK_END || too_deep(n, 0))) {
        qf_free(n);
        n = NULL;
        p->fail = 1;
    }
    if (!n && !p->oom)
        p->fail = 1;
    return n;
}

struct qf_node *qf_parse(const char *expr)
{
    struct parser p;
    struct tok *toks = NULL;
    struct qf_node *n = NULL;
    int nt;

    memset(&p, 0, sizeof(p));
    p.first_shift_pos = -1;
    p.any_after = -1;
    if (!expr)
        return mk_any(&p);
    nt = lex(expr, &toks);
    if (nt < 0)
        return NULL;
    if (nt == 0)
        return mk_any(&p);
    p.t = toks;
    /* every token starts at most one primitive */
    p.prim_cap = nt + 1;
    p.prim = calloc((size_t)p.prim_cap, sizeof *p.prim);
    p.prim_pos = calloc((size_t)p.prim_cap, sizeof *p.prim_pos);
    uint8_t *unsafe = calloc((size_t)p.prim_cap, 1);
    if (!p.prim || !p.prim_pos || !unsafe) {
        free(p.prim);
        free(p.prim_pos);
        free(unsafe);
        free(toks);
        return NULL;
    }
    n = parse_all(&p);
    if (n) {
        int limit = shift_limit(&p, n);
        if (limit >= 0) {
            int fine = shift_unsafe(&p, n, unsafe);
            qf_free(n);
            free(p.prim);
            free(p.prim_pos);
            memset(&p, 0, sizeof(p));
            p.t = toks;
            p.first_shift_pos = -1;
            p.any_after = fine ? -1 : limit;
            p.unsafe = fine ? unsafe : NULL;
            n = parse_all(&p);
        }
    }
    free(p.prim);
    free(p.prim_pos);
    free(unsafe);
    free(toks);
    /* BPF has no boolean semantics when a load fails: an out-of-bounds
     * packet load (relations, byte, protochain, ...) or an ancillary load
     * pcap_offline_filter() cannot do (inbound, outbound, ifindex, ...)
     * rejects the packet outright, whatever the other branches say. That
     * only shrinks BPF's set, so upper bounds stay sound, but a lower bound
     * could promise a packet BPF rejects: give up the lower bound. */
    if (n && p.may_abort && lower_possible(n))
        n = mk2(&p, QF_AND, n, mk_any(&p));
    if (p.oom) {
        qf_free(n);
        return NULL;
    }
    if (!n) {
        memset(&p, 0, sizeof(p));
        return mk_any(&p);
    }
    return n;
}

/* Iterative, so that no tree shape can exhaust the stack: rotate the left
 * child up until there is none, then free the node and go right. */
void qf_free(struct qf_node *n)
{
    while (n) {
        if (n->a) {
            struct qf_node *l = n->a;
            n->a = l->b;
            l->b = n;
            n = l;
        } else {
            struct qf_node *r = n->b;
            free(n);
            n = r;
        }
    }
}

/* ---- format ------------------------------------------------------------ */

struct out {
    char *buf;
    int size;
    long need;
};

static void put(struct out *o, const char *fmt, ...) RW_PRINTF(2, 3);

static void put(struct out *o, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n >= (int)sizeof(tmp))
        n = sizeof(tmp) - 1;
    for (int i = 0; i < n; i++, o->need++)
        if (o->buf && o->need < o->size - 1)
            o->buf[o->need] = tmp[i];
}

static void put_value(struct out *o, int kind, int len, const uint8_t *v)
{
    char s[INET6_ADDRSTRLEN];

    switch (kind) {
    case IDX_T_IP4:
        put(o, "%s", inet_ntop(AF_INET, v, s, sizeof(s)) ? s : "?");
        return;
    case IDX_T_IP6:
        put(o, "%s", inet_ntop(AF_INET6, v, s, sizeof(s)) ? s : "?");
        return;
    case IDX_T_PORT:
    case IDX_T_VLAN:
        put(o, "%u", rw_get_be16(v));
        return;
    case IDX_T_PROTO4:
    case IDX_T_PROTO6:
        put(o, "%u", v[0]);
        return;
    case IDX_T_L3:
        put(o, "0x%04x", rw_get_be16(v));
        return;
    default:
        put(o, "0x");
        for (int i = 0; i < len && i < 16; i++)
            put(o, "%02x", v[i]);
    }
}

static const char *kind_name(int kind)
{
    static const char *const names[IDX_T_MAX] = {
        [IDX_T_IP4] = "ip4", [IDX_T_IP6] = "ip6", [IDX_T_PORT] = "port",
        [IDX_T_PROTO4] = "proto4", [IDX_T_PROTO6] = "proto6", [IDX_T_L3] = "l3",
        [IDX_T_VLAN] = "vlan", [IDX_T_FLOW] = "flow",
    };
    return kind < IDX_T_MAX && names[kind] ? names[kind] : "kind?";
}

static void fmt_node(struct out *o, const struct qf_node *n, int depth)
{
    if (!n) {
        put(o, "null");
        return;
    }
    if (depth > QF_MAX_TREE) {
        put(o, "...");
        return;
    }
    switch (n->op) {
    case QF_ANY:
        put(o, "any");
        return;
    case QF_TERM: {
        int len = n->len > 16 ? 16 : n->len;
        put(o, "(term %s ", kind_name(n->kind));
        put_value(o, n->kind, len, n->lo);
        if (memcmp(n->lo, n->hi, len) != 0) {
            put(o, "-");
            put_value(o, n->kind, len, n->hi);
        }
        put(o, " %s)", n->exact ? "exact" : "inexact");
        return;
    }
    case QF_NOT:
        put(o, "(not ");
        fmt_node(o, n->a, depth + 1);
        put(o, ")");
        return;
    case QF_AND:
    case QF_OR:
        put(o, n->op == QF_AND ? "(and " : "(or ");
        fmt_node(o, n->a, depth + 1);
        put(o, " ");
        fmt_node(o, n->b, depth + 1);
        put(o, ")");
        return;
    default:
        put(o, "op?");
    }
}

int qf_format(const struct qf_node *n, char *buf, int bufsz)
{
    struct out o = {bufsz > 0 ? buf : NULL, bufsz, 0};
    fmt_node(&o, n, 0);
    if (o.buf)
        o.buf[o.need < bufsz - 1 ? o.need : bufsz - 1] = 0;
    return o.need > 0x7fffffff ? 0x7fffffff : (int)o.need;
}
