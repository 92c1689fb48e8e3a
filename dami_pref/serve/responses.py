"""OpenAI-shaped response bodies, stream chunks and error bodies, as vLLM's server writes them.

The thinking span goes out as ``reasoning`` (vLLM's current field) and, for clients written
against older servers, as ``reasoning_content`` too. Completions return the raw text, thinking
included, as vLLM's completions endpoint does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from .streaming import split


@dataclass
class Answer:
    """One choice of a response: its generation result and how its λ was chosen."""

    result: object  # GenerationResult
    choice: dict  # the λ and why (the response's ``dami_pref`` field)
    prompt_tokens: int
    opened: bool = False  # the prompt opened the thinking span


def error_body(message: str, kind: str, param: str | None = None, code: int | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def usage(answers: Sequence[Answer]) -> dict:
    """Tokens of the whole response: each prompt once, every choice's completion."""
    prompts = {id(a.choice): a.prompt_tokens for a in answers}
    prompt_tokens = sum(prompts.values())
    completion = sum(a.result.n_tokens for a in answers)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": sum(a.result.think_tokens
                                                                  for a in answers)}}


def finish_reason(result) -> str:
    return "stop" if result.finished else "length"


def dami_field(answers: Sequence[Answer]) -> dict:
    """How λ was chosen: one record, or one per prompt where a completions request has several."""
    records = list({id(a.choice): a.choice for a in answers}.values())
    return records[0] if len(records) == 1 else {"choices": records}


FLOOR = -9999.0  # a log-probability of −inf, as vLLM's server writes it (JSON has no −inf)


class TokenText:
    """Token ids as the text OpenAI's ``logprobs`` name them by (each token decoded alone)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.known = tokenizer, {}

    def __call__(self, token: int) -> str:
        if token not in self.known:
            self.known[token] = self.tokenizer.decode([token])
        return self.known[token]


def chat_logprobs(records, text: TokenText) -> dict | None:
    """A chat choice's ``logprobs``: every generated token, with its ``top_logprobs``."""
    if records is None:
        return None

    def entry(token: int, logprob: float) -> dict:
        piece = text(token)
        return {"token": piece, "logprob": max(logprob, FLOOR),
                "bytes": list(piece.encode("utf-8", errors="replace"))}

    return {"content": [{**entry(r.token, r.logprob),
                         "top_logprobs": [entry(t, lp) for t, lp in r.top]} for r in records]}


def completion_logprobs(records, text: TokenText, offset: int = 0) -> dict | None:
    """A completion choice's ``logprobs``, in the legacy completions layout."""
    if records is None:
        return None
    tokens = [text(r.token) for r in records]
    offsets = [offset + sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    return {"tokens": tokens, "token_logprobs": [max(r.logprob, FLOOR) for r in records],
            "top_logprobs": [{text(t): max(lp, FLOOR) for t, lp in ((r.token, r.logprob), *r.top)}
                             for r in records],  # the chosen token and the top ones, as OpenAI
            "text_offset": offsets}


def chat_body(model: str, answers: Sequence[Answer], text: TokenText) -> dict:
    choices = []
    for index, answer in enumerate(answers):
        reasoning, content = split(answer.result.completion, answer.opened)
        choices.append({"index": index, "finish_reason": finish_reason(answer.result),
                        "logprobs": chat_logprobs(answer.result.logprobs, text),
                        "message": {"role": "assistant", "content": content,
                                    "reasoning": reasoning, "reasoning_content": reasoning}})
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model, "choices": choices,
            "usage": usage(answers), "dami_pref": dami_field(answers)}


def completion_body(model: str, answers: Sequence[Answer], echoed: Sequence[str],
                    text: TokenText) -> dict:
    choices = [{"index": index, "text": echo + answer.result.completion,
                "logprobs": completion_logprobs(answer.result.logprobs, text, len(echo)),
                "finish_reason": finish_reason(answer.result)}
               for index, (answer, echo) in enumerate(zip(answers, echoed))]
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": model, "choices": choices,
            "usage": usage(answers), "dami_pref": dami_field(answers)}


class Chunks:
    """The server-sent events of one streamed response (chat or completions)."""

    def __init__(self, model: str, chat: bool) -> None:
        self.chat = chat
        self.base = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                     "object": "chat.completion.chunk" if chat else "text_completion",
                     "created": int(time.time()), "model": model}

    def event(self, index: int, delta: dict | None = None, text: str | None = None,
              finish: str | None = None, logprobs: dict | None = None, **extra) -> str:
        if self.chat:
            choice = {"index": index, "delta": delta or {}, "logprobs": logprobs,
                      "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": logprobs,
                      "finish_reason": finish}
        return sse({**self.base, "choices": [choice], **extra})

    def text(self, index: int, reasoning: str, content: str) -> list[str]:
        """The events of new text of one choice (none for nothing new)."""
        if not self.chat:
            return [self.event(index, text=content)] if content else []
        events = []
        if reasoning:
            events.append(self.event(index, {"reasoning": reasoning,
                                             "reasoning_content": reasoning}))
        if content:
            events.append(self.event(index, {"content": content}))
        return events

    def usage(self, answers: Sequence[Answer]) -> str:
        return sse({**self.base, "choices": [], "usage": usage(answers)})


def sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


DONE = "data: [DONE]\n\n"
