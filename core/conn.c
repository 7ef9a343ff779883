/* The IB client connection (ibcore.h "Connection"): TCP connect, "API\0" handshake, START_API
 * and readiness under one absolute deadline, then requests matched against inbound frames,
 * each under its own deadline. Protocol: IB_WIRE.md §1-§3, §5, §6.
 *
 * Handles: the timer lives from ibcore_conn_new() to ibcore_conn_close(); the tcp handle from
 * ibcore_conn_connect() to the first failure or the close. One timer serves both phases: the
 * connect deadline until ready, then the earliest pending request's deadline. The object is
 * freed in the last close callback, never earlier, so every libuv callback may use it.
 */
#include "ibcore.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "ibwire.h"

#define IN_INITIAL_CAP (64u * 1024u)
/* The input buffer never holds more than one complete frame of the largest legal size. */
#define IN_MAX_CAP ((size_t)IBW_MAX_FRAME + 4u)
#define HELLO_CAP  128
/* Caps on what requests may queue: a gateway that stops reading must not grow us without end. */
#define MAX_PENDING      1024
#define MAX_QUEUED_BYTES (4u << 20)

enum conn_state {
    ST_IDLE,       /* new: nothing started */
    ST_CONNECTING, /* uv_tcp_connect() in flight */
    ST_HELLO,      /* "API\0" + versions written; waiting for the version reply */
    ST_START_API,  /* START_API written; waiting for nextValidId and managedAccounts */
    ST_READY,
    ST_FAILED, /* the connect failed or the peer went away: the socket is closed */
    ST_CLOSING /* ibcore_conn_close() was called */
};

struct req {
    struct req *next;
    uint64_t deadline_ms;
    ibcore_match_fn match;
    void *match_data;
    ibcore_reply_cb reply_cb; /* exactly one of reply_cb and time_cb is set */
    ibcore_time_cb time_cb;
    void *data;
};

struct wreq {
    uv_write_t req;
    uint8_t bytes[]; /* what the write sends; lives until its callback */
};

struct ibcore_conn {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    unsigned open_handles; /* handles not yet through their close callback */
    bool has_tcp;          /* tcp initialised and not yet handed to uv_close() */
    enum conn_state state;
    bool is_poisoned;

    ibcore_conn_cb connect_cb; /* NULL once called */
    void *connect_data;
    ibcore_notice_cb notice_cb;
    void *notice_data;
    void (*close_cb)(void *data);
    void *close_data;

    int client_id;
    int min_version, max_version;
    uint8_t hello[HELLO_CAP];
    size_t hello_len;

    int server_version;
    int64_t next_valid_id;
    bool has_next_valid_id;
    char *accounts; /* NULL until a non-empty managedAccounts */
    uint64_t last_rx_ms;

    uint8_t *in; /* bytes read, not yet parsed: at most one partial frame between reads */
    size_t in_len, in_cap;

    struct req *reqs; /* pending requests, oldest first */
};

static void on_handle_closed(uv_handle_t *h)
{
    struct ibcore_conn *c = h->data;
    void (*cb)(void *data);
    void *data;

    if (--c->open_handles > 0 || c->state != ST_CLOSING)
        return;
    cb = c->close_cb;
    data = c->close_data;
    free(c->in);
    free(c->accounts);
    free(c);
    if (cb)
        cb(data);
}

static void close_tcp(struct ibcore_conn *c)
{
    if (!c->has_tcp)
        return;
    c->has_tcp = false;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed); /* also stops reading */
}

static uint64_t timeout_until(const struct ibcore_conn *c, uint64_t deadline_ms)
{
    uint64_t now = uv_now(c->loop);

    return deadline_ms > now ? deadline_ms - now : 0;
}

static void on_timer(uv_timer_t *t);

/* Arms the timer for the earliest pending request, or stops it. */
static void rearm_requests(struct ibcore_conn *c)
{
    uint64_t earliest = UINT64_MAX;

    for (struct req *r = c->reqs; r; r = r->next)
        if (r->deadline_ms < earliest)
            earliest = r->deadline_ms;
    if (earliest == UINT64_MAX)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, timeout_until(c, earliest), 0);
}

/* Calls r's callback once with status (the payload only with status 0) and frees r. */
static void complete_req(struct ibcore_conn *c, struct req *r, int status, const uint8_t *payload,
                         size_t len)
{
    if (r->time_cb) {
        struct ibw_reader rd;
        int64_t epoch = 0;
        int id = 0, version = 0;

        if (status == 0) {
            ibw_reader_init(&rd, payload, len);
            ibw_read_msg_id(&rd, &id);
            ibw_read_int(&rd, &version);
            ibw_read_long(&rd, &epoch);
            if (rd.err || epoch <= 0) {
                status = IBCORE_EPROTO;
                epoch = 0;
            }
        }
        r->time_cb(c, status, epoch, r->data);
    } else {
        r->reply_cb(c, status, status == 0 ? payload : NULL, status == 0 ? len : 0, r->data);
    }
    free(r);
}

