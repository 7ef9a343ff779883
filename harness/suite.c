/* Finding the scenarios of a level: DIR/basic, DIR/standard, DIR/exhaustive (cumulative). */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Messages may be cut at the buffer's size (long paths): that is fine for a message. */
static void set_err(struct harness_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(struct harness_err *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

static int json_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);

    return e->d_name[0] != '.' && n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

void harness_suite_free(struct harness_scenario **list, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        harness_scenario_free(list[i]);
    free(list);
}

int harness_suite_load(const char *dir, enum harness_level level, struct harness_scenario ***out,
                       unsigned *n, struct harness_err *err)
{
    struct harness_scenario **list = NULL;
    unsigned count = 0, cap = 0;
    struct stat sb;

    err->msg[0] = '\0';
    *out = NULL;
    *n = 0;
    if (stat(dir, &sb) != 0) {
        set_err(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        set_err(err, "%s: not a directory", dir);
        return -1;
    }
    for (int l = 0; l <= (int)level; l++) {
        struct dirent **names = NULL;
        char sub[4096];
        int k;

        if (snprintf(sub, sizeof sub, "%s/%s", dir, harness_level_name((enum harness_level)l)) >=
            (int)sizeof sub) {
            set_err(err, "%s: path too long", dir);
            goto fail;
        }
        if (stat(sub, &sb) != 0)
            continue; /* a level with no scenarios yet */
        if ((k = scandir(sub, &names, json_file, alphasort)) < 0) {
            set_err(err, "%s: %s", sub, strerror(errno));
            goto fail;
        }
        for (int i = 0; i < k; i++) {
            char path[4096 + 256];
            struct harness_scenario *sc = NULL;
            int bad =
                snprintf(path, sizeof path, "%s/%s", sub, names[i]->d_name) >= (int)sizeof path;

            if (!bad) {
                sc = harness_scenario_load(path, err);
                bad = sc == NULL;
            }
            if (!bad && (int)harness_scenario_level(sc) != l) {
                set_err(err, "%s: $.levels: the lowest level is \"%s\", but the file is in %s/",
                        path, harness_level_name(harness_scenario_level(sc)),
                        harness_level_name((enum harness_level)l));
                bad = 1;
            }
            if (!bad && count == cap) {
                struct harness_scenario **nl;

                cap = cap ? cap * 2 : 32;
                if ((nl = realloc(list, cap * sizeof *nl)) == NULL) {
                    set_err(err, "out of memory");
                    bad = 1;
                } else {
                    list = nl;
                }
            }
            if (bad) {
                harness_scenario_free(sc);
                for (int j = i; j < k; j++)
                    free(names[j]);
                free(names);
                goto fail;
            }
            list[count++] = sc;
            free(names[i]);
        }
        free(names);
    }
    *out = list;
    *n = count;
    return 0;

fail:
    harness_suite_free(list, count);
    return -1;
}
