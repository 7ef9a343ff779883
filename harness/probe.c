/* The probe: the core's live status of any gateway (docs/harness.md, "probe"). A pool of one
 * connection acquires (and so validates) a connection and gives it back; the answer is the
 * pool's own status JSON and score. Served, the same answers come over HTTP at
 * /api/v1/ib/resilience, /api/v1/ib/health and /api/v1/ib/status while a fresh acquire runs
 * every interval. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

#define TICK_MS  10
#define CLOSE_MS 5000

void harness_probe_opts_init(struct harness_probe_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 4002;
    o->client_id = 99;
    o->timeout_ms = 10000;
    o->threshold = 75;
    o->interval_ms = 5000;
}

/* What the probe's pool and its last acquire are. */
struct prober {
    uv_loop_t *loop;
    struct harness_probe_opts o;
    char endpoint[96];
    struct ibcore_breakers *reg;
    struct ibcore_pool *pool;
    bool pool_closed, reg_closed;
    bool in_flight;
    int last_status; /* 1: none yet */
    uint64_t last_ms, last_at;
};

static void on_pool_closed(void *data)
{
    ((struct prober *)data)->pool_closed = true;
}

static void on_reg_closed(void *data)
{
    ((struct prober *)data)->reg_closed = true;
}

static int prober_init(struct prober *pr, uv_loop_t *loop, const struct harness_probe_opts *o)
{
    struct ibcore_pool_config cfg;
    struct ibcore_breaker_config bc;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;

    memset(pr, 0, sizeof *pr);
    pr->loop = loop;
    pr->o = *o;
    pr->last_status = 1;
    if (o->host == NULL || o->port < 1 || o->port > 65535 ||
        (uv_ip4_addr(o->host, o->port, &a4) != 0 && uv_ip6_addr(o->host, o->port, &a6) != 0))
        return UV_EINVAL;
    snprintf(pr->endpoint, sizeof pr->endpoint, strchr(o->host, ':') ? "[%s]:%d" : "%s:%d", o->host,
             o->port);
    ibcore_breaker_config_init(&bc);
    ibcore_pool_config_init(&cfg);
    cfg.host = o->host;
    cfg.port = o->port;
    cfg.max_size = 1;
    cfg.client_id_first = o->client_id;
    cfg.connect_timeout_ms = o->timeout_ms;
    if ((pr->reg = ibcore_breakers_new(loop, &bc, NULL, NULL)) == NULL)
        return UV_ENOMEM;
    if ((pr->pool = ibcore_pool_new(loop, &cfg, pr->reg)) == NULL) {
        pr->pool_closed = true;
        ibcore_breakers_close(pr->reg, on_reg_closed, pr);
        return UV_EINVAL;
    }
    return 0;
}

static void prober_close(struct prober *pr)
{
    if (pr->pool != NULL)
        ibcore_pool_close(pr->pool, on_pool_closed, pr);
    pr->pool = NULL;
    if (pr->reg != NULL)
        ibcore_breakers_close(pr->reg, on_reg_closed, pr);
    pr->reg = NULL;
}

static void on_acquired(struct ibcore_conn *conn, int status, void *data)
{
    struct prober *pr = data;

    uv_update_time(pr->loop);
    pr->in_flight = false;
    pr->last_status = status;
    pr->last_ms = uv_now(pr->loop) - pr->last_at;
    if (conn != NULL && pr->pool != NULL)
        ibcore_pool_release(pr->pool, conn);
}

static void prober_acquire(struct prober *pr)
{
    int rc;

    if (pr->in_flight || pr->pool == NULL)
        return;
    uv_update_time(pr->loop);
    pr->last_at = uv_now(pr->loop);
    pr->in_flight = true;
    rc = ibcore_pool_acquire(pr->pool, pr->last_at + pr->o.timeout_ms, on_acquired, pr);
    if (rc < 0) {
        pr->in_flight = false;
        pr->last_status = rc;
        pr->last_ms = 0;
    }
}

/* The status JSON with "probe": {gateway, acquire, acquire_ms, error, threshold, healthy}. */
static char *prober_status(struct prober *pr, unsigned *score_out)
{
    struct ibcore_score sc;
    char *json = ibcore_pool_status_json(pr->pool), *out;
    cJSON *doc = json != NULL ? cJSON_Parse(json) : NULL, *p;
    unsigned score = ibcore_pool_score(pr->pool, &sc) == 0 ? sc.total : 0;

    free(json);
    if (score_out != NULL)
        *score_out = score;
    if (doc == NULL || (p = cJSON_AddObjectToObject(doc, "probe")) == NULL) {
        cJSON_Delete(doc);
        return NULL;
    }
    cJSON_AddStringToObject(p, "gateway", pr->endpoint);
    if (pr->last_status == 1) {
        cJSON_AddNullToObject(p, "acquire");
        cJSON_AddNullToObject(p, "acquire_ms");
        cJSON_AddNullToObject(p, "error");
    } else {
        cJSON_AddStringToObject(p, "acquire",
                                harness_status_name(harness_status_of(pr->last_status)));
        cJSON_AddNumberToObject(p, "acquire_ms", (double)pr->last_ms);
        if (pr->last_status == 0)
            cJSON_AddNullToObject(p, "error");
        else
            cJSON_AddStringToObject(p, "error", ibcore_strerror(pr->last_status));
    }
    cJSON_AddNumberToObject(p, "threshold", pr->o.threshold);
    cJSON_AddBoolToObject(p, "healthy", score >= pr->o.threshold);
    out = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return out;
}

