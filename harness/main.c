/* harness: the command line (docs/harness.md). Prints, picks the exit code: 0 every scenario
 * passed, 1 any failed, 2 usage error or a bad scenario file, 128 + N stopped by signal N
 * (SIGINT or SIGTERM) after tearing the scenario in progress down. */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "harness.h"

#ifndef HARNESS_VERSION
#define HARNESS_VERSION "0"
#endif
#ifndef HARNESS_SOURCE_SCENARIOS
#define HARNESS_SOURCE_SCENARIOS "scenarios"
#endif

#define EXIT_USAGE 2
#define MAX_FILES  1024

static const char usage_text[] =
    "usage: harness --level LEVEL | --scenario FILE [FILE...] [options]\n"
    "       harness probe HOST:PORT [--serve [ADDR:]PORT] [--json] [options]\n"
    "\n"
    "Runs scenarios against the core (libibcore) and a fake IB Gateway (mockgw) and reports\n"
    "whether the code may ship. The last line of the output is \"DEPLOY: OK\" or\n"
    "\"DO NOT DEPLOY: N failed\".\n"
    "\n"
    "  -l, --level LEVEL         basic, standard or exhaustive (cumulative: standard runs\n"
    "                            basic too); scenarios come from DIR/LEVEL/*.json\n"
    "  -s, --scenario FILE       run this scenario file (repeatable; more files may follow\n"
    "                            it as plain arguments)\n"
    "  -o, --only PATTERN        only scenarios whose name matches (shell pattern; repeatable)\n"
    "  -S, --seed N              the seed for every scenario (default: the scenario's, else 1)\n"
    "  -g, --gateway HOST:PORT   an external gateway (mockgw or a real one) instead of the\n"
    "                            in-process mockgw\n"
    "  -a, --admin HOST:PORT     the external mockgw's admin API (gateway actions, journal);\n"
    "                            scenarios that need it are skipped without it\n"
    "  -d, --scenarios-dir DIR   where basic/, standard/, exhaustive/ are (default:\n"
    "                            $HARNESS_SCENARIOS, next to the binary, or the source tree)\n"
    "  -A, --artifacts DIR       where minimal failing schedules are written (default\n"
    "                            $TMPDIR, else /tmp)\n"
    "  -M, --mockgw FILE         the mockgw binary for gateway_process scenarios (default\n"
    "                            $MOCKGW_BIN, else next to this program)\n"
    "  -C, --client COMMAND      the client program for \"client\" scenarios, replacing theirs\n"
    "                            ({host}, {port}, {admin_port}, {seed}, {scenario_dir} are\n"
    "                            filled in; run with /bin/sh -c)\n"
    "  -j, --json FILE           write a JSON report\n"
    "  -J, --junit FILE          write a JUnit XML report (one testcase per scenario)\n"
    "  -L, --list                list the selected scenarios, run nothing\n"
    "  -h, --help                this text\n"
    "  -V, --version             the version\n"
    "\n"
    "Exit status: 0 every scenario passed, 1 any failed, 2 usage error or bad scenario file,\n"
    "130/143 stopped by SIGINT/SIGTERM (the scenario in progress is torn down, its gateway\n"
    "stopped, the reports written; the last line is \"DO NOT DEPLOY: interrupted by ...\").\n"
    "Every failure prints the command that replays it. 'harness probe --help' describes the\n"
    "probe.\n";

