#include "mockgw.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ibwire.h"
#include "input.h"
#include "server.h"
#include "strbuf.h"

#define READ_BUF_SIZE  (64u << 10)
#define LISTEN_BACKLOG 4096
#define FIN_LINGER_MS  2000u  /* a FIN close waits this long for queued output to drain */
#define JOURNAL_RING   16384u /* events and frames served by GET /v1/journal */

struct write_req {
    uv_write_t req;
    size_t *queued; /* the counter of the stream it was written to */
    size_t len;
    uint8_t data[];
};

const char *mgw_strerror(int err)
{
    switch (err) {
#define XX(name, code, msg) \
    case MGW_##name:        \
        return msg;
        MGW_ERRNO_MAP(XX)
#undef XX
    }
    return ibw_strerror(err);
}

void mgw_config_init(struct mgw_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen_host = "127.0.0.1";
    cfg->listen_port = 4002;
    cfg->admin_host = "127.0.0.1";
    cfg->admin_port = 4080;
    cfg->admin_enabled = true;
    cfg->server_version = IBW_DEFAULT_VERSION;
    cfg->accounts = "DU1234567";
    cfg->seed = 1;
    cfg->next_valid_id = 1;
    cfg->max_clients = 32;
    cfg->unique_client_ids = true;
    cfg->pace_current_time = true;
    cfg->hello_timeout_ms = 30000;
    cfg->max_out_buffer = 4u << 20;
    cfg->max_in_frame = 1u << 20;
    cfg->upstream_timeout_ms = 5000;
}

/* --------------------------------------------------------------------------------------------
 * Clock for the sessions
 */
static uint64_t clock_mono(void *clock)
{
    return uv_now(((struct mgw_server *)clock)->loop);
}

