/* Admin HTTP listener: libuv TCP, http-parser 2.9 request parsing, one response at a time.
 *
 * Each connection holds a fixed input buffer that read_cb fills and conn_drive() feeds to the
 * parser. The parser is paused at two points of every request: when the header section is
 * complete (so the exact header size is known, Content-Length is checked against the body cap
 * before any body byte is buffered, and "100 Continue" can be sent) and when the message is
 * complete (so the handler runs outside the parser and pipelined requests wait their turn).
 * While a response is being written the connection stops reading; bytes of a pipelined request
 * already read stay in the input buffer until the write completes. The kernel's socket buffers
 * are therefore the only queue, and a client that pipelines without reading cannot grow ours.
 *
 * Closing after a response (Connection: close, or a 4xx from the listener) is graceful: shut
 * down the write side, then read and discard until the peer closes or the linger deadline
 * passes, so unread request bytes do not turn into a RST that destroys the response in flight.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <http_parser.h>
#include <uv.h>

#define ADMIN_BACKLOG         128
#define ADMIN_MAX_CONNS       64
#define ADMIN_IDLE_TIMEOUT_MS 30000u
#define ADMIN_LINGER_MS       2000u
#define ADMIN_IN_CAP          (64u << 10) /* read buffer per connection */
#define ADMIN_FIELD_CAP       32u         /* longest header name we need to recognise */
#define ADMIN_CTYPE_CAP       256u        /* longest Content-Type value accepted */
#define ADMIN_EXPECT_CAP      32u
#define ADMIN_URL_MIN_CAP     256u

enum conn_state {
    CONN_READING, /* parsing requests */
    CONN_WRITING, /* one response in flight; reading stopped, parser paused */
    CONN_LINGER,  /* write side shut down; discarding input until EOF or the deadline */
    CONN_CLOSING  /* uv_close() issued on both handles */
};

enum interesting_header { HDR_OTHER, HDR_CONTENT_TYPE, HDR_EXPECT };

struct conn {
    struct mgw_admin *admin;
    struct conn *prev;
    struct conn *next;
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle deadline; the linger deadline once lingering */
    uv_write_t write_req;
    uv_write_t continue_req;
    uv_shutdown_t shutdown_req;
    http_parser parser;
    int open_handles;
    enum conn_state state;
    bool close_after_write;
    bool continue_pending;

    /* The request being parsed; request_reset() clears it between requests. */
    bool in_head;   /* header section not complete yet: consumed bytes count against the cap */
    bool head_done; /* on_headers_complete fired; conn_drive() handles it */
    bool msg_ready; /* on_message_complete fired; conn_drive() runs the handler */
    size_t head_bytes;
    int reject_status; /* set by a parser callback that refused the request */
    const char *reject_msg;
    char *url; /* NUL-terminated, at most MGW_ADMIN_MAX_HEADER bytes */
    size_t url_len;
    size_t url_cap;
    const char *path;
    const char *query;
    bool hdr_in_value;
    enum interesting_header hdr;
    char field[ADMIN_FIELD_CAP + 1];
    size_t field_len;
    bool field_too_long;
    char content_type[ADMIN_CTYPE_CAP + 1];
    size_t content_type_len;
    char expect[ADMIN_EXPECT_CAP + 1];
    size_t expect_len;
    bool expect_too_long;
    char *body; /* NUL-terminated, at most MGW_ADMIN_MAX_BODY bytes */
    size_t body_len;
    size_t body_cap;

    /* The response in flight. */
    char *resp_body; /* the handler's body, freed when the write completes */
    char resp_head[512];
    char empty_object[3];
    char newline[2];
    char continue_line[32];

    size_t in_off; /* in[in_off, in_len) is read but not yet parsed */
    size_t in_len;
    char in[ADMIN_IN_CAP];
};

/* A connection over the limit: accepted only to be closed at once. */
struct rejected {
    struct mgw_admin *admin;
    uv_tcp_t tcp;
};

