/* The scenario loader: JSON (docs/scenario-format.md) into struct harness_scenario, with the
 * file, the JSON path and the reason on the first error. Unknown keys are errors everywhere. */
#include "harness.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "mockgw.h"

#define MAX_FILE        (4u << 20)
#define MAX_STEPS       1000u
#define MAX_COUNT       10000u
#define MAX_SCENARIO_MS 600000u
#define MAX_IDS_LIST    64u
#define MAX_NAME        64u
#define MAX_TEXT        4096u
#define MAX_STALL_MS    10000u
#define MAX_SCHEDULES   100000u
#define ITEM(o, k)      cJSON_GetObjectItemCaseSensitive((o), (k))

/* ---- names ----------------------------------------------------------------------------------- */

static const char *const level_names[HARNESS_LEVEL_COUNT] = { "basic", "standard", "exhaustive" };

const char *harness_level_name(enum harness_level l)
{
    return (unsigned)l < HARNESS_LEVEL_COUNT ? level_names[l] : "?";
}

int harness_level_parse(const char *s)
{
    for (int i = 0; i < HARNESS_LEVEL_COUNT; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

static const char *const status_names[] = {
#define XX(name, str) str,
    HARNESS_STATUS_MAP(XX)
#undef XX
        NULL
};

const char *harness_status_name(enum harness_status s)
{
    return (unsigned)s < HARNESS_STATUS_COUNT ? status_names[s] : "error";
}

int harness_status_parse(const char *s)
{
    for (int i = 0; i < HARNESS_STATUS_COUNT; i++)
        if (strcmp(s, status_names[i]) == 0)
            return i;
    return -1;
}

enum harness_status harness_status_of(int err)
{
    switch (err) {
    case 0:
        return HARNESS_STATUS_OK;
    case UV_ETIMEDOUT:
        return HARNESS_STATUS_TIMEOUT;
    case IBCORE_EBREAKER:
        return HARNESS_STATUS_BREAKER_OPEN;
    case IBCORE_EIDSEXHAUSTED:
        return HARNESS_STATUS_IDS_EXHAUSTED;
    case UV_ECONNREFUSED:
        return HARNESS_STATUS_REFUSED;
    case UV_ECONNRESET:
    case UV_EPIPE:
        return HARNESS_STATUS_RESET;
    case IBCORE_ECLIENTID:
        return HARNESS_STATUS_CLIENT_ID_REFUSED;
    case IBCORE_ENOTREADY:
        return HARNESS_STATUS_NOT_READY;
    case IBCORE_ESHUTDOWN:
        return HARNESS_STATUS_SHUTDOWN;
    case UV_ECANCELED:
        return HARNESS_STATUS_CANCELED;
    case IBCORE_EPOISONED:
        return HARNESS_STATUS_POISONED;
    case IBCORE_ECLOSED:
    case UV_EOF:
        return HARNESS_STATUS_CLOSED;
    case IBCORE_ELOCK:
        return HARNESS_STATUS_LOCK_TIMEOUT;
    case IBCORE_EPROTO:
        return HARNESS_STATUS_PROTOCOL;
    case IBCORE_EVERSION:
        return HARNESS_STATUS_VERSION;
    default:
        return HARNESS_STATUS_ERROR;
    }
}

static const char *const stat_names[] = {
#define XX(name) #name,
    HARNESS_STATS_MAP(XX)
#undef XX
        NULL
};

const char *harness_stat_name(enum harness_stat s)
{
    return (unsigned)s < HARNESS_STAT_COUNT ? stat_names[s] : "?";
}

uint64_t harness_stat_get(const struct ibcore_pool_stats *st, enum harness_stat s)
{
    switch (s) {
#define XX(name)              \
    case HARNESS_STAT_##name: \
        return st->name;
        HARNESS_STATS_MAP(XX)
#undef XX
    default:
        return 0;
    }
}

const char *const harness__journal_events[] = { "listening",
                                                "accept",
                                                "hello",
                                                "version_below_client_min",
                                                "start_api",
                                                "ready",
                                                "client_id_in_use",
                                                "paced",
                                                "ignored",
                                                "bad_input",
                                                "bad_request",
                                                "output_overflow",
                                                "encode_error",
                                                "fault",
                                                "fault_applied",
                                                "delay",
                                                "half_ready",
                                                "silenced",
                                                "listener",
                                                "restart",
                                                "restarted",
                                                "rules",
                                                "state",
                                                "reset",
                                                "close",
                                                "disconnect",
                                                "stopping",
                                                NULL };

const char *const harness__telemetry_events[] = { "transition", "call_not_permitted",
                                                  "lease_expired", "threshold_exceeded", NULL };

const char *const harness__breaker_states[] = { "closed",      "open",     "half_open",
                                                "forced_open", "disabled", NULL };

static bool in_list(const char *s, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

/* ---- the core's configuration: ONE table per struct ----------------------------------------- *
 * A field of struct ibcore_pool_config (or ibcore_breaker_config) is one line: its name (the key
 * in "core"), its offset, its type (taken from the field itself by _Generic, so a wrong entry
 * does not compile) and its range. */
enum ftype { F_UNSIGNED, F_INT, F_U64, F_BOOL, F_STRING };

struct cfg_field {
    const char *name;
    size_t off;
    enum ftype type;
    int64_t lo, hi;
};

#define FTYPE(expr) \
    _Generic((expr), unsigned: F_UNSIGNED, int: F_INT, uint64_t: F_U64, bool: F_BOOL, \
             const char *: F_STRING)
#define POOL(f, lo, hi)                                                                         \
    {                                                                                           \
#f, offsetof(struct ibcore_pool_config, f), FTYPE(((struct ibcore_pool_config *)0)->f), \
            (lo), (hi)                                                                          \
    }
#define BREAKER(f, lo, hi)                                            \
    {                                                                 \
#f, offsetof(struct ibcore_breaker_config, f),                \
            FTYPE(((struct ibcore_breaker_config *)0)->f), (lo), (hi) \
    }
#define MS       HARNESS__MAX_MS
#define SEED_MAX 9007199254740991LL

static const struct cfg_field pool_fields[] = {
    POOL(max_size, 1, 1024),
    POOL(client_id_first, 0, INT32_MAX - 32),
    POOL(client_id_cap, 1, 32),
    POOL(quarantine_ms, 0, MS),
    POOL(alive_window_ms, 0, MS),
    POOL(probe_timeout_ms, 1, MS),
    POOL(connect_timeout_ms, 1, MS),
    POOL(idle_timeout_ms, 1, MS),
    POOL(health_interval_ms, 1, MS),
    POOL(health_strikes, 1, 1000),
    POOL(use_lock, 0, 1),
    POOL(lock_path, 1, 4096),
    POOL(seed, 0, SEED_MAX),
    POOL(client_id_pause_ms, 0, MS),
    POOL(connect_retries, 0, 1000),
    POOL(backoff_base_ms, 0, MS),
    POOL(backoff_cap_ms, 0, MS),
    POOL(max_lifetime_ms, 0, MS),
    POOL(suspend_threshold_ms, 0, MS),
};

static const struct cfg_field breaker_fields[] = {
    BREAKER(failure_threshold, 1, 1000000),
    BREAKER(open_ms, 0, MS),
    BREAKER(max_open_ms, 0, MS),
    BREAKER(lease_ms, 1, MS),
    BREAKER(seed, 0, SEED_MAX),
};

#define N_POOL_FIELDS    (sizeof pool_fields / sizeof pool_fields[0])
#define N_BREAKER_FIELDS (sizeof breaker_fields / sizeof breaker_fields[0])

/* Sets one field of base (a config struct) from v; strings are copied into sc->strings. */
static int set_field(struct harness__jr *jr, struct harness_scenario *sc, void *base,
                     const struct cfg_field *f, const cJSON *v, const char *path)
{
    char *at = (char *)base + f->off;
    const char *str;
    uint64_t u;
    int64_t i;
    bool b;

    switch (f->type) {
    case F_BOOL:
        if (harness__bool(jr, v, path, &b) < 0)
            return -1;
        memcpy(at, &b, sizeof b);
        return 0;
    case F_STRING:
        if (harness__string(jr, v, path, (size_t)f->hi, &str) < 0)
            return -1;
        if (sc->n_strings == sizeof sc->strings / sizeof sc->strings[0] ||
            (sc->strings[sc->n_strings] = harness__strdup(str)) == NULL) {
            harness__fail(jr, path, "out of memory");
            return -1;
        }
        str = sc->strings[sc->n_strings++];
        memcpy(at, &str, sizeof str);
        return 0;
    case F_INT:
        if (harness__int(jr, v, path, f->lo, f->hi, &i) < 0)
            return -1;
        {
            int x = (int)i;

            memcpy(at, &x, sizeof x);
        }
        return 0;
    case F_UNSIGNED:
    case F_U64:
        if (harness__uint(jr, v, path, (uint64_t)f->hi, &u) < 0)
            return -1;
        if ((int64_t)u < f->lo) {
            harness__fail(jr, path, "must be at least %lld", (long long)f->lo);
            return -1;
        }
        if (f->type == F_UNSIGNED) {
            unsigned x = (unsigned)u;

            memcpy(at, &x, sizeof x);
        } else {
            memcpy(at, &u, sizeof u);
        }
        return 0;
    }
    return -1;
}

static const struct cfg_field *find_field(const struct cfg_field *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static int parse_breaker(struct harness__jr *jr, struct harness_scenario *sc, const cJSON *v,
                         const char *path)
{
    const char *keys[N_BREAKER_FIELDS + 1];
    const cJSON *it;
    char p[HARNESS__PATH_CAP];

    for (size_t i = 0; i < N_BREAKER_FIELDS; i++)
        keys[i] = breaker_fields[i].name;
    keys[N_BREAKER_FIELDS] = NULL;
    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, keys) < 0)
        return -1;
    cJSON_ArrayForEach(it, v)
    {
        harness__path_key(p, sizeof p, path, it->string);
        if (set_field(jr, sc, &sc->breaker,
                      find_field(breaker_fields, N_BREAKER_FIELDS, it->string), it, p) < 0)
            return -1;
        if (strcmp(it->string, "seed") == 0)
            sc->has_breaker_seed = true;
    }
    return 0;
}

static int parse_core(struct harness__jr *jr, struct harness_scenario *sc, const cJSON *v,
                      const char *path)
{
    const char *keys[N_POOL_FIELDS + 2];
    const cJSON *it;
    char p[HARNESS__PATH_CAP];

    if (harness__object(jr, v, path) < 0)
        return -1;
    cJSON_ArrayForEach(it, v)
    {
        if (strcmp(it->string, "host") == 0 || strcmp(it->string, "port") == 0) {
            harness__path_key(p, sizeof p, path, it->string);
            harness__fail(jr, p, "set by the harness (the gateway's address), not the scenario");
            return -1;
        }
    }
    for (size_t i = 0; i < N_POOL_FIELDS; i++)
        keys[i] = pool_fields[i].name;
    keys[N_POOL_FIELDS] = "breaker";
    keys[N_POOL_FIELDS + 1] = NULL;
    if (harness__keys(jr, v, path, keys) < 0)
        return -1;
    cJSON_ArrayForEach(it, v)
    {
        harness__path_key(p, sizeof p, path, it->string);
        if (strcmp(it->string, "breaker") == 0) {
            if (parse_breaker(jr, sc, it, p) < 0)
                return -1;
            continue;
        }
        if (set_field(jr, sc, &sc->core, find_field(pool_fields, N_POOL_FIELDS, it->string), it,
                      p) < 0)
            return -1;
        if (strcmp(it->string, "seed") == 0)
            sc->has_core_seed = true;
        if (strcmp(it->string, "lock_path") == 0)
            sc->has_lock_path = true;
    }
    return 0;
}

/* ---- expectations ---------------------------------------------------------------------------- */

static int parse_named_ranges(struct harness__jr *jr, const cJSON *v, const char *path,
                              const char *const *names, struct harness_named_range **out,
                              unsigned *n)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    unsigned i = 0;

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, names) < 0)
        return -1;
    *n = (unsigned)cJSON_GetArraySize(v);
    if (*n == 0)
        return 0;
    if ((*out = calloc(*n, sizeof **out)) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        harness__path_key(p, sizeof p, path, it->string);
        if (((*out)[i].name = harness__strdup(it->string)) == NULL) {
            harness__fail(jr, p, "out of memory");
            return -1;
        }
        if (harness__range(jr, it, p, &(*out)[i].range) < 0)
            return -1;
        i++;
    }
    return 0;
}

