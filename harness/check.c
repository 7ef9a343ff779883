/* Reading facts out of JSON the run collected: the gateway's journal and the pool's status. */
#include "internal.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const cJSON *harness__json_get(const cJSON *doc, const char *dotted)
{
    const cJSON *cur = doc;
    const char *s = dotted;
    char seg[128];

    while (cur != NULL && *s != '\0') {
        size_t n = strcspn(s, ".");
        char *end;
        long idx;

        if (n == 0 || n >= sizeof seg)
            return NULL;
        memcpy(seg, s, n);
        seg[n] = '\0';
        s += n + (s[n] == '.');
        if (cJSON_IsArray(cur)) {
            idx = strtol(seg, &end, 10);
            if (*end != '\0' || idx < 0)
                return NULL;
            cur = cJSON_GetArrayItem(cur, (int)idx);
        } else if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, seg);
        } else {
            return NULL;
        }
    }
    return cur;
}

static void describe(const cJSON *v, char *buf, size_t cap)
{
    char *s = v != NULL ? cJSON_PrintUnformatted(v) : NULL;

    snprintf(buf, cap, "%s", s != NULL ? s : "absent");
    if (s != NULL && strlen(s) >= cap && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
    cJSON_free(s);
}

bool harness__field_check(const struct harness_field_expect *f, const cJSON *doc, char *why,
                          size_t cap)
{
    const cJSON *v = harness__json_get(doc, f->path);
    char got[96], want[96];
    bool ok;

    if (f->value == NULL) { /* a range */
        ok = cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
             harness_range_holds(&f->range, (int64_t)floor(v->valuedouble));
        if (!ok) {
            describe(v, got, sizeof got);
            snprintf(why, cap, "is %s, expected %s", got,
                     harness_range_str(&f->range, want, sizeof want));
        }
        return ok;
    }
    ok = v != NULL && cJSON_Compare(v, f->value, true);
    if (!ok) {
        describe(v, got, sizeof got);
        describe(f->value, want, sizeof want);
        snprintf(why, cap, "is %s, expected %s", got, want);
    }
    return ok;
}

static const char *str_of(const cJSON *e, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *e, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);

    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A connection's handshake is in flight from "accept" until it is ready, refused, closed or
 * silenced (a silent gateway never reads again, so it would never see the close either). */
static bool ends_handshake(const cJSON *e, const char *ev)
{
    static const char *const ends[] = { "ready", "half_ready", "client_id_in_use",
                                        "close", "disconnect", "silenced",
                                        NULL };
    const char *action;

    for (unsigned i = 0; ends[i] != NULL; i++)
        if (strcmp(ev, ends[i]) == 0)
            return true;
    return strcmp(ev, "fault") == 0 && (action = str_of(e, "action")) != NULL &&
           strcmp(action, "silent") == 0;
}

/* A ready session the gateway ended: not the client's own close. */
static bool gateway_drop(const cJSON *e)
{
    const char *phase = str_of(e, "phase"), *reason = str_of(e, "reason");

    return phase != NULL && strcmp(phase, "ready") == 0 && reason != NULL &&
           strcmp(reason, "peer closed") != 0 && strcmp(reason, "peer reset") != 0;
}

void harness__journal_facts(const cJSON *entries, struct harness__journal_facts *f)
{
    double open[256], refused_id = -1;
    unsigned n_open = 0;
    uint64_t t, last_accept = 0, drop_at = 0;
    bool refused = false, dropped = false;
    const cJSON *e;

    memset(f, 0, sizeof *f);
    cJSON_ArrayForEach(e, entries)
    {
        const char *ev = str_of(e, "event");
        double conn = num_of(e, "conn", 0);
        bool has_t = harness__iso_ms(str_of(e, "t"), &t);
        unsigned i;

        if (ev == NULL)
            continue;
        if (strcmp(ev, "accept") == 0 && has_t) {
            if (f->accepted > 0 && t >= last_accept &&
                (!f->has_connect_gap || t - last_accept < f->min_connect_gap_ms)) {
                f->has_connect_gap = true;
                f->min_connect_gap_ms = t - last_accept;
                f->gap_at = f->accepted + 1;
            }
            last_accept = t;
        }
        if (strcmp(ev, "client_id_in_use") == 0) {
            refused = true;
            refused_id = num_of(e, "client_id", -1);
        } else if (strcmp(ev, "start_api") == 0 && refused) {
            f->same_id_after_326 += num_of(e, "client_id", -2) == refused_id;
            refused = false;
        } else if (strcmp(ev, "disconnect") == 0 && has_t && gateway_drop(e)) {
            f->drops++;
            if (!dropped)
                drop_at = t;
            dropped = true;
        } else if (strcmp(ev, "ready") == 0 && has_t && dropped) {
            if (t >= drop_at && t - drop_at > f->max_reconnect_ms)
                f->max_reconnect_ms = t - drop_at;
            dropped = false;
        }
        f->never_reconnected = dropped;
        if (strcmp(ev, "accept") == 0) {
            f->accepted++;
            if (n_open < sizeof open / sizeof open[0])
                open[n_open++] = conn;
            if (n_open > f->max_in_flight)
                f->max_in_flight = n_open;
        } else if (strcmp(ev, "start_api") == 0) {
            if (f->n_client_ids < sizeof f->client_ids / sizeof f->client_ids[0])
                f->client_ids[f->n_client_ids++] = (int)num_of(e, "client_id", -1);
            f->n_client_ids_total++;
        } else if (ends_handshake(e, ev)) {
            for (i = 0; i < n_open && open[i] != conn; i++)
                ;
            if (i < n_open)
                open[i] = open[--n_open];
        }
    }
}

unsigned harness__journal_count(const cJSON *entries, const char *name)
{
    const cJSON *e;
    unsigned n = 0;

    cJSON_ArrayForEach(e, entries)
    {
        const char *ev = str_of(e, "event");

        n += ev != NULL && strcmp(ev, name) == 0;
    }
    return n;
}

bool harness__iso_ms(const char *s, uint64_t *ms)
{
    struct tm tm;
    unsigned frac = 0, digits = 0;
    const char *p;
    time_t t;

    memset(&tm, 0, sizeof tm);
    if (s == NULL || (p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
        return false;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (digits++ < 3)
                frac = frac * 10 + (unsigned)(*p - '0');
        while (digits++ < 3)
            frac *= 10;
    }
    if (*p != 'Z' || (t = timegm(&tm)) == (time_t)-1 || t < 0)
        return false;
    *ms = (uint64_t)t * 1000u + frac;
    return true;
}

long harness__rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    int n;

    if (f == NULL)
        return -1;
    n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2 || page <= 0)
        return -1;
    return (long)(resident * (unsigned long)page / 1024u);
}

int harness__fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory stream's own */
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double harness__median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
