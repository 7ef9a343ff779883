/* The core's IB connection against the real mockgw library, in this process, on loopback:
 * readiness, requests, deadlines, faults, close; every callback counted and exactly once. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "fault.h"
#include "fdcount.h"
#include "ibcore.h"
#include "ibwire.h"
#include "mockgw.h"

#include "loop_util.h"

#define SLACK_MS 100 /* a deadline fires within [deadline, deadline + SLACK_MS] */

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog; /* unref'd: fires only if a test would hang */
    bool hung;
    struct mgw_config cfg;
    struct mgw_server *srv;
    int port;
    int stopped_calls;
    /* A raw gateway for byte sequences mockgw never sends: it writes raw_bytes on accept. */
    uv_tcp_t raw_listener, raw_peer;
    bool has_raw_listener, has_raw_peer;
    const uint8_t *raw_bytes;
    size_t raw_len;
    char raw_in[4096];
};

struct probe {
    struct fixture *fx;
    struct ibcore_conn *c;
    uint64_t start_ms, deadline_ms, start_hr;
    int connect_calls, connect_status;
    uint64_t connect_ms;         /* uv_now() in the callback */
    uint64_t connect_elapsed_ms; /* measured with uv_hrtime() */
    bool was_ready_in_cb;
    bool close_in_connect_cb;
    int close_calls;
    int notices, notices_before_ready;
    int codes[32], ids[32];
};

struct reply {
    struct probe *p;
    int calls, status, msg_id;
    size_t len;
    int64_t epoch;
    uint64_t at_ms;
    bool poisoned_in_cb;
    bool close_in_cb;
};

/* --------------------------------------------------------------------------------------------
 * Fixture
 */
static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    loop_fixture_init(fx, 15000);
    mgw_config_init(&fx->cfg);
    fx->cfg.listen_port = 0;
    fx->cfg.admin_enabled = false;
    *state = fx;
    return 0;
}

static void on_stopped(struct mgw_server *srv, void *data)
{
    struct fixture *fx = data;

    assert_ptr_equal(srv, fx->srv);
    fx->stopped_calls++;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    assert_false(fx->hung);
    if (fx->srv) {
        assert_int_equal(mgw_server_stop(fx->srv, on_stopped, fx), 0);
        uv_run(&fx->loop, UV_RUN_DEFAULT);
        assert_int_equal(fx->stopped_calls, 1);
        mgw_server_free(fx->srv);
    }
    loop_close_all(&fx->loop);
    free(fx);
    return 0;
}

/* Starts an in-process mockgw; script is a fault script in JSON, or NULL. */
static void start_server(struct fixture *fx, const char *script)
{
    fx->srv = loop_start_mockgw(&fx->loop, &fx->cfg, script);
    fx->port = mgw_server_api_port(fx->srv);
    assert_true(fx->port > 0);
}

/* --------------------------------------------------------------------------------------------
 * Connections
 */
static void on_closed(void *data)
{
    ((struct probe *)data)->close_calls++;
}

static void on_notice(struct ibcore_conn *c, int id, int code, const char *text, void *data)
{
    struct probe *p = data;

    assert_ptr_equal(c, p->c);
    assert_non_null(text);
    if (p->notices < 32) {
        p->codes[p->notices] = code;
        p->ids[p->notices] = id;
    }
    p->notices++;
    if (p->connect_calls == 0)
        p->notices_before_ready++;
}

static void on_connected(struct ibcore_conn *c, int status, void *data)
{
    struct probe *p = data;

    assert_ptr_equal(c, p->c);
    p->connect_calls++;
    p->connect_status = status;
    p->connect_ms = uv_now(&p->fx->loop);
    p->connect_elapsed_ms = (uv_hrtime() - p->start_hr) / 1000000;
    p->was_ready_in_cb = ibcore_conn_is_ready(c);
    assert_true(p->was_ready_in_cb == (status == 0));
    if (p->close_in_connect_cb)
        ibcore_conn_close(c, on_closed, p);
}

static void opts_for(struct fixture *fx, struct ibcore_conn_opts *o, int client_id)
{
    ibcore_conn_opts_init(o);
    o->port = fx->port;
    o->client_id = client_id;
}

/* Starts a connect with the deadline timeout_ms from now. */
static void conn_start(struct fixture *fx, struct probe *p, const struct ibcore_conn_opts *o,
                       uint64_t timeout_ms)
{
    memset(p, 0, sizeof *p);
    p->fx = fx;
    p->c = ibcore_conn_new(&fx->loop);
    assert_non_null(p->c);
    ibcore_conn_on_notice(p->c, on_notice, p);
    uv_update_time(&fx->loop);
    p->start_ms = uv_now(&fx->loop);
    p->start_hr = uv_hrtime();
    p->deadline_ms = p->start_ms + timeout_ms;
    assert_int_equal(ibcore_conn_connect(p->c, o, p->deadline_ms, on_connected, p), 0);
    assert_int_equal(p->connect_calls, 0); /* never before the call returns */
}

/* Connects and waits for the outcome (exactly one callback). */
static int conn_run(struct fixture *fx, struct probe *p, const struct ibcore_conn_opts *o,
                    uint64_t timeout_ms)
{
    conn_start(fx, p, o, timeout_ms);
    RUN_UNTIL(fx, p->connect_calls > 0);
    assert_int_equal(p->connect_calls, 1);
    return p->connect_status;
}

static void conn_ready(struct fixture *fx, struct probe *p, int client_id)
{
    struct ibcore_conn_opts o;

    opts_for(fx, &o, client_id);
    assert_int_equal(conn_run(fx, p, &o, 5000), 0);
}

/* Closes and checks the close callback fires exactly once, never inside the call. */
static void conn_close(struct fixture *fx, struct probe *p)
{
    ibcore_conn_close(p->c, on_closed, p);
    assert_int_equal(p->close_calls, 0);
    RUN_UNTIL(fx, p->close_calls == 1);
}

