/* A growable string with a hard cap (private to libmockgw).
 *
 * data is always NUL-terminated (after the first successful append). A write that would pass
 * the cap, or a failed allocation, sets the sticky err (-ENOMEM / -ENOSPC) and writes nothing.
 */
#ifndef MGW_STRBUF_H
#define MGW_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct mgw_strbuf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* largest len allowed */
    int err;
};

void mgw_strbuf_init(struct mgw_strbuf *b, size_t cap);
void mgw_strbuf_free(struct mgw_strbuf *b);
/* Empties b (keeps its storage) and clears err. */
void mgw_strbuf_reset(struct mgw_strbuf *b);
void mgw_strbuf_append(struct mgw_strbuf *b, const char *s, size_t n);
void mgw_strbuf_printf(struct mgw_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string. Bytes that are not printable ASCII are escaped as
 * \u00XX, so any byte sequence (a garbled frame included) yields valid JSON. */
void mgw_strbuf_json_string(struct mgw_strbuf *b, const char *s, size_t n);

/* Writes s JSON-escaped (as mgw_strbuf_json_string does, without the quotes) into out[cap],
 * NUL-terminated, cut before an escape that does not fit. Returns out, so it can sit in an
 * argument list: eventf(..., "\"reason\":\"%s\"", mgw_json_escape(reason, buf, sizeof buf)). */
const char *mgw_json_escape(const char *s, char *out, size_t cap);

/* strdup(s), NULL for NULL; a failed copy clears *ok (so a run of copies is checked once). */
char *mgw_strdup_opt(const char *s, bool *ok);

#endif /* MGW_STRBUF_H */
