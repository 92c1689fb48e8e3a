"""From graded rollouts to preference pairs: "accuracy first, cost second".

Per (problem, λ): ``acc`` is the mean correctness over samples and ``cost`` the mean generated
tokens. Candidate λa is preferred to λb when its accuracy is higher by more than
``acc_tolerance``; or, with accuracies within that tolerance, when it is cheaper by more than
``cost_tolerance`` (a fraction of the dearer cost). Every strictly ordered couple gives one pair;
ties give none. Train and validation are split by problem, never by pair.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..utils.limits import PAIRS
from ..utils.options import check_options, check_value
from ..utils.ordering import Candidate

# How a candidate λ reads as text, for rankers that see λ as text (TRL's RewardTrainer).
LAMBDA_TEXT = "reasoning intensity lambda={lam:.2f}"


@dataclass(frozen=True)
class PairOptions:
    # accuracy gaps up to this count as ties; cost gaps up to this fraction of the dearer cost
    acc_tolerance: float = field(default=0.0, metadata=PAIRS["acc_tolerance"])
    cost_tolerance: float = field(default=0.05, metadata=PAIRS["cost_tolerance"])

    def __post_init__(self) -> None:
        check_options(self)  # the ranges in utils/limits.py, as the command line checks them


def lambda_text(lam: float) -> str:
    return LAMBDA_TEXT.format(lam=lam)


def prefers(a: Candidate, b: Candidate, options: PairOptions) -> bool:
    """Whether a is strictly better than b under the tolerances."""
    if a.acc > b.acc + options.acc_tolerance + 1e-12:
        return True
    if abs(a.acc - b.acc) <= options.acc_tolerance + 1e-12:
        return a.cost < b.cost - options.cost_tolerance * max(a.cost, b.cost) - 1e-12
    return False


def candidates_from_rows(rows: Iterable[dict]) -> dict[str, list[Candidate]]:
    """Group rollout rows (problem_id, lambda, correct, n_tokens) into candidates per problem."""
    sums: dict[str, dict[float, list[float]]] = defaultdict(dict)
    for row in rows:
        acc = sums[row["problem_id"]].setdefault(float(row["lambda"]), [0.0, 0.0, 0])
        acc[0] += bool(row["correct"])
        acc[1] += row["n_tokens"]
        acc[2] += 1
    return {pid: [Candidate(lam, c / n, t / n) for lam, (c, t, n) in sorted(by_lam.items())]
            for pid, by_lam in sums.items()}


def pairs_for_problem(candidates: Sequence[Candidate],
                      options: PairOptions) -> list[tuple[Candidate, Candidate]]:
    """(chosen, rejected) for every strictly ordered couple, best-ranked first."""
    out = []
    for i, a in enumerate(candidates):
        for b in candidates[i + 1:]:
            if prefers(a, b, options):
                out.append((a, b))
            elif prefers(b, a, options):
                out.append((b, a))
    return out


def split_problems(problem_ids: Sequence[str], validation_fraction: float,
                   seed: int) -> tuple[list[str], list[str]]:
    """A seeded split of problems (not pairs) into train and validation."""
    check_value("validation_fraction", validation_fraction, PAIRS["validation_fraction"])
    ids = sorted(problem_ids)
    random.Random(seed).shuffle(ids)
    n_val = round(len(ids) * validation_fraction)
    if validation_fraction > 0 and len(ids) > 1:
        n_val = max(1, n_val)
    validation = set(ids[:n_val])
    return ([p for p in problem_ids if p not in validation],
            [p for p in problem_ids if p in validation])


def pair_rows(problem_id: str, question: str, prompt: str,
              pairs: Sequence[tuple[Candidate, Candidate]]) -> list[dict]:
    """Pair records with DESIGN §2's columns, TRL's prompt/chosen/rejected text included."""
    return [{"problem_id": problem_id, "question": question,
             "chosen_lambda": c.lam, "rejected_lambda": r.lam,
             "chosen_acc": c.acc, "rejected_acc": r.acc,
             "chosen_cost": c.cost, "rejected_cost": r.cost,
             "prompt": prompt, "chosen": lambda_text(c.lam), "rejected": lambda_text(r.lam)}
            for c, r in pairs]
