/* Private helpers shared by the files of libibwire. Not installed, not part of the API. */
#ifndef IBWIRE_INTERNAL_H
#define IBWIRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The one integer parser of the library: s[0..len) must be a whole decimal number, an optional
 * '-' followed by one or more ASCII digits, nothing else (no '+', no spaces, no empty field),
 * with a value in [min, max]. Returns 0 and stores *out, or -1 (out untouched). */
int ibw__parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

/* Big-endian uint32 helpers for the length prefixes. */
static inline uint32_t ibw__load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void ibw__store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif /* IBWIRE_INTERNAL_H */
