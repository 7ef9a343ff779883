/* Circuit breaker per gateway endpoint: consecutive-failure trip, one half-open probe with a
 * lease the breaker expires itself (resilience4j #903, Polly #1979), growing open periods with
 * jitter, maintenance states, and one JSON event per transition.
 *
 * Events are formatted when the state changes and queued; the queue is delivered at the end of
 * every entry point, so the callback always sees a fully updated breaker and may call back in.
 * What it triggers is queued behind the events already pending, which keeps the order of the
 * events the order of the transitions. */
#include "ibcore.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "internal.h"

struct event {
    struct event *next;
    enum ibcore_log_level level;
    char json[];
};

struct ibcore_breakers {
    uv_loop_t *loop;
    struct ibcore_breaker_config cfg;
    ibcore_telemetry_cb telemetry;
    void *telemetry_data;
    struct ibcore_breaker *head;
    struct event *ev_head; /* formatted, not yet delivered */
    struct event *ev_tail;
    bool delivering;
    bool closing;
    unsigned open_handles; /* lease timers + the idle handle, while closing */
    uv_idle_t idle;        /* closed by ibcore_breakers_close: defers cb when nothing else is */
    void (*close_cb)(void *data);
    void *close_data;
};

struct ibcore_breaker {
    struct ibcore_breakers *reg;
    struct ibcore_breaker *next;
    uv_timer_t lease; /* the half-open probe's lease; unref'd */
    enum ibcore_breaker_state state;
    unsigned failures;      /* consecutive */
    unsigned opens;         /* open periods since the last close: the growth exponent */
    uint64_t open_until;    /* uv_now() from which OPEN hands out the probe */
    uint64_t probe_token;   /* the live lease while HALF_OPEN; 0 = none */
    uint64_t last_token;    /* tokens are never reused, so a late report cannot match */
    uint64_t not_permitted; /* rejected acquires, for telemetry */
    uint64_t rng;           /* open-period jitter */
    int port;
    char *endpoint_json; /* "host:port" ("[v6]:port"), JSON-escaped, no quotes */
    char host[];
};

static const char *const state_names[] = {
    [IBCORE_BREAKER_CLOSED] = "closed",       [IBCORE_BREAKER_OPEN] = "open",
    [IBCORE_BREAKER_HALF_OPEN] = "half_open", [IBCORE_BREAKER_FORCED_OPEN] = "forced_open",
    [IBCORE_BREAKER_DISABLED] = "disabled",
};

const char *ibcore_breaker_state_name(enum ibcore_breaker_state s)
{
    if ((unsigned)s < sizeof state_names / sizeof state_names[0])
        return state_names[s];
    return "unknown";
}

void ibcore_breaker_config_init(struct ibcore_breaker_config *cfg)
{
    if (cfg == NULL)
        return;
    cfg->failure_threshold = 5;
    cfg->open_ms = 60000;
    cfg->max_open_ms = 0;
    cfg->lease_ms = 35000;
    cfg->seed = 0;
}

/* ---- telemetry ----------------------------------------------------------------------------- */

