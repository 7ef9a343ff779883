/* ibwire — the IB TWS API socket codec: framing, fields, handshake, message ids, encoders.
 *
 * Pure code: no I/O, no libuv, no allocation. Every function works on memory the caller owns.
 *
 * Ownership and lifetimes:
 * - Parsers return borrowed views into the caller's input buffer (struct ibw_frame.payload,
 *   strings handed out by struct ibw_reader). A view is valid while that buffer is unchanged:
 *   typically "until the connection's input buffer is compacted or refilled".
 * - Writers write into a fixed buffer the caller provides. A write that does not fit sets a
 *   sticky error in the writer; nothing is ever written past its capacity.
 *
 * Errors: functions return 0 (or a byte count) on success and a negative IBW_* code on failure.
 * ibw_strerror() / ibw_err_name() describe every code, and fall back to strerror() for negated
 * errno values.
 *
 * Protocol reference: ../shared/protocol/IB_WIRE.md (sections are cited as §N).
 */
#ifndef IBWIRE_H
#define IBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Errors
 */
#define IBW_ERRNO_MAP(XX)                                                       \
    XX(EZEROLEN, -5101, "frame length is zero")                                 \
    XX(EMSGSIZE, -5102, "frame length is over the maximum")                     \
    XX(ENOTAPI, -5103, "stream does not start with \"API\\0\"")                 \
    XX(ELEGACY, -5104, "legacy (pre-v100) handshake, not supported")            \
    XX(EBADHELLO, -5105, "version string is not \"v<min>[..<max>][ options]\"") \
    XX(ENOFIELD, -5106, "missing field")                                        \
    XX(EBADINT, -5107, "field is not an integer in range")                      \
    XX(EBADDOUBLE, -5108, "field is not a number")                              \
    XX(EBADFIELD, -5109, "field is not NUL-terminated")                         \
    XX(ENOSPC, -5110, "message does not fit the output buffer")                 \
    XX(EBADMSGID, -5111, "message id is not a number")                          \
    XX(EVERSION, -5112, "no layout for this server version")                    \
    XX(ESTATE, -5113, "writer call out of order (no frame open, or one already open)")

enum ibw_errno {
#define XX(name, code, msg) IBW_##name = (code),
    IBW_ERRNO_MAP(XX)
#undef XX
};

/* A static, human-readable description of err; never NULL. */
const char *ibw_strerror(int err);
/* The symbolic name ("IBW_EMSGSIZE", "ECONNRESET"); never NULL. */
const char *ibw_err_name(int err);

/* ---------------------------------------------------------------------------------------------
 * Limits, special values, versions
 */
#define IBW_MAX_FRAME       0xFFFFFFu /* clients treat longer payloads as fatal (§1.1) */
#define IBW_MAX_HELLO       1024u     /* cap for the length-counted "v<min>..<max>" string */
#define IBW_UNSET_INT       INT32_MAX
#define IBW_UNSET_LONG      INT64_MAX
#define IBW_UNSET_DOUBLE    1.7976931348623157e308 /* Java's Double.MAX_VALUE */
#define IBW_MIN_VERSION     100                    /* v100+ framed protocol */
#define IBW_MAX_VERSION     200 /* highest text-only version we can encode (201+: protobuf) */
#define IBW_DEFAULT_VERSION 178 /* what real gateways negotiate with ib_async (§0) */

/* ---------------------------------------------------------------------------------------------
 * Framing: 4-byte big-endian length + payload (§1.1)
 */
struct ibw_frame {
    const uint8_t *payload; /* points into the parsed buffer; valid until it changes */
    size_t len;             /* payload length, 1..max */
};

/* Parses one frame from the start of buf[0..len).
 * Returns the number of bytes the frame occupies (4 + payload length) and fills *f; 0 if buf
 * holds no complete frame yet (feed more bytes and call again: any split of the stream works,
 * one byte at a time included); IBW_EZEROLEN for a zero length; IBW_EMSGSIZE for a length over
 * max (reported as soon as the 4 length bytes are in, before the payload arrives). */
ssize_t ibw_frame_parse(const uint8_t *buf, size_t len, size_t max, struct ibw_frame *f);

