/* The fault engine: matching, limits, sequences, states, and the seeded generator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault.h"

/* A rule built in code (the loader has its own tests): phases mask, one action. */
static struct mgw_rule *rule(unsigned phases, enum mgw_action_type type)
{
    struct mgw_rule *r = calloc(1, sizeof *r);

    r->match.phases = phases;
    r->match.msg_id = -1;
    r->match.probability = 1.0;
    r->action.type = type;
    r->action.id = -1;
    return r;
}

static struct mgw_event event(enum mgw_event_phase phase, uint64_t conn)
{
    return (struct mgw_event){ .phase = phase, .conn = conn, .client_id = -1, .msg_id = -1 };
}

#define BIT(p) (1u << (p))

static unsigned eval(struct mgw_faults *f, struct mgw_event ev, struct mgw_fault_hit *hits)
{
    return mgw_faults_eval(f, &ev, hits, 16);
}

static void fault_phase_and_keys_must_all_match(void **state)
{
    struct mgw_faults *f = mgw_faults_new(1);
    struct mgw_fault_hit hits[16];
    struct mgw_rule *r = rule(BIT(MGW_EV_REQUEST), MGW_ACT_IGNORE);
    struct mgw_event ev = event(MGW_EV_REQUEST, 3);

    (void)state;
    r->match.msg_id = 49;
    r->match.has_client_id = true;
    r->match.client_id = 7;
    r->match.conn_from = 2;
    r->match.conn_to = 4;
    r->match.nth = 5;
    r->match.after_ms = 1000;
    assert_int_equal(mgw_faults_add(f, r), 0);
    assert_true(r->id == 1);
    ev.msg_id = 49;
    ev.client_id = 7;
    ev.nth = 5;
    ev.since_accept_ms = 1000;
    assert_int_equal(eval(f, ev, hits), 1);
    assert_ptr_equal(hits[0].rule, r);
    assert_int_equal(hits[0].action->type, MGW_ACT_IGNORE);
    assert_true(hits[0].draw < 0); /* probability 1: no draw */

    struct mgw_event miss;
    miss = ev, miss.msg_id = 8;
    assert_int_equal(eval(f, miss, hits), 0);
    miss = ev, miss.client_id = 6;
    assert_int_equal(eval(f, miss, hits), 0);
    miss = ev, miss.conn = 5;
    assert_int_equal(eval(f, miss, hits), 0);
    miss = ev, miss.conn = 1;
    assert_int_equal(eval(f, miss, hits), 0);
    miss = ev, miss.nth = 4;
    assert_int_equal(eval(f, miss, hits), 0);
    miss = ev, miss.since_accept_ms = 999;
    assert_int_equal(eval(f, miss, hits), 0);
    miss = ev, miss.phase = MGW_EV_READY;
    assert_int_equal(eval(f, miss, hits), 0);
    assert_true(r->hits == 1);
    mgw_faults_free(f);
}

static void fault_watch_is_the_union_of_phases(void **state)
{
    struct mgw_faults *f = mgw_faults_new(1);

    (void)state;
    for (int p = 0; p < MGW_EV_COUNT; p++)
        assert_false(mgw_faults_watch(f, (enum mgw_event_phase)p));
    mgw_faults_add(f, rule(BIT(MGW_EV_READY), MGW_ACT_SILENT));
    assert_true(mgw_faults_watch(f, MGW_EV_READY));
    assert_false(mgw_faults_watch(f, MGW_EV_REQUEST));
    mgw_faults_add(f, rule(0, MGW_ACT_DELAY)); /* no phase: every phase */
    for (int p = 0; p < MGW_EV_COUNT; p++)
        assert_true(mgw_faults_watch(f, (enum mgw_event_phase)p));
    assert_int_equal(mgw_faults_remove(f, 2), 0);
    assert_false(mgw_faults_watch(f, MGW_EV_REQUEST));
    assert_int_equal(mgw_faults_remove(f, 2), -ENOENT);
    mgw_faults_free(f);
}

static void fault_every_matching_rule_fires_until_one_ends_the_event(void **state)
{
    struct mgw_faults *f = mgw_faults_new(1);
    struct mgw_fault_hit hits[16];

    (void)state;
    mgw_faults_add(f, rule(BIT(MGW_EV_READY), MGW_ACT_DELAY));
    mgw_faults_add(f, rule(BIT(MGW_EV_READY), MGW_ACT_ERROR));
    mgw_faults_add(f, rule(BIT(MGW_EV_READY), MGW_ACT_CLOSE));
    mgw_faults_add(f, rule(BIT(MGW_EV_READY), MGW_ACT_GARBAGE));
    assert_int_equal(eval(f, event(MGW_EV_READY, 1), hits), 3);
    assert_int_equal(hits[0].action->type, MGW_ACT_DELAY);
    assert_int_equal(hits[1].action->type, MGW_ACT_ERROR);
    assert_int_equal(hits[2].action->type, MGW_ACT_CLOSE);
    assert_true(mgw_faults_at(f, 3)->hits == 0); /* never reached */
    mgw_faults_free(f);
}

