/* Reports: the console table with the verdict as its last line, JSON, and JUnit XML. */
#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *verdict_name(enum harness_verdict v)
{
    return v == HARNESS_PASS ? "pass" : v == HARNESS_FAIL ? "fail" : "skip";
}

static unsigned count_verdict(const struct harness_report *r, enum harness_verdict v)
{
    unsigned n = 0;

    for (unsigned i = 0; i < r->n; i++)
        n += r->items[i].res.verdict == v;
    return n;
}

unsigned harness_report_failed(const struct harness_report *r)
{
    return count_verdict(r, HARNESS_FAIL);
}

static void levels_str(const struct harness_scenario *sc, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int l = 0; l < HARNESS_LEVEL_COUNT; l++)
        if (sc->levels & (1u << l))
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? "," : "",
                     harness_level_name((enum harness_level)l));
}

static void verdict_line(const struct harness_report *r, char *buf, size_t cap)
{
    unsigned failed = harness_report_failed(r), passed = count_verdict(r, HARNESS_PASS);

    char sig[32];

    if (r->interrupted != 0)
        snprintf(buf, cap, "DO NOT DEPLOY: interrupted by %s",
                 harness_signal_name(r->interrupted, sig, sizeof sig));
    else if (failed == 0 && passed > 0)
        snprintf(buf, cap, "DEPLOY: OK");
    else if (failed == 0) /* nothing passed: no evidence is not a pass */
        snprintf(buf, cap, "DO NOT DEPLOY: 0 failed, none passed");
    else
        snprintf(buf, cap, "DO NOT DEPLOY: %u failed", failed);
}

#define CLIENT_LINES 12

/* The last n lines of text, indented, under a heading. */
static void print_tail(FILE *out, const char *text, unsigned n)
{
    const char *p = text + strlen(text), *end;
    unsigned lines = 0;

    while (p > text && (p[-1] == '\n' || p[-1] == ' '))
        p--;
    if (p == text) {
        fprintf(out, "  client output: (none)\n");
        return;
    }
    end = p;
    while (p > text && lines < n)
        if (*--p == '\n' && ++lines == n)
            p++;
    if (p > text)
        fprintf(out, "  client output (the last %u lines):\n", n);
    else
        fprintf(out, "  client output:\n");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

        fprintf(out, "    | %.*s\n", (int)len, p);
        p += len + (nl != NULL);
    }
}

void harness_report_console(const struct harness_report *r, FILE *out)
{
    char lv[48], verdict[64];

    fprintf(out, "\n%-40s %-11s %-6s %9s  %s\n", "SCENARIO", "LEVEL", "RESULT", "TIME", "MEASURE");
    for (unsigned i = 0; i < r->n; i++) {
        const struct harness_report_item *it = &r->items[i];
        const char *res = it->res.verdict == HARNESS_PASS   ? "PASS"
                          : it->res.verdict == HARNESS_FAIL ? "FAIL"
                                                            : "SKIP";

        levels_str(it->sc, lv, sizeof lv);
        fprintf(out, "%-40s %-11s %-6s %7.2f s  %s\n", it->sc->name, lv, res,
                (double)it->res.duration_ms / 1000.0,
                it->res.verdict == HARNESS_SKIP ? it->res.skip_reason : it->res.measure);
    }
    for (unsigned i = 0; i < r->n; i++) {
        const struct harness_report_item *it = &r->items[i];

        if (it->res.verdict != HARNESS_FAIL)
            continue;
        fprintf(out, "\nFAIL %s (%s)\n", it->sc->name, it->sc->path);
        for (unsigned k = 0; k < it->res.n_failures; k++)
            fprintf(out, "  %s\n", it->res.failures[k]);
        if (it->res.n_failures_total > it->res.n_failures)
            fprintf(out, "  ... and %u more\n", it->res.n_failures_total - it->res.n_failures);
        if (it->res.client_output != NULL)
            print_tail(out, it->res.client_output, CLIENT_LINES);
        fprintf(out, "  replay: %s\n", it->replay);
    }
    verdict_line(r, verdict, sizeof verdict);
    fprintf(out, "\n%u scenario%s: %u passed, %u failed, %u skipped", r->n, r->n == 1 ? "" : "s",
            count_verdict(r, HARNESS_PASS), harness_report_failed(r),
            count_verdict(r, HARNESS_SKIP));
    if (r->not_run > 0)
        fprintf(out, ", %u not run", r->not_run);
    fprintf(out, " in %.1f s\n%s\n", (double)r->duration_ms / 1000.0, verdict);
    fflush(out);
}

