/* Fault scripts, rules and presets: load, validate, copy, back to JSON.
 * Format: docs/script-format.md. Every error names the input, the JSON path and the reason. */
#include "fault.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ibwire.h"
#include "input.h"

#define MAX_FILE       (4u << 20) /* a script larger than this is refused before parsing */
#define MAX_MS         86400000   /* 24 h: any duration longer than that is a typo */
#define MAX_RULES      10000u
#define MAX_SEQUENCE   1000u
#define MAX_THEN       100u
#define MAX_BUSY       10000u
#define MAX_PRESET_IDS 100u

#define MAX_TEXT     1024u /* error texts */
#define MAX_ACCOUNTS 1024u
#define MAX_TIMES    1000000000
#define MAX_ORDINAL  9007199254740991 /* 2^53 - 1: still exact in a JSON number */
#define MAX_MSG_ID   999
#define MAX_CODE     99999

/* ---------------------------------------------------------------------------------------------
 * Names
 */
static const char *const phase_names[MGW_EV_COUNT] = {
    "accept", "hello", "version_sent", "start_api", "ready", "request",
};

static const char *const action_names[MGW_ACT_COUNT] = {
#define XX(name, str) str,
    MGW_ACTION_MAP(XX)
#undef XX
};

const char *mgw_event_phase_name(enum mgw_event_phase p)
{
    return (unsigned)p < MGW_EV_COUNT ? phase_names[p] : NULL;
}

int mgw_event_phase_parse(const char *s)
{
    for (int i = 0; s != NULL && i < MGW_EV_COUNT; i++) {
        if (strcmp(s, phase_names[i]) == 0)
            return i;
    }
    return -1;
}

const char *mgw_action_name(enum mgw_action_type t)
{
    return (unsigned)t < MGW_ACT_COUNT ? action_names[t] : NULL;
}

int mgw_action_parse(const char *s)
{
    for (int i = 0; s != NULL && i < MGW_ACT_COUNT; i++) {
        if (strcmp(s, action_names[i]) == 0)
            return i;
    }
    return -1;
}

bool mgw_action_is_listener(enum mgw_action_type t)
{
    return t == MGW_ACT_REFUSE || t == MGW_ACT_BLACKHOLE || t == MGW_ACT_ACCEPT ||
           t == MGW_ACT_RESTART;
}

/* IB's text for code, with the request id appended where IB puts it, or "" for a code we know
 * no text for. A heap copy, NULL when out of memory. */
static char *default_text(int code, int id)
{
    const char *t = ibw_error_text(code);
    char buf[256];

    if (t == NULL)
        return strdup("");
    if (!ibw_error_text_takes_id(code))
        return strdup(t);
    snprintf(buf, sizeof buf, "%s%d", t, id);
    return strdup(buf);
}

/* ---------------------------------------------------------------------------------------------
 * Typed readers: each takes the JSON path of the value for its message (input.h has the
 * shared ones).
 */
static int get_u64(struct mgw__jin *ld, const cJSON *v, const char *path, int64_t lo, int64_t hi,
                   uint64_t *out)
{
    int64_t x;

    if (mgw__jin_int(ld, v, path, lo, hi, &x) < 0)
        return -1;
    *out = (uint64_t)x;
    return 0;
}

static int get_i32(struct mgw__jin *ld, const cJSON *v, const char *path, int64_t lo, int64_t hi,
                   int *out)
{
    int64_t x;

    if (mgw__jin_int(ld, v, path, lo, hi, &x) < 0)
        return -1;
    *out = (int)x;
    return 0;
}

static int get_ms(struct mgw__jin *ld, const cJSON *v, const char *path, int64_t lo, uint64_t *out)
{
    return get_u64(ld, v, path, lo, MAX_MS, out);
}

static int get_bool(struct mgw__jin *ld, const cJSON *v, const char *path, bool *out)
{
    if (!cJSON_IsBool(v)) {
        mgw__jin_fail(ld, path, "expected true or false");
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Error text: up to MAX_TEXT bytes, no control characters (it goes into a wire field). */
static int get_text(struct mgw__jin *ld, const cJSON *v, const char *path, char **out)
{
    const char *s;
    size_t n;

    if (mgw__jin_string(ld, v, path, &s) < 0)
        return -1;
    n = strlen(s);
    if (n > MAX_TEXT) {
        mgw__jin_fail(ld, path, "longer than %u bytes", MAX_TEXT);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f) {
            mgw__jin_fail(ld, path, "control characters are not allowed");
            return -1;
        }
    }
    *out = strdup(s);
    if (*out == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Actions
 */
static const char *const action_common_keys[] = { "type", "after_ms", "set_state", NULL };

static const char *const action_params[MGW_ACT_COUNT][5] = {
    [MGW_ACT_DELAY] = { "ms", "jitter_ms", NULL },
    [MGW_ACT_ERROR] = { "code", "text", "id", "then", NULL },
    [MGW_ACT_GARBAGE] = { "bytes", NULL },
    [MGW_ACT_BAD_LENGTH] = { "length", NULL },
    [MGW_ACT_TRUNCATE] = { "bytes", NULL },
    [MGW_ACT_SLICE] = { "bytes", "pause_ms", NULL },
    [MGW_ACT_BANDWIDTH] = { "bytes_per_s", NULL },
    [MGW_ACT_LIMIT_DATA] = { "bytes", NULL },
    [MGW_ACT_RESTART] = { "down_ms", "how", NULL },
};

static const char *const then_keys[] = { "after_ms", "code", "text", "id", NULL };

#define PHASE_BIT(p) (1u << (p))

/* Every key an action object may hold, whatever its type: the common keys, then each type's
 * parameters (names may repeat). NULL-terminated. */
#define N_ACTION_KEYS                                           \
    (sizeof action_common_keys / sizeof action_common_keys[0] + \
     MGW_ACT_COUNT * (sizeof action_params[0] / sizeof action_params[0][0] - 1))

static void action_keys(const char *keys[N_ACTION_KEYS])
{
    size_t n = 0;

    for (const char *const *k = action_common_keys; *k != NULL; k++)
        keys[n++] = *k;
    for (int t = 0; t < MGW_ACT_COUNT; t++) {
        for (const char *const *k = action_params[t]; *k != NULL; k++)
            keys[n++] = *k;
    }
    keys[n] = NULL;
}

/* The value under key (case-sensitive), or NULL when the key is absent. */
#define ITEM(obj, key) cJSON_GetObjectItemCaseSensitive((obj), (key))

static int parse_notice(struct mgw__jin *ld, const cJSON *v, const char *path, struct mgw_notice *n)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];

    if (mgw__jin_object(ld, v, path) < 0 || mgw__jin_check_keys(ld, v, path, then_keys) < 0)
        return -1;
    n->id = -1;
    if ((it = ITEM(v, "after_ms")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "after_ms");
        if (get_ms(ld, it, p, 0, &n->after_ms) < 0)
            return -1;
    }
    if ((it = ITEM(v, "code")) == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"code\"");
        return -1;
    }
    mgw__jin_path_key(p, sizeof p, path, "code");
    if (get_i32(ld, it, p, 1, MAX_CODE, &n->code) < 0)
        return -1;
    if ((it = ITEM(v, "id")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "id");
        if (get_i32(ld, it, p, -1, INT32_MAX, &n->id) < 0)
            return -1;
    }
    if ((it = ITEM(v, "text")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "text");
        return get_text(ld, it, p, &n->text);
    }
    n->text = default_text(n->code, n->id);
    if (n->text == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_error_params(struct mgw__jin *ld, const cJSON *v, const char *path,
                              struct mgw_action *a)
{
    const cJSON *it, *then;
    char p[MGW__JIN_PATH_CAP], q[MGW__JIN_PATH_CAP];
    unsigned i = 0, n;

    if ((it = ITEM(v, "code")) == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"code\"");
        return -1;
    }
    mgw__jin_path_key(p, sizeof p, path, "code");
    if (get_i32(ld, it, p, 1, MAX_CODE, &a->code) < 0)
        return -1;
    if ((it = ITEM(v, "id")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "id");
        if (get_i32(ld, it, p, -1, INT32_MAX, &a->id) < 0)
            return -1;
    }
    if ((it = ITEM(v, "text")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "text");
        if (get_text(ld, it, p, &a->text) < 0)
            return -1;
    } else if ((a->text = default_text(a->code, a->id)) == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return -1;
    }
    if ((then = ITEM(v, "then")) == NULL)
        return 0;
    mgw__jin_path_key(p, sizeof p, path, "then");
    if (mgw__jin_array(ld, then, p, MAX_THEN, "notices", &n) < 0)
        return -1;
    if (n == 0)
        return 0;
    a->then = calloc(n, sizeof *a->then);
    if (a->then == NULL) {
        mgw__jin_fail(ld, p, "out of memory");
        return -1;
    }
    a->n_then = n; /* zeroed entries free cleanly if a later one fails */
    cJSON_ArrayForEach(it, then)
    {
        mgw__jin_path_index(q, sizeof q, p, i);
        if (parse_notice(ld, it, q, &a->then[i]) < 0)
            return -1;
        i++;
    }
    return 0;
}

/* The parameters of a->type with their defaults (docs/script-format.md, Actions). */
static int parse_params(struct mgw__jin *ld, const cJSON *v, const char *path, struct mgw_action *a)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];
    const char *how;

