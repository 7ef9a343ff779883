"""The cookbook: every ready-made fault script in mockgw/scripts/ loads, and each one does to a
client what docs/cookbook.md says it does (docs/script-format.md, IB_WIRE §5, §6).

Scripts carry real-world timings (a 60 s restart, a 90 s outage). Where a test cannot wait that
long it loads a copy written to tmp_path with every ``*_ms`` value scaled by the same factor, and
derives its expected timing windows from the scaled numbers: the shape of the incident is the
file's, only the clock runs faster. The real file itself is loaded by test_script_loads.
"""

import json
import socket
import time
from pathlib import Path

import pytest

from ibclient import IBClient, wait_until

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = ROOT / "mockgw" / "scripts"
COOKBOOK = ROOT / "docs" / "cookbook.md"
SCRIPTS = sorted(SCRIPTS_DIR.glob("*.json"))

# IB's texts (IB_WIRE §5); mockgw uses them when a script gives only the code.
TEXT = {
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    1100: "Connectivity between IBKR and Trader Workstation has been lost.",
    1101: "Connectivity between IBKR and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IBKR and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    10197: "No market data during competing live session",
}
TEXT_162_PACING = ("Historical Market Data Service error message:"
                   "Historical data request pacing violation")
TEXT_1300 = ("TWS socket port has been reset and this connection is being dropped. "
             "Please reconnect on the new port - 4002")

HIST_AAPL = "20,{id},0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,30 mins,1 D,1,TRADES,1,0,"
MKT_STREAM = "1,11,{id},265598,AAPL,STK,,0.0,,,SMART,NASDAQ,USD,AAPL,NMS,0,,0,0,"
REQ_IDS = "8,1,1"
NEXT_VALID_ID = ["9", "1", "1"]
BURST_NOTICES = [
    ["4", "2", "-1", "2104", "Market data farm connection is OK:usfarm", ""],
    ["4", "2", "-1", "2106", "HMDS data farm connection is OK:ushmds", ""],
    ["4", "2", "-1", "2158", "Sec-def data farm connection is OK:secdefnj", ""],
]

TIME_KEYS = {"after_ms", "down_ms", "every_ms", "stale_client_id_ms", "accept_delay_ms", "ms",
             "jitter_ms", "pause_ms"}


def notice(code, req_id=-1, text=None):
    return ["4", "2", str(req_id), str(code), TEXT[code] if text is None else text, ""]


# -- helpers ------------------------------------------------------------------------------
def script(name):
    path = SCRIPTS_DIR / name
    assert path.is_file(), f"missing script {path}"
    return path


def load(name):
    return json.loads(script(name).read_text())


def scale_times(obj, factor):
    """A copy of a script with every *_ms number multiplied by factor (0 stays 0)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in TIME_KEYS and isinstance(v, int) and not isinstance(v, bool):
                out[k] = max(1, round(v * factor)) if v else 0
            else:
                out[k] = scale_times(v, factor)
        return out
    if isinstance(obj, list):
        return [scale_times(v, factor) for v in obj]
    return obj


def scaled(tmp_path, name, factor):
    """(path of the scaled copy, its parsed content)."""
    data = scale_times(load(name), factor)
    path = tmp_path / f"scaled-{factor}-{name}"
    path.write_text(json.dumps(data, indent=2))
    return path, data


def rule(data, name):
    for r in data["rules"]:
        if r.get("name") == name:
            return r
    raise AssertionError(f"no rule {name!r} in {data}")


def faults(m, rule_name=None, **match):
    return [e for e in m.events("fault", **match)
            if rule_name is None or e.get("rule") == rule_name]


def wait_fault(m, rule_name, timeout_s=5.0, **match):
    """The first journal fault entry of this rule; checks the documented minimum schema."""
    ev = m.wait_event("fault", timeout_s, rule=rule_name, **match)
    for key in ("rule", "action", "phase"):
        assert key in ev, f"fault journal entry without {key!r}: {ev}"
    return ev


def connect(m, **kw):
    c = IBClient(m.api_port, **kw)
    m.clients.append(c)
    return c


def refused(port, timeout_s=1.0):
    """True when a TCP connect to port gets ECONNREFUSED."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


