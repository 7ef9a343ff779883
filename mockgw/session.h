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
#include "replay.h"

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
    struct mgw_replay *replay; /* --replay: recorded answers first; NULL = none */
    struct mgw_busy_id {       /* client ids held by nobody alive (busy_client_ids, stale) */
        int id;
        uint64_t until_ms; /* on mono_ms; UINT64_MAX = for good */
    } * busy;
    unsigned n_busy, cap_busy;
    uint64_t stale_client_id_ms; /* a ready session's id stays busy this long after it ends */
    unsigned frames_per_turn;    /* requests one feed (or continue) handles before it yields,
                                  * so one pipelining client cannot stall the others: 32
                                  * (0 = no limit) */
    size_t bytes_per_turn;       /* ... or once its answers reach this many bytes: 64 KiB (a
                                  * day of 1-minute bars is 25 KB; 0 = no limit) */
    unsigned max_hist_bars;      /* the most bars one reqHistoricalData gets; more is error 162
                                  * "too many bars": 100000 */
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

/* Proxy mode (proxy.c): what the session knows about the upstream leg. The session forwards
 * the client's handshake, START_API and requests upstream and the upstream's version reply and
 * frames to the client, and asks the fault engine at the same events as in fake mode. Client
 * input waits (carried in s->in) while the upstream has not answered the handshake yet, and
 * again between START_API and ready, so the events keep the fake's order. */
#define MGW_PROXY_DEFERRED 8

typedef void (*mgw_upstream_send_fn)(void *io_data, const uint8_t *buf, size_t len);

struct mgw_proxy {
    /* Queues len bytes for the upstream gateway; never called after close or once silenced. */
    mgw_upstream_send_fn send;
    uint8_t *in; /* upstream bytes of an incomplete frame */
    size_t in_len, in_alloc;
    bool hello_seen;     /* the client's handshake was parsed */
    bool version_known;  /* the upstream's version reply went to the client */
    bool start_api_sent; /* START_API went upstream */
    bool got_accounts, got_next_id;
    bool ready; /* managedAccounts and nextValidId passed (or were dropped): phase ready */
    uint64_t bytes_up_in, bytes_up_out, frames_up_in, frames_up_out;
    /* Frames passed through as they are, not yet handed over: consecutive frames of one read
     * go out in one write. Views into the buffer being processed, flushed before it changes
     * and before anything else is sent the same way (mgw__proxy_flush). */
    const uint8_t *up_run, *cl_run; /* to the upstream, to the client */
    size_t up_run_len, cl_run_len;
    /* Error actions of the hello and start_api events, deep copies: they go out after the
     * upstream's answer to that event (version reply, start-up burst), as in fake mode. */
    struct mgw_action deferred[MGW_PROXY_DEFERRED];
    enum mgw_event_phase deferred_phase[MGW_PROXY_DEFERRED];
    unsigned n_deferred;
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
    struct mgw_proxy *px; /* proxy mode; NULL for the fake gateway */
    unsigned busy;        /* feeds in progress (mgw__session_enter/leave) */
    unsigned turn_frames; /* requests handled in this feed or continue */
    uint64_t turn_out0;   /* bytes_out when it began */
    bool yielded;         /* it stopped at frames_per_turn with input left */
    bool ended;           /* mgw_session_end() ran; buffers go when the last feed returns */
};

void mgw_session_init(struct mgw_session *s, struct mgw_ctx *ctx, uint64_t id,
                      const struct mgw_session_io *io, void *io_data);

/* The accept event (phase accept): faults that act before any byte is read. */
void mgw_session_accept(struct mgw_session *s);

/* Processes bytes from the client: complete units are handled at once, a partial one is kept
 * (bounded by cfg->max_in_frame) until more bytes come. May call io->send and io->close. */
void mgw_session_feed(struct mgw_session *s, const uint8_t *data, size_t len);

/* True when the last feed or continue stopped at ctx->frames_per_turn requests with input
 * left (kept, like a partial frame): stop reading and call mgw_session_continue() on a later
 * loop turn, until it no longer yields. */
