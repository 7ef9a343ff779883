"""The fault engine's admin endpoints (docs/admin-api.md, docs/script-format.md): /v1/rules,
/v1/rules/{id}, /v1/actions/..., /v1/connections/{id}/..., /v1/state, /v1/reset and what
/v1/status shows of them. Every endpoint: the happy path, its effect on a real client, and every
error it can answer.
"""

import json
import socket
import threading
import time

import pytest

from ibclient import wait_until

JSON = {"Content-Type": "application/json"}
REQ_IDS = "8,1,1"
REQ_TIME = "49,1"
NEXT_VALID_ID = ["9", "1", "1"]
NOTICE_504 = ["4", "2", "-1", "504", "Not connected", ""]

ERR_504 = {"match": {"phase": "request", "msg": "reqIds"}, "action": {"type": "error", "code": 504}}
SILENT_ACCEPT = {"name": "mute", "match": {"phase": "accept"}, "action": {"type": "silent"}}
HOLD = {"match": {"phase": "start_api"}, "action": {"type": "hold"}}
HALF_CLOSE = {"match": {"phase": "ready"}, "action": {"type": "half_close"}}


# -- helpers ------------------------------------------------------------------------------
def start(mockgw_factory, tmp_path, rules=(), state=None, settings=None):
    doc = {"rules": list(rules)}
    if state:
        doc["state"] = state
    if settings:
        doc["settings"] = settings
    path = tmp_path / "script.json"
    path.write_text(json.dumps(doc))
    return mockgw_factory("--script", str(path))


def call(m, method, path, body=None, raw=None):
    """(status, parsed body); body is sent as JSON, raw as given."""
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    return m.http(method, path, body=data, headers=JSON if data is not None else None)


def ok(m, method, path, body=None, status=200):
    code, resp = call(m, method, path, body)
    assert code == status, (method, path, code, resp)
    return resp


def err(m, method, path, status, body=None, raw=None, contains=None):
    code, resp = call(m, method, path, body, raw)
    assert code == status, (method, path, code, resp)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str) and resp["error"], resp
    if contains:
        assert contains in resp["error"], resp
    return resp["error"]


def rules_of(m):
    return ok(m, "GET", "/v1/rules")


