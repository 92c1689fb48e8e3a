"""The ranker folder, in one of two forms, both safetensors and JSON only (never a pickle):

- **adapter** (training's output and its checkpoints): the LoRA adapter, which carries the
  classifier's ``score`` layer in full (peft's ``modules_to_save``), the tokenizer and
  ``dami_pref.json``; the backbone is loaded from where ``dami_pref.json`` says;
- **merged** (an export): a whole ``AutoModelForSequenceClassification`` folder (config,
  weights, tokenizer) plus ``dami_pref.json``, loadable with one standard call.

``dami_pref.json`` holds what the model folder cannot: the grid, the objective, the expected
cost of each λ and the operating point chosen on validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import DamiPrefError, first_line
from ..utils.tensors import check_finite
from ..utils.io import atomic_write_json, building_folder
from ..utils.hub import looks_like_hub_id
from ..utils.portable import PACKAGE_PREFIX, portable, resolve_portable
from ..version import __version__
from .model import RankerModel, RankerSpec

FORMAT_VERSION = 2  # 1: the λ-feature head of earlier releases (head.safetensors)
CONFIG_FILE = "dami_pref.json"
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_FILES = (CONFIG_FILE, ADAPTER_FILE, "adapter_config.json", "tokenizer_config.json")
MERGED_FILES = (CONFIG_FILE, "config.json", "tokenizer_config.json")
LOCAL_PREFIX = "./"  # a backbone copied into the ranker folder itself (an export)


def resolve_reference(reference: str, folder: str | Path | None = None) -> str:
    """Where a recorded backbone is on this machine: ``dami_pref://…`` inside the installed
    package, ``./…`` inside the ranker folder, anything else as recorded (Hub id or path)."""
    if reference.startswith(LOCAL_PREFIX) and folder is not None:
        return str(Path(folder) / reference[len(LOCAL_PREFIX):])
    return resolve_portable(reference)


def hub_backbone(reference: str) -> str | None:
    """The backbone as a Hub id, when it is one (not a local, package or in-folder path)."""
    if reference.startswith((PACKAGE_PREFIX, LOCAL_PREFIX)):
        return None
    return reference if looks_like_hub_id(reference) else None


def save_ranker(folder: str | Path, model: RankerModel, tokenizer, spec: RankerSpec,
                training: dict | None = None, lambda_costs: dict | None = None,
                state_dict: dict[str, torch.Tensor] | None = None,
                operating_point: dict | None = None) -> Path:
    """Write the adapter form under a temporary name and rename it when whole.

    ``state_dict`` is the full model state (pass ``accelerator.get_state_dict(model)`` under
    DeepSpeed ZeRO-3, where parameters are partitioned); by default the model's own.
    """
    folder = Path(folder)
    state = state_dict if state_dict is not None else model.state_dict()
    backbone = {k.removeprefix("backbone."): v for k, v in state.items()
                if k.startswith("backbone.")}
    with building_folder(folder) as tmp:
        model.backbone.save_pretrained(str(tmp), state_dict=backbone, safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / CONFIG_FILE, ranker_json(spec, "adapter", training,
                                                         lambda_costs, operating_point))
        if not (tmp / ADAPTER_FILE).is_file():
            raise DamiPrefError(f"peft did not write {ADAPTER_FILE}; cannot save the ranker")
    return folder


def ranker_json(spec: RankerSpec, form: str, training: dict | None, lambda_costs: dict | None,
                operating_point: dict | None) -> dict:
    return {"format_version": FORMAT_VERSION, "library_version": __version__, "form": form,
            **spec.to_dict(), "grid": [round(float(lam), 10) for lam in spec.grid],
            "backbone": spec.backbone if spec.backbone == LOCAL_PREFIX
            else portable(spec.backbone),
            "training": training or {}, "lambda_costs": lambda_costs or {},
            **({"operating_point": operating_point} if operating_point else {})}


def recorded_pair(config: dict) -> dict:
    """The pair a ranker's λ refer to, as its ``dami_pref.json`` records it (an exported folder
    at the top level, a trained one under ``training``); empty for a ranker that predates it."""
    return config.get("pair") or (config.get("training") or {}).get("pair") or {}


def ranker_form(folder: Path) -> str:
    """adapter or merged, from the files present."""
    return "adapter" if (folder / "adapter_config.json").is_file() else "merged"


def read_ranker_config(folder: str | Path) -> dict:
    """``dami_pref.json`` of a ranker folder, with the folder checked for every file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DamiPrefError(f"ranker folder not found: {folder}")
    if not (folder / CONFIG_FILE).is_file():
        raise DamiPrefError(f"{folder}: not a complete ranker folder, missing ['{CONFIG_FILE}']")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except json.JSONDecodeError as err:
        raise DamiPrefError(f"{folder / CONFIG_FILE}: not valid JSON ({err.msg})") from None
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DamiPrefError(f"{folder}: ranker format version {version!r} is newer than this "
                            f"dami-pref understands ({FORMAT_VERSION}); upgrade dami-pref")
    if version < FORMAT_VERSION:
        raise DamiPrefError(f"{folder}: a ranker of format {version} (the λ-feature head of "
                            "earlier releases); train it again with this dami-pref")
    needed = ADAPTER_FILES if ranker_form(folder) == "adapter" else MERGED_FILES
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise DamiPrefError(f"{folder}: not a complete ranker folder, missing {missing}")
    return config


