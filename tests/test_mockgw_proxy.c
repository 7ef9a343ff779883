/* The session in proxy mode, driven without sockets: client bytes in -> upstream bytes out,
 * upstream bytes in -> client bytes out, and the fault engine at the same events as the fake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault.h"
#include "fixtures.h"
#include "ibwire.h"
#include "session.h"

#include "session_peer.h"

static int setup(void **state)
{
    struct env *e = env_new();

    e->ctx.faults = mgw_faults_new(1);
    assert_non_null(e->ctx.faults);
    *state = e;
    return 0;
}

/* Arms the rules of a script given as JSON. */
static void arm(struct env *e, const char *json)
{
    struct mgw_err err;
    struct mgw_script *sc = mgw_script_parse(json, strlen(json), "test", &err);

    if (!sc)
        fail_msg("%s", err.msg);
    for (unsigned i = 0; i < sc->n_rules; i++)
        assert_int_equal(mgw_faults_add(e->ctx.faults, mgw_rule_copy(sc->rules[i])), 0);
    mgw_script_free(sc);
}

static void start(struct env *e, struct mgw_session *s, struct peer *p)
{
    mgw_session_init(s, &e->ctx, 1, &peer_io, p);
    assert_int_equal(mgw_session_proxy(s, peer_upstream), 0);
    mgw_session_accept(s);
}

#define FEED_UP_FRAME(s, lit) FEED_FRAME_WITH(mgw_session_feed_upstream, s, lit)

static const uint8_t REQ_TIME[] = "\x00\x00\x00\x05"
                                  "49\0"
                                  "1";
static const uint8_t CURRENT_TIME[] = "\x00\x00\x00\x10"
                                      "49\0001\0001705331730";

/* Client handshake through to ready, with the golden bytes on both legs. */
static void handshake(struct env *e, struct mgw_session *s, struct peer *p)
{
    start(e, s, p);
    mgw_session_feed(s, HELLO, sizeof HELLO);
    assert_int_equal(p->up_len, sizeof HELLO);
    assert_memory_equal(p->up, HELLO, sizeof HELLO);
    assert_int_equal(p->out_len, 0);
    assert_int_equal(s->phase, MGW_PHASE_HELLO);
    mgw_session_feed_upstream(s, VERSION_REPLY, sizeof VERSION_REPLY);
    assert_int_equal(s->phase, MGW_PHASE_VERSION_SENT);
    assert_int_equal(s->version, 178);
    assert_int_equal(p->out_len, sizeof VERSION_REPLY);
    assert_memory_equal(p->out, VERSION_REPLY, sizeof VERSION_REPLY);
    mgw_session_feed(s, START_API_1, sizeof START_API_1);
    assert_int_equal(s->client_id, 1);
    assert_int_equal(p->up_len, sizeof HELLO + sizeof START_API_1);
    assert_memory_equal(p->up + sizeof HELLO, START_API_1, sizeof START_API_1);
    mgw_session_feed_upstream(s, BURST, sizeof BURST);
    assert_int_equal(s->phase, MGW_PHASE_READY);
    assert_int_equal(p->out_len, sizeof VERSION_REPLY + sizeof BURST);
    assert_memory_equal(p->out + sizeof VERSION_REPLY, BURST, sizeof BURST);
    p->out_len = p->up_len = 0;
}

static void proxy_handshake_and_request_pass_through(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p);
    mgw_session_feed(&s, REQ_TIME, sizeof REQ_TIME);
    assert_int_equal(p.up_len, sizeof REQ_TIME);
    assert_memory_equal(p.up, REQ_TIME, sizeof REQ_TIME);
    assert_int_equal(p.out_len, 0); /* the proxy never answers on its own */
    mgw_session_feed_upstream(&s, CURRENT_TIME, sizeof CURRENT_TIME);
    assert_int_equal(p.out_len, sizeof CURRENT_TIME);
    assert_memory_equal(p.out, CURRENT_TIME, sizeof CURRENT_TIME);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.px->frames_up_out, 3);
    assert_int_equal(s.px->frames_up_in, 7);
    assert_int_equal(p.closes, 0);
    mgw_session_end(&s);
}