def read_timed(c, timeout):
    """(fields, monotonic arrival time) of the next frame."""
    f = c.read_frame(timeout)
    return f, time.monotonic()


def expect_326_then_eof(c, client_id):
    c.send_hello()
    assert len(c.read_version_reply()) == 2
    c.start_api(client_id)
    assert c.read_frame() == notice(326)
    assert c.wait_eof(3.0) == b"", "nothing may follow the 326 but the FIN"
    assert not c.reset, "326 must end with a FIN, not an RST"


def start_with(mockgw_factory, path, *extra):
    return mockgw_factory("--script", str(path), *extra)


# -- every script loads -------------------------------------------------------------------
def test_there_are_enough_scripts():
    assert len(SCRIPTS) >= 12, [p.name for p in SCRIPTS]
    for p in SCRIPTS:
        assert p.name[:3].isdigit() and p.name[3] == "-", f"{p.name}: not NNN-slug.json"


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_loads(mockgw_factory, path):
    """mockgw --script FILE --listen 127.0.0.1:0 --admin 127.0.0.1:0 starts (ready line)."""
    m = mockgw_factory("--script", str(path))
    assert m.ready_line.startswith("mockgw ready api=127.0.0.1:")
    assert m.status()["api"]["port"] == m.api_port


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_has_a_cookbook_section(path):
    text = COOKBOOK.read_text()
    assert f"mockgw --script mockgw/scripts/{path.name}" in text, \
        f"docs/cookbook.md has no section (one-command line) for {path.name}"


PRESETS = ["silent", "silent-after-handshake", "silent-after-ready", "refuse-client-id=1,2",
           "drop-after-ready=500", "reset-after-ready=500", "half-ready", "refuse", "blackhole",
           "delay=200", "restart-every=60000:5000"]


@pytest.mark.parametrize("preset", PRESETS)
def test_cookbook_preset_one_liners_start(mockgw_factory, preset):
    assert f"--fault {preset}" in COOKBOOK.read_text(), f"cookbook lacks --fault {preset}"
    m = mockgw_factory("--fault", preset)
    assert m.api_port


# -- 010 nightly restart ------------------------------------------------------------------
@pytest.mark.timeout_s(25)
def test_010_nightly_restart(mockgw_factory, tmp_path):
    real = load("010-nightly-restart.json")
    assert real["settings"]["restart_every"]["every_ms"] == 24 * 3600 * 1000
    path, data = scaled(tmp_path, "010-nightly-restart.json", 0.02)
    t_1100 = rule(data, "nightly-1100")["action"]["after_ms"] / 1000
    restart = rule(data, "nightly-restart")["action"]
    t_drop, down = restart["after_ms"] / 1000, restart["down_ms"] / 1000
    m = start_with(mockgw_factory, path)

    c = m.ready_client(client_id=1)
    t0 = time.monotonic()
    c.send_fields(REQ_IDS)  # the session works until the reset
    assert c.read_frame() == NEXT_VALID_ID
    f, t = read_timed(c, t_1100 + 3)
    assert f == notice(1100)
    assert t - t0 >= 0.8 * t_1100
    assert c.wait_eof(t_drop + 3) == b"", "after the 1100 only the drop"
    t_eof = time.monotonic()
    assert not c.reset, "restart how=close: a FIN"
    assert t_eof - t0 >= 0.8 * t_drop

    # Down: the port refuses, then comes back. The first connection that gets through is the
    # cold one: it is accepted and hangs (ib_insync #303); the next one works.
    def first_connect():
        try:
            return connect(m, timeout=1.0)
        except ConnectionRefusedError:
            return None

    assert first_connect() is None, "the listener must refuse during the restart"
    cold = wait_until(first_connect, down * 3 + 2, interval_s=0.02,
                      what="the listener back after the restart")
    t_back = time.monotonic()
    assert t_back - t_eof >= 0.7 * down, f"refused only {t_back - t_eof:.2f}s of {down}s"
    cold.send_hello()
    cold.expect_silence(0.5)
    ok = m.ready_client(client_id=1)
    ok.send_fields(REQ_IDS)
    assert ok.read_frame() == NEXT_VALID_ID
    ok.expect_silence(t_1100 * 1.5)  # the nightly rules are spent: no second 1100

    ev = wait_fault(m, "nightly-1100")
    assert ev["action"] == "error" and ev["phase"] == "ready"
    ev = wait_fault(m, "nightly-restart")
    assert ev["action"] == "restart" and ev["phase"] == "ready"
    ev = wait_fault(m, "cold-first-connect")
    assert ev["action"] == "silent" and ev["phase"] == "accept"
    assert ev["conn"] == m.conn_id_of(cold)
    assert len(faults(m, "nightly-restart")) == 1 and len(faults(m, "cold-first-connect")) == 1
    # The rules fire at ready (journal "fault", with after_ms); the delayed actions are
    # journaled again when carried out ("fault_applied"), and the restart itself.
    assert m.events("fault_applied", action="restart", phase="ready")
    ev = m.wait_event("restart")
    assert ev["down_ms"] == restart["down_ms"] and ev["how"] == "close"
    m.wait_event("restarted")


