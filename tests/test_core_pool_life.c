/* The pool's timing policies against the real mockgw library on loopback: the pause between
 * client ids, connect retries with backoff inside the deadline, max lifetime, suspend
 * detection, closing its own CLOSE_WAIT connections, and the log sink's pool and breaker
 * lines. Every acquire callback is counted and must come exactly once. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "ibcore.h"
#include "internal.h"
#include "mockgw.h"
#include "server.h"

#define FIXTURE_NAME "test_core_pool_life"
#include "core_pool_fixture.h"

/* ---- the log sink, captured ------------------------------------------------------------------ */

static char logged[8192];

static void capture(enum ibcore_log_level level, const char *json, void *data)
{
    size_t n = strlen(logged);

    (void)data;
    snprintf(logged + n, sizeof logged - n, "%s %s\n", ibcore_log_level_name(level), json);
}

static int setup_logged(void **state)
{
    ibcore_log_fn fn;
    void *data = &fn;

    logged[0] = '\0';
    ibcore_log_set(capture, NULL);
    ibcore_log_get(&fn, &data);
    assert_ptr_equal(fn, capture); /* what was set is what is read back */
    assert_null(data);
    return setup(state);
}

static int teardown_logged(void **state)
{
    int rc = teardown(state);

    ibcore_log_default();
    return rc;
}

/* ---- client-id pause ------------------------------------------------------------------------- */

static void pool_pauses_before_the_next_client_id(void **state)
{
    struct fixture *fx = *state;
    struct got a;
    uint64_t start;

    start_server(fx, "{\"settings\":{\"busy_client_ids\":[1]}}");
    fx->pc.client_id_pause_ms = 400;
    new_pool(fx, NULL);
    uv_update_time(&fx->loop);
    start = uv_now(&fx->loop);
    assert_int_equal(acquire(fx, &a, 5000), 0);
    assert_int_equal(ibcore_conn_client_id(a.conn), 2);
    assert_true(a.at_ms - start >= 400); /* id 2 was tried only after the pause */
    assert_true(a.at_ms - start < 400 + 2000);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    pool_close(fx);
}

/* A pause that would pass the deadline ends the acquire at once with the refusal. */
static void pool_pause_past_the_deadline_fails_fast_with_the_refusal(void **state)
{
    struct fixture *fx = *state;
    struct got a;
    uint64_t start;

    start_server(fx, "{\"settings\":{\"busy_client_ids\":[1]}}");
    fx->pc.client_id_pause_ms = 5000;
    new_pool(fx, NULL);
    uv_update_time(&fx->loop);
    start = uv_now(&fx->loop);
    assert_int_equal(acquire(fx, &a, 2000), IBCORE_ECLIENTID);
    assert_true(a.at_ms - start < 1000);
    assert_int_equal(fx->srv->counters.accepted, 1);
    pool_close(fx);
}

/* ---- connect retries ------------------------------------------------------------------------- */

static void pool_retries_a_reset_after_backoff_on_the_same_id(void **state)
{
    struct fixture *fx = *state;
    struct got a;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"start_api\",\"conn\":[1,2]},"
                     "\"action\":{\"type\":\"reset\"}}]}");
    fx->pc.connect_retries = 3;
    fx->pc.backoff_base_ms = 100;
    fx->pc.backoff_cap_ms = 200;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 5000), 0);
    assert_int_equal(ibcore_conn_client_id(a.conn), 1); /* a reset never advances the id */
    assert_int_equal(fx->srv->counters.accepted, 3);
    assert_int_equal(stats(fx).retries, 2);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    pool_close(fx);
}

/* Nothing listens: every retry is refused; the acquire ends with the refusal (or the breaker,
 * once it opened) by its deadline, never later, and never sleeps past it. */
static void pool_retries_never_outlive_the_deadline(void **state)
{
    struct fixture *fx = *state;
    struct got a;
    uv_tcp_t probe;
    struct sockaddr_in sa;
    struct sockaddr_storage name;
    int len = sizeof name;
    uint64_t deadline;

    /* a port that was free a moment ago and is closed now */
    uv_tcp_init(&fx->loop, &probe);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&probe, (struct sockaddr *)&name, &len), 0);
    fx->pc.port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    uv_close((uv_handle_t *)&probe, NULL);
    run_for(fx, 1);
    fx->pc.connect_retries = 50;
    fx->pc.backoff_base_ms = 50;
    fx->pc.backoff_cap_ms = 400;
    new_pool(fx, NULL);
    deadline = acquire_start(fx, &a, 1500);
    RUN_UNTIL(fx, a.calls > 0);
    assert_true(a.status == UV_ECONNREFUSED || a.status == IBCORE_EBREAKER);
    assert_true(uv_now(&fx->loop) <= deadline + SLACK_MS);
    assert_true(stats(fx).retries >= 1);
    run_for(fx, 20);
    assert_int_equal(a.calls, 1);
    pool_close(fx);
}

