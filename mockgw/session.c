#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strbuf.h"
#include "synth.h"

#define MAX_MATCHES       64
#define MAX_SYMBOLS       16 /* reqMatchingSymbols answers at most this many, like TWS */
#define MAX_HIST_BARS     100000u
#define MIN_TIME_GAP_MS   1000u /* TWS >= 10.16 ignores a reqCurrentTime within ~1 s (§5) */
#define MAX_SUBSCRIPTIONS 10000u

/* --------------------------------------------------------------------------------------------
 * Client-id map
 */
static unsigned id_hash(int key, unsigned cap)
{
    uint32_t x = (uint32_t)key * 2654435761u;

    return (x ^ (x >> 16)) & (cap - 1);
}

void mgw_idmap_free(struct mgw_idmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

struct mgw_session *mgw_idmap_get(const struct mgw_idmap *m, int key)
{
    if (m->n == 0)
        return NULL;
    for (unsigned i = id_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].used)
            return NULL;
        if (m->slots[i].key == key)
            return m->slots[i].value;
    }
}

static int idmap_grow(struct mgw_idmap *m)
{
    unsigned cap = m->cap ? m->cap * 2 : 64;
    struct mgw_idmap bigger = { calloc(cap, sizeof *m->slots), cap, 0 };

    if (!bigger.slots)
        return -ENOMEM;
    for (unsigned i = 0; i < m->cap; i++)
        if (m->slots[i].used)
            mgw_idmap_put(&bigger, m->slots[i].key, m->slots[i].value);
    free(m->slots);
    *m = bigger;
    return 0;
}

int mgw_idmap_put(struct mgw_idmap *m, int key, struct mgw_session *value)
{
    if ((m->n + 1) * 4 > m->cap * 3 && idmap_grow(m) < 0) /* load factor <= 3/4 */
        return -ENOMEM;
    for (unsigned i = id_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].used) {
            m->slots[i] = (struct mgw_idmap_slot){ key, true, value };
            m->n++;
            return 0;
        }
        if (m->slots[i].key == key) {
            m->slots[i].value = value;
            return 0;
        }
    }
}

void mgw_idmap_del(struct mgw_idmap *m, int key)
{
    unsigned i, j, home;

    if (m->n == 0)
        return;
    for (i = id_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].used)
            return;
        if (m->slots[i].key == key)
            break;
    }
    /* Backward-shift deletion keeps every probe chain intact without tombstones. */
    for (j = (i + 1) & (m->cap - 1); m->slots[j].used; j = (j + 1) & (m->cap - 1)) {
        home = id_hash(m->slots[j].key, m->cap);
        if (((j - home) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].used = false;
    m->n--;
}

/* --------------------------------------------------------------------------------------------
 * Context
 */
int mgw_ctx_init(struct mgw_ctx *ctx, const struct mgw_config *cfg, const struct mgw_fixtures *fx,
                 struct mgw_journal *journal)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->fx = fx;
    ctx->journal = journal;
    /* Pages are only touched as far as the largest answer reaches, so RSS stays small. */
    ctx->scratch_cap = (size_t)IBW_MAX_FRAME + 4 + 4096;
    ctx->frames_per_turn = 32;
    ctx->bytes_per_turn = 64u << 10;
    ctx->max_hist_bars = MAX_HIST_BARS;
    ctx->scratch = malloc(ctx->scratch_cap);
    return ctx->scratch ? 0 : -ENOMEM;
}

void mgw_ctx_free(struct mgw_ctx *ctx)
{
    mgw_idmap_free(&ctx->client_ids);
    free(ctx->busy);
    ctx->busy = NULL;
    ctx->n_busy = ctx->cap_busy = 0;
    free(ctx->scratch);
    ctx->scratch = NULL;
}

int mgw_ctx_hold_client_id(struct mgw_ctx *ctx, int id, uint64_t until_ms)
{
    for (unsigned i = 0; i < ctx->n_busy; i++) {
        if (ctx->busy[i].id == id) {
            ctx->busy[i].until_ms = until_ms;
            return 0;
        }
    }
    if (ctx->n_busy == ctx->cap_busy) {
        unsigned cap = ctx->cap_busy ? ctx->cap_busy * 2 : 8;
        struct mgw_busy_id *b = realloc(ctx->busy, cap * sizeof *b);

        if (!b)
            return -ENOMEM;
        ctx->busy = b;
        ctx->cap_busy = cap;
    }
    ctx->busy[ctx->n_busy++] = (struct mgw_busy_id){ id, until_ms };
    return 0;
}

void mgw_ctx_clear_busy(struct mgw_ctx *ctx)
{
    ctx->n_busy = 0;
}

/* Who holds id: "\"busy\"" (busy_client_ids), "\"stale\"" (a session that is gone), or NULL
 * when nobody does. Expired holds go. */
const char *mgw__client_id_holder(struct mgw_ctx *ctx, int id)
{
    uint64_t now = ctx->mono_ms(ctx->clock);

    for (unsigned i = 0; i < ctx->n_busy; i++) {
        if (ctx->busy[i].until_ms <= now) {
            ctx->busy[i--] = ctx->busy[--ctx->n_busy];
            continue;
        }
        if (ctx->busy[i].id == id)
            return ctx->busy[i].until_ms == UINT64_MAX ? "\"busy\"" : "\"stale\"";
    }
    return NULL;
}

const char *mgw_phase_name(enum mgw_phase p)
{
    switch (p) {
    case MGW_PHASE_HELLO:
        return "hello";
    case MGW_PHASE_VERSION_SENT:
        return "version_sent";
    case MGW_PHASE_READY:
        return "ready";
    case MGW_PHASE_CLOSED:
        return "closed";
    }
    return "?";
}

/* --------------------------------------------------------------------------------------------
 * Request-id sets
 */
static bool reqset_has(const struct mgw_reqset *set, int id)
{
    for (unsigned i = 0; i < set->n; i++)
        if (set->ids[i] == id)
            return true;
    return false;
}

/* Registers a streaming request once its first answer went out. Sending can end the session
 * (the server closes a client whose output overflows, and mgw_session_end() frees the sets):
 * then there is nothing to register. */
static void subscribe(struct mgw_session *s, struct mgw_reqset *set, int id)
{
    if (s->phase == MGW_PHASE_CLOSED || s->ended || reqset_has(set, id) ||
        set->n >= MAX_SUBSCRIPTIONS)
        return;
    if (set->n == set->cap) {
        unsigned cap = set->cap ? set->cap * 2 : 8;
        int *ids = realloc(set->ids, cap * sizeof *ids);

        if (!ids)
            return; /* the subscription is answered; only its cancel bookkeeping is lost */
        set->ids = ids;
        set->cap = cap;
    }
    set->ids[set->n++] = id;
}

static bool reqset_del(struct mgw_reqset *set, int id)
{
    for (unsigned i = 0; i < set->n; i++) {
        if (set->ids[i] == id) {
            set->ids[i] = set->ids[--set->n];
            return true;
        }
    }
    return false;
}

static void reqset_free(struct mgw_reqset *set)
{
    free(set->ids);
    memset(set, 0, sizeof *set);
}

/* --------------------------------------------------------------------------------------------
 * Output
 */
static struct ibw_writer *out_begin(struct mgw_session *s, struct ibw_writer *w)
{
    ibw_writer_init(w, s->ctx->scratch, s->ctx->scratch_cap);
    return w;
}

