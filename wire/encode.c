/* Server -> client encoders. Each writes one message (historicalData from 196: two) with the
 * exact layout the official decoders read at server version sv. Version constants are IB's
 * MIN_SERVER_VER_* names; every threshold was checked against the official Python decoder
 * (ibapi/decoder.py, ibapi/server_versions.py) and the official Java EDecoder.java. */
#include "ibwire.h"

#include <string.h>

#include "internal.h"

#define SV_MD_SIZE_MULTIPLIER      110
#define SV_AGG_GROUP               121
#define SV_UNDERLYING_INFO         122
#define SV_SYNT_REALTIME_BARS      124
#define SV_MARKET_RULES            126
#define SV_REAL_EXPIRATION_DATE    134
#define SV_STOCK_TYPE              152
#define SV_FRACTIONAL_SIZE_SUPPORT 163
#define SV_SIZE_RULES              164
#define SV_ADVANCED_ORDER_REJECT   166
#define SV_BOND_ISSUERID           176
#define SV_FUND_DATA_FIELDS        179
#define SV_LAST_TRADE_DATE         182
#define SV_INELIGIBILITY_REASONS   186
#define SV_ERROR_TIME              194
#define SV_HISTORICAL_DATA_END     196

#define FUND_FIELD_COUNT 17 /* fundName .. fundAssetType */

static bool sv_ok(int sv)
{
    return sv >= IBW_MIN_VERSION && sv <= IBW_MAX_VERSION;
}

/* Opens a frame that starts with msg id and, when version >= 0, its version field. */
static void begin_msg(struct ibw_writer *w, int id, int version)
{
    ibw_writer_begin(w);
    ibw_put_int(w, id);
    if (version >= 0)
        ibw_put_int(w, version);
}

/* The many "<id>,<version>,<reqId>" messages (the End markers). */
static ssize_t enc_req_id_only(struct ibw_writer *w, int sv, int id, int version, int req_id)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, id, version);
    ibw_put_int(w, req_id);
    return ibw_writer_end(w);
}

/* Handshake reply: "<version>\0<time>\0". Not versioned. */
ssize_t ibw_enc_server_version(struct ibw_writer *w, int version, const char *conn_time)
{
    ibw_writer_begin(w);
    ibw_put_int(w, version);
    ibw_put_str(w, conn_time);
    return ibw_writer_end(w);
}

int ibw_dec_error(struct ibw_reader *r, int sv, int *id, int *code, const char **text)
{
    if (sv < SV_ERROR_TIME)
        ibw_read_skip(r, 1); /* the version field */
    ibw_read_int(r, id);
    ibw_read_int(r, code);
    ibw_read_str(r, text);
    return r->err;
}

/* 4 error: < ADVANCED_ORDER_REJECT (166) "4,2,id,code,text"; from 166 "+json"; from ERROR_TIME
 * (194) "4,id,code,text,json,errorTime" without the version field. */
ssize_t ibw_enc_error(struct ibw_writer *w, int sv, int id, int code, const char *text,
                      const char *json, int64_t error_time_ms)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_ERR_MSG, sv >= SV_ERROR_TIME ? -1 : 2);
    ibw_put_int(w, id);
    ibw_put_int(w, code);
    ibw_put_str(w, text);
    if (sv >= SV_ADVANCED_ORDER_REJECT)
        ibw_put_str(w, json);
    if (sv >= SV_ERROR_TIME)
        ibw_put_int(w, error_time_ms);
    return ibw_writer_end(w);
}

/* 9 nextValidId "9,1,orderId": the same at every version in range. */
ssize_t ibw_enc_next_valid_id(struct ibw_writer *w, int sv, int64_t order_id)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_NEXT_VALID_ID, 1);
    ibw_put_int(w, order_id);
    return ibw_writer_end(w);
}

/* 15 managedAccounts "15,1,accounts": the same at every version in range. */
ssize_t ibw_enc_managed_accounts(struct ibw_writer *w, int sv, const char *accounts)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_MANAGED_ACCTS, 1);
    ibw_put_str(w, accounts);
    return ibw_writer_end(w);
}

