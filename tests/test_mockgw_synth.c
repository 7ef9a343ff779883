/* Synthetic market data: time zones, bar windows, determinism, rejections, quotes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"
#include "synth.h"
#include "tz.h"

#define AAPL   265598
#define ES     495512563
#define EURUSD 12087792
#define NOW    1716580800 /* Friday 2024-05-24 20:00 UTC (16:00 New York) */
#define LATER  1800000000 /* 2027-01-15: after every date used below */

static struct mgw_fixtures *fx;

static int setup(void **state)
{
    struct mgw_err err;

    (void)state;
    fx = mgw_fixtures_default(&err);
    if (fx == NULL)
        fail_msg("%s", err.msg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mgw_fixtures_free(fx);
    return 0;
}

static struct mgw_hist_request req(int64_t con_id, const char *end, const char *duration,
                                   const char *bar_size, const char *what, bool rth)
{
    struct mgw_hist_request r;

    memset(&r, 0, sizeof r);
    r.contract = mgw_fixtures_find(fx, con_id);
    assert_non_null(r.contract);
    r.end_date_time = end;
    r.duration = duration;
    r.bar_size = bar_size;
    r.what_to_show = what;
    r.use_rth = rth;
    r.format_date = 1;
    r.now_s = LATER; /* explicit end times are in the past; tests about "now" set NOW */
    r.seed = 42;
    r.max_bars = 100000;
    return r;
}

static void gen_ok(const struct mgw_hist_request *r, struct mgw_hist *h)
{
    struct mgw_synth_reject rej;

    if (mgw_hist_generate(r, h, &rej) != 0)
        fail_msg("rejected %d: %s", rej.code, rej.text);
}

static void gen_rejected(const struct mgw_hist_request *r, int code, const char *text)
{
    struct mgw_synth_reject rej;
    struct mgw_hist h;

    if (mgw_hist_generate(r, &h, &rej) == 0) {
        mgw_hist_free(&h);
        fail_msg("accepted: %s %s %s", r->end_date_time, r->duration, r->bar_size);
    }
    assert_int_equal(rej.code, code);
    assert_string_equal(rej.text, text);
    assert_null(h.bars);
    assert_int_equal(h.n, 0);
}

static bool same_bar(const struct ibw_bar *a, const struct ibw_bar *b)
{
    return strcmp(a->date, b->date) == 0 && a->open == b->open && a->high == b->high &&
           a->low == b->low && a->close == b->close && strcmp(a->volume, b->volume) == 0 &&
           strcmp(a->wap, b->wap) == 0 && a->count == b->count;
}

static bool is_multiple(double p, double tick)
{
    double n = p / tick;

    return fabs(n - floor(n + 0.5)) < 1e-6;
}

static bool is_decimal_text(const char *s)
{
    if (*s == '-')
        s++;
    if (*s < '0' || *s > '9')
        return false;
    while ((*s >= '0' && *s <= '9') || *s == '.')
        s++;
    return *s == '\0';
}

/* Every bar: low <= open, close <= high; prices whole ticks; TRADES volume/wap/count real,
 * other types -1; dates strictly ascending. */
static void check_bars(const struct mgw_hist *h, const struct mgw_fixture_contract *c, bool trades,
                       bool ticks)
{
    unsigned i;

    for (i = 0; i < h->n; i++) {
        const struct ibw_bar *b = &h->bars[i];

        assert_true(b->low > 0.0);
        assert_true(b->low <= b->open && b->low <= b->close);
        assert_true(b->high >= b->open && b->high >= b->close);
        if (ticks) {
            assert_true(is_multiple(b->open, c->d.min_tick));
            assert_true(is_multiple(b->high, c->d.min_tick));
            assert_true(is_multiple(b->low, c->d.min_tick));
            assert_true(is_multiple(b->close, c->d.min_tick));
        }
        if (trades) {
            double wap = strtod(b->wap, NULL);

            assert_true(is_decimal_text(b->volume));
            assert_true(is_decimal_text(b->wap));
            assert_true(strtod(b->volume, NULL) >= 1.0);
            assert_true(wap >= b->low && wap <= b->high);
            assert_true(b->count > 0);
        } else {
            assert_string_equal(b->volume, "-1");
            assert_string_equal(b->wap, "-1");
            assert_int_equal(b->count, -1);
        }
        if (i > 0)
            assert_true(strcmp(h->bars[i - 1].date, b->date) < 0);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Time zones
 */
static void tz_us_eastern_offsets_around_2024_transitions(void **state)
{
    const struct mgw_tz *ny = mgw__tz_find("US/Eastern");

    (void)state;
    assert_non_null(ny);
    assert_ptr_not_equal(mgw__tz_find("America/New_York"), NULL);
    assert_int_equal(mgw__tz_offset(ny, 1721050200), -4 * 3600);     /* July: EDT */
    assert_int_equal(mgw__tz_offset(ny, 1705415400), -5 * 3600);     /* January: EST */
    assert_int_equal(mgw__tz_offset(ny, 1710054000 - 1), -5 * 3600); /* 2024-03-10 01:59:59 */
    assert_int_equal(mgw__tz_offset(ny, 1710054000), -4 * 3600);     /* 03:00 EDT */
    assert_int_equal(mgw__tz_offset(ny, 1730613600 - 1), -4 * 3600); /* 2024-11-03 01:59:59 */
    assert_int_equal(mgw__tz_offset(ny, 1730613600), -5 * 3600);     /* 01:00 EST again */
}

static void tz_central_and_pre_2007_us_rules(void **state)
{
    const struct mgw_tz *ch = mgw__tz_find("US/Central");
    const struct mgw_tz *ny = mgw__tz_find("America/New_York");

    (void)state;
    assert_int_equal(mgw__tz_offset(ch, 1710057600 - 1), -6 * 3600); /* 2024-03-10 01:59 CST */
    assert_int_equal(mgw__tz_offset(ch, 1710057600), -5 * 3600);
    assert_int_equal(mgw__tz_offset(ny, 1143961200 - 1), -5 * 3600); /* 2006: first Sun Apr */
    assert_int_equal(mgw__tz_offset(ny, 1143961200), -4 * 3600);
    assert_int_equal(mgw__tz_offset(ny, 1162101600 - 1), -4 * 3600); /* 2006: last Sun Oct */
    assert_int_equal(mgw__tz_offset(ny, 1162101600), -5 * 3600);
}

static void tz_europe_london_and_utc(void **state)
{
    const struct mgw_tz *ld = mgw__tz_find("Europe/London");
    const struct mgw_tz *utc = mgw__tz_find("UTC");

    (void)state;
    assert_int_equal(mgw__tz_offset(ld, 1711846800 - 1), 0); /* 2024-03-31 00:59:59 UTC */
    assert_int_equal(mgw__tz_offset(ld, 1711846800), 3600);
    assert_int_equal(mgw__tz_offset(ld, 1729990800 - 1), 3600); /* 2024-10-27 00:59:59 UTC */
    assert_int_equal(mgw__tz_offset(ld, 1729990800), 0);
    assert_int_equal(mgw__tz_offset(utc, 1721050200), 0);
    assert_non_null(mgw__tz_find("GMT"));
    assert_null(mgw__tz_find("EST"));
    assert_null(mgw__tz_find("us/eastern"));
    assert_null(mgw__tz_find(NULL));
}

static void tz_local_to_utc_gap_and_repeated_hour(void **state)
{
    const struct mgw_tz *ny = mgw__tz_find("US/Eastern");
    int64_t mar10 = mgw__days_from_civil(2024, 3, 10) * 86400;
    int64_t nov3 = mgw__days_from_civil(2024, 11, 3) * 86400;

    (void)state;
    /* 02:30 never happens on 2024-03-10: read as EST, i.e. 03:30 EDT. */
    assert_int_equal(mgw__tz_utc(ny, mar10 + 2 * 3600 + 1800), 1710055800);
    /* 01:30 happens twice on 2024-11-03: the first (EDT). */
    assert_int_equal(mgw__tz_utc(ny, nov3 + 3600 + 1800), 1730611800);
    assert_int_equal(mgw__tz_utc(ny, mgw__days_from_civil(2024, 7, 15) * 86400 + 34200),
                     1721050200);
}

static void tz_civil_dates_and_hours_templates(void **state)
{
    struct mgw_hours h;
    int64_t y;
    int m, d;

    (void)state;
    assert_int_equal(mgw__days_from_civil(1970, 1, 1), 0);
    assert_int_equal(mgw__days_from_civil(2000, 3, 1), 11017);
    mgw__civil_from_days(19867, &y, &m, &d); /* 2024-05-24 */
    assert_true(y == 2024 && m == 5 && d == 24);
    assert_int_equal(mgw__weekday(19867), 5); /* Friday */
    assert_int_equal(mgw__weekday(-1), 3);    /* 1969-12-31 was a Wednesday */
    assert_int_equal(mgw__days_in_month(2024, 2), 29);
    assert_int_equal(mgw__days_in_month(1900, 2), 28);

    assert_int_equal(mgw__hours_parse("0930-1600", &h), 0);
    assert_true(h.n == 1 && h.s[0].open_min == 570 && h.s[0].close_min == 960);
    assert_int_equal(mgw__hours_parse("1700-1600", &h), 0);
    assert_true(h.s[0].open_min == -420 && h.s[0].close_min == 960);
    assert_int_equal(mgw__hours_parse("0000-2400", &h), 0);
    assert_int_equal(mgw__hours_parse("0930-1200,1300-1600", &h), 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(mgw__hours_parse("", &h), -1);
    assert_int_equal(mgw__hours_parse("0930-1600,", &h), -1);
    assert_int_equal(mgw__hours_parse("0960-1600", &h), -1);
    assert_int_equal(mgw__hours_parse("2400-0100", &h), -1);
    assert_int_equal(mgw__hours_parse("0930-1200,1300-1000", &h), -1); /* 2nd overnight */
    assert_int_equal(mgw__hours_parse("1700-1600,1600-1800", &h), -1); /* overlaps next day */
    assert_int_equal(mgw__hours_parse("0100-0200,0300-0400,0500-0600,0700-0800,0900-1000", &h), -1);
}

/* ---------------------------------------------------------------------------------------------
 * Determinism
 */
static void hist_same_request_twice_is_identical(void **state)
{
    struct mgw_hist_request r = req(AAPL, "", "2 D", "5 mins", "TRADES", false);
    struct mgw_hist a, b;
    unsigned i;

    (void)state;
    gen_ok(&r, &a);
    gen_ok(&r, &b);
    assert_int_equal(a.n, b.n);
    assert_string_equal(a.start, b.start);
    assert_string_equal(a.end, b.end);
    for (i = 0; i < a.n; i++)
        assert_true(same_bar(&a.bars[i], &b.bars[i]));
    mgw_hist_free(&a);
    mgw_hist_free(&b);
}

static void hist_different_seed_gives_different_prices(void **state)
{
    struct mgw_hist_request r = req(AAPL, "", "1 D", "5 mins", "TRADES", true);
    struct mgw_hist a, b;
    unsigned i, differ = 0;

    (void)state;
    gen_ok(&r, &a);
    r.seed = 43;
    gen_ok(&r, &b);
    assert_int_equal(a.n, b.n);
    for (i = 0; i < a.n; i++) {
        assert_string_equal(a.bars[i].date, b.bars[i].date); /* same bars, other prices */
        differ += !same_bar(&a.bars[i], &b.bars[i]);
    }
    assert_true(differ > a.n / 2);
    mgw_hist_free(&a);
    mgw_hist_free(&b);
}

static void hist_overlapping_windows_agree_on_shared_bars(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240523 12:00:00 US/Eastern", "2 D", "5 mins", "TRADES", true);
    struct mgw_hist a, b;
    unsigned i, j, shared = 0;

    (void)state;
    gen_ok(&r, &a);
    r.end_date_time = "20240524 12:00:00 US/Eastern";
    r.duration = "2 D";
    gen_ok(&r, &b);
    for (i = 0; i < a.n; i++) {
        for (j = 0; j < b.n; j++) {
            if (strcmp(a.bars[i].date, b.bars[j].date) == 0) {
                assert_true(same_bar(&a.bars[i], &b.bars[j]));
                shared++;
            }
        }
    }
    assert_int_equal(shared, 30); /* 2024-05-23 09:30 .. 11:55 */
    mgw_hist_free(&a);
    mgw_hist_free(&b);
}

/* ---------------------------------------------------------------------------------------------
 * Which bars
 */
static void hist_one_day_hourly_rth_stock_has_7_bars(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240523 16:00:00 US/Eastern", "1 D", "1 hour", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 7);
    assert_string_equal(h.bars[0].date, "20240523 09:30:00 US/Eastern"); /* half hour */
    assert_string_equal(h.bars[1].date, "20240523 10:00:00 US/Eastern");
    assert_string_equal(h.bars[6].date, "20240523 15:00:00 US/Eastern");
    assert_string_equal(h.start, "20240523 09:30:00 US/Eastern");
    assert_string_equal(h.end, "20240523 16:00:00 US/Eastern");
    check_bars(&h, r.contract, true, true);
    mgw_hist_free(&h);

    r.end_date_time = ""; /* now = Friday 16:00: Friday's session */
    r.now_s = NOW;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 7);
    assert_string_equal(h.bars[0].date, "20240524 09:30:00 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_one_day_hourly_all_hours_stock_has_16_bars(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240523 20:00:00 US/Eastern", "1 D", "1 hour", "TRADES", false);
    struct mgw_hist h;

    (void)state;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 16);
    assert_string_equal(h.bars[0].date, "20240523 04:00:00 US/Eastern");
    assert_string_equal(h.bars[15].date, "20240523 19:00:00 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_30_seconds_of_5_second_bars_is_6(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240524 10:00:30 US/Eastern", "30 S", "5 secs", "MIDPOINT", true);
    struct mgw_hist h;

    (void)state;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 6);
    assert_string_equal(h.bars[0].date, "20240524 10:00:00 US/Eastern");
    assert_string_equal(h.bars[5].date, "20240524 10:00:25 US/Eastern");
    check_bars(&h, r.contract, false, true);
    mgw_hist_free(&h);

    r.end_date_time = "20240524 10:00:32 US/Eastern"; /* mid-bar: the bar in progress counts */
    gen_ok(&r, &h);
    assert_int_equal(h.n, 6);
    assert_string_equal(h.bars[0].date, "20240524 10:00:05 US/Eastern");
    assert_string_equal(h.bars[5].date, "20240524 10:00:30 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_weekends_are_skipped(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240529 16:00:00 US/Eastern", "1 W", "1 day", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 5); /* Thu 23, Fri 24, Mon 27, Tue 28, Wed 29 */
    assert_string_equal(h.bars[0].date, "20240523");
    assert_string_equal(h.bars[1].date, "20240524");
    assert_string_equal(h.bars[2].date, "20240527");
    assert_string_equal(h.bars[4].date, "20240529");
    mgw_hist_free(&h);

    r = req(AAPL, "20240527 10:00:00 US/Eastern", "2 D", "1 hour", "TRADES", true);
    gen_ok(&r, &h);
    assert_int_equal(h.n, 8); /* Friday's 7, then Monday 09:30 */
    assert_string_equal(h.bars[0].date, "20240524 09:30:00 US/Eastern");
    assert_string_equal(h.bars[6].date, "20240524 15:00:00 US/Eastern");
    assert_string_equal(h.bars[7].date, "20240527 09:30:00 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_days_duration_on_sunday_returns_friday(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240526 12:00:00 US/Eastern", "1 D", "30 mins", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 13);
    assert_string_equal(h.bars[0].date, "20240524 09:30:00 US/Eastern");
    assert_string_equal(h.bars[12].date, "20240524 15:30:00 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_weekend_only_window_is_no_data(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240525 12:00:00 US/Eastern", "3600 S", "1 min", "TRADES", false);

    (void)state;
    gen_rejected(&r, 162,
                 "Historical Market Data Service error message:HMDS query returned no data: "
                 "AAPL@SMART Trades");
    r = req(EURUSD, "20240525 12:00:00", "600 S", "1 min", "BID", false);
    gen_rejected(&r, 162,
                 "Historical Market Data Service error message:HMDS query returned no data: "
                 "EUR.USD@IDEALPRO Bid");
}

static void hist_future_overnight_session_starts_sunday_evening(void **state)
{
    struct mgw_hist_request r =
        req(ES, "20250714 10:00:00 US/Central", "1 D", "1 hour", "TRADES", false);
    struct mgw_hist h;

    (void)state;
    r.now_s = LATER;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 17); /* Sunday 17:00 .. Monday 09:00 */
    assert_string_equal(h.bars[0].date, "20250713 17:00:00 US/Central");
    assert_string_equal(h.bars[16].date, "20250714 09:00:00 US/Central");
    check_bars(&h, r.contract, true, true);
    mgw_hist_free(&h);

    r.use_rth = true; /* liquid hours 08:30-15:00 */
    gen_ok(&r, &h);
    assert_int_equal(h.n, 2);
    assert_string_equal(h.bars[0].date, "20250714 08:30:00 US/Central");
    mgw_hist_free(&h);
}

