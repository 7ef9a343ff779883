/* The pool: validation before handoff (reserve, then trust within the alive window or probe),
 * client-id preference (advance only on 326 or a close before ready, after a pause; quarantine
 * after 326), connect retries with full-jitter backoff inside the acquire's deadline, max size
 * with FIFO waiters, idle GC, max lifetime, jittered health checks that also close the pool's
 * own CLOSE_WAIT sockets, and suspend detection (every idle connection revalidates after the
 * machine slept).
 *
 * One timer drives everything that is not a completion: it runs pump() on a later loop turn
 * (so no acquire callback runs before ibcore_pool_acquire() returns), at the earliest waiter
 * deadline, and when an idle connection is due for GC or a health check. Every acquire is in
 * exactly one place: the wait queue, or attached to the entry it is validating or connecting
 * (e->acq). Every counter is computed from the entries, so none can go negative. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibcore.h"
#include "internal.h"

#define MAX_IDS          32
#define PROBE_SPACING_MS 1000 /* IB answers reqCurrentTime at most once a second */
#define PROBE_WINDOW     20   /* probe outcomes kept for the status score */

enum entry_state { E_CONNECTING, E_VALIDATING, E_IDLE, E_IN_USE, E_CLOSING };

struct acq {
    struct ibcore_pool *pool;
    uint64_t deadline_ms;
    ibcore_acquire_cb cb;
    void *data;
    uint32_t tried;      /* id offsets refused (326) or closed before ready, for this acquire */
    uint64_t not_before; /* no new connect before this (backoff or client-id pause) */
    unsigned retries;    /* connect retries used */
    struct ibcore_backoff backoff;
    struct acq *next;
};

struct entry {
    struct ibcore_pool *pool;
    struct ibcore_conn *conn;
    enum entry_state state;
    struct acq *acq; /* the acquire this entry is validated or connected for; NULL: health */
    int id_off;      /* client id = client_id_first + id_off */
    bool was_ready;
    bool lock_pending;
    struct ibcore_hslock *lock;
    struct ibcore_permit permit;
    uint64_t idle_since_ms, health_due_ms, last_probe_ms;
    uint64_t retire_ms;      /* max lifetime: closed when idle from then on (UINT64_MAX: never) */
    bool revalidate;         /* the machine slept: probe before trusting it again */
    uint64_t probe_start_ns; /* uv_hrtime() when the running probe was sent */
    bool healthy;            /* ready, and its last validation (handshake or probe) passed */
    unsigned strikes;
    struct entry *next;
};

struct ibcore_pool {
    uv_loop_t *loop;
    struct ibcore_pool_config cfg;
    char *host, *lock_path;
    struct ibcore_breakers *own_registry;
    struct ibcore_breaker *breaker;
    uv_timer_t timer;
    bool in_pump;
    struct entry *entries;
    struct acq *wait_head, **wait_tail;
    uint64_t quarantine_until[MAX_IDS];
    uint64_t rng;
    uint64_t created, closed, probes, probe_failures;
    uint64_t retries, retired, zombies_closed, suspends;
    uint64_t slept_ms; /* CLOCK_BOOTTIME - CLOCK_MONOTONIC when last looked */
    struct probe_rec {
        bool ok;
        uint64_t us; /* a failed probe counts as probe_timeout_ms */
    } ring[PROBE_WINDOW];
    unsigned ring_n, ring_next; /* outcomes held; where the next one goes */
    bool closing;
    unsigned open; /* timer + entries not yet freed + a private registry */
    void (*close_cb)(void *data);
    void *close_data;
};

void ibcore_pool_config_init(struct ibcore_pool_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 4002;
    cfg->max_size = 4;
    cfg->client_id_first = 1;
    cfg->client_id_cap = 3;
    cfg->quarantine_ms = 60000;
    cfg->alive_window_ms = 2000;
    cfg->probe_timeout_ms = 3000;
    cfg->connect_timeout_ms = 10000;
    cfg->idle_timeout_ms = 300000;
    cfg->health_interval_ms = 60000;
    cfg->health_strikes = 3;
    cfg->use_lock = true;
    cfg->lock_path = NULL;
    cfg->seed = 1;
    cfg->client_id_pause_ms = 1000;
    cfg->connect_retries = 0;
    cfg->backoff_base_ms = 1000;
    cfg->backoff_cap_ms = 60000;
    cfg->max_lifetime_ms = 0;
    cfg->suspend_threshold_ms = 5000;
}

/* How long the machine has been suspended since boot, in ms: CLOCK_BOOTTIME counts sleep,
 * CLOCK_MONOTONIC (uv_now()'s clock) does not. A seam: tests replace it. */
static uint64_t slept_ms_now(void)
{
    struct timespec boot, mono;
    int64_t d;

    if (clock_gettime(CLOCK_BOOTTIME, &boot) != 0 || clock_gettime(CLOCK_MONOTONIC, &mono) != 0)
        return 0;
    d = (int64_t)(boot.tv_sec - mono.tv_sec) * 1000 + (boot.tv_nsec - mono.tv_nsec) / 1000000;
    return d > 0 ? (uint64_t)d : 0;
}

uint64_t (*ibcore__slept_ms)(void) = slept_ms_now;

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* One pool event to the core's log: {"metric":"pool","event":name,"port":N, fields...,
 * "mono_ms":...}. fields starts with a comma or is empty. */
