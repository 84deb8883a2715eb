"""Save and load generated logs as parquet, cached by a hash of the config, the seed and the generator.

A log is written to a temporary folder and renamed into place in one step, so
an interrupted write never leaves a folder that ``load`` would accept. Every
table is checked against the schema below when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .config import AdLogConfig
from .logs import AdLogs, simulate

DATA_DIR_ENV_VAR = "RANKING_DATA_DIR"
FORMAT_VERSION = 1

_LABELS = ("click", "good_click", "save", "hide", "conversion", "true_conversion")
_ORACLE = ("p_click", "p_good_click", "p_save", "p_hide", "p_conversion", "p_true_conversion")

SCHEMA: dict[str, dict[str, str]] = {
    "impressions": {
        "impression_id": "int64", "user_id": "int64", "item_id": "int64",
        "advertiser_id": "int64", "surface": "category", "timestamp": "int64",
        "is_video": "int8", "user_follower_count": "int64", "user_engagement_count": "int64",
        "item_save_count": "int64", "item_age_days": "float32", "advertiser_budget": "float32",
        "context_similarity": "float32", "query_match": "float32",
        **{label: "int8" for label in _LABELS},
        "conversion_timestamp": "float64",
        **{column: "float32" for column in _ORACLE},
    },
    "events": {"user_id": "int64", "item_id": "int64", "action": "int8", "timestamp": "int64"},
    "searches": {"user_id": "int64", "category": "int64", "timestamp": "int64"},
    "users": {"user_id": "int64", "follower_count": "int64"},
    "items": {"item_id": "int64", "advertiser_id": "int64", "category": "int64",
              "is_video": "int8", "save_count": "int64", "created_day": "float32"},
    "advertisers": {"advertiser_id": "int64", "budget": "float32", "report_rate": "float32",
                    "false_report_rate": "float32"},
}
"""Column -> dtype of every stored table."""
OPTIONAL_TABLES = ("searches",)
"""Tables a log has only with some knobs (searches: ``searches_per_day`` > 0)."""


class SchemaError(ValueError):
    """A stored or given table lacks a column or has one of the wrong type."""


def check_schema(table: str, frame: pd.DataFrame) -> None:
    """Raise SchemaError naming the first missing or mistyped column."""
    for column, dtype in SCHEMA[table].items():
        if column not in frame.columns:
            raise SchemaError(f"{table}: missing column {column!r} (expected dtype {dtype})")
        actual = str(frame[column].dtype)
        if actual != dtype:
            raise SchemaError(f"{table}: column {column!r} has dtype {actual}, expected {dtype}")


def default_data_dir() -> Path:
    """``$RANKING_DATA_DIR``, else the repository's ``data/`` folder when run from
    inside the repository, else ``~/.cache/ranking-ads``."""
    if os.environ.get(DATA_DIR_ENV_VAR):
        return Path(os.environ[DATA_DIR_ENV_VAR])
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "_toc.yml").exists() and (folder / "ranking").is_dir():
            return folder / "data"
    return Path.home() / ".cache" / "ranking-ads"


GENERATOR_FILES = ("config.py", "world.py", "logs.py")
"""The modules whose code decides what a log holds."""


def generator_version() -> str:
    """A short hash of the generator's source: a cached log is reused only by the code that made it.

    Otherwise a change to the generator would leave every notebook reading the
    log the old code wrote, under the same knobs.
    """
    digest = hashlib.sha256()
    for name in GENERATOR_FILES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:8]


def log_path(config: AdLogConfig, seed: int, data_dir: str | Path | None = None) -> Path:
    """Folder of the log generated from ``config`` and ``seed`` by this version of the generator."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    return data_dir / f"adlog-{config.fingerprint()}-{generator_version()}-seed{seed}"


def save(logs: AdLogs, data_dir: str | Path | None = None) -> Path:
    """Write ``logs`` atomically; returns its folder."""
    target = log_path(logs.config, logs.seed, data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for table in SCHEMA:
            frame = getattr(logs, table)
            if frame is None and table in OPTIONAL_TABLES:
                continue
            check_schema(table, frame)
            frame.to_parquet(staging / f"{table}.parquet", index=False)
        embeddings = pd.DataFrame(logs.item_embeddings,
                                  columns=[f"e{i:02d}" for i in range(logs.item_embeddings.shape[1])])
        embeddings.to_parquet(staging / "item_embeddings.parquet", index=False)
        meta = {"format_version": FORMAT_VERSION, "seed": logs.seed, "config": logs.config.to_dict()}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1, default=list))
        if target.exists():  # written meanwhile by another process: keep theirs
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load(config: AdLogConfig, seed: int = 0, data_dir: str | Path | None = None) -> AdLogs:
    """Read a saved log, checking every table against the schema."""
    folder = log_path(config, seed, data_dir)
    meta_file = folder / "meta.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"no saved log for this config and seed at {folder}")
    meta = json.loads(meta_file.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise SchemaError(f"{folder}: format version {meta.get('format_version')}, "
                          f"expected {FORMAT_VERSION}; delete the folder to regenerate")
    tables = {}
    for table in SCHEMA:
        if table in OPTIONAL_TABLES and not (folder / f"{table}.parquet").exists():
            continue
        frame = pd.read_parquet(folder / f"{table}.parquet")
        check_schema(table, frame)
        tables[table] = frame
    embeddings = pd.read_parquet(folder / "item_embeddings.parquet").to_numpy(np.float32)
    return AdLogs(**tables, item_embeddings=embeddings, config=config, seed=seed)


def load_or_simulate(config: AdLogConfig | None = None, seed: int = 0,
                     data_dir: str | Path | None = None) -> AdLogs:
    """The cached log for ``config`` and ``seed``, generating and saving it if needed."""
    config = config if config is not None else AdLogConfig.from_env()
    try:
        return load(config, seed, data_dir)
    except FileNotFoundError:
        pass
    logs = simulate(config, seed)
    save(logs, data_dir)
    return logs