static void fault_times_disarms_the_rule(void **state)
{
    struct mgw_faults *f = mgw_faults_new(1);
    struct mgw_fault_hit hits[16];
    struct mgw_rule *r = rule(BIT(MGW_EV_ACCEPT), MGW_ACT_SILENT);

    (void)state;
    r->times = 2;
    mgw_faults_add(f, r);
    assert_int_equal(eval(f, event(MGW_EV_ACCEPT, 1), hits), 1);
    assert_int_equal(eval(f, event(MGW_EV_ACCEPT, 2), hits), 1);
    assert_int_equal(eval(f, event(MGW_EV_ACCEPT, 3), hits), 0);
    assert_true(r->hits == 2);
    mgw_faults_free(f);
}

static void fault_sequence_is_per_attempt_then_normal(void **state)
{
    struct mgw_faults *f = mgw_faults_new(1);
    struct mgw_fault_hit hits[16];
    struct mgw_rule *r = rule(BIT(MGW_EV_START_API), MGW_ACT_NONE);

    (void)state;
    /* 1st connection silent, 2nd 326, 3rd normal, then the rule is spent. */
    r->sequence = calloc(3, sizeof *r->sequence);
    r->sequence[0].type = MGW_ACT_SILENT;
    r->sequence[1].type = MGW_ACT_REFUSE_CLIENT_ID;
    r->sequence[2].type = MGW_ACT_NONE;
    r->n_sequence = 3;
    mgw_faults_add(f, r);
    assert_int_equal(eval(f, event(MGW_EV_START_API, 1), hits), 1);
    assert_int_equal(hits[0].action->type, MGW_ACT_SILENT);
    assert_int_equal(eval(f, event(MGW_EV_START_API, 2), hits), 1);
    assert_int_equal(hits[0].action->type, MGW_ACT_REFUSE_CLIENT_ID);
    assert_int_equal(eval(f, event(MGW_EV_START_API, 3), hits), 0); /* "none" */
    assert_int_equal(eval(f, event(MGW_EV_START_API, 4), hits), 0); /* spent */
    assert_true(r->hits == 3);
    mgw_faults_free(f);
}

static void fault_named_states_gate_and_switch(void **state)
{
    struct mgw_faults *f = mgw_faults_new(1);
    struct mgw_fault_hit hits[16];
    struct mgw_rule *down = rule(BIT(MGW_EV_ACCEPT), MGW_ACT_SILENT);
    struct mgw_rule *trip = rule(BIT(MGW_EV_READY), MGW_ACT_ERROR);

    (void)state;
    down->match.state = strdup("down");
    trip->action.set_state = strdup("down");
    trip->times = 1;
    mgw_faults_add(f, down);
    mgw_faults_add(f, trip);
    assert_string_equal(mgw_faults_state(f), "normal");
    assert_int_equal(eval(f, event(MGW_EV_ACCEPT, 1), hits), 0);
    assert_int_equal(eval(f, event(MGW_EV_READY, 1), hits), 1);
    assert_string_equal(mgw_faults_state(f), "down");
    assert_int_equal(eval(f, event(MGW_EV_ACCEPT, 2), hits), 1);
    assert_int_equal(hits[0].action->type, MGW_ACT_SILENT);
    assert_int_equal(mgw_faults_set_state(f, "up"), 0);
    assert_int_equal(eval(f, event(MGW_EV_ACCEPT, 3), hits), 0);
    mgw_faults_free(f);
}

/* A probability rule's decisions, as a string of 0/1 over n events. */
static void decisions(uint64_t seed, double p, char *out, unsigned n)
{
    struct mgw_faults *f = mgw_faults_new(seed);
    struct mgw_fault_hit hits[16];
    struct mgw_rule *r = rule(BIT(MGW_EV_REQUEST), MGW_ACT_IGNORE);

    r->match.probability = p;
    mgw_faults_add(f, r);
    for (unsigned i = 0; i < n; i++) {
        unsigned k = eval(f, event(MGW_EV_REQUEST, 1), hits);

        out[i] = k ? '1' : '0';
        if (k)
            assert_true(hits[0].draw >= 0 && hits[0].draw < p);
    }
    out[n] = '\0';
    mgw_faults_free(f);
}

static void fault_same_seed_same_decisions(void **state)
{
    char a[201], b[201], c[201];
    unsigned ones = 0;

    (void)state;
    decisions(42, 0.5, a, 200);
    decisions(42, 0.5, b, 200);
    decisions(43, 0.5, c, 200);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    for (unsigned i = 0; i < 200; i++)
        ones += a[i] == '1';
    assert_in_range(ones, 60, 140); /* a fair coin, generously */
    decisions(42, 0.0, a, 50);
    assert_null(strchr(a, '1'));
}

