/* Fixture table: the contracts, accounts and positions mockgw serves (private to libmockgw).
 *
 * A fixtures file is JSON (format in docs/fixtures.md). The built-in table is the file
 * mockgw/fixtures/default.json, compiled into the binary. Loading validates everything up front:
 * unknown keys, wrong types and missing required fields are errors naming the file, the JSON
 * path and the reason. All strings handed out point into the struct mgw_fixtures and live until
 * mgw_fixtures_free().
 */
#ifndef MGW_FIXTURES_H
#define MGW_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibwire.h"
#include "mockgw.h"

struct mgw_fixture_contract {
    struct ibw_contract_details d;      /* everything contractDetails (10) carries */
    const char *description;            /* symbolSamples description (>= 176) */
    const char *head_timestamp;         /* earliest data, "yyyyMMdd-HH:mm:ss" UTC */
    double base_price;                  /* centre of the synthetic prices */
    double daily_volatility;            /* e.g. 0.02 = 2 % per day */
    int64_t avg_volume;                 /* synthetic daily volume */
    const char *const *deriv_sec_types; /* symbolSamples derivativeSecTypes ("OPT", "WAR") */
    unsigned n_deriv_sec_types;
};

struct mgw_fixture_account_value {
    const char *key;
    const char *value;
    const char *currency;
};

struct mgw_fixtures {
    struct mgw_fixture_contract *contracts;
    unsigned n_contracts;
    struct mgw_fixture_account_value *account_values; /* sent to reqAccountUpdates(Multi) */
    unsigned n_account_values;
    struct ibw_position *positions; /* account == NULL means "the first managed account" */
    unsigned n_positions;
    void *owner; /* private: the parsed document that owns every string */
};

/* Loads and validates a fixtures file. NULL on error: err->msg is
 * "<path>: $.contracts[3].symbol: expected a string" or "<path>: <strerror>". */
struct mgw_fixtures *mgw_fixtures_load(const char *path, struct mgw_err *err);

/* Same, from memory; name is used in error messages in place of a path. */
struct mgw_fixtures *mgw_fixtures_parse(const char *json, size_t len, const char *name,
                                        struct mgw_err *err);

/* The built-in table (never fails unless out of memory). */
struct mgw_fixtures *mgw_fixtures_default(struct mgw_err *err);

void mgw_fixtures_free(struct mgw_fixtures *fx);

/* The contract with this conId, or NULL. */
const struct mgw_fixture_contract *mgw_fixtures_find(const struct mgw_fixtures *fx, int64_t con_id);

/* Bytes of buf that mgw_fixture_details_at() needs at most. */
#define MGW_FIXTURE_DETAILS_BUF 4096

/* contractDetails as sent at now_s. In the table, d.trading_hours and d.liquid_hours are
 * templates ("0930-1600", "1700-1600" for a session opening the evening before; docs/
 * fixtures.md); this fills *d with a copy of c->d whose two hours strings are rendered in IB's
 * format ("20240115:0930-20240115:1600;20240116:0930-...;20240120:CLOSED") for the 7 calendar
 * days starting on now_s's date in the contract's time zone. Both strings are written into buf;
 * every other string in *d borrows from c. Returns 0, or -1 if cap is too small. */
int mgw_fixture_details_at(const struct mgw_fixture_contract *c, int64_t now_s,
                           struct ibw_contract_details *d, char *buf, size_t cap);

/* Contracts matching a reqContractDetails query, the way the gateway matches: by conId when it
 * is non-zero, else by symbol (case-insensitive) with secType, currency, exchange
 * (SMART/empty match any), primaryExchange, lastTradeDateOrContractMonth (prefix: "202412"
 * matches "20241220"), localSymbol and tradingClass as filters when given. Writes up to max
 * pointers into out and returns how many matched. */
unsigned mgw_fixtures_match(const struct mgw_fixtures *fx, const struct ibw_contract *q,
                            const struct mgw_fixture_contract **out, unsigned max);

/* reqMatchingSymbols: contracts whose symbol starts with pattern (case-insensitive), then those
 * whose long name contains it; each contract once, in table order within each group. */
unsigned mgw_fixtures_search(const struct mgw_fixtures *fx, const char *pattern,
                             const struct mgw_fixture_contract **out, unsigned max);

#endif /* MGW_FIXTURES_H */
