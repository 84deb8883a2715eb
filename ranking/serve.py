"""Serving: a trained ranker saved, loaded and asked to rank a request.

Training ends with a model in memory; serving starts from files. ``save_ranker``
writes one directory with all a request needs, and no pickled object:

- ``weights.pt``: the model's state dict, tensors only, so that
  ``torch.load(..., weights_only=True)`` reads it without running stored code;
- ``ranker.json``: the format version, the model's class and constructor
  arguments, the head to rank by, the Platt calibrator's two numbers, the
  encoder's state (feature spec, the size of every id space, the dense
  statistics fitted on the training split), the log's configuration and the
  SHA-256 of every other file;
- ``tables.npz``: the feature store, a snapshot taken at the end of the log:
  each item's advertiser, category, video flag, save count and creation day,
  each advertiser's budget, each user's followers and events of the last week.

``load_ranker`` rebuilds a ``Ranker``. Its ``rank(user_id, surface, item_ids)``
builds each candidate's row from the tables, encodes it with the training
``FeatureEncoder`` (the very code the model was trained on) and sorts by score.
``export_ranker`` writes the same directory with the model as a
``torch.export`` program: a graph that runs without the model's Python class.

Trust. ``ranker.json`` records the SHA-256 of every other file, and every
loader checks them first: a damaged file (truncated, half copied, from another
ranker) raises ``RankerFileError`` naming it, and nothing is half loaded.
Nothing a file holds is run: ``weights.pt`` loads weights-only, ``tables.npz``
without pickle, and ``model.pt2`` only after ``ranking.integrity.check_program``
found in it nothing that ``torch.export.load`` would unpickle, evaluate or call
beyond tensors, arithmetic on shapes and ATen operators. The digests are not a
signature: whoever can rewrite ``ranker.json`` can forge them, and ship a model
that scores wrongly (though not code that runs). A signature over
``ranker.json`` by the training pipeline's key, checked before loading, or
storage only the pipeline writes, is what authenticates a ranker.

Unknown ids. The encoder has no id map: an id is its embedding row, so every
user and item of the log has a row (one never seen in training keeps its
small random initial row) and an id outside the tables has none, and is
refused. ``rank(..., unknown="padding")`` serves such ids anyway: the loaded
model gets one extra row of zeros per id table, and an unknown id (with its
advertiser, category and video flag, unknown too) reads it, while its dense
features read the table's median. Rarely seen ids keep embeddings near zero,
where they started, so the model scores the zero row like an id it knows
little about, from the other fields. That is the right guess for a new user or
a new item only: for a known id missing from the tables (a stale snapshot, a
bad join) it silently drops what the model learned about it, hence the default
``unknown="raise"``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import checks
from .calibration import PlattScaling
from .checks import TensorDict
from .features import FeatureEncoder
from .integrity import (
    RankerFileError,
    load_program,
    load_tables,
    load_weights,
    read_json,
    read_verified,
    sha256,
)
from .nn import DCNv2, EmbeddingMLP, FeatureEmbedding
from .simulate import SURFACES, AdLogs
from .simulate.logs import USER_ENGAGEMENT_WINDOW_DAYS
from .simulate.world import SECONDS_PER_DAY

FORMAT_VERSION = 3
"""Layout of a saved ranker's directory; ``load_ranker`` refuses any other."""

MODELS: dict[str, type[nn.Module]] = {"EmbeddingMLP": EmbeddingMLP, "DCNv2": DCNv2}
"""The model classes a ranker can be saved with, by the name ``ranker.json`` holds."""

RECORD, WEIGHTS, TABLES, PROGRAM = "ranker.json", "weights.pt", "tables.npz", "model.pt2"
TABLE_NAMES = ("item_advertiser_id", "item_category", "item_is_video", "item_save_count",
               "item_created_day", "advertiser_budget", "user_follower_count",
               "user_engagement_count")
