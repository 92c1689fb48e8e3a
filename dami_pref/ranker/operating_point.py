"""The ranker's operating point: the β of argmax r(q, λ) − β·ĉ(λ), chosen on validation.

A ranker's scores alone do not say how much accuracy a user wants for a token. Training ends by
sweeping β over the validation problems (whose accuracy and tokens at every λ the rollouts
measured) and keeping the β that meets a stated target:
  best_static   at least the best static λ's validation accuracy, with the fewest tokens (the
                default: a per-question λ should be as accurate as the best fixed one, cheaper);
  max_accuracy  the most accurate β, then the fewest tokens;
  paper         β = 0, DAMI-Pref as published.
When no β meets ``best_static``, the most accurate one is kept and the record says so.
"""

from __future__ import annotations

import numpy as np
import torch

from .option_checks import TARGETS
from .selection import indices_per_beta


def candidate_betas() -> list[float]:
    """0 and ±10^(e/10) for e in −50…20: fine enough for probabilities (acc) and for
    Bradley–Terry scores (pref) alike."""
    magnitudes = [10 ** (e / 10) for e in range(-50, 21)]
    return sorted({0.0, *magnitudes, *(-m for m in magnitudes)})


def best_static_index(acc: np.ndarray, cost: np.ndarray) -> int:
    """The grid index with the best mean accuracy, then the fewest tokens, then the lowest λ."""
    mean_acc, mean_cost = acc.mean(axis=0).round(12), cost.mean(axis=0)
    return min(range(acc.shape[1]), key=lambda j: (-mean_acc[j], mean_cost[j], j))


def frontier(scores: torch.Tensor, acc: np.ndarray, cost: np.ndarray,
             expected_costs: torch.Tensor, betas: list[float]) -> list[dict]:
    """Validation accuracy and mean tokens of the choice at every β."""
    rows = np.arange(acc.shape[0])
    return [{"beta": beta, "accuracy": float(acc[rows, idx.numpy()].mean()),
             "mean_tokens": float(cost[rows, idx.numpy()].mean())}
            for beta, idx in indices_per_beta(scores, expected_costs, betas)]


def choose_operating_point(scores: torch.Tensor, acc: np.ndarray, cost: np.ndarray,
                           expected_costs: torch.Tensor, grid: list[float],
                           target: str = "best_static") -> dict:
    """The β meeting ``target`` on validation, with what it and the best static λ scored there.

    scores: [problems × grid] as :func:`grid_scores` gives them; acc, cost: the rollouts'
    accuracy and tokens at every grid point of the same problems."""
    if target not in TARGETS:
        raise ValueError(f"unknown operating target {target!r}; choose one of {list(TARGETS)}")
    points = frontier(scores, acc, cost, expected_costs, candidate_betas())
    j = best_static_index(acc, cost)
    static_acc, static_tokens = float(acc[:, j].mean()), float(cost[:, j].mean())
    most_accurate = min(points, key=lambda p: (-round(p["accuracy"], 12), p["mean_tokens"],
                                               abs(p["beta"])))
    met = [p for p in points if p["accuracy"] >= static_acc - 1e-12]
    if target == "paper":
        chosen = next(p for p in points if p["beta"] == 0.0)
    elif target == "best_static" and met:
        chosen = min(met, key=lambda p: (p["mean_tokens"], abs(p["beta"])))
    else:
        chosen = most_accurate
    return {"cost_weight": chosen["beta"], "target": target,
            "target_met": bool(met) if target == "best_static" else None,
            "validation": {"problems": int(acc.shape[0]), "accuracy": chosen["accuracy"],
                           "mean_tokens": chosen["mean_tokens"],
                           "best_static_lambda": float(grid[j]),
                           "best_static_accuracy": static_acc,
                           "best_static_mean_tokens": static_tokens}}