/* "client" in proxy mode, where the journal tells the two legs apart; no leg key otherwise. */
static const char *client_leg(const struct mgw_session *s)
{
    return s->px ? "client" : NULL;
}

uint64_t mgw__session_ms(const struct mgw_session *s)
{
    return s->ctx->mono_ms(s->ctx->clock) - s->accepted_ms;
}

void mgw__send_frames(struct mgw_session *s, const uint8_t *buf, size_t len, bool version)
{
    struct mgw_journal *j = s->ctx->journal;
    bool journal = mgw_journal_logs_frames(j), record = mgw_journal_records(j);
    size_t off = 0;

    if (s->phase == MGW_PHASE_CLOSED || s->silent || len == 0)
        return;
    while (off < len) {
        struct ibw_frame f;
        ssize_t n = ibw_frame_parse(buf + off, len - off, IBW_MAX_FRAME, &f);

        if (n <= 0)
            break;
        if (journal)
            mgw_journal_frame_leg(j, s->id, s->client_id, true, client_leg(s), f.payload, f.len);
        if (record)
            mgw_journal_record(j, s->id, mgw__session_ms(s), true,
                               version ? MGW_REC_VERSION : MGW_REC_FRAME, NULL, f.payload, f.len);
        s->frames_out++;
        off += (size_t)n;
    }
    s->bytes_out += len;
    s->io->send(s->io_data, buf, len);
}

/* Journals each frame written into w, then hands the bytes to the server. */
static void out_send_kind(struct mgw_session *s, struct ibw_writer *w, bool version)
{
    if (s->phase == MGW_PHASE_CLOSED || s->silent || w->len == 0)
        return;
    if (w->err) {
        mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "encode_error", "\"error\":\"%s\"",
                           ibw_err_name(w->err));
        return;
    }
    mgw__send_frames(s, w->buf, w->len, version);
}

static void out_send(struct mgw_session *s, struct ibw_writer *w)
{
    out_send_kind(s, w, false);
}

static void send_error(struct mgw_session *s, int id, int code, const char *text)
{
    struct ibw_writer w;

    ibw_enc_error(out_begin(s, &w), s->version, id, code, text, NULL,
                  s->ctx->wall_ms(s->ctx->clock));
    out_send(s, &w);
}

void mgw_session_close(struct mgw_session *s, enum mgw_close_how how, const char *reason)
{
    if (s->phase == MGW_PHASE_CLOSED)
        return;
    char esc[256];

    mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "close",
                       "\"reason\":\"%s\",\"phase\":\"%s\"",
                       mgw_json_escape(reason, esc, sizeof esc), mgw_phase_name(s->phase));
    s->last_phase = s->phase;
    s->phase = MGW_PHASE_CLOSED;
    s->close_reason = reason;
    s->io->close(s->io_data, how);
}

/* Malformed input from a peer: journal exactly what was wrong, close this connection. */
void mgw__bad_input(struct mgw_session *s, const char *leg, const char *what, int err)
{
    s->ctx->counters.bad_input++;
    char what_esc[128], reason_esc[256];

    mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "bad_input",
                       "\"what\":\"%s\",\"error\":\"%s\",\"reason\":\"%s\"%s%s%s",
                       mgw_json_escape(what, what_esc, sizeof what_esc), ibw_err_name(err),
                       mgw_json_escape(ibw_strerror(err), reason_esc, sizeof reason_esc),
                       leg ? ",\"leg\":\"" : "", leg ? leg : "", leg ? "\"" : "");
    mgw_session_close(s, MGW_CLOSE_NOW, what);
}

static void bad_input(struct mgw_session *s, const char *what, int err)
{
    mgw__bad_input(s, client_leg(s), what, err);
}

/* --------------------------------------------------------------------------------------------
 * Faults
 */

/* Bytes that are not frames (garbage, a bad length): journaled as the fault, not as frames. */
static void send_raw(struct mgw_session *s, const uint8_t *buf, size_t len)
{
    if (s->phase == MGW_PHASE_CLOSED || s->silent)
        return;
    s->bytes_out += len;
    s->io->send(s->io_data, buf, len);
}

static void send_garbage(struct mgw_session *s, uint64_t n)
{
    uint8_t buf[256];

    while (n > 0) {
        size_t chunk = n < sizeof buf ? (size_t)n : sizeof buf;

        for (size_t i = 0; i < chunk; i += 8) {
            uint64_t x = mgw_faults_draw(s->ctx->faults);

            for (size_t k = 0; k < 8 && i + k < chunk; k++)
                buf[i + k] = (uint8_t)(x >> (8 * k));
        }
        send_raw(s, buf, chunk);
        n -= chunk;
    }
}

void mgw__refuse_client_id(struct mgw_session *s, const char *held_by)
{
    s->ctx->counters.refused_client_id++;
    mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "client_id_in_use", "\"held_by\":%s",
                       held_by);
    send_error(s, -1, 326, ibw_error_text(326));
    mgw_session_close(s, MGW_CLOSE_FIN, "client id in use (326)");
}

bool mgw_session_apply(struct mgw_session *s, const struct mgw_action *a,
                       enum mgw_event_phase phase, int req_id)
{
    if (s->phase == MGW_PHASE_CLOSED)
        return true;
    if (a->type != MGW_ACT_NONE)
        s->ctx->counters.faults++;
    switch (a->type) {
    case MGW_ACT_NONE:
        return false;
    case MGW_ACT_SILENT:
        s->silent = true;
        s->io->fault(s->io_data, a, phase, req_id); /* the server stops reading */
        return true;
    case MGW_ACT_IGNORE:
        return phase == MGW_EV_REQUEST;
    case MGW_ACT_ERROR:
        if (s->version == 0) { /* before the handshake there is no layout to send it in */
            mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "fault_skipped",
                               "\"action\":\"error\",\"why\":\"no version negotiated yet\"");
            return false;
        }
        send_error(s,
                   a->id != -1               ? a->id
                   : phase == MGW_EV_REQUEST ? req_id
                                             : -1,
                   a->code, a->text ? a->text : "");
        for (unsigned i = 0; i < a->n_then; i++) {
            const struct mgw_notice *t = &a->then[i];
            struct mgw_action notice = { .type = MGW_ACT_ERROR,
                                         .after_ms = t->after_ms,
                                         .id = t->id,
                                         .code = t->code,
                                         .text = t->text };

            if (notice.after_ms == 0)
                send_error(s, notice.id, notice.code, notice.text ? notice.text : "");
            else
                s->io->fault(s->io_data, &notice, phase, req_id); /* the server keeps a copy */
        }
        return phase == MGW_EV_REQUEST;
    case MGW_ACT_REFUSE_CLIENT_ID:
        mgw__refuse_client_id(s, "\"fault\"");
        return true;
    case MGW_ACT_HALF_READY:
        s->half_ready = true;
        return false;
    case MGW_ACT_GARBAGE:
        send_garbage(s, a->bytes ? a->bytes : 16);
        return false;
    case MGW_ACT_BAD_LENGTH: {
        uint8_t b[4] = { (uint8_t)(a->length >> 24), (uint8_t)(a->length >> 16),
                         (uint8_t)(a->length >> 8), (uint8_t)a->length };

        send_raw(s, b, sizeof b);
        return false;
    }
    default:
        s->io->fault(s->io_data, a, phase, req_id);
        return mgw_action_ends_event(a->type);
    }
}

static void journal_fault(struct mgw_session *s, const struct mgw_fault_hit *h,
                          enum mgw_event_phase phase)
{
    char name[160], draw[32];

