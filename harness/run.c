/* The runner: one scenario, the gateway (in-process mockgw, or an external one through its admin
 * API) and the core's pool on one libuv loop over loopback sockets.
 *
 * The runner drives the loop itself (drive(): UV_RUN_ONCE until a condition or a deadline, with
 * a 5 ms tick so it never blocks longer), so each step reads as straight-line code while every
 * operation stays asynchronous. Every operation the run starts is an `op`: it records when it
 * started, its deadline, how often its callback came and with what. After the run, with the pool,
 * the breaker registry and the gateway closed, the invariants are checked over all of them. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "mockgw.h"

/* AddressSanitizer keeps freed memory in quarantine by design: RSS grows under it. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_JUDGED false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_JUDGED false
#endif
#endif
#ifndef RSS_JUDGED
#define RSS_JUDGED true
#endif

#define TICK_MS        5
#define ADMIN_TIMEOUT  3000
#define TEARDOWN_MS    5000
#define LATE_WINDOW_MS 30
#define NO_STEP        UINT32_MAX
#define LOG_KEEP       64  /* the core's log lines kept per run */
#define BREAKER_GRACE  100 /* ms: a connect started just before the breaker opened may land */
#define RECOVER_PAUSE  10  /* ms between the attempts of a recover step */
#define SPAWN_READY_MS 5000
#define SPAWN_STOP_MS  3000
#define CLIENT_STOP_MS 2000  /* from SIGTERM to SIGKILL for a client still running */
#define SOAK_TELEMETRY 4096  /* telemetry events kept during a soak */
#define LAG_CAP        65536 /* spikes of the loop's lateness kept */

enum op_kind { OP_ACQUIRE, OP_REQUEST, OP_HTTP, OP_LOCK };

struct run;

struct op {
    struct run *run;
    struct op *next;
    unsigned step; /* NO_STEP: the runner's own admin calls */
    enum op_kind kind;
    /* monotonic ms: start and deadline on the loop's clock (the core's), end from uv_hrtime();
     * the same clock unless libuv picks the 1 ms coarse one, which is at most 1 ms behind */
    uint64_t start_ms, deadline_ms, end_ms;
    unsigned calls;
    bool sync; /* the call failed at once: no callback is owed */
    bool late; /* the callback came after the pool had closed */
    unsigned done_seq;
    int status;
    int http_status;
    int client_id;
    struct ibcore_conn *conn;   /* lent and not released yet */
    uint64_t release_at_ms;     /* hold_ms: when to give it back; 0 none */
    char *body;                 /* admin calls: the response body */
    struct ibcore_hslock *lock; /* hold_lock: held until release_at_ms */
    struct harness_http *http;
    uint64_t stall_at_start; /* the run's stalled ms when it started: a stall makes it late */
};

struct lag {
    uint64_t at_ms, late_ms;
};

/* A breaker transition as the telemetry reported it. */
struct transition {
    uint64_t wall_ms;
    bool to_open; /* open or forced open */
    char what[40];
};

struct step_rt {
    unsigned started, completed, holding;
    uint64_t journal_seq;
    bool has_seq;
};

struct run {
    uv_loop_t *loop;
    const struct harness_scenario *sc;
    struct harness_result *res;
    uint64_t seed;
    uv_timer_t tick;
    uint64_t scenario_deadline;
    bool aborted;
    bool interrupted; /* harness_interrupt(): the run stops at its next wait */
    int cur_step;     /* the step running, or -1 (setup, checks) */
    bool stopping;    /* the teardown: it runs to the end even when interrupted */
    /* the gateway */
    struct mgw_server *srv;
    bool srv_stopped;
    char gw_host[64];
    int gw_port;
    char admin_host[64];
    int admin_port; /* 0: no admin API */
    uint64_t journal_base;
    bool has_journal_base;
    /* the core */
    struct ibcore_breakers *reg;
    bool reg_closed;
    struct ibcore_pool *pool;
    bool pool_closing, pool_closed;
    struct ibcore_pool_config pc;
    struct ibcore_pool_stats last_stats;
    char lock_path[256];
    bool own_lock;
    /* operations */
    struct op *ops, **ops_tail;
    unsigned n_ops, done_seq;
    struct op **held;
    unsigned n_held, cap_held;
    struct step_rt *rt;
    /* breaker telemetry: "transition:closed->open", "call_not_permitted", ... */
    char **tele;
    unsigned n_tele, cap_tele;
    bool tele_after_close;
    bool stats_bad;
    /* the core's log sink: the last LOG_KEEP lines */
    char *log[LOG_KEEP];
    unsigned log_next, log_n;
    /* stall steps: how long the loop did not run */
    uint64_t stall_total_ms;
    /* the runner's tick: when it is due next, and how late it came lately */
    uint64_t tick_due_ms;
    struct lag *lags;
    unsigned n_lags, cap_lags;
    bool tick_closed;
    /* breaker transitions with their wall time, for the open-breaker invariant */
    struct transition *trs;
    unsigned n_trs, cap_trs;
    bool trs_truncated;
    /* invariant tallies over operations (a soak frees finished ones as it goes) */
    unsigned inv_never, inv_late, inv_overdue;
    uint64_t ops_total;
    /* soak: samples of RSS (KiB) and descriptors, preallocated */
    double *rss, *fds;
    unsigned n_samples, cap_samples, soak_rounds;
    uint64_t next_sample_ms;
    /* gateway_process: the mockgw child */
    uv_process_t proc;
    bool proc_spawned, proc_exited, proc_closed;
    int64_t proc_exit_status;
    int proc_term_signal;
    char ready_path[PATH_MAX], script_path[PATH_MAX];
    /* "client": the external client */
    struct harness__client *client;
    uint64_t client_start_ms, client_ms; /* its start; its lifetime once it exited */
};

/* ---- small helpers --------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static volatile sig_atomic_t interrupt_signal;

void harness_interrupt(int signum)
{
    if (interrupt_signal == 0)
        interrupt_signal = signum > 0 ? signum : SIGTERM;
}

int harness_interrupted(void)
{
    return interrupt_signal;
}

void harness_interrupt_clear(void)
{
    interrupt_signal = 0;
}

const char *harness_signal_name(int signum, char *buf, size_t cap)
{
    switch (signum) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    default:
        snprintf(buf, cap, "signal %d", signum);
        return buf;
    }
}

static void fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct run *r, const char *fmt, ...)
{
    struct harness_result *res = r->res;
    char buf[512];
    va_list ap;

    res->verdict = HARNESS_FAIL;
    if (r->interrupted && !r->stopping)
        return; /* a wait cut short says nothing about the code under test */
    res->n_failures_total++;
    if (res->n_failures >= HARNESS_MAX_FAILURES)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    res->failures[res->n_failures] = harness__strdup(buf);
    if (res->failures[res->n_failures] != NULL)
        res->n_failures++;
}

/* A failure that must show even when many came before it (the soak's verdict after a flood of
 * per-round ones): it goes first. */
