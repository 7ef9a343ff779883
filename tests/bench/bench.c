/* mgw_bench: measures mockgw against a minimal reference server on loopback.
 *
 * This process is the client side: one libuv loop, single-threaded, every wait bounded by a
 * uv_timer. It starts two servers as child processes: mockgw, and itself re-executed with
 * --reference-server, a libuv server that answers the handshake, START_API and reqIds with
 * precomputed bytes and does nothing else ("the loopback limit"). Each workload runs first
 * against the reference, then against mockgw, with the same client code:
 *   churn   16 connections, each looping connect, handshake, START_API, 5 reqIds, close
 *   rtt     reqIds -> nextValidId round trips, one outstanding per connection, on 1 and 32
 *   mass    N handshaken clients at once (at most 512 connecting), then the servers' RSS
 *   faults  churn, rtt-1 and rtt-32 against the reference and three more mockgw processes: no
 *           script, 100 armed rules that never fire, and 100 of which the last fires on every
 *           reqIds: the cost of the fault engine (see bench_faults)
 *   proxy   churn, rtt-1 and rtt-32 against a mockgw directly and through a second mockgw
 *           running --upstream in front of it; rtt-1 again with an upstream that takes 1 ms to
 *           answer: the latency proxy mode adds (see bench_proxy)
 * A churn or rtt measurement is split into rounds alternating reference and mockgw (the table
 * shows the median round), and the client and the servers are pinned to two different CPUs:
 * on a small shared machine both matter more than anything the servers do.
 *
 * Exit status: 0 when every workload ran (a missed target is not a failure), 1 on a bench
 * failure (connection error, step timeout, a server that died or did not exit 0), 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "ibwire.h"

#define EXIT_FAILED 1
#define EXIT_USAGE  2

#define STEP_TIMEOUT_MS   5000u  /* one client step: connect, or waiting for one reply */
#define READY_TIMEOUT_MS  10000u /* a server printing its ready line */
#define EXIT_TIMEOUT_MS   5000u  /* a server exiting after SIGTERM */
#define SETTLE_TIMEOUT_MS 10000u /* a server closing its side once the mass clients are gone */
#define STUCK_SLACK_MS    60000u /* backstop on a whole phase, beyond its own step deadlines */
#define SWEEP_MS          100u   /* how often step deadlines are checked */
#define POLL_MS           20u    /* how often /proc is polled while waiting for a server */
#define CHURN_CONNS       16u
#define CHURN_REQS        5
#define RTT_WIDE_CONNS    32u
#define MASS_IN_FLIGHT    512u
#define MASS_FD_SLACK     100u
#define MAX_ROUNDS        20u
#define MIN_WINDOW_MS     200u        /* shortest round */
#define IN_CAP            (64u << 10) /* unparsed bytes one connection may hold */
#define HELLO_MIN_VERSION 157
#define HELLO_MAX_VERSION 178
#define SERVER_VERSION    178
#define CONN_TIME         "20240115 10:15:30 EST"
#define MASS_RSS_MAX_MIB  64.0
#define MIB               (1024.0 * 1024.0)
#define FAULT_RULES       100u /* armed rules in the faults measurement */
#define FAULT_SHARE_NUM   2u   /* in the default run, faults get 2/5 of --duration-s per server */
#define FAULT_SHARE_DEN   5u   /* and workload: about 25 s for 4 servers x 3 workloads */

/* ---------------------------------------------------------------------------------------------
 * Shared by both sides: the read buffer, buffered frame input, writes
 */

/* Every read lands here and is parsed at once; only an incomplete tail is copied into the
 * connection's own buffer. One process, one thread: the next alloc_cb comes after read_cb. */
static char read_buf[64u << 10];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

struct inbuf {
    uint8_t *data; /* bytes kept from earlier reads: an incomplete frame */
    size_t len;
    size_t cap; /* grows up to IN_CAP */
};

/* Consumes one unit (handshake or frame) from p[0..n): returns its size, 0 if incomplete, or
 * < 0 to stop feeding (the owner has already closed the connection or failed the run). */
typedef ssize_t (*consume_fn)(void *ctx, const uint8_t *p, size_t n);

static int inbuf_reserve(struct inbuf *in, size_t need)
{
    size_t cap = in->cap ? in->cap : 256;
    uint8_t *p;

    if (need > IN_CAP)
        return UV_ENOBUFS;
    while (cap < need)
        cap *= 2;
    if (cap <= in->cap)
        return 0;
    p = realloc(in->data, cap);
    if (!p)
        return UV_ENOMEM;
    in->data = p;
    in->cap = cap;
    return 0;
}

/* Hands every complete unit of (kept bytes + p[0..n)) to fn and keeps the incomplete tail.
 * Returns 0; 1 if fn stopped the feed; UV_ENOBUFS over IN_CAP pending bytes, or UV_ENOMEM. */
static int inbuf_feed(struct inbuf *in, const uint8_t *p, size_t n, consume_fn fn, void *ctx)
{
    const uint8_t *src = p;
    size_t len = n, off = 0;
    int rc;

    if (in->len > 0) {
        rc = inbuf_reserve(in, in->len + n);
        if (rc < 0)
            return rc;
        memcpy(in->data + in->len, p, n);
        src = in->data;
        len = in->len + n;
    }
    while (off < len) {
        ssize_t k = fn(ctx, src + off, len - off);

        if (k < 0) {
            in->len = 0;
            return 1;
        }
        if (k == 0)
            break;
        off += (size_t)k;
    }
    if (src == in->data) {
        memmove(in->data, in->data + off, len - off);
        in->len = len - off;
        return 0;
    }
    if (off < len) {
        rc = inbuf_reserve(in, len - off);
        if (rc < 0)
            return rc;
        memcpy(in->data, src + off, len - off);
        in->len = len - off;
    }
    return 0;
}

struct send_req {
    uv_write_t req; /* first: the write callback frees the whole block */
    char data[];
};

/* Writes p[0..len) in order: directly when the socket takes it (the common case: small
 * messages, empty queue), else queues a copy of the rest. cb runs only for a queued copy and
 * must free(req). Returns 0 or a libuv error. */
static int stream_send(uv_stream_t *s, uint8_t *p, size_t len, uv_write_cb cb)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned int)len);
    struct send_req *w;
    int n = uv_try_write(s, &b, 1);

    if (n >= 0 && (size_t)n == len)
        return 0;
    if (n < 0 && n != UV_EAGAIN)
        return n;
    if (n < 0)
        n = 0;
    w = malloc(sizeof *w + (len - (size_t)n));
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, p + n, len - (size_t)n);
    b = uv_buf_init(w->data, (unsigned int)(len - (size_t)n));
    n = uv_write(&w->req, s, &b, 1, cb);
    if (n < 0) {
        free(w);
        return n;
    }
    return 0;
}

static bool is_wire_err(int code)
{
    return code <= -5100 && code > -5200;
}

static const char *err_name(int code)
{
    return is_wire_err(code) ? ibw_err_name(code) : uv_err_name(code);
}

static const char *err_text(int code)
{
    return is_wire_err(code) ? ibw_strerror(code) : uv_strerror(code);
}

/* Whole-string unsigned decimal in [min, max]. */
static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    return ibw_parse_u64(s, strlen(s), min, max, out);
}

/* ---------------------------------------------------------------------------------------------
 * The reference server (child process): precomputed answers, proper framing, nothing else
 */
struct ref_conn {
    uv_tcp_t tcp;
    struct inbuf in;
    bool has_hello;
    bool is_closing;
};

static uint8_t ref_version[64], ref_burst[512], ref_next_id[32];
static size_t ref_version_len, ref_burst_len, ref_next_id_len;

static int ref_encode(void)
{
    struct ibw_writer w;

    ibw_writer_init(&w, ref_version, sizeof ref_version);
    if (ibw_enc_server_version(&w, SERVER_VERSION, CONN_TIME) < 0)
        return -1;
    ref_version_len = w.len;

    ibw_writer_init(&w, ref_burst, sizeof ref_burst);
    ibw_enc_managed_accounts(&w, SERVER_VERSION, "DU1234567");
    ibw_enc_next_valid_id(&w, SERVER_VERSION, 1);
    ibw_enc_error(&w, SERVER_VERSION, -1, 2104, "Market data farm connection is OK:usfarm", NULL,
                  0);
    ibw_enc_error(&w, SERVER_VERSION, -1, 2106, "HMDS data farm connection is OK:ushmds", NULL, 0);
    if (ibw_enc_error(&w, SERVER_VERSION, -1, 2158, "Sec-def data farm connection is OK:secdefnj",
                      NULL, 0) < 0)
        return -1;
    ref_burst_len = w.len;

    ibw_writer_init(&w, ref_next_id, sizeof ref_next_id);
    if (ibw_enc_next_valid_id(&w, SERVER_VERSION, 1) < 0)
        return -1;
    ref_next_id_len = w.len;
    return 0;
}

static void ref_on_closed(uv_handle_t *h)
{
    struct ref_conn *c = h->data;

    free(c->in.data);
    free(c);
}

static void ref_close(struct ref_conn *c)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    uv_close((uv_handle_t *)&c->tcp, ref_on_closed);
}

static void ref_on_sent(uv_write_t *req, int status)
{
    struct ref_conn *c = req->handle->data;

    free(req);
    if (status < 0 && status != UV_ECANCELED)
        ref_close(c);
}

static int ref_send(struct ref_conn *c, uint8_t *p, size_t len)
{
    int rc = stream_send((uv_stream_t *)&c->tcp, p, len, ref_on_sent);

    if (rc < 0)
        ref_close(c);
    return rc;
}

static ssize_t ref_consume(void *ctx, const uint8_t *p, size_t n)
{
    struct ref_conn *c = ctx;
    struct ibw_reader r;
    struct ibw_frame f;
    ssize_t k;
    int id;

    if (!c->has_hello) {
        struct ibw_hello h;

        k = ibw_hello_parse(p, n, &h);
        if (k > 0) {
            c->has_hello = true;
            if (ref_send(c, ref_version, ref_version_len) < 0)
                return -1;
        }
    } else {
        k = ibw_frame_parse(p, n, IN_CAP - 4, &f);
        if (k > 0) {
            ibw_reader_init(&r, f.payload, f.len);
            if (ibw_read_msg_id(&r, &id) < 0)
                id = -1;
            if (id == IBW_OUT_START_API && ref_send(c, ref_burst, ref_burst_len) < 0)
                return -1;
            if (id == IBW_OUT_REQ_IDS && ref_send(c, ref_next_id, ref_next_id_len) < 0)
                return -1;
        }
    }
    if (k < 0)
        ref_close(c);
    return k;
}

static void ref_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ref_conn *c = s->data;

    if (nread == 0 || c->is_closing)
        return;
    if (nread < 0 ||
        inbuf_feed(&c->in, (const uint8_t *)buf->base, (size_t)nread, ref_consume, c) < 0)
        ref_close(c);
}

static void ref_on_connection(uv_stream_t *listener, int status)
{
    struct ref_conn *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(listener->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        ref_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, ref_on_read) < 0)
        ref_close(c);
}

static void ref_close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h->data)
        ref_close(h->data);
    else
        uv_close(h, NULL);
}

static void ref_on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_walk(sig->loop, ref_close_any, NULL);
}

