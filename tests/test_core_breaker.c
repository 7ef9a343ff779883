/* The circuit breaker on a real loop: trip, open, one half-open probe, its lease, growth,
 * maintenance states, telemetry (order, keys, reentrancy), the registry and its close, and a
 * random-sequence comparison against a small reference model. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <uv.h>

#include "ibcore.h"

#include "loop_util.h"

#define EV_RING 256

struct ev {
    char event[32];
    char from[16];
    char to[16];
    char state[16];
    char endpoint[1100];
    long long failures; /* -1 when absent */
    long long open_ms;  /* -1 when absent */
    long long token;    /* -1 when absent */
    uint64_t mono_ms;
};

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog; /* unref'd: fires only if a test would hang */
    uv_timer_t tick;     /* advance(): a ref'd timer the loop runs until */
    bool hung;
    bool ticked;
    struct ibcore_breaker_config cfg;
    struct ibcore_breakers *reg;
    bool reg_closed;
    int closed_calls;
    struct ev ring[EV_RING];
    size_t n_events;
    size_t n_transitions;
    size_t n_not_permitted;
    size_t n_lease_expired;
    uint64_t last_mono;
    /* Reentrancy tests: called from inside the telemetry callback. */
    void (*hook)(struct fixture *fx, const struct ev *e);
};

static void on_tick(uv_timer_t *t)
{
    struct fixture *fx = t->data;

    fx->ticked = true;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    loop_fixture_init(fx, 30000);
    uv_timer_init(&fx->loop, &fx->tick);
    fx->tick.data = fx;
    ibcore_breaker_config_init(&fx->cfg);
    fx->cfg.failure_threshold = 3;
    fx->cfg.open_ms = 30;
    fx->cfg.lease_ms = 50;
    fx->cfg.seed = 1;
    *state = fx;
    return 0;
}

static void on_reg_closed(void *data)
{
    struct fixture *fx = data;

    fx->closed_calls++;
}

static void on_count(void *data)
{
    (*(int *)data)++;
}

static void close_reg(struct fixture *fx)
{
    if (fx->reg == NULL || fx->reg_closed)
        return;
    fx->reg_closed = true;
    ibcore_breakers_close(fx->reg, on_reg_closed, fx);
    assert_int_equal(fx->closed_calls, 0); /* never before close returns */
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    assert_false(fx->hung);
    close_reg(fx);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    if (fx->reg != NULL)
        assert_int_equal(fx->closed_calls, 1);
    loop_close_all(&fx->loop);
    free(fx);
    return 0;
}

/* ---- telemetry capture: every event is parsed and checked for exactly its keys ------------- */

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static long long num_item(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (it == NULL)
        return -1;
    assert_true(cJSON_IsNumber(it));
    assert_true(it->valuedouble >= 0);
    return (long long)it->valuedouble;
}

