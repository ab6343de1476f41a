/* client.h -- the client side of the HTTP API, for `rewind --url`. */
#ifndef HTTPD_CLIENT_H
#define HTTPD_CLIENT_H

#include <stddef.h>

#include "common/rw.h"

typedef int (*httpd_sink_fn)(void *arg, const void *buf, size_t n);

/* GET base + path (path includes the encoded query string) and stream the
 * body of a 2xx answer to sink. An error answer returns RW_EINPUT (4xx) or
 * RW_EIO (5xx) with the server's message; a transfer cut short returns
 * RW_EIO. */
int httpd_get(const char *base, const char *path, httpd_sink_fn sink, void *arg, char *err) RW_WUR;

/* URL-encode s for a query string; malloc'ed, caller frees. */
char *httpd_escape(const char *s);

#endif
