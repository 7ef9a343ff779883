/* The fault engine (private to libmockgw): rules, matching, the seeded generator, named states;
 * and the script/preset loaders that build rules. Format: docs/script-format.md.
 *
 * The engine decides; it does not act. The session and the server ask it at every protocol
 * event (mgw_faults_eval) and carry out the actions it returns. No I/O, no libuv.
 *
 * Ownership: a struct mgw_rule and everything it points to is heap memory owned by whoever
 * holds the rule: the loader returns rules the caller owns; mgw_faults_add/replace take them
 * over; mgw_rule_free frees one. Strings inside are NUL-terminated heap copies.
 */
#ifndef MGW_FAULT_H
#define MGW_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "mockgw.h"

enum mgw_event_phase {
    MGW_EV_ACCEPT,
    MGW_EV_HELLO,
    MGW_EV_VERSION_SENT,
    MGW_EV_START_API,
    MGW_EV_READY,
    MGW_EV_REQUEST,
    MGW_EV_COUNT
};

/* "accept", "hello", ...; NULL for an out-of-range value. */
const char *mgw_event_phase_name(enum mgw_event_phase p);
/* The phase named s, or -1. */
int mgw_event_phase_parse(const char *s);

#define MGW_ACTION_MAP(XX)                   \
    XX(NONE, "none")                         \
    XX(SILENT, "silent")                     \
    XX(CLOSE, "close")                       \
    XX(RESET, "reset")                       \
    XX(HALF_CLOSE, "half_close")             \
    XX(DELAY, "delay")                       \
    XX(ERROR, "error")                       \
    XX(IGNORE, "ignore")                     \
    XX(REFUSE_CLIENT_ID, "refuse_client_id") \
    XX(HALF_READY, "half_ready")             \
    XX(GARBAGE, "garbage")                   \
    XX(BAD_LENGTH, "bad_length")             \
    XX(TRUNCATE, "truncate")                 \
    XX(SLICE, "slice")                       \
    XX(BANDWIDTH, "bandwidth")               \
    XX(LIMIT_DATA, "limit_data")             \
    XX(HOLD, "hold")                         \
    XX(RELEASE, "release")                   \
    XX(REFUSE, "refuse")                     \
    XX(BLACKHOLE, "blackhole")               \
    XX(ACCEPT, "accept")                     \
    XX(RESTART, "restart")

enum mgw_action_type {
#define XX(name, str) MGW_ACT_##name,
    MGW_ACTION_MAP(XX)
#undef XX
        MGW_ACT_COUNT
};

const char *mgw_action_name(enum mgw_action_type t);
int mgw_action_parse(const char *s); /* the type named s, or -1 */

/* True for the listener-level actions (refuse, blackhole, accept, restart). */
bool mgw_action_is_listener(enum mgw_action_type t);

struct mgw_notice {
    uint64_t after_ms; /* after the action that owns it */
    int id;            /* request id, -1 for connection notices */
    int code;
    char *text; /* never NULL after loading: IB's text for known codes, else "" */
};

struct mgw_action {
    enum mgw_action_type type;
    uint64_t after_ms;       /* carry out this long after the event */
    char *set_state;         /* NULL = leave the state alone */
    uint64_t ms;             /* delay */
    uint64_t jitter_ms;      /* delay */
    int id;                  /* error: -1 default */
    int code;                /* error */
    char *text;              /* error */
    struct mgw_notice *then; /* error: follow-up notices */
    unsigned n_then;
    uint64_t bytes;       /* garbage, truncate (0 = half the next frame), slice, limit_data */
    uint64_t pause_ms;    /* slice */
    uint64_t bytes_per_s; /* bandwidth */
    uint32_t length;      /* bad_length */
    uint64_t down_ms;     /* restart */
    bool reset;           /* restart: RST everyone instead of FIN */
};

struct mgw_match {
    unsigned phases; /* bit (1u << phase) per phase; 0 = every phase */
    int msg_id;      /* -1 = any */
    bool has_client_id;
    int client_id;
    uint64_t conn_from, conn_to; /* connection ordinal range; 0, 0 = any */
    uint64_t nth;                /* Nth request on the connection; 0 = any */
    uint64_t after_ms;           /* at least this long since accept */
    double probability;          /* 1.0 = always, no draw */
    char *state;                 /* NULL = any state */
};

struct mgw_rule {
    uint64_t id; /* given by the engine when added; 0 before */
    char *name;
    struct mgw_match match;
    struct mgw_action action;    /* used when n_sequence == 0 */
    struct mgw_action *sequence; /* per-attempt actions */
    unsigned n_sequence;
    uint64_t times; /* 0 = unlimited */
    uint64_t hits;  /* how many times it fired */
    bool in_state;  /* the engine's cache: match.state holds in its current state */
};

void mgw_rule_free(struct mgw_rule *r);
/* A deep copy of r, id and hits included (fault.c). NULL when out of memory. */
struct mgw_rule *mgw_rule_copy(const struct mgw_rule *r);
/* Deep copy of src into dst (fault.c). 0, or -ENOMEM with dst left empty. */
int mgw_action_copy(struct mgw_action *dst, const struct mgw_action *src);
/* Frees what an action owns (set_state, text, then[] and their texts) and zeroes it. */
void mgw_action_clear(struct mgw_action *a);
/* The rule as JSON in the script format, plus "id" and "hits" (and "spent": true once it
 * can no longer fire). Caller deletes it. */
cJSON *mgw_rule_to_json(const struct mgw_rule *r);

/* --------------------------------------------------------------------------------------------
 * Scripts and presets (script.c)
 */
