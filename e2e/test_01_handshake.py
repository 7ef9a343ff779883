"""Handshake, version negotiation and the start-up burst (IB_WIRE §2, §3, §7)."""

import re
import time

import pytest

from ibclient import IBClient, hello_bytes

# IB_WIRE §7, byte for byte.
GOLDEN_HELLO = bytes.fromhex("41504900 00000009 7631 35372e2e313738".replace(" ", ""))
GOLDEN_START_API = bytes.fromhex("00000008 3731 00 32 00 31 00 00".replace(" ", ""))
GOLDEN_BURST = (
    bytes.fromhex("0000000f") + b"15\x001\x00DU1234567\x00"
    + bytes.fromhex("00000006") + b"9\x001\x001\x00"
    + bytes.fromhex("00000036") + b"4\x002\x00-1\x002104\x00Market data farm connection is OK:usfarm\x00\x00"
    + bytes.fromhex("00000034") + b"4\x002\x00-1\x002106\x00HMDS data farm connection is OK:ushmds\x00\x00"
    + bytes.fromhex("00000039") + b"4\x002\x00-1\x002158\x00Sec-def data farm connection is OK:secdefnj\x00\x00"
)
GOLDEN_REQ_CURRENT_TIME = bytes.fromhex("00000005 3439 00 31 00".replace(" ", ""))

# "yyyyMMdd HH:mm:ss ZONE": the gateway host's local time and a zone name.
TIME_RE = re.compile(r"^(\d{8} \d{2}:\d{2}:\d{2}) ([A-Za-z][A-Za-z0-9+\-_/ ]*)$")


def check_connection_time(text):
    m = TIME_RE.match(text)
    assert m, f"connection time {text!r} is not 'yyyyMMdd HH:mm:ss ZONE'"
    then = time.mktime(time.strptime(m.group(1), "%Y%m%d %H:%M:%S"))  # local time, like mockgw
    assert abs(then - time.time()) < 10, f"connection time {text!r} is not now"


def test_golden_transcript_bytes(mockgw):
    assert len(GOLDEN_HELLO) == 17 and len(GOLDEN_BURST) == 19 + 10 + 58 + 56 + 61
    c = mockgw.client()
    c.send_raw(GOLDEN_HELLO)
    head = c.read_exact(4)
    payload = c.read_exact(int.from_bytes(head, "big"))
    assert payload.startswith(b"178\x00") and payload.endswith(b"\x00")
    fields = payload.split(b"\x00")[:-1]
    assert len(fields) == 2, fields
    check_connection_time(fields[1].decode())
    # Nothing may follow the version reply before START_API (IB_WIRE §8.2).
    c.expect_silence(0.3)
    c.send_raw(GOLDEN_START_API)
    assert c.read_exact(len(GOLDEN_BURST)) == GOLDEN_BURST
    c.expect_silence(0.2)  # the burst is exactly those five frames
    c.send_raw(GOLDEN_REQ_CURRENT_TIME)
    head = c.read_exact(4)
    payload = c.read_exact(int.from_bytes(head, "big"))
    m = re.fullmatch(rb"49\x001\x00(\d+)\x00", payload)
    assert m, payload
    assert abs(int(m.group(1)) - time.time()) < 5


def test_burst_fields(mockgw):
    c = mockgw.client()
    c.send_hello()
    assert c.read_version_reply()[0] == "178"
    c.start_api(1)
    burst = c.read_burst()
    assert burst == [
        ["15", "1", "DU1234567"],
        ["9", "1", "1"],
        ["4", "2", "-1", "2104", "Market data farm connection is OK:usfarm", ""],
        ["4", "2", "-1", "2106", "HMDS data farm connection is OK:ushmds", ""],
        ["4", "2", "-1", "2158", "Sec-def data farm connection is OK:secdefnj", ""],
    ]


def test_nothing_between_version_reply_and_start_api(mockgw):
    c = mockgw.client()
    c.send_hello()
    c.read_version_reply()
    c.expect_silence(0.3)
    c.start_api(7)
    assert c.read_frame() == ["15", "1", "DU1234567"]


def test_handshake_in_one_byte_writes(mockgw):
    c = mockgw.client()
    for b in hello_bytes("v157..178"):
        c.send_raw(bytes([b]))
    assert c.read_version_reply()[0] == "178"
    for b in GOLDEN_START_API:
        c.send_raw(bytes([b]))
    assert c.read_exact(len(GOLDEN_BURST)) == GOLDEN_BURST


def test_handshake_and_start_api_in_one_write(mockgw):
    # Some clients pipeline START_API right behind the hello; the reply must still be 2 fields.
    c = mockgw.client()
    c.send_raw(hello_bytes("v157..178") + GOLDEN_START_API)
    assert c.read_version_reply()[0] == "178"
    assert c.read_exact(len(GOLDEN_BURST)) == GOLDEN_BURST


