#include "ibwire.h"

#include <stddef.h>

const char *ibw_in_name(int id)
{
    switch (id) {
#define XX(name, num, str) \
    case (num):            \
        return str;
        IBW_IN_MSG_MAP(XX)
#undef XX
    default:
        return NULL;
    }
}

const char *ibw_out_name(int id)
{
    switch (id) {
#define XX(name, num, str) \
    case (num):            \
        return str;
        IBW_OUT_MSG_MAP(XX)
#undef XX
    default:
        return NULL;
    }
}

/* Layout thresholds of the answers (IB's MIN_SERVER_VER_* values, as in encode.c). */
#define SV_SYNT_REALTIME_BARS 124 /* historicalData loses its version field */
#define SV_SIZE_RULES         164 /* contractDetails loses its version field */
#define SV_ERROR_TIME         194 /* error loses its version field */

int ibw_out_req_id_index(int msg_id, int sv)
{
    switch (msg_id) {
    case IBW_OUT_REQ_HISTORICAL_DATA:
        return sv < SV_SYNT_REALTIME_BARS ? 2 : 1; /* "20[,version],reqId" */
    case IBW_OUT_REQ_HEAD_TIMESTAMP:
    case IBW_OUT_CANCEL_HEAD_TIMESTAMP:
    case IBW_OUT_REQ_MATCHING_SYMBOLS:
        return 1; /* "<id>,reqId" */
    case IBW_OUT_REQ_MKT_DATA:
    case IBW_OUT_CANCEL_MKT_DATA:
    case IBW_OUT_REQ_CONTRACT_DATA:
    case IBW_OUT_CANCEL_HISTORICAL_DATA:
    case IBW_OUT_REQ_EXECUTIONS:
    case IBW_OUT_REQ_ACCOUNT_SUMMARY:
    case IBW_OUT_CANCEL_ACCOUNT_SUMMARY:
    case IBW_OUT_REQ_ACCOUNT_UPDATES_MULTI:
    case IBW_OUT_CANCEL_ACCOUNT_UPDATES_MULTI:
        return 2; /* "<id>,version,reqId" */
    default:
        return -1;
    }
}

int ibw_in_req_id_index(int msg_id, int sv)
{
    switch (msg_id) {
    case IBW_IN_ERR_MSG:
        return sv < SV_ERROR_TIME ? 2 : 1;
    case IBW_IN_CONTRACT_DATA:
        return sv < SV_SIZE_RULES ? 2 : 1;
    case IBW_IN_HISTORICAL_DATA:
        return sv < SV_SYNT_REALTIME_BARS ? 2 : 1;
    case IBW_IN_TICK_PRICE:
    case IBW_IN_TICK_SIZE:
    case IBW_IN_TICK_GENERIC:
    case IBW_IN_TICK_STRING:
    case IBW_IN_CONTRACT_DATA_END:
    case IBW_IN_EXECUTION_DATA_END:
    case IBW_IN_TICK_SNAPSHOT_END:
    case IBW_IN_MARKET_DATA_TYPE:
    case IBW_IN_ACCOUNT_SUMMARY:
    case IBW_IN_ACCOUNT_SUMMARY_END:
    case IBW_IN_ACCOUNT_UPDATE_MULTI:
    case IBW_IN_ACCOUNT_UPDATE_MULTI_END:
        return 2; /* "<id>,version,reqId" */
    case IBW_IN_SYMBOL_SAMPLES:
    case IBW_IN_TICK_REQ_PARAMS:
    case IBW_IN_HEAD_TIMESTAMP:
    case IBW_IN_HISTORICAL_DATA_UPDATE:
    case IBW_IN_HISTORICAL_DATA_END:
        return 1; /* "<id>,reqId" */
    default:
        return -1;
    }
}
