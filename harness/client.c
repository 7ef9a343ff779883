/* An external client run as a black box ("client" scenarios, docs/external-clients.md): the
 * command with its placeholders filled, run by /bin/sh in a process group of its own, its
 * stdout and stderr kept (the last OUTPUT_CAP bytes), its exit status noted. Signals go to that
 * process group only: the client and whatever it started, nothing else. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "harness.h"
#include "internal.h"

#define OUTPUT_CAP (16u << 10)
/* The shell itself outlives a SIGTERM to the group (a caught signal waits for the command in
 * the foreground, and is default again in the programs it starts): the status is then the
 * command's own, not the shell's death by the signal. */
#define TRAP "trap : TERM INT HUP; "

extern char **environ;

struct harness__client {
    uv_process_t proc;
    uv_pipe_t out[2]; /* the child's stdout, stderr */
    unsigned open_handles;
    bool exited, closing;
    int status; /* exit status, 128 + N for signal N */
    int pid;
    uint64_t start_ns, end_ns;
    char *buf; /* the output, at most OUTPUT_CAP bytes: the newest kept */
    size_t len;
};

/* ---- the command line ------------------------------------------------------------------------ */

static bool put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t want = (*len + n + 1) * 2;
        char *p = realloc(*out, want);

        if (p == NULL)
            return false;
        *out = p;
        *cap = want;
    }
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
    return true;
}

char *harness__client_command(const char *tmpl, const struct harness__client_vars *v)
{
    char port[16], admin[16], seed[32], *dir = NULL, *out = NULL;
    const char *values[5],
        *names[5] = { "{host}", "{port}", "{admin_port}", "{seed}", "{scenario_dir}" };
    size_t len = 0, cap = 0;
    bool ok = true;

    snprintf(port, sizeof port, "%d", v->port);
    snprintf(admin, sizeof admin, "%d", v->admin_port);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)v->seed);
    if ((dir = harness_shell_quote(v->scenario_dir != NULL ? v->scenario_dir : ".")) == NULL)
        return NULL;
    values[0] = v->host;
    values[1] = port;
    values[2] = admin;
    values[3] = seed;
    values[4] = dir;
    ok = put(&out, &len, &cap, "", 0);
    while (ok && *tmpl != '\0') {
        unsigned k = 0;

        while (k < 5 && strncmp(tmpl, names[k], strlen(names[k])) != 0)
            k++;
        if (k < 5) {
            ok = put(&out, &len, &cap, values[k], strlen(values[k]));
            tmpl += strlen(names[k]);
        } else {
            ok = put(&out, &len, &cap, tmpl, 1);
            tmpl++;
        }
    }
    free(dir);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- the process ----------------------------------------------------------------------------- */

static void keep_output(struct harness__client *c, const char *p, size_t n)
{
    if (n >= OUTPUT_CAP) { /* only the newest bytes are kept */
        p += n - OUTPUT_CAP;
        n = OUTPUT_CAP;
    }
    if (c->len + n > OUTPUT_CAP) {
        size_t drop = c->len + n - OUTPUT_CAP;

        memmove(c->buf, c->buf + drop, c->len - drop);
        c->len -= drop;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[4096];

    (void)h;
    (void)suggested;
    *buf = uv_buf_init(chunk, sizeof chunk); /* copied out in on_read before the next read */
}

static void on_closed(uv_handle_t *h)
{
    struct harness__client *c = h->data;

    c->open_handles--;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct harness__client *c = s->data;

    if (n > 0)
        keep_output(c, buf->base, (size_t)n);
    else if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_closed); /* EOF: the child (and its children) closed it */
}

static void close_handles(struct harness__client *c);

static void on_client_exit(uv_process_t *p, int64_t status, int sig)
{
    struct harness__client *c = p->data;

    c->exited = true;
    c->status = sig != 0 ? 128 + sig : (int)status;
    c->end_ns = uv_hrtime();
    if (c->closing)
        close_handles(c);
}

uint64_t harness__client_ms(const struct harness__client *c)
{
    return ((c->exited ? c->end_ns : uv_hrtime()) - c->start_ns) / 1000000u;
}