/* Runs until SIGTERM/SIGINT; prints "reference ready api=127.0.0.1:PORT admin=off". */
static int reference_main(void)
{
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    struct sockaddr_storage ss;
    struct sockaddr_in addr;
    int len = sizeof ss, rc;

    signal(SIGPIPE, SIG_IGN);
    if (ref_encode() < 0) {
        fprintf(stderr, "mgw_bench reference: cannot encode the precomputed replies\n");
        return EXIT_FAILED;
    }
    uv_loop_init(&loop);
    uv_signal_init(&loop, &sigterm);
    uv_signal_init(&loop, &sigint);
    uv_signal_start(&sigterm, ref_on_signal, SIGTERM);
    uv_signal_start(&sigint, ref_on_signal, SIGINT);
    uv_tcp_init(&loop, &listener);
    listener.data = NULL;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    rc = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&listener, 4096, ref_on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
    if (rc < 0) {
        fprintf(stderr, "mgw_bench reference: listen on 127.0.0.1:0: %s\n", uv_err_name(rc));
        uv_walk(&loop, ref_close_any, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return EXIT_FAILED;
    }
    printf("reference ready api=127.0.0.1:%d admin=off\n",
           ntohs(((struct sockaddr_in *)&ss)->sin_port));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : EXIT_FAILED;
}

/* ---------------------------------------------------------------------------------------------
 * Latency histogram: HDR-style, 64 sub-buckets per power of two (<= 1.6 % error), in ns
 */
#define HIST_SUB     64u
#define HIST_BUCKETS (2 * HIST_SUB + 58 * HIST_SUB)

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
};

static unsigned hist_index(uint64_t v)
{
    unsigned msb, shift;

    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - 6u; /* keeps the top 7 bits: 64..127 */
    return (shift + 1u) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The middle of bucket idx, in ns. */
static double hist_value(unsigned idx)
{
    unsigned shift;
    uint64_t low;

    if (idx < 2 * HIST_SUB)
        return (double)idx;
    shift = idx / HIST_SUB - 1u;
    low = (uint64_t)(idx % HIST_SUB + HIST_SUB) << shift;
    return (double)low + (double)(1ull << shift) / 2.0;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->n++;
}

/* The q-quantile (0 < q <= 1) in microseconds; 0 for an empty histogram. */
static double hist_quantile_us(const struct hist *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999), seen = 0;

    if (h->n == 0)
        return 0;
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return hist_value(i) / 1000.0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The bench: servers, runs, connections
 */
struct bench;

struct server {
    struct bench *b;
    const char *name; /* "reference" or "mockgw" */
    uv_process_t proc;
    uv_pipe_t out; /* the child's stdout: the ready line, then discarded */
    char line[256];
    size_t line_len;
    struct sockaddr_in addr;
    int pid;
    bool is_spawned, is_ready, has_exited, is_out_closed, is_proc_closed;
    bool is_exit_reported; /* an early exit was already reported as the failure */
    int64_t exit_status;
    int term_signal;
    char bad_line[64]; /* why the ready line did not parse, or "" */
};

enum workload { WL_CHURN, WL_RTT, WL_MASS };

enum step { ST_CONNECT, ST_VERSION, ST_BURST, ST_REQ, ST_IDLE, ST_CLOSING };

static const char *const STEP_NAMES[] = {
    [ST_CONNECT] = "connect",
    [ST_VERSION] = "wait version reply",
    [ST_BURST] = "wait 15 and 9 after START_API",
    [ST_REQ] = "wait 9 after reqIds",
    [ST_IDLE] = "idle",
    [ST_CLOSING] = "close",
};

struct run;

struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct run *run;
    struct inbuf in;
    unsigned idx;
    enum step step;
    bool is_open; /* tcp initialised, close callback not yet run */
    bool has_accounts, has_next_id;
    int reqs_left;        /* churn: reqIds still to send in this cycle */
    uint64_t sent_ns;     /* uv_hrtime() of the outstanding reqIds */
    uint64_t deadline_ms; /* uv_now() deadline of the current step, 0 = none */
};

struct run {
    struct bench *b;
    struct server *srv;
    enum workload wl;
    const char *label; /* "churn", "rtt-1", "rtt-32", "mass" */
    struct conn *conns;
    unsigned n;
    unsigned open;         /* tcp handles not yet closed */
    unsigned ready;        /* rtt, mass: connections handshaken */
    unsigned next_connect; /* mass: next slot to connect */
    unsigned connecting;   /* mass: connects started, not yet ready */
    unsigned outstanding;  /* reqIds without a reply */
    bool is_stopping;      /* the measurement window is over */
    bool is_failed;
    uint64_t count; /* cycles (churn) or round trips (rtt) inside the window */
    uint64_t t0_ns, t1_ns;
    uint64_t window_ms; /* length of the measurement window */
    struct hist *hist;  /* rtt: latencies, owned by the caller, added to */
};

enum target { T_NONE, T_RATIO_MIN, T_RATIO_MAX, T_MGW_MAX };

/* The servers of the faults measurement, in the order of the table. */
enum fault_srv { FS_REF, FS_NONE, FS_RULES, FS_FIRES, FS_COUNT };

static const char *const FS_NAMES[FS_COUNT] = {
    [FS_REF] = "reference",
    [FS_NONE] = "mockgw no rules",
    [FS_RULES] = "mockgw 100 rules",
    [FS_FIRES] = "mockgw 100 rules, 1 fires",
};
static const char *const FS_KEYS[FS_COUNT] = {
    [FS_REF] = "reference",
    [FS_NONE] = "no_rules",
    [FS_RULES] = "rules_100",
    [FS_FIRES] = "rules_100_one_firing",
};
/* What each one is compared with, and the lowest throughput ratio the issue allows (0: none).
 * FS_NONE against the reference: the engine with no rules is one bitmask test per event
 * (mgw_faults_watch, before any event is built), too small to measure on its own, so "costs
 * <= 5 %" is read as "mockgw with the engine idle stays within 5 % of the loopback limit", a
 * bound on all of mockgw's overhead and hence on the engine's. */
static const int FS_BASE[FS_COUNT] = {
    [FS_REF] = -1, [FS_NONE] = FS_REF, [FS_RULES] = FS_NONE, [FS_FIRES] = FS_NONE
};
static const double FS_LIMIT[FS_COUNT] = { [FS_NONE] = 0.95, [FS_RULES] = 0.85 };

/* The servers of the proxy measurement: two upstreams, each reached directly and through a
 * proxy; the second upstream answers reqIds after PROXY_SLOW_MS, like a gateway that is not
 * on the same machine. */
enum proxy_srv { PX_UP, PX_PROXY, PX_SLOW_UP, PX_SLOW_PROXY, PX_COUNT };

static const char *const PX_NAMES[PX_COUNT] = {
    [PX_UP] = "direct",
    [PX_PROXY] = "proxy",
    [PX_SLOW_UP] = "direct 1 ms",
    [PX_SLOW_PROXY] = "proxy 1 ms",
};
#define PROXY_SLOW_MS     1
#define PROXY_LATENCY_MAX 1.20 /* issue 8: the proxy adds at most 20 % to a round trip */

/* One line of the proxy table: one workload, direct against through the proxy. */
struct prow {
    const char *workload;
    const char *upstream; /* "instant" or "1 ms" */
    double direct_rate, proxy_rate;
    double direct_p50, proxy_p50, direct_p99, proxy_p99; /* us; 0 for churn */
};

/* One line of the faults table: one server on one workload. */
struct frow {
    const char *workload;
    enum fault_srv srv;
    double rate, cpu_us;           /* median round (ops/s), server CPU us per op */
    double base_rate, base_cpu_us; /* the same for FS_BASE[srv]; 0 for the reference */
};

struct row {
    const char *workload;
    const char *metric; /* for the table */
    const char *key;    /* for the JSON */
    double ref, mgw;
    int precision;
    enum target target;
    double limit;
};

struct bench {
    uv_loop_t loop;
    uv_timer_t wait_timer; /* wait_for()'s deadline */
    uv_timer_t tick;       /* wakes wait_for() to poll */
    uv_timer_t sweep;      /* the current run's step deadlines */
    uv_timer_t duration;   /* the current run's measurement window */
    bool is_wait_expired;
    struct run *run;
    struct server ref, mgw;
    int next_client_id;   /* START_API ids: monotonic, never reused */
    uint64_t duration_ms; /* per churn/rtt measurement, all rounds together */
    unsigned rounds;
    unsigned clients;
    int client_cpu, server_cpu; /* -1: not pinned */
    bool is_pinned;
    const char *only, *json_path;
    char *mockgw_path; /* argv[0] of the mockgw child */
    bool has_failed;
    struct row rows[24];
    unsigned n_rows;

    /* faults */
    struct server flt[FS_COUNT - 1]; /* mockgw with no rules, 100 rules, 1 firing */
    char fault_scripts[2][64];       /* their temporary --script files, "" once deleted */
    uint64_t fault_window_ms;        /* one round against one server */
    struct frow frows[3 * FS_COUNT];
    unsigned n_frows;

    /* proxy */
    struct server pxs[PX_COUNT];
    char proxy_script[64]; /* the slow upstream's temporary --script, "" once deleted */
    uint64_t proxy_window_ms;
    struct prow prows[8];
    unsigned n_prows;
};

static uint8_t hello_bytes[64], req_ids_bytes[32];
static size_t hello_len, req_ids_len;