struct mgw_admin {
    uv_loop_t *loop;
    mgw_admin_handler handler;
    void *ctx;
    uv_tcp_t listener;
    bool listen_tried;
    bool closing;
    int port;
    uint64_t idle_timeout_ms;
    size_t open; /* the listener plus every connection not yet freed */
    struct conn *conns;
    size_t conn_count;
    void (*close_cb)(void *data);
    void *close_data;
};

static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_drive(struct conn *c);
static void conn_close(struct conn *c);

/* ---- lifetime ---------------------------------------------------------------------------- */

static void admin_release(struct mgw_admin *a)
{
    void (*cb)(void *data);
    void *data;

    if (--a->open > 0 || !a->closing)
        return;
    cb = a->close_cb;
    data = a->close_data;
    free(a);
    if (cb != NULL)
        cb(data);
}

static void on_listener_closed(uv_handle_t *h)
{
    admin_release(h->data);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct mgw_admin *a = c->admin;

    if (--c->open_handles > 0) /* tcp and timer both closed */
        return;
    free(c->resp_body);
    free(c->body);
    free(c->url);
    free(c);
    admin_release(a);
}

static void conn_close(struct conn *c)
{
    struct mgw_admin *a = c->admin;

    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    a->conn_count--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
    /* Idle for too long, or the peer did not close within the linger deadline. */
    conn_close(t->data);
}

static void idle_restart(struct conn *c)
{
    uv_timer_start(&c->timer, on_timer, c->admin->idle_timeout_ms, 0);
}

/* ---- request state ----------------------------------------------------------------------- */

static void request_reset(struct conn *c)
{
    c->in_head = true;
    c->head_done = false;
    c->msg_ready = false;
    c->head_bytes = 0;
    c->reject_status = 0;
    c->reject_msg = NULL;
    c->url_len = 0;
    c->path = NULL;
    c->query = NULL;
    c->hdr_in_value = false;
    c->hdr = HDR_OTHER;
    c->field_len = 0;
    c->field_too_long = false;
    c->content_type_len = 0;
    c->content_type[0] = '\0';
    c->expect_len = 0;
    c->expect[0] = '\0';
    c->expect_too_long = false;
    free(c->body);
    c->body = NULL;
    c->body_len = 0;
    c->body_cap = 0;
}

