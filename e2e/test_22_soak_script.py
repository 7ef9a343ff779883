"""scripts/soak.py, the long-run leak check (docs/reliability.md), in short runs: its verdict on
sample series, a flat run that passes, a real descriptor leak it catches, a failing --load that
fails it with the command's output, and its usage errors. Every run is bounded and leaves no
mockgw behind."""

import ast
import importlib.util
import os
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

SOAK = ROOT / "scripts" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("soak_script", SOAK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def soak(mockgw_bin, *args, timeout_s=60):
    return subprocess.run([sys.executable, str(SOAK), "--mockgw", str(mockgw_bin), *args],
                          capture_output=True, text=True, timeout=timeout_s)


def gateway_pid(stdout):
    line = next(ln for ln in stdout.splitlines() if ln.startswith("soak: mockgw pid "))
    return int(line.split()[3])


def assert_gone(pid):
    assert not os.path.exists(f"/proc/{pid}"), f"mockgw {pid} outlived the soak"


def series(rss_kib, fds):
    return [(float(i), r, f) for i, (r, f) in enumerate(zip(rss_kib, fds))]


def test_trend_judges_the_last_third_against_the_first():
    trend = load_soak().trend
    flat = series([5000 + (i % 3) * 100 for i in range(30)], [12 + i % 4 for i in range(30)])
    ok, _, _, fd_a, fd_b, why = trend(flat)
    assert (ok, why) == (True, "flat")
    assert (fd_a, fd_b) == (12, 12)
    # RSS: +10 MiB over the run is a leak; the warm-up fifth is not judged
    growing = series([5000 + i * 350 for i in range(30)], [12] * 30)
    ok, rss_a, rss_b, _, _, why = trend(growing)
    assert not ok and why.startswith("RSS grew ") and rss_b > rss_a
    warmup_only = series([40000] * 6 + [5000] * 24, [12] * 30)
    assert trend(warmup_only)[0]
    # descriptors: the floor (not the peaks) must not rise by more than 4
    peaks = series([5000] * 30, [12 if i % 2 else 40 for i in range(30)])
    assert trend(peaks)[0]
    leak = series([5000] * 30, [12 + i for i in range(30)])
    ok, _, _, fd_a, fd_b, why = trend(leak)
    assert not ok and why == f"fd floor grew {fd_a} -> {fd_b}"
    assert trend(series([5000] * 5, [12] * 5))[5] == "too few samples to judge (run longer)"


@pytest.mark.timeout_s(60)
def test_a_quiet_gateway_is_judged_flat(mockgw_bin, tmp_path):
    csv = tmp_path / "samples.csv"
    r = soak(mockgw_bin, "--duration-s", "6", "--interval-s", "0.2", "--csv", str(csv),
             "--load-only", "--load", "sleep 1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().splitlines()[-1] == "soak: OK: flat"
    assert "mockgw exit 0" in r.stdout
    lines = csv.read_text().splitlines()
    assert lines[0] == "t_s,rss_kib,fds"
    assert len(lines) > 20
    assert all(int(ln.split(",")[1]) > 0 and int(ln.split(",")[2]) > 0 for ln in lines[1:])
    assert_gone(gateway_pid(r.stdout))


@pytest.mark.timeout_s(60)
def test_the_built_in_load_drives_every_kind_of_client(mockgw_bin):
    # Only that it runs: a verdict needs a long run (RSS warms up for the first minutes).
    r = soak(mockgw_bin, "--duration-s", "4", "--interval-s", "0.5")
    assert "soak: mockgw pid" in r.stdout, r.stdout + r.stderr
    counts = ast.literal_eval(r.stdout.split("; load ", 1)[1].splitlines()[0])
    assert counts["sessions"] > 10 and counts["resets"] > 0
    assert counts["hostile"] > 0 and counts["faults"] > 0
    assert "mockgw exit 0" in r.stdout
    assert_gone(gateway_pid(r.stdout))


@pytest.mark.timeout_s(60)
def test_a_client_that_keeps_its_connections_is_caught_as_a_descriptor_leak(mockgw_bin):
    # The --load holds a new connection every 50 ms: mockgw's descriptor floor keeps rising.
    hold = ("import socket, time; held = []; "
            "[held.append(socket.create_connection(('127.0.0.1', {port}))) or time.sleep(0.05) "
            "for _ in range(400)]; time.sleep(60)")
    r = soak(mockgw_bin, "--duration-s", "8", "--interval-s", "0.25", "--load-only",
             "--load", f"{sys.executable} -c {shlex.quote(hold)}")
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stdout.rstrip().splitlines()[-1]
    assert last.startswith("soak: FAILED: fd floor grew "), r.stdout
    assert_gone(gateway_pid(r.stdout))


@pytest.mark.timeout_s(60)
def test_a_failing_load_command_fails_the_soak_with_its_output(mockgw_bin):
    r = soak(mockgw_bin, "--duration-s", "20", "--interval-s", "0.5", "--load-only",
             "--load", "sh -c 'echo harness says no on port {port}; exit 3'")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "soak: FAILED: --load exited 3; its output ended:" in r.stderr
    port = r.stdout.split(" api ", 1)[1].split()[0]
    assert f"harness says no on port {port}" in r.stderr
    assert_gone(gateway_pid(r.stdout))


@pytest.mark.parametrize("args, message", [
    (["--load-only"], "--load-only needs --load"),
    (["--duration-s", "0"], "must be positive"),
    (["--interval-s", "-1"], "must be positive"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_usage_errors_exit_2_and_start_nothing(mockgw_bin, args, message):
    r = soak(mockgw_bin, *args, timeout_s=20)
    assert r.returncode == 2
    assert message in r.stderr
    assert "soak: mockgw pid" not in r.stdout