__attribute__((format(printf, 2, 3))) static void bench_fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;

    b->has_failed = true;
    fputs("mgw_bench: FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void add_row(struct bench *b, struct row row)
{
    if (b->n_rows < sizeof b->rows / sizeof b->rows[0])
        b->rows[b->n_rows++] = row;
}

static void on_timer_noop(uv_timer_t *t)
{
    (void)t;
}

static void on_wait_expired(uv_timer_t *t)
{
    struct bench *b = t->data;

    b->is_wait_expired = true;
}

/* Runs the loop until done(arg) or timeout_ms (0 = no deadline of its own; the caller's handles
 * then bound the wait). poll_ms > 0 wakes the loop that often so done() may poll the outside.
 * Returns 0, or UV_ETIMEDOUT. */
static int wait_for(struct bench *b, bool (*done)(void *), void *arg, uint64_t timeout_ms,
                    uint64_t poll_ms)
{
    int rc = 0;

    b->is_wait_expired = false;
    if (timeout_ms > 0)
        uv_timer_start(&b->wait_timer, on_wait_expired, timeout_ms, 0);
    if (poll_ms > 0)
        uv_timer_start(&b->tick, on_timer_noop, poll_ms, poll_ms);
    while (!done(arg)) {
        if (b->is_wait_expired) {
            rc = UV_ETIMEDOUT;
            break;
        }
        uv_run(&b->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&b->wait_timer);
    uv_timer_stop(&b->tick);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Client connections
 */
static void run_close_all(struct run *r);

__attribute__((format(printf, 3, 4))) static void run_fail(struct run *r, int idx, const char *fmt,
                                                           ...)
{
    char msg[384];
    va_list ap;

    if (r->is_failed)
        return;
    r->is_failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (idx >= 0)
        bench_fail(r->b, "%s against %s: conn %d: %s", r->label, r->srv->name, idx, msg);
    else
        bench_fail(r->b, "%s against %s: %s", r->label, r->srv->name, msg);
    run_close_all(r);
}

/* A libuv or wire error on connection c in its current step. */
static void conn_fail(struct conn *c, const char *what, int code)
{
    const char *hint = "";

    if (code == UV_EADDRNOTAVAIL)
        hint = " (ephemeral ports exhausted? see /proc/sys/net/ipv4/ip_local_port_range)";
    else if (code == UV_EMFILE)
        hint = " (descriptor limit: see RLIMIT_NOFILE)";
    run_fail(c->run, (int)c->idx, "step \"%s\": %s: %s (%s)%s", STEP_NAMES[c->step], what,
             err_name(code), err_text(code), hint);
}

/* The server sent something the protocol does not allow here. */
static int conn_fail_proto(struct conn *c, const char *why)
{
    run_fail(c->run, (int)c->idx, "step \"%s\": %s", STEP_NAMES[c->step], why);
    return -1;
}

static void conn_step(struct conn *c, enum step st)
{
    c->step = st;
    if (st == ST_IDLE || st == ST_CLOSING)
        c->deadline_ms = 0;
    else
        c->deadline_ms = uv_now(&c->run->b->loop) + STEP_TIMEOUT_MS;
}

static void conn_start(struct conn *c);

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct run *r = c->run;

    c->is_open = false;
    c->in.len = 0;
    r->open--;
    if (r->wl == WL_CHURN && !r->is_stopping && !r->is_failed)
        conn_start(c);
}

static void conn_close(struct conn *c)
{
    if (!c->is_open || c->step == ST_CLOSING)
        return;
    conn_step(c, ST_CLOSING);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void run_close_all(struct run *r)
{
    for (unsigned i = 0; i < r->n; i++)
        conn_close(&r->conns[i]);
}

static void on_client_sent(uv_write_t *req, int status)
{
    struct conn *c = req->handle->data;

    free(req);
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(c, "write", status);
}

static int conn_send(struct conn *c, uint8_t *p, size_t len, const char *what)
{
    int rc = stream_send((uv_stream_t *)&c->tcp, p, len, on_client_sent);

    if (rc < 0)
        conn_fail(c, what, rc);
    return rc;
}

static int send_req(struct conn *c)
{
    struct run *r = c->run;

    conn_step(c, ST_REQ);
    r->outstanding++;
    c->sent_ns = uv_hrtime();
    return conn_send(c, req_ids_bytes, req_ids_len, "write reqIds");
}

static void mass_fill(struct run *r);

static void on_duration(uv_timer_t *t);

/* Every connection is ready: open the window and put one reqIds in flight on each. */
static void rtt_begin(struct run *r)
{
    uv_update_time(&r->b->loop);
    r->t0_ns = uv_hrtime();
    uv_timer_start(&r->b->duration, on_duration, r->window_ms, 0);
    for (unsigned i = 0; i < r->n && !r->is_failed; i++)
        send_req(&r->conns[i]);
}

/* Both 15 and 9 arrived after START_API: the client is what ib_async calls "ready". */
static int on_ready(struct conn *c)
{
    struct run *r = c->run;

    switch (r->wl) {
    case WL_CHURN:
        c->reqs_left = CHURN_REQS;
        return send_req(c);
    case WL_RTT:
        conn_step(c, ST_IDLE);
        if (++r->ready == r->n)
            rtt_begin(r);
        return r->is_failed ? -1 : 0;
    case WL_MASS:
        conn_step(c, ST_IDLE);
        r->ready++;
        r->connecting--;
        if (r->ready == r->n)
            r->t1_ns = uv_hrtime();
        else
            mass_fill(r);
        return r->is_failed ? -1 : 0;
    }
    return 0;
}

/* The nextValidId answering this connection's reqIds. */
static int on_reply(struct conn *c)
{
    struct run *r = c->run;
    uint64_t now = uv_hrtime();

    r->outstanding--;
    if (r->wl == WL_CHURN) {
        if (--c->reqs_left > 0)
            return send_req(c);
        if (!r->is_stopping)
            r->count++;
        conn_close(c);
        return -1;
    }
    if (r->is_stopping) {
        conn_step(c, ST_IDLE);
        if (r->outstanding == 0)
            run_close_all(r);
        return 0;
    }
    r->count++;
    hist_add(r->hist, now - c->sent_ns);
    return send_req(c);
}

static int on_version(struct conn *c, struct ibw_reader *rd)
{
    struct bench *b = c->run->b;
    struct ibw_writer w;
    uint8_t buf[64];
    const char *conn_time;
    char why[96];
    int version;

    ibw_read_int(rd, &version);
    ibw_read_str(rd, &conn_time);
    if (rd->err || ibw_reader_left(rd) != 0)
        return conn_fail_proto(c, "version reply is not the 2 fields <version>,<time>");
    if (version < HELLO_MIN_VERSION || version > HELLO_MAX_VERSION) {
        snprintf(why, sizeof why, "server version %d outside the offered v%d..%d", version,
                 HELLO_MIN_VERSION, HELLO_MAX_VERSION);
        return conn_fail_proto(c, why);
    }
    ibw_writer_init(&w, buf, sizeof buf);
    if (ibw_enc_start_api(&w, ++b->next_client_id, "") < 0)
        return conn_fail_proto(c, "cannot encode START_API");
    conn_step(c, ST_BURST);
    return conn_send(c, buf, w.len, "write START_API");
}

static int on_error_msg(struct conn *c, struct ibw_reader *rd)
{
    const char *text = "";
    char why[256];
    int version, id, code;

    ibw_read_int(rd, &version);
    ibw_read_int(rd, &id);
    ibw_read_int(rd, &code);
    ibw_read_str(rd, &text);
    if (rd->err)
        return conn_fail_proto(c, "malformed error message (4)");
    if (code >= 2100 && code < 2200) /* farm and connectivity notices */
        return 0;
    snprintf(why, sizeof why, "gateway error %d: %s", code, text);
    return conn_fail_proto(c, why);
}

static int client_on_frame(struct conn *c, const struct ibw_frame *f)
{
    struct ibw_reader rd;
    const char *accounts;
    int id, version, next_id;

    ibw_reader_init(&rd, f->payload, f->len);
    if (c->step == ST_VERSION)
        return on_version(c, &rd);
    if (ibw_read_msg_id(&rd, &id) < 0)
        return conn_fail_proto(c, "message id is not a number");
    switch (id) {
    case IBW_IN_ERR_MSG:
        return on_error_msg(c, &rd);
    case IBW_IN_MANAGED_ACCTS:
        ibw_read_int(&rd, &version);
        ibw_read_str(&rd, &accounts);
        if (rd.err || ibw_reader_left(&rd) != 0 || !*accounts)
            return conn_fail_proto(c, "managedAccounts is not 15,1,<accounts>");
        if (c->step != ST_BURST)
            return 0;
        c->has_accounts = true;
        break;
    case IBW_IN_NEXT_VALID_ID:
        ibw_read_int(&rd, &version);
        ibw_read_int(&rd, &next_id);
        if (rd.err || ibw_reader_left(&rd) != 0)
            return conn_fail_proto(c, "nextValidId is not 9,1,<id>");
        if (c->step == ST_REQ)
            return on_reply(c);
        if (c->step != ST_BURST)
            return conn_fail_proto(c, "nextValidId with no reqIds outstanding");
        c->has_next_id = true;
        break;
    default:
        return 0;
    }
    return c->has_accounts && c->has_next_id ? on_ready(c) : 0;
}

static ssize_t client_consume(void *ctx, const uint8_t *p, size_t n)
{
    struct conn *c = ctx;
    struct ibw_frame f;
    ssize_t k = ibw_frame_parse(p, n, IN_CAP - 4, &f);

    if (k == 0)
        return 0;
    if (k < 0) {
        conn_fail(c, "frame", (int)k);
        return -1;
    }
    if (client_on_frame(c, &f) < 0 || c->step == ST_CLOSING)
        return -1;
    return k;
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    int rc;

    if (nread == 0 || c->step == ST_CLOSING)
        return;
    if (nread < 0) {
        conn_fail(c, nread == UV_EOF ? "server closed the connection" : "read", (int)nread);
        return;
    }
    rc = inbuf_feed(&c->in, (const uint8_t *)buf->base, (size_t)nread, client_consume, c);
    if (rc < 0)
        conn_fail(c, "input buffer", rc);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    int rc;

    if (status == UV_ECANCELED || c->step == ST_CLOSING)
        return;
    if (status < 0) {
        conn_fail(c, "connect", status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1); /* what asyncio (ib_async) does */
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_client_read);
    if (rc < 0) {
        conn_fail(c, "read start", rc);
        return;
    }
    conn_step(c, ST_VERSION);
    conn_send(c, hello_bytes, hello_len, "write handshake");
}

static void conn_start(struct conn *c)
{
    struct run *r = c->run;
    int rc = uv_tcp_init(&r->b->loop, &c->tcp);

    if (rc < 0) {
        run_fail(r, (int)c->idx, "uv_tcp_init: %s", uv_err_name(rc));
        return;
    }
    c->tcp.data = c;
    c->creq.data = c;
    c->is_open = true;
    c->has_accounts = c->has_next_id = false;
    r->open++;
    conn_step(c, ST_CONNECT);
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&r->srv->addr, on_connect);
    if (rc < 0)
        conn_fail(c, "connect", rc);
}

static void mass_fill(struct run *r)
{
    while (!r->is_failed && r->next_connect < r->n && r->connecting < MASS_IN_FLIGHT) {
        r->connecting++;
        conn_start(&r->conns[r->next_connect++]);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Runs: one workload against one server
 */
/* Step deadlines: one repeating timer checks every connection's deadline_ms, instead of a
 * uv_timer per connection restarted on every request (10,000 timers in mass, and a timer-heap
 * update per round trip inside the measured path in rtt). */
static void on_sweep(uv_timer_t *t)
{
    struct bench *b = t->data;
    struct run *r = b->run;
    uint64_t now = uv_now(t->loop);

    if (!r || r->is_failed)
        return;
    if (r->srv->has_exited) {
        r->srv->is_exit_reported = true;
        run_fail(r, -1, "%s exited during the workload (status %" PRId64 ", signal %d)",
                 r->srv->name, r->srv->exit_status, r->srv->term_signal);
        return;
    }
    for (unsigned i = 0; i < r->n; i++) {
        struct conn *c = &r->conns[i];

        if (c->is_open && c->deadline_ms != 0 && now >= c->deadline_ms) {
            run_fail(r, (int)i, "step \"%s\" timed out after %u ms", STEP_NAMES[c->step],
                     STEP_TIMEOUT_MS);
            return;
        }
    }
}

static void on_duration(uv_timer_t *t)
{
    struct bench *b = t->data;
    struct run *r = b->run;

    if (!r || r->is_stopping)
        return;
    r->t1_ns = uv_hrtime();
    r->is_stopping = true;
    if (r->wl == WL_RTT && r->outstanding == 0)
        run_close_all(r);
}

static int run_init(struct run *r, struct bench *b, struct server *s, enum workload wl,
                    const char *label, unsigned n, uint64_t window_ms, struct hist *hist)
{
    memset(r, 0, sizeof *r);
    r->b = b;
    r->srv = s;
    r->wl = wl;
    r->label = label;
    r->n = n;
    r->window_ms = window_ms;
    r->hist = hist;
    r->conns = calloc(n, sizeof *r->conns);
    if (!r->conns) {
        bench_fail(b, "%s: out of memory for %u connections", label, n);
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        r->conns[i].run = r;
        r->conns[i].idx = i;
    }
    b->run = r;
    uv_timer_start(&b->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    return 0;
}

static void run_free(struct run *r)
{
    struct bench *b = r->b;

    uv_timer_stop(&b->sweep);
    uv_timer_stop(&b->duration);
    b->run = NULL;
    for (unsigned i = 0; i < r->n; i++)
        free(r->conns[i].in.data);
    free(r->conns);
}

static bool run_is_closed(void *arg)
{
    struct run *r = arg;

    return r->open == 0 && (r->is_stopping || r->is_failed || r->wl == WL_MASS);
}

/* Waits for every connection of r to close, forcing it if the phase is stuck. */
static int run_wait_closed(struct run *r, uint64_t timeout_ms)
{
    if (wait_for(r->b, run_is_closed, r, timeout_ms, 0) < 0) {
        run_fail(r, -1, "stuck: %u connections still open after %" PRIu64 " ms", r->open,
                 timeout_ms);
        wait_for(r->b, run_is_closed, r, 0, 0); /* closing is local: always completes */
    }
    return r->is_failed ? -1 : 0;
}

static double run_seconds(const struct run *r)
{
    return (double)(r->t1_ns - r->t0_ns) / 1e9;
}

/* The index-th space-separated decimal field of s (0 = the first), or UINT64_MAX. */
static uint64_t nth_number(const char *s, unsigned index)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < index; i++) {
        s += strspn(s, " ");
        s += strcspn(s, " ");
    }
    s += strspn(s, " ");
    if (*s < '0' || *s > '9')
        return UINT64_MAX;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    return v;
}

/* CPU time (user + system) process pid has used so far, in ns: from its CPU-time clock, exact
 * to the ns; else from /proc/<pid>/stat, in clock ticks (10 ms: +-0.5 us per op on a round of
 * 20,000 round trips, as much as the fault engine's cost). */
static int proc_cpu_ns(int pid, uint64_t *ns)
{
    char path[64], buf[1024];
    uint64_t utime, stime;
    const char *p;
    long hz = sysconf(_SC_CLK_TCK);
    clockid_t clock;
    struct timespec ts;
    size_t n;
    FILE *f;

    if (clock_getcpuclockid(pid, &clock) == 0 && clock_gettime(clock, &ts) == 0) {
        *ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        return 0;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -errno;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from the last ")", which
     * is followed by state (field 3); utime and stime are fields 14 and 15. */
    p = strrchr(buf, ')');
    if (!p || hz <= 0)
        return UV_EINVAL;
    utime = nth_number(p + 1, 11);
    stime = nth_number(p + 1, 12);
    if (utime == UINT64_MAX || stime == UINT64_MAX)
        return UV_EINVAL;
    *ns = (utime + stime) * (1000000000u / (uint64_t)hz);
    return 0;
}

/* What the rounds of one measurement add up to, for one server. */
struct tally {
    double rates[MAX_ROUNDS]; /* per round: cycles or round trips per second */
    unsigned n;
    uint64_t ops;    /* cycles or round trips inside the windows */
    uint64_t cpu_ns; /* the server's CPU time over the rounds (whole runs) */
};

/* One round of churn or rtt against s, window_ms long; adds to *t (and rtt latencies to hist).
 * churn: CHURN_CONNS connections looping; rtt: n connections with one reqIds each in flight. */
static int run_round(struct bench *b, struct server *s, enum workload wl, unsigned n,
                     const char *label, uint64_t window_ms, struct hist *hist, struct tally *t)
{
    uint64_t cpu0 = 0, cpu1 = 0;
    struct run r;
    int rc;

    if (proc_cpu_ns(s->pid, &cpu0) < 0) {
        bench_fail(b, "%s: cannot read /proc/%d/stat of %s", label, s->pid, s->name);
        return -1;
    }
    if (run_init(&r, b, s, wl, label, n, window_ms, hist) < 0)
        return -1;
    if (wl == WL_CHURN) { /* rtt opens its window once every connection is ready */
        r.t0_ns = uv_hrtime();
        uv_timer_start(&b->duration, on_duration, window_ms, 0);
    }
    for (unsigned i = 0; i < r.n && !r.is_failed; i++)
        conn_start(&r.conns[i]);
    rc = run_wait_closed(&r, window_ms + STUCK_SLACK_MS);
    if (rc == 0 && proc_cpu_ns(s->pid, &cpu1) < 0) {
        bench_fail(b, "%s: cannot read /proc/%d/stat of %s", label, s->pid, s->name);
        rc = -1;
    }
    if (rc == 0) {
        t->rates[t->n++] = (double)r.count / run_seconds(&r);
        t->ops += r.count;
        t->cpu_ns += cpu1 - cpu0;
    }
    run_free(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Server processes
 */
struct mem {
    double rss_mib, hwm_mib;
};

static int parse_kib_line(const char *s, double *mib)
{
    uint64_t v = 0;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    if (strncmp(s, " kB", 3) != 0)
        return -1;
    *mib = (double)v * 1024.0 / MIB;
    return 0;
}

/* VmRSS and VmHWM of pid from /proc/<pid>/status. */
static int proc_mem(int pid, struct mem *m)
{
    char path[64], line[256];
    unsigned found = 0;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -errno;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0 && parse_kib_line(line + 6, &m->rss_mib) == 0)
            found |= 1;
        else if (strncmp(line, "VmHWM:", 6) == 0 && parse_kib_line(line + 6, &m->hwm_mib) == 0)
            found |= 2;
    }
    fclose(f);
    return found == 3 ? 0 : UV_EINVAL;
}

/* Open descriptors of pid, or < 0. */
static int proc_fd_count(int pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    d = opendir(path);
    if (!d)
        return -errno;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* "<name> ready api=HOST:PORT ..." -> s->addr. */
static int parse_ready_line(struct server *s, const char *line)
{
    const char *api = strstr(line, " ready api=");
    char host[64];
    const char *end, *colon;
    uint64_t port;
    char num[8];
    size_t hlen, plen;

    if (!api)
        return -1;
    api += strlen(" ready api=");
    end = api + strcspn(api, " \r\n");
    colon = NULL;
    for (const char *p = api; p < end; p++)
        if (*p == ':')
            colon = p;
    if (!colon)
        return -1;
    hlen = (size_t)(colon - api);
    plen = (size_t)(end - colon - 1);
    if (hlen == 0 || hlen >= sizeof host || plen == 0 || plen >= sizeof num)
        return -1;
    memcpy(host, api, hlen);
    host[hlen] = '\0';
    memcpy(num, colon + 1, plen);
    num[plen] = '\0';
    if (parse_uint(num, 1, 65535, &port) < 0)
        return -1;
    return uv_ip4_addr(host, (int)port, &s->addr) == 0 ? 0 : -1;
}

static void on_out_closed(uv_handle_t *h)
{
    struct server *s = h->data;

    s->is_out_closed = true;
}

static void on_server_out(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct server *s = stream->data;

    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)stream))
            uv_close((uv_handle_t *)stream, on_out_closed);
        return;
    }
    for (ssize_t i = 0; i < nread && !s->is_ready && !s->bad_line[0]; i++) {
        char ch = buf->base[i];

        if (ch != '\n') {
            if (s->line_len + 1 >= sizeof s->line)
                snprintf(s->bad_line, sizeof s->bad_line, "longer than %zu bytes",
                         sizeof s->line - 1);
            else
                s->line[s->line_len++] = ch;
            continue;
        }
        s->line[s->line_len] = '\0';
        if (parse_ready_line(s, s->line) == 0)
            s->is_ready = true;
        else
            snprintf(s->bad_line, sizeof s->bad_line, "not \"<name> ready api=HOST:PORT ...\"");
    }
}

static void on_server_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
    struct server *s = proc->data;

    s->has_exited = true;
    s->exit_status = exit_status;
    s->term_signal = term_signal;
}

