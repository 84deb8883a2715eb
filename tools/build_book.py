#!/usr/bin/env python3
"""Build the book: execute the notebooks that need it, in parallel, then render.

    python tools/build_book.py                      # scale from RANKING_SCALE (book), a worker per core
    python tools/build_book.py --force --workers 1  # re-execute every notebook, one at a time
    python tools/build_book.py --strict             # Sphinx warnings (a missing glue value) fail

Jupyter Book 1 executes notebooks one after another and keys its execution
cache on a notebook's code alone. This script executes them itself, then lets
Jupyter Book render from that same cache:

1. The notebooks to execute are the ``_toc.yml`` entries that are notebooks,
   minus the ``execute.exclude_patterns`` of ``_config.yml``.
2. Each gets an execution key (``tools/notebook_deps.py``): its code, the scale,
   the requirement files, the ``ranking`` modules it imports, the repository
   files it names. A notebook whose key is the one of its last successful run,
   and whose outputs are still in the cache, is not executed again.
3. The others run in parallel, each in its own single-threaded kernel (one
   worker per core by default), the longest first. A cell that raises fails
   the build, naming the notebook and the cell.
4. Executed notebooks are stored in Jupyter Book's execution cache
   (jupyter-cache, ``_build/.jupyter_cache``), so ``jupyter-book build`` finds
   every notebook there and only renders.
5. ``_build/execution-times.json`` records the seconds per notebook, the scale,
   the machine and the number of workers.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402
from notebook_deps import execution_key  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = "_build/.jupyter_cache"
"""Jupyter Book 1's execution cache, under the book's root."""
KEYS_FILE = "_build/.execution-keys.json"
REPORT_FILE = "_build/execution-times.json"
RECORDED_TIMES = "benchmarks/results/book_build-cpu.json"
"""The committed record of a full build (tools/readme_figures.py): a first build's order."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def book_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks the book executes: toc entries that are .ipynb, minus the execution excludes."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    config = yaml.safe_load((root / "_config.yml").read_text())
    excluded = config.get("execute", {}).get("exclude_patterns", [])
    entries = [toc["root"]] + list(_toc_files(toc))
    notebooks = []
    for entry in entries:
        path = root / f"{entry}.ipynb"
        relative = path.relative_to(root).as_posix()
        if path.exists() and not any(fnmatch.fnmatch(relative, pattern) for pattern in excluded):
            notebooks.append(path)
    return notebooks


def _toc_files(entry: dict):
    """Every ``file`` of a table of contents, in order, through parts, chapters and sections."""
    for key in ("parts", "chapters", "sections"):
        for child in entry.get(key, []):
            if "file" in child:
                yield child["file"]
            yield from _toc_files(child)


def notebook_timeout(root: Path = ROOT) -> int:
    """Seconds a cell may run: ``execute.timeout`` of ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    return int(config.get("execute", {}).get("timeout", 1800))


# ------------------------------------------------------------------ execution
def execute_notebook(path: str, timeout: int) -> dict:
    """Run one notebook in its folder, in a fresh kernel (called in a worker process).

    Returns the executed notebook (as JSON text), the seconds it took and,
    if a cell raised, a description naming the cell.
    """
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(notebook, cwd=str(Path(path).parent), timeout=timeout,
                                 allow_errors=False, record_timing=True)
    failure = describe_failure(notebook, result.err) if result.err is not None else None
    slowest = slowest_cells(notebook)
    for cell in notebook.cells:  # jupyter-cache matches on cell metadata: keep it unchanged
        cell.get("metadata", {}).pop("execution", None)
    return {"path": path, "notebook": nbformat.writes(notebook), "seconds": result.time,
            "slowest_cells": slowest, "failure": failure}


def slowest_cells(notebook: nbformat.NotebookNode, count: int = 3) -> list[dict]:
    """The cells that took longest (nbclient's timestamps): where a slow chapter spends."""
    timed = []
    for index, cell in enumerate(notebook.cells):
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[key].replace("Z", "+00:00"))
                          for key in ("iopub.execute_input", "shell.execute_reply"))
            first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            timed.append({"cell": index, "seconds": round((end - start).total_seconds(), 1),
                          "first_line": first_line[:60]})
    return sorted(timed, key=lambda row: row["seconds"], reverse=True)[:count]