# -- 020 stale client id after a crash ----------------------------------------------------
@pytest.mark.timeout_s(20)
def test_020_stale_client_id_after_crash(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "020-stale-client-id-after-crash.json", 0.02)
    stale = data["settings"]["stale_client_id_ms"] / 1000
    n_refused = len(rule(data, "dead-session-holds-id-1")["sequence"])
    m = start_with(mockgw_factory, path)

    other = m.ready_client(client_id=2)  # other ids are not affected
    for _ in range(n_refused):
        expect_326_then_eof(connect(m), 1)
    c = m.ready_client(client_id=1)  # the dead session is finally gone
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NEXT_VALID_ID
    evs = faults(m, "dead-session-holds-id-1")
    assert len(evs) == n_refused
    assert all(e["action"] == "refuse_client_id" and e["phase"] == "start_api" for e in evs)

    # Our own crash: the id stays busy stale_client_id_ms after the socket went away.
    c.close()
    t_gone = time.monotonic()
    expect_326_then_eof(connect(m), 1)

    def id_1_free():
        x = connect(m)
        x.send_hello()
        x.read_version_reply()
        x.start_api(1)
        first = x.read_frame()
        if first[0] == "15":
            return True
        assert first == notice(326)
        x.wait_eof(3.0)
        return False

    wait_until(id_1_free, stale * 3 + 3, interval_s=0.05, what="client id 1 free again")
    assert time.monotonic() - t_gone >= 0.7 * stale
    other.send_fields(REQ_IDS)
    assert other.read_frame() == NEXT_VALID_ID
    assert len(faults(m, "dead-session-holds-id-1")) == n_refused, "the sequence is spent"
    wait_until(lambda: len(m.events("client_id_in_use")) > n_refused, 3, what="stale 326s")
    held = [e["held_by"] for e in m.events("client_id_in_use")]
    assert held[:n_refused] == ["fault"] * n_refused and set(held[n_refused:]) == {"stale"}, held


# -- 025 client id stuck until the gateway restarts ---------------------------------------
def test_025_client_id_stuck_until_restart(mockgw_factory):
    m = start_with(mockgw_factory, script("025-client-id-stuck-until-restart.json"))
    for _ in range(3):
        expect_326_then_eof(connect(m), 1)
    c = m.ready_client(client_id=2)  # the way out: another id
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NEXT_VALID_ID
    expect_326_then_eof(connect(m), 1)  # still stuck
    evs = wait_until(lambda: len(m.events("client_id_in_use")) >= 4 and
                     m.events("client_id_in_use"), 3, what="4 client_id_in_use events")
    assert len(evs) == 4 and all(e["client_id"] == 1 for e in evs), evs
    assert not m.events("fault"), "settings only: no rule fires"


