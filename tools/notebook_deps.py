"""What a book notebook's outputs depend on, and one key that changes when any of it does.

A notebook's outputs change when its own code changes, when the scale of the
synthetic log changes, when the installed requirements change, when a module of
the ``ranking`` package that it imports changes (directly, or through other
``ranking`` modules: importing ``ranking.nn.towers`` runs ``ranking/__init__.py``,
``ranking/nn/__init__.py`` and every module those import), or when a repository
file its code names changes (a recorded benchmark result, say). ``execution_key``
hashes exactly those, so the book re-executes a notebook only when one of them
changed.

    python tools/notebook_deps.py book/05_multitower.ipynb    # list what it depends on
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ranking"
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "pyproject.toml")


def notebook_code(notebook: nbformat.NotebookNode) -> str:
    """The code cells as one Python source, IPython magics (``%pip``, ``!ls``) turned into calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    transformer = TransformerManager()
    cells = [transformer.transform_cell(cell.source) for cell in notebook.cells if cell.cell_type == "code"]
    return "\n".join(cells)


def imported_modules(source: str, module: str | None = None, is_package: bool = False) -> set[str]:
    """Dotted names of the ``ranking`` modules (and names that may be modules) ``source`` imports.

    ``module`` is the dotted name of the module the source belongs to, for its
    relative imports (``from .batches import ...`` in ``ranking.train``);
    ``is_package`` says whether that source is a package's ``__init__.py``.
    ``from ranking.nn import MLP`` yields both ``ranking.nn`` and
    ``ranking.nn.MLP``: the second is kept only if it is a module file.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            if base is None:
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _absolute(node: ast.ImportFrom, module: str | None, is_package: bool) -> str | None:
    """The absolute module name of a ``from ... import`` statement (None outside a package)."""
    if node.level == 0:
        return node.module
    if module is None:
        return None
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]                       # a module's relative imports start at its package
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of dotted module ``name`` under ``root``; None if it is no module."""
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def ranking_dependencies(source: str, root: Path = ROOT) -> list[Path]:
    """Every ``ranking`` source file that running ``source`` imports, sorted.

    Follows imports through the package, and counts each parent package's
    ``__init__.py``, since Python runs it before the module itself.
    """
    pending = imported_modules(source)
    seen: set[str] = set()
    files: set[Path] = set()
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix in seen:
                continue
            seen.add(prefix)
            path = module_file(prefix, root)
            if path is None:
                continue                        # a class or function imported from a module
            files.add(path)
            pending |= imported_modules(path.read_text(), prefix, is_package=path.name == "__init__.py")
    return sorted(files)


def named_files(source: str, notebook: Path, root: Path = ROOT) -> list[Path]:
    """Repository files (or every file of a folder) that a string constant in ``source`` names.

    A chapter that reads ``"../benchmarks/results"`` depends on what is in it;
    if the code also holds a glob pattern (``"train_throughput-*.json"``) that
    matches files of that folder, only the matching files count. A folder counts
    only when named as a path (with a "/"): a bare word such as "book" is more
    often a label than a folder. Paths are tried relative to the notebook's
    folder and to the repository root.
    """
    texts = {node.value.strip() for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    texts = {text for text in texts if text and "\n" not in text and len(text) <= 200 and text not in (".", "..")}
    patterns = [text for text in texts if any(char in text for char in "*?[")]
    found: set[Path] = set()
    for text in texts:
        for base in (notebook.parent, root):
            path = (base / text).resolve()
            if not path.exists() or not path.is_relative_to(root) or path == root:
                continue
            if path.is_file():
                found.add(path)
            elif path.is_dir() and "/" in text and not path.is_relative_to(root / PACKAGE):
                files = [child for child in path.rglob("*") if child.is_file()]
                matching = [child for child in files
                            if any(child.relative_to(path).match(pattern) for pattern in patterns)]
                found.update(matching or files)
    return sorted(found)


def dependencies(notebook_path: Path, root: Path = ROOT) -> list[Path]:
    """The package modules, requirement files and named files a notebook's outputs depend on."""
    source = notebook_code(nbformat.read(notebook_path, as_version=4))
    requirements = [root / name for name in REQUIREMENT_FILES if (root / name).exists()]
    return sorted(set(ranking_dependencies(source, root)) | set(requirements)
                  | set(named_files(source, notebook_path, root)))


def execution_key(notebook_path: Path, scale: str, root: Path = ROOT) -> str:
    """A hash of the notebook's code and cell tags, the scale and the contents of its dependencies."""
    notebook = nbformat.read(notebook_path, as_version=4)
    code = [{"source": cell.source, "tags": cell.metadata.get("tags", [])}
            for cell in notebook.cells if cell.cell_type == "code"]
    digest = hashlib.sha256(json.dumps({"scale": scale, "code": code}, sort_keys=True).encode())
    for path in dependencies(notebook_path, root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


def main() -> None:
    for argument in sys.argv[1:]:
        path = Path(argument).resolve()
        print(f"{path.relative_to(ROOT)} depends on:")
        for dependency in dependencies(path):
            print(f"  {dependency.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
