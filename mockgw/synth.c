/* Deterministic synthetic market data. Rules and texts: docs/fixtures.md, "Synthetic data". */
#include "synth.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tz.h"

#define DEFAULT_MAX_BARS 100000u
#define HARD_MAX_BARS    1000000u /* whatever the caller asks, never allocate more bars */
#define BAR_STR_CAP      96u      /* date + volume + wap text of one bar */
#define VALIDATE         "Error validating request.-'bK' : cause - "
#define HMDS             "Historical Market Data Service error message:"
#define PI               3.14159265358979323846

/* ---------------------------------------------------------------------------------------------
 * Request vocabulary
 */
enum bar_kind { BK_INTRADAY, BK_DAY, BK_WEEK, BK_MONTH };

struct bar_size {
    const char *text;
    int secs; /* length of an intraday bar; 0 for day and longer */
    enum bar_kind kind;
};

static const struct bar_size bar_sizes[] = {
    { "1 secs", 1, BK_INTRADAY },
    { "5 secs", 5, BK_INTRADAY },
    { "10 secs", 10, BK_INTRADAY },
    { "15 secs", 15, BK_INTRADAY },
    { "30 secs", 30, BK_INTRADAY },
    { "1 min", 60, BK_INTRADAY },
    { "2 mins", 120, BK_INTRADAY },
    { "3 mins", 180, BK_INTRADAY },
    { "5 mins", 300, BK_INTRADAY },
    { "10 mins", 600, BK_INTRADAY },
    { "15 mins", 900, BK_INTRADAY },
    { "20 mins", 1200, BK_INTRADAY },
    { "30 mins", 1800, BK_INTRADAY },
    { "1 hour", 3600, BK_INTRADAY },
    { "2 hours", 7200, BK_INTRADAY },
    { "3 hours", 10800, BK_INTRADAY },
    { "4 hours", 14400, BK_INTRADAY },
    { "8 hours", 28800, BK_INTRADAY },
    { "1 day", 0, BK_DAY },
    { "1W", 0, BK_WEEK },
    { "1 week", 0, BK_WEEK },
    { "1M", 0, BK_MONTH },
    { "1 month", 0, BK_MONTH },
};

enum what { W_TRADES, W_MIDPOINT, W_BID, W_ASK, W_BID_ASK, W_ADJUSTED_LAST, W_HV, W_IV };

static const struct {
    const char *name;
    enum what what;
    const char *label; /* as HMDS names it in "returned no data" */
} whats[] = {
    { "TRADES", W_TRADES, "Trades" },
    { "MIDPOINT", W_MIDPOINT, "Midpoint" },
    { "BID", W_BID, "Bid" },
    { "ASK", W_ASK, "Ask" },
    { "BID_ASK", W_BID_ASK, "Bid_Ask" },
    { "ADJUSTED_LAST", W_ADJUSTED_LAST, "Adjusted_Last" },
    { "HISTORICAL_VOLATILITY", W_HV, "Historical_Volatility" },
    { "OPTION_IMPLIED_VOLATILITY", W_IV, "Option_Implied_Volatility" },
};

/* ---------------------------------------------------------------------------------------------
 * Hashing and the price path
 */
static uint64_t mix(uint64_t z) /* splitmix64's finaliser */
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
    return mix(mix(mix(a) ^ b) ^ c);
}

static double unit(uint64_t h) /* [0, 1) */
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* Smoothly interpolated hash values at integer knots: a continuous function in [-1, 1]. */
static double value_noise(uint64_t key, uint64_t octave, double x)
{
    double i = floor(x), f = x - i, a, b;
    uint64_t k = (uint64_t)(int64_t)i;

    a = unit(hash3(key, octave, k)) * 2.0 - 1.0;
    b = unit(hash3(key, octave, k + 1)) * 2.0 - 1.0;
    f = f * f * (3.0 - 2.0 * f);
    return a + (b - a) * f;
}

/* Octave lengths in seconds (30 days down to 5 s), weighted like a random walk: sqrt(len). */
static const double octaves[] = { 2592000, 604800, 86400, 14400, 3600, 900, 300, 60, 15, 5 };

struct path {
    uint64_t key; /* seed and conId */
    double base, vol;
};

