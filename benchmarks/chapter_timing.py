"""Time each chapter's code at a scale, without Jupyter: a chapter runs as a script.

    PYTHONPATH=. python benchmarks/chapter_timing.py --scale gpu --parallel 8 --timeout 540

For a machine that has no Jupyter (a GPU box, say): each chapter's code cells
are joined into one script (lines that start with ``%`` or ``!`` dropped, so
Colab's install cell does nothing) and run in its own process with
``RANKING_SCALE`` set. Where IPython or ipywidgets is missing, a stand-in
module is put on the path: ``display`` prints, a widget does nothing. So the
figure is the chapter's computing time, not the book build's (no kernel, no
rendering). A chapter that runs past ``--timeout`` is recorded as such, with
the time it had run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402

BOOK = Path(__file__).resolve().parent.parent / "book"

STAND_INS = {
    "IPython/__init__.py": ("version_info = (0, 0)\n"        # what matplotlib reads
                            "def get_ipython():\n    return None\n"),
    "IPython/display.py": (
        "def display(*objects, **kwargs):\n"
        "    for obj in objects:\n"
        "        print(repr(obj))\n"
        "class Markdown(str):\n    pass\n"
        "class HTML(str):\n    pass\n"),
    "ipywidgets/__init__.py": (
        "class _Widget:\n"
        "    def __init__(self, *args, **kwargs):\n        pass\n"
        "    def __getattr__(self, name):\n        return _Widget()\n"
        "    def __call__(self, *args, **kwargs):\n        return _Widget()\n"
        "def __getattr__(name):\n    return _Widget\n"),
}
"""Minimal modules for a machine without IPython / ipywidgets."""


def chapter_script(notebook: Path) -> str:
    """The notebook's code cells as one script, magics and shell lines dropped."""
    cells = ["".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]
             if cell["cell_type"] == "code"]
    lines = []
    for line in "\n\n".join(cells).splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines) + "\n"


def stand_in_path(folder: Path) -> Path:
    """A folder holding stand-ins for whichever of IPython / ipywidgets is missing."""
    for relative, source in STAND_INS.items():
        package = relative.split("/")[0]
        if importlib.util.find_spec(package) is None:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(source)
    return folder


def run_chapter(notebook: Path, scale: str, timeout: float, scratch: Path) -> dict:
    """Run one chapter as a script in ``book/`` and report its time and outcome."""
    script = scratch / f"{notebook.stem}.py"
    script.write_text(chapter_script(notebook))
    env = {**os.environ, "RANKING_SCALE": scale, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(BOOK.parent), str(scratch / "stand_ins"),
                                          os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=BOOK, env=env, timeout=timeout,
                              capture_output=True, text=True)
        outcome = "ok" if done.returncode == 0 else "failed"
        tail = done.stderr.strip().splitlines()[-3:] if done.returncode else []
    except subprocess.TimeoutExpired:
        outcome, tail = "timed out", []
    seconds = round(time.perf_counter() - start, 1)
    print(f"{notebook.stem:<22} {outcome:<10} {seconds:8.1f} s", *tail, sep="\n  " if tail else "",
          flush=True)
    return {"chapter": notebook.stem, "outcome": outcome, "seconds": seconds, "error": tail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "moderate", "book", "gpu"])
    parser.add_argument("--chapters", nargs="+", default=None, help="notebook stems; default all")
    parser.add_argument("--parallel", type=int, default=1, help="chapters run at once")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per chapter")
    args = parser.parse_args()
    notebooks = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        notebooks = [notebook for notebook in notebooks if notebook.stem in args.chapters]
    with tempfile.TemporaryDirectory() as scratch:
        stand_in_path(Path(scratch) / "stand_ins")
        with ThreadPoolExecutor(args.parallel) as pool:
            runs = list(pool.map(lambda notebook: run_chapter(notebook, args.scale, args.timeout,
                                                              Path(scratch)), notebooks))
    result = {"scale": args.scale, "parallel": args.parallel, "timeout_s": args.timeout,
              "runs": runs}
    print("wrote", write_result(f"chapter_timing_{args.scale}", result, __file__))


if __name__ == "__main__":
    main()
