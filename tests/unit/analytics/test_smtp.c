/* test_smtp.c -- unit tests for analytics/smtp.c: replies paired with
 * pipelined commands, DATA dot-unstuffing across chunk boundaries, BDAT,
 * STARTTLS, MIME attachments, gaps, refused DATA, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include "analytics/reasm.h"
#include "analytics/smtp.h"

struct out {
    char buf[8192];
    size_t n;
    int begins, ends;
};

static void on_begin(void *arg, const struct smtp_session *s, const struct smtp_txn *t)
{
    (void)s, (void)t;
    ((struct out *)arg)->begins++;
}

static int on_data(void *arg, const struct smtp_txn *t, const uint8_t *p, size_t n)
{
    struct out *o = arg;
    (void)t;
    assert_true(o->n + n < sizeof o->buf);
    memcpy(o->buf + o->n, p, n);
    o->n += n;
    o->buf[o->n] = 0;
    return 0;
}

static void on_end(void *arg, const struct smtp_session *s, const struct smtp_txn *t)
{
    (void)s, (void)t;
    ((struct out *)arg)->ends++;
}

static smtp_conn_t *conn(struct out *o)
{
    struct smtp_msg_sink s = {on_begin, on_data, on_end, o};
    memset(o, 0, sizeof *o);
    smtp_conn_t *c = smtp_conn_new(&s);
    assert_non_null(c);
    return c;
}

static void cl(smtp_conn_t *c, const char *s) { smtp_bytes(c, SMTP_CLIENT, (const uint8_t *)s, strlen(s), 1); }
static void sv(smtp_conn_t *c, const char *s) { smtp_bytes(c, SMTP_SERVER, (const uint8_t *)s, strlen(s), 2); }

/* Feed s to the client one byte at a time: every state boundary is crossed. */
static void cl_bytewise(smtp_conn_t *c, const char *s)
{
    for (; *s; s++)
        smtp_bytes(c, SMTP_CLIENT, (const uint8_t *)s, 1, 1);
}

