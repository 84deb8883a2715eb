#!/usr/bin/env python3
"""Every number a notebook prints, dumped and compared: the check that a refactor moved none.

    python tools/glue_values.py dump --scale smoke --out before.json    # chapters + lab solutions
    python tools/glue_values.py dump --out one.json book/04_multitask.ipynb
    python tools/glue_values.py compare before.json after.json
    python tools/glue_values.py compare before.json after.json --rerun before-2.json

``dump`` executes each notebook in a fresh single-threaded kernel (two at a
time by default) and records, per notebook,

- ``glue``: every myst-nb glued value by name, as the text the book shows;
- ``outputs``: each code cell's text outputs (prints and ``text/plain``
  results), by cell number, so a notebook that glues nothing (a lab) is
  compared too.

``compare`` lists what differs between two dumps, glued values first, and
exits 1 if anything does. Timings differ from run to run: with ``--rerun``, a
second dump of the "before" code, a value that also differs between the two
"before" runs is marked as varying between runs, and only the others count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_book import THREAD_VARIABLES, book_notebooks, execute_notebook, notebook_timeout  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GLUE_PREFIX = "application/papermill.record/"


def default_notebooks(root: Path = ROOT) -> list[Path]:
    """The book's executed chapters and every lab's solution notebook."""
    return book_notebooks(root) + sorted((root / "labs" / "solutions").glob("*.ipynb"))


def glued_values(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """{name: the text/plain the book shows} for every ``glue`` call's output."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            data = output.get("data", {})
            values[name] = data.get(GLUE_PREFIX + "text/plain", data.get("text/plain", ""))
    return values


def text_outputs(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """{cell number: its printed text and results (a table's HTML), glue outputs left out.

    Memory addresses and the random ids pandas gives a styled table are blanked.
    """
    outputs = {}
    for index, cell in enumerate(notebook.cells):
        parts = []
        for output in cell.get("outputs", []):
            if "scrapbook" in output.get("metadata", {}):
                continue
            data = output.get("data", {})
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "text/html" in data:           # a table: its cells, not a Styler's repr
                parts.append(re.sub(r"T_[0-9a-f]{5}", "T_", data["text/html"]))
            elif "text/plain" in data:
                parts.append(re.sub(r" at 0x[0-9a-f]+", "", data["text/plain"]))
        if parts:
            outputs[str(index)] = "".join(parts)
    return outputs


def dump(notebooks: list[Path], scale: str, workers: int) -> dict:
    """Execute the notebooks and collect their glued values and text outputs."""
    os.environ["RANKING_SCALE"] = scale
    os.environ["MPLBACKEND"] = "Agg"
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    timeout = notebook_timeout(ROOT)
    result = {"scale": scale, "notebooks": {}}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        runs = pool.map(execute_notebook, [str(path) for path in notebooks],
                        [timeout] * len(notebooks))
        for path, run in zip(notebooks, runs):
            name = path.resolve().relative_to(ROOT).as_posix()
            if run["failure"] is not None:
                raise SystemExit(f"glue_values: {name} failed: {run['failure']}")
            notebook = nbformat.reads(run["notebook"], as_version=4)
            result["notebooks"][name] = {"glue": glued_values(notebook),
                                         "outputs": text_outputs(notebook)}
            print(f"  {name:<40} {run['seconds']:6.1f} s, "
                  f"{len(result['notebooks'][name]['glue'])} glued values", flush=True)
    return result


def differences(before: dict, after: dict, section: str,
                rerun: dict | None = None) -> tuple[list[str], int]:
    """One entry per value of ``section`` ('glue' or 'outputs') that differs, and how
    many of them differ only as a rerun of the "before" code differs too."""
    lines, varying = [], 0
    for name in sorted(set(before["notebooks"]) | set(after["notebooks"])):
        old = before["notebooks"].get(name, {}).get(section, {})
        new = after["notebooks"].get(name, {}).get(section, {})
        again = (rerun or {}).get("notebooks", {}).get(name, {}).get(section, {})
        for key in sorted(set(old) | set(new), key=lambda k: (len(k), k)):
            if old.get(key) == new.get(key):
                continue
            varies = rerun is not None and again.get(key) != old.get(key)
            varying += varies
            note = " (varies between runs)" if varies else ""
            lines.append(f"{name} [{key}]{note}\n    before: {old.get(key)!r}\n"
                         f"    after:  {new.get(key)!r}")
    return lines, varying


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump", help="execute notebooks and write their values")
    dumping.add_argument("notebooks", nargs="*", type=Path,
                         help="default: the book's chapters and the lab solutions")
    dumping.add_argument("--scale", default="smoke")
    dumping.add_argument("--workers", type=int, default=2)
    dumping.add_argument("--out", type=Path, required=True)
    comparing = commands.add_parser("compare", help="list the values two dumps disagree on")
    comparing.add_argument("before", type=Path)
    comparing.add_argument("after", type=Path)
    comparing.add_argument("--rerun", type=Path,
                           help="a second dump of the before code: what varies between runs")
    args = parser.parse_args()

    if args.command == "dump":
        notebooks = [path.resolve() for path in args.notebooks] or default_notebooks()
        values = dump(notebooks, args.scale, args.workers)
        args.out.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
        print(f"glue_values: wrote {args.out}")
        return
    before, after = (json.loads(path.read_text()) for path in (args.before, args.after))
    rerun = json.loads(args.rerun.read_text()) if args.rerun else None
    changed = 0
    for section, label in (("glue", "glued values"), ("outputs", "cell outputs")):
        lines, varying = differences(before, after, section, rerun)
        total = sum(len(entry[section]) for entry in after["notebooks"].values())
        print(f"{len(lines)} of {total} {label} differ, {varying} of them varying between runs")
        print("\n".join(lines))
        changed += len(lines) - varying
    sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
