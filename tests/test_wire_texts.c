/* IB's error and notice texts: byte for byte against IB_WIRE.md §5 and the golden transcript of
 * §7, the request-id codes, unknown codes, and every text safe for a wire field. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ibwire.h"

static void error_text_matches_ib_wire_byte_for_byte(void **state)
{
    static const struct {
        int code;
        const char *text;
    } want[] = {
        /* §7: the start-up burst and the 326 variant. */
        { 2104, "Market data farm connection is OK:usfarm" },
        { 2106, "HMDS data farm connection is OK:ushmds" },
        { 2158, "Sec-def data farm connection is OK:secdefnj" },
        { 326, "Unable to connect as the client id is already in use. Retry with a unique client "
               "id." },
        /* §5 */
        { 200, "No security definition has been found for the request" },
        { 162, "Historical Market Data Service error message:Historical data request pacing "
               "violation" },
        { 1102, "Connectivity between IBKR and Trader Workstation has been restored - data "
                "maintained." },
        { 2107, "HMDS data farm connection is inactive but should be available upon "
                "demand.ushmds" },
        { 10167, "Requested market data is not subscribed. Displaying delayed market data." },
    };

    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_non_null(ibw_error_text(want[i].code));
        assert_string_equal(ibw_error_text(want[i].code), want[i].text);
        assert_false(ibw_error_text_takes_id(want[i].code));
    }
}

static void error_text_with_request_id_stops_before_it(void **state)
{
    char text[96];

    (void)state;
    assert_string_equal(ibw_error_text(300), "Can't find EId with tickerId:");
    assert_true(ibw_error_text_takes_id(300));
    assert_string_equal(ibw_error_text(366), "No historical data query found for ticker id:");
    assert_true(ibw_error_text_takes_id(366));
    snprintf(text, sizeof text, "%s%d", ibw_error_text(300), 7);
    assert_string_equal(text, "Can't find EId with tickerId:7"); /* §5: `...tickerId:<id>` */
}

static void error_text_unknown_code_is_null(void **state)
{
    static const int unknown[] = { 0, -1, 165, 2100, 10089, 99999, INT_MIN, INT_MAX };

    (void)state;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_null(ibw_error_text(unknown[i]));
        assert_false(ibw_error_text_takes_id(unknown[i]));
    }
}

static void error_text_every_text_is_printable_ascii(void **state)
{
    unsigned found = 0;

    (void)state;
    for (int code = 0; code <= 99999; code++) {
        const char *t = ibw_error_text(code);
        size_t n;

        if (t == NULL) {
            assert_false(ibw_error_text_takes_id(code));
            continue;
        }
        found++;
        n = strlen(t);
        assert_true(n > 0 && n < 256); /* a default text must fit script.c's 256-byte buffer */
        for (size_t i = 0; i < n; i++)
            assert_true(t[i] >= 0x20 && t[i] <= 0x7e);
        if (ibw_error_text_takes_id(code))
            assert_int_equal(t[n - 1], ':');
    }
    assert_true(found >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_text_matches_ib_wire_byte_for_byte),
        cmocka_unit_test(error_text_with_request_id_stops_before_it),
        cmocka_unit_test(error_text_unknown_code_is_null),
        cmocka_unit_test(error_text_every_text_is_printable_ascii),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