def describe_failure(notebook: nbformat.NotebookNode, error: BaseException) -> str:
    """Which cell failed (its number, its first lines) and the error it raised, without colour codes."""
    for index, cell in enumerate(notebook.cells):
        errors = [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]
        if cell.cell_type == "code" and errors:
            head = "\n".join(f"    {line}" for line in cell.source.splitlines()[:4])
            traceback = _strip_ansi("\n".join(errors[0].get("traceback", [])[-6:]))
            return (f"cell {index} (counting every cell from 0) raised "
                    f"{errors[0]['ename']}: {errors[0]['evalue']}\n{head}\n{traceback}")
    return f"{type(error).__name__}: {_strip_ansi(str(error))[-2000:]}"


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# ------------------------------------------------------------------- the cache
class ExecutionCache:
    """Jupyter Book's execution cache plus, per notebook, the key of its last successful run."""

    def __init__(self, root: Path = ROOT):
        from jupyter_cache import get_cache

        self.root = root
        self.cache = get_cache(str(root / CACHE_DIR))
        self.keys_file = root / KEYS_FILE
        self.records = json.loads(self.keys_file.read_text()) if self.keys_file.exists() else {}

    def name(self, path: Path) -> str:
        """The notebook's path from the book's root, as the report and the keys file name it."""
        return path.relative_to(self.root).as_posix()

    def is_current(self, path: Path, key: str) -> bool:
        """True when the last successful run had this key and its outputs are still cached."""
        return self.records.get(self.name(path), {}).get("key") == key and self._cached_record(path) is not None

    def seconds(self, path: Path) -> float | None:
        """How long the notebook took when it last ran successfully."""
        return self.records.get(self.name(path), {}).get("seconds")

    def forget(self, path: Path) -> None:
        """Drop the notebook's outputs, so that nothing renders stale outputs if it fails."""
        record = self._cached_record(path)
        if record is not None:
            self.cache.remove_cache(record.pk)
        self.records.pop(self.name(path), None)
        self._save()

    def store(self, path: Path, notebook_json: str, seconds: float, key: str) -> None:
        """Cache an executed notebook where Jupyter Book looks for it, and remember its key."""
        from jupyter_cache.base import CacheBundleIn

        notebook = nbformat.reads(notebook_json, as_version=4)
        self.cache.cache_notebook_bundle(CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds}),
                                         check_validity=False, overwrite=True)
        self.records[self.name(path)] = {"key": key, "seconds": round(seconds, 1),
                                     "executed": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._save()

    def _cached_record(self, path: Path):
        try:
            return self.cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            return None

    def _save(self) -> None:
        self.keys_file.parent.mkdir(parents=True, exist_ok=True)
        self.keys_file.write_text(json.dumps(self.records, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------- the build
def execute_changed(notebooks: list[Path], scale: str, workers: int, force: bool,
                    cache: ExecutionCache) -> tuple[list[dict], list[str]]:
    """Execute the notebooks whose key changed, in parallel; return one row per notebook and the failures."""
    keys = {path: execution_key(path, scale, cache.root) for path in notebooks}
    _name = cache.name
    stale = [path for path in notebooks if force or not cache.is_current(path, keys[path])]
    rows = [{"notebook": _name(path), "seconds": cache.seconds(path), "executed": False}
            for path in notebooks if path not in stale]
    for row in rows:
        print(f"  cached    {row['notebook']:<36} ({row['seconds']} s when it last ran)", flush=True)
    stale = longest_first(stale, cache, recorded_seconds(cache.root))
    for path in stale:
        cache.forget(path)
    if not stale:
        return rows, []

    print(f"book: executing {len(stale)} notebook(s) with {min(workers, len(stale))} worker(s)", flush=True)
    failures: list[str] = []
    timeout = notebook_timeout(cache.root)
    with ProcessPoolExecutor(max_workers=min(workers, len(stale))) as pool:
        running: dict[Future, Path] = {pool.submit(execute_notebook, str(path), timeout): path for path in stale}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                path = running.pop(future)
                result = future.result()
                if result["failure"] is not None:
                    failures.append(f"{_name(path)}: {result['failure']}")
                    print(f"  FAILED    {_name(path)}\n{result['failure']}", flush=True)
                    # notebooks already running finish (and are cached); none starts after a failure
                    for other in running:
                        other.cancel()
                    continue
                cache.store(path, result["notebook"], result["seconds"], keys[path])
                os.utime(path)   # Sphinx re-reads a page only when its source looks newer
                rows.append({"notebook": _name(path), "seconds": round(result["seconds"], 1),
                             "executed": True, "slowest_cells": result["slowest_cells"]})
                print(f"  executed  {_name(path):<36} {result['seconds']:7.1f} s", flush=True)
            running = {future: path for future, path in running.items() if not future.cancelled()}
    order = {_name(path): index for index, path in enumerate(notebooks)}
    return sorted(rows, key=lambda row: order[row["notebook"]]), failures


def recorded_seconds(root: Path) -> dict[str, float]:
    """Seconds per notebook in the committed record of a full build, if there is one."""
    record = root / RECORDED_TIMES
    if not record.exists():
        return {}
    return {row["notebook"]: row["seconds"] for row in json.loads(record.read_text())["notebooks"]}


def longest_first(paths: list[Path], cache: ExecutionCache,
                  recorded: dict[str, float]) -> list[Path]:
    """Longest first keeps the workers busy (the last to start is short). A notebook's
    time is its last run's here, else the committed record's; one never timed counts as
    longest, the largest file first."""
    def expected(path: Path) -> tuple[float, int]:
        seconds = cache.seconds(path) or recorded.get(cache.name(path))
        return (seconds or float("inf"), len(path.read_bytes()))

    return sorted(paths, key=expected, reverse=True)


def render(root: Path, strict: bool) -> None:
    """Run ``jupyter-book build``; every notebook's outputs are already in its cache."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root)]
    if strict:  # a warning fails, and so does a reference to nothing (nitpicky)
        command += ["-W", "-n", "--keep-going"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    executed_itself = []
    for line in process.stdout:
        print(line, end="", flush=True)
        if "Executing notebook using" in line:
            executed_itself.append(line.strip())
    if process.wait() != 0:
        raise SystemExit(f"book: jupyter-book build failed (exit {process.returncode})")
    if executed_itself:
        print("book: warning: Jupyter Book executed a notebook itself: its cached outputs did not match",
              flush=True)


def build(root: Path, scale: str, workers: int, force: bool = False, strict: bool = False,
          render_pages: bool = True) -> dict:
    """Execute what changed, render, write the report; SystemExit naming the failures if a cell raised."""
    os.environ["RANKING_SCALE"] = scale
    for variable in THREAD_VARIABLES:      # each kernel single-threaded: workers do not fight over cores
        os.environ.setdefault(variable, "1")
    # Kernels draw figures inline, into the page; a non-interactive backend (Agg, as the
    # tests set) would drop every figure without an error.
    os.environ["MPLBACKEND"] = INLINE_BACKEND

    start = time.perf_counter()
    notebooks = book_notebooks(root)
    print(f"book: {len(notebooks)} notebooks at scale {scale!r}", flush=True)
    rows, failures = execute_changed(notebooks, scale, workers, force, ExecutionCache(root))
    report = {"scale": scale, "workers": workers, "machine": machine(),
              "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "execution_wall_seconds": round(time.perf_counter() - start, 1), "notebooks": rows}
    if failures:
        raise SystemExit("book: failed\n" + "\n".join(failures))
    if render_pages:
        render_start = time.perf_counter()
        render(root, strict)
        report["render_seconds"] = round(time.perf_counter() - render_start, 1)
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    (root / REPORT_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    executed = sum(row["executed"] for row in rows)
    print(f"book: {executed} executed, {len(rows) - executed} from the cache; "
          f"{report['total_seconds']:.0f} s in all; times in {REPORT_FILE}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default=os.environ.get("RANKING_SCALE", "book"),
                        choices=["smoke", "moderate", "book", "gpu"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="notebooks executed at once, each single-threaded (default: one per core)")
    parser.add_argument("--force", action="store_true", help="re-execute every notebook")
    parser.add_argument("--strict", action="store_true", help="turn Sphinx warnings into errors, nitpicky: a broken reference fails")
    parser.add_argument("--no-render", action="store_true", help="execute only; do not run jupyter-book")
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's root (default: this repository)")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    build(args.root.resolve(), args.scale, args.workers, args.force, args.strict, not args.no_render)


if __name__ == "__main__":
    main()
