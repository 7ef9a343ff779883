/* Scripts, rules and presets: the documented example, every action and match key, defaults,
 * round trips through JSON, deep copies, presets, and every loader error with its exact text. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "fault.h"

#define BIT(p) (1u << (p))

/* Test JSON is written with ' for ": returns an exact-size heap copy with " and no NUL, so
 * ASan catches any read past len. */
static char *dq(const char *in, size_t *len)
{
    size_t n = strlen(in);
    char *out = malloc(n > 0 ? n : 1);

    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] == '\'' ? '"' : in[i];
    *len = n;
    return out;
}

static struct mgw_script *parse(const char *json, struct mgw_err *err)
{
    size_t len;
    char *copy = dq(json, &len);
    struct mgw_script *s = mgw_script_parse(copy, len, "t.json", err);

    free(copy);
    return s;
}

static struct mgw_script *parse_ok(const char *json)
{
    struct mgw_err err;
    struct mgw_script *s = parse(json, &err);

    if (s == NULL)
        fail_msg("rejected: %s\n  %s", json, err.msg);
    return s;
}

/* One rule through mgw_rule_parse (the admin API's entry point). */
static struct mgw_rule *rule_parse(const char *json, const char *name, const char *path,
                                   struct mgw_err *err)
{
    size_t len;
    char *copy = dq(json, &len);
    cJSON *doc = cJSON_ParseWithLength(copy, len);
    struct mgw_rule *r;

    free(copy);
    if (doc == NULL)
        fail_msg("test JSON does not parse: %s", json);
    r = mgw_rule_parse(doc, name, path, err);
    cJSON_Delete(doc);
    return r;
}

static struct mgw_rule *rule_ok(const char *json)
{
    struct mgw_err err;
    struct mgw_rule *r = rule_parse(json, "t", "$", &err);