static void test_pipelined_transaction(void **state)
{
    (void)state;
    struct out o;
    smtp_conn_t *c = conn(&o);
    sv(c, "220 mx ESMTP\r\n");
    cl(c, "EHLO client.example\r\n");
    sv(c, "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    cl(c, "MAIL FROM:<a@x> SIZE=10\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nDATA\r\n");
    sv(c, "250 ok\r\n250 ok\r\n550 no such user\r\n354 go\r\n");
    cl(c, "Subject: hi\r\n\r\nbody\r\n.\r\n");
    sv(c, "250 queued as X\r\n");
    cl(c, "QUIT\r\n");
    smtp_end(c, 3);
    const struct smtp_session *s = smtp_session(c);
    assert_string_equal(s->helo, "client.example");
    assert_int_equal(s->ehlo, 1);
    assert_int_equal(s->banner_reply, 220);
    assert_int_equal(s->ntxn, 1);
    const struct smtp_txn *t = &s->txn[0];
    assert_string_equal(t->mail_from, "a@x");
    assert_int_equal(t->mail_reply, 250);
    assert_int_equal(t->rcpt_total, 2);
    assert_int_equal(t->rcpt_accepted, 1);
    assert_string_equal(t->rcpt[1].addr, "c@z");
    assert_int_equal(t->rcpt[1].reply, 550);
    assert_int_equal(t->data_reply, 354);
    assert_int_equal(t->final_reply, 250);
    assert_string_equal(t->final_text, "queued as X");
    assert_string_equal(t->msg.subject, "hi");
    assert_string_equal(o.buf, "Subject: hi\r\n\r\nbody\r\n");
    assert_int_equal(t->msg.size, strlen(o.buf));
    assert_int_equal(t->msg.complete, 1);
    smtp_conn_free(c);
}

/* RFC 5321 4.5.2: a leading dot is removed, wherever the chunks split. */
static void test_dot_unstuffing(void **state)
{
    (void)state;
    struct out o;
    smtp_conn_t *c = conn(&o);
    sv(c, "220 mx\r\n");
    cl(c, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
    sv(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    cl_bytewise(c, "A: b\r\n\r\n..leading dot\r\n...two\r\n.\r\r\nx.\r\n.\r\n");
    sv(c, "250 ok\r\n");
    assert_string_equal(o.buf, "A: b\r\n\r\n.leading dot\r\n..two\r\n\r\r\nx.\r\n");
    assert_int_equal(o.ends, 1);
    assert_int_equal(smtp_session(c)->txn[0].final_reply, 250);
    smtp_conn_free(c);
}

static void test_bdat(void **state)
{
    (void)state;
    struct out o;
    smtp_conn_t *c = conn(&o);
    cl(c, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 8\r\n.dot\r\nab");
    cl(c, "BDAT 3 LAST\r\ncde");
    sv(c, "250 ok\r\n250 ok\r\n250 8 bytes\r\n250 queued\r\n");
    const struct smtp_txn *t = &smtp_session(c)->txn[0];
    assert_int_equal(t->data, SMTP_BDAT);
    assert_string_equal(o.buf, ".dot\r\nabcde"); /* BDAT is never dot-stuffed */
    assert_int_equal(t->final_reply, 250);
    assert_int_equal(t->msg.complete, 1);
    smtp_conn_free(c);
}

/* DATA refused: the lines after it are commands, not a message. */
static void test_data_refused(void **state)
{
    (void)state;
    struct out o;
    smtp_conn_t *c = conn(&o);
    cl(c, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
    sv(c, "250 ok\r\n550 no\r\n503 need RCPT\r\n");
    cl(c, "RSET\r\nMAIL FROM:<c@x>\r\n");
    sv(c, "250 ok\r\n250 ok\r\n");
    const struct smtp_session *s = smtp_session(c);
    assert_int_equal(s->ntxn, 2);
    assert_int_equal(s->txn[0].final_reply, 503);
    assert_int_equal(s->txn[0].has_msg, 0);
    assert_string_equal(s->txn[1].mail_from, "c@x");
    assert_int_equal(o.begins, 0);
    smtp_conn_free(c);
}

static void test_starttls(void **state)
{
    (void)state;
    struct out o;
    smtp_conn_t *c = conn(&o);
    cl(c, "EHLO a\r\nSTARTTLS\r\n");
    sv(c, "250 ok\r\n220 go ahead\r\n");
    cl(c, "\x16\x03\x01 binary MAIL FROM:<hidden@x>\r\n");
    const struct smtp_session *s = smtp_session(c);
    assert_int_equal(s->starttls, 1);
    assert_int_equal(s->ntxn, 0);
    smtp_conn_free(c);
}

static void test_attachments(void **state)
{
    (void)state;
    struct out o;
    smtp_conn_t *c = conn(&o);
    cl(c, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
    sv(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    cl(c, "From: A <a@x>\r\nTo: b@y\r\nSubject: two\r\n files\r\nMessage-ID: <1@x>\r\n"
          "Content-Type: multipart/mixed;\r\n boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\n"
          "Content-Type: text/plain\r\n\r\nhello\r\n--XX\r\n"
          "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
          "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29y\r\nbGQ=\r\n--XX\r\n"
          "Content-Disposition: attachment; filename=b.txt\r\n\r\nline1\r\nline2\r\n--XX--\r\n.\r\n");
    const struct smtp_msg *m = &smtp_session(c)->txn[0].msg;
    assert_string_equal(m->subject, "two files");
    assert_string_equal(m->from, "A <a@x>");
    assert_string_equal(m->message_id, "<1@x>");
    assert_int_equal(m->natt, 2);
    assert_string_equal(m->att[0].name, "a.bin");
    assert_int_equal(m->att[0].size, 11); /* "hello world" */
    assert_string_equal(m->att[1].name, "b.txt");
    assert_int_equal(m->att[1].size, 12); /* "line1\r\nline2" */
    smtp_conn_free(c);
}

/* A gap inside DATA: the message says what it lacks; no byte is made up. */
static void test_gap_in_data(void **state)
{
    (void)state;
    struct out o;
    smtp_conn_t *c = conn(&o);
    cl(c, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
    sv(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    cl(c, "S: 1\r\n\r\nab");
    smtp_gap(c, SMTP_CLIENT, 100, 1);
    cl(c, "cd\r\n.\r\n");
    const struct smtp_msg *m = &smtp_session(c)->txn[0].msg;
    assert_int_equal(m->missing, 100);
    assert_string_equal(o.buf, "S: 1\r\n\r\nabcd\r\n");
    assert_int_equal(m->size, strlen(o.buf));
    smtp_conn_free(c);
}

/* Many recipients: counted, the first SMTP_MAX_RCPT kept; long lines cut. */
static void test_caps(void **state)
{
    (void)state;
    struct out o;
    char line[300];
    smtp_conn_t *c = conn(&o);
    cl(c, "MAIL FROM:<a@x>\r\n");
    sv(c, "250 ok\r\n");
    for (int i = 0; i < SMTP_MAX_RCPT + 10; i++) {
        snprintf(line, sizeof line, "RCPT TO:<r%d@y>\r\n", i);
        cl(c, line);
        sv(c, "250 ok\r\n");
    }
    char big[5000];
    memset(big, 'h', sizeof big);
    big[sizeof big - 1] = 0;
    cl(c, "HELO ");
    cl(c, big);
    cl(c, "\r\n");
    const struct smtp_session *s = smtp_session(c);
    assert_int_equal(s->txn[0].rcpt_total, SMTP_MAX_RCPT + 10);
    assert_int_equal(s->txn[0].nrcpt, SMTP_MAX_RCPT);
    assert_int_equal(s->txn[0].rcpt_accepted, SMTP_MAX_RCPT + 10);
    assert_true(strlen(s->helo) < SMTP_STR);
    smtp_conn_free(c);
}

/* A 1 GiB message through the reassembler (segments swapped in pairs) and
 * the parser: every byte counted, none held, memory flat. */
static uint64_t big_sunk;

static int big_data(void *arg, const struct smtp_txn *t, const uint8_t *p, size_t n)
{
    (void)arg, (void)t, (void)p;
    big_sunk += n;
    return 0;
}

static int to_smtp(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    smtp_bytes(arg, SMTP_CLIENT, p, n, ts);
    return 0;
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_gigabyte_bounded(void **state)
{
    (void)state;
    struct smtp_msg_sink ms = {NULL, big_data, NULL, NULL};
    smtp_conn_t *c = smtp_conn_new(&ms);
    struct rsm_pool pool = {0, 1 << 20};
    struct rsm_sink rs = {to_smtp, NULL, NULL, c};
    rsm_dir_t *d = rsm_dir_new(&rs, &pool, 1 << 16);
    assert_non_null(c);
    assert_non_null(d);
    sv(c, "220 mx\r\n");
    const char *head = "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n";
    uint32_t seq = 1000;
    rsm_segment(d, seq++, RSM_SYN, NULL, 0, 0);
    rsm_segment(d, seq, 0, (const uint8_t *)head, strlen(head), 0);
    seq += (uint32_t)strlen(head);
    sv(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    /* 1400-byte segments of 70-byte lines */
    uint8_t seg[1400];
    for (size_t i = 0; i < sizeof seg; i += 70) {
        memset(seg + i, 'm', 68);
        seg[i + 68] = '\r';
        seg[i + 69] = '\n';
    }
    const uint64_t total = 1ull << 30, nseg = total / sizeof seg;
    long before = maxrss_kb();
    big_sunk = 0;
    for (uint64_t i = 0; i + 1 < nseg; i += 2) {
        rsm_segment(d, seq + sizeof seg, 0, seg, sizeof seg, 0);
        rsm_segment(d, seq, 0, seg, sizeof seg, 0);
        seq += 2 * sizeof seg;
    }
    uint64_t sent = (nseg & ~1ull) * sizeof seg;
    rsm_segment(d, seq, RSM_FIN, (const uint8_t *)".\r\n", 3, 0);
    sv(c, "250 queued\r\n");
    const struct smtp_txn *t = &smtp_session(c)->txn[0];
    assert_int_equal(t->msg.size, sent);
    assert_int_equal(big_sunk, sent);
    assert_int_equal(t->msg.missing, 0);
    assert_int_equal(t->msg.complete, 1);
    assert_int_equal(t->final_reply, 250);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed pieces on purpose */
    assert_true(maxrss_kb() - before < 16 * 1024); /* KiB: nothing of the gigabyte stayed */
#else
    (void)before;
#endif
    rsm_dir_free(d);
    smtp_conn_free(c);
}

static void test_path(void **state)
{
    (void)state;
    char out[64];
    smtp_path(" <a@b> SIZE=1", out, sizeof out);
    assert_string_equal(out, "a@b");
    smtp_path("a@b BODY=8BITMIME", out, sizeof out);
    assert_string_equal(out, "a@b");
    smtp_path("<>", out, sizeof out);
    assert_string_equal(out, "");
    smtp_path("<unterminated", out, sizeof out);
    assert_string_equal(out, "unterminated");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_transaction),
        cmocka_unit_test(test_dot_unstuffing),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_data_refused),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_attachments),
        cmocka_unit_test(test_gap_in_data),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_gigabyte_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
