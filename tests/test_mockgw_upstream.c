/* Proxy mode on a real loop: a fake gateway and a proxy in front of it in one process, real
 * loopback sockets. The upstream leg's connect deadline, one side closing the other, stop with
 * a connect in flight; every handle closed (teardown: uv_loop_close() == 0). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "fault.h"
#include "ibwire.h"
#include "mockgw.h"
#include "server.h"

#include "loop_util.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog; /* unref'd: fires only if a test would hang */
    bool hung;
    int stopped_calls;
};

static const uint8_t HELLO[] = "API\0\0\0\0\x09v157..178";
static const uint8_t START_API_1[] = "\0\0\0\x08"
                                     "71\0"
                                     "2\0"
                                     "1\0"
                                     "\0";
#define BURST_LEN (19 + 10 + 58 + 56 + 61)

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    loop_fixture_init(fx, 10000);
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

    (void)srv;
    fx->stopped_calls++;
}

/* Stops srv, runs the loop dry, checks the callback fired exactly once, frees it. */
static void stop(struct fixture *fx, struct mgw_server *srv)
{
    int before = fx->stopped_calls;

    assert_int_equal(mgw_server_stop(srv, on_stopped, fx), 0);
    assert_int_equal(fx->stopped_calls, before); /* never before stop() returns */
    RUN_UNTIL(fx, fx->stopped_calls == before + 1);
    mgw_server_free(srv);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(fx->stopped_calls, before + 1);
}

static struct mgw_server *start_gateway(struct fixture *fx)
{
    struct mgw_config cfg;

    mgw_config_init(&cfg);
    cfg.listen_port = 0;
    cfg.admin_enabled = false;
    return loop_start_mockgw(&fx->loop, &cfg, NULL);
}

static struct mgw_server *start_proxy(struct fixture *fx, int upstream_port, uint64_t timeout_ms)
{
    struct mgw_config cfg;

    mgw_config_init(&cfg);
    cfg.listen_port = 0;
    cfg.admin_enabled = false;
    cfg.upstream_host = "127.0.0.1";
    cfg.upstream_port = upstream_port;
    cfg.upstream_timeout_ms = timeout_ms;
    return loop_start_mockgw(&fx->loop, &cfg, NULL);
}

static void client_close(struct fixture *fx, struct loop_client *c)
{
    loop_client_close(c);
    RUN_UNTIL(fx, c->closed == 1);
}

/* Connects c to the proxy px and sends the client's hello. */
static void client_hello(struct fixture *fx, struct loop_client *c, struct mgw_server *px)
{
    loop_client_connect(&fx->loop, c, mgw_server_api_port(px));
    loop_client_send(c, HELLO, sizeof HELLO - 1);
}

/* A port nobody listens on. */
static int closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A listener whose accept queue is full: the kernel drops further SYNs and a connect hangs.
 * fds[0] is the listener, the rest fill its queue. Returns the port. */
static int full_listener(int fds[5])
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;

    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fds[0], (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fds[0], 0), 0);
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&a, &len), 0);
    for (int i = 1; i < 5; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        connect(fds[i], (struct sockaddr *)&a, sizeof a); /* EINPROGRESS: into the queue */
    }
    usleep(100 * 1000);
    return ntohs(a.sin_port);
}

static void close_fds(int fds[5])
{
    for (int i = 0; i < 5; i++)
        close(fds[i]);
}

static void upstream_relays_the_handshake_and_both_stop_cleanly(void **state)
{
    struct fixture *fx = *state;
    struct mgw_server *up = start_gateway(fx);
    struct mgw_server *px = start_proxy(fx, mgw_server_api_port(up), 5000);
    struct loop_client c;
    size_t vr;

    client_hello(fx, &c, px);
    RUN_UNTIL(fx, c.in_len >= 4);
    vr = 4 + (size_t)c.in[3];
    RUN_UNTIL(fx, c.in_len >= vr); /* the whole version reply */
    assert_memory_equal(c.in + 4, "178\0", 4);
    loop_client_send(&c, START_API_1, sizeof START_API_1 - 1);
    RUN_UNTIL(fx, c.in_len >= vr + BURST_LEN);
    assert_int_equal(c.in_len, vr + BURST_LEN);
    assert_int_equal(up->n_conns, 1);
    assert_non_null(px->conns->up);
    assert_true(px->conns->up->connected);
    stop(fx, px); /* closes the client and the upstream leg */
    RUN_UNTIL(fx, c.eof && up->n_conns == 0);
    client_close(fx, &c);
    stop(fx, up);
}

