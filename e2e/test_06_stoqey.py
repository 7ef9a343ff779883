"""Compatibility with the real @stoqey/ib client (npm, pinned in e2e/compat/package-lock.json).

Nothing is mocked on the client side: compat/stoqey_flow.js drives IBApi against mockgw and
prints what it observed; anything unexpected that stoqey reports (its 505 "unprocessed data"
complaints, underruns, unknown ids) is a finding, so errors must be empty.
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
