/* Fixture table: load, validate, match. Format: docs/fixtures.md. */
#include "fixtures.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "input.h"
#include "tz.h"

#define MAX_FILE  (16u << 20) /* a fixtures file larger than this is refused before reading */
#define MAX_ITEMS 100000u     /* per array */

extern const char mgw_fixtures_default_json[];
extern const size_t mgw_fixtures_default_json_len;

/* Owns every string and array the table hands out. */
struct owner {
    cJSON *doc;
    struct ibw_tag_value *tags;
    const char **derivs;
};

/* ---------------------------------------------------------------------------------------------
 * Typed readers. Each takes the JSON path of the value for its error message.
 */
static bool is_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    }
    return true;
}

static int get_str(struct mgw__jin *ld, const cJSON *v, const char *path, bool nonempty,
                   const char **out)
{
    if (mgw__jin_string(ld, v, path, out) < 0)
        return -1;
    if (!is_printable(*out)) {
        mgw__jin_fail(ld, path, "expected printable ASCII text");
        return -1;
    }
    if (nonempty && (*out)[0] == '\0') {
        mgw__jin_fail(ld, path, "must not be empty");
        return -1;
    }
    return 0;
}

/* mgw__jin_int, except that fixtures have always called a number beyond +-2^53 "expected an
 * integer" (scripts say "must be between"). */
static int get_int(struct mgw__jin *ld, const cJSON *v, const char *path, int64_t lo, int64_t hi,
                   int64_t *out)
{
    if (cJSON_IsNumber(v) && fabs(v->valuedouble) > 9007199254740992.0) {
        mgw__jin_fail(ld, path, "expected an integer");
        return -1;
    }
    return mgw__jin_int(ld, v, path, lo, hi, out);
}