static int parse_int_list(struct harness__jr *jr, const cJSON *v, const char *path, int **out,
                          unsigned *n)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    unsigned i = 0;
    int64_t x;

    if (harness__array(jr, v, path, MAX_IDS_LIST, n) < 0)
        return -1;
    if (*n > 0 && (*out = calloc(*n, sizeof **out)) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        harness__path_index(p, sizeof p, path, i);
        if (harness__int(jr, it, p, INT32_MIN, INT32_MAX, &x) < 0)
            return -1;
        (*out)[i++] = (int)x;
    }
    return 0;
}

static int parse_journal(struct harness__jr *jr, const cJSON *v, const char *path,
                         struct harness_journal_expect *j)
{
    static const char *const keys[] = { "accepted",
                                        "max_handshakes_in_flight",
                                        "client_ids",
                                        "events",
                                        "min_connect_interval_ms",
                                        "reconnect_ms",
                                        "same_id_after_326",
                                        NULL };
    const cJSON *it;
    char p[HARNESS__PATH_CAP];

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, keys) < 0)
        return -1;
    j->set = true;
    cJSON_ArrayForEach(it, v)
    {
        harness__path_key(p, sizeof p, path, it->string);
        if (strcmp(it->string, "accepted") == 0) {
            if (harness__range(jr, it, p, &j->accepted) < 0)
                return -1;
        } else if (strcmp(it->string, "max_handshakes_in_flight") == 0) {
            if (harness__range(jr, it, p, &j->max_in_flight) < 0)
                return -1;
        } else if (strcmp(it->string, "min_connect_interval_ms") == 0) {
            if (harness__range(jr, it, p, &j->min_connect_interval) < 0)
                return -1;
        } else if (strcmp(it->string, "reconnect_ms") == 0) {
            if (harness__range(jr, it, p, &j->reconnect) < 0)
                return -1;
        } else if (strcmp(it->string, "same_id_after_326") == 0) {
            if (harness__range(jr, it, p, &j->same_id_after_326) < 0)
                return -1;
        } else if (strcmp(it->string, "client_ids") == 0) {
            j->has_client_ids = true;
            if (parse_int_list(jr, it, p, &j->client_ids, &j->n_client_ids) < 0)
                return -1;
        } else if (parse_named_ranges(jr, it, p, harness__journal_events, &j->events,
                                      &j->n_events) < 0) {
            return -1;
        }
    }
    return 0;
}

static int parse_transitions(struct harness__jr *jr, const cJSON *v, const char *path,
                             struct harness_expect *e)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP], from[32], to[32];
    const char *s, *arrow;
    unsigned i = 0;

    if (harness__array(jr, v, path, 1000, &e->n_transitions) < 0)
        return -1;
    e->has_transitions = true;
    if (e->n_transitions > 0 &&
        (e->transitions = calloc(e->n_transitions, sizeof(char *))) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        harness__path_index(p, sizeof p, path, i);
        if (harness__string(jr, it, p, 40, &s) < 0)
            return -1;
        arrow = strstr(s, "->");
        if (arrow == NULL || (size_t)(arrow - s) >= sizeof from || strlen(arrow + 2) >= sizeof to) {
            harness__fail(jr, p, "expected \"FROM->TO\", e.g. \"closed->open\"");
            return -1;
        }
        memcpy(from, s, (size_t)(arrow - s));
        from[arrow - s] = '\0';
        snprintf(to, sizeof to, "%s", arrow + 2);
        if (!in_list(from, harness__breaker_states) || !in_list(to, harness__breaker_states)) {
            harness__fail(jr, p,
                          "unknown breaker state in \"%s\" (states: closed, open, half_open, "
                          "forced_open, disabled)",
                          s);
            return -1;
        }
        if ((e->transitions[i++] = harness__strdup(s)) == NULL) {
            harness__fail(jr, p, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int parse_telemetry(struct harness__jr *jr, const cJSON *v, const char *path,
                           struct harness_expect *e)
{
    static const char *const keys[] = { "transitions", "events", NULL };
    const cJSON *it;
    char p[HARNESS__PATH_CAP];

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, keys) < 0)
        return -1;
    if ((it = ITEM(v, "transitions")) != NULL) {
        harness__path_key(p, sizeof p, path, "transitions");
        if (parse_transitions(jr, it, p, e) < 0)
            return -1;
    }
    if ((it = ITEM(v, "events")) != NULL) {
        harness__path_key(p, sizeof p, path, "events");
        if (parse_named_ranges(jr, it, p, harness__telemetry_events, &e->telemetry,
                               &e->n_telemetry) < 0)
            return -1;
    }
    return 0;
}

static int parse_fields(struct harness__jr *jr, const cJSON *v, const char *path,
                        struct harness_expect *e)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    unsigned i = 0;

    if (harness__object(jr, v, path) < 0)
        return -1;
    e->n_fields = (unsigned)cJSON_GetArraySize(v);
    if (e->n_fields == 0)
        return 0;
    if ((e->fields = calloc(e->n_fields, sizeof *e->fields)) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        struct harness_field_expect *f = &e->fields[i++];
        const cJSON *o;

        harness__path_key(p, sizeof p, path, it->string);
        for (o = v->child; o != it; o = o->next) {
            if (strcmp(o->string, it->string) == 0) {
                harness__fail(jr, p, "key given twice");
                return -1;
            }
        }
        if (it->string[0] == '\0' || it->string[0] == '.' ||
            it->string[strlen(it->string) - 1] == '.' || strstr(it->string, "..") != NULL) {
            harness__fail(jr, p, "expected a dotted path such as \"breaker.state\"");
            return -1;
        }
        if ((f->path = harness__strdup(it->string)) == NULL) {
            harness__fail(jr, p, "out of memory");
            return -1;
        }
        if (cJSON_IsObject(it)) {
            if (harness__range(jr, it, p, &f->range) < 0)
                return -1;
        } else if (cJSON_IsArray(it)) {
            harness__fail(jr, p, "expected a string, number, boolean, null or {\"min\", \"max\"}");
            return -1;
        } else if ((f->value = cJSON_Duplicate(it, true)) == NULL) {
            harness__fail(jr, p, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int parse_status_list(struct harness__jr *jr, const cJSON *v, const char *path,
                             unsigned *mask)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    unsigned n, i = 0;
    int st;

    if (cJSON_IsString(v)) {
        if ((st = harness_status_parse(v->valuestring)) < 0) {
            harness__fail(jr, path, "unknown status \"%s\"", v->valuestring);
            return -1;
        }
        *mask = 1u << st;
        return 0;
    }
    if (!cJSON_IsArray(v)) {
        harness__fail(jr, path, "expected a status name or an array of them");
        return -1;
    }
    if (harness__array(jr, v, path, HARNESS_STATUS_COUNT, &n) < 0)
        return -1;
    if (n == 0) {
        harness__fail(jr, path, "must not be empty");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        harness__path_index(p, sizeof p, path, i++);
        if (!cJSON_IsString(it)) {
            harness__fail(jr, p, "expected a string");
            return -1;
        }
        if ((st = harness_status_parse(it->valuestring)) < 0) {
            harness__fail(jr, p, "unknown status \"%s\"", it->valuestring);
            return -1;
        }
        *mask |= 1u << st;
    }
    return 0;
}

static int parse_statuses(struct harness__jr *jr, const cJSON *v, const char *path,
                          struct harness_expect *e)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, status_names) < 0)
        return -1;
    cJSON_ArrayForEach(it, v)
    {
        harness__path_key(p, sizeof p, path, it->string);
        if (harness__range(jr, it, p, &e->statuses[harness_status_parse(it->string)]) < 0)
            return -1;
    }
    return 0;
}

