/* Fixture table: the built-in table, matching, searching, hours, and every loader error. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixtures.h"

#define AAPL   265598
#define MSFT   272093
#define SPY    756733
#define ES     495512563
#define EURUSD 12087792

/* A contract with only the required keys; tests splice extra keys in with %s. */
#define MIN_CONTRACT(id, sym)                                                              \
    "{\"con_id\": " #id ", \"symbol\": \"" sym "\", \"sec_type\": \"STK\", \"exchange\": " \
    "\"SMART\", \"currency\": \"USD\"}"

static struct mgw_fixtures *parse(const char *json, struct mgw_err *err)
{
    /* An exact-size heap copy without a NUL: ASan catches any read past len. */
    size_t len = strlen(json);
    char *copy = malloc(len > 0 ? len : 1);
    struct mgw_fixtures *fx;

    assert_non_null(copy);
    memcpy(copy, json, len);
    fx = mgw_fixtures_parse(copy, len, "t.json", err);
    free(copy);
    return fx;
}

/* Parses json and asserts it fails with exactly msg. */
static void expect_error(const char *json, const char *msg)
{
    struct mgw_err err;
    struct mgw_fixtures *fx = parse(json, &err);

    if (fx != NULL)
        fail_msg("accepted: %s", json);
    assert_string_equal(err.msg, msg);
}

static int setup_default(void **state)
{
    struct mgw_err err;

    *state = mgw_fixtures_default(&err);
    if (*state == NULL)
        fail_msg("%s", err.msg);
    return 0;
}

static int teardown_default(void **state)
{
    mgw_fixtures_free(*state);
    return 0;
}

static struct ibw_contract stock(const char *symbol, const char *exchange, const char *currency)
{
    struct ibw_contract q;

    memset(&q, 0, sizeof q);
    q.symbol = symbol;
    q.sec_type = "STK";
    q.exchange = exchange;
    q.currency = currency;
    q.last_trade_date = "";
    q.right = "";
    q.multiplier = "";
    q.primary_exchange = "";
    q.local_symbol = "";
    q.trading_class = "";
    return q;
}

static unsigned match(const struct mgw_fixtures *fx, const struct ibw_contract *q,
                      const struct mgw_fixture_contract **out)
{
    return mgw_fixtures_match(fx, q, out, 16);
}

/* ---------------------------------------------------------------------------------------------
 * The built-in table
 */
static void fixtures_default_has_the_documented_contracts(void **state)
{
    const struct mgw_fixtures *fx = *state;
    static const int64_t ids[] = { AAPL,     MSFT,      SPY,       320227571, 3691937, 4815747,
                                   76792991, 208813719, 107113386, 9579970,   ES,      EURUSD };
    const struct mgw_fixture_contract *c;
    size_t i;

    assert_int_equal(fx->n_contracts, 12);
    for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        c = mgw_fixtures_find(fx, ids[i]);
        assert_non_null(c);
        assert_true(c->base_price > 0.0);
        assert_non_null(c->d.trading_hours);
        assert_non_null(c->d.liquid_hours);
    }
    c = mgw_fixtures_find(fx, AAPL);
    assert_string_equal(c->d.c.symbol, "AAPL");
    assert_string_equal(c->d.c.primary_exchange, "NASDAQ");
    assert_string_equal(c->d.long_name, "APPLE INC");
    assert_string_equal(c->d.time_zone_id, "US/Eastern");
    assert_true(c->d.min_tick == 0.01);
    assert_int_equal(c->d.n_sec_ids, 1);
    assert_string_equal(c->d.sec_ids[0].tag, "ISIN");
    assert_string_equal(c->d.sec_ids[0].value, "US0378331005");
    assert_int_equal(c->n_deriv_sec_types, 5);
    assert_string_equal(c->deriv_sec_types[1], "OPT");

    c = mgw_fixtures_find(fx, ES);
    assert_string_equal(c->d.c.sec_type, "FUT");
    assert_string_equal(c->d.c.last_trade_date, "20261218");
    assert_string_equal(c->d.c.multiplier, "50");
    assert_string_equal(c->d.time_zone_id, "US/Central");
    assert_true(c->d.min_tick == 0.25);

    c = mgw_fixtures_find(fx, EURUSD);
    assert_string_equal(c->d.c.sec_type, "CASH");
    assert_string_equal(c->d.c.local_symbol, "EUR.USD");
    assert_string_equal(c->d.c.exchange, "IDEALPRO");
    assert_true(c->d.min_tick == 0.00005);
}