# -- 030 accepts, never answers -----------------------------------------------------------
def test_030_accepts_never_answers(mockgw_factory):
    m = start_with(mockgw_factory, script("030-accepts-never-answers.json"))
    c = connect(m)  # TCP connect succeeds at once
    conn = m.conn_id_of(c)
    c.send_hello()
    c.expect_silence(1.0)  # no version reply, no EOF: ib_async's connect times out
    ev = wait_fault(m, "accept-dialog-nobody-clicks", conn=conn)
    assert ev["action"] == "silent" and ev["phase"] == "accept"
    assert not m.events("hello", conn=conn)
    c2 = connect(m)  # every connection, not only the first
    c2.send_hello()
    c2.expect_silence(0.3)


def test_030_zombies_use_up_client_slots(mockgw_factory):
    """A silent connection stops reading, so mockgw never sees the client give up: it stays
    (CLOSE_WAIT) and counts toward max_clients, like the zombie sessions robo_trader saw."""
    m = start_with(mockgw_factory, script("030-accepts-never-answers.json"),
                   "--max-clients", "2")
    for _ in range(2):
        c = connect(m)
        c.send_hello()
        m.conn_id_of(c)
        c.close()  # the client times out and closes
    wait_until(lambda: len(faults(m, "accept-dialog-nobody-clicks")) == 2, 3, what="2 faults")
    assert m.status()["connection_count"] == 2
    third = connect(m)
    assert third.wait_eof(3.0) == b"", "over max_clients: closed before any byte"


# -- 040 silent after the handshake -------------------------------------------------------
def test_040_silent_after_handshake(mockgw_factory):
    m = start_with(mockgw_factory, script("040-silent-after-handshake.json"))
    c = connect(m)
    conn = m.conn_id_of(c)
    c.send_hello()
    assert c.read_version_reply()[0] == "178"  # "Logged on to server version 178"
    c.start_api(1)
    c.expect_silence(1.0)  # no 15, no 9, no 326, no FIN
    ev = wait_fault(m, "start-api-never-answered", conn=conn)
    assert ev["action"] == "silent" and ev["phase"] == "version_sent"
    assert not m.events("ready", conn=conn)


# -- 050 silent after ready ---------------------------------------------------------------
def test_050_silent_after_ready(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "050-silent-after-ready.json", 0.05)
    quiet_after = rule(data, "link-goes-dead")["action"]["after_ms"] / 1000
    m = start_with(mockgw_factory, path)
    c = m.ready_client()
    conn = m.conn_id_of(c)
    c.send_fields(REQ_IDS)  # works at first
    assert c.read_frame() == NEXT_VALID_ID
    t0 = time.monotonic()
    ev = wait_fault(m, "link-goes-dead", conn=conn)  # journaled when it fires, at ready
    assert ev["after_ms"] == rule(data, "link-goes-dead")["action"]["after_ms"]
    # Carried out after_ms later: "fault_applied". Read from the admin journal: the --log file
    # is not flushed after it (see test_journal_file_flushed_after_a_delayed_silent).
    wait_until(lambda: [e for e in m.admin_journal() if e["event"] == "fault_applied"
                        and e["conn"] == conn and e["action"] == "silent"],
               quiet_after + 3, what="fault_applied silent in the admin journal")
    assert time.monotonic() - t0 >= 0.5 * quiet_after
    c.send_fields(REQ_IDS)
    c.send_fields("49,1")
    c.expect_silence(1.0)  # the socket stays open, nothing answers: isConnected() stays true
    ev = faults(m, "link-goes-dead", conn=conn)[0]
    assert ev["action"] == "silent" and ev["phase"] == "ready"


def test_journal_file_flushed_after_a_delayed_silent(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "050-silent-after-ready.json", 0.05)
    quiet_after = rule(data, "link-goes-dead")["action"]["after_ms"] / 1000
    m = start_with(mockgw_factory, path)
    c = m.ready_client()
    conn = m.conn_id_of(c)
    # docs/journal.md: "a reader sees an entry within milliseconds".
    m.wait_event("fault_applied", quiet_after + 1.5, conn=conn, action="silent")


