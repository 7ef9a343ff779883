"""The harness's exhaustive level, opt-in: `python3 -m pytest e2e --level exhaustive` (or
`-k exhaustive --level exhaustive` alone). The basic and standard levels run in every suite run
(test_12_harness.py); the exhaustive one takes minutes, so the default run leaves it out.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def harness_bin():
    path = os.environ.get("HARNESS_BIN")
    if not path:
        found = sorted(ROOT.glob("build*/harness/harness"), key=lambda p: p.stat().st_mtime)
        path = str(found[-1]) if found else None
    if not path or not os.access(path, os.X_OK):
        pytest.fail("no harness binary: set HARNESS_BIN or build the harness target",
                    pytrace=False)
    return path


@pytest.mark.timeout_s(900)
def test_exhaustive_level_deploy_ok(request, tmp_path):
    if request.config.getoption("--level") != "exhaustive":
        pytest.skip("the exhaustive level runs with --level exhaustive (minutes)")
    junit = tmp_path / "exhaustive.xml"
    r = subprocess.run([harness_bin(), "--level", "exhaustive", "--junit", str(junit)],
                       capture_output=True, text=True, timeout=880)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0 and last == "DEPLOY: OK", r.stdout[-4000:] + r.stderr[-2000:]
    assert junit.stat().st_size > 0
