"""Requests at server version 178 and their exact reply layouts (IB_WIRE §3.4, §4.2, §4.3, §5)."""

import re
import time
import zoneinfo

import pytest

from ibclient import wait_until

AAPL_CONID = "265598"
ERR_200 = "No security definition has been found for the request"
TEXT_326 = "Unable to connect as the client id is already in use. Retry with a unique client id."

# As ib_async / stoqey send them at 178 (IB_WIRE §4.2).
CD_AAPL_IB_ASYNC = "9,8,3,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,,"
CD_AAPL_STOQEY = "9,8,11,,AAPL,STK,,,,,SMART,,USD,,,,,,"
HIST_AAPL = "20,4,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,30 mins,1 D,1,TRADES,1,0,"
WATCHDOG_PROBE = "20,{id},0,EUR,CASH,,0.0,,,IDEALPRO,,USD,,,0,,5 secs,30 S,0,MIDPOINT,1,0,"
MKT_SNAPSHOT = "1,11,8,265598,AAPL,STK,,0.0,,,SMART,NASDAQ,USD,AAPL,NMS,0,,1,0,"
MKT_STREAM = "1,11,{id},265598,AAPL,STK,,0.0,,,SMART,NASDAQ,USD,AAPL,NMS,0,,0,0,"

BAR_DATE_RE = re.compile(r"^(\d{8} \d{2}:\d{2}:\d{2}) (\S+)$")
NUM_RE = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def hist_request(req_id, symbol="AAPL", sec_type="STK", exchange="SMART", end="",
                 bar="30 mins", duration="1 D", rth=1, what="TRADES", fmt=1):
    return (f"20,{req_id},0,{symbol},{sec_type},,0.0,,,{exchange},,USD,,,0,{end},{bar},"
            f"{duration},{rth},{what},{fmt},0,")


def check_ib_datetime(text):
    """'yyyyMMdd HH:mm:ss <IANA zone>' with a zone ib_async can load (IB_WIRE §4.3, §8.10)."""
    m = BAR_DATE_RE.match(text)
    assert m, f"{text!r} is not 'yyyyMMdd HH:mm:ss ZONE'"
    time.strptime(m.group(1), "%Y%m%d %H:%M:%S")
    zoneinfo.ZoneInfo(m.group(2))  # raises for a non-IANA zone, as ib_async would
    return m.group(2)


def parse_historical(frame):
    """17,reqId,start,end,n,{date,open,high,low,close,volume,wap,barCount}xn -> (start, end, bars)."""
    assert frame[0] == "17", frame
    n = int(frame[4])
    assert len(frame) == 5 + 8 * n, f"count field says {n} bars, frame has {len(frame)} fields"
    bars = [frame[5 + 8 * i: 13 + 8 * i] for i in range(n)]
    return frame[2], frame[3], bars


def check_bar(bar, trades=True):
    date, o, h, l, c, vol, wap, count = bar
    for v in (o, h, l, c, vol, wap, count):
        assert NUM_RE.match(v), f"bar field {v!r} is not a number: {bar}"
    o, h, l, c = map(float, (o, h, l, c))
    assert 0 < l <= min(o, c) <= max(o, c) <= h, bar
    if trades:
        assert float(vol) >= 0 and int(count) >= 0 and l <= float(wap) <= h, bar
    else:  # MIDPOINT/BID/ASK bars: TWS sends -1 for volume, WAP and count
        assert (vol, wap, count) in (("-1", "-1", "-1"), ("-1", "-1.0", "-1")), bar
    return date


# -- reqCurrentTime, pacing, reqIds ------------------------------------------------------
def test_req_current_time(mockgw):
    c = mockgw.ready_client()
    c.send_fields("49,1")
    f = c.read_frame()
    assert f[:2] == ["49", "1"] and len(f) == 3
    assert abs(int(f[2]) - time.time()) < 5


@pytest.mark.timeout_s(10)
def test_req_current_time_paced_once_per_second(mockgw):
    c = mockgw.ready_client()
    c.send_fields("49,1")
    assert c.read_frame()[0] == "49"
    t0 = time.monotonic()
    c.send_fields("49,1")  # within 1 s of the last answer: no reply at all (IB_WIRE §8.7)
    c.expect_silence(0.3)
    assert time.monotonic() - t0 < 1.0, "the silence check ran past the pacing window"
    mockgw.wait_event("paced")
    wait_until(lambda: time.monotonic() - t0 >= 1.1, 2, what="1.1 s after the answer")
    c.send_fields("49,1")
    f = c.read_frame()
    assert f[:2] == ["49", "1"]
    # Pacing is per client: another connection is answered at once.
    d = mockgw.ready_client(client_id=2)
    d.send_fields("49,1")
    assert d.read_frame()[0] == "49"


