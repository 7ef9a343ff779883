"""Proxy mode (docs/proxy.md) and record/replay (docs/record-replay.md), end to end.

One mockgw plays the "real" gateway (the upstream); a second runs with --upstream in front of
it. A raw client talks to the proxy; the upstream's journal tells what reached the gateway, the
proxy's journal shows both legs. Every fault is applied at the same protocol event as in fake
mode; the upstream never sees what a fault dropped.
"""

import json
import socket
import struct
import time

import pytest

from ibclient import encode_frame, hello_bytes, wait_until

HELLO = hello_bytes("v157..178")
REQ_IDS = "8,1,1"
REQ_TIME = "49,1"
CD_AAPL = "9,8,{id},0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,,"
HIST = "20,{id},0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,30 mins,1 D,1,TRADES,1,0,"
TEXT_326 = "Unable to connect as the client id is already in use. Retry with a unique client id."


# -- helpers ------------------------------------------------------------------------------
def pair(mockgw_factory, *proxy_args, script=None, fault=None, up_args=()):
    """(upstream, proxy): a fake gateway and a proxy in front of it."""
    up = mockgw_factory(*up_args, name="upstream")
    px = mockgw_factory("--upstream", f"127.0.0.1:{up.port}", *proxy_args, script=script,
                        fault=fault, name="proxy")
    return up, px


def rules(*rs):
    return {"rules": list(rs)}


def rule(phase, action, **match):
    return {"match": dict(match, phase=phase),
            "action": action if isinstance(action, dict) else {"type": action}}


def raw_frames(c, n, timeout=5.0):
    """The next n frames as the bytes on the wire."""
    out = b""
    for _ in range(n):
        head = c.read_exact(4, timeout)
        (length,) = struct.unpack(">I", head)
        out += head + c.read_exact(length, timeout)
    return out


def mask_time(version_reply):
    """The version reply with its connection time blanked (two gateways, maybe two seconds)."""
    version, when = version_reply[4:].split(b"\0")[:2]
    return version_reply[:4] + version + b"\0" + b"T" * len(when) + b"\0"


def to_start_api(c, client_id=1):
    c.send_raw(HELLO)
    c.read_version_reply()
    c.start_api(client_id)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upstream_frames(up, conn=None):
    return [f for f in up.frames(conn=conn)]


def conn_of_client_id(gw, client_id, timeout_s=5.0):
    return gw.wait_event("start_api", timeout_s, client_id=client_id)["conn"]


# -- pass-through -------------------------------------------------------------------------
def test_handshake_through_the_proxy_is_byte_identical_to_direct(mockgw_factory):
    up, px = pair(mockgw_factory)
    direct, via = up.client(), px.client()
    direct.send_raw(HELLO)
    via.send_raw(HELLO)
    d_version, p_version = raw_frames(direct, 1), raw_frames(via, 1)
    assert mask_time(d_version) == mask_time(p_version)
    direct.send_raw(encode_frame([71, 2, 1, ""]))
    via.send_raw(encode_frame([71, 2, 2, ""]))
    d_burst, p_burst = raw_frames(direct, 5), raw_frames(via, 5)
    assert d_burst == p_burst
    # And exactly what the upstream wrote on the proxy's connection, byte for byte.
    conn = conn_of_client_id(up, 2)
    sent = b"".join(encode_frame(f["fields"]) for f in up.frames("out", conn=conn))
    assert wait_until(lambda: b"".join(encode_frame(f["fields"])
                                       for f in up.frames("out", conn=conn)) ==
                      p_version + p_burst, 5.0), sent
    # ...and the upstream read the client's bytes unchanged.
    ins = up.frames("in", conn=conn)
    assert [f["fields"] for f in ins] == [["v157..178"], ["71", "2", "2", ""]]


def test_requests_are_answered_by_the_upstream(mockgw_factory):
    up, px = pair(mockgw_factory)
    c = px.ready_client(client_id=1)
    d = up.ready_client(client_id=2)
    for text, until in ((REQ_IDS, 9), (CD_AAPL.format(id=5), 52), (HIST.format(id=6), 17)):
        via = c.request(text, until)
        direct = d.request(text, until)
        if until == 17:  # bars end "now": compare the layout and the contract, not the clock
            assert [f[:2] for f in via] == [f[:2] for f in direct]
        else:
            assert via == direct
    t = c.request(REQ_TIME, 49)[-1]
    assert abs(int(t[2]) - time.time()) < 5
    conn = conn_of_client_id(up, 1)
    want = ["v157..178", "71", "8", "9", "20", "49"]
    wait_until(lambda: [f["fields"][0] for f in up.frames("in", conn=conn)] == want, 5.0)


