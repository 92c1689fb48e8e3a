"""A ranker's β frontier: its accuracy and tokens as the cost knob moves, and how it compares
with the static-λ frontier at each static λ's token cost."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..utils.stats import bootstrap_ci
from .candidates import CandidateTable
from .methods import Choice

# β values of the cost-knob table when none are given, by the ranker's objective
DEFAULT_BETAS = {"pref": (-8, -4, -2, -1, 0, 1, 2, 4),
                 "acc": (0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1)}


def cost_knob(choice: Choice | None, test: CandidateTable,
              betas: Sequence[float] = ()) -> list[dict]:
    """A ranker's accuracy and tokens at every β of the cost knob, from the same scores; the
    β it uses by default (chosen on validation) is among them, marked ``chosen``."""
    from ..ranker.selection import indices_per_beta

    if choice is None:
        return []
    costs = choice.details["expected_costs"].cpu()
    chosen = float(choice.details.get("cost_weight", 0.0))
    objective = choice.details.get("objective", "pref")
    values = sorted({float(b) for b in (betas or DEFAULT_BETAS.get(objective, (0,)))} | {chosen})
    return [{"beta": beta, "chosen": beta == chosen,
             **test.score([test.grid[i] for i in idx.tolist()])}
            for beta, idx in indices_per_beta(choice.details["scores"], costs, values)]


def knob_curve(choice: Choice, test: CandidateTable) -> list[tuple[float, float]]:
    """(accuracy, mean tokens) along the whole β range, for the frontier plot."""
    from ..ranker.operating_point import candidate_betas

    return [(row["accuracy"], row["mean_tokens"])
            for row in cost_knob(choice, test, candidate_betas())]


def frontier_vs_static(choice: Choice, test: CandidateTable) -> list[dict]:
    """For every static λ: the ranker's most accurate β that spends no more mean tokens, and
    the per-question difference in accuracy with its 95 % bootstrap interval. The ranker is
    at or above the static frontier there when the interval's upper end is ≥ 0."""
    from ..ranker.operating_point import candidate_betas
    from ..ranker.selection import indices_per_beta

    costs = choice.details["expected_costs"].cpu()
    rows = np.arange(len(test))
    points = [(beta, test.acc[rows, idx.numpy()], float(test.cost[rows, idx.numpy()].mean()))
              for beta, idx in indices_per_beta(choice.details["scores"], costs,
                                                candidate_betas())]
    out = []
    for j, lam in enumerate(test.grid):
        static_acc, static_tokens = test.acc[:, j], float(test.cost[:, j].mean())
        row = {"lambda": lam, "static_accuracy": float(static_acc.mean()),
               "static_mean_tokens": static_tokens, "beta": None, "accuracy": None,
               "mean_tokens": None, "difference": None, "difference_ci95": None,
               "at_or_above": False}  # no β spends this little
        within = [p for p in points if p[2] <= static_tokens + 1e-9]
        if within:
            beta, acc, tokens = max(within, key=lambda p: (p[1].mean(), -p[2]))
            diff = acc - static_acc
            ci = bootstrap_ci(diff)
            row.update(beta=beta, accuracy=float(acc.mean()), mean_tokens=tokens,
                       difference=float(diff.mean()), difference_ci95=ci,
                       at_or_above=bool(ci[1] >= 0))
        out.append(row)
    return out
