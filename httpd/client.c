/* client.c -- HTTP client for the API over libcurl (rewind --url). */
#include "httpd/client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct get {
    CURL *c;
    httpd_sink_fn sink;
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
        curl_easy_getinfo(g->c, CURLINFO_RESPONSE_CODE, &g->status);
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

int httpd_get(const char *base, const char *path, httpd_sink_fn sink, void *arg, char *err)
{
    static int inited;
    char url[8192];
    struct get g = {.sink = sink, .arg = arg};
    int rc = 0;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = 1;
    }
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    if ((size_t)snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path) >= sizeof url)
        return rw_err(err, RW_EINPUT, "request too long");
    if (!(g.c = curl_easy_init()))
        return rw_err(err, RW_ENOMEM, "out of memory");
    curl_easy_setopt(g.c, CURLOPT_URL, url);
    curl_easy_setopt(g.c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(g.c, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(g.c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(g.c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(g.c, CURLOPT_USERAGENT, "rewind");
    CURLcode cc = curl_easy_perform(g.c);
    if (!g.status)
        curl_easy_getinfo(g.c, CURLINFO_RESPONSE_CODE, &g.status);
    if (g.status >= 300) {
        json_t *j = json_loads(g.ebody, 0, NULL);
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        rc = rw_err(err, g.status >= 400 && g.status < 500 ? RW_EINPUT : RW_EIO, "%s (HTTP %ld)",
                    msg ? msg : g.ebody, g.status);
        json_decref(j);
    } else if (g.sink_failed) {
        rc = rw_err(err, RW_EIO, "writing the answer failed");
    } else if (cc != CURLE_OK) {
        rc = rw_err(err, RW_EIO, "%s: %s", url, curl_easy_strerror(cc));
    }
    curl_easy_cleanup(g.c);
    return rc;
}

char *httpd_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0), *out;
    if (!e)
        return NULL;
    out = strdup(e);
    curl_free(e);
    return out;
}
