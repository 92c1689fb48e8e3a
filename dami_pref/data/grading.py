"""Grading final answers against gold answers with math-verify.

Completions may hold a thinking span (``<think>…</think>``); only the text after it counts as the
answer, and a span that never closes (a trace cut off mid-thinking) is wrong. Gold answers may
come in GSM8K form (``…#### 42``, the number after ``####``, commas dropped) or as any text
math-verify reads (MATH's ``\\boxed{}`` solutions, a bare ``42``).

math-verify extracts the answer itself, from the whole answer text: it understands ``\\$``,
``\\dfrac``, percentages, degrees, intervals, sets and several boxes (``x=\\boxed{2}`` or
``x=\\boxed{-3}`` is the set {2, -3}). When that reading does not match, the toolkit's own
reading gets a second try: the last ``\\boxed{}`` alone (a model that corrected itself), else
the whole text as one expression. An answer is right when either reading matches, so grading is
never worse than math-verify on its own (a committed table of 57 hand-graded cases pins this).
An answer that cannot be parsed is wrong; grading never raises.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from math_verify import parse, verify

from ..utils.answers import (THINK_CLOSE, THINK_OPEN, SplitCompletion, final_answer, last_boxed,
                             split_thinking)
from .problems import Problem

__all__ = ["THINK_OPEN", "THINK_CLOSE", "SplitCompletion", "split_thinking", "last_boxed",
           "final_answer", "gold_answer", "answers_match", "grade", "is_parsable", "Outcome",
           "is_malformed", "outcome_of_rollout",
           "grade_result"]


class Generated(Protocol):
    """What grading reads of a generation (``runtime.generation.GenerationResult``)."""

    completion: str
    answer: str
    finished: bool
    n_tokens: int
    think_tokens: int

def gold_answer(raw: str) -> str:
    """The final answer inside a gold field: after GSM8K's ``####``, or the last ``\\boxed{}``."""
    raw = str(raw)
    if "####" in raw:
        return raw.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = last_boxed(raw)
    return boxed.strip() if boxed is not None else raw.strip()


GRADING = {"library": "math-verify", "extraction": "math-verify's own (LaTeX and expressions) "
            "on the text after the thinking span, then the last \\boxed{} or the whole text",
            "gold": "GSM8K: the number after ####; otherwise math-verify's extraction",
            "unfinished": "wrong", "timeout_seconds": 5}


def grading_settings() -> dict:
    """How answers are graded, for results files."""
    from importlib.metadata import version

    return {**GRADING, "version": version("math-verify"),
            "thinking_tags": [THINK_OPEN, THINK_CLOSE]}


def _timeout() -> int | None:
    # math-verify times out with signals, which only work in the main thread.
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parse(text: str, timeout: int | None) -> list:
    try:
        return parse(text, parsing_timeout=timeout)
    except Exception:  # noqa: BLE001 - an unparsable text parses to nothing
        return []


def answer_readings(text: str) -> list[list]:
    """The ways an answer text can be read: math-verify's own extraction, then the toolkit's
    (the last box alone, else the whole text as one expression); empty readings left out."""
    if not text.strip():
        return []
    timeout = _timeout()
    readings = [_parse(text, timeout), _parse(_as_math(final_answer(text)), timeout)]
    return [r for r in readings if r]


def parse_answer(text: str) -> list:
    """The first reading of an answer text (empty when nothing can be read)."""
    readings = answer_readings(text)
    return readings[0] if readings else []


def parse_gold(raw: str) -> list:
    """The gold answer: GSM8K's number after ``####``, else what math-verify reads."""
    raw = str(raw)
    if "####" in raw:
        return _parse(_as_math(gold_answer(raw)), _timeout())
    return parse_answer(raw)


def answers_match(predicted: str, gold: str) -> bool:
    """True when math-verify finds the predicted answer text equal to the gold field."""
    if not predicted.strip():
        return False
    try:
        gold_parsed = parse_gold(gold)
        return bool(gold_parsed) and any(
            verify(gold_parsed, reading, timeout_seconds=_timeout())
            for reading in answer_readings(predicted))
    except Exception:  # noqa: BLE001 - an unparsable answer is wrong, whatever the parser hit
        return False


def _as_math(answer: str) -> str:
    # A bare answer such as "70" or "\frac{1}{2}" parses best inside math delimiters.
    answer = answer.strip()
    return answer if "$" in answer or "\\boxed" in answer else f"${answer}$"


def answer_text(completion: str) -> str | None:
    """The text a completion answers with: after its thinking span; None while the span is
    open (cut off mid-thinking)."""
    split = split_thinking(completion)
    return split.answer_text if split.span_closed else None


def grade(completion: str, gold_raw: str, finished: bool = True) -> bool:
    """Grade a whole completion (thinking span and all) against a gold field. ``finished``
    False (generation hit its token limit) is wrong whatever the text says: a Thinking model
    whose chat template opened the span writes no tag before it is cut off."""
    text = answer_text(completion)
    return bool(finished and text is not None and answers_match(text, gold_raw))


def is_parsable(answer: str) -> bool:
    """Whether anything can be read as an answer (used for malformed-output rates)."""
    return bool(parse_answer(answer)) if answer.strip() else False


@dataclass(frozen=True)
class Outcome:
    """One problem answered at one λ, graded."""

    id: str
    difficulty: int | str | None
    correct: bool
    n_tokens: int
    think_tokens: int
    finished: bool
    malformed: bool
    answer: str


def grade_result(problem: Problem, result: Generated) -> Outcome:
    """Grade a generation against its problem: unfinished or unparsable answers are wrong."""
    correct = grade(result.completion, problem.answer, result.finished)
    return Outcome(problem.id, problem.difficulty, correct, result.n_tokens,
                   result.think_tokens, result.finished,
                   is_malformed(result.completion, result.finished), result.answer)


def is_malformed(completion: str, finished: bool) -> bool:
    """An answer cut off, or without a final answer that parses."""
    text = answer_text(completion)
    return not finished or text is None or not is_parsable(text)


def outcome_of_rollout(problem: Problem, row: dict) -> Outcome:
    """A rollout table's row (graded when it was written) as the outcome of its problem."""
    return Outcome(problem.id, problem.difficulty, row["correct"], row["n_tokens"],
                   row["think_tokens"], row["finished"],
                   is_malformed(row["completion"], row["finished"]), row["answer"])
