/* fuzz_auth.c -- libFuzzer target for the Authorization header parser
 * (auth/token.c): whatever the bytes, auth_bearer_parse() either refuses
 * them with a message that does not quote them, or points at exactly
 * AUTH_TOKEN_CHARS base64url characters inside the value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size + 1), err[RW_ERRSZ];
    const char *tok;
    size_t n;
    if (!v)
        return 0;
    memcpy(v, data, size);
    v[size] = 0;
    if (auth_bearer_parse(v, &tok, &n, err) == 0) {
        if (n != AUTH_TOKEN_CHARS || tok < v || tok + n > v + strlen(v))
            abort();
        for (size_t i = 0; i < n; i++)
            if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[i]) ||
                !tok[i])
                abort();
        uint8_t h[32];
        auth_token_hash(tok, n, h);
    }
    free(v);
    return 0;
}
