"""Check that a built book works offline: nothing a page loads comes from another host.

Scans every HTML page under a folder, and every stylesheet those pages load (following
local ``@import``), and fails, naming page and URL, when one of them loads from another host
(``http://``, ``https://``, protocol-relative ``//``):

- ``<script src>``, and the ``data-jupyter-widgets-cdn`` the widget manager loads from;
- ``<link href>`` with a loading ``rel`` (stylesheet, preload, modulepreload, prefetch, icon,
  manifest), ``<img>``, ``<iframe>``, ``<video>``/``<audio>``/``<source>`` and similar;
- CSS ``@import`` and ``url(...)`` (fonts, images) in stylesheets, ``<style>`` and ``style=``;
- widgets whose module is not built into the HTML manager (it would fetch it from a CDN).

A widget output whose saved state is missing from its page (it would render as nothing) and
a local script or stylesheet missing from the build are reported too. Plain links
(``<a href>``: the Colab launch buttons, the repository button) load nothing and are fine.

Usage: ``python tools/check_offline.py _build/html`` (``make check-offline``); exit status 1
when something is found.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# A <link> with one of these rel values makes the browser fetch its href.
LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "apple-touch-icon", "manifest"}
# Tag -> attributes that the browser fetches.
MEDIA_ATTRIBUTES = {
    "img": ("src", "srcset"), "iframe": ("src",), "source": ("src", "srcset"), "video": ("src", "poster"),
    "audio": ("src",), "track": ("src",), "embed": ("src",), "object": ("data",), "input": ("src",),
}
# The widget modules bundled in @jupyter-widgets/html-manager's embed-amd.js: any other needs a CDN.
BUILTIN_WIDGET_MODULES = {"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"}
# The <script type=...> blocks holding a page's saved widget state and each widget output.
_WIDGET_SCRIPTS = {"application/vnd.jupyter.widget-state+json": "widget-state",
                   "application/vnd.jupyter.widget-view+json": "widget-view"}

_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))\s*\)""", re.IGNORECASE)
_CSS_IMPORT_STRING = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_SCHEME_AND_HOST = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


@dataclass(frozen=True)
class Load:
    """One thing a page or stylesheet makes the browser fetch."""

    kind: str   # "script", "stylesheet", "font or image in CSS", ...
    url: str


@dataclass
class PageScan:
    """What one HTML page loads, and the widgets it shows and has the saved state of."""

    loads: list[Load] = field(default_factory=list)
    widget_modules: set[str] = field(default_factory=set)   # "name@version" in the saved state
    widget_models: set[str] = field(default_factory=set)    # model ids in the saved state
    widget_views: set[str] = field(default_factory=set)     # model ids of the widget outputs


def is_remote(url: str) -> bool:
    """True for a URL on another host: ``http://``, ``https://``, ``//host`` and other ``scheme://``."""
    url = url.strip()
    match = _SCHEME_AND_HOST.match(url)
    return url.startswith("//") or (match is not None and match.group(1).lower() != "file")


def _is_local_file(url: str) -> bool:
    """True for a relative or site-absolute path (not ``data:``, ``#anchor``, a remote URL, ...)."""
    url = url.strip()
    return bool(url) and not url.startswith(("#", "//")) and not _SCHEME.match(url)


def css_loads(css: str) -> list[Load]:
    """What a stylesheet loads: its ``@import`` targets and its ``url(...)`` fonts and images."""
    css = _CSS_COMMENT.sub("", css)
    loads = [Load("CSS @import", next(g for g in m.groups() if g is not None))
             for m in _CSS_IMPORT_STRING.finditer(css)]
    for match in _CSS_URL.finditer(css):
        url = next(g for g in match.groups() if g is not None)
        before = css[max(0, match.start() - 20):match.start()]
        kind = "CSS @import" if re.search(r"@import\s*$", before, re.IGNORECASE) else "font or image in CSS"
        loads.append(Load(kind, url))
    return loads