static void fail_first(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_first(struct run *r, const char *fmt, ...)
{
    struct harness_result *res = r->res;
    char buf[512], *copy;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    res->verdict = HARNESS_FAIL;
    res->n_failures_total++;
    if ((copy = harness__strdup(buf)) == NULL)
        return;
    if (res->n_failures == HARNESS_MAX_FAILURES)
        free(res->failures[--res->n_failures]);
    memmove(res->failures + 1, res->failures, res->n_failures * sizeof *res->failures);
    res->failures[0] = copy;
    res->n_failures++;
}

static int count_fds(void)
{
    return harness__fd_count();
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    ++*(unsigned *)arg;
}

static unsigned count_handles(uv_loop_t *loop)
{
    unsigned n = 0;

    uv_walk(loop, count_handle, &n);
    return n;
}

static void describe_handle(uv_handle_t *h, void *arg)
{
    char *buf = arg;
    size_t len = strlen(buf);

    if (len < 200)
        snprintf(buf + len, 256 - len, "%s%s%s", len > 0 ? ", " : "", uv_handle_type_name(h->type),
                 uv_is_closing(h) ? " (closing)" : "");
}

/* The loop's own lateness: how late the runner's 5 ms timer fires. A deadline timer of the
 * core that is due at the same moment fires as late, and that is the machine's (load, a
 * sanitizer build), not the core's. Only spikes (late by more than a tick) are kept. */
static void on_tick(uv_timer_t *t)
{
    struct run *r = t->data;
    uint64_t now = now_ms(), late;

    late = r->tick_due_ms != 0 && now > r->tick_due_ms ? now - r->tick_due_ms : 0;
    r->tick_due_ms = now + TICK_MS;
    if (late <= TICK_MS || r->n_lags >= LAG_CAP)
        return;
    if (r->n_lags == r->cap_lags) {
        unsigned cap = r->cap_lags ? r->cap_lags * 2 : 64;
        struct lag *n = realloc(r->lags, cap * sizeof *n);

        if (n == NULL)
            return;
        r->lags = n;
        r->cap_lags = cap;
    }
    r->lags[r->n_lags].at_ms = now;
    r->lags[r->n_lags].late_ms = late;
    r->n_lags++;
}

/* The most the loop ran late in [from, to] (monotonic ms). */
static uint64_t loop_lag(const struct run *r, uint64_t from, uint64_t to)
{
    uint64_t most = 0;

    for (unsigned i = 0; i < r->n_lags; i++)
        if (r->lags[i].at_ms >= from && r->lags[i].at_ms <= to && r->lags[i].late_ms > most)
            most = r->lags[i].late_ms;
    return most;
}

/* A soak keeps only the spikes an unaccounted operation may still need. */
static void prune_lags(struct run *r, uint64_t before)
{
    unsigned k = 0;

    for (unsigned i = 0; i < r->n_lags; i++)
        if (r->lags[i].at_ms >= before)
            r->lags[k++] = r->lags[i];
    r->n_lags = k;
}

/* The loop's clock, read now: the one the core's timers and deadlines use. */
static uint64_t loop_now(struct run *r)
{
    uv_update_time(r->loop);
    return uv_now(r->loop);
}

/* ---- the driver ------------------------------------------------------------------------------ */

static void check_stats(struct run *r)
{
    struct ibcore_pool_stats st;

    if (r->pool == NULL || r->pool_closing)
        return;
    ibcore_pool_stats(r->pool, &st);
    r->last_stats = st;
    if (r->stats_bad)
        return;
    if (st.live != st.connecting + st.validating + st.idle + st.in_use ||
        st.live > r->pc.max_size || st.closed > st.created) {
        r->stats_bad = true;
        fail(r,
             "invariant: pool counters inconsistent (live %u, connecting %u, validating %u, "
             "idle %u, in_use %u, max_size %u, created %llu, closed %llu)",
             st.live, st.connecting, st.validating, st.idle, st.in_use, r->pc.max_size,
             (unsigned long long)st.created, (unsigned long long)st.closed);
    }
}

static void pump_acquires(struct run *r, unsigned step);

/* Gives back the held connections whose hold_ms is over. */
static void release_due(struct run *r)
{
    uint64_t now = now_ms();

    for (struct op *op = r->ops; op != NULL; op = op->next) {
        if (op->release_at_ms == 0 || now < op->release_at_ms)
            continue;
        op->release_at_ms = 0;
        if (op->kind == OP_LOCK) { /* the "other process" lets go of the handshake lock */
            ibcore_hslock_release(op->lock);
            op->lock = NULL;
            continue;
        }
        r->rt[op->step].holding--;
        if (op->conn != NULL && !r->pool_closing) {
            int rc = ibcore_pool_release(r->pool, op->conn);

            if (rc < 0)
                fail(r, "%s: release: %s", r->sc->steps[op->step].path, ibcore_strerror(rc));
        }
        op->conn = NULL;
        if (!r->pool_closing)
            pump_acquires(r, op->step); /* that worker is free again */
    }
}

typedef bool (*done_fn)(struct run *r, const void *arg);

/* Runs the loop until done(r, arg) holds (true) or deadline_ms (monotonic) passes (false). */
static void soak_sample(struct run *r);

static bool drive(struct run *r, done_fn done, const void *arg, uint64_t deadline_ms)
{
    for (;;) {
        if (interrupt_signal != 0 && !r->stopping) {
            if (!r->interrupted) {
                char buf[32];

                if (r->cur_step >= 0)
                    fail(r, "interrupted by %s during %s (%s); torn down",
                         harness_signal_name(interrupt_signal, buf, sizeof buf),
                         r->sc->steps[r->cur_step].path, r->sc->steps[r->cur_step].label);
                else
                    fail(r, "interrupted by %s outside the steps; torn down",
                         harness_signal_name(interrupt_signal, buf, sizeof buf));
                r->interrupted = true;
                r->aborted = true;
            }
            return false;
        }
        release_due(r);
        check_stats(r);
        soak_sample(r);
        if (done(r, arg))
            return true;
        if (now_ms() >= deadline_ms)
            return false;
        uv_run(r->loop, UV_RUN_ONCE); /* the tick bounds it to TICK_MS */
    }
}

static bool never(struct run *r, const void *arg)
{
    (void)r;
    (void)arg;
    return false;
}

/* ---- operations ------------------------------------------------------------------------------ */

static struct op *op_new(struct run *r, unsigned step, enum op_kind kind, uint64_t timeout_ms)
{
    struct op *op = calloc(1, sizeof *op);

    if (op == NULL)
        return NULL;
    op->run = r;
    op->step = step;
    op->kind = kind;
    op->client_id = -1;
    /* The deadline judged is the one the core is given (op->deadline_ms, on the loop's clock,
     * read here): a stall between this and the call (a page fault, the process descheduled) must
     * not make the core's deadline later than the judged one, or an acquire that ends on time
     * is reported late (one way to get the soak's "27 ms after its deadline"). */
    op->start_ms = loop_now(r);
    op->deadline_ms = op->start_ms + timeout_ms;
    op->stall_at_start = r->stall_total_ms;
    *r->ops_tail = op;
    r->ops_tail = &op->next;
    r->n_ops++;
    return op;
}

static const char *kind_name(enum op_kind k)
{
    return k == OP_ACQUIRE   ? "an acquire"
           : k == OP_REQUEST ? "a request"
           : k == OP_HTTP    ? "an admin"
                             : "a lock";
}

/* The callback came: counted, and the first one recorded. False for a second one. */
static bool op_complete(struct op *op, int status)
{
    struct run *r = op->run;

    if (++op->calls > 1) {
        fail(r, "invariant: %s operation of %s completed %u times", kind_name(op->kind),
             op->step == NO_STEP ? "the runner" : r->sc->steps[op->step].path, op->calls);
        return false;
    }
    if (r->pool_closed && op->kind != OP_HTTP)
        op->late = true;
    op->end_ms = now_ms();
    op->status = status;
    op->done_seq = ++r->done_seq;
    return true;
}

static bool op_done(struct run *r, const void *arg)
{
    (void)r;
    return ((const struct op *)arg)->calls > 0;
}

static void held_push(struct run *r, struct op *op)
{
    if (r->n_held == r->cap_held) {
        unsigned cap = r->cap_held ? r->cap_held * 2 : 16;
        struct op **n = realloc(r->held, cap * sizeof *n);

        if (n == NULL) { /* give it back rather than lose it */
            ibcore_pool_release(r->pool, op->conn);
            op->conn = NULL;
            fail(r, "out of memory");
            return;
        }
        r->held = n;
        r->cap_held = cap;
    }
    r->held[r->n_held++] = op;
}

static void pump_acquires(struct run *r, unsigned step);

static void on_acquired(struct ibcore_conn *conn, int status, void *data)
{
    struct op *op = data;
    struct run *r = op->run;
    const struct harness_step *st = &r->sc->steps[op->step];
    struct step_rt *rt = &r->rt[op->step];

    if (!op_complete(op, status))
        return;
    if ((conn != NULL) != (status == 0))
        fail(r, "%s: acquire completed with status %d and %s connection", st->path, status,
             conn != NULL ? "a" : "no");
    rt->completed++;
    if (conn != NULL) {
        op->conn = conn;
        op->client_id = ibcore_conn_client_id(conn);
        if (!ibcore_conn_is_ready(conn))
            fail(r, "%s: acquire handed out a connection that is not ready", st->path);
        for (const struct op *o = r->ops; o != NULL; o = o->next) {
            if (o != op && o->conn != NULL && o->client_id == op->client_id &&
                ibcore_conn_is_ready(o->conn)) {
                fail(r,
                     "invariant: %s: an acquire handed out a connection with client id %d while "
                     "another lent connection holds that id",
                     st->path, op->client_id);
                break;
            }
        }
        if (r->pool_closing) {
            op->conn = NULL;
        } else if (st->keep) {
            held_push(r, op);
        } else if (st->hold_ms > 0) {
            op->release_at_ms = op->end_ms + st->hold_ms;
            rt->holding++;
        } else {
            ibcore_pool_release(r->pool, conn);
            op->conn = NULL;
        }
    }
    pump_acquires(r, op->step);
}

/* Starts acquires of step until count are started or concurrency are in flight. */
static void pump_acquires(struct run *r, unsigned step)
{
    const struct harness_step *st = &r->sc->steps[step];
    struct step_rt *rt = &r->rt[step];

    /* A worker is busy from its acquire until the connection is given back (hold_ms). */
    while (rt->started < st->count && rt->started - rt->completed + rt->holding < st->concurrency) {
        struct op *op;
        int rc;

        rt->started++;
        if ((op = op_new(r, step, OP_ACQUIRE, st->deadline_ms)) == NULL) {
            rt->completed++;
            fail(r, "%s: out of memory", st->path);
            continue;
        }
        rc = r->pool == NULL || r->pool_closing
                 ? IBCORE_ESHUTDOWN
                 : ibcore_pool_acquire(r->pool, op->deadline_ms, on_acquired, op);
        if (rc < 0) { /* no callback is owed */
            op->sync = true;
            op->calls = 1;
            op->status = rc;
            op->end_ms = now_ms();
            op->done_seq = ++r->done_seq;
            rt->completed++;
        }
    }
}

static bool acquires_done(struct run *r, const void *arg)
{
    unsigned step = *(const unsigned *)arg;

    return r->rt[step].completed == r->sc->steps[step].count && r->rt[step].holding == 0;
}

static void on_time(struct ibcore_conn *c, int status, int64_t epoch_s, void *data)
{
    (void)c;
    (void)epoch_s;
    op_complete(data, status);
}

static void on_lock(struct ibcore_hslock *lock, int status, void *data)
{
    struct op *op = data;

    if (!op_complete(op, status)) {
        ibcore_hslock_release(lock);
        return;
    }
    op->lock = lock;
    if (lock != NULL)
        op->release_at_ms = op->end_ms + op->run->sc->steps[op->step].hold_ms;
}

static void on_http(struct harness_http *h, int status, int http_status, const char *body,
                    size_t len, void *data)
{
    struct op *op = data;

    (void)h;
    (void)len;
    op->http = NULL;
    if (!op_complete(op, status))
        return;
    op->http_status = http_status;
    if (body != NULL)
        op->body = harness__strdup(body);
}

/* One admin API call, waited for. NULL only when out of memory; check op->status. */
static struct op *admin_call(struct run *r, unsigned step, const char *method, const char *target,
                             const char *body, uint64_t timeout_ms)
{
    struct op *op = op_new(r, step, OP_HTTP, timeout_ms);
    int rc;

    if (op == NULL)
        return NULL;
    rc = harness_http_request(r->loop, r->admin_host, r->admin_port, method, target, body,
                              timeout_ms, on_http, op, &op->http);
    if (rc < 0) {
        op->sync = true;
        op->calls = 1;
        op->status = rc;
        op->end_ms = now_ms();
        return op;
    }
    if (!drive(r, op_done, op, op->deadline_ms + 1000)) /* its own timer fires first */
        harness_http_cancel(op->http);
    return op;
}

/* GET path and parse the JSON answer; NULL with a failure recorded. */
static cJSON *admin_json(struct run *r, const char *target, const char *what)
{
    struct op *op = admin_call(r, NO_STEP, "GET", target, NULL, ADMIN_TIMEOUT);
    cJSON *doc;

    if (op == NULL || op->status < 0 || op->http_status != 200 || op->body == NULL) {
        fail(r, "%s: GET %s failed: %s", what, target,
             op == NULL             ? "out of memory"
             : op->status < 0       ? ibcore_strerror(op->status)
             : op->http_status != 0 ? "unexpected HTTP status"
                                    : "no body");
        return NULL;
    }
    if ((doc = cJSON_Parse(op->body)) == NULL)
        fail(r, "%s: GET %s: the answer is not JSON", what, target);
    return doc;
}

static bool journal_seq(struct run *r, const char *what, uint64_t *seq)
{
    cJSON *doc = admin_json(r, "/v1/status", what);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "journal_seq");
    bool ok = cJSON_IsNumber(v) && v->valuedouble >= 0;

    if (doc != NULL && !ok)
        fail(r, "%s: GET /v1/status has no journal_seq", what);
    if (ok)
        *seq = (uint64_t)v->valuedouble;
    cJSON_Delete(doc);
    return ok;
}

