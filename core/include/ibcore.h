/* libibcore — client-side resilience for IB API connections, on libuv.
 *
 * What a C/C++ trading application links to reach IB Gateway safely: a connection that is
 * ready (server version, nextValidId and managedAccounts) within one absolute deadline, a
 * circuit breaker per gateway endpoint, full-jitter backoff, a cross-process handshake lock and
 * a CLOSE_WAIT zombie detector. (The pool, client-id preference and the status score build on
 * these.) Design bar: ../shared/research/anchors-resilience.md §7, invariants §8.
 *
 * Contracts (STYLE.md §6), for every asynchronous function here:
 * 1. Returns < 0: the callback is never called. Returns 0: it is called exactly once, never
 *    before the initiating call has returned.
 * 2. Close/shutdown completes every pending operation with UV_ECANCELED.
 * 3. Closing from inside a callback is allowed.
 * 4. Every wait has a deadline: `deadline_ms` is absolute, on uv_now() of the loop.
 * Timeouts complete with UV_ETIMEDOUT; socket failures with the libuv code (UV_ECONNREFUSED,
 * UV_ECONNRESET, ...); IB-level failures with the IBCORE_* codes below.
 *
 * Threads: none. One loop per process; everything runs on it. No signals are ever sent, no
 * SIGALRM is used, no process is spawned.
 */
#ifndef IBCORE_H
#define IBCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IBCORE_ERRNO_MAP(XX)                                                \
    XX(EBREAKER, -5301, "circuit breaker is open")                          \
    XX(ECLIENTID, -5302, "client id refused by gateway (326)")              \
    XX(ENOTREADY, -5303, "gateway closed before ready (client id in use?)") \
    XX(EVERSION, -5304, "gateway server version not acceptable")            \
    XX(EPOISONED, -5305, "connection poisoned by a timed-out request")      \
    XX(ESHUTDOWN, -5306, "shutting down")                                   \
    XX(ELOCK, -5307, "handshake lock not acquired before the deadline")     \
    XX(EIDSEXHAUSTED, -5308, "every client id was refused")                 \
    XX(EPROTO, -5309, "malformed data from the gateway")                    \
    XX(ECLOSED, -5310, "connection closed")                                 \
    XX(EBUDGET, -5311, "retry budget exhausted")

enum ibcore_errno {
#define XX(name, code, msg) IBCORE_##name = (code),
    IBCORE_ERRNO_MAP(XX)
#undef XX
};

/* A description of err (IBCORE_*, IBW_* or libuv codes); never NULL. */
const char *ibcore_strerror(int err);
const char *ibcore_err_name(int err);

/* ---------------------------------------------------------------------------------------------
 * Log: one process-wide sink for the core's JSON lines: every breaker telemetry event (the
 * registry's callback gets them too) and the pool's own events ("retry", "retired",
 * "zombie_closed", "suspend"). The default sink writes each line to stderr when its level is at
 * or above $IBCORE_LOG_LEVEL (error, warn, info, debug, off; default warn: breaker openings,
 * expired half-open leases, suspends and zombies show, routine transitions do not).
 */
enum ibcore_log_level { IBCORE_LOG_ERROR, IBCORE_LOG_WARN, IBCORE_LOG_INFO, IBCORE_LOG_DEBUG };

typedef void (*ibcore_log_fn)(enum ibcore_log_level level, const char *json, void *data);

/* Replaces the sink (fn NULL: the core logs nothing). json lives during the call. */
void ibcore_log_set(ibcore_log_fn fn, void *data);
/* The sink in place now (NULL fn: none), e.g. to restore it after capturing the log. */
void ibcore_log_get(ibcore_log_fn *fn, void **data);
/* Back to the default stderr sink ($IBCORE_LOG_LEVEL is read again). */
void ibcore_log_default(void);
const char *ibcore_log_level_name(enum ibcore_log_level level);

/* ---------------------------------------------------------------------------------------------
 * Backoff: full jitter, U(0, min(cap, base * 2^attempt)), seeded, with a retry budget.
 */