static const char probe_usage_text[] =
    "usage: harness probe HOST:PORT [--serve [ADDR:]PORT] [--json] [options]\n"
    "\n"
    "The core's live status of a gateway (real or fake): a pool of one connection acquires\n"
    "(validates) a connection and gives it back, then prints the pool's status and score.\n"
    "\n"
    "  -s, --serve [ADDR:]PORT   serve it over HTTP instead (ADDR defaults to 127.0.0.1):\n"
    "                            GET /api/v1/ib/resilience, /api/v1/ib/health (200 or 503),\n"
    "                            /api/v1/ib/status (data.overall_resilience_score); runs until\n"
    "                            SIGTERM or SIGINT (exit 0)\n"
    "  -j, --json                print the status JSON (with a \"probe\" object)\n"
    "  -t, --threshold N         healthy when the score is at least N (0..100, default 75)\n"
    "  -T, --timeout-ms MS       the acquire's deadline (default 10000)\n"
    "  -c, --client-id N         the first client id tried (default 99; then N+1, N+2)\n"
    "  -i, --interval-ms MS      serving: a fresh acquire this often (default 5000)\n"
    "  -h, --help                this text\n"
    "\n"
    "Exit status: 0 healthy (score >= threshold), 1 not healthy (or serving failed),\n"
    "2 usage error.\n";

struct opts {
    int level; /* -1: none */
    const char *files[MAX_FILES];
    unsigned n_files;
    const char *only[64];
    unsigned n_only;
    bool has_seed;
    uint64_t seed;
    char gw_host[64], admin_host[64];
    int gw_port, admin_port;
    const char *gateway_arg, *admin_arg;
    const char *dir;
    const char *json, *junit;
    const char *artifacts, *mockgw, *client;
    bool list;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "harness: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'harness --help'.\n");
    return EXIT_USAGE;
}

/* The whole string as an integer in [lo, hi]; no sign, no spaces, no trailing text. */
static bool parse_u64(const char *s, uint64_t hi, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > hi)
        return false;
    *out = v;
    return true;
}

/* HOST:PORT with a numeric host ("[::1]:4002" for IPv6). */
static bool parse_addr(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    uint64_t p;
    size_t n;

    if (colon == NULL || !parse_u64(colon + 1, 65535, &p) || p == 0)
        return false;
    n = (size_t)(colon - s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= cap)
        return false;
    memcpy(host, s, n);
    host[n] = '\0';
    *port = (int)p;
    return uv_ip4_addr(host, 1, &a4) == 0 || uv_ip6_addr(host, 1, &a6) == 0;
}

/* HOST:0 (a port picked by the system) is fine where we listen. */
static bool parse_addr_any_port(const char *s, char *host, size_t cap, int *port)
{
    char tmp[80];
    size_t n = strlen(s);

    if (n < 2 || n + 1 >= sizeof tmp || strcmp(s + n - 2, ":0") != 0)
        return false;
    snprintf(tmp, sizeof tmp, "%.*s:1", (int)(n - 2), s);
    if (!parse_addr(tmp, host, cap, port))
        return false;
    *port = 0;
    return true;
}