/* The callback came at the deadline, within one tick plus slack, on both clocks. */
static void assert_at_deadline(const struct probe *p)
{
    uint64_t budget = p->deadline_ms - p->start_ms;

    assert_true(p->connect_ms >= p->deadline_ms);
    assert_true(p->connect_ms <= p->deadline_ms + SLACK_MS);
    assert_true(p->connect_elapsed_ms + 1 >= budget);
    assert_true(p->connect_elapsed_ms <= budget + SLACK_MS);
}

/* --------------------------------------------------------------------------------------------
 * Requests
 */
static bool match_msg_id(const uint8_t *payload, size_t len, void *data)
{
    struct ibw_reader r;
    int id = 0;

    ibw_reader_init(&r, payload, len);
    return ibw_read_msg_id(&r, &id) == 0 && id == *(const int *)data;
}

static void on_reply(struct ibcore_conn *c, int status, const uint8_t *payload, size_t len,
                     void *data)
{
    struct reply *rp = data;

    assert_ptr_equal(c, rp->p->c);
    rp->calls++;
    rp->status = status;
    rp->len = len;
    rp->at_ms = uv_now(&rp->p->fx->loop);
    rp->poisoned_in_cb = ibcore_conn_is_poisoned(c);
    if (status == 0) {
        struct ibw_reader r;

        assert_non_null(payload);
        ibw_reader_init(&r, payload, len);
        assert_int_equal(ibw_read_msg_id(&r, &rp->msg_id), 0);
    } else {
        assert_null(payload);
        assert_int_equal(len, 0);
    }
    if (rp->close_in_cb)
        ibcore_conn_close(c, on_closed, rp->p);
}

static void on_time(struct ibcore_conn *c, int status, int64_t epoch_s, void *data)
{
    struct reply *rp = data;

    assert_ptr_equal(c, rp->p->c);
    rp->calls++;
    rp->status = status;
    rp->epoch = epoch_s;
    rp->at_ms = uv_now(&rp->p->fx->loop);
    rp->poisoned_in_cb = ibcore_conn_is_poisoned(c);
}

/* A request frame built with the wire writer: msg id and integer fields. */
static size_t build_frame(uint8_t *buf, size_t cap, int n, const int *fields)
{
    struct ibw_writer w;
    ssize_t len;

    ibw_writer_init(&w, buf, cap);
    ibw_writer_begin(&w);
    for (int i = 0; i < n; i++)
        ibw_put_int(&w, fields[i]);
    len = ibw_writer_end(&w);
    assert_true(len > 0);
    return (size_t)len;
}

/* reqIds 8,1,1 (answered by nextValidId 9) or a frame nothing answers (match id 999). */
static int start_req_ids(struct probe *p, struct reply *rp, int *match_id, uint64_t timeout_ms)
{
    static const int req_ids[] = { IBW_OUT_REQ_IDS, 1, 1 };
    uint8_t frame[64];
    size_t len = build_frame(frame, sizeof frame, 3, req_ids);

    memset(rp, 0, sizeof *rp);
    rp->p = p;
    uv_update_time(&p->fx->loop);
    return ibcore_conn_request(p->c, frame, len, match_msg_id, match_id,
                               uv_now(&p->fx->loop) + timeout_ms, on_reply, rp);
}

static int ID_NEXT_VALID = IBW_IN_NEXT_VALID_ID;
static int ID_NEVER = 999;

/* --------------------------------------------------------------------------------------------
 * Readiness
 */
static void conn_ready_reports_version_ids_accounts_and_notices(void **state)
{
    struct fixture *fx = *state;
    struct probe p;

    start_server(fx, NULL);
    conn_ready(fx, &p, 7);
    assert_true(p.was_ready_in_cb);
    assert_true(ibcore_conn_is_ready(p.c));
    assert_false(ibcore_conn_is_poisoned(p.c));
    assert_int_equal(ibcore_conn_server_version(p.c), 178);
    assert_int_equal(ibcore_conn_client_id(p.c), 7);
    assert_int_equal(ibcore_conn_next_valid_id(p.c), 1);
    assert_string_equal(ibcore_conn_accounts(p.c), "DU1234567");
    assert_true(ibcore_conn_last_rx_ms(p.c) >= p.start_ms);
    assert_true(ibcore_conn_last_rx_ms(p.c) <= p.connect_ms);
    assert_true(ibcore_conn_fd(p.c) >= 0);
    RUN_UNTIL(fx, p.notices >= 3);
    run_for(fx, 50);
    assert_int_equal(p.notices, 3);
    assert_int_equal(p.codes[0], 2104);
    assert_int_equal(p.codes[1], 2106);
    assert_int_equal(p.codes[2], 2158);
    for (int i = 0; i < 3; i++)
        assert_int_equal(p.ids[i], -1);
    assert_int_equal(p.connect_calls, 1);
    conn_close(fx, &p);
    run_for(fx, 20);
    assert_int_equal(p.close_calls, 1);
}

static void conn_notice_before_ready_is_delivered(void **state)
{
    struct fixture *fx = *state;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"version_sent\"},"
                     "\"action\":{\"type\":\"error\",\"code\":1100}}]}");
    conn_ready(fx, &p, 1);
    assert_int_equal(p.notices_before_ready, 1);
    assert_int_equal(p.codes[0], 1100);
    assert_int_equal(p.ids[0], -1);
    conn_close(fx, &p);
}

