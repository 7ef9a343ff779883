/* Fuzz target: the harness's scenario loader (JSON → steps, expectations, the embedded gateway
 * script, generators). Invariants: a rejected document always says why, naming the input; an
 * accepted one has a name, a level and at least one step (or a generator), every step a label
 * and a deadline, and frees cleanly; a generator's first schedule, as a scenario, loads too. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "harness.h"

static void check_generator(const struct harness_scenario *sc)
{
    struct harness_schedule s;
    struct harness_scenario *one;
    struct harness_err err;
    char *text;

    CHECK(sc->generate->schedules >= 1 && sc->n_steps == 0);
    if (harness_schedule_make(sc->generate, 1, 0, &s) != 0)
        return; /* out of memory */
    text = harness_schedule_to_json(sc, &s, false);
    if (text != NULL) {
        one = harness_scenario_parse(text, strlen(text), "schedule.json", &err);
        CHECK(one != NULL && one->generate == NULL && one->n_steps >= 5);
        harness_scenario_free(one);
        free(text);
    }
    harness_schedule_clear(&s);
}

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
    CHECK(sc->levels != 0 && (sc->n_steps >= 1 || sc->generate != NULL) && sc->timeout_ms > 0);
    if (sc->generate != NULL)
        check_generator(sc);
    for (unsigned i = 0; i < sc->n_steps; i++)
        CHECK(sc->steps[i].label[0] != '\0' && sc->steps[i].timeout_ms > 0);
    harness_scenario_free(sc);
    return 0;
}