static void fixtures_default_has_account_values_and_one_position(void **state)
{
    const struct mgw_fixtures *fx = *state;
    unsigned i;
    bool found = false;

    assert_true(fx->n_account_values >= 10);
    for (i = 0; i < fx->n_account_values; i++) {
        if (strcmp(fx->account_values[i].key, "NetLiquidation") == 0) {
            assert_string_equal(fx->account_values[i].currency, "USD");
            found = true;
        }
    }
    assert_true(found);
    assert_int_equal(fx->n_positions, 1);
    assert_null(fx->positions[0].account);
    assert_int_equal(fx->positions[0].c.con_id, AAPL);
    assert_string_equal(fx->positions[0].c.exchange, "NASDAQ");
    assert_null(fx->positions[0].c.primary_exchange);
    assert_string_equal(fx->positions[0].position, "100");
    assert_true(fx->positions[0].avg_cost == 185.25);
}

/* ---------------------------------------------------------------------------------------------
 * Matching
 */
static void match_by_con_id_ignores_other_fields(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q = stock("WRONG", "NYSE", "EUR");

    q.con_id = MSFT;
    assert_int_equal(match(*state, &q, out), 1);
    assert_int_equal(out[0]->d.c.con_id, MSFT);
    q.con_id = 1;
    assert_int_equal(match(*state, &q, out), 0);
}

static void match_ib_async_stock_query_by_symbol_ignoring_case(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q = stock("aapl", "SMART", "USD"); /* Stock("AAPL","SMART","USD") */

    assert_int_equal(match(*state, &q, out), 1);
    assert_int_equal(out[0]->d.c.con_id, AAPL);
}

static void match_stoqey_empty_fields_are_wildcards(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q;

    memset(&q, 0, sizeof q); /* NULL strings, conId 0, strike 0 */
    q.symbol = "SPY";
    assert_int_equal(match(*state, &q, out), 1);
    assert_int_equal(out[0]->d.c.con_id, SPY);
    q.strike = 1.7976931348623157e308; /* UNSET strike is no filter either */
    assert_int_equal(match(*state, &q, out), 1);
}

static void match_exchange_smart_empty_or_listing_but_not_other(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q = stock("AAPL", "", "USD");

    assert_int_equal(match(*state, &q, out), 1);
    q.exchange = "NASDAQ"; /* the primary exchange, also in valid_exchanges */
    assert_int_equal(match(*state, &q, out), 1);
    q.exchange = "IEX"; /* in valid_exchanges */
    assert_int_equal(match(*state, &q, out), 1);
    q.exchange = "CME";
    assert_int_equal(match(*state, &q, out), 0);
    q.exchange = "SMART";
    q.primary_exchange = "ARCA";
    assert_int_equal(match(*state, &q, out), 0);
    q.primary_exchange = "nasdaq";
    assert_int_equal(match(*state, &q, out), 1);
}

static void match_currency_and_sec_type_filter(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q = stock("AAPL", "SMART", "EUR");

    assert_int_equal(match(*state, &q, out), 0);
    q.currency = "USD";
    q.sec_type = "OPT";
    assert_int_equal(match(*state, &q, out), 0);
    q.sec_type = "stk";
    assert_int_equal(match(*state, &q, out), 1);
}

