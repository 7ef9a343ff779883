/* What the session fuzz targets (fuzz_session, fuzz_proxy) share: the fake peer, which keeps
 * what a session sends to the client and, in proxy mode, to the upstream (1 MiB each; past that
 * it sets overflow and the output is no longer checked), CHECKs that nothing is sent after
 * close and that close happens at most once, and leaves transport actions to the server (not
 * modelled); one context on the default fixtures with a fake clock that the target moves
 * (mono); a fault engine with the target's rules; and the whole-frames check of an output.
 * Include after fuzz.h, fixtures.h, ibwire.h and session.h. */
#ifndef MGW_FUZZ_PEER_H
#define MGW_FUZZ_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

struct peer {
    uint8_t out[1 << 20], up[1 << 20];
    size_t out_len, up_len;
    bool overflow;
    int closes;
};

static struct mgw_config cfg;
static struct mgw_fixtures *fixtures;
static struct mgw_ctx ctx;
static struct mgw_faults *faults;
static uint64_t mono = 1000;
static uint64_t next_id;

static inline uint64_t fake_mono(void *clock)
{
    (void)clock;
    return mono;
}

static inline int64_t fake_wall(void *clock)
{
    (void)clock;
    return 1764000000000LL + (int64_t)mono;
}

static inline void peer_reset(struct peer *p)
{
    p->out_len = p->up_len = 0;
    p->overflow = false;
    p->closes = 0;
}

static inline void peer_append(struct peer *p, uint8_t *dst, size_t *len, const uint8_t *buf,
                               size_t n)
{
    CHECK(p->closes == 0); /* nothing is ever sent after close */
    if (*len + n > sizeof p->out) {
        p->overflow = true;
        return;
    }
    memcpy(dst + *len, buf, n);
    *len += n;
}

static inline void peer_send(void *data, const uint8_t *buf, size_t len)
{
    struct peer *p = data;

    peer_append(p, p->out, &p->out_len, buf, len);
}

/* Proxy mode: what the session sends to the upstream. */
static inline void peer_upstream(void *data, const uint8_t *buf, size_t len)
{
    struct peer *p = data;

    peer_append(p, p->up, &p->up_len, buf, len);
}

static inline void peer_close(void *data, enum mgw_close_how how)
{
    struct peer *p = data;

    (void)how;
    p->closes++;
    CHECK(p->closes == 1);
}

static inline void peer_fault(void *data, const struct mgw_action *a, enum mgw_event_phase phase,
                              int req_id)
{
    (void)data;
    (void)a;
    (void)phase;
    (void)req_id; /* transport actions are the server's: not modelled here */
}

static const struct mgw_session_io peer_io = { peer_send, peer_close, peer_fault };

/* Sets up ctx (fake clocks, TZ=EST5) and faults, with each of the n rules (JSON) this build
 * knows; one it does not know is skipped with a line on stderr naming the target. */
static inline void peer_ctx_init(const char *target, const char *const *rules, size_t n)
{
    struct mgw_err err;

    setenv("TZ", "EST5", 1);
    mgw_config_init(&cfg);
    fixtures = mgw_fixtures_default(&err);
    CHECK(fixtures != NULL);
    CHECK(mgw_ctx_init(&ctx, &cfg, fixtures, NULL) == 0);
    ctx.mono_ms = fake_mono;
    ctx.wall_ms = fake_wall;
    faults = mgw_faults_new(42);
    CHECK(faults != NULL);
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_Parse(rules[i]);
        struct mgw_rule *r = j ? mgw_rule_parse(j, "fuzz", "$", &err) : NULL;

        if (r == NULL) /* a rule this build does not know: the others still run */
            fprintf(stderr, "%s: rule %zu skipped: %s\n", target, i, j ? err.msg : "bad JSON");
        else
            CHECK(mgw_faults_add(faults, r) >= 0);
        cJSON_Delete(j);
    }
}

/* buf[skip..len) must be whole frames. */
static inline void check_frames(const uint8_t *buf, size_t len, size_t skip)
{
    size_t off = skip;

    while (off < len) {
        struct ibw_frame f;
        ssize_t n = ibw_frame_parse(buf + off, len - off, IBW_MAX_FRAME, &f);

        CHECK(n > 0);
        off += (size_t)n;
    }
}

#endif /* MGW_FUZZ_PEER_H */
