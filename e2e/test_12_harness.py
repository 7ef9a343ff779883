"""The harness binary end to end: exit codes 0/1/2, --list, --only, the console verdict line,
the JSON and JUnit reports, the replay command, bad scenario files, and an external mockgw.

Self-contained: it runs $HARNESS_BIN (ctest sets it; else the newest build*/harness/harness) as
a subprocess, and starts its own mockgw ($MOCKGW_BIN) for the external-gateway test."""

import json
import os
import shlex
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAILING = ROOT / "tests" / "scenarios" / "fails-on-purpose.json"
BASIC_BUDGET_S = 10.0


def newest(pattern):
    found = [p for p in ROOT.glob(pattern) if p.is_file() and os.access(p, os.X_OK)]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


def harness_bin():
    path = os.environ.get("HARNESS_BIN") or newest("build*/harness/harness")
    if not path:
        pytest.fail("no harness binary: set HARNESS_BIN or build the harness target", pytrace=False)
    return path


def mockgw_bin():
    path = os.environ.get("MOCKGW_BIN") or newest("build*/mockgw/mockgw")
    if not path:
        pytest.fail("no mockgw binary: set MOCKGW_BIN or build the mockgw target", pytrace=False)
    return path


def harness(*args, timeout=60):
    return subprocess.run([harness_bin(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def last_line(text):
    lines = text.rstrip("\n").split("\n")
    return lines[-1]


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_help_prints_usage_and_exits_0():
    r = harness("--help")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: harness --level LEVEL | --scenario FILE...")
    for flag in ("--level", "--scenario", "--seed", "--gateway", "--admin", "--json", "--junit",
                 "--list", "--only", "--scenarios-dir"):
        assert flag in r.stdout


@pytest.mark.parametrize("args,message", [
    ((), "harness: give --level LEVEL or --scenario FILE"),
    (("--level", "quick"), "harness: --level quick: expected basic, standard or exhaustive"),
    (("--bogus",), "harness: unknown option --bogus"),
    (("--level",), "harness: --level needs a value"),
    (("--level", "basic", "--scenario", "x.json"),
     "harness: --level and --scenario exclude each other"),
    (("--seed", "-1", "--level", "basic"), "harness: --seed -1: expected an integer 0..2^53-1"),
    (("--gateway", "localhost:4002", "--level", "basic"),
     "harness: --gateway localhost:4002: expected HOST:PORT with a numeric host"),
    (("--admin", "127.0.0.1:4080", "--level", "basic"), "harness: --admin needs --gateway"),
    (("--level", "basic", "--only", "no-such-*"), "harness: no scenario matches --only"),
    (("--level", "basic", "extra"),
     "harness: unexpected argument 'extra' (scenario files go after --scenario)"),
])
def test_usage_errors_exit_2(args, message):
    r = harness(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.split("\n")[0] == message
    assert r.stdout == ""


def test_list_is_cumulative_and_runs_nothing():
    basic = harness("--list", "--level", "basic")
    standard = harness("--list", "--level", "standard")
    assert basic.returncode == 0 and standard.returncode == 0
    names_b = [line.split()[0] for line in basic.stdout.splitlines()]
    names_s = [line.split()[0] for line in standard.stdout.splitlines()]
    assert len(names_b) >= 5
    assert names_s[:len(names_b)] == names_b            # standard includes basic, first
    assert len(names_s) > len(names_b)
    assert "gateway-down" in names_b and "breaker-opens" in names_b
    assert all("/scenarios/basic/" in line for line in basic.stdout.splitlines())
    assert "DEPLOY" not in standard.stdout


def test_only_selects_by_name_pattern():
    r = harness("--list", "--level", "standard", "--only", "breaker-*")
    assert r.returncode == 0
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert names and all(n.startswith("breaker-") for n in names)


@pytest.mark.timeout_s(60)
def test_basic_level_passes_within_budget_with_reports(tmp_path):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    t0 = time.monotonic()
    r = harness("--level", "basic", "--json", js, "--junit", xml)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_line(r.stdout) == "DEPLOY: OK"
    assert took <= BASIC_BUDGET_S, f"basic took {took:.1f} s"
    report = json.loads(js.read_text())
    s = report["summary"]
    assert s["failed"] == 0 and s["passed"] == s["total"] >= 5 and s["deploy"] is True
    assert s["verdict"] == "DEPLOY: OK"
    assert report["level"] == "basic" and report["gateway"] == "in-process"
    for sc in report["scenarios"]:
        assert sc["result"] == "pass" and sc["failures"] == []
        assert sc["replay"].endswith(f"--seed {sc['seed']}")
    root = ET.parse(xml).getroot()
    assert root.tag == "testsuites"
    assert root.get("tests") == str(s["total"]) and root.get("failures") == "0"
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == s["total"]
    props = {p.get("name"): p.get("value") for p in cases[0].findall("./properties/property")}
    assert props["seed"] == "1" and "--scenario" in props["replay"]


@pytest.mark.timeout_s(120)
def test_standard_level_passes():
    r = harness("--level", "standard", timeout=110)
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_line(r.stdout) == "DEPLOY: OK"


def test_failing_scenario_is_reported_in_every_format(tmp_path):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    r = harness("--scenario", FAILING, "--seed", 3, "--json", js, "--junit", xml)
    assert r.returncode == 1, r.stdout + r.stderr
    assert last_line(r.stdout) == "DO NOT DEPLOY: 1 failed"
    assert "$.steps[0].expect.status: operation 1 of 1 ended \"timeout\"" in r.stdout
    assert "$.expect.journal.accepted: the gateway accepted 2 connections, expected 5" in r.stdout
    replay = [line.strip()[len("replay: "):] for line in r.stdout.splitlines()
              if line.strip().startswith("replay: ")]
    assert len(replay) == 1
    assert replay[0].endswith(f"--scenario {FAILING.resolve()} --seed 3")

    report = json.loads(js.read_text())
    assert report["summary"]["failed"] == 1 and report["summary"]["deploy"] is False
    [sc] = report["scenarios"]
    assert sc["result"] == "fail" and sc["seed"] == 3 and sc["replay"] == replay[0]
    assert any("client ids [1], expected [7]" in f for f in sc["failures"])

    root = ET.parse(xml).getroot()
    assert root.get("tests") == "1" and root.get("failures") == "1"
    [case] = root.findall("./testsuite/testcase")
    assert case.get("name") == "fails-on-purpose"
    failure = case.find("failure")
    assert failure is not None and "expected \"ok\"" in failure.get("message")
    props = {p.get("name"): p.get("value") for p in case.findall("./properties/property")}
    assert props["seed"] == "3" and props["replay"] == replay[0]

    # The replay command reproduces it: same verdict, same failures.
    again = subprocess.run(shlex.split(replay[0]), capture_output=True, text=True, timeout=60,
                           cwd="/")
    assert again.returncode == 1
    assert last_line(again.stdout) == "DO NOT DEPLOY: 1 failed"
    def failed_paths(out):  # the expectations that failed (messages carry timings in ms)
        return [line.split(":")[0] for line in out.splitlines() if line.startswith("  $.")]
    assert failed_paths(r.stdout) and failed_paths(r.stdout) == failed_paths(again.stdout)


def test_bad_scenario_file_exits_2_with_path_and_reason(tmp_path):
    bad = write(tmp_path, "bad.json", {"name": "bad", "levels": ["basic"],
                                       "steps": [{"core": "acquire",
                                                  "expect": {"within_ms": "soon"}}]})
    r = harness("--scenario", bad)
    assert r.returncode == 2
    assert r.stderr == f"harness: {bad}: $.steps[0].expect.within_ms: expected a non-negative integer\n"
    assert r.stdout == ""

    typo = write(tmp_path, "typo.json", {"name": "typo", "levels": ["basic"],
                                         "core": {"conect_timeout_ms": 5},
                                         "steps": [{"wait_ms": 1}]})
    r = harness("--scenario", typo)
    assert r.returncode == 2
    assert r.stderr == (f"harness: {typo}: $.core.conect_timeout_ms: unknown key "
                        "\"conect_timeout_ms\" (did you mean \"connect_timeout_ms\"?)\n")

    syntax = write(tmp_path, "syntax.json", '{"name": "x",\n "levels": [}')
    r = harness("--scenario", syntax)
    assert r.returncode == 2
    assert r.stderr == f"harness: {syntax}: invalid JSON at line 2, column 13\n"

    r = harness("--scenario", tmp_path / "missing.json")
    assert r.returncode == 2
    assert r.stderr == f"harness: {tmp_path / 'missing.json'}: No such file or directory\n"


def test_bad_file_in_the_scenarios_dir_stops_the_level(tmp_path):
    (tmp_path / "basic").mkdir()
    write(tmp_path / "basic", "010-ok.json", {"name": "ok", "levels": ["basic"],
                                              "steps": [{"wait_ms": 1}]})
    write(tmp_path / "basic", "020-wrong-dir.json", {"name": "wrong-dir", "levels": ["standard"],
                                                     "steps": [{"wait_ms": 1}]})
    r = harness("--level", "basic", "--scenarios-dir", tmp_path)
    assert r.returncode == 2
    assert "020-wrong-dir.json: $.levels: the lowest level is \"standard\", but the file is in basic/" \
        in r.stderr


class ExternalMockgw:
    def __init__(self, tmp_path):
        ready = tmp_path / "ready.json"
        self.proc = subprocess.Popen(
            [mockgw_bin(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("mockgw did not become ready")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        self.api, self.admin = info["api"], info["admin"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def external(tmp_path):
    gw = ExternalMockgw(tmp_path)
    yield gw
    gw.stop()


@pytest.mark.timeout_s(60)
def test_external_mockgw_through_its_admin_api(external, tmp_path):
    js = tmp_path / "r.json"
    r = harness("--level", "basic", "--gateway", f"127.0.0.1:{external.api}",
                "--admin", f"127.0.0.1:{external.admin}", "--json", js)
    report = json.loads(js.read_text())
    results = {sc["name"]: sc["result"] for sc in report["scenarios"]}
    # Scenarios with gateway settings need the in-process gateway; everything else runs there.
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_line(r.stdout) == "DEPLOY: OK"
    assert results["accept-never-answers"] == "pass"     # its rules went through PUT /v1/rules
    assert results["breaker-opens"] == "pass"
    assert report["gateway"] == f"127.0.0.1:{external.api}"
    assert f"--gateway 127.0.0.1:{external.api} --admin 127.0.0.1:{external.admin}" in \
        report["scenarios"][0]["replay"]


def test_external_gateway_without_admin_runs_plain_scenarios(external, tmp_path):
    plain = write(tmp_path, "plain.json", {
        "name": "plain", "levels": ["basic"],
        "steps": [{"core": "acquire", "count": 2, "concurrency": 1,
                   "expect": {"status": "ok", "client_ids": [1, 1]}}]})
    needs_admin = write(tmp_path, "admin.json", {
        "name": "needs-admin", "levels": ["basic"], "steps": [{"gateway": "drop_all"}]})
    r = harness("--scenario", plain, "--scenario", needs_admin,
                "--gateway", f"127.0.0.1:{external.api}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "needs the gateway's admin API (--admin HOST:PORT)" in r.stdout
    assert "1 passed, 0 failed, 1 skipped" in r.stdout
    assert last_line(r.stdout) == "DEPLOY: OK"

    only_skipped = harness("--scenario", needs_admin, "--gateway", f"127.0.0.1:{external.api}")
    assert only_skipped.returncode == 1
    assert last_line(only_skipped.stdout) == "DO NOT DEPLOY: 0 failed, none passed"


def test_gateway_down_without_anything_listening(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    down = write(tmp_path, "down.json", {
        "name": "down", "levels": ["basic"],
        "steps": [{"core": "acquire", "count": 3, "concurrency": 1, "deadline_ms": 3000,
                   "expect": {"status": "refused", "within_ms": 100}}]})
    t0 = time.monotonic()
    r = harness("--scenario", down, "--gateway", f"127.0.0.1:{port}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 < 5
