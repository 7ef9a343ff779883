#include "ibwire.h"

#include <limits.h>
#include <stdint.h>

#include "internal.h"

ssize_t ibw_frame_parse(const uint8_t *buf, size_t len, size_t max, struct ibw_frame *f)
{
    uint32_t n;

    if (len < 4)
        return 0;
    n = ibw__load_be32(buf);
    if (n == 0)
        return IBW_EZEROLEN;
    /* Decide on the length before any payload arrives, so a hostile length never makes the
     * caller buffer (or wait for) more than max bytes. */
    if (n > max)
        return IBW_EMSGSIZE;
#if SIZE_MAX <= UINT32_MAX
    if (n > SSIZE_MAX - 4) /* 32-bit targets: 4 + n must stay representable as ssize_t */
        return IBW_EMSGSIZE;
#endif
    if (len - 4 < n)
        return 0;
    f->payload = buf + 4;
    f->len = n;
    return (ssize_t)n + 4;
}
