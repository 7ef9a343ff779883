/* Loop-test helpers shared by the test files that run a uv loop (most of them the in-process
 * mockgw): the fixture's loop with its watchdog and its teardown, run the loop until a
 * condition (bounded by the watchdog), run it for a while, start a mockgw with an optional
 * fault script, and a raw loopback client. Include after cmocka.h; the fixture struct must have
 * `uv_loop_t loop`, `uv_timer_t watchdog` and `bool hung` (set by the watchdog). */
#ifndef MGW_TEST_LOOP_UTIL_H
#define MGW_TEST_LOOP_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "mockgw.h"

static void loop_util_on_watchdog(uv_timer_t *t)
{
    *(bool *)t->data = true;
    uv_stop(t->loop);
}

/* Initialises fx->loop and starts fx->watchdog, an unref'd timer (it never keeps the loop
 * alive) that sets fx->hung and stops the loop if a test is still running after ms. */
#define loop_fixture_init(fx, ms) loop_init_watched(&(fx)->loop, &(fx)->watchdog, &(fx)->hung, (ms))

static inline void loop_init_watched(uv_loop_t *loop, uv_timer_t *watchdog, bool *hung, uint64_t ms)
{
    assert_int_equal(uv_loop_init(loop), 0);
    uv_timer_init(loop, watchdog);
    watchdog->data = hung;
    uv_timer_start(watchdog, loop_util_on_watchdog, ms, 0);
    uv_unref((uv_handle_t *)watchdog);
}

static void loop_util_close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes every handle still open (the watchdog too), runs the loop dry and closes it. */
static inline void loop_close_all(uv_loop_t *loop)
{
    uv_walk(loop, loop_util_close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0); /* a leaked handle fails the test */
}

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

/* A raw loopback client: it reads everything into in[] until EOF or a read error (eof, and
 * uv_now() then in eof_at_ms); closed counts its close callbacks. */
struct loop_client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uint8_t in[4096];
    size_t in_len;
    bool eof;
    uint64_t eof_at_ms;
    int closed;
};

static void loop_client_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct loop_client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void loop_client_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct loop_client *c = s->data;

    (void)buf;
    if (nread > 0) {
        c->in_len += (size_t)nread;
    } else if (nread < 0) {
        c->eof = true;
        c->eof_at_ms = uv_now(s->loop);
        uv_read_stop(s);
    }
}

static void loop_client_on_connect(uv_connect_t *req, int status)
{
    struct loop_client *c = req->data;

    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&c->tcp, loop_client_on_alloc, loop_client_on_read);
}

/* Connects c (zeroed first) to 127.0.0.1:port; it reads from the moment it is connected. */
static inline void loop_client_connect(uv_loop_t *loop, struct loop_client *c, int port)
{
    struct sockaddr_in addr;

    memset(c, 0, sizeof *c);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    uv_ip4_addr("127.0.0.1", port, &addr);
    assert_int_equal(uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr,
                                    loop_client_on_connect),
                     0);
}

static void loop_client_on_write(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

/* Writes a copy of bytes[0..len). */
static inline void loop_client_send(struct loop_client *c, const void *bytes, size_t len)
{
    uv_write_t *req = malloc(sizeof *req + len);
    uv_buf_t b;

    memcpy(req + 1, bytes, len);
    b = uv_buf_init((char *)(req + 1), (unsigned)len);
    assert_int_equal(uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, loop_client_on_write), 0);
}

static void loop_client_on_closed(uv_handle_t *h)
{
    ((struct loop_client *)h->data)->closed++;
}

/* Starts closing c: c->closed is 1 once the loop has run the close. */
static inline void loop_client_close(struct loop_client *c)
{
    uv_close((uv_handle_t *)&c->tcp, loop_client_on_closed);
}

#endif /* MGW_TEST_LOOP_UTIL_H */
