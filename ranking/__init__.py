"""Ranking Ads in Practice: simulated ad logs, features, models and metrics."""
