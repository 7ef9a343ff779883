/* Generators and the shrinker: the same (seed, index) draws the same schedule and another index
 * another one; schedules keep to the generator's limits and load as scenarios (their rules load
 * with mockgw's own loader); the shrinker cuts a failing schedule down to the steps the failure
 * needs, with values at their simplest, keeping only failing candidates; and end to end, a
 * generator that fails on purpose (tests/scenarios/shrinks-on-purpose.json) is shrunk to its
 * fault and one acquire, written out, and the written file fails again the same way. */
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
#include <uv.h>

#include "harness.h"
#include "mockgw.h"

static struct harness_scenario *parse(const char *json)
{
    struct harness_err err;
    struct harness_scenario *sc = harness_scenario_parse(json, strlen(json), "g.json", &err);

    if (sc == NULL)
        fail_msg("%s", err.msg);
    return sc;
}

static const char every_kind[] =
    "{\"name\":\"g\",\"levels\":[\"exhaustive\"],\"core\":{\"max_size\":2},"
    "\"generate\":{\"schedules\":100,\"steps_per_schedule\":12,\"concurrency\":4,"
    "\"fault_percent\":50}}";

static char *text_of(const struct harness_schedule *s)
{
    char *t = cJSON_PrintUnformatted(s->steps);

    assert_non_null(t);
    return t;
}

static void gen_same_seed_and_index_same_schedule(void **state)
{
    struct harness_scenario *sc = parse(every_kind);
    struct harness_schedule a, b;

    (void)state;
    for (unsigned i = 0; i < 20; i++) {
        char *ta, *tb;

        assert_int_equal(harness_schedule_make(sc->generate, 42, i, &a), 0);
        assert_int_equal(harness_schedule_make(sc->generate, 42, i, &b), 0);
        ta = text_of(&a);
        tb = text_of(&b);
        assert_string_equal(ta, tb);
        assert_true(a.seed == b.seed);
        assert_int_equal(a.index, i);
        free(ta);
        free(tb);
        harness_schedule_clear(&a);
        harness_schedule_clear(&b);
    }
    harness_scenario_free(sc);
}

static void gen_other_index_or_seed_other_schedule(void **state)
{
    struct harness_scenario *sc = parse(every_kind);
    struct harness_schedule s;
    char *texts[32];
    uint64_t seeds[32];

    (void)state;
    for (unsigned i = 0; i < 16; i++) {
        assert_int_equal(harness_schedule_make(sc->generate, 1, i, &s), 0);
        texts[i] = text_of(&s);
        seeds[i] = s.seed;
        harness_schedule_clear(&s);
        assert_int_equal(harness_schedule_make(sc->generate, 2, i, &s), 0);
        texts[16 + i] = text_of(&s);
        seeds[16 + i] = s.seed;
        harness_schedule_clear(&s);
    }
    for (unsigned i = 0; i < 32; i++) {
        for (unsigned j = i + 1; j < 32; j++) {
            assert_true(seeds[i] != seeds[j]);
            assert_string_not_equal(texts[i], texts[j]);
        }
    }
    for (unsigned i = 0; i < 32; i++)
        free(texts[i]);
    harness_scenario_free(sc);
}

/* Every schedule keeps to the limits, only uses the kinds allowed, and its scenario loads; its
 * rules load with mockgw's script loader. */