static int refuse(struct conn *c, int status, const char *msg)
{
    c->reject_status = status;
    c->reject_msg = msg;
    return -1; /* makes http_parser_execute() stop with an HPE_CB_* error */
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    size_t need = c->url_len + len + 1;

    if (len > MGW_ADMIN_MAX_HEADER - c->url_len)
        return refuse(c, 414, NULL);
    if (need > c->url_cap) {
        size_t cap = c->url_cap ? c->url_cap : ADMIN_URL_MIN_CAP;
        char *url;

        while (cap < need)
            cap *= 2;
        if (cap > MGW_ADMIN_MAX_HEADER + 1)
            cap = MGW_ADMIN_MAX_HEADER + 1;
        url = realloc(c->url, cap);
        if (url == NULL)
            return refuse(c, 500, "out of memory");
        c->url = url;
        c->url_cap = cap;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (c->hdr_in_value) { /* a new header line starts */
        c->hdr_in_value = false;
        c->field_len = 0;
        c->field_too_long = false;
    }
    if (len > ADMIN_FIELD_CAP - c->field_len) {
        c->field_too_long = true; /* no header we look at is this long */
        return 0;
    }
    memcpy(c->field + c->field_len, at, len);
    c->field_len += len;
    c->field[c->field_len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (!c->hdr_in_value) {
        c->hdr_in_value = true;
        c->hdr = HDR_OTHER;
        if (!c->field_too_long && strcasecmp(c->field, "Content-Type") == 0) {
            c->hdr = HDR_CONTENT_TYPE;
            c->content_type_len = 0; /* a repeated header: the last one wins */
        } else if (!c->field_too_long && strcasecmp(c->field, "Expect") == 0) {
            c->hdr = HDR_EXPECT;
            c->expect_len = 0;
            c->expect_too_long = false;
        }
    }
    switch (c->hdr) {
    case HDR_CONTENT_TYPE:
        if (len > ADMIN_CTYPE_CAP - c->content_type_len)
            return refuse(c, 431, "Content-Type header too long (limit 256 bytes)");
        memcpy(c->content_type + c->content_type_len, at, len);
        c->content_type_len += len;
        c->content_type[c->content_type_len] = '\0';
        break;
    case HDR_EXPECT:
        if (len > ADMIN_EXPECT_CAP - c->expect_len) {
            c->expect_too_long = true; /* an expectation we do not know: ignored */
            break;
        }
        memcpy(c->expect + c->expect_len, at, len);
        c->expect_len += len;
        c->expect[c->expect_len] = '\0';
        break;
    case HDR_OTHER:
        break;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;

    /* Pausing makes http_parser_execute() return here, so the caller learns exactly how many
     * bytes the header section took and can check the body size before reading the body. */
    c->head_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static bool body_reserve(struct conn *c, size_t need)
{
    size_t cap;
    char *body;

    if (need + 1 <= c->body_cap)
        return true;
    cap = c->body_cap ? c->body_cap : 1024;
    while (cap < need + 1)
        cap *= 2;
    if (cap > MGW_ADMIN_MAX_BODY + 1)
        cap = MGW_ADMIN_MAX_BODY + 1;
    body = realloc(c->body, cap);
    if (body == NULL)
        return false;
    c->body = body;
    c->body_cap = cap;
    return true;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    /* Content-Length was checked before the body; this catches chunked bodies. */
    if (len > MGW_ADMIN_MAX_BODY - c->body_len)
        return refuse(c, 413, NULL);
    if (!body_reserve(c, c->body_len + len))
        return refuse(c, 500, "out of memory");
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;

    c->msg_ready = true;
    http_parser_pause(p, 1); /* the handler runs outside the parser; later requests wait */
    return 0;
}

/* Splits the request target in place into path and query (fragment dropped). Absolute-form
 * targets ("http://host/x?y") lose scheme and authority. No percent-decoding. */
static void target_split(struct conn *c)
{
    char *start;
    char *mark;

    if (c->url == NULL) {
        c->path = "/";
        c->query = "";
        return;
    }
    start = c->url;
    if (*start != '/') {
        mark = strstr(start, "://");
        if (mark != NULL)
            start = mark + 3 + strcspn(mark + 3, "/?#");
    }
    mark = strchr(start, '#');
    if (mark != NULL)
        *mark = '\0';
    mark = strchr(start, '?');
    if (mark != NULL) {
        *mark = '\0';
        c->query = mark + 1;
    } else {
        c->query = "";
    }
    c->path = *start != '\0' ? start : "/";
}

/* ---- responses --------------------------------------------------------------------------- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    if (status < 0)
        conn_close(c); /* no-op when the close caused the cancellation */
}

static void conn_linger(struct conn *c)
{
    c->state = CONN_LINGER;
    c->in_off = c->in_len = 0;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, ADMIN_LINGER_MS, 0);
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    free(c->resp_body);
    c->resp_body = NULL;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write) {
        conn_linger(c);
        return;
    }
    request_reset(c);
    c->state = CONN_READING;
    http_parser_pause(&c->parser, 0);
    idle_restart(c);
    conn_drive(c); /* a pipelined request may already be buffered */
    if (c->state == CONN_READING && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static bool content_type_ok(const char *ct)
{
    size_t n = 0;

    for (; ct[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)ct[n];

        if (ch < 0x20 || ch == 0x7f)
            return false; /* would split the header */
    }
    return n > 0 && n <= 128;
}

/* Writes one response; takes ownership of body (malloc'd, NUL-terminated, or NULL). */
static void conn_respond(struct conn *c, int status, char *body, const char *content_type,
                         bool keep_alive, bool omit_body)
{
    uv_buf_t bufs[3];
    unsigned nbufs = 1;
    const char *reason;
    char *out_body;
    size_t body_len;
    bool has_body;
    bool add_newline;
    int n;

    if (content_type == NULL)
        content_type = "application/json";
    if (status < 200 || status > 599 || !content_type_ok(content_type)) {
        free(body);
        body = mgw_admin_error_body("internal error: the handler built an invalid response");
        status = 500;
        content_type = "application/json";
    }
    reason = http_status_str((enum http_status)status);
    if (reason[0] == '<') /* "<unknown>": a valid code without a registered phrase */
        reason = "";
    has_body = status != 204 && status != 304;
    out_body = body;
    if (out_body == NULL) {
        memcpy(c->empty_object, "{}", 3);
        out_body = c->empty_object;
    }
    body_len = has_body ? strlen(out_body) : 0;
    add_newline = body_len > 0 && out_body[body_len - 1] != '\n';

    if (has_body) {
        n = snprintf(c->resp_head, sizeof c->resp_head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n",
                     status, reason, content_type, body_len + (add_newline ? 1 : 0),
                     keep_alive ? "keep-alive" : "close");
    } else {
        n = snprintf(c->resp_head, sizeof c->resp_head, "HTTP/1.1 %d %s\r\nConnection: %s\r\n\r\n",
                     status, reason, keep_alive ? "keep-alive" : "close");
    }
    if (n < 0 || (size_t)n >= sizeof c->resp_head) { /* content_type_ok() bounds it: defensive */
        free(body);
        conn_close(c);
        return;
    }
    bufs[0] = uv_buf_init(c->resp_head, (unsigned)n);
    if (has_body && !omit_body) {
        bufs[nbufs++] = uv_buf_init(out_body, (unsigned)body_len);
        if (add_newline) {
            memcpy(c->newline, "\n", 2);
            bufs[nbufs++] = uv_buf_init(c->newline, 1);
        }
    }
    c->resp_body = body;
    c->close_after_write = !keep_alive;
    c->state = CONN_WRITING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write) != 0) {
        free(c->resp_body);
        c->resp_body = NULL;
        conn_close(c);
    }
}

/* Answers a request the listener refuses itself, then closes the connection. */
static void conn_reject(struct conn *c, int status, const char *msg)
{
    char text[160];

    if (msg == NULL && status == 413) {
        snprintf(text, sizeof text, "request body too large (limit %u bytes)",
                 (unsigned)MGW_ADMIN_MAX_BODY);
        msg = text;
    } else if (msg == NULL && status == 414) {
        snprintf(text, sizeof text, "request target too long (limit %u bytes)",
                 (unsigned)MGW_ADMIN_MAX_HEADER);
        msg = text;
    } else if (msg == NULL && status == 431) {
        snprintf(text, sizeof text, "request header section too large (limit %u bytes)",
                 (unsigned)MGW_ADMIN_MAX_HEADER);
        msg = text;
    } else if (msg == NULL) {
        msg = "bad request";
    }
    conn_respond(c, status, mgw_admin_error_body(msg), NULL, false, false);
}

static void conn_reject_parse_error(struct conn *c, enum http_errno e)
{
    char text[200];

    if (c->reject_status != 0) {
        conn_reject(c, c->reject_status, c->reject_msg);
        return;
    }
    if (e == HPE_HEADER_OVERFLOW) {
        conn_reject(c, 431, NULL);
        return;
    }
    snprintf(text, sizeof text, "malformed HTTP request: %s", http_errno_description(e));
    conn_reject(c, 400, text);
}

static void on_continue_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    c->continue_pending = false;
    if (status < 0)
        conn_close(c);
}

