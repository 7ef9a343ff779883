/* The runner end to end on one loop (a basic scenario passes; a wrong expectation fails with the
 * path and the reason; a step that cannot finish is cut at its deadline and the run still ends
 * with everything closed) and the admin HTTP client (exactly one callback: answer, refused,
 * timeout, cancel). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "harness.h"
#include "http_answer.h"
#include "mockgw.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool hung;
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
    uv_timer_start(&fx->watchdog, on_watchdog, 20000, 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
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

static struct harness_scenario *scenario(const char *json)
{
    struct harness_err err;
    struct harness_scenario *sc = harness_scenario_parse(json, strlen(json), "t.json", &err);

    if (sc == NULL)
        fail_msg("%s", err.msg);
    return sc;
}

static void run(struct fixture *fx, const char *json, struct harness_result *res)
{
    struct harness_scenario *sc = scenario(json);
    struct harness_run_opts o;

    harness_run_opts_init(&o);
    assert_int_equal(harness_run(&fx->loop, sc, &o, res), 0);
    harness_scenario_free(sc);
}

static void dump(const struct harness_result *res)
{
    for (unsigned i = 0; i < res->n_failures; i++)
        print_message("  %s\n", res->failures[i]);
}

static bool has_failure(const struct harness_result *res, const char *text)
{
    for (unsigned i = 0; i < res->n_failures; i++)
        if (strstr(res->failures[i], text) != NULL)
            return true;
    return false;
}

static void run_basic_scenario_passes(void **state)
{
    struct fixture *fx = *state;
    struct harness_result res;

    run(fx,
        "{\"name\":\"t\",\"levels\":[\"basic\"],\"core\":{\"connect_timeout_ms\":200},"
        "\"gateway\":{\"rules\":[{\"match\":{\"phase\":\"accept\",\"conn\":1},"
        "\"action\":{\"type\":\"silent\"}}]},"
        "\"steps\":["
        "{\"core\":\"acquire\",\"deadline_ms\":2000,"
        " \"expect\":{\"status\":\"timeout\",\"after_ms\":180,\"within_ms\":400}},"
        "{\"core\":\"acquire\",\"count\":3,\"concurrency\":1,\"hold_ms\":20,"
        " \"expect\":{\"status\":\"ok\",\"stats\":{\"live\":{\"min\":1}}}},"
        "{\"gateway\":\"drop_all\"},"
        "{\"wait_ms\":30},"
        "{\"core\":\"status\",\"expect\":{\"pool_status\":{\"breaker.state\":\"closed\"}}}],"
        "\"expect\":{\"journal\":{\"accepted\":2,\"client_ids\":[1]},"
        "\"telemetry\":{\"transitions\":[]}}}",
        &res);
    dump(&res);
    assert_int_equal(res.verdict, HARNESS_PASS);
    assert_int_equal(res.n_failures_total, 0);
    assert_int_equal(res.seed, 1);
    assert_non_null(strstr(res.measure, "4 ops"));
    harness_result_clear(&res);
}

static void run_wrong_expectations_fail_with_paths(void **state)
{
    struct fixture *fx = *state;
    struct harness_result res;

    run(fx,
        "{\"name\":\"t\",\"levels\":[\"basic\"],\"seed\":9,"
        "\"steps\":[{\"core\":\"acquire\",\"expect\":{\"status\":\"timeout\",\"client_ids\":[3]}},"
        "{\"gateway\":\"admin\",\"method\":\"GET\",\"path\":\"/v1/nothing\"}],"
        "\"expect\":{\"stats\":{\"created\":2},\"journal\":{\"accepted\":0},"
        "\"pool_status\":{\"breaker.state\":\"open\"}}}",
        &res);
    assert_int_equal(res.verdict, HARNESS_FAIL);
    assert_int_equal(res.seed, 9);
    assert_true(has_failure(&res, "$.steps[0].expect.status: operation 1 of 1 ended \"ok\""));
    assert_true(has_failure(&res, "$.steps[0].expect.client_ids: the successes had client ids "
                                  "[1], expected [3]"));
    assert_true(has_failure(&res, "$.steps[1].expect.status: GET /v1/nothing answered HTTP 404"));
    assert_true(has_failure(&res, "$.expect.stats.created: is 1, expected 2"));
    assert_true(has_failure(&res, "$.expect.journal.accepted: the gateway accepted 1 "
                                  "connections, expected 0"));
    assert_true(has_failure(&res, "$.expect.pool_status.breaker.state: is \"closed\", expected "
                                  "\"open\""));
    /* Wrong expectations are not broken invariants. */
    assert_false(has_failure(&res, "invariant"));
    harness_result_clear(&res);
}