    if (r == NULL)
        fail_msg("rejected: %s\n  %s", json, err.msg);
    return r;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool action_eq(const struct mgw_action *a, const struct mgw_action *b)
{
    if (a->type != b->type || a->after_ms != b->after_ms || !str_eq(a->set_state, b->set_state) ||
        a->ms != b->ms || a->jitter_ms != b->jitter_ms || a->id != b->id || a->code != b->code ||
        !str_eq(a->text, b->text) || a->n_then != b->n_then || a->bytes != b->bytes ||
        a->pause_ms != b->pause_ms || a->bytes_per_s != b->bytes_per_s || a->length != b->length ||
        a->down_ms != b->down_ms || a->reset != b->reset)
        return false;
    for (unsigned i = 0; i < a->n_then; i++) {
        if (a->then[i].after_ms != b->then[i].after_ms || a->then[i].id != b->then[i].id ||
            a->then[i].code != b->then[i].code || !str_eq(a->then[i].text, b->then[i].text))
            return false;
    }
    return true;
}

/* Everything a script defines (not id and hits, which the engine owns). */
static bool rule_eq(const struct mgw_rule *a, const struct mgw_rule *b)
{
    const struct mgw_match *m = &a->match, *n = &b->match;

    if (!str_eq(a->name, b->name) || a->times != b->times || a->n_sequence != b->n_sequence)
        return false;
    if (m->phases != n->phases || m->msg_id != n->msg_id || m->has_client_id != n->has_client_id ||
        m->client_id != n->client_id || m->conn_from != n->conn_from || m->conn_to != n->conn_to ||
        m->nth != n->nth || m->after_ms != n->after_ms || m->probability != n->probability ||
        !str_eq(m->state, n->state))
        return false;
    if (a->n_sequence == 0)
        return action_eq(&a->action, &b->action);
    for (unsigned i = 0; i < a->n_sequence; i++) {
        if (!action_eq(&a->sequence[i], &b->sequence[i]))
            return false;
    }
    return true;
}

/* to_json, then parse: the same rule. */
static void assert_round_trip(const struct mgw_rule *r)
{
    struct mgw_err err;
    struct mgw_rule *back;
    cJSON *j = mgw_rule_to_json(r);
    char *text;

    assert_non_null(j);
    text = cJSON_PrintUnformatted(j);
    assert_non_null(text);
    back = mgw_rule_parse(j, "round-trip", "$", &err);
    if (back == NULL)
        fail_msg("to_json output does not parse: %s\n  %s", text, err.msg);
    if (!rule_eq(r, back))
        fail_msg("round trip changed the rule: %s", text);
    mgw_rule_free(back);
    cJSON_free(text);
    cJSON_Delete(j);
}

/* ---------------------------------------------------------------------------------------------
 * Names
 */
static void phase_names_round_trip(void **state)
{
    static const char *const names[] = { "accept",    "hello", "version_sent",
                                         "start_api", "ready", "request" };

    (void)state;
    for (int p = 0; p < MGW_EV_COUNT; p++) {
        assert_string_equal(mgw_event_phase_name((enum mgw_event_phase)p), names[p]);
        assert_int_equal(mgw_event_phase_parse(names[p]), p);
    }
    assert_null(mgw_event_phase_name(MGW_EV_COUNT));
    assert_null(mgw_event_phase_name((enum mgw_event_phase) - 1));
    assert_int_equal(mgw_event_phase_parse("Accept"), -1);
    assert_int_equal(mgw_event_phase_parse(""), -1);
    assert_int_equal(mgw_event_phase_parse(NULL), -1);
}

static void action_names_round_trip_and_listener_set(void **state)
{
    unsigned listeners = 0;

    (void)state;
    for (int t = 0; t < MGW_ACT_COUNT; t++) {
        const char *n = mgw_action_name((enum mgw_action_type)t);

        assert_non_null(n);
        assert_int_equal(mgw_action_parse(n), t);
        if (mgw_action_is_listener((enum mgw_action_type)t))
            listeners |= 1u << t;
    }
    assert_string_equal(mgw_action_name(MGW_ACT_REFUSE_CLIENT_ID), "refuse_client_id");
    assert_string_equal(mgw_action_name(MGW_ACT_HALF_CLOSE), "half_close");
    assert_null(mgw_action_name(MGW_ACT_COUNT));
    assert_int_equal(mgw_action_parse("explode"), -1);
    assert_int_equal(mgw_action_parse("SILENT"), -1);
    assert_int_equal(mgw_action_parse(NULL), -1);
    assert_int_equal(listeners, (1u << MGW_ACT_REFUSE) | (1u << MGW_ACT_BLACKHOLE) |
                                    (1u << MGW_ACT_ACCEPT) | (1u << MGW_ACT_RESTART));
}

/* ---------------------------------------------------------------------------------------------
 * Valid scripts
 */
/* The first ```json block of docs/script-format.md: the example must load as documented. */
static char *doc_example(void)
{
    static const char path[] = MGW_SOURCE_DIR "/docs/script-format.md";
    char *doc, *start, *end, *out;
    long size;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        fail_msg("%s: cannot open", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    doc = malloc((size_t)size + 1);
    assert_non_null(doc);
    assert_int_equal(fread(doc, 1, (size_t)size, f), (size_t)size);
    doc[size] = '\0';
    fclose(f);
    start = strstr(doc, "```json\n");
    assert_non_null(start);
    start += strlen("```json\n");
    end = strstr(start, "```");
    assert_non_null(end);
    out = strndup(start, (size_t)(end - start));
    assert_non_null(out);
    free(doc);
    return out;
}

static void script_doc_example_loads_as_documented(void **state)
{
    char *json = doc_example();
    struct mgw_err err;
    struct mgw_script *s = mgw_script_parse(json, strlen(json), "doc", &err);
    const struct mgw_script_settings *st;
    const struct mgw_rule *r;

    (void)state;
    if (s == NULL)
        fail_msg("%s", err.msg);
    free(json);
    st = &s->settings;
    assert_true(st->has_max_clients);
    assert_int_equal(st->max_clients, 32);
    assert_false(st->has_server_version || st->has_accounts || st->has_next_valid_id ||
                 st->has_unique_client_ids || st->has_pace_current_time ||
                 st->has_handshake_timeout_ms);
    assert_int_equal(st->n_busy_client_ids, 1);
    assert_int_equal(st->busy_client_ids[0], 7);
    assert_int_equal(st->stale_client_id_ms, 5000);
    assert_int_equal(st->listener, MGW_LISTEN_NORMAL);
    assert_int_equal(st->accept_delay_ms, 0);
    assert_int_equal(st->restart_every_ms, 60000);
    assert_int_equal(st->restart_down_ms, 5000);
    assert_string_equal(s->state, "normal");
    assert_int_equal(s->n_rules, 3);

    r = s->rules[0];
    assert_string_equal(r->name, "first-connect-silent");
    assert_int_equal(r->match.phases, BIT(MGW_EV_ACCEPT));
    assert_int_equal(r->match.conn_from, 1);
    assert_int_equal(r->match.conn_to, 1);
    assert_int_equal(r->action.type, MGW_ACT_SILENT);
    assert_int_equal(r->n_sequence, 0);
    assert_int_equal(r->times, 0);
    assert_int_equal(r->id, 0);

    r = s->rules[1];
    assert_string_equal(r->name, "id-1-taken-twice");
    assert_int_equal(r->match.phases, BIT(MGW_EV_START_API));
    assert_true(r->match.has_client_id);
    assert_int_equal(r->match.client_id, 1);
    assert_int_equal(r->n_sequence, 2);
    assert_int_equal(r->sequence[0].type, MGW_ACT_REFUSE_CLIENT_ID);
    assert_int_equal(r->sequence[1].type, MGW_ACT_REFUSE_CLIENT_ID);

    r = s->rules[2];
    assert_string_equal(r->name, "flap");
    assert_int_equal(r->match.phases, BIT(MGW_EV_READY));
    assert_int_equal(r->action.type, MGW_ACT_ERROR);
    assert_int_equal(r->action.code, 1100);
    assert_int_equal(r->action.after_ms, 2000);
    assert_int_equal(r->action.id, -1);
    assert_string_equal(r->action.text,
                        "Connectivity between IBKR and Trader Workstation has been lost.");
    assert_int_equal(r->action.n_then, 1);
    assert_int_equal(r->action.then[0].after_ms, 3000);
    assert_int_equal(r->action.then[0].code, 1102);
    assert_int_equal(r->action.then[0].id, -1);
    assert_string_equal(r->action.then[0].text, "Connectivity between IBKR and Trader "
                                                "Workstation has been restored - data maintained.");
    assert_int_equal(r->times, 1);
    mgw_script_free(s);
}

static void script_empty_object_gives_defaults(void **state)
{
    struct mgw_script *s = parse_ok("{}");
    struct mgw_script *n = mgw_script_new();
    const struct mgw_script *both[] = { s, n };

    (void)state;
    assert_non_null(n);
    for (int i = 0; i < 2; i++) {
        const struct mgw_script_settings *st = &both[i]->settings;

        assert_string_equal(both[i]->state, "normal");
        assert_int_equal(both[i]->n_rules, 0);
        assert_false(st->has_server_version || st->has_accounts || st->has_next_valid_id ||
                     st->has_max_clients || st->has_unique_client_ids ||
                     st->has_pace_current_time || st->has_handshake_timeout_ms);
        assert_null(st->accounts);
        assert_int_equal(st->n_busy_client_ids, 0);
        assert_int_equal(st->listener, MGW_LISTEN_NORMAL);
        assert_int_equal(st->stale_client_id_ms, 0);
        assert_int_equal(st->accept_delay_ms, 0);
        assert_int_equal(st->restart_every_ms, 0);
    }
    mgw_script_free(s);
    mgw_script_free(n);
    s = parse_ok(" \n{ 'settings': {}, 'rules': [] }\r\n\t");
    assert_int_equal(s->n_rules, 0);
    mgw_script_free(s);
}

static void script_every_setting_is_read(void **state)
{
    struct mgw_script *s =
        parse_ok("{'settings': {'server_version': 176, 'accounts': 'DU111,DU222', "
                 "'next_valid_id': 1000, 'max_clients': 0, 'unique_client_ids': false, "
                 "'pace_current_time': false, 'handshake_timeout_ms': 2500, "
                 "'busy_client_ids': [3, -4, 0], 'stale_client_id_ms': 86400000, "
                 "'listener': 'blackhole', 'accept_delay_ms': 250, "
                 "'restart_every': {'every_ms': 1, 'down_ms': 0}}, 'state': 'up'}");
    const struct mgw_script_settings *st = &s->settings;

    (void)state;
    assert_true(st->has_server_version && st->has_accounts && st->has_next_valid_id &&
                st->has_max_clients && st->has_unique_client_ids && st->has_pace_current_time &&
                st->has_handshake_timeout_ms);
    assert_int_equal(st->server_version, 176);
    assert_string_equal(st->accounts, "DU111,DU222");
    assert_int_equal(st->next_valid_id, 1000);
    assert_int_equal(st->max_clients, 0);
    assert_false(st->unique_client_ids);
    assert_false(st->pace_current_time);
    assert_int_equal(st->handshake_timeout_ms, 2500);
    assert_int_equal(st->n_busy_client_ids, 3);
    assert_int_equal(st->busy_client_ids[0], 3);
    assert_int_equal(st->busy_client_ids[1], -4);
    assert_int_equal(st->busy_client_ids[2], 0);
    assert_int_equal(st->stale_client_id_ms, 86400000);
    assert_int_equal(st->listener, MGW_LISTEN_BLACKHOLE);
    assert_int_equal(st->accept_delay_ms, 250);
    assert_int_equal(st->restart_every_ms, 1);
    assert_int_equal(st->restart_down_ms, 0);
    assert_string_equal(s->state, "up");
    mgw_script_free(s);

    s = parse_ok("{'settings': {'server_version': 100, 'listener': 'refuse', "
                 "'unique_client_ids': true, 'pace_current_time': true, 'busy_client_ids': [],"
                 "'accounts': 'A'}}");
    assert_int_equal(s->settings.server_version, 100);
    assert_int_equal(s->settings.listener, MGW_LISTEN_REFUSE);
    assert_true(s->settings.unique_client_ids);
    assert_true(s->settings.pace_current_time);
    assert_int_equal(s->settings.n_busy_client_ids, 0);
    assert_string_equal(s->settings.accounts, "A");
    mgw_script_free(s);
    s = parse_ok("{'settings': {'server_version': 200, 'listener': 'normal'}}");
    assert_int_equal(s->settings.server_version, 200);
    assert_int_equal(s->settings.listener, MGW_LISTEN_NORMAL);
    mgw_script_free(s);
}

static void rule_defaults(void **state)
{
    struct mgw_rule *r = rule_ok("{'action': {'type': 'close'}}");

    (void)state;
    assert_null(r->name);
    assert_int_equal(r->id, 0);
    assert_int_equal(r->hits, 0);
    assert_int_equal(r->times, 0);
    assert_int_equal(r->match.phases, 0);
    assert_int_equal(r->match.msg_id, -1);
    assert_false(r->match.has_client_id);
    assert_int_equal(r->match.conn_from, 0);
    assert_int_equal(r->match.conn_to, 0);
    assert_int_equal(r->match.nth, 0);
    assert_int_equal(r->match.after_ms, 0);
    assert_true(r->match.probability == 1.0);
    assert_null(r->match.state);
    assert_int_equal(r->action.type, MGW_ACT_CLOSE);
    assert_int_equal(r->action.after_ms, 0);
    assert_null(r->action.set_state);
    assert_int_equal(r->action.id, -1);
    assert_int_equal(r->n_sequence, 0);
    assert_null(r->sequence);
    mgw_rule_free(r);

    /* An empty match is every event. */
    r = rule_ok("{'match': {}, 'action': {'type': 'none'}}");
    assert_int_equal(r->match.phases, 0);
    mgw_rule_free(r);
}

static void rule_every_match_key_is_read(void **state)
{
    struct mgw_rule *r;

    (void)state;
    r = rule_ok("{'name': 'all keys', 'match': {'phase': 'request', 'msg': 'reqCurrentTime', "
                "'client_id': -7, 'conn': [2, 5], 'nth': 3, 'after_ms': 1500, "
                "'probability': 0.25, 'state': 'degraded'}, 'action': {'type': 'ignore'}, "
                "'times': 4}");
    assert_string_equal(r->name, "all keys");
    assert_int_equal(r->match.phases, BIT(MGW_EV_REQUEST));
    assert_int_equal(r->match.msg_id, 49);
    assert_true(r->match.has_client_id);
    assert_int_equal(r->match.client_id, -7);
    assert_int_equal(r->match.conn_from, 2);
    assert_int_equal(r->match.conn_to, 5);
    assert_int_equal(r->match.nth, 3);
    assert_int_equal(r->match.after_ms, 1500);
    assert_true(r->match.probability == 0.25);
    assert_string_equal(r->match.state, "degraded");
    assert_int_equal(r->times, 4);
    assert_round_trip(r);
    mgw_rule_free(r);

    r = rule_ok("{'match': {'phase': ['request'], 'msg': 20, 'conn': 7, 'probability': 0}, "
                "'action': {'type': 'close'}}");
    assert_int_equal(r->match.msg_id, 20);
    assert_int_equal(r->match.conn_from, 7);
    assert_int_equal(r->match.conn_to, 7);
    assert_true(r->match.probability == 0.0);
    assert_round_trip(r);
    mgw_rule_free(r);

    /* An id with no name in our table, a one-element range, certainty. */
    r = rule_ok("{'match': {'phase': 'request', 'msg': 999, 'conn': [3, 3], 'probability': 1}, "
                "'action': {'type': 'close'}}");
    assert_int_equal(r->match.msg_id, 999);
    assert_int_equal(r->match.conn_from, 3);
    assert_int_equal(r->match.conn_to, 3);
    assert_round_trip(r);
    mgw_rule_free(r);

    r = rule_ok("{'match': {'phase': 'request', 'msg': 'reqHistoricalData'}, "
                "'action': {'type': 'close'}}");
    assert_int_equal(r->match.msg_id, 20);
    mgw_rule_free(r);
    r = rule_ok("{'match': {'phase': 'request', 'msg': 0}, 'action': {'type': 'close'}}");
    assert_int_equal(r->match.msg_id, 0);
    assert_round_trip(r);
    mgw_rule_free(r);

    /* Every phase, in any order; the client id is fine when one of them knows it. */
    r = rule_ok("{'match': {'phase': ['request', 'accept', 'hello', 'version_sent', "
                "'start_api', 'ready'], 'client_id': 0}, 'action': {'type': 'reset'}}");
    assert_int_equal(r->match.phases, (1u << MGW_EV_COUNT) - 1);
    assert_round_trip(r);
    mgw_rule_free(r);
    r = rule_ok("{'match': {'phase': ['accept', 'start_api'], 'client_id': 2147483647}, "
                "'action': {'type': 'reset'}}");
    assert_int_equal(r->match.phases, BIT(MGW_EV_ACCEPT) | BIT(MGW_EV_START_API));
    assert_int_equal(r->match.client_id, 2147483647);
    assert_round_trip(r);
    mgw_rule_free(r);
    r = rule_ok("{'match': {'client_id': -2147483648}, 'action': {'type': 'reset'}}");
    assert_int_equal(r->match.client_id, -2147483648);
    mgw_rule_free(r);

    /* Each phase alone. */
    for (int p = 0; p < MGW_EV_COUNT; p++) {
        char json[128];

        snprintf(json, sizeof json, "{'match': {'phase': '%s'}, 'action': {'type': 'silent'}}",
                 mgw_event_phase_name((enum mgw_event_phase)p));
        r = rule_ok(json);
        assert_int_equal(r->match.phases, BIT(p));
        assert_round_trip(r);
        mgw_rule_free(r);
    }
}

/* Every action type with its parameters, at a phase where it is allowed. */
static const struct {
    const char *json;
    enum mgw_action_type type;
} every_action[] = {
    { "{'type': 'none'}", MGW_ACT_NONE },
    { "{'type': 'silent', 'after_ms': 100}", MGW_ACT_SILENT },
    { "{'type': 'close', 'set_state': 'closed'}", MGW_ACT_CLOSE },
    { "{'type': 'reset', 'after_ms': 86400000}", MGW_ACT_RESET },
    { "{'type': 'half_close'}", MGW_ACT_HALF_CLOSE },
    { "{'type': 'delay', 'ms': 500, 'jitter_ms': 200}", MGW_ACT_DELAY },
    { "{'type': 'error', 'code': 162, 'text': 'pacing', 'id': 12, "
      "'then': [{'after_ms': 5, 'code': 1102, 'text': 'back', 'id': 3}, {'code': 2104}]}",
      MGW_ACT_ERROR },
    { "{'type': 'ignore'}", MGW_ACT_IGNORE },
    { "{'type': 'refuse_client_id'}", MGW_ACT_REFUSE_CLIENT_ID },
    { "{'type': 'half_ready', 'set_state': 'half'}", MGW_ACT_HALF_READY },
    { "{'type': 'garbage', 'bytes': 1048576}", MGW_ACT_GARBAGE },
    { "{'type': 'bad_length', 'length': 4294967295}", MGW_ACT_BAD_LENGTH },
    { "{'type': 'truncate', 'bytes': 3}", MGW_ACT_TRUNCATE },
    { "{'type': 'slice', 'bytes': 2, 'pause_ms': 0}", MGW_ACT_SLICE },
    { "{'type': 'bandwidth', 'bytes_per_s': 1099511627776}", MGW_ACT_BANDWIDTH },
    { "{'type': 'limit_data', 'bytes': 0}", MGW_ACT_LIMIT_DATA },
    { "{'type': 'hold'}", MGW_ACT_HOLD },
    { "{'type': 'release', 'after_ms': 1000}", MGW_ACT_RELEASE },
    { "{'type': 'refuse'}", MGW_ACT_REFUSE },
    { "{'type': 'blackhole'}", MGW_ACT_BLACKHOLE },
    { "{'type': 'accept'}", MGW_ACT_ACCEPT },
    { "{'type': 'restart', 'down_ms': 0, 'how': 'reset'}", MGW_ACT_RESTART },
};

static const char *phase_for(enum mgw_action_type t)
{
    switch (t) {
    case MGW_ACT_IGNORE:
        return "request";
    case MGW_ACT_REFUSE_CLIENT_ID:
    case MGW_ACT_HALF_READY:
        return "start_api";
    default:
        return "ready";
    }
}

static void action_every_type_parses_and_round_trips(void **state)
{
    unsigned seen = 0;

    (void)state;
    for (size_t i = 0; i < sizeof every_action / sizeof every_action[0]; i++) {
        char json[512];
        struct mgw_rule *r;

        snprintf(json, sizeof json, "{'match': {'phase': '%s'}, 'action': %s}",
                 phase_for(every_action[i].type), every_action[i].json);
        r = rule_ok(json);
        assert_int_equal(r->action.type, every_action[i].type);
        seen |= 1u << r->action.type;
        assert_round_trip(r);
        mgw_rule_free(r);

        /* The same action inside a sequence. */
        snprintf(json, sizeof json,
                 "{'match': {'phase': '%s'}, 'sequence': [{'type': 'none'}, %s]}",
                 phase_for(every_action[i].type), every_action[i].json);
        r = rule_ok(json);
        assert_int_equal(r->n_sequence, 2);
        assert_int_equal(r->sequence[1].type, every_action[i].type);
        assert_round_trip(r);
        mgw_rule_free(r);
    }
    assert_int_equal(seen, (1u << MGW_ACT_COUNT) - 1);
}

static void action_parameters_and_defaults(void **state)
{
    struct mgw_rule *r;
    const struct mgw_action *a;

    (void)state;
    r = rule_ok("{'action': {'type': 'delay', 'ms': 500, 'jitter_ms': 500, 'after_ms': 7, "
                "'set_state': 'slow'}}");
    a = &r->action;
    assert_int_equal(a->ms, 500);
    assert_int_equal(a->jitter_ms, 500);
    assert_int_equal(a->after_ms, 7);
    assert_string_equal(a->set_state, "slow");
    mgw_rule_free(r);

    r = rule_ok("{'action': {'type': 'delay', 'ms': 0}}");
    assert_int_equal(r->action.ms, 0);
    assert_int_equal(r->action.jitter_ms, 0);
    mgw_rule_free(r);

    r = rule_ok("{'action': {'type': 'error', 'code': 162, 'text': 'pacing', 'id': 12, "
                "'then': [{'after_ms': 5, 'code': 1102, 'text': 'back', 'id': 3}, "
                "{'code': 2104}]}}");
    a = &r->action;
    assert_int_equal(a->code, 162);
    assert_string_equal(a->text, "pacing");
    assert_int_equal(a->id, 12);
    assert_int_equal(a->n_then, 2);
    assert_int_equal(a->then[0].after_ms, 5);
    assert_int_equal(a->then[0].code, 1102);
    assert_string_equal(a->then[0].text, "back");
    assert_int_equal(a->then[0].id, 3);
    assert_int_equal(a->then[1].after_ms, 0);
    assert_int_equal(a->then[1].code, 2104);
    assert_string_equal(a->then[1].text, "Market data farm connection is OK:usfarm");
    assert_int_equal(a->then[1].id, -1);
    mgw_rule_free(r);

    /* An explicit empty text stays empty; "then": [] is no notices. */
    r = rule_ok("{'action': {'type': 'error', 'code': 1100, 'text': '', 'then': []}}");
    assert_string_equal(r->action.text, "");
    assert_int_equal(r->action.n_then, 0);
    assert_null(r->action.then);
    mgw_rule_free(r);

    r = rule_ok("{'action': {'type': 'garbage'}}");
    assert_int_equal(r->action.bytes, 16);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'bad_length'}}");
    assert_int_equal(r->action.length, 0x7fffffff);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'bad_length', 'length': 0}}");
    assert_int_equal(r->action.length, 0);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'truncate'}}");
    assert_int_equal(r->action.bytes, 0); /* half of the next frame */
    assert_round_trip(r);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'truncate', 'bytes': 16777219}}");
    assert_int_equal(r->action.bytes, 16777219);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'slice'}}");
    assert_int_equal(r->action.bytes, 1);
    assert_int_equal(r->action.pause_ms, 10);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'slice', 'bytes': 4, 'pause_ms': 250}}");
    assert_int_equal(r->action.bytes, 4);
    assert_int_equal(r->action.pause_ms, 250);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'bandwidth', 'bytes_per_s': 1}}");
    assert_int_equal(r->action.bytes_per_s, 1);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'limit_data', 'bytes': 4096}}");
    assert_int_equal(r->action.bytes, 4096);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'restart'}}");
    assert_int_equal(r->action.down_ms, 5000);
    assert_false(r->action.reset);
    assert_round_trip(r);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'restart', 'down_ms': 250, 'how': 'close'}}");
    assert_int_equal(r->action.down_ms, 250);
    assert_false(r->action.reset);
    mgw_rule_free(r);
    r = rule_ok("{'action': {'type': 'restart', 'how': 'reset'}}");
    assert_true(r->action.reset);
    mgw_rule_free(r);

    /* A whole number written as a float or with an exponent is an integer. */
    r = rule_ok("{'action': {'type': 'delay', 'ms': 1e3, 'jitter_ms': 2.0}}");
    assert_int_equal(r->action.ms, 1000);
    assert_int_equal(r->action.jitter_ms, 2);
    mgw_rule_free(r);
}