def test_journal_shows_both_legs(mockgw_factory):
    up, px = pair(mockgw_factory)
    c = px.ready_client()
    c.request(REQ_IDS, 9)

    def four():
        fs = px.frames(conn=1)
        i = next((k for k, f in enumerate(fs) if f.get("msg") == "reqIds"), None)
        return fs[i:i + 4] if i is not None and len(fs) >= i + 4 else None

    got = wait_until(four, 5.0)
    ids = ["8", "1", "1"]
    assert [(f["leg"], f["dir"], f["fields"]) for f in got] == [
        ("client", "in", ids), ("upstream", "in", ids), ("upstream", "out", ["9", "1", "1"]),
        ("client", "out", ["9", "1", "1"])]
    assert all(f["leg"] in ("client", "upstream") for f in px.frames())
    assert all("leg" not in f for f in up.frames())
    ev = px.wait_event("upstream_connect", conn=1)
    assert ev["upstream"] == f"127.0.0.1:{up.port}" and ev["local"].startswith("127.0.0.1:")
    assert px.wait_event("version", conn=1)["version"] == 178
    st = px.status()
    assert st["mode"] == "proxy"
    assert st["upstream"]["address"] == f"127.0.0.1:{up.port}"
    assert st["upstream"]["connect_timeout_ms"] == 5000
    conn = st["connections"][0]
    assert conn["upstream"]["state"] == "connected" and conn["phase"] == "ready"
    assert up.status()["upstream"] is None and up.status()["mode"] == "fake"


# -- faults at the same events ------------------------------------------------------------
def test_refuse_client_id_1_never_reaches_the_upstream(mockgw_factory):
    up, px = pair(mockgw_factory, fault="refuse-client-id=1")
    c = px.client()
    to_start_api(c, 1)
    assert c.read_frame() == ["4", "2", "-1", "326", TEXT_326, ""]
    assert c.wait_eof(3.0) == b"" and not c.reset
    px.wait_event("client_id_in_use", held_by="fault")
    px.wait_event("upstream_close", conn=1)
    up.wait_event("disconnect", conn=1)
    assert up.events("start_api") == []
    assert [f["fields"][0] for f in up.frames("in", conn=1)] == ["v157..178"]
    # The next id goes through to the upstream.
    px.ready_client(client_id=2)
    wait_until(lambda: up.client_ids() == [2], 5.0)


def test_silent_after_ready_forwards_nothing_and_keeps_both_sockets(mockgw_factory):
    up, px = pair(mockgw_factory, fault="silent-after-ready")
    c = px.client()
    to_start_api(c, 1)
    assert [f[0] for f in c.read_frames(2)] == ["15", "9"]  # ready = 15 and 9 passed
    c.send_fields(REQ_TIME)
    c.expect_silence(0.5)
    conn = conn_of_client_id(up, 1)
    assert "49" not in [f["fields"][0] for f in up.frames("in", conn=conn)]
    st = px.status()["connections"]
    assert len(st) == 1 and st[0]["phase"] == "silent"
    assert st[0]["upstream"]["state"] == "connected"
    assert len(up.status()["connections"]) == 1  # the upstream connection is still open
    px.wait_event("fault", action="silent", phase="ready")


def test_delay_on_request(mockgw_factory):
    up, px = pair(mockgw_factory, script=rules(rule("request", {"type": "delay", "ms": 300},
                                                    msg="reqIds")))
    c = px.ready_client()
    t0 = time.monotonic()
    assert c.request(REQ_IDS, 9)[-1] == ["9", "1", "1"]
    latency = (time.monotonic() - t0) * 1000
    assert 280 <= latency <= 1500, latency
    assert px.wait_event("delay")["ms"] == 300
    t0 = time.monotonic()
    c.request("17,1", 15)  # not delayed
    assert (time.monotonic() - t0) * 1000 < 250


def test_hold_then_admin_release_on_the_client_output(mockgw_factory):
    up, px = pair(mockgw_factory, script=rules(rule("request", "hold", msg="reqIds")))
    c = px.ready_client()
    c.send_fields(REQ_IDS)
    c.expect_silence(0.3)  # the upstream answered; the answer is held
    conn = conn_of_client_id(up, 1)
    wait_until(lambda: ["9", "1", "1"] in [f["fields"] for f in up.frames("out", conn=conn)],
               5.0)
    assert px.status()["connections"][0]["held"] is True
    px.admin.call("POST", "/v1/connections/1/release")
    assert c.read_frame() == ["9", "1", "1"]


