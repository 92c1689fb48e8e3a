"""The KV cache option: every choice that runs on CPU, through the runtime, on the toy pair."""

from __future__ import annotations

import pytest

from dami_pref.errors import DamiPrefError
from dami_pref.runtime.generation import DecodingOptions, GenerationRequest
from dami_pref.runtime.kv_cache import KVCacheOptions
from dami_pref.runtime import InterpolationRuntime
from dami_pref.toy import TOY_BUDGET, TOY_INSTRUCT, TOY_THINKING

# At λ=1 these questions write 60-150-token verified traces, well past the 8-token
# full-precision window, so most of each answer is computed from the quantized part of the cache.
QUESTIONS = ["17+13+12+19", "25+18+12+11+19", "12+17+19", "6+9+7+5"]


@pytest.fixture(scope="module")
def runtime():
    return InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")


def answers(runtime, kind: str, backend: str = "hqq", lam: float = 1.0):
    options = DecodingOptions(max_new_tokens=TOY_BUDGET, batch_size=4,
                              kv_cache=KVCacheOptions(kind, backend, residual_length=8,
                                                      group_size=32))
    return runtime.generate([GenerationRequest(q, lam) for q in QUESTIONS], options)


def test_quantized_4bit_gives_the_default_answers(runtime):
    reference = answers(runtime, "dynamic")
    assert all(r.finished for r in reference)
    for backend in ("hqq", "quanto"):
        got = answers(runtime, "quantized-4", backend)
        assert [r.answer for r in got] == [r.answer for r in reference], backend


def test_quantized_2bit_runs_and_its_difference_is_measured(runtime):
    reference = answers(runtime, "dynamic")
    for backend in ("hqq", "quanto"):
        got = answers(runtime, "quantized-2", backend)
        assert len(got) == len(reference) and all(r.n_tokens > 0 for r in got)
        same = sum(a.completion == b.completion for a, b in zip(got, reference))
        # 2 bits is lossy: report rather than require equality (BENCHMARKS.md has the figures)
        print(f"2-bit {backend}: {same}/{len(got)} completions identical to the dynamic cache")


def test_offloaded_needs_cuda(runtime):
    if runtime.device.type == "cuda":
        pytest.skip("this machine has a GPU; the error path is for CPU runs")
    with pytest.raises(DamiPrefError, match="needs --device cuda"):
        answers(runtime, "offloaded")


def test_missing_backend_package_is_named(runtime, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "hqq" else real(name, *a))
    with pytest.raises(DamiPrefError, match="pip install hqq"):
        answers(runtime, "quantized-4", "hqq")


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="quantized-8"), "unknown --kv_cache"),
    (dict(backend="fp8x"), "unknown --kv_cache_backend"),
    (dict(residual_length=0), "must be ≥ 1"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(DamiPrefError, match=message):
        KVCacheOptions(**kwargs)


def test_every_generating_command_takes_the_option(tmp_path):
    from dami_pref.cli import main

    out = tmp_path / "sweep"
    assert main(["sweep", "--limit", "7", "--grid", "1", "--output", str(out), "--device", "cpu",
                 "--kv_cache", "quantized-4", "--kv_cache_residual_length", "8",
                 "--no-progress"]) == 0
    import json

    assert json.loads((out / "sweep.json").read_text())["config"]["kv_cache"] == "quantized-4"
    from dami_pref.cli.select import SelectArgs
    from dami_pref.cli.eval import EvalArgs

    for cls in (SelectArgs, EvalArgs):
        assert {"kv_cache", "kv_cache_backend", "kv_cache_residual_length"} <= set(
            cls.__dataclass_fields__)


@pytest.mark.parametrize("backend", ["hqq", "quanto"])
def test_cache_bytes_counts_what_each_cache_holds(runtime, backend):
    import torch

    from dami_pref.runtime.kv_cache import cache_bytes

    model, config = runtime.model, runtime.model.config
    prompt = torch.randint(10, config.vocab_size, (2, 16))
    sizes = {}
    for kind in ("dynamic", "quantized-4", "quantized-2"):
        options = KVCacheOptions(kind, backend, residual_length=8, group_size=32)
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=200, min_new_tokens=200, do_sample=False,
                                 pad_token_id=0, eos_token_id=None, return_dict_in_generate=True,
                                 **options.generate_kwargs())
        sizes[kind] = cache_bytes(out.past_key_values)
    tokens = 16 + 200 - 1  # the last new token is never fed back
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    assert sizes["dynamic"] == (2 * config.num_hidden_layers * config.num_key_value_heads
                                * head_dim * tokens * 2 * model.dtype.itemsize)
    # Packed codes plus one scale and zero per group, and a window of at most 8 tokens.
    assert sizes["quantized-2"] < sizes["quantized-4"] < 0.45 * sizes["dynamic"]
