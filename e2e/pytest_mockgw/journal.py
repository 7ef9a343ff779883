"""Assertions on what a gateway's journal shows your app did (docs/journal.md).

Each helper reads the gateway's journal, waits where the answer can still change (bounded), and
fails with an AssertionError that says what was expected and what the journal shows instead: a
line per connection (accept, handshake, client id, how it ended).
"""

import socket
import struct
import time
from datetime import datetime, timezone
from pathlib import Path

from .ibclient import wait_until

ENDS_HANDSHAKE = ("ready", "half_ready", "disconnect")
MAX_SUMMARY_CONNS = 25


def entry_time(e):
    """A journal entry's ``t`` as a POSIX timestamp (float seconds)."""
    return datetime.strptime(e["t"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def _hms(e):
    return e["t"][11:23] if "t" in e else "?"


def _seq_of(after):
    if after is None:
        return 0
    if isinstance(after, dict):
        return after["seq"]
    return int(after)


def _describe(e):
    ev = e["event"]
    if ev == "accept":
        return f"accept {e.get('peer', '')}".rstrip()
    if ev == "hello":
        return f"hello v{e.get('client_min')}..{e.get('client_max')}->{e.get('version')}"
    if ev == "start_api":
        return f"start_api(client {e.get('client_id')})"
    if ev == "client_id_in_use":
        return f"326 client id in use (held by {e.get('held_by')})"
    if ev == "fault":
        later = f" in {e['after_ms']}ms" if e.get("after_ms") else ""
        return f"fault {e.get('action')}{later} [{e.get('rule')}]"
    if ev == "fault_applied":
        return f"fault {e.get('action')} applied"
    if ev in ("close", "disconnect"):
        return f"{ev} ({e.get('reason')})"
    if ev in ("bad_input", "bad_request"):
        return f"{ev} ({e.get('what') or e.get('request')}: {e.get('error')})"
    return ev


def summarize_connections(entries, limit=MAX_SUMMARY_CONNS):
    """One line per connection of the journal: its events, oldest first."""
    conns = {}
    server = []
    for e in entries:
        if "event" not in e:
            continue
        if e.get("conn"):
            conns.setdefault(e["conn"], []).append(e)
        elif e["event"] not in ("listening", "rules"):
            server.append(e)
    lines = []
    ids = sorted(conns)
    if len(ids) > limit:
        lines.append(f"  ... {len(ids) - limit} earlier connections not shown")
        ids = ids[-limit:]
    for conn in ids:
        evs = conns[conn]
        cid = next((e["client_id"] for e in evs if e.get("client_id") is not None), None)
        who = f"conn {conn}" + (f" client {cid}" if cid is not None else "")
        lines.append(f"  {who} at {_hms(evs[0])}: " + " -> ".join(_describe(e) for e in evs))
    if server:
        lines.append("  server: " + ", ".join(f"{_describe(e)} at {_hms(e)}" for e in server))
    return "\n".join(lines) if lines else "  (no connections in the journal)"


def _journal_report(gw):
    return f"what the journal of mockgw {gw.name} (api port {gw.port}) shows:\n" + \
        summarize_connections(gw.journal("events"))


def assert_handshake_completed(gw, client_id=None, timeout_s=5.0, after=0):
    """A connection (with client_id, if given) completed the handshake after ``after`` (a seq
    from ``gw.mark()``): mockgw sent the start-up burst (journal event ``ready``). Waits up to
    timeout_s; returns the ``ready`` event."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    since = _seq_of(after)

    def found():
        return [e for e in gw.events("ready") if e["seq"] > since
                and (client_id is None or e.get("client_id") == client_id)]

    try:
        return wait_until(found, timeout_s)[0]
    except AssertionError:
        pass
    who = "any connection" if client_id is None else f"a connection with client id {client_id}"
    done = [e.get("client_id") for e in gw.events("ready") if e["seq"] > since]
    raise AssertionError(
        f"{who} did not complete the handshake within {timeout_s}s"
        + (f" after seq {since}" if since else "")
        + f" (client ids that did: {done or 'none'}); "
        + _journal_report(gw))


def _ready_conns(entries, client_id):
    return {e["conn"] for e in entries if e.get("event") in ("ready", "half_ready")
            and (client_id is None or e.get("client_id") == client_id)}


def assert_reconnected_within(gw, seconds, after=0, client_id=None, wait_s=5.0):
    """After the first disconnect of a ready connection (with client_id) that follows ``after``
    (a seq from ``gw.mark()``, or a journal entry), a new connection (with client_id) completed
    the handshake within ``seconds`` of it (journal times). Waits up to wait_s for the
    disconnect, then until ``seconds`` have passed. Returns the delay in seconds."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    since = _seq_of(after)
    who = "" if client_id is None else f" with client id {client_id}"

    def the_drop():
        entries = gw.journal("events")
        ready = _ready_conns(entries, client_id)
        return [e for e in entries if e["event"] == "disconnect" and e["seq"] > since
                and e["conn"] in ready]

    try:
        drop = wait_until(the_drop, wait_s)[0]
    except AssertionError:
        raise AssertionError(f"no ready connection{who} was disconnected after seq {since} "
                             f"(waited {wait_s}s), so nothing reconnected; "
                             + _journal_report(gw)) from None
    t0 = entry_time(drop)

    def back():
        return [e for e in gw.events("ready") if e["seq"] > drop["seq"]
                and (client_id is None or e.get("client_id") == client_id)]

    deadline_s = max(0.0, t0 + seconds - time.time()) + 0.5
    try:
        ready = wait_until(back, deadline_s)[0]
        delay = entry_time(ready) - t0
    except AssertionError:
        ready, delay = None, None
    if ready is not None and delay <= seconds:
        return delay
    what = (f"the next completed handshake came {delay:.3f}s after it (conn {ready['conn']})"
            if ready is not None else
            f"no handshake{who} completed since (waited until {seconds + 0.5:.1f}s after it)")
    attempts = [e for e in gw.events("accept") if e["seq"] > drop["seq"]]
    raise AssertionError(
        f"the client{who} did not reconnect within {seconds}s of the disconnect of conn "
        f"{drop['conn']} (client {drop.get('client_id')}, {drop.get('reason')!r}) at "
        f"{_hms(drop)}: {what}; {len(attempts)} connection attempt(s) since; "
        + _journal_report(gw))


def _client_side_open(peer, server_host, server_port):
    """True when the client's end of peer -> server is still open (Linux /proc/net/tcp): the
    way to know whether an app gave up on a connection mockgw silenced (mockgw no longer
    reads it, so it never sees the close). None when it cannot be told."""
    try:
        host, port = peer.rsplit(":", 1)
        want_local = (socket.inet_aton(host), int(port))
        want_remote = (socket.inet_aton(server_host), int(server_port))
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except (OSError, ValueError):
        return None

    def addr(text):
        a, p = text.split(":")
        return struct.pack("<I", int(a, 16)), int(p, 16)

    for line in lines:
        cols = line.split()
        if addr(cols[1]) == want_local and addr(cols[2]) == want_remote:
            return cols[3] in ("01", "08")  # ESTABLISHED, CLOSE_WAIT: the app still holds it
    return False


def handshakes_in_flight(gw, since=0):
    """[(seq, t, [conns])] each time the number of connections between accept and the end of
    their handshake (ready, half_ready or disconnect) changed. A connection mockgw silenced
    before it was ready stays in flight while the app still holds its socket; once the app
    has closed it, it counts only up to the silence (the journal cannot tell when the app
    gave up)."""
    entries = [e for e in gw.journal("events") if e["seq"] > since]
    peers = {e["conn"]: e.get("peer") for e in entries if e["event"] == "accept"}
    open_now = set()
    timeline = []
    for e in entries:
        conn, ev = e.get("conn"), e["event"]
        changed = False
        if ev == "accept":
            open_now.add(conn)
            changed = True
        elif conn in open_now and (ev in ENDS_HANDSHAKE or _silences(e)):
            if ev in ENDS_HANDSHAKE or not _client_side_open(peers.get(conn, ""), gw.host,
                                                             gw.port):
                open_now.discard(conn)
                changed = True
        if changed:
            timeline.append((e["seq"], e["t"], sorted(open_now)))
    return timeline


def _silences(e):
    if e["event"] == "silenced":
        return True
    if e["event"] == "fault" and e.get("action") == "silent" and not e.get("after_ms"):
        return True
    return e["event"] == "fault_applied" and e.get("action") == "silent"


def assert_max_handshakes_in_flight(gw, limit=1, since=0):
    """At no point were more than ``limit`` connections in the middle of the handshake at once
    (accepted, not yet ready or gone): the app does not open a second connection while one is
    still connecting. ``since``: a seq from ``gw.mark()``."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    since = _seq_of(since)
    worst = max(handshakes_in_flight(gw, since), key=lambda x: len(x[2]), default=None)
    if worst is None or len(worst[2]) <= limit:
        return len(worst[2]) if worst else 0
    seq, t, conns = worst
    raise AssertionError(
        f"{len(conns)} handshakes were in flight at once (limit {limit}) at {t[11:23]} "
        f"(seq {seq}): connections {conns}; " + _journal_report(gw))


def assert_no_protocol_errors(gw):
    """mockgw saw nothing malformed from the app: no bad_input or bad_request event."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    bad = [e for e in gw.journal("events") if e["event"] in ("bad_input", "bad_request")]
    if bad:
        raise AssertionError(f"the app sent {len(bad)} malformed message(s): "
                             + "; ".join(f"conn {e.get('conn')}: {_describe(e)}" for e in bad[:5])
                             + "; " + _journal_report(gw))


def journal_tail(gw, n=40, width=400):
    """The last n journal entries as text (for a failure report)."""
    lines = [line if len(line) <= width else line[:width] + "..." for line in gw.journal_lines(n)]
    return "\n".join(lines)
