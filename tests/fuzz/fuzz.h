/* What every fuzz target shares: the libFuzzer entry points and CHECK, an assertion that holds
 * in release builds too (the replay runs there) and aborts so libFuzzer records the input. */
#ifndef MGW_FUZZ_H
#define MGW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif /* MGW_FUZZ_H */