static void proxy_start_api_waits_for_the_version_reply(void **state)
{
    struct env *e = *state;
    uint8_t both[sizeof HELLO + sizeof START_API_1 + 9];
    struct mgw_session s;
    struct peer p = { 0 };
    size_t n = 0;

    memcpy(both, HELLO, sizeof HELLO);
    n += sizeof HELLO;
    memcpy(both + n, START_API_1, sizeof START_API_1);
    n += sizeof START_API_1;
    memcpy(both + n, REQ_TIME, sizeof REQ_TIME);
    n += sizeof REQ_TIME;
    start(e, &s, &p);
    mgw_session_feed(&s, both, n); /* a client that does not wait */
    assert_int_equal(p.up_len, sizeof HELLO);
    mgw_session_feed_upstream(&s, VERSION_REPLY, sizeof VERSION_REPLY);
    assert_int_equal(p.up_len, sizeof HELLO + sizeof START_API_1); /* the request waits */
    mgw_session_feed_upstream(&s, BURST, 10 + 19);                 /* 15 and 9 */
    assert_int_equal(s.phase, MGW_PHASE_READY);
    assert_int_equal(p.up_len, n);
    assert_memory_equal(p.up, both, n);
    mgw_session_end(&s);
}

static void proxy_every_upstream_split_point_gives_same_output(void **state)
{
    struct env *e = *state;
    uint8_t stream[sizeof VERSION_REPLY + sizeof BURST + sizeof CURRENT_TIME];
    size_t n = 0;

    memcpy(stream, VERSION_REPLY, sizeof VERSION_REPLY);
    n += sizeof VERSION_REPLY;
    memcpy(stream + n, BURST, sizeof BURST);
    n += sizeof BURST;
    memcpy(stream + n, CURRENT_TIME, sizeof CURRENT_TIME);
    n += sizeof CURRENT_TIME;
    for (size_t cut = 0; cut <= n; cut++) {
        struct peer *p = calloc(1, sizeof *p);
        uint8_t *a = malloc(cut + 1), *b = malloc(n - cut + 1); /* exact copies for ASan */
        struct mgw_session s;

        memcpy(a, stream, cut);
        memcpy(b, stream + cut, n - cut);
        start(e, &s, p);
        mgw_session_feed(&s, HELLO, sizeof HELLO);
        mgw_session_feed(&s, START_API_1, sizeof START_API_1);
        mgw_session_feed_upstream(&s, a, cut);
        mgw_session_feed_upstream(&s, b, n - cut);
        assert_int_equal(p->out_len, n);
        assert_memory_equal(p->out, stream, n);
        assert_int_equal(p->up_len, sizeof HELLO + sizeof START_API_1);
        assert_int_equal(s.phase, MGW_PHASE_READY);
        mgw_session_end(&s);
        free(a);
        free(b);
        free(p);
    }
}