static int parse_stats(struct harness__jr *jr, const cJSON *v, const char *path,
                       struct harness_range *out)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, stat_names) < 0)
        return -1;
    if (cJSON_GetArraySize(v) == 0) {
        harness__fail(jr, path, "must not be empty");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        for (int i = 0; i < HARNESS_STAT_COUNT; i++) {
            if (strcmp(stat_names[i], it->string) != 0)
                continue;
            harness__path_key(p, sizeof p, path, it->string);
            if (harness__range(jr, it, p, &out[i]) < 0)
                return -1;
        }
    }
    return 0;
}

/* "expect.client": {"exit_code": 0 | null, "output": "text" | ["text", ...]}. */
static int parse_client_expect(struct harness__jr *jr, const cJSON *v, const char *path,
                               struct harness_client_expect *c)
{
    static const char *const keys[] = { "exit_code", "output", NULL };
    const cJSON *it, *s;
    char p[HARNESS__PATH_CAP];
    const char *text;
    unsigned n = 0;
    int64_t i;

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, keys) < 0)
        return -1;
    if ((it = ITEM(v, "exit_code")) != NULL) {
        harness__path_key(p, sizeof p, path, "exit_code");
        if (cJSON_IsNull(it)) {
            c->exit_code = -1;
        } else {
            if (harness__int(jr, it, p, 0, 255, &i) < 0)
                return -1;
            c->exit_code = (int)i;
        }
    }
    if ((it = ITEM(v, "output")) == NULL)
        return 0;
    harness__path_key(p, sizeof p, path, "output");
    if (cJSON_IsString(it)) {
        n = 1;
    } else if (harness__array(jr, it, p, 64, &n) < 0) {
        return -1;
    }
    if ((c->output = calloc(n > 0 ? n : 1, sizeof *c->output)) == NULL) {
        harness__fail(jr, p, "out of memory");
        return -1;
    }
    for (s = cJSON_IsString(it) ? it : it->child; s != NULL && c->n_output < n; s = s->next) {
        char sp[HARNESS__PATH_CAP];

        if (cJSON_IsString(it))
            snprintf(sp, sizeof sp, "%s", p);
        else
            harness__path_index(sp, sizeof sp, p, c->n_output);
        if (harness__string(jr, s, sp, MAX_TEXT, &text) < 0)
            return -1;
        if (text[0] == '\0') {
            harness__fail(jr, sp, "must not be empty");
            return -1;
        }
        if ((c->output[c->n_output] = harness__strdup(text)) == NULL) {
            harness__fail(jr, sp, "out of memory");
            return -1;
        }
        c->n_output++;
    }
    return 0;
}

/* allowed: the expectation keys this place accepts. */
static int parse_expect(struct harness__jr *jr, const cJSON *v, const char *path,
                        const char *const *allowed, struct harness_expect *e)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    uint64_t u;
    int64_t i;

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, allowed) < 0)
        return -1;
    cJSON_ArrayForEach(it, v)
    {
        const char *k = it->string;

        harness__path_key(p, sizeof p, path, k);
        if (strcmp(k, "status") == 0) {
            if (parse_status_list(jr, it, p, &e->status_mask) < 0)
                return -1;
        } else if (strcmp(k, "statuses") == 0) {
            if (parse_statuses(jr, it, p, e) < 0)
                return -1;
        } else if (strcmp(k, "within_ms") == 0 || strcmp(k, "after_ms") == 0) {
            if (harness__uint(jr, it, p, HARNESS__MAX_MS, &u) < 0)
                return -1;
            if (k[0] == 'w') {
                e->has_within = true;
                e->within_ms = u;
            } else {
                e->has_after = true;
                e->after_ms = u;
            }
        } else if (strcmp(k, "client_ids") == 0) {
            e->has_client_ids = true;
            if (parse_int_list(jr, it, p, &e->client_ids, &e->n_client_ids) < 0)
                return -1;
        } else if (strcmp(k, "http_status") == 0) {
            if (harness__int(jr, it, p, 100, 599, &i) < 0)
                return -1;
            e->http_status = (int)i;
        } else if (strcmp(k, "stats") == 0) {
            if (parse_stats(jr, it, p, e->stats) < 0)
                return -1;
        } else if (strcmp(k, "score") == 0) {
            if (harness__range(jr, it, p, &e->score) < 0)
                return -1;
        } else if (strcmp(k, "pool_status") == 0) {
            if (parse_fields(jr, it, p, e) < 0)
                return -1;
        } else if (strcmp(k, "journal") == 0) {
            if (parse_journal(jr, it, p, &e->journal) < 0)
                return -1;
        } else if (strcmp(k, "telemetry") == 0) {
            if (parse_telemetry(jr, it, p, e) < 0)
                return -1;
        } else if (strcmp(k, "client") == 0) {
            e->client.set = true;
            if (parse_client_expect(jr, it, p, &e->client) < 0)
                return -1;
        }
    }
    if (e->has_within && e->has_after && e->after_ms > e->within_ms) {
        harness__fail(jr, path, "after_ms is greater than within_ms");
        return -1;
    }
    return 0;
}

/* ---- steps ----------------------------------------------------------------------------------- */

static const char *const expect_ops[] = { "status",     "statuses", "within_ms", "after_ms",
                                          "client_ids", "stats",    "score",     "pool_status",
                                          "journal",    NULL };
static const char *const expect_request[] = { "status",      "statuses", "within_ms",
                                              "after_ms",    "stats",    "score",
                                              "pool_status", "journal",  NULL };
static const char *const expect_gateway[] = { "status", "within_ms",   "http_status", "stats",
                                              "score",  "pool_status", "journal",     NULL };
static const char *const expect_state[] = { "stats", "score", "pool_status", "journal", NULL };
static const char *const expect_top[] = { "stats",   "score",     "pool_status",
                                          "journal", "telemetry", NULL };
static const char *const expect_client_top[] = { "journal", "client", NULL };

enum body { B_NONE, B_RULES, B_RESTART, B_STATE, B_ADMIN };

static const struct core_action {
    const char *name;
    enum harness_step_kind kind;
    const char *const *keys;
    const char *const *expect;
} core_actions[] = {
    { "acquire", HARNESS_STEP_ACQUIRE,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "count", "concurrency",
                             "deadline_ms", "hold_ms", "keep", "async", NULL },
      expect_ops },
    { "release", HARNESS_STEP_RELEASE,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "count", "conn", NULL },
      expect_state },
    { "request", HARNESS_STEP_REQUEST,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "what", "conn", "deadline_ms",
                             "if_held", NULL },
      expect_request },
    { "health_tick", HARNESS_STEP_HEALTH_TICK,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "count", NULL },
      expect_state },
    { "wait_stats", HARNESS_STEP_WAIT_STATS,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "until", NULL },
      expect_state },
    { "status", HARNESS_STEP_STATUS,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", NULL }, expect_state },
    { "close", HARNESS_STEP_CLOSE,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", NULL }, expect_state },
    { "hold_lock", HARNESS_STEP_HOLD_LOCK,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "hold_ms", NULL },
      expect_state },
    { "recover", HARNESS_STEP_RECOVER,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "deadline_ms", NULL },
      expect_state },
    { "close_zombies", HARNESS_STEP_CLOSE_ZOMBIES,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", NULL }, expect_state },
    { "stall", HARNESS_STEP_STALL,
      (const char *const[]){ "core", "note", "timeout_ms", "expect", "ms", NULL }, expect_state },
};

