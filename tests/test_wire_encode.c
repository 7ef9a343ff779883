/* Server -> client encoders: the golden transcript of IB_WIRE.md §7 byte for byte, layouts and
 * field counts per server version, and a sweep over every version in range that reads each
 * frame back the way the official decoders do (ibapi/decoder.py, EDecoder.java). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ibwire.h"

/* ---------------------------------------------------------------------------------------------
 * Golden bytes (IB_WIRE.md §7)
 */
static const uint8_t golden_version_reply[] = {
    0x00, 0x00, 0x00, 0x1a, 0x31, 0x37, 0x38, 0x00, 0x32, 0x30, 0x32, 0x34, 0x30, 0x31, 0x31,
    0x35, 0x20, 0x31, 0x30, 0x3a, 0x31, 0x35, 0x3a, 0x33, 0x30, 0x20, 0x45, 0x53, 0x54, 0x00,
};
static const uint8_t golden_managed_accounts[] = {
    0x00, 0x00, 0x00, 0x0f, 0x31, 0x35, 0x00, 0x31, 0x00, 0x44,
    0x55, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x00,
};
static const uint8_t golden_next_valid_id[] = {
    0x00, 0x00, 0x00, 0x06, 0x39, 0x00, 0x31, 0x00, 0x31, 0x00,
};
static const uint8_t golden_2104[] = {
    0x00, 0x00, 0x00, 0x36, 0x34, 0x00, 0x32, 0x00, 0x2d, 0x31, 0x00, 0x32, 0x31, 0x30, 0x34,
    0x00, 0x4d, 0x61, 0x72, 0x6b, 0x65, 0x74, 0x20, 0x64, 0x61, 0x74, 0x61, 0x20, 0x66, 0x61,
    0x72, 0x6d, 0x20, 0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x20, 0x69,
    0x73, 0x20, 0x4f, 0x4b, 0x3a, 0x75, 0x73, 0x66, 0x61, 0x72, 0x6d, 0x00, 0x00,
};
static const uint8_t golden_2106[] = {
    0x00, 0x00, 0x00, 0x34, 0x34, 0x00, 0x32, 0x00, 0x2d, 0x31, 0x00, 0x32, 0x31, 0x30,
    0x36, 0x00, 0x48, 0x4d, 0x44, 0x53, 0x20, 0x64, 0x61, 0x74, 0x61, 0x20, 0x66, 0x61,
    0x72, 0x6d, 0x20, 0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x20,
    0x69, 0x73, 0x20, 0x4f, 0x4b, 0x3a, 0x75, 0x73, 0x68, 0x6d, 0x64, 0x73, 0x00, 0x00,
};
static const uint8_t golden_2158[] = {
    0x00, 0x00, 0x00, 0x39, 0x34, 0x00, 0x32, 0x00, 0x2d, 0x31, 0x00, 0x32, 0x31, 0x35, 0x38, 0x00,
    0x53, 0x65, 0x63, 0x2d, 0x64, 0x65, 0x66, 0x20, 0x64, 0x61, 0x74, 0x61, 0x20, 0x66, 0x61, 0x72,
    0x6d, 0x20, 0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x20, 0x69, 0x73, 0x20,
    0x4f, 0x4b, 0x3a, 0x73, 0x65, 0x63, 0x64, 0x65, 0x66, 0x6e, 0x6a, 0x00, 0x00,
};
static const uint8_t golden_current_time[] = {
    0x00, 0x00, 0x00, 0x10, 0x34, 0x39, 0x00, 0x31, 0x00, 0x31,
    0x37, 0x30, 0x35, 0x33, 0x33, 0x31, 0x37, 0x33, 0x30, 0x00,
};

#define TEXT_326 \
    "Unable to connect as the client id is already in use. Retry with a unique client id."

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

/* Renders the payload of the frame at buf[off..) as "f1,f2,...", the notation of IB_WIRE.md
 * (a trailing comma is an empty last field). Returns the frame's total size. */
static size_t render(const uint8_t *buf, size_t len, size_t off, char *out, size_t cap)
{
    struct ibw_frame f;
    ssize_t rc = ibw_frame_parse(buf + off, len - off, IBW_MAX_FRAME, &f);
    size_t i;

    assert_true(rc > 0);
    assert_true(f.len < cap);
    assert_int_equal(f.payload[f.len - 1], 0);
    for (i = 0; i + 1 < f.len; i++)
        out[i] = f.payload[i] ? (char)f.payload[i] : ',';
    out[f.len - 1] = '\0';
    return (size_t)rc;
}

/* Field count of the frame at buf[off..). */
static unsigned count_fields(const uint8_t *buf, size_t len, size_t off)
{
    struct ibw_frame f;
    struct ibw_reader r;

    assert_true(ibw_frame_parse(buf + off, len - off, IBW_MAX_FRAME, &f) > 0);
    ibw_reader_init(&r, f.payload, f.len);
    return ibw_reader_left(&r);
}

/* Opens a reader on the single frame that fills buf[0..len) and checks its message id. */
static void open_frame(struct ibw_reader *r, const uint8_t *buf, size_t len, int msg_id)
{
    struct ibw_frame f;
    int id;

    assert_int_equal(ibw_frame_parse(buf, len, IBW_MAX_FRAME, &f), (ssize_t)len);
    ibw_reader_init(r, f.payload, f.len);
    assert_int_equal(ibw_read_msg_id(r, &id), 0);
    assert_int_equal(id, msg_id);
}