struct ibcore_backoff {
    uint64_t base_ms; /* 1000 */
    uint64_t cap_ms;  /* 60000 */
    unsigned budget;  /* retries allowed; 0 = unlimited */
    unsigned attempt; /* retries handed out so far */
    uint64_t rng;     /* splitmix64 state */
};

void ibcore_backoff_init(struct ibcore_backoff *b, uint64_t base_ms, uint64_t cap_ms,
                         unsigned budget, uint64_t seed);
/* The next wait in ms, or IBCORE_EBUDGET when the budget is spent. */
int64_t ibcore_backoff_next(struct ibcore_backoff *b);
/* Back to attempt 0 (after a success). */
void ibcore_backoff_reset(struct ibcore_backoff *b);
/* False for errors a retry cannot fix: IBCORE_EBREAKER, IBCORE_ESHUTDOWN, UV_ECANCELED,
 * UV_EINVAL and other configuration errors. True for timeouts, refusals, resets, 326... */
bool ibcore_error_retryable(int err);

/* ---------------------------------------------------------------------------------------------
 * Circuit breaker, one per gateway endpoint, shared by everything in the process that talks to
 * that endpoint (get it from an ibcore_breakers registry, never build one per call).
 */
enum ibcore_breaker_state {
    IBCORE_BREAKER_CLOSED,
    IBCORE_BREAKER_OPEN,
    IBCORE_BREAKER_HALF_OPEN,
    IBCORE_BREAKER_FORCED_OPEN, /* maintenance window: nothing passes until reset */
    IBCORE_BREAKER_DISABLED,    /* everything passes; transitions are still counted */
};

const char *ibcore_breaker_state_name(enum ibcore_breaker_state s);

struct ibcore_breaker_config {
    unsigned failure_threshold; /* consecutive failures that open it (5) */
    uint64_t open_ms;           /* first open period (60000) */
    uint64_t max_open_ms;       /* open period grows x2 with jitter up to this; 0 = fixed */
    uint64_t lease_ms;          /* a half-open probe not reported within this counts as a
                                 * failure (e.g. connect timeout + a margin; 35000) */
    uint64_t seed;              /* for the open-period jitter */
};

void ibcore_breaker_config_init(struct ibcore_breaker_config *cfg);

/* Telemetry: one JSON object per event, e.g. {"metric":"breaker","event":"transition",
 * "endpoint":"127.0.0.1:4002","from":"closed","to":"open","consecutive_failures":5,
 * "mono_ms":123,"wall":"2026-11-25T18:30:00.123Z"}. The string lives during the call. */
typedef void (*ibcore_telemetry_cb)(const char *json, void *data);

struct ibcore_breakers; /* the process-wide registry */
struct ibcore_breaker;

struct ibcore_breakers *ibcore_breakers_new(uv_loop_t *loop,
                                            const struct ibcore_breaker_config *cfg,
                                            ibcore_telemetry_cb cb, void *data);
/* Closes every breaker's lease timer; frees in the last close callback, then cb(data). */
void ibcore_breakers_close(struct ibcore_breakers *r, void (*cb)(void *data), void *data);
/* The breaker for host:port (created on first use). NULL only when out of memory. */
struct ibcore_breaker *ibcore_breakers_get(struct ibcore_breakers *r, const char *host, int port);

/* A permission to try the gateway. Report its outcome exactly once. */
struct ibcore_permit {
    struct ibcore_breaker *breaker;
    uint64_t token; /* identifies the half-open lease; 0 for a normal (closed) permit */
};

/* 0 and *p filled: go ahead (when the breaker is half-open, this is THE probe). IBCORE_EBREAKER:
 * open (or forced open, or half-open with its one probe out); no connect() may be tried. */
int ibcore_breaker_acquire(struct ibcore_breaker *b, struct ibcore_permit *p);
/* The outcome of the attempt p allowed. A report for an expired lease is ignored. */
void ibcore_breaker_report(struct ibcore_permit *p, bool success);
enum ibcore_breaker_state ibcore_breaker_state(const struct ibcore_breaker *b);
unsigned ibcore_breaker_failures(const struct ibcore_breaker *b); /* consecutive */
/* Maintenance: force open (nothing passes) / disable (everything passes) / back to closed. */
void ibcore_breaker_force_open(struct ibcore_breaker *b);
void ibcore_breaker_disable(struct ibcore_breaker *b);
void ibcore_breaker_reset(struct ibcore_breaker *b);
/* ms until an open breaker lets a probe through (0 when not open). */
uint64_t ibcore_breaker_retry_in_ms(const struct ibcore_breaker *b);