def events(m, name, **match):
    return [e for e in m.admin_journal()
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


def conn_of(m, conn_id):
    for c in m.status()["connections"]:
        if c["id"] == conn_id:
            return c
    return None


def refused(port, timeout_s=1.0):
    s = socket.socket()
    s.settimeout(timeout_s)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


# -- /v1/rules ----------------------------------------------------------------------------
def test_rules_start_empty(mockgw):
    assert rules_of(mockgw) == {"state": "normal", "rules": []}


def test_rules_show_the_startup_script(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [SILENT_ACCEPT, ERR_504], state="calm")
    body = rules_of(m)
    assert body["state"] == "calm"
    assert body["rules"] == [
        {"id": 1, "name": "mute", "match": {"phase": "accept"}, "action": {"type": "silent"},
         "hits": 0},
        {"id": 2, "name": "rule-2", "match": {"phase": "request", "msg": "reqIds"},
         "action": {"type": "error", "code": 504, "text": "Not connected", "id": -1},
         "hits": 0},
    ]


def test_post_rule(mockgw):
    created = ok(mockgw, "POST", "/v1/rules", ERR_504, status=201)
    assert created["id"] == 1 and created["hits"] == 0 and created["name"] == "rule-1"
    assert created["action"]["code"] == 504
    again = ok(mockgw, "POST", "/v1/rules", dict(ERR_504, name="second"), status=201)
    assert again["id"] == 2 and again["name"] == "second"
    assert [r["id"] for r in rules_of(mockgw)["rules"]] == [1, 2]
    assert events(mockgw, "rules", op="add")


def test_posted_rule_applies_to_existing_connection(mockgw):
    c = mockgw.ready_client()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    ok(mockgw, "POST", "/v1/rules", ERR_504, status=201)
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NOTICE_504
    st = mockgw.status()
    assert st["faults"]["rules"] == [{"id": 1, "name": "rule-1", "hits": 1}]


def test_put_rules_replaces_all(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [SILENT_ACCEPT])
    body = ok(m, "PUT", "/v1/rules", {"rules": [ERR_504, HOLD], "state": "storm"})
    assert body["state"] == "storm"
    assert [r["id"] for r in body["rules"]] == [2, 3]  # ids are given anew, never reused
    assert [r["action"]["type"] for r in body["rules"]] == ["error", "hold"]
    assert rules_of(m) == body
    assert ok(m, "GET", "/v1/state") == {"state": "storm"}
    # The silent-at-accept rule is gone (the version reply comes); the hold rule holds.
    c = m.client()
    c.send_hello()
    assert c.read_version_reply()[0] == "178"
    c.start_api(1)
    c.expect_silence(0.2)
    assert m.status()["connections"][0]["held"] is True


def test_put_rules_bare_array(mockgw):
    body = ok(mockgw, "PUT", "/v1/rules", [ERR_504])
    assert [r["action"]["type"] for r in body["rules"]] == ["error"]
    assert body["state"] == "normal"


def test_put_rules_is_atomic(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [ERR_504])
    c = m.ready_client()
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NOTICE_504  # hits = 1
    before = rules_of(m)
    bad = {"rules": [SILENT_ACCEPT, {"action": {"type": "explode"}}, HOLD], "state": "x"}
    e = err(m, "PUT", "/v1/rules", 400, bad)
    assert "$.rules[1].action.type" in e and "explode" in e, e
    e = err(m, "PUT", "/v1/rules", 400, [HOLD, {"match": {"phase": "nope"}, "action": {"type": "close"}}])
    assert "$[1].match.phase" in e, e
    assert rules_of(m) == before
    assert ok(m, "GET", "/v1/state") == {"state": "normal"}
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NOTICE_504  # the old rule still works


def test_delete_rules(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [ERR_504, HOLD])
    c = m.client()
    c.send_hello()
    c.read_version_reply()
    body = ok(m, "DELETE", "/v1/rules")
    assert body["rules"] == []
    c.start_api(1)
    assert [f[0] for f in c.read_burst()] == ["15", "9", "4", "4", "4"]
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert events(m, "rules", op="clear")


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("raw, contains", [
    ("", "needs a JSON body"),
    ("{\"rules\": [", "invalid JSON"),
    ("nul", "invalid JSON"),
])
def test_rules_bad_json(mockgw, method, raw, contains):
    err(mockgw, method, "/v1/rules", 400, raw=raw, contains=contains)
    assert rules_of(mockgw)["rules"] == []


@pytest.mark.parametrize("method, body, contains", [
    ("PUT", {"rules": 5}, "$.rules"),
    ("PUT", {"rulez": []}, "$.rulez"),
    ("PUT", {"rules": [], "state": 3}, "$.state"),
    ("PUT", "rules", "$"),
    ("POST", [ERR_504], "$"),
    ("POST", {"action": {"type": "close"}, "colour": "red"}, "$.colour"),
    ("POST", {"match": {"phase": "accept"}}, "action"),
    ("POST", {"match": {"phase": "accept"}, "action": {"type": "ignore"}}, "$.action.type"),
    ("POST", {"action": {"type": "delay", "ms": 10, "jitter_ms": 20}}, "$.action.jitter_ms"),
    ("POST", {"match": {"probability": 2}, "action": {"type": "close"}}, "$.match.probability"),
])
def test_rules_rejected_bodies(mockgw, method, body, contains):
    err(mockgw, method, "/v1/rules", 400, body, contains=contains)
    assert rules_of(mockgw)["rules"] == []


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS"])
def test_rules_wrong_method(mockgw, method):
    err(mockgw, method, "/v1/rules", 405)


# -- /v1/rules/{id} -----------------------------------------------------------------------
def test_rule_by_id(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [SILENT_ACCEPT, ERR_504])
    r2 = ok(m, "GET", "/v1/rules/2")
    assert r2["id"] == 2 and r2["action"]["code"] == 504
    new = {"name": "renamed", "match": {"phase": "request", "msg": "reqIds"},
           "action": {"type": "ignore"}, "times": 1}
    put = ok(m, "PUT", "/v1/rules/2", new)
    assert put["id"] == 2 and put["name"] == "renamed" and put["times"] == 1 and put["hits"] == 0
    assert [r["id"] for r in rules_of(m)["rules"]] == [1, 2]  # same place
    assert ok(m, "GET", "/v1/rules/2") == put
    body = ok(m, "DELETE", "/v1/rules/1")
    assert [r["id"] for r in body["rules"]] == [2]
    err(m, "GET", "/v1/rules/1", 404)
    # The edited rule works on a real client: the first reqIds is ignored, the next answered.
    c = m.ready_client()
    c.send_fields(REQ_IDS)
    c.expect_silence(0.2)
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert ok(m, "GET", "/v1/rules/2")["spent"] is True
    assert [e["op"] for e in events(m, "rules")] == ["update", "delete"]


def test_rule_read_back_can_be_sent_back(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [ERR_504])
    m.ready_client().request(REQ_IDS, 4)  # hits = 1
    r = ok(m, "GET", "/v1/rules/1")
    assert r["hits"] == 1
    again = ok(m, "PUT", "/v1/rules/1", r)
    assert again == dict(r, hits=0)
    created = ok(m, "POST", "/v1/rules", r, status=201)
    assert created["id"] == 2 and created["match"] == r["match"]


@pytest.mark.parametrize("rid", ["99", "0", "abc", "-1", "1x", "", "1/2"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_rule_by_id_not_found(mockgw_factory, tmp_path, rid, method):
    m = start(mockgw_factory, tmp_path, [ERR_504])
    err(m, method, f"/v1/rules/{rid}", 404, ERR_504 if method == "PUT" else None)
    assert [r["id"] for r in rules_of(m)["rules"]] == [1]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_rule_by_id_wrong_method(mockgw_factory, tmp_path, method):
    m = start(mockgw_factory, tmp_path, [ERR_504])
    err(m, method, "/v1/rules/1", 405, ERR_504)


@pytest.mark.parametrize("raw, contains", [
    ("", "needs a JSON body"),
    ("{", "invalid JSON"),
    (json.dumps({"action": {"type": "explode"}}), "$.action.type"),
    (json.dumps({"action": {"type": "close"}, "sequence": [{"type": "close"}]}), "not both"),
])
def test_rule_by_id_bad_put(mockgw_factory, tmp_path, raw, contains):
    m = start(mockgw_factory, tmp_path, [ERR_504])
    before = ok(m, "GET", "/v1/rules/1")
    err(m, "PUT", "/v1/rules/1", 400, raw=raw, contains=contains)
    assert ok(m, "GET", "/v1/rules/1") == before


# -- /v1/actions --------------------------------------------------------------------------
def test_action_drop_all(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [{"match": {"conn": 2, "phase": "accept"},
                                          "action": {"type": "silent"}}])
    a = m.ready_client()
    b = m.client()  # silent
    b.send_hello()
    m.wait_event("accept", conn=2)
    assert ok(m, "POST", "/v1/actions/drop-all") == {"ok": True, "action": "drop-all"}
    assert a.wait_eof(2.0) == b"" and not a.reset
    assert b.wait_eof(2.0) == b"" and not b.reset
    wait_until(lambda: m.status()["connection_count"] == 0, 2.0, what="no connections")
    c = m.ready_client()  # the listener is untouched
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_action_reset_all(mockgw):
    a = mockgw.ready_client()
    b = mockgw.ready_client(client_id=2)
    assert ok(mockgw, "POST", "/v1/actions/reset-all")["action"] == "reset-all"
    a.wait_eof(2.0)
    b.wait_eof(2.0)
    assert a.reset and b.reset


def test_action_refuse_then_accept(mockgw):
    a = mockgw.ready_client()
    ok(mockgw, "POST", "/v1/actions/refuse")
    assert refused(mockgw.api_port)
    api = mockgw.status()["api"]
    assert api["listener"] == "refuse" and api["accepting"] is False
    assert a.request(REQ_IDS, 9) == [NEXT_VALID_ID]  # existing clients are not touched
    ok(mockgw, "POST", "/v1/actions/accept")
    api = mockgw.status()["api"]
    assert api["listener"] == "normal" and api["accepting"] is True and \
        api["port"] == mockgw.api_port
    b = mockgw.ready_client(client_id=2)
    assert b.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert [e["mode"] for e in events(mockgw, "listener")] == ["refuse", "normal"]


def test_action_blackhole_then_accept(mockgw):
    ok(mockgw, "POST", "/v1/actions/blackhole")
    assert mockgw.status()["api"]["listener"] == "blackhole"
    c = mockgw.client()
    c.send_hello()
    c.expect_silence(0.5)
    ok(mockgw, "POST", "/v1/actions/accept")
    assert c.read_version_reply(2.0)[0] == "178"
    c.start_api(1)
    assert [f[0] for f in c.read_burst()] == ["15", "9", "4", "4", "4"]


def test_action_restart_default_body(mockgw):
    a = mockgw.ready_client()
    assert ok(mockgw, "POST", "/v1/actions/restart")["action"] == "restart"
    assert a.wait_eof(2.0) == b"" and not a.reset
    ev = events(mockgw, "restart")
    assert len(ev) == 1 and ev[0]["down_ms"] == 5000 and ev[0]["how"] == "close"
    assert refused(mockgw.api_port)
    assert mockgw.status()["api"]["listener"] == "restarting"
    assert mockgw.status()["counters"]["restarts"] == 1
    # POST /v1/reset ends the down time at once.
    ok(mockgw, "POST", "/v1/reset")
    c = mockgw.ready_client()
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_action_restart_with_body(mockgw):
    a = mockgw.ready_client()
    t0 = time.monotonic()
    ok(mockgw, "POST", "/v1/actions/restart", {"down_ms": 400, "how": "reset"})
    a.wait_eof(2.0)
    assert a.reset
    assert refused(mockgw.api_port)
    wait_until(lambda: not refused(mockgw.api_port, 0.5), 3.0, interval_s=0.05,
               what="listening again")
    assert time.monotonic() - t0 >= 0.38
    restarted = events(mockgw, "restarted")
    assert restarted and restarted[0]["listening"] is True
    assert mockgw.status()["api"]["listener"] == "normal"
    b = mockgw.ready_client()
    assert b.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_refuse_during_restart_down_time_sticks(mockgw):
    ok(mockgw, "POST", "/v1/actions/restart", {"down_ms": 300})
    ok(mockgw, "POST", "/v1/actions/refuse")
    time.sleep(0.5)  # the down time is over
    assert refused(mockgw.api_port), "the listener came back although the last word was refuse"
    assert mockgw.status()["api"]["listener"] == "refuse"


@pytest.mark.parametrize("body, contains", [
    ('{"down_ms": -1}', "$.down_ms"),
    ('{"down_ms": 1.5}', "$.down_ms"),
    ('{"down_ms": "5"}', "$.down_ms"),
    ('{"how": "explode"}', "$.how"),
    ('{"colour": 1}', "$.colour"),
    ('[1]', "$"),
    ('{"down_ms":', "invalid JSON"),
])
def test_action_restart_bad_body(mockgw, body, contains):
    c = mockgw.ready_client()
    err(mockgw, "POST", "/v1/actions/restart", 400, raw=body, contains=contains)
    assert not events(mockgw, "restart")
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert not refused(mockgw.api_port)


def test_action_release_all(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [HOLD])
    clients = []
    for cid in (1, 2):
        c = m.client()
        c.send_hello()
        c.read_version_reply()
        c.start_api(cid)
        clients.append(c)
    for c in clients:
        c.expect_silence(0.2)
    assert all(x["held"] for x in m.status()["connections"])
    ok(m, "POST", "/v1/actions/release-all")
    for c in clients:
        assert [f[0] for f in c.read_burst(0.5)] == ["15", "9", "4", "4", "4"]
    assert not any(x["held"] for x in m.status()["connections"])


def test_action_unknown(mockgw):
    err(mockgw, "POST", "/v1/actions/explode", 404, contains="explode")
    err(mockgw, "POST", "/v1/actions/", 404)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_action_wrong_method(mockgw, method):
    c = mockgw.ready_client()
    err(mockgw, method, "/v1/actions/drop-all", 405)
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]


# -- /v1/connections/{id}/{op} ------------------------------------------------------------
def test_connection_close(mockgw):
    a = mockgw.ready_client()
    b = mockgw.ready_client(client_id=2)
    cid = mockgw.conn_id_of(a)
    assert ok(mockgw, "POST", f"/v1/connections/{cid}/close") == {"ok": True, "action": "close"}
    assert a.wait_eof(2.0) == b"" and not a.reset
    assert b.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    mockgw.wait_event("close", conn=cid, reason="admin: close")


def test_connection_close_ends_a_silent_connection(mockgw_factory, tmp_path):
    # docs/script-format.md: a silent connection does not notice its client leaving; it ends
    # with POST /v1/connections/{id}/close (or a restart, a reset, mockgw's exit).
    m = start(mockgw_factory, tmp_path, [SILENT_ACCEPT])
    c = m.client()
    c.send_hello()
    m.wait_event("fault", conn=1)
    c.close()
    time.sleep(0.2)
    assert conn_of(m, 1)["phase"] == "silent"
    ok(m, "POST", "/v1/connections/1/close")
    wait_until(lambda: m.status()["connection_count"] == 0, 2.0, what="the connection gone")
    m.wait_event("disconnect", conn=1)


def test_connection_reset(mockgw):
    a = mockgw.ready_client()
    cid = mockgw.conn_id_of(a)
    ok(mockgw, "POST", f"/v1/connections/{cid}/reset")
    a.wait_eof(2.0)
    assert a.reset


def test_connection_silence(mockgw):
    a = mockgw.ready_client()
    cid = mockgw.conn_id_of(a)
    ok(mockgw, "POST", f"/v1/connections/{cid}/silence")
    a.send_fields(REQ_IDS)
    a.expect_silence(0.3)
    assert conn_of(mockgw, cid)["phase"] == "silent"
    assert events(mockgw, "silenced", conn=cid)


def test_connection_release(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [HOLD])
    a = m.client()
    a.send_hello()
    a.read_version_reply()
    a.start_api(1)
    b = m.client()
    b.send_hello()
    b.read_version_reply()
    b.start_api(2)
    a.expect_silence(0.2)
    ida, idb = m.conn_id_of(a), m.conn_id_of(b)
    assert conn_of(m, ida)["held"] is True
    ok(m, "POST", f"/v1/connections/{ida}/release")
    assert [f[0] for f in a.read_burst(0.5)] == ["15", "9", "4", "4", "4"]
    b.expect_silence(0.2)  # only that one
    assert conn_of(m, ida)["held"] is False and conn_of(m, idb)["held"] is True
    ok(m, "POST", f"/v1/connections/{ida}/release")  # nothing held: still fine


@pytest.mark.parametrize("path", [
    "/v1/connections/99/close",
    "/v1/connections/abc/close",
    "/v1/connections/0/close",
    "/v1/connections/1",
    "/v1/connections/1/explode",
    "/v1/connections/1/",
    "/v1/connections/",
])
def test_connection_not_found(mockgw, path):
    c = mockgw.ready_client()
    assert mockgw.conn_id_of(c) == 1
    err(mockgw, "POST", path, 404)
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]


def test_connection_wrong_method(mockgw):
    c = mockgw.ready_client()
    err(mockgw, "GET", "/v1/connections/1/close", 405)
    err(mockgw, "DELETE", "/v1/connections/1/reset", 405)
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]


