/* ibw_frame_parse: golden frames, every split point, random re-splits, caps, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ibwire.h"

/* The server side of the golden transcript (IB_WIRE.md §7): version reply, managedAccounts,
 * nextValidId, the three farm notices and currentTime, back to back. */
static const uint8_t golden_stream[] = {
    /* version reply: 178 | 20240115 10:15:30 EST */
    0x00, 0x00, 0x00, 0x1a, '1', '7', '8', 0, '2', '0', '2', '4', '0', '1', '1', '5', ' ', '1', '0',
    ':', '1', '5', ':', '3', '0', ' ', 'E', 'S', 'T', 0,
    /* managedAccounts: 15 | 1 | DU1234567 */
    0x00, 0x00, 0x00, 0x0f, '1', '5', 0, '1', 0, 'D', 'U', '1', '2', '3', '4', '5', '6', '7', 0,
    /* nextValidId: 9 | 1 | 1 */
    0x00, 0x00, 0x00, 0x06, '9', 0, '1', 0, '1', 0,
    /* error 2104 */
    0x00, 0x00, 0x00, 0x36, '4', 0, '2', 0, '-', '1', 0, '2', '1', '0', '4', 0, 'M', 'a', 'r', 'k',
    'e', 't', ' ', 'd', 'a', 't', 'a', ' ', 'f', 'a', 'r', 'm', ' ', 'c', 'o', 'n', 'n', 'e', 'c',
    't', 'i', 'o', 'n', ' ', 'i', 's', ' ', 'O', 'K', ':', 'u', 's', 'f', 'a', 'r', 'm', 0, 0,
    /* error 2106 */
    0x00, 0x00, 0x00, 0x34, '4', 0, '2', 0, '-', '1', 0, '2', '1', '0', '6', 0, 'H', 'M', 'D', 'S',
    ' ', 'd', 'a', 't', 'a', ' ', 'f', 'a', 'r', 'm', ' ', 'c', 'o', 'n', 'n', 'e', 'c', 't', 'i',
    'o', 'n', ' ', 'i', 's', ' ', 'O', 'K', ':', 'u', 's', 'h', 'm', 'd', 's', 0, 0,
    /* error 2158 */
    0x00, 0x00, 0x00, 0x39, '4', 0, '2', 0, '-', '1', 0, '2', '1', '5', '8', 0, 'S', 'e', 'c', '-',
    'd', 'e', 'f', ' ', 'd', 'a', 't', 'a', ' ', 'f', 'a', 'r', 'm', ' ', 'c', 'o', 'n', 'n', 'e',
    'c', 't', 'i', 'o', 'n', ' ', 'i', 's', ' ', 'O', 'K', ':', 's', 'e', 'c', 'd', 'e', 'f', 'n',
    'j', 0, 0,
    /* currentTime: 49 | 1 | 1705331730 */
    0x00, 0x00, 0x00, 0x10, '4', '9', 0, '1', 0, '1', '7', '0', '5', '3', '3', '1', '7', '3', '0', 0
};

/* Offsets at which each golden frame ends. */
static const size_t golden_ends[] = { 30, 49, 59, 117, 173, 234, 254 };
#define GOLDEN_FRAMES (sizeof golden_ends / sizeof golden_ends[0])

/* Parses buf[0..len) from an exact-size heap copy, so ASan reports any read past len. */
static ssize_t parse_copy(const uint8_t *buf, size_t len, size_t max, struct ibw_frame *f,
                          uint8_t **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    if (len)
        memcpy(*copy, buf, len);
    return ibw_frame_parse(*copy, len, max, f);
}

/* A tiny push-fed consumer, the way the server drives the parser: append a chunk, parse until
 * 0, compact. Each parse runs on an exact-size heap copy of what is buffered. Records where
 * each frame ended in the original stream. */
struct feeder {
    uint8_t *buf;
    size_t len, cap;
    size_t consumed;
    size_t ends[4096];
    size_t n_ends;
    const uint8_t *stream; /* to compare payloads with */
};

