"""Fixtures of the mockgw end-to-end suite: the real binary on loopback.

The gateways come from the pytest_mockgw plugin shipped in this directory (docs/pytest-plugin.md):
``mockgw``, ``mockgw_factory(*args, script=, seed=, fault=, ready=, expect_rc=, expect_stderr=)``
and ``mockgw_bin``. The binary: --mockgw-bin, $MOCKGW_BIN (ctest sets it), mockgw on PATH, else
build/mockgw/mockgw or the newest build*/mockgw/mockgw of this repository. No binary is a
failure, never a skip.

Every mockgw binds 127.0.0.1 port 0 (API and admin), logs its journal to a file in the test's
tmp dir, and is stopped at teardown with SIGTERM, which must give exit code 0 within 5 s with
nothing on stderr (unless the test said it expects stderr output). At the end of the session no
mockgw we started may still be alive or have a port bound. Each test has a deadline (SIGALRM;
default 20 s, ``@pytest.mark.timeout_s(N)`` to change it).
"""

import signal
import sys
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent
if str(E2E_DIR) not in sys.path:  # the plugin package lives next to this file
    sys.path.insert(0, str(E2E_DIR))

ROOT = E2E_DIR.parent
DEFAULT_TEST_TIMEOUT_S = 20


def pytest_addoption(parser, pluginmanager):
    # The plugin, unless it is installed or given with -p already. Not `pytest_plugins`: that
    # is refused in a conftest that is not loaded at start-up (`pytest` run from the root).
    if not pluginmanager.has_plugin("pytest_mockgw"):
        pluginmanager.import_plugin("pytest_mockgw")
    parser.addoption("--level", choices=("basic", "standard", "exhaustive"), default="standard",
                     help="the harness levels this run covers: basic and standard always run "
                          "(test_12_harness.py); exhaustive (minutes) only with --level exhaustive")


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(n): per-test deadline in seconds (SIGALRM)")


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


@pytest.fixture
def run(mockgw_bin):
    """run(*args, timeout_s=10): mockgw run to completion (usage errors, --help)."""
    from pytest_mockgw import run_mockgw

    return lambda *args, **kw: run_mockgw(mockgw_bin, *args, **kw)