/* Completes every pending request with status. The list is detached first: a callback that
 * closes the connection finds nothing left to cancel. */
static void fail_requests(struct ibcore_conn *c, int status)
{
    struct req *r = c->reqs;

    c->reqs = NULL;
    while (r) {
        struct req *next = r->next;

        complete_req(c, r, status, NULL, 0);
        r = next;
    }
}

static void finish_connect(struct ibcore_conn *c, int status)
{
    ibcore_conn_cb cb = c->connect_cb;

    c->connect_cb = NULL;
    if (cb)
        cb(c, status, c->connect_data);
}

/* The connection is unusable: close the socket, complete what pends with err. Once only. */
static void conn_fail(struct ibcore_conn *c, int err)
{
    enum conn_state prev = c->state;

    if (prev == ST_IDLE || prev == ST_FAILED || prev == ST_CLOSING)
        return;
    c->state = ST_FAILED;
    uv_timer_stop(&c->timer);
    close_tcp(c);
    if (prev == ST_READY)
        fail_requests(c, err);
    else
        finish_connect(c, err);
}

static void on_write(uv_write_t *req, int status)
{
    struct ibcore_conn *c = req->data;

    free(req);
    /* A close cancels the writes (UV_ECANCELED) before the tcp close callback: c is alive. */
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(c, status);
}

/* Copies bytes and queues them; < 0 when libuv refused the write (nothing queued). */
static int conn_write(struct ibcore_conn *c, const uint8_t *bytes, size_t len)
{
    struct wreq *w = malloc(sizeof *w + len);
    uv_buf_t b;
    int rc;

    if (w == NULL)
        return UV_ENOMEM;
    memcpy(w->bytes, bytes, len);
    b = uv_buf_init((char *)w->bytes, (unsigned)len);
    w->req.data = c;
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0)
        free(w);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Inbound frames
 */

/* The version reply (§2.2): exactly "<version>\0<time>\0". Writes START_API. */
static int on_version_reply(struct ibcore_conn *c, const uint8_t *p, size_t len)
{
    struct ibw_reader r;
    struct ibw_writer w;
    uint8_t out[64];
    const char *conn_time;
    int version = 0;
    ssize_t n;

    ibw_reader_init(&r, p, len);
    if (ibw_reader_left(&r) != 2)
        return IBCORE_EPROTO;
    ibw_read_int(&r, &version);
    ibw_read_str(&r, &conn_time);
    if (r.err)
        return IBCORE_EPROTO;
    if (version < c->min_version || version > c->max_version)
        return IBCORE_EVERSION;
    c->server_version = version;
    ibw_writer_init(&w, out, sizeof out);
    n = ibw_enc_start_api(&w, c->client_id, "");
    if (n < 0)
        return IBCORE_EPROTO; /* cannot happen: a 32-bit id fits 64 bytes */
    c->state = ST_START_API;
    return conn_write(c, out, (size_t)n);
}

/* Error/notice frame (4), laid out per the negotiated version (§4.3): "4,2,id,code,text[,json]"
 * below 194, "4,id,code,text,json,time" from 194. Returns the code, or IBCORE_EPROTO. */
static int on_error_frame(struct ibcore_conn *c, struct ibw_reader *r)
{
    const char *text = "";
    int id = 0, code = 0;

    if (ibw_dec_error(r, c->server_version, &id, &code, &text) < 0)
        return IBCORE_EPROTO;
    if (c->notice_cb)
        c->notice_cb(c, id, code, text, c->notice_data);
    return code;
}

/* Offers a frame to the pending requests in order; the first match takes it. */
static void offer_to_requests(struct ibcore_conn *c, const uint8_t *p, size_t len)
{
    for (struct req **link = &c->reqs; *link; link = &(*link)->next) {
        struct req *r = *link;
        bool hit = r->match(p, len, r->match_data);

        if (c->state != ST_READY) /* the predicate closed the connection: r is gone */
            return;
        if (hit) {
            *link = r->next;
            rearm_requests(c);
            complete_req(c, r, 0, p, len);
            return;
        }
    }
}

