"""Token-level helpers shared by generation, confidence passes and the ranker."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

from ..errors import DamiPrefError


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch id lists with left padding, so every prompt ends at the same column."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids, mask


def end_token_ids(model, tokenizer) -> set[int]:
    """The ids that end a generation: the model's generation config first, then the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    if not ids:
        raise DamiPrefError("the model defines no end-of-sequence token; set eos_token_id in its "
                            "generation_config.json or tokenizer")
    return ids


def token_id(tokenizer, token: str) -> int | None:
    """The id of a single vocabulary token, or None when the vocabulary lacks it."""
    ids = tokenizer.convert_tokens_to_ids([token])
    tid = ids[0] if ids else None
    return tid if tid is not None and tid != tokenizer.unk_token_id else None


def check_prompts(questions, encoded: list[list[int]], tokenizer, context: int | None,
                  max_new_tokens: int) -> None:
    """Refuse a prompt that cannot fit the model's context with its answer (RoPE models would
    otherwise decode past their trained positions into silently wrong answers), and warn once
    about questions that are mostly unknown tokens (written in a script the tokenizer lacks)."""
    import warnings

    unk = getattr(tokenizer, "unk_token_id", None)
    unknown = []
    for question, ids in zip(questions, encoded):
        if context and len(ids) + max_new_tokens > context:
            raise DamiPrefError(
                f"the question {shorten(question)!r} is {len(ids)} prompt tokens; with "
                f"max_new_tokens {max_new_tokens} that exceeds the model's context of {context} "
                f"positions: shorten the question or lower --max_new_tokens")
        if unk is not None and ids and sum(t == unk for t in ids) > len(ids) / 2:
            unknown.append(question)
    if unknown:
        warnings.warn(f"{len(unknown)} question(s) are mostly tokens the tokenizer does not know "
                      f"(first: {shorten(unknown[0])!r}); their answers will be meaningless",
                      stacklevel=3)


def shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


_LONGEST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
PROBE = 8  # characters per token of the prefix tokenized to prove a text too long


def longest_token_chars(tokenizer) -> int:
    """The most characters of text one token can stand for: its vocabulary entry's length (a
    byte-level piece spells each byte with one character, a sentencepiece piece each character
    with one), so a text of ``n`` characters is at least ``n / longest`` tokens."""
    try:
        return _LONGEST[tokenizer]
    except (KeyError, TypeError):
        pass
    longest = max((len(piece) for piece in tokenizer.get_vocab()), default=1)
    try:
        _LONGEST[tokenizer] = longest
    except TypeError:  # a tokenizer that cannot be weakly referenced: computed each time
        pass
    return longest


def refuse_overlong(labels: Sequence[str], texts: Sequence[str], tokenizer, context: int | None,
                    max_new_tokens: int) -> None:
    """Refuse, before tokenizing it whole, a text that cannot fit the context with its answer:
    at once when it has more characters than ``room`` tokens can hold, else when a prefix of
    ``PROBE`` characters per token of room is already more tokens than the room (so a huge
    input costs a bounded amount of tokenizing, never memory in proportion to its size)."""
    if not context:
        return
    room = max(context - max_new_tokens, 0)
    bound = room * longest_token_chars(tokenizer)
    for label, text in zip(labels, texts):
        if len(text) > bound:
            raise DamiPrefError(
                f"{label} is {len(text):,} characters, more than the {bound:,} that "
                f"{room:,} prompt tokens can hold (the model's context of {context:,} positions "
                f"less max_new_tokens {max_new_tokens:,}): shorten it or lower --max_new_tokens")
        if len(text) > PROBE * room:
            counted = len(tokenizer(text[:PROBE * room], add_special_tokens=False)["input_ids"])
            if counted > room + 1:
                raise DamiPrefError(
                    f"{label} is more than {room:,} prompt tokens (its first {PROBE * room:,} "
                    f"characters alone are {counted:,}), more than the model's context of "
                    f"{context:,} positions less max_new_tokens {max_new_tokens:,} can hold: "
                    "shorten it or lower --max_new_tokens")


def question_labels(questions: Sequence[str], labels: Sequence[str] | None = None) -> list[str]:
    """What an error calls each question: the caller's labels (a file and row), else its
    position and its start."""
    if labels is not None:
        return list(labels)
    return [f"question {i + 1} ({shorten(q)!r})" for i, q in enumerate(questions)]
