/* Private helpers shared by the files of libibwire. Not installed, not part of the API. */
#ifndef IBWIRE_INTERNAL_H
#define IBWIRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

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