__attribute__((format(printf, 4, 5))) static void pool_log(const struct ibcore_pool *p,
                                                           enum ibcore_log_level level,
                                                           const char *name, const char *fmt, ...)
{
    char fields[192], line[320];
    va_list ap;
    bool ok;
    int n;

    if (!ibcore__log_wants(level))
        return;
    va_start(ap, fmt);
    ok = ibcore__vfields(fields, sizeof fields, fmt, ap);
    va_end(ap);
    if (!ok)
        return;
    n = snprintf(line, sizeof line,
                 "{\"metric\":\"pool\",\"event\":\"%s\",\"port\":%d%s,\"mono_ms\":%llu}", name,
                 p->cfg.port, fields, (unsigned long long)uv_now(p->loop));
    if (n > 0 && (size_t)n < sizeof line)
        ibcore__log(level, line);
}

/* ---- teardown -------------------------------------------------------------------------------- */

static void pool_unref(struct ibcore_pool *p)
{
    void (*cb)(void *data) = p->close_cb;
    void *data = p->close_data;

    if (--p->open > 0)
        return;
    free(p->host);
    free(p->lock_path);
    free(p);
    if (cb != NULL)
        cb(data);
}

static void on_timer_closed(uv_handle_t *h)
{
    pool_unref(h->data);
}

static void on_registry_closed(void *data)
{
    pool_unref(data);
}

static void on_conn_closed(void *data)
{
    struct entry *e = data;
    struct ibcore_pool *p = e->pool;
    struct entry **link;

    for (link = &p->entries; *link != e; link = &(*link)->next)
        ;
    *link = e->next;
    free(e);
    pool_unref(p);
}

static void pump(uv_timer_t *t);
static void on_lock(struct ibcore_hslock *lock, int status, void *data);

/* Runs pump() on a later loop turn. A no-op inside pump(), which serves the waiters first and
 * serves them again when its housekeeping put a borrower back on the queue. */
static void schedule(struct ibcore_pool *p)
{
    if (!p->closing && !p->in_pump)
        uv_timer_start(&p->timer, pump, 0, 0);
}

/* Closes e's connection (whatever it was doing): a pending lock wait is cancelled, a held lock
 * released, an unreported breaker permit counts as a failure (an attempt that never ended, as an
 * expired lease would); e->acq is the caller's business. The completions e's connection delivers
 * during the close (UV_ECANCELED) see E_CLOSING and return. */
static void entry_close(struct entry *e)
{
    struct ibcore_pool *p = e->pool;

    if (e->state == E_CLOSING)
        return;
    e->state = E_CLOSING;
    e->acq = NULL;
    if (e->was_ready)
        p->closed++;
    if (e->lock_pending) {
        e->lock_pending = false;
        ibcore_hslock_cancel(p->loop, on_lock, e);
    }
    ibcore_hslock_release(e->lock);
    e->lock = NULL;
    ibcore_breaker_report(&e->permit, false);
    ibcore_conn_close(e->conn, on_conn_closed, e);
    schedule(p); /* a slot is free: a waiter held back by max_size may connect */
}

/* ---- acquires -------------------------------------------------------------------------------- */

static void finish(struct acq *a, struct ibcore_conn *c, int status)
{
    ibcore_acquire_cb cb = a->cb;
    void *data = a->data;

    free(a);
    cb(c, status, data);
}

static void wait_push_back(struct ibcore_pool *p, struct acq *a)
{
    a->next = NULL;
    *p->wait_tail = a;
    p->wait_tail = &a->next;
}

static void wait_push_front(struct ibcore_pool *p, struct acq *a)
{
    a->next = p->wait_head;
    p->wait_head = a;
    if (a->next == NULL)
        p->wait_tail = &a->next;
}

static void wait_unlink(struct ibcore_pool *p, struct acq *a)
{
    struct acq **link = &p->wait_head;

    while (*link != a)
        link = &(*link)->next;
    *link = a->next;
    if (*link == NULL)
        p->wait_tail = link;
    a->next = NULL;
}

static uint64_t jittered(struct ibcore_pool *p, uint64_t interval)
{
    uint64_t j = interval / 10;

    return interval - j + ibcore__rand_upto(&p->rng, 2 * j);
}

static unsigned live_count(const struct ibcore_pool *p)
{
    unsigned n = 0;

    for (const struct entry *e = p->entries; e != NULL; e = e->next)
        n += e->state != E_CLOSING;
    return n;
}

/* Trusted without a probe: a frame arrived within the alive window. */
static bool trusted(const struct ibcore_pool *p, const struct entry *e, uint64_t now)
{
    uint64_t rx = ibcore_conn_last_rx_ms(e->conn);

    return !e->revalidate && rx != 0 && now >= rx && now - rx < p->cfg.alive_window_ms;
}

/* ---- validation and health checks ----------------------------------------------------------- */

static void set_idle(struct ibcore_pool *p, struct entry *e, uint64_t now)
{
    e->state = E_IDLE;
    e->health_due_ms = sat_add(now, jittered(p, p->cfg.health_interval_ms));
}

/* Keeps the outcome and latency of a finished probe in the window of the last PROBE_WINDOW. */
static void record_probe(struct ibcore_pool *p, struct entry *e, bool ok)
{
    uint64_t us = (uv_hrtime() - e->probe_start_ns) / 1000;
    uint64_t timeout_us = p->cfg.probe_timeout_ms * 1000;

    if (!ok || us > timeout_us)
        us = timeout_us;
    e->healthy = ok;
    p->ring[p->ring_next].ok = ok;
    p->ring[p->ring_next].us = us;
    p->ring_next = (p->ring_next + 1) % PROBE_WINDOW;
    if (p->ring_n < PROBE_WINDOW)
        p->ring_n++;
}

/* A probe succeeded or failed (including one that could not start: status from the call).
 * With e->acq: validation for that acquire; without: a health check. */
