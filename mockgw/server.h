/* The server's insides (private to libmockgw), shared by server.c (listener, connections,
 * output, faults on the transport) and routes.c (the admin API). */
#ifndef MGW_SERVER_H
#define MGW_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "admin.h"
#include "fault.h"
#include "fixtures.h"
#include "journal.h"
#include "mockgw.h"
#include "replay.h"
#include "session.h"

/* A scheduled action (after_ms) waiting on a connection. */
struct scheduled {
    uint64_t due_ms; /* uv_now() */
    enum mgw_event_phase phase;
    int req_id;               /* the request's id at phase request, else -1 */
    struct mgw_action action; /* our own deep copy, after_ms 0 */
};

/* What faults add to a connection, allocated on the first fault that needs it: an output
 * pipeline (delay, hold, slice, bandwidth, truncate, limit_data) and scheduled actions. */
struct conn_faults {
    uv_timer_t out_timer;   /* the next step of the output pipeline */
    uv_timer_t sched_timer; /* the earliest scheduled action */
    uint8_t *buf;           /* output waiting in the pipeline (capped by max_out_buffer) */
    size_t len, cap;
    uint64_t delay_until_ms; /* nothing goes out before this (uv_now) */
    bool held;               /* hold: nothing goes out until release */
    uint64_t slice;          /* bytes per write, 0 = whole */
    uint64_t pause_ms;       /* between slices */
    uint64_t bytes_per_s;    /* 0 = unpaced */
    int64_t limit;           /* bytes left before FIN; -1 = no limit */
    int64_t truncate;        /* bytes left before silence; -1 = none */
    bool truncate_half;      /* truncate at half of the next frame */
    struct scheduled *sched;
    unsigned n_sched, cap_sched;
};

/* The upstream leg of a proxied connection (upstream.c). Its two handles count in the
 * connection's open_handles; it is freed with the connection, in the last close callback. */
struct upstream {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the connect deadline */
    uv_connect_t connect;
    uint8_t *pending; /* bytes for the upstream before the connect completed (capped) */
    size_t pending_len, pending_cap;
    size_t queued;       /* handed to uv_write, not yet written */
    uint64_t started_ms; /* uv_now() when the connect began */
    uint64_t bytes_in, bytes_out;
    char local[64]; /* our end of the upstream connection, once connected */
    bool connected;
    bool closed; /* its handles are closing or closed */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the handshake deadline, then the FIN linger */
    uv_shutdown_t shutdown;
    struct mgw_server *srv;
    struct mgw_session s;
    struct conn *prev, *next;
    struct conn_faults *faults; /* NULL until a fault needs it */
    struct upstream *up;        /* proxy mode, from the accept event on; NULL otherwise */
    char peer[64];
    uint64_t connected_ms; /* uv_now() at accept */
    size_t queued;         /* bytes handed to uv_write and not yet written */
    int open_handles;
    bool closing;            /* handles are being closed */
    bool draining;           /* FIN requested: waiting for the shutdown to complete */
    bool accept_wait;        /* accept_delay_ms: accepted, not read from yet */
    bool half_closed;        /* FIN sent by a half_close fault; still reading */
    bool yield_queued;       /* on srv->yielded: continues on the next loop iteration */
    struct conn *yield_next; /* ... the next one there */
    const char *end_reason;
};

