"""From model outputs to a λ per question, the same way for training metrics and inference.

Each objective's output becomes scores over the grid, so pairwise accuracy, top-1 agreement and
regret are computed identically for DAMI-Pref, DAMI-Pred and DAMI-Routing:
  pref   r(q, λ), the classifier's logit for λ;
  pred   −|λ − λ̂(q)|: the grid point nearest the predicted λ wins;
  route  logit(q)·(λ − ½): a positive logit favours the highest λ, a negative the lowest;
  acc    σ(r(q, λ)): the predicted chance that λ answers right, so argmax p − β·ĉ(λ) trades a
         predicted point of accuracy against β of normalised cost.
"""

from __future__ import annotations

import torch


def grid_scores(outputs: dict[str, torch.Tensor], objective: str,
                grid: torch.Tensor) -> torch.Tensor:
    if objective == "pref":
        return outputs["scores"].float()
    if objective == "pred":
        return -(grid[None, :] - outputs["pred"].float()[:, None]).abs()
    if objective == "route":
        return outputs["route"].float()[:, None] * (grid[None, :] - 0.5)
    if objective == "acc":
        return torch.sigmoid(outputs["scores"].float())
    raise ValueError(f"unknown objective {objective!r}")


def normalized_costs(lambda_costs: dict | None, grid: list[float]) -> torch.Tensor:
    """ĉ(λ) in [0, 1] per candidate: mean tokens of λ in the training rollouts over the
    largest, or λ itself when the costs are not known."""
    known = lambda_costs or {}
    costs = [known.get(f"{lam:g}") for lam in grid]
    if known and all(c is not None for c in costs) and max(costs) > 0:
        return torch.tensor(costs, dtype=torch.float32) / max(costs)
    return torch.tensor(grid, dtype=torch.float32)


def select_index(scores: torch.Tensor, cost_penalty: torch.Tensor | None = None) -> torch.Tensor:
    """argmax over λ of score − penalty; ties go to the lower λ (the cheaper model)."""
    if cost_penalty is not None:
        scores = scores - cost_penalty[None, :]
    return scores.argmax(dim=1)  # argmax returns the first maximum: the lowest λ index


def indices_per_beta(scores: torch.Tensor, expected_costs: torch.Tensor,
                     betas) -> list[tuple[float, torch.Tensor]]:
    """The β sweep: at each β, every row's chosen grid index under argmax r − β·ĉ(λ) (β = 0:
    the scores alone). The operating point, the cost knob and the static comparison all read
    it."""
    return [(beta, select_index(scores, beta * expected_costs if beta else None))
            for beta in betas]
