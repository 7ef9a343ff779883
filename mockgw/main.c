/* mockgw: the command line. Parses flags, runs the server until SIGINT/SIGTERM.
 * Exit codes: 0 clean stop, 1 runtime failure (port in use, ...), 2 bad usage or bad file. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "fault.h"
#include "ibwire.h"
#include "mockgw.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static const char USAGE[] =
    "usage: mockgw [options]\n"
    "\n"
    "A fake Interactive Brokers Gateway speaking the TWS API socket protocol.\n"
    "\n"
    "  --listen HOST:PORT         API listener (default 127.0.0.1:4002; port 0 picks one)\n"
    "  --admin HOST:PORT|off      admin HTTP API (default 127.0.0.1:4080; port 0 picks one)\n"
    "  --script FILE              fault script: settings and rules (docs/script-format.md)\n"
    "  --fault PRESET             add a fault preset, repeatable: silent,\n"
    "                             silent-after-handshake, silent-after-ready,\n"
    "                             refuse-client-id=N[,M...], drop-after-ready[=MS],\n"
    "                             reset-after-ready[=MS], half-ready, refuse, blackhole,\n"
    "                             delay=MS, restart-every=MS:DOWN_MS\n"
    "  --server-version N         highest server version offered, 100..200 (default 178)\n"
    "  --accounts A[,B...]        managed accounts (default DU1234567)\n"
    "  --seed N                   seed for every synthetic value (default 1)\n"
    "  --fixtures FILE            contracts/accounts table (default: built in)\n"
    "  --log FILE|-               JSON-lines journal of every frame and event\n"
    "  --ready-file FILE          write {\"api\":PORT,\"admin\":PORT,\"pid\":PID} once ready\n"
    "  --next-valid-id N          first nextValidId (default 1)\n"
    "  --max-clients N            API clients at once, 0 = no limit (default 32)\n"
    "  --allow-duplicate-client-ids  do not answer 326 to a client id already in use\n"
    "  --no-time-pacing           answer every reqCurrentTime (default: at most 1 per second)\n"
    "  --handshake-timeout-ms MS  close clients not ready within MS (default 30000)\n"
    "  --max-out-buffer BYTES     unread output per client before it is dropped (default "
    "4194304)\n"
    "  --upstream HOST:PORT       proxy mode: relay every client to this gateway, faults applied\n"
    "                             at the same events (docs/proxy.md)\n"
    "  --upstream-timeout-ms MS   upstream connect deadline (default 5000)\n"
    "  --record FILE              write the decoded conversation as JSON lines (truncates FILE)\n"
    "  --replay FILE              answer requests recorded in FILE as recorded (fake mode)\n"
    "  -h, --help                 this text\n"
    "  -V, --version              print the version\n"
    "\n"
    "Once both listeners are up it prints one line and flushes stdout:\n"
    "  mockgw ready api=HOST:PORT admin=HOST:PORT\n"
    "Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime failure (e.g. port in use),\n"
    "2 on bad usage or a bad file.\n";

enum {
    OPT_LISTEN = 256,
    OPT_ADMIN,
    OPT_SERVER_VERSION,
    OPT_ACCOUNTS,
    OPT_SEED,
    OPT_FIXTURES,
    OPT_LOG,
    OPT_READY_FILE,
    OPT_NEXT_VALID_ID,
    OPT_MAX_CLIENTS,
    OPT_ALLOW_DUP_IDS,
    OPT_NO_TIME_PACING,
    OPT_HANDSHAKE_TIMEOUT,
    OPT_MAX_OUT_BUFFER,
    OPT_SCRIPT,
    OPT_FAULT,
    OPT_UPSTREAM,
    OPT_UPSTREAM_TIMEOUT,
    OPT_RECORD,
    OPT_REPLAY,
    OPT_END
};

static const struct option options[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "admin", required_argument, NULL, OPT_ADMIN },
    { "server-version", required_argument, NULL, OPT_SERVER_VERSION },
    { "accounts", required_argument, NULL, OPT_ACCOUNTS },
    { "seed", required_argument, NULL, OPT_SEED },
    { "fixtures", required_argument, NULL, OPT_FIXTURES },
    { "log", required_argument, NULL, OPT_LOG },
    { "ready-file", required_argument, NULL, OPT_READY_FILE },
    { "next-valid-id", required_argument, NULL, OPT_NEXT_VALID_ID },
    { "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
    { "allow-duplicate-client-ids", no_argument, NULL, OPT_ALLOW_DUP_IDS },
    { "no-time-pacing", no_argument, NULL, OPT_NO_TIME_PACING },
    { "handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
    { "max-out-buffer", required_argument, NULL, OPT_MAX_OUT_BUFFER },
    { "script", required_argument, NULL, OPT_SCRIPT },
    { "fault", required_argument, NULL, OPT_FAULT },
    { "upstream", required_argument, NULL, OPT_UPSTREAM },
    { "upstream-timeout-ms", required_argument, NULL, OPT_UPSTREAM_TIMEOUT },
    { "record", required_argument, NULL, OPT_RECORD },
    { "replay", required_argument, NULL, OPT_REPLAY },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

#define MAX_PRESETS 64

struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    struct mgw_server *srv;
    const char *ready_file;
    const char *script_path;
    const char *presets[MAX_PRESETS];
    unsigned n_presets;
    char upstream_host[256];
    bool given[OPT_END]; /* flags on the command line win over the script's settings */
};

