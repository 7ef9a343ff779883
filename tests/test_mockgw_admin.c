/* Loop tests of the admin HTTP listener over real loopback sockets. The clients are libuv TCP
 * handles on the fixture's loop; responses are parsed here by hand, independently of the
 * listener's parser. */
#include "admin.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <uv.h>

#include <cjson/cJSON.h>

#define RX_CAP        (64u << 10)
#define MAX_CLIENTS   70
#define MAX_SEEN      8
#define WATCHDOG_MS   15000
#define BIG_RESP_SIZE (16u << 20)

struct fixture;

struct client {
    struct fixture *f;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    uv_timer_t drip;
    bool connected;
    int connect_status;
    bool no_read; /* do not start reading on connect */
    bool eof;     /* EOF or a read error seen */
    int read_status;
    int write_errors;
    const char *drip_data;
    size_t drip_len;
    size_t drip_off;
    size_t rx_len;
    char rx[RX_CAP];
};

struct seen_request {
    char method[16];
    char path[256];
    char query[256];
    char content_type[128];
    char *body;
    size_t body_len;
};

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool watchdog_fired;
    struct mgw_admin *admin;
    bool admin_closed;
    int admin_close_calls;
    int port;
    int handler_calls;
    struct seen_request seen[MAX_SEEN];
    struct client clients[MAX_CLIENTS];
};

struct response {
    int status;
    long content_length; /* -1: none */
    char content_type[64];
    char connection[32];
    const char *body;
    size_t body_len;
    size_t total; /* bytes of the whole response */
};

/* ---- handler ----------------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);

    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    int n = snprintf(dst, cap, "%s", src);

    assert_true(n >= 0 && (size_t)n < cap);
}

static void on_admin_closed(void *data)
{
    struct fixture *f = data;

    f->admin_close_calls++;
    f->admin_closed = true;
}

static void test_handler(void *ctx, const struct mgw_http_request *req,
                         struct mgw_http_response *resp)
{
    struct fixture *f = ctx;
    char buf[512];
    int n;

    if (f->handler_calls < MAX_SEEN) {
        struct seen_request *s = &f->seen[f->handler_calls];

        copy_str(s->method, sizeof s->method, req->method);
        copy_str(s->path, sizeof s->path, req->path);
        copy_str(s->query, sizeof s->query, req->query);
        copy_str(s->content_type, sizeof s->content_type, req->content_type);
        assert_int_equal(req->body[req->body_len], '\0');
        s->body = malloc(req->body_len + 1);
        assert_non_null(s->body);
        memcpy(s->body, req->body, req->body_len + 1);
        s->body_len = req->body_len;
    }
    f->handler_calls++;

    if (strcmp(req->path, "/v1/status") == 0) {
        resp->body = xstrdup("{\"ok\":true}");
    } else if (strcmp(req->path, "/nobody") == 0) {
        resp->body = NULL;
    } else if (strcmp(req->path, "/nocontent") == 0) {
        resp->status = 204;
    } else if (strcmp(req->path, "/text") == 0) {
        resp->content_type = "text/plain";
        resp->body = xstrdup("hello\n");
    } else if (strcmp(req->path, "/bad-status") == 0) {
        resp->status = 42;
        resp->body = xstrdup("{}");
    } else if (strcmp(req->path, "/shutdown") == 0) {
        mgw_admin_close(f->admin, on_admin_closed, f);
        resp->body = xstrdup("{}");
    } else if (strcmp(req->path, "/big") == 0) {
        resp->body = malloc(BIG_RESP_SIZE + 1);
        assert_non_null(resp->body);
        memset(resp->body, 'x', BIG_RESP_SIZE);
        resp->body[BIG_RESP_SIZE] = '\0';
    } else if (strcmp(req->path, "/missing") == 0) {
        resp->status = 404;
        resp->body = mgw_admin_error_body("no such endpoint");
    } else {
        n = snprintf(buf, sizeof buf, "{\"path\":\"%s\",\"n\":%d}", req->path, f->handler_calls);
        assert_true(n > 0 && (size_t)n < sizeof buf);
        resp->body = xstrdup(buf);
    }
}

/* ---- fixture ----------------------------------------------------------------------------- */

static void on_watchdog(uv_timer_t *t)
{
    struct fixture *f = t->data;

    f->watchdog_fired = true;
    uv_stop(&f->loop);
}

/* Runs the loop until pred holds; false if the watchdog fired or the loop ran dry first. */
static bool run_until(struct fixture *f, bool (*pred)(const void *arg), const void *arg)
{
    while (!pred(arg)) {
        if (f->watchdog_fired)
            return false;
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && !pred(arg))
            return false;
    }
    return true;
}

