/* The IB session state machine, driven without sockets: bytes in, bytes and closes out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fixtures.h"
#include "ibwire.h"
#include "session.h"

#include "session_peer.h"

static int setup(void **state)
{
    setenv("TZ", "EST5", 1); /* the handshake reports the host's local time and zone */
    tzset();
    *state = env_new();
    return 0;
}

/* Runs hello + START_API(client id 1) and checks the golden bytes. */
static void handshake(struct env *e, struct mgw_session *s, struct peer *p, uint64_t id)
{
    mgw_session_init(s, &e->ctx, id, &peer_io, p);
    mgw_session_feed(s, HELLO, sizeof HELLO);
    assert_int_equal(s->phase, MGW_PHASE_VERSION_SENT);
    assert_int_equal(p->out_len, sizeof VERSION_REPLY); /* the string literal's NUL is the last */
    assert_memory_equal(p->out, VERSION_REPLY, sizeof VERSION_REPLY);
    mgw_session_feed(s, START_API_1, sizeof START_API_1);
    assert_int_equal(s->phase, MGW_PHASE_READY);
    assert_int_equal(p->out_len, sizeof VERSION_REPLY + sizeof BURST);
    assert_memory_equal(p->out + sizeof VERSION_REPLY, BURST, sizeof BURST);
    p->out_len = 0;
}

static void session_golden_handshake_and_burst(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p, 1);
    assert_int_equal(s.client_id, 1);
    assert_int_equal(s.version, 178);
    assert_int_equal(p.closes, 0);
    mgw_session_end(&s);
}

static void session_every_split_point_gives_same_output(void **state)
{
    struct env *e = *state;
    uint8_t stream[64];
    size_t n = 0;
    struct peer whole = { 0 };
    struct mgw_session s;

    memcpy(stream, HELLO, sizeof HELLO);
    n += sizeof HELLO;
    memcpy(stream + n, START_API_1, sizeof START_API_1);
    n += sizeof START_API_1;
    n += frame(stream + n,
               "49\0"
               "1\0",
               5);

    mgw_session_init(&s, &e->ctx, 1, &peer_io, &whole);
    mgw_session_feed(&s, stream, n);
    mgw_session_end(&s);
    assert_true(whole.out_len > sizeof VERSION_REPLY + sizeof BURST);

    for (size_t cut = 0; cut <= n; cut++) {
        struct peer *split = calloc(1, sizeof *split);
        uint8_t *a = malloc(cut + 1), *b = malloc(n - cut + 1); /* exact copies for ASan */

        memcpy(a, stream, cut);
        memcpy(b, stream + cut, n - cut);
        mgw_session_init(&s, &e->ctx, 1, &peer_io, split);
        mgw_session_feed(&s, a, cut);
        mgw_session_feed(&s, b, n - cut);
        assert_int_equal(split->out_len, whole.out_len);
        assert_memory_equal(split->out, whole.out, whole.out_len);
        assert_int_equal(split->closes, 0);
        mgw_session_end(&s);
        free(a);
        free(b);
        free(split);
    }
}

static void session_one_byte_at_a_time(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    mgw_session_init(&s, &e->ctx, 1, &peer_io, &p);
    for (size_t i = 0; i < sizeof HELLO; i++)
        mgw_session_feed(&s, HELLO + i, 1);
    for (size_t i = 0; i < sizeof START_API_1; i++)
        mgw_session_feed(&s, START_API_1 + i, 1);
    assert_int_equal(s.phase, MGW_PHASE_READY);
    assert_int_equal(p.out_len, sizeof VERSION_REPLY + sizeof BURST);
    mgw_session_end(&s);
}

static void session_duplicate_client_id_gets_326_then_fin(void **state)
{
    struct env *e = *state;
    struct mgw_session first, second;
    struct peer p1 = { 0 }, p2 = { 0 };

    handshake(e, &first, &p1, 1);
    mgw_session_init(&second, &e->ctx, 2, &peer_io, &p2);
    mgw_session_feed(&second, HELLO, sizeof HELLO);
    mgw_session_feed(&second, START_API_1, sizeof START_API_1);
    assert_int_equal(p2.out_len, sizeof VERSION_REPLY + sizeof REFUSED_326);
    assert_memory_equal(p2.out + sizeof VERSION_REPLY, REFUSED_326, sizeof REFUSED_326);
    assert_int_equal(p2.closes, 1);
    assert_int_equal(p2.how, MGW_CLOSE_FIN);
    assert_int_equal(e->ctx.counters.refused_client_id, 1);
    mgw_session_end(&second);

    /* The first session keeps its id through the refusal, and frees it when it ends. */
    assert_ptr_equal(mgw_idmap_get(&e->ctx.client_ids, 1), &first);
    mgw_session_end(&first);
    assert_null(mgw_idmap_get(&e->ctx.client_ids, 1));
    memset(&p2, 0, sizeof p2);
    handshake(e, &second, &p2, 3);
    mgw_session_end(&second);
}