/* From 194 the error frame drops its version field: still id -1 and the right codes. */
static void conn_notices_parse_the_unversioned_layout_from_194(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    fx->cfg.server_version = 200;
    start_server(fx, NULL);
    opts_for(fx, &o, 1);
    o.max_version = 200;
    assert_int_equal(conn_run(fx, &p, &o, 5000), 0);
    assert_int_equal(ibcore_conn_server_version(p.c), 200);
    RUN_UNTIL(fx, p.notices >= 3);
    assert_int_equal(p.codes[0], 2104);
    assert_int_equal(p.codes[2], 2158);
    assert_int_equal(p.ids[1], -1);
    conn_close(fx, &p);
}

static void conn_slice_one_byte_per_write_still_ready(void **state)
{
    struct fixture *fx = *state;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"accept\"},"
                     "\"action\":{\"type\":\"slice\",\"bytes\":1,\"pause_ms\":1}}]}");
    conn_ready(fx, &p, 1);
    assert_int_equal(ibcore_conn_next_valid_id(p.c), 1);
    assert_string_equal(ibcore_conn_accounts(p.c), "DU1234567");
    RUN_UNTIL(fx, p.notices >= 3);
    assert_int_equal(p.codes[2], 2158);
    conn_close(fx, &p);
}

/* --------------------------------------------------------------------------------------------
 * Requests
 */
static void conn_current_time_is_wall_clock(void **state)
{
    struct fixture *fx = *state;
    struct reply rp = { 0 };
    struct probe p;
    int64_t now;

    start_server(fx, NULL);
    conn_ready(fx, &p, 1);
    rp.p = &p;
    assert_int_equal(ibcore_conn_current_time(p.c, uv_now(&fx->loop) + 2000, on_time, &rp), 0);
    assert_int_equal(rp.calls, 0);
    RUN_UNTIL(fx, rp.calls > 0);
    now = (int64_t)time(NULL);
    assert_int_equal(rp.status, 0);
    assert_true(rp.epoch >= now - 2 && rp.epoch <= now + 2);
    assert_false(ibcore_conn_is_poisoned(p.c));
    run_for(fx, 20);
    assert_int_equal(rp.calls, 1);
    conn_close(fx, &p);
}

static void conn_request_req_ids_matches_next_valid_id(void **state)
{
    struct fixture *fx = *state;
    struct reply rp;
    struct probe p;
    uint64_t rx_before;

    start_server(fx, NULL);
    conn_ready(fx, &p, 1);
    RUN_UNTIL(fx, p.notices >= 3);
    rx_before = ibcore_conn_last_rx_ms(p.c);
    assert_int_equal(start_req_ids(&p, &rp, &ID_NEXT_VALID, 2000), 0);
    assert_int_equal(rp.calls, 0);
    RUN_UNTIL(fx, rp.calls > 0);
    assert_int_equal(rp.status, 0);
    assert_int_equal(rp.msg_id, IBW_IN_NEXT_VALID_ID);
    assert_int_equal(rp.len, 6); /* "9\0" "1\0" "1\0" */
    assert_true(ibcore_conn_last_rx_ms(p.c) >= rx_before);
    run_for(fx, 20);
    assert_int_equal(rp.calls, 1);
    conn_close(fx, &p);
}

/* mockgw answers reqCurrentTime at most once a second, like TWS: the second one within a
 * second never gets an answer. */
static void conn_second_current_time_within_1s_times_out_and_poisons(void **state)
{
    struct fixture *fx = *state;
    struct reply first = { 0 }, second = { 0 }, refused;
    struct probe p;
    uint64_t deadline;

    start_server(fx, NULL);
    conn_ready(fx, &p, 1);
    first.p = &p;
    second.p = &p;
    assert_int_equal(ibcore_conn_current_time(p.c, uv_now(&fx->loop) + 2000, on_time, &first), 0);
    RUN_UNTIL(fx, first.calls > 0);
    assert_int_equal(first.status, 0);
    uv_update_time(&fx->loop);
    deadline = uv_now(&fx->loop) + 300;
    assert_int_equal(ibcore_conn_current_time(p.c, deadline, on_time, &second), 0);
    RUN_UNTIL(fx, second.calls > 0);
    assert_int_equal(second.status, UV_ETIMEDOUT);
    assert_int_equal(second.epoch, 0);
    assert_true(second.at_ms >= deadline && second.at_ms <= deadline + SLACK_MS);
    assert_true(second.poisoned_in_cb);
    assert_true(ibcore_conn_is_poisoned(p.c));
    assert_true(ibcore_conn_is_ready(p.c));
    /* Refused without a callback. */
    assert_int_equal(start_req_ids(&p, &refused, &ID_NEXT_VALID, 1000), IBCORE_EPOISONED);
    assert_int_equal(ibcore_conn_current_time(p.c, uv_now(&fx->loop) + 1000, on_time, &refused),
                     IBCORE_EPOISONED);
    run_for(fx, 50);
    assert_int_equal(first.calls, 1);
    assert_int_equal(second.calls, 1);
    assert_int_equal(refused.calls, 0);
    conn_close(fx, &p);
}

/* Two requests, two deadlines: each times out at its own, in order. */
static void conn_each_request_deadline_is_honoured(void **state)
{
    struct fixture *fx = *state;
    struct reply a, b;
    struct probe p;
    uint64_t da, db;

    start_server(fx, NULL);
    conn_ready(fx, &p, 1);
    assert_int_equal(start_req_ids(&p, &b, &ID_NEVER, 400), 0);
    db = uv_now(&fx->loop) + 400;
    assert_int_equal(start_req_ids(&p, &a, &ID_NEVER, 150), 0);
    da = uv_now(&fx->loop) + 150;
    RUN_UNTIL(fx, a.calls > 0);
    assert_int_equal(a.status, UV_ETIMEDOUT);
    assert_true(a.at_ms >= da && a.at_ms <= da + SLACK_MS);
    assert_int_equal(b.calls, 0);
    RUN_UNTIL(fx, b.calls > 0);
    assert_int_equal(b.status, UV_ETIMEDOUT);
    assert_true(b.at_ms >= db && b.at_ms <= db + SLACK_MS);
    assert_int_equal(a.calls, 1);
    conn_close(fx, &p);
}