static int64_t clock_wall(void *clock)
{
    struct timespec ts;

    (void)clock;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --------------------------------------------------------------------------------------------
 * Configuration
 */
static int config_check(const struct mgw_config *cfg, struct mgw_err *err)
{
    if (cfg->server_version < IBW_MIN_VERSION || cfg->server_version > IBW_MAX_VERSION) {
        snprintf(err->msg, sizeof err->msg,
                 "--server-version %d: must be between %d and %d (201 and up is IB's "
                 "protobuf protocol, which mockgw does not speak)",
                 cfg->server_version, IBW_MIN_VERSION, IBW_MAX_VERSION);
        return MGW_ECONFIG;
    }
    if (!mgw__accounts_valid(cfg->accounts, NULL)) {
        snprintf(err->msg, sizeof err->msg,
                 "--accounts \"%s\": expected one or more comma-separated account codes "
                 "(printable, no spaces, none empty)",
                 cfg->accounts ? cfg->accounts : "");
        return MGW_ECONFIG;
    }
    if (cfg->listen_port < 0 || cfg->listen_port > 65535 || cfg->admin_port < 0 ||
        cfg->admin_port > 65535) {
        snprintf(err->msg, sizeof err->msg, "port out of range 0..65535");
        return MGW_ECONFIG;
    }
    if (cfg->max_clients < 0) {
        snprintf(err->msg, sizeof err->msg, "--max-clients %d: must be 0 (no limit) or more",
                 cfg->max_clients);
        return MGW_ECONFIG;
    }
    if (cfg->next_valid_id < 1) {
        snprintf(err->msg, sizeof err->msg, "--next-valid-id %d: must be 1 or more",
                 cfg->next_valid_id);
        return MGW_ECONFIG;
    }
    if (cfg->max_in_frame < 64 || cfg->max_in_frame > IBW_MAX_FRAME) {
        snprintf(err->msg, sizeof err->msg, "max_in_frame %zu: must be 64..%u", cfg->max_in_frame,
                 IBW_MAX_FRAME);
        return MGW_ECONFIG;
    }
    if (cfg->max_out_buffer < 4096) {
        snprintf(err->msg, sizeof err->msg, "--max-out-buffer %zu: must be 4096 or more",
                 cfg->max_out_buffer);
        return MGW_ECONFIG;
    }
    if (cfg->upstream_host && (cfg->upstream_port < 1 || cfg->upstream_port > 65535)) {
        snprintf(err->msg, sizeof err->msg, "--upstream %s:%d: port must be 1..65535",
                 cfg->upstream_host, cfg->upstream_port);
        return MGW_ECONFIG;
    }
    if (cfg->upstream_host && cfg->upstream_timeout_ms < 1) {
        snprintf(err->msg, sizeof err->msg, "--upstream-timeout-ms: must be 1 or more");
        return MGW_ECONFIG;
    }
    if (cfg->upstream_host && cfg->replay_path) {
        snprintf(err->msg, sizeof err->msg,
                 "--replay serves recorded answers in place of a gateway; it does not go with "
                 "--upstream");
        return MGW_ECONFIG;
    }
    return 0;
}

/* The upstream's address, resolved once at start-up (a numeric address needs no lookup). */
static int resolve_upstream(struct mgw_server *srv, struct mgw_err *err)
{
    const char *host = srv->cfg.upstream_host;
    int port = srv->cfg.upstream_port;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    uv_getaddrinfo_t req;
    char service[8];
    int rc;

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&srv->upstream_addr) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&srv->upstream_addr) == 0) {
        snprintf(srv->upstream_name, sizeof srv->upstream_name, "%s%s%s:%d",
                 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
        return 0;
    }
    snprintf(service, sizeof service, "%d", port);
    rc = uv_getaddrinfo(srv->loop, &req, NULL, host, service, &hints); /* NULL cb: at once */
    if (rc < 0 || !req.addrinfo) {
        snprintf(err->msg, sizeof err->msg, "--upstream %s:%d: cannot resolve the host: %s", host,
                 port, rc < 0 ? uv_strerror(rc) : "no address");
        return MGW_ECONFIG;
    }
    memcpy(&srv->upstream_addr, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
    snprintf(srv->upstream_name, sizeof srv->upstream_name, "%s:%d", host, port);
    return 0;
}

struct mgw_server *mgw_server_new(uv_loop_t *loop, const struct mgw_config *cfg,
                                  struct mgw_err *err)
{
    struct mgw_server *srv;
    bool ok = true;

    err->msg[0] = '\0';
    if (config_check(cfg, err) < 0)
        return NULL;
    srv = calloc(1, sizeof *srv);
    if (!srv)
        goto nomem;
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->api_port = srv->admin_port = -1;
    srv->listen_host = mgw_strdup_opt(cfg->listen_host, &ok);
    srv->admin_host = mgw_strdup_opt(cfg->admin_host, &ok);
    srv->accounts = mgw_strdup_opt(cfg->accounts, &ok);
    srv->log_path = mgw_strdup_opt(cfg->log_path, &ok);
    srv->fixtures_path = mgw_strdup_opt(cfg->fixtures_path, &ok);
    srv->upstream_host = mgw_strdup_opt(cfg->upstream_host, &ok);
    srv->record_path = mgw_strdup_opt(cfg->record_path, &ok);
    srv->replay_path = mgw_strdup_opt(cfg->replay_path, &ok);
    srv->read_buf = malloc(READ_BUF_SIZE);
    if (!ok || !srv->read_buf)
        goto nomem;
    srv->cfg.listen_host = srv->listen_host;
    srv->cfg.admin_host = srv->admin_host;
    srv->cfg.accounts = srv->accounts;
    srv->cfg.log_path = srv->log_path;
    srv->cfg.fixtures_path = srv->fixtures_path;
    srv->cfg.upstream_host = srv->upstream_host;
    srv->cfg.record_path = srv->record_path;
    srv->cfg.replay_path = srv->replay_path;
    srv->base_cfg = srv->cfg;
    srv->proxy = srv->upstream_host != NULL;
    if (srv->proxy && resolve_upstream(srv, err) < 0)
        goto fail;

    srv->fx =
        cfg->fixtures_path ? mgw_fixtures_load(cfg->fixtures_path, err) : mgw_fixtures_default(err);
    if (!srv->fx)
        goto fail;
    if (cfg->replay_path) {
        srv->replay = mgw_replay_load(cfg->replay_path, err);
        if (!srv->replay)
            goto fail;
    }
    /* The event ring exists for GET /v1/journal; without the admin API nobody reads it. */
    srv->journal = mgw_journal_new(loop, cfg->log_path, cfg->admin_enabled ? JOURNAL_RING : 0, err);
    if (!srv->journal)
        goto fail;
    if (cfg->record_path && mgw_journal_record_open(srv->journal, cfg->record_path, err) < 0)
        goto fail;
    if (mgw_ctx_init(&srv->ctx, &srv->cfg, srv->fx, srv->journal) < 0)
        goto nomem;
    srv->ctx.replay = srv->replay;
    srv->ctx.mono_ms = clock_mono;
    srv->ctx.wall_ms = clock_wall;
    srv->ctx.clock = srv;
    srv->faults = mgw_faults_new(cfg->seed);
    srv->script = cfg->script ? mgw_script_copy(cfg->script) : mgw_script_new();
    if (!srv->faults || !srv->script)
        goto nomem;
    srv->ctx.faults = srv->faults;
    if (mgw__arm_script(srv, srv->script) < 0)
        goto nomem;
    return srv;

nomem:
    snprintf(err->msg, sizeof err->msg, "out of memory");
fail:
    mgw_server_free(srv);
    return NULL;
}

void mgw_server_free(struct mgw_server *srv)
{
    if (!srv)
        return;
    mgw_ctx_free(&srv->ctx);
    for (unsigned i = 0; i < srv->n_sched; i++)
        mgw_action_clear(&srv->sched[i].action);
    free(srv->sched);
    mgw_faults_free(srv->faults);
    mgw_script_free(srv->script);
    mgw_script_free(srv->reset_script);
    mgw_journal_free(srv->journal);
    mgw_fixtures_free(srv->fx);
    mgw_replay_free(srv->replay);
    free(srv->read_buf);
    free(srv->upstream_host);
    free(srv->record_path);
    free(srv->replay_path);
    free(srv->listen_host);
    free(srv->admin_host);
    free(srv->accounts);
    free(srv->log_path);
    free(srv->fixtures_path);
    free(srv);
}

/* --------------------------------------------------------------------------------------------
 * Connections
 */
static void conn_journal_end(struct conn *c)
{
    struct mgw_server *srv = c->srv;
    char reason[256];

    mgw_journal_eventf(
        srv->journal, c->s.id, c->s.client_id, "disconnect",
        "\"reason\":\"%s\",\"phase\":\"%s\",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
        ",\"duration_ms\":%" PRIu64,
        mgw_json_escape(c->end_reason ? c->end_reason : "closed", reason, sizeof reason),
        mgw_phase_name(c->s.last_phase), c->s.bytes_in, c->s.bytes_out,
        uv_now(srv->loop) - c->connected_ms);
}

static void stop_progress(struct mgw_server *srv);

static void conn_faults_free(struct conn_faults *f)
{
    if (!f)
        return;
    for (unsigned i = 0; i < f->n_sched; i++)
        mgw_action_clear(&f->sched[i].action);
    free(f->sched);
    free(f->buf);
    free(f);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct mgw_server *srv = c->srv;

    if (--c->open_handles > 0)
        return;
    conn_faults_free(c->faults);
    if (c->up)
        free(c->up->pending);
    free(c->up);
    free(c);
    srv->n_closing--;
    if (srv->stopping)
        stop_progress(srv);
}

void mgw__conn_handle_closed(uv_handle_t *h)
{
    on_conn_handle_closed(h);
}

/* Unlinks c and closes its handles (the TCP one with RST when reset); c is freed in the last
 * close callback. */
static void yield_forget(struct conn *c);

static void conn_close_handles_how(struct conn *c, const char *reason, bool reset)
{
    struct mgw_server *srv = c->srv;

    if (c->closing)
        return;
    c->closing = true;
    yield_forget(c);
    if (!c->end_reason)
        c->end_reason = reason;
    mgw__upstream_close(c, "client connection ended");
    mgw_session_end(&c->s);
    conn_journal_end(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    srv->n_closing++;
    srv->counters.closed++;
    if (!reset || uv_tcp_close_reset(&c->tcp, on_conn_handle_closed) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (c->faults) {
        uv_close((uv_handle_t *)&c->faults->out_timer, on_conn_handle_closed);
        uv_close((uv_handle_t *)&c->faults->sched_timer, on_conn_handle_closed);
    }
}

static void conn_close_handles(struct conn *c, const char *reason)
{
    conn_close_handles_how(c, reason, false);
}

static bool is_upstream(const struct conn *c, const uv_stream_t *stream)
{
    return c->up && stream == (const uv_stream_t *)&c->up->tcp;
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = req->handle->data;
    bool up = is_upstream(c, req->handle);

    *w->queued -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        conn_close_handles(c, status == UV_ECONNRESET ? (up ? "upstream reset" : "peer reset")
                              : up                    ? "upstream write failed"
                                                      : "write failed");
}

void mgw__output_overflow(struct conn *c, const char *leg, size_t queued, size_t adding)
{
    c->srv->counters.output_overflow++;
    mgw_journal_eventf(c->srv->journal, c->s.id, c->s.client_id, "output_overflow",
                       "\"queued\":%zu,\"adding\":%zu,\"cap\":%zu%s%s%s", queued, adding,
                       c->srv->cfg.max_out_buffer, leg ? ",\"leg\":\"" : "", leg ? leg : "",
                       leg ? "\"" : "");
    conn_close_handles(c, leg && strcmp(leg, "upstream") == 0
                              ? "upstream does not read (output buffer full)"
                              : "client does not read (output buffer full)");
}

static void output_overflow(struct conn *c, size_t queued, size_t adding)
{
    mgw__output_overflow(c, c->up ? "client" : NULL, queued, adding);
}

/* Hands bytes to a stream: uv_try_write first, the rest copied into a write request. */
void mgw__stream_send(struct conn *c, uv_stream_t *stream, size_t *queued, const uint8_t *buf,
                      size_t len)
{
    bool up = is_upstream(c, stream);
    uv_buf_t b;
    struct write_req *w;

    if (c->closing || len == 0)
        return;
    if (*queued == 0) {
        /* uv_buf_t is not const-correct; uv_try_write only reads the bytes. */
        b = uv_buf_init((char *)(uintptr_t)buf, (unsigned)len);
        int n = uv_try_write(stream, &b, 1);

        if (n == (int)len)
            return;
        if (n < 0 && n != UV_EAGAIN) {
            conn_close_handles(c, n == UV_ECONNRESET ? (up ? "upstream reset" : "peer reset")
                                  : up               ? "upstream write failed"
                                                     : "write failed");
            return;
        }
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
    if (*queued + len > c->srv->cfg.max_out_buffer) {
        if (up)
            mgw__output_overflow(c, "upstream", *queued, len);
        else
            output_overflow(c, *queued, len);
        return;
    }
    w = malloc(sizeof *w + len);
    if (!w) {
        conn_close_handles(c, "out of memory");
        return;
    }
    w->len = len;
    w->queued = queued;
    memcpy(w->data, buf, len);
    b = uv_buf_init((char *)w->data, (unsigned)len);
    *queued += len;
    if (uv_write(&w->req, stream, &b, 1, on_write) < 0) {
        *queued -= len;
        free(w);
        conn_close_handles(c, up ? "upstream write failed" : "write failed");
    }
}

static void socket_send(struct conn *c, const uint8_t *buf, size_t len)
{
    mgw__stream_send(c, (uv_stream_t *)&c->tcp, &c->queued, buf, len);
}

/* --------------------------------------------------------------------------------------------
 * The fault output pipeline: delay, hold, slice, bandwidth, truncate, limit_data
 */
static bool pipeline_active(const struct conn *c)
{
    const struct conn_faults *f = c->faults;

    return f &&
           (f->len > 0 || f->held || f->delay_until_ms > uv_now(c->srv->loop) || f->slice > 0 ||
            f->bytes_per_s > 0 || f->limit >= 0 || f->truncate >= 0 || f->truncate_half);
}

static void on_out_timer(uv_timer_t *t);
static void on_sched_timer(uv_timer_t *t);

static struct conn_faults *conn_faults_get(struct conn *c)
{
    struct conn_faults *f;

    if (c->faults)
        return c->faults;
    f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->limit = -1;
    f->truncate = -1;
    uv_timer_init(c->srv->loop, &f->out_timer);
    uv_timer_init(c->srv->loop, &f->sched_timer);
    f->out_timer.data = f->sched_timer.data = c;
    c->open_handles += 2;
    c->faults = f;
    return f;
}

static void pipeline_consume(struct conn_faults *f, size_t n)
{
    memmove(f->buf, f->buf + n, f->len - n);
    f->len -= n;
}

/* Moves what the pipeline allows now to the socket; arms out_timer for the rest. */
static void pipeline_drain(struct conn *c)
{
    struct conn_faults *f = c->faults;
    uint64_t now = uv_now(c->srv->loop);

    if (c->closing || f->held)
        return;
    if (f->delay_until_ms > now) {
        uv_timer_start(&f->out_timer, on_out_timer, f->delay_until_ms - now, 0);
        return;
    }
    while (f->len > 0 && !c->closing) {
        size_t chunk = f->len;
        uint64_t wait_ms = 0;

        if (f->truncate_half && f->len >= 4) { /* half of the frame at the head */
            uint64_t frame = 4 + ((uint64_t)f->buf[0] << 24 | (uint64_t)f->buf[1] << 16 |
                                  (uint64_t)f->buf[2] << 8 | f->buf[3]);

            f->truncate = (int64_t)(frame / 2 > 0 ? frame / 2 : 1);
            f->truncate_half = false;
        }
        if (f->slice > 0 && chunk > f->slice) {
            chunk = (size_t)f->slice;
            wait_ms = f->pause_ms;
        }
        if (f->bytes_per_s > 0) { /* 10 ms ticks, at least one byte per tick */
            uint64_t per_tick = f->bytes_per_s / 100 ? f->bytes_per_s / 100 : 1;

            if (chunk > per_tick)
                chunk = (size_t)per_tick;
            wait_ms = wait_ms > 10 ? wait_ms : 10;
        }
        if (f->truncate >= 0 && (int64_t)chunk > f->truncate)
            chunk = (size_t)f->truncate;
        if (f->limit >= 0 && (int64_t)chunk > f->limit)
            chunk = (size_t)f->limit;
        socket_send(c, f->buf, chunk);
        pipeline_consume(f, chunk);
        if (c->closing)
            return;
        if (f->truncate >= 0 && (f->truncate -= (int64_t)chunk) == 0) {
            /* The frame is cut: the gateway goes silent mid-message. */
            f->len = 0;
            f->truncate = -1;
            mgw__conn_silence(c);
            return;
        }
        if (f->limit >= 0 && (f->limit -= (int64_t)chunk) == 0) {
            f->len = 0;
            f->limit = -1;
            mgw_session_close(&c->s, MGW_CLOSE_FIN, "limit_data reached");
            return;
        }
        if (wait_ms > 0 && f->len > 0) {
            uv_timer_start(&f->out_timer, on_out_timer, wait_ms, 0);
            return;
        }
    }
}

static void on_out_timer(uv_timer_t *t)
{
    pipeline_drain(t->data);
}

static void pipeline_push(struct conn *c, const uint8_t *buf, size_t len)
{
    struct conn_faults *f = c->faults;

    if (f->len + len > c->srv->cfg.max_out_buffer) {
        output_overflow(c, f->len, len);
        return;
    }
    if (f->len + len > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        uint8_t *p;

        while (cap < f->len + len)
            cap *= 2;
        p = realloc(f->buf, cap);
        if (!p) {
            conn_close_handles(c, "out of memory");
            return;
        }
        f->buf = p;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, buf, len);
    f->len += len;
    /* A timer already armed (a pause, a delay) drains in its own time. */
    if (!uv_is_active((uv_handle_t *)&f->out_timer))
        pipeline_drain(c);
}

static void conn_send(void *data, const uint8_t *buf, size_t len)
{
    struct conn *c = data;

    if (c->closing || c->draining || c->half_closed)
        return;
    if (pipeline_active(c))
        pipeline_push(c, buf, len);
    else
        socket_send(c, buf, len);
}

/* --------------------------------------------------------------------------------------------
 * Closing
 */
static void on_linger_timeout(uv_timer_t *t)
{
    conn_close_handles(t->data, NULL);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    (void)status;
    if (!c->closing && !c->half_closed)
        conn_close_handles(c, NULL);
}

static void conn_close(void *data, enum mgw_close_how how)
{
    struct conn *c = data;

    if (c->closing || c->draining)
        return;
    c->end_reason = c->s.close_reason;
    if (how == MGW_CLOSE_NOW || c->half_closed) { /* a half-closed one has sent its FIN */
        conn_close_handles(c, NULL);
        return;
    }
    /* What the fault pipeline still holds goes first (unless it is held on purpose). */
    if (c->faults && c->faults->len > 0 && !c->faults->held) {
        socket_send(c, c->faults->buf, c->faults->len);
        c->faults->len = 0;
        if (c->closing)
            return;
    }
    /* The upstream leg has nothing left to do once the client is being closed. */
    mgw__upstream_close(c, "client connection closing");
    /* FIN after the queued bytes, bounded by the linger timer for clients that never read. */
    c->draining = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close_handles(c, NULL);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, FIN_LINGER_MS, 0);
}

struct conn *mgw__conn_find(struct mgw_server *srv, uint64_t id)
{
    for (struct conn *c = srv->conns; c; c = c->next)
        if (c->s.id == id)
            return c;
    return NULL;
}

void mgw__conn_close(struct conn *c, bool reset, const char *reason)
{
    if (reset) {
        mgw_journal_eventf(c->srv->journal, c->s.id, c->s.client_id, "close",
                           "\"reason\":\"%s\",\"phase\":\"%s\"", reason,
                           mgw_phase_name(c->s.phase));
        c->s.last_phase = c->s.phase;
        c->s.phase = MGW_PHASE_CLOSED;
        conn_close_handles_how(c, reason, true);
    } else {
        mgw_session_close(&c->s, MGW_CLOSE_FIN, reason);
    }
}

void mgw__conn_close_now(struct conn *c, const char *reason)
{
    if (c->s.phase != MGW_PHASE_CLOSED)
        c->s.last_phase = c->s.phase;
    c->s.phase = MGW_PHASE_CLOSED;
    conn_close_handles(c, reason);
}

void mgw__conn_silence(struct conn *c)
{
    c->s.silent = true;
    if (!c->closing) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        mgw__upstream_pause(c); /* nothing is forwarded either way; both sockets stay open */
    }
}

void mgw__conn_release(struct conn *c)
{
    if (c->faults && c->faults->held) {
        c->faults->held = false;
        pipeline_drain(c);
    }
}

/* --------------------------------------------------------------------------------------------
 * Faults on the transport, and scheduled actions
 */
static void schedule(struct conn *c, const struct mgw_action *a, enum mgw_event_phase phase,
                     int req_id)
{
    struct conn_faults *f = conn_faults_get(c);
    struct scheduled *sc;
    uint64_t due = uv_now(c->srv->loop) + a->after_ms, first;

    if (!f)
        return;
    if (f->n_sched == f->cap_sched) {
        unsigned cap = f->cap_sched ? f->cap_sched * 2 : 4;
        struct scheduled *p = realloc(f->sched, cap * sizeof *p);

        if (!p)
            return;
        f->sched = p;
        f->cap_sched = cap;
    }
    sc = &f->sched[f->n_sched];
    if (mgw_action_copy(&sc->action, a) < 0)
        return;
    sc->action.after_ms = 0;
    sc->due_ms = due;
    sc->phase = phase;
    sc->req_id = req_id;
    f->n_sched++;
    first = due;
    for (unsigned i = 0; i < f->n_sched; i++)
        first = f->sched[i].due_ms < first ? f->sched[i].due_ms : first;
    uv_timer_start(&f->sched_timer, on_sched_timer, first - uv_now(c->srv->loop), 0);
}

static void on_sched_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct conn_faults *f = c->faults;
    uint64_t now = uv_now(c->srv->loop), next = UINT64_MAX;

    for (unsigned i = 0; i < f->n_sched && !c->closing;) {
        struct scheduled sc = f->sched[i];

        if (sc.due_ms > now) {
            next = sc.due_ms < next ? sc.due_ms : next;
            i++;
            continue;
        }
        f->sched[i] = f->sched[--f->n_sched]; /* take it out before it runs */
        mgw_journal_eventf(c->srv->journal, c->s.id, c->s.client_id, "fault_applied",
                           "\"action\":\"%s\",\"phase\":\"%s\"", mgw_action_name(sc.action.type),
                           mgw_event_phase_name(sc.phase));
        if (sc.action.set_state) {
            char esc[6 * 128 + 1];

            mgw_faults_set_state(c->srv->faults, sc.action.set_state);
            mgw_journal_eventf(c->srv->journal, c->s.id, c->s.client_id, "state",
                               "\"state\":\"%s\",\"why\":\"rule\"",
                               mgw_json_escape(sc.action.set_state, esc, sizeof esc));
        }
        mgw_session_apply(&c->s, &sc.action, sc.phase, sc.req_id);
        mgw_action_clear(&sc.action);
        i = 0; /* the list may have changed */
        next = UINT64_MAX;
    }
    if (!c->closing && next != UINT64_MAX)
        uv_timer_start(&f->sched_timer, on_sched_timer, next - now, 0);
}

static void server_schedule(struct mgw_server *srv, const struct mgw_action *a,
                            enum mgw_event_phase phase);

static void conn_fault(void *data, const struct mgw_action *a, enum mgw_event_phase phase,
                       int req_id)
{
    struct conn *c = data;
    struct mgw_server *srv = c->srv;
    struct conn_faults *f;

    if (c->closing)
        return;
    if (a->after_ms > 0) {
        if (mgw_action_is_listener(a->type)) /* it outlives the connection */
            server_schedule(srv, a, phase);
        else
            schedule(c, a, phase, req_id);
        return;
    }
    switch (a->type) {
    case MGW_ACT_SILENT:
        mgw__conn_silence(c);
        return;
    case MGW_ACT_CLOSE:
        mgw_session_close(&c->s, MGW_CLOSE_FIN, "fault: close");
        return;
    case MGW_ACT_RESET:
        mgw__conn_close(c, true, "fault: reset");
        return;
    case MGW_ACT_HALF_CLOSE:
        /* FIN now; keep reading (and ignoring) until the client closes. */
        c->half_closed = true;
        c->s.silent = true;
        mgw__upstream_pause(c);
        c->shutdown.data = c;
        if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
            conn_close_handles(c, "half_close failed");
        return;
    case MGW_ACT_REFUSE:
    case MGW_ACT_BLACKHOLE:
    case MGW_ACT_ACCEPT:
        mgw__listener_set(srv,
                          a->type == MGW_ACT_REFUSE      ? MGW_LISTEN_REFUSE
                          : a->type == MGW_ACT_BLACKHOLE ? MGW_LISTEN_BLACKHOLE
                                                         : MGW_LISTEN_NORMAL,
                          "fault");
        return;
    case MGW_ACT_RESTART:
        mgw__restart(srv, a->down_ms, a->reset, "fault");
        return;
    default:
        break;
    }
    f = conn_faults_get(c);
    if (!f)
        return;
    switch (a->type) {
    case MGW_ACT_DELAY: {
        int64_t ms = (int64_t)a->ms;

        if (a->jitter_ms > 0) /* uniform in [ms - jitter, ms + jitter], seeded */
            ms += (int64_t)(mgw_faults_draw(srv->faults) % (2 * a->jitter_ms + 1)) -
                  (int64_t)a->jitter_ms;
        ms = ms < 0 ? 0 : ms;
        f->delay_until_ms = uv_now(srv->loop) + (uint64_t)ms;
        mgw_journal_eventf(srv->journal, c->s.id, c->s.client_id, "delay", "\"ms\":%" PRId64, ms);
        break;
    }
    case MGW_ACT_HOLD:
        f->held = true;
        break;
    case MGW_ACT_RELEASE:
        mgw__conn_release(c);
        return;
    case MGW_ACT_SLICE:
        f->slice = a->bytes ? a->bytes : 1;
        f->pause_ms = a->pause_ms;
        break;
    case MGW_ACT_BANDWIDTH:
        f->bytes_per_s = a->bytes_per_s;
        break;
    case MGW_ACT_LIMIT_DATA:
        f->limit = (int64_t)a->bytes;
        if (f->limit == 0) {
            mgw_session_close(&c->s, MGW_CLOSE_FIN, "limit_data reached");
            return;
        }
        break;
    case MGW_ACT_TRUNCATE:
        f->truncate = a->bytes ? (int64_t)a->bytes : -1;
        f->truncate_half = a->bytes == 0;
        break;
    default:
        return;
    }
    if (f->len > 0 && !uv_is_active((uv_handle_t *)&f->out_timer))
        pipeline_drain(c);
}

static const struct mgw_session_io conn_io = { conn_send, conn_close, conn_fault };

/* --------------------------------------------------------------------------------------------
 * Reading
 */
void mgw__conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)c->srv->read_buf, READ_BUF_SIZE);
}