/* The header section is complete: enforce the caps before any body byte is buffered. */
static void conn_head_complete(struct conn *c)
{
    uint64_t declared = c->parser.content_length;

    /* Paused in on_headers_complete, http-parser 2.9 has not yet consumed the final LF. */
    c->head_bytes += 1;
    c->in_head = false;
    if (c->head_bytes > MGW_ADMIN_MAX_HEADER) {
        conn_reject(c, 431, NULL);
        return;
    }
    if (declared != ULLONG_MAX && declared > MGW_ADMIN_MAX_BODY) {
        conn_reject(c, 413, NULL);
        return;
    }
    if (declared != ULLONG_MAX && declared > 0 && !body_reserve(c, (size_t)declared)) {
        conn_reject(c, 500, "out of memory");
        return;
    }
    target_split(c);
    if (!c->expect_too_long && strcasecmp(c->expect, "100-continue") == 0 &&
        c->parser.http_major == 1 && c->parser.http_minor >= 1 && !c->continue_pending &&
        ((c->parser.flags & F_CHUNKED) != 0 || (declared != ULLONG_MAX && declared > 0))) {
        int n =
            snprintf(c->continue_line, sizeof c->continue_line, "HTTP/1.1 100 Continue\r\n\r\n");
        uv_buf_t buf = uv_buf_init(c->continue_line, (unsigned)n);

        c->continue_req.data = c;
        if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &buf, 1, on_continue_written) != 0) {
            conn_close(c);
            return;
        }
        c->continue_pending = true;
    }
}

