"""Describe the machine a benchmark ran on, so every result file names it."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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


def write_result(name: str, result: dict) -> Path:
    """Write ``result`` with the machine and a timestamp to results/<name>-<device>.json."""
    record = {"benchmark": name, "machine": machine(),
              "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result}
    device = "gpu" if record["machine"]["gpu"] else "cpu"
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}-{device}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
