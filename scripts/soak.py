#!/usr/bin/python3
"""Soak: mockgw under hours of mixed load, sampled for leaks.

    scripts/soak.py [--duration-s 3600] [--interval-s 5] [--mockgw BIN] [--csv FILE]
                    [--load "CMD with {port} and {admin}" [--load-only]] [--seed N]

Starts mockgw on 127.0.0.1 port 0 (API and admin) and drives it for the duration with:
  * churn: clients that handshake (client ids 1..40, so 326s happen), send reqIds,
    reqCurrentTime, historical bars and contract details, and close — or vanish with an RST;
  * faults flipped through the admin API: delays, 1100/1102 flaps, silence at accept, 326
    sequences, drop-all, short restarts;
  * hostile clients: garbage, oversized lengths, bytes before "API", clients that never read;
  * with --load, a command run over and over (e.g. the harness against this gateway:
    --load "build/harness/harness --level exhaustive --gateway 127.0.0.1:{port}
    --admin 127.0.0.1:{admin}"); a failing run fails the soak. With --load-only, that command
    is the only load (the harness resets the gateway and sets its own rules: the built-in
    faults would fail its scenarios). At the end a run still going gets SIGTERM (the harness
    then stops cleanly); that one is not judged.
Every interval it samples mockgw's VmRSS and open fds (/proc). After a warm-up (a fifth of
the run), the samples are split into thirds: the soak fails (exit 1) when the median RSS of the
last third exceeds the first third's by more than max(4 MiB, 10 %), or when the lowest fd count
of the last third exceeds the first third's by more than 4 (connections come and go; a leak
raises the floor). Exit 2: usage or mockgw would not start. Standard library only; loopback only;
signals go to the mockgw this script started, nothing else.
"""

import argparse
import csv
import json
import os
import random
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e"))
from pytest_mockgw.ibclient import IBClient, encode_frame, hello_bytes  # noqa: E402

HOST = "127.0.0.1"


def find_mockgw(explicit):
    for cand in [explicit, os.environ.get("MOCKGW_BIN"), ROOT / "build" / "mockgw" / "mockgw"]:
        if cand and os.access(str(cand), os.X_OK):
            return str(cand)
    sys.exit("soak: no mockgw binary (build it, or pass --mockgw / set MOCKGW_BIN)")


class Gateway:
    def __init__(self, binary, seed, workdir):
        ready = Path(workdir) / "ready.json"
        self.proc = subprocess.Popen(
            [binary, "--listen", f"{HOST}:0", "--admin", f"{HOST}:0", "--seed", str(seed),
             "--ready-file", str(ready), "--max-clients", "0"],
            stdout=subprocess.DEVNULL, stderr=open(Path(workdir) / "mockgw.stderr", "wb"))
        deadline = time.monotonic() + 10
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"soak: mockgw did not start (see {workdir}/mockgw.stderr)")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        self.port, self.admin = info["api"], info["admin"]

    def admin_call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{HOST}:{self.admin}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def sample(self):
        pid = self.proc.pid
        rss_kib = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss_kib = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss_kib, fds

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


class Load:
    def __init__(self, gw, seed, stop):
        self.gw, self.stop = gw, stop
        self.rng = random.Random(seed)
        self.counts = {"sessions": 0, "resets": 0, "hostile": 0, "faults": 0, "errors": 0}
        self.lock = threading.Lock()

    def count(self, key):
        with self.lock:
            self.counts[key] += 1

    def churn(self, worker):
        rng = random.Random(self.rng.random() + worker)
        while not self.stop.is_set():
            try:
                c = IBClient(self.gw.port, timeout=3)
                c.send_raw(hello_bytes("v100..178"))
                c.read_frame()
                c.send_frame([71, 2, rng.randint(1, 40), ""])
                for fields in ([8, 1, 1], [49, 1],
                               [20, 30, 0, "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD",
                                "", "", 0, "", "5 mins", "1 D", 0, "TRADES", 1, 1, ""],
                               [9, 8, 12, 265598, "", "", "", "0.0", "", "", "", "", "", "", "",
                                0, "", "", ""]):
                    c.send_frame(fields)
                if rng.random() < 0.3:
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.count("resets")
                else:
                    try:
                        c.read_frames(2, timeout=1)
                    except AssertionError:
                        pass  # a fault may have silenced or closed it: that is the point
                c.close()
                self.count("sessions")
            except (OSError, AssertionError):
                self.count("errors")
                time.sleep(0.05)

    def hostile(self):
        payloads = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"GET / HTTP/1.1\r\n\r\n",
                    hello_bytes("v100..178") + b"\x00\x00\x00\x05abc", b"API\0\x00\x00\x00\x02v1"]
        while not self.stop.is_set():
            try:
                with socket.create_connection((HOST, self.gw.port), timeout=2) as s:
                    s.sendall(self.rng.choice(payloads))
                    if self.rng.random() < 0.5:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # a client that asks for a lot and never reads
                s = socket.create_connection((HOST, self.gw.port), timeout=2)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(hello_bytes("v100..178") + encode_frame([71, 2, 99, ""]) +
                          encode_frame([20, 31, 0, "SPY", "STK", "", "0.0", "", "", "SMART", "",
                                        "USD", "", "", 0, "", "1 min", "1 M", 0, "TRADES", 1,
                                        1, ""]) * 5)
                self.stop.wait(0.5)
                s.close()
                self.count("hostile")
            except OSError:
                self.count("errors")
            self.stop.wait(0.1)

    def faults(self):
        rules = [
            {"match": {"phase": "request", "msg": "reqIds"}, "action": {"type": "delay", "ms": 30}},
            {"match": {"phase": "ready"},
             "action": {"type": "error", "code": 1100, "then": [{"after_ms": 200, "code": 1102}]}},
            {"match": {"phase": "accept"}, "action": {"type": "silent"}, "times": 3},
            {"match": {"phase": "start_api"},
             "sequence": [{"type": "refuse_client_id"}, {"type": "none"}]},
            {"match": {"phase": "request", "msg": "reqCurrentTime"}, "action": {"type": "reset"},
             "times": 2},
        ]
        n = 0
        while not self.stop.wait(1.0):
            n += 1
            self.gw.admin_call("PUT", "/v1/rules", [self.rng.choice(rules)])
            if n % 10 == 0:
                self.gw.admin_call("POST", "/v1/actions/drop-all", {})
            if n % 45 == 0:
                self.gw.admin_call("POST", "/v1/actions/restart", {"down_ms": 300})
            self.count("faults")
        self.gw.admin_call("DELETE", "/v1/rules")