def test_no_time_pacing_answers_both(mockgw_factory):
    m = mockgw_factory("--no-time-pacing")
    c = m.ready_client()
    c.send_fields("49,1")
    c.send_fields("49,1")
    assert [f[:2] for f in c.read_frames(2)] == [["49", "1"], ["49", "1"]]


def test_req_ids(mockgw):
    c = mockgw.ready_client()
    c.send_fields("8,1,1")
    assert c.read_frame() == ["9", "1", "1"]


def test_req_managed_accts(mockgw):
    c = mockgw.ready_client()
    c.send_fields("17,1")
    assert c.read_frame() == ["15", "1", "DU1234567"]


# -- ib_async's start-up syncs ------------------------------------------------------------
def test_ib_async_startup_syncs(mockgw):
    c = mockgw.ready_client(client_id=1)
    for req in ("61,1", "5,1", "99,0", "6,2,1,DU1234567", "76,1,1,DU1234567,,0"):
        c.send_fields(req)
    frames = c.read_until(lambda f: f[0] == "74")
    ids = [f[0] for f in frames]
    # Ends in request order: positionEnd, openOrderEnd, completedOrdersEnd, accountDownloadEnd,
    # accountUpdateMultiEnd.
    ends = [f for f in frames if f[0] in ("62", "53", "102", "54", "74")]
    assert ends == [["62", "1"], ["53", "1"], ["102"], ["54", "1", "DU1234567"], ["74", "1", "1"]]
    for f in frames:
        if f[0] == "61":  # position: exactly 16 fields (ib_async unpacks a fixed tuple)
            assert len(f) == 16 and f[1] == "3" and f[2] == "DU1234567", f
    # reqAccountUpdates: 6,2,key,value,currency,account ... then 8,1,HH:MM then 54,1,account.
    start = ids.index("102") + 1
    acct = frames[start: ids.index("54") + 1]
    assert acct[-1] == ["54", "1", "DU1234567"]
    assert acct[-2][:2] == ["8", "1"] and re.fullmatch(r"\d\d:\d\d", acct[-2][2]), acct[-2]
    values = [f for f in acct[:-2]]
    assert values, "no account values before accountDownloadEnd"
    for f in values:
        if f[0] == "7":  # updatePortfolio: exactly 20 fields
            assert len(f) == 20 and f[1] == "8", f
        else:
            assert f[0] == "6" and len(f) == 6 and f[1] == "2" and f[5] == "DU1234567", f
    keys = {f[2] for f in values if f[0] == "6"}
    assert "NetLiquidation" in keys
    multi = frames[ids.index("54") + 1:]
    assert multi[-1] == ["74", "1", "1"]
    for f in multi[:-1]:
        assert f[0] == "73" and len(f) == 8 and f[1:5] == ["1", "1", "DU1234567", ""], f
    assert len(multi) > 1, "no accountUpdateMulti values"
    # 6: reqExecutions after 1-5 finished.
    c.send_fields("7,3,2,0,,,,,,")
    assert c.read_frame() == ["55", "1", "2"]


def test_req_account_summary(mockgw):
    c = mockgw.ready_client()
    # tags is one field holding a comma-separated list
    c.send_frame(["62", "1", "9000", "All", "NetLiquidation,TotalCashValue"])
    frames = c.read_until_id(64)
    assert frames[-1] == ["64", "1", "9000"]
    rows = frames[:-1]
    assert {f[4] for f in rows} == {"NetLiquidation", "TotalCashValue"}
    for f in rows:
        assert f[:4] == ["63", "1", "9000", "DU1234567"] and len(f) == 7, f


# -- contract details ---------------------------------------------------------------------
def check_contract_details(f, req_id):
    assert f[0] == "10" and f[1] == str(req_id), f
    n_sec_ids = int(f[30])
    assert len(f) == 31 + 2 * n_sec_ids + 9, f"contractDetails at 178 has {len(f)} fields: {f}"
    return dict(symbol=f[2], sec_type=f[3], exchange=f[7], currency=f[8], local_symbol=f[9],
                con_id=f[12], min_tick=f[13], long_name=f[19], primary_exchange=f[20],
                time_zone=f[25], trading_hours=f[26])


