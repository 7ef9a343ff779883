/* The admin API's endpoints (docs/admin-api.md). Every change is validated completely before
 * anything is applied, so a bad request changes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ibwire.h"
#include "input.h"
#include "server.h"
#include "strbuf.h"

/* --------------------------------------------------------------------------------------------
 * Replies
 */
static void reply_json(struct mgw_http_response *resp, int status, cJSON *body)
{
    resp->status = status;
    resp->body = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!resp->body) {
        resp->status = 500;
        resp->body = mgw_admin_error_body("out of memory");
    }
}

__attribute__((format(printf, 3, 4))) static void reply_error(struct mgw_http_response *resp,
                                                              int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->body = mgw_admin_error_body(msg);
}

static void method_not_allowed(struct mgw_http_response *resp, const struct mgw_http_request *req,
                               const char *allowed)
{
    reply_error(resp, 405, "method %s not allowed on %s (use %s)", req->method, req->path, allowed);
}

/* The request body as JSON; NULL after replying 400 when it is missing or malformed. */
static cJSON *parse_body(const struct mgw_http_request *req, struct mgw_http_response *resp)
{
    const char *end = NULL;
    cJSON *doc;

    if (req->body_len == 0) {
        reply_error(resp, 400, "%s %s needs a JSON body", req->method, req->path);
        return NULL;
    }
    doc = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, false);
    if (!doc) {
        size_t at = end && end >= req->body ? (size_t)(end - req->body) : 0;

        reply_error(resp, 400, "body: invalid JSON at byte %zu", at);
        return NULL;
    }
    return doc;
}

/* --------------------------------------------------------------------------------------------
 * Status
 */
static const char *listen_mode_name(enum mgw_listener_mode m)
{
    return m == MGW_LISTEN_REFUSE ? "refuse" : m == MGW_LISTEN_BLACKHOLE ? "blackhole" : "normal";
}

