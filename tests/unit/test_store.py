"""Parquet storage: round trip, cache, atomic writes and schema checks."""

from pathlib import Path

import pandas as pd
import pytest

from ranking.simulate import AdLogConfig, load, load_or_simulate, save, simulate
from ranking.simulate import store
from ranking.simulate.store import SchemaError, log_path

TINY = AdLogConfig.preset("smoke", n_users=300, n_items=200, n_advertisers=20,
                          n_impressions=3_000, n_categories=10)


@pytest.fixture(scope="module")
def logs():
    return simulate(TINY, seed=3)


def test_round_trip_keeps_every_table(tmp_path, logs):
    save(logs, tmp_path)
    loaded = load(TINY, seed=3, data_dir=tmp_path)
    for table in ("impressions", "events", "users", "items", "advertisers"):
        pd.testing.assert_frame_equal(getattr(loaded, table), getattr(logs, table))
    assert (loaded.item_embeddings == logs.item_embeddings).all()


def test_cache_key_depends_on_config_and_seed(tmp_path):
    paths = {log_path(TINY, 0, tmp_path), log_path(TINY, 1, tmp_path),
             log_path(TINY.with_(task_correlation=0.1), 0, tmp_path)}
    assert len(paths) == 3


def test_a_changed_generator_does_not_read_the_old_generators_log(tmp_path, monkeypatch):
    """The key holds a hash of the generator's code: edit it, and the cached log is not reused."""
    before = log_path(TINY, 0, tmp_path)
    generator = tmp_path / "generator"
    generator.mkdir()
    for name in store.GENERATOR_FILES:
        (generator / name).write_text((Path(store.__file__).parent / name).read_text())
    monkeypatch.setattr(store, "__file__", str(generator / "store.py"))
    assert log_path(TINY, 0, tmp_path) == before             # same code, same folder
    logs_file = generator / "logs.py"
    logs_file.write_text(logs_file.read_text() + "# a changed generator\n")
    assert log_path(TINY, 0, tmp_path) != before


def test_load_or_simulate_reuses_the_cache(tmp_path, monkeypatch):
    first = load_or_simulate(TINY, seed=5, data_dir=tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("simulate called although the log is cached")

    monkeypatch.setattr(store, "simulate", fail)
    second = load_or_simulate(TINY, seed=5, data_dir=tmp_path)
    pd.testing.assert_frame_equal(first.impressions, second.impressions)


def test_missing_log_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(TINY, seed=9, data_dir=tmp_path)


def test_interrupted_write_leaves_nothing_loadable(tmp_path, logs, monkeypatch):
    calls = {"n": 0}
    real_to_parquet = pd.DataFrame.to_parquet

    def crash_on_third_table(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("power cut")
        return real_to_parquet(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash_on_third_table)
    with pytest.raises(KeyboardInterrupt):
        save(logs, tmp_path)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError):
        load(TINY, seed=3, data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # the staging folder is cleaned up


def test_missing_column_is_named_on_load(tmp_path, logs):
    folder = save(logs, tmp_path)
    impressions = logs.impressions.drop(columns=["p_click"])
    impressions.to_parquet(folder / "impressions.parquet", index=False)
    with pytest.raises(SchemaError, match="missing column 'p_click'"):
        load(TINY, seed=3, data_dir=tmp_path)


def test_mistyped_column_is_named_on_load(tmp_path, logs):
    folder = save(logs, tmp_path)
    impressions = logs.impressions.assign(click=logs.impressions["click"].astype("float64"))
    impressions.to_parquet(folder / "impressions.parquet", index=False)
    with pytest.raises(SchemaError, match="'click' has dtype float64, expected int8"):
        load(TINY, seed=3, data_dir=tmp_path)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKING_DATA_DIR", str(tmp_path))
    assert log_path(TINY, 0).parent == tmp_path