static void session_duplicate_ids_allowed_when_rule_off(void **state)
{
    struct env *e = *state;
    struct mgw_session a, b;
    struct peer pa = { 0 }, pb = { 0 };

    e->cfg.unique_client_ids = false;
    handshake(e, &a, &pa, 1);
    handshake(e, &b, &pb, 2);
    assert_int_equal(pb.closes, 0);
    mgw_session_end(&a);
    mgw_session_end(&b);
}

static void session_current_time_paced_once_per_second(void **state)
{
    struct env *e = *state;
    static const uint8_t reply[] = "\x00\x00\x00\x10"
                                   "49\0001\0001705331730";
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p, 1);
    FEED_FRAME(&s, "49\0"
                   "1\0");
    assert_int_equal(p.out_len, sizeof reply);
    assert_memory_equal(p.out, reply, sizeof reply);
    e->mono += 999;
    FEED_FRAME(&s, "49\0"
                   "1\0");
    assert_int_equal(p.out_len, sizeof reply); /* ignored, like TWS >= 10.16 */
    assert_int_equal(e->ctx.counters.paced, 1);
    e->mono += 1;
    FEED_FRAME(&s, "49\0"
                   "1\0");
    assert_int_equal(p.out_len, 2 * sizeof reply);
    mgw_session_end(&s);
}

static void session_current_time_unpaced_when_rule_off(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    e->cfg.pace_current_time = false;
    handshake(e, &s, &p, 1);
    FEED_FRAME(&s, "49\0"
                   "1\0");
    FEED_FRAME(&s, "49\0"
                   "1\0");
    assert_int_equal(p.out_len, 2 * 20);
    mgw_session_end(&s);
}

static void session_request_before_start_api_is_ignored(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    mgw_session_init(&s, &e->ctx, 1, &peer_io, &p);
    mgw_session_feed(&s, HELLO, sizeof HELLO);
    p.out_len = 0;
    FEED_FRAME(&s, "49\0"
                   "1\0");
    assert_int_equal(p.out_len, 0);
    assert_int_equal(s.phase, MGW_PHASE_VERSION_SENT);
    mgw_session_end(&s);
}

static void session_unknown_message_is_ignored(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p, 1);
    FEED_FRAME(&s, "999\0"
                   "1\0"
                   "x\0");
    assert_int_equal(p.out_len, 0);
    assert_int_equal(p.closes, 0);
    assert_int_equal(e->ctx.counters.unknown_messages, 1);
    FEED_FRAME(&s, "8\0"
                   "1\0"
                   "1\0");
    assert_int_equal(p.out_len, 10); /* 9,1,1 */
    mgw_session_end(&s);
}

static void session_unknown_contract_gets_error_200(void **state)
{
    struct env *e = *state;
    static const uint8_t err200[] = "\x00\x00\x00\x41"
                                    "4\0002\0003\000200\0No security definition has been "
                                    "found for the request\0";
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p, 1);
    FEED_FRAME(&s, "9\0"
                   "8\0"
                   "3\0"
                   "0\0"
                   "NOSUCH\0"
                   "STK\0"
                   "\0"
                   "0.0\0"
                   "\0"
                   "\0"
                   "SMART\0"
                   "\0"
                   "USD\0"
                   "\0"
                   "\0"
                   "0\0"
                   "\0"
                   "\0"
                   "\0");
    assert_int_equal(p.out_len, sizeof err200);
    assert_memory_equal(p.out, err200, sizeof err200);
    mgw_session_end(&s);
}