static cJSON *status_json(struct mgw_server *srv)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *api = cJSON_AddObjectToObject(root, "api");
    cJSON *rules = cJSON_AddObjectToObject(root, "rules");
    cJSON *faults = cJSON_AddObjectToObject(root, "faults");
    cJSON *counters = cJSON_AddObjectToObject(root, "counters");
    cJSON *conns = cJSON_AddArrayToObject(root, "connections");
    cJSON *hits = cJSON_AddArrayToObject(faults, "rules");
    uint64_t now = uv_now(srv->loop);

    cJSON_AddStringToObject(api, "host", srv->cfg.listen_host);
    cJSON_AddNumberToObject(api, "port", srv->api_port);
    cJSON_AddBoolToObject(api, "accepting",
                          srv->listener && !srv->stopping && srv->listen_mode == MGW_LISTEN_NORMAL);
    cJSON_AddStringToObject(api, "listener",
                            srv->restarting ? "restarting" : listen_mode_name(srv->listen_mode));
    if (srv->admin) {
        cJSON *admin = cJSON_AddObjectToObject(root, "admin");

        cJSON_AddStringToObject(admin, "host", srv->cfg.admin_host);
        cJSON_AddNumberToObject(admin, "port", srv->admin_port);
        cJSON_AddNumberToObject(admin, "connections", (double)mgw_admin_conn_count(srv->admin));
    }
    cJSON_AddStringToObject(root, "mode", srv->proxy ? "proxy" : "fake");
    if (srv->proxy) {
        cJSON *up = cJSON_AddObjectToObject(root, "upstream");

        cJSON_AddStringToObject(up, "address", srv->upstream_name);
        cJSON_AddNumberToObject(up, "connect_timeout_ms", (double)srv->cfg.upstream_timeout_ms);
    } else {
        cJSON_AddNullToObject(root, "upstream");
    }
    cJSON_AddNumberToObject(root, "server_version", srv->cfg.server_version);
    cJSON_AddStringToObject(root, "accounts", srv->cfg.accounts);
    cJSON_AddNumberToObject(root, "seed", (double)srv->cfg.seed);
    cJSON_AddNumberToObject(root, "uptime_ms", (double)(now - srv->started_ms));
    cJSON_AddNumberToObject(root, "journal_seq", (double)mgw_journal_seq(srv->journal));
    cJSON_AddNumberToObject(rules, "max_clients", srv->cfg.max_clients);
    cJSON_AddBoolToObject(rules, "unique_client_ids", srv->cfg.unique_client_ids);
    cJSON_AddBoolToObject(rules, "pace_current_time", srv->cfg.pace_current_time);
    cJSON_AddNumberToObject(rules, "handshake_timeout_ms", (double)srv->cfg.hello_timeout_ms);
    cJSON_AddNumberToObject(rules, "max_out_buffer", (double)srv->cfg.max_out_buffer);
    cJSON_AddStringToObject(faults, "state", mgw_faults_state(srv->faults));
    cJSON_AddNumberToObject(faults, "accept_delay_ms", (double)srv->accept_delay_ms);
    cJSON_AddNumberToObject(faults, "stale_client_id_ms", (double)srv->ctx.stale_client_id_ms);
    cJSON_AddNumberToObject(faults, "restart_every_ms", (double)srv->restart_every_ms);
    for (unsigned i = 0; i < mgw_faults_count(srv->faults); i++) {
        const struct mgw_rule *r = mgw_faults_at(srv->faults, i);
        cJSON *o = cJSON_CreateObject();
        char name[32];

        snprintf(name, sizeof name, "rule-%" PRIu64, r->id);
        cJSON_AddNumberToObject(o, "id", (double)r->id);
        cJSON_AddStringToObject(o, "name", r->name ? r->name : name);
        cJSON_AddNumberToObject(o, "hits", (double)r->hits);
        cJSON_AddItemToArray(hits, o);
    }
    cJSON_AddNumberToObject(counters, "accepted", (double)srv->counters.accepted);
    cJSON_AddNumberToObject(counters, "closed", (double)srv->counters.closed);
    cJSON_AddNumberToObject(counters, "rejected_max_clients",
                            (double)srv->counters.rejected_max_clients);
    cJSON_AddNumberToObject(counters, "refused_client_id",
                            (double)srv->ctx.counters.refused_client_id);
    cJSON_AddNumberToObject(counters, "bad_input", (double)srv->ctx.counters.bad_input);
    cJSON_AddNumberToObject(counters, "output_overflow", (double)srv->counters.output_overflow);
    cJSON_AddNumberToObject(counters, "paced_current_time", (double)srv->ctx.counters.paced);
    cJSON_AddNumberToObject(counters, "ignored_messages",
                            (double)srv->ctx.counters.unknown_messages);
    cJSON_AddNumberToObject(counters, "faults", (double)srv->ctx.counters.faults);
    cJSON_AddNumberToObject(counters, "restarts", (double)srv->counters.restarts);
    cJSON_AddNumberToObject(root, "connection_count", srv->n_conns);
    for (struct conn *c = srv->conns; c; c = c->next) {
        cJSON *o = cJSON_CreateObject();
        const char *phase = c->draining || c->half_closed ? "closing"
                            : c->s.silent                 ? "silent"
                                                          : mgw_phase_name(c->s.phase);

        cJSON_AddNumberToObject(o, "id", (double)c->s.id);
        cJSON_AddStringToObject(o, "peer", c->peer);
        if (c->s.client_id >= 0 || c->s.phase == MGW_PHASE_READY)
            cJSON_AddNumberToObject(o, "client_id", c->s.client_id);
        else
            cJSON_AddNullToObject(o, "client_id");
        cJSON_AddStringToObject(o, "phase", phase);
        cJSON_AddNumberToObject(o, "version", c->s.version);
        cJSON_AddNumberToObject(o, "bytes_in", (double)c->s.bytes_in);
        cJSON_AddNumberToObject(o, "bytes_out", (double)c->s.bytes_out);
        cJSON_AddNumberToObject(o, "frames_in", (double)c->s.frames_in);
        cJSON_AddNumberToObject(o, "frames_out", (double)c->s.frames_out);
        cJSON_AddNumberToObject(o, "queued_out",
                                (double)(c->queued + (c->faults ? c->faults->len : 0)));
        cJSON_AddBoolToObject(o, "held", c->faults && c->faults->held);
        cJSON_AddNumberToObject(o, "connected_ms", (double)(now - c->connected_ms));
        if (c->up) {
            cJSON *up = cJSON_AddObjectToObject(o, "upstream");

            cJSON_AddStringToObject(up, "state",
                                    c->up->closed      ? "closed"
                                    : c->up->connected ? "connected"
                                                       : "connecting");
            cJSON_AddStringToObject(up, "local", c->up->local);
            cJSON_AddNumberToObject(up, "bytes_in", (double)c->up->bytes_in);
            cJSON_AddNumberToObject(up, "bytes_out", (double)c->up->bytes_out);
            cJSON_AddNumberToObject(up, "queued_out", (double)(c->up->queued + c->up->pending_len));
        }
        cJSON_AddItemToArray(conns, o);
    }
    return root;
}

