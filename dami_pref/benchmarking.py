"""What the scripts in ``benchmarks/`` share: model shapes, random-weight pairs, a timer that
waits for the GPU, peak memory, and the naive re-merge baseline the runtime is measured against.

Kept in the package so a benchmark runs both as ``python benchmarks/NAME.py`` and as
``python -m benchmarks.NAME`` without touching ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from .utils.devices import synchronize

# name -> Qwen3Config fields (real published shapes for the Qwen3 ones)
SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=128),
    "toy": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=105),
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=64, vocab_size=32000),
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                       vocab_size=151936),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                     vocab_size=151936),
}


def shape_config(shape: str, max_positions: int = 4096, **overrides):
    """A Qwen3Config of a named shape (an unknown name is a clear error)."""
    from transformers import Qwen3Config

    from .errors import DamiPrefError

    if shape not in SHAPES:
        raise DamiPrefError(f"unknown shape {shape!r}; choose from {list(SHAPES)}")
    values = dict(SHAPES[shape], tie_word_embeddings=True, max_position_embeddings=max_positions,
                  rope_parameters={"rope_theta": 1e6, "rope_type": "default"})
    return Qwen3Config(**{**values, **overrides})


def random_pair(shape: str, dtype: torch.dtype, device: torch.device,
                shared_base_noise: float | None = None):
    """Two random-weight Qwen3 models of one shape (seeded).

    With ``shared_base_noise`` the Thinking model is the Instruct one plus that much relative
    noise, like a pair fine-tuned from one base; otherwise both are drawn independently.
    """
    from transformers import Qwen3ForCausalLM

    config = shape_config(shape)
    torch.manual_seed(0)
    with torch.device(device):
        instruct = Qwen3ForCausalLM(config).to(dtype)
        thinking = Qwen3ForCausalLM(config).to(dtype)
    if shared_base_noise is not None:
        with torch.no_grad():
            for pi, pt in zip(instruct.parameters(), thinking.parameters()):
                pt.copy_(pi + shared_base_noise * pi.std() * torch.randn_like(pi))
    return instruct, thinking


def random_runtime(shape: str, dtype: torch.dtype, device: torch.device, tokenizer,
                   memory_mode: str = "exact", shared_base_noise: float | None = None):
    """An interpolation runtime over a random pair; ``tokenizer`` renders its prompts (any
    tokenizer whose vocabulary fits the shape's)."""
    from .runtime import InterpolationRuntime

    instruct, thinking = random_pair(shape, dtype, device, shared_base_noise)
    return InterpolationRuntime.from_models(instruct, thinking, tokenizer,
                                            memory_mode=memory_mode)


def paged_cache_config(prompts: list[list[int]], new_tokens: int, page_size: int = 256):
    """transformers' continuous-batching cache sized to the workload: left to itself it takes
    90 % of free memory (on a CPU, of the machine's RAM: 14 GB in the test suite's smoke run)."""
    from transformers import ContinuousBatchingConfig

    pages = sum(-(-(len(p) + new_tokens) // page_size) for p in prompts)
    return ContinuousBatchingConfig(page_size=page_size, num_blocks=pages + 1,
                                    max_batch_tokens=min(4096, sum(len(p) for p in prompts)
                                                         + len(prompts)))


def timed(fn: Callable[[], object], device: torch.device, repeats: int,
          warmup: bool = True) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` runs, the GPU synchronised around each."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        times.append(time_once(fn, device))
    return statistics.median(times)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


class PeakMemory:
    """Peak memory above a baseline: torch's allocations on a GPU, the process's RSS on a CPU.

    On a CPU the baseline is the RSS high-water mark at ``start()``, so only growth beyond any
    earlier peak counts; measure in a fresh process for a clean number.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0

    def _now(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    def start(self, from_zero: bool = False) -> "PeakMemory":
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = 0 if from_zero else int(torch.cuda.memory_allocated(self.device))
        else:
            self.base = 0 if from_zero else self._now()
        return self

    def peak(self) -> int:
        synchronize(self.device)
        return self._now() - self.base


def remerge(runtime, lam: float) -> None:
    """The naive switch the runtime is measured against: a merged state dict built tensor by
    tensor from both endpoints, then ``load_state_dict`` (exact memory mode only). The runtime
    is told which λ its live weights now hold, so it will not switch again."""
    endpoints = (runtime.endpoint_state("instruct"), runtime.endpoint_state("thinking"))
    merged = {name: torch.lerp(endpoints[0][name], endpoints[1][name], lam)
              for name in endpoints[0]}
    runtime.model.load_state_dict(merged, strict=False)
    runtime.mark_lambda(lam)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return (f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads")

