"""The request bodies the server accepts (a subset of OpenAI's, plus ``lambda`` and
``cost_weight``), and the model names it answers to.

Unknown fields are refused (``extra="forbid"``), so a typo is a 400, not a silently ignored
option. The openai client sends the extra fields through ``extra_body``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..errors import DamiPrefError

MODEL = "dami-pref"  # the ranker chooses λ; "dami-pref@0.3" fixes it


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str = MODEL
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool = False
    stream_options: dict | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    user: str | None = None
    cost_weight: float | None = None  # β of argmax r − β·ĉ; default: the validation-chosen β
    lambda_: float | None = Field(default=None, alias="lambda", ge=0, le=1)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str
    content: str | None = None
    name: str | None = None


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def question(self) -> str:
        """The last user message: what the ranker reads and the model answers."""
        users = [m.content for m in self.messages if m.role == "user" and m.content]
        if not users:
            raise DamiPrefError("messages: no user message with content")
        return users[-1]


class CompletionRequest(_Request):
    prompt: str


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
