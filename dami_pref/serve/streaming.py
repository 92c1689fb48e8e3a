"""Token-by-token streaming: token ids in, text deltas out, the thinking span apart.

Text is decoded incrementally as vLLM's detokenizer does it (a short window of tokens decoded
twice, so a character split over tokens is sent whole), text that may be the start of a stop
string is held back until it is known not to be one, and the thinking span goes out as
``reasoning`` deltas (vLLM's reasoning parsers' field) while the rest goes out as ``content``.
What a stream sends, concatenated, is what the same request answers unstreamed: the finished
result has the last word.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..utils.answers import THINK_CLOSE, THINK_OPEN, split_thinking

INCOMPLETE = "\ufffd"  # what a tokenizer decodes half a character to


class IncrementalText:
    """Decoded text of a growing list of token ids, without decoding the whole list each time."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.tokens, self.text = tokenizer, [], ""
        self.prefix_at = self.read_at = 0

    def add(self, ids: Sequence[int]) -> str:
        """Append tokens; returns the text they complete (maybe "", while a character is split)."""
        self.tokens += ids
        decode = lambda part: self.tokenizer.decode(part, skip_special_tokens=True)  # noqa: E731
        before = decode(self.tokens[self.prefix_at:self.read_at])
        after = decode(self.tokens[self.prefix_at:])
        if len(after) <= len(before) or after.endswith(INCOMPLETE):
            return ""
        new = after[len(before):]
        self.prefix_at, self.read_at = self.read_at, len(self.tokens)
        self.text += new
        return new


def held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` might begin a stop string or a thinking tag."""
    longest = 0
    for marker in (*stops, THINK_OPEN, THINK_CLOSE):
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:size]):
                longest = size
                break
    return longest


class ChoiceStream:
    """One choice of a streamed answer: feed token ids, get (reasoning, content) deltas."""

    def __init__(self, tokenizer, stops: Sequence[str] = (), split_reasoning: bool = True,
                 opened: bool = False) -> None:
        self.text = IncrementalText(tokenizer)
        self.stops, self.split_reasoning, self.opened = tuple(stops), split_reasoning, opened
        self.sent_reasoning = self.sent_content = ""
        self.stopped = False

    def feed(self, ids: Sequence[int]) -> tuple[str, str]:
        if self.stopped:
            return "", ""
        self.text.add(ids)
        text = self.text.text
        found = [text.find(s) for s in self.stops if s in text]
        if found:
            self.stopped, text = True, text[:min(found)]
        else:
            text = text[:len(text) - held_back(text, self.stops)]
        return self._deltas(text)

    def finish(self, completion: str) -> tuple[str, str]:
        """The rest of the answer, from the finished result's text (the authority)."""
        self.stopped = True
        return self._deltas(completion)

    def _deltas(self, text: str) -> tuple[str, str]:
        reasoning, content = split(text, self.opened) if self.split_reasoning else (None, text)
        return self._advance("sent_reasoning", reasoning or ""), \
            self._advance("sent_content", content)

    def _advance(self, name: str, whole: str) -> str:
        sent = getattr(self, name)
        if not whole.startswith(sent) or whole == sent:
            return ""
        setattr(self, name, whole)
        return whole[len(sent):]


def split(text: str, opened: bool = False) -> tuple[str | None, str]:
    """(reasoning, content) of a completion, as vLLM's reasoning parsers give them; ``opened``:
    the prompt already opened the thinking span (Qwen3 Thinking's chat template does), so the
    completion starts inside it."""
    parts = split_thinking(THINK_OPEN + text if opened and THINK_OPEN not in text else text)
    if parts.thinking is None:
        return None, text.strip()
    return parts.thinking.strip(), parts.answer_text.strip()


def opens_thinking(tokenizer, prompt: Sequence[int]) -> bool:
    """Whether a rendered prompt ends inside an open thinking span."""
    return tokenizer.decode(list(prompt[-4:])).rstrip().endswith(THINK_OPEN)
