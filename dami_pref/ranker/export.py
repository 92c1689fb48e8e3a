"""A Hub-ready ranker folder that any Hugging Face tool loads in one call, and an optional upload.

The export is the ranker **merged**: the LoRA adapter folded into the backbone and the trained
``score`` layer in place, saved as a plain ``AutoModelForSequenceClassification`` folder (one
logit per grid λ, ``id2label`` naming them), with the tokenizer, ``dami_pref.json`` (grid, costs,
operating point) and a ``README.md`` card whose snippet runs as written. So

    AutoModelForSequenceClassification.from_pretrained("someone/ranker")

scores a question, under any folder name, without dami-pref, and vLLM's pooling runner serves
it. The ranker is loaded (and its weights checked) before anything is written; only model files
are written; a pickle in the ranker or its local backbone is an error; the folder is complete
before any upload starts, and a failed upload leaves it intact.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DamiPrefError
from ..utils.digest import ranker_fingerprint
from ..utils.io import atomic_write_json, atomic_write_text, building_folder, check_destination
from ..utils.portable import portable
from .card import model_card
from .checkpoint import CONFIG_FILE, LOCAL_PREFIX, hub_backbone, ranker_json, resolve_reference
from .export_files import RANKER_FILES, check_files, refuse_pickles

SKIP = ("README.md",)


def export_ranker(ranker: str | Path, out: str | Path, *, repo_id: str | None = None,
                  push: bool = False, private: bool = False, license: str = "apache-2.0",
                  evaluation: str | Path | None = None, overwrite: bool = False,
                  token: str | None = None, base_model_id: str | None = None,
                  dataset_id: str | None = None) -> Path:
    """Write the Hub-ready folder (and upload it with ``push``); returns its path."""
    from .inference import LambdaRanker

    ranker, out = Path(ranker), Path(out)
    check_export_options(ranker, out, repo_id, push, overwrite, base_model_id)
    check_files(ranker, RANKER_FILES, "the ranker", regenerated=SKIP)  # pickles: an error
    loaded = LambdaRanker.from_pretrained(ranker, device="cpu", dtype="auto")
    config = loaded.config
    backbone = resolve_reference(config["backbone"], ranker)
    if Path(backbone).is_dir():
        refuse_pickles(Path(backbone), "the backbone")
    results = read_evaluation(evaluation)
    base_model = base_model_id or config.get("base_model") or hub_backbone(config["backbone"])
    with building_folder(out) as tmp:
        merged = write_merged(loaded, tmp)
        merged["source_fingerprint"] = ranker_fingerprint(ranker)  # as results.json names it
        atomic_write_json(tmp / CONFIG_FILE, merged)
        if results is not None:
            atomic_write_json(tmp / "evaluation.json", results)
        atomic_write_text(tmp / "README.md", model_card(
            merged, repo_id, license, results, base_model, dataset_id))
    if push:
        push_folder(out, repo_id, private=private, token=token)
    return out


def write_merged(loaded, folder: Path) -> dict:
    """The merged classifier and its tokenizer into ``folder``; returns its dami_pref.json."""
    model = loaded.model.backbone
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # LoRA folded in, the trained score layer in place
    model.config.pad_token_id = loaded.tokenizer.pad_token_id
    model.save_pretrained(str(folder), safe_serialization=True)
    loaded.tokenizer.save_pretrained(str(folder))
    config = loaded.config
    spec = loaded.spec
    spec.backbone = LOCAL_PREFIX
    training = portable_training(config.get("training") or {})
    merged = ranker_json(spec, "merged", training, config.get("lambda_costs"),
                         config.get("operating_point"))
    merged["base_model"] = config.get("base_model") or hub_backbone(config["backbone"])
    merged["pair"] = training.get("pair")
    return merged


def portable_training(training: dict) -> dict:
    """The training record without this machine's paths: the pairs by folder name, the
    backbone as recorded portably."""
    training = json.loads(json.dumps(training))
    run = training.get("run") or {}
    if run.get("backbone"):
        run["backbone"] = portable(run["backbone"])
    for record, key in ((run, "pairs"), (training, "pairs_source")):
        if record.get(key):
            record[key] = Path(record[key]).name
    return training


def check_export_options(ranker: Path, out: Path, repo_id: str | None, push: bool,
                         overwrite: bool, base_model_id: str | None) -> None:
    if push and not repo_id:
        raise DamiPrefError("--push needs --repo_id USER/NAME")
    for name, value in (("--repo_id", repo_id), ("--base_model_id", base_model_id)):
        if value and (value.count("/") != 1 or value.startswith((".", "/", "~"))):
            raise DamiPrefError(f"{name} must look like USER/NAME, got {value!r}")
    if out.resolve() == ranker.resolve():
        raise DamiPrefError("--output must differ from --ranker")
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