# -- /v1/state ----------------------------------------------------------------------------
def test_state_get_put_post(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"match": {"phase": "request", "state": "down"}, "action": {"type": "error", "code": 504}}])
    c = m.ready_client()
    assert ok(m, "GET", "/v1/state") == {"state": "normal"}
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert ok(m, "PUT", "/v1/state", {"state": "down"}) == {"state": "down"}
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NOTICE_504
    assert m.status()["faults"]["state"] == "down"
    assert ok(m, "POST", "/v1/state", {"state": "up"}) == {"state": "up"}
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
    assert [e["state"] for e in events(m, "state")] == ["down", "up"]


@pytest.mark.parametrize("raw", [
    "", "{", '{"state": ""}', '{"state": 1}', '{"state": null}', '{"state": "a", "x": 1}',
    '["down"]', '"down"', "{}", '{"State": "down"}',
])
def test_state_bad_bodies(mockgw, raw):
    err(mockgw, "PUT", "/v1/state", 400, raw=raw)
    assert ok(mockgw, "GET", "/v1/state") == {"state": "normal"}


@pytest.mark.parametrize("path, body", [
    ("/v1/rules", {"rules": [], "state": ""}),      # PUT /v1/state refuses "" too
    ("/v1/state", {"state": "a\u0001b"}),          # names are printable ASCII in scripts
    ("/v1/state", {"state": "x" * 300}),            # ... and at most 128 characters
])
def test_state_names_are_validated_like_the_script_loader(mockgw, path, body):
    err(mockgw, "PUT", path, 400, body)
    assert ok(mockgw, "GET", "/v1/state") == {"state": "normal"}