    if (h->draw >= 0)
        snprintf(draw, sizeof draw, "%.6f", h->draw);
    else
        snprintf(draw, sizeof draw, "null");
    if (h->rule->name)
        mgw_json_escape(h->rule->name, name, sizeof name);
    else
        snprintf(name, sizeof name, "rule-%" PRIu64, h->rule->id);
    mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "fault",
                       "\"rule\":\"%s\",\"rule_id\":%" PRIu64
                       ",\"action\":\"%s\",\"phase\":\"%s\",\"draw\":%s,\"after_ms\":%" PRIu64,
                       name, h->rule->id, mgw_action_name(h->action->type),
                       mgw_event_phase_name(phase), draw, h->action->after_ms);
}

/* Asks the engine about this event and carries out what fired; errors at phases other than
 * request wait in s->post until the event's normal output is out (mgw__run_post). Returns true when
 * the event's normal processing must stop. */
bool mgw__fault_point(struct mgw_session *s, enum mgw_event_phase phase, int msg_id, int req_id)
{
    struct mgw_ctx *ctx = s->ctx;
    struct mgw_fault_hit hits[16];
    struct mgw_event ev;
    bool stop = false;
    unsigned n;

    s->n_post = 0;
    if (!ctx->faults || !mgw_faults_watch(ctx->faults, phase) || s->phase == MGW_PHASE_CLOSED)
        return false;
    ev = (struct mgw_event){
        .phase = phase,
        .conn = s->id,
        .client_id = s->client_id,
        .msg_id = msg_id,
        .nth = phase == MGW_EV_REQUEST ? s->requests : 0,
        .since_accept_ms = ctx->mono_ms(ctx->clock) - s->accepted_ms,
    };
    n = mgw_faults_eval(ctx->faults, &ev, hits, sizeof hits / sizeof hits[0]);
    for (unsigned i = 0; i < n; i++) {
        const struct mgw_action *a = hits[i].action;

        journal_fault(s, &hits[i], phase);
        if (a->set_state && a->after_ms == 0) {
            char esc[6 * 128 + 1];

            mgw_journal_eventf(ctx->journal, s->id, s->client_id, "state",
                               "\"state\":\"%s\",\"why\":\"rule\"",
                               mgw_json_escape(a->set_state, esc, sizeof esc));
        }
        if (a->after_ms > 0) {
            s->io->fault(s->io_data, a, phase, req_id); /* scheduled by the server */
            continue;
        }
        if (a->type == MGW_ACT_ERROR && phase != MGW_EV_REQUEST) {
            if (s->n_post < sizeof s->post / sizeof s->post[0])
                s->post[s->n_post++] = a;
            continue;
        }
        stop |= mgw_session_apply(s, a, phase, req_id);
        if (s->phase == MGW_PHASE_CLOSED || s->silent)
            return true;
    }
    return stop;
}

/* The errors mgw__fault_point() kept for after the event's output. The actions are still valid:
 * rules cannot change between the two calls (both run inside one feed). */
void mgw__run_post(struct mgw_session *s, enum mgw_event_phase phase)
{
    unsigned n = s->n_post;

    s->n_post = 0;
    for (unsigned i = 0; i < n && s->phase != MGW_PHASE_CLOSED && !s->silent; i++)
        mgw_session_apply(s, s->post[i], phase, -1);
}

void mgw_session_accept(struct mgw_session *s)
{
    if (!mgw__fault_point(s, MGW_EV_ACCEPT, -1, -1))
        mgw__run_post(s, MGW_EV_ACCEPT);
}

/* --------------------------------------------------------------------------------------------
 * Handshake and START_API
 */
/* The gateway host's local time: "yyyyMMdd HH:mm:ss ZONE" (connection time) or "HH:MM"
 * (account update time). */
static void format_local_time(int64_t epoch_s, bool hhmm_only, char *out, size_t cap)
{
    time_t t = (time_t)epoch_s;
    struct tm tm;
    size_t n;

    localtime_r(&t, &tm);
    n = hhmm_only ? strftime(out, cap, "%H:%M", &tm)
                  : strftime(out, cap, "%Y%m%d %H:%M:%S %Z", &tm);
    if (n == 0)
        out[0] = '\0';
}

static void on_hello(struct mgw_session *s, const struct ibw_hello *h)
{
    struct mgw_ctx *ctx = s->ctx;
    struct ibw_writer w;
    char when[64], options[6 * sizeof h->options];

    s->hello = *h;
    s->version = ibw_negotiate_version(h, ctx->cfg->server_version);
    mgw_journal_eventf(ctx->journal, s->id, -1, "hello",
                       "\"client_min\":%d,\"client_max\":%d,\"options\":\"%s\",\"version\":%d",
                       h->min_version, h->max_version,
                       mgw_json_escape(h->options, options, sizeof options), s->version);
    if (s->version < h->min_version)
        /* What a real gateway does: answer its own version and let the client refuse it. */
        mgw_journal_eventf(ctx->journal, s->id, -1, "version_below_client_min",
                           "\"version\":%d,\"client_min\":%d", s->version, h->min_version);
    if (mgw__fault_point(s, MGW_EV_HELLO, -1, -1))
        return;
    format_local_time(ctx->wall_ms(ctx->clock) / 1000, false, when, sizeof when);
    ibw_enc_server_version(out_begin(s, &w), s->version, when);
    out_send_kind(s, &w, true);
    mgw__run_post(s, MGW_EV_HELLO);
    if (s->version < IBW_MIN_VERSION) {
        /* A framed (v100+) client whose maximum is below 100 contradicts itself; there are no
         * layouts to answer it with. It got the gateway's answer; now it gets a FIN. */
        mgw_session_close(s, MGW_CLOSE_FIN, "client maximum version below 100");
        return;
    }
    /* Nothing more may be written until START_API arrives (IB_WIRE §8.2). */
    if (s->phase != MGW_PHASE_CLOSED)
        s->phase = MGW_PHASE_VERSION_SENT;
    if (!mgw__fault_point(s, MGW_EV_VERSION_SENT, -1, -1))
        mgw__run_post(s, MGW_EV_VERSION_SENT);
}

static void on_start_api(struct mgw_session *s, struct ibw_reader *r)
{
    struct mgw_ctx *ctx = s->ctx;
    struct ibw_writer w;
    int version = 0, client_id = 0;
    const char *caps = "";
    char caps_esc[256];

    ibw_read_int(r, &version);
    ibw_read_int(r, &client_id);
    if (ibw_reader_left(r) > 0)
        ibw_read_str(r, &caps);
    if (r->err) {
        bad_input(s, "malformed startApi", r->err);
        return;
    }
    s->client_id = client_id;
    mgw_journal_eventf(ctx->journal, s->id, client_id, "start_api",
                       "\"version\":%d,\"capabilities\":\"%s\"", s->version,
                       mgw_json_escape(caps, caps_esc, sizeof caps_esc));
    if (mgw__fault_point(s, MGW_EV_START_API, -1, -1))
        return;
    if (ctx->cfg->unique_client_ids && mgw_idmap_get(&ctx->client_ids, client_id)) {
        char held_by[24];

        snprintf(held_by, sizeof held_by, "%" PRIu64,
                 mgw_idmap_get(&ctx->client_ids, client_id)->id);
        mgw__refuse_client_id(s, held_by);
        return;
    }
    const char *holder = mgw__client_id_holder(ctx, client_id);

    if (holder) {
        mgw__refuse_client_id(s, holder);
        return;
    }
    if (ctx->cfg->unique_client_ids) {
        if (mgw_idmap_put(&ctx->client_ids, client_id, s) < 0) {
            mgw_session_close(s, MGW_CLOSE_NOW, "out of memory");
            return;
        }
        s->holds_id = true;
    }
    out_begin(s, &w);
    ibw_enc_managed_accounts(&w, s->version, ctx->cfg->accounts);
    if (!s->half_ready)
        ibw_enc_next_valid_id(&w, s->version, s->next_order_id);
    int64_t now = ctx->wall_ms(ctx->clock);
    ibw_enc_error(&w, s->version, -1, 2104, ibw_error_text(2104), NULL, now);
    ibw_enc_error(&w, s->version, -1, 2106, ibw_error_text(2106), NULL, now);
    ibw_enc_error(&w, s->version, -1, 2158, ibw_error_text(2158), NULL, now);
    s->phase = MGW_PHASE_READY;
    out_send(s, &w);
    mgw_journal_event(ctx->journal, s->id, client_id, s->half_ready ? "half_ready" : "ready", NULL);
    mgw__run_post(s, MGW_EV_START_API);
    if (!mgw__fault_point(s, MGW_EV_READY, -1, -1))
        mgw__run_post(s, MGW_EV_READY);
}

