/* Proxy mode, the transport of the upstream leg (docs/proxy.md): one TCP connection to the real
 * gateway per accepted client, connected under a deadline, read into the session
 * (mgw_session_feed_upstream) and written from it (the proxy's send). One side closing closes
 * the other, journaled. The protocol half is proxy.c. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "strbuf.h"

static void addr_name(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

        uv_ip6_name(a, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%d", host, port);
        return;
    }
    uv_ip4_name((const struct sockaddr_in *)ss, host, sizeof host);
    port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    snprintf(out, cap, "%s:%d", host, port);
}

/* Closes the handles without a journal entry (the caller journals why). */
static void close_handles(struct conn *c)
{
    struct upstream *up = c->up;

    if (up->closed)
        return;
    up->closed = true;
    uv_close((uv_handle_t *)&up->tcp, mgw__conn_handle_closed);
    uv_close((uv_handle_t *)&up->timer, mgw__conn_handle_closed);
}

void mgw__upstream_close(struct conn *c, const char *why)
{
    struct upstream *up = c->up;
    char esc[256];

    if (!up || up->closed)
        return;
    mgw_journal_eventf(c->srv->journal, c->s.id, c->s.client_id, "upstream_close",
                       "\"reason\":\"%s\",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64,
                       mgw_json_escape(why, esc, sizeof esc), up->bytes_in, up->bytes_out);
    close_handles(c);
}

void mgw__upstream_pause(struct conn *c)
{
    if (c->up && c->up->connected && !c->up->closed)
        uv_read_stop((uv_stream_t *)&c->up->tcp);
}

static void connect_failed(struct conn *c, int status)
{
    struct upstream *up = c->up;

    mgw_journal_eventf(
        c->srv->journal, c->s.id, c->s.client_id, "upstream_connect_failed",
        "\"upstream\":\"%s\",\"error\":\"%s\",\"reason\":\"%s\",\"after_ms\":%" PRIu64,
        c->srv->upstream_name, uv_err_name(status), uv_strerror(status),
        uv_now(c->srv->loop) - up->started_ms);
    close_handles(c);
    up->pending_len = 0;
    mgw_session_close(&c->s, MGW_CLOSE_FIN,
                      status == UV_ETIMEDOUT      ? "upstream connect timed out"
                      : status == UV_ECONNREFUSED ? "upstream refused the connection"
                                                  : "upstream connect failed");
}

static void on_up_timeout(uv_timer_t *t)
{
    connect_failed(t->data, UV_ETIMEDOUT);
}

static void on_up_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    enum mgw_phase before = c->s.phase;
    const char *why;

    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        why = nread == UV_EOF          ? "upstream closed"
              : nread == UV_ECONNRESET ? "upstream reset"
                                       : "upstream read failed";
        mgw__upstream_close(c, why);
        /* What the client's output pipeline holds still goes out, then FIN. */
        mgw_session_close(&c->s, MGW_CLOSE_FIN, why);
        return;
    }
    c->up->bytes_in += (uint64_t)nread;
    mgw_session_feed_upstream(&c->s, c->srv->read_buf, (size_t)nread);
    /* Ready comes from the upstream in proxy mode: the handshake deadline ends here. */
    if (!c->closing && !c->draining && before != MGW_PHASE_READY && c->s.phase == MGW_PHASE_READY)
        uv_timer_stop(&c->timer);
}

static void on_up_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct upstream *up = c->up;
    struct sockaddr_storage ss;
    int len = sizeof ss;

    if (status == UV_ECANCELED || up->closed) /* we closed it first: deadline, client gone */
        return;
    uv_timer_stop(&up->timer);
    if (status < 0) {
        connect_failed(c, status);
        return;
    }
    up->connected = true;
    uv_tcp_nodelay(&up->tcp, 1);
    if (uv_tcp_getsockname(&up->tcp, (struct sockaddr *)&ss, &len) == 0)
        addr_name(&ss, up->local, sizeof up->local);
    mgw_journal_eventf(c->srv->journal, c->s.id, c->s.client_id, "upstream_connect",
                       "\"upstream\":\"%s\",\"local\":\"%s\",\"ms\":%" PRIu64,
                       c->srv->upstream_name, up->local, uv_now(c->srv->loop) - up->started_ms);
    if (!c->s.silent)
        uv_read_start((uv_stream_t *)&up->tcp, mgw__conn_alloc, on_up_read);
    if (up->pending_len > 0) {
        size_t n = up->pending_len;

        up->pending_len = 0;
        up->bytes_out += n;
        mgw__stream_send(c, (uv_stream_t *)&up->tcp, &up->queued, up->pending, n);
    }
    free(up->pending);
    up->pending = NULL;
    up->pending_cap = 0;
}

void mgw__upstream_start(struct conn *c)
{
    struct mgw_server *srv = c->srv;
    struct upstream *up = calloc(1, sizeof *up);
    int rc;

    if (!up) {
        mgw_session_close(&c->s, MGW_CLOSE_NOW, "out of memory");
        return;
    }
    c->up = up;
    uv_tcp_init(srv->loop, &up->tcp);
    uv_timer_init(srv->loop, &up->timer);
    up->tcp.data = up->timer.data = up->connect.data = c;
    c->open_handles += 2;
    up->started_ms = uv_now(srv->loop);
    rc = uv_tcp_connect(&up->connect, &up->tcp, (const struct sockaddr *)&srv->upstream_addr,
                        on_up_connect);
    if (rc < 0) {
        connect_failed(c, rc);
        return;
    }
    uv_timer_start(&up->timer, on_up_timeout, srv->cfg.upstream_timeout_ms, 0);
}

void mgw__upstream_send(void *io_data, const uint8_t *buf, size_t len)
{
    struct conn *c = io_data;
    struct upstream *up = c->up;

    if (!up || up->closed || c->closing || len == 0)
        return;
    if (up->connected) {
        up->bytes_out += len;
        mgw__stream_send(c, (uv_stream_t *)&up->tcp, &up->queued, buf, len);
        return;
    }
    /* Not connected yet: kept, under the same cap as any output. */
    if (up->pending_len + len > c->srv->cfg.max_out_buffer) {
        mgw__output_overflow(c, "upstream", up->pending_len, len);
        return;
    }
    if (up->pending_len + len > up->pending_cap) {
        size_t cap = up->pending_cap ? up->pending_cap : 256;
        uint8_t *p;

        while (cap < up->pending_len + len)
            cap *= 2;
        p = realloc(up->pending, cap);
        if (!p) {
            mgw_session_close(&c->s, MGW_CLOSE_NOW, "out of memory");
            return;
        }
        up->pending = p;
        up->pending_cap = cap;
    }
    memcpy(up->pending + up->pending_len, buf, len);
    up->pending_len += len;
}
