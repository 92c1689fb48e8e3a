""""Accuracy first, cost second": the one ordering of candidate λ values the toolkit uses.

The sweep's oracle, the preference pairs, the best static λ and the oracle baseline all rank
candidates this way, so they agree on what "better" means. Difficulty levels sort here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    lam: float
    acc: float  # mean correctness over samples (or problems)
    cost: float  # mean generated tokens


def better_first(c: Candidate) -> tuple[float, float, float]:
    """Sort key: higher accuracy, then lower cost, then lower λ (the cheaper model)."""
    return (-c.acc, c.cost, c.lam)


def oracle(candidates: Sequence[Candidate]) -> Candidate:
    """λ*(q): the cheapest candidate among those with the best accuracy."""
    if not candidates:
        raise ValueError("oracle of no candidates")
    return min(candidates, key=better_first)


def difficulty_key(level) -> tuple[int, float, str]:
    """Sort key of difficulty levels: numbers numerically, then any other label by name."""
    text = str(level)
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
