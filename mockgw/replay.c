/* Replay: the answers of a --record file, served to matching requests (docs/record-replay.md). */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "input.h"

#define MAX_FILE      (256u << 20) /* a record file larger than this is refused */
#define MAX_FIELDS    100000u      /* per recorded frame */
#define MAX_BACKTRACK 4096u        /* requests searched back for the one an answer's id names */
#define ID_CAP        32u          /* a request id longer than this is not substituted */

struct fields {
    char **v;
    unsigned n;
};

struct answer {
    struct fields f;
    int id_index; /* where the request id sits in it; -1: no substitution */
};

struct request {
    uint64_t conn;
    int msg_id;
    int id_index; /* where its request id sits; -1: none */
    struct fields f;
    struct answer *answers;
    unsigned n_answers, cap_answers;
    unsigned hits; /* on the first request of its kind: live requests of that kind served */
};

struct mgw_replay {
    struct request *req;
    unsigned n, cap;
};

/* What the loader knows about one recorded connection. */
struct rec_conn {
    uint64_t conn;
    int version;
    bool started; /* START_API seen: client frames from here on are requests */
    int last;     /* index of its latest request; -1 before the first */
};

struct loader {
    struct mgw__jin in;
    char name[512]; /* "<file>: line N" */
    struct mgw_replay *r;
    struct rec_conn *conns;
    unsigned n_conns, cap_conns;
};

static void fields_free(struct fields *f)
{
    for (unsigned i = 0; i < f->n; i++)
        free(f->v[i]);
    free(f->v);
    f->v = NULL;
    f->n = 0;
}

void mgw_replay_free(struct mgw_replay *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->n; i++) {
        struct request *q = &r->req[i];

        fields_free(&q->f);
        for (unsigned k = 0; k < q->n_answers; k++)
            fields_free(&q->answers[k].f);
        free(q->answers);
    }
    free(r->req);
    free(r);
}

void mgw_replay_rewind(struct mgw_replay *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->n; i++)
        r->req[i].hits = 0;
}

unsigned mgw_replay_count(const struct mgw_replay *r)
{
    return r ? r->n : 0;
}

/* --------------------------------------------------------------------------------------------
 * Loading
 */
static struct rec_conn *conn_get(struct loader *ld, uint64_t conn)
{
    for (unsigned i = 0; i < ld->n_conns; i++)
        if (ld->conns[i].conn == conn)
            return &ld->conns[i];
    if (ld->n_conns == ld->cap_conns) {
        unsigned cap = ld->cap_conns ? ld->cap_conns * 2 : 8;
        struct rec_conn *p = realloc(ld->conns, cap * sizeof *p);

        if (!p)
            return NULL;
        ld->conns = p;
        ld->cap_conns = cap;
    }
    ld->conns[ld->n_conns] = (struct rec_conn){ conn, IBW_DEFAULT_VERSION, false, -1 };
    return &ld->conns[ld->n_conns++];
}