static void on_handshake_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;

    /* A gateway silenced on purpose enforces nothing. */
    if (c->s.silent)
        return;
    if (c->s.phase == MGW_PHASE_HELLO || c->s.phase == MGW_PHASE_VERSION_SENT) {
        const struct mgw_proxy *px = c->s.px;

        /* In proxy mode the wait may be the upstream's: say whose. */
        mgw_session_close(&c->s, MGW_CLOSE_NOW,
                          px && px->start_api_sent ? "upstream not ready within the timeout"
                          : px && px->hello_seen && !px->version_known
                              ? "no version reply from the upstream within the timeout"
                          : c->s.phase == MGW_PHASE_HELLO ? "no handshake within the timeout"
                                                          : "no startApi within the timeout");
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_yield_idle(uv_idle_t *idle);

/* The session stopped after its turn's share of pipelined requests: no more reading until it
 * has handled what it kept, one turn per loop iteration (an idle handle: it runs once per
 * iteration and keeps the poll from waiting), so the other clients' input and the admin API
 * are served in between. A 0 ms timer would not do: libuv runs a timer re-armed from its own
 * callback again in the same pass, before any I/O. */
static void yield_if_asked(struct conn *c)
{
    struct mgw_server *srv = c->srv;

    if (c->closing || c->draining || c->s.silent || c->yield_queued || !mgw_session_yielded(&c->s))
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->yield_queued = true;
    c->yield_next = srv->yielded;
    srv->yielded = c;
    uv_idle_start(&srv->yield_idle, on_yield_idle);
}

static void yield_forget(struct conn *c)
{
    struct conn **link = &c->srv->yielded;

    if (!c->yield_queued)
        return;
    while (*link != c)
        link = &(*link)->yield_next;
    *link = c->yield_next;
    c->yield_queued = false;
}

static void on_yield_idle(uv_idle_t *idle)
{
    struct mgw_server *srv = idle->data;
    struct conn *c = srv->yielded;

    srv->yielded = NULL; /* this turn's list; a conn that yields again joins the next one */
    while (c != NULL) {
        struct conn *next = c->yield_next;

        c->yield_queued = false;
        if (!c->closing && !c->draining && !c->s.silent) {
            mgw_session_continue(&c->s);
            if (!c->closing && !c->draining && !c->s.silent) {
                if (mgw_session_yielded(&c->s))
                    yield_if_asked(c);
                else
                    uv_read_start((uv_stream_t *)&c->tcp, mgw__conn_alloc, on_read);
            }
        }
        c = next;
    }
    if (srv->yielded == NULL)
        uv_idle_stop(idle);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    enum mgw_phase before = c->s.phase;

    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close_handles(c, nread == UV_EOF          ? "peer closed"
                              : nread == UV_ECONNRESET ? "peer reset"
                                                       : uv_err_name((int)nread));
        return;
    }
    mgw_session_feed(&c->s, c->srv->read_buf, (size_t)nread);
    if (!c->closing && before != MGW_PHASE_READY && c->s.phase == MGW_PHASE_READY)
        uv_timer_stop(&c->timer);
    yield_if_asked(c);
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

            uv_ip6_name(a, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

            uv_ip4_name(a, host, sizeof host);
            port = ntohs(a->sin_port);
        }
    }
    snprintf(out, cap, "%s:%d", host, port);
}

