"""pytest_mockgw: mockgw, the fake IB Gateway, as pytest fixtures (docs/pytest-plugin.md).

Load it with ``pip install --no-deps ./e2e`` (an entry point: nothing else to do) or, without
installing, ``PYTHONPATH=e2e pytest -p pytest_mockgw``. Fixtures: ``mockgw``,
``mockgw_factory``, ``mockgw_bin``. The assertion helpers and classes are importable from here.
"""

from .gateway import AdminClient, Mockgw, MockgwError, find_mockgw, run_mockgw
from .ibclient import IBClient, wait_until
from .journal import (assert_handshake_completed, assert_max_handshakes_in_flight,
                      assert_no_protocol_errors, assert_reconnected_within, entry_time,
                      handshakes_in_flight, journal_tail, summarize_connections)

__version__ = "0.1.0"

# `-p pytest_mockgw` registers this module; the hooks and fixtures are in .plugin (which is
# also what the installed entry point points at, under the same name, so never both).
pytest_plugins = ["pytest_mockgw.plugin"]

__all__ = [
    "AdminClient", "IBClient", "Mockgw", "MockgwError", "assert_handshake_completed",
    "assert_max_handshakes_in_flight", "assert_no_protocol_errors", "assert_reconnected_within",
    "entry_time", "find_mockgw", "handshakes_in_flight", "journal_tail", "run_mockgw",
    "summarize_connections", "wait_until",
]