/* 49 currentTime "49,1,epochSeconds": the same at every version in range. */
ssize_t ibw_enc_current_time(struct ibw_writer *w, int sv, int64_t epoch_s)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_CURRENT_TIME, 1);
    ibw_put_int(w, epoch_s);
    return ibw_writer_end(w);
}

/* 61 position, message version 3 (tradingClass v2, avgCost v3): 16 fields at every version in
 * range; no primaryExchange on the wire. */
ssize_t ibw_enc_position(struct ibw_writer *w, int sv, const struct ibw_position *p)
{
    const struct ibw_contract *c = &p->c;

    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_POSITION_DATA, 3);
    ibw_put_str(w, p->account);
    ibw_put_int(w, c->con_id);
    ibw_put_str(w, c->symbol);
    ibw_put_str(w, c->sec_type);
    ibw_put_str(w, c->last_trade_date);
    ibw_put_double(w, c->strike);
    ibw_put_str(w, c->right);
    ibw_put_str(w, c->multiplier);
    ibw_put_str(w, c->exchange);
    ibw_put_str(w, c->currency);
    ibw_put_str(w, c->local_symbol);
    ibw_put_str(w, c->trading_class);
    ibw_put_str(w, p->position);
    ibw_put_double(w, p->avg_cost);
    return ibw_writer_end(w);
}

/* 7 updatePortfolio "7,8,conId,symbol,secType,lastTradeDateOrContractMonth,strike,right,
 * multiplier,primaryExchange,currency,localSymbol,tradingClass,position,marketPrice,marketValue,
 * averageCost,unrealizedPNL,realizedPNL,accountName" (20 fields; ib_async unpacks exactly 20). */
ssize_t ibw_enc_portfolio_value(struct ibw_writer *w, int sv, const struct ibw_portfolio *pf)
{
    const struct ibw_contract *c = &pf->p.c;

    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_PORTFOLIO_VALUE, 8);
    ibw_put_int(w, c->con_id);
    ibw_put_str(w, c->symbol);
    ibw_put_str(w, c->sec_type);
    ibw_put_str(w, c->last_trade_date);
    ibw_put_double(w, c->strike);
    ibw_put_str(w, c->right);
    ibw_put_str(w, c->multiplier);
    ibw_put_str(w, c->primary_exchange);
    ibw_put_str(w, c->currency);
    ibw_put_str(w, c->local_symbol);
    ibw_put_str(w, c->trading_class);
    ibw_put_str(w, pf->p.position);
    ibw_put_double(w, pf->market_price);
    ibw_put_double(w, pf->market_value);
    ibw_put_double(w, pf->p.avg_cost);
    ibw_put_double(w, pf->unrealized_pnl);
    ibw_put_double(w, pf->realized_pnl);
    ibw_put_str(w, pf->p.account);
    return ibw_writer_end(w);
}

/* 62 positionEnd "62,1". */
ssize_t ibw_enc_position_end(struct ibw_writer *w, int sv)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_POSITION_END, 1);
    return ibw_writer_end(w);
}

/* 53 openOrderEnd "53,1". */
ssize_t ibw_enc_open_order_end(struct ibw_writer *w, int sv)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_OPEN_ORDER_END, 1);
    return ibw_writer_end(w);
}

/* 102 completedOrdersEnd "102": no version field (COMPLETED_ORDERS, 150, introduced it). */
ssize_t ibw_enc_completed_orders_end(struct ibw_writer *w, int sv)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_COMPLETED_ORDERS_END, -1);
    return ibw_writer_end(w);
}

/* 6 updateAccountValue "6,2,key,value,currency,account". */
ssize_t ibw_enc_account_value(struct ibw_writer *w, int sv, const char *key, const char *value,
                              const char *currency, const char *account)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_ACCT_VALUE, 2);
    ibw_put_str(w, key);
    ibw_put_str(w, value);
    ibw_put_str(w, currency);
    ibw_put_str(w, account);
    return ibw_writer_end(w);
}

