/* Private to the harness: the JSON reader behind the scenario loader (json.c), the runner's
 * expectation checks (check.c), and small text helpers.
 *
 * The reader fills the loader's struct harness_err with "NAME: PATH: REASON" on the first bad
 * value and returns -1; every later call is then a no-op returning -1, so a loader can stop at
 * its next check. Paths are JSONPath-like: "$.steps[3].expect.within_ms".
 */
#ifndef HARNESS_INTERNAL_H
#define HARNESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "harness.h"

#define HARNESS__PATH_CAP 160 /* a longer path ends in "..." */
#define HARNESS__MAX_MS   86400000u
#define HARNESS__SLACK_MS 20u /* one timer tick: an operation may end this late */

struct harness__jr {
    const char *name; /* file name or label; NULL: none */
    struct harness_err *err;
};

void harness__fail(struct harness__jr *jr, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void harness__path_key(char *out, size_t cap, const char *base, const char *key);
void harness__path_index(char *out, size_t cap, const char *base, unsigned i);

/* The first key of obj not in allowed (NULL-terminated), in document order: "unknown key
 * \"x\"" (with "did you mean \"y\"?" when one allowed key is close), or a key given twice. */
int harness__keys(struct harness__jr *jr, const cJSON *obj, const char *path,
                  const char *const *allowed);

int harness__object(struct harness__jr *jr, const cJSON *v, const char *path);
/* "expected an array"; more than max elements: "at most MAX elements". */
int harness__array(struct harness__jr *jr, const cJSON *v, const char *path, unsigned max,
                   unsigned *n);
/* A non-empty string of at most max bytes without control characters; *out borrows v's. */
int harness__string(struct harness__jr *jr, const cJSON *v, const char *path, size_t max,
                    const char **out);
int harness__bool(struct harness__jr *jr, const cJSON *v, const char *path, bool *out);
/* "expected a non-negative integer"; over max: "must be at most MAX". */
int harness__uint(struct harness__jr *jr, const cJSON *v, const char *path, uint64_t max,
                  uint64_t *out);
/* "expected an integer"; outside: "must be between LO and HI". */
int harness__int(struct harness__jr *jr, const cJSON *v, const char *path, int64_t lo, int64_t hi,
                 int64_t *out);
/* A count: an integer >= 0, or {"min": a, "max": b} with at least one of them, min <= max. */
int harness__range(struct harness__jr *jr, const cJSON *v, const char *path,
                   struct harness_range *out);

/* Line and column (1-based) of byte offset off in text. */
void harness__line_col(const char *text, size_t off, unsigned *line, unsigned *col);

/* A field of a JSON document by dotted path ("breaker.state", "client_ids.in_use.0"); NULL when
 * absent. */
const cJSON *harness__json_get(const cJSON *doc, const char *dotted);
/* Checks f against doc; false with why[cap] filled ("is \"open\", expected \"closed\""). */
bool harness__field_check(const struct harness_field_expect *f, const cJSON *doc, char *why,
                          size_t cap);

/* What a journal (the array GET /v1/journal returns) shows. */
struct harness__journal_facts {
    unsigned accepted;
    unsigned max_in_flight;
    int client_ids[64];
    unsigned n_client_ids; /* more than 64 are counted in n_client_ids_total only */
    unsigned n_client_ids_total;
    /* the closest two accepts: ms apart, and which (accept ordinals 1, 2, ...) */
    bool has_connect_gap;
    uint64_t min_connect_gap_ms;
    unsigned gap_at;
    /* gateway-side drops of ready sessions ("disconnect" in phase ready that the client did
     * not cause) and the longest wait from one to the next "ready" */
    unsigned drops;
    uint64_t max_reconnect_ms;
    bool never_reconnected;     /* the last drop had no "ready" after it */
    unsigned same_id_after_326; /* start_api right after a 326 with the refused id again */
};

void harness__journal_facts(const cJSON *entries, struct harness__journal_facts *f);
/* How many entries have "event": name. */
unsigned harness__journal_count(const cJSON *entries, const char *name);
/* The journal event names mockgw writes (docs/journal.md); NULL-terminated. */
extern const char *const harness__journal_events[];
/* Breaker telemetry event names and states. */
extern const char *const harness__telemetry_events[];
extern const char *const harness__breaker_states[];

/* Heap copy; NULL stays NULL (and out of memory gives NULL). */
char *harness__strdup(const char *s);

/* splitmix64: advances *state and returns the next value. */
uint64_t harness__splitmix64(uint64_t *state);

/* Runs a scenario with "generate" (explore.c): every schedule, the first failing ones shrunk
 * and written out. Same contract as harness_run(). */
int harness__generate_run(uv_loop_t *loop, const struct harness_scenario *sc,
                          const struct harness_run_opts *o, struct harness_result *res);
/* Adds a failure message to res (at most HARNESS_MAX_FAILURES are kept; all are counted). */
void harness__result_fail(struct harness_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- an external client (client.c) ---- */
struct harness__client;
struct harness__client_vars {
    const char *host;
    int port, admin_port;
    uint64_t seed;
    const char *scenario_dir; /* shell-quoted into {scenario_dir} */
};
/* The command with {host}, {port}, {admin_port}, {seed} and {scenario_dir} replaced (other
 * text, braces included, as is); NULL when out of memory. */
char *harness__client_command(const char *tmpl, const struct harness__client_vars *v);
/* Runs command with /bin/sh -c in a new process group, stdin /dev/null, stdout and stderr
 * kept, MOCKGW_HOST/MOCKGW_PORT/MOCKGW_ADMIN_PORT in its environment. 0, or a negative libuv
 * code; *out is set either way and must be closed (harness__client_close) and freed. */
int harness__client_start(uv_loop_t *loop, const char *command,
                          const struct harness__client_vars *v, struct harness__client **out);
bool harness__client_exited(const struct harness__client *c);
/* From its start to its exit (or to now while it runs). */
uint64_t harness__client_ms(const struct harness__client *c);
/* The exit status, 128 + N when killed by signal N, -1 before it exited. */
int harness__client_status(const struct harness__client *c);
/* sig to the client's process group (only its own). */
void harness__client_signal(struct harness__client *c, int sig);
/* SIGKILL to the group if still running, then closes the handles; closed() once they are. */
void harness__client_close(struct harness__client *c);
bool harness__client_closed(const struct harness__client *c);
/* Both output pipes reached EOF (or were closed). */
bool harness__client_output_done(const struct harness__client *c);
/* Its output so far (heap, NUL bytes as spaces); NULL when out of memory. */
char *harness__client_output(const struct harness__client *c);
void harness__client_free(struct harness__client *c);

/* This process's resident set (KiB) and open descriptors; -1 when /proc cannot tell. */
long harness__rss_kib(void);
int harness__fd_count(void);
/* "2026-11-25T18:30:00.123Z" (the journal's and the telemetry's "t"/"wall") as ms since the
 * epoch; false when it is not that. */
bool harness__iso_ms(const char *s, uint64_t *ms);
/* The median of v[0..n) (sorts v); 0 for n == 0. */
double harness__median(double *v, size_t n);

#endif /* HARNESS_INTERNAL_H */
