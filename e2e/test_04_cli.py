"""The command line contract (DESIGN.md "CLI contract", mockgw/main.c)."""

import json
import re
import signal
import socket

import pytest

from ibclient import wait_until

FLAGS = ["--listen", "--admin", "--server-version", "--accounts", "--seed", "--fixtures",
         "--log", "--ready-file", "--next-valid-id", "--max-clients",
         "--allow-duplicate-client-ids", "--no-time-pacing", "--handshake-timeout-ms",
         "--max-out-buffer", "--help", "--version"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help(run):
    r = run("--help")
    assert r.returncode == 0, r
    assert r.stderr == ""
    for flag in FLAGS:
        assert flag in r.stdout, f"--help does not mention {flag}"
    assert run("-h").stdout == r.stdout


def test_version(run):
    r = run("--version")
    assert r.returncode == 0 and r.stderr == ""
    assert re.match(r"^mockgw \d+\.\d+", r.stdout), r.stdout
    assert run("-V").stdout == r.stdout


@pytest.mark.parametrize("args, names", [
    (["--bogus"], "--bogus"),
    (["--listen"], "--listen"),                            # missing value
    (["--admin"], "--admin"),
    (["--listen", "127.0.0.1:70000"], "--listen"),         # bad port
    (["--listen", "127.0.0.1:abc"], "--listen"),
    (["--listen", "127.0.0.1"], "--listen"),               # no port
    (["--admin", "127.0.0.1:-1"], "--admin"),
    (["--server-version", "250"], "--server-version"),
    (["--server-version", "99"], "--server-version"),
    (["--server-version", "abc"], "--server-version"),
    (["--accounts", ""], "--accounts"),
    (["--accounts", "A,,B"], "--accounts"),
    (["--seed", "-1"], "--seed"),
    (["--next-valid-id", "0"], "--next-valid-id"),
    (["--max-clients", "x"], "--max-clients"),
    (["--handshake-timeout-ms", "0"], "--handshake-timeout-ms"),
    (["--max-out-buffer", "100"], "--max-out-buffer"),
    (["stray-argument"], "stray-argument"),
])
def test_bad_usage_exits_2(run, args, names):
    # Safe defaults first (no fixed port is ever bound even if parsing wrongly succeeded).
    r = run("--listen", "127.0.0.1:0", "--admin", "off", *args, timeout_s=5)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert names in r.stderr, f"stderr does not name {names}: {r.stderr!r}"
    assert r.stdout == "", "no ready line on a usage error"
    assert r.stderr.count("\n") <= 2, f"one clear message, not a wall: {r.stderr!r}"


def test_fixtures_missing_file(run):
    r = run("--listen", "127.0.0.1:0", "--admin", "off", "--fixtures", "/nonexistent/fx.json")
    assert r.returncode == 2, r
    assert "/nonexistent/fx.json" in r.stderr, r.stderr


def test_fixtures_broken_json(run, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"contracts": [ {"symbol": "AAPL", ')
    r = run("--listen", "127.0.0.1:0", "--admin", "off", "--fixtures", str(bad))
    assert r.returncode == 2, r
    assert str(bad) in r.stderr, r.stderr
    assert len(r.stderr.strip()) > len(str(bad)) + 5, f"no reason given: {r.stderr!r}"


def test_fixtures_wrong_type_names_json_path(run, tmp_path):
    bad = tmp_path / "wrongtype.json"
    bad.write_text('{"contracts": [{"con_id": 1, "symbol": 42, "sec_type": "STK"}]}')
    r = run("--listen", "127.0.0.1:0", "--admin", "off", "--fixtures", str(bad))
    assert r.returncode == 2, r
    assert str(bad) in r.stderr and "contracts[0]" in r.stderr, r.stderr


def test_log_unwritable(run):
    r = run("--listen", "127.0.0.1:0", "--admin", "off", "--log", "/nonexistent/dir/j.jsonl")
    assert r.returncode == 2, r
    assert "/nonexistent/dir/j.jsonl" in r.stderr


def test_api_port_in_use_exits_1(mockgw_factory):
    port = free_port()
    first = mockgw_factory("--listen", f"127.0.0.1:{port}")
    assert first.api_port == port
    second = mockgw_factory("--listen", f"127.0.0.1:{port}", ready=False, expect_rc=1,
                            expect_stderr=True)
    assert second.wait_exit() == 1
    assert f"127.0.0.1:{port}" in second.stderr_text(), second.stderr_text()
    assert second.stdout_text() == ""
    first.ready_client().send_fields("8,1,1")  # the first one is unharmed


def test_admin_port_in_use_exits_1(mockgw_factory):
    first = mockgw_factory()
    second = mockgw_factory("--admin", f"127.0.0.1:{first.admin_port}", ready=False,
                            expect_rc=1, expect_stderr=True)
    assert second.wait_exit() == 1
    assert f"127.0.0.1:{first.admin_port}" in second.stderr_text(), second.stderr_text()


def test_admin_off(mockgw_factory):
    m = mockgw_factory("--admin", "off")
    assert m.ready_line.endswith(" admin=off"), m.ready_line
    assert m.admin_port is None
    m.ready_client().send_fields("8,1,1")


def test_ready_file(mockgw_factory, tmp_path):
    path = tmp_path / "ready.json"
    m = mockgw_factory("--ready-file", str(path))
    wait_until(path.exists, 5, what="the ready file")
    data = json.loads(path.read_text())
    assert data == {"api": m.api_port, "admin": m.admin_port, "pid": m.pid}


def test_ready_file_admin_off(mockgw_factory, tmp_path):
    path = tmp_path / "ready.json"
    m = mockgw_factory("--admin", "off", "--ready-file", str(path))
    data = json.loads(path.read_text())
    assert data["api"] == m.api_port and data["pid"] == m.pid
    assert data.get("admin") is None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_with_clients_connected_exits_0(mockgw_factory, sig):
    m = mockgw_factory()
    ready = m.ready_client(client_id=1)
    half = m.client()
    half.send_hello()
    half.read_version_reply()
    idle = m.client()
    m.conn_id_of(idle)
    m.send_signal(sig)
    assert m.wait_exit() == 0
    for c in (ready, half, idle):
        assert c.is_closed_by_peer(5)
    names = [e["event"] for e in m.events()]
    assert "stopping" in names
    assert len(m.events("disconnect", reason="server stopping")) == 3


def test_sigterm_with_a_client_that_never_reads(mockgw_factory):
    m = mockgw_factory("--max-out-buffer", str(64 << 20))
    hog = m.client(rcvbuf=4096)
    conn = m.conn_id_of(hog)
    hog.handshake(client_id=1)
    req = "20,7,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,1 min,1 D,0,TRADES,1,0,".split(",")
    from ibclient import encode_frame
    hog.send_raw(encode_frame(req) * 150)  # ~13 MB of answers it will never read
    wait_until(lambda: any(c["id"] == conn and c["queued_out"] > 0
                           for c in m.status()["connections"]), 5, what="output queued")
    m.send_signal(signal.SIGTERM)
    assert m.wait_exit() == 0


def test_second_signal_is_harmless(mockgw_factory):
    m = mockgw_factory()
    m.ready_client()
    m.send_signal(signal.SIGTERM)
    m.send_signal(signal.SIGINT)
    assert m.wait_exit() == 0


def test_log_to_stdout(mockgw_factory):
    m = mockgw_factory("--log", "-", ready=False)
    wait_until(lambda: "\n" in m.stdout_text(), 5, what="first stdout line")
    first = m.stdout_text().split("\n", 1)[0]
    # Tools wait for the ready line: it must be the first line, journal lines follow it.
    assert first.startswith("mockgw ready api=127.0.0.1:"), \
        f"first line on stdout is not the ready line: {first!r}"
    m.wait_ready()
    c = m.ready_client()
    c.send_fields("8,1,1")
    c.read_frame()

    def json_lines():
        lines = m.stdout_text().split("\n")[1:-1]
        return [json.loads(line) for line in lines]

    wait_until(lambda: any(e.get("event") == "ready" for e in json_lines()), 5,
               what="journal lines on stdout")
    assert any(e.get("dir") == "out" and e.get("msg_id") == 9 for e in json_lines())


def test_log_file_contents(mockgw):
    c = mockgw.ready_client(client_id=3)
    conn = mockgw.conn_id_of(c)
    c.send_fields("8,1,1")
    assert c.read_frame() == ["9", "1", "1"]
    c.close()
    mockgw.wait_event("disconnect", conn=conn)
    lines = mockgw.log_path.read_text().split("\n")
    assert lines[-1] == ""
    entries = [json.loads(line) for line in lines[:-1]]  # every line one JSON object
    assert all(isinstance(e, dict) for e in entries)
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    mine = [e for e in entries if e.get("conn") == conn]
    events = [e["event"] for e in mine if "event" in e]
    assert events[:4] == ["accept", "hello", "start_api", "ready"], events
    assert events[-1] == "disconnect"
    frames = [e for e in mine if "dir" in e]
    req = [f for f in frames if f["dir"] == "in" and f.get("msg_id") == 8]
    assert req and req[0]["fields"] == ["8", "1", "1"] and req[0]["msg"], req
    assert req[0]["client_id"] == 3
    rep = [f for f in frames if f["dir"] == "out" and f.get("msg_id") == 9]
    assert rep[-1]["fields"] == ["9", "1", "1"] and rep[-1]["msg"], rep
    burst_err = [f for f in frames if f["dir"] == "out" and f.get("msg_id") == 4]
    assert burst_err[0]["fields"] == ["4", "2", "-1", "2104",
                                      "Market data farm connection is OK:usfarm", ""]
    for e in entries:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["t"]), e
