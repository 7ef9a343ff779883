/* The JSON reader of the scenario loader: typed getters that name the path and the reason. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void harness__fail(struct harness__jr *jr, const char *path, const char *fmt, ...)
{
    char reason[384];
    va_list ap;
    int n;

    if (jr->err->msg[0] != '\0') /* the first error wins */
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (jr->name != NULL && path != NULL)
        n = snprintf(jr->err->msg, sizeof jr->err->msg, "%s: %s: %s", jr->name, path, reason);
    else if (jr->name != NULL)
        n = snprintf(jr->err->msg, sizeof jr->err->msg, "%s: %s", jr->name, reason);
    else if (path != NULL)
        n = snprintf(jr->err->msg, sizeof jr->err->msg, "%s: %s", path, reason);
    else
        n = snprintf(jr->err->msg, sizeof jr->err->msg, "%s", reason);
    if (n < 0)
        snprintf(jr->err->msg, sizeof jr->err->msg, "invalid scenario");
}

static void path_fit(char *out, size_t cap, int n)
{
    if (n < 0 || (size_t)n >= cap) /* keep it readable: the path ends in "..." */
        memcpy(out + cap - 4, "...", 4);
}

void harness__path_key(char *out, size_t cap, const char *base, const char *key)
{
    path_fit(out, cap, snprintf(out, cap, "%s.%s", base, key));
}

void harness__path_index(char *out, size_t cap, const char *base, unsigned i)
{
    path_fit(out, cap, snprintf(out, cap, "%s[%u]", base, i));
}

/* Levenshtein distance, capped: enough to suggest a key for a typo. */
static unsigned distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[64], prev, tmp;

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned best = prev + (a[i - 1] != b[j - 1]);

            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

int harness__keys(struct harness__jr *jr, const cJSON *obj, const char *path,
                  const char *const *allowed)
{
    const cJSON *it, *o;
    char p[HARNESS__PATH_CAP];

    cJSON_ArrayForEach(it, obj)
    {
        const char *best = NULL;
        unsigned best_d = 3;
        bool known = false;

        for (unsigned i = 0; allowed[i] != NULL; i++) {
            unsigned d;

            if (strcmp(allowed[i], it->string) == 0) {
                known = true;
                break;
            }
            d = distance(allowed[i], it->string);
            if (strlen(it->string) >= 3 && strncmp(allowed[i], it->string, strlen(it->string)) == 0)
                d = 1; /* a prefix: "deadline" for "deadline_ms" */
            if (d < best_d) {
                best_d = d;
                best = allowed[i];
            }
        }
        harness__path_key(p, sizeof p, path, it->string);
        if (!known) {
            if (best != NULL)
                harness__fail(jr, p, "unknown key \"%s\" (did you mean \"%s\"?)", it->string, best);
            else
                harness__fail(jr, p, "unknown key \"%s\"", it->string);
            return -1;
        }
        for (o = obj->child; o != it; o = o->next) {
            if (strcmp(o->string, it->string) == 0) {
                harness__fail(jr, p, "key given twice");
                return -1;
            }
        }
    }
    return 0;
}

int harness__object(struct harness__jr *jr, const cJSON *v, const char *path)
{
    if (cJSON_IsObject(v))
        return 0;
    harness__fail(jr, path, "expected an object");
    return -1;
}

int harness__array(struct harness__jr *jr, const cJSON *v, const char *path, unsigned max,
                   unsigned *n)
{
    int size;

    if (!cJSON_IsArray(v)) {
        harness__fail(jr, path, "expected an array");
        return -1;
    }
    size = cJSON_GetArraySize(v);
    if (size < 0 || (unsigned)size > max) {
        harness__fail(jr, path, "at most %u elements", max);
        return -1;
    }
    *n = (unsigned)size;
    return 0;
}

int harness__string(struct harness__jr *jr, const cJSON *v, const char *path, size_t max,
                    const char **out)
{
    size_t len;

    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        harness__fail(jr, path, "expected a string");
        return -1;
    }
    len = strlen(v->valuestring);
    if (len == 0) {
        harness__fail(jr, path, "must not be empty");
        return -1;
    }
    if (len > max) {
        harness__fail(jr, path, "longer than %zu characters", max);
        return -1;
    }
    for (const unsigned char *s = (const unsigned char *)v->valuestring; *s != '\0'; s++) {
        if (*s < 0x20 || *s == 0x7f) {
            harness__fail(jr, path, "control characters are not allowed");
            return -1;
        }
    }
    *out = v->valuestring;
    return 0;
}