# -- 060 connectivity flap 1100 / 1102 ----------------------------------------------------
@pytest.mark.timeout_s(20)
def test_060_connectivity_flap(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "060-connectivity-flap-1100-1102.json", 0.01)
    act = rule(data, "flap")["action"]
    offsets = [act["after_ms"] / 1000] + [act["after_ms"] / 1000 + n["after_ms"] / 1000
                                          for n in act["then"]]
    codes = [act["code"]] + [n["code"] for n in act["then"]]
    assert codes == [1100, 1102, 1100, 1102]
    m = start_with(mockgw_factory, path)
    c = m.ready_client()
    t0 = time.monotonic()
    for i, (code, at) in enumerate(zip(codes, offsets)):
        f, t = read_timed(c, at + 3)
        assert f == notice(code), (i, f)
        assert t - t0 >= 0.8 * at, f"notice {i} ({code}) at {t - t0:.3f}s, expected >= {at}s"
        # The socket stays open through the outage: requests are answered in between.
        c.send_fields(REQ_IDS)
        assert c.read_frame() == NEXT_VALID_ID
    c.expect_silence(0.3)
    ev = wait_fault(m, "flap")
    assert ev["action"] == "error" and ev["phase"] == "ready"


# -- 070 data lost 1101 -------------------------------------------------------------------
def test_070_data_lost_1101(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "070-data-lost-1101.json", 0.01)
    act = rule(data, "server-reset-data-lost")["action"]
    t_lost = act["after_ms"] / 1000
    outage = act["then"][0]["after_ms"] / 1000
    m = start_with(mockgw_factory, path)
    c = m.ready_client()
    c.send_fields(MKT_STREAM.format(id=12))  # a subscription that the 1101 says is gone
    c.read_until(lambda f: f[0] == "46")
    t0 = time.monotonic()
    f, t_a = read_timed(c, t_lost + 3)
    while f[0] != "4":  # streaming ticks may come first
        f, t_a = read_timed(c, t_lost + 3)
    assert f == notice(1100)
    c.send_fields("2,2,12")  # cancel; then only the 1101 may come
    c.send_fields(REQ_IDS)
    frames = c.read_until(lambda x: x[0] == "9")
    assert frames[-1] == NEXT_VALID_ID
    f, t_b = read_timed(c, outage + 3)
    assert f == notice(1101)
    assert t_b - t_a >= 0.7 * outage
    assert t_a - t0 >= 0 and t_b - t0 >= 0.8 * (outage)
    c.expect_silence(0.3)  # open, no 1102
    ev = wait_fault(m, "server-reset-data-lost")
    assert ev["action"] == "error" and ev["phase"] == "ready"


# -- 080 pacing violation -----------------------------------------------------------------
def test_080_pacing_violation(mockgw_factory):
    data = load("080-pacing-violation.json")
    seq = rule(data, "hmds-pacing")["sequence"]
    n_ok = sum(1 for a in seq if a["type"] == "none")
    n_162 = len(seq) - n_ok
    m = start_with(mockgw_factory, script("080-pacing-violation.json"))
    c = m.ready_client()
    req = 100
    for _ in range(n_ok):
        req += 1
        c.send_fields(HIST_AAPL.format(id=req))
        f = c.read_frame()
        assert f[:2] == ["17", str(req)], f
    for _ in range(n_162):
        req += 1
        c.send_fields(HIST_AAPL.format(id=req))
        assert c.read_frame() == ["4", "2", str(req), "162", TEXT_162_PACING, ""]
    req += 1
    c.send_fields(HIST_AAPL.format(id=req))  # the sequence is spent: answered again
    assert c.read_frame()[:2] == ["17", str(req)]
    evs = faults(m, "hmds-pacing")
    assert len(evs) == n_162, evs
    assert all(e["action"] == "error" and e["phase"] == "request" for e in evs)

    c.send_fields("49,1")  # reqCurrentTime: never answered (ib_insync #604)
    c.expect_silence(0.8)
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NEXT_VALID_ID
    ev = wait_fault(m, "current-time-unanswered")
    assert ev["action"] == "ignore" and ev["phase"] == "request"


