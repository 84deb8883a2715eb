#!/usr/bin/env python3
"""The README's measured figures, rendered from recorded runs, never typed.

Three records, in benchmarks/results/:

- ``book_build-cpu.json``: ``_build/execution-times.json`` of a ``make book`` that
  executed every notebook (``make book FORCE=1``): seconds per notebook, the machine;
- ``test_run-cpu.json``: ``_build/test-run.json`` of a ``.ci/run`` (tests/conftest.py
  writes it): the test counts, seconds, commit and machine;
- ``chapter_timing_gpu-gpu.json``: each chapter timed at ``gpu`` scale on a GPU
  (benchmarks/chapter_timing.py).

    python tools/readme_figures.py record   # copy the _build records, rewrite README.md
    python tools/readme_figures.py          # rewrite README.md from the committed records
    python tools/readme_figures.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple

from build_book import RECORDED_TIMES, REPORT_FILE

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- measured: begin (tools/readme_figures.py writes this block) -->"
END = "<!-- measured: end -->"


class RecordError(ValueError):
    """A record that cannot stand behind the README's figures."""


def _machine(record: dict) -> str:
    machine = record["machine"]
    return f"{machine['processor']}, {machine['cpu_count']} cores"


def book_lines(record: dict) -> list[str]:
    """The full build's time, and each notebook's."""
    notebooks = record["notebooks"]
    if not all(notebook["executed"] for notebook in notebooks):
        raise RecordError("the book record is not a full build: run `make book FORCE=1`")
    rows = [f"| {Path(n['notebook']).stem} | {n['seconds']:.0f} |" for n in notebooks]
    slowest = max(notebooks, key=lambda n: n["seconds"])
    return [
        f"`make book FORCE=1` (every notebook executed, `{record['scale']}` scale, "
        f"{record['workers']} at a time, each on one thread) on {_machine(record)}, "
        f"{record['when'][:10]}: **{record['total_seconds'] / 60:.1f} minutes** "
        f"({record['execution_wall_seconds']:.0f} s executing, "
        f"{record['render_seconds']:.0f} s rendering); the slowest notebook, "
        f"{Path(slowest['notebook']).stem}, took {slowest['seconds']:.0f} s.",
        "",
        "<details><summary>Seconds per notebook</summary>",
        "",
        "| Notebook | Seconds |",
        "|---|---:|",
        *rows,
        "",
        "</details>",
    ]


def test_lines(record: dict) -> list[str]:
    """The test run's counts and time."""
    counts = record["counts"]
    parts = [f"{counts[key]:,} {key}" for key in ("passed", "failed", "error", "skipped")
             if counts[key] or key == "passed"]
    return [f"`.ci/run` (`make test` from a fresh clone, `{record['scale']}` scale, "
            f"{record['workers']} workers) at commit {record['commit'][:7]} on "
            f"{_machine(record)}, {record['when'][:10]}: **{', '.join(parts)}** in "
            f"{record['seconds'] / 60:.1f} minutes of testing."]


def gpu_lines(record: dict) -> list[str]:
    """What is known of the gpu scale: how each chapter's timing ended."""
    runs = record["runs"]
    outcomes = Counter(run["outcome"] for run in runs)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    return [f"`gpu` scale, {len(runs)} chapters timed on one {record['machine']['gpu']}, "
            f"{record['when'][:10]}, {record['parallel']} at a time with a "
            f"{record['timeout_s']:.0f} s limit each: {summary}. No chapter's full time "
            "at this scale is known, so `gpu` is a scale for benchmarks and experiments, "
            "not a supported way to build the book (the record's note says why the "
            "failures failed)."]


class Record(NamedTuple):
    """One record behind the README: where it is kept, where a local run writes it."""
    kept: str                              # committed, relative to the repository root
    built: str | None                      # written by `make book` or `.ci/run`, if local
    lines: Callable[[dict], list[str]]     # its README lines; RecordError if unfit
    missing: str                           # the README's line while there is none


RECORDS = (
    Record(RECORDED_TIMES, REPORT_FILE, book_lines,
           "No full build recorded yet: run `make book FORCE=1`, then "
           "`tools/readme_figures.py record`."),
    Record("benchmarks/results/test_run-cpu.json", "_build/test-run.json", test_lines,
           "No test run recorded yet: run `.ci/run`, then `tools/readme_figures.py record`."),
    Record("benchmarks/results/chapter_timing_gpu-gpu.json", None, gpu_lines,
           "The `gpu` scale has not been timed."),
)


def render(root: Path = ROOT) -> str:
    """The README with its measured block rendered from the committed records."""
    readme = (root / "README.md").read_text()
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise RecordError(f"README.md needs one {BEGIN!r} and one {END!r} line")
    lines = [BEGIN]
    for record in RECORDS:
        path = root / record.kept
        lines += record.lines(json.loads(path.read_text())) if path.exists() else [record.missing]
        lines.append("")
    lines[-1] = END
    head, rest = readme.split(BEGIN)
    return head + "\n".join(lines) + rest.split(END, 1)[1]


def record(root: Path = ROOT) -> None:
    """Copy the records of the last build and test run into benchmarks/results/; one
    that cannot stand behind the README (a partial build) is refused, not copied, and
    named in the RecordError raised after the others are copied."""
    refused = []
    for kept in RECORDS:
        built = root / kept.built if kept.built else None
        if not (built and built.exists()):
            continue
        try:
            kept.lines(json.loads(built.read_text()))
        except RecordError as error:
            refused.append(f"{kept.built}: {error}")
            continue
        shutil.copyfile(built, root / kept.kept)
        print(f"recorded {kept.built} -> {kept.kept}")
    if refused:
        raise RecordError("; ".join(refused))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=["record"],
                        help="first copy the _build records into benchmarks/results/")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    try:
        if args.action == "record":
            record()
        text = render()
    except RecordError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    readme = ROOT / "README.md"
    if args.check:
        if readme.read_text() != text:
            print("README.md's measured block is stale: run tools/readme_figures.py",
                  file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