/* --------------------------------------------------------------------------------------------
 * Accepting
 */
/* Starts serving an accepted connection: the handshake deadline, reading, the accept event. */
static void conn_start(struct conn *c)
{
    c->accept_wait = false;
    uv_timer_start(&c->timer, on_handshake_timeout, c->srv->cfg.hello_timeout_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, mgw__conn_alloc, on_read);
    /* The accept event: a rule may silence, delay or drop the connection before any byte. */
    mgw_session_accept(&c->s);
    /* Proxy mode: the upstream leg, unless the accept event ended or silenced the client. */
    if (c->srv->proxy && !c->closing && !c->draining && c->s.phase != MGW_PHASE_CLOSED &&
        !c->s.silent)
        mgw__upstream_start(c);
}

static void on_accept_wait(uv_timer_t *t)
{
    conn_start(t->data);
}

static void accept_one(struct mgw_server *srv)
{
    struct conn *c;

    srv->accept_pending = false;
    c = calloc(1, sizeof *c);
    if (!c)
        return; /* the connection stays in the backlog until memory frees up */
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    if (uv_accept((uv_stream_t *)srv->listener, (uv_stream_t *)&c->tcp) < 0) {
        c->closing = true;
        srv->n_closing++;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
        return;
    }
    mgw_session_init(&c->s, &srv->ctx, ++srv->next_conn_id, &conn_io, c);
    c->connected_ms = c->s.accepted_ms = uv_now(srv->loop);
    peer_name(&c->tcp, c->peer, sizeof c->peer);
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
    srv->n_conns++;
    srv->counters.accepted++;
    mgw_journal_eventf(srv->journal, c->s.id, -1, "accept", "\"peer\":\"%s\",\"ordinal\":%" PRIu64,
                       c->peer, c->s.id);
    if (srv->cfg.max_clients > 0 && srv->n_conns > (unsigned)srv->cfg.max_clients) {
        /* A real gateway allows 32 API clients; what the 33rd sees is undocumented. We
         * accept and close at once, so the client sees EOF before any byte. */
        srv->counters.rejected_max_clients++;
        mgw_session_close(&c->s, MGW_CLOSE_NOW, "max clients reached");
        return;
    }
    if (srv->proxy && mgw_session_proxy(&c->s, mgw__upstream_send) < 0) {
        mgw_session_close(&c->s, MGW_CLOSE_NOW, "out of memory");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (srv->accept_delay_ms > 0) {
        /* The connection waits as if it were still in the backlog (the client is connected
         * either way: the kernel completed the handshake); each waits on its own timer. */
        c->accept_wait = true;
        uv_timer_start(&c->timer, on_accept_wait, srv->accept_delay_ms, 0);
        return;
    }
    conn_start(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct mgw_server *srv = listener->data;

    if (status < 0 || srv->stopping)
        return;
    /* Not accepting now makes libuv stop polling the listener: the kernel backlog holds the
     * next connections until we accept again. */
    srv->accept_pending = true;
    if (srv->listen_mode == MGW_LISTEN_BLACKHOLE)
        return;
    accept_one(srv);
}

/* --------------------------------------------------------------------------------------------
 * The listener: normal, refuse (closed), blackhole (open, not accepting); restarts
 */
static int bind_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct mgw_server *srv = h->data;

    free(h);
    srv->n_closing--;
    if (srv->stopping)
        stop_progress(srv);
}

static void listener_close(struct mgw_server *srv)
{
    if (!srv->listener)
        return;
    srv->n_closing++;
    uv_close((uv_handle_t *)srv->listener, on_listener_closed);
    srv->listener = NULL;
    srv->accept_pending = false;
}

/* Binds and listens on host:port (port 0 = any). 0 or a negative libuv code. */
static int listener_open(struct mgw_server *srv, int port)
{
    struct sockaddr_storage ss;
    int len = sizeof ss, rc;
    uv_tcp_t *l;

    if (srv->listener)
        return 0;
    rc = bind_addr(srv->cfg.listen_host, port, &ss);
    if (rc < 0)
        return rc;
    l = malloc(sizeof *l);
    if (!l)
        return UV_ENOMEM;
    uv_tcp_init(srv->loop, l);
    l->data = srv;
    srv->listener = l;
    rc = uv_tcp_bind(l, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)l, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        listener_close(srv);
        return rc;
    }
    uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
    srv->api_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static const char *listen_mode_name(enum mgw_listener_mode m)
{
    return m == MGW_LISTEN_REFUSE ? "refuse" : m == MGW_LISTEN_BLACKHOLE ? "blackhole" : "normal";
}

int mgw__listener_set(struct mgw_server *srv, enum mgw_listener_mode mode, const char *why)
{
    int rc = 0;

    if (srv->stopping)
        return UV_ECANCELED;
    srv->listen_mode = mode;
    if (mode == MGW_LISTEN_REFUSE) {
        listener_close(srv);
    } else {
        if (!srv->restarting)
            rc = listener_open(srv, srv->api_port);
        if (rc == 0 && mode == MGW_LISTEN_NORMAL && srv->accept_pending && srv->listener)
            accept_one(srv); /* take the connection libuv holds */
    }
    if (rc < 0)
        mgw_journal_eventf(srv->journal, 0, -1, "listener",
                           "\"mode\":\"%s\",\"why\":\"%s\",\"error\":\"%s\"",
                           listen_mode_name(mode), why, uv_err_name(rc));
    else
        mgw_journal_eventf(srv->journal, 0, -1, "listener", "\"mode\":\"%s\",\"why\":\"%s\"",
                           listen_mode_name(mode), why);
    return rc;
}

void mgw__drop_all(struct mgw_server *srv, bool reset, const char *why)
{
    /* A FIN close keeps the connection listed until its shutdown completes: walk, don't pop. */
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (reset || !c->draining)
            mgw__conn_close(c, reset, why);
    }
}

