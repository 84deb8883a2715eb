"""The package's shape: public names across modules, layers that flow one way, a short loop.

The book prints the package's code, so these are properties a reader relies on:
what one module uses of another is that module's public API; ``ranking.nn``
knows tensors, not logs or training; the training loop is small parts, written
once.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ranking"
MODULES = sorted(PACKAGE.rglob("*.py"))
sys.path.insert(0, str(ROOT / "tools"))
import notebook_deps as deps  # noqa: E402

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "labs").rglob("*.ipynb"))

LAYERS = {"checks": 0, "simulate": 1, "real": 1, "history": 2, "features": 2, "transforms": 2, "batches": 3, "nn": 4,
          "objective": 5, "train": 5, "metrics": 6}
"""Each layer may import from its own and lower layers only; every other module
(calibration, serve, continuous, ...) is an experiment on top and may import any."""
TOP = 7


def dotted(path: Path) -> str:
    """ranking/nn/heads.py -> ranking.nn.heads; a package's __init__.py -> the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_module(name: str) -> bool:
    """Whether ``ranking.a.b`` is a module or package of this repository."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def ranking_imports(tree: ast.AST, module: str = "", is_package: bool = False
                    ) -> list[tuple[str, list[str], int]]:
    """(imported ranking module, the names taken from it, line) for every import.

    ``from ranking import checks`` imports the module ``ranking.checks``.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = absolute(node, module, is_package)
            if source != "ranking" and not source.startswith("ranking."):
                continue
            for alias in node.names:
                if is_module(f"{source}.{alias.name}"):
                    found.append((f"{source}.{alias.name}", [], node.lineno))
                else:
                    found.append((source, [alias.name], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names
                      if alias.name.startswith("ranking")]
    return found


def private_uses(tree: ast.AST, module: str = "", is_package: bool = False) -> list[str]:
    """Underscore names taken from another ranking module: imported, or read as attributes
    of a name bound to a ranking module or to something imported from one."""
    uses, bound = [], set()
    for source, names, line in ranking_imports(tree, module, is_package):
        if source == module:
            continue
        uses += [f"line {line}: {source}.{name}" for name in names
                 if name.startswith("_") and not name.startswith("__")]
        bound.update(names or [source.split(".")[-1], source.split(".")[0]])
    for node in ast.walk(tree):
        if isinstance(node, ast.alias) and node.asname:
            bound.add(node.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                and node.value.id in bound):
            uses.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return uses


def notebook_code(path: Path) -> ast.AST:
    """The code cells of a notebook, IPython magics turned into calls, as one tree."""
    return ast.parse(deps.notebook_code(nbformat.read(path, as_version=4)))


def layer(module: str) -> int:
    """The layer of ``ranking.<name>...``: its first name after ``ranking.``."""
    parts = module.split(".")
    return LAYERS.get(parts[1], TOP) if len(parts) > 1 else TOP


@pytest.mark.parametrize("path", MODULES, ids=lambda path: dotted(path))
def test_no_module_uses_another_modules_private_names(path):
    module = dotted(path)
    tree = ast.parse(path.read_text())
    assert not private_uses(tree, module, path.name == "__init__.py"), (
        f"{module} uses private names of other modules: make them public")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_notebook_uses_the_packages_private_names(path):
    assert not private_uses(notebook_code(path)), (
        f"{path.name} uses private names of the package: the book shows public code")


@pytest.mark.parametrize("path", MODULES, ids=lambda path: dotted(path))
def test_imports_flow_from_lower_layers_only(path):
    module = dotted(path)
    tree = ast.parse(path.read_text())
    upward = [f"line {line}: {source}"
              for source, _, line in ranking_imports(tree, module, path.name == "__init__.py")
              if layer(source) > layer(module)]
    assert not upward, f"{module} (layer {layer(module)}) imports from a higher layer: {upward}"


def test_the_nn_package_knows_no_logs_features_or_training():
    for path in (PACKAGE / "nn").rglob("*.py"):
        tree = ast.parse(path.read_text())
        sources = {source for source, _, _ in
                   ranking_imports(tree, dotted(path), path.name == "__init__.py")}
        forbidden = {source for source in sources
                     if source.split(".")[1] in ("train", "objective", "features", "simulate")}
        assert not forbidden, f"{dotted(path)} imports {sorted(forbidden)}"


def test_the_checks_catch_an_upward_import_and_a_private_name():
    tree = ast.parse("from ..train import fit\nfrom ranking.features import FeatureEncoder\n")
    sources = [source for source, _, _ in ranking_imports(tree, "ranking.nn.models")]
    assert sources == ["ranking.train", "ranking.features"]
    assert layer("ranking.train") > layer("ranking.nn.models")
    private = ast.parse("from ranking.simulate.logs import _affinity\n"
                        "import ranking.train as t\nt._helper()\n")
    assert len(private_uses(private)) == 2


def functions(path: Path) -> dict[str, ast.AST]:
    """Top-level functions and classes, and the methods of classes, by qualified name."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = node
        if isinstance(node, ast.ClassDef):
            found.update({f"{node.name}.{item.name}": item for item in node.body
                          if isinstance(item, ast.FunctionDef)})
    return found


@pytest.mark.parametrize("name", ["fit", "train_step", "train_epoch", "evaluate_loss",
                                  "EarlyStopping"])
def test_fit_and_its_parts_fit_on_a_screen(name):
    node = functions(PACKAGE / "train.py")[name]
    assert node.end_lineno - node.lineno + 1 <= 40, f"ranking.train.{name} is over 40 lines"


def test_one_place_steps_an_optimizer_over_batches():
    """Every gradient step of the package's training goes through train.train_step."""
    steppers = []
    for path in MODULES:
        if "labcheck" in path.parts:
            continue
        for name, node in functions(path).items():
            calls = {call.func.attr for call in ast.walk(node)
                     if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)}
            if "backward" in calls and "." not in name:
                steppers.append(f"{dotted(path)}.{name}")
    # the delay fit minimizes a likelihood with L-BFGS, on no batches
    assert sorted(steppers) == ["ranking.delayed.fit_delay_distribution",
                                "ranking.train.train_step"]


def shown_objects(path: Path) -> list[tuple[str, object]]:
    """What a notebook's ``show_code(...)`` calls print: (name, object), resolved through
    the notebook's own imports of the package."""
    import importlib

    tree = notebook_code(path)
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ranking"):
            module = importlib.import_module(node.module)
            for alias in node.names:         # a name in the module, or a submodule
                names[alias.asname or alias.name] = (
                    getattr(module, alias.name) if hasattr(module, alias.name)
                    else importlib.import_module(f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ranking"):
                    names[alias.asname or alias.name.split(".")[0]] = importlib.import_module(
                        alias.name if alias.asname else alias.name.split(".")[0])
    shown = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "show_code":
            for argument in node.args:
                chain = []
                while isinstance(argument, ast.Attribute):
                    chain.insert(0, argument.attr)
                    argument = argument.value
                if isinstance(argument, ast.Name) and argument.id in names:
                    target = names[argument.id]
                    for attr in chain:
                        target = getattr(target, attr)
                    shown.append((".".join([argument.id, *chain]), target))
    return shown


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_package_code_the_book_shows_fits_the_page(path):
    import inspect
    import textwrap

    too_long = [f"{name}: {len(line)} characters: {line.strip()[:50]}"
                for name, target in shown_objects(path)
                for line in textwrap.dedent(inspect.getsource(target)).splitlines()
                if len(line) > 84]
    assert not too_long, f"{path.name} shows lines wider than the page: {too_long}"
