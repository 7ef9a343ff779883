/* Fuzz target: the session state machine (mockgw's whole protocol side, I/O-free) fed
 * arbitrary bytes in arbitrary pieces, optionally after a valid handshake and START_API so the
 * fuzzer spends its time on requests, optionally with a fault engine whose rules act at every
 * phase. Invariants: nothing is sent after close, close happens at most once, and everything
 * sent is a sequence of complete, well-formed frames (the version reply is one too).
 *
 * Input: byte 0 = mode (bits 0-1: 0 raw, 1 after the hello, 2-3 after hello + START_API;
 * bit 2: fault engine on; bits 3-7: the size of the pieces), then the bytes fed. */
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
    uint8_t out[1 << 20];
    size_t out_len;
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

static void peer_send(void *data, const uint8_t *buf, size_t len)
{
    struct peer *p = data;

    CHECK(p->closes == 0); /* nothing is ever sent after close */
    if (p->out_len + len > sizeof p->out) {
        p->overflow = true;
        return;
    }
    memcpy(p->out + p->out_len, buf, len);
    p->out_len += len;
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

/* Rules acting in the session itself (not transport): errors with follow-ups, silence, half
 * ready, 326, state switches; some only with a probability, so the draws are fuzzed too. */
static const char *const rules[] = {
    "{\"match\":{\"phase\":\"request\",\"msg\":\"reqCurrentTime\",\"nth\":2},"
    "\"action\":{\"type\":\"error\",\"code\":162}}",
    "{\"match\":{\"phase\":\"request\",\"msg\":\"reqIds\",\"probability\":0.5},"
    "\"action\":{\"type\":\"error\",\"code\":1100,\"then\":[{\"after_ms\":0,\"code\":1102}],"
    "\"set_state\":\"flapped\"}}",
    "{\"match\":{\"phase\":\"start_api\",\"client_id\":7},\"action\":{\"type\":\"refuse_client_"
    "id\"}}",
    "{\"match\":{\"phase\":\"start_api\",\"client_id\":8},\"action\":{\"type\":\"half_ready\"}}",
    "{\"match\":{\"phase\":\"request\",\"state\":\"flapped\",\"nth\":5},"
    "\"action\":{\"type\":\"silent\"}}",
    "{\"match\":{\"phase\":\"request\",\"msg\":\"reqPositions\"},\"action\":{\"type\":\"ignore\"}}",
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

        if (r == NULL) { /* a rule this build does not know: the others still run */
            fprintf(stderr, "fuzz_session: rule %zu skipped: %s\n", i, j ? err.msg : "bad JSON");
        } else {
            CHECK(mgw_faults_add(faults, r) >= 0);
        }
        cJSON_Delete(j);
    }
    return 0;
}

/* The output must be whole frames. */
static void check_frames(const struct peer *p)
{
    size_t off = 0;

    if (p->overflow)
        return;
    while (off < p->out_len) {
        struct ibw_frame f;
        ssize_t n = ibw_frame_parse(p->out + off, p->out_len - off, IBW_MAX_FRAME, &f);

        CHECK(n > 0);
        off += (size_t)n;
    }
}

static const uint8_t hello[] = { 'A', 'P', 'I', 0,   0,   0,   0,   9,  'v',
                                 '1', '0', '0', '.', '.', '1', '7', '8' };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct peer peer;
    struct mgw_session s;
    uint8_t mode, start_api[32];
    size_t piece, off = 1;
    int n;

    if (size < 1)
        return 0;
    mode = data[0];
    piece = 1 + (mode >> 3) * 8;
    peer.out_len = 0;
    peer.overflow = false;
    peer.closes = 0;
    ctx.faults = (mode & 4) ? faults : NULL;
    mgw_session_init(&s, &ctx, ++next_id, &peer_io, &peer);
    mgw_session_accept(&s);
    if ((mode & 3) >= 1)
        mgw_session_feed(&s, hello, sizeof hello);
    if ((mode & 3) >= 2) {
        /* START_API with a client id from the input's length: ids 7-9 meet the rules above */
        n = snprintf((char *)start_api + 4, sizeof start_api - 4, "71%c2%c%d%c%c", 0, 0,
                     (int)(size % 12), 0, 0);
        start_api[0] = start_api[1] = start_api[2] = 0;
        start_api[3] = (uint8_t)n;
        mgw_session_feed(&s, start_api, 4 + (size_t)n);
    }
    while (off < size) {
        size_t len = size - off < piece ? size - off : piece;

        mono += 250; /* time moves between pieces: pacing and after_ms matches see it */
        mgw_session_feed(&s, data + off, len);
        off += len;
    }
    check_frames(&peer);
    mgw_session_end(&s);
    mgw_ctx_clear_busy(&ctx);
    return 0;
}
