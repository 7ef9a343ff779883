/* The fault engine: ordered rules evaluated at protocol events, one seeded generator. */
#include "fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

struct mgw_faults {
    struct mgw_rule **rules;
    unsigned n, cap;
    uint64_t next_id;
    uint64_t rng; /* splitmix64 state */
    char *state;
    unsigned watched; /* union of the armed rules' phase masks */
};

void mgw_action_clear(struct mgw_action *a)
{
    free(a->set_state);
    free(a->text);
    for (unsigned i = 0; i < a->n_then; i++)
        free(a->then[i].text);
    free(a->then);
    memset(a, 0, sizeof *a);
}

int mgw_action_copy(struct mgw_action *dst, const struct mgw_action *src)
{
    bool ok = true;

    *dst = *src;
    dst->set_state = mgw_strdup_opt(src->set_state, &ok);
    dst->text = mgw_strdup_opt(src->text, &ok);
    dst->then = NULL;
    dst->n_then = 0;
    if (ok && src->n_then > 0) {
        dst->then = calloc(src->n_then, sizeof *dst->then);
        ok = dst->then != NULL;
        for (unsigned i = 0; ok && i < src->n_then; i++) {
            dst->then[i] = src->then[i];
            dst->then[i].text = mgw_strdup_opt(src->then[i].text, &ok);
            dst->n_then = i + 1;
        }
    }
    if (!ok) {
        mgw_action_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

struct mgw_rule *mgw_rule_copy(const struct mgw_rule *r)
{
    struct mgw_rule *c = calloc(1, sizeof *c);
    bool ok = c != NULL;

    if (!ok)
        return NULL;
    *c = *r;
    c->name = mgw_strdup_opt(r->name, &ok);
    c->match.state = mgw_strdup_opt(r->match.state, &ok);
    memset(&c->action, 0, sizeof c->action);
    c->sequence = NULL;
    c->n_sequence = 0;
    if (ok && mgw_action_copy(&c->action, &r->action) < 0)
        ok = false;
    if (ok && r->n_sequence > 0) {
        c->sequence = calloc(r->n_sequence, sizeof *c->sequence);
        ok = c->sequence != NULL;
        for (unsigned i = 0; ok && i < r->n_sequence; i++) {
            ok = mgw_action_copy(&c->sequence[i], &r->sequence[i]) == 0;
            c->n_sequence = ok ? i + 1 : i;
        }
    }
    if (!ok) {
        mgw_rule_free(c);
        return NULL;
    }
    return c;
}

static const unsigned ALL_PHASES = (1u << MGW_EV_COUNT) - 1;

static unsigned phase_mask(const struct mgw_rule *r)
{
    return r->match.phases ? r->match.phases : ALL_PHASES;
}

/* Comparing state names once per state change, not once per rule per event, keeps armed
 * rules cheap on the hot path. */
static void restate(const struct mgw_faults *f, struct mgw_rule *r)
{
    r->in_state = !r->match.state || strcmp(r->match.state, f->state) == 0;
}

static void rewatch(struct mgw_faults *f)
{
    f->watched = 0;
    for (unsigned i = 0; i < f->n; i++) {
        f->watched |= phase_mask(f->rules[i]);
        restate(f, f->rules[i]);
    }
}

struct mgw_faults *mgw_faults_new(uint64_t seed)
{
    struct mgw_faults *f = calloc(1, sizeof *f);

    if (!f)
        return NULL;
    if (mgw_faults_reset(f, seed, "normal") < 0) {
        free(f);
        return NULL;
    }
    return f;
}

static void free_rules(struct mgw_faults *f)
{
    for (unsigned i = 0; i < f->n; i++)
        mgw_rule_free(f->rules[i]);
    f->n = 0;
    f->watched = 0;
}

void mgw_faults_free(struct mgw_faults *f)
{
    if (!f)
        return;
    free_rules(f);
    free(f->rules);
    free(f->state);
    free(f);
}

int mgw_faults_reset(struct mgw_faults *f, uint64_t seed, const char *state)
{
    if (mgw_faults_set_state(f, state ? state : "normal") < 0)
        return -ENOMEM;
    free_rules(f);
    f->next_id = 1;
    f->rng = seed;
    return 0;
}

static int reserve(struct mgw_faults *f, unsigned n)
{
    if (n <= f->cap)
        return 0;
    unsigned cap = f->cap ? f->cap : 8;
    while (cap < n)
        cap *= 2;
    struct mgw_rule **rules = realloc(f->rules, cap * sizeof *rules);
    if (!rules)
        return -ENOMEM;
    f->rules = rules;
    f->cap = cap;
    return 0;
}

int mgw_faults_add(struct mgw_faults *f, struct mgw_rule *rule)
{
    if (reserve(f, f->n + 1) < 0) {
        mgw_rule_free(rule);
        return -ENOMEM;
    }
    rule->id = f->next_id++;
    rule->hits = 0;
    restate(f, rule);
    f->rules[f->n++] = rule;
    f->watched |= phase_mask(rule);
    return 0;
}

int mgw_faults_replace(struct mgw_faults *f, struct mgw_rule **rules, unsigned n)
{
    if (reserve(f, n) < 0) {
        for (unsigned i = 0; i < n; i++)
            mgw_rule_free(rules[i]);
        return -ENOMEM;
    }
    free_rules(f);
    for (unsigned i = 0; i < n; i++) {
        rules[i]->id = f->next_id++;
        rules[i]->hits = 0;
        f->rules[i] = rules[i];
    }
    f->n = n;
    rewatch(f);
    return 0;
}

static int find(const struct mgw_faults *f, uint64_t id)
{
    for (unsigned i = 0; i < f->n; i++)
        if (f->rules[i]->id == id)
            return (int)i;
    return -1;
}

int mgw_faults_update(struct mgw_faults *f, uint64_t id, struct mgw_rule *rule)
{
    int i = find(f, id);

    if (i < 0) {
        mgw_rule_free(rule);
        return -ENOENT;
    }
    mgw_rule_free(f->rules[i]);
    rule->id = id;
    rule->hits = 0;
    f->rules[i] = rule;
    rewatch(f);
    return 0;
}

int mgw_faults_remove(struct mgw_faults *f, uint64_t id)
{
    int i = find(f, id);

    if (i < 0)
        return -ENOENT;
    mgw_rule_free(f->rules[i]);
    memmove(&f->rules[i], &f->rules[i + 1], (f->n - (unsigned)i - 1) * sizeof *f->rules);
    f->n--;
    rewatch(f);
    return 0;
}

const struct mgw_rule *mgw_faults_get(const struct mgw_faults *f, uint64_t id)
{
    int i = find(f, id);

    return i < 0 ? NULL : f->rules[i];
}

unsigned mgw_faults_count(const struct mgw_faults *f)
{
    return f->n;
}

const struct mgw_rule *mgw_faults_at(const struct mgw_faults *f, unsigned i)
{
    return i < f->n ? f->rules[i] : NULL;
}

uint64_t mgw_faults_draw(struct mgw_faults *f)
{
    uint64_t z = (f->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double mgw_faults_draw_unit(struct mgw_faults *f)
{
    return (double)(mgw_faults_draw(f) >> 11) * 0x1.0p-53;
}

const char *mgw_faults_state(const struct mgw_faults *f)
{
    return f->state;
}

int mgw_faults_set_state(struct mgw_faults *f, const char *state)
{
    char *copy = strdup(state);

    if (!copy)
        return -ENOMEM;
    free(f->state);
    f->state = copy;
    for (unsigned i = 0; i < f->n; i++)
        restate(f, f->rules[i]);
    return 0;
}

bool mgw_faults_watch(const struct mgw_faults *f, enum mgw_event_phase p)
{
    return (f->watched & (1u << p)) != 0;
}

bool mgw_action_ends_event(enum mgw_action_type t)
{
    switch (t) {
    case MGW_ACT_SILENT:
    case MGW_ACT_CLOSE:
    case MGW_ACT_RESET:
    case MGW_ACT_HALF_CLOSE:
    case MGW_ACT_REFUSE_CLIENT_ID:
    case MGW_ACT_RESTART:
        return true;
    default:
        return false;
    }
}

/* A rule is spent once it fired `times` times, or ran through its whole sequence. */
static bool spent(const struct mgw_rule *r)
{
    if (r->times > 0 && r->hits >= r->times)
        return true;
    return r->n_sequence > 0 && r->hits >= r->n_sequence;
}

static bool matches(const struct mgw_rule *r, const struct mgw_event *ev)
{
    const struct mgw_match *m = &r->match;

    if (!r->in_state)
        return false;
    if (m->msg_id >= 0 && m->msg_id != ev->msg_id)
        return false;
    if (m->has_client_id && m->client_id != ev->client_id)
        return false;
    if (m->conn_from && (ev->conn < m->conn_from || ev->conn > m->conn_to))
        return false;
    if (m->nth && m->nth != ev->nth)
        return false;
    if (ev->since_accept_ms < m->after_ms)
        return false;
    return true;
}

unsigned mgw_faults_eval(struct mgw_faults *f, const struct mgw_event *ev,
                         struct mgw_fault_hit *hits, unsigned max)
{
    unsigned n = 0;

    if (!mgw_faults_watch(f, ev->phase))
        return 0;
    for (unsigned i = 0; i < f->n && n < max; i++) {
        struct mgw_rule *r = f->rules[i];
        const struct mgw_action *a;
        double draw = -1;

        if (!(phase_mask(r) & (1u << ev->phase)) || spent(r) || !matches(r, ev))
            continue;
        /* Only rules that need a draw make one, so adding a deterministic rule never shifts
         * the random choices of the others. */
        if (r->match.probability < 1.0) {
            draw = mgw_faults_draw_unit(f);
            if (draw >= r->match.probability)
                continue;
        }
        a = r->n_sequence ? &r->sequence[r->hits] : &r->action;
        r->hits++;
        /* The state switches when the action is carried out: now, or when a scheduled one
         * (after_ms) runs (the caller applies it then). */
        if (a->set_state && a->after_ms == 0)
            mgw_faults_set_state(f, a->set_state);
        if (a->type == MGW_ACT_NONE && !a->set_state)
            continue; /* a normal attempt; one that switches the state is still reported */
        hits[n++] = (struct mgw_fault_hit){ r, a, draw };
        if (mgw_action_ends_event(a->type) && a->after_ms == 0)
            break;
    }
    return n;
}
