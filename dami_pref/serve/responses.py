"""OpenAI-shaped response bodies (and error bodies) from a generation result."""

from __future__ import annotations

import json
import time
import uuid

from ..utils.answers import split_thinking


def error_body(message: str, kind: str, param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def split(result) -> tuple[str | None, str]:
    """(reasoning_content, content): the thinking span beside the answer, as vLLM's reasoning
    parsers give them."""
    parts = split_thinking(result.completion)
    if parts.thinking is None:
        return None, result.completion.strip()
    return parts.thinking.strip(), parts.answer_text.strip()


def usage(prompt_tokens: int, result) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": result.n_tokens,
            "total_tokens": prompt_tokens + result.n_tokens,
            "completion_tokens_details": {"reasoning_tokens": result.think_tokens}}


def finish_reason(result) -> str:
    return "stop" if result.finished else "length"


def chat_body(model: str, result, prompt_tokens: int, choice: dict) -> dict:
    reasoning, content = split(result)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": finish_reason(result),
                         "message": {"role": "assistant", "content": content,
                                     "reasoning_content": reasoning}}],
            "usage": usage(prompt_tokens, result), "dami_pref": choice}


def completion_body(model: str, result, prompt_tokens: int, choice: dict) -> dict:
    reasoning, content = split(result)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": content, "reasoning_content": reasoning,
                         "finish_reason": finish_reason(result), "logprobs": None}],
            "usage": usage(prompt_tokens, result), "dami_pref": choice}


def chat_stream(model: str, result, prompt_tokens: int, choice: dict, include_usage: bool):
    """Server-sent events of a finished answer: role, reasoning, content, finish, [usage]."""
    reasoning, content = split(result)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    deltas = [{"role": "assistant", "content": ""}]
    if reasoning:
        deltas.append({"reasoning_content": reasoning})
    deltas.append({"content": content})
    for delta in deltas:
        yield sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    yield sse({**base, "choices": [{"index": 0, "delta": {},
                                    "finish_reason": finish_reason(result)}],
               "dami_pref": choice})
    if include_usage:
        yield sse({**base, "choices": [], "usage": usage(prompt_tokens, result)})
    yield "data: [DONE]\n\n"


def sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