enum mgw_listener_mode { MGW_LISTEN_NORMAL, MGW_LISTEN_REFUSE, MGW_LISTEN_BLACKHOLE };

struct mgw_script_settings {
    /* has_* = the script set it; the value is used only then. */
    bool has_server_version, has_accounts, has_next_valid_id, has_max_clients;
    bool has_unique_client_ids, has_pace_current_time, has_handshake_timeout_ms;
    int server_version;
    char *accounts;
    int next_valid_id;
    int max_clients;
    bool unique_client_ids;
    bool pace_current_time;
    uint64_t handshake_timeout_ms;
    int *busy_client_ids;
    unsigned n_busy_client_ids;
    uint64_t stale_client_id_ms;
    enum mgw_listener_mode listener;
    uint64_t accept_delay_ms;
    uint64_t restart_every_ms; /* 0 = no periodic restart */
    uint64_t restart_down_ms;
};

/* The settings that live in struct mgw_config: X(setting, config field). */
#define MGW_CONFIG_SETTINGS(X)              \
    X(server_version, server_version)       \
    X(accounts, accounts)                   \
    X(next_valid_id, next_valid_id)         \
    X(max_clients, max_clients)             \
    X(unique_client_ids, unique_client_ids) \
    X(pace_current_time, pace_current_time) \
    X(handshake_timeout_ms, hello_timeout_ms)

struct mgw_script {
    struct mgw_script_settings settings;
    char *state; /* initial named state; never NULL after loading ("normal") */
    struct mgw_rule **rules;
    unsigned n_rules;
};

/* mgw_script_load(), _parse(), _from_json(), _new() and _free() are public: mockgw.h. */
/* A deep copy (for POST /v1/reset, which goes back to the start-up script). */
struct mgw_script *mgw_script_copy(const struct mgw_script *s);

/* One rule from JSON (the admin API's POST/PUT bodies). path is the JSON path of obj for
 * messages ("$" for a whole body). NULL on error, err->msg "<name>: <path>.<key>: <reason>". */
struct mgw_rule *mgw_rule_parse(const cJSON *obj, const char *name, const char *path,
                                struct mgw_err *err);

/* Applies --fault PRESET to s: appends its rules or sets its settings. 0, or -1 with err->msg
 * "--fault refuse-client-id=x: <reason>". */
int mgw_script_add_preset(struct mgw_script *s, const char *preset, struct mgw_err *err);

/* --------------------------------------------------------------------------------------------
 * The engine (fault.c)
 */
struct mgw_event {
    enum mgw_event_phase phase;
    uint64_t conn;            /* connection ordinal */
    int client_id;            /* -1 before START_API */
    int msg_id;               /* request message id; -1 outside phase request */
    uint64_t nth;             /* request number on the connection (1 = first); 0 outside */
    uint64_t since_accept_ms; /* time since the connection was accepted */
};

struct mgw_fault_hit {
    const struct mgw_rule *rule;     /* valid until the rules change */
    const struct mgw_action *action; /* the action to carry out (never NONE) */
    double draw;                     /* the probability draw, or -1 when none was made */
};

struct mgw_faults;

struct mgw_faults *mgw_faults_new(uint64_t seed);
void mgw_faults_free(struct mgw_faults *f);

/* Adds rule at the end (takes it over) and gives it the next id. 0 or -ENOMEM (rule freed). */
int mgw_faults_add(struct mgw_faults *f, struct mgw_rule *rule);
/* Replaces every rule at once with rules[0..n) (takes them over; ids are given anew). */
int mgw_faults_replace(struct mgw_faults *f, struct mgw_rule **rules, unsigned n);
/* Replaces the rule with this id in place (keeps id and position; hits restart at 0).
 * 0, or -ENOENT (rule freed). */
int mgw_faults_update(struct mgw_faults *f, uint64_t id, struct mgw_rule *rule);
/* 0, or -ENOENT. */
int mgw_faults_remove(struct mgw_faults *f, uint64_t id);
const struct mgw_rule *mgw_faults_get(const struct mgw_faults *f, uint64_t id);
unsigned mgw_faults_count(const struct mgw_faults *f);
const struct mgw_rule *mgw_faults_at(const struct mgw_faults *f, unsigned i);

/* Every armed rule matching ev, in order, fires: its hit count rises (and its sequence
 * advances), set_state is applied (unless the action has after_ms: then the caller applies it
 * when it carries the action out), and the action goes into hits. A rule whose action ends or
 * silences the connection stops the evaluation. Returns the number of hits (<= max). */
unsigned mgw_faults_eval(struct mgw_faults *f, const struct mgw_event *ev,
                         struct mgw_fault_hit *hits, unsigned max);

/* True when some rule matches phase p at all (cheap: lets callers skip building events). */
bool mgw_faults_watch(const struct mgw_faults *f, enum mgw_event_phase p);

/* The seeded generator (splitmix64): every random choice mockgw makes goes through it. */
uint64_t mgw_faults_draw(struct mgw_faults *f);
double mgw_faults_draw_unit(struct mgw_faults *f); /* uniform in [0, 1) */

const char *mgw_faults_state(const struct mgw_faults *f);
int mgw_faults_set_state(struct mgw_faults *f, const char *state); /* 0 or -ENOMEM */

/* Back to a fresh engine: no rules, the seed's first draw next, the given state. */
int mgw_faults_reset(struct mgw_faults *f, uint64_t seed, const char *state);

/* True for actions after which nothing more happens on the connection at this event. */
bool mgw_action_ends_event(enum mgw_action_type t);

#endif /* MGW_FAULT_H */