/* 8 updateAccountTime "8,1,HH:MM". */
ssize_t ibw_enc_account_time(struct ibw_writer *w, int sv, const char *hhmm)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_ACCT_UPDATE_TIME, 1);
    ibw_put_str(w, hhmm);
    return ibw_writer_end(w);
}

/* 54 accountDownloadEnd "54,1,account". */
ssize_t ibw_enc_account_download_end(struct ibw_writer *w, int sv, const char *account)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_ACCT_DOWNLOAD_END, 1);
    ibw_put_str(w, account);
    return ibw_writer_end(w);
}

/* 73 accountUpdateMulti "73,1,reqId,account,modelCode,key,value,currency". */
ssize_t ibw_enc_account_update_multi(struct ibw_writer *w, int sv, int req_id, const char *account,
                                     const char *model_code, const char *key, const char *value,
                                     const char *currency)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_ACCOUNT_UPDATE_MULTI, 1);
    ibw_put_int(w, req_id);
    ibw_put_str(w, account);
    ibw_put_str(w, model_code);
    ibw_put_str(w, key);
    ibw_put_str(w, value);
    ibw_put_str(w, currency);
    return ibw_writer_end(w);
}

/* 74 accountUpdateMultiEnd "74,1,reqId". */
ssize_t ibw_enc_account_update_multi_end(struct ibw_writer *w, int sv, int req_id)
{
    return enc_req_id_only(w, sv, IBW_IN_ACCOUNT_UPDATE_MULTI_END, 1, req_id);
}

/* 63 accountSummary "63,1,reqId,account,tag,value,currency". */
ssize_t ibw_enc_account_summary(struct ibw_writer *w, int sv, int req_id, const char *account,
                                const char *tag, const char *value, const char *currency)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_ACCOUNT_SUMMARY, 1);
    ibw_put_int(w, req_id);
    ibw_put_str(w, account);
    ibw_put_str(w, tag);
    ibw_put_str(w, value);
    ibw_put_str(w, currency);
    return ibw_writer_end(w);
}

/* 64 accountSummaryEnd "64,1,reqId". */
ssize_t ibw_enc_account_summary_end(struct ibw_writer *w, int sv, int req_id)
{
    return enc_req_id_only(w, sv, IBW_IN_ACCOUNT_SUMMARY_END, 1, req_id);
}

/* 55 execDetailsEnd "55,1,reqId". */
ssize_t ibw_enc_exec_details_end(struct ibw_writer *w, int sv, int req_id)
{
    return enc_req_id_only(w, sv, IBW_IN_EXECUTION_DATA_END, 1, req_id);
}

/* evMultiplier: the Java decoder reads a double, the official Python decoder int(): only an
 * integer spelling (or empty, as real gateways send for stocks) satisfies both. */
static void put_ev_multiplier(struct ibw_writer *w, double v)
{
    if (v == 0.0 || v == IBW_UNSET_DOUBLE)
        ibw_put_str(w, "");
    else if (v > -9.0e15 && v < 9.0e15 && (double)(int64_t)v == v) /* integral, no libm */
        ibw_put_int(w, (int64_t)v);
    else
        ibw_put_double(w, v);
}

/* 10 contractDetails. Thresholds (each from its own MIN_SERVER_VER_*):
 * - message version field "8" after the id only below SIZE_RULES (164);
 * - lastTradeDate after lastTradeDateOrContractMonth from LAST_TRADE_DATE (182);
 * - mdSizeMultiplier after minTick for MD_SIZE_MULTIPLIER (110) <= sv < SIZE_RULES (164);
 * - aggGroup from AGG_GROUP (121); underSymbol, underSecType from UNDERLYING_INFO (122);
 *   marketRuleIds from MARKET_RULES (126); realExpirationDate from REAL_EXPIRATION_DATE (134);
 *   stockType from STOCK_TYPE (152);
 * - sizeMinTick for FRACTIONAL_SIZE_SUPPORT (163) <= sv < SIZE_RULES (164), i.e. 163 only;
 * - minSize, sizeIncrement, suggestedSizeIncrement from SIZE_RULES (164);
 * - 17 fund fields from FUND_DATA_FIELDS (179), only when secType is "FUND" (the decoders read
 *   them then; we have no fund data, so they go out empty to keep the fields aligned);
 * - ineligibilityReasonCount (always 0 here) from INELIGIBILITY_REASONS (186). */
