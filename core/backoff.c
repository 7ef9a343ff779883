/* Full-jitter backoff (AWS "Exponential Backoff and Jitter": U(0, min(cap, base * 2^n))) with a
 * retry budget, the core's seeded PRNG, and the table of errors worth retrying. */
#include "ibcore.h"

#include <limits.h>
#include <stdint.h>

#include <uv.h>

#include "internal.h"

uint64_t ibcore__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t ibcore__rand_upto(uint64_t *state, uint64_t bound)
{
    uint64_t span, reject_below, x;

    if (bound == UINT64_MAX)
        return ibcore__splitmix64(state);
    span = bound + 1;
    /* 2^64 mod span: draws below it would make the low residues more likely than the others. */
    reject_below = (0 - span) % span;
    do {
        x = ibcore__splitmix64(state);
    } while (x < reject_below);
    return x % span;
}

uint64_t ibcore__exp_cap(uint64_t base, uint64_t cap, unsigned n)
{
    if (base == 0 || cap == 0)
        return 0;
    /* base <= cap >> n  <=>  base << n <= cap, and then the shift cannot overflow. */
    if (n >= 64 || base > (cap >> n))
        return cap;
    return base << n;
}

void ibcore_backoff_init(struct ibcore_backoff *b, uint64_t base_ms, uint64_t cap_ms,
                         unsigned budget, uint64_t seed)
{
    if (b == NULL)
        return;
    b->base_ms = base_ms;
    b->cap_ms = cap_ms;
    b->budget = budget;
    b->attempt = 0;
    b->rng = seed;
}

int64_t ibcore_backoff_next(struct ibcore_backoff *b)
{
    uint64_t ceiling;

    if (b == NULL)
        return UV_EINVAL;
    if (b->budget != 0 && b->attempt >= b->budget)
        return IBCORE_EBUDGET;
    ceiling = ibcore__exp_cap(b->base_ms, b->cap_ms, b->attempt);
    if (ceiling > INT64_MAX) /* the result must stay distinguishable from an error code */
        ceiling = INT64_MAX;
    /* Saturate: with an unlimited budget a wrap would restart the envelope at base. */
    if (b->attempt < UINT_MAX)
        b->attempt++;
    return (int64_t)ibcore__rand_upto(&b->rng, ceiling);
}

void ibcore_backoff_reset(struct ibcore_backoff *b)
{
    /* The generator keeps running: reseeding would put clients that reset together back in
     * lockstep. The budget counts retries since the last success, so it is refilled too. */
    if (b != NULL)
        b->attempt = 0;
}

/* What a retry (after a backoff wait) can fix. Anything not listed is not retried: an unknown
 * failure is surfaced at once rather than turned into a retry storm.
 *
 * | error                                   | retry | why                                     |
 * |-----------------------------------------|-------|-----------------------------------------|
 * | UV_ETIMEDOUT                            | yes   | gateway slow, restarting or black-holed |
 * | UV_ECONNREFUSED                         | yes   | gateway down (daily restart)            |
 * | UV_ECONNRESET, UV_ECONNABORTED, UV_EPIPE| yes   | connection dropped mid-way              |
 * | UV_EOF                                  | yes   | peer closed                             |
 * | UV_EHOSTUNREACH, UV_ENETUNREACH,        | yes   | transient network trouble               |
 * | UV_ENETDOWN, UV_EAI_AGAIN               |       |                                         |
 * | UV_EADDRNOTAVAIL                        | yes   | ephemeral ports exhausted (TIME_WAIT)   |
 * | UV_EAGAIN, UV_ENOBUFS, UV_EMFILE,       | yes   | resource pressure that drains (zombie   |
 * | UV_ENFILE                               |       | sockets get closed); the budget bounds  |
 * | IBCORE_ECLIENTID (326)                  | yes   | the next attempt may get the id back    |
 * | IBCORE_ENOTREADY                        | yes   | closed before ready: id in use, restart |
 * | IBCORE_EPOISONED                        | yes   | only that connection is lost; use a new |
 * | IBCORE_ECLOSED                          | yes   | reconnect                               |
 * | IBCORE_ELOCK                            | yes   | another process was handshaking         |
 * | IBCORE_EPROTO                           | yes   | a fresh stream; the breaker bounds a    |
 * |                                         |       | persistent cause                        |
 * | IBCORE_EBREAKER                         | no    | the breaker decides when to try again   |
 * |                                         |       | (ibcore_breaker_retry_in_ms)            |
 * | IBCORE_ESHUTDOWN, UV_ECANCELED          | no    | we are stopping / the caller cancelled  |
 * | IBCORE_EBUDGET                          | no    | the retries are spent                   |
 * | IBCORE_EIDSEXHAUSTED                    | no    | the client-id walk was the retry loop;  |
 * |                                         |       | more walks only load the gateway        |
 * | IBCORE_EVERSION                         | no    | version range is configuration          |
 * | UV_EINVAL, UV_EAI_NONAME, UV_EACCES,    | no    | configuration / permission              |
 * | UV_EPERM, UV_EAFNOSUPPORT, UV_ENOENT    |       |                                         |
 * | 0 (success)                             | no    | nothing to retry                        |
 */
bool ibcore_error_retryable(int err)
{
    switch (err) {
    case UV_ETIMEDOUT:
    case UV_ECONNREFUSED:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_EPIPE:
    case UV_EOF:
    case UV_EHOSTUNREACH:
    case UV_ENETUNREACH:
    case UV_ENETDOWN:
    case UV_EAI_AGAIN:
    case UV_EADDRNOTAVAIL:
    case UV_EAGAIN:
    case UV_ENOBUFS:
    case UV_EMFILE:
    case UV_ENFILE:
    case IBCORE_ECLIENTID:
    case IBCORE_ENOTREADY:
    case IBCORE_EPOISONED:
    case IBCORE_ECLOSED:
    case IBCORE_ELOCK:
    case IBCORE_EPROTO:
        return true;
    default:
        return false;
    }
}