/* Whole-string unsigned decimal in [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    return ibw_parse_u64(s, strlen(s), min, max, out);
}

static const char *v6_open(const char *host)
{
    return strchr(host, ':') != NULL ? "[" : "";
}

static const char *v6_close(const char *host)
{
    return strchr(host, ':') != NULL ? "]" : "";
}

static int bad_value(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "mockgw: --%s \"%s\": %s\n", flag, value, why);
    return -1;
}

/* "HOST:PORT" or "[V6]:PORT"; host points into a static copy owned by the caller's buffer. */
static int parse_host_port(const char *flag, const char *arg, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(arg, ':');
    const char *h = arg;
    unsigned char addr[16];
    size_t hlen;
    uint64_t p;

    if (!colon)
        return bad_value(flag, arg, "expected HOST:PORT");
    hlen = (size_t)(colon - arg);
    if (hlen >= 2 && arg[0] == '[' && colon[-1] == ']') {
        h = arg + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= cap)
        return bad_value(flag, arg, "expected HOST:PORT with a numeric host");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (uv_inet_pton(AF_INET, host, addr) != 0 && uv_inet_pton(AF_INET6, host, addr) != 0)
        return bad_value(flag, arg, "not a numeric IPv4/IPv6 address");
    if (parse_u64(colon + 1, 0, 65535, &p) < 0)
        return bad_value(flag, arg, "port must be a number 0..65535");
    *port = (int)p;
    return 0;
}

