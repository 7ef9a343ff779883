/* Running a generator: every schedule as its own scenario (the real core, a fresh gateway, all
 * the invariants), and for a failing one: a second run to tell a reproducible failure from a
 * timing accident, the shrinker, and the minimal schedule written out as a scenario file with
 * the command that replays it. */
#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SIGNATURE_CAP 96

void harness__result_fail(struct harness_result *res, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    res->verdict = HARNESS_FAIL;
    res->n_failures_total++;
    if (res->n_failures >= HARNESS_MAX_FAILURES)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if ((res->failures[res->n_failures] = harness__strdup(buf)) != NULL)
        res->n_failures++;
}

/* What kind of failure a message is, without its numbers: "$.steps[#].expect.status:
 * operation # of # ended " or "invariant: # operations never completed". Two runs fail "the same
 * way" when they share a signature; a shrunk schedule's steps move, so their indexes go too. */
static void signature(const char *msg, char *out, size_t cap)
{
    size_t n = 0;

    for (const char *c = msg; *c != '\0' && *c != '"' && *c != '(' && n + 1 < cap; c++) {
        if (*c >= '0' && *c <= '9') {
            while (c[1] >= '0' && c[1] <= '9')
                c++;
            out[n++] = '#';
        } else {
            out[n++] = *c;
        }
    }
    out[n] = '\0';
}

static bool has_signature(const struct harness_result *res, const char *sig)
{
    char s[SIGNATURE_CAP];

    for (unsigned i = 0; i < res->n_failures; i++) {
        signature(res->failures[i], s, sizeof s);
        if (strcmp(s, sig) == 0)
            return true;
    }
    return false;
}

struct explore {
    uv_loop_t *loop;
    const struct harness_scenario *sc;
    const struct harness_run_opts *o;
    char sig[SIGNATURE_CAP]; /* the failure the shrinker keeps */
    char load_err[512];
};

/* Runs schedule s as a scenario. 0 with res filled; < 0 when the generated text did not load
 * (a generator bug: load_err says why) or the loop failed. */
static int run_schedule(struct explore *ex, const struct harness_schedule *s,
                        struct harness_result *res)
{
    struct harness_run_opts o = *ex->o;
    struct harness_scenario *one;
    struct harness_err err;
    char *text = harness_schedule_to_json(ex->sc, s, false);
    int rc;

    memset(res, 0, sizeof *res);
    if (text == NULL)
        return UV_ENOMEM;
    one = harness_scenario_parse(text, strlen(text), ex->sc->path, &err);
    free(text);
    if (one == NULL) {
        snprintf(ex->load_err, sizeof ex->load_err, "%s", err.msg);
        return UV_EINVAL;
    }
    o.has_seed = true;
    o.seed = s->seed;
    rc = harness_run(ex->loop, one, &o, res);
    harness_scenario_free(one);
    return rc;
}

static bool still_fails(const struct harness_schedule *cand, void *data)
{
    struct explore *ex = data;
    struct harness_result res;
    bool fails;

    if (run_schedule(ex, cand, &res) < 0)
        return false;
    fails = res.verdict == HARNESS_FAIL && has_signature(&res, ex->sig);
    harness_result_clear(&res);
    return fails;
}

/* Writes the scenario of s to DIR/NAME-seedS-scheduleI.json; the path (malloc'd) or NULL with
 * why filled. */
static char *write_artifact(struct explore *ex, const struct harness_schedule *s, uint64_t seed,
                            char *why, size_t cap)
{
    const char *dir = ex->o->artifacts_dir;
    char path[4096], *text;
    FILE *f;
    int ok;

    if (dir == NULL || dir[0] == '\0')
        dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    if (snprintf(path, sizeof path, "%s/%s-seed%llu-schedule%u.json", dir, ex->sc->name,
                 (unsigned long long)seed, s->index) >= (int)sizeof path) {
        snprintf(why, cap, "%.400s: path too long", dir);
        return NULL;
    }
    if ((text = harness_schedule_to_json(ex->sc, s, true)) == NULL) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    errno = 0;
    f = fopen(path, "w");
    ok = f != NULL && fputs(text, f) != EOF && fputc('\n', f) != EOF;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    free(text);
    if (!ok) {
        snprintf(why, cap, "%.400s: %s", path, strerror(errno != 0 ? errno : EIO));
        return NULL;
    }
    return harness__strdup(path);
}

/* A schedule failed: say how, check that it fails again, shrink it, write the minimal one. */
static void report_failure(struct explore *ex, struct harness_schedule *s,
                           struct harness_result *first, uint64_t seed, struct harness_result *res)
{
    const struct harness_generate *g = ex->sc->generate;
    struct harness_shrink_stats st = { 0 };
    struct harness_result again;
    bool reproduced;
    char why[512], *desc, *path;
    unsigned before = harness_schedule_len(s);