static void run_step_cut_at_its_deadline(void **state)
{
    struct fixture *fx = *state;
    struct harness_result res;
    uint64_t t0 = uv_hrtime();

    /* The counter never gets there: the step ends at its timeout, the scenario stops there,
     * and teardown still closes everything (the invariants would say otherwise). */
    run(fx,
        "{\"name\":\"t\",\"levels\":[\"basic\"],"
        "\"steps\":[{\"core\":\"wait_stats\",\"until\":{\"created\":5},\"timeout_ms\":200},"
        "{\"core\":\"acquire\"}]}",
        &res);
    assert_int_equal(res.verdict, HARNESS_FAIL);
    assert_true(has_failure(&res, "$.steps[0] (wait_stats): did not complete within its 200 ms"));
    assert_false(has_failure(&res, "invariant"));
    assert_true((uv_hrtime() - t0) / 1000000u < 2000);
    harness_result_clear(&res);
}

static void run_pool_close_ends_pending_acquires(void **state)
{
    struct fixture *fx = *state;
    struct harness_result res;

    run(fx,
        "{\"name\":\"t\",\"levels\":[\"basic\"],\"core\":{\"max_size\":1},"
        "\"steps\":[{\"core\":\"acquire\",\"keep\":true},"
        "{\"core\":\"acquire\",\"count\":4,\"async\":true,"
        " \"expect\":{\"status\":\"shutdown\",\"statuses\":{\"shutdown\":4}}},"
        "{\"core\":\"close\"},"
        "{\"core\":\"status\"}]}",
        &res);
    assert_int_equal(res.verdict, HARNESS_FAIL);
    /* Only the status after close fails; the closed pool's acquires ended once each. */
    assert_int_equal(res.n_failures_total, 1);
    assert_true(has_failure(&res, "$.steps[3]: status needs the pool, which is closed"));
    harness_result_clear(&res);
}

static void run_external_gateway_without_admin_skips(void **state)
{
    struct fixture *fx = *state;
    struct harness_scenario *sc =
        scenario("{\"name\":\"t\",\"levels\":[\"basic\"],\"steps\":[{\"gateway\":\"drop_all\"}]}");
    struct harness_run_opts o;
    struct harness_result res;

    harness_run_opts_init(&o);
    o.gateway_host = "127.0.0.1";
    o.gateway_port = 9; /* never connected to: the scenario needs the admin API */
    assert_int_equal(harness_run(&fx->loop, sc, &o, &res), 0);
    assert_int_equal(res.verdict, HARNESS_SKIP);
    assert_string_equal(res.skip_reason, "needs the gateway's admin API (--admin HOST:PORT)");
    harness_result_clear(&res);
    harness_scenario_free(sc);
}

static void on_interrupt_timer(uv_timer_t *t)
{
    (void)t;
    harness_interrupt(SIGTERM);
}

/* The wait in progress ends at once; the one failure says where; the teardown still runs (the
 * fixture's teardown fails on a leaked handle); the next run stops before its first step. */
