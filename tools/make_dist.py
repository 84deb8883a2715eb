#!/usr/bin/env python3
"""``make dist``: the built book as one zip a reader can take offline.

The zip holds ``_build/html`` under one folder, ``ranking-ads-in-practice-<version>/``
(open its ``index.html``), and is written inside the site, at
``_build/html/downloads/ranking-ads-in-practice-html.zip``, where the introduction
links to it; the ``downloads`` folder itself is left out of the zip. It is written
to a temporary file first and moved into place, so a failed run leaves no half zip.

    python tools/make_dist.py [--html _build/html]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from make_student import package_version

ROOT = Path(__file__).resolve().parent.parent
DOWNLOADS = "downloads"
ZIP_NAME = "ranking-ads-in-practice-html.zip"


def site_files(html: Path) -> list[Path]:
    """Every file of the built site, but the downloads themselves."""
    return sorted(path for path in html.rglob("*")
                  if path.is_file() and path.relative_to(html).parts[0] != DOWNLOADS)


def write_zip(html: Path, version: str) -> Path:
    """Zip the site under ``ranking-ads-in-practice-<version>/``; return the zip's path."""
    if not (html / "index.html").exists():
        raise SystemExit(f"dist: {html} has no index.html: run `make book` first")
    target = html / DOWNLOADS / ZIP_NAME
    target.parent.mkdir(exist_ok=True)
    folder = f"ranking-ads-in-practice-{version}"
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in site_files(html):
                archive.write(path, f"{folder}/{path.relative_to(html).as_posix()}")
        os.chmod(temporary, 0o644)       # mkstemp's 0600 would hide it from the web server
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    args = parser.parse_args(argv)
    target = write_zip(args.html.resolve(), package_version(ROOT))
    print(f"dist: wrote {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