def test_contract_details_as_ib_async_sends(mockgw):
    c = mockgw.ready_client()
    c.send_fields(CD_AAPL_IB_ASYNC)
    frames = c.read_until_id(52)
    assert frames[-1] == ["52", "1", "3"]
    assert len(frames) == 2, [f[:3] for f in frames]
    d = check_contract_details(frames[0], 3)
    assert d["con_id"] == AAPL_CONID and d["symbol"] == "AAPL" and d["sec_type"] == "STK"
    assert d["currency"] == "USD" and d["primary_exchange"] == "NASDAQ"
    assert d["long_name"] == "APPLE INC"
    zoneinfo.ZoneInfo(d["time_zone"])
    # tradingHours rendered IB-style: "yyyyMMdd:HHmm-yyyyMMdd:HHmm;...;yyyyMMdd:CLOSED", not
    # the fixture's template ("0400-2000").
    for hours in (d["trading_hours"], frames[0][27]):  # tradingHours, liquidHours
        for part in re.split(r"[;,]", hours):
            assert re.fullmatch(r"\d{8}:(CLOSED|\d{4}-\d{8}:\d{4})", part), \
                f"hours not in IB's format: {hours!r}"


def test_contract_details_as_stoqey_sends(mockgw):
    c = mockgw.ready_client()
    c.send_fields(CD_AAPL_STOQEY)
    frames = c.read_until_id(52)
    assert frames[-1] == ["52", "1", "11"]
    assert check_contract_details(frames[0], 11)["con_id"] == AAPL_CONID


def test_contract_details_by_con_id(mockgw):
    c = mockgw.ready_client()
    c.send_fields("9,8,12,265598,,,,0.0,,,,,,,,0,,,")
    frames = c.read_until_id(52)
    assert check_contract_details(frames[0], 12)["symbol"] == "AAPL"


def test_contract_details_unknown_symbol(mockgw):
    c = mockgw.ready_client()
    c.send_fields("9,8,3,0,NOSUCHSYM,STK,,0.0,,,SMART,,USD,,,0,,,")
    assert c.read_frame() == ["4", "2", "3", "200", ERR_200, ""]
    # No contractDetailsEnd after the 200: the next frame answers the next request.
    c.send_fields("8,1,1")
    assert c.read_frame() == ["9", "1", "1"]


# -- historical data ----------------------------------------------------------------------
def test_historical_data_aapl(mockgw):
    c = mockgw.ready_client()
    c.send_fields(HIST_AAPL)
    start, end, bars = parse_historical(c.read_frame())
    assert bars, "no bars"
    assert check_ib_datetime(start) == "US/Eastern" and check_ib_datetime(end) == "US/Eastern"
    dates = [check_bar(b) for b in bars]
    for d in dates:
        assert check_ib_datetime(d) == "US/Eastern"
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    assert start <= dates[0] and dates[-1] <= end


def test_historical_daily_bars_have_date_only(mockgw):
    c = mockgw.ready_client()
    c.send_fields(hist_request(5, bar="1 day", duration="5 D", end="20240119 16:00:00 US/Eastern"))
    _, _, bars = parse_historical(c.read_frame())
    assert bars
    for b in bars:
        assert re.fullmatch(r"\d{8}", check_bar(b)), b


def test_historical_format_date_2_is_epoch(mockgw):
    c = mockgw.ready_client()
    c.send_fields(hist_request(6, fmt=2, end="20240115 16:00:00 US/Eastern"))
    _, _, bars = parse_historical(c.read_frame())
    assert bars
    for b in bars:
        assert re.fullmatch(r"\d{9,10}", check_bar(b)), b


def test_watchdog_probe_gets_bars(mockgw):
    c = mockgw.ready_client()
    c.send_fields(WATCHDOG_PROBE.format(id=21))
    f = c.read_frame()
    assert f[1] == "21"
    _, _, bars = parse_historical(f)
    assert len(bars) >= 1
    for b in bars:
        check_ib_datetime(check_bar(b, trades=False))