/* OPT(key): true when key is there, with its value in it and its JSON path in p.
 * REQ(key): the same, or fail with "missing required key". */
#define OPT(key) ((it = ITEM(v, key)) != NULL && (mgw__jin_path_key(p, sizeof p, path, key), true))
#define REQ(key)                                                         \
    do {                                                                 \
        if ((it = ITEM(v, key)) == NULL) {                               \
            mgw__jin_fail(ld, path, "missing required key \"%s\"", key); \
            return -1;                                                   \
        }                                                                \
        mgw__jin_path_key(p, sizeof p, path, key);                       \
    } while (0)

    switch (a->type) {
    case MGW_ACT_DELAY:
        REQ("ms");
        if (get_ms(ld, it, p, 0, &a->ms) < 0)
            return -1;
        if (OPT("jitter_ms")) {
            if (get_ms(ld, it, p, 0, &a->jitter_ms) < 0)
                return -1;
            if (a->jitter_ms > a->ms) {
                mgw__jin_fail(ld, p, "must not be greater than ms (%llu)",
                              (unsigned long long)a->ms);
                return -1;
            }
        }
        return 0;
    case MGW_ACT_ERROR:
        return parse_error_params(ld, v, path, a);
    case MGW_ACT_GARBAGE:
        a->bytes = 16;
        return OPT("bytes") ? get_u64(ld, it, p, 1, 1 << 20, &a->bytes) : 0;
    case MGW_ACT_BAD_LENGTH:
        a->length = 0x7fffffff;
        if (OPT("length")) {
            uint64_t len;

            if (get_u64(ld, it, p, 0, UINT32_MAX, &len) < 0)
                return -1;
            a->length = (uint32_t)len;
        }
        return 0;
    case MGW_ACT_TRUNCATE:
        a->bytes = 0; /* half of the next frame */
        return OPT("bytes") ? get_u64(ld, it, p, 1, IBW_MAX_FRAME + 4, &a->bytes) : 0;
    case MGW_ACT_SLICE:
        a->bytes = 1;
        a->pause_ms = 10;
        if (OPT("bytes") && get_u64(ld, it, p, 1, 1 << 20, &a->bytes) < 0)
            return -1;
        return OPT("pause_ms") ? get_ms(ld, it, p, 0, &a->pause_ms) : 0;
    case MGW_ACT_BANDWIDTH:
        REQ("bytes_per_s");
        return get_u64(ld, it, p, 1, (int64_t)1 << 40, &a->bytes_per_s);
    case MGW_ACT_LIMIT_DATA:
        REQ("bytes");
        return get_u64(ld, it, p, 0, (int64_t)1 << 40, &a->bytes);
    case MGW_ACT_RESTART:
        a->down_ms = 5000;
        if (OPT("down_ms") && get_ms(ld, it, p, 0, &a->down_ms) < 0)
            return -1;
        if (OPT("how")) {
            if (mgw__jin_string(ld, it, p, &how) < 0)
                return -1;
            if (strcmp(how, "close") != 0 && strcmp(how, "reset") != 0) {
                mgw__jin_fail(ld, p, "expected \"close\" or \"reset\"");
                return -1;
            }
            a->reset = strcmp(how, "reset") == 0;
        }
        return 0;
    default:
        return 0;
    }
#undef OPT
#undef REQ
}

