#!/usr/bin/env python3
"""resilient_client.py - the connection layer of a well-made IB API trading app, as a black box.

The harness starts this program against mockgw (docs/external-clients.md) and judges it only by
what mockgw sees on the wire and by its exit status. resilient_client.js is the same program in
Node.js: same flags, same stdout lines, same timing rules, same jitter for the same --seed.

What it does: one connection at a time; API handshake (`API\\0` + `v100..176`), startApi, ready
once both nextValidId (9) and managedAccounts (15) arrived within --connect-timeout-s. While
ready it probes with reqCurrentTime (49), one at a time, each --probe-interval-s (at least 1 s:
real TWS ignores a faster one) after the previous answer, and calls the session dead if an
answer does not come within --probe-timeout-s. Error 326 (client id in use) moves to the next
client id after 1 s; other failures back off 1, 2, 4, 8 s (+0-25 % jitter); a dropped session
is retried after 0.5 s (+0-0.25 s), but never less than 1 s after the previous attempt began, so
a gateway that drops every session at once does not get a reconnect storm.
--naive turns it into a buggy app: same id after 326, 0.05 s retries, no probes.

stdout (flushed per line):
  ready client_id=N attempt=A          (A counts every connection attempt since start)
  refused client_id=N (326)
  attempt failed: timeout|refused|closed|reset
  silent: no currentTime in X s
  dropped: closed|reset
  summary: ready=R refused=F failures=E drops=D client_id=N state=ready|not-ready
(drops counts every lost ready session, the silent ones included; failures counts attempts that
never got ready, 326 aside.)
Exit status: 0 if the session is ready when it stops (SIGTERM, SIGINT, --run-s), else 1.
Python 3.11, standard library only.
"""
import argparse
import errno
import select
import signal
import socket
import struct
import sys
import time

SLICE_S = 0.1            # longest single wait, so a stop request is seen within 0.1 s
MIN_PROBE_GAP_S = 1.0    # real TWS ignores a reqCurrentTime < 1 s after the last answered one
MIN_ATTEMPT_GAP_S = 1.0  # connection attempts never start closer together (naive mode aside)

# How a failed TCP connect is reported; any other error (unreachable...) counts as 'refused'.
CONNECT_ERRORS = {errno.ECONNREFUSED: "refused", errno.ETIMEDOUT: "timeout",
                  errno.ECONNRESET: "reset"}


class Lost(Exception):
    """The connection ended; args[0] is why: 'closed' (EOF) or 'reset' (socket error)."""


class Jitter:
    """xorshift32, seeded; the same generator as in resilient_client.js."""

    def __init__(self, seed):
        self.state = ((seed ^ 0x9E3779B9) & 0xFFFFFFFF) or 1

    def uniform(self, hi):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return hi * x / 4294967296.0


