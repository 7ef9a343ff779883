/* Proxy mode of the session (docs/proxy.md): the client's handshake, START_API and requests go
 * to the upstream gateway, the upstream's version reply and frames come back to the client, and
 * the fault engine is asked at the same events as in fake mode, through the same code
 * (mgw__fault_point, mgw_session_apply). I/O-free like the rest of the session: bytes come in
 * through mgw_session_feed() and mgw_session_feed_upstream() and leave through io->send and
 * px->send.
 *
 * Events, as the fault engine sees them:
 *   accept       the client's TCP connection was accepted (the server connects upstream after)
 *   hello        the client's handshake was parsed, before it goes upstream
 *   version_sent the upstream's version reply went to the client
 *   start_api    the client's START_API was parsed, before it goes upstream
 *   ready        the upstream's managedAccounts and nextValidId went to the client
 *   request      a client frame after START_API, before it goes upstream
 */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define LEG_CLIENT   "client"
#define LEG_UPSTREAM "upstream"

int mgw_session_proxy(struct mgw_session *s, mgw_upstream_send_fn send)
{
    s->px = calloc(1, sizeof *s->px);
    if (!s->px)
        return -ENOMEM;
    s->px->send = send;
    return 0;
}

void mgw__proxy_end(struct mgw_session *s)
{
    struct mgw_proxy *px = s->px;

    for (unsigned i = 0; i < px->n_deferred; i++)
        mgw_action_clear(&px->deferred[i]);
    free(px->in);
    free(px);
}

bool mgw__proxy_paused(const struct mgw_session *s)
{
    const struct mgw_proxy *px = s->px;

    return (px->hello_seen && !px->version_known) || (px->start_api_sent && !px->ready);
}

void mgw__proxy_flush(struct mgw_session *s)
{
    struct mgw_proxy *px = s->px;
    const uint8_t *run = px->up_run;
    size_t len = px->up_run_len;

    px->up_run = NULL;
    px->up_run_len = 0;
    if (len > 0 && s->phase != MGW_PHASE_CLOSED && !s->silent)
        px->send(s->io_data, run, len);
}

/* The upstream's frames waiting for the client go now. */
static void flush_client(struct mgw_session *s)
{
    struct mgw_proxy *px = s->px;
    const uint8_t *run = px->cl_run;
    size_t len = px->cl_run_len;

    px->cl_run = NULL;
    px->cl_run_len = 0;
    if (len > 0)
        mgw__send_frames(s, run, len, false);
}

/* Journals the frame (or the handshake) on the upstream leg and hands the bytes over: a frame
 * joins the run of frames before it when it follows them in the same buffer. */
static void to_upstream(struct mgw_session *s, const uint8_t *buf, size_t len, bool hello)
{
    struct mgw_journal *j = s->ctx->journal;
    struct mgw_proxy *px = s->px;

    if (s->phase == MGW_PHASE_CLOSED || s->silent)
        return;
    if (mgw_journal_logs_frames(j)) {
        struct ibw_frame f;

        if (hello)
            mgw_journal_frame_leg(j, s->id, s->client_id, false, LEG_UPSTREAM, buf + 8, len - 8);
        else if (ibw_frame_parse(buf, len, IBW_MAX_FRAME, &f) > 0)
            mgw_journal_frame_leg(j, s->id, s->client_id, false, LEG_UPSTREAM, f.payload, f.len);
    }
    px->frames_up_out++;
    px->bytes_up_out += len;
    if (!hello && px->up_run && px->up_run + px->up_run_len == buf) {
        px->up_run_len += len;
        return;
    }
    mgw__proxy_flush(s);
    if (hello) {
        px->send(s->io_data, buf, len);
        return;
    }
    px->up_run = buf;
    px->up_run_len = len;
}

/* A frame from the upstream passing through to the client, joining the run before it. */
static void to_client(struct mgw_session *s, const uint8_t *raw, size_t len)
{
    struct mgw_proxy *px = s->px;

    if (px->cl_run && px->cl_run + px->cl_run_len == raw) {
        px->cl_run_len += len;
        return;
    }
    flush_client(s);
    px->cl_run = raw;
    px->cl_run_len = len;
}

