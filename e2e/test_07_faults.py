"""The fault engine from a client's side: every action, every match key, every --fault preset
(docs/script-format.md). Each test loads its rules with --script (a file in tmp_path) or the
admin API, then asserts what arrives on the wire (bytes, EOF, RST, timing) and what the journal
records ({"event":"fault",...}, "fault_applied", "delay", "listener", "restart"...).
"""

import json
import socket
import struct
import time

import pytest

from ibclient import encode_frame, wait_until

# The start-up burst at 178 for accounts DU1234567, next id 1 (IB_WIRE §7).
BURST_15 = bytes.fromhex("0000000f") + b"15\x001\x00DU1234567\x00"
BURST_9 = bytes.fromhex("00000006") + b"9\x001\x001\x00"
BURST_NOTICES = (
    bytes.fromhex("00000036") + b"4\x002\x00-1\x002104\x00Market data farm connection is OK:usfarm\x00\x00"
    + bytes.fromhex("00000034") + b"4\x002\x00-1\x002106\x00HMDS data farm connection is OK:ushmds\x00\x00"
    + bytes.fromhex("00000039") + b"4\x002\x00-1\x002158\x00Sec-def data farm connection is OK:secdefnj\x00\x00"
)
BURST = BURST_15 + BURST_9 + BURST_NOTICES
START_API_1 = encode_frame([71, 2, 1, ""])

REQ_IDS = "8,1,1"
REQ_TIME = "49,1"
NEXT_VALID_ID = ["9", "1", "1"]
HIST = "20,{id},0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,30 mins,1 D,1,TRADES,1,0,"
HIST_BIG = "20,{id},0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,1 min,5 D,1,TRADES,1,0,"

TEXT = {
    162: "Historical Market Data Service error message:Historical data request pacing violation",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    504: "Not connected",
    1100: "Connectivity between IBKR and Trader Workstation has been lost.",
    1102: "Connectivity between IBKR and Trader Workstation has been restored - data maintained.",
}


def notice(code, req_id=-1, text=None):
    return ["4", "2", str(req_id), str(code), TEXT[code] if text is None else text, ""]


# -- helpers ------------------------------------------------------------------------------
def write_script(tmp_path, rules=(), settings=None, state=None):
    doc = {"rules": list(rules)}
    if settings is not None:
        doc["settings"] = settings
    if state is not None:
        doc["state"] = state
    n = len(list(tmp_path.glob("script*.json")))
    path = tmp_path / f"script{n}.json"
    path.write_text(json.dumps(doc))
    return path


def start(mockgw_factory, tmp_path, rules=(), settings=None, state=None, args=()):
    """mockgw with the given rules/settings loaded via --script."""
    path = write_script(tmp_path, rules, settings, state)
    return mockgw_factory("--script", str(path), *args)


def rule(phase, action, name=None, **match):
    r = {"match": dict(match, phase=phase) if phase else dict(match),
         "action": action if isinstance(action, dict) else {"type": action}}
    if name:
        r["name"] = name
    return r


def faults(m, **match):
    return admin_events(m, "fault", **match)


def admin_events(m, name, **match):
    """Events from GET /v1/journal (the ring: up to date at once, unlike the --log file)."""
    return [e for e in m.admin_journal()
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


def wait_admin_event(m, name, timeout_s=5.0, **match):
    return wait_until(lambda: admin_events(m, name, **match), timeout_s,
                      what=f"admin journal event {name} {match}")[0]


def status_conn(m, conn_id):
    for c in m.status()["connections"]:
        if c["id"] == conn_id:
            return c
    return None


def read_all(c, window_s):
    """Every byte that arrives within window_s (stops early at EOF)."""
    deadline = time.monotonic() + window_s
    try:
        while not c.eof:
            c._fill(deadline)
    except (socket.timeout, TimeoutError):
        pass
    out = bytes(c.buf)
    c.buf.clear()
    return out


def refused(port, timeout_s=1.0):
    """True when a connect to port is refused (ECONNREFUSED)."""
    s = socket.socket()
    s.settimeout(timeout_s)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def to_version_sent(m, **kw):
    c = m.client(**kw)
    c.send_hello()
    assert c.read_version_reply()[0] == "178"
    return c


# -- silent -------------------------------------------------------------------------------
def test_silent_at_accept(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("accept", "silent", name="mute")])
    c = m.client()
    c.send_hello()
    c.expect_silence(1.0)  # no version reply, no EOF: the socket stays open
    f = m.wait_event("fault", conn=1)
    assert {k: f[k] for k in ("rule", "rule_id", "action", "phase", "draw", "after_ms")} == {
        "rule": "mute", "rule_id": 1, "action": "silent", "phase": "accept", "draw": None,
        "after_ms": 0}
    assert not m.events("hello"), "a silent connection must not read the handshake"
    assert status_conn(m, 1)["phase"] == "silent"
    c.send_raw(START_API_1)  # writes still succeed: mockgw holds the socket open
    c.expect_silence(0.2)