/* log(price / base) at t: a few slow sinusoids plus multi-scale value noise. */
static double log_dev(const struct path *p, double t)
{
    double sum = 0.0, phase = unit(mix(p->key ^ 0x5151)) * 2.0 * PI;
    size_t k;

    for (k = 0; k < sizeof octaves / sizeof octaves[0]; k++)
        sum += sqrt(octaves[k] / 86400.0) * value_noise(p->key, k + 1, t / octaves[k]);
    sum += 3.0 * sin(2.0 * PI * t / (365.25 * 86400.0) + phase);
    sum += 1.5 * sin(2.0 * PI * t / (91.0 * 86400.0) + 2.0 * phase);
    return 0.6 * p->vol * sum;
}

static double price_at(const struct path *p, int64_t t)
{
    return p->base * exp(log_dev(p, (double)t));
}

/* Prices are whole ticks: value = n * units / scale with integers, so the double is the one
 * closest to the decimal (185.25, not 185.25000000000003). */
struct tick {
    double scale; /* 10^decimals */
    double units; /* tick * scale, an integer */
    int decimals;
};

static void tick_init(struct tick *tk, double tick)
{
    double scale = 1.0, x;
    int d;

    if (!(tick > 0.0) || !isfinite(tick))
        tick = 0.01;
    for (d = 0; d < 10; d++, scale *= 10.0) {
        x = tick * scale;
        if (fabs(x - floor(x + 0.5)) < 1e-6 * (x > 1.0 ? x : 1.0))
            break;
    }
    tk->scale = scale;
    tk->units = floor(tick * scale + 0.5);
    if (tk->units < 1.0)
        tk->units = 1.0;
    tk->decimals = d;
}

/* mode 0: nearest, > 0: up, < 0: down. Never below one tick. */
static double round_tick(const struct tick *tk, double p, int mode)
{
    double q = p * tk->scale / tk->units, n;

    if (mode > 0)
        n = ceil(q - 1e-9);
    else if (mode < 0)
        n = floor(q + 1e-9);
    else
        n = floor(q + 0.5);
    if (n < 1.0)
        n = 1.0;
    return n * tk->units / tk->scale;
}

static double tick_size(const struct tick *tk)
{
    return tk->units / tk->scale;
}

/* ---------------------------------------------------------------------------------------------
 * Sessions
 */
struct ctx {
    const struct mgw_fixture_contract *c;
    const struct mgw_tz *tz;
    struct mgw_hours hours; /* trading or liquid hours, per useRTH */
    struct path path;
    struct tick tick;
    uint64_t key;
};

static int64_t local_day(const struct ctx *x, int64_t utc_s)
{
    return mgw__floor_div(mgw__tz_local(x->tz, utc_s), 86400);
}

static int64_t sess_open(const struct ctx *x, int64_t day, unsigned i)
{
    return mgw__tz_utc(x->tz, day * 86400 + (int64_t)x->hours.s[i].open_min * 60);
}

static int64_t sess_close(const struct ctx *x, int64_t day, unsigned i)
{
    return mgw__tz_utc(x->tz, day * 86400 + (int64_t)x->hours.s[i].close_min * 60);
}

static int64_t day_open(const struct ctx *x, int64_t day)
{
    return sess_open(x, day, 0);
}

static int64_t day_close(const struct ctx *x, int64_t day)
{
    return sess_close(x, day, x->hours.n - 1);
}

/* "Now" outside every session means the close of the last session before it: the latest data
 * there is. A time inside a session (after its opening second) is kept. *day gets the trading
 * day of that session. */
static int64_t snap_back(const struct ctx *x, int64_t t, int64_t *day)
{
    int64_t d = local_day(x, t) + 1, o, cl;
    unsigned i;
    int k;

    for (k = 0; k < 14; k++, d--) {
        if (!mgw__is_trading_day(d))
            continue;
        for (i = x->hours.n; i-- > 0;) {
            o = sess_open(x, d, i);
            if (o >= t)
                continue;
            cl = sess_close(x, d, i);
            *day = d;
            return t < cl ? t : cl;
        }
    }
    *day = local_day(x, t);
    return t;
}

static int ctx_init(struct ctx *x, const struct mgw_fixture_contract *c, uint64_t seed, bool liquid)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    x->tz = mgw__tz_find(c->d.time_zone_id);
    if (x->tz == NULL)
        x->tz = mgw__tz_find("UTC");
    if (mgw__hours_parse(liquid ? c->d.liquid_hours : c->d.trading_hours, &x->hours) < 0)
        return -1; /* only a contract that did not come from a fixtures file */
    x->key = hash3(seed, (uint64_t)c->d.c.con_id, 0x6d6777);
    x->path.key = x->key;
    x->path.base = c->base_price > 0.0 ? c->base_price : 100.0;
    x->path.vol = c->daily_volatility >= 0.0 ? c->daily_volatility : 0.02;
    tick_init(&x->tick, c->d.min_tick);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Rejections
 */
