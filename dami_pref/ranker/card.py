"""The model card of an exported ranker: Hub metadata and a card a user without dami-pref can use.

The metadata is built with huggingface_hub's ``ModelCardData``: ``base_model`` (when the
backbone is a Hub model), ``library_name: transformers``, ``pipeline_tag: text-classification``,
tags, datasets, license, and ``model-index`` with this ranker's own results on a Hub dataset
(the baselines go in the card's text). The usage snippet loads the folder with
``AutoModelForSequenceClassification`` and chooses λ at the validation-chosen β exactly as
``LambdaRanker.select`` does; a test runs it verbatim against a local Hub cache, with dami_pref
made unimportable.
"""

from __future__ import annotations

PROJECT_URL = "https://github.com/dami-pref/dami-pref"

USAGE = '''\
```python
import json
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from transformers import AutoModelForSequenceClassification, AutoTokenizer

repo = {repo!r}  # a Hub id or a local folder
model = AutoModelForSequenceClassification.from_pretrained(repo).eval()
tokenizer = AutoTokenizer.from_pretrained(repo)
local = Path(repo, "dami_pref.json")
config = json.loads((local if local.is_file() else Path(hf_hub_download(repo, "dami_pref.json")))
                    .read_text())
grid = torch.tensor(config["grid"])


@torch.no_grad()
def score(questions):  # one score per λ of the grid, for every question
    texts = [config["prompt_template"].format(question=q) for q in questions]
    chat = config["chat_template"] and tokenizer.chat_template
    if chat:
        texts = [tokenizer.apply_chat_template([{{"role": "user", "content": t}}], tokenize=False,
                                               add_generation_prompt=True) for t in texts]
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    batch = tokenizer(texts, padding=True, truncation=True, max_length=config["max_length"],
                      add_special_tokens=not chat, return_tensors="pt")
    logits = model(**batch).logits.float()
    if config["objective"] == "acc":  # the predicted chance that λ answers right
        return logits.sigmoid()
    if config["objective"] == "pred":  # DAMI-Pred: the grid point nearest λ̂ = σ(logit)
        return -(grid[None, :] - logits[:, :1].sigmoid()).abs()
    if config["objective"] == "route":  # DAMI-Routing: a logit for "think"
        return logits[:, :1] * (grid[None, :] - 0.5)
    return logits  # pref: DAMI-Pref's Bradley-Terry score


costs = torch.tensor([config["lambda_costs"].get(f"{{lam:g}}", lam) for lam in config["grid"]])
beta = (config.get("operating_point") or {{}}).get("cost_weight", 0.0)  # chosen on validation
scores = score(["12+7+19", "3+4"])
chosen = grid[(scores - beta * costs / costs.max()).argmax(dim=1)]  # ties: the lower λ
print(chosen.tolist())
```'''


def usage_snippet(repo: str) -> str:
    """The card's snippet for a Hub id (or a folder path)."""
    return USAGE.format(repo=repo)


def own_results(evaluation: dict | None, config: dict) -> dict | None:
    """This ranker's row of a results.json: the one whose ranker fingerprint matches, else the
    default DAMI-Pref row."""
    if not evaluation:
        return None
    methods = {m["method"]: m for m in evaluation.get("methods", [])}
    fingerprint = config.get("source_fingerprint")
    for name, ranker in (evaluation.get("rankers") or {}).items():
        if fingerprint and ranker.get("fingerprint") == fingerprint:
            return methods.get(name.removesuffix("_ranker"))
    return methods.get("dami_pref")


def card_metadata(config: dict, repo_id: str | None, license: str, base_model: str | None,
                  dataset_id: str | None, evaluation: dict | None) -> str:
    """The YAML block, built with huggingface_hub's ModelCardData (model-index included)."""
    from huggingface_hub import EvalResult, ModelCardData

    mine, results = own_results(evaluation, config), []
    if mine and dataset_id:  # model-index needs a Hub dataset
        common = dict(task_type="text-classification",
                      task_name="reasoning intensity selection", dataset_type=dataset_id,
                      dataset_name=f"{evaluation.get('test', {}).get('problems', '?')} test "
                                   "problems")
        results = [EvalResult(**common, metric_type="accuracy",
                              metric_value=round(100 * mine["accuracy"], 2),
                              metric_name="accuracy of the answers at the chosen λ (%)"),
                   EvalResult(**common, metric_type="mean_generated_tokens",
                              metric_value=round(mine["mean_tokens"], 2),
                              metric_name="mean generated tokens at the chosen λ")]
    data = ModelCardData(
        base_model=base_model, library_name="transformers", license=license,
        pipeline_tag="text-classification",
        tags=["dami-pref", "reward-model", "reasoning", "model-interpolation", "lora"],
        datasets=[dataset_id] if dataset_id else None,
        model_name=repo_id or "dami-pref-ranker", eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---"


def model_card(config: dict, repo_id: str | None, license: str = "apache-2.0",
               evaluation: dict | None = None, base_model: str | None = None,
               dataset_id: str | None = None) -> str:
    """The README.md of an exported ranker: metadata, then one section per topic."""
    return "\n".join([
        card_metadata(config, repo_id, license, base_model, dataset_id, evaluation), "",
        _intro(config, repo_id, base_model), _grid(config), _architecture(config),
        _training(config, dataset_id), _evaluation(config, evaluation),
        _usage(config, repo_id), _limitations(config)])


def _pair(config: dict) -> str:
    from .checkpoint import recorded_pair

    pair = recorded_pair(config)
    names = [f"{side.capitalize()} `{(pair.get(side) or {}).get('name', '?')}` (weights "
             f"fingerprint `{(pair.get(side) or {}).get('weights_fingerprint', '?')}`)"
             for side in ("instruct", "thinking")]
    return " and ".join(names)


def _intro(config: dict, repo_id: str | None, base_model: str | None) -> str:
    backbone = f"`{base_model}`" if base_model else "a local backbone"
    return f"""# {repo_id or "A DAMI-Pref ranker"}

A DAMI-Pref ranker (arXiv 2601.21414): for a question q it scores every candidate reasoning
intensity λ, and the interpolated model Θ(λ) = λ·Θ_Thinking + (1−λ)·Θ_Instruct at the chosen λ
answers it. Its λ refer to the pair {_pair(config)}: the ranker is only meaningful with that pair.
It was trained with [dami-pref]({PROJECT_URL}) on rollouts of the pair (objective
`{config.get('objective')}`).

It is a standard sequence classifier (`AutoModelForSequenceClassification`, one logit per λ of
the grid, `id2label` naming them) made from {backbone} with a LoRA adapter (r={config['lora']['r']},
alpha={config['lora']['alpha']}, target modules `{config['lora']['target_modules']}`) merged in.
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
2. **Logits.** The classifier reads the prompt once and pools its last non-pad token, as every
   `…ForSequenceClassification` does: one logit per λ of the grid. Rankers of objective `acc`
   score σ(logit), the predicted chance that λ answers right; `pref` rankers score the logit
   itself. DAMI-Pred rankers have one logit, λ̂ = σ(logit), and score −|λ − λ̂|; DAMI-Routing
   rankers have one logit ℓ for "think" and score ℓ·(λ − ½).
3. **Choice.** λ(q) = argmax over the grid of score(q, λ) − β·ĉ(λ), ties to the lower λ, where
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


def _usage(config: dict, repo_id: str | None) -> str:
    repo = repo_id or "PATH/TO/THIS/FOLDER"
    return f"""## Usage

Without dami-pref (torch, transformers and huggingface_hub only), at the β chosen on validation:

{usage_snippet(repo)}

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
