/* curl_lazy.c -- libcurl, loaded only when a command talks HTTP.
 *
 * libcurl pulls in some thirty shared libraries (TLS, Kerberos, LDAP, SSH,
 * IDN...), and the dynamic loader mapping and relocating them was about
 * half the run time of a `rewind query` that finds a few packets. Only
 * `rewind --url` needs them, so the binaries are not linked against
 * libcurl: this file defines the few curl_* functions httpd/client.c calls
 * and forwards each to libcurl, which it dlopen()s on first use. */
#define CURL_DISABLE_TYPECHECK 1 /* curl_easy_setopt must stay a function here */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>

#include "common/rw.h"

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    void (*easy_cleanup)(CURL *);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free)(void *);
} fn;
static int loaded; /* 1 ok, -1 failed */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof names / sizeof names[0]; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        rw_warn("cannot load libcurl (libcurl.so.4), needed for --url: %s", dlerror());
        loaded = -1;
        return;
    }
#define SYM(field, name) \
    if (!(*(void **)&fn.field = dlsym(h, name))) { \
        rw_warn("libcurl has no %s", name); \
        loaded = -1; \
        return; \
    }
    SYM(global_init, "curl_global_init");
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_perform, "curl_easy_perform");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_escape, "curl_easy_escape");
    SYM(free, "curl_free");
#undef SYM
    loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return loaded == 1;
}

CURLcode curl_global_init(long flags)
{
    return ready() ? fn.global_init(flags) : CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void) { return ready() ? fn.easy_init() : NULL; }

/* The one argument after the option has the type the option's number says
 * (include/curl/curl.h, CURLOPTTYPE_*): pass it on as that type. */
CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
    va_list ap;
    CURLcode rc;
    if (!ready())
        return CURLE_FAILED_INIT;
    va_start(ap, opt);
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = fn.easy_setopt(c, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        rc = fn.easy_setopt(c, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = fn.easy_setopt(c, opt, va_arg(ap, void (*)(void)));
    else if (opt < CURLOPTTYPE_BLOB)
        rc = fn.easy_setopt(c, opt, va_arg(ap, curl_off_t));
    else
        rc = fn.easy_setopt(c, opt, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

CURLcode curl_easy_perform(CURL *c) { return ready() ? fn.easy_perform(c) : CURLE_FAILED_INIT; }

/* Every CURLINFO_* takes a pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
    va_list ap;
    if (!ready())
        return CURLE_FAILED_INIT;
    va_start(ap, info);
    void *p = va_arg(ap, void *);
    va_end(ap);
    return fn.easy_getinfo(c, info, p);
}

const char *curl_easy_strerror(CURLcode cc)
{
    return ready() ? fn.easy_strerror(cc) : "libcurl could not be loaded";
}

void curl_easy_cleanup(CURL *c)
{
    if (ready())
        fn.easy_cleanup(c);
}

char *curl_easy_escape(CURL *c, const char *s, int len)
{
    return ready() ? fn.easy_escape(c, s, len) : NULL;
}

void curl_free(void *p)
{
    if (ready())
        fn.free(p);
}