/* The value of key in a query string ("since=12&kind=events"), or NULL; *len its length. */
static const char *query_get(const char *query, const char *key, size_t *len)
{
    size_t klen = strlen(key);

    for (const char *p = query; *p; p += strcspn(p, "&"), p += *p == '&') {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            *len = strcspn(p + klen + 1, "&");
            return p + klen + 1;
        }
    }
    return NULL;
}

/* GET /v1/journal?since=SEQ&kind=all|events|frames */
static void route_journal(struct mgw_server *srv, const struct mgw_http_request *req,
                          struct mgw_http_response *resp)
{
    enum mgw_journal_kind kind = MGW_JOURNAL_ALL;
    const char *v;
    int64_t since = 0;
    size_t n;

    if (strcmp(req->method, "GET") != 0) {
        method_not_allowed(resp, req, "GET");
        return;
    }
    v = query_get(req->query, "since", &n);
    if (v && ibw_parse_i64(v, n, 0, INT64_MAX, &since) < 0) {
        reply_error(resp, 400, "bad query \"%s\": since must be a sequence number", req->query);
        return;
    }
    v = query_get(req->query, "kind", &n);
    if (v && n == 6 && strncmp(v, "events", n) == 0) {
        kind = MGW_JOURNAL_EVENTS;
    } else if (v && n == 6 && strncmp(v, "frames", n) == 0) {
        kind = MGW_JOURNAL_FRAMES;
    } else if (v && !(n == 3 && strncmp(v, "all", n) == 0)) {
        reply_error(resp, 400, "bad query \"%s\": kind must be all, events or frames", req->query);
        return;
    }
    resp->status = 200;
    resp->body = mgw_journal_ring_json(srv->journal, (uint64_t)since, kind);
    if (!resp->body)
        reply_error(resp, 500, "out of memory");
}

/* --------------------------------------------------------------------------------------------
 * Rules
 */
static cJSON *rules_json(struct mgw_server *srv)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "rules");

    cJSON_AddStringToObject(root, "state", mgw_faults_state(srv->faults));
    for (unsigned i = 0; i < mgw_faults_count(srv->faults); i++)
        cJSON_AddItemToArray(arr, mgw_rule_to_json(mgw_faults_at(srv->faults, i)));
    return root;
}