@pytest.mark.parametrize("path", ["/v1/rules", "/v1/rules/1", "/v1/state"])
def test_head_is_get_without_a_body(mockgw_factory, tmp_path, path):
    # docs/admin-api.md: "A HEAD request gets the headers the GET would get".
    m = start(mockgw_factory, tmp_path, [ERR_504])
    code, body = m.http("HEAD", path)
    assert (code, body) == (200, None), (code, body)


def test_state_wrong_method(mockgw):
    err(mockgw, "DELETE", "/v1/state", 405)


# -- /v1/reset ----------------------------------------------------------------------------
def test_reset(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [ERR_504], state="calm")
    a = m.ready_client()
    a.send_fields(REQ_IDS)
    assert a.read_frame() == NOTICE_504
    startup = rules_of(m)
    ok(m, "DELETE", "/v1/rules")
    ok(m, "POST", "/v1/rules", HOLD, status=201)
    ok(m, "PUT", "/v1/state", {"state": "stormy"})
    ok(m, "POST", "/v1/actions/refuse")
    assert ok(m, "POST", "/v1/reset") == {"ok": True, "reset": "start-up script"}
    assert a.wait_eof(2.0) == b"" and not a.reset  # connections dropped
    after = rules_of(m)
    assert after["state"] == "calm"
    assert [(r["name"], r["match"], r["action"], r["hits"]) for r in after["rules"]] == \
        [(r["name"], r["match"], r["action"], 0) for r in startup["rules"]]
    st = m.status()
    assert st["api"]["listener"] == "normal"
    c = m.ready_client()  # the listener is back; this is ordinal 1 again
    assert m.conn_id_of(c) == 1
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NOTICE_504
    assert [x["id"] for x in m.status()["connections"]] == [1]