RECORD_KEYS = ("model", "task", "calibrator", "features", "log", "as_of", "files")
UNKNOWN_POLICIES = ("raise", "padding")
ITEM_FIELDS = ("item_id", "advertiser_id", "category", "is_video")
"""Id fields an unknown item leaves unknown: the tables know nothing of it."""
SCORE_SURFACES = {"context_similarity": "related_pins", "query_match": "search"}
"""The relevance scores a request's context may give, and the one surface each exists on."""
CONTEXT_KEYS = ("hour_of_day", *SCORE_SURFACES)
SCORE_CHUNK_ROWS = 65_536
"""Rows ``score_batch`` scores at once, to bound memory on a large frame."""


class Ranker:
    """A model, the encoder it was trained with, the feature tables and the calibrator.

    Made by ``load_ranker`` or ``load_exported``. ``rank`` serves one request,
    ``score_batch`` scores logged rows that already carry their features.
    """

    def __init__(self, model: nn.Module, record: dict, tables: dict[str, np.ndarray]):
        self.model = model
        self.record = record
        self.tables = tables
        self.task: str = record["task"]
        self.encoder = _rebuild_encoder(record, tables)
        self.calibrator = _rebuild_calibrator(record["calibrator"])
        self.as_of: int = record["as_of"]
        """When the tables were read (seconds, the log's end); requests come the day after."""
        self._typical = _medians(tables)

    def __repr__(self) -> str:
        calibrated = "calibrated" if self.calibrator is not None else "uncalibrated"
        return (f"Ranker({self.record['model']['class']}, task={self.task!r}, {calibrated}, "
                f"{len(self.tables['user_follower_count']):,} users, "
                f"{len(self.tables['item_category']):,} items)")

    def rank(self, user_id: int, surface: str, item_ids: Sequence[int],
             context: dict | None = None, unknown: str = "raise") -> pd.DataFrame:
        """The candidates best first: item_id, score and rank (1 = top).

        score is the calibrated probability of ``self.task`` when a calibrator
        was saved, the model's probability otherwise; ties keep the request's
        order. context: hour_of_day (0 unless given), and the relevance score
        of the request's surface, required there: context_similarity on
        related_pins, query_match on search (one number, or one per candidate).
        unknown: "raise" on an id the tables lack, or "padding" (module docstring).
        """
        data = self.encode_request(user_id, surface, item_ids, context, unknown)
        scores = self._scores(data)
        order = np.argsort(-scores, kind="stable")
        return pd.DataFrame({"item_id": np.asarray(item_ids, dtype=np.int64)[order],
                             "score": scores[order],
                             "rank": np.arange(1, len(order) + 1)})

    def encode_request(self, user_id: int, surface: str, item_ids: Sequence[int],
                       context: dict | None = None, unknown: str = "raise") -> TensorDict:
        """The model's input for one request, a row per candidate (arguments as in ``rank``)."""
        if not checks.is_integer(user_id):
            raise TypeError(f"user_id must be an integer, got {type(user_id).__name__}")
        if not isinstance(surface, str):
            raise TypeError(f"surface must be a string, got {type(surface).__name__}")
        if surface not in SURFACES:
            raise ValueError(f"unknown surface {surface!r}: allowed {SURFACES}")
        checks.one_of("unknown", unknown, UNKNOWN_POLICIES)
        items = _check_item_ids(item_ids)
        context = self._check_context(context, surface, len(items))
        known_user = 0 <= user_id < len(self.tables["user_follower_count"])
        known_items = (items >= 0) & (items < len(self.tables["item_category"]))
        if unknown == "raise" and not (known_user and known_items.all()):
            bad = [] if known_user else [f"user {user_id}"]
            bad += [f"item {item}" for item in items[~known_items][:5]]
            raise ValueError(f"unknown id(s): {', '.join(bad)}; the feature tables hold no "
                             "row for them (unknown='padding' scores them as new ids)")
        frame = self._candidate_frame(user_id if known_user else -1, surface,
                                      np.where(known_items, items, -1), context)
        data = self.encoder.transform(frame)
        unknown_rows = {"user_id": np.full(len(items), not known_user),
                        **dict.fromkeys(ITEM_FIELDS, ~known_items)}
        for field, size in self.encoder.cardinalities.items():
            if field in unknown_rows:       # the stand-in id 0 -> the zero row, at index size
                data[field][torch.from_numpy(unknown_rows[field])] = size
        return data

    def score_batch(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores (as in ``rank``) of rows that carry their features, a logged frame's, in order.

        Every id must be one of the log's: unknown ids are ``rank``'s business.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"frame must be a DataFrame, got {type(frame).__name__}")
        if len(frame) == 0:
            raise ValueError("frame has no rows to score")
        data = self.encoder.transform(frame)      # checks every column, naming a bad one
        starts = range(0, len(frame), SCORE_CHUNK_ROWS)
        return np.concatenate([
            self._scores({key: value[start:start + SCORE_CHUNK_ROWS]
                          for key, value in data.items()}) for start in starts])

    def _scores(self, data: TensorDict) -> np.ndarray:
        """The probability of ``self.task`` per row, calibrated when a calibrator was saved."""
        with torch.inference_mode():
            logits = self.model(data)[self.task]
        probs = torch.sigmoid(logits.float()).numpy().astype(np.float64)
        return self.calibrator.transform(probs) if self.calibrator is not None else probs

    def _check_context(self, context: dict | None, surface: str, n: int) -> dict:
        """hour_of_day and one relevance score per candidate for each dense score column."""
        context = {} if context is None else context
        if not isinstance(context, dict):
            raise TypeError(f"context must be a dict or None, got {type(context).__name__}")
        extra = sorted(set(context) - set(CONTEXT_KEYS))
        if extra:
            raise ValueError(f"context has unknown key(s) {extra}: allowed {CONTEXT_KEYS}")
        hour = context.get("hour_of_day", 0)
        if not checks.is_integer(hour):
            raise TypeError(f"context['hour_of_day'] must be an integer, got {hour!r}")
        if not 0 <= hour < 24:
            raise ValueError(f"context['hour_of_day'] must be in [0, 24), got {hour}")
        checked = {"hour_of_day": int(hour)}
        for key, home in SCORE_SURFACES.items():
            if key not in self.encoder.spec.dense:
                continue
            if key in context and surface != home:
                raise ValueError(f"context[{key!r}] exists on {home} only, not on {surface}")
            if key not in context and surface == home:
                raise ValueError(f"a {home} request needs context[{key!r}]: the model was "
                                 f"trained with it there")
            checked[key] = _check_score(context.get(key, 0.0), key, n)
        return checked

    def _candidate_frame(self, user: int, surface: str, items: np.ndarray,
                         context: dict) -> pd.DataFrame:
        """Logged-like rows, one per candidate, read from the tables at the request's time.

        An unknown id (-1) reads id 0 as a stand-in, which ``encode_request`` then
        points at the zero row, and the table's median for each dense feature.
        """
        tables, typical, n = self.tables, self._typical, len(items)
        known = items >= 0
        item = np.where(known, items, 0)
        advertiser = tables["item_advertiser_id"][item]
        timestamp = self.as_of + 3600 * context["hour_of_day"]
        created = np.where(known, tables["item_created_day"][item], typical["item_created_day"])
        user_features = {name: tables[name][user] if user >= 0 else typical[name]
                         for name in ("user_follower_count", "user_engagement_count")}
        return pd.DataFrame({
            "user_id": np.full(n, max(user, 0)),
            "item_id": item,
            "advertiser_id": advertiser,
            "surface": pd.Categorical.from_codes(np.full(n, SURFACES.index(surface)),
                                                 categories=list(SURFACES)),
            "timestamp": np.full(n, timestamp),
            "is_video": tables["item_is_video"][item],
            "item_save_count": np.where(known, tables["item_save_count"][item],
                                        typical["item_save_count"]),
            "item_age_days": timestamp / SECONDS_PER_DAY - created,
            "advertiser_budget": np.where(known, tables["advertiser_budget"][advertiser],
                                          typical["advertiser_budget"]),
            **{name: np.full(n, value) for name, value in user_features.items()},
            **{name: context.get(name, np.zeros(n)) for name in SCORE_SURFACES},
        })


