"""The request bodies of OpenAI's chat and completions endpoints as common clients send them (the
openai SDK, LangChain, LiteLLM), plus ``lambda`` and ``cost_weight``.

Every field OpenAI documents is either honoured, accepted and ignored (``user``, ``metadata``,
``store``, ``service_tier``, ``parallel_tool_calls``, ``tools`` with ``tool_choice="none"``), or
refused with a 400 that says why (``what_is_refused``). A field nobody documents stays a 400, as
OpenAI's API answers, so a typo is never silently ignored. Types are strict (a boolean is not a
number, ``1e999`` and NaN are not numbers) and every offending field is named at once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MODEL = "dami-pref"  # the ranker chooses λ; "dami-pref@0.3" fixes it
LONG = 2 ** 63  # seeds are signed 64-bit integers, as in vLLM's server

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True)]


def encodable(text: str, where: str) -> str:
    """Text the tokenizer can read: a lone surrogate (``"\\ud800"``) is not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{where} holds text that is not valid Unicode "
                         f"({err.object[err.start:err.end]!r} at {err.start})") from None
    return text


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool | None = Field(default=None, strict=True)
    continuous_usage_stats: bool | None = Field(default=None, strict=True)


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str = MODEL
    max_tokens: Count | None = Field(default=None, ge=1)
    temperature: Number | None = Field(default=None, ge=0, le=2)
    top_p: Number | None = Field(default=None, gt=0, le=1)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    seed: Count | None = Field(default=None, ge=-LONG, lt=LONG)
    n: Count = Field(default=1, ge=1, le=128)
    stop: str | list[str] | None = None
    presence_penalty: Number = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: Number = Field(default=0.0, ge=-2, le=2)
    logit_bias: dict[str, Number] | None = None
    user: str | None = None  # accepted, ignored
    cost_weight: Number | None = None  # β of argmax r − β·ĉ; default: the validation-chosen β
    lambda_: Number | None = Field(default=None, alias="lambda", ge=0, le=1)

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, bias):
        """Token ids as decimal strings; amounts clamped to [−100, 100] (OpenAI's range), as
        vLLM's server does."""
        if bias is None:
            return None
        wrong = [key for key in bias if not key.isdecimal()]
        if wrong:
            raise ValueError(f"keys must be token ids, got {wrong[:3]}")
        return {key: min(100.0, max(-100.0, amount)) for key, amount in bias.items()}

    def bias(self) -> tuple[tuple[int, float], ...]:
        return tuple((int(key), amount) for key, amount in (self.logit_bias or {}).items())

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop):
        stops = [stop] if isinstance(stop, str) else stop or []
        if any(not s for s in stops):
            raise ValueError("a stop sequence may not be empty")
        return stop

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    reasoning: str | None = None  # an assistant turn's thinking, as the server returned it
    reasoning_content: str | None = None

    def text(self) -> str:
        """The message's text: a string, or its text parts joined (as vLLM's server does)."""
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Count | None = Field(default=None, ge=1)
    logprobs: bool = Field(default=False, strict=True)
    top_logprobs: Count | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    parallel_tool_calls: bool | None = None  # accepted, ignored
    metadata: dict[str, str] | None = None  # accepted, ignored
    store: bool | None = None  # accepted, ignored
    service_tier: str | None = None  # accepted, ignored

    @field_validator("messages")
    @classmethod
    def _messages(cls, messages: list[ChatMessage]):
        for i, message in enumerate(messages):
            encodable(message.text(), f"messages[{i}].content")
        if not any(m.role == "user" and m.text() for m in messages):
            raise ValueError("no user message with content")
        return messages

    def conversation(self) -> list[dict]:
        """The turns as a chat template reads them (``developer`` is OpenAI's new name for
        ``system``)."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in self.messages]

    def question(self) -> str:
        """The last user message: what the ranker reads (it was trained on single questions)."""
        return [m.text() for m in self.messages if m.role == "user" and m.text()][-1]

    def logprobs_wanted(self) -> int | None:
        """How many alternatives per token the answer's ``logprobs`` list; None: no logprobs."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def refused(self) -> list[str]:
        problems = []
        if self.tools and self.tool_choice not in (None, "none"):
            problems.append('tools: tool calling is not supported; send tool_choice "none" or '
                            "no tools")
        if self.top_logprobs and not self.logprobs:
            problems.append("top_logprobs: needs logprobs true")
        return problems


class CompletionRequest(_Request):
    prompt: str | list[str]
    echo: bool = Field(default=False, strict=True)
    best_of: Count | None = Field(default=None, ge=1)
    logprobs: Count | None = Field(default=None, ge=0, le=5)
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, prompt):
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not prompts or not all(prompts):
            raise ValueError("a prompt may not be empty")
        for i, text in enumerate(prompts):
            encodable(text, f"prompt[{i}]")
        return prompt

    def logprobs_wanted(self) -> int | None:
        return self.logprobs

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def refused(self) -> list[str]:
        problems = []
        if self.best_of not in (None, self.n):
            problems.append("best_of: only best_of = n is supported")
        if self.suffix:
            problems.append("suffix: insertion is not supported")
        return problems


def fixed_lambda(model: str) -> float | None:
    """None for ``dami-pref`` (the ranker chooses), λ for ``dami-pref@λ``; an unknown name is a
    LookupError (404)."""
    if model == MODEL:
        return None
    prefix = MODEL + "@"
    if model.startswith(prefix):
        try:
            lam = float(model[len(prefix):])
        except ValueError:
            raise LookupError(model) from None
        if 0 <= lam <= 1:
            return lam
    raise LookupError(model)