def test_reset_clears_the_journal(mockgw):
    a = mockgw.ready_client()
    a.request(REQ_IDS, 9)
    ok(mockgw, "POST", "/v1/reset")
    a.wait_eof(2.0)
    time.sleep(0.1)
    j = mockgw.admin_journal()
    assert j and j[0]["event"] == "reset", j[:3]
    # Nothing from before the reset may follow it: conn ids restart at 1, so an old
    # connection's entries would be taken for the new connection 1's.
    assert [e for e in j if e["conn"] != 0] == [], j
    b = mockgw.ready_client()
    assert mockgw.conn_id_of(b) == 1
    mine = [e["event"] for e in mockgw.admin_journal() if e["conn"] == 1]
    assert mine[:2] == ["accept", "hello"], mine


def test_reset_to_a_script_in_the_body(mockgw_factory, tmp_path):
    doc = {"settings": {"accounts": "DU111", "stale_client_id_ms": 50}, "state": "calm",
           "rules": [ERR_504]}
    path = tmp_path / "script.json"
    path.write_text(json.dumps(doc))
    m = mockgw_factory("--script", str(path), "--next-valid-id", "7")
    a = m.ready_client()
    body = {"settings": {"accounts": "DU222,DU333", "next_valid_id": 500,
                         "pace_current_time": False, "stale_client_id_ms": 700,
                         "max_clients": 3, "restart_every": {"every_ms": 60000, "down_ms": 10}},
            "state": "stormy", "rules": [HOLD]}
    assert ok(m, "POST", "/v1/reset", body) == {"ok": True, "reset": "request body"}
    assert a.wait_eof(2.0) == b""  # every connection dropped
    st = m.status()
    assert st["accounts"] == "DU222,DU333"
    assert st["rules"]["max_clients"] == 3 and st["rules"]["pace_current_time"] is False
    assert st["faults"]["state"] == "stormy"
    assert st["faults"]["stale_client_id_ms"] == 700
    assert st["faults"]["restart_every_ms"] == 60000
    assert [r["action"]["type"] for r in rules_of(m)["rules"]] == ["hold"]
    assert [x["event"] for x in m.admin_journal()][:1] == ["reset"]
    assert m.admin_journal()[0]["script"] == "body"
    # What a client sees: the body's accounts and order id (over the flag's 7), and its rule.
    c = m.client()
    c.send_hello()
    c.read_version_reply()
    c.start_api(1)
    c.expect_silence(0.3)  # held at START_API
    ok(m, "POST", "/v1/actions/release-all")
    burst = c.read_burst()
    assert burst[0] == ["15", "1", "DU222,DU333"] and burst[1] == ["9", "1", "500"], burst
    # A bare reset goes back to the start-up script and the start-up flags.
    assert ok(m, "POST", "/v1/reset") == {"ok": True, "reset": "start-up script"}
    st = m.status()
    assert st["accounts"] == "DU111"
    assert st["rules"]["max_clients"] == 32 and st["rules"]["pace_current_time"] is True
    assert st["faults"]["state"] == "calm" and st["faults"]["stale_client_id_ms"] == 50
    assert st["faults"]["restart_every_ms"] == 0
    assert m.admin_journal()[0]["script"] == "start-up"
    d = m.ready_client()
    d.send_fields(REQ_IDS)
    assert d.read_frame() == NOTICE_504
    e = m.ready_client(client_id=2)
    e.send_fields(REQ_TIME)
    assert e.read_frame()[0] == "49"