static void run_interrupted_stops_at_the_next_wait(void **state)
{
    struct fixture *fx = *state;
    struct harness_result res;
    uv_timer_t t;
    const char *json = "{\"name\":\"t\",\"levels\":[\"basic\"],\"steps\":["
                       "{\"core\":\"acquire\",\"expect\":{\"status\":\"ok\"}},"
                       "{\"wait_ms\":20000}],"
                       "\"expect\":{\"journal\":{\"accepted\":5}}}";

    uv_timer_init(&fx->loop, &t);
    uv_timer_start(&t, on_interrupt_timer, 300, 0);
    run(fx, json, &res);
    dump(&res);
    assert_int_equal(harness_interrupted(), SIGTERM);
    assert_int_equal(res.verdict, HARNESS_FAIL);
    assert_int_equal(res.n_failures_total, 1); /* not the journal expectation: never checked */
    assert_string_equal(res.failures[0],
                        "interrupted by SIGTERM during $.steps[1] (wait 20000 ms); torn down");
    assert_in_range(res.duration_ms, 250, 5000);
    harness_result_clear(&res);

    run(fx, json, &res);
    dump(&res);
    assert_int_equal(res.n_failures_total, 1);
    assert_non_null(strstr(res.failures[0], "interrupted by SIGTERM"));
    assert_in_range(res.duration_ms, 0, 5000);
    harness_result_clear(&res);
    harness_interrupt_clear();
    assert_int_equal(harness_interrupted(), 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* t lives on this stack */
}

/* Linked with -Wl,--wrap=uv_update_time: the runner reads the loop's clock through it when an
 * operation starts. A stall armed here models the harness descheduled (or page-faulting) right
 * there, between the operation's start and the core's call. */
void __real_uv_update_time(uv_loop_t *loop);
void __wrap_uv_update_time(uv_loop_t *loop);

static unsigned stall_ms;

void __wrap_uv_update_time(uv_loop_t *loop)
{
    if (stall_ms > 0)
        usleep(stall_ms * 1000u);
    __real_uv_update_time(loop);
}

/* The deadline judged is the one the core got: an acquire that ends at its deadline after a
 * stall at its start is on time (the 1-hour soak reported one such acquire "27 ms after its
 * deadline": the runner had taken the time before the stall, the core after it). */
static void run_stall_at_an_operation_start_is_not_lateness(void **state)
{
    struct fixture *fx = *state;
    struct harness_result res;

    stall_ms = 60; /* past the 20 ms slack, and no loop lag is near the deadline */
    run(fx,
        "{\"name\":\"t\",\"levels\":[\"basic\"],\"core\":{\"connect_timeout_ms\":5000},"
        "\"gateway\":{\"rules\":[{\"match\":{\"phase\":\"accept\"},"
        "\"action\":{\"type\":\"silent\"}}]},"
        "\"steps\":[{\"core\":\"acquire\",\"deadline_ms\":150,"
        " \"expect\":{\"status\":\"timeout\",\"after_ms\":140,\"within_ms\":1000}},"
        "{\"core\":\"acquire\",\"deadline_ms\":150,\"async\":true,"
        " \"expect\":{\"status\":\"timeout\"}},"
        "{\"wait_ms\":300}]}",
        &res);
    stall_ms = 0;
    dump(&res);
    assert_false(has_failure(&res, "after its deadline"));
    assert_int_equal(res.verdict, HARNESS_PASS);
    harness_result_clear(&res);
}

/* ---- the HTTP client ------------------------------------------------------------------------- */

static void run_until(struct fixture *fx, const int *calls)
{
    while (*calls == 0 && !fx->hung)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_false(fx->hung);
}

static void on_stopped(struct mgw_server *srv, void *data)
{
    (void)srv;
    *(int *)data = 1;
}

static void http_answers_refuses_and_cancels(void **state)
{
    struct fixture *fx = *state;
    struct mgw_config cfg;
    struct mgw_server *srv;
    struct mgw_err err;
    struct harness_http *h;
    struct http_answer g = { 0 };
    int stopped = 0, admin;

    mgw_config_init(&cfg);
    cfg.listen_port = 0;
    cfg.admin_port = 0;
    srv = mgw_server_new(&fx->loop, &cfg, &err);
    assert_non_null(srv);
    assert_int_equal(mgw_server_start(srv, &err), 0);
    admin = mgw_server_admin_port(srv);

    assert_int_equal(harness_http_request(&fx->loop, "127.0.0.1", admin, "GET", "/v1/status", NULL,
                                          2000, on_http_answer, &g, NULL),
                     0);
    assert_int_equal(g.calls, 0); /* never inside the call */
    run_until(fx, &g.calls);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.http_status, 200);
    assert_non_null(strstr(g.body, "\"journal_seq\""));

    memset(&g, 0, sizeof g);
    assert_int_equal(harness_http_request(&fx->loop, "127.0.0.1", admin, "PUT", "/v1/rules",
                                          "{\"rules\":[{\"action\":{\"type\":\"x\"}}]}", 2000,
                                          on_http_answer, &g, NULL),
                     0);
    run_until(fx, &g.calls);
    assert_int_equal(g.http_status, 400);
    assert_non_null(strstr(g.body, "unknown action"));

    memset(&g, 0, sizeof g);
    assert_int_equal(harness_http_request(&fx->loop, "127.0.0.1", admin, "GET", "/v1/status", NULL,
                                          2000, on_http_answer, &g, &h),
                     0);
    harness_http_cancel(h);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, UV_ECANCELED);

    assert_int_equal(mgw_server_stop(srv, on_stopped, &stopped), 0);
    run_until(fx, &stopped);
    mgw_server_free(srv);

    /* Nothing listens there now. */
    memset(&g, 0, sizeof g);
    assert_int_equal(harness_http_request(&fx->loop, "127.0.0.1", admin, "GET", "/", NULL, 2000,
                                          on_http_answer, &g, NULL),
                     0);
    run_until(fx, &g.calls);
    assert_int_equal(g.status, UV_ECONNREFUSED);
    assert_int_equal(harness_http_request(&fx->loop, "localhost", admin, "GET", "/", NULL, 2000,
                                          on_http_answer, &g, NULL),
                     UV_EINVAL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 1);
}

