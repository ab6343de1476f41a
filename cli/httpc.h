/* httpc.h -- the client side of the HTTP API, for `rewind --url`. An
 * https:// URL is checked against the CA bundle in $CURL_CA_BUNDLE, else
 * $SSL_CERT_FILE, else the system's (as the curl tool does). */
#ifndef CLI_HTTPC_H
#define CLI_HTTPC_H

#include <stddef.h>

#include "common/rw.h"

typedef int (*httpc_sink_fn)(void *arg, const void *buf, size_t n);

/* GET base + path (path includes the encoded query string) and stream the
 * body of a 2xx answer to sink. An error answer returns RW_EINPUT (4xx) or
 * RW_EIO (5xx) with the server's message; a transfer cut short returns
 * RW_EIO; a libcurl that cannot be loaded RW_EIO saying so. */
int httpc_get(const char *base, const char *path, httpc_sink_fn sink, void *arg,
              char *err) RW_WUR;

/* The same with a token and CA file of its own (NULL: as httpc_get; ""
 * token: none), and the HTTP status in *status (0: no answer; NULL:
 * not wanted). Safe to call from several threads at once. */
int httpc_get_as(const char *base, const char *path, const char *token, const char *cafile,
                 httpc_sink_fn sink, void *arg, long *status, char *err) RW_WUR;

/* The same for any method (GET, POST, PATCH, DELETE...), with body (n
 * bytes, sent as application/json; NULL: none). */
int httpc_request(const char *base, const char *method, const char *path, const char *body,
                  size_t n, const char *token, const char *cafile, httpc_sink_fn sink, void *arg,
                  long *status, char *err) RW_WUR;
/* httpc_request with the token of httpc_set_token and the environment's CA. */
int httpc_send(const char *base, const char *method, const char *path, const char *body,
               size_t n, httpc_sink_fn sink, void *arg, long *status, char *err) RW_WUR;

/* Send "Authorization: Bearer token" with every request from now on (NULL
 * or "": none). The token is kept in this process only; RW_EINPUT if it
 * holds spaces or line breaks. */
int httpc_set_token(const char *token, char *err) RW_WUR;

/* URL-encode s for a query string (RFC 3986 unreserved characters kept);
 * malloc'ed, caller frees; NULL when out of memory. */
char *httpc_escape(const char *s);

#endif
