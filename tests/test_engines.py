"""What the engine choice decides without vLLM installed: options, refusals, tied layers."""

from __future__ import annotations

import pytest
import torch

from dami_pref.errors import DamiPrefError
from dami_pref.runtime.engines import check_engine
from dami_pref.runtime.kv_cache import KVCacheOptions
from dami_pref.runtime.vllm_engine import VLLMSettings, vllm_kv_cache_dtype
from dami_pref.runtime.vllm_worker import tied_modules


def test_kv_cache_choices_map_to_vllm_or_are_refused():
    assert vllm_kv_cache_dtype(KVCacheOptions("dynamic")) == "auto"
    assert vllm_kv_cache_dtype(KVCacheOptions("fp8")) == "fp8"
    for kind in ("quantized-4", "quantized-2", "offloaded"):
        with pytest.raises(DamiPrefError, match=f"--kv_cache {kind} is a transformers cache"):
            vllm_kv_cache_dtype(KVCacheOptions(kind))
    with pytest.raises(DamiPrefError, match="fp8 is vLLM's"):
        KVCacheOptions("fp8").check(torch.device("cpu"))


def test_engine_settings_are_checked():
    assert check_engine("vllm") == "vllm"
    with pytest.raises(DamiPrefError, match="engine must be one of"):
        check_engine("tgi")
    for bad, message in ((dict(tensor_parallel_size=0), "tensor_parallel_size"),
                         (dict(gpu_memory_utilization=0.0), "gpu_memory_utilization"),
                         (dict(max_model_len=1), "max_model_len")):
        with pytest.raises(DamiPrefError, match=message):
            VLLMSettings(**bad)


class _Head(torch.nn.Module):
    def __init__(self, weight: torch.nn.Parameter | None = None) -> None:
        super().__init__()
        self.weight = weight if weight is not None else torch.nn.Parameter(torch.zeros(4, 2))
        self.quant_method = object()


def test_tied_modules_are_those_sharing_one_parameter():
    """A tied output layer shares the embedding's Parameter; vLLM's reload never visits it."""
    model = torch.nn.Module()
    model.embed = _Head()
    model.lm_head = _Head(model.embed.weight)
    model.other = _Head()
    model.plain = torch.nn.Linear(2, 2)  # no quant_method: nothing to reprocess
    assert {id(m) for m in tied_modules(model)} == {id(model.embed), id(model.lm_head)}
    untied = torch.nn.Module()
    untied.embed, untied.lm_head = _Head(), _Head()
    assert tied_modules(untied) == []
