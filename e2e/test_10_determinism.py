"""Determinism (docs/script-format.md, "Determinism"): one generator seeded by --seed makes every
random choice, so the same seed and the same client behaviour give the same decisions, and a
different seed gives different ones.
"""

import json

from ibclient import wait_until

RULES = [
    {"name": "flip", "match": {"phase": "request", "probability": 0.5},
     "action": {"type": "error", "code": 504}},
    {"name": "lag", "match": {"phase": "request", "probability": 0.5},
     "action": {"type": "delay", "ms": 20, "jitter_ms": 15}},
]
N_REQUESTS = 40


def run_scenario(mockgw_factory, tmp_path, seed):
    """One mockgw, one client, the same 40 requests one after the other. Returns
    (decision trace from the journal, what the client saw)."""
    path = tmp_path / f"det-{seed}.json"
    if not path.exists():
        path.write_text(json.dumps({"rules": RULES}))
    m = mockgw_factory("--script", str(path), "--seed", str(seed))
    c = m.ready_client()
    seen = []
    for _ in range(N_REQUESTS):
        c.send_fields("8,1,1")  # reqIds: always answered at once, never paced
        f = c.read_frame(3.0)
        assert f in (["9", "1", "1"], ["4", "2", "-1", "504", "Not connected", ""]), f
        seen.append(f[0])
    c.close()
    m.wait_event("disconnect", conn=1)
    assert m.stop() == 0
    trace = []
    for e in m.journal():
        if e.get("event") == "fault":
            assert e["conn"] == 1 and e["phase"] == "request" and e["after_ms"] == 0, e
            trace.append(("fault", e["rule"], e["action"], e["phase"], e["draw"]))
        elif e.get("event") == "delay":
            trace.append(("delay", e["ms"]))
    return trace, seen


def test_same_seed_same_decisions(mockgw_factory, tmp_path):
    t1, seen1 = run_scenario(mockgw_factory, tmp_path, 42)
    t2, seen2 = run_scenario(mockgw_factory, tmp_path, 42)
    assert t1 == t2
    assert seen1 == seen2
    # Non-trivial: each rule fired for some requests and not for others.
    flips = [t for t in t1 if t[0] == "fault" and t[1] == "flip"]
    lags = [t for t in t1 if t[0] == "fault" and t[1] == "lag"]
    delays = [t[1] for t in t1 if t[0] == "delay"]
    assert 0 < len(flips) < N_REQUESTS, len(flips)
    assert 0 < len(lags) < N_REQUESTS, len(lags)
    assert seen1.count("4") == len(flips)
    assert len(delays) == len(lags) and all(5 <= d <= 35 for d in delays), delays
    assert len(set(delays)) > 1, "jitter never changed the delay"
    assert all(isinstance(t[4], float) and 0 <= t[4] < 0.5 for t in flips + lags), flips + lags


def test_different_seed_different_decisions(mockgw_factory, tmp_path):
    t1, _ = run_scenario(mockgw_factory, tmp_path, 42)
    t3, _ = run_scenario(mockgw_factory, tmp_path, 43)
    assert t1 != t3
    assert any(t[0] == "fault" for t in t3)


def garbage_bytes(mockgw_factory, tmp_path, seed):
    path = tmp_path / "garbage.json"
    path.write_text(json.dumps({"rules": [
        {"match": {"phase": "ready"}, "action": {"type": "garbage", "bytes": 32}}]}))
    m = mockgw_factory("--script", str(path), "--seed", str(seed))
    c = m.ready_client()
    return c.read_exact(32, timeout=2.0)


def test_garbage_bytes_follow_the_seed(mockgw_factory, tmp_path):
    a = garbage_bytes(mockgw_factory, tmp_path, 7)
    b = garbage_bytes(mockgw_factory, tmp_path, 7)
    other = garbage_bytes(mockgw_factory, tmp_path, 8)
    assert a == b
    assert a != other


def test_reset_restarts_the_generator(mockgw_factory, tmp_path):
    # POST /v1/reset goes back to the start-up script: the same client behaviour after it
    # must meet the same decisions as after start-up.
    path = tmp_path / "det-reset.json"
    path.write_text(json.dumps({"rules": RULES}))
    m = mockgw_factory("--script", str(path), "--seed", "5")

    def one_round():
        c = m.ready_client()
        kinds = []
        for _ in range(20):
            c.send_fields("8,1,1")
            kinds.append(c.read_frame(3.0)[0])
        c.close()
        wait_until(lambda: m.status()["connection_count"] == 0, 2.0, what="disconnect")
        return kinds, [(e["rule"], e["draw"]) for e in m.admin_journal()
                       if e.get("event") == "fault"]

    first = one_round()
    assert m.http("POST", "/v1/reset")[0] == 200
    second = one_round()
    assert first == second
