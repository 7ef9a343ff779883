"""Compatibility with the real @stoqey/ib client (npm, pinned in e2e/compat/package-lock.json).

Nothing is mocked on the client side: compat/stoqey_flow.js drives IBApi against mockgw and
prints what it observed; anything unexpected that stoqey reports (its 505 "unprocessed data"
complaints, underruns, unknown ids) is a finding, so errors must be empty.

Against the fault presets (--fault, and the cookbook's 1100/1102 flap) the flow only listens
("watch" mode) and the tests pin down exactly what stoqey reports to an app: which events and
errors, in which order, or nothing at all.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

COMPAT = Path(__file__).resolve().parent / "compat"
FLOW = COMPAT / "stoqey_flow.js"
TEXT_326 = "Unable to connect as the client id is already in use. Retry with a unique client id."


@pytest.fixture(scope="module")
def node():
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed (scripts/setup.sh test installs it)", pytrace=False)
    if not (COMPAT / "node_modules" / "@stoqey" / "ib" / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("e2e/compat/node_modules is missing and npm is not installed",
                        pytrace=False)
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=COMPAT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"npm ci in {COMPAT} failed: {r.stderr[-2000:]}"
    return path


def run_flow(node, port, client_id, mode):
    r = subprocess.run([node, str(FLOW), str(port), str(client_id), mode], cwd=COMPAT,
                       capture_output=True, text=True, timeout=30,
                       env={**os.environ, "NODE_NO_WARNINGS": "1"})
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert lines, f"stoqey_flow printed no JSON (rc {r.returncode}): {r.stdout!r} {r.stderr!r}"
    seen = json.loads(lines[-1])
    assert r.returncode == 0, f"stoqey_flow failed at step {seen.get('failed_step')}: {seen}"
    return seen


@pytest.mark.timeout_s(40)
def test_stoqey_flow(node, mockgw):
    seen = run_flow(node, mockgw.api_port, 3, "flow")
    assert seen["errors"] == [], f"stoqey reported errors: {seen['errors']}"
    assert seen["server_version"] == 178
    assert seen["connected"] is True
    assert seen["managed_accounts"] == "DU1234567"
    assert seen["next_valid_id"] == 1
    assert [code for code, _ in seen["info"]] == [2104, 2106, 2158]
    assert abs(seen["current_time"] - time.time()) < 10
    assert len(seen["contract_details"]) == 1
    cd = seen["contract_details"][0]
    assert cd["con_id"] == 265598 and cd["symbol"] == "AAPL" and cd["req_id"] == 11
    assert cd["long_name"] == "APPLE INC" and cd["time_zone_id"] == "US/Eastern"
    assert seen["contract_details_end"] == 11
    assert len(seen["bars"]) >= 1
    for bar in seen["bars"]:
        assert bar["req_id"] == 12
        assert bar["time"].endswith(" US/Eastern"), bar
        assert bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"]) \
            <= bar["high"], bar
    end = seen["historical_end"]
    assert end["req_id"] == 12 and end["marker"].startswith("finished-"), end
    # stoqey offered v100..193 and sent START_API with its client id.
    hello = mockgw.wait_event("hello", client_max=193)
    assert hello["client_min"] == 100 and hello["version"] == 178
    mockgw.wait_event("start_api", client_id=3)
    mockgw.wait_event("disconnect", client_id=3)  # it disconnected cleanly at the end
    assert not mockgw.events("bad_input") and not mockgw.events("bad_request")


@pytest.mark.timeout_s(40)
def test_stoqey_duplicate_client_id(node, mockgw):
    holder = mockgw.ready_client(client_id=9)
    seen = run_flow(node, mockgw.api_port, 9, "dup")
    # id -1 errors arrive as "info" in stoqey; nothing may arrive as "error".
    assert seen["info"] == [[326, TEXT_326]], seen
    assert seen["errors"] == [], seen
    assert seen["disconnected"] is True
    assert seen["next_valid_id"] is None and seen["managed_accounts"] is None
    assert seen["events"].index("info") < seen["events"].index("disconnected")
    mockgw.wait_event("client_id_in_use", client_id=9)
    holder.send_fields("8,1,1")
    assert holder.read_frame() == ["9", "1", "1"]


@pytest.mark.timeout_s(40)
@pytest.mark.parametrize("version", [193, 176, 166, 163, 124, 100])
def test_stoqey_flow_at_other_server_versions(node, mockgw_factory, version):
    # stoqey decodes each message by the negotiated version: every layout branch mockgw has
    # (error json < 166, contractDetails < 164, historicalData < 124, ...) must match it.
    m = mockgw_factory("--server-version", str(version))
    seen = run_flow(node, m.api_port, 4, "flow")
    assert seen["server_version"] == version
    assert seen["errors"] == [], f"stoqey reported errors at {version}: {seen['errors']}"
    assert [code for code, _ in seen["info"]] == [2104, 2106, 2158]
    assert [cd["con_id"] for cd in seen["contract_details"]] == [265598]
    assert seen["contract_details"][0]["long_name"] == "APPLE INC"
    assert len(seen["bars"]) >= 1 and seen["historical_end"]["req_id"] == 12


# -- the fault presets (docs/script-format.md "Presets"): what stoqey reports ----------------
FARM_OK = [2104, 2106, 2158]
TEXT_1100 = "Connectivity between IBKR and Trader Workstation has been lost."
TEXT_1102 = ("Connectivity between IBKR and Trader Workstation has been restored - data "
             "maintained.")


def watch(node, port, client_id, ms):
    """stoqey connects and only listens for ms (or until 100 ms after it reports the
    disconnect): everything it reported, with a timeline [[ms, event, code]]."""
    return run_flow(node, port, client_id, f"watch={ms}")


def names(seen):
    return [name for _, name, _ in seen["timeline"]]


def at(seen, name, code=None):
    """ms since connect() of the first timeline entry called name (with code)."""
    return next(ms for ms, n, c in seen["timeline"] if n == name and (code is None or c == code))


@pytest.mark.timeout_s(40)
def test_stoqey_preset_silent(node, mockgw_factory):
    # The gateway that accepts and never answers: stoqey reports nothing at all, not even an
    # error (it has no handshake timeout of its own): the app has to time out by itself.
    m = mockgw_factory(fault="silent")
    seen = watch(node, m.api_port, 1, 1500)
    assert seen["timeline"] == [] and seen["errors"] == [] and seen["info"] == [], seen
    assert seen["connected"] is False and seen["disconnected"] is False
    m.wait_event("fault", action="silent", phase="accept")
    assert not m.events("hello")


@pytest.mark.timeout_s(40)
def test_stoqey_preset_silent_after_handshake(node, mockgw_factory):
    # stoqey says "connected" as soon as the version reply arrives: with START_API unanswered
    # it reports connected and then nothing (no nextValidId, no error).
    m = mockgw_factory(fault="silent-after-handshake")
    seen = watch(node, m.api_port, 1, 1500)
    assert names(seen) == ["connected"], seen["timeline"]
    assert seen["server_version"] == 178 and seen["next_valid_id"] is None
    assert seen["errors"] == [] and seen["disconnected"] is False
    m.wait_event("fault", action="silent", phase="version_sent")


@pytest.mark.timeout_s(40)
def test_stoqey_preset_refuse_client_id_1(node, mockgw_factory):
    m = mockgw_factory(fault="refuse-client-id=1")
    seen = run_flow(node, m.api_port, 1, "dup")
    assert seen["info"] == [[326, TEXT_326]] and seen["errors"] == [], seen
    assert names(seen) == ["connected", "info", "disconnected"], seen["timeline"]
    assert seen["next_valid_id"] is None and seen["managed_accounts"] is None
    m.wait_event("client_id_in_use", client_id=1, held_by="fault")
    other = watch(node, m.api_port, 2, 500)  # only id 1 is refused
    assert other["next_valid_id"] == 1 and other["errors"] == [], other


@pytest.mark.timeout_s(40)
def test_stoqey_preset_drop_after_ready(node, mockgw_factory):
    # A FIN 300 ms after the start-up burst: stoqey reports "disconnected" and no error.
    m = mockgw_factory(fault="drop-after-ready=300")
    seen = watch(node, m.api_port, 1, 3000)
    assert seen["next_valid_id"] == 1 and seen["managed_accounts"] == "DU1234567"
    assert [code for code, _ in seen["info"]] == FARM_OK
    assert seen["errors"] == [] and seen["disconnected"] is True, seen
    assert names(seen)[-1] == "disconnected"
    assert at(seen, "disconnected") - at(seen, "nextValidId") >= 250, seen["timeline"]
    m.wait_event("fault_applied", action="close", phase="ready")


@pytest.mark.timeout_s(40)
def test_stoqey_preset_reset_after_ready(node, mockgw_factory):
    # An RST 300 ms after the burst: stoqey reports error 502 (CONNECT_FAIL, id -1) with node's
    # "read ECONNRESET", then "disconnected".
    m = mockgw_factory(fault="reset-after-ready=300")
    seen = watch(node, m.api_port, 1, 3000)
    assert seen["next_valid_id"] == 1
    assert seen["errors"] == [[502, -1, "read ECONNRESET"]], seen
    assert names(seen)[-2:] == ["error", "disconnected"], seen["timeline"]
    assert at(seen, "error") - at(seen, "nextValidId") >= 250, seen["timeline"]
    m.wait_event("fault_applied", action="reset", phase="ready")


@pytest.mark.timeout_s(40)
def test_stoqey_preset_half_ready(node, mockgw_factory):
    # managedAccounts and the farm notices but no nextValidId: stoqey is connected and reports
    # no error; an app that waits for nextValidId waits for ever.
    m = mockgw_factory(fault="half-ready")
    seen = watch(node, m.api_port, 1, 1000)
    assert seen["managed_accounts"] == "DU1234567" and seen["next_valid_id"] is None, seen
    assert [code for code, _ in seen["info"]] == FARM_OK
    assert seen["errors"] == [] and seen["disconnected"] is False
    m.wait_event("half_ready", client_id=1)


@pytest.mark.timeout_s(40)
def test_stoqey_preset_refuse(node, mockgw_factory):
    # The listener is closed: stoqey reports error 502 "connect ECONNREFUSED", then
    # "disconnected" although it never was connected.
    m = mockgw_factory(fault="refuse")
    seen = watch(node, m.api_port, 1, 1500)
    assert seen["errors"] == [[502, -1, f"connect ECONNREFUSED 127.0.0.1:{m.api_port}"]], seen
    assert names(seen) == ["error", "disconnected"] and seen["connected"] is False
    assert not m.events("accept")


def scaled_script(tmp_path, name, factor):
    """A cookbook script (mockgw/scripts/) with every *_ms value multiplied by factor."""
    def scale(x):
        if isinstance(x, dict):
            return {k: (round(v * factor) if k.endswith("_ms") and isinstance(v, int) else
                        scale(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [scale(v) for v in x]
        return x

    doc = json.loads((COMPAT.parent.parent / "mockgw" / "scripts" / name).read_text())
    path = tmp_path / name
    path.write_text(json.dumps(scale(doc)))
    return doc, path


@pytest.mark.timeout_s(40)
def test_stoqey_connectivity_flap_1100_1102(node, mockgw_factory, tmp_path):
    # Cookbook 060 at 1/100 of its timings: 1100 at 150 ms after ready, then 1102, 1100, 1102
    # 450, 1200 and 1500 ms after that. stoqey reports each as "info" (id -1), in order, and
    # stays connected: it is up to the app to act on 1100.
    doc, path = scaled_script(tmp_path, "060-connectivity-flap-1100-1102.json", 0.01)
    action = doc["rules"][0]["action"]
    due = [action["after_ms"] / 100] + [action["after_ms"] / 100 + t["after_ms"] / 100
                                         for t in action["then"]]
    m = mockgw_factory("--script", str(path))
    seen = watch(node, m.api_port, 1, int(due[-1]) + 800)
    assert seen["errors"] == [] and seen["disconnected"] is False, seen
    assert seen["info"][3:] == [[1100, TEXT_1100], [1102, TEXT_1102],
                                [1100, TEXT_1100], [1102, TEXT_1102]], seen["info"]
    ready = at(seen, "nextValidId")
    times = [ms - ready for ms, n, c in seen["timeline"] if n == "info" and c in (1100, 1102)]
    for got, want in zip(times, due):
        assert want - 30 <= got <= want + 700, (times, due)
