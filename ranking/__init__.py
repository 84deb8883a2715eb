"""Ranking Ads in Practice: simulated ad logs, features, models and metrics."""

from importlib import metadata

try:
    __version__ = metadata.version("ranking-ads-in-practice")
except metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"
