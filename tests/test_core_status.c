/* The pool's status JSON and 0..100 score against the real mockgw library, in this process, on
 * loopback: computed from live state (breaker, healthy connections, probe window, zombies,
 * client id), bounded, monotone under degradation, and the JSON parses with every key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <cmocka.h>
#include <uv.h>

#include "ibcore.h"
#include "mockgw.h"
#include "server.h"

#define FIXTURE_NAME "test_core_status"
#include "core_pool_fixture.h"

/* ------------------------------------------------------------------------------------------ */

/* Every score is bounded and its total is the sum of its parts (or 0: open, nothing healthy). */
static struct ibcore_score score(struct fixture *fx)
{
    struct ibcore_score s;
    unsigned sum;

    assert_int_equal(ibcore_pool_score(fx->pool, &s), 0);
    assert_true(s.breaker <= 30 && s.connectivity <= 25 && s.probe_health <= 20);
    assert_true(s.latency <= 10 && s.zombies <= 10 && s.client_id <= 5);
    assert_true(s.total <= 100);
    sum = s.breaker + s.connectivity + s.probe_health + s.latency + s.zombies + s.client_id;
    if (s.breaker == 0 && s.connectivity == 0)
        assert_int_equal(s.total, 0);
    else
        assert_int_equal(s.total, sum);
    return s;
}

static cJSON *status(struct fixture *fx)
{
    char *js = ibcore_pool_status_json(fx->pool);
    cJSON *root;

    assert_non_null(js);
    root = cJSON_Parse(js);
    if (root == NULL)
        fail_msg("status JSON does not parse: %s", js);
    free(js);
    return root;
}

static int num(const cJSON *root, const char *obj, const char *key)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, obj);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    assert_true(cJSON_IsNumber(v));
    return v->valueint;
}

static void status_healthy_pool_scores_100(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;
    struct ibcore_score s;

    start_server(fx, NULL);
    new_pool(fx, NULL);
    s = score(fx);
    assert_int_equal(s.connectivity, 0); /* nothing connected yet: not 100 */
    assert_int_equal(s.client_id, 0);
    assert_true(s.total < 100);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    run_for(fx, 1100);
    assert_int_equal(acquire(fx, &b, 3000), 0); /* validated by a probe */
    assert_int_equal(ibcore_conn_client_id(b.conn), 1);
    assert_int_equal(stats(fx).probes, 1);
    s = score(fx);
    assert_int_equal(s.breaker, 30);
    assert_int_equal(s.connectivity, 25);
    assert_int_equal(s.probe_health, 20);
    assert_int_equal(s.latency, 10);
    assert_int_equal(s.zombies, 10);
    assert_int_equal(s.client_id, 5);
    assert_int_equal(s.total, 100);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    assert_int_equal(score(fx).total, 100); /* idle and healthy */
    pool_close(fx);
}

static void status_breaker_open_and_nothing_healthy_is_0(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breakers *reg;
    struct ibcore_breaker *br;
    struct ibcore_score s;
    struct got a;
    cJSON *root;
    const cJSON *st;

    start_server(fx, NULL);
    reg = ibcore_breakers_new(&fx->loop, NULL, NULL, NULL);
    assert_non_null(reg);
    new_pool(fx, reg);
    br = ibcore_breakers_get(reg, "127.0.0.1", fx->port);
    ibcore_breaker_force_open(br);
    assert_int_equal(acquire(fx, &a, 3000), IBCORE_EBREAKER);
    s = score(fx);
    assert_int_equal(s.breaker, 0);
    assert_int_equal(s.connectivity, 0);
    assert_int_equal(s.total, 0);
    root = status(fx);
    st = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "breaker"),
                                          "state");
    assert_true(cJSON_IsString(st));
    assert_string_equal(st->valuestring, ibcore_breaker_state_name(IBCORE_BREAKER_FORCED_OPEN));
    assert_int_equal(num(root, "score", "total"), 0);
    cJSON_Delete(root);
    /* disabled: half the breaker's points, still 0 connectivity */
    ibcore_breaker_disable(br);
    assert_int_equal(score(fx).breaker, 15);
    ibcore_breaker_reset(br);
    assert_int_equal(score(fx).breaker, 30);
    pool_close(fx);
    ibcore_breakers_close(reg, NULL, NULL);
}

static void status_fallback_id_scores_3(void **state)
{
    struct fixture *fx = *state;
    struct got a;
    struct ibcore_score s;
    cJSON *root;
    const cJSON *ids, *q;

    start_server(fx, "{\"settings\":{\"busy_client_ids\":[1]}}");
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_conn_client_id(a.conn), 2);
    s = score(fx);
    assert_int_equal(s.client_id, 3);
    assert_int_equal(s.total, 98);
    root = status(fx);
    ids = cJSON_GetObjectItemCaseSensitive(root, "client_ids");
    assert_int_equal(num(root, "client_ids", "first"), 1);
    assert_int_equal(num(root, "client_ids", "cap"), 3);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ids, "in_use")), 1);
    assert_int_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ids, "in_use"), 0)->valueint, 2);
    q = cJSON_GetObjectItemCaseSensitive(ids, "quarantined");
    assert_int_equal(cJSON_GetArraySize(q), 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(q, 0), "id")->valueint, 1);
    cJSON_Delete(root);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    pool_close(fx);
}