static void expect_str(struct ibw_reader *r, const char *want)
{
    const char *s;

    assert_int_equal(ibw_read_str(r, &s), 0);
    assert_string_equal(s, want ? want : "");
}

static void expect_int(struct ibw_reader *r, int64_t want)
{
    int64_t v;

    assert_int_equal(ibw_read_long(r, &v), 0);
    assert_true(v == want);
}

static void expect_double(struct ibw_reader *r, double want)
{
    double v;

    assert_int_equal(ibw_read_double(r, &v), 0);
    assert_true(v == want);
}

/* Fixtures: a real-looking AAPL (IB_WIRE.md §4.3, rust-ibapi sample). */
static const struct ibw_tag_value aapl_sec_ids[] = { { "ISIN", "US0378331005" } };

static struct ibw_contract_details aapl_details(void)
{
    struct ibw_contract_details cd;

    memset(&cd, 0, sizeof cd);
    cd.c.con_id = 265598;
    cd.c.symbol = "AAPL";
    cd.c.sec_type = "STK";
    cd.c.exchange = "SMART";
    cd.c.primary_exchange = "NASDAQ";
    cd.c.currency = "USD";
    cd.c.local_symbol = "AAPL";
    cd.c.trading_class = "NMS";
    cd.market_name = "NMS";
    cd.min_tick = 0.01;
    cd.order_types = "ACTIVETIM,AD,LMT,MKT";
    cd.valid_exchanges = "SMART,NASDAQ";
    cd.price_magnifier = 1;
    cd.long_name = "APPLE INC";
    cd.industry = "Technology";
    cd.category = "Computers";
    cd.subcategory = "Computers";
    cd.time_zone_id = "US/Eastern";
    cd.trading_hours = "20240115:0400-20240115:2000";
    cd.liquid_hours = "20240115:0930-20240115:1600";
    cd.sec_ids = aapl_sec_ids;
    cd.n_sec_ids = 1;
    cd.agg_group = 1;
    cd.market_rule_ids = "26,26";
    cd.stock_type = "COMMON";
    cd.min_size = "0.0001";
    cd.size_increment = "0.0001";
    cd.suggested_size_increment = "100";
    return cd;
}

static const struct ibw_bar one_bar[] = {
    { "20240522 09:30:00 US/Eastern", 185.25, 186.0, 185.0, 185.5, "1000", "185.4", 10 },
};

/* ---------------------------------------------------------------------------------------------
 * The golden transcript
 */
static void encode_golden_transcript_byte_for_byte(void **state)
{
    uint8_t buf[512];
    struct ibw_writer w;
    size_t off = 0;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_enc_server_version(&w, 178, "20240115 10:15:30 EST"), 30);
    assert_int_equal(ibw_enc_managed_accounts(&w, 178, "DU1234567"), 19);
    assert_int_equal(ibw_enc_next_valid_id(&w, 178, 1), 10);
    assert_int_equal(
        ibw_enc_error(&w, 178, -1, 2104, "Market data farm connection is OK:usfarm", NULL, 0), 58);
    assert_int_equal(
        ibw_enc_error(&w, 178, -1, 2106, "HMDS data farm connection is OK:ushmds", NULL, 0), 56);
    assert_int_equal(
        ibw_enc_error(&w, 178, -1, 2158, "Sec-def data farm connection is OK:secdefnj", NULL, 0),
        61);
    assert_int_equal(ibw_enc_current_time(&w, 178, 1705331730), 20);

    assert_memory_equal(buf + off, golden_version_reply, sizeof golden_version_reply);
    off += sizeof golden_version_reply;
    assert_memory_equal(buf + off, golden_managed_accounts, sizeof golden_managed_accounts);
    off += sizeof golden_managed_accounts;
    assert_memory_equal(buf + off, golden_next_valid_id, sizeof golden_next_valid_id);
    off += sizeof golden_next_valid_id;
    assert_memory_equal(buf + off, golden_2104, sizeof golden_2104);
    off += sizeof golden_2104;
    assert_memory_equal(buf + off, golden_2106, sizeof golden_2106);
    off += sizeof golden_2106;
    assert_memory_equal(buf + off, golden_2158, sizeof golden_2158);
    off += sizeof golden_2158;
    assert_memory_equal(buf + off, golden_current_time, sizeof golden_current_time);
    off += sizeof golden_current_time;
    assert_int_equal(w.len, off);
}

static void encode_error_326_is_101_bytes(void **state)
{
    static const char want[] = "\0\0\0\x61"
                               "4\0"
                               "2\0"
                               "-1\0"
                               "326\0" TEXT_326 "\0"
                               "\0";
    uint8_t buf[128];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ibw_enc_error(&w, 178, -1, 326, TEXT_326, "", 0), 101);
    assert_int_equal(sizeof want - 1, 101);
    assert_memory_equal(buf, want, 101);
}

/* ---------------------------------------------------------------------------------------------
 * Layouts and field counts
 */
static void encode_error_layout_by_version(void **state)
{
    uint8_t buf[256];
    char text[256];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_error(&w, 165, 7, 200, "No security definition", "{}", 1) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "4,2,7,200,No security definition");

    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_error(&w, 178, 7, 200, "No security definition", NULL, 1) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "4,2,7,200,No security definition,");

    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_error(&w, 193, 7, 201, "Order rejected", "{\"a\":1}", 1) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "4,2,7,201,Order rejected,{\"a\":1}");

    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_error(&w, 194, -1, 2104, "OK:usfarm", NULL, 1705331730123) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "4,-1,2104,OK:usfarm,,1705331730123");
    assert_int_equal(count_fields(buf, w.len, 0), 6);
}