int harness__bool(struct harness__jr *jr, const cJSON *v, const char *path, bool *out)
{
    if (!cJSON_IsBool(v)) {
        harness__fail(jr, path, "expected true or false");
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

#define MAX_EXACT 9007199254740991.0 /* 2^53 - 1: every integer up to here is a double */

static bool whole(const cJSON *v)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
           floor(v->valuedouble) == v->valuedouble && fabs(v->valuedouble) <= MAX_EXACT;
}

int harness__uint(struct harness__jr *jr, const cJSON *v, const char *path, uint64_t max,
                  uint64_t *out)
{
    if (!whole(v) || v->valuedouble < 0) {
        harness__fail(jr, path, "expected a non-negative integer");
        return -1;
    }
    if (v->valuedouble > (double)max) {
        harness__fail(jr, path, "must be at most %llu", (unsigned long long)max);
        return -1;
    }
    *out = (uint64_t)v->valuedouble;
    return 0;
}

int harness__int(struct harness__jr *jr, const cJSON *v, const char *path, int64_t lo, int64_t hi,
                 int64_t *out)
{
    if (!whole(v)) {
        harness__fail(jr, path, "expected an integer");
        return -1;
    }
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        harness__fail(jr, path, "must be between %lld and %lld", (long long)lo, (long long)hi);
        return -1;
    }
    *out = (int64_t)v->valuedouble;
    return 0;
}

int harness__range(struct harness__jr *jr, const cJSON *v, const char *path,
                   struct harness_range *out)
{
    static const char *const keys[] = { "min", "max", NULL };
    const cJSON *lo, *hi;
    char p[HARNESS__PATH_CAP];
    uint64_t x;

    if (cJSON_IsNumber(v)) {
        if (harness__uint(jr, v, path, (uint64_t)MAX_EXACT, &x) < 0)
            return -1;
        out->set = true;
        out->min = out->max = (int64_t)x;
        return 0;
    }
    if (!cJSON_IsObject(v)) {
        harness__fail(jr, path, "expected a non-negative integer or {\"min\": N, \"max\": M}");
        return -1;
    }
    if (harness__keys(jr, v, path, keys) < 0)
        return -1;
    lo = cJSON_GetObjectItemCaseSensitive(v, "min");
    hi = cJSON_GetObjectItemCaseSensitive(v, "max");
    if (lo == NULL && hi == NULL) {
        harness__fail(jr, path, "needs \"min\", \"max\" or both");
        return -1;
    }
    out->min = 0;
    out->max = INT64_MAX;
    if (lo != NULL) {
        harness__path_key(p, sizeof p, path, "min");
        if (harness__uint(jr, lo, p, (uint64_t)MAX_EXACT, &x) < 0)
            return -1;
        out->min = (int64_t)x;
    }
    if (hi != NULL) {
        harness__path_key(p, sizeof p, path, "max");
        if (harness__uint(jr, hi, p, (uint64_t)MAX_EXACT, &x) < 0)
            return -1;
        out->max = (int64_t)x;
    }
    if (out->min > out->max) {
        harness__fail(jr, path, "min is greater than max");
        return -1;
    }
    out->set = true;
    return 0;
}

void harness__line_col(const char *text, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i] != '\0'; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

bool harness_range_holds(const struct harness_range *r, int64_t v)
{
    return !r->set || (v >= r->min && v <= r->max);
}

const char *harness_range_str(const struct harness_range *r, char *buf, size_t cap)
{
    if (r->min == r->max)
        snprintf(buf, cap, "%lld", (long long)r->min);
    else if (r->max == INT64_MAX)
        snprintf(buf, cap, ">= %lld", (long long)r->min);
    else if (r->min == 0)
        snprintf(buf, cap, "<= %lld", (long long)r->max);
    else
        snprintf(buf, cap, "%lld..%lld", (long long)r->min, (long long)r->max);
    return buf;
}

char *harness__strdup(const char *s)
{
    size_t n;
    char *d;

    if (s == NULL)
        return NULL;
    n = strlen(s) + 1;
    if ((d = malloc(n)) != NULL)
        memcpy(d, s, n);
    return d;
}

char *harness_shell_quote(const char *s)
{
    size_t n = 2;
    bool plain = *s != '\0';
    char *out, *o;

    for (const char *c = s; *c != '\0'; c++) {
        if (!(strchr("/._-+=:,@%", *c) != NULL || (*c >= '0' && *c <= '9') ||
              (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
            plain = false;
        n += *c == '\'' ? 4 : 1;
    }
    if (plain)
        return harness__strdup(s);
    if ((out = malloc(n + 1)) == NULL)
        return NULL;
    o = out;
    *o++ = '\'';
    for (const char *c = s; *c != '\0'; c++) {
        if (*c == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *c;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}
