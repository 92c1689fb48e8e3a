"""A Hub-ready ranker folder: the ranker's files plus a model card, and an optional upload.

The folder is complete before any upload starts; a failed upload (no network, no token, no
permission) leaves it intact and says how to retry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import DamiPrefError
from ..utils.hub import looks_like_hub_id
from ..utils.io import atomic_write_text, building_folder
from .checkpoint import PACKAGE_PREFIX, read_ranker_config

SKIP = {"README.md"}


def _hub_id(reference: str) -> str | None:
    """The backbone as a Hub id, when it is one (not a local path or a package path)."""
    if reference.startswith(PACKAGE_PREFIX):
        return None
    return reference if looks_like_hub_id(reference) else None


def model_card(config: dict, repo_id: str | None, license: str,
               evaluation: dict | None = None) -> str:
    """The README.md of an exported ranker: metadata, then one section per topic."""
    return "\n".join([_card_metadata(config, license), "", _card_intro(config, repo_id),
                      _card_grid(config), _card_training(config),
                      _card_evaluation(config, evaluation), _card_usage(config, repo_id)])


def _card_metadata(config: dict, license: str) -> str:
    yaml = ["---", "library_name: dami-pref", f"license: {license}"]
    hub_backbone = _hub_id(config["backbone"])
    if hub_backbone:
        yaml.append(f"base_model: {hub_backbone}")
    yaml += ["tags:", "- dami-pref", "- reward-model", "- reasoning", "- model-interpolation",
             "- lora", "- peft", "---"]
    return "\n".join(yaml)


def _card_intro(config: dict, repo_id: str | None) -> str:
    chat = " through the backbone chat template" if config.get("chat_template") else ""
    lora = config["lora"]
    return f"""# {repo_id or "a DAMI-Pref ranker"}

A DAMI-Pref ranker: for a question q it scores every candidate reasoning intensity λ, and the
interpolated model Θ(λ) = λ·Θ_Thinking + (1−λ)·Θ_Instruct at the best-scoring λ answers it. It
was trained with dami-pref on (accuracy, cost)-ranked preference pairs
between λ values, built from rollouts of the pair (objective: `{config.get('objective')}`).

- Backbone: `{config["backbone"]}` with LoRA (r={lora['r']}, alpha={lora['alpha']},
  target modules `{lora['target_modules']}`), and a λ-conditioned head
  (`head.safetensors`, width {config['head_width']}).
- Prompt: `{config['prompt_template']}`{chat};
  questions longer than {config['max_length']} tokens keep their last tokens.
"""


def _card_grid(config: dict) -> str:
    costs = config.get("lambda_costs") or {}
    rows = "\n".join(f"| {lam:g} | {costs.get(f'{lam:g}', float('nan')):.1f} |"
                     for lam in config["grid"])
    return f"""## Candidate λ grid

| λ | mean generated tokens in the training rollouts |
|---:|---:|
{rows}
"""


def _card_training(config: dict) -> str:
    t = config.get("training", {})
    return f"""## Training data

- pairs: `{t.get('pairs_source', '?')}` (rollout fingerprint
  `{t.get('rollout_fingerprint', '?')}`)
- training problems: {t.get('train_problems', '?')}, pairs: {t.get('train_pairs', '?')},
  validation problems: {t.get('validation_problems', '?')}
- optimizer steps: {t.get('steps', '?')}, processes: {t.get('processes', '?')},
  seed: {t.get('seed', '?')}
"""


def _card_evaluation(config: dict, evaluation: dict | None) -> str:
    val = config.get("training", {}).get("validation") or {}
    metrics = "\n".join(f"| {key.replace('_', ' ')} | {value:.4g} |" for key, value in val.items()
                        if isinstance(value, (int, float)))
    evaluation_md = ""
    if evaluation:
        evaluation_md = "\n### Evaluation\n\n| method | accuracy | mean tokens |\n|---|---:|---:|\n"
        evaluation_md += "\n".join(f"| {m['method']} | {100 * m['accuracy']:.1f}% | "
                                   f"{m['mean_tokens']:.1f} |"
                                   for m in evaluation.get("methods", []))
    return f"""## Evaluation

Validation metrics at the end of training (selected λ against the oracle λ*):

| metric | value |
|---|---:|
{metrics}
{evaluation_md}
"""


def _card_usage(config: dict, repo_id: str | None) -> str:
    repo = repo_id or "PATH/TO/THIS/FOLDER"
    return f"""## Usage

```python
from dami_pref import LambdaRanker

ranker = LambdaRanker.from_pretrained("{repo}")
ranker.select(["12+7+19"])                     # one λ per question
ranker.select(["12+7+19"], cost_weight=0.5)    # trade accuracy for fewer tokens
```

```bash
dami-pref select --ranker {repo} --question "12+7+19"
dami-pref select --ranker {repo} --input questions.jsonl --generate \\
    --instruct INSTRUCT_MODEL --thinking THINKING_MODEL
```

Files: `adapter_model.safetensors` and `adapter_config.json` (peft LoRA), `head.safetensors`,
the tokenizer, and `dami_pref.json` (format version {config['format_version']}: backbone, λ grid,
prompt, pooling, head shape, training summary). Loading uses safetensors only.
"""


def export_ranker(ranker: str | Path, out: str | Path, *, repo_id: str | None = None,
                  push: bool = False, private: bool = False, license: str = "apache-2.0",
                  evaluation: str | Path | None = None, overwrite: bool = False,
                  token: str | None = None) -> Path:
    ranker, out = Path(ranker), Path(out)
    config = read_ranker_config(ranker)
    if push and not repo_id:
        raise DamiPrefError("--push needs --repo_id USER/NAME")
    if repo_id and repo_id.count("/") != 1:
        raise DamiPrefError(f"--repo_id must look like USER/NAME, got {repo_id!r}")
    if out.resolve() == ranker.resolve():
        raise DamiPrefError("--out must differ from --ranker")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DamiPrefError(f"{out} exists and is not empty; pass --overwrite to replace it")
    results = None
    if evaluation:
        try:
            results = json.loads(Path(evaluation).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DamiPrefError(f"cannot read evaluation results {evaluation}: {err}") from None
    with building_folder(out) as tmp:
        for item in ranker.iterdir():
            if item.is_file() and item.name not in SKIP and not item.name.startswith("."):
                shutil.copy2(item, tmp / item.name)
        atomic_write_text(tmp / "README.md", model_card(config, repo_id, license, results))
    if push:
        push_folder(out, repo_id, private=private, token=token)
    return out


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
