/* Reading user input: JSON files with path-named errors (private to libmockgw).
 *
 * The fixtures and script loaders share these. Every failure fills the loader's struct mgw_err
 * with "NAME: PATH: REASON" (see mgw__jin_fail) and returns -1 or NULL; nothing here prints.
 * Paths are JSONPath-like: "$.rules[3].match.phase".
 */
#ifndef MGW_INPUT_H
#define MGW_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct mgw_err;

#define MGW__JIN_PATH_CAP 200 /* JSON path buffers; a longer path ends in "..." */

/* One loader run: what the input is called and where its first error goes. Both borrowed. */
struct mgw__jin {
    const char *name; /* file name, "--fault PRESET", a label, or NULL */
    struct mgw_err *err;
};

/* Writes "name: path: reason" into in->err, leaving out a NULL name or path (and its ": "). */
void mgw__jin_fail(struct mgw__jin *in, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* out[cap] = "base.key" / "base[i]"; a path that does not fit ends in "...". cap >= 4. */
void mgw__jin_path_key(char *out, size_t cap, const char *base, const char *key);
void mgw__jin_path_index(char *out, size_t cap, const char *base, unsigned i);

/* True if key is one of names (NULL-terminated). */
bool mgw__jin_in_list(const char *key, const char *const *names);

/* Rejects, in document order, the first key of obj that is not in allowed (NULL-terminated):
 * "unknown key", or that an earlier key repeats: "key given twice". path names obj.
 * Returns 0 or -1. */
int mgw__jin_check_keys(struct mgw__jin *in, const cJSON *obj, const char *path,
                        const char *const *allowed);

/* Type checks, each 0 or -1 with "expected an object" / "expected a string". *out borrows v's
 * string. */
int mgw__jin_object(struct mgw__jin *in, const cJSON *v, const char *path);
int mgw__jin_string(struct mgw__jin *in, const cJSON *v, const char *path, const char **out);

/* A JSON number that is finite and whole ("expected an integer") and within [lo, hi] ("must be
 * between LO and HI"); lo and hi within +-2^53. Returns 0 and sets *out, or -1. */
int mgw__jin_int(struct mgw__jin *in, const cJSON *v, const char *path, int64_t lo, int64_t hi,
                 int64_t *out);

/* An array of at most max elements ("expected an array", "more than MAX WHAT"). Returns 0 and
 * sets *n, or -1. */
int mgw__jin_array(struct mgw__jin *in, const cJSON *v, const char *path, unsigned max,
                   const char *what, unsigned *n);

/* Line and column (1-based) of byte offset off in json. */
void mgw__jin_line_col(const char *json, size_t off, unsigned *line, unsigned *col);

/* mgw__jin_parse flags. BYTE_OFFSET: errors say "line L, column C (byte B)". NUL_ENDS: a NUL
 * byte after the document ends the input (otherwise it is text after the document). */
#define MGW__JIN_BYTE_OFFSET 1u
#define MGW__JIN_NUL_ENDS    2u

/* Parses json[0..len) as one JSON document followed by white space only. Errors: "empty input,
 * expected a JSON object", "invalid JSON at line L, column C", the same with ": text after the
 * document". Returns the document (the caller cJSON_Delete()s it) or NULL. */
cJSON *mgw__jin_parse(struct mgw__jin *in, const char *json, size_t len, unsigned flags);

/* Reads path whole (regular file, pipe, device) into a NUL-terminated heap buffer the caller
 * frees; *len excludes the NUL. More than cap bytes (a whole number of MiB) is "file is larger
 * than N MiB", found before reading where the file has a size. Returns NULL on error. */
char *mgw__jin_read_file(struct mgw__jin *in, const char *path, size_t cap, size_t *len);

/* A comma-separated list of account codes (--accounts, a script's settings.accounts): at least
 * one, none empty, printable ASCII without spaces. Returns true, or false with *why (if why is
 * not NULL) set to a static reason: "must not be empty", "empty account code in the list",
 * "account codes must be printable, without spaces". NULL is not valid. */
bool mgw__accounts_valid(const char *accounts, const char **why);

/* A rule or state name: 1..MGW__NAME_MAX printable ASCII characters. *out is a heap copy. */
#define MGW__NAME_MAX 128u
int mgw__jin_name(struct mgw__jin *in, const cJSON *v, const char *path, char **out);

#endif /* MGW_INPUT_H */