def save_ranker(path: str | Path, model: nn.Module, encoder: FeatureEncoder,
                model_config: dict, calibrator: PlattScaling | None = None,
                task: str | None = None) -> Path:
    """Write ``model`` (and how to rebuild it), its encoder and calibrator to directory ``path``.

    model_config: the keyword arguments ``model`` was built with, except
        cardinalities and n_dense, which come from the encoder.
    calibrator: a fitted ``PlattScaling`` of the ranked head's probabilities.
    task: the head to rank by (default: the model's first).
    """
    if type(model) not in MODELS.values():
        raise TypeError(f"model must be one of {list(MODELS)}, got {type(model).__name__}")
    if not isinstance(encoder, FeatureEncoder):
        raise TypeError(f"encoder must be a FeatureEncoder, got {type(encoder).__name__}")
    if encoder.statistics is None:
        raise ValueError("encoder is not fitted: call fit(train_frame) first")
    if encoder.logs is None:
        raise ValueError("encoder was rebuilt from its state and has no log to read the "
                         "feature tables from: build it from the log")
    if encoder.spec.sequence_length > 0:
        raise ValueError("a ranker with sequence features cannot be saved: serving them needs "
                         "the users' live event history (use FeatureSpec(sequence_length=0))")
    task = model.tasks[0] if task is None else task
    if task not in model.tasks:
        raise ValueError(f"task {task!r} is not one of the model's heads {list(model.tasks)}")
    record = {
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "model": {"class": type(model).__name__, "kwargs": _check_model_config(model_config)},
        "task": task,
        "calibrator": _calibrator_record(calibrator),
        "features": encoder.state(),
        "log": {"config": encoder.logs.config.to_dict(), "seed": encoder.logs.seed},
        "as_of": encoder.logs.config.n_days * SECONDS_PER_DAY,
    }
    record = json.loads(json.dumps(record))    # exactly what load_ranker will read
    try:
        _build_model(record, encoder).load_state_dict(model.state_dict())
    except RuntimeError as error:
        raise ValueError(f"model_config does not rebuild this model: {error}") from None
    weights = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in model.state_dict().items()},
               weights)
    tables = _feature_tables(encoder.logs, record["as_of"])
    return _write_directory(path, record, tables, WEIGHTS, weights.getvalue())


