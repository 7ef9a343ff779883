/* harness — declarative scenarios that run the real core (libibcore) against the real fake
 * gateway (libmockgw), check what happened, and report it (docs/harness.md; the scenario format:
 * docs/scenario-format.md).
 *
 * Ownership: harness_scenario_load()/_parse() return a scenario the caller frees with
 * harness_scenario_free(); everything it points to belongs to it. harness_run() fills a result
 * the caller clears with harness_result_clear(). The library never prints and never exits;
 * errors come back as negative codes plus a message naming the file, the JSON path and the
 * reason: "s.json: $.steps[3].expect.within_ms: expected a non-negative integer".
 *
 * Threads: none. One loop, passed in; the runner drives it itself (every wait is bounded).
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "ibcore.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;
struct mgw_script;

struct harness_err {
    char msg[512];
};

/* ---------------------------------------------------------------------------------------------
 * Levels: tags on a scenario; selection is cumulative (standard runs basic too).
 */
enum harness_level {
    HARNESS_LEVEL_BASIC,
    HARNESS_LEVEL_STANDARD,
    HARNESS_LEVEL_EXHAUSTIVE,
    HARNESS_LEVEL_COUNT
};

const char *harness_level_name(enum harness_level l); /* "basic"...; "?" out of range */
int harness_level_parse(const char *s);               /* the level, or -1 */

/* ---------------------------------------------------------------------------------------------
 * Outcomes: what an operation ended with, by name. Each name stands for one or more error codes
 * of the core, libuv or the wire codec; anything else is "error".
 */
#define HARNESS_STATUS_MAP(XX)                 \
    XX(OK, "ok")                               \
    XX(TIMEOUT, "timeout")                     \
    XX(BREAKER_OPEN, "breaker_open")           \
    XX(IDS_EXHAUSTED, "ids_exhausted")         \
    XX(REFUSED, "refused")                     \
    XX(RESET, "reset")                         \
    XX(CLIENT_ID_REFUSED, "client_id_refused") \
    XX(NOT_READY, "not_ready")                 \
    XX(SHUTDOWN, "shutdown")                   \
    XX(CANCELED, "canceled")                   \
    XX(POISONED, "poisoned")                   \
    XX(CLOSED, "closed")                       \
    XX(LOCK_TIMEOUT, "lock_timeout")           \
    XX(PROTOCOL, "protocol")                   \
    XX(VERSION, "version")                     \
    XX(HTTP_ERROR, "http_error")               \
    XX(ERROR, "error")

enum harness_status {
#define XX(name, str) HARNESS_STATUS_##name,
    HARNESS_STATUS_MAP(XX)
#undef XX
        HARNESS_STATUS_COUNT
};

enum harness_status harness_status_of(int err); /* 0 -> ok, UV_ETIMEDOUT -> timeout, ... */
const char *harness_status_name(enum harness_status s);
int harness_status_parse(const char *s); /* the status, or -1 */

/* ---------------------------------------------------------------------------------------------
 * The pool counters a scenario can wait for and expect (struct ibcore_pool_stats), by name.
 */
#define HARNESS_STATS_MAP(XX) \
    XX(live)                  \
    XX(connecting)            \
    XX(validating)            \
    XX(idle)                  \
    XX(in_use)                \
    XX(pending)               \
    XX(created)               \
    XX(closed)                \
    XX(probes)                \
    XX(probe_failures)        \
    XX(retries)               \
    XX(retired)               \
    XX(zombies_closed)        \
    XX(suspends)

enum harness_stat {
#define XX(name) HARNESS_STAT_##name,
    HARNESS_STATS_MAP(XX)
#undef XX
        HARNESS_STAT_COUNT
};

const char *harness_stat_name(enum harness_stat s);
uint64_t harness_stat_get(const struct ibcore_pool_stats *st, enum harness_stat s);

/* ---------------------------------------------------------------------------------------------
 * Scenarios (docs/scenario-format.md). Every path string names where the item was in the file
 * ("$.steps[2]"), for messages.
 */

