/* Client handshake: ibw_hello_parse, ibw_negotiate_version, ibw_enc_hello, ibw_enc_start_api. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ibwire.h"

/* IB_WIRE.md §7: ib_async's 17 bytes. */
static const uint8_t golden_hello[] = { 0x41, 0x50, 0x49, 0x00, 0x00, 0x00, 0x00, 0x09, 0x76,
                                        0x31, 0x35, 0x37, 0x2e, 0x2e, 0x31, 0x37, 0x38 };
/* IB_WIRE.md §7: stoqey's header. */
static const uint8_t stoqey_hello[] = { 0x41, 0x50, 0x49, 0x00, 0x00, 0x00, 0x00, 0x09, 0x76,
                                        0x31, 0x30, 0x30, 0x2e, 0x2e, 0x31, 0x39, 0x33 };
/* IB_WIRE.md §3.1 / §7: START_API for clientId 1. */
static const uint8_t golden_start_api[] = { 0x00, 0x00, 0x00, 0x08, 0x37, 0x31,
                                            0x00, 0x32, 0x00, 0x31, 0x00, 0x00 };

/* Parses buf[0..len) from an exact-size heap copy, so ASan reports any read past len. */
static ssize_t parse_copy(const void *buf, size_t len, struct ibw_hello *h)
{
    uint8_t *copy = malloc(len ? len : 1);
    ssize_t rc;

    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    rc = ibw_hello_parse(copy, len, h);
    free(copy);
    return rc;
}

/* "API\0" + BE length + s (no NUL) into out; returns the total size. */
static size_t make_hello(uint8_t *out, size_t cap, const char *s, size_t slen)
{
    assert_true(8 + slen <= cap);
    memcpy(out, "API", 4);
    out[4] = (uint8_t)(slen >> 24);
    out[5] = (uint8_t)(slen >> 16);
    out[6] = (uint8_t)(slen >> 8);
    out[7] = (uint8_t)slen;
    memcpy(out + 8, s, slen);
    return 8 + slen;
}

static ssize_t parse_string(const char *s, struct ibw_hello *h)
{
    uint8_t buf[2048];
    size_t n = make_hello(buf, sizeof buf, s, strlen(s));

    return parse_copy(buf, n, h);
}

static void hello_parse_golden_ib_async(void **state)
{
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_copy(golden_hello, sizeof golden_hello, &h), 17);
    assert_int_equal(h.min_version, 157);
    assert_int_equal(h.max_version, 178);
    assert_string_equal(h.options, "");
}

static void hello_parse_stoqey_range(void **state)
{
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_copy(stoqey_hello, sizeof stoqey_hello, &h), 17);
    assert_int_equal(h.min_version, 100);
    assert_int_equal(h.max_version, 193);
}

static void hello_parse_single_version(void **state)
{
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_string("v176", &h), 12);
    assert_int_equal(h.min_version, 176);
    assert_int_equal(h.max_version, 176);
    assert_string_equal(h.options, "");
}

static void hello_parse_connect_options(void **state)
{
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_string("v157..178 +PACEAPI", &h), 26);
    assert_int_equal(h.min_version, 157);
    assert_int_equal(h.max_version, 178);
    assert_string_equal(h.options, "+PACEAPI");
    /* Everything after the first space, spaces included. */
    assert_int_equal(parse_string("v176 a b", &h), 16);
    assert_string_equal(h.options, "a b");
    assert_int_equal(parse_string("v100..193 ", &h), 18);
    assert_string_equal(h.options, "");
}

static void hello_parse_options_at_cap(void **state)
{
    char s[128];
    struct ibw_hello h;

    (void)state;
    memset(s, 0, sizeof s);
    memcpy(s, "v100..193 ", 10);
    memset(s + 10, 'o', 63);
    assert_int_equal(parse_string(s, &h), 8 + 73);
    assert_int_equal(strlen(h.options), 63);
    s[10 + 63] = 'o'; /* 64 bytes of options: over the buffer */
    assert_int_equal(parse_string(s, &h), IBW_EBADHELLO);
}

static void hello_parse_every_split_point(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k <= sizeof golden_hello; k++) {
        struct ibw_hello h;
        ssize_t rc = parse_copy(golden_hello, k, &h);

        assert_int_equal(rc, k == sizeof golden_hello ? 17 : 0);
    }
}

static void hello_parse_consumes_only_the_hello(void **state)
{
    uint8_t buf[sizeof golden_hello + sizeof golden_start_api];
    struct ibw_hello h;

    (void)state;
    memcpy(buf, golden_hello, sizeof golden_hello);
    memcpy(buf + sizeof golden_hello, golden_start_api, sizeof golden_start_api);
    assert_int_equal(parse_copy(buf, sizeof buf, &h), 17);
}

