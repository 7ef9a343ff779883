#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mgw_strbuf_init(struct mgw_strbuf *b, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
}

void mgw_strbuf_free(struct mgw_strbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void mgw_strbuf_reset(struct mgw_strbuf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the NUL. */
static int reserve(struct mgw_strbuf *b, size_t n)
{
    size_t want;
    char *p;

    if (b->err)
        return b->err;
    if (n > b->cap - b->len) {
        b->err = -ENOSPC;
        return b->err;
    }
    want = b->len + n + 1;
    if (want <= b->alloc)
        return 0;
    size_t alloc = b->alloc ? b->alloc : 256;
    while (alloc < want)
        alloc *= 2;
    p = realloc(b->data, alloc);
    if (!p) {
        b->err = -ENOMEM;
        return b->err;
    }
    b->data = p;
    b->alloc = alloc;
    return 0;
}

void mgw_strbuf_append(struct mgw_strbuf *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mgw_strbuf_printf(struct mgw_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char hex[] = "0123456789abcdef";

/* Escapes byte c into e; returns the escape's length (1, 2 or 6). */
static size_t escape_byte(unsigned char c, char e[6])
{
    if (c == '"' || c == '\\') {
        e[0] = '\\';
        e[1] = (char)c;
        return 2;
    }
    if (c >= 0x20 && c < 0x7f) {
        e[0] = (char)c;
        return 1;
    }
    memcpy(e, "\\u00", 4);
    e[4] = hex[c >> 4];
    e[5] = hex[c & 15];
    return 6;
}

const char *mgw_json_escape(const char *s, char *out, size_t cap)
{
    size_t len = 0;

    if (cap == 0)
        return out;
    for (; s && *s; s++) {
        char e[6];
        size_t n = escape_byte((unsigned char)*s, e);

        if (len + n >= cap)
            break;
        memcpy(out + len, e, n);
        len += n;
    }
    out[len] = '\0';
    return out;
}

void mgw_strbuf_json_string(struct mgw_strbuf *b, const char *s, size_t n)
{
    if (reserve(b, n * 6 + 2) < 0) /* worst case: every byte escaped */
        return;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++)
        o += escape_byte((unsigned char)s[i], o);
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
}

char *mgw_strdup_opt(const char *s, bool *ok)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}
