/* Fuzz target: the session state machine (mockgw's whole protocol side, I/O-free) fed
 * arbitrary bytes in arbitrary pieces, optionally after a valid handshake and START_API so the
 * fuzzer spends its time on requests, optionally with a fault engine whose rules act at every
 * phase. Invariants: nothing is sent after close, close happens at most once, and everything
 * sent is a sequence of complete, well-formed frames (the version reply is one too).
 *
 * Input: byte 0 = mode (bits 0-1: 0 raw, 1 after the hello, 2-3 after hello + START_API;
 * bit 2: fault engine on; bits 3-7: the size of the pieces), then the bytes fed. */
#include <stdio.h>

#include "fault.h"
#include "fixtures.h"
#include "fuzz.h"
#include "ibwire.h"
#include "mockgw.h"
#include "session.h"

#include "peer.h"

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
    (void)argc;
    (void)argv;
    peer_ctx_init("fuzz_session", rules, sizeof rules / sizeof rules[0]);
    /* A day of 1-minute bars still comes whole; more is the 162 path. Without a cap, inputs
     * asking for months of bars (up to 100000, ~0.7 s each under ASan) crowded everything else
     * out: the same encoder, one bar after another. */
    ctx.max_hist_bars = 2000;
    return 0;
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
    peer_reset(&peer);
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
    if (!peer.overflow) /* the output must be whole frames */
        check_frames(peer.out, peer.out_len, 0);
    mgw_session_end(&s);
    mgw_ctx_clear_busy(&ctx);
    return 0;
}
