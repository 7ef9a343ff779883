/* The scenario loader: every error names the file, the JSON path and the reason (exact
 * messages), unknown keys are errors, the core config table covers every field, and every
 * scenario file in the tree loads. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "harness.h"

/* A minimal valid document with one place to vary: %s is spliced in as more top-level keys. */
#define DOC(extra) \
    "{\"name\":\"t\",\"levels\":[\"basic\"],\"steps\":[{\"core\":\"acquire\"}]" extra "}"
#define STEP(step) "{\"name\":\"t\",\"levels\":[\"basic\"],\"steps\":[" step "]}"

static struct harness_scenario *parse(const char *json, struct harness_err *err)
{
    size_t len = strlen(json);
    char *copy = malloc(len ? len : 1); /* exact size: ASan sees any over-read */
    struct harness_scenario *sc;

    memcpy(copy, json, len);
    sc = harness_scenario_parse(copy, len, "s.json", err);
    free(copy);
    return sc;
}

static void expect_error(const char *json, const char *msg)
{
    struct harness_err err;
    struct harness_scenario *sc = parse(json, &err);

    if (sc != NULL) {
        harness_scenario_free(sc);
        fail_msg("parsed, expected: %s", msg);
    }
    if (strcmp(err.msg, msg) != 0)
        fail_msg("got      %s\nexpected %s", err.msg, msg);
}

static struct harness_scenario *expect_ok(const char *json)
{
    struct harness_err err;
    struct harness_scenario *sc = parse(json, &err);

    if (sc == NULL)
        fail_msg("%s", err.msg);
    return sc;
}

static void scenario_rejects_bad_json(void **state)
{
    (void)state;
    expect_error("", "s.json: empty file, expected a JSON object");
    expect_error("  \n", "s.json: empty file, expected a JSON object");
    expect_error("{\"name\": }", "s.json: invalid JSON at line 1, column 10");
    expect_error("{\n  \"name\": \"x\",\n  ]", "s.json: invalid JSON at line 3, column 3");
    expect_error(DOC("") " {}",
                 "s.json: invalid JSON at line 1, column 61: text after the document");
    expect_error("[1]", "s.json: $: expected an object");
    expect_error("\"x\"", "s.json: $: expected an object");
}

static void scenario_rejects_nul_byte(void **state)
{
    static const char doc[] = "{\"name\":\"t\"\0}";
    struct harness_err err;

    (void)state;
    assert_null(harness_scenario_parse(doc, sizeof doc - 1, "s.json", &err));
    assert_string_equal(err.msg, "s.json: NUL byte at line 1, column 12");
}

static void scenario_rejects_unknown_keys(void **state)
{
    (void)state;
    expect_error(DOC(",\"stesp\":[]"),
                 "s.json: $.stesp: unknown key \"stesp\" (did you mean \"steps\"?)");
    expect_error(DOC(",\"zzz\":1"), "s.json: $.zzz: unknown key \"zzz\"");
    expect_error(DOC(",\"name\":\"u\""), "s.json: $.name: key given twice");
    expect_error(DOC(",\"core\":{\"max_sise\":2}"),
                 "s.json: $.core.max_sise: unknown key \"max_sise\" (did you mean \"max_size\"?)");
    expect_error(
        DOC(",\"core\":{\"breaker\":{\"opn_ms\":1}}"),
        "s.json: $.core.breaker.opn_ms: unknown key \"opn_ms\" (did you mean \"open_ms\"?)");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"withn_ms\":1}}"),
                 "s.json: $.steps[0].expect.withn_ms: unknown key \"withn_ms\" (did you mean "
                 "\"within_ms\"?)");
    expect_error(STEP("{\"core\":\"release\",\"expect\":{\"client_ids\":[1]}}"),
                 "s.json: $.steps[0].expect.client_ids: unknown key \"client_ids\"");
    expect_error(STEP("{\"core\":\"acquire\",\"deadline\":5}"),
                 "s.json: $.steps[0].deadline: unknown key \"deadline\" (did you mean "
                 "\"deadline_ms\"?)");
    expect_error(STEP("{\"wait_ms\":5,\"expect\":{}}"),
                 "s.json: $.steps[0].expect: unknown key \"expect\"");
    expect_error(DOC(",\"expect\":{\"journal\":{\"acepted\":1}}"),
                 "s.json: $.expect.journal.acepted: unknown key \"acepted\" (did you mean "
                 "\"accepted\"?)");
    expect_error(DOC(",\"expect\":{\"journal\":{\"events\":{\"acept\":1}}}"),
                 "s.json: $.expect.journal.events.acept: unknown key \"acept\" (did you mean "
                 "\"accept\"?)");
    expect_error(DOC(",\"expect\":{\"stats\":{\"lives\":1}}"),
                 "s.json: $.expect.stats.lives: unknown key \"lives\" (did you mean \"live\"?)");
    expect_error(DOC(",\"expect\":{\"telemetry\":{\"events\":{\"transitions\":1}}}"),
                 "s.json: $.expect.telemetry.events.transitions: unknown key \"transitions\" (did "
                 "you mean \"transition\"?)");
    expect_error(DOC(",\"expect\":{\"status\":\"ok\"}"),
                 "s.json: $.expect.status: unknown key \"status\" (did you mean \"stats\"?)");
}

