"""The model card of an exported ranker: Hub metadata and a card a user without dami-pref can use.

The metadata is built with huggingface_hub's ``ModelCardData`` (``base_model``, ``library_name``,
``tags``, ``datasets``, ``license`` and ``model-index`` results when an evaluation is given). The
usage section holds a self-contained snippet (torch, transformers, peft, safetensors only) that
scores every λ of the grid exactly as ``LambdaRanker.score`` does; a test runs it with dami_pref
made unimportable.
"""

from __future__ import annotations

from ..ranker.features import N_FREQUENCIES

USAGE = '''\
```python
import json, math
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder = Path({folder})  # this repository, downloaded (huggingface_hub.snapshot_download)
config = json.loads((folder / "dami_pref.json").read_text())
base = AutoModel.from_pretrained({base})  # the backbone without its LM head
model = PeftModel.from_pretrained(base, folder).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)
tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
head = load_file(folder / "head.safetensors")
grid = torch.tensor(config["grid"])


def lambda_features(lams):  # [λ, λ², sin kπλ, cos kπλ for k = 1..{k}]
    angles = math.pi * lams[:, None] * torch.arange(1, {k_plus})
    return torch.cat([lams[:, None], lams[:, None] ** 2, angles.sin(), angles.cos()], dim=1)


@torch.no_grad()
def score(questions):  # r(q, λ) for every question and every λ of the grid
    texts = [config["prompt_template"].format(question=q) for q in questions]
    chat = config["chat_template"] and tokenizer.chat_template
    if chat:
        texts = [tokenizer.apply_chat_template([{{"role": "user", "content": t}}], tokenize=False,
                                               add_generation_prompt=True) for t in texts]
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    enc = tokenizer(texts, padding=True, truncation=True, max_length=config["max_length"],
                    add_special_tokens=not chat, return_tensors="pt")
    hidden = model(**enc).last_hidden_state
    last = (enc["attention_mask"] * torch.arange(enc["attention_mask"].shape[1])).argmax(1)
    h = F.layer_norm(hidden[torch.arange(len(texts)), last].float(), (hidden.shape[-1],),
                     head["norm.weight"], head["norm.bias"])
    u = F.linear(h, head["question.weight"], head["question.bias"])
    v = F.linear(lambda_features(grid), head["lam.weight"], head["lam.bias"])
    if config["objective"] == "pred":  # DAMI-Pred: the grid point nearest the predicted λ
        pred = torch.sigmoid(F.linear(u, head["pred.weight"], head["pred.bias"]))
        return -(grid[None, :] - pred).abs()
    if config["objective"] == "route":  # DAMI-Routing: a logit for "think" (λ = 1)
        return F.linear(u, head["route.weight"], head["route.bias"]) * (grid[None, :] - 0.5)
    z = F.gelu(u[:, None, :] + v[None, :, :])
    return F.linear(z, head["score.1.weight"], head["score.1.bias"]).squeeze(-1)


scores = score(["12+7+19", "3+4"])
costs = torch.tensor([config["lambda_costs"].get(f"{{lam:g}}", lam) for lam in config["grid"]])
beta = 0.0  # the cost knob: β > 0 saves tokens, β < 0 buys accuracy
chosen = grid[(scores - beta * costs / costs.max()).argmax(dim=1)]  # ties: the lower λ
```'''


def usage_snippet(folder: str, base: str) -> str:
    """The card's snippet, for a ranker folder and a backbone reference (Python expressions)."""
    return USAGE.format(folder=folder, base=base, k=N_FREQUENCIES, k_plus=N_FREQUENCIES + 1)