static void on_restart_done(uv_timer_t *t)
{
    struct mgw_server *srv = t->data;
    int rc;

    srv->restarting = false;
    /* A refuse ordered during the down time stands; anything else listens again. */
    rc = srv->listen_mode == MGW_LISTEN_REFUSE ? 0 : listener_open(srv, srv->api_port);
    mgw_journal_eventf(srv->journal, 0, -1, "restarted", "\"listening\":%s%s%s%s",
                       rc == 0 && srv->listener ? "true" : "false", rc == 0 ? "" : ",\"error\":\"",
                       rc == 0 ? "" : uv_err_name(rc), rc == 0 ? "" : "\"");
}

void mgw__restart(struct mgw_server *srv, uint64_t down_ms, bool reset, const char *why)
{
    if (srv->stopping)
        return;
    srv->counters.restarts++;
    mgw_journal_eventf(srv->journal, 0, -1, "restart",
                       "\"down_ms\":%" PRIu64 ",\"how\":\"%s\",\"why\":\"%s\"", down_ms,
                       reset ? "reset" : "close", why);
    mgw__drop_all(srv, reset, "gateway restart");
    listener_close(srv);
    srv->restarting = true;
    uv_timer_start(&srv->restart_timer, on_restart_done, down_ms, 0);
}

