"""The one place that builds an engine: ``load_runtime`` (the contract is in ``engines``)."""

from __future__ import annotations

from pathlib import Path

from .engines import Engine, check_engine, check_lambda_batching
from .kv_cache import KVCacheOptions


def load_runtime(instruct: str | Path, thinking: str | Path, *,
                engine: str = "runtime", lambda_batching: str = "grouped", vllm_settings=None,
                kv_cache: KVCacheOptions = KVCacheOptions(), serving: bool = False,
                **runtime_kwargs) -> Engine:
    """The pair ready to generate at any λ.

    ``engine="runtime"``: an :class:`InterpolationRuntime` (transformers) on ``device``.
    ``engine="vllm"``: a :class:`VLLMRuntime`, whose endpoints stay in host memory and whose
    engine takes ``vllm_settings`` (a ``VLLMSettings``). ``lambda_batching``: ``mixed`` (every λ
    in one batch: the model holds Θ_I and Δ) or ``grouped`` (one λ at a time, switched in place).
    ``serving``: for a server; with vLLM and mixed batches, an :class:`AsyncVLLMRuntime`
    (vLLM's ``AsyncLLM``, the engine core in its own process, as vLLM's OpenAI server runs it).
    ``runtime_kwargs`` are InterpolationRuntime's.
    """
    from .interpolation import InterpolationRuntime

    check_lambda_batching(lambda_batching)
    if check_engine(engine) == "runtime":
        runtime = InterpolationRuntime(instruct, thinking, lambda_batching=lambda_batching,
                                       **runtime_kwargs)
        kv_cache.check(runtime.device)  # refused before a command writes anything
        return runtime
    from .vllm_engine import VLLMRuntime, VLLMSettings, import_vllm, vllm_kv_cache_dtype

    vllm_kv_cache_dtype(kv_cache)  # refused before any model loads
    if serving and lambda_batching == "mixed":
        from .vllm_async import AsyncVLLMRuntime, PairPrompts

        return AsyncVLLMRuntime(PairPrompts(instruct, thinking, **runtime_kwargs),
                                vllm_settings or VLLMSettings(), kv_cache)
    import_vllm()
    host = InterpolationRuntime(instruct, thinking, **{**runtime_kwargs, "device": "cpu"})
    return VLLMRuntime(host, vllm_settings or VLLMSettings(), kv_cache, lambda_batching)