static void listener_actions_are_allowed_at_every_phase(void **state)
{
    static const char *const types[] = { "refuse", "blackhole", "accept", "restart" };

    (void)state;
    for (size_t t = 0; t < 4; t++) {
        for (int p = 0; p < MGW_EV_COUNT; p++) {
            char json[160];
            struct mgw_rule *r;

            snprintf(json, sizeof json, "{'match': {'phase': '%s'}, 'action': {'type': '%s'}}",
                     mgw_event_phase_name((enum mgw_event_phase)p), types[t]);
            r = rule_ok(json);
            assert_true(mgw_action_is_listener(r->action.type));
            mgw_rule_free(r);
        }
    }
}

static void error_text_defaults_to_ibs_text(void **state)
{
    static const struct {
        int code;
        const char *text;
    } known[] = {
        { 1100, "Connectivity between IBKR and Trader Workstation has been lost." },
        { 1101, "Connectivity between IBKR and Trader Workstation has been restored - data "
                "lost." },
        { 1102, "Connectivity between IBKR and Trader Workstation has been restored - data "
                "maintained." },
        { 2103, "Market data farm connection is broken:usfarm" },
        { 2104, "Market data farm connection is OK:usfarm" },
        { 2105, "HMDS data farm connection is broken:ushmds" },
        { 2106, "HMDS data farm connection is OK:ushmds" },
        { 2110, "Connectivity between Trader Workstation and server is broken. It will be "
                "restored automatically." },
        { 2157, "Sec-def data farm connection is broken:secdefnj" },
        { 2158, "Sec-def data farm connection is OK:secdefnj" },
        { 326, "Unable to connect as the client id is already in use. Retry with a unique "
               "client id." },
        { 100, "Max rate of messages per second has been exceeded:max=50 rec=138 (1)" },
        { 162, "Historical Market Data Service error message:Historical data request pacing "
               "violation" },
        { 200, "No security definition has been found for the request" },
        { 321, "Error validating request.-'bQ' : cause - The API interface is currently in "
               "Read-Only mode." },
        { 322, "Error processing request.-'bQ' : cause - Duplicate ticker id" },
        { 354, "Requested market data is not subscribed." },
        { 366, "No historical data query found for ticker id:42" },
        { 10167, "Requested market data is not subscribed. Displaying delayed market data." },
        { 10197, "No market data during competing live session" },
        { 504, "Not connected" },
        { 1300, "TWS socket port has been reset and this connection is being dropped. Please "
                "reconnect on the new port - 4002" },
        { 1234, "" },
        { 1, "" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char json[256];
        struct mgw_rule *r;

        snprintf(json, sizeof json,
                 "{'action': {'type': 'error', 'code': %d, 'id': 42, "
                 "'then': [{'code': %d, 'id': 42}]}}",
                 known[i].code, known[i].code);
        r = rule_ok(json);
        assert_string_equal(r->action.text, known[i].text);
        assert_string_equal(r->action.then[0].text, known[i].text);
        mgw_rule_free(r);
    }
    /* The request id goes into the texts that carry it, -1 included. */
    {
        struct mgw_rule *r = rule_ok("{'action': {'type': 'error', 'code': 300}}");

        assert_string_equal(r->action.text, "Can't find EId with tickerId:-1");
        mgw_rule_free(r);
    }
}

static void sequence_with_none_and_times(void **state)
{
    struct mgw_rule *r =
        rule_ok("{'name': 'cold start', 'match': {'phase': 'start_api'}, 'sequence': "
                "[{'type': 'silent'}, {'type': 'none', 'set_state': 'warm'}, "
                "{'type': 'refuse_client_id', 'after_ms': 10}], 'times': 2}");

    (void)state;
    assert_int_equal(r->n_sequence, 3);
    assert_int_equal(r->sequence[0].type, MGW_ACT_SILENT);
    assert_int_equal(r->sequence[1].type, MGW_ACT_NONE);
    assert_string_equal(r->sequence[1].set_state, "warm");
    assert_int_equal(r->sequence[2].type, MGW_ACT_REFUSE_CLIENT_ID);
    assert_int_equal(r->sequence[2].after_ms, 10);
    assert_int_equal(r->sequence[2].id, -1);
    assert_int_equal(r->times, 2);
    assert_round_trip(r);
    mgw_rule_free(r);
}

static void rule_parse_names_the_callers_path(void **state)
{
    struct mgw_err err;
    struct mgw_rule *r;

    (void)state;
    r = rule_parse("{'action': {'type': 'explode'}}", "POST /v1/rules", "$", &err);
    assert_null(r);
    assert_string_equal(err.msg, "POST /v1/rules: $.action.type: unknown action \"explode\"");
    r = rule_parse("{'action': {'type': 'close'}, 'times': 0}", "body", "$.rules[3]", &err);
    assert_null(r);
    assert_string_equal(err.msg, "body: $.rules[3].times: must be between 1 and 1000000000");
    r = rule_parse("[]", NULL, "$", &err);
    assert_null(r);
    assert_string_equal(err.msg, "$: expected an object");
    r = rule_parse("{'action': {}}", NULL, NULL, &err);
    assert_null(r);
    assert_string_equal(err.msg, "$.action: missing required key \"type\"");
    assert_null(mgw_rule_parse(NULL, "x", "$", &err));
    assert_string_equal(err.msg, "x: $: expected an object");
    r = rule_parse("{'action': {'type': 'close'}}", NULL, NULL, &err);
    assert_non_null(r);
    assert_string_equal(err.msg, "");
    mgw_rule_free(r);
}

/* ---------------------------------------------------------------------------------------------
 * to_json
 */
static void rule_to_json_writes_id_name_hits_and_spent(void **state)
{
    struct mgw_rule *r = rule_ok("{'match': {'phase': ['hello', 'ready'], 'conn': [1, 9]}, "
                                 "'action': {'type': 'close'}, 'times': 2}");
    const cJSON *v;
    cJSON *j;

    (void)state;
    /* Not yet in an engine: id 0, no name. */
    j = mgw_rule_to_json(r);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "id")->valuedouble, 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "name"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "hits")->valuedouble, 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "spent"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "times")->valuedouble, 2);
    v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "match"), "phase");
    assert_true(cJSON_IsArray(v));
    assert_string_equal(cJSON_GetArrayItem(v, 0)->valuestring, "hello");
    assert_string_equal(cJSON_GetArrayItem(v, 1)->valuestring, "ready");
    v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "match"), "conn");
    assert_true(cJSON_IsArray(v));
    assert_int_equal(cJSON_GetArrayItem(v, 1)->valuedouble, 9);
    cJSON_Delete(j);

    /* In an engine: "rule-<id>", and spent once times is reached. */
    r->id = 12;
    r->hits = 2;
    j = mgw_rule_to_json(r);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "name")->valuestring, "rule-12");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "id")->valuedouble, 12);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "hits")->valuedouble, 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "spent")));
    cJSON_Delete(j);
    mgw_rule_free(r);

    /* A sequence is spent after its last element; msg is written by name. */
    r = rule_ok("{'name': 'seq', 'match': {'phase': 'request', 'msg': 49}, "
                "'sequence': [{'type': 'none'}, {'type': 'ignore'}]}");
    r->id = 3;
    r->hits = 1;
    j = mgw_rule_to_json(r);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "name")->valuestring, "seq");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "spent"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "action"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "sequence")), 2);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "match"), "msg")
            ->valuestring,
        "reqCurrentTime");
    cJSON_Delete(j);
    r->hits = 2;
    j = mgw_rule_to_json(r);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "spent")));
    cJSON_Delete(j);
    assert_round_trip(r); /* id, hits and spent are accepted back and ignored */
    mgw_rule_free(r);
}