/* ---- once ------------------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void on_tick_closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

int harness_probe_once(uv_loop_t *loop, const struct harness_probe_opts *o,
                       struct harness_probe_result *res)
{
    struct prober pr;
    uv_timer_t tick;
    bool tick_closed = false;
    uint64_t deadline;
    int rc;

    memset(res, 0, sizeof *res);
    if ((rc = prober_init(&pr, loop, o)) < 0) {
        while (!pr.reg_closed && pr.reg != NULL)
            uv_run(loop, UV_RUN_ONCE);
        return rc;
    }
    uv_timer_init(loop, &tick);
    tick.data = &tick_closed;
    uv_timer_start(&tick, on_tick, TICK_MS, TICK_MS);
    deadline = uv_hrtime() / 1000000u + o->timeout_ms + 1000;
    prober_acquire(&pr);
    while (pr.in_flight && uv_hrtime() / 1000000u < deadline)
        uv_run(loop, UV_RUN_ONCE);
    if (pr.in_flight) { /* cannot happen (the pool keeps its deadline); closing ends it anyway */
        pr.last_status = UV_ETIMEDOUT;
        pr.last_ms = o->timeout_ms;
    }
    res->acquire_status = pr.last_status;
    res->acquire_ms = pr.last_ms;
    res->status_json = prober_status(&pr, &res->score);
    res->healthy = res->score >= o->threshold;
    prober_close(&pr);
    deadline = uv_hrtime() / 1000000u + CLOSE_MS;
    while ((!pr.pool_closed || !pr.reg_closed) && uv_hrtime() / 1000000u < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, on_tick_closed);
    while (!tick_closed)
        uv_run(loop, UV_RUN_ONCE);
    return pr.pool_closed && pr.reg_closed ? 0 : UV_ETIMEDOUT;
}

void harness_probe_result_clear(struct harness_probe_result *res)
{
    free(res->status_json);
    memset(res, 0, sizeof *res);
}

/* ---- serving --------------------------------------------------------------------------------- */

struct harness_probe {
    struct prober pr;
    struct harness_httpd *httpd;
    uv_timer_t refresh;
    bool stopping, httpd_closed, refresh_closed, done;
    void (*cb)(void *data);
    void *data;
};

static char *health_json(struct harness_probe *p, unsigned score, bool healthy)
{
    char buf[256];

    snprintf(buf, sizeof buf,
             "{\"status\":\"%s\",\"score\":%u,\"threshold\":%u,\"gateway\":\"%s\"}",
             healthy ? "healthy" : "unhealthy", score, p->pr.o.threshold, p->pr.endpoint);
    return harness__strdup(buf);
}

/* {"status": "success", "data": {"overall_resilience_score": N, ...}}: where monitoring scripts
 * written for the seed project's endpoint look for the score. */
static char *status_json(struct harness_probe *p, const char *full, unsigned score)
{
    cJSON *in = cJSON_Parse(full), *doc = cJSON_CreateObject(), *data;
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(in, "score");
    const cJSON *br = cJSON_GetObjectItemCaseSensitive(in, "breaker");
    const cJSON *probe = cJSON_GetObjectItemCaseSensitive(in, "probe");
    char *out = NULL;

    if (in != NULL && doc != NULL && cJSON_AddStringToObject(doc, "status", "success") != NULL &&
        (data = cJSON_AddObjectToObject(doc, "data")) != NULL) {
        cJSON_AddNumberToObject(data, "overall_resilience_score", score);
        cJSON_AddBoolToObject(data, "healthy", score >= p->pr.o.threshold);
        cJSON_AddNumberToObject(data, "threshold", p->pr.o.threshold);
        cJSON_AddStringToObject(data, "gateway", p->pr.endpoint);
        if (comp != NULL)
            cJSON_AddItemToObject(data, "components", cJSON_Duplicate(comp, true));
        if (br != NULL)
            cJSON_AddItemToObject(data, "breaker", cJSON_Duplicate(br, true));
        if (probe != NULL)
            cJSON_AddItemToObject(data, "probe", cJSON_Duplicate(probe, true));
        out = cJSON_PrintUnformatted(doc);
    }
    cJSON_Delete(in);
    cJSON_Delete(doc);
    return out;
}

