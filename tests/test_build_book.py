"""tools/build_book.py and tools/notebook_deps.py: what re-executes, in parallel, and how a failure reads.

The dependency tests run on a copy of the repository's package, chapters and
requirement files, so they change files freely; the end-to-end tests build a
two-page book in a temporary folder (a few tiny notebooks, seconds each).
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_book  # noqa: E402  (a plain import: worker processes find execute_notebook by name)
import notebook_deps as deps  # noqa: E402


# ----------------------------------------------------------------- dependencies
def test_relative_imports_resolve_inside_the_package():
    source = "from .batches import Batches\nfrom ..simulate import TASKS\nimport numpy\nfrom . import nn\n"
    assert deps.imported_modules(source, "ranking.train") == {
        "ranking.batches", "ranking.batches.Batches", "ranking", "ranking.nn"} | set()
    inside_a_package = deps.imported_modules("from .towers import MultiTower\n", "ranking.nn", is_package=True)
    assert inside_a_package == {"ranking.nn.towers", "ranking.nn.towers.MultiTower"}
    two_up = deps.imported_modules("from ..simulate import TASKS\n", "ranking.nn.towers")
    assert two_up == {"ranking.simulate", "ranking.simulate.TASKS"}


def test_magics_do_not_break_the_parse():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('%pip install -q "x"\n!ls\nfrom ranking.nn.towers import MultiTower'),
        nbformat.v4.new_markdown_cell("import ranking.gbdt  (prose, not code)"),
    ])
    source = deps.notebook_code(notebook)
    files = {path.relative_to(ROOT).as_posix() for path in deps.ranking_dependencies(source)}
    assert "ranking/nn/towers.py" in files and "ranking/gbdt.py" not in files
    # a parent package's __init__ runs first, and so do the modules it imports
    assert {"ranking/__init__.py", "ranking/nn/__init__.py", "ranking/nn/models.py"} <= files


def test_chapter_dependencies_follow_their_imports():
    def files(chapter: str) -> set[str]:
        return {path.relative_to(ROOT).as_posix() for path in deps.dependencies(ROOT / "book" / chapter)}

    gbdt, towers = files("02_gbdt.ipynb"), files("05_multitower.ipynb")
    assert "ranking/nn/towers.py" in towers and "ranking/nn/towers.py" not in gbdt
    assert "ranking/gbdt.py" in gbdt
    assert {"requirements.txt", "ranking/simulate/logs.py", "ranking/train.py"} <= gbdt & towers
    deep = files("03_deep_model.ipynb")          # reads recorded benchmark results by a glob
    assert "benchmarks/results/train_throughput-cpu.json" in deep
    assert "benchmarks/results/batching-cpu.json" not in deep


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    """The package, chapters, recorded results and requirement files, in a folder the test may change."""
    for folder in ("ranking", "book", "benchmarks/results", "experiments/results"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml", "_toc.yml", "_config.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _keys(root: Path, scale: str = "book") -> dict[str, str]:
    return {path.name: deps.execution_key(path, scale, root) for path in sorted((root / "book").glob("*.ipynb"))}


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_a_change_in_towers_re_executes_chapter_5_only(repo_copy):
    before = _keys(repo_copy)
    _append(repo_copy / "ranking" / "nn" / "towers.py", "# one more line\n")
    assert _changed(before, _keys(repo_copy)) == {"05_multitower.ipynb"}


def test_what_else_re_executes_which_chapters(repo_copy):
    before = _keys(repo_copy)
    assert _changed(before, _keys(repo_copy, scale="smoke")) == set(before)          # the scale: all
    _append(repo_copy / "ranking" / "gbdt.py", "# a comment\n")
    # the appendix's trees (ranking.real_experiments) are chapter 2's
    assert _changed(before, _keys(repo_copy)) == {"02_gbdt.ipynb", "03_deep_model.ipynb",
                                                  "06_sequences.ipynb", "A1_real_log.ipynb"}
    before = _keys(repo_copy)
    _append(repo_copy / "benchmarks" / "results" / "train_throughput-cpu.json", "\n")
    assert _changed(before, _keys(repo_copy)) == {"03_deep_model.ipynb"}
    before = _keys(repo_copy)
    _append(repo_copy / "experiments" / "results" / "sequence_ablations-cpu.json", "\n")
    assert _changed(before, _keys(repo_copy)) == {"06_sequences.ipynb"}
    before = _keys(repo_copy)
    _append(repo_copy / "ranking" / "nn" / "sequence" / "target_attention.py", "# DIN\n")
    # chapter 8 imports ranking.nn.sequence.transformer, which runs the package's __init__;
    # chapter 10's model (ranking.nn.closeup) summarizes each sequence with target attention
    # and the appendix's sequence models (ranking.real_experiments) are chapter 6's
    assert _changed(before, _keys(repo_copy)) == {"06_sequences.ipynb", "08_sixteen_bits.ipynb",
                                                  "10_whole_ranker.ipynb", "A1_real_log.ipynb"}
    before = _keys(repo_copy)
    _append(repo_copy / "ranking" / "simulate" / "logs.py", "# the generator: every chapter\n")
    assert _changed(before, _keys(repo_copy)) == set(before)
    before = _keys(repo_copy)
    _append(repo_copy / "requirements.txt", "tqdm>=4.66\n")
    assert _changed(before, _keys(repo_copy)) == set(before)


def test_a_notebooks_own_code_and_tags_change_its_key_not_its_outputs(repo_copy):
    before = _keys(repo_copy)
    path = repo_copy / "book" / "04_multitask.ipynb"
    notebook = nbformat.read(path, as_version=4)
    prose = next(cell for cell in reversed(notebook.cells) if cell.cell_type == "markdown")
    prose.source += "\n"                               # markdown: no re-execution
    nbformat.write(notebook, path)
    assert _changed(before, _keys(repo_copy)) == set()
    code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    code.metadata.setdefault("tags", []).append("hide-input")
    nbformat.write(notebook, path)
    assert _changed(before, _keys(repo_copy)) == {"04_multitask.ipynb"}
    code.outputs = [nbformat.v4.new_output("stream", text="an output")]   # outputs are not code
    before = _keys(repo_copy)
    nbformat.write(notebook, path)
    assert _changed(before, _keys(repo_copy)) == set()


def test_the_book_executes_the_toc_notebooks_but_not_the_student_labs():
    notebooks = [path.relative_to(ROOT).as_posix() for path in build_book.book_notebooks()]
    assert notebooks == sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "book").glob("*.ipynb"))
    assert not any(name.startswith("labs/") for name in notebooks)


# ------------------------------------------------------------------ end to end
def _write_book(root: Path, cells: dict[str, list[str]]) -> None:
    """A book with one notebook per entry of ``cells`` and the repository's execution settings."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    mini_config = {"title": "t", "only_build_toc_files": True, "execute": config["execute"],
                   "sphinx": {"config": {key: config["sphinx"]["config"][key]
                                         for key in ("nb_execution_raise_on_error", "nb_merge_streams")}}}
    (root / "_config.yml").write_text(yaml.safe_dump(mini_config))
    (root / "intro.md").write_text("# A small book\n")
    chapters = [{"file": f"book/{name}"} for name in cells]
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "intro",
                                                   "chapters": chapters}))
    (root / "book").mkdir(exist_ok=True)
    for name, sources in cells.items():
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}")]
                                            + [nbformat.v4.new_code_cell(source) for source in sources])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, root / "book" / f"{name}.ipynb")


