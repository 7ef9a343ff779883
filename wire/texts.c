#include "ibwire.h"

#include <stddef.h>

/* IB's texts for the codes a gateway (or a fault script) is likely to send (IB_WIRE.md §5).
 * takes_id: IB ends the text with the request id, which the caller appends. */
static const struct {
    int code;
    bool takes_id;
    const char *text;
} texts[] = {
    { 100, false, "Max rate of messages per second has been exceeded:max=50 rec=138 (1)" },
    { 162, false,
      "Historical Market Data Service error message:Historical data request pacing violation" },
    { 200, false, "No security definition has been found for the request" },
    { 300, true, "Can't find EId with tickerId:" },
    { 321, false,
      "Error validating request.-'bQ' : cause - The API interface is currently in Read-Only "
      "mode." },
    { 322, false, "Error processing request.-'bQ' : cause - Duplicate ticker id" },
    { 326, false,
      "Unable to connect as the client id is already in use. Retry with a unique client id." },
    { 327, false,
      "Only API connections with clientId set to 0 can set the auto bind TWS orders property." },
    { 354, false, "Requested market data is not subscribed." },
    { 366, true, "No historical data query found for ticker id:" },
    { 504, false, "Not connected" },
    { 1100, false, "Connectivity between IBKR and Trader Workstation has been lost." },
    { 1101, false,
      "Connectivity between IBKR and Trader Workstation has been restored - data lost." },
    { 1102, false,
      "Connectivity between IBKR and Trader Workstation has been restored - data maintained." },
    { 1300, false,
      "TWS socket port has been reset and this connection is being dropped. Please reconnect on "
      "the new port - 4002" },
    { 2103, false, "Market data farm connection is broken:usfarm" },
    { 2104, false, "Market data farm connection is OK:usfarm" },
    { 2105, false, "HMDS data farm connection is broken:ushmds" },
    { 2106, false, "HMDS data farm connection is OK:ushmds" },
    { 2107, false,
      "HMDS data farm connection is inactive but should be available upon demand.ushmds" },
    { 2108, false,
      "Market data farm connection is inactive but should be available upon demand.usfarm" },
    { 2110, false,
      "Connectivity between Trader Workstation and server is broken. It will be restored "
      "automatically." },
    { 2119, false, "Market data farm is connecting:usfarm.nj" },
    /* The same farm as the 2158 of the start-up burst, so "broken" then "OK" pair up. */
    { 2157, false, "Sec-def data farm connection is broken:secdefnj" },
    { 2158, false, "Sec-def data farm connection is OK:secdefnj" },
    { 10167, false, "Requested market data is not subscribed. Displaying delayed market data." },
    { 10168, false,
      "Requested market data is not subscribed. Delayed market data is not enabled." },
    { 10197, false, "No market data during competing live session" },
};

static int find(int code)
{
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (texts[i].code == code)
            return (int)i;
    }
    return -1;
}

const char *ibw_error_text(int code)
{
    int i = find(code);

    return i < 0 ? NULL : texts[i].text;
}

bool ibw_error_text_takes_id(int code)
{
    int i = find(code);

    return i >= 0 && texts[i].takes_id;
}