/* PUT /v1/rules: {"rules": [...], "state": "..."} or a bare array. All or nothing. */
static void rules_replace(struct mgw_server *srv, const cJSON *doc, struct mgw_http_response *resp)
{
    const cJSON *arr = doc, *state = NULL, *it;
    struct mgw_rule **rules;
    struct mgw_err err;
    unsigned n, i = 0;

    if (cJSON_IsObject(doc)) {
        for (it = doc->child; it; it = it->next) {
            if (strcmp(it->string, "rules") != 0 && strcmp(it->string, "state") != 0) {
                reply_error(resp, 400, "body: $.%s: unknown key (expected rules, state)",
                            it->string);
                return;
            }
        }
        arr = cJSON_GetObjectItemCaseSensitive(doc, "rules");
        state = cJSON_GetObjectItemCaseSensitive(doc, "state");
        if (state) {
            struct mgw__jin in = { "body", &err };
            char *name = NULL;

            if (mgw__jin_name(&in, state, "$.state", &name) < 0) {
                reply_error(resp, 400, "%s", err.msg);
                return;
            }
            free(name);
        }
    }
    if (!cJSON_IsArray(arr)) {
        reply_error(resp, 400, "body: %s: expected an array of rules",
                    cJSON_IsObject(doc) ? "$.rules" : "$");
        return;
    }
    n = (unsigned)cJSON_GetArraySize(arr);
    rules = calloc(n ? n : 1, sizeof *rules);
    if (!rules) {
        reply_error(resp, 500, "out of memory");
        return;
    }
    cJSON_ArrayForEach(it, arr)
    {
        char path[48];

        snprintf(path, sizeof path, "%s[%u]", cJSON_IsObject(doc) ? "$.rules" : "$", i);
        rules[i] = mgw_rule_parse(it, "body", path, &err);
        if (!rules[i]) {
            for (unsigned k = 0; k < i; k++)
                mgw_rule_free(rules[k]);
            free(rules);
            reply_error(resp, 400, "%s", err.msg);
            return;
        }
        i++;
    }
    if (mgw_faults_replace(srv->faults, rules, n) < 0 ||
        (state && mgw_faults_set_state(srv->faults, state->valuestring) < 0)) {
        free(rules);
        reply_error(resp, 500, "out of memory");
        return;
    }
    free(rules);
    mgw_journal_eventf(srv->journal, 0, -1, "rules", "\"op\":\"replace\",\"count\":%u", n);
    reply_json(resp, 200, rules_json(srv));
}

static void route_rules(struct mgw_server *srv, const struct mgw_http_request *req,
                        struct mgw_http_response *resp)
{
    struct mgw_err err;
    struct mgw_rule *rule;
    cJSON *doc;

    if (strcmp(req->method, "GET") == 0) {
        reply_json(resp, 200, rules_json(srv));
    } else if (strcmp(req->method, "DELETE") == 0) {
        mgw_faults_replace(srv->faults, NULL, 0);
        mgw_journal_event(srv->journal, 0, -1, "rules", "\"op\":\"clear\"");
        reply_json(resp, 200, rules_json(srv));
    } else if (strcmp(req->method, "PUT") == 0) {
        if (!(doc = parse_body(req, resp)))
            return;
        rules_replace(srv, doc, resp);
        cJSON_Delete(doc);
    } else if (strcmp(req->method, "POST") == 0) {
        if (!(doc = parse_body(req, resp)))
            return;
        rule = mgw_rule_parse(doc, "body", "$", &err);
        cJSON_Delete(doc);
        if (!rule) {
            reply_error(resp, 400, "%s", err.msg);
            return;
        }
        if (mgw_faults_add(srv->faults, rule) < 0) {
            reply_error(resp, 500, "out of memory");
            return;
        }
        mgw_journal_eventf(srv->journal, 0, -1, "rules", "\"op\":\"add\",\"rule_id\":%" PRIu64,
                           rule->id);
        reply_json(resp, 201, mgw_rule_to_json(rule));
    } else {
        method_not_allowed(resp, req, "GET, PUT, POST or DELETE");
    }
}

static void route_rule(struct mgw_server *srv, const struct mgw_http_request *req,
                       struct mgw_http_response *resp, const char *id_text)
{
    const struct mgw_rule *found;
    struct mgw_rule *rule;
    struct mgw_err err;
    uint64_t id;
    cJSON *doc;