static void probe_done(struct entry *e, int status)
{
    struct ibcore_pool *p = e->pool;
    struct acq *a = e->acq;
    uint64_t now = uv_now(p->loop);

    e->acq = NULL;
    record_probe(p, e, status == 0);
    if (status < 0)
        p->probe_failures++;
    else
        e->revalidate = false;
    if (a != NULL) {
        if (status == 0) {
            e->state = E_IN_USE;
            finish(a, e->conn, 0);
            return;
        }
        /* Poisoned (or dead): never handed out. The acquire keeps its place at the head. */
        entry_close(e);
        wait_push_front(p, a);
        schedule(p);
        return;
    }
    if (status == 0) {
        e->strikes = 0;
        set_idle(p, e, now);
    } else if (++e->strikes >= p->cfg.health_strikes || ibcore_conn_is_poisoned(e->conn) ||
               !ibcore_conn_is_ready(e->conn)) {
        entry_close(e);
    } else {
        set_idle(p, e, now);
    }
    schedule(p);
}

static void on_probe(struct ibcore_conn *c, int status, int64_t epoch_s, void *data)
{
    struct entry *e = data;

    (void)c;
    (void)epoch_s;
    if (e->state == E_CLOSING) /* our own close cancelled it */
        return;
    probe_done(e, status);
}

/* Reserves e (E_VALIDATING) for a (NULL: a health check), then probes it. Probes on one
 * connection are >= 1 s apart by construction: a successful probe's reply refreshes last_rx, so
 * the connection stays trusted (window >= 1 s) for at least a second after it; a failed one
 * closes it. */
static void start_probe(struct ibcore_pool *p, struct entry *e, struct acq *a, uint64_t now)
{
    uint64_t deadline = sat_add(now, p->cfg.probe_timeout_ms);
    int rc;

    e->state = E_VALIDATING;
    e->acq = a;
    if (a != NULL)
        deadline = min_u64(deadline, a->deadline_ms);
    p->probes++;
    e->last_probe_ms = now;
    e->probe_start_ns = uv_hrtime();
    rc = ibcore_conn_current_time(e->conn, deadline, on_probe, e);
    if (rc < 0)
        probe_done(e, rc);
}

/* ---- fresh connections ------------------------------------------------------------------------
 */

static int pick_id(const struct ibcore_pool *p, const struct acq *a, uint64_t now);

static void connect_done(struct entry *e, int status)
{
    struct ibcore_pool *p = e->pool;
    struct acq *a = e->acq;
    uint64_t now = uv_now(p->loop);
    bool reached = status == 0 || status == IBCORE_ECLIENTID || status == IBCORE_ENOTREADY ||
                   status == IBCORE_EVERSION;

    ibcore_hslock_release(e->lock); /* held for connect + handshake only */
    e->lock = NULL;
    ibcore_breaker_report(&e->permit, reached); /* a refusal by id is a gateway that answered */
    e->acq = NULL;
    if (status == 0) {
        uint64_t life = p->cfg.max_lifetime_ms;

        e->was_ready = true;
        e->healthy = true; /* the handshake just proved it */
        /* Up to 2.5 % earlier, so connections made together do not all retire at once. */
        e->retire_ms = life == 0
                           ? UINT64_MAX
                           : sat_add(uv_now(p->loop), life - ibcore__rand_upto(&p->rng, life / 40));
        p->created++;
        e->state = E_IN_USE;
        finish(a, e->conn, 0);
        return;
    }
    entry_close(e);
    if (status == IBCORE_ECLIENTID || status == IBCORE_ENOTREADY) {
        if (status == IBCORE_ECLIENTID)
            p->quarantine_until[e->id_off] = sat_add(now, p->cfg.quarantine_ms);
        a->tried |= 1u << e->id_off;
        if (pick_id(p, a, now) == -2) {
            finish(a, NULL, IBCORE_EIDSEXHAUSTED);
            return;
        }
        /* The next id after a pause (research §7.3), unless the pause outlives the budget. */
        if (p->cfg.client_id_pause_ms > 0 &&
            sat_add(now, p->cfg.client_id_pause_ms) >= a->deadline_ms) {
            finish(a, NULL, status);
            return;
        }
        a->not_before = sat_add(now, p->cfg.client_id_pause_ms);
        wait_push_front(p, a);
        schedule(p);
        return;
    }
    if (status == IBCORE_ELOCK && now >= a->deadline_ms)
        status = UV_ETIMEDOUT;
    if (status != IBCORE_ELOCK && ibcore_error_retryable(status) &&
        a->retries < p->cfg.connect_retries) {
        int64_t wait = ibcore_backoff_next(&a->backoff);

        if (wait >= 0 && sat_add(now, (uint64_t)wait) < a->deadline_ms) {
            a->retries++;
            p->retries++;
            a->not_before = sat_add(now, (uint64_t)wait);
            pool_log(p, IBCORE_LOG_INFO, "retry",
                     ",\"error\":\"%s\",\"attempt\":%u,\"wait_ms\":%lld", ibcore_err_name(status),
                     a->retries, (long long)wait);
            wait_push_front(p, a);
            schedule(p);
            return;
        }
    }
    finish(a, NULL, status);
}

static void on_connected(struct ibcore_conn *c, int status, void *data)
{
    struct entry *e = data;

    (void)c;
    if (e->state == E_CLOSING)
        return;
    connect_done(e, status);
}