static bool is_dir(const char *p)
{
    struct stat sb;

    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* --scenarios-dir, $HARNESS_SCENARIOS, next to the binary, the source tree. */
static const char *scenarios_dir(const struct opts *o, char *buf, size_t cap)
{
    static const char *const rel[] = { "/../scenarios", "/scenarios", "/../share/mockgw/scenarios",
                                       NULL };
    const char *env = getenv("HARNESS_SCENARIOS");
    char exe[PATH_MAX];
    size_t len = sizeof exe;

    if (o->dir != NULL)
        return o->dir;
    if (env != NULL && env[0] != '\0')
        return env;
    if (uv_exepath(exe, &len) == 0) {
        char *slash = strrchr(exe, '/');

        if (slash != NULL)
            *slash = '\0';
        for (unsigned i = 0; rel[i] != NULL; i++) {
            snprintf(buf, cap, "%s%s", exe, rel[i]);
            if (is_dir(buf))
                return buf;
        }
    }
    return HARNESS_SOURCE_SCENARIOS;
}

static bool selected(const struct opts *o, const struct harness_scenario *sc)
{
    if (o->n_only == 0)
        return true;
    for (unsigned i = 0; i < o->n_only; i++)
        if (fnmatch(o->only[i], sc->name, 0) == 0)
            return true;
    return false;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        { "level", required_argument, NULL, 'l' },
        { "scenario", required_argument, NULL, 's' },
        { "only", required_argument, NULL, 'o' },
        { "seed", required_argument, NULL, 'S' },
        { "gateway", required_argument, NULL, 'g' },
        { "admin", required_argument, NULL, 'a' },
        { "scenarios-dir", required_argument, NULL, 'd' },
        { "json", required_argument, NULL, 'j' },
        { "junit", required_argument, NULL, 'J' },
        { "artifacts", required_argument, NULL, 'A' },
        { "mockgw", required_argument, NULL, 'M' },
        { "client", required_argument, NULL, 'C' },
        { "list", no_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    memset(o, 0, sizeof *o);
    o->level = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:s:o:S:g:a:d:j:J:A:M:C:LhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (o->level >= 0)
                return usage_error("--level given twice");
            if ((o->level = harness_level_parse(optarg)) < 0)
                return usage_error("--level %s: expected basic, standard or exhaustive", optarg);
            break;
        case 's':
            if (o->n_files == MAX_FILES)
                return usage_error("too many --scenario files (at most 1024)");
            o->files[o->n_files++] = optarg;
            break;
        case 'o':
            if (o->n_only == sizeof o->only / sizeof o->only[0])
                return usage_error("too many --only patterns (at most 64)");
            o->only[o->n_only++] = optarg;
            break;
        case 'S':
            if (!parse_u64(optarg, 9007199254740991ULL, &o->seed))
                return usage_error("--seed %s: expected an integer 0..2^53-1", optarg);
            o->has_seed = true;
            break;
        case 'g':
            if (!parse_addr(optarg, o->gw_host, sizeof o->gw_host, &o->gw_port))
                return usage_error("--gateway %s: expected HOST:PORT with a numeric host", optarg);
            o->gateway_arg = optarg;
            break;
        case 'a':
            if (!parse_addr(optarg, o->admin_host, sizeof o->admin_host, &o->admin_port))
                return usage_error("--admin %s: expected HOST:PORT with a numeric host", optarg);
            o->admin_arg = optarg;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'j':
            o->json = optarg;
            break;
        case 'J':
            o->junit = optarg;
            break;
        case 'A':
            if (!is_dir(optarg))
                return usage_error("--artifacts %s: not a directory", optarg);
            o->artifacts = optarg;
            break;
        case 'M':
            if (access(optarg, X_OK) != 0)
                return usage_error("--mockgw %s: not an executable file", optarg);
            o->mockgw = optarg;
            break;
        case 'C':
            if (optarg[strspn(optarg, " \t")] == '\0')
                return usage_error("--client: the command is empty");
            o->client = optarg;
            break;
        case 'L':
            o->list = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            printf("harness %s\n", HARNESS_VERSION);
            return 0;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    /* More files after --scenario: what a shell glob after it expands to. */
    for (; optind < argc && o->n_files > 0 && o->level < 0; optind++) {
        if (o->n_files == MAX_FILES)
            return usage_error("too many --scenario files (at most 1024)");
        o->files[o->n_files++] = argv[optind];
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s' (scenario files go after --scenario)",
                           argv[optind]);
    if (o->admin_arg != NULL && o->gateway_arg == NULL)
        return usage_error("--admin needs --gateway");
    if (o->level >= 0 && o->n_files > 0)
        return usage_error("--level and --scenario exclude each other");
    if (o->level < 0 && o->n_files == 0 && !o->list)
        return usage_error("give --level LEVEL or --scenario FILE");
    return -1; /* go on */
}

/* The command that reruns one scenario exactly (a generator's minimal failing schedule when it
 * wrote one: path). */
static char *replay_command(const char *argv0, const struct opts *o,
                            const struct harness_scenario *sc, const char *path, uint64_t seed)
{
    char abs[PATH_MAX], seed_s[32];
    const char *parts[10];
    char *quoted[10];
    unsigned n = 0;
    size_t len = 1;
    char *out;

    parts[n++] = argv0;
    parts[n++] = "--scenario";
    if (path == NULL)
        path = sc->path;
    parts[n++] = realpath(path, abs) != NULL ? abs : path;
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    parts[n++] = "--seed";
    parts[n++] = seed_s;
    if (o->gateway_arg != NULL) {
        parts[n++] = "--gateway";
        parts[n++] = o->gateway_arg;
    }
    if (o->client != NULL && sc->client != NULL) {
        parts[n++] = "--client";
        parts[n++] = o->client;
    }
    for (unsigned i = 0; i < n; i++) {
        quoted[i] = harness_shell_quote(parts[i]);
        len += (quoted[i] != NULL ? strlen(quoted[i]) : 0) + 1;
    }
    if (o->admin_arg != NULL)
        len += strlen(o->admin_arg) + 16;
    if ((out = malloc(len)) != NULL) {
        out[0] = '\0';
        for (unsigned i = 0; i < n; i++)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "",
                     quoted[i] != NULL ? quoted[i] : "?");
        if (o->admin_arg != NULL)
            snprintf(out + strlen(out), len - strlen(out), " --admin %s", o->admin_arg);
    }
    for (unsigned i = 0; i < n; i++)
        free(quoted[i]);
    return out;
}

static void list_scenarios(struct harness_scenario **list, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char lv[48] = "";

        for (int l = 0; l < HARNESS_LEVEL_COUNT; l++)
            if (list[i]->levels & (1u << l))
                snprintf(lv + strlen(lv), sizeof lv - strlen(lv), "%s%s", lv[0] ? "," : "",
                         harness_level_name((enum harness_level)l));
        printf("%-40s %-20s %s\n", list[i]->name, lv, list[i]->path);
    }
}

