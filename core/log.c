/* The core's log: one process-wide sink for JSON lines (breaker telemetry, pool events).
 *
 * The default sink writes to stderr every line at or above $IBCORE_LOG_LEVEL (error, warn, info,
 * debug or off; warn when unset or unknown), read once on first use. ibcore_log_set() replaces
 * it; NULL silences the core. Everything runs on the loop's thread, so no locking. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void to_stderr(enum ibcore_log_level level, const char *json, void *data);

static ibcore_log_fn sink = to_stderr;
static void *sink_data;
static int stderr_max = -2; /* -2: not read yet; -1: off */

static int env_level(void)
{
    const char *v = getenv("IBCORE_LOG_LEVEL");

    if (v == NULL)
        return IBCORE_LOG_WARN;
    if (strcmp(v, "off") == 0)
        return -1;
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (strcmp(v, level_names[i]) == 0)
            return i;
    return IBCORE_LOG_WARN;
}

static void to_stderr(enum ibcore_log_level level, const char *json, void *data)
{
    (void)data;
    if (stderr_max == -2)
        stderr_max = env_level();
    if ((int)level <= stderr_max)
        fprintf(stderr, "%s\n", json);
}

const char *ibcore_log_level_name(enum ibcore_log_level level)
{
    if ((unsigned)level < sizeof level_names / sizeof level_names[0])
        return level_names[level];
    return "unknown";
}

void ibcore_log_set(ibcore_log_fn fn, void *data)
{
    sink = fn;
    sink_data = data;
}

void ibcore_log_get(ibcore_log_fn *fn, void **data)
{
    if (fn != NULL)
        *fn = sink;
    if (data != NULL)
        *data = sink_data;
}

void ibcore_log_default(void)
{
    sink = to_stderr;
    sink_data = NULL;
    stderr_max = -2;
}

bool ibcore__log_wants(enum ibcore_log_level level)
{
    if (sink == NULL)
        return false;
    if (sink != to_stderr)
        return true;
    if (stderr_max == -2)
        stderr_max = env_level();
    return (int)level <= stderr_max;
}

void ibcore__log(enum ibcore_log_level level, const char *json)
{
    if (sink != NULL)
        sink(level, json, sink_data);
}

bool ibcore__vfields(char *buf, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, cap, fmt, ap);

    return n >= 0 && (size_t)n < cap;
}