def load_ranker(path: str | Path) -> Ranker:
    """The ranker ``save_ranker`` wrote to ``path``, its model on the CPU in eval mode.

    Every file is checked against the SHA-256 in ``ranker.json`` before it is
    read, and none can run code (module docstring); a damaged one raises
    ``RankerFileError`` naming it.
    """
    path = Path(path)
    record, tables, data = _read_directory(path, WEIGHTS)
    weights = load_weights(data, str(path / WEIGHTS))
    with _rebuilding(path):
        encoder = _rebuild_encoder(record, tables)
        model = _build_model(record, encoder)
        model.load_state_dict(weights)
        _add_unknown_rows(model, encoder.cardinalities)
        return Ranker(model.eval(), record, tables)


def export_ranker(ranker: Ranker, path: str | Path) -> Path:
    """Write ``ranker`` to directory ``path`` with its model as a ``torch.export`` program.

    The program is traced on one request's input, with the number of candidates
    left dynamic, so one program serves requests of any size.
    """
    if not isinstance(ranker, Ranker):
        raise TypeError(f"ranker must be a Ranker, got {type(ranker).__name__}")
    n_items = len(ranker.tables["item_category"])
    example = ranker.encode_request(0, SURFACES[0], np.arange(min(8, n_items)))
    candidates = torch.export.Dim("candidates", min=1)
    program = torch.export.export(
        ranker.model, (example,),
        dynamic_shapes=({key: {0: candidates} for key in example},))
    saved = io.BytesIO()
    torch.export.save(program, saved)
    return _write_directory(path, ranker.record, ranker.tables, PROGRAM, saved.getvalue())


def load_exported(path: str | Path) -> Ranker:
    """The ranker ``export_ranker`` wrote to ``path``, serving with the exported program.

    The program's archive is checked entry by entry before torch reads it
    (``ranking.integrity.check_program``): nothing in it is unpickled, evaluated
    or called unless it is a tensor, arithmetic on shapes or an ATen operator.
    """
    path = Path(path)
    record, tables, data = _read_directory(path, PROGRAM)
    program = load_program(data, str(path / PROGRAM))
    with _rebuilding(path):
        return Ranker(program.module(), record, tables)