static bool server_is_started(void *arg)
{
    struct server *s = arg;

    return s->is_ready || s->has_exited || s->bad_line[0];
}

static int server_start(struct bench *b, struct server *s, const char *name, char **argv)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    int rc;

    s->b = b;
    s->name = name;
    uv_pipe_init(&b->loop, &s->out, 0);
    s->out.data = s;
    s->proc.data = s;
    memset(&o, 0, sizeof o);
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&s->out;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    o.file = argv[0];
    o.args = argv;
    o.exit_cb = on_server_exit;
    o.stdio = stdio;
    o.stdio_count = 3;
    s->is_spawned = true; /* the handle is initialised even when the spawn fails */
    rc = uv_spawn(&b->loop, &s->proc, &o);
    if (rc < 0) {
        s->has_exited = s->is_exit_reported = true;
        bench_fail(b, "%s: cannot start %s: %s (%s)", name, argv[0], uv_err_name(rc),
                   uv_strerror(rc));
        return -1;
    }
    s->pid = s->proc.pid;
    if (b->server_cpu >= 0) {
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(b->server_cpu, &set);
        if (sched_setaffinity(s->pid, sizeof set, &set) != 0)
            fprintf(stderr, "mgw_bench: warning: cannot pin %s to cpu %d: %s\n", name,
                    b->server_cpu, strerror(errno));
    }
    rc = uv_read_start((uv_stream_t *)&s->out, on_alloc, on_server_out);
    if (rc < 0) {
        bench_fail(b, "%s: reading its stdout: %s", name, uv_err_name(rc));
        return -1;
    }
    if (wait_for(b, server_is_started, s, READY_TIMEOUT_MS, 0) < 0) {
        bench_fail(b, "%s (pid %d) printed no ready line within %u ms", name, s->pid,
                   READY_TIMEOUT_MS);
        return -1;
    }
    if (s->bad_line[0]) {
        bench_fail(b, "%s (pid %d): ready line %s: \"%s\"", name, s->pid, s->bad_line, s->line);
        return -1;
    }
    if (!s->is_ready) {
        s->is_exit_reported = true;
        bench_fail(b, "%s (pid %d) exited before it was ready (status %" PRId64 ", signal %d)",
                   name, s->pid, s->exit_status, s->term_signal);
        return -1;
    }
    fprintf(stderr, "mgw_bench: %s pid %d listening on 127.0.0.1:%d\n", name, s->pid,
            ntohs(s->addr.sin_port));
    return 0;
}

static bool server_is_gone(void *arg)
{
    struct server *s = arg;

    return s->has_exited && s->is_out_closed;
}

static void on_proc_closed(uv_handle_t *h)
{
    struct server *s = h->data;

    s->is_proc_closed = true;
}