static int parse_args(int argc, char **argv, struct mgw_config *cfg, struct app *app,
                      char *listen_host, char *admin_host, size_t cap)
{
    uint64_t v;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hV", options, NULL)) != -1) {
        const char *name = NULL;

        for (const struct option *o = options; o->name; o++)
            if (o->val == c)
                name = o->name;
        if (c >= OPT_LISTEN && c < OPT_END)
            app->given[c] = true;
        /* An empty file name would otherwise read "mockgw: : No such file or directory". */
        if ((c == OPT_SCRIPT || c == OPT_FIXTURES || c == OPT_LOG || c == OPT_READY_FILE ||
             c == OPT_RECORD || c == OPT_REPLAY) &&
            optarg[0] == '\0')
            return bad_value(name, optarg, "expected a file name");
        switch (c) {
        case 'h':
            fputs(USAGE, stdout);
            exit(0);
        case 'V':
            printf("mockgw %s (server versions %d..%d, default %d)\n", MGW_VERSION, IBW_MIN_VERSION,
                   IBW_MAX_VERSION, IBW_DEFAULT_VERSION);
            exit(0);
        case OPT_LISTEN:
            if (parse_host_port(name, optarg, listen_host, cap, &cfg->listen_port) < 0)
                return -1;
            cfg->listen_host = listen_host;
            break;
        case OPT_ADMIN:
            if (strcmp(optarg, "off") == 0) {
                cfg->admin_enabled = false;
                break;
            }
            if (parse_host_port(name, optarg, admin_host, cap, &cfg->admin_port) < 0)
                return -1;
            cfg->admin_host = admin_host;
            cfg->admin_enabled = true; /* the last --admin wins, "off" included */
            break;
        case OPT_SERVER_VERSION:
            if (parse_u64(optarg, IBW_MIN_VERSION, IBW_MAX_VERSION, &v) < 0)
                return bad_value(name, optarg,
                                 "must be a number 100..200 (201 and up is IB's protobuf "
                                 "protocol, which mockgw does not speak)");
            cfg->server_version = (int)v;
            break;
        case OPT_ACCOUNTS:
            cfg->accounts = optarg;
            break;
        case OPT_SEED:
            if (parse_u64(optarg, 0, UINT64_MAX, &v) < 0)
                return bad_value(name, optarg, "must be an unsigned 64-bit number");
            cfg->seed = v;
            break;
        case OPT_FIXTURES:
            cfg->fixtures_path = optarg;
            break;
        case OPT_LOG:
            cfg->log_path = optarg;
            break;
        case OPT_READY_FILE:
            app->ready_file = optarg;
            break;
        case OPT_NEXT_VALID_ID:
            if (parse_u64(optarg, 1, INT_MAX, &v) < 0)
                return bad_value(name, optarg, "must be a number 1..2147483647");
            cfg->next_valid_id = (int)v;
            break;
        case OPT_MAX_CLIENTS:
            if (parse_u64(optarg, 0, INT_MAX, &v) < 0)
                return bad_value(name, optarg, "must be a number, 0 for no limit");
            cfg->max_clients = (int)v;
            break;
        case OPT_ALLOW_DUP_IDS:
            cfg->unique_client_ids = false;
            break;
        case OPT_NO_TIME_PACING:
            cfg->pace_current_time = false;
            break;
        case OPT_HANDSHAKE_TIMEOUT:
            if (parse_u64(optarg, 1, UINT32_MAX, &v) < 0)
                return bad_value(name, optarg, "must be a number of milliseconds, 1 or more");
            cfg->hello_timeout_ms = v;
            break;
        case OPT_MAX_OUT_BUFFER:
            if (parse_u64(optarg, 4096, SIZE_MAX / 2, &v) < 0)
                return bad_value(name, optarg, "must be a number of bytes, 4096 or more");
            cfg->max_out_buffer = (size_t)v;
            break;
        case OPT_SCRIPT:
            app->script_path = optarg;
            break;
        case OPT_FAULT:
            if (app->n_presets == MAX_PRESETS) {
                fprintf(stderr, "mockgw: --fault: at most %d presets\n", MAX_PRESETS);
                return -1;
            }
            app->presets[app->n_presets++] = optarg;
            break;
        case OPT_UPSTREAM:
            if (parse_host_port(name, optarg, app->upstream_host, sizeof app->upstream_host,
                                &cfg->upstream_port) < 0)
                return -1;
            if (cfg->upstream_port == 0)
                return bad_value(name, optarg, "port must be a number 1..65535");
            cfg->upstream_host = app->upstream_host;
            break;
        case OPT_UPSTREAM_TIMEOUT:
            if (parse_u64(optarg, 1, UINT32_MAX, &v) < 0)
                return bad_value(name, optarg, "must be a number of milliseconds, 1 or more");
            cfg->upstream_timeout_ms = v;
            break;
        case OPT_RECORD:
            cfg->record_path = optarg;
            break;
        case OPT_REPLAY:
            cfg->replay_path = optarg;
            break;
        case ':':
            fprintf(stderr, "mockgw: %s needs a value (see mockgw --help)\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "mockgw: unknown option %s (see mockgw --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mockgw: unexpected argument \"%s\" (see mockgw --help)\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int write_ready_file(const char *path, int api, int admin)
{
    char tmp[PATH_MAX];
    FILE *f;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    if (admin >= 0)
        fprintf(f, "{\"api\": %d, \"admin\": %d, \"pid\": %ld}\n", api, admin, (long)getpid());
    else
        fprintf(f, "{\"api\": %d, \"admin\": null, \"pid\": %ld}\n", api, (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;

        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

/* Loads --script, adds the --fault presets, and takes the script's settings where no flag set
 * them. NULL after printing the error. */
static struct mgw_script *load_script(struct app *app, struct mgw_config *cfg)
{
    const struct mgw_script_settings *st;
    struct mgw_script *script;
    struct mgw_err err;

    script = app->script_path ? mgw_script_load(app->script_path, &err) : mgw_script_new();
    if (!script) {
        fprintf(stderr, "mockgw: %s\n", app->script_path ? err.msg : "out of memory");
        return NULL;
    }
    for (unsigned i = 0; i < app->n_presets; i++) {
        if (mgw_script_add_preset(script, app->presets[i], &err) < 0) {
            fprintf(stderr, "mockgw: %s\n", err.msg);
            mgw_script_free(script);
            return NULL;
        }
    }
    st = &script->settings;
    if (st->has_server_version && !app->given[OPT_SERVER_VERSION])
        cfg->server_version = st->server_version;
    if (st->has_accounts && !app->given[OPT_ACCOUNTS])
        cfg->accounts = st->accounts;
    if (st->has_next_valid_id && !app->given[OPT_NEXT_VALID_ID])
        cfg->next_valid_id = st->next_valid_id;
    if (st->has_max_clients && !app->given[OPT_MAX_CLIENTS])
        cfg->max_clients = st->max_clients;
    if (st->has_unique_client_ids && !app->given[OPT_ALLOW_DUP_IDS])
        cfg->unique_client_ids = st->unique_client_ids;
    if (st->has_pace_current_time && !app->given[OPT_NO_TIME_PACING])
        cfg->pace_current_time = st->pace_current_time;
    if (st->has_handshake_timeout_ms && !app->given[OPT_HANDSHAKE_TIMEOUT])
        cfg->hello_timeout_ms = st->handshake_timeout_ms;
    cfg->script = script;
    return script;
}

static void on_signal_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_stopped(struct mgw_server *srv, void *data)
{
    struct app *app = data;
    struct sigaction ign;

    (void)srv;
    uv_close((uv_handle_t *)&app->sigint, on_signal_closed);
    uv_close((uv_handle_t *)&app->sigterm, on_signal_closed);
    /* Closing the handles gave the signals back their default action: one arriving during
     * what is left (freeing, exit; bounded) would turn the clean exit 0 into death by that
     * signal. The server has stopped; further signals have nothing left to ask. */
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGTERM, &ign, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;

    (void)signum;
    mgw_server_stop(app->srv, on_stopped, app); /* a second signal is a harmless no-op */
}

/* 10,000 clients need 10,000 descriptors: take the hard limit if the soft one is lower. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    char listen_host[256], admin_host[256];
    struct mgw_config cfg;
    struct mgw_err err;
    struct app app = { 0 };
    struct mgw_script *script;
    int rc;

    mgw_config_init(&cfg);
    if (parse_args(argc, argv, &cfg, &app, listen_host, admin_host, sizeof listen_host) < 0)
        return EXIT_USAGE;
    script = load_script(&app, &cfg);
    if (!script)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    uv_loop_init(&app.loop);
    app.srv = mgw_server_new(&app.loop, &cfg, &err);
    mgw_script_free(script); /* the server keeps its own copy */
    if (!app.srv) {
        fprintf(stderr, "mockgw: %s\n", err.msg);
        uv_run(&app.loop, UV_RUN_DEFAULT); /* what the failed start opened finishes closing */
        uv_loop_close(&app.loop);
        return EXIT_USAGE;
    }
    uv_signal_init(&app.loop, &app.sigint);
    uv_signal_init(&app.loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);

    rc = mgw_server_start(app.srv, &err);
    if (rc < 0) {
        fprintf(stderr, "mockgw: %s\n", err.msg);
        mgw_server_stop(app.srv, on_stopped, &app);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        mgw_server_free(app.srv);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.loop);
        return rc == MGW_ECONFIG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    if (app.ready_file && write_ready_file(app.ready_file, mgw_server_api_port(app.srv),
                                           mgw_server_admin_port(app.srv)) < 0) {
        fprintf(stderr, "mockgw: --ready-file %s: %s\n", app.ready_file, strerror(errno));
        mgw_server_stop(app.srv, on_stopped, &app);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        mgw_server_free(app.srv);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.loop);
        return EXIT_USAGE;
    }
    /* An IPv6 host in brackets, so that the port is the part after the last colon. */
    if (cfg.admin_enabled)
        printf("mockgw ready api=%s%s%s:%d admin=%s%s%s:%d\n", v6_open(cfg.listen_host),
               cfg.listen_host, v6_close(cfg.listen_host), mgw_server_api_port(app.srv),
               v6_open(cfg.admin_host), cfg.admin_host, v6_close(cfg.admin_host),
               mgw_server_admin_port(app.srv));
    else
        printf("mockgw ready api=%s%s%s:%d admin=off\n", v6_open(cfg.listen_host), cfg.listen_host,
               v6_close(cfg.listen_host), mgw_server_api_port(app.srv));
    fflush(stdout);

    uv_run(&app.loop, UV_RUN_DEFAULT);
    mgw_server_free(app.srv);
    uv_run(&app.loop, UV_RUN_DEFAULT); /* the journal's last close callback */
    rc = uv_loop_close(&app.loop);
    return rc == 0 ? 0 : EXIT_RUNTIME;
}