def test_silent_at_version_sent(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("version_sent", "silent")])
    c = to_version_sent(m)
    c.start_api(1)
    c.expect_silence(0.3)
    assert faults(m, action="silent", phase="version_sent", rule="rule-1")
    assert not m.events("start_api")


def test_silent_at_ready(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("ready", "silent")])
    c = m.ready_client()
    c.send_fields(REQ_TIME)
    c.expect_silence(0.3)
    assert faults(m, action="silent", phase="ready")
    assert status_conn(m, 1)["phase"] == "silent"


# -- close / reset / half_close -----------------------------------------------------------
@pytest.mark.parametrize("phase, expect", [
    ("accept", b""),
    ("version_sent", "version"),
    ("ready", "burst"),
])
def test_close_after_phase(mockgw_factory, tmp_path, phase, expect):
    m = start(mockgw_factory, tmp_path, [rule(phase, "close")])
    c = m.client()
    if phase != "accept":
        c.send_hello()
    if phase == "ready":
        c.read_version_reply()
        c.start_api(1)
    got = c.wait_eof(3.0)
    assert not c.reset, "close must be a FIN, not an RST"
    if expect == b"":
        assert got == b""
    elif expect == "version":
        (n,) = struct.unpack(">I", got[:4])
        assert len(got) == 4 + n and got[4:].startswith(b"178\x00"), got
    else:
        assert got == BURST
    ev = m.wait_event("fault", action="close", phase=phase)
    assert ev["after_ms"] == 0
    m.wait_event("disconnect", conn=1)


@pytest.mark.parametrize("phase", ["accept", "version_sent", "ready"])
def test_reset(mockgw_factory, tmp_path, phase):
    m = start(mockgw_factory, tmp_path, [rule(phase, "reset")])
    try:
        c = m.client()
    except ConnectionResetError:
        # At accept the RST can beat connect() back to a client that was slow to be scheduled
        # (a busy machine): the client saw the reset, which is what this test checks.
        assert phase == "accept"
        m.wait_event("fault", action="reset", phase=phase)
        return
    if phase != "accept":
        c.send_hello()
    if phase == "ready":
        c.read_version_reply()
        c.start_api(1)
    c.wait_eof(3.0)
    assert c.reset, f"expected ECONNRESET after a reset at {phase}"
    m.wait_event("fault", action="reset", phase=phase)


def test_half_close(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("ready", "half_close")])
    c = m.client()
    c.send_hello()
    c.read_version_reply()
    c.start_api(1)
    got = c.wait_eof(3.0)
    assert got == BURST and not c.reset
    m.wait_event("fault", action="half_close", phase="ready")
    seq_before = m.status()["journal_seq"]
    # mockgw keeps reading: our writes keep succeeding (a closed socket would answer RST and
    # the second send would fail with EPIPE/ECONNRESET).
    for _ in range(6):
        c.send_fields(REQ_IDS)
        time.sleep(0.05)
    st = status_conn(m, 1)
    assert st is not None, "the half-closed connection must still be open"
    assert st["phase"] == "closing"
    assert st["bytes_in"] == 17 + 12 + 6 * 10
    # ...and it ignores what it reads: nothing new in the journal.
    later = [e for e in m.admin_journal(seq_before)]
    assert later == [], later
    ins = [f for f in m.frames("in", conn=1) if f["fields"][0] == "8"]
    assert ins == [], "frames read after half_close must not be journaled"
    c.close()
    m.wait_event("disconnect", conn=1)


# -- delay --------------------------------------------------------------------------------
def test_delay_with_jitter_on_request(mockgw_factory, tmp_path):
    ms, jitter = 300, 100
    m = start(mockgw_factory, tmp_path,
              [rule("request", {"type": "delay", "ms": ms, "jitter_ms": jitter}, msg="reqIds")])
    c = m.ready_client()
    seen = []
    for i in range(2):
        t0 = time.monotonic()
        c.send_fields(REQ_IDS)
        c.send_fields("17,1")  # reqManagedAccts: queued behind the delayed answer, in order
        first = c.read_frame()
        latency = (time.monotonic() - t0) * 1000
        second = c.read_frame()
        assert first == NEXT_VALID_ID and second[0] == "15", (first, second)
        delays = m.events("delay")
        assert len(delays) == i + 1, delays
        d = delays[-1]["ms"]
        seen.append(d)
        assert ms - jitter <= d <= ms + jitter, d
        assert ms - jitter - 50 <= latency <= ms + jitter + 500, latency
        assert d - 50 <= latency <= d + 500, (d, latency)
    assert len(faults(m, action="delay", phase="request")) == 2


# -- error --------------------------------------------------------------------------------
def test_error_at_ready_then_notice(mockgw_factory, tmp_path):
    then_ms = 400
    m = start(mockgw_factory, tmp_path, [rule("ready", {
        "type": "error", "code": 1100, "then": [{"after_ms": then_ms, "code": 1102}]})])
    c = m.client()
    c.handshake()  # the normal burst comes first
    t0 = time.monotonic()
    assert c.read_frame(0.5) == notice(1100)
    assert c.read_frame(3.0) == notice(1102)
    dt = (time.monotonic() - t0) * 1000
    assert then_ms - 50 <= dt <= then_ms + 500, dt
    c.expect_silence(0.2)
    assert admin_events(m, "fault", action="error", phase="ready")
    wait_admin_event(m, "fault_applied", action="error", phase="ready")