# --------------------------------------------------------------------- files
def _write_directory(path: str | Path, record: dict, tables: dict[str, np.ndarray],
                     model_file: str, model_bytes: bytes) -> Path:
    """Write the tables, the model and, last, the record with every file's SHA-256.

    The old record goes first and the new one last, each file whole (written
    under a temporary name, then renamed): a save cut short leaves a directory
    that every loader refuses, never a ranker mixed from two saves.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in (RECORD, WEIGHTS, PROGRAM):
        (path / name).unlink(missing_ok=True)
    saved_tables = io.BytesIO()
    np.savez(saved_tables, **tables)
    files = {TABLES: saved_tables.getvalue(), model_file: model_bytes}
    for name, data in files.items():
        _write_whole(path / name, data)
    record = {**record, "files": {name: sha256(data) for name, data in files.items()}}
    _write_whole(path / RECORD, (json.dumps(record, indent=2) + "\n").encode())
    return path


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is either absent, old, or whole."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _read_directory(path: Path, model_file: str) -> tuple[dict, dict[str, np.ndarray], bytes]:
    """The record, the feature tables and the model file's bytes, each checked.

    The record must be this format's; the tables and the model file must match
    the SHA-256 it records. The tables are read without pickle.
    """
    for name in (RECORD, TABLES, model_file):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} has no {name}: not a ranker saved by "
                                    f"{'export_ranker' if name == PROGRAM else 'save_ranker'}")
    record = read_json(path / RECORD)
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise RankerFileError(f"{path / RECORD} has format version {version!r} (package "
                              f"{record.get('package_version')}); this ranking.serve reads "
                              f"format version {FORMAT_VERSION} (package "
                              f"{_package_version()})")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing or not isinstance(record["files"], dict):
        raise RankerFileError(f"{path / RECORD} lacks {missing or ['files']}: the record is "
                              "damaged or was not written by save_ranker")
    tables = load_tables(read_verified(path / TABLES, record["files"]), str(path / TABLES),
                         TABLE_NAMES)
    return record, tables, read_verified(path / model_file, record["files"])


@contextmanager
def _rebuilding(path: Path) -> Iterator[None]:
    """Turn an error while rebuilding the ranker from checked files into a RankerFileError.

    The digests match, so the files are the ones the record names: a record
    and files that still do not fit together were written that way.
    """
    try:
        yield
    except RankerFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
        raise RankerFileError(f"the files in {path} do not rebuild a ranker "
                              f"({type(error).__name__}: {error}): {RECORD} does not "
                              "describe its model file, or they come from different "
                              "package versions") from None


def _package_version() -> str | None:
    """The installed ranking package's version, or None when it runs from a bare checkout."""
    try:
        return metadata.version("ranking-ads-in-practice")
    except metadata.PackageNotFoundError:
        return None


# -------------------------------------------------------------- model parts
def _check_model_config(model_config: dict) -> dict:
    if not isinstance(model_config, dict):
        raise TypeError(f"model_config must be a dict, got {type(model_config).__name__}")
    from_encoder = sorted({"cardinalities", "n_dense"} & set(model_config))
    if from_encoder:
        raise ValueError(f"model_config must not hold {from_encoder}: they come from the encoder")
    try:
        json.dumps(model_config)
    except TypeError as error:
        raise TypeError(f"model_config must hold JSON values only: {error}") from None
    return model_config


def _build_model(record: dict, encoder: FeatureEncoder) -> nn.Module:
    """A fresh model of the saved class, built with the saved arguments."""
    name = record["model"]["class"]
    if name not in MODELS:
        raise ValueError(f"unknown model class {name!r}: known {list(MODELS)}")
    return MODELS[name](encoder.cardinalities, encoder.n_dense, **record["model"]["kwargs"])


def _add_unknown_rows(model: nn.Module, cardinalities: dict[str, int]) -> None:
    """Give the user and item id tables one more row, of zeros: the unknown id's row."""
    fields = {"user_id", *ITEM_FIELDS}
    for module in model.modules():
        if isinstance(module, FeatureEmbedding):
            for field in fields & set(module.fields):
                weight = module.tables[field].weight.detach()
                if len(weight) != cardinalities[field]:
                    raise ValueError(f"the {field} table has {len(weight)} rows, the "
                                     f"encoder {cardinalities[field]} ids")
                zeros = weight.new_zeros(1, weight.shape[1])
                module.tables[field] = nn.Embedding.from_pretrained(torch.cat([weight, zeros]))


