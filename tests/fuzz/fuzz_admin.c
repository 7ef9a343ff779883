/* Fuzz target: the admin API — its routes (every method, path, query and body) called
 * directly, and its HTTP/1.1 listener (http-parser callbacks, headers, bodies, limits) fed raw
 * bytes over a real loopback connection. One in-process mockgw serves every input and is reset
 * after each. Invariants: every request gets a status in 100..599 with a body; a JSON body
 * parses; the listener answers or closes every connection before a deadline (no hang).
 *
 * Input: byte 0 = mode (bit 0: 0 direct route call, 1 raw HTTP; bits 1-3: the method of a
 * direct call), then for a direct call "PATH[?QUERY]\nBODY", for HTTP the bytes sent. */
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "admin.h"
#include "fuzz.h"
#include "mockgw.h"
#include "server.h"

static uv_loop_t loop;
static struct mgw_server *srv;
static int admin_port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct mgw_config cfg;
    struct mgw_err err;

    (void)argc;
    (void)argv;
    CHECK(uv_loop_init(&loop) == 0);
    mgw_config_init(&cfg);
    cfg.listen_port = 0;
    cfg.admin_port = 0;
    srv = mgw_server_new(&loop, &cfg, &err);
    CHECK(srv != NULL);
    CHECK(mgw_server_start(srv, &err) == 0);
    admin_port = mgw_server_admin_port(srv);
    return 0;
}

static void route(const char *method, const char *path, const char *query, const char *body,
                  size_t body_len)
{
    struct mgw_http_request req = { method, path, query, body, body_len, "application/json" };
    struct mgw_http_response resp = { 0 };

    mgw__admin_route(srv, &req, &resp);
    CHECK(resp.status >= 100 && resp.status <= 599);
    CHECK(resp.body != NULL);
    if (resp.content_type == NULL) {
        cJSON *j = cJSON_Parse(resp.body);

        if (j == NULL)
            fprintf(stderr, "%s %s: not JSON: %s\n", method, path, resp.body);
        CHECK(j != NULL);
        cJSON_Delete(j);
    }
    free(resp.body);
}

/* True when the call was a GET (or was not made). */
static bool direct(const uint8_t *data, size_t size)
{
    static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD" };
    const char *method = methods[(data[0] >> 1) % 6];
    char path[512], *query, *body;
    size_t n = 0;

    while (1 + n < size && n < sizeof path - 1 && data[1 + n] != '\n')
        n++;
    memcpy(path, data + 1, n);
    path[n] = '\0';
    if (strlen(path) != n) /* a NUL inside: the listener never passes one */
        return true;
    query = strchr(path, '?');
    if (query != NULL)
        *query++ = '\0';
    size_t at = 1 + n + (1 + n < size); /* past the newline */
    size_t body_len = size - at;

    body = malloc(body_len + 1);
    CHECK(body != NULL);
    memcpy(body, data + at, body_len);
    body[body_len] = '\0';
    route(method, path, query ? query : "", body, body_len);
    free(body);
    return strcmp(method, "GET") == 0;
}

struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    uv_timer_t deadline;
    uv_buf_t out;
    char in[4096];
    bool closed, timed_out;
    int handles;
};

static void on_client_closed(uv_handle_t *h)
{
    struct client *c = h->data;

    c->handles--;
}

static void client_close(struct client *c)
{
    if (c->closed)
        return;
    c->closed = true;
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
    uv_close((uv_handle_t *)&c->deadline, on_client_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->in, sizeof c->in);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        client_close(s->data); /* EOF or reset: the listener is done with us */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void on_written(uv_write_t *req, int status)
{
    struct client *c = req->data;

    if (status == 0 && !c->closed)
        uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct client *c = req->data;

    if (status < 0 || c->closed) {
        client_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &c->out, 1, on_written) < 0)
        client_close(c);
}

static void on_deadline(uv_timer_t *t)
{
    struct client *c = t->data;

    c->timed_out = true;
    client_close(c);
}

static void http(const uint8_t *data, size_t size)
{
    struct client c = { 0 };
    struct sockaddr_in sa;
    char *copy = malloc(size); /* uv_write() wants it writable and alive until written */

    CHECK(copy != NULL);
    memcpy(copy, data + 1, size - 1);
    c.out = uv_buf_init(copy, (unsigned)(size - 1));
    uv_tcp_init(&loop, &c.tcp);
    uv_timer_init(&loop, &c.deadline);
    c.tcp.data = c.deadline.data = c.connect.data = &c;
    c.handles = 2;
    uv_timer_start(&c.deadline, on_deadline, 5000, 0);
    uv_ip4_addr("127.0.0.1", admin_port, &sa);
    if (uv_tcp_connect(&c.connect, &c.tcp, (const struct sockaddr *)&sa, on_connected) < 0)
        client_close(&c);
    while (c.handles > 0)
        uv_run(&loop, UV_RUN_ONCE);
    free(copy);
    if (c.timed_out)
        fprintf(stderr, "the admin listener neither answered nor closed within 5 s\n");
    CHECK(!c.timed_out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        http(data, size);
    else if (direct(data, size))
        return 0; /* a GET changes nothing: no reset needed */
    route("POST", "/v1/reset", "", "", 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