static void feeder_init(struct feeder *fd, const uint8_t *stream, size_t total)
{
    memset(fd, 0, sizeof *fd);
    fd->cap = total + 1;
    fd->buf = malloc(fd->cap);
    assert_non_null(fd->buf);
    fd->stream = stream;
}

static void feeder_push(struct feeder *fd, const uint8_t *chunk, size_t n)
{
    assert_true(fd->len + n <= fd->cap);
    memcpy(fd->buf + fd->len, chunk, n);
    fd->len += n;
    for (;;) {
        struct ibw_frame f;
        uint8_t *copy;
        ssize_t rc = parse_copy(fd->buf, fd->len, IBW_MAX_FRAME, &f, &copy);

        assert_true(rc >= 0);
        if (rc == 0) {
            free(copy);
            break;
        }
        assert_ptr_equal(f.payload, copy + 4);
        assert_int_equal(f.len + 4, (size_t)rc);
        assert_memory_equal(f.payload, fd->stream + fd->consumed + 4, f.len);
        free(copy);
        fd->consumed += (size_t)rc;
        assert_true(fd->n_ends < sizeof fd->ends / sizeof fd->ends[0]);
        fd->ends[fd->n_ends++] = fd->consumed;
        memmove(fd->buf, fd->buf + rc, fd->len - (size_t)rc);
        fd->len -= (size_t)rc;
    }
}

static void feeder_free(struct feeder *fd)
{
    free(fd->buf);
}

static void frame_parse_golden_next_valid_id(void **state)
{
    static const uint8_t in[] = { 0, 0, 0, 6, '9', 0, '1', 0, '1', 0 };
    struct ibw_frame f;
    uint8_t *copy;

    (void)state;
    assert_int_equal(parse_copy(in, sizeof in, IBW_MAX_FRAME, &f, &copy), 10);
    assert_ptr_equal(f.payload, copy + 4);
    assert_int_equal(f.len, 6);
    assert_memory_equal(f.payload, "9\0001\0001\000", 6);
    free(copy);
}

static void frame_parse_golden_stream_frame_by_frame(void **state)
{
    size_t off = 0, i;

    (void)state;
    for (i = 0; i < GOLDEN_FRAMES; i++) {
        struct ibw_frame f;
        uint8_t *copy;
        ssize_t rc =
            parse_copy(golden_stream + off, sizeof golden_stream - off, IBW_MAX_FRAME, &f, &copy);

        assert_int_equal(rc, golden_ends[i] - off);
        assert_int_equal(f.payload[f.len - 1], 0); /* every payload ends with a NUL */
        free(copy);
        off += (size_t)rc;
    }
    assert_int_equal(off, sizeof golden_stream);
}

static void frame_parse_every_prefix_yields_only_complete_frames(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k <= sizeof golden_stream; k++) {
        size_t off = 0, frames = 0, expect = 0, i;

        for (i = 0; i < GOLDEN_FRAMES; i++)
            expect += golden_ends[i] <= k;
        for (;;) {
            struct ibw_frame f;
            uint8_t *copy;
            ssize_t rc = parse_copy(golden_stream + off, k - off, IBW_MAX_FRAME, &f, &copy);

            free(copy);
            assert_true(rc >= 0);
            if (rc == 0)
                break;
            off += (size_t)rc;
            frames++;
        }
        assert_int_equal(frames, expect);
        assert_int_equal(off, expect ? golden_ends[expect - 1] : 0);
    }
}

static void frame_parse_every_split_point_decodes_same_frames(void **state)
{
    size_t k, i;

    (void)state;
    for (k = 0; k <= sizeof golden_stream; k++) {
        struct feeder *fd = malloc(sizeof *fd);

        assert_non_null(fd);
        feeder_init(fd, golden_stream, sizeof golden_stream);
        feeder_push(fd, golden_stream, k);
        feeder_push(fd, golden_stream + k, sizeof golden_stream - k);
        assert_int_equal(fd->n_ends, GOLDEN_FRAMES);
        for (i = 0; i < GOLDEN_FRAMES; i++)
            assert_int_equal(fd->ends[i], golden_ends[i]);
        assert_int_equal(fd->len, 0);
        feeder_free(fd);
        free(fd);
    }
}

