"""An app tested against mockgw with the pytest_mockgw plugin (docs/pytest-plugin.md).

Copy this file into your repository and replace ``App`` with your application (point it at
``mockgw.port``); run it with the plugin installed (``pip install --no-deps ./e2e`` from a
mockgw checkout) or loaded by hand:

    PYTHONPATH=/path/to/mockgw/e2e MOCKGW_BIN=/path/to/mockgw python3 -m pytest -p pytest_mockgw

Every wait below has a deadline: a broken app gives a red test with the journal tail, never a
hang.
"""

import socket
import struct
import threading
import time

import pytest

from pytest_mockgw import (assert_handshake_completed, assert_max_handshakes_in_flight,
                           assert_no_protocol_errors, assert_reconnected_within, wait_until)


# -- the app under test (yours goes here) ----------------------------------------------------
def encode(fields):
    payload = b"".join(str(f).encode() + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


class App:
    """A tiny IB API app on a raw socket: handshake, START_API, waits for nextValidId, asks for
    the time; reconnects when the connection goes away or the handshake hangs; moves to the
    next client id when its own is in use (error 326)."""

    HANDSHAKE_TIMEOUT_S = 1.0
    RECONNECT_DELAY_S = 0.2

    def __init__(self, port, client_id, host="127.0.0.1"):
        self.host, self.port, self.client_id = host, port, client_id
        self.ready = threading.Event()
        self.server_time = None
        self.errors = []  # (code, text) of every error/notice frame
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._thread.join(5)
        assert not self._thread.is_alive(), "the app did not stop within 5 s"

    def _run(self):
        while not self._stopping.is_set():
            try:
                self._session()
            except (OSError, EOFError):
                pass  # refused, dropped, reset or timed out: connect again
            self.ready.clear()
            self._stopping.wait(self.RECONNECT_DELAY_S)

    def _session(self):
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            sock.settimeout(0.1)  # short reads, so that stop() is noticed
            self._buf = b""
            deadline = time.monotonic() + self.HANDSHAKE_TIMEOUT_S
            versions = b"v100..178"
            sock.sendall(b"API\0" + struct.pack(">I", len(versions)) + versions)
            self._read(sock, deadline)  # server version, connection time
            sock.sendall(encode([71, 2, self.client_id, ""]))  # START_API
            while not self._stopping.is_set():
                fields = self._read(sock, None if self.ready.is_set() else deadline)
                if fields:
                    self._handle(sock, fields)

    def _handle(self, sock, fields):
        if fields[0] == "9":  # nextValidId: ready
            self.ready.set()
            sock.sendall(encode([49, 1]))  # reqCurrentTime
        elif fields[0] == "49":
            self.server_time = int(fields[2])
        elif fields[0] == "4":
            code = int(fields[3])
            self.errors.append((code, fields[4]))
            if code == 326:  # client id in use: the gateway closes; next time use another
                self.client_id += 1

    def _read(self, sock, deadline):
        """One frame's fields; None when nothing came within 0.1 s (ready) or at stop."""
        while len(self._buf) < 4 or len(self._buf) < 4 + struct.unpack(">I", self._buf[:4])[0]:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("handshake timed out")
            if self._stopping.is_set():
                return None
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                if deadline is None:
                    return None
                continue
            if not chunk:
                raise EOFError("the gateway closed the connection")
            self._buf += chunk
        n = struct.unpack(">I", self._buf[:4])[0]
        payload, self._buf = self._buf[4:4 + n], self._buf[4 + n:]
        return payload.decode().split("\0")[:-1]


# -- the tests --------------------------------------------------------------------------------
@pytest.fixture
def app(mockgw):
    app = App(mockgw.port, client_id=7).start()
    yield app
    app.stop()


def test_app_connects_and_asks_for_the_time(mockgw, app):
    assert_handshake_completed(mockgw, client_id=7)
    # What the app sent, as mockgw saw it on the wire:
    wait_until(lambda: [f for f in mockgw.frames("in") if f.get("msg") == "reqCurrentTime"], 5,
               what="reqCurrentTime from the app")
    wait_until(lambda: app.server_time, 5, what="the app's server time")
    assert abs(app.server_time - time.time()) < 10
    assert [code for code, _ in app.errors] == [2104, 2106, 2158]  # the farm notices
    assert_no_protocol_errors(mockgw)


def test_app_reconnects_after_the_gateway_drops_it(mockgw, app):
    assert_handshake_completed(mockgw, client_id=7)
    mark = mockgw.mark()
    mockgw.drop_all()  # every client gets a FIN, as when IB Gateway goes away
    assert_reconnected_within(mockgw, 2.0, after=mark, client_id=7)
    assert_max_handshakes_in_flight(mockgw, 1)
    assert mockgw.client_ids() == [7, 7]


def test_app_gives_up_on_a_hung_handshake(mockgw, app):
    assert_handshake_completed(mockgw, client_id=7)
    # Flip a fault mid-test: the next connection gets the version reply, then silence.
    mockgw.fault(phase="version_sent", action="silent", times=1)
    mark = mockgw.mark()
    mockgw.restart(down_ms=300)  # drop everyone; connects are refused for 0.3 s
    assert_reconnected_within(mockgw, 4.0, after=mark, client_id=7)
    assert_max_handshakes_in_flight(mockgw, 1)  # it closed the hung one before trying again
    assert len(mockgw.events("fault", action="silent")) == 1


@pytest.mark.mockgw(fault="refuse-client-id=7")  # a --fault preset from the start
def test_app_moves_to_another_client_id_when_its_own_is_in_use(mockgw, app):
    assert_handshake_completed(mockgw, client_id=8)
    assert mockgw.client_ids() == [7, 8]
    assert (326, "Unable to connect as the client id is already in use. "
                 "Retry with a unique client id.") in app.errors