static const struct gateway_action {
    const char *name;
    const char *method, *target;
    enum body body;
} gateway_actions[] = {
    { "rules", "PUT", "/v1/rules", B_RULES },
    { "clear_rules", "DELETE", "/v1/rules", B_NONE },
    { "drop_all", "POST", "/v1/actions/drop-all", B_NONE },
    { "reset_all", "POST", "/v1/actions/reset-all", B_NONE },
    { "refuse", "POST", "/v1/actions/refuse", B_NONE },
    { "blackhole", "POST", "/v1/actions/blackhole", B_NONE },
    { "accept", "POST", "/v1/actions/accept", B_NONE },
    { "release_all", "POST", "/v1/actions/release-all", B_NONE },
    { "restart", "POST", "/v1/actions/restart", B_RESTART },
    { "state", "PUT", "/v1/state", B_STATE },
    { "admin", NULL, NULL, B_ADMIN },
};

#define N_CORE_ACTIONS    (sizeof core_actions / sizeof core_actions[0])
#define N_GATEWAY_ACTIONS (sizeof gateway_actions / sizeof gateway_actions[0])

static const char *const gateway_keys[][9] = {
    [B_NONE] = { "gateway", "note", "timeout_ms", "expect", NULL },
    [B_RULES] = { "gateway", "note", "timeout_ms", "expect", "rules", "state", NULL },
    [B_RESTART] = { "gateway", "note", "timeout_ms", "expect", "down_ms", "how", NULL },
    [B_STATE] = { "gateway", "note", "timeout_ms", "expect", "state", NULL },
    [B_ADMIN] = { "gateway", "note", "timeout_ms", "expect", "method", "path", "body", NULL },
};

static const char *const wait_keys[] = { "wait_ms", "note", NULL };
static const char *const wait_journal_keys[] = { "wait_journal", "count", "timeout_ms", "note",
                                                 NULL };

static int get_uint(struct harness__jr *jr, const cJSON *obj, const char *path, const char *key,
                    uint64_t lo, uint64_t hi, uint64_t *out)
{
    const cJSON *v = ITEM(obj, key);
    char p[HARNESS__PATH_CAP];

    if (v == NULL)
        return 0;
    harness__path_key(p, sizeof p, path, key);
    if (harness__uint(jr, v, p, hi, out) < 0)
        return -1;
    if (*out < lo) {
        harness__fail(jr, p, "must be at least %llu", (unsigned long long)lo);
        return -1;
    }
    return 0;
}

static int get_flag(struct harness__jr *jr, const cJSON *obj, const char *path, const char *key,
                    bool *out)
{
    const cJSON *v = ITEM(obj, key);
    char p[HARNESS__PATH_CAP];

    if (v == NULL)
        return 0;
    harness__path_key(p, sizeof p, path, key);
    return harness__bool(jr, v, p, out);
}

static char *print_json(struct harness__jr *jr, const cJSON *v, const char *path)
{
    char *s = cJSON_PrintUnformatted(v);

    if (s == NULL)
        harness__fail(jr, path, "out of memory");
    return s;
}

/* "rules" (+ "state"): validated by mockgw's own script loader, sent as PUT /v1/rules. */
static int parse_gateway_rules(struct harness__jr *jr, const cJSON *v, const char *path,
                               struct harness_step *st)
{
    const cJSON *rules = ITEM(v, "rules"), *state = ITEM(v, "state");
    struct mgw_script *script;
    struct mgw_err merr;
    cJSON *doc;
    char p[HARNESS__PATH_CAP];

    if (rules == NULL) {
        harness__path_key(p, sizeof p, path, "rules");
        harness__fail(jr, p, "required (an array of rules; [] clears them)");
        return -1;
    }
    if ((doc = cJSON_CreateObject()) == NULL ||
        !cJSON_AddItemToObject(doc, "rules", cJSON_Duplicate(rules, true)) ||
        (state != NULL && !cJSON_AddItemToObject(doc, "state", cJSON_Duplicate(state, true)))) {
        cJSON_Delete(doc);
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    script = mgw_script_from_json(doc, jr->name, path, &merr);
    if (script == NULL) {
        snprintf(jr->err->msg, sizeof jr->err->msg, "%s", merr.msg);
        cJSON_Delete(doc);
        return -1;
    }
    mgw_script_free(script);
    st->body = print_json(jr, doc, path);
    cJSON_Delete(doc);
    return st->body != NULL ? 0 : -1;
}

static int parse_gateway(struct harness__jr *jr, const cJSON *v, const char *path,
                         struct harness_step *st, const struct gateway_action *ga)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    const char *s;