static void match_future_by_contract_month_prefix(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q = stock("ES", "CME", "USD");

    q.sec_type = "FUT";
    q.last_trade_date = "202612";
    assert_int_equal(match(*state, &q, out), 1);
    assert_int_equal(out[0]->d.c.con_id, ES);
    q.last_trade_date = "20261218";
    assert_int_equal(match(*state, &q, out), 1);
    q.last_trade_date = "";
    assert_int_equal(match(*state, &q, out), 1);
    q.last_trade_date = "202603";
    assert_int_equal(match(*state, &q, out), 0);
    q.last_trade_date = "202612";
    q.multiplier = "50.0";
    assert_int_equal(match(*state, &q, out), 1);
    q.multiplier = "5";
    assert_int_equal(match(*state, &q, out), 0);
}

static void match_forex_by_symbol_or_local_symbol(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q = stock("EUR", "IDEALPRO", "USD");

    q.sec_type = "CASH";
    assert_int_equal(match(*state, &q, out), 1);
    assert_int_equal(out[0]->d.c.con_id, EURUSD);
    q.currency = "JPY";
    assert_int_equal(match(*state, &q, out), 0);
    q = stock("", "IDEALPRO", "");
    q.sec_type = "CASH";
    q.local_symbol = "EUR.USD";
    assert_int_equal(match(*state, &q, out), 1);
    assert_int_equal(out[0]->d.c.con_id, EURUSD);
}

static void match_unknown_or_empty_symbol_finds_nothing(void **state)
{
    const struct mgw_fixture_contract *out[16];
    struct ibw_contract q = stock("NOPE", "SMART", "USD");

    assert_int_equal(match(*state, &q, out), 0);
    q = stock("", "SMART", "USD");
    assert_int_equal(match(*state, &q, out), 0);
}

static void match_writes_at_most_max(void **state)
{
    const struct mgw_fixture_contract *out[2];
    struct ibw_contract q;
    struct mgw_err err;
    struct mgw_fixtures *fx;

    (void)state;
    fx =
        parse("{\"contracts\": [" MIN_CONTRACT(1, "X") "," MIN_CONTRACT(
                  2, "X") ","
                          "{\"con_id\": 3, \"symbol\": \"X\", \"sec_type\": \"STK\", \"exchange\": "
                          "\"SMART\", \"currency\": \"CAD\"}]}",
              &err);
    assert_non_null(fx);
    memset(&q, 0, sizeof q);
    q.symbol = "x";
    assert_int_equal(mgw_fixtures_match(fx, &q, out, 2), 2);
    assert_int_equal(out[0]->d.c.con_id, 1);
    assert_int_equal(out[1]->d.c.con_id, 2);
    assert_int_equal(mgw_fixtures_match(fx, &q, out, 0), 0);
    q.currency = "CAD";
    assert_int_equal(mgw_fixtures_match(fx, &q, out, 2), 1);
    assert_int_equal(out[0]->d.c.con_id, 3);
    mgw_fixtures_free(fx);
}

/* ---------------------------------------------------------------------------------------------
 * Searching
 */
static void search_symbol_prefix_first_then_long_name(void **state)
{
    const struct mgw_fixture_contract *out[8];
    struct mgw_err err;
    struct mgw_fixtures *fx;

    (void)state;
    fx = parse("{\"contracts\": ["
               "{\"con_id\": 1, \"symbol\": \"ZZ\", \"sec_type\": \"STK\", \"exchange\": "
               "\"SMART\", \"currency\": \"USD\", \"long_name\": \"Big Abc Holdings\"},"
               "{\"con_id\": 2, \"symbol\": \"ABC\", \"sec_type\": \"STK\", \"exchange\": "
               "\"SMART\", \"currency\": \"USD\", \"long_name\": \"ABC CORP\"},"
               "{\"con_id\": 3, \"symbol\": \"QQ\", \"sec_type\": \"STK\", \"exchange\": "
               "\"SMART\", \"currency\": \"USD\", \"long_name\": \"nothing\"},"
               "{\"con_id\": 4, \"symbol\": \"AB\", \"sec_type\": \"STK\", \"exchange\": "
               "\"SMART\", \"currency\": \"USD\"}]}",
               &err);
    assert_non_null(fx);
    assert_int_equal(mgw_fixtures_search(fx, "ab", out, 8), 3);
    assert_int_equal(out[0]->d.c.con_id, 2); /* symbol prefix, table order */
    assert_int_equal(out[1]->d.c.con_id, 4);
    assert_int_equal(out[2]->d.c.con_id, 1); /* then the long name, once */
    assert_int_equal(mgw_fixtures_search(fx, "ab", out, 1), 1);
    assert_int_equal(mgw_fixtures_search(fx, "", out, 8), 0);
    assert_int_equal(mgw_fixtures_search(fx, "xyz", out, 8), 0);
    mgw_fixtures_free(fx);
}