static void conn_dispatch(struct conn *c)
{
    struct mgw_admin *a = c->admin;
    struct mgw_http_request req;
    struct mgw_http_response resp;
    bool keep_alive;

    c->msg_ready = false;
    memset(&req, 0, sizeof req);
    req.method = http_method_str((enum http_method)c->parser.method);
    req.path = c->path != NULL ? c->path : "/";
    req.query = c->query != NULL ? c->query : "";
    req.body = c->body != NULL ? c->body : "";
    req.body_len = c->body_len;
    req.content_type = c->content_type;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    /* After an Upgrade (or CONNECT) the parser accepts no further request: close instead. */
    keep_alive = http_should_keep_alive(&c->parser) && !c->parser.upgrade;

    a->handler(a->ctx, &req, &resp);
    if (c->state == CONN_CLOSING) { /* the handler closed the listener */
        free(resp.body);
        return;
    }
    conn_respond(c, resp.status, resp.body, resp.content_type, keep_alive,
                 c->parser.method == HTTP_HEAD);
}

static void conn_drive(struct conn *c)
{
    while (c->state == CONN_READING && c->in_off < c->in_len) {
        size_t avail = c->in_len - c->in_off;
        bool was_head = c->in_head;
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + c->in_off, avail);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

        c->in_off += n;
        if (was_head)
            c->head_bytes += n;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (c->head_done) {
                c->head_done = false;
                conn_head_complete(c);
            }
            if (c->msg_ready && c->state == CONN_READING)
                conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            conn_reject_parse_error(c, e);
            return;
        }
        if (was_head && c->head_bytes > MGW_ADMIN_MAX_HEADER) {
            conn_reject(c, 431, NULL);
            return;
        }
        if (n < avail) { /* the parser stopped without saying why */
            conn_reject(c, 400, "malformed HTTP request: unexpected data");
            return;
        }
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    if (c->state == CONN_LINGER) { /* discarding */
        *buf = uv_buf_init(c->in, sizeof c->in);
        return;
    }
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    /* Zero bytes makes libuv report UV_ENOBUFS, which closes the connection. */
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    (void)buf;
    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_LINGER) {
        if (nread < 0) /* the peer closed: done */
            conn_close(c);
        return;
    }
    if (nread < 0 || c->state != CONN_READING) {
        /* EOF mid-request (or before one): nobody is left to answer. */
        conn_close(c);
        return;
    }
    c->in_len += (size_t)nread;
    idle_restart(c);
    conn_drive(c);
}

/* ---- listener ---------------------------------------------------------------------------- */

static void on_rejected_closed(uv_handle_t *h)
{
    struct rejected *r = h->data;
    struct mgw_admin *a = r->admin;

    free(r);
    admin_release(a);
}

static void reject_connection(struct mgw_admin *a)
{
    struct rejected *r = malloc(sizeof *r);

    if (r == NULL)
        return; /* out of memory: the connection waits in the backlog */
    r->admin = a;
    if (uv_tcp_init(a->loop, &r->tcp) != 0) {
        free(r);
        return;
    }
    r->tcp.data = r;
    a->open++;
    uv_accept((uv_stream_t *)&a->listener, (uv_stream_t *)&r->tcp);
    uv_close((uv_handle_t *)&r->tcp, on_rejected_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct mgw_admin *a = server->data;
    struct conn *c;

    if (status < 0 || a->closing)
        return;
    if (a->conn_count >= ADMIN_MAX_CONNS) {
        reject_connection(a);
        return;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        reject_connection(a);
        return;
    }
    if (uv_tcp_init(a->loop, &c->tcp) != 0) {
        free(c);
        reject_connection(a);
        return;
    }
    uv_timer_init(a->loop, &c->timer); /* cannot fail */
    c->admin = a;
    c->tcp.data = c;
    c->timer.data = c;
    c->shutdown_req.data = c;
    c->open_handles = 2;
    c->state = CONN_READING;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    request_reset(c);
    c->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = c;
    a->conns = c;
    a->conn_count++;
    a->open++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1); /* small responses; best effort */
    idle_restart(c);
}