static void scenario_requires_name_levels_steps(void **state)
{
    (void)state;
    expect_error("{\"levels\":[\"basic\"],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.name: required");
    expect_error("{\"name\":\"t\",\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.levels: required (e.g. [\"basic\"])");
    expect_error("{\"name\":\"t\",\"levels\":[\"basic\"]}",
                 "s.json: $.steps: required (at least one step)");
    expect_error("{\"name\":\"t\",\"levels\":[\"basic\"],\"steps\":[]}",
                 "s.json: $.steps: must not be empty");
    expect_error("{\"name\":\"T x\",\"levels\":[\"basic\"],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.name: use lower-case letters, digits, '-' and '_' only");
    expect_error("{\"name\":\"\",\"levels\":[\"basic\"],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.name: must not be empty");
    expect_error("{\"name\":1,\"levels\":[\"basic\"],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.name: expected a string");
    expect_error("{\"name\":\"t\",\"levels\":[],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.levels: must not be empty");
    expect_error("{\"name\":\"t\",\"levels\":\"basic\",\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.levels: expected an array");
    expect_error("{\"name\":\"t\",\"levels\":[\"quick\"],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.levels[0]: unknown level \"quick\" (basic, standard, exhaustive)");
    expect_error("{\"name\":\"t\",\"levels\":[\"basic\",\"basic\"],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.levels[1]: level \"basic\" given twice");
    expect_error("{\"name\":\"t\",\"levels\":[1],\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.levels[0]: expected a string");
    expect_error("{\"name\":\"t\",\"levels\":[\"basic\"],\"steps\":{}}",
                 "s.json: $.steps: expected an array");
}

static void scenario_rejects_wrong_types(void **state)
{
    (void)state;
    expect_error(DOC(",\"timeout_ms\":-1"),
                 "s.json: $.timeout_ms: expected a non-negative integer");
    expect_error(DOC(",\"timeout_ms\":1.5"),
                 "s.json: $.timeout_ms: expected a non-negative integer");
    expect_error(DOC(",\"timeout_ms\":\"5\""),
                 "s.json: $.timeout_ms: expected a non-negative integer");
    expect_error(DOC(",\"timeout_ms\":600001"), "s.json: $.timeout_ms: must be at most 600000");
    expect_error(DOC(",\"seed\":true"), "s.json: $.seed: expected a non-negative integer");
    expect_error(DOC(",\"description\":[]"), "s.json: $.description: expected a string");
    expect_error(DOC(",\"core\":[]"), "s.json: $.core: expected an object");
    expect_error(DOC(",\"core\":{\"use_lock\":1}"),
                 "s.json: $.core.use_lock: expected true or false");
    expect_error(DOC(",\"core\":{\"max_size\":0}"), "s.json: $.core.max_size: must be at least 1");
    expect_error(DOC(",\"core\":{\"client_id_cap\":33}"),
                 "s.json: $.core.client_id_cap: must be at most 32");
    expect_error(DOC(",\"core\":{\"client_id_first\":-1}"),
                 "s.json: $.core.client_id_first: must be between 0 and 2147483615");
    expect_error(DOC(",\"core\":{\"lock_path\":\"\"}"),
                 "s.json: $.core.lock_path: must not be empty");
    expect_error(DOC(",\"core\":{\"probe_timeout_ms\":86400001}"),
                 "s.json: $.core.probe_timeout_ms: must be at most 86400000");
    expect_error(
        DOC(",\"core\":{\"port\":4002}"),
        "s.json: $.core.port: set by the harness (the gateway's address), not the scenario");
    expect_error(
        DOC(",\"core\":{\"host\":\"1.2.3.4\"}"),
        "s.json: $.core.host: set by the harness (the gateway's address), not the scenario");
    expect_error(DOC(",\"core\":{\"breaker\":{\"failure_threshold\":0}}"),
                 "s.json: $.core.breaker.failure_threshold: must be at least 1");
    expect_error(DOC(",\"core\":{\"breaker\":[]}"), "s.json: $.core.breaker: expected an object");
    expect_error(DOC(",\"measure_step\":1"),
                 "s.json: $.measure_step: no step 1 (the scenario has 1)");
}

static void scenario_rejects_bad_steps(void **state)
{
    (void)state;
    expect_error(STEP("1"), "s.json: $.steps[0]: expected an object");
    expect_error(STEP("{}"), "s.json: $.steps[0]: needs one of \"core\", \"gateway\", \"wait_ms\", "
                             "\"wait_journal\"");
    expect_error(
        STEP("{\"core\":\"acquire\",\"wait_ms\":1}"),
        "s.json: $.steps[0]: only one of \"core\", \"gateway\", \"wait_ms\", \"wait_journal\"");
    expect_error(STEP("{\"core\":\"fly\"}"),
                 "s.json: $.steps[0].core: unknown core action \"fly\" (acquire, release, request, "
                 "health_tick, wait_stats, status, close, hold_lock, recover, close_zombies, "
                 "stall)");
    expect_error(STEP("{\"gateway\":\"explode\"}"),
                 "s.json: $.steps[0].gateway: unknown gateway action \"explode\" (rules, "
                 "clear_rules, drop_all, reset_all, refuse, blackhole, accept, release_all, "
                 "restart, state, admin)");
    expect_error(STEP("{\"core\":7}"), "s.json: $.steps[0].core: expected a string");
    expect_error(STEP("{\"wait_ms\":-5}"),
                 "s.json: $.steps[0].wait_ms: expected a non-negative integer");
    expect_error(STEP("{\"core\":\"acquire\",\"count\":0}"),
                 "s.json: $.steps[0].count: must be at least 1");
    expect_error(STEP("{\"core\":\"acquire\",\"count\":10001}"),
                 "s.json: $.steps[0].count: must be at most 10000");
    expect_error(STEP("{\"core\":\"acquire\",\"keep\":true,\"hold_ms\":5}"),
                 "s.json: $.steps[0].keep: keep and hold_ms exclude each other");
    expect_error(STEP("{\"core\":\"acquire\",\"async\":\"yes\"}"),
                 "s.json: $.steps[0].async: expected true or false");
    expect_error(STEP("{\"core\":\"release\",\"conn\":0,\"count\":1}"),
                 "s.json: $.steps[0].conn: conn and count exclude each other");
    expect_error(STEP("{\"core\":\"request\",\"what\":\"positions\"}"),
                 "s.json: $.steps[0].what: expected \"current_time\"");
    expect_error(STEP("{\"core\":\"health_tick\",\"count\":1001}"),
                 "s.json: $.steps[0].count: must be at most 1000");
    expect_error(STEP("{\"core\":\"wait_stats\"}"),
                 "s.json: $.steps[0].until: required (pool counters to wait for)");
    expect_error(STEP("{\"core\":\"wait_stats\",\"until\":{}}"),
                 "s.json: $.steps[0].until: must not be empty");
    expect_error(STEP("{\"core\":\"hold_lock\"}"),
                 "s.json: $.steps[0].hold_ms: required (how long the lock is held)");
    expect_error(STEP("{\"core\":\"acquire\",\"timeout_ms\":0}"),
                 "s.json: $.steps[0].timeout_ms: must be at least 1");
    expect_error(STEP("{\"wait_ms\":1,\"note\":\"\"}"),
                 "s.json: $.steps[0].note: must not be empty");
}