def test_reset_periodic_restart_from_the_body(mockgw):
    body = {"settings": {"restart_every": {"every_ms": 300, "down_ms": 100}}}
    ok(mockgw, "POST", "/v1/reset", body)
    a = mockgw.ready_client()
    assert a.wait_eof(3.0) == b""  # dropped by the periodic restart
    ok(mockgw, "POST", "/v1/reset")  # none at start-up: none now
    b = wait_until(lambda: _try_ready(mockgw), 3.0, what="the listener back")
    b.expect_silence(1.0)  # not dropped any more
    b.send_fields(REQ_IDS)
    assert b.read_frame() == NEXT_VALID_ID


def _try_ready(m):
    try:
        return m.ready_client()
    except (OSError, AssertionError):
        return None


@pytest.mark.parametrize("raw,status,contains", [
    ('{"rules": [{"match": {"phase": "accept"}, "action": {"type": "explode"}}]}', 400,
     "body: $.rules[0].action.type"),
    ('{"settings": {"max_clients": "many"}}', 400, "body: $.settings.max_clients"),
    ('{"settings": {"restart_every": {"every_ms": 100, "down_ms": 100}}}', 400,
     "body: $.settings.restart_every"),
    ('{"colour": 1}', 400, "body: $.colour"),
    ("[]", 400, "body: $"),
    ('{"rules": [', 400, "invalid JSON at byte"),
])
def test_reset_with_a_bad_script_changes_nothing(mockgw_factory, tmp_path, raw, status,
                                                 contains):
    m = start(mockgw_factory, tmp_path, [ERR_504], state="calm")
    a = m.ready_client()
    before = rules_of(m)
    seq = m.status()["journal_seq"]
    err(m, "POST", "/v1/reset", status, raw=raw, contains=contains)
    assert rules_of(m) == before
    assert m.status()["journal_seq"] >= seq  # not cleared
    a.send_fields(REQ_IDS)  # still connected, same rules
    assert a.read_frame() == NOTICE_504


