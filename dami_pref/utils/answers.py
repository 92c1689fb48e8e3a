"""Reading a completion: its thinking span, and the answer it commits to (no grading here).

Completions may hold a thinking span (``<think>…</think>``); only the text after it is the
answer. Generation, grading and reports all cut completions this way.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def final_answer(answer_text: str) -> str:
    """The answer a completion commits to: its last ``\\boxed{}`` if any, else the answer text."""
    boxed = last_boxed(answer_text)
    return boxed.strip() if boxed is not None else answer_text.strip()
