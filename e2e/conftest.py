"""Fixtures of the mockgw end-to-end suite: the real binary on loopback.

The binary: $MOCKGW_BIN (ctest sets it), else build/mockgw/mockgw, else the newest
build*/mockgw/mockgw under the repository. No binary is a failure, never a skip.

Every mockgw started here binds 127.0.0.1 port 0 (API and admin), logs its journal to a file in
the test's tmp dir, and is stopped at teardown with SIGTERM, which must give exit code 0 within
5 s with nothing on stderr (unless the test said it expects stderr output). Each test has a
deadline (SIGALRM; default 20 s, ``@pytest.mark.timeout_s(N)`` to change it). At the end of the
session no mockgw we started may still be alive.
"""

import http.client
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from ibclient import IBClient, wait_until

E2E_DIR = Path(__file__).resolve().parent
ROOT = E2E_DIR.parent
READY_RE = re.compile(
    r"^mockgw ready api=127\.0\.0\.1:(\d+) admin=(?:127\.0\.0\.1:(\d+)|off)$")
DEFAULT_TEST_TIMEOUT_S = 20
STOP_TIMEOUT_S = 5.0

_started = []  # every Popen of mockgw this session, to check none outlives it


def find_mockgw_binary():
    """(path, None) or (None, reason)."""
    env = os.environ.get("MOCKGW_BIN")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env, None
        return None, f"MOCKGW_BIN={env!r} is not an executable file"
    preferred = ROOT / "build" / "mockgw" / "mockgw"
    if preferred.is_file() and os.access(preferred, os.X_OK):
        return str(preferred), None
    found = [p for p in ROOT.glob("build*/mockgw/mockgw") if p.is_file() and os.access(p, os.X_OK)]
    if found:
        found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        return str(found[0]), None
    return None, (f"no mockgw binary: set MOCKGW_BIN or build it "
                  f"(cmake -S {ROOT} -B {ROOT}/build && cmake --build {ROOT}/build --target mockgw)")


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(n): per-test deadline in seconds (SIGALRM)")


@pytest.fixture(scope="session")
def mockgw_bin():
    path, why = find_mockgw_binary()
    if path is None:
        pytest.fail(why, pytrace=False)
    return path