/* ---- harness probe ----------------------------------------------------------------------------
 */

struct probe_cli {
    struct harness_probe_opts po;
    char gw_host[64], serve_host[64];
    int serve_port; /* -1: once */
    bool json;
};

static int probe_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int probe_usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "harness probe: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'harness probe --help'.\n");
    return EXIT_USAGE;
}

static int probe_args(int argc, char **argv, struct probe_cli *pc)
{
    static const struct option longopts[] = {
        { "serve", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "threshold", required_argument, NULL, 't' },
        { "timeout-ms", required_argument, NULL, 'T' },
        { "client-id", required_argument, NULL, 'c' },
        { "interval-ms", required_argument, NULL, 'i' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int c;

    memset(pc, 0, sizeof *pc);
    harness_probe_opts_init(&pc->po);
    pc->serve_port = -1;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":s:jt:T:c:i:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (parse_u64(optarg, 65535, &v)) { /* a port alone: loopback */
                snprintf(pc->serve_host, sizeof pc->serve_host, "127.0.0.1");
                pc->serve_port = (int)v;
            } else if (!parse_addr_any_port(optarg, pc->serve_host, sizeof pc->serve_host,
                                            &pc->serve_port) &&
                       !parse_addr(optarg, pc->serve_host, sizeof pc->serve_host,
                                   &pc->serve_port)) {
                return probe_usage_error("--serve %s: expected [ADDR:]PORT with a numeric ADDR",
                                         optarg);
            }
            break;
        case 'j':
            pc->json = true;
            break;
        case 't':
            if (!parse_u64(optarg, 100, &v))
                return probe_usage_error("--threshold %s: expected an integer 0..100", optarg);
            pc->po.threshold = (unsigned)v;
            break;
        case 'T':
            if (!parse_u64(optarg, 600000, &v) || v == 0)
                return probe_usage_error("--timeout-ms %s: expected an integer 1..600000", optarg);
            pc->po.timeout_ms = v;
            break;
        case 'c':
            if (!parse_u64(optarg, 2147483600, &v))
                return probe_usage_error("--client-id %s: expected a non-negative integer", optarg);
            pc->po.client_id = (int)v;
            break;
        case 'i':
            if (!parse_u64(optarg, 3600000, &v) || v < 100)
                return probe_usage_error("--interval-ms %s: expected an integer 100..3600000",
                                         optarg);
            pc->po.interval_ms = v;
            break;
        case 'h':
            fputs(probe_usage_text, stdout);
            return 0;
        case ':':
            return probe_usage_error("%s needs a value", argv[optind - 1]);
        default:
            return probe_usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return probe_usage_error("give the gateway as HOST:PORT");
    if (optind + 1 < argc)
        return probe_usage_error("unexpected argument '%s'", argv[optind + 1]);
    if (!parse_addr(argv[optind], pc->gw_host, sizeof pc->gw_host, &pc->po.port))
        return probe_usage_error("%s: expected HOST:PORT with a numeric host", argv[optind]);
    pc->po.host = pc->gw_host;
    return -1;
}

static void print_probe(const struct probe_cli *pc, const struct harness_probe_result *res)
{
    cJSON *doc = res->status_json != NULL ? cJSON_Parse(res->status_json) : NULL;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(doc, "score");
    char *text;

    if (pc->json) {
        if ((text = doc != NULL ? cJSON_Print(doc) : NULL) != NULL)
            printf("%s\n", text);
        cJSON_free(text);
        cJSON_Delete(doc);
        return;
    }
    printf("gateway %s:%d: acquire %s in %llu ms%s%s\n", pc->po.host, pc->po.port,
           harness_status_name(harness_status_of(res->acquire_status)),
           (unsigned long long)res->acquire_ms, res->acquire_status != 0 ? ": " : "",
           res->acquire_status != 0 ? ibcore_strerror(res->acquire_status) : "");
    if (cJSON_IsObject(sc)) {
        static const char *const parts[] = { "breaker", "connectivity", "probe_health",
                                             "latency", "zombies",      "client_id",
                                             NULL };

        printf("score %u/100:", res->score);
        for (unsigned i = 0; parts[i] != NULL; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(sc, parts[i]);

            printf(" %s %d", parts[i], cJSON_IsNumber(v) ? v->valueint : -1);
        }
        printf("\n");
    } else {
        printf("score %u/100\n", res->score);
    }
    printf("%s (threshold %u)\n", res->healthy ? "HEALTHY" : "NOT HEALTHY", pc->po.threshold);
    cJSON_Delete(doc);
}

static struct harness_probe *serving;
static uv_signal_t sig_term, sig_int;

/* A scenario run: the first SIGINT/SIGTERM stops it at its next wait; later ones only say
 * that the teardown is under way (it is bounded). Unreferenced: they keep no loop alive. */
static void on_run_signal(uv_signal_t *s, int signum)
{
    char buf[32];

    (void)s;
    if (harness_interrupted() == 0)
        fprintf(stderr, "harness: %s: stopping (tearing the scenario in progress down)\n",
                harness_signal_name(signum, buf, sizeof buf));
    else
        fprintf(stderr, "harness: %s: already stopping\n",
                harness_signal_name(signum, buf, sizeof buf));
    harness_interrupt(signum);
}

static void watch_run_signals(uv_loop_t *loop)
{
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_run_signal, SIGTERM);
    uv_signal_start(&sig_int, on_run_signal, SIGINT);
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
}

