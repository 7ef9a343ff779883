#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibwire.h"
#include "strbuf.h"

struct mgw_journal {
    uv_prepare_t flusher; /* flushes the file once per loop iteration, before it polls */
    FILE *file;
    bool owns_file;                /* false for stdout */
    struct mgw_strbuf pending;     /* lines not yet written to file */
    FILE *rec_file;                /* --record: the decoded conversation */
    struct mgw_strbuf rec_pending; /* its lines not yet written */
    uint64_t seq;
    char **ring; /* ring_cap slots of malloc'd event lines */
    uint64_t *ring_seq;
    bool *ring_frame; /* the slot holds a frame, not an event */
    unsigned ring_cap;
    unsigned ring_next;  /* slot the next event goes to */
    unsigned ring_count; /* slots in use: the ring_count slots before ring_next */
    size_t ring_bytes;   /* their lines' bytes, bounded by ring_max_bytes */
    size_t ring_max_bytes;
    struct mgw_strbuf line;
    time_t stamp_sec; /* the second stamp[] was formatted for */
    char stamp[24];   /* "2026-11-25T18:30:00" */
};

#define PENDING_FLUSH (4u << 20) /* write out early past this many buffered bytes */

/* Lines are written once per loop iteration, not one by one: cheaper, and whatever the embedding
 * program prints before running the loop (mockgw's ready line) comes out first. The prepare
 * phase runs after the timers and before the loop blocks, so entries written by timer and I/O
 * callbacks alike are out before mockgw waits for anything. */
static void sink_flush(FILE *file, struct mgw_strbuf *pending)
{
    if (file && pending->len > 0) {
        fwrite(pending->data, 1, pending->len, file);
        fflush(file);
    }
    mgw_strbuf_reset(pending);
}

static void flush_pending(struct mgw_journal *j)
{
    sink_flush(j->file, &j->pending);
}

static void on_prepare(uv_prepare_t *h)
{
    struct mgw_journal *j = h->data;

    flush_pending(j);
    sink_flush(j->rec_file, &j->rec_pending);
}

struct mgw_journal *mgw_journal_new(uv_loop_t *loop, const char *path, unsigned ring_cap,
                                    struct mgw_err *err)
{
    struct mgw_journal *j = calloc(1, sizeof *j);

    if (!j)
        goto nomem;
    if (ring_cap > 0) {
        j->ring = calloc(ring_cap, sizeof *j->ring);
        j->ring_seq = calloc(ring_cap, sizeof *j->ring_seq);
        j->ring_frame = calloc(ring_cap, sizeof *j->ring_frame);
        if (!j->ring || !j->ring_seq || !j->ring_frame)
            goto nomem;
        j->ring_cap = ring_cap;
        j->ring_max_bytes = MGW_JOURNAL_RING_MAX_BYTES;
    }
    if (path && strcmp(path, "-") == 0) {
        j->file = stdout;
    } else if (path) {
        j->file = fopen(path, "a");
        if (!j->file) {
            snprintf(err->msg, sizeof err->msg, "--log %s: %s", path, strerror(errno));
            goto fail;
        }
        j->owns_file = true;
    }
    mgw_strbuf_init(&j->line, 1u << 20);
    mgw_strbuf_init(&j->pending, (size_t)PENDING_FLUSH + (1u << 20) + 2);
    mgw_strbuf_init(&j->rec_pending, (size_t)PENDING_FLUSH + (1u << 20) + 2);
    uv_prepare_init(loop, &j->flusher);
    j->flusher.data = j;
    uv_prepare_start(&j->flusher, on_prepare);
    uv_unref((uv_handle_t *)&j->flusher);
    return j;

nomem:
    snprintf(err->msg, sizeof err->msg, "journal: out of memory");
fail:
    if (j) {
        free(j->ring);
        free(j->ring_seq);
        free(j->ring_frame);
    }
    free(j);
    return NULL;
}