# -- 090 half ready -----------------------------------------------------------------------
def test_090_half_ready(mockgw_factory):
    m = start_with(mockgw_factory, script("090-half-ready.json"))
    c = connect(m)
    conn = m.conn_id_of(c)
    c.send_hello()
    c.read_version_reply()
    c.start_api(1)
    assert c.read_frames(4) == [["15", "1", "DU1234567"]] + BURST_NOTICES
    c.expect_silence(1.0)  # never a 9: ib_async never becomes ready
    ev = wait_fault(m, "no-next-valid-id", conn=conn)
    assert ev["action"] == "half_ready" and ev["phase"] == "start_api"
    assert not [f for f in m.frames("out", conn=conn) if f.get("msg_id") == 9]
    m.wait_event("half_ready", conn=conn)
    assert not m.events("ready", conn=conn)


# -- 100 first attempt fails, then ok -----------------------------------------------------
def test_100_first_attempt_fails_then_ok(mockgw_factory):
    m = start_with(mockgw_factory, script("100-first-attempt-fails-then-ok.json"))
    # Attempt 1: the handshake works, START_API is never answered; the client gives up.
    a = connect(m)
    a.send_hello()
    a.read_version_reply()
    a.start_api(1)
    a.expect_silence(1.0)
    a_conn = m.conn_id_of(a)
    a.close()
    # Attempt 2: 326 although nobody else uses id 1.
    expect_326_then_eof(connect(m), 1)
    # Attempt 3: normal.
    c = m.ready_client(client_id=1)
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NEXT_VALID_ID
    evs = faults(m, "cold-start-attempts")
    assert [(e["action"], e["phase"]) for e in evs] == [("silent", "start_api"),
                                                        ("refuse_client_id", "start_api")]
    assert evs[0]["conn"] == a_conn


# -- 110 slow gateway ---------------------------------------------------------------------
def _round_trips(m, n):
    c = m.client()
    t = time.monotonic()
    c.send_hello()
    c.read_version_reply(timeout=10)
    handshake = time.monotonic() - t
    c.start_api(1)
    c.read_burst(timeout=10)
    rtts = []
    for _ in range(n):
        t = time.monotonic()
        c.send_fields(REQ_IDS)
        assert c.read_frame(timeout=10) == NEXT_VALID_ID
        rtts.append(time.monotonic() - t)
    c.close()
    return handshake, rtts


@pytest.mark.timeout_s(25)
def test_110_slow_gateway(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "110-slow-gateway.json", 0.5)
    accept_delay = data["settings"]["accept_delay_ms"] / 1000
    d = rule(data, "slow-answers")["action"]
    lo, hi = (d["ms"] - d["jitter_ms"]) / 1000, (d["ms"] + d["jitter_ms"]) / 1000
    m = start_with(mockgw_factory, path, "--seed", "7")
    handshake, rtts = _round_trips(m, 6)
    assert handshake >= 0.8 * accept_delay, f"version reply after {handshake:.3f}s"
    for r in rtts:
        assert 0.8 * lo <= r <= hi + 0.5, f"round trip {r:.3f}s outside [{lo}, {hi}]"
    assert max(rtts) - min(rtts) >= 0.02, f"no jitter: {rtts}"
    evs = faults(m, "slow-answers")
    assert len(evs) >= 6 and all(e["action"] == "delay" and e["phase"] == "request"
                                 for e in evs)

    # The journal records each drawn delay; the client measured at least that much.
    delays = [e["ms"] / 1000 for e in wait_until(
        lambda: len(m.events("delay")) >= 6 and m.events("delay"), 3, what="6 delay events")]
    assert len(delays) == 6, delays
    for d_s, r in zip(delays, rtts):
        assert lo <= d_s <= hi and r >= d_s - 0.005, (delays, rtts)

    # Same seed, same client behaviour: the same delays.
    m2 = start_with(mockgw_factory, path, "--seed", "7")
    _round_trips(m2, 6)
    delays2 = [e["ms"] / 1000 for e in wait_until(
        lambda: len(m2.events("delay")) >= 6 and m2.events("delay"), 3, what="6 delay events")]
    assert delays2 == delays