/* The "fields" array as heap strings. */
static int read_fields(struct loader *ld, const cJSON *arr, struct fields *out)
{
    const cJSON *it;
    unsigned n = 0, i = 0;

    if (mgw__jin_array(&ld->in, arr, "$.fields", MAX_FIELDS, "fields", &n) < 0)
        return -1;
    if (n == 0) {
        mgw__jin_fail(&ld->in, "$.fields", "a frame has at least one field");
        return -1;
    }
    out->v = calloc(n, sizeof *out->v);
    if (!out->v) {
        mgw__jin_fail(&ld->in, NULL, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(it, arr)
    {
        char path[64];

        snprintf(path, sizeof path, "$.fields[%u]", i);
        if (!cJSON_IsString(it)) {
            mgw__jin_fail(&ld->in, path, "expected a string");
            return -1;
        }
        out->v[i] = strdup(it->valuestring);
        if (!out->v[i]) {
            mgw__jin_fail(&ld->in, NULL, "out of memory");
            return -1;
        }
        out->n = ++i;
    }
    return 0;
}

static int add_request(struct loader *ld, struct rec_conn *rc, int msg_id, struct fields *f)
{
    struct mgw_replay *r = ld->r;
    struct request *q;
    int idx = ibw_out_req_id_index(msg_id, rc->version);

    if (r->n == r->cap) {
        unsigned cap = r->cap ? r->cap * 2 : 64;
        struct request *p = realloc(r->req, cap * sizeof *p);

        if (!p) {
            mgw__jin_fail(&ld->in, NULL, "out of memory");
            return -1;
        }
        r->req = p;
        r->cap = cap;
    }
    q = &r->req[r->n];
    memset(q, 0, sizeof *q);
    q->conn = rc->conn;
    q->msg_id = msg_id;
    q->id_index = idx >= 0 && (unsigned)idx < f->n ? idx : -1;
    q->f = *f;
    memset(f, 0, sizeof *f);
    rc->last = (int)r->n++;
    return 0;
}

/* The request an answer belongs to: the latest one of its connection whose request id the
 * answer carries at idx, else the connection's latest request. *matched says which. */
static struct request *answer_owner(struct loader *ld, const struct rec_conn *rc,
                                    const struct fields *f, int idx, bool *matched)
{
    struct mgw_replay *r = ld->r;
    unsigned looked = 0;

    *matched = false;
    if (idx >= 0 && (unsigned)idx < f->n) {
        for (int i = rc->last; i >= 0 && looked < MAX_BACKTRACK; i--) {
            struct request *q = &r->req[i];

            if (q->conn != rc->conn)
                continue;
            looked++;
            if (q->id_index >= 0 && strcmp(q->f.v[q->id_index], f->v[idx]) == 0) {
                *matched = true;
                return q;
            }
        }
    }
    return &r->req[rc->last];
}

static int add_answer(struct loader *ld, const struct rec_conn *rc, int msg_id, struct fields *f)
{
    int idx = ibw_in_req_id_index(msg_id, rc->version);
    bool matched;
    struct request *q = answer_owner(ld, rc, f, idx, &matched);

    if (q->n_answers == q->cap_answers) {
        unsigned cap = q->cap_answers ? q->cap_answers * 2 : 4;
        struct answer *p = realloc(q->answers, cap * sizeof *p);

        if (!p) {
            mgw__jin_fail(&ld->in, NULL, "out of memory");
            return -1;
        }
        q->answers = p;
        q->cap_answers = cap;
    }
    q->answers[q->n_answers].f = *f;
    q->answers[q->n_answers].id_index = matched ? idx : -1;
    q->n_answers++;
    memset(f, 0, sizeof *f);
    return 0;
}

static const char *const line_keys[] = {
    "t_ms", "conn", "dir", "msg", "name", "fields", "min", "max", "options", NULL,
};

static int load_line(struct loader *ld, const cJSON *doc)
{
    const cJSON *msg, *name, *dir;
    struct fields f = { 0 };
    struct rec_conn *rc;
    int64_t conn = 0, t_ms = 0, msg_id = -1;
    bool out;
    int rc_ = -1;

    if (mgw__jin_object(&ld->in, doc, "$") < 0 ||
        mgw__jin_check_keys(&ld->in, doc, "$", line_keys) < 0)
        return -1;
    if (mgw__jin_int(&ld->in, cJSON_GetObjectItemCaseSensitive(doc, "conn"), "$.conn", 0,
                     (int64_t)1 << 53, &conn) < 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(doc, "t_ms") &&
        mgw__jin_int(&ld->in, cJSON_GetObjectItemCaseSensitive(doc, "t_ms"), "$.t_ms", 0,
                     (int64_t)1 << 53, &t_ms) < 0)
        return -1;
    dir = cJSON_GetObjectItemCaseSensitive(doc, "dir");
    if (!cJSON_IsString(dir) ||
        (strcmp(dir->valuestring, "in") != 0 && strcmp(dir->valuestring, "out") != 0)) {
        mgw__jin_fail(&ld->in, "$.dir", "expected \"in\" or \"out\"");
        return -1;
    }
    out = dir->valuestring[0] == 'o';
    msg = cJSON_GetObjectItemCaseSensitive(doc, "msg");
    name = cJSON_GetObjectItemCaseSensitive(doc, "name");
    if (msg && !cJSON_IsNull(msg) &&
        mgw__jin_int(&ld->in, msg, "$.msg", 0, 2147483647, &msg_id) < 0)
        return -1;
    if (name && !cJSON_IsNull(name) && !cJSON_IsString(name)) {
        mgw__jin_fail(&ld->in, "$.name", "expected a string or null");
        return -1;
    }
    if (read_fields(ld, cJSON_GetObjectItemCaseSensitive(doc, "fields"), &f) < 0)
        goto done;
    rc = conn_get(ld, (uint64_t)conn);
    if (!rc) {
        mgw__jin_fail(&ld->in, NULL, "out of memory");
        goto done;
    }
    if (msg_id < 0) { /* the handshake lines */
        if (out && cJSON_IsString(name) && strcmp(name->valuestring, "serverVersion") == 0) {
            int64_t v;

            if (ibw_parse_i64(f.v[0], strlen(f.v[0]), 1, 1000000, &v) < 0) {
                mgw__jin_fail(&ld->in, "$.fields[0]", "expected the server version");
                goto done;
            }
            rc->version = (int)v;
        }
        rc_ = 0;
        goto done;
    }
    if (!out) {
        if (!rc->started) /* before START_API nothing is a request; START_API is not one */
            rc->started = msg_id == IBW_OUT_START_API;
        else if (add_request(ld, rc, (int)msg_id, &f) < 0)
            goto done;
        rc_ = 0;
        goto done;
    }
    /* A gateway frame before the connection's first request (the start-up burst) answers
     * nothing. */
    rc_ = rc->started && rc->last >= 0 ? add_answer(ld, rc, (int)msg_id, &f) : 0;
done:
    fields_free(&f);
    return rc_;
}

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

struct mgw_replay *mgw_replay_parse(const char *text, size_t len, const char *name,
                                    struct mgw_err *err)
{
    struct loader ld = { .in = { name, err } };
    const char *p = text, *end = text + len;
    unsigned line = 0;

    err->msg[0] = '\0';
    ld.r = calloc(1, sizeof *ld.r);
    if (!ld.r) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", name ? name : "replay");
        return NULL;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        cJSON *doc;
        int rc;

        line++;
        if (!blank(p, n)) {
            snprintf(ld.name, sizeof ld.name, "%s: line %u", name ? name : "replay", line);
            ld.in.name = ld.name;
            doc = mgw__jin_parse(&ld.in, p, n, 0);
            rc = doc ? load_line(&ld, doc) : -1;
            cJSON_Delete(doc);
            if (rc < 0) {
                free(ld.conns);
                mgw_replay_free(ld.r);
                return NULL;
            }
        }
        p += n + (nl ? 1 : 0);
    }
    free(ld.conns);
    return ld.r;
}

struct mgw_replay *mgw_replay_load(const char *path, struct mgw_err *err)
{
    struct mgw__jin in = { path, err };
    struct mgw_replay *r;
    size_t len;
    char *text;

    err->msg[0] = '\0';
    text = mgw__jin_read_file(&in, path, MAX_FILE, &len);
    if (!text)
        return NULL;
    r = mgw_replay_parse(text, len, path, err);
    free(text);
    return r;
}

/* --------------------------------------------------------------------------------------------
 * Serving
 */
/* Same message, same fields, except the one at skip (the request id). */
static bool same_request(const struct request *q, int msg_id, const uint8_t *payload, size_t len,
                         int skip)
{
    const char *p = (const char *)payload, *end = p + len;
    unsigned i = 0;

    if (q->msg_id != msg_id)
        return false;
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

        if (i >= q->f.n)
            return false;
        if ((int)i != skip && (strlen(q->f.v[i]) != n || memcmp(q->f.v[i], p, n) != 0))
            return false;
        i++;
        p += n + (nul ? 1 : 0);
    }
    return i == q->f.n;
}

