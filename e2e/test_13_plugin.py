"""The pytest plugin users import (pytest_mockgw, docs/pytest-plugin.md): its fixtures and
helpers here in-process, and whole pytest sessions in a subprocess for what only a session
shows: the example passing when copied out of this repository, a broken app failing with the
journal tail, no binary being an error, leftovers failing the session, the installed entry
point.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from pytest_mockgw import (MockgwError, assert_handshake_completed,
                           assert_max_handshakes_in_flight, assert_no_protocol_errors,
                           assert_reconnected_within, wait_until)

E2E = Path(__file__).resolve().parent
EXAMPLE = E2E / "examples" / "test_example_app.py"
PYTHON = "/usr/bin/python3"
SILENT_AFTER_VERSION = {"match": {"phase": "version_sent"}, "action": {"type": "silent"}}


def refused(port):
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


# -- the fixtures ---------------------------------------------------------------------------
def test_factory_keywords(mockgw_factory):
    m = mockgw_factory(script={"settings": {"accounts": "DU1,DU2"},
                               "rules": [{"name": "mine", **SILENT_AFTER_VERSION}]},
                       seed=7, fault=["refuse-client-id=3"], args=["--server-version", "176"])
    st = m.status()
    assert (st["seed"], st["accounts"], st["server_version"]) == (7, "DU1,DU2", 176)
    assert [r["name"] for r in m.rules()] == ["mine", "preset:refuse-client-id=3"]
    assert (m.workdir / "script.json").is_file()
    assert m.port == m.api_port and m.admin_port


@pytest.mark.mockgw(seed=9, fault="silent-after-ready", args=["--accounts", "DU9"])
def test_marker_configures_the_mockgw_fixture(mockgw):
    st = mockgw.status()
    assert (st["seed"], st["accounts"]) == (9, "DU9")
    assert [r["name"] for r in mockgw.rules()] == ["preset:silent-after-ready"]


def test_admin_client(mockgw):
    code, st = mockgw.admin.get("/v1/status")
    assert code == 200 and st["api"]["port"] == mockgw.port
    code, rule = mockgw.admin.post("/v1/rules", SILENT_AFTER_VERSION)
    assert code == 201 and rule["id"] == 1
    code, body = mockgw.admin.post("/v1/rules", {"action": {"type": "explode"}})
    assert code == 400 and "$.action.type" in body["error"], body
    assert mockgw.admin.delete("/v1/rules") == (200, {"state": "normal", "rules": []})
    assert mockgw.admin.put("/v1/state", {"state": "down"})[0] == 200


def test_fault_and_rules(mockgw):
    r = mockgw.fault(phase="start_api", client_id=2, action="refuse_client_id", times=1,
                     name="no-2")
    assert r["name"] == "no-2" and r["match"] == {"phase": "start_api", "client_id": 2}
    assert r["times"] == 1 and r["action"]["type"] == "refuse_client_id"
    whole = mockgw.fault({"match": {"phase": "request", "msg": "reqIds"},
                          "action": {"type": "ignore"}})
    assert [x["id"] for x in mockgw.rules()] == [r["id"], whole["id"]]
    with pytest.raises(MockgwError, match=r"answered 400.*\$\.action\.type"):
        mockgw.fault(phase="ready", action="explode")
    with pytest.raises(TypeError):
        mockgw.fault(SILENT_AFTER_VERSION, phase="ready")
    assert mockgw.rules([SILENT_AFTER_VERSION], state="x")[0]["action"] == {"type": "silent"}
    assert mockgw.status()["faults"]["state"] == "x"
    assert mockgw.rules([]) == []
    c = mockgw.client()
    c.send_hello()
    c.read_version_reply()
    c.start_api(2)
    c.read_burst()  # the refuse rule was replaced: id 2 is welcome


def test_drop_all_restart_and_client_ids(mockgw):
    a = mockgw.ready_client(client_id=3)
    mockgw.drop_all()
    assert a.is_closed_by_peer(5)
    mockgw.ready_client(client_id=4)
    mockgw.restart(down_ms=400)
    wait_until(lambda: refused(mockgw.port), 2, what="connects refused during the restart")
    wait_until(lambda: not refused(mockgw.port), 5, what="the listener back")
    mockgw.ready_client(client_id=3)
    # the journal file is flushed once per loop turn: the last START_API may lag the burst
    wait_until(lambda: mockgw.client_ids() == [3, 4, 3], 5, what="client ids [3, 4, 3]")
    assert [e["event"] for e in mockgw.events("restart")] == ["restart"]


def test_journal_kinds_and_mark(mockgw):
    c = mockgw.ready_client(client_id=5)
    mark = mockgw.mark()
    c.send_fields("8,1,1")
    c.read_frame()
    wait_until(lambda: mockgw.journal(since=mark), 5, what="entries after the mark")
    assert all("event" in e for e in mockgw.journal(kind="events"))
    assert all("dir" in e for e in mockgw.journal(kind="frames"))
    after = mockgw.journal(since=mark)
    assert [(e["dir"], e["msg"]) for e in after] == [("in", "reqIds"), ("out", "nextValidId")]
    with pytest.raises(ValueError):
        mockgw.journal(kind="nope")


def test_stop_then_teardown(mockgw):
    c = mockgw.ready_client()
    assert mockgw.stop() == 0
    assert not mockgw.alive() and c.sock is None  # our raw clients are closed first
    assert mockgw.events("stopping")


# -- the journal helpers ------------------------------------------------------------------
def test_assert_handshake_completed(mockgw):
    mockgw.ready_client(client_id=4)
    assert assert_handshake_completed(mockgw, client_id=4)["conn"] == 1
    assert_handshake_completed(mockgw)
    with pytest.raises(AssertionError) as e:
        assert_handshake_completed(mockgw, client_id=5, timeout_s=0.3)
    msg = str(e.value)
    assert "client id 5 did not complete the handshake within 0.3s" in msg, msg
    assert "client ids that did: [4]" in msg and "conn 1 client 4 at " in msg, msg
    assert "start_api(client 4) -> ready" in msg, msg


def test_assert_reconnected_within(mockgw):
    mockgw.ready_client(client_id=6)
    mark = mockgw.mark()
    mockgw.drop_all()
    mockgw.ready_client(client_id=6)
    delay = assert_reconnected_within(mockgw, 2.0, after=mark, client_id=6)
    assert 0 <= delay < 2.0
    mark = mockgw.mark()
    mockgw.drop_all()
    with pytest.raises(AssertionError) as e:
        assert_reconnected_within(mockgw, 0.3, after=mark, client_id=6)
    msg = str(e.value)
    assert "did not reconnect within 0.3s of the disconnect of conn 2" in msg, msg
    assert "'admin: drop-all'" in msg and "no handshake with client id 6 completed" in msg, msg
    with pytest.raises(AssertionError, match="no ready connection was disconnected after seq"):
        assert_reconnected_within(mockgw, 1, after=mockgw.mark(), wait_s=0.2)


def test_assert_max_handshakes_in_flight(mockgw):
    first = mockgw.client()
    first.send_hello()
    first.read_version_reply()
    second = mockgw.ready_client(client_id=2)  # while the first one is half-way
    with pytest.raises(AssertionError) as e:
        assert_max_handshakes_in_flight(mockgw, 1)
    assert "2 handshakes were in flight at once (limit 1)" in str(e.value)
    assert "connections [1, 2]" in str(e.value)
    assert assert_max_handshakes_in_flight(mockgw, 2) == 2
    first.close()
    second.close()
    mark = mockgw.mark()
    mockgw.ready_client(client_id=3)
    assert assert_max_handshakes_in_flight(mockgw, 1, since=mark) == 1


def test_in_flight_counts_a_silenced_handshake_while_the_app_holds_it(mockgw):
    # mockgw no longer reads a connection it silenced: whether the app gave up on it is read
    # from the kernel's socket table.
    mockgw.fault(SILENT_AFTER_VERSION)
    hung = mockgw.client()
    hung.send_hello()
    hung.read_version_reply()
    mockgw.wait_event("fault", action="silent")
    mockgw.rules([])
    mockgw.ready_client(client_id=2)
    with pytest.raises(AssertionError, match="2 handshakes were in flight at once"):
        assert_max_handshakes_in_flight(mockgw, 1)
    hung.close()  # the app gave up on it
    assert assert_max_handshakes_in_flight(mockgw, 1) == 1


def test_assert_no_protocol_errors(mockgw):
    c = mockgw.ready_client()
    assert_no_protocol_errors(mockgw)
    c.send_raw(b"\0\0\0\0")  # a zero-length frame
    mockgw.wait_event("bad_input")
    with pytest.raises(AssertionError, match="the app sent 1 malformed message"):
        assert_no_protocol_errors(mockgw)


# -- whole sessions -----------------------------------------------------------------------
def run_pytest(workdir, *args, env=None, timeout_s=60):
    """A pytest session in a subprocess (Debian's interpreter), in workdir: CompletedProcess."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MOCKGW_"))}
    base.update(env or {})
    return subprocess.run([PYTHON, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=workdir, env=base, capture_output=True, text=True,
                          timeout=timeout_s)


def outcome(r):
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:]


@pytest.mark.timeout_s(60)
def test_example_runs_on_its_own_with_p(mockgw_bin, tmp_path):
    shutil.copy(EXAMPLE, tmp_path)
    r = run_pytest(tmp_path, "-q", "-p", "pytest_mockgw",
                   env={"PYTHONPATH": str(E2E), "MOCKGW_BIN": mockgw_bin})
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    assert re.search(r"\b4 passed\b", outcome(r)), outcome(r)


@pytest.mark.timeout_s(60)
def test_a_broken_app_fails_with_the_journal_tail(mockgw_bin, tmp_path):
    text = EXAMPLE.read_text()
    assert "    RECONNECT_DELAY_S = 0.2\n" in text
    # The bug: the app waits 30 s before it reconnects.
    (tmp_path / "test_broken_app.py").write_text(
        text.replace("    RECONNECT_DELAY_S = 0.2\n", "    RECONNECT_DELAY_S = 30.0\n"))
    r = run_pytest(tmp_path, "-p", "pytest_mockgw", "-k", "drops_it",
                   env={"PYTHONPATH": str(E2E), "MOCKGW_BIN": mockgw_bin})
    out = r.stdout
    assert r.returncode == 1, out[-5000:] + r.stderr[-2000:]
    assert re.search(r"\b1 failed\b", outcome(r)), outcome(r)
    assert "the client with client id 7 did not reconnect within 2.0s of the disconnect of " \
           "conn 1 (client 7, 'admin: drop-all')" in out, out[-5000:]
    assert re.search(r"-+ mockgw mockgw0 \(api port \d+, pid \d+\) journal tail -+", out), out
    assert "conn 1 client 7 at " in out and "-> disconnect (admin: drop-all)" in out, out
    assert re.search(r'^\{"seq":\d+,"t":"[^"]+","conn":1,"client_id":7,"event":"disconnect",'
                     r'"reason":"admin: drop-all"', out, re.M), out[-5000:]
    assert "left behind" not in out  # the app and the gateway were stopped all the same


@pytest.mark.timeout_s(60)
def test_the_tail_length_option(mockgw_bin, tmp_path):
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(mockgw):\n"
        "    mockgw.ready_client(client_id=3)\n"
        "    assert False, 'on purpose'\n")
    env = {"PYTHONPATH": str(E2E), "MOCKGW_BIN": mockgw_bin}
    r = run_pytest(tmp_path, "-p", "pytest_mockgw", "--mockgw-tail", "3", env=env)
    assert r.returncode == 1 and "on purpose" in r.stdout, r.stdout[-3000:]
    tail = r.stdout.split("last 3 journal entries", 1)[1].split("\n")[1:4]
    assert all(line.startswith('{"seq":') for line in tail), tail
    r = run_pytest(tmp_path, "-p", "pytest_mockgw", "--mockgw-tail", "0", env=env)
    assert r.returncode == 1 and "journal tail" not in r.stdout, r.stdout[-3000:]


