/* Fuzz target: the session in proxy mode (proxy.c), fed two arbitrary byte streams, the
 * client's and the upstream's, interleaved in arbitrary pieces, optionally after a valid
 * handshake on both legs, optionally with a fault engine whose rules act at every phase.
 * Invariants: nothing is sent either way after close, close happens at most once, everything
 * sent to the client is a sequence of complete frames, and everything sent upstream is the
 * client's handshake (as parsed) followed by complete frames.
 *
 * Input: byte 0 = mode (bit 0: start with a valid hello + version reply + START_API + burst;
 * bit 1: fault engine on), then chunks: a header byte (bit 7: 1 = from the upstream, 0 = from
 * the client; bits 0-6: length) and that many bytes. */
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fault.h"
#include "fixtures.h"
#include "fuzz.h"
#include "ibwire.h"
#include "mockgw.h"
#include "session.h"

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

static uint64_t fake_mono(void *clock)
{
    (void)clock;
    return mono;
}

static int64_t fake_wall(void *clock)
{
    (void)clock;
    return 1764000000000LL + (int64_t)mono;
}

static void append(struct peer *p, uint8_t *dst, size_t *len, const uint8_t *buf, size_t n)
{
    CHECK(p->closes == 0); /* nothing is ever sent after close */
    if (*len + n > sizeof p->out) {
        p->overflow = true;
        return;
    }
    memcpy(dst + *len, buf, n);
    *len += n;
}

static void peer_send(void *data, const uint8_t *buf, size_t len)
{
    struct peer *p = data;

    append(p, p->out, &p->out_len, buf, len);
}

static void peer_upstream(void *data, const uint8_t *buf, size_t len)
{
    struct peer *p = data;

    append(p, p->up, &p->up_len, buf, len);
}

static void peer_close(void *data, enum mgw_close_how how)
{
    struct peer *p = data;

    (void)how;
    p->closes++;
    CHECK(p->closes == 1);
}

static void peer_fault(void *data, const struct mgw_action *a, enum mgw_event_phase phase,
                       int req_id)
{
    (void)data;
    (void)a;
    (void)phase;
    (void)req_id; /* transport actions are the server's: not modelled here */
}

static const struct mgw_session_io peer_io = { peer_send, peer_close, peer_fault };

/* Rules acting in the session itself, at every phase the proxy has. */
static const char *const rules[] = {
    "{\"match\":{\"phase\":\"hello\",\"conn\":[3,3]},\"action\":{\"type\":\"error\",\"code\":1100,"
    "\"then\":[{\"after_ms\":0,\"code\":1102}]}}",
    "{\"match\":{\"phase\":\"start_api\",\"client_id\":7},\"action\":{\"type\":\"refuse_client_"
    "id\"}}",
    "{\"match\":{\"phase\":\"start_api\",\"client_id\":8},\"action\":{\"type\":\"half_ready\"}}",
    "{\"match\":{\"phase\":\"start_api\",\"client_id\":9},\"action\":{\"type\":\"error\","
    "\"code\":2110}}",
    "{\"match\":{\"phase\":\"ready\",\"probability\":0.3},\"action\":{\"type\":\"error\","
    "\"code\":1100}}",
    "{\"match\":{\"phase\":\"request\",\"msg\":\"reqIds\",\"probability\":0.5},"
    "\"action\":{\"type\":\"error\",\"code\":162}}",
    "{\"match\":{\"phase\":\"request\",\"nth\":4},\"action\":{\"type\":\"ignore\"}}",
    "{\"match\":{\"phase\":\"request\",\"nth\":6},\"action\":{\"type\":\"silent\"}}",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct mgw_err err;

    (void)argc;
    (void)argv;
    setenv("TZ", "EST5", 1);
    mgw_config_init(&cfg);
    fixtures = mgw_fixtures_default(&err);
    CHECK(fixtures != NULL);
    CHECK(mgw_ctx_init(&ctx, &cfg, fixtures, NULL) == 0);
    ctx.mono_ms = fake_mono;
    ctx.wall_ms = fake_wall;
    faults = mgw_faults_new(42);
    CHECK(faults != NULL);
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        cJSON *j = cJSON_Parse(rules[i]);
        struct mgw_rule *r = j ? mgw_rule_parse(j, "fuzz", "$", &err) : NULL;

        if (r == NULL)
            fprintf(stderr, "fuzz_proxy: rule %zu skipped: %s\n", i, j ? err.msg : "bad JSON");
        else
            CHECK(mgw_faults_add(faults, r) >= 0);
        cJSON_Delete(j);
    }
    return 0;
}

/* buf[0..len) must be whole frames (after a handshake of hello_len bytes). */
static void check_frames(const uint8_t *buf, size_t len, size_t skip)
{
    size_t off = skip;

    while (off < len) {
        struct ibw_frame f;
        ssize_t n = ibw_frame_parse(buf + off, len - off, IBW_MAX_FRAME, &f);

        CHECK(n > 0);
        off += (size_t)n;
    }
}

static const uint8_t hello[] = "API\0\0\0\0\x09v100..178";
static const uint8_t version_reply[] = "\0\0\0\x1a"
                                       "178\0"
                                       "20240115 10:15:30 EST";
static const uint8_t start_api[] = "\0\0\0\x08"
                                   "71\0"
                                   "2\0"
                                   "8\0"
                                   "\0";
static const uint8_t burst[] = "\0\0\0\x0f"
                               "15\0"
                               "1\0"
                               "DU1234567\0"
                               "\0\0\0\x06"
                               "9\0"
                               "1\0"
                               "1";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct peer peer;
    struct mgw_session s;
    size_t off = 1, up_skip = 0;
    uint8_t mode;

    if (size < 1)
        return 0;
    mode = data[0];
    peer.out_len = peer.up_len = 0;
    peer.overflow = false;
    peer.closes = 0;
    ctx.faults = (mode & 2) ? faults : NULL;
    mgw_session_init(&s, &ctx, ++next_id, &peer_io, &peer);
    CHECK(mgw_session_proxy(&s, peer_upstream) == 0);
    mgw_session_accept(&s);
    if (mode & 1) {
        mgw_session_feed(&s, hello, sizeof hello - 1);
        mgw_session_feed_upstream(&s, version_reply, sizeof version_reply);
        mgw_session_feed(&s, start_api, sizeof start_api - 1);
        mgw_session_feed_upstream(&s, burst, sizeof burst);
    }
    while (off < size) {
        bool from_up = data[off] & 0x80;
        size_t len = data[off] & 0x7f;

        off++;
        if (len > size - off)
            len = size - off;
        mono += 100;
        if (from_up)
            mgw_session_feed_upstream(&s, data + off, len);
        else
            mgw_session_feed(&s, data + off, len);
        off += len;
    }
    if (!peer.overflow) {
        check_frames(peer.out, peer.out_len, 0);
        /* Upstream: the handshake first (whatever version range it had), then frames. */
        if (peer.up_len >= 8 && memcmp(peer.up, "API", 4) == 0)
            up_skip = 8 + ((size_t)peer.up[6] << 8 | peer.up[7]);
        CHECK(peer.up_len == 0 || up_skip > 0);
        check_frames(peer.up, peer.up_len, up_skip);
    }
    mgw_session_end(&s);
    return 0;
}
