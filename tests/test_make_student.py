"""tools/make_student.py: solution regions become stubs, and generation is deterministic."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_student", ROOT / "tools" / "make_student.py")
make_student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_student)

STUB = make_student.STUB


def test_region_becomes_a_stub_at_its_indentation():
    source = (
        "def f(x):\n"
        '    """Doc."""\n'
        "    # BEGIN SOLUTION\n"
        "    y = x + 1\n"
        "    return y\n"
        "    # END SOLUTION\n"
        "\n"
        "class A:\n"
        "    def g(self):\n"
        "        # BEGIN SOLUTION\n"
        "        return 2\n"
        "        # END SOLUTION\n"
        "print('kept')"
    )
    assert make_student.strip_solutions(source) == (
        "def f(x):\n"
        '    """Doc."""\n'
        f"    {STUB}\n"
        "\n"
        "class A:\n"
        "    def g(self):\n"
        f"        {STUB}\n"
        "print('kept')"
    )


@pytest.mark.parametrize("source, message", [
    ("# BEGIN SOLUTION\nx = 1\n", "without"),
    ("x = 1\n# END SOLUTION\n", "without"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside"),
])
def test_unpaired_markers_are_errors(source, message):
    with pytest.raises(make_student.LabFormatError, match=message):
        make_student.strip_solutions(source)


def _solution_notebook() -> dict:
    def code(source, tags=None, outputs=None):
        return {"cell_type": "code", "execution_count": 3, "metadata": {"tags": tags or []},
                "outputs": outputs or [], "source": source}
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Lab 9: a test"},
            code("import math"),
            code("def area(r):\n    # BEGIN SOLUTION\n    return math.pi * r ** 2\n    # END SOLUTION",
                 outputs=[{"output_type": "stream", "name": "stdout", "text": "x\n"}]),
            code("assert abs(area(1) - math.pi) < 1e-12", tags=["solution-only"]),
            code("print(area(2))"),
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 4,
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "labs" / "solutions").mkdir(parents=True)
    (tmp_path / "labs" / "solutions" / "09_test.ipynb").write_text(json.dumps(_solution_notebook()))
    return tmp_path


def test_generated_student_notebook(tree: Path):
    assert make_student.main(["--root", str(tree)]) == 0
    student = json.loads((tree / "labs" / "09_test.ipynb").read_text())
    solution = json.loads((tree / "labs" / "solutions" / "09_test.ipynb").read_text())
    sources = ["".join(cell["source"]) for cell in student["cells"]]
    url, version = make_student.repository_url(tree), make_student.package_version(tree)
    # first cell: the generated Colab setup, in both notebooks, pinned to the release tag
    assert sources[0] == make_student.setup_source(url, version) == "".join(
        solution["cells"][0]["source"])
    assert 'if "google.colab" in sys.modules:' in sources[0]
    assert f'%pip install -q "git+{url}@v{version}"' in sources[0]
    assert sources[1:] == ["# Lab 9: a test", "import math", f"def area(r):\n    {STUB}", "print(area(2))"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None
               for cell in student["cells"] if cell["cell_type"] == "code")
    assert (student["nbformat"], student["nbformat_minor"]) == (4, 5)
    assert len({cell["id"] for cell in student["cells"]}) == len(student["cells"])
    # the solution keeps its solution and its solution-only cell, without outputs
    solution_sources = ["".join(cell["source"]) for cell in solution["cells"]]
    assert "    return math.pi * r ** 2" in solution_sources[3]
    assert len(solution["cells"]) == 6


def test_the_stub_raises_and_the_solution_runs(tree: Path):
    make_student.main(["--root", str(tree)])
    for folder, expect_error in [("labs", True), ("labs/solutions", False)]:
        cells = json.loads((tree / folder / "09_test.ipynb").read_text())["cells"]
        namespace: dict = {}
        exec("import math", namespace)
        exec("".join(cells[3]["source"]), namespace)
        if expect_error:
            with pytest.raises(NotImplementedError, match="Exercise: write your code here"):
                namespace["area"](1.0)
        else:
            assert namespace["area"](1.0) == pytest.approx(3.141592653589793)


def test_generation_is_deterministic_and_check_detects_drift(tree: Path, capsys):
    make_student.main(["--root", str(tree)])
    files = {p: p.read_bytes() for p in (tree / "labs").rglob("*.ipynb")}
    assert make_student.main(["--root", str(tree)]) == 0
    assert {p: p.read_bytes() for p in (tree / "labs").rglob("*.ipynb")} == files
    assert make_student.main(["--root", str(tree), "--check"]) == 0

    student = tree / "labs" / "09_test.ipynb"
    student.write_text(student.read_text().replace("Exercise: write your code here", "solved"))
    assert make_student.main(["--root", str(tree), "--check"]) == 1
    assert "09_test.ipynb: differs" in capsys.readouterr().err

    make_student.main(["--root", str(tree)])
    (tree / "labs" / "10_orphan.ipynb").write_text(student.read_text())
    assert make_student.main(["--root", str(tree), "--check"]) == 1
    assert "no solution source" in capsys.readouterr().err


def test_unpaired_marker_in_a_lab_fails_generation(tree: Path, capsys):
    nb = _solution_notebook()
    nb["cells"][2]["source"] = "def area(r):\n    # BEGIN SOLUTION\n    return 1"
    (tree / "labs" / "solutions" / "09_test.ipynb").write_text(json.dumps(nb))
    assert make_student.main(["--root", str(tree)]) == 2
    assert "without # END SOLUTION" in capsys.readouterr().err
