/* web.c -- the web console's static files: GET / (index.html) and
 * GET /ui/NAME, read from the web root (--web-root; man/rewindd.8, WEB
 * CONSOLE). A request names a file under the root by plain segments only
 * (letters, digits, '.', '_', '-'; no segment starting with '.'), and each
 * segment is opened with O_NOFOLLOW below the root's descriptor, so that no
 * name, encoding or symbolic link reaches a file outside the root. Files
 * are answered with their type, an ETag (revalidated on every use:
 * Cache-Control: no-cache) and a Content-Security-Policy that lets the page
 * load nothing but this server's own scripts, styles and API. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpd/httpd_int.h"

/* Scripts, styles, images and API calls from this origin only; no inline
 * script or style, no frames, no forms posting elsewhere, no plugins. */
#define WEB_CSP                                                                            \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " \
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "           \
    "frame-ancestors 'none'"

static const struct {
    const char *ext, *ctype;
} types[] = {
    {".html", "text/html; charset=utf-8"},  {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},    {".svg", "image/svg+xml"},
    {".png", "image/png"},                  {".ico", "image/x-icon"},
    {".json", "application/json"},          {".txt", "text/plain; charset=utf-8"},
    {".map", "application/json"},
};

static const char *ctype_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t l = strlen(types[i].ext);
        if (n > l && !strcmp(name + n - l, types[i].ext))
            return types[i].ctype;
    }
    return NULL;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

size_t hd_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo)) {
            *w++ = (char)(hi << 4 | lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

int hd_web_path_ok(const char *rel)
{
    if (!*rel || strlen(rel) > 255)
        return 0;
    for (const char *s = rel; *s;) {
        size_t l = strcspn(s, "/");
        if (l == 0 || s[0] == '.') /* empty segment, ".", "..", hidden files */
            return 0;
        for (size_t i = 0; i < l; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-'))
                return 0;
        }
        s += l;
        if (*s == '/' && !*++s) /* a trailing slash names no file */
            return 0;
    }
    return 1;
}

/* Open rel under the directory dfd, segment by segment, never following a
 * symbolic link; -1 with errno. */
static int open_beneath(int dfd, const char *rel)
{
    char seg[256];
    int fd = dup(dfd);
    while (fd >= 0 && *rel) {
        size_t l = strcspn(rel, "/");
        memcpy(seg, rel, l);
        seg[l] = 0;
        rel += l + (rel[l] == '/');
        int last = !*rel;
        int nfd = openat(fd, seg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (last ? 0 : O_DIRECTORY));
        int e = errno;
        close(fd);
        errno = e;
        fd = nfd;
    }
    return fd;
}

int hd_web_open(struct httpd *h, const char *root, int given, char *err)
{
    h->web_fd = -1;
    if (!root)
        return 0;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstatat(fd, "index.html", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (!given) { /* the default: the console is optional */
            rw_warn("http: no web console (no index.html in %s: %s); / answers 404", root,
                    strerror(e));
            return 0;
        }
        return rw_err(err, RW_EINPUT, "--web-root %s: %s%s", root,
                      fd < 0 ? strerror(e) : "no index.html there",
                      fd < 0 ? "" : " (the console's files are web/ of the source tree, "
                                    "installed by make install)");
    }
    h->web_fd = fd;
    snprintf(h->web_root, sizeof h->web_root, "%s", root);
    return 0;
}

void hd_web_close(struct httpd *h)
{
    if (h->web_fd >= 0)
        close(h->web_fd);
    h->web_fd = -1;
}

static enum MHD_Result not_found(struct httpd *h, struct MHD_Connection *c, const char *url,
                                 const char *why)
{
    return hd_send_error(h, c, 404, "not_found", "%s: %s", url, why);
}

enum MHD_Result hd_route_web(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    const char *rel, *url = p->url;
    if (!strcmp(url, "/"))
        rel = "index.html";
    else if (!strncmp(url, "/ui/", 4))
        rel = url + 4;
    else
        return not_found(h, c, url, "not a file of the web console");
    if (h->web_fd < 0)
        return not_found(h, c, url, "this server has no web console (rewindd --web-root DIR; "
                                    "see rewindd(8), WEB CONSOLE)");
    const char *ctype = ctype_of(rel);
    if (!hd_web_path_ok(rel) || !ctype)
        return not_found(h, c, url, "no such file of the web console");
    int fd = open_beneath(h->web_fd, rel);
    struct stat st;
    if (fd < 0)
        return not_found(h, c, url, errno == ELOOP || errno == ENOTDIR
                                        ? "no such file of the web console (links are not followed)"
                                        : "no such file of the web console");
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return not_found(h, c, url, "no such file of the web console");
    }
    char etag[96];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    struct MHD_Response *r;
    unsigned status = 200;
    if (inm && !strcmp(inm, etag)) {
        close(fd);
        status = 304;
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* owns fd */
        if (!r)
            close(fd);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "ETag", etag);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}
