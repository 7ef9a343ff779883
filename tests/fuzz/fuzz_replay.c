/* Fuzz target: the --replay loader (record JSON lines -> requests and answers) and the answer
 * lookup. Invariants: a rejected file always says why, naming the input; an accepted one
 * answers any request with -ENOENT, or whole frames (or the writer's error when they do not
 * fit); rewinding and freeing are clean. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "ibwire.h"
#include "mockgw.h"
#include "replay.h"

static void ask(struct mgw_replay *r, const uint8_t *payload, size_t len)
{
    static uint8_t buf[1 << 16];
    struct ibw_writer w;
    size_t off = 0;
    int n;

    ibw_writer_init(&w, buf, sizeof buf);
    n = mgw_replay_answer(r, 178, payload, len, &w);
    CHECK(n == -ENOENT || n >= 0 || n == w.err);
    while (off < w.len) {
        struct ibw_frame f;
        ssize_t k = ibw_frame_parse(buf + off, w.len - off, IBW_MAX_FRAME, &f);

        CHECK(k > 0);
        off += (size_t)k;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const requests[] = { "49\0"
                                            "1\0",
                                            "20\0"
                                            "7\0"
                                            "0\0"
                                            "AAPL\0",
                                            "8\0"
                                            "1\0"
                                            "1\0" };
    static const size_t lens[] = { 5, 14, 6 };
    struct mgw_replay *r;
    struct mgw_err err;

    memset(&err, 0, sizeof err);
    r = mgw_replay_parse((const char *)data, size, "fuzz.jsonl", &err);
    if (r == NULL) {
        CHECK(strncmp(err.msg, "fuzz.jsonl", 10) == 0);
        return 0;
    }
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
            ask(r, (const uint8_t *)requests[i], lens[i]);
        ask(r, data, size); /* the input itself as a request payload */
        mgw_replay_rewind(r);
    }
    mgw_replay_free(r);
    return 0;
}