    st->kind = HARNESS_STEP_GATEWAY;
    if (harness__keys(jr, v, path, gateway_keys[ga->body]) < 0)
        return -1;
    st->method = harness__strdup(ga->method);
    st->target = harness__strdup(ga->target);
    snprintf(st->label, sizeof st->label, "gateway %s", ga->name);
    switch (ga->body) {
    case B_NONE:
        break;
    case B_RULES:
        if (parse_gateway_rules(jr, v, path, st) < 0)
            return -1;
        break;
    case B_RESTART: {
        uint64_t down = 5000;
        cJSON *b;

        if (get_uint(jr, v, path, "down_ms", 0, HARNESS__MAX_MS, &down) < 0)
            return -1;
        if ((b = cJSON_CreateObject()) == NULL ||
            cJSON_AddNumberToObject(b, "down_ms", (double)down) == NULL) {
            cJSON_Delete(b);
            harness__fail(jr, path, "out of memory");
            return -1;
        }
        if ((it = ITEM(v, "how")) != NULL) {
            harness__path_key(p, sizeof p, path, "how");
            if (harness__string(jr, it, p, 16, &s) < 0 ||
                (strcmp(s, "close") != 0 && strcmp(s, "reset") != 0)) {
                harness__fail(jr, p, "expected \"close\" or \"reset\"");
                cJSON_Delete(b);
                return -1;
            }
            cJSON_AddStringToObject(b, "how", s);
        }
        st->body = print_json(jr, b, path);
        cJSON_Delete(b);
        if (st->body == NULL)
            return -1;
        break;
    }
    case B_STATE: {
        cJSON *b;

        harness__path_key(p, sizeof p, path, "state");
        if ((it = ITEM(v, "state")) == NULL) {
            harness__fail(jr, p, "required (the named state to switch to)");
            return -1;
        }
        if (harness__string(jr, it, p, 128, &s) < 0)
            return -1;
        if ((b = cJSON_CreateObject()) == NULL || cJSON_AddStringToObject(b, "state", s) == NULL) {
            cJSON_Delete(b);
            harness__fail(jr, path, "out of memory");
            return -1;
        }
        st->body = print_json(jr, b, path);
        cJSON_Delete(b);
        if (st->body == NULL)
            return -1;
        break;
    }
    case B_ADMIN: {
        static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "HEAD", NULL };

        harness__path_key(p, sizeof p, path, "method");
        if ((it = ITEM(v, "method")) == NULL) {
            harness__fail(jr, p, "required (GET, POST, PUT, DELETE or HEAD)");
            return -1;
        }
        if (harness__string(jr, it, p, 8, &s) < 0)
            return -1;
        if (!in_list(s, methods)) {
            harness__fail(jr, p, "expected GET, POST, PUT, DELETE or HEAD");
            return -1;
        }
        st->method = harness__strdup(s);
        harness__path_key(p, sizeof p, path, "path");
        if ((it = ITEM(v, "path")) == NULL) {
            harness__fail(jr, p, "required (e.g. \"/v1/actions/drop-all\")");
            return -1;
        }
        if (harness__string(jr, it, p, 2048, &s) < 0)
            return -1;
        if (s[0] != '/' || strpbrk(s, " \t") != NULL) {
            harness__fail(jr, p, "expected an absolute path without spaces, e.g. \"/v1/status\"");
            return -1;
        }
        st->target = harness__strdup(s);
        if ((it = ITEM(v, "body")) != NULL) {
            harness__path_key(p, sizeof p, path, "body");
            if ((st->body = print_json(jr, it, p)) == NULL)
                return -1;
        }
        snprintf(st->label, sizeof st->label, "gateway %s %.32s", st->method, st->target);
        break;
    }
    }
    if (st->method == NULL || st->target == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int parse_core_step(struct harness__jr *jr, struct harness_scenario *sc, const cJSON *v,
                           const char *path, struct harness_step *st, const struct core_action *ca)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    uint64_t u;
    const char *s;

    st->kind = ca->kind;
    if (harness__keys(jr, v, path, ca->keys) < 0)
        return -1;
    switch (ca->kind) {
    case HARNESS_STEP_ACQUIRE:
        st->count = 1;
        st->deadline_ms = 5000;
        u = 1;
        if (get_uint(jr, v, path, "count", 1, MAX_COUNT, &u) < 0)
            return -1;
        st->count = (unsigned)u;
        u = st->count;
        if (get_uint(jr, v, path, "concurrency", 1, MAX_COUNT, &u) < 0)
            return -1;
        st->concurrency = (unsigned)u < st->count ? (unsigned)u : st->count;
        if (get_uint(jr, v, path, "deadline_ms", 0, HARNESS__MAX_MS, &st->deadline_ms) < 0 ||
            get_uint(jr, v, path, "hold_ms", 0, HARNESS__MAX_MS, &st->hold_ms) < 0 ||
            get_flag(jr, v, path, "keep", &st->keep) < 0 ||
            get_flag(jr, v, path, "async", &st->async) < 0)
            return -1;
        if (st->keep && ITEM(v, "hold_ms") != NULL) {
            harness__path_key(p, sizeof p, path, "keep");
            harness__fail(jr, p, "keep and hold_ms exclude each other");
            return -1;
        }
        snprintf(st->label, sizeof st->label, "acquire x%u", st->count);
        st->timeout_ms = sat_add(((uint64_t)st->count + st->concurrency - 1) / st->concurrency *
                                     (st->deadline_ms + st->hold_ms),
                                 1000);
        break;
    case HARNESS_STEP_RELEASE:
    case HARNESS_STEP_REQUEST:
        u = 0;
        if (get_uint(jr, v, path, "count", 1, MAX_COUNT, &u) < 0)
            return -1;
        st->count = (unsigned)u;
        st->conn = -1;
        if (ITEM(v, "conn") != NULL) {
            if (get_uint(jr, v, path, "conn", 0, MAX_COUNT, &u) < 0)
                return -1;
            st->conn = (int)u;
            if (ITEM(v, "count") != NULL) {
                harness__path_key(p, sizeof p, path, "conn");
                harness__fail(jr, p, "conn and count exclude each other");
                return -1;
            }
        }
        if (ca->kind == HARNESS_STEP_RELEASE) {
            snprintf(st->label, sizeof st->label, "release");
            st->timeout_ms = 5000;
            break;
        }
        harness__path_key(p, sizeof p, path, "what");
        if ((it = ITEM(v, "what")) != NULL &&
            (harness__string(jr, it, p, 32, &s) < 0 || strcmp(s, "current_time") != 0)) {
            harness__fail(jr, p, "expected \"current_time\"");
            return -1;
        }
        if (st->conn < 0)
            st->conn = 0;
        if (get_flag(jr, v, path, "if_held", &st->if_held) < 0)
            return -1;
        st->deadline_ms = 2000;
        if (get_uint(jr, v, path, "deadline_ms", 0, HARNESS__MAX_MS, &st->deadline_ms) < 0)
            return -1;
        snprintf(st->label, sizeof st->label, "request current_time");
        st->timeout_ms = sat_add(st->deadline_ms, 1000);
        break;
    case HARNESS_STEP_HEALTH_TICK: {
        uint64_t every = sc->core.health_interval_ms < 1000 ? 1000 : sc->core.health_interval_ms;

        u = 1;
        if (get_uint(jr, v, path, "count", 1, 1000, &u) < 0)
            return -1;
        st->count = (unsigned)u;
        snprintf(st->label, sizeof st->label, "health_tick x%u", st->count);
        st->timeout_ms = sat_add(u * (every + every / 10 + sc->core.probe_timeout_ms + 100), 1000);
        break;
    }
    case HARNESS_STEP_WAIT_STATS:
        harness__path_key(p, sizeof p, path, "until");
        if ((it = ITEM(v, "until")) == NULL) {
            harness__fail(jr, p, "required (pool counters to wait for)");
            return -1;
        }
        if (parse_stats(jr, it, p, st->until) < 0)
            return -1;
        snprintf(st->label, sizeof st->label, "wait_stats");
        st->timeout_ms = 5000;
        break;
    case HARNESS_STEP_STATUS:
        snprintf(st->label, sizeof st->label, "status");
        st->timeout_ms = 5000;
        break;
    case HARNESS_STEP_CLOSE:
        snprintf(st->label, sizeof st->label, "close");
        st->timeout_ms = 5000;
        break;
    case HARNESS_STEP_HOLD_LOCK:
        harness__path_key(p, sizeof p, path, "hold_ms");
        if (ITEM(v, "hold_ms") == NULL) {
            harness__fail(jr, p, "required (how long the lock is held)");
            return -1;
        }
        if (get_uint(jr, v, path, "hold_ms", 1, HARNESS__MAX_MS, &st->hold_ms) < 0)
            return -1;
        snprintf(st->label, sizeof st->label, "hold_lock %llu ms", (unsigned long long)st->hold_ms);
        st->timeout_ms = 5000;
        break;
    case HARNESS_STEP_RECOVER:
        st->deadline_ms = 5000;
        if (get_uint(jr, v, path, "deadline_ms", 1, HARNESS__MAX_MS, &st->deadline_ms) < 0)
            return -1;
        snprintf(st->label, sizeof st->label, "recover within %llu ms",
                 (unsigned long long)st->deadline_ms);
        st->timeout_ms = sat_add(st->deadline_ms, 1000);
        break;
    case HARNESS_STEP_CLOSE_ZOMBIES:
        snprintf(st->label, sizeof st->label, "close_zombies");
        st->timeout_ms = 5000;
        break;
    case HARNESS_STEP_STALL:
        harness__path_key(p, sizeof p, path, "ms");
        if (ITEM(v, "ms") == NULL) {
            harness__fail(jr, p, "required (how long the loop does not run)");
            return -1;
        }
        if (get_uint(jr, v, path, "ms", 1, MAX_STALL_MS, &st->wait_ms) < 0)
            return -1;
        snprintf(st->label, sizeof st->label, "stall %llu ms", (unsigned long long)st->wait_ms);
        st->timeout_ms = sat_add(st->wait_ms, 1000);
        break;
    default:
        break;
    }
    return 0;
}

static int parse_step(struct harness__jr *jr, struct harness_scenario *sc, const cJSON *v,
                      unsigned index, struct harness_step *st)
{
    const cJSON *it, *core, *gw, *wait, *wj;
    char p[HARNESS__PATH_CAP];
    const char *s;
    int kinds;

    harness__path_index(st->path, sizeof st->path, "$.steps", index);
    st->conn = -1;
    if (harness__object(jr, v, st->path) < 0)
        return -1;
    core = ITEM(v, "core");
    gw = ITEM(v, "gateway");
    wait = ITEM(v, "wait_ms");
    wj = ITEM(v, "wait_journal");
    kinds = (core != NULL) + (gw != NULL) + (wait != NULL) + (wj != NULL);
    if (kinds != 1) {
        harness__fail(jr, st->path,
                      kinds == 0
                          ? "needs one of \"core\", \"gateway\", \"wait_ms\", \"wait_journal\""
                          : "only one of \"core\", \"gateway\", \"wait_ms\", \"wait_journal\"");
        return -1;
    }
    if (core != NULL && sc->client != NULL) {
        harness__path_key(p, sizeof p, st->path, "core");
        harness__fail(jr, p,
                      "a scenario with \"client\" drives no core (gateway, wait_ms and "
                      "wait_journal steps only)");
        return -1;
    }
    if (wj != NULL) {
        uint64_t count = 1;

        st->kind = HARNESS_STEP_WAIT_JOURNAL;
        harness__path_key(p, sizeof p, st->path, "wait_journal");
        if (harness__keys(jr, v, st->path, wait_journal_keys) < 0 ||
            harness__string(jr, wj, p, sizeof st->event - 1, &s) < 0)
            return -1;
        if (!in_list(s, harness__journal_events)) {
            harness__fail(jr, p, "unknown journal event \"%s\" (docs/journal.md)", s);
            return -1;
        }
        snprintf(st->event, sizeof st->event, "%s", s);
        if (get_uint(jr, v, st->path, "count", 1, MAX_COUNT, &count) < 0)
            return -1;
        st->count = (unsigned)count;
        snprintf(st->label, sizeof st->label, "wait for %u %.24s", st->count, st->event);
        st->timeout_ms = 10000;
        sc->needs_admin = true;
    } else if (wait != NULL) {
        st->kind = HARNESS_STEP_WAIT;
        if (harness__keys(jr, v, st->path, wait_keys) < 0 ||
            get_uint(jr, v, st->path, "wait_ms", 0, HARNESS__MAX_MS, &st->wait_ms) < 0)
            return -1;
        snprintf(st->label, sizeof st->label, "wait %llu ms", (unsigned long long)st->wait_ms);
        st->timeout_ms = sat_add(st->wait_ms, 1000);
    } else {
        const char *key = core != NULL ? "core" : "gateway";
        bool found = false;

        harness__path_key(p, sizeof p, st->path, key);
        if (harness__string(jr, core != NULL ? core : gw, p, 32, &s) < 0)
            return -1;
        for (unsigned i = 0; core != NULL && i < N_CORE_ACTIONS && !found; i++) {
            if (strcmp(core_actions[i].name, s) == 0) {
                found = true;
                if (parse_core_step(jr, sc, v, st->path, st, &core_actions[i]) < 0)
                    return -1;
                if ((it = ITEM(v, "expect")) != NULL) {
                    harness__path_key(p, sizeof p, st->path, "expect");
                    if (parse_expect(jr, it, p, core_actions[i].expect, &st->expect) < 0)
                        return -1;
                }
            }
        }
        for (unsigned i = 0; gw != NULL && i < N_GATEWAY_ACTIONS && !found; i++) {
            if (strcmp(gateway_actions[i].name, s) == 0) {
                found = true;
                if (parse_gateway(jr, v, st->path, st, &gateway_actions[i]) < 0)
                    return -1;
                st->timeout_ms = 5000;
                if ((it = ITEM(v, "expect")) != NULL) {
                    harness__path_key(p, sizeof p, st->path, "expect");
                    if (parse_expect(jr, it, p, expect_gateway, &st->expect) < 0)
                        return -1;
                }
                sc->needs_admin = true;
            }
        }
        if (!found) {
            harness__fail(jr, p,
                          core != NULL ? "unknown core action \"%s\" (acquire, release, request, "
                                         "health_tick, wait_stats, status, close, hold_lock, "
                                         "recover, close_zombies, stall)"
                                       : "unknown gateway action \"%s\" (rules, clear_rules, "
                                         "drop_all, reset_all, refuse, blackhole, accept, "
                                         "release_all, restart, state, admin)",
                          s);
            return -1;
        }
    }
    if (st->expect.journal.set)
        sc->needs_admin = true;
    if (get_uint(jr, v, st->path, "timeout_ms", 1, MAX_SCENARIO_MS, &st->timeout_ms) < 0)
        return -1;
    if ((it = ITEM(v, "note")) != NULL) {
        harness__path_key(p, sizeof p, st->path, "note");
        if (harness__string(jr, it, p, MAX_TEXT, &s) < 0)
            return -1;
    }
    return 0;
}

