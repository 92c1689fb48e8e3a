"""Write Θ(λ) as an ordinary Hugging Face model folder, for serving one fixed λ elsewhere.

The merge streams shard by shard from the safetensors files (never the runtime's three resident
copies): each tensor is blended in float32 and stored in the checkpoint's own dtype unless asked
otherwise, exactly as ``InterpolationRuntime.set_lambda`` rounds it, so a merged folder reloads to
the runtime's weights at the same λ. λ = 0 and λ = 1 copy the endpoints bit for bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import DamiPrefError
from ..utils.devices import STORED_DTYPES, parse_dtype
from ..utils.grid import check_lambda
from ..utils.io import building_folder
from .checkpoints import (check_pair, check_same_vocabulary, read_checkpoint, resolve_model_dir,
                          safetensors_files)


def _blend(a: torch.Tensor, b: torch.Tensor, lam: float, out_dtype: torch.dtype) -> torch.Tensor:
    if lam == 0.0:
        return a.to(out_dtype)
    if lam == 1.0:
        return b.to(out_dtype)
    if not a.is_floating_point():
        if not torch.equal(a, b):
            raise DamiPrefError("integer tensors differ between the endpoints; cannot blend them")
        return a
    return torch.lerp(a.float(), b.float(), lam).to(out_dtype)


def _key_to_file(folder: Path) -> dict[str, Path]:
    mapping = {}
    for file in safetensors_files(folder):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                mapping[key] = file
    return mapping


def merge_pair(lam: float, out: str | Path, instruct: str | Path | None = None,
               thinking: str | Path | None = None, *, dtype: str = "auto",
               overwrite: bool = False, trust_remote_code: bool = False) -> Path:
    """Write the interpolated model at ``lam`` to ``out`` (built under a temporary name)."""
    from transformers import AutoTokenizer

    from ..toy import TOY_INSTRUCT, TOY_THINKING

    lam = check_lambda(lam)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DamiPrefError(f"{out} exists and is not empty; pass --overwrite to replace it")
    instruct_dir = resolve_model_dir(instruct or TOY_INSTRUCT)
    thinking_dir = resolve_model_dir(thinking or TOY_THINKING)
    summary_i, summary_t = read_checkpoint(instruct_dir), read_checkpoint(thinking_dir)
    check_pair(summary_i, summary_t)
    check_same_vocabulary(
        AutoTokenizer.from_pretrained(instruct_dir, trust_remote_code=trust_remote_code),
        AutoTokenizer.from_pretrained(thinking_dir, trust_remote_code=trust_remote_code))
    forced = parse_dtype(dtype)

    with building_folder(out) as tmp:
        thinking_files = _key_to_file(thinking_dir)
        total_bytes = 0
        for shard in safetensors_files(instruct_dir):
            tensors = {}
            with safe_open(str(shard), framework="pt") as fi:
                metadata = fi.metadata() or {}
                for key in fi.keys():
                    with safe_open(str(thinking_files[key]), framework="pt") as ft:
                        b = ft.get_tensor(key)
                    a = fi.get_tensor(key)
                    stored = STORED_DTYPES.get(summary_i.tensors[key][1], a.dtype)
                    out_dtype = forced if forced is not None and a.is_floating_point() else stored
                    tensors[key] = _blend(a, b, lam, out_dtype).contiguous()
                    total_bytes += tensors[key].numel() * tensors[key].element_size()
            save_file(tensors, str(tmp / shard.name), metadata={**metadata, "format": "pt"})
            del tensors
        index = instruct_dir / "model.safetensors.index.json"
        if index.is_file():
            data = json.loads(index.read_text())
            data.setdefault("metadata", {})["total_size"] = total_bytes
            (tmp / index.name).write_text(json.dumps(data, indent=2))
        for item in instruct_dir.iterdir():  # config, generation config, tokenizer, template
            if item.is_file() and item.suffix != ".safetensors" and item.name != index.name:
                shutil.copy2(item, tmp / item.name)
        config = json.loads((tmp / "config.json").read_text())
        if forced is not None:
            config["dtype"] = str(forced).removeprefix("torch.")
            config.pop("torch_dtype", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "dami_pref_merge.json").write_text(json.dumps({
            "lambda": lam, "instruct": str(instruct or instruct_dir),
            "thinking": str(thinking or thinking_dir), "computed_in": "float32",
            "stored_as": dtype if forced is not None else "as the checkpoints",
        }, indent=2) + "\n")
    return out