@pytest.mark.timeout_s(60)
def test_options_bin_and_arg(mockgw_bin, tmp_path):
    (tmp_path / "test_opts.py").write_text(
        "def test_version(mockgw):\n"
        "    assert mockgw.status()['server_version'] == 176\n"
        "    assert mockgw.status()['seed'] == 5\n")
    r = run_pytest(tmp_path, "-q", "-p", "pytest_mockgw", "--mockgw-bin", mockgw_bin,
                   "--mockgw-arg=--server-version=176", "--mockgw-arg=--seed=5",
                   env={"PYTHONPATH": str(E2E), "MOCKGW_BIN": "/nonexistent/ignored"})
    assert r.returncode == 0, r.stdout[-3000:]
    r = run_pytest(tmp_path, "-q", "-p", "pytest_mockgw", "--mockgw-bin", "/nonexistent/mockgw",
                   env={"PYTHONPATH": str(E2E)})
    assert r.returncode == 1, r.stdout[-3000:]
    assert "--mockgw-bin='/nonexistent/mockgw' is not an executable file" in r.stdout
    assert re.search(r"\b1 error\b", outcome(r)) and "skipped" not in r.stdout, outcome(r)


@pytest.mark.timeout_s(60)
def test_no_binary_is_an_error_not_a_skip(tmp_path):
    # The plugin copied out of this repository: nothing to discover a build from.
    shutil.copytree(E2E / "pytest_mockgw", tmp_path / "lib" / "pytest_mockgw",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test_needs_it.py").write_text("def test_it(mockgw):\n    pass\n")
    path = "/usr/bin:/bin"
    assert shutil.which("mockgw", path=path) is None
    r = run_pytest(tmp_path / "t", "-p", "pytest_mockgw",
                   env={"PYTHONPATH": str(tmp_path / "lib"), "PATH": path})
    assert r.returncode == 1, r.stdout[-3000:]
    assert "no mockgw binary: pass --mockgw-bin PATH, set MOCKGW_BIN, or put mockgw on PATH" \
        in r.stdout, r.stdout[-3000:]
    assert re.search(r"\b1 error\b", outcome(r)) and "skipped" not in r.stdout, outcome(r)


@pytest.mark.timeout_s(60)
def test_a_gateway_left_running_fails_the_session(mockgw_bin, tmp_path):
    # A wrapper that forks instead of exec'ing: SIGTERM reaches the wrapper, the real mockgw
    # lives on. The session must say so (it carries the session's token) and not signal it.
    pidfile = tmp_path / "child.pid"
    wrapper = tmp_path / "forking-mockgw"
    wrapper.write_text(f'#!/bin/sh\n"{mockgw_bin}" "$@" &\necho $! > "{pidfile}"\nwait\n')
    wrapper.chmod(0o755)
    (tmp_path / "test_leak.py").write_text(
        "def test_leak(mockgw_factory):\n"
        "    mockgw_factory(expect_rc=-15).ready_client(client_id=1)\n")
    try:
        r = run_pytest(tmp_path, "-p", "pytest_mockgw", "--mockgw-bin", str(wrapper),
                       env={"PYTHONPATH": str(E2E)})
        out = r.stdout
        assert pidfile.exists(), out[-3000:]
        child = int(pidfile.read_text())
        assert r.returncode == 1, out[-3000:]
        assert re.search(r"\b1 passed, 1 error\b", outcome(r)), outcome(r)
        assert "pytest_mockgw: left behind at the end of the session:" in out, out[-3000:]
        assert f"pid {child} ({mockgw_bin} --listen 127.0.0.1:0" in out, out[-3000:]
        assert "still alive; it was not signalled" in out, out[-3000:]
        assert re.search(rf"127\.0\.0\.1:\d+ \(mockgw pid \d+\) is still bound: pids "
                         rf"\[{child}\] listen on it", out), out[-3000:]
    finally:
        _kill_our_orphan(pidfile, mockgw_bin)


def _kill_our_orphan(pidfile, binary):
    """The mockgw the leak test's wrapper forked (ours: the pid it wrote, and its command
    line is our binary) is stopped and gone."""
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return
    if cmd != binary:
        return
    os.kill(pid, signal.SIGTERM)

    def gone():
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
        except OSError:
            return True

    wait_until(gone, 5, what=f"the leaked mockgw {pid} to exit")


@pytest.mark.timeout_s(90)
def test_installed_with_pip_the_plugin_loads_itself(mockgw_bin, tmp_path):
    # `pip install --no-deps ./e2e`, into a directory (no index, the system's setuptools; a
    # copy of the sources, since pip builds in the source tree).
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(E2E / "pyproject.toml", src)
    shutil.copytree(E2E / "pytest_mockgw", src / "pytest_mockgw",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    if subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.fail(f"{PYTHON} has no pip (scripts/setup.sh test installs python3-pip)",
                    pytrace=False)
    r = subprocess.run([PYTHON, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                        "--no-index", "--disable-pip-version-check", "--target", str(site),
                        str(src)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    installed = sorted(p.name for p in site.iterdir())
    assert installed == ["pytest_mockgw", "pytest_mockgw-0.1.0.dist-info"], installed
    entry = (site / "pytest_mockgw-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[pytest11]\npytest_mockgw = pytest_mockgw.plugin" in entry, entry
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(EXAMPLE, run_dir)
    env = {"PYTHONPATH": str(site), "MOCKGW_BIN": mockgw_bin}
    r = run_pytest(run_dir, "-k", "connects_and", env=env)  # no -p: the entry point
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "plugins: mockgw-0.1.0" in r.stdout, r.stdout[:2000]
    r = run_pytest(run_dir, "-q", "-p", "pytest_mockgw", "-k", "connects_and", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]  # -p as well: no clash


def test_the_documented_example_is_the_shipped_one():
    doc = (E2E.parent / "docs" / "pytest-plugin.md").read_text()
    section = doc.split("## A complete example", 1)[1]
    block = re.search(r"```python\n(.*?)```\n", section, re.S).group(1)
    assert block == EXAMPLE.read_text(), "docs/pytest-plugin.md and e2e/examples/ differ"


def test_every_fixture_option_and_helper_is_documented():
    doc = (E2E.parent / "docs" / "pytest-plugin.md").read_text()
    import pytest_mockgw
    for name in pytest_mockgw.__all__:
        assert f"`{name}" in doc or f" {name}(" in doc or f"{name}`" in doc, name
    for word in ("`mockgw`", "`mockgw_factory`", "`mockgw_bin`", "--mockgw-bin", "--mockgw-arg",
                 "--mockgw-tail", "@pytest.mark.mockgw"):
        assert word in doc, word