static void hello_parse_rejects_non_api_bytes_early(void **state)
{
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_copy("AP", 2, &h), 0); /* still a prefix of "API\0" */
    assert_int_equal(parse_copy("A", 1, &h), 0);
    assert_int_equal(parse_copy("XY", 2, &h), IBW_ENOTAPI);
    assert_int_equal(parse_copy("X", 1, &h), IBW_ENOTAPI);
    assert_int_equal(parse_copy("APX", 3, &h), IBW_ENOTAPI);
    assert_int_equal(parse_copy("API\001", 4, &h), IBW_ENOTAPI);
    assert_int_equal(parse_copy("api\0", 4, &h), IBW_ENOTAPI);
    assert_int_equal(parse_copy("\0", 1, &h), IBW_ENOTAPI);
    assert_int_equal(parse_copy("GET / HTTP/1.1\r\n", 16, &h), IBW_ENOTAPI);
}

static void hello_parse_detects_legacy_client(void **state)
{
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_copy("62\0", 3, &h), IBW_ELEGACY);
    assert_int_equal(parse_copy("62\0003\0", 5, &h), IBW_ELEGACY);
    assert_int_equal(parse_copy("7\0", 2, &h), IBW_ELEGACY);
    assert_int_equal(parse_copy("6", 1, &h), 0); /* wait for the NUL */
    assert_int_equal(parse_copy("62", 2, &h), 0);
    assert_int_equal(parse_copy("62x", 3, &h), IBW_ENOTAPI);
    assert_int_equal(parse_copy("123456789\0", 10, &h), IBW_ELEGACY);
    assert_int_equal(parse_copy("1234567890", 10, &h), IBW_ENOTAPI);
}

static void hello_parse_rejects_bad_version_strings(void **state)
{
    static const char *const bad[] = {
        "157..178",   "V157..178",  "v",           "v..178",     "v157..",   "v157.178",
        "v157...178", "v157..178x", "vabc",        "v178..157",  "v1234567", "v100..1234567",
        "v-1..5",     "v+1",        "v157..178\t", " v157..178", "v157,178",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ibw_hello h;

        assert_int_equal(parse_string(bad[i], &h), IBW_EBADHELLO);
    }
}

static void hello_parse_rejects_nul_inside_string(void **state)
{
    uint8_t buf[64];
    struct ibw_hello h;
    size_t n;

    (void)state;
    n = make_hello(buf, sizeof buf, "v157..178\0", 10);
    assert_int_equal(parse_copy(buf, n, &h), IBW_EBADHELLO);
    n = make_hello(buf, sizeof buf, "v157..178 a\0b", 13);
    assert_int_equal(parse_copy(buf, n, &h), IBW_EBADHELLO);
}

static void hello_parse_rejects_zero_length(void **state)
{
    static const uint8_t in[] = { 'A', 'P', 'I', 0, 0, 0, 0, 0 };
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_copy(in, sizeof in, &h), IBW_EZEROLEN);
}

static void hello_parse_rejects_length_over_cap_before_payload(void **state)
{
    static const uint8_t over[] = { 'A', 'P', 'I', 0, 0, 0, 0x04, 0x01 }; /* 1025 */
    static const uint8_t huge[] = { 'A', 'P', 'I', 0, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t at_cap[] = { 'A', 'P', 'I', 0, 0, 0, 0x04, 0x00 }; /* 1024 */
    struct ibw_hello h;

    (void)state;
    assert_int_equal(parse_copy(over, sizeof over, &h), IBW_EMSGSIZE);
    assert_int_equal(parse_copy(huge, sizeof huge, &h), IBW_EMSGSIZE);
    assert_int_equal(parse_copy(at_cap, sizeof at_cap, &h), 0); /* allowed: wait for it */
}

static void hello_parse_accepts_string_at_cap(void **state)
{
    char s[IBW_MAX_HELLO + 1];
    struct ibw_hello h;

    (void)state;
    memset(s, '0', IBW_MAX_HELLO);
    s[IBW_MAX_HELLO] = '\0';
    memcpy(s, "v1", 2);
    /* 1024 bytes arrive and are judged: a version with too many digits. */
    assert_int_equal(parse_string(s, &h), IBW_EBADHELLO);
}

struct nego_case {
    int min, max, server_max, expect;
};

static void negotiate_version_table(void **state)
{
    static const struct nego_case cases[] = {
        { 157, 178, 178, 178 }, /* ib_async */
        { 100, 193, 178, 178 }, /* stoqey */
        { 100, 176, 178, 176 }, /* official-py 10.19 */
        { 100, 225, 178, 178 }, /* official-py 10.46 */
        { 213, 225, 178, 178 }, /* rust-ibapi 3.x: below its minimum, by design */
        { 176, 176, 178, 176 }, { 100, 193, 200, 193 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ibw_hello h;

        memset(&h, 0, sizeof h);
        h.min_version = cases[i].min;
        h.max_version = cases[i].max;
        assert_int_equal(ibw_negotiate_version(&h, cases[i].server_max), cases[i].expect);
    }
}

static void enc_hello_golden_bytes(void **state)
{
    uint8_t buf[64];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_enc_hello(&w, 157, 178, NULL), 17);
    assert_int_equal(w.len, 17);
    assert_memory_equal(buf, golden_hello, 17);
    assert_int_equal(ibw_enc_hello(&w, 100, 193, ""), 17);
    assert_memory_equal(buf + 17, stoqey_hello, 17);
}

static void enc_hello_single_version_and_options(void **state)
{
    uint8_t buf[64];
    struct ibw_writer w;
    struct ibw_hello h;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_enc_hello(&w, 176, 176, NULL), 12);
    assert_memory_equal(buf, "API\0\0\0\0\004v176", 12);
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_enc_hello(&w, 157, 178, "+PACEAPI"), 26);
    assert_memory_equal(buf, "API\0\0\0\0\022v157..178 +PACEAPI", 26);
    assert_int_equal(ibw_hello_parse(buf, w.len, &h), 26);
    assert_string_equal(h.options, "+PACEAPI");
}