/* --------------------------------------------------------------------------------------------
 * Requests. Each handler reads the fields it needs; a missing or malformed one closes the
 * connection as bad input. Trailing fields it does not need are ignored, the way TWS ignores
 * what an older layout does not have.
 */
struct handler {
    int id;
    void (*fn)(struct mgw_session *s, struct ibw_reader *r);
};

static bool request_ok(struct mgw_session *s, struct ibw_reader *r, const char *what)
{
    if (r->err == 0)
        return true;
    mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "bad_request",
                       "\"request\":\"%s\",\"field\":%u,\"error\":\"%s\"", what, r->index,
                       ibw_err_name(r->err));
    s->ctx->counters.bad_input++;
    mgw_session_close(s, MGW_CLOSE_NOW, "malformed request");
    return false;
}

static void req_current_time(struct mgw_session *s, struct ibw_reader *r)
{
    struct mgw_ctx *ctx = s->ctx;
    struct ibw_writer w;
    int version = 0;
    uint64_t now = ctx->mono_ms(ctx->clock);

    ibw_read_int(r, &version);
    if (!request_ok(s, r, "reqCurrentTime"))
        return;
    if (ctx->cfg->pace_current_time && s->has_time_reply &&
        now - s->last_time_reply_ms < MIN_TIME_GAP_MS) {
        ctx->counters.paced++;
        mgw_journal_eventf(ctx->journal, s->id, s->client_id, "paced",
                           "\"request\":\"reqCurrentTime\",\"since_last_ms\":%" PRIu64,
                           now - s->last_time_reply_ms);
        return;
    }
    s->has_time_reply = true;
    s->last_time_reply_ms = now;
    ibw_enc_current_time(out_begin(s, &w), s->version, ctx->wall_ms(ctx->clock) / 1000);
    out_send(s, &w);
}

static void req_ids(struct mgw_session *s, struct ibw_reader *r)
{
    struct ibw_writer w;
    int version = 0, num_ids = 0;

    ibw_read_int(r, &version);
    ibw_read_int(r, &num_ids);
    if (!request_ok(s, r, "reqIds"))
        return;
    ibw_enc_next_valid_id(out_begin(s, &w), s->version, s->next_order_id);
    out_send(s, &w);
}

static void req_managed_accts(struct mgw_session *s, struct ibw_reader *r)
{
    struct ibw_writer w;
    int version = 0;

    ibw_read_int(r, &version);
    if (!request_ok(s, r, "reqManagedAccts"))
        return;
    ibw_enc_managed_accounts(out_begin(s, &w), s->version, s->ctx->cfg->accounts);
    out_send(s, &w);
}

/* The first managed account: positions and account data are reported for it. */
static void first_account(const struct mgw_session *s, char *out, size_t cap)
{
    const char *a = s->ctx->cfg->accounts;
    size_t n = strcspn(a, ",");

    if (n >= cap)
        n = cap - 1;
    memcpy(out, a, n);
    out[n] = '\0';
}

static void req_positions(struct mgw_session *s, struct ibw_reader *r)
{
    const struct mgw_fixtures *fx = s->ctx->fx;
    struct ibw_writer w;
    char acct[64];
    int version = 0;

    ibw_read_int(r, &version);
    if (!request_ok(s, r, "reqPositions"))
        return;
    first_account(s, acct, sizeof acct);
    out_begin(s, &w);
    for (unsigned i = 0; i < fx->n_positions; i++) {
        struct ibw_position p = fx->positions[i];

        if (!p.account)
            p.account = acct;
        ibw_enc_position(&w, s->version, &p);
    }
    ibw_enc_position_end(&w, s->version);
    out_send(s, &w);
}

static void req_open_orders(struct mgw_session *s, struct ibw_reader *r)
{
    struct ibw_writer w;
    int version = 0;

    ibw_read_int(r, &version);
    if (!request_ok(s, r, "reqOpenOrders"))
        return;
    ibw_enc_open_order_end(out_begin(s, &w), s->version);
    out_send(s, &w);
}

static void req_auto_open_orders(struct mgw_session *s, struct ibw_reader *r)
{
    int version = 0;
    bool auto_bind = false;

    ibw_read_int(r, &version);
    ibw_read_bool(r, &auto_bind);
    if (!request_ok(s, r, "reqAutoOpenOrders"))
        return;
    if (s->client_id != 0)
        send_error(s, -1, 327, ibw_error_text(327));
}

static void req_completed_orders(struct mgw_session *s, struct ibw_reader *r)
{
    struct ibw_writer w;
    bool api_only = false;

    ibw_read_bool(r, &api_only);
    if (!request_ok(s, r, "reqCompletedOrders"))
        return;
    ibw_enc_completed_orders_end(out_begin(s, &w), s->version);
    out_send(s, &w);
}

/* updatePortfolio (7) for each fixture position of acct, valued at the synthetic last price,
 * as TWS sends them between the account values and the account time. */
static void send_portfolio(struct mgw_session *s, struct ibw_writer *w, const char *acct)
{
    const struct mgw_fixtures *fx = s->ctx->fx;
    int64_t now_s = s->ctx->wall_ms(s->ctx->clock) / 1000;
    char first[64];

    first_account(s, first, sizeof first);
    for (unsigned i = 0; i < fx->n_positions; i++) {
        const struct ibw_position *p = &fx->positions[i];
        const struct mgw_fixture_contract *fc = mgw_fixtures_find(fx, p->c.con_id);
        struct ibw_portfolio pf = { .p = *p };
        struct mgw_quote q;
        double qty, mult;

        if (strcmp(p->account ? p->account : first, acct) != 0)
            continue;
        pf.p.account = acct;
        if (fc) {
            pf.p.c.primary_exchange = fc->d.c.primary_exchange;
            mgw_quote_at(fc, s->ctx->cfg->seed, now_s, &q);
            pf.market_price = q.last;
        } else {
            pf.market_price = p->avg_cost;
        }
        /* The fixture loader validated both as numbers. */
        qty = strtod(p->position ? p->position : "0", NULL);
        mult = p->c.multiplier && *p->c.multiplier ? strtod(p->c.multiplier, NULL) : 1.0;
        pf.market_value = qty * pf.market_price * mult;
        pf.unrealized_pnl = qty * (pf.market_price * mult - p->avg_cost);
        ibw_enc_portfolio_value(w, s->version, &pf);
    }
}