static void upstream_refused_closes_the_client_with_nothing_sent(void **state)
{
    struct fixture *fx = *state;
    struct mgw_server *px = start_proxy(fx, closed_port(), 5000);
    struct loop_client c;

    client_hello(fx, &c, px);
    RUN_UNTIL(fx, c.eof);
    assert_int_equal(c.in_len, 0);
    RUN_UNTIL(fx, px->n_conns == 0);
    client_close(fx, &c);
    stop(fx, px);
}

static void upstream_connect_deadline_closes_the_client(void **state)
{
    struct fixture *fx = *state;
    int fds[5], port = full_listener(fds);
    struct mgw_server *px = start_proxy(fx, port, 200);
    struct loop_client c;
    uint64_t t0;

    loop_client_connect(&fx->loop, &c, mgw_server_api_port(px));
    t0 = uv_now(&fx->loop);
    loop_client_send(&c, HELLO, sizeof HELLO - 1);
    RUN_UNTIL(fx, c.eof);
    assert_int_equal(c.in_len, 0);
    assert_true(c.eof_at_ms - t0 >= 150);
    assert_true(c.eof_at_ms - t0 < 3000);
    client_close(fx, &c);
    stop(fx, px);
    close_fds(fds);
}

static void stop_with_an_upstream_connect_in_flight(void **state)
{
    struct fixture *fx = *state;
    int fds[5], port = full_listener(fds);
    struct mgw_server *px = start_proxy(fx, port, 5000);
    struct loop_client c;

    client_hello(fx, &c, px); /* the hello is kept until the connect completes */
    RUN_UNTIL(fx, px->n_conns == 1 && px->conns->up && px->conns->up->pending_len > 0);
    assert_false(px->conns->up->connected);
    stop(fx, px); /* the connect is cancelled, the stop callback fires once */
    RUN_UNTIL(fx, c.eof);
    client_close(fx, &c);
    close_fds(fds);
}

static void upstream_going_away_closes_the_client(void **state)
{
    struct fixture *fx = *state;
    struct mgw_server *up = start_gateway(fx);
    struct mgw_server *px = start_proxy(fx, mgw_server_api_port(up), 5000);
    struct loop_client c;

    client_hello(fx, &c, px);
    loop_client_send(&c, START_API_1, sizeof START_API_1 - 1);
    RUN_UNTIL(fx, c.in_len >= 4 && c.in_len >= 4 + (size_t)c.in[3] + BURST_LEN);
    stop(fx, up);
    RUN_UNTIL(fx, c.eof);
    assert_int_equal(c.in_len, 4 + (size_t)c.in[3] + BURST_LEN); /* nothing more, then FIN */
    RUN_UNTIL(fx, px->n_conns == 0);
    client_close(fx, &c);
    stop(fx, px);
}

static void client_going_away_closes_the_upstream(void **state)
{
    struct fixture *fx = *state;
    struct mgw_server *up = start_gateway(fx);
    struct mgw_server *px = start_proxy(fx, mgw_server_api_port(up), 5000);
    struct loop_client c;

    client_hello(fx, &c, px);
    RUN_UNTIL(fx, up->n_conns == 1 && c.in_len >= 4 && c.in_len >= 4 + (size_t)c.in[3]);
    client_close(fx, &c);
    RUN_UNTIL(fx, up->n_conns == 0 && px->n_conns == 0);
    stop(fx, px);
    stop(fx, up);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(upstream_relays_the_handshake_and_both_stop_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_refused_closes_the_client_with_nothing_sent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_connect_deadline_closes_the_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stop_with_an_upstream_connect_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_going_away_closes_the_client, setup, teardown),
        cmocka_unit_test_setup_teardown(client_going_away_closes_the_upstream, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
