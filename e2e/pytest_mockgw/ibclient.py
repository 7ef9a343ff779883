"""A tiny raw IB TWS API client (docs/protocol.md): what the e2e tests and `Mockgw.client()` use.

Speaks bytes, not objects: the tests check exact layouts. Every read has a deadline; nothing
here sleeps. Frames are ``uint32 BE length + payload``; a payload is fields each terminated by
one NUL, so its fields are ``payload.split(b"\\0")[:-1]`` (an empty last field stays visible as
``""``: ``4\\0 2\\0 -1\\0 2104\\0 text\\0 \\0`` has six fields, the last one empty).
"""

import socket
import struct
import time

HOST = "127.0.0.1"
DEFAULT_TIMEOUT_S = 5.0


def wait_until(cond, timeout_s, interval_s=0.01, what=None):
    """Polls cond() until it returns something truthy (returned) or timeout_s passes
    (AssertionError naming what). The only way these tests wait for something to happen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or cond}")
        time.sleep(interval_s)


class ProtocolError(AssertionError):
    """The peer sent something that is not a well-formed frame."""


class Eof(AssertionError):
    """The peer closed the connection while a frame was expected."""


def hello_bytes(version_range="v157..178", options=None):
    """``API\\0`` + BE length + ``v<min>..<max>[ <options>]`` (no NUL after the string)."""
    text = version_range if not options else f"{version_range} {options}"
    raw = text.encode("ascii")
    return b"API\0" + struct.pack(">I", len(raw)) + raw


def encode_payload(fields):
    """Each field as ASCII text followed by one NUL."""
    out = bytearray()
    for f in fields:
        if isinstance(f, bytes):
            out += f
        else:
            out += str(f).encode("utf-8")
        out += b"\0"
    return bytes(out)


def encode_frame(fields):
    payload = encode_payload(fields)
    return struct.pack(">I", len(payload)) + payload


def decode_payload(payload):
    """Fields of one payload as str. Raises ProtocolError when the payload does not end in NUL
    (every field, the last one included, must be NUL-terminated: IB_WIRE §1.1)."""
    if not payload.endswith(b"\0"):
        raise ProtocolError(f"payload does not end with NUL: {payload[-40:]!r}")
    return [p.decode("utf-8", "surrogateescape") for p in payload.split(b"\0")[:-1]]


def fields_str(fields):
    """Fields in the notation of IB_WIRE.md: comma-separated."""
    return ",".join(fields)


class IBClient:
    """One TCP connection to mockgw's API port."""

    def __init__(self, port, host=HOST, timeout=DEFAULT_TIMEOUT_S, rcvbuf=None, connect=True):
        self.port = port
        self.host = host
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.server_version = None
        self.server_time = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect(), so the window the kernel advertises is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if connect:
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))

    # -- plumbing -------------------------------------------------------------------------
    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def local_port(self):
        return self.sock.getsockname()[1]

    def send_raw(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_frame(self, fields):
        self.send_raw(encode_frame(fields))

    def send_fields(self, text):
        """Fields in IB_WIRE notation: ``"49,1"``; a trailing comma is an empty last field."""
        self.send_frame(text.split(","))

    def _fill(self, deadline):
        """Reads once into the buffer; False at EOF. Raises socket.timeout past the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            if self.eof or not self._fill(deadline):
                raise Eof(f"EOF after {len(self.buf)} of {n} bytes: {bytes(self.buf)!r}")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_payload(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        head = self.read_exact(4, timeout=max(0.0, deadline - time.monotonic()))
        (length,) = struct.unpack(">I", head)
        if length == 0 or length > 0xFFFFFF:
            raise ProtocolError(f"bad frame length {length}")
        return self.read_exact(length, timeout=max(0.001, deadline - time.monotonic()))

    def read_frame(self, timeout=None):
        """The next frame's fields (list of str)."""
        return decode_payload(self.read_payload(timeout))

    def read_frames(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return [self.read_frame(max(0.001, deadline - time.monotonic())) for _ in range(n)]

    def read_until(self, pred, timeout=None, limit=100000):
        """Frames up to and including the first one for which pred(fields) is true."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = []
        while len(out) < limit:
            f = self.read_frame(max(0.001, deadline - time.monotonic()))
            out.append(f)
            if pred(f):
                return out
        raise AssertionError(f"no matching frame within {limit} frames")

    def read_until_id(self, msg_id, timeout=None):
        return self.read_until(lambda f: f[0] == str(msg_id), timeout)

    def expect_silence(self, window_s):
        """Asserts that no byte arrives (and no EOF) within window_s."""
        assert not self.buf, f"unexpected buffered bytes: {bytes(self.buf)!r}"
        deadline = time.monotonic() + window_s
        try:
            got = self._fill(deadline)
        except socket.timeout:
            return
        if got:
            raise AssertionError(f"unexpected bytes within {window_s}s: {bytes(self.buf)!r}")
        raise AssertionError(f"unexpected EOF within {window_s}s")

    def wait_eof(self, timeout=None):
        """Reads until EOF (or RST), returns every byte that came before it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.eof:
            self._fill(deadline)
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def is_closed_by_peer(self, timeout):
        """True when EOF/RST arrives within timeout (bytes before it are discarded)."""
        try:
            self.wait_eof(timeout)
            return True
        except (socket.timeout, TimeoutError):
            return False

    # -- protocol steps -------------------------------------------------------------------
    def send_hello(self, version_range="v157..178", options=None):
        self.send_raw(hello_bytes(version_range, options))

    def read_version_reply(self, timeout=None):
        fields = self.read_frame(timeout)
        assert len(fields) == 2, f"version reply must have 2 fields, got {fields!r}"
        self.server_version = int(fields[0])
        self.server_time = fields[1]
        return fields

    def start_api(self, client_id=1, caps=""):
        self.send_frame([71, 2, client_id, caps])

    def read_burst(self, timeout=None):
        """The start-up burst: 15, 9, 2104, 2106, 2158 (5 frames)."""
        return self.read_frames(5, timeout)

    def handshake(self, client_id=1, version_range="v157..178", options=None, timeout=None):
        """hello -> version reply -> START_API -> start-up burst. Returns the burst."""
        self.send_hello(version_range, options)
        self.read_version_reply(timeout)
        self.start_api(client_id)
        burst = self.read_burst(timeout)
        assert [f[0] for f in burst] == ["15", "9", "4", "4", "4"], burst
        return burst

    def request(self, text, until_id, timeout=None):
        """Sends fields (IB_WIRE notation) and reads frames up to the first with until_id."""
        self.send_fields(text)
        return self.read_until_id(until_id, timeout)


def connect_ready(port, client_id=1, **kw):
    """A connected, ready client (handshake done, burst consumed)."""
    c = IBClient(port, **{k: v for k, v in kw.items() if k in ("timeout", "rcvbuf")})
    c.handshake(client_id=client_id,
                **{k: v for k, v in kw.items() if k in ("version_range", "options")})
    return c
