"""Grading final answers against gold answers with math-verify.

Completions may hold a thinking span (``<think>…</think>``); only the text after it counts as the
answer. Gold answers may come in GSM8K form (``…#### 42``) or MATH form (``…\\boxed{42}``). An
answer that cannot be parsed is wrong; grading never raises.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from math_verify import parse, verify

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class SplitCompletion:
    """A completion cut into its thinking span and the answer text after it."""

    thinking: str | None  # text inside the span, None when the completion has no span
    answer_text: str  # what follows the span ("" while the span is still open)
    span_closed: bool  # False when a span was opened and never closed


def split_thinking(completion: str, open_tag: str = THINK_OPEN,
                   close_tag: str = THINK_CLOSE) -> SplitCompletion:
    """Separate the thinking span from the answer.

    A closing tag without an opening one counts as a span starting at the beginning, which is
    what Thinking models whose chat template already opened the span produce.
    """
    close_at = completion.rfind(close_tag)
    if close_at >= 0:
        open_at = completion.find(open_tag)
        start = open_at + len(open_tag) if 0 <= open_at < close_at else 0
        return SplitCompletion(completion[start:close_at],
                               completion[close_at + len(close_tag):].strip(), True)
    open_at = completion.find(open_tag)
    if open_at >= 0:
        return SplitCompletion(completion[open_at + len(open_tag):], "", False)
    return SplitCompletion(None, completion.strip(), True)


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{…}`` (balanced braces), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def gold_answer(raw: str) -> str:
    """The final answer inside a gold field: after GSM8K's ``####``, or the last ``\\boxed{}``."""
    raw = str(raw)
    if "####" in raw:
        return raw.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = last_boxed(raw)
    return boxed.strip() if boxed is not None else raw.strip()


def final_answer(answer_text: str) -> str:
    """The answer a completion commits to: its last ``\\boxed{}`` if any, else the answer text."""
    boxed = last_boxed(answer_text)
    return boxed.strip() if boxed is not None else answer_text.strip()


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