def test_log_file_flushes_entries_written_by_timers(mockgw_factory, tmp_path):
    # docs/journal.md: the --log file is "flushed once per loop iteration (a reader sees an
    # entry within milliseconds)". A scheduled action runs from a timer, with no I/O after it.
    m = start(mockgw_factory, tmp_path, [rule("ready", {"type": "error", "code": 1100,
                                                        "after_ms": 200})])
    c = m.ready_client()
    assert c.read_frame(2.0) == notice(1100)  # it happened (sent from the timer)...
    # ...and the log file says so soon, while nothing else wakes mockgw up (no admin call).
    m.wait_event("fault_applied", timeout_s=1.0, action="error")


def test_error_without_phase_skips_accept_and_follows_the_version_reply(mockgw_factory, tmp_path):
    # No version is negotiated at accept, so an error there cannot be laid out: a rule for every
    # phase skips accept (journaled) and first sends its notice right after the version reply.
    m = start(mockgw_factory, tmp_path, [{"action": {"type": "error", "code": 1100}, "times": 2}])
    c = m.client()
    c.send_hello()
    assert c.read_frame(1.0)[0] == "178"
    assert c.read_frame(1.0) == notice(1100)
    m.wait_event("fault_skipped", action="error")
    assert faults(m, action="error", phase="hello")


@pytest.mark.parametrize("action, expect", [
    ({"type": "error", "code": 162}, notice(162, 42)),
    ({"type": "error", "code": 162, "text": "custom words"}, notice(162, 42, "custom words")),
    ({"type": "error", "code": 504, "id": 7}, notice(504, 7)),
])
def test_error_at_request_replaces_answer(mockgw_factory, tmp_path, action, expect):
    m = start(mockgw_factory, tmp_path, [rule("request", action, msg="reqHistoricalData")])
    c = m.ready_client()
    c.send_fields(HIST.format(id=42))
    assert c.read_frame() == expect
    c.expect_silence(0.3)  # no 17 frame: the error replaced the answer
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]  # other requests are untouched
    assert faults(m, action="error", phase="request")
    assert not [f for f in m.frames("out", conn=1) if f["msg_id"] == 17]


def test_error_at_request_with_after_ms_keeps_the_request_id(mockgw_factory, tmp_path):
    # The error is carried out later; it still concerns that request, so it carries its id.
    m = start(mockgw_factory, tmp_path, [rule(
        "request", {"type": "error", "code": 162, "after_ms": 200}, msg="reqHistoricalData")])
    c = m.ready_client()
    c.send_fields(HIST.format(id=42))
    frames = c.read_until(lambda f: f[0] == "4", timeout=3.0)
    assert frames[-1] == notice(162, 42), frames[-1]


# -- ignore -------------------------------------------------------------------------------
def test_ignore(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("request", "ignore", msg="reqIds", nth=1)])
    c = m.ready_client()
    c.send_fields(REQ_IDS)
    c.expect_silence(0.3)
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert len(faults(m, action="ignore")) == 1


# -- start_api actions --------------------------------------------------------------------
def test_refuse_client_id(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("start_api", "refuse_client_id")])
    c = to_version_sent(m)
    c.start_api(9)
    assert c.read_frame() == notice(326)
    assert c.wait_eof(2.0) == b"" and not c.reset
    assert faults(m, action="refuse_client_id", phase="start_api")
    assert m.wait_event("client_id_in_use", conn=1)["held_by"] == "fault"


def test_half_ready(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("start_api", "half_ready")])
    c = to_version_sent(m)
    c.start_api(1)
    assert c.read_exact(len(BURST_15 + BURST_NOTICES)) == BURST_15 + BURST_NOTICES  # no 9
    c.expect_silence(0.3)
    m.wait_event("half_ready", conn=1)
    assert not m.events("ready")
    assert faults(m, action="half_ready", phase="start_api")


# -- bytes that are not frames ------------------------------------------------------------
@pytest.mark.parametrize("params, n", [({}, 16), ({"bytes": 64}, 64)])
def test_garbage(mockgw_factory, tmp_path, params, n):
    m = start(mockgw_factory, tmp_path, [rule("ready", dict(params, type="garbage"))])
    c = m.ready_client()
    junk = read_all(c, 0.3)
    assert len(junk) == n, junk
    (length,) = struct.unpack(">I", junk[:4])
    assert not (length == n - 4 and junk.endswith(b"\0")), "the garbage is a valid frame"
    assert not c.eof, "garbage must not close the connection"
    assert faults(m, action="garbage", phase="ready")


@pytest.mark.parametrize("params, raw", [
    ({}, b"\x7f\xff\xff\xff"),
    ({"length": 0x01000001}, b"\x01\x00\x00\x01"),
])
def test_bad_length(mockgw_factory, tmp_path, params, raw):
    m = start(mockgw_factory, tmp_path, [rule("ready", dict(params, type="bad_length"))])
    c = m.ready_client()
    assert read_all(c, 0.3) == raw
    assert not c.eof


