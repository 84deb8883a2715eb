"""Small helpers every chapter and lab notebook starts with."""

from __future__ import annotations

import os
import random

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


def glue(name: str, value, display: bool = False) -> None:
    """Store a computed value for the book's prose (myst-nb ``glue``).

    Outside a book build (Colab, plain Jupyter) myst-nb may be missing: then
    the value is simply printed, so the notebook still runs.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        print(f"{name} = {value}")
        return
    myst_glue(name, value, display=display)