    if (ibw_parse_u64(id_text, strlen(id_text), 1, UINT64_MAX, &id) < 0) {
        reply_error(resp, 404, "no such rule: %s (rule ids are numbers)", id_text);
        return;
    }
    found = mgw_faults_get(srv->faults, id);
    if (!found) {
        reply_error(resp, 404, "no such rule: %" PRIu64, id);
        return;
    }
    if (strcmp(req->method, "GET") == 0) {
        reply_json(resp, 200, mgw_rule_to_json(found));
    } else if (strcmp(req->method, "DELETE") == 0) {
        mgw_faults_remove(srv->faults, id);
        mgw_journal_eventf(srv->journal, 0, -1, "rules", "\"op\":\"delete\",\"rule_id\":%" PRIu64,
                           id);
        reply_json(resp, 200, rules_json(srv));
    } else if (strcmp(req->method, "PUT") == 0) {
        if (!(doc = parse_body(req, resp)))
            return;
        rule = mgw_rule_parse(doc, "body", "$", &err);
        cJSON_Delete(doc);
        if (!rule) {
            reply_error(resp, 400, "%s", err.msg);
            return;
        }
        mgw_faults_update(srv->faults, id, rule);
        mgw_journal_eventf(srv->journal, 0, -1, "rules", "\"op\":\"update\",\"rule_id\":%" PRIu64,
                           id);
        reply_json(resp, 200, mgw_rule_to_json(mgw_faults_get(srv->faults, id)));
    } else {
        method_not_allowed(resp, req, "GET, PUT or DELETE");
    }
}

/* --------------------------------------------------------------------------------------------
 * Actions, connections, state, reset
 */
static cJSON *ok_json(const char *what, const char *name)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddBoolToObject(o, "ok", true);
    cJSON_AddStringToObject(o, what, name);
    return o;
}

/* Reads the optional {"down_ms": N, "how": "close"|"reset"} of a restart. */
static int restart_args(const struct mgw_http_request *req, struct mgw_http_response *resp,
                        uint64_t *down_ms, bool *reset)
{
    const cJSON *it;
    cJSON *doc;

    *down_ms = 5000;
    *reset = false;
    if (req->body_len == 0)
        return 0;
    if (!(doc = parse_body(req, resp)))
        return -1;
    if (!cJSON_IsObject(doc)) {
        reply_error(resp, 400, "body: $: expected an object");
        goto fail;
    }
    for (it = doc->child; it; it = it->next) {
        if (strcmp(it->string, "down_ms") == 0) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 86400000.0 ||
                it->valuedouble != (double)(uint64_t)it->valuedouble) {
                reply_error(resp, 400, "body: $.down_ms: expected an integer 0..86400000");
                goto fail;
            }
            *down_ms = (uint64_t)it->valuedouble;
        } else if (strcmp(it->string, "how") == 0) {
            if (!cJSON_IsString(it) ||
                (strcmp(it->valuestring, "close") != 0 && strcmp(it->valuestring, "reset") != 0)) {
                reply_error(resp, 400, "body: $.how: expected \"close\" or \"reset\"");
                goto fail;
            }
            *reset = strcmp(it->valuestring, "reset") == 0;
        } else {
            reply_error(resp, 400, "body: $.%s: unknown key (expected down_ms, how)", it->string);
            goto fail;
        }
    }
    cJSON_Delete(doc);
    return 0;
fail:
    cJSON_Delete(doc);
    return -1;
}

static void route_action(struct mgw_server *srv, const struct mgw_http_request *req,
                         struct mgw_http_response *resp, const char *name)
{
    uint64_t down_ms;
    bool reset;