/* A count in a file: an integer (exactly that) or {"min": a, "max": b} (either may be left out). */
struct harness_range {
    bool set;
    int64_t min, max;
};

bool harness_range_holds(const struct harness_range *r, int64_t v);
/* "3", "1..5", ">= 2", "<= 4" into buf (cap >= 48); returns buf. */
const char *harness_range_str(const struct harness_range *r, char *buf, size_t cap);

struct harness_named_range {
    char *name;
    struct harness_range range;
};

/* A field of the pool's status JSON ("breaker.state", "pool.idle", "score.total"): equal to a
 * JSON value (string, bool, number, null), or a number within a range. */
struct harness_field_expect {
    char *path;
    struct cJSON *value; /* owned; NULL when range is used */
    struct harness_range range;
};

/* What the gateway's journal (GET /v1/journal) must show, over the scenario or one step. */
struct harness_journal_expect {
    bool set;
    struct harness_range accepted;      /* "accept" events */
    struct harness_range max_in_flight; /* most handshakes in flight at once */
    bool has_client_ids;                /* client ids of the start_api events, in order */
    int *client_ids;
    unsigned n_client_ids;
    struct harness_named_range *events; /* event name -> how many */
    unsigned n_events;
    /* how a client behaves (judged from the journal; any scenario, made for "client" ones) */
    struct harness_range min_connect_interval; /* ms: the closest two accepts (>= 2 accepts) */
    struct harness_range reconnect;            /* ms: the longest gap from a gateway-side drop
                                                * of a ready session to the next ready */
    struct harness_range same_id_after_326;    /* retries that reused the refused id */
};

/* "expect.client": the external client's end. */
struct harness_client_expect {
    bool set;
    int exit_code; /* default 0; -1: any */
    char **output; /* substrings its stdout+stderr must contain */
    unsigned n_output;
};

struct harness_expect {
    /* Outcomes of the step's operations (acquire, request, gateway call). */
    unsigned status_mask; /* bit (1u << status) per allowed status; 0 = not checked */
    struct harness_range statuses[HARNESS_STATUS_COUNT];
    bool has_within, has_after;
    uint64_t within_ms, after_ms; /* each operation's duration */
    bool has_client_ids;          /* acquire: client ids of the successes, in completion order */
    int *client_ids;
    unsigned n_client_ids;
    int http_status; /* gateway steps: 0 = any 2xx */
    /* State after the step (or at the end of the scenario). */
    struct harness_range stats[HARNESS_STAT_COUNT];
    struct harness_range score;
    struct harness_field_expect *fields; /* "pool_status" */
    unsigned n_fields;
    struct harness_journal_expect journal;
    /* Scenario level only: breaker telemetry. */
    bool has_transitions; /* every "transition" event as "from->to", in order, exactly */
    char **transitions;
    unsigned n_transitions;
    struct harness_named_range *telemetry; /* event name -> how many */
    unsigned n_telemetry;
    struct harness_client_expect client; /* scenario level, "client" scenarios only */
};

enum harness_step_kind {
    HARNESS_STEP_ACQUIRE,
    HARNESS_STEP_RELEASE,
    HARNESS_STEP_REQUEST,
    HARNESS_STEP_HEALTH_TICK,
    HARNESS_STEP_WAIT_STATS,
    HARNESS_STEP_STATUS,
    HARNESS_STEP_CLOSE,
    HARNESS_STEP_HOLD_LOCK,
    HARNESS_STEP_RECOVER,       /* acquire until one succeeds, within deadline_ms */
    HARNESS_STEP_CLOSE_ZOMBIES, /* ibcore_pool_close_zombies() */
    HARNESS_STEP_STALL,         /* the loop does not run for wait_ms (a busy application) */
    HARNESS_STEP_GATEWAY,
    HARNESS_STEP_WAIT,
    HARNESS_STEP_WAIT_JOURNAL /* until the journal has count more events of one name */
};