static cJSON *journal_since(struct run *r, uint64_t seq, const char *what)
{
    char target[96];
    cJSON *doc;

    snprintf(target, sizeof target, "/v1/journal?since=%llu&kind=events", (unsigned long long)seq);
    doc = admin_json(r, target, what);
    if (doc != NULL && !cJSON_IsArray(doc)) {
        fail(r, "%s: GET %s: expected an array", what, target);
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* ---- telemetry ------------------------------------------------------------------------------- */

static void record_transition(struct run *r, const struct transition *t)
{
    if (r->n_trs == r->cap_trs) {
        unsigned cap = r->cap_trs ? r->cap_trs * 2 : 16;
        struct transition *n;

        if (r->sc->soak != NULL && r->n_trs >= SOAK_TELEMETRY) {
            r->trs_truncated = true;
            return;
        }
        if ((n = realloc(r->trs, cap * sizeof *n)) == NULL)
            return;
        r->trs = n;
        r->cap_trs = cap;
    }
    r->trs[r->n_trs++] = *t;
}

static void on_telemetry(const char *json, void *data)
{
    struct run *r = data;
    cJSON *doc = cJSON_Parse(json);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(doc, "event");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(doc, "from");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(doc, "to");
    char buf[96];

    if (r->reg_closed)
        r->tele_after_close = true;
    if (cJSON_IsString(ev) && strcmp(ev->valuestring, "transition") == 0 && cJSON_IsString(from) &&
        cJSON_IsString(to)) {
        const cJSON *wall = cJSON_GetObjectItemCaseSensitive(doc, "wall");
        struct transition t;

        snprintf(buf, sizeof buf, "transition:%s->%s", from->valuestring, to->valuestring);
        memset(&t, 0, sizeof t);
        snprintf(t.what, sizeof t.what, "%s->%s", from->valuestring, to->valuestring);
        t.to_open =
            strcmp(to->valuestring, "open") == 0 || strcmp(to->valuestring, "forced_open") == 0;
        if (cJSON_IsString(wall) && harness__iso_ms(wall->valuestring, &t.wall_ms))
            record_transition(r, &t);
    } else {
        snprintf(buf, sizeof buf, "%s", cJSON_IsString(ev) ? ev->valuestring : "?");
    }
    cJSON_Delete(doc);
    if (r->sc->soak != NULL && r->n_tele >= SOAK_TELEMETRY)
        return; /* a soak's telemetry is counted at the start, not kept for ever */
    if (r->n_tele == r->cap_tele) {
        unsigned cap = r->cap_tele ? r->cap_tele * 2 : 32;
        char **n = realloc(r->tele, cap * sizeof *n);

        if (n == NULL)
            return;
        r->tele = n;
        r->cap_tele = cap;
    }
    if ((r->tele[r->n_tele] = harness__strdup(buf)) != NULL)
        r->n_tele++;
}

static void on_core_log(enum ibcore_log_level level, const char *json, void *data)
{
    struct run *r = data;
    char buf[640];

    snprintf(buf, sizeof buf, "%s %s", ibcore_log_level_name(level), json);
    free(r->log[r->log_next]);
    r->log[r->log_next] = harness__strdup(buf);
    r->log_next = (r->log_next + 1) % LOG_KEEP;
    if (r->log_n < LOG_KEEP)
        r->log_n++;
}

/* The kept lines, oldest first, one per line; NULL when none. */
static char *join_log(struct run *r)
{
    unsigned first = (r->log_next + LOG_KEEP - r->log_n) % LOG_KEEP;
    size_t len = 1, at = 0;
    char *out;

    for (unsigned i = 0; i < r->log_n; i++) {
        const char *l = r->log[(first + i) % LOG_KEEP];

        len += l != NULL ? strlen(l) + 1 : 0;
    }
    if (r->log_n == 0 || (out = malloc(len)) == NULL)
        return NULL;
    for (unsigned i = 0; i < r->log_n; i++) {
        const char *l = r->log[(first + i) % LOG_KEEP];
        size_t n = l != NULL ? strlen(l) : 0;

        if (l == NULL)
            continue;
        memcpy(out + at, l, n);
        at += n;
        out[at++] = '\n';
    }
    out[at] = '\0';
    return out;
}

/* ---- expectations ---------------------------------------------------------------------------- */

static int by_done_seq(const void *a, const void *b)
{
    const struct op *x = *(const struct op *const *)a, *y = *(const struct op *const *)b;

    return (x->done_seq > y->done_seq) - (x->done_seq < y->done_seq);
}

static enum harness_status op_outcome(const struct op *op, const struct harness_expect *e)
{
    if (op->kind != OP_HTTP || op->status < 0)
        return harness_status_of(op->status);
    if (e->http_status != 0)
        return op->http_status == e->http_status ? HARNESS_STATUS_OK : HARNESS_STATUS_HTTP_ERROR;
    return op->http_status >= 200 && op->http_status < 300 ? HARNESS_STATUS_OK
                                                           : HARNESS_STATUS_HTTP_ERROR;
}

static void check_journal(struct run *r, const struct harness_journal_expect *j, uint64_t since,
                          const char *path)
{
    struct harness__journal_facts f;
    char want[48], what[HARNESS__PATH_CAP];
    cJSON *entries;

    snprintf(what, sizeof what, "%s.journal", path);
    if ((entries = journal_since(r, since, what)) == NULL)
        return;
    harness__journal_facts(entries, &f);
    if (!harness_range_holds(&j->accepted, f.accepted))
        fail(r, "%s.accepted: the gateway accepted %u connections, expected %s", what, f.accepted,
             harness_range_str(&j->accepted, want, sizeof want));
    if (!harness_range_holds(&j->max_in_flight, f.max_in_flight))
        fail(r, "%s.max_handshakes_in_flight: %u handshakes were in flight at once, expected %s",
             what, f.max_in_flight, harness_range_str(&j->max_in_flight, want, sizeof want));
    if (j->has_client_ids) {
        bool same = f.n_client_ids_total == j->n_client_ids;
        char got[160] = "", exp[160] = "";

        for (unsigned i = 0; same && i < j->n_client_ids; i++)
            same = f.client_ids[i] == j->client_ids[i];
        if (!same) {
            for (unsigned i = 0; i < f.n_client_ids && i < 16; i++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", i ? "," : "",
                         f.client_ids[i]);
            if (f.n_client_ids_total > 16)
                snprintf(got + strlen(got), sizeof got - strlen(got), ",... %u in all",
                         f.n_client_ids_total);
            for (unsigned i = 0; i < j->n_client_ids; i++)
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%d", i ? "," : "",
                         j->client_ids[i]);
            fail(r, "%s.client_ids: the gateway saw client ids [%s], expected [%s]", what, got,
                 exp);
        }
    }
    for (unsigned i = 0; i < j->n_events; i++) {
        unsigned n = harness__journal_count(entries, j->events[i].name);

        if (!harness_range_holds(&j->events[i].range, n))
            fail(r, "%s.events.%s: %u in the journal, expected %s", what, j->events[i].name, n,
                 harness_range_str(&j->events[i].range, want, sizeof want));
    }
    if (j->min_connect_interval.set && f.has_connect_gap &&
        !harness_range_holds(&j->min_connect_interval, (int64_t)f.min_connect_gap_ms))
        fail(r,
             "%s.min_connect_interval_ms: connection %u came %llu ms after the one before, "
             "expected %s",
             what, f.gap_at, (unsigned long long)f.min_connect_gap_ms,
             harness_range_str(&j->min_connect_interval, want, sizeof want));
    if (j->reconnect.set && f.drops == 0)
        fail(r, "%s.reconnect_ms: the gateway never dropped a ready session (nothing to judge)",
             what);
    else if (j->reconnect.set && f.never_reconnected)
        fail(r,
             "%s.reconnect_ms: no session was ready again after the gateway's last drop "
             "(%u drops)",
             what, f.drops);
    else if (j->reconnect.set && !harness_range_holds(&j->reconnect, (int64_t)f.max_reconnect_ms))
        fail(r,
             "%s.reconnect_ms: ready again %llu ms after a drop at the longest (%u drops), "
             "expected %s",
             what, (unsigned long long)f.max_reconnect_ms, f.drops,
             harness_range_str(&j->reconnect, want, sizeof want));
    if (!harness_range_holds(&j->same_id_after_326, f.same_id_after_326))
        fail(r,
             "%s.same_id_after_326: %u times the next handshake after a 326 asked for the "
             "refused client id again, expected %s",
             what, f.same_id_after_326,
             harness_range_str(&j->same_id_after_326, want, sizeof want));
    cJSON_Delete(entries);
}

/* The state expectations (stats, score, pool_status, journal) at path. */
static void check_state(struct run *r, const struct harness_expect *e, const char *path,
                        uint64_t journal_since_seq, bool has_seq)
{
    char want[48], why[256];
    bool needs_pool = e->score.set || e->n_fields > 0;

    check_stats(r);

    for (int i = 0; i < HARNESS_STAT_COUNT; i++) {
        uint64_t v = harness_stat_get(&r->last_stats, (enum harness_stat)i);

        if (e->stats[i].set && !harness_range_holds(&e->stats[i], (int64_t)v))
            fail(r, "%s.stats.%s: is %llu, expected %s", path,
                 harness_stat_name((enum harness_stat)i), (unsigned long long)v,
                 harness_range_str(&e->stats[i], want, sizeof want));
    }
    if (needs_pool && (r->pool == NULL || r->pool_closing)) {
        fail(r, "%s: score and pool_status need an open pool", path);
    } else if (needs_pool) {
        struct ibcore_score s;
        char *json;
        cJSON *doc;

        if (e->score.set && ibcore_pool_score(r->pool, &s) == 0 &&
            !harness_range_holds(&e->score, s.total))
            fail(r,
                 "%s.score: is %u (breaker %u, connectivity %u, probes %u, latency %u, zombies "
                 "%u, client id %u), expected %s",
                 path, s.total, s.breaker, s.connectivity, s.probe_health, s.latency, s.zombies,
                 s.client_id, harness_range_str(&e->score, want, sizeof want));
        if (e->n_fields > 0) {
            json = ibcore_pool_status_json(r->pool);
            doc = json != NULL ? cJSON_Parse(json) : NULL;
            free(json);
            if (doc == NULL)
                fail(r, "%s.pool_status: the status JSON could not be read", path);
            for (unsigned i = 0; doc != NULL && i < e->n_fields; i++)
                if (!harness__field_check(&e->fields[i], doc, why, sizeof why))
                    fail(r, "%s.pool_status.%s: %s", path, e->fields[i].path, why);
            cJSON_Delete(doc);
        }
    }
    if (e->journal.set && has_seq)
        check_journal(r, &e->journal, journal_since_seq, path);
}

static void check_ops(struct run *r, unsigned step)
{
    const struct harness_step *st = &r->sc->steps[step];
    const struct harness_expect *e = &st->expect;
    unsigned counts[HARNESS_STATUS_COUNT] = { 0 }, n = 0, k = 0, bad_status = 0;
    char path[HARNESS__PATH_CAP], want[48];
    struct op **ops;
    bool default_ok = st->kind == HARNESS_STEP_GATEWAY && e->status_mask == 0;

    snprintf(path, sizeof path, "%s.expect", st->path);
    for (struct op *op = r->ops; op != NULL; op = op->next)
        n += op->step == step;
    if (n == 0 || (ops = calloc(n, sizeof *ops)) == NULL)
        return;
    for (struct op *op = r->ops; op != NULL; op = op->next)
        if (op->step == step)
            ops[k++] = op;
    qsort(ops, n, sizeof *ops, by_done_seq);
    for (unsigned i = 0; i < n; i++) {
        const struct op *op = ops[i];
        enum harness_status s = op_outcome(op, e);
        uint64_t took = op->end_ms - op->start_ms;
        unsigned mask = default_ok ? 1u << HARNESS_STATUS_OK : e->status_mask;

        if (op->calls == 0)
            continue; /* the invariants report it */
        counts[s]++;
        if (mask != 0 && !(mask & (1u << s)) && bad_status++ == 0) {
            char allowed[160] = "";

            for (int b = 0; b < HARNESS_STATUS_COUNT; b++)
                if (mask & (1u << b))
                    snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed),
                             "%s\"%s\"", allowed[0] ? " or " : "",
                             harness_status_name((enum harness_status)b));
            if (op->kind == OP_HTTP && op->status == 0)
                fail(r, "%s.status: %s %s answered HTTP %d (expected %s)", path, st->method,
                     st->target, op->http_status, allowed);
            else
                fail(r,
                     "%s.status: operation %u of %u ended \"%s\" (%s) after %llu ms (expected %s)",
                     path, i + 1, n, harness_status_name(s),
                     op->status < 0 ? ibcore_strerror(op->status) : "success",
                     (unsigned long long)took, allowed);
        }
        if (e->has_within && took > e->within_ms)
            fail(r, "%s.within_ms: operation %u of %u took %llu ms (\"%s\"), expected <= %llu",
                 path, i + 1, n, (unsigned long long)took, harness_status_name(s),
                 (unsigned long long)e->within_ms);
        if (e->has_after && took < e->after_ms)
            fail(r, "%s.after_ms: operation %u of %u took %llu ms (\"%s\"), expected >= %llu", path,
                 i + 1, n, (unsigned long long)took, harness_status_name(s),
                 (unsigned long long)e->after_ms);
    }
    if (bad_status > 1)
        fail(r, "%s.status: %u of %u operations ended otherwise", path, bad_status, n);
    for (int s = 0; s < HARNESS_STATUS_COUNT; s++)
        if (!harness_range_holds(&e->statuses[s], counts[s]))
            fail(r, "%s.statuses.%s: %u operations, expected %s", path,
                 harness_status_name((enum harness_status)s), counts[s],
                 harness_range_str(&e->statuses[s], want, sizeof want));
    if (e->has_client_ids) {
        char got[160] = "", exp[160] = "";
        unsigned m = 0;
        bool same = true;

        for (unsigned i = 0; i < n; i++) {
            if (ops[i]->kind != OP_ACQUIRE || ops[i]->status != 0)
                continue;
            same = same && m < e->n_client_ids && e->client_ids[m] == ops[i]->client_id;
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", m ? "," : "",
                     ops[i]->client_id);
            m++;
        }
        same = same && m == e->n_client_ids;
        if (!same) {
            for (unsigned i = 0; i < e->n_client_ids; i++)
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%d", i ? "," : "",
                         e->client_ids[i]);
            fail(r, "%s.client_ids: the successes had client ids [%s], expected [%s]", path, got,
                 exp);
        }
    }
    free(ops);
}