# -- the output pipeline ------------------------------------------------------------------
@pytest.mark.parametrize("params, k", [({"bytes": 30}, 30), ({}, 9)])  # default: half of 19
def test_truncate(mockgw_factory, tmp_path, params, k):
    m = start(mockgw_factory, tmp_path, [rule("start_api", dict(params, type="truncate"))])
    c = to_version_sent(m)
    c.start_api(1)
    assert read_all(c, 0.3) == BURST[:k]
    assert not c.eof, "truncate goes silent; it must not close"
    assert status_conn(m, 1)["phase"] == "silent"
    c.send_fields(REQ_IDS)
    c.expect_silence(0.2)


def test_slice(mockgw_factory, tmp_path):
    size, pause = 16, 20
    m = start(mockgw_factory, tmp_path,
              [rule("start_api", {"type": "slice", "bytes": size, "pause_ms": pause})])
    c = to_version_sent(m)
    c.sock.settimeout(3.0)
    t0 = time.monotonic()
    c.start_api(1)
    reads = []
    while sum(map(len, reads)) < len(BURST):
        chunk = c.sock.recv(65536)
        assert chunk, "EOF during the sliced burst"
        reads.append(chunk)
    elapsed = (time.monotonic() - t0) * 1000
    assert b"".join(reads) == BURST
    n_slices = -(-len(BURST) // size)
    assert elapsed >= (n_slices - 1) * pause - 5, (elapsed, n_slices)
    small = [r for r in reads if len(r) <= size]
    assert len(small) >= 0.8 * len(reads), [len(r) for r in reads]
    assert len(reads) >= n_slices // 2, [len(r) for r in reads]


def test_bandwidth(mockgw_factory, tmp_path):
    rate = 200_000
    m = start(mockgw_factory, tmp_path, [rule(
        "request", {"type": "bandwidth", "bytes_per_s": rate}, msg="reqHistoricalData")])
    c = m.ready_client()
    t0 = time.monotonic()
    c.send_fields(HIST_BIG.format(id=5))
    payload = c.read_payload(10.0)
    elapsed = time.monotonic() - t0
    size = len(payload) + 4
    assert payload.startswith(b"17\x005\x00")
    assert size > 50_000, size
    assert elapsed >= size / rate - 0.02, (size, elapsed)
    assert elapsed <= size / rate + 2.0, (size, elapsed)


def test_limit_data(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("start_api", {"type": "limit_data", "bytes": 50})])
    c = to_version_sent(m)
    c.start_api(1)
    assert c.wait_eof(3.0) == BURST[:50]
    assert not c.reset
    m.wait_event("close", reason="limit_data reached")


def test_hold_then_admin_release(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("start_api", "hold")])
    c = to_version_sent(m)
    c.start_api(1)
    c.send_fields(REQ_IDS)
    c.expect_silence(0.3)
    st = status_conn(m, 1)
    assert st["held"] is True and st["queued_out"] == len(BURST) + len(BURST_9), st
    code, body = m.http("POST", "/v1/connections/1/release")
    assert code == 200, body
    assert c.read_exact(len(BURST) + len(BURST_9), timeout=0.3) == BURST + BURST_9
    assert status_conn(m, 1)["held"] is False


def test_hold_then_release_rule(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("start_api", "hold"),
                                         rule("request", "release", msg="reqCurrentTime")])
    c = to_version_sent(m)
    c.start_api(1)
    c.send_fields(REQ_IDS)
    c.expect_silence(0.4)
    c.send_fields(REQ_TIME)
    assert c.read_exact(len(BURST) + len(BURST_9), timeout=1.0) == BURST + BURST_9
    assert c.read_frame()[0] == "49"


# -- listener actions as rules ------------------------------------------------------------
def test_refuse_and_accept_as_rules(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "ready"}, "action": {"type": "refuse"}, "times": 1},
        rule("request", "accept", msg="reqIds")])
    a = m.ready_client()
    m.wait_event("listener", mode="refuse")
    assert refused(m.api_port)
    assert m.status()["api"]["listener"] == "refuse"
    assert a.request(REQ_IDS, 9) == [NEXT_VALID_ID]  # existing clients go on
    m.wait_event("listener", mode="normal")
    b = m.ready_client(client_id=2)
    assert b.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_blackhole_and_accept_as_rules(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "ready"}, "action": {"type": "blackhole"}, "times": 1},
        rule("request", "accept", msg="reqIds")])
    a = m.ready_client()
    m.wait_event("listener", mode="blackhole")
    b = m.client()  # the connect completes in the kernel backlog...
    b.send_hello()
    b.expect_silence(0.5)  # ...and nothing answers
    assert a.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    m.wait_event("listener", mode="normal")
    assert b.read_version_reply(2.0)[0] == "178"  # accepted at last