struct harness_step {
    enum harness_step_kind kind;
    char path[32];        /* "$.steps[3]" */
    char label[48];       /* "acquire x4", "gateway drop_all", "wait 300 ms" */
    uint64_t timeout_ms;  /* the step's own deadline (derived when not given) */
    unsigned count;       /* acquire: how many; release: how many (0 = all); health_tick */
    unsigned concurrency; /* acquire: at most this many in flight */
    uint64_t deadline_ms; /* acquire, request: each operation's deadline, from its start */
    uint64_t hold_ms;     /* acquire: release each success this long after it; hold_lock */
    bool keep;            /* acquire: keep the successes until a release step */
    bool async;           /* acquire: the next step starts at once */
    bool if_held;         /* request: nothing to do (instead of a failure) when none is held */
    int conn;             /* release, request: index among held connections; -1 = unset */
    struct harness_range until[HARNESS_STAT_COUNT]; /* wait_stats */
    char *method, *target, *body;                   /* gateway: the admin call */
    uint64_t wait_ms;                               /* wait, stall */
    char event[32];                                 /* wait_journal: the event name */
    struct harness_expect expect;
};

/* "client": an external program (the user's client) run as a black box instead of the core.
 * command runs with /bin/sh -c in its own process group, after {host}, {port}, {admin_port},
 * {seed} and {scenario_dir} are replaced (docs/external-clients.md). */
struct harness_client {
    char *command;
    uint64_t timeout_ms;  /* from its start to its exit, the stop included */
    bool stops_by_itself; /* "stop": "exit"; else ("signal") SIGTERM after the last step */
};

/* ---------------------------------------------------------------------------------------------
 * Generators (key "generate", docs/scenario-format.md): seeded random fault schedules. Each
 * schedule is a list of steps in the scenario format, drawn from (seed, index) with splitmix64:
 * faults (gateway rules and actions) and operations (core steps) by weight, followed by a fixed
 * "heal" tail (faults cleared, then the pool must recover).
 */
#define HARNESS_FAULT_MAP(XX)                \
    XX(SILENT_ACCEPT, "silent_accept")       \
    XX(SILENT_HANDSHAKE, "silent_handshake") \
    XX(SILENT_READY, "silent_ready")         \
    XX(CLOSE_READY, "close_ready")           \
    XX(RESET_READY, "reset_ready")           \
    XX(HALF_CLOSE_READY, "half_close_ready") \
    XX(REFUSE_CLIENT_ID, "refuse_client_id") \
    XX(HALF_READY, "half_ready")             \
    XX(DELAY_ACCEPT, "delay_accept")         \
    XX(IGNORE_REQUEST, "ignore_request")     \
    XX(GARBAGE_READY, "garbage_ready")       \
    XX(ERROR_FLAP, "error_flap")             \
    XX(DROP_ALL, "drop_all")                 \
    XX(RESET_ALL, "reset_all")               \
    XX(REFUSE, "refuse")                     \
    XX(BLACKHOLE, "blackhole")               \
    XX(ACCEPT, "accept")                     \
    XX(RESTART, "restart")                   \
    XX(CLEAR_RULES, "clear_rules")

enum harness_fault {
#define XX(name, str) HARNESS_FAULT_##name,
    HARNESS_FAULT_MAP(XX)
#undef XX
        HARNESS_FAULT_COUNT
};

#define HARNESS_OP_MAP(XX)             \
    XX(ACQUIRE, "acquire")             \
    XX(ACQUIRE_ASYNC, "acquire_async") \
    XX(KEEP, "keep")                   \
    XX(RELEASE, "release")             \
    XX(REQUEST, "request")             \
    XX(WAIT, "wait")                   \
    XX(IDLE, "idle")                   \
    XX(STATUS, "status")               \
    XX(CLOSE_ZOMBIES, "close_zombies")

enum harness_op {
#define XX(name, str) HARNESS_OP_##name,
    HARNESS_OP_MAP(XX)
#undef XX
        HARNESS_OP_COUNT
};

const char *harness_fault_name(enum harness_fault f);
const char *harness_op_name(enum harness_op o);

