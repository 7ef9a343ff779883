/* Full-jitter backoff: the envelope for every attempt, overflow, distribution, seeding, budget,
 * reset; and which errors are worth a retry. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <uv.h>

#include "ibcore.h"
#include "internal.h"

/* The envelope computed independently: doubling with saturation at cap. */
static uint64_t envelope(uint64_t base, uint64_t cap, unsigned n)
{
    uint64_t e = base;

    for (unsigned i = 0; i < n && e < cap; i++)
        e = e > cap / 2 ? cap : e * 2;
    return e < cap ? e : cap;
}

static void backoff_next_within_envelope_attempts_0_to_70(void **state)
{
    (void)state;
    for (uint64_t seed = 0; seed < 200; seed++) {
        struct ibcore_backoff b;

        ibcore_backoff_init(&b, 1000, 60000, 0, seed);
        for (unsigned n = 0; n <= 70; n++) {
            int64_t x = ibcore_backoff_next(&b);

            assert_true(x >= 0);
            assert_true((uint64_t)x <= envelope(1000, 60000, n));
            assert_int_equal(b.attempt, n + 1);
        }
    }
    assert_int_equal(envelope(1000, 60000, 5), 32000);
    assert_int_equal(envelope(1000, 60000, 6), 60000);
}

static void backoff_next_overflow_safe_for_huge_values(void **state)
{
    struct ibcore_backoff b;

    (void)state;
    ibcore_backoff_init(&b, UINT64_MAX / 3, UINT64_MAX, 0, 7);
    for (unsigned n = 0; n < 300; n++) /* past every shift width */
        assert_true(ibcore_backoff_next(&b) >= 0);
    b.attempt = UINT_MAX - 1; /* saturates instead of wrapping back to attempt 0 */
    assert_true(ibcore_backoff_next(&b) >= 0);
    assert_true(ibcore_backoff_next(&b) >= 0);
    assert_int_equal(b.attempt, UINT_MAX);

    ibcore_backoff_init(&b, 0, 60000, 0, 7);
    for (unsigned n = 0; n < 100; n++)
        assert_int_equal(ibcore_backoff_next(&b), 0);
    ibcore_backoff_init(&b, 1000, 0, 0, 7);
    assert_int_equal(ibcore_backoff_next(&b), 0);
    ibcore_backoff_init(&b, 5000, 3000, 0, 7); /* cap below base: cap wins from attempt 0 */
    for (unsigned n = 0; n < 100; n++)
        assert_true(ibcore_backoff_next(&b) <= 3000);

    assert_int_equal(ibcore__exp_cap(1, UINT64_MAX, 63), UINT64_C(1) << 63);
    assert_int_equal(ibcore__exp_cap(2, UINT64_MAX, 63), UINT64_MAX);
    assert_int_equal(ibcore__exp_cap(3, 100, 64), 100);
    assert_int_equal(ibcore__exp_cap(3, 100, 5), 96);
    assert_int_equal(ibcore__exp_cap(3, 100, 6), 100);
    assert_int_equal(ibcore_backoff_next(NULL), UV_EINVAL);
}

/* Mean of U(0, bound) is bound / 2; 10k draws put it within ~1% (4 sigma is 1.2%). */
static void backoff_next_mean_is_half_the_envelope(void **state)
{
    static const unsigned attempts[] = { 0, 3, 6, 70 };

    (void)state;
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        uint64_t bound = envelope(1000, 60000, attempts[i]);
        struct ibcore_backoff b;
        double sum = 0;
        int64_t lo = INT64_MAX, hi = 0;

        ibcore_backoff_init(&b, 1000, 60000, 0, 42 + i);
        for (int k = 0; k < 10000; k++) {
            int64_t x;

            b.attempt = attempts[i];
            x = ibcore_backoff_next(&b);
            sum += (double)x;
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        assert_true(sum / 10000 > 0.485 * (double)bound);
        assert_true(sum / 10000 < 0.515 * (double)bound);
        assert_true((uint64_t)lo < bound / 100); /* it spreads over the whole range */
        assert_true((uint64_t)hi > bound - bound / 100);
    }
}

static void backoff_same_seed_same_sequence(void **state)
{
    struct ibcore_backoff a, b;

    (void)state;
    ibcore_backoff_init(&a, 1000, 60000, 0, 12345);
    ibcore_backoff_init(&b, 1000, 60000, 0, 12345);
    for (int n = 0; n < 100; n++)
        assert_int_equal(ibcore_backoff_next(&a), ibcore_backoff_next(&b));
}

static void backoff_different_seed_differs(void **state)
{
    struct ibcore_backoff a, b;
    int same = 0;

    (void)state;
    ibcore_backoff_init(&a, 1000, 60000, 0, 1);
    ibcore_backoff_init(&b, 1000, 60000, 0, 2);
    for (int n = 0; n < 100; n++)
        same += ibcore_backoff_next(&a) == ibcore_backoff_next(&b);
    assert_true(same < 5); /* clients started together must not retry in lockstep */
}

