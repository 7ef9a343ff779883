/* A small HTTP/1.1 server on the loop for the probe's endpoints: GET and HEAD, one request per
 * connection (answered with Connection: close), parsed with http_parser as it arrives. Bounded
 * everywhere: connections at once, bytes of a request head, and one deadline per connection
 * from accept to the last byte written. A bad request costs only its own connection. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#define MAX_CONNS 64
#define MAX_HEAD  8192 /* request line and headers */
#define MAX_URL   1024
#define CONN_MS   5000
#define READ_BUF  4096
#define STATUS_TEXT(s)                                \
    ((s) == 200   ? "OK"                              \
     : (s) == 400 ? "Bad Request"                     \
     : (s) == 404 ? "Not Found"                       \
     : (s) == 405 ? "Method Not Allowed"              \
     : (s) == 408 ? "Request Timeout"                 \
     : (s) == 413 ? "Payload Too Large"               \
     : (s) == 431 ? "Request Header Fields Too Large" \
     : (s) == 503 ? "Service Unavailable"             \
                  : "Error")

struct hconn;

struct harness_httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    harness_httpd_fn fn;
    void *data;
    struct hconn *conns;
    unsigned n_conns;
    unsigned open; /* the listener and every connection's handles */
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

struct hconn {
    struct harness_httpd *srv;
    struct hconn *next, **prev;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    http_parser parser;
    char url[MAX_URL + 1];
    size_t url_len, head_bytes;
    bool complete, too_big, url_too_long, has_body, answered;
    unsigned open;
    char *resp;
    char rbuf[READ_BUF];
};

static void server_maybe_done(struct harness_httpd *s)
{
    if (s->closing && s->open == 0 && s->close_cb != NULL) {
        void (*cb)(void *) = s->close_cb;
        void *data = s->close_data;

        free(s);
        cb(data);
    } else if (s->closing && s->open == 0) {
        free(s);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    struct hconn *c = h->data;
    struct harness_httpd *s = c->srv;

    s->open--;
    if (--c->open > 0)
        return;
    free(c->resp);
    free(c);
    server_maybe_done(s);
}

static void conn_close(struct hconn *c)
{
    if (c->prev == NULL) /* already closing */
        return;
    *c->prev = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->srv->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

/* The one answer of a connection; then it closes. */
static void respond(struct hconn *c, int status, const char *body, bool head)
{
    size_t blen = body != NULL ? strlen(body) : 0, cap = blen + 256;
    uv_buf_t b;
    int n;

    if (c->answered)
        return;
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if ((c->resp = malloc(cap)) == NULL) {
        conn_close(c);
        return;
    }
    n = snprintf(c->resp, cap,
                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 status, STATUS_TEXT(status), blen);
    if (n < 0 || (size_t)n + blen >= cap) {
        conn_close(c);
        return;
    }
    if (!head && blen > 0)
        memcpy(c->resp + n, body, blen);
    b = uv_buf_init(c->resp, (unsigned)((size_t)n + (head ? 0 : blen)));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

static void respond_error(struct hconn *c, int status, const char *why)
{
    char body[160];

    snprintf(body, sizeof body, "{\"error\":\"%s\"}", why);
    respond(c, status, body, false);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct hconn *c = p->data;

    c->head_bytes += len;
    if (c->url_len + len > MAX_URL) {
        c->url_too_long = true;
        return 1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_head_bytes(http_parser *p, const char *at, size_t len)
{
    struct hconn *c = p->data;

    (void)at;
    c->head_bytes += len;
    if (c->head_bytes > MAX_HEAD) {
        c->too_big = true;
        return 1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    (void)at;
    (void)len;
    ((struct hconn *)p->data)->has_body = true;
    return 1; /* GET and HEAD only: a body is not wanted */
}

static int on_complete(http_parser *p)
{
    ((struct hconn *)p->data)->complete = true;
    return 1; /* one request per connection: stop here */
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_head_bytes,
    .on_header_value = on_head_bytes,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static void answer(struct hconn *c)
{
    struct harness_httpd *s = c->srv;
    const char *method = http_method_str((enum http_method)c->parser.method);
    bool head = c->parser.method == HTTP_HEAD;
    char path[MAX_URL + 1], *body = NULL;
    int status;

    if (c->parser.method != HTTP_GET && !head) {
        respond_error(c, 405, "only GET and HEAD");
        return;
    }
    snprintf(path, sizeof path, "%s", c->url);
    path[strcspn(path, "?#")] = '\0';
    status = s->fn(method, path, &body, s->data);
    respond(c, status, body != NULL ? body : "{}", head);
    free(body);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct hconn *c = h->data;

    (void)suggested;
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *c = stream->data;

    if (c->answered)
        return;
    if (nread < 0) { /* EOF before a whole request, or an error */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
    if (c->complete)
        answer(c);
    else if (c->url_too_long)
        respond_error(c, 431, "request target too long");
    else if (c->too_big)
        respond_error(c, 431, "request head too large");
    else if (c->has_body)
        respond_error(c, 413, "no request body is accepted");
    else if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
        respond_error(c, 400, "malformed request");
}

static void on_deadline(uv_timer_t *t)
{
    struct hconn *c = t->data;

    if (!c->answered)
        respond_error(c, 408, "request not complete in time");
    else
        conn_close(c); /* the client does not take the answer */
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct harness_httpd *s = listener->data;
    struct hconn *c;

    if (status < 0 || s->closing)
        return;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open = 2;
    s->open += 2;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = &c->next;
    s->conns = c;
    c->prev = &s->conns;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || s->n_conns > MAX_CONNS) {
        conn_close(c); /* over the cap: the client sees the connection close */
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_deadline, CONN_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct harness_httpd *s = h->data;

    s->open--;
    server_maybe_done(s);
}

int harness_httpd_start(uv_loop_t *loop, const char *host, int port, harness_httpd_fn fn,
                        void *data, struct harness_httpd **out, struct harness_err *err)
{
    struct sockaddr_storage addr;
    struct harness_httpd *s;
    int rc;

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        snprintf(err->msg, sizeof err->msg, "%s: not a numeric address", host);
        return UV_EINVAL;
    }
    if ((s = calloc(1, sizeof *s)) == NULL) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return UV_ENOMEM;
    }
    s->loop = loop;
    s->fn = fn;
    s->data = data;
    if ((rc = uv_tcp_init(loop, &s->listener)) < 0) {
        free(s);
        snprintf(err->msg, sizeof err->msg, "%s", uv_strerror(rc));
        return rc;
    }
    s->listener.data = s;
    s->open = 1;
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection)) < 0) {
        snprintf(err->msg, sizeof err->msg, "%s:%d: %s", host, port, uv_strerror(rc));
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return rc;
    }
    *out = s;
    return 0;
}

int harness_httpd_port(const struct harness_httpd *s)
{
    struct sockaddr_storage addr;
    int len = sizeof addr;

    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    return addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                      : ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

void harness_httpd_close(struct harness_httpd *s, void (*cb)(void *data), void *data)
{
    if (s == NULL || s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_data = data;
    while (s->conns != NULL)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
