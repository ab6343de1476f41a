/* dl.c -- a shared library loaded with dlopen() when a feature needs it
 * (dl.h). */
#include "common/dl.h"
#include "common/rw.h"

#include <dlfcn.h>

void *rw_dl_load(const char *what, const char *pkg, const char *for_, const char *const *names,
                 size_t nnames, int global, const struct rw_dlsym *syms, size_t nsyms, char *err)
{
    int flags = RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL);
    void *h = NULL;
    for (size_t i = 0; !h && i < nnames; i++)
        h = dlopen(names[i], flags);
    if (!h) {
        rw_err(err, RW_EIO, "cannot load %s (%s)%s%s: %s; install %s", what, names[0],
               for_ ? ", needed for " : "", for_ ? for_ : "", dlerror(), pkg);
        return NULL;
    }
    for (size_t i = 0; i < nsyms; i++)
        if (!(*syms[i].slot = dlsym(h, syms[i].name))) {
            rw_err(err, RW_EIO, "the %s found has no %s", what, syms[i].name);
            return NULL;
        }
    return h;
}