struct mgw_server {
    uv_loop_t *loop;
    struct mgw_config cfg;      /* strings below are our own copies */
    struct mgw_config base_cfg; /* cfg as started: what POST /v1/reset goes back to */
    char *listen_host, *admin_host, *accounts, *log_path, *fixtures_path;
    char *upstream_host, *record_path, *replay_path;
    bool proxy;                            /* --upstream: every connection is mirrored */
    struct sockaddr_storage upstream_addr; /* resolved once, in mgw_server_new() */
    char upstream_name[300];               /* "host:port" for the journal and the status */
    struct mgw_replay *replay;             /* --replay */
    struct mgw_script *script;             /* the start-up script, kept for POST /v1/reset */
    struct mgw_script *reset_script;       /* the body of the last POST /v1/reset, if it had one */
    struct mgw_fixtures *fx;
    struct mgw_journal *journal;
    struct mgw_faults *faults;
    struct mgw_ctx ctx;
    struct mgw_admin *admin;
    uv_tcp_t *listener; /* NULL while refusing */
    int api_port;
    int admin_port;
    enum mgw_listener_mode listen_mode;
    bool accept_pending; /* libuv holds a connection we have not accepted (blackhole) */
    uint64_t accept_delay_ms;
    uv_timer_t sched_timer;  /* scheduled listener actions (they outlive the connection) */
    struct scheduled *sched; /* ... and their list */
    unsigned n_sched, cap_sched;
    uv_timer_t restart_timer; /* the end of a restart's down time */
    uv_idle_t yield_idle;     /* continues the sessions that yielded (srv->yielded) */
    struct conn *yielded;
    uv_timer_t every_timer; /* restart_every */
    uint64_t restart_every_ms, restart_down_ms;
    bool restarting;
    bool timers_init;
    struct conn *conns; /* doubly linked, newest first */
    unsigned n_conns;
    uint64_t next_conn_id;
    uint8_t *read_buf; /* one buffer for every read: reads are handled synchronously */
    uint64_t started_ms;
    struct {
        uint64_t accepted, closed, rejected_max_clients, output_overflow, restarts;
    } counters;
    unsigned n_closing; /* connections and listeners whose handles are closing */
    /* Stopping: every handle closes, then stop_cb fires once. */
    bool stopping;
    bool stop_notified;
    unsigned pending_closes; /* admin and the server timers */
    mgw_stopped_cb stop_cb;
    void *stop_data;
};

/* The admin API's request handler (routes.c). */
void mgw__admin_route(void *srv, const struct mgw_http_request *req,
                      struct mgw_http_response *resp);

/* Listener-level actions (server.c), journaled. 0 or a negative libuv code. */
int mgw__listener_set(struct mgw_server *srv, enum mgw_listener_mode mode, const char *why);
void mgw__restart(struct mgw_server *srv, uint64_t down_ms, bool reset, const char *why);

/* Connection operations for the admin API. */
struct conn *mgw__conn_find(struct mgw_server *srv, uint64_t id);
void mgw__conn_close(struct conn *c, bool reset, const char *reason);
/* Closes at once, no FIN linger (POST /v1/reset): journaled before the call returns. */
void mgw__conn_close_now(struct conn *c, const char *reason);
void mgw__conn_silence(struct conn *c);
void mgw__conn_release(struct conn *c);

/* Arms the script's settings and rules (the start-up script, or again on POST /v1/reset).
 * 0 or -ENOMEM. */
int mgw__arm_script(struct mgw_server *srv, const struct mgw_script *script);

/* POST /v1/reset's settings and rules: the start-up script (given NULL), or given, which the
 * server owns from then on (freed at the next reset, or on error). given's settings apply over
 * the configuration mockgw started with: what it names wins, even over a command-line flag;
 * what it leaves out is as at start-up. The periodic restart starts over. 0 or -ENOMEM. */
int mgw__reset_to(struct mgw_server *srv, struct mgw_script *given);

/* Drops every connection (FIN, or RST with reset), journaled with why. */
void mgw__drop_all(struct mgw_server *srv, bool reset, const char *why);

/* What upstream.c borrows from server.c: the close callback of every handle a connection owns;
 * writes to one of its streams (the client's, or the upstream's with its own queued counter),
 * bounded by max_out_buffer (past it the connection closes, journaled as output_overflow with
 * leg); the shared read buffer. */
void mgw__conn_handle_closed(uv_handle_t *h);
void mgw__stream_send(struct conn *c, uv_stream_t *stream, size_t *queued, const uint8_t *buf,
                      size_t len);
void mgw__output_overflow(struct conn *c, const char *leg, size_t queued, size_t adding);
void mgw__conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Proxy mode (upstream.c). Connects c's upstream leg with the --upstream-timeout-ms deadline;
 * a refused or late connect closes the client (FIN), journaled upstream_connect_failed. */
void mgw__upstream_start(struct conn *c);
/* The proxy session's send to the upstream: queued until the connect completes, then written. */
void mgw__upstream_send(void *io_data, const uint8_t *buf, size_t len);
/* Closes the upstream leg (journaled upstream_close with why); no-op without one or twice. */
void mgw__upstream_close(struct conn *c, const char *why);
/* Stops reading the upstream (a silenced connection forwards nothing either way). */
void mgw__upstream_pause(struct conn *c);

#endif /* MGW_SERVER_H */