static void encode_exact_counts_for_start_up_messages(void **state)
{
    uint8_t buf[256];
    char text[256];
    struct ibw_writer w;
    size_t off = 0;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_managed_accounts(&w, 178, "DU1234567,DU7654321") > 0);
    assert_true(ibw_enc_next_valid_id(&w, 178, 117) > 0);
    assert_true(ibw_enc_current_time(&w, 178, 1752606307) > 0);
    off += render(buf, w.len, off, text, sizeof text);
    assert_string_equal(text, "15,1,DU1234567,DU7654321");
    assert_int_equal(count_fields(buf, w.len, 0), 3);
    assert_int_equal(count_fields(buf, w.len, off), 3);
    off += render(buf, w.len, off, text, sizeof text);
    assert_string_equal(text, "9,1,117");
    assert_int_equal(count_fields(buf, w.len, off), 3);
    off += render(buf, w.len, off, text, sizeof text);
    assert_string_equal(text, "49,1,1752606307");
    assert_int_equal(off, w.len);
}

static void encode_position_is_16_fields(void **state)
{
    struct ibw_position p;
    uint8_t buf[256];
    char text[256];
    struct ibw_writer w;

    (void)state;
    memset(&p, 0, sizeof p);
    p.account = "ACCOUNT_ID";
    p.c.con_id = 265598;
    p.c.symbol = "AAPL";
    p.c.sec_type = "STK";
    p.c.exchange = "NASDAQ";
    p.c.primary_exchange = "ignored";
    p.c.currency = "USD";
    p.c.local_symbol = "AAPL";
    p.c.trading_class = "NMS";
    p.position = "-110";
    p.avg_cost = 201.8829709;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_position(&w, 178, &p) > 0);
    render(buf, w.len, 0, text, sizeof text);
    /* Byte-identical to the rust-ibapi recording (IB_WIRE.md §4.3). */
    assert_string_equal(
        text, "61,3,ACCOUNT_ID,265598,AAPL,STK,,0.0,,,NASDAQ,USD,AAPL,NMS,-110,201.8829709");
    assert_int_equal(count_fields(buf, w.len, 0), 16);
}

static void encode_portfolio_value_is_20_fields(void **state)
{
    struct ibw_portfolio pf;
    uint8_t buf[256];
    char text[256];
    struct ibw_writer w;

    (void)state;
    memset(&pf, 0, sizeof pf);
    pf.p.account = "DU1234567";
    pf.p.c.con_id = 265598;
    pf.p.c.symbol = "AAPL";
    pf.p.c.sec_type = "STK";
    pf.p.c.exchange = "SMART";
    pf.p.c.primary_exchange = "NASDAQ";
    pf.p.c.currency = "USD";
    pf.p.c.local_symbol = "AAPL";
    pf.p.c.trading_class = "NMS";
    pf.p.position = "100";
    pf.p.avg_cost = 185.25;
    pf.market_price = 190.5;
    pf.market_value = 19050;
    pf.unrealized_pnl = 525;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_portfolio_value(&w, 178, &pf) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "7,8,265598,AAPL,STK,,0.0,,,NASDAQ,USD,AAPL,NMS,100,190.5,19050.0,"
                              "185.25,525.0,0.0,DU1234567");
    assert_int_equal(count_fields(buf, w.len, 0), 20);
    assert_int_equal(ibw_enc_portfolio_value(&w, 99, &pf), IBW_EVERSION);
}

struct layout_case {
    int sv;
    const char *want;
};

static void encode_small_messages_layouts(void **state)
{
    uint8_t buf[1024];
    char text[256];
    struct ibw_writer w;
    size_t off = 0, i;
    static const char *const want[] = {
        "62,1",
        "53,1",
        "102",
        "6,2,NetLiquidation,246447.83,USD,DU1234567",
        "8,1,10:15",
        "54,1,DU1234567",
        "73,1,1,DU1234567,,NetLiquidation,246447.83,USD",
        "74,1,1",
        "63,1,9000,DU1234567,NetLiquidation,246447.83,USD",
        "64,1,9000",
        "55,1,2",
        "52,1,3",
        "88,5,345479400",
        "81,8,0.01,9c0001,3",
        "1,6,8,1,185.25,100,0",
        "2,6,8,0,100",
        "46,6,8,45,1705331730",
        "45,6,8,49,0.0",
        "58,1,8,3",
        "57,1,8",
    };

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_position_end(&w, 178) > 0);
    assert_true(ibw_enc_open_order_end(&w, 178) > 0);
    assert_true(ibw_enc_completed_orders_end(&w, 178) > 0);
    assert_true(ibw_enc_account_value(&w, 178, "NetLiquidation", "246447.83", "USD", "DU1234567") >
                0);
    assert_true(ibw_enc_account_time(&w, 178, "10:15") > 0);
    assert_true(ibw_enc_account_download_end(&w, 178, "DU1234567") > 0);
    assert_true(ibw_enc_account_update_multi(&w, 178, 1, "DU1234567", NULL, "NetLiquidation",
                                             "246447.83", "USD") > 0);
    assert_true(ibw_enc_account_update_multi_end(&w, 178, 1) > 0);
    assert_true(ibw_enc_account_summary(&w, 178, 9000, "DU1234567", "NetLiquidation", "246447.83",
                                        "USD") > 0);
    assert_true(ibw_enc_account_summary_end(&w, 178, 9000) > 0);
    assert_true(ibw_enc_exec_details_end(&w, 178, 2) > 0);
    assert_true(ibw_enc_contract_details_end(&w, 178, 3) > 0);
    assert_true(ibw_enc_head_timestamp(&w, 178, 5, "345479400") > 0);
    assert_true(ibw_enc_tick_req_params(&w, 178, 8, 0.01, "9c0001", 3) > 0);
    assert_true(ibw_enc_tick_price(&w, 178, 8, IBW_TICK_BID, 185.25, "100", 0) > 0);
    assert_true(ibw_enc_tick_size(&w, 178, 8, IBW_TICK_BID_SIZE, "100") > 0);
    assert_true(ibw_enc_tick_string(&w, 178, 8, IBW_TICK_LAST_TIMESTAMP, "1705331730") > 0);
    assert_true(ibw_enc_tick_generic(&w, 178, 8, 49, 0.0) > 0);
    assert_true(ibw_enc_market_data_type(&w, 178, 8, 3) > 0);
    assert_true(ibw_enc_tick_snapshot_end(&w, 178, 8) > 0);
    for (i = 0; i < sizeof want / sizeof want[0]; i++) {
        off += render(buf, w.len, off, text, sizeof text);
        assert_string_equal(text, want[i]);
    }
    assert_int_equal(off, w.len);
}

