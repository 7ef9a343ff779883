/* Civil time, time zones and trading-hours templates (private to libmockgw).
 *
 * Our own rules, not TZ/localtime(): libmockgw is a library and must not touch the process
 * environment. Supported zones (case-sensitive IANA names):
 *   US rules (DST 1967-1986 last Sun Apr..last Sun Oct, 1987-2006 first Sun Apr..last Sun Oct,
 *   2007+ second Sun Mar 02:00..first Sun Nov 02:00 local): US/Eastern America/New_York EST5EDT,
 *   US/Central America/Chicago CST6CDT, US/Mountain America/Denver MST7MDT, US/Pacific
 *   America/Los_Angeles PST8PDT;
 *   EU rules (last Sun Mar 01:00 UTC..last Sun Oct 01:00 UTC, applied to every year):
 *   Europe/London GB, Europe/Dublin, Europe/Lisbon (UTC+0), Europe/Amsterdam Europe/Berlin
 *   Europe/Brussels Europe/Madrid Europe/Paris Europe/Rome Europe/Stockholm Europe/Zurich MET CET
 *   (UTC+1);
 *   no DST: UTC GMT Etc/UTC Etc/GMT Asia/Tokyo Japan Asia/Hong_Kong Hongkong Asia/Singapore.
 *
 * All times are int64_t seconds. "utc_s" is Unix time; "local_s" is the wall clock of a zone
 * counted as if it were UTC (so local_s / 86400 is the local day number).
 */
#ifndef MGW_TZ_H
#define MGW_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mgw_tz {
    const char *name;
    int std_offset_s; /* seconds east of UTC outside DST */
    int rule;         /* private: which DST rule applies */
};

/* The zone called name, or NULL if we have no rules for it. */
const struct mgw_tz *mgw__tz_find(const char *name);

/* Seconds east of UTC in effect at utc_s. */
int mgw__tz_offset(const struct mgw_tz *tz, int64_t utc_s);

static inline int64_t mgw__tz_local(const struct mgw_tz *tz, int64_t utc_s)
{
    return utc_s + mgw__tz_offset(tz, utc_s);
}

/* The instant a wall clock reading local_s denotes. A reading that occurs twice (the hour
 * repeated when DST ends) is the first one (DST); a reading that never occurs (the hour skipped
 * when DST starts) is read with the standard offset, so 02:30 becomes 03:30 DST. */
int64_t mgw__tz_utc(const struct mgw_tz *tz, int64_t local_s);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t mgw__days_from_civil(int64_t y, int m, int d);
void mgw__civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int mgw__days_in_month(int64_t y, int m);
/* 0 = Sunday .. 6 = Saturday. */
int mgw__weekday(int64_t days);
/* floor(a / b) for b > 0. */
int64_t mgw__floor_div(int64_t a, int64_t b);

/* A trading-hours template: the sessions of one trading day (Monday to Friday), in minutes
 * from that day's local midnight. An open below zero starts on the previous calendar day (an
 * overnight session, "1700-1600"). Sessions are sorted and do not overlap. */
#define MGW_HOURS_MAX 4
struct mgw_hours {
    unsigned n;
    struct {
        int open_min;  /* -1440 .. 1439 */
        int close_min; /* open_min + 1 .. 1440 */
    } s[MGW_HOURS_MAX];
};

/* Parses "HHMM-HHMM[,HHMM-HHMM...]" (at most MGW_HOURS_MAX sessions; "2400" may close a
 * session). A close at or before its open makes that session start the previous day; only the
 * first session may do so. Returns 0, or -1 for anything else. */
int mgw__hours_parse(const char *text, struct mgw_hours *h);

/* True for Monday..Friday: the days that have sessions. */
bool mgw__is_trading_day(int64_t day);

#endif /* MGW_TZ_H */
