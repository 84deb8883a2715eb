"""Small helpers every chapter and lab notebook starts with."""

from __future__ import annotations

import inspect
import json
import os
import random
import textwrap
from pathlib import Path

import numpy as np
import torch

from .simulate.config import SCALE_ENV_VAR


def setup(seed: int = 0, threads: int = 1) -> str:
    """Seed every generator, pin thread counts, return the scale being run.

    One thread is the default: on small machines torch and LightGBM threads
    fight over cores and can make a run many times slower.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    return os.environ.get(SCALE_ENV_VAR, "book")


class _Text:
    """A string that displays without quotes (myst-nb shows a glued str's repr)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text)


def glue(name: str, value, display: bool = False) -> None:
    """Store a computed value for the book's prose (myst-nb ``glue``).

    Strings are glued as plain text, so ``{glue:}`name``` shows ``1.99%``, not
    ``'1.99%'``. Outside a book build (Colab, plain Jupyter) myst-nb may be
    missing: then the value is printed, so the notebook still runs.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        print(f"{name} = {value}")
        return
    myst_glue(name, _Text(value) if isinstance(value, str) else value, display=display)


class _Source:
    """Python source that a notebook shows as a highlighted code block (plain text elsewhere)."""

    def __init__(self, source: str):
        self.source = source

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.source.rstrip()}\n```"

    def __repr__(self) -> str:
        return self.source


def show_code(*objects) -> None:
    """Show the package's own source of each function or class, syntax-highlighted.

    The book prints the code the tests test, read from the installed package,
    so what a reader sees is what runs.
    """
    from IPython.display import display

    for obj in objects:
        display(_Source(textwrap.dedent(inspect.getsource(obj))))


def read_record(path: str) -> dict:
    """A recorded benchmark or experiment (JSON, with the machine it ran on)."""
    return json.loads(Path(path).read_text())
