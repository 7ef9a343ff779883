#include "ibwire.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"

/* IB versions have three digits: "v999999" is the longest number we take, anything longer is
 * junk. A pre-v100 client's version token ("62") is at most MAX_LEGACY_DIGITS before its NUL. */
#define MAX_VERSION_DIGITS 6
#define MAX_LEGACY_DIGITS  9

static const uint8_t api_magic[4] = { 'A', 'P', 'I', '\0' };

/* Parses the digits at s[*i..len) as a version number and advances *i past them. */
static int parse_version(const char *s, size_t len, size_t *i, int *v)
{
    size_t from = *i, n = 0;
    int64_t x;

    while (from + n < len && s[from + n] >= '0' && s[from + n] <= '9')
        n++;
    if (n == 0 || n > MAX_VERSION_DIGITS)
        return -1;
    if (ibw_parse_i64(s + from, n, 0, 999999, &x) != 0)
        return -1;
    *v = (int)x;
    *i = from + n;
    return 0;
}

/* "v<min>[..<max>][ <options>]", exactly len bytes, no NUL. */
static int parse_version_string(const char *s, size_t len, struct ibw_hello *h)
{
    size_t i = 0, olen;
    int min, max;

    if (len == 0 || s[0] != 'v')
        return IBW_EBADHELLO;
    i = 1;
    if (parse_version(s, len, &i, &min) != 0)
        return IBW_EBADHELLO;
    max = min;
    if (i + 1 < len && s[i] == '.' && s[i + 1] == '.') {
        i += 2;
        if (parse_version(s, len, &i, &max) != 0)
            return IBW_EBADHELLO;
    }
    if (min > max)
        return IBW_EBADHELLO;
    if (i == len) {
        olen = 0;
    } else {
        if (s[i] != ' ')
            return IBW_EBADHELLO;
        i++;
        olen = len - i;
        if (olen >= sizeof h->options || memchr(s + i, '\0', olen) != NULL)
            return IBW_EBADHELLO;
    }
    h->min_version = min;
    h->max_version = max;
    if (olen > 0)
        memcpy(h->options, s + i, olen);
    h->options[olen] = '\0';
    return 0;
}

ssize_t ibw_hello_parse(const uint8_t *buf, size_t len, struct ibw_hello *h)
{
    uint32_t n;
    size_t i;
    int rc;

    if (len == 0)
        return 0;
    /* A pre-v100 client opens with its version as a NUL-terminated decimal token ("62\0").
     * A digit can never start "API\0", so this is decided before the magic comparison. */
    if (buf[0] >= '0' && buf[0] <= '9') {
        for (i = 1; i < len && i <= MAX_LEGACY_DIGITS; i++) {
            if (buf[i] == '\0')
                return IBW_ELEGACY;
            if (!(buf[i] >= '0' && buf[i] <= '9'))
                return IBW_ENOTAPI;
        }
        return i > MAX_LEGACY_DIGITS ? IBW_ENOTAPI : 0;
    }
    /* Refuse at the first byte that cannot be part of "API\0". */
    for (i = 0; i < len && i < sizeof api_magic; i++) {
        if (buf[i] != api_magic[i])
            return IBW_ENOTAPI;
    }
    if (len < 8)
        return 0;
    n = ibw__load_be32(buf + 4);
    if (n == 0)
        return IBW_EZEROLEN;
    if (n > IBW_MAX_HELLO)
        return IBW_EMSGSIZE;
    if (len - 8 < n)
        return 0;
    rc = parse_version_string((const char *)buf + 8, n, h);
    if (rc)
        return rc;
    return (ssize_t)n + 8;
}

int ibw_negotiate_version(const struct ibw_hello *h, int server_max)
{
    return h->max_version < server_max ? h->max_version : server_max;
}

ssize_t ibw_enc_hello(struct ibw_writer *w, int min_version, int max_version, const char *options)
{
    char s[8 + 2 * MAX_VERSION_DIGITS + sizeof((struct ibw_hello *)0)->options];
    size_t olen = options ? strlen(options) : 0;
    int n;

    if (w->err)
        return w->err;
    if (w->open) { /* the raw handshake cannot sit inside a frame */
        w->err = IBW_ESTATE;
        return w->err;
    }
    /* Refuse what ibw_hello_parse would refuse; nothing is written. */
    if (min_version < 0 || max_version > 999999 || min_version > max_version ||
        olen >= sizeof((struct ibw_hello *)0)->options)
        return IBW_EBADHELLO;
    if (min_version == max_version)
        n = snprintf(s, sizeof s, "v%d%s%s", min_version, olen ? " " : "", olen ? options : "");
    else
        n = snprintf(s, sizeof s, "v%d..%d%s%s", min_version, max_version, olen ? " " : "",
                     olen ? options : "");
    if (n < 0 || (size_t)n >= sizeof s)
        return IBW_EBADHELLO;
    if (w->cap - w->len < sizeof api_magic + 4 + (size_t)n) {
        w->err = IBW_ENOSPC;
        return w->err;
    }
    memcpy(w->buf + w->len, api_magic, sizeof api_magic);
    ibw__store_be32(w->buf + w->len + 4, (uint32_t)n);
    memcpy(w->buf + w->len + 8, s, (size_t)n);
    w->len += 8 + (size_t)n;
    return 8 + (ssize_t)n;
}

ssize_t ibw_enc_start_api(struct ibw_writer *w, int client_id, const char *capabilities)
{
    ibw_writer_begin(w);
    ibw_put_int(w, IBW_OUT_START_API);
    ibw_put_int(w, 2);
    ibw_put_int(w, client_id);
    ibw_put_str(w, capabilities);
    return ibw_writer_end(w);
}