struct harness_generate {
    unsigned schedules;     /* how many schedules: 1..100000 */
    unsigned steps;         /* steps per schedule (at most; at least half of it) */
    unsigned concurrency;   /* acquires in flight at once, at most */
    unsigned fault_percent; /* the share of steps that are faults (0..100) */
    unsigned fault_weight[HARNESS_FAULT_COUNT]; /* 0 = never */
    unsigned op_weight[HARNESS_OP_COUNT];
    uint64_t deadline_ms;  /* an operation's deadline: drawn from [deadline_ms / 2, deadline_ms] */
    uint64_t max_wait_ms;  /* waits and holds: [1, max_wait_ms] */
    uint64_t idle_ms;      /* an "idle" wait: past the alive window, so the next acquire probes */
    uint64_t max_after_ms; /* a fault's delay after its event: [0, max_after_ms] */
    uint64_t max_down_ms;  /* a restart's down time: [10, max_down_ms] */
    uint64_t recovery_ms;  /* the recover step of the tail: the pool is ok again within it */
    unsigned shrink_runs;  /* runs the shrinker may spend on a failing schedule (0: none) */
    uint64_t shrink_ms;    /* and wall time */
    unsigned max_failures; /* stop after this many failing schedules */
    char *expect;          /* "expect" added to every schedule (JSON text) or NULL */
};

/* A soak (key "soak"): the steps run again and again for duration_ms while the process's RSS
 * and descriptors are sampled every sample_ms; after warmup_ms, the median of the last third of
 * the samples may exceed the median of the first third by at most the tolerance. */
struct harness_soak {
    uint64_t duration_ms, sample_ms, warmup_ms;
    uint64_t rss_tolerance_kib; /* absolute slack */
    unsigned rss_tolerance_pct; /* relative slack (of the first third's median); the larger wins */
    unsigned fd_tolerance;
};

struct harness_scenario {
    char *path;          /* as given to the loader */
    char *name;          /* file slug */
    char *description;   /* "" when absent */
    unsigned levels;     /* bit (1u << level) per tag */
    uint64_t timeout_ms; /* the whole scenario's hard deadline */
    bool has_seed;
    uint64_t seed;
    struct ibcore_pool_config core; /* defaults + "core" overrides; host/port set by the run */
    bool has_core_seed, has_lock_path;
    struct ibcore_breaker_config breaker;
    bool has_breaker_seed;
    char *strings[8]; /* owned copies the core config's string fields point to */
    unsigned n_strings;
    struct mgw_script *script;  /* "gateway" (NULL when absent) */
    bool needs_admin;           /* gateway steps or journal expectations */
    int measure_step;           /* the step whose slowest operation is the key measure; -1 */
    struct harness_step *steps; /* none with "generate" */
    unsigned n_steps;
    struct harness_expect expect;      /* scenario level */
    bool gateway_process;              /* mockgw runs as a child process (the mockgw binary) */
    struct harness_generate *generate; /* NULL: a plain scenario */
    struct harness_soak *soak;         /* NULL: the steps run once */
    struct harness_client *client;     /* NULL: the steps drive the core */
    char *core_json;                   /* "core" as given (generate only) */
    char *gateway_json; /* "gateway" as given: gateway_process's --script, an external one's
                         * POST /v1/reset body, a generator's base */
};

/* Loads a scenario file (at most 4 MiB). NULL on error, err->msg "path: $.json.path: reason". */
struct harness_scenario *harness_scenario_load(const char *path, struct harness_err *err);
/* The same from memory; name stands in for the path. */
struct harness_scenario *harness_scenario_parse(const char *json, size_t len, const char *name,
                                                struct harness_err *err);
/* NULL is a no-op. */
void harness_scenario_free(struct harness_scenario *sc);
/* The lowest level the scenario is tagged with. */
enum harness_level harness_scenario_level(const struct harness_scenario *sc);

/* ---------------------------------------------------------------------------------------------
 * Running one scenario.
 */