def frame(*fields):
    """One API message: 4-byte big-endian length, then every field NUL-terminated."""
    payload = b"".join(f.encode("ascii") + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


class Conn:
    """One TCP connection to the gateway, with a frame parser. Every wait has a deadline."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Lost("reset") from e

    def next_frame(self, until):
        """Return the next frame's fields, or None if nothing complete arrived before `until`
        (never waits longer than SLICE_S). Raises Lost on EOF or a socket error."""
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if n == 0 or n > 0xFFFFFF:
                    raise Lost("closed")        # not the IB protocol: give up on this socket
                if len(self.buf) >= 4 + n:
                    payload, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return payload.decode("ascii", "replace").split("\0")[:-1]
            wait = min(until - time.monotonic(), SLICE_S)
            if wait <= 0 or not select.select([self.sock], [], [], wait)[0]:
                return None
            try:
                data = self.sock.recv(65536)
            except OSError as e:
                raise Lost("reset") from e
            if not data:
                raise Lost("closed")
            self.buf += data

    def close_cleanly(self):
        """FIN, then give the peer up to 0.2 s to close its side, so no RST is needed."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                if select.select([self.sock], [], [], end - time.monotonic())[0]:
                    if not self.sock.recv(65536):
                        break
        except OSError:
            pass
        self.sock.close()


class App:
    def __init__(self, opt):
        self.opt = opt
        self.jitter = Jitter(opt.seed)
        self.client_id = opt.client_id
        self.ready = self.refused = self.failures = self.drops = self.attempts = 0
        self.backoff_step = 0           # next failure waits min(2**step, 8) s
        self.attempt_at = 0.0           # when the latest connection attempt began
        self.is_ready = False
        self.stop_signal = False
        self.stop_at = time.monotonic() + opt.run_s if opt.run_s > 0 else None

    def stopping(self):
        return self.stop_signal or (self.stop_at is not None and time.monotonic() >= self.stop_at)

    def say(self, line):
        print(line, flush=True)

    def sleep(self, seconds):
        end = time.monotonic() + seconds
        while not self.stopping() and time.monotonic() < end:
            time.sleep(min(SLICE_S, end - time.monotonic()))

    # -- one attempt: TCP connect, handshake, startApi, wait for 9 and 15 ---------------------
    def connect(self):
        """Return (Conn, 'ready'), (None, '326'), (None, failure reason) or (None, 'stop')."""
        self.attempts += 1
        self.attempt_at = time.monotonic()
        deadline = self.attempt_at + self.opt.connect_timeout_s
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                self.opt.host, self.opt.port, type=socket.SOCK_STREAM)[0]
        except OSError:
            return None, "refused"              # unresolvable host: nothing to connect to
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        while err == errno.EINPROGRESS:         # wait for the TCP handshake in short slices
            if self.stopping():
                sock.close()
                return None, "stop"
            wait = min(deadline - time.monotonic(), SLICE_S)
            if wait <= 0:
                sock.close()
                return None, "timeout"
            if select.select([], [sock], [], wait)[1]:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:                                 # RST right after accept is a reset, not a refusal
            sock.close()
            return None, CONNECT_ERRORS.get(err, "refused")
        sock.settimeout(1.0)                    # bounds sendall; reads go through select
        conn = Conn(sock)
        try:
            hello = b"v100..176"                # supported range; no NUL inside this frame
            conn.send(b"API\0" + struct.pack(">I", len(hello)) + hello)
            got_version = got_9 = got_15 = False
            while not (got_9 and got_15):
                if self.stopping():
                    sock.close()
                    return None, "stop"
                if time.monotonic() >= deadline:
                    sock.close()
                    return None, "timeout"
                f = conn.next_frame(deadline)
                if f is None:
                    continue
                if not got_version:             # [server_version, connection_time]
                    got_version = True
                    conn.send(frame("71", "2", str(self.client_id), ""))   # startApi
                elif f[0] == "4" and len(f) > 3 and f[3] == "326":
                    sock.close()
                    return None, "326"
                elif f[0] == "9":
                    got_9 = True
                elif f[0] == "15":
                    got_15 = True
        except Lost as lost:
            sock.close()
            return None, lost.args[0]
        return conn, "ready"

    # -- while ready: probe, watch for EOF/reset -------------------------------------------------
    def serve(self, conn):
        """Return 'stop', 'silent', 'closed' or 'reset'. The socket stays open on 'stop'."""
        o = self.opt
        probe_at = time.monotonic() + max(o.probe_interval_s, MIN_PROBE_GAP_S)
        sent_at = None                          # the unanswered probe's send time, if any
        try:
            while not self.stopping():
                now = time.monotonic()
                if not o.naive:
                    if sent_at is None and now >= probe_at:
                        conn.send(frame("49", "1"))          # reqCurrentTime
                        sent_at = now
                    if sent_at is not None and now - sent_at >= o.probe_timeout_s:
                        self.say(f"silent: no currentTime in {o.probe_timeout_s:g} s")
                        return "silent"
                wake = sent_at + o.probe_timeout_s if sent_at is not None else probe_at
                f = conn.next_frame(wake if not o.naive else now + SLICE_S)
                if f and f[0] == "49" and sent_at is not None:
                    sent_at = None              # next probe one interval after this answer
                    probe_at = time.monotonic() + max(o.probe_interval_s, MIN_PROBE_GAP_S)
        except Lost as lost:
            return lost.args[0]
        return "stop"

    # -- the reconnect loop -----------------------------------------------------------------------
    def backoff(self):
        """Delay after a failed attempt: 1, 2, 4, 8, 8... s, each plus 0-25 %."""
        base = min(2.0 ** self.backoff_step, 8.0)
        self.backoff_step += 1
        return base + self.jitter.uniform(base * 0.25)

    def run(self):
        o = self.opt
        while not self.stopping():
            conn, outcome = self.connect()
            if outcome == "stop":
                break
            if outcome == "326":
                self.refused += 1
                self.say(f"refused client_id={self.client_id} (326)")
                if not o.naive:                 # next id, wrapping to the first after the last
                    self.client_id += 1
                    if self.client_id > o.max_client_id:
                        self.client_id = o.client_id
                delay = 0.05 if o.naive else 1.0 + self.jitter.uniform(0.25)
            elif outcome != "ready":
                self.failures += 1
                self.say(f"attempt failed: {outcome}")
                delay = 0.05 if o.naive else self.backoff()
            else:
                self.ready += 1
                self.is_ready = True
                self.backoff_step = 0
                self.say(f"ready client_id={self.client_id} attempt={self.attempts}")
                why = self.serve(conn)
                if why == "stop":
                    conn.close_cleanly()
                    break
                conn.sock.close()
                self.is_ready = False
                self.drops += 1
                if why == "silent":             # a hung gateway: back off from 1 s
                    delay = 0.05 if o.naive else self.backoff()
                else:                           # dropped: the first retry is quick
                    self.say(f"dropped: {why}")
                    since = time.monotonic() - self.attempt_at
                    quick = max(0.5, MIN_ATTEMPT_GAP_S - since)
                    delay = 0.05 if o.naive else quick + self.jitter.uniform(0.25)
            self.sleep(delay)
        state = "ready" if self.is_ready else "not-ready"
        self.say(f"summary: ready={self.ready} refused={self.refused} failures={self.failures} "
                 f"drops={self.drops} client_id={self.client_id} state={state}")
        return 0 if self.is_ready else 1


