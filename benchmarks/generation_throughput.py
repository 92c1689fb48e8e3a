"""Generation throughput for a mixed workload: each question arrives with its own λ.

    python benchmarks/generation_throughput.py                          # CPU, small shape
    python benchmarks/generation_throughput.py --shape qwen3-4b --questions 512 \\
        --new_tokens 256 --device cuda --dtype bfloat16 --per_question 32
    python benchmarks/generation_throughput.py --quick                   # CI smoke

The questions' λ values follow the toy oracle's distribution (measured on the toy test set:
λ*=0 for 53 %, the rest spread over 0.1…0.5). A random-weight pair of the named shape generates
exactly --new_tokens tokens per question (fixed lengths, so every mode does the same work):
  grouped           one λ switch per distinct λ, that λ's questions batched through generate();
  grouped + CB      the same grouping, each group through transformers' continuous batching
                    (generate_batch, paged attention);
  re-merge / query  the on-demand design: rebuild the merged weights (state dict, then
                    load_state_dict) and generate each question alone, on a subset.
Reported: generated tokens per second and ratios.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from dataclasses import dataclass

import torch
from transformers import GenerationConfig

from dami_pref.benchmarking import paged_cache_config, random_runtime, remerge, time_once
from dami_pref.toy.tokenizer import build_tokenizer
from dami_pref.cli.parsing import parse_args
from dami_pref.utils.devices import parse_dtype, resolve_device

# λ*(q) on the 700 toy test questions (the oracle of ./scripts/run_toy.sh, 2026-11-22): shares
ORACLE_MIX = {0.0: 0.527, 0.1: 0.030, 0.2: 0.104, 0.3: 0.239, 0.4: 0.094, 0.5: 0.006}


@dataclass
class ThroughputArgs:
    shape: str = "small"
    device: str = "cpu"
    dtype: str = "float32"
    questions: int = 64
    prompt_tokens: int = 32
    new_tokens: int = 64
    batch_size: int = 32
    per_question: int = 8
    continuous_batching: bool = True
    quick: bool = False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(ThroughputArgs, argv, prog="generation_throughput.py", description=__doc__)
    if args.quick:
        args.shape, args.questions, args.new_tokens, args.per_question = "tiny", 12, 8, 2
    device = resolve_device(args.device)
    runtime = random_runtime(args.shape, parse_dtype(args.dtype), device, build_tokenizer())
    model = runtime.model
    rng = random.Random(0)
    lams = rng.choices(list(ORACLE_MIX), weights=list(ORACLE_MIX.values()), k=args.questions)
    vocab = model.config.vocab_size
    prompts = [[rng.randrange(10, vocab) for _ in range(args.prompt_tokens)] for _ in lams]
    config = GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                              do_sample=False, eos_token_id=None, pad_token_id=0)
    groups: dict[float, list[int]] = defaultdict(list)
    for i, lam in enumerate(lams):
        groups[lam].append(i)

    def grouped() -> None:
        for lam, idx in sorted(groups.items()):
            runtime.set_lambda(lam)
            for at in range(0, len(idx), args.batch_size):
                batch = torch.tensor([prompts[i] for i in idx[at:at + args.batch_size]],
                                     device=device)
                with torch.no_grad():
                    model.generate(batch, generation_config=config)

    def grouped_cb() -> None:
        for lam, idx in sorted(groups.items()):
            runtime.set_lambda(lam)
            with torch.no_grad():
                chosen = [prompts[i] for i in idx]
                model.generate_batch(chosen, generation_config=config,
                                     max_new_tokens=args.new_tokens,
                                     continuous_batching_config=paged_cache_config(
                                         chosen, args.new_tokens))

    def per_question() -> None:
        for i in range(args.per_question):
            remerge(runtime, lams[i])
            with torch.no_grad():
                model.generate(torch.tensor([prompts[i]], device=device), generation_config=config)

    grouped()  # warm-up
    rows = [("λ-grouped generate()", args.questions, time_once(grouped, device))]
    if args.continuous_batching:
        try:
            grouped_cb()  # warm-up
            rows.append(("λ-grouped generate_batch() (continuous batching)", args.questions,
                         time_once(grouped_cb, device)))
        except Exception as err:  # noqa: BLE001 - report what stops it on this device
            rows.append((f"λ-grouped generate_batch(): not run ({type(err).__name__}: "
                         f"{str(err)[:80]})", 0, float("nan")))
    rows.append(("re-merge per question, batch 1", args.per_question,
                 time_once(per_question, device)))
    print(f"shape {args.shape}, {args.dtype} on {device}; {args.questions} questions over "
          f"{len(groups)} λ values, {args.prompt_tokens}+{args.new_tokens} tokens each, "
          f"batches of {args.batch_size}")
    print("| mode | questions | seconds | tokens/s | vs re-merge |\n|---|---:|---:|---:|---:|")
    base = args.per_question * args.new_tokens / rows[-1][2]
    for name, n, seconds in rows:
        rate = n * args.new_tokens / seconds if n else float("nan")
        print(f"| {name} | {n} | {seconds:.2f} | {rate:,.0f} | {rate / base:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