/* Closes the signal handles and ignores SIGINT and SIGTERM from then on: closing gave them
 * back their default action, and one arriving in what is left (a bounded stop, the reports,
 * the exit) would turn the exit code, and the verdict it carries, into death by a signal. */
static void unwatch_signals(void)
{
    struct sigaction ign;

    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGTERM, &ign, NULL);
}

static void unwatch_run_signals(uv_loop_t *loop)
{
    unwatch_signals();
    uv_run(loop, UV_RUN_NOWAIT);
}

static void on_probe_stopped(void *data)
{
    (void)data;
    serving = NULL;
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    unwatch_signals();
    harness_probe_stop(serving, on_probe_stopped, NULL);
}

static int probe_main(int argc, char **argv)
{
    struct harness_probe_result res;
    struct probe_cli pc;
    struct harness_err err;
    uv_loop_t loop;
    int rc;

    if ((rc = probe_args(argc, argv, &pc)) >= 0)
        return rc;
    if (uv_loop_init(&loop) != 0)
        return 1;
    if (pc.serve_port < 0) {
        rc = harness_probe_once(&loop, &pc.po, &res);
        if (rc < 0) {
            fprintf(stderr, "harness probe: %s\n", uv_strerror(rc));
            uv_loop_close(&loop);
            return rc == UV_EINVAL ? EXIT_USAGE : 1;
        }
        print_probe(&pc, &res);
        rc = res.healthy ? 0 : 1;
        harness_probe_result_clear(&res);
        uv_loop_close(&loop);
        return rc;
    }
    if (harness_probe_serve(&loop, &pc.po, pc.serve_host, pc.serve_port, &serving, &err) < 0) {
        fprintf(stderr, "harness probe: --serve %s\n", err.msg);
        uv_loop_close(&loop);
        return 1;
    }
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_start(&sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&sig_int, on_stop_signal, SIGINT);
    printf("harness probe: serving http://%s%s%s:%d/api/v1/ib/{resilience,health,status} for "
           "gateway %s:%d\n",
           strchr(pc.serve_host, ':') ? "[" : "", pc.serve_host,
           strchr(pc.serve_host, ':') ? "]" : "", harness_probe_port(serving), pc.po.host,
           pc.po.port);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 && serving == NULL ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct harness_scenario **all = NULL, **list = NULL;
    struct harness_report rep;
    struct harness_run_opts ro;
    struct harness_err err;
    struct opts o;
    char dirbuf[PATH_MAX];
    unsigned n_all = 0, n = 0;
    uint64_t t0;
    uv_loop_t loop;
    int rc;

    signal(SIGPIPE, SIG_IGN); /* libuv writes with write(2) */
    if (argc >= 2 && strcmp(argv[1], "probe") == 0)
        return probe_main(argc - 1, argv + 1);
    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    if (o.n_files > 0) {
        if ((all = calloc(o.n_files, sizeof *all)) == NULL)
            return EXIT_USAGE;
        for (unsigned i = 0; i < o.n_files; i++) {
            if ((all[n_all] = harness_scenario_load(o.files[i], &err)) == NULL) {
                fprintf(stderr, "harness: %s\n", err.msg);
                harness_suite_free(all, n_all);
                return EXIT_USAGE;
            }
            n_all++;
        }
    } else {
        const char *dir = scenarios_dir(&o, dirbuf, sizeof dirbuf);
        int level = o.level >= 0 ? o.level : HARNESS_LEVEL_EXHAUSTIVE;

        if (harness_suite_load(dir, (enum harness_level)level, &all, &n_all, &err) < 0) {
            fprintf(stderr, "harness: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    if ((list = calloc(n_all + 1, sizeof *list)) == NULL) {
        harness_suite_free(all, n_all);
        return EXIT_USAGE;
    }
    for (unsigned i = 0; i < n_all; i++)
        if (selected(&o, all[i]))
            list[n++] = all[i];
    if (n == 0) {
        fprintf(stderr, "harness: no scenario %s\n",
                o.n_only > 0 ? "matches --only" : "found for the level");
        free(list);
        harness_suite_free(all, n_all);
        return EXIT_USAGE;
    }
    if (o.list) {
        list_scenarios(list, n);
        free(list);
        harness_suite_free(all, n_all);
        return 0;
    }

    memset(&rep, 0, sizeof rep);
    rep.level = o.level >= 0 ? harness_level_name((enum harness_level)o.level) : NULL;
    rep.gateway = o.gateway_arg != NULL ? o.gateway_arg : "in-process";
    rep.seed = o.has_seed ? o.seed : 0;
    if ((rep.items = calloc(n, sizeof *rep.items)) == NULL || uv_loop_init(&loop) != 0) {
        fprintf(stderr, "harness: out of memory\n");
        return EXIT_USAGE;
    }
    harness_run_opts_init(&ro);
    ro.has_seed = o.has_seed;
    ro.seed = o.seed;
    ro.artifacts_dir = o.artifacts;
    ro.mockgw_bin = o.mockgw;
    ro.client_command = o.client;
    if (o.gateway_arg != NULL) {
        ro.gateway_host = o.gw_host;
        ro.gateway_port = o.gw_port;
    }
    if (o.admin_arg != NULL) {
        ro.admin_host = o.admin_host;
        ro.admin_port = o.admin_port;
    }
    printf("harness: %u scenario%s%s%s, gateway %s\n", n, n == 1 ? "" : "s",
           rep.level != NULL ? ", level " : "", rep.level != NULL ? rep.level : "", rep.gateway);
    fflush(stdout);
    watch_run_signals(&loop);
    t0 = uv_hrtime();
    for (unsigned i = 0; i < n; i++) {
        struct harness_report_item *it = &rep.items[i];

        if ((rep.interrupted = harness_interrupted()) != 0) {
            rep.not_run = n - i;
            break;
        }
        rep.n = i + 1;

        it->sc = list[i];
        if ((rc = harness_run(&loop, list[i], &ro, &it->res)) < 0) {
            it->res.verdict = HARNESS_FAIL;
            snprintf(it->res.measure, sizeof it->res.measure, "-");
            it->res.failures[0] = strdup(uv_strerror(rc));
            it->res.n_failures = it->res.failures[0] != NULL;
            it->res.n_failures_total = 1;
        }
        it->replay =
            it->res.artifact != NULL
                ? replay_command(argv[0], &o, list[i], it->res.artifact, it->res.artifact_seed)
                : replay_command(argv[0], &o, list[i], NULL, it->res.seed);
        printf("  %-40s %s %6.2f s\n", list[i]->name,
               it->res.verdict == HARNESS_PASS   ? "pass"
               : it->res.verdict == HARNESS_FAIL ? "FAIL"
                                                 : "skip",
               (double)it->res.duration_ms / 1000.0);
        fflush(stdout);
    }
    if (rep.interrupted == 0 && (rep.interrupted = harness_interrupted()) != 0)
        rep.not_run = n - rep.n;
    rep.duration_ms = (uv_hrtime() - t0) / 1000000u;
    rc = harness_report_failed(&rep) > 0 ? 1 : 0;
    if (o.json != NULL && harness_report_json(&rep, o.json, &err) < 0) {
        fprintf(stderr, "harness: --json %s\n", err.msg);
        rc = EXIT_USAGE;
    }
    if (o.junit != NULL && harness_report_junit(&rep, o.junit, &err) < 0) {
        fprintf(stderr, "harness: --junit %s\n", err.msg);
        rc = EXIT_USAGE;
    }
    if (rep.interrupted != 0) {
        char buf[32];

        fprintf(stderr, "harness: interrupted by %s: %u of %u scenarios ran\n",
                harness_signal_name(rep.interrupted, buf, sizeof buf), rep.n, n);
    }
    fflush(stderr);
    harness_report_console(&rep, stdout);
    if (rc == 0 && harness_report_failed(&rep) == 0) {
        unsigned passed = 0;

        for (unsigned i = 0; i < rep.n; i++)
            passed += rep.items[i].res.verdict == HARNESS_PASS;
        if (passed == 0)
            rc = 1; /* everything skipped: no evidence */
    }
    if (rep.interrupted != 0 && rc != EXIT_USAGE)
        rc = 128 + rep.interrupted;
    unwatch_run_signals(&loop); /* a signal while the reports were written changed nothing */
    for (unsigned i = 0; i < rep.n; i++) {
        harness_result_clear(&rep.items[i].res);
        free(rep.items[i].replay);
    }
    free(rep.items);
    free(list);
    harness_suite_free(all, n_all);
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "harness: the loop still has handles at exit\n");
    return rc;
}