static void gen_schedules_keep_to_the_limits_and_load(void **state)
{
    struct harness_scenario *sc = parse(
        "{\"name\":\"g\",\"levels\":[\"exhaustive\"],\"core\":{\"max_size\":2},"
        "\"generate\":{\"schedules\":200,\"steps_per_schedule\":9,\"concurrency\":3,"
        "\"fault_percent\":50,\"faults\":[\"refuse_client_id\",{\"kind\":\"restart\",\"weight\":2},"
        "\"error_flap\",\"garbage_ready\",\"delay_accept\"],"
        "\"ops\":[\"acquire\",\"acquire_async\",\"keep\",\"request\"],\"deadline_ms\":100}}");
    unsigned faults = 0, ops = 0;

    (void)state;
    for (unsigned i = 0; i < 200; i++) {
        struct harness_schedule s;
        struct harness_scenario *one;
        struct harness_err err;
        const cJSON *st;
        unsigned n, async = 0;
        char *text;

        assert_int_equal(harness_schedule_make(sc->generate, 9, i, &s), 0);
        n = harness_schedule_len(&s);
        assert_true(n >= 5 && n <= 9);
        cJSON_ArrayForEach(st, s.steps)
        {
            const cJSON *gw = cJSON_GetObjectItemCaseSensitive(st, "gateway");
            const cJSON *core = cJSON_GetObjectItemCaseSensitive(st, "core");
            const cJSON *count = cJSON_GetObjectItemCaseSensitive(st, "count");
            const cJSON *body = cJSON_GetObjectItemCaseSensitive(st, "body");

            if (cJSON_IsString(gw)) {
                faults++;
                assert_true(strcmp(gw->valuestring, "admin") == 0 ||
                            strcmp(gw->valuestring, "restart") == 0);
                if (body != NULL) { /* one rule: wrapped as a script, mockgw must take it */
                    char *rule = cJSON_PrintUnformatted(body), doc[2048];
                    struct mgw_err merr;
                    struct mgw_script *script;

                    snprintf(doc, sizeof doc, "{\"rules\":[%s]}", rule);
                    script = mgw_script_parse(doc, strlen(doc), "rule", &merr);
                    if (script == NULL)
                        fail_msg("%s", merr.msg);
                    mgw_script_free(script);
                    free(rule);
                }
            } else if (cJSON_IsString(core)) {
                ops++;
                assert_true(strcmp(core->valuestring, "acquire") == 0 ||
                            strcmp(core->valuestring, "request") == 0);
                if (cJSON_IsNumber(count))
                    assert_true(count->valueint >= 1 && count->valueint <= 3);
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "async")))
                    async += (unsigned)count->valueint;
            } else {
                fail_msg("a step that is neither a fault nor an allowed operation");
            }
        }
        assert_true(async <= 2); /* room is left for a synchronous acquire beside them */
        text = harness_schedule_to_json(sc, &s, i % 2 == 0);
        assert_non_null(text);
        one = harness_scenario_parse(text, strlen(text), "schedule", &err);
        if (one == NULL)
            fail_msg("%s\n%s", err.msg, text);
        assert_null(one->generate);
        assert_true(one->has_seed && one->seed == s.seed);
        assert_int_equal(one->n_steps, n + 5 + (strstr(text, "\"restart\"") != NULL));
        assert_int_equal(one->steps[one->n_steps - 1].kind, HARNESS_STEP_RECOVER);
        harness_scenario_free(one);
        free(text);
        harness_schedule_clear(&s);
    }
    assert_true(faults > 300 && ops > 300);
    harness_scenario_free(sc);
}

static void gen_fault_percent_bounds(void **state)
{
    struct harness_scenario *none = parse("{\"name\":\"g\",\"levels\":[\"exhaustive\"],"
                                          "\"generate\":{\"schedules\":1,\"fault_percent\":0}}");
    struct harness_scenario *all = parse("{\"name\":\"g\",\"levels\":[\"exhaustive\"],"
                                         "\"generate\":{\"schedules\":1,\"fault_percent\":100}}");
    struct harness_schedule s;
    const cJSON *st;

    (void)state;
    for (unsigned i = 0; i < 50; i++) {
        assert_int_equal(harness_schedule_make(none->generate, 3, i, &s), 0);
        cJSON_ArrayForEach(st, s.steps)
            assert_null(cJSON_GetObjectItemCaseSensitive(st, "gateway"));
        harness_schedule_clear(&s);
        assert_int_equal(harness_schedule_make(all->generate, 3, i, &s), 0);
        cJSON_ArrayForEach(st, s.steps)
            assert_non_null(cJSON_GetObjectItemCaseSensitive(st, "gateway"));
        harness_schedule_clear(&s);
    }
    harness_scenario_free(none);
    harness_scenario_free(all);
}

/* ---- the shrinker on a pure predicate -------------------------------------------------------- */

struct pred {
    unsigned calls;
    bool saw_passing_kept;
};

static const char *note_of(const cJSON *st)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(st, "note");

    return cJSON_IsString(n) ? n->valuestring : "";
}

