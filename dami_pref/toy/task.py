"""The toy task the bundled pair was trained on: sums of k integers of one size tier.

A question is ``12+7+19`` (no spaces); the answer is the decimal sum. Each question draws k from
2..8 and one operand tier (single digits 0-9, or 10-29), so its difficulty grows along visible
axes: the number of operands, their size, and how many steps carry.

Completion styles (each ends with the sum after the thinking span):
  direct    ``38``
  worked    ``<think>12+7=19;19+19=38,38-19=19</think>38``: running partial sums; a step whose
            units carry (9+9) is checked by subtracting back (``,38-19=19``).
  verified  the worked trace, then ``|`` and the same steps again (a verification pass), then
            the sum: what the Thinking model writes. The base verifies only when the question
            asks for it (``12+7+19?``), which test questions never do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

MIN_OPERANDS = 2
MAX_OPERANDS = 8
# Operand tiers, half-open ranges: one is drawn per question.
TIERS: tuple[tuple[int, int], ...] = ((0, 10), (10, 30))
VERIFY_MARK = "|"
# A question ending in this asks for a verified solution. Only the base's pretraining uses it:
# the base learns how to verify without learning to do it unasked.
VERIFY_REQUEST = "?"


def question_text(operands: Sequence[int]) -> str:
    """Render operands as the question string, e.g. ``12+7+19``."""
    return "+".join(str(x) for x in operands)


def parse_question(question: str) -> list[int]:
    """Operands of a toy question; raises ValueError on anything else."""
    parts = question.strip().split("+")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a toy question (digits joined by '+'): {question!r}")
    return [int(p) for p in parts]


def has_carry(total: int, operand: int) -> bool:
    """Whether adding ``operand`` to the running ``total`` carries in the units."""
    return total % 10 + operand % 10 >= 10


def worked_steps(operands: Sequence[int]) -> str:
    """Running partial sums, each carrying step checked: ``12+7=19;19+19=38,38-19=19``."""
    steps, total = [], operands[0]
    for x in operands[1:]:
        step = f"{total}+{x}={total + x}"
        if has_carry(total, x):
            step += f",{total + x}-{x}={total}"
        steps.append(step)
        total += x
    return ";".join(steps)


def verified_steps(operands: Sequence[int]) -> str:
    """The worked steps, then a verification pass that writes them again."""
    return f"{worked_steps(operands)}{VERIFY_MARK}{worked_steps(operands)}"


def direct_completion(operands: Sequence[int]) -> str:
    """What an Instruct model answers: the sum alone."""
    return str(sum(operands))


def thinking_completion(operands: Sequence[int], verify: bool = False,
                        think_open: str = "<think>", think_close: str = "</think>") -> str:
    """A worked (or verified) solution inside the thinking span, then the sum."""
    body = verified_steps(operands) if verify else worked_steps(operands)
    return f"{think_open}{body}{think_close}{sum(operands)}"


def tier_of(operands: Sequence[int], tiers: Sequence[tuple[int, int]] = TIERS) -> int:
    """Index of the tier all operands fall in (the last tier when they span several)."""
    for index, (low, high) in enumerate(tiers):
        if all(low <= x < high for x in operands):
            return index
    return len(tiers) - 1


def random_operands(rng: random.Random, k: int, tier: tuple[int, int]) -> list[int]:
    return [rng.randrange(*tier) for _ in range(k)]


def draw_operands(rng: random.Random, tiers: Sequence[tuple[int, int]] = TIERS) -> list[int]:
    """The task's distribution: k uniform over 2..8, one tier uniform, operands uniform."""
    k = rng.randint(MIN_OPERANDS, MAX_OPERANDS)
    return random_operands(rng, k, rng.choice(list(tiers)))


def difficulty(operands: Sequence[int]) -> int:
    """The difficulty level: how many digits there are to add (grows with k and size)."""
    return sum(len(str(x)) for x in operands)


def question_features(question: str) -> list[float]:
    """What a question shows about its difficulty (for predictability studies)."""
    operands = parse_question(question)
    total, carries, crossings = 0, 0, 0
    for x in operands:
        carries += int(has_carry(total, x))
        crossings += int(total // 100 != (total + x) // 100)
        total += x
    digits = [len(str(x)) for x in operands]
    return [len(operands), total, max(operands), min(operands), carries, crossings,
            sum(digits), max(digits), len(str(total)), total / len(operands)]


FEATURE_NAMES = ["k", "sum", "largest", "smallest", "carries", "crossings of 100",
                 "operand digits", "largest digits", "sum digits", "mean operand"]


def make_row(split: str, index: int, operands: Sequence[int]) -> dict:
    """One problem row in the project's problem format (DESIGN §2) plus ``difficulty``."""
    return {"id": f"toy-{split}-{index:05d}", "question": question_text(operands),
            "answer": str(sum(operands)), "difficulty": difficulty(operands)}


def generate_splits(seed: int = 0, n_train: int = 1500, n_validation: int = 500,
                    n_test_per_cell: int = 50,
                    tiers: Sequence[tuple[int, int]] = TIERS) -> dict[str, list[dict]]:
    """Disjoint train / validation / test problem sets from one seeded stream.

    Test is stratified: ``n_test_per_cell`` questions for each (k, tier), shuffled. Train and
    validation follow the task's distribution. No question appears in two splits, so a ranker
    trained on train is never scored on a question it saw.
    """
    rng = random.Random(seed)
    seen: set[str] = set()

    def distinct(draw) -> list[int]:
        for _ in range(10_000):
            operands = draw()
            if question_text(operands) not in seen:
                seen.add(question_text(operands))
                return operands
        raise ValueError("cannot draw enough distinct toy problems; ask for fewer")

    cells = [(k, tier) for k in range(MIN_OPERANDS, MAX_OPERANDS + 1) for tier in tiers]
    test = [distinct(lambda c=cell: random_operands(rng, *c))
            for cell in cells for _ in range(n_test_per_cell)]
    rng.shuffle(test)
    splits = {"test": test,
              "validation": [distinct(lambda: draw_operands(rng, tiers))
                             for _ in range(n_validation)],
              "train": [distinct(lambda: draw_operands(rng, tiers)) for _ in range(n_train)]}
    return {name: [make_row(name, i, ops) for i, ops in enumerate(rows)]
            for name, rows in splits.items()}