/* ---------------------------------------------------------------------------------------------
 * Cross-process handshake lock: flock(LOCK_EX|LOCK_NB) retried on a timer until the deadline
 * (never a blocking call, never SIGALRM). File: $IBKR_LOCK_FILE_PATH or /tmp/ibkr_connect.lock,
 * opened O_CREAT|O_RDWR|O_CLOEXEC|O_NOFOLLOW, mode 0600; the holder writes its pid and start
 * time into it. Default wait: $IBKR_LOCK_TIMEOUT seconds or 30 s (the caller's deadline wins
 * when earlier). The kernel releases it if the process dies.
 */
struct ibcore_hslock;
typedef void (*ibcore_hslock_cb)(struct ibcore_hslock *lock, int status, void *data);

/* path NULL: the environment/default. On success cb(lock, 0, data): the lock is held until
 * ibcore_hslock_release(lock). On failure cb(NULL, err, data) with IBCORE_ELOCK (the deadline
 * passed while another process held it) or a negative errno (the file could not be opened):
 * nothing is held. */
int ibcore_hslock_acquire(uv_loop_t *loop, const char *path, uint64_t deadline_ms,
                          ibcore_hslock_cb cb, void *data);
/* Unlocks, closes the file, frees (the object is gone after this returns). NULL is a no-op. */
void ibcore_hslock_release(struct ibcore_hslock *lock);
/* Shutdown: completes every pending acquire on loop started with this cb and data, before it
 * returns, with cb(NULL, UV_ECANCELED, data); nothing is held afterwards. Returns how many. */
int ibcore_hslock_cancel(uv_loop_t *loop, ibcore_hslock_cb cb, void *data);
/* The path acquire uses with path NULL, and the default wait in ms. */
const char *ibcore_hslock_default_path(void);
uint64_t ibcore_hslock_default_timeout_ms(void);

/* ---------------------------------------------------------------------------------------------
 * Zombies: CLOSE_WAIT sockets to the gateway port, from /proc/net/tcp and /proc/net/tcp6.
 */
struct ibcore_zombies {
    unsigned own;                 /* this process's (via /proc/self/fd) */
    unsigned foreign;             /* other processes' (or unattributable) */
    unsigned long own_inodes[64]; /* the first 64 own socket inodes */
};

/* Scans for CLOSE_WAIT sockets whose remote port is exactly port. 0 or a negative errno. */
int ibcore_zombie_scan(int port, struct ibcore_zombies *z);
/* True when fd is one of the own CLOSE_WAIT sockets z found (by inode). */
bool ibcore_zombie_fd_is(const struct ibcore_zombies *z, int fd);

/* ---------------------------------------------------------------------------------------------
 * Connection: TCP connect -> "API\0" + version range -> server version -> START_API ->
 * nextValidId and managedAccounts (ready), all within one deadline; then requests.
 */
struct ibcore_conn;

struct ibcore_conn_opts {
    const char *host; /* numeric IPv4/IPv6 */
    int port;
    int client_id;
    int min_version;             /* 100 */
    int max_version;             /* 178 */
    const char *connect_options; /* "" or e.g. "+PACEAPI" */
};

void ibcore_conn_opts_init(struct ibcore_conn_opts *o);

typedef void (*ibcore_conn_cb)(struct ibcore_conn *c, int status, void *data);
/* An error/notice frame (4) from the gateway: id -1 for connection notices (1100, 2104...). */
typedef void (*ibcore_notice_cb)(struct ibcore_conn *c, int id, int code, const char *text,
                                 void *data);

/* Allocates a connection object (nothing happens until connect). NULL when out of memory. */
struct ibcore_conn *ibcore_conn_new(uv_loop_t *loop);

