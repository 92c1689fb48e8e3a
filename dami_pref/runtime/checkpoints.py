"""Finding checkpoints and checking that two of them can be interpolated.

Checks read only ``config.json``, the safetensors headers and the tokenizer, so a mismatched pair
is refused before any weights are loaded. Only safetensors are accepted: a pickle is never opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from ..errors import DamiPrefError, PairMismatchError
from ..utils.digest import short_digest
from ..utils.hub import local_or_hub

TensorSpecs = dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, dtype)


def resolve_model_dir(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a Hub id, downloaded (safetensors and text files only)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        raise DamiPrefError(f"{path} is a file; a model is a folder holding config.json "
                            "and *.safetensors")
    return local_or_hub(name_or_path, revision=revision, what="model")


@dataclass(frozen=True)
class CheckpointSummary:
    """What a checkpoint folder holds, read without loading weights."""

    path: Path
    config: dict
    tensors: TensorSpecs

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or [self.config.get("model_type", "?")]
        return ",".join(archs)


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a folder, in shard order; a clear error for pickles or nothing."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted({folder / name for name in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DamiPrefError(f"{folder}: shard(s) listed in {index.name} are missing: "
                                f"{missing[:3]}")
        return files
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
        raise DamiPrefError(f"{folder}: only pickle weights (*.bin/*.pt) found; dami-pref loads "
                            "safetensors only. Convert with `model.save_pretrained(dir, "
                            "safe_serialization=True)` on a machine you trust.")
    raise DamiPrefError(f"{folder}: no model.safetensors (or sharded index) found")


def read_checkpoint(folder: Path) -> CheckpointSummary:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise DamiPrefError(f"{folder}: config.json is missing; is this a Hugging Face model "
                            "folder?")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise DamiPrefError(f"{config_path}: not valid JSON ({err.msg})") from None
    tensors: dict[str, tuple[tuple[int, ...], str]] = {}
    for file in safetensors_files(folder):
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():
                    sl = handle.get_slice(name)
                    tensors[name] = (tuple(sl.get_shape()), str(sl.get_dtype()))
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file
            raise DamiPrefError(f"{file}: not a readable safetensors file ({err})") from None
    return CheckpointSummary(folder, config, tensors)


_SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "intermediate_size", "vocab_size", "head_dim",
               "tie_word_embeddings")


@dataclass
class OpenedPair:
    """A pair found and checked, before any weights load: its folders, their summaries and
    tokenizers (``instruct`` and ``thinking``)."""

    instruct_dir: Path
    thinking_dir: Path
    instruct: CheckpointSummary
    thinking: CheckpointSummary
    tokenizers: dict


def open_pair(instruct: str | Path, thinking: str | Path, revision: str | None = None,
              trust_remote_code: bool = False) -> OpenedPair:
    """Find both checkpoints and refuse a pair that cannot be interpolated: architecture,
    shapes, tensor names and dtypes, and vocabulary, all read without loading a weight."""
    instruct_dir = resolve_model_dir(instruct, revision)
    thinking_dir = resolve_model_dir(thinking, revision)
    summary_i, summary_t = read_checkpoint(instruct_dir), read_checkpoint(thinking_dir)
    check_pair(summary_i, summary_t)
    tokenizers = {side: load_tokenizer(path, side, trust_remote_code)
                  for side, path in (("instruct", instruct_dir), ("thinking", thinking_dir))}
    check_same_vocabulary(tokenizers["instruct"], tokenizers["thinking"])
    return OpenedPair(instruct_dir, thinking_dir, summary_i, summary_t, tokenizers)


def check_pair(instruct: CheckpointSummary, thinking: CheckpointSummary) -> None:
    """Raise PairMismatchError naming the first difference that forbids interpolation."""
    a, b = instruct, thinking
    if a.architecture != b.architecture:
        raise PairMismatchError(f"architectures differ: instruct {a.path} is {a.architecture}, "
                                f"thinking {b.path} is {b.architecture}")
    for key in _SHAPE_KEYS:
        if a.config.get(key) != b.config.get(key):
            raise PairMismatchError(f"config field {key!r} differs: instruct has "
                                    f"{a.config.get(key)!r}, thinking has {b.config.get(key)!r}")
    check_same_tensors(a.tensors, b.tensors)


def check_same_tensors(a: TensorSpecs, b: TensorSpecs) -> None:
    """Same parameter names, shapes and dtypes in both endpoints, or an error naming the first
    difference (used on checkpoint headers before loading, and on models already in memory)."""
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        name, side = (only_a[0], "instruct") if only_a else (only_b[0], "thinking")
        raise PairMismatchError(f"parameter names differ: {name!r} is only in the {side} "
                                f"checkpoint ({len(only_a) + len(only_b)} names differ)")
    for name in sorted(a):
        (shape_a, dtype_a), (shape_b, dtype_b) = a[name], b[name]
        if shape_a != shape_b:
            raise PairMismatchError(f"parameter {name!r} has shape {list(shape_a)} in instruct "
                                    f"but {list(shape_b)} in thinking")
        if dtype_a != dtype_b:
            raise PairMismatchError(f"parameter {name!r} is stored as {dtype_a} in instruct but "
                                    f"{dtype_b} in thinking")


def check_same_vocabulary(instruct_tokenizer, thinking_tokenizer) -> None:
    """Interpolated weights only mean something if token ids mean the same in both models."""
    va, vb = instruct_tokenizer.get_vocab(), thinking_tokenizer.get_vocab()
    if va == vb:
        return
    if len(va) != len(vb):
        raise PairMismatchError(f"tokenizer vocabularies differ in size: instruct has {len(va)}, "
                                f"thinking has {len(vb)} tokens")
    for token in sorted(set(va) | set(vb)):
        if va.get(token) != vb.get(token):
            raise PairMismatchError(f"tokenizer vocabularies differ: token {token!r} has id "
                                    f"{va.get(token)} in instruct and {vb.get(token)} in thinking")


def checkpoint_fingerprint(folder: Path) -> str:
    """Cheap identity of a checkpoint: config, tensor layout, and samples of the weight bytes.

    Hashing a 4B model entirely would take a minute; the header plus 64 kB from the start and
    the end of every weight file tells apart any two real checkpoints.
    """
    summary = read_checkpoint(folder)
    parts = [json.dumps(summary.config, sort_keys=True, default=str),
             json.dumps(sorted(summary.tensors.items()), default=str)]
    for file in safetensors_files(folder):
        size = file.stat().st_size
        with file.open("rb") as handle:
            head = handle.read(65536)
            handle.seek(max(0, size - 65536))
            tail = handle.read(65536)
        parts.append(f"{file.name}:{size}:{short_digest(head)}:{short_digest(tail)}")
    return short_digest("\n".join(parts))


def load_tokenizer(path: Path, side: str, trust_remote_code: bool = False):
    """A checkpoint's tokenizer, or a clear error naming the side and folder."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001 - tokenizers fail in many ways
        raise DamiPrefError(f"cannot load the {side} tokenizer from {path}: "
                            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") \
            from None