static void req_account_updates(struct mgw_session *s, struct ibw_reader *r)
{
    const struct mgw_fixtures *fx = s->ctx->fx;
    struct ibw_writer w;
    const char *acct = "";
    char first[64], hhmm[8];
    int version = 0;
    bool subscribe = false;

    ibw_read_int(r, &version);
    ibw_read_bool(r, &subscribe);
    ibw_read_str(r, &acct);
    if (!request_ok(s, r, "reqAccountUpdates") || !subscribe)
        return;
    if (!*acct) {
        first_account(s, first, sizeof first);
        acct = first;
    }
    out_begin(s, &w);
    for (unsigned i = 0; i < fx->n_account_values; i++) {
        const struct mgw_fixture_account_value *v = &fx->account_values[i];

        ibw_enc_account_value(&w, s->version, v->key, v->value, v->currency, acct);
    }
    send_portfolio(s, &w, acct);
    format_local_time(s->ctx->wall_ms(s->ctx->clock) / 1000, true, hhmm, sizeof hhmm);
    ibw_enc_account_time(&w, s->version, hhmm);
    ibw_enc_account_download_end(&w, s->version, acct);
    out_send(s, &w);
}

static void req_account_updates_multi(struct mgw_session *s, struct ibw_reader *r)
{
    const struct mgw_fixtures *fx = s->ctx->fx;
    struct ibw_writer w;
    const char *acct = "", *model = "";
    char first[64];
    int version = 0, req_id = 0;

    ibw_read_int(r, &version);
    ibw_read_int(r, &req_id);
    ibw_read_str(r, &acct);
    ibw_read_str(r, &model);
    if (!request_ok(s, r, "reqAccountUpdatesMulti"))
        return;
    if (!*acct) {
        first_account(s, first, sizeof first);
        acct = first;
    }
    out_begin(s, &w);
    for (unsigned i = 0; i < fx->n_account_values; i++) {
        const struct mgw_fixture_account_value *v = &fx->account_values[i];

        ibw_enc_account_update_multi(&w, s->version, req_id, acct, model, v->key, v->value,
                                     v->currency);
    }
    ibw_enc_account_update_multi_end(&w, s->version, req_id);
    out_send(s, &w);
}

/* True when tag is in the comma-separated list (or the list is "All"). */
static bool tag_requested(const char *tags, const char *tag)
{
    size_t n = strlen(tag);

    if (strcmp(tags, "All") == 0)
        return true;
    while (*tags) {
        size_t len = strcspn(tags, ",");

        if (len == n && strncmp(tags, tag, n) == 0)
            return true;
        tags += len + (tags[len] == ',');
    }
    return false;
}

static void req_account_summary(struct mgw_session *s, struct ibw_reader *r)
{
    const struct mgw_fixtures *fx = s->ctx->fx;
    const char *accounts = s->ctx->cfg->accounts;
    struct ibw_writer w;
    const char *group = "", *tags = "";
    int version = 0, req_id = 0;

    ibw_read_int(r, &version);
    ibw_read_int(r, &req_id);
    ibw_read_str(r, &group);
    ibw_read_str(r, &tags);
    if (!request_ok(s, r, "reqAccountSummary"))
        return;
    out_begin(s, &w);
    while (*accounts) {
        char acct[64];
        size_t len = strcspn(accounts, ",");

        snprintf(acct, sizeof acct, "%.*s", (int)len, accounts);
        for (unsigned i = 0; i < fx->n_account_values; i++) {
            const struct mgw_fixture_account_value *v = &fx->account_values[i];

            if (tag_requested(tags, v->key))
                ibw_enc_account_summary(&w, s->version, req_id, acct, v->key, v->value,
                                        v->currency);
        }
        accounts += len + (accounts[len] == ',');
    }
    ibw_enc_account_summary_end(&w, s->version, req_id);
    out_send(s, &w);
}

static void req_executions(struct mgw_session *s, struct ibw_reader *r)
{
    struct ibw_writer w;
    int version = 0, req_id = 0;

    ibw_read_int(r, &version);
    ibw_read_int(r, &req_id);
    if (!request_ok(s, r, "reqExecutions"))
        return;
    ibw_enc_exec_details_end(out_begin(s, &w), s->version, req_id);
    out_send(s, &w);
}

static void req_contract_details(struct mgw_session *s, struct ibw_reader *r)
{
    const struct mgw_fixture_contract *found[MAX_MATCHES];
    struct ibw_contract c = { 0 };
    struct ibw_writer w;
    int version = 0, req_id = 0;
    unsigned n;

    ibw_read_int(r, &version);
    ibw_read_int(r, &req_id);
    /* Message version 7 (legacy clients) has no primaryExchange in the contract block. */
    ibw_read_contract(r, &c, version >= 8);
    if (!request_ok(s, r, "reqContractDetails"))
        return;
    n = mgw_fixtures_match(s->ctx->fx, &c, found, MAX_MATCHES);
    if (n == 0) {
        send_error(s, req_id, 200, ibw_error_text(200));
        return;
    }
    int64_t now_s = s->ctx->wall_ms(s->ctx->clock) / 1000;
    out_begin(s, &w);
    for (unsigned i = 0; i < n; i++) {
        /* Trading hours are dated, seven days from today, as the gateway sends them. */
        char hours[MGW_FIXTURE_DETAILS_BUF];
        struct ibw_contract_details d;

        if (mgw_fixture_details_at(found[i], now_s, &d, hours, sizeof hours) < 0)
            d = found[i]->d;
        ibw_enc_contract_details(&w, s->version, req_id, &d);
    }
    ibw_enc_contract_details_end(&w, s->version, req_id);
    out_send(s, &w);
}

/* Skips the combo legs of a BAG contract: nLegs, then conId, ratio, action, exchange each. */
static void skip_combo_legs(struct ibw_reader *r, const struct ibw_contract *c)
{
    int n = 0;

    if (!c->sec_type || strcmp(c->sec_type, "BAG") != 0)
        return;
    ibw_read_int(r, &n);
    if (n < 0 || n > 1000) {
        r->err = r->err ? r->err : IBW_EBADINT;
        return;
    }
    ibw_read_skip(r, (unsigned)n * 4);
}

static const struct mgw_fixture_contract *lookup_contract(struct mgw_session *s,
                                                          const struct ibw_contract *c)
{
    const struct mgw_fixture_contract *found[1];

    return mgw_fixtures_match(s->ctx->fx, c, found, 1) ? found[0] : NULL;
}