/* Connects and waits for ready before deadline_ms. cb(c, 0) when ready; otherwise cb(c, err):
 * UV_ETIMEDOUT (the deadline passed in any step), UV_ECONNREFUSED, UV_ECONNRESET,
 * IBCORE_ECLIENTID (error 326), IBCORE_ENOTREADY (the gateway closed before ready: at once,
 * without waiting for the deadline), IBCORE_EVERSION, IBCORE_EPROTO. After a failure the
 * connection is closed (ibcore_conn_close() still frees it). */
int ibcore_conn_connect(struct ibcore_conn *c, const struct ibcore_conn_opts *o,
                        uint64_t deadline_ms, ibcore_conn_cb cb, void *data);

void ibcore_conn_on_notice(struct ibcore_conn *c, ibcore_notice_cb cb, void *data);

bool ibcore_conn_is_ready(const struct ibcore_conn *c);
/* A request timed out: its late answer could be taken for another's. Never reuse it. */
bool ibcore_conn_is_poisoned(const struct ibcore_conn *c);
int ibcore_conn_server_version(const struct ibcore_conn *c);
int ibcore_conn_client_id(const struct ibcore_conn *c);
int64_t ibcore_conn_next_valid_id(const struct ibcore_conn *c);
const char *ibcore_conn_accounts(const struct ibcore_conn *c); /* "DU1,DU2" */
/* uv_now() of the last frame received (0 = none): the alive window's input. */
uint64_t ibcore_conn_last_rx_ms(const struct ibcore_conn *c);
int ibcore_conn_fd(const struct ibcore_conn *c); /* -1 when not connected */
/* True when the gateway has already closed or reset the connection but the loop has not read
 * that yet (a FIN or RST waiting in the kernel, possibly behind unread data), or when it is not
 * connected. One poll(2) with a zero timeout: it never blocks and reads nothing. */
bool ibcore_conn_peer_gone(const struct ibcore_conn *c);

/* A reply predicate: true when payload (one frame, fields NUL-separated) answers the request. */
typedef bool (*ibcore_match_fn)(const uint8_t *payload, size_t len, void *data);
/* payload is the matching frame (valid during the call); NULL with status < 0. */
typedef void (*ibcore_reply_cb)(struct ibcore_conn *c, int status, const uint8_t *payload,
                                size_t len, void *data);

/* Sends frame (one complete frame, length prefix included) and completes on the first
 * inbound frame for which match returns true, or at deadline_ms with UV_ETIMEDOUT, which
 * poisons the connection. Needs a ready connection (else IBCORE_ECLOSED, no callback). */
int ibcore_conn_request(struct ibcore_conn *c, const uint8_t *frame, size_t len,
                        ibcore_match_fn match, void *match_data, uint64_t deadline_ms,
                        ibcore_reply_cb cb, void *data);

typedef void (*ibcore_time_cb)(struct ibcore_conn *c, int status, int64_t epoch_s, void *data);
/* reqCurrentTime (49) -> currentTime (49). IB answers at most one per second: callers space
 * them (the pool's probe does). */
int ibcore_conn_current_time(struct ibcore_conn *c, uint64_t deadline_ms, ibcore_time_cb cb,
                             void *data);

/* Closes (pending connect/requests complete with UV_ECANCELED first), frees in the last close
 * callback, then cb(data) once (cb may be NULL). Safe from inside any callback. */
void ibcore_conn_close(struct ibcore_conn *c, void (*cb)(void *data), void *data);

/* ---------------------------------------------------------------------------------------------
 * Pool: connections to one gateway endpoint, validated before handoff, with client-id
 * preference. A borrower gets a connection for itself alone (it is reserved before it is
 * validated), ready, and alive: trusted when a frame arrived within alive_window_ms, else only
 * after a successful reqCurrentTime probe. A failed probe closes the connection and the acquire
 * goes on (another idle one, or a fresh one) within its own deadline.
 */
struct ibcore_pool;

