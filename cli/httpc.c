/* httpc.c -- HTTP client for the API (rewind --url), over libcurl loaded
 * only when a command talks HTTP (common/curl_dl.h says why). */
#include "cli/httpc.h"
#include "common/curl_dl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char bearer[32 + 128]; /* "Authorization: Bearer TOKEN", "" for none */

/* The CA bundle named in the environment, as the curl tool reads it:
 * $CURL_CA_BUNDLE, else $SSL_CERT_FILE; NULL (libcurl's default, the
 * system's) when neither is set. */
static const char *ca_bundle(void)
{
    const char *v = getenv("CURL_CA_BUNDLE");
    if (!v || !*v)
        v = getenv("SSL_CERT_FILE");
    return v && *v ? v : NULL;
}

struct get {
    const struct rw_curl *cu;
    CURL *c;
    httpc_sink_fn sink;
    void *arg;
    long status;
    char ebody[4096];
    size_t elen;
    int sink_failed;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct get *g = arg;
    size_t len = sz * n;
    if (!g->status)
        g->cu->easy_getinfo(g->c, CURLINFO_RESPONSE_CODE, &g->status);
    if (g->status >= 300) {
        size_t room = sizeof g->ebody - 1 - g->elen, k = len < room ? len : room;
        memcpy(g->ebody + g->elen, p, k);
        g->elen += k;
        g->ebody[g->elen] = 0;
        return len;
    }
    if (g->sink(g->arg, p, len) < 0) {
        g->sink_failed = 1;
        return 0;
    }
    return len;
}

int httpc_set_token(const char *token, char *err)
{
    if (!token || !*token) {
        bearer[0] = 0;
        return 0;
    }
    if (strlen(token) > 100 || strpbrk(token, "\r\n \t"))
        return rw_err(err, RW_EINPUT, "malformed token (from --token or REWIND_TOKEN)");
    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", token);
    return 0;
}

int httpc_get(const char *base, const char *path, httpc_sink_fn sink, void *arg, char *err)
{
    return httpc_get_as(base, path, NULL, NULL, sink, arg, NULL, err);
}

int httpc_get_as(const char *base, const char *path, const char *token, const char *cafile,
                 httpc_sink_fn sink, void *arg, long *status, char *err)
{
    return httpc_request(base, "GET", path, NULL, 0, token, cafile, sink, arg, status, err);
}

int httpc_send(const char *base, const char *method, const char *path, const char *body,
               size_t n, httpc_sink_fn sink, void *arg, long *status, char *err)
{
    return httpc_request(base, method, path, body, n, NULL, NULL, sink, arg, status, err);
}

int httpc_request(const char *base, const char *method, const char *path, const char *body,
                  size_t n, const char *token, const char *cafile, httpc_sink_fn sink, void *arg,
                  long *status, char *err)
{
    char url[8192], own[32 + 128];
    struct get g = {.sink = sink, .arg = arg};
    int rc = 0;
    const struct rw_curl *cu = g.cu = rw_curl(err);
    if (!cu)
        return rw_errctx(err, RW_EIO, "--url");
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    if ((size_t)snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path) >= sizeof url)
        return rw_err(err, RW_EINPUT, "request too long");
    if (!(g.c = cu->easy_init()))
        return rw_err(err, RW_ENOMEM, "out of memory");
    cu->easy_setopt(g.c, CURLOPT_URL, url);
    cu->easy_setopt(g.c, CURLOPT_WRITEFUNCTION, on_body);
    cu->easy_setopt(g.c, CURLOPT_WRITEDATA, &g);
    cu->easy_setopt(g.c, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(g.c, CURLOPT_CONNECTTIMEOUT, 10L);
    cu->easy_setopt(g.c, CURLOPT_USERAGENT, "rewind");
    if (token && (strlen(token) > 128 || strpbrk(token, "\r\n \t")))
        return rw_err(err, RW_EINPUT, "malformed token");
    if (token && *token)
        snprintf(own, sizeof own, "Authorization: Bearer %s", token);
    else
        snprintf(own, sizeof own, "%s", token ? "" : bearer);
    struct curl_slist *hdrs = own[0] ? cu->slist_append(NULL, own) : NULL;
    if (strcmp(method, "GET"))
        cu->easy_setopt(g.c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        cu->easy_setopt(g.c, CURLOPT_POSTFIELDS, body);
        cu->easy_setopt(g.c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        hdrs = cu->slist_append(hdrs, "Content-Type: application/json");
    }
    if (hdrs)
        cu->easy_setopt(g.c, CURLOPT_HTTPHEADER, hdrs);
    /* The CA to trust for https:// is named as for the curl tool, so that
     * one setting serves both: a daemon's certificate is often signed by
     * an authority of its own, not one of the system's. */
    const char *ca = cafile && *cafile ? cafile : ca_bundle();
    if (ca)
        cu->easy_setopt(g.c, CURLOPT_CAINFO, ca);
    CURLcode cc = cu->easy_perform(g.c);
    cu->slist_free_all(hdrs);
    if (!g.status)
        cu->easy_getinfo(g.c, CURLINFO_RESPONSE_CODE, &g.status);
    if (status)
        *status = g.status;
    if (g.status >= 300) {
        json_t *j = json_loads(g.ebody, 0, NULL);
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        rc = rw_err(err, g.status >= 400 && g.status < 500 ? RW_EINPUT : RW_EIO, "%s (HTTP %ld)",
                    msg ? msg : g.ebody, g.status);
        json_decref(j);
    } else if (g.sink_failed) {
        rc = rw_err(err, RW_EIO, "writing the answer failed");
    } else if (cc == CURLE_PEER_FAILED_VERIFICATION) {
        rc = rw_err(err, RW_EIO, "%s: %s (to trust the daemon's certificate authority: "
                    "CURL_CA_BUNDLE=CA.pem)", url, cu->easy_strerror(cc));
    } else if (cc == CURLE_SSL_CACERT_BADFILE) {
        rc = rw_err(err, RW_EINPUT, "%s: %s: %s", url, cu->easy_strerror(cc),
                    ca ? ca : "the system's CA bundle");
    } else if (cc != CURLE_OK) {
        rc = rw_err(err, RW_EIO, "%s: %s", url, cu->easy_strerror(cc));
    }
    cu->easy_cleanup(g.c);
    return rc;
}

char *httpc_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *w = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    *w = 0;
    return out;
}