/* ---------------------------------------------------------------------------------------------
 * Handshake (§2): "API\0" + uint32 length + "v<min>..<max>[ options]" (no NUL)
 */
struct ibw_hello {
    int min_version;
    int max_version;  /* == min_version for "v<n>" */
    char options[64]; /* connect options after the space ("+PACEAPI"), NUL-terminated, or "" */
};

/* Parses the client handshake from the start of buf[0..len).
 * Returns the bytes consumed (> 0) and fills *h; 0 if more bytes are needed (every split is
 * accepted); IBW_ENOTAPI if the first bytes are not "API\0"; IBW_ELEGACY if the stream looks
 * like a pre-v100 client ("62\0"); IBW_EZEROLEN / IBW_EMSGSIZE (over IBW_MAX_HELLO) for the
 * length; IBW_EBADHELLO for a malformed version string (min > max, not numeric, options longer
 * than the buffer). */
ssize_t ibw_hello_parse(const uint8_t *buf, size_t len, struct ibw_hello *h);

/* The version a real gateway answers: min(client max, server max) (§2.3). The result may be
 * below the client's minimum: the client then rejects it as it would with a real gateway. */
int ibw_negotiate_version(const struct ibw_hello *h, int server_max);

/* ---------------------------------------------------------------------------------------------
 * Message ids (§4.1). IN = gateway -> client, OUT = client -> gateway (IB's client-side view).
 */
#define IBW_IN_MSG_MAP(XX)                                    \
    XX(TICK_PRICE, 1, "tickPrice")                            \
    XX(TICK_SIZE, 2, "tickSize")                              \
    XX(ORDER_STATUS, 3, "orderStatus")                        \
    XX(ERR_MSG, 4, "error")                                   \
    XX(OPEN_ORDER, 5, "openOrder")                            \
    XX(ACCT_VALUE, 6, "updateAccountValue")                   \
    XX(PORTFOLIO_VALUE, 7, "updatePortfolio")                 \
    XX(ACCT_UPDATE_TIME, 8, "updateAccountTime")              \
    XX(NEXT_VALID_ID, 9, "nextValidId")                       \
    XX(CONTRACT_DATA, 10, "contractDetails")                  \
    XX(EXECUTION_DATA, 11, "execDetails")                     \
    XX(MANAGED_ACCTS, 15, "managedAccounts")                  \
    XX(HISTORICAL_DATA, 17, "historicalData")                 \
    XX(TICK_GENERIC, 45, "tickGeneric")                       \
    XX(TICK_STRING, 46, "tickString")                         \
    XX(CURRENT_TIME, 49, "currentTime")                       \
    XX(CONTRACT_DATA_END, 52, "contractDetailsEnd")           \
    XX(OPEN_ORDER_END, 53, "openOrderEnd")                    \
    XX(ACCT_DOWNLOAD_END, 54, "accountDownloadEnd")           \
    XX(EXECUTION_DATA_END, 55, "execDetailsEnd")              \
    XX(TICK_SNAPSHOT_END, 57, "tickSnapshotEnd")              \
    XX(MARKET_DATA_TYPE, 58, "marketDataType")                \
    XX(POSITION_DATA, 61, "position")                         \
    XX(POSITION_END, 62, "positionEnd")                       \
    XX(ACCOUNT_SUMMARY, 63, "accountSummary")                 \
    XX(ACCOUNT_SUMMARY_END, 64, "accountSummaryEnd")          \
    XX(ACCOUNT_UPDATE_MULTI, 73, "accountUpdateMulti")        \
    XX(ACCOUNT_UPDATE_MULTI_END, 74, "accountUpdateMultiEnd") \
    XX(SYMBOL_SAMPLES, 79, "symbolSamples")                   \
    XX(TICK_REQ_PARAMS, 81, "tickReqParams")                  \
    XX(HEAD_TIMESTAMP, 88, "headTimestamp")                   \
    XX(HISTORICAL_DATA_UPDATE, 90, "historicalDataUpdate")    \
    XX(COMPLETED_ORDER, 101, "completedOrder")                \
    XX(COMPLETED_ORDERS_END, 102, "completedOrdersEnd")       \
    XX(HISTORICAL_DATA_END, 108, "historicalDataEnd")