static void connect_now(struct entry *e)
{
    struct ibcore_pool *p = e->pool;
    struct ibcore_conn_opts o;
    uint64_t deadline =
        min_u64(e->acq->deadline_ms, sat_add(uv_now(p->loop), p->cfg.connect_timeout_ms));
    int rc;

    /* A permit taken while the breaker was closed, then a wait for the handshake lock during
     * which another attempt failed and opened it: no connect(2) now (the harness's schedules
     * caught a gateway accept 237 ms after the breaker opened). The half-open probe's own
     * permit (a token) goes on. */
    if (e->permit.token == 0 && ibcore_breaker_state(p->breaker) != IBCORE_BREAKER_CLOSED &&
        ibcore_breaker_state(p->breaker) != IBCORE_BREAKER_DISABLED) {
        connect_done(e, IBCORE_EBREAKER);
        return;
    }
    ibcore_conn_opts_init(&o);
    o.host = p->host;
    o.port = p->cfg.port;
    o.client_id = p->cfg.client_id_first + e->id_off;
    rc = ibcore_conn_connect(e->conn, &o, deadline, on_connected, e);
    if (rc < 0)
        connect_done(e, rc);
}

static void on_lock(struct ibcore_hslock *lock, int status, void *data)
{
    struct entry *e = data;

    if (e->state == E_CLOSING) {
        ibcore_hslock_release(lock);
        return;
    }
    e->lock_pending = false;
    if (status < 0) {
        connect_done(e, status);
        return;
    }
    e->lock = lock;
    connect_now(e);
}

/* A new connection for a (already off the wait queue) with client id offset off. */
static void start_connect(struct ibcore_pool *p, struct acq *a, int off)
{
    struct ibcore_permit permit;
    struct entry *e;
    int rc;

    if (ibcore_breaker_acquire(p->breaker, &permit) < 0) {
        finish(a, NULL, IBCORE_EBREAKER); /* open: no connect(2), no lock wait */
        return;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL || (e->conn = ibcore_conn_new(p->loop)) == NULL) {
        free(e);
        ibcore_breaker_report(&permit, false);
        finish(a, NULL, UV_ENOMEM);
        return;
    }
    e->pool = p;
    e->permit = permit;
    e->state = E_CONNECTING;
    e->acq = a;
    e->id_off = off;
    e->next = p->entries;
    p->entries = e;
    p->open++;
    if (!p->cfg.use_lock) {
        connect_now(e);
        return;
    }
    e->lock_pending = true;
    rc = ibcore_hslock_acquire(p->loop, p->lock_path, a->deadline_ms, on_lock, e);
    if (rc < 0) {
        e->lock_pending = false;
        connect_done(e, rc);
    }
}

/* The first client id offset a may try now: >= 0; -1 when every free one is held by a live
 * connection of the pool (wait for it); -2 when every one is refused or quarantined. */
static int pick_id(const struct ibcore_pool *p, const struct acq *a, uint64_t now)
{
    uint32_t held = 0;
    bool any_held = false;

    for (const struct entry *e = p->entries; e != NULL; e = e->next)
        if (e->state != E_CLOSING)
            held |= 1u << e->id_off;
    for (unsigned off = 0; off < p->cfg.client_id_cap; off++) {
        uint32_t bit = 1u << off;

        if ((a->tried & bit) || p->quarantine_until[off] > now)
            continue;
        if (held & bit) {
            any_held = true;
            continue;
        }
        return (int)off;
    }
    return any_held ? -1 : -2;
}

static void retire(struct ibcore_pool *p, struct entry *e)
{
    p->retired++;
    pool_log(p, IBCORE_LOG_INFO, "retired", ",\"client_id\":%d,\"max_lifetime_ms\":%llu",
             p->cfg.client_id_first + e->id_off, (unsigned long long)p->cfg.max_lifetime_ms);
    entry_close(e);
}

/* The most recently returned idle connection; dead ones found on the way are closed. */
static struct entry *pick_idle_once(struct ibcore_pool *p, uint64_t now)
{
    struct entry *best = NULL;

    for (struct entry *e = p->entries; e != NULL; e = e->next) {
        if (e->state != E_IDLE)
            continue;
        if (!ibcore_conn_is_ready(e->conn) || ibcore_conn_is_poisoned(e->conn)) {
            entry_close(e);
            continue;
        }
        if (now >= e->retire_ms) {
            retire(p, e);
            continue;
        }
        if (best == NULL || e->idle_since_ms > best->idle_since_ms)
            best = e;
    }
    return best;
}

/* pick_idle_once(), minus connections the gateway has already left: a FIN or RST still in the
 * kernel because the loop was busy elsewhere is seen here (one poll(2)), so a dead connection
 * is neither handed out inside its alive window nor probed. */
static struct entry *pick_idle(struct ibcore_pool *p, uint64_t now)
{
    struct entry *e;

    while ((e = pick_idle_once(p, now)) != NULL && ibcore_conn_peer_gone(e->conn)) {
        pool_log(p, IBCORE_LOG_INFO, "peer_gone", ",\"client_id\":%d",
                 p->cfg.client_id_first + e->id_off);
        entry_close(e);
    }
    return e;
}

/* ---- the pump ---------------------------------------------------------------------------------
 */