static int get_num(struct mgw__jin *ld, const cJSON *v, const char *path, double lo, double hi,
                   double *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        mgw__jin_fail(ld, path, "expected a number");
        return -1;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        mgw__jin_fail(ld, path, "must be between %g and %g", lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* IB's Decimal text: -?digits[.digits] */
static bool is_decimal(const char *s)
{
    const char *p = s;

    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static int get_decimal(struct mgw__jin *ld, const cJSON *v, const char *path, const char **out)
{
    if (get_str(ld, v, path, true, out) < 0)
        return -1;
    if (!is_decimal(*out)) {
        mgw__jin_fail(ld, path,
                      "expected a decimal number as a string, like \"100\" or \"0.0001\"");
        return -1;
    }
    return 0;
}

/* "yyyyMMdd-HH:mm:ss" with every field in range; *utc_s gets the instant. */
static bool parse_utc_stamp(const char *s, int64_t *utc_s)
{
    int v[14], i, y, mo, d, h, mi, sec;
    static const int at[14] = { 0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 15, 16 };

    if (strlen(s) != 17 || s[8] != '-' || s[11] != ':' || s[14] != ':')
        return false;
    for (i = 0; i < 14; i++) {
        if (s[at[i]] < '0' || s[at[i]] > '9')
            return false;
        v[i] = s[at[i]] - '0';
    }
    y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
    mo = v[4] * 10 + v[5];
    d = v[6] * 10 + v[7];
    h = v[8] * 10 + v[9];
    mi = v[10] * 10 + v[11];
    sec = v[12] * 10 + v[13];
    if (y < 1900 || mo < 1 || mo > 12 || d < 1 || d > mgw__days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 59)
        return false;
    *utc_s = mgw__days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return true;
}

static const cJSON *get_array(struct mgw__jin *ld, const cJSON *parent, const char *key,
                              const char *path, bool required, unsigned *n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(parent, key);
    char p[MGW__JIN_PATH_CAP];

    *n = 0;
    mgw__jin_path_key(p, sizeof p, path, key);
    if (a == NULL) {
        if (required)
            mgw__jin_fail(ld, path, "missing required key \"%s\"", key);
        return NULL;
    }
    return mgw__jin_array(ld, a, p, MAX_ITEMS, "entries", n) < 0 ? NULL : a;
}

/* ---------------------------------------------------------------------------------------------
 * Contracts
 */
enum kind {
    K_STR,     /* any printable string */
    K_STR_REQ, /* required, non-empty */
    K_CON_ID,  /* required integer >= 1 */
    K_INT,
    K_I64,
    K_NUM,
    K_DEC,    /* Decimal text */
    K_TZ,     /* a zone tz.c knows */
    K_HOURS,  /* a trading-hours template */
    K_STAMP,  /* "yyyyMMdd-HH:mm:ss" */
    K_SECIDS, /* {"ISIN": "..."} */
    K_DERIVS  /* ["OPT", ...] */
};

struct field {
    const char *key;
    enum kind kind;
    size_t off;
    double lo, hi; /* K_INT, K_I64, K_NUM */
};

#define OFF(m) offsetof(struct mgw_fixture_contract, m)

static const struct field contract_fields[] = {
    { "con_id", K_CON_ID, OFF(d.c.con_id), 1, 9007199254740991.0 },
    { "symbol", K_STR_REQ, OFF(d.c.symbol), 0, 0 },
    { "sec_type", K_STR_REQ, OFF(d.c.sec_type), 0, 0 },
    { "exchange", K_STR_REQ, OFF(d.c.exchange), 0, 0 },
    { "currency", K_STR_REQ, OFF(d.c.currency), 0, 0 },
    { "last_trade_date_or_contract_month", K_STR, OFF(d.c.last_trade_date), 0, 0 },
    { "strike", K_NUM, OFF(d.c.strike), 0, 1e12 },
    { "right", K_STR, OFF(d.c.right), 0, 0 },
    { "multiplier", K_STR, OFF(d.c.multiplier), 0, 0 },
    { "primary_exchange", K_STR, OFF(d.c.primary_exchange), 0, 0 },
    { "local_symbol", K_STR, OFF(d.c.local_symbol), 0, 0 },
    { "trading_class", K_STR, OFF(d.c.trading_class), 0, 0 },
    { "market_name", K_STR, OFF(d.market_name), 0, 0 },
    { "min_tick", K_NUM, OFF(d.min_tick), 1e-10, 1e6 },
    { "order_types", K_STR, OFF(d.order_types), 0, 0 },
    { "valid_exchanges", K_STR, OFF(d.valid_exchanges), 0, 0 },
    { "price_magnifier", K_INT, OFF(d.price_magnifier), 0, 1000000 },
    { "under_con_id", K_I64, OFF(d.under_con_id), 0, 9007199254740991.0 },
    { "long_name", K_STR, OFF(d.long_name), 0, 0 },
    { "contract_month", K_STR, OFF(d.contract_month), 0, 0 },
    { "industry", K_STR, OFF(d.industry), 0, 0 },
    { "category", K_STR, OFF(d.category), 0, 0 },
    { "subcategory", K_STR, OFF(d.subcategory), 0, 0 },
    { "time_zone_id", K_TZ, OFF(d.time_zone_id), 0, 0 },
    { "trading_hours", K_HOURS, OFF(d.trading_hours), 0, 0 },
    { "liquid_hours", K_HOURS, OFF(d.liquid_hours), 0, 0 },
    { "ev_rule", K_STR, OFF(d.ev_rule), 0, 0 },
    { "ev_multiplier", K_NUM, OFF(d.ev_multiplier), 0, 1e12 },
    { "sec_ids", K_SECIDS, 0, 0, 0 },
    { "agg_group", K_INT, OFF(d.agg_group), 0, 2147483647.0 },
    { "under_symbol", K_STR, OFF(d.under_symbol), 0, 0 },
    { "under_sec_type", K_STR, OFF(d.under_sec_type), 0, 0 },
    { "market_rule_ids", K_STR, OFF(d.market_rule_ids), 0, 0 },
    { "real_expiration_date", K_STR, OFF(d.real_expiration_date), 0, 0 },
    { "last_trade_date", K_STR, OFF(d.last_trade_date), 0, 0 },
    { "stock_type", K_STR, OFF(d.stock_type), 0, 0 },
    { "min_size", K_DEC, OFF(d.min_size), 0, 0 },
    { "size_increment", K_DEC, OFF(d.size_increment), 0, 0 },
    { "suggested_size_increment", K_DEC, OFF(d.suggested_size_increment), 0, 0 },
    { "description", K_STR, OFF(description), 0, 0 },
    { "deriv_sec_types", K_DERIVS, 0, 0, 0 },
    { "head_timestamp", K_STAMP, OFF(head_timestamp), 0, 0 },
    { "base_price", K_NUM, OFF(base_price), 1e-10, 1e12 },
    { "daily_volatility", K_NUM, OFF(daily_volatility), 0, 1 },
    { "avg_volume", K_I64, OFF(avg_volume), 0, 1e15 },
};

#define N_CONTRACT_FIELDS (sizeof contract_fields / sizeof contract_fields[0])

static const char *default_hours(const char *sec_type, bool liquid)
{
    if (strcmp(sec_type, "CASH") == 0)
        return "1715-1700";
    if (strcmp(sec_type, "FUT") == 0)
        return liquid ? "0830-1500" : "1700-1600";
    if (strcmp(sec_type, "STK") == 0 && !liquid)
        return "0400-2000";
    return "0930-1600";
}

static void set_defaults(struct mgw_fixture_contract *c)
{
    memset(c, 0, sizeof *c);
    c->d.c.last_trade_date = "";
    c->d.c.right = "";
    c->d.c.multiplier = "";
    c->d.c.primary_exchange = "";
    c->d.c.trading_class = "";
    c->d.min_tick = 0.01;
    c->d.order_types = "";
    c->d.price_magnifier = 1;
    c->d.contract_month = "";
    c->d.industry = "";
    c->d.category = "";
    c->d.subcategory = "";
    c->d.time_zone_id = "US/Eastern";
    c->d.ev_rule = "";
    c->d.agg_group = 1;
    c->d.under_symbol = "";
    c->d.under_sec_type = "";
    c->d.market_rule_ids = "";
    c->d.real_expiration_date = "";
    c->d.last_trade_date = "";
    c->d.stock_type = "";
    c->d.min_size = "1";
    c->d.size_increment = "1";
    c->d.suggested_size_increment = "1";
    c->description = "";
    c->head_timestamp = "20100104-14:30:00";
    c->base_price = 100.0;
    c->daily_volatility = 0.02;
    c->avg_volume = 1000000;
    /* local_symbol, market_name, valid_exchanges, long_name and the hours stay NULL here and
     * default to other fields once those are known (finish_defaults). */
}

static void finish_defaults(struct mgw_fixture_contract *c)
{
    if (c->d.c.local_symbol == NULL)
        c->d.c.local_symbol = c->d.c.symbol;
    if (c->d.market_name == NULL)
        c->d.market_name = c->d.c.trading_class;
    if (c->d.valid_exchanges == NULL)
        c->d.valid_exchanges = c->d.c.exchange;
    if (c->d.long_name == NULL)
        c->d.long_name = c->d.c.symbol;
    if (c->d.trading_hours == NULL)
        c->d.trading_hours = default_hours(c->d.c.sec_type, false);
    if (c->d.liquid_hours == NULL) {
        if (strcmp(c->d.c.sec_type, "CASH") == 0)
            c->d.liquid_hours = c->d.trading_hours;
        else
            c->d.liquid_hours = default_hours(c->d.c.sec_type, true);
    }
}

static int parse_field(struct mgw__jin *ld, const struct field *f, const cJSON *v, const char *path,
                       struct mgw_fixture_contract *c)
{
    char *base = (char *)c;
    const char *s;
    int64_t i;
    double d;
    struct mgw_hours h;

    switch (f->kind) {
    case K_STR:
    case K_STR_REQ:
        if (get_str(ld, v, path, f->kind == K_STR_REQ, &s) < 0)
            return -1;
        memcpy(base + f->off, &s, sizeof s);
        return 0;
    case K_DEC:
        if (get_decimal(ld, v, path, &s) < 0)
            return -1;
        memcpy(base + f->off, &s, sizeof s);
        return 0;
    case K_TZ:
        if (get_str(ld, v, path, true, &s) < 0)
            return -1;
        if (mgw__tz_find(s) == NULL) {
            mgw__jin_fail(ld, path,
                          "unknown time zone \"%s\" (docs/fixtures.md lists the supported ones)",
                          s);
            return -1;
        }
        memcpy(base + f->off, &s, sizeof s);
        return 0;
    case K_HOURS:
        if (get_str(ld, v, path, true, &s) < 0)
            return -1;
        if (mgw__hours_parse(s, &h) < 0) {
            mgw__jin_fail(ld, path, "expected sessions \"HHMM-HHMM[,HHMM-HHMM...]\", got \"%s\"",
                          s);
            return -1;
        }
        memcpy(base + f->off, &s, sizeof s);
        return 0;
    case K_STAMP:
        if (get_str(ld, v, path, true, &s) < 0)
            return -1;
        if (!parse_utc_stamp(s, &i)) {
            mgw__jin_fail(ld, path, "expected \"yyyyMMdd-HH:mm:ss\" (UTC), got \"%s\"", s);
            return -1;
        }
        memcpy(base + f->off, &s, sizeof s);
        return 0;
    case K_INT: {
        int n;

        if (get_int(ld, v, path, (int64_t)f->lo, (int64_t)f->hi, &i) < 0)
            return -1;
        n = (int)i;
        memcpy(base + f->off, &n, sizeof n);
        return 0;
    }
    case K_CON_ID:
    case K_I64:
        if (get_int(ld, v, path, (int64_t)f->lo, (int64_t)f->hi, &i) < 0)
            return -1;
        memcpy(base + f->off, &i, sizeof i);
        return 0;
    case K_NUM:
        if (get_num(ld, v, path, f->lo, f->hi, &d) < 0)
            return -1;
        memcpy(base + f->off, &d, sizeof d);
        return 0;
    case K_SECIDS:
    case K_DERIVS:
        break; /* parse_contract() handles these */
    }
    return -1;
}

/* "sec_ids": {"ISIN": "US0378331005", ...} -> tags[*used..] */
static int parse_sec_ids(struct mgw__jin *ld, const cJSON *v, const char *path,
                         struct mgw_fixture_contract *c, struct ibw_tag_value *tags, unsigned *used)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];
    const char *s;
    const cJSON *prev;

    if (!cJSON_IsObject(v)) {
        mgw__jin_fail(ld, path,
                      "expected an object of id type to id, like {\"ISIN\": \"US0378331005\"}");
        return -1;
    }
    c->d.sec_ids = tags + *used;
    for (it = v->child; it != NULL; it = it->next) {
        mgw__jin_path_key(p, sizeof p, path, it->string);
        for (prev = v->child; prev != it; prev = prev->next) {
            if (strcmp(prev->string, it->string) == 0) {
                mgw__jin_fail(ld, p, "key given twice");
                return -1;
            }
        }
        if (!is_printable(it->string) || it->string[0] == '\0') {
            mgw__jin_fail(ld, p, "expected a printable, non-empty id type");
            return -1;
        }
        if (get_str(ld, it, p, true, &s) < 0)
            return -1;
        tags[*used].tag = it->string;
        tags[*used].value = s;
        (*used)++;
        c->d.n_sec_ids++;
    }
    return 0;
}

static int parse_derivs(struct mgw__jin *ld, const cJSON *v, const char *path,
                        struct mgw_fixture_contract *c, const char **derivs, unsigned *used)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];
    unsigned i = 0;

    if (!cJSON_IsArray(v)) {
        mgw__jin_fail(ld, path, "expected an array of strings");
        return -1;
    }
    c->deriv_sec_types = derivs + *used;
    for (it = v->child; it != NULL; it = it->next, i++) {
        mgw__jin_path_index(p, sizeof p, path, i);
        if (get_str(ld, it, p, true, &derivs[*used]) < 0)
            return -1;
        (*used)++;
        c->n_deriv_sec_types++;
    }
    return 0;
}