bool mgw_session_yielded(const struct mgw_session *s);
/* Handles the next turn's worth of the input a yield kept. */
void mgw_session_continue(struct mgw_session *s);

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

/* --------------------------------------------------------------------------------------------
 * Proxy mode (proxy.c)
 */
/* Switches a freshly initialised session to proxy mode: what goes upstream is handed to send
 * (with the session's io_data). 0 or -ENOMEM. mgw_session_end() frees what it allocates. */
int mgw_session_proxy(struct mgw_session *s, mgw_upstream_send_fn send);

/* Processes bytes from the upstream gateway: the version reply, then frames, each journaled
 * on the upstream leg and forwarded to the client (through io->send) unless a fault says
 * otherwise. A partial frame is kept (bounded by IBW_MAX_FRAME). May call every io callback. */
void mgw_session_feed_upstream(struct mgw_session *s, const uint8_t *data, size_t len);

/* --------------------------------------------------------------------------------------------
 * Library-internal: what session.c and proxy.c share. Not for the server.
 */
/* Asks the engine about an event and carries out what fired (session.c). Errors at phases
 * other than request wait in s->post for mgw__run_post(). True: the event's normal processing
 * must stop. */
bool mgw__fault_point(struct mgw_session *s, enum mgw_event_phase phase, int msg_id, int req_id);
void mgw__run_post(struct mgw_session *s, enum mgw_event_phase phase);
/* Journals (leg "client" in proxy mode), records and sends complete frames buf[0..len) to the
 * client; version marks the handshake reply. */
void mgw__send_frames(struct mgw_session *s, const uint8_t *buf, size_t len, bool version);
/* Malformed input: journaled as bad_input (with leg when given), the connection closes. */
void mgw__bad_input(struct mgw_session *s, const char *leg, const char *what, int err);
/* 326 to the client, then FIN; held_by is the journal's JSON value. */
void mgw__refuse_client_id(struct mgw_session *s, const char *held_by);
/* Who holds client id id ("\"busy\"", "\"stale\""), or NULL. */
const char *mgw__client_id_holder(struct mgw_ctx *ctx, int id);
/* The request id of request f (message msg_id), or -1. */
int mgw__request_req_id(const struct mgw_session *s, const struct ibw_frame *f, int msg_id);
/* A peer's bytes of an incomplete unit, carried to the next feed, at most bound of them. */
struct mgw__carry {
    uint8_t **buf;
    size_t *len, *alloc;
    size_t bound;
    size_t (*process)(struct mgw_session *s, const uint8_t *buf, size_t len); /* bytes used */
    const char *leg; /* for the journal: NULL, "client" or "upstream" */
};

/* Hands data to c->process, carrying what it leaves (an incomplete unit, or input that waits)
 * in c's buffer; past c->bound the input is bad and the session closes. */
void mgw__carry_feed(struct mgw_session *s, struct mgw__carry *c, const uint8_t *data, size_t len);
/* Client input carried while the proxy waited for the upstream: processed now. */
void mgw__session_resume(struct mgw_session *s);
/* Brackets a feed: buffers of a session ended inside it are released by the last leave. */
void mgw__session_enter(struct mgw_session *s);
void mgw__session_leave(struct mgw_session *s);
/* Milliseconds since the connection was accepted. */
uint64_t mgw__session_ms(const struct mgw_session *s);

/* proxy.c, called by session.c in proxy mode. */
bool mgw__proxy_paused(const struct mgw_session *s);
void mgw__proxy_on_hello(struct mgw_session *s, const struct ibw_hello *h, const uint8_t *raw,
                         size_t len);
void mgw__proxy_on_frame(struct mgw_session *s, const struct ibw_frame *f, const uint8_t *raw,
                         size_t len);
void mgw__proxy_end(struct mgw_session *s);
/* Hands over the frames waiting to go upstream (at the end of each client process() run). */
void mgw__proxy_flush(struct mgw_session *s);

#endif /* MGW_SESSION_H */
