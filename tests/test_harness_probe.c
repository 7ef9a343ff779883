/* The probe and its HTTP server on one loop: once against an in-process mockgw (healthy, score
 * 100) and against a closed port (not healthy, "refused"); served, the three endpoints answer
 * with the right status codes and fields, unknown paths get 404, other methods 405, oversized
 * heads 431 and bodies 413; stopping closes everything (the loop closes clean). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <uv.h>

#include "harness.h"
#include "http_answer.h"
#include "mockgw.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool hung;
    struct mgw_server *srv;
    bool srv_stopped;
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
    struct mgw_config cfg;
    struct mgw_err err;

    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = fx;
    uv_timer_start(&fx->watchdog, on_watchdog, 20000, 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
    mgw_config_init(&cfg);
    cfg.listen_host = "127.0.0.1";
    cfg.listen_port = 0;
    cfg.admin_enabled = false;
    cfg.admin_host = NULL;
    fx->srv = mgw_server_new(&fx->loop, &cfg, &err);
    assert_non_null(fx->srv);
    assert_int_equal(mgw_server_start(fx->srv, &err), 0);
    *state = fx;
    return 0;
}

static void on_srv_stopped(struct mgw_server *srv, void *data)
{
    (void)srv;
    ((struct fixture *)data)->srv_stopped = true;
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
    if (fx->srv != NULL) {
        assert_int_equal(mgw_server_stop(fx->srv, on_srv_stopped, fx), 0);
        while (!fx->srv_stopped)
            uv_run(&fx->loop, UV_RUN_ONCE);
        mgw_server_free(fx->srv);
    }
    uv_walk(&fx->loop, close_walk, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* a leaked handle fails the test */
    free(fx);
    return 0;
}

static void probe_once_healthy_gateway(void **state)
{
    struct fixture *fx = *state;
    struct harness_probe_opts o;
    struct harness_probe_result res;
    cJSON *doc;
    const cJSON *p;

    harness_probe_opts_init(&o);
    o.port = mgw_server_api_port(fx->srv);
    o.timeout_ms = 3000;
    assert_int_equal(harness_probe_once(&fx->loop, &o, &res), 0);
    assert_int_equal(res.acquire_status, 0);
    assert_int_equal(res.score, 100);
    assert_true(res.healthy);
    assert_non_null(doc = cJSON_Parse(res.status_json));
    p = cJSON_GetObjectItemCaseSensitive(doc, "probe");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(p, "acquire")->valuestring, "ok");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "healthy")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(doc, "client_ids"), "first")
                         ->valueint,
                     99);
    cJSON_Delete(doc);
    harness_probe_result_clear(&res);
}

static void probe_once_closed_port_not_healthy(void **state)
{
    struct fixture *fx = *state;
    struct harness_probe_opts o;
    struct harness_probe_result res;

    harness_probe_opts_init(&o);
    o.port = mgw_server_api_port(fx->srv);
    /* The gateway goes away first: nothing listens on its port now. */
    assert_int_equal(mgw_server_stop(fx->srv, on_srv_stopped, fx), 0);
    while (!fx->srv_stopped)
        uv_run(&fx->loop, UV_RUN_ONCE);
    mgw_server_free(fx->srv);
    fx->srv = NULL;
    o.timeout_ms = 2000;
    assert_int_equal(harness_probe_once(&fx->loop, &o, &res), 0);
    assert_int_equal(res.acquire_status, UV_ECONNREFUSED);
    assert_false(res.healthy);
    assert_true(res.score < 75);
    assert_non_null(strstr(res.status_json, "\"acquire\":\"refused\""));
    harness_probe_result_clear(&res);

    o.host = "not-an-address";
    assert_int_equal(harness_probe_once(&fx->loop, &o, &res), UV_EINVAL);
}

/* ---- serving --------------------------------------------------------------------------------- */

static void get(struct fixture *fx, int port, const char *method, const char *target,
                const char *body, struct http_answer *a)
{
    memset(a, 0, sizeof *a);
    assert_int_equal(harness_http_request(&fx->loop, "127.0.0.1", port, method, target, body, 3000,
                                          on_http_answer, a, NULL),
                     0);
    while (a->calls == 0 && !fx->hung)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->status, 0);
}

static void on_probe_stopped(void *data)
{
    ++*(int *)data;
}

static void probe_serve_endpoints(void **state)
{
    struct fixture *fx = *state;
    struct harness_probe_opts o;
    struct harness_probe *p;
    struct harness_err err;
    struct http_answer a;
    char target[2048];
    int port, stopped = 0;
    cJSON *doc;

    harness_probe_opts_init(&o);
    o.port = mgw_server_api_port(fx->srv);
    o.timeout_ms = 2000;
    o.interval_ms = 200;
    assert_int_equal(harness_probe_serve(&fx->loop, &o, "127.0.0.1", 0, &p, &err), 0);
    port = harness_probe_port(p);
    assert_true(port > 0);
    /* The first acquire runs at once; wait for health to say so. */
    for (int i = 0; i < 100; i++) {
        get(fx, port, "GET", "/api/v1/ib/health", NULL, &a);
        if (a.http_status == 200)
            break;
    }
    assert_int_equal(a.http_status, 200);
    assert_non_null(strstr(a.body, "\"status\":\"healthy\""));

    get(fx, port, "GET", "/api/v1/ib/resilience", NULL, &a);
    assert_int_equal(a.http_status, 200);
    assert_non_null(doc = cJSON_Parse(a.body));
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "score"), "total")
            ->valueint,
        100);
    cJSON_Delete(doc);

    get(fx, port, "GET", "/api/v1/ib/status?x=1", NULL, &a);
    assert_int_equal(a.http_status, 200);
    assert_non_null(doc = cJSON_Parse(a.body));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "data"),
                                                      "overall_resilience_score")
                         ->valueint,
                     100);
    cJSON_Delete(doc);

    get(fx, port, "GET", "/api/v1/ib/other", NULL, &a);
    assert_int_equal(a.http_status, 404);
    get(fx, port, "DELETE", "/api/v1/ib/health", NULL, &a);
    assert_int_equal(a.http_status, 405);
    get(fx, port, "POST", "/api/v1/ib/health", "{}", &a);
    assert_true(a.http_status == 405 || a.http_status == 413);
    memset(target, 'a', sizeof target - 1);
    target[0] = '/';
    target[sizeof target - 1] = '\0';
    get(fx, port, "GET", target, NULL, &a);
    assert_int_equal(a.http_status, 431);

    harness_probe_stop(p, on_probe_stopped, &stopped);
    while (stopped == 0 && !fx->hung)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(stopped, 1);

    /* A port in use: the error names the address. */
    assert_true(harness_probe_serve(&fx->loop, &o, "127.0.0.1", mgw_server_api_port(fx->srv), &p,
                                    &err) < 0);
    assert_non_null(strstr(err.msg, "127.0.0.1:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(probe_once_healthy_gateway, setup, teardown),
        cmocka_unit_test_setup_teardown(probe_once_closed_port_not_healthy, setup, teardown),
        cmocka_unit_test_setup_teardown(probe_serve_endpoints, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