/* Degradations, one at a time, never raise the total; a failed probe lowers probe_health. */
static void status_failed_probe_and_degradations_are_monotone(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_breakers *reg;
    struct ibcore_breaker *br;
    struct ibcore_score s0, s1, s2, s3;
    struct got a, b;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"request\",\"conn\":1},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    reg = ibcore_breakers_new(&fx->loop, NULL, NULL, NULL);
    assert_non_null(reg);
    new_pool(fx, reg);
    br = ibcore_breakers_get(reg, "127.0.0.1", fx->port);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    s0 = score(fx);
    assert_int_equal(s0.total, 100);
    ibcore_breaker_force_open(br); /* healthy connection, breaker open */
    s1 = score(fx);
    assert_true(s1.total <= s0.total);
    assert_int_equal(s1.total, 70);
    ibcore_breaker_reset(br);
    assert_int_equal(score(fx).total, 100);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    run_for(fx, 1100);
    assert_int_equal(acquire(fx, &b, 5000), 0); /* conn 1's probe times out: conn 2 (id 2) */
    assert_int_equal(ibcore_conn_client_id(b.conn), 2);
    s2 = score(fx);
    assert_true(s2.total <= s0.total);
    assert_true(s2.probe_health < s0.probe_health);
    assert_int_equal(s2.probe_health, 0);
    assert_int_equal(s2.latency, 0); /* a failed probe counts as the probe timeout */
    assert_int_equal(s2.client_id, 3);
    assert_int_equal(s2.connectivity, 25);
    ibcore_breaker_force_open(br);
    s3 = score(fx);
    assert_true(s3.total <= s2.total);
    ibcore_breaker_reset(br);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
    ibcore_breakers_close(reg, NULL, NULL);
}

static void status_waiting_acquire_lowers_connectivity(void **state)
{
    struct fixture *fx = *state;
    struct got a, b;
    struct ibcore_score s0, s1;

    start_server(fx, NULL);
    fx->pc.max_size = 1;
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    s0 = score(fx);
    acquire_start(fx, &b, 3000); /* waits: max size */
    run_for(fx, 20);
    s1 = score(fx);
    assert_int_equal(s1.connectivity, 12); /* 25 * 1 / 2 */
    assert_true(s1.total < s0.total);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    RUN_UNTIL(fx, b.calls > 0);
    assert_int_equal(score(fx).total, s0.total);
    assert_int_equal(ibcore_pool_release(fx->pool, b.conn), 0);
    pool_close(fx);
}

static void status_json_has_every_key(void **state)
{
    struct fixture *fx = *state;
    struct got a;
    cJSON *root;
    static const char *const objs[] = { "score",      "breaker", "pool",    "client_ids",
                                        "validation", "idle_gc", "zombies", "lock" };
    static const char *const score_keys[] = { "total",   "breaker", "connectivity", "probe_health",
                                              "latency", "zombies", "client_id" };
    const cJSON *v, *w;

    start_server(fx, NULL);
    new_pool(fx, NULL);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    run_for(fx, 1100);
    assert_int_equal(acquire(fx, &a, 3000), 0);
    root = status(fx);
    for (size_t i = 0; i < sizeof objs / sizeof *objs; i++)
        assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, objs[i])));
    for (size_t i = 0; i < sizeof score_keys / sizeof *score_keys; i++)
        (void)num(root, "score", score_keys[i]);
    assert_int_equal(num(root, "score", "total"), 100);
    (void)num(root, "breaker", "consecutive_failures");
    (void)num(root, "breaker", "retry_in_ms");
    assert_int_equal(num(root, "pool", "in_use"), 1);
    assert_int_equal(num(root, "pool", "created"), 1);
    assert_int_equal(num(root, "validation", "probes"), 1);
    assert_int_equal(num(root, "validation", "probe_failures"), 0);
    (void)num(root, "validation", "p95_ms");
    v = cJSON_GetObjectItemCaseSensitive(root, "validation");
    w = cJSON_GetObjectItemCaseSensitive(v, "window");
    assert_int_equal(cJSON_GetArraySize(w), 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(w, 0), "ok")));
    assert_int_equal(num(root, "zombies", "own"), 0);
    assert_int_equal(num(root, "zombies", "foreign"), 0);
    v = cJSON_GetObjectItemCaseSensitive(root, "lock");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(v, "path")->valuestring, fx->lock_path);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "enabled")));
    cJSON_Delete(root);
    assert_int_equal(ibcore_pool_release(fx->pool, a.conn), 0);
    pool_close(fx);
}

/* Strings are escaped: a lock path with a quote, a backslash and a newline round-trips. */
static void status_lock_path_is_escaped(void **state)
{
    struct fixture *fx = *state;
    cJSON *root;
    const cJSON *v;

    start_server(fx, NULL);
    snprintf(fx->lock_path, sizeof fx->lock_path, "/tmp/st\"a\\t\n.%d", (int)getpid());
    new_pool(fx, NULL);
    root = status(fx);
    v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "lock"), "path");
    assert_string_equal(v->valuestring, fx->lock_path);
    cJSON_Delete(root);
    pool_close(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(status_healthy_pool_scores_100),
        T(status_breaker_open_and_nothing_healthy_is_0),
        T(status_fallback_id_scores_3),
        T(status_failed_probe_and_degradations_are_monotone),
        T(status_waiting_acquire_lowers_connectivity),
        T(status_json_has_every_key),
        T(status_lock_path_is_escaped),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
