/* test_routes.c -- unit tests for httpd/httpd.h: the route table (paths, methods, permissions) and the listen address parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/rw.h"
#include "httpd/httpd.h"

/* Every route the API has, and the permission it must ask for. A new
 * route fails test_routes_enumerated until it is listed here. */
static const struct {
    const char *path;
    enum auth_perm perm;
} want_routes[] = {
    {"/api/v1/packets", AUTH_PERM_PACKETS},
    {"/api/v1/segments", AUTH_PERM_STATUS},
    {"/api/v1/status", AUTH_PERM_STATUS},
    {"/api/v1/holds", AUTH_PERM_HOLDS},
    {"/api/v1/audit", AUTH_PERM_ADMIN},
    {"/api/v1/flows", AUTH_PERM_FLOWS},
    {"/api/v1/top", AUTH_PERM_FLOWS},
    {"/api/v1/timeline", AUTH_PERM_FLOWS},
    {"/api/v1/cases", AUTH_PERM_CASES},
    {"/api/v1/cases/{id}", AUTH_PERM_CASES},
    {"/api/v1/identities", AUTH_PERM_ADMIN},
    {"/api/v1/cases/{id}/intercept", AUTH_PERM_CASES},
    {"/api/v1/cases/{id}/exports", AUTH_PERM_CASES},
    {"/metrics", AUTH_PERM_METRICS},
    {"/healthz", AUTH_PERM_NONE},
    {"/", AUTH_PERM_NONE},     /* the web console's page */
    {"/ui/*", AUTH_PERM_NONE}, /* and its files */
};
#define NWANT (sizeof want_routes / sizeof want_routes[0])

static size_t nroutes(void)
{
    size_t n = 0;
    while (httpd_route_at(n))
        n++;
    return n;
}

static void test_routes_enumerated(void **state)
{
    (void)state;
    size_t n = nroutes(), seen[NWANT] = {0};
    assert_int_equal(n, NWANT);
    assert_null(httpd_route_at(n));
    assert_null(httpd_route_at(n + 1));
    assert_null(httpd_route_at((size_t)-1));
    for (size_t i = 0; i < n; i++) {
        const struct httpd_route *r = httpd_route_at(i);
        size_t j;
        for (j = 0; j < NWANT; j++)
            if (!strcmp(r->path, want_routes[j].path))
                break;
        if (j == NWANT)
            fail_msg("route %s is not in this test's table: what permission does it need?",
                     r->path);
        seen[j]++;
        print_message("%s: %s, permission %d\n", r->path, r->methods, r->perm);
        assert_int_equal(r->perm, want_routes[j].perm);
        assert_non_null(r->methods);
        assert_true(r->methods[0] != 0);
        assert_int_equal(r->path[0], '/');
        assert_true(r->path[strlen(r->path) - 1] != '/' || !strcmp(r->path, "/"));
        /* each route is found as itself */
        if (strcmp(r->path + strlen(r->path) - 1, "*"))
            assert_ptr_equal(httpd_route_find(r->path), r);
    }
    for (size_t j = 0; j < NWANT; j++)
        if (seen[j] != 1)
            fail_msg("route %s listed %zu times", want_routes[j].path, seen[j]);
}

/* Only the packets route gives packet data; liveness needs nothing. */
static void test_route_permissions(void **state)
{
    (void)state;
    for (size_t i = 0; i < nroutes(); i++) {
        const struct httpd_route *r = httpd_route_at(i);
        if (strcmp(r->path, "/api/v1/packets"))
            assert_true(r->perm != AUTH_PERM_PACKETS && r->perm != AUTH_PERM_PAYLOAD);
    }
    assert_int_equal(httpd_route_find("/api/v1/packets")->perm, AUTH_PERM_PACKETS);
    assert_int_equal(httpd_route_find("/healthz")->perm, AUTH_PERM_NONE);
    assert_true(httpd_route_find("/api/v1/status")->perm != AUTH_PERM_PACKETS);
    assert_true(httpd_route_find("/api/v1/segments")->perm != AUTH_PERM_PACKETS);
    assert_true(httpd_route_find("/metrics")->perm != AUTH_PERM_PACKETS);
}

