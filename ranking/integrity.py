"""Reading a saved ranker's files: checked against their digests, and nothing in them run.

A server reads its ranker from files that other jobs wrote, often through
shared storage. Two things can be wrong with such a file:

- it is **damaged**: truncated by a full disk, half copied, or taken from
  another ranker's directory. ``ranker.json`` records the SHA-256 of every other
  file, and ``read_verified`` refuses a file whose digest differs, naming it;
- it was **tampered with** so that loading it runs code in the server. Python's
  pickle runs whatever a file asks for, and ``torch.export.load`` unpickles in
  several places (a weights-only load that fails is retried as a full one),
  evaluates the program's symbolic shapes with ``sympy.sympify`` (``eval``
  underneath), ``exec``s its input guards and looks its operators up by name.
  So ``weights.pt`` is read with ``weights_only=True``, ``tables.npz`` with
  ``allow_pickle=False``, and ``check_program`` inspects every entry of
  ``model.pt2`` before torch reads it: tensors it would unpickle must pass a
  weights-only load, and every expression, guard and operator must be of the
  plain kinds an exported ranker holds.

Every failure is a ``RankerFileError`` naming the file and the likely cause, and
nothing is half loaded: a loader returns a whole ranker or raises.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch


class RankerFileError(ValueError):
    """A saved ranker's file is damaged, does not match its record, or holds
    something the loader will not run."""


# ------------------------------------------------------------------ digests
def sha256(data: bytes) -> str:
    """The file's SHA-256 as 64 hexadecimal digits."""
    return hashlib.sha256(data).hexdigest()


def read_verified(path: Path, digests: dict[str, str]) -> bytes:
    """The bytes of ``path``, if their SHA-256 is the one ``digests`` records for it."""
    data = path.read_bytes()
    expected = digests.get(path.name)
    if expected is None:
        raise RankerFileError(f"ranker.json records no SHA-256 for {path.name}: the "
                              "record is damaged or from another ranker")
    if sha256(data) != expected:
        raise RankerFileError(
            f"{path} does not match the SHA-256 that ranker.json records for it "
            f"({len(data):,} bytes): the file is damaged (truncated, half copied) or "
            "comes from another ranker; save the ranker again")
    return data


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; a truncated, empty or non-object file is refused."""
    text = path.read_bytes()
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        cause = "it is empty" if not text.strip() else f"{error}"
        raise RankerFileError(f"{path} is not valid JSON ({cause}): the file is damaged "
                              "or was not written by save_ranker") from None
    if not isinstance(value, dict):
        raise RankerFileError(f"{path} holds a JSON {type(value).__name__}, not the "
                              "object save_ranker writes")
    return value


# ------------------------------------------------------------ weights, tables
def load_weights(data: bytes, name: str) -> dict[str, torch.Tensor]:
    """A state dict of tensors, loaded weights-only: a pickled object is refused, never run."""
    try:
        weights = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:   # torch raises many kinds on a damaged or hostile file
        raise RankerFileError(f"{name} is not a state dict of tensors that loads "
                              f"weights-only ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else 'no message'}):"
                              " the file is damaged or holds pickled objects") from None
    if not isinstance(weights, dict) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor)
            for key, value in weights.items()):
        raise RankerFileError(f"{name} does not hold a state dict (names to tensors)")
    return weights


def load_tables(data: bytes, name: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file, read without pickle, each 1-d and numeric."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            tables = {key: stored[key] for key in stored.files}
    except Exception as error:   # BadZipFile, EOFError, ValueError (object arrays), ...
        raise RankerFileError(f"{name} is not an .npz archive of numeric arrays "
                              f"({type(error).__name__}: {error}): the file is damaged "
                              "or holds pickled objects") from None
    missing = sorted(set(names) - set(tables))
    if missing:
        raise RankerFileError(f"{name} lacks the table(s) {missing}")
    for key in names:
        if tables[key].ndim != 1 or tables[key].dtype.kind not in "biuf":
            raise RankerFileError(f"{name}: table {key} must be a 1-d numeric array, got "
                                  f"dtype {tables[key].dtype} and shape {tables[key].shape}")
    return {key: tables[key] for key in names}


# --------------------------------------------------------- exported programs
SAFE_NAMES = frozenset({
    "Symbol", "Integer", "Float", "Rational", "L", "math",
    "oo", "int_oo", "inf", "Eq", "Ne", "Ge", "Gt", "Le", "Lt", "And", "Or", "Not",
    "Max", "Min", "Abs", "Add", "Mul", "Pow", "Piecewise", "FloorDiv", "CeilDiv",
    "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt",
    "FloorToInt", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv",
    "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt",
    "RoundToInt", "RoundDecimal", "ToFloat", "Identity"})
"""Names a symbolic shape or an input guard of an exported program may use."""
SAFE_ATTRIBUTES = frozenset({"size", "stride", "storage_offset", "dim", "numel",
                             "floor", "ceil", "trunc", "sqrt"})
"""Attributes it may read: a tensor's shape, and math's rounding functions."""
SYMBOL = re.compile(r"[a-z]+[0-9]+")                  # s10, u0: a shape's symbols
IDENTIFIER = re.compile(r"(?!__)[A-Za-z_][A-Za-z0-9_]*")
ATEN_OPERATOR = re.compile(r"torch\.ops\.aten\.(?!__)\w+\.(?!__)\w+")
SYMBOLIC_OPERATORS = frozenset(
    [f"_operator.{name}" for name in ("add", "sub", "mul", "floordiv", "truediv", "mod",
                                      "pow", "neg", "eq", "ne", "lt", "le", "gt", "ge",
                                      "getitem", "and_", "or_", "not_")]
    + [f"math.{name}" for name in ("floor", "ceil", "trunc", "sqrt")]
    + [f"torch.{name}" for name in ("sym_int", "sym_float", "sym_max", "sym_min",
                                    "sym_not", "sym_sqrt", "sym_ite")])
"""Operators other than ATen's that an exported graph computes shapes with."""
SAFE_NODES = (ast.Expression, ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Call,
              ast.keyword, ast.Name, ast.Attribute, ast.Subscript, ast.Constant, ast.Load,
              ast.Tuple, ast.operator, ast.cmpop, ast.boolop, ast.unaryop)