static void fault_deterministic_rules_do_not_shift_draws(void **state)
{
    struct mgw_faults *f = mgw_faults_new(7), *g = mgw_faults_new(7);
    struct mgw_fault_hit hits[16];
    struct mgw_rule *r;

    (void)state;
    /* g has an extra always-on rule in front: the random rule must decide the same. */
    mgw_faults_add(g, rule(BIT(MGW_EV_REQUEST), MGW_ACT_DELAY));
    r = rule(BIT(MGW_EV_REQUEST), MGW_ACT_IGNORE);
    r->match.probability = 0.3;
    mgw_faults_add(f, r);
    r = rule(BIT(MGW_EV_REQUEST), MGW_ACT_IGNORE);
    r->match.probability = 0.3;
    mgw_faults_add(g, r);
    for (int i = 0; i < 100; i++) {
        unsigned nf = eval(f, event(MGW_EV_REQUEST, 1), hits);
        double df = nf ? hits[0].draw : -1;
        unsigned ng = eval(g, event(MGW_EV_REQUEST, 1), hits);
        double dg = ng == 2 ? hits[1].draw : -1;

        assert_int_equal(nf, ng - 1);
        assert_true(df == dg);
    }
    mgw_faults_free(f);
    mgw_faults_free(g);
}

static void fault_replace_update_keep_ids_and_reset_hits(void **state)
{
    struct mgw_faults *f = mgw_faults_new(1);
    struct mgw_fault_hit hits[16];
    struct mgw_rule *rules[2];

    (void)state;
    mgw_faults_add(f, rule(BIT(MGW_EV_ACCEPT), MGW_ACT_SILENT));
    eval(f, event(MGW_EV_ACCEPT, 1), hits);
    rules[0] = rule(BIT(MGW_EV_READY), MGW_ACT_CLOSE);
    rules[1] = rule(BIT(MGW_EV_READY), MGW_ACT_RESET);
    assert_int_equal(mgw_faults_replace(f, rules, 2), 0);
    assert_int_equal(mgw_faults_count(f), 2);
    assert_true(mgw_faults_at(f, 0)->id == 2 && mgw_faults_at(f, 1)->id == 3);
    assert_false(mgw_faults_watch(f, MGW_EV_ACCEPT));
    eval(f, event(MGW_EV_READY, 1), hits);
    assert_int_equal(mgw_faults_update(f, 2, rule(BIT(MGW_EV_HELLO), MGW_ACT_DELAY)), 0);
    assert_true(mgw_faults_get(f, 2)->hits == 0);
    assert_int_equal(mgw_faults_get(f, 2)->action.type, MGW_ACT_DELAY);
    assert_true(mgw_faults_watch(f, MGW_EV_HELLO));
    assert_int_equal(mgw_faults_update(f, 99, rule(0, MGW_ACT_DELAY)), -ENOENT);
    assert_int_equal(mgw_faults_reset(f, 1, "normal"), 0);
    assert_int_equal(mgw_faults_count(f), 0);
    mgw_faults_free(f);
}

static void fault_rule_and_action_copies_are_deep(void **state)
{
    struct mgw_rule *r = rule(BIT(MGW_EV_READY), MGW_ACT_ERROR), *c;

    (void)state;
    r->name = strdup("flap");
    r->match.state = strdup("up");
    r->action.text = strdup("lost");
    r->action.set_state = strdup("down");
    r->action.then = calloc(1, sizeof *r->action.then);
    r->action.then[0].text = strdup("back");
    r->action.n_then = 1;
    c = mgw_rule_copy(r);
    mgw_rule_free(r); /* the copy must not point into the original */
    assert_string_equal(c->name, "flap");
    assert_string_equal(c->match.state, "up");
    assert_string_equal(c->action.text, "lost");
    assert_string_equal(c->action.set_state, "down");
    assert_string_equal(c->action.then[0].text, "back");
    mgw_rule_free(c);
}

static void fault_draws_are_uniform_units(void **state)
{
    struct mgw_faults *f = mgw_faults_new(99);
    double sum = 0;

    (void)state;
    for (int i = 0; i < 10000; i++) {
        double u = mgw_faults_draw_unit(f);

        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(sum / 10000 > 0.45 && sum / 10000 < 0.55);
    mgw_faults_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fault_phase_and_keys_must_all_match),
        cmocka_unit_test(fault_watch_is_the_union_of_phases),
        cmocka_unit_test(fault_every_matching_rule_fires_until_one_ends_the_event),
        cmocka_unit_test(fault_times_disarms_the_rule),
        cmocka_unit_test(fault_sequence_is_per_attempt_then_normal),
        cmocka_unit_test(fault_named_states_gate_and_switch),
        cmocka_unit_test(fault_same_seed_same_decisions),
        cmocka_unit_test(fault_deterministic_rules_do_not_shift_draws),
        cmocka_unit_test(fault_replace_update_keep_ids_and_reset_hits),
        cmocka_unit_test(fault_rule_and_action_copies_are_deep),
        cmocka_unit_test(fault_draws_are_uniform_units),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