static bool is_admin_closed(const void *arg)
{
    const struct fixture *f = arg;

    return f->admin_closed;
}

static int setup_loop_only(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->watchdog), 0);
    f->watchdog.data = f;
    assert_int_equal(uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0), 0);
    uv_unref((uv_handle_t *)&f->watchdog);
    f->port = -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    struct fixture *f;
    struct mgw_err err = { { 0 } };

    setup_loop_only(state);
    f = *state;
    f->admin = mgw_admin_new(&f->loop, test_handler, f);
    assert_non_null(f->admin);
    assert_int_equal(mgw_admin_listen(f->admin, "127.0.0.1", 0, &err), 0);
    f->port = mgw_admin_port(f->admin);
    return 0;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int i;

    if (f->admin != NULL && !f->admin_closed) {
        if (f->admin_close_calls == 0)
            mgw_admin_close(f->admin, on_admin_closed, f);
        assert_true(run_until(f, is_admin_closed, f));
    }
    assert_true(f->admin == NULL || f->admin_close_calls == 1);
    assert_false(f->watchdog_fired);
    uv_walk(&f->loop, close_walk_cb, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (i = 0; i < MAX_SEEN; i++)
        free(f->seen[i].body);
    free(f);
    return 0;
}

/* ---- clients ----------------------------------------------------------------------------- */

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->rx + c->rx_len, (unsigned)(sizeof c->rx - c->rx_len));
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = s->data;

    (void)buf;
    if (nread > 0) {
        c->rx_len += (size_t)nread;
    } else if (nread < 0) {
        c->eof = true;
        c->read_status = (int)nread;
        uv_read_stop(s);
    }
}

static void on_client_connect(uv_connect_t *req, int status)
{
    struct client *c = req->data;

    c->connected = true;
    c->connect_status = status;
    if (status == 0 && !c->no_read)
        assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read), 0);
}

static bool is_connected(const void *arg)
{
    const struct client *c = arg;

    return c->connected;
}

static void client_start_connect(struct fixture *f, struct client *c, const char *host, int port)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;

    memset(&addr, 0, sizeof addr);
    if (strchr(host, ':') != NULL)
        assert_int_equal(uv_ip6_addr(host, port, &addr.in6), 0);
    else
        assert_int_equal(uv_ip4_addr(host, port, &addr.in4), 0);
    c->f = f;
    assert_int_equal(uv_tcp_init(&f->loop, &c->tcp), 0);
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1); /* no Nagle delay between the parts of a split request */
    c->connect_req.data = c;
    assert_int_equal(uv_tcp_connect(&c->connect_req, &c->tcp, &addr.sa, on_client_connect), 0);
}

static struct client *client_connect(struct fixture *f, int i)
{
    struct client *c = &f->clients[i];

    client_start_connect(f, c, "127.0.0.1", f->port);
    assert_true(run_until(f, is_connected, c));
    assert_int_equal(c->connect_status, 0);
    return c;
}

static void on_client_write(uv_write_t *req, int status)
{
    struct client *c = req->handle->data;

    if (status < 0)
        c->write_errors++;
    free(req);
}

static void client_send(struct client *c, const char *data, size_t len)
{
    uv_write_t *req = malloc(sizeof *req + len);
    char *copy;
    uv_buf_t buf;

    assert_non_null(req);
    copy = (char *)(req + 1);
    memcpy(copy, data, len);
    buf = uv_buf_init(copy, (unsigned)len);
    assert_int_equal(uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, on_client_write), 0);
}

static void client_send_str(struct client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

static void on_drip(uv_timer_t *t)
{
    struct client *c = t->data;

    if (c->drip_off >= c->drip_len) {
        uv_timer_stop(t);
        return;
    }
    client_send(c, c->drip_data + c->drip_off, 1);
    c->drip_off++;
}

/* Sends data one byte per millisecond, so the listener sees each byte in its own read. */
static void client_drip(struct client *c, const char *data)
{
    c->drip_data = data;
    c->drip_len = strlen(data);
    c->drip_off = 0;
    assert_int_equal(uv_timer_init(&c->f->loop, &c->drip), 0);
    c->drip.data = c;
    assert_int_equal(uv_timer_start(&c->drip, on_drip, 1, 1), 0);
}

static void client_shutdown(struct client *c)
{
    assert_int_equal(uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, NULL), 0);
}

/* ---- response parsing -------------------------------------------------------------------- */

static bool header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    size_t vlen;

    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    line += n + 1;
    len -= n + 1;
    while (len > 0 && *line == ' ') {
        line++;
        len--;
    }
    vlen = len < cap - 1 ? len : cap - 1;
    memcpy(out, line, vlen);
    out[vlen] = '\0';
    return true;
}

