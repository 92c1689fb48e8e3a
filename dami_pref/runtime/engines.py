"""One entry point for both engines: ``load_runtime(..., engine="runtime" | "vllm")``."""

from __future__ import annotations

from pathlib import Path

from ..errors import DamiPrefError
from .kv_cache import KVCacheOptions

ENGINES = ("runtime", "vllm")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise DamiPrefError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    return engine


def load_runtime(instruct: str | Path, thinking: str | Path, *,
                 engine: str = "runtime", vllm_settings=None,
                 kv_cache: KVCacheOptions = KVCacheOptions(), **runtime_kwargs):
    """The pair ready to generate at any λ.

    ``engine="runtime"``: an :class:`InterpolationRuntime` (transformers' ``generate``) on
    ``device``. ``engine="vllm"``: a :class:`VLLMRuntime`, whose endpoints stay in host memory
    and whose engine takes ``vllm_settings`` (a ``VLLMSettings``). Both take the same
    ``generate(requests, DecodingOptions)``; ``runtime_kwargs`` are InterpolationRuntime's.
    """
    from .interpolation import InterpolationRuntime

    if check_engine(engine) == "runtime":
        return InterpolationRuntime(instruct, thinking, **runtime_kwargs)
    from .vllm_engine import VLLMRuntime, VLLMSettings, import_vllm, vllm_kv_cache_dtype

    vllm_kv_cache_dtype(kv_cache)  # refused before any model loads
    import_vllm()
    host = InterpolationRuntime(instruct, thinking, **{**runtime_kwargs, "device": "cpu"})
    return VLLMRuntime(host, vllm_settings or VLLMSettings(), kv_cache)