class _PageParser(HTMLParser):
    """Collects a page's loads (see :class:`PageScan`) while parsing it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scan = PageScan()
        self._text_of: str | None = None   # "style", "widget-state" or "widget-view" inside one
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        add = self.scan.loads.append
        if tag == "script":
            if attributes.get("src"):
                add(Load("script", attributes["src"]))
            if attributes.get("data-jupyter-widgets-cdn"):
                add(Load("widget CDN", attributes["data-jupyter-widgets-cdn"]))
            if attributes.get("type") in _WIDGET_SCRIPTS:
                self._text_of, self._text = _WIDGET_SCRIPTS[attributes["type"]], []
        elif tag == "link":
            rels = set(attributes.get("rel", "").lower().split())
            if rels & LOADING_RELS and attributes.get("href"):
                add(Load("stylesheet" if "stylesheet" in rels else "/".join(sorted(rels & LOADING_RELS)),
                         attributes["href"]))
        elif tag == "style":
            self._text_of, self._text = "style", []
        for name in MEDIA_ATTRIBUTES.get(tag, ()):
            for url in _srcset_urls(attributes.get(name, ""), name.endswith("srcset")):
                add(Load(tag, url))
        if attributes.get("style"):
            self.scan.loads.extend(css_loads(attributes["style"]))

    def handle_data(self, data: str) -> None:
        if self._text_of:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._text_of == "style" and tag == "style":
            self.scan.loads.extend(css_loads("".join(self._text)))
        elif self._text_of == "widget-state" and tag == "script":
            state = json.loads("".join(self._text)).get("state", {})
            self.scan.widget_models |= set(state)
            self.scan.widget_modules |= _widget_modules(state)
        elif self._text_of == "widget-view" and tag == "script":
            self.scan.widget_views.add(json.loads("".join(self._text))["model_id"])
        else:
            return
        self._text_of = None


def _srcset_urls(value: str, is_srcset: bool) -> list[str]:
    """The URLs of a ``src`` (one) or ``srcset`` (comma-separated "url width") attribute."""
    if not value.strip():
        return []
    if not is_srcset:
        return [value]
    return [candidate.split()[0] for candidate in value.split(",") if candidate.split()]


def _widget_modules(state: dict[str, dict]) -> set[str]:
    """The ``name@version`` of every model and view module in a saved widget state."""
    modules = set()
    for model in state.values():
        for prefix in ("model", "view"):
            name = model.get(f"{prefix}_module")
            if name:
                modules.add(f"{name}@{model.get(f'{prefix}_module_version', '')}")
    return modules


def scan_page(html: str) -> PageScan:
    """Everything an HTML page loads (see the module docstring), remote or not."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.scan


def _local_path(url: str, base: Path, html_dir: Path) -> Path:
    """The file a local URL points to, relative to ``base`` (``/...`` from the site root)."""
    path = unquote(urlsplit(url).path)
    return html_dir / path.lstrip("/") if path.startswith("/") else base / path


class SiteChecker:
    """Checks the pages of one built site.

    Each stylesheet is scanned once, and its problems are reported with the first page that
    loads it (the theme's stylesheets are loaded by every page).
    """

    def __init__(self, html_dir: Path) -> None:
        self.html_dir = html_dir.resolve()
        self._scanned_css: set[Path] = set()

    def check_page(self, page: Path) -> list[str]:
        """The problems of one page: ``"<page>: <what> <url>"`` lines."""
        page = page.resolve()
        name = page.relative_to(self.html_dir).as_posix()
        scan = scan_page(page.read_text(encoding="utf-8", errors="replace"))
        problems = []
        for load in scan.loads:
            if is_remote(load.url):
                problems.append(f"{name}: {load.kind} from another host: {load.url}")
            elif load.kind in ("script", "stylesheet") and _is_local_file(load.url):
                path = _local_path(load.url, page.parent, self.html_dir)
                if not path.is_file():
                    problems.append(f"{name}: {load.kind} missing from the build: {load.url}")
                elif load.kind == "stylesheet":
                    problems += [f"{name}: {problem}" for problem in self.check_stylesheet(path)]
        for module in sorted(scan.widget_modules):
            if module.rsplit("@", 1)[0] not in BUILTIN_WIDGET_MODULES:
                problems.append(f"{name}: widget module {module} is not built into the widget manager "
                                "(it would be fetched from a CDN)")
        stateless = scan.widget_views - scan.widget_models
        if stateless:
            problems.append(f"{name}: {len(stateless)} widget output(s) without their saved state "
                            "(they render as nothing): execute with the widget state stored")
        return problems

    def check_stylesheet(self, path: Path) -> list[str]:
        """The remote loads of a local stylesheet and the local stylesheets it imports ([] if seen)."""
        path = path.resolve()
        if path in self._scanned_css:
            return []
        self._scanned_css.add(path)
        name = path.relative_to(self.html_dir).as_posix() if path.is_relative_to(self.html_dir) else str(path)
        problems = []
        for load in css_loads(path.read_text(encoding="utf-8", errors="replace")):
            if is_remote(load.url):
                problems.append(f"stylesheet {name}: {load.kind} from another host: {load.url}")
            elif load.kind == "CSS @import" and _is_local_file(load.url):
                imported = _local_path(load.url, path.parent, self.html_dir)
                if imported.is_file():
                    problems += self.check_stylesheet(imported)
                else:
                    problems.append(f"stylesheet {name}: CSS @import missing from the build: {load.url}")
        return problems


def check_site(html_dir: Path) -> tuple[list[Path], list[str]]:
    """Every HTML page under ``html_dir``, and the problems found in them (empty when offline-ready).

    HTML files under ``_static`` (theme template fragments) are not pages and are skipped.
    """
    html_dir = html_dir.resolve()
    pages = sorted(page for page in html_dir.rglob("*.html")
                   if "_static" not in page.relative_to(html_dir).parts)
    checker = SiteChecker(html_dir)
    return pages, [problem for page in pages for problem in checker.check_page(page)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", type=Path, help="the built HTML, e.g. _build/html")
    args = parser.parse_args(argv)
    pages, problems = check_site(args.html_dir)
    if not pages:
        print(f"check-offline: error: no HTML page under {args.html_dir}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"check-offline: {problem}", file=sys.stderr)
    if problems:
        print(f"check-offline: {len(problems)} problem(s) in {len(pages)} pages: the book would not work "
              "offline", file=sys.stderr)
        return 1
    print(f"check-offline: {len(pages)} pages load nothing from another host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