def test_restart_as_rule(mockgw_factory, tmp_path):
    down = 600
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "ready"}, "action": {"type": "restart", "down_ms": down},
         "times": 1}])
    a = m.client()
    a.send_hello()
    a.read_version_reply()
    t0 = time.monotonic()
    a.start_api(1)
    assert a.wait_eof(2.0) == BURST and not a.reset  # dropped with a FIN
    ev = m.wait_event("restart")
    assert ev["down_ms"] == down and ev["how"] == "close"
    assert refused(m.api_port)
    wait_until(lambda: not refused(m.api_port, 0.5), 3.0, interval_s=0.05, what="listener back")
    back = time.monotonic() - t0
    assert back >= down / 1000 - 0.05, back
    wait_admin_event(m, "restarted")
    b = m.ready_client(client_id=1)
    assert b.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_restart_as_rule_with_reset(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "request"}, "action": {"type": "restart", "down_ms": 200,
                                                   "how": "reset"}, "times": 1}])
    a = m.ready_client()
    other = m.ready_client(client_id=2)
    a.send_fields(REQ_IDS)
    a.wait_eof(2.0)
    other.wait_eof(2.0)
    assert a.reset and other.reset
    assert m.wait_event("restart")["how"] == "reset"


# -- listener settings --------------------------------------------------------------------
def test_listener_refuse_setting_then_admin_accept(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, settings={"listener": "refuse"})
    assert refused(m.api_port)
    assert m.status()["api"]["listener"] == "refuse"
    assert m.http("POST", "/v1/actions/accept")[0] == 200
    c = m.ready_client()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_listener_blackhole_setting_then_admin_accept(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, settings={"listener": "blackhole"})
    c = m.client()
    c.send_hello()
    c.expect_silence(0.5)
    assert m.status()["api"]["listener"] == "blackhole"
    assert not m.events("accept")
    assert m.http("POST", "/v1/actions/accept")[0] == 200
    assert c.read_version_reply(2.0)[0] == "178"


def test_accept_delay_ms(mockgw_factory, tmp_path):
    delay = 400
    m = start(mockgw_factory, tmp_path, settings={"accept_delay_ms": delay})
    for cid in (1, 2):
        t0 = time.monotonic()
        c = m.client()
        c.send_hello()
        c.read_version_reply(3.0)
        dt = (time.monotonic() - t0) * 1000
        assert delay - 20 <= dt <= delay + 500, dt
        c.start_api(cid)
        c.read_burst()


def test_accept_delay_applies_to_each_connection_not_in_turn(mockgw_factory, tmp_path):
    # "Each connection waits this long in the backlog before it is accepted": three clients
    # connecting together each wait the delay, not 1x, 2x and 3x the delay.
    delay = 300
    m = start(mockgw_factory, tmp_path, settings={"accept_delay_ms": delay})
    t0 = time.monotonic()
    clients = [m.client() for _ in range(3)]
    for c in clients:
        c.send_hello()
    waits = []
    for c in clients:
        c.read_version_reply(3.0)
        waits.append(round((time.monotonic() - t0) * 1000))
    assert all(delay - 20 <= w <= delay + 200 for w in waits), waits


def test_scheduled_listener_action_outlives_the_connection(mockgw_factory, tmp_path):
    # A listener-level action with after_ms belongs to the server, not to the connection whose
    # event triggered it: it happens even if that client has gone meanwhile.
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "ready"}, "action": {"type": "refuse", "after_ms": 300}, "times": 1}])
    c = m.ready_client()
    c.close()
    m.wait_event("disconnect", conn=1)
    time.sleep(0.45)
    assert refused(m.api_port), "the scheduled refuse never happened"
    assert admin_events(m, "listener", mode="refuse")


def test_restart_every(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, settings={"restart_every": {"every_ms": 500,
                                                                    "down_ms": 150}})
    c = m.ready_client()
    t0 = time.monotonic()
    assert c.wait_eof(2.0) == b"" and not c.reset
    wait_until(lambda: len(admin_events(m, "restarted")) >= 2, 3.0, what="two restarts")
    restarts = admin_events(m, "restart")
    assert len(restarts) >= 2 and all(r["down_ms"] == 150 for r in restarts)
    assert time.monotonic() - t0 < 2.0
    d = m.ready_client(client_id=1)  # up again between restarts
    d.send_fields(REQ_IDS)
    assert d.read_frame() == NEXT_VALID_ID


def test_busy_client_ids(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, settings={"busy_client_ids": [7]})
    c = to_version_sent(m)
    c.start_api(7)
    assert c.read_frame() == notice(326)
    assert c.wait_eof(2.0) == b""
    assert m.wait_event("client_id_in_use", conn=1)["held_by"] == "busy"
    ok = m.ready_client(client_id=8)
    assert ok.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_stale_client_id_ms(mockgw_factory, tmp_path):
    stale = 800
    m = start(mockgw_factory, tmp_path, settings={"stale_client_id_ms": stale})
    a = m.ready_client(client_id=5)
    a.close()
    m.wait_event("disconnect", conn=1)
    t_gone = time.monotonic()
    b = to_version_sent(m)
    b.start_api(5)
    assert b.read_frame() == notice(326)
    assert b.wait_eof(2.0) == b""
    assert time.monotonic() - t_gone < stale / 1000
    assert m.wait_event("client_id_in_use", conn=2)["held_by"] == "stale"
    other = m.ready_client(client_id=6)  # other ids are free
    other.close()
    time.sleep(max(0.0, stale / 1000 + 0.1 - (time.monotonic() - t_gone)))
    c = m.ready_client(client_id=5)
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]


