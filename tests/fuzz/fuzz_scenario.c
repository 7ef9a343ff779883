/* Fuzz target: the harness's scenario loader (JSON → steps, expectations, the embedded gateway
 * script). Invariants: a rejected document always says why, naming the input; an accepted one
 * has a name, a level and at least one step, every step a label and a deadline, and frees
 * cleanly. */
#include <string.h>

#include "fuzz.h"
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct harness_scenario *sc;
    struct harness_err err;

    memset(&err, 0, sizeof err);
    sc = harness_scenario_parse((const char *)data, size, "fuzz.json", &err);
    if (sc == NULL) {
        CHECK(strncmp(err.msg, "fuzz.json: ", 11) == 0);
        return 0;
    }
    CHECK(sc->name != NULL && sc->name[0] != '\0');
    CHECK(sc->levels != 0 && sc->n_steps >= 1 && sc->timeout_ms > 0);
    for (unsigned i = 0; i < sc->n_steps; i++)
        CHECK(sc->steps[i].label[0] != '\0' && sc->steps[i].timeout_ms > 0);
    harness_scenario_free(sc);
    return 0;
}