/* A frame goes to the first matching request only; the next one waits for its own. */
static void conn_frame_matches_one_request_in_order(void **state)
{
    struct fixture *fx = *state;
    struct reply a, b;
    struct probe p;

    start_server(fx, NULL);
    conn_ready(fx, &p, 1);
    assert_int_equal(start_req_ids(&p, &a, &ID_NEXT_VALID, 2000), 0);
    assert_int_equal(start_req_ids(&p, &b, &ID_NEXT_VALID, 2000), 0);
    RUN_UNTIL(fx, a.calls > 0 && b.calls > 0);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_true(a.at_ms <= b.at_ms);
    run_for(fx, 20);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    conn_close(fx, &p);
}

static void conn_request_argument_and_state_errors_have_no_callback(void **state)
{
    struct fixture *fx = *state;
    static const uint8_t short_frame[] = { 0, 0, 0, 5, '4', '9', 0 };
    struct ibcore_conn_opts o;
    struct reply rp = { 0 };
    struct probe p;
    uint8_t frame[64];
    int fields[] = { IBW_OUT_REQ_IDS, 1, 1 };
    size_t len = build_frame(frame, sizeof frame, 3, fields);

    start_server(fx, NULL);
    opts_for(fx, &o, 1);
    conn_start(fx, &p, &o, 5000);
    rp.p = &p;
    /* Not ready yet. */
    assert_int_equal(ibcore_conn_request(p.c, frame, len, match_msg_id, &ID_NEVER,
                                         uv_now(&fx->loop) + 100, on_reply, &rp),
                     IBCORE_ECLOSED);
    assert_int_equal(ibcore_conn_connect(p.c, &o, p.deadline_ms, on_connected, &p), UV_EALREADY);
    RUN_UNTIL(fx, p.connect_calls > 0);
    assert_int_equal(p.connect_status, 0);
    /* Not one complete frame, or no predicate/callback. */
    assert_int_equal(ibcore_conn_request(p.c, short_frame, sizeof short_frame, match_msg_id,
                                         &ID_NEVER, uv_now(&fx->loop) + 100, on_reply, &rp),
                     UV_EINVAL);
    assert_int_equal(ibcore_conn_request(p.c, frame, len - 1, match_msg_id, &ID_NEVER,
                                         uv_now(&fx->loop) + 100, on_reply, &rp),
                     UV_EINVAL);
    assert_int_equal(
        ibcore_conn_request(p.c, frame, len, NULL, NULL, uv_now(&fx->loop) + 100, on_reply, &rp),
        UV_EINVAL);
    assert_int_equal(ibcore_conn_request(p.c, frame, len, match_msg_id, &ID_NEVER,
                                         uv_now(&fx->loop) + 100, NULL, &rp),
                     UV_EINVAL);
    assert_int_equal(ibcore_conn_current_time(p.c, uv_now(&fx->loop) + 100, NULL, NULL), UV_EINVAL);
    run_for(fx, 20);
    assert_int_equal(rp.calls, 0);
    assert_false(ibcore_conn_is_poisoned(p.c));
    conn_close(fx, &p);
    assert_int_equal(p.connect_calls, 1);
}

static void conn_connect_argument_errors_are_einval_without_callback(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p = { 0 };
    uint64_t deadline;

    p.fx = fx;
    p.c = ibcore_conn_new(&fx->loop);
    assert_non_null(p.c);
    deadline = uv_now(&fx->loop) + 1000;
    ibcore_conn_opts_init(&o);
    o.host = "localhost"; /* numeric only */
    assert_int_equal(ibcore_conn_connect(p.c, &o, deadline, on_connected, &p), UV_EINVAL);
    ibcore_conn_opts_init(&o);
    o.min_version = 99;
    assert_int_equal(ibcore_conn_connect(p.c, &o, deadline, on_connected, &p), UV_EINVAL);
    ibcore_conn_opts_init(&o);
    o.max_version = 201; /* protobuf: not spoken */
    assert_int_equal(ibcore_conn_connect(p.c, &o, deadline, on_connected, &p), UV_EINVAL);
    ibcore_conn_opts_init(&o);
    o.min_version = 180;
    o.max_version = 170;
    assert_int_equal(ibcore_conn_connect(p.c, &o, deadline, on_connected, &p), UV_EINVAL);
    ibcore_conn_opts_init(&o);
    o.port = 0;
    assert_int_equal(ibcore_conn_connect(p.c, &o, deadline, on_connected, &p), UV_EINVAL);
    ibcore_conn_opts_init(&o);
    o.connect_options = "+PACEAPI-this-option-string-is-far-too-long-for-the-hello-encoder-xxx";
    assert_int_equal(ibcore_conn_connect(p.c, &o, deadline, on_connected, &p), UV_EINVAL);
    assert_int_equal(ibcore_conn_connect(p.c, NULL, deadline, on_connected, &p), UV_EINVAL);
    ibcore_conn_opts_init(&o);
    assert_int_equal(ibcore_conn_connect(p.c, &o, deadline, NULL, &p), UV_EINVAL);
    assert_int_equal(ibcore_conn_fd(p.c), -1);
    assert_false(ibcore_conn_is_ready(p.c));
    assert_string_equal(ibcore_conn_accounts(p.c), "");
    conn_close(fx, &p);
    assert_int_equal(p.connect_calls, 0);
}

/* --------------------------------------------------------------------------------------------
 * Connect failures
 */