METADATA = ("archive_format", "archive_version", "byteorder")
CUSTOM_OBJECTS = ("custom_obj_", "opaque_obj_")       # pickled Python objects, always refused


def check_program(data: bytes, name: str) -> None:
    """Refuse a ``torch.export`` archive that would make ``torch.export.load`` run its content.

    Every entry must be one of the kinds ``torch.export.save`` writes for a
    plain model: metadata, the graph (JSON), payload configs (JSON), raw
    tensor bytes, sample inputs and extra text files. Anything torch would
    unpickle must load weights-only; the graph's expressions, guards and
    operators must pass ``check_expression`` and ``check_operator``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = {entry: archive.read(entry) for entry in archive.namelist()}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
            NotImplementedError) as error:
        raise RankerFileError(f"{name} is not a readable zip archive ({error}): the file "
                              "is damaged or was not written by export_ranker") from None
    roots = {entry.split("/", 1)[0] for entry in entries}
    if len(roots) != 1 or any("/" not in entry for entry in entries):
        raise RankerFileError(f"{name} does not have the layout torch.export.save writes "
                              f"(one root folder), it has {sorted(entries)[:5]}")
    relative = {entry.split("/", 1)[1]: content for entry, content in entries.items()}
    pickled: list[str] = []
    for entry, content in relative.items():
        pickled += _check_entry(entry, content, name)
    for entry in pickled:
        if entry not in relative:
            raise RankerFileError(f"{name}: a payload config names {entry}, which the "
                                  "archive lacks")
        _check_weights_only(relative[entry], f"{name}: {entry}")


def _check_entry(entry: str, content: bytes, name: str) -> list[str]:
    """Check one archive entry; return the entries its payload config marks as pickled."""
    folder, _, file = entry.rpartition("/")
    if entry in METADATA or entry.startswith((".data/", "extra/")):
        return []                                         # text torch never unpickles
    if folder == "models" and file.endswith(".json"):
        _check_graph(_entry_json(content, f"{name}: {entry}"), f"{name}: {entry}")
        return []
    if folder in ("data/weights", "data/constants"):
        if file.startswith(CUSTOM_OBJECTS):
            raise RankerFileError(f"{name}: {entry} is a pickled Python object, which "
                                  "loading would run; an exported ranker holds none")
        if file.endswith("_config.json"):
            return _pickled_payloads(_entry_json(content, f"{name}: {entry}"), folder,
                                     f"{name}: {entry}")
        if file.endswith(".pt"):
            _check_weights_only(content, f"{name}: {entry}")
        return []                                         # raw tensor bytes
    if folder == "data/sample_inputs" and file.endswith(".pt"):
        _check_weights_only(content, f"{name}: {entry}")
        return []
    raise RankerFileError(f"{name}: entry {entry} is not part of an exported program "
                          "that this loader reads (compiled code, or another format)")


def _entry_json(content: bytes, where: str):
    try:
        return json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RankerFileError(f"{where} is not valid JSON ({error})") from None


def _pickled_payloads(config, folder: str, where: str) -> list[str]:
    """The entries a payload config tells torch to unpickle (``use_pickle``)."""
    payloads = config.get("config", {}) if isinstance(config, dict) else None
    if not isinstance(payloads, dict):
        raise RankerFileError(f"{where} is not a payload config")
    pickled = []
    for meta in payloads.values():
        path_name = meta.get("path_name", "") if isinstance(meta, dict) else ""
        if not isinstance(path_name, str) or path_name.startswith(CUSTOM_OBJECTS):
            raise RankerFileError(f"{where} names a pickled Python object ({path_name!r}),"
                                  " which loading would run")
        if meta.get("use_pickle"):
            pickled.append(f"{folder}/{path_name}")
    return pickled


def _check_weights_only(content: bytes, where: str) -> None:
    """Refuse bytes that a weights-only ``torch.load`` will not read (they would run code)."""
    try:
        torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as error:
        raise RankerFileError(f"{where} does not load weights-only ({type(error).__name__}):"
                              " it holds pickled objects that loading would run") from None


def _check_graph(graph, where: str) -> None:
    """Every operator, symbolic expression and guard of an exported graph (JSON), recursively."""
    if isinstance(graph, dict):
        for key, value in graph.items():
            if key == "target" and isinstance(value, str):
                check_operator(value, where)
            elif key == "expr_str":
                check_expression(value, where)
            elif key == "guards_code":
                for guard in value if isinstance(value, list) else [value]:
                    check_expression(guard, where)
            else:
                _check_graph(value, where)
    elif isinstance(graph, list):
        for value in graph:
            _check_graph(value, where)


def check_operator(target: str, where: str = "the program") -> None:
    """Refuse an operator that is not ATen's or one of the shape operators."""
    if not (ATEN_OPERATOR.fullmatch(target) or target in SYMBOLIC_OPERATORS):
        raise RankerFileError(f"{where} calls {target!r}, which is not an ATen operator: "
                              "an exported ranker calls nothing else")


