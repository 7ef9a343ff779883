/* Generators: seeded random fault schedules (docs/scenario-format.md, "generate"), the scenario
 * each one runs as, and the shrinker that cuts a failing one down to a minimal one.
 *
 * A schedule is an array of steps in the scenario format, so what runs, what is shrunk and what
 * is written out for a replay are the same text, loaded by the same loader. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

/* Seeds travel as JSON numbers, which cJSON prints with 15 significant digits. */
#define SEED_MASK ((UINT64_C(1) << 49) - 1)
#define NAME_KEEP 52 /* "<name>-<index>" stays within 64 characters */

static const char *const fault_names[] = {
#define XX(name, str) str,
    HARNESS_FAULT_MAP(XX)
#undef XX
};

static const char *const op_names[] = {
#define XX(name, str) str,
    HARNESS_OP_MAP(XX)
#undef XX
};

const char *harness_fault_name(enum harness_fault f)
{
    return (unsigned)f < HARNESS_FAULT_COUNT ? fault_names[f] : "?";
}

const char *harness_op_name(enum harness_op o)
{
    return (unsigned)o < HARNESS_OP_COUNT ? op_names[o] : "?";
}

/* ---- splitmix64 ------------------------------------------------------------------------------ */

uint64_t harness__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The generator of schedule index under seed: both mixed, so neighbouring seeds and indexes
 * give unrelated streams. */
static uint64_t schedule_state(uint64_t seed, unsigned index)
{
    uint64_t a = seed, b = (uint64_t)index;

    return harness__splitmix64(&a) ^ (harness__splitmix64(&b) << 1);
}

struct gen {
    const struct harness_generate *g;
    uint64_t rng;
    unsigned async_used; /* acquires started by asynchronous steps so far */
    bool after_idle;     /* the step after an idle wait is an acquire: it probes */
    bool oom;
};

/* Uniform in [lo, hi]. */
static uint64_t draw(struct gen *gn, uint64_t lo, uint64_t hi)
{
    uint64_t r = harness__splitmix64(&gn->rng);

    return hi <= lo ? lo : lo + r % (hi - lo + 1);
}

static int pick(struct gen *gn, const unsigned *weights, unsigned n)
{
    uint64_t total = 0, r;

    for (unsigned i = 0; i < n; i++)
        total += weights[i];
    if (total == 0)
        return -1;
    r = draw(gn, 0, total - 1);
    for (unsigned i = 0; i < n; i++) {
        if (r < weights[i])
            return (int)i;
        r -= weights[i];
    }
    return -1;
}

/* ---- building steps -------------------------------------------------------------------------- */

static void num(struct gen *gn, cJSON *o, const char *key, uint64_t v)
{
    if (cJSON_AddNumberToObject(o, key, (double)v) == NULL)
        gn->oom = true;
}

static void str(struct gen *gn, cJSON *o, const char *key, const char *v)
{
    if (cJSON_AddStringToObject(o, key, v) == NULL)
        gn->oom = true;
}

static cJSON *obj(struct gen *gn, cJSON *parent, const char *key)
{
    cJSON *o = cJSON_AddObjectToObject(parent, key);

    if (o == NULL)
        gn->oom = true;
    return o;
}

/* The outcomes an operation may end with under faults: the documented ones. "error" (a code
 * the core does not document), "canceled" for an acquire (the pool ends them with "shutdown")
 * and "shutdown" (the pool is never closed here) are not among them. */
static const char *const acquire_ok[] = {
    "ok",       "timeout", "breaker_open",      "ids_exhausted",
    "refused",  "reset",   "client_id_refused", "not_ready",
    "protocol", "closed",  "lock_timeout",      NULL
};
static const char *const request_ok[] = { "ok",    "timeout",  "poisoned", "closed",
                                          "reset", "canceled", "protocol", NULL };

static void expect_statuses(struct gen *gn, cJSON *step, const char *const *allowed)
{
    cJSON *e = obj(gn, step, "expect"), *a;

    if (e == NULL)
        return;
    if ((a = cJSON_AddArrayToObject(e, "status")) == NULL) {
        gn->oom = true;
        return;
    }
    for (; *allowed != NULL; allowed++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateString(*allowed)))
            gn->oom = true;
}