# -- match keys ---------------------------------------------------------------------------
@pytest.mark.parametrize("msg", ["reqCurrentTime", 49])
def test_match_msg(mockgw_factory, tmp_path, msg):
    m = start(mockgw_factory, tmp_path, [rule("request", {"type": "error", "code": 504},
                                              msg=msg)])
    c = m.ready_client()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    c.send_fields(REQ_TIME)
    assert c.read_frame() == notice(504)
    assert len(faults(m)) == 1


def test_match_client_id(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("ready", "close", client_id=3)])
    hit = m.client()
    hit.handshake(client_id=3)
    assert hit.wait_eof(2.0) == b""
    fine = m.ready_client(client_id=4)
    assert fine.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert [f["client_id"] for f in faults(m)] == [3]


@pytest.mark.parametrize("conn, silent", [(2, {2}), ([2, 3], {2, 3})])
def test_match_conn(mockgw_factory, tmp_path, conn, silent):
    m = start(mockgw_factory, tmp_path, [rule("accept", "silent", conn=conn)])
    for ordinal in (1, 2, 3, 4):
        c = m.client()
        c.send_hello()
        if ordinal in silent:
            c.expect_silence(0.3)
        else:
            assert c.read_version_reply()[0] == "178"
    assert sorted(f["conn"] for f in faults(m)) == sorted(silent)


def test_match_nth(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("request", {"type": "error", "code": 504},
                                              nth=2)])
    c = m.ready_client()
    answers = []
    for _ in range(3):
        c.send_fields(REQ_IDS)
        answers.append(c.read_frame())
    assert answers == [NEXT_VALID_ID, notice(504), NEXT_VALID_ID]


def test_match_after_ms(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("request", {"type": "error", "code": 504},
                                              after_ms=600)])
    c = m.client()
    t0 = time.monotonic()
    c.handshake()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert time.monotonic() - t0 < 0.5
    time.sleep(max(0.0, 0.7 - (time.monotonic() - t0)))
    c.send_fields(REQ_IDS)
    assert c.read_frame() == notice(504)


def test_probability_zero_never_fires(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("request", {"type": "error", "code": 504},
                                              probability=0)])
    c = m.ready_client()
    for _ in range(10):
        assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert faults(m) == []
    assert m.status()["faults"]["rules"][0]["hits"] == 0


def test_probability_one_always_fires(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [rule("request", {"type": "error", "code": 504},
                                              probability=1)])
    c = m.ready_client()
    for _ in range(10):
        c.send_fields(REQ_IDS)
        assert c.read_frame() == notice(504)
    fs = faults(m)
    assert len(fs) == 10 and all(f["draw"] is None for f in fs)
    assert m.status()["faults"]["rules"][0]["hits"] == 10


def test_state_and_set_state(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"name": "outage", "match": {"phase": "request", "state": "down"},
         "action": {"type": "error", "code": 504}},
        {"name": "trip", "match": {"phase": "request", "msg": "reqCurrentTime"},
         "action": {"type": "none", "set_state": "down"}},
    ])
    c = m.ready_client()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]  # state "normal": outage sleeps
    assert m.http("GET", "/v1/state")[1] == {"state": "normal"}
    c.send_fields(REQ_TIME)  # trip: the state becomes "down" (a none action: normal answer)
    assert c.read_frame()[0] == "49"
    assert m.http("GET", "/v1/state")[1] == {"state": "down"}
    c.send_fields(REQ_IDS)
    assert c.read_frame() == notice(504)
    assert m.status()["faults"]["state"] == "down"
    # docs/script-format.md: set_state is "journaled as a state event" (a none action too).
    assert admin_events(m, "state", state="down"), "no state event for the switch to down"


def test_set_state_on_a_real_action(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "ready", "state": "tripped"}, "action": {"type": "close"}},
        {"match": {"phase": "ready", "conn": 1},
         "action": {"type": "error", "code": 1100, "set_state": "tripped"}},
    ])
    a = m.ready_client()
    assert a.read_frame() == notice(1100)
    b = m.client()
    b.handshake(client_id=2)
    assert b.wait_eof(2.0) == b""
    assert admin_events(m, "state", state="tripped", conn=1)


def test_set_state_with_after_ms_switches_when_the_action_runs(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "request", "state": "late"}, "action": {"type": "error", "code": 504}},
        {"match": {"phase": "ready"},
         "action": {"type": "error", "code": 1100, "after_ms": 300, "set_state": "late"}},
    ])
    c = m.ready_client()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]  # not yet: the action has not run
    assert m.http("GET", "/v1/state")[1] == {"state": "normal"}
    assert c.read_frame(2.0) == notice(1100)
    assert m.http("GET", "/v1/state")[1] == {"state": "late"}
    c.send_fields(REQ_IDS)
    assert c.read_frame() == notice(504)