/* One complete frame. Returns 0 or the error that ends the connection. */
static int on_frame(struct ibcore_conn *c, const uint8_t *p, size_t len)
{
    enum conn_state at_entry = c->state;
    struct ibw_reader r;
    int id = 0, version = 0;

    c->last_rx_ms = uv_now(c->loop);
    if (p[len - 1] != '\0') /* every field, the last included, ends with NUL (§1.1) */
        return IBCORE_EPROTO;
    if (at_entry == ST_HELLO)
        return on_version_reply(c, p, len);
    ibw_reader_init(&r, p, len);
    if (ibw_read_msg_id(&r, &id) < 0)
        return IBCORE_EPROTO;
    switch (id) {
    case IBW_IN_ERR_MSG: {
        int code = on_error_frame(c, &r);

        if (code == IBCORE_EPROTO)
            return code;
        if (code == 326 && at_entry == ST_START_API)
            return IBCORE_ECLIENTID;
        break;
    }
    case IBW_IN_NEXT_VALID_ID: {
        int64_t next = 0;

        ibw_read_int(&r, &version);
        ibw_read_long(&r, &next);
        if (r.err)
            return IBCORE_EPROTO;
        c->next_valid_id = next;
        c->has_next_valid_id = true;
        break;
    }
    case IBW_IN_MANAGED_ACCTS: {
        const char *accounts;

        ibw_read_int(&r, &version);
        ibw_read_str(&r, &accounts);
        if (r.err)
            return IBCORE_EPROTO;
        if (accounts[0] != '\0') { /* ready needs at least one account (§3.2) */
            char *copy = strdup(accounts);

            if (copy == NULL)
                return UV_ENOMEM;
            free(c->accounts);
            c->accounts = copy;
        }
        break;
    }
    default:
        break;
    }
    if (c->state != at_entry) /* a notice callback closed the connection */
        return 0;
    if (at_entry == ST_START_API && c->has_next_valid_id && c->accounts) {
        c->state = ST_READY;
        uv_timer_stop(&c->timer); /* the connect deadline is met */
        finish_connect(c, 0);
    } else if (at_entry == ST_READY) {
        offer_to_requests(c, p, len);
    }
    return 0;
}

/* Keeps room for the partial frame at the start of the buffer (its length is known once its 4
 * length bytes are in, and was checked against IBW_MAX_FRAME), and gives back what a large
 * frame left behind. */
static int in_reserve(struct ibcore_conn *c)
{
    size_t want = IN_INITIAL_CAP;
    uint8_t *p;

    if (c->in_len >= 4) {
        size_t total = 4 + ((size_t)c->in[0] << 24 | (size_t)c->in[1] << 16 |
                            (size_t)c->in[2] << 8 | (size_t)c->in[3]);

        if (total > want)
            want = total;
    }
    if (want > IN_MAX_CAP) /* unreachable: ibw_frame_parse() refused that length */
        return IBCORE_EPROTO;
    if (want == c->in_cap)
        return 0;
    p = realloc(c->in, want);
    if (p == NULL)
        return want > c->in_cap ? UV_ENOMEM : 0; /* a failed shrink keeps the larger buffer */
    c->in = p;
    c->in_cap = want;
    return 0;
}

/* Parses every complete frame in the buffer; any split of the stream is accepted. */
static void process_input(struct ibcore_conn *c)
{
    size_t off = 0;
    int rc = 0;

    while (c->state >= ST_HELLO && c->state <= ST_READY) { /* a callback may close it */
        struct ibw_frame f;
        ssize_t n = ibw_frame_parse(c->in + off, c->in_len - off, IBW_MAX_FRAME, &f);

        if (n < 0) { /* zero length or over 16 MiB */
            rc = IBCORE_EPROTO;
            break;
        }
        if (n == 0) {
            /* A frame starts with a decimal field (msg id or version): refuse garbage as soon
             * as its first payload byte is in, not after waiting for its claimed length. */
            if (c->in_len - off > 4 && (c->in[off + 4] < '0' || c->in[off + 4] > '9'))
                rc = IBCORE_EPROTO;
            break;
        }
        off += (size_t)n;
        rc = on_frame(c, f.payload, f.len);
        if (rc < 0)
            break;
    }
    if (rc == 0 && (c->state == ST_FAILED || c->state == ST_CLOSING))
        return; /* a callback closed it: the buffer is no longer used */
    if (rc == 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        rc = in_reserve(c);
    }
    if (rc < 0)
        conn_fail(c, rc);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ibcore_conn *c = h->data;

    (void)suggested;
    /* in_reserve() keeps room: the partial frame is shorter than the buffer. */
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ibcore_conn *c = s->data;

    (void)buf;
    if (c->state == ST_FAILED || c->state == ST_CLOSING || nread == 0)
        return;
    if (nread > 0) {
        c->in_len += (size_t)nread;
        process_input(c);
    } else if (nread == UV_EOF) {
        /* Before ready, a close is how a gateway refuses (326 without the error, a bad
         * version...): fail at once instead of waiting out the deadline (§6.2). */
        conn_fail(c, c->state == ST_READY ? IBCORE_ECLOSED : IBCORE_ENOTREADY);
    } else {
        conn_fail(c, (int)nread);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct ibcore_conn *c = req->data;
    int rc;

    if (c->state != ST_CONNECTING) /* timed out or closed: uv_close() cancelled us */
        return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0)
        rc = conn_write(c, c->hello, c->hello_len);
    if (rc < 0) {
        conn_fail(c, rc);
        return;
    }
    c->state = ST_HELLO;
}