def test_historical_end_in_utc_dash_format(mockgw):
    c = mockgw.ready_client()
    c.send_fields(hist_request(8, end="20240117-21:00:00", bar="1 hour"))  # 16:00 New York
    start, end, bars = parse_historical(c.read_frame())
    assert end == "20240117 16:00:00 US/Eastern", end
    assert bars and all(b[0].startswith("20240117 ") for b in bars)


def test_historical_bad_bar_size(mockgw):
    c = mockgw.ready_client()
    c.send_fields(hist_request(8, bar="1 X"))
    f = c.read_frame()
    assert f[:4] == ["4", "2", "8", "321"] and len(f) == 6, f
    # The list of legal bar sizes is complete (TWS ends it with 1 day, 1W, 1M).
    assert f[4].endswith("4 hours, 8 hours, 1 day, 1W, 1M"), f"321 text cut short: {f[4]!r}"


def test_historical_unknown_symbol(mockgw):
    c = mockgw.ready_client()
    c.send_fields(hist_request(9, symbol="NOSUCHSYM"))
    assert c.read_frame() == ["4", "2", "9", "200", ERR_200, ""]


def test_historical_deterministic(mockgw_factory):
    req = hist_request(4, end="20240117 16:00:00 US/Eastern", duration="2 D")
    m = mockgw_factory()
    a = m.ready_client(client_id=1)
    b = m.ready_client(client_id=2)
    a.send_fields(req)
    b.send_fields(req)
    first, second = a.read_frame(), b.read_frame()
    assert parse_historical(first)[2], "no bars"
    assert first == second
    a.send_fields(req)
    assert a.read_frame() == first
    # Same seed in another process: the same bars.
    m2 = mockgw_factory()
    assert m2.ready_client().request(req, 17) == [first]


def test_historical_seed_changes_prices(mockgw_factory):
    req = hist_request(4, end="20240117 16:00:00 US/Eastern")
    one = mockgw_factory("--seed", "1").ready_client().request(req, 17)[-1]
    two = mockgw_factory("--seed", "2").ready_client().request(req, 17)[-1]
    _, _, bars1 = parse_historical(one)
    _, _, bars2 = parse_historical(two)
    assert [b[0] for b in bars1] == [b[0] for b in bars2], "bar times must not depend on the seed"
    assert [b[1:5] for b in bars1] != [b[1:5] for b in bars2], "prices did not change with --seed"


def test_keep_up_to_date_subscription_cancels_silently(mockgw):
    c = mockgw.ready_client()
    c.send_fields("20,30,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,5 mins,1 D,0,TRADES,1,1,")
    f = c.read_until_id(17)[-1]
    assert f[1] == "30" and parse_historical(f)[2]
    c.send_fields("25,1,30")  # a live keepUpToDate request: cancelled without a reply
    c.send_fields("8,1,1")
    frames = c.read_until(lambda f: f[0] == "9")
    assert all(f[0] in ("90", "9") for f in frames), frames  # updates (90) may precede
    c.send_fields("25,1,30")  # now it is gone: 366
    f = c.read_until(lambda f: f[0] == "4")[-1]
    assert f[:4] == ["4", "2", "30", "366"], f


def test_cancel_historical_data_unknown(mockgw):
    c = mockgw.ready_client()
    c.send_fields("25,1,78")
    assert c.read_frame() == ["4", "2", "78", "366",
                              "No historical data query found for ticker id:78", ""]


# -- head timestamp, matching symbols -----------------------------------------------------
def test_head_timestamp(mockgw):
    c = mockgw.ready_client()
    c.send_fields("87,5,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,1,TRADES,1")
    f = c.read_frame()
    assert f[:2] == ["88", "5"] and len(f) == 3, f
    assert re.fullmatch(r"\d{8}-\d\d:\d\d:\d\d", f[2]), f
    c.send_fields("90,5")  # ib_async's automatic cancelHeadTimestamp: no reply
    c.send_fields("87,6,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,1,TRADES,2")
    f = c.read_frame()
    assert f[:2] == ["88", "6"] and re.fullmatch(r"\d+", f[2]), f