/* Parses one response at buf; false when it is not complete yet. */
static bool parse_response(const char *buf, size_t len, bool is_head, struct response *r)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    const char *line;
    char num[32];
    size_t head_len;
    char *stop;

    memset(r, 0, sizeof *r);
    r->content_length = -1;
    if (end == NULL)
        return false;
    head_len = (size_t)(end - buf) + 4;
    assert_true(len >= 12 && memcmp(buf, "HTTP/1.1 ", 9) == 0);
    memcpy(num, buf + 9, 3);
    num[3] = '\0';
    r->status = (int)strtol(num, &stop, 10);
    assert_true(*stop == '\0');
    line = (const char *)memchr(buf, '\n', head_len) + 1;
    while (line < end) {
        const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        size_t llen = (size_t)(eol - line);

        if (header_value(line, llen, "Content-Length", num, sizeof num)) {
            r->content_length = strtol(num, &stop, 10);
            assert_true(*stop == '\0');
        }
        header_value(line, llen, "Content-Type", r->content_type, sizeof r->content_type);
        header_value(line, llen, "Connection", r->connection, sizeof r->connection);
        line = eol + 2;
    }
    r->body = buf + head_len;
    if (!is_head && r->content_length > 0)
        r->body_len = (size_t)r->content_length;
    if (len - head_len < r->body_len)
        return false;
    r->total = head_len + r->body_len;
    return true;
}

/* Parses up to max responses from the client's bytes (all of them when out is NULL); returns
 * how many are complete. Bit i of head_mask: response i answers a HEAD request. */
static int responses_masked(const struct client *c, struct response *out, int max,
                            unsigned head_mask)
{
    size_t off = 0;
    int n = 0;
    struct response scratch;

    while (out == NULL || n < max) {
        struct response *r = out != NULL ? &out[n] : &scratch;
        bool is_head = n < 32 && (head_mask & (1u << n)) != 0;

        if (off >= c->rx_len || !parse_response(c->rx + off, c->rx_len - off, is_head, r))
            break;
        off += r->total;
        n++;
    }
    return n;
}

static int responses(const struct client *c, struct response *out, int max)
{
    return responses_masked(c, out, max, 0);
}

struct want {
    const struct client *c;
    int n;
    unsigned head_mask;
};

static bool has_responses(const void *arg)
{
    const struct want *w = arg;

    return responses_masked(w->c, NULL, 0, w->head_mask) >= w->n;
}

static bool has_eof(const void *arg)
{
    const struct client *c = arg;

    return c->eof;
}

static void wait_responses(struct fixture *f, const struct client *c, int n)
{
    struct want w = { c, n, 0 };

    assert_true(run_until(f, has_responses, &w));
}

static void assert_body(const struct response *r, const char *body)
{
    assert_int_equal(r->body_len, strlen(body));
    assert_memory_equal(r->body, body, r->body_len);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void admin_get_status_routed_to_handler(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "GET /v1/status?since=10 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
    assert_string_equal(r[0].content_type, "application/json");
    assert_string_equal(r[0].connection, "keep-alive");
    assert_body(&r[0], "{\"ok\":true}\n");
    assert_int_equal(f->handler_calls, 1);
    assert_string_equal(f->seen[0].method, "GET");
    assert_string_equal(f->seen[0].path, "/v1/status");
    assert_string_equal(f->seen[0].query, "since=10");
    assert_string_equal(f->seen[0].content_type, "");
    assert_int_equal(f->seen[0].body_len, 0);
    assert_false(c->eof);
}

static void admin_post_json_body_reaches_handler(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "POST /v1/rules HTTP/1.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 14\r\n\r\n{\"a\":\"q\\\"x\\n\"}");
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
    assert_string_equal(f->seen[0].method, "POST");
    assert_string_equal(f->seen[0].path, "/v1/rules");
    assert_string_equal(f->seen[0].query, "");
    assert_string_equal(f->seen[0].content_type, "application/json");
    assert_int_equal(f->seen[0].body_len, 14);
    assert_string_equal(f->seen[0].body, "{\"a\":\"q\\\"x\\n\"}");
}

static void admin_chunked_body_reassembled(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);

    client_send_str(c, "PUT /v1/rules/3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n");
    wait_responses(f, c, 1);
    assert_string_equal(f->seen[0].method, "PUT");
    assert_string_equal(f->seen[0].body, "{\"a\":1}");
    assert_int_equal(f->seen[0].body_len, 7);
}

