/* The core's pool against the real mockgw library, in this process, on loopback: validation
 * before handoff, client ids, breaker, max size, deadlines, shutdown, idle GC, health checks.
 * Every acquire callback is counted and must come exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "fdcount.h"
#include "ibcore.h"
#include "mockgw.h"
#include "server.h"

#define FIXTURE_NAME "test_core_pool"
#include "core_pool_fixture.h"

/* ------------------------------------------------------------------------------------------ */

static void pool_reuses_within_window_and_probes_outside(void **state)
{
    struct fixture *fx = *state;
    struct got a, b, c;
    struct ibcore_pool_stats st;

    start_server(fx, NULL);
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_conn_client_id(a.conn), 1);
    st = stats(fx);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.created, 1);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), UV_EINVAL); /* twice: refused */
    assert_int_equal(acquire(fx, &b, 3000), 0);
    assert_ptr_equal(b.conn, a.conn);
    assert_int_equal(stats(fx).probes, 0); /* inside the alive window: no probe */
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    run_for(fx, 1100);
    assert_int_equal(acquire(fx, &c, 3000), 0);
    assert_ptr_equal(c.conn, a.conn);
    st = stats(fx);
    assert_int_equal(st.probes, 1);
    assert_int_equal(st.probe_failures, 0);
    assert_int_equal(st.created, 1);
    assert_int_equal(ibcore_pool_release(fx->pool, c.conn), 0);
    pool_close(fx);
}

static void pool_discards_a_silenced_idle_connection(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;
    struct ibcore_pool_stats st;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"request\",\"conn\":1},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    run_for(fx, 1100);
    assert_int_equal(acquire(fx, &b, 5000), 0);
    st = stats(fx);
    assert_int_equal(st.probes, 1);
    assert_int_equal(st.probe_failures, 1);
    assert_int_equal(st.created, 2);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.live, 1);
    /* mockgw never notices the silenced session close: id 1 stays taken there (326) */
    assert_int_equal(fx->srv->counters.accepted, 3);
    assert_int_equal(ibcore_conn_client_id(b.conn), 2);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
}

static void pool_concurrent_acquires_never_share(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;

    start_server(fx, NULL);
    new_pool(fx, NULL);
    for (int round = 0; round < 3; round++) {
        acquire_start(fx, &a, 3000);
        acquire_start(fx, &b, 3000);
        RUN_UNTIL(fx, a.calls > 0 && b.calls > 0);
        assert_int_equal(a.status, 0);
        assert_int_equal(b.status, 0);
        assert_ptr_not_equal(a.conn, b.conn);
        assert_int_not_equal(ibcore_conn_client_id(a.conn), ibcore_conn_client_id(b.conn));
        assert_int_equal(stats(fx).in_use, 2);
        assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
        assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
        if (round == 1)
            run_for(fx, 1100); /* round 2 validates both with probes, each its own */
    }
    assert_int_equal(stats(fx).created, 2);
    assert_int_equal(stats(fx).probes, 2);
    assert_int_equal(a.calls + b.calls, 2);
    pool_close(fx);
}

static void pool_326_moves_to_the_next_id(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;

    start_server(fx, "{\"settings\":{\"busy_client_ids\":[1]}}");
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_conn_client_id(a.conn), 2);
    assert_int_equal(fx->srv->counters.accepted, 2);
    /* id 1 is quarantined, id 2 is ours: the next fresh connection takes 3, no 326 again */
    assert_int_equal(acquire(fx, &b, 3000), 0);
    assert_int_equal(ibcore_conn_client_id(b.conn), 3);
    assert_int_equal(fx->srv->counters.accepted, 3);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
}

static void pool_every_id_refused_is_exhausted(void **state)
{
    struct fixture *fx = *state;
    struct got a;

    start_server(fx, "{\"settings\":{\"busy_client_ids\":[1,2,3]}}");
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), IBCORE_EIDSEXHAUSTED);
    assert_int_equal(fx->srv->counters.accepted, 3);
    /* quarantined: the next acquire fails without a connection */
    assert_int_equal(acquire(fx, &a, 3000), IBCORE_EIDSEXHAUSTED);
    assert_int_equal(fx->srv->counters.accepted, 3);
    assert_int_equal(stats(fx).live, 0);
    pool_close(fx);
}

static void pool_close_before_ready_advances_reset_does_not(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"start_api\",\"conn\":1},"
                     "\"action\":{\"type\":\"reset\"}},"
                     "{\"match\":{\"phase\":\"start_api\",\"conn\":2},"
                     "\"action\":{\"type\":\"close\"}}]}");
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), UV_ECONNRESET); /* no retry, no advance */
    assert_int_equal(fx->srv->counters.accepted, 1);
    assert_int_equal(acquire(fx, &b, 3000), 0); /* conn 2 (id 1) closed before ready */
    assert_int_equal(ibcore_conn_client_id(b.conn), 2);
    assert_int_equal(fx->srv->counters.accepted, 3);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
}

