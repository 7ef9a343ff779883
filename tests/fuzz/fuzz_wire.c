/* Fuzz target: the wire codec's input side — the handshake parser, the incremental frame
 * parser at every split the input suggests, and the field reader over each frame's payload
 * (strings, ints, longs, doubles, bools, message ids, contracts, error frames). Invariants: a
 * parse never reads past its input, a frame's payload lies inside it, and consumed counts add
 * up. */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "ibwire.h"

static void read_fields(const uint8_t *payload, size_t len, uint8_t selector)
{
    struct ibw_reader r;
    struct ibw_contract c;
    const char *s;
    int64_t l;
    double d;
    bool b;
    int i;

    ibw_reader_init(&r, payload, len);
    if (ibw_read_msg_id(&r, &i) < 0)
        return;
    for (unsigned k = 0; k < 64 && ibw_reader_left(&r) > 0; k++) {
        switch ((selector + k) % 8) {
        case 0:
            (void)ibw_read_str(&r, &s);
            break;
        case 1:
            (void)ibw_read_int(&r, &i);
            break;
        case 2:
            (void)ibw_read_long(&r, &l);
            break;
        case 3:
            (void)ibw_read_double(&r, &d);
            break;
        case 4:
            (void)ibw_read_bool(&r, &b);
            break;
        case 5:
            (void)ibw_read_int_max(&r, &i);
            (void)ibw_read_double_max(&r, &d);
            break;
        case 6:
            (void)ibw_read_contract(&r, &c, selector & 1);
            break;
        default:
            (void)ibw_read_skip(&r, 1 + selector % 3);
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ibw_hello h;
    struct ibw_frame f;
    uint8_t selector = size > 0 ? data[0] : 0;
    size_t off = 0;
    ssize_t n;

    n = ibw_hello_parse(data, size, &h);
    CHECK(n <= (ssize_t)size);
    if (n > 0) {
        (void)ibw_negotiate_version(&h, IBW_MAX_VERSION);
        off = (size_t)n;
    }
    while (off < size) {
        /* Every prefix length is a split the network could make: a short one must ask for more
         * (0), never succeed with a different frame. */
        size_t avail = size - off;
        size_t cut = 1 + selector % (avail < 16 ? avail : 16);

        n = ibw_frame_parse(data + off, cut, IBW_MAX_FRAME, &f);
        CHECK(n <= (ssize_t)cut);
        n = ibw_frame_parse(data + off, avail, IBW_MAX_FRAME, &f);
        if (n <= 0)
            break;
        CHECK((size_t)n <= avail);
        CHECK(f.payload >= data + off && f.payload + f.len <= data + off + (size_t)n);
        read_fields(f.payload, f.len, selector);
        off += (size_t)n;
    }
    return 0;
}