static void search_default_table_by_prefix(void **state)
{
    const struct mgw_fixture_contract *out[16];
    unsigned n = mgw_fixtures_search(*state, "AAP", out, 16);

    assert_int_equal(n, 1);
    assert_int_equal(out[0]->d.c.con_id, AAPL);
    n = mgw_fixtures_search(*state, "micro", out, 16); /* MICROSOFT CORP */
    assert_int_equal(n, 1);
    assert_int_equal(out[0]->d.c.con_id, MSFT);
}

/* ---------------------------------------------------------------------------------------------
 * Trading hours
 */
static void details_render_stock_hours_for_seven_days(void **state)
{
    char buf[MGW_FIXTURE_DETAILS_BUF];
    struct ibw_contract_details d;
    const struct mgw_fixture_contract *c = mgw_fixtures_find(*state, AAPL);

    /* Friday 2024-05-24 12:00 UTC */
    assert_int_equal(mgw_fixture_details_at(c, 1716552000, &d, buf, sizeof buf), 0);
    assert_string_equal(d.trading_hours,
                        "20240524:0400-20240524:2000;20240525:CLOSED;20240526:CLOSED;"
                        "20240527:0400-20240527:2000;20240528:0400-20240528:2000;"
                        "20240529:0400-20240529:2000;20240530:0400-20240530:2000");
    assert_string_equal(d.liquid_hours,
                        "20240524:0930-20240524:1600;20240525:CLOSED;20240526:CLOSED;"
                        "20240527:0930-20240527:1600;20240528:0930-20240528:1600;"
                        "20240529:0930-20240529:1600;20240530:0930-20240530:1600");
    assert_string_equal(d.long_name, "APPLE INC"); /* everything else is the table's */
    assert_int_equal(d.c.con_id, AAPL);
}

static void details_render_overnight_future_session_by_its_open_day(void **state)
{
    char buf[MGW_FIXTURE_DETAILS_BUF];
    struct ibw_contract_details d;
    const struct mgw_fixture_contract *c = mgw_fixtures_find(*state, ES);

    /* Saturday 2024-05-25 12:00 UTC: Saturday is closed, Sunday evening opens Monday. */
    assert_int_equal(mgw_fixture_details_at(c, 1716638400, &d, buf, sizeof buf), 0);
    assert_string_equal(d.trading_hours,
                        "20240525:CLOSED;20240526:1700-20240527:1600;20240527:1700-20240528:1600;"
                        "20240528:1700-20240529:1600;20240529:1700-20240530:1600;"
                        "20240530:1700-20240531:1600");
    assert_int_equal(mgw_fixture_details_at(c, 1716638400, &d, buf, 64), -1);
}

