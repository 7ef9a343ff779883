"""The harness binary end to end: exit codes 0/1/2, --list, --only, the console verdict line,
the JSON and JUnit reports, the replay command, bad scenario files, and an external mockgw.

Self-contained: it runs $HARNESS_BIN (ctest sets it; else the newest build*/harness/harness) as
a subprocess, and starts its own mockgw ($MOCKGW_BIN) for the external-gateway test."""

import contextlib
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
    assert r.stdout.startswith("usage: harness --level LEVEL | --scenario FILE [FILE...]")
    for flag in ("--level", "--scenario", "--seed", "--gateway", "--admin", "--json", "--junit",
                 "--list", "--only", "--scenarios-dir", "--client", "130/143"):
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
    def __init__(self, tmp_path, nice=0):
        ready = tmp_path / "ready.json"
        self.proc = subprocess.Popen(
            [mockgw_bin(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=(lambda: os.nice(nice)) if nice else None)
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
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_line(r.stdout) == "DEPLOY: OK"
    assert set(results.values()) == {"pass"}, results  # none skipped
    assert results["accept-never-answers"] == "pass"     # its script went in POST /v1/reset
    assert results["breaker-opens"] == "pass"
    assert report["gateway"] == f"127.0.0.1:{external.api}"
    assert f"--gateway 127.0.0.1:{external.api} --admin 127.0.0.1:{external.admin}" in \
        report["scenarios"][0]["replay"]


@pytest.mark.timeout_s(60)
def test_external_mockgw_takes_the_scenarios_gateway_settings(external):
    """A scenario's gateway settings reach an external mockgw in POST /v1/reset's body; the
    reset at the end puts its start-up settings back."""
    scenario = ROOT / "scenarios" / "standard" / "070-stale-session-holds-id.json"
    assert "stale_client_id_ms" in scenario.read_text()
    r = harness("--scenario", scenario, "--gateway", f"127.0.0.1:{external.api}",
                "--admin", f"127.0.0.1:{external.admin}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 0 failed, 0 skipped" in r.stdout, r.stdout
    code, st, _ = http_get(external.admin, "/v1/status")
    assert code == 200
    assert st["faults"]["stale_client_id_ms"] == 0, st["faults"]
    assert st["faults"]["rules"] == [], st["faults"]


@pytest.mark.timeout_s(120)
def test_drop_steps_wait_for_the_drop_on_a_busy_external_gateway(tmp_path):
    """A restart's answer leaves before its FINs (they go out on the gateway's next loop turn).
    With the gateway starved of CPU (niced, two busy processes of ours), the step used to end
    before the FIN came and the next acquire got the dead idle connection in 0 ms (28 of 40
    runs failed); the step now ends once the gateway lists none of its old connections."""
    gw = ExternalMockgw(tmp_path, nice=19)
    hogs = [subprocess.Popen(["/usr/bin/python3", "-c", "while True: pass"]) for _ in range(2)]
    try:
        scenario = ROOT / "scenarios" / "standard" / "130-recovery-after-restart.json"
        results = [harness("--scenario", scenario, "--gateway", f"127.0.0.1:{gw.api}",
                           "--admin", f"127.0.0.1:{gw.admin}") for _ in range(12)]
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        gw.stop()
    failed = [r.stdout for r in results if r.returncode != 0]
    assert not failed, failed[0]


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


# ---- generators, shrinking, the soak ---------------------------------------------------------

SHRINKS = ROOT / "tests" / "scenarios" / "shrinks-on-purpose.json"
LEAKS = ROOT / "tests" / "scenarios" / "soak-leaks-on-purpose.json"


def replay_lines(out):
    return [line.strip()[len("replay: "):] for line in out.splitlines()
            if line.strip().startswith("replay: ")]


def test_help_names_the_new_options_and_the_probe():
    r = harness("--help")
    assert r.returncode == 0
    assert "harness probe HOST:PORT [--serve [ADDR:]PORT] [--json]" in r.stdout
    assert "--artifacts DIR" in r.stdout and "--mockgw FILE" in r.stdout


@pytest.mark.parametrize("args,message", [
    (("--level", "basic", "--artifacts", "/nonexistent"),
     "harness: --artifacts /nonexistent: not a directory"),
    (("--level", "basic", "--mockgw", "/nonexistent"),
     "harness: --mockgw /nonexistent: not an executable file"),
    (("--level", "basic", "--artifacts"), "harness: --artifacts needs a value"),
])
def test_new_option_usage_errors_exit_2(args, message):
    r = harness(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.split("\n")[0] == message


def test_list_exhaustive_has_generators_and_the_soak():
    r = harness("--list", "--level", "exhaustive")
    assert r.returncode == 0
    names = [line.split()[0] for line in r.stdout.splitlines()]
    for name in ("random-schedules", "random-schedules-crowded", "random-schedules-validation",
                 "soak", "200-concurrent-acquirers", "restart-storm",
                 "zombies-detected-and-closed"):
        assert name in names


@pytest.mark.timeout_s(60)
def test_generator_failure_is_shrunk_written_and_replayed(tmp_path):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    r = harness("--scenario", SHRINKS, "--artifacts", tmp_path, "--json", js, "--junit", xml)
    assert r.returncode == 1, r.stdout + r.stderr
    assert last_line(r.stdout) == "DO NOT DEPLOY: 1 failed"
    assert "$.expect.journal.events.client_id_in_use: 1 in the journal, expected 0" in r.stdout
    assert "shrunk from " in r.stdout
    # Minimal: the 326 fault once, and one plain acquire.
    [minimal] = [line for line in r.stdout.splitlines() if "minimal schedule: " in line]
    steps = minimal.split("minimal schedule: ", 1)[1].split("; ")
    assert len(steps) == 2, minimal
    assert steps[0] == "0: fault refuse_client_id times=1"
    assert steps[1].startswith("1: op acquire count=1 concurrency=1 ")
    assert "async" not in steps[1] and "keep" not in steps[1]

    [replay] = replay_lines(r.stdout)
    artifact = Path(shlex.split(replay)[2])
    assert artifact.parent == tmp_path and artifact.exists()
    doc = json.loads(artifact.read_text())
    generated = [s for s in doc["steps"] if not s.get("note", "").startswith(("heal", "the gateway"))]
    assert len(generated) == 2
    assert generated[0]["body"]["action"]["type"] == "refuse_client_id"
    assert generated[1]["core"] == "acquire" and generated[1]["count"] == 1
    assert doc["steps"][-1]["core"] == "recover"
    assert replay.endswith(f"--seed {doc['seed']}")

    report = json.loads(js.read_text())
    [sc] = report["scenarios"]
    assert sc["result"] == "fail" and sc["artifact"] == str(artifact)
    assert sc["replay"] == replay and sc["schedules"] >= 1
    [case] = ET.parse(xml).getroot().findall("./testsuite/testcase")
    props = {p.get("name"): p.get("value") for p in case.findall("./properties/property")}
    assert props["artifact"] == str(artifact) and props["replay"] == replay

    # The written schedule fails again, the same way.
    again = subprocess.run(shlex.split(replay), capture_output=True, text=True, timeout=60, cwd="/")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "$.expect.journal.events.client_id_in_use: 1 in the journal, expected 0" in again.stdout


@pytest.mark.timeout_s(60)
def test_generator_same_seed_same_schedules(tmp_path):
    def first_failure(seed, sub):
        d = tmp_path / sub
        d.mkdir()
        r = harness("--scenario", SHRINKS, "--seed", seed, "--artifacts", d)
        assert r.returncode == 1, r.stdout
        [line] = [l for l in r.stdout.splitlines() if l.strip().startswith("schedule ")]
        return line.strip(), sorted(p.name for p in d.iterdir())
    a, b = first_failure(7, "a"), first_failure(7, "b")
    assert a == b                              # the same schedule fails, written under the same name
    assert a[1] == [f"shrinks-on-purpose-seed7-schedule{a[0].split()[1]}.json"]


@pytest.mark.timeout_s(60)
def test_small_generator_passes(tmp_path):
    gen = write(tmp_path, "gen.json", {
        "name": "small-gen", "levels": ["exhaustive"],
        "core": {"max_size": 2, "connect_timeout_ms": 100, "client_id_pause_ms": 10,
                 "quarantine_ms": 100, "breaker": {"failure_threshold": 3, "open_ms": 100}},
        "generate": {"schedules": 15, "steps_per_schedule": 5, "deadline_ms": 150,
                     "max_wait_ms": 20, "max_after_ms": 40, "max_down_ms": 60}})
    r = harness("--scenario", gen, "--seed", 4)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "15 schedules, 0 failed" in r.stdout
    assert last_line(r.stdout) == "DEPLOY: OK"


@pytest.mark.timeout_s(60)
def test_soak_fails_on_a_descriptor_leak():
    r = harness("--scenario", LEAKS)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "$.soak: open descriptors grew from " in r.stdout
    assert last_line(r.stdout) == "DO NOT DEPLOY: 1 failed"


# ---- probe -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    ((), "harness probe: give the gateway as HOST:PORT"),
    (("localhost:4002",), "harness probe: localhost:4002: expected HOST:PORT with a numeric host"),
    (("127.0.0.1:4002", "--threshold", "101"),
     "harness probe: --threshold 101: expected an integer 0..100"),
    (("127.0.0.1:4002", "--timeout-ms", "0"),
     "harness probe: --timeout-ms 0: expected an integer 1..600000"),
    (("127.0.0.1:4002", "--serve", "nowhere"),
     "harness probe: --serve nowhere: expected [ADDR:]PORT with a numeric ADDR"),
    (("127.0.0.1:4002", "--bogus"), "harness probe: unknown option --bogus"),
    (("127.0.0.1:4002", "extra"), "harness probe: unexpected argument 'extra'"),
])
def test_probe_usage_errors_exit_2(args, message):
    r = harness("probe", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.split("\n")[0] == message
    assert r.stdout == ""


def test_probe_help():
    r = harness("probe", "--help")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: harness probe HOST:PORT")
    for endpoint in ("/api/v1/ib/resilience", "/api/v1/ib/health", "/api/v1/ib/status"):
        assert endpoint in r.stdout


def test_probe_once_healthy_gateway(external):
    r = harness("probe", f"127.0.0.1:{external.api}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"gateway 127.0.0.1:{external.api}: acquire ok in ")
    assert last_line(r.stdout) == "HEALTHY (threshold 75)"
    r = harness("probe", f"127.0.0.1:{external.api}", "--json", "--threshold", "90")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["score"]["total"] >= 90 and doc["breaker"]["state"] == "closed"
    assert doc["probe"] == {**doc["probe"], "acquire": "ok", "error": None, "threshold": 90,
                            "healthy": True, "gateway": f"127.0.0.1:{external.api}"}
    assert doc["client_ids"]["first"] == 99


def test_probe_once_gateway_down_exits_1():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    r = harness("probe", f"127.0.0.1:{port}", "--json", "--timeout-ms", "2000")
    assert r.returncode == 1, r.stdout + r.stderr
    assert time.monotonic() - t0 < 5
    doc = json.loads(r.stdout)
    assert doc["probe"]["acquire"] == "refused" and doc["probe"]["healthy"] is False
    assert doc["score"]["total"] < 75


def http_get(port, path, method="GET"):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path)
        resp = c.getresponse()
        body = resp.read()
        return resp.status, (json.loads(body) if body else None), resp.getheader("Content-Type")
    finally:
        c.close()


def wait_until(cond, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@contextlib.contextmanager
def serving_probe(tmp_path):
    """(external mockgw, `harness probe --serve` on it, the probe's port), healthy; both
    stopped at the end."""
    gw = ExternalMockgw(tmp_path)
    proc = subprocess.Popen([harness_bin(), "probe", f"127.0.0.1:{gw.api}", "--serve",
                             "127.0.0.1:0", "--interval-ms", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("harness probe: serving http://127.0.0.1:"), line
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert wait_until(lambda: http_get(port, "/api/v1/ib/health")[0] == 200, 5)
        yield gw, proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        gw.stop()


def signal_until_exit(proc, sig, timeout_s):
    """sig to proc (our own child) every half millisecond until it exits."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(sig)  # a no-op once Popen has reaped it
        time.sleep(0.0005)


@pytest.mark.timeout_s(60)
def test_probe_serve_endpoints_and_sigterm(tmp_path):
    with serving_probe(tmp_path) as (gw, proc, port):
        status, doc, ctype = http_get(port, "/api/v1/ib/resilience")
        assert status == 200 and ctype == "application/json"
        assert doc["score"]["total"] >= 75 and doc["probe"]["acquire"] == "ok"
        status, doc, _ = http_get(port, "/api/v1/ib/health")
        assert status == 200 and doc["status"] == "healthy" and doc["threshold"] == 75
        status, doc, _ = http_get(port, "/api/v1/ib/status?verbose=1")
        assert status == 200 and doc["status"] == "success"
        assert doc["data"]["overall_resilience_score"] >= 75 and doc["data"]["healthy"] is True
        assert set(doc["data"]["components"]) >= {"breaker", "connectivity", "zombies"}
        assert http_get(port, "/api/v1/ib/nope")[0] == 404
        assert http_get(port, "/api/v1/ib/health", "POST")[0] == 405
        assert http_get(port, "/api/v1/ib/health", "HEAD")[0] == 200

        gw.stop()  # the gateway goes away: the live score falls, health turns 503
        assert wait_until(lambda: http_get(port, "/api/v1/ib/health")[0] == 503, 10)
        status, doc, _ = http_get(port, "/api/v1/ib/status")
        assert status == 200 and doc["data"]["overall_resilience_score"] < 75

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0


@pytest.mark.timeout_s(60)
def test_probe_serve_signals_during_the_stop_change_nothing(tmp_path):
    with serving_probe(tmp_path) as (_, proc, _port):
        proc.send_signal(signal.SIGTERM)
        signal_until_exit(proc, signal.SIGINT, 10)
        assert proc.wait(timeout=5) == 0


def children_of(pid):
    """The pids of pid's children (Linux: /proc/PID/task/*/children)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_harness(*args):
    return subprocess.Popen([harness_bin(), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def interrupt(proc, sig=signal.SIGTERM, ready=lambda: True, timeout_s=20):
    """Once ready() holds (10 s at most), sig to the harness (our own child); its (out, err,
    seconds from the signal to its exit). It is killed if it does not exit within timeout_s."""
    try:
        assert wait_until(ready, 10), "the harness never got to the point to interrupt"
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout_s)
        return out, err, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_scenario_tears_down_reports_and_exits_128_plus_n(tmp_path, sig):
    doc = {"name": "waits-a-long-time", "levels": ["standard"], "gateway_process": True,
           "steps": [{"core": "acquire", "expect": {"status": "ok"}}, {"wait_ms": 30000}]}
    sc = write(tmp_path, "long.json", doc)
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    proc = start_harness("--scenario", sc, "--scenario", sc, "--json", report, "--junit", junit,
                         "--mockgw", mockgw_bin())
    kids = []

    def in_the_wait_step():  # the gateway_process child is up; the acquire takes milliseconds
        kids[:] = children_of(proc.pid)
        if kids:
            time.sleep(0.5)
        return bool(kids)

    out, err, took = interrupt(proc, sig, in_the_wait_step)
    child = kids[0]
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, (proc.returncode, out, err)
    assert took < 10, took  # the teardown is bounded; the wait had 29 s left
    assert not alive(child), "the gateway_process child outlived the harness"
    assert last_line(out) == f"DO NOT DEPLOY: interrupted by {name}", out
    assert "1 failed, 0 skipped, 1 not run" in out, out
    assert f"interrupted by {name} during $.steps[1] (wait 30000 ms); torn down" in out, out
    assert "exited" not in out, out  # the child stopped by the teardown, not by itself
    assert f"harness: {name}: stopping" in err and f"1 of 2 scenarios ran" in err, err
    summary = json.loads(report.read_text())["summary"]
    assert summary["interrupted"] == name and summary["not_run"] == 1, summary
    assert summary["deploy"] is False and summary["total"] == 1, summary
    case = ET.parse(junit).getroot().find(".//testcase")
    assert "interrupted by" in case.find("failure").get("message")


@pytest.mark.timeout_s(60)
def test_signals_during_the_stop_change_nothing(tmp_path):
    """SIGINTs keep coming after the SIGTERM, through the teardown, the reports and the exit:
    the verdict and the exit code are the first signal's, and the reports are whole."""
    doc = {"name": "waits", "levels": ["standard"],
           "steps": [{"core": "acquire", "expect": {"status": "ok"}}, {"wait_ms": 30000}]}
    sc = write(tmp_path, "long.json", doc)
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "w") as out_f, open(err_path, "w") as err_f:  # no pipe to fill
        proc = subprocess.Popen([harness_bin(), "--scenario", str(sc), "--json", str(report),
                                 "--junit", str(junit)], stdout=out_f, stderr=err_f, cwd=ROOT)
    try:
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        # Both pending at once, the kernel would deliver SIGINT first (lower number).
        assert wait_until(lambda: "SIGTERM: stopping" in err_path.read_text(), 10), \
            err_path.read_text()
        signal_until_exit(proc, signal.SIGINT, 20)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = out_path.read_text(), err_path.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, out, err)
    assert last_line(out) == "DO NOT DEPLOY: interrupted by SIGTERM", out
    assert json.loads(report.read_text())["summary"]["interrupted"] == "SIGTERM"
    assert ET.parse(junit).getroot().find(".//testcase") is not None


@pytest.mark.timeout_s(60)
def test_signal_during_a_generator_stops_between_schedules(tmp_path):
    report = tmp_path / "r.json"
    proc = start_harness("--level", "exhaustive", "--only", "random-*", "--json", report)
    def some_schedules_in():
        time.sleep(3)
        return True

    out, err, _ = interrupt(proc, ready=some_schedules_in)
    assert proc.returncode == 143, (out, err)
    assert last_line(out) == "DO NOT DEPLOY: interrupted by SIGTERM", out
    doc = json.loads(report.read_text())
    assert doc["summary"]["interrupted"] == "SIGTERM"
    first = doc["scenarios"][0]
    assert first["result"] == "fail" and "interrupted by SIGTERM" in " ".join(first["failures"])