#define IBW_OUT_MSG_MAP(XX)                                           \
    XX(REQ_MKT_DATA, 1, "reqMktData")                                 \
    XX(CANCEL_MKT_DATA, 2, "cancelMktData")                           \
    XX(PLACE_ORDER, 3, "placeOrder")                                  \
    XX(CANCEL_ORDER, 4, "cancelOrder")                                \
    XX(REQ_OPEN_ORDERS, 5, "reqOpenOrders")                           \
    XX(REQ_ACCT_DATA, 6, "reqAccountUpdates")                         \
    XX(REQ_EXECUTIONS, 7, "reqExecutions")                            \
    XX(REQ_IDS, 8, "reqIds")                                          \
    XX(REQ_CONTRACT_DATA, 9, "reqContractDetails")                    \
    XX(REQ_MKT_DEPTH, 10, "reqMktDepth")                              \
    XX(CANCEL_MKT_DEPTH, 11, "cancelMktDepth")                        \
    XX(REQ_AUTO_OPEN_ORDERS, 15, "reqAutoOpenOrders")                 \
    XX(REQ_ALL_OPEN_ORDERS, 16, "reqAllOpenOrders")                   \
    XX(REQ_MANAGED_ACCTS, 17, "reqManagedAccts")                      \
    XX(REQ_HISTORICAL_DATA, 20, "reqHistoricalData")                  \
    XX(CANCEL_HISTORICAL_DATA, 25, "cancelHistoricalData")            \
    XX(REQ_CURRENT_TIME, 49, "reqCurrentTime")                        \
    XX(REQ_REAL_TIME_BARS, 50, "reqRealTimeBars")                     \
    XX(CANCEL_REAL_TIME_BARS, 51, "cancelRealTimeBars")               \
    XX(REQ_GLOBAL_CANCEL, 58, "reqGlobalCancel")                      \
    XX(REQ_MARKET_DATA_TYPE, 59, "reqMarketDataType")                 \
    XX(REQ_POSITIONS, 61, "reqPositions")                             \
    XX(REQ_ACCOUNT_SUMMARY, 62, "reqAccountSummary")                  \
    XX(CANCEL_ACCOUNT_SUMMARY, 63, "cancelAccountSummary")            \
    XX(CANCEL_POSITIONS, 64, "cancelPositions")                       \
    XX(START_API, 71, "startApi")                                     \
    XX(REQ_POSITIONS_MULTI, 74, "reqPositionsMulti")                  \
    XX(CANCEL_POSITIONS_MULTI, 75, "cancelPositionsMulti")            \
    XX(REQ_ACCOUNT_UPDATES_MULTI, 76, "reqAccountUpdatesMulti")       \
    XX(CANCEL_ACCOUNT_UPDATES_MULTI, 77, "cancelAccountUpdatesMulti") \
    XX(REQ_MATCHING_SYMBOLS, 81, "reqMatchingSymbols")                \
    XX(REQ_HEAD_TIMESTAMP, 87, "reqHeadTimestamp")                    \
    XX(CANCEL_HEAD_TIMESTAMP, 90, "cancelHeadTimestamp")              \
    XX(REQ_PNL, 92, "reqPnL")                                         \
    XX(CANCEL_PNL, 93, "cancelPnL")                                   \
    XX(REQ_HISTORICAL_TICKS, 96, "reqHistoricalTicks")                \
    XX(REQ_TICK_BY_TICK, 97, "reqTickByTickData")                     \
    XX(CANCEL_TICK_BY_TICK, 98, "cancelTickByTickData")               \
    XX(REQ_COMPLETED_ORDERS, 99, "reqCompletedOrders")                \
    XX(REQ_USER_INFO, 104, "reqUserInfo")

enum ibw_in_msg {
#define XX(name, id, str) IBW_IN_##name = (id),
    IBW_IN_MSG_MAP(XX)
#undef XX
};

enum ibw_out_msg {
#define XX(name, id, str) IBW_OUT_##name = (id),
    IBW_OUT_MSG_MAP(XX)
#undef XX
};

/* IB's name of a gateway->client / client->gateway message id ("nextValidId"), or NULL. */
const char *ibw_in_name(int id);
const char *ibw_out_name(int id);

