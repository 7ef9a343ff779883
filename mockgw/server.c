#include "mockgw.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "fixtures.h"
#include "ibwire.h"
#include "journal.h"
#include "session.h"
#include "strbuf.h"

#define READ_BUF_SIZE  (64u << 10)
#define LISTEN_BACKLOG 4096
#define FIN_LINGER_MS  2000u /* a FIN close waits this long for queued output to drain */
#define JOURNAL_RING   4096u

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the handshake deadline, then the FIN linger */
    uv_shutdown_t shutdown;
    struct mgw_server *srv;
    struct mgw_session s;
    struct conn *prev, *next;
    char peer[64];
    uint64_t connected_ms; /* uv_now() at accept */
    size_t queued;         /* bytes handed to uv_write and not yet written */
    int open_handles;
    bool closing;  /* handles are being closed */
    bool draining; /* FIN requested: waiting for the shutdown to complete */
    const char *end_reason;
};

struct write_req {
    uv_write_t req;
    size_t len;
    uint8_t data[];
};

struct mgw_server {
    uv_loop_t *loop;
    struct mgw_config cfg; /* strings below are our own copies */
    char *listen_host, *admin_host, *accounts, *log_path, *fixtures_path;
    struct mgw_fixtures *fx;
    struct mgw_journal *journal;
    struct mgw_ctx ctx;
    struct mgw_admin *admin;
    uv_tcp_t listener;
    bool listener_open;
    int api_port;
    int admin_port;
    struct conn *conns; /* doubly linked, newest first */
    unsigned n_conns;
    uint64_t next_conn_id;
    uint8_t *read_buf; /* one buffer for every read: reads are handled synchronously */
    uint64_t started_ms;
    struct {
        uint64_t accepted, closed, rejected_max_clients, output_overflow;
    } counters;
    unsigned n_closing; /* connections whose handles are closing */
    /* Stopping: every handle closes, then stop_cb fires once. */
    bool stopping;
    bool stop_notified;
    unsigned pending_closes; /* listener and admin */
    mgw_stopped_cb stop_cb;
    void *stop_data;
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
static bool accounts_valid(const char *a)
{
    if (!a || !*a)
        return false;
    for (const char *p = a; *p; p++) {
        if (*p == ',' && (p == a || p[1] == '\0' || p[1] == ','))
            return false; /* an empty account name */
        if (*p <= ' ' || *p > '~')
            return false;
    }
    return true;
}

static int config_check(const struct mgw_config *cfg, struct mgw_err *err)
{
    if (cfg->server_version < IBW_MIN_VERSION || cfg->server_version > IBW_MAX_VERSION) {
        snprintf(err->msg, sizeof err->msg,
                 "--server-version %d: must be between %d and %d (201 and up is IB's "
                 "protobuf protocol, which mockgw does not speak)",
                 cfg->server_version, IBW_MIN_VERSION, IBW_MAX_VERSION);
        return MGW_ECONFIG;
    }
    if (!accounts_valid(cfg->accounts)) {
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
    return 0;
}

static char *dup_or_null(const char *s, bool *ok)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *ok = false;
    return d;
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
    srv->listen_host = dup_or_null(cfg->listen_host, &ok);
    srv->admin_host = dup_or_null(cfg->admin_host, &ok);
    srv->accounts = dup_or_null(cfg->accounts, &ok);
    srv->log_path = dup_or_null(cfg->log_path, &ok);
    srv->fixtures_path = dup_or_null(cfg->fixtures_path, &ok);
    srv->read_buf = malloc(READ_BUF_SIZE);
    if (!ok || !srv->read_buf)
        goto nomem;
    srv->cfg.listen_host = srv->listen_host;
    srv->cfg.admin_host = srv->admin_host;
    srv->cfg.accounts = srv->accounts;
    srv->cfg.log_path = srv->log_path;
    srv->cfg.fixtures_path = srv->fixtures_path;

    srv->fx =
        cfg->fixtures_path ? mgw_fixtures_load(cfg->fixtures_path, err) : mgw_fixtures_default(err);
    if (!srv->fx)
        goto fail;
    /* The event ring exists for GET /v1/journal; without the admin API nobody reads it. */
    srv->journal = mgw_journal_new(loop, cfg->log_path, cfg->admin_enabled ? JOURNAL_RING : 0, err);
    if (!srv->journal)
        goto fail;
    if (mgw_ctx_init(&srv->ctx, &srv->cfg, srv->fx, srv->journal) < 0)
        goto nomem;
    srv->ctx.mono_ms = clock_mono;
    srv->ctx.wall_ms = clock_wall;
    srv->ctx.clock = srv;
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
    mgw_journal_free(srv->journal);
    mgw_fixtures_free(srv->fx);
    free(srv->read_buf);
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

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct mgw_server *srv = c->srv;

    if (--c->open_handles > 0)
        return;
    free(c);
    srv->n_closing--;
    if (srv->stopping)
        stop_progress(srv);
}

/* Unlinks c and closes its handles; c is freed in the last close callback. */
static void conn_close_handles(struct conn *c, const char *reason)
{
    struct mgw_server *srv = c->srv;

    if (c->closing)
        return;
    c->closing = true;
    if (!c->end_reason)
        c->end_reason = reason;
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
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = req->handle->data;

    c->queued -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        conn_close_handles(c, status == UV_ECONNRESET ? "peer reset" : "write failed");
}

static void conn_send(void *data, const uint8_t *buf, size_t len)
{
    struct conn *c = data;
    uv_buf_t b;
    struct write_req *w;

    if (c->closing || c->draining)
        return;
    if (c->queued == 0) {
        /* uv_buf_t is not const-correct; uv_try_write only reads the bytes. */
        b = uv_buf_init((char *)(uintptr_t)buf, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

        if (n == (int)len)
            return;
        if (n < 0 && n != UV_EAGAIN) {
            conn_close_handles(c, n == UV_ECONNRESET ? "peer reset" : "write failed");
            return;
        }
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
    if (c->queued + len > c->srv->cfg.max_out_buffer) {
        c->srv->counters.output_overflow++;
        mgw_journal_eventf(c->srv->journal, c->s.id, c->s.client_id, "output_overflow",
                           "\"queued\":%zu,\"adding\":%zu,\"cap\":%zu", c->queued, len,
                           c->srv->cfg.max_out_buffer);
        conn_close_handles(c, "client does not read (output buffer full)");
        return;
    }
    w = malloc(sizeof *w + len);
    if (!w) {
        conn_close_handles(c, "out of memory");
        return;
    }
    w->len = len;
    memcpy(w->data, buf, len);
    b = uv_buf_init((char *)w->data, (unsigned)len);
    c->queued += len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        c->queued -= len;
        free(w);
        conn_close_handles(c, "write failed");
    }
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close_handles(t->data, NULL);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    (void)status;
    if (!c->closing)
        conn_close_handles(c, NULL);
}

static void conn_close(void *data, enum mgw_close_how how)
{
    struct conn *c = data;

    if (c->closing || c->draining)
        return;
    c->end_reason = c->s.close_reason;
    if (how == MGW_CLOSE_NOW) {
        conn_close_handles(c, NULL);
        return;
    }
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

static const struct mgw_session_io conn_io = { conn_send, conn_close };

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)c->srv->read_buf, READ_BUF_SIZE);
}

