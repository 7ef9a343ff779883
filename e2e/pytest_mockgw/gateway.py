"""One mockgw process, its admin API and its journal; finding the binary; the session registry.

Everything here works without pytest too (``Mockgw(binary, workdir)`` then ``.wait_ready()`` and
``.stop()``): the pytest fixtures in plugin.py are a thin layer over it.
"""

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .ibclient import IBClient, wait_until

READY_RE = re.compile(r"^mockgw ready api=(\S+):(\d+) admin=(?:(\S+):(\d+)|off)$")
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 5.0
# Set in the environment of every mockgw this package starts: a process that carries our
# token and is still alive at the end of the session was started by us (maybe through a wrapper
# script that forked instead of exec'ing).
SESSION_ENV = "PYTEST_MOCKGW_SESSION"


class MockgwError(AssertionError):
    """mockgw did not do what was expected of it (no ready line, bad exit code, an admin call
    that failed). An AssertionError, so pytest shows it as a failure with its message."""


# -- the binary ----------------------------------------------------------------------------
def _executable(path):
    return path.is_file() and os.access(path, os.X_OK)


def repo_roots(*starts):
    """Directories at or above starts that are a mockgw source tree (have mockgw/main.c)."""
    out = []
    for start in starts:
        if start is None:
            continue
        start = Path(start).resolve()
        for d in (start, *start.parents):
            if (d / "mockgw" / "main.c").is_file() and d not in out:
                out.append(d)
    return out


def find_mockgw(option=None, search_from=()):
    """(path, None) or (None, reason), in this order: ``option`` (--mockgw-bin), $MOCKGW_BIN,
    ``mockgw`` on PATH, then build/mockgw/mockgw or the newest build*/mockgw/mockgw of the
    mockgw source tree this package or one of ``search_from`` lives in."""
    for origin, value in (("--mockgw-bin", option), ("MOCKGW_BIN", os.environ.get("MOCKGW_BIN"))):
        if value:
            p = Path(value).expanduser()
            if _executable(p):
                return str(p.resolve()), None
            return None, f"{origin}={value!r} is not an executable file"
    on_path = shutil.which("mockgw")
    if on_path:
        return on_path, None
    roots = repo_roots(Path(__file__).parent, *search_from)
    for root in roots:
        preferred = root / "build" / "mockgw" / "mockgw"
        if _executable(preferred):
            return str(preferred), None
        found = [p for p in root.glob("build*/mockgw/mockgw") if _executable(p)]
        if found:
            return str(max(found, key=lambda p: p.stat().st_mtime)), None
    hint = "; or build it: cmake -S . -B build && cmake --build build --target mockgw"
    if roots:
        hint = f"; or build it: cmake -S {roots[0]} -B {roots[0]}/build && cmake --build " \
               f"{roots[0]}/build --target mockgw"
    return None, ("no mockgw binary: pass --mockgw-bin PATH, set MOCKGW_BIN, or put mockgw on "
                  "PATH" + hint)