static cJSON *fault_step(struct gen *gn, enum harness_fault f)
{
    const struct harness_generate *g = gn->g;
    cJSON *st = cJSON_CreateObject(), *body, *match, *action;
    char note[64];
    const char *simple = NULL;

    if (st == NULL) {
        gn->oom = true;
        return NULL;
    }
    snprintf(note, sizeof note, "fault %s", harness_fault_name(f));
    switch (f) {
    case HARNESS_FAULT_DROP_ALL:
        simple = "drop_all";
        break;
    case HARNESS_FAULT_RESET_ALL:
        simple = "reset_all";
        break;
    case HARNESS_FAULT_REFUSE:
        simple = "refuse";
        break;
    case HARNESS_FAULT_BLACKHOLE:
        simple = "blackhole";
        break;
    case HARNESS_FAULT_ACCEPT:
        simple = "accept";
        break;
    case HARNESS_FAULT_CLEAR_RULES:
        simple = "clear_rules";
        break;
    case HARNESS_FAULT_RESTART:
        str(gn, st, "gateway", "restart");
        num(gn, st, "down_ms", draw(gn, 10, g->max_down_ms));
        str(gn, st, "how", draw(gn, 0, 1) ? "reset" : "close");
        str(gn, st, "note", note);
        return st;
    default:
        break;
    }
    if (simple != NULL) {
        str(gn, st, "gateway", simple);
        str(gn, st, "note", note);
        if (f == HARNESS_FAULT_ACCEPT) /* 409 when the port cannot be bound again */
            expect_statuses(gn, st, (const char *const[]){ "ok", "http_error", NULL });
        return st;
    }
    /* A rule, appended to the gateway's rules (POST /v1/rules), firing 1..3 times. */
    str(gn, st, "gateway", "admin");
    str(gn, st, "method", "POST");
    str(gn, st, "path", "/v1/rules");
    str(gn, st, "note", note);
    if ((body = obj(gn, st, "body")) == NULL)
        return st;
    snprintf(note, sizeof note, "gen-%s", harness_fault_name(f));
    str(gn, body, "name", note);
    match = obj(gn, body, "match");
    action = obj(gn, body, "action");
    if (match == NULL || action == NULL)
        return st;
    switch (f) {
    case HARNESS_FAULT_SILENT_ACCEPT:
        str(gn, match, "phase", "accept");
        str(gn, action, "type", "silent");
        break;
    case HARNESS_FAULT_SILENT_HANDSHAKE:
        str(gn, match, "phase", "version_sent");
        str(gn, action, "type", "silent");
        break;
    case HARNESS_FAULT_SILENT_READY:
        str(gn, match, "phase", "ready");
        str(gn, action, "type", "silent");
        num(gn, action, "after_ms", draw(gn, 0, g->max_after_ms));
        break;
    case HARNESS_FAULT_CLOSE_READY:
        str(gn, match, "phase", "ready");
        str(gn, action, "type", "close");
        num(gn, action, "after_ms", draw(gn, 0, g->max_after_ms));
        break;
    case HARNESS_FAULT_RESET_READY:
        str(gn, match, "phase", "ready");
        str(gn, action, "type", "reset");
        num(gn, action, "after_ms", draw(gn, 0, g->max_after_ms));
        break;
    case HARNESS_FAULT_HALF_CLOSE_READY:
        str(gn, match, "phase", "ready");
        str(gn, action, "type", "half_close");
        num(gn, action, "after_ms", draw(gn, 0, g->max_after_ms));
        break;
    case HARNESS_FAULT_REFUSE_CLIENT_ID:
        str(gn, match, "phase", "start_api");
        str(gn, action, "type", "refuse_client_id");
        break;
    case HARNESS_FAULT_HALF_READY:
        str(gn, match, "phase", "start_api");
        str(gn, action, "type", "half_ready");
        break;
    case HARNESS_FAULT_DELAY_ACCEPT:
        str(gn, match, "phase", "accept");
        str(gn, action, "type", "delay");
        num(gn, action, "ms", draw(gn, 1, g->max_after_ms > 0 ? g->max_after_ms : 1));
        break;
    case HARNESS_FAULT_IGNORE_REQUEST:
        str(gn, match, "phase", "request");
        str(gn, match, "msg", "reqCurrentTime");
        str(gn, action, "type", "ignore");
        break;
    case HARNESS_FAULT_GARBAGE_READY:
        str(gn, match, "phase", "ready");
        str(gn, action, "type", "garbage");
        num(gn, action, "bytes", draw(gn, 1, 32));
        num(gn, action, "after_ms", draw(gn, 0, g->max_after_ms));
        break;
    case HARNESS_FAULT_ERROR_FLAP: {
        cJSON *then = cJSON_AddArrayToObject(action, "then"), *t = cJSON_CreateObject();

        str(gn, match, "phase", "ready");
        str(gn, action, "type", "error");
        num(gn, action, "code", 1100);
        num(gn, action, "after_ms", draw(gn, 0, g->max_after_ms));
        if (then == NULL || t == NULL || !cJSON_AddItemToArray(then, t)) {
            cJSON_Delete(t);
            gn->oom = true;
            break;
        }
        num(gn, t, "after_ms", draw(gn, 0, g->max_after_ms));
        num(gn, t, "code", 1102);
        break;
    }
    default:
        break;
    }
    num(gn, body, "times", draw(gn, 1, 3));
    return st;
}