static void hist_watchdog_probe_has_bars_at_any_time_of_week(void **state)
{
    struct mgw_hist_request r = req(EURUSD, "", "30 S", "5 secs", "MIDPOINT", false);
    struct mgw_hist h;
    int64_t t;

    (void)state;
    /* Every 397 s for 8 days from Thursday 2024-05-23 00:00 UTC: weekdays, the 17:00-17:15
     * daily gap, and the whole weekend. */
    for (t = 1716422400; t < 1716422400 + 8 * 86400; t += 397) {
        r.now_s = t;
        gen_ok(&r, &h);
        assert_true(h.n >= 1 && h.n <= 6);
        check_bars(&h, r.contract, false, true);
        mgw_hist_free(&h);
    }
    r.now_s = 1716652800; /* Saturday noon New York: the last bars before Friday's close */
    gen_ok(&r, &h);
    assert_int_equal(h.n, 6);
    assert_string_equal(h.bars[0].date, "20240524 16:59:30 US/Eastern");
    assert_string_equal(h.end, "20240524 17:00:00 US/Eastern");
    mgw_hist_free(&h);
    r.now_s = mgw__tz_utc(mgw__tz_find("US/Eastern"),
                          mgw__days_from_civil(2024, 5, 22) * 86400 + 17 * 3600 + 15 * 60);
    gen_ok(&r, &h); /* exactly at the reopening: still the bars before the gap */
    assert_int_equal(h.n, 6);
    assert_string_equal(h.bars[5].date, "20240522 16:59:55 US/Eastern");
    mgw_hist_free(&h);
}

