/* tls.c -- TLS files checked with GnuTLS, and the client certificate of
 * mutual TLS required during the handshake (tls.h). */
#include "httpd/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PEM_MAX (1 << 20) /* larger than any certificate chain or key file */

void httpd_tls_free(struct httpd_tls *t)
{
    free(t->cert);
    if (t->key) /* the private key does not linger in freed memory */
        explicit_bzero(t->key, strlen(t->key));
    free(t->key);
    free(t->ca);
    t->cert = t->key = t->ca = NULL;
}

/* Read the PEM file path, given as option opt, into *out (malloc'ed, NUL
 * terminated). RW_EINPUT naming both when it is missing, unreadable, not a
 * regular file, too large or not PEM. */
static int read_pem(const char *opt, const char *path, char **out, char *err)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rw_err(err, RW_EINPUT, "%s %s: %s", opt, path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        rc = rw_err(err, RW_EINPUT, "%s %s: %s", opt, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = rw_err(err, RW_EINPUT, "%s %s: not a regular file", opt, path);
        goto out;
    }
    if (!(buf = malloc(PEM_MAX + 1))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) { /* up to one byte past PEM_MAX, to tell a file too large */
        ssize_t r = read(fd, buf + n, PEM_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = rw_err(err, RW_EINPUT, "%s %s: %s", opt, path, strerror(errno));
            goto out;
        }
        if (r == 0 || (n += (size_t)r) > PEM_MAX)
            break;
    }
    if (n > PEM_MAX) {
        rc = rw_err(err, RW_EINPUT, "%s %s: larger than %d bytes: not a PEM file", opt, path,
                    PEM_MAX);
        goto out;
    }
    buf[n] = 0;
    if (memchr(buf, 0, n) || !strstr(buf, "-----BEGIN ")) {
        rc = rw_err(err, RW_EINPUT, "%s %s: not PEM (no '-----BEGIN ...-----' line; a DER file "
                    "converts with 'openssl x509 -inform der' or 'openssl pkey -inform der')",
                    opt, path);
        goto out;
    }
out:
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

static void certs_free(gnutls_x509_crt_t *c, unsigned n)
{
    for (unsigned i = 0; c && i < n; i++)
        gnutls_x509_crt_deinit(c[i]);
    gnutls_free(c);
}

/* The certificates in pem (read from path, given as opt), in file order;
 * free with certs_free(). */
static int parse_certs(const char *opt, const char *path, const char *pem, gnutls_x509_crt_t **c,
                       unsigned *n, char *err)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    *c = NULL;
    *n = 0;
    if (!strstr(pem, "-----BEGIN CERTIFICATE-----") &&
        !strstr(pem, "-----BEGIN X509 CERTIFICATE-----"))
        return rw_err(err, RW_EINPUT, "%s %s: %s", opt, path,
                      strstr(pem, "PRIVATE KEY-----")
                          ? (strcmp(opt, "--tls-cert") ? "holds a private key, not a certificate"
                                                       : "holds a private key, not a certificate "
                                                         "(--tls-cert and --tls-key swapped?)")
                      : strstr(pem, "CERTIFICATE REQUEST-----")
                          ? "holds a certificate request, not a certificate (sign it first)"
                          : "no PEM certificate in it ('-----BEGIN CERTIFICATE-----')");
    int r = gnutls_x509_crt_list_import2(c, n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (r < 0)
        return rw_err(err, RW_EINPUT, "%s %s: not a valid certificate: %s", opt, path,
                      gnutls_strerror(r));
    return 0;
}

/* Append to warn (size RW_ERRSZ) why clients will refuse c now: expired,
 * or not valid yet. Such a certificate is still served: its owner may be
 * about to replace it, and a daemon that will not start captures nothing. */
static void cert_validity(const char *opt, const char *path, gnutls_x509_crt_t c, char *warn)
{
    time_t now = time(NULL), from = gnutls_x509_crt_get_activation_time(c),
           until = gnutls_x509_crt_get_expiration_time(c), t = 0;
    const char *what = NULL;
    char when[32], dn[256] = "";
    size_t dl = sizeof dn;
    struct tm tm;
    if (until != (time_t)-1 && until < now) {
        what = "expired on";
        t = until;
    } else if (from != (time_t)-1 && from > now) {
        what = "is not valid before";
        t = from;
    }
    if (!what)
        return;
    if (gnutls_x509_crt_get_dn(c, dn, &dl) < 0)
        dn[0] = 0;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    size_t l = strlen(warn);
    snprintf(warn + l, RW_ERRSZ - l, "%s%s %s: certificate '%s' %s %s; clients will refuse it",
             l ? "; " : "", opt, path, dn, what, when);
}

/* The private key in pem (path, given as opt) parses, unencrypted. */
static int parse_key(const char *opt, const char *path, const char *pem, char *err)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    gnutls_x509_privkey_t k;
    if (!strstr(pem, "PRIVATE KEY-----"))
        return rw_err(err, RW_EINPUT, "%s %s: %s", opt, path,
                      strstr(pem, "CERTIFICATE-----")
                          ? "holds a certificate, not a private key (--tls-cert and --tls-key "
                            "swapped?)"
                          : "no PEM private key in it ('-----BEGIN PRIVATE KEY-----')");
    /* The daemon starts unattended: there is nobody to ask for a passphrase. */
    if (strstr(pem, "ENCRYPTED PRIVATE KEY-----") || strstr(pem, "Proc-Type: 4,ENCRYPTED"))
        return rw_err(err, RW_EINPUT, "%s %s: the private key is encrypted; give it unencrypted "
                      "('openssl pkey -in KEY -out PLAIN') in a file only rewindd may read",
                      opt, path);
    if (gnutls_x509_privkey_init(&k) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    int r = gnutls_x509_privkey_import2(k, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(k);
    if (r < 0)
        return rw_err(err, RW_EINPUT, "%s %s: not a valid private key: %s", opt, path,
                      gnutls_strerror(r));
    return 0;
}

/* The key is the certificate's: checked here, for libmicrohttpd would only
 * fail to start. */
static int key_matches(const char *cert, const char *key, const struct httpd_tls *t, char *err)
{
    gnutls_certificate_credentials_t cr;
    gnutls_datum_t cd = {(unsigned char *)t->cert, (unsigned)strlen(t->cert)},
                   kd = {(unsigned char *)t->key, (unsigned)strlen(t->key)};
    if (gnutls_certificate_allocate_credentials(&cr) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    int r = gnutls_certificate_set_x509_key_mem2(cr, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cr);
    if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
        return rw_err(err, RW_EINPUT, "--tls-key %s does not match the certificate in --tls-cert "
                      "%s (the key of another certificate? the server's own certificate must "
                      "come first in the file)", key, cert);
    if (r < 0)
        return rw_err(err, RW_EINPUT, "--tls-cert %s with --tls-key %s: %s", cert, key,
                      gnutls_strerror(r));
    return 0;
}

int httpd_tls_load(const char *cert, const char *key, const char *ca, struct httpd_tls *t,
                   char *err)
{
    gnutls_x509_crt_t *c = NULL;
    unsigned n = 0;
    int rc;
    memset(t, 0, sizeof *t);
    if (!cert && !key)
        return ca ? rw_err(err, RW_EINPUT, "--tls-client-ca needs --tls-cert and --tls-key: "
                           "client certificates are part of TLS")
                  : 0;
    if (!cert || !key)
        return rw_err(err, RW_EINPUT, "%s needs %s too: a TLS server needs its certificate and "
                      "its private key", cert ? "--tls-cert" : "--tls-key",
                      cert ? "--tls-key" : "--tls-cert");
    if ((rc = read_pem("--tls-cert", cert, &t->cert, err)) < 0 ||
        (rc = read_pem("--tls-key", key, &t->key, err)) < 0 ||
        (ca && (rc = read_pem("--tls-client-ca", ca, &t->ca, err)) < 0))
        goto fail;
    if ((rc = parse_certs("--tls-cert", cert, t->cert, &c, &n, err)) < 0)
        goto fail;
    cert_validity("--tls-cert", cert, c[0], t->warn);
    certs_free(c, n);
    c = NULL;
    if ((rc = parse_key("--tls-key", key, t->key, err)) < 0 ||
        (rc = key_matches(cert, key, t, err)) < 0)
        goto fail;
    if (ca) {
        if ((rc = parse_certs("--tls-client-ca", ca, t->ca, &c, &n, err)) < 0)
            goto fail;
        for (unsigned i = 0; i < n; i++)
            cert_validity("--tls-client-ca", ca, c[i], t->warn);
        certs_free(c, n);
    }
    return 0;
fail:
    certs_free(c, n);
    httpd_tls_free(t);
    return rc;
}

/* ---------- client certificates ---------- */

static _Thread_local int refusal_logged;

int httpd_tls_refusal_logged(void)
{
    int r = refusal_logged;
    refusal_logged = 0;
    return r;
}

/* The subject DN of the first certificate of chain: as
 * httpd_tls_client_subject(). */
static int chain_subject(const gnutls_datum_t *chain, unsigned count, char *out, size_t n)
{
    gnutls_x509_crt_t c;
    gnutls_datum_t dn = {NULL, 0};
    int rc = 0;
    if (!chain || !count || gnutls_x509_crt_init(&c) < 0)
        return 0;
    if (gnutls_x509_crt_import(c, &chain[0], GNUTLS_X509_FMT_DER) >= 0 &&
        gnutls_x509_crt_get_dn3(c, &dn, 0) >= 0) {
        rc = dn.size < n ? 1 : RW_EINPUT;
        if (rc > 0) {
            memcpy(out, dn.data, dn.size);
            out[dn.size] = 0;
        }
    }
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(c);
    return rc;
}

/* 1 when the client's certificate chain checks out against the trusted CAs
 * and may serve a TLS client; else 0 with the reason in why (size n). */
static int client_chain_ok(gnutls_session_t s, char *why, size_t n)
{
    /* A certificate whose extended key usage leaves out TLS clients (a
     * server's from the same authority, say) is refused. */
    gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID,
                                     (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0};
    unsigned status = 0;
    int r = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
    if (r < 0) {
        snprintf(why, n, "%s", r == GNUTLS_E_NO_CERTIFICATE_FOUND ? "none presented"
                                                                    : gnutls_strerror(r));
        return 0;
    }
    if (status) {
        gnutls_datum_t txt = {NULL, 0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) < 0)
            snprintf(why, n, "verification status 0x%x", status);
        else
            snprintf(why, n, "%.*s", (int)strcspn((char *)txt.data, "\n"), (char *)txt.data);
        gnutls_free(txt.data);
        for (size_t l = strlen(why); l > 0 && why[l - 1] == ' '; l--)
            why[l - 1] = 0;
        return 0;
    }
    return 1;
}

/* GnuTLS calls this in the handshake once the client's certificate message
 * is in; nonzero fails the handshake, so such a client never sends a
 * request. */
static int verify_client(gnutls_session_t s)
{
    char why[256], subj[512];
    if (client_chain_ok(s, why, sizeof why))
        return 0;
    unsigned count = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &count);
    if (chain_subject(chain, count, subj, sizeof subj) <= 0)
        snprintf(subj, sizeof subj, "(none)");
    rw_warn("https: refused a client at the TLS handshake: client certificate %s: %s", subj, why);
    refusal_logged = 1;
    return -1;
}

/* GNUTLS_CERT_REQUIRE fails a handshake without a certificate inside
 * GnuTLS (verify_client is not called then; libmicrohttpd logs the failed
 * handshake). verify_client checks any certificate sent: GnuTLS does not
 * on a server unless told to. */
void httpd_tls_require_client_cert(void *session)
{
    gnutls_session_t s = session;
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_function(s, verify_client);
}

int httpd_tls_client_subject(void *session, char *out, size_t n)
{
    char why[256];
    unsigned count = 0;
    if (!session || !client_chain_ok(session, why, sizeof why))
        return 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &count);
    return chain_subject(chain, count, out, n);
}