static void check_step(struct run *r, unsigned step)
{
    const struct harness_step *st = &r->sc->steps[step];
    char path[HARNESS__PATH_CAP];

    snprintf(path, sizeof path, "%s.expect", st->path);
    check_ops(r, step);
    check_stats(r);
    check_state(r, &st->expect, path, r->rt[step].journal_seq, r->rt[step].has_seq);
}

static void check_telemetry(struct run *r)
{
    const struct harness_expect *e = &r->sc->expect;
    char want[48];

    if (e->has_transitions) {
        char got[256] = "", exp[256] = "";
        unsigned m = 0;
        bool same = true;

        for (unsigned i = 0; i < r->n_tele; i++) {
            const char *t = r->tele[i];

            if (strncmp(t, "transition:", 11) != 0)
                continue;
            t += 11;
            same = same && m < e->n_transitions && strcmp(e->transitions[m], t) == 0;
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", m ? ", " : "", t);
            m++;
        }
        same = same && m == e->n_transitions;
        if (!same) {
            for (unsigned i = 0; i < e->n_transitions; i++)
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%s", i ? ", " : "",
                         e->transitions[i]);
            fail(r, "$.expect.telemetry.transitions: the breaker went [%s], expected [%s]", got,
                 exp);
        }
    }
    for (unsigned i = 0; i < e->n_telemetry; i++) {
        unsigned n = 0;
        size_t len = strlen(e->telemetry[i].name);

        for (unsigned k = 0; k < r->n_tele; k++)
            n += strncmp(r->tele[k], e->telemetry[i].name, len) == 0 &&
                 (r->tele[k][len] == '\0' || r->tele[k][len] == ':');
        if (!harness_range_holds(&e->telemetry[i].range, n))
            fail(r, "$.expect.telemetry.events.%s: %u events, expected %s", e->telemetry[i].name, n,
                 harness_range_str(&e->telemetry[i].range, want, sizeof want));
    }
}

/* ---- steps ----------------------------------------------------------------------------------- */

static bool pool_usable(struct run *r, const struct harness_step *st)
{
    if (r->pool != NULL && !r->pool_closing)
        return true;
    fail(r, "%s: %s needs the pool, which is closed", st->path, st->label);
    return false;
}

struct wait_arg {
    uint64_t until_ms;
};

static bool time_reached(struct run *r, const void *arg)
{
    (void)r;
    return now_ms() >= ((const struct wait_arg *)arg)->until_ms;
}

struct probes_arg {
    uint64_t target;
};

static bool probes_reached(struct run *r, const void *arg)
{
    return r->pool != NULL && !r->pool_closing &&
           r->last_stats.probes >= ((const struct probes_arg *)arg)->target;
}

static bool stats_reached(struct run *r, const void *arg)
{
    const struct harness_range *until = arg;

    if (r->pool == NULL || r->pool_closing)
        return false;
    for (int i = 0; i < HARNESS_STAT_COUNT; i++)
        if (!harness_range_holds(&until[i],
                                 (int64_t)harness_stat_get(&r->last_stats, (enum harness_stat)i)))
            return false;
    return true;
}

static void on_pool_closed(void *data)
{
    ((struct run *)data)->pool_closed = true;
}

/* Closes the pool (once): its lent connections are no longer ours to release. */
static void pool_close(struct run *r)
{
    if (r->pool == NULL || r->pool_closing)
        return;
    check_stats(r);
    r->pool_closing = true;
    for (struct op *op = r->ops; op != NULL; op = op->next) {
        if (op->release_at_ms != 0 && op->kind != OP_LOCK) {
            op->release_at_ms = 0;
            r->rt[op->step].holding--;
        }
        op->conn = NULL;
    }
    r->n_held = 0;
    ibcore_pool_close(r->pool, on_pool_closed, r);
}

static bool pool_is_closed(struct run *r, const void *arg)
{
    (void)arg;
    return r->pool_closed;
}

static void do_release(struct run *r, const struct harness_step *st)
{
    unsigned from = 0, n = r->n_held;

    if (st->conn >= 0) {
        if ((unsigned)st->conn >= r->n_held) {
            fail(r, "%s.conn: no held connection %d (%u held)", st->path, st->conn, r->n_held);
            return;
        }
        from = (unsigned)st->conn;
        n = 1;
    } else if (st->count > 0) {
        if (st->count > r->n_held) {
            fail(r, "%s.count: %u to release, %u held", st->path, st->count, r->n_held);
            return;
        }
        n = st->count;
    }
    if (n == 0)
        return; /* nothing held: nothing to give back */
    for (unsigned i = from; i < from + n; i++) {
        int rc = ibcore_pool_release(r->pool, r->held[i]->conn);

        if (rc < 0)
            fail(r, "%s: release: %s", st->path, ibcore_strerror(rc));
        r->held[i]->conn = NULL;
    }
    memmove(r->held + from, r->held + from + n, (r->n_held - from - n) * sizeof *r->held);
    r->n_held -= n;
}

/* The score is what the core documents: each component within its maximum, and the total their
 * sum, except 0 when the breaker and connectivity are both 0. */
static void check_score(struct run *r, const struct harness_step *st)
{
    struct ibcore_score s;
    unsigned sum;

    if (ibcore_pool_score(r->pool, &s) != 0) {
        fail(r, "%s: ibcore_pool_score failed", st->path);
        return;
    }
    sum = s.breaker + s.connectivity + s.probe_health + s.latency + s.zombies + s.client_id;
    if (s.breaker > 30 || s.connectivity > 25 || s.probe_health > 20 || s.latency > 10 ||
        s.zombies > 10 || s.client_id > 5 ||
        !(s.total == sum || (s.total == 0 && s.breaker == 0 && s.connectivity == 0)))
        fail(r,
             "invariant: %s: the score is inconsistent: total %u of breaker %u, connectivity %u, "
             "probes %u, latency %u, zombies %u, client id %u",
             st->path, s.total, s.breaker, s.connectivity, s.probe_health, s.latency, s.zombies,
             s.client_id);
}

/* Acquires (each given back at once) until one succeeds, pausing between failures; true when
 * one did before deadline (monotonic ms). */
static bool recover(struct run *r, unsigned i, uint64_t deadline)
{
    const struct harness_step *st = &r->sc->steps[i];
    uint64_t until = now_ms() + st->deadline_ms;
    int last = UV_ETIMEDOUT;

    if (until > deadline)
        until = deadline;
    while (now_ms() < until) {
        uint64_t now = now_ms();
        struct op *op = op_new(r, i, OP_ACQUIRE, until > now ? until - now : 0);
        struct wait_arg pause;
        int rc;

        if (op == NULL)
            return false;
        r->rt[i].started++;
        rc = ibcore_pool_acquire(r->pool, op->deadline_ms, on_acquired, op);
        if (rc < 0) {
            op->sync = true;
            op->calls = 1;
            op->status = rc;
            op->end_ms = now_ms();
            op->done_seq = ++r->done_seq;
            r->rt[i].completed++;
        } else if (!drive(r, op_done, op, deadline)) {
            return false;
        }
        if (op->status == 0)
            return true;
        last = op->status;
        pause.until_ms = now_ms() + RECOVER_PAUSE;
        if (pause.until_ms >= until || !drive(r, time_reached, &pause, deadline))
            break;
    }
    fail(r, "%s: the pool did not recover within %llu ms (the last acquire: \"%s\", %s)", st->path,
         (unsigned long long)st->deadline_ms, harness_status_name(harness_status_of(last)),
         ibcore_strerror(last));
    return true; /* the step finished; its failure is recorded */
}

/* drop_all, reset_all and restart answer once the closes are under way; a FIN goes out when
 * the gateway's shutdown completes, which may be just after the answer. The step ends once the
 * gateway lists none of the connections it had (and the loop has run, so the pool read the
 * FINs): the next step then sees the drop, with an external gateway as with the in-process
 * one. */
static bool drops_everyone(const struct harness_step *st)
{
    return st->target != NULL && (strcmp(st->target, "/v1/actions/drop-all") == 0 ||
                                  strcmp(st->target, "/v1/actions/reset-all") == 0 ||
                                  strcmp(st->target, "/v1/actions/restart") == 0);
}

/* The ids of the oldest and newest connections the gateway lists (INT64_MAX and 0 for none);
 * false when the status could not be read (the failure is recorded). */