/* ---------------------------------------------------------------------------------------------
 * Dates
 */
static void hist_dst_summer_and_winter_first_bar_epochs(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240715 10:00:00 US/Eastern", "1800 S", "30 mins", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    r.format_date = 2;
    r.now_s = LATER;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.bars[0].date, "1721050200"); /* 13:30 UTC */
    mgw_hist_free(&h);
    r.end_date_time = "20240116 10:00:00 US/Eastern";
    gen_ok(&r, &h);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.bars[0].date, "1705415400"); /* 14:30 UTC */
    mgw_hist_free(&h);
    r.end_date_time = "20240116-15:00:00"; /* the same instant, in UTC */
    gen_ok(&r, &h);
    assert_string_equal(h.bars[0].date, "1705415400");
    assert_string_equal(h.end, "1705417200");
    mgw_hist_free(&h);
}

static void hist_dst_transition_weeks(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240311 10:00:00 US/Eastern", "2 D", "30 mins", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    r.format_date = 2;
    r.now_s = LATER;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 14);
    assert_string_equal(h.bars[0].date, "1709908200");  /* Fri 03-08 09:30 EST */
    assert_string_equal(h.bars[13].date, "1710163800"); /* Mon 03-11 09:30 EDT */
    mgw_hist_free(&h);
    r.end_date_time = "20241104 10:00:00 US/Eastern";
    gen_ok(&r, &h);
    assert_int_equal(h.n, 14);
    assert_string_equal(h.bars[0].date, "1730467800");  /* Fri 11-01 09:30 EDT */
    assert_string_equal(h.bars[13].date, "1730730600"); /* Mon 11-04 09:30 EST */
    mgw_hist_free(&h);
    r.format_date = 1;
    gen_ok(&r, &h);
    assert_string_equal(h.bars[13].date, "20241104 09:30:00 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_format_date_1_and_2(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240523 16:00:00 US/Eastern", "1 D", "1 hour", "TRADES", true);
    struct mgw_hist a, b;
    unsigned i;

    (void)state;
    gen_ok(&r, &a);
    r.format_date = 2;
    gen_ok(&r, &b);
    assert_int_equal(a.n, b.n);
    assert_string_equal(a.bars[1].date, "20240523 10:00:00 US/Eastern");
    assert_string_equal(b.bars[1].date, "1716472800");
    assert_string_equal(b.start, "1716471000");
    assert_string_equal(b.end, "1716494400");
    for (i = 0; i < a.n; i++)
        assert_true(a.bars[i].open == b.bars[i].open && a.bars[i].close == b.bars[i].close);
    mgw_hist_free(&a);
    mgw_hist_free(&b);

    r.bar_size = "1 day"; /* daily bars are yyyyMMdd in both formats */
    r.duration = "2 D";
    gen_ok(&r, &b);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.bars[0].date, "20240522");
    assert_string_equal(b.bars[1].date, "20240523");
    mgw_hist_free(&b);
}

