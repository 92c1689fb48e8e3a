"""Uncertainty of a mean over problems: a seeded percentile bootstrap."""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def bootstrap_ci(values, resamples: int = RESAMPLES, level: float = LEVEL,
                 seed: int = 0) -> list[float]:
    """[low, high] of the mean of ``values`` (one per problem) at ``level``; seeded, so the
    same values always give the same interval."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    return [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))]
