"""The labs: student notebooks are generated, and every check tells right from wrong.

For each solution notebook in labs/solutions/ these tests

1. regenerate the student notebook and compare it with the committed one;
2. run the solution notebook's cells in order (at the scale of RANKING_SCALE,
   smoke in `make test`), and at every ``labcheck.check_*(function, *args)`` call
   capture the arguments; then assert that the check
   - rejects the exercise's stub taken from the STUDENT notebook ("not implemented yet"),
   - rejects every known mistake of the exercise (ranking/labcheck/mistakes/labNN.py),
     with the mistake's hint in its message,
   - rejects the few wrong answers that need the lab's own data
     (tests/labs/wrong_answers.py),
   - accepts the function from the SOLUTION notebook, and the right answers written
     another way in tests/labs/right_answers.py.

A new lab needs no new test code: file its known mistakes in ranking/labcheck/mistakes/
(a test fails until every exercise has at least one).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ranking import labcheck
from ranking.labcheck.mistakes import catalogue, every_mistake

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "labs" / "solutions").glob("*.ipynb"))
LABS = [path.stem for path in SOLUTIONS]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_student = _load(ROOT / "tools" / "make_student.py")
wrong_answers = _load(ROOT / "tests" / "labs" / "wrong_answers.py")
right_answers = _load(ROOT / "tests" / "labs" / "right_answers.py")


# ----------------------------------------------------------------------- reading a lab
def _cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [{**cell, "source": "".join(cell["source"]) if isinstance(cell["source"], list)
             else cell["source"]} for cell in nb["cells"]]


def _python(source: str) -> str:
    """Plain Python for a cell's source (IPython magics become get_ipython() calls)."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _defined_functions(source: str) -> list[str]:
    return [node.name for node in ast.parse(_python(source)).body
            if isinstance(node, ast.FunctionDef)]


def _check_calls(source: str) -> list[ast.Call]:
    """``labcheck.check_*(...)`` calls in a cell."""
    calls = []
    for node in ast.walk(ast.parse(_python(source))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "labcheck"
                and node.func.attr.startswith("check_")):
            calls.append(node)
    return calls


@dataclass
class CheckCall:
    check: str               # name of the labcheck function
    function: str            # name of the exercise function it checks
    cell_index: int


@dataclass
class Lab:
    name: str
    exercises: dict[str, str] = field(default_factory=dict)   # function -> solution cell id
    checks: list[CheckCall] = field(default_factory=list)


def read_lab(path: Path) -> Lab:
    """The exercises (functions defined in solution cells) and check calls of a lab."""
    lab = Lab(path.stem)
    for index, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code" or index == 0:
            continue
        if make_student.has_solution(cell):
            for name in _defined_functions(cell["source"]):
                lab.exercises[name] = cell["id"]
        for call in _check_calls(cell["source"]):
            if not call.args or not isinstance(call.args[0], ast.Name):
                raise AssertionError(f"{path.name}: {ast.unparse(call)} must name the exercise "
                                     "function as its first argument")
            lab.checks.append(CheckCall(call.func.attr, call.args[0].id, index))
    return lab


READ = {path.stem: read_lab(path) for path in SOLUTIONS}
CHECK_CASES = [pytest.param(lab, i, id=f"{lab}-{call.check}")
               for lab in LABS for i, call in enumerate(READ[lab].checks)]
MISTAKE_CASES = [pytest.param(lab, i, known, id=f"{lab}-{call.check}-{known.name}")
                 for lab in LABS for i, call in enumerate(READ[lab].checks)
                 for known in catalogue(call.function)]
TEST_ONLY_CASES = [pytest.param(lab, i, wrong, id=f"{lab}-{call.check}-{wrong.__name__}")
                   for lab in LABS for i, call in enumerate(READ[lab].checks)
                   for wrong in wrong_answers.WRONG_ANSWERS.get(call.function, [])]
RIGHT_CASES = [pytest.param(lab, i, right, id=f"{lab}-{call.check}-{right.__name__}")
               for lab in LABS for i, call in enumerate(READ[lab].checks)
               for right in right_answers.RIGHT_ANSWERS.get(call.function, [])]


# -------------------------------------------------------------------- running a lab once
@dataclass
class RunLab:
    namespace: dict
    arguments: dict[int, tuple[list, dict]]   # check call number -> (args after fn, kwargs)


_RUNS: dict[str, RunLab] = {}


def run_lab(name: str) -> RunLab:
    """Execute the solution notebook's cells (up to its last check) in one namespace,
    capturing the arguments of every check call just before its cell runs."""
    if name in _RUNS:
        return _RUNS[name]
    os.environ.setdefault("MPLBACKEND", "Agg")
    path = ROOT / "labs" / "solutions" / f"{name}.ipynb"
    lab = READ[name]
    last = max((call.cell_index for call in lab.checks), default=0)
    namespace: dict = {"__name__": "__lab__"}
    arguments: dict[int, tuple[list, dict]] = {}
    number = 0
    cwd = os.getcwd()
    os.chdir(path.parent)  # notebooks run from their own folder
    try:
        for index, cell in enumerate(_cells(path)[: last + 1]):
            if cell["cell_type"] != "code" or index == 0:  # 0: the Colab setup cell
                continue
            source = _python(cell["source"])
            for call in _check_calls(cell["source"]):
                args = [eval(compile(ast.Expression(a), "<arg>", "eval"), namespace)
                        for a in call.args[1:]]
                kwargs = {k.arg: eval(compile(ast.Expression(k.value), "<arg>", "eval"), namespace)
                          for k in call.keywords}
                arguments[number] = (args, kwargs)
                number += 1
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"{path.name}[{index}]", "exec"), namespace)
    finally:
        os.chdir(cwd)
    _RUNS[name] = RunLab(namespace, arguments)
    return _RUNS[name]


