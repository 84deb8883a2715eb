"""The release: one version everywhere, the licences named, the citation consistent."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

import ranking

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
URL = CONFIG["repository"]["url"]
CITATION = yaml.safe_load((ROOT / "CITATION.cff").read_text())
NOTEBOOKS = sorted([*ROOT.glob("book/*.ipynb"), *ROOT.glob("labs/*.ipynb"),
                    *ROOT.glob("labs/solutions/*.ipynb")])
INSTALL = re.compile(r'%pip install -q "([^"]+)"')


def test_the_version_is_a_release_number_and_the_package_reports_it():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), f"{VERSION!r} is not X.Y.Z"
    assert ranking.__version__ == VERSION, (
        "the installed metadata is stale: reinstall with `make venv`")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_colab_cell_installs_this_release(notebook: Path):
    first = "".join(json.loads(notebook.read_text())["cells"][0]["source"])
    installs = INSTALL.findall(first)
    assert installs == [f"git+{URL}@v{VERSION}"], (
        f"{notebook.name} installs {installs}, not release v{VERSION}: run `make student`")


def test_the_citation_names_this_release():
    assert CITATION["cff-version"] == "1.2.0"
    assert CITATION["version"] == VERSION
    assert CITATION["repository-code"] == URL
    assert set(CITATION["license"]) == {PROJECT["license"], "CC-BY-4.0"}


def test_the_changelog_opens_with_this_release_on_the_citation_date():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (\S+) \((\d{4}-\d{2}-\d{2})\)$", changelog, re.M)
    assert releases, "CHANGELOG.md has no '## X.Y.Z (YYYY-MM-DD)' entry"
    assert releases[0] == (VERSION, str(CITATION["date-released"]))


def test_the_licences_are_named_where_readers_look():
    assert PROJECT["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "CC BY 4.0" in (ROOT / "LICENSE-text.md").read_text()
    readme = (ROOT / "README.md").read_text()
    footer = CONFIG["html"]["extra_footer"]
    for where, text in [("README.md", readme), ("_config.yml's footer", footer)]:
        assert "MIT" in text and "CC BY 4.0" in text, f"{where} does not name both licences"


def test_readme_installs_this_release():
    readme = (ROOT / "README.md").read_text()
    pins = re.findall(r'pip install "git\+([^"]+)"', readme)
    assert pins == [f"{URL}@v{VERSION}"], f"README installs {pins}"


def test_readme_and_intro_cite_this_release():
    for page in ("README.md", "book/intro.md"):
        text = (ROOT / page).read_text()
        entry = re.search(r"@book\{[^@]*?\n\}", text)
        assert entry, f"{page} has no BibTeX @book entry"
        assert f"version   = {{{VERSION}}}" in entry.group(0), f"{page}: BibTeX version"
        assert f"title     = {{{CITATION['title']}}}" in entry.group(0), f"{page}: title"
        assert CITATION["url"] in entry.group(0), f"{page}: BibTeX url"
