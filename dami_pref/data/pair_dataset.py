"""The preference dataset on disk: pairs, candidate tables, the oracle, a card and a plot.

Folder layout (built under a temporary name, renamed when whole)::

    dataset/                      datasets.DatasetDict(train, validation) of pairs (save_to_disk)
    parquet/{train,validation}.parquet   the same pairs as parquet
    candidates.parquet            per (problem, λ): acc, cost, samples, split
    oracle.parquet                per problem: λ*, its acc and cost, pair count, split
    pairs.json                    options, counts, grid, expected cost per λ, source fingerprint
    lambda_star.png               histogram of λ* by difficulty
    README.md                     dataset card
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DamiPrefError, first_line
from ..utils.io import atomic_write_json, atomic_write_text, building_folder, check_destination
from ..utils.ordering import oracle
from ..utils.plots import lambda_star_histogram
from .frontier import format_frontier, table_frontier
from .preferences import (PairOptions, candidates_from_rows, lambda_text, pair_rows,
                          pairs_for_problem, split_problems)
from .rollouts import load_rollouts

FORMAT_VERSION = 1
SPLITS = ("train", "validation")


@dataclass
class PairTables:
    """Everything the pairs folder holds, before it is written."""

    records: dict[str, list[dict]]  # split -> pair rows
    candidate_rows: list[dict]
    oracle_rows: list[dict]
    train_ids: list[str]
    validation_ids: list[str]


@dataclass(frozen=True)
class PromptRendering:
    """How the TRL ``prompt`` column renders a question: as the ranker reads it (the prompt
    template, then the tokenizer's chat template when it has one and it is wanted), or, with no
    tokenizer, the question and a newline."""

    tokenizer: str | None = None  # a tokenizer folder or Hub id (the ranker's backbone)
    template: str = "{question}"
    chat_template: bool = True

    def renderer(self):
        from ..utils.prompts import render_prompt

        if self.tokenizer is None:
            return lambda question: question + "\n"
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
        except Exception as err:  # noqa: BLE001
            raise DamiPrefError(f"cannot load the prompt tokenizer {self.tokenizer}: "
                                f"{first_line(err)}") from None
        return lambda question: render_prompt(question, self.template, tokenizer,
                                              self.chat_template)


def pair_of(manifest: dict) -> dict:
    """The Instruct/Thinking pair the rollouts came from, as the user named them, with their
    weights' fingerprints, and how they generated (``generation``): the prompt template, whose
    chat template, dtype, memory mode and budget. ``select --generate`` and ``serve`` use it."""
    source, identity = manifest.get("source") or {}, manifest.get("pair") or {}
    pair = {side: {"name": source.get(side), "weights_fingerprint": identity.get(side)}
            for side in ("instruct", "thinking")}
    pair["generation"] = {key: identity.get(key) for key in
                          ("prompt_template", "chat_template_from", "dtype")}
    pair["generation"].update(memory_mode=identity.get("memory_mode", "exact"),
                              max_new_tokens=manifest.get("max_new_tokens"))
    return pair


def build_pair_dataset(rollout_folder: str | Path, out: str | Path, options: PairOptions,
                       validation_fraction: float = 0.1, seed: int = 0,
                       overwrite: bool = False,
                       rendering: PromptRendering = PromptRendering()) -> dict:
    """Turn a finished rollout folder into the preference dataset; returns its summary."""
    out = Path(out)
    check_destination(out, overwrite)
    manifest, problems, table = load_rollouts(rollout_folder)
    tables = pair_tables(problems, table, options, validation_fraction, seed,
                         rendering.renderer())
    summary = summarize_pairs(tables, manifest, table, options, rollout_folder,
                              validation_fraction, seed)
    summary["prompt_rendering"] = asdict(rendering)
    write_pair_folder(out, tables, summary)
    return summary


def pair_tables(problems: pa.Table, table: pa.Table, options: PairOptions,
                validation_fraction: float, seed: int, render=lambda q: q + "\n") -> PairTables:
    """Candidates, oracle and pairs of every problem, split into train and validation."""
    info = {row["problem_id"]: row for row in problems.to_pylist()}
    candidates = candidates_from_rows(
        table.select(["problem_id", "lambda", "correct", "n_tokens"]).to_pylist())
    order = [pid for pid in info if pid in candidates]  # the problem set's own order
    train_ids, val_ids = split_problems(order, validation_fraction, seed)
    split_of = {pid: "train" for pid in train_ids} | {pid: "validation" for pid in val_ids}
    tables = PairTables({name: [] for name in SPLITS}, [], [], train_ids, val_ids)
    for pid in order:
        row, cands, split = info[pid], candidates[pid], split_of[pid]
        pairs = pairs_for_problem(cands, options)
        tables.records[split] += pair_rows(pid, row["question"], render(row["question"]), pairs)
        common = {"problem_id": pid, "question": row["question"],
                  "difficulty": row["difficulty"], "split": split}
        tables.candidate_rows += [{**common, "lambda": c.lam, "acc": c.acc, "cost": c.cost}
                                  for c in cands]
        best = oracle(cands)
        tables.oracle_rows.append({**common, "oracle_lambda": best.lam, "oracle_acc": best.acc,
                                   "oracle_cost": best.cost, "n_pairs": len(pairs)})
    return tables


def summarize_pairs(tables: PairTables, manifest: dict, table: pa.Table, options: PairOptions,
                    rollout_folder: str | Path, validation_fraction: float, seed: int) -> dict:
    """``pairs.json``: options, counts, grid, mean cost per λ on train, the frontier."""
    grid = sorted({r["lambda"] for r in tables.candidate_rows})
    train_set = set(tables.train_ids)
    lambda_costs = {}
    for lam in grid:
        costs = [r["cost"] for r in tables.candidate_rows
                 if r["lambda"] == lam and r["problem_id"] in train_set]
        lambda_costs[f"{lam:g}"] = sum(costs) / len(costs) if costs else 0.0
    n_pairs = {name: len(tables.records[name]) for name in SPLITS}
    return {
        "format_version": FORMAT_VERSION, "rollouts": str(rollout_folder),
        "rollout_fingerprint": manifest["fingerprint"], "pair": pair_of(manifest),
        "options": asdict(options), "validation_fraction": validation_fraction, "seed": seed, "grid": grid,
        "samples": manifest["samples"],
        "problems": {"train": len(tables.train_ids), "validation": len(tables.validation_ids)},
        "pairs": n_pairs,
        "pairs_per_problem": sum(n_pairs.values()) / max(len(tables.oracle_rows), 1),
        "problems_without_signal": sum(1 for r in tables.oracle_rows if r["n_pairs"] == 0),
        "lambda_mean_cost": lambda_costs,
        "frontier": table_frontier(table),
    }


def write_pair_folder(out: Path, tables: PairTables, summary: dict) -> None:
    """Write the folder under a temporary name; it appears whole or not at all."""
    import datasets

    with building_folder(out) as tmp:
        features = _pair_features()
        dataset = datasets.DatasetDict({
            name: _split_dataset(tables.records[name], features) for name in SPLITS})
        # one shard per split, so that an empty split still loads back
        dataset.save_to_disk(str(tmp / "dataset"), num_shards={name: 1 for name in SPLITS})
        (tmp / "parquet").mkdir()
        for name in SPLITS:
            dataset[name].to_parquet(str(tmp / "parquet" / f"{name}.parquet"))
        pq.write_table(pa.Table.from_pylist(tables.candidate_rows), tmp / "candidates.parquet")
        pq.write_table(pa.Table.from_pylist(tables.oracle_rows), tmp / "oracle.parquet")
        atomic_write_json(tmp / "pairs.json", summary)
        lambda_star_histogram([r["oracle_lambda"] for r in tables.oracle_rows],
                              [r["difficulty"] for r in tables.oracle_rows], summary["grid"],
                              tmp / "lambda_star.png")
        atomic_write_text(tmp / "README.md", dataset_card(summary))


def _split_dataset(records: list[dict], features):
    """One split; an empty one (``--validation_fraction 0``) keeps the columns."""
    import datasets

    if records:
        return datasets.Dataset.from_list(records, features=features)
    return datasets.Dataset.from_dict({name: [] for name in features}, features=features)


def _pair_features():
    import datasets

    return datasets.Features({
        "problem_id": datasets.Value("string"), "question": datasets.Value("string"),
        "chosen_lambda": datasets.Value("float64"), "rejected_lambda": datasets.Value("float64"),
        "chosen_acc": datasets.Value("float64"), "rejected_acc": datasets.Value("float64"),
        "chosen_cost": datasets.Value("float64"), "rejected_cost": datasets.Value("float64"),
        "prompt": datasets.Value("string"), "chosen": datasets.Value("string"),
        "rejected": datasets.Value("string"),
    })


def dataset_card(summary: dict) -> str:
    opts = summary["options"]
    rows = format_frontier(summary["frontier"], ("accuracy", "mean_tokens"))
    return f"""---
task_categories:
- text-classification
tags:
- dami-pref
- preference
- reward-modeling
configs:
- config_name: default
  data_files:
  - split: train
    path: parquet/train.parquet
  - split: validation
    path: parquet/validation.parquet
---

# DAMI-Pref preference pairs

Preference pairs between candidate reasoning intensities λ (Θ(λ) = λ·Θ_Thinking +
(1−λ)·Θ_Instruct), built by `data_builders/pairs.py` from the rollouts in
`{summary['rollouts']}` (fingerprint `{summary['rollout_fingerprint']}`). A λ that answered more
accurately wins; at equal accuracy (tolerance {opts['acc_tolerance']}) the one that generated
fewer tokens wins (ties within {100 * opts['cost_tolerance']:g}% of the dearer cost give no pair).

| | train | validation |
|---|---:|---:|
| problems | {summary['problems']['train']} | {summary['problems']['validation']} |
| pairs | {summary['pairs']['train']} | {summary['pairs']['validation']} |

- candidate λ values: {', '.join(f'{x:g}' for x in summary['grid'])}; samples per (problem, λ):
  {summary['samples']}
- pairs per problem: {summary['pairs_per_problem']:.2f}
- problems with no signal (every candidate tied): {summary['problems_without_signal']}

Columns: `problem_id, question, chosen_lambda, rejected_lambda, chosen_acc, rejected_acc,
chosen_cost, rejected_cost` and the text columns `prompt, chosen, rejected` that TRL's
`RewardTrainer` reads (λ written as text, e.g. `{lambda_text(0.3)}`). {_rendering(summary)}
`candidates.parquet` holds (λ, acc, cost) per problem and `oracle.parquet` the oracle λ*(q), the
cheapest λ among those with the best accuracy.

## Frontier measured by the rollouts

{rows}
"""


def load_pair_dataset(folder: str | Path):
    """(DatasetDict of pairs, candidates table, oracle table, summary) from a pairs folder."""
    import datasets

    folder = Path(folder)
    summary_path = folder / "pairs.json"
    if not summary_path.is_file():
        raise DamiPrefError(f"{folder}: no pairs.json; is this a pairs folder "
                            "(data_builders/pairs.py --output)?")
    summary = json.loads(summary_path.read_text())
    if summary.get("format_version") != FORMAT_VERSION:
        raise DamiPrefError(f"{folder}: pairs format {summary.get('format_version')} is not the "
                            f"supported {FORMAT_VERSION}")
    missing = [name for name in ("dataset", "candidates.parquet", "oracle.parquet")
               if not (folder / name).exists()]
    if missing:
        raise DamiPrefError(f"{folder}: missing {', '.join(missing)}")
    dataset = datasets.load_from_disk(str(folder / "dataset"))
    return (dataset, pq.read_table(folder / "candidates.parquet"),
            pq.read_table(folder / "oracle.parquet"), summary)


def _rendering(summary: dict) -> str:
    """How the ``prompt`` column was rendered, in the card's words."""
    r = summary.get("prompt_rendering") or {}
    if not r.get("tokenizer"):
        return ("`prompt` is the question followed by a newline: the λ-head ranker reads the "
                "question through its backbone's chat template instead, so a text-encoded "
                "reward model trained on these columns sees plainer prompts than the ranker.")
    chat = (" and then the chat template of that tokenizer (a user turn and the assistant "
            "marker)" if r.get("chat_template") else "")
    return (f"`prompt` is rendered exactly as the λ-head ranker reads a question: the template "
            f"`{r.get('template')}`{chat}, with the tokenizer of `{r['tokenizer']}`.")