static void frame_parse_one_byte_at_a_time(void **state)
{
    struct feeder *fd = malloc(sizeof *fd);
    size_t i;

    (void)state;
    assert_non_null(fd);
    feeder_init(fd, golden_stream, sizeof golden_stream);
    for (i = 0; i < sizeof golden_stream; i++)
        feeder_push(fd, golden_stream + i, 1);
    assert_int_equal(fd->n_ends, GOLDEN_FRAMES);
    feeder_free(fd);
    free(fd);
}

static uint64_t rng_next(uint64_t *s) /* xorshift64*: deterministic, seeded */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void frame_parse_random_resplits_decode_same_frames(void **state)
{
    enum { FRAMES = 300 };
    uint64_t seed = 0x1b2c3d4e5f607182ULL;
    size_t ends[FRAMES], total = 0, cap = FRAMES * (4 + 400), i;
    uint8_t *stream = malloc(cap);
    int iter;

    (void)state;
    assert_non_null(stream);
    /* Many frames of assorted sizes, including 1-byte and length bytes that look like text. */
    for (i = 0; i < FRAMES; i++) {
        size_t n = 1 + (size_t)(rng_next(&seed) % 400), j;

        if (i % 37 == 0)
            n = 1;
        stream[total] = 0;
        stream[total + 1] = 0;
        stream[total + 2] = (uint8_t)(n >> 8);
        stream[total + 3] = (uint8_t)n;
        for (j = 0; j < n; j++)
            stream[total + 4 + j] = (uint8_t)rng_next(&seed);
        total += 4 + n;
        ends[i] = total;
    }
    for (iter = 0; iter < 1000; iter++) {
        struct feeder *fd = malloc(sizeof *fd);
        size_t off = 0;

        assert_non_null(fd);
        feeder_init(fd, stream, total);
        while (off < total) {
            /* Mostly small chunks (straddling length prefixes), sometimes large ones. */
            size_t n = rng_next(&seed) % 4 == 0 ? 1 + (size_t)(rng_next(&seed) % 2000)
                                                : (size_t)(rng_next(&seed) % 9);

            if (n > total - off)
                n = total - off;
            feeder_push(fd, stream + off, n);
            off += n;
        }
        assert_int_equal(fd->n_ends, FRAMES);
        for (i = 0; i < FRAMES; i++)
            assert_int_equal(fd->ends[i], ends[i]);
        feeder_free(fd);
        free(fd);
    }
    free(stream);
}

static void frame_parse_short_input_needs_more(void **state)
{
    static const uint8_t in[] = { 0, 0, 0, 6, '9', 0, '1', 0, '1', 0 };
    struct ibw_frame f;
    size_t k;

    (void)state;
    assert_int_equal(ibw_frame_parse(NULL, 0, IBW_MAX_FRAME, &f), 0);
    for (k = 0; k < sizeof in; k++) {
        uint8_t *copy;

        assert_int_equal(parse_copy(in, k, IBW_MAX_FRAME, &f, &copy), 0);
        free(copy);
    }
}

static void frame_parse_rejects_zero_length(void **state)
{
    static const uint8_t in[] = { 0, 0, 0, 0, '9', 0 };
    struct ibw_frame f;
    uint8_t *copy;

    (void)state;
    assert_int_equal(parse_copy(in, 4, IBW_MAX_FRAME, &f, &copy), IBW_EZEROLEN);
    free(copy);
    assert_int_equal(parse_copy(in, sizeof in, IBW_MAX_FRAME, &f, &copy), IBW_EZEROLEN);
    free(copy);
}