def test_reset_wrong_method(mockgw):
    err(mockgw, "GET", "/v1/reset", 405)


# -- /v1/status ---------------------------------------------------------------------------
def test_status_shows_faults(mockgw_factory, tmp_path):
    m = start(mockgw_factory, tmp_path, [
        {"name": "mute-2", "match": {"phase": "accept", "conn": 2}, "action": {"type": "silent"}},
        {"name": "hold-3", "match": {"phase": "start_api", "client_id": 3},
         "action": {"type": "hold"}},
        {"name": "fin-4", "match": {"phase": "ready", "client_id": 4},
         "action": {"type": "half_close"}},
    ], state="calm")
    m.ready_client()  # conn 1
    silent = m.client()  # conn 2
    silent.send_hello()
    held = m.client()  # conn 3
    held.send_hello()
    held.read_version_reply()
    held.start_api(3)
    half = m.client()  # conn 4
    half.send_hello()
    half.read_version_reply()
    half.start_api(4)
    half.wait_eof(2.0)
    wait_until(lambda: m.status()["connection_count"] == 4, 2.0, what="4 connections")
    st = m.status()
    assert st["faults"]["state"] == "calm"
    assert st["faults"]["rules"] == [{"id": 1, "name": "mute-2", "hits": 1},
                                     {"id": 2, "name": "hold-3", "hits": 1},
                                     {"id": 3, "name": "fin-4", "hits": 1}]
    assert st["api"]["listener"] == "normal"
    conns = {c["id"]: c for c in st["connections"]}
    assert conns[1]["phase"] == "ready" and conns[1]["held"] is False
    assert conns[2]["phase"] == "silent"
    assert conns[3]["held"] is True and conns[3]["queued_out"] > 0
    assert conns[4]["phase"] == "closing"
    assert st["counters"]["faults"] >= 3
    ok(m, "POST", "/v1/actions/blackhole")
    assert m.status()["api"]["listener"] == "blackhole"