static void scenario_rejects_bad_gateway(void **state)
{
    (void)state;
    /* The embedded script goes through mockgw's own loader, paths prefixed. */
    expect_error(DOC(",\"gateway\":{\"rules\":[{\"action\":{\"type\":\"explode\"}}]}"),
                 "s.json: $.gateway.rules[0].action.type: unknown action \"explode\"");
    expect_error(DOC(",\"gateway\":{\"rulez\":[]}"), "s.json: $.gateway.rulez: unknown key");
    expect_error(DOC(",\"gateway\":[]"), "s.json: $.gateway: expected an object");
    expect_error(STEP("{\"gateway\":\"rules\"}"),
                 "s.json: $.steps[0].rules: required (an array of rules; [] clears them)");
    expect_error(STEP("{\"gateway\":\"rules\",\"rules\":[{\"match\":{\"phase\":\"accept\"},"
                      "\"action\":{\"type\":\"ignore\"}}]}"),
                 "s.json: $.steps[0].rules[0].action.type: \"ignore\" needs match.phase "
                 "\"request\" (and no other phase)");
    expect_error(STEP("{\"gateway\":\"drop_all\",\"down_ms\":5}"),
                 "s.json: $.steps[0].down_ms: unknown key \"down_ms\"");
    expect_error(STEP("{\"gateway\":\"restart\",\"how\":\"kick\"}"),
                 "s.json: $.steps[0].how: expected \"close\" or \"reset\"");
    expect_error(STEP("{\"gateway\":\"restart\",\"down_ms\":86400001}"),
                 "s.json: $.steps[0].down_ms: must be at most 86400000");
    expect_error(STEP("{\"gateway\":\"state\"}"),
                 "s.json: $.steps[0].state: required (the named state to switch to)");
    expect_error(STEP("{\"gateway\":\"admin\",\"path\":\"/v1/status\"}"),
                 "s.json: $.steps[0].method: required (GET, POST, PUT, DELETE or HEAD)");
    expect_error(STEP("{\"gateway\":\"admin\",\"method\":\"PATCH\",\"path\":\"/v1/status\"}"),
                 "s.json: $.steps[0].method: expected GET, POST, PUT, DELETE or HEAD");
    expect_error(STEP("{\"gateway\":\"admin\",\"method\":\"GET\"}"),
                 "s.json: $.steps[0].path: required (e.g. \"/v1/actions/drop-all\")");
    expect_error(STEP("{\"gateway\":\"admin\",\"method\":\"GET\",\"path\":\"v1\"}"),
                 "s.json: $.steps[0].path: expected an absolute path without spaces, e.g. "
                 "\"/v1/status\"");
    expect_error(STEP("{\"gateway\":\"drop_all\",\"expect\":{\"http_status\":99}}"),
                 "s.json: $.steps[0].expect.http_status: must be between 100 and 599");
}