static void admin_keep_alive_two_sequential_requests(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[2];

    client_send_str(c, "GET /first HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 1);
    client_send_str(c, "GET /second?x=1 HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 2);
    assert_int_equal(responses(c, r, 2), 2);
    assert_body(&r[0], "{\"path\":\"/first\",\"n\":1}\n");
    assert_body(&r[1], "{\"path\":\"/second\",\"n\":2}\n");
    assert_string_equal(r[1].connection, "keep-alive");
    assert_string_equal(f->seen[1].query, "x=1");
    assert_int_equal(mgw_admin_conn_count(f->admin), 1);
    assert_false(c->eof);
}

static void admin_pipelined_requests_answered_in_order(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[3];

    client_send_str(c, "GET /a HTTP/1.1\r\n\r\n"
                       "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /c HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 3);
    assert_int_equal(responses(c, r, 3), 3);
    assert_body(&r[0], "{\"path\":\"/a\",\"n\":1}\n");
    assert_body(&r[1], "{\"path\":\"/b\",\"n\":2}\n");
    assert_body(&r[2], "{\"path\":\"/c\",\"n\":3}\n");
    assert_string_equal(f->seen[1].body, "abc");
    assert_int_equal(f->handler_calls, 3);
}

static void admin_request_split_into_single_bytes(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_drip(c, "POST /v1/x?k=v HTTP/1.1\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 5\r\n\r\nhello");
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
    assert_string_equal(f->seen[0].path, "/v1/x");
    assert_string_equal(f->seen[0].query, "k=v");
    assert_string_equal(f->seen[0].content_type, "text/plain");
    assert_string_equal(f->seen[0].body, "hello");
}

struct split_step {
    struct client *c;
    const char *tail;
    size_t tail_len;
};

static void on_split_timer(uv_timer_t *t)
{
    struct split_step *s = t->data;

    client_send(s->c, s->tail, s->tail_len);
    uv_close((uv_handle_t *)t, NULL);
}

static void admin_request_every_split_point_parsed(void **state)
{
    static const char req[] = "POST /s?q=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    size_t len = sizeof req - 1;
    size_t i;

    for (i = 1; i < len; i++) {
        uv_timer_t t;
        struct split_step s = { c, req + i, len - i };

        /* The second part goes out on a later loop turn, after the listener read the first. */
        client_send(c, req, i);
        assert_int_equal(uv_timer_init(&f->loop, &t), 0);
        t.data = &s;
        assert_int_equal(uv_timer_start(&t, on_split_timer, 1, 0), 0);
        wait_responses(f, c, (int)i);
        uv_run(&f->loop, UV_RUN_NOWAIT); /* runs the timer's close callback */
        assert_int_equal(f->handler_calls, (int)i);
        if (i <= MAX_SEEN) {
            assert_string_equal(f->seen[i - 1].path, "/s");
            assert_string_equal(f->seen[i - 1].query, "q=1");
            assert_string_equal(f->seen[i - 1].body, "ok");
        }
    }
    assert_false(c->eof);
}

static void admin_malformed_request_400_closes_only_that_client(void **state)
{
    struct fixture *f = *state;
    struct client *bad = client_connect(f, 0);
    struct client *good = client_connect(f, 1);
    struct response r[1];

    client_send_str(bad, "GARBAGE / HTTP/1.1\r\n\r\n");
    assert_true(run_until(f, has_eof, bad));
    assert_int_equal(responses(bad, r, 1), 1);
    assert_int_equal(r[0].status, 400);
    assert_string_equal(r[0].connection, "close");
    assert_body(&r[0], "{\"error\":\"malformed HTTP request: invalid HTTP method\"}\n");
    assert_int_equal(r[0].total, bad->rx_len);

    client_send_str(good, "GET /v1/status HTTP/1.1\r\n\r\n");
    wait_responses(f, good, 1);
    assert_int_equal(responses(good, r, 1), 1);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(f->handler_calls, 1);
    assert_false(good->eof);
}

static void admin_bad_version_400(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "GET / HTTP/9.x\r\n\r\n");
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 400);
    assert_non_null(memmem(r[0].body, r[0].body_len, "malformed HTTP request: ", 24));
    assert_int_equal(f->handler_calls, 0);
}

static void admin_content_length_over_cap_413_before_body(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    /* Headers only: the answer must come without the body ever being sent. */
    client_send_str(c, "POST /v1/rules HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 413);
    assert_string_equal(r[0].connection, "close");
    assert_body(&r[0], "{\"error\":\"request body too large (limit 1048576 bytes)\"}\n");
    assert_int_equal(f->handler_calls, 0);
}

static void admin_body_at_cap_accepted(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    const char *head = "POST /big-body HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n";
    char *body = malloc(MGW_ADMIN_MAX_BODY);
    struct response r[1];

    assert_non_null(body);
    memset(body, 'b', MGW_ADMIN_MAX_BODY);
    client_send_str(c, head);
    client_send(c, body, MGW_ADMIN_MAX_BODY);
    free(body);
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(f->seen[0].body_len, MGW_ADMIN_MAX_BODY);
    assert_int_equal(f->seen[0].body[MGW_ADMIN_MAX_BODY - 1], 'b');
}

static void admin_chunked_body_over_cap_413(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    size_t chunk = 64u << 10;
    size_t i;
    char size_line[32];
    char *data = malloc(chunk);
    struct response r[1];

    assert_non_null(data);
    memset(data, 'c', chunk);
    snprintf(size_line, sizeof size_line, "%zx\r\n", chunk);
    client_send_str(c, "POST /v1/rules HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (i = 0; i < MGW_ADMIN_MAX_BODY / chunk + 1; i++) {
        client_send_str(c, size_line);
        client_send(c, data, chunk);
        client_send_str(c, "\r\n");
    }
    free(data);
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 413);
    assert_int_equal(f->handler_calls, 0);
}

static char *request_with_header_size(size_t head_size)
{
    const char *pre = "GET /h HTTP/1.1\r\nX-Pad: ";
    size_t pre_len = strlen(pre);
    char *req = malloc(head_size + 1);

    assert_non_null(req);
    assert_true(head_size > pre_len + 4);
    memcpy(req, pre, pre_len);
    memset(req + pre_len, 'p', head_size - pre_len - 4);
    memcpy(req + head_size - 4, "\r\n\r\n", 5);
    return req;
}

static void admin_oversized_headers_431(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    char *req = request_with_header_size(MGW_ADMIN_MAX_HEADER + 1);
    struct response r[1];

    client_send_str(c, req);
    free(req);
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 431);
    assert_body(&r[0], "{\"error\":\"request header section too large (limit 16384 bytes)\"}\n");
    assert_int_equal(f->handler_calls, 0);
}