static void session_contract_details_ends_with_52(void **state)
{
    struct env *e = *state;
    static const uint8_t end52[] = "\x00\x00\x00\x07"
                                   "52\0001\0003";
    struct ibw_frame f;
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p, 1);
    FEED_FRAME(&s, "9\0"
                   "8\0"
                   "3\0"
                   "0\0"
                   "AAPL\0"
                   "STK\0"
                   "\0"
                   "0.0\0"
                   "\0"
                   "\0"
                   "SMART\0"
                   "\0"
                   "USD\0"
                   "\0"
                   "\0"
                   "0\0"
                   "\0"
                   "\0"
                   "\0");
    assert_true(ibw_frame_parse(p.out, p.out_len, IBW_MAX_FRAME, &f) > 0);
    assert_memory_equal(f.payload,
                        "10\0"
                        "3\0"
                        "AAPL\0"
                        "STK\0",
                        15);
    assert_true(p.out_len > sizeof end52);
    assert_memory_equal(p.out + p.out_len - sizeof end52, end52, sizeof end52);
    mgw_session_end(&s);
}

static void session_account_updates_value_portfolio_time_end(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };
    size_t off = 0;
    int ids[64], nframes = 0, portfolio_fields = 0;

    handshake(e, &s, &p, 1);
    FEED_FRAME(&s, "6\0"
                   "2\0"
                   "1\0"
                   "DU1234567\0");
    while (off < p.out_len && nframes < 64) {
        struct ibw_frame f;
        struct ibw_reader r;
        ssize_t n = ibw_frame_parse(p.out + off, p.out_len - off, IBW_MAX_FRAME, &f);

        assert_true(n > 0);
        ibw_reader_init(&r, f.payload, f.len);
        assert_int_equal(ibw_read_msg_id(&r, &ids[nframes]), 0);
        if (ids[nframes] == IBW_IN_PORTFOLIO_VALUE)
            portfolio_fields = (int)ibw_reader_left(&r) + 1;
        nframes++;
        off += (size_t)n;
    }
    /* Account values first, then the default table's AAPL position, the time, the end. */
    assert_true(nframes >= 4);
    assert_int_equal(ids[0], IBW_IN_ACCT_VALUE);
    assert_int_equal(ids[nframes - 3], IBW_IN_PORTFOLIO_VALUE);
    assert_int_equal(portfolio_fields, 20);
    assert_int_equal(ids[nframes - 2], IBW_IN_ACCT_UPDATE_TIME);
    assert_int_equal(ids[nframes - 1], IBW_IN_ACCT_DOWNLOAD_END);
    mgw_session_end(&s);
}

struct bad_case {
    const char *name;
    uint8_t bytes[32];
    size_t len;
    bool after_handshake;
};

static void session_bad_input_closes_now(void **state)
{
    struct env *e = *state;
    static const struct bad_case cases[] = {
        { "zero length", { 0, 0, 0, 0 }, 4, true },
        { "length over cap", { 0x7f, 0xff, 0xff, 0xff }, 4, true },
        { "length cap + 1", { 0x00, 0x10, 0x00, 0x01 }, 4, true },
        { "non-numeric id", { 0, 0, 0, 4, 'a', 'b', 0, 0 }, 8, true },
        { "missing fields", { 0, 0, 0, 3, '4', '9', 0 }, 7, true },
        { "truncated contract",
          { 0, 0, 0, 16, '2', '0', 0, '4', 0, '0', 0, 'A', 'A', 'P', 'L', 0, 'S', 'T', 'K', 0 },
          20,
          true },
        { "bytes before API", { 'G', 'E', 'T', ' ', '/' }, 5, false },
        { "legacy hello", { '6', '2', 0 }, 3, false },
        { "bad version string", { 'A', 'P', 'I', 0, 0, 0, 0, 3, 'x', 'y', 'z' }, 11, false },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mgw_session s;
        struct peer p = { 0 };
        uint64_t bad = e->ctx.counters.bad_input;

        if (cases[i].after_handshake) {
            handshake(e, &s, &p, 1);
        } else {
            mgw_session_init(&s, &e->ctx, 1, &peer_io, &p);
        }
        mgw_session_feed(&s, cases[i].bytes, cases[i].len);
        if (p.closes != 1 || p.how != MGW_CLOSE_NOW)
            fail_msg("%s: closes=%d how=%d", cases[i].name, p.closes, (int)p.how);
        assert_int_equal(p.out_len, 0);
        assert_int_equal(e->ctx.counters.bad_input, bad + 1);
        /* Input after close is ignored, and nothing else is sent. */
        mgw_session_feed(&s, START_API_1, sizeof START_API_1);
        assert_int_equal(p.out_len, 0);
        assert_int_equal(p.closes, 1);
        mgw_session_end(&s);
    }
}