def load_ranker(folder: str | Path, backbone: str | None = None, device: str | None = "cpu",
                dtype: torch.dtype | None = None, trust_remote_code: bool = False):
    """(RankerModel in eval mode, tokenizer, config) from a ranker folder (safetensors only)."""
    folder = Path(folder)
    config = read_ranker_config(folder)
    spec = RankerSpec.from_dict(config)
    if ranker_form(folder) == "merged":
        model = load_merged(folder, spec, dtype, trust_remote_code)
    else:
        spec.backbone = backbone or resolve_reference(config["backbone"], folder)
        model = load_adapter(folder, spec, dtype, trust_remote_code)
    tokenizer = load_tokenizer(folder)
    check_finite(model.named_parameters(), str(folder))  # NaN scores would pick λ silently
    model.to(device).eval()
    return model, tokenizer, config


def load_adapter(folder: Path, spec: RankerSpec, dtype, trust_remote_code: bool) -> RankerModel:
    from peft import PeftModel

    from .model import load_classifier

    base, _ = load_classifier(spec.backbone, spec, dtype, trust_remote_code)
    if int(base.config.hidden_size) != spec.hidden_size:
        raise DamiPrefError(f"backbone {spec.backbone} has hidden size {base.config.hidden_size}, "
                            f"the ranker was trained with {spec.hidden_size}")
    try:
        peft_model = PeftModel.from_pretrained(base, str(folder), use_safetensors=True)
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"cannot load the LoRA adapter in {folder}: "
                            f"{type(err).__name__}: {first_line(err, 300)}") from None
    return RankerModel(peft_model, spec)


def load_merged(folder: Path, spec: RankerSpec, dtype, trust_remote_code: bool) -> RankerModel:
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"cannot load the ranker model in {folder}: "
                            f"{type(err).__name__}: {first_line(err, 300)}") from None
    if model.config.num_labels != len(spec.labels):
        raise DamiPrefError(f"{folder}: the classifier has {model.config.num_labels} labels, "
                            f"{CONFIG_FILE} names {len(spec.labels)}")
    return RankerModel(model, spec)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"{folder}: cannot load the ranker's tokenizer "
                            f"({type(err).__name__}: {first_line(err)})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_weights_into(model: RankerModel, folder: str | Path) -> None:
    """Load a ranker folder's adapter (and score layer) into a ranker being trained."""
    from peft import set_peft_model_state_dict

    folder = Path(folder)
    if not (folder / ADAPTER_FILE).is_file():
        raise DamiPrefError(f"{folder}: not a ranker checkpoint, {ADAPTER_FILE} is missing")
    try:
        adapter = load_file(str(folder / ADAPTER_FILE))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise DamiPrefError(f"{folder}: unreadable checkpoint weights ({err})") from None
    try:
        result = set_peft_model_state_dict(model.backbone, adapter)
    except RuntimeError as err:  # shapes differ: another LoRA rank, backbone or grid
        raise DamiPrefError(f"{folder}: the adapter does not fit this ranker "
                            f"({str(err).splitlines()[-1].strip()[:200]}); was it trained with "
                            "other LoRA settings or another grid?") from None
    if getattr(result, "unexpected_keys", None):
        raise DamiPrefError(f"{folder}: the adapter does not fit this ranker (unexpected "
                            f"{result.unexpected_keys[:3]}); was it trained with other LoRA "
                            "settings?")