def test_rules_after_a_half_close_are_not_evaluated(mockgw_factory, tmp_path):
    # "Once one of them has ended the connection ... or silenced it, later rules are not
    # evaluated for that event": half_close silences (it ignores what it reads).
    m = start(mockgw_factory, tmp_path, [
        rule("ready", "half_close"),
        rule("ready", {"type": "error", "code": 1100, "set_state": "after"}, name="later")])
    c = m.ready_client()
    assert c.wait_eof(2.0) == b""
    hits = {r["name"]: r["hits"] for r in m.status()["faults"]["rules"]}
    assert hits == {"rule-1": 1, "later": 0}, hits
    assert m.http("GET", "/v1/state")[1] == {"state": "normal"}
    assert [f["rule"] for f in faults(m)] == ["rule-1"]


def test_times(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "request", "msg": "reqIds"}, "action": {"type": "ignore"},
         "times": 2}])
    c = m.ready_client()
    c.send_fields(REQ_IDS)
    c.send_fields(REQ_IDS)
    c.expect_silence(0.3)
    for _ in range(2):
        assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert len(faults(m)) == 2
    rules = m.http("GET", "/v1/rules")[1]["rules"]
    assert rules[0]["hits"] == 2 and rules[0]["spent"] is True


def test_sequence_across_connections(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"name": "flaky", "match": {"phase": "start_api"},
         "sequence": [{"type": "silent"}, {"type": "refuse_client_id"}]}])
    first = to_version_sent(m)
    first.start_api(1)
    first.expect_silence(0.4)
    second = to_version_sent(m)
    second.start_api(2)
    assert second.read_frame() == notice(326)
    assert second.wait_eof(2.0) == b""
    third = to_version_sent(m)
    third.start_api(3)
    assert [f[0] for f in third.read_burst()] == ["15", "9", "4", "4", "4"]
    fs = faults(m, rule="flaky")
    assert [(f["conn"], f["action"]) for f in fs] == [(1, "silent"), (2, "refuse_client_id")]
    assert m.http("GET", "/v1/rules")[1]["rules"][0].get("spent") is True


def test_action_after_ms(mockgw_factory, tmp_path):
    after = 400
    m = start(mockgw_factory, tmp_path, [rule("ready", {"type": "close", "after_ms": after})])
    c = m.client()
    c.send_hello()
    c.read_version_reply()
    c.start_api(1)
    t0 = time.monotonic()
    c.read_burst()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]  # traffic goes on meanwhile
    assert c.wait_eof(3.0) == b""
    dt = (time.monotonic() - t0) * 1000
    assert after - 50 <= dt <= after + 500, dt
    f = m.wait_event("fault", action="close")
    assert f["after_ms"] == after
    applied = m.wait_event("fault_applied", action="close")
    assert applied["phase"] == "ready" and applied["seq"] > f["seq"]


# -- bad scripts --------------------------------------------------------------------------
@pytest.mark.parametrize("content, path_part, reason", [
    ('{"rules":[{"action":{"type":"none"}},{"action":{"type":"explode"}}]}',
     "$.rules[1].action.type", 'unknown action "explode"'),
    ('{"rules": [ {"action": ', None, "invalid JSON at line 1"),
    ('{"rules":[{"match":{"phase":"accept"},"action":{"type":"refuse_client_id"}}]}',
     "$.rules[0].action.type", "start_api"),
    ('{"rules":[{"match":{"msg":"reqIds"},"action":{"type":"close"}}]}',
     "$.rules[0].match.msg", "request"),
    ('{"settings":{"listner":"refuse"}}', "$.settings.listner", "unknown key"),
    ('{"rules":[{"action":{"type":"delay"}}]}', "$.rules[0].action", 'missing required key "ms"'),
    ('{"rules":[{"match":{"phase":"accept"},"action":{"type":"error","code":1100}}]}',
     "$.rules[0].action.type", 'cannot be sent at phase "accept"'),
])
def test_bad_script(run, tmp_path, content, path_part, reason):
    p = tmp_path / "bad.json"
    p.write_text(content)
    r = run("--script", str(p), "--listen", "127.0.0.1:0", "--admin", "off")
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert "\n" not in err, err
    assert err.startswith("mockgw: ") and str(p) in err, err
    if path_part:
        assert f"{p}: {path_part}: " in err, err
    assert reason in err, err
    assert r.stdout == ""


def test_missing_script_file(run, tmp_path):
    p = tmp_path / "nope.json"
    r = run("--script", str(p), "--listen", "127.0.0.1:0", "--admin", "off")
    assert r.returncode == 2
    assert r.stderr.strip() == f"mockgw: {p}: No such file or directory", r.stderr


# -- --fault presets ----------------------------------------------------------------------
def _preset_silent(m):
    c = m.client()
    c.send_hello()
    c.expect_silence(0.5)


