/* Loop-test helpers shared by the test files that run the in-process mockgw: run the loop
 * until a condition (bounded by the fixture's watchdog), run it for a while, start a mockgw
 * with an optional fault script. Include after cmocka.h, uv.h, mockgw.h and fault.h; the
 * fixture struct must have `uv_loop_t loop` and `bool hung` (set by its watchdog). */
#ifndef MGW_TEST_LOOP_UTIL_H
#define MGW_TEST_LOOP_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Runs the loop until cond holds (the watchdog bounds it). */
#define RUN_UNTIL(fx, cond)                   \
    do {                                      \
        while (!(cond) && !(fx)->hung)        \
            uv_run(&(fx)->loop, UV_RUN_ONCE); \
        assert_false((fx)->hung);             \
    } while (0)

static void loop_util_on_pause(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop for ms (lets late callbacks, if any, show up). */
#define run_for(fx, ms) loop_run_for(&(fx)->loop, &(fx)->hung, (ms))

static inline void loop_run_for(uv_loop_t *loop, bool *hung, uint64_t ms)
{
    uv_timer_t t;
    bool done = false;

    uv_timer_init(loop, &t);
    t.data = &done;
    uv_timer_start(&t, loop_util_on_pause, ms, 0);
    while (!done && !*hung)
        uv_run(loop, UV_RUN_ONCE);
    assert_false(*hung);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* A started in-process mockgw with cfg and script (fault-script JSON, or NULL). */
static inline struct mgw_server *loop_start_mockgw(uv_loop_t *loop, struct mgw_config *cfg,
                                                   const char *script)
{
    struct mgw_script *sc = NULL;
    struct mgw_server *srv;
    struct mgw_err err;

    if (script) {
        sc = mgw_script_parse(script, strlen(script), "test", &err);
        if (sc == NULL)
            fail_msg("%s", err.msg);
        cfg->script = sc;
    }
    srv = mgw_server_new(loop, cfg, &err);
    if (srv == NULL)
        fail_msg("%s", err.msg);
    mgw_script_free(sc);
    cfg->script = NULL;
    assert_int_equal(mgw_server_start(srv, &err), 0);
    return srv;
}

#endif /* MGW_TEST_LOOP_UTIL_H */