static int parse_contract(struct mgw__jin *ld, const cJSON *obj, unsigned idx,
                          struct mgw_fixture_contract *c, struct owner *own, unsigned *tags_used,
                          unsigned *derivs_used)
{
    const char *keys[N_CONTRACT_FIELDS + 1];
    char path[MGW__JIN_PATH_CAP], p[MGW__JIN_PATH_CAP];
    const cJSON *v;
    size_t i;

    for (i = 0; i < N_CONTRACT_FIELDS; i++)
        keys[i] = contract_fields[i].key;
    keys[i] = NULL;
    mgw__jin_path_index(path, sizeof path, "$.contracts", idx);
    if (mgw__jin_object(ld, obj, path) < 0 || mgw__jin_check_keys(ld, obj, path, keys) < 0)
        return -1;
    set_defaults(c);
    for (i = 0; i < N_CONTRACT_FIELDS; i++) {
        const struct field *f = &contract_fields[i];

        v = cJSON_GetObjectItemCaseSensitive(obj, f->key);
        mgw__jin_path_key(p, sizeof p, path, f->key);
        if (v == NULL) {
            if (f->kind == K_STR_REQ || f->kind == K_CON_ID) {
                mgw__jin_fail(ld, path, "missing required key \"%s\"", f->key);
                return -1;
            }
            continue;
        }
        if (f->kind == K_SECIDS) {
            if (parse_sec_ids(ld, v, p, c, own->tags, tags_used) < 0)
                return -1;
        } else if (f->kind == K_DERIVS) {
            if (parse_derivs(ld, v, p, c, own->derivs, derivs_used) < 0)
                return -1;
        } else if (parse_field(ld, f, v, p, c) < 0) {
            return -1;
        }
    }
    finish_defaults(c);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Account values and positions
 */
static int parse_account_value(struct mgw__jin *ld, const cJSON *obj, unsigned idx,
                               struct mgw_fixture_account_value *a)
{
    static const char *const keys[] = { "key", "value", "currency", NULL };
    char path[MGW__JIN_PATH_CAP], p[MGW__JIN_PATH_CAP];
    const cJSON *v;

    mgw__jin_path_index(path, sizeof path, "$.account_values", idx);
    if (mgw__jin_object(ld, obj, path) < 0 || mgw__jin_check_keys(ld, obj, path, keys) < 0)
        return -1;
    a->currency = "USD";
    v = cJSON_GetObjectItemCaseSensitive(obj, "key");
    mgw__jin_path_key(p, sizeof p, path, "key");
    if (v == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"key\"");
        return -1;
    }
    if (get_str(ld, v, p, true, &a->key) < 0)
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(obj, "value");
    mgw__jin_path_key(p, sizeof p, path, "value");
    if (v == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"value\"");
        return -1;
    }
    if (get_str(ld, v, p, false, &a->value) < 0)
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(obj, "currency");
    mgw__jin_path_key(p, sizeof p, path, "currency");
    if (v != NULL && get_str(ld, v, p, false, &a->currency) < 0)
        return -1;
    return 0;
}