def test_parallel_build_caches_reuses_and_renders(tmp_path, capsys):
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.show()"
    _write_book(tmp_path, {"first": ["import os\nprint('first ran', os.environ['OMP_NUM_THREADS'])", plot],
                           "second": ["print(6 * 7)"]})
    report = build_book.build(tmp_path, "smoke", workers=2)
    assert {row["notebook"]: row["executed"] for row in report["notebooks"]} == {
        "book/first.ipynb": True, "book/second.ipynb": True}
    output = capsys.readouterr().out
    assert "Executing notebook using" not in output          # Jupyter Book only rendered from the cache
    page = (tmp_path / "_build" / "html" / "book" / "first.html").read_text()
    assert "first ran 1" in page                             # each kernel is single-threaded
    assert "<img" in page and ".png" in page                 # figures are drawn into the page
    written = json.loads((tmp_path / "_build" / "execution-times.json").read_text())
    assert written["workers"] == 2 and written["scale"] == "smoke" and written["machine"]["cpu_count"] >= 1
    assert all(row["seconds"] > 0 for row in written["notebooks"])
    slowest = {row["notebook"]: row["slowest_cells"] for row in written["notebooks"]}
    assert [cell["first_line"] for cell in slowest["book/second.ipynb"]] == ["print(6 * 7)"]
    assert slowest["book/first.ipynb"][0]["seconds"] >= 0 and len(slowest["book/first.ipynb"]) == 2

    again = build_book.build(tmp_path, "smoke", workers=2)
    assert not any(row["executed"] for row in again["notebooks"])
    assert "Executing notebook using" not in capsys.readouterr().out

    notebook_path = tmp_path / "book" / "second.ipynb"
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.cells[1].source = "print(6 * 9)"
    nbformat.write(notebook, notebook_path)
    third = build_book.build(tmp_path, "smoke", workers=2)
    assert {row["notebook"]: row["executed"] for row in third["notebooks"]} == {
        "book/first.ipynb": False, "book/second.ipynb": True}
    assert "54" in (tmp_path / "_build" / "html" / "book" / "second.html").read_text()
    forced = build_book.build(tmp_path, "smoke", workers=1, force=True, render_pages=False)
    assert all(row["executed"] for row in forced["notebooks"])