# -- many admin clients, big bodies -------------------------------------------------------
def test_concurrent_admin_clients(mockgw):
    c = mockgw.ready_client()
    results, errors = [], []

    def worker(n):
        try:
            for i in range(15):
                code, body = mockgw.http("GET", "/v1/status")
                results.append(code == 200 and isinstance(body, dict) and "faults" in body)
                rules = [dict(ERR_504, name=f"t{n}-{i}")]
                code, body = mockgw.http("PUT", "/v1/rules", body=json.dumps(rules),
                                         headers=JSON)
                results.append(code == 200 and body["rules"][0]["name"] == f"t{n}-{i}")
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert not errors, errors[:3]
    assert len(results) == 8 * 15 * 2 and all(results)
    final = rules_of(mockgw)["rules"]
    assert len(final) == 1 and final[0]["id"] == 8 * 15
    c.send_fields(REQ_IDS)
    assert c.read_frame() == NOTICE_504


def test_two_mib_body_is_refused(mockgw):
    c = mockgw.ready_client()
    body = b'{"rules":[' + b" " * (2 << 20) + b"]}"
    head = (f"PUT /v1/rules HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", mockgw.admin_port), timeout=5) as s:
        s.sendall(head)
        try:
            s.sendall(body)
        except OSError:
            pass  # the server may stop reading once it has answered
        raw = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                raw += chunk
        except OSError:
            pass
    assert raw.startswith(b"HTTP/1.1 413 "), raw[:200]
    assert rules_of(mockgw)["rules"] == []
    assert mockgw.status()["connection_count"] == 1
    assert c.request(REQ_IDS, 9) == [NEXT_VALID_ID]