static void pump_waiters(struct ibcore_pool *p, uint64_t now)
{
    struct acq *a;
    struct entry *e;
    int off;

expire:
    for (a = p->wait_head; a != NULL && !p->closing; a = a->next) {
        if (a->deadline_ms <= now) {
            wait_unlink(p, a);
            finish(a, NULL, UV_ETIMEDOUT);
            goto expire; /* the callback may have changed the queue */
        }
    }
    a = p->wait_head;
    while (!p->closing && a != NULL) {
        if (a->deadline_ms <= now)
            goto expire;
        e = pick_idle(p, now);
        if (e != NULL) {
            wait_unlink(p, a);
            if (trusted(p, e, now)) {
                e->state = E_IN_USE;
                finish(a, e->conn, 0);
            } else {
                start_probe(p, e, a, now); /* reserved first: nobody else can take it */
            }
            a = p->wait_head; /* a callback may have changed the queue */
            continue;
        }
        if (a->not_before > now) { /* backing off or pausing: the next waiter may connect */
            a = a->next;
            continue;
        }
        if (live_count(p) >= p->cfg.max_size)
            break;
        off = pick_id(p, a, now);
        if (off == -1)
            break;
        wait_unlink(p, a);
        if (off == -2)
            finish(a, NULL, IBCORE_EIDSEXHAUSTED);
        else
            start_connect(p, a, off);
        a = p->wait_head;
    }
}

/* The machine slept (CLOCK_BOOTTIME moved ahead of CLOCK_MONOTONIC by the threshold or more):
 * uv_now() stood still meanwhile, so every idle connection looks fresher than it is. Each one
 * must pass a probe before it is handed out again, and its health check is due now. */
static void detect_suspend(struct ibcore_pool *p, uint64_t now)
{
    uint64_t slept = ibcore__slept_ms(), gap;
    unsigned n = 0;

    if (slept <= p->slept_ms) {
        p->slept_ms = slept;
        return;
    }
    gap = slept - p->slept_ms;
    if (p->cfg.suspend_threshold_ms == 0 || gap < p->cfg.suspend_threshold_ms)
        return; /* small drifts add up until they reach the threshold */
    p->slept_ms = slept;
    p->suspends++;
    for (struct entry *e = p->entries; e != NULL; e = e->next) {
        if (e->state == E_IDLE) {
            e->revalidate = true;
            e->health_due_ms = now;
            n++;
        } else if (e->state == E_IN_USE) {
            e->revalidate = true; /* checked when it comes back */
        }
    }
    pool_log(p, IBCORE_LOG_WARN, "suspend", ",\"slept_ms\":%llu,\"revalidating\":%u",
             (unsigned long long)gap, n);
}

/* The pool's own connections in CLOSE_WAIT toward the gateway (the peer closed and the close
 * has not been seen yet): closed unless lent (a borrower's is closed on release). Nothing else
 * is touched: foreign sockets are only counted, by the status. The number closed; *requeued
 * (if given) counts the borrowers whose connection was being validated: back on the queue. */
static unsigned close_own_zombies(struct ibcore_pool *p, unsigned *requeued)
{
    struct ibcore_zombies z;
    unsigned n = 0;

    if (ibcore_zombie_scan(p->cfg.port, &z) < 0 || z.own == 0)
        return 0;
    for (struct entry *e = p->entries; e != NULL; e = e->next) {
        if (e->state == E_CLOSING || e->state == E_IN_USE || e->state == E_CONNECTING)
            continue;
        if (!ibcore_zombie_fd_is(&z, ibcore_conn_fd(e->conn)))
            continue;
        p->zombies_closed++;
        n++;
        pool_log(p, IBCORE_LOG_WARN, "zombie_closed", ",\"client_id\":%d",
                 p->cfg.client_id_first + e->id_off);
        if (e->acq != NULL) { /* validating for a borrower: it goes on with another */
            struct acq *a = e->acq;

            entry_close(e);
            wait_push_front(p, a);
            if (requeued != NULL)
                (*requeued)++;
        } else {
            entry_close(e);
        }
    }
    return n;
}

/* Idle GC, max lifetime and health checks; never touches a connection that is not idle (but
 * the zombie scan closes one being validated for a borrower). True when a waiter was put back
 * on the queue (that borrower): the waiters must be pumped again. */
static bool housekeeping(struct ibcore_pool *p, uint64_t now)
{
    unsigned requeued = 0;
    bool tick = false;

    for (struct entry *e = p->entries; e != NULL && !tick; e = e->next)
        tick = e->state == E_IDLE && now >= e->health_due_ms;
    if (tick)
        close_own_zombies(p, &requeued);
    for (struct entry *e = p->entries; e != NULL && !p->closing; e = e->next) {
        if (e->state != E_IDLE)
            continue;
        /* not now - idle_since: a connection given back from a callback of this pump after the
         * application moved the loop's clock on (uv_update_time) is idle since after now */
        if (!ibcore_conn_is_ready(e->conn) || ibcore_conn_is_poisoned(e->conn) ||
            now >= sat_add(e->idle_since_ms, p->cfg.idle_timeout_ms)) {
            entry_close(e);
        } else if (now >= e->retire_ms) {
            retire(p, e);
        } else if (now >= e->health_due_ms) {
            if (trusted(p, e, now)) {
                e->strikes = 0;
                set_idle(p, e, now);
            } else {
                start_probe(p, e, NULL, now);
            }
        }
    }
    return requeued > 0;
}

static void pump(uv_timer_t *t)
{
    struct ibcore_pool *p = t->data;
    uint64_t now = uv_now(p->loop), next = UINT64_MAX;

    p->in_pump = true;
    detect_suspend(p, now);
    pump_waiters(p, now);
    /* A borrower whose connection the zombie scan closed is served now, not at the next event
     * (schedule() is a no-op in here). */
    if (!p->closing && housekeeping(p, now))
        pump_waiters(p, now);
    p->in_pump = false;
    if (p->closing)
        return;
    for (const struct acq *a = p->wait_head; a != NULL; a = a->next) {
        next = min_u64(next, a->deadline_ms);
        if (a->not_before > now)
            next = min_u64(next, a->not_before);
    }
    for (const struct entry *e = p->entries; e != NULL; e = e->next) {
        if (e->state != E_IDLE)
            continue;
        next = min_u64(next, sat_add(e->idle_since_ms, p->cfg.idle_timeout_ms));
        next = min_u64(next, e->health_due_ms);
        next = min_u64(next, e->retire_ms);
    }
    if (next == UINT64_MAX)
        uv_timer_stop(&p->timer);
    else
        uv_timer_start(&p->timer, pump, next > now ? next - now : 0, 0);
}