def test_a_raising_cell_fails_the_build_naming_notebook_and_cell(tmp_path):
    _write_book(tmp_path, {"fine": ["x = 1"],
                           "broken": ["y = 2", textwrap.dedent("""\
                               values = [1, 2]
                               values[5]""")]})
    with pytest.raises(SystemExit) as failure:
        build_book.build(tmp_path, "smoke", workers=2)
    message = str(failure.value)
    assert "book/broken.ipynb" in message and "cell 2" in message
    assert "IndexError: list index out of range" in message and "values[5]" in message
    assert "\x1b[" not in message                             # no terminal colour codes
    cache = build_book.ExecutionCache(tmp_path)
    assert cache.seconds(tmp_path / "book" / "broken.ipynb") is None    # nothing stale to render
    assert not (tmp_path / "_build" / "html").exists()                   # rendering never started


def test_longest_first_uses_the_last_run_then_the_committed_record(tmp_path):
    _write_book(tmp_path, {"short": ["x = 1"], "long": ["x = 2"], "new": ["x = 3"],
                           "recorded": ["x = 4"]})
    paths = {name: tmp_path / "book" / f"{name}.ipynb" for name in
             ("short", "long", "new", "recorded")}
    cache = build_book.ExecutionCache(tmp_path)
    cache.records = {"book/short.ipynb": {"seconds": 5.0}, "book/long.ipynb": {"seconds": 50.0}}
    recorded = {"book/recorded.ipynb": 20.0, "book/long.ipynb": 1.0}   # the last run wins
    order = build_book.longest_first(list(paths.values()), cache, recorded)
    assert [path.stem for path in order] == ["new", "long", "recorded", "short"]


def test_the_committed_record_is_read_by_notebook(tmp_path):
    assert build_book.recorded_seconds(tmp_path) == {}
    record = tmp_path / build_book.RECORDED_TIMES
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"notebooks": [{"notebook": "book/a.ipynb", "seconds": 7.5}]}))
    assert build_book.recorded_seconds(tmp_path) == {"book/a.ipynb": 7.5}


def test_strict_rendering_is_nitpicky(tmp_path, monkeypatch):
    commands = []

    class FinishedProcess:
        def __init__(self, command, **kwargs):
            commands.append(command)
            self.stdout, self.returncode = iter(["build succeeded.\n"]), 0

        def wait(self):
            return 0

    monkeypatch.setattr(build_book.subprocess, "Popen", FinishedProcess)
    build_book.render(tmp_path, strict=True)
    build_book.render(tmp_path, strict=False)
    assert {"-W", "-n", "--keep-going"} <= set(commands[0])
    assert not {"-W", "-n"} & set(commands[1])
    assert "STRICT ?= 1" in (ROOT / "Makefile").read_text()      # strict unless asked not to