static void conn_duplicate_client_id_is_eclientid_fast(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe first, second;

    start_server(fx, NULL);
    conn_ready(fx, &first, 3);
    opts_for(fx, &o, 3);
    assert_int_equal(conn_run(fx, &second, &o, 5000), IBCORE_ECLIENTID);
    assert_true(second.connect_elapsed_ms < 1000);
    assert_int_equal(second.notices, 1);
    assert_int_equal(second.codes[0], 326);
    assert_int_equal(second.ids[0], -1);
    assert_int_equal(ibcore_conn_server_version(second.c), 178);
    assert_int_equal(ibcore_conn_fd(second.c), -1);
    assert_true(ibcore_conn_is_ready(first.c));
    conn_close(fx, &second);
    conn_close(fx, &first);
    assert_int_equal(second.connect_calls, 1);
}

static void conn_silent_at_accept_times_out_at_the_deadline(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"accept\"},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    opts_for(fx, &o, 1);
    assert_int_equal(conn_run(fx, &p, &o, 300), UV_ETIMEDOUT);
    assert_at_deadline(&p);
    assert_int_equal(ibcore_conn_fd(p.c), -1);
    assert_int_equal(ibcore_conn_last_rx_ms(p.c), 0);
    conn_close(fx, &p);
    assert_int_equal(p.connect_calls, 1);
}

static void conn_silent_after_version_times_out_at_the_deadline(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"version_sent\"},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    opts_for(fx, &o, 1);
    assert_int_equal(conn_run(fx, &p, &o, 300), UV_ETIMEDOUT);
    assert_at_deadline(&p);
    assert_int_equal(ibcore_conn_server_version(p.c), 178); /* the version did arrive */
    conn_close(fx, &p);
}

static void conn_half_ready_times_out_at_the_deadline(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"start_api\"},"
                     "\"action\":{\"type\":\"half_ready\"}}]}");
    opts_for(fx, &o, 1);
    assert_int_equal(conn_run(fx, &p, &o, 300), UV_ETIMEDOUT);
    assert_at_deadline(&p);
    assert_string_equal(ibcore_conn_accounts(p.c), "DU1234567"); /* 15 came, 9 did not */
    assert_int_equal(p.notices, 3);
    conn_close(fx, &p);
}

static void conn_close_at_start_api_is_enotready_fast(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"start_api\"},"
                     "\"action\":{\"type\":\"close\"}}]}");
    opts_for(fx, &o, 1);
    assert_int_equal(conn_run(fx, &p, &o, 5000), IBCORE_ENOTREADY);
    assert_true(p.connect_elapsed_ms < 1000);
    conn_close(fx, &p);
}

static void conn_reset_at_hello_is_econnreset(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"hello\"},"
                     "\"action\":{\"type\":\"reset\"}}]}");
    opts_for(fx, &o, 1);
    assert_int_equal(conn_run(fx, &p, &o, 5000), UV_ECONNRESET);
    assert_true(p.connect_elapsed_ms < 1000);
    conn_close(fx, &p);
}

/* Find a port nobody listens on: bind one, note it, close it. */
static int unused_port(struct fixture *fx)
{
    struct sockaddr_storage ss;
    struct sockaddr_in addr;
    int len = sizeof ss;
    uv_tcp_t t;
    int port;

    uv_tcp_init(&fx->loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len), 0);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    return port;
}

static void conn_refused_port_is_econnrefused(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    ibcore_conn_opts_init(&o);
    o.port = unused_port(fx);
    assert_int_equal(conn_run(fx, &p, &o, 5000), UV_ECONNREFUSED);
    assert_true(p.connect_elapsed_ms < 1000);
    conn_close(fx, &p);
}

static void conn_deadline_already_past_times_out_next_turn(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p = { 0 };

    start_server(fx, NULL);
    opts_for(fx, &o, 1);
    p.fx = fx;
    p.c = ibcore_conn_new(&fx->loop);
    uv_update_time(&fx->loop);
    p.start_hr = uv_hrtime();
    assert_int_equal(ibcore_conn_connect(p.c, &o, uv_now(&fx->loop), on_connected, &p), 0);
    assert_int_equal(p.connect_calls, 0);
    RUN_UNTIL(fx, p.connect_calls > 0);
    assert_int_equal(p.connect_status, UV_ETIMEDOUT);
    assert_true(p.connect_elapsed_ms < SLACK_MS);
    conn_close(fx, &p);
    assert_int_equal(p.connect_calls, 1);
}

/* v179..190 against a 178 gateway: mockgw answers 178 anyway (§2.3); we refuse it. */
static void conn_version_below_client_min_is_eversion(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, NULL);
    opts_for(fx, &o, 1);
    o.min_version = 179;
    o.max_version = 190;
    assert_int_equal(conn_run(fx, &p, &o, 5000), IBCORE_EVERSION);
    assert_true(p.connect_elapsed_ms < 1000);
    assert_int_equal(ibcore_conn_fd(p.c), -1);
    conn_close(fx, &p);
}

/* Decision: random bytes in the stream are IBCORE_EPROTO, found when their first 4-5 bytes are
 * in (a length over 16 MiB, or a payload not starting with a digit), never a wait. */
static void conn_garbage_after_version_is_eproto(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"version_sent\"},"
                     "\"action\":{\"type\":\"garbage\",\"bytes\":16}}]}");
    opts_for(fx, &o, 1);
    assert_int_equal(conn_run(fx, &p, &o, 5000), IBCORE_EPROTO);
    assert_true(p.connect_elapsed_ms < 1000);
    conn_close(fx, &p);
}