/* Field idx of the payload into out[cap], NUL-terminated; false if absent or too long. */
static bool payload_field(const uint8_t *payload, size_t len, int idx, char *out, size_t cap)
{
    const char *p = (const char *)payload, *end = p + len;

    for (int i = 0; p < end; i++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

        if (i == idx) {
            if (n >= cap)
                return false;
            memcpy(out, p, n);
            out[n] = '\0';
            return true;
        }
        p += n + (nul ? 1 : 0);
    }
    return false;
}

int mgw_replay_answer(struct mgw_replay *r, int sv, const uint8_t *payload, size_t len,
                      struct ibw_writer *w)
{
    struct request *first = NULL, *pick = NULL;
    struct ibw_reader rd;
    char live_id[ID_CAP];
    unsigned count = 0, k;
    int msg_id, live_idx;
    bool has_id;

    ibw_reader_init(&rd, payload, len);
    if (!r || ibw_read_msg_id(&rd, &msg_id) < 0)
        return -ENOENT;
    live_idx = ibw_out_req_id_index(msg_id, sv);
    has_id = live_idx >= 0 && payload_field(payload, len, live_idx, live_id, sizeof live_id);
    for (unsigned i = 0; i < r->n; i++) {
        struct request *q = &r->req[i];

        if (same_request(q, msg_id, payload, len, has_id ? live_idx : q->id_index)) {
            first = first ? first : q;
            count++;
        }
    }
    if (!first)
        return -ENOENT;
    k = first->hits < count ? first->hits : count - 1; /* past the last: the last again */
    first->hits++;
    for (unsigned i = 0, seen = 0; i < r->n && !pick; i++) {
        struct request *q = &r->req[i];

        if (same_request(q, msg_id, payload, len, has_id ? live_idx : q->id_index) && seen++ == k)
            pick = q;
    }
    for (unsigned a = 0; a < pick->n_answers; a++) {
        const struct answer *ans = &pick->answers[a];

        ibw_writer_begin(w);
        for (unsigned i = 0; i < ans->f.n; i++)
            ibw_put_str(w, has_id && pick->id_index >= 0 && (int)i == ans->id_index ? live_id
                                                                                    : ans->f.v[i]);
        if (ibw_writer_end(w) < 0)
            return w->err;
    }
    return (int)pick->n_answers;
}