def parse_symbol_samples(f):
    """79,reqId,n,{conId,symbol,secType,primaryExchange,currency,nDeriv,deriv*,description,
    issuerId}xn (>= 176)."""
    assert f[0] == "79"
    n, i, out = int(f[2]), 3, []
    for _ in range(n):
        con_id, symbol, sec_type, primary, currency, n_deriv = f[i: i + 6]
        i += 6
        derivs = f[i: i + int(n_deriv)]
        i += int(n_deriv)
        description, issuer = f[i: i + 2]
        i += 2
        out.append(dict(con_id=con_id, symbol=symbol, sec_type=sec_type, primary=primary,
                        currency=currency, derivs=derivs, description=description))
    assert i == len(f), f"symbolSamples has {len(f) - i} fields left over: {f}"
    return out


def test_matching_symbols(mockgw):
    c = mockgw.ready_client()
    c.send_fields("81,6,AAP")
    f = c.read_frame()
    assert f[1] == "6"
    samples = parse_symbol_samples(f)
    aapl = [s for s in samples if s["symbol"] == "AAPL"]
    assert aapl and aapl[0]["con_id"] == AAPL_CONID and aapl[0]["sec_type"] == "STK"


def test_matching_symbols_none(mockgw):
    c = mockgw.ready_client()
    c.send_fields("81,7,ZZZZZZZZ")
    assert c.read_frame() == ["79", "7", "0"]


# -- market data --------------------------------------------------------------------------
SIZE_OF = {"1": "0", "2": "3", "4": "5", "66": "69", "67": "70", "68": "71"}


def check_ticks(frames, req_id, price_types):
    """Each bid/ask/last price tick is followed by its size tick (IB_WIRE §4.3, §8.9)."""
    seen = []
    for i, f in enumerate(frames):
        assert f[2] == str(req_id), f
        if f[0] == "1":
            assert len(f) == 7 and f[1] == "6", f
            assert NUM_RE.match(f[4]) and float(f[4]) > 0, f
            seen.append(f[3])
            if f[3] in SIZE_OF:
                nxt = frames[i + 1]
                assert nxt[:4] == ["2", "6", str(req_id), SIZE_OF[f[3]]] and len(nxt) == 5, \
                    (f, nxt)
                assert nxt[4] == f[5], f"size tick {nxt} disagrees with price tick {f}"
        elif f[0] == "2":
            assert len(f) == 5 and f[1] == "6", f
        elif f[0] == "46":
            assert len(f) == 5 and f[1] == "6", f
    for t in price_types:
        assert t in seen, f"no tick type {t} in {seen}"


def test_mkt_data_snapshot(mockgw):
    c = mockgw.ready_client()
    c.send_fields("59,1,1")  # reqMarketDataType live
    c.send_fields(MKT_SNAPSHOT)
    frames = c.read_until_id(57)
    assert frames[-1] == ["57", "1", "8"]
    assert frames[0][:2] == ["81", "8"] and len(frames[0]) == 5, frames[0]
    body = frames[1:-1]
    if body[0][0] == "58":
        assert body[0] == ["58", "1", "8", "1"]
        body = body[1:]
    check_ticks(body, 8, ["1", "2", "4"])


def test_mkt_data_delayed_ticks(mockgw):
    c = mockgw.ready_client()
    c.send_fields("59,1,3")
    c.send_fields(MKT_SNAPSHOT)
    frames = c.read_until_id(57)
    assert frames[1] == ["58", "1", "8", "3"]
    check_ticks(frames[2:-1], 8, ["66", "67", "68"])


def test_mkt_data_stream_then_cancel(mockgw):
    c = mockgw.ready_client()
    c.send_fields(MKT_STREAM.format(id=12))
    frames = c.read_until(lambda f: f[0] == "46")  # the last timestamp closes the first batch
    assert all(f[0] != "57" for f in frames)
    c.send_fields("2,2,12")  # cancel of a live subscription: no reply
    c.send_fields("8,1,1")
    assert c.read_frame() == ["9", "1", "1"]


def test_cancel_mkt_data_unknown(mockgw):
    c = mockgw.ready_client()
    c.send_fields("2,2,77")
    assert c.read_frame() == ["4", "2", "77", "300", "Can't find EId with tickerId:77", ""]


def test_mkt_data_unknown_contract(mockgw):
    c = mockgw.ready_client()
    c.send_fields("1,11,13,0,NOSUCHSYM,STK,,0.0,,,SMART,,USD,,,0,,1,0,")
    assert c.read_frame() == ["4", "2", "13", "200", ERR_200, ""]


