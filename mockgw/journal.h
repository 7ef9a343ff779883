/* Journal (private to libmockgw): what happened on every connection, as JSON lines.
 *
 * Two sinks: the --log file ("-" = stdout) and an in-memory ring of the latest entries, which
 * the admin API serves; both receive every entry, events and frames in and out alike. Entries
 * are numbered by one sequence counter shared by both sinks.
 *
 * Writing to the file is buffered and flushed once per loop iteration (uv_prepare, before polling)
 * and on close, so a reader of the log sees an entry at most one loop turn after it happened, and
 * nothing reaches the file before the loop first runs.
 */
#ifndef MGW_JOURNAL_H
#define MGW_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "ibwire.h"
#include "mockgw.h"

struct mgw_journal;

/* The ring keeps at most ring_cap lines and at most this many bytes of them (16 MiB): the
 * oldest go first; the newest line always stays, whatever its size. */
#define MGW_JOURNAL_RING_MAX_BYTES (16u << 20)

/* Opens the log (path NULL = none, "-" = stdout) and a ring of ring_cap events.
 * NULL on error, err->msg = "--log /x/y: No such file or directory". */
struct mgw_journal *mgw_journal_new(uv_loop_t *loop, const char *path, unsigned ring_cap,
                                    struct mgw_err *err);

/* Flushes and closes the file, stops the flush handle; frees j in its close callback.
 * NULL is a no-op. */
void mgw_journal_free(struct mgw_journal *j);

/* True when frames are kept anywhere (callers skip formatting them otherwise). */
bool mgw_journal_logs_frames(const struct mgw_journal *j);

/* A connection event: {"seq":N,"t":"<UTC ISO-8601 ms>","conn":C,"client_id":I|null,
 * "event":"<event>", ...detail}. detail is a string of extra JSON members without braces
 * ("\"peer\":\"127.0.0.1:5000\"") or NULL. client_id < 0 is written as null. */
void mgw_journal_event(struct mgw_journal *j, uint64_t conn, int client_id, const char *event,
                       const char *detail);

/* printf-style convenience for the detail members. */
void mgw_journal_eventf(struct mgw_journal *j, uint64_t conn, int client_id, const char *event,
                        const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));

/* A frame: {"seq":N,"t":...,"conn":C,"client_id":I|null,"dir":"in"|"out","msg_id":ID,
 * "msg":"<name>","fields":["...",...]}. payload is one frame's payload (no length prefix). For
 * the handshake pass dir "in" and the raw version string with hello = true. */
void mgw_journal_frame(struct mgw_journal *j, uint64_t conn, int client_id, bool out,
                       const uint8_t *payload, size_t len);

/* The same with a "leg" member after client_id ("client" or "upstream" in proxy mode; NULL =
 * no leg key, as in fake mode). */
void mgw_journal_frame_leg(struct mgw_journal *j, uint64_t conn, int client_id, bool out,
                           const char *leg, const uint8_t *payload, size_t len);

/* --record: the decoded conversation of every connection as JSON lines (docs/record-replay.md),
 * flushed like the log. Opens (truncates) path; 0, or a negative errno with err->msg
 * "--record <path>: <reason>". Closed by mgw_journal_free(). */
int mgw_journal_record_open(struct mgw_journal *j, const char *path, struct mgw_err *err);
/* True when a record file is open (callers skip the work otherwise). */
bool mgw_journal_records(const struct mgw_journal *j);

enum mgw_record_kind {
    MGW_REC_FRAME,   /* a frame: "msg" and "name" from its first field */
    MGW_REC_HELLO,   /* the client's handshake: payload = the version string, h its parse */
    MGW_REC_VERSION, /* the gateway's version reply */
};

/* One line {"t_ms":T,"conn":C,"dir":"in"|"out","msg":ID|null,"name":...,"fields":[...]}
 * (plus "min", "max", "options" for the handshake). t_ms counts from the accept; out = gateway
 * to client. h only for MGW_REC_HELLO. */
void mgw_journal_record(struct mgw_journal *j, uint64_t conn, uint64_t t_ms, bool out,
                        enum mgw_record_kind kind, const struct ibw_hello *h,
                        const uint8_t *payload, size_t len);

enum mgw_journal_kind { MGW_JOURNAL_ALL, MGW_JOURNAL_EVENTS, MGW_JOURNAL_FRAMES };

/* The ring's entries of that kind with seq > since, as a JSON array string (malloc'd), oldest
 * first; NULL when out of memory. */
char *mgw_journal_ring_json(const struct mgw_journal *j, uint64_t since,
                            enum mgw_journal_kind kind);

/* Empties the ring (POST /v1/reset). The sequence goes on, so "since" readers stay correct. */
void mgw_journal_clear(struct mgw_journal *j);

/* The last sequence number handed out (0 before the first entry). */
uint64_t mgw_journal_seq(const struct mgw_journal *j);

/* The bytes the ring's lines hold now (their NULs included), and a lower cap (tests). */
size_t mgw_journal_ring_bytes(const struct mgw_journal *j);
void mgw_journal_set_ring_max_bytes(struct mgw_journal *j, size_t max);

#endif /* MGW_JOURNAL_H */