def test_truncate_and_garbage_on_the_client_output(mockgw_factory):
    up, px = pair(mockgw_factory, script=rules(
        rule("ready", {"type": "garbage", "bytes": 8}),
        rule("request", {"type": "truncate", "bytes": 5}, msg="reqIds")))
    c = px.client()
    to_start_api(c, 1)
    got = c.read_exact(19 + 10 + 8)  # 15, 9, then the garbage at ready
    assert got[:19] == encode_frame(["15", "1", "DU1234567"])
    c.read_frames(3)  # the farm notices
    c.send_fields(REQ_IDS)
    assert c.read_exact(5) == encode_frame(["9", "1", "1"])[:5]
    c.expect_silence(0.3)


def test_reset_after_ready(mockgw_factory):
    up, px = pair(mockgw_factory, fault="reset-after-ready")
    c = px.client()
    to_start_api(c, 1)
    c.wait_eof(3.0)
    assert c.reset
    conn = conn_of_client_id(up, 1)
    up.wait_event("disconnect", conn=conn)
    px.wait_event("upstream_close", conn=1)


def test_drop_after_ready_closes_both(mockgw_factory):
    up, px = pair(mockgw_factory, fault="drop-after-ready")
    c = px.client()
    to_start_api(c, 1)
    got = c.wait_eof(3.0)
    assert got == encode_frame(["15", "1", "DU1234567"]) + encode_frame(["9", "1", "1"])
    assert not c.reset
    up.wait_event("disconnect", conn=conn_of_client_id(up, 1))


def test_half_ready_drops_the_upstream_next_valid_id(mockgw_factory):
    up, px = pair(mockgw_factory, fault="half-ready")
    c = px.client()
    to_start_api(c, 1)
    frames = c.read_frames(4)
    assert [f[0] for f in frames] == ["15", "4", "4", "4"]
    c.expect_silence(0.3)
    px.wait_event("half_ready")
    assert px.wait_event("dropped")["msg_id"] == 9
    # The upstream did send it.
    conn = conn_of_client_id(up, 1)
    assert ["9", "1", "1"] in [f["fields"] for f in up.frames("out", conn=conn)]


def test_error_flap_injected_after_ready(mockgw_factory):
    flap = {"type": "error", "code": 1100, "then": [{"after_ms": 300, "code": 1102}]}
    up, px = pair(mockgw_factory, script=rules(rule("ready", flap)))
    c = px.client()
    to_start_api(c, 1)
    frames = c.read_until(lambda f: f[:4] == ["4", "2", "-1", "1102"], timeout=3.0)
    codes = [f[3] if f[0] == "4" else f[0] for f in frames]
    assert codes == ["15", "9", "1100", "2104", "2106", "2158", "1102"], codes
    # The upstream sent no 1100: it was injected.
    conn = conn_of_client_id(up, 1)
    assert all(f["fields"][3] != "1100" for f in up.frames("out", conn=conn)
               if f["fields"][0] == "4")


def test_ignore_drops_the_request(mockgw_factory):
    up, px = pair(mockgw_factory, script=rules(rule("request", "ignore", msg="reqCurrentTime")))
    c = px.ready_client()
    c.send_fields(REQ_TIME)
    assert c.request(REQ_IDS, 9) == [["9", "1", "1"]]  # nothing came for 49
    conn = conn_of_client_id(up, 1)
    wait_until(lambda: [f["fields"][0] for f in up.frames("in", conn=conn)][-1] == "8", 5.0)
    assert "49" not in [f["fields"][0] for f in up.frames("in", conn=conn)]


def test_listener_refuse_action_in_proxy_mode(mockgw_factory):
    up, px = pair(mockgw_factory, script=rules(rule("ready", "refuse")))
    px.ready_client()
    px.wait_event("listener", mode="refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", px.port), timeout=2.0).close()


# -- one side closing closes the other, bounded time --------------------------------------
def test_upstream_refusing_closes_the_client(mockgw_factory):
    port = free_port()
    px = mockgw_factory("--upstream", f"127.0.0.1:{port}", name="proxy")
    c = px.client()
    c.send_raw(HELLO)
    assert c.wait_eof(3.0) == b""
    ev = px.wait_event("upstream_connect_failed", conn=1)
    assert ev["error"] == "ECONNREFUSED" and ev["upstream"] == f"127.0.0.1:{port}"
    assert px.wait_event("disconnect", conn=1)["reason"] == "upstream refused the connection"