def card_metadata(config: dict, repo_id: str | None, license: str, base_model: str | None,
                  dataset_id: str | None, evaluation: dict | None) -> str:
    """The YAML block, built with huggingface_hub's ModelCardData (model-index included)."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for method in (evaluation or {}).get("methods", []):
        if method["method"].startswith("static_"):
            continue
        common = dict(task_type="text-generation", task_name="reasoning intensity selection",
                      dataset_type=(evaluation.get("data", {}).get("test", {}).get("source")
                                    or "test problems"),
                      dataset_name=f"{evaluation.get('test', {}).get('problems', '?')} test "
                                   "problems")
        results.append(EvalResult(**common, metric_type="accuracy",
                                  metric_value=round(100 * method["accuracy"], 2),
                                  metric_name=f"{method['label']} accuracy (%)"))
        results.append(EvalResult(**common, metric_type="mean_generated_tokens",
                                  metric_value=round(method["mean_tokens"], 2),
                                  metric_name=f"{method['label']} mean generated tokens"))
    data = ModelCardData(
        base_model=base_model, library_name="peft", license=license,
        tags=["dami-pref", "peft", "lora", "reward-model", "reasoning", "model-interpolation"],
        datasets=[dataset_id] if dataset_id else None,
        model_name=repo_id or "dami-pref-ranker", eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---"


def model_card(config: dict, repo_id: str | None, license: str = "apache-2.0",
               evaluation: dict | None = None, base_model: str | None = None,
               dataset_id: str | None = None, base_in_folder: bool = False) -> str:
    """The README.md of an exported ranker: metadata, then one section per topic."""
    folder = f'"{repo_id}"' if repo_id else '"PATH/TO/THIS/FOLDER"'
    base = 'folder / "base"' if base_in_folder else f'"{base_model or config["backbone"]}"'
    return "\n".join([
        card_metadata(config, repo_id, license, base_model, dataset_id, evaluation), "",
        _intro(config, repo_id, base_model, base_in_folder), _grid(config), _architecture(config),
        _training(config, dataset_id), _evaluation(config, evaluation),
        _usage(config, folder, base, repo_id), _limitations(config)])


def _intro(config: dict, repo_id: str | None, base_model: str | None, base_in_folder: bool) -> str:
    where = ("a copy of it is in `base/`" if base_in_folder else f"`{base_model}` on the Hub"
             if base_model else f"`{config['backbone']}`")
    return f"""# {repo_id or "A DAMI-Pref ranker"}

A DAMI-Pref ranker (arXiv 2601.21414): for a question q it scores every candidate reasoning
intensity λ, and the interpolated model Θ(λ) = λ·Θ_Thinking + (1−λ)·Θ_Instruct at the
best-scoring λ answers it. It was trained with [dami-pref](https://github.com) on (accuracy,
cost)-ranked preference pairs between λ values, built from rollouts of the pair (objective:
`{config.get('objective')}`).

Backbone: {where}, loaded without its LM head (`AutoModel`), with a peft LoRA adapter (task type
`FEATURE_EXTRACTION`; r={config['lora']['r']}, alpha={config['lora']['alpha']}, target modules
`{config['lora']['target_modules']}`) and a λ head in `head.safetensors`.
"""


def _grid(config: dict) -> str:
    costs = config.get("lambda_costs") or {}
    rows = "\n".join(f"| {lam:g} | {costs.get(f'{lam:g}', float('nan')):.1f} |"
                     for lam in config["grid"])
    return f"""## Candidate λ grid

| λ | mean generated tokens in the training rollouts |
|---:|---:|
{rows}
"""


def _architecture(config: dict) -> str:
    return f"""## How a question is scored

1. **Prompt.** `prompt_template` (`{config['prompt_template']}`) is filled with the question; when
   `chat_template` is true ({str(config.get('chat_template')).lower()} here) and the tokenizer has
   a chat template, the text becomes a user turn followed by the assistant marker
   (`apply_chat_template(..., add_generation_prompt=True)`), tokenized without adding special
   tokens again; otherwise it is tokenized with the tokenizer's special tokens. Padding is on
   the right; a question longer than `max_length` ({config['max_length']}) tokens keeps its last
   tokens.
2. **Pooling.** h_q is the backbone's last hidden state at each row's last non-pad token (the
   last position whose attention mask is 1).
3. **Head.** u = U·LayerNorm(h_q) + b_U (`norm.*`, `question.*`), v(λ) = V·φ(λ) + b_V (`lam.*`)
   with φ(λ) = [λ, λ², sin kπλ, cos kπλ for k = 1…{N_FREQUENCIES}], and
   r(q, λ) = w·GELU(u + v(λ)) + b (`score.1.*`). One backbone pass scores every λ.
   Rankers of objective `acc` score σ(r(q, λ)), the predicted chance that λ answers right.
   DAMI-Pred rankers read λ̂ = σ(`pred`·u) and score −|λ − λ̂|; DAMI-Routing rankers read a logit
   ℓ = `route`·u and score ℓ·(λ − ½).