/* The errors the event's fault point left in s->post wait for the upstream's answer to the
 * event (the version reply, the start-up burst): deep copies, since the rules may change
 * meanwhile (admin API). */
static void defer_post(struct mgw_session *s, enum mgw_event_phase phase)
{
    struct mgw_proxy *px = s->px;

    for (unsigned i = 0; i < s->n_post && px->n_deferred < MGW_PROXY_DEFERRED; i++) {
        if (mgw_action_copy(&px->deferred[px->n_deferred], s->post[i]) < 0)
            break;
        px->deferred_phase[px->n_deferred++] = phase;
    }
    s->n_post = 0;
}

static void run_deferred(struct mgw_session *s, enum mgw_event_phase phase)
{
    struct mgw_proxy *px = s->px;
    struct mgw_action run[MGW_PROXY_DEFERRED];
    unsigned n = 0, keep = 0;

    for (unsigned i = 0; i < px->n_deferred; i++) {
        if (px->deferred_phase[i] == phase) {
            run[n++] = px->deferred[i];
        } else {
            px->deferred_phase[keep] = px->deferred_phase[i];
            px->deferred[keep++] = px->deferred[i];
        }
    }
    px->n_deferred = keep;
    for (unsigned i = 0; i < n; i++) {
        if (s->phase != MGW_PHASE_CLOSED && !s->silent)
            mgw_session_apply(s, &run[i], phase, -1);
        mgw_action_clear(&run[i]);
    }
}

static void become_ready(struct mgw_session *s);

/* --------------------------------------------------------------------------------------------
 * Client -> upstream
 */
void mgw__proxy_on_hello(struct mgw_session *s, const struct ibw_hello *h, const uint8_t *raw,
                         size_t len)
{
    struct mgw_ctx *ctx = s->ctx;
    char options[6 * sizeof h->options];

    s->px->hello_seen = true;
    s->hello = *h;
    /* The version is the upstream's to choose: it is journaled with its reply ("version"). */
    mgw_journal_eventf(ctx->journal, s->id, -1, "hello",
                       "\"client_min\":%d,\"client_max\":%d,\"options\":\"%s\",\"version\":null",
                       h->min_version, h->max_version,
                       mgw_json_escape(h->options, options, sizeof options));
    if (mgw__fault_point(s, MGW_EV_HELLO, -1, -1))
        return;
    defer_post(s, MGW_EV_HELLO);
    if (h->min_version > IBW_MAX_VERSION) {
        /* 201 and up is IB's protobuf protocol: not one frame of it could be decoded. */
        mgw_session_close(s, MGW_CLOSE_NOW, "client minimum version above 200 (protobuf)");
        return;
    }
    if (h->max_version > IBW_MAX_VERSION) {
        /* The upstream would answer a protobuf version; offer what the proxy can decode. */
        struct ibw_writer w;

        ibw_writer_init(&w, ctx->scratch, ctx->scratch_cap);
        if (ibw_enc_hello(&w, h->min_version, IBW_MAX_VERSION, h->options[0] ? h->options : NULL) <
            0) {
            mgw__bad_input(s, LEG_CLIENT, "bad handshake", IBW_EBADHELLO);
            return;
        }
        mgw_journal_eventf(ctx->journal, s->id, -1, "hello_capped",
                           "\"client_max\":%d,\"sent_max\":%d", h->max_version, IBW_MAX_VERSION);
        to_upstream(s, w.buf, w.len, true);
        return;
    }
    to_upstream(s, raw, len, true);
}

