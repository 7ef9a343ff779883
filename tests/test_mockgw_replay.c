/* Replay: loading a --record file, matching requests, substituting request ids. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ibwire.h"
#include "replay.h"

/* conn 1: handshake, the burst, reqCurrentTime twice, a historical request (id 7) whose
 * answer carries the id, and reqIds; conn 2 at version 178 too. */
static const char RECORD[] =
    "{\"t_ms\":0,\"conn\":1,\"dir\":\"in\",\"msg\":null,\"name\":\"hello\",\"fields\":"
    "[\"v157..178\"],\"min\":157,\"max\":178,\"options\":\"\"}\n"
    "{\"t_ms\":0,\"conn\":1,\"dir\":\"out\",\"msg\":null,\"name\":\"serverVersion\","
    "\"fields\":[\"178\",\"20240115 10:15:30 EST\"]}\n"
    "{\"t_ms\":1,\"conn\":1,\"dir\":\"in\",\"msg\":71,\"name\":\"startApi\",\"fields\":"
    "[\"71\",\"2\",\"1\",\"\"]}\n"
    "{\"t_ms\":1,\"conn\":1,\"dir\":\"out\",\"msg\":15,\"name\":\"managedAccounts\",\"fields\":"
    "[\"15\",\"1\",\"DU1\"]}\n"
    "\n"
    "{\"t_ms\":2,\"conn\":1,\"dir\":\"in\",\"msg\":49,\"name\":\"reqCurrentTime\",\"fields\":"
    "[\"49\",\"1\"]}\n"
    "{\"t_ms\":2,\"conn\":1,\"dir\":\"out\",\"msg\":49,\"name\":\"currentTime\",\"fields\":"
    "[\"49\",\"1\",\"1000\"]}\n"
    "{\"t_ms\":3,\"conn\":1,\"dir\":\"in\",\"msg\":20,\"name\":\"reqHistoricalData\",\"fields\":"
    "[\"20\",\"7\",\"0\",\"AAPL\"]}\n"
    "{\"t_ms\":3,\"conn\":1,\"dir\":\"in\",\"msg\":49,\"name\":\"reqCurrentTime\",\"fields\":"
    "[\"49\",\"1\"]}\n"
    "{\"t_ms\":4,\"conn\":1,\"dir\":\"out\",\"msg\":49,\"name\":\"currentTime\",\"fields\":"
    "[\"49\",\"1\",\"2000\"]}\n"
    "{\"t_ms\":5,\"conn\":1,\"dir\":\"out\",\"msg\":17,\"name\":\"historicalData\",\"fields\":"
    "[\"17\",\"7\",\"bars\"]}\n"
    "{\"t_ms\":5,\"conn\":1,\"dir\":\"out\",\"msg\":108,\"name\":\"historicalDataEnd\","
    "\"fields\":[\"108\",\"7\",\"a\",\"b\"]}\n"
    "{\"t_ms\":6,\"conn\":2,\"dir\":\"in\",\"msg\":71,\"name\":\"startApi\",\"fields\":"
    "[\"71\",\"2\",\"2\",\"\"]}\n"
    "{\"t_ms\":6,\"conn\":2,\"dir\":\"in\",\"msg\":8,\"name\":\"reqIds\",\"fields\":"
    "[\"8\",\"1\",\"1\"]}\n";

static struct mgw_replay *load(const char *text)
{
    struct mgw_err err;
    struct mgw_replay *r = mgw_replay_parse(text, strlen(text), "rec.jsonl", &err);

    if (!r)
        fail_msg("%s", err.msg);
    return r;
}

/* Asks r (at version 178) for the answers to a request given as comma-separated fields
 * ("20,7,0,AAPL"; on the wire each field ends with a NUL); they go to w. */
static int ask(struct mgw_replay *r, const char *fields, struct ibw_writer *w)
{
    char req[256];
    size_t n = strlen(fields) + 1;

    assert_true(n <= sizeof req);
    memcpy(req, fields, n);
    for (size_t i = 0; i < n; i++)
        if (req[i] == ',')
            req[i] = '\0';
    return mgw_replay_answer(r, 178, (const uint8_t *)req, n, w);
}

