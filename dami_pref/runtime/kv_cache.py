"""Which KV cache generation uses: transformers' own cache classes, chosen by one option.

Long thinking traces make the KV cache, not the weights, the limit on how many questions fit in
a batch. ``--kv_cache`` picks:
  dynamic       transformers' default DynamicCache;
  quantized-4   QuantizedCache at 4 bits (KIVI-style: the newest ``residual_length`` tokens stay
  quantized-2   in full precision, older ones are quantized group-wise), backend hqq (default,
                CPU and GPU) or quanto (optimum-quanto, compiles a small extension on first use);
  offloaded     OffloadedCache: layers not being computed wait in CPU memory (needs a CUDA GPU);
  fp8           vLLM's paged cache in 8-bit floats (``kv_cache_dtype="fp8"``; ``--engine vllm`` only).
On ``--engine vllm``, dynamic is vLLM's paged cache in the model's dtype.
No cache is written here: these are transformers' classes, selected through ``generate``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import torch

from ..errors import DamiPrefError
from ..utils.limits import KV_CACHE
from ..utils.options import check_options

KINDS = ("dynamic", "quantized-4", "quantized-2", "offloaded", "fp8")
BACKENDS = {"hqq": ("hqq", "pip install hqq"),
            "quanto": ("optimum.quanto", "pip install optimum-quanto")}


@dataclass(frozen=True)
class KVCacheOptions:
    kind: str = "dynamic"
    backend: str = "hqq"
    # newest tokens kept in full precision (quantized caches); quantization group size
    residual_length: int = field(default=128, metadata=KV_CACHE["residual_length"])
    group_size: int = field(default=64, metadata=KV_CACHE["group_size"])

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DamiPrefError(f"unknown --kv_cache {self.kind!r}; choose one of {list(KINDS)}")
        if self.backend not in BACKENDS:
            raise DamiPrefError(f"unknown --kv_cache_backend {self.backend!r}; choose "
                                f"{' or '.join(BACKENDS)}")
        check_options(self)

    @property
    def bits(self) -> int | None:
        return int(self.kind.split("-")[1]) if self.kind.startswith("quantized") else None

    def check(self, device: torch.device) -> None:
        """A clear error when the choice needs a package or a device that is missing."""
        if self.kind.startswith("quantized"):
            module, install = BACKENDS[self.backend]
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                raise DamiPrefError(f"--kv_cache {self.kind} with the {self.backend} backend needs "
                                    f"the {self.backend} package: {install} (or pick the other "
                                    f"backend with --kv_cache_backend)")
        if self.kind == "fp8":
            raise DamiPrefError("--kv_cache fp8 is vLLM's 8-bit paged cache: use it with --engine "
                                "vllm; transformers' generate offers quantized-4/-2 instead")
        if self.kind == "offloaded" and device.type != "cuda":
            raise DamiPrefError("--kv_cache offloaded keeps layers in CPU memory while a CUDA GPU "
                                "computes; it needs --device cuda. On a CPU the cache already "
                                "lives in CPU memory: use dynamic or quantized-4/-2")

    def generate_kwargs(self) -> dict:
        """The arguments ``model.generate`` takes for this cache."""
        if self.kind == "dynamic":
            return {}
        if self.kind == "offloaded":
            return {"cache_implementation": "offloaded"}
        return {"cache_implementation": "quantized",
                "cache_config": {"backend": self.backend, "nbits": self.bits,
                                 "residual_length": self.residual_length,
                                 "q_group_size": self.group_size}}


def cache_bytes(cache) -> int:
    """Bytes of tensor storage a KV cache object holds, quantized payloads and scales included.

    Walks the cache's layers and their attributes down to plain tensors (tensor subclasses such
    as quanto's are unpacked with ``__tensor_flatten__``) and counts each storage once. This is
    what a cache costs between decoding steps; the transient full-precision copy that a
    quantized layer makes while attending is not in it.
    """
    seen: set[int] = set()
    visited: set[int] = set()

    def walk(obj) -> int:
        if isinstance(obj, torch.Tensor):
            if type(obj) not in (torch.Tensor, torch.nn.Parameter) and hasattr(
                    obj, "__tensor_flatten__"):
                names, _ = obj.__tensor_flatten__()
                return sum(walk(getattr(obj, n)) for n in names)
            storage = obj.untyped_storage()
            if obj.numel() == 0 or storage.data_ptr() in seen:
                return 0
            seen.add(storage.data_ptr())
            return storage.nbytes()
        if id(obj) in visited or isinstance(obj, (str, bytes, int, float, bool, type(None))):
            return 0
        visited.add(id(obj))
        if isinstance(obj, dict):
            return sum(walk(v) for v in obj.values())
        if isinstance(obj, (list, tuple, set)):
            return sum(walk(v) for v in obj)
        if hasattr(obj, "__dict__") and not isinstance(obj, torch.nn.Module):
            return sum(walk(v) for v in vars(obj).values())
        return 0

    return walk(cache)