static void on_flusher_closed(uv_handle_t *h)
{
    struct mgw_journal *j = h->data;

    for (unsigned i = 0; i < j->ring_cap; i++)
        free(j->ring[i]);
    free(j->ring);
    free(j->ring_seq);
    free(j->ring_frame);
    mgw_strbuf_free(&j->line);
    mgw_strbuf_free(&j->pending);
    mgw_strbuf_free(&j->rec_pending);
    free(j);
}

void mgw_journal_free(struct mgw_journal *j)
{
    if (!j)
        return;
    if (j->file) {
        flush_pending(j);
        if (j->owns_file)
            fclose(j->file);
        j->file = NULL;
    }
    if (j->rec_file) {
        sink_flush(j->rec_file, &j->rec_pending);
        fclose(j->rec_file);
        j->rec_file = NULL;
    }
    uv_close((uv_handle_t *)&j->flusher, on_flusher_closed);
}

bool mgw_journal_logs_frames(const struct mgw_journal *j)
{
    return j && (j->file || j->ring_cap > 0);
}

uint64_t mgw_journal_seq(const struct mgw_journal *j)
{
    return j->seq;
}

/* Starts an entry: {"seq":N,"t":"2026-11-25T18:30:00.123Z","conn":C,"client_id":I */
static void entry_begin(struct mgw_journal *j, uint64_t conn, int client_id)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != j->stamp_sec || !j->stamp[0]) { /* formatting the date is the slow part */
        struct tm tm;

        gmtime_r(&ts.tv_sec, &tm);
        strftime(j->stamp, sizeof j->stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        j->stamp_sec = ts.tv_sec;
    }
    mgw_strbuf_reset(&j->line);
    mgw_strbuf_printf(&j->line, "{\"seq\":%" PRIu64 ",\"t\":\"%s.%03ldZ\",\"conn\":%" PRIu64,
                      ++j->seq, j->stamp, ts.tv_nsec / 1000000L, conn);
    if (client_id >= 0)
        mgw_strbuf_printf(&j->line, ",\"client_id\":%d", client_id);
    else
        mgw_strbuf_append(&j->line, ",\"client_id\":null", 17);
}

static void ring_push(struct mgw_journal *j, char *line, size_t len, bool frame);

static void entry_end(struct mgw_journal *j, bool frame)
{
    mgw_strbuf_append(&j->line, "}", 1);
    if (j->line.err) /* an entry over the line cap is dropped, never truncated into bad JSON */
        return;
    if (j->file) {
        mgw_strbuf_append(&j->pending, j->line.data, j->line.len);
        mgw_strbuf_append(&j->pending, "\n", 1);
        if (j->pending.len >= PENDING_FLUSH)
            flush_pending(j);
    }
    if (j->ring_cap > 0) {
        char *copy = strdup(j->line.data);

        if (!copy)
            return;
        ring_push(j, copy, j->line.len + 1, frame);
    }
}

/* Frees the oldest line of the ring. */
static void ring_drop_oldest(struct mgw_journal *j)
{
    unsigned i = (j->ring_next + j->ring_cap - j->ring_count) % j->ring_cap;

    j->ring_bytes -= strlen(j->ring[i]) + 1;
    free(j->ring[i]);
    j->ring[i] = NULL;
    j->ring_count--;
}

/* Keeps line (len bytes with its NUL) as the newest; the oldest go when the ring is full by
 * count, or by bytes: a few huge frames (a month of bars is half a megabyte) must not make
 * the ring's memory depend on what happened to pass through it. The newest always stays. */
static void ring_push(struct mgw_journal *j, char *line, size_t len, bool frame)
{
    if (j->ring_count == j->ring_cap)
        ring_drop_oldest(j);
    while (j->ring_count > 0 && j->ring_bytes + len > j->ring_max_bytes)
        ring_drop_oldest(j);
    j->ring[j->ring_next] = line;
    j->ring_seq[j->ring_next] = j->seq;
    j->ring_frame[j->ring_next] = frame;
    j->ring_next = (j->ring_next + 1) % j->ring_cap;
    j->ring_count++;
    j->ring_bytes += len;
}