static void backoff_budget_exhausted_returns_ebudget(void **state)
{
    struct ibcore_backoff b;

    (void)state;
    ibcore_backoff_init(&b, 1000, 60000, 3, 9);
    for (int n = 0; n < 3; n++)
        assert_true(ibcore_backoff_next(&b) >= 0);
    assert_int_equal(ibcore_backoff_next(&b), IBCORE_EBUDGET);
    assert_int_equal(ibcore_backoff_next(&b), IBCORE_EBUDGET); /* stays spent */
    assert_int_equal(b.attempt, 3);
    ibcore_backoff_reset(&b);
    assert_int_equal(b.attempt, 0);
    for (int n = 0; n < 3; n++)
        assert_true(ibcore_backoff_next(&b) >= 0);
    assert_int_equal(ibcore_backoff_next(&b), IBCORE_EBUDGET);
}

static void backoff_unlimited_budget_never_exhausts(void **state)
{
    struct ibcore_backoff b;

    (void)state;
    ibcore_backoff_init(&b, 1000, 60000, 0, 9);
    for (int n = 0; n < 100000; n++)
        assert_true(ibcore_backoff_next(&b) >= 0);
}

static void backoff_reset_restarts_at_base(void **state)
{
    struct ibcore_backoff b, fresh;
    int same = 0;

    (void)state;
    ibcore_backoff_init(&b, 1000, 60000, 0, 5);
    ibcore_backoff_init(&fresh, 1000, 60000, 0, 5);
    for (int n = 0; n < 20; n++)
        ibcore_backoff_next(&b);
    for (int k = 0; k < 1000; k++) {
        ibcore_backoff_reset(&b);
        assert_int_equal(b.attempt, 0);
        assert_true(ibcore_backoff_next(&b) <= 1000);
    }
    /* The generator is not reseeded: a reset does not replay the first waits. */
    ibcore_backoff_reset(&b);
    for (int n = 0; n < 50; n++)
        same += ibcore_backoff_next(&b) == ibcore_backoff_next(&fresh);
    assert_true(same < 5);
}

static void rand_upto_covers_both_ends(void **state)
{
    uint64_t s = 3;
    bool seen[4] = { false };

    (void)state;
    for (int n = 0; n < 1000; n++)
        assert_int_equal(ibcore__rand_upto(&s, 0), 0);
    for (int n = 0; n < 1000; n++) {
        uint64_t x = ibcore__rand_upto(&s, 3);

        assert_true(x <= 3);
        seen[x] = true;
    }
    assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
    (void)ibcore__rand_upto(&s, UINT64_MAX);
}

static void error_retryable_table(void **state)
{
    static const struct {
        int err;
        bool retry;
    } table[] = {
        { UV_ETIMEDOUT, true },     { UV_ECONNREFUSED, true },
        { UV_ECONNRESET, true },    { UV_ECONNABORTED, true },
        { UV_EPIPE, true },         { UV_EOF, true },
        { UV_EHOSTUNREACH, true },  { UV_ENETUNREACH, true },
        { UV_EADDRNOTAVAIL, true }, { UV_EMFILE, true },
        { IBCORE_ECLIENTID, true }, { IBCORE_ENOTREADY, true },
        { IBCORE_EPOISONED, true }, { IBCORE_ECLOSED, true },
        { IBCORE_ELOCK, true },     { IBCORE_EPROTO, true },
        { IBCORE_EBREAKER, false }, { IBCORE_ESHUTDOWN, false },
        { IBCORE_EBUDGET, false },  { IBCORE_EIDSEXHAUSTED, false },
        { IBCORE_EVERSION, false }, { UV_ECANCELED, false },
        { UV_EINVAL, false },       { UV_EAI_NONAME, false },
        { UV_EACCES, false },       { UV_EPERM, false },
        { UV_EAFNOSUPPORT, false }, { 0, false },
        { -999999, false },
    };

    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (ibcore_error_retryable(table[i].err) != table[i].retry)
            fail_msg("%s: expected retryable=%d", ibcore_err_name(table[i].err), table[i].retry);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_next_within_envelope_attempts_0_to_70),
        cmocka_unit_test(backoff_next_overflow_safe_for_huge_values),
        cmocka_unit_test(backoff_next_mean_is_half_the_envelope),
        cmocka_unit_test(backoff_same_seed_same_sequence),
        cmocka_unit_test(backoff_different_seed_differs),
        cmocka_unit_test(backoff_budget_exhausted_returns_ebudget),
        cmocka_unit_test(backoff_unlimited_budget_never_exhausts),
        cmocka_unit_test(backoff_reset_restarts_at_base),
        cmocka_unit_test(rand_upto_covers_both_ends),
        cmocka_unit_test(error_retryable_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