/* Where the request id sits in a message laid out for server version sv: the field index
 * (0 = the message id) of the request id in a client->gateway request (ibw_out_req_id_index)
 * or in a gateway->client answer (ibw_in_req_id_index); -1 for a message that carries none
 * (currentTime, nextValidId, position...) or that the table does not know. The request table
 * covers the requests whose answers mockgw ties to an id (reqMktData, reqHistoricalData,
 * reqContractDetails, reqHeadTimestamp, reqMatchingSymbols, reqExecutions, reqAccountSummary,
 * reqAccountUpdatesMulti and their cancels); the answer table every message mockgw encodes that
 * carries one (error 4 included: its id is -1 for connection notices). */
int ibw_out_req_id_index(int msg_id, int sv);
int ibw_in_req_id_index(int msg_id, int sv);

/* ---------------------------------------------------------------------------------------------
 * Error and notice texts (§5)
 */
/* IB's default text for error/notice code ("Market data farm connection is OK:usfarm" for
 * 2104), or NULL for a code without one. Static storage. Variable parts carry fixed values: farm
 * names as in the start-up burst, the port of 1300 is 4002, the counts of 100 are a real
 * capture's. Where IB ends the text with the request id (300, 366:
 * ibw_error_text_takes_id()), the text stops before it ("Can't find EId with tickerId:") and the
 * caller appends the id in decimal, with nothing in between. */
const char *ibw_error_text(int code);
/* True if IB ends code's text with the request id (see ibw_error_text()); false otherwise,
 * unknown codes included. */
bool ibw_error_text_takes_id(int code);

/* ---------------------------------------------------------------------------------------------
 * Decimal integers: the one strict parser of the project (wire fields, CLI flags, admin
 * queries). s[0..len) must be a whole number: an optional '-' (signed only) and one or more ASCII
 * digits, nothing else (no '+', no spaces, not empty), with a value in [min, max].
 * Returns 0 and stores *out, or -1 with *out untouched.
 */
int ibw_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);
int ibw_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);

/* ---------------------------------------------------------------------------------------------
 * Field reader (§1.2). Reads NUL-terminated fields from one frame payload, left to right.
 *
 * The first failure is sticky: it is stored in r->err and every later read returns it without
 * touching the output. Numeric reads are lenient the way every client is: an empty field reads
 * as 0 (or as the UNSET value with the *_max variants); anything else must be a whole number in
 * range (ints) or a complete decimal/exponent/"Infinity"/"Infinite" literal (doubles).
 */
struct ibw_reader {
    const char *p;   /* next field */
    const char *end; /* one past the payload */
    int err;         /* first error, or 0 */
    unsigned index;  /* index of the next field (0 = message id) */
};

/* payload must stay unchanged while strings read from it are in use. */
void ibw_reader_init(struct ibw_reader *r, const uint8_t *payload, size_t len);
/* Fields left to read (a final field lacking its NUL counts as one; reading it fails). */
unsigned ibw_reader_left(const struct ibw_reader *r);
/* *s points into the payload, NUL-terminated; valid as long as the payload. */
int ibw_read_str(struct ibw_reader *r, const char **s);
int ibw_read_int(struct ibw_reader *r, int *v);           /* empty -> 0 */
int ibw_read_int_max(struct ibw_reader *r, int *v);       /* empty -> IBW_UNSET_INT */
int ibw_read_long(struct ibw_reader *r, int64_t *v);      /* empty -> 0 */
int ibw_read_double(struct ibw_reader *r, double *v);     /* empty -> 0.0 */
int ibw_read_double_max(struct ibw_reader *r, double *v); /* empty -> IBW_UNSET_DOUBLE */
int ibw_read_bool(struct ibw_reader *r, bool *v);         /* "0"/"" -> false, other ints -> true */
int ibw_read_skip(struct ibw_reader *r, unsigned n);      /* skips n fields */

/* The message id of a payload (its first field), strictly numeric: IBW_EBADMSGID otherwise. */
int ibw_read_msg_id(struct ibw_reader *r, int *id);

