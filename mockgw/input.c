/* Reading user input: JSON files with path-named errors. Contracts in input.h. */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mockgw.h"

void mgw__jin_fail(struct mgw__jin *in, const char *path, const char *fmt, ...)
{
    char reason[320];
    const char *name = in->name;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (name != NULL && path != NULL)
        snprintf(in->err->msg, sizeof in->err->msg, "%s: %s: %s", name, path, reason);
    else if (name != NULL || path != NULL)
        snprintf(in->err->msg, sizeof in->err->msg, "%s: %s", name != NULL ? name : path, reason);
    else
        snprintf(in->err->msg, sizeof in->err->msg, "%s", reason);
}

void mgw__jin_path_key(char *out, size_t cap, const char *base, const char *key)
{
    int n = snprintf(out, cap, "%s.%s", base, key);

    if (n < 0 || (size_t)n >= cap)
        memcpy(out + cap - 4, "...", 4);
}

void mgw__jin_path_index(char *out, size_t cap, const char *base, unsigned i)
{
    int n = snprintf(out, cap, "%s[%u]", base, i);

    if (n < 0 || (size_t)n >= cap)
        memcpy(out + cap - 4, "...", 4);
}

bool mgw__jin_in_list(const char *key, const char *const *names)
{
    for (; *names != NULL; names++) {
        if (strcmp(*names, key) == 0)
            return true;
    }
    return false;
}

int mgw__jin_check_keys(struct mgw__jin *in, const cJSON *obj, const char *path,
                        const char *const *allowed)
{
    const cJSON *it, *prev;
    char p[MGW__JIN_PATH_CAP];

    for (it = obj->child; it != NULL; it = it->next) {
        mgw__jin_path_key(p, sizeof p, path, it->string);
        if (!mgw__jin_in_list(it->string, allowed)) {
            mgw__jin_fail(in, p, "unknown key");
            return -1;
        }
        for (prev = obj->child; prev != it; prev = prev->next) {
            if (strcmp(prev->string, it->string) == 0) {
                mgw__jin_fail(in, p, "key given twice");
                return -1;
            }
        }
    }
    return 0;
}

int mgw__jin_object(struct mgw__jin *in, const cJSON *v, const char *path)
{
    if (!cJSON_IsObject(v)) {
        mgw__jin_fail(in, path, "expected an object");
        return -1;
    }
    return 0;
}

