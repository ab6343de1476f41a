/* body.c -- request bodies: collected for the methods that take one
 * (POST, PATCH, PUT, DELETE), up to HD_BODY_MAX, and freed when
 * libmicrohttpd completes the request, however it ends. */
#include <stdlib.h>
#include <string.h>

#include "httpd/httpd_int.h"

struct hd_body {
    int keep;        /* 0: the shared collector of bodiless methods: discard */
    int too_big;
    char *buf;       /* NUL-ended */
    size_t len, cap;
};

static struct hd_body discard; /* never written: keep and too_big stay 0 */

struct hd_body *hd_body_new(const char *method)
{
    if (strcmp(method, "POST") && strcmp(method, "PATCH") && strcmp(method, "PUT") &&
        strcmp(method, "DELETE"))
        return &discard;
    struct hd_body *b = calloc(1, sizeof *b);
    if (b)
        b->keep = 1;
    return b;
}

void hd_body_add(struct hd_body *b, const char *data, size_t n)
{
    if (!b->keep || b->too_big)
        return;
    if (n > HD_BODY_MAX - b->len) {
        b->too_big = 1;
        free(b->buf);
        b->buf = NULL;
        b->len = b->cap = 0;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *nb = realloc(b->buf, nc);
        if (!nb) { /* answered as too big: the client learns it was not taken */
            b->too_big = 1;
            return;
        }
        b->buf = nb;
        b->cap = nc;
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = 0;
}

void hd_body_params(const struct hd_body *b, struct params *p)
{
    p->body = b->buf ? b->buf : "";
    p->body_len = b->buf ? b->len : 0;
    p->body_too_big = b->too_big;
}

void hd_body_free(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    struct hd_body *b = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (b && b != &discard) {
        free(b->buf);
        free(b);
    }
    *con_cls = NULL;
}