static void req_historical_data(struct mgw_session *s, struct ibw_reader *r)
{
    struct mgw_ctx *ctx = s->ctx;
    struct mgw_hist_request hr = { 0 };
    struct mgw_synth_reject rej;
    struct mgw_hist h;
    struct ibw_contract c = { 0 };
    struct ibw_writer w;
    int version = 0, req_id = 0, format_date = 0;
    bool include_expired = false, use_rth = false, keep_up_to_date = false;

    if (s->version < 124) /* SYNT_REALTIME_BARS dropped the version field */
        ibw_read_int(r, &version);
    ibw_read_int(r, &req_id);
    ibw_read_contract(r, &c, true);
    ibw_read_bool(r, &include_expired);
    ibw_read_str(r, &hr.end_date_time);
    ibw_read_str(r, &hr.bar_size);
    ibw_read_str(r, &hr.duration);
    ibw_read_bool(r, &use_rth);
    ibw_read_str(r, &hr.what_to_show);
    ibw_read_int(r, &format_date);
    skip_combo_legs(r, &c);
    if (s->version >= 124 && ibw_reader_left(r) > 0)
        ibw_read_bool(r, &keep_up_to_date);
    if (!request_ok(s, r, "reqHistoricalData"))
        return;
    hr.contract = lookup_contract(s, &c);
    if (!hr.contract) {
        send_error(s, req_id, 200, ibw_error_text(200));
        return;
    }
    hr.use_rth = use_rth;
    hr.format_date = format_date;
    hr.now_s = ctx->wall_ms(ctx->clock) / 1000;
    hr.seed = ctx->cfg->seed;
    hr.max_bars = ctx->max_hist_bars;
    if (mgw_hist_generate(&hr, &h, &rej) < 0) {
        send_error(s, req_id, rej.code, rej.text);
        return;
    }
    ibw_enc_historical_data(out_begin(s, &w), s->version, req_id, h.start, h.end, h.bars, h.n);
    mgw_hist_free(&h);
    out_send(s, &w);
    if (keep_up_to_date)
        subscribe(s, &s->hist_subs, req_id);
}

/* A cancel of a streaming request: nothing on success, as TWS does; an id that is not active
 * gets the gateway's error, whose text ends with the id. */
static void cancel_subscription(struct mgw_session *s, struct ibw_reader *r, struct mgw_reqset *set,
                                const char *what, int code)
{
    char text[96];
    int version = 0, req_id = 0;

    ibw_read_int(r, &version);
    ibw_read_int(r, &req_id);
    if (!request_ok(s, r, what))
        return;
    if (reqset_del(set, req_id))
        return;
    snprintf(text, sizeof text, "%s%d", ibw_error_text(code), req_id);
    send_error(s, req_id, code, text);
}

static void cancel_historical_data(struct mgw_session *s, struct ibw_reader *r)
{
    cancel_subscription(s, r, &s->hist_subs, "cancelHistoricalData", 366);
}

static void req_head_timestamp(struct mgw_session *s, struct ibw_reader *r)
{
    const struct mgw_fixture_contract *fc;
    struct ibw_contract c = { 0 };
    struct ibw_writer w;
    const char *what = "";
    char ts[40];
    int req_id = 0, format_date = 0;
    bool include_expired = false, use_rth = false;

    ibw_read_int(r, &req_id);
    ibw_read_contract(r, &c, true);
    ibw_read_bool(r, &include_expired);
    ibw_read_bool(r, &use_rth);
    ibw_read_str(r, &what);
    ibw_read_int(r, &format_date);
    if (!request_ok(s, r, "reqHeadTimestamp"))
        return;
    fc = lookup_contract(s, &c);
    if (!fc) {
        send_error(s, req_id, 200, ibw_error_text(200));
        return;
    }
    mgw_head_timestamp(fc, format_date, ts, sizeof ts);
    ibw_enc_head_timestamp(out_begin(s, &w), s->version, req_id, ts);
    out_send(s, &w);
}

static void req_matching_symbols(struct mgw_session *s, struct ibw_reader *r)
{
    const struct mgw_fixture_contract *found[MAX_SYMBOLS];
    struct ibw_symbol_sample samples[MAX_SYMBOLS];
    struct ibw_writer w;
    const char *pattern = "";
    int req_id = 0;
    unsigned n;

    ibw_read_int(r, &req_id);
    ibw_read_str(r, &pattern);
    if (!request_ok(s, r, "reqMatchingSymbols"))
        return;
    n = mgw_fixtures_search(s->ctx->fx, pattern, found, MAX_SYMBOLS);
    for (unsigned i = 0; i < n; i++) {
        const struct ibw_contract_details *d = &found[i]->d;

        samples[i] = (struct ibw_symbol_sample){
            .con_id = d->c.con_id,
            .symbol = d->c.symbol,
            .sec_type = d->c.sec_type,
            .primary_exchange = d->c.primary_exchange ? d->c.primary_exchange : d->c.exchange,
            .currency = d->c.currency,
            .deriv_sec_types = found[i]->deriv_sec_types,
            .n_deriv_sec_types = found[i]->n_deriv_sec_types,
            .description = found[i]->description ? found[i]->description : d->long_name,
            .issuer_id = "",
        };
    }
    ibw_enc_symbol_samples(out_begin(s, &w), s->version, req_id, samples, n);
    out_send(s, &w);
}

static void req_market_data_type(struct mgw_session *s, struct ibw_reader *r)
{
    int version = 0, type = 0;

    ibw_read_int(r, &version);
    ibw_read_int(r, &type);
    if (!request_ok(s, r, "reqMarketDataType"))
        return;
    if (type < 1 || type > 4) {
        char text[96];

        snprintf(text, sizeof text, "Invalid market data type: %d", type);
        send_error(s, -1, 321, text);
        return;
    }
    s->market_data_type = type;
    s->market_data_type_set = true;
}

static void req_mkt_data(struct mgw_session *s, struct ibw_reader *r)
{
    struct mgw_ctx *ctx = s->ctx;
    const struct mgw_fixture_contract *fc;
    struct mgw_quote q;
    struct ibw_contract c = { 0 };
    struct ibw_writer w;
    const char *generic_ticks = "";
    int version = 0, req_id = 0;
    bool delta_neutral = false, snapshot = false, regulatory = false;

    ibw_read_int(r, &version);
    ibw_read_int(r, &req_id);
    ibw_read_contract(r, &c, true);
    skip_combo_legs(r, &c);
    ibw_read_bool(r, &delta_neutral);
    if (delta_neutral)
        ibw_read_skip(r, 3); /* conId, delta, price */
    ibw_read_str(r, &generic_ticks);
    ibw_read_bool(r, &snapshot);
    if (ibw_reader_left(r) > 0)
        ibw_read_bool(r, &regulatory);
    if (!request_ok(s, r, "reqMktData"))
        return;
    fc = lookup_contract(s, &c);
    if (!fc) {
        send_error(s, req_id, 200, ibw_error_text(200));
        return;
    }
    /* Delayed types get the delayed tick ids, the way TWS answers without a subscription. */
    bool delayed = s->market_data_type >= 3;
    int bid = delayed ? IBW_TICK_DELAYED_BID : IBW_TICK_BID;
    int ask = delayed ? IBW_TICK_DELAYED_ASK : IBW_TICK_ASK;
    int last = delayed ? IBW_TICK_DELAYED_LAST : IBW_TICK_LAST;
    int close = delayed ? IBW_TICK_DELAYED_CLOSE : IBW_TICK_CLOSE;
    char ts[24];

    mgw_quote_at(fc, ctx->cfg->seed, ctx->wall_ms(ctx->clock) / 1000, &q);
    snprintf(ts, sizeof ts, "%" PRId64, q.last_time_s);
    out_begin(s, &w);
    ibw_enc_tick_req_params(&w, s->version, req_id, fc->d.min_tick, "9c0001", 3);
    if (s->market_data_type_set)
        ibw_enc_market_data_type(&w, s->version, req_id, s->market_data_type);
    /* Each price tick is followed by its size tick, as TWS does (IB_WIRE §8.9). */
    ibw_enc_tick_price(&w, s->version, req_id, bid, q.bid, q.bid_size, 0);
    ibw_enc_tick_size(&w, s->version, req_id, bid + (delayed ? 3 : -1), q.bid_size);
    ibw_enc_tick_price(&w, s->version, req_id, ask, q.ask, q.ask_size, 0);
    ibw_enc_tick_size(&w, s->version, req_id, ask + (delayed ? 3 : 1), q.ask_size);
    ibw_enc_tick_price(&w, s->version, req_id, last, q.last, q.last_size, 0);
    ibw_enc_tick_size(&w, s->version, req_id, last + (delayed ? 3 : 1), q.last_size);
    ibw_enc_tick_size(&w, s->version, req_id, delayed ? IBW_TICK_DELAYED_VOLUME : IBW_TICK_VOLUME,
                      q.volume);
    ibw_enc_tick_price(&w, s->version, req_id, close, q.close, "0", 0);
    ibw_enc_tick_string(&w, s->version, req_id,
                        delayed ? IBW_TICK_DELAYED_LAST_TIMESTAMP : IBW_TICK_LAST_TIMESTAMP, ts);
    if (snapshot)
        ibw_enc_tick_snapshot_end(&w, s->version, req_id);
    out_send(s, &w);
    if (!snapshot)
        subscribe(s, &s->mkt_subs, req_id);
}