/* Rejects what a->type cannot do at the phases the rule matches. */
static int check_phase(struct mgw__jin *ld, const char *type_path, unsigned phases,
                       const struct mgw_action *a)
{
    switch (a->type) {
    case MGW_ACT_REFUSE_CLIENT_ID:
    case MGW_ACT_HALF_READY:
        if (phases != PHASE_BIT(MGW_EV_START_API)) {
            mgw__jin_fail(ld, type_path,
                          "\"%s\" needs match.phase \"start_api\" (and no other phase)",
                          action_names[a->type]);
            return -1;
        }
        return 0;
    case MGW_ACT_ERROR:
        /* Before the handshake there is no version to lay the frame out by. A rule without
         * a phase (every event) is allowed: mockgw skips the accept event (fault_skipped). */
        if (phases & PHASE_BIT(MGW_EV_ACCEPT)) {
            mgw__jin_fail(ld, type_path,
                          "\"error\" cannot be sent at phase \"accept\" (no version "
                          "negotiated yet); use \"hello\" or later");
            return -1;
        }
        return 0;
    case MGW_ACT_IGNORE:
        if (phases != PHASE_BIT(MGW_EV_REQUEST)) {
            mgw__jin_fail(ld, type_path,
                          "\"ignore\" needs match.phase \"request\" (and no other phase)");
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

/* One action object into *a (zeroed storage the caller frees with mgw_action_clear on error). */
static int parse_action(struct mgw__jin *ld, const cJSON *v, const char *path, unsigned phases,
                        struct mgw_action *a)
{
    const char *keys[N_ACTION_KEYS];
    char p[MGW__JIN_PATH_CAP];
    const char *type;
    const cJSON *it;
    int t;

    a->id = -1;
    action_keys(keys);
    if (mgw__jin_object(ld, v, path) < 0 || mgw__jin_check_keys(ld, v, path, keys) < 0)
        return -1;
    if ((it = ITEM(v, "type")) == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"type\"");
        return -1;
    }
    mgw__jin_path_key(p, sizeof p, path, "type");
    if (mgw__jin_string(ld, it, p, &type) < 0)
        return -1;
    if ((t = mgw_action_parse(type)) < 0) {
        mgw__jin_fail(ld, p, "unknown action \"%.64s\"", type);
        return -1;
    }
    a->type = (enum mgw_action_type)t;
    for (it = v->child; it != NULL; it = it->next) {
        if (!mgw__jin_in_list(it->string, action_common_keys) &&
            !mgw__jin_in_list(it->string, action_params[t])) {
            mgw__jin_path_key(p, sizeof p, path, it->string);
            mgw__jin_fail(ld, p, "not a parameter of \"%s\"", action_names[t]);
            return -1;
        }
    }
    mgw__jin_path_key(p, sizeof p, path, "type");
    if (check_phase(ld, p, phases, a) < 0)
        return -1;
    if ((it = ITEM(v, "after_ms")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "after_ms");
        if (get_ms(ld, it, p, 0, &a->after_ms) < 0)
            return -1;
    }
    if ((it = ITEM(v, "set_state")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "set_state");
        if (mgw__jin_name(ld, it, p, &a->set_state) < 0)
            return -1;
    }
    return parse_params(ld, v, path, a);
}

/* ---------------------------------------------------------------------------------------------
 * Match
 */
static const char *const match_keys[] = {
    "phase", "msg", "client_id", "conn", "nth", "after_ms", "probability", "state", NULL,
};

static int parse_phase_name(struct mgw__jin *ld, const cJSON *v, const char *path, unsigned *phases)
{
    const char *s;
    int p;

    if (mgw__jin_string(ld, v, path, &s) < 0)
        return -1;
    if ((p = mgw_event_phase_parse(s)) < 0) {
        mgw__jin_fail(
            ld, path,
            "unknown phase \"%.64s\" (known: accept, hello, version_sent, start_api, ready, "
            "request)",
            s);
        return -1;
    }
    if (*phases & PHASE_BIT(p)) {
        mgw__jin_fail(ld, path, "phase \"%s\" given twice", s);
        return -1;
    }
    *phases |= PHASE_BIT(p);
    return 0;
}

static int parse_phases(struct mgw__jin *ld, const cJSON *v, const char *path, unsigned *phases)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];
    unsigned i = 0;

    *phases = 0;
    if (cJSON_IsString(v))
        return parse_phase_name(ld, v, path, phases);
    if (!cJSON_IsArray(v)) {
        mgw__jin_fail(ld, path, "expected a string or an array of strings");
        return -1;
    }
    if (cJSON_GetArraySize(v) == 0) {
        mgw__jin_fail(ld, path, "must not be empty");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        mgw__jin_path_index(p, sizeof p, path, i++);
        if (parse_phase_name(ld, it, p, phases) < 0)
            return -1;
    }
    return 0;
}

static int parse_msg(struct mgw__jin *ld, const cJSON *v, const char *path, int *msg_id)
{
    if (cJSON_IsString(v)) {
        for (int id = 0; id <= MAX_MSG_ID; id++) {
            const char *n = ibw_out_name(id);

            if (n != NULL && strcmp(n, v->valuestring) == 0) {
                *msg_id = id;
                return 0;
            }
        }
        mgw__jin_fail(ld, path, "unknown request \"%.64s\"", v->valuestring);
        return -1;
    }
    if (!cJSON_IsNumber(v)) {
        mgw__jin_fail(ld, path, "expected a request name or a message id");
        return -1;
    }
    return get_i32(ld, v, path, 0, MAX_MSG_ID, msg_id);
}

static int parse_conn(struct mgw__jin *ld, const cJSON *v, const char *path, struct mgw_match *m)
{
    char p[MGW__JIN_PATH_CAP];

    if (cJSON_IsNumber(v)) {
        if (get_u64(ld, v, path, 1, MAX_ORDINAL, &m->conn_from) < 0)
            return -1;
        m->conn_to = m->conn_from;
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2) {
        mgw__jin_fail(ld, path, "expected an integer or [from, to]");
        return -1;
    }
    mgw__jin_path_index(p, sizeof p, path, 0);
    if (get_u64(ld, cJSON_GetArrayItem(v, 0), p, 1, MAX_ORDINAL, &m->conn_from) < 0)
        return -1;
    mgw__jin_path_index(p, sizeof p, path, 1);
    if (get_u64(ld, cJSON_GetArrayItem(v, 1), p, 1, MAX_ORDINAL, &m->conn_to) < 0)
        return -1;
    if (m->conn_from > m->conn_to) {
        mgw__jin_fail(ld, path, "from (%llu) is greater than to (%llu)",
                      (unsigned long long)m->conn_from, (unsigned long long)m->conn_to);
        return -1;
    }
    return 0;
}