static void on_timer(uv_timer_t *t)
{
    struct ibcore_conn *c = t->data;
    uint64_t now = uv_now(c->loop);

    if (c->state != ST_READY) {
        conn_fail(c, UV_ETIMEDOUT); /* the connect deadline, whatever the step */
        return;
    }
    for (;;) {
        struct req **link = &c->reqs, *r;

        while (*link && (*link)->deadline_ms > now)
            link = &(*link)->next;
        r = *link;
        if (r == NULL)
            break;
        *link = r->next;
        /* A late answer could now be taken for another request's: never reuse (§7.4). */
        c->is_poisoned = true;
        complete_req(c, r, UV_ETIMEDOUT, NULL, 0);
        if (c->state != ST_READY)
            return;
    }
    rearm_requests(c);
}

/* ---------------------------------------------------------------------------------------------
 * API
 */
void ibcore_conn_opts_init(struct ibcore_conn_opts *o)
{
    o->host = "127.0.0.1";
    o->port = 4002;
    o->client_id = 1;
    o->min_version = IBW_MIN_VERSION;
    o->max_version = IBW_DEFAULT_VERSION;
    o->connect_options = "";
}

struct ibcore_conn *ibcore_conn_new(uv_loop_t *loop)
{
    struct ibcore_conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->state = ST_IDLE;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    return c;
}

int ibcore_conn_connect(struct ibcore_conn *c, const struct ibcore_conn_opts *o,
                        uint64_t deadline_ms, ibcore_conn_cb cb, void *data)
{
    struct sockaddr_storage addr;
    struct ibw_writer w;
    ssize_t n;
    int rc;

    if (c->state == ST_CLOSING || c->state == ST_FAILED)
        return IBCORE_ECLOSED;
    if (c->state != ST_IDLE)
        return UV_EALREADY;
    if (o == NULL || cb == NULL || o->host == NULL || o->port < 1 || o->port > 65535 ||
        o->min_version < IBW_MIN_VERSION || o->max_version > IBW_MAX_VERSION ||
        o->min_version > o->max_version)
        return UV_EINVAL;
    if (uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&addr) != 0)
        return UV_EINVAL;
    ibw_writer_init(&w, c->hello, sizeof c->hello);
    n = ibw_enc_hello(&w, o->min_version, o->max_version, o->connect_options);
    if (n < 0)
        return UV_EINVAL; /* connect options too long */
    c->in = malloc(IN_INITIAL_CAP);
    if (c->in == NULL)
        return UV_ENOMEM;
    c->in_cap = IN_INITIAL_CAP;
    rc = uv_tcp_init(c->loop, &c->tcp);
    if (rc < 0) {
        free(c->in);
        c->in = NULL;
        return rc;
    }
    c->tcp.data = c;
    c->has_tcp = true;
    c->open_handles++;
    c->hello_len = (size_t)n;
    c->client_id = o->client_id;
    c->min_version = o->min_version;
    c->max_version = o->max_version;
    c->connect_req.data = c;
    /* A deadline already past: no connect(2) at all, the timer reports it next turn. */
    if (deadline_ms > uv_now(c->loop)) {
        rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&addr, on_connect);
        if (rc < 0) {
            c->state = ST_FAILED;
            close_tcp(c);
            return rc;
        }
    }
    c->state = ST_CONNECTING;
    c->connect_cb = cb;
    c->connect_data = data;
    uv_timer_start(&c->timer, on_timer, timeout_until(c, deadline_ms), 0);
    return 0;
}

void ibcore_conn_on_notice(struct ibcore_conn *c, ibcore_notice_cb cb, void *data)
{
    c->notice_cb = cb;
    c->notice_data = data;
}

bool ibcore_conn_is_ready(const struct ibcore_conn *c)
{
    return c->state == ST_READY;
}

