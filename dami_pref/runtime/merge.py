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
from ..utils.hub import looks_like_hub_id
from ..utils.io import building_folder, check_destination
from ..utils.portable import portable
from ..utils.tensors import check_finite
from .checkpoints import checkpoint_fingerprint, open_pair, safetensors_files


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


def merge_pair(lam: float, out: str | Path, instruct: str | Path, thinking: str | Path, *,
               dtype: str = "auto",
               overwrite: bool = False, trust_remote_code: bool = False) -> Path:
    """Write the interpolated model at ``lam`` to ``out`` (built under a temporary name)."""
    lam = check_lambda(lam)
    out = Path(out)
    check_destination(out, overwrite)
    pair = open_pair(instruct, thinking, trust_remote_code=trust_remote_code)
    instruct_dir, thinking_dir, summary_i = pair.instruct_dir, pair.thinking_dir, pair.instruct
    forced = parse_dtype(dtype)

    record = merge_record(lam, instruct, thinking, instruct_dir, thinking_dir, dtype, forced,
                          summary_i)
    with building_folder(out) as tmp:
        total_bytes = write_blended_shards(tmp, instruct_dir, thinking_dir, summary_i, lam,
                                           forced)
        copy_metadata(tmp, instruct_dir, total_bytes, forced)
        (tmp / "dami_pref_merge.json").write_text(json.dumps(record, indent=2) + "\n")
        (tmp / "README.md").write_text(merge_card(record), encoding="utf-8")
    return out


def write_blended_shards(tmp: Path, instruct_dir: Path, thinking_dir: Path, summary_i,
                         lam: float, forced) -> int:
    """Blend shard by shard (one shard's tensors in memory at a time); returns the bytes."""
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
                check_finite([(key, a)], str(shard))
                check_finite([(key, b)], str(thinking_files[key]))
                stored = STORED_DTYPES.get(summary_i.tensors[key][1], a.dtype)
                out_dtype = forced if forced is not None and a.is_floating_point() else stored
                tensors[key] = _blend(a, b, lam, out_dtype).contiguous()
                total_bytes += tensors[key].numel() * tensors[key].element_size()
        save_file(tensors, str(tmp / shard.name), metadata={**metadata, "format": "pt"})
        del tensors
    return total_bytes


def copy_metadata(tmp: Path, instruct_dir: Path, total_bytes: int, forced) -> None:
    """Config, generation config, tokenizer and shard index of the Instruct model (its model
    card stays behind: the merged folder gets its own), with the storage dtype recorded."""
    index = instruct_dir / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data.setdefault("metadata", {})["total_size"] = total_bytes
        (tmp / index.name).write_text(json.dumps(data, indent=2))
    for item in instruct_dir.iterdir():
        if (item.is_file() and item.suffix != ".safetensors" and item.name != index.name
                and item.name != "README.md"):
            shutil.copy2(item, tmp / item.name)
    config = json.loads((tmp / "config.json").read_text())
    if forced is not None:
        config["dtype"] = str(forced).removeprefix("torch.")
        config.pop("torch_dtype", None)
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def merge_record(lam: float, instruct, thinking, instruct_dir: Path, thinking_dir: Path,
                 dtype: str, forced, summary_i) -> dict:
    """What the merged folder is: both endpoints (name, Hub revision, weights fingerprint), λ,
    the dtype of the computation and of storage, and the command that reproduces it."""
    def endpoint(given, folder: Path) -> dict:
        parts = folder.resolve().parts
        revision = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None
        return {"name": portable(given), "revision": revision,
                "weights_fingerprint": checkpoint_fingerprint(folder)}

    stored = sorted({dt for _, dt in summary_i.tensors.values()})
    command = (f"dami-pref merge --lambda {lam:g} --output MERGED"
               + f" --instruct {portable(instruct)} --thinking {portable(thinking)}"
               + (f" --dtype {dtype}" if forced is not None else ""))
    return {"lambda": lam, "instruct": endpoint(instruct, instruct_dir),
            "thinking": endpoint(thinking, thinking_dir), "computed_in": "float32",
            "stored_as": str(forced).removeprefix("torch.") if forced is not None
            else f"as the checkpoints ({', '.join(stored)})", "reproduce": command}


def merge_card(record: dict) -> str:
    """The merged model's own card (not the Instruct model's)."""
    from huggingface_hub import ModelCardData

    names = [record[side]["name"] for side in ("instruct", "thinking")]
    hub = [n for n in names if looks_like_hub_id(n)]
    data = ModelCardData(library_name="transformers", base_model=hub or None,
                         base_model_relation="merge" if hub else None,
                         tags=["dami-pref", "merge", "model-interpolation"])
    lam = record["lambda"]
    rows = "\n".join(f"| {side} | `{record[side]['name']}` | {record[side]['revision'] or '—'} | "
                     f"`{record[side]['weights_fingerprint']}` |" for side in ("instruct", "thinking"))
    return f"""---
{data.to_yaml()}
---

# The interpolated model at λ = {lam:g}

Θ(λ) = λ·Θ_Thinking + (1−λ)·Θ_Instruct with λ = {lam:g}, written by `dami-pref merge`.

| endpoint | model | revision | weights fingerprint |
|---|---|---|---|
{rows}

Every tensor was blended in {record['computed_in']} (`torch.lerp`) and stored
{record['stored_as']}; λ = 0 and λ = 1 copy an endpoint bit for bit. The same λ served by
dami-pref's interpolation runtime holds exactly these weights.

Reproduce: `{record['reproduce']}`
"""