# -- 120 socket port reset 1300 -----------------------------------------------------------
def test_120_socket_port_reset_1300(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "120-socket-port-reset-1300.json", 0.05)
    at = rule(data, "port-reset-notice")["action"]["after_ms"] / 1000
    m = start_with(mockgw_factory, path)
    c = m.ready_client()
    t0 = time.monotonic()
    f, t = read_timed(c, at + 3)
    assert f == ["4", "2", "-1", "1300", TEXT_1300, ""]
    assert t - t0 >= 0.8 * at
    assert c.wait_eof(3.0) == b"" and not c.reset  # then the FIN
    assert time.monotonic() - t < 1.0
    ev = wait_fault(m, "port-reset-notice")
    assert ev["action"] == "error" and ev["phase"] == "ready"
    ev = wait_fault(m, "port-reset-drop")
    assert ev["action"] == "close" and ev["phase"] == "ready"


# -- 130 farm broken ----------------------------------------------------------------------
def test_130_farm_broken(mockgw_factory, tmp_path):
    path, data = scaled(tmp_path, "130-farm-broken.json", 0.02)
    act = rule(data, "farms-break-and-heal")["action"]
    t_first = act["after_ms"] / 1000
    m = start_with(mockgw_factory, path)
    c = m.ready_client()
    t0 = time.monotonic()
    f, t = read_timed(c, t_first + 3)
    assert f == notice(2103)
    assert t - t0 >= 0.8 * t_first
    assert c.read_frame(3.0) == notice(2105)
    # Farms are down but the API still answers (the client must not treat 2103 as fatal).
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NEXT_VALID_ID
    c.send_fields(HIST_AAPL.format(id=5))
    assert c.read_frame()[:2] == ["17", "5"]
    assert c.read_frame(3.0) == notice(2104)
    assert c.read_frame(3.0) == notice(2106)
    c.expect_silence(0.3)
    ev = wait_fault(m, "farms-break-and-heal")
    assert ev["action"] == "error" and ev["phase"] == "ready"


# -- 140 competing live session -----------------------------------------------------------
def test_140_competing_session_10197(mockgw_factory):
    m = start_with(mockgw_factory, script("140-competing-session-10197.json"))
    c = m.ready_client()
    c.send_fields(MKT_STREAM.format(id=12))
    assert c.read_frame() == notice(10197, req_id=12)
    c.send_fields(REQ_IDS)  # no ticks follow; the connection goes on
    assert c.read_frame() == NEXT_VALID_ID
    c.send_fields(HIST_AAPL.format(id=13))  # only market data is hit
    assert c.read_frame()[:2] == ["17", "13"]
    ev = wait_fault(m, "competing-live-session")
    assert ev["action"] == "error" and ev["phase"] == "request"


# -- 150 blackhole backlog ----------------------------------------------------------------
def test_150_blackhole_backlog(mockgw_factory):
    m = start_with(mockgw_factory, script("150-blackhole-backlog.json"))
    c = connect(m, timeout=2.0)  # the kernel completes the connect (backlog)
    c.send_hello()
    c.expect_silence(1.0)  # nobody ever accepts it
    m.wait_event("listening")
    assert not m.events("accept"), "a blackholed listener accepts nothing"
    assert m.status()["connection_count"] == 0


# -- 160 closes after START_API without an error ------------------------------------------
def test_160_closes_after_start_api(mockgw_factory):
    data = load("160-closes-after-start-api.json")
    at = rule(data, "close-without-326")["action"]["after_ms"] / 1000
    m = start_with(mockgw_factory, script("160-closes-after-start-api.json"))
    c = connect(m)
    conn = m.conn_id_of(c)
    c.send_hello()
    c.read_version_reply()
    t0 = time.monotonic()
    c.start_api(123)
    got = c.wait_eof(at + 3)
    dt = time.monotonic() - t0
    assert got == b"", f"ib_async #143: no 326, no 15/9 before the close; got {got!r}"
    assert not c.reset
    assert 0.8 * at <= dt <= at + 1.0, f"closed after {dt:.3f}s, expected ~{at}s"
    ev = wait_fault(m, "close-without-326", conn=conn)
    assert ev["action"] == "close" and ev["phase"] == "start_api"
    ev = wait_fault(m, "start-api-unanswered", conn=conn)
    assert ev["action"] == "silent" and ev["phase"] == "start_api"