/* ---- public ---------------------------------------------------------------------------------- */

struct ibcore_pool *ibcore_pool_new(uv_loop_t *loop, const struct ibcore_pool_config *cfg,
                                    struct ibcore_breakers *registry)
{
    struct sockaddr_storage addr;
    struct ibcore_pool *p;

    if (loop == NULL || cfg == NULL || cfg->host == NULL || cfg->port < 1 || cfg->port > 65535 ||
        cfg->max_size == 0 || cfg->client_id_cap < 1 || cfg->client_id_cap > MAX_IDS ||
        cfg->client_id_first < 0 || cfg->client_id_first > INT32_MAX - MAX_IDS ||
        cfg->health_strikes == 0)
        return NULL;
    if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr) != 0)
        return NULL;
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->loop = loop;
    p->cfg = *cfg;
    if (p->cfg.alive_window_ms < PROBE_SPACING_MS)
        p->cfg.alive_window_ms = PROBE_SPACING_MS;
    if (p->cfg.health_interval_ms < PROBE_SPACING_MS)
        p->cfg.health_interval_ms = PROBE_SPACING_MS;
    p->host = strdup(cfg->host);
    p->lock_path = cfg->lock_path ? strdup(cfg->lock_path) : NULL;
    p->cfg.host = p->host;
    p->cfg.lock_path = p->lock_path;
    if (registry == NULL)
        registry = p->own_registry = ibcore_breakers_new(loop, NULL, NULL, NULL);
    if (registry != NULL)
        p->breaker = ibcore_breakers_get(registry, p->host, cfg->port);
    if (p->host == NULL || (cfg->lock_path != NULL && p->lock_path == NULL) || p->breaker == NULL) {
        if (p->own_registry != NULL)
            ibcore_breakers_close(p->own_registry, NULL, NULL);
        free(p->host);
        free(p->lock_path);
        free(p);
        return NULL;
    }
    p->rng = cfg->seed;
    p->slept_ms = ibcore__slept_ms();
    p->wait_tail = &p->wait_head;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->open = 1 + (p->own_registry != NULL);
    return p;
}

int ibcore_pool_acquire(struct ibcore_pool *pool, uint64_t deadline_ms, ibcore_acquire_cb cb,
                        void *data)
{
    struct acq *a;

    if (pool == NULL || cb == NULL)
        return UV_EINVAL;
    if (pool->closing)
        return IBCORE_ESHUTDOWN;
    a = calloc(1, sizeof *a);
    if (a == NULL)
        return UV_ENOMEM;
    a->pool = pool;
    a->deadline_ms = deadline_ms;
    a->cb = cb;
    a->data = data;
    ibcore_backoff_init(&a->backoff, pool->cfg.backoff_base_ms, pool->cfg.backoff_cap_ms, 0,
                        ibcore__splitmix64(&pool->rng));
    wait_push_back(pool, a);
    schedule(pool);
    return 0;
}

int ibcore_pool_release(struct ibcore_pool *pool, struct ibcore_conn *conn)
{
    struct entry *e;
    uint64_t now;

    if (pool == NULL || conn == NULL)
        return UV_EINVAL;
    if (pool->closing)
        return IBCORE_ESHUTDOWN;
    for (e = pool->entries; e != NULL; e = e->next)
        if (e->conn == conn && e->state == E_IN_USE)
            break;
    if (e == NULL)
        return UV_EINVAL;
    now = uv_now(pool->loop);
    if (!ibcore_conn_is_ready(conn) || ibcore_conn_is_poisoned(conn)) {
        entry_close(e);
    } else if (now >= e->retire_ms) {
        retire(pool, e);
    } else {
        e->idle_since_ms = now;
        set_idle(pool, e, now);
    }
    schedule(pool);
    return 0;
}

void ibcore_pool_stats(const struct ibcore_pool *pool, struct ibcore_pool_stats *st)
{
    memset(st, 0, sizeof *st);
    for (const struct acq *a = pool->wait_head; a != NULL; a = a->next)
        st->pending++;
    for (const struct entry *e = pool->entries; e != NULL; e = e->next) {
        st->pending += e->acq != NULL;
        switch (e->state) {
        case E_CONNECTING:
            st->connecting++;
            break;
        case E_VALIDATING:
            st->validating++;
            break;
        case E_IDLE:
            st->idle++;
            break;
        case E_IN_USE:
            st->in_use++;
            break;
        case E_CLOSING:
            continue;
        }
        st->live++;
    }
    st->created = pool->created;
    st->closed = pool->closed;
    st->probes = pool->probes;
    st->probe_failures = pool->probe_failures;
    st->retries = pool->retries;
    st->retired = pool->retired;
    st->zombies_closed = pool->zombies_closed;
    st->suspends = pool->suspends;
}

unsigned ibcore_pool_close_zombies(struct ibcore_pool *pool)
{
    unsigned n;

    if (pool == NULL || pool->closing)
        return 0;
    n = close_own_zombies(pool, NULL);
    if (n > 0)
        schedule(pool);
    return n;
}

