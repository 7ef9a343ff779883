"""The admin HTTP API: /v1/status, /v1/journal, errors (DESIGN.md "Admin API")."""

import json
import socket

import pytest

from ibclient import wait_until


def raw_http(port, data, timeout_s=5.0):
    """Sends raw bytes to the admin port, returns everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def split_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1]), head.decode(), body


def test_status(mockgw):
    c = mockgw.ready_client(client_id=7)
    c.send_fields("8,1,1")
    c.read_frame()
    half = mockgw.client()
    half.send_hello()
    half.read_version_reply()
    half_conn = mockgw.conn_id_of(half)
    st = mockgw.status()
    assert st["api"]["port"] == mockgw.api_port
    assert st["server_version"] == 178
    assert st["accounts"] == "DU1234567"
    conns = {x["id"]: x for x in st["connections"]}
    assert len(conns) == 2 and st["connection_count"] == 2
    mine = conns[mockgw.conn_id_of(c)]
    assert mine["peer"] == f"127.0.0.1:{c.local_port()}"
    assert mine["client_id"] == 7 and mine["phase"] == "ready" and mine["version"] == 178
    assert mine["bytes_in"] == 17 + 12 + 10  # hello, START_API, reqIds
    assert mine["bytes_out"] > 0
    other = conns[half_conn]
    assert other["phase"] == "version_sent" and other["client_id"] is None
    for key in ("accepted", "closed", "rejected_max_clients", "refused_client_id",
                "bad_input", "output_overflow", "paced_current_time", "ignored_messages"):
        assert isinstance(st["counters"][key], (int, float)), key
    assert st["counters"]["accepted"] == 2


def test_status_counts_follow_events(mockgw):
    a = mockgw.ready_client(client_id=1)
    b = mockgw.client()
    b.send_hello()
    b.read_version_reply()
    b.start_api(1)
    b.wait_eof()
    a.send_fields("999")
    a.send_fields("8,1,1")
    a.read_frame()
    st = mockgw.status()
    assert st["counters"]["refused_client_id"] == 1
    assert st["counters"]["ignored_messages"] == 1
    wait_until(lambda: mockgw.status()["counters"]["closed"] == 1, 5, what="closed counter")


def test_unknown_path_404(mockgw):
    code, body = mockgw.http("GET", "/v1/nope")
    assert code == 404
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]


def test_post_status_405(mockgw):
    code, body = mockgw.http("POST", "/v1/status", body=b"{}",
                             headers={"Content-Type": "application/json"})
    assert code == 405
    assert isinstance(body, dict) and body.get("error")


def test_journal_since(mockgw):
    c = mockgw.ready_client(client_id=2)
    conn = mockgw.conn_id_of(c)
    all_events = mockgw.admin_journal()
    assert isinstance(all_events, list) and all_events
    seqs = [e["seq"] for e in all_events]
    assert seqs == sorted(seqs)
    assert all("dir" not in e for e in all_events), "kind=events: no frames"
    frames = mockgw.admin_journal(kind="frames")
    assert frames and all("dir" in e and "event" not in e for e in frames)
    assert [f["fields"] for f in frames if f["conn"] == conn and f["dir"] == "out"][1] == \
        ["15", "1", "DU1234567"]
    both = mockgw.admin_journal(kind="all")
    assert len(both) == len(all_events) + len(frames)
    assert [e["seq"] for e in both] == sorted(e["seq"] for e in both)
    names = [e["event"] for e in all_events if e["conn"] == conn]
    assert names[:4] == ["accept", "hello", "start_api", "ready"], names
    last = seqs[-1]
    assert mockgw.admin_journal(since=last) == []
    c.close()
    wait_until(lambda: mockgw.admin_journal(since=last), 5, what="new journal events")
    newer = mockgw.admin_journal(since=last)
    assert all(e["seq"] > last for e in newer)
    assert any(e["event"] == "disconnect" and e["conn"] == conn for e in newer)
    assert mockgw.status()["journal_seq"] >= newer[-1]["seq"]


def test_journal_bad_kind_400(mockgw):
    code, body = mockgw.http("GET", "/v1/journal?kind=everything")
    assert code == 400 and "kind must be all, events or frames" in body["error"], (code, body)


def test_journal_bad_since_400(mockgw):
    code, body = mockgw.http("GET", "/v1/journal?since=abc")
    assert code == 400 and body.get("error"), (code, body)


def test_journal_stays_valid_json_after_bad_input(mockgw):
    bad = mockgw.client()
    bad.send_raw(b"GET / HTTP/1.1\r\n\r\n")  # bad_input on the API port
    assert bad.is_closed_by_peer(5)
    code, body = mockgw.http("GET", "/v1/journal?since=0")
    assert code == 200
    assert isinstance(body, list), f"/v1/journal is not valid JSON: {body!r:.400}"
    assert any(e["event"] == "bad_input" for e in body)


@pytest.mark.parametrize("garbage", [
    b"THIS IS NOT HTTP\r\n\r\n",
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nNoColonHeader\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"GET  HTTP/1.1\r\n\r\n",
])
def test_malformed_http_400(mockgw, garbage):
    client = mockgw.ready_client()
    status, head, body = split_response(raw_http(mockgw.admin_port, garbage))
    assert status == 400, head
    assert json.loads(body).get("error")
    assert mockgw.alive()
    client.send_fields("8,1,1")
    assert client.read_frame() == ["9", "1", "1"]
    assert mockgw.status()["api"]["port"] == mockgw.api_port


def test_keep_alive_serves_several_requests(mockgw):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", mockgw.admin_port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/v1/status")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Content-Type", "").startswith("application/json")
            json.loads(resp.read())
    finally:
        conn.close()
