"""Training examples for the ranker: one per problem, holding all of that problem's pairs.

Grouping pairs by problem is what lets one backbone pass score every pair of a question.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DamiPrefError
from ..utils.grid import Grid
from .encoding import QuestionEncoder

PAIR_COLUMNS = ("problem_id", "question", "chosen_lambda", "rejected_lambda", "chosen_acc",
                "rejected_acc", "chosen_cost", "rejected_cost")


@dataclass
class ProblemExample:
    problem_id: str
    question: str
    pairs: list[tuple[int, int]]  # (chosen, rejected) as indices into the grid
    weights: list[float]
    oracle_index: int
    acc: list[float]  # per grid point, from the rollouts
    cost: list[float]


def load_examples(pairs_folder: str | Path, grid: list[float] | None = None,
                  pair_weighting: str = "none"
                  ) -> tuple[dict[str, list[ProblemExample]], list[float], dict]:
    """Examples per split from a pairs folder; ``grid`` (if given) must match the data's."""
    from ..data.pair_dataset import load_pair_dataset

    if pair_weighting not in ("none", "acc_gap"):
        raise DamiPrefError(f"pair_weighting must be 'none' or 'acc_gap', got {pair_weighting!r}")
    dataset, candidates, oracle, summary = load_pair_dataset(pairs_folder)
    data_grid = Grid([float(x) for x in summary["grid"]])
    if grid is not None and Grid(grid) != data_grid:
        raise DamiPrefError(f"the λ grid of the config ({list(grid)}) differs from the grid of "
                            f"the pairs in {pairs_folder} ({data_grid.values}); drop --grid or "
                            "rebuild the rollouts on that grid")
    _check_pair_columns(dataset, pairs_folder)
    acc, cost = _candidate_tables(candidates, data_grid)
    pairs = _pairs_by_problem(dataset, data_grid, pair_weighting)
    examples: dict[str, list[ProblemExample]] = {"train": [], "validation": []}
    for row in oracle.to_pylist():
        pid = row["problem_id"]
        if any(v != v for v in acc[pid]):  # NaN: a λ of the grid was not rolled out
            raise DamiPrefError(f"{pairs_folder}: problem {pid!r} lacks rollouts for some λ "
                                "of the grid")
        examples[row["split"]].append(ProblemExample(
            pid, row["question"], [(c, r) for c, r, _ in pairs[pid]],
            [w for _, _, w in pairs[pid]], data_grid.index(row["oracle_lambda"]),
            acc[pid], cost[pid]))
    if not examples["train"]:
        raise DamiPrefError(f"{pairs_folder}: the training split is empty")
    return examples, list(data_grid), summary


def _check_pair_columns(dataset, pairs_folder) -> None:
    for name in ("train", "validation"):
        if name not in dataset:
            raise DamiPrefError(f"{pairs_folder}: the pairs dataset has no {name!r} split")
        missing = [c for c in PAIR_COLUMNS if c not in dataset[name].column_names]
        if missing:
            raise DamiPrefError(f"{pairs_folder}: the {name} pairs lack column(s) {missing}")


def _candidate_tables(candidates, grid: Grid) -> tuple[dict[str, list[float]],
                                                        dict[str, list[float]]]:
    """Per problem, accuracy and cost at every grid point (NaN where not rolled out)."""
    acc: dict[str, list[float]] = defaultdict(lambda: [float("nan")] * len(grid))
    cost: dict[str, list[float]] = defaultdict(lambda: [float("nan")] * len(grid))
    for row in candidates.to_pylist():
        i = grid.index(row["lambda"])
        acc[row["problem_id"]][i] = row["acc"]
        cost[row["problem_id"]][i] = row["cost"]
    return acc, cost


def _pairs_by_problem(dataset, grid: Grid, pair_weighting: str
                      ) -> dict[str, list[tuple[int, int, float]]]:
    """(chosen index, rejected index, weight) of every pair, grouped by problem."""
    pairs: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for name in ("train", "validation"):
        cols = dataset[name].select_columns(["problem_id", "chosen_lambda", "rejected_lambda",
                                             "chosen_acc", "rejected_acc"]).to_dict()
        for pid, c, r, ca, ra in zip(cols["problem_id"], cols["chosen_lambda"],
                                     cols["rejected_lambda"], cols["chosen_acc"],
                                     cols["rejected_acc"]):
            weight = 1.0 if pair_weighting == "none" else max(ca - ra, 0.0) + 1.0
            pairs[pid].append((grid.index(c), grid.index(r), weight))
    return pairs


class RankerCollator:
    """Encodes questions with the ranker's :class:`QuestionEncoder` and flattens their pairs."""

    def __init__(self, encoder: QuestionEncoder, grid: list[float]) -> None:
        self.encoder = encoder
        self.grid = torch.tensor(list(grid), dtype=torch.float32)

    def __call__(self, examples: list[ProblemExample]) -> dict[str, torch.Tensor]:
        batch = self.encoder([e.question for e in examples])
        problem, chosen, rejected, weight = [], [], [], []
        for b, e in enumerate(examples):
            for (c, r), w in zip(e.pairs, e.weights):
                problem.append(b)
                chosen.append(c)
                rejected.append(r)
                weight.append(w)
        oracle = torch.tensor([e.oracle_index for e in examples], dtype=torch.long)
        batch.update(
            pair_problem=torch.tensor(problem, dtype=torch.long),
            pair_chosen=torch.tensor(chosen, dtype=torch.long),
            pair_rejected=torch.tensor(rejected, dtype=torch.long),
            pair_weight=torch.tensor(weight, dtype=torch.float32),
            oracle_index=oracle, oracle_lambda=self.grid[oracle],
            acc=torch.tensor([e.acc for e in examples], dtype=torch.float32),
            cost=torch.tensor([e.cost for e in examples], dtype=torch.float32))
        return batch