static void encode_contract_details_at_178(void **state)
{
    struct ibw_contract_details cd = aapl_details();
    uint8_t buf[1024];
    char text[1024];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_contract_details(&w, 178, 9000, &cd) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "10,9000,AAPL,STK,,0.0,,SMART,USD,AAPL,NMS,NMS,265598,0.01,,"
                              "ACTIVETIM,AD,LMT,MKT,SMART,NASDAQ,1,0,APPLE INC,NASDAQ,,Technology,"
                              "Computers,Computers,US/Eastern,20240115:0400-20240115:2000,"
                              "20240115:0930-20240115:1600,,,1,ISIN,US0378331005,1,,,26,26,,COMMON,"
                              "0.0001,0.0001,100");
    /* 40 fields without sec ids, + 2 for the one ISIN pair. */
    assert_int_equal(count_fields(buf, w.len, 0), 42);
}

static void encode_contract_details_field_counts_by_version(void **state)
{
    static const struct {
        int sv;
        unsigned fields;
    } cases[] = {
        { 100, 32 }, /* version 8, nothing after the sec ids */
        { 110, 33 }, /* + mdSizeMultiplier */
        { 121, 34 }, /* + aggGroup */
        { 122, 36 }, /* + underSymbol, underSecType */
        { 126, 37 }, /* + marketRuleIds */
        { 134, 38 }, /* + realExpirationDate */
        { 152, 39 }, /* + stockType */
        { 163, 40 }, /* + sizeMinTick */
        { 164, 40 }, /* - version, - mdSizeMultiplier, - sizeMinTick, + 3 size rules */
        { 178, 40 }, { 181, 40 }, { 182, 41 }, /* + lastTradeDate */
        { 186, 42 },                           /* + ineligibilityReasonCount */
        { 200, 42 },
    };
    struct ibw_contract_details cd = aapl_details();
    size_t i;

    (void)state;
    cd.sec_ids = NULL;
    cd.n_sec_ids = 5; /* ignored without the array */
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[1024];
        struct ibw_writer w;

        ibw_writer_init(&w, buf, sizeof buf);
        assert_true(ibw_enc_contract_details(&w, cases[i].sv, 9000, &cd) > 0);
        assert_int_equal(count_fields(buf, w.len, 0), cases[i].fields);
    }
}

static void encode_contract_details_version_field_below_164(void **state)
{
    struct ibw_contract_details cd = aapl_details();
    uint8_t buf[1024];
    char text[1024];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_contract_details(&w, 163, 9000, &cd) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "10,8,9000,AAPL,STK,,0.0,,SMART,USD,AAPL,NMS,NMS,265598,0.01,1,,"
                              "ACTIVETIM,AD,LMT,MKT,SMART,NASDAQ,1,0,APPLE INC,NASDAQ,,Technology,"
                              "Computers,Computers,US/Eastern,20240115:0400-20240115:2000,"
                              "20240115:0930-20240115:1600,,,1,ISIN,US0378331005,1,,,26,26,,COMMON,"
                              "0.0001");
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_contract_details(&w, 100, 9000, &cd) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "10,8,9000,AAPL,STK,,0.0,,SMART,USD,AAPL,NMS,NMS,265598,0.01,,"
                              "ACTIVETIM,AD,LMT,MKT,SMART,NASDAQ,1,0,APPLE INC,NASDAQ,,Technology,"
                              "Computers,Computers,US/Eastern,20240115:0400-20240115:2000,"
                              "20240115:0930-20240115:1600,,,1,ISIN,US0378331005");
}

static void encode_contract_details_at_186_has_last_trade_date(void **state)
{
    struct ibw_contract_details cd = aapl_details();
    uint8_t buf[1024];
    char text[1024];
    struct ibw_writer w;

    (void)state;
    cd.c.sec_type = "FUT";
    cd.c.last_trade_date = "20240315";
    cd.last_trade_date = "20240315";
    cd.ev_rule = "EV";
    cd.ev_multiplier = 50.0;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_contract_details(&w, 186, 1, &cd) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_non_null(strstr(text, "10,1,AAPL,FUT,20240315,20240315,0.0,"));
    /* evMultiplier as an integer: the official Python decoder reads it with int(). */
    assert_non_null(strstr(text, "20240115:0930-20240115:1600,EV,50,1,ISIN,"));
    assert_string_equal(text + strlen(text) - strlen(",0.0001,0.0001,100,0"),
                        ",0.0001,0.0001,100,0");
    assert_int_equal(count_fields(buf, w.len, 0), 44);
}