static void scenario_rejects_bad_expectations(void **state)
{
    (void)state;
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"within_ms\":-1}}"),
                 "s.json: $.steps[0].expect.within_ms: expected a non-negative integer");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"within_ms\":10,\"after_ms\":20}}"),
                 "s.json: $.steps[0].expect: after_ms is greater than within_ms");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"status\":\"okay\"}}"),
                 "s.json: $.steps[0].expect.status: unknown status \"okay\"");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"status\":[]}}"),
                 "s.json: $.steps[0].expect.status: must not be empty");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"status\":[\"ok\",3]}}"),
                 "s.json: $.steps[0].expect.status[1]: expected a string");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"status\":7}}"),
                 "s.json: $.steps[0].expect.status: expected a status name or an array of them");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"statuses\":{\"okk\":1}}}"),
                 "s.json: $.steps[0].expect.statuses.okk: unknown key \"okk\" (did you mean "
                 "\"ok\"?)");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"statuses\":{\"ok\":{}}}}"),
                 "s.json: $.steps[0].expect.statuses.ok: needs \"min\", \"max\" or both");
    expect_error(
        STEP("{\"core\":\"acquire\",\"expect\":{\"statuses\":{\"ok\":{\"min\":3,\"max\":2}}}}"),
        "s.json: $.steps[0].expect.statuses.ok: min is greater than max");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"statuses\":{\"ok\":{\"min\":-1}}}}"),
                 "s.json: $.steps[0].expect.statuses.ok.min: expected a non-negative integer");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"statuses\":{\"ok\":\"1\"}}}"),
                 "s.json: $.steps[0].expect.statuses.ok: expected a non-negative integer or "
                 "{\"min\": N, \"max\": M}");
    expect_error(STEP("{\"core\":\"acquire\",\"expect\":{\"client_ids\":[1,\"2\"]}}"),
                 "s.json: $.steps[0].expect.client_ids[1]: expected an integer");
    expect_error(STEP("{\"core\":\"status\",\"expect\":{\"pool_status\":{\"a..b\":1}}}"),
                 "s.json: $.steps[0].expect.pool_status.a..b: expected a dotted path such as "
                 "\"breaker.state\"");
    expect_error(STEP("{\"core\":\"status\",\"expect\":{\"pool_status\":{\"x\":[1]}}}"),
                 "s.json: $.steps[0].expect.pool_status.x: expected a string, number, boolean, "
                 "null or {\"min\", \"max\"}");
    expect_error(STEP("{\"core\":\"status\",\"expect\":{\"score\":{\"mx\":5}}}"),
                 "s.json: $.steps[0].expect.score.mx: unknown key \"mx\" (did you mean \"max\"?)");
    expect_error(DOC(",\"expect\":{\"telemetry\":{\"transitions\":[\"closed>open\"]}}"),
                 "s.json: $.expect.telemetry.transitions[0]: expected \"FROM->TO\", e.g. "
                 "\"closed->open\"");
    expect_error(DOC(",\"expect\":{\"telemetry\":{\"transitions\":[\"closed->opn\"]}}"),
                 "s.json: $.expect.telemetry.transitions[0]: unknown breaker state in "
                 "\"closed->opn\" (states: closed, open, half_open, forced_open, disabled)");
    expect_error(DOC(",\"expect\":{\"journal\":{\"client_ids\":{}}}"),
                 "s.json: $.expect.journal.client_ids: expected an array");
    expect_error(DOC(",\"expect\":{\"journal\":[]}"),
                 "s.json: $.expect.journal: expected an object");
}

static void scenario_loads_every_field(void **state)
{
    struct harness_scenario *sc;

    (void)state;
    sc = expect_ok(
        "{\"name\":\"full\",\"levels\":[\"standard\",\"exhaustive\"],\"description\":\"d\","
        "\"seed\":7,\"timeout_ms\":9000,"
        "\"core\":{\"max_size\":3,\"client_id_first\":5,\"client_id_cap\":4,\"quarantine_ms\":1,"
        "\"alive_window_ms\":2,\"probe_timeout_ms\":3,\"connect_timeout_ms\":4,"
        "\"idle_timeout_ms\":5,\"health_interval_ms\":6,\"health_strikes\":7,\"use_lock\":false,"
        "\"lock_path\":\"/tmp/x.lock\",\"seed\":8,\"client_id_pause_ms\":9,\"connect_retries\":10,"
        "\"backoff_base_ms\":11,\"backoff_cap_ms\":12,\"max_lifetime_ms\":13,"
        "\"suspend_threshold_ms\":14,"
        "\"breaker\":{\"failure_threshold\":2,\"open_ms\":300,\"max_open_ms\":900,\"lease_ms\":40,"
        "\"seed\":3}},"
        "\"gateway\":{\"settings\":{\"stale_client_id_ms\":5},\"rules\":[{\"match\":{\"phase\":"
        "\"accept\"},\"action\":{\"type\":\"silent\"}}]},"
        "\"steps\":[{\"core\":\"acquire\",\"count\":4,\"concurrency\":2,\"deadline_ms\":100,"
        "\"hold_ms\":10,\"expect\":{\"status\":[\"ok\",\"timeout\"],\"statuses\":{\"ok\":{\"min\":"
        "1}},"
        "\"within_ms\":50,\"after_ms\":1,\"client_ids\":[5,6]}},"
        "{\"gateway\":\"restart\",\"down_ms\":50,\"how\":\"reset\"},"
        "{\"gateway\":\"admin\",\"method\":\"POST\",\"path\":\"/v1/actions/drop-all\",\"body\":{}},"
        "{\"wait_ms\":20,\"note\":\"n\"}],"
        "\"expect\":{\"score\":{\"min\":1},\"stats\":{\"created\":2},"
        "\"pool_status\":{\"breaker.state\":\"closed\",\"pool.idle\":{\"max\":3}},"
        "\"journal\":{\"accepted\":{\"min\":1},\"client_ids\":[5],\"max_handshakes_in_flight\":1,"
        "\"events\":{\"accept\":2}},"
        "\"telemetry\":{\"transitions\":[\"closed->open\"],\"events\":{\"lease_expired\":0}}},"
        "\"measure_step\":0}");
    assert_string_equal(sc->name, "full");
    assert_string_equal(sc->path, "s.json");
    assert_int_equal(sc->levels, 6u);
    assert_int_equal(harness_scenario_level(sc), HARNESS_LEVEL_STANDARD);
    assert_true(sc->has_seed);
    assert_int_equal(sc->seed, 7);
    assert_int_equal(sc->timeout_ms, 9000);
    /* Every field of the table reached the struct. */
    assert_int_equal(sc->core.max_size, 3);
    assert_int_equal(sc->core.client_id_first, 5);
    assert_int_equal(sc->core.client_id_cap, 4);
    assert_int_equal(sc->core.quarantine_ms, 1);
    assert_int_equal(sc->core.alive_window_ms, 2);
    assert_int_equal(sc->core.probe_timeout_ms, 3);
    assert_int_equal(sc->core.connect_timeout_ms, 4);
    assert_int_equal(sc->core.idle_timeout_ms, 5);
    assert_int_equal(sc->core.health_interval_ms, 6);
    assert_int_equal(sc->core.health_strikes, 7);
    assert_false(sc->core.use_lock);
    assert_string_equal(sc->core.lock_path, "/tmp/x.lock");
    assert_int_equal(sc->core.seed, 8);
    assert_int_equal(sc->core.client_id_pause_ms, 9);
    assert_int_equal(sc->core.connect_retries, 10);
    assert_int_equal(sc->core.backoff_base_ms, 11);
    assert_int_equal(sc->core.backoff_cap_ms, 12);
    assert_int_equal(sc->core.max_lifetime_ms, 13);
    assert_int_equal(sc->core.suspend_threshold_ms, 14);
    assert_true(sc->has_core_seed && sc->has_lock_path && sc->has_breaker_seed);
    assert_int_equal(sc->breaker.failure_threshold, 2);
    assert_int_equal(sc->breaker.open_ms, 300);
    assert_int_equal(sc->breaker.max_open_ms, 900);
    assert_int_equal(sc->breaker.lease_ms, 40);
    assert_int_equal(sc->breaker.seed, 3);
    assert_non_null(sc->script);
    assert_true(sc->needs_admin);
    assert_non_null(strstr(sc->gateway_json, "\"silent\""));
    assert_non_null(strstr(sc->gateway_json, "\"settings\""));
    assert_int_equal(sc->n_steps, 4);
    assert_int_equal(sc->steps[0].kind, HARNESS_STEP_ACQUIRE);
    assert_int_equal(sc->steps[0].count, 4);
    assert_int_equal(sc->steps[0].concurrency, 2);
    assert_int_equal(sc->steps[0].timeout_ms, 2 * (100 + 10) + 1000);
    assert_int_equal(sc->steps[0].expect.status_mask,
                     (1u << HARNESS_STATUS_OK) | (1u << HARNESS_STATUS_TIMEOUT));
    assert_true(sc->steps[0].expect.statuses[HARNESS_STATUS_OK].set);
    assert_int_equal(sc->steps[0].expect.n_client_ids, 2);
    assert_string_equal(sc->steps[1].method, "POST");
    assert_string_equal(sc->steps[1].target, "/v1/actions/restart");
    assert_string_equal(sc->steps[1].body, "{\"down_ms\":50,\"how\":\"reset\"}");
    assert_string_equal(sc->steps[2].body, "{}");
    assert_int_equal(sc->steps[3].kind, HARNESS_STEP_WAIT);
    assert_int_equal(sc->steps[3].wait_ms, 20);
    assert_int_equal(sc->expect.n_fields, 2);
    assert_true(sc->expect.journal.set);
    assert_int_equal(sc->expect.n_transitions, 1);
    assert_int_equal(sc->measure_step, 0);
    harness_scenario_free(sc);
}