static void hist_weekly_and_monthly_bars(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240524 16:00:00 US/Eastern", "1 M", "1 week", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 5); /* weeks of Apr 22, Apr 29, May 6, May 13, May 20 */
    assert_string_equal(h.bars[0].date, "20240422");
    assert_string_equal(h.bars[4].date, "20240520");
    check_bars(&h, r.contract, true, true);
    mgw_hist_free(&h);
    r.bar_size = "1M";
    r.duration = "1 Y";
    gen_ok(&r, &h);
    assert_int_equal(h.n, 13); /* May 2023 .. May 2024 */
    assert_string_equal(h.bars[0].date, "20230501");
    assert_string_equal(h.bars[12].date, "20240501");
    mgw_hist_free(&h);
}

/* ---------------------------------------------------------------------------------------------
 * Values
 */
static void hist_bar_invariants_hold_for_every_type(void **state)
{
    static const char *const whats[] = { "TRADES", "MIDPOINT", "BID",
                                         "ASK",    "BID_ASK",  "ADJUSTED_LAST" };
    static const int64_t ids[] = { AAPL, ES, EURUSD };
    static const char *const sizes[] = { "1 secs", "1 min", "1 hour", "1 day" };
    struct mgw_hist_request r;
    struct mgw_hist h;
    size_t i, j, k;

    (void)state;
    for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        for (j = 0; j < sizeof whats / sizeof whats[0]; j++) {
            for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                bool trades = j == 0 || j == 5;

                if (ids[i] == EURUSD && trades)
                    continue;
                r = req(ids[i], "", strcmp(sizes[k], "1 secs") == 0 ? "1800 S" : "5 D", sizes[k],
                        whats[j], false);
                r.now_s = LATER;
                gen_ok(&r, &h);
                assert_true(h.n > 0);
                check_bars(&h, r.contract, trades, true);
                mgw_hist_free(&h);
            }
        }
    }
}