struct raw {
    uv_tcp_t tcp;
    int accepted;
};

static void on_raw_conn(uv_stream_t *s, int status)
{
    struct raw *r = s->data;

    (void)status;
    r->accepted++;
}

static void pool_refused_opens_the_breaker_then_no_connect(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker_config bc;
    struct ibcore_breakers *reg;
    struct sockaddr_storage ss;
    struct sockaddr_in sin;
    int len = sizeof ss;
    static struct raw raw;
    struct got a;

    memset(&raw, 0, sizeof raw);
    /* A bound socket that does not listen yet: connects are refused. */
    uv_tcp_init(&fx->loop, &raw.tcp);
    raw.tcp.data = &raw;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&raw.tcp, (struct sockaddr *)&sin, 0), 0);
    uv_tcp_getsockname(&raw.tcp, (struct sockaddr *)&ss, &len);
    fx->pc.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    ibcore_breaker_config_init(&bc);
    bc.failure_threshold = 2;
    reg = ibcore_breakers_new(&fx->loop, &bc, NULL, NULL);
    assert_non_null(reg);
    new_pool(fx, reg);
    assert_int_equal(acquire(fx, &a, 3000), UV_ECONNREFUSED);
    assert_int_equal(acquire(fx, &a, 3000), UV_ECONNREFUSED);
    assert_int_equal(ibcore_breaker_state(ibcore_breakers_get(reg, "127.0.0.1", fx->pc.port)),
                     IBCORE_BREAKER_OPEN);
    assert_int_equal(uv_listen((uv_stream_t *)&raw.tcp, 8, on_raw_conn), 0);
    assert_int_equal(acquire(fx, &a, 3000), IBCORE_EBREAKER);
    run_for(fx, 50);
    assert_int_equal(raw.accepted, 0); /* nothing reached the gateway */
    assert_int_equal(stats(fx).live, 0);
    pool_close(fx);
    ibcore_breakers_close(reg, NULL, NULL);
    uv_close((uv_handle_t *)&raw.tcp, NULL);
}

static void pool_deadline_is_kept(void **state)
{
    struct fixture *fx = *state;
    struct got a, b, c;
    uint64_t deadline;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"accept\",\"conn\":[2,100]},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    fx->pc.max_size = 2;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    /* a fresh connection to a silent gateway: the acquire's deadline, not connect_timeout */
    deadline = acquire_start(fx, &b, 300);
    RUN_UNTIL(fx, b.calls > 0);
    assert_int_equal(b.status, UV_ETIMEDOUT);
    assert_true(uv_now(&fx->loop) >= deadline && uv_now(&fx->loop) <= deadline + SLACK_MS);
    /* a waiter (max size reached: a holds one, c's connect hangs) */
    acquire_start(fx, &b, 2000);
    run_for(fx, 20);
    deadline = acquire_start(fx, &c, 200);
    RUN_UNTIL(fx, c.calls > 0);
    assert_int_equal(c.status, UV_ETIMEDOUT);
    assert_true(uv_now(&fx->loop) >= deadline && uv_now(&fx->loop) <= deadline + SLACK_MS);
    RUN_UNTIL(fx, b.calls > 0);
    assert_int_equal(b.status, UV_ETIMEDOUT);
    run_for(fx, 20);
    assert_int_equal(b.calls + c.calls, 2);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    pool_close(fx);
}

static void pool_max_size_waiters_are_fifo(void **state)
{
    struct fixture *fx = *state;
    struct got a, b, c;

    start_server(fx, NULL);
    fx->pc.max_size = 1;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    acquire_start(fx, &b, 3000);
    acquire_start(fx, &c, 3000);
    run_for(fx, 50);
    assert_int_equal(b.calls + c.calls, 0);
    assert_int_equal(stats(fx).pending, 2);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    RUN_UNTIL(fx, b.calls > 0);
    assert_int_equal(c.calls, 0);
    assert_ptr_equal(b.conn, a.conn);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    RUN_UNTIL(fx, c.calls > 0);
    assert_ptr_equal(c.conn, a.conn);
    assert_true(b.order < c.order);
    assert_int_equal(stats(fx).created, 1);
    assert_int_equal(ibcore_pool_release(fx->pool, c.conn), 0);
    pool_close(fx);
}

/* A failed connect frees its slot at once: the waiter behind it connects (id 1: a reset does
 * not advance the id) well before its deadline. */