size_t mgw_journal_ring_bytes(const struct mgw_journal *j)
{
    return j ? j->ring_bytes : 0;
}

void mgw_journal_set_ring_max_bytes(struct mgw_journal *j, size_t max)
{
    j->ring_max_bytes = max;
    while (j->ring_count > 1 && j->ring_bytes > max)
        ring_drop_oldest(j);
}

/* Nobody reads events: no log file, no ring (the admin API is off). */
static bool unheard(const struct mgw_journal *j)
{
    return !j || (!j->file && j->ring_cap == 0);
}

void mgw_journal_event(struct mgw_journal *j, uint64_t conn, int client_id, const char *event,
                       const char *detail)
{
    if (unheard(j))
        return;
    entry_begin(j, conn, client_id);
    mgw_strbuf_append(&j->line, ",\"event\":", 9);
    mgw_strbuf_json_string(&j->line, event, strlen(event));
    if (detail && *detail) {
        mgw_strbuf_append(&j->line, ",", 1);
        mgw_strbuf_append(&j->line, detail, strlen(detail));
    }
    entry_end(j, false);
}

void mgw_journal_eventf(struct mgw_journal *j, uint64_t conn, int client_id, const char *event,
                        const char *detail_fmt, ...)
{
    char detail[768];
    va_list ap;
    int n;

    if (unheard(j))
        return;
    va_start(ap, detail_fmt);
    n = vsnprintf(detail, sizeof detail, detail_fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof detail)
        snprintf(detail, sizeof detail, "\"detail_truncated\":true");
    mgw_journal_event(j, conn, client_id, event, detail);
}

/* Every field of a payload, the message id included, exactly as it was on the wire:
 * ,"fields":["...",...] */
static void append_fields(struct mgw_strbuf *b, const uint8_t *payload, size_t len)
{
    const char *p = (const char *)payload;
    const char *end = p + len;

    mgw_strbuf_append(b, ",\"fields\":[", 11);
    for (bool first = true; p < end; first = false) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

        if (!first)
            mgw_strbuf_append(b, ",", 1);
        mgw_strbuf_json_string(b, p, n);
        p += n + (nul ? 1 : 0);
    }
    mgw_strbuf_append(b, "]", 1);
}

/* The message id of a payload and IB's name for it in that direction (NULL when unknown);
 * false when the first field is not a number. */
static bool payload_msg(const uint8_t *payload, size_t len, bool out, int *id, const char **name)
{
    struct ibw_reader r;

    ibw_reader_init(&r, payload, len);
    if (ibw_read_msg_id(&r, id) < 0)
        return false;
    *name = out ? ibw_in_name(*id) : ibw_out_name(*id);
    return true;
}

void mgw_journal_frame_leg(struct mgw_journal *j, uint64_t conn, int client_id, bool out,
                           const char *leg, const uint8_t *payload, size_t len)
{
    const char *name;
    int id;

    if (!mgw_journal_logs_frames(j))
        return;
    entry_begin(j, conn, client_id);
    if (leg)
        mgw_strbuf_printf(&j->line, ",\"leg\":\"%s\"", leg);
    mgw_strbuf_printf(&j->line, ",\"dir\":\"%s\"", out ? "out" : "in");
    if (payload_msg(payload, len, out, &id, &name)) {
        mgw_strbuf_printf(&j->line, ",\"msg_id\":%d,\"msg\":", id);
        if (name)
            mgw_strbuf_json_string(&j->line, name, strlen(name));
        else
            mgw_strbuf_append(&j->line, "null", 4);
    }
    append_fields(&j->line, payload, len);
    entry_end(j, true);
}

