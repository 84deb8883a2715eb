"""The synthetic ad world: a generator that knows the true probability of every label."""

from .config import ACTIONS, PRESETS, SURFACES, TASKS, AdLogConfig
from .logs import AdLogs, simulate
from .store import load, load_or_simulate, save

__all__ = ["ACTIONS", "PRESETS", "SURFACES", "TASKS", "AdLogConfig", "AdLogs", "simulate",
           "load", "load_or_simulate", "save"]