static void on_server_sched(uv_timer_t *t)
{
    struct mgw_server *srv = t->data;
    uint64_t now = uv_now(srv->loop), next = UINT64_MAX;

    for (unsigned i = 0; i < srv->n_sched && !srv->stopping;) {
        struct scheduled sc = srv->sched[i];

        if (sc.due_ms > now) {
            next = sc.due_ms < next ? sc.due_ms : next;
            i++;
            continue;
        }
        srv->sched[i] = srv->sched[--srv->n_sched];
        mgw_journal_eventf(srv->journal, 0, -1, "fault_applied",
                           "\"action\":\"%s\",\"phase\":\"%s\"", mgw_action_name(sc.action.type),
                           mgw_event_phase_name(sc.phase));
        if (sc.action.set_state)
            mgw_faults_set_state(srv->faults, sc.action.set_state);
        if (sc.action.type == MGW_ACT_RESTART)
            mgw__restart(srv, sc.action.down_ms, sc.action.reset, "fault");
        else
            mgw__listener_set(srv,
                              sc.action.type == MGW_ACT_REFUSE      ? MGW_LISTEN_REFUSE
                              : sc.action.type == MGW_ACT_BLACKHOLE ? MGW_LISTEN_BLACKHOLE
                                                                    : MGW_LISTEN_NORMAL,
                              "fault");
        mgw_action_clear(&sc.action);
        i = 0;
        next = UINT64_MAX;
    }
    if (!srv->stopping && next != UINT64_MAX)
        uv_timer_start(&srv->sched_timer, on_server_sched, next - now, 0);
}