static int reject(struct mgw_synth_reject *rej, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(struct mgw_synth_reject *rej, int code, const char *fmt, ...)
{
    va_list ap;

    rej->code = code;
    va_start(ap, fmt);
    vsnprintf(rej->text, sizeof rej->text, fmt, ap);
    va_end(ap);
    return -1;
}

static int reject_bar_size(struct mgw_synth_reject *rej)
{
    return reject(rej, 321,
                  VALIDATE "Historical data bar size setting is invalid. Legal ones are: 1 secs, "
                           "5 secs, 10 secs, 15 secs, 30 secs, 1 min, 2 mins, 3 mins, 5 mins, "
                           "10 mins, 15 mins, 20 mins, 30 mins, 1 hour, 2 hours, 3 hours, "
                           "4 hours, 8 hours, 1 day, 1W, 1M");
}

static int reject_end(struct mgw_synth_reject *rej)
{
    return reject(rej, 10314,
                  "End Date/Time: The date, time, or time-zone entered is invalid. The correct "
                  "format is yyyymmdd hh:mm:ss xx/xxxx where yyyymmdd and xx/xxxx are optional. "
                  "E.g.: 20031126 15:59:00 US/Eastern");
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 */
enum unit { U_S, U_D, U_W, U_M, U_Y };

static bool all_digits(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
    }
    return true;
}

static int num(const char *p, size_t n)
{
    int v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

/* "<n> <S|D|W|M|Y>" (one space, unit in either case) or a bare "<n>" meaning seconds. */
static int parse_duration(const char *s, enum unit *u, int64_t *n, struct mgw_synth_reject *rej)
{
    static const char units[] = "SDWMY";
    const char *sp, *hit = units;
    size_t len;
    int64_t limit;

    if (s == NULL)
        s = "";
    sp = strchr(s, ' ');
    len = sp != NULL ? (size_t)(sp - s) : strlen(s);
    if (sp != NULL) {
        char unit_char = (char)toupper((unsigned char)sp[1]);

        hit = (unit_char != '\0' && sp[2] == '\0') ? strchr(units, unit_char) : NULL;
    }
    if (len == 0 || len > 9 || !all_digits(s, len) || hit == NULL)
        return reject(rej, 321,
                      VALIDATE "When specifying a unit, historical data request duration format "
                               "is integer{SPACE}unit (S|D|W|M|Y).");
    *n = num(s, len);
    *u = (enum unit)(hit - units);
    if (*n == 0)
        return reject(rej, 321, VALIDATE "Historical data requested duration is invalid.");
    switch (*u) {
    case U_S:
        limit = 365 * 86400;
        break;
    case U_D:
        limit = 365;
        break;
    case U_W:
        limit = 52;
        break;
    case U_M:
        limit = 12;
        break;
    default:
        limit = 50;
        break;
    }
    if (*n > limit) {
        if (*u == U_Y)
            return reject(rej, 321, VALIDATE "Historical data requested duration is invalid.");
        return reject(rej, 321,
                      VALIDATE "Historical data request for greater than 365 days rejected.");
    }
    return 0;
}

static const struct bar_size *parse_bar_size(const char *s)
{
    size_t i;

    for (i = 0; s != NULL && i < sizeof bar_sizes / sizeof bar_sizes[0]; i++) {
        if (strcasecmp(bar_sizes[i].text, s) == 0)
            return &bar_sizes[i];
    }
    return NULL;
}

static int parse_what(const char *s, enum what *w, const char **label)
{
    size_t i;

    for (i = 0; s != NULL && i < sizeof whats / sizeof whats[0]; i++) {
        if (strcasecmp(whats[i].name, s) == 0) {
            *w = whats[i].what;
            *label = whats[i].label;
            return 0;
        }
    }
    return -1;
}

/* "HH:mm:ss" at p; seconds of the day. */
static int parse_hms(const char *p, int64_t *secs)
{
    int h, m, s;

    if (!all_digits(p, 2) || p[2] != ':' || !all_digits(p + 3, 2) || p[5] != ':' ||
        !all_digits(p + 6, 2))
        return -1;
    h = num(p, 2);
    m = num(p + 3, 2);
    s = num(p + 6, 2);
    if (h > 23 || m > 59 || s > 59)
        return -1;
    *secs = h * 3600 + m * 60 + s;
    return 0;
}

/* "yyyyMMdd" at p; its day number. */
static int parse_ymd(const char *p, int64_t *day)
{
    int y, m, d;

    if (!all_digits(p, 8))
        return -1;
    y = num(p, 4);
    m = num(p + 4, 2);
    d = num(p + 6, 2);
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mgw__days_in_month(y, m))
        return -1;
    *day = mgw__days_from_civil(y, m, d);
    return 0;
}

/* endDateTime forms: "yyyyMMdd-HH:mm:ss" (UTC); "yyyyMMdd HH:mm:ss[ zone]";
 * "HH:mm:ss[ zone]" (today in that zone). No zone = the contract's zone. */
static int parse_end(const struct ctx *x, const char *s, int64_t now_s, int64_t *out)
{
    const struct mgw_tz *tz = x->tz;
    int64_t day, secs;
    const char *rest;
    bool has_date;

    if (strlen(s) >= 17 && s[8] == '-') {
        if (parse_ymd(s, &day) < 0 || parse_hms(s + 9, &secs) < 0 || s[17] != '\0')
            return -1;
        *out = day * 86400 + secs;
        return 0;
    }
    has_date = strlen(s) >= 17 && s[8] == ' ';
    rest = has_date ? s + 9 : s;
    if ((has_date && parse_ymd(s, &day) < 0) || strlen(rest) < 8 || parse_hms(rest, &secs) < 0)
        return -1;
    if (rest[8] == ' ') {
        tz = mgw__tz_find(rest + 9);
        if (tz == NULL)
            return -1;
    } else if (rest[8] != '\0') {
        return -1;
    }
    if (!has_date)
        day = mgw__floor_div(mgw__tz_local(tz, now_s), 86400);
    *out = mgw__tz_utc(tz, day * 86400 + secs);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Which bars: slots with their time span
 */
struct slot {
    int64_t start, end; /* UTC; end is where the bar's data stops */
    int64_t day;        /* local day of the label (daily and longer) */
    int ndays;          /* trading days covered (daily and longer), 0 intraday */
};

struct slots {
    struct slot *v;
    unsigned n, cap, max;
    int err; /* 0, 1 too many, 2 out of memory */
};

static int add_slot(struct slots *s, int64_t start, int64_t end, int64_t day, int ndays)
{
    if (s->n == s->max) {
        s->err = 1;
        return -1;
    }
    if (s->n == s->cap) {
        unsigned cap = s->cap == 0 ? 64 : s->cap * 2;
        struct slot *v;

        if (cap > s->max)
            cap = s->max;
        v = realloc(s->v, (size_t)cap * sizeof *v);
        if (v == NULL) {
            s->err = 2;
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].start = start;
    s->v[s->n].end = end;
    s->v[s->n].day = day;
    s->v[s->n].ndays = ndays;
    s->n++;
    return 0;
}

/* Intraday bars start on multiples of their size counted from local midnight, are clipped to
 * their session, and are taken when ws <= start < we. */
static int walk_intraday(const struct ctx *x, int64_t b, int64_t ws, int64_t we, struct slots *s)
{
    int64_t day, d1 = local_day(x, we) + 1, o, cl, t, te, lt;
    unsigned i;

    for (day = local_day(x, ws); day <= d1; day++) {
        if (!mgw__is_trading_day(day))
            continue;
        for (i = 0; i < x->hours.n; i++) {
            o = sess_open(x, day, i);
            cl = sess_close(x, day, i);
            if (cl <= ws || o >= we)
                continue;
            t = o;
            if (t < ws) { /* skip to the boundary at or before ws */
                lt = mgw__floor_div(mgw__tz_local(x->tz, ws), b) * b;
                te = mgw__tz_utc(x->tz, lt);
                if (te > t && te <= ws)
                    t = te;
            }
            while (t < cl && t < we) {
                lt = (mgw__floor_div(mgw__tz_local(x->tz, t), b) + 1) * b;
                te = mgw__tz_utc(x->tz, lt);
                if (te <= t)
                    te = t + b;
                if (te > cl)
                    te = cl;
                if (t >= ws && add_slot(s, t, te, day, 0) < 0)
                    return -1;
                t = te;
            }
        }
    }
    return 0;
}

static int walk_daily(const struct ctx *x, int64_t ws, int64_t we, struct slots *s)
{
    int64_t day, o, d1 = local_day(x, we) + 1;

    for (day = local_day(x, ws); day <= d1; day++) {
        if (!mgw__is_trading_day(day))
            continue;
        o = day_open(x, day);
        if (o >= ws && o < we && add_slot(s, o, day_close(x, day), day, 1) < 0)
            return -1;
    }
    return 0;
}

/* Weeks (Monday..Friday) and months: every one that overlaps [ws, we). */
static int walk_long(const struct ctx *x, enum bar_kind kind, int64_t ws, int64_t we,
                     struct slots *s)
{
    int64_t d0 = local_day(x, ws) - 1, d1 = local_day(x, we) + 1, first, last, day, y;
    int m, d, n;

    for (day = d0; day <= d1;) {
        if (kind == BK_WEEK) {
            first = day - (mgw__weekday(day) + 6) % 7; /* Monday */
            last = first + 4;
            day = first + 7;
        } else {
            mgw__civil_from_days(day, &y, &m, &d);
            first = mgw__days_from_civil(y, m, 1);
            last = first + mgw__days_in_month(y, m) - 1;
            day = last + 1;
        }
        while (first <= last && !mgw__is_trading_day(first))
            first++;
        while (last >= first && !mgw__is_trading_day(last))
            last--;
        if (first > last || day_open(x, first) >= we || day_close(x, last) <= ws)
            continue;
        for (n = 0, d = 0; first + d <= last; d++)
            n += mgw__is_trading_day(first + d);
        if (add_slot(s, day_open(x, first), day_close(x, last), first, n) < 0)
            return -1;
    }
    return 0;
}

/* Where the duration window starts, for an end of we. */
static int64_t window_start(const struct ctx *x, enum unit u, int64_t n, int64_t we)
{
    int64_t lw = mgw__tz_local(x->tz, we), day, y, k;
    int m, d, dim;

    switch (u) {
    case U_S:
        return we - n;
    case U_D: /* the last n trading days that had opened by we */
        day = mgw__floor_div(lw, 86400) + 1;
        for (k = 0; k < n * 2 + 14; k++, day--) {
            if (mgw__is_trading_day(day) && day_open(x, day) < we && --n == 0)
                return day_open(x, day);
        }
        return we - k * 86400; /* unreachable: every week has trading days */
    case U_W:
        return mgw__tz_utc(x->tz, lw - n * 7 * 86400);
    case U_M:
    case U_Y:
        day = mgw__floor_div(lw, 86400);
        mgw__civil_from_days(day, &y, &m, &d);
        if (u == U_Y) {
            y -= n;
        } else {
            int64_t months = y * 12 + (m - 1) - n;

            y = mgw__floor_div(months, 12);
            m = (int)(months - y * 12) + 1;
        }
        dim = mgw__days_in_month(y, m);
        if (d > dim)
            d = dim;
        return mgw__tz_utc(x->tz, mgw__days_from_civil(y, m, d) * 86400 + (lw - day * 86400));
    }
    return we;
}

/* ---------------------------------------------------------------------------------------------
 * Bar values
 */
static void trim_zeros(char *s)
{
    char *dot = strchr(s, '.'), *e;

    if (dot == NULL)
        return;
    e = s + strlen(s);
    while (e > dot + 1 && e[-1] == '0')
        *--e = '\0';
    if (e == dot + 1)
        *dot = '\0';
}

static void fmt_local(const struct ctx *x, int64_t utc_s, char *out, size_t cap)
{
    int64_t lt = mgw__tz_local(x->tz, utc_s), day = mgw__floor_div(lt, 86400), y;
    int64_t sod = lt - day * 86400;
    int m, d;

    mgw__civil_from_days(day, &y, &m, &d);
    snprintf(out, cap, "%04lld%02d%02d %02d:%02d:%02d %s", (long long)y, m, d, (int)(sod / 3600),
             (int)(sod / 60 % 60), (int)(sod % 60), x->c->d.time_zone_id);
}

static void fmt_day(int64_t day, char *out, size_t cap)
{
    int64_t y;
    int m, d;

    mgw__civil_from_days(day, &y, &m, &d);
    snprintf(out, cap, "%04lld%02d%02d", (long long)y, m, d);
}

static void fmt_stamp(const struct ctx *x, int format_date, int64_t utc_s, char *out, size_t cap)
{
    if (format_date == 2)
        snprintf(out, cap, "%lld", (long long)utc_s);
    else
        fmt_local(x, utc_s, out, cap);
}

/* Half the bid/ask spread of a bar or quote: one or two ticks. */
static double half_spread(const struct ctx *x, uint64_t h)
{
    return tick_size(&x->tick) * (double)(1 + (h & 1));
}

static void bar_values(const struct ctx *x, enum what what, int bar_secs, const struct slot *sl,
                       struct ibw_bar *bar, char *vol_out, char *wap_out)
{
    const struct tick *tk = &x->tick;
    uint64_t h = hash3(x->key, (uint64_t)bar_secs, (uint64_t)sl->start);
    double len = (double)(sl->end - sl->start), ext, mo, mc, o, c, hi, lo, hs;

    mo = price_at(&x->path, sl->start);
    mc = price_at(&x->path, sl->end);
    ext = x->path.base * x->path.vol * sqrt(len / 86400.0) * 0.6;
    hs = half_spread(x, h);
    if (what == W_HV || what == W_IV) {
        double v0 = x->path.vol * sqrt(252.0) + (what == W_IV ? 0.02 : 0.0);
        struct path vp = { x->key ^ 0x7676, 1.0, 0.3 };

        o = floor(v0 * exp(log_dev(&vp, (double)sl->start)) * 1e6 + 0.5) / 1e6;
        c = floor(v0 * exp(log_dev(&vp, (double)sl->end)) * 1e6 + 0.5) / 1e6;
        hi = floor((fmax(o, c) * (1.0 + 0.05 * unit(mix(h ^ 1)))) * 1e6 + 0.5) / 1e6;
        lo = floor((fmin(o, c) * (1.0 - 0.05 * unit(mix(h ^ 2)))) * 1e6 + 0.5) / 1e6;
    } else if (what == W_BID_ASK) {
        /* IB's BID_ASK bar: average bid, highest ask, lowest bid, average ask. */
        double bo = round_tick(tk, mo - hs, -1), bc = round_tick(tk, mc - hs, -1);
        double ao = round_tick(tk, mo + hs, 1), ac = round_tick(tk, mc + hs, 1);

        hi = round_tick(tk, fmax(ao, ac) + ext * unit(mix(h ^ 1)), 1);
        lo = round_tick(tk, fmin(bo, bc) - ext * unit(mix(h ^ 2)), -1);
        o = round_tick(tk, (bo + bc) / 2.0, 0);
        c = round_tick(tk, (ao + ac) / 2.0, 0);
    } else {
        double shift = what == W_BID ? -hs : what == W_ASK ? hs : 0.0;

        o = round_tick(tk, mo + shift, 0);
        c = round_tick(tk, mc + shift, 0);
        hi = round_tick(tk, fmax(o, c) + ext * unit(mix(h ^ 1)), 1);
        lo = round_tick(tk, fmin(o, c) - ext * unit(mix(h ^ 2)), -1);
    }
    if (lo > fmin(o, c)) /* rounding at one tick can lift the floor */
        lo = fmin(o, c);
    if (hi < fmax(o, c))
        hi = fmax(o, c);
    bar->open = o;
    bar->high = hi;
    bar->low = lo;
    bar->close = c;
    if (what == W_TRADES || what == W_ADJUSTED_LAST) {
        double f = 0.5 + unit(mix(h ^ 3)), shares, wap;
        long long count;

        if (sl->ndays > 0) {
            shares = (double)x->c->avg_volume * sl->ndays * f;
        } else {
            int64_t rth = 0;
            unsigned i;

            for (i = 0; i < x->hours.n; i++)
                rth += (int64_t)(x->hours.s[i].close_min - x->hours.s[i].open_min) * 60;
            shares = (double)x->c->avg_volume * len / (double)(rth > 0 ? rth : 86400) * f;
        }
        if (shares < 1.0)
            shares = 1.0;
        shares = floor(shares);
        count = (long long)(shares / (strcmp(x->c->d.c.sec_type, "FUT") == 0 ? 3.0 : 150.0));
        if (count < 1)
            count = 1;
        wap = (o + c + hi + lo) / 4.0 + (unit(mix(h ^ 4)) - 0.5) * (hi - lo) * 0.2;
        wap = fmin(hi, fmax(lo, wap));
        snprintf(vol_out, 24, "%.0f", shares);
        snprintf(wap_out, 32, "%.*f", tk->decimals + 3, wap);
        trim_zeros(wap_out);
        bar->count = count > 2147483647LL ? 2147483647 : (int)count;
    } else {
        snprintf(vol_out, 24, "-1");
        snprintf(wap_out, 32, "-1");
        bar->count = -1;
    }
    bar->volume = vol_out;
    bar->wap = wap_out;
}

/* ---------------------------------------------------------------------------------------------
 * Historical data
 */
int mgw_hist_generate(const struct mgw_hist_request *req, struct mgw_hist *out,
                      struct mgw_synth_reject *rej)
{
    const struct mgw_fixture_contract *c = req->contract;
    const struct bar_size *bs;
    const char *label;
    struct slots slots = { 0 };
    struct ctx x;
    enum what what;
    enum unit u = U_S;
    int64_t n = 0, we, ws, head, day;
    bool is_now = false;
    unsigned i, max = req->max_bars == 0 ? DEFAULT_MAX_BARS : req->max_bars;
    char *block;
    size_t bars_bytes;
    int rc;

    memset(out, 0, sizeof *out);
    memset(rej, 0, sizeof *rej);
    if (c == NULL)
        return reject(rej, 200, "%s", ibw_error_text(200));
    if (max > HARD_MAX_BARS)
        max = HARD_MAX_BARS;
    if ((bs = parse_bar_size(req->bar_size)) == NULL)
        return reject_bar_size(rej);
    if (parse_duration(req->duration, &u, &n, rej) < 0)
        return -1;
    if (parse_what(req->what_to_show, &what, &label) < 0)
        return reject(rej, 321, VALIDATE "What to show value of %s rejected.",
                      req->what_to_show != NULL ? req->what_to_show : "");
    if (req->format_date != 1 && req->format_date != 2)
        return reject(rej, 321, VALIDATE "Date formatting selection of %d rejected.",
                      req->format_date);
    if (ctx_init(&x, c, req->seed, req->use_rth) < 0)
        return reject(rej, 162, HMDS "HMDS query returned no data: %s@%s %s", c->d.c.local_symbol,
                      c->d.c.exchange, label);
    if (req->end_date_time == NULL || req->end_date_time[0] == '\0') {
        we = req->now_s;
        is_now = true;
    } else {
        if (what == W_ADJUSTED_LAST)
            return reject(rej, 321, VALIDATE "End date not supported with adjusted last");
        if (parse_end(&x, req->end_date_time, req->now_s, &we) < 0)
            return reject_end(rej);
        if (we > req->now_s) { /* no data from the future */
            we = req->now_s;
            is_now = true;
        }
    }
    if (what == W_TRADES && strcmp(c->d.c.sec_type, "CASH") == 0)
        return reject(rej, 162, HMDS "No historical market data for %s/%s@%s Last 0", c->d.c.symbol,
                      c->d.c.sec_type, c->d.c.exchange);
    if (is_now)
        we = snap_back(&x, we, &day);
    ws = window_start(&x, u, n, we);
    if (c->head_timestamp != NULL && c->head_timestamp[0] != '\0') {
        int64_t hd;

        if (parse_ymd(c->head_timestamp, &hd) == 0 && c->head_timestamp[8] == '-' &&
            parse_hms(c->head_timestamp + 9, &head) == 0 && hd * 86400 + head > ws)
            ws = hd * 86400 + head;
    }

    slots.max = max;
    if (ws >= we)
        rc = 0;
    else if (bs->kind == BK_INTRADAY)
        rc = walk_intraday(&x, bs->secs, ws, we, &slots);
    else if (bs->kind == BK_DAY)
        rc = walk_daily(&x, ws, we, &slots);
    else
        rc = walk_long(&x, bs->kind, ws, we, &slots);
    if (rc < 0) {
        free(slots.v);
        if (slots.err == 1)
            return reject(rej, 162, HMDS "Time length exceed max.");
        return reject(rej, 162, HMDS "API historical data query cancelled: out of memory");
    }
    if (slots.n == 0) {
        free(slots.v);
        return reject(rej, 162, HMDS "HMDS query returned no data: %s@%s %s", c->d.c.local_symbol,
                      c->d.c.exchange, label);
    }

    bars_bytes = (size_t)slots.n * sizeof(struct ibw_bar);
    block = malloc(bars_bytes + (size_t)slots.n * BAR_STR_CAP);
    if (block == NULL) {
        free(slots.v);
        return reject(rej, 162, HMDS "API historical data query cancelled: out of memory");
    }
    out->bars = (struct ibw_bar *)(void *)block;
    out->storage = block;
    out->n = slots.n;
    for (i = 0; i < slots.n; i++) {
        char *str = block + bars_bytes + (size_t)i * BAR_STR_CAP;
        struct ibw_bar *bar = &out->bars[i];

        memset(bar, 0, sizeof *bar);
        if (bs->kind == BK_INTRADAY)
            fmt_stamp(&x, req->format_date, slots.v[i].start, str, 40);
        else
            fmt_day(slots.v[i].day, str, 40);
        bar->date = str;
        bar_values(&x, what, bs->secs != 0 ? bs->secs : 86400 * (int)bs->kind, &slots.v[i], bar,
                   str + 40, str + 64);
    }
    fmt_stamp(&x, req->format_date, ws, out->start, sizeof out->start);
    fmt_stamp(&x, req->format_date, we, out->end, sizeof out->end);
    free(slots.v);
    return 0;
}

void mgw_hist_free(struct mgw_hist *h)
{
    if (h == NULL)
        return;
    free(h->storage);
    memset(h, 0, sizeof *h);
}

/* ---------------------------------------------------------------------------------------------
 * headTimestamp and quotes
 */
int mgw_head_timestamp(const struct mgw_fixture_contract *c, int format_date, char *out, size_t cap)
{
    const char *ts = c->head_timestamp != NULL ? c->head_timestamp : "";
    int64_t day, secs;
    int n;

    if (parse_ymd(ts, &day) < 0 || ts[8] != '-' || parse_hms(ts + 9, &secs) < 0)
        return -1;
    if (format_date == 2)
        n = snprintf(out, cap, "%lld", (long long)(day * 86400 + secs));
    else if (format_date == 1)
        n = snprintf(out, cap, "%s", ts);
    else
        return -1;
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static void fmt_size(char *out, size_t cap, double v)
{
    snprintf(out, cap, "%.0f", v < 0.0 ? 0.0 : floor(v));
}

void mgw_quote_at(const struct mgw_fixture_contract *c, uint64_t seed, int64_t now_s,
                  struct mgw_quote *q)
{
    const struct tick *tk;
    struct ctx x;
    int64_t t, day, open_t, prev, k;
    uint64_t h;
    double mid, hs, ext, lot, pick, frac, sess;
    bool is_cash, is_fut;

    memset(q, 0, sizeof *q);
    if (ctx_init(&x, c, seed, false) < 0)
        return;
    tk = &x.tick;
    is_cash = strcmp(c->d.c.sec_type, "CASH") == 0;
    is_fut = strcmp(c->d.c.sec_type, "FUT") == 0;
    t = snap_back(&x, now_s, &day); /* market closed: the last quote before the close */
    h = hash3(x.key, 0x71756f7465, (uint64_t)t);
    mid = price_at(&x.path, t);
    hs = half_spread(&x, h);
    q->bid = round_tick(tk, mid - hs, -1);
    q->ask = round_tick(tk, mid + hs, 1);
    if (q->ask <= q->bid)
        q->ask = round_tick(tk, q->bid + tick_size(tk), 0);
    pick = unit(mix(h ^ 1));
    q->last = pick < 0.4 ? q->bid : pick < 0.8 ? q->ask : round_tick(tk, mid, 0);
    if (q->last < q->bid)
        q->last = q->bid;
    if (q->last > q->ask)
        q->last = q->ask;

    open_t = day_open(&x, day);
    prev = day - 1;
    for (k = 0; k < 7 && !mgw__is_trading_day(prev); k++)
        prev--;
    q->open = round_tick(tk, price_at(&x.path, open_t), 0);
    q->close = round_tick(tk, price_at(&x.path, day_close(&x, prev)), 0);
    frac = t > open_t ? (double)(t - open_t) : 0.0;
    ext = x.path.base * x.path.vol * sqrt(frac / 86400.0) * 0.6;
    q->high = round_tick(tk, fmax(fmax(q->open, q->last), q->ask) + ext * unit(mix(h ^ 2)), 1);
    q->low = round_tick(tk, fmin(fmin(q->open, q->last), q->bid) - ext * unit(mix(h ^ 3)), -1);
    if (q->low > fmin(fmin(q->open, q->last), q->bid))
        q->low = fmin(fmin(q->open, q->last), q->bid);

    lot = is_cash ? 500000.0 : is_fut ? 1.0 : 100.0;
    fmt_size(q->bid_size, sizeof q->bid_size, lot * (double)(1 + (mix(h ^ 4) % 20)));
    fmt_size(q->ask_size, sizeof q->ask_size, lot * (double)(1 + (mix(h ^ 5) % 20)));
    fmt_size(q->last_size, sizeof q->last_size, lot * (double)(1 + (mix(h ^ 6) % 5)));
    sess = (double)(day_close(&x, day) - open_t);
    fmt_size(q->volume, sizeof q->volume,
             (double)c->avg_volume * (sess > 0.0 ? frac / sess : 0.0) *
                 (0.8 + 0.4 * unit(mix(h ^ 7))));
    q->last_time_s = t - (int64_t)(mix(h ^ 8) % 3);
    if (q->last_time_s < open_t)
        q->last_time_s = open_t;
}