    if (strcmp(req->method, "POST") != 0) {
        method_not_allowed(resp, req, "POST");
        return;
    }
    if (strcmp(name, "drop-all") == 0 || strcmp(name, "reset-all") == 0) {
        mgw__drop_all(srv, name[0] == 'r', name[0] == 'r' ? "admin: reset-all" : "admin: drop-all");
    } else if (strcmp(name, "refuse") == 0) {
        mgw__listener_set(srv, MGW_LISTEN_REFUSE, "admin");
    } else if (strcmp(name, "blackhole") == 0) {
        mgw__listener_set(srv, MGW_LISTEN_BLACKHOLE, "admin");
    } else if (strcmp(name, "accept") == 0) {
        int rc = mgw__listener_set(srv, MGW_LISTEN_NORMAL, "admin");

        if (rc < 0) {
            reply_error(resp, 409, "cannot listen again on port %d: %s", srv->api_port,
                        uv_strerror(rc));
            return;
        }
    } else if (strcmp(name, "restart") == 0) {
        if (restart_args(req, resp, &down_ms, &reset) < 0)
            return;
        mgw__restart(srv, down_ms, reset, "admin");
    } else if (strcmp(name, "release-all") == 0) {
        for (struct conn *c = srv->conns; c; c = c->next)
            mgw__conn_release(c);
    } else {
        reply_error(resp, 404,
                    "no such action: %s (known: drop-all, reset-all, restart, refuse, "
                    "blackhole, accept, release-all)",
                    name);
        return;
    }
    reply_json(resp, 200, ok_json("action", name));
}

static void route_connection(struct mgw_server *srv, const struct mgw_http_request *req,
                             struct mgw_http_response *resp, const char *rest)
{
    const char *slash = strchr(rest, '/');
    const char *op = slash ? slash + 1 : "";
    struct conn *c;
    uint64_t id;

    if (!slash || ibw_parse_u64(rest, (size_t)(slash - rest), 1, UINT64_MAX, &id) < 0) {
        reply_error(resp, 404, "no such endpoint: %s (use /v1/connections/ID/ACTION)", req->path);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        method_not_allowed(resp, req, "POST");
        return;
    }
    c = mgw__conn_find(srv, id);
    if (!c) {
        reply_error(resp, 404, "no such connection: %" PRIu64, id);
        return;
    }
    if (strcmp(op, "close") == 0) {
        mgw__conn_close(c, false, "admin: close");
    } else if (strcmp(op, "reset") == 0) {
        mgw__conn_close(c, true, "admin: reset");
    } else if (strcmp(op, "silence") == 0) {
        mgw_journal_event(srv->journal, c->s.id, c->s.client_id, "silenced", "\"why\":\"admin\"");
        mgw__conn_silence(c);
    } else if (strcmp(op, "release") == 0) {
        mgw__conn_release(c);
    } else {
        reply_error(resp, 404,
                    "no such connection action: %s (known: close, reset, silence, "
                    "release)",
                    op);
        return;
    }
    reply_json(resp, 200, ok_json("action", op));
}

static void route_state(struct mgw_server *srv, const struct mgw_http_request *req,
                        struct mgw_http_response *resp)
{
    struct mgw_err err;
    struct mgw__jin in = { "body", &err };
    const cJSON *state;
    cJSON *doc, *o;
    char esc[6 * MGW__NAME_MAX + 1], *name = NULL;
    int rc;

    if (strcmp(req->method, "GET") == 0) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "state", mgw_faults_state(srv->faults));
        reply_json(resp, 200, o);
        return;
    }
    if (strcmp(req->method, "PUT") != 0 && strcmp(req->method, "POST") != 0) {
        method_not_allowed(resp, req, "GET, PUT or POST");
        return;
    }
    if (!(doc = parse_body(req, resp)))
        return;
    state = cJSON_GetObjectItemCaseSensitive(doc, "state");
    if (!cJSON_IsObject(doc) || cJSON_GetArraySize(doc) != 1 || !state) {
        cJSON_Delete(doc);
        reply_error(resp, 400, "body: expected {\"state\": \"<name>\"}");
        return;
    }
    if (mgw__jin_name(&in, state, "$.state", &name) < 0) {
        cJSON_Delete(doc);
        reply_error(resp, 400, "%s", err.msg);
        return;
    }
    cJSON_Delete(doc);
    rc = mgw_faults_set_state(srv->faults, name);
    free(name);
    if (rc < 0) {
        reply_error(resp, 500, "out of memory");
        return;
    }
    mgw_journal_eventf(srv->journal, 0, -1, "state", "\"state\":\"%s\"",
                       mgw_json_escape(mgw_faults_state(srv->faults), esc, sizeof esc));
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", mgw_faults_state(srv->faults));
    reply_json(resp, 200, o);
}