static void on_handshake_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->s.phase == MGW_PHASE_HELLO || c->s.phase == MGW_PHASE_VERSION_SENT)
        mgw_session_close(&c->s, MGW_CLOSE_NOW,
                          c->s.phase == MGW_PHASE_HELLO ? "no handshake within the timeout"
                                                        : "no startApi within the timeout");
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
    if (before != MGW_PHASE_READY && c->s.phase == MGW_PHASE_READY)
        uv_timer_stop(&c->timer);
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

static void on_connection(uv_stream_t *listener, int status)
{
    struct mgw_server *srv = listener->data;
    struct conn *c;

    if (status < 0 || srv->stopping)
        return;
    c = calloc(1, sizeof *c);
    if (!c)
        return; /* the connection stays in the backlog until memory frees up */
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        c->closing = true;
        srv->n_closing++;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
        return;
    }
    mgw_session_init(&c->s, &srv->ctx, ++srv->next_conn_id, &conn_io, c);
    c->connected_ms = uv_now(srv->loop);
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
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_handshake_timeout, srv->cfg.hello_timeout_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* --------------------------------------------------------------------------------------------
 * Admin API
 */
static cJSON *status_json(struct mgw_server *srv)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *api = cJSON_AddObjectToObject(root, "api");
    cJSON *rules = cJSON_AddObjectToObject(root, "rules");
    cJSON *counters = cJSON_AddObjectToObject(root, "counters");
    cJSON *conns = cJSON_AddArrayToObject(root, "connections");
    uint64_t now = uv_now(srv->loop);

    cJSON_AddStringToObject(api, "host", srv->cfg.listen_host);
    cJSON_AddNumberToObject(api, "port", srv->api_port);
    cJSON_AddBoolToObject(api, "accepting", srv->listener_open && !srv->stopping);
    if (srv->admin) {
        cJSON *admin = cJSON_AddObjectToObject(root, "admin");

        cJSON_AddStringToObject(admin, "host", srv->cfg.admin_host);
        cJSON_AddNumberToObject(admin, "port", srv->admin_port);
        cJSON_AddNumberToObject(admin, "connections", (double)mgw_admin_conn_count(srv->admin));
    }
    cJSON_AddNumberToObject(root, "server_version", srv->cfg.server_version);
    cJSON_AddStringToObject(root, "accounts", srv->cfg.accounts);
    cJSON_AddNumberToObject(root, "seed", (double)srv->cfg.seed);
    cJSON_AddNumberToObject(root, "uptime_ms", (double)(now - srv->started_ms));
    cJSON_AddNumberToObject(root, "journal_seq", (double)mgw_journal_seq(srv->journal));
    cJSON_AddNumberToObject(rules, "max_clients", srv->cfg.max_clients);
    cJSON_AddBoolToObject(rules, "unique_client_ids", srv->cfg.unique_client_ids);
    cJSON_AddBoolToObject(rules, "pace_current_time", srv->cfg.pace_current_time);
    cJSON_AddNumberToObject(rules, "handshake_timeout_ms", (double)srv->cfg.hello_timeout_ms);
    cJSON_AddNumberToObject(rules, "max_out_buffer", (double)srv->cfg.max_out_buffer);
    cJSON_AddNumberToObject(counters, "accepted", (double)srv->counters.accepted);
    cJSON_AddNumberToObject(counters, "closed", (double)srv->counters.closed);
    cJSON_AddNumberToObject(counters, "rejected_max_clients",
                            (double)srv->counters.rejected_max_clients);
    cJSON_AddNumberToObject(counters, "refused_client_id",
                            (double)srv->ctx.counters.refused_client_id);
    cJSON_AddNumberToObject(counters, "bad_input", (double)srv->ctx.counters.bad_input);
    cJSON_AddNumberToObject(counters, "output_overflow", (double)srv->counters.output_overflow);
    cJSON_AddNumberToObject(counters, "paced_current_time", (double)srv->ctx.counters.paced);
    cJSON_AddNumberToObject(counters, "ignored_messages",
                            (double)srv->ctx.counters.unknown_messages);
    cJSON_AddNumberToObject(root, "connection_count", srv->n_conns);
    for (struct conn *c = srv->conns; c; c = c->next) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddNumberToObject(o, "id", (double)c->s.id);
        cJSON_AddStringToObject(o, "peer", c->peer);
        if (c->s.client_id >= 0 || c->s.phase == MGW_PHASE_READY)
            cJSON_AddNumberToObject(o, "client_id", c->s.client_id);
        else
            cJSON_AddNullToObject(o, "client_id");
        cJSON_AddStringToObject(o, "phase", c->draining ? "closing" : mgw_phase_name(c->s.phase));
        cJSON_AddNumberToObject(o, "version", c->s.version);
        cJSON_AddNumberToObject(o, "bytes_in", (double)c->s.bytes_in);
        cJSON_AddNumberToObject(o, "bytes_out", (double)c->s.bytes_out);
        cJSON_AddNumberToObject(o, "frames_in", (double)c->s.frames_in);
        cJSON_AddNumberToObject(o, "frames_out", (double)c->s.frames_out);
        cJSON_AddNumberToObject(o, "queued_out", (double)c->queued);
        cJSON_AddNumberToObject(o, "connected_ms", (double)(now - c->connected_ms));
        cJSON_AddItemToArray(conns, o);
    }
    return root;
}