struct harness_run_opts {
    bool has_seed; /* else the scenario's "seed", else 1 */
    uint64_t seed;
    const char *gateway_host; /* NULL: an in-process mockgw (the usual case) */
    int gateway_port;
    const char *admin_host; /* external gateway's admin API; NULL: none (steps needing it
                             * are skipped) */
    int admin_port;
    const char *lock_dir; /* where the per-run handshake lock file goes; NULL: $TMPDIR or /tmp */
    const char *artifacts_dir;  /* where minimal failing schedules are written; NULL: $TMPDIR or
                                 * /tmp */
    const char *mockgw_bin;     /* the mockgw binary for "gateway_process"; NULL: $MOCKGW_BIN,
                                 * else next to this program (../mockgw/mockgw, ./mockgw) */
    const char *client_command; /* replaces every "client" scenario's command; NULL: theirs */
};

void harness_run_opts_init(struct harness_run_opts *o);

enum harness_verdict { HARNESS_PASS, HARNESS_FAIL, HARNESS_SKIP };

#define HARNESS_MAX_FAILURES 16

struct harness_result {
    enum harness_verdict verdict;
    uint64_t seed;        /* the seed the run used */
    uint64_t duration_ms; /* wall time of the run, teardown included */
    char measure[96];     /* the key measure, e.g. "12 ops, slowest 503 ms" */
    char skip_reason[160];
    unsigned n_failures; /* messages kept: at most HARNESS_MAX_FAILURES */
    unsigned n_failures_total;
    char *failures[HARNESS_MAX_FAILURES];
    char *core_log;         /* the core's log lines during the run (the last 64), or NULL */
    char *client_output;    /* "client": its stdout and stderr (the last 16 KiB), or NULL */
    int client_exit;        /* "client": its exit status, 128 + N killed by signal N, -1 none */
    char *artifact;         /* generate: the minimal failing schedule's scenario file, or NULL */
    uint64_t artifact_seed; /* the seed that replays it */
    unsigned schedules;     /* generate: schedules run */
};

/* Runs sc on loop (which must have no other active handles the run would wait on) and fills
 * res. The run starts the gateway (in-process, or resets the external one), the pool and the
 * breaker registry, runs the steps, checks the expectations and the invariants (every
 * operation completed exactly once within its deadline + 20 ms, fds and libuv handles back to
 * baseline, no callback after close, consistent pool counters) and tears everything down.
 * Every wait is bounded by the step's and the scenario's deadlines. Returns 0 (res says how it
 * went) or a negative code when the loop itself could not be used. */
int harness_run(uv_loop_t *loop, const struct harness_scenario *sc,
                const struct harness_run_opts *o, struct harness_result *res);

void harness_result_clear(struct harness_result *res);

/* Stops the run in progress, and every later one at once: its current wait ends, the result
 * gets the one failure "interrupted by SIGTERM ..." (no other step or expectation failure is
 * added), and the teardown (pool, breakers, the gateway, a gateway_process child stopped with
 * SIGTERM) runs as usual within its bound. Meant for the loop's SIGINT/SIGTERM handler; a
 * generator stops between schedules. harness_interrupted() is the signal, or 0. */
void harness_interrupt(int signum);
int harness_interrupted(void);
/* Runs may go on again (a program that outlives an interrupted run: the tests). */
void harness_interrupt_clear(void);
/* "SIGINT", "SIGTERM", ... or "signal N". */
const char *harness_signal_name(int signum, char *buf, size_t cap);

/* ---------------------------------------------------------------------------------------------
 * Schedules: what a generator draws, shrinks and writes out.
 */
struct harness_schedule {
    uint64_t seed;       /* the seed the schedule runs with (mockgw, pool, breaker) */
    unsigned index;      /* which schedule of the generator */
    struct cJSON *steps; /* owned: an array of steps in the scenario format */
};

/* Draws schedule index of g from seed: the same (g, seed, index) always gives the same steps.
 * 0, or UV_ENOMEM. out is cleared with harness_schedule_clear(). */
int harness_schedule_make(const struct harness_generate *g, uint64_t seed, unsigned index,
                          struct harness_schedule *out);