ssize_t ibw_enc_contract_details(struct ibw_writer *w, int sv, int req_id,
                                 const struct ibw_contract_details *cd)
{
    const struct ibw_contract *c = &cd->c;
    unsigned i;

    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_CONTRACT_DATA, sv < SV_SIZE_RULES ? 8 : -1);
    ibw_put_int(w, req_id);
    ibw_put_str(w, c->symbol);
    ibw_put_str(w, c->sec_type);
    ibw_put_str(w, c->last_trade_date);
    if (sv >= SV_LAST_TRADE_DATE)
        ibw_put_str(w, cd->last_trade_date);
    ibw_put_double(w, c->strike);
    ibw_put_str(w, c->right);
    ibw_put_str(w, c->exchange);
    ibw_put_str(w, c->currency);
    ibw_put_str(w, c->local_symbol);
    ibw_put_str(w, cd->market_name);
    ibw_put_str(w, c->trading_class);
    ibw_put_int(w, c->con_id);
    ibw_put_double(w, cd->min_tick);
    if (sv >= SV_MD_SIZE_MULTIPLIER && sv < SV_SIZE_RULES)
        ibw_put_int(w, 1); /* mdSizeMultiplier: read and ignored by every decoder */
    ibw_put_str(w, c->multiplier);
    ibw_put_str(w, cd->order_types);
    ibw_put_str(w, cd->valid_exchanges);
    ibw_put_int(w, cd->price_magnifier);
    ibw_put_int(w, cd->under_con_id);
    ibw_put_str(w, cd->long_name);
    ibw_put_str(w, c->primary_exchange);
    ibw_put_str(w, cd->contract_month);
    ibw_put_str(w, cd->industry);
    ibw_put_str(w, cd->category);
    ibw_put_str(w, cd->subcategory);
    ibw_put_str(w, cd->time_zone_id);
    ibw_put_str(w, cd->trading_hours);
    ibw_put_str(w, cd->liquid_hours);
    ibw_put_str(w, cd->ev_rule);
    put_ev_multiplier(w, cd->ev_multiplier);
    ibw_put_int(w, cd->sec_ids ? cd->n_sec_ids : 0);
    for (i = 0; cd->sec_ids && i < cd->n_sec_ids; i++) {
        ibw_put_str(w, cd->sec_ids[i].tag);
        ibw_put_str(w, cd->sec_ids[i].value);
    }
    if (sv >= SV_AGG_GROUP)
        ibw_put_int_max(w, cd->agg_group);
    if (sv >= SV_UNDERLYING_INFO) {
        ibw_put_str(w, cd->under_symbol);
        ibw_put_str(w, cd->under_sec_type);
    }
    if (sv >= SV_MARKET_RULES)
        ibw_put_str(w, cd->market_rule_ids);
    if (sv >= SV_REAL_EXPIRATION_DATE)
        ibw_put_str(w, cd->real_expiration_date);
    if (sv >= SV_STOCK_TYPE)
        ibw_put_str(w, cd->stock_type);
    if (sv >= SV_FRACTIONAL_SIZE_SUPPORT && sv < SV_SIZE_RULES)
        ibw_put_str(w, cd->size_increment); /* sizeMinTick: read and ignored */
    if (sv >= SV_SIZE_RULES) {
        ibw_put_str(w, cd->min_size);
        ibw_put_str(w, cd->size_increment);
        ibw_put_str(w, cd->suggested_size_increment);
    }
    if (sv >= SV_FUND_DATA_FIELDS && c->sec_type && strcmp(c->sec_type, "FUND") == 0) {
        for (i = 0; i < FUND_FIELD_COUNT; i++)
            ibw_put_str(w, "");
    }
    if (sv >= SV_INELIGIBILITY_REASONS)
        ibw_put_int(w, 0);
    return ibw_writer_end(w);
}