def _calibrator_record(calibrator: PlattScaling | None) -> dict | None:
    if calibrator is None:
        return None
    if not isinstance(calibrator, PlattScaling):
        raise TypeError("only a PlattScaling calibrator can be saved, got "
                        f"{type(calibrator).__name__}")
    if calibrator.slope is None:
        raise ValueError("the calibrator is not fitted: call fit first")
    return {"class": "PlattScaling", "slope": calibrator.slope, "bias": calibrator.bias}


def _rebuild_calibrator(saved: dict | None) -> PlattScaling | None:
    if saved is None:
        return None
    calibrator = PlattScaling()
    calibrator.slope, calibrator.bias = saved["slope"], saved["bias"]
    return calibrator


# ----------------------------------------------------------------- features
def _rebuild_encoder(record: dict, tables: dict[str, np.ndarray]) -> FeatureEncoder:
    """The training encoder, fitted statistics included, from its saved state.

    Serving has no labels: tasks=(), so a request's rows need no label column.
    """
    spec = {**record["features"]["spec"], "tasks": []}
    return FeatureEncoder.from_state({**record["features"], "spec": spec},
                                     tables["item_category"])


def _feature_tables(logs: AdLogs, as_of: int) -> dict[str, np.ndarray]:
    """Per item, advertiser and user, what a candidate row needs, as known at ``as_of``."""
    events = logs.events
    time = events["timestamp"].to_numpy()
    recent = (time >= as_of - USER_ENGAGEMENT_WINDOW_DAYS * SECONDS_PER_DAY) & (time < as_of)
    items = logs.items
    return {
        "item_advertiser_id": items["advertiser_id"].to_numpy(),
        "item_category": items["category"].to_numpy(),
        "item_is_video": items["is_video"].to_numpy(),
        "item_save_count": items["save_count"].to_numpy(),
        "item_created_day": items["created_day"].to_numpy(),
        "advertiser_budget": logs.advertisers["budget"].to_numpy(),
        "user_follower_count": logs.users["follower_count"].to_numpy(),
        "user_engagement_count": np.bincount(events["user_id"].to_numpy()[recent],
                                             minlength=len(logs.users)),
    }


def _medians(tables: dict[str, np.ndarray]) -> dict[str, float]:
    """What an unknown id reads for each dense feature: the median over its table."""
    names = ("item_save_count", "item_created_day", "advertiser_budget",
             "user_follower_count", "user_engagement_count")
    return {name: float(np.median(tables[name])) for name in names}


def _check_item_ids(item_ids: Sequence[int]) -> np.ndarray:
    """Candidate ids as an int64 array: one-dimensional, not empty, no duplicates."""
    if isinstance(item_ids, (str, bytes)) or not hasattr(item_ids, "__len__"):
        raise TypeError("item_ids must be a sequence of integer ids, got "
                        f"{type(item_ids).__name__}")
    if len(item_ids) == 0:
        raise ValueError("item_ids is empty: a request needs at least one candidate")
    items = np.asarray(item_ids)
    if items.ndim != 1 or items.dtype.kind not in "iu":
        raise TypeError(f"item_ids must be a flat sequence of integer ids, got dtype "
                        f"{items.dtype} and shape {items.shape}")
    values, counts = np.unique(items, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"item_ids holds duplicate(s) {values[counts > 1][:5].tolist()}: "
                         "each candidate once")
    return items.astype(np.int64)


def _check_score(value, key: str, n: int) -> np.ndarray:
    """A relevance score in [0, 1]: one number for all candidates, or one per candidate."""
    try:
        values = None if isinstance(value, str) else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim > 1 or (values.ndim == 1 and len(values) != n):
        raise TypeError(f"context[{key!r}] must be a number or {n} numbers (one per "
                        f"candidate), got {value!r}")
    if not (np.isfinite(values) & (values >= 0) & (values <= 1)).all():
        raise ValueError(f"context[{key!r}] must lie in [0, 1], got {value!r}")
    return np.broadcast_to(values, (n,))