static void on_connection(uv_stream_t *server, int status)
{
    (void)server;
    (void)status; /* never accepted: the client waits for an answer that never comes */
}

static void http_times_out_on_a_silent_server(void **state)
{
    struct fixture *fx = *state;
    struct sockaddr_storage ss;
    struct sockaddr_in addr;
    struct http_answer g = { 0 };
    uv_tcp_t listener;
    int len = sizeof ss;
    uint64_t t0;

    /* A listener that never accepts: the kernel completes the connect, nobody answers. */
    uv_tcp_init(&fx->loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, on_connection), 0);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
    t0 = uv_hrtime();
    assert_int_equal(harness_http_request(&fx->loop, "127.0.0.1",
                                          ntohs(((struct sockaddr_in *)&ss)->sin_port), "GET", "/",
                                          NULL, 150, on_http_answer, &g, NULL),
                     0);
    run_until(fx, &g.calls);
    assert_int_equal(g.status, UV_ETIMEDOUT);
    assert_true((uv_hrtime() - t0) / 1000000u >= 140);
    uv_close((uv_handle_t *)&listener, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(run_basic_scenario_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(run_wrong_expectations_fail_with_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(run_step_cut_at_its_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(run_pool_close_ends_pending_acquires, setup, teardown),
        cmocka_unit_test_setup_teardown(run_external_gateway_without_admin_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(run_interrupted_stops_at_the_next_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(run_stall_at_an_operation_start_is_not_lateness, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_answers_refuses_and_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(http_times_out_on_a_silent_server, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