def _preset_silent_after_handshake(m):
    c = to_version_sent(m)
    c.start_api(1)
    c.expect_silence(0.5)


def _preset_silent_after_ready(m):
    c = m.ready_client()
    c.send_fields(REQ_TIME)
    c.expect_silence(0.5)


def _preset_refuse_client_id(m):
    for cid in (3, 4):
        c = to_version_sent(m)
        c.start_api(cid)
        assert c.read_frame() == notice(326)
        assert c.wait_eof(2.0) == b""
    ok = m.ready_client(client_id=5)
    assert ok.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def _preset_drop_after_ready(m):
    c = m.ready_client()
    assert c.wait_eof(1.0) == b"" and not c.reset


def _preset_drop_after_ready_ms(m):
    c = m.client()
    t0 = time.monotonic()
    c.handshake()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert c.wait_eof(2.0) == b"" and not c.reset
    assert 0.3 <= time.monotonic() - t0 <= 1.0


def _preset_reset_after_ready(m):
    c = m.client()
    c.send_hello()
    c.read_version_reply()
    c.start_api(1)
    c.wait_eof(2.0)
    assert c.reset


def _preset_reset_after_ready_ms(m):
    c = m.client()
    t0 = time.monotonic()
    c.handshake()
    c.wait_eof(2.0)
    assert c.reset
    assert 0.3 <= time.monotonic() - t0 <= 1.0


def _preset_half_ready(m):
    c = to_version_sent(m)
    c.start_api(1)
    assert c.read_exact(len(BURST_15 + BURST_NOTICES)) == BURST_15 + BURST_NOTICES
    c.expect_silence(0.3)


def _preset_refuse(m):
    assert refused(m.api_port)


def _preset_blackhole(m):
    c = m.client()
    c.send_hello()
    c.expect_silence(0.5)


def _preset_delay(m):
    c = m.client()
    t0 = time.monotonic()
    c.send_hello()
    c.read_version_reply(3.0)
    assert 0.35 <= time.monotonic() - t0 <= 1.0
    assert m.wait_event("delay")["ms"] == 400


def _preset_restart_every(m):
    c = m.ready_client()
    assert c.wait_eof(2.0) == b""
    wait_until(lambda: len(admin_events(m, "restarted")) >= 2, 3.0, what="two restarts")
    assert all(r["down_ms"] == 100 for r in admin_events(m, "restart"))


PRESETS = [
    ("silent", _preset_silent),
    ("silent-after-handshake", _preset_silent_after_handshake),
    ("silent-after-ready", _preset_silent_after_ready),
    ("refuse-client-id=3,4", _preset_refuse_client_id),
    ("drop-after-ready", _preset_drop_after_ready),
    ("drop-after-ready=400", _preset_drop_after_ready_ms),
    ("reset-after-ready", _preset_reset_after_ready),
    ("reset-after-ready=400", _preset_reset_after_ready_ms),
    ("half-ready", _preset_half_ready),
    ("refuse", _preset_refuse),
    ("blackhole", _preset_blackhole),
    ("delay=400", _preset_delay),
    ("restart-every=400:100", _preset_restart_every),
]


@pytest.mark.parametrize("preset, check", PRESETS, ids=[p for p, _ in PRESETS])
def test_fault_preset(mockgw_factory, preset, check):
    m = mockgw_factory("--fault", preset)
    check(m)
    if preset not in ("refuse", "blackhole", "restart-every=400:100"):
        names = {f["rule"] for f in wait_until(lambda: faults(m), 2.0)}
        assert all(n.startswith("preset:") for n in names), names


def test_fault_presets_append_after_script_rules(mockgw_factory, tmp_path):
    path = write_script(tmp_path, [rule("ready", {"type": "error", "code": 1100})])
    m = mockgw_factory("--script", str(path), "--fault", "drop-after-ready=200")
    rules = m.http("GET", "/v1/rules")[1]["rules"]
    assert [r["name"] for r in rules] == ["rule-1", "preset:drop-after-ready=200"]
    c = m.ready_client()
    assert c.read_frame() == notice(1100)
    assert c.wait_eof(2.0) == b""


@pytest.mark.parametrize("preset, words", [
    ("nope", ["--fault nope", "unknown preset"]),
    ("delay=x", ["--fault delay=x", "MS must be an integer"]),
    ("delay", ["--fault delay", "needs a value"]),
    ("silent=3", ["--fault silent=3", "takes no value"]),
    ("refuse-client-id=a", ["--fault refuse-client-id=a", "client id must be an integer"]),
    ("restart-every=100:200", ["--fault restart-every=100:200", "DOWN_MS must be less"]),
    ("restart-every=100", ["--fault restart-every=100", "restart-every=MS:DOWN_MS"]),
])
def test_bad_preset(run, preset, words):
    r = run("--fault", preset, "--listen", "127.0.0.1:0", "--admin", "off")
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert err.startswith("mockgw: ") and "\n" not in err, err
    for w in words:
        assert w in err, err
    assert r.stdout == ""