static int on_request(const char *method, const char *path, char **body, void *data)
{
    struct harness_probe *p = data;
    unsigned score = 0;
    char *full;
    int status = 200;

    (void)method;
    if (strcmp(path, "/api/v1/ib/resilience") != 0 && strcmp(path, "/api/v1/ib/health") != 0 &&
        strcmp(path, "/api/v1/ib/status") != 0) {
        *body = harness__strdup("{\"error\":\"not found\",\"endpoints\":[\"/api/v1/ib/resilience\","
                                "\"/api/v1/ib/health\",\"/api/v1/ib/status\"]}");
        return 404;
    }
    if (p->pr.pool == NULL || (full = prober_status(&p->pr, &score)) == NULL) {
        *body = harness__strdup("{\"error\":\"the status could not be read\"}");
        return 503;
    }
    if (strcmp(path, "/api/v1/ib/resilience") == 0) {
        *body = full;
        return 200;
    }
    if (strcmp(path, "/api/v1/ib/health") == 0) {
        *body = health_json(p, score, score >= p->pr.o.threshold);
        status = score >= p->pr.o.threshold ? 200 : 503;
    } else {
        *body = status_json(p, full, score);
    }
    free(full);
    return status;
}

static void on_refresh(uv_timer_t *t)
{
    struct harness_probe *p = t->data;

    prober_acquire(&p->pr);
}

static void maybe_done(struct harness_probe *p)
{
    if (!p->stopping || p->done || !p->httpd_closed || !p->refresh_closed || !p->pr.pool_closed ||
        !p->pr.reg_closed)
        return;
    p->done = true;
    if (p->cb != NULL)
        p->cb(p->data);
    free(p);
}

static void on_httpd_closed(void *data)
{
    struct harness_probe *p = data;

    p->httpd_closed = true;
    maybe_done(p);
}

static void on_refresh_closed(uv_handle_t *h)
{
    struct harness_probe *p = h->data;

    p->refresh_closed = true;
    maybe_done(p);
}

static void on_serve_pool_closed(void *data)
{
    struct harness_probe *p = data;

    p->pr.pool_closed = true;
    maybe_done(p);
}

static void on_serve_reg_closed(void *data)
{
    struct harness_probe *p = data;

    p->pr.reg_closed = true;
    maybe_done(p);
}

int harness_probe_serve(uv_loop_t *loop, const struct harness_probe_opts *o, const char *host,
                        int port, struct harness_probe **out, struct harness_err *err)
{
    struct harness_probe *p = calloc(1, sizeof *p);
    int rc;

    if (p == NULL) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return UV_ENOMEM;
    }
    if ((rc = prober_init(&p->pr, loop, o)) < 0) {
        snprintf(err->msg, sizeof err->msg, "%s:%d: %s", o->host != NULL ? o->host : "?", o->port,
                 rc == UV_EINVAL ? "not a usable gateway address" : uv_strerror(rc));
        while (p->pr.reg != NULL && !p->pr.reg_closed)
            uv_run(loop, UV_RUN_ONCE);
        free(p);
        return rc;
    }
    if ((rc = harness_httpd_start(loop, host, port, on_request, p, &p->httpd, err)) < 0) {
        p->pr.pool_closed = p->pr.reg_closed = false;
        prober_close(&p->pr);
        while (!p->pr.pool_closed || !p->pr.reg_closed)
            uv_run(loop, UV_RUN_ONCE);
        uv_run(loop, UV_RUN_NOWAIT); /* the failed listener's close */
        free(p);
        return rc;
    }
    uv_timer_init(loop, &p->refresh);
    p->refresh.data = p;
    uv_timer_start(&p->refresh, on_refresh, 0, o->interval_ms > 0 ? o->interval_ms : 5000);
    *out = p;
    return 0;
}

int harness_probe_port(const struct harness_probe *p)
{
    return harness_httpd_port(p->httpd);
}

void harness_probe_stop(struct harness_probe *p, void (*cb)(void *data), void *data)
{
    if (p == NULL || p->stopping)
        return;
    p->stopping = true;
    p->cb = cb;
    p->data = data;
    uv_close((uv_handle_t *)&p->refresh, on_refresh_closed);
    harness_httpd_close(p->httpd, on_httpd_closed, p);
    if (p->pr.pool != NULL)
        ibcore_pool_close(p->pr.pool, on_serve_pool_closed, p);
    p->pr.pool = NULL;
    if (p->pr.reg != NULL)
        ibcore_breakers_close(p->pr.reg, on_serve_reg_closed, p);
    p->pr.reg = NULL;
}
