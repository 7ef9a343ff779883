/* A small non-blocking HTTP/1.1 client for mockgw's admin API: one request per connection
 * (Connection: close), the response parsed with http_parser as it arrives, one deadline timer
 * over the whole exchange. It runs on the caller's loop, so it can talk to an in-process mockgw
 * on that same loop. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#define MAX_BODY (16u << 20) /* a full journal is about 4 MiB */
#define READ_BUF 65536

struct harness_http {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    http_parser parser;
    char *request;
    size_t request_len;
    char *body;
    size_t body_len, body_cap;
    bool complete, too_big, done;
    unsigned open; /* handles not closed yet; freed at 0 */
    harness_http_cb cb;
    void *data;
    char rbuf[READ_BUF];
};

static void on_closed(uv_handle_t *handle)
{
    struct harness_http *h = handle->data;

    if (--h->open > 0)
        return;
    free(h->request);
    free(h->body);
    free(h);
}

/* The one completion: the callback first, then both handles close (h is freed in the last close
 * callback, so a cancel from inside the callback is a no-op on a live object). */
static void finish(struct harness_http *h, int status)
{
    if (h->done)
        return;
    h->done = true;
    uv_timer_stop(&h->timer);
    if (status == 0)
        h->cb(h, 0, (int)h->parser.status_code, h->body != NULL ? h->body : "", h->body_len,
              h->data);
    else
        h->cb(h, status, 0, NULL, 0, h->data);
    uv_close((uv_handle_t *)&h->tcp, on_closed);
    uv_close((uv_handle_t *)&h->timer, on_closed);
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct harness_http *h = p->data;
    size_t cap;
    char *nb;

    if (h->body_len + len > MAX_BODY) {
        h->too_big = true;
        return 1;
    }
    if (h->body_len + len + 1 > h->body_cap) {
        cap = h->body_cap != 0 ? h->body_cap : 4096;
        while (cap < h->body_len + len + 1)
            cap *= 2;
        if ((nb = realloc(h->body, cap)) == NULL) {
            h->too_big = true;
            return 1;
        }
        h->body = nb;
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, at, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct harness_http *)p->data)->complete = true;
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static void feed(struct harness_http *h, const char *buf, size_t len)
{
    size_t used = http_parser_execute(&h->parser, &parser_settings, buf, len);

    if (h->complete)
        finish(h, 0);
    else if (h->too_big)
        finish(h, UV_E2BIG);
    else if (HTTP_PARSER_ERRNO(&h->parser) != HPE_OK || (len > 0 && used != len))
        finish(h, UV_EPROTO);
    else if (len == 0) /* end of stream before a complete response */
        finish(h, UV_EPROTO);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct harness_http *h = handle->data;

    (void)suggested;
    buf->base = h->rbuf;
    buf->len = sizeof h->rbuf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct harness_http *h = stream->data;

    if (h->done)
        return;
    if (nread > 0)
        feed(h, buf->base, (size_t)nread);
    else if (nread == UV_EOF)
        feed(h, NULL, 0);
    else if (nread < 0)
        finish(h, (int)nread);
}

static void on_write(uv_write_t *req, int status)
{
    struct harness_http *h = req->data;

    if (status < 0 && !h->done)
        finish(h, status);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct harness_http *h = req->data;
    uv_buf_t b = uv_buf_init(h->request, (unsigned)h->request_len);
    int rc;

    if (h->done) /* cancelled or timed out: the close completes this request */
        return;
    if (status < 0) {
        finish(h, status);
        return;
    }
    h->write_req.data = h;
    if ((rc = uv_write(&h->write_req, (uv_stream_t *)&h->tcp, &b, 1, on_write)) < 0 ||
        (rc = uv_read_start((uv_stream_t *)&h->tcp, on_alloc, on_read)) < 0)
        finish(h, rc);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, UV_ETIMEDOUT);
}

static char *build_request(const char *host, int port, bool v6, const char *method,
                           const char *target, const char *body, size_t *len)
{
    size_t blen = body != NULL ? strlen(body) : 0,
           cap = strlen(method) + strlen(target) + strlen(host) + blen + 256;
    char *r = malloc(cap);
    int n;

    if (r == NULL)
        return NULL;
    n = snprintf(r, cap,
                 "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: harness\r\n"
                 "Accept: application/json\r\nConnection: close\r\n",
                 method, target, v6 ? "[" : "", host, v6 ? "]" : "", port);
    if (n > 0 && body != NULL && (size_t)n < cap)
        n += snprintf(r + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    if (n > 0 && (size_t)n < cap)
        n += snprintf(r + n, cap - (size_t)n, "\r\n");
    if (n < 0 || (size_t)n + blen >= cap) {
        free(r);
        return NULL;
    }
    if (blen > 0)
        memcpy(r + n, body, blen);
    *len = (size_t)n + blen;
    return r;
}

int harness_http_request(uv_loop_t *loop, const char *host, int port, const char *method,
                         const char *target, const char *body, uint64_t timeout_ms,
                         harness_http_cb cb, void *data, struct harness_http **out)
{
    struct sockaddr_storage addr;
    struct harness_http *h;
    bool v6 = false;
    int rc;

    if (loop == NULL || host == NULL || method == NULL || target == NULL || cb == NULL ||
        port < 1 || port > 65535)
        return UV_EINVAL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0)
            return UV_EINVAL;
        v6 = true;
    }
    if ((h = calloc(1, sizeof *h)) == NULL)
        return UV_ENOMEM;
    if ((h->request = build_request(host, port, v6, method, target, body, &h->request_len)) ==
        NULL) {
        free(h);
        return UV_ENOMEM;
    }
    h->cb = cb;
    h->data = data;
    http_parser_init(&h->parser, HTTP_RESPONSE);
    h->parser.data = h;
    if ((rc = uv_tcp_init(loop, &h->tcp)) < 0) {
        free(h->request);
        free(h);
        return rc;
    }
    h->tcp.data = h;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open = 2;
    h->connect_req.data = h;
    rc = uv_tcp_connect(&h->connect_req, &h->tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc == 0)
        rc = uv_timer_start(&h->timer, on_timeout, timeout_ms, 0);
    if (rc < 0) {
        h->done = true; /* no callback: the handles close and free h */
        uv_close((uv_handle_t *)&h->tcp, on_closed);
        uv_close((uv_handle_t *)&h->timer, on_closed);
        return rc;
    }
    if (out != NULL)
        *out = h;
    return 0;
}

void harness_http_cancel(struct harness_http *h)
{
    if (h != NULL)
        finish(h, UV_ECANCELED);
}
