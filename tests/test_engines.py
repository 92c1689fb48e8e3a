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


def test_continuous_admission_is_oldest_first_and_never_mixes_lambda():
    """The oldest waiting request decides: it joins the running batch when it has the engine's
    λ, and once an older request of another λ waits, nothing younger jumps ahead of it."""
    import asyncio

    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.serve.continuous import ContinuousLambdaScheduler
    from dami_pref.serve.metrics import ServerMetrics

    class Engine:
        lam = 0.5
        mixes_lambdas = False

    async def scenario():
        scheduler = ContinuousLambdaScheduler(Engine(), ServerMetrics(), max_batch=3)
        scheduler._wakeup = asyncio.Event()
        options = DecodingOptions()
        jobs = [scheduler.submit(q, lam, options) for q, lam in
                (("a", 0.5), ("b", 0.5), ("c", 1.0), ("d", 0.5))]
        first = [j.question for j in scheduler.admissible()]
        scheduler.running = {"x": object()}  # a batch at λ=0.5 is generating
        second = scheduler.admissible()  # c (λ=1) is the oldest: d must wait behind it
        scheduler.running = {}
        third = [j.question for j in scheduler.admissible()]
        jobs[3].cancel()
        fourth = scheduler.admissible()
        return first, second, third, fourth, scheduler.metrics

    first, second, third, fourth, metrics = asyncio.run(scenario())
    assert first == ["a", "b"] and second == [] and third == ["c"] and fourth == []
    assert metrics.cancelled._value.get() == 1


def test_continuous_admission_mixes_lambda_where_the_engine_does():
    """An engine that mixes λ admits the oldest waiting requests whatever their λ, up to
    max_batch, with no switch."""
    import asyncio

    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.serve.continuous import ContinuousLambdaScheduler
    from dami_pref.serve.metrics import ServerMetrics

    class Engine:
        lam = 0.0
        mixes_lambdas = True

    async def scenario():
        scheduler = ContinuousLambdaScheduler(Engine(), ServerMetrics(), max_batch=3)
        scheduler._wakeup = asyncio.Event()
        options = DecodingOptions()
        for q, lam in (("a", 0.5), ("b", 1.0), ("c", 0.0), ("d", 0.5)):
            scheduler.submit(q, lam, options)
        first = [j.question for j in scheduler.admissible()]
        scheduler.running = {"x": object(), "y": object()}
        second = [j.question for j in scheduler.admissible()]
        return first, second

    assert asyncio.run(scenario()) == (["a", "b", "c"], ["d"])


def test_static_batches_mix_lambda_where_the_engine_does():
    import asyncio

    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.serve.metrics import ServerMetrics
    from dami_pref.serve.scheduler import LambdaScheduler

    def batches(mixes: bool) -> list[list[str]]:
        class Engine:
            lam = 0.0
            mixes_lambdas = mixes

        async def scenario():
            scheduler = LambdaScheduler(Engine(), ServerMetrics(), max_batch=3)
            scheduler._wakeup = asyncio.Event()
            for q, lam in (("a", 0.5), ("b", 1.0), ("c", 0.5), ("d", 0.0), ("e", 1.0)):
                scheduler.submit(q, lam, DecodingOptions())
            out = []
            while batch := scheduler.next_batch():
                out.append([j.question for j in batch])
            return out

        return asyncio.run(scenario())

    assert batches(True) == [["a", "b", "c"], ["d", "e"]]
    assert batches(False) == [["a", "c"], ["b", "e"], ["d"]]
