/* The server on a real loop and real loopback sockets: start, serve, stop, exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "ibwire.h"
#include "mockgw.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog; /* unref'd: fires only if a test would hang */
    bool hung;
    struct mgw_config cfg;
    struct mgw_server *srv;
    int stopped_calls;
};

struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct fixture *fx;
    uint8_t in[4096];
    size_t in_len;
    bool eof;
    uint64_t eof_at_ms;
    int closed;
};

static void on_watchdog(uv_timer_t *t)
{
    struct fixture *fx = t->data;

    fx->hung = true;
    uv_stop(&fx->loop);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = fx;
    uv_timer_start(&fx->watchdog, on_watchdog, 10000, 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
    mgw_config_init(&fx->cfg);
    fx->cfg.listen_port = 0;
    fx->cfg.admin_port = 0;
    *state = fx;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    assert_false(fx->hung);
    uv_walk(&fx->loop, close_walk, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* a leaked handle fails the test */
    free(fx);
    return 0;
}

static void on_stopped(struct mgw_server *srv, void *data)
{
    struct fixture *fx = data;

    assert_ptr_equal(srv, fx->srv);
    fx->stopped_calls++;
}

static void start_server(struct fixture *fx)
{
    struct mgw_err err;

    fx->srv = mgw_server_new(&fx->loop, &fx->cfg, &err);
    assert_non_null(fx->srv);
    assert_int_equal(mgw_server_start(fx->srv, &err), 0);
    assert_true(mgw_server_api_port(fx->srv) > 0);
}

/* Stops the server, runs the loop dry, and checks the callback fired exactly once. */
static void stop_server(struct fixture *fx)
{
    assert_int_equal(mgw_server_stop(fx->srv, on_stopped, fx), 0);
    assert_int_equal(fx->stopped_calls, 0); /* never before stop() returns */
    assert_int_equal(mgw_server_stop(fx->srv, on_stopped, fx), MGW_ESTATE);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->stopped_calls, 1);
    mgw_server_free(fx->srv);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = s->data;

    (void)buf;
    if (nread > 0) {
        c->in_len += (size_t)nread;
    } else if (nread < 0) {
        c->eof = true;
        c->eof_at_ms = uv_now(s->loop);
        uv_read_stop(s);
    }
}

static void on_client_write(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void client_send(struct client *c, const void *bytes, size_t len)
{
    uv_write_t *req = malloc(sizeof *req + len);
    uv_buf_t b;

    memcpy(req + 1, bytes, len);
    b = uv_buf_init((char *)(req + 1), (unsigned)len);
    assert_int_equal(uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_client_write), 0);
}

static void on_client_connect(uv_connect_t *req, int status)
{
    struct client *c = req->data;

    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
}

static void client_connect(struct fixture *fx, struct client *c, int port)
{
    struct sockaddr_in addr;

    memset(c, 0, sizeof *c);
    c->fx = fx;
    uv_tcp_init(&fx->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    uv_ip4_addr("127.0.0.1", port, &addr);
    assert_int_equal(
        uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_client_connect), 0);
}

static void on_client_closed(uv_handle_t *h)
{
    ((struct client *)h->data)->closed++;
}

/* Runs the loop until cond holds (the watchdog bounds it). */
#define RUN_UNTIL(fx, cond)                   \
    do {                                      \
        while (!(cond) && !(fx)->hung)        \
            uv_run(&(fx)->loop, UV_RUN_ONCE); \
        assert_false((fx)->hung);             \
    } while (0)

static void server_start_stop_without_clients(void **state)
{
    struct fixture *fx = *state;

    start_server(fx);
    assert_true(mgw_server_admin_port(fx->srv) > 0);
    stop_server(fx);
}

static void server_port_in_use_is_ebind_naming_the_address(void **state)
{
    struct fixture *fx = *state;
    struct mgw_server *second;
    struct mgw_err err;

    start_server(fx);
    fx->cfg.listen_port = mgw_server_api_port(fx->srv);
    second = mgw_server_new(&fx->loop, &fx->cfg, &err);
    assert_non_null(second);
    assert_int_equal(mgw_server_start(second, &err), MGW_EBIND);
    assert_non_null(strstr(err.msg, "127.0.0.1:"));
    assert_non_null(strstr(err.msg, "address already in use"));
    assert_int_equal(mgw_server_stop(second, NULL, NULL), 0);
    stop_server(fx);
    mgw_server_free(second);
}

static void server_bad_config_is_rejected_with_flag_name(void **state)
{
    struct fixture *fx = *state;
    struct mgw_err err;

    fx->cfg.server_version = 201;
    assert_null(mgw_server_new(&fx->loop, &fx->cfg, &err));
    assert_non_null(strstr(err.msg, "--server-version 201"));
    fx->cfg.server_version = 178;
    fx->cfg.accounts = "DU1,,DU2";
    assert_null(mgw_server_new(&fx->loop, &fx->cfg, &err));
    assert_non_null(strstr(err.msg, "--accounts"));
}

static void server_answers_handshake_then_stop_closes_client(void **state)
{
    struct fixture *fx = *state;
    static const uint8_t hello[] = "API\0\0\0\0\x09v157..178";
    struct client c;

    start_server(fx);
    client_connect(fx, &c, mgw_server_api_port(fx->srv));
    client_send(&c, hello, sizeof hello - 1);
    RUN_UNTIL(fx, c.in_len >= 30);
    assert_memory_equal(c.in,
                        "\x00\x00\x00\x1a"
                        "178\0",
                        8);
    assert_int_equal(mgw_server_stop(fx->srv, on_stopped, fx), 0);
    RUN_UNTIL(fx, c.eof && fx->stopped_calls == 1);
    uv_close((uv_handle_t *)&c.tcp, on_client_closed);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.closed, 1);
    assert_int_equal(fx->stopped_calls, 1);
    mgw_server_free(fx->srv);
}

static void server_closes_silent_client_after_handshake_timeout(void **state)
{
    struct fixture *fx = *state;
    struct client c;
    uint64_t t0;

    fx->cfg.hello_timeout_ms = 100;
    start_server(fx);
    client_connect(fx, &c, mgw_server_api_port(fx->srv));
    t0 = uv_now(&fx->loop);
    RUN_UNTIL(fx, c.eof);
    assert_int_equal(c.in_len, 0);
    assert_true(c.eof_at_ms - t0 >= 90); /* generous window: 100 ms deadline */
    assert_true(c.eof_at_ms - t0 < 5000);
    uv_close((uv_handle_t *)&c.tcp, on_client_closed);
    stop_server(fx);
    assert_int_equal(c.closed, 1);
}

static void server_max_clients_closes_the_extra_one(void **state)
{
    struct fixture *fx = *state;
    struct client a, b;

    fx->cfg.max_clients = 1;
    start_server(fx);
    client_connect(fx, &a, mgw_server_api_port(fx->srv));
    RUN_UNTIL(fx, uv_is_readable((uv_stream_t *)&a.tcp));
    client_connect(fx, &b, mgw_server_api_port(fx->srv));
    RUN_UNTIL(fx, b.eof);
    assert_int_equal(b.in_len, 0);
    assert_false(a.eof);
    uv_close((uv_handle_t *)&a.tcp, on_client_closed);
    uv_close((uv_handle_t *)&b.tcp, on_client_closed);
    stop_server(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(server_start_stop_without_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(server_port_in_use_is_ebind_naming_the_address, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_bad_config_is_rejected_with_flag_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_answers_handshake_then_stop_closes_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_closes_silent_client_after_handshake_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_max_clients_closes_the_extra_one, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
