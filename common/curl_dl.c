/* curl_dl.c -- libcurl, loaded with dlopen() on first use (curl_dl.h). */
#include "common/curl_dl.h"
#include "common/dl.h"
#include "common/rw.h"

#include <pthread.h>

static struct rw_curl cu;
static char load_err[RW_ERRSZ]; /* why libcurl could not be loaded, "" if it was */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
    CURLcode (*global_init)(long);
    const struct rw_dlsym syms[] = {
        {"curl_global_init", (void **)&global_init},
        {"curl_easy_init", (void **)&cu.easy_init},
        {"curl_easy_setopt", (void **)&cu.easy_setopt},
        {"curl_easy_perform", (void **)&cu.easy_perform},
        {"curl_easy_getinfo", (void **)&cu.easy_getinfo},
        {"curl_easy_strerror", (void **)&cu.easy_strerror},
        {"curl_easy_escape", (void **)&cu.easy_escape},
        {"curl_free", (void **)&cu.free},
        {"curl_easy_cleanup", (void **)&cu.easy_cleanup},
        {"curl_slist_append", (void **)&cu.slist_append},
        {"curl_slist_free_all", (void **)&cu.slist_free_all},
    };
    if (rw_dl_load("libcurl", "libcurl4", NULL, names, sizeof names / sizeof names[0], 0, syms,
                   sizeof syms / sizeof syms[0], load_err))
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