static void scenario_defaults(void **state)
{
    struct ibcore_pool_config pc;
    struct harness_scenario *sc;

    (void)state;
    ibcore_pool_config_init(&pc);
    sc = expect_ok(STEP("{\"core\":\"acquire\"},{\"core\":\"request\"}"));
    assert_string_equal(sc->description, "");
    assert_false(sc->has_seed);
    assert_false(sc->needs_admin);
    assert_null(sc->script);
    assert_int_equal(sc->core.max_size, pc.max_size);
    assert_int_equal(sc->core.client_id_pause_ms, pc.client_id_pause_ms);
    assert_int_equal(sc->steps[0].count, 1);
    assert_int_equal(sc->steps[0].concurrency, 1);
    assert_int_equal(sc->steps[0].deadline_ms, 5000);
    assert_int_equal(sc->steps[1].conn, 0);
    assert_int_equal(sc->steps[1].deadline_ms, 2000);
    assert_int_equal(sc->measure_step, -1);
    assert_int_equal(sc->timeout_ms, 6000 + 3000 + 5000);
    harness_scenario_free(sc);
}

#define GEN(extra) "{\"name\":\"g\",\"levels\":[\"exhaustive\"],\"generate\":{" extra "}}"
#define FAULTS                                                                             \
    "silent_accept, silent_handshake, silent_ready, close_ready, reset_ready, "            \
    "half_close_ready, refuse_client_id, half_ready, delay_accept, ignore_request, "       \
    "garbage_ready, error_flap, drop_all, reset_all, refuse, blackhole, accept, restart, " \
    "clear_rules"

