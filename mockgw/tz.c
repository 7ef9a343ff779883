/* Civil time, time-zone rules and trading-hours templates. See tz.h. */
#include "tz.h"

#include <string.h>

enum { RULE_NONE, RULE_US, RULE_EU };

static const struct mgw_tz zones[] = {
    { "US/Eastern", -5 * 3600, RULE_US },
    { "America/New_York", -5 * 3600, RULE_US },
    { "EST5EDT", -5 * 3600, RULE_US },
    { "US/Central", -6 * 3600, RULE_US },
    { "America/Chicago", -6 * 3600, RULE_US },
    { "CST6CDT", -6 * 3600, RULE_US },
    { "US/Mountain", -7 * 3600, RULE_US },
    { "America/Denver", -7 * 3600, RULE_US },
    { "MST7MDT", -7 * 3600, RULE_US },
    { "US/Pacific", -8 * 3600, RULE_US },
    { "America/Los_Angeles", -8 * 3600, RULE_US },
    { "PST8PDT", -8 * 3600, RULE_US },
    { "UTC", 0, RULE_NONE },
    { "GMT", 0, RULE_NONE },
    { "Etc/UTC", 0, RULE_NONE },
    { "Etc/GMT", 0, RULE_NONE },
    { "Europe/London", 0, RULE_EU },
    { "GB", 0, RULE_EU },
    { "Europe/Dublin", 0, RULE_EU },
    { "Europe/Lisbon", 0, RULE_EU },
    { "Europe/Amsterdam", 3600, RULE_EU },
    { "Europe/Berlin", 3600, RULE_EU },
    { "Europe/Brussels", 3600, RULE_EU },
    { "Europe/Madrid", 3600, RULE_EU },
    { "Europe/Paris", 3600, RULE_EU },
    { "Europe/Rome", 3600, RULE_EU },
    { "Europe/Stockholm", 3600, RULE_EU },
    { "Europe/Zurich", 3600, RULE_EU },
    { "MET", 3600, RULE_EU },
    { "CET", 3600, RULE_EU },
    { "Asia/Tokyo", 9 * 3600, RULE_NONE },
    { "Japan", 9 * 3600, RULE_NONE },
    { "Asia/Hong_Kong", 8 * 3600, RULE_NONE },
    { "Hongkong", 8 * 3600, RULE_NONE },
    { "Asia/Singapore", 8 * 3600, RULE_NONE },
};

const struct mgw_tz *mgw__tz_find(const char *name)
{
    size_t i;

    if (name == NULL)
        return NULL;
    for (i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        if (strcmp(zones[i].name, name) == 0)
            return &zones[i];
    }
    return NULL;
}

int64_t mgw__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && (a < 0))
        q--;
    return q;
}

/* The classic era-based conversion: 400-year eras of 146097 days starting on 0000-03-01. */
int64_t mgw__days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = mgw__floor_div(y, 400);
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void mgw__civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = mgw__floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int mgw__days_in_month(int64_t y, int m)
{
    static const int len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    if (m == 2)
        return leap ? 29 : 28;
    return len[m - 1];
}

int mgw__weekday(int64_t days)
{
    int64_t r = (days + 4) % 7; /* 1970-01-01 was a Thursday */

    return (int)(r < 0 ? r + 7 : r);
}

bool mgw__is_trading_day(int64_t day)
{
    int wd = mgw__weekday(day);

    return wd >= 1 && wd <= 5;
}

/* Day number of the n-th (1-based) Sunday of a month, or of the last one with n = 0. */
static int64_t sunday_of(int64_t y, int m, int n)
{
    int64_t first = mgw__days_from_civil(y, m, 1);
    int64_t last = first + mgw__days_in_month(y, m) - 1;

    if (n == 0)
        return last - mgw__weekday(last);
    return first + (7 - mgw__weekday(first)) % 7 + 7 * (n - 1);
}

/* DST interval [start, end) of year y in UTC; false if the zone has none that year. */
static bool dst_span(const struct mgw_tz *tz, int64_t y, int64_t *start, int64_t *end)
{
    int64_t s_day, e_day;

    if (tz->rule == RULE_EU) {
        *start = sunday_of(y, 3, 0) * 86400 + 3600;
        *end = sunday_of(y, 10, 0) * 86400 + 3600;
        return true;
    }
    if (tz->rule != RULE_US || y < 1967)
        return false;
    if (y >= 2007) {
        s_day = sunday_of(y, 3, 2);
        e_day = sunday_of(y, 11, 1);
    } else if (y >= 1987) {
        s_day = sunday_of(y, 4, 1);
        e_day = sunday_of(y, 10, 0);
    } else {
        s_day = sunday_of(y, 4, 0);
        e_day = sunday_of(y, 10, 0);
    }
    /* 02:00 standard time starts DST; 02:00 daylight time (01:00 standard) ends it. */
    *start = s_day * 86400 + 2 * 3600 - tz->std_offset_s;
    *end = e_day * 86400 + 1 * 3600 - tz->std_offset_s;
    return true;
}

int mgw__tz_offset(const struct mgw_tz *tz, int64_t utc_s)
{
    int64_t y, start, end;
    int m, d;

    mgw__civil_from_days(mgw__floor_div(utc_s + tz->std_offset_s, 86400), &y, &m, &d);
    if (dst_span(tz, y, &start, &end) && utc_s >= start && utc_s < end)
        return tz->std_offset_s + 3600;
    return tz->std_offset_s;
}

int64_t mgw__tz_utc(const struct mgw_tz *tz, int64_t local_s)
{
    int64_t as_dst = local_s - (tz->std_offset_s + 3600);
    int64_t as_std = local_s - tz->std_offset_s;

    if (mgw__tz_offset(tz, as_dst) == tz->std_offset_s + 3600)
        return as_dst;
    return as_std;
}

/* Reads "HHMM" at p; 0000..2400. */
static int read_hhmm(const char *p, int *min)
{
    int i, v[4];

    for (i = 0; i < 4; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v[i] = p[i] - '0';
    }
    if (v[0] * 10 + v[1] > 24 || v[2] * 10 + v[3] > 59)
        return -1;
    *min = (v[0] * 10 + v[1]) * 60 + v[2] * 10 + v[3];
    return *min > 1440 ? -1 : 0;
}

int mgw__hours_parse(const char *text, struct mgw_hours *h)
{
    const char *p = text;
    int open, close, prev_close = -1441;

    memset(h, 0, sizeof *h);
    if (text == NULL || *text == '\0')
        return -1;
    for (;;) {
        if (h->n == MGW_HOURS_MAX || read_hhmm(p, &open) < 0 || p[4] != '-' ||
            read_hhmm(p + 5, &close) < 0 || open == 1440)
            return -1;
        if (close <= open) {
            if (h->n != 0) /* only the first session may start the previous day */
                return -1;
            open -= 1440;
        }
        if (open < prev_close)
            return -1;
        h->s[h->n].open_min = open;
        h->s[h->n].close_min = close;
        h->n++;
        prev_close = close;
        p += 9;
        if (*p == '\0') /* the next day's overnight session must open after our last close */
            return (h->s[0].open_min < 0 && close > h->s[0].open_min + 1440) ? -1 : 0;
        if (*p != ',')
            return -1;
        p++;
    }
}