static void details_render_in_the_contract_time_zone(void **state)
{
    char buf[MGW_FIXTURE_DETAILS_BUF];
    struct ibw_contract_details d;
    const struct mgw_fixture_contract *c = mgw_fixtures_find(*state, AAPL);

    /* 2024-05-25 02:00 UTC is still Friday 22:00 in New York. */
    assert_int_equal(mgw_fixture_details_at(c, 1716602400, &d, buf, sizeof buf), 0);
    assert_int_equal(strncmp(d.liquid_hours, "20240524:0930-20240524:1600;", 28), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Defaults
 */
static void parse_minimal_contract_gets_documented_defaults(void **state)
{
    struct mgw_err err;
    struct mgw_fixtures *fx;
    const struct mgw_fixture_contract *c;

    (void)state;
    fx = parse("{\"contracts\": [" MIN_CONTRACT(7, "XYZ") "]}", &err);
    assert_non_null(fx);
    assert_int_equal(fx->n_account_values, 0);
    assert_int_equal(fx->n_positions, 0);
    c = &fx->contracts[0];
    assert_string_equal(c->d.c.local_symbol, "XYZ");
    assert_string_equal(c->d.long_name, "XYZ");
    assert_string_equal(c->d.valid_exchanges, "SMART");
    assert_string_equal(c->d.c.primary_exchange, "");
    assert_string_equal(c->d.c.trading_class, "");
    assert_string_equal(c->d.market_name, "");
    assert_string_equal(c->d.time_zone_id, "US/Eastern");
    assert_string_equal(c->d.trading_hours, "0400-2000");
    assert_string_equal(c->d.liquid_hours, "0930-1600");
    assert_string_equal(c->d.min_size, "1");
    assert_string_equal(c->head_timestamp, "20100104-14:30:00");
    assert_string_equal(c->description, "");
    assert_true(c->d.min_tick == 0.01);
    assert_true(c->base_price == 100.0);
    assert_true(c->daily_volatility == 0.02);
    assert_int_equal(c->avg_volume, 1000000);
    assert_int_equal(c->d.price_magnifier, 1);
    assert_int_equal(c->d.agg_group, 1);
    assert_int_equal(c->d.n_sec_ids, 0);
    assert_int_equal(c->n_deriv_sec_types, 0);
    mgw_fixtures_free(fx);
}

static void parse_default_hours_follow_sec_type(void **state)
{
    struct mgw_err err;
    struct mgw_fixtures *fx;

    (void)state;
    fx = parse("{\"contracts\": ["
               "{\"con_id\": 1, \"symbol\": \"GBP\", \"sec_type\": \"CASH\", \"exchange\": "
               "\"IDEALPRO\", \"currency\": \"USD\"},"
               "{\"con_id\": 2, \"symbol\": \"NQ\", \"sec_type\": \"FUT\", \"exchange\": "
               "\"CME\", \"currency\": \"USD\"},"
               "{\"con_id\": 3, \"symbol\": \"SPX\", \"sec_type\": \"IND\", \"exchange\": "
               "\"CBOE\", \"currency\": \"USD\"}]}",
               &err);
    assert_non_null(fx);
    assert_string_equal(fx->contracts[0].d.trading_hours, "1715-1700");
    assert_string_equal(fx->contracts[0].d.liquid_hours, "1715-1700");
    assert_string_equal(fx->contracts[1].d.trading_hours, "1700-1600");
    assert_string_equal(fx->contracts[1].d.liquid_hours, "0830-1500");
    assert_string_equal(fx->contracts[2].d.trading_hours, "0930-1600");
    mgw_fixtures_free(fx);
}

/* ---------------------------------------------------------------------------------------------
 * Loader errors: file, JSON path, reason
 */
static void parse_rejects_bad_json_with_line_and_column(void **state)
{
    (void)state;
    expect_error("{\"contracts\": [\n  {,}\n]}",
                 "t.json: invalid JSON at line 2, column 5 (byte 20)");
    expect_error("{\"contracts\": [", "t.json: invalid JSON at line 1, column 15 (byte 14)");
    expect_error("{\"contracts\": []} x",
                 "t.json: invalid JSON at line 1, column 19 (byte 18): text after the document");
    expect_error("", "t.json: empty input, expected a JSON object");
}

static void parse_rejects_wrong_top_level_shapes(void **state)
{
    (void)state;
    expect_error("[]", "t.json: $: expected an object");
    expect_error("{}", "t.json: $: missing required key \"contracts\"");
    expect_error("{\"contracts\": {}}", "t.json: $.contracts: expected an array");
    expect_error("{\"contracts\": [], \"extra\": 1}", "t.json: $.extra: unknown key");
    expect_error("{\"contracts\": [], \"contracts\": []}", "t.json: $.contracts: key given twice");
    expect_error("{\"contracts\": [], \"positions\": 3}", "t.json: $.positions: expected an array");
    expect_error("{\"contracts\": [7]}", "t.json: $.contracts[0]: expected an object");
}

static void parse_rejects_wrong_types_with_json_path(void **state)
{
    (void)state;
    expect_error("{\"contracts\": [{\"con_id\": \"1\", \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\"}]}",
                 "t.json: $.contracts[0].con_id: expected an integer");
    expect_error("{\"contracts\": [{\"con_id\": 1.5, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\"}]}",
                 "t.json: $.contracts[0].con_id: expected an integer");
    expect_error("{\"contracts\": [{\"con_id\": 0, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\"}]}",
                 "t.json: $.contracts[0].con_id: must be between 1 and 9007199254740991");
    expect_error(
        "{\"contracts\": [" MIN_CONTRACT(
            1, "A") ", {\"con_id\": 2, \"symbol\": 5, "
                    "\"sec_type\": \"STK\", \"exchange\": \"SMART\", \"currency\": \"USD\"}]}",
        "t.json: $.contracts[1].symbol: expected a string");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\"}]}",
                 "t.json: $.contracts[0].symbol: must not be empty");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"long_name\": \"caf\\u00e9\"}]}",
                 "t.json: $.contracts[0].long_name: expected printable ASCII text");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"min_tick\": \"0.01\"}]}",
                 "t.json: $.contracts[0].min_tick: expected a number");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"min_tick\": 0}]}",
                 "t.json: $.contracts[0].min_tick: must be between 1e-10 and 1e+06");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"min_size\": \"1e3\"}]}",
                 "t.json: $.contracts[0].min_size: expected a decimal number as a string, like "
                 "\"100\" or \"0.0001\"");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"sec_ids\": [\"ISIN\"]}]}",
                 "t.json: $.contracts[0].sec_ids: expected an object of id type to id, like "
                 "{\"ISIN\": \"US0378331005\"}");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"sec_ids\": {\"ISIN\": 3}}]}",
                 "t.json: $.contracts[0].sec_ids.ISIN: expected a string");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", "
                 "\"deriv_sec_types\": [\"OPT\", 2]}]}",
                 "t.json: $.contracts[0].deriv_sec_types[1]: expected a string");
}

