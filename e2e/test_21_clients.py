"""External clients judged by the harness (docs/external-clients.md): the shipped client
scenarios (scenarios/clients/) pass with our Python and Node example clients, catch the same
client's --naive mode with precise messages, and the harness stays in charge of the client
process: a client that ignores SIGTERM is killed, a missing program is named, an interrupted run
leaves nothing behind."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_12_harness import ROOT, harness_bin, interrupt, last_line, start_harness, write

SCENARIOS = sorted(str(p) for p in (ROOT / "scenarios" / "clients").glob("*.json"))
EXAMPLES = ROOT / "examples" / "clients"
PYTHON = f"/usr/bin/python3 {EXAMPLES / 'resilient_client.py'} --port {{port}} --client-id 1"
NODE = f"node {EXAMPLES / 'resilient_client.js'} --port {{port}} --client-id 1"


def run_clients(tmp_path, client=None, scenarios=SCENARIOS, timeout=240):
    report = tmp_path / "r.json"
    args = [harness_bin(), "--scenario", *scenarios, "--json", str(report)]
    if client is not None:
        args += ["--client", client]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    doc = json.loads(report.read_text())
    return r, {s["name"]: s for s in doc["scenarios"]}


def alive_with(marker):
    """Pids of live processes whose command line contains marker."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(d.name))
            except OSError:
                pass
    return found


@pytest.mark.timeout_s(300)
def test_the_python_example_passes_every_client_scenario(tmp_path):
    assert len(SCENARIOS) >= 6
    r, by_name = run_clients(tmp_path)  # the scenarios' own command: the Python example
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_line(r.stdout) == "DEPLOY: OK"
    for name, s in by_name.items():
        assert s["result"] == "pass" and s["client_exit"] == 0, s
        assert "summary: " in s["client_output"] and "state=ready" in s["client_output"], s
    assert "ready client_id=2" in by_name["client-id-in-use"]["client_output"]


@pytest.mark.timeout_s(300)
def test_the_node_example_passes_every_client_scenario(tmp_path):
    if shutil.which("node") is None:
        pytest.fail("node is not installed (scripts/setup.sh test installs it)", pytrace=False)
    r, by_name = run_clients(tmp_path, NODE)
    assert r.returncode == 0, r.stdout + r.stderr
    for s in by_name.values():
        assert s["result"] == "pass" and s["client_exit"] == 0, s
        assert "resilient_client.js" in s["replay"]


@pytest.mark.timeout_s(300)
def test_a_naive_client_is_caught_with_precise_messages(tmp_path):
    r, by_name = run_clients(tmp_path, PYTHON + " --naive")
    assert r.returncode == 1
    assert last_line(r.stdout) == "DO NOT DEPLOY: 3 failed", r.stdout
    failed = {n: " | ".join(s["failures"]) for n, s in by_name.items() if s["result"] == "fail"}
    assert set(failed) == {"client-id-in-use", "reset-at-accept-paced", "silent-after-ready"}
    # Same id again after 326, no pause: the journal shows it; it never got a session.
    msg = failed["client-id-in-use"]
    assert "times the next handshake after a 326 asked for the refused client id again" in msg
    assert "$.expect.journal.min_connect_interval_ms: connection " in msg
    assert "$.expect.client.exit_code: the client exited with 1, expected 0" in msg
    # No backoff after fast failures.
    assert "$.expect.journal.min_connect_interval_ms" in failed["reset-at-accept-paced"]
    # It never noticed the silent session (it says it is fine: exit 0, yet only 1 connection).
    msg = failed["silent-after-ready"]
    assert "$.expect.journal.accepted: the gateway accepted 1 connections, expected 3" in msg
    assert by_name["silent-after-ready"]["client_exit"] == 0
    assert "--naive" in by_name["silent-after-ready"]["replay"]  # the replay keeps --client


def client_scenario(tmp_path, command, **client):
    doc = {"name": "one-client", "levels": ["standard"], "client": {"command": command, **client},
           "steps": [{"wait_ms": 300}]}
    return str(write(tmp_path, "c.json", doc))


@pytest.mark.timeout_s(60)
def test_a_client_ignoring_sigterm_is_killed_in_bounded_time(tmp_path):
    marker = f"sleep 61.{os.getpid() % 1000}"
    sc = client_scenario(tmp_path, f"trap '' TERM; {marker}; echo never", timeout_ms=2000)
    t0 = time.monotonic()
    r, by_name = run_clients(tmp_path, scenarios=[sc], timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 1
    msg = " | ".join(by_name["one-client"]["failures"])
    assert "$.client: still running" in msg and "SIGTERM notwithstanding (timeout_ms 2000)" in msg
    assert took < 10, took  # 2 s timeout + 2 s to SIGKILL + the gateway's stop
    assert alive_with(marker) == [], "the client's process group outlived the run"
    assert by_name["one-client"]["client_exit"] == 128 + signal.SIGKILL


@pytest.mark.timeout_s(60)
def test_a_missing_program_is_named(tmp_path):
    sc = client_scenario(tmp_path, "no-such-client-program --port {port}", stop="exit")
    r, by_name = run_clients(tmp_path, scenarios=[sc], timeout=30)
    assert r.returncode == 1
    s = by_name["one-client"]
    assert s["client_exit"] == 127
    assert ("$.expect.client.exit_code: the client exited with 127, expected 0 (127: the shell "
            "did not find the command)") in s["failures"]
    assert "no-such-client-program" in s["client_output"]


@pytest.mark.timeout_s(60)
def test_placeholders_and_environment_reach_the_client(tmp_path):
    sc = client_scenario(tmp_path, "echo port={port} admin={admin_port} seed={seed} "
                         "env=$MOCKGW_PORT/$MOCKGW_ADMIN_PORT dir={scenario_dir}", stop="exit")
    r, by_name = run_clients(tmp_path, scenarios=[sc], timeout=30)
    assert r.returncode == 0, r.stdout
    out = by_name["one-client"]["client_output"].strip()
    fields = dict(kv.split("=", 1) for kv in out.split())
    assert fields["port"].isdigit() and fields["admin"].isdigit() and fields["seed"] == "1"
    assert fields["env"] == f"{fields['port']}/{fields['admin']}"
    assert fields["dir"] == str(tmp_path)


@pytest.mark.timeout_s(60)
def test_sigterm_to_the_harness_stops_the_client_too(tmp_path):
    marker = f"sleep 62.{os.getpid() % 1000}"
    sc = client_scenario(tmp_path, f"{marker}")
    doc = json.loads(Path(sc).read_text())
    doc["steps"] = [{"wait_ms": 30000}]
    Path(sc).write_text(json.dumps(doc))
    proc = start_harness("--scenario", sc)
    out, _, _ = interrupt(proc, ready=lambda: alive_with(marker))
    assert proc.returncode == 143
    assert last_line(out) == "DO NOT DEPLOY: interrupted by SIGTERM"
    assert alive_with(marker) == []


def test_client_usage_error_exits_2():
    r = subprocess.run([harness_bin(), "--client", " ", "--scenario", SCENARIOS[0]],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert r.stderr.startswith("harness: --client: the command is empty")