def trend(samples, warmup_frac=0.2):
    """(ok, rss_first_mib, rss_last_mib, fd_floor_first, fd_floor_last, why)."""
    body = samples[int(len(samples) * warmup_frac):]
    if len(body) < 6:
        return True, 0, 0, 0, 0, "too few samples to judge (run longer)"
    third = len(body) // 3
    first, last = body[:third], body[-third:]
    rss_a = statistics.median(s[1] for s in first) / 1024
    rss_b = statistics.median(s[1] for s in last) / 1024
    fd_a = min(s[2] for s in first)
    fd_b = min(s[2] for s in last)
    why = []
    if rss_b - rss_a > max(4.0, 0.10 * rss_a):
        why.append(f"RSS grew {rss_a:.1f} -> {rss_b:.1f} MiB")
    if fd_b - fd_a > 4:
        why.append(f"fd floor grew {fd_a} -> {fd_b}")
    return not why, rss_a, rss_b, fd_a, fd_b, "; ".join(why) or "flat"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration-s", type=float, default=3600)
    ap.add_argument("--interval-s", type=float, default=5)
    ap.add_argument("--mockgw")
    ap.add_argument("--csv")
    ap.add_argument("--load", help="a command run repeatedly; {port} and {admin} are substituted")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--load-only", action="store_true",
                    help="no built-in churn, faults or hostile clients: only --load")
    args = ap.parse_args()
    if args.duration_s <= 0 or args.interval_s <= 0 or args.workers < 1:
        ap.error("--duration-s, --interval-s and --workers must be positive")
    if args.load_only and not args.load:
        ap.error("--load-only needs --load")

    work = tempfile.mkdtemp(prefix="mockgw-soak-")
    gw = Gateway(find_mockgw(args.mockgw), args.seed, work)
    stop = threading.Event()
    load = Load(gw, args.seed, stop)
    threads = []
    if not args.load_only:
        threads = [threading.Thread(target=load.churn, args=(i,), daemon=True)
                   for i in range(args.workers)]
        threads += [threading.Thread(target=load.hostile, daemon=True),
                    threading.Thread(target=load.faults, daemon=True)]
    load_failures = []
    load_runs = []

    def external():
        cmd = shlex.split(args.load.format(port=gw.port, admin=gw.admin))
        while not stop.is_set():
            out = tempfile.TemporaryFile()
            t0 = time.monotonic()
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            while p.poll() is None:
                if stop.wait(0.5) and p.poll() is None:
                    p.send_signal(signal.SIGTERM)  # our own child: it stops cleanly
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                    return  # cut short by the end of the soak: not judged
            load_runs.append(round(time.monotonic() - t0, 1))
            if p.returncode != 0:
                out.seek(0)
                load_failures.append((p.returncode, out.read().decode(errors="replace")[-3000:]))
                stop.set()

    if args.load:
        threads.append(threading.Thread(target=external, daemon=True))
    for t in threads:
        t.start()

    samples = []
    start = time.monotonic()
    print(f"soak: mockgw pid {gw.proc.pid} api {gw.port} admin {gw.admin}; "
          f"{args.duration_s:.0f} s, a sample every {args.interval_s:g} s", flush=True)
    try:
        while time.monotonic() - start < args.duration_s and not stop.is_set():
            if gw.proc.poll() is not None:
                print(f"soak: mockgw exited with {gw.proc.returncode} during the run",
                      file=sys.stderr)
                return 1
            rss, fds = gw.sample()
            samples.append((round(time.monotonic() - start, 1), rss, fds))
            if len(samples) % 12 == 1:
                print(f"  t={samples[-1][0]:>7.1f}s rss={rss / 1024:.1f} MiB fds={fds} "
                      + ("" if args.load_only else f"{load.counts} ")
                      + (f"--load runs done {len(load_runs)}" if args.load else ""),
                      flush=True)
            stop.wait(args.interval_s)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        rc = gw.stop()
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "rss_kib", "fds"])
            w.writerows(samples)
    ok, rss_a, rss_b, fd_a, fd_b, why = trend(samples)
    print(f"soak: {len(samples)} samples; load {load.counts}"
          + (f"; --load runs completed: {len(load_runs)} ({load_runs} s)" if args.load else ""))
    print(f"soak: RSS median first third {rss_a:.1f} MiB, last third {rss_b:.1f} MiB; "
          f"fd floor {fd_a} -> {fd_b}; mockgw exit {rc}")
    if load_failures:
        code, err = load_failures[0]
        print(f"soak: FAILED: --load exited {code}; its output ended:\n{err}", file=sys.stderr)
        return 1
    if rc != 0:
        print(f"soak: FAILED: mockgw exited {rc} on SIGTERM (stderr in {work})", file=sys.stderr)
        return 1
    print(f"soak: {'OK' if ok else 'FAILED'}: {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