static void proxy_refuse_client_id_never_forwards_start_api(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    arm(e, "{\"rules\":[{\"match\":{\"phase\":\"start_api\",\"client_id\":1},"
           "\"action\":{\"type\":\"refuse_client_id\"}}]}");
    start(e, &s, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    mgw_session_feed_upstream(&s, VERSION_REPLY, sizeof VERSION_REPLY);
    mgw_session_feed(&s, START_API_1, sizeof START_API_1);
    assert_int_equal(p.up_len, sizeof HELLO); /* START_API never went upstream */
    assert_int_equal(p.out_len, sizeof VERSION_REPLY + sizeof REFUSED_326);
    assert_memory_equal(p.out + sizeof VERSION_REPLY, REFUSED_326, sizeof REFUSED_326);
    assert_int_equal(p.closes, 1);
    assert_int_equal(p.how, MGW_CLOSE_FIN);
    mgw_session_end(&s);
}

static void proxy_half_ready_drops_the_upstream_next_valid_id(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    arm(e,
        "{\"rules\":[{\"match\":{\"phase\":\"start_api\"},\"action\":{\"type\":\"half_ready\"}}]}");
    start(e, &s, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    mgw_session_feed_upstream(&s, VERSION_REPLY, sizeof VERSION_REPLY);
    mgw_session_feed(&s, START_API_1, sizeof START_API_1);
    p.out_len = 0;
    mgw_session_feed_upstream(&s, BURST, sizeof BURST);
    assert_int_equal(s.phase, MGW_PHASE_READY);
    assert_int_equal(p.out_len, sizeof BURST - 10);
    assert_memory_equal(p.out, BURST, 19);                          /* 15 */
    assert_memory_equal(p.out + 19, BURST + 29, sizeof BURST - 29); /* the notices */
    /* A later nextValidId (reqIds) passes. */
    p.out_len = 0;
    FEED_UP_FRAME(&s, "9\0"
                      "1\0"
                      "5\0");
    assert_int_equal(p.out_len, 10);
    mgw_session_end(&s);
}

static void proxy_ignore_drops_the_request(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    arm(e, "{\"rules\":[{\"match\":{\"phase\":\"request\",\"msg\":\"reqCurrentTime\"},"
           "\"action\":{\"type\":\"ignore\"}}]}");
    handshake(e, &s, &p);
    mgw_session_feed(&s, REQ_TIME, sizeof REQ_TIME);
    assert_int_equal(p.up_len, 0);
    assert_int_equal(p.out_len, 0);
    FEED_FRAME(&s, "8\0"
                   "1\0"
                   "1\0"); /* reqIds is not matched: it goes */
    assert_int_equal(p.up_len, 10);
    mgw_session_end(&s);
}

static void proxy_error_at_request_replaces_the_forward(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };
    static const char expect[] = "4\0"
                                 "2\0"
                                 "7\0"
                                 "162\0";

    arm(e, "{\"rules\":[{\"match\":{\"phase\":\"request\",\"msg\":\"reqHistoricalData\"},"
           "\"action\":{\"type\":\"error\",\"code\":162}}]}");
    handshake(e, &s, &p);
    FEED_FRAME(&s, "20\0"
                   "7\0"
                   "0\0"
                   "AAPL\0");
    assert_int_equal(p.up_len, 0);
    assert_true(p.out_len > 4 + sizeof expect - 1);
    assert_memory_equal(p.out + 4, expect, sizeof expect - 1); /* the request's id */
    mgw_session_end(&s);
}

static void proxy_hello_error_follows_the_version_reply(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    arm(e, "{\"rules\":[{\"match\":{\"phase\":\"hello\"},"
           "\"action\":{\"type\":\"error\",\"code\":1100}}]}");
    start(e, &s, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    assert_int_equal(p.out_len, 0);
    mgw_session_feed_upstream(&s, VERSION_REPLY, sizeof VERSION_REPLY);
    assert_memory_equal(p.out, VERSION_REPLY, sizeof VERSION_REPLY);
    assert_true(p.out_len > sizeof VERSION_REPLY);
    assert_memory_equal(p.out + sizeof VERSION_REPLY + 4,
                        "4\0"
                        "2\0"
                        "-1\0"
                        "1100\0",
                        12);
    mgw_session_end(&s);
}

static void proxy_silent_after_ready_forwards_nothing(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    arm(e, "{\"rules\":[{\"match\":{\"phase\":\"ready\"},\"action\":{\"type\":\"silent\"}}]}");
    start(e, &s, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    mgw_session_feed_upstream(&s, VERSION_REPLY, sizeof VERSION_REPLY);
    mgw_session_feed(&s, START_API_1, sizeof START_API_1);
    mgw_session_feed_upstream(&s, BURST, sizeof BURST);
    assert_true(s.silent);
    assert_int_equal(p.last_fault, MGW_ACT_SILENT); /* the server stops reading both legs */
    /* 15 and 9 passed before the ready event; the notices after it did not. */
    assert_int_equal(p.out_len, sizeof VERSION_REPLY + 29);
    p.out_len = p.up_len = 0;
    mgw_session_feed(&s, REQ_TIME, sizeof REQ_TIME);
    mgw_session_feed_upstream(&s, CURRENT_TIME, sizeof CURRENT_TIME);
    assert_int_equal(p.up_len, 0);
    assert_int_equal(p.out_len, 0);
    assert_int_equal(p.closes, 0); /* both sockets stay open */
    mgw_session_end(&s);
}

static void proxy_close_at_hello_sends_nothing_upstream(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    arm(e, "{\"rules\":[{\"match\":{\"phase\":\"hello\"},\"action\":{\"type\":\"close\"}}]}");
    start(e, &s, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    assert_int_equal(p.up_len, 0);
    assert_int_equal(p.last_fault, MGW_ACT_CLOSE);
    mgw_session_end(&s);
}

static void proxy_hello_above_200_is_capped(void **state)
{
    struct env *e = *state;
    static const uint8_t hello225[] = "API\0\0\0\0\x09v100..225";
    static const uint8_t hello200[] = "API\0\0\0\0\x09v100..200";
    static const uint8_t hello213[] = "API\0\0\0\0\x09v213..225";
    struct mgw_session s;
    struct peer p = { 0 };

    start(e, &s, &p);
    mgw_session_feed(&s, hello225, sizeof hello225 - 1);
    assert_int_equal(p.up_len, sizeof hello200 - 1);
    assert_memory_equal(p.up, hello200, sizeof hello200 - 1);
    mgw_session_end(&s);

    memset(&p, 0, sizeof p);
    start(e, &s, &p);
    mgw_session_feed(&s, hello213, sizeof hello213 - 1); /* protobuf only: cannot be relayed */
    assert_int_equal(p.up_len, 0);
    assert_int_equal(p.closes, 1);
    assert_int_equal(p.how, MGW_CLOSE_NOW);
    mgw_session_end(&s);
}

static void proxy_bad_upstream_frame_closes(void **state)
{
    struct env *e = *state;
    static const uint8_t zero[] = { 0, 0, 0, 0 };
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p);
    mgw_session_feed_upstream(&s, zero, sizeof zero);
    assert_int_equal(p.closes, 1);
    assert_int_equal(p.how, MGW_CLOSE_NOW);
    assert_int_equal(e->ctx.counters.bad_input, 1);
    mgw_session_end(&s);
}

static void proxy_upstream_speaking_before_the_hello_closes(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    start(e, &s, &p);
    mgw_session_feed_upstream(&s, VERSION_REPLY, sizeof VERSION_REPLY);
    assert_int_equal(p.closes, 1);
    assert_int_equal(p.out_len, 0);
    mgw_session_feed(&s, START_API_1, sizeof START_API_1);
    assert_int_equal(p.up_len, 0);
    mgw_session_end(&s);
}

static void proxy_busy_client_id_gets_326_from_mockgw(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    assert_int_equal(mgw_ctx_hold_client_id(&e->ctx, 1, UINT64_MAX), 0);
    start(e, &s, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    mgw_session_feed_upstream(&s, VERSION_REPLY, sizeof VERSION_REPLY);
    mgw_session_feed(&s, START_API_1, sizeof START_API_1);
    assert_int_equal(p.up_len, sizeof HELLO);
    assert_memory_equal(p.out + sizeof VERSION_REPLY, REFUSED_326, sizeof REFUSED_326);
    assert_int_equal(p.closes, 1);
    mgw_session_end(&s);
}

static void proxy_session_ended_inside_a_feed_releases_later(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };
    uint8_t two[2 * sizeof CURRENT_TIME + 3];

    handshake(e, &s, &p);
    memcpy(two, CURRENT_TIME, sizeof CURRENT_TIME);
    memcpy(two + sizeof CURRENT_TIME, CURRENT_TIME, sizeof CURRENT_TIME);
    memcpy(two + 2 * sizeof CURRENT_TIME, CURRENT_TIME, 3); /* and a partial frame */
    p.end_on_send = &s;
    mgw_session_feed_upstream(&s, two, sizeof two);       /* ASan: nothing freed under the feed */
    assert_int_equal(p.out_len, 2 * sizeof CURRENT_TIME); /* one write for both frames */
    assert_null(s.px);
    mgw_session_feed_upstream(&s, two, sizeof two); /* ended: ignored */
    assert_int_equal(p.out_len, 2 * sizeof CURRENT_TIME);
}

static void proxy_client_partial_frame_over_cap_while_waiting_closes(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };
    size_t n = e->cfg.max_in_frame + 64 + IBW_MAX_HELLO;
    uint8_t *junk = calloc(1, n);

    start(e, &s, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    /* The upstream has not answered: the client's frames wait, under the input cap. */
    for (size_t off = 0; off < n; off += 8)
        memcpy(junk + off,
               "\0\0\0\x04"
               "49\0"
               "1",
               n - off < 8 ? n - off : 8);
    mgw_session_feed(&s, junk, n);
    assert_int_equal(p.closes, 1);
    assert_int_equal(p.up_len, sizeof HELLO);
    mgw_session_end(&s);
    free(junk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(proxy_handshake_and_request_pass_through, setup, teardown),
        cmocka_unit_test_setup_teardown(proxy_start_api_waits_for_the_version_reply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_every_upstream_split_point_gives_same_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_refuse_client_id_never_forwards_start_api, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_half_ready_drops_the_upstream_next_valid_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_ignore_drops_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(proxy_error_at_request_replaces_the_forward, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_hello_error_follows_the_version_reply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_silent_after_ready_forwards_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(proxy_close_at_hello_sends_nothing_upstream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_hello_above_200_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(proxy_bad_upstream_frame_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(proxy_upstream_speaking_before_the_hello_closes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_busy_client_id_gets_326_from_mockgw, setup, teardown),
        cmocka_unit_test_setup_teardown(proxy_session_ended_inside_a_feed_releases_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(proxy_client_partial_frame_over_cap_while_waiting_closes,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