/* A listener action with after_ms: kept by the server, not by the connection that fired it. */
static void server_schedule(struct mgw_server *srv, const struct mgw_action *a,
                            enum mgw_event_phase phase)
{
    struct scheduled *sc;
    uint64_t due = uv_now(srv->loop) + a->after_ms, first = due;

    if (srv->n_sched == srv->cap_sched) {
        unsigned cap = srv->cap_sched ? srv->cap_sched * 2 : 4;
        struct scheduled *p = realloc(srv->sched, cap * sizeof *p);

        if (!p)
            return;
        srv->sched = p;
        srv->cap_sched = cap;
    }
    sc = &srv->sched[srv->n_sched];
    if (mgw_action_copy(&sc->action, a) < 0)
        return;
    sc->action.after_ms = 0;
    sc->due_ms = due;
    sc->phase = phase;
    sc->req_id = -1;
    srv->n_sched++;
    for (unsigned i = 0; i < srv->n_sched; i++)
        first = srv->sched[i].due_ms < first ? srv->sched[i].due_ms : first;
    uv_timer_start(&srv->sched_timer, on_server_sched, first - uv_now(srv->loop), 0);
}

static void on_every_timer(uv_timer_t *t)
{
    struct mgw_server *srv = t->data;

    mgw__restart(srv, srv->restart_down_ms, false, "restart_every");
}

int mgw__arm_script(struct mgw_server *srv, const struct mgw_script *script)
{
    const struct mgw_script_settings *st = &script->settings;
    struct mgw_rule **rules = NULL;

    if (mgw_faults_reset(srv->faults, srv->cfg.seed, script->state) < 0)
        return -ENOMEM;
    if (script->n_rules > 0) {
        rules = calloc(script->n_rules, sizeof *rules);
        if (!rules)
            return -ENOMEM;
        for (unsigned i = 0; i < script->n_rules; i++) {
            rules[i] = mgw_rule_copy(script->rules[i]);
            if (!rules[i]) {
                for (unsigned k = 0; k < i; k++)
                    mgw_rule_free(rules[k]);
                free(rules);
                return -ENOMEM;
            }
        }
        if (mgw_faults_replace(srv->faults, rules, script->n_rules) < 0) {
            free(rules);
            return -ENOMEM;
        }
        free(rules);
    }
    mgw_ctx_clear_busy(&srv->ctx);
    for (unsigned i = 0; i < st->n_busy_client_ids; i++)
        if (mgw_ctx_hold_client_id(&srv->ctx, st->busy_client_ids[i], UINT64_MAX) < 0)
            return -ENOMEM;
    srv->ctx.stale_client_id_ms = st->stale_client_id_ms;
    srv->accept_delay_ms = st->accept_delay_ms;
    srv->restart_every_ms = st->restart_every_ms;
    srv->restart_down_ms = st->restart_down_ms;
    srv->listen_mode = st->listener;
    return 0;
}