# -- framing on the request side --------------------------------------------------------
def test_pipelined_requests_answered_in_order(mockgw):
    from ibclient import encode_frame

    c = mockgw.ready_client()
    burst = b"".join(encode_frame(["81", str(i), "AAP"]) for i in range(200))
    c.send_raw(burst)
    got = [c.read_frame()[1] for _ in range(200)]
    assert got == [str(i) for i in range(200)]


def test_request_in_one_byte_writes(mockgw):
    from ibclient import encode_frame

    c = mockgw.ready_client()
    two = encode_frame(CD_AAPL_IB_ASYNC.split(",")) + encode_frame(["8", "1", "1"])
    for i in range(len(two)):
        c.send_raw(two[i:i + 1])
    frames = c.read_until_id(9)
    assert [f[0] for f in frames] == ["10", "52", "9"]


# -- unknown messages ---------------------------------------------------------------------
def test_unknown_message_id_ignored(mockgw):
    c = mockgw.ready_client()
    c.send_fields("999,1,whatever")
    c.expect_silence(0.2)
    c.send_fields("49,1")
    assert c.read_frame()[:2] == ["49", "1"]
    ev = mockgw.wait_event("ignored", msg_id=999)
    assert ev["conn"] == mockgw.conn_id_of(c)


def test_repeated_start_api_ignored(mockgw):
    c = mockgw.ready_client()
    c.start_api(1)
    c.send_fields("8,1,1")
    assert c.read_frame() == ["9", "1", "1"]
    mockgw.wait_event("ignored", msg_id=71)


# -- client ids ---------------------------------------------------------------------------
EXPECTED_326 = (bytes.fromhex("00000061") + b"4\x002\x00-1\x00326\x00" + TEXT_326.encode()
                + b"\x00\x00")


def test_duplicate_client_id_gets_326_then_eof(mockgw):
    assert len(EXPECTED_326) == 101
    first = mockgw.ready_client(client_id=5)
    second = mockgw.client()
    second.send_hello()
    assert second.read_version_reply()[0] == "178"
    second.start_api(5)
    assert second.wait_eof() == EXPECTED_326
    assert not second.reset, "326 must be followed by a FIN, not a reset"
    mockgw.wait_event("client_id_in_use", client_id=5)
    first.send_fields("8,1,1")
    assert first.read_frame() == ["9", "1", "1"]
    # After the holder leaves, the id is free again.
    conn = mockgw.conn_id_of(first)
    first.close()
    mockgw.wait_event("disconnect", conn=conn)
    third = mockgw.ready_client(client_id=5)
    third.send_fields("8,1,1")
    assert third.read_frame() == ["9", "1", "1"]


def test_allow_duplicate_client_ids(mockgw_factory):
    m = mockgw_factory("--allow-duplicate-client-ids")
    a = m.ready_client(client_id=5)
    b = m.ready_client(client_id=5)
    for c in (a, b):
        c.send_fields("8,1,1")
        assert c.read_frame() == ["9", "1", "1"]


@pytest.mark.timeout_s(30)
def test_33rd_client_gets_eof(mockgw):
    clients = [mockgw.ready_client(client_id=i) for i in range(1, 33)]
    extra = mockgw.client()
    assert extra.wait_eof() == b"", "the 33rd client must see EOF before any byte"
    mockgw.wait_event("close", reason="max clients reached")
    clients[0].send_fields("8,1,1")
    assert clients[0].read_frame() == ["9", "1", "1"]
    # One leaves: a new client fits again.
    conn = mockgw.conn_id_of(clients[-1])
    clients[-1].close()
    mockgw.wait_event("disconnect", conn=conn)
    again = mockgw.ready_client(client_id=99)
    again.send_fields("8,1,1")
    assert again.read_frame() == ["9", "1", "1"]


@pytest.mark.timeout_s(30)
def test_max_clients_0_is_unlimited(mockgw_factory):
    m = mockgw_factory("--max-clients", "0")
    clients = [m.ready_client(client_id=i) for i in range(1, 41)]
    clients[-1].send_fields("8,1,1")
    assert clients[-1].read_frame() == ["9", "1", "1"]
    assert m.status()["connection_count"] == 40


def test_max_clients_flag(mockgw_factory):
    m = mockgw_factory("--max-clients", "2")
    m.ready_client(client_id=1)
    m.ready_client(client_id=2)
    assert m.client().wait_eof() == b""
