/* Deterministic synthetic market data (private to libmockgw).
 *
 * Every value is a pure function of (seed, conId, bar size, timestamp): the same request gives
 * the same bars, and two overlapping requests agree on the bars they share. No I/O, no global
 * state (time zones are converted with our own rules, not TZ/localtime).
 */
#ifndef MGW_SYNTH_H
#define MGW_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fixtures.h"
#include "ibwire.h"

/* A request the gateway rejects, with the error code and text a real gateway sends. */
struct mgw_synth_reject {
    int code;       /* e.g. 162, 321 */
    char text[512]; /* e.g. "Historical Market Data Service error message:..." */
};

struct mgw_hist_request {
    const struct mgw_fixture_contract *contract;
    const char *end_date_time; /* "" = now; "yyyyMMdd HH:mm:ss[ zone]"; "yyyyMMdd-HH:mm:ss" UTC */
    const char *duration;      /* "60 S", "1 D", "2 W", "1 M", "1 Y" */
    const char *bar_size;      /* "1 secs" .. "1 month" (IB's barSizeSetting spellings) */
    const char *what_to_show;  /* TRADES, MIDPOINT, BID, ASK, BID_ASK, ... */
    bool use_rth;
    int format_date; /* 1: "yyyyMMdd HH:mm:ss <zone>" / "yyyyMMdd"; 2: epoch seconds */
    int64_t now_s;   /* wall clock, for end_date_time "" */
    uint64_t seed;
    unsigned max_bars; /* cap; more is rejected like the gateway's "too many bars" */
};

/* The answer: bars plus the start/end strings of historicalData. Owns its storage. */
struct mgw_hist {
    struct ibw_bar *bars;
    unsigned n;
    char start[48];
    char end[48];
    void *storage; /* private */
};

/* 0 and *out filled (free with mgw_hist_free), or -1 with *rej saying what the gateway sends
 * (unparseable duration / bar size / end time, too many bars, ...). ENOMEM also returns -1
 * with a 162-style text. Rules and the exact texts: docs/fixtures.md, "Synthetic data".
 * Codes: 321 bad duration / bar size / whatToShow / formatDate; 10314 bad endDateTime
 * (unknown zone included); 162 no data in the window, too many bars (more than max_bars;
 * 0 means 100000, and never more than 1000000), TRADES for CASH; 200 contract NULL.
 * Bars are those that start in [window start, end): the bar in progress at the end counts. */
int mgw_hist_generate(const struct mgw_hist_request *req, struct mgw_hist *out,
                      struct mgw_synth_reject *rej);
void mgw_hist_free(struct mgw_hist *h);

/* headTimestamp text: format_date 1 -> "yyyyMMdd-HH:mm:ss", 2 -> epoch seconds. Returns 0, or
 * -1 for another format_date, a malformed c->head_timestamp or an out buffer too small. */
int mgw_head_timestamp(const struct mgw_fixture_contract *c, int format_date, char *out,
                       size_t cap);

/* A snapshot quote at now_s. Sizes and volume are Decimal strings. */
struct mgw_quote {
    double bid, ask, last, high, low, close, open;
    char bid_size[24], ask_size[24], last_size[24], volume[32];
    int64_t last_time_s;
};

/* Invariants: 0 < bid < ask, bid <= last <= ask, low <= open, last, bid; high >= open, last,
 * ask; prices are whole ticks. Outside the trading hours the quote is the one at the last
 * session's close. */
void mgw_quote_at(const struct mgw_fixture_contract *c, uint64_t seed, int64_t now_s,
                  struct mgw_quote *q);

#endif /* MGW_SYNTH_H */