void mgw_journal_frame(struct mgw_journal *j, uint64_t conn, int client_id, bool out,
                       const uint8_t *payload, size_t len)
{
    mgw_journal_frame_leg(j, conn, client_id, out, NULL, payload, len);
}

int mgw_journal_record_open(struct mgw_journal *j, const char *path, struct mgw_err *err)
{
    if (j->rec_file)
        return 0;
    j->rec_file = fopen(path, "w");
    if (!j->rec_file) {
        int e = errno;

        snprintf(err->msg, sizeof err->msg, "--record %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

bool mgw_journal_records(const struct mgw_journal *j)
{
    return j && j->rec_file;
}

void mgw_journal_record(struct mgw_journal *j, uint64_t conn, uint64_t t_ms, bool out,
                        enum mgw_record_kind kind, const struct ibw_hello *h,
                        const uint8_t *payload, size_t len)
{
    struct mgw_strbuf *b = &j->line;
    const char *name = NULL;
    int id = 0;

    if (!mgw_journal_records(j))
        return;
    mgw_strbuf_reset(b);
    mgw_strbuf_printf(b, "{\"t_ms\":%" PRIu64 ",\"conn\":%" PRIu64 ",\"dir\":\"%s\"", t_ms, conn,
                      out ? "out" : "in");
    if (kind == MGW_REC_FRAME && payload_msg(payload, len, out, &id, &name)) {
        mgw_strbuf_printf(b, ",\"msg\":%d,\"name\":", id);
        if (name)
            mgw_strbuf_json_string(b, name, strlen(name));
        else
            mgw_strbuf_append(b, "null", 4);
    } else {
        name = kind == MGW_REC_HELLO ? "hello" : kind == MGW_REC_VERSION ? "serverVersion" : NULL;
        mgw_strbuf_printf(b, ",\"msg\":null,\"name\":%s%s%s", name ? "\"" : "",
                          name ? name : "null", name ? "\"" : "");
    }
    append_fields(b, payload, len);
    if (kind == MGW_REC_HELLO && h) {
        mgw_strbuf_printf(b, ",\"min\":%d,\"max\":%d,\"options\":", h->min_version, h->max_version);
        mgw_strbuf_json_string(b, h->options, strlen(h->options));
    }
    mgw_strbuf_append(b, "}\n", 2);
    if (b->err) /* a line over the cap is dropped, never truncated into bad JSON */
        return;
    mgw_strbuf_append(&j->rec_pending, b->data, b->len);
    if (j->rec_pending.len >= PENDING_FLUSH)
        sink_flush(j->rec_file, &j->rec_pending);
}

void mgw_journal_clear(struct mgw_journal *j)
{
    for (unsigned i = 0; i < j->ring_cap; i++) {
        free(j->ring[i]);
        j->ring[i] = NULL;
    }
    j->ring_next = 0;
    j->ring_count = 0;
    j->ring_bytes = 0;
}

char *mgw_journal_ring_json(const struct mgw_journal *j, uint64_t since, enum mgw_journal_kind kind)
{
    struct mgw_strbuf b;
    bool first = true;

    mgw_strbuf_init(&b, 64u << 20);
    mgw_strbuf_append(&b, "[", 1);
    for (unsigned k = 0; k < j->ring_cap; k++) {
        unsigned i = (j->ring_next + k) % j->ring_cap;

        if (!j->ring[i] || j->ring_seq[i] <= since)
            continue;
        if ((kind == MGW_JOURNAL_EVENTS && j->ring_frame[i]) ||
            (kind == MGW_JOURNAL_FRAMES && !j->ring_frame[i]))
            continue;
        if (!first)
            mgw_strbuf_append(&b, ",", 1);
        mgw_strbuf_append(&b, j->ring[i], strlen(j->ring[i]));
        first = false;
    }
    mgw_strbuf_append(&b, "]", 1);
    if (b.err) {
        mgw_strbuf_free(&b);
        return NULL;
    }
    return b.data;
}