static void rule_to_json_then_parse_keeps_every_field(void **state)
{
    struct mgw_rule *r = rule_ok(
        "{'name': 'everything', 'match': {'phase': 'request', 'msg': 'reqMktData', "
        "'client_id': 5, 'conn': [4, 6], 'nth': 2, 'after_ms': 30, 'probability': 0.1, "
        "'state': 's1'}, 'action': {'type': 'error', 'code': 10197, 'id': 9, 'after_ms': 3, "
        "'set_state': 's2', 'then': [{'after_ms': 1, 'code': 10167}]}, 'times': 9}");
    char *text;
    cJSON *j;

    (void)state;
    assert_round_trip(r);
    /* The output is a valid rule on its own, even in a whole script. */
    j = mgw_rule_to_json(r);
    text = cJSON_PrintUnformatted(j);
    {
        char script[2048];
        struct mgw_script *s;
        struct mgw_err err;

        snprintf(script, sizeof script, "{\"rules\": [%s, %s]}", text, text);
        s = mgw_script_parse(script, strlen(script), "t.json", &err);
        if (s == NULL)
            fail_msg("%s", err.msg);
        assert_int_equal(s->n_rules, 2);
        assert_true(rule_eq(s->rules[1], r));
        mgw_script_free(s);
    }
    cJSON_free(text);
    cJSON_Delete(j);
    mgw_rule_free(r);
}

/* ---------------------------------------------------------------------------------------------
 * Copies
 */
static void script_copy_is_deep(void **state)
{
    char *json = doc_example();
    struct mgw_err err;
    struct mgw_script *s = mgw_script_parse(json, strlen(json), "doc", &err), *c;

    (void)state;
    free(json);
    assert_non_null(s);
    assert_int_equal(mgw_script_add_preset(s, "refuse-client-id=4,5", &err), 0);
    free(s->settings.accounts);
    s->settings.accounts = strdup("DU1,DU2");
    s->settings.has_accounts = true;
    s->rules[1]->hits = 1;
    s->rules[2]->id = 8;
    c = mgw_script_copy(s);
    assert_non_null(c);
    assert_ptr_not_equal(c->state, s->state);
    assert_ptr_not_equal(c->settings.accounts, s->settings.accounts);
    assert_ptr_not_equal(c->settings.busy_client_ids, s->settings.busy_client_ids);
    assert_ptr_not_equal(c->rules, s->rules);
    assert_int_equal(c->n_rules, s->n_rules);
    for (unsigned i = 0; i < s->n_rules; i++) {
        assert_ptr_not_equal(c->rules[i], s->rules[i]);
        assert_true(rule_eq(c->rules[i], s->rules[i]));
    }
    mgw_script_free(s);

    /* Everything still there after the original is gone. */
    assert_string_equal(c->state, "normal");
    assert_string_equal(c->settings.accounts, "DU1,DU2");
    assert_true(c->settings.has_accounts);
    assert_true(c->settings.has_max_clients);
    assert_int_equal(c->settings.max_clients, 32);
    assert_int_equal(c->settings.n_busy_client_ids, 1);
    assert_int_equal(c->settings.busy_client_ids[0], 7);
    assert_int_equal(c->settings.restart_every_ms, 60000);
    assert_int_equal(c->n_rules, 5);
    assert_string_equal(c->rules[0]->name, "first-connect-silent");
    assert_int_equal(c->rules[1]->hits, 1);
    assert_int_equal(c->rules[1]->n_sequence, 2);
    assert_int_equal(c->rules[2]->id, 8);
    assert_string_equal(c->rules[2]->action.then[0].text,
                        "Connectivity between IBKR and Trader Workstation has been restored - "
                        "data maintained.");
    assert_string_equal(c->rules[4]->name, "preset:refuse-client-id=5");
    mgw_script_free(c);

    s = mgw_script_new();
    c = mgw_script_copy(s);
    mgw_script_free(s);
    assert_non_null(c);
    assert_string_equal(c->state, "normal");
    assert_int_equal(c->n_rules, 0);
    assert_null(c->settings.accounts);
    assert_null(c->settings.busy_client_ids);
    mgw_script_free(c);
}