static void encode_contract_details_fund_gets_empty_fund_fields(void **state)
{
    struct ibw_contract_details cd = aapl_details();
    uint8_t buf[1024];
    struct ibw_writer w;

    (void)state;
    cd.c.sec_type = "FUND";
    cd.sec_ids = NULL;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_contract_details(&w, 178, 1, &cd) > 0);
    assert_int_equal(count_fields(buf, w.len, 0), 40); /* before FUND_DATA_FIELDS */
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_contract_details(&w, 179, 1, &cd) > 0);
    assert_int_equal(count_fields(buf, w.len, 0), 40 + 17);
}

static void encode_historical_data_below_124_has_version_and_gaps(void **state)
{
    uint8_t buf[512];
    char text[512];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_historical_data(&w, 123, 7, "20240522 09:30:00 US/Eastern",
                                        "20240522 16:00:00 US/Eastern", one_bar, 1) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "17,3,7,20240522 09:30:00 US/Eastern,20240522 16:00:00 US/Eastern,1,"
                              "20240522 09:30:00 US/Eastern,185.25,186.0,185.0,185.5,1000,185.4,"
                              "false,10");
    assert_int_equal(count_fields(buf, w.len, 0), 6 + 9);
}

static void encode_historical_data_at_178(void **state)
{
    uint8_t buf[512];
    char text[512];
    struct ibw_writer w;
    ssize_t n;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    n = ibw_enc_historical_data(&w, 178, 7, "20240522 09:30:00 US/Eastern",
                                "20240522 16:00:00 US/Eastern", one_bar, 1);
    assert_int_equal(n, (ssize_t)w.len);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text,
                        "17,7,20240522 09:30:00 US/Eastern,20240522 16:00:00 US/Eastern,1,"
                        "20240522 09:30:00 US/Eastern,185.25,186.0,185.0,185.5,1000,185.4,10");
    assert_int_equal(count_fields(buf, w.len, 0), 5 + 8);
}

static void encode_historical_data_from_196_writes_two_frames(void **state)
{
    uint8_t buf[512];
    char text[512];
    struct ibw_writer w;
    size_t first;
    ssize_t n;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    n = ibw_enc_historical_data(&w, 196, 7, "20240522 09:30:00 US/Eastern",
                                "20240522 16:00:00 US/Eastern", one_bar, 1);
    assert_int_equal(n, (ssize_t)w.len);
    first = render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "17,7,1,20240522 09:30:00 US/Eastern,185.25,186.0,185.0,185.5,1000,"
                              "185.4,10");
    assert_int_equal(count_fields(buf, w.len, 0), 3 + 8);
    assert_int_equal(first + render(buf, w.len, first, text, sizeof text), w.len);
    assert_string_equal(text, "108,7,20240522 09:30:00 US/Eastern,20240522 16:00:00 US/Eastern");
}

static void encode_historical_data_empty_answer(void **state)
{
    uint8_t buf[128];
    char text[128];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_historical_data(&w, 178, 7, "a", "b", NULL, 3) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "17,7,a,b,0");
}

static void encode_historical_data_196_is_all_or_nothing(void **state)
{
    uint8_t buf[512];
    struct ibw_writer w;
    size_t cap;

    (void)state;
    /* Find the size of both frames, then give every smaller capacity: neither frame may stay. */
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_next_valid_id(&w, 196, 1) > 0);
    assert_true(ibw_enc_historical_data(&w, 196, 7, "s", "e", one_bar, 1) > 0);
    for (cap = 10; cap < w.len; cap++) {
        uint8_t *small = malloc(cap);
        struct ibw_writer w2;

        assert_non_null(small);
        ibw_writer_init(&w2, small, cap);
        assert_int_equal(ibw_enc_next_valid_id(&w2, 196, 1), 10);
        assert_int_equal(ibw_enc_historical_data(&w2, 196, 7, "s", "e", one_bar, 1), IBW_ENOSPC);
        assert_int_equal(w2.len, 10);
        assert_memory_equal(small, golden_next_valid_id, 10);
        free(small);
    }
}

static void encode_symbol_samples_by_version(void **state)
{
    static const char *const derivs[] = { "CFD", "OPT", "IOPT" };
    struct ibw_symbol_sample s[1];
    uint8_t buf[512];
    char text[512];
    struct ibw_writer w;

    (void)state;
    memset(s, 0, sizeof s);
    s[0].con_id = 265598;
    s[0].symbol = "AAPL";
    s[0].sec_type = "STK";
    s[0].primary_exchange = "NASDAQ";
    s[0].currency = "USD";
    s[0].deriv_sec_types = derivs;
    s[0].n_deriv_sec_types = 3;
    s[0].description = "APPLE INC";
    s[0].issuer_id = "e1234";
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_symbol_samples(&w, 175, 6, s, 1) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "79,6,1,265598,AAPL,STK,NASDAQ,USD,3,CFD,OPT,IOPT");
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_symbol_samples(&w, 176, 6, s, 1) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "79,6,1,265598,AAPL,STK,NASDAQ,USD,3,CFD,OPT,IOPT,APPLE INC,e1234");
    ibw_writer_init(&w, buf, sizeof buf);
    assert_true(ibw_enc_symbol_samples(&w, 178, 9000, NULL, 0) > 0);
    render(buf, w.len, 0, text, sizeof text);
    assert_string_equal(text, "79,9000,0");
}