static void session_version_below_client_min_still_answered(void **state)
{
    struct env *e = *state;
    static const uint8_t hello[] = "API\0\0\0\0\x09v213..225";
    struct mgw_session s;
    struct peer p = { 0 };

    mgw_session_init(&s, &e->ctx, 1, &peer_io, &p);
    mgw_session_feed(&s, hello, sizeof hello - 1);
    assert_int_equal(s.version, 178);
    assert_int_equal(p.out_len, sizeof VERSION_REPLY);
    assert_int_equal(p.closes, 0);
    mgw_session_end(&s);
}

static void session_client_max_below_100_gets_version_then_fin(void **state)
{
    struct env *e = *state;
    static const uint8_t hello[] = "API\0\0\0\0\x07v20..38";
    static const uint8_t reply[] = "\x00\x00\x00\x19"
                                   "38\0"
                                   "20240115 10:15:30 EST";
    struct mgw_session s;
    struct peer p = { 0 };

    mgw_session_init(&s, &e->ctx, 1, &peer_io, &p);
    mgw_session_feed(&s, hello, sizeof hello - 1);
    assert_int_equal(p.out_len, sizeof reply);
    assert_memory_equal(p.out, reply, sizeof reply);
    assert_int_equal(p.closes, 1);
    assert_int_equal(p.how, MGW_CLOSE_FIN);
    mgw_session_end(&s);
}

static void session_pinned_version_changes_error_layout(void **state)
{
    struct env *e = *state;
    static const uint8_t hello[] = "API\0\0\0\0\x09v100..193";
    static const uint8_t notice_165[] = "\x00\x00\x00\x35"
                                        "4\0002\0-1\0002104\0Market data farm connection is "
                                        "OK:usfarm";
    struct ibw_frame f;
    struct mgw_session s;
    struct peer p = { 0 };
    size_t off = 0;

    e->cfg.server_version = 165; /* below ADVANCED_ORDER_REJECT (166): no json field */
    mgw_session_init(&s, &e->ctx, 1, &peer_io, &p);
    mgw_session_feed(&s, hello, sizeof hello - 1);
    assert_int_equal(s.version, 165);
    mgw_session_feed(&s, START_API_1, sizeof START_API_1);
    for (int i = 0; i < 3; i++) /* version reply, 15, 9 */
        off += (size_t)ibw_frame_parse(p.out + off, p.out_len - off, IBW_MAX_FRAME, &f);
    assert_memory_equal(p.out + off, notice_165, sizeof notice_165);
    mgw_session_end(&s);
}

static void session_historical_data_is_deterministic(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer a = { 0 }, b = { 0 };

#define HIST_REQ                     \
    "20\0"                           \
    "4\0"                            \
    "0\0"                            \
    "AAPL\0"                         \
    "STK\0"                          \
    "\0"                             \
    "0.0\0"                          \
    "\0"                             \
    "\0"                             \
    "SMART\0"                        \
    "\0"                             \
    "USD\0"                          \
    "\0"                             \
    "\0"                             \
    "0\0"                            \
    "20240112 16:00:00 US/Eastern\0" \
    "30 mins\0"                      \
    "1 D\0"                          \
    "1\0"                            \
    "TRADES\0"                       \
    "1\0"                            \
    "0\0"                            \
    "\0"
    handshake(e, &s, &a, 1);
    FEED_FRAME(&s, HIST_REQ);
    mgw_session_end(&s);
    handshake(e, &s, &b, 1);
    FEED_FRAME(&s, HIST_REQ);
    mgw_session_end(&s);
    assert_true(a.out_len > 100);
    assert_int_equal(a.out_len, b.out_len);
    assert_memory_equal(a.out, b.out, a.out_len);
    assert_memory_equal(a.out + 4,
                        "17\0"
                        "4\0",
                        5);
}

/* More bars than ctx->max_hist_bars: error 162, as the gateway's "Time length exceed max."
 * (the session fuzz target caps answers this way). Exactly the cap: the bars. */
static void session_historical_bars_over_the_cap_are_error_162(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 }, q = { 0 };
    static const char err_162[] = "4\0"
                                  "2\0"
                                  "4\0"
                                  "162\0"
                                  "Historical Market Data Service error message:Time length "
                                  "exceed max.";
    struct ibw_frame f;
    size_t off = 0;

    e->ctx.max_hist_bars = 12; /* one RTH day of 30-minute bars is 13 */
    handshake(e, &s, &p, 1);
    FEED_FRAME(&s, HIST_REQ);
    mgw_session_end(&s);
    assert_true(ibw_frame_parse(p.out, p.out_len, IBW_MAX_FRAME, &f) > 0);
    assert_true(f.len >= sizeof err_162 - 1);
    assert_memory_equal(f.payload, err_162, sizeof err_162 - 1);

    e->ctx.max_hist_bars = 13;
    handshake(e, &s, &q, 2);
    FEED_FRAME(&s, HIST_REQ);
    mgw_session_end(&s);
    off = (size_t)ibw_frame_parse(q.out, q.out_len, IBW_MAX_FRAME, &f);
    assert_true(off > 0);
    assert_memory_equal(f.payload, "17\0", 3);
}

