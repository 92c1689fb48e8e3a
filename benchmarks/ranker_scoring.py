"""Ranker scoring throughput: one backbone pass per question (a logit per λ) against one per λ.

    python benchmarks/ranker_scoring.py --shapes toy,small,qwen3-0.6b          # CPU
    python benchmarks/ranker_scoring.py --shapes qwen3-0.6b --device cuda --dtype bfloat16
    python benchmarks/ranker_scoring.py --quick                                 # CI smoke

Both rankers share a random-weight backbone of the named shape with the same LoRA adapters:
  λ logits      DAMI-Pref's ranker: the question is encoded once, one logit per candidate;
  text-encoded  the reward-model way (TRL's RewardTrainer): "question + λ as text" is encoded once
                per candidate and a linear head scores the last token, G passes per question.
Reported: milliseconds per question (scoring every candidate), batched, and the ratio.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from peft import get_peft_model
from transformers import Qwen3ForSequenceClassification

from dami_pref.benchmarking import shape_config, timed
from dami_pref.cli.parsing import parse_args
from dami_pref.ranker.model import LoraSettings, RankerModel, RankerSpec
from dami_pref.utils.devices import parse_dtype, resolve_device


@dataclass
class ScoringArgs:
    shapes: str = "toy,small"
    device: str = "cpu"
    dtype: str = "float32"
    questions: int = 64
    question_tokens: int = 64
    lambda_tokens: int = 8
    candidates: int = 11
    batch_size: int = 16
    repeats: int = 3
    quick: bool = False


def bench_shape(shape: str, args: ScoringArgs, device: torch.device, dtype: torch.dtype,
                grid: list[float]) -> tuple[float, float]:
    """(λ logits, text-encoded) milliseconds per question for one backbone shape."""
    config = shape_config(shape, tie_word_embeddings=False)
    torch.manual_seed(0)
    spec = RankerSpec(backbone=shape, grid=grid, hidden_size=config.hidden_size)
    config.num_labels, config.pad_token_id = len(grid), 0
    lora = LoraSettings(r=16, alpha=32)
    ranker = RankerModel(get_peft_model(Qwen3ForSequenceClassification(config)
                                        .to(device=device, dtype=dtype), lora.peft_config()),
                         spec).to(device).eval()
    config_1 = shape_config(shape, tie_word_embeddings=False)
    config_1.num_labels, config_1.pad_token_id = 1, 0
    torch.manual_seed(0)
    text_scorer = get_peft_model(Qwen3ForSequenceClassification(config_1)
                                 .to(device=device, dtype=dtype), lora.peft_config()).eval()
    vocab = config.vocab_size
    questions = torch.randint(10, vocab, (args.questions, args.question_tokens), device=device)
    lam_text = torch.randint(10, vocab, (args.candidates, args.lambda_tokens), device=device)

    def one_pass() -> None:
        for at in range(0, args.questions, args.batch_size):
            ids = questions[at:at + args.batch_size]
            ranker(ids, torch.ones_like(ids))

    def text_encoded() -> None:
        # every (question, candidate) is its own sequence, batched like the ranker
        rows = torch.cat([torch.cat([q.expand(args.candidates, -1), lam_text], dim=1)
                          for q in questions])
        for at in range(0, rows.shape[0], args.batch_size):
            ids = rows[at:at + args.batch_size]
            text_scorer(input_ids=ids, attention_mask=torch.ones_like(ids))

    with torch.no_grad():
        return tuple(1e3 * timed(fn, device, args.repeats) / args.questions
                     for fn in (one_pass, text_encoded))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(ScoringArgs, argv, prog="ranker_scoring.py", description=__doc__)
    if args.quick:
        args.shapes, args.questions, args.repeats = "tiny", 8, 1
    device = resolve_device(args.device)
    dtype = parse_dtype(args.dtype)
    grid = [round(i / (args.candidates - 1), 6) for i in range(args.candidates)]
    print(f"device {device}, dtype {args.dtype}, {args.questions} questions of "
          f"{args.question_tokens} tokens, {args.candidates} candidates (λ text: "
          f"{args.lambda_tokens} tokens), batches of {args.batch_size} sequences")
    print("| shape | λ logits ms / question | text-encoded ms / question | ratio |\n"
          "|---|---:|---:|---:|")
    for shape in [s for s in args.shapes.split(",") if s]:
        head_ms, text_ms = bench_shape(shape, args, device, dtype, grid)
        print(f"| {shape} | {head_ms:.2f} | {text_ms:.2f} | {text_ms / head_ms:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