/* ---- the document ---------------------------------------------------------------------------- */

static int parse_levels(struct harness__jr *jr, const cJSON *v, struct harness_scenario *sc)
{
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    unsigned n, i = 0;
    int l;

    if (harness__array(jr, v, "$.levels", HARNESS_LEVEL_COUNT, &n) < 0)
        return -1;
    if (n == 0) {
        harness__fail(jr, "$.levels", "must not be empty");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        harness__path_index(p, sizeof p, "$.levels", i++);
        if (!cJSON_IsString(it)) {
            harness__fail(jr, p, "expected a string");
            return -1;
        }
        if ((l = harness_level_parse(it->valuestring)) < 0) {
            harness__fail(jr, p, "unknown level \"%s\" (basic, standard, exhaustive)",
                          it->valuestring);
            return -1;
        }
        if (sc->levels & (1u << l)) {
            harness__fail(jr, p, "level \"%s\" given twice", it->valuestring);
            return -1;
        }
        sc->levels |= 1u << l;
    }
    return 0;
}

static int parse_name(struct harness__jr *jr, const cJSON *v, struct harness_scenario *sc)
{
    const char *s;

    if (harness__string(jr, v, "$.name", MAX_NAME, &s) < 0)
        return -1;
    for (const char *c = s; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_')) {
            harness__fail(jr, "$.name", "use lower-case letters, digits, '-' and '_' only");
            return -1;
        }
    }
    sc->name = harness__strdup(s);
    return 0;
}

static int parse_gateway_script(struct harness__jr *jr, const cJSON *v, struct harness_scenario *sc)
{
    struct mgw_err merr;

    sc->script = mgw_script_from_json(v, jr->name, "$.gateway", &merr);
    if (sc->script == NULL) {
        snprintf(jr->err->msg, sizeof jr->err->msg, "%s", merr.msg);
        return -1;
    }
    return 0;
}

static void expect_clear(struct harness_expect *e);

/* "faults" or "ops": names (weight 1) or {"kind": name, "weight": n}; a kind at most once. */
static int parse_weights(struct harness__jr *jr, const cJSON *v, const char *path, unsigned n_kinds,
                         const char *(*name_of)(int), unsigned *weights)
{
    static const char *const keys[] = { "kind", "weight", NULL };
    const cJSON *it;
    char p[HARNESS__PATH_CAP], pk[HARNESS__PATH_CAP], known[400];
    unsigned n, i = 0;

    known[0] = '\0';
    for (unsigned k = 0; k < n_kinds; k++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "",
                 name_of((int)k));
    if (harness__array(jr, v, path, 64, &n) < 0)
        return -1;
    memset(weights, 0, n_kinds * sizeof *weights);
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *kind = it, *w = NULL;
        uint64_t weight = 1;
        unsigned k;

        harness__path_index(p, sizeof p, path, i++);
        if (cJSON_IsObject(it)) {
            if (harness__keys(jr, it, p, keys) < 0)
                return -1;
            harness__path_key(pk, sizeof pk, p, "kind");
            if ((kind = ITEM(it, "kind")) == NULL) {
                harness__fail(jr, pk, "required");
                return -1;
            }
            if ((w = ITEM(it, "weight")) != NULL) {
                harness__path_key(pk, sizeof pk, p, "weight");
                if (harness__uint(jr, w, pk, 1000, &weight) < 0)
                    return -1;
            }
            harness__path_key(pk, sizeof pk, p, "kind");
            memcpy(p, pk, sizeof p);
        }
        if (!cJSON_IsString(kind)) {
            harness__fail(jr, p, "expected a name or {\"kind\": NAME, \"weight\": N}");
            return -1;
        }
        for (k = 0; k < n_kinds && strcmp(name_of((int)k), kind->valuestring) != 0; k++)
            ;
        if (k == n_kinds) {
            harness__fail(jr, p, "unknown kind \"%s\" (%s)", kind->valuestring, known);
            return -1;
        }
        for (const cJSON *o = v->child; o != it; o = o->next) {
            const cJSON *ok = cJSON_IsObject(o) ? ITEM(o, "kind") : o;

            if (cJSON_IsString(ok) && strcmp(ok->valuestring, kind->valuestring) == 0) {
                harness__fail(jr, p, "\"%s\" given twice", kind->valuestring);
                return -1;
            }
        }
        weights[k] = (unsigned)weight;
    }
    return 0;
}

static const char *fault_name_of(int k)
{
    return harness_fault_name((enum harness_fault)k);
}

static const char *op_name_of(int k)
{
    return harness_op_name((enum harness_op)k);
}

