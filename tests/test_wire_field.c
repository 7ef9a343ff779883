/* Field reader, field writer and the Java-style double formatter. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ibwire.h"

/* An exact-size heap copy of a payload literal (sizeof - 1: drop the literal's own NUL), so
 * ASan reports any read past the payload. */
struct payload {
    uint8_t *p;
    size_t len;
};

static struct payload payload_of(const char *bytes, size_t len)
{
    struct payload pl;

    pl.p = malloc(len ? len : 1);
    assert_non_null(pl.p);
    if (len)
        memcpy(pl.p, bytes, len);
    pl.len = len;
    return pl;
}
#define PAYLOAD(lit) payload_of((lit), sizeof(lit) - 1)

/* Runs one read of a single-field payload "<text>\0". */
#define ONE_FIELD(pl, r, text)                       \
    do {                                             \
        (pl) = payload_of((text), strlen(text) + 1); \
        ibw_reader_init(&(r), (pl).p, (pl).len);     \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Reader: strings, counting, framing errors
 */
static void reader_reads_str_fields_in_order(void **state)
{
    struct payload pl = PAYLOAD("15\0001\000DU1234567\0\0");
    struct ibw_reader r;
    const char *s;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_reader_left(&r), 4);
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_string_equal(s, "15");
    assert_int_equal(r.index, 1);
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_string_equal(s, "1");
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_string_equal(s, "DU1234567");
    assert_int_equal(ibw_reader_left(&r), 1);
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_string_equal(s, "");
    assert_int_equal(ibw_reader_left(&r), 0);
    assert_int_equal(r.index, 4);
    free(pl.p);
}

static void reader_str_points_into_payload(void **state)
{
    struct payload pl = PAYLOAD("ab\0cd\0");
    struct ibw_reader r;
    const char *s;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_skip(&r, 1), 0);
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_ptr_equal(s, (const char *)pl.p + 3);
    free(pl.p);
}

static void reader_past_end_is_enofield(void **state)
{
    struct payload pl = PAYLOAD("9\0");
    struct ibw_reader r;
    const char *s;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_int_equal(ibw_read_str(&r, &s), IBW_ENOFIELD);
    assert_int_equal(r.err, IBW_ENOFIELD);
    free(pl.p);
}

static void reader_empty_payload_has_no_fields(void **state)
{
    struct payload pl = PAYLOAD("");
    struct ibw_reader r;
    int id = 7;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_reader_left(&r), 0);
    assert_int_equal(ibw_read_msg_id(&r, &id), IBW_ENOFIELD);
    assert_int_equal(id, 7);
    free(pl.p);
}

static void reader_last_field_without_nul_is_ebadfield(void **state)
{
    struct payload pl = PAYLOAD("9\0001\0001"); /* "9","1","1" with the last NUL missing */
    struct ibw_reader r;
    const char *s = NULL;
    int v = -5;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_reader_left(&r), 3); /* the tail counts, reading it fails */
    assert_int_equal(ibw_read_skip(&r, 2), 0);
    assert_int_equal(ibw_reader_left(&r), 1);
    assert_int_equal(ibw_read_int(&r, &v), IBW_EBADFIELD);
    assert_int_equal(v, -5);
    assert_int_equal(ibw_read_str(&r, &s), IBW_EBADFIELD);
    assert_null(s);
    free(pl.p);
}

static void reader_error_is_sticky(void **state)
{
    struct payload pl = PAYLOAD("12a\0005\000abc\0");
    struct ibw_reader r;
    const char *s = "untouched";
    int v = 99;
    int64_t l = 98;
    double d = 97.0;
    bool b = true;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_int(&r, &v), IBW_EBADINT);
    assert_int_equal(v, 99);
    /* "5" and "abc" would be readable, but the first failure wins. */
    assert_int_equal(ibw_read_int(&r, &v), IBW_EBADINT);
    assert_int_equal(ibw_read_long(&r, &l), IBW_EBADINT);
    assert_int_equal(ibw_read_double(&r, &d), IBW_EBADINT);
    assert_int_equal(ibw_read_bool(&r, &b), IBW_EBADINT);
    assert_int_equal(ibw_read_str(&r, &s), IBW_EBADINT);
    assert_int_equal(ibw_read_skip(&r, 1), IBW_EBADINT);
    assert_int_equal(v, 99);
    assert_int_equal(l, 98);
    assert_true(d == 97.0);
    assert_true(b);
    assert_string_equal(s, "untouched");
    assert_int_equal(r.err, IBW_EBADINT);
    free(pl.p);
}