static void parse_rejects_unknown_and_missing_keys(void **state)
{
    (void)state;
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"colour\": \"red\"}]}",
                 "t.json: $.contracts[0].colour: unknown key");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\"}]}",
                 "t.json: $.contracts[0]: missing required key \"currency\"");
    expect_error("{\"contracts\": [{\"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\"}]}",
                 "t.json: $.contracts[0]: missing required key \"con_id\"");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"con_id\": 2, \"symbol\": \"X\", "
                 "\"sec_type\": \"STK\", \"exchange\": \"SMART\", \"currency\": \"USD\"}]}",
                 "t.json: $.contracts[0].con_id: key given twice");
}

static void parse_rejects_duplicate_con_id_naming_both(void **state)
{
    (void)state;
    expect_error("{\"contracts\": [" MIN_CONTRACT(5, "A") "," MIN_CONTRACT(6, "B") "," MIN_CONTRACT(
                     5, "C") "," MIN_CONTRACT(6, "D") "]}",
                 "t.json: $.contracts[2].con_id: duplicate con_id 5 (first at $.contracts[0])");
}

static void parse_rejects_bad_zone_hours_and_timestamps(void **state)
{
    (void)state;
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", \"time_zone_id\": \"EST\"}]}",
                 "t.json: $.contracts[0].time_zone_id: unknown time zone \"EST\" "
                 "(docs/fixtures.md lists the supported ones)");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", "
                 "\"trading_hours\": \"09:30-16:00\"}]}",
                 "t.json: $.contracts[0].trading_hours: expected sessions "
                 "\"HHMM-HHMM[,HHMM-HHMM...]\", got \"09:30-16:00\"");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", "
                 "\"liquid_hours\": \"0930-1200,1100-1600\"}]}",
                 "t.json: $.contracts[0].liquid_hours: expected sessions "
                 "\"HHMM-HHMM[,HHMM-HHMM...]\", got \"0930-1200,1100-1600\"");
    expect_error("{\"contracts\": [{\"con_id\": 1, \"symbol\": \"X\", \"sec_type\": \"STK\", "
                 "\"exchange\": \"SMART\", \"currency\": \"USD\", "
                 "\"head_timestamp\": \"20240230-14:30:00\"}]}",
                 "t.json: $.contracts[0].head_timestamp: expected \"yyyyMMdd-HH:mm:ss\" (UTC), "
                 "got \"20240230-14:30:00\"");
}