static void cancel_mkt_data(struct mgw_session *s, struct ibw_reader *r)
{
    cancel_subscription(s, r, &s->mkt_subs, "cancelMktData", 300);
}

/* Requests acknowledged by doing nothing: cancels of subscriptions we do not stream, and
 * requests whose real answer is "nothing until something happens". */
static void req_no_reply(struct mgw_session *s, struct ibw_reader *r)
{
    (void)s;
    (void)r;
}

static const struct handler handlers[] = {
    { IBW_OUT_REQ_CURRENT_TIME, req_current_time },
    { IBW_OUT_REQ_IDS, req_ids },
    { IBW_OUT_REQ_MANAGED_ACCTS, req_managed_accts },
    { IBW_OUT_REQ_POSITIONS, req_positions },
    { IBW_OUT_CANCEL_POSITIONS, req_no_reply },
    { IBW_OUT_REQ_OPEN_ORDERS, req_open_orders },
    { IBW_OUT_REQ_ALL_OPEN_ORDERS, req_open_orders },
    { IBW_OUT_REQ_AUTO_OPEN_ORDERS, req_auto_open_orders },
    { IBW_OUT_REQ_COMPLETED_ORDERS, req_completed_orders },
    { IBW_OUT_REQ_ACCT_DATA, req_account_updates },
    { IBW_OUT_REQ_ACCOUNT_UPDATES_MULTI, req_account_updates_multi },
    { IBW_OUT_CANCEL_ACCOUNT_UPDATES_MULTI, req_no_reply },
    { IBW_OUT_REQ_ACCOUNT_SUMMARY, req_account_summary },
    { IBW_OUT_CANCEL_ACCOUNT_SUMMARY, req_no_reply },
    { IBW_OUT_REQ_EXECUTIONS, req_executions },
    { IBW_OUT_REQ_CONTRACT_DATA, req_contract_details },
    { IBW_OUT_REQ_HISTORICAL_DATA, req_historical_data },
    { IBW_OUT_CANCEL_HISTORICAL_DATA, cancel_historical_data },
    { IBW_OUT_REQ_HEAD_TIMESTAMP, req_head_timestamp },
    { IBW_OUT_CANCEL_HEAD_TIMESTAMP, req_no_reply },
    { IBW_OUT_REQ_MATCHING_SYMBOLS, req_matching_symbols },
    { IBW_OUT_REQ_MARKET_DATA_TYPE, req_market_data_type },
    { IBW_OUT_REQ_MKT_DATA, req_mkt_data },
    { IBW_OUT_CANCEL_MKT_DATA, cancel_mkt_data },
};

/* The request id of a request, for errors that replace its answer; -1 when it has none. */
int mgw__request_req_id(const struct mgw_session *s, const struct ibw_frame *f, int msg_id)
{
    struct ibw_reader r;
    int idx = ibw_out_req_id_index(msg_id, s->version), id = -1;

    if (idx < 0)
        return -1;
    ibw_reader_init(&r, f->payload, f->len);
    ibw_read_skip(&r, (unsigned)idx);
    return ibw_read_int(&r, &id) == 0 ? id : -1;
}

/* --replay: the recorded answers, when a recorded request matches (replay.h). */
static bool replay_answer(struct mgw_session *s, const struct ibw_frame *f, int id)
{
    struct ibw_writer w;
    int n = mgw_replay_answer(s->ctx->replay, s->version, f->payload, f->len, out_begin(s, &w));

    if (n == -ENOENT)
        return false;
    mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "replayed",
                       "\"msg_id\":%d,\"frames\":%d", id, n < 0 ? 0 : n);
    out_send(s, &w);
    return true;
}

static void on_request(struct mgw_session *s, const struct ibw_frame *f)
{
    struct ibw_reader r;
    int id = 0;

    ibw_reader_init(&r, f->payload, f->len);
    if (ibw_read_msg_id(&r, &id) < 0) {
        bad_input(s, "non-numeric message id", r.err);
        return;
    }
    if (s->phase == MGW_PHASE_VERSION_SENT) {
        if (id == IBW_OUT_START_API) {
            on_start_api(s, &r);
            return;
        }
        /* TWS answers nothing before START_API; the request is dropped. */
        mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "ignored",
                           "\"msg_id\":%d,\"why\":\"before startApi\"", id);
        return;
    }
    s->requests++;
    if (s->ctx->faults && mgw_faults_watch(s->ctx->faults, MGW_EV_REQUEST) &&
        mgw__fault_point(s, MGW_EV_REQUEST, id, mgw__request_req_id(s, f, id)))
        return;
    if (s->ctx->replay && replay_answer(s, f, id))
        return;
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        if (handlers[i].id == id) {
            handlers[i].fn(s, &r);
            return;
        }
    }
    s->ctx->counters.unknown_messages++;
    mgw_journal_eventf(s->ctx->journal, s->id, s->client_id, "ignored",
                       "\"msg_id\":%d,\"why\":\"%s\"", id,
                       id == IBW_OUT_START_API ? "repeated startApi"
                       : ibw_out_name(id)      ? "not implemented"
                                               : "unknown message id");
}

/* --------------------------------------------------------------------------------------------
 * Input
 */
void mgw_session_init(struct mgw_session *s, struct mgw_ctx *ctx, uint64_t id,
                      const struct mgw_session_io *io, void *io_data)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->io = io;
    s->io_data = io_data;
    s->id = id;
    s->phase = MGW_PHASE_HELLO;
    s->client_id = -1;
    s->next_order_id = ctx->cfg->next_valid_id;
    s->market_data_type = 1;
}

/* Handles as many complete units (handshake, then frames) as buf holds.
 * Returns the bytes consumed; stops early once the session closes, or while a proxy waits for
 * the upstream's answer. */
/* This feed's (or continue's) share of the loop is used up. */
static bool turn_spent(const struct mgw_session *s)
{
    const struct mgw_ctx *ctx = s->ctx;

    return (ctx->frames_per_turn > 0 && s->turn_frames >= ctx->frames_per_turn) ||
           (ctx->bytes_per_turn > 0 && s->bytes_out - s->turn_out0 >= ctx->bytes_per_turn);
}