static void free_null_is_a_noop(void **state)
{
    (void)state;
    mgw_script_free(NULL);
    mgw_rule_free(NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Presets
 */
static struct mgw_script *with_presets(const char *const *presets)
{
    struct mgw_script *s = mgw_script_new();
    struct mgw_err err;

    assert_non_null(s);
    for (; *presets != NULL; presets++) {
        if (mgw_script_add_preset(s, *presets, &err) != 0)
            fail_msg("%s rejected: %s", *presets, err.msg);
        assert_string_equal(err.msg, "");
    }
    return s;
}

static void preset_rule_check(const struct mgw_rule *r, const char *name, unsigned phases,
                              enum mgw_action_type type)
{
    assert_string_equal(r->name, name);
    assert_int_equal(r->match.phases, phases);
    assert_int_equal(r->action.type, type);
    assert_int_equal(r->n_sequence, 0);
    assert_int_equal(r->times, 0);
}

static void preset_every_one(void **state)
{
    static const char *const all[] = {
        "silent",
        "silent-after-handshake",
        "silent-after-ready",
        "refuse-client-id=1,2,3",
        "drop-after-ready",
        "drop-after-ready=1500",
        "reset-after-ready",
        "reset-after-ready=0",
        "half-ready",
        "delay=250",
        "refuse-client-id=-5",
        NULL,
    };
    struct mgw_script *s = with_presets(all);
    struct mgw_rule *const *r = s->rules;

    (void)state;
    assert_int_equal(s->n_rules, 13);
    preset_rule_check(r[0], "preset:silent", BIT(MGW_EV_ACCEPT), MGW_ACT_SILENT);
    preset_rule_check(r[1], "preset:silent-after-handshake", BIT(MGW_EV_VERSION_SENT),
                      MGW_ACT_SILENT);
    preset_rule_check(r[2], "preset:silent-after-ready", BIT(MGW_EV_READY), MGW_ACT_SILENT);
    for (int i = 0; i < 3; i++) {
        char name[64];

        snprintf(name, sizeof name, "preset:refuse-client-id=%d", i + 1);
        preset_rule_check(r[3 + i], name, BIT(MGW_EV_START_API), MGW_ACT_REFUSE_CLIENT_ID);
        assert_true(r[3 + i]->match.has_client_id);
        assert_int_equal(r[3 + i]->match.client_id, i + 1);
    }
    preset_rule_check(r[6], "preset:drop-after-ready", BIT(MGW_EV_READY), MGW_ACT_CLOSE);
    assert_int_equal(r[6]->action.after_ms, 0);
    preset_rule_check(r[7], "preset:drop-after-ready=1500", BIT(MGW_EV_READY), MGW_ACT_CLOSE);
    assert_int_equal(r[7]->action.after_ms, 1500);
    preset_rule_check(r[8], "preset:reset-after-ready", BIT(MGW_EV_READY), MGW_ACT_RESET);
    assert_int_equal(r[8]->action.after_ms, 0);
    preset_rule_check(r[9], "preset:reset-after-ready=0", BIT(MGW_EV_READY), MGW_ACT_RESET);
    preset_rule_check(r[10], "preset:half-ready", BIT(MGW_EV_START_API), MGW_ACT_HALF_READY);
    preset_rule_check(r[11], "preset:delay=250", BIT(MGW_EV_ACCEPT), MGW_ACT_DELAY);
    assert_int_equal(r[11]->action.ms, 250);
    assert_int_equal(r[11]->action.jitter_ms, 0);
    assert_int_equal(r[12]->match.client_id, -5);
    for (unsigned i = 0; i < s->n_rules; i++)
        assert_round_trip(r[i]);
    /* Rule presets leave the settings alone. */
    assert_int_equal(s->settings.listener, MGW_LISTEN_NORMAL);
    assert_int_equal(s->settings.restart_every_ms, 0);
    mgw_script_free(s);
}

static void preset_settings_and_appending_after_script_rules(void **state)
{
    static const char *const refuse[] = { "refuse", NULL };
    static const char *const blackhole[] = { "refuse", "blackhole", "restart-every=60000:5000",
                                             NULL };
    struct mgw_script *s = with_presets(refuse);
    struct mgw_err err;

    (void)state;
    assert_int_equal(s->settings.listener, MGW_LISTEN_REFUSE);
    assert_int_equal(s->n_rules, 0);
    mgw_script_free(s);
    s = with_presets(blackhole);
    assert_int_equal(s->settings.listener, MGW_LISTEN_BLACKHOLE);
    assert_int_equal(s->settings.restart_every_ms, 60000);
    assert_int_equal(s->settings.restart_down_ms, 5000);
    mgw_script_free(s);

    /* Presets win over the script's settings and come after its rules. */
    s = parse_ok("{'settings': {'listener': 'normal', 'restart_every': {'every_ms': 10, "
                 "'down_ms': 1}}, 'rules': [{'name': 'mine', 'action': {'type': 'close'}}]}");
    assert_int_equal(mgw_script_add_preset(s, "blackhole", &err), 0);
    assert_int_equal(mgw_script_add_preset(s, "restart-every=1:0", &err), 0);
    assert_int_equal(mgw_script_add_preset(s, "silent", &err), 0);
    assert_int_equal(s->settings.listener, MGW_LISTEN_BLACKHOLE);
    assert_int_equal(s->settings.restart_every_ms, 1);
    assert_int_equal(s->settings.restart_down_ms, 0);
    assert_int_equal(s->n_rules, 2);
    assert_string_equal(s->rules[0]->name, "mine");
    assert_string_equal(s->rules[1]->name, "preset:silent");
    mgw_script_free(s);
}

static const struct {
    const char *preset;
    const char *msg;
} bad_presets[] = {
    { "explode", "--fault explode: unknown preset (known: silent, silent-after-handshake, "
                 "silent-after-ready, refuse-client-id=N[,M...], drop-after-ready[=MS], "
                 "reset-after-ready[=MS], half-ready, refuse, blackhole, delay=MS, "
                 "restart-every=MS:DOWN_MS)" },
    { "", "--fault : unknown preset (known: silent, silent-after-handshake, "
          "silent-after-ready, refuse-client-id=N[,M...], drop-after-ready[=MS], "
          "reset-after-ready[=MS], half-ready, refuse, blackhole, delay=MS, "
          "restart-every=MS:DOWN_MS)" },
    { "SILENT=1", "--fault SILENT=1: unknown preset (known: silent, silent-after-handshake, "
                  "silent-after-ready, refuse-client-id=N[,M...], drop-after-ready[=MS], "
                  "reset-after-ready[=MS], half-ready, refuse, blackhole, delay=MS, "
                  "restart-every=MS:DOWN_MS)" },
    { "silent=5", "--fault silent=5: takes no value" },
    { "silent=", "--fault silent=: takes no value" },
    { "refuse=1", "--fault refuse=1: takes no value" },
    { "half-ready=x", "--fault half-ready=x: takes no value" },
    { "delay", "--fault delay: needs a value (delay=MS)" },
    { "delay=", "--fault delay=: MS must be an integer 0..86400000" },
    { "delay=x", "--fault delay=x: MS must be an integer 0..86400000" },
    { "delay=-1", "--fault delay=-1: MS must be an integer 0..86400000" },
    { "delay=1.5", "--fault delay=1.5: MS must be an integer 0..86400000" },
    { "delay=86400001", "--fault delay=86400001: MS must be an integer 0..86400000" },
    { "drop-after-ready=", "--fault drop-after-ready=: MS must be an integer 0..86400000" },
    { "reset-after-ready=5s", "--fault reset-after-ready=5s: MS must be an integer 0..86400000" },
    { "refuse-client-id", "--fault refuse-client-id: needs a value (refuse-client-id=N[,M...])" },
    { "refuse-client-id=", "--fault refuse-client-id=: client id must be an integer" },
    { "refuse-client-id=x", "--fault refuse-client-id=x: client id must be an integer" },
    { "refuse-client-id=1,,2", "--fault refuse-client-id=1,,2: client id must be an integer" },
    { "refuse-client-id=1,", "--fault refuse-client-id=1,: client id must be an integer" },
    { "refuse-client-id= 1", "--fault refuse-client-id= 1: client id must be an integer" },
    { "refuse-client-id=2147483648",
      "--fault refuse-client-id=2147483648: client id must be an integer" },
    { "restart-every", "--fault restart-every: needs a value (restart-every=MS:DOWN_MS)" },
    { "restart-every=5", "--fault restart-every=5: expected restart-every=MS:DOWN_MS" },
    { "restart-every=0:0", "--fault restart-every=0:0: MS must be an integer 1..86400000" },
    { "restart-every=:5", "--fault restart-every=:5: MS must be an integer 1..86400000" },
    { "restart-every=1000:", "--fault restart-every=1000:: DOWN_MS must be an integer "
                             "0..86400000" },
    { "restart-every=1000:x", "--fault restart-every=1000:x: DOWN_MS must be an integer "
                              "0..86400000" },
    { "restart-every=1000:1000", "--fault restart-every=1000:1000: DOWN_MS must be less than "
                                 "MS" },
    { "restart-every=1000:5:6", "--fault restart-every=1000:5:6: DOWN_MS must be an integer "
                                "0..86400000" },
};

static void preset_rejects_bad_values_and_leaves_script_alone(void **state)
{
    struct mgw_script *s = parse_ok("{'rules': [{'action': {'type': 'close'}}]}");
    unsigned failures = 0;
    struct mgw_err err;

    (void)state;
    for (size_t i = 0; i < sizeof bad_presets / sizeof bad_presets[0]; i++) {
        int rc = mgw_script_add_preset(s, bad_presets[i].preset, &err);

        if (rc != -1 || strcmp(err.msg, bad_presets[i].msg) != 0) {
            print_error("preset \"%s\": rc %d\n  got:  %s\n  want: %s\n", bad_presets[i].preset, rc,
                        err.msg, bad_presets[i].msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    /* A bad id after good ones adds none of them. */
    assert_int_equal(mgw_script_add_preset(s, "refuse-client-id=1,2,x", &err), -1);
    assert_string_equal(err.msg, "--fault refuse-client-id=1,2,x: client id must be an integer");
    assert_int_equal(s->n_rules, 1);
    assert_int_equal(s->settings.listener, MGW_LISTEN_NORMAL);
    assert_int_equal(s->settings.restart_every_ms, 0);
    mgw_script_free(s);
}

static void preset_client_id_list_is_capped(void **state)
{
    char preset[1024] = "refuse-client-id=";
    struct mgw_script *s = mgw_script_new();
    struct mgw_err err;
    size_t n = strlen(preset);

    (void)state;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(preset + n, sizeof preset - n, "%s%d", i ? "," : "", i);
    assert_int_equal(mgw_script_add_preset(s, preset, &err), 0);
    assert_int_equal(s->n_rules, 100);
    snprintf(preset + n, sizeof preset - n, ",100");
    assert_int_equal(mgw_script_add_preset(s, preset, &err), -1);
    assert_non_null(strstr(err.msg, ": more than 100 client ids"));
    assert_int_equal(s->n_rules, 100);
    mgw_script_free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Invalid scripts: every error, exact text
 */
#define R(rule)   "{'rules': [" rule "]}"
#define A(action) R("{'action': " action "}")

static const struct {
    const char *json;
    const char *msg;
} bad_scripts[] = {
    /* JSON itself, the top level */
    { "", "t.json: empty input, expected a JSON object" },
    /* Positions are cJSON's: the last byte for a truncated document, and for a bad object key
     * one past the offending byte. */
    { "{", "t.json: invalid JSON at line 1, column 1" },
    { "{'rules': [1,]}", "t.json: invalid JSON at line 1, column 14" },
    { "{\n  'rules': [\n    {'action': {'type': 'close'},}\n  ]\n}",
      "t.json: invalid JSON at line 3, column 35" },
    { "{} x", "t.json: invalid JSON at line 1, column 4: text after the document" },
    { "{}\n{}", "t.json: invalid JSON at line 2, column 1: text after the document" },
    { "[]", "t.json: $: expected an object" },
    { "42", "t.json: $: expected an object" },
    { "null", "t.json: $: expected an object" },
    { "{'rulez': []}", "t.json: $.rulez: unknown key" },
    { "{'Rules': []}", "t.json: $.Rules: unknown key" },
    { "{'rules': [], 'rules': []}", "t.json: $.rules: key given twice" },
    { "{'rules': {}}", "t.json: $.rules: expected an array" },
    { "{'state': ''}", "t.json: $.state: must not be empty" },
    { "{'state': 5}", "t.json: $.state: expected a string" },
    { "{'state': null}", "t.json: $.state: expected a string" },
    { "{'state': 'a\\tb'}", "t.json: $.state: expected printable ASCII text" },
    { "{'state': 'caf\\u00e9'}", "t.json: $.state: expected printable ASCII text" },
    /* settings */
    { "{'settings': []}", "t.json: $.settings: expected an object" },
    { "{'settings': {'bogus': 1}}", "t.json: $.settings.bogus: unknown key" },
    { "{'settings': {'max_clients': 1, 'max_clients': 2}}",
      "t.json: $.settings.max_clients: key given twice" },
    { "{'settings': {'server_version': 99}}",
      "t.json: $.settings.server_version: must be between 100 and 200" },
    { "{'settings': {'server_version': 201}}",
      "t.json: $.settings.server_version: must be between 100 and 200" },
    { "{'settings': {'server_version': 150.5}}",
      "t.json: $.settings.server_version: expected an integer" },
    { "{'settings': {'server_version': '178'}}",
      "t.json: $.settings.server_version: expected an integer" },
    { "{'settings': {'accounts': ''}}", "t.json: $.settings.accounts: must not be empty" },
    { "{'settings': {'accounts': 5}}", "t.json: $.settings.accounts: expected a string" },
    { "{'settings': {'accounts': ['DU1']}}", "t.json: $.settings.accounts: expected a string" },
    { "{'settings': {'accounts': 'DU1, DU2'}}",
      "t.json: $.settings.accounts: account codes must be printable, without spaces" },
    { "{'settings': {'accounts': 'DU1,,DU2'}}",
      "t.json: $.settings.accounts: empty account code in the list" },
    { "{'settings': {'accounts': ',DU1'}}",
      "t.json: $.settings.accounts: empty account code in the list" },
    { "{'settings': {'accounts': 'DU1,'}}",
      "t.json: $.settings.accounts: empty account code in the list" },
    { "{'settings': {'next_valid_id': 0}}",
      "t.json: $.settings.next_valid_id: must be between 1 and 2147483647" },
    { "{'settings': {'next_valid_id': 2147483648}}",
      "t.json: $.settings.next_valid_id: must be between 1 and 2147483647" },
    { "{'settings': {'max_clients': -1}}",
      "t.json: $.settings.max_clients: must be between 0 and 2147483647" },
    { "{'settings': {'unique_client_ids': 1}}",
      "t.json: $.settings.unique_client_ids: expected true or false" },
    { "{'settings': {'pace_current_time': 'yes'}}",
      "t.json: $.settings.pace_current_time: expected true or false" },
    { "{'settings': {'handshake_timeout_ms': 0}}",
      "t.json: $.settings.handshake_timeout_ms: must be between 1 and 86400000" },
    { "{'settings': {'handshake_timeout_ms': 86400001}}",
      "t.json: $.settings.handshake_timeout_ms: must be between 1 and 86400000" },
    { "{'settings': {'busy_client_ids': 7}}",
      "t.json: $.settings.busy_client_ids: expected an array" },
    { "{'settings': {'busy_client_ids': [7, '8']}}",
      "t.json: $.settings.busy_client_ids[1]: expected an integer" },
    { "{'settings': {'busy_client_ids': [7, 1.5]}}",
      "t.json: $.settings.busy_client_ids[1]: expected an integer" },
    { "{'settings': {'busy_client_ids': [7, 8, 7]}}",
      "t.json: $.settings.busy_client_ids[2]: client id 7 given twice" },
    { "{'settings': {'busy_client_ids': [2147483648]}}",
      "t.json: $.settings.busy_client_ids[0]: must be between -2147483648 and 2147483647" },
    { "{'settings': {'stale_client_id_ms': -1}}",
      "t.json: $.settings.stale_client_id_ms: must be between 0 and 86400000" },
    { "{'settings': {'listener': 'closed'}}",
      "t.json: $.settings.listener: unknown listener mode \"closed\" (known: normal, refuse, "
      "blackhole)" },
    { "{'settings': {'listener': true}}", "t.json: $.settings.listener: expected a string" },
    { "{'settings': {'accept_delay_ms': 1.5}}",
      "t.json: $.settings.accept_delay_ms: expected an integer" },
    { "{'settings': {'accept_delay_ms': 1e300}}",
      "t.json: $.settings.accept_delay_ms: must be between 0 and 86400000" },
    { "{'settings': {'restart_every': 5}}",
      "t.json: $.settings.restart_every: expected an object" },
    { "{'settings': {'restart_every': {'every_ms': 1000}}}",
      "t.json: $.settings.restart_every: missing required key \"down_ms\"" },
    { "{'settings': {'restart_every': {'down_ms': 10}}}",
      "t.json: $.settings.restart_every: missing required key \"every_ms\"" },
    { "{'settings': {'restart_every': {'every_ms': 0, 'down_ms': 0}}}",
      "t.json: $.settings.restart_every.every_ms: must be between 1 and 86400000" },
    { "{'settings': {'restart_every': {'every_ms': 1000, 'down_ms': -1}}}",
      "t.json: $.settings.restart_every.down_ms: must be between 0 and 86400000" },
    { "{'settings': {'restart_every': {'every_ms': 1000, 'down_ms': 1000}}}",
      "t.json: $.settings.restart_every.down_ms: must be less than every_ms (1000)" },
    { "{'settings': {'restart_every': {'every_ms': 1000, 'down_ms': 10, 'x': 1}}}",
      "t.json: $.settings.restart_every.x: unknown key" },
    /* rules */
    { "{'rules': [5]}", "t.json: $.rules[0]: expected an object" },
    { "{'rules': [null]}", "t.json: $.rules[0]: expected an object" },
    { R("{}"), "t.json: $.rules[0]: missing \"action\" or \"sequence\"" },
    { R("{'action': {'type': 'close'}, 'sequence': [{'type': 'close'}]}"),
      "t.json: $.rules[0]: give either \"action\" or \"sequence\", not both" },
    { R("{'actoin': {'type': 'close'}}"), "t.json: $.rules[0].actoin: unknown key" },
    { R("{'action': {'type': 'close'}, 'action': {'type': 'reset'}}"),
      "t.json: $.rules[0].action: key given twice" },
    { R("{'name': '', 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].name: must not be empty" },
    { R("{'name': 5, 'action': {'type': 'close'}}"), "t.json: $.rules[0].name: expected a string" },
    { R("{'name': 'a\\nb', 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].name: expected printable ASCII text" },
    { R("{'action': {'type': 'close'}, 'times': 0}"),
      "t.json: $.rules[0].times: must be between 1 and 1000000000" },
    { R("{'action': {'type': 'close'}, 'times': 1.5}"),
      "t.json: $.rules[0].times: expected an integer" },
    { R("{'action': {'type': 'close'}, 'times': -3}"),
      "t.json: $.rules[0].times: must be between 1 and 1000000000" },
    { R("{'action': {'type': 'close'}, 'id': -1}"),
      "t.json: $.rules[0].id: must be between 0 and 9007199254740991" },
    { R("{'action': {'type': 'close'}, 'hits': 'x'}"),
      "t.json: $.rules[0].hits: expected an integer" },
    { R("{'action': {'type': 'close'}, 'spent': 1}"),
      "t.json: $.rules[0].spent: expected true or false" },
    { "{'rules': [{'action': {'type': 'close'}}, {'action': {'type': 'closed'}}]}",
      "t.json: $.rules[1].action.type: unknown action \"closed\"" },
    /* match */
    { R("{'match': [], 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match: expected an object" },
    { R("{'match': {'phse': 'ready'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phse: unknown key" },
    { R("{'match': {'phase': 'ready', 'phase': 'accept'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase: key given twice" },
    { R("{'match': {'phase': 'connect'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase: unknown phase \"connect\" (known: accept, hello, "
      "version_sent, start_api, ready, request)" },
    { R("{'match': {'phase': 'READY'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase: unknown phase \"READY\" (known: accept, hello, "
      "version_sent, start_api, ready, request)" },
    { R("{'match': {'phase': 3}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase: expected a string or an array of strings" },
    { R("{'match': {'phase': []}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase: must not be empty" },
    { R("{'match': {'phase': ['ready', 3]}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase[1]: expected a string" },
    { R("{'match': {'phase': ['ready', 'hallo']}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase[1]: unknown phase \"hallo\" (known: accept, hello, "
      "version_sent, start_api, ready, request)" },
    { R("{'match': {'phase': ['ready', 'ready']}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.phase[1]: phase \"ready\" given twice" },
    { R("{'match': {'msg': 49}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: needs match.phase \"request\" (and no other phase)" },
    { R("{'match': {'phase': 'ready', 'msg': 49}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: needs match.phase \"request\" (and no other phase)" },
    { R("{'match': {'phase': ['request', 'ready'], 'msg': 49}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: needs match.phase \"request\" (and no other phase)" },
    { R("{'match': {'phase': 'request', 'msg': 'reqFoo'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: unknown request \"reqFoo\"" },
    { R("{'match': {'phase': 'request', 'msg': 'currentTime'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: unknown request \"currentTime\"" },
    { R("{'match': {'phase': 'request', 'msg': 1000}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: must be between 0 and 999" },
    { R("{'match': {'phase': 'request', 'msg': -1}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: must be between 0 and 999" },
    { R("{'match': {'phase': 'request', 'msg': 4.5}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: expected an integer" },
    { R("{'match': {'phase': 'request', 'msg': true}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.msg: expected a request name or a message id" },
    { R("{'match': {'phase': 'ready', 'nth': 1}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.nth: needs match.phase \"request\" (and no other phase)" },
    { R("{'match': {'nth': 1}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.nth: needs match.phase \"request\" (and no other phase)" },
    { R("{'match': {'phase': 'request', 'nth': 0}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.nth: must be between 1 and 9007199254740991" },
    { R("{'match': {'client_id': '1'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.client_id: expected an integer" },
    { R("{'match': {'client_id': 2147483648}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.client_id: must be between -2147483648 and 2147483647" },
    { R("{'match': {'phase': ['accept', 'hello'], 'client_id': 1}, "
        "'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.client_id: the client id is known from phase \"start_api\" "
      "on" },
    { R("{'match': {'conn': 0}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn: must be between 1 and 9007199254740991" },
    { R("{'match': {'conn': -1}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn: must be between 1 and 9007199254740991" },
    { R("{'match': {'conn': 1.5}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn: expected an integer" },
    { R("{'match': {'conn': [3, 2]}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn: from (3) is greater than to (2)" },
    { R("{'match': {'conn': [1]}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn: expected an integer or [from, to]" },
    { R("{'match': {'conn': [1, 2, 3]}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn: expected an integer or [from, to]" },
    { R("{'match': {'conn': '1'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn: expected an integer or [from, to]" },
    { R("{'match': {'conn': [0, 2]}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn[0]: must be between 1 and 9007199254740991" },
    { R("{'match': {'conn': [1, '2']}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.conn[1]: expected an integer" },
    { R("{'match': {'after_ms': -5}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.after_ms: must be between 0 and 86400000" },
    { R("{'match': {'after_ms': 86400001}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.after_ms: must be between 0 and 86400000" },
    { R("{'match': {'probability': 1.5}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.probability: must be between 0 and 1" },
    { R("{'match': {'probability': -0.1}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.probability: must be between 0 and 1" },
    { R("{'match': {'probability': '0.5'}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.probability: expected a number" },
    { R("{'match': {'state': ''}, 'action': {'type': 'close'}}"),
      "t.json: $.rules[0].match.state: must not be empty" },
    /* actions */
    { A("'silent'"), "t.json: $.rules[0].action: expected an object" },
    { A("{}"), "t.json: $.rules[0].action: missing required key \"type\"" },
    { A("{'tpye': 'close'}"), "t.json: $.rules[0].action.tpye: unknown key" },
    { A("{'type': 5}"), "t.json: $.rules[0].action.type: expected a string" },
    { A("{'type': 'explode'}"), "t.json: $.rules[0].action.type: unknown action \"explode\"" },
    { A("{'type': 'Silent'}"), "t.json: $.rules[0].action.type: unknown action \"Silent\"" },
    { A("{'type': 'silent', 'bytes_per_s': 5}"),
      "t.json: $.rules[0].action.bytes_per_s: not a parameter of \"silent\"" },
    { A("{'type': 'close', 'then': []}"),
      "t.json: $.rules[0].action.then: not a parameter of \"close\"" },
    { A("{'type': 'garbage', 'ms': 5}"),
      "t.json: $.rules[0].action.ms: not a parameter of \"garbage\"" },
    { A("{'type': 'restart', 'code': 1100}"),
      "t.json: $.rules[0].action.code: not a parameter of \"restart\"" },
    { A("{'type': 'silent', 'foo': 1}"), "t.json: $.rules[0].action.foo: unknown key" },
    { A("{'type': 'silent', 'type': 'close'}"), "t.json: $.rules[0].action.type: key given twice" },
    { A("{'type': 'silent', 'after_ms': -1}"),
      "t.json: $.rules[0].action.after_ms: must be between 0 and 86400000" },
    { A("{'type': 'silent', 'after_ms': 1e9}"),
      "t.json: $.rules[0].action.after_ms: must be between 0 and 86400000" },
    { A("{'type': 'silent', 'after_ms': '5'}"),
      "t.json: $.rules[0].action.after_ms: expected an integer" },
    { A("{'type': 'silent', 'set_state': ''}"),
      "t.json: $.rules[0].action.set_state: must not be empty" },
    { A("{'type': 'silent', 'set_state': 1}"),
      "t.json: $.rules[0].action.set_state: expected a string" },
    { A("{'type': 'delay'}"), "t.json: $.rules[0].action: missing required key \"ms\"" },
    { A("{'type': 'delay', 'jitter_ms': 5}"),
      "t.json: $.rules[0].action: missing required key \"ms\"" },
    { A("{'type': 'delay', 'ms': -1}"),
      "t.json: $.rules[0].action.ms: must be between 0 and 86400000" },
    { A("{'type': 'delay', 'ms': 100, 'jitter_ms': 101}"),
      "t.json: $.rules[0].action.jitter_ms: must not be greater than ms (100)" },
    { A("{'type': 'error'}"), "t.json: $.rules[0].action: missing required key \"code\"" },
    { A("{'type': 'error', 'code': 0}"),
      "t.json: $.rules[0].action.code: must be between 1 and 99999" },
    { A("{'type': 'error', 'code': 100000}"),
      "t.json: $.rules[0].action.code: must be between 1 and 99999" },
    { A("{'type': 'error', 'code': 1100.5}"),
      "t.json: $.rules[0].action.code: expected an integer" },
    { A("{'type': 'error', 'code': '1100'}"),
      "t.json: $.rules[0].action.code: expected an integer" },
    { A("{'type': 'error', 'code': 1100, 'id': -2}"),
      "t.json: $.rules[0].action.id: must be between -1 and 2147483647" },
    { A("{'type': 'error', 'code': 1100, 'text': 5}"),
      "t.json: $.rules[0].action.text: expected a string" },
    { A("{'type': 'error', 'code': 1100, 'text': 'a\\u0007b'}"),
      "t.json: $.rules[0].action.text: control characters are not allowed" },
    { A("{'type': 'error', 'code': 1100, 'then': {}}"),
      "t.json: $.rules[0].action.then: expected an array" },
    { A("{'type': 'error', 'code': 1100, 'then': [5]}"),
      "t.json: $.rules[0].action.then[0]: expected an object" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 1102}, {'after_ms': 1}]}"),
      "t.json: $.rules[0].action.then[1]: missing required key \"code\"" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 1102, 'bogus': 1}]}"),
      "t.json: $.rules[0].action.then[0].bogus: unknown key" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 1102, 'type': 'error'}]}"),
      "t.json: $.rules[0].action.then[0].type: unknown key" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 1102, 'after_ms': -1}]}"),
      "t.json: $.rules[0].action.then[0].after_ms: must be between 0 and 86400000" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 0}]}"),
      "t.json: $.rules[0].action.then[0].code: must be between 1 and 99999" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 1102, 'id': 'x'}]}"),
      "t.json: $.rules[0].action.then[0].id: expected an integer" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 1102, 'text': null}]}"),
      "t.json: $.rules[0].action.then[0].text: expected a string" },
    { A("{'type': 'error', 'code': 1100, 'then': [{'code': 1102, 'code': 1101}]}"),
      "t.json: $.rules[0].action.then[0].code: key given twice" },
    { A("{'type': 'bandwidth'}"),
      "t.json: $.rules[0].action: missing required key \"bytes_per_s\"" },
    { A("{'type': 'bandwidth', 'bytes_per_s': 0}"),
      "t.json: $.rules[0].action.bytes_per_s: must be between 1 and 1099511627776" },
    { A("{'type': 'limit_data'}"), "t.json: $.rules[0].action: missing required key \"bytes\"" },
    { A("{'type': 'limit_data', 'bytes': -1}"),
      "t.json: $.rules[0].action.bytes: must be between 0 and 1099511627776" },
    { A("{'type': 'garbage', 'bytes': 0}"),
      "t.json: $.rules[0].action.bytes: must be between 1 and 1048576" },
    { A("{'type': 'bad_length', 'length': -1}"),
      "t.json: $.rules[0].action.length: must be between 0 and 4294967295" },
    { A("{'type': 'bad_length', 'length': 4294967296}"),
      "t.json: $.rules[0].action.length: must be between 0 and 4294967295" },
    { A("{'type': 'truncate', 'bytes': 0}"),
      "t.json: $.rules[0].action.bytes: must be between 1 and 16777219" },
    { A("{'type': 'slice', 'bytes': 0}"),
      "t.json: $.rules[0].action.bytes: must be between 1 and 1048576" },
    { A("{'type': 'slice', 'pause_ms': 'x'}"),
      "t.json: $.rules[0].action.pause_ms: expected an integer" },
    { A("{'type': 'restart', 'how': 'kill'}"),
      "t.json: $.rules[0].action.how: expected \"close\" or \"reset\"" },
    { A("{'type': 'restart', 'how': 1}"), "t.json: $.rules[0].action.how: expected a string" },
    { A("{'type': 'restart', 'down_ms': 86400001}"),
      "t.json: $.rules[0].action.down_ms: must be between 0 and 86400000" },
    /* actions at the wrong phase */
    { R("{'match': {'phase': 'accept'}, 'action': {'type': 'refuse_client_id'}}"),
      "t.json: $.rules[0].action.type: \"refuse_client_id\" needs match.phase \"start_api\" (and "
      "no other phase)" },
    { A("{'type': 'refuse_client_id'}"),
      "t.json: $.rules[0].action.type: \"refuse_client_id\" needs match.phase \"start_api\" (and "
      "no other phase)" },
    { R("{'match': {'phase': ['start_api', 'ready']}, 'action': {'type': 'refuse_client_id'}}"),
      "t.json: $.rules[0].action.type: \"refuse_client_id\" needs match.phase \"start_api\" (and "
      "no other phase)" },
    { R("{'match': {'phase': 'ready'}, 'action': {'type': 'half_ready'}}"),
      "t.json: $.rules[0].action.type: \"half_ready\" needs match.phase \"start_api\" (and no "
      "other phase)" },
    { R("{'match': {'phase': 'ready'}, 'action': {'type': 'ignore'}}"),
      "t.json: $.rules[0].action.type: \"ignore\" needs match.phase \"request\" (and no other "
      "phase)" },
    { A("{'type': 'ignore'}"),
      "t.json: $.rules[0].action.type: \"ignore\" needs match.phase \"request\" (and no other "
      "phase)" },
    /* sequences */
    { R("{'sequence': []}"), "t.json: $.rules[0].sequence: must not be empty" },
    { R("{'sequence': {}}"), "t.json: $.rules[0].sequence: expected an array" },
    { R("{'sequence': [5]}"), "t.json: $.rules[0].sequence[0]: expected an object" },
    { R("{'sequence': [{'type': 'none'}, {'type': 'bogus'}]}"),
      "t.json: $.rules[0].sequence[1].type: unknown action \"bogus\"" },
    { R("{'sequence': [{'type': 'none'}, {}]}"),
      "t.json: $.rules[0].sequence[1]: missing required key \"type\"" },
    { R("{'match': {'phase': 'accept'}, 'sequence': [{'type': 'silent'}, "
        "{'type': 'refuse_client_id'}]}"),
      "t.json: $.rules[0].sequence[1].type: \"refuse_client_id\" needs match.phase "
      "\"start_api\" (and no other phase)" },
    { R("{'sequence': [{'type': 'delay', 'ms': 5, 'then': []}]}"),
      "t.json: $.rules[0].sequence[0].then: not a parameter of \"delay\"" },
    { R("{'sequence': [{'type': 'error', 'code': 1, 'then': [{'code': 2, 'id': -5}]}]}"),
      "t.json: $.rules[0].sequence[0].then[0].id: must be between -1 and 2147483647" },
};

static void script_rejects_every_bad_input_with_path_and_reason(void **state)
{
    unsigned failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof bad_scripts / sizeof bad_scripts[0]; i++) {
        struct mgw_err err;
        struct mgw_script *s = parse(bad_scripts[i].json, &err);

        if (s != NULL || strcmp(err.msg, bad_scripts[i].msg) != 0) {
            print_error("row %zu: %s\n  got:  %s\n  want: %s\n", i, bad_scripts[i].json,
                        s != NULL ? "(accepted)" : err.msg, bad_scripts[i].msg);
            failures++;
        }
        mgw_script_free(s);
    }
    assert_int_equal(failures, 0);
}

/* The same rule errors through mgw_rule_parse: the message is the script's minus its prefix. */
static void rule_parse_gives_the_same_errors(void **state)
{
    static const char prefix[] = "t.json: $.rules[0]";
    unsigned failures = 0, rows = 0;

    (void)state;
    for (size_t i = 0; i < sizeof bad_scripts / sizeof bad_scripts[0]; i++) {
        const char *json = bad_scripts[i].json, *want = bad_scripts[i].msg;
        char *rule, body[1024];
        struct mgw_err err;
        struct mgw_rule *r;
        size_t n;

        if (strncmp(json, "{'rules': [", 11) != 0 || strncmp(want, prefix, 18) != 0)
            continue;
        n = strlen(json) - 11 - 2;
        rule = strndup(json + 11, n);
        assert_non_null(rule);
        snprintf(body, sizeof body, "POST /v1/rules: $%s", want + strlen(prefix));
        r = rule_parse(rule, "POST /v1/rules", "$", &err);
        if (r != NULL || strcmp(err.msg, body) != 0) {
            print_error("rule %s\n  got:  %s\n  want: %s\n", rule,
                        r != NULL ? "(accepted)" : err.msg, body);
            failures++;
        }
        mgw_rule_free(r);
        free(rule);
        rows++;
    }
    assert_int_equal(failures, 0);
    assert_true(rows > 100);
}

/* Counts over the caps, names over 128 characters. */
static void script_limits(void **state)
{
    size_t cap = 2u << 20, n = 0, rl;
    char *json = malloc(cap);
    struct mgw_script *s;
    struct mgw_err err;
    char name[160];

    (void)state;
    assert_non_null(json);
    /* 10000 rules load, 10001 do not. */
    n += (size_t)snprintf(json + n, cap - n, "{\"rules\": [");
    for (int i = 0; i < 10001; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s{\"action\": {\"type\": \"close\"}}",
                              i ? "," : "");
    n += (size_t)snprintf(json + n, cap - n, "]}");
    s = mgw_script_parse(json, n, "t.json", &err);
    assert_null(s);
    assert_string_equal(err.msg, "t.json: $.rules: more than 10000 rules");
    rl = strlen("{\"action\": {\"type\": \"close\"}},");
    memmove(json + 11, json + 11 + rl, n - 11 - rl); /* one rule less */
    n -= rl;
    s = mgw_script_parse(json, n, "t.json", &err);
    if (s == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(s->n_rules, 10000);
    mgw_script_free(s);

    /* 1001 sequence elements, 101 notices. */
    n = (size_t)snprintf(json, cap, "{\"rules\": [{\"sequence\": [");
    for (int i = 0; i < 1001; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s{\"type\": \"none\"}", i ? "," : "");
    n += (size_t)snprintf(json + n, cap - n, "]}]}");
    s = mgw_script_parse(json, n, "t.json", &err);
    assert_null(s);
    assert_string_equal(err.msg, "t.json: $.rules[0].sequence: more than 1000 actions");
    n = (size_t)snprintf(
        json, cap, "{\"rules\": [{\"action\": {\"type\": \"error\", \"code\": 1, \"then\": [");
    for (int i = 0; i < 101; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s{\"code\": 2}", i ? "," : "");
    n += (size_t)snprintf(json + n, cap - n, "]}}]}");
    s = mgw_script_parse(json, n, "t.json", &err);
    assert_null(s);
    assert_string_equal(err.msg, "t.json: $.rules[0].action.then: more than 100 notices");

    /* Names: 128 characters fit, 129 do not. */
    memset(name, 'n', 128);
    name[128] = '\0';
    n = (size_t)snprintf(json, cap, "{\"state\": \"%s\"}", name);
    s = mgw_script_parse(json, n, "t.json", &err);
    assert_non_null(s);
    assert_int_equal(strlen(s->state), 128);
    mgw_script_free(s);
    n = (size_t)snprintf(json, cap,
                         "{\"rules\": [{\"name\": \"%sx\", \"action\": "
                         "{\"type\": \"close\"}}]}",
                         name);
    s = mgw_script_parse(json, n, "t.json", &err);
    assert_null(s);
    assert_string_equal(err.msg, "t.json: $.rules[0].name: longer than 128 characters");

    /* Error texts: 1024 bytes fit, 1025 do not. */
    n = (size_t)snprintf(json, cap,
                         "{\"rules\": [{\"action\": {\"type\": \"error\", \"code\": 1, "
                         "\"text\": \"");
    memset(json + n, 't', 1025);
    n += 1025;
    n += (size_t)snprintf(json + n, cap - n, "\"}}]}");
    s = mgw_script_parse(json, n, "t.json", &err);
    assert_null(s);
    assert_string_equal(err.msg, "t.json: $.rules[0].action.text: longer than 1024 bytes");
    free(json);
}

/* ---------------------------------------------------------------------------------------------
 * Files
 */
static void write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void load_reads_files_and_reports_the_path(void **state)
{
    char dir[] = "/tmp/test_mockgw_script.XXXXXX", path[128], big_path[128];
    const char good[] = "{\"rules\": [{\"action\": {\"type\": \"close\"}}]}";
    const char bad[] = "{\n\"rules\": [{\"action\": {\"type\": \"explode\"}}]}";
    size_t big = 4u << 20;
    char *data;
    struct mgw_script *s;
    struct mgw_err err;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/good.json", dir);
    write_file(path, good, sizeof good - 1);
    s = mgw_script_load(path, &err);
    if (s == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(s->n_rules, 1);
    mgw_script_free(s);

    write_file(path, bad, sizeof bad - 1);
    assert_null(mgw_script_load(path, &err));
    {
        char want[256];

        snprintf(want, sizeof want, "%s: $.rules[0].action.type: unknown action \"explode\"", path);
        assert_string_equal(err.msg, want);
    }

    write_file(path, "{\n  \"rules\": [}", 15);
    assert_null(mgw_script_load(path, &err));
    assert_non_null(strstr(err.msg, "good.json: invalid JSON at line 2, column 13"));

    write_file(path, "", 0);
    assert_null(mgw_script_load(path, &err));
    assert_non_null(strstr(err.msg, "good.json: empty input, expected a JSON object"));

    /* Exactly 4 MiB loads; one byte more is refused before parsing. */
    data = malloc(big + 1);
    assert_non_null(data);
    memset(data, ' ', big + 1);
    memcpy(data, "{}", 2);
    snprintf(big_path, sizeof big_path, "%s/big.json", dir);
    write_file(big_path, data, big);
    s = mgw_script_load(big_path, &err);
    if (s == NULL)
        fail_msg("%s", err.msg);
    mgw_script_free(s);
    write_file(big_path, data, big + 1);
    assert_null(mgw_script_load(big_path, &err));
    {
        char want[256];

        snprintf(want, sizeof want, "%s: file is larger than 4 MiB", big_path);
        assert_string_equal(err.msg, want);
    }
    free(data);

    assert_null(mgw_script_load("/nonexistent/fault.json", &err));
    assert_string_equal(err.msg, "/nonexistent/fault.json: No such file or directory");
    assert_null(mgw_script_load(dir, &err));
    {
        char want[256];

        snprintf(want, sizeof want, "%s: Is a directory", dir);
        assert_string_equal(err.msg, want);
    }
    unlink(path);
    unlink(big_path);
    rmdir(dir);
}

static void load_reads_a_pipe(void **state)
{
    const char json[] = "{\"state\": \"piped\"}";
    struct mgw_script *s;
    struct mgw_err err;
    char path[64];
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], json, sizeof json - 1), (ssize_t)(sizeof json - 1));
    close(fds[1]);
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    s = mgw_script_load(path, &err);
    close(fds[0]);
    if (s == NULL)
        fail_msg("%s", err.msg);
    assert_string_equal(s->state, "piped");
    mgw_script_free(s);
}

/* The cookbook (mockgw/scripts/) is data the format must accept. */
static void cookbook_scripts_load(void **state)
{
    static const char dir_path[] = MGW_SOURCE_DIR "/mockgw/scripts";
    DIR *dir = opendir(dir_path);
    struct dirent *e;
    unsigned loaded = 0;

    (void)state;
    if (dir == NULL)
        skip();
    while ((e = readdir(dir)) != NULL) {
        char path[512];
        size_t n = strlen(e->d_name);
        struct mgw_script *s;
        struct mgw_err err;

        if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir_path, e->d_name);
        s = mgw_script_load(path, &err);
        if (s == NULL)
            fail_msg("%s", err.msg);
        for (unsigned i = 0; i < s->n_rules; i++)
            assert_round_trip(s->rules[i]);
        mgw_script_free(s);
        loaded++;
    }
    closedir(dir);
    assert_true(loaded > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(phase_names_round_trip),
        cmocka_unit_test(action_names_round_trip_and_listener_set),
        cmocka_unit_test(script_doc_example_loads_as_documented),
        cmocka_unit_test(script_empty_object_gives_defaults),
        cmocka_unit_test(script_every_setting_is_read),
        cmocka_unit_test(rule_defaults),
        cmocka_unit_test(rule_every_match_key_is_read),
        cmocka_unit_test(action_every_type_parses_and_round_trips),
        cmocka_unit_test(action_parameters_and_defaults),
        cmocka_unit_test(listener_actions_are_allowed_at_every_phase),
        cmocka_unit_test(error_text_defaults_to_ibs_text),
        cmocka_unit_test(sequence_with_none_and_times),
        cmocka_unit_test(rule_parse_names_the_callers_path),
        cmocka_unit_test(rule_to_json_writes_id_name_hits_and_spent),
        cmocka_unit_test(rule_to_json_then_parse_keeps_every_field),
        cmocka_unit_test(script_copy_is_deep),
        cmocka_unit_test(free_null_is_a_noop),
        cmocka_unit_test(preset_every_one),
        cmocka_unit_test(preset_settings_and_appending_after_script_rules),
        cmocka_unit_test(preset_rejects_bad_values_and_leaves_script_alone),
        cmocka_unit_test(preset_client_id_list_is_capped),
        cmocka_unit_test(script_rejects_every_bad_input_with_path_and_reason),
        cmocka_unit_test(rule_parse_gives_the_same_errors),
        cmocka_unit_test(script_limits),
        cmocka_unit_test(load_reads_files_and_reports_the_path),
        cmocka_unit_test(load_reads_a_pipe),
        cmocka_unit_test(cookbook_scripts_load),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
