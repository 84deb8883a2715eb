"""The project's own files: dependency bounds, the table of contents, the repository URL."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
URL = CONFIG["repository"]["url"]


def _requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _normalized(requirements) -> set[str]:
    return {re.sub(r"\s+", "", r).lower() for r in requirements}


def test_runtime_requirements_are_lower_bounds_only():
    for requirement in _requirements("requirements.txt"):
        assert ">=" in requirement and not re.search(r"==|<|~=|!=", requirement), (
            f"{requirement!r}: use lower bounds only, so that installing in Colab keeps Colab's builds")


def test_pyproject_mirrors_the_requirement_files():
    project = PYPROJECT["project"]
    assert _normalized(project["dependencies"]) == _normalized(_requirements("requirements.txt"))
    extras = project["optional-dependencies"]
    assert _normalized(extras["book"]) | _normalized(extras["test"]) == _normalized(
        _requirements("requirements-dev.txt"))
    assert "torch>=2.3" in _normalized(project["dependencies"])
    assert any(r.startswith("jupyter-book") and "<2" in r for r in _normalized(extras["book"]))


def test_toc_files_exist_and_every_chapter_is_listed():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]
    for file in files:
        assert any((ROOT / f"{file}{suffix}").exists() for suffix in (".md", ".ipynb")), (
            f"_toc.yml lists {file}, which does not exist")
    for notebook in sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "labs").glob("*.ipynb")):
        entry = notebook.relative_to(ROOT).with_suffix("").as_posix()
        assert entry in files, f"{entry} is not in _toc.yml"


def test_config_settings_that_matter():
    assert CONFIG["execute"]["execute_notebooks"] in ("cache", "force")
    assert "labs/*" in CONFIG["execute"]["exclude_patterns"]
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert CONFIG["sphinx"]["config"]["nb_merge_streams"] is True
    assert CONFIG["repository"]["path_to_book"] == ""
    assert URL.startswith("https://github.com/")
    assert (ROOT / CONFIG["bibtex_bibfiles"][0]).exists()


def test_cited_keys_are_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set()
    for page in list((ROOT / "book").glob("*.md")) + list((ROOT / "book").glob("*.ipynb")):
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited.update(key.strip() for key in group.split(","))
    assert cited <= keys, f"cited but not in book/references.bib: {sorted(cited - keys)}"


def test_readme_links_use_the_configured_repository():
    readme = (ROOT / "README.md").read_text()
    github_links = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme))
    colab_links = set(re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)", readme))
    repo = URL.removeprefix("https://github.com/")
    assert github_links <= {URL}, f"README links another repository: {github_links - {URL}}"
    assert colab_links and colab_links <= {repo}


def test_ci_script_is_executable_and_runs_make_test():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "set -euo pipefail" in text and "make test" in text