/* The fields of the i-th frame in buf (NUL-separated copy in out). */
static void frame_at(const struct ibw_writer *w, unsigned i, char *out, size_t cap)
{
    size_t off = 0;

    for (;; i--) {
        struct ibw_frame f;
        ssize_t n = ibw_frame_parse(w->buf + off, w->len - off, IBW_MAX_FRAME, &f);

        assert_true(n > 0);
        if (i == 0) {
            assert_true(f.len < cap);
            memcpy(out, f.payload, f.len);
            out[f.len] = '\0';
            for (size_t k = 0; k + 1 < f.len; k++)
                if (out[k] == '\0')
                    out[k] = ',';
            return;
        }
        off += (size_t)n;
    }
}

static void replay_loads_requests_after_start_api(void **state)
{
    struct mgw_replay *r = load(RECORD);

    (void)state;
    assert_int_equal(mgw_replay_count(r), 4); /* 49, 20, 49, 8 */
    mgw_replay_free(r);
}

static void replay_kth_request_gets_kth_answer_then_the_last(void **state)
{
    struct mgw_replay *r = load(RECORD);
    uint8_t buf[4096];
    struct ibw_writer w;
    char f[256];

    (void)state;
    for (int k = 0; k < 3; k++) {
        ibw_writer_init(&w, buf, sizeof buf);
        assert_int_equal(ask(r, "49,1", &w), 1);
        frame_at(&w, 0, f, sizeof f);
        assert_string_equal(f, k == 0 ? "49,1,1000" : "49,1,2000");
    }
    mgw_replay_rewind(r);
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ask(r, "49,1", &w), 1);
    frame_at(&w, 0, f, sizeof f);
    assert_string_equal(f, "49,1,1000");
    mgw_replay_free(r);
}

static void replay_substitutes_the_request_id(void **state)
{
    struct mgw_replay *r = load(RECORD);
    uint8_t buf[4096];
    struct ibw_writer w;
    char f[256];

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    /* Answers found by their id even though another request came in between. */
    assert_int_equal(ask(r, "20,42,0,AAPL", &w), 2);
    frame_at(&w, 0, f, sizeof f);
    assert_string_equal(f, "17,42,bars");
    frame_at(&w, 1, f, sizeof f);
    assert_string_equal(f, "108,42,a,b");
    mgw_replay_free(r);
}

static void replay_other_fields_must_match(void **state)
{
    struct mgw_replay *r = load(RECORD);
    uint8_t buf[4096];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ask(r, "20,7,0,MSFT", &w), -ENOENT);
    assert_int_equal(ask(r, "20,7,0", &w), -ENOENT);
    assert_int_equal(ask(r, "59,1,3", &w), -ENOENT);
    assert_int_equal(w.len, 0);
    /* Recorded with no answer: a match that sends nothing. */
    assert_int_equal(ask(r, "8,1,1", &w), 0);
    mgw_replay_free(r);
}

static void replay_full_writer_reports_its_error(void **state)
{
    struct mgw_replay *r = load(RECORD);
    uint8_t buf[16];
    struct ibw_writer w;

    (void)state;
    ibw_writer_init(&w, buf, sizeof buf);
    assert_int_equal(ask(r, "20,7,0,AAPL", &w), IBW_ENOSPC);
    mgw_replay_free(r);
}

static void replay_bad_lines_name_line_and_path(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        { "{\"conn\":1,\"dir\":\"in\",\"msg\":8,\"fields\":[\"8\"]}\nnot json\n",
          "rec.jsonl: line 2: invalid JSON at line 1, column 1" },
        { "{\"conn\":1,\"dir\":\"up\",\"msg\":8,\"fields\":[\"8\"]}\n",
          "rec.jsonl: line 1: $.dir: expected \"in\" or \"out\"" },
        { "{\"conn\":1,\"dir\":\"in\",\"msg\":8,\"fields\":[8]}\n",
          "rec.jsonl: line 1: $.fields[0]: expected a string" },
        { "{\"conn\":1,\"dir\":\"in\",\"msg\":8,\"fields\":[]}\n",
          "rec.jsonl: line 1: $.fields: a frame has at least one field" },
        { "{\"conn\":1,\"dir\":\"in\",\"msg\":8,\"fields\":[\"8\"],\"extra\":1}\n",
          "rec.jsonl: line 1: $.extra: unknown key" },
        { "{\"conn\":-1,\"dir\":\"in\",\"msg\":8,\"fields\":[\"8\"]}\n",
          "rec.jsonl: line 1: $.conn: must be between" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mgw_err err;
        struct mgw_replay *r =
            mgw_replay_parse(cases[i].text, strlen(cases[i].text), "rec.jsonl", &err);

        assert_null(r);
        if (strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err.msg, cases[i].msg);
    }
}