static size_t process(struct mgw_session *s, const uint8_t *buf, size_t len)
{
    struct mgw_journal *j = s->ctx->journal;
    size_t off = 0;

    while (off < len && s->phase != MGW_PHASE_CLOSED && !s->silent) {
        ssize_t n;

        if (s->px && mgw__proxy_paused(s))
            break;
        if (s->phase == MGW_PHASE_HELLO) {
            struct ibw_hello h;

            n = ibw_hello_parse(buf + off, len - off, &h);
            if (n < 0) {
                bad_input(s,
                          n == IBW_ENOTAPI   ? "bytes before the API handshake"
                          : n == IBW_ELEGACY ? "legacy handshake not supported"
                                             : "bad handshake",
                          (int)n);
                break;
            }
            if (n == 0)
                break;
            mgw_journal_frame_leg(j, s->id, -1, false, client_leg(s), buf + off + 8, (size_t)n - 8);
            if (mgw_journal_records(j))
                mgw_journal_record(j, s->id, mgw__session_ms(s), false, MGW_REC_HELLO, &h,
                                   buf + off + 8, (size_t)n - 8);
            off += (size_t)n;
            if (s->px)
                mgw__proxy_on_hello(s, &h, buf + off - (size_t)n, (size_t)n);
            else
                on_hello(s, &h);
        } else {
            struct ibw_frame f;

            if (s->phase == MGW_PHASE_READY && turn_spent(s)) {
                s->yielded = true; /* the rest waits for mgw_session_continue() */
                break;
            }
            n = ibw_frame_parse(buf + off, len - off, s->ctx->cfg->max_in_frame, &f);
            if (n < 0) {
                bad_input(s, n == IBW_EZEROLEN ? "zero-length frame" : "oversized frame", (int)n);
                break;
            }
            if (n == 0)
                break;
            off += (size_t)n;
            s->frames_in++;
            s->turn_frames++;
            mgw_journal_frame_leg(j, s->id, s->client_id, false, client_leg(s), f.payload, f.len);
            if (mgw_journal_records(j))
                mgw_journal_record(j, s->id, mgw__session_ms(s), false, MGW_REC_FRAME, NULL,
                                   f.payload, f.len);
            if (s->px)
                mgw__proxy_on_frame(s, &f, buf + off - (size_t)n, (size_t)n);
            else
                on_request(s, &f);
        }
    }
    if (s->px)
        mgw__proxy_flush(s); /* before buf changes */
    return off;
}

static int keep_pending(struct mgw__carry *c, const uint8_t *data, size_t len)
{
    size_t need = *c->len + len;

    if (need > *c->alloc) {
        size_t alloc = *c->alloc ? *c->alloc : 256;
        uint8_t *p;

        while (alloc < need)
            alloc *= 2;
        p = realloc(*c->buf, alloc);
        if (!p)
            return -ENOMEM;
        *c->buf = p;
        *c->alloc = alloc;
    }
    memcpy(*c->buf + *c->len, data, len);
    *c->len += len;
    return 0;
}

/* Idle connections keep no big buffer. */
static void carry_shrink(struct mgw__carry *c)
{
    if (*c->len == 0 && *c->alloc > 4096) {
        free(*c->buf);
        *c->buf = NULL;
        *c->alloc = 0;
    }
}

void mgw__carry_feed(struct mgw_session *s, struct mgw__carry *c, const uint8_t *data, size_t len)
{
    size_t used;

    if (*c->len == 0) {
        used = c->process(s, data, len);
        data += used;
        len -= used;
    }
    while (len > 0 && s->phase != MGW_PHASE_CLOSED && !s->silent) {
        size_t take = c->bound - *c->len < len ? c->bound - *c->len : len;

        if (take == 0) { /* the parsers enforce their caps; only a waiting proxy gets here */
            mgw__bad_input(s, c->leg, "input over the buffer cap", IBW_EMSGSIZE);
            return;
        }

        if (keep_pending(c, data, take) < 0) {
            mgw_session_close(s, MGW_CLOSE_NOW, "out of memory");
            return;
        }
        data += take;
        len -= take;
        used = c->process(s, *c->buf, *c->len);
        if (s->phase == MGW_PHASE_CLOSED)
            return; /* what is left is dropped with the session */
        memmove(*c->buf, *c->buf + used, *c->len - used);
        *c->len -= used;
    }
    carry_shrink(c);
}

static struct mgw__carry client_carry(struct mgw_session *s)
{
    /* A partial unit is at most the frame cap plus its 4-byte length (the parsers reject a
     * longer length as soon as they see it), so the carried buffer stays below this bound. */
    return (struct mgw__carry){ &s->in,       &s->in_len,
                                &s->in_alloc, s->ctx->cfg->max_in_frame + 8 + IBW_MAX_HELLO,
                                process,      client_leg(s) };
}

/* The session's buffers (the carried input, the proxy state). mgw_session_end() may run
 * inside a feed (the server closes a connection whose write failed): the buffers the feed is
 * walking are then released when it returns (mgw__session_leave). */
static void release_buffers(struct mgw_session *s)
{
    free(s->in);
    s->in = NULL;
    s->in_len = s->in_alloc = 0;
    if (s->px)
        mgw__proxy_end(s);
    s->px = NULL;
}

void mgw__session_enter(struct mgw_session *s)
{
    s->busy++;
}

void mgw__session_leave(struct mgw_session *s)
{
    if (--s->busy == 0 && s->ended)
        release_buffers(s);
}

void mgw_session_feed(struct mgw_session *s, const uint8_t *data, size_t len)
{
    struct mgw__carry c;

    s->bytes_in += len;
    s->turn_frames = 0;
    s->turn_out0 = s->bytes_out;
    s->yielded = false;
    if (s->phase == MGW_PHASE_CLOSED || s->silent)
        return;
    c = client_carry(s);
    mgw__session_enter(s);
    mgw__carry_feed(s, &c, data, len);
    mgw__session_leave(s);
}

bool mgw_session_yielded(const struct mgw_session *s)
{
    return s->yielded && s->phase != MGW_PHASE_CLOSED && !s->silent;
}

void mgw_session_continue(struct mgw_session *s)
{
    s->turn_frames = 0;
    s->turn_out0 = s->bytes_out;
    s->yielded = false;
    mgw__session_resume(s);
}

void mgw__session_resume(struct mgw_session *s)
{
    struct mgw__carry c = client_carry(s);
    size_t used;

    if (s->in_len == 0 || s->phase == MGW_PHASE_CLOSED || s->silent)
        return;
    mgw__session_enter(s);
    used = process(s, s->in, s->in_len);
    if (s->phase != MGW_PHASE_CLOSED) {
        memmove(s->in, s->in + used, s->in_len - used);
        s->in_len -= used;
        carry_shrink(&c);
    }
    mgw__session_leave(s);
}

void mgw_session_end(struct mgw_session *s)
{
    struct mgw_ctx *ctx = s->ctx;

    /* A stale session: the gateway has not noticed yet that this client is gone. */
    if (s->holds_id && ctx->stale_client_id_ms > 0)
        mgw_ctx_hold_client_id(ctx, s->client_id,
                               ctx->mono_ms(ctx->clock) + ctx->stale_client_id_ms);
    if (s->holds_id && mgw_idmap_get(&s->ctx->client_ids, s->client_id) == s)
        mgw_idmap_del(&s->ctx->client_ids, s->client_id);
    s->holds_id = false;
    if (s->phase != MGW_PHASE_CLOSED)
        s->last_phase = s->phase;
    s->phase = MGW_PHASE_CLOSED;
    reqset_free(&s->mkt_subs);
    reqset_free(&s->hist_subs);
    s->ended = true;
    if (s->busy == 0)
        release_buffers(s);
}
