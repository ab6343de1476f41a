/* fuzz_webpath.c -- libFuzzer target for httpd/web.c: a request path as
 * libmicrohttpd would hand it (after hd_unescape) judged by hd_web_path_ok.
 * Whatever the bytes, an accepted path is relative, has no empty, "." or
 * ".." segment, no NUL, and unescaping never lengthens the string. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd/httpd_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    size_t before = strlen(s);
    size_t n = hd_unescape(NULL, NULL, s);
    if (n > before || n != strlen(s))
        abort();
    if (hd_web_path_ok(s)) {
        if (s[0] == '/' || strstr(s, "//") || strstr(s, "/.") || s[0] == '.' || s[n - 1] == '/')
            abort();
        for (size_t i = 0; i < n; i++)
            if (s[i] == '\\' || s[i] == '%' || (unsigned char)s[i] < 0x21)
                abort();
    }
    free(s);
    return 0;
}