static cJSON *op_step(struct gen *gn, enum harness_op op)
{
    const struct harness_generate *g = gn->g;
    cJSON *st = cJSON_CreateObject();
    unsigned room = g->concurrency > gn->async_used ? g->concurrency - gn->async_used : 1;
    uint64_t count;
    char note[48];

    if (st == NULL) {
        gn->oom = true;
        return NULL;
    }
    /* An asynchronous acquire needs room left for a synchronous one beside it. */
    if (op == HARNESS_OP_ACQUIRE_ASYNC && room < 2)
        op = HARNESS_OP_ACQUIRE;
    snprintf(note, sizeof note, "op %s", harness_op_name(op));
    switch (op) {
    case HARNESS_OP_ACQUIRE:
    case HARNESS_OP_ACQUIRE_ASYNC:
    case HARNESS_OP_KEEP:
        str(gn, st, "core", "acquire");
        str(gn, st, "note", note);
        if (op == HARNESS_OP_ACQUIRE_ASYNC)
            count = draw(gn, 1, room - 1);
        else if (op == HARNESS_OP_KEEP)
            count = draw(gn, 1, room < 2 ? room : 2);
        else
            count = draw(gn, 1, room);
        num(gn, st, "count", count);
        num(gn, st, "concurrency", op == HARNESS_OP_ACQUIRE ? draw(gn, 1, count) : count);
        num(gn, st, "deadline_ms", draw(gn, g->deadline_ms / 2 + 1, g->deadline_ms));
        if (op == HARNESS_OP_KEEP) {
            if (cJSON_AddTrueToObject(st, "keep") == NULL)
                gn->oom = true;
        } else {
            num(gn, st, "hold_ms", draw(gn, 0, 1) ? 0 : draw(gn, 1, g->max_wait_ms));
        }
        if (op == HARNESS_OP_ACQUIRE_ASYNC) {
            gn->async_used += (unsigned)count;
            if (cJSON_AddTrueToObject(st, "async") == NULL)
                gn->oom = true;
        }
        expect_statuses(gn, st, acquire_ok);
        break;
    case HARNESS_OP_RELEASE:
        str(gn, st, "core", "release");
        str(gn, st, "note", note);
        break;
    case HARNESS_OP_REQUEST:
        str(gn, st, "core", "request");
        str(gn, st, "note", note);
        num(gn, st, "conn", 0);
        if (cJSON_AddTrueToObject(st, "if_held") == NULL)
            gn->oom = true;
        num(gn, st, "deadline_ms", draw(gn, g->deadline_ms / 2 + 1, g->deadline_ms));
        expect_statuses(gn, st, request_ok);
        break;
    case HARNESS_OP_WAIT:
        num(gn, st, "wait_ms", draw(gn, 1, g->max_wait_ms));
        str(gn, st, "note", note);
        break;
    case HARNESS_OP_IDLE:
        num(gn, st, "wait_ms", g->idle_ms);
        str(gn, st, "note", note);
        break;
    case HARNESS_OP_STATUS:
        str(gn, st, "core", "status");
        str(gn, st, "note", note);
        break;
    case HARNESS_OP_CLOSE_ZOMBIES:
        str(gn, st, "core", "close_zombies");
        str(gn, st, "note", note);
        break;
    default:
        break;
    }
    return st;
}

