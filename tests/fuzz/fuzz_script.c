/* Fuzz target: the fault-script loader (JSON → settings and rules) and the rules' way back
 * (rule → JSON, as GET /v1/rules shows it → rule). Invariants: a rejected script always says
 * why, naming the input; every rule of an accepted one serialises, and what it serialises to
 * loads again; a deep copy frees cleanly. */
#include <string.h>

#include <cjson/cJSON.h>

#include "fault.h"
#include "fuzz.h"
#include "mockgw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mgw_script *s, *copy;
    struct mgw_err err;

    memset(&err, 0, sizeof err);
    s = mgw_script_parse((const char *)data, size, "fuzz.json", &err);
    if (s == NULL) {
        CHECK(strncmp(err.msg, "fuzz.json", 9) == 0);
        return 0;
    }
    for (unsigned i = 0; i < s->n_rules; i++) {
        cJSON *j = mgw_rule_to_json(s->rules[i]);
        struct mgw_rule *again;

        CHECK(j != NULL);
        again = mgw_rule_parse(j, "again", "$", &err);
        if (again == NULL) {
            char *text = cJSON_PrintUnformatted(j);

            fprintf(stderr, "rule %u does not load back: %s\n%s\n", i, err.msg, text);
            free(text);
        }
        CHECK(again != NULL);
        mgw_rule_free(again);
        cJSON_Delete(j);
    }
    copy = mgw_script_copy(s);
    CHECK(copy != NULL);
    mgw_script_free(copy);
    mgw_script_free(s);
    return 0;
}