def parse_args(argv):
    p = argparse.ArgumentParser(description="Resilient IB API client (mockgw harness example).",
                                allow_abbrev=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", type=int, default=1)
    p.add_argument("--max-client-id", type=int, default=None, help="default: client id + 9")
    p.add_argument("--connect-timeout-s", type=float, default=4.0)
    p.add_argument("--probe-interval-s", type=float, default=1.0)
    p.add_argument("--probe-timeout-s", type=float, default=2.0)
    p.add_argument("--run-s", type=float, default=0.0, help="0 = until SIGTERM/SIGINT")
    p.add_argument("--naive", action="store_true", help="behave like a buggy app")
    p.add_argument("--seed", type=int, default=None, help="jitter seed (default: from time)")
    o = p.parse_args(argv)
    if o.max_client_id is None:
        o.max_client_id = o.client_id + 9
    if o.seed is None:
        o.seed = int(time.time() * 1000)
    o.seed &= 0xFFFFFFFF
    if o.max_client_id < o.client_id:
        p.error("--max-client-id must be >= --client-id")
    if min(o.connect_timeout_s, o.probe_interval_s, o.probe_timeout_s) <= 0 or o.run_s < 0:
        p.error("timeouts and intervals must be > 0, --run-s >= 0")
    return o


def main():
    app = App(parse_args(sys.argv[1:]))

    def on_signal(signum, frame_):
        app.stop_signal = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return app.run()


if __name__ == "__main__":
    sys.exit(main())