static bool listed_conns(struct run *r, const char *what, int64_t *oldest, int64_t *newest)
{
    cJSON *doc = admin_json(r, "/v1/status", what);
    const cJSON *c, *id;

    *oldest = INT64_MAX;
    *newest = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "connections"))
    {
        if (!cJSON_IsNumber(id = cJSON_GetObjectItemCaseSensitive(c, "id")))
            continue;
        if (id->valuedouble < (double)*oldest)
            *oldest = (int64_t)id->valuedouble;
        if (id->valuedouble > (double)*newest)
            *newest = (int64_t)id->valuedouble;
    }
    cJSON_Delete(doc);
    return doc != NULL;
}

static bool wait_dropped(struct run *r, const struct harness_step *st, int64_t newest,
                         uint64_t deadline)
{
    for (;;) {
        int64_t oldest, ignored;
        bool read = listed_conns(r, st->path, &oldest, &ignored);
        struct wait_arg a = { now_ms() + 10 };

        if (!read)
            return true; /* the failure says why */
        if (!drive(r, time_reached, &a, deadline))
            return false;
        if (oldest > newest)
            return true; /* and the loop ran 10 ms: the FINs were read */
    }
}

/* Until the journal holds st->count events named st->event since the run began, polled every
 * 50 ms. */
static bool wait_journal(struct run *r, const struct harness_step *st, uint64_t deadline)
{
    if (!r->has_journal_base) {
        fail(r, "%s (%s): the gateway's journal cannot be read", st->path, st->label);
        return true; /* failed already: not a timeout */
    }
    for (;;) {
        cJSON *entries = journal_since(r, r->journal_base, st->path);
        unsigned n = entries != NULL ? harness__journal_count(entries, st->event) : 0;
        struct wait_arg a = { now_ms() + 50 };

        cJSON_Delete(entries);
        if (entries == NULL)
            return true; /* the failure says why */
        if (n >= st->count)
            return true;
        if (now_ms() >= deadline || !drive(r, time_reached, &a, deadline))
            return false;
    }
}

static void run_step(struct run *r, unsigned i)
{
    const struct harness_step *st = &r->sc->steps[i];
    struct step_rt *rt = &r->rt[i];
    uint64_t deadline = now_ms() + st->timeout_ms;
    bool ok = true;

    if (deadline > r->scenario_deadline)
        deadline = r->scenario_deadline;
    if (st->expect.journal.set && r->admin_port > 0)
        rt->has_seq = journal_seq(r, st->path, &rt->journal_seq);
    switch (st->kind) {
    case HARNESS_STEP_ACQUIRE:
        if (!pool_usable(r, st))
            return;
        pump_acquires(r, i);
        if (st->async)
            return; /* joined, and checked, after the last step */
        ok = drive(r, acquires_done, &i, deadline);
        break;
    case HARNESS_STEP_RELEASE:
        if (!pool_usable(r, st))
            return;
        do_release(r, st);
        break;
    case HARNESS_STEP_REQUEST: {
        struct op *op;
        int rc;

        if (!pool_usable(r, st))
            return;
        if ((unsigned)st->conn >= r->n_held && st->if_held)
            break; /* nothing to ask: that is fine here */
        if ((unsigned)st->conn >= r->n_held) {
            fail(r, "%s.conn: no held connection %d (%u held: acquire with \"keep\": true)",
                 st->path, st->conn, r->n_held);
            return;
        }
        if ((op = op_new(r, i, OP_REQUEST, st->deadline_ms)) == NULL)
            return;
        rc = ibcore_conn_current_time(r->held[st->conn]->conn, op->deadline_ms, on_time, op);
        if (rc < 0) {
            op->sync = true;
            op->calls = 1;
            op->status = rc;
            op->end_ms = now_ms();
            op->done_seq = ++r->done_seq;
        }
        ok = drive(r, op_done, op, deadline);
        break;
    }
    case HARNESS_STEP_HEALTH_TICK: {
        struct probes_arg a;

        if (!pool_usable(r, st))
            return;
        check_stats(r);
        a.target = r->last_stats.probes + st->count;
        ok = drive(r, probes_reached, &a, deadline);
        break;
    }
    case HARNESS_STEP_WAIT_STATS:
        if (!pool_usable(r, st))
            return;
        ok = drive(r, stats_reached, st->until, deadline);
        break;
    case HARNESS_STEP_STATUS:
        if (!pool_usable(r, st))
            return;
        check_score(r, st);
        break;
    case HARNESS_STEP_RECOVER:
        if (!pool_usable(r, st))
            return;
        ok = recover(r, i, deadline);
        break;
    case HARNESS_STEP_CLOSE_ZOMBIES:
        if (!pool_usable(r, st))
            return;
        ibcore_pool_close_zombies(r->pool);
        check_stats(r);
        break;
    case HARNESS_STEP_STALL: {
        /* The runner blocks without running the loop, as a busy application does: whatever
         * arrives meanwhile waits in the kernel (a FIN leaves the socket in CLOSE_WAIT). */
        uint64_t until = now_ms() + st->wait_ms;
        struct timespec ts;

        for (uint64_t now = now_ms(); now < until; now = now_ms()) {
            ts.tv_sec = (time_t)((until - now) / 1000u);
            ts.tv_nsec = (long)((until - now) % 1000u) * 1000000L;
            nanosleep(&ts, NULL);
        }
        r->stall_total_ms += st->wait_ms;
        break;
    }
    case HARNESS_STEP_CLOSE:
        if (!pool_usable(r, st))
            return;
        pool_close(r);
        ok = drive(r, pool_is_closed, NULL, deadline);
        break;
    case HARNESS_STEP_HOLD_LOCK: {
        struct op *op;
        int rc;

        if (!r->pc.use_lock) {
            fail(r, "%s: hold_lock needs \"use_lock\": true", st->path);
            return;
        }
        if ((op = op_new(r, i, OP_LOCK, st->timeout_ms)) == NULL)
            return;
        rc = ibcore_hslock_acquire(r->loop, r->pc.lock_path, op->deadline_ms, on_lock, op);
        if (rc < 0) {
            op->sync = true;
            op->calls = 1;
            op->status = rc;
            op->end_ms = now_ms();
        }
        ok = drive(r, op_done, op, deadline);
        if (ok && op->status < 0)
            fail(r, "%s: the handshake lock was not acquired: %s", st->path,
                 ibcore_strerror(op->status));
        break;
    }
    case HARNESS_STEP_GATEWAY: {
        int64_t oldest, newest = 0;
        bool drops = drops_everyone(st) && listed_conns(r, st->path, &oldest, &newest);
        struct op *op = admin_call(r, i, st->method, st->target, st->body,
                                   st->timeout_ms < ADMIN_TIMEOUT ? st->timeout_ms : ADMIN_TIMEOUT);

        ok = op != NULL && op->calls > 0;
        if (ok && drops && newest > 0 && op->status == 0 && op->http_status / 100 == 2)
            ok = wait_dropped(r, st, newest, deadline);
        break;
    }
    case HARNESS_STEP_WAIT: {
        struct wait_arg a = { now_ms() + st->wait_ms };

        ok = drive(r, time_reached, &a, deadline);
        break;
    }
    case HARNESS_STEP_WAIT_JOURNAL:
        ok = wait_journal(r, st, deadline);
        break;
    }
    if (!ok) {
        if (now_ms() >= r->scenario_deadline)
            fail(r, "%s (%s): the scenario's hard deadline (%llu ms) passed", st->path, st->label,
                 (unsigned long long)r->sc->timeout_ms);
        else
            fail(r, "%s (%s): did not complete within its %llu ms", st->path, st->label,
                 (unsigned long long)st->timeout_ms);
        r->aborted = true;
        return;
    }
    check_step(r, i);
}

/* ---- setup and teardown ---------------------------------------------------------------------- */

static void on_server_stopped(struct mgw_server *srv, void *data)
{
    (void)srv;
    ((struct run *)data)->srv_stopped = true;
}

static void on_registry_closed(void *data)
{
    ((struct run *)data)->reg_closed = true;
}

/* ---- the gateway as a child process (gateway_process) -------------------------------------- */

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
    struct run *r = p->data;

    r->proc_exited = true;
    r->proc_exit_status = status;
    r->proc_term_signal = sig;
}

static void on_proc_closed(uv_handle_t *h)
{
    ((struct run *)h->data)->proc_closed = true;
}

static bool is_exec(const char *p)
{
    return p != NULL && p[0] != '\0' && access(p, X_OK) == 0;
}

/* --mockgw (opts), $MOCKGW_BIN, or next to this program: ../mockgw/mockgw (the build tree),
 * ./mockgw (installed side by side). */
static const char *find_mockgw(const struct harness_run_opts *o, char *buf, size_t cap)
{
    static const char *const rel[] = { "/../mockgw/mockgw", "/mockgw", NULL };
    char exe[PATH_MAX];
    size_t len = sizeof exe;
    char *slash;

    if (o->mockgw_bin != NULL)
        return is_exec(o->mockgw_bin) ? o->mockgw_bin : NULL;
    if (is_exec(getenv("MOCKGW_BIN")))
        return getenv("MOCKGW_BIN");
    if (uv_exepath(exe, &len) != 0 || (slash = strrchr(exe, '/')) == NULL)
        return NULL;
    *slash = '\0';
    for (unsigned i = 0; rel[i] != NULL; i++)
        if (snprintf(buf, cap, "%s%s", exe, rel[i]) < (int)cap && is_exec(buf))
            return buf;
    return NULL;
}

/* The ready file is written by rename(), so it is whole once it is there. */
static bool gateway_ready(struct run *r, const void *arg)
{
    char buf[512];
    FILE *f;
    size_t n;
    cJSON *doc;
    const cJSON *api, *admin;

    if (r->proc_exited)
        return true;
    if ((f = fopen(r->ready_path, "r")) == NULL)
        return false;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((doc = cJSON_Parse(buf)) == NULL)
        return false;
    api = cJSON_GetObjectItemCaseSensitive(doc, "api");
    admin = cJSON_GetObjectItemCaseSensitive(doc, "admin");
    (void)arg;
    if (cJSON_IsNumber(api) && cJSON_IsNumber(admin) && api->valueint > 0 && admin->valueint > 0) {
        r->gw_port = api->valueint;
        r->admin_port = admin->valueint;
    }
    cJSON_Delete(doc);
    return r->gw_port > 0;
}

/* An argument vector in one buffer (uv_spawn takes char **). */
struct argv_buf {
    char *args[16];
    unsigned n;
    char store[3 * PATH_MAX + 256];
    size_t used;
};

static void add_arg(struct argv_buf *av, const char *a)
{
    size_t len = strlen(a) + 1;

    if (av->n + 1 >= sizeof av->args / sizeof av->args[0] || len > sizeof av->store - av->used)
        return; /* cannot happen: paths are at most PATH_MAX */
    memcpy(av->store + av->used, a, len);
    av->args[av->n++] = av->store + av->used;
    av->args[av->n] = NULL;
    av->used += len;
}