static int parse_match(struct mgw__jin *ld, const cJSON *v, const char *path, struct mgw_match *m)
{
    static const unsigned knows_client =
        PHASE_BIT(MGW_EV_START_API) | PHASE_BIT(MGW_EV_READY) | PHASE_BIT(MGW_EV_REQUEST);
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];

    if (mgw__jin_object(ld, v, path) < 0 || mgw__jin_check_keys(ld, v, path, match_keys) < 0)
        return -1;
    if ((it = ITEM(v, "phase")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "phase");
        if (parse_phases(ld, it, p, &m->phases) < 0)
            return -1;
    }
    if ((it = ITEM(v, "msg")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "msg");
        if (parse_msg(ld, it, p, &m->msg_id) < 0)
            return -1;
        if (m->phases != PHASE_BIT(MGW_EV_REQUEST)) {
            mgw__jin_fail(ld, p, "needs match.phase \"request\" (and no other phase)");
            return -1;
        }
    }
    if ((it = ITEM(v, "client_id")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "client_id");
        m->has_client_id = true;
        if (get_i32(ld, it, p, INT32_MIN, INT32_MAX, &m->client_id) < 0)
            return -1;
        if (m->phases != 0 && (m->phases & knows_client) == 0) {
            mgw__jin_fail(ld, p, "the client id is known from phase \"start_api\" on");
            return -1;
        }
    }
    if ((it = ITEM(v, "conn")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "conn");
        if (parse_conn(ld, it, p, m) < 0)
            return -1;
    }
    if ((it = ITEM(v, "nth")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "nth");
        if (get_u64(ld, it, p, 1, MAX_ORDINAL, &m->nth) < 0)
            return -1;
        if (m->phases != PHASE_BIT(MGW_EV_REQUEST)) {
            mgw__jin_fail(ld, p, "needs match.phase \"request\" (and no other phase)");
            return -1;
        }
    }
    if ((it = ITEM(v, "after_ms")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "after_ms");
        if (get_ms(ld, it, p, 0, &m->after_ms) < 0)
            return -1;
    }
    if ((it = ITEM(v, "probability")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "probability");
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
            mgw__jin_fail(ld, p, "expected a number");
            return -1;
        }
        if (it->valuedouble < 0.0 || it->valuedouble > 1.0) {
            mgw__jin_fail(ld, p, "must be between 0 and 1");
            return -1;
        }
        m->probability = it->valuedouble;
    }
    if ((it = ITEM(v, "state")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "state");
        if (mgw__jin_name(ld, it, p, &m->state) < 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Rules
 */
/* id, hits and spent are what mgw_rule_to_json adds: accepted (so a rule read from the admin
 * API can be sent back as it is) and ignored. */
static const char *const rule_keys[] = {
    "name", "match", "action", "sequence", "times", "id", "hits", "spent", NULL,
};

void mgw_rule_free(struct mgw_rule *r)
{
    if (r == NULL)
        return;
    free(r->name);
    free(r->match.state);
    mgw_action_clear(&r->action);
    for (unsigned i = 0; i < r->n_sequence; i++)
        mgw_action_clear(&r->sequence[i]);
    free(r->sequence);
    free(r);
}

static int parse_sequence(struct mgw__jin *ld, const cJSON *v, const char *path, struct mgw_rule *r)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];
    unsigned i = 0, n;

    if (mgw__jin_array(ld, v, path, MAX_SEQUENCE, "actions", &n) < 0)
        return -1;
    if (n == 0) {
        mgw__jin_fail(ld, path, "must not be empty");
        return -1;
    }
    r->sequence = calloc(n, sizeof *r->sequence);
    if (r->sequence == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return -1;
    }
    r->n_sequence = n; /* zeroed entries free cleanly if a later one fails */
    cJSON_ArrayForEach(it, v)
    {
        mgw__jin_path_index(p, sizeof p, path, i);
        if (parse_action(ld, it, p, r->match.phases, &r->sequence[i]) < 0)
            return -1;
        i++;
    }
    return 0;
}

static struct mgw_rule *parse_rule(struct mgw__jin *ld, const cJSON *v, const char *path)
{
    const cJSON *it, *action, *sequence;
    struct mgw_rule *r;
    char p[MGW__JIN_PATH_CAP];
    uint64_t ignored;
    bool spent;

    if (mgw__jin_object(ld, v, path) < 0 || mgw__jin_check_keys(ld, v, path, rule_keys) < 0)
        return NULL;
    action = ITEM(v, "action");
    sequence = ITEM(v, "sequence");
    if (action != NULL && sequence != NULL) {
        mgw__jin_fail(ld, path, "give either \"action\" or \"sequence\", not both");
        return NULL;
    }
    if (action == NULL && sequence == NULL) {
        mgw__jin_fail(ld, path, "missing \"action\" or \"sequence\"");
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return NULL;
    }
    r->match.msg_id = -1;
    r->match.probability = 1.0;
    r->action.id = -1;
    if ((it = ITEM(v, "name")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "name");
        if (mgw__jin_name(ld, it, p, &r->name) < 0)
            goto fail;
    }
    if ((it = ITEM(v, "match")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "match");
        if (parse_match(ld, it, p, &r->match) < 0)
            goto fail;
    }
    if (action != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "action");
        if (parse_action(ld, action, p, r->match.phases, &r->action) < 0)
            goto fail;
    } else {
        mgw__jin_path_key(p, sizeof p, path, "sequence");
        if (parse_sequence(ld, sequence, p, r) < 0)
            goto fail;
    }
    if ((it = ITEM(v, "times")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "times");
        if (get_u64(ld, it, p, 1, MAX_TIMES, &r->times) < 0)
            goto fail;
    }
    if ((it = ITEM(v, "id")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "id");
        if (get_u64(ld, it, p, 0, MAX_ORDINAL, &ignored) < 0)
            goto fail;
    }
    if ((it = ITEM(v, "hits")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "hits");
        if (get_u64(ld, it, p, 0, MAX_ORDINAL, &ignored) < 0)
            goto fail;
    }
    if ((it = ITEM(v, "spent")) != NULL) {
        mgw__jin_path_key(p, sizeof p, path, "spent");
        if (get_bool(ld, it, p, &spent) < 0)
            goto fail;
    }
    return r;

fail:
    mgw_rule_free(r);
    return NULL;
}

struct mgw_rule *mgw_rule_parse(const cJSON *obj, const char *name, const char *path,
                                struct mgw_err *err)
{
    struct mgw__jin ld = { name, err };

    err->msg[0] = '\0';
    return parse_rule(&ld, obj, path != NULL ? path : "$");
}

/* ---------------------------------------------------------------------------------------------
 * Rules back to JSON
 */
static bool add_num(cJSON *o, const char *key, double v)
{
    return cJSON_AddNumberToObject(o, key, v) != NULL;
}

static bool add_str(cJSON *o, const char *key, const char *v)
{
    return cJSON_AddStringToObject(o, key, v) != NULL;
}

/* Adds item under key, or deletes it (NULL included): copying the key can fail too. */
static bool add_item(cJSON *o, const char *key, cJSON *item)
{
    if (item != NULL && cJSON_AddItemToObject(o, key, item))
        return true;
    cJSON_Delete(item);
    return false;
}

