"""Per-problem (λ, accuracy, cost) tables read from rollouts: what offline evaluation scores on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DamiPrefError
from ..preferences import candidates_from_rows


@dataclass
class CandidateTable:
    """acc[i, j] and cost[i, j]: problem i answered at grid[j], averaged over samples."""

    grid: list[float]
    problem_ids: list[str]
    questions: list[str]
    difficulty: list[str | None]
    acc: np.ndarray
    cost: np.ndarray

    def __len__(self) -> int:
        return len(self.problem_ids)

    def column(self, lam: float) -> int:
        for j, g in enumerate(self.grid):
            if abs(g - lam) < 1e-6:
                return j
        raise DamiPrefError(f"λ={lam:g} is not on the evaluation grid {self.grid}")

    def score(self, lams: list[float]) -> dict[str, float]:
        """Accuracy and mean tokens of one λ per problem."""
        cols = [self.column(lam) for lam in lams]
        rows = np.arange(len(self))
        return {"accuracy": float(self.acc[rows, cols].mean()),
                "mean_tokens": float(self.cost[rows, cols].mean())}

    def oracle(self) -> list[float]:
        """λ*(q): best accuracy, then least cost, then lowest λ."""
        out = []
        for i in range(len(self)):
            best = max(range(len(self.grid)),
                       key=lambda j: (self.acc[i, j], -self.cost[i, j], -self.grid[j]))
            out.append(self.grid[best])
        return out


def load_candidate_table(rollout_folder: str | Path, grid: list[float]) -> CandidateTable:
    """Read a finished rollout folder; every λ of ``grid`` must have been rolled out."""
    from ..rollouts import load_rollouts

    _, problems, table = load_rollouts(rollout_folder)
    rolled = sorted({round(x, 6) for x in table.column("lambda").to_pylist()})
    missing = [lam for lam in grid if round(lam, 6) not in rolled]
    if missing:
        raise DamiPrefError(f"{rollout_folder}: no rollouts for λ {missing} of the evaluation "
                            f"grid (it has {rolled}); roll them out or evaluate on its grid")
    by_problem = candidates_from_rows(
        table.select(["problem_id", "lambda", "correct", "n_tokens"]).to_pylist())
    info = problems.to_pylist()
    acc = np.zeros((len(info), len(grid)))
    cost = np.zeros((len(info), len(grid)))
    for i, row in enumerate(info):
        cands = {round(c.lam, 6): c for c in by_problem[row["problem_id"]]}
        for j, lam in enumerate(grid):
            acc[i, j] = cands[round(lam, 6)].acc
            cost[i, j] = cands[round(lam, 6)].cost
    return CandidateTable(list(grid), [r["problem_id"] for r in info],
                          [r["question"] for r in info], [r["difficulty"] for r in info],
                          acc, cost)
