"""Defaults for running the tests directly with pytest (``make test`` sets them too).

The scale defaults to ``smoke`` so that a bare ``pytest`` stays fast, and every
library gets one thread: on small machines torch and LightGBM threads contend.
These must be set before torch is imported, hence here.
"""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

os.environ.setdefault("RANKING_SCALE", "smoke")
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("MPLBACKEND", "Agg")


# ------------------------------------------------------------------ the real log
REAL_LOG_NOTEBOOKS = ("A1_real_log.ipynb",)
"""Notebooks that read MovieLens-100k (the appendix and its lab)."""
REAL_LOG_SKIP = "real log:"
"""Every skip for want of MovieLens-100k starts with this, so the summary can count them."""


def real_log_missing() -> str | None:
    """Why MovieLens-100k cannot be read (not cached, or changed), or None when it can."""
    from ranking.real import RealDataError, fetch_movielens_100k

    try:
        fetch_movielens_100k(download=False)
    except RealDataError as error:
        return str(error).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def movielens():
    """MovieLens-100k as a ``RatingLog``, or a counted skip saying why it is missing."""
    from ranking.real import load_movielens_100k

    why = real_log_missing()
    if why:
        pytest.skip(f"{REAL_LOG_SKIP} {why}")
    return load_movielens_100k(download=False)


def pytest_collection_modifyitems(config, items):
    """Skip the real-log notebooks, saying why, when the data is not in the cache."""
    notebooks = [item for item in items if item.path.name in REAL_LOG_NOTEBOOKS]
    why = real_log_missing() if notebooks else None
    if why:
        for item in notebooks:
            item.add_marker(pytest.mark.skip(reason=f"{REAL_LOG_SKIP} {why}"))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """Count the real-log skips after pytest's own summary: a green run without the
    data says so on its last lines."""
    yield
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if REAL_LOG_SKIP in str(report.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{REAL_LOG_SKIP} {len(skipped)} tests SKIPPED without MovieLens-100k; "
            "`make real-data` fetches it", yellow=True, bold=True)


# ------------------------------------------------------------------ the run's record
TEST_RECORD_ENV = "RANKING_TEST_RECORD"
"""Where to write the run's counts and time as JSON (.ci/run sets it): the README's test
figures are rendered from that record (tools/readme_figures.py)."""
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session):
    session.config.stash[_STARTED] = time.time()


def pytest_sessionfinish(session, exitstatus):
    """Write the record when asked to, from the controlling process only."""
    path = os.environ.get(TEST_RECORD_ENV)
    if not path or hasattr(session.config, "workerinput"):
        return
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tools"))
    from machine import machine

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, text=True,
                            capture_output=True).stdout.strip()
    record = {
        "counts": {outcome: len(reporter.stats.get(outcome, [])) for outcome in OUTCOMES},
        "seconds": round(time.time() - session.config.stash[_STARTED], 1),
        "exit_status": int(exitstatus),
        "workers": getattr(session.config.option, "numprocesses", None) or 1,
        "scale": os.environ["RANKING_SCALE"],
        "commit": commit,
        "machine": machine(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=1) + "\n")