static int parse_position(struct mgw__jin *ld, const cJSON *obj, unsigned idx,
                          const struct mgw_fixtures *fx, struct ibw_position *pos)
{
    static const char *const keys[] = { "con_id", "position", "avg_cost", "account", NULL };
    const struct mgw_fixture_contract *c;
    char path[MGW__JIN_PATH_CAP], p[MGW__JIN_PATH_CAP];
    const cJSON *v;
    int64_t con_id;

    mgw__jin_path_index(path, sizeof path, "$.positions", idx);
    if (mgw__jin_object(ld, obj, path) < 0 || mgw__jin_check_keys(ld, obj, path, keys) < 0)
        return -1;
    memset(pos, 0, sizeof *pos);
    v = cJSON_GetObjectItemCaseSensitive(obj, "con_id");
    mgw__jin_path_key(p, sizeof p, path, "con_id");
    if (v == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"con_id\"");
        return -1;
    }
    if (get_int(ld, v, p, 1, 9007199254740991LL, &con_id) < 0)
        return -1;
    c = mgw_fixtures_find(fx, con_id);
    if (c == NULL) {
        mgw__jin_fail(ld, p, "no contract with con_id %lld in $.contracts", (long long)con_id);
        return -1;
    }
    pos->c = c->d.c;
    pos->c.primary_exchange = NULL; /* not on the wire; the exchange shown is the listing one */
    if (c->d.c.primary_exchange[0] != '\0')
        pos->c.exchange = c->d.c.primary_exchange;
    v = cJSON_GetObjectItemCaseSensitive(obj, "position");
    mgw__jin_path_key(p, sizeof p, path, "position");
    if (v == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"position\"");
        return -1;
    }
    if (get_decimal(ld, v, p, &pos->position) < 0)
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(obj, "avg_cost");
    mgw__jin_path_key(p, sizeof p, path, "avg_cost");
    if (v != NULL && get_num(ld, v, p, 0, 1e15, &pos->avg_cost) < 0)
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(obj, "account");
    mgw__jin_path_key(p, sizeof p, path, "account");
    if (v != NULL && get_str(ld, v, p, true, &pos->account) < 0)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The document
 */
