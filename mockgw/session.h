/* The IB session state machine of one client connection (private to libmockgw).
 *
 * I/O-free: the server feeds it the bytes a client sent and it answers through two callbacks,
 * send (queue bytes for the client) and close (end the connection). Everything it needs from
 * the server (configuration, fixtures, journal, clock, the client-id registry, one shared
 * encode buffer) lives in struct mgw_ctx, so tests drive a session without sockets.
 *
 * Phases: hello (waiting for "API\0" + version range) -> version_sent (waiting for START_API)
 * -> ready (answering requests) -> closed (the session asked to close, or was ended; input is
 * ignored from then on).
 */
#ifndef MGW_SESSION_H
#define MGW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fault.h"
#include "fixtures.h"
#include "ibwire.h"
#include "journal.h"
#include "mockgw.h"

struct mgw_session;

/* Client ids held by live sessions: open addressing, int -> session. */
struct mgw_idmap {
    struct mgw_idmap_slot {
        int key;
        bool used;
        struct mgw_session *value;
    } * slots;
    unsigned cap; /* power of two */
    unsigned n;
};

void mgw_idmap_free(struct mgw_idmap *m);
struct mgw_session *mgw_idmap_get(const struct mgw_idmap *m, int key);
/* 0, or -ENOMEM. Replaces an existing key. */
int mgw_idmap_put(struct mgw_idmap *m, int key, struct mgw_session *value);
void mgw_idmap_del(struct mgw_idmap *m, int key);

/* What all sessions of one server share. */
struct mgw_ctx {
    const struct mgw_config *cfg;
    const struct mgw_fixtures *fx;
    struct mgw_journal *journal;
    struct mgw_idmap client_ids;
    uint8_t *scratch; /* one encode buffer, big enough for the largest frame */
    size_t scratch_cap;
    uint64_t (*mono_ms)(void *clock); /* monotonic ms, for pacing */
    int64_t (*wall_ms)(void *clock);  /* Unix time in ms, for the times the gateway reports */
    void *clock;
    struct mgw_faults *faults; /* NULL = no fault engine */
    struct mgw_busy_id {       /* client ids held by nobody alive (busy_client_ids, stale) */
        int id;
        uint64_t until_ms; /* on mono_ms; UINT64_MAX = for good */
    } * busy;
    unsigned n_busy, cap_busy;
    uint64_t stale_client_id_ms; /* a ready session's id stays busy this long after it ends */
    struct {
        uint64_t refused_client_id; /* 326 sent */
        uint64_t bad_input;         /* sessions closed for malformed input */
        uint64_t paced;             /* reqCurrentTime left unanswered */
        uint64_t unknown_messages;  /* ignored message ids */
        uint64_t faults;            /* fault actions carried out */
    } counters;
};

/* Holds client id busy until until_ms (mono), replacing an earlier hold. 0 or -ENOMEM. */
int mgw_ctx_hold_client_id(struct mgw_ctx *ctx, int id, uint64_t until_ms);
void mgw_ctx_clear_busy(struct mgw_ctx *ctx);

/* Allocates the shared encode buffer. 0 or -ENOMEM. */
int mgw_ctx_init(struct mgw_ctx *ctx, const struct mgw_config *cfg, const struct mgw_fixtures *fx,
                 struct mgw_journal *journal);
void mgw_ctx_free(struct mgw_ctx *ctx);

enum mgw_phase {
    MGW_PHASE_HELLO,
    MGW_PHASE_VERSION_SENT,
    MGW_PHASE_READY,
    MGW_PHASE_CLOSED,
};

const char *mgw_phase_name(enum mgw_phase p);

enum mgw_close_how {
    MGW_CLOSE_FIN, /* send what is queued, then FIN */
    MGW_CLOSE_NOW, /* drop what is queued and close at once */
};

struct mgw_session_io {
    /* Queue len bytes for the client. The session never calls it after close. */
    void (*send)(void *io_data, const uint8_t *buf, size_t len);
    /* End the connection; called at most once per session. */
    void (*close)(void *io_data, enum mgw_close_how how);
    /* Carry out an action the session cannot: transport shaping (delay, slice, ...), close,
     * reset, listener actions, and any action with after_ms > 0 (the server schedules it and
     * later calls mgw_session_apply() with a copy whose after_ms is 0). */
    void (*fault)(void *io_data, const struct mgw_action *a, enum mgw_event_phase phase,
                  int req_id);
};

/* A small set of request ids (active streaming subscriptions). */
struct mgw_reqset {
    int *ids;
    unsigned n, cap;
};

struct mgw_session {
    struct mgw_ctx *ctx;
    const struct mgw_session_io *io;
    void *io_data;
    uint64_t id; /* connection id, 1, 2, ... */
    enum mgw_phase phase;
    enum mgw_phase last_phase; /* the phase the session was in when it closed */
    int version;               /* negotiated; 0 before the handshake */
    struct ibw_hello hello;
    int client_id; /* -1 until START_API */
    bool holds_id; /* registered in ctx->client_ids */
    int64_t next_order_id;
    uint64_t last_time_reply_ms;
    bool has_time_reply;
    int market_data_type; /* 1 live (default), 2 frozen, 3 delayed, 4 delayed-frozen */
    bool market_data_type_set;
    struct mgw_reqset mkt_subs;  /* streaming reqMktData ids */
    struct mgw_reqset hist_subs; /* keepUpToDate reqHistoricalData ids */
    uint8_t *in; /* bytes of an incomplete handshake/frame, carried to the next feed */
    size_t in_len, in_alloc;
    uint64_t bytes_in, bytes_out, frames_in, frames_out;
    const char *close_reason;         /* static string, set when the session closes itself */
    uint64_t accepted_ms;             /* mono_ms at accept, for match.after_ms */
    uint64_t requests;                /* requests after START_API, for match.nth */
    bool silent;                      /* a fault silenced it: input ignored, nothing sent */
    bool half_ready;                  /* a fault withholds nextValidId at START_API */
    const struct mgw_action *post[8]; /* errors to send after the current event's output */
    unsigned n_post;
};

void mgw_session_init(struct mgw_session *s, struct mgw_ctx *ctx, uint64_t id,
                      const struct mgw_session_io *io, void *io_data);

/* The accept event (phase accept): faults that act before any byte is read. */
void mgw_session_accept(struct mgw_session *s);

/* Processes bytes from the client: complete units are handled at once, a partial one is kept
 * (bounded by cfg->max_in_frame) until more bytes come. May call io->send and io->close. */
void mgw_session_feed(struct mgw_session *s, const uint8_t *data, size_t len);

/* Asks for the connection to close (from the server side, e.g. a hello timeout), journaled
 * with reason. No-op once closed. */
void mgw_session_close(struct mgw_session *s, enum mgw_close_how how, const char *reason);

/* Carries out action a now (a->after_ms is ignored: the caller waited). phase is the event
 * it belongs to; req_id the request's id at phase request (or -1). Returns true when the
 * event's normal processing must stop (silent, ignore, error at phase request, close...). */
bool mgw_session_apply(struct mgw_session *s, const struct mgw_action *a,
                       enum mgw_event_phase phase, int req_id);

/* The connection is gone: releases the client id and buffers. The session is not used again.
 * Does not journal (the server journals the disconnect with its cause). */
void mgw_session_end(struct mgw_session *s);

#endif /* MGW_SESSION_H */
