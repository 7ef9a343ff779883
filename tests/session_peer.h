/* The fake peer of a session driven without sockets, shared by the session and proxy tests: it
 * keeps what the session sends to the client (and, in proxy mode, to the upstream), counts the
 * closes and the transport actions handed to the server. The env is a context on the default
 * fixtures with fake clocks (teardown frees it, and its fault engine if the test file gave it
 * one). Also: frame() and the golden handshake bytes. Include after cmocka.h, fixtures.h,
 * ibwire.h and session.h. */
#ifndef MGW_TEST_SESSION_PEER_H
#define MGW_TEST_SESSION_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 2024-01-15 15:15:30 UTC = 10:15:30 EST, the golden transcript's clock (IB_WIRE §7). */
#define GOLDEN_WALL_MS 1705331730000LL

struct peer {
    uint8_t out[1 << 16]; /* to the client */
    size_t out_len;
    uint8_t up[1 << 14]; /* to the upstream (proxy mode: peer_upstream) */
    size_t up_len;
    int closes;
    enum mgw_close_how how;
    int faults; /* transport actions handed to the server */
    enum mgw_action_type last_fault;
    struct mgw_session *end_on_send; /* ends this session from inside the next send */
};

struct env {
    struct mgw_config cfg;
    struct mgw_fixtures *fx;
    struct mgw_ctx ctx;
    uint64_t mono;
    int64_t wall;
};

static inline uint64_t fake_mono(void *clock)
{
    return ((struct env *)clock)->mono;
}

static inline int64_t fake_wall(void *clock)
{
    return ((struct env *)clock)->wall;
}

static inline void peer_send(void *data, const uint8_t *buf, size_t len)
{
    struct peer *p = data;

    assert_int_equal(p->closes, 0); /* nothing is ever sent after close */
    assert_true(p->out_len + len <= sizeof p->out);
    memcpy(p->out + p->out_len, buf, len);
    p->out_len += len;
    if (p->end_on_send) { /* the server closing a connection whose write failed */
        struct mgw_session *s = p->end_on_send;

        p->end_on_send = NULL;
        mgw_session_end(s);
    }
}

/* Proxy mode: what the session sends to the upstream. */
static inline void peer_upstream(void *data, const uint8_t *buf, size_t len)
{
    struct peer *p = data;

    assert_int_equal(p->closes, 0);
    assert_true(p->up_len + len <= sizeof p->up);
    memcpy(p->up + p->up_len, buf, len);
    p->up_len += len;
}

static inline void peer_close(void *data, enum mgw_close_how how)
{
    struct peer *p = data;

    p->closes++;
    p->how = how;
}

static inline void peer_fault(void *data, const struct mgw_action *a, enum mgw_event_phase phase,
                              int req_id)
{
    struct peer *p = data;

    (void)phase;
    (void)req_id;
    p->faults++;
    p->last_fault = a->type;
}

static const struct mgw_session_io peer_io = { peer_send, peer_close, peer_fault };

/* A context on the default fixtures; its clocks read e->mono (from 1000) and e->wall (the
 * golden transcript's clock). */
static inline struct env *env_new(void)
{
    struct env *e = calloc(1, sizeof *e);
    struct mgw_err err;

    mgw_config_init(&e->cfg);
    e->fx = mgw_fixtures_default(&err);
    assert_non_null(e->fx);
    assert_int_equal(mgw_ctx_init(&e->ctx, &e->cfg, e->fx, NULL), 0);
    e->ctx.mono_ms = fake_mono;
    e->ctx.wall_ms = fake_wall;
    e->ctx.clock = e;
    e->mono = 1000;
    e->wall = GOLDEN_WALL_MS;
    return e;
}

static inline int teardown(void **state)
{
    struct env *e = *state;

    mgw_faults_free(e->ctx.faults); /* NULL unless the test file armed a fault engine */
    mgw_ctx_free(&e->ctx);
    mgw_fixtures_free(e->fx);
    free(e);
    return 0;
}

/* Builds one frame from NUL-separated fields ("49\0" "1\0") of length n. */
static inline size_t frame(uint8_t *out, const char *payload, size_t n)
{
    out[0] = (uint8_t)(n >> 24);
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    memcpy(out + 4, payload, n);
    return n + 4;
}

/* Feeds the session one frame of the fields in lit, a string literal; feed is
 * mgw_session_feed (from the client) or mgw_session_feed_upstream (proxy mode). */
#define FEED_FRAME_WITH(feed, s, lit)                  \
    do {                                               \
        uint8_t buf_[512];                             \
        size_t n_ = frame(buf_, lit, sizeof(lit) - 1); \
        feed((s), buf_, n_);                           \
    } while (0)

#define FEED_FRAME(s, lit) FEED_FRAME_WITH(mgw_session_feed, s, lit)

/* The golden handshake: hello, START_API for client id 1, the version reply and the burst
 * (a string literal's NUL is the last byte of the last frame), and the refusal of a client id
 * in use. */
static const uint8_t HELLO[] = { 0x41, 0x50, 0x49, 0x00, 0x00, 0x00, 0x00, 0x09, 0x76,
                                 0x31, 0x35, 0x37, 0x2e, 0x2e, 0x31, 0x37, 0x38 };
static const uint8_t START_API_1[] = { 0x00, 0x00, 0x00, 0x08, 0x37, 0x31,
                                       0x00, 0x32, 0x00, 0x31, 0x00, 0x00 };
static const uint8_t VERSION_REPLY[] = "\x00\x00\x00\x1a"
                                       "178\0"
                                       "20240115 10:15:30 EST";
static const uint8_t BURST[] = "\x00\x00\x00\x0f"
                               "15\0001\0DU1234567\0"
                               "\x00\x00\x00\x06"
                               "9\0001\0001\0"
                               "\x00\x00\x00\x36"
                               "4\0002\0-1\0002104\0Market data farm connection is OK:usfarm\0\0"
                               "\x00\x00\x00\x34"
                               "4\0002\0-1\0002106\0HMDS data farm connection is OK:ushmds\0\0"
                               "\x00\x00\x00\x39"
                               "4\0002\0-1\0002158\0Sec-def data farm connection is OK:secdefnj\0";
static const uint8_t REFUSED_326[] =
    "\x00\x00\x00\x61"
    "4\0002\0-1\000326\0Unable to connect as the client id is already in use. Retry with a "
    "unique client id.\0";

#endif /* MGW_TEST_SESSION_PEER_H */
