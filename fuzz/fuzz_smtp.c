/* fuzz_smtp.c -- libFuzzer target for analytics/smtp.c: the input is split
 * into client and server chunks (and gaps) by its own bytes, so commands,
 * replies, DATA, BDAT, MIME and gaps meet in any order. Invariants: the
 * session's counts stay within their caps, strings stay terminated, and
 * the message bytes handed to the sink add up to each message's size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/smtp.h"

static void require(int ok)
{
    if (!ok)
        abort();
}

static uint64_t sunk;

static int on_data(void *arg, const struct smtp_txn *t, const uint8_t *p, size_t n)
{
    (void)arg, (void)t, (void)p;
    sunk += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_msg_sink sink = {NULL, on_data, NULL, NULL};
    smtp_conn_t *c = smtp_conn_new(&sink);
    require(c != NULL);
    sunk = 0;
    size_t i = 0;
    int64_t ts = 0;
    while (i + 2 <= size) {
        int dir = data[i] & 1, gap = (data[i] & 6) == 6;
        size_t n = data[i + 1];
        i += 2;
        if (gap) {
            smtp_gap(c, dir, n + 1, ts++);
            continue;
        }
        if (n > size - i)
            n = size - i;
        smtp_bytes(c, dir ? SMTP_SERVER : SMTP_CLIENT, data + i, n, ts++);
        i += n;
    }
    smtp_end(c, ts);
    const struct smtp_session *s = smtp_session(c);
    require(s->ntxn >= 0 && s->ntxn <= SMTP_MAX_TXN);
    require(memchr(s->helo, 0, sizeof s->helo) != NULL);
    uint64_t sizes = 0;
    for (int t = 0; t < s->ntxn; t++) {
        const struct smtp_txn *x = &s->txn[t];
        require(x->nrcpt >= 0 && x->nrcpt <= SMTP_MAX_RCPT && (uint32_t)x->nrcpt <= x->rcpt_total);
        require(x->msg.natt >= 0 && x->msg.natt <= SMTP_MAX_ATT);
        require(memchr(x->msg.subject, 0, sizeof x->msg.subject) != NULL);
        sizes += x->msg.size;
    }
    if (!s->txn_more) /* messages of transactions beyond the cap are not kept */
        require(sizes == sunk);
    smtp_conn_free(c);
    return 0;
}