static int write_file(const char *path, const char *text, struct harness_err *err)
{
    FILE *f = fopen(path, "w");
    int e;

    if (f == NULL || fputs(text, f) == EOF) {
        e = errno;
        if (f != NULL)
            fclose(f);
        snprintf(err->msg, sizeof err->msg, "%s: %s", path, strerror(e));
        return -e;
    }
    if (fclose(f) != 0) {
        e = errno;
        snprintf(err->msg, sizeof err->msg, "%s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

int harness_report_json(const struct harness_report *r, const char *path, struct harness_err *err)
{
    cJSON *doc = cJSON_CreateObject(), *sum, *list, *o, *a;
    char lv[48], verdict[64];
    char *text;
    int rc;

    verdict_line(r, verdict, sizeof verdict);
    if (doc == NULL)
        goto oom;
    cJSON_AddStringToObject(doc, "tool", "harness");
    cJSON_AddStringToObject(doc, "level", r->level != NULL ? r->level : "");
    cJSON_AddStringToObject(doc, "gateway", r->gateway);
    cJSON_AddNumberToObject(doc, "seed", (double)r->seed);
    sum = cJSON_AddObjectToObject(doc, "summary");
    cJSON_AddNumberToObject(sum, "total", r->n);
    cJSON_AddNumberToObject(sum, "passed", count_verdict(r, HARNESS_PASS));
    cJSON_AddNumberToObject(sum, "failed", harness_report_failed(r));
    cJSON_AddNumberToObject(sum, "skipped", count_verdict(r, HARNESS_SKIP));
    cJSON_AddNumberToObject(sum, "not_run", r->not_run);
    cJSON_AddNumberToObject(sum, "duration_ms", (double)r->duration_ms);
    if (r->interrupted != 0) {
        char sig[32];

        cJSON_AddStringToObject(sum, "interrupted",
                                harness_signal_name(r->interrupted, sig, sizeof sig));
    } else {
        cJSON_AddNullToObject(sum, "interrupted");
    }
    cJSON_AddBoolToObject(sum, "deploy", strcmp(verdict, "DEPLOY: OK") == 0);
    cJSON_AddStringToObject(sum, "verdict", verdict);
    list = cJSON_AddArrayToObject(doc, "scenarios");
    if (sum == NULL || list == NULL)
        goto oom;
    for (unsigned i = 0; i < r->n; i++) {
        const struct harness_report_item *it = &r->items[i];

        if ((o = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(list, o))
            goto oom;
        cJSON_AddStringToObject(o, "name", it->sc->name);
        cJSON_AddStringToObject(o, "file", it->sc->path);
        levels_str(it->sc, lv, sizeof lv);
        cJSON_AddStringToObject(o, "levels", lv);
        cJSON_AddStringToObject(o, "description", it->sc->description);
        cJSON_AddStringToObject(o, "result", verdict_name(it->res.verdict));
        cJSON_AddNumberToObject(o, "duration_ms", (double)it->res.duration_ms);
        cJSON_AddNumberToObject(o, "seed", (double)it->res.seed);
        cJSON_AddStringToObject(o, "measure", it->res.measure);
        if (it->res.verdict == HARNESS_SKIP)
            cJSON_AddStringToObject(o, "skip_reason", it->res.skip_reason);
        a = cJSON_AddArrayToObject(o, "failures");
        for (unsigned k = 0; a != NULL && k < it->res.n_failures; k++)
            cJSON_AddItemToArray(a, cJSON_CreateString(it->res.failures[k]));
        cJSON_AddNumberToObject(o, "failures_total", it->res.n_failures_total);
        cJSON_AddStringToObject(o, "replay", it->replay);
        if (it->sc->generate != NULL)
            cJSON_AddNumberToObject(o, "schedules", it->res.schedules);
        if (it->res.artifact != NULL)
            cJSON_AddStringToObject(o, "artifact", it->res.artifact);
        if (it->res.core_log != NULL)
            cJSON_AddStringToObject(o, "core_log", it->res.core_log);
        if (it->sc->client != NULL) {
            if (it->res.client_exit >= 0)
                cJSON_AddNumberToObject(o, "client_exit", it->res.client_exit);
            else
                cJSON_AddNullToObject(o, "client_exit");
            cJSON_AddStringToObject(o, "client_output",
                                    it->res.client_output != NULL ? it->res.client_output : "");
        }
    }
    if ((text = cJSON_Print(doc)) == NULL)
        goto oom;
    cJSON_Delete(doc);
    {
        size_t n = strlen(text);
        char *withnl = malloc(n + 2);

        if (withnl == NULL) {
            cJSON_free(text);
            goto oom_nodoc;
        }
        memcpy(withnl, text, n);
        withnl[n] = '\n';
        withnl[n + 1] = '\0';
        cJSON_free(text);
        rc = write_file(path, withnl, err);
        free(withnl);
    }
    return rc;

oom:
    cJSON_Delete(doc);
oom_nodoc:
    snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
    return -ENOMEM;
}

/* A growing text buffer; oom sticks once an append failed. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

/* Appends s, XML-escaped when escape is set. */
static void sb_put(struct sbuf *b, const char *s, bool escape)
{
    for (; *s != '\0' && !b->oom; s++) {
        char tmp[8];
        const char *add = tmp;
        size_t n;

        if (escape && *s == '&')
            add = "&amp;";
        else if (escape && *s == '<')
            add = "&lt;";
        else if (escape && *s == '>')
            add = "&gt;";
        else if (escape && *s == '"')
            add = "&quot;";
        else if (escape && (unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
            add = "?"; /* not allowed in XML 1.0 */
        else {
            tmp[0] = *s;
            tmp[1] = '\0';
        }
        n = strlen(add);
        if (b->len + n + 1 > b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 4096;
            char *np = realloc(b->p, cap);

            if (np == NULL) {
                b->oom = true;
                return;
            }
            b->p = np;
            b->cap = cap;
        }
        memcpy(b->p + b->len, add, n + 1);
        b->len += n;
    }
}

static void sb_fmt(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_fmt(struct sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, false);
}

static void sb_attr(struct sbuf *b, const char *name, const char *value)
{
    sb_fmt(b, " %s=\"", name);
    sb_put(b, value, true);
    sb_put(b, "\"", false);
}

static void sb_prop(struct sbuf *b, const char *name, const char *value)
{
    sb_put(b, "        <property", false);
    sb_attr(b, "name", name);
    sb_attr(b, "value", value);
    sb_put(b, "/>\n", false);
}

int harness_report_junit(const struct harness_report *r, const char *path, struct harness_err *err)
{
    struct sbuf b = { 0 };
    char num[64], lv[48];
    int rc;

    sb_put(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", false);
    sb_fmt(&b,
           "<testsuites name=\"harness\" tests=\"%u\" failures=\"%u\" errors=\"0\" "
           "skipped=\"%u\" time=\"%.3f\">\n",
           r->n, harness_report_failed(r), count_verdict(r, HARNESS_SKIP),
           (double)r->duration_ms / 1000.0);
    sb_put(&b, "  <testsuite", false);
    sb_attr(&b, "name", r->level != NULL ? r->level : "scenarios");
    sb_fmt(&b, " tests=\"%u\" failures=\"%u\" errors=\"0\" skipped=\"%u\" time=\"%.3f\">\n", r->n,
           harness_report_failed(r), count_verdict(r, HARNESS_SKIP),
           (double)r->duration_ms / 1000.0);
    for (unsigned i = 0; i < r->n; i++) {
        const struct harness_report_item *it = &r->items[i];

        levels_str(it->sc, lv, sizeof lv);
        sb_put(&b, "    <testcase", false);
        snprintf(num, sizeof num, "harness.%s", harness_level_name(harness_scenario_level(it->sc)));
        sb_attr(&b, "classname", num);
        sb_attr(&b, "name", it->sc->name);
        sb_attr(&b, "file", it->sc->path);
        sb_fmt(&b, " time=\"%.3f\">\n", (double)it->res.duration_ms / 1000.0);
        sb_put(&b, "      <properties>\n", false);
        snprintf(num, sizeof num, "%llu", (unsigned long long)it->res.seed);
        sb_prop(&b, "seed", num);
        sb_prop(&b, "levels", lv);
        sb_prop(&b, "replay", it->replay);
        sb_prop(&b, "measure", it->res.measure);
        if (it->res.artifact != NULL)
            sb_prop(&b, "artifact", it->res.artifact);
        sb_put(&b, "      </properties>\n", false);
        if (it->res.verdict == HARNESS_FAIL) {
            sb_put(&b, "      <failure type=\"scenario\"", false);
            sb_attr(&b, "message", it->res.n_failures > 0 ? it->res.failures[0] : "failed");
            sb_put(&b, ">", false);
            for (unsigned k = 0; k < it->res.n_failures; k++) {
                sb_put(&b, it->res.failures[k], true);
                sb_put(&b, "\n", false);
            }
            sb_put(&b, "replay: ", false);
            sb_put(&b, it->replay, true);
            sb_put(&b, "\n</failure>\n", false);
        } else if (it->res.verdict == HARNESS_SKIP) {
            sb_put(&b, "      <skipped", false);
            sb_attr(&b, "message", it->res.skip_reason);
            sb_put(&b, "/>\n", false);
        }
        sb_put(&b, "      <system-out>", false);
        sb_put(&b, it->sc->description, true);
        if (it->res.core_log != NULL) {
            sb_put(&b, "\ncore log:\n", false);
            sb_put(&b, it->res.core_log, true);
        }
        if (it->res.client_output != NULL) {
            sb_put(&b, "\nclient output:\n", false);
            sb_put(&b, it->res.client_output, true);
        }
        sb_put(&b, "</system-out>\n    </testcase>\n", false);
    }
    sb_put(&b, "  </testsuite>\n</testsuites>\n", false);
    if (b.oom) {
        free(b.p);
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return -ENOMEM;
    }
    rc = write_file(path, b.p, err);
    free(b.p);
    return rc;
}