/* ---------------------------------------------------------------------------------------------
 * Every version in range, read back the way the official decoders read it
 */

/* official-py processContractDataMsg / EDecoder.processContractDataMsg, thresholds included. */
static void decode_contract_details(const uint8_t *buf, size_t len, int sv,
                                    const struct ibw_contract_details *cd)
{
    struct ibw_reader r;
    int version = 8, ev_multiplier, n, i;

    open_frame(&r, buf, len, IBW_IN_CONTRACT_DATA);
    if (sv < 164)
        assert_int_equal(ibw_read_int(&r, &version), 0);
    assert_int_equal(version, 8);
    expect_int(&r, 9000);
    expect_str(&r, cd->c.symbol);
    expect_str(&r, cd->c.sec_type);
    expect_str(&r, cd->c.last_trade_date);
    if (sv >= 182)
        expect_str(&r, cd->last_trade_date);
    expect_double(&r, cd->c.strike);
    expect_str(&r, cd->c.right);
    expect_str(&r, cd->c.exchange);
    expect_str(&r, cd->c.currency);
    expect_str(&r, cd->c.local_symbol);
    expect_str(&r, cd->market_name);
    expect_str(&r, cd->c.trading_class);
    expect_int(&r, cd->c.con_id);
    expect_double(&r, cd->min_tick);
    if (sv >= 110 && sv < 164)
        assert_int_equal(ibw_read_skip(&r, 1), 0);
    expect_str(&r, cd->c.multiplier);
    expect_str(&r, cd->order_types);
    expect_str(&r, cd->valid_exchanges);
    expect_int(&r, cd->price_magnifier);
    expect_int(&r, cd->under_con_id);
    expect_str(&r, cd->long_name);
    expect_str(&r, cd->c.primary_exchange);
    expect_str(&r, cd->contract_month);
    expect_str(&r, cd->industry);
    expect_str(&r, cd->category);
    expect_str(&r, cd->subcategory);
    expect_str(&r, cd->time_zone_id);
    expect_str(&r, cd->trading_hours);
    expect_str(&r, cd->liquid_hours);
    expect_str(&r, cd->ev_rule);
    assert_int_equal(ibw_read_int(&r, &ev_multiplier), 0); /* int() in official-py */
    assert_int_equal(ev_multiplier, (int)cd->ev_multiplier);
    assert_int_equal(ibw_read_int(&r, &n), 0);
    assert_int_equal(n, (int)cd->n_sec_ids);
    for (i = 0; i < n; i++) {
        expect_str(&r, cd->sec_ids[i].tag);
        expect_str(&r, cd->sec_ids[i].value);
    }
    if (sv >= 121)
        expect_int(&r, cd->agg_group);
    if (sv >= 122) {
        expect_str(&r, cd->under_symbol);
        expect_str(&r, cd->under_sec_type);
    }
    if (sv >= 126)
        expect_str(&r, cd->market_rule_ids);
    if (sv >= 134)
        expect_str(&r, cd->real_expiration_date);
    if (sv >= 152)
        expect_str(&r, cd->stock_type);
    if (sv >= 163 && sv < 164)
        assert_int_equal(ibw_read_skip(&r, 1), 0);
    if (sv >= 164) {
        expect_str(&r, cd->min_size);
        expect_str(&r, cd->size_increment);
        expect_str(&r, cd->suggested_size_increment);
    }
    if (sv >= 186) {
        assert_int_equal(ibw_read_int(&r, &n), 0);
        assert_int_equal(n, 0);
    }
    assert_int_equal(ibw_reader_left(&r), 0);
}

/* official-py processHistoricalDataMsg (+ processHistoricalDataEndMsg from 196). */
static void decode_historical_data(const uint8_t *buf, size_t len, int sv)
{
    struct ibw_reader r;
    struct ibw_frame f;
    ssize_t first = ibw_frame_parse(buf, len, IBW_MAX_FRAME, &f);
    int n;

    assert_true(first > 0);
    assert_int_equal((size_t)first == len, sv < 196);
    open_frame(&r, buf, (size_t)first, IBW_IN_HISTORICAL_DATA);
    if (sv < 124)
        expect_int(&r, 3);
    expect_int(&r, 7);
    if (sv < 196) {
        expect_str(&r, "start");
        expect_str(&r, "end");
    }
    assert_int_equal(ibw_read_int(&r, &n), 0);
    assert_int_equal(n, 1);
    expect_str(&r, one_bar[0].date);
    expect_double(&r, one_bar[0].open);
    expect_double(&r, one_bar[0].high);
    expect_double(&r, one_bar[0].low);
    expect_double(&r, one_bar[0].close);
    expect_str(&r, one_bar[0].volume);
    expect_str(&r, one_bar[0].wap);
    if (sv < 124)
        assert_int_equal(ibw_read_skip(&r, 1), 0);
    expect_int(&r, one_bar[0].count);
    assert_int_equal(ibw_reader_left(&r), 0);
    if (sv >= 196) {
        open_frame(&r, buf + first, len - (size_t)first, IBW_IN_HISTORICAL_DATA_END);
        expect_int(&r, 7);
        expect_str(&r, "start");
        expect_str(&r, "end");
        assert_int_equal(ibw_reader_left(&r), 0);
    }
}