static void conn_bad_length_is_eproto(void **state)
{
    static const char *const scripts[] = {
        "{\"rules\":[{\"match\":{\"phase\":\"version_sent\"},"
        "\"action\":{\"type\":\"bad_length\"}}]}",
        "{\"rules\":[{\"match\":{\"phase\":\"version_sent\"},"
        "\"action\":{\"type\":\"bad_length\",\"length\":0}}]}",
        "{\"rules\":[{\"match\":{\"phase\":\"version_sent\"},"
        "\"action\":{\"type\":\"bad_length\",\"length\":16777216}}]}",
    };
    struct fixture *fx = *state;

    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        struct ibcore_conn_opts o;
        struct probe p;

        start_server(fx, scripts[i]);
        opts_for(fx, &o, 1);
        assert_int_equal(conn_run(fx, &p, &o, 5000), IBCORE_EPROTO);
        assert_true(p.connect_elapsed_ms < 1000);
        conn_close(fx, &p);
        fx->stopped_calls = 0;
        assert_int_equal(mgw_server_stop(fx->srv, on_stopped, fx), 0);
        RUN_UNTIL(fx, fx->stopped_calls == 1);
        mgw_server_free(fx->srv);
        fx->srv = NULL;
        fx->stopped_calls = 0;
    }
}

/* --------------------------------------------------------------------------------------------
 * After ready: the peer goes away
 */
static void conn_reset_after_ready_fails_pending_request_econnreset(void **state)
{
    struct fixture *fx = *state;
    struct reply rp;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"ready\"},"
                     "\"action\":{\"type\":\"reset\",\"after_ms\":200}}]}");
    conn_ready(fx, &p, 1);
    assert_int_equal(start_req_ids(&p, &rp, &ID_NEVER, 5000), 0);
    RUN_UNTIL(fx, rp.calls > 0);
    assert_int_equal(rp.status, UV_ECONNRESET);
    assert_false(ibcore_conn_is_ready(p.c));
    assert_false(ibcore_conn_is_poisoned(p.c));
    assert_int_equal(ibcore_conn_fd(p.c), -1);
    assert_int_equal(start_req_ids(&p, &rp, &ID_NEVER, 5000), IBCORE_ECLOSED);
    run_for(fx, 20);
    assert_int_equal(rp.calls, 0); /* start_req_ids reset it; the refused one never calls */
    conn_close(fx, &p);
    assert_int_equal(p.connect_calls, 1);
}

static void conn_close_after_ready_fails_pending_requests_eclosed(void **state)
{
    struct fixture *fx = *state;
    struct reply a, b;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"ready\"},"
                     "\"action\":{\"type\":\"close\",\"after_ms\":200}}]}");
    conn_ready(fx, &p, 1);
    assert_int_equal(start_req_ids(&p, &a, &ID_NEVER, 5000), 0);
    assert_int_equal(start_req_ids(&p, &b, &ID_NEVER, 5000), 0);
    RUN_UNTIL(fx, a.calls > 0 && b.calls > 0);
    assert_int_equal(a.status, IBCORE_ECLOSED);
    assert_int_equal(b.status, IBCORE_ECLOSED);
    assert_false(ibcore_conn_is_ready(p.c));
    run_for(fx, 20);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    conn_close(fx, &p);
}

/* --------------------------------------------------------------------------------------------
 * Close
 */
static void conn_close_inside_the_ready_callback(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, NULL);
    opts_for(fx, &o, 1);
    conn_start(fx, &p, &o, 5000);
    p.close_in_connect_cb = true;
    RUN_UNTIL(fx, p.close_calls == 1);
    assert_int_equal(p.connect_calls, 1);
    assert_int_equal(p.connect_status, 0);
    run_for(fx, 50);
    assert_int_equal(p.connect_calls, 1);
    assert_int_equal(p.close_calls, 1);
    assert_int_equal(p.notices, 0); /* the notices behind 9 and 15 are never delivered */
}

static void conn_close_inside_a_failure_callback(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"start_api\"},"
                     "\"action\":{\"type\":\"refuse_client_id\"}}]}");
    opts_for(fx, &o, 1);
    conn_start(fx, &p, &o, 5000);
    p.close_in_connect_cb = true;
    RUN_UNTIL(fx, p.close_calls == 1);
    assert_int_equal(p.connect_status, IBCORE_ECLIENTID);
    run_for(fx, 20);
    assert_int_equal(p.connect_calls, 1);
    assert_int_equal(p.close_calls, 1);
}

static void conn_close_with_pending_request_cancels_it_once(void **state)
{
    struct fixture *fx = *state;
    struct reply rp;
    struct probe p;

    start_server(fx, NULL);
    conn_ready(fx, &p, 1);
    assert_int_equal(start_req_ids(&p, &rp, &ID_NEVER, 5000), 0);
    ibcore_conn_close(p.c, on_closed, &p);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.status, UV_ECANCELED);
    assert_int_equal(p.close_calls, 0);
    ibcore_conn_close(p.c, on_closed, &p); /* a second close is a no-op */
    RUN_UNTIL(fx, p.close_calls == 1);
    run_for(fx, 50);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(p.close_calls, 1);
}

/* Closing from a reply callback cancels the other pending request, once. */
static void conn_close_inside_a_reply_callback(void **state)
{
    struct fixture *fx = *state;
    struct reply a, b;
    struct probe p;

    start_server(fx, NULL);
    conn_ready(fx, &p, 1);
    assert_int_equal(start_req_ids(&p, &a, &ID_NEXT_VALID, 5000), 0);
    assert_int_equal(start_req_ids(&p, &b, &ID_NEVER, 5000), 0);
    a.close_in_cb = true;
    RUN_UNTIL(fx, p.close_calls == 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, UV_ECANCELED);
    run_for(fx, 20);
    assert_int_equal(p.close_calls, 1);
}

static void conn_close_while_connecting_cancels_once(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"accept\"},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    opts_for(fx, &o, 1);
    conn_start(fx, &p, &o, 5000);
    run_for(fx, 50);
    assert_int_equal(p.connect_calls, 0);
    ibcore_conn_close(p.c, on_closed, &p);
    assert_int_equal(p.connect_calls, 1);
    assert_int_equal(p.connect_status, UV_ECANCELED);
    RUN_UNTIL(fx, p.close_calls == 1);
    run_for(fx, 50);
    assert_int_equal(p.connect_calls, 1);
    assert_int_equal(p.close_calls, 1);
}

