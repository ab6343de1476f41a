/* fuzz_uri.c -- libFuzzer target for the HTTP server's checks of raw
 * request bytes (httpd/guard.c): the request URI's UTF-8 and %00 check and
 * the bounding of header values, on arbitrary bytes. Whatever they say
 * must itself be valid UTF-8 (it goes into JSON) and a bounded header
 * value must hold no control character (it goes into a header line). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd/httpd_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), msg[160], out[HD_ECHO_MAX + 96];
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (hd_raw_uri_check(s, msg, sizeof msg) &&
        hd_utf8_prefix((const unsigned char *)msg, strlen(msg)) != strlen(msg))
        __builtin_trap();
    hd_bounded_value(s, HD_ECHO_MAX, out, sizeof out);
    for (const char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            __builtin_trap();
    if (strlen(out) >= sizeof out)
        __builtin_trap();
    free(s);
    return 0;
}
