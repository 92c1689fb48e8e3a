"""Per-problem (λ, accuracy, cost) tables read from rollouts: what offline evaluation scores on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.preferences import candidates_from_rows
from ..errors import DamiPrefError
from ..utils.grid import Grid
from ..utils.ordering import Candidate, oracle


@dataclass
class CandidateTable:
    """acc[i, j] and cost[i, j]: problem i answered at grid[j], averaged over samples."""

    grid: Grid
    problem_ids: list[str]
    questions: list[str]
    difficulty: list[str | None]
    acc: np.ndarray
    cost: np.ndarray

    def __len__(self) -> int:
        return len(self.problem_ids)

    def column(self, lam: float) -> int:
        return self.grid.index(lam)

    def score(self, lams: list[float]) -> dict[str, float]:
        """Accuracy and mean tokens of one λ per problem."""
        cols = [self.column(lam) for lam in lams]
        rows = np.arange(len(self))
        return {"accuracy": float(self.acc[rows, cols].mean()),
                "mean_tokens": float(self.cost[rows, cols].mean())}

    def candidates(self, i: int) -> list[Candidate]:
        return [Candidate(lam, float(self.acc[i, j]), float(self.cost[i, j]))
                for j, lam in enumerate(self.grid)]

    def oracle(self) -> list[float]:
        """λ*(q): best accuracy, then least cost, then lowest λ."""
        return [oracle(self.candidates(i)).lam for i in range(len(self))]

    def static(self) -> list[Candidate]:
        """Every static λ scored over all problems: the static frontier."""
        return [Candidate(lam, float(self.acc[:, j].mean()), float(self.cost[:, j].mean()))
                for j, lam in enumerate(self.grid)]


def load_candidate_table(rollout_folder: str | Path, grid: list[float]) -> CandidateTable:
    """Read a finished rollout folder; every λ of ``grid`` must have been rolled out."""
    from ..data.rollouts import load_rollouts

    grid = Grid.parse(grid)
    _, problems, table = load_rollouts(rollout_folder)
    rolled = Grid(table.column("lambda").to_pylist())
    missing = rolled.missing(grid)
    if missing:
        raise DamiPrefError(f"{rollout_folder}: no rollouts for λ {missing} of the evaluation "
                            f"grid (it has {rolled.values}); roll them out or evaluate on its grid")
    by_problem = candidates_from_rows(
        table.select(["problem_id", "lambda", "correct", "n_tokens"]).to_pylist())
    info = problems.to_pylist()
    acc = np.zeros((len(info), len(grid)))
    cost = np.zeros((len(info), len(grid)))
    for i, row in enumerate(info):
        for c in by_problem[row["problem_id"]]:
            if c.lam in grid:
                acc[i, grid.index(c.lam)] = c.acc
                cost[i, grid.index(c.lam)] = c.cost
    return CandidateTable(grid, [r["problem_id"] for r in info],
                          [r["question"] for r in info], [r["difficulty"] for r in info],
                          acc, cost)