static void hist_bid_below_ask_and_volatility_types(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240523 16:00:00 US/Eastern", "1 D", "5 mins", "BID", true);
    struct mgw_hist bid, ask;
    unsigned i;

    (void)state;
    gen_ok(&r, &bid);
    r.what_to_show = "ASK";
    gen_ok(&r, &ask);
    assert_int_equal(bid.n, 78);
    for (i = 0; i < bid.n; i++)
        assert_true(bid.bars[i].open < ask.bars[i].open);
    mgw_hist_free(&bid);
    mgw_hist_free(&ask);

    r.what_to_show = "HISTORICAL_VOLATILITY";
    r.bar_size = "1 day";
    r.duration = "1 M";
    gen_ok(&r, &bid);
    check_bars(&bid, r.contract, false, false);
    assert_true(bid.bars[0].close > 0.05 && bid.bars[0].close < 1.0);
    mgw_hist_free(&bid);
}

static void hist_future_end_is_clamped_to_now(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20300101 00:00:00 US/Eastern", "1 D", "1 hour", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    r.now_s = NOW;
    gen_ok(&r, &h);
    assert_string_equal(h.end, "20240524 16:00:00 US/Eastern");
    assert_string_equal(h.bars[6].date, "20240524 15:00:00 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_window_before_head_timestamp_is_no_data(void **state)
{
    struct mgw_hist_request r =
        req(ES, "20240523 10:00:00 US/Central", "1 D", "1 hour", "TRADES", false);

    (void)state;
    gen_rejected(&r, 162,
                 "Historical Market Data Service error message:HMDS query returned no data: "
                 "ESZ6@CME Trades");
}

static void hist_max_bars_caps_and_zero_means_default(void **state)
{
    struct mgw_hist_request r =
        req(AAPL, "20240523 16:00:00 US/Eastern", "1 D", "1 min", "TRADES", true);
    struct mgw_hist h;

    (void)state;
    r.max_bars = 390;
    gen_ok(&r, &h);
    assert_int_equal(h.n, 390);
    mgw_hist_free(&h);
    r.max_bars = 389;
    gen_rejected(&r, 162, "Historical Market Data Service error message:Time length exceed max.");
    r.max_bars = 0; /* 100000 */
    gen_ok(&r, &h);
    assert_int_equal(h.n, 390);
    mgw_hist_free(&h);
    r.duration = "1 W";
    r.bar_size = "1 secs";
    gen_rejected(&r, 162, "Historical Market Data Service error message:Time length exceed max.");
}

/* ---------------------------------------------------------------------------------------------
 * Rejections
 */
static void hist_rejects_bad_durations(void **state)
{
    static const char *const bad_format[] = { "1D",   "1 X",  "",     "D",   "-1 D",
                                              "1  D", "1 DD", "1 D ", "x S", "1234567890 S" };
    static const char fmt_text[] =
        "Error validating request.-'bK' : cause - When specifying a unit, historical data "
        "request duration format is integer{SPACE}unit (S|D|W|M|Y).";
    struct mgw_hist_request r = req(AAPL, "", "", "1 hour", "TRADES", true);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad_format / sizeof bad_format[0]; i++) {
        r.duration = bad_format[i];
        gen_rejected(&r, 321, fmt_text);
    }
    r.duration = NULL;
    gen_rejected(&r, 321, fmt_text);
    r.duration = "0 D";
    gen_rejected(&r, 321,
                 "Error validating request.-'bK' : cause - Historical data requested duration is "
                 "invalid.");
    r.duration = "366 D";
    gen_rejected(&r, 321,
                 "Error validating request.-'bK' : cause - Historical data request for greater "
                 "than 365 days rejected.");
    r.duration = "53 W";
    gen_rejected(&r, 321,
                 "Error validating request.-'bK' : cause - Historical data request for greater "
                 "than 365 days rejected.");
}

static void hist_accepts_duration_spellings(void **state)
{
    static const char *const good[] = { "3600", "3600 S", "3600 s", "1 d", "1 w", "1 m", "1 y" };
    struct mgw_hist_request r = req(AAPL, "", "", "1 hour", "MIDPOINT", true);
    struct mgw_hist h;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        r.duration = good[i];
        gen_ok(&r, &h);
        mgw_hist_free(&h);
    }
}