static bool key_allowed(const char *event, const char *key)
{
    static const char *const common[] = { "metric", "event", "endpoint", "mono_ms", "wall" };
    static const struct {
        const char *event;
        const char *keys[5];
    } extra[] = {
        { "transition", { "from", "to", "consecutive_failures", "open_ms" } },
        { "call_not_permitted", { "state", "retry_in_ms", "not_permitted" } },
        { "lease_expired", { "token", "lease_ms", "consecutive_failures" } },
        { "threshold_exceeded", { "state", "consecutive_failures" } },
    };

    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        if (strcmp(key, common[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        if (strcmp(event, extra[i].event) != 0)
            continue;
        for (size_t k = 0; k < 5 && extra[i].keys[k] != NULL; k++)
            if (strcmp(key, extra[i].keys[k]) == 0)
                return true;
    }
    return false;
}

static void check_wall(const char *w)
{
    /* 2026-11-25T18:30:00.123Z */
    assert_non_null(w);
    assert_int_equal(strlen(w), 24);
    for (int i = 0; i < 24; i++) {
        char c = w[i];

        switch (i) {
        case 4:
        case 7:
            assert_int_equal(c, '-');
            break;
        case 10:
            assert_int_equal(c, 'T');
            break;
        case 13:
        case 16:
            assert_int_equal(c, ':');
            break;
        case 19:
            assert_int_equal(c, '.');
            break;
        case 23:
            assert_int_equal(c, 'Z');
            break;
        default:
            assert_true(c >= '0' && c <= '9');
        }
    }
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    int n = snprintf(dst, cap, "%s", s != NULL ? s : "");

    assert_true(n >= 0 && (size_t)n < cap);
}

static void on_telemetry(const char *json, void *data)
{
    struct fixture *fx = data;
    cJSON *o = cJSON_Parse(json);
    struct ev *e = &fx->ring[fx->n_events % EV_RING];
    const cJSON *it;

    if (o == NULL)
        fail_msg("telemetry is not JSON: %s", json);
    assert_true(cJSON_IsObject(o));
    memset(e, 0, sizeof *e);
    assert_string_equal(str_item(o, "metric"), "breaker");
    copy_str(e->event, sizeof e->event, str_item(o, "event"));
    assert_non_null(str_item(o, "event"));
    assert_non_null(str_item(o, "endpoint"));
    copy_str(e->endpoint, sizeof e->endpoint, str_item(o, "endpoint"));
    check_wall(str_item(o, "wall"));
    assert_true(num_item(o, "mono_ms") >= 0);
    e->mono_ms = (uint64_t)num_item(o, "mono_ms");
    assert_true(e->mono_ms >= fx->last_mono); /* monotonic timestamps, in order */
    fx->last_mono = e->mono_ms;
    cJSON_ArrayForEach(it, o)
    {
        if (!key_allowed(e->event, it->string))
            fail_msg("unexpected key %s in %s", it->string, json);
    }
    copy_str(e->from, sizeof e->from, str_item(o, "from"));
    copy_str(e->to, sizeof e->to, str_item(o, "to"));
    copy_str(e->state, sizeof e->state, str_item(o, "state"));
    e->failures = num_item(o, "consecutive_failures");
    e->open_ms = num_item(o, "open_ms");
    e->token = num_item(o, "token");
    if (strcmp(e->event, "transition") == 0) {
        fx->n_transitions++;
        assert_true(e->from[0] != '\0' && e->to[0] != '\0');
        assert_string_not_equal(e->from, e->to); /* no event for a no-op */
        assert_true(e->failures >= 0);
        assert_int_equal(e->open_ms >= 0, strcmp(e->to, "open") == 0); /* open_ms when opening */
    } else if (strcmp(e->event, "call_not_permitted") == 0) {
        fx->n_not_permitted++;
        assert_true(num_item(o, "not_permitted") > 0);
        assert_int_equal(num_item(o, "retry_in_ms") >= 0, strcmp(e->state, "open") == 0);
    } else if (strcmp(e->event, "lease_expired") == 0) {
        fx->n_lease_expired++;
        assert_true(e->token > 0);
        assert_true(num_item(o, "lease_ms") > 0);
    } else {
        assert_string_equal(e->event, "threshold_exceeded");
        assert_string_equal(e->state, "disabled");
    }
    cJSON_Delete(o);
    fx->n_events++;
    if (fx->hook != NULL)
        fx->hook(fx, e);
}

static const struct ev *ev_at(const struct fixture *fx, size_t i)
{
    assert_true(i < fx->n_events && fx->n_events - i <= EV_RING);
    return &fx->ring[i % EV_RING];
}

static void assert_transition(const struct fixture *fx, size_t i, const char *from, const char *to)
{
    const struct ev *e = ev_at(fx, i);

    assert_string_equal(e->event, "transition");
    assert_string_equal(e->from, from);
    assert_string_equal(e->to, to);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static struct ibcore_breaker *make(struct fixture *fx)
{
    struct ibcore_breaker *b;

    fx->reg = ibcore_breakers_new(&fx->loop, &fx->cfg, on_telemetry, fx);
    assert_non_null(fx->reg);
    b = ibcore_breakers_get(fx->reg, "127.0.0.1", 4002);
    assert_non_null(b);
    return b;
}

/* Runs the loop until ms have passed on uv_now(). uv_run(UV_RUN_ONCE) ends by updating the time
 * and running due timers, so afterwards every timer due by uv_now() has fired. */
static void advance(struct fixture *fx, uint64_t ms)
{
    fx->ticked = false;
    uv_timer_start(&fx->tick, on_tick, ms, 0);
    while (!fx->ticked && !fx->hung)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_false(fx->hung);
}

static void fail_closed_permit(struct ibcore_breaker *b)
{
    struct ibcore_permit p;

    assert_int_equal(ibcore_breaker_acquire(b, &p), 0);
    assert_ptr_equal(p.breaker, b);
    assert_int_equal(p.token, 0);
    ibcore_breaker_report(&p, false);
}

static void trip(struct ibcore_breaker *b, unsigned threshold)
{
    for (unsigned i = 0; i < threshold; i++)
        fail_closed_permit(b);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
}

/* Waits out the open period and takes the probe. */
static struct ibcore_permit probe(struct fixture *fx, struct ibcore_breaker *b)
{
    struct ibcore_permit p;
    uint64_t wait = ibcore_breaker_retry_in_ms(b);

    if (wait > 0)
        advance(fx, wait);
    assert_int_equal(ibcore_breaker_retry_in_ms(b), 0);
    assert_int_equal(ibcore_breaker_acquire(b, &p), 0);
    assert_ptr_equal(p.breaker, b);
    assert_true(p.token != 0);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_HALF_OPEN);
    return p;
}

/* ---- trip and open ------------------------------------------------------------------------- */

static void breaker_trips_after_exactly_threshold_consecutive_failures(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;

    fail_closed_permit(b);
    fail_closed_permit(b);
    assert_int_equal(ibcore_breaker_failures(b), 2);
    assert_int_equal(ibcore_breaker_acquire(b, &p), 0);
    ibcore_breaker_report(&p, true); /* a success resets the count */
    assert_int_equal(ibcore_breaker_failures(b), 0);
    fail_closed_permit(b);
    fail_closed_permit(b);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_CLOSED);
    assert_int_equal(fx->n_transitions, 0);
    fail_closed_permit(b);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
    assert_int_equal(ibcore_breaker_failures(b), 3);
    assert_int_equal(fx->n_transitions, 1);
    assert_transition(fx, 0, "closed", "open");
    assert_int_equal(ev_at(fx, 0)->failures, 3);
    assert_int_equal(ev_at(fx, 0)->open_ms, 30);
    assert_string_equal(ev_at(fx, 0)->endpoint, "127.0.0.1:4002");
}

static void breaker_open_rejects_without_permit(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;
    uint64_t t0, elapsed;

    trip(b, 3);
    t0 = uv_now(&fx->loop);
    assert_int_equal(ibcore_breaker_retry_in_ms(b), 30);
    for (int i = 0; i < 5; i++) {
        p.breaker = b;
        p.token = 77;
        assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
        assert_null(p.breaker);
        assert_int_equal(p.token, 0);
        ibcore_breaker_report(&p, true); /* a rejected permit reports nothing */
    }
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
    assert_int_equal(fx->n_not_permitted, 5); /* each one emitted */
    assert_string_equal(ev_at(fx, fx->n_events - 1)->state, "open");
    advance(fx, 10);
    elapsed = uv_now(&fx->loop) - t0;
    if (elapsed < 30) { /* a slow host (valgrind) may overshoot the tick */
        assert_int_equal(ibcore_breaker_retry_in_ms(b), 30 - elapsed);
        assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
    }
}

static void breaker_half_open_allows_one_probe(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p, q;

    trip(b, 3);
    p = probe(fx, b);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ibcore_breaker_acquire(b, &q), IBCORE_EBREAKER);
        assert_null(q.breaker);
    }
    assert_string_equal(ev_at(fx, fx->n_events - 1)->state, "half_open");
    assert_int_equal(ibcore_breaker_retry_in_ms(b), 0); /* not open */
    ibcore_breaker_report(&p, true);
}