void ibcore_pool_close(struct ibcore_pool *pool, void (*cb)(void *data), void *data)
{
    struct acq *list, **tail;

    if (pool == NULL || pool->closing)
        return;
    pool->closing = true;
    pool->close_cb = cb;
    pool->close_data = data;
    /* Every pending acquire, queued or attached to an entry, is collected first (the entries'
     * after the queue's; with the queue empty its tail is &wait_head, not ours to append to)... */
    list = pool->wait_head;
    tail = list != NULL ? pool->wait_tail : &list;
    pool->wait_head = NULL;
    pool->wait_tail = &pool->wait_head;
    for (struct entry *e = pool->entries; e != NULL; e = e->next) {
        if (e->acq != NULL) {
            e->acq->next = NULL;
            *tail = e->acq;
            tail = &e->acq->next;
            e->acq = NULL;
        }
    }
    /* ...then every connection closes (entries are unlinked in their close callbacks)... */
    for (struct entry *e = pool->entries; e != NULL; e = e->next)
        entry_close(e);
    uv_close((uv_handle_t *)&pool->timer, on_timer_closed);
    if (pool->own_registry != NULL)
        ibcore_breakers_close(pool->own_registry, on_registry_closed, pool);
    /* ...and the acquires complete, each once, before this returns. */
    while (list != NULL) {
        struct acq *a = list;

        list = a->next;
        finish(a, NULL, IBCORE_ESHUTDOWN);
    }
}

/* ---- status and score ------------------------------------------------------------------------
 */

struct snapshot {
    struct ibcore_score score;
    struct ibcore_zombies z;
    int scan_rc;
    uint64_t p95_us; /* UINT64_MAX: no probe in the window */
};

/* p95 by nearest rank over the window; UINT64_MAX when empty. */
static uint64_t probe_p95_us(const struct ibcore_pool *p)
{
    uint64_t v[PROBE_WINDOW];
    unsigned n = p->ring_n, rank;

    if (n == 0)
        return UINT64_MAX;
    for (unsigned i = 0; i < n; i++)
        v[i] = p->ring[i].us;
    for (unsigned i = 1; i < n; i++) /* insertion sort: 20 at most */
        for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];

            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    rank = (95 * n + 99) / 100; /* ceil(0.95 n), 1..n */
    return v[rank - 1];
}

static bool entry_healthy(const struct entry *e)
{
    return (e->state == E_VALIDATING || e->state == E_IDLE || e->state == E_IN_USE) && e->healthy &&
           ibcore_conn_is_ready(e->conn) && !ibcore_conn_is_poisoned(e->conn);
}

static void take_snapshot(struct ibcore_pool *p, struct snapshot *s)
{
    struct ibcore_score *sc = &s->score;
    unsigned live = 0, healthy = 0, waiting = 0, ok = 0, wanted;
    bool on_first = false, on_fallback = false;
    uint64_t t_us = p->cfg.probe_timeout_ms * 1000;

    memset(s, 0, sizeof *s);
    switch (ibcore_breaker_state(p->breaker)) {
    case IBCORE_BREAKER_CLOSED:
        sc->breaker = 30;
        break;
    case IBCORE_BREAKER_DISABLED:
        sc->breaker = 15;
        break;
    case IBCORE_BREAKER_HALF_OPEN:
        sc->breaker = 10;
        break;
    default:
        sc->breaker = 0;
        break;
    }
    for (const struct acq *a = p->wait_head; a != NULL; a = a->next)
        waiting++;
    for (const struct entry *e = p->entries; e != NULL; e = e->next) {
        if (e->state == E_CLOSING)
            continue;
        live++;
        healthy += entry_healthy(e);
        if (e->was_ready && ibcore_conn_is_ready(e->conn)) {
            if (e->id_off == 0)
                on_first = true;
            else
                on_fallback = true;
        }
    }
    wanted = live + waiting > 1 ? live + waiting : 1;
    sc->connectivity = healthy >= wanted ? 25 : 25 * healthy / wanted;
    for (unsigned i = 0; i < p->ring_n; i++)
        ok += p->ring[i].ok;
    sc->probe_health = p->ring_n == 0 ? 20 : 20 * ok / p->ring_n;
    s->p95_us = probe_p95_us(p);
    if (s->p95_us == UINT64_MAX || s->p95_us <= t_us / 3)
        sc->latency = 10;
    else if (s->p95_us >= t_us)
        sc->latency = 0;
    else
        sc->latency = (unsigned)(10 * (t_us - s->p95_us) / (t_us - t_us / 3));
    s->scan_rc = ibcore_zombie_scan(p->cfg.port, &s->z);
    if (s->scan_rc < 0)
        sc->zombies = 5;
    else if (s->z.own > 0)
        sc->zombies = 0;
    else if (s->z.foreign > 0)
        sc->zombies = 5;
    else
        sc->zombies = 10;
    sc->client_id = on_first ? 5 : on_fallback ? 3 : 0;
    if (sc->breaker == 0 && sc->connectivity == 0)
        sc->total = 0;
    else
        sc->total = sc->breaker + sc->connectivity + sc->probe_health + sc->latency + sc->zombies +
                    sc->client_id;
}

int ibcore_pool_score(struct ibcore_pool *pool, struct ibcore_score *out)
{
    struct snapshot s;

    if (pool == NULL || out == NULL)
        return UV_EINVAL;
    take_snapshot(pool, &s);
    *out = s.score;
    return 0;
}

struct strbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void sb_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *q = realloc(b->p, cap);

        if (q == NULL) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* A JSON string literal for s (NULL: null). */
static void sb_str(struct strbuf *b, const char *s)
{
    if (s == NULL) {
        sb_printf(b, "null");
        return;
    }
    sb_printf(b, "\"");
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            sb_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            sb_printf(b, "\\u%04x", c);
        else
            sb_printf(b, "%c", c);
    }
    sb_printf(b, "\"");
}