static void on_start_api(struct mgw_session *s, struct ibw_reader *r, const uint8_t *raw,
                         size_t len)
{
    struct mgw_ctx *ctx = s->ctx;
    const char *caps = "", *holder;
    char caps_esc[256];
    int version = 0, client_id = 0;

    ibw_read_int(r, &version);
    ibw_read_int(r, &client_id);
    if (ibw_reader_left(r) > 0)
        ibw_read_str(r, &caps);
    if (r->err) {
        mgw__bad_input(s, LEG_CLIENT, "malformed startApi", r->err);
        return;
    }
    s->client_id = client_id;
    mgw__proxy_flush(s);
    mgw_journal_eventf(ctx->journal, s->id, client_id, "start_api",
                       "\"version\":%d,\"capabilities\":\"%s\"", s->version,
                       mgw_json_escape(caps, caps_esc, sizeof caps_esc));
    if (mgw__fault_point(s, MGW_EV_START_API, -1, -1))
        return;
    defer_post(s, MGW_EV_START_API);
    /* settings.busy_client_ids: a 326 of mockgw's own; in-use ids are the upstream's call. */
    holder = mgw__client_id_holder(ctx, client_id);
    if (holder) {
        mgw__refuse_client_id(s, holder);
        return;
    }
    s->px->start_api_sent = true;
    to_upstream(s, raw, len, false);
    if (s->px->got_accounts && s->px->got_next_id && s->phase != MGW_PHASE_CLOSED)
        become_ready(s);
}

void mgw__proxy_on_frame(struct mgw_session *s, const struct ibw_frame *f, const uint8_t *raw,
                         size_t len)
{
    struct mgw_ctx *ctx = s->ctx;
    struct ibw_reader r;
    int id = 0;

    ibw_reader_init(&r, f->payload, f->len);
    if (ibw_read_msg_id(&r, &id) < 0) {
        mgw__bad_input(s, LEG_CLIENT, "non-numeric message id", r.err);
        return;
    }
    if (!s->px->start_api_sent) {
        if (id == IBW_OUT_START_API) {
            on_start_api(s, &r, raw, len);
            return;
        }
        to_upstream(s, raw, len, false); /* before START_API: the upstream decides */
        return;
    }
    s->requests++;
    if (ctx->faults && mgw_faults_watch(ctx->faults, MGW_EV_REQUEST)) {
        mgw__proxy_flush(s); /* what came before goes before whatever the rules do */
        if (mgw__fault_point(s, MGW_EV_REQUEST, id, mgw__request_req_id(s, f, id)))
            return;
    }
    to_upstream(s, raw, len, false);
}

/* --------------------------------------------------------------------------------------------
 * Upstream -> client
 */
static void on_version_reply(struct mgw_session *s, const struct ibw_frame *f, const uint8_t *raw,
                             size_t len)
{
    struct mgw_ctx *ctx = s->ctx;
    struct ibw_reader r;
    const char *when = "";
    char when_esc[256];
    int version = 0;

    ibw_reader_init(&r, f->payload, f->len);
    ibw_read_int(&r, &version);
    if (ibw_reader_left(&r) > 0)
        ibw_read_str(&r, &when);
    if (r.err) {
        mgw__bad_input(s, LEG_UPSTREAM, "bad version reply", r.err);
        return;
    }
    s->version = version;
    s->px->version_known = true;
    mgw_journal_eventf(ctx->journal, s->id, -1, "version", "\"version\":%d,\"time\":\"%s\"",
                       version, mgw_json_escape(when, when_esc, sizeof when_esc));
    if (version < s->hello.min_version)
        mgw_journal_eventf(ctx->journal, s->id, -1, "version_below_client_min",
                           "\"version\":%d,\"client_min\":%d", version, s->hello.min_version);
    mgw__send_frames(s, raw, len, true);
    if (s->phase == MGW_PHASE_CLOSED)
        return;
    s->phase = MGW_PHASE_VERSION_SENT;
    run_deferred(s, MGW_EV_HELLO);
    if (!mgw__fault_point(s, MGW_EV_VERSION_SENT, -1, -1))
        mgw__run_post(s, MGW_EV_VERSION_SENT);
    mgw__session_resume(s); /* START_API may be waiting */
}