/* official-py processErrorMsg. */
static void decode_error(const uint8_t *buf, size_t len, int sv)
{
    struct ibw_reader r;

    open_frame(&r, buf, len, IBW_IN_ERR_MSG);
    if (sv < 194)
        expect_int(&r, 2);
    expect_int(&r, -1);
    expect_int(&r, 2104);
    expect_str(&r, "text");
    if (sv >= 166)
        expect_str(&r, "");
    if (sv >= 194)
        expect_int(&r, 1705331730000);
    assert_int_equal(ibw_reader_left(&r), 0);
}

static void encode_every_version_reads_back_like_official_decoder(void **state)
{
    struct ibw_contract_details cd = aapl_details();
    int sv;

    (void)state;
    cd.ev_multiplier = 100;
    cd.ev_rule = "aapl";
    for (sv = IBW_MIN_VERSION; sv <= IBW_MAX_VERSION; sv++) {
        uint8_t buf[2048];
        struct ibw_writer w;
        ssize_t n;

        ibw_writer_init(&w, buf, sizeof buf);
        n = ibw_enc_contract_details(&w, sv, 9000, &cd);
        assert_int_equal(n, (ssize_t)w.len);
        decode_contract_details(buf, w.len, sv, &cd);

        ibw_writer_init(&w, buf, sizeof buf);
        n = ibw_enc_historical_data(&w, sv, 7, "start", "end", one_bar, 1);
        assert_int_equal(n, (ssize_t)w.len);
        decode_historical_data(buf, w.len, sv);

        ibw_writer_init(&w, buf, sizeof buf);
        n = ibw_enc_error(&w, sv, -1, 2104, "text", NULL, 1705331730000);
        assert_int_equal(n, (ssize_t)w.len);
        decode_error(buf, w.len, sv);
    }
}

/* One call of every server encoder at sv; their results go to rcs[0..*n_rcs). */
static void call_every_encoder(struct ibw_writer *w, int sv, ssize_t *rcs, size_t *n_rcs)
{
    struct ibw_contract_details cd = aapl_details();
    struct ibw_position p;
    struct ibw_symbol_sample s;
    size_t n = 0;

    memset(&p, 0, sizeof p);
    memset(&s, 0, sizeof s);
    rcs[n++] = ibw_enc_error(w, sv, -1, 2104, "t", NULL, 0);
    rcs[n++] = ibw_enc_next_valid_id(w, sv, 1);
    rcs[n++] = ibw_enc_managed_accounts(w, sv, "DU1");
    rcs[n++] = ibw_enc_current_time(w, sv, 1);
    rcs[n++] = ibw_enc_position(w, sv, &p);
    rcs[n++] = ibw_enc_position_end(w, sv);
    rcs[n++] = ibw_enc_open_order_end(w, sv);
    rcs[n++] = ibw_enc_completed_orders_end(w, sv);
    rcs[n++] = ibw_enc_account_value(w, sv, "k", "v", "USD", "DU1");
    rcs[n++] = ibw_enc_account_time(w, sv, "10:15");
    rcs[n++] = ibw_enc_account_download_end(w, sv, "DU1");
    rcs[n++] = ibw_enc_account_update_multi(w, sv, 1, "DU1", "", "k", "v", "USD");
    rcs[n++] = ibw_enc_account_update_multi_end(w, sv, 1);
    rcs[n++] = ibw_enc_account_summary(w, sv, 1, "DU1", "t", "v", "USD");
    rcs[n++] = ibw_enc_account_summary_end(w, sv, 1);
    rcs[n++] = ibw_enc_exec_details_end(w, sv, 1);
    rcs[n++] = ibw_enc_contract_details(w, sv, 1, &cd);
    rcs[n++] = ibw_enc_contract_details_end(w, sv, 1);
    rcs[n++] = ibw_enc_historical_data(w, sv, 1, "s", "e", one_bar, 1);
    rcs[n++] = ibw_enc_head_timestamp(w, sv, 1, "1");
    rcs[n++] = ibw_enc_symbol_samples(w, sv, 1, &s, 1);
    rcs[n++] = ibw_enc_tick_req_params(w, sv, 1, 0.01, "", 3);
    rcs[n++] = ibw_enc_tick_price(w, sv, 1, 1, 1.0, "1", 0);
    rcs[n++] = ibw_enc_tick_size(w, sv, 1, 0, "1");
    rcs[n++] = ibw_enc_tick_string(w, sv, 1, 45, "1");
    rcs[n++] = ibw_enc_tick_generic(w, sv, 1, 49, 0.0);
    rcs[n++] = ibw_enc_market_data_type(w, sv, 1, 3);
    rcs[n++] = ibw_enc_tick_snapshot_end(w, sv, 1);
    *n_rcs = n;
}

static void encode_rejects_versions_out_of_range(void **state)
{
    static const int bad[] = { 0, 99, 201, 213, -1 };
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t buf[4096];
        struct ibw_writer w;
        ssize_t rcs[64];
        size_t n;

        ibw_writer_init(&w, buf, sizeof buf);
        call_every_encoder(&w, bad[i], rcs, &n);
        for (j = 0; j < n; j++)
            assert_int_equal(rcs[j], IBW_EVERSION);
        assert_int_equal(w.len, 0);
        assert_int_equal(w.err, 0); /* nothing written, writer still usable */
    }
}

