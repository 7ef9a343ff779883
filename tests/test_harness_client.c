/* The external client runner (harness/client.c): placeholders filled, the exit status and the
 * output kept (only the newest 16 KiB), the environment, and a stop that reaches the whole
 * process group (a shell's children too) within bounded time. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "internal.h"

static const struct harness__client_vars vars = { "127.0.0.1", 4002, 4080, 7, "/tmp/my dir" };

static uint64_t ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* Runs the loop until cond(c) or ms_max passes; false on timeout. */
static bool run_until(uv_loop_t *loop, struct harness__client *c,
                      bool (*cond)(const struct harness__client *), uint64_t ms_max)
{
    uint64_t end = ms() + ms_max;

    while (!cond(c)) {
        if (ms() >= end)
            return false;
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
    return true;
}

/* Starts cmd, runs it to its end (within ms_max) and returns its output (heap). */
static char *run_to_end(uv_loop_t *loop, const char *cmd, struct harness__client **c,
                        uint64_t ms_max)
{
    uv_loop_init(loop);
    assert_int_equal(harness__client_start(loop, cmd, &vars, c), 0);
    assert_true(run_until(loop, *c, harness__client_exited, ms_max));
    assert_true(run_until(loop, *c, harness__client_output_done, 2000));
    return harness__client_output(*c);
}

static void finish(uv_loop_t *loop, struct harness__client *c)
{
    harness__client_close(c);
    assert_true(run_until(loop, c, harness__client_closed, 3000));
    harness__client_free(c);
    assert_int_equal(uv_loop_close(loop), 0); /* every handle closed */
}

static void command_placeholders(void **state)
{
    char *s = harness__client_command("app --host {host} --port {port} --admin {admin_port} "
                                      "--seed {seed} {scenario_dir}/x ${HOME} {other} {port",
                                      &vars);

    (void)state;
    assert_string_equal(s, "app --host 127.0.0.1 --port 4002 --admin 4080 --seed 7 "
                           "'/tmp/my dir'/x ${HOME} {other} {port");
    free(s);
}

static void exit_status_output_and_environment(void **state)
{
    struct harness__client *c;
    uv_loop_t loop;
    char *out;

    (void)state;
    out = run_to_end(&loop,
                     "echo out $MOCKGW_HOST:$MOCKGW_PORT/$MOCKGW_ADMIN_PORT; echo err >&2; "
                     "read x; echo stdin=$?; exit 3",
                     &c, 5000);
    assert_int_equal(harness__client_status(c), 3);
    assert_non_null(strstr(out, "out 127.0.0.1:4002/4080\n"));
    assert_non_null(strstr(out, "err\n"));
    assert_non_null(strstr(out, "stdin=1")); /* stdin is /dev/null: read sees EOF */
    free(out);
    finish(&loop, c);
}

static void output_keeps_the_newest_16_kib(void **state)
{
    struct harness__client *c;
    uv_loop_t loop;
    char *out;

    (void)state;
    /* 1000 numbered lines of 40 bytes: about 40 KB */
    out = run_to_end(&loop, "i=0; while [ $i -lt 1000 ]; do printf '%039d\\n' $i; i=$((i+1)); done",
                     &c, 10000);
    assert_int_equal(harness__client_status(c), 0);
    assert_int_equal(strlen(out), 16384);
    assert_non_null(strstr(out, "000000000000000000000000000000000000999\n"));
    assert_null(strstr(out, "000000000000000000000000000000000000000\n"));
    free(out);
    finish(&loop, c);
}

/* SIGTERM to the group reaches the shell's background child too (the pipe it holds closes);
 * the status is the command's (the shell reports the foreground sleep's death: 143). */
static void signal_reaches_the_process_group(void **state)
{
    struct harness__client *c;
    uint64_t t0;
    uv_loop_t loop;

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(harness__client_start(&loop, "sleep 30 & sleep 30", &vars, &c), 0);
    uv_sleep(100);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_false(harness__client_exited(c));
    t0 = ms();
    harness__client_signal(c, SIGTERM);
    assert_true(run_until(&loop, c, harness__client_exited, 3000));
    assert_true(run_until(&loop, c, harness__client_output_done, 3000));
    assert_true(ms() - t0 < 3000);
    assert_int_equal(harness__client_status(c), 128 + SIGTERM);
    finish(&loop, c);
}

/* A program that handles SIGTERM: its own exit status comes back, not the shell's. */
static void a_handled_sigterm_gives_the_programs_status(void **state)
{
    struct harness__client *c;
    uv_loop_t loop;

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(harness__client_start(&loop,
                                           "echo start; python3 -c 'import signal, sys, time; "
                                           "signal.signal(signal.SIGTERM, lambda *a: sys.exit(5)); "
                                           "print(\"up\", flush=True); time.sleep(30)'",
                                           &vars, &c),
                     0);
    for (uint64_t end = ms() + 5000; ms() < end; uv_sleep(10)) { /* until python is up */
        char *out;
        bool up;

        uv_run(&loop, UV_RUN_NOWAIT);
        out = harness__client_output(c);
        up = strstr(out, "up\n") != NULL;
        free(out);
        if (up)
            break;
    }
    harness__client_signal(c, SIGTERM);
    assert_true(run_until(&loop, c, harness__client_exited, 3000));
    assert_int_equal(harness__client_status(c), 5);
    finish(&loop, c);
}

/* Closing a client that still runs kills it (SIGKILL to the group). */
static void close_kills_a_running_client(void **state)
{
    struct harness__client *c;
    uv_loop_t loop;

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(harness__client_start(&loop, "trap '' TERM; sleep 30", &vars, &c), 0);
    uv_sleep(100);
    uv_run(&loop, UV_RUN_NOWAIT);
    harness__client_close(c);
    assert_true(run_until(&loop, c, harness__client_closed, 3000));
    harness__client_free(c);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(command_placeholders),
        cmocka_unit_test(exit_status_output_and_environment),
        cmocka_unit_test(output_keeps_the_newest_16_kib),
        cmocka_unit_test(signal_reaches_the_process_group),
        cmocka_unit_test(a_handled_sigterm_gives_the_programs_status),
        cmocka_unit_test(close_kills_a_running_client),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