static cJSON *notice_to_json(const struct mgw_notice *n)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (!add_num(o, "after_ms", (double)n->after_ms) || !add_num(o, "code", n->code) ||
        !add_str(o, "text", n->text != NULL ? n->text : "") || !add_num(o, "id", n->id)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool error_params_to_json(cJSON *o, const struct mgw_action *a)
{
    cJSON *then, *n;

    if (!add_num(o, "code", a->code) || !add_str(o, "text", a->text != NULL ? a->text : "") ||
        !add_num(o, "id", a->id))
        return false;
    if (a->n_then == 0)
        return true;
    if ((then = cJSON_AddArrayToObject(o, "then")) == NULL)
        return false;
    for (unsigned i = 0; i < a->n_then; i++) {
        if ((n = notice_to_json(&a->then[i])) == NULL)
            return false;
        cJSON_AddItemToArray(then, n);
    }
    return true;
}

static cJSON *action_to_json(const struct mgw_action *a)
{
    cJSON *o = cJSON_CreateObject();
    bool ok;

    if (o == NULL)
        return NULL;
    ok = add_str(o, "type", mgw_action_name(a->type) != NULL ? mgw_action_name(a->type) : "?");
    if (ok && a->after_ms != 0)
        ok = add_num(o, "after_ms", (double)a->after_ms);
    if (ok && a->set_state != NULL)
        ok = add_str(o, "set_state", a->set_state);
    switch (a->type) {
    case MGW_ACT_DELAY:
        ok = ok && add_num(o, "ms", (double)a->ms) && add_num(o, "jitter_ms", (double)a->jitter_ms);
        break;
    case MGW_ACT_ERROR:
        ok = ok && error_params_to_json(o, a);
        break;
    case MGW_ACT_GARBAGE:
    case MGW_ACT_LIMIT_DATA:
        ok = ok && add_num(o, "bytes", (double)a->bytes);
        break;
    case MGW_ACT_TRUNCATE:
        if (a->bytes != 0) /* 0 = the default, half of the next frame */
            ok = ok && add_num(o, "bytes", (double)a->bytes);
        break;
    case MGW_ACT_BAD_LENGTH:
        ok = ok && add_num(o, "length", a->length);
        break;
    case MGW_ACT_SLICE:
        ok = ok && add_num(o, "bytes", (double)a->bytes) &&
             add_num(o, "pause_ms", (double)a->pause_ms);
        break;
    case MGW_ACT_BANDWIDTH:
        ok = ok && add_num(o, "bytes_per_s", (double)a->bytes_per_s);
        break;
    case MGW_ACT_RESTART:
        ok = ok && add_num(o, "down_ms", (double)a->down_ms) &&
             add_str(o, "how", a->reset ? "reset" : "close");
        break;
    default:
        break;
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool phases_to_json(cJSON *m, unsigned phases)
{
    cJSON *arr, *s;
    int n = 0, only = -1;

    for (int p = 0; p < MGW_EV_COUNT; p++) {
        if (phases & PHASE_BIT(p)) {
            n++;
            only = p;
        }
    }
    if (n == 0)
        return true;
    if (n == 1)
        return add_str(m, "phase", phase_names[only]);
    if ((arr = cJSON_AddArrayToObject(m, "phase")) == NULL)
        return false;
    for (int p = 0; p < MGW_EV_COUNT; p++) {
        if (!(phases & PHASE_BIT(p)))
            continue;
        if ((s = cJSON_CreateString(phase_names[p])) == NULL)
            return false;
        cJSON_AddItemToArray(arr, s);
    }
    return true;
}

static cJSON *match_to_json(const struct mgw_match *mt)
{
    cJSON *m = cJSON_CreateObject();
    const char *msg;
    bool ok;

    if (m == NULL)
        return NULL;
    ok = phases_to_json(m, mt->phases);
    if (ok && mt->msg_id >= 0) {
        msg = ibw_out_name(mt->msg_id);
        ok = msg != NULL ? add_str(m, "msg", msg) : add_num(m, "msg", mt->msg_id);
    }
    if (ok && mt->has_client_id)
        ok = add_num(m, "client_id", mt->client_id);
    if (ok && mt->conn_from != 0) {
        if (mt->conn_from == mt->conn_to) {
            ok = add_num(m, "conn", (double)mt->conn_from);
        } else {
            double range[2] = { (double)mt->conn_from, (double)mt->conn_to };

            ok = add_item(m, "conn", cJSON_CreateDoubleArray(range, 2));
        }
    }
    if (ok && mt->nth != 0)
        ok = add_num(m, "nth", (double)mt->nth);
    if (ok && mt->after_ms != 0)
        ok = add_num(m, "after_ms", (double)mt->after_ms);
    if (ok && mt->probability != 1.0)
        ok = add_num(m, "probability", mt->probability);
    if (ok && mt->state != NULL)
        ok = add_str(m, "state", mt->state);
    if (!ok) {
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

cJSON *mgw_rule_to_json(const struct mgw_rule *r)
{
    cJSON *o = cJSON_CreateObject(), *item, *seq;
    char name[32];
    bool ok, spent;

    if (o == NULL)
        return NULL;
    ok = add_num(o, "id", (double)r->id);
    if (ok && r->name != NULL) {
        ok = add_str(o, "name", r->name);
    } else if (ok && r->id != 0) {
        snprintf(name, sizeof name, "rule-%llu", (unsigned long long)r->id);
        ok = add_str(o, "name", name);
    }
    if (ok)
        ok = add_item(o, "match", match_to_json(&r->match));
    if (ok && r->n_sequence == 0) {
        ok = add_item(o, "action", action_to_json(&r->action));
    } else if (ok) {
        ok = (seq = cJSON_AddArrayToObject(o, "sequence")) != NULL;
        for (unsigned i = 0; ok && i < r->n_sequence; i++) {
            ok = (item = action_to_json(&r->sequence[i])) != NULL;
            if (ok)
                cJSON_AddItemToArray(seq, item);
        }
    }
    if (ok && r->times != 0)
        ok = add_num(o, "times", (double)r->times);
    if (ok)
        ok = add_num(o, "hits", (double)r->hits);
    spent =
        (r->times != 0 && r->hits >= r->times) || (r->n_sequence != 0 && r->hits >= r->n_sequence);
    if (ok && spent)
        ok = cJSON_AddTrueToObject(o, "spent") != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Copies
 */
static int copy_str(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst != NULL ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Scripts
 */
static const char *const top_keys[] = { "settings", "state", "rules", NULL };
static const char *const settings_keys[] = {
    "server_version",
    "accounts",
    "next_valid_id",
    "max_clients",
    "unique_client_ids",
    "pace_current_time",
    "handshake_timeout_ms",
    "busy_client_ids",
    "stale_client_id_ms",
    "listener",
    "accept_delay_ms",
    "restart_every",
    NULL,
};
static const char *const restart_keys[] = { "every_ms", "down_ms", NULL };

struct mgw_script *mgw_script_new(void)
{
    struct mgw_script *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    s->settings.listener = MGW_LISTEN_NORMAL;
    s->state = strdup("normal");
    if (s->state == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void mgw_script_free(struct mgw_script *s)
{
    if (s == NULL)
        return;
    free(s->settings.accounts);
    free(s->settings.busy_client_ids);
    free(s->state);
    for (unsigned i = 0; i < s->n_rules; i++)
        mgw_rule_free(s->rules[i]);
    free(s->rules);
    free(s);
}

struct mgw_script *mgw_script_copy(const struct mgw_script *src)
{
    struct mgw_script *s = calloc(1, sizeof *s);
    const struct mgw_script_settings *from = &src->settings;

    if (s == NULL)
        return NULL;
    s->settings = *from;
    s->settings.accounts = NULL;
    s->settings.busy_client_ids = NULL;
    s->settings.n_busy_client_ids = 0;
    if (copy_str(&s->settings.accounts, from->accounts) < 0 || copy_str(&s->state, src->state) < 0)
        goto fail;
    if (from->n_busy_client_ids != 0) {
        s->settings.busy_client_ids = malloc(from->n_busy_client_ids * sizeof(int));
        if (s->settings.busy_client_ids == NULL)
            goto fail;
        memcpy(s->settings.busy_client_ids, from->busy_client_ids,
               from->n_busy_client_ids * sizeof(int));
        s->settings.n_busy_client_ids = from->n_busy_client_ids;
    }
    if (src->n_rules != 0) {
        s->rules = calloc(src->n_rules, sizeof *s->rules);
        if (s->rules == NULL)
            goto fail;
        for (unsigned i = 0; i < src->n_rules; i++) {
            if ((s->rules[i] = mgw_rule_copy(src->rules[i])) == NULL)
                goto fail;
            s->n_rules = i + 1;
        }
    }
    return s;

fail:
    mgw_script_free(s);
    return NULL;
}

/* Comma-separated account codes: printable, no spaces, none empty (as --accounts). */
static int parse_accounts(struct mgw__jin *ld, const cJSON *v, const char *path, char **out)
{
    const char *s, *why;

    if (mgw__jin_string(ld, v, path, &s) < 0)
        return -1;
    /* The length first: an over-long list is refused as such, whatever it holds. */
    if (strlen(s) > MAX_ACCOUNTS) {
        mgw__jin_fail(ld, path, "longer than %u characters", MAX_ACCOUNTS);
        return -1;
    }
    if (!mgw__accounts_valid(s, &why)) {
        mgw__jin_fail(ld, path, "%s", why);
        return -1;
    }
    *out = strdup(s);
    if (*out == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_busy(struct mgw__jin *ld, const cJSON *v, const char *path,
                      struct mgw_script_settings *st)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];
    unsigned i = 0, n;
    int id;

    if (mgw__jin_array(ld, v, path, MAX_BUSY, "client ids", &n) < 0)
        return -1;
    if (n == 0)
        return 0;
    st->busy_client_ids = calloc(n, sizeof *st->busy_client_ids);
    if (st->busy_client_ids == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(it, v)
    {
        mgw__jin_path_index(p, sizeof p, path, i);
        if (get_i32(ld, it, p, INT32_MIN, INT32_MAX, &id) < 0)
            return -1;
        for (unsigned j = 0; j < i; j++) {
            if (st->busy_client_ids[j] == id) {
                mgw__jin_fail(ld, p, "client id %d given twice", id);
                return -1;
            }
        }
        st->busy_client_ids[i++] = id;
        st->n_busy_client_ids = i;
    }
    return 0;
}

static int parse_listener(struct mgw__jin *ld, const cJSON *v, const char *path,
                          enum mgw_listener_mode *mode)
{
    const char *s;

    if (mgw__jin_string(ld, v, path, &s) < 0)
        return -1;
    if (strcmp(s, "normal") == 0) {
        *mode = MGW_LISTEN_NORMAL;
    } else if (strcmp(s, "refuse") == 0) {
        *mode = MGW_LISTEN_REFUSE;
    } else if (strcmp(s, "blackhole") == 0) {
        *mode = MGW_LISTEN_BLACKHOLE;
    } else {
        mgw__jin_fail(ld, path,
                      "unknown listener mode \"%.64s\" (known: normal, refuse, blackhole)", s);
        return -1;
    }
    return 0;
}

static int parse_restart_every(struct mgw__jin *ld, const cJSON *v, const char *path,
                               struct mgw_script_settings *st)
{
    const cJSON *every, *down;
    char p[MGW__JIN_PATH_CAP];

    if (mgw__jin_object(ld, v, path) < 0 || mgw__jin_check_keys(ld, v, path, restart_keys) < 0)
        return -1;
    if ((every = ITEM(v, "every_ms")) == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"every_ms\"");
        return -1;
    }
    if ((down = ITEM(v, "down_ms")) == NULL) {
        mgw__jin_fail(ld, path, "missing required key \"down_ms\"");
        return -1;
    }
    mgw__jin_path_key(p, sizeof p, path, "every_ms");
    if (get_ms(ld, every, p, 1, &st->restart_every_ms) < 0)
        return -1;
    mgw__jin_path_key(p, sizeof p, path, "down_ms");
    if (get_ms(ld, down, p, 0, &st->restart_down_ms) < 0)
        return -1;
    if (st->restart_down_ms >= st->restart_every_ms) {
        mgw__jin_fail(ld, p, "must be less than every_ms (%llu)",
                      (unsigned long long)st->restart_every_ms);
        return -1;
    }
    return 0;
}

static int parse_settings(struct mgw__jin *ld, const cJSON *v, const char *path,
                          struct mgw_script_settings *st)
{
    const cJSON *it;
    char p[MGW__JIN_PATH_CAP];

#define KEY(key) ((it = ITEM(v, key)) != NULL && (mgw__jin_path_key(p, sizeof p, path, key), true))
    if (mgw__jin_object(ld, v, path) < 0 || mgw__jin_check_keys(ld, v, path, settings_keys) < 0)
        return -1;
    if (KEY("server_version")) {
        if (get_i32(ld, it, p, IBW_MIN_VERSION, IBW_MAX_VERSION, &st->server_version) < 0)
            return -1;
        st->has_server_version = true;
    }
    if (KEY("accounts")) {
        if (parse_accounts(ld, it, p, &st->accounts) < 0)
            return -1;
        st->has_accounts = true;
    }
    if (KEY("next_valid_id")) {
        if (get_i32(ld, it, p, 1, INT32_MAX, &st->next_valid_id) < 0)
            return -1;
        st->has_next_valid_id = true;
    }
    if (KEY("max_clients")) {
        if (get_i32(ld, it, p, 0, INT32_MAX, &st->max_clients) < 0)
            return -1;
        st->has_max_clients = true;
    }
    if (KEY("unique_client_ids")) {
        if (get_bool(ld, it, p, &st->unique_client_ids) < 0)
            return -1;
        st->has_unique_client_ids = true;
    }
    if (KEY("pace_current_time")) {
        if (get_bool(ld, it, p, &st->pace_current_time) < 0)
            return -1;
        st->has_pace_current_time = true;
    }
    if (KEY("handshake_timeout_ms")) {
        if (get_ms(ld, it, p, 1, &st->handshake_timeout_ms) < 0)
            return -1;
        st->has_handshake_timeout_ms = true;
    }
    if (KEY("busy_client_ids") && parse_busy(ld, it, p, st) < 0)
        return -1;
    if (KEY("stale_client_id_ms") && get_ms(ld, it, p, 0, &st->stale_client_id_ms) < 0)
        return -1;
    if (KEY("listener") && parse_listener(ld, it, p, &st->listener) < 0)
        return -1;
    if (KEY("accept_delay_ms") && get_ms(ld, it, p, 0, &st->accept_delay_ms) < 0)
        return -1;
    if (KEY("restart_every") && parse_restart_every(ld, it, p, st) < 0)
        return -1;
    return 0;
#undef KEY
}

/* The script in doc; base is doc's JSON path in messages ("$", or "$.gateway" when embedded). */
static struct mgw_script *build(struct mgw__jin *ld, const cJSON *doc, const char *base)
{
    const cJSON *it, *rules;
    struct mgw_script *s;
    char p[MGW__JIN_PATH_CAP], rules_path[MGW__JIN_PATH_CAP];
    unsigned i = 0, n = 0;

    if (mgw__jin_object(ld, doc, base) < 0 || mgw__jin_check_keys(ld, doc, base, top_keys) < 0)
        return NULL;
    mgw__jin_path_key(rules_path, sizeof rules_path, base, "rules");
    rules = ITEM(doc, "rules");
    if (rules != NULL && mgw__jin_array(ld, rules, rules_path, MAX_RULES, "rules", &n) < 0)
        return NULL;
    if ((s = mgw_script_new()) == NULL) {
        mgw__jin_fail(ld, NULL, "out of memory");
        return NULL;
    }
    mgw__jin_path_key(p, sizeof p, base, "settings");
    if ((it = ITEM(doc, "settings")) != NULL && parse_settings(ld, it, p, &s->settings) < 0)
        goto fail;
    if ((it = ITEM(doc, "state")) != NULL) {
        free(s->state);
        s->state = NULL;
        mgw__jin_path_key(p, sizeof p, base, "state");
        if (mgw__jin_name(ld, it, p, &s->state) < 0)
            goto fail;
    }
    if (n == 0)
        return s;
    s->rules = calloc(n, sizeof *s->rules);
    if (s->rules == NULL) {
        mgw__jin_fail(ld, rules_path, "out of memory");
        goto fail;
    }
    cJSON_ArrayForEach(it, rules)
    {
        mgw__jin_path_index(p, sizeof p, rules_path, i);
        if ((s->rules[i] = parse_rule(ld, it, p)) == NULL)
            goto fail;
        s->n_rules = ++i;
    }
    return s;

fail:
    mgw_script_free(s);
    return NULL;
}

struct mgw_script *mgw_script_parse(const char *json, size_t len, const char *name,
                                    struct mgw_err *err)
{
    struct mgw__jin ld = { name != NULL ? name : "<script>", err };
    struct mgw_script *s;
    cJSON *doc;

    err->msg[0] = '\0';
    if ((doc = mgw__jin_parse(&ld, json, len, 0)) == NULL)
        return NULL;
    s = build(&ld, doc, "$");
    cJSON_Delete(doc);
    return s;
}

struct mgw_script *mgw_script_from_json(const cJSON *doc, const char *name, const char *path,
                                        struct mgw_err *err)
{
    struct mgw__jin ld = { name, err };

    err->msg[0] = '\0';
    return build(&ld, doc, path != NULL ? path : "$");
}

struct mgw_script *mgw_script_load(const char *path, struct mgw_err *err)
{
    struct mgw__jin ld = { path, err };
    struct mgw_script *s;
    size_t len;
    char *buf;

    err->msg[0] = '\0';
    if ((buf = mgw__jin_read_file(&ld, path, MAX_FILE, &len)) == NULL)
        return NULL;
    s = mgw_script_parse(buf, len, path, err);
    free(buf);
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * Presets (--fault)
 */
enum preset_kind { P_RULE, P_AFTER, P_DELAY, P_CLIENT_IDS, P_LISTENER, P_RESTART };
enum preset_arg { ARG_NONE, ARG_OPTIONAL, ARG_REQUIRED };

static const struct preset {
    const char *name;
    enum preset_kind kind;
    enum preset_arg arg;
    const char *phase;  /* P_RULE, P_AFTER, P_DELAY */
    const char *action; /* P_RULE, P_AFTER */
    const char *usage;  /* how the value is written */
} presets[] = {
    { "silent", P_RULE, ARG_NONE, "accept", "silent", NULL },
    { "silent-after-handshake", P_RULE, ARG_NONE, "version_sent", "silent", NULL },
    { "silent-after-ready", P_RULE, ARG_NONE, "ready", "silent", NULL },
    { "refuse-client-id", P_CLIENT_IDS, ARG_REQUIRED, "start_api", "refuse_client_id",
      "refuse-client-id=N[,M...]" },
    { "drop-after-ready", P_AFTER, ARG_OPTIONAL, "ready", "close", NULL },
    { "reset-after-ready", P_AFTER, ARG_OPTIONAL, "ready", "reset", NULL },
    { "half-ready", P_RULE, ARG_NONE, "start_api", "half_ready", NULL },
    { "refuse", P_LISTENER, ARG_NONE, NULL, NULL, NULL },
    { "blackhole", P_LISTENER, ARG_NONE, NULL, NULL, NULL },
    { "delay", P_DELAY, ARG_REQUIRED, "accept", "delay", "delay=MS" },
    { "restart-every", P_RESTART, ARG_REQUIRED, NULL, NULL, "restart-every=MS:DOWN_MS" },
};

#define N_PRESETS (sizeof presets / sizeof presets[0])

/* One rule from its JSON text, through the same validation as a script's rules. */
static struct mgw_rule *preset_rule(struct mgw__jin *ld, const char *json)
{
    struct mgw_rule *r;
    cJSON *doc = cJSON_Parse(json);

    if (doc == NULL) {
        mgw__jin_fail(ld, NULL, "out of memory");
        return NULL;
    }
    r = parse_rule(ld, doc, "$");
    cJSON_Delete(doc);
    return r;
}

/* Appends rules[0..n) to s (taking them over), or frees them all. */
static int append_rules(struct mgw__jin *ld, struct mgw_script *s, struct mgw_rule **rules,
                        unsigned n)
{
    struct mgw_rule **grown;

    if (s->n_rules + n > MAX_RULES)
        mgw__jin_fail(ld, NULL, "more than %u rules", MAX_RULES);
    else if ((grown = realloc(s->rules, (s->n_rules + n) * sizeof *grown)) == NULL)
        mgw__jin_fail(ld, NULL, "out of memory");
    else {
        memcpy(grown + s->n_rules, rules, n * sizeof *rules);
        s->rules = grown;
        s->n_rules += n;
        return 0;
    }
    for (unsigned i = 0; i < n; i++)
        mgw_rule_free(rules[i]);
    return -1;
}

static int parse_ms_arg(struct mgw__jin *ld, const char *arg, const char *what, int64_t lo,
                        const char *end, uint64_t *out)
{
    size_t len = end != NULL ? (size_t)(end - arg) : strlen(arg);

    if (ibw_parse_u64(arg, len, (uint64_t)lo, MAX_MS, out) < 0) {
        mgw__jin_fail(ld, NULL, "%s must be an integer %lld..%d", what, (long long)lo, MAX_MS);
        return -1;
    }
    return 0;
}

static int preset_client_ids(struct mgw__jin *ld, struct mgw_script *s, const struct preset *pr,
                             const char *arg)
{
    struct mgw_rule *rules[MAX_PRESET_IDS];
    char json[256];
    unsigned n = 0;
    const char *p = arg, *comma;
    int64_t id;

    for (;;) {
        comma = strchr(p, ',');
        if (n == MAX_PRESET_IDS) {
            mgw__jin_fail(ld, NULL, "more than %u client ids", MAX_PRESET_IDS);
            goto fail;
        }
        if (ibw_parse_i64(p, comma != NULL ? (size_t)(comma - p) : strlen(p), INT32_MIN, INT32_MAX,
                          &id) < 0) {
            mgw__jin_fail(ld, NULL, "client id must be an integer");
            goto fail;
        }
        snprintf(json, sizeof json,
                 "{\"name\":\"preset:%s=%lld\",\"match\":{\"phase\":\"%s\",\"client_id\":%lld},"
                 "\"action\":{\"type\":\"%s\"}}",
                 pr->name, (long long)id, pr->phase, (long long)id, pr->action);
        if ((rules[n] = preset_rule(ld, json)) == NULL)
            goto fail;
        n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return append_rules(ld, s, rules, n);

fail:
    for (unsigned i = 0; i < n; i++)
        mgw_rule_free(rules[i]);
    return -1;
}

static int apply_preset(struct mgw__jin *ld, struct mgw_script *s, const struct preset *pr,
                        const char *arg)
{
    struct mgw_rule *r;
    uint64_t ms = 0, down;
    const char *colon;
    char json[256], suffix[32] = "";

    switch (pr->kind) {
    case P_RULE:
        snprintf(json, sizeof json,
                 "{\"name\":\"preset:%s\",\"match\":{\"phase\":\"%s\"},"
                 "\"action\":{\"type\":\"%s\"}}",
                 pr->name, pr->phase, pr->action);
        break;
    case P_AFTER:
        if (arg != NULL && parse_ms_arg(ld, arg, "MS", 0, NULL, &ms) < 0)
            return -1;
        if (arg != NULL)
            snprintf(suffix, sizeof suffix, "=%llu", (unsigned long long)ms);
        snprintf(json, sizeof json,
                 "{\"name\":\"preset:%s%s\",\"match\":{\"phase\":\"%s\"},"
                 "\"action\":{\"type\":\"%s\",\"after_ms\":%llu}}",
                 pr->name, suffix, pr->phase, pr->action, (unsigned long long)ms);
        break;
    case P_DELAY:
        if (parse_ms_arg(ld, arg, "MS", 0, NULL, &ms) < 0)
            return -1;
        snprintf(json, sizeof json,
                 "{\"name\":\"preset:%s=%llu\",\"match\":{\"phase\":\"%s\"},"
                 "\"action\":{\"type\":\"%s\",\"ms\":%llu}}",
                 pr->name, (unsigned long long)ms, pr->phase, pr->action, (unsigned long long)ms);
        break;
    case P_CLIENT_IDS:
        return preset_client_ids(ld, s, pr, arg);
    case P_LISTENER:
        s->settings.listener =
            strcmp(pr->name, "refuse") == 0 ? MGW_LISTEN_REFUSE : MGW_LISTEN_BLACKHOLE;
        return 0;
    case P_RESTART:
        if ((colon = strchr(arg, ':')) == NULL) {
            mgw__jin_fail(ld, NULL, "expected %s", pr->usage);
            return -1;
        }
        if (parse_ms_arg(ld, arg, "MS", 1, colon, &ms) < 0 ||
            parse_ms_arg(ld, colon + 1, "DOWN_MS", 0, NULL, &down) < 0)
            return -1;
        if (down >= ms) {
            mgw__jin_fail(ld, NULL, "DOWN_MS must be less than MS");
            return -1;
        }
        s->settings.restart_every_ms = ms;
        s->settings.restart_down_ms = down;
        return 0;
    }
    if ((r = preset_rule(ld, json)) == NULL)
        return -1;
    return append_rules(ld, s, &r, 1);
}

int mgw_script_add_preset(struct mgw_script *s, const char *preset, struct mgw_err *err)
{
    char name[128];
    struct mgw__jin ld = { name, err };
    const char *eq = strchr(preset, '='), *arg = eq != NULL ? eq + 1 : NULL;
    size_t len = eq != NULL ? (size_t)(eq - preset) : strlen(preset);
    const struct preset *pr = NULL;

    err->msg[0] = '\0';
    snprintf(name, sizeof name, "--fault %s", preset);
    for (size_t i = 0; i < N_PRESETS; i++) {
        if (strlen(presets[i].name) == len && strncmp(presets[i].name, preset, len) == 0)
            pr = &presets[i];
    }
    if (pr == NULL) {
        mgw__jin_fail(&ld, NULL,
                      "unknown preset (known: silent, silent-after-handshake, silent-after-ready, "
                      "refuse-client-id=N[,M...], drop-after-ready[=MS], reset-after-ready[=MS], "
                      "half-ready, refuse, blackhole, delay=MS, restart-every=MS:DOWN_MS)");
        return -1;
    }
    if (pr->arg == ARG_NONE && arg != NULL) {
        mgw__jin_fail(&ld, NULL, "takes no value");
        return -1;
    }
    if (pr->arg == ARG_REQUIRED && arg == NULL) {
        mgw__jin_fail(&ld, NULL, "needs a value (%s)", pr->usage);
        return -1;
    }
    return apply_preset(&ld, s, pr, arg) < 0 ? -1 : 0;
}