@pytest.mark.parametrize("offered, expected", [
    ("v157..178", 178),   # ib_async / ib_insync
    ("v100..193", 178),   # @stoqey/ib, official Java 10.32
    ("v100..187", 178),   # official Python 10.30
    ("v100..176", 176),   # official Python 10.19
    ("v176", 176),        # min == max is sent as a single version
])
def test_version_negotiation(mockgw, offered, expected):
    c = mockgw.client()
    c.send_hello(offered)
    assert c.read_version_reply()[0] == str(expected)
    c.start_api(1)
    burst = c.read_burst()
    assert burst[0] == ["15", "1", "DU1234567"]
    assert burst[2] == ["4", "2", "-1", "2104", "Market data farm connection is OK:usfarm", ""]
    ev = mockgw.wait_event("hello", version=expected)
    assert ev["client_max"] == int(offered.split("..")[-1].lstrip("v"))


def test_server_version_163_error_frames_lack_json(mockgw_factory):
    m = mockgw_factory("--server-version", "163")
    c = m.client()
    c.send_hello("v100..193")
    assert c.read_version_reply()[0] == "163"
    c.start_api(1)
    burst = c.read_burst()
    # advancedOrderRejectJson exists from 166 on: below it the error frame has 5 fields.
    assert burst[2:] == [
        ["4", "2", "-1", "2104", "Market data farm connection is OK:usfarm"],
        ["4", "2", "-1", "2106", "HMDS data farm connection is OK:ushmds"],
        ["4", "2", "-1", "2158", "Sec-def data farm connection is OK:secdefnj"],
    ]
    c.send_fields("2,2,55")  # cancelMktData of an unknown id -> error 300, also without json
    assert c.read_frame() == ["4", "2", "55", "300", "Can't find EId with tickerId:55"]


def test_version_below_client_min_is_still_answered(mockgw):
    # A protobuf-only client (rust-ibapi 3.x): mockgw answers 178 and lets the client refuse.
    c = mockgw.client()
    c.send_hello("v213..225")
    assert c.read_version_reply()[0] == "178"
    ev = mockgw.wait_event("version_below_client_min")
    assert ev["version"] == 178 and ev["client_min"] == 213


def test_paceapi_option_accepted(mockgw):
    c = mockgw.client()
    c.send_hello("v157..178", options="+PACEAPI")
    assert c.read_version_reply()[0] == "178"
    c.start_api(1)
    assert [f[0] for f in c.read_burst()] == ["15", "9", "4", "4", "4"]
    ev = mockgw.wait_event("hello")
    assert ev["options"] == "+PACEAPI"


def test_accounts_flag(mockgw_factory):
    m = mockgw_factory("--accounts", "A,B")
    c = m.client()
    burst = c.handshake(client_id=3)
    assert burst[0] == ["15", "1", "A,B"]
    c.send_fields("17,1")  # reqManagedAccts
    assert c.read_frame() == ["15", "1", "A,B"]


def test_next_valid_id_flag(mockgw_factory):
    m = mockgw_factory("--next-valid-id", "1000")
    c = m.client()
    burst = c.handshake()
    assert burst[1] == ["9", "1", "1000"]
    c.send_fields("8,1,1")  # reqIds
    assert c.read_frame() == ["9", "1", "1000"]


def test_journal_records_the_handshake(mockgw):
    c = mockgw.ready_client(client_id=4)
    conn = mockgw.conn_id_of(c)
    mockgw.wait_event("ready", conn=conn)
    names = [e["event"] for e in mockgw.events() if e.get("conn") == conn]
    assert names[:4] == ["accept", "hello", "start_api", "ready"], names
    ins = mockgw.frames("in", conn=conn)
    assert ins[1]["msg_id"] == 71 and ins[1]["fields"] == ["71", "2", "4", ""]
    outs = mockgw.frames("out", conn=conn)
    assert [f["fields"][0] for f in outs[:6]] == ["178", "15", "9", "4", "4", "4"]


def test_requests_before_start_api_are_ignored(mockgw):
    c = mockgw.client()
    c.send_hello()
    c.read_version_reply()
    c.send_fields("49,1")  # before START_API: TWS answers nothing
    c.expect_silence(0.3)
    c.start_api(1)
    assert [f[0] for f in c.read_burst()] == ["15", "9", "4", "4", "4"]
    mockgw.wait_event("ignored", msg_id=49)


def test_two_clients_get_their_own_bursts(mockgw):
    a = IBClient(mockgw.api_port)
    b = IBClient(mockgw.api_port)
    mockgw.clients += [a, b]
    a.send_hello()
    b.send_hello()
    a.read_version_reply()
    b.read_version_reply()
    b.start_api(2)
    a.start_api(1)
    assert b.read_burst()[0] == ["15", "1", "DU1234567"]
    assert a.read_burst()[0] == ["15", "1", "DU1234567"]