/* SIGTERM to our own child (by its handle), then wait; it must exit 0. */
static int server_stop(struct bench *b, struct server *s)
{
    int rc = 0;

    if (!s->is_spawned)
        return 0;
    if (s->has_exited) {
        if (!s->is_exit_reported) {
            bench_fail(b, "%s (pid %d) had exited on its own (status %" PRId64 ", signal %d)",
                       s->name, s->pid, s->exit_status, s->term_signal);
        }
        rc = -1;
    } else {
        uv_process_kill(&s->proc, SIGTERM);
        if (wait_for(b, server_is_gone, s, EXIT_TIMEOUT_MS, 0) < 0 && !s->has_exited) {
            bench_fail(b, "%s (pid %d) did not exit within %u ms of SIGTERM; sending SIGKILL",
                       s->name, s->pid, EXIT_TIMEOUT_MS);
            uv_process_kill(&s->proc, SIGKILL);
            wait_for(b, server_is_gone, s, EXIT_TIMEOUT_MS, 0);
            rc = -1;
        } else if (s->exit_status != 0 || s->term_signal != 0) {
            bench_fail(b,
                       "%s (pid %d) exited with status %" PRId64 ", signal %d (expected "
                       "status 0 after SIGTERM)",
                       s->name, s->pid, s->exit_status, s->term_signal);
            rc = -1;
        }
    }
    if (!uv_is_closing((uv_handle_t *)&s->out))
        uv_close((uv_handle_t *)&s->out, on_out_closed);
    uv_close((uv_handle_t *)&s->proc, on_proc_closed);
    s->is_spawned = false;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Mass
 */
struct mass_result {
    double connect_s;
    struct mem before, during, after;
};

static bool mass_is_connected(void *arg)
{
    struct run *r = arg;

    return r->ready == r->n || (r->is_failed && r->open == 0);
}

struct settle {
    struct server *s;
    int fds_target;
    int fds;
};

static bool server_is_settled(void *arg)
{
    struct settle *st = arg;

    st->fds = proc_fd_count(st->s->pid);
    return st->fds >= 0 && st->fds <= st->fds_target;
}

static int run_mass(struct bench *b, struct server *s, struct mass_result *out)
{
    struct settle st = { s, 0, 0 };
    struct run r;
    int rc;

    st.fds_target = proc_fd_count(s->pid);
    if (st.fds_target < 0 || proc_mem(s->pid, &out->before) < 0) {
        bench_fail(b, "mass: cannot read /proc/%d of %s", s->pid, s->name);
        return -1;
    }
    if (run_init(&r, b, s, WL_MASS, "mass", b->clients, 0, NULL) < 0)
        return -1;
    r.t0_ns = uv_hrtime();
    mass_fill(&r);
    if (wait_for(b, mass_is_connected, &r, STUCK_SLACK_MS + b->clients, 0) < 0)
        run_fail(&r, -1, "stuck: %u of %u clients ready after %u ms", r.ready, r.n,
                 STUCK_SLACK_MS + b->clients);
    if (!r.is_failed) {
        out->connect_s = run_seconds(&r);
        if (proc_mem(s->pid, &out->during) < 0)
            run_fail(&r, -1, "cannot read /proc/%d/status", s->pid);
    }
    run_close_all(&r);
    rc = run_wait_closed(&r, STUCK_SLACK_MS);
    if (rc == 0 && wait_for(b, server_is_settled, &st, SETTLE_TIMEOUT_MS, POLL_MS) < 0) {
        bench_fail(b,
                   "mass against %s: still %d descriptors open %u ms after all %u clients "
                   "closed (%d before)",
                   s->name, st.fds, SETTLE_TIMEOUT_MS, r.n, st.fds_target);
        rc = -1;
    }
    if (rc == 0 && proc_mem(s->pid, &out->after) < 0) {
        bench_fail(b, "mass: cannot read /proc/%d/status", s->pid);
        rc = -1;
    }
    if (rc == 0)
        fprintf(stderr,
                "mgw_bench: mass    %-9s %u clients in %.2f s, VmRSS %.1f MiB before, %.1f MiB "
                "connected (HWM %.1f), %.1f MiB after close\n",
                s->name, r.n, out->connect_s, out->before.rss_mib, out->during.rss_mib,
                out->during.hwm_mib, out->after.rss_mib);
    run_free(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Report
 */
static const char *row_target(const struct row *w, char *buf, size_t cap)
{
    switch (w->target) {
    case T_RATIO_MIN:
        snprintf(buf, cap, ">= %.2fx", w->limit);
        break;
    case T_RATIO_MAX:
        snprintf(buf, cap, "<= %.2fx", w->limit);
        break;
    case T_MGW_MAX:
        snprintf(buf, cap, "<= %.0f MiB", w->limit);
        break;
    case T_NONE:
        snprintf(buf, cap, "-");
        break;
    }
    return buf;
}

/* 1 pass, 0 miss, -1 no target. */
static int row_verdict(const struct row *w)
{
    double ratio = w->ref > 0 ? w->mgw / w->ref : 0;

    switch (w->target) {
    case T_RATIO_MIN:
        return w->ref > 0 && ratio >= w->limit;
    case T_RATIO_MAX:
        return w->ref > 0 && ratio <= w->limit;
    case T_MGW_MAX:
        return w->mgw <= w->limit;
    case T_NONE:
        break;
    }
    return -1;
}

static void print_table(const struct bench *b)
{
    static const char *const verdicts[] = { "-", "MISS", "PASS" };
    char target[32];

    printf("\nmgw_bench: %.0f s per measurement in %u alternating rounds, %u mass clients, "
           "mockgw %s\n",
           (double)b->duration_ms / 1000.0, b->rounds, b->clients, b->mockgw_path);
    if (b->client_cpu >= 0)
        printf("client on cpu %d, servers on cpu %d\n\n", b->client_cpu, b->server_cpu);
    else
        printf("not pinned to CPUs\n\n");
    printf("%-8s %-24s %12s %12s %8s  %-10s %s\n", "workload", "metric", "reference", "mockgw",
           "ratio", "target", "result");
    for (unsigned i = 0; i < b->n_rows; i++) {
        const struct row *w = &b->rows[i];
        char ratio[16] = "-";

        if (w->ref > 0)
            snprintf(ratio, sizeof ratio, "%.2fx", w->mgw / w->ref);
        printf("%-8s %-24s %12.*f %12.*f %8s  %-10s %s\n", w->workload, w->metric, w->precision,
               w->ref, w->precision, w->mgw, ratio, row_target(w, target, sizeof target),
               verdicts[row_verdict(w) + 1]);
    }
}

/* 1 pass, 0 miss, -1 no target. */
static int frow_verdict(const struct frow *w)
{
    double limit = FS_LIMIT[w->srv];

    if (limit <= 0)
        return -1;
    return w->base_rate > 0 && w->rate / w->base_rate >= limit;
}

static void print_faults_table(const struct bench *b)
{
    static const char *const verdicts[] = { "-", "MISS", "PASS" };

    printf("\nmgw_bench faults: %.1f s per server and workload in %u rounds rotating 4 servers\n"
           "  %u rules = %u at every phase + %u reqIds-only, each failing at its last check "
           "(match.after_ms);\n  \"1 fires\": the last of them is delay 0 on every reqIds\n\n",
           (double)(b->fault_window_ms * b->rounds) / 1000.0, b->rounds, FAULT_RULES,
           FAULT_RULES / 2, FAULT_RULES - FAULT_RULES / 2);
    if (b->n_rows == 0 && b->client_cpu >= 0) /* else print_table() said it already */
        printf("client on cpu %d, servers on cpu %d\n\n", b->client_cpu, b->server_cpu);
    else if (b->n_rows == 0)
        printf("not pinned to CPUs\n\n");
    printf("%-8s %-26s %10s  %-16s %6s  %-9s %-6s %9s %8s\n", "workload", "server", "ops/s", "vs",
           "ratio", "target", "result", "CPU us/op", "CPU +us");
    for (unsigned i = 0; i < b->n_frows; i++) {
        const struct frow *w = &b->frows[i];
        char ratio[16] = "-", target[16] = "-", delta[16] = "-";
        int base = FS_BASE[w->srv];

        if (base >= 0 && w->base_rate > 0)
            snprintf(ratio, sizeof ratio, "%.2fx", w->rate / w->base_rate);
        if (base >= 0)
            snprintf(delta, sizeof delta, "%+.2f", w->cpu_us - w->base_cpu_us);
        if (FS_LIMIT[w->srv] > 0)
            snprintf(target, sizeof target, ">= %.2fx", FS_LIMIT[w->srv]);
        printf("%-8s %-26s %10.0f  %-16s %6s  %-9s %-6s %9.2f %8s\n", w->workload, FS_NAMES[w->srv],
               w->rate, base >= 0 ? FS_NAMES[base] : "-", ratio, target,
               verdicts[frow_verdict(w) + 1], w->cpu_us, delta);
    }
    printf("(ops: churn connect..close cycles, rtt reqIds round trips; CPU: the server's user + "
           "system time)\n");
}

/* 1 pass, 0 miss, -1 no target (churn). */
static int prow_verdict(const struct prow *w)
{
    if (w->direct_p50 <= 0)
        return -1;
    return w->proxy_p50 / w->direct_p50 <= PROXY_LATENCY_MAX;
}

static void print_proxy_table(const struct bench *b)
{
    static const char *const verdicts[] = { "-", "MISS", "PASS" };

    printf("\nmgw_bench proxy: %.1f s per server and workload in %u rounds; direct = a mockgw, "
           "proxy = mockgw --upstream in front of it;\n  \"1 ms\": that upstream delays each "
           "reqIds answer by %d ms (a gateway on another machine)\n\n",
           (double)(b->proxy_window_ms * b->rounds) / 1000.0, b->rounds, PROXY_SLOW_MS);
    printf("%-8s %-8s %10s %10s %7s %9s %9s %7s %9s %9s  %-9s %s\n", "workload", "upstream",
           "direct/s", "proxy/s", "ratio", "p50 dir", "p50 prx", "p50 x", "p99 dir", "p99 prx",
           "target", "result");
    for (unsigned i = 0; i < b->n_prows; i++) {
        const struct prow *w = &b->prows[i];
        char p50[16] = "-", t[16] = "-";

        if (w->direct_p50 > 0) {
            snprintf(p50, sizeof p50, "%.2fx", w->proxy_p50 / w->direct_p50);
            snprintf(t, sizeof t, "<= %.2fx", PROXY_LATENCY_MAX);
        }
        printf("%-8s %-8s %10.0f %10.0f %6.2fx %9.1f %9.1f %7s %9.1f %9.1f  %-9s %s\n", w->workload,
               w->upstream, w->direct_rate, w->proxy_rate,
               w->direct_rate > 0 ? w->proxy_rate / w->direct_rate : 0, w->direct_p50, w->proxy_p50,
               p50, w->direct_p99, w->proxy_p99, t, verdicts[prow_verdict(w) + 1]);
    }
    printf("(ops: churn connect..close cycles, rtt reqIds round trips; latencies in us; target: "
           "the proxy's p50 round trip at most %.2fx the direct one)\n",
           PROXY_LATENCY_MAX);
}

/* s as a JSON string literal. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static int write_json(const struct bench *b)
{
    FILE *f = fopen(b->json_path, "w");
    char target[32];
    bool all_pass = true;

    if (!f) {
        fprintf(stderr, "mgw_bench: --json %s: %s\n", b->json_path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"duration_s\": %.3f,\n  \"rounds\": %u,\n  \"mass_clients\": %u,\n",
            (double)b->duration_ms / 1000.0, b->rounds, b->clients);
    fputs("  \"mockgw\": ", f);
    json_string(f, b->mockgw_path);
    fprintf(f, ",\n  \"client_cpu\": %d,\n  \"server_cpu\": %d,\n", b->client_cpu, b->server_cpu);
    fprintf(f, "  \"completed\": %s,\n  \"results\": [\n", b->has_failed ? "false" : "true");
    for (unsigned i = 0; i < b->n_rows; i++) {
        const struct row *w = &b->rows[i];
        int v = row_verdict(w);

        if (v == 0)
            all_pass = false;
        fprintf(f,
                "    {\"workload\": \"%s\", \"metric\": \"%s\", \"reference\": %.3f, "
                "\"mockgw\": %.3f, ",
                w->workload, w->key, w->ref, w->mgw);
        if (w->ref > 0)
            fprintf(f, "\"ratio\": %.4f, ", w->mgw / w->ref);
        else
            fprintf(f, "\"ratio\": null, ");
        if (v < 0)
            fprintf(f, "\"target\": null, \"pass\": null}");
        else
            fprintf(f, "\"target\": \"%s\", \"pass\": %s}", row_target(w, target, sizeof target),
                    v ? "true" : "false");
        fprintf(f, "%s\n", i + 1 < b->n_rows ? "," : "");
    }
    fprintf(f, "  ],\n");
    if (b->n_frows > 0) {
        fprintf(f,
                "  \"faults\": {\n    \"rules\": %u,\n    \"round_ms\": %" PRIu64
                ",\n    \"results\": [\n",
                FAULT_RULES, b->fault_window_ms);
        for (unsigned i = 0; i < b->n_frows; i++) {
            const struct frow *w = &b->frows[i];
            int base = FS_BASE[w->srv], v = frow_verdict(w);

            if (v == 0)
                all_pass = false;
            fprintf(f,
                    "      {\"workload\": \"%s\", \"server\": \"%s\", \"ops_per_s\": %.3f, "
                    "\"server_cpu_us_per_op\": %.3f, ",
                    w->workload, FS_KEYS[w->srv], w->rate, w->cpu_us);
            if (base < 0)
                fprintf(f, "\"vs\": null, \"ratio\": null, \"cpu_ratio\": null, ");
            else
                fprintf(f, "\"vs\": \"%s\", \"ratio\": %.4f, \"cpu_ratio\": %.4f, ", FS_KEYS[base],
                        w->base_rate > 0 ? w->rate / w->base_rate : 0,
                        w->base_cpu_us > 0 ? w->cpu_us / w->base_cpu_us : 0);
            if (v < 0)
                fprintf(f, "\"target\": null, \"pass\": null}");
            else
                fprintf(f, "\"target\": \">= %.2fx\", \"pass\": %s}", FS_LIMIT[w->srv],
                        v ? "true" : "false");
            fprintf(f, "%s\n", i + 1 < b->n_frows ? "," : "");
        }
        fprintf(f, "    ]\n  },\n");
    }
    if (b->n_prows > 0) {
        fprintf(f, "  \"proxy\": {\n    \"round_ms\": %" PRIu64 ",\n    \"results\": [\n",
                b->proxy_window_ms);
        for (unsigned i = 0; i < b->n_prows; i++) {
            const struct prow *w = &b->prows[i];
            int v = prow_verdict(w);

            if (v == 0)
                all_pass = false;
            fprintf(f,
                    "      {\"workload\": \"%s\", \"upstream\": \"%s\", \"direct_ops_per_s\": "
                    "%.3f, \"proxy_ops_per_s\": %.3f, \"direct_p50_us\": %.3f, "
                    "\"proxy_p50_us\": %.3f, \"direct_p99_us\": %.3f, \"proxy_p99_us\": %.3f, ",
                    w->workload, w->upstream, w->direct_rate, w->proxy_rate, w->direct_p50,
                    w->proxy_p50, w->direct_p99, w->proxy_p99);
            if (v < 0)
                fprintf(f, "\"target\": null, \"pass\": null}");
            else
                fprintf(f, "\"target\": \"p50 <= %.2fx\", \"pass\": %s}", PROXY_LATENCY_MAX,
                        v ? "true" : "false");
            fprintf(f, "%s\n", i + 1 < b->n_prows ? "," : "");
        }
        fprintf(f, "    ]\n  },\n");
    }
    fprintf(f, "  \"all_targets_met\": %s\n}\n", all_pass ? "true" : "false");
    if (fclose(f) != 0) {
        fprintf(stderr, "mgw_bench: --json %s: %s\n", b->json_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Workload sequence
 */
static bool wants(const struct bench *b, const char *workload)
{
    return !b->only || strcmp(b->only, workload) == 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median of v[0..n), n >= 1; sorts v. */
static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static double tally_median(struct tally *t)
{
    return median(t->rates, t->n);
}

static double tally_cpu_us_per_op(const struct tally *t)
{
    return t->ops ? (double)t->cpu_ns / 1000.0 / (double)t->ops : 0;
}

/* Alternates rounds against the reference and mockgw; fills *ref and *mgw. */
static int run_series(struct bench *b, enum workload wl, unsigned n, const char *label,
                      struct hist *h_ref, struct hist *h_mgw, struct tally *ref, struct tally *mgw)
{
    uint64_t window_ms = b->duration_ms / b->rounds;

    memset(ref, 0, sizeof *ref);
    memset(mgw, 0, sizeof *mgw);
    for (unsigned i = 0; i < b->rounds; i++)
        if (run_round(b, &b->ref, wl, n, label, window_ms, h_ref, ref) < 0 ||
            run_round(b, &b->mgw, wl, n, label, window_ms, h_mgw, mgw) < 0)
            return -1;
    fprintf(stderr,
            "mgw_bench: %-7s median/round: reference %.0f/s, mockgw %.0f/s; server CPU per op: "
            "reference %.2f us, mockgw %.2f us\n",
            label, tally_median(ref), tally_median(mgw), tally_cpu_us_per_op(ref),
            tally_cpu_us_per_op(mgw));
    return 0;
}

/* Each churn and rtt measurement is duration_ms long in total, split into rounds that
 * alternate reference, mockgw, reference, ...: a burst of load from another process on the
 * machine then hits both servers alike instead of one whole measurement. */
static int bench_run(struct bench *b)
{
    struct tally ref, mgw;

    if (wants(b, "churn")) {
        if (run_series(b, WL_CHURN, CHURN_CONNS, "churn", NULL, NULL, &ref, &mgw) < 0)
            return -1;
        add_row(b, (struct row){ "churn", "handshakes/s", "handshakes_per_s", tally_median(&ref),
                                 tally_median(&mgw), 0, T_RATIO_MIN, 0.8 });
        add_row(b,
                (struct row){ "churn", "server CPU us/cycle", "server_cpu_us_per_cycle",
                              tally_cpu_us_per_op(&ref), tally_cpu_us_per_op(&mgw), 1, T_NONE, 0 });
    }
    if (wants(b, "rtt")) {
        static const unsigned widths[] = { 1, RTT_WIDE_CONNS };
        static const char *const labels[] = { "rtt-1", "rtt-32" };
        struct hist *h_ref = calloc(1, sizeof *h_ref), *h_mgw = calloc(1, sizeof *h_mgw);
        int rc = 0;

        if (!h_ref || !h_mgw) {
            bench_fail(b, "rtt: out of memory");
            rc = -1;
        }
        for (unsigned i = 0; i < 2 && rc == 0; i++) {
            memset(h_ref, 0, sizeof *h_ref);
            memset(h_mgw, 0, sizeof *h_mgw);
            rc = run_series(b, WL_RTT, widths[i], labels[i], h_ref, h_mgw, &ref, &mgw);
            if (rc < 0)
                break;
            add_row(b, (struct row){ labels[i], "round trips/s", "round_trips_per_s",
                                     tally_median(&ref), tally_median(&mgw), 0, T_RATIO_MIN, 0.8 });
            add_row(b, (struct row){ labels[i], "p50 latency us", "p50_us",
                                     hist_quantile_us(h_ref, 0.50), hist_quantile_us(h_mgw, 0.50),
                                     1, T_NONE, 0 });
            add_row(b, (struct row){ labels[i], "p99 latency us", "p99_us",
                                     hist_quantile_us(h_ref, 0.99), hist_quantile_us(h_mgw, 0.99),
                                     1, T_RATIO_MAX, 1.5 });
            add_row(b, (struct row){ labels[i], "server CPU us/round trip",
                                     "server_cpu_us_per_round_trip", tally_cpu_us_per_op(&ref),
                                     tally_cpu_us_per_op(&mgw), 2, T_NONE, 0 });
        }
        free(h_ref);
        free(h_mgw);
        if (rc < 0)
            return -1;
    }
    if (wants(b, "mass")) {
        struct mass_result mref = { 0 }, mmgw = { 0 };

        if (run_mass(b, &b->ref, &mref) < 0 || run_mass(b, &b->mgw, &mmgw) < 0)
            return -1;
        add_row(b, (struct row){ "mass", "connect all s", "connect_s", mref.connect_s,
                                 mmgw.connect_s, 2, T_NONE, 0 });
        add_row(b, (struct row){ "mass", "VmRSS before MiB", "rss_before_mib", mref.before.rss_mib,
                                 mmgw.before.rss_mib, 1, T_NONE, 0 });
        add_row(b, (struct row){ "mass", "VmRSS connected MiB", "rss_connected_mib",
                                 mref.during.rss_mib, mmgw.during.rss_mib, 1, T_MGW_MAX,
                                 MASS_RSS_MAX_MIB });
        add_row(b, (struct row){ "mass", "VmHWM MiB", "hwm_mib", mref.during.hwm_mib,
                                 mmgw.during.hwm_mib, 1, T_NONE, 0 });
        add_row(b, (struct row){ "mass", "KiB per client", "kib_per_client",
                                 (mref.during.rss_mib - mref.before.rss_mib) * 1024.0 / b->clients,
                                 (mmgw.during.rss_mib - mmgw.before.rss_mib) * 1024.0 / b->clients,
                                 1, T_NONE, 0 });
        add_row(b, (struct row){ "mass", "VmRSS after close MiB", "rss_after_close_mib",
                                 mref.after.rss_mib, mmgw.after.rss_mib, 1, T_NONE, 0 });
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Faults: what the fault engine costs
 */
/* Match keys of the never-firing rules. fault.c checks, in order: phase, spent, state (a cached
 * flag), msg, client_id, conn, nth, after_ms; each rule passes every check it has up to
 * after_ms, the last one, and fails there (no bench connection lives 24 h). client_id would
 * fail early: no condition on it. Rules with msg must match phase request alone (script.c),
 * hence two halves. close: a rule that fires by mistake ends the connection, which the bench
 * reports as a failure instead of measuring it. */
#define NEVER_TAIL                                               \
    "\"conn\": [1, 9007199254740991], \"after_ms\": 86400000}, " \
    "\"action\": {\"type\": \"close\"}}"
#define NEVER_ANY_PHASE                                                                \
    "    {\"name\": \"never-any-%u\", \"match\": {\"phase\": [\"accept\", \"hello\", " \
    "\"version_sent\", \"start_api\", \"ready\", \"request\"], " NEVER_TAIL
#define NEVER_REQ_IDS                                                                \
    "    {\"name\": \"never-req-%u\", \"match\": {\"phase\": \"request\", \"msg\": " \
    "\"reqIds\", " NEVER_TAIL
/* Last, so that every other rule is evaluated before it. delay 0 is the cheapest action that
 * fires at phase request without changing what the client sees. */
#define FIRES_REQ_IDS                                                                      \
    "    {\"name\": \"fires\", \"match\": {\"phase\": \"request\", \"msg\": \"reqIds\"}, " \
    "\"action\": {\"type\": \"delay\", \"ms\": 0}}"

/* Writes a script of FAULT_RULES rules (the last one firing when one_fires) to a new file in
 * /tmp; path (>= 32 bytes) gets its name, or "" on failure. */
static int write_script(struct bench *b, char *path, bool one_fires)
{
    FILE *f;
    int fd, e;

    strcpy(path, "/tmp/mgw_bench_faults_XXXXXX");
    fd = mkstemp(path);
    if (fd < 0) {
        bench_fail(b, "faults: creating a script file %s: %s", path, strerror(errno));
        path[0] = '\0';
        return -1;
    }
    f = fdopen(fd, "w");
    if (!f) {
        bench_fail(b, "faults: fdopen %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        path[0] = '\0';
        return -1;
    }
    fputs("{\n  \"rules\": [\n", f);
    for (unsigned i = 0; i < FAULT_RULES; i++) {
        if (one_fires && i == FAULT_RULES - 1)
            fputs(FIRES_REQ_IDS, f);
        else if (i < FAULT_RULES / 2)
            fprintf(f, NEVER_ANY_PHASE, i + 1);
        else
            fprintf(f, NEVER_REQ_IDS, i + 1);
        fputs(i + 1 < FAULT_RULES ? ",\n" : "\n", f);
    }
    fputs("  ]\n}\n", f);
    e = ferror(f) ? EIO : 0;
    if (fclose(f) != 0 && e == 0)
        e = errno;
    if (e != 0) {
        bench_fail(b, "faults: writing the script %s: %s", path, strerror(e));
        unlink(path);
        path[0] = '\0';
        return -1;
    }
    return 0;
}

/* Writes both scripts and starts the three mockgw processes. The scripts are deleted as soon
 * as the servers have read them (mockgw reads --script before its ready line and keeps a copy
 * for /v1/reset), on success or failure: nothing is left in /tmp. */
static int faults_start(struct bench *b)
{
    int rc = write_script(b, b->fault_scripts[0], false);

    if (rc == 0)
        rc = write_script(b, b->fault_scripts[1], true);
    for (unsigned i = 0; i < FS_COUNT - 1 && rc == 0; i++) {
        char listen_flag[] = "--listen", listen_value[] = "127.0.0.1:0";
        char admin_flag[] = "--admin", admin_value[] = "off";
        char max_flag[] = "--max-clients", max_value[] = "0";
        char script_flag[] = "--script";
        char *argv[] = { b->mockgw_path, listen_flag, listen_value, admin_flag, admin_value,
                         max_flag,       max_value,   NULL,         NULL,       NULL };

        if (i > 0) { /* the first one is the baseline: no script at all */
            argv[7] = script_flag;
            argv[8] = b->fault_scripts[i - 1];
        }
        rc = server_start(b, &b->flt[i], FS_NAMES[FS_NONE + i], argv);
    }
    for (unsigned i = 0; i < 2; i++) {
        if (b->fault_scripts[i][0] && unlink(b->fault_scripts[i]) != 0)
            fprintf(stderr, "mgw_bench: warning: cannot delete %s: %s\n", b->fault_scripts[i],
                    strerror(errno));
        b->fault_scripts[i][0] = '\0';
    }
    return rc;
}

/* One workload over k servers, b->rounds rounds of window_ms each; the order rotates every
 * round, so that no server always runs first or right after the same other one. Fills
 * t[0..k) and, for rtt, the histograms h[0..k). */
static int run_rotating(struct bench *b, enum workload wl, unsigned n, const char *label,
                        struct server *const *srv, unsigned k, uint64_t window_ms,
                        struct hist *const *h, struct tally *t)
{
    memset(t, 0, k * sizeof *t);
    for (unsigned i = 0; i < b->rounds; i++) {
        for (unsigned j = 0; j < k; j++) {
            unsigned s = (i + j) % k;

            if (run_round(b, srv[s], wl, n, label, window_ms, h[s], &t[s]) < 0)
                return -1;
        }
    }
    return 0;
}

/* churn, rtt-1 and rtt-32 against the reference and three fresh mockgw processes, in rotating
 * rounds: no rules (the baseline), FAULT_RULES never-firing rules (the target: >=
 * 0.85x the baseline), and the same with one firing on every request (information). Alone
 * (--only faults) each server gets --duration-s per workload; after the other workloads,
 * FAULT_SHARE_NUM/FAULT_SHARE_DEN of it, to keep the default run near a minute. */
static int bench_faults(struct bench *b)
{
    static const char *const labels[] = { "churn", "rtt-1", "rtt-32" };
    static const enum workload wls[] = { WL_CHURN, WL_RTT, WL_RTT };
    static const unsigned widths[] = { CHURN_CONNS, 1, RTT_WIDE_CONNS };
    struct server *srv[FS_COUNT] = { &b->ref, &b->flt[0], &b->flt[1], &b->flt[2] };
    struct hist *h[FS_COUNT] = { NULL };
    struct tally t[FS_COUNT];
    double rate[FS_COUNT], cpu[FS_COUNT];
    uint64_t total_ms =
        b->only ? b->duration_ms : b->duration_ms * FAULT_SHARE_NUM / FAULT_SHARE_DEN;
    int rc;

    b->fault_window_ms = total_ms / b->rounds;
    if (b->fault_window_ms < MIN_WINDOW_MS)
        b->fault_window_ms = MIN_WINDOW_MS;
    rc = faults_start(b);
    for (unsigned s = 0; s < FS_COUNT && rc == 0; s++) {
        h[s] = calloc(1, sizeof *h[s]);
        if (!h[s]) {
            bench_fail(b, "faults: out of memory");
            rc = -1;
        }
    }
    for (unsigned w = 0; w < 3 && rc == 0; w++) {
        for (unsigned s = 0; s < FS_COUNT; s++)
            memset(h[s], 0, sizeof *h[s]);
        rc = run_rotating(b, wls[w], widths[w], labels[w], srv, FS_COUNT, b->fault_window_ms, h, t);
        if (rc < 0)
            break;
        for (unsigned s = 0; s < FS_COUNT; s++) {
            rate[s] = tally_median(&t[s]);
            cpu[s] = tally_cpu_us_per_op(&t[s]);
        }
        fprintf(stderr, "mgw_bench: faults %-6s median/round, server CPU per op:", labels[w]);
        for (unsigned s = 0; s < FS_COUNT; s++) {
            struct frow row = { .workload = labels[w], .srv = (enum fault_srv)s };
            int base = FS_BASE[s];

            fprintf(stderr, "%s %s %.0f/s %.2f us", s ? "," : "", FS_KEYS[s], rate[s], cpu[s]);
            row.rate = rate[s];
            row.cpu_us = cpu[s];
            if (base >= 0) {
                row.base_rate = rate[base];
                row.base_cpu_us = cpu[base];
            }
            if (b->n_frows < sizeof b->frows / sizeof b->frows[0])
                b->frows[b->n_frows++] = row;
        }
        fputc('\n', stderr);
    }
    for (unsigned s = 0; s < FS_COUNT; s++)
        free(h[s]);
    for (unsigned i = 0; i < FS_COUNT - 1; i++)
        if (server_stop(b, &b->flt[i]) < 0)
            rc = -1;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Proxy: what mockgw --upstream adds
 */
/* The slow upstream's script: every reqIds answer waits PROXY_SLOW_MS. */
static int write_slow_script(struct bench *b, char *path)
{
    FILE *f;
    int fd;

    strcpy(path, "/tmp/mgw_bench_proxy_XXXXXX");
    fd = mkstemp(path);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        bench_fail(b, "proxy: creating a script file %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        path[0] = '\0';
        return -1;
    }
    fprintf(f,
            "{\"rules\": [{\"name\": \"slow\", \"match\": {\"phase\": \"request\", \"msg\": "
            "\"reqIds\"}, \"action\": {\"type\": \"delay\", \"ms\": %d}}]}\n",
            PROXY_SLOW_MS);
    if (fclose(f) != 0) {
        bench_fail(b, "proxy: writing the script %s: %s", path, strerror(errno));
        unlink(path);
        path[0] = '\0';
        return -1;
    }
    return 0;
}

/* Starts an upstream (with the slow script when script is not NULL) and a proxy in front. */
static int proxy_pair_start(struct bench *b, struct server *up, struct server *px,
                            const char *up_name, const char *px_name, char *script)
{
    char listen_flag[] = "--listen", listen_value[] = "127.0.0.1:0";
    char admin_flag[] = "--admin", admin_value[] = "off";
    char max_flag[] = "--max-clients", max_value[] = "0";
    char script_flag[] = "--script", upstream_flag[] = "--upstream", upstream_value[32];
    char *up_argv[] = { b->mockgw_path, listen_flag, listen_value, admin_flag, admin_value,
                        max_flag,       max_value,   NULL,         NULL,       NULL };
    char *px_argv[] = { b->mockgw_path, listen_flag, listen_value,  admin_flag,     admin_value,
                        max_flag,       max_value,   upstream_flag, upstream_value, NULL };

    if (script) {
        up_argv[7] = script_flag;
        up_argv[8] = script;
    }
    if (server_start(b, up, up_name, up_argv) < 0)
        return -1;
    snprintf(upstream_value, sizeof upstream_value, "127.0.0.1:%d", ntohs(up->addr.sin_port));
    return server_start(b, px, px_name, px_argv);
}

/* churn, rtt-1 and rtt-32 directly against a mockgw and through a proxy in front of it, in
 * alternating rounds; then rtt-1 the same way with an upstream that takes PROXY_SLOW_MS to
 * answer. Target: the proxy's median round trip at most PROXY_LATENCY_MAX times the direct one.
 * Timing like bench_faults: alone (--only proxy) --duration-s per server and workload, in the
 * default run FAULT_SHARE_NUM/FAULT_SHARE_DEN of it. */
static int bench_proxy(struct bench *b)
{
    static const char *const labels[] = { "churn", "rtt-1", "rtt-32", "rtt-1" };
    static const enum workload wls[] = { WL_CHURN, WL_RTT, WL_RTT, WL_RTT };
    static const unsigned widths[] = { CHURN_CONNS, 1, RTT_WIDE_CONNS, 1 };
    uint64_t total_ms =
        b->only ? b->duration_ms : b->duration_ms * FAULT_SHARE_NUM / FAULT_SHARE_DEN;
    struct hist *h[2] = { calloc(1, sizeof *h[0]), calloc(1, sizeof *h[1]) };
    struct tally t[2];
    int rc = 0;

    b->proxy_window_ms = total_ms / b->rounds;
    if (b->proxy_window_ms < MIN_WINDOW_MS)
        b->proxy_window_ms = MIN_WINDOW_MS;
    if (!h[0] || !h[1]) {
        bench_fail(b, "proxy: out of memory");
        rc = -1;
    }
    if (rc == 0)
        rc = proxy_pair_start(b, &b->pxs[PX_UP], &b->pxs[PX_PROXY], PX_NAMES[PX_UP],
                              PX_NAMES[PX_PROXY], NULL);
    if (rc == 0)
        rc = write_slow_script(b, b->proxy_script);
    if (rc == 0)
        rc = proxy_pair_start(b, &b->pxs[PX_SLOW_UP], &b->pxs[PX_SLOW_PROXY], PX_NAMES[PX_SLOW_UP],
                              PX_NAMES[PX_SLOW_PROXY], b->proxy_script);
    if (b->proxy_script[0] && unlink(b->proxy_script) != 0)
        fprintf(stderr, "mgw_bench: warning: cannot delete %s: %s\n", b->proxy_script,
                strerror(errno));
    b->proxy_script[0] = '\0';
    for (unsigned w = 0; w < 4 && rc == 0; w++) {
        bool slow = w == 3;
        struct server *srv[2] = { &b->pxs[slow ? PX_SLOW_UP : PX_UP],
                                  &b->pxs[slow ? PX_SLOW_PROXY : PX_PROXY] };
        struct hist *hh[2] = { wls[w] == WL_RTT ? h[0] : NULL, wls[w] == WL_RTT ? h[1] : NULL };
        struct prow row = { .workload = labels[w], .upstream = slow ? "1 ms" : "instant" };

        memset(h[0], 0, sizeof *h[0]);
        memset(h[1], 0, sizeof *h[1]);
        rc = run_rotating(b, wls[w], widths[w], labels[w], srv, 2, b->proxy_window_ms, hh, t);
        if (rc < 0)
            break;
        row.direct_rate = tally_median(&t[0]);
        row.proxy_rate = tally_median(&t[1]);
        if (wls[w] == WL_RTT) {
            row.direct_p50 = hist_quantile_us(h[0], 0.50);
            row.proxy_p50 = hist_quantile_us(h[1], 0.50);
            row.direct_p99 = hist_quantile_us(h[0], 0.99);
            row.proxy_p99 = hist_quantile_us(h[1], 0.99);
        }
        fprintf(stderr,
                "mgw_bench: proxy %-6s %-7s direct %.0f/s p50 %.1f us, proxy %.0f/s p50 %.1f us\n",
                labels[w], row.upstream, row.direct_rate, row.direct_p50, row.proxy_rate,
                row.proxy_p50);
        if (b->n_prows < sizeof b->prows / sizeof b->prows[0])
            b->prows[b->n_prows++] = row;
    }
    free(h[0]);
    free(h[1]);
    /* Proxies first: an upstream that goes away first would close their clients. */
    if (server_stop(b, &b->pxs[PX_PROXY]) < 0 || server_stop(b, &b->pxs[PX_SLOW_PROXY]) < 0)
        rc = -1;
    if (server_stop(b, &b->pxs[PX_UP]) < 0 || server_stop(b, &b->pxs[PX_SLOW_UP]) < 0)
        rc = -1;
    return rc;
}

static int encode_client_bytes(void)
{
    struct ibw_writer w;

    ibw_writer_init(&w, hello_bytes, sizeof hello_bytes);
    if (ibw_enc_hello(&w, HELLO_MIN_VERSION, HELLO_MAX_VERSION, NULL) < 0)
        return -1;
    hello_len = w.len;
    ibw_writer_init(&w, req_ids_bytes, sizeof req_ids_bytes);
    ibw_writer_begin(&w);
    ibw_put_int(&w, IBW_OUT_REQ_IDS);
    ibw_put_int(&w, 1); /* version */
    ibw_put_int(&w, 1); /* numIds */
    if (ibw_writer_end(&w) < 0)
        return -1;
    req_ids_len = w.len;
    return 0;
}

/* With two CPUs or more, the client (this process) runs on the first one we may use and both
 * servers on the second: every measurement then sees the same placement, instead of whatever
 * the scheduler picks (same-CPU vs cross-CPU wakeups change a round trip by 3x on a VM). */
static void pick_cpus(struct bench *b)
{
    cpu_set_t set, mine;
    int found = 0;

    b->client_cpu = b->server_cpu = -1;
    if (!b->is_pinned || sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    for (int i = 0; i < CPU_SETSIZE && found < 2; i++) {
        if (!CPU_ISSET(i, &set))
            continue;
        if (found++ == 0)
            b->client_cpu = i;
        else
            b->server_cpu = i;
    }
    if (b->server_cpu < 0) {
        b->client_cpu = -1;
        return;
    }
    CPU_ZERO(&mine);
    CPU_SET(b->client_cpu, &mine);
    if (sched_setaffinity(0, sizeof mine, &mine) != 0) {
        fprintf(stderr, "mgw_bench: warning: cannot pin myself to cpu %d: %s\n", b->client_cpu,
                strerror(errno));
        b->client_cpu = b->server_cpu = -1;
    }
}

/* Soft RLIMIT_NOFILE up to the hard limit; returns the soft limit in force. */
static rlim_t raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

static const char USAGE[] =
    "usage: mgw_bench --mockgw PATH [options]\n"
    "\n"
    "Measures mockgw against a minimal reference server (this binary, re-executed) on\n"
    "127.0.0.1. Each workload runs against the reference, then against mockgw:\n"
    "  churn  16 connections looping connect, handshake, START_API, 5 reqIds, close\n"
    "  rtt    reqIds round trips on 1, then 32 connections: throughput, p50, p99\n"
    "  mass   N handshaken clients at once: time to connect, server VmRSS/VmHWM\n"
    "  faults churn, rtt-1, rtt-32 against the reference and 3 more mockgw: no rules,\n"
    "         100 rules never firing, 100 with one firing: the fault engine's cost\n"
    "  proxy  churn, rtt-1, rtt-32 against a mockgw directly and through mockgw --upstream,\n"
    "         then rtt-1 with a 1 ms upstream: the latency proxy mode adds\n"
    "\n"
    "  --mockgw PATH       the mockgw binary (required)\n"
    "  --duration-s N      seconds per churn/rtt measurement (default 5)\n"
    "  --rounds N          split each measurement into N rounds alternating reference and\n"
    "                      mockgw; throughput is the median round (default 10, max 20)\n"
    "  --only WORKLOAD     churn, rtt, mass, faults or proxy (default: all; faults and proxy\n"
    "                      then get 2/5 of --duration-s per server and workload, alone all)\n"
    "  --clients N         mass clients (default 10000)\n"
    "  --json FILE         also write the results as JSON\n"
    "  --no-pin            do not pin the client and the servers to two different CPUs\n"
    "  -h, --help          this text\n"
    "  (--reference-server is internal: the reference server's own process)\n"
    "\n"
    "Exit status: 0 when everything ran (even with a target missed), 1 on a bench failure\n"
    "(connection error, step timeout, a server that died or did not exit 0), 2 on bad usage.\n";

enum {
    OPT_MOCKGW = 256,
    OPT_DURATION,
    OPT_ROUNDS,
    OPT_ONLY,
    OPT_CLIENTS,
    OPT_JSON,
    OPT_NO_PIN,
    OPT_REFERENCE
};

static const struct option options[] = {
    { "mockgw", required_argument, NULL, OPT_MOCKGW },
    { "duration-s", required_argument, NULL, OPT_DURATION },
    { "rounds", required_argument, NULL, OPT_ROUNDS },
    { "only", required_argument, NULL, OPT_ONLY },
    { "clients", required_argument, NULL, OPT_CLIENTS },
    { "json", required_argument, NULL, OPT_JSON },
    { "no-pin", no_argument, NULL, OPT_NO_PIN },
    { "reference-server", no_argument, NULL, OPT_REFERENCE },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* Returns 1 for --reference-server, 0 to run the bench, -1 on bad usage. */
static int parse_args(int argc, char **argv, struct bench *b)
{
    bool is_reference = false;
    uint64_t v;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(USAGE, stdout);
            exit(0);
        case OPT_MOCKGW:
            b->mockgw_path = optarg;
            break;
        case OPT_DURATION:
            if (parse_uint(optarg, 1, 3600, &v) < 0) {
                fprintf(stderr, "mgw_bench: --duration-s \"%s\": must be 1..3600\n", optarg);
                return -1;
            }
            b->duration_ms = v * 1000;
            break;
        case OPT_ROUNDS:
            if (parse_uint(optarg, 1, MAX_ROUNDS, &v) < 0) {
                fprintf(stderr, "mgw_bench: --rounds \"%s\": must be 1..%u\n", optarg, MAX_ROUNDS);
                return -1;
            }
            b->rounds = (unsigned)v;
            break;
        case OPT_ONLY:
            if (strcmp(optarg, "churn") != 0 && strcmp(optarg, "rtt") != 0 &&
                strcmp(optarg, "mass") != 0 && strcmp(optarg, "faults") != 0 &&
                strcmp(optarg, "proxy") != 0) {
                fprintf(stderr,
                        "mgw_bench: --only \"%s\": must be churn, rtt, mass, faults or proxy\n",
                        optarg);
                return -1;
            }
            b->only = optarg;
            break;
        case OPT_CLIENTS:
            if (parse_uint(optarg, 1, 1000000, &v) < 0) {
                fprintf(stderr, "mgw_bench: --clients \"%s\": must be 1..1000000\n", optarg);
                return -1;
            }
            b->clients = (unsigned)v;
            break;
        case OPT_JSON:
            b->json_path = optarg;
            break;
        case OPT_NO_PIN:
            b->is_pinned = false;
            break;
        case OPT_REFERENCE:
            is_reference = true;
            break;
        case ':':
            fprintf(stderr, "mgw_bench: %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "mgw_bench: unknown option %s (see --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mgw_bench: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -1;
    }
    if (is_reference)
        return 1;
    if (b->duration_ms / b->rounds < MIN_WINDOW_MS) {
        fprintf(stderr, "mgw_bench: --duration-s / --rounds: rounds of at least %u ms, please\n",
                MIN_WINDOW_MS);
        return -1;
    }
    if (!b->mockgw_path) {
        fprintf(stderr, "mgw_bench: --mockgw PATH is required (see --help)\n");
        return -1;
    }
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    static struct bench bench; /* large (rows, servers): not on the stack */
    struct bench *b = &bench;
    char exe[4096];
    size_t exe_len = sizeof exe;
    rlim_t fd_limit;
    int rc;

    b->duration_ms = 5000;
    b->clients = 10000;
    b->is_pinned = true;
    b->rounds = 10;
    rc = parse_args(argc, argv, b);
    if (rc < 0)
        return EXIT_USAGE;
    if (rc == 1)
        return reference_main();

    signal(SIGPIPE, SIG_IGN);
    fd_limit = raise_fd_limit();
    if (wants(b, "mass") && fd_limit < (rlim_t)b->clients + MASS_FD_SLACK) {
        fprintf(stderr,
                "mgw_bench: FAIL: mass needs %u descriptors per process (%u clients + %u), but "
                "RLIMIT_NOFILE is %llu even after raising it to the hard limit; raise the hard "
                "limit (ulimit -Hn, limits.conf, systemd LimitNOFILE) or pass --clients %llu\n",
                b->clients + MASS_FD_SLACK, b->clients, MASS_FD_SLACK, (unsigned long long)fd_limit,
                fd_limit > MASS_FD_SLACK ? (unsigned long long)(fd_limit - MASS_FD_SLACK) : 0ull);
        return EXIT_FAILED;
    }
    if (encode_client_bytes() < 0 || uv_exepath(exe, &exe_len) < 0) {
        fprintf(stderr, "mgw_bench: FAIL: cannot encode the client messages or find myself\n");
        return EXIT_FAILED;
    }

    pick_cpus(b);
    uv_loop_init(&b->loop);
    uv_timer_init(&b->loop, &b->wait_timer);
    uv_timer_init(&b->loop, &b->tick);
    uv_timer_init(&b->loop, &b->sweep);
    uv_timer_init(&b->loop, &b->duration);
    b->wait_timer.data = b->tick.data = b->sweep.data = b->duration.data = b;

    {
        char reference_flag[] = "--reference-server";
        char listen_flag[] = "--listen", listen_value[] = "127.0.0.1:0";
        char admin_flag[] = "--admin", admin_value[] = "off";
        char max_flag[] = "--max-clients", max_value[] = "0";
        char *ref_argv[] = { exe, reference_flag, NULL };
        char *mgw_argv[] = { b->mockgw_path, listen_flag, listen_value, admin_flag,
                             admin_value,    max_flag,    max_value,    NULL };

        bool needs_mgw = wants(b, "churn") || wants(b, "rtt") || wants(b, "mass");

        if (server_start(b, &b->ref, "reference", ref_argv) == 0 &&
            (!needs_mgw || server_start(b, &b->mgw, "mockgw", mgw_argv) == 0) &&
            bench_run(b) == 0 && (!wants(b, "faults") || bench_faults(b) == 0) && wants(b, "proxy"))
            bench_proxy(b);
    }
    server_stop(b, &b->mgw);
    server_stop(b, &b->ref);

    if (b->n_rows > 0)
        print_table(b);
    if (b->n_frows > 0)
        print_faults_table(b);
    if (b->n_prows > 0)
        print_proxy_table(b);
    if (b->json_path && write_json(b) < 0)
        b->has_failed = true;

    uv_walk(&b->loop, close_walk, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&b->loop) != 0)
        fprintf(stderr, "mgw_bench: warning: handles left open at exit\n");
    return b->has_failed ? EXIT_FAILED : 0;
}
