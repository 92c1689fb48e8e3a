"""The ranker folder: the LoRA adapter, the head, the tokenizer and ``dami_pref.json``.

Everything is safetensors or JSON: loading a ranker never unpickles. The head is saved
explicitly beside the adapter, so it cannot be lost the way some reward-model heads were.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import DamiPrefError
from ..utils.tensors import check_finite
from ..utils.io import atomic_write_json, building_folder
from ..version import PACKAGE_DIR, __version__
from .model import RankerModel, RankerSpec

FORMAT_VERSION = 1
CONFIG_FILE = "dami_pref.json"
HEAD_FILE = "head.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
REQUIRED = (CONFIG_FILE, HEAD_FILE, ADAPTER_FILE, "adapter_config.json", "tokenizer_config.json")
PACKAGE_PREFIX = "dami_pref://"  # a path inside the installed package, e.g. the toy base


def portable_reference(name_or_path: str) -> str:
    """Record a backbone so the folder still loads elsewhere: paths inside the package become
    ``dami_pref://…``, anything else stays as the user gave it (a Hub id or a path)."""
    package = PACKAGE_DIR
    path = Path(name_or_path).expanduser()
    if path.exists():
        try:
            return PACKAGE_PREFIX + path.resolve().relative_to(package).as_posix()
        except ValueError:
            return str(path.resolve())
    return name_or_path


LOCAL_PREFIX = "./"  # a backbone copied into the ranker folder itself (an export)


def resolve_reference(reference: str, folder: str | Path | None = None) -> str:
    """Where a recorded backbone is on this machine: ``dami_pref://…`` inside the installed
    package, ``./…`` inside the ranker folder, anything else as recorded (Hub id or path)."""
    if reference.startswith(PACKAGE_PREFIX):
        return str(PACKAGE_DIR / reference[len(PACKAGE_PREFIX):])
    if reference.startswith(LOCAL_PREFIX) and folder is not None:
        return str(Path(folder) / reference[len(LOCAL_PREFIX):])
    return reference


def save_ranker(folder: str | Path, model: RankerModel, tokenizer, spec: RankerSpec,
                training: dict | None = None, lambda_costs: dict | None = None,
                state_dict: dict[str, torch.Tensor] | None = None,
                operating_point: dict | None = None) -> Path:
    """Write the ranker folder under a temporary name and rename it when whole.

    ``state_dict`` is the full model state (pass ``accelerator.get_state_dict(model)`` under
    DeepSpeed ZeRO-3, where parameters are partitioned); by default the model's own.
    """
    folder = Path(folder)
    state = state_dict if state_dict is not None else model.state_dict()
    head = {k.removeprefix("head."): v.detach().cpu().contiguous()
            for k, v in state.items() if k.startswith("head.")}
    backbone = {k.removeprefix("backbone."): v for k, v in state.items()
                if k.startswith("backbone.")}
    with building_folder(folder) as tmp:
        model.backbone.save_pretrained(str(tmp), state_dict=backbone, safe_serialization=True)
        save_file(head, str(tmp / HEAD_FILE), metadata={"format": "pt"})
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / CONFIG_FILE, {
            "format_version": FORMAT_VERSION, "library_version": __version__,
            **spec.to_dict(), "backbone": portable_reference(spec.backbone),
            "training": training or {}, "lambda_costs": lambda_costs or {},
            **({"operating_point": operating_point} if operating_point else {})})
        if not (tmp / ADAPTER_FILE).is_file():
            raise DamiPrefError(f"peft did not write {ADAPTER_FILE}; cannot save the ranker")
    return folder


def read_ranker_config(folder: str | Path) -> dict:
    """``dami_pref.json`` of a ranker folder, with the folder checked for every file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DamiPrefError(f"ranker folder not found: {folder}")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise DamiPrefError(f"{folder}: not a complete ranker folder, missing {missing}")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except json.JSONDecodeError as err:
        raise DamiPrefError(f"{folder / CONFIG_FILE}: not valid JSON ({err.msg})") from None
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DamiPrefError(f"{folder}: ranker format version {version!r} is newer than this "
                            f"dami-pref understands ({FORMAT_VERSION}); upgrade dami-pref")
    return config


def load_ranker(folder: str | Path, backbone: str | None = None, device: str | None = "cpu",
                dtype: torch.dtype | None = None, trust_remote_code: bool = False):
    """(RankerModel in eval mode, tokenizer, config) from a ranker folder (safetensors only)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from .model import load_backbone

    folder = Path(folder)
    config = read_ranker_config(folder)
    spec = RankerSpec.from_dict({k: config[k] for k in RankerSpec.__dataclass_fields__
                                 if k in config})
    spec.backbone = backbone or resolve_reference(config["backbone"], folder)
    base, _ = load_backbone(spec.backbone, dtype, trust_remote_code)
    if int(base.config.hidden_size) != spec.hidden_size:
        raise DamiPrefError(f"backbone {spec.backbone} has hidden size {base.config.hidden_size}, "
                            f"the ranker was trained with {spec.hidden_size}")
    try:
        peft_model = PeftModel.from_pretrained(base, str(folder), use_safetensors=True)
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"cannot load the LoRA adapter in {folder}: {err}") from None
    model = RankerModel(peft_model, spec)
    try:
        head = load_file(str(folder / HEAD_FILE))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise DamiPrefError(f"{folder / HEAD_FILE}: not a readable safetensors file ({err})") \
            from None
    try:
        missing, unexpected = model.head.load_state_dict(head, strict=False)
    except RuntimeError as err:  # shapes differ: the head was edited or belongs elsewhere
        raise DamiPrefError(f"{folder / HEAD_FILE}: head does not match {CONFIG_FILE} "
                            f"({str(err).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise DamiPrefError(f"{folder / HEAD_FILE}: head does not match (missing {missing}, "
                            f"unexpected {unexpected})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"{folder}: cannot load the ranker's tokenizer "
                            f"({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_finite(model.named_parameters(), str(folder))  # NaN scores would pick λ silently
    model.to(device).eval()
    return model, tokenizer, config


def load_weights_into(model: RankerModel, folder: str | Path) -> None:
    """Load a ranker folder's adapter and head into a ranker being trained (resuming)."""
    from peft import set_peft_model_state_dict

    folder = Path(folder)
    for name in (ADAPTER_FILE, HEAD_FILE):
        if not (folder / name).is_file():
            raise DamiPrefError(f"{folder}: not a ranker checkpoint, {name} is missing")
    try:
        adapter = load_file(str(folder / ADAPTER_FILE))
        head = load_file(str(folder / HEAD_FILE))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise DamiPrefError(f"{folder}: unreadable checkpoint weights ({err})") from None
    try:
        result = set_peft_model_state_dict(model.backbone, adapter)
    except RuntimeError as err:  # shapes differ: another LoRA rank or backbone
        raise DamiPrefError(f"{folder}: the adapter does not fit this ranker "
                            f"({str(err).splitlines()[-1].strip()[:200]}); was it trained with "
                            "other LoRA settings?") from None
    if getattr(result, "unexpected_keys", None):
        raise DamiPrefError(f"{folder}: the adapter does not fit this ranker (unexpected "
                            f"{result.unexpected_keys[:3]}); was it trained with other LoRA "
                            "settings?")
    try:
        model.head.load_state_dict(head)
    except RuntimeError as err:
        raise DamiPrefError(f"{folder / HEAD_FILE}: head does not fit this ranker "
                            f"({str(err).splitlines()[-1].strip()})") from None
