/* httpc.c -- HTTP client for the API (rewind --url), over libcurl loaded
 * only when a command talks HTTP.
 *
 * libcurl pulls in some thirty shared libraries (TLS, Kerberos, LDAP, SSH,
 * IDN...), and the dynamic loader mapping and relocating them was about
 * half the run time of a `rewind query` that finds a few packets. Only
 * `rewind --url` needs them, so the binaries are not linked against
 * libcurl: the few functions used here are looked up with dlopen() on
 * first use, into a table private to this file (no curl_* symbols of ours
 * that a real libcurl linked one day would clash with). */
#define CURL_DISABLE_TYPECHECK 1 /* the function-pointer setopt below */
#include "cli/httpc.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    void (*easy_cleanup)(CURL *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} cu;
static char bearer[32 + 128]; /* "Authorization: Bearer TOKEN", "" for none */
static char load_err[RW_ERRSZ]; /* why libcurl could not be loaded, "" if it was */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof names / sizeof names[0]; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_err, sizeof load_err,
                 "cannot load libcurl (libcurl.so.4), needed for --url: %s; install libcurl4",
                 dlerror());
        return;
    }
#define SYM(field, name) \
    if (!(*(void **)&cu.field = dlsym(h, name))) { \
        snprintf(load_err, sizeof load_err, "the libcurl found has no %s", name); \
        return; \
    }
    SYM(global_init, "curl_global_init");
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_perform, "curl_easy_perform");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
#undef SYM
    cu.global_init(CURL_GLOBAL_DEFAULT);
}

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
        cu.easy_getinfo(g->c, CURLINFO_RESPONSE_CODE, &g->status);
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
    pthread_once(&once, load);
    if (load_err[0])
        return rw_err(err, RW_EIO, "%s", load_err);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    if ((size_t)snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path) >= sizeof url)
        return rw_err(err, RW_EINPUT, "request too long");
    if (!(g.c = cu.easy_init()))
        return rw_err(err, RW_ENOMEM, "out of memory");
    cu.easy_setopt(g.c, CURLOPT_URL, url);
    cu.easy_setopt(g.c, CURLOPT_WRITEFUNCTION, on_body);
    cu.easy_setopt(g.c, CURLOPT_WRITEDATA, &g);
    cu.easy_setopt(g.c, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(g.c, CURLOPT_CONNECTTIMEOUT, 10L);
    cu.easy_setopt(g.c, CURLOPT_USERAGENT, "rewind");
    if (token && (strlen(token) > 128 || strpbrk(token, "\r\n \t")))
        return rw_err(err, RW_EINPUT, "malformed token");
    if (token && *token)
        snprintf(own, sizeof own, "Authorization: Bearer %s", token);
    else
        snprintf(own, sizeof own, "%s", token ? "" : bearer);
    struct curl_slist *hdrs = own[0] ? cu.slist_append(NULL, own) : NULL;
    if (strcmp(method, "GET"))
        cu.easy_setopt(g.c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        cu.easy_setopt(g.c, CURLOPT_POSTFIELDS, body);
        cu.easy_setopt(g.c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        hdrs = cu.slist_append(hdrs, "Content-Type: application/json");
    }
    if (hdrs)
        cu.easy_setopt(g.c, CURLOPT_HTTPHEADER, hdrs);
    /* The CA to trust for https:// is named as for the curl tool, so that
     * one setting serves both: a daemon's certificate is often signed by
     * an authority of its own, not one of the system's. */
    const char *ca = cafile && *cafile ? cafile : ca_bundle();
    if (ca)
        cu.easy_setopt(g.c, CURLOPT_CAINFO, ca);
    CURLcode cc = cu.easy_perform(g.c);
    cu.slist_free_all(hdrs);
    if (!g.status)
        cu.easy_getinfo(g.c, CURLINFO_RESPONSE_CODE, &g.status);
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
                    "CURL_CA_BUNDLE=CA.pem)", url, cu.easy_strerror(cc));
    } else if (cc == CURLE_SSL_CACERT_BADFILE) {
        rc = rw_err(err, RW_EINPUT, "%s: %s: %s", url, cu.easy_strerror(cc),
                    ca ? ca : "the system's CA bundle");
    } else if (cc != CURLE_OK) {
        rc = rw_err(err, RW_EIO, "%s: %s", url, cu.easy_strerror(cc));
    }
    cu.easy_cleanup(g.c);
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
