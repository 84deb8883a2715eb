"""Describe the machine a benchmark or an experiment ran on, so every result file names it.

The scripts in benchmarks/ and experiments/ import it with ``tools`` on their path and
write their records to the ``results`` folder beside them.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

def machine() -> dict:
    """CPU, cores, GPU (if any) and library versions."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def results_dir(script: str) -> Path:
    """The ``results`` folder beside ``script`` (a script's ``__file__``)."""
    return Path(script).resolve().parent / "results"


def write_result(name: str, result: dict, script: str) -> Path:
    """Write ``result``, the machine and a timestamp to results/<name>-<device>.json
    beside ``script`` (the calling script's ``__file__``)."""
    record = {"benchmark": name, "machine": machine(),
              "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result}
    device = "gpu" if record["machine"]["gpu"] else "cpu"
    folder = results_dir(script)
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}-{device}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