/* ---------------------------------------------------------------------------------------------
 * Field writer (§1.2, STYLE.md §5). Writes one or more frames into a fixed buffer.
 *
 *     ibw_writer_init(&w, buf, sizeof buf);
 *     ibw_writer_begin(&w);              reserves the 4-byte length
 *     ibw_put_int(&w, IBW_IN_NEXT_VALID_ID); ...
 *     n = ibw_writer_end(&w);            back-patches the length; < 0 if any put failed
 *
 * Several begin/end pairs may follow each other in one buffer; w.len is the total so far.
 *
 * The first error is sticky for the writer's lifetime (like the reader's): once w.err is set,
 * every later begin/put/encoder is a no-op and ibw_writer_end() / the encoders return w.err.
 * The frames completed before the failure stay in buf[0..w.len); re-init to start over.
 * IBW_ENOSPC: a frame did not fit. IBW_ESTATE: put/end without begin, begin with a frame open,
 * or ibw_enc_hello() with a frame open. IBW_EZEROLEN / IBW_EMSGSIZE from ibw_writer_end(): an
 * empty payload, or one over IBW_MAX_FRAME (both would be refused by the peer's parser).
 * Encoder argument errors (IBW_EVERSION, IBW_EBADHELLO) write nothing and do not set w.err.
 */
struct ibw_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;   /* bytes of complete frames plus the open one */
    size_t start; /* offset of the open frame's length prefix */
    int err;      /* sticky: IBW_ENOSPC, or 0 */
    bool open;
};

void ibw_writer_init(struct ibw_writer *w, uint8_t *buf, size_t cap);
void ibw_writer_begin(struct ibw_writer *w);
/* Closes the open frame. Returns its total size (4 + payload) or the sticky error; on error
 * the failed frame is discarded (w->len goes back to where it began). */
ssize_t ibw_writer_end(struct ibw_writer *w);
/* Writes s (NULL = empty) and its NUL. Interior NULs are impossible by construction. */
void ibw_put_str(struct ibw_writer *w, const char *s);
void ibw_put_int(struct ibw_writer *w, int64_t v);
void ibw_put_int_max(struct ibw_writer *w, int64_t v); /* IBW_UNSET_INT / _LONG -> empty */
/* Java Double.toString spelling ("0.0", "185.25", "1.0E-4", "1.7976931348623157E308",
 * "Infinity"): the shortest text that reads back as the same double. */
void ibw_put_double(struct ibw_writer *w, double v);
void ibw_put_double_max(struct ibw_writer *w, double v); /* IBW_UNSET_DOUBLE -> empty */
void ibw_put_bool(struct ibw_writer *w, bool v);         /* "1" / "0" */

/* Formats v the way ibw_put_double does into out (>= 32 bytes). Returns the length. */
size_t ibw_format_double(double v, char *out, size_t cap);

/* ---------------------------------------------------------------------------------------------
 * Value types shared by requests and responses. Strings are borrowed, may be NULL (= empty).
 */
struct ibw_contract { /* the 12-field contract block "C12" of §4.2 */
    int64_t con_id;
    const char *symbol;
    const char *sec_type;
    const char *last_trade_date; /* lastTradeDateOrContractMonth */
    double strike;
    const char *right;
    const char *multiplier;
    const char *exchange;
    const char *primary_exchange;
    const char *currency;
    const char *local_symbol;
    const char *trading_class;
};

/* Reads the contract block of a request. with_primary_exchange is false only for the few
 * legacy layouts that omit it (node-ib's reqContractDetails v7, §4.5). */
int ibw_read_contract(struct ibw_reader *r, struct ibw_contract *c, bool with_primary_exchange);

struct ibw_tag_value {
    const char *tag;
    const char *value;
};

struct ibw_contract_details { /* contractDetails (10), §4.3 */
    struct ibw_contract c;
    const char *market_name;
    double min_tick;
    const char *order_types;
    const char *valid_exchanges;
    int price_magnifier;
    int64_t under_con_id;
    const char *long_name;
    const char *contract_month;
    const char *industry;
    const char *category;
    const char *subcategory;
    const char *time_zone_id;
    const char *trading_hours;
    const char *liquid_hours;
    const char *ev_rule;
    double ev_multiplier;
    const struct ibw_tag_value *sec_ids;
    unsigned n_sec_ids;
    int agg_group;
    const char *under_symbol;
    const char *under_sec_type;
    const char *market_rule_ids;
    const char *real_expiration_date;
    const char *last_trade_date; /* >= 182, the separate lastTradeDate field */
    const char *stock_type;
    const char *min_size; /* Decimal strings (>= 163) */
    const char *size_increment;
    const char *suggested_size_increment;
};