/* 52 contractDetailsEnd "52,1,reqId". */
ssize_t ibw_enc_contract_details_end(struct ibw_writer *w, int sv, int req_id)
{
    return enc_req_id_only(w, sv, IBW_IN_CONTRACT_DATA_END, 1, req_id);
}

/* 17 historicalData. Below SYNT_REALTIME_BARS (124): version field "3" after the id and a
 * per-bar hasGaps before barCount. From HISTORICAL_DATA_END (196): no start/end in 17; they
 * follow in a separate "108,reqId,start,end" frame. Both frames or neither. */
ssize_t ibw_enc_historical_data(struct ibw_writer *w, int sv, int req_id, const char *start,
                                const char *end, const struct ibw_bar *bars, unsigned n)
{
    size_t before = w->len;
    ssize_t a, b = 0;
    unsigned i;

    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_HISTORICAL_DATA, sv < SV_SYNT_REALTIME_BARS ? 3 : -1);
    ibw_put_int(w, req_id);
    if (sv < SV_HISTORICAL_DATA_END) {
        ibw_put_str(w, start);
        ibw_put_str(w, end);
    }
    ibw_put_int(w, bars ? n : 0);
    for (i = 0; bars && i < n; i++) {
        const struct ibw_bar *bar = &bars[i];

        ibw_put_str(w, bar->date);
        ibw_put_double(w, bar->open);
        ibw_put_double(w, bar->high);
        ibw_put_double(w, bar->low);
        ibw_put_double(w, bar->close);
        ibw_put_str(w, bar->volume);
        ibw_put_str(w, bar->wap);
        if (sv < SV_SYNT_REALTIME_BARS)
            ibw_put_str(w, "false"); /* hasGaps: read as a string and dropped */
        ibw_put_int(w, bar->count);
    }
    a = ibw_writer_end(w);
    if (a >= 0 && sv >= SV_HISTORICAL_DATA_END) {
        begin_msg(w, IBW_IN_HISTORICAL_DATA_END, -1);
        ibw_put_int(w, req_id);
        ibw_put_str(w, start);
        ibw_put_str(w, end);
        b = ibw_writer_end(w);
    }
    if (a < 0 || b < 0) {
        w->len = before; /* the 17 must not go out without its 108 */
        return a < 0 ? a : b;
    }
    return a + b;
}

/* 88 headTimestamp "88,reqId,timestamp": no version field. */
ssize_t ibw_enc_head_timestamp(struct ibw_writer *w, int sv, int req_id, const char *timestamp)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_HEAD_TIMESTAMP, -1);
    ibw_put_int(w, req_id);
    ibw_put_str(w, timestamp);
    return ibw_writer_end(w);
}

/* 79 symbolSamples "79,reqId,n,{conId,symbol,secType,primaryExchange,currency,nDeriv,
 * derivSecType x nDeriv[,description,issuerId]} x n": description and issuerId from
 * BOND_ISSUERID (176). No version field. */
ssize_t ibw_enc_symbol_samples(struct ibw_writer *w, int sv, int req_id,
                               const struct ibw_symbol_sample *s, unsigned n)
{
    unsigned i, j;

    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_SYMBOL_SAMPLES, -1);
    ibw_put_int(w, req_id);
    ibw_put_int(w, s ? n : 0);
    for (i = 0; s && i < n; i++) {
        const struct ibw_symbol_sample *e = &s[i];
        unsigned nd = e->deriv_sec_types ? e->n_deriv_sec_types : 0;

        ibw_put_int(w, e->con_id);
        ibw_put_str(w, e->symbol);
        ibw_put_str(w, e->sec_type);
        ibw_put_str(w, e->primary_exchange);
        ibw_put_str(w, e->currency);
        ibw_put_int(w, nd);
        for (j = 0; j < nd; j++)
            ibw_put_str(w, e->deriv_sec_types[j]);
        if (sv >= SV_BOND_ISSUERID) {
            ibw_put_str(w, e->description);
            ibw_put_str(w, e->issuer_id);
        }
    }
    return ibw_writer_end(w);
}