void harness_schedule_clear(struct harness_schedule *s);
/* A deep copy (UV_ENOMEM). */
int harness_schedule_copy(const struct harness_schedule *in, struct harness_schedule *out);
/* The complete scenario that runs s: sc's core and gateway, s's steps, the heal tail and the
 * generator's expect; name "<sc name>-<index>". malloc'd text, or NULL when out of memory. */
char *harness_schedule_to_json(const struct harness_scenario *sc, const struct harness_schedule *s,
                               bool pretty);
/* One line per step ("fault refuse_client_id times=1", "acquire x2 hold 10 ms"), malloc'd. */
char *harness_schedule_describe(const struct harness_schedule *s);
unsigned harness_schedule_len(const struct harness_schedule *s);

/* The shrinker's question: does this candidate still fail the same way? */
typedef bool (*harness_shrink_fn)(const struct harness_schedule *candidate, void *data);

struct harness_shrink_stats {
    unsigned runs;         /* candidates tried */
    unsigned steps_before; /* steps of the failing schedule */
    unsigned steps_after;  /* steps of the minimal one */
    bool out_of_budget;    /* stopped by max_runs or max_ms before a fixed point */
};

/* Delta debugging: drops chunks of steps (halves, quarters, ... single steps) while the
 * schedule still fails, then simplifies values (counts and concurrency to 1, holds, waits and
 * delays to 0, times to 1, asynchronous to synchronous), and repeats until nothing changes or
 * the budget (max_runs candidates, max_ms) is spent. s is replaced by the smallest failing
 * schedule found (it still fails: only failing candidates are kept). 0 or UV_ENOMEM. */
int harness_shrink(struct harness_schedule *s, harness_shrink_fn fails, void *data,
                   unsigned max_runs, uint64_t max_ms, struct harness_shrink_stats *st);

/* ---------------------------------------------------------------------------------------------
 * HTTP/1.1 client (for the admin API): one request per connection (Connection: close), the
 * response parsed with http_parser, everything within timeout_ms.
 */
struct harness_http;

/* status: 0 with the response (http_status, body: NUL-terminated, valid during the call), or a
 * negative code (UV_ETIMEDOUT, UV_ECONNREFUSED, UV_ECANCELED, UV_EPROTO, UV_E2BIG) with
 * http_status 0 and body NULL. h is valid until cb returns. */
typedef void (*harness_http_cb)(struct harness_http *h, int status, int http_status,
                                const char *body, size_t len, void *data);

/* Starts method target (e.g. "GET", "/v1/status") to host:port (numeric) with body (NULL: none;
 * sent as application/json). 0: cb is called exactly once, never before this returns; *out (if
 * not NULL) is set for harness_http_cancel(). < 0 (UV_EINVAL for a bad address): never. */
int harness_http_request(uv_loop_t *loop, const char *host, int port, const char *method,
                         const char *target, const char *body, uint64_t timeout_ms,
                         harness_http_cb cb, void *data, struct harness_http **out);

/* Completes a pending request with UV_ECANCELED (inside this call). */
void harness_http_cancel(struct harness_http *h);

/* ---------------------------------------------------------------------------------------------
 * A small HTTP/1.1 server (the probe's endpoints): GET and HEAD only, one request per connection
 * (answered with Connection: close), at most 64 connections, 8 KiB of request head and 5 s per
 * connection. Anything else is answered 4xx by the server itself.
 */
struct harness_httpd;

/* Answers method path (the target without its query): returns the HTTP status and sets *body to
 * a malloc'd JSON text (the server frees it; NULL: "{}"). */
typedef int (*harness_httpd_fn)(const char *method, const char *path, char **body, void *data);

/* Listens on host:port (numeric; port 0 picks one). 0 and *out, or a negative code with err. */
int harness_httpd_start(uv_loop_t *loop, const char *host, int port, harness_httpd_fn fn,
                        void *data, struct harness_httpd **out, struct harness_err *err);
int harness_httpd_port(const struct harness_httpd *s); /* the bound port, -1 on error */
/* Closes the listener and every connection; frees in the last close callback, then cb(data). */
void harness_httpd_close(struct harness_httpd *s, void (*cb)(void *data), void *data);