int mgw__reset_to(struct mgw_server *srv, struct mgw_script *given)
{
    const struct mgw_config *base = &srv->base_cfg;
    struct mgw_config *cfg = &srv->cfg;
    int rc = mgw__arm_script(srv, given != NULL ? given : srv->script);

    if (rc < 0) {
        mgw_script_free(given);
        return rc;
    }
#define RESTORE(setting, field) cfg->field = base->field;
#define APPLY(setting, field)          \
    if (given->settings.has_##setting) \
        cfg->field = given->settings.setting;
    MGW_CONFIG_SETTINGS(RESTORE)
    if (given != NULL) {
        MGW_CONFIG_SETTINGS(APPLY)
    }
#undef RESTORE
#undef APPLY
    mgw_script_free(srv->reset_script); /* cfg->accounts no longer points into it */
    srv->reset_script = given;
    if (srv->timers_init) {
        uv_timer_stop(&srv->every_timer);
        if (srv->restart_every_ms > 0)
            uv_timer_start(&srv->every_timer, on_every_timer, srv->restart_every_ms,
                           srv->restart_every_ms);
    }
    return 0;
}

/* --------------------------------------------------------------------------------------------
 * Start and stop
 */
int mgw_server_start(struct mgw_server *srv, struct mgw_err *err)
{
    struct sockaddr_storage ss;
    int rc;

    if (srv->timers_init || srv->stopping) {
        snprintf(err->msg, sizeof err->msg, "server already started");
        return MGW_ESTATE;
    }
    if (bind_addr(srv->cfg.listen_host, srv->cfg.listen_port, &ss) < 0) {
        snprintf(err->msg, sizeof err->msg, "--listen %s:%d: not a numeric IPv4/IPv6 address",
                 srv->cfg.listen_host, srv->cfg.listen_port);
        return MGW_ECONFIG;
    }
    uv_timer_init(srv->loop, &srv->sched_timer);
    uv_timer_init(srv->loop, &srv->restart_timer);
    uv_timer_init(srv->loop, &srv->every_timer);
    uv_idle_init(srv->loop, &srv->yield_idle);
    srv->sched_timer.data = srv->restart_timer.data = srv->every_timer.data = srv;
    srv->yield_idle.data = srv;
    srv->timers_init = true;
    /* Bound even when the script starts refusing: the port must be known and reserved. */
    rc = listener_open(srv, srv->cfg.listen_port);
    if (rc < 0) {
        snprintf(err->msg, sizeof err->msg, "listen %s:%d: %s", srv->cfg.listen_host,
                 srv->cfg.listen_port, uv_strerror(rc));
        goto fail;
    }
    if (srv->cfg.admin_enabled) {
        srv->admin = mgw_admin_new(srv->loop, mgw__admin_route, srv);
        if (!srv->admin) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            rc = -ENOMEM;
            goto fail;
        }
        rc = mgw_admin_listen(srv->admin, srv->cfg.admin_host, srv->cfg.admin_port, err);
        if (rc < 0)
            goto fail;
        srv->admin_port = mgw_admin_port(srv->admin);
    }
    srv->started_ms = uv_now(srv->loop);
    mgw_journal_eventf(
        srv->journal, 0, -1, "listening",
        "\"api\":\"%s:%d\",\"admin_port\":%d,\"server_version\":%d,\"rules\":%u%s%s%s",
        srv->cfg.listen_host, srv->api_port, srv->admin_port, srv->cfg.server_version,
        mgw_faults_count(srv->faults), srv->proxy ? ",\"upstream\":\"" : "",
        srv->proxy ? srv->upstream_name : "", srv->proxy ? "\"" : "");
    if (srv->listen_mode != MGW_LISTEN_NORMAL)
        mgw__listener_set(srv, srv->listen_mode, "script");
    if (srv->restart_every_ms > 0)
        uv_timer_start(&srv->every_timer, on_every_timer, srv->restart_every_ms,
                       srv->restart_every_ms);
    return 0;

fail:
    /* Leave the server stoppable: mgw_server_stop() closes whatever did open. */
    return rc == UV_EADDRINUSE || rc == UV_EACCES || rc == UV_EADDRNOTAVAIL ? MGW_EBIND : rc;
}

int mgw_server_api_port(const struct mgw_server *srv)
{
    return srv->api_port;
}

int mgw_server_admin_port(const struct mgw_server *srv)
{
    return srv->admin_port;
}

struct stop_notice {
    uv_idle_t idle; /* defers the callback one loop turn, so it never runs inside stop() */
    struct mgw_server *srv;
};

static void on_stop_notice_closed(uv_handle_t *h)
{
    struct stop_notice *n = h->data;
    struct mgw_server *srv = n->srv;

    free(n);
    if (srv->stop_cb)
        srv->stop_cb(srv, srv->stop_data);
}

static void on_stop_done(uv_idle_t *idle)
{
    uv_close((uv_handle_t *)idle, on_stop_notice_closed);
}

static void stop_progress(struct mgw_server *srv)
{
    struct stop_notice *n;

    if (srv->pending_closes > 0 || srv->n_closing > 0 || srv->stop_notified)
        return;
    srv->stop_notified = true;
    n = calloc(1, sizeof *n);
    if (!n) { /* cannot defer: the caller of stop() has long returned by now anyway */
        if (srv->stop_cb)
            srv->stop_cb(srv, srv->stop_data);
        return;
    }
    n->srv = srv;
    uv_idle_init(srv->loop, &n->idle);
    n->idle.data = n;
    uv_idle_start(&n->idle, on_stop_done);
}

static void on_admin_closed(void *data)
{
    struct mgw_server *srv = data;

    srv->admin = NULL;
    srv->pending_closes--;
    stop_progress(srv);
}

static void on_server_timer_closed(uv_handle_t *h)
{
    struct mgw_server *srv = h->data;

    srv->pending_closes--;
    stop_progress(srv);
}

int mgw_server_stop(struct mgw_server *srv, mgw_stopped_cb cb, void *data)
{
    if (srv->stopping)
        return MGW_ESTATE;
    srv->stopping = true;
    srv->stop_cb = cb;
    srv->stop_data = data;
    srv->pending_closes = 1; /* held until every close below has been started */
    mgw_journal_event(srv->journal, 0, -1, "stopping", NULL);
    listener_close(srv);
    if (srv->timers_init) {
        srv->pending_closes += 4;
        uv_close((uv_handle_t *)&srv->yield_idle, on_server_timer_closed);
        uv_close((uv_handle_t *)&srv->sched_timer, on_server_timer_closed);
        uv_close((uv_handle_t *)&srv->restart_timer, on_server_timer_closed);
        uv_close((uv_handle_t *)&srv->every_timer, on_server_timer_closed);
    }
    if (srv->admin) {
        srv->pending_closes++;
        mgw_admin_close(srv->admin, on_admin_closed, srv);
    }
    while (srv->conns)
        conn_close_handles(srv->conns, "server stopping");
    srv->pending_closes--;
    stop_progress(srv);
    return 0;
}
