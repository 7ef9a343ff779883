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

#include "loop_util.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog; /* unref'd: fires only if a test would hang */
    bool hung;
    struct mgw_config cfg;
    struct mgw_server *srv;
    int stopped_calls;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    loop_fixture_init(fx, 10000);
    mgw_config_init(&fx->cfg);
    fx->cfg.listen_port = 0;
    fx->cfg.admin_port = 0;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    assert_false(fx->hung);
    loop_close_all(&fx->loop);
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
    struct loop_client c;

    start_server(fx);
    loop_client_connect(&fx->loop, &c, mgw_server_api_port(fx->srv));
    loop_client_send(&c, hello, sizeof hello - 1);
    RUN_UNTIL(fx, c.in_len >= 30);
    assert_memory_equal(c.in,
                        "\x00\x00\x00\x1a"
                        "178\0",
                        8);
    assert_int_equal(mgw_server_stop(fx->srv, on_stopped, fx), 0);
    RUN_UNTIL(fx, c.eof && fx->stopped_calls == 1);
    loop_client_close(&c);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.closed, 1);
    assert_int_equal(fx->stopped_calls, 1);
    mgw_server_free(fx->srv);
}

static void server_closes_silent_client_after_handshake_timeout(void **state)
{
    struct fixture *fx = *state;
    struct loop_client c;
    uint64_t t0;

    fx->cfg.hello_timeout_ms = 100;
    start_server(fx);
    loop_client_connect(&fx->loop, &c, mgw_server_api_port(fx->srv));
    t0 = uv_now(&fx->loop);
    RUN_UNTIL(fx, c.eof);
    assert_int_equal(c.in_len, 0);
    assert_true(c.eof_at_ms - t0 >= 90); /* generous window: 100 ms deadline */
    assert_true(c.eof_at_ms - t0 < 5000);
    loop_client_close(&c);
    stop_server(fx);
    assert_int_equal(c.closed, 1);
}

static void server_max_clients_closes_the_extra_one(void **state)
{
    struct fixture *fx = *state;
    struct loop_client a, b;

    fx->cfg.max_clients = 1;
    start_server(fx);
    loop_client_connect(&fx->loop, &a, mgw_server_api_port(fx->srv));
    RUN_UNTIL(fx, uv_is_readable((uv_stream_t *)&a.tcp));
    loop_client_connect(&fx->loop, &b, mgw_server_api_port(fx->srv));
    RUN_UNTIL(fx, b.eof);
    assert_int_equal(b.in_len, 0);
    assert_false(a.eof);
    loop_client_close(&a);
    loop_client_close(&b);
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
