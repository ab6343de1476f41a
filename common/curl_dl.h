/* curl_dl.h -- libcurl, loaded with dlopen() on first use.
 *
 * libcurl pulls in some thirty shared libraries (TLS, Kerberos, LDAP, SSH,
 * IDN...). Linked, they cost every start of the CLI its dynamic loader's
 * time (about half of a short `rewind query`), and a capturing rewindd
 * resident memory (their code and relocated data, and the shared libcrypto
 * they bring: 3.6 MiB with libfixbuf and GLib, export/ipfix.c), though
 * only `rewind --url`, the ClickHouse export and the federation's HTTP
 * client use libcurl. So no
 * binary links it: the few functions used are looked up here, once, into a
 * table (no curl_* symbols of ours that a real libcurl linked one day
 * would clash with), and curl_global_init() is called then. */
#ifndef CURL_DL_H
#define CURL_DL_H

#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK 1 /* the function-pointer setopt below */
#endif
#include <curl/curl.h>

struct rw_curl {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free)(void *);
    void (*easy_cleanup)(CURL *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
};

/* The functions, loaded on the first call (thread-safe); NULL, with a
 * message in err[RW_ERRSZ] saying what to install, when libcurl cannot
 * be loaded. */
const struct rw_curl *rw_curl(char *err);

#endif
