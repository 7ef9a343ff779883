"""Malformed input: journaled with its reason, only that connection closed, everyone else served.

Each case: a well-behaved client is ready before the bad one connects; after the bad one is
closed, that client still gets answers, a new client connected afterwards too, and mockgw is
still running.
"""

import random
import socket
import struct
import time

import pytest

from ibclient import encode_frame, encode_payload, hello_bytes, wait_until

MAX_IN_FRAME = 1 << 20  # mockgw's default cap on an incoming payload


def answers(client):
    client.send_fields("8,1,1")
    f = client.read_frame()
    assert f[:2] == ["9", "1"], f


def run_bad_case(m, feed, event, ready=True, **match):
    """feed(bad_client) sends the bad input; event/match describe the journal entry.
    Returns (the journal event, the bad client's connection id)."""
    good = m.ready_client(client_id=1)
    bad = m.client()
    conn = m.conn_id_of(bad)
    if ready:
        bad.handshake(client_id=2)
    feed(bad)
    ev = m.wait_event(event, conn=conn, **match)
    assert bad.is_closed_by_peer(5), "the bad client's connection was not closed"
    m.wait_event("disconnect", conn=conn)
    answers(good)
    after = m.ready_client(client_id=3)
    answers(after)
    assert m.alive()
    assert all(c["id"] != conn for c in m.status()["connections"])
    return ev, conn


def test_zero_length_frame(mockgw):
    ev, conn = run_bad_case(mockgw, lambda c: c.send_raw(b"\0\0\0\0"), "bad_input",
                            what="zero-length frame")
    mockgw.wait_event("close", conn=conn, reason="zero-length frame")


@pytest.mark.parametrize("length", [0x7FFFFFFF, MAX_IN_FRAME + 1, 0xFFFFFFFF])
def test_oversized_frame_rejected_from_its_header(mockgw, length):
    # Only the 4-byte header is sent: mockgw must refuse on the length, not wait for the body.
    run_bad_case(mockgw, lambda c: c.send_raw(struct.pack(">I", length)), "bad_input",
                 what="oversized frame")


def test_frame_at_the_cap_is_accepted(mockgw):
    c = mockgw.ready_client()
    head = encode_payload(["8", "1", "1"])
    filler = b"x" * (MAX_IN_FRAME - len(head) - 1) + b"\0"  # one long ignored trailing field
    payload = head + filler
    assert len(payload) == MAX_IN_FRAME
    c.send_raw(struct.pack(">I", len(payload)) + payload)
    assert c.read_frame() == ["9", "1", "1"]


def test_non_numeric_message_id(mockgw):
    run_bad_case(mockgw, lambda c: c.send_frame(["abc", "1"]), "bad_input",
                 what="non-numeric message id")


@pytest.mark.parametrize("fields, request_name", [
    ("49", "reqCurrentTime"),
    ("9,8,3", "reqContractDetails"),
    ("20,4,0,AAPL,STK", "reqHistoricalData"),
    ("8,1", "reqIds"),
])
def test_missing_fields(mockgw, fields, request_name):
    ev, conn = run_bad_case(mockgw, lambda c: c.send_fields(fields), "bad_request",
                            request=request_name)
    assert ev["error"], ev
    mockgw.wait_event("close", conn=conn, reason="malformed request")


def test_bad_number_in_request(mockgw):
    run_bad_case(mockgw, lambda c: c.send_fields("9,8,notanumber,0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,,"),
                 "bad_request", request="reqContractDetails")


def test_http_request_instead_of_api(mockgw):
    run_bad_case(mockgw, lambda c: c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad_input",
                 ready=False, what="bytes before the API handshake")


def test_legacy_handshake(mockgw):
    run_bad_case(mockgw, lambda c: c.send_raw(b"62\0"), "bad_input", ready=False,
                 what="legacy handshake not supported")


@pytest.mark.parametrize("hello", [
    b"API\0" + struct.pack(">I", 0),                       # empty version string
    b"API\0" + struct.pack(">I", 5) + b"hello",           # not v<min>..<max>
    b"API\0" + struct.pack(">I", 9) + b"v178..157",       # min > max
    b"API\0" + struct.pack(">I", 0x7FFFFFFF),             # absurd length
])
def test_bad_handshake(mockgw, hello):
    run_bad_case(mockgw, lambda c: c.send_raw(hello), "bad_input", ready=False)


@pytest.mark.timeout_s(15)
def test_silent_client_closed_by_handshake_timeout(mockgw_factory):
    m = mockgw_factory("--handshake-timeout-ms", "500")
    good = m.ready_client(client_id=1)
    silent = m.client()
    conn = m.conn_id_of(silent)
    t0 = time.monotonic()
    assert silent.wait_eof(timeout=5) == b""
    elapsed = time.monotonic() - t0
    assert 0.3 <= elapsed <= 5, elapsed
    m.wait_event("close", conn=conn, reason="no handshake within the timeout")
    # A ready client is never subject to the handshake timeout.
    wait_until(lambda: time.monotonic() - t0 >= 0.7, 2, what="past the handshake timeout")
    answers(good)
    answers(m.ready_client(client_id=2))