static void pool_failed_connect_frees_the_slot_for_a_waiter(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;
    uint64_t start;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"start_api\",\"conn\":1},"
                     "\"action\":{\"type\":\"reset\"}}]}");
    fx->pc.max_size = 1;
    new_pool(fx, NULL);
    acquire_start(fx, &a, 3000);
    start = acquire_start(fx, &b, 3000) - 3000;
    RUN_UNTIL(fx, a.calls > 0 && b.calls > 0);
    assert_int_equal(a.status, UV_ECONNRESET);
    assert_int_equal(b.status, 0);
    assert_true(a.order < b.order);
    assert_true(uv_now(&fx->loop) < start + 1000);
    assert_int_equal(ibcore_conn_client_id(b.conn), 1);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
}

struct closer {
    struct fixture *fx;
    struct got g;
};

/* Closes the pool from inside its own ESHUTDOWN callback: a second close is a no-op. */
static void on_acquired_close(struct ibcore_conn *conn, int status, void *data)
{
    struct closer *cl = data;

    on_acquired(conn, status, &cl->g);
    ibcore_pool_close(cl->fx->pool, on_pool_closed, cl->fx);
}

static void pool_close_completes_pending_with_eshutdown(void **state)
{
    struct fixture *fx = *state;
    struct got a, b, c, d;
    struct closer e = { fx, { 0 } };
    uint64_t now;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"accept\",\"conn\":[2,100]},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    fx->pc.max_size = 2;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    acquire_start(fx, &b, 5000); /* connecting (silent gateway) */
    acquire_start(fx, &c, 5000); /* waiting: max size */
    uv_update_time(&fx->loop);
    now = uv_now(&fx->loop);
    assert_int_equal(ibcore_pool_acquire(fx->pool, now + 5000, on_acquired_close, &e), 0);
    run_for(fx, 50);
    assert_int_equal(stats(fx).pending, 3);
    ibcore_pool_close(fx->pool, on_pool_closed, fx);
    assert_int_equal(b.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(e.g.calls, 1);
    assert_int_equal(b.status, IBCORE_ESHUTDOWN);
    assert_int_equal(c.status, IBCORE_ESHUTDOWN);
    assert_int_equal(e.g.status, IBCORE_ESHUTDOWN);
    assert_int_equal(ibcore_pool_acquire(fx->pool, now + 5000, on_acquired, &d), IBCORE_ESHUTDOWN);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), IBCORE_ESHUTDOWN);
    RUN_UNTIL(fx, fx->pool_closed == 1);
    fx->pool = NULL;
    run_for(fx, 20);
    assert_int_equal(fx->pool_closed, 1);
    assert_int_equal(b.calls + c.calls + e.g.calls + a.calls, 4);
}

/* Every acquire is already at a connection (connecting to a silent gateway), none queued: the
 * close still completes each one. It used to lose them (the CI leak of two acquires when a
 * SIGTERM ended the harness in the middle of a schedule): collecting the entries' acquires
 * appended them to the emptied queue instead of to the list being completed. */