static void encode_every_version_in_range_is_accepted(void **state)
{
    int sv;

    (void)state;
    for (sv = IBW_MIN_VERSION; sv <= IBW_MAX_VERSION; sv++) {
        uint8_t buf[8192];
        struct ibw_writer w;
        ssize_t rcs[64], total = 0;
        size_t n, j, off = 0;

        ibw_writer_init(&w, buf, sizeof buf);
        call_every_encoder(&w, sv, rcs, &n);
        for (j = 0; j < n; j++) {
            assert_true(rcs[j] > 0);
            total += rcs[j];
        }
        assert_int_equal(total, (ssize_t)w.len);
        while (off < w.len) { /* well-formed frames, back to back */
            struct ibw_frame f;
            ssize_t rc = ibw_frame_parse(buf + off, w.len - off, IBW_MAX_FRAME, &f);

            assert_true(rc > 0);
            assert_int_equal(f.payload[f.len - 1], 0);
            off += (size_t)rc;
        }
    }
}

static void encode_enospc_keeps_earlier_frames(void **state)
{
    uint8_t *buf = malloc(40);
    struct ibw_writer w;

    (void)state;
    assert_non_null(buf);
    ibw_writer_init(&w, buf, 40);
    assert_int_equal(ibw_enc_managed_accounts(&w, 178, "DU1234567"), 19);
    assert_int_equal(ibw_enc_next_valid_id(&w, 178, 1), 10);
    assert_int_equal(ibw_enc_current_time(&w, 178, 1705331730), IBW_ENOSPC);
    assert_int_equal(w.len, 29);
    assert_memory_equal(buf, golden_managed_accounts, 19);
    assert_memory_equal(buf + 19, golden_next_valid_id, 10);
    /* Sticky until re-init: a frame that would fit is refused too. */
    assert_int_equal(ibw_enc_position_end(&w, 178), IBW_ENOSPC);
    assert_int_equal(w.len, 29);
    free(buf);
}

static void encode_every_capacity_fails_cleanly(void **state)
{
    struct ibw_contract_details cd = aapl_details();
    uint8_t full[1024];
    struct ibw_writer w;
    size_t cap;
    ssize_t need;

    (void)state;
    ibw_writer_init(&w, full, sizeof full);
    need = ibw_enc_contract_details(&w, 178, 9000, &cd);
    assert_true(need > 0);
    for (cap = 0; cap <= (size_t)need; cap++) {
        uint8_t *buf = malloc(cap ? cap : 1); /* exact size: ASan guards the boundary */
        ssize_t rc;

        assert_non_null(buf);
        ibw_writer_init(&w, buf, cap);
        rc = ibw_enc_contract_details(&w, 178, 9000, &cd);
        if (cap < (size_t)need) {
            assert_int_equal(rc, IBW_ENOSPC);
            assert_int_equal(w.len, 0);
        } else {
            assert_int_equal(rc, need);
            assert_memory_equal(buf, full, (size_t)need);
        }
        free(buf);
    }
}

static void decode_error_reads_both_layouts(void **state)
{
    uint8_t buf[256];
    struct ibw_writer w;
    struct ibw_frame f;
    const char *text;
    int sv[] = { 165, 178, 194, 200 };

    (void)state;
    for (unsigned i = 0; i < sizeof sv / sizeof sv[0]; i++) {
        struct ibw_reader r;
        int id = 0, code = 0, msg = 0;

        ibw_writer_init(&w, buf, sizeof buf);
        assert_true(ibw_enc_error(&w, sv[i], 7, 1100, "lost", NULL, 1) > 0);
        assert_true(ibw_frame_parse(buf, w.len, IBW_MAX_FRAME, &f) > 0);
        ibw_reader_init(&r, f.payload, f.len);
        assert_int_equal(ibw_read_msg_id(&r, &msg), 0);
        assert_int_equal(ibw_dec_error(&r, sv[i], &id, &code, &text), 0);
        assert_int_equal(id, 7);
        assert_int_equal(code, 1100);
        assert_string_equal(text, "lost");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_golden_transcript_byte_for_byte),
        cmocka_unit_test(encode_error_326_is_101_bytes),
        cmocka_unit_test(encode_error_layout_by_version),
        cmocka_unit_test(encode_exact_counts_for_start_up_messages),
        cmocka_unit_test(encode_position_is_16_fields),
        cmocka_unit_test(encode_portfolio_value_is_20_fields),
        cmocka_unit_test(decode_error_reads_both_layouts),
        cmocka_unit_test(encode_small_messages_layouts),
        cmocka_unit_test(encode_contract_details_at_178),
        cmocka_unit_test(encode_contract_details_field_counts_by_version),
        cmocka_unit_test(encode_contract_details_version_field_below_164),
        cmocka_unit_test(encode_contract_details_at_186_has_last_trade_date),
        cmocka_unit_test(encode_contract_details_fund_gets_empty_fund_fields),
        cmocka_unit_test(encode_historical_data_below_124_has_version_and_gaps),
        cmocka_unit_test(encode_historical_data_at_178),
        cmocka_unit_test(encode_historical_data_from_196_writes_two_frames),
        cmocka_unit_test(encode_historical_data_empty_answer),
        cmocka_unit_test(encode_historical_data_196_is_all_or_nothing),
        cmocka_unit_test(encode_symbol_samples_by_version),
        cmocka_unit_test(encode_every_version_reads_back_like_official_decoder),
        cmocka_unit_test(encode_rejects_versions_out_of_range),
        cmocka_unit_test(encode_every_version_in_range_is_accepted),
        cmocka_unit_test(encode_enospc_keeps_earlier_frames),
        cmocka_unit_test(encode_every_capacity_fails_cleanly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