/* "Fails" when a refuse_client_id fault comes before an acquire. */
static bool fault_then_acquire(const struct harness_schedule *s, void *data)
{
    struct pred *p = data;
    const cJSON *st;
    bool fault = false;

    p->calls++;
    cJSON_ArrayForEach(st, s->steps)
    {
        const cJSON *core = cJSON_GetObjectItemCaseSensitive(st, "core");

        if (strcmp(note_of(st), "fault refuse_client_id") == 0)
            fault = true;
        else if (fault && cJSON_IsString(core) && strcmp(core->valuestring, "acquire") == 0)
            return true;
    }
    return false;
}

static double num_at(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void shrink_finds_the_minimal_schedule(void **state)
{
    struct harness_scenario *sc =
        parse("{\"name\":\"g\",\"levels\":[\"exhaustive\"],\"generate\":{\"schedules\":1,"
              "\"steps_per_schedule\":40,\"fault_percent\":50,\"concurrency\":6}}");
    struct harness_shrink_stats st;
    struct harness_schedule s;
    struct pred p = { 0, false };
    const cJSON *fault, *acq, *body;
    unsigned index = 0;

    (void)state;
    /* The first schedule the predicate fails on (a long one: a real job for the shrinker). */
    for (;; index++) {
        assert_int_equal(harness_schedule_make(sc->generate, 5, index, &s), 0);
        if (fault_then_acquire(&s, &p) && harness_schedule_len(&s) > 25)
            break;
        harness_schedule_clear(&s);
        assert_true(index < 1000);
    }
    p.calls = 0;
    assert_int_equal(harness_shrink(&s, fault_then_acquire, &p, 1000, 60000, &st), 0);
    assert_false(st.out_of_budget);
    assert_int_equal(st.runs, p.calls);
    assert_true(st.steps_before > 25);
    assert_int_equal(st.steps_after, 2);
    assert_int_equal(harness_schedule_len(&s), 2);
    assert_true(fault_then_acquire(&s, &p)); /* what is left still fails */
    fault = cJSON_GetArrayItem(s.steps, 0);
    acq = cJSON_GetArrayItem(s.steps, 1);
    assert_string_equal(note_of(fault), "fault refuse_client_id");
    body = cJSON_GetObjectItemCaseSensitive(fault, "body");
    assert_true(num_at(body, "times") == 1);
    assert_string_equal(note_of(acq), "op acquire");
    assert_true(num_at(acq, "count") == 1);
    assert_true(num_at(acq, "concurrency") == 1);
    assert_true(num_at(acq, "hold_ms") <= 0); /* absent or 0 */
    assert_null(cJSON_GetObjectItemCaseSensitive(acq, "async"));
    assert_null(cJSON_GetObjectItemCaseSensitive(acq, "keep"));
    harness_schedule_clear(&s);
    harness_scenario_free(sc);
}

static void shrink_stops_at_its_budget_with_a_failing_schedule(void **state)
{
    struct harness_scenario *sc =
        parse("{\"name\":\"g\",\"levels\":[\"exhaustive\"],\"generate\":{\"schedules\":1,"
              "\"steps_per_schedule\":40,\"fault_percent\":50}}");
    struct harness_shrink_stats st;
    struct harness_schedule s;
    struct pred p = { 0, false };
    unsigned index = 0;

    (void)state;
    for (;; index++) {
        assert_int_equal(harness_schedule_make(sc->generate, 5, index, &s), 0);
        if (fault_then_acquire(&s, &p))
            break;
        harness_schedule_clear(&s);
    }
    p.calls = 0;
    assert_int_equal(harness_shrink(&s, fault_then_acquire, &p, 3, 60000, &st), 0);
    assert_true(st.out_of_budget);
    assert_int_equal(st.runs, 3);
    assert_true(fault_then_acquire(&s, &p));
    harness_schedule_clear(&s);
    harness_scenario_free(sc);
}

static bool never_fails(const struct harness_schedule *s, void *data)
{
    (void)s;
    ++*(unsigned *)data;
    return false;
}

static void shrink_keeps_the_schedule_when_nothing_smaller_fails(void **state)
{
    struct harness_scenario *sc = parse(every_kind);
    struct harness_shrink_stats st;
    struct harness_schedule s;
    unsigned calls = 0;
    char *before, *after;

    (void)state;
    assert_int_equal(harness_schedule_make(sc->generate, 11, 0, &s), 0);
    before = text_of(&s);
    assert_int_equal(harness_shrink(&s, never_fails, &calls, 1000, 60000, &st), 0);
    after = text_of(&s);
    assert_string_equal(before, after);
    assert_true(calls > 0 && st.steps_after == st.steps_before);
    free(before);
    free(after);
    harness_schedule_clear(&s);
    harness_scenario_free(sc);
}

/* ---- end to end: a generator that fails on purpose ------------------------------------------- */

static void generator_failure_is_shrunk_written_and_replays(void **state)
{
    struct harness_scenario *sc, *minimal;
    struct harness_run_opts o;
    struct harness_result res, again;
    struct harness_err err;
    char dir[] = "/tmp/harness-gen-XXXXXX";
    uv_loop_t loop;
    bool named = false;

    (void)state;
    assert_non_null(mkdtemp(dir));
    sc = harness_scenario_load(HARNESS_SOURCE_DIR "/tests/scenarios/shrinks-on-purpose.json", &err);
    if (sc == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(uv_loop_init(&loop), 0);
    harness_run_opts_init(&o);
    o.artifacts_dir = dir;
    assert_int_equal(harness_run(&loop, sc, &o, &res), 0);
    for (unsigned i = 0; i < res.n_failures; i++)
        print_message("  %s\n", res.failures[i]);
    assert_int_equal(res.verdict, HARNESS_FAIL);
    assert_non_null(res.artifact);
    assert_true(strncmp(res.artifact, dir, strlen(dir)) == 0);
    for (unsigned i = 0; i < res.n_failures; i++)
        named =
            named || strstr(res.failures[i], "$.expect.journal.events.client_id_in_use") != NULL;
    assert_true(named);

    /* The file is the minimal schedule: the fault and one plain acquire, then the heal tail. */
    minimal = harness_scenario_load(res.artifact, &err);
    if (minimal == NULL)
        fail_msg("%s", err.msg);
    assert_true(minimal->has_seed && minimal->seed == res.artifact_seed);
    assert_int_equal(minimal->n_steps, 2 + 5);
    assert_int_equal(minimal->steps[0].kind, HARNESS_STEP_GATEWAY);
    assert_string_equal(minimal->steps[0].target, "/v1/rules");
    assert_non_null(strstr(minimal->steps[0].body, "\"refuse_client_id\""));
    assert_non_null(strstr(minimal->steps[0].body, "\"times\":1"));
    assert_int_equal(minimal->steps[1].kind, HARNESS_STEP_ACQUIRE);
    assert_int_equal(minimal->steps[1].count, 1);
    assert_int_equal(minimal->steps[1].concurrency, 1);
    assert_false(minimal->steps[1].keep || minimal->steps[1].async);
    assert_int_equal(minimal->steps[1].hold_ms, 0);

    /* Replayed with its seed, it fails the same way. */
    o.has_seed = true;
    o.seed = res.artifact_seed;
    assert_int_equal(harness_run(&loop, minimal, &o, &again), 0);
    assert_int_equal(again.verdict, HARNESS_FAIL);
    assert_non_null(strstr(again.failures[0], "$.expect.journal.events.client_id_in_use: 1"));
    unlink(res.artifact);
    rmdir(dir);
    harness_result_clear(&again);
    harness_result_clear(&res);
    harness_scenario_free(minimal);
    harness_scenario_free(sc);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gen_same_seed_and_index_same_schedule),
        cmocka_unit_test(gen_other_index_or_seed_other_schedule),
        cmocka_unit_test(gen_schedules_keep_to_the_limits_and_load),
        cmocka_unit_test(gen_fault_percent_bounds),
        cmocka_unit_test(shrink_finds_the_minimal_schedule),
        cmocka_unit_test(shrink_stops_at_its_budget_with_a_failing_schedule),
        cmocka_unit_test(shrink_keeps_the_schedule_when_nothing_smaller_fails),
        cmocka_unit_test(generator_failure_is_shrunk_written_and_replays),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