static void breaker_probe_success_closes(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;

    trip(b, 3);
    p = probe(fx, b);
    ibcore_breaker_report(&p, true);
    assert_null(p.breaker); /* reported: a second report is a no-op */
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_CLOSED);
    assert_int_equal(ibcore_breaker_failures(b), 0);
    assert_int_equal(ibcore_breaker_acquire(b, &p), 0);
    assert_int_equal(p.token, 0);
    ibcore_breaker_report(&p, true);
    /* The lease was stopped: running past it changes nothing. */
    advance(fx, 60);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_CLOSED);
    assert_int_equal(fx->n_lease_expired, 0);
}

static void breaker_probe_failure_reopens(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;

    trip(b, 3);
    p = probe(fx, b);
    ibcore_breaker_report(&p, false);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
    assert_int_equal(ibcore_breaker_failures(b), 4);
    assert_int_equal(ibcore_breaker_retry_in_ms(b), 30); /* max_open_ms 0: fixed */
    assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
    assert_transition(fx, fx->n_events - 2, "half_open", "open");
    assert_int_equal(ev_at(fx, fx->n_events - 2)->failures, 4);
}

#define N_EP 20 /* endpoints driven in lockstep: 20 independent jitter streams, one wait */

/* Open periods after k failed probes, for N_EP endpoints, measured right after each opening. */
static void measure_periods(struct fixture *fx, uint64_t seed, uint64_t periods[][6])
{
    struct ibcore_breaker *b[N_EP];
    struct ibcore_breakers *r;
    struct ibcore_permit p;
    int closed = 0;

    fx->cfg.seed = seed;
    r = ibcore_breakers_new(&fx->loop, &fx->cfg, NULL, NULL);
    assert_non_null(r);
    for (int e = 0; e < N_EP; e++) {
        b[e] = ibcore_breakers_get(r, "127.0.0.1", 4000 + e);
        trip(b[e], 1);
        periods[e][0] = ibcore_breaker_retry_in_ms(b[e]);
    }
    for (int k = 1; k < 6; k++) {
        uint64_t wait = 0;

        for (int e = 0; e < N_EP; e++)
            wait =
                ibcore_breaker_retry_in_ms(b[e]) > wait ? ibcore_breaker_retry_in_ms(b[e]) : wait;
        advance(fx, wait);
        for (int e = 0; e < N_EP; e++) {
            p = probe(fx, b[e]);
            ibcore_breaker_report(&p, false);
            periods[e][k] = ibcore_breaker_retry_in_ms(b[e]);
        }
    }
    /* A close resets the period to open_ms. */
    p = probe(fx, b[0]);
    ibcore_breaker_report(&p, true);
    trip(b[0], 1);
    assert_int_equal(ibcore_breaker_retry_in_ms(b[0]), fx->cfg.open_ms);
    ibcore_breakers_close(r, on_count, &closed);
    assert_int_equal(closed, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
}

static void breaker_open_period_grows_within_bounds(void **state)
{
    struct fixture *fx = *state;
    uint64_t a[N_EP][6], again[N_EP][6];
    unsigned above_half = 0;

    fx->cfg.failure_threshold = 1;
    fx->cfg.open_ms = 10;
    fx->cfg.max_open_ms = 80;
    measure_periods(fx, 7, a);
    for (int e = 0; e < N_EP; e++) {
        assert_int_equal(a[e][0], 10); /* the first period is exactly open_ms */
        for (int k = 1; k < 6; k++) {
            uint64_t hi = (10u << k) < 80 ? (10u << k) : 80;

            if (a[e][k] < 10 || a[e][k] > hi)
                fail_msg("endpoint %d open %d: %llu outside [10, %llu]", e, k,
                         (unsigned long long)a[e][k], (unsigned long long)hi);
            above_half += a[e][k] > 10 + (hi - 10) / 2;
        }
    }
    /* Jitter over the whole range: about half the draws land in the upper half. */
    assert_true(above_half > N_EP * 5 / 4 && above_half < N_EP * 5 * 3 / 4);
    measure_periods(fx, 7, again); /* seeded: the same periods again */
    assert_memory_equal(a, again, sizeof a);
}

/* ---- the lease ----------------------------------------------------------------------------- */

static void breaker_lease_expiry_counts_as_failure_and_late_report_ignored(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p, late, q;
    uint64_t t0;
    size_t n;

    trip(b, 3);
    p = probe(fx, b);
    late = p;
    t0 = uv_now(&fx->loop);
    advance(fx, 49);
    if (uv_now(&fx->loop) < t0 + 50) /* a slow host (valgrind) may overshoot the tick */
        assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_HALF_OPEN);
    advance(fx, 1); /* lease_ms 50 from the probe */
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
    assert_int_equal(ibcore_breaker_failures(b), 4);
    assert_int_equal(fx->n_lease_expired, 1);
    n = fx->n_events;
    assert_string_equal(ev_at(fx, n - 2)->event, "lease_expired");
    assert_int_equal(ev_at(fx, n - 2)->token, (long long)p.token);
    assert_transition(fx, n - 1, "half_open", "open");
    ibcore_breaker_report(&p, true); /* too late: ignored */
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
    assert_int_equal(fx->n_events, n);

    /* A new probe has a new token; the old permit still cannot report for it. */
    q = probe(fx, b);
    assert_true(q.token != late.token);
    ibcore_breaker_report(&late, true);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_HALF_OPEN);
    ibcore_breaker_report(&q, true);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_CLOSED);
}