static void reply_json(struct mgw_http_response *resp, int status, cJSON *body)
{
    resp->status = status;
    resp->body = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!resp->body) {
        resp->status = 500;
        resp->body = mgw_admin_error_body("out of memory");
    }
}

__attribute__((format(printf, 3, 4))) static void reply_error(struct mgw_http_response *resp,
                                                              int status, const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->body = mgw_admin_error_body(msg);
}

/* "since=12" -> 12; absent -> 0; anything else -> -1. */
static int64_t query_since(const char *query)
{
    const char *p = strstr(query, "since=");
    int64_t v;

    if (!p || (p != query && p[-1] != '&'))
        return 0;
    p += 6;
    if (ibw_parse_i64(p, strcspn(p, "&"), 0, INT64_MAX, &v) < 0)
        return -1;
    return v;
}

static void on_admin_request(void *ctx, const struct mgw_http_request *req,
                             struct mgw_http_response *resp)
{
    struct mgw_server *srv = ctx;
    bool get = strcmp(req->method, "GET") == 0;

    if (strcmp(req->path, "/v1/status") == 0) {
        if (!get) {
            reply_error(resp, 405, "method %s not allowed on /v1/status (use GET)", req->method);
            return;
        }
        reply_json(resp, 200, status_json(srv));
        return;
    }
    if (strcmp(req->path, "/v1/journal") == 0) {
        int64_t since = query_since(req->query);

        if (!get) {
            reply_error(resp, 405, "method %s not allowed on /v1/journal (use GET)", req->method);
            return;
        }
        if (since < 0) {
            reply_error(resp, 400, "bad query \"%s\": since must be a sequence number", req->query);
            return;
        }
        resp->status = 200;
        resp->body = mgw_journal_ring_json(srv->journal, (uint64_t)since);
        if (!resp->body) {
            resp->status = 500;
            resp->body = mgw_admin_error_body("out of memory");
        }
        return;
    }
    reply_error(resp, 404, "no such endpoint: %s", req->path);
}

