"""A server's vLLM engine, as vLLM's own OpenAI server drives it: ``AsyncLLM``, with the engine
core in a process of its own, and every λ in one batch.

The server process keeps only what a request needs before the engine: the pair's tokenizer and
prompt settings (:class:`PairPrompts`, no weights). The engine core process loads the mixed-λ
model (``DamiMixed<Arch>``: Θ_I and Δ, λ per token, see :mod:`.vllm_mixed`) and decodes while
the server parses, scores and answers requests on the other core; vLLM's continuous batching
admits every request whatever its λ.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import DamiPrefError
from ..utils.devices import resolve_dtype
from ..utils.prompts import check_prompt_template, encode_conversation, encode_prompts, \
    render_prompt
from ..utils.tokens import check_prompts, end_token_ids, question_labels, refuse_overlong, \
    token_id
from .checkpoints import open_pair
from .generation import DecodingOptions, GenerationResult, TokenSink, decode_result
from .kv_cache import KVCacheOptions
from .logprobs import from_vllm
from .vllm_engine import (_OPEN_ENGINES, VLLMSettings, _reason, engine_kwargs, import_vllm,
                          sampling_params, tokens_prompt, vllm_kv_cache_dtype)


class PairPrompts:
    """The pair checked, its tokenizer and prompt settings: what a server needs before the
    engine, without loading a weight."""

    def __init__(self, instruct: str | Path, thinking: str | Path, *, dtype: str = "auto",
                 trust_remote_code: bool = False, chat_template_from: str = "instruct",
                 prompt_template: str = "{question}", revision: str | None = None,
                 **_ignored) -> None:
        from transformers import GenerationConfig

        if chat_template_from not in ("instruct", "thinking"):
            raise DamiPrefError("chat_template_from must be 'instruct' or 'thinking', got "
                                f"{chat_template_from!r}")
        self.prompt_template = check_prompt_template(prompt_template)
        pair = open_pair(instruct, thinking, revision, trust_remote_code)
        self.instruct_path, self.thinking_path = pair.instruct_dir, pair.thinking_dir
        self.config, self.trust_remote_code = pair.instruct.config, trust_remote_code
        self.tokenizer = pair.tokenizers[chat_template_from]
        stored = next(iter(pair.instruct.tensors.values()))[1] if pair.instruct.tensors else None
        self.dtype = resolve_dtype(dtype, stored)
        self.generation_config = GenerationConfig.from_pretrained(self.instruct_path) \
            if (self.instruct_path / "generation_config.json").is_file() else None

    @property
    def architecture(self) -> str:
        return (self.config.get("architectures") or ["?"])[0]

    def render_prompt(self, question: str) -> str:
        return render_prompt(question, self.prompt_template, self.tokenizer)

    def encode_prompts(self, questions: Sequence[str]) -> list[list[int]]:
        return encode_prompts(questions, self.prompt_template, self.tokenizer)

    def encode_conversation(self, turns: Sequence[dict]) -> list[int]:
        return encode_conversation(turns, self.prompt_template, self.tokenizer)


class AsyncVLLMRuntime:
    """Every λ in one vLLM batch, the engine core in its own process (for ``dami-pref serve``).

    Args:
        prompts: the pair's :class:`PairPrompts`.
        settings: the engine's arguments (``max_num_seqs`` bounds the running batch).
        kv_cache: ``dynamic`` or ``fp8``.
    """

    engine = "vllm"
    steps = False
    mixes_lambdas = True
    serves_async = True  # answers one request at a time with ``await generate_one(...)``
    structured_output = True  # honours DecodingOptions.response_format
    switches = 0

    def __init__(self, prompts: PairPrompts, settings: VLLMSettings = VLLMSettings(),
                 kv_cache: KVCacheOptions = KVCacheOptions()) -> None:
        import_vllm(server=True)
        import torch
        from vllm.engine.arg_utils import AsyncEngineArgs

        if not torch.cuda.is_available():
            # vLLM pins its CPU worker to its own cores and leaves the rest to the server: the
            # server's own torch work (the ranker) must not spin threads on the worker's core
            torch.set_num_threads(1)
        from vllm.v1.engine.async_llm import AsyncLLM

        self.host, self.settings = prompts, settings
        self.kv_cache_dtype = vllm_kv_cache_dtype(kv_cache)
        self.tokenizer = prompts.tokenizer
        self._eos = end_token_ids(prompts, prompts.tokenizer)
        self._think = (token_id(prompts.tokenizer, "<think>"),
                       token_id(prompts.tokenizer, "</think>"))
        kwargs = engine_kwargs(prompts, settings, self.kv_cache_dtype, mixes=True,
                               eager_on_cpu=False)  # compiled, as vLLM's own server runs
        try:
            self.llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs,
                                                                 disable_log_stats=True))
        except Exception as err:  # noqa: BLE001 - vLLM raises many types for one cause
            raise DamiPrefError(f"vLLM cannot load {prompts.instruct_path}: {_reason(err)}") \
                from None
        _OPEN_ENGINES.add(self)

    def close(self) -> None:
        """Stop the engine core process."""
        self.llm.shutdown()
        self.llm.shutdown = lambda *args, **kwargs: None  # vLLM's __del__ would stop it again
        _OPEN_ENGINES.discard(self)

    def encode_prompts(self, questions: Sequence[str]) -> list[list[int]]:
        return self.host.encode_prompts(questions)

    def encode_conversation(self, turns: Sequence[dict]) -> list[int]:
        return self.host.encode_conversation(turns)

    def render_prompt(self, question: str) -> str:
        return self.host.render_prompt(question)

    def check_questions(self, questions: Sequence[str], max_new_tokens: int,
                        labels: Sequence[str] | None = None) -> list[list[int]]:
        refuse_overlong(question_labels(questions, labels), questions, self.tokenizer,
                        self.context, max_new_tokens)
        return self.check_encoded(questions, self.encode_prompts(questions), max_new_tokens)

    @property
    def context(self) -> int | None:
        limits = [n for n in (self.host.config.get("max_position_embeddings"),
                              self.settings.max_model_len) if n]
        return min(limits) if limits else None

    def check_encoded(self, labels: Sequence[str], encoded: Sequence[Sequence[int]],
                      max_new_tokens: int) -> list[list[int]]:
        check_prompts(labels, encoded, self.tokenizer, self.context, max_new_tokens)
        return [list(ids) for ids in encoded]

    async def generate_one(self, request_id: str, prompt: list[int], seed: int,
                           options: DecodingOptions, lam: float,
                           sink: TokenSink | None = None) -> GenerationResult:
        """One request at its λ; it joins vLLM's running batch at the next step. ``sink``
        receives its new token ids after every step. Cancelling the awaiting task aborts it
        inside the engine."""
        import time

        from vllm.sampling_params import RequestOutputKind

        started, tokens, logprobs = time.perf_counter(), [], []
        kind = RequestOutputKind.FINAL_ONLY if sink is None else RequestOutputKind.DELTA
        params = sampling_params(options, seed, lam, self._eos, mixes=True, output_kind=kind)
        async for output in self.llm.generate(tokens_prompt(prompt, lam, mixes=True), params,
                                              request_id):
            new = list(output.outputs[0].token_ids)
            tokens += new
            logprobs += from_vllm(new, output.outputs[0].logprobs, options.logprobs or 0) or []
            if sink is not None and new:
                sink(new)
        return decode_result(self.tokenizer, lam, tokens, self._eos, *self._think,
                             options.max_new_tokens, time.perf_counter() - started, options.stop,
                             logprobs if options.logprobs is not None else None)