static bool spawn_gateway(struct run *r, const struct harness_run_opts *o)
{
    static unsigned seq;
    const char *dir = getenv("TMPDIR"), *bin;
    char binbuf[PATH_MAX], seed[32];
    struct argv_buf av;
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    int rc;

    if ((bin = find_mockgw(o, binbuf, sizeof binbuf)) == NULL) {
        fail(r, "gateway_process: no mockgw binary (give --mockgw FILE or set $MOCKGW_BIN)");
        return false;
    }
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    av.n = 0;
    av.used = 0;
    seq++;
    snprintf(r->ready_path, sizeof r->ready_path, "%s/harness-%ld-%u.ready.json", dir,
             (long)getpid(), seq);
    unlink(r->ready_path);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
    add_arg(&av, bin);
    add_arg(&av, "--listen");
    add_arg(&av, "127.0.0.1:0");
    add_arg(&av, "--admin");
    add_arg(&av, "127.0.0.1:0");
    add_arg(&av, "--ready-file");
    add_arg(&av, r->ready_path);
    add_arg(&av, "--seed");
    add_arg(&av, seed);
    if (r->sc->gateway_json != NULL) {
        FILE *f;
        bool ok;

        snprintf(r->script_path, sizeof r->script_path, "%s/harness-%ld-%u.script.json", dir,
                 (long)getpid(), seq);
        f = fopen(r->script_path, "w");
        ok = f != NULL && fputs(r->sc->gateway_json, f) != EOF;
        if ((f != NULL && fclose(f) != 0) || !ok) {
            fail(r, "gateway_process: %s: %s", r->script_path, strerror(errno));
            return false;
        }
        add_arg(&av, "--script");
        add_arg(&av, r->script_path);
    }
    memset(&po, 0, sizeof po);
    memset(stdio, 0, sizeof stdio);
    for (unsigned i = 0; i < 3; i++)
        stdio[i].flags = UV_IGNORE;
    po.file = bin;
    po.args = av.args;
    po.exit_cb = on_proc_exit;
    po.stdio = stdio;
    po.stdio_count = 3;
    r->proc.data = r;
    rc = uv_spawn(r->loop, &r->proc, &po);
    r->proc_spawned = true; /* initialised even when the spawn failed: it must be closed */
    if (rc < 0) {
        r->proc_exited = true;
        fail(r, "gateway_process: %s: %s", bin, uv_strerror(rc));
        return false;
    }
    if (!drive(r, gateway_ready, NULL, now_ms() + SPAWN_READY_MS) || r->gw_port <= 0) {
        fail(r, "gateway_process: %s %s within %u ms", bin,
             r->proc_exited ? "exited before it was ready" : "was not ready", SPAWN_READY_MS);
        return false;
    }
    snprintf(r->gw_host, sizeof r->gw_host, "127.0.0.1");
    snprintf(r->admin_host, sizeof r->admin_host, "127.0.0.1");
    return true;
}

static bool proc_is_exited(struct run *r, const void *arg)
{
    (void)arg;
    return r->proc_exited;
}

static bool proc_is_closed(struct run *r, const void *arg)
{
    (void)arg;
    return r->proc_closed;
}

/* SIGTERM to our own child (mockgw exits 0 on it), SIGKILL if it does not go; then the handle. */
static bool stop_gateway_process(struct run *r)
{
    bool early = r->proc_exited;

    if (!r->proc_exited) {
        uv_process_kill(&r->proc, SIGTERM);
        if (!drive(r, proc_is_exited, NULL, now_ms() + SPAWN_STOP_MS)) {
            fail(r, "gateway_process: mockgw did not exit within %u ms of SIGTERM", SPAWN_STOP_MS);
            uv_process_kill(&r->proc, SIGKILL);
            drive(r, proc_is_exited, NULL, now_ms() + 1000);
        } else if (r->proc_exit_status != 0 || r->proc_term_signal != 0) {
            fail(r, "gateway_process: mockgw exited with status %lld (signal %d)",
                 (long long)r->proc_exit_status, r->proc_term_signal);
        }
    } else if (early && r->gw_port > 0 &&
               !(r->interrupted && r->proc_exit_status == 0 && r->proc_term_signal == 0)) {
        /* (A terminal's Ctrl-C, or `timeout`, signals the whole process group: then mockgw
         * exits 0 by itself as the harness stops.) */
        fail(r, "gateway_process: mockgw exited during the run (status %lld, signal %d)",
             (long long)r->proc_exit_status, r->proc_term_signal);
    }
    uv_close((uv_handle_t *)&r->proc, on_proc_closed);
    unlink(r->ready_path);
    if (r->script_path[0] != '\0')
        unlink(r->script_path);
    return drive(r, proc_is_closed, NULL, now_ms() + 1000);
}

static bool setup_gateway(struct run *r, const struct harness_run_opts *o)
{
    const struct harness_scenario *sc = r->sc;
    struct mgw_config cfg;
    struct mgw_err err;
    struct op *op;

    if (o->gateway_host == NULL && sc->gateway_process) {
        if (!spawn_gateway(r, o))
            return false;
    } else if (o->gateway_host == NULL) {
        mgw_config_init(&cfg);
        cfg.listen_host = "127.0.0.1";
        cfg.listen_port = 0;
        cfg.admin_host = "127.0.0.1";
        cfg.admin_port = 0;
        cfg.admin_enabled = true;
        cfg.seed = r->seed;
        cfg.script = sc->script;
        if ((r->srv = mgw_server_new(r->loop, &cfg, &err)) == NULL) {
            fail(r, "gateway: %s", err.msg);
            return false;
        }
        if (mgw_server_start(r->srv, &err) < 0) {
            fail(r, "gateway: %s", err.msg);
            return false;
        }
        snprintf(r->gw_host, sizeof r->gw_host, "127.0.0.1");
        snprintf(r->admin_host, sizeof r->admin_host, "127.0.0.1");
        r->gw_port = mgw_server_api_port(r->srv);
        r->admin_port = mgw_server_admin_port(r->srv);
    } else {
        snprintf(r->gw_host, sizeof r->gw_host, "%s", o->gateway_host);
        r->gw_port = o->gateway_port;
        if (o->admin_host != NULL) {
            snprintf(r->admin_host, sizeof r->admin_host, "%s", o->admin_host);
            r->admin_port = o->admin_port;
        }
        if ((sc->needs_admin || sc->script != NULL) && r->admin_port == 0) {
            r->res->verdict = HARNESS_SKIP;
            snprintf(r->res->skip_reason, sizeof r->res->skip_reason,
                     "needs the gateway's admin API (--admin HOST:PORT)");
            return false;
        }
        if (r->admin_port > 0) {
            /* Back to its start-up script, or to the scenario's (settings, state and rules). */
            op = admin_call(r, NO_STEP, "POST", "/v1/reset", sc->gateway_json, ADMIN_TIMEOUT);
            if (op == NULL || op->status < 0 || op->http_status != 200) {
                fail(r, "gateway: POST /v1/reset failed (%s)",
                     op != NULL && op->status < 0     ? ibcore_strerror(op->status)
                     : op != NULL && op->body != NULL ? op->body
                                                      : "HTTP error");
                return false;
            }
        }
    }
    if (r->admin_port > 0)
        r->has_journal_base = journal_seq(r, "gateway", &r->journal_base);
    return r->res->verdict != HARNESS_FAIL;
}

static bool setup_core(struct run *r, const struct harness_run_opts *o)
{
    const struct harness_scenario *sc = r->sc;
    struct ibcore_breaker_config bc = sc->breaker;
    const char *dir = o->lock_dir != NULL ? o->lock_dir : getenv("TMPDIR");

    if (!sc->has_breaker_seed)
        bc.seed = r->seed;
    if ((r->reg = ibcore_breakers_new(r->loop, &bc, on_telemetry, r)) == NULL) {
        fail(r, "core: the breaker registry could not be created");
        return false;
    }
    r->pc = sc->core;
    r->pc.host = r->gw_host;
    r->pc.port = r->gw_port;
    if (!sc->has_core_seed)
        r->pc.seed = r->seed;
    if (!sc->has_lock_path) {
        snprintf(r->lock_path, sizeof r->lock_path, "%s/harness-%ld.lock",
                 dir != NULL && dir[0] != '\0' ? dir : "/tmp", (long)getpid());
        r->pc.lock_path = r->lock_path;
        r->own_lock = true;
    }
    if ((r->pool = ibcore_pool_new(r->loop, &r->pc, r->reg)) == NULL) {
        fail(r, "core: ibcore_pool_new refused the configuration ($.core)");
        return false;
    }
    return true;
}

/* ---- an external client ("client") ------------------------------------------------------------
 */

static bool start_client(struct run *r, const struct harness_run_opts *o)
{
    const char *tmpl = o->client_command != NULL ? o->client_command : r->sc->client->command;
    char dir[PATH_MAX], *slash, *cmd;
    struct harness__client_vars v;
    int rc;

    if (realpath(r->sc->path, dir) == NULL)
        snprintf(dir, sizeof dir, "%s", r->sc->path);
    if ((slash = strrchr(dir, '/')) != NULL)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    v.host = r->gw_host;
    v.port = r->gw_port;
    v.admin_port = r->admin_port;
    v.seed = r->seed;
    v.scenario_dir = dir;
    if ((cmd = harness__client_command(tmpl, &v)) == NULL) {
        fail(r, "$.client.command: out of memory");
        return false;
    }
    r->client_start_ms = now_ms();
    rc = harness__client_start(r->loop, cmd, &v, &r->client);
    if (rc < 0)
        fail(r, "$.client.command: /bin/sh -c '%.200s' could not start: %s", cmd, uv_strerror(rc));
    free(cmd);
    return rc == 0;
}

static bool client_is_exited(struct run *r, const void *arg)
{
    (void)arg;
    return harness__client_exited(r->client);
}

static bool client_output_is_done(struct run *r, const void *arg)
{
    (void)arg;
    return harness__client_output_done(r->client);
}

/* After the last step: SIGTERM ("stop": "signal"), then its exit within timeout_ms of its
 * start. */
static void finish_client(struct run *r)
{
    const struct harness_client *c = r->sc->client;
    uint64_t end = r->client_start_ms + c->timeout_ms;

    if (end > r->scenario_deadline)
        end = r->scenario_deadline;
    if (!c->stops_by_itself && harness__client_exited(r->client) && !r->aborted) {
        fail(r,
             "$.client: exited by itself with status %d %llu ms after it started, before the "
             "steps were done (\"stop\": \"signal\" expects it to run until stopped)",
             harness__client_status(r->client),
             (unsigned long long)(now_ms() - r->client_start_ms));
        return;
    }
    if (!c->stops_by_itself)
        harness__client_signal(r->client, SIGTERM);
    if (!drive(r, client_is_exited, NULL, end)) {
        fail(r, "$.client: still running %llu ms after it started%s (timeout_ms %llu)",
             (unsigned long long)(now_ms() - r->client_start_ms),
             c->stops_by_itself ? "" : ", SIGTERM notwithstanding",
             (unsigned long long)c->timeout_ms);
        return;
    }
    drive(r, client_output_is_done, NULL, now_ms() + 1000); /* the pipes' last bytes */
}