bool ibcore_conn_is_poisoned(const struct ibcore_conn *c)
{
    return c->is_poisoned;
}

int ibcore_conn_server_version(const struct ibcore_conn *c)
{
    return c->server_version;
}

int ibcore_conn_client_id(const struct ibcore_conn *c)
{
    return c->client_id;
}

int64_t ibcore_conn_next_valid_id(const struct ibcore_conn *c)
{
    return c->next_valid_id;
}

const char *ibcore_conn_accounts(const struct ibcore_conn *c)
{
    return c->accounts ? c->accounts : "";
}

uint64_t ibcore_conn_last_rx_ms(const struct ibcore_conn *c)
{
    return c->last_rx_ms;
}

int ibcore_conn_fd(const struct ibcore_conn *c)
{
    uv_os_fd_t fd;

    if (!c->has_tcp || c->state < ST_HELLO || c->state > ST_READY)
        return -1;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        return -1;
    return fd;
}

bool ibcore_conn_peer_gone(const struct ibcore_conn *c)
{
    struct pollfd pfd = { .fd = ibcore_conn_fd(c), .events = POLLIN | POLLRDHUP };
    int n;

    if (pfd.fd < 0)
        return true;
    do
        n = poll(&pfd, 1, 0);
    while (n < 0 && errno == EINTR);
    return n > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static int request_start(struct ibcore_conn *c, const uint8_t *frame, size_t len,
                         ibcore_match_fn match, void *match_data, uint64_t deadline_ms,
                         ibcore_reply_cb reply_cb, ibcore_time_cb time_cb, void *data)
{
    struct ibw_frame f;
    struct req *r, **link = &c->reqs;
    unsigned pending = 0;
    int rc;

    if (c->state != ST_READY)
        return IBCORE_ECLOSED;
    if (c->is_poisoned)
        return IBCORE_EPOISONED;
    if (frame == NULL || match == NULL || (reply_cb == NULL && time_cb == NULL) ||
        ibw_frame_parse(frame, len, IBW_MAX_FRAME, &f) != (ssize_t)len)
        return UV_EINVAL;
    for (; *link; link = &(*link)->next)
        pending++;
    if (pending >= MAX_PENDING ||
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + len > MAX_QUEUED_BYTES)
        return UV_ENOBUFS;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    rc = conn_write(c, frame, len);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->deadline_ms = deadline_ms;
    r->match = match;
    r->match_data = match_data;
    r->reply_cb = reply_cb;
    r->time_cb = time_cb;
    r->data = data;
    *link = r; /* the tail: requests are offered frames oldest first */
    rearm_requests(c);
    return 0;
}

int ibcore_conn_request(struct ibcore_conn *c, const uint8_t *frame, size_t len,
                        ibcore_match_fn match, void *match_data, uint64_t deadline_ms,
                        ibcore_reply_cb cb, void *data)
{
    return request_start(c, frame, len, match, match_data, deadline_ms, cb, NULL, data);
}

static bool match_current_time(const uint8_t *payload, size_t len, void *data)
{
    struct ibw_reader r;
    int id = 0;

    (void)data;
    ibw_reader_init(&r, payload, len);
    return ibw_read_msg_id(&r, &id) == 0 && id == IBW_IN_CURRENT_TIME;
}

int ibcore_conn_current_time(struct ibcore_conn *c, uint64_t deadline_ms, ibcore_time_cb cb,
                             void *data)
{
    struct ibw_writer w;
    uint8_t frame[16];
    ssize_t n;

    ibw_writer_init(&w, frame, sizeof frame);
    ibw_writer_begin(&w);
    ibw_put_int(&w, IBW_OUT_REQ_CURRENT_TIME);
    ibw_put_int(&w, 1);
    n = ibw_writer_end(&w);
    if (n < 0)
        return UV_EINVAL; /* cannot happen: 9 bytes */
    return request_start(c, frame, (size_t)n, match_current_time, NULL, deadline_ms, NULL, cb,
                         data);
}

void ibcore_conn_close(struct ibcore_conn *c, void (*cb)(void *data), void *data)
{
    enum conn_state prev;

    if (c == NULL || c->state == ST_CLOSING)
        return; /* a second close is a no-op: its cb is never called */
    prev = c->state;
    c->state = ST_CLOSING;
    c->close_cb = cb;
    c->close_data = data;
    uv_timer_stop(&c->timer);
    close_tcp(c);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    /* Pending work completes now, inside this call, each exactly once; the object stays
     * valid until the close callbacks run on a later loop turn. */
    if (prev == ST_READY)
        fail_requests(c, UV_ECANCELED);
    else
        finish_connect(c, UV_ECANCELED);
}