char *ibcore_pool_status_json(struct ibcore_pool *pool)
{
    struct strbuf b = { 0 };
    struct snapshot s;
    struct ibcore_pool_stats st;
    const struct ibcore_score *sc = &s.score;
    uint64_t now;
    const char *sep = "";

    if (pool == NULL)
        return NULL;
    b.cap = 2048;
    b.p = malloc(b.cap);
    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';
    now = uv_now(pool->loop);
    take_snapshot(pool, &s);
    ibcore_pool_stats(pool, &st);
    sb_printf(&b,
              "{\"score\":{\"total\":%u,\"breaker\":%u,\"connectivity\":%u,\"probe_health\":%u,"
              "\"latency\":%u,\"zombies\":%u,\"client_id\":%u},\"endpoint\":{\"host\":",
              sc->total, sc->breaker, sc->connectivity, sc->probe_health, sc->latency, sc->zombies,
              sc->client_id);
    sb_str(&b, pool->host);
    sb_printf(&b, ",\"port\":%d},\"breaker\":{\"state\":", pool->cfg.port);
    sb_str(&b, ibcore_breaker_state_name(ibcore_breaker_state(pool->breaker)));
    sb_printf(&b,
              ",\"consecutive_failures\":%u,\"retry_in_ms\":%llu},"
              "\"pool\":{\"live\":%u,\"connecting\":%u,\"validating\":%u,\"idle\":%u,"
              "\"in_use\":%u,\"pending\":%u,\"max_size\":%u,\"created\":%llu,\"closed\":%llu,"
              "\"probes\":%llu,\"probe_failures\":%llu,\"retries\":%llu,\"retired\":%llu,"
              "\"zombies_closed\":%llu,\"suspends\":%llu,\"connect_retries\":%u,"
              "\"max_lifetime_ms\":%llu},"
              "\"client_ids\":{\"first\":%d,\"cap\":%u,\"pause_ms\":%llu,\"in_use\":[",
              ibcore_breaker_failures(pool->breaker),
              (unsigned long long)ibcore_breaker_retry_in_ms(pool->breaker), st.live, st.connecting,
              st.validating, st.idle, st.in_use, st.pending, pool->cfg.max_size,
              (unsigned long long)st.created, (unsigned long long)st.closed,
              (unsigned long long)st.probes, (unsigned long long)st.probe_failures,
              (unsigned long long)st.retries, (unsigned long long)st.retired,
              (unsigned long long)st.zombies_closed, (unsigned long long)st.suspends,
              pool->cfg.connect_retries, (unsigned long long)pool->cfg.max_lifetime_ms,
              pool->cfg.client_id_first, pool->cfg.client_id_cap,
              (unsigned long long)pool->cfg.client_id_pause_ms);
    for (unsigned off = 0; off < pool->cfg.client_id_cap; off++) {
        for (const struct entry *e = pool->entries; e != NULL; e = e->next) {
            if (e->state != E_CLOSING && e->id_off == (int)off) {
                sb_printf(&b, "%s%d", sep, pool->cfg.client_id_first + (int)off);
                sep = ",";
                break;
            }
        }
    }
    sb_printf(&b, "],\"quarantined\":[");
    sep = "";
    for (unsigned off = 0; off < pool->cfg.client_id_cap; off++) {
        if (pool->quarantine_until[off] > now) {
            sb_printf(&b, "%s{\"id\":%d,\"for_ms\":%llu}", sep,
                      pool->cfg.client_id_first + (int)off,
                      (unsigned long long)(pool->quarantine_until[off] - now));
            sep = ",";
        }
    }
    sb_printf(&b,
              "]},\"validation\":{\"alive_window_ms\":%llu,\"probe_timeout_ms\":%llu,"
              "\"probes\":%llu,\"probe_failures\":%llu,\"window\":[",
              (unsigned long long)pool->cfg.alive_window_ms,
              (unsigned long long)pool->cfg.probe_timeout_ms, (unsigned long long)st.probes,
              (unsigned long long)st.probe_failures);
    for (unsigned i = 0; i < pool->ring_n; i++) { /* oldest first */
        unsigned k = (pool->ring_next + PROBE_WINDOW - pool->ring_n + i) % PROBE_WINDOW;

        sb_printf(&b, "%s{\"ok\":%s,\"ms\":%.3f}", i ? "," : "",
                  pool->ring[k].ok ? "true" : "false", (double)pool->ring[k].us / 1000.0);
    }
    if (s.p95_us == UINT64_MAX)
        sb_printf(&b, "],\"p95_ms\":null}");
    else
        sb_printf(&b, "],\"p95_ms\":%.3f}", (double)s.p95_us / 1000.0);
    sb_printf(&b,
              ",\"idle_gc\":{\"idle\":%u,\"idle_timeout_ms\":%llu,\"health_interval_ms\":%llu,"
              "\"health_strikes\":%u},\"zombies\":{\"own\":%u,\"foreign\":%u,\"scan\":",
              st.idle, (unsigned long long)pool->cfg.idle_timeout_ms,
              (unsigned long long)pool->cfg.health_interval_ms, pool->cfg.health_strikes,
              s.scan_rc < 0 ? 0 : s.z.own, s.scan_rc < 0 ? 0 : s.z.foreign);
    sb_str(&b, s.scan_rc < 0 ? ibcore_err_name(s.scan_rc) : "ok");
    sb_printf(&b, "},\"lock\":{\"path\":");
    sb_str(&b, pool->lock_path != NULL ? pool->lock_path : ibcore_hslock_default_path());
    sb_printf(&b, ",\"enabled\":%s}}", pool->cfg.use_lock ? "true" : "false");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