/* ---- max lifetime ---------------------------------------------------------------------------- */

static void pool_max_lifetime_retires_idle_ones_never_lent_ones(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;

    start_server(fx, NULL);
    fx->pc.max_lifetime_ms = 1000;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    run_for(fx, 1300); /* past its lifetime while lent: the borrower keeps a working one */
    assert_true(ibcore_conn_is_ready(a.conn));
    assert_int_equal(stats(fx).in_use, 1);
    assert_int_equal(stats(fx).retired, 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0); /* closed on release */
    assert_int_equal(stats(fx).retired, 1);
    assert_int_equal(stats(fx).live, 0);
    assert_int_equal(acquire(fx, &b, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    assert_int_equal(stats(fx).idle, 1);
    run_for(fx, 600);
    assert_int_equal(stats(fx).idle, 1); /* not before its time (1000 - 2.5 % at most) */
    run_for(fx, 700);
    assert_int_equal(stats(fx).idle, 0); /* the pool's timer retired it while idle */
    assert_int_equal(stats(fx).retired, 2);
    assert_non_null(strstr(logged, "\"event\":\"retired\""));
    pool_close(fx);
}

/* ---- suspend --------------------------------------------------------------------------------- */

static uint64_t fake_slept;

static uint64_t fake_slept_ms(void)
{
    return fake_slept;
}

static void pool_suspend_makes_idle_connections_revalidate(void **state)
{
    struct fixture *fx = *state;
    uint64_t (*saved)(void) = ibcore__slept_ms;
    struct got a;

    fake_slept = 1000;
    ibcore__slept_ms = fake_slept_ms;
    start_server(fx, NULL);
    fx->pc.alive_window_ms = 60000; /* trusted for a minute: only a suspend forces a probe */
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    fake_slept += 3000; /* below the 5 s threshold: nothing happens */
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(stats(fx).probes, 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    fake_slept += 3000; /* 6 s since the last look: the machine slept */
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(stats(fx).suspends, 1);
    assert_int_equal(stats(fx).probes, 1); /* probed before the handoff */
    assert_int_equal(stats(fx).probe_failures, 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    assert_int_equal(acquire(fx, &a, 3000), 0); /* the probe passed: trusted again */
    assert_int_equal(stats(fx).probes, 1);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    assert_non_null(strstr(logged, "warn {\"metric\":\"pool\",\"event\":\"suspend\""));
    pool_close(fx);
    ibcore__slept_ms = saved;
}

/* ---- own CLOSE_WAIT connections -------------------------------------------------------------- */

/* A mockgw in a child process (its own loop) running script, so that its FIN reaches our socket
 * while our loop is not running and the socket sits in CLOSE_WAIT. It exits when the pipe
 * closes (or after 10 s). */
static void child_gateway(int port_fd, int quit_fd, const char *script)
{
    uv_loop_t loop;
    struct mgw_config cfg;
    struct mgw_server *srv;
    bool hung = false;
    int port;

    uv_loop_init(&loop);
    mgw_config_init(&cfg);
    cfg.listen_port = 0;
    cfg.admin_enabled = false;
    srv = loop_start_mockgw(&loop, &cfg, script);
    port = mgw_server_api_port(srv);
    if (write(port_fd, &port, sizeof port) != (ssize_t)sizeof port)
        _exit(2);
    for (int i = 0; i < 100; i++) {
        char c;

        loop_run_for(&loop, &hung, 100);
        if (read(quit_fd, &c, 1) == 0)
            break; /* the parent closed its end */
    }
    _exit(0);
}

/* Starts child_gateway(script); fx->pc.port is its port; returns the pid, *quit_w the pipe end
 * whose close tells it to exit. */
static pid_t fork_gateway(struct fixture *fx, const char *script, int *quit_w)
{
    int port_pipe[2], quit_pipe[2];
    pid_t pid;

    assert_int_equal(pipe(port_pipe), 0);
    assert_int_equal(pipe(quit_pipe), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(port_pipe[0]);
        close(quit_pipe[1]);
        fcntl(quit_pipe[0], F_SETFL, O_NONBLOCK);
        child_gateway(port_pipe[1], quit_pipe[0], script);
    }
    close(port_pipe[1]);
    close(quit_pipe[0]);
    assert_int_equal(read(port_pipe[0], &fx->pc.port, sizeof fx->pc.port),
                     (ssize_t)sizeof fx->pc.port);
    close(port_pipe[0]);
    *quit_w = quit_pipe[1];
    return pid;
}

static void reap_gateway(pid_t pid, int quit_w)
{
    int status;

    close(quit_w);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void pool_closes_its_own_close_wait_connections_only(void **state)
{
    struct fixture *fx = *state;
    int quit_w;
    struct ibcore_zombies z;
    struct got a;
    pid_t pid = fork_gateway(fx,
                             "{\"rules\":[{\"match\":{\"phase\":\"ready\"},"
                             "\"action\":{\"type\":\"half_close\",\"after_ms\":300}}]}",
                             &quit_w);

    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    assert_int_equal(ibcore_pool_close_zombies(fx->pool), 0); /* healthy: nothing to close */
    usleep(1000 * 1000); /* our loop stands still; the child's FIN arrives meanwhile */
    assert_int_equal(ibcore_zombie_scan(fx->pc.port, &z), 0);
    assert_int_equal(z.own, 1);
    assert_int_equal(ibcore_pool_close_zombies(fx->pool), 1);
    assert_int_equal(ibcore_pool_close_zombies(fx->pool), 0); /* idempotent */
    assert_int_equal(stats(fx).live, 0);
    assert_int_equal(stats(fx).zombies_closed, 1);
    run_for(fx, 50);
    assert_int_equal(ibcore_zombie_scan(fx->pc.port, &z), 0);
    assert_int_equal(z.own, 0);
    assert_non_null(strstr(logged, "\"event\":\"zombie_closed\""));
    pool_close(fx);
    reap_gateway(pid, quit_w);
}

static void on_time(struct ibcore_conn *c, int status, int64_t epoch_s, void *data)
{
    (void)c;
    (void)epoch_s;
    *(int *)data = status == 0 ? 1 : -1;
}

/* The gateway closed an idle connection while the application kept the loop busy: the FIN sits
 * unread in the kernel and the connection is still inside its alive window. The next acquire
 * must not get it (nor a probe on it): the pool sees the FIN and makes a new connection. */
static void pool_never_hands_out_a_connection_the_gateway_has_left(void **state)
{
    struct fixture *fx = *state;
    int quit_w;
    struct got a, w;
    pid_t pid = fork_gateway(fx,
                             "{\"rules\":[{\"match\":{\"phase\":\"ready\",\"conn\":1},"
                             "\"action\":{\"type\":\"half_close\",\"after_ms\":300}}]}",
                             &quit_w);

    fx->pc.alive_window_ms = 5000; /* trusted without a probe throughout */
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_false(ibcore_conn_peer_gone(a.conn));
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    usleep(800 * 1000); /* loop busy elsewhere: the FIN arrives unread */
    assert_true(ibcore_conn_peer_gone(a.conn));
    assert_int_equal(acquire(fx, &w, 3000), 0);
    assert_false(ibcore_conn_peer_gone(w.conn));
    assert_int_equal(stats(fx).created, 2);
    assert_int_equal(stats(fx).closed, 1);
    assert_int_equal(stats(fx).probes, 0);
    assert_non_null(strstr(logged, "info {\"metric\":\"pool\",\"event\":\"peer_gone\""));
    assert_non_null(strstr(logged, "\"client_id\":1,"));
    assert_int_equal(ibcore_pool_release(fx->pool, w.conn), 0);
    pool_close(fx);
    reap_gateway(pid, quit_w);
}

/* A borrower's probe is on a connection the gateway has just closed, and a health check finds
 * that socket in CLOSE_WAIT before the loop reads the FIN: the connection is closed and the
 * borrower goes back to the head of the queue, where it must be served in that same turn (by
 * the trusted idle connection next to it) — not at the next health check, a second later, or at
 * its deadline. */
static void pool_borrower_of_a_zombie_found_by_a_health_check_is_served_at_once(void **state)
{
    struct fixture *fx = *state;
    int quit_w, answered = 0;
    struct got a, b, w;
    uint64_t frozen_at;
    /* the probe on connection 1 gets no answer, and 200 ms later (after our turn) a FIN */
    pid_t pid = fork_gateway(
        fx,
        "{\"rules\":[{\"match\":{\"phase\":\"request\",\"conn\":1,\"msg\":\"reqCurrentTime\"},"
        "\"action\":{\"type\":\"ignore\"}},"
        "{\"match\":{\"phase\":\"request\",\"conn\":1,\"msg\":\"reqCurrentTime\"},"
        "\"action\":{\"type\":\"half_close\",\"after_ms\":200}}]}",
        &quit_w);

    fx->pc.max_size = 2;
    fx->pc.alive_window_ms = 2000;
    fx->pc.health_interval_ms = 1000; /* B's check (900..1100 ms) finds it still trusted */
    fx->pc.probe_timeout_ms = 5000;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(acquire(fx, &b, 3000), 0);
    run_for(fx, 2100); /* A has heard nothing for longer than the alive window */
    uv_update_time(&fx->loop);
    assert_int_equal(ibcore_conn_current_time(b.conn, uv_now(&fx->loop) + 3000, on_time, &answered),
                     0);
    RUN_UNTIL(fx, answered != 0); /* B has: trusted for 2 s more */
    assert_int_equal(answered, 1);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    run_for(fx, 20);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0); /* the most recent idle one */
    acquire_start(fx, &w, 4000);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* the pump reserves A and sends the probe */
    assert_int_equal(stats(fx).validating, 1);
    usleep(1300 * 1000); /* loop frozen: the FIN arrives, B's health check falls due */
    uv_update_time(&fx->loop);
    frozen_at = uv_now(&fx->loop);
    RUN_UNTIL(fx, w.calls > 0);
    assert_int_equal(w.status, 0);
    assert_ptr_equal(w.conn, b.conn);
    assert_in_range(uv_now(&fx->loop) - frozen_at, 0, 500); /* the bug: ~1000 (B's next check) */
    assert_int_equal(stats(fx).zombies_closed, 1);
    assert_int_equal(stats(fx).probes, 1); /* B was trusted: no probe */
    assert_int_equal(ibcore_pool_release(fx->pool, w.conn), 0);
    pool_close(fx);
    reap_gateway(pid, quit_w);
}

/* ---- the breaker, checked again after the handshake lock ------------------------------------ */

/* Two acquires at once: the first holds the handshake lock and is reset, which opens the
 * breaker (threshold 1); the second, which took its permit while the breaker was closed and
 * then waited for the lock, must not connect. */
static void pool_breaker_opened_during_the_lock_wait_stops_the_connect(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker_config bc;
    struct ibcore_breakers *reg;
    struct got a, b;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"start_api\",\"conn\":1},"
                     "\"action\":{\"type\":\"reset\"}}]}");
    ibcore_breaker_config_init(&bc);
    bc.failure_threshold = 1;
    reg = ibcore_breakers_new(&fx->loop, &bc, NULL, NULL);
    assert_non_null(reg);
    fx->pc.max_size = 2;
    new_pool(fx, reg);
    acquire_start(fx, &a, 3000);
    acquire_start(fx, &b, 3000);
    RUN_UNTIL(fx, a.calls > 0 && b.calls > 0);
    run_for(fx, 100);
    assert_int_equal(a.status, UV_ECONNRESET);
    assert_int_equal(b.status, IBCORE_EBREAKER);
    assert_int_equal(fx->srv->counters.accepted, 1); /* nothing reached the gateway after */
    assert_int_equal(stats(fx).live, 0);
    pool_close(fx);
    ibcore_breakers_close(reg, NULL, NULL);
    run_for(fx, 10);
}

/* ---- breaker telemetry reaches the log too --------------------------------------------------- */

static int telemetry_calls;

static void on_telemetry(const char *json, void *data)
{
    (void)json;
    (void)data;
    telemetry_calls++;
}

static void breaker_transitions_go_to_the_callback_and_the_log(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breaker_config bc;
    struct ibcore_breakers *reg;
    struct ibcore_breaker *b;
    struct ibcore_permit p;

    ibcore_breaker_config_init(&bc);
    bc.failure_threshold = 1;
    bc.open_ms = 100;
    reg = ibcore_breakers_new(&fx->loop, &bc, on_telemetry, NULL);
    b = ibcore_breakers_get(reg, "127.0.0.1", 4002);
    assert_int_equal(ibcore_breaker_acquire(b, &p), 0);
    ibcore_breaker_report(&p, false);
    assert_int_equal(ibcore_breaker_acquire(b, &p), IBCORE_EBREAKER);
    assert_int_equal(telemetry_calls, 2); /* the transition and the rejection */
    assert_non_null(strstr(logged, "warn {\"metric\":\"breaker\",\"event\":\"transition\","
                                   "\"endpoint\":\"127.0.0.1:4002\",\"from\":\"closed\","
                                   "\"to\":\"open\""));
    assert_non_null(
        strstr(logged, "debug {\"metric\":\"breaker\",\"event\":\"call_not_permitted\""));
    ibcore_breakers_close(reg, NULL, NULL);
    run_for(fx, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_logged, teardown_logged)
        T(pool_pauses_before_the_next_client_id),
        T(pool_pause_past_the_deadline_fails_fast_with_the_refusal),
        T(pool_retries_a_reset_after_backoff_on_the_same_id),
        T(pool_retries_never_outlive_the_deadline),
        T(pool_max_lifetime_retires_idle_ones_never_lent_ones),
        T(pool_suspend_makes_idle_connections_revalidate),
        T(pool_closes_its_own_close_wait_connections_only),
        T(pool_never_hands_out_a_connection_the_gateway_has_left),
        T(pool_borrower_of_a_zombie_found_by_a_health_check_is_served_at_once),
        T(pool_breaker_opened_during_the_lock_wait_stops_the_connect),
        T(breaker_transitions_go_to_the_callback_and_the_log),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
