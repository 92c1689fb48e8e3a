"""The same preference pairs trained two ways: the λ-head ranker and TRL's RewardTrainer.

    python benchmarks/ranker_vs_trl.py --pairs outputs/toy/pairs --epochs 1
    python benchmarks/ranker_vs_trl.py --quick                 # CI smoke: a few steps each

Both use the same backbone (the toy base unless --backbone), the same LoRA settings, learning
rate, schedule and epochs. The λ-head ranker encodes each question once and scores every λ from
that pass; TRL's RewardTrainer reads the text columns (``prompt`` + ``chosen``/``rejected``,
λ written as text) with a one-label sequence classifier, two passes per pair. Reported: wall
time per epoch and validation pairwise accuracy (the share of validation pairs whose chosen λ
scores higher; ties count half), computed identically for both.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class CompareArgs:
    pairs: str = "outputs/toy/pairs"
    backbone: str | None = None
    epochs: float = 1.0
    learning_rate: float = 2e-3
    lora_r: int = 8
    lora_alpha: int = 16
    train_problems: int | None = field(default=300, metadata={
        "help": "a seeded subset of the training problems, the same for both trainers"})
    ranker_epochs: str = field(default="1,3", metadata={
        "help": "epochs of the λ-head ranker to report (it is cheap enough to show several)"})
    ranker_batch_size: int = field(default=8, metadata={"help": "problems per step (λ head)"})
    trl_batch_size: int = field(default=64, metadata={"help": "pairs per step (TRL)"})
    max_steps: int | None = None
    quick: bool = field(default=False, metadata={"help": "a few steps of each (CI smoke)"})
    out: str | None = None


@torch.no_grad()
def text_pairwise_accuracy(model, tokenizer, rows: list[dict], batch_size: int = 256) -> float:
    model.eval()
    correct = 0.0
    for at in range(0, len(rows), batch_size):
        chunk = rows[at:at + batch_size]
        texts = [r["prompt"] + r["chosen"] for r in chunk] + [r["prompt"] + r["rejected"]
                                                                for r in chunk]
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        scores = model(**enc).logits.squeeze(-1)
        c, r = scores[:len(chunk)], scores[len(chunk):]
        correct += (c > r).float().sum().item() + 0.5 * (c == r).float().sum().item()
    return correct / max(len(rows), 1)


def subset_ids(args: CompareArgs) -> set[str] | None:
    """The training problems both trainers use: the ranker's own seeded subset."""
    import random

    from dami_pref.ranker.data import load_examples

    if args.train_problems is None:
        return None
    examples, _, _ = load_examples(args.pairs)
    train = examples["train"]
    if args.train_problems >= len(train):
        return None
    keep = random.Random(0).sample(range(len(train)), args.train_problems)
    return {train[i].problem_id for i in keep}


def run_trl(args: CompareArgs, backbone: str, work: Path) -> dict:
    import datasets
    from peft import LoraConfig, TaskType
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    data = datasets.load_from_disk(str(Path(args.pairs) / "dataset"))
    ids = subset_ids(args)
    train = data["train"]
    if ids is not None:
        train = train.filter(lambda row: row["problem_id"] in ids)
    train = train.select_columns(["prompt", "chosen", "rejected"])
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    tokenizer.padding_side = "right"
    peft = LoraConfig(task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=0.0, target_modules="all-linear")
    config = RewardConfig(output_dir=str(work / "trl"), num_train_epochs=args.epochs,
                          max_steps=args.max_steps or -1,
                          per_device_train_batch_size=args.trl_batch_size,
                          learning_rate=args.learning_rate, lr_scheduler_type="cosine",
                          warmup_steps=0.05, report_to=[], use_cpu=True, logging_steps=50,
                          save_strategy="no", disable_tqdm=True, seed=0)
    trainer = RewardTrainer(model=model, args=config, train_dataset=train,
                            processing_class=tokenizer, peft_config=peft)
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    epochs = result.metrics.get("epoch", args.epochs) or args.epochs
    accuracy = text_pairwise_accuracy(trainer.model, tokenizer, data["validation"].to_list())
    return {"seconds": seconds, "epochs": epochs, "seconds_per_epoch": seconds / epochs,
            "steps": result.global_step, "validation_pairwise_accuracy": accuracy,
            "train_pairs": len(train)}


def run_ranker(args: CompareArgs, work: Path, epochs: float) -> dict:
    from dami_pref.ranker.config import ranker_arguments
    from dami_pref.ranker.data import load_examples
    from dami_pref.ranker.training import train

    result = train(*ranker_arguments(
        pairs=args.pairs, output_dir=str(work / f"ranker-{epochs:g}"),
        model_name_or_path=args.backbone, num_train_epochs=epochs,
        max_steps=args.max_steps or -1, max_train_problems=args.train_problems,
        per_device_train_batch_size=args.ranker_batch_size, learning_rate=args.learning_rate,
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, use_cpu=True, eval_strategy="no",
        save_strategy="no", report_to="none", disable_tqdm=True, max_length=64))
    examples, _, _ = load_examples(args.pairs)
    n_train = min(args.train_problems or len(examples["train"]), len(examples["train"]))
    per_epoch = n_train // args.ranker_batch_size
    epochs = result["steps"] / max(per_epoch, 1)
    return {"seconds": result["seconds"], "epochs": epochs,
            "seconds_per_epoch": result["seconds"] / epochs, "steps": result["steps"],
            "validation_pairwise_accuracy": result["validation"]["pairwise_accuracy"]}


def main(argv: list[str] | None = None) -> int:
    from dami_pref.cli.parsing import parse_args
    from dami_pref.toy import TOY_BASE

    args = parse_args(CompareArgs, argv, prog="ranker_vs_trl.py", description=__doc__)
    if args.quick:
        args.max_steps = 3
    backbone = args.backbone = args.backbone or str(TOY_BASE)
    with tempfile.TemporaryDirectory() as tmp:
        ours = {}
        for epochs in [float(x) for x in args.ranker_epochs.split(",")]:
            ours[epochs] = run_ranker(args, Path(tmp), epochs)
        theirs = run_trl(args, backbone, Path(tmp))
    print(f"torch threads {torch.get_num_threads()}; pairs {args.pairs}; backbone {backbone}")
    print("| trainer | steps | epochs | seconds | seconds / epoch | val pairwise accuracy |\n"
          "|---|---:|---:|---:|---:|---:|")
    rows = [(f"λ-head ranker, {e:g} epoch(s) (one pass per question)", r)
            for e, r in ours.items()]
    rows.append(("TRL RewardTrainer (text, two passes per pair)", theirs))
    for name, r in rows:
        print(f"| {name} | {r['steps']} | {r['epochs']:.2f} | {r['seconds']:.1f} | "
              f"{r['seconds_per_epoch']:.1f} | {r['validation_pairwise_accuracy']:.3f} |")
    first = next(iter(ours.values()))
    speedup = theirs["seconds_per_epoch"] / first["seconds_per_epoch"]
    print(f"\n{theirs['train_pairs']} training pairs; speed-up per epoch: {speedup:.1f}×")
    if args.out:
        Path(args.out).write_text(json.dumps({"ranker": {str(k): v for k, v in ours.items()},
                                              "trl": theirs, "speedup_per_epoch": speedup},
                                             indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