void harness_schedule_clear(struct harness_schedule *s)
{
    cJSON_Delete(s->steps);
    memset(s, 0, sizeof *s);
}

int harness_schedule_make(const struct harness_generate *g, uint64_t seed, unsigned index,
                          struct harness_schedule *out)
{
    struct gen gn = { g, schedule_state(seed, index), 0, false, false };
    unsigned n;

    memset(out, 0, sizeof *out);
    out->index = index;
    out->seed = harness__splitmix64(&gn.rng) & SEED_MASK;
    if ((out->steps = cJSON_CreateArray()) == NULL)
        return UV_ENOMEM;
    n = (unsigned)draw(&gn, (g->steps + 1) / 2, g->steps);
    for (unsigned i = 0; i < n && !gn.oom; i++) {
        bool fault = draw(&gn, 0, 99) < g->fault_percent;
        int k = fault ? pick(&gn, g->fault_weight, HARNESS_FAULT_COUNT) : -1;
        cJSON *st;

        if (gn.after_idle) {
            gn.after_idle = false;
            st = op_step(&gn, HARNESS_OP_ACQUIRE);
        } else if (k >= 0) {
            st = fault_step(&gn, (enum harness_fault)k);
        } else {
            enum harness_op op = (enum harness_op)pick(&gn, g->op_weight, HARNESS_OP_COUNT);

            /* An idle wait matters with a connection to go idle: one is acquired (and given
             * back) first, and the step after the wait acquires again, through the probe. */
            if (op == HARNESS_OP_IDLE) {
                cJSON *first = op_step(&gn, HARNESS_OP_ACQUIRE);

                if (first == NULL || !cJSON_AddItemToArray(out->steps, first)) {
                    cJSON_Delete(first);
                    gn.oom = true;
                    break;
                }
                gn.after_idle = true;
            }
            st = op_step(&gn, op);
        }
        if (st == NULL || !cJSON_AddItemToArray(out->steps, st)) {
            cJSON_Delete(st);
            gn.oom = true;
        }
    }
    if (gn.oom) {
        harness_schedule_clear(out);
        return UV_ENOMEM;
    }
    return 0;
}

int harness_schedule_copy(const struct harness_schedule *in, struct harness_schedule *out)
{
    *out = *in;
    out->steps = cJSON_Duplicate(in->steps, true);
    return out->steps != NULL ? 0 : UV_ENOMEM;
}

unsigned harness_schedule_len(const struct harness_schedule *s)
{
    return s->steps != NULL ? (unsigned)cJSON_GetArraySize(s->steps) : 0;
}

/* ---- the scenario a schedule runs as --------------------------------------------------------- */