static void test_route_find_exact(void **state)
{
    (void)state;
    static const char *miss[] = {
        "/api/v1/packets/", "/api/v1/packets/x", "/api/v1/packet", "/api/v1/packetsx",
        "/API/v1/packets",  "/api/V1/status",    "/Healthz",       "/HEALTHZ",
        "/healthz/",        "/healthz ",         " /healthz",      "healthz",
        "/api/v1",          "/api/v1/",          "/api",           "/ui",
        "",                 "api/v1/packets",    "//healthz",      "/api//v1/status",
        "/api/v1/status?x", "/metrics.txt",      "/metric",        "/api/v1/../v1/status",
        "/api/v2/packets",  "/api/v1/status\n",
    };
    for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++)
        if (httpd_route_find(miss[i]))
            fail_msg("'%s' found a route", miss[i]);
    for (size_t j = 0; j < NWANT; j++) {
        const struct httpd_route *r = httpd_route_find(want_routes[j].path);
        assert_non_null(r);
        assert_string_equal(r->path, want_routes[j].path);
    }
    /* The console's files: anything under /ui/ reaches its handler (which
     * decides), nothing else does, and / is the page. */
    static const char *ui[] = {"/ui/console.js", "/ui/vendor/chart.min.js", "/ui/../x", "/ui//"};
    for (size_t i = 0; i < sizeof ui / sizeof ui[0]; i++) {
        const struct httpd_route *r = httpd_route_find(ui[i]);
        assert_non_null(r);
        assert_string_equal(r->path, "/ui/*");
    }
    assert_null(httpd_route_find("/ui/"));
    assert_null(httpd_route_find("/uix/console.js"));
    assert_string_equal(httpd_route_find("/")->path, "/");
}

/* The case routes and the one ID segment they take. */
static void test_route_find_case(void **state)
{
    (void)state;
    const struct httpd_route *one = httpd_route_find("/api/v1/cases/{id}");
    assert_non_null(one);
    assert_ptr_equal(httpd_route_find("/api/v1/cases/LI-2026-7"), one);
    assert_ptr_equal(httpd_route_find("/api/v1/cases/x"), one);
    static const char *miss[] = {"/api/v1/cases/", "/api/v1/cases//", "/api/v1/cases/a/",
                                 "/api/v1/cases/a/b", "/api/v1/casesx", "/api/v1/cases/a/intercept/x",
                                 "/api/v1/cases//intercept", "/api/v1/cases/a/intercep"};
    for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++)
        if (httpd_route_find(miss[i]))
            fail_msg("'%s' found a route", miss[i]);
    assert_string_equal(httpd_route_find("/api/v1/cases")->path, "/api/v1/cases");
    assert_string_equal(httpd_route_find("/api/v1/cases/LI-7/intercept")->path,
                        "/api/v1/cases/{id}/intercept");
}

static void test_route_methods(void **state)
{
    (void)state;
    /* Every route reads with GET and HEAD; only the case routes take more. */
    static const struct {
        const char *path;
        const char *more[4];
    } takes[] = {
        {"/api/v1/cases", {"POST"}},
        {"/api/v1/cases/{id}", {"PATCH", "DELETE"}},
        {"/api/v1/identities", {"POST"}},
        {"/api/v1/cases/{id}/exports", {"POST"}},
    };
    static const char *no[] = {"POST", "DELETE", "PUT", "PATCH", "OPTIONS", "TRACE", "CONNECT",
                               "GETX", "GE", "G", "HEA", "HEADX", "get", "head", "Get", "",
                               " GET", "GET ", "GET,", ",", ", ", "GET, HEAD", "HEAD,GET",
                               "post", "POST ", "PATCHX"};
    for (size_t i = 0; i < nroutes(); i++) {
        const struct httpd_route *r = httpd_route_at(i);
        const char *const *more = NULL;
        for (size_t t = 0; t < sizeof takes / sizeof takes[0]; t++)
            if (!strcmp(takes[t].path, r->path))
                more = takes[t].more;
        if (!httpd_route_allows(r, "GET") || !httpd_route_allows(r, "HEAD"))
            fail_msg("%s refuses GET or HEAD", r->path);
        for (size_t k = 0; k < sizeof no / sizeof no[0]; k++) {
            int extra = 0;
            for (size_t m = 0; more && m < 4 && more[m]; m++)
                extra |= !strcmp(more[m], no[k]);
            if (httpd_route_allows(r, no[k]) != extra)
                fail_msg("%s %s '%s'", r->path, extra ? "refuses" : "takes", no[k]);
        }
    }
}

/* ---- listen addresses ---- */