static void replay_missing_file_names_it(void **state)
{
    struct mgw_err err;

    (void)state;
    assert_null(mgw_replay_load("/nonexistent/rec.jsonl", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/rec.jsonl"));
}

/* The wire tables agree with the encoders: the request id sits where they say. */
static void wire_answer_req_id_index_matches_encoders(void **state)
{
    static const int versions[] = { 100, 123, 124, 163, 164, 178, 193, 194, 196, 200 };
    uint8_t buf[8192];

    (void)state;
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        int sv = versions[v];
        struct ibw_writer w;
        struct ibw_contract_details cd = { 0 };
        struct ibw_bar bar = { "20240115", 1, 2, 0.5, 1.5, "10", "1.2", 3 };

        ibw_writer_init(&w, buf, sizeof buf);
        ibw_enc_error(&w, sv, 4242, 200, "x", NULL, 0);
        ibw_enc_tick_price(&w, sv, 4242, 1, 1.0, "1", 0);
        ibw_enc_tick_size(&w, sv, 4242, 0, "1");
        ibw_enc_tick_string(&w, sv, 4242, 45, "1");
        ibw_enc_tick_generic(&w, sv, 4242, 49, 0.0);
        ibw_enc_contract_details(&w, sv, 4242, &cd);
        ibw_enc_contract_details_end(&w, sv, 4242);
        ibw_enc_historical_data(&w, sv, 4242, "a", "b", &bar, 1);
        ibw_enc_head_timestamp(&w, sv, 4242, "t");
        ibw_enc_symbol_samples(&w, sv, 4242, NULL, 0);
        ibw_enc_tick_req_params(&w, sv, 4242, 0.01, "x", 3);
        ibw_enc_market_data_type(&w, sv, 4242, 3);
        ibw_enc_tick_snapshot_end(&w, sv, 4242);
        ibw_enc_account_summary(&w, sv, 4242, "A", "t", "v", "USD");
        ibw_enc_account_summary_end(&w, sv, 4242);
        ibw_enc_account_update_multi(&w, sv, 4242, "A", "", "k", "v", "USD");
        ibw_enc_account_update_multi_end(&w, sv, 4242);
        ibw_enc_exec_details_end(&w, sv, 4242);
        assert_int_equal(w.err, 0);
        for (size_t off = 0; off < w.len;) {
            struct ibw_frame f;
            struct ibw_reader r;
            ssize_t n = ibw_frame_parse(buf + off, w.len - off, IBW_MAX_FRAME, &f);
            int id = 0, idx, got = 0;

            assert_true(n > 0);
            ibw_reader_init(&r, f.payload, f.len);
            assert_int_equal(ibw_read_msg_id(&r, &id), 0);
            idx = ibw_in_req_id_index(id, sv);
            if (idx < 0)
                fail_msg("msg %d at %d: no request id index", id, sv);
            ibw_reader_init(&r, f.payload, f.len);
            ibw_read_skip(&r, (unsigned)idx);
            assert_int_equal(ibw_read_int(&r, &got), 0);
            if (got != 4242)
                fail_msg("msg %d at %d: field %d is %d", id, sv, idx, got);
            off += (size_t)n;
        }
    }
    assert_int_equal(ibw_in_req_id_index(IBW_IN_NEXT_VALID_ID, 178), -1);
    assert_int_equal(ibw_out_req_id_index(IBW_OUT_REQ_CURRENT_TIME, 178), -1);
    assert_int_equal(ibw_out_req_id_index(IBW_OUT_REQ_HISTORICAL_DATA, 123), 2);
    assert_int_equal(ibw_out_req_id_index(IBW_OUT_REQ_HISTORICAL_DATA, 124), 1);
    assert_int_equal(ibw_out_req_id_index(IBW_OUT_REQ_MKT_DATA, 178), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replay_loads_requests_after_start_api),
        cmocka_unit_test(replay_kth_request_gets_kth_answer_then_the_last),
        cmocka_unit_test(replay_substitutes_the_request_id),
        cmocka_unit_test(replay_other_fields_must_match),
        cmocka_unit_test(replay_full_writer_reports_its_error),
        cmocka_unit_test(replay_bad_lines_name_line_and_path),
        cmocka_unit_test(replay_missing_file_names_it),
        cmocka_unit_test(wire_answer_req_id_index_matches_encoders),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