static void frame_parse_rejects_length_over_cap(void **state)
{
    static const uint8_t in[] = { 0x7f, 0xff, 0xff, 0xff };
    static const uint8_t all_ones[] = { 0xff, 0xff, 0xff, 0xff };
    static const uint8_t over_max_frame[] = { 0x01, 0x00, 0x00, 0x00 };
    struct ibw_frame f;
    uint8_t *copy;

    (void)state;
    assert_int_equal(parse_copy(in, sizeof in, IBW_MAX_FRAME, &f, &copy), IBW_EMSGSIZE);
    free(copy);
    assert_int_equal(parse_copy(all_ones, 4, IBW_MAX_FRAME, &f, &copy), IBW_EMSGSIZE);
    free(copy);
    assert_int_equal(parse_copy(over_max_frame, 4, IBW_MAX_FRAME, &f, &copy), IBW_EMSGSIZE);
    free(copy);
}

static void frame_parse_rejects_length_over_small_cap_before_payload(void **state)
{
    static const uint8_t in[] = { 0, 0, 0, 11 };
    struct ibw_frame f;
    uint8_t *copy;

    (void)state;
    /* Only the 4 length bytes are in: the verdict must not wait for the payload. */
    assert_int_equal(parse_copy(in, sizeof in, 10, &f, &copy), IBW_EMSGSIZE);
    free(copy);
}

static void frame_parse_accepts_length_at_cap(void **state)
{
    static const uint8_t in[] = { 0, 0, 0, 10, '1', '2', '3', '4', '5', '6', '7', '8', '9', 0 };
    struct ibw_frame f;
    uint8_t *copy;

    (void)state;
    assert_int_equal(parse_copy(in, 4, 10, &f, &copy), 0);
    free(copy);
    assert_int_equal(parse_copy(in, sizeof in - 1, 10, &f, &copy), 0);
    free(copy);
    assert_int_equal(parse_copy(in, sizeof in, 10, &f, &copy), 14);
    assert_int_equal(f.len, 10);
    free(copy);
}

static void frame_parse_accepts_max_frame(void **state)
{
    size_t n = IBW_MAX_FRAME;
    uint8_t *buf = malloc(n + 4);
    struct ibw_frame f;

    (void)state;
    assert_non_null(buf);
    memset(buf + 4, 'x', n);
    buf[0] = 0x00;
    buf[1] = 0xff;
    buf[2] = 0xff;
    buf[3] = 0xff;
    buf[n + 3] = 0;
    assert_int_equal(ibw_frame_parse(buf, 4, IBW_MAX_FRAME, &f), 0);
    assert_int_equal(ibw_frame_parse(buf, n + 3, IBW_MAX_FRAME, &f), 0);
    assert_int_equal(ibw_frame_parse(buf, n + 4, IBW_MAX_FRAME, &f), (ssize_t)n + 4);
    assert_ptr_equal(f.payload, buf + 4);
    assert_int_equal(f.len, n);
    free(buf);
}

static void frame_parse_ignores_bytes_after_frame(void **state)
{
    static const uint8_t in[] = { 0, 0, 0, 2, 'x', 0, 0xff, 0xff, 0xff, 0xff };
    struct ibw_frame f;
    uint8_t *copy;

    (void)state;
    /* The next (garbage) length is the next call's problem. */
    assert_int_equal(parse_copy(in, sizeof in, IBW_MAX_FRAME, &f, &copy), 6);
    free(copy);
    assert_int_equal(ibw_frame_parse(in + 6, 4, IBW_MAX_FRAME, &f), IBW_EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_parse_golden_next_valid_id),
        cmocka_unit_test(frame_parse_golden_stream_frame_by_frame),
        cmocka_unit_test(frame_parse_every_prefix_yields_only_complete_frames),
        cmocka_unit_test(frame_parse_every_split_point_decodes_same_frames),
        cmocka_unit_test(frame_parse_one_byte_at_a_time),
        cmocka_unit_test(frame_parse_random_resplits_decode_same_frames),
        cmocka_unit_test(frame_parse_short_input_needs_more),
        cmocka_unit_test(frame_parse_rejects_zero_length),
        cmocka_unit_test(frame_parse_rejects_length_over_cap),
        cmocka_unit_test(frame_parse_rejects_length_over_small_cap_before_payload),
        cmocka_unit_test(frame_parse_accepts_length_at_cap),
        cmocka_unit_test(frame_parse_accepts_max_frame),
        cmocka_unit_test(frame_parse_ignores_bytes_after_frame),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