class TestTimeout(BaseException):
    """Raised by SIGALRM when a test overruns its deadline (BaseException so that no
    `except Exception` in a test swallows it)."""


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("timeout_s")
    seconds = int(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT_S

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded its {seconds}s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session", autouse=True)
def _no_mockgw_left_behind():
    yield
    alive = [p for p in _started if p.poll() is None]
    for p in alive:
        p.kill()
        p.wait(5)
    assert not alive, f"mockgw processes still alive at session end: {[p.pid for p in alive]}"


class Mockgw:
    """One running mockgw process."""

    def __init__(self, binary, workdir, args=(), defaults=True, expect_stderr=False,
                 expect_rc=0):
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "journal.jsonl"
        self.stdout_path = self.workdir / "stdout.txt"
        self.stderr_path = self.workdir / "stderr.txt"
        self.expect_stderr = expect_stderr
        self.expect_rc = expect_rc
        self.clients = []
        self.bad_journal_lines = []
        self.api_port = None
        self.admin_port = None
        self.ready_line = None
        self.returncode = None
        args = list(args)
        argv = [binary]
        if defaults:
            if "--listen" not in args:
                argv += ["--listen", "127.0.0.1:0"]
            if "--admin" not in args:
                argv += ["--admin", "127.0.0.1:0"]
            if "--log" not in args:
                argv += ["--log", str(self.log_path)]
        argv += args
        self.argv = argv
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _started.append(self.proc)

    @property
    def pid(self):
        return self.proc.pid

    # -- process ------------------------------------------------------------------------
    def stdout_text(self):
        return self.stdout_path.read_text(errors="replace")

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout_s=5.0):
        """Waits for the ready line (the first line on stdout)."""

        def ready_or_exited():
            text = self.stdout_text()
            if "\n" in text:
                return True
            return not self.alive()

        wait_until(ready_or_exited, timeout_s, what="the ready line")
        text = self.stdout_text()
        if "\n" not in text:
            raise AssertionError(f"mockgw exited with {self.proc.returncode} before the ready "
                                 f"line; stderr: {self.stderr_text()!r}")
        first = text.split("\n", 1)[0]
        m = READY_RE.match(first)
        assert m, f"first stdout line is not the ready line: {first!r}"
        self.ready_line = first
        self.api_port = int(m.group(1))
        self.admin_port = int(m.group(2)) if m.group(2) else None
        return self

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout_s=STOP_TIMEOUT_S):
        try:
            self.returncode = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"mockgw did not exit within {timeout_s}s")
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout_s=STOP_TIMEOUT_S):
        """Signals mockgw and returns its exit code."""
        self.close_clients()
        if self.alive():
            self.send_signal(sig)
        return self.wait_exit(timeout_s)

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []

    def teardown(self):
        rc = self.stop() if self.returncode is None else self.returncode
        problems = []
        if rc != self.expect_rc:
            problems.append(f"exit code {rc}, expected {self.expect_rc}")
        self.journal()
        if self.bad_journal_lines:
            problems.append(f"journal lines that are not JSON: {self.bad_journal_lines[:3]!r}")
        err = self.stderr_text()
        if err and not self.expect_stderr:
            problems.append(f"unexpected stderr: {err[:2000]!r}")
        assert not problems, f"mockgw {self.argv}: " + "; ".join(problems)

    # -- journal ------------------------------------------------------------------------
    def journal(self):
        """Every complete JSON line of the --log file, parsed."""
        try:
            data = self.log_path.read_text()
        except FileNotFoundError:
            return []
        lines = data.split("\n")[:-1]  # a last line without "\n" is still being written
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                # Kept going so the test can report what it was about; teardown fails on it.
                if line not in self.bad_journal_lines:
                    self.bad_journal_lines.append(line)
        return out

    def events(self, name=None, **match):
        out = []
        for e in self.journal():
            if "event" not in e or (name is not None and e["event"] != name):
                continue
            if all(e.get(k) == v for k, v in match.items()):
                out.append(e)
        return out

    def wait_event(self, name, timeout_s=5.0, **match):
        """The first journal event called name whose members equal match."""
        try:
            found = wait_until(lambda: self.events(name, **match), timeout_s,
                               what=f"journal event {name} {match}")
        except AssertionError as e:
            if self.bad_journal_lines:
                raise AssertionError(f"{e}; the journal has lines that are not JSON (the event "
                                     f"may be among them): {self.bad_journal_lines[:3]!r}")
            raise
        return found[0]

    def frames(self, direction=None, conn=None):
        out = []
        for e in self.journal():
            if "dir" not in e:
                continue
            if direction is not None and e["dir"] != direction:
                continue
            if conn is not None and e.get("conn") != conn:
                continue
            out.append(e)
        return out

    # -- admin --------------------------------------------------------------------------
    def http(self, method, path, body=None, headers=None, timeout_s=5.0):
        """(status, parsed JSON body or raw text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout_s)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return resp.status, parsed
        finally:
            conn.close()

    def status(self):
        code, body = self.http("GET", "/v1/status")
        assert code == 200, (code, body)
        return body

    def admin_journal(self, since=0, kind="events"):
        code, body = self.http("GET", f"/v1/journal?since={since}&kind={kind}")
        assert code == 200, (code, body)
        return body

    # -- API clients --------------------------------------------------------------------
    def client(self, **kw):
        c = IBClient(self.api_port, **kw)
        self.clients.append(c)
        return c

    def ready_client(self, client_id=1, version_range="v157..178", **kw):
        c = self.client(**kw)
        c.handshake(client_id=client_id, version_range=version_range)
        return c

    def conn_id_of(self, client, timeout_s=5.0):
        """mockgw's connection id for one of our sockets (from the accept event's peer)."""
        peer = f"127.0.0.1:{client.local_port()}"
        return self.wait_event("accept", timeout_s, peer=peer)["conn"]


@pytest.fixture
def mockgw_factory(mockgw_bin, tmp_path):
    """mockgw_factory(*args, defaults=True, expect_stderr=False, expect_rc=0, ready=True)."""
    made = []

    def make(*args, defaults=True, expect_stderr=False, expect_rc=0, ready=True):
        m = Mockgw(mockgw_bin, tmp_path / f"mockgw{len(made)}", args, defaults=defaults,
                   expect_stderr=expect_stderr, expect_rc=expect_rc)
        made.append(m)
        if ready:
            m.wait_ready()
        return m

    yield make
    errors = []
    for m in made:
        try:
            m.teardown()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def mockgw(mockgw_factory):
    """A mockgw with default settings, ready."""
    return mockgw_factory()


def run_mockgw(binary, *args, timeout_s=10.0):
    """Runs mockgw to completion (usage errors, --help); CompletedProcess with text output."""
    return subprocess.run([binary, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout_s)


@pytest.fixture
def run(mockgw_bin):
    return lambda *args, **kw: run_mockgw(mockgw_bin, *args, **kw)
