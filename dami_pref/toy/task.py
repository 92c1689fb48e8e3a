"""The toy task the bundled pair was trained on: sums of 2 to 10 integers from 0 to 29.

A question is ``12+7+19`` (no spaces); the answer is the decimal sum. Each question draws k,
then a share of two-digit operands, then each operand on its own, so one- and two-digit operands
mix within a question. Its difficulty grows along visible axes: the number of operands, their
size, and how many steps carry.

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
MAX_OPERANDS = 10
# Operand sizes, half-open ranges; the operand range is 0-29.
ONE_DIGIT = (0, 10)
TWO_DIGIT = (10, 30)
# A question's share of two-digit operands is drawn from these, then each operand on its own.
LARGE_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
# P(k) ∝ k^-K_DECAY.
K_DECAY = 1.0
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


def large_share(operands: Sequence[int]) -> float:
    """Share of the question's operands that are two-digit (at least ``TWO_DIGIT[0]``)."""
    return sum(x >= TWO_DIGIT[0] for x in operands) / len(operands)


def k_weights(decay: float | None = None) -> list[float]:
    """P(k) ∝ k^-decay over MIN_OPERANDS..MAX_OPERANDS: short sums are commoner, as they are
    in what people type, and every length up to the longest is still drawn."""
    decay = K_DECAY if decay is None else decay
    raw = [k ** -decay for k in range(MIN_OPERANDS, MAX_OPERANDS + 1)]
    return [w / sum(raw) for w in raw]


def mixed_operands(rng: random.Random, k: int, share: float) -> list[int]:
    """k operands, each two-digit with probability ``share``, else one-digit."""
    return [rng.randrange(*(TWO_DIGIT if rng.random() < share else ONE_DIGIT))
            for _ in range(k)]


def draw_operands(rng: random.Random, k_decay: float | None = None) -> list[int]:
    """The task's distribution: k by ``k_weights``, a two-digit share uniform over
    ``LARGE_SHARES`` (so pure one-digit and pure two-digit questions stay common), then each
    operand drawn on its own."""
    k = rng.choices(range(MIN_OPERANDS, MAX_OPERANDS + 1), weights=k_weights(k_decay))[0]
    return mixed_operands(rng, k, rng.choice(LARGE_SHARES))


def uniform_operands(rng: random.Random) -> list[int]:
    """A draw over the stated ranges with nothing weighted: k uniform, every operand uniform
    over the operand range (a held-out check of robustness, not the task's distribution)."""
    k = rng.randint(MIN_OPERANDS, MAX_OPERANDS)
    return [rng.randrange(ONE_DIGIT[0], TWO_DIGIT[1]) for _ in range(k)]


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


def allocate_test_cells(n_test: int,
                        k_decay: float | None = None) -> dict[tuple[int, float], int]:
    """Test questions per (k, two-digit share) cell, in proportion to the task's distribution
    (largest remainders), so the test set has every cell and the task's mix."""
    cells = [(k, share) for k in range(MIN_OPERANDS, MAX_OPERANDS + 1) for share in LARGE_SHARES]
    by_k = k_weights(k_decay)
    weight = {cell: by_k[cell[0] - MIN_OPERANDS] / len(LARGE_SHARES) for cell in cells}
    counts = {cell: int(n_test * weight[cell]) for cell in cells}
    by_remainder = sorted(cells, key=lambda c: n_test * weight[c] - counts[c], reverse=True)
    for cell in by_remainder[:n_test - sum(counts.values())]:
        counts[cell] += 1
    return counts


def generate_splits(seed: int = 0, n_train: int = 1500, n_validation: int = 500,
                    n_test: int = 900, k_decay: float | None = None) -> dict[str, list[dict]]:
    """Disjoint train / validation / test problem sets from one seeded stream.

    Test is stratified by (k, share of two-digit operands) in the task's proportions, and drawn
    first, then shuffled. Train and validation follow the task's distribution. No question
    appears in two splits, so a ranker trained on train is never scored on a question it saw.
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

    test = [distinct(lambda c=cell: mixed_operands(rng, *c))
            for cell, count in allocate_test_cells(n_test, k_decay).items() for _ in range(count)]
    rng.shuffle(test)
    splits = {"test": test,
              "validation": [distinct(lambda: draw_operands(rng, k_decay))
                             for _ in range(n_validation)],
              "train": [distinct(lambda: draw_operands(rng, k_decay)) for _ in range(n_train)]}
    return {name: [make_row(name, i, ops) for i, ops in enumerate(rows)]
            for name, rows in splits.items()}
