"""The built book works offline: no script, stylesheet or font comes from another host.

The end-to-end test builds, in a temporary folder, a one-page Jupyter Book with the
repository's own ``_config.yml`` (only the toc and the execution mode differ): a notebook
that typesets a formula and displays an ipywidgets slider, executed at build time so that
its widget state is embedded. It checks the result with ``tools/check_offline.py`` and looks
for MathJax and the widget manager in the built ``_static``. The other tests check the
checker on small HTML snippets, and the asset script's integrity checks and cache.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE_REGISTRY = "http://127.0.0.1:9"   # the discard port: refused at once, no network needed


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the module executes
    spec.loader.exec_module(module)
    return module


check_offline = _tool("check_offline")
offline_assets = _tool("offline_assets")


def _remote(html: str) -> list[str]:
    """The URLs an HTML snippet loads from another host."""
    return [load.url for load in check_offline.scan_page(html).loads if check_offline.is_remote(load.url)]


# --- the checker, on snippets ---------------------------------------------------------------

def test_checker_flags_remote_scripts_and_stylesheets():
    assert _remote('<script src="https://cdn.example.org/a.js"></script>') == ["https://cdn.example.org/a.js"]
    assert _remote('<script src="//cdn.example.org/a.js"></script>') == ["//cdn.example.org/a.js"]
    assert _remote('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">') == [
        "https://fonts.googleapis.com/css?family=Roboto"]
    assert _remote('<link rel="preload" as="font" href="http://x.org/f.woff2">') == ["http://x.org/f.woff2"]
    assert _remote('<link rel="modulepreload" href="https://x.org/m.js">') == ["https://x.org/m.js"]
    assert _remote('<img src="https://x.org/badge.svg">') == ["https://x.org/badge.svg"]
    manager = '<script src="x.js" data-jupyter-widgets-cdn="https://cdn.jsdelivr.net/npm/"></script>'
    assert _remote(manager) == ["https://cdn.jsdelivr.net/npm/"]


def test_checker_flags_remote_fonts_and_imports_in_css():
    css = """
        /* @import url('https://commented.out/ignored.css'); */
        @import "https://x.org/theme.css";
        @import url(//x.org/more.css);
        @font-face { font-family: F; src: url('https://fonts.gstatic.com/f.woff2') format('woff2'); }
        .icon { background: url(data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E); }
        .logo { background: url("../images/logo.png"); }
    """
    loads = check_offline.css_loads(css)
    remote = {(load.kind, load.url) for load in loads if check_offline.is_remote(load.url)}
    assert remote == {("CSS @import", "https://x.org/theme.css"), ("CSS @import", "//x.org/more.css"),
                      ("font or image in CSS", "https://fonts.gstatic.com/f.woff2")}
    assert _remote("<style>@font-face { src: url(https://x.org/f.woff) }</style>") == ["https://x.org/f.woff"]
    assert _remote("<p style=\"background: url('https://x.org/bg.png')\"></p>") == ["https://x.org/bg.png"]


def test_checker_accepts_links_and_local_files():
    html = """
        <a href="https://colab.research.google.com/github/o/r/blob/main/labs/01_ad_log.ipynb">Colab</a>
        <a href="https://github.com/o/r">repository</a>
        <link rel="canonical" href="https://example.org/book/page.html">
        <link rel="stylesheet" href="../_static/styles/theme.css?digest=1">
        <script src="../_static/mathjax/tex-chtml.js"></script>
        <img src="data:image/png;base64,AAAA">
    """
    assert _remote(html) == []


def test_checker_names_page_and_url_and_follows_stylesheets(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "theme.css").write_text('@import "fonts.css";')
    font = "@font-face { src: url(https://fonts.gstatic.com/f.woff2) }"
    (tmp_path / "_static" / "fonts.css").write_text(font)
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "page.html").write_text(
        '<link rel="stylesheet" href="../_static/theme.css?v=1"><script src="../_static/gone.js"></script>'
        '<a href="https://colab.research.google.com/x">Colab</a>')
    pages, problems = check_offline.check_site(tmp_path)
    assert [page.name for page in pages] == ["page.html"]
    assert problems == [
        "book/page.html: stylesheet _static/fonts.css: font or image in CSS from another host: "
        "https://fonts.gstatic.com/f.woff2",
        "book/page.html: script missing from the build: ../_static/gone.js",
    ]
    assert check_offline.main([str(tmp_path)]) == 1


def test_checker_flags_widgets_the_manager_does_not_bundle_and_widgets_without_state(tmp_path):
    state = ('{"version_major": 2, "version_minor": 0, "state": {"a": {"model_module": "bqplot", '
             '"model_module_version": "^0.5", "view_module": "bqplot", "view_module_version": "^0.5"}, '
             '"b": {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0"}}}')
    view = '<script type="application/vnd.jupyter.widget-view+json">{{"model_id": "{}"}}</script>'
    views = "".join(view.format(model) for model in ("a", "b", "c"))
    html = f'<script type="application/vnd.jupyter.widget-state+json">{state}</script>{views}'
    scan = check_offline.scan_page(html)
    assert scan.widget_modules == {"bqplot@^0.5", "@jupyter-widgets/controls@2.0.0"}
    assert (scan.widget_models, scan.widget_views) == ({"a", "b"}, {"a", "b", "c"})
    (tmp_path / "page.html").write_text(html)
    _, problems = check_offline.check_site(tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith("page.html: widget module bqplot@^0.5 is not built into the widget manager")
    assert problems[1].startswith("page.html: 1 widget output(s) without their saved state")


# --- the asset script -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def repo_assets() -> Path:
    """The repository's widget-manager files, fetched once (``make offline-assets``), then cached."""
    return offline_assets.install(ROOT)


def test_assets_are_the_pinned_files(repo_assets):
    assert sorted(path.name for path in repo_assets.iterdir()) == ["embed-amd.js", "require.js"]


def test_assets_come_from_the_verified_cache_without_network(repo_assets, tmp_path):
    shutil.copytree(ROOT / offline_assets.CACHE_DIR, tmp_path / offline_assets.CACHE_DIR)
    target = offline_assets.install(tmp_path, registry=UNREACHABLE_REGISTRY)
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in repo_assets.iterdir())
    assert (target / "embed-amd.js").read_bytes() == (repo_assets / "embed-amd.js").read_bytes()


