"""tools/make_dist.py: the offline book as one zip, inside the site it zips."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make_dist  # noqa: E402


@pytest.fixture
def site(tmp_path: Path) -> Path:
    html = tmp_path / "html"
    for name, text in {"index.html": "<meta http-equiv='refresh'>",
                       "book/intro.html": "<p>intro</p>",
                       "_static/book.css": "body {}",
                       "downloads/old.zip": "an earlier download"}.items():
        (html / name).parent.mkdir(parents=True, exist_ok=True)
        (html / name).write_text(text)
    return html


def test_the_zip_holds_the_site_under_one_folder_without_the_downloads(site: Path):
    target = make_dist.write_zip(site, "1.2.3")
    assert target == site / "downloads" / make_dist.ZIP_NAME
    with zipfile.ZipFile(target) as archive:
        names = sorted(archive.namelist())
        assert names == [f"ranking-ads-in-practice-1.2.3/{name}" for name in
                         ("_static/book.css", "book/intro.html", "index.html")]
        assert archive.read("ranking-ads-in-practice-1.2.3/book/intro.html") == b"<p>intro</p>"
    assert not list(target.parent.glob("*.part"))
    assert target.stat().st_mode & 0o044 == 0o044              # readable by the web server


def test_a_second_zip_does_not_contain_the_first(site: Path):
    make_dist.write_zip(site, "1.2.3")
    with zipfile.ZipFile(make_dist.write_zip(site, "1.2.3")) as archive:
        assert not any("downloads" in name for name in archive.namelist())


def test_no_site_no_zip_and_no_half_written_file(site: Path, monkeypatch):
    (site / "index.html").unlink()
    with pytest.raises(SystemExit, match="make book"):
        make_dist.write_zip(site, "1.2.3")
    (site / "index.html").write_text("back")

    def broken_write(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        make_dist.write_zip(site, "1.2.3")
    assert sorted(p.name for p in (site / "downloads").iterdir()) == ["old.zip"]


def test_the_introduction_links_the_zip_where_dist_writes_it():
    intro = (ROOT / "book" / "intro.md").read_text()
    # intro.html is in _build/html/book/, the zip in _build/html/downloads/
    assert f'href="../{make_dist.DOWNLOADS}/{make_dist.ZIP_NAME}"' in intro
