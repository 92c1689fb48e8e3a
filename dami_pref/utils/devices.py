"""Devices, dtypes and memory: how a user's ``--device``/``--dtype`` strings become torch objects."""

from __future__ import annotations

import torch

from ..errors import DamiPrefError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
# safetensors header names of the floating dtypes
STORED_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or None) is the GPU when torch sees one, else the CPU; a missing GPU is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise DamiPrefError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DamiPrefError(f"device {device} asked for, but torch sees no CUDA GPU "
                            f"(torch {torch.__version__}); use --device cpu")
    return device


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype name as torch's dtype; ``auto`` (or None) stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return None
    if dtype not in DTYPES:
        raise DamiPrefError(f"unknown dtype {dtype!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_dtype(dtype: str | torch.dtype | None, stored: str | None) -> torch.dtype:
    """``auto`` keeps the dtype the checkpoint is stored in (a safetensors dtype name)."""
    return parse_dtype(dtype) or STORED_DTYPES.get(stored or "F32", torch.float32)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure what they say."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this process so far: torch's allocations on a GPU, RSS on a CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def end_distributed(wait: bool = True) -> None:
    """Leave the process group before the interpreter exits: gloo's worker threads otherwise
    abort its shutdown now and then ("terminate called without an active exception")."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait:
        dist.barrier()  # no process tears the group down while another still uses it
    dist.destroy_process_group()