static void scenario_rejects_bad_generate(void **state)
{
    (void)state;
    expect_error(DOC(",\"generate\":{\"schedules\":1}"),
                 "s.json: $.steps: a scenario with \"generate\" has no steps (each schedule's are "
                 "drawn)");
    expect_error(GEN(""), "s.json: $.generate.schedules: required (how many schedules to draw)");
    expect_error(GEN("\"schedules\":0"), "s.json: $.generate.schedules: must be at least 1");
    expect_error(GEN("\"schedules\":100001"),
                 "s.json: $.generate.schedules: must be at most 100000");
    expect_error(GEN("\"schedules\":1,\"step_per_schedule\":3"),
                 "s.json: $.generate.step_per_schedule: unknown key \"step_per_schedule\" (did "
                 "you mean \"steps_per_schedule\"?)");
    expect_error(GEN("\"schedules\":1,\"fault_percent\":101"),
                 "s.json: $.generate.fault_percent: must be at most 100");
    expect_error(GEN("\"schedules\":1,\"faults\":[\"explode\"]"),
                 "s.json: $.generate.faults[0]: unknown kind \"explode\" (" FAULTS ")");
    expect_error(GEN("\"schedules\":1,\"faults\":[\"refuse\",{\"kind\":\"refuse\"}]"),
                 "s.json: $.generate.faults[1].kind: \"refuse\" given twice");
    expect_error(GEN("\"schedules\":1,\"faults\":[{\"weight\":2}]"),
                 "s.json: $.generate.faults[0].kind: required");
    expect_error(GEN("\"schedules\":1,\"faults\":[{\"kind\":\"refuse\",\"weight\":1001}]"),
                 "s.json: $.generate.faults[0].weight: must be at most 1000");
    expect_error(
        GEN("\"schedules\":1,\"faults\":[7]"),
        "s.json: $.generate.faults[0]: expected a name or {\"kind\": NAME, \"weight\": N}");
    expect_error(GEN("\"schedules\":1,\"ops\":[{\"kind\":\"acquire\",\"weight\":0}]"),
                 "s.json: $.generate.ops: at least one operation needs a weight above 0");
    expect_error(GEN("\"schedules\":1,\"ops\":[\"fly\"]"),
                 "s.json: $.generate.ops[0]: unknown kind \"fly\" (acquire, acquire_async, keep, "
                 "release, request, wait, idle, status, close_zombies)");
    expect_error(GEN("\"schedules\":1,\"expect\":{\"stats\":{\"lives\":1}}"),
                 "s.json: $.generate.expect.stats.lives: unknown key \"lives\" (did you mean "
                 "\"live\"?)");
    expect_error(GEN("\"schedules\":1},\"soak\":{\"duration_ms\":1000"),
                 "s.json: $.soak: \"generate\" and \"soak\" exclude each other");
    expect_error(GEN("\"schedules\":1},\"measure_step\":0,\"x\":{"),
                 "s.json: $.x: unknown key \"x\"");
}

static void scenario_rejects_bad_soak_and_steps(void **state)
{
    (void)state;
    expect_error(DOC(",\"soak\":{}"),
                 "s.json: $.soak.duration_ms: required (how long the load runs)");
    expect_error(DOC(",\"soak\":{\"duration_ms\":999}"),
                 "s.json: $.soak.duration_ms: must be at least 1000");
    expect_error(DOC(",\"soak\":{\"duration_ms\":2000,\"warmup_ms\":2000}"),
                 "s.json: $.soak.warmup_ms: must be shorter than duration_ms");
    expect_error(DOC(",\"soak\":{\"duration_ms\":2000,\"sample_ms\":1000}"),
                 "s.json: $.soak.sample_ms: too few samples after the warm-up (at least 6: "
                 "shorten sample_ms)");
    expect_error(DOC(",\"soak\":{\"duration_ms\":2000,\"rss_tolerance_pct\":-1}"),
                 "s.json: $.soak.rss_tolerance_pct: expected a non-negative integer");
    expect_error(DOC(",\"gateway_process\":1"),
                 "s.json: $.gateway_process: expected true or false");
    expect_error(STEP("{\"core\":\"stall\"}"),
                 "s.json: $.steps[0].ms: required (how long the loop does not run)");
    expect_error(STEP("{\"core\":\"stall\",\"ms\":10001}"),
                 "s.json: $.steps[0].ms: must be at most 10000");
    expect_error(STEP("{\"core\":\"recover\",\"deadline_ms\":0}"),
                 "s.json: $.steps[0].deadline_ms: must be at least 1");
    expect_error(STEP("{\"core\":\"request\",\"if_held\":1}"),
                 "s.json: $.steps[0].if_held: expected true or false");
    expect_error(STEP("{\"core\":\"close_zombies\",\"count\":1}"),
                 "s.json: $.steps[0].count: unknown key \"count\"");
}

#define CLIENT(extra)                                                                    \
    "{\"name\":\"c\",\"levels\":[\"standard\"],\"client\":{\"command\":\"app {port}\"}," \
    "\"steps\":[{\"wait_journal\":\"ready\"},{\"gateway\":\"drop_all\"}]" extra "}"