def test_a_corrupt_cache_is_refetched_and_offline_says_what_to_do(tmp_path):
    cache = tmp_path / offline_assets.CACHE_DIR
    cache.mkdir(parents=True)
    (cache / offline_assets.PACKAGES[0].tarball_name).write_bytes(b"truncated")
    with pytest.raises(offline_assets.OfflineAssetsError, match="(?s)cannot download .*make offline-assets"):
        offline_assets.install(tmp_path, registry=UNREACHABLE_REGISTRY)
    assert not (cache / offline_assets.PACKAGES[0].tarball_name).exists()


def test_a_tampered_download_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(offline_assets, "download", lambda url: b"not the pinned tarball")
    with pytest.raises(offline_assets.OfflineAssetsError, match="does not match the integrity"):
        offline_assets.install(tmp_path)
    assert not list((tmp_path / offline_assets.CACHE_DIR).glob("*.tgz"))


# --- a built book ---------------------------------------------------------------------------

PAGE_MARKDOWN = """# Offline page

The utility of an ad:

$$
u = w_c\\,p_{\\text{click}} + w_s\\,p_{\\text{save}}
$$
"""
PAGE_CODE = "import ipywidgets\nipywidgets.FloatSlider(value=0.5, min=0.0, max=1.0, description='w_c')"


@pytest.fixture(scope="module")
def built_book(repo_assets, tmp_path_factory) -> Path:
    """A one-page book built with the repository's configuration; returns its HTML folder."""
    book = tmp_path_factory.mktemp("offline-book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "force"
    (book / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    for name in config.get("bibtex_bibfiles", []):
        (book / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, book / name)
    for static in config["sphinx"]["config"].get("html_static_path", []):
        shutil.copytree(ROOT / static, book / static)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(PAGE_MARKDOWN), nbformat.v4.new_code_cell(PAGE_CODE)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, book / "page.ipynb")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"   # the one of this environment
    command = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(book)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return book / "_build" / "html"


def test_built_book_loads_nothing_from_another_host(built_book):
    pages, problems = check_offline.check_site(built_book)
    assert any(page.name == "page.html" for page in pages)
    assert problems == []


def test_built_book_serves_mathjax_and_the_widget_manager_itself(built_book):
    static = built_book / "_static"
    for path in ("mathjax/tex-chtml.js", "mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                 "jupyter-widgets/require.js", "jupyter-widgets/embed-amd.js"):
        assert (static / path).is_file(), f"_static/{path} is missing from the built book"
    html = (built_book / "page.html").read_text()
    scan = check_offline.scan_page(html)
    scripts = [load.url.split("?")[0] for load in scan.loads if load.kind == "script"]
    wanted = ["_static/mathjax/tex-chtml.js", "_static/jupyter-widgets/require.js",
              "_static/jupyter-widgets/embed-amd.js"]
    assert all(url in scripts for url in wanted), scripts
    assert scripts.index(wanted[1]) < scripts.index(wanted[2]), "RequireJS must load before the manager"
    assert 'class="math' in html and "p_{\\text{click}}" in html  # the formula, for MathJax to typeset
    assert "@jupyter-widgets/controls@2.0.0" in scan.widget_modules  # the slider's state is embedded
    assert scan.widget_views and scan.widget_views <= scan.widget_models