/* 1024 pending requests at most; close cancels every one of them exactly once. */
static void conn_pending_requests_are_capped_and_all_cancelled_once(void **state)
{
    struct fixture *fx = *state;
    struct reply *rp = calloc(1025, sizeof *rp);
    struct probe p;

    start_server(fx, "{\"rules\":[{\"match\":{\"phase\":\"ready\"},"
                     "\"action\":{\"type\":\"silent\"}}]}");
    conn_ready(fx, &p, 1);
    for (int i = 0; i < 1024; i++)
        assert_int_equal(start_req_ids(&p, &rp[i], &ID_NEVER, 5000), 0);
    assert_int_equal(start_req_ids(&p, &rp[1024], &ID_NEVER, 5000), UV_ENOBUFS);
    run_for(fx, 20);
    ibcore_conn_close(p.c, on_closed, &p);
    for (int i = 0; i < 1024; i++) {
        assert_int_equal(rp[i].calls, 1);
        assert_int_equal(rp[i].status, UV_ECANCELED);
    }
    RUN_UNTIL(fx, p.close_calls == 1);
    run_for(fx, 20);
    for (int i = 0; i < 1025; i++)
        assert_int_equal(rp[i].calls, i < 1024 ? 1 : 0);
    free(rp);
}

/* Close right after connect returned: TCP connect still in flight. */
static void conn_close_before_tcp_connect_completes(void **state)
{
    struct fixture *fx = *state;
    struct ibcore_conn_opts o;
    struct probe p;

    start_server(fx, NULL);
    opts_for(fx, &o, 1);
    conn_start(fx, &p, &o, 5000);
    ibcore_conn_close(p.c, NULL, NULL);
    assert_int_equal(p.connect_calls, 1);
    assert_int_equal(p.connect_status, UV_ECANCELED);
    run_for(fx, 50);
    assert_int_equal(p.connect_calls, 1);
}

static void conn_fd_count_back_to_baseline_after_200_cycles(void **state)
{
    struct fixture *fx = *state;
    int baseline;

    fx->cfg.unique_client_ids = false; /* mockgw may see the next START_API before our FIN */
    fx->cfg.max_clients = 0;
    start_server(fx, NULL);
    baseline = count_fds();
    for (int i = 0; i < 200; i++) {
        struct probe p;

        conn_ready(fx, &p, 1 + i % 5);
        if (i % 2)
            RUN_UNTIL(fx, p.notices >= 3);
        conn_close(fx, &p);
    }
    for (int i = 0; i < 100 && count_fds() != baseline; i++)
        run_for(fx, 10); /* mockgw closes its side when it reads our FIN */
    assert_int_equal(count_fds(), baseline);
}

/* --------------------------------------------------------------------------------------------
 * A raw gateway for byte sequences mockgw cannot send
 */
static void on_raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct fixture *fx = h->data;

    (void)suggested;
    *buf = uv_buf_init(fx->raw_in, sizeof fx->raw_in);
}

static void on_raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        uv_read_stop(s); /* the handle is closed at teardown */
}

static void on_raw_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void on_raw_connection(uv_stream_t *server, int status)
{
    struct fixture *fx = server->data;
    uv_write_t *req = malloc(sizeof *req);
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)fx->raw_bytes, (unsigned)fx->raw_len);

    assert_int_equal(status, 0);
    assert_false(fx->has_raw_peer);
    uv_tcp_init(&fx->loop, &fx->raw_peer);
    fx->raw_peer.data = fx;
    fx->has_raw_peer = true;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&fx->raw_peer), 0);
    uv_read_start((uv_stream_t *)&fx->raw_peer, on_raw_alloc, on_raw_read);
    assert_int_equal(uv_write(req, (uv_stream_t *)&fx->raw_peer, &b, 1, on_raw_written), 0);
}

static void start_raw(struct fixture *fx, const uint8_t *bytes, size_t len)
{
    struct sockaddr_storage ss;
    struct sockaddr_in addr;
    int namelen = sizeof ss;

    fx->raw_bytes = bytes;
    fx->raw_len = len;
    uv_tcp_init(&fx->loop, &fx->raw_listener);
    fx->raw_listener.data = fx;
    fx->has_raw_listener = true;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&fx->raw_listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fx->raw_listener, 8, on_raw_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&fx->raw_listener, (struct sockaddr *)&ss, &namelen), 0);
    fx->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* The handshake reply and the start-up frames, encoded with the wire writer. */
static size_t raw_ready_prefix(uint8_t *buf, size_t cap, const char *accounts)
{
    struct ibw_writer w;

    ibw_writer_init(&w, buf, cap);
    assert_true(ibw_enc_server_version(&w, 178, "20240115 10:15:30 EST") > 0);
    assert_true(ibw_enc_managed_accounts(&w, 178, accounts) > 0);
    assert_true(ibw_enc_next_valid_id(&w, 178, 42) > 0);
    return w.len;
}

static int ID_CONTRACT_DATA = IBW_IN_CONTRACT_DATA;

static void on_ready_send_request(struct ibcore_conn *c, int status, void *data)
{
    struct reply *rp = data;
    static const int fields[] = { IBW_OUT_REQ_MANAGED_ACCTS, 1 };
    uint8_t frame[32];
    size_t len = build_frame(frame, sizeof frame, 2, fields);

    rp->p->connect_calls++;
    rp->p->connect_status = status;
    assert_int_equal(status, 0);
    assert_int_equal(ibcore_conn_request(c, frame, len, match_msg_id, &ID_CONTRACT_DATA,
                                         uv_now(&rp->p->fx->loop) + 5000, on_reply, rp),
                     0);
}