@pytest.mark.timeout_s(30)
def test_upstream_connect_timeout_closes_the_client(mockgw_factory):
    # A listener whose accept queue is full: the kernel drops further SYNs, connects hang.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(lst.getsockname())
            fillers.append(s)
        time.sleep(0.2)
        px = mockgw_factory("--upstream", f"127.0.0.1:{lst.getsockname()[1]}",
                            "--upstream-timeout-ms", "400", name="proxy")
        c = px.client()
        t0 = time.monotonic()
        c.send_raw(HELLO)
        assert c.wait_eof(5.0) == b""
        took = time.monotonic() - t0
        ev = px.wait_event("upstream_connect_failed", conn=1)
        assert ev["error"] == "ETIMEDOUT", ev
        assert 0.3 <= took <= 3.0, took
        assert 350 <= ev["after_ms"] <= 2000, ev
        assert px.wait_event("disconnect", conn=1)["reason"] == "upstream connect timed out"
    finally:
        for s in fillers:
            s.close()
        lst.close()


def test_handshake_deadline_covers_the_upstream(mockgw_factory):
    up = mockgw_factory(name="upstream", fault="silent-after-handshake")
    px = mockgw_factory("--upstream", f"127.0.0.1:{up.port}", "--handshake-timeout-ms", "300",
                        name="proxy")
    c = px.client()
    t0 = time.monotonic()
    to_start_api(c, 1)  # the upstream answers the hello, then hangs
    assert c.wait_eof(3.0) == b""
    assert 0.25 <= time.monotonic() - t0 <= 2.5
    ev = px.wait_event("disconnect", conn=1)
    assert ev["reason"] == "upstream not ready within the timeout"
    px.wait_event("upstream_close", conn=1)


def test_upstream_closing_closes_the_client(mockgw_factory):
    up, px = pair(mockgw_factory)
    c = px.ready_client()
    up.drop_all()
    assert c.wait_eof(3.0) == b"" and not c.reset
    assert px.wait_event("upstream_close", conn=1)["reason"] == "upstream closed"
    assert px.wait_event("disconnect", conn=1)["reason"] == "upstream closed"


def test_client_closing_closes_the_upstream(mockgw_factory):
    up, px = pair(mockgw_factory)
    c = px.ready_client()
    conn = conn_of_client_id(up, 1)
    c.close()
    assert up.wait_event("disconnect", conn=conn)["reason"] == "peer closed"
    ev = px.wait_event("upstream_close", conn=1)
    assert ev["reason"] == "client connection ended"
    assert px.wait_event("disconnect", conn=1)["reason"] == "peer closed"


def test_upstream_output_cap(mockgw_factory):
    # An upstream that never reads: what the client sends piles up to the cap, then the
    # connection is closed and journaled, on both legs.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    try:
        px = mockgw_factory("--upstream", f"127.0.0.1:{lst.getsockname()[1]}",
                            "--max-out-buffer", "4096", name="proxy")
        c = px.client()
        c.send_raw(HELLO)
        peer, _ = lst.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.sendall(encode_frame(["178", "20240115 10:15:30 EST"]))
        c.read_version_reply()
        c.start_api(1)
        got = b""
        while len(got) < 17 + 12:  # the hello, then START_API: a gateway answers only then
            got += peer.recv(100)
        peer.sendall(encode_frame(["15", "1", "DU1"]) + encode_frame(["9", "1", "1"]))
        c.read_frames(2)
        big = encode_frame(["20", "1"] + ["x" * 60000])
        try:
            for _ in range(200):
                c.send_raw(big)
                if px.events("output_overflow"):
                    break
        except OSError:
            pass
        ev = px.wait_event("output_overflow", conn=1)
        assert ev["leg"] == "upstream" and ev["cap"] == 4096
        reason = px.wait_event("disconnect", conn=1)["reason"]
        assert reason == "upstream does not read (output buffer full)"
        peer.close()
    finally:
        lst.close()