/* A closed permit reported after the trip neither extends nor ends the break. */
static void breaker_stale_closed_permit_does_not_move_open(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit old1, old2, p;

    assert_int_equal(ibcore_breaker_acquire(b, &old1), 0);
    assert_int_equal(ibcore_breaker_acquire(b, &old2), 0);
    trip(b, 3);
    ibcore_breaker_report(&old1, true);
    ibcore_breaker_report(&old2, false);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
    assert_int_equal(ibcore_breaker_failures(b), 3);
    assert_int_equal(ibcore_breaker_retry_in_ms(b), 30);
    p = probe(fx, b);
    assert_int_equal(ibcore_breaker_acquire(b, &old1), IBCORE_EBREAKER);
    ibcore_breaker_report(&p, true);
}

/* ---- maintenance --------------------------------------------------------------------------- */

static void breaker_force_open_rejects_until_reset(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p, q;

    ibcore_breaker_force_open(b);
    ibcore_breaker_force_open(b); /* no-op: no event */
    assert_int_equal(fx->n_transitions, 1);
    assert_transition(fx, 0, "closed", "forced_open");
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_FORCED_OPEN);
    assert_int_equal(ibcore_breaker_retry_in_ms(b), UINT64_MAX);
    assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
    advance(fx, 40);
    assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
    assert_string_equal(ev_at(fx, fx->n_events - 1)->state, "forced_open");
    ibcore_breaker_reset(b);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_CLOSED);
    assert_transition(fx, fx->n_events - 1, "forced_open", "closed");
    assert_int_equal(ibcore_breaker_acquire(b, &p), 0);
    ibcore_breaker_report(&p, true);

    /* Forcing open cancels a live probe: no lease expiry, its report is ignored. */
    trip(b, 3);
    q = probe(fx, b);
    ibcore_breaker_force_open(b);
    advance(fx, 60);
    assert_int_equal(fx->n_lease_expired, 0);
    ibcore_breaker_report(&q, true);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_FORCED_OPEN);
    ibcore_breaker_reset(b);
    assert_int_equal(ibcore_breaker_failures(b), 0);
    ibcore_breaker_reset(b); /* already closed: no event */
    assert_transition(fx, fx->n_events - 1, "forced_open", "closed");
}

static void breaker_disable_passes_everything_and_still_counts(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;
    size_t thresholds = 0;

    trip(b, 3);
    ibcore_breaker_disable(b);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_DISABLED);
    assert_transition(fx, fx->n_events - 1, "open", "disabled");
    assert_int_equal(ibcore_breaker_failures(b), 0);
    for (int i = 0; i < 10; i++)
        fail_closed_permit(b);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_DISABLED);
    assert_int_equal(ibcore_breaker_failures(b), 10);
    assert_int_equal(ibcore_breaker_retry_in_ms(b), 0);
    for (size_t i = 0; i < fx->n_events; i++)
        thresholds += strcmp(ev_at(fx, i)->event, "threshold_exceeded") == 0;
    assert_int_equal(thresholds, 1); /* once, at the count that would have tripped */
    assert_int_equal(ibcore_breaker_acquire(b, &p), 0);
    ibcore_breaker_report(&p, true);
    assert_int_equal(ibcore_breaker_failures(b), 0);
    ibcore_breaker_disable(b); /* no-op */
    ibcore_breaker_reset(b);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_CLOSED);
    assert_transition(fx, fx->n_events - 1, "disabled", "closed");
}

