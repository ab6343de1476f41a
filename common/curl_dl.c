/* curl_dl.c -- libcurl, loaded with dlopen() on first use (curl_dl.h). */
#include "common/curl_dl.h"
#include "common/rw.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static struct rw_curl cu;
static char load_err[RW_ERRSZ]; /* why libcurl could not be loaded, "" if it was */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
    void *h = NULL;
    CURLcode (*global_init)(long);
    for (size_t i = 0; !h && i < sizeof names / sizeof names[0]; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_err, sizeof load_err, "cannot load libcurl (libcurl.so.4): %s; install libcurl4",
                 dlerror());
        return;
    }
#define SYM(field, name) \
    if (!(*(void **)&field = dlsym(h, name))) { \
        snprintf(load_err, sizeof load_err, "the libcurl found has no %s", name); \
        return; \
    }
    SYM(global_init, "curl_global_init");
    SYM(cu.easy_init, "curl_easy_init");
    SYM(cu.easy_setopt, "curl_easy_setopt");
    SYM(cu.easy_perform, "curl_easy_perform");
    SYM(cu.easy_getinfo, "curl_easy_getinfo");
    SYM(cu.easy_strerror, "curl_easy_strerror");
    SYM(cu.easy_escape, "curl_easy_escape");
    SYM(cu.free, "curl_free");
    SYM(cu.easy_cleanup, "curl_easy_cleanup");
    SYM(cu.slist_append, "curl_slist_append");
    SYM(cu.slist_free_all, "curl_slist_free_all");
#undef SYM
    global_init(CURL_GLOBAL_DEFAULT);
}

const struct rw_curl *rw_curl(char *err)
{
    pthread_once(&once, load);
    if (load_err[0]) {
        rw_err(err, RW_EIO, "%s", load_err);
        return NULL;
    }
    return &cu;
}