/* POST /v1/reset: the start-up script again (or the script in the body), no connections,
 * ordinal 1 next, journal empty. A body that is not a valid script changes nothing. */
static void route_reset(struct mgw_server *srv, const struct mgw_http_request *req,
                        struct mgw_http_response *resp)
{
    struct mgw_script *given = NULL;

    if (strcmp(req->method, "POST") != 0) {
        method_not_allowed(resp, req, "POST");
        return;
    }
    if (req->body_len > 0) {
        struct mgw_err err;
        cJSON *doc = parse_body(req, resp);

        if (doc == NULL)
            return;
        given = mgw_script_from_json(doc, "body", NULL, &err);
        cJSON_Delete(doc);
        if (given == NULL) {
            reply_error(resp, strstr(err.msg, "out of memory") != NULL ? 500 : 400, "%s", err.msg);
            return;
        }
    }
    /* At once, no FIN linger: every disconnect is journaled before the journal is cleared. */
    while (srv->conns)
        mgw__conn_close_now(srv->conns, "admin: reset");
    if (mgw__reset_to(srv, given) < 0) {
        reply_error(resp, 500, "out of memory");
        return;
    }
    if (srv->restarting) {
        uv_timer_stop(&srv->restart_timer);
        srv->restarting = false;
    }
    mgw__listener_set(srv, srv->listen_mode, "reset");
    srv->next_conn_id = 0;
    mgw_replay_rewind(srv->replay);
    mgw_journal_clear(srv->journal);
    mgw_journal_eventf(srv->journal, 0, -1, "reset", "\"script\":\"%s\"",
                       given != NULL ? "body" : "start-up");
    reply_json(resp, 200, ok_json("reset", given != NULL ? "request body" : "start-up script"));
}

void mgw__admin_route(void *ctx, const struct mgw_http_request *req, struct mgw_http_response *resp)
{
    struct mgw_server *srv = ctx;
    const char *path = req->path;
    struct mgw_http_request get;

    /* HEAD is GET without the body (the listener drops the body). */
    if (strcmp(req->method, "HEAD") == 0) {
        get = *req;
        get.method = "GET";
        req = &get;
    }

    if (strcmp(path, "/v1/status") == 0) {
        if (strcmp(req->method, "GET") != 0)
            method_not_allowed(resp, req, "GET");
        else
            reply_json(resp, 200, status_json(srv));
    } else if (strcmp(path, "/v1/journal") == 0) {
        route_journal(srv, req, resp);
    } else if (strcmp(path, "/v1/rules") == 0) {
        route_rules(srv, req, resp);
    } else if (strncmp(path, "/v1/rules/", 10) == 0) {
        route_rule(srv, req, resp, path + 10);
    } else if (strncmp(path, "/v1/actions/", 12) == 0) {
        route_action(srv, req, resp, path + 12);
    } else if (strncmp(path, "/v1/connections/", 16) == 0) {
        route_connection(srv, req, resp, path + 16);
    } else if (strcmp(path, "/v1/state") == 0) {
        route_state(srv, req, resp);
    } else if (strcmp(path, "/v1/reset") == 0) {
        route_reset(srv, req, resp);
    } else {
        reply_error(resp, 404, "no such endpoint: %s", path);
    }
}