/* --------------------------------------------------------------------------------------------
 * Start and stop
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

    if (srv->stopping) {
        srv->pending_closes--;
        stop_progress(srv);
    }
}

int mgw_server_start(struct mgw_server *srv, struct mgw_err *err)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc;

    if (srv->listener_open || srv->stopping) {
        snprintf(err->msg, sizeof err->msg, "server already started");
        return MGW_ESTATE;
    }
    if (bind_addr(srv->cfg.listen_host, srv->cfg.listen_port, &ss) < 0) {
        snprintf(err->msg, sizeof err->msg, "--listen %s:%d: not a numeric IPv4/IPv6 address",
                 srv->cfg.listen_host, srv->cfg.listen_port);
        return MGW_ECONFIG;
    }
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = true;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        snprintf(err->msg, sizeof err->msg, "listen %s:%d: %s", srv->cfg.listen_host,
                 srv->cfg.listen_port, uv_strerror(rc));
        goto fail;
    }
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    srv->api_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    if (srv->cfg.admin_enabled) {
        srv->admin = mgw_admin_new(srv->loop, on_admin_request, srv);
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
    mgw_journal_eventf(srv->journal, 0, -1, "listening",
                       "\"api\":\"%s:%d\",\"admin_port\":%d,\"server_version\":%d",
                       srv->cfg.listen_host, srv->api_port, srv->admin_port,
                       srv->cfg.server_version);
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

static void on_stop_done(uv_idle_t *idle);

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

int mgw_server_stop(struct mgw_server *srv, mgw_stopped_cb cb, void *data)
{
    if (srv->stopping)
        return MGW_ESTATE;
    srv->stopping = true;
    srv->stop_cb = cb;
    srv->stop_data = data;
    srv->pending_closes = 1; /* held until every close below has been started */
    mgw_journal_event(srv->journal, 0, -1, "stopping", NULL);
    if (srv->listener_open) {
        srv->pending_closes++;
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
        srv->listener_open = false;
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