# -- record -------------------------------------------------------------------------------
def read_record(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_record_through_the_proxy(mockgw_factory, tmp_path):
    rec = tmp_path / "rec.jsonl"
    up, px = pair(mockgw_factory, "--record", str(rec))
    c = px.ready_client()
    c.request(REQ_IDS, 9)
    lines = wait_until(lambda: read_record(rec) if rec.exists() and len(read_record(rec)) >= 10
                       else None, 5.0)
    hello, version = lines[0], lines[1]
    assert hello == {"t_ms": hello["t_ms"], "conn": 1, "dir": "in", "msg": None, "name": "hello",
                     "fields": ["v157..178"], "min": 157, "max": 178, "options": ""}
    assert version["name"] == "serverVersion" and version["dir"] == "out"
    assert version["fields"][0] == "178" and version["msg"] is None
    rest = [(e["dir"], e["msg"], e["name"]) for e in lines[2:]]
    assert rest == [("in", 71, "startApi"), ("out", 15, "managedAccounts"),
                    ("out", 9, "nextValidId"), ("out", 4, "error"), ("out", 4, "error"),
                    ("out", 4, "error"), ("in", 8, "reqIds"), ("out", 9, "nextValidId")]
    assert lines[-1]["fields"] == ["9", "1", "1"]
    ts = [e["t_ms"] for e in lines]
    assert ts == sorted(ts) and all(isinstance(t, int) and t >= 0 for t in ts)
    assert set(e["conn"] for e in lines) == {1}


def test_record_in_fake_mode(mockgw_factory, tmp_path):
    rec = tmp_path / "rec.jsonl"
    m = mockgw_factory("--record", str(rec))
    c = m.ready_client()
    c.request(REQ_IDS, 9)
    lines = wait_until(lambda: read_record(rec) if rec.exists() and len(read_record(rec)) >= 10
                       else None, 5.0)
    assert [e["name"] for e in lines] == ["hello", "serverVersion", "startApi",
                                          "managedAccounts", "nextValidId", "error", "error",
                                          "error", "reqIds", "nextValidId"]


# -- replay -------------------------------------------------------------------------------
@pytest.mark.timeout_s(30)
def test_record_through_proxy_then_replay_gives_identical_answers(mockgw_factory, tmp_path):
    rec = tmp_path / "rec.jsonl"
    requests = [(CD_AAPL.format(id=5), 52), (HIST.format(id=6), 17), (REQ_IDS, 9),
                ("61,1", 62)]
    up, px = pair(mockgw_factory, "--record", str(rec))
    c = px.ready_client()
    recorded = [c.request(text, until) for text, until in requests]
    c.send_fields(REQ_TIME)
    recorded.append(c.read_until_id(49))
    c.close()
    px.wait_event("disconnect", conn=1)
    px.stop()

    # Another seed: the fake's own bars would differ; the replayed ones do not.
    rp = mockgw_factory("--replay", str(rec), "--seed", "99", name="replay")
    d = rp.ready_client()
    time.sleep(1.1)  # a second later: a live currentTime would differ
    replayed = [d.request(text, until) for text, until in requests]
    d.send_fields(REQ_TIME)
    replayed.append(d.read_until_id(49))
    assert replayed == recorded
    wait_until(lambda: len(rp.events("replayed")) == 5, 5.0)
    # Another request id: the same answers, carrying the new id.
    again = d.request(HIST.format(id=77), 17)
    assert [f[1] for f in again] == ["77"] and again[0][2:] == recorded[1][0][2:]
    # Nothing recorded for it: the fake's own answer.
    other = d.request("17,1", 15)
    assert other == [["15", "1", "DU1234567"]]


def test_replay_and_upstream_do_not_mix(run, tmp_path):
    rec = tmp_path / "rec.jsonl"
    rec.write_text("")
    r = run("--listen", "127.0.0.1:0", "--admin", "off", "--upstream", "127.0.0.1:1",
            "--replay", str(rec))
    assert r.returncode == 2 and "--replay" in r.stderr and "--upstream" in r.stderr


def test_bad_replay_file_names_the_line(run, tmp_path):
    rec = tmp_path / "rec.jsonl"
    rec.write_text('{"conn":1,"dir":"in","msg":71,"fields":["71","2","1",""]}\nnope\n')
    r = run("--listen", "127.0.0.1:0", "--admin", "off", "--replay", str(rec))
    assert r.returncode == 2
    assert r.stderr == f"mockgw: {rec}: line 2: invalid JSON at line 1, column 1\n"


@pytest.mark.parametrize("value, reason", [
    ("127.0.0.1:0", "port must be a number 1..65535"),
    ("127.0.0.1", "expected HOST:PORT"),
    ("127.0.0.1:x", "port must be a number 0..65535"),
])
def test_bad_upstream_flag(run, value, reason):
    r = run("--listen", "127.0.0.1:0", "--admin", "off", "--upstream", value)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f'mockgw: --upstream "{value}": {reason}\n'
