/* libmockgw — a fake IB Gateway on a libuv loop.
 *
 * Ownership: mgw_server_new() copies everything it needs from the config (strings included);
 * the caller may free the config afterwards. The server owns its listeners, connections,
 * fixtures and journal, and frees them in mgw_server_free() after mgw_server_stop() has
 * completed. The library never prints and never exits; failures come back as negative codes
 * plus a message in struct mgw_err that names the flag, file or JSON path and the reason.
 *
 * Threads: none. Everything runs on the loop given to mgw_server_new().
 */
#ifndef MOCKGW_H
#define MOCKGW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MGW_ERRNO_MAP(XX)                                      \
    XX(ECONFIG, -5201, "invalid configuration")                \
    XX(EFIXTURE, -5202, "invalid fixtures file")               \
    XX(EBIND, -5203, "cannot listen on the requested address") \
    XX(ESTATE, -5204, "operation not valid in the server's state")

enum mgw_errno {
#define XX(name, code, msg) MGW_##name = (code),
    MGW_ERRNO_MAP(XX)
#undef XX
};

const char *mgw_strerror(int err);

/* A message the user can act on: "fixtures.json: $.contracts[3].symbol: expected a string". */
struct mgw_err {
    char msg[512];
};

struct mgw_script; /* a loaded fault script (private: mockgw/fault.h) */
struct cJSON;

/* Fault scripts (format: docs/script-format.md). Each loader returns a script the caller frees
 * with mgw_script_free(), or NULL with err->msg naming the input, the JSON path and the reason:
 * "<path>: $.rules[2].action.type: unknown action \"explode\"" (or "<path>: <strerror>").
 * Loads and validates a script file. */
struct mgw_script *mgw_script_load(const char *path, struct mgw_err *err);
/* The same from memory; name stands in for the path in messages. */
struct mgw_script *mgw_script_parse(const char *json, size_t len, const char *name,
                                    struct mgw_err *err);
/* The same from a parsed JSON object (borrowed; nothing of it is kept), for a script embedded
 * in another document: path is the object's JSON path there, so messages read
 * "scenario.json: $.gateway.rules[0].action: ..." (name NULL: no name; path NULL: "$"). */
struct mgw_script *mgw_script_from_json(const struct cJSON *doc, const char *name, const char *path,
                                        struct mgw_err *err);
/* An empty script (no settings, no rules, state "normal"). NULL only when out of memory. */
struct mgw_script *mgw_script_new(void);
/* NULL is a no-op. */
void mgw_script_free(struct mgw_script *s);

/* Gateway behaviour; mgw_config_init() sets the documented defaults. */
struct mgw_config {
    const char *listen_host;   /* "127.0.0.1" */
    int listen_port;           /* 4002; 0 picks a free port */
    const char *admin_host;    /* "127.0.0.1"; NULL with admin_enabled false = no admin */
    int admin_port;            /* 4080; 0 picks a free port */
    bool admin_enabled;        /* true */
    int server_version;        /* highest version offered, IBW_MIN_VERSION..IBW_MAX_VERSION */
    const char *accounts;      /* "DU1234567": comma-separated managed accounts */
    uint64_t seed;             /* drives every synthetic value and random choice */
    const char *log_path;      /* JSON-lines log: a path, "-" for stdout, NULL for none */
    const char *fixtures_path; /* NULL: the built-in fixture table */
    int next_valid_id;         /* first nextValidId handed out (1) */
    int max_clients;           /* 32; 0 = unlimited (real-gateway rule) */
    bool unique_client_ids;    /* true: a second live connection with an id gets 326 */
    bool pace_current_time;    /* true: reqCurrentTime answered at most once per second */
    uint64_t hello_timeout_ms; /* close a connection that sends no complete handshake (30 s) */
    size_t max_out_buffer;     /* bytes queued for a client that does not read (4 MiB) */
    size_t max_in_frame;       /* largest request payload accepted (1 MiB) */
    const struct mgw_script *script; /* rules and settings armed at start; NULL = none.
                                      * The server keeps its own copy (POST /v1/reset). */
    /* Proxy mode (docs/proxy.md): each client connection gets its own connection to this
     * gateway; the same rules apply at the same events. NULL = fake mode. A host name is
     * resolved once, in mgw_server_new(). */
    const char *upstream_host;
    int upstream_port;            /* 1..65535 */
    uint64_t upstream_timeout_ms; /* connect deadline (5000) */
    const char *record_path; /* the decoded conversation as JSON lines; NULL = none (truncates) */
    const char *replay_path; /* recorded answers for matching requests; fake mode only */
};

void mgw_config_init(struct mgw_config *cfg);

struct mgw_server;

/* Validates cfg, loads fixtures, opens the log. NULL on error (err says why). */
struct mgw_server *mgw_server_new(uv_loop_t *loop, const struct mgw_config *cfg,
                                  struct mgw_err *err);

/* Binds and starts the API and admin listeners. 0, or a negative code (MGW_EBIND with the
 * address and the reason, e.g. "127.0.0.1:4002: address already in use"). */
int mgw_server_start(struct mgw_server *srv, struct mgw_err *err);

/* Ports actually bound (after a successful start); -1 when that listener is off. */
int mgw_server_api_port(const struct mgw_server *srv);
int mgw_server_admin_port(const struct mgw_server *srv);

typedef void (*mgw_stopped_cb)(struct mgw_server *srv, void *data);

/* Closes listeners and every connection, flushes the journal. cb fires exactly once, after
 * every handle is closed (never before mgw_server_stop() returns); cb may be NULL. Calling it
 * twice is a no-op returning MGW_ESTATE. */
int mgw_server_stop(struct mgw_server *srv, mgw_stopped_cb cb, void *data);

/* Frees a stopped (or never started) server. NULL is a no-op. */
void mgw_server_free(struct mgw_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* MOCKGW_H */