static void check_client(struct run *r)
{
    const struct harness_client_expect *e = &r->sc->expect.client;
    int status = harness__client_status(r->client);
    char *out = harness__client_output(r->client);

    if (status >= 0 && e->exit_code >= 0 && status != e->exit_code)
        fail(r, "$.expect.client.exit_code: the client %s %d, expected %d%s",
             status > 128 ? "was killed by signal" : "exited with",
             status > 128 ? status - 128 : status, e->exit_code,
             status == 127 ? " (127: the shell did not find the command)" : "");
    for (unsigned i = 0; out != NULL && i < e->n_output; i++)
        if (strstr(out, e->output[i]) == NULL)
            fail(r, "$.expect.client.output: \"%s\" is not in the client's output", e->output[i]);
    free(out);
}

static bool client_is_closed(struct run *r, const void *arg)
{
    (void)arg;
    return harness__client_closed(r->client);
}

/* The teardown's part: SIGTERM to a client still running (SIGKILL 2 s later), its output and
 * status into the result, its handles closed. */
static bool stop_client(struct run *r)
{
    bool closed;

    if (r->client == NULL)
        return true;
    if (!harness__client_exited(r->client)) {
        harness__client_signal(r->client, SIGTERM);
        drive(r, client_is_exited, NULL, now_ms() + CLIENT_STOP_MS);
    }
    drive(r, client_output_is_done, NULL, now_ms() + 200);
    r->res->client_output = harness__client_output(r->client);
    harness__client_close(r->client); /* SIGKILL if it still runs; closed once reaped */
    closed = drive(r, client_is_closed, NULL, now_ms() + 2000);
    r->res->client_exit = harness__client_status(r->client);
    r->client_ms = harness__client_ms(r->client);
    if (closed)
        harness__client_free(r->client); /* else a late callback could still reach it */
    r->client = NULL;
    return closed;
}

static bool registry_is_closed(struct run *r, const void *arg)
{
    (void)arg;
    return r->reg_closed;
}

static bool server_is_stopped(struct run *r, const void *arg)
{
    (void)arg;
    return r->srv_stopped;
}

/* Closes everything; true when all of it completed (only then may the ops be freed). */
static bool teardown(struct run *r)
{
    uint64_t deadline = now_ms() + TEARDOWN_MS;
    bool complete = true;

    r->stopping = true;
    if (!stop_client(r)) {
        fail(r, "invariant: the client's process handles did not close");
        complete = false;
    }
    if (r->pool != NULL) {
        pool_close(r);
        if (!drive(r, pool_is_closed, NULL, deadline)) {
            fail(r, "invariant: the pool's close callback never came");
            complete = false;
        }
    }
    /* Any callback still to come would be a late one: give it a moment to show up. */
    drive(r, never, NULL, now_ms() + LATE_WINDOW_MS);
    if (r->reg != NULL) {
        ibcore_breakers_close(r->reg, on_registry_closed, r);
        if (!drive(r, registry_is_closed, NULL, deadline)) {
            fail(r, "invariant: the breaker registry's close callback never came");
            complete = false;
        }
    }
    for (struct op *op = r->ops; op != NULL; op = op->next) {
        if (op->http != NULL)
            harness_http_cancel(op->http);
        if (op->kind == OP_LOCK && op->calls == 0)
            ibcore_hslock_cancel(r->loop, on_lock, op);
        if (op->lock != NULL) {
            ibcore_hslock_release(op->lock);
            op->lock = NULL;
            op->release_at_ms = 0;
        }
    }
    if (r->srv != NULL) {
        if (mgw_server_stop(r->srv, on_server_stopped, r) != 0) {
            mgw_server_free(r->srv); /* never started: nothing to wait for */
        } else if (!drive(r, server_is_stopped, NULL, deadline)) {
            fail(r, "invariant: the gateway did not stop");
            complete = false; /* its handles may still call back: leak it rather than crash */
        } else {
            mgw_server_free(r->srv);
        }
        r->srv = NULL;
    } else if (r->proc_spawned) {
        if (!stop_gateway_process(r)) {
            fail(r, "invariant: the gateway process handle did not close");
            complete = false;
        }
    } else if (r->admin_port > 0 && r->has_journal_base) {
        struct op *op = admin_call(r, NO_STEP, "POST", "/v1/reset", NULL, ADMIN_TIMEOUT);

        if (op == NULL || op->status < 0 || op->http_status != 200)
            fail(r, "gateway: POST /v1/reset at the end failed");
    }
    if (r->own_lock)
        unlink(r->lock_path);
    return complete;
}

/* The invariants of one finished operation, tallied (the first of each kind is reported). */
static void account_op(struct run *r, const struct op *op)
{
    const char *where = op->step == NO_STEP ? "runner" : r->sc->steps[op->step].path;
    uint64_t slack = HARNESS__SLACK_MS + (r->stall_total_ms - op->stall_at_start);

    r->ops_total++;
    if (op->sync)
        return;
    if (op->calls > 0 && op->end_ms > op->deadline_ms + slack) /* the loop's own lateness */
        slack += loop_lag(r, op->deadline_ms > TICK_MS ? op->deadline_ms - TICK_MS : 0,
                          op->end_ms + 2 * TICK_MS);
    if (op->calls == 0 && r->inv_never++ == 0)
        fail(r, "invariant: an operation of %s never completed", where);
    if (op->late && r->inv_late++ == 0)
        fail(r, "invariant: an operation of %s completed after the pool had closed", where);
    if (op->calls > 0 && op->kind != OP_HTTP && op->end_ms > op->deadline_ms + slack &&
        r->inv_overdue++ == 0)
        fail(r,
             "invariant: an operation of %s completed %llu ms after its deadline (%s: %s after "
             "%llu ms of %llu; the loop's worst lateness meanwhile %llu ms)",
             where, (unsigned long long)(op->end_ms - op->deadline_ms), kind_name(op->kind),
             harness_status_name(harness_status_of(op->status)),
             (unsigned long long)(op->end_ms - op->start_ms),
             (unsigned long long)(op->deadline_ms - op->start_ms),
             (unsigned long long)loop_lag(r, op->start_ms, op->end_ms + 2 * TICK_MS));
}

static void check_invariants(struct run *r)
{
    for (struct op *op = r->ops; op != NULL; op = op->next)
        account_op(r, op);
    if (r->inv_never > 1)
        fail(r, "invariant: %u operations never completed", r->inv_never);
    if (r->inv_overdue > 1)
        fail(r, "invariant: %u operations completed past their deadline + %u ms", r->inv_overdue,
             HARNESS__SLACK_MS);
    if (r->tele_after_close)
        fail(r, "invariant: breaker telemetry arrived after the registry had closed");
}

/* Frees the operations that are over (checked first): a soak runs for minutes. */
static void compact_ops(struct run *r)
{
    struct op **link = &r->ops;
    uint64_t now = now_ms();

    while (*link != NULL) {
        struct op *op = *link;
        /* Finished a while ago: a second callback (which the invariant would report) comes at
         * once if it comes at all, and must not find the operation freed. */
        bool over = (op->calls > 0 || op->sync) && op->conn == NULL && op->release_at_ms == 0 &&
                    op->lock == NULL && op->http == NULL && op->end_ms + 1000 < now;

        if (!over) {
            link = &op->next;
            continue;
        }
        account_op(r, op);
        *link = op->next;
        free(op->body);
        free(op);
        r->n_ops--;
    }
    r->ops_tail = link;
}

/* While the breaker is open no connect may be tried, so the gateway accepts nothing then: every
 * "accept" in the journal later than BREAKER_GRACE ms into an open period (a connect started
 * just before the trip may land in it) is a connect that got through. Accepts within
 * BREAKER_GRACE ms of the listener coming back (a blackhole's backlog: libuv may hand over the
 * first one just before the "listener" event is journaled) and runs with stalls are not
 * judged. */
static bool listener_back(const cJSON *e, uint64_t *t)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(e, "event");
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(e, "t");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(e, "mode");

    if (!cJSON_IsString(ev) || !cJSON_IsString(tv) || !harness__iso_ms(tv->valuestring, t))
        return false;
    return (strcmp(ev->valuestring, "listener") == 0 && cJSON_IsString(mode) &&
            strcmp(mode->valuestring, "normal") == 0) ||
           strcmp(ev->valuestring, "restarted") == 0;
}

static bool excused(const cJSON *entries, uint64_t t)
{
    const cJSON *e;
    uint64_t back;

    cJSON_ArrayForEach(e, entries)
    {
        if (listener_back(e, &back) && t + BREAKER_GRACE >= back && t <= back + BREAKER_GRACE)
            return true;
    }
    return false;
}

static void check_breaker_accepts(struct run *r)
{
    unsigned bad = 0;
    const cJSON *e;
    bool opened = false;
    cJSON *entries;
    uint64_t t;

    for (unsigned i = 0; i < r->n_trs; i++)
        opened = opened || r->trs[i].to_open;
    if (!opened || r->stall_total_ms > 0 || r->admin_port == 0 || !r->has_journal_base)
        return;
    if ((entries = journal_since(r, r->journal_base, "invariant")) == NULL)
        return;
    cJSON_ArrayForEach(e, entries)
    {
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(e, "event");
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(e, "t");

        if (!cJSON_IsString(ev) || strcmp(ev->valuestring, "accept") != 0 || !cJSON_IsString(tv) ||
            !harness__iso_ms(tv->valuestring, &t))
            continue;
        for (unsigned i = 0; i < r->n_trs; i++) {
            uint64_t start = r->trs[i].wall_ms, end;

            if (!r->trs[i].to_open)
                continue;
            if (i + 1 < r->n_trs)
                end = r->trs[i + 1].wall_ms;
            else if (r->trs_truncated)
                continue;
            else
                end = UINT64_MAX;
            if (t >= start + BREAKER_GRACE && t < end && !excused(entries, t) && bad++ == 0)
                fail(r,
                     "invariant: the gateway accepted a connection %llu ms after the breaker "
                     "opened (%s): a connect got through an open breaker",
                     (unsigned long long)(t - start), r->trs[i].what);
        }
    }
    if (bad > 1)
        fail(r, "invariant: %u connections were accepted while the breaker was open", bad);
    cJSON_Delete(entries);
}