static int parse_generate(struct harness__jr *jr, const cJSON *v, struct harness_scenario *sc)
{
    static const char *const keys[] = { "schedules",
                                        "steps_per_schedule",
                                        "concurrency",
                                        "fault_percent",
                                        "faults",
                                        "ops",
                                        "deadline_ms",
                                        "max_wait_ms",
                                        "idle_ms",
                                        "max_after_ms",
                                        "max_down_ms",
                                        "recovery_ms",
                                        "shrink_runs",
                                        "shrink_ms",
                                        "max_failures",
                                        "expect",
                                        NULL };
    const char *path = "$.generate";
    struct harness_generate *g;
    struct harness_expect check;
    const cJSON *it;
    char p[HARNESS__PATH_CAP];
    unsigned total = 0;
    uint64_t u;

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, keys) < 0)
        return -1;
    if ((g = sc->generate = calloc(1, sizeof *g)) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    g->steps = 6;
    g->concurrency = 4;
    g->fault_percent = 40;
    for (unsigned k = 0; k < HARNESS_FAULT_COUNT; k++)
        g->fault_weight[k] = 1;
    for (unsigned k = 0; k < HARNESS_OP_COUNT; k++)
        g->op_weight[k] = k != HARNESS_OP_IDLE; /* an idle wait costs a second: opt in */
    g->deadline_ms = 300;
    g->max_wait_ms = 50;
    g->idle_ms = 1100;
    g->max_after_ms = 100;
    g->max_down_ms = 150;
    g->recovery_ms = 3000;
    g->shrink_runs = 200;
    g->shrink_ms = 120000;
    g->max_failures = 1;
    harness__path_key(p, sizeof p, path, "schedules");
    if (ITEM(v, "schedules") == NULL) {
        harness__fail(jr, p, "required (how many schedules to draw)");
        return -1;
    }
#define GET(key, lo, hi, field)                             \
    do {                                                    \
        u = (field);                                        \
        if (get_uint(jr, v, path, key, (lo), (hi), &u) < 0) \
            return -1;                                      \
        (field) = u;                                        \
    } while (0)
    GET("schedules", 1, MAX_SCHEDULES, g->schedules);
    GET("steps_per_schedule", 1, 200, g->steps);
    GET("concurrency", 1, 64, g->concurrency);
    GET("fault_percent", 0, 100, g->fault_percent);
    GET("deadline_ms", 1, 60000, g->deadline_ms);
    GET("max_wait_ms", 1, 60000, g->max_wait_ms);
    GET("idle_ms", 0, 60000, g->idle_ms);
    GET("max_after_ms", 0, 60000, g->max_after_ms);
    GET("max_down_ms", 10, 60000, g->max_down_ms);
    GET("recovery_ms", 1, MAX_SCENARIO_MS, g->recovery_ms);
    GET("shrink_runs", 0, 10000, g->shrink_runs);
    GET("shrink_ms", 0, MAX_SCENARIO_MS, g->shrink_ms);
    GET("max_failures", 1, MAX_SCHEDULES, g->max_failures);
#undef GET
    if ((it = ITEM(v, "faults")) != NULL) {
        harness__path_key(p, sizeof p, path, "faults");
        if (parse_weights(jr, it, p, HARNESS_FAULT_COUNT, fault_name_of, g->fault_weight) < 0)
            return -1;
    }
    if ((it = ITEM(v, "ops")) != NULL) {
        harness__path_key(p, sizeof p, path, "ops");
        if (parse_weights(jr, it, p, HARNESS_OP_COUNT, op_name_of, g->op_weight) < 0)
            return -1;
    }
    for (unsigned k = 0; k < HARNESS_OP_COUNT; k++)
        total += g->op_weight[k];
    if (total == 0) {
        harness__path_key(p, sizeof p, path, "ops");
        harness__fail(jr, p, "at least one operation needs a weight above 0");
        return -1;
    }
    if ((it = ITEM(v, "expect")) != NULL) {
        harness__path_key(p, sizeof p, path, "expect");
        memset(&check, 0, sizeof check);
        if (parse_expect(jr, it, p, expect_top, &check) < 0) {
            expect_clear(&check);
            return -1;
        }
        if (check.journal.set)
            sc->needs_admin = true;
        expect_clear(&check);
        if ((g->expect = print_json(jr, it, p)) == NULL)
            return -1;
    }
    return 0;
}

static int parse_soak(struct harness__jr *jr, const cJSON *v, struct harness_scenario *sc)
{
    static const char *const keys[] = {
        "duration_ms",       "sample_ms",    "warmup_ms", "rss_tolerance_kib",
        "rss_tolerance_pct", "fd_tolerance", NULL
    };
    const char *path = "$.soak";
    struct harness_soak *k;
    char p[HARNESS__PATH_CAP];
    uint64_t u;

    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, keys) < 0)
        return -1;
    if ((k = sc->soak = calloc(1, sizeof *k)) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    harness__path_key(p, sizeof p, path, "duration_ms");
    if (ITEM(v, "duration_ms") == NULL) {
        harness__fail(jr, p, "required (how long the load runs)");
        return -1;
    }
    if (get_uint(jr, v, path, "duration_ms", 1000, MAX_SCENARIO_MS, &k->duration_ms) < 0)
        return -1;
    k->sample_ms = 500;
    k->warmup_ms = k->duration_ms / 5;
    k->rss_tolerance_kib = 2048;
    k->rss_tolerance_pct = 5;
    k->fd_tolerance = 2;
    if (get_uint(jr, v, path, "sample_ms", 10, 60000, &k->sample_ms) < 0 ||
        get_uint(jr, v, path, "warmup_ms", 0, MAX_SCENARIO_MS, &k->warmup_ms) < 0 ||
        get_uint(jr, v, path, "rss_tolerance_kib", 0, 1u << 30, &k->rss_tolerance_kib) < 0)
        return -1;
    u = k->rss_tolerance_pct;
    if (get_uint(jr, v, path, "rss_tolerance_pct", 0, 1000, &u) < 0)
        return -1;
    k->rss_tolerance_pct = (unsigned)u;
    u = k->fd_tolerance;
    if (get_uint(jr, v, path, "fd_tolerance", 0, 100000, &u) < 0)
        return -1;
    k->fd_tolerance = (unsigned)u;
    if (k->warmup_ms >= k->duration_ms) {
        harness__path_key(p, sizeof p, path, "warmup_ms");
        harness__fail(jr, p, "must be shorter than duration_ms");
        return -1;
    }
    if ((k->duration_ms - k->warmup_ms) / k->sample_ms < 6) {
        harness__path_key(p, sizeof p, path, "sample_ms");
        harness__fail(jr, p, "too few samples after the warm-up (at least 6: shorten sample_ms)");
        return -1;
    }
    return 0;
}

/* "client": {"command": "...", "timeout_ms": N, "stop": "signal" | "exit"}. The steps'
 * timeouts are added to timeout_ms's default once they are known. */
static int parse_client(struct harness__jr *jr, const cJSON *v, const cJSON *doc,
                        struct harness_scenario *sc)
{
    static const char *const keys[] = { "command", "timeout_ms", "stop", NULL };
    static const char *const excluded[] = { "core", "generate", "soak", "measure_step", NULL };
    const char *path = "$.client", *s;
    struct harness_client *c;
    const cJSON *it;
    char p[HARNESS__PATH_CAP];

    for (unsigned i = 0; excluded[i] != NULL; i++) {
        if (ITEM(doc, excluded[i]) != NULL) {
            harness__path_key(p, sizeof p, "$", excluded[i]);
            harness__fail(jr, p, "not with \"client\" (the client is judged, not the core)");
            return -1;
        }
    }
    if (harness__object(jr, v, path) < 0 || harness__keys(jr, v, path, keys) < 0)
        return -1;
    if ((c = sc->client = calloc(1, sizeof *c)) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    if ((it = ITEM(v, "command")) == NULL) {
        harness__fail(jr, "$.client.command",
                      "required (e.g. \"python3 app_check.py --port "
                      "{port}\")");
        return -1;
    }
    if (harness__string(jr, it, "$.client.command", MAX_TEXT, &s) < 0)
        return -1;
    if (s[strspn(s, " \t")] == '\0') {
        harness__fail(jr, "$.client.command", "must not be empty");
        return -1;
    }
    if ((c->command = harness__strdup(s)) == NULL) {
        harness__fail(jr, path, "out of memory");
        return -1;
    }
    if ((it = ITEM(v, "stop")) != NULL) {
        if (harness__string(jr, it, "$.client.stop", 16, &s) < 0)
            return -1;
        if (strcmp(s, "exit") != 0 && strcmp(s, "signal") != 0) {
            harness__fail(jr, "$.client.stop",
                          "\"signal\" (SIGTERM after the last step) or \"exit\" (it ends by "
                          "itself), not \"%s\"",
                          s);
            return -1;
        }
        c->stops_by_itself = strcmp(s, "exit") == 0;
    }
    return get_uint(jr, v, path, "timeout_ms", 100, MAX_SCENARIO_MS, &c->timeout_ms);
}

static struct harness_scenario *build(struct harness__jr *jr, const cJSON *doc)
{
    static const char *const top_keys[] = {
        "name",  "levels", "description",  "timeout_ms",      "seed",     "core", "gateway",
        "steps", "expect", "measure_step", "gateway_process", "generate", "soak", "client",
        NULL
    };
    struct harness_scenario *sc;
    const cJSON *it;
    unsigned i = 0, n;
    uint64_t total = 0, u;
    const char *s;