/* A keepUpToDate request whose answer ends the session (the server closes a client whose
 * output overflows, from inside the send) registers no subscription: the session's sets are
 * already freed (LSan caught the leak in the e2e non-reader test). */
static void session_subscription_after_the_session_ended_is_not_kept(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };

    handshake(e, &s, &p, 1);
    p.end_on_send = &s;
    FEED_FRAME(&s, "20\0"
                   "9\0"
                   "0\0"
                   "AAPL\0"
                   "STK\0"
                   "\0"
                   "0.0\0"
                   "\0"
                   "\0"
                   "SMART\0"
                   "\0"
                   "USD\0"
                   "\0"
                   "\0"
                   "0\0"
                   "\0" /* no end date: keepUpToDate */
                   "30 mins\0"
                   "1 D\0"
                   "1\0"
                   "TRADES\0"
                   "1\0"
                   "1\0" /* keepUpToDate */
                   "\0");
    assert_true(s.ended);
    assert_int_equal(s.hist_subs.n, 0);
    assert_null(s.hist_subs.ids);
}

/* Pipelined requests are handled a turn's share at a time: the session yields after
 * frames_per_turn of them (or bytes_per_turn of answers) and continues from what it kept. */
static unsigned count_frames(const struct peer *p)
{
    unsigned n = 0;

    for (size_t off = 0; off < p->out_len; n++) {
        struct ibw_frame f;
        ssize_t k = ibw_frame_parse(p->out + off, p->out_len - off, IBW_MAX_FRAME, &f);

        assert_true(k > 0);
        off += (size_t)k;
    }
    return n;
}

static void session_pipelined_requests_yield_per_turn(void **state)
{
    struct env *e = *state;
    struct mgw_session s;
    struct peer p = { 0 };
    uint8_t batch[10 * 16];
    size_t len = 0;

    e->ctx.frames_per_turn = 4;
    e->ctx.bytes_per_turn = 0;
    handshake(e, &s, &p, 1);
    for (int i = 0; i < 10; i++)
        len += frame(batch + len,
                     "8\0"
                     "1\0"
                     "1\0",
                     6); /* reqIds */
    mgw_session_feed(&s, batch, len);
    assert_int_equal(count_frames(&p), 4);
    assert_true(mgw_session_yielded(&s));
    mgw_session_continue(&s);
    assert_int_equal(count_frames(&p), 8);
    assert_true(mgw_session_yielded(&s));
    mgw_session_continue(&s);
    assert_int_equal(count_frames(&p), 10);
    assert_false(mgw_session_yielded(&s));
    mgw_session_continue(&s); /* nothing kept: nothing happens */
    assert_int_equal(count_frames(&p), 10);

    /* the answers' bytes count too: one nextValidId is 10 bytes on the wire */
    e->ctx.frames_per_turn = 0;
    e->ctx.bytes_per_turn = 25;
    p.out_len = 0;
    mgw_session_feed(&s, batch, len);
    assert_int_equal(count_frames(&p), 3);
    assert_true(mgw_session_yielded(&s));
    mgw_session_end(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(session_golden_handshake_and_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(session_pipelined_requests_yield_per_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(session_subscription_after_the_session_ended_is_not_kept,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(session_every_split_point_gives_same_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_one_byte_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(session_duplicate_client_id_gets_326_then_fin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_duplicate_ids_allowed_when_rule_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_current_time_paced_once_per_second, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_current_time_unpaced_when_rule_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_request_before_start_api_is_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_unknown_message_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(session_unknown_contract_gets_error_200, setup, teardown),
        cmocka_unit_test_setup_teardown(session_contract_details_ends_with_52, setup, teardown),
        cmocka_unit_test_setup_teardown(session_account_updates_value_portfolio_time_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_bad_input_closes_now, setup, teardown),
        cmocka_unit_test_setup_teardown(session_version_below_client_min_still_answered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_client_max_below_100_gets_version_then_fin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_pinned_version_changes_error_layout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_historical_data_is_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(session_historical_bars_over_the_cap_are_error_162, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
