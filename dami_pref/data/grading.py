"""Grading final answers against gold answers with math-verify.

Completions may hold a thinking span (``<think>…</think>``); only the text after it counts as the
answer. Gold answers may come in GSM8K form (``…#### 42``) or MATH form (``…\\boxed{42}``). An
answer that cannot be parsed is wrong; grading never raises.
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
           "grade_result"]


class Generated(Protocol):
    """What grading reads of a generation (``runtime.generation.GenerationResult``)."""

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


def _timeout() -> int | None:
    # math-verify times out with signals, which only work in the main thread.
    return 5 if threading.current_thread() is threading.main_thread() else None


def answers_match(predicted: str, gold: str) -> bool:
    """True when math-verify finds the predicted answer equal to the gold one; never raises."""
    if not predicted.strip():
        return False
    try:
        timeout = _timeout()
        gold_parsed = parse(_as_math(gold), parsing_timeout=timeout)
        pred_parsed = parse(_as_math(predicted), parsing_timeout=timeout)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - an unparsable answer is wrong, whatever the parser hit
        return False


def _as_math(answer: str) -> str:
    # A bare answer such as "70" or "\frac{1}{2}" parses best inside math delimiters.
    answer = answer.strip()
    return answer if "$" in answer or "\\boxed" in answer else f"${answer}$"


def grade(completion: str, gold_raw: str) -> bool:
    """Grade a whole completion (thinking span and all) against a gold field."""
    split = split_thinking(completion)
    if not split.span_closed:
        return False
    return answers_match(final_answer(split.answer_text), gold_answer(gold_raw))


def is_parsable(answer: str) -> bool:
    """Whether math-verify extracts anything from an answer (used for malformed-output rates)."""
    if not answer.strip():
        return False
    try:
        return bool(parse(_as_math(answer), parsing_timeout=_timeout()))
    except Exception:  # noqa: BLE001
        return False


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
    correct = result.finished and answers_match(result.answer, gold_answer(problem.answer))
    malformed = not result.finished or not is_parsable(result.answer)
    return Outcome(problem.id, problem.difficulty, correct, result.n_tokens,
                   result.think_tokens, result.finished, malformed, result.answer)