static void become_ready(struct mgw_session *s)
{
    s->px->ready = true;
    s->phase = MGW_PHASE_READY;
    mgw_journal_event(s->ctx->journal, s->id, s->client_id, s->half_ready ? "half_ready" : "ready",
                      NULL);
    run_deferred(s, MGW_EV_START_API);
    if (!mgw__fault_point(s, MGW_EV_READY, -1, -1))
        mgw__run_post(s, MGW_EV_READY);
    mgw__session_resume(s); /* requests may be waiting */
}

/* A frame between START_API and ready: ready once managedAccounts (15) and nextValidId (9)
 * have passed, in whichever order; half_ready drops the first nextValidId. */
static void on_burst_frame(struct mgw_session *s, const struct ibw_frame *f, const uint8_t *raw,
                           size_t len)
{
    struct mgw_proxy *px = s->px;
    struct ibw_reader r;
    bool drop = false;
    int id = -1;

    ibw_reader_init(&r, f->payload, f->len);
    ibw_read_msg_id(&r, &id);
    if (id == IBW_IN_MANAGED_ACCTS) {
        px->got_accounts = true;
    } else if (id == IBW_IN_NEXT_VALID_ID && !px->got_next_id) {
        px->got_next_id = true;
        drop = s->half_ready;
    }
    if (drop)
        mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "dropped",
                           "\"leg\":\"upstream\",\"msg_id\":%d,\"why\":\"half_ready\"", id);
    else
        mgw__send_frames(s, raw, len, false);
    if (px->start_api_sent && px->got_accounts && px->got_next_id && s->phase != MGW_PHASE_CLOSED &&
        !s->silent)
        become_ready(s);
}

static void on_upstream_frame(struct mgw_session *s, const struct ibw_frame *f, const uint8_t *raw,
                              size_t len)
{
    struct mgw_proxy *px = s->px;

    if (!px->hello_seen) /* a gateway speaks only after the client's handshake (IB_WIRE §2) */
        mgw__bad_input(s, LEG_UPSTREAM, "bytes from the upstream before the handshake",
                       IBW_EBADHELLO);
    else if (!px->version_known)
        on_version_reply(s, f, raw, len);
    else if (!px->ready) /* 15 and 9 count even if an odd upstream sends them early */
        on_burst_frame(s, f, raw, len);
    else
        to_client(s, raw, len);
}

static size_t process_upstream(struct mgw_session *s, const uint8_t *buf, size_t len)
{
    struct mgw_journal *j = s->ctx->journal;
    size_t off = 0;

    while (off < len && s->phase != MGW_PHASE_CLOSED && !s->silent) {
        struct ibw_frame f;
        ssize_t n = ibw_frame_parse(buf + off, len - off, IBW_MAX_FRAME, &f);

        if (n < 0) {
            mgw__bad_input(s, LEG_UPSTREAM,
                           n == IBW_EZEROLEN ? "zero-length frame" : "oversized frame", (int)n);
            break;
        }
        if (n == 0)
            break;
        off += (size_t)n;
        s->px->frames_up_in++;
        mgw_journal_frame_leg(j, s->id, s->client_id, true, LEG_UPSTREAM, f.payload, f.len);
        on_upstream_frame(s, &f, buf + off - (size_t)n, (size_t)n);
    }
    flush_client(s); /* before buf changes */
    return off;
}

void mgw_session_feed_upstream(struct mgw_session *s, const uint8_t *data, size_t len)
{
    struct mgw_proxy *px = s->px;
    struct mgw__carry c;

    if (!px || s->phase == MGW_PHASE_CLOSED || s->silent)
        return;
    px->bytes_up_in += len;
    c = (struct mgw__carry){ &px->in,          &px->in_len,
                             &px->in_alloc,    (size_t)IBW_MAX_FRAME + 4,
                             process_upstream, LEG_UPSTREAM };
    mgw__session_enter(s);
    mgw__carry_feed(s, &c, data, len);
    mgw__session_leave(s);
}