def run_mockgw(binary, *args, timeout_s=10.0):
    """Runs mockgw to completion (usage errors, --help): CompletedProcess with text output."""
    return subprocess.run([binary, *map(str, args)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout_s)


# -- the registry: what this session started -----------------------------------------------
class Registry:
    """Every mockgw a session started, to prove at its end that none outlived it."""

    def __init__(self):
        self.token = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.gateways = []

    def add(self, gw):
        self.gateways.append(gw)

    def leftovers(self):
        """Problems, as text: gateways still alive (they are killed: we started them), other
        processes carrying our token, ports still bound by them. Empty when all is clean."""
        problems = []
        for gw in self.gateways:
            if gw.proc.poll() is None:
                problems.append(f"mockgw pid {gw.pid} ({' '.join(gw.argv)}) still alive: killed")
                gw.proc.kill()
                try:
                    gw.proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    problems.append(f"mockgw pid {gw.pid} did not die on SIGKILL")
        ours = set(_pids_with_env(SESSION_ENV, self.token))
        for pid in sorted(ours):
            problems.append(f"pid {pid} ({_cmdline(pid)}) was started by this session (through "
                            f"a mockgw we started) and is still alive; it was not signalled")
        for gw in self.gateways:
            for host, port in gw.bound_ports():
                holders = _wait_no_listener(host, port, 2.0)
                if holders is None:
                    continue
                if holders == "?":
                    problems.append(f"{host}:{port} (mockgw pid {gw.pid}) is still bound (no "
                                    f"/proc to tell by whom)")
                    continue
                # A listener of a process without our token (we can read every process of
                # ours) is somebody else's, on a port our gateway gave back.
                mine = sorted(p for p in holders if p in ours or p == gw.pid)
                if mine:
                    problems.append(f"{host}:{port} (mockgw pid {gw.pid}) is still bound: "
                                    f"pids {mine} listen on it")
        return problems


def _pids_with_env(name, value):
    needle = f"{name}={value}".encode()
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and int(d.name) != os.getpid():
            out.append(int(d.name))
    return out


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def _listener_inodes(port):
    """Inodes of the LISTEN sockets on TCP port (any address), from /proc/net/tcp{,6}; None
    where that table cannot be read."""
    inodes = set()
    read_any = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        read_any = True
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    return inodes if read_any else None


def _bind_free(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _wait_no_listener(host, port, timeout_s):
    """None once nothing listens on port (within timeout_s); else the pids of the processes
    that do (those we may read), or "?" without /proc. Only listeners count: connections in
    TIME_WAIT or orphaned by a dead process hold no port anybody waits for."""
    deadline = time.monotonic() + timeout_s
    while True:
        inodes = _listener_inodes(port)
        if inodes is None:  # no /proc: can we bind it? (SO_REUSEADDR: listeners only, mostly)
            if _bind_free(host, port):
                return None
        elif not inodes:
            return None
        if time.monotonic() >= deadline:
            return "?" if inodes is None else _socket_owners(inodes)
        time.sleep(0.05)


def _socket_owners(inodes):
    pids = set()
    if not inodes:
        return pids
    for d in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (d / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    pids.add(int(d.name))
                    break
        except OSError:
            continue
    return pids


# -- the admin API client ------------------------------------------------------------------
class AdminClient:
    """The admin HTTP API of one gateway (docs/admin-api.md): ``get/post/put/delete(path,
    body)`` return ``(status, body)``, body parsed from JSON (text if it is not JSON, None if
    empty). A dict or list body is sent as JSON; str or bytes as given."""

    def __init__(self, host, port, timeout_s=HTTP_TIMEOUT_S):
        self.host = host
        self.port = port
        self.timeout_s = timeout_s

    def request(self, method, path, body=None, headers=None):
        if self.port is None:
            raise MockgwError("this mockgw runs with --admin off: no admin API")
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None):
        return self.request("POST", path, body)

    def put(self, path, body=None):
        return self.request("PUT", path, body)

    def delete(self, path):
        return self.request("DELETE", path)

    def call(self, method, path, body=None, expect=200):
        """The parsed body; MockgwError with the server's message unless the status is
        expect."""
        status, parsed = self.request(method, path, body)
        if status != expect:
            why = parsed.get("error") if isinstance(parsed, dict) else parsed
            raise MockgwError(f"admin {method} {path} answered {status}, expected {expect}: "
                              f"{why!r}" + (f" (body sent: {json.dumps(body)})" if body else ""))
        return parsed


# -- the journal file ----------------------------------------------------------------------
class _LogReader:
    """Reads the --log file incrementally: complete lines only (a last line without "\\n" is
    still being written); lines that are not JSON are kept aside, not raised."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.entries = []
        self.bad_lines = []

    def read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.entries
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            try:
                self.entries.append(json.loads(line))
            except ValueError:
                self.bad_lines.append(line)
        return self.entries


def _select(entries, kind):
    if kind in (None, "all"):
        return list(entries)
    if kind == "events":
        return [e for e in entries if "event" in e]
    if kind == "frames":
        return [e for e in entries if "dir" in e]
    raise ValueError(f"kind must be 'all', 'events' or 'frames', not {kind!r}")


# -- one gateway ---------------------------------------------------------------------------
def _has_flag(args, flag):
    return any(a == flag or str(a).startswith(flag + "=") for a in args)


class Mockgw:
    """One mockgw process started on loopback (port 0 for the API and the admin API unless args
    say otherwise), with its journal in ``workdir/journal.jsonl``.

    ``port``/``api_port``, ``admin_port``, ``admin`` (AdminClient), ``fault()``, ``rules()``,
    ``journal()``, ``events()``, ``wait_event()``, ``drop_all()``, ``restart()``,
    ``client_ids()``, ``mark()``, ``client()``/``ready_client()`` (a raw IB client), ``stop()``.
    """

    def __init__(self, binary, workdir, args=(), defaults=True, expect_stderr=False,
                 expect_rc=0, registry=None, env=None, name=None):
        self.binary = str(binary)
        self.name = name or Path(workdir).name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = self.workdir / "stdout.txt"
        self.stderr_path = self.workdir / "stderr.txt"
        self.expect_stderr = expect_stderr
        self.expect_rc = expect_rc
        self.clients = []
        self.host = "127.0.0.1"
        self.api_port = None
        self.admin_host = None
        self.admin_port = None
        self.ready_line = None
        self.returncode = None
        self.admin = AdminClient("127.0.0.1", None)
        args = [str(a) for a in args]
        argv = [self.binary]
        log_path = self.workdir / "journal.jsonl"
        if defaults:
            if not _has_flag(args, "--listen"):
                argv += ["--listen", "127.0.0.1:0"]
            if not _has_flag(args, "--admin"):
                argv += ["--admin", "127.0.0.1:0"]
            if not _has_flag(args, "--log"):
                argv += ["--log", str(log_path)]
        argv += args
        self.argv = argv
        self.log_path = log_path if str(log_path) in argv else self._log_arg(args)
        self._log = _LogReader(self.log_path) if self.log_path else None
        child_env = dict(os.environ if env is None else env)
        if registry is not None:
            child_env[SESSION_ENV] = registry.token
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=child_env)
        if registry is not None:
            registry.add(self)

    @staticmethod
    def _log_arg(args):
        for i, a in enumerate(args):
            value = None
            if a == "--log" and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith("--log="):
                value = a[len("--log="):]
            if value is not None:
                return None if value == "-" else Path(value)
        return None

    def __repr__(self):
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        return f"<Mockgw {self.name} pid {self.pid} api {self.api_port} {state}>"

    @property
    def pid(self):
        return self.proc.pid

    @property
    def port(self):
        """The API port (what your app connects to)."""
        return self.api_port

    # -- process ------------------------------------------------------------------------
    def stdout_text(self):
        return self.stdout_path.read_text(errors="replace")

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout_s=READY_TIMEOUT_S):
        """Waits for the ready line (the first line on stdout) and learns the ports from it."""

        def ready_or_exited():
            return "\n" in self.stdout_text() or not self.alive()

        try:
            wait_until(ready_or_exited, timeout_s, what="the ready line")
        except AssertionError:
            raise MockgwError(f"mockgw printed no ready line within {timeout_s}s: "
                              f"{' '.join(self.argv)}; stderr: {self.stderr_text()[-2000:]!r}")
        text = self.stdout_text()
        if "\n" not in text:
            self.returncode = self.proc.returncode
            raise MockgwError(f"mockgw exited with {self.proc.returncode} before the ready "
                              f"line: {' '.join(self.argv)}; stderr: {self.stderr_text()!r}")
        first = text.split("\n", 1)[0]
        m = READY_RE.match(first)
        if not m:
            raise MockgwError(f"first stdout line is not the ready line: {first!r}")
        self.ready_line = first
        self.host = m.group(1)
        self.api_port = int(m.group(2))
        if m.group(4):
            self.admin_host = m.group(3)
            self.admin_port = int(m.group(4))
            self.admin = AdminClient(self.admin_host, self.admin_port)
        return self

    def bound_ports(self):
        """(host, port) of the listeners the ready line announced."""
        out = []
        if self.api_port:
            out.append((self.host, self.api_port))
        if self.admin_port:
            out.append((self.admin_host, self.admin_port))
        return out

    def send_signal(self, sig):
        """Signals this mockgw (and nothing else: Popen does not signal a reaped process)."""
        self.proc.send_signal(sig)

    def wait_exit(self, timeout_s=STOP_TIMEOUT_S):
        """Its exit code; if it has not exited within timeout_s it is killed (MockgwError)."""
        try:
            self.returncode = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
            raise MockgwError(f"mockgw pid {self.pid} did not exit within {timeout_s}s "
                              f"(killed)")
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout_s=STOP_TIMEOUT_S):
        """Closes our raw clients, signals mockgw (SIGTERM) and returns its exit code."""
        self.close_clients()
        if self.alive():
            self.send_signal(sig)
        return self.wait_exit(timeout_s)

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []

    def teardown(self):
        """Stops it and raises MockgwError if anything was wrong: exit code, stderr, journal
        lines that are not JSON."""
        rc = self.stop() if self.returncode is None else self.returncode
        problems = []
        if rc != self.expect_rc:
            problems.append(f"exit code {rc}, expected {self.expect_rc}")
        if self._log is not None:
            self._log.read()
        if self.bad_journal_lines:
            problems.append(f"journal lines that are not JSON: {self.bad_journal_lines[:3]!r}")
        err = self.stderr_text()
        if err and not self.expect_stderr:
            problems.append(f"unexpected stderr: {err[:2000]!r}")
        if problems:
            raise MockgwError(f"mockgw {' '.join(self.argv)}: " + "; ".join(problems))

    # -- journal ------------------------------------------------------------------------
    @property
    def bad_journal_lines(self):
        return self._log.bad_lines if self._log else []

    def journal(self, kind="all", since=0):
        """Journal entries (docs/journal.md) with seq > since, oldest first: ``kind`` "all",
        "events" or "frames". Read from the --log file (complete, even with --admin off);
        from the admin API when the log goes elsewhere."""
        if self._log is None:
            return self.admin_journal(since=since, kind=kind)
        entries = _select(self._log.read(), kind)
        return [e for e in entries if e.get("seq", 0) > since] if since else entries

    def journal_lines(self, n=None):
        """The last n journal entries as they are in the log (JSON text)."""
        entries = self.journal()
        if n is not None:
            entries = entries[-n:] if n > 0 else []
        return [json.dumps(e, separators=(",", ":")) for e in entries]

    def events(self, name=None, **match):
        """Journal events (optionally called name) whose members equal match."""
        return [e for e in self.journal("events")
                if (name is None or e["event"] == name)
                and all(e.get(k) == v for k, v in match.items())]

    def wait_event(self, name, timeout_s=5.0, **match):
        """The first journal event called name whose members equal match (waits for it)."""
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
        return [e for e in self.journal("frames")
                if (direction is None or e["dir"] == direction)
                and (conn is None or e.get("conn") == conn)]

    def client_ids(self):
        """The client id of every START_API in the journal, in order (one per connection that
        got that far; a reconnect with the same id appears twice)."""
        return [e.get("client_id") for e in self.events("start_api")]

    def mark(self):
        """The journal's latest seq now: pass it as ``after=``/``since=`` to look only at what
        happens next."""
        if self.admin_port:
            return self.status()["journal_seq"]
        entries = self.journal()
        return entries[-1]["seq"] if entries else 0

    # -- admin --------------------------------------------------------------------------
    def http(self, method, path, body=None, headers=None, timeout_s=HTTP_TIMEOUT_S):
        """(status, parsed JSON body or raw text)."""
        return AdminClient(self.admin_host or "127.0.0.1", self.admin_port,
                           timeout_s).request(method, path, body, headers)

    def status(self):
        return self.admin.call("GET", "/v1/status")

    def admin_journal(self, since=0, kind="events"):
        return self.admin.call("GET", f"/v1/journal?since={since}&kind={kind}")

    def fault(self, rule=None, *, phase=None, action=None, name=None, times=None, **match):
        """Adds one fault rule after the others (docs/script-format.md) and returns it with its
        id. Either a whole rule: ``fault({"match": {...}, "action": {...}})``, or its parts:
        ``fault(phase="start_api", client_id=1, action="refuse_client_id", times=1)``;
        ``action`` is a type name or an action object."""
        if rule is None:
            if action is None:
                raise TypeError("fault() needs a rule or action=")
            if phase is not None:
                match["phase"] = phase
            rule = {"match": match,
                    "action": {"type": action} if isinstance(action, str) else action}
            if name is not None:
                rule["name"] = name
            if times is not None:
                rule["times"] = times
        elif phase or action or name or times or match:
            raise TypeError("fault(): give a whole rule or its parts, not both")
        return self.admin.call("POST", "/v1/rules", rule, expect=201)

    def rules(self, rules=None, state=None):
        """Without arguments: the current rules. With a list: replaces every rule at once
        (atomic; ``[]`` clears them), optionally the named state too; returns the new rules."""
        if rules is None and state is None:
            return self.admin.call("GET", "/v1/rules")["rules"]
        body = {"rules": list(rules or [])}
        if state is not None:
            body["state"] = state
        return self.admin.call("PUT", "/v1/rules", body)["rules"]

    def drop_all(self):
        """Every API client gets a FIN (POST /v1/actions/drop-all)."""
        return self.admin.call("POST", "/v1/actions/drop-all")

    def reset_all(self):
        """Every API client gets an RST."""
        return self.admin.call("POST", "/v1/actions/reset-all")

    def restart(self, down_ms=5000, how=None):
        """The nightly restart, now: every client dropped, connects refused for down_ms, then
        back (POST /v1/actions/restart)."""
        body = {"down_ms": down_ms}
        if how is not None:
            body["how"] = how
        return self.admin.call("POST", "/v1/actions/restart", body)

    def reset(self):
        """Back to the start-up script: rules, state, settings; every connection dropped."""
        return self.admin.call("POST", "/v1/reset")

    # -- raw API clients ----------------------------------------------------------------
    def client(self, **kw):
        """A raw IBClient connected to the API port (closed at stop)."""
        c = IBClient(self.api_port, host=self.host, **kw)
        self.clients.append(c)
        return c

    def ready_client(self, client_id=1, version_range="v157..178", **kw):
        """A raw IBClient past the handshake and the start-up burst."""
        c = self.client(**kw)
        c.handshake(client_id=client_id, version_range=version_range)
        return c

    def conn_id_of(self, client, timeout_s=5.0):
        """mockgw's connection id for one of our sockets (from the accept event's peer)."""
        peer = f"127.0.0.1:{client.local_port()}"
        return self.wait_event("accept", timeout_s, peer=peer)["conn"]