/* The environment plus MOCKGW_HOST, MOCKGW_PORT and MOCKGW_ADMIN_PORT (replacing any). */
static char **make_env(const struct harness__client_vars *v, char *extra[3])
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    if ((env = calloc(n + 4, sizeof *env)) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MOCKGW_HOST=", 12) != 0 &&
            strncmp(environ[i], "MOCKGW_PORT=", 12) != 0 &&
            strncmp(environ[i], "MOCKGW_ADMIN_PORT=", 18) != 0)
            env[k++] = environ[i];
    snprintf(extra[0], 96, "MOCKGW_HOST=%s", v->host);
    snprintf(extra[1], 96, "MOCKGW_PORT=%d", v->port);
    snprintf(extra[2], 96, "MOCKGW_ADMIN_PORT=%d", v->admin_port);
    env[k++] = extra[0];
    env[k++] = extra[1];
    env[k++] = extra[2];
    env[k] = NULL;
    return env;
}

int harness__client_start(uv_loop_t *loop, const char *command,
                          const struct harness__client_vars *v, struct harness__client **out)
{
    struct harness__client *c;
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    char e0[96], e1[96], e2[96], *extra[3] = { e0, e1, e2 }, **env;
    char sh[] = "/bin/sh", dash_c[] = "-c", *cmd = malloc(strlen(command) + sizeof TRAP);
    char *args[] = { sh, dash_c, cmd, NULL };
    int rc;

    *out = NULL;
    if (cmd != NULL)
        snprintf(cmd, strlen(command) + sizeof TRAP, "%s%s", TRAP, command);
    if (cmd == NULL || (c = calloc(1, sizeof *c)) == NULL) {
        free(cmd);
        return UV_ENOMEM;
    }
    if ((c->buf = malloc(OUTPUT_CAP)) == NULL || (env = make_env(v, extra)) == NULL) {
        free(c->buf);
        free(c);
        free(cmd);
        return UV_ENOMEM;
    }
    c->status = -1;
    memset(stdio, 0, sizeof stdio);
    stdio[0].flags = UV_IGNORE; /* /dev/null */
    for (unsigned i = 0; i < 2; i++) {
        uv_pipe_init(loop, &c->out[i], 0);
        c->out[i].data = c;
        c->open_handles++;
        stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[i + 1].data.stream = (uv_stream_t *)&c->out[i];
    }
    memset(&po, 0, sizeof po);
    po.file = args[0];
    po.args = args;
    po.env = env;
    po.exit_cb = on_client_exit;
    po.stdio = stdio;
    po.stdio_count = 3;
    po.flags = UV_PROCESS_DETACHED; /* its own session and process group: signalled as one */
    c->proc.data = c;
    c->start_ns = uv_hrtime();
    rc = uv_spawn(loop, &c->proc, &po);
    free(env);
    free(cmd);
    c->open_handles++; /* the process handle is initialised even when the spawn failed */
    *out = c;
    if (rc < 0) {
        c->exited = true;
        harness__client_close(c);
        return rc;
    }
    c->pid = c->proc.pid;
    for (unsigned i = 0; i < 2; i++)
        uv_read_start((uv_stream_t *)&c->out[i], on_alloc, on_read);
    return 0;
}

bool harness__client_exited(const struct harness__client *c)
{
    return c->exited;
}

int harness__client_status(const struct harness__client *c)
{
    return c->status;
}

void harness__client_signal(struct harness__client *c, int sig)
{
    if (c->pid > 0)
        kill(-c->pid, sig); /* its process group (it leads it): the shell and its children */
}

static void close_handles(struct harness__client *c)
{
    uv_close((uv_handle_t *)&c->proc, on_closed);
    for (unsigned i = 0; i < 2; i++)
        if (!uv_is_closing((uv_handle_t *)&c->out[i]))
            uv_close((uv_handle_t *)&c->out[i], on_closed);
}

void harness__client_close(struct harness__client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->exited) {
        close_handles(c);
        return;
    }
    /* Last resort (the caller asked nicely first); the handles close once libuv has reaped it,
     * so that no zombie is left behind. */
    harness__client_signal(c, SIGKILL);
}

bool harness__client_closed(const struct harness__client *c)
{
    return c->closing && c->open_handles == 0;
}

bool harness__client_output_done(const struct harness__client *c)
{
    return uv_is_closing((const uv_handle_t *)&c->out[0]) &&
           uv_is_closing((const uv_handle_t *)&c->out[1]);
}

char *harness__client_output(const struct harness__client *c)
{
    char *s = malloc(c->len + 1);

    if (s != NULL) {
        memcpy(s, c->buf, c->len);
        s[c->len] = '\0';
        for (size_t i = 0; i < c->len; i++)
            if (s[i] == '\0')
                s[i] = ' ';
    }
    return s;
}

void harness__client_free(struct harness__client *c)
{
    if (c == NULL)
        return;
    free(c->buf);
    free(c);
}
