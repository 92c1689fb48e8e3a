"""A Hub-ready ranker folder that works outside this toolkit, and an optional upload.

The folder holds the LoRA adapter (its ``base_model_name_or_path`` is a Hub id, or ``base``: a
copy of a local backbone inside the folder; never a path of this machine), ``head.safetensors``,
the tokenizer, ``dami_pref.json`` and a ``README.md`` model card whose snippet scores a question
with torch, transformers, peft and safetensors alone. The ranker is loaded (and its weights
checked) before anything is written; the folder is complete before any upload starts, and a
failed upload leaves it intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import DamiPrefError
from ..utils.hub import looks_like_hub_id
from ..utils.io import atomic_write_json, atomic_write_text, building_folder, check_destination
from .card import model_card
from .export_files import BACKBONE_FILES, RANKER_FILES, allowed_files
from .checkpoint import (CONFIG_FILE, LOCAL_PREFIX, PACKAGE_PREFIX,
                         read_ranker_config, resolve_reference)

SKIP = {"README.md"}
BASE_DIR = "base"  # where a local backbone is copied inside the export


def hub_backbone(reference: str) -> str | None:
    """The backbone as a Hub id, when it is one (not a local, package or in-folder path)."""
    if reference.startswith((PACKAGE_PREFIX, LOCAL_PREFIX)):
        return None
    return reference if looks_like_hub_id(reference) else None


def check_ranker_loads(ranker: Path) -> dict:
    """Load the ranker as a user would (which also refuses NaN or inf weights): nothing broken
    is exported."""
    from .inference import LambdaRanker

    return LambdaRanker.from_pretrained(ranker, device="cpu").config


def export_ranker(ranker: str | Path, out: str | Path, *, repo_id: str | None = None,
                  push: bool = False, private: bool = False, license: str = "apache-2.0",
                  evaluation: str | Path | None = None, overwrite: bool = False,
                  token: str | None = None, base_model_id: str | None = None,
                  dataset_id: str | None = None) -> Path:
    """Write the Hub-ready folder (and upload it with ``push``); returns its path."""
    ranker, out = Path(ranker), Path(out)
    check_export_options(ranker, out, repo_id, push, overwrite, base_model_id)
    config = check_ranker_loads(ranker)
    results = read_evaluation(evaluation)
    base_model = base_model_id or hub_backbone(config["backbone"])
    ranker_files = allowed_files(ranker, RANKER_FILES, "the ranker", regenerated=SKIP)
    backbone_files = [] if base_model else allowed_files(
        resolve_reference(config["backbone"], ranker), BACKBONE_FILES, "the backbone",
        regenerated=("README.md",))
    with building_folder(out) as tmp:
        for item in ranker_files:
            shutil.copy2(item, tmp / item.name)
        if base_model is None:  # a local or bundled backbone travels with the ranker
            (tmp / BASE_DIR).mkdir()
            for item in backbone_files:
                shutil.copy2(item, tmp / BASE_DIR / item.name)
        point_at_base(tmp, config, base_model or BASE_DIR)
        if results is not None:
            atomic_write_json(tmp / "evaluation.json", results)
        atomic_write_text(tmp / "README.md", model_card(
            read_ranker_config(tmp), repo_id, license, results, base_model, dataset_id,
            base_in_folder=base_model is None))
    if push:
        push_folder(out, repo_id, private=private, token=token)
    return out


def check_export_options(ranker: Path, out: Path, repo_id: str | None, push: bool,
                         overwrite: bool, base_model_id: str | None) -> None:
    if push and not repo_id:
        raise DamiPrefError("--push needs --repo_id USER/NAME")
    for name, value in (("--repo_id", repo_id), ("--base_model_id", base_model_id)):
        if value and (value.count("/") != 1 or value.startswith((".", "/", "~"))):
            raise DamiPrefError(f"{name} must look like USER/NAME, got {value!r}")
    if out.resolve() == ranker.resolve():
        raise DamiPrefError("--out must differ from --ranker")
    check_destination(out, overwrite)


def read_evaluation(evaluation: str | Path | None) -> dict | None:
    if not evaluation:
        return None
    try:
        results = json.loads(Path(evaluation).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamiPrefError(f"cannot read evaluation results {evaluation}: {err}") from None
    if not isinstance(results, dict) or not isinstance(results.get("methods"), list):
        raise DamiPrefError(f"{evaluation}: not a results.json of dami-pref eval")
    return results


def point_at_base(folder: Path, config: dict, base: str) -> None:
    """Record the backbone portably: a Hub id, or ``base`` (the copy inside the folder)."""
    adapter_config = json.loads((folder / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = base
    atomic_write_json(folder / "adapter_config.json", adapter_config)
    ranker_config = json.loads((folder / CONFIG_FILE).read_text())
    ranker_config["backbone"] = base if base != BASE_DIR else LOCAL_PREFIX + BASE_DIR
    atomic_write_json(folder / CONFIG_FILE, ranker_config)


def push_folder(folder: Path, repo_id: str, private: bool = False,
                token: str | None = None) -> str:
    """Upload with huggingface_hub; any failure is a clear error and the folder stays."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                                 commit_message="Upload DAMI-Pref ranker")
    except Exception as err:  # noqa: BLE001 - offline, no token, no permission alike
        raise DamiPrefError(
            f"uploading {folder} to {repo_id} failed ({type(err).__name__}: {err}). The folder is "
            "complete and unchanged; log in (`hf auth login` or HF_TOKEN) and run the export "
            "again with --push, or upload the folder yourself") from None
    return str(getattr(info, "commit_url", info))