    harness__result_fail(res, "schedule %u of %u (seed %llu) failed:", s->index, g->schedules,
                         (unsigned long long)s->seed);
    for (unsigned i = 0; i < first->n_failures && i < 4; i++)
        harness__result_fail(res, "  %s", first->failures[i]);
    if (res->core_log == NULL) {
        res->core_log = first->core_log;
        first->core_log = NULL;
    }
    signature(first->failures[0], ex->sig, sizeof ex->sig);
    reproduced = run_schedule(ex, s, &again) == 0 && again.verdict == HARNESS_FAIL &&
                 has_signature(&again, ex->sig);
    harness_result_clear(&again);
    if (!reproduced) {
        harness__result_fail(res, "it did not fail that way again on a second run (timing): "
                                  "written out as it ran, not shrunk");
    } else if (g->shrink_runs > 0) {
        if (harness_shrink(s, still_fails, ex, g->shrink_runs, g->shrink_ms, &st) < 0)
            harness__result_fail(res, "shrinking ran out of memory");
        else
            harness__result_fail(res, "shrunk from %u to %u steps in %u runs%s", before,
                                 st.steps_after, st.runs,
                                 st.out_of_budget ? " (budget spent: may not be minimal)" : "");
    }
    if ((desc = harness_schedule_describe(s)) != NULL) {
        harness__result_fail(res, "minimal schedule: %s", desc);
        free(desc);
    }
    if ((path = write_artifact(ex, s, seed, why, sizeof why)) == NULL) {
        harness__result_fail(res, "the schedule could not be written: %s", why);
        return;
    }
    harness__result_fail(res, "minimal schedule written to %s", path);
    if (res->artifact == NULL) {
        res->artifact = path;
        res->artifact_seed = s->seed;
    } else {
        free(path);
    }
}

int harness__generate_run(uv_loop_t *loop, const struct harness_scenario *sc,
                          const struct harness_run_opts *o, struct harness_result *res)
{
    const struct harness_generate *g = sc->generate;
    struct explore ex;
    uint64_t t0 = uv_hrtime(), seed;
    unsigned failed = 0, skipped = 0, i;
    int rc = 0;

    memset(res, 0, sizeof *res);
    memset(&ex, 0, sizeof ex);
    ex.loop = loop;
    ex.sc = sc;
    ex.o = o;
    seed = o->has_seed ? o->seed : sc->has_seed ? sc->seed : 1;
    res->seed = seed;
    res->verdict = HARNESS_PASS;
    for (i = 0; i < g->schedules && failed < g->max_failures; i++) {
        struct harness_schedule s;
        struct harness_result one;

        if ((uv_hrtime() - t0) / 1000000u >= sc->timeout_ms) {
            harness__result_fail(res,
                                 "the generator's hard deadline (%llu ms) passed after %u of %u "
                                 "schedules",
                                 (unsigned long long)sc->timeout_ms, i, g->schedules);
            break;
        }
        if ((rc = harness_schedule_make(g, seed, i, &s)) < 0)
            break;
        rc = run_schedule(&ex, &s, &one);
        if (rc == 0 && harness_interrupted() != 0) { /* its failure says where it stopped */
            for (unsigned k = 0; k < one.n_failures; k++)
                harness__result_fail(res, "schedule %u of %u: %s", i, g->schedules,
                                     one.failures[k]);
            if (one.n_failures == 0) {
                char buf[32];

                harness__result_fail(res, "interrupted by %s after schedule %u of %u",
                                     harness_signal_name(harness_interrupted(), buf, sizeof buf), i,
                                     g->schedules);
            }
            harness_result_clear(&one);
            harness_schedule_clear(&s);
            i++;
            break;
        }
        if (rc == UV_EINVAL) {
            harness__result_fail(res, "schedule %u: the generated scenario does not load: %s", i,
                                 ex.load_err);
            harness_schedule_clear(&s);
            rc = 0;
            failed++;
            continue;
        }
        if (rc < 0) {
            harness_schedule_clear(&s);
            break;
        }
        if (one.verdict == HARNESS_SKIP) {
            skipped++;
            snprintf(res->skip_reason, sizeof res->skip_reason, "%s", one.skip_reason);
        } else if (one.verdict == HARNESS_FAIL) {
            failed++;
            if (one.n_failures == 0)
                harness__result_fail(res, "schedule %u failed without a message", i);
            else
                report_failure(&ex, &s, &one, seed, res);
        }
        harness_result_clear(&one);
        harness_schedule_clear(&s);
        if (skipped > 0) /* the same reason holds for every schedule */
            break;
    }
    res->schedules = i;
    res->duration_ms = (uv_hrtime() - t0) / 1000000u;
    if (skipped > 0 && failed == 0) {
        res->verdict = HARNESS_SKIP;
    } else {
        double per_s = res->duration_ms > 0 ? i * 1000.0 / (double)res->duration_ms : 0;

        snprintf(res->measure, sizeof res->measure, "%u schedules, %u failed, %.1f/s", i, failed,
                 per_s);
    }
    return rc;
}
