/* test_token.c -- unit tests for auth/token.c: the role table, bearer
 * header parsing, token making, checking, revoking and expiry over a real
 * index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "index/index.h"

/* Every role against every permission: the table of man/rewindd.8. */
static void test_role_table(void **state)
{
    (void)state;
    static const struct {
        enum auth_perm perm;
        const char *roles; /* letters: v viewer, n noc, g agency, a analyst, A admin */
    } want[] = {
        {AUTH_PERM_NONE, "vngaA"},   {AUTH_PERM_METRICS, "vnaA"}, {AUTH_PERM_STATUS, "vnaA"},
        {AUTH_PERM_HOLDS, "aA"},     {AUTH_PERM_PACKETS, "naA"},  {AUTH_PERM_PAYLOAD, "aA"},
        {AUTH_PERM_HOLD, "aA"},      {AUTH_PERM_ADMIN, "A"},      {AUTH_PERM_FLOWS, "naA"},
        {AUTH_PERM_CASES, "gA"},
    };
    static const struct {
        enum auth_role role;
        char letter;
    } roles[] = {{AUTH_VIEWER, 'v'}, {AUTH_NOC, 'n'}, {AUTH_AGENCY, 'g'}, {AUTH_ANALYST, 'a'},
                 {AUTH_ADMIN, 'A'}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
            int expect = strchr(want[i].roles, roles[r].letter) != NULL;
            if (auth_allows(roles[r].role, want[i].perm) != expect)
                fail_msg("role %s, permission %d: %d, want %d", auth_role_name(roles[r].role),
                         want[i].perm, !expect, expect);
        }
    /* nobody only reaches what needs nothing */
    assert_true(auth_allows(AUTH_NOBODY, AUTH_PERM_NONE));
    assert_false(auth_allows(AUTH_NOBODY, AUTH_PERM_STATUS));
    assert_false(auth_allows((enum auth_role)99, AUTH_PERM_NONE));
    enum auth_role r;
    char err[RW_ERRSZ];
    assert_int_equal(auth_role_parse("noc", &r, err), 0);
    assert_int_equal(r, AUTH_NOC);
    assert_int_equal(auth_role_parse("root", &r, err), RW_EINPUT);
    assert_non_null(strstr(err, "analyst"));
    assert_int_equal(auth_role_parse("nobody", &r, err), RW_EINPUT);
}

static void test_bearer_parse(void **state)
{
    (void)state;
    char err[RW_ERRSZ];
    const char *t;
    size_t n;
    const char *tok = "abcdefghijABCDEFGHIJ0123456789-_abcdefghijk"; /* 43 */
    char v[128];
    static const char *const good[] = {"Bearer %s", "bearer %s", "BEARER  %s", "Bearer\t%s ",
                                       "Bearer %s\t"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(v, sizeof v, good[i], tok);
        if (auth_bearer_parse(v, &t, &n, err) != 0)
            fail_msg("'%s' refused: %s", v, err);
        assert_int_equal(n, 43);
        assert_memory_equal(t, tok, 43);
    }
    static const char *const bad[] = {
        NULL, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearerx abc", "Token abc",
        "Bearer abcdefghijABCDEFGHIJ0123456789-_abcdefghij",    /* 42 */
        "Bearer abcdefghijABCDEFGHIJ0123456789-_abcdefghijkl",  /* 44 */
        "Bearer abcdefghijABCDEFGHIJ0123456789+/abcdefghijk",   /* base64, not url */
        "Bearer abcdefghijABCDEFGHIJ0123456789-_abcdefghijk x", /* trailing word */
        "Bearer abcdefghijABCDEFGHIJ0123456789-_abcdefghij=",   /* padding */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (auth_bearer_parse(bad[i], &t, &n, err) != RW_EINPUT)
            fail_msg("'%s' taken", bad[i] ? bad[i] : "(null)");
        /* the message never quotes what was sent */
        assert_null(strstr(err, "abcdefghij"));
        assert_true(err[0] != 0);
    }
}