/* ---- telemetry ----------------------------------------------------------------------------- */

static void breaker_telemetry_transition_order_closed_open_half_open_closed(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;
    size_t t = 0;
    const char *const want[][2] = {
        { "closed", "open" },
        { "open", "half_open" },
        { "half_open", "closed" },
    };

    trip(b, 3);
    p = probe(fx, b);
    ibcore_breaker_report(&p, true);
    assert_int_equal(fx->n_transitions, 3);
    for (size_t i = 0; i < fx->n_events; i++) {
        const struct ev *e = ev_at(fx, i);

        if (strcmp(e->event, "transition") != 0)
            continue;
        assert_string_equal(e->from, want[t][0]);
        assert_string_equal(e->to, want[t][1]);
        t++;
    }
    assert_int_equal(ev_at(fx, fx->n_events - 1)->failures, 0);
}

static void hook_acquire_on_half_open(struct fixture *fx, const struct ev *e)
{
    struct ibcore_breaker *b = ibcore_breakers_get(fx->reg, "127.0.0.1", 4002);
    struct ibcore_permit p;

    if (strcmp(e->event, "transition") == 0 && strcmp(e->to, "half_open") == 0) {
        /* The state is already updated: the probe is out, this one is turned away. */
        assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_HALF_OPEN);
        assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
    }
}

static void hook_reset_on_lease_expired(struct fixture *fx, const struct ev *e)
{
    if (strcmp(e->event, "lease_expired") == 0) {
        struct ibcore_breaker *b = ibcore_breakers_get(fx->reg, "127.0.0.1", 4002);

        assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
        ibcore_breaker_reset(b);
    }
}

static void breaker_telemetry_callback_may_reenter_and_order_holds(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;
    size_t n;

    trip(b, 3);
    fx->hook = hook_acquire_on_half_open;
    n = fx->n_events;
    p = probe(fx, b);
    assert_int_equal(fx->n_events, n + 2);
    assert_transition(fx, n, "open", "half_open");
    assert_string_equal(ev_at(fx, n + 1)->event, "call_not_permitted");
    (void)p;

    /* The reset made inside lease_expired comes after the transition that lease caused. */
    fx->hook = hook_reset_on_lease_expired;
    n = fx->n_events;
    advance(fx, 50);
    assert_int_equal(fx->n_events, n + 3);
    assert_string_equal(ev_at(fx, n)->event, "lease_expired");
    assert_transition(fx, n + 1, "half_open", "open");
    assert_transition(fx, n + 2, "open", "closed");
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_CLOSED);
}

static void breaker_telemetry_endpoint_is_escaped(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b;
    char host[151], want[160];

    make(fx);
    b = ibcore_breakers_get(fx->reg, "a\"b\\c\x01", 7);
    assert_non_null(b);
    ibcore_breaker_force_open(b);
    assert_string_equal(ev_at(fx, 0)->endpoint, "a\"b\\c\x01:7");
    b = ibcore_breakers_get(fx->reg, "::1", 4002);
    ibcore_breaker_force_open(b);
    assert_string_equal(ev_at(fx, 1)->endpoint, "[::1]:4002");

    /* 150 control bytes escape to 900: longer than the event's first-pass buffer. */
    memset(host, '\x1f', 150);
    host[150] = '\0';
    b = ibcore_breakers_get(fx->reg, host, 7);
    ibcore_breaker_force_open(b);
    snprintf(want, sizeof want, "%s:7", host);
    assert_string_equal(ev_at(fx, 2)->endpoint, want);
}

static void breaker_works_without_telemetry(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b;
    struct ibcore_permit p;

    fx->reg = ibcore_breakers_new(&fx->loop, &fx->cfg, NULL, NULL);
    assert_non_null(fx->reg);
    b = ibcore_breakers_get(fx->reg, "127.0.0.1", 4002);
    trip(b, 3);
    assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
    p = probe(fx, b);
    advance(fx, 50);
    assert_int_equal(ibcore_breaker_state(b), IBCORE_BREAKER_OPEN);
    assert_int_equal(fx->n_events, 0);
}

/* ---- registry ------------------------------------------------------------------------------ */

static void breakers_get_same_endpoint_same_breaker(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_breaker *other = ibcore_breakers_get(fx->reg, "127.0.0.1", 4001);
    struct ibcore_breaker *host2 = ibcore_breakers_get(fx->reg, "127.0.0.2", 4002);
    struct ibcore_permit p;

    assert_ptr_equal(ibcore_breakers_get(fx->reg, "127.0.0.1", 4002), b);
    assert_non_null(other);
    assert_non_null(host2);
    assert_ptr_not_equal(other, b);
    assert_ptr_not_equal(host2, b);
    assert_ptr_not_equal(host2, other);
    trip(b, 3);
    assert_int_equal(ibcore_breaker_state(other), IBCORE_BREAKER_CLOSED);
    assert_int_equal(ibcore_breaker_acquire(other, &p), 0);
    ibcore_breaker_report(&p, false);
    assert_int_equal(ibcore_breaker_failures(other), 1);
    assert_int_equal(ibcore_breaker_failures(host2), 0);
    assert_null(ibcore_breakers_get(fx->reg, NULL, 4002));
}