static void pool_close_completes_connecting_acquires_with_an_empty_queue(void **state)
{
    struct fixture *fx = *state;
    struct got b, c;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"accept\"},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    fx->pc.max_size = 2;
    new_pool(fx, NULL);
    acquire_start(fx, &b, 5000);
    acquire_start(fx, &c, 5000);
    run_for(fx, 50);
    assert_int_equal(stats(fx).connecting, 2);
    assert_int_equal(stats(fx).pending, 2);
    ibcore_pool_close(fx->pool, on_pool_closed, fx);
    assert_int_equal(b.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(b.status, IBCORE_ESHUTDOWN);
    assert_int_equal(c.status, IBCORE_ESHUTDOWN);
    RUN_UNTIL(fx, fx->pool_closed == 1);
    fx->pool = NULL;
    run_for(fx, 20);
    assert_int_equal(b.calls + c.calls, 2);
}

static void pool_idle_gc_closes_idle_never_in_use(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;
    struct ibcore_pool_stats st;

    start_server(fx, NULL);
    fx->pc.idle_timeout_ms = 300;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(acquire(fx, &b, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    run_for(fx, 500);
    st = stats(fx);
    assert_int_equal(st.live, 1); /* a's collected, b's (in use) untouched */
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.closed, 1);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
}

/* The application's callback moves the loop's clock on (uv_update_time(), as any code that
 * reads the time precisely does) and gives the connection back at once, inside the pool's own
 * pump: the connection is then idle since a moment after the pump's "now". It must stay idle,
 * not be taken for one idle for 2^64 ms and closed (under load, 1 run in ~50 of the harness's
 * standard level lost its idle connection that way). */
static void on_acquired_give_back_later(struct ibcore_conn *conn, int status, void *data)
{
    struct closer *gb = data; /* the fixture and the result, as for on_acquired_close() */

    on_acquired(conn, status, &gb->g);
    usleep(5 * 1000);
    uv_update_time(&gb->fx->loop);
    assert_int_equal(ibcore_pool_release(gb->fx->pool, conn), 0);
}

static void pool_connection_given_back_from_a_callback_after_a_clock_update_stays(void **state)
{
    struct fixture *fx = *state;
    struct closer gb = { .fx = fx };
    struct got a, b;

    start_server(fx, NULL);
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    uv_update_time(&fx->loop);
    /* served from the pump: the trusted idle connection, handed to the callback above */
    assert_int_equal(
        ibcore_pool_acquire(fx->pool, uv_now(&fx->loop) + 3000, on_acquired_give_back_later, &gb),
        0);
    RUN_UNTIL(fx, gb.g.calls > 0);
    assert_int_equal(gb.g.status, 0);
    assert_ptr_equal(gb.g.conn, a.conn);
    run_for(fx, 20);
    assert_int_equal(stats(fx).idle, 1);
    assert_int_equal(stats(fx).closed, 0);
    assert_int_equal(acquire(fx, &b, 3000), 0);
    assert_ptr_equal(b.conn, a.conn); /* the same connection, not a new one */
    assert_int_equal(stats(fx).created, 1);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
}

static void pool_health_checks_probe_idle_and_close_dead(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;
    struct ibcore_pool_stats st;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"request\",\"conn\":2},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    fx->pc.health_interval_ms = 1200;
    fx->pc.probe_timeout_ms = 300;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(acquire(fx, &b, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    run_for(fx, 1800); /* due at 1080..1320, probe answered (conn 1) or times out (conn 2) */
    st = stats(fx);
    assert_int_equal(st.probes, 2);
    assert_int_equal(st.probe_failures, 1);
    assert_int_equal(st.live, 1);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.closed, 1);
    pool_close(fx);
}

/* 1000 fault cycles: every connection is reset by the gateway right after ready (before or
 * after the pool lends it), so each cycle makes a fresh one; afterwards every descriptor the
 * pool opened is closed again. */
static void pool_fds_back_to_baseline_after_1000_fault_cycles(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breakers *reg;
    int baseline, ok = 0, failed = 0;

    fx->cfg.max_clients = 0;
    fx->cfg.seed = 7;
    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"ready\"},"
                     "\"action\":{\"type\":\"reset\"}}]}");
    reg = ibcore_breakers_new(&fx->loop, NULL, NULL, NULL);
    assert_non_null(reg);
    ibcore_breaker_disable(ibcore_breakers_get(reg, "127.0.0.1", fx->port)); /* keep trying */
    fx->pc.max_size = 1;
    new_pool(fx, reg);
    baseline = count_fds();
    for (int i = 0; i < 1000; i++) {
        struct got g;

        acquire_start(fx, &g, 5000);
        RUN_UNTIL(fx, g.calls > 0); /* no settling pause: 1000 cycles must stay quick */
        if (g.status == 0) {
            ok++;
            assert_int_equal(ibcore_pool_release(fx->pool, g.conn), 0);
        } else {
            failed++;
        }
    }
    assert_true(fx->srv->ctx.counters.faults >= 900); /* (nearly) one reset per cycle */
    assert_int_equal(ok + failed, 1000);
    pool_close(fx);
    for (int i = 0; i < 100 && count_fds() != baseline; i++)
        run_for(fx, 10); /* mockgw closes its side when it reads our FIN */
    assert_int_equal(count_fds(), baseline);
    ibcore_breakers_close(reg, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(pool_reuses_within_window_and_probes_outside),
        T(pool_discards_a_silenced_idle_connection),
        T(pool_concurrent_acquires_never_share),
        T(pool_326_moves_to_the_next_id),
        T(pool_every_id_refused_is_exhausted),
        T(pool_close_before_ready_advances_reset_does_not),
        T(pool_refused_opens_the_breaker_then_no_connect),
        T(pool_deadline_is_kept),
        T(pool_max_size_waiters_are_fifo),
        T(pool_failed_connect_frees_the_slot_for_a_waiter),
        T(pool_close_completes_pending_with_eshutdown),
        T(pool_close_completes_connecting_acquires_with_an_empty_queue),
        T(pool_idle_gc_closes_idle_never_in_use),
        T(pool_connection_given_back_from_a_callback_after_a_clock_update_stays),
        T(pool_health_checks_probe_idle_and_close_dead),
        T(pool_fds_back_to_baseline_after_1000_fault_cycles),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
