/* The loop fixture shared by the core's pool and status tests: a uv loop with a watchdog, an
 * in-process mockgw (optionally with a fault script), a pool, and helpers that count every
 * acquire callback. Include once per test file after defining FIXTURE_NAME (names the lock
 * file) and the includes the tests use (cmocka, uv, ibcore.h, mockgw's private headers). */
#ifndef MGW_TEST_CORE_POOL_FIXTURE_H
#define MGW_TEST_CORE_POOL_FIXTURE_H

#include "loop_util.h"

#define SLACK_MS 100

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    uv_timer_t tick; /* unref'd, 5 ms: RUN_UNTIL rechecks even when the next timer is far */
    bool hung;
    struct mgw_config cfg;
    struct mgw_server *srv;
    int port;
    char lock_path[64];
    struct ibcore_pool_config pc;
    struct ibcore_pool *pool;
    int pool_closed;
};

struct got {
    int calls, status;
    struct ibcore_conn *conn;
    uint64_t at_ms;
    int order; /* completion order, across acquires */
};

static int completions;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    loop_fixture_init(fx, 15000);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 5, 5);
    uv_unref((uv_handle_t *)&fx->tick);
    mgw_config_init(&fx->cfg);
    fx->cfg.listen_port = 0;
    fx->cfg.admin_enabled = false;
    snprintf(fx->lock_path, sizeof fx->lock_path, "/tmp/%s.%d.lock", FIXTURE_NAME, (int)getpid());
    ibcore_pool_config_init(&fx->pc);
    fx->pc.lock_path = fx->lock_path;
    fx->pc.alive_window_ms = 1000;
    fx->pc.probe_timeout_ms = 500;
    completions = 0;
    *state = fx;
    return 0;
}

static void on_stopped(struct mgw_server *srv, void *data)
{
    (void)srv;
    (void)data;
}

static void on_pool_closed(void *data)
{
    ((struct fixture *)data)->pool_closed++;
}

/* Closes the pool (cb once, never inside the call), checks the counters end balanced. */
static void pool_close(struct fixture *fx)
{
    struct ibcore_pool_stats st;

    ibcore_pool_stats(fx->pool, &st);
    ibcore_pool_close(fx->pool, on_pool_closed, fx);
    assert_int_equal(fx->pool_closed, 0);
    RUN_UNTIL(fx, fx->pool_closed == 1);
    fx->pool = NULL;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    assert_false(fx->hung);
    if (fx->pool)
        pool_close(fx);
    if (fx->srv) {
        assert_int_equal(mgw_server_stop(fx->srv, on_stopped, fx), 0);
        uv_run(&fx->loop, UV_RUN_DEFAULT);
        mgw_server_free(fx->srv);
    }
    loop_close_all(&fx->loop);
    unlink(fx->lock_path);
    free(fx);
    return 0;
}

static void start_server(struct fixture *fx, const char *script)
{
    fx->srv = loop_start_mockgw(&fx->loop, &fx->cfg, script);
    fx->port = mgw_server_api_port(fx->srv);
    fx->pc.port = fx->port;
}

static void new_pool(struct fixture *fx, struct ibcore_breakers *registry)
{
    fx->pool = ibcore_pool_new(&fx->loop, &fx->pc, registry);
    assert_non_null(fx->pool);
}

static void on_acquired(struct ibcore_conn *conn, int status, void *data)
{
    struct got *g = data;

    g->calls++;
    g->status = status;
    g->conn = conn;
    g->order = ++completions;
    assert_true((conn != NULL) == (status == 0));
    if (conn != NULL)
        assert_true(ibcore_conn_is_ready(conn));
}

/* Starts an acquire with a deadline timeout_ms from now; never completes inside the call. */
static uint64_t acquire_start(struct fixture *fx, struct got *g, uint64_t timeout_ms)
{
    uint64_t deadline;

    memset(g, 0, sizeof *g);
    uv_update_time(&fx->loop);
    deadline = uv_now(&fx->loop) + timeout_ms;
    assert_int_equal(ibcore_pool_acquire(fx->pool, deadline, on_acquired, g), 0);
    assert_int_equal(g->calls, 0);
    return deadline;
}

static int acquire(struct fixture *fx, struct got *g, uint64_t timeout_ms)
{
    acquire_start(fx, g, timeout_ms);
    RUN_UNTIL(fx, g->calls > 0);
    g->at_ms = uv_now(&fx->loop);
    run_for(fx, 20);
    assert_int_equal(g->calls, 1);
    return g->status;
}

static struct ibcore_pool_stats stats(struct fixture *fx)
{
    struct ibcore_pool_stats st;

    ibcore_pool_stats(fx->pool, &st);
    assert_true(st.live == st.connecting + st.validating + st.idle + st.in_use);
    assert_true(st.live <= fx->pc.max_size);
    assert_true(st.closed <= st.created);
    return st;
}

#endif /* MGW_TEST_CORE_POOL_FIXTURE_H */