struct dup_key {
    int64_t con_id;
    unsigned idx;
};

static int cmp_dup(const void *a, const void *b)
{
    const struct dup_key *x = a, *y = b;

    if (x->con_id != y->con_id)
        return x->con_id < y->con_id ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int check_duplicates(struct mgw__jin *ld, const struct mgw_fixtures *fx)
{
    struct dup_key *k;
    unsigned i, later = 0, first = 0;
    bool found = false;
    char path[MGW__JIN_PATH_CAP], p[MGW__JIN_PATH_CAP];

    if (fx->n_contracts < 2)
        return 0;
    k = malloc(fx->n_contracts * sizeof *k);
    if (k == NULL) {
        mgw__jin_fail(ld, NULL, "out of memory");
        return -1;
    }
    for (i = 0; i < fx->n_contracts; i++) {
        k[i].con_id = fx->contracts[i].d.c.con_id;
        k[i].idx = i;
    }
    qsort(k, fx->n_contracts, sizeof *k, cmp_dup);
    /* Sorted by (conId, index): a run of equal conIds starts with the first occurrence. Report
     * the repeat that comes first in the file. */
    for (i = 1; i < fx->n_contracts; i++) {
        unsigned run = i - 1;

        if (k[i].con_id != k[i - 1].con_id)
            continue;
        while (run > 0 && k[run - 1].con_id == k[i].con_id)
            run--;
        if (!found || k[i].idx < later) {
            found = true;
            later = k[i].idx;
            first = k[run].idx;
        }
    }
    if (found) {
        mgw__jin_path_index(path, sizeof path, "$.contracts", later);
        mgw__jin_path_key(p, sizeof p, path, "con_id");
        mgw__jin_fail(ld, p, "duplicate con_id %lld (first at $.contracts[%u])",
                      (long long)fx->contracts[later].d.c.con_id, first);
    }
    free(k);
    return found ? -1 : 0;
}

/* Counts sec_ids and deriv_sec_types entries so one allocation holds them all. */
static void count_children(const cJSON *contracts, unsigned *n_tags, unsigned *n_derivs)
{
    const cJSON *c, *v;

    *n_tags = *n_derivs = 0;
    cJSON_ArrayForEach(c, contracts)
    {
        v = cJSON_GetObjectItemCaseSensitive(c, "sec_ids");
        if (cJSON_IsObject(v))
            *n_tags += (unsigned)cJSON_GetArraySize(v);
        v = cJSON_GetObjectItemCaseSensitive(c, "deriv_sec_types");
        if (cJSON_IsArray(v))
            *n_derivs += (unsigned)cJSON_GetArraySize(v);
    }
}

/* Takes doc over on success only. */
static struct mgw_fixtures *build(struct mgw__jin *ld, cJSON *doc)
{
    static const char *const top_keys[] = { "contracts", "account_values", "positions", NULL };
    struct mgw_fixtures *fx;
    struct owner *own;
    const cJSON *contracts, *values, *positions, *it;
    unsigned i, n_tags, n_derivs, tags_used = 0, derivs_used = 0;

    if (mgw__jin_object(ld, doc, "$") < 0 || mgw__jin_check_keys(ld, doc, "$", top_keys) < 0)
        return NULL;
    fx = calloc(1, sizeof *fx);
    own = calloc(1, sizeof *own);
    if (fx == NULL || own == NULL) {
        free(fx);
        free(own);
        mgw__jin_fail(ld, NULL, "out of memory");
        return NULL;
    }
    own->doc = doc;
    fx->owner = own;

    contracts = get_array(ld, doc, "contracts", "$", true, &fx->n_contracts);
    if (contracts == NULL)
        goto fail;
    values = get_array(ld, doc, "account_values", "$", false, &fx->n_account_values);
    if (values == NULL && cJSON_GetObjectItemCaseSensitive(doc, "account_values") != NULL)
        goto fail;
    positions = get_array(ld, doc, "positions", "$", false, &fx->n_positions);
    if (positions == NULL && cJSON_GetObjectItemCaseSensitive(doc, "positions") != NULL)
        goto fail;

    count_children(contracts, &n_tags, &n_derivs);
    fx->contracts = calloc(fx->n_contracts + 1, sizeof *fx->contracts);
    fx->account_values = calloc(fx->n_account_values + 1, sizeof *fx->account_values);
    fx->positions = calloc(fx->n_positions + 1, sizeof *fx->positions);
    own->tags = calloc(n_tags + 1, sizeof *own->tags);
    own->derivs = calloc(n_derivs + 1, sizeof *own->derivs);
    if (fx->contracts == NULL || fx->account_values == NULL || fx->positions == NULL ||
        own->tags == NULL || own->derivs == NULL) {
        mgw__jin_fail(ld, NULL, "out of memory");
        goto fail;
    }

    i = 0;
    cJSON_ArrayForEach(it, contracts)
    {
        if (parse_contract(ld, it, i, &fx->contracts[i], own, &tags_used, &derivs_used) < 0)
            goto fail;
        i++;
    }
    if (check_duplicates(ld, fx) < 0)
        goto fail;
    i = 0;
    cJSON_ArrayForEach(it, values)
    {
        if (parse_account_value(ld, it, i, &fx->account_values[i]) < 0)
            goto fail;
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(it, positions)
    {
        if (parse_position(ld, it, i, fx, &fx->positions[i]) < 0)
            goto fail;
        i++;
    }
    return fx;

fail:
    own->doc = NULL; /* on failure the caller still owns doc */
    mgw_fixtures_free(fx);
    return NULL;
}

struct mgw_fixtures *mgw_fixtures_parse(const char *json, size_t len, const char *name,
                                        struct mgw_err *err)
{
    struct mgw__jin ld = { name != NULL ? name : "<fixtures>", err };
    struct mgw_fixtures *fx;
    cJSON *doc;

    err->msg[0] = '\0';
    doc = mgw__jin_parse(&ld, json, len, MGW__JIN_BYTE_OFFSET | MGW__JIN_NUL_ENDS);
    if (doc == NULL)
        return NULL;
    fx = build(&ld, doc);
    if (fx == NULL)
        cJSON_Delete(doc);
    return fx;
}

struct mgw_fixtures *mgw_fixtures_load(const char *path, struct mgw_err *err)
{
    struct mgw__jin ld = { path, err };
    struct mgw_fixtures *fx;
    char *buf;
    size_t n;

    err->msg[0] = '\0';
    if ((buf = mgw__jin_read_file(&ld, path, MAX_FILE, &n)) == NULL)
        return NULL;
    fx = mgw_fixtures_parse(buf, n, path, err);
    free(buf);
    return fx;
}

struct mgw_fixtures *mgw_fixtures_default(struct mgw_err *err)
{
    return mgw_fixtures_parse(mgw_fixtures_default_json, mgw_fixtures_default_json_len,
                              "mockgw/fixtures/default.json (built in)", err);
}

void mgw_fixtures_free(struct mgw_fixtures *fx)
{
    struct owner *own;

    if (fx == NULL)
        return;
    own = fx->owner;
    if (own != NULL) {
        cJSON_Delete(own->doc);
        free(own->tags);
        free(own->derivs);
        free(own);
    }
    free(fx->contracts);
    free(fx->account_values);
    free(fx->positions);
    free(fx);
}

/* ---------------------------------------------------------------------------------------------
 * Queries
 */
const struct mgw_fixture_contract *mgw_fixtures_find(const struct mgw_fixtures *fx, int64_t con_id)
{
    unsigned i;

    for (i = 0; i < fx->n_contracts; i++) {
        if (fx->contracts[i].d.c.con_id == con_id)
            return &fx->contracts[i];
    }
    return NULL;
}

static bool empty(const char *s)
{
    return s == NULL || *s == '\0';
}

/* An empty query field matches anything; otherwise equal ignoring case. */
static bool field_ok(const char *query, const char *value)
{
    return empty(query) || strcasecmp(query, value != NULL ? value : "") == 0;
}

/* Is name one of the comma-separated entries of list? */
static bool in_list(const char *name, const char *list)
{
    size_t n = strlen(name);
    const char *p = list;

    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        if (len == n && strncasecmp(p, name, n) == 0)
            return true;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return false;
}

static bool exchange_ok(const char *q, const struct mgw_fixture_contract *c)
{
    if (empty(q) || strcasecmp(q, "SMART") == 0)
        return true;
    return strcasecmp(q, c->d.c.exchange) == 0 || strcasecmp(q, c->d.c.primary_exchange) == 0 ||
           in_list(q, c->d.valid_exchanges);
}

static bool right_ok(const char *q, const char *r)
{
    if (empty(q) || strcmp(q, "?") == 0)
        return true;
    if (strcasecmp(q, "CALL") == 0)
        q = "C";
    else if (strcasecmp(q, "PUT") == 0)
        q = "P";
    return strcasecmp(q, r) == 0;
}

static bool multiplier_ok(const char *q, const char *m)
{
    char *end;
    double a, b;

    if (empty(q))
        return true;
    a = strtod(q, &end);
    if (*end != '\0')
        return strcasecmp(q, m) == 0;
    b = strtod(m, &end);
    return *end == '\0' && !empty(m) && a == b;
}

static bool contract_matches(const struct ibw_contract *q, const struct mgw_fixture_contract *c)
{
    const struct ibw_contract *k = &c->d.c;

    if (!empty(q->symbol) && strcasecmp(q->symbol, k->symbol) != 0)
        return false;
    if (!empty(q->last_trade_date) &&
        strncmp(q->last_trade_date, k->last_trade_date, strlen(q->last_trade_date)) != 0)
        return false;
    if (q->strike != 0.0 && q->strike != IBW_UNSET_DOUBLE && q->strike != k->strike)
        return false;
    return field_ok(q->sec_type, k->sec_type) && field_ok(q->currency, k->currency) &&
           exchange_ok(q->exchange, c) && field_ok(q->primary_exchange, k->primary_exchange) &&
           field_ok(q->local_symbol, k->local_symbol) &&
           field_ok(q->trading_class, k->trading_class) && right_ok(q->right, k->right) &&
           multiplier_ok(q->multiplier, k->multiplier);
}

unsigned mgw_fixtures_match(const struct mgw_fixtures *fx, const struct ibw_contract *q,
                            const struct mgw_fixture_contract **out, unsigned max)
{
    unsigned i, n = 0;

    if (q->con_id != 0 && q->con_id != IBW_UNSET_INT && q->con_id != IBW_UNSET_LONG) {
        const struct mgw_fixture_contract *c = mgw_fixtures_find(fx, q->con_id);

        if (c == NULL || max == 0)
            return 0;
        out[0] = c;
        return 1;
    }
    /* Without a conId the gateway needs a symbol or a local symbol to go on. */
    if (empty(q->symbol) && empty(q->local_symbol))
        return 0;
    for (i = 0; i < fx->n_contracts && n < max; i++) {
        if (contract_matches(q, &fx->contracts[i]))
            out[n++] = &fx->contracts[i];
    }
    return n;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay != '\0'; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    }
    return false;
}

unsigned mgw_fixtures_search(const struct mgw_fixtures *fx, const char *pattern,
                             const struct mgw_fixture_contract **out, unsigned max)
{
    unsigned i, n = 0;
    size_t plen;

    if (empty(pattern))
        return 0;
    plen = strlen(pattern);
    for (i = 0; i < fx->n_contracts && n < max; i++) {
        if (strncasecmp(fx->contracts[i].d.c.symbol, pattern, plen) == 0)
            out[n++] = &fx->contracts[i];
    }
    for (i = 0; i < fx->n_contracts && n < max; i++) {
        const struct mgw_fixture_contract *c = &fx->contracts[i];

        if (strncasecmp(c->d.c.symbol, pattern, plen) != 0 &&
            contains_nocase(c->d.long_name, pattern))
            out[n++] = c;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Trading hours in IB's format
 */
static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= cap)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len)
        return -1;
    *len += (size_t)n;
    return 0;
}