4. **Choice.** λ(q) = argmax over the grid of score(q, λ) − β·ĉ(λ), ties to the lower λ, where
   ĉ(λ) is the λ's mean generated tokens in the training rollouts (`lambda_costs`) divided by the
   largest (λ itself when unknown). The default β is `operating_point.cost_weight` in
   `dami_pref.json` ({_beta(config)} here), chosen on the validation split when training
   ended; β = 0 with objective `pref` is DAMI-Pref as published, β > 0 saves tokens.
"""


def _beta(config: dict) -> str:
    point = config.get("operating_point") or {}
    if "cost_weight" not in point:
        return "none recorded, so β = 0"
    return f"β = {point['cost_weight']:.4g}, target `{point.get('target')}`"


def _training(config: dict, dataset_id: str | None) -> str:
    t = config.get("training", {})
    source = f"`{dataset_id}`" if dataset_id else f"`{t.get('pairs_source', '?')}`"
    return f"""## Training

- pairs: {source} (rollout fingerprint `{t.get('rollout_fingerprint', '?')}`)
- training problems: {t.get('train_problems', '?')}, pairs: {t.get('train_pairs', '?')},
  validation problems: {t.get('validation_problems', '?')}
- optimizer steps: {t.get('steps', '?')}, processes: {t.get('processes', '?')}
  ({t.get('distributed_type', '?')}), seed: {t.get('seed', '?')}, objective
  `{config.get('objective', 'pref')}`: {LOSSES.get(config.get('objective', 'pref'), '?')}
"""


LOSSES = {"pref": "pairwise BCE −log σ(r(q, λ_chosen) − r(q, λ_rejected)) averaged per problem, "
                  "then over problems",
          "acc": "BCE of σ(r(q, λ)) against the accuracy measured at every λ of the grid",
          "pred": "squared error between λ̂ and the oracle λ*",
          "route": "BCE of σ(ℓ) against 'Instruct answers wrongly'"}


def _evaluation(config: dict, evaluation: dict | None) -> str:
    val = config.get("training", {}).get("validation") or {}
    rows = "\n".join(f"| {key.replace('_', ' ')} | {value:.4g} |" for key, value in val.items()
                     if isinstance(value, (int, float)))
    text = f"""## Evaluation

Validation metrics at the end of training (selected λ against the oracle λ*):

| metric | value |
|---|---:|
{rows}
"""
    if evaluation:
        methods = "\n".join(f"| {m['label']} | {100 * m['accuracy']:.1f}% | "
                            f"{m['mean_tokens']:.1f} |" for m in evaluation.get("methods", []))
        text += f"""
On {evaluation.get('test', {}).get('problems', '?')} test problems (`dami-pref eval`, offline):

| method | accuracy | mean tokens |
|---|---:|---:|
{methods}
"""
    return text


def _usage(config: dict, folder: str, base: str, repo_id: str | None) -> str:
    repo = repo_id or "PATH/TO/THIS/FOLDER"
    return f"""## Usage

Without dami-pref (torch, transformers, peft and safetensors only):

{usage_snippet(folder, base)}

With dami-pref, which also serves the chosen λ:

```python
from dami_pref import LambdaRanker

ranker = LambdaRanker.from_pretrained("{repo}")
ranker.select(["12+7+19"])                  # at the β chosen on validation
ranker.select(["12+7+19"], cost_weight=0.5)  # or another β
```

```bash
dami-pref select --ranker {repo} --input questions.jsonl --generate \\
    --instruct INSTRUCT_MODEL --thinking THINKING_MODEL
```
"""


def _limitations(config: dict) -> str:
    return """## Limitations

- The ranker only knows the pair and the grid it was trained on: its scores rank λ values of
  *this* Instruct/Thinking pair, with this prompt and generation budget.
- It sees the question alone; a question's difficulty that only shows while answering is
  luck to it.
- Accuracy and token costs come from rollouts of the training problems; another problem
  distribution can shift both.
"""