static bool add_parsed(cJSON *doc, const char *key, const char *json)
{
    cJSON *v;

    if (json == NULL)
        return true;
    if ((v = cJSON_Parse(json)) == NULL)
        return false;
    if (!cJSON_AddItemToObject(doc, key, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

static bool add_step(cJSON *steps, const char *json)
{
    cJSON *v = cJSON_Parse(json);

    if (v == NULL || !cJSON_AddItemToArray(steps, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

/* The longest restart down time among the steps (0: none). */
static uint64_t longest_restart(const cJSON *steps)
{
    const cJSON *st;
    uint64_t most = 0;

    cJSON_ArrayForEach(st, steps)
    {
        const cJSON *gw = cJSON_GetObjectItemCaseSensitive(st, "gateway");
        const cJSON *down = cJSON_GetObjectItemCaseSensitive(st, "down_ms");

        if (cJSON_IsString(gw) && strcmp(gw->valuestring, "restart") == 0) {
            uint64_t d = cJSON_IsNumber(down) ? (uint64_t)down->valuedouble : 5000;

            if (d > most)
                most = d;
        }
    }
    return most;
}

char *harness_schedule_to_json(const struct harness_scenario *sc, const struct harness_schedule *s,
                               bool pretty)
{
    const struct harness_generate *g = sc->generate;
    cJSON *doc = cJSON_CreateObject(), *levels, *steps;
    char name[80], text[512], *out = NULL;
    uint64_t down;
    bool ok;

    if (doc == NULL || g == NULL) {
        cJSON_Delete(doc);
        return NULL;
    }
    snprintf(name, sizeof name, "%.*s-%u", NAME_KEEP, sc->name, s->index);
    snprintf(text, sizeof text,
             "Schedule %u of %s (seed %llu): generated faults and operations, then the faults "
             "are cleared and the pool must recover within %llu ms.",
             s->index, sc->name, (unsigned long long)s->seed, (unsigned long long)g->recovery_ms);
    ok = cJSON_AddStringToObject(doc, "name", name) != NULL &&
         (levels = cJSON_AddArrayToObject(doc, "levels")) != NULL &&
         cJSON_AddItemToArray(levels, cJSON_CreateString("exhaustive")) &&
         cJSON_AddStringToObject(doc, "description", text) != NULL &&
         cJSON_AddNumberToObject(doc, "seed", (double)s->seed) != NULL &&
         add_parsed(doc, "core", sc->core_json) && add_parsed(doc, "gateway", sc->gateway_json);
    if (ok && sc->gateway_process)
        ok = cJSON_AddTrueToObject(doc, "gateway_process") != NULL;
    if (ok && (steps = cJSON_Duplicate(s->steps, true)) != NULL &&
        !cJSON_AddItemToObject(doc, "steps", steps)) {
        cJSON_Delete(steps);
        ok = false;
    } else if (ok && steps == NULL) {
        ok = false;
    }
    /* The heal tail: give back what is held, let a restart finish, clear every fault, then the
     * pool must hand out a connection again (the Jepsen "final read": recovery is a property). */
    ok = ok && add_step(steps, "{\"core\":\"release\",\"note\":\"heal: give back what is held\"}");
    if (ok && (down = longest_restart(s->steps)) > 0) {
        snprintf(text, sizeof text,
                 "{\"wait_ms\":%llu,\"note\":\"heal: let the last restart finish\"}",
                 (unsigned long long)(down + 20));
        ok = add_step(steps, text);
    }
    ok = ok && add_step(steps, "{\"gateway\":\"clear_rules\",\"note\":\"heal\"}") &&
         add_step(steps, "{\"gateway\":\"accept\",\"note\":\"heal\","
                         "\"expect\":{\"status\":[\"ok\",\"http_error\"]}}") &&
         add_step(steps, "{\"gateway\":\"drop_all\",\"note\":\"heal\"}");
    if (ok) {
        snprintf(text, sizeof text,
                 "{\"core\":\"recover\",\"deadline_ms\":%llu,"
                 "\"note\":\"the gateway is healthy again: the pool recovers\"}",
                 (unsigned long long)g->recovery_ms);
        ok = add_step(steps, text);
    }
    ok = ok && add_parsed(doc, "expect", g->expect);
    if (ok)
        out = pretty ? cJSON_Print(doc) : cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return out;
}

/* ---- describing ------------------------------------------------------------------------------ */

static const char *const described[] = { "count", "concurrency", "deadline_ms", "hold_ms",  "keep",
                                         "async", "wait_ms",     "times",       "after_ms", "ms",
                                         "bytes", "down_ms",     "how",         NULL };

static void describe_into(const cJSON *o, char *buf, size_t cap)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, o)
    {
        size_t len = strlen(buf);

        if (it->string == NULL)
            continue;
        if (cJSON_IsObject(it)) {
            describe_into(it, buf, cap);
            continue;
        }
        for (unsigned i = 0; described[i] != NULL; i++) {
            if (strcmp(described[i], it->string) != 0)
                continue;
            if (cJSON_IsNumber(it))
                snprintf(buf + len, cap - len, " %s=%.0f", it->string, it->valuedouble);
            else if (cJSON_IsBool(it))
                snprintf(buf + len, cap - len, " %s=%s", it->string,
                         cJSON_IsTrue(it) ? "true" : "false");
            else if (cJSON_IsString(it))
                snprintf(buf + len, cap - len, " %s=%s", it->string, it->valuestring);
        }
    }
}

char *harness_schedule_describe(const struct harness_schedule *s)
{
    const cJSON *st;
    size_t cap = 64 + (size_t)harness_schedule_len(s) * 192, len = 0;
    char *out = malloc(cap), line[192];
    unsigned i = 0;

    if (out == NULL)
        return NULL;
    out[0] = '\0';
    cJSON_ArrayForEach(st, s->steps)
    {
        const cJSON *note = cJSON_GetObjectItemCaseSensitive(st, "note");

        snprintf(line, sizeof line, "%s", cJSON_IsString(note) ? note->valuestring : "step");
        describe_into(st, line, sizeof line);
        len += (size_t)snprintf(out + len, cap - len, "%s%u: %s", i ? "; " : "", i, line);
        i++;
        if (len >= cap)
            break;
    }
    if (i == 0)
        snprintf(out, cap, "(no steps: the heal tail alone)");
    return out;
}

/* ---- shrinking ------------------------------------------------------------------------------- */

struct shrink {
    harness_shrink_fn fails;
    void *data;
    unsigned max_runs;
    uint64_t deadline_ns;
    struct harness_shrink_stats *st;
};

static bool budget_left(struct shrink *sh)
{
    if (sh->st->runs >= sh->max_runs || uv_hrtime() >= sh->deadline_ns) {
        sh->st->out_of_budget = true;
        return false;
    }
    return true;
}

static bool try_candidate(struct shrink *sh, const struct harness_schedule *cand)
{
    sh->st->runs++;
    return sh->fails(cand, sh->data);
}

/* best without steps [from, from + n): kept (true) when it still fails. */
static int try_remove(struct shrink *sh, struct harness_schedule *best, unsigned from, unsigned n,
                      bool *kept)
{
    struct harness_schedule cand;

    *kept = false;
    if (harness_schedule_copy(best, &cand) < 0)
        return UV_ENOMEM;
    for (unsigned i = 0; i < n; i++)
        cJSON_DeleteItemFromArray(cand.steps, (int)from);
    if (try_candidate(sh, &cand)) {
        harness_schedule_clear(best);
        *best = cand;
        *kept = true;
        return 0;
    }
    harness_schedule_clear(&cand);
    return 0;
}

/* Pass 1: drop chunks of steps, halves first, down to single steps. */
static int drop_steps(struct shrink *sh, struct harness_schedule *best, bool *changed)
{
    unsigned len = harness_schedule_len(best), chunk = len > 1 ? len / 2 : 1;

    for (; chunk >= 1 && len > 0; chunk /= 2) {
        unsigned at = 0;

        while (at < harness_schedule_len(best)) {
            unsigned n =
                harness_schedule_len(best) - at < chunk ? harness_schedule_len(best) - at : chunk;
            bool kept;

            if (!budget_left(sh))
                return 0;
            if (try_remove(sh, best, at, n, &kept) < 0)
                return UV_ENOMEM;
            if (kept)
                *changed = true;
            else
                at += n;
        }
        if (chunk == 1)
            break;
    }
    return 0;
}

/* Values worth simplifying and the simplest value of each. */
static const struct simple {
    const char *key;
    double least;
} simples[] = {
    { "count", 1 },    { "concurrency", 1 }, { "hold_ms", 0 }, { "wait_ms", 0 },  { "times", 1 },
    { "after_ms", 0 }, { "ms", 1 },          { "bytes", 1 },   { "down_ms", 10 },
};

/* The path of the k-th simplifiable value in step (depth-first); NULL when there is none. */
static cJSON *nth_site(cJSON *o, unsigned *k, double *least, bool *is_bool, cJSON **parent)
{
    cJSON *it;

    cJSON_ArrayForEach(it, o)
    {
        if (it->string == NULL)
            continue;
        if (cJSON_IsObject(it) && strcmp(it->string, "expect") != 0) {
            cJSON *found = nth_site(it, k, least, is_bool, parent);

            if (found != NULL)
                return found;
            continue;
        }
        if (cJSON_IsTrue(it) &&
            (strcmp(it->string, "async") == 0 || strcmp(it->string, "keep") == 0)) {
            if ((*k)-- == 0) {
                *is_bool = true;
                *parent = o;
                return it;
            }
            continue;
        }
        if (!cJSON_IsNumber(it))
            continue;
        for (unsigned i = 0; i < sizeof simples / sizeof simples[0]; i++) {
            if (strcmp(simples[i].key, it->string) != 0 || it->valuedouble <= simples[i].least)
                continue;
            if ((*k)-- == 0) {
                *least = simples[i].least;
                *is_bool = false;
                *parent = o;
                return it;
            }
        }
    }
    return NULL;
}

/* An operation's note names its kind; a simplified acquire (keep or async turned off) is a plain
 * one now. */
static void renote(cJSON *step)
{
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(step, "note");
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(step, "core");
    const char *name = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(step, "keep")) ? "op keep"
                       : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(step, "async"))
                           ? "op acquire_async"
                           : "op acquire";
    cJSON *fresh;

    if (!cJSON_IsString(note) || strncmp(note->valuestring, "op ", 3) != 0 ||
        !cJSON_IsString(core) || strcmp(core->valuestring, "acquire") != 0)
        return;
    if ((fresh = cJSON_CreateString(name)) != NULL &&
        !cJSON_ReplaceItemInObjectCaseSensitive(step, "note", fresh))
        cJSON_Delete(fresh);
}

/* Sets site k of step j in a copy of best to v (false for a boolean) and keeps it if it fails. */
static int try_value(struct shrink *sh, struct harness_schedule *best, unsigned j, unsigned k,
                     double v, bool *kept)
{
    struct harness_schedule cand;
    double least;
    bool is_bool;
    cJSON *site, *parent = NULL;

    *kept = false;
    if (harness_schedule_copy(best, &cand) < 0)
        return UV_ENOMEM;
    site = nth_site(cJSON_GetArrayItem(cand.steps, (int)j), &k, &least, &is_bool, &parent);
    if (site != NULL) {
        if (is_bool) /* "keep": false is the default: gone */
            cJSON_Delete(cJSON_DetachItemViaPointer(parent, site));
        else
            cJSON_SetNumberValue(site, v);
        renote(cJSON_GetArrayItem(cand.steps, (int)j));
        if (try_candidate(sh, &cand)) {
            harness_schedule_clear(best);
            *best = cand;
            *kept = true;
            return 0;
        }
    }
    harness_schedule_clear(&cand);
    return 0;
}

/* Pass 2: each value to its simplest, else halfway there while that still fails. */
static int simplify_values(struct shrink *sh, struct harness_schedule *best, bool *changed)
{
    for (unsigned j = 0; j < harness_schedule_len(best); j++) {
        for (unsigned k = 0;; k++) {
            unsigned kk = k;
            double least = 0, v;
            bool is_bool = false, kept;
            cJSON *parent = NULL;
            cJSON *site =
                nth_site(cJSON_GetArrayItem(best->steps, (int)j), &kk, &least, &is_bool, &parent);

            if (site == NULL)
                break;
            if (!budget_left(sh))
                return 0;
            v = is_bool ? 0 : site->valuedouble;
            if (try_value(sh, best, j, k, least, &kept) < 0)
                return UV_ENOMEM;
            if (kept) {
                *changed = true;
                k--; /* the site is gone (at its least): the next one has this number now */
                continue;
            }
            /* Halfway towards the least, while that still fails (values are integers). */
            while (!is_bool && v - least >= 2 && budget_left(sh)) {
                double mid = least + (double)(uint64_t)((v - least) / 2);

                if (try_value(sh, best, j, k, mid, &kept) < 0)
                    return UV_ENOMEM;
                if (!kept)
                    break;
                *changed = true;
                v = mid;
            }
        }
    }
    return 0;
}

int harness_shrink(struct harness_schedule *s, harness_shrink_fn fails, void *data,
                   unsigned max_runs, uint64_t max_ms, struct harness_shrink_stats *st)
{
    struct shrink sh = { fails, data, max_runs, uv_hrtime() + max_ms * 1000000u, st };
    bool changed = true;
    int rc = 0;

    memset(st, 0, sizeof *st);
    st->steps_before = harness_schedule_len(s);
    for (unsigned round = 0; changed && rc == 0 && round < 16; round++) {
        changed = false;
        if ((rc = drop_steps(&sh, s, &changed)) == 0)
            rc = simplify_values(&sh, s, &changed);
        if (st->out_of_budget)
            break;
    }
    st->steps_after = harness_schedule_len(s);
    return rc;
}