static void scenario_client(void **state)
{
    struct harness_scenario *sc;

    (void)state;
    sc = expect_ok(CLIENT(",\"expect\":{\"journal\":{\"reconnect_ms\":{\"max\":2000},"
                          "\"min_connect_interval_ms\":{\"min\":1000},"
                          "\"same_id_after_326\":0},"
                          "\"client\":{\"exit_code\":0,\"output\":[\"ready\"]}}"));
    assert_non_null(sc->client);
    assert_string_equal(sc->client->command, "app {port}");
    assert_false(sc->client->stops_by_itself);
    assert_int_equal(sc->client->timeout_ms, 10000 + 5000 + 10000); /* steps, then 10 s */
    assert_true(sc->needs_admin);
    assert_int_equal(sc->steps[0].kind, HARNESS_STEP_WAIT_JOURNAL);
    assert_int_equal(sc->steps[0].count, 1);
    assert_string_equal(sc->steps[0].label, "wait for 1 ready");
    assert_true(sc->expect.journal.reconnect.set);
    assert_int_equal(sc->expect.journal.reconnect.max, 2000);
    assert_int_equal(sc->expect.journal.min_connect_interval.min, 1000);
    assert_int_equal(sc->expect.client.exit_code, 0);
    assert_int_equal(sc->expect.client.n_output, 1);
    harness_scenario_free(sc);
    sc = expect_ok("{\"name\":\"c\",\"levels\":[\"basic\"],\"client\":{\"command\":\"x\","
                   "\"stop\":\"exit\",\"timeout_ms\":3000},\"steps\":[{\"wait_ms\":1}],"
                   "\"expect\":{\"client\":{\"exit_code\":null}}}");
    assert_true(sc->client->stops_by_itself);
    assert_int_equal(sc->client->timeout_ms, 3000);
    assert_int_equal(sc->expect.client.exit_code, -1);
    harness_scenario_free(sc);

    expect_error("{\"name\":\"c\",\"levels\":[\"basic\"],\"client\":{\"command\":\"x\"},"
                 "\"steps\":[{\"core\":\"acquire\"}]}",
                 "s.json: $.steps[0].core: a scenario with \"client\" drives no core (gateway, "
                 "wait_ms and wait_journal steps only)");
    expect_error("{\"name\":\"c\",\"levels\":[\"basic\"],\"client\":{\"command\":\"x\"},"
                 "\"core\":{},\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.core: not with \"client\" (the client is judged, not the core)");
    expect_error("{\"name\":\"c\",\"levels\":[\"basic\"],\"client\":{},"
                 "\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.client.command: required (e.g. \"python3 app_check.py --port "
                 "{port}\")");
    expect_error("{\"name\":\"c\",\"levels\":[\"basic\"],\"client\":{\"command\":\" \"},"
                 "\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.client.command: must not be empty");
    expect_error("{\"name\":\"c\",\"levels\":[\"basic\"],\"client\":{\"command\":\"x\","
                 "\"stop\":\"kill\"},\"steps\":[{\"wait_ms\":1}]}",
                 "s.json: $.client.stop: \"signal\" (SIGTERM after the last step) or \"exit\" "
                 "(it ends by itself), not \"kill\"");
    expect_error(CLIENT(",\"expect\":{\"stats\":{}}"),
                 "s.json: $.expect.stats: unknown key \"stats\"");
    expect_error(CLIENT(",\"expect\":{\"client\":{\"exit_code\":256}}"),
                 "s.json: $.expect.client.exit_code: must be between 0 and 255");
    expect_error(CLIENT(",\"expect\":{\"client\":{\"output\":[\"\"]}}"),
                 "s.json: $.expect.client.output[0]: must not be empty");
    expect_error(DOC(",\"expect\":{\"client\":{}}"),
                 "s.json: $.expect.client: unknown key \"client\"");
    expect_error(STEP("{\"wait_journal\":\"readyy\"}"),
                 "s.json: $.steps[0].wait_journal: unknown journal event \"readyy\" "
                 "(docs/journal.md)");
    expect_error(STEP("{\"wait_journal\":\"ready\",\"wait_ms\":1}"),
                 "s.json: $.steps[0]: only one of \"core\", \"gateway\", \"wait_ms\", "
                 "\"wait_journal\"");
}

/* The shipped client scenarios (scenarios/clients/) load. */
static void every_client_scenario_loads(void **state)
{
    const char *dir = HARNESS_SOURCE_DIR "/scenarios/clients";
    struct dirent *d;
    unsigned n = 0;
    DIR *dp = opendir(dir);

    (void)state;
    assert_non_null(dp);
    while ((d = readdir(dp)) != NULL) {
        size_t len = strlen(d->d_name);
        char path[1024];
        struct harness_scenario *sc;
        struct harness_err err;

        if (len < 5 || strcmp(d->d_name + len - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
        if ((sc = harness_scenario_load(path, &err)) == NULL)
            fail_msg("%s", err.msg);
        assert_non_null(sc->client);
        harness_scenario_free(sc);
        n++;
    }
    closedir(dp);
    assert_true(n >= 3);
}

static void scenario_generate_defaults(void **state)
{
    struct harness_scenario *sc;

    (void)state;
    sc = expect_ok("{\"name\":\"g\",\"levels\":[\"exhaustive\"],\"core\":{\"max_size\":2},"
                   "\"gateway\":{\"settings\":{\"max_clients\":8}},\"gateway_process\":true,"
                   "\"generate\":{\"schedules\":3,\"faults\":[{\"kind\":\"refuse\",\"weight\":4}],"
                   "\"expect\":{\"stats\":{\"pending\":0}}}}");
    assert_non_null(sc->generate);
    assert_int_equal(sc->n_steps, 0);
    assert_true(sc->needs_admin);
    assert_true(sc->gateway_process);
    assert_int_equal(sc->generate->schedules, 3);
    assert_int_equal(sc->generate->steps, 6);
    assert_int_equal(sc->generate->concurrency, 4);
    assert_int_equal(sc->generate->fault_percent, 40);
    assert_int_equal(sc->generate->fault_weight[HARNESS_FAULT_REFUSE], 4);
    assert_int_equal(sc->generate->fault_weight[HARNESS_FAULT_DROP_ALL], 0);
    assert_int_equal(sc->generate->op_weight[HARNESS_OP_ACQUIRE], 1);
    assert_int_equal(sc->generate->max_failures, 1);
    assert_int_equal(sc->generate->shrink_runs, 200);
    assert_string_equal(sc->core_json, "{\"max_size\":2}");
    assert_string_equal(sc->gateway_json, "{\"settings\":{\"max_clients\":8}}");
    assert_string_equal(sc->generate->expect, "{\"stats\":{\"pending\":0}}");
    assert_int_equal(sc->timeout_ms, 600000);
    harness_scenario_free(sc);

    sc = expect_ok(DOC(",\"soak\":{\"duration_ms\":10000}"));
    assert_non_null(sc->soak);
    assert_int_equal(sc->soak->sample_ms, 500);
    assert_int_equal(sc->soak->warmup_ms, 2000);
    assert_int_equal(sc->soak->rss_tolerance_kib, 2048);
    assert_int_equal(sc->soak->rss_tolerance_pct, 5);
    assert_int_equal(sc->soak->fd_tolerance, 2);
    assert_int_equal(sc->timeout_ms, 6000 + 10000 + 5000);
    harness_scenario_free(sc);
}

static void scenario_load_names_the_file(void **state)
{
    struct harness_err err;
    char path[] = "/tmp/harness-scenario-XXXXXX";
    int fd;

    (void)state;
    assert_null(harness_scenario_load("/nonexistent/x.json", &err));
    assert_string_equal(err.msg, "/nonexistent/x.json: No such file or directory");
    assert_null(harness_scenario_load("/tmp", &err));
    assert_string_equal(err.msg, "/tmp: is a directory");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"name\":5}", 10), 10);
    close(fd);
    assert_null(harness_scenario_load(path, &err));
    assert_non_null(strstr(err.msg, ": $.name: expected a string"));
    assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
    unlink(path);
}