static void enc_hello_with_open_frame_is_estate(void **state)
{
    uint8_t buf[64];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_writer_begin(&w);
    assert_int_equal(ibw_enc_hello(&w, 157, 178, NULL), IBW_ESTATE);
    assert_int_equal(ibw_writer_end(&w), IBW_ESTATE);
    assert_int_equal(w.len, 0);
}

static void enc_hello_overflow_is_enospc(void **state)
{
    uint8_t *buf = malloc(16);
    struct ibw_writer w;

    (void)state;
    assert_non_null(buf);
    ibw_writer_init(&w, buf, 16);
    assert_int_equal(ibw_enc_hello(&w, 157, 178, NULL), IBW_ENOSPC);
    assert_int_equal(w.len, 0);
    free(buf);
}

static void enc_hello_rejects_what_parse_rejects(void **state)
{
    char opts[80];
    uint8_t buf[128];
    struct ibw_writer w;

    (void)state;
    memset(opts, 'o', 64);
    opts[64] = '\0';
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_enc_hello(&w, 178, 157, NULL), IBW_EBADHELLO);
    assert_int_equal(ibw_enc_hello(&w, -1, 157, NULL), IBW_EBADHELLO);
    assert_int_equal(ibw_enc_hello(&w, 100, 1000000, NULL), IBW_EBADHELLO);
    assert_int_equal(ibw_enc_hello(&w, 100, 193, opts), IBW_EBADHELLO);
    assert_int_equal(w.len, 0);
    assert_int_equal(w.err, 0);
}

static void enc_start_api_golden_bytes(void **state)
{
    uint8_t buf[64];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_enc_start_api(&w, 1, NULL), 12);
    assert_memory_equal(buf, golden_start_api, sizeof golden_start_api);
    assert_int_equal(ibw_enc_start_api(&w, 1, ""), 12);
    assert_memory_equal(buf + 12, golden_start_api, sizeof golden_start_api);
    assert_int_equal(ibw_enc_start_api(&w, -7, "cap"), 16);
    assert_memory_equal(buf + 24, "\0\0\0\01471\0002\0-7\0cap\0", 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_parse_golden_ib_async),
        cmocka_unit_test(hello_parse_stoqey_range),
        cmocka_unit_test(hello_parse_single_version),
        cmocka_unit_test(hello_parse_connect_options),
        cmocka_unit_test(hello_parse_options_at_cap),
        cmocka_unit_test(hello_parse_every_split_point),
        cmocka_unit_test(hello_parse_consumes_only_the_hello),
        cmocka_unit_test(hello_parse_rejects_non_api_bytes_early),
        cmocka_unit_test(hello_parse_detects_legacy_client),
        cmocka_unit_test(hello_parse_rejects_bad_version_strings),
        cmocka_unit_test(hello_parse_rejects_nul_inside_string),
        cmocka_unit_test(hello_parse_rejects_zero_length),
        cmocka_unit_test(hello_parse_rejects_length_over_cap_before_payload),
        cmocka_unit_test(hello_parse_accepts_string_at_cap),
        cmocka_unit_test(negotiate_version_table),
        cmocka_unit_test(enc_hello_golden_bytes),
        cmocka_unit_test(enc_hello_single_version_and_options),
        cmocka_unit_test(enc_hello_with_open_frame_is_estate),
        cmocka_unit_test(enc_hello_overflow_is_enospc),
        cmocka_unit_test(enc_hello_rejects_what_parse_rejects),
        cmocka_unit_test(enc_start_api_golden_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
