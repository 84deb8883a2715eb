"""Fetch the JavaScript that lets the built book's widgets work offline.

By default a Jupyter Book page loads RequireJS and the ipywidgets HTML manager
(``@jupyter-widgets/html-manager``) from CDNs, so offline nothing renders below a widget cell.
This script downloads both npm packages from the npm registry with the Python standard
library (no node or npm needed), checks each tarball against the sha512 pinned below,
keeps it in ``_offline/cache/`` and copies the files the pages load into
``_offline/static/jupyter-widgets/``. ``_config.yml`` adds ``_offline/static`` to Sphinx's
``html_static_path`` (so the files land in ``_build/html/_static/jupyter-widgets/``) and
points myst-nb's ``nb_ipywidgets_js`` at them. MathJax needs no step here: the
``sphinx-mathjax-offline`` extension (a PyPI package) copies it to ``_static/mathjax/``.

The script is idempotent: a cached tarball is re-verified and reused, and files already in
place are left untouched. Only the first run needs the network.

Usage: ``python tools/offline_assets.py [--root DIR]`` (``make offline-assets``).
To update a package, change its version and integrity below: the integrity is the
``dist.integrity`` field of ``https://registry.npmjs.org/<name>/<version>``.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import io
import os
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path("_offline") / "cache"
STATIC_DIR = Path("_offline") / "static"       # in html_static_path: its contents go to _build/html/_static
WIDGETS_DIR = "jupyter-widgets"                # under STATIC_DIR and under _build/html/_static
DEFAULT_REGISTRY = "https://registry.npmjs.org"
TIMEOUT_S = 60


class OfflineAssetsError(RuntimeError):
    """A package could not be downloaded or did not match its pinned integrity."""


@dataclass(frozen=True)
class NpmPackage:
    """One npm package: its pinned version and sha512, and the files the book copies from it."""

    name: str
    version: str
    integrity: str              # npm's dist.integrity: "sha512-" + base64 of the tarball's digest
    files: tuple[str, ...]      # glob patterns relative to the tarball's package/ folder

    @property
    def tarball_name(self) -> str:
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.tarball_name}"


# html-manager 1.0.x renders the widget state saved by ipywidgets 8 (and 7). Its embed-amd.js
# bundles the built-in widget modules (base, controls, output), so none needs a CDN. The
# package's Font Awesome files are left out: the manager looks for them next to the page,
# not next to itself, so they would not be found there (only icons on buttons use them).
PACKAGES = (
    NpmPackage(
        name="@jupyter-widgets/html-manager",
        version="1.0.15",
        integrity="sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        files=("dist/embed-amd.js",),
    ),
    NpmPackage(
        name="requirejs",
        version="2.3.8",
        integrity="sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        files=("require.js",),
    ),
)


def integrity_of(data: bytes) -> str:
    """The npm-style sha512 integrity string of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def download(url: str) -> bytes:
    """The body of ``url``, or an :class:`OfflineAssetsError` that says what to do."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as error:
        raise OfflineAssetsError(
            f"cannot download {url}: {getattr(error, 'reason', error)}.\n"
            "The first build needs the network once, to fetch the widget manager for offline "
            "reading; later builds use the cached copy. Connect, or set npm_config_registry to "
            "a reachable npm mirror, and run `make offline-assets` again."
        ) from error


def cached_tarball(package: NpmPackage, cache: Path, registry: str) -> bytes:
    """The package's tarball, from ``cache`` when present, else downloaded; always verified."""
    path = cache / package.tarball_name
    if path.exists():
        data = path.read_bytes()
        if integrity_of(data) == package.integrity:
            return data
        path.unlink()  # a corrupt or truncated cache entry: fetch it again
    url = package.tarball_url(registry)
    data = download(url)
    got = integrity_of(data)
    if got != package.integrity:
        raise OfflineAssetsError(
            f"{url} does not match the integrity pinned in tools/offline_assets.py:\n"
            f"  expected {package.integrity}\n  got      {got}")
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)
    return data


def extract(package: NpmPackage, tarball: bytes) -> dict[str, bytes]:
    """The files of ``package`` matching its patterns, by base name; fails if a pattern matches none."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("package/")]
        for pattern in package.files:
            matches = [m for m in members if fnmatch.fnmatch(m.name.removeprefix("package/"), pattern)]
            if not matches:
                raise OfflineAssetsError(
                    f"{package.name}@{package.version} has no file matching {pattern!r}")
            for member in matches:
                found[Path(member.name).name] = archive.extractfile(member).read()
    return found


def install(root: Path = ROOT, registry: str | None = None) -> Path:
    """Put every package's files in ``root/_offline/static/jupyter-widgets``; return that folder.

    Files already identical are not rewritten, and files no package provides (say, from an
    older version) are removed, so the folder always holds exactly the pinned files.
    """
    root = root.resolve()
    registry = registry or os.environ.get("npm_config_registry") or DEFAULT_REGISTRY
    target = root / STATIC_DIR / WIDGETS_DIR
    wanted: dict[str, bytes] = {}
    for package in PACKAGES:
        wanted.update(extract(package, cached_tarball(package, root / CACHE_DIR, registry)))
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name, data in wanted.items():
        path = target / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the book's root folder (default: this repository)")
    args = parser.parse_args(argv)
    try:
        target = install(args.root)
    except OfflineAssetsError as error:
        print(f"offline-assets: error: {error}", file=sys.stderr)
        return 1
    names = ", ".join(f"{p.name} {p.version}" for p in PACKAGES)
    print(f"offline-assets: {names} in {target.relative_to(args.root.resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