    if (harness__object(jr, doc, "$") < 0 || harness__keys(jr, doc, "$", top_keys) < 0)
        return NULL;
    if ((sc = calloc(1, sizeof *sc)) == NULL) {
        harness__fail(jr, NULL, "out of memory");
        return NULL;
    }
    sc->measure_step = -1;
    ibcore_pool_config_init(&sc->core);
    ibcore_breaker_config_init(&sc->breaker);
    if ((it = ITEM(doc, "name")) == NULL) {
        harness__fail(jr, "$.name", "required");
        goto fail;
    }
    if (parse_name(jr, it, sc) < 0)
        goto fail;
    if ((it = ITEM(doc, "levels")) == NULL) {
        harness__fail(jr, "$.levels", "required (e.g. [\"basic\"])");
        goto fail;
    }
    if (parse_levels(jr, it, sc) < 0)
        goto fail;
    s = "";
    if ((it = ITEM(doc, "description")) != NULL &&
        harness__string(jr, it, "$.description", MAX_TEXT, &s) < 0)
        goto fail;
    sc->description = harness__strdup(s);
    if ((it = ITEM(doc, "seed")) != NULL) {
        if (harness__uint(jr, it, "$.seed", (uint64_t)SEED_MAX, &sc->seed) < 0)
            goto fail;
        sc->has_seed = true;
    }
    if ((it = ITEM(doc, "client")) != NULL && parse_client(jr, it, doc, sc) < 0)
        goto fail;
    if ((it = ITEM(doc, "core")) != NULL && parse_core(jr, sc, it, "$.core") < 0)
        goto fail;
    if ((it = ITEM(doc, "gateway")) != NULL && parse_gateway_script(jr, it, sc) < 0)
        goto fail;
    if ((it = ITEM(doc, "gateway")) != NULL &&
        (sc->gateway_json = print_json(jr, it, "$.gateway")) == NULL)
        goto fail;
    if ((it = ITEM(doc, "gateway_process")) != NULL &&
        harness__bool(jr, it, "$.gateway_process", &sc->gateway_process) < 0)
        goto fail;
    if ((it = ITEM(doc, "generate")) != NULL) {
        if (ITEM(doc, "steps") != NULL) {
            harness__fail(jr, "$.steps",
                          "a scenario with \"generate\" has no steps (each schedule's are drawn)");
            goto fail;
        }
        if (ITEM(doc, "soak") != NULL) {
            harness__fail(jr, "$.soak", "\"generate\" and \"soak\" exclude each other");
            goto fail;
        }
        if (ITEM(doc, "measure_step") != NULL) {
            harness__fail(jr, "$.measure_step", "not with \"generate\"");
            goto fail;
        }
        if (parse_generate(jr, it, sc) < 0)
            goto fail;
        if ((it = ITEM(doc, "core")) != NULL &&
            (sc->core_json = print_json(jr, it, "$.core")) == NULL)
            goto fail;
        sc->needs_admin = true; /* every schedule's faults go through the admin API */
        total = MAX_SCENARIO_MS;
    } else {
        if ((it = ITEM(doc, "steps")) == NULL) {
            harness__fail(jr, "$.steps", "required (at least one step)");
            goto fail;
        }
        if (harness__array(jr, it, "$.steps", MAX_STEPS, &n) < 0)
            goto fail;
        if (n == 0) {
            harness__fail(jr, "$.steps", "must not be empty");
            goto fail;
        }
        if ((sc->steps = calloc(n, sizeof *sc->steps)) == NULL) {
            harness__fail(jr, "$.steps", "out of memory");
            goto fail;
        }
        sc->n_steps = n;
        for (const cJSON *step = it->child; step != NULL; step = step->next, i++) {
            if (parse_step(jr, sc, step, i, &sc->steps[i]) < 0)
                goto fail;
            total = sat_add(total, sc->steps[i].timeout_ms);
        }
    }
    if ((it = ITEM(doc, "soak")) != NULL) {
        if (parse_soak(jr, it, sc) < 0)
            goto fail;
        total = sat_add(total, sc->soak->duration_ms);
    }
    if ((it = ITEM(doc, "expect")) != NULL) {
        if (parse_expect(jr, it, "$.expect", sc->client != NULL ? expect_client_top : expect_top,
                         &sc->expect) < 0)
            goto fail;
        if (sc->expect.journal.set)
            sc->needs_admin = true;
    }
    if (sc->client != NULL) {
        sc->needs_admin = true; /* the client is judged from the journal */
        if (!sc->expect.client.set)
            sc->expect.client.exit_code = 0;
        if (sc->client->timeout_ms == 0) /* the steps, then 10 s to stop */
            sc->client->timeout_ms = sat_add(total, 10000);
        total = sat_add(total, sc->client->timeout_ms);
    }
    if ((it = ITEM(doc, "measure_step")) != NULL) {
        if (harness__uint(jr, it, "$.measure_step", MAX_STEPS, &u) < 0)
            goto fail;
        if (u >= sc->n_steps) {
            harness__fail(jr, "$.measure_step", "no step %llu (the scenario has %u)",
                          (unsigned long long)u, sc->n_steps);
            goto fail;
        }
        sc->measure_step = (int)u;
    }
    sc->timeout_ms = sat_add(total, 5000);
    if (sc->timeout_ms > MAX_SCENARIO_MS)
        sc->timeout_ms = MAX_SCENARIO_MS;
    if ((it = ITEM(doc, "timeout_ms")) != NULL &&
        harness__uint(jr, it, "$.timeout_ms", MAX_SCENARIO_MS, &sc->timeout_ms) < 0)
        goto fail;
    if (sc->name == NULL || sc->description == NULL) {
        harness__fail(jr, NULL, "out of memory");
        goto fail;
    }
    return sc;

fail:
    harness_scenario_free(sc);
    return NULL;
}

/* True when p[0..n) is only JSON white space. */
static bool only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

struct harness_scenario *harness_scenario_parse(const char *json, size_t len, const char *name,
                                                struct harness_err *err)
{
    struct harness__jr jr = { name, err };
    struct harness_scenario *sc;
    const char *end = NULL;
    cJSON *doc;

    err->msg[0] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (json[i] == '\0') {
            unsigned line, col;

            harness__line_col(json, i, &line, &col);
            harness__fail(&jr, NULL, "NUL byte at line %u, column %u", line, col);
            return NULL;
        }
    }
    doc = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (doc == NULL) {
        unsigned line, col;
        size_t off = end != NULL && end >= json && end <= json + len ? (size_t)(end - json) : 0;

        if (off == 0) {
            const char *e = cJSON_GetErrorPtr();

            if (e != NULL && e >= json && e <= json + len)
                off = (size_t)(e - json);
        }
        harness__line_col(json, off, &line, &col);
        if (only_space(json, len))
            harness__fail(&jr, NULL, "empty file, expected a JSON object");
        else
            harness__fail(&jr, NULL, "invalid JSON at line %u, column %u", line, col);
        return NULL;
    }
    if (end != NULL && end >= json && end <= json + len &&
        !only_space(end, len - (size_t)(end - json))) {
        unsigned line, col;

        harness__line_col(json, (size_t)(end - json), &line, &col);
        harness__fail(&jr, NULL, "invalid JSON at line %u, column %u: text after the document",
                      line, col);
        cJSON_Delete(doc);
        return NULL;
    }
    sc = build(&jr, doc);
    cJSON_Delete(doc);
    if (sc != NULL && (sc->path = harness__strdup(name != NULL ? name : "<scenario>")) == NULL) {
        harness_scenario_free(sc);
        harness__fail(&jr, NULL, "out of memory");
        return NULL;
    }
    return sc;
}

struct harness_scenario *harness_scenario_load(const char *path, struct harness_err *err)
{
    struct harness__jr jr = { path, err };
    struct harness_scenario *sc;
    struct stat sb;
    size_t len = 0;
    char *buf;
    FILE *f;

    err->msg[0] = '\0';
    if ((f = fopen(path, "rb")) == NULL) {
        harness__fail(&jr, NULL, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        harness__fail(&jr, NULL, "is a directory");
        return NULL;
    }
    if ((buf = malloc(MAX_FILE + 1)) == NULL) {
        fclose(f);
        harness__fail(&jr, NULL, "out of memory");
        return NULL;
    }
    len = fread(buf, 1, MAX_FILE + 1, f);
    if (ferror(f)) {
        harness__fail(&jr, NULL, "read error: %s", strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    if (len > MAX_FILE) {
        harness__fail(&jr, NULL, "file is larger than %u MiB", MAX_FILE >> 20);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    sc = harness_scenario_parse(buf, len, path, err);
    free(buf);
    return sc;
}

static void expect_clear(struct harness_expect *e)
{
    free(e->client_ids);
    free(e->journal.client_ids);
    for (unsigned i = 0; i < e->journal.n_events; i++)
        free(e->journal.events[i].name);
    free(e->journal.events);
    for (unsigned i = 0; i < e->n_fields; i++) {
        free(e->fields[i].path);
        cJSON_Delete(e->fields[i].value);
    }
    free(e->fields);
    for (unsigned i = 0; i < e->n_transitions; i++)
        free(e->transitions[i]);
    free(e->transitions);
    for (unsigned i = 0; i < e->n_telemetry; i++)
        free(e->telemetry[i].name);
    free(e->telemetry);
    for (unsigned i = 0; i < e->client.n_output; i++)
        free(e->client.output[i]);
    free(e->client.output);
}

void harness_scenario_free(struct harness_scenario *sc)
{
    if (sc == NULL)
        return;
    if (sc->generate != NULL)
        free(sc->generate->expect);
    free(sc->generate);
    free(sc->soak);
    if (sc->client != NULL)
        free(sc->client->command);
    free(sc->client);
    free(sc->core_json);
    free(sc->gateway_json);
    for (unsigned i = 0; i < sc->n_steps; i++) {
        free(sc->steps[i].method);
        free(sc->steps[i].target);
        free(sc->steps[i].body);
        expect_clear(&sc->steps[i].expect);
    }
    free(sc->steps);
    expect_clear(&sc->expect);
    for (unsigned i = 0; i < sc->n_strings; i++)
        free(sc->strings[i]);
    mgw_script_free(sc->script);
    free(sc->path);
    free(sc->name);
    free(sc->description);
    free(sc);
}

enum harness_level harness_scenario_level(const struct harness_scenario *sc)
{
    for (int l = 0; l < HARNESS_LEVEL_COUNT; l++)
        if (sc->levels & (1u << l))
            return (enum harness_level)l;
    return HARNESS_LEVEL_EXHAUSTIVE;
}