@pytest.mark.timeout_s(15)
def test_no_start_api_closed_by_handshake_timeout(mockgw_factory):
    m = mockgw_factory("--handshake-timeout-ms", "500")
    c = m.client()
    conn = m.conn_id_of(c)
    c.send_hello()
    c.read_version_reply()
    t0 = time.monotonic()
    assert c.wait_eof(timeout=5) == b""
    assert time.monotonic() - t0 <= 5
    m.wait_event("close", conn=conn, reason="no startApi within the timeout")


@pytest.mark.timeout_s(40)
def test_client_that_never_reads_is_dropped(mockgw_factory):
    m = mockgw_factory("--max-out-buffer", "65536")
    good = m.ready_client(client_id=1)
    hog = m.client(rcvbuf=4096)
    conn = m.conn_id_of(hog)
    hog.handshake(client_id=2)
    req = encode_frame(("20,{},0,AAPL,STK,,0.0,,,SMART,,USD,,,0,,1 min,1 D,0,TRADES,1,0,"
                        .format(7)).split(","))
    deadline = time.monotonic() + 25
    sent = 0
    try:
        while not m.events("output_overflow", conn=conn):
            assert time.monotonic() < deadline, f"no output_overflow after {sent} requests"
            hog.send_raw(req * 50)
            sent += 50
            answers(good)  # the other client keeps being served while the hog backs up
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # mockgw dropped us mid-send: that is the point
    ev = m.wait_event("output_overflow", conn=conn)
    assert ev["cap"] == 65536
    m.wait_event("disconnect", conn=conn)
    assert all(c["id"] != conn for c in m.status()["connections"])
    answers(good)
    answers(m.ready_client(client_id=3))
    assert m.status()["counters"]["output_overflow"] == 1


def test_garbage_after_handshake(mockgw):
    rnd = random.Random(20240115)
    garbage = bytes([0x9C]) + bytes(rnd.getrandbits(8) for _ in range(4095))
    run_bad_case(mockgw, lambda c: c.send_raw(garbage), "bad_input")


def test_garbage_payload_in_a_valid_frame(mockgw):
    rnd = random.Random(7)
    payload = b"\xff" + bytes(rnd.getrandbits(8) for _ in range(200)) + b"\0"
    run_bad_case(mockgw, lambda c: c.send_raw(struct.pack(">I", len(payload)) + payload),
                 "bad_input", what="non-numeric message id")


def test_half_a_frame_then_close(mockgw):
    good = mockgw.ready_client(client_id=1)
    c = mockgw.ready_client(client_id=2)
    conn = mockgw.conn_id_of(c)
    frame = encode_frame(["49", "1"])
    c.send_raw(frame[:6])
    c.close()
    ev = mockgw.wait_event("disconnect", conn=conn)
    assert ev["reason"] == "peer closed", ev
    assert not mockgw.events("bad_input", conn=conn)
    answers(good)
    assert mockgw.alive()


def test_half_a_handshake_then_close(mockgw):
    c = mockgw.client()
    conn = mockgw.conn_id_of(c)
    c.send_raw(hello_bytes()[:10])
    c.close()
    mockgw.wait_event("disconnect", conn=conn)
    answers(mockgw.ready_client())


def test_reset_by_client(mockgw):
    c = mockgw.ready_client(client_id=2)
    conn = mockgw.conn_id_of(c)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST
    mockgw.wait_event("disconnect", conn=conn)
    answers(mockgw.ready_client(client_id=2))  # its client id is free again


def test_hostile_strings_keep_the_journal_valid_json(mockgw):
    # Client-controlled text (connect options, START_API capabilities) must be escaped in the
    # journal: a quote or backslash may not break the JSON lines or /v1/journal.
    c = mockgw.client()
    conn = mockgw.conn_id_of(c)
    c.send_hello("v157..178", options='+PACE"API\\x')
    assert c.read_version_reply()[0] == "178"
    c.send_frame(["71", "2", "1", 'ca"ps\\'])
    assert c.read_burst()[0] == ["15", "1", "DU1234567"]
    answers(c)
    mockgw.wait_event("ready", conn=conn)
    assert not mockgw.bad_journal_lines, f"journal lines that are not JSON: {mockgw.bad_journal_lines}"
    hello = mockgw.wait_event("hello", conn=conn)
    assert hello["options"] == '+PACE"API\\x'
    assert mockgw.wait_event("start_api", conn=conn)["capabilities"] == 'ca"ps\\'
    code, body = mockgw.http("GET", "/v1/journal?since=0")
    assert code == 200 and isinstance(body, list), f"/v1/journal is not JSON: {body!r:.300}"


@pytest.mark.parametrize("fields", [["71", "2", "abc", ""], ["71", "2"], ["71"]])
def test_malformed_start_api(mockgw, fields):
    def feed(c):
        c.send_hello()
        c.read_version_reply()
        c.send_frame(fields)

    run_bad_case(mockgw, feed, "bad_input", ready=False, what="malformed startApi")