/* ---------------------------------------------------------------------------------------------
 * Probe (`harness probe`): the core's live view of any gateway, real or fake, through a pool of
 * one connection: acquired (validated), given back, then the pool's status and score.
 */
struct harness_probe_opts {
    const char *host; /* the gateway (numeric) */
    int port;
    int client_id;        /* the first client id tried (99; then 100, 101) */
    uint64_t timeout_ms;  /* an acquire's deadline (10000) */
    unsigned threshold;   /* healthy when the score is at least this (75) */
    uint64_t interval_ms; /* serving: a fresh acquire this often (5000) */
};

void harness_probe_opts_init(struct harness_probe_opts *o);

struct harness_probe_result {
    int acquire_status;  /* 0 or the acquire's error */
    uint64_t acquire_ms; /* how long it took */
    unsigned score;      /* 0..100 */
    bool healthy;        /* score >= threshold */
    char *status_json;   /* ibcore_pool_status_json() plus a "probe" object; malloc'd */
};

/* One acquire within timeout_ms, then the status; everything closed again before it returns
 * (bounded by timeout_ms + 5 s). 0 with res filled (res->status_json may be NULL when out of
 * memory), or a negative code (UV_EINVAL for a bad address, UV_ENOMEM). */
int harness_probe_once(uv_loop_t *loop, const struct harness_probe_opts *o,
                       struct harness_probe_result *res);
void harness_probe_result_clear(struct harness_probe_result *res);

struct harness_probe;

/* Serves the endpoints on host:port: GET /api/v1/ib/resilience (the status JSON with "probe"),
 * /api/v1/ib/health (200 or 503 with {"status", "score", "threshold"}) and /api/v1/ib/status
 * ({"status": "success", "data": {"overall_resilience_score": N, ...}}), acquiring a connection
 * every interval_ms. 0 and *out, or a negative code with err. */
int harness_probe_serve(uv_loop_t *loop, const struct harness_probe_opts *o, const char *host,
                        int port, struct harness_probe **out, struct harness_err *err);
int harness_probe_port(const struct harness_probe *p);
/* Stops serving, closes the pool; frees and calls cb(data) once everything is closed. */
void harness_probe_stop(struct harness_probe *p, void (*cb)(void *data), void *data);

/* ---------------------------------------------------------------------------------------------
 * Suites and reports.
 */

/* Loads every DIR/LEVEL/NAME.json for levels up to level (cumulative), sorted by
 * level then file name, and keeps those tagged at or below level. A file's lowest tag must match
 * its directory. 0, or -1 with err (the first bad file; nothing is returned). */
int harness_suite_load(const char *dir, enum harness_level level, struct harness_scenario ***out,
                       unsigned *n, struct harness_err *err);
void harness_suite_free(struct harness_scenario **list, unsigned n);

struct harness_report_item {
    const struct harness_scenario *sc;
    struct harness_result res;
    char *replay; /* the command that reruns it */
};

struct harness_report {
    const char *level;   /* "basic", ... or NULL for --scenario runs */
    const char *gateway; /* "in-process" or "HOST:PORT" */
    uint64_t seed;
    uint64_t duration_ms;
    struct harness_report_item *items;
    unsigned n;
    int interrupted;  /* the signal that stopped the run early, or 0 */
    unsigned not_run; /* selected scenarios that did not run because of it */
};

unsigned harness_report_failed(const struct harness_report *r);
/* A shell-quoted heap copy of s for a replay command (s as is when it needs no quoting); NULL
 * when out of memory. */
char *harness_shell_quote(const char *s);
/* The table, the failures with their replay commands, and the last line: "DEPLOY: OK" or
 * "DO NOT DEPLOY: N failed". */
void harness_report_console(const struct harness_report *r, FILE *out);
/* 0, or a negative errno with err->msg naming the file. */
int harness_report_json(const struct harness_report *r, const char *path, struct harness_err *err);
int harness_report_junit(const struct harness_report *r, const char *path, struct harness_err *err);

#ifdef __cplusplus
}
#endif

#endif /* HARNESS_H */
