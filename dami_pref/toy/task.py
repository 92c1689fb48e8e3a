"""The toy task the bundled pair was trained on: sums of k small integers.

A question is ``47+8+15`` (no spaces); the answer is the decimal sum; its difficulty is k, the
number of operands. Direct answers get harder quickly with k while the Thinking model's running
partial sums stay easy, so the cheapest λ that answers correctly varies between problems, which
is what DAMI needs in order to matter.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

MIN_OPERANDS = 2
MAX_OPERANDS = 8
# Operands are drawn from [0, OPERAND_LIMIT). Single digits make direct answers almost always
# right and full two-digit operands almost always wrong; this limit sits between (see README).
OPERAND_LIMIT = 20


def question_text(operands: Sequence[int]) -> str:
    """Render operands as the question string, e.g. ``47+8+15``."""
    return "+".join(str(x) for x in operands)


def parse_question(question: str) -> list[int]:
    """Operands of a toy question; raises ValueError on anything else."""
    parts = question.strip().split("+")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a toy question (digits joined by '+'): {question!r}")
    return [int(p) for p in parts]


def running_sums(operands: Sequence[int]) -> str:
    """The Thinking model's working: one partial sum per step, e.g. ``47+8=55;55+15=70``."""
    steps, total = [], operands[0]
    for x in operands[1:]:
        steps.append(f"{total}+{x}={total + x}")
        total += x
    return ";".join(steps)


def direct_completion(operands: Sequence[int]) -> str:
    """What an Instruct model answers: the sum alone."""
    return str(sum(operands))


def thinking_completion(operands: Sequence[int], think_open: str = "<think>",
                        think_close: str = "</think>") -> str:
    """What a Thinking model answers: its working inside the thinking span, then the sum."""
    return f"{think_open}{running_sums(operands)}{think_close}{sum(operands)}"


def random_operands(rng: random.Random, k: int, limit: int = OPERAND_LIMIT) -> list[int]:
    return [rng.randrange(limit) for _ in range(k)]


def make_row(split: str, index: int, operands: Sequence[int]) -> dict:
    """One problem row in the project's problem format (DESIGN §2) plus ``difficulty``."""
    return {
        "id": f"toy-{split}-{index:05d}",
        "question": question_text(operands),
        "answer": str(sum(operands)),
        "difficulty": len(operands),
    }


def generate_splits(
    seed: int = 0,
    n_train: int = 2000,
    n_validation: int = 350,
    n_test_per_k: int = 100,
    ks: Iterable[int] = range(MIN_OPERANDS, MAX_OPERANDS + 1),
    limit: int = OPERAND_LIMIT,
) -> dict[str, list[dict]]:
    """Disjoint train / validation / test problem sets; test is balanced over k.

    Train and validation draw k uniformly. No question appears in two splits, so a ranker
    trained on train is never scored on a question it saw.
    """
    ks = list(ks)
    rng = random.Random(seed)
    seen: set[str] = set()

    def draw(k: int) -> list[int]:
        for _ in range(10_000):
            ops = random_operands(rng, k, limit)
            q = question_text(ops)
            if q not in seen:
                seen.add(q)
                return ops
        raise ValueError(f"cannot draw enough distinct problems with k={k}, limit={limit}")

    splits: dict[str, list[dict]] = {"test": [], "validation": [], "train": []}
    test_ops = [draw(k) for k in ks for _ in range(n_test_per_k)]
    rng.shuffle(test_ops)
    splits["test"] = [make_row("test", i, ops) for i, ops in enumerate(test_ops)]
    splits["validation"] = [make_row("validation", i, draw(rng.choice(ks)))
                            for i in range(n_validation)]
    splits["train"] = [make_row("train", i, draw(rng.choice(ks))) for i in range(n_train)]
    return splits