def check_expression(text, where: str = "the program") -> None:
    """Refuse a shape expression or guard that is more than arithmetic on shapes.

    torch evaluates these strings as Python (sympify, exec), so only names
    from ``SAFE_NAMES`` or shape symbols, the attributes ``SAFE_ATTRIBUTES``,
    numbers, identifier-like strings and operators may appear.
    """
    try:
        tree = ast.parse(text, mode="eval") if isinstance(text, str) else None
    except SyntaxError:
        tree = None
    if tree is None or not all(_is_safe(node) for node in ast.walk(tree)):
        raise RankerFileError(f"{where} holds the expression {str(text)[:120]!r}, which "
                              "torch would evaluate as code and is not arithmetic on "
                              "tensor shapes")


def _is_safe(node: ast.AST) -> bool:
    if not isinstance(node, SAFE_NODES):
        return False
    if isinstance(node, ast.Name):
        return node.id in SAFE_NAMES or bool(SYMBOL.fullmatch(node.id))
    if isinstance(node, ast.Attribute):
        return node.attr in SAFE_ATTRIBUTES
    if isinstance(node, ast.Call):
        return isinstance(node.func, (ast.Name, ast.Attribute))
    if isinstance(node, ast.keyword):
        return node.arg is not None and bool(IDENTIFIER.fullmatch(node.arg))
    if isinstance(node, ast.Constant):
        value = node.value
        return (isinstance(value, (bool, int, float)) or value is None
                or (isinstance(value, str) and bool(IDENTIFIER.fullmatch(value))))
    return True


def load_program(data: bytes, name: str) -> torch.export.ExportedProgram:
    """The exported program in ``data``, after ``check_program`` found nothing it would run."""
    check_program(data, name)
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as error:
        raise RankerFileError(f"{name} passed the checks but torch.export.load refused it "
                              f"({type(error).__name__}: {error}); export the ranker again "
                              "with this torch version") from None
