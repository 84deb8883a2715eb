#!/usr/bin/env python3
"""Generate the student labs from their solution sources.

For every ``labs/solutions/NN_name.ipynb`` this writes ``labs/NN_name.ipynb``:

- in each code cell, the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``
  are replaced by ``raise NotImplementedError("Exercise: write your code here")``
  at the indentation of the ``# BEGIN SOLUTION`` line (the marker lines go too);
- cells tagged ``solution-only`` are dropped;
- outputs and execution counts are cleared;
- the first cell is the generated setup cell: in Google Colab it installs the
  release of the ``ranking`` package that this book was built with, the tag
  ``v<version>`` (``pyproject.toml``) of the repository named in ``_config.yml``
  (``repository.url``); elsewhere it uses the local install.

The solution source is normalized too (same setup cell, outputs cleared, stable
cell ids and JSON layout), so running this twice changes nothing. The book's
chapters (``book/*.ipynb``) get the same treatment: each page has a Colab
button, so each chapter starts with the same setup cell (hidden in the book).

    python tools/make_student.py            # write the student labs
    python tools/make_student.py --check    # exit 1 if any committed file is stale
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = "labs/solutions"
CHAPTERS_DIR = "book"
STUDENT_DIR = "labs"

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write your code here")'
SOLUTION_ONLY_TAG = "solution-only"
SETUP_TAG = "colab-setup"
SETUP_CELL_ID = "colab-setup"
NBFORMAT, NBFORMAT_MINOR = 4, 5

_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<marker># (?:BEGIN|END) SOLUTION)[ \t]*$")


class LabFormatError(ValueError):
    """A solution notebook whose solution markers do not pair up."""


# ----------------------------------------------------------------------------- config
def repository_url(root: Path = ROOT) -> str:
    """``repository.url`` from ``_config.yml`` (the one place the URL lives)."""
    text = (root / "_config.yml").read_text()
    try:
        import yaml
    except ImportError:  # a plain reading of the one key, without PyYAML
        match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.M)
        if not match:
            raise LabFormatError("_config.yml has no repository.url")
        return match.group(1).strip("'\"")
    url = (yaml.safe_load(text) or {}).get("repository", {}).get("url")
    if not url:
        raise LabFormatError("_config.yml has no repository.url")
    return str(url)


def package_version(root: Path = ROOT) -> str:
    """``project.version`` from ``pyproject.toml`` (the one place the version lives)."""
    text = (root / "pyproject.toml").read_text()
    match = re.search(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    if not match:
        raise LabFormatError("pyproject.toml has no [project] version")
    return match.group(1)


def install_target(url: str, version: str) -> str:
    """What Colab installs: the repository at the release tag ``v<version>``."""
    return f"git+{url}@v{version}"


def setup_source(url: str, version: str) -> str:
    """The source of the generated first cell of every lab and chapter."""
    return (
        f"# Setup. In Google Colab this installs the book's `ranking` package, release {version}\n"
        "# (about a minute); on your own machine it uses the package installed by `make`.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "{install_target(url, version)}"\n'
        "else:\n"
        '    print("Not in Colab: using the locally installed `ranking` package.")'
    )


def setup_cell(url: str, version: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": SETUP_CELL_ID,
        "metadata": {"tags": [SETUP_TAG, "remove-cell"]},
        "outputs": [],
        "source": setup_source(url, version),
    }


# ----------------------------------------------------------------------------- cells
def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION region by a stub at the BEGIN line's indentation."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.split("\n"), start=1):
        match = _MARKER.match(line)
        marker = match.group("marker") if match else None
        if marker == BEGIN:
            if inside:
                raise LabFormatError(f"{where}, line {number}: {BEGIN} inside another solution")
            inside = True
            out.append(match.group("indent") + STUB)
        elif marker == END:
            if not inside:
                raise LabFormatError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise LabFormatError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


def has_solution(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and any(
        (m := _MARKER.match(line)) and m.group("marker") == BEGIN
        for line in _source(cell).split("\n"))


def _cell_id(index: int, cell: dict) -> str:
    digest = hashlib.sha1(f"{index}\n{cell.get('cell_type')}\n{_source(cell)}".encode())
    return f"cell-{digest.hexdigest()[:8]}"


def _clean(cell: dict) -> dict:
    """A copy with a string source, no outputs and only the keys nbformat 4.5 allows."""
    clean = {"cell_type": cell["cell_type"], "id": cell["id"],
             "metadata": copy.deepcopy(cell.get("metadata", {})), "source": _source(cell)}
    for volatile in ("execution", "collapsed", "scrolled", "ExecuteTime"):
        clean["metadata"].pop(volatile, None)
    if cell["cell_type"] == "code":
        clean["execution_count"] = None
        clean["outputs"] = []
    if cell.get("attachments"):
        clean["attachments"] = copy.deepcopy(cell["attachments"])
    return clean


# ----------------------------------------------------------------------------- notebooks
def normalize_solution(nb: dict, url: str, version: str) -> dict:
    """The solution notebook as committed: setup cell first, outputs cleared, ids stable."""
    cells = [copy.deepcopy(c) for c in nb.get("cells", [])]
    if cells and (SETUP_TAG in _tags(cells[0]) or cells[0].get("id") == SETUP_CELL_ID):
        cells = cells[1:]
    seen: set[str] = {SETUP_CELL_ID}
    for index, cell in enumerate(cells):
        if not cell.get("id") or cell["id"] in seen:
            cell["id"] = _cell_id(index, cell)
        seen.add(cell["id"])
    for index, cell in enumerate(cells):
        if cell.get("cell_type") == "code":
            strip_solutions(_source(cell), where=f"cell {index + 1}")  # validates the markers
    metadata = copy.deepcopy(nb.get("metadata", {}))
    metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python",
                                       "name": "python3"})
    metadata.setdefault("language_info", {"name": "python"})
    return {"cells": [setup_cell(url, version)] + [_clean(c) for c in cells], "metadata": metadata,
            "nbformat": NBFORMAT, "nbformat_minor": NBFORMAT_MINOR}


def make_student(solution: dict, url: str, version: str) -> dict:
    """The student notebook generated from a (normalized or raw) solution notebook."""
    solution = normalize_solution(solution, url, version)
    cells = []
    for index, cell in enumerate(solution["cells"]):
        if SOLUTION_ONLY_TAG in _tags(cell):
            continue
        cell = copy.deepcopy(cell)
        if cell["cell_type"] == "code" and index > 0:
            cell["source"] = strip_solutions(cell["source"], where=f"cell {index + 1}")
        cells.append(cell)
    return {**solution, "cells": cells}


def dumps(nb: dict) -> str:
    """Stable JSON, laid out as Jupyter writes it (indent 1, sorted keys)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:  # Jupyter stores sources as lists of lines
        cell["source"] = cell["source"].splitlines(keepends=True)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def student_path(solution_path: Path, root: Path = ROOT) -> Path:
    return root / STUDENT_DIR / solution_path.name