/* "20240115:0930" for minute min of local day day (min may be < 0 or 1440). */
static int put_stamp(char *buf, size_t cap, size_t *len, int64_t day, int min)
{
    int64_t y, d_abs = day + mgw__floor_div(min, 1440);
    int m, d, mod = (int)(min - mgw__floor_div(min, 1440) * 1440);

    mgw__civil_from_days(d_abs, &y, &m, &d);
    return put(buf, cap, len, "%04lld%02d%02d:%02d%02d", (long long)y, m, d, mod / 60, mod % 60);
}

static int put_closed(char *buf, size_t cap, size_t *len, int64_t day)
{
    int64_t y;
    int m, d;

    mgw__civil_from_days(day, &y, &m, &d);
    return put(buf, cap, len, "%s%04lld%02d%02d:CLOSED", *len > 0 ? ";" : "", (long long)y, m, d);
}

/* The sessions that touch the 7 days from today (one that opened yesterday evening included),
 * each as "open-close", in time order; a day on which no session opens or closes is CLOSED. */
static int render_hours(const char *tmpl, int64_t today, char *buf, size_t cap, size_t *len)
{
    int64_t day, first_day, last_day, cursor = today, d;
    struct mgw_hours h;
    unsigned i;

    if (mgw__hours_parse(tmpl, &h) < 0)
        return -1;
    *len = 0;
    for (day = today; day <= today + 7; day++) {
        if (!mgw__is_trading_day(day))
            continue;
        for (i = 0; i < h.n; i++) {
            first_day = day + mgw__floor_div(h.s[i].open_min, 1440);
            last_day = day + mgw__floor_div(h.s[i].close_min - 1, 1440);
            if (last_day < today || first_day > today + 6)
                continue;
            for (d = cursor; d < first_day; d++) {
                if (put_closed(buf, cap, len, d) < 0)
                    return -1;
            }
            if ((*len > 0 && put(buf, cap, len, ";") < 0) ||
                put_stamp(buf, cap, len, day, h.s[i].open_min) < 0 || put(buf, cap, len, "-") < 0 ||
                put_stamp(buf, cap, len, day, h.s[i].close_min) < 0)
                return -1;
            if (last_day + 1 > cursor)
                cursor = last_day + 1;
        }
    }
    for (d = cursor; d <= today + 6; d++) {
        if (put_closed(buf, cap, len, d) < 0)
            return -1;
    }
    return 0;
}

int mgw_fixture_details_at(const struct mgw_fixture_contract *c, int64_t now_s,
                           struct ibw_contract_details *d, char *buf, size_t cap)
{
    const struct mgw_tz *tz = mgw__tz_find(c->d.time_zone_id);
    int64_t today;
    size_t len, liquid;

    if (tz == NULL)
        tz = mgw__tz_find("UTC");
    today = mgw__floor_div(mgw__tz_local(tz, now_s), 86400);
    *d = c->d;
    if (cap < 2 || render_hours(c->d.trading_hours, today, buf, cap / 2, &len) < 0)
        return -1;
    liquid = cap / 2;
    if (render_hours(c->d.liquid_hours, today, buf + liquid, cap - liquid, &len) < 0)
        return -1;
    d->trading_hours = buf;
    d->liquid_hours = buf + liquid;
    return 0;
}
