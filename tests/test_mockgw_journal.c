/* The journal: valid JSON for any input, the event ring, the log file and its flushing. */
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

#include "journal.h"
#include "strbuf.h"

static void run_and_close(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* How many events the ring holds after since, counted in its JSON. */
static int ring_count(struct mgw_journal *j, uint64_t since)
{
    char *json = mgw_journal_ring_json(j, since, MGW_JOURNAL_ALL);
    cJSON *arr = cJSON_Parse(json);
    int n = cJSON_GetArraySize(arr);

    cJSON_Delete(arr);
    free(json);
    return n;
}

static void journal_ring_is_valid_json_for_hostile_strings(void **state)
{
    uv_loop_t loop;
    struct mgw_err err;
    struct mgw_journal *j;
    char esc[64], *json;
    cJSON *arr, *first;

    (void)state;
    uv_loop_init(&loop);
    j = mgw_journal_new(&loop, NULL, 4, &err);
    assert_non_null(j);
    mgw_journal_eventf(j, 3, 7, "hello", "\"options\":\"%s\"",
                       mgw_json_escape("a\"b\\c\x01\xff", esc, sizeof esc));
    json = mgw_journal_ring_json(j, 0, MGW_JOURNAL_ALL);
    arr = cJSON_Parse(json);
    assert_non_null(arr);
    first = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "options")->valuestring, "a\"b\\c\x01\xc3\xbf");
    assert_int_equal(cJSON_GetObjectItem(first, "conn")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(first, "client_id")->valueint, 7);
    cJSON_Delete(arr);
    free(json);
    mgw_journal_free(j);
    run_and_close(&loop);
}

static void journal_ring_keeps_the_latest_and_honours_since(void **state)
{
    uv_loop_t loop;
    struct mgw_err err;
    struct mgw_journal *j;
    char *json;
    cJSON *arr;

    (void)state;
    uv_loop_init(&loop);
    j = mgw_journal_new(&loop, NULL, 3, &err);
    for (int i = 0; i < 5; i++)
        mgw_journal_event(j, 1, -1, "accept", NULL);
    assert_true(mgw_journal_seq(j) == 5);
    json = mgw_journal_ring_json(j, 0, MGW_JOURNAL_ALL);
    arr = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(arr), 3); /* seq 3, 4, 5 */
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "seq")->valueint, 3);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "client_id")));
    cJSON_Delete(arr);
    free(json);
    assert_int_equal(ring_count(j, 4), 1);
    mgw_journal_clear(j);
    json = mgw_journal_ring_json(j, 0, MGW_JOURNAL_ALL);
    assert_string_equal(json, "[]");
    free(json);
    mgw_journal_event(j, 1, -1, "accept", NULL);
    assert_true(mgw_journal_seq(j) == 6); /* the sequence goes on after a clear */
    mgw_journal_free(j);
    run_and_close(&loop);
}

/* Huge lines push the oldest out by bytes, not only by count; the newest always stays. */
static void journal_ring_is_bounded_by_bytes(void **state)
{
    static char big[40000];
    uv_loop_t loop;
    struct mgw_err err;
    struct mgw_journal *j;
    char detail[sizeof big + 16], *json;
    cJSON *arr;

    (void)state;
    uv_loop_init(&loop);
    j = mgw_journal_new(&loop, NULL, 1000, &err);
    mgw_journal_set_ring_max_bytes(j, 100000);
    memset(big, 'x', sizeof big - 1);
    snprintf(detail, sizeof detail, "\"blob\":\"%s\"", big);
    for (int i = 0; i < 10; i++)
        mgw_journal_event(j, 1, -1, "big", detail);
    assert_true(mgw_journal_ring_bytes(j) <= 100000);
    json = mgw_journal_ring_json(j, 0, MGW_JOURNAL_ALL);
    arr = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(arr), 2); /* two 40 KB lines fit in 100 KB */
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "seq")->valueint, 10);
    cJSON_Delete(arr);
    free(json);
    for (int i = 0; i < 500; i++) /* small ones: the big ones make room for them */
        mgw_journal_event(j, 1, -1, "accept", NULL);
    json = mgw_journal_ring_json(j, 0, MGW_JOURNAL_ALL);
    arr = cJSON_Parse(json);
    assert_true(mgw_journal_ring_bytes(j) <= 100000);
    assert_true(cJSON_GetArraySize(arr) >= 500); /* every small one; at most one big one left */
    assert_true(cJSON_GetArraySize(arr) <= 501);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1), "seq")->valueint,
        510);
    cJSON_Delete(arr);
    free(json);
    mgw_journal_set_ring_max_bytes(j, 10); /* smaller than any line: the newest still stays */
    mgw_journal_event(j, 1, -1, "accept", NULL);
    assert_int_equal(ring_count(j, 0), 1);
    mgw_journal_free(j);
    run_and_close(&loop);
}

static void on_turn(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

static void journal_frames_go_to_the_file_after_a_loop_turn(void **state)
{
    static const uint8_t payload[] = "9\0"
                                     "1\0"
                                     "1";
    char path[] = "/tmp/mgw-journal-XXXXXX";
    int fd = mkstemp(path);
    uv_loop_t loop;
    struct mgw_err err;
    struct mgw_journal *j;
    char line[512];
    uv_timer_t turn;
    FILE *f;
    cJSON *o;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    uv_loop_init(&loop);
    j = mgw_journal_new(&loop, path, 0, &err);
    assert_non_null(j);
    assert_true(mgw_journal_logs_frames(j));
    mgw_journal_frame(j, 2, 1, true, payload, sizeof payload);
    f = fopen(path, "r");
    assert_null(fgets(line, sizeof line, f)); /* nothing before the loop runs */
    uv_timer_init(&loop, &turn); /* one loop turn (an unref'd flusher alone keeps no loop) */
    uv_timer_start(&turn, on_turn, 1, 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* the prepare phase flushes */
    clearerr(f);
    assert_non_null(fgets(line, sizeof line, f));
    o = cJSON_Parse(line);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "dir")->valuestring, "out");
    assert_string_equal(cJSON_GetObjectItem(o, "msg")->valuestring, "nextValidId");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "fields")), 3);
    cJSON_Delete(o);
    fclose(f);
    mgw_journal_free(j);
    run_and_close(&loop);
    unlink(path);
}

static void journal_bad_log_path_names_it(void **state)
{
    uv_loop_t loop;
    struct mgw_err err;

    (void)state;
    uv_loop_init(&loop);
    assert_null(mgw_journal_new(&loop, "/nonexistent/dir/log.jsonl", 4, &err));
    assert_string_equal(err.msg, "--log /nonexistent/dir/log.jsonl: No such file or directory");
    run_and_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(journal_ring_is_valid_json_for_hostile_strings),
        cmocka_unit_test(journal_ring_is_bounded_by_bytes),
        cmocka_unit_test(journal_ring_keeps_the_latest_and_honours_since),
        cmocka_unit_test(journal_frames_go_to_the_file_after_a_loop_turn),
        cmocka_unit_test(journal_bad_log_path_names_it),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
