"""Defaults for running the tests directly with pytest (``make test`` sets them too).

The scale defaults to ``smoke`` so that a bare ``pytest`` stays fast, and every
library gets one thread: on small machines torch and LightGBM threads contend.
These must be set before torch is imported, hence here.
"""

import os

os.environ.setdefault("RANKING_SCALE", "smoke")
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("MPLBACKEND", "Agg")