static void admin_headers_at_cap_accepted(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    char *req = request_with_header_size(MGW_ADMIN_MAX_HEADER);
    struct response r[1];

    client_send_str(c, req);
    free(req);
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
}

static void admin_huge_header_block_431(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    char *req = request_with_header_size(200u << 10); /* beyond http-parser's own 80 KiB */
    struct response r[1];

    client_send_str(c, req);
    free(req);
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 431);
}

static void admin_long_target_414(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    size_t n = MGW_ADMIN_MAX_HEADER + 10;
    char *req = malloc(n + 32);
    struct response r[1];

    assert_non_null(req);
    memcpy(req, "GET /", 5);
    memset(req + 5, 'u', n);
    memcpy(req + 5 + n, " HTTP/1.1\r\n\r\n", 14);
    client_send_str(c, req);
    free(req);
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 414);
}

static void admin_long_content_type_431(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    char req[1024];
    char ct[300];
    struct response r[1];

    memset(ct, 't', sizeof ct - 1);
    ct[sizeof ct - 1] = '\0';
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nContent-Type: %s\r\n\r\n", ct);
    client_send_str(c, req);
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 431);
}

static void admin_connection_close_honoured(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "GET /v1/status HTTP/1.1\r\nConnection: close\r\n\r\n"
                       "GET /never HTTP/1.1\r\n\r\n");
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
    assert_string_equal(r[0].connection, "close");
    assert_int_equal(r[0].total, c->rx_len);
    assert_int_equal(f->handler_calls, 1);
}

static void admin_upgrade_request_answered_then_closed(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "GET /v1/status HTTP/1.1\r\nConnection: Upgrade\r\n"
                       "Upgrade: websocket\r\n\r\n\x81\x05hello");
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
    assert_string_equal(r[0].connection, "close");
    assert_int_equal(f->handler_calls, 1);
}

static void admin_http10_closes_unless_keep_alive(void **state)
{
    struct fixture *f = *state;
    struct client *ka = client_connect(f, 0);
    struct client *plain = client_connect(f, 1);
    struct response r[1];

    client_send_str(ka, "GET /v1/status HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    client_send_str(plain, "GET /v1/status HTTP/1.0\r\n\r\n");
    assert_true(run_until(f, has_eof, plain));
    assert_int_equal(responses(plain, r, 1), 1);
    assert_string_equal(r[0].connection, "close");
    wait_responses(f, ka, 1);
    assert_int_equal(responses(ka, r, 1), 1);
    assert_string_equal(r[0].connection, "keep-alive");
    assert_false(ka->eof);
}

static void admin_half_closed_client_still_answered(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "GET /v1/status HTTP/1.1\r\n\r\n");
    client_shutdown(c);
    assert_true(run_until(f, has_eof, c));
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 200);
}

