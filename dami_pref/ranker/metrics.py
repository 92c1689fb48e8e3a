"""Validation metrics of a ranker, summed per process and reduced as sums (then divided)."""

from __future__ import annotations

import torch

from .selection import grid_scores, select_index

# order of the summed quantities
SUMS = ("pairs_correct", "pairs", "top1", "problems", "acc_selected", "acc_oracle",
        "cost_selected", "cost_oracle")


def batch_sums(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], objective: str,
               grid: torch.Tensor) -> torch.Tensor:
    scores = grid_scores(outputs, objective, grid)
    p = batch["pair_problem"]
    diff = scores[p, batch["pair_chosen"]] - scores[p, batch["pair_rejected"]]
    correct = (diff > 0).float().sum() + 0.5 * (diff == 0).float().sum()
    selected = select_index(scores)
    rows = torch.arange(scores.shape[0], device=scores.device)
    oracle = batch["oracle_index"]
    return torch.stack([
        correct, torch.tensor(float(len(p)), device=scores.device),
        (selected == oracle).float().sum(), torch.tensor(float(len(rows)), device=scores.device),
        batch["acc"][rows, selected].sum(), batch["acc"][rows, oracle].sum(),
        batch["cost"][rows, selected].sum(), batch["cost"][rows, oracle].sum()])


def finish(sums: torch.Tensor) -> dict[str, float]:
    """Divide the reduced sums into the reported metrics."""
    s = dict(zip(SUMS, sums.tolist()))
    n = max(s["problems"], 1.0)
    return {
        "pairwise_accuracy": s["pairs_correct"] / max(s["pairs"], 1.0),
        "top1_agreement": s["top1"] / n,
        "accuracy_selected": s["acc_selected"] / n,
        "accuracy_regret": (s["acc_oracle"] - s["acc_selected"]) / n,
        "tokens_selected": s["cost_selected"] / n,
        "tokens_regret": (s["cost_selected"] - s["cost_oracle"]) / n,
        "problems": s["problems"],
    }