/* A 1 MiB frame arriving in pieces after ready: the input buffer grows to hold it. */
static void conn_large_frame_grows_the_buffer_and_matches(void **state)
{
    struct fixture *fx = *state;
    size_t cap = (1u << 20) + 4096, n, big = 1u << 20;
    uint8_t *bytes = malloc(cap);
    struct ibcore_conn_opts o;
    struct reply rp = { 0 };
    struct probe p = { 0 };

    n = raw_ready_prefix(bytes, cap, "DU1,DU2");
    /* "10\0" + 'x' * (big - 4) + "\0" as one frame of big bytes. */
    bytes[n] = (uint8_t)(big >> 24);
    bytes[n + 1] = (uint8_t)(big >> 16);
    bytes[n + 2] = (uint8_t)(big >> 8);
    bytes[n + 3] = (uint8_t)big;
    memcpy(bytes + n + 4, "10", 3);
    memset(bytes + n + 7, 'x', big - 4);
    bytes[n + 4 + big - 1] = '\0';
    start_raw(fx, bytes, n + 4 + big);
    ibcore_conn_opts_init(&o);
    o.port = fx->port;
    p.fx = fx;
    p.c = ibcore_conn_new(&fx->loop);
    rp.p = &p;
    uv_update_time(&fx->loop);
    assert_int_equal(
        ibcore_conn_connect(p.c, &o, uv_now(&fx->loop) + 5000, on_ready_send_request, &rp), 0);
    RUN_UNTIL(fx, rp.calls > 0);
    assert_int_equal(p.connect_calls, 1);
    assert_int_equal(rp.status, 0);
    assert_int_equal(rp.msg_id, IBW_IN_CONTRACT_DATA);
    assert_int_equal(rp.len, big);
    assert_int_equal(ibcore_conn_next_valid_id(p.c), 42);
    assert_string_equal(ibcore_conn_accounts(p.c), "DU1,DU2");
    conn_close(fx, &p);
    free(bytes);
}

static void raw_connect_expect(struct fixture *fx, const uint8_t *bytes, size_t len,
                               uint64_t timeout_ms, int want)
{
    struct ibcore_conn_opts o;
    struct probe p;

    start_raw(fx, bytes, len);
    ibcore_conn_opts_init(&o);
    o.port = fx->port;
    assert_int_equal(conn_run(fx, &p, &o, timeout_ms), want);
    if (want == UV_ETIMEDOUT)
        assert_at_deadline(&p);
    else
        assert_true(p.connect_elapsed_ms < 1000);
    conn_close(fx, &p);
}

static void conn_frame_without_trailing_nul_is_eproto(void **state)
{
    static const uint8_t bytes[] = { 0, 0, 0, 7, '1', '7', '8', 0, 'E', 'S', 'T' };

    raw_connect_expect(*state, bytes, sizeof bytes, 5000, IBCORE_EPROTO);
}

static void conn_version_reply_with_three_fields_is_eproto(void **state)
{
    static const uint8_t bytes[] = { 0, 0, 0, 8, '1', '7', '8', 0, 'E', 0, 'X', 0 };

    raw_connect_expect(*state, bytes, sizeof bytes, 5000, IBCORE_EPROTO);
}

static void conn_non_numeric_message_id_is_eproto(void **state)
{
    uint8_t bytes[256];
    size_t n = raw_ready_prefix(bytes, sizeof bytes, "");
    static const uint8_t bad[] = { 0, 0, 0, 4, '9', 'x', 0, 0 };

    memcpy(bytes + n, bad, sizeof bad);
    raw_connect_expect(*state, bytes, n + sizeof bad, 5000, IBCORE_EPROTO);
}

/* managedAccounts with no account is not readiness (§3.2): the deadline decides. */
static void conn_empty_managed_accounts_is_not_ready(void **state)
{
    uint8_t bytes[256];
    size_t n = raw_ready_prefix(bytes, sizeof bytes, "");

    raw_connect_expect(*state, bytes, n, 300, UV_ETIMEDOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(conn_ready_reports_version_ids_accounts_and_notices, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_notice_before_ready_is_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_notices_parse_the_unversioned_layout_from_194, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_slice_one_byte_per_write_still_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_current_time_is_wall_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_request_req_ids_matches_next_valid_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_second_current_time_within_1s_times_out_and_poisons,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn_each_request_deadline_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_frame_matches_one_request_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_request_argument_and_state_errors_have_no_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn_connect_argument_errors_are_einval_without_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn_duplicate_client_id_is_eclientid_fast, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_silent_at_accept_times_out_at_the_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_silent_after_version_times_out_at_the_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_half_ready_times_out_at_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_close_at_start_api_is_enotready_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_reset_at_hello_is_econnreset, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_refused_port_is_econnrefused, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_deadline_already_past_times_out_next_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_version_below_client_min_is_eversion, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_garbage_after_version_is_eproto, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_bad_length_is_eproto, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_reset_after_ready_fails_pending_request_econnreset,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn_close_after_ready_fails_pending_requests_eclosed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn_close_inside_the_ready_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_close_inside_a_failure_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_close_with_pending_request_cancels_it_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_close_inside_a_reply_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_close_while_connecting_cancels_once, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_close_before_tcp_connect_completes, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_pending_requests_are_capped_and_all_cancelled_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn_fd_count_back_to_baseline_after_200_cycles, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_large_frame_grows_the_buffer_and_matches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_frame_without_trailing_nul_is_eproto, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_version_reply_with_three_fields_is_eproto, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn_non_numeric_message_id_is_eproto, setup, teardown),
        cmocka_unit_test_setup_teardown(conn_empty_managed_accounts_is_not_ready, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* libuv writes with write(2): a reset peer must not kill us */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
