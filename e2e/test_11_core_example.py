"""The core's example program (core/examples/ib_time.c, the one in docs/core.md) against mockgw."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ib_time_bin():
    path = os.environ.get("IB_TIME_BIN")
    if path:
        return path
    found = sorted(ROOT.glob("build*/core/ib_time"), key=lambda p: p.stat().st_mtime)
    if not found:
        pytest.fail("no ib_time binary: build the project (core/examples) first", pytrace=False)
    return str(found[-1])


def run(*args):
    return subprocess.run([ib_time_bin(), *map(str, args)], capture_output=True, text=True,
                          timeout=20)


def test_example_prints_version_accounts_and_time(mockgw):
    r = run("127.0.0.1", mockgw.api_port, 5)
    assert r.returncode == 0, r.stderr
    assert "server version 178, client id 5, accounts DU1234567" in r.stdout, r.stdout
    epoch = int(re.search(r"currentTime (\d+)", r.stdout).group(1))
    assert abs(epoch - time.time()) < 10
    mockgw.wait_event("disconnect", client_id=5)  # it closed cleanly


def test_example_reports_a_refused_client_id(mockgw):
    holder = mockgw.ready_client(client_id=7)
    r = run("127.0.0.1", mockgw.api_port, 7)
    assert r.returncode == 1
    assert "ib_time: connect: client id refused by gateway (326)" in r.stderr, r.stderr
    holder.close()


def test_example_reports_connection_refused(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    r = run("127.0.0.1", port, 1)
    assert r.returncode == 1
    assert "ib_time: connect: connection refused" in r.stderr, r.stderr