static void parse_rejects_bad_account_values_and_positions(void **state)
{
    (void)state;
    expect_error("{\"contracts\": [], \"account_values\": [{\"value\": \"1\"}]}",
                 "t.json: $.account_values[0]: missing required key \"key\"");
    expect_error("{\"contracts\": [], \"account_values\": [{\"key\": \"K\", \"value\": 1}]}",
                 "t.json: $.account_values[0].value: expected a string");
    expect_error("{\"contracts\": [], \"account_values\": [{\"key\": \"K\", \"value\": \"1\", "
                 "\"ccy\": \"USD\"}]}",
                 "t.json: $.account_values[0].ccy: unknown key");
    expect_error("{\"contracts\": [" MIN_CONTRACT(
                     1, "A") "], \"positions\": [{\"con_id\": 2, \"position\": \"1\"}]}",
                 "t.json: $.positions[0].con_id: no contract with con_id 2 in $.contracts");
    expect_error("{\"contracts\": [" MIN_CONTRACT(
                     1, "A") "], \"positions\": [{\"con_id\": 1, \"position\": 100}]}",
                 "t.json: $.positions[0].position: expected a string");
    expect_error("{\"contracts\": [" MIN_CONTRACT(
                     1, "A") "], \"positions\": [{\"con_id\": 1, \"position\": \"1.\"}]}",
                 "t.json: $.positions[0].position: expected a decimal number as a string, like "
                 "\"100\" or \"0.0001\"");
    expect_error("{\"contracts\": [" MIN_CONTRACT(1, "A") "], \"positions\": [{\"con_id\": 1}]}",
                 "t.json: $.positions[0]: missing required key \"position\"");
}

static void parse_accepts_account_values_and_positions(void **state)
{
    struct mgw_err err;
    struct mgw_fixtures *fx;

    (void)state;
    fx = parse(
        "{\"contracts\": [" MIN_CONTRACT(
            1, "A") "], \"account_values\": ["
                    "{\"key\": \"AccountType\", \"value\": \"INDIVIDUAL\", \"currency\": \"\"},"
                    "{\"key\": \"NetLiquidation\", \"value\": \"5.00\"}],"
                    "\"positions\": [{\"con_id\": 1, \"position\": \"-0.5\", \"avg_cost\": 2.5, "
                    "\"account\": \"DU7\"}]}",
        &err);
    assert_non_null(fx);
    assert_int_equal(fx->n_account_values, 2);
    assert_string_equal(fx->account_values[0].currency, "");
    assert_string_equal(fx->account_values[1].currency, "USD");
    assert_string_equal(fx->positions[0].account, "DU7");
    assert_string_equal(fx->positions[0].position, "-0.5");
    assert_string_equal(fx->positions[0].c.exchange, "SMART"); /* no primary exchange */
    mgw_fixtures_free(fx);
}