static void wall_now(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL ||
        (n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
        snprintf(buf, cap, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(buf + n, cap - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* Formats one event ({"metric":"breaker","event":name,"endpoint":..., fields...,"mono_ms":...,
 * "wall":...}) and queues it; flush() delivers it to the callback and to the log at level.
 * fields starts with a comma or is empty. When neither wants it, or once closing, nothing is
 * formatted. An event that cannot be allocated is lost. */
static void post(struct ibcore_breaker *b, enum ibcore_log_level level, const char *name,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void post(struct ibcore_breaker *b, enum ibcore_log_level level, const char *name,
                 const char *fmt, ...)
{
    static const char outer[] = "{\"metric\":\"breaker\",\"event\":\"%s\",\"endpoint\":\"%s\"%s,"
                                "\"mono_ms\":%llu,\"wall\":\"%s\"}";
    struct ibcore_breakers *r = b->reg;
    unsigned long long mono;
    char fields[256], wall[40], json[512];
    struct event *ev;
    va_list ap;
    bool ok;
    int n;

    if ((r->telemetry == NULL && !ibcore__log_wants(level)) || r->closing)
        return;
    va_start(ap, fmt);
    ok = ibcore__vfields(fields, sizeof fields, fmt, ap);
    va_end(ap);
    if (!ok)
        return;
    mono = (unsigned long long)uv_now(r->loop);
    wall_now(wall, sizeof wall);
    n = snprintf(json, sizeof json, outer, name, b->endpoint_json, fields, mono, wall);
    if (n < 0)
        return;
    ev = malloc(sizeof *ev + (size_t)n + 1);
    if (ev == NULL)
        return;
    if ((size_t)n < sizeof json) /* the usual case; a long host name needs the second pass */
        memcpy(ev->json, json, (size_t)n + 1);
    else
        snprintf(ev->json, (size_t)n + 1, outer, name, b->endpoint_json, fields, mono, wall);
    ev->level = level;
    ev->next = NULL;
    if (r->ev_tail != NULL)
        r->ev_tail->next = ev;
    else
        r->ev_head = ev;
    r->ev_tail = ev;
}

/* Delivers the queue unless an outer frame is already doing it (then it will). After close, the
 * rest is dropped: the caller may free the telemetry data once close has returned. */
static void flush(struct ibcore_breakers *r)
{
    struct event *ev;

    if (r->delivering)
        return;
    r->delivering = true;
    while ((ev = r->ev_head) != NULL) {
        r->ev_head = ev->next;
        if (r->ev_head == NULL)
            r->ev_tail = NULL;
        if (!r->closing && r->telemetry != NULL)
            r->telemetry(ev->json, r->telemetry_data);
        if (!r->closing)
            ibcore__log(ev->level, ev->json);
        free(ev);
    }
    r->delivering = false;
}

/* ---- state machine ------------------------------------------------------------------------- */

static void set_state(struct ibcore_breaker *b, enum ibcore_breaker_state to, uint64_t open_ms)
{
    enum ibcore_breaker_state from = b->state;

    b->state = to;
    if (to == IBCORE_BREAKER_OPEN) {
        post(b, IBCORE_LOG_WARN, "transition",
             ",\"from\":\"%s\",\"to\":\"%s\",\"consecutive_failures\":%u,\"open_ms\":%llu",
             ibcore_breaker_state_name(from), ibcore_breaker_state_name(to), b->failures,
             (unsigned long long)open_ms);
    } else {
        post(b, to == IBCORE_BREAKER_FORCED_OPEN ? IBCORE_LOG_WARN : IBCORE_LOG_INFO, "transition",
             ",\"from\":\"%s\",\"to\":\"%s\",\"consecutive_failures\":%u",
             ibcore_breaker_state_name(from), ibcore_breaker_state_name(to), b->failures);
    }
}

/* The first period is open_ms. Each further one without a close in between draws from
 * [open_ms, min(max_open_ms, open_ms * 2^k)]: full jitter above a floor of open_ms, so the
 * ceiling doubles while a rejoining crowd still spreads out, and it never gets shorter. */
static uint64_t next_open_period(struct ibcore_breaker *b)
{
    const struct ibcore_breaker_config *cfg = &b->reg->cfg;
    unsigned k = b->opens;
    uint64_t ceiling;

    if (b->opens < UINT_MAX)
        b->opens++;
    if (k == 0 || cfg->max_open_ms <= cfg->open_ms)
        return cfg->open_ms;
    ceiling = ibcore__exp_cap(cfg->open_ms, cfg->max_open_ms, k);
    return cfg->open_ms + ibcore__rand_upto(&b->rng, ceiling - cfg->open_ms);
}

static void cancel_lease(struct ibcore_breaker *b)
{
    b->probe_token = 0;
    uv_timer_stop(&b->lease);
}

static void count_failure(struct ibcore_breaker *b)
{
    if (b->failures < UINT_MAX)
        b->failures++;
}

static void trip(struct ibcore_breaker *b)
{
    uint64_t period = next_open_period(b);
    uint64_t now = uv_now(b->reg->loop);

    b->open_until = period > UINT64_MAX - now ? UINT64_MAX : now + period;
    set_state(b, IBCORE_BREAKER_OPEN, period);
}

static void on_lease_expired(uv_timer_t *t)
{
    struct ibcore_breaker *b = t->data;
    uint64_t token = b->probe_token;

    if (b->state != IBCORE_BREAKER_HALF_OPEN || token == 0 || b->reg->closing)
        return;
    b->probe_token = 0; /* the probe's report, when it comes, no longer matches */
    count_failure(b);
    post(b, IBCORE_LOG_WARN, "lease_expired",
         ",\"token\":%llu,\"lease_ms\":%llu,\"consecutive_failures\":%u", (unsigned long long)token,
         (unsigned long long)b->reg->cfg.lease_ms, b->failures);
    trip(b);
    flush(b->reg);
}

int ibcore_breaker_acquire(struct ibcore_breaker *b, struct ibcore_permit *p)
{
    struct ibcore_breakers *r;

    if (b == NULL || p == NULL)
        return UV_EINVAL;
    r = b->reg;
    p->breaker = NULL;
    p->token = 0;
    if (r->closing)
        return IBCORE_ESHUTDOWN;
    switch (b->state) {
    case IBCORE_BREAKER_CLOSED:
    case IBCORE_BREAKER_DISABLED:
        p->breaker = b;
        return 0;
    case IBCORE_BREAKER_OPEN:
        if (uv_now(r->loop) < b->open_until)
            break;
        b->probe_token = ++b->last_token;
        uv_timer_start(&b->lease, on_lease_expired, r->cfg.lease_ms, 0);
        set_state(b, IBCORE_BREAKER_HALF_OPEN, 0);
        p->breaker = b;
        p->token = b->probe_token;
        flush(r);
        return 0;
    case IBCORE_BREAKER_HALF_OPEN:
    case IBCORE_BREAKER_FORCED_OPEN:
        break;
    }
    b->not_permitted++;
    if (b->state == IBCORE_BREAKER_OPEN) {
        post(b, IBCORE_LOG_DEBUG, "call_not_permitted",
             ",\"state\":\"open\",\"retry_in_ms\":%llu,\"not_permitted\":%llu",
             (unsigned long long)ibcore_breaker_retry_in_ms(b),
             (unsigned long long)b->not_permitted);
    } else {
        post(b, IBCORE_LOG_DEBUG, "call_not_permitted", ",\"state\":\"%s\",\"not_permitted\":%llu",
             ibcore_breaker_state_name(b->state), (unsigned long long)b->not_permitted);
    }
    flush(r);
    return IBCORE_EBREAKER;
}

/* A permit from CLOSED or DISABLED (token 0) counts while the breaker is CLOSED or DISABLED. One
 * reported while OPEN, HALF_OPEN or FORCED_OPEN was handed out before the trip: it neither
 * extends the break nor closes it (Polly: outcomes arriving while open do not re-signal). */
void ibcore_breaker_report(struct ibcore_permit *p, bool success)
{
    struct ibcore_breaker *b;

    if (p == NULL || (b = p->breaker) == NULL)
        return;
    p->breaker = NULL; /* a second report of the same permit is a no-op */
    if (b->reg->closing)
        return;
    if (p->token != 0) {
        if (b->state != IBCORE_BREAKER_HALF_OPEN || p->token != b->probe_token)
            return; /* the lease expired (or maintenance cancelled it): too late */
        cancel_lease(b);
        if (success) {
            b->failures = 0;
            b->opens = 0;
            set_state(b, IBCORE_BREAKER_CLOSED, 0);
        } else {
            count_failure(b);
            trip(b);
        }
    } else if (b->state == IBCORE_BREAKER_CLOSED || b->state == IBCORE_BREAKER_DISABLED) {
        unsigned threshold = b->reg->cfg.failure_threshold;

        if (success) {
            b->failures = 0;
        } else {
            count_failure(b);
            if (b->state == IBCORE_BREAKER_CLOSED && b->failures >= threshold) {
                trip(b);
            } else if (b->state == IBCORE_BREAKER_DISABLED && b->failures == threshold) {
                /* What would have tripped it: once per run of failures. */
                post(b, IBCORE_LOG_WARN, "threshold_exceeded",
                     ",\"state\":\"disabled\",\"consecutive_failures\":%u", b->failures);
            }
        }
    }
    flush(b->reg);
}

enum ibcore_breaker_state ibcore_breaker_state(const struct ibcore_breaker *b)
{
    return b != NULL ? b->state : IBCORE_BREAKER_CLOSED;
}

unsigned ibcore_breaker_failures(const struct ibcore_breaker *b)
{
    return b != NULL ? b->failures : 0;
}

/* Every maintenance call cancels a live probe lease: its late report is then ignored. A call
 * that changes nothing emits nothing. */
void ibcore_breaker_force_open(struct ibcore_breaker *b)
{
    if (b == NULL || b->reg->closing || b->state == IBCORE_BREAKER_FORCED_OPEN)
        return;
    cancel_lease(b);
    set_state(b, IBCORE_BREAKER_FORCED_OPEN, 0);
    flush(b->reg);
}

void ibcore_breaker_disable(struct ibcore_breaker *b)
{
    if (b == NULL || b->reg->closing || b->state == IBCORE_BREAKER_DISABLED)
        return;
    cancel_lease(b);
    b->failures = 0; /* counting starts afresh, so threshold_exceeded means this window */
    set_state(b, IBCORE_BREAKER_DISABLED, 0);
    flush(b->reg);
}

void ibcore_breaker_reset(struct ibcore_breaker *b)
{
    if (b == NULL || b->reg->closing)
        return;
    cancel_lease(b);
    b->failures = 0;
    b->opens = 0;
    if (b->state != IBCORE_BREAKER_CLOSED)
        set_state(b, IBCORE_BREAKER_CLOSED, 0);
    flush(b->reg);
}

/* FORCED_OPEN never lets a probe through on its own: UINT64_MAX (add it to a time saturating). */
uint64_t ibcore_breaker_retry_in_ms(const struct ibcore_breaker *b)
{
    uint64_t now;

    if (b == NULL)
        return 0;
    if (b->state == IBCORE_BREAKER_FORCED_OPEN)
        return UINT64_MAX;
    if (b->state != IBCORE_BREAKER_OPEN)
        return 0;
    now = uv_now(b->reg->loop);
    return b->open_until > now ? b->open_until - now : 0;
}

/* ---- registry ------------------------------------------------------------------------------ */

/* Config errors (no threshold, no lease) give NULL, like out of memory. */
struct ibcore_breakers *ibcore_breakers_new(uv_loop_t *loop,
                                            const struct ibcore_breaker_config *cfg,
                                            ibcore_telemetry_cb cb, void *data)
{
    struct ibcore_breakers *r;

    if (loop == NULL)
        return NULL;
    if (cfg != NULL && (cfg->failure_threshold == 0 || cfg->lease_ms == 0))
        return NULL;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->loop = loop;
    if (cfg != NULL)
        r->cfg = *cfg;
    else
        ibcore_breaker_config_init(&r->cfg);
    r->telemetry = cb;
    r->telemetry_data = data;
    return r;
}

/* Writes s JSON-escaped (no quotes) into dst, which holds at least 6 * strlen(s) + 1 bytes. */
static char *json_escape(char *dst, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            *dst++ = '\\';
            *dst++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];
        } else {
            *dst++ = (char)c;
        }
    }
    *dst = '\0';
    return dst;
}

static uint64_t fnv1a(const char *s, int port)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
    return (h ^ (uint64_t)(unsigned)port) * UINT64_C(0x100000001b3);
}

static struct ibcore_breaker *breaker_new(struct ibcore_breakers *r, const char *host, int port)
{
    size_t len = strlen(host);
    bool v6 = strchr(host, ':') != NULL; /* "[::1]:4002", so the port stays unambiguous */
    struct ibcore_breaker *b;
    char *end;

    if (len > (SIZE_MAX - sizeof *b - 64) / 8)
        return NULL;
    /* host, NUL, then the escaped endpoint: [ + 6 per byte + ]: + an int + NUL. */
    b = calloc(1, sizeof *b + len + 1 + 6 * len + 3 + 12 + 1);
    if (b == NULL)
        return NULL;
    b->reg = r;
    b->port = port;
    b->state = IBCORE_BREAKER_CLOSED;
    b->rng = r->cfg.seed ^ fnv1a(host, port); /* endpoints jitter apart, reproducibly */
    memcpy(b->host, host, len + 1);
    b->endpoint_json = b->host + len + 1;
    end = b->endpoint_json;
    if (v6)
        *end++ = '[';
    end = json_escape(end, host);
    if (v6)
        *end++ = ']';
    snprintf(end, 14, ":%d", port);
    uv_timer_init(r->loop, &b->lease);
    b->lease.data = b;
    uv_unref((uv_handle_t *)&b->lease); /* bookkeeping only: never keeps the loop alive */
    return b;
}

struct ibcore_breaker *ibcore_breakers_get(struct ibcore_breakers *r, const char *host, int port)
{
    struct ibcore_breaker *b;

    if (r == NULL || host == NULL || r->closing)
        return NULL;
    for (b = r->head; b != NULL; b = b->next)
        if (b->port == port && strcmp(b->host, host) == 0)
            return b;
    b = breaker_new(r, host, port);
    if (b == NULL)
        return NULL;
    b->next = r->head;
    r->head = b;
    return b;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct ibcore_breakers *r;
    struct ibcore_breaker *b;
    struct event *ev;
    void (*cb)(void *data);
    void *data;

    if (h->type == UV_IDLE)
        r = h->data;
    else
        r = ((struct ibcore_breaker *)h->data)->reg;
    if (--r->open_handles != 0)
        return;
    while ((b = r->head) != NULL) {
        r->head = b->next;
        free(b);
    }
    while ((ev = r->ev_head) != NULL) {
        r->ev_head = ev->next;
        free(ev);
    }
    cb = r->close_cb;
    data = r->close_data;
    free(r);
    if (cb != NULL)
        cb(data);
}

void ibcore_breakers_close(struct ibcore_breakers *r, void (*cb)(void *data), void *data)
{
    struct ibcore_breaker *b;

    if (r == NULL || r->closing)
        return;
    r->closing = true;
    r->close_cb = cb;
    r->close_data = data;
    /* The idle handle is never started: closing it only guarantees one close callback, so cb
     * runs from the loop even when there is no breaker. */
    uv_idle_init(r->loop, &r->idle);
    r->idle.data = r;
    r->open_handles = 1;
    for (b = r->head; b != NULL; b = b->next) {
        cancel_lease(b);
        r->open_handles++;
        uv_close((uv_handle_t *)&b->lease, on_handle_closed);
    }
    uv_close((uv_handle_t *)&r->idle, on_handle_closed);
}