struct mgw_admin *mgw_admin_new(uv_loop_t *loop, mgw_admin_handler handler, void *ctx)
{
    struct mgw_admin *a;

    if (loop == NULL || handler == NULL)
        return NULL;
    a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    if (uv_tcp_init(loop, &a->listener) != 0) {
        free(a);
        return NULL;
    }
    a->listener.data = a;
    a->loop = loop;
    a->handler = handler;
    a->ctx = ctx;
    a->port = -1;
    a->idle_timeout_ms = ADMIN_IDLE_TIMEOUT_MS;
    a->open = 1;
    return a;
}

static void set_err(struct mgw_err *err, const char *host, int port, const char *reason)
{
    if (err == NULL)
        return;
    /* An IPv6 literal is bracketed so the port stays readable. A long host is cut short. */
    if (strchr(host, ':') != NULL)
        snprintf(err->msg, sizeof err->msg, "admin [%.200s]:%d: %s", host, port, reason);
    else
        snprintf(err->msg, sizeof err->msg, "admin %.200s:%d: %s", host, port, reason);
}

int mgw_admin_listen(struct mgw_admin *a, const char *host, int port, struct mgw_err *err)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } addr;
    int len = (int)sizeof addr;
    char reason[160];
    int rc;

    if (host == NULL)
        host = "";
    if (a->closing || a->listen_tried) {
        set_err(err, host, port, "listener already started (or closed)");
        return UV_EINVAL;
    }
    if (port < 0 || port > 65535) {
        set_err(err, host, port, "port out of range (0-65535)");
        return UV_EINVAL;
    }
    memset(&addr, 0, sizeof addr);
    if (uv_ip4_addr(host, port, &addr.in4) != 0 && uv_ip6_addr(host, port, &addr.in6) != 0) {
        snprintf(reason, sizeof reason, "\"%.100s\" is not a numeric IPv4 or IPv6 address", host);
        set_err(err, host, port, reason);
        return UV_EINVAL;
    }
    a->listen_tried = true;
    rc = uv_tcp_bind(&a->listener, &addr.sa, 0);
    if (rc == 0) /* libuv may defer a bind error such as EADDRINUSE to listen */
        rc = uv_listen((uv_stream_t *)&a->listener, ADMIN_BACKLOG, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&a->listener, &addr.sa, &len);
    if (rc != 0) {
        set_err(err, host, port, uv_strerror(rc));
        return rc;
    }
    a->port = addr.sa.sa_family == AF_INET6 ? ntohs(addr.in6.sin6_port) : ntohs(addr.in4.sin_port);
    return 0;
}

int mgw_admin_port(const struct mgw_admin *a)
{
    return a->port;
}

size_t mgw_admin_conn_count(const struct mgw_admin *a)
{
    return a->conn_count;
}

void mgw_admin_set_idle_timeout(struct mgw_admin *a, uint64_t timeout_ms)
{
    a->idle_timeout_ms = timeout_ms > 0 ? timeout_ms : ADMIN_IDLE_TIMEOUT_MS;
}

void mgw_admin_close(struct mgw_admin *a, void (*cb)(void *data), void *data)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    a->close_cb = cb;
    a->close_data = data;
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    while (a->conns != NULL)
        conn_close(a->conns); /* unlinks it */
}

char *mgw_admin_error_body(const char *msg)
{
    cJSON *obj = cJSON_CreateObject();
    char *out = NULL;

    if (obj == NULL)
        return NULL;
    if (cJSON_AddStringToObject(obj, "error", msg != NULL ? msg : "") != NULL)
        out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return out;
}