static void load_missing_file_reports_path_and_strerror(void **state)
{
    struct mgw_err err;

    (void)state;
    assert_null(mgw_fixtures_load("/nonexistent/dir/fx.json", &err));
    assert_string_equal(err.msg, "/nonexistent/dir/fx.json: No such file or directory");
}

static void load_file_uses_path_in_errors_and_loads_good_files(void **state)
{
    char path[] = "/tmp/mgw_fx_XXXXXX";
    struct mgw_fixtures *fx;
    struct mgw_err err;
    int fd = mkstemp(path);
    static const char bad[] = "{\"contracts\": [{\"con_id\": true}]}";
    static const char good[] = "{\"contracts\": [" MIN_CONTRACT(9, "GOOD") "]}\n";
    char expect[256];

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    assert_null(mgw_fixtures_load(path, &err));
    snprintf(expect, sizeof expect, "%s: $.contracts[0].con_id: expected an integer", path);
    assert_string_equal(err.msg, expect);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, good, sizeof good - 1), (ssize_t)(sizeof good - 1));
    close(fd);
    fx = mgw_fixtures_load(path, &err);
    assert_non_null(fx);
    assert_string_equal(fx->contracts[0].d.c.symbol, "GOOD");
    mgw_fixtures_free(fx);
    unlink(path);
}

static void free_null_is_a_noop(void **state)
{
    (void)state;
    mgw_fixtures_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fixtures_default_has_the_documented_contracts,
                                        setup_default, teardown_default),
        cmocka_unit_test_setup_teardown(fixtures_default_has_account_values_and_one_position,
                                        setup_default, teardown_default),
        cmocka_unit_test_setup_teardown(match_by_con_id_ignores_other_fields, setup_default,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(match_ib_async_stock_query_by_symbol_ignoring_case,
                                        setup_default, teardown_default),
        cmocka_unit_test_setup_teardown(match_stoqey_empty_fields_are_wildcards, setup_default,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(match_exchange_smart_empty_or_listing_but_not_other,
                                        setup_default, teardown_default),
        cmocka_unit_test_setup_teardown(match_currency_and_sec_type_filter, setup_default,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(match_future_by_contract_month_prefix, setup_default,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(match_forex_by_symbol_or_local_symbol, setup_default,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(match_unknown_or_empty_symbol_finds_nothing, setup_default,
                                        teardown_default),
        cmocka_unit_test(match_writes_at_most_max),
        cmocka_unit_test(search_symbol_prefix_first_then_long_name),
        cmocka_unit_test_setup_teardown(search_default_table_by_prefix, setup_default,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(details_render_stock_hours_for_seven_days, setup_default,
                                        teardown_default),
        cmocka_unit_test_setup_teardown(details_render_overnight_future_session_by_its_open_day,
                                        setup_default, teardown_default),
        cmocka_unit_test_setup_teardown(details_render_in_the_contract_time_zone, setup_default,
                                        teardown_default),
        cmocka_unit_test(parse_minimal_contract_gets_documented_defaults),
        cmocka_unit_test(parse_default_hours_follow_sec_type),
        cmocka_unit_test(parse_rejects_bad_json_with_line_and_column),
        cmocka_unit_test(parse_rejects_wrong_top_level_shapes),
        cmocka_unit_test(parse_rejects_wrong_types_with_json_path),
        cmocka_unit_test(parse_rejects_unknown_and_missing_keys),
        cmocka_unit_test(parse_rejects_duplicate_con_id_naming_both),
        cmocka_unit_test(parse_rejects_bad_zone_hours_and_timestamps),
        cmocka_unit_test(parse_rejects_bad_account_values_and_positions),
        cmocka_unit_test(parse_accepts_account_values_and_positions),
        cmocka_unit_test(load_missing_file_reports_path_and_strerror),
        cmocka_unit_test(load_file_uses_path_in_errors_and_loads_good_files),
        cmocka_unit_test(free_null_is_a_noop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