static void hist_rejects_bad_bar_sizes(void **state)
{
    static const char *const bad[] = { "1 sec", "1 hours", "7 mins", "1min", "", "1 day " };
    struct mgw_hist_request r = req(AAPL, "", "1 D", "", "TRADES", true);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r.bar_size = bad[i];
        gen_rejected(&r, 321,
                     "Error validating request.-'bK' : cause - Historical data bar size setting is "
                     "invalid. Legal ones are: 1 secs, 5 secs, 10 secs, 15 secs, 30 secs, 1 min, "
                     "2 mins, 3 mins, 5 mins, 10 mins, 15 mins, 20 mins, 30 mins, 1 hour, 2 hours, "
                     "3 hours, 4 hours, 8 hours, 1 day, 1W, 1M");
    }
}

static void hist_rejects_bad_end_times(void **state)
{
    static const char *const bad[] = {
        "2024-05-23",         "20240523",
        "20240523 25:00:00",  "20240230 10:00:00",
        "20240523 10:00",     "20240523 10:00:00 Mars/Base",
        "20240523 10:00:00 ", "20240523-10:00:00 US/Eastern",
        "20240523  10:00:00", "19690101 10:00:00",
        "yesterday",
    };
    struct mgw_hist_request r = req(AAPL, "", "1 D", "1 hour", "TRADES", true);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r.end_date_time = bad[i];
        gen_rejected(&r, 10314,
                     "End Date/Time: The date, time, or time-zone entered is invalid. The correct "
                     "format is yyyymmdd hh:mm:ss xx/xxxx where yyyymmdd and xx/xxxx are "
                     "optional. E.g.: 20031126 15:59:00 US/Eastern");
    }
}