static void breakers_new_config_checks_and_defaults(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker_config cfg;
    struct ibcore_breakers *r;

    ibcore_breaker_config_init(&cfg);
    assert_int_equal(cfg.failure_threshold, 5);
    assert_int_equal(cfg.open_ms, 60000);
    assert_int_equal(cfg.max_open_ms, 0);
    assert_int_equal(cfg.lease_ms, 35000);
    assert_null(ibcore_breakers_new(NULL, &cfg, NULL, NULL));
    cfg.failure_threshold = 0;
    assert_null(ibcore_breakers_new(&fx->loop, &cfg, NULL, NULL));
    ibcore_breaker_config_init(&cfg);
    cfg.lease_ms = 0;
    assert_null(ibcore_breakers_new(&fx->loop, &cfg, NULL, NULL));
    fx->reg = ibcore_breakers_new(&fx->loop, NULL, NULL, NULL); /* NULL: the defaults */
    assert_non_null(fx->reg);
    trip(ibcore_breakers_get(fx->reg, "h", 1), 5);
    assert_int_equal(ibcore_breaker_retry_in_ms(ibcore_breakers_get(fx->reg, "h", 1)), 60000);
    r = ibcore_breakers_new(&fx->loop, NULL, NULL, NULL);
    ibcore_breakers_close(r, NULL, NULL); /* a NULL cb is allowed */
    ibcore_breakers_close(NULL, NULL, NULL);
    assert_string_equal(ibcore_breaker_state_name(IBCORE_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(ibcore_breaker_state_name(IBCORE_BREAKER_FORCED_OPEN), "forced_open");
    assert_string_equal(ibcore_breaker_state_name((enum ibcore_breaker_state)42), "unknown");
    assert_int_equal(ibcore_breaker_acquire(NULL, NULL), UV_EINVAL);
}

static void breakers_close_with_pending_lease_calls_cb_once(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p, q;
    size_t n;

    ibcore_breakers_get(fx->reg, "127.0.0.1", 4003);
    trip(b, 3);
    p = probe(fx, b);
    n = fx->n_events;
    close_reg(fx);
    ibcore_breakers_close(fx->reg, on_reg_closed, fx); /* twice: ignored */
    assert_int_equal(ibcore_breaker_acquire(b, &q), IBCORE_ESHUTDOWN);
    assert_null(q.breaker);
    ibcore_breaker_report(&p, false); /* ignored */
    ibcore_breaker_force_open(b);
    assert_null(ibcore_breakers_get(fx->reg, "127.0.0.1", 4002));
    assert_int_equal(fx->closed_calls, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->closed_calls, 1);
    assert_int_equal(fx->n_events, n); /* nothing after close, no lease expiry */
}

static void breakers_close_empty_registry_defers_cb(void **state)
{
    struct fixture *fx = *state;

    fx->reg = ibcore_breakers_new(&fx->loop, &fx->cfg, on_telemetry, fx);
    assert_non_null(fx->reg);
    close_reg(fx);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->closed_calls, 1);
}

static void hook_close_on_lease_expired(struct fixture *fx, const struct ev *e)
{
    if (strcmp(e->event, "lease_expired") == 0)
        close_reg(fx);
}

static void breakers_close_from_telemetry_callback(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker *b = make(fx);
    struct ibcore_permit p;
    size_t n;

    trip(b, 3);
    p = probe(fx, b);
    fx->hook = hook_close_on_lease_expired;
    n = fx->n_events;
    fx->ticked = false;
    uv_timer_start(&fx->tick, on_tick, 60, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->closed_calls, 1);
    /* lease_expired was delivered; the transition queued behind it was dropped at close. */
    assert_int_equal(fx->n_events, n + 1);
    assert_string_equal(ev_at(fx, n)->event, "lease_expired");
    (void)p;
}

/* ---- random sequences against a reference model -------------------------------------------- */

struct model {
    enum ibcore_breaker_state st;
    unsigned failures;
    unsigned opens;
    uint64_t open_until;
    uint64_t lease_due;
    long probe_gen; /* the live probe while HALF_OPEN */
    size_t transitions;
    size_t not_permitted;
    size_t lease_expired;
    enum ibcore_breaker_state last_from, last_to;
    unsigned last_failures;
};

struct held {
    struct ibcore_permit p;
    long gen;            /* -1: a closed permit */
    uint64_t not_before; /* a stuck caller: it reports only after its lease is gone */
};

struct run {
    struct fixture *fx;
    struct ibcore_breaker *b;
    struct model m;
    uint64_t rng;
    long step;
};

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void m_transition(struct model *m, enum ibcore_breaker_state to)
{
    m->last_from = m->st;
    m->last_to = to;
    m->st = to;
    m->last_failures = m->failures;
    m->transitions++;
}

/* The model opens at a time it knows (now) or, for a lease expiry, at some fire time in
 * [lease_due, now]. The period lies in [open_ms, min(max_open_ms, open_ms * 2^k)]; the jitter is
 * the breaker's, so the model checks the bounds and then adopts the breaker's deadline. */
static void m_open(struct run *r, uint64_t now, bool at_lease)
{
    const struct ibcore_breaker_config *cfg = &r->fx->cfg;
    struct model *m = &r->m;
    unsigned k = m->opens++;
    uint64_t lo = cfg->open_ms, hi = cfg->open_ms;
    uint64_t retry = ibcore_breaker_retry_in_ms(r->b);

    if (k > 0 && cfg->max_open_ms > cfg->open_ms) {
        hi =
            k < 32 && (cfg->open_ms << k) < cfg->max_open_ms ? cfg->open_ms << k : cfg->max_open_ms;
    }
    if (!at_lease) {
        if (retry < lo || retry > hi)
            fail_msg("step %ld: open period %llu outside [%llu, %llu]", r->step,
                     (unsigned long long)retry, (unsigned long long)lo, (unsigned long long)hi);
    } else if (retry > 0) {
        assert_true(now + retry >= m->lease_due + lo);
        assert_true(retry <= hi);
    } else {
        assert_true(now >= m->lease_due + lo);
    }
    m->open_until = now + retry;
    m_transition(m, IBCORE_BREAKER_OPEN);
}

static void compare(struct run *r)
{
    struct model *m = &r->m;
    struct fixture *fx = r->fx;
    uint64_t now = uv_now(&fx->loop);
    uint64_t want_retry = 0;

    if (ibcore_breaker_state(r->b) != m->st)
        fail_msg("step %ld: state %s, model %s", r->step,
                 ibcore_breaker_state_name(ibcore_breaker_state(r->b)),
                 ibcore_breaker_state_name(m->st));
    if (ibcore_breaker_failures(r->b) != m->failures)
        fail_msg("step %ld: failures %u, model %u", r->step, ibcore_breaker_failures(r->b),
                 m->failures);
    if (m->st == IBCORE_BREAKER_OPEN)
        want_retry = m->open_until > now ? m->open_until - now : 0;
    else if (m->st == IBCORE_BREAKER_FORCED_OPEN)
        want_retry = UINT64_MAX;
    assert_int_equal(ibcore_breaker_retry_in_ms(r->b), want_retry);
    assert_int_equal(fx->n_transitions, m->transitions);
    assert_int_equal(fx->n_not_permitted, m->not_permitted);
    assert_int_equal(fx->n_lease_expired, m->lease_expired);
    if (m->transitions > 0) {
        const struct ev *e = NULL;

        for (size_t i = fx->n_events; i-- > 0 && fx->n_events - i <= EV_RING;) {
            if (strcmp(ev_at(fx, i)->event, "transition") == 0) {
                e = ev_at(fx, i);
                break;
            }
        }
        if (e != NULL) {
            assert_string_equal(e->from, ibcore_breaker_state_name(m->last_from));
            assert_string_equal(e->to, ibcore_breaker_state_name(m->last_to));
            assert_int_equal(e->failures, m->last_failures);
        }
    }
}

static void model_acquire(struct run *r, struct held *h, size_t *n_held)
{
    struct model *m = &r->m;
    uint64_t now = uv_now(&r->fx->loop);
    struct ibcore_permit p;
    int rc = ibcore_breaker_acquire(r->b, &p);
    long gen = -2; /* -2: rejected */

    switch (m->st) {
    case IBCORE_BREAKER_CLOSED:
    case IBCORE_BREAKER_DISABLED:
        gen = -1;
        break;
    case IBCORE_BREAKER_OPEN:
        if (now >= m->open_until) {
            m->probe_gen++;
            m->lease_due = now + r->fx->cfg.lease_ms;
            m_transition(m, IBCORE_BREAKER_HALF_OPEN);
            gen = m->probe_gen;
        }
        break;
    default:
        break;
    }
    if (gen == -2) {
        m->not_permitted++;
        assert_int_equal(rc, IBCORE_EBREAKER);
        assert_null(p.breaker);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(p.token != 0, gen >= 0);
    h[*n_held].p = p;
    h[*n_held].gen = gen;
    h[*n_held].not_before = 0;
    if (gen >= 0 && xorshift(&r->rng) % 3 == 0)
        h[*n_held].not_before = m->lease_due + 1;
    (*n_held)++;
}

static void model_report(struct run *r, struct held *h, bool ok)
{
    struct model *m = &r->m;
    uint64_t now = uv_now(&r->fx->loop);

    ibcore_breaker_report(&h->p, ok);
    if (h->gen >= 0) {
        if (m->st != IBCORE_BREAKER_HALF_OPEN || h->gen != m->probe_gen)
            return; /* late */
        if (ok) {
            m->failures = 0;
            m->opens = 0;
            m_transition(m, IBCORE_BREAKER_CLOSED);
        } else {
            m->failures++;
            m_open(r, now, false);
        }
        return;
    }
    if (m->st != IBCORE_BREAKER_CLOSED && m->st != IBCORE_BREAKER_DISABLED)
        return; /* stale closed permit */
    if (ok) {
        m->failures = 0;
        return;
    }
    m->failures++;
    if (m->st == IBCORE_BREAKER_CLOSED && m->failures >= r->fx->cfg.failure_threshold)
        m_open(r, now, false);
}

static void model_advance(struct run *r, uint64_t ms)
{
    struct model *m = &r->m;
    uint64_t now;

    advance(r->fx, ms);
    now = uv_now(&r->fx->loop);
    if (m->st == IBCORE_BREAKER_HALF_OPEN && now >= m->lease_due) {
        m->failures++;
        m->lease_expired++;
        m_open(r, now, true);
    }
}

static void run_model(struct fixture *fx, uint64_t seed, long steps)
{
    struct held held[12];
    size_t n_held = 0;
    struct run r = { .fx = fx, .rng = seed };
    size_t seen[5] = { 0 };

    r.b = make(fx);
    for (r.step = 0; r.step < steps; r.step++) {
        bool in_maintenance =
            r.m.st == IBCORE_BREAKER_FORCED_OPEN || r.m.st == IBCORE_BREAKER_DISABLED;
        unsigned op = (unsigned)(xorshift(&r.rng) % 1000);

        /* Maintenance is rare and short, so most steps exercise the automatic transitions. */
        if (in_maintenance && op < 50)
            op = 999;
        if (op < 350) {
            if (n_held < sizeof held / sizeof held[0])
                model_acquire(&r, held, &n_held);
        } else if (op < 800) {
            size_t i = n_held > 0 ? (size_t)(xorshift(&r.rng) % n_held) : 0;

            if (n_held > 0 && uv_now(&fx->loop) >= held[i].not_before) {
                struct held h = held[i];

                held[i] = held[--n_held];
                model_report(&r, &h, op < 550);
            }
        } else if (op < 990) {
            model_advance(&r, 1 + xorshift(&r.rng) % 2);
        } else if (op < 994) {
            ibcore_breaker_force_open(r.b);
            if (r.m.st != IBCORE_BREAKER_FORCED_OPEN)
                m_transition(&r.m, IBCORE_BREAKER_FORCED_OPEN);
        } else if (op < 998) {
            ibcore_breaker_disable(r.b);
            if (r.m.st != IBCORE_BREAKER_DISABLED) {
                r.m.failures = 0;
                m_transition(&r.m, IBCORE_BREAKER_DISABLED);
            }
        } else {
            ibcore_breaker_reset(r.b);
            r.m.failures = 0;
            r.m.opens = 0;
            if (r.m.st != IBCORE_BREAKER_CLOSED)
                m_transition(&r.m, IBCORE_BREAKER_CLOSED);
        }
        compare(&r);
        seen[r.m.st]++;
    }
    /* The walk visited every state, so the comparison covered every transition kind. */
    for (size_t s = 0; s < 5; s++)
        assert_true(seen[s] > 0);
    assert_true(r.m.lease_expired > 0);
    if (getenv("MGW_MODEL_STATS") != NULL)
        fprintf(stderr, "model: states %zu/%zu/%zu/%zu/%zu probes %ld lease_expired %zu\n", seen[0],
                seen[1], seen[2], seen[3], seen[4], r.m.probe_gen, r.m.lease_expired);
}

static void breaker_matches_reference_model_fixed_period(void **state)
{
    struct fixture *fx = *state;

    fx->cfg.failure_threshold = 3;
    fx->cfg.open_ms = 4;
    fx->cfg.max_open_ms = 0;
    fx->cfg.lease_ms = 6;
    run_model(fx, 0x9e3779b97f4a7c15u, 10000);
}

static void breaker_matches_reference_model_growing_period(void **state)
{
    struct fixture *fx = *state;

    fx->cfg.failure_threshold = 2;
    fx->cfg.open_ms = 3;
    fx->cfg.max_open_ms = 24;
    fx->cfg.lease_ms = 5;
    fx->cfg.seed = 99;
    run_model(fx, 0x2545f4914f6cdd1du, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(breaker_trips_after_exactly_threshold_consecutive_failures,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_open_rejects_without_permit, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_half_open_allows_one_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_probe_success_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_probe_failure_reopens, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_open_period_grows_within_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(
            breaker_lease_expiry_counts_as_failure_and_late_report_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_stale_closed_permit_does_not_move_open, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(breaker_force_open_rejects_until_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_disable_passes_everything_and_still_counts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            breaker_telemetry_transition_order_closed_open_half_open_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_telemetry_callback_may_reenter_and_order_holds,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_telemetry_endpoint_is_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_works_without_telemetry, setup, teardown),
        cmocka_unit_test_setup_teardown(breakers_get_same_endpoint_same_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(breakers_new_config_checks_and_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(breakers_close_with_pending_lease_calls_cb_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(breakers_close_empty_registry_defers_cb, setup, teardown),
        cmocka_unit_test_setup_teardown(breakers_close_from_telemetry_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_matches_reference_model_fixed_period, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(breaker_matches_reference_model_growing_period, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