def _function_from(source: str, name: str, namespace: dict):
    scope = dict(namespace)
    exec(compile(_python(textwrap.dedent(source)), f"<{name}>", "exec"), scope)
    return scope[name]


def _cell_by_id(path: Path, cell_id: str) -> dict:
    matches = [cell for cell in _cells(path) if cell.get("id") == cell_id]
    assert len(matches) == 1, f"{path.name}: expected one cell with id {cell_id!r}"
    return matches[0]


def _run_check(lab: str, number: int, function) -> str:
    call = READ[lab].checks[number]
    args, kwargs = run_lab(lab).arguments[number]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        getattr(labcheck, call.check)(function, *args, **kwargs)
    return out.getvalue()


# ----------------------------------------------------------------------------- tests
def test_there_are_labs():
    assert LABS, "no solution notebooks found in labs/solutions/"


def test_student_labs_are_up_to_date():
    stale = make_student.stale_files(ROOT)
    assert not stale, "run `make student`:\n" + "\n".join(stale)


@pytest.mark.parametrize("lab", LABS)
def test_every_exercise_is_checked_and_has_known_mistakes(lab):
    read = READ[lab]
    assert read.exercises, f"{lab}: no exercise (no cell with {make_student.BEGIN})"
    checked = {call.function for call in read.checks}
    assert set(read.exercises) <= checked, (
        f"{lab}: exercises without a check: {set(read.exercises) - checked}")
    for call in read.checks:
        assert hasattr(labcheck, call.check), f"{lab}: ranking.labcheck has no {call.check}"
        assert call.function in read.exercises, (
            f"{lab}: {call.check} checks {call.function}, not an exercise")
        assert catalogue(call.function), (
            f"file known mistakes of {call.function} in ranking/labcheck/mistakes/")


def test_every_known_mistake_is_of_an_exercise():
    exercises = {name for lab in READ.values() for name in lab.exercises}
    test_only = set(wrong_answers.WRONG_ANSWERS) | set(right_answers.RIGHT_ANSWERS)
    stray = [f"{known.exercise}: {known.name}" for known in every_mistake()
             if known.exercise not in exercises]
    assert not stray, f"known mistakes of functions that are not exercises: {stray}"
    assert test_only <= exercises, f"not exercises: {test_only - exercises}"
    names = [(known.exercise, known.name) for known in every_mistake()]
    assert len(names) == len(set(names)), "two known mistakes of one exercise share a name"


@pytest.mark.parametrize("lab", LABS)
def test_student_lab_has_stubs_not_solutions(lab):
    url, version = make_student.repository_url(ROOT), make_student.package_version(ROOT)
    student = _cells(ROOT / "labs" / f"{lab}.ipynb")
    solution = _cells(ROOT / "labs" / "solutions" / f"{lab}.ipynb")
    assert student[0]["source"] == solution[0]["source"] == make_student.setup_source(url, version)
    assert f'git+{url}@v{version}"' in student[0]["source"]
    text = "\n".join(cell["source"] for cell in student)
    assert make_student.BEGIN not in text and make_student.END not in text
    assert text.count(make_student.STUB) == sum(
        1 for cell in solution if make_student.has_solution(cell))
    assert all(not cell.get("outputs") for cell in student)
    assert not any(make_student.SOLUTION_ONLY_TAG in cell["metadata"].get("tags", [])
                   for cell in student)


@pytest.mark.parametrize("lab, number", CHECK_CASES)
def test_check_rejects_the_stub(lab, number):
    call = READ[lab].checks[number]
    cell = _cell_by_id(ROOT / "labs" / f"{lab}.ipynb", READ[lab].exercises[call.function])
    stub = _function_from(cell["source"], call.function, run_lab(lab).namespace)
    with pytest.raises(AssertionError, match="not implemented yet"):
        _run_check(lab, number, stub)


@pytest.mark.parametrize("lab, number, known", MISTAKE_CASES)
def test_check_rejects_a_known_mistake_with_its_hint(lab, number, known):
    with pytest.raises(AssertionError) as rejected:
        _run_check(lab, number, known.function)
    if known.hint:
        assert known.hint in str(rejected.value), (
            f"the hint of {known.name} is missing from: {rejected.value}")


@pytest.mark.parametrize("lab, number, wrong", TEST_ONLY_CASES)
def test_check_rejects_a_wrong_answer_on_the_labs_data(lab, number, wrong):
    with pytest.raises(AssertionError):
        _run_check(lab, number, wrong(run_lab(lab).namespace))


@pytest.mark.parametrize("lab, number", CHECK_CASES)
def test_check_accepts_the_solution(lab, number):
    call = READ[lab].checks[number]
    cell = _cell_by_id(ROOT / "labs" / "solutions" / f"{lab}.ipynb",
                       READ[lab].exercises[call.function])
    solution = _function_from(cell["source"], call.function, run_lab(lab).namespace)
    printed = _run_check(lab, number, solution)
    assert printed.startswith("Correct: ")


@pytest.mark.parametrize("lab, number, right", RIGHT_CASES)
def test_check_accepts_another_right_answer(lab, number, right):
    assert _run_check(lab, number, right).startswith("Correct: ")