struct ibcore_pool_config {
    const char *host;              /* "127.0.0.1" (numeric; copied) */
    int port;                      /* 4002 */
    unsigned max_size;             /* live connections at most (connecting ones included): 4 */
    int client_id_first;           /* 1: ids tried are first, first+1, ... */
    unsigned client_id_cap;        /* how many ids: 3 (1..32) */
    uint64_t quarantine_ms;        /* an id refused with 326 is skipped this long: 60000 */
    uint64_t alive_window_ms;      /* trusted without a probe: 2000 (raised to 1000 if lower) */
    uint64_t probe_timeout_ms;     /* reqCurrentTime probe: 3000 (never past the deadline) */
    uint64_t connect_timeout_ms;   /* one connect + handshake: 10000 (never past the deadline) */
    uint64_t idle_timeout_ms;      /* an idle connection is closed after this: 300000 */
    uint64_t health_interval_ms;   /* idle ones are checked this often, +-10%: 60000 (>= 1000) */
    unsigned health_strikes;       /* consecutive failed checks that close one: 3 (a probe that
                                    * timed out poisons the connection: closed at once) */
    bool use_lock;                 /* the handshake lock around connect + handshake: true */
    const char *lock_path;         /* NULL: the lock's environment/default path (copied) */
    uint64_t seed;                 /* jitter of health checks, lifetimes and backoff: 1 */
    uint64_t client_id_pause_ms;   /* wait before the next client id after a 326 or a close
                                    * before ready: 1000 (0: at once) */
    unsigned connect_retries;      /* a connect that failed retryably (refused, reset, timed out
                                    * before the acquire's deadline) is retried this many times
                                    * within the acquire, after a full-jitter backoff: 0 */
    uint64_t backoff_base_ms;      /* the backoff of those retries: U(0, min(cap, base * 2^n)): */
    uint64_t backoff_cap_ms;       /* 1000 and 60000 */
    uint64_t max_lifetime_ms;      /* a connection older than this (less up to 2.5 % jitter) is
                                    * closed when idle or released, never while lent: 0 = never */
    uint64_t suspend_threshold_ms; /* when the machine slept this long or longer (CLOCK_BOOTTIME
                                    * vs CLOCK_MONOTONIC), every idle connection is probed
                                    * before it is handed out again: 5000 (0: off) */
};

void ibcore_pool_config_init(struct ibcore_pool_config *cfg);

/* Counts, from the pool's live state (none is ever negative; all 0 after close except the
 * cumulative ones). live = connecting + validating + idle + in_use <= max_size. */
struct ibcore_pool_stats {
    unsigned live, connecting, validating, idle, in_use;
    unsigned pending;        /* acquires not completed yet */
    uint64_t created;        /* connections that became ready */
    uint64_t closed;         /* of those, closed since */
    uint64_t probes;         /* reqCurrentTime probes sent (acquire and health) */
    uint64_t probe_failures; /* probes that failed or timed out */
    uint64_t retries;        /* connect retries after a backoff */
    uint64_t retired;        /* connections closed for their max lifetime */
    uint64_t zombies_closed; /* own connections found in CLOSE_WAIT and closed */
    uint64_t suspends;       /* suspends detected */
};

/* A pool for cfg (copied). registry: the process-wide breakers (the endpoint's breaker is
 * shared with everything else using it); NULL: the pool makes a private one with defaults.
 * NULL on a bad config (no host, port outside 1..65535, max_size 0, client_id_cap outside
 * 1..32, client_id_first < 0, health_strikes 0) or out of memory. */
struct ibcore_pool *ibcore_pool_new(uv_loop_t *loop, const struct ibcore_pool_config *cfg,
                                    struct ibcore_breakers *registry);

typedef void (*ibcore_acquire_cb)(struct ibcore_conn *conn, int status, void *data);

