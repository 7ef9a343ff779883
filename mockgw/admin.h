/* Admin HTTP listener (private to libmockgw): HTTP/1.1 with keep-alive, parsed by http-parser.
 *
 * The listener knows nothing about routes: every complete request goes to the handler, which
 * fills a response. Malformed HTTP, a body over the cap, or headers over the cap get a 400/413
 * JSON error from the listener itself and that connection is closed; every other admin client
 * and the gateway keep being served.
 */
#ifndef MGW_ADMIN_H
#define MGW_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mockgw.h"

#define MGW_ADMIN_MAX_BODY   (1u << 20) /* 1 MiB */
#define MGW_ADMIN_MAX_HEADER (16u << 10)

struct mgw_http_request {
    const char *method; /* "GET", "PUT", ... */
    const char *path;   /* "/v1/status" (no query), NUL-terminated */
    const char *query;  /* "since=10" or "" */
    const char *body;   /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    const char *content_type; /* "" when absent */
};

struct mgw_http_response {
    int status;               /* 200, 404, ... */
    char *body;               /* malloc'd; the listener frees it after writing */
    const char *content_type; /* NULL = "application/json" */
};

/* Fills resp. Called synchronously on the loop; must not block. */
typedef void (*mgw_admin_handler)(void *ctx, const struct mgw_http_request *req,
                                  struct mgw_http_response *resp);

struct mgw_admin;

/* NULL when loop or handler is NULL, or out of memory. Release with mgw_admin_close(), whether
 * or not the listener ever listened. */
struct mgw_admin *mgw_admin_new(uv_loop_t *loop, mgw_admin_handler handler, void *ctx);

/* Binds host:port (0 = any free port) and listens. 0, or a negative libuv code with err->msg
 * "admin 127.0.0.1:4080: address already in use". */
int mgw_admin_listen(struct mgw_admin *a, const char *host, int port, struct mgw_err *err);

/* The bound port, or -1 before a successful listen. */
int mgw_admin_port(const struct mgw_admin *a);

/* Closes the listener and every admin connection; frees a in the last close callback, then
 * calls cb(data) exactly once (never before mgw_admin_close() returns). Safe from inside the
 * handler; a second call is ignored (its cb never fires). */
void mgw_admin_close(struct mgw_admin *a, void (*cb)(void *data), void *data);

/* Number of admin connections currently open (at most 64; more are accepted and closed). */
size_t mgw_admin_conn_count(const struct mgw_admin *a);

/* Closes a connection that receives nothing for timeout_ms (0 restores the default, 30 s).
 * Applies from the next timer restart of each connection. */
void mgw_admin_set_idle_timeout(struct mgw_admin *a, uint64_t timeout_ms);

/* A JSON error body {"error": msg} (malloc'd), for handlers and the listener alike. */
char *mgw_admin_error_body(const char *msg);

#endif /* MGW_ADMIN_H */