struct ibw_bar {      /* one historicalData bar */
    const char *date; /* formatted per the request's formatDate */
    double open, high, low, close;
    const char *volume; /* Decimal string */
    const char *wap;    /* Decimal string */
    int count;          /* number of trades */
};

struct ibw_symbol_sample { /* symbolSamples (79) entry */
    int64_t con_id;
    const char *symbol;
    const char *sec_type;
    const char *primary_exchange;
    const char *currency;
    const char *const *deriv_sec_types;
    unsigned n_deriv_sec_types;
    const char *description; /* >= 176 */
    const char *issuer_id;   /* >= 176 */
};

struct ibw_position { /* position (61) */
    const char *account;
    struct ibw_contract c; /* primary_exchange is not on the wire here */
    const char *position;  /* Decimal string */
    double avg_cost;
};

struct ibw_portfolio {     /* updatePortfolio (7): a position valued at the market */
    struct ibw_position p; /* c.primary_exchange is sent in the exchange slot */
    double market_price;
    double market_value;
    double unrealized_pnl;
    double realized_pnl;
};

/* ---------------------------------------------------------------------------------------------
 * Encoders: every message mockgw sends, each appended to w as one complete frame, with the
 * layout of server version sv (IBW_MIN_VERSION..IBW_MAX_VERSION; IBW_EVERSION outside).
 * Return the frame size or a negative error (IBW_ENOSPC when w is full; w keeps its earlier
 * frames). Layouts follow §4.3 and the official decoders' version branches.
 */
/* Handshake reply: "<version>\0<time>\0" as one frame (§2.2). */
ssize_t ibw_enc_server_version(struct ibw_writer *w, int version, const char *conn_time);
/* 4: version-dependent: advancedOrderRejectJson from 166; the unversioned layout with
 * errorTime (ms) from 194. json may be NULL. */
ssize_t ibw_enc_error(struct ibw_writer *w, int sv, int id, int code, const char *text,
                      const char *json, int64_t error_time_ms);
ssize_t ibw_enc_next_valid_id(struct ibw_writer *w, int sv, int64_t order_id);
ssize_t ibw_enc_managed_accounts(struct ibw_writer *w, int sv, const char *accounts);
ssize_t ibw_enc_current_time(struct ibw_writer *w, int sv, int64_t epoch_s);
ssize_t ibw_enc_position(struct ibw_writer *w, int sv, const struct ibw_position *p);
ssize_t ibw_enc_position_end(struct ibw_writer *w, int sv);
ssize_t ibw_enc_portfolio_value(struct ibw_writer *w, int sv, const struct ibw_portfolio *pf);
ssize_t ibw_enc_open_order_end(struct ibw_writer *w, int sv);
ssize_t ibw_enc_completed_orders_end(struct ibw_writer *w, int sv);
ssize_t ibw_enc_account_value(struct ibw_writer *w, int sv, const char *key, const char *value,
                              const char *currency, const char *account);
ssize_t ibw_enc_account_time(struct ibw_writer *w, int sv, const char *hhmm);
ssize_t ibw_enc_account_download_end(struct ibw_writer *w, int sv, const char *account);
ssize_t ibw_enc_account_update_multi(struct ibw_writer *w, int sv, int req_id, const char *account,
                                     const char *model_code, const char *key, const char *value,
                                     const char *currency);
ssize_t ibw_enc_account_update_multi_end(struct ibw_writer *w, int sv, int req_id);
ssize_t ibw_enc_account_summary(struct ibw_writer *w, int sv, int req_id, const char *account,
                                const char *tag, const char *value, const char *currency);
ssize_t ibw_enc_account_summary_end(struct ibw_writer *w, int sv, int req_id);
ssize_t ibw_enc_exec_details_end(struct ibw_writer *w, int sv, int req_id);
ssize_t ibw_enc_contract_details(struct ibw_writer *w, int sv, int req_id,
                                 const struct ibw_contract_details *cd);