static void names_and_ranges(void **state)
{
    struct harness_range r = { true, 2, 5 };
    char buf[48];

    (void)state;
    assert_int_equal(harness_status_of(0), HARNESS_STATUS_OK);
    assert_int_equal(harness_status_of(UV_ETIMEDOUT), HARNESS_STATUS_TIMEOUT);
    assert_int_equal(harness_status_of(IBCORE_EBREAKER), HARNESS_STATUS_BREAKER_OPEN);
    assert_int_equal(harness_status_of(IBCORE_EIDSEXHAUSTED), HARNESS_STATUS_IDS_EXHAUSTED);
    assert_int_equal(harness_status_of(UV_ECONNREFUSED), HARNESS_STATUS_REFUSED);
    assert_int_equal(harness_status_of(-12345), HARNESS_STATUS_ERROR);
    assert_string_equal(harness_status_name(HARNESS_STATUS_BREAKER_OPEN), "breaker_open");
    assert_int_equal(harness_status_parse("shutdown"), HARNESS_STATUS_SHUTDOWN);
    assert_int_equal(harness_status_parse("nope"), -1);
    assert_int_equal(harness_level_parse("standard"), HARNESS_LEVEL_STANDARD);
    assert_int_equal(harness_level_parse("all"), -1);
    assert_true(harness_range_holds(&r, 2) && harness_range_holds(&r, 5));
    assert_false(harness_range_holds(&r, 6) || harness_range_holds(&r, 1));
    assert_string_equal(harness_range_str(&r, buf, sizeof buf), "2..5");
    r.max = INT64_MAX;
    assert_string_equal(harness_range_str(&r, buf, sizeof buf), ">= 2");
    r.min = 0;
    r.max = 4;
    assert_string_equal(harness_range_str(&r, buf, sizeof buf), "<= 4");
}

static void shell_quote_replay_parts(void **state)
{
    char *q;

    (void)state;
    q = harness_shell_quote("/work/main/scenarios/basic/010-x.json");
    assert_string_equal(q, "/work/main/scenarios/basic/010-x.json");
    free(q);
    q = harness_shell_quote("a b'c");
    assert_string_equal(q, "'a b'\\''c'");
    free(q);
    q = harness_shell_quote("");
    assert_string_equal(q, "''");
    free(q);
}

/* Every scenario file in the tree loads, sits in its level's directory, and the cumulative
 * levels nest. */
static void every_scenario_in_the_tree_loads(void **state)
{
    struct harness_scenario **list;
    struct harness_err err;
    unsigned n[HARNESS_LEVEL_COUNT];

    (void)state;
    for (int l = 0; l < HARNESS_LEVEL_COUNT; l++) {
        if (harness_suite_load(HARNESS_SOURCE_DIR "/scenarios", (enum harness_level)l, &list, &n[l],
                               &err) != 0)
            fail_msg("%s", err.msg);
        for (unsigned i = 0; i < n[l]; i++)
            assert_true((int)harness_scenario_level(list[i]) <= l);
        harness_suite_free(list, n[l]);
    }
    assert_true(n[HARNESS_LEVEL_BASIC] >= 5);
    assert_true(n[HARNESS_LEVEL_STANDARD] > n[HARNESS_LEVEL_BASIC]);
    assert_true(n[HARNESS_LEVEL_EXHAUSTIVE] >= n[HARNESS_LEVEL_STANDARD]);
    assert_int_equal(harness_suite_load("/nonexistent", HARNESS_LEVEL_BASIC, &list, &n[0], &err),
                     -1);
    assert_string_equal(err.msg, "/nonexistent: No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scenario_rejects_bad_json),
        cmocka_unit_test(scenario_rejects_nul_byte),
        cmocka_unit_test(scenario_rejects_unknown_keys),
        cmocka_unit_test(scenario_requires_name_levels_steps),
        cmocka_unit_test(scenario_rejects_wrong_types),
        cmocka_unit_test(scenario_rejects_bad_steps),
        cmocka_unit_test(scenario_rejects_bad_gateway),
        cmocka_unit_test(scenario_rejects_bad_expectations),
        cmocka_unit_test(scenario_loads_every_field),
        cmocka_unit_test(scenario_defaults),
        cmocka_unit_test(scenario_rejects_bad_generate),
        cmocka_unit_test(scenario_rejects_bad_soak_and_steps),
        cmocka_unit_test(scenario_generate_defaults),
        cmocka_unit_test(scenario_client),
        cmocka_unit_test(every_client_scenario_loads),
        cmocka_unit_test(scenario_load_names_the_file),
        cmocka_unit_test(names_and_ranges),
        cmocka_unit_test(shell_quote_replay_parts),
        cmocka_unit_test(every_scenario_in_the_tree_loads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
