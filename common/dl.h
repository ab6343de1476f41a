/* dl.h -- a shared library loaded with dlopen() when a feature needs it.
 *
 * Libraries only some configurations use (libcurl, libfixbuf and GLib,
 * GnuTLS for intercept delivery) are not linked: linked, every process
 * maps and relocates them, and their dependencies, at start. Their
 * functions are looked up into a table of the caller's, once. */
#ifndef RW_DL_H
#define RW_DL_H

#include <stddef.h>

/* A function to look up, and where its address goes. */
struct rw_dlsym {
    const char *name;
    void **slot;
};

/* Load the first of names[0 .. nnames) that loads (global: its symbols
 * visible to libraries loaded later) and fill every slot of syms; the
 * handle, or NULL with a message in err[RW_ERRSZ]: "cannot load WHAT
 * (names[0])[, needed for FOR]: why; install PKG", or "the WHAT found has
 * no NAME". for may be NULL. */
void *rw_dl_load(const char *what, const char *pkg, const char *for_, const char *const *names,
                 size_t nnames, int global, const struct rw_dlsym *syms, size_t nsyms, char *err);

#endif