struct fx {
    char dir[64];
    idx_t *ix;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[RW_ERRSZ];
    snprintf(f->dir, sizeof f->dir, "/tmp/test_token-XXXXXX");
    if (!mkdtemp(f->dir) || idx_open(f->dir, IDX_WRITE, &f->ix, err) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    idx_close(f->ix);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void test_token_life(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ], t1[AUTH_TOKEN_CHARS + 1], t2[AUTH_TOKEN_CHARS + 1];
    struct auth_principal p;
    int64_t now = rw_now_ns();
    assert_int_equal(auth_tokens_defined(f->ix, now, err), 0);
    assert_int_equal(auth_token_add(f->ix, "alice", AUTH_NOC, "", 0, "tester", t1, err), 0);
    assert_int_equal(strlen(t1), AUTH_TOKEN_CHARS);
    assert_int_equal(strspn(t1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     AUTH_TOKEN_CHARS);
    assert_int_equal(auth_tokens_defined(f->ix, now, err), 1);
    assert_int_equal(auth_token_check(f->ix, t1, AUTH_TOKEN_CHARS, now, &p, err), 1);
    assert_string_equal(p.name, "alice");
    assert_int_equal(p.role, AUTH_NOC);
    assert_string_equal(p.method, "token");
    /* one changed character is another, unknown token */
    char t1b[AUTH_TOKEN_CHARS + 1];
    memcpy(t1b, t1, sizeof t1b);
    t1b[20] = t1b[20] == 'A' ? 'B' : 'A';
    assert_int_equal(auth_token_check(f->ix, t1b, AUTH_TOKEN_CHARS, now, &p, err), 0);
    /* one live token per name */
    assert_int_equal(auth_token_add(f->ix, "alice", AUTH_ADMIN, "", 0, "tester", t2, err),
                     RW_EINPUT);
    /* agency needs a case, others take none */
    assert_int_equal(auth_token_add(f->ix, "fbi", AUTH_AGENCY, "", 0, "tester", t2, err),
                     RW_EINPUT);
    assert_int_equal(auth_token_add(f->ix, "bob", AUTH_NOC, "LI-1", 0, "tester", t2, err),
                     RW_EINPUT);
    assert_int_equal(auth_token_add(f->ix, "bad name", AUTH_NOC, "", 0, "tester", t2, err),
                     RW_EINPUT);
    assert_int_equal(auth_token_add(f->ix, "late", AUTH_NOC, "", now - 1, "tester", t2, err),
                     RW_EINPUT);
    assert_int_equal(auth_token_add(f->ix, "fbi", AUTH_AGENCY, "LI-1", 0, "tester", t2, err), 0);
    assert_int_equal(auth_token_check(f->ix, t2, AUTH_TOKEN_CHARS, now, &p, err), 1);
    assert_string_equal(p.case_id, "LI-1");
    /* revoked: refused, saying so; the name may have a new token */
    assert_int_equal(auth_token_revoke(f->ix, "alice", err), 1);
    assert_int_equal(auth_token_revoke(f->ix, "alice", err), 0);
    assert_int_equal(auth_token_check(f->ix, t1, AUTH_TOKEN_CHARS, rw_now_ns(), &p, err),
                     RW_EINPUT);
    assert_non_null(strstr(err, "revoked"));
    assert_int_equal(auth_token_add(f->ix, "alice", AUTH_ADMIN, "", 0, "tester", t1, err), 0);
    /* expiry */
    char t3[AUTH_TOKEN_CHARS + 1];
    int64_t exp = rw_now_ns() + RW_NS_PER_SEC;
    assert_int_equal(auth_token_add(f->ix, "brief", AUTH_VIEWER, "", exp, "tester", t3, err), 0);
    assert_int_equal(auth_token_check(f->ix, t3, AUTH_TOKEN_CHARS, exp - 1, &p, err), 1);
    assert_int_equal(auth_token_check(f->ix, t3, AUTH_TOKEN_CHARS, exp, &p, err), RW_EINPUT);
    assert_non_null(strstr(err, "expired"));
    /* the list shows all, by creation, with no secret in it */
    struct auth_token_info *v;
    size_t n;
    assert_int_equal(auth_token_list(f->ix, &v, &n, err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(v[0].name, "alice");
    assert_true(v[0].revoked != 0);
    assert_string_equal(v[3].name, "brief");
    assert_int_equal(strlen(v[0].id), 12);
    assert_string_equal(v[1].creator, "tester");
    /* revoke by id */
    assert_int_equal(auth_token_revoke(f->ix, v[1].id, err), 1);
    free(v);
    /* two tokens are never the same */
    char a[AUTH_TOKEN_CHARS + 1], b[AUTH_TOKEN_CHARS + 1];
    uint8_t ha[32], hb[32];
    assert_int_equal(auth_token_new(a, ha, err), 0);
    assert_int_equal(auth_token_new(b, hb, err), 0);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_table),
        cmocka_unit_test(test_bearer_parse),
        cmocka_unit_test_setup_teardown(test_token_life, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
