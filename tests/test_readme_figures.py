"""tools/readme_figures.py: the README's measured figures come from recorded runs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import readme_figures  # noqa: E402

MACHINE = {"processor": "Test CPU", "cpu_count": 2, "gpu": None}
BOOK = {"scale": "book", "workers": 2, "machine": MACHINE, "when": "2026-12-06T10:00:00+00:00",
        "execution_wall_seconds": 2345.0, "render_seconds": 55.0, "total_seconds": 2400.0,
        "notebooks": [{"notebook": "book/01_ad_log.ipynb", "seconds": 80.4, "executed": True},
                      {"notebook": "book/08_sixteen_bits.ipynb", "seconds": 612.0,
                       "executed": True}]}
TESTS = {"counts": {"passed": 2240, "failed": 0, "error": 0, "skipped": 1, "xfailed": 0,
                    "xpassed": 0},
         "seconds": 930.0, "exit_status": 0, "workers": 2, "scale": "smoke",
         "commit": "0123456789abcdef", "machine": MACHINE, "when": "2026-12-06T11:00:00+00:00"}


def test_the_readme_matches_the_committed_records():
    assert readme_figures.main(["--check"]) == 0, "run tools/readme_figures.py"


def test_figures_are_read_from_the_records(tmp_path: Path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "book_build-cpu.json").write_text(json.dumps(BOOK))
    (results / "test_run-cpu.json").write_text(json.dumps(TESTS))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    text = readme_figures.render(tmp_path)
    block = text.split(readme_figures.BEGIN)[1].split(readme_figures.END)[0]
    assert "**40.0 minutes**" in block and "2345 s executing" in block
    assert "08_sixteen_bits, took 612 s" in block and "| 01_ad_log | 80 |" in block
    assert "**2,240 passed, 1 skipped** in 15.5 minutes" in block and "0123456" in block
    assert "Test CPU, 2 cores" in block
    assert "`gpu` scale has not been timed" in block
    outside = text.replace(block, "")
    assert outside == (ROOT / "README.md").read_text().replace(
        (ROOT / "README.md").read_text().split(readme_figures.BEGIN)[1]
        .split(readme_figures.END)[0], "")


def test_a_partial_build_is_not_a_full_build():
    partial = {**BOOK, "notebooks": [{**BOOK["notebooks"][0], "executed": False}]}
    with pytest.raises(readme_figures.RecordError, match="FORCE=1"):
        readme_figures.book_lines(partial)


def test_recording_a_partial_build_keeps_the_full_build_record(tmp_path):
    book = readme_figures.RECORDS[0]
    (tmp_path / book.kept).parent.mkdir(parents=True)
    (tmp_path / book.kept).write_text(json.dumps(BOOK))
    (tmp_path / book.built).parent.mkdir(parents=True)
    partial = {**BOOK, "notebooks": [{**BOOK["notebooks"][0], "executed": False}]}
    (tmp_path / book.built).write_text(json.dumps(partial))
    tests = readme_figures.RECORDS[1]
    (tmp_path / tests.built).write_text(json.dumps(TESTS))
    with pytest.raises(readme_figures.RecordError, match="FORCE=1"):
        readme_figures.record(tmp_path)
    assert json.loads((tmp_path / book.kept).read_text()) == BOOK
    assert json.loads((tmp_path / tests.kept).read_text()) == TESTS   # still recorded
    (tmp_path / book.built).write_text(json.dumps({**BOOK, "total_seconds": 60.0}))
    readme_figures.record(tmp_path)                          # a full build is recorded
    assert json.loads((tmp_path / book.kept).read_text())["total_seconds"] == 60.0
