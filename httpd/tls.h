/* tls.h -- TLS for the HTTP front door, private to httpd/: the PEM files of
 * --tls-cert, --tls-key and --tls-client-ca read and checked with GnuTLS
 * before libmicrohttpd sees them, and the client certificate of mutual TLS
 * required and checked during the handshake. GnuTLS is named only here and
 * in tls.c (its header declares a `union params` that httpd.c's own
 * `struct params` would clash with). */
#ifndef HTTPD_TLS_H
#define HTTPD_TLS_H

#include <stddef.h>

#include "common/rw.h"

/* GnuTLS's defaults less TLS 1.0 and 1.1: no client of this API needs them. */
#define HTTPD_TLS_PRIORITIES "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"

/* The PEM texts of the TLS options: each NUL-terminated and malloc'ed,
 * NULL when the option is not given. */
struct httpd_tls {
    char *cert, *key, *ca;
    char warn[RW_ERRSZ]; /* "" or why clients will refuse a certificate (expired) */
};

/* Read and check the files (paths, as given to --tls-cert, --tls-key and
 * --tls-client-ca; cert and key both NULL: plain HTTP, t all NULL) into t,
 * zeroed first. RW_EINPUT, naming the option and the file, when one is
 * missing, unreadable, not PEM or of the wrong kind, when the key is not
 * the certificate's, or when only one of cert and key is given. An expired
 * certificate is no error: t->warn says so. Free with httpd_tls_free(). */
int httpd_tls_load(const char *cert, const char *key, const char *ca, struct httpd_tls *t,
                   char *err) RW_WUR;
/* Free t's texts (the key wiped first); t may be all NULL. */
void httpd_tls_free(struct httpd_tls *t);

/* On a new server session (a gnutls_session_t) whose handshake has not
 * begun: require a client certificate that the trusted CAs signed, else
 * fail the handshake with one warn line saying why. */
void httpd_tls_require_client_cert(void *session);

/* The subject DN of the session's client certificate (RFC 4514, as GnuTLS
 * writes it: "CN=alice,O=Example") into out (size n): 1 when the client
 * presented one that the trusted CAs signed (checked here, whatever the
 * handshake did), 0 when there is none or it is not trusted, RW_EINPUT
 * when the DN does not fit n (never truncated: a cut DN could name another
 * principal). */
int httpd_tls_client_subject(void *session, char *out, size_t n);

/* 1 once after httpd_tls_require_client_cert's check refused a client on
 * this thread (and logged why): libmicrohttpd's own line about the failed
 * handshake, logged next on the same thread, adds nothing. */
int httpd_tls_refusal_logged(void);

#endif
