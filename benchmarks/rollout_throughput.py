"""Rollout throughput: λ-grouped batches against re-merging the model for every question.

    python benchmarks/rollout_throughput.py                    # toy pair, CPU, ~2 minutes
    python benchmarks/rollout_throughput.py --problems 1000 --per_question 300
    python benchmarks/rollout_throughput.py --quick            # CI smoke

Same problems, same λ grid, greedy decoding, one run:
  grouped       the runtime's way: one switch per λ, every request of that λ batched;
  per question  the on-demand design the paper times (~5.3 s a merge): each (question, λ)
                arrives alone, the merged weights are rebuilt (state dict, then
                load_state_dict) and the question is generated with batch size 1.
The per-question mode is timed on a random subset of the same requests and reported as
tokens/s, so the ratio compares throughputs.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field

import torch

from dami_pref.benchmarking import remerge
from dami_pref.cli.parsing import parse_args
from dami_pref.data.problems import load_problems
from dami_pref.runtime import InterpolationRuntime
from dami_pref.runtime.generation import DecodingOptions, GenerationRequest
from dami_pref.toy import TOY_BUDGET, toy_problems_path
from dami_pref.utils.grid import parse_grid
from dami_pref.utils.io import atomic_write_json
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING


@dataclass
class ThroughputArgs:
    problems: int = field(default=1000, metadata={"help": "toy training problems"})
    grid: str = "0:1:0.1"
    batch_size: int = 128
    max_new_tokens: int = TOY_BUDGET
    per_question: int = field(default=200, metadata={
        "help": "requests timed in per-question mode (a random subset of the same requests)"})
    device: str = "cpu"
    quick: bool = field(default=False, metadata={"help": "40 problems, 3 λ, 20 per-question"})
    out: str | None = None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(ThroughputArgs, argv, prog="rollout_throughput.py", description=__doc__)
    if args.quick:
        args.problems, args.grid, args.per_question = 40, "0,0.5,1", 20
    grid = parse_grid(args.grid)
    problems = load_problems(toy_problems_path("train"), limit=args.problems)
    runtime = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device=args.device)
    requests = [GenerationRequest(p.question, lam) for lam in grid for p in problems]
    options = DecodingOptions(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    runtime.generate(requests[: args.batch_size], options)  # warm-up
    start = time.perf_counter()
    grouped = runtime.generate(requests, options)
    grouped_s = time.perf_counter() - start
    grouped_tokens = sum(r.n_tokens for r in grouped)

    subset = random.Random(0).sample(range(len(requests)), min(args.per_question, len(requests)))
    single = DecodingOptions(max_new_tokens=args.max_new_tokens, batch_size=1)
    tokens, mismatches, start = 0, 0, time.perf_counter()
    for index in subset:
        # as a separate merging process would: the runtime then holds λ and does not switch
        remerge(runtime, requests[index].lam)
        [result] = runtime.generate([requests[index]], single)
        tokens += result.n_tokens
        mismatches += result.completion != grouped[index].completion
    per_question_s = time.perf_counter() - start

    grouped_rate = grouped_tokens / grouped_s
    single_rate = tokens / per_question_s
    print(f"{len(problems)} problems × {len(grid)} λ = {len(requests)} requests, "
          f"{grouped_tokens:,} tokens, torch threads {torch.get_num_threads()}")
    print("| mode | requests | seconds | requests/s | tokens/s |\n|---|---:|---:|---:|---:|")
    print(f"| λ-grouped, batch {args.batch_size} | {len(requests)} | {grouped_s:.1f} | "
          f"{len(requests) / grouped_s:.1f} | {grouped_rate:,.0f} |")
    print(f"| re-merge per question, batch 1 | {len(subset)} | {per_question_s:.1f} | "
          f"{len(subset) / per_question_s:.2f} | {single_rate:,.0f} |")
    print(f"\nthroughput ratio (tokens/s): {grouped_rate / single_rate:.1f}×; the whole rollout "
          f"took {grouped_s:.1f} s grouped; {mismatches} of {len(subset)} per-question answers "
          "differ from the batched ones")
    if args.out:
        atomic_write_json(args.out, {"requests": len(requests), "grouped_seconds": grouped_s,
                                     "grouped_tokens_per_s": grouped_rate,
                                     "per_question_tokens_per_s": single_rate,
                                     "ratio": grouped_rate / single_rate})
    return 0


if __name__ == "__main__":
    sys.exit(main())