static bool no_admin_conns(const void *arg)
{
    const struct fixture *f = arg;

    return mgw_admin_conn_count(f->admin) == 0;
}

static void admin_eof_mid_request_closes_quietly(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);

    client_send_str(c, "GET /v1/sta");
    client_shutdown(c);
    assert_true(run_until(f, has_eof, c));
    assert_true(run_until(f, no_admin_conns, f));
    assert_int_equal(c->rx_len, 0);
    assert_int_equal(f->handler_calls, 0);
}

static void admin_null_body_sends_empty_object(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[2];

    client_send_str(c, "GET /nobody HTTP/1.1\r\n\r\nGET /text HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 2);
    assert_int_equal(responses(c, r, 2), 2);
    assert_body(&r[0], "{}\n");
    assert_string_equal(r[1].content_type, "text/plain");
    assert_body(&r[1], "hello\n"); /* already ends in a newline: none added */
}

static void admin_no_content_and_head_have_no_body(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct want w = { c, 3, 1u << 1 };
    struct response r[3];

    client_send_str(c, "DELETE /nocontent HTTP/1.1\r\n\r\n"
                       "HEAD /v1/status HTTP/1.1\r\n\r\n"
                       "GET /v1/status HTTP/1.1\r\n\r\n");
    assert_true(run_until(f, has_responses, &w));
    assert_int_equal(responses_masked(c, r, 3, w.head_mask), 3);
    assert_int_equal(r[0].status, 204);
    assert_int_equal(r[0].content_length, -1);
    assert_int_equal(r[0].body_len, 0);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(r[1].content_length, 12); /* what GET sends */
    assert_int_equal(r[1].body_len, 0);
    assert_body(&r[2], "{\"ok\":true}\n");
    assert_int_equal(r[0].total + r[1].total + r[2].total, c->rx_len);
    assert_string_equal(f->seen[1].method, "HEAD");
}

static void admin_invalid_handler_status_500(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "GET /bad-status HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 500);
}

static void admin_not_found_from_handler(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[1];

    client_send_str(c, "GET /missing HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 404);
    assert_body(&r[0], "{\"error\":\"no such endpoint\"}\n");
    assert_string_equal(r[0].connection, "keep-alive");
}

static void admin_expect_continue_gets_100(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct response r[2];

    client_send_str(c, "POST /v1/rules HTTP/1.1\r\nExpect: 100-continue\r\n"
                       "Content-Length: 2\r\n\r\n");
    wait_responses(f, c, 1);
    assert_int_equal(responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 100);
    assert_int_equal(f->handler_calls, 0);
    client_send_str(c, "{}");
    wait_responses(f, c, 2);
    assert_int_equal(responses(c, r, 2), 2);
    assert_int_equal(r[1].status, 200);
    assert_string_equal(f->seen[0].body, "{}");
}

static void admin_absolute_target_split(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);

    client_send_str(c, "GET http://127.0.0.1/v1/journal?since=5#frag HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 1);
    assert_string_equal(f->seen[0].path, "/v1/journal");
    assert_string_equal(f->seen[0].query, "since=5");
}

static void count_close(void *data)
{
    int *calls = data;

    (*calls)++;
}

static bool int_is_one(const void *arg)
{
    const int *v = arg;

    return *v == 1;
}

static void admin_port_zero_gives_real_port(void **state)
{
    struct fixture *f = *state;
    struct mgw_admin *fresh = mgw_admin_new(&f->loop, test_handler, f);
    int closed = 0;

    assert_true(f->port > 0 && f->port <= 65535);
    assert_int_equal(mgw_admin_port(f->admin), f->port);
    assert_non_null(fresh);
    assert_int_equal(mgw_admin_port(fresh), -1);
    mgw_admin_close(fresh, count_close, &closed);
    assert_true(run_until(f, int_is_one, &closed));
    client_connect(f, 0); /* the reported port accepts */
}

static void admin_bind_conflict_reports_address_in_use(void **state)
{
    struct fixture *f = *state;
    struct mgw_admin *second = mgw_admin_new(&f->loop, test_handler, f);
    struct mgw_err err = { { 0 } };
    char expect[64];
    int closed = 0;
    int rc;

    assert_non_null(second);
    rc = mgw_admin_listen(second, "127.0.0.1", f->port, &err);
    assert_int_equal(rc, UV_EADDRINUSE);
    snprintf(expect, sizeof expect, "admin 127.0.0.1:%d: ", f->port);
    assert_non_null(strstr(err.msg, expect));
    assert_non_null(strstr(err.msg, "address already in use"));
    assert_int_equal(mgw_admin_port(second), -1);
    mgw_admin_close(second, count_close, &closed);
    assert_int_equal(closed, 0);
    assert_true(run_until(f, int_is_one, &closed));
}

static void admin_listen_rejects_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct mgw_admin *a = mgw_admin_new(&f->loop, test_handler, f);
    struct mgw_err err = { { 0 } };
    int closed = 0;

    assert_non_null(a);
    assert_int_equal(mgw_admin_listen(a, "localhost", 0, &err), UV_EINVAL);
    assert_non_null(strstr(err.msg, "admin localhost:0: "));
    assert_non_null(strstr(err.msg, "\"localhost\" is not a numeric IPv4 or IPv6 address"));
    assert_int_equal(mgw_admin_listen(a, "127.0.0.1", 70000, &err), UV_EINVAL);
    assert_non_null(strstr(err.msg, "port out of range"));
    assert_int_equal(mgw_admin_listen(a, "127.0.0.1", 0, NULL), 0);
    assert_int_equal(mgw_admin_listen(a, "127.0.0.1", 0, &err), UV_EINVAL);
    assert_non_null(strstr(err.msg, "already"));
    assert_null(mgw_admin_new(NULL, test_handler, f));
    assert_null(mgw_admin_new(&f->loop, NULL, f));
    mgw_admin_close(a, count_close, &closed);
    assert_true(run_until(f, int_is_one, &closed));
}

static void admin_listen_ipv6_loopback(void **state)
{
    struct fixture *f = *state;
    struct mgw_admin *a = mgw_admin_new(&f->loop, test_handler, f);
    struct mgw_err err = { { 0 } };
    struct client *c = &f->clients[0];
    int closed = 0;
    int rc;

    assert_non_null(a);
    rc = mgw_admin_listen(a, "::1", 0, &err);
    if (rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT) {
        mgw_admin_close(a, count_close, &closed);
        assert_true(run_until(f, int_is_one, &closed));
        skip(); /* no IPv6 loopback on this host */
    }
    assert_int_equal(rc, 0);
    assert_true(mgw_admin_port(a) > 0);
    client_start_connect(f, c, "::1", mgw_admin_port(a));
    assert_true(run_until(f, is_connected, c));
    assert_int_equal(c->connect_status, 0);
    client_send_str(c, "GET /v1/status HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 1);
    mgw_admin_close(a, count_close, &closed);
    assert_true(run_until(f, int_is_one, &closed));
    assert_true(run_until(f, has_eof, c));
}

static void admin_close_with_idle_client_fires_cb_once(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    int i;

    client_send_str(c, "GET /v1/status HTTP/1.1\r\n\r\n");
    wait_responses(f, c, 1);
    mgw_admin_close(f->admin, on_admin_closed, f);
    assert_int_equal(f->admin_close_calls, 0); /* never before close returns */
    assert_true(run_until(f, is_admin_closed, f));
    assert_true(run_until(f, has_eof, c));
    for (i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->admin_close_calls, 1);
}

static void admin_close_before_listen_fires_cb_once(void **state)
{
    struct fixture *f = *state;
    struct mgw_admin *a = mgw_admin_new(&f->loop, test_handler, f);
    int closed = 0;
    int i;

    assert_non_null(a);
    mgw_admin_close(a, count_close, &closed);
    mgw_admin_close(a, count_close, &closed); /* ignored */
    assert_int_equal(closed, 0);
    assert_true(run_until(f, int_is_one, &closed));
    for (i = 0; i < 3; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(closed, 1);
}

static void admin_close_from_handler_mid_flight(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_connect(f, 0);
    struct client *partial = client_connect(f, 1);

    client_send_str(partial, "POST /v1/rules HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a\"");
    client_send_str(c, "GET /shutdown HTTP/1.1\r\n\r\nGET /v1/status HTTP/1.1\r\n\r\n");
    assert_true(run_until(f, is_admin_closed, f));
    assert_int_equal(f->admin_close_calls, 1);
    assert_int_equal(f->handler_calls, 1);
    assert_true(run_until(f, has_eof, c));
    assert_true(run_until(f, has_eof, partial));
}

static bool handler_called(const void *arg)
{
    const struct fixture *f = arg;

    return f->handler_calls > 0;
}

static void admin_close_with_write_in_flight(void **state)
{
    struct fixture *f = *state;
    struct client *c = &f->clients[0];
    int i;

    c->no_read = true; /* the 16 MiB response cannot drain */
    client_start_connect(f, c, "127.0.0.1", f->port);
    assert_true(run_until(f, is_connected, c));
    client_send_str(c, "GET /big HTTP/1.1\r\n\r\n");
    assert_true(run_until(f, handler_called, f));
    for (i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    mgw_admin_close(f->admin, on_admin_closed, f);
    assert_true(run_until(f, is_admin_closed, f));
    assert_int_equal(f->admin_close_calls, 1);
}

static void admin_idle_connection_closed(void **state)
{
    struct fixture *f = *state;
    struct client *c;
    uint64_t start;

    mgw_admin_set_idle_timeout(f->admin, 50);
    start = uv_now(&f->loop);
    c = client_connect(f, 0);
    assert_true(run_until(f, has_eof, c));
    assert_true(uv_now(&f->loop) - start >= 40);
    assert_int_equal(c->rx_len, 0);
    assert_true(run_until(f, no_admin_conns, f));
}

struct count_want {
    const struct fixture *f;
    size_t conns;
    int eofs;
};

static int count_eofs(const struct fixture *f)
{
    int i;
    int n = 0;

    for (i = 0; i < MAX_CLIENTS; i++)
        n += f->clients[i].eof ? 1 : 0;
    return n;
}

static bool conns_and_eofs(const void *arg)
{
    const struct count_want *w = arg;

    return mgw_admin_conn_count(w->f->admin) == w->conns && count_eofs(w->f) == w->eofs;
}

static void admin_connection_limit_closes_65th(void **state)
{
    struct fixture *f = *state;
    struct count_want w = { f, 64, 1 };
    struct client *late;
    int i;
    int ok = 0;
    int rejected = -1;

    for (i = 0; i < 65; i++)
        client_connect(f, i);
    assert_true(run_until(f, conns_and_eofs, &w));
    for (i = 0; i < 65; i++) {
        if (f->clients[i].eof) {
            rejected = i;
            assert_int_equal(f->clients[i].rx_len, 0);
            continue;
        }
        client_send_str(&f->clients[i], "GET /v1/status HTTP/1.1\r\n\r\n");
    }
    for (i = 0; i < 65; i++) {
        if (i == rejected)
            continue;
        wait_responses(f, &f->clients[i], 1);
        ok++;
    }
    assert_int_equal(ok, 64);

    /* A freed slot is usable again. */
    uv_close((uv_handle_t *)&f->clients[rejected == 0 ? 1 : 0].tcp, NULL);
    w.conns = 63;
    assert_true(run_until(f, conns_and_eofs, &w));
    late = client_connect(f, 65);
    client_send_str(late, "GET /v1/status HTTP/1.1\r\n\r\n");
    wait_responses(f, late, 1);
    assert_false(late->eof);
}

static void admin_error_body_escapes(void **state)
{
    char *body = mgw_admin_error_body("bad \"rule\"\n\\ here");
    char *empty = mgw_admin_error_body(NULL);
    cJSON *parsed;

    (void)state;
    assert_non_null(body);
    assert_string_equal(body, "{\"error\":\"bad \\\"rule\\\"\\n\\\\ here\"}");
    parsed = cJSON_Parse(body);
    assert_non_null(parsed);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(parsed, "error")->valuestring,
                        "bad \"rule\"\n\\ here");
    cJSON_Delete(parsed);
    assert_string_equal(empty, "{\"error\":\"\"}");
    free(body);
    free(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(admin_get_status_routed_to_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_post_json_body_reaches_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_chunked_body_reassembled, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_keep_alive_two_sequential_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_pipelined_requests_answered_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(admin_request_split_into_single_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_request_every_split_point_parsed, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_malformed_request_400_closes_only_that_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(admin_bad_version_400, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_content_length_over_cap_413_before_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(admin_body_at_cap_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_chunked_body_over_cap_413, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_oversized_headers_431, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_headers_at_cap_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_huge_header_block_431, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_long_target_414, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_long_content_type_431, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_connection_close_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_upgrade_request_answered_then_closed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(admin_http10_closes_unless_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_half_closed_client_still_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_eof_mid_request_closes_quietly, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_null_body_sends_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_no_content_and_head_have_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_invalid_handler_status_500, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_not_found_from_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_expect_continue_gets_100, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_absolute_target_split, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_port_zero_gives_real_port, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_bind_conflict_reports_address_in_use, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(admin_listen_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_listen_ipv6_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_close_with_idle_client_fires_cb_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(admin_close_before_listen_fires_cb_once, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_close_from_handler_mid_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_close_with_write_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_idle_connection_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(admin_connection_limit_closes_65th, setup, teardown),
        cmocka_unit_test(admin_error_body_escapes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
