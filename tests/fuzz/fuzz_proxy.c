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

#include "fault.h"
#include "fixtures.h"
#include "fuzz.h"
#include "ibwire.h"
#include "mockgw.h"
#include "session.h"

#include "peer.h"

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
    (void)argc;
    (void)argv;
    peer_ctx_init("fuzz_proxy", rules, sizeof rules / sizeof rules[0]);
    return 0;
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
    peer_reset(&peer);
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