/* Hands out a validated connection before deadline_ms (absolute, uv_now()): cb(conn, 0) and
 * conn is lent to the caller until ibcore_pool_release() (never ibcore_conn_close() it: the
 * pool closes a dead one on release). Else cb(NULL, err): UV_ETIMEDOUT,
 * IBCORE_EBREAKER (open: nothing was tried), IBCORE_ESHUTDOWN (the pool closed),
 * IBCORE_EIDSEXHAUSTED (every client id refused with 326 or closed before ready),
 * IBCORE_ECLIENTID / IBCORE_ENOTREADY (an id was refused and the pause before the next one
 * would pass the deadline), the connect error (UV_ECONNREFUSED, UV_ECONNRESET, ...: the client
 * id never advances on these; retried after a backoff when connect_retries allows and the wait
 * ends before the deadline, else returned at once),
 * IBCORE_ELOCK (the handshake lock's own timeout), UV_ENOMEM. Waiters are served FIFO.
 * Returns UV_EINVAL (cb NULL) or IBCORE_ESHUTDOWN (closing) without calling back. */
int ibcore_pool_acquire(struct ibcore_pool *pool, uint64_t deadline_ms, ibcore_acquire_cb cb,
                        void *data);

/* Gives a lent connection back (closed instead when it is no longer ready or is poisoned).
 * 0; UV_EINVAL when conn is not lent by this pool (a second release, a foreign one);
 * IBCORE_ESHUTDOWN while closing. */
int ibcore_pool_release(struct ibcore_pool *pool, struct ibcore_conn *conn);

void ibcore_pool_stats(const struct ibcore_pool *pool, struct ibcore_pool_stats *st);

/* Scans /proc/net/tcp{,6} for this process's CLOSE_WAIT sockets to the pool's port and closes
 * the pool's own connections among them (idle or being validated; a lent one is the borrower's
 * until released). Health ticks do this too. Never touches another socket, never signals.
 * Returns how many it closed. */
unsigned ibcore_pool_close_zombies(struct ibcore_pool *pool);

/* Completes every pending acquire with IBCORE_ESHUTDOWN (inside this call), closes every
 * connection (lent ones too: a borrower must not use or release them after this), frees the
 * pool in its last close callback, then cb(data) once (cb may be NULL). Safe from inside an
 * acquire callback; a second call is a no-op. */
void ibcore_pool_close(struct ibcore_pool *pool, void (*cb)(void *data), void *data);

/* ---------------------------------------------------------------------------------------------
 * Status: a 0..100 score from the pool's live state (never from which features exist), each
 * component beside the total (anchors-resilience.md section 9):
 *  breaker      30  closed 30, disabled 15 (nothing is protected), half-open 10, open/forced 0
 *  connectivity 25  25 * healthy / wanted, rounded down: healthy = live connections that are
 *                   ready, not poisoned and whose last validation (handshake or probe) passed;
 *                   wanted = max(1, live + acquires waiting in the queue)
 *  probe_health 20  20 * successes / probes over the last 20 probes (none yet: 20)
 *  latency      10  p95 of those probes (a failed one counts as probe_timeout_ms): 10 up to
 *                   probe_timeout_ms / 3, linear to 0 at probe_timeout_ms (none yet: 10)
 *  zombies      10  CLOSE_WAIT sockets to the pool's port: none 10, only foreign 5, any of
 *                   this process's 0 (scan failed: 5)
 *  client_id     5  a ready connection on client_id_first 5, only on fallback ids 3, none 0
 * total = the sum, except 0 when breaker and connectivity are both 0 (open, nothing healthy).
 */
struct ibcore_score {
    unsigned total; /* 0..100 */
    unsigned breaker, connectivity, probe_health, latency, zombies, client_id;
};

/* Fills out from the live state (scans /proc for zombies). 0, or UV_EINVAL (NULL args). */
int ibcore_pool_score(struct ibcore_pool *pool, struct ibcore_score *out);
/* A JSON object: "score" (total and components), "endpoint", "breaker" (state,
 * consecutive_failures, retry_in_ms), "pool" (the ibcore_pool_stats counters), "client_ids"
 * (first, cap, in_use, quarantined), "validation" (alive_window_ms, probe_timeout_ms, probes,
 * probe_failures, window: the last 20 probes oldest first, p95_ms), "idle_gc",
 * "zombies" (own, foreign, scan), "lock" (path, enabled). malloc'd (free() it); NULL on OOM. */
char *ibcore_pool_status_json(struct ibcore_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* IBCORE_H */
