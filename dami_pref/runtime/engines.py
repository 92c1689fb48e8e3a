"""The engine contract: what every engine offers, and the names of engines and batching modes.

Serve, eval, select and the rollouts need the same few things from whatever generates: the
:class:`Engine` protocol below. Engines that decode step by step (continuous batching) also
implement :class:`SteppingEngine`; a server's engine may instead answer each request with an
awaitable (:class:`AsyncEngine`). The capabilities are plain attributes, and the server picks its
scheduler from them in one place (``serve.app.scheduler_for``): ``serves_async``, ``steps``
(a server admits requests into the running batch) and ``mixes_lambdas`` (one batch holds every λ;
otherwise requests are grouped by λ and the engine switches between groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import DamiPrefError

if TYPE_CHECKING:
    from .generation import DecodingOptions, GenerationRequest, GenerationResult, TokenSink

ENGINES = ("runtime", "vllm")
LAMBDA_BATCHING = ("mixed", "grouped")


@runtime_checkable
class Engine(Protocol):
    """What every engine offers: the pair's prompts, λ, and batched generation."""

    engine: str  # "runtime" or "vllm"
    steps: bool  # implements SteppingEngine
    mixes_lambdas: bool  # one batch may hold every λ
    structured_output: bool  # honours DecodingOptions.response_format (vLLM)
    tokenizer: object
    switches: int  # λ switches of the weights so far (0 for an engine that mixes)
    context: int | None  # positions the model reads, prompt and answer together

    @property
    def lam(self) -> float: ...

    def set_lambda(self, lam: float) -> None: ...

    def encode_prompts(self, questions: Sequence[str]) -> list[list[int]]: ...

    def encode_conversation(self, turns: Sequence[dict]) -> list[int]: ...

    def check_questions(self, questions: Sequence[str], max_new_tokens: int,
                        labels: Sequence[str] | None = None) -> list[list[int]]: ...

    def check_encoded(self, labels: Sequence[str], encoded: Sequence[Sequence[int]],
                      max_new_tokens: int) -> list[list[int]]: ...

    def generate(self, requests: Sequence[GenerationRequest],
                 options: DecodingOptions | None = None,
                 progress: bool = False) -> list[GenerationResult]: ...


@runtime_checkable
class SteppingEngine(Engine, Protocol):
    """An engine a server drives one decoding step at a time (continuous batching)."""

    def submit(self, request_id: str, prompt: list[int], seed: int, options: DecodingOptions,
               lam: float | None = None, sink: TokenSink | None = None) -> None: ...

    def step(self) -> list[tuple[str, GenerationResult]]: ...

    def abort(self, request_ids: Sequence[str]) -> None: ...

    @property
    def running(self) -> int: ...


@runtime_checkable
class AsyncEngine(Protocol):
    """A server's engine that batches by itself: each request is one awaitable."""

    engine: str
    serves_async: bool
    mixes_lambdas: bool
    structured_output: bool
    tokenizer: object
    context: int | None

    def encode_prompts(self, questions: Sequence[str]) -> list[list[int]]: ...

    def encode_conversation(self, turns: Sequence[dict]) -> list[int]: ...

    def check_questions(self, questions: Sequence[str], max_new_tokens: int,
                        labels: Sequence[str] | None = None) -> list[list[int]]: ...

    def check_encoded(self, labels: Sequence[str], encoded: Sequence[Sequence[int]],
                      max_new_tokens: int) -> list[list[int]]: ...

    async def generate_one(self, request_id: str, prompt: list[int], seed: int,
                           options: DecodingOptions, lam: float,
                           sink: TokenSink | None = None) -> GenerationResult: ...


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise DamiPrefError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    return engine


def check_lambda_batching(mode: str) -> str:
    if mode not in LAMBDA_BATCHING:
        raise DamiPrefError(f"lambda_batching must be one of {list(LAMBDA_BATCHING)}, got "
                            f"{mode!r}")
    return mode