/* 81 tickReqParams "81,reqId,minTick,bboExchange,snapshotPermissions": no version field. */
ssize_t ibw_enc_tick_req_params(struct ibw_writer *w, int sv, int req_id, double min_tick,
                                const char *bbo_exchange, int snapshot_permissions)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_TICK_REQ_PARAMS, -1);
    ibw_put_int(w, req_id);
    ibw_put_double(w, min_tick);
    ibw_put_str(w, bbo_exchange);
    ibw_put_int(w, snapshot_permissions);
    return ibw_writer_end(w);
}

/* 1 tickPrice "1,6,reqId,tickType,price,size,attrMask": message version 6 (size v2, attrMask
 * v3); the same at every version in range. The decoders interpret mask bit 2 (pastLimit) from
 * PAST_LIMIT (109) and bit 4 (preOpen) from PRE_OPEN_BID_ASK (132); the bits are sent as given.
 * size is Decimal text from FRACTIONAL_SIZE_SUPPORT (163); below it, callers pass integers. */
ssize_t ibw_enc_tick_price(struct ibw_writer *w, int sv, int req_id, int tick_type, double price,
                           const char *size, int attr_mask)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_TICK_PRICE, 6);
    ibw_put_int(w, req_id);
    ibw_put_int(w, tick_type);
    ibw_put_double(w, price);
    ibw_put_str(w, size);
    ibw_put_int(w, attr_mask);
    return ibw_writer_end(w);
}

/* 2 tickSize "2,6,reqId,tickType,size": constant layout; size as for tickPrice. */
ssize_t ibw_enc_tick_size(struct ibw_writer *w, int sv, int req_id, int tick_type, const char *size)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_TICK_SIZE, 6);
    ibw_put_int(w, req_id);
    ibw_put_int(w, tick_type);
    ibw_put_str(w, size);
    return ibw_writer_end(w);
}

/* 46 tickString "46,6,reqId,tickType,value": constant layout. */
ssize_t ibw_enc_tick_string(struct ibw_writer *w, int sv, int req_id, int tick_type,
                            const char *value)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_TICK_STRING, 6);
    ibw_put_int(w, req_id);
    ibw_put_int(w, tick_type);
    ibw_put_str(w, value);
    return ibw_writer_end(w);
}

/* 45 tickGeneric "45,6,reqId,tickType,value": constant layout. */
ssize_t ibw_enc_tick_generic(struct ibw_writer *w, int sv, int req_id, int tick_type, double value)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_TICK_GENERIC, 6);
    ibw_put_int(w, req_id);
    ibw_put_int(w, tick_type);
    ibw_put_double(w, value);
    return ibw_writer_end(w);
}

/* 58 marketDataType "58,1,reqId,type": constant layout. */
ssize_t ibw_enc_market_data_type(struct ibw_writer *w, int sv, int req_id, int type)
{
    if (!sv_ok(sv))
        return IBW_EVERSION;
    begin_msg(w, IBW_IN_MARKET_DATA_TYPE, 1);
    ibw_put_int(w, req_id);
    ibw_put_int(w, type);
    return ibw_writer_end(w);
}

/* 57 tickSnapshotEnd "57,1,reqId": constant layout. */
ssize_t ibw_enc_tick_snapshot_end(struct ibw_writer *w, int sv, int req_id)
{
    return enc_req_id_only(w, sv, IBW_IN_TICK_SNAPSHOT_END, 1, req_id);
}