ssize_t ibw_enc_contract_details_end(struct ibw_writer *w, int sv, int req_id);
/* 17 (+ 108 from 196, where start/end move to historicalDataEnd; this writes both frames). */
ssize_t ibw_enc_historical_data(struct ibw_writer *w, int sv, int req_id, const char *start,
                                const char *end, const struct ibw_bar *bars, unsigned n);
ssize_t ibw_enc_head_timestamp(struct ibw_writer *w, int sv, int req_id, const char *timestamp);
ssize_t ibw_enc_symbol_samples(struct ibw_writer *w, int sv, int req_id,
                               const struct ibw_symbol_sample *s, unsigned n);
ssize_t ibw_enc_tick_req_params(struct ibw_writer *w, int sv, int req_id, double min_tick,
                                const char *bbo_exchange, int snapshot_permissions);
/* size is a Decimal string; attr_mask bits: 1 canAutoExecute, 2 pastLimit, 4 preOpen. */
ssize_t ibw_enc_tick_price(struct ibw_writer *w, int sv, int req_id, int tick_type, double price,
                           const char *size, int attr_mask);
ssize_t ibw_enc_tick_size(struct ibw_writer *w, int sv, int req_id, int tick_type,
                          const char *size);
ssize_t ibw_enc_tick_string(struct ibw_writer *w, int sv, int req_id, int tick_type,
                            const char *value);
ssize_t ibw_enc_tick_generic(struct ibw_writer *w, int sv, int req_id, int tick_type, double value);
ssize_t ibw_enc_market_data_type(struct ibw_writer *w, int sv, int req_id, int type);
ssize_t ibw_enc_tick_snapshot_end(struct ibw_writer *w, int sv, int req_id);

/* Client-side decoding. Reads the fields after the message id of an error/notice frame (4)
 * laid out for server version sv: "version,id,code,text[,json]" below 194, "id,code,text,json,
 * errorTime" from 194. text points into the payload. 0, or the reader's error. */
int ibw_dec_error(struct ibw_reader *r, int sv, int *id, int *code, const char **text);

/* Client-side encoders (used by the core, the benchmark and tests). */
/* "API\0" + length + "v<min>..<max>[ options]" ("v<min>" when min == max); options may be NULL.
 * Not a normal frame: the writer must have no frame open. */
ssize_t ibw_enc_hello(struct ibw_writer *w, int min_version, int max_version, const char *options);
/* 71: "71,2,<clientId>,<optionalCapabilities>" (§3.1). */
ssize_t ibw_enc_start_api(struct ibw_writer *w, int client_id, const char *capabilities);

/* Tick types used by the encoders' callers (§4.4). */
enum ibw_tick_type {
    IBW_TICK_BID_SIZE = 0,
    IBW_TICK_BID = 1,
    IBW_TICK_ASK = 2,
    IBW_TICK_ASK_SIZE = 3,
    IBW_TICK_LAST = 4,
    IBW_TICK_LAST_SIZE = 5,
    IBW_TICK_HIGH = 6,
    IBW_TICK_LOW = 7,
    IBW_TICK_VOLUME = 8,
    IBW_TICK_CLOSE = 9,
    IBW_TICK_OPEN = 14,
    IBW_TICK_LAST_TIMESTAMP = 45,
    IBW_TICK_DELAYED_BID = 66,
    IBW_TICK_DELAYED_ASK = 67,
    IBW_TICK_DELAYED_LAST = 68,
    IBW_TICK_DELAYED_BID_SIZE = 69,
    IBW_TICK_DELAYED_ASK_SIZE = 70,
    IBW_TICK_DELAYED_LAST_SIZE = 71,
    IBW_TICK_DELAYED_HIGH = 72,
    IBW_TICK_DELAYED_LOW = 73,
    IBW_TICK_DELAYED_VOLUME = 74,
    IBW_TICK_DELAYED_CLOSE = 75,
    IBW_TICK_DELAYED_OPEN = 76,
    IBW_TICK_DELAYED_LAST_TIMESTAMP = 88
};

#ifdef __cplusplus
}
#endif

#endif /* IBWIRE_H */