int mgw__jin_string(struct mgw__jin *in, const cJSON *v, const char *path, const char **out)
{
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        mgw__jin_fail(in, path, "expected a string");
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

int mgw__jin_int(struct mgw__jin *in, const cJSON *v, const char *path, int64_t lo, int64_t hi,
                 int64_t *out)
{
    double d;

    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble)) {
        mgw__jin_fail(in, path, "expected an integer");
        return -1;
    }
    d = v->valuedouble;
    /* Compared as doubles: a huge number must not reach the int64_t conversion. */
    if (d < (double)lo || d > (double)hi) {
        mgw__jin_fail(in, path, "must be between %lld and %lld", (long long)lo, (long long)hi);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

int mgw__jin_array(struct mgw__jin *in, const cJSON *v, const char *path, unsigned max,
                   const char *what, unsigned *n)
{
    int count;

    if (!cJSON_IsArray(v)) {
        mgw__jin_fail(in, path, "expected an array");
        return -1;
    }
    count = cJSON_GetArraySize(v);
    if (count < 0 || (unsigned)count > max) {
        mgw__jin_fail(in, path, "more than %u %s", max, what);
        return -1;
    }
    *n = (unsigned)count;
    return 0;
}

void mgw__jin_line_col(const char *json, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (json[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* "invalid JSON at line L, column C[ (byte B)]SUFFIX" for byte offset off. */
static void fail_at(struct mgw__jin *in, const char *json, size_t off, unsigned flags,
                    const char *suffix)
{
    unsigned line, col;
    char byte[32] = "";

    mgw__jin_line_col(json, off, &line, &col);
    if (flags & MGW__JIN_BYTE_OFFSET)
        snprintf(byte, sizeof byte, " (byte %zu)", off);
    mgw__jin_fail(in, NULL, "invalid JSON at line %u, column %u%s%s", line, col, byte, suffix);
}

cJSON *mgw__jin_parse(struct mgw__jin *in, const char *json, size_t len, unsigned flags)
{
    const char *end = NULL;
    cJSON *doc;

    if (json == NULL || len == 0) {
        mgw__jin_fail(in, NULL, "empty input, expected a JSON object");
        return NULL;
    }
    doc = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (doc == NULL) {
        if (end == NULL || end < json || end > json + len) {
            mgw__jin_fail(in, NULL, "out of memory or invalid JSON");
            return NULL;
        }
        fail_at(in, json, (size_t)(end - json), flags, "");
        return NULL;
    }
    while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end < json + len && !(*end == '\0' && (flags & MGW__JIN_NUL_ENDS))) {
        fail_at(in, json, (size_t)(end - json), flags, ": text after the document");
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

char *mgw__jin_read_file(struct mgw__jin *in, const char *path, size_t cap, size_t *len)
{
    size_t alloc = 0, n = 0, want;
    char *buf = NULL, *grown;
    struct stat st;
    ssize_t got;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mgw__jin_fail(in, NULL, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        mgw__jin_fail(in, NULL, "%s", strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        mgw__jin_fail(in, NULL, "%s", strerror(EISDIR));
        goto fail;
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > cap)
        goto too_large;
    for (;;) {
        if (n == alloc) {
            if (alloc > cap)
                goto too_large;
            want = alloc == 0 ? 65536 : alloc * 2;
            if (want > cap + 1)
                want = cap + 1; /* one byte more tells "too large" from "exactly full" */
            if ((grown = realloc(buf, want + 1)) == NULL) {
                mgw__jin_fail(in, NULL, "out of memory");
                goto fail;
            }
            buf = grown;
            alloc = want;
        }
        got = read(fd, buf + n, alloc - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            mgw__jin_fail(in, NULL, "%s", strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > cap)
        goto too_large;
    close(fd);
    if (buf == NULL && (buf = malloc(1)) == NULL) {
        mgw__jin_fail(in, NULL, "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;

too_large:
    mgw__jin_fail(in, NULL, "file is larger than %zu MiB", cap >> 20);
fail:
    free(buf);
    close(fd);
    return NULL;
}

bool mgw__accounts_valid(const char *accounts, const char **why)
{
    const char *reason = NULL;

    if (accounts == NULL || *accounts == '\0')
        reason = "must not be empty";
    for (const char *c = accounts; reason == NULL && *c != '\0'; c++) {
        if (*c == ',' && (c == accounts || c[1] == '\0' || c[1] == ','))
            reason = "empty account code in the list";
        else if ((unsigned char)*c <= ' ' || (unsigned char)*c > '~')
            reason = "account codes must be printable, without spaces";
    }
    if (why != NULL)
        *why = reason;
    return reason == NULL;
}

int mgw__jin_name(struct mgw__jin *ld, const cJSON *v, const char *path, char **out)
{
    const char *s;
    size_t n;

    if (mgw__jin_string(ld, v, path, &s) < 0)
        return -1;
    n = strlen(s);
    if (n == 0) {
        mgw__jin_fail(ld, path, "must not be empty");
        return -1;
    }
    if (n > MGW__NAME_MAX) {
        mgw__jin_fail(ld, path, "longer than %u characters", MGW__NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            mgw__jin_fail(ld, path, "expected printable ASCII text");
            return -1;
        }
    }
    *out = strdup(s);
    if (*out == NULL) {
        mgw__jin_fail(ld, path, "out of memory");
        return -1;
    }
    return 0;
}
