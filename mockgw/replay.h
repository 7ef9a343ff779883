/* Replay (private to libmockgw; docs/record-replay.md): the answers a --record file holds,
 * served to matching requests in place of the fake's own.
 *
 * A recorded request is a client frame after START_API; its answers are the gateway frames that
 * carry its request id (at the place IB's layout puts one: ibw_in_req_id_index) or, for frames
 * without one, that followed it on its connection before the next request. A live request
 * matches a recorded one with the same message id and the same fields, except the request id
 * (ibw_out_req_id_index), whose live value replaces the recorded one in the answers. The k-th
 * live request of one kind gets the k-th recorded one's answers; past the last, the last again.
 *
 * No I/O after loading, no libuv. The loader owns everything it returns.
 */
#ifndef MGW_REPLAY_H
#define MGW_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibwire.h"
#include "mockgw.h"

struct mgw_replay;

/* Loads a --record file. NULL on error with err->msg "<path>: line N: $.key: <reason>". */
struct mgw_replay *mgw_replay_load(const char *path, struct mgw_err *err);
/* The same from memory; name stands in for the path in messages. */
struct mgw_replay *mgw_replay_parse(const char *text, size_t len, const char *name,
                                    struct mgw_err *err);
/* NULL is a no-op. */
void mgw_replay_free(struct mgw_replay *r);

/* Back to the first recorded answer of every request (POST /v1/reset). NULL is a no-op. */
void mgw_replay_rewind(struct mgw_replay *r);
/* Recorded requests. */
unsigned mgw_replay_count(const struct mgw_replay *r);

/* The recorded answers to request payload[0..len) (one frame's payload, at server version sv),
 * appended to w as frames, the live request id in place of the recorded one. Returns the number
 * of frames (0: the recorded request got no answer), -ENOENT when nothing recorded matches, or
 * the writer's error (w->err). */
int mgw_replay_answer(struct mgw_replay *r, int sv, const uint8_t *payload, size_t len,
                      struct ibw_writer *w);

#endif /* MGW_REPLAY_H */