static void set_measure(struct run *r)
{
    const struct harness_scenario *sc = r->sc;
    uint64_t slowest = 0;
    unsigned n = 0;

    for (struct op *op = r->ops; op != NULL; op = op->next) {
        if (op->kind == OP_HTTP || op->calls == 0)
            continue;
        if (sc->measure_step >= 0 && op->step != (unsigned)sc->measure_step)
            continue;
        n++;
        if (op->end_ms - op->start_ms > slowest)
            slowest = op->end_ms - op->start_ms;
    }
    if (sc->client != NULL && r->res->client_exit >= 0)
        snprintf(r->res->measure, sizeof r->res->measure, "client exit %d after %.1f s",
                 r->res->client_exit, (double)r->client_ms / 1000.0);
    else if (sc->client != NULL)
        snprintf(r->res->measure, sizeof r->res->measure, "client did not exit");
    else if (n == 0)
        snprintf(r->res->measure, sizeof r->res->measure, "-");
    else if (sc->measure_step >= 0)
        snprintf(r->res->measure, sizeof r->res->measure, "steps[%d]: %u ops, slowest %llu ms",
                 sc->measure_step, n, (unsigned long long)slowest);
    else
        snprintf(r->res->measure, sizeof r->res->measure, "%u ops, slowest %llu ms", n,
                 (unsigned long long)slowest);
}

static void free_run(struct run *r, bool free_ops)
{
    struct op *op = r->ops, *next;

    for (; free_ops && op != NULL; op = next) {
        next = op->next;
        free(op->body);
        free(op);
    }
    for (unsigned i = 0; i < r->n_tele; i++)
        free(r->tele[i]);
    free(r->tele);
    free(r->held);
    for (unsigned i = 0; i < LOG_KEEP; i++)
        free(r->log[i]);
    free(r->trs);
    free(r->lags);
    free(r->rss);
    free(r->fds);
    if (free_ops) /* else a late callback could still reach them: leak rather than crash */
        free(r->rt);
}

/* ---- rounds and the soak --------------------------------------------------------------------- */

/* The steps once, then the asynchronous acquires joined and checked. */
static void run_round(struct run *r)
{
    const struct harness_scenario *sc = r->sc;

    for (unsigned i = 0; i < sc->n_steps && !r->aborted; i++) {
        r->cur_step = (int)i;
        run_step(r, i);
    }
    for (unsigned i = 0; i < sc->n_steps && !r->aborted; i++) {
        const struct harness_step *st = &sc->steps[i];

        if (st->kind != HARNESS_STEP_ACQUIRE || !st->async || r->rt[i].started == 0)
            continue;
        r->cur_step = (int)i;
        if (!drive(r, acquires_done, &i, r->scenario_deadline)) {
            fail(r, "%s (%s): its operations did not complete before the hard deadline", st->path,
                 st->label);
            r->aborted = true;
            break;
        }
        check_step(r, i);
    }
    r->cur_step = -1;
}

static void soak_sample(struct run *r)
{
    uint64_t now;
    long rss;
    int fds;

    if (r->rss == NULL || r->n_samples >= r->cap_samples || (now = now_ms()) < r->next_sample_ms)
        return;
    r->next_sample_ms = now + r->sc->soak->sample_ms;
    rss = harness__rss_kib();
    fds = count_fds();
    if (rss < 0 || fds < 0)
        return;
    r->rss[r->n_samples] = (double)rss;
    r->fds[r->n_samples] = (double)fds;
    r->n_samples++;
}

/* The steps again and again for duration_ms; samples after the warm-up. */
static void soak(struct run *r)
{
    const struct harness_soak *k = r->sc->soak;
    uint64_t start = now_ms(), end = start + k->duration_ms;

    r->cap_samples = (unsigned)((k->duration_ms - k->warmup_ms) / k->sample_ms) + 2;
    r->rss = calloc(r->cap_samples, sizeof *r->rss);
    r->fds = calloc(r->cap_samples, sizeof *r->fds);
    if (r->rss == NULL || r->fds == NULL) {
        fail(r, "$.soak: out of memory");
        r->aborted = true;
        return;
    }
    /* Touched now, so that the samples' own pages do not count as growth. */
    memset(r->rss, 0, r->cap_samples * sizeof *r->rss);
    memset(r->fds, 0, r->cap_samples * sizeof *r->fds);
    r->next_sample_ms = start + k->warmup_ms;
    while (now_ms() < end && !r->aborted) {
        memset(r->rt, 0, r->sc->n_steps * sizeof *r->rt);
        run_round(r);
        if (r->pool != NULL && !r->pool_closing && r->n_held > 0) {
            struct harness_step all = r->sc->steps[0];

            all.conn = -1;
            all.count = 0;
            do_release(r, &all); /* what a round kept is given back before the next */
        }
        compact_ops(r);
        prune_lags(r, now_ms() > 5000 ? now_ms() - 5000 : 0);
        r->soak_rounds++;
        if (r->pool == NULL || r->pool_closing)
            break; /* a round that closes the pool ends the soak */
    }
}

/* The trend: after the warm-up, the median of the last third of the samples against the first
 * third's. */
static void soak_verdict(struct run *r)
{
    const struct harness_soak *k = r->sc->soak;
    unsigned n = r->n_samples, third = n / 3;
    double rss0, rss1, fd0, fd1, allowed;

    if (r->res->verdict == HARNESS_SKIP || r->rss == NULL)
        return;
    if (n < 6) {
        fail_first(r, "$.soak: only %u samples after the warm-up (at least 6 are needed)", n);
        return;
    }
    rss0 = harness__median(r->rss, third);
    rss1 = harness__median(r->rss + n - third, third);
    fd0 = harness__median(r->fds, third);
    fd1 = harness__median(r->fds + n - third, third);
    allowed = rss0 * k->rss_tolerance_pct / 100.0;
    if (allowed < (double)k->rss_tolerance_kib)
        allowed = (double)k->rss_tolerance_kib;
    if (RSS_JUDGED && rss1 > rss0 + allowed)
        fail_first(
            r,
            "$.soak: RSS grew from %.0f KiB to %.0f KiB (medians of the first and last third of "
            "%u samples; at most +%.0f KiB allowed)",
            rss0, rss1, n, allowed);
    if (fd1 > fd0 + k->fd_tolerance)
        fail_first(r,
                   "$.soak: open descriptors grew from %.0f to %.0f (medians of the first and last "
                   "third of %u samples; at most +%u allowed)",
                   fd0, fd1, n, k->fd_tolerance);
    snprintf(r->res->measure, sizeof r->res->measure,
             "%u rounds, %llu ops; RSS %.1f->%.1f MiB%s, fds %.0f->%.0f", r->soak_rounds,
             (unsigned long long)r->ops_total, rss0 / 1024.0, rss1 / 1024.0,
             RSS_JUDGED ? "" : " (not judged under ASan)", fd0, fd1);
}

static void on_tick_closed(uv_handle_t *h)
{
    ((struct run *)h->data)->tick_closed = true;
}

static void on_warm_closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

/* libuv reserves one descriptor per loop at its first listen (its EMFILE trick) and keeps it
 * until the loop closes. Listening once before the baseline keeps that one out of the count. */
static void warm_up(uv_loop_t *loop)
{
    struct sockaddr_in addr;
    bool closed = false;
    uv_tcp_t t;

    if (uv_tcp_init(loop, &t) != 0)
        return;
    t.data = &closed;
    if (uv_ip4_addr("127.0.0.1", 0, &addr) == 0 &&
        uv_tcp_bind(&t, (const struct sockaddr *)&addr, 0) == 0)
        uv_listen((uv_stream_t *)&t, 1, NULL);
    uv_close((uv_handle_t *)&t, on_warm_closed);
    for (int i = 0; i < 100 && !closed; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

void harness_run_opts_init(struct harness_run_opts *o)
{
    memset(o, 0, sizeof *o);
}

int harness_run(uv_loop_t *loop, const struct harness_scenario *sc,
                const struct harness_run_opts *o, struct harness_result *res)
{
    struct run r;
    uint64_t t0 = now_ms();
    int fds0, fds1;
    unsigned handles0, handles1;
    bool complete;
    ibcore_log_fn log_fn;
    void *log_data;
    int rc;

    if (sc->generate != NULL)
        return harness__generate_run(loop, sc, o, res);
    memset(res, 0, sizeof *res);
    memset(&r, 0, sizeof r);
    r.cur_step = -1;
    r.loop = loop;
    r.sc = sc;
    r.res = res;
    r.ops_tail = &r.ops;
    r.seed = o->has_seed ? o->seed : sc->has_seed ? sc->seed : 1;
    res->seed = r.seed;
    res->verdict = HARNESS_PASS;
    if ((r.rt = calloc(sc->n_steps > 0 ? sc->n_steps : 1, sizeof *r.rt)) == NULL)
        return UV_ENOMEM;
    warm_up(loop);
    ibcore_log_get(&log_fn, &log_data);
    ibcore_log_set(on_core_log, &r); /* the core's log goes into the result, not to stderr */
    fds0 = count_fds();
    handles0 = count_handles(loop);
    if ((rc = uv_timer_init(loop, &r.tick)) < 0) {
        free(r.rt);
        return rc;
    }
    r.tick.data = &r;
    uv_timer_start(&r.tick, on_tick, TICK_MS, TICK_MS);
    r.scenario_deadline = t0 + sc->timeout_ms;

    res->client_exit = -1;
    if (setup_gateway(&r, o) && (sc->client != NULL ? start_client(&r, o) : setup_core(&r, o))) {
        if (sc->soak != NULL)
            soak(&r);
        else
            run_round(&r);
        /* A client is stopped and judged even after a failed step: what the journal shows it
         * did is the finding. */
        if (sc->client != NULL && !r.interrupted) {
            finish_client(&r);
            check_state(&r, &sc->expect, "$.expect", r.journal_base, r.has_journal_base);
            check_client(&r);
        } else if (!r.aborted) {
            check_state(&r, &sc->expect, "$.expect", r.journal_base, r.has_journal_base);
            check_breaker_accepts(&r);
        }
    }
    complete = teardown(&r);
    if (res->verdict != HARNESS_SKIP) {
        if (!r.interrupted) /* the expected transitions need the whole run */
            check_telemetry(&r);
        check_invariants(&r); /* every callback exactly once holds for a cut-short run too */
    }
    /* Back to baseline: the tick closes last, then every handle the run opened must be gone. */
    uv_close((uv_handle_t *)&r.tick, on_tick_closed);
    for (int i = 0; i < 200 && (!r.tick_closed || count_handles(loop) > handles0); i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (!r.tick_closed || count_handles(loop) > handles0)
            usleep(1000);
    }
    handles1 = count_handles(loop);
    fds1 = count_fds();
    if (complete && handles1 != handles0) {
        char names[256] = "";

        uv_walk(loop, describe_handle, names);
        fail(&r, "invariant: %u libuv handles before the run, %u after (%s)", handles0, handles1,
             names);
    }
    if (complete && fds0 >= 0 && fds1 != fds0)
        fail(&r, "invariant: %d file descriptors before the run, %d after", fds0, fds1);
    set_measure(&r);
    if (sc->soak != NULL && !r.interrupted)
        soak_verdict(&r);
    ibcore_log_set(log_fn, log_data);
    res->core_log = join_log(&r);
    free_run(&r, complete && r.tick_closed);
    res->duration_ms = now_ms() - t0;
    return 0;
}

void harness_result_clear(struct harness_result *res)
{
    for (unsigned i = 0; i < res->n_failures; i++)
        free(res->failures[i]);
    free(res->core_log);
    free(res->client_output);
    free(res->artifact);
    memset(res, 0, sizeof *res);
}