static void reader_skip_past_end_is_enofield(void **state)
{
    struct payload pl = PAYLOAD("a\0b\0c\0");
    struct ibw_reader r;
    const char *s;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_skip(&r, 2), 0);
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_string_equal(s, "c");
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_skip(&r, 4), IBW_ENOFIELD);
    free(pl.p);
}

/* ---------------------------------------------------------------------------------------------
 * Reader: integers
 */
struct int_case {
    const char *in;
    int rc;
    int64_t v;
};

static void read_int_table(void **state)
{
    static const struct int_case cases[] = {
        { "0", 0, 0 },
        { "7", 0, 7 },
        { "-1", 0, -1 },
        { "007", 0, 7 },
        { "-0", 0, 0 },
        { "2147483647", 0, INT32_MAX },
        { "-2147483648", 0, INT32_MIN },
        { "", 0, 0 },
        { "2147483648", IBW_EBADINT, 0 },
        { "-2147483649", IBW_EBADINT, 0 },
        { "99999999999999999999999", IBW_EBADINT, 0 },
        { "12a", IBW_EBADINT, 0 },
        { " 1", IBW_EBADINT, 0 },
        { "1 ", IBW_EBADINT, 0 },
        { "+1", IBW_EBADINT, 0 },
        { "-", IBW_EBADINT, 0 },
        { "--1", IBW_EBADINT, 0 },
        { "1.0", IBW_EBADINT, 0 },
        { "0x10", IBW_EBADINT, 0 },
        { "1e3", IBW_EBADINT, 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct payload pl;
        struct ibw_reader r;
        int v = 12345;

        ONE_FIELD(pl, r, cases[i].in);
        assert_int_equal(ibw_read_int(&r, &v), cases[i].rc);
        assert_int_equal(v, cases[i].rc ? 12345 : cases[i].v);
        free(pl.p);
    }
}

static void read_int_max_empty_is_unset(void **state)
{
    struct payload pl = PAYLOAD("\0005\0002147483647\0");
    struct ibw_reader r;
    int v;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_int_max(&r, &v), 0);
    assert_int_equal(v, IBW_UNSET_INT);
    assert_int_equal(ibw_read_int_max(&r, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(ibw_read_int_max(&r, &v), 0);
    assert_int_equal(v, IBW_UNSET_INT);
    free(pl.p);
}

static void read_long_table(void **state)
{
    static const struct int_case cases[] = {
        { "9223372036854775807", 0, INT64_MAX },
        { "-9223372036854775808", 0, INT64_MIN },
        { "2147483648", 0, 2147483648LL },
        { "-42", 0, -42 },
        { "", 0, 0 },
        { "9223372036854775808", IBW_EBADINT, 0 },
        { "-9223372036854775809", IBW_EBADINT, 0 },
        { "18446744073709551616", IBW_EBADINT, 0 },
        { "1_000", IBW_EBADINT, 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct payload pl;
        struct ibw_reader r;
        int64_t v = 12345;

        ONE_FIELD(pl, r, cases[i].in);
        assert_int_equal(ibw_read_long(&r, &v), cases[i].rc);
        assert_true(v == (cases[i].rc ? 12345 : cases[i].v));
        free(pl.p);
    }
}

static void read_bool_table(void **state)
{
    static const struct int_case cases[] = {
        { "1", 0, 1 },           { "0", 0, 0 },  { "", 0, 0 },
        { "2", 0, 1 },           { "-1", 0, 1 }, { "true", IBW_EBADINT, 0 },
        { " ", IBW_EBADINT, 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct payload pl;
        struct ibw_reader r;
        bool b = false;

        ONE_FIELD(pl, r, cases[i].in);
        assert_int_equal(ibw_read_bool(&r, &b), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(b, cases[i].v != 0);
        free(pl.p);
    }
}

static void read_msg_id_is_strict(void **state)
{
    static const struct int_case cases[] = {
        { "49", 0, 49 },
        { "0", 0, 0 },
        { "", IBW_EBADMSGID, 0 },
        { "x", IBW_EBADMSGID, 0 },
        { "4a", IBW_EBADMSGID, 0 },
        { "-1", IBW_EBADMSGID, 0 },
        { " 4", IBW_EBADMSGID, 0 },
        { "2147483648", IBW_EBADMSGID, 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct payload pl;
        struct ibw_reader r;
        int id = -7;

        ONE_FIELD(pl, r, cases[i].in);
        assert_int_equal(ibw_read_msg_id(&r, &id), cases[i].rc);
        assert_int_equal(id, cases[i].rc ? -7 : cases[i].v);
        assert_int_equal(r.err, cases[i].rc);
        free(pl.p);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Reader: doubles
 */
struct dbl_case {
    const char *in;
    int rc;
    double v;
};

static void read_double_table(void **state)
{
    static const struct dbl_case cases[] = {
        { "0.0", 0, 0.0 },
        { "185.25", 0, 185.25 },
        { "-0.5", 0, -0.5 },
        { "5", 0, 5.0 },
        { ".5", 0, 0.5 },
        { "5.", 0, 5.0 },
        { "1e5", 0, 1e5 },
        { "1.0E-4", 0, 1e-4 },
        { "1.0e-4", 0, 1e-4 },
        { "1.7976931348623157E308", 0, DBL_MAX },
        { "1.7976931348623157e+308", 0, DBL_MAX },
        { "201.8829709", 0, 201.8829709 },
        { "4.9E-324", 0, 4.9e-324 },
        { "1e-400", 0, 0.0 }, /* underflow reads as zero, as in Java */
        { "", 0, 0.0 },
        { "1e400", IBW_EBADDOUBLE, 0 },
        { "abc", IBW_EBADDOUBLE, 0 },
        { "1.0x", IBW_EBADDOUBLE, 0 },
        { " 1.0", IBW_EBADDOUBLE, 0 },
        { "1.0 ", IBW_EBADDOUBLE, 0 },
        { "+1.0", IBW_EBADDOUBLE, 0 },
        { "--1", IBW_EBADDOUBLE, 0 },
        { ".", IBW_EBADDOUBLE, 0 },
        { "-", IBW_EBADDOUBLE, 0 },
        { "1e", IBW_EBADDOUBLE, 0 },
        { "1e+", IBW_EBADDOUBLE, 0 },
        { "1,5", IBW_EBADDOUBLE, 0 },
        { "0x1p3", IBW_EBADDOUBLE, 0 },
        { "inf", IBW_EBADDOUBLE, 0 },
        { "nan", IBW_EBADDOUBLE, 0 },
        { "infinity", IBW_EBADDOUBLE, 0 },
        { "Infinityx", IBW_EBADDOUBLE, 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct payload pl;
        struct ibw_reader r;
        double v = 12345.0;

        ONE_FIELD(pl, r, cases[i].in);
        assert_int_equal(ibw_read_double(&r, &v), cases[i].rc);
        assert_true(v == (cases[i].rc ? 12345.0 : cases[i].v));
        free(pl.p);
    }
}

static void read_double_accepts_infinity_spellings(void **state)
{
    struct payload pl = PAYLOAD("Infinity\0Infinite\0-Infinity\0-Infinite\0NaN\0");
    struct ibw_reader r;
    double v;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_double(&r, &v), 0);
    assert_true(isinf(v) && v > 0);
    assert_int_equal(ibw_read_double(&r, &v), 0);
    assert_true(isinf(v) && v > 0);
    assert_int_equal(ibw_read_double(&r, &v), 0);
    assert_true(isinf(v) && v < 0);
    assert_int_equal(ibw_read_double(&r, &v), 0);
    assert_true(isinf(v) && v < 0);
    assert_int_equal(ibw_read_double(&r, &v), 0);
    assert_true(isnan(v));
    free(pl.p);
}

static void read_double_max_empty_is_unset(void **state)
{
    struct payload pl = PAYLOAD("\0001.5\0");
    struct ibw_reader r;
    double v;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_double_max(&r, &v), 0);
    assert_true(v == IBW_UNSET_DOUBLE);
    assert_int_equal(ibw_read_double_max(&r, &v), 0);
    assert_true(v == 1.5);
    free(pl.p);
}

/* ---------------------------------------------------------------------------------------------
 * Reader: the contract block
 */
static void read_contract_ib_async_req_contract_details(void **state)
{
    /* ib_async at 178: 9,8,3,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,, (IB_WIRE.md §4.2) */
    struct payload pl = PAYLOAD("9\0008\0003\0000\0AAPL\0STK\0\0000.0\0\0\0SMART\0\0USD\0\0\0"
                                "0\0\0\0\0");
    struct ibw_reader r;
    struct ibw_contract c;
    int id, version, req_id;
    bool include_expired;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_reader_left(&r), 19);
    assert_int_equal(ibw_read_msg_id(&r, &id), 0);
    assert_int_equal(id, IBW_OUT_REQ_CONTRACT_DATA);
    assert_int_equal(ibw_read_int(&r, &version), 0);
    assert_int_equal(version, 8);
    assert_int_equal(ibw_read_int(&r, &req_id), 0);
    assert_int_equal(req_id, 3);
    assert_int_equal(ibw_read_contract(&r, &c, true), 0);
    assert_true(c.con_id == 0);
    assert_string_equal(c.symbol, "AAPL");
    assert_string_equal(c.sec_type, "STK");
    assert_string_equal(c.last_trade_date, "");
    assert_true(c.strike == 0.0);
    assert_string_equal(c.exchange, "SMART");
    assert_string_equal(c.primary_exchange, "");
    assert_string_equal(c.currency, "USD");
    assert_string_equal(c.trading_class, "");
    assert_int_equal(ibw_read_bool(&r, &include_expired), 0);
    assert_false(include_expired);
    assert_int_equal(ibw_reader_left(&r), 3); /* secIdType, secId, issuerId */
    free(pl.p);
}

static void read_contract_stoqey_empty_numbers(void **state)
{
    /* stoqey: 9,8,11,,AAPL,STK,,,,,SMART,,USD,,,,,, */
    struct payload pl = PAYLOAD("9\0008\00011\0\0AAPL\0STK\0\0\0\0\0SMART\0\0USD\0\0\0\0\0\0\0");
    struct ibw_reader r;
    struct ibw_contract c;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_skip(&r, 3), 0);
    assert_int_equal(ibw_read_contract(&r, &c, true), 0);
    assert_true(c.con_id == 0);
    assert_true(c.strike == 0.0);
    assert_string_equal(c.symbol, "AAPL");
    free(pl.p);
}

static void read_contract_without_primary_exchange(void **state)
{
    struct payload pl = PAYLOAD("265598\0AAPL\0STK\0\0000\0\0\0SMART\0USD\0AAPL\0NMS\0");
    struct ibw_reader r;
    struct ibw_contract c;

    (void)state;
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_contract(&r, &c, false), 0);
    assert_true(c.con_id == 265598);
    assert_null(c.primary_exchange);
    assert_string_equal(c.currency, "USD");
    assert_string_equal(c.trading_class, "NMS");
    assert_int_equal(ibw_reader_left(&r), 0);
    free(pl.p);
}

static void read_contract_truncated_leaves_output(void **state)
{
    struct payload pl = PAYLOAD("265598\0AAPL\0STK\0");
    struct ibw_reader r;
    struct ibw_contract c;

    (void)state;
    memset(&c, 0x5a, sizeof c);
    ibw_reader_init(&r, pl.p, pl.len);
    assert_int_equal(ibw_read_contract(&r, &c, true), IBW_ENOFIELD);
    assert_true(c.con_id == 0x5a5a5a5a5a5a5a5aLL);
    free(pl.p);
}

/* ---------------------------------------------------------------------------------------------
 * Writer
 */

/* Renders the payload of the frame at buf[off..) as "f1,f2,...": the notation of IB_WIRE.md. */
static const char *render(const uint8_t *buf, size_t off, char *out, size_t cap)
{
    size_t n = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 | (size_t)buf[off + 2] << 8 |
               buf[off + 3];
    size_t i;

    assert_true(n >= 1 && n < cap);
    assert_int_equal(buf[off + 4 + n - 1], 0);
    for (i = 0; i + 1 < n; i++)
        out[i] = buf[off + 4 + i] ? (char)buf[off + 4 + i] : ',';
    out[n - 1] = '\0';
    return out;
}

static void writer_puts_every_type(void **state)
{
    uint8_t buf[256];
    char text[256];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_writer_begin(&w);
    ibw_put_str(&w, "abc");
    ibw_put_str(&w, NULL);
    ibw_put_str(&w, "");
    ibw_put_int(&w, -42);
    ibw_put_int(&w, INT64_MIN);
    ibw_put_int_max(&w, IBW_UNSET_INT);
    ibw_put_int_max(&w, IBW_UNSET_LONG);
    ibw_put_int_max(&w, 7);
    ibw_put_double(&w, 185.25);
    ibw_put_double_max(&w, IBW_UNSET_DOUBLE);
    ibw_put_double_max(&w, 0.0);
    ibw_put_bool(&w, true);
    ibw_put_bool(&w, false);
    assert_int_equal(ibw_writer_end(&w), (ssize_t)w.len);
    assert_string_equal(render(buf, 0, text, sizeof text),
                        "abc,,,-42,-9223372036854775808,,,7,185.25,,0.0,1,0");
}

static void writer_round_trips_through_reader(void **state)
{
    uint8_t buf[512];
    struct ibw_writer w;
    struct ibw_reader r;
    struct ibw_frame f;
    const char *s;
    int i32;
    int64_t i64;
    double d;
    bool b;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_writer_begin(&w);
    ibw_put_int(&w, IBW_IN_TICK_PRICE);
    ibw_put_int(&w, INT32_MIN);
    ibw_put_int_max(&w, IBW_UNSET_INT);
    ibw_put_int(&w, INT64_MAX);
    ibw_put_double(&w, 0.1 + 0.2);
    ibw_put_double(&w, -INFINITY);
    ibw_put_double(&w, DBL_MAX);
    ibw_put_double_max(&w, IBW_UNSET_DOUBLE);
    ibw_put_bool(&w, true);
    ibw_put_str(&w, "x y");
    assert_true(ibw_writer_end(&w) > 0);

    assert_int_equal(ibw_frame_parse(buf, w.len, IBW_MAX_FRAME, &f), (ssize_t)w.len);
    ibw_reader_init(&r, f.payload, f.len);
    assert_int_equal(ibw_reader_left(&r), 10);
    assert_int_equal(ibw_read_msg_id(&r, &i32), 0);
    assert_int_equal(i32, IBW_IN_TICK_PRICE);
    assert_int_equal(ibw_read_int(&r, &i32), 0);
    assert_int_equal(i32, INT32_MIN);
    assert_int_equal(ibw_read_int_max(&r, &i32), 0);
    assert_int_equal(i32, IBW_UNSET_INT);
    assert_int_equal(ibw_read_long(&r, &i64), 0);
    assert_true(i64 == INT64_MAX);
    assert_int_equal(ibw_read_double(&r, &d), 0);
    assert_true(d == 0.1 + 0.2);
    assert_int_equal(ibw_read_double(&r, &d), 0);
    assert_true(isinf(d) && d < 0);
    assert_int_equal(ibw_read_double(&r, &d), 0);
    assert_true(d == DBL_MAX);
    assert_int_equal(ibw_read_double_max(&r, &d), 0);
    assert_true(d == IBW_UNSET_DOUBLE);
    assert_int_equal(ibw_read_bool(&r, &b), 0);
    assert_true(b);
    assert_int_equal(ibw_read_str(&r, &s), 0);
    assert_string_equal(s, "x y");
    assert_int_equal(ibw_read_str(&r, &s), IBW_ENOFIELD);
}

static void writer_several_frames_back_to_back(void **state)
{
    uint8_t buf[64];
    char text[64];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_writer_begin(&w);
    ibw_put_int(&w, 62);
    ibw_put_int(&w, 1);
    assert_int_equal(ibw_writer_end(&w), 9);
    ibw_writer_begin(&w);
    ibw_put_int(&w, 102);
    assert_int_equal(ibw_writer_end(&w), 8);
    assert_int_equal(w.len, 17);
    assert_memory_equal(buf, "\0\0\0\00562\0001\0\0\0\0\004102\0", 17);
    assert_string_equal(render(buf, 9, text, sizeof text), "102");
}

static void writer_overflow_discards_frame_keeps_earlier(void **state)
{
    enum { CAP = 20 };
    uint8_t *buf = malloc(CAP); /* exact size: ASan catches any write past cap */
    struct ibw_writer w;

    (void)state;
    assert_non_null(buf);
    ibw_writer_init(&w, buf, CAP);
    ibw_writer_begin(&w);
    ibw_put_int(&w, 9);
    ibw_put_int(&w, 1);
    ibw_put_int(&w, 1);
    assert_int_equal(ibw_writer_end(&w), 10);
    ibw_writer_begin(&w);
    ibw_put_int(&w, 15);
    ibw_put_int(&w, 1);
    ibw_put_str(&w, "DU1234567"); /* 4 + 3 + 2 + 10 > 10 bytes left */
    assert_int_equal(w.err, IBW_ENOSPC);
    assert_int_equal(ibw_writer_end(&w), IBW_ENOSPC);
    assert_int_equal(w.len, 10);
    assert_memory_equal(buf, "\0\0\0\0069\0001\0001\0", 10);
    /* Sticky: even a frame that would fit is refused until re-init. */
    ibw_writer_begin(&w);
    ibw_put_int(&w, 1);
    assert_int_equal(ibw_writer_end(&w), IBW_ENOSPC);
    assert_int_equal(w.len, 10);
    ibw_writer_init(&w, buf, CAP);
    ibw_writer_begin(&w);
    ibw_put_int(&w, 1);
    assert_int_equal(ibw_writer_end(&w), 6);
    free(buf);
}

static void writer_exact_fit_succeeds(void **state)
{
    uint8_t *buf = malloc(10);
    struct ibw_writer w;

    (void)state;
    assert_non_null(buf);
    ibw_writer_init(&w, buf, 10);
    ibw_writer_begin(&w);
    ibw_put_int(&w, 9);
    ibw_put_int(&w, 1);
    ibw_put_int(&w, 1);
    assert_int_equal(ibw_writer_end(&w), 10);
    assert_int_equal(w.len, 10);
    free(buf);
}

static void writer_never_writes_past_cap(void **state)
{
    uint8_t buf[32];
    struct ibw_writer w;
    size_t i;

    (void)state;
    memset(buf, 0xaa, sizeof buf);
    ibw_writer_init(&w, buf, 12);
    ibw_writer_begin(&w);
    ibw_put_str(&w, "1234567"); /* 8 bytes: 12 used */
    ibw_put_str(&w, "x");       /* does not fit */
    assert_int_equal(ibw_writer_end(&w), IBW_ENOSPC);
    for (i = 12; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xaa);
}

static void writer_begin_without_room_for_length_is_enospc(void **state)
{
    uint8_t buf[3];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_writer_begin(&w);
    assert_int_equal(w.err, IBW_ENOSPC);
    ibw_put_int(&w, 1);
    assert_int_equal(ibw_writer_end(&w), IBW_ENOSPC);
    assert_int_equal(w.len, 0);
}

static void writer_put_without_begin_is_estate(void **state)
{
    uint8_t buf[32];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_put_int(&w, 49);
    assert_int_equal(w.err, IBW_ESTATE);
    assert_int_equal(w.len, 0);
    assert_int_equal(ibw_writer_end(&w), IBW_ESTATE);
}

static void writer_end_without_begin_is_estate(void **state)
{
    uint8_t buf[32];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_writer_end(&w), IBW_ESTATE);
    assert_int_equal(w.len, 0);
}

static void writer_begin_twice_is_estate_and_discards(void **state)
{
    uint8_t buf[32];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_writer_begin(&w);
    ibw_put_int(&w, 49);
    ibw_writer_begin(&w);
    assert_int_equal(w.err, IBW_ESTATE);
    assert_int_equal(ibw_writer_end(&w), IBW_ESTATE);
    assert_int_equal(w.len, 0);
}

static void writer_empty_frame_is_ezerolen(void **state)
{
    uint8_t buf[32];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    ibw_writer_begin(&w);
    assert_int_equal(ibw_writer_end(&w), IBW_EZEROLEN);
    assert_int_equal(w.len, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Java Double.toString
 */
struct fmt_case {
    double v;
    const char *out;
};

static void format_double_java_table(void **state)
{
    const struct fmt_case cases[] = {
        { 0.0, "0.0" },
        { -0.0, "-0.0" },
        { 1.0, "1.0" },
        { 100.0, "100.0" },
        { 185.25, "185.25" },
        { -0.5, "-0.5" },
        { 0.1, "0.1" },
        { 0.01, "0.01" },
        { 0.001, "0.001" },
        { 0.1 + 0.2, "0.30000000000000004" },
        { 2.0 / 3.0, "0.6666666666666666" },
        { 201.8829709, "201.8829709" },
        { 1234567.125, "1234567.125" },
        { 9999999.0, "9999999.0" },
        { 1e-4, "1.0E-4" },
        { -1e-4, "-1.0E-4" },
        { 9.99e-4, "9.99E-4" },
        { 1e7, "1.0E7" },
        { 1.2345e10, "1.2345E10" },
        { 123456789.0, "1.23456789E8" },
        { 1e21, "1.0E21" },
        { 1e23, "1.0E23" },
        { DBL_MAX, "1.7976931348623157E308" },
        { -DBL_MAX, "-1.7976931348623157E308" },
        { DBL_MIN, "2.2250738585072014E-308" },
        { 4.9e-324, "4.9E-324" }, /* Java: closest two-digit form, not "5.0E-324" */
        { 9.9e-324, "9.9E-324" }, /* 2 x Double.MIN_VALUE */
        { INFINITY, "Infinity" },
        { -INFINITY, "-Infinity" },
        { NAN, "NaN" },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        size_t n = ibw_format_double(cases[i].v, out, sizeof out);

        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
}

/* Any 64 bits, reproducibly. */
static uint64_t xorshift64star(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void format_double_round_trips_random_bits(void **state)
{
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    int i;

    (void)state;
    for (i = 0; i < 100000; i++) {
        char out[32], *end;
        uint64_t bits;
        double v, back;
        size_t n;

        bits = xorshift64star(&s);
        memcpy(&v, &bits, sizeof v);
        if (isnan(v))
            continue;
        n = ibw_format_double(v, out, sizeof out);
        assert_true(n > 0 && n < 26);
        back = isinf(v) ? v : strtod(out, &end);
        assert_memory_equal(&back, &v, sizeof v);
    }
}

/* The significant digits of a formatted double ("-1.2345E10" or "1.2345e+10" -> "12345",
 * "0.0012" -> "12",
 * "100.0" -> "1"). */
static size_t sig_digits(const char *out, char *d, size_t cap)
{
    size_t n = 0;

    for (const char *p = out; *p != '\0' && *p != 'E' && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && (n > 0 || *p != '0') && n + 1 < cap)
            d[n++] = *p;
    while (n > 1 && d[n - 1] == '0')
        n--;
    d[n] = '\0';
    return n;
}

/* v's digits as printf rounds them to prec + 1 significant ones, trailing zeros dropped; true
 * when those read back as v. */
static bool rounded_digits(double v, int prec, char *d, size_t cap)
{
    char tmp[48];

    snprintf(tmp, sizeof tmp, "%.*e", prec, v);
    sig_digits(tmp, d, cap);
    return strtod(tmp, NULL) == v;
}

/* Java's Double.toString, checked against its definition rather than a table: the output reads
 * back as v, has as few significant digits as any decimal that does, and they are v correctly
 * rounded to that many (the closest such decimal). The one exception is the closest two-digit
 * form a one-digit value takes (only subnormals differ, covered by the table). */
static void check_shortest(double v)
{
    char out[32], got[24], want[24];
    size_t n;

    assert_true(ibw_format_double(v, out, sizeof out) > 0);
    assert_true(strtod(out, NULL) == v);
    n = sig_digits(out, got, sizeof got);
    if (n == 2 && rounded_digits(fabs(v), 0, want, sizeof want))
        return;
    if (n > 1 && rounded_digits(fabs(v), (int)n - 2, want, sizeof want)) {
        fprintf(stderr, "%s: %zu digits, but %s round-trips\n", out, n, want);
        fail();
    }
    rounded_digits(fabs(v), (int)n - 1, want, sizeof want);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "%s: digits %s, correctly rounded %s\n", out, got, want);
        fail();
    }
}

static void format_double_is_shortest_and_closest(void **state)
{
    uint64_t s = 0x2545F4914F6CDD1DULL;
    int i;

    (void)state;
    for (i = 0; i < 50000; i++) {
        uint64_t bits;
        double v;

        bits = xorshift64star(&s);
        memcpy(&v, &bits, sizeof v);
        if (isfinite(v) && v != 0.0)
            check_shortest(v); /* any double, subnormals included */
        /* prices and sizes: a few digits over a power of ten, and their arithmetic */
        v = (double)(bits % 10000000u) / pow(10.0, (double)((bits >> 32) % 9));
        if (v != 0.0) {
            check_shortest(v);
            check_shortest(v * 1.0001);
            check_shortest(v + 0.01);
        }
    }
    for (i = 1; i < 2000; i++) {
        check_shortest(i * 0.01);
        check_shortest(i * 0.05 + 100.0);
        check_shortest(ldexp(1.0, i - 1075)); /* every power of two, subnormal to DBL_MAX's */
    }
    check_shortest(DBL_MIN);
    check_shortest(nextafter(DBL_MIN, 0.0));
    check_shortest(DBL_MAX);
    check_shortest(1e-300);
    check_shortest(1e300);
}

static void format_double_too_small_buffer_is_empty(void **state)
{
    char out[4] = "xyz";

    (void)state;
    assert_int_equal(ibw_format_double(185.25, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(ibw_format_double(1.0, out, sizeof out), 3);
    assert_string_equal(out, "1.0");
}

/* ---------------------------------------------------------------------------------------------
 * Error and message-id names (errors.c, msgid.c)
 */
static void strerror_and_err_name_cover_every_code(void **state)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
#define XX(name, code, msg) { IBW_##name, "IBW_" #name },
        IBW_ERRNO_MAP(XX)
#undef XX
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i].code <= -5101 && codes[i].code >= -5199);
        assert_string_equal(ibw_err_name(codes[i].code), codes[i].name);
        assert_non_null(ibw_strerror(codes[i].code));
    }
    assert_string_equal(ibw_strerror(IBW_EMSGSIZE), "frame length is over the maximum");
    assert_string_equal(ibw_err_name(IBW_ESTATE), "IBW_ESTATE");
}

static void err_name_falls_back_for_errno(void **state)
{
    (void)state;
    assert_string_equal(ibw_err_name(-ECONNRESET), "ECONNRESET");
    assert_string_equal(ibw_err_name(-ENOSPC), "ENOSPC");
    assert_string_equal(ibw_strerror(-ECONNRESET), strerror(ECONNRESET));
    assert_string_equal(ibw_err_name(-5199), "UNKNOWN");
    assert_non_null(ibw_strerror(-5199));
    assert_non_null(ibw_strerror(12345));
    assert_string_equal(ibw_err_name(0), "OK");
}

static void msg_names_come_from_the_tables(void **state)
{
    (void)state;
    assert_string_equal(ibw_in_name(IBW_IN_NEXT_VALID_ID), "nextValidId");
    assert_string_equal(ibw_in_name(108), "historicalDataEnd");
    assert_string_equal(ibw_out_name(IBW_OUT_START_API), "startApi");
    assert_string_equal(ibw_out_name(49), "reqCurrentTime");
    assert_null(ibw_in_name(0));
    assert_null(ibw_in_name(999));
    assert_null(ibw_out_name(-1));
}

static void parse_u64_and_i64_are_strict_and_range_checked(void **state)
{
    uint64_t u = 7;
    int64_t v = 7;

    (void)state;
    assert_int_equal(ibw_parse_u64("18446744073709551615", 20, 0, UINT64_MAX, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(ibw_parse_u64("18446744073709551616", 20, 0, UINT64_MAX, &u), -1);
    assert_int_equal(ibw_parse_u64("-1", 2, 0, UINT64_MAX, &u), -1);
    assert_int_equal(ibw_parse_u64("", 0, 0, UINT64_MAX, &u), -1);
    assert_int_equal(ibw_parse_u64("4096", 4, 4096, 8192, &u), 0);
    assert_int_equal(ibw_parse_u64("4095", 4, 4096, 8192, &u), -1);
    assert_int_equal(ibw_parse_u64("12&x", 2, 0, 100, &u), 0); /* only len bytes count */
    assert_true(u == 12);
    assert_int_equal(ibw_parse_i64("-9223372036854775808", 20, INT64_MIN, 0, &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(ibw_parse_i64("9223372036854775808", 19, 0, INT64_MAX, &v), -1);
    assert_int_equal(ibw_parse_i64(" 1", 2, 0, 10, &v), -1);
    assert_int_equal(ibw_parse_i64("+1", 2, 0, 10, &v), -1);
    assert_true(v == INT64_MIN); /* untouched by failures */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_u64_and_i64_are_strict_and_range_checked),
        cmocka_unit_test(reader_reads_str_fields_in_order),
        cmocka_unit_test(reader_str_points_into_payload),
        cmocka_unit_test(reader_past_end_is_enofield),
        cmocka_unit_test(reader_empty_payload_has_no_fields),
        cmocka_unit_test(reader_last_field_without_nul_is_ebadfield),
        cmocka_unit_test(reader_error_is_sticky),
        cmocka_unit_test(reader_skip_past_end_is_enofield),
        cmocka_unit_test(read_int_table),
        cmocka_unit_test(read_int_max_empty_is_unset),
        cmocka_unit_test(read_long_table),
        cmocka_unit_test(read_bool_table),
        cmocka_unit_test(read_msg_id_is_strict),
        cmocka_unit_test(read_double_table),
        cmocka_unit_test(read_double_accepts_infinity_spellings),
        cmocka_unit_test(read_double_max_empty_is_unset),
        cmocka_unit_test(read_contract_ib_async_req_contract_details),
        cmocka_unit_test(read_contract_stoqey_empty_numbers),
        cmocka_unit_test(read_contract_without_primary_exchange),
        cmocka_unit_test(read_contract_truncated_leaves_output),
        cmocka_unit_test(writer_puts_every_type),
        cmocka_unit_test(writer_round_trips_through_reader),
        cmocka_unit_test(writer_several_frames_back_to_back),
        cmocka_unit_test(writer_overflow_discards_frame_keeps_earlier),
        cmocka_unit_test(writer_exact_fit_succeeds),
        cmocka_unit_test(writer_never_writes_past_cap),
        cmocka_unit_test(writer_begin_without_room_for_length_is_enospc),
        cmocka_unit_test(writer_put_without_begin_is_estate),
        cmocka_unit_test(writer_end_without_begin_is_estate),
        cmocka_unit_test(writer_begin_twice_is_estate_and_discards),
        cmocka_unit_test(writer_empty_frame_is_ezerolen),
        cmocka_unit_test(format_double_java_table),
        cmocka_unit_test(format_double_round_trips_random_bits),
        cmocka_unit_test(format_double_is_shortest_and_closest),
        cmocka_unit_test(format_double_too_small_buffer_is_empty),
        cmocka_unit_test(strerror_and_err_name_cover_every_code),
        cmocka_unit_test(err_name_falls_back_for_errno),
        cmocka_unit_test(msg_names_come_from_the_tables),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
