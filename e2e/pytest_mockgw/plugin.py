"""The pytest side of pytest_mockgw: options, fixtures, the journal tail in failure reports and
the end-of-session check (docs/pytest-plugin.md)."""

import json

import pytest

from .gateway import MockgwError, Mockgw, Registry, find_mockgw
from .journal import journal_tail, summarize_connections

_REGISTRY = pytest.StashKey()
_GATEWAYS = pytest.StashKey()
DEFAULT_TAIL = 40


def pytest_addoption(parser):
    group = parser.getgroup("mockgw", "mockgw fake IB Gateway (pytest_mockgw)")
    group.addoption("--mockgw-bin", metavar="PATH", default=None,
                    help="the mockgw binary (default: $MOCKGW_BIN, mockgw on PATH, or the "
                         "build of the mockgw source tree the tests run in)")
    group.addoption("--mockgw-arg", metavar="ARG", action="append", default=[],
                    help="an extra command-line argument for every mockgw started, repeatable: "
                         "--mockgw-arg=--server-version=176")
    group.addoption("--mockgw-tail", metavar="N", type=int, default=DEFAULT_TAIL,
                    help=f"journal entries shown when a test using mockgw fails (default "
                         f"{DEFAULT_TAIL}, 0: none)")


def pytest_configure(config):
    config.stash[_REGISTRY] = Registry()
    config.addinivalue_line(
        "markers", "mockgw(**kwargs): settings of the `mockgw` fixture's gateway, as "
                   "mockgw_factory takes them (script=, seed=, fault=, args=)")


@pytest.fixture(scope="session")
def mockgw_bin(request):
    """The mockgw binary this session uses; a test that needs one fails (not skips) without."""
    path, why = find_mockgw(request.config.getoption("--mockgw-bin", None),
                            (request.config.rootpath, request.config.invocation_params.dir))
    if path is None:
        pytest.fail(why, pytrace=False)
    return path


@pytest.fixture(scope="session", autouse=True)
def _mockgw_nothing_left_behind(request):
    """At the end of the session: no mockgw we started is alive, none of its ports is bound."""
    yield
    problems = request.config.stash[_REGISTRY].leftovers()
    if problems:
        pytest.fail("pytest_mockgw: left behind at the end of the session:\n  "
                    + "\n  ".join(problems), pytrace=False)


def _script_arg(script, workdir):
    if isinstance(script, (dict, list)):
        path = workdir / "script.json"
        path.write_text(json.dumps(script, indent=1))
        return str(path)
    return str(script)


@pytest.fixture
def mockgw_factory(request, mockgw_bin, tmp_path):
    """Starts gateways: ``mockgw_factory(*argv, script=None, seed=None, fault=None, args=(),
    ready=True, defaults=True, expect_rc=0, expect_stderr=False)``. Each one is stopped at
    teardown (SIGTERM, then a deadline), which fails if it did not exit with expect_rc, wrote
    to stderr, or journaled lines that are not JSON."""
    made = request.node.stash.setdefault(_GATEWAYS, [])
    registry = request.config.stash[_REGISTRY]
    extra = list(request.config.getoption("--mockgw-arg", None) or [])

    def make(*argv, script=None, seed=None, fault=None, args=(), ready=True, defaults=True,
             expect_rc=0, expect_stderr=False, name=None):
        name = name or f"mockgw{len(made)}"
        workdir = tmp_path / name
        workdir.mkdir(parents=True, exist_ok=True)
        cli = list(argv) + list(args)
        if script is not None:
            cli += ["--script", _script_arg(script, workdir)]
        if seed is not None:
            cli += ["--seed", str(seed)]
        for preset in [fault] if isinstance(fault, str) else (fault or []):
            cli += ["--fault", preset]
        gw = Mockgw(mockgw_bin, workdir, extra + cli, defaults=defaults,
                    expect_stderr=expect_stderr, expect_rc=expect_rc, registry=registry,
                    name=name)
        made.append(gw)
        if ready:
            gw.wait_ready()
        return gw

    yield make
    errors = []
    for gw in made:
        try:
            gw.teardown()
        except MockgwError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def mockgw(request, mockgw_factory):
    """A started gateway on 127.0.0.1, API and admin on port 0 (``.port`` is the API port).
    ``@pytest.mark.mockgw(script=..., seed=..., fault=..., args=[...])`` configures it."""
    marker = request.node.get_closest_marker("mockgw")
    return mockgw_factory(*(marker.args if marker else ()), **(marker.kwargs if marker else {}))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    gateways = item.stash.get(_GATEWAYS, None)
    n = item.config.getoption("--mockgw-tail", DEFAULT_TAIL)
    if not report.failed or not gateways or n <= 0:
        return
    for gw in gateways:
        report.sections.append((f"mockgw {gw.name} (api port {gw.port}, pid {gw.pid}) journal "
                                f"tail", _failure_text(gw, n)))


def _failure_text(gw, n):
    parts = []
    if not gw.alive():
        parts.append(f"exited with {gw.proc.returncode}: {' '.join(gw.argv)}")
    try:
        err = gw.stderr_text()
    except OSError:
        err = ""
    if err:
        parts.append("stderr:\n" + err[-2000:])
    try:
        tail = journal_tail(gw, n)
        parts.append("connections:\n" + summarize_connections(gw.journal("events")))
        parts.append(f"last {n} journal entries ({gw.log_path}):\n" + (tail or "(empty)"))
    except (OSError, MockgwError) as e:
        parts.append(f"journal unreadable: {e}")
    return "\n".join(parts)


def pytest_report_header(config):
    path, why = find_mockgw(config.getoption("--mockgw-bin", None),
                            (config.rootpath, config.invocation_params.dir))
    return f"mockgw: {path or why}"

