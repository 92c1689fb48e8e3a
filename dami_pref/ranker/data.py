"""Training examples for the ranker: one per problem, holding all of that problem's pairs.

Grouping pairs by problem is what lets one backbone pass score every pair of a question.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DamiPrefError

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


def _grid_index(grid: list[float]) -> dict[float, int]:
    return {round(lam, 6): i for i, lam in enumerate(grid)}


def load_examples(pairs_folder: str | Path, grid: list[float] | None = None,
                  pair_weighting: str = "none") -> tuple[dict[str, list[ProblemExample]], list[float],
                                                         dict]:
    """Examples per split from a pairs folder; ``grid`` (if given) must match the data's."""
    from ..pair_dataset import load_pair_dataset

    dataset, candidates, oracle, summary = load_pair_dataset(pairs_folder)
    data_grid = [float(x) for x in summary["grid"]]
    if grid is not None and [round(x, 6) for x in grid] != [round(x, 6) for x in data_grid]:
        raise DamiPrefError(f"the λ grid of the config ({grid}) differs from the grid of the "
                            f"pairs in {pairs_folder} ({data_grid}); drop --grid or rebuild the "
                            "rollouts on that grid")
    for name in ("train", "validation"):
        if name not in dataset:
            raise DamiPrefError(f"{pairs_folder}: the pairs dataset has no {name!r} split")
        missing = [c for c in PAIR_COLUMNS if c not in dataset[name].column_names]
        if missing:
            raise DamiPrefError(f"{pairs_folder}: the {name} pairs lack column(s) {missing}")
    if pair_weighting not in ("none", "acc_gap"):
        raise DamiPrefError(f"pair_weighting must be 'none' or 'acc_gap', got {pair_weighting!r}")
    index = _grid_index(data_grid)
    acc: dict[str, list[float]] = defaultdict(lambda: [float("nan")] * len(data_grid))
    cost: dict[str, list[float]] = defaultdict(lambda: [float("nan")] * len(data_grid))
    for row in candidates.to_pylist():
        i = index[round(row["lambda"], 6)]
        acc[row["problem_id"]][i] = row["acc"]
        cost[row["problem_id"]][i] = row["cost"]
    pairs: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for name in ("train", "validation"):
        cols = dataset[name].select_columns(["problem_id", "chosen_lambda", "rejected_lambda",
                                             "chosen_acc", "rejected_acc"]).to_dict()
        for pid, c, r, ca, ra in zip(cols["problem_id"], cols["chosen_lambda"],
                                     cols["rejected_lambda"], cols["chosen_acc"],
                                     cols["rejected_acc"]):
            weight = 1.0 if pair_weighting == "none" else max(ca - ra, 0.0) + 1.0
            pairs[pid].append((index[round(c, 6)], index[round(r, 6)], weight))
    examples: dict[str, list[ProblemExample]] = {"train": [], "validation": []}
    for row in oracle.to_pylist():
        pid = row["problem_id"]
        if any(v != v for v in acc[pid]):  # NaN: a λ of the grid was not rolled out
            raise DamiPrefError(f"{pairs_folder}: problem {pid!r} lacks rollouts for some λ "
                                "of the grid")
        examples[row["split"]].append(ProblemExample(
            pid, row["question"], [(c, r) for c, r, _ in pairs[pid]],
            [w for _, _, w in pairs[pid]], index[round(row["oracle_lambda"], 6)],
            acc[pid], cost[pid]))
    if not examples["train"]:
        raise DamiPrefError(f"{pairs_folder}: the training split is empty")
    return examples, data_grid, summary


def render_question(question: str, template: str, tokenizer=None,
                    chat_template: bool = True) -> str:
    """The text the ranker reads: the prompt template, then (optionally) the chat template.

    Through the chat template the pooled last token is the assistant marker, the very position
    where a model of the family decides how to answer.
    """
    text = template.format(question=question)
    if chat_template and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text


class RankerCollator:
    """Tokenises questions (truncating from the left) and flattens their pairs."""

    def __init__(self, tokenizer, prompt_template: str, max_length: int,
                 grid: list[float], chat_template: bool = True) -> None:
        self.tokenizer = tokenizer
        self.template = prompt_template
        self.chat_template = chat_template
        self.max_length = max_length
        self.grid = torch.tensor(grid, dtype=torch.float32)

    def encode(self, questions: list[str]) -> dict[str, torch.Tensor]:
        self.tokenizer.truncation_side = "left"
        self.tokenizer.padding_side = "right"
        texts = [render_question(q, self.template, self.tokenizer, self.chat_template)
                 for q in questions]
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt", add_special_tokens=not self.chat_template)

    def __call__(self, examples: list[ProblemExample]) -> dict[str, torch.Tensor]:
        batch = dict(self.encode([e.question for e in examples]))
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