static void hist_accepts_end_time_forms(void **state)
{
    static const char *const good[] = { "20240523 16:00:00", "20240523 16:00:00 US/Eastern",
                                        "20240523 15:00:00 US/Central", "20240523-20:00:00",
                                        "20240523 21:00:00 Europe/London" };
    struct mgw_hist_request r = req(AAPL, "", "1 D", "1 hour", "TRADES", true);
    struct mgw_hist h;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        r.end_date_time = good[i];
        gen_ok(&r, &h);
        assert_string_equal(h.end, "20240523 16:00:00 US/Eastern");
        mgw_hist_free(&h);
    }
    r.end_date_time = "11:00:00"; /* time only: today in the contract's zone */
    r.now_s = NOW;
    gen_ok(&r, &h);
    assert_string_equal(h.end, "20240524 11:00:00 US/Eastern");
    mgw_hist_free(&h);
}

static void hist_rejects_what_to_show_format_date_and_contract(void **state)
{
    struct mgw_hist_request r = req(AAPL, "", "1 D", "1 hour", "TRADE", true);

    (void)state;
    gen_rejected(&r, 321,
                 "Error validating request.-'bK' : cause - What to show value of TRADE rejected.");
    r.what_to_show = "TRADES";
    r.format_date = 0;
    gen_rejected(&r, 321,
                 "Error validating request.-'bK' : cause - Date formatting selection of 0 "
                 "rejected.");
    r.format_date = 1;
    r.what_to_show = "ADJUSTED_LAST";
    r.end_date_time = "20240523 16:00:00";
    gen_rejected(&r, 321,
                 "Error validating request.-'bK' : cause - End date not supported with adjusted "
                 "last");
    r.contract = NULL;
    gen_rejected(&r, 200, "No security definition has been found for the request");
}

static void hist_rejects_trades_for_forex(void **state)
{
    struct mgw_hist_request r = req(EURUSD, "", "1 D", "1 hour", "TRADES", false);

    (void)state;
    gen_rejected(&r, 162,
                 "Historical Market Data Service error message:No historical market data for "
                 "EUR/CASH@IDEALPRO Last 0");
}

/* ---------------------------------------------------------------------------------------------
 * headTimestamp and quotes
 */
static void head_timestamp_formats(void **state)
{
    const struct mgw_fixture_contract *c = mgw_fixtures_find(fx, AAPL);
    char out[32];

    (void)state;
    assert_int_equal(mgw_head_timestamp(c, 1, out, sizeof out), 0);
    assert_string_equal(out, "19801212-14:30:00");
    assert_int_equal(mgw_head_timestamp(c, 2, out, sizeof out), 0);
    assert_string_equal(out, "345479400");
    assert_int_equal(mgw_head_timestamp(c, 3, out, sizeof out), -1);
    assert_int_equal(mgw_head_timestamp(c, 1, out, 8), -1);
}