def solution_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / SOLUTIONS_DIR).glob("*.ipynb"))


def chapter_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / CHAPTERS_DIR).glob("*.ipynb"))


def generate(root: Path = ROOT) -> dict[Path, str]:
    """Every file this tool owns -> its expected content."""
    url, version = repository_url(root), package_version(root)
    files: dict[Path, str] = {}
    for path in chapter_paths(root):
        chapter = json.loads(path.read_text(encoding="utf-8"))
        files[path] = dumps(normalize_solution(chapter, url, version))
    for path in solution_paths(root):
        solution = json.loads(path.read_text(encoding="utf-8"))
        files[path] = dumps(normalize_solution(solution, url, version))
        files[student_path(path, root)] = dumps(make_student(solution, url, version))
    return files


def stale_files(root: Path = ROOT) -> list[str]:
    """Files that differ from a fresh generation, and student labs without a solution."""
    problems = []
    files = generate(root)
    for path, text in files.items():
        if not path.exists():
            problems.append(f"{path.relative_to(root)}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path.relative_to(root)}: differs from a fresh generation")
    for path in sorted((root / STUDENT_DIR).glob("*.ipynb")):
        if path not in files:
            problems.append(f"{path.relative_to(root)}: no solution source in {SOLUTIONS_DIR}/")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed lab differs from a fresh generation")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.check:
            problems = stale_files(root)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print("Run `make student` to regenerate the labs.", file=sys.stderr)
                return 1
            print(f"{len(solution_paths(root))} lab(s) up to date")
            return 0
        for path, text in generate(root).items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {path.relative_to(root)}")
    except LabFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