static void test_parse_listen(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int family; /* 0: refused */
        const char *addr;
        unsigned port;
    } cases[] = {
        {"127.0.0.1:8800", AF_INET, "127.0.0.1", 8800},
        {"0.0.0.0:80", AF_INET, "0.0.0.0", 80},
        {"192.0.2.7:1", AF_INET, "192.0.2.7", 1},
        {"10.1.2.3:65535", AF_INET, "10.1.2.3", 65535},
        {":8800", AF_INET, "127.0.0.1", 8800}, /* an empty ADDR is loopback */
        {"[::1]:8800", AF_INET6, "::1", 8800},
        {"[::]:443", AF_INET6, "::", 443},
        {"[2001:db8::7]:65535", AF_INET6, "2001:db8::7", 65535},
        {"[::ffff:192.0.2.1]:80", AF_INET6, "::ffff:192.0.2.1", 80},
        /* missing or bad port */
        {"127.0.0.1", 0, NULL, 0},
        {"127.0.0.1:", 0, NULL, 0},
        {"[::1]", 0, NULL, 0},
        {"[::1]:", 0, NULL, 0},
        {"[::1]8800", 0, NULL, 0},
        {"127.0.0.1:0", 0, NULL, 0},
        {"[::1]:0", 0, NULL, 0},
        {"127.0.0.1:65536", 0, NULL, 0},
        {"127.0.0.1:99999999999999999999", 0, NULL, 0},
        {"127.0.0.1:-1", 0, NULL, 0},
        {"127.0.0.1:-0", 0, NULL, 0},
        {"127.0.0.1:+80", 0, NULL, 0},
        {"127.0.0.1: 80", 0, NULL, 0},
        {"127.0.0.1:80 ", 0, NULL, 0},
        {"127.0.0.1:8o", 0, NULL, 0},
        {"127.0.0.1:0x50", 0, NULL, 0},
        {"127.0.0.1:http", 0, NULL, 0},
        {"127.0.0.1:80:80", 0, NULL, 0},
        {"[::1]:80:80", 0, NULL, 0},
        /* bad addresses: host names are not resolved; IPv6 needs brackets */
        {"localhost:8800", 0, NULL, 0},
        {"example.com:80", 0, NULL, 0},
        {"256.0.0.1:80", 0, NULL, 0},
        {"1.2.3:80", 0, NULL, 0},
        {"1.2.3.4.5:80", 0, NULL, 0},
        {" 127.0.0.1:80", 0, NULL, 0},
        {"::1", 0, NULL, 0},
        {"::1:8800", 0, NULL, 0},
        {"2001:db8::7:80", 0, NULL, 0},
        {"[::1:8800", 0, NULL, 0},
        {"::1]:8800", 0, NULL, 0},
        {"[localhost]:80", 0, NULL, 0},
        {"[" "1111:2222:3333:4444:5555:6666:7777:8888:1111:2222:3333:4444:5555:6666:7777:8888:"
         "1111:2222:3333:4444:5555:6666:7777:8888:1111:2222:3333:4444:5555:6666:7777:8888]:80",
         0, NULL, 0},
        {"", 0, NULL, 0},
        {":", 0, NULL, 0},
        {"garbage", 0, NULL, 0},
        {"none", 0, NULL, 0},
    };
    int failed = 0; /* every bad case reported, then one failure */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        char err[RW_ERRSZ] = "", got[INET6_ADDRSTRLEN] = "";
        int rc = httpd_parse_listen(cases[i].s, &ss, err);
        if (!cases[i].family) {
            if (rc != RW_EINPUT) {
                print_error("'%s' accepted (family %d), expected a refusal\n", cases[i].s,
                            ss.ss_family);
                failed++;
            } else if (!strstr(err, cases[i].s) || !strstr(err, "ADDR:PORT")) {
                print_error("'%s': message '%s' does not name it and the form\n", cases[i].s,
                            err);
                failed++;
            }
            continue;
        }
        if (rc != 0) {
            print_error("'%s' refused: %s\n", cases[i].s, err);
            failed++;
            continue;
        }
        assert_int_equal(ss.ss_family, cases[i].family);
        unsigned port;
        if (cases[i].family == AF_INET) {
            const struct sockaddr_in *v4 = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &v4->sin_addr, got, sizeof got);
            port = ntohs(v4->sin_port);
        } else {
            const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &v6->sin6_addr, got, sizeof got);
            port = ntohs(v6->sin6_port);
        }
        if (strcmp(got, cases[i].addr) || port != cases[i].port) {
            print_error("'%s' parsed as %s port %u\n", cases[i].s, got, port);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_enumerated),
        cmocka_unit_test(test_route_permissions),
        cmocka_unit_test(test_route_find_exact),
        cmocka_unit_test(test_route_methods),
        cmocka_unit_test(test_route_find_case),
        cmocka_unit_test(test_parse_listen),
    };
    return cmocka_run_group_tests_name("httpd/routes", tests, NULL, NULL);
}