static void quote_invariants_hold_all_week(void **state)
{
    static const int64_t ids[] = { AAPL, ES, EURUSD };
    struct mgw_quote q, again;
    int64_t t;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const struct mgw_fixture_contract *c = mgw_fixtures_find(fx, ids[i]);

        for (t = 1716422400; t < 1716422400 + 8 * 86400; t += 1013) {
            mgw_quote_at(c, 42, t, &q);
            assert_true(q.bid > 0.0 && q.bid < q.ask);
            assert_true(q.bid <= q.last && q.last <= q.ask);
            assert_true(q.low <= q.open && q.low <= q.last && q.low > 0.0);
            assert_true(q.high >= q.open && q.high >= q.last);
            assert_true(q.close > 0.0);
            assert_true(is_multiple(q.bid, c->d.min_tick) && is_multiple(q.ask, c->d.min_tick));
            assert_true(is_decimal_text(q.bid_size) && is_decimal_text(q.ask_size));
            assert_true(is_decimal_text(q.last_size) && is_decimal_text(q.volume));
            assert_true(q.last_time_s <= t);
            mgw_quote_at(c, 42, t, &again);
            assert_memory_equal(&q, &again, sizeof q);
        }
    }
}

static void quote_when_closed_is_the_last_quote_before_the_close(void **state)
{
    const struct mgw_fixture_contract *c = mgw_fixtures_find(fx, AAPL);
    struct mgw_quote sat, sun, other_seed;

    (void)state;
    mgw_quote_at(c, 42, 1716652800, &sat);        /* Saturday noon */
    mgw_quote_at(c, 42, 1716652800 + 3600, &sun); /* an hour later, still closed */
    assert_memory_equal(&sat, &sun, sizeof sat);
    assert_true(sat.last_time_s <= 1716595200 && sat.last_time_s > 1716595200 - 5); /* 20:00 */
    mgw_quote_at(c, 43, 1716652800, &other_seed);
    assert_true(other_seed.bid != sat.bid || other_seed.open != sat.open);
}

static void hist_free_null_and_zeroed_are_noops(void **state)
{
    struct mgw_hist h;

    (void)state;
    memset(&h, 0, sizeof h);
    mgw_hist_free(NULL);
    mgw_hist_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tz_us_eastern_offsets_around_2024_transitions),
        cmocka_unit_test(tz_central_and_pre_2007_us_rules),
        cmocka_unit_test(tz_europe_london_and_utc),
        cmocka_unit_test(tz_local_to_utc_gap_and_repeated_hour),
        cmocka_unit_test(tz_civil_dates_and_hours_templates),
        cmocka_unit_test(hist_same_request_twice_is_identical),
        cmocka_unit_test(hist_different_seed_gives_different_prices),
        cmocka_unit_test(hist_overlapping_windows_agree_on_shared_bars),
        cmocka_unit_test(hist_one_day_hourly_rth_stock_has_7_bars),
        cmocka_unit_test(hist_one_day_hourly_all_hours_stock_has_16_bars),
        cmocka_unit_test(hist_30_seconds_of_5_second_bars_is_6),
        cmocka_unit_test(hist_weekends_are_skipped),
        cmocka_unit_test(hist_days_duration_on_sunday_returns_friday),
        cmocka_unit_test(hist_weekend_only_window_is_no_data),
        cmocka_unit_test(hist_future_overnight_session_starts_sunday_evening),
        cmocka_unit_test(hist_watchdog_probe_has_bars_at_any_time_of_week),
        cmocka_unit_test(hist_dst_summer_and_winter_first_bar_epochs),
        cmocka_unit_test(hist_dst_transition_weeks),
        cmocka_unit_test(hist_format_date_1_and_2),
        cmocka_unit_test(hist_weekly_and_monthly_bars),
        cmocka_unit_test(hist_bar_invariants_hold_for_every_type),
        cmocka_unit_test(hist_bid_below_ask_and_volatility_types),
        cmocka_unit_test(hist_future_end_is_clamped_to_now),
        cmocka_unit_test(hist_window_before_head_timestamp_is_no_data),
        cmocka_unit_test(hist_max_bars_caps_and_zero_means_default),
        cmocka_unit_test(hist_rejects_bad_durations),
        cmocka_unit_test(hist_accepts_duration_spellings),
        cmocka_unit_test(hist_rejects_bad_bar_sizes),
        cmocka_unit_test(hist_rejects_bad_end_times),
        cmocka_unit_test(hist_accepts_end_time_forms),
        cmocka_unit_test(hist_rejects_what_to_show_format_date_and_contract),
        cmocka_unit_test(hist_rejects_trades_for_forex),
        cmocka_unit_test(head_timestamp_formats),
        cmocka_unit_test(quote_invariants_hold_all_week),
        cmocka_unit_test(quote_when_closed_is_the_last_quote_before_the_close),
        cmocka_unit_test(hist_free_null_and_zeroed_are_noops),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
